//! values.batchGet of a 100,000 x 10 sheet (1,000,000 cells) over HTTP.
//!
//! Run: `cargo bench -p sheetsync-emulator --bench batch_get`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sheetsync_emulator::{Config, EmulatorHandle};

const ROWS: usize = 100_000;

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Bytes {
    let data = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(data)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (emu, id) = rt.block_on(async {
        let emu = EmulatorHandle::start(Config::default()).await.unwrap();
        let id = emu.create_spreadsheet("bench").unwrap();
        let base = emu.base_url();
        call(
            &client,
            "POST",
            &format!("{base}v4/spreadsheets/{id}:batchUpdate"),
            Some(
                json!({"requests": [{"updateSheetProperties": {"properties": {"sheetId": 0,
                "gridProperties": {"rowCount": ROWS, "columnCount": 10}},
                "fields": "gridProperties.rowCount,gridProperties.columnCount"}}]}),
            ),
        )
        .await;
        for chunk in 0..10 {
            let rows: Vec<Value> = (chunk * ROWS / 10..(chunk + 1) * ROWS / 10)
                .map(|i| {
                    json!([
                        format!("row-{i}"),
                        i,
                        i as f64 * 1.5,
                        "some text",
                        i % 2 == 0,
                        format!("k{i}"),
                        i * 7,
                        "x",
                        0.25,
                        "end"
                    ])
                })
                .collect();
            call(
                &client,
                "PUT",
                &format!(
                    "{base}v4/spreadsheets/{id}/values/Sheet1!A{}?valueInputOption=RAW",
                    chunk * ROWS / 10 + 1
                ),
                Some(json!({ "values": rows })),
            )
            .await;
        }
        (emu, id)
    });
    let base = emu.base_url();
    let mut group = c.benchmark_group("values.batchGet 100000x10");
    group.sample_size(10);
    for render in ["FORMATTED_VALUE", "UNFORMATTED_VALUE"] {
        let url = format!("{base}v4/spreadsheets/{id}/values:batchGet?ranges=Sheet1!A1:J{ROWS}&valueRenderOption={render}");
        let probe = rt.block_on(call(&client, "GET", &url, None));
        let v: Value = serde_json::from_slice(&probe).unwrap();
        assert_eq!(
            v["valueRanges"][0]["values"].as_array().unwrap().len(),
            ROWS
        );
        group.bench_function(render, |b| {
            b.iter(|| rt.block_on(call(&client, "GET", &url, None)).len());
        });
    }
    group.finish();
    rt.block_on(emu.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
