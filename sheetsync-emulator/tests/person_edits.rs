//! Person edits fire registered webhooks (signed, documented payload); API writes do not.

mod common;

use std::time::Duration;

use common::{emulator, hub, next, raw, receiver, Hook};
use google_sheets4::api::ValueRange;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sheetsync_emulator::{EmulatorHandle, PersonEdit, TriggerSpec};
use tokio::sync::mpsc;

fn verify(hook: &Hook, secret: &str) {
    assert_eq!(hook.header("content-type"), Some("application/json"));
    let ts = hook
        .header("x-sheetsync-timestamp")
        .expect("timestamp header");
    let sig = hook
        .header("x-sheetsync-signature")
        .expect("signature header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&hook.body);
    assert_eq!(
        sig,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
    let body = hook.json();
    assert_eq!(
        body["timestamp"].as_u64().unwrap() / 1000,
        ts.parse::<u64>().unwrap()
    );
}

/// A person types a row: the signed payload carries the row as the sheet shows it, in the
/// documented field order.
async fn person_types_a_row(
    emu: &EmulatorHandle,
    id: &str,
    rx: &mut mpsc::UnboundedReceiver<Hook>,
) {
    emu.edit_as(
        id,
        "alice@example.com",
        PersonEdit::SetCells {
            range: "Sheet1!A2".into(),
            values: vec![vec![
                json!("0042"),
                json!("Widget"),
                json!("=1/0"),
                json!("2020-01-01"),
                json!("TRUE"),
            ]],
        },
    )
    .unwrap();
    let hook = next(rx).await;
    verify(&hook, "s3cret");
    let body = hook.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["spreadsheetId"], id);
    assert_eq!(body["sheetId"], 0);
    assert_eq!(body["sheetName"], "Sheet1");
    assert_eq!(body["changeType"], "EDIT");
    assert_eq!(body["user"], "alice@example.com");
    assert_eq!(
        body["range"],
        json!({"startRow": 2, "endRow": 2, "startColumn": 1, "endColumn": 5})
    );
    assert_eq!(body["header"], json!(["id", "name", "qty", "when"]));
    assert_eq!(
        body["rows"],
        json!([{"row": 2, "values": [42, "Widget", "#DIV/0!", 43831, true]}])
    );
    // Field order is part of the contract.
    let text = String::from_utf8(hook.body.clone()).unwrap();
    let order = [
        "\"version\"",
        "\"spreadsheetId\"",
        "\"sheetId\"",
        "\"sheetName\"",
        "\"changeType\"",
        "\"eventId\"",
        "\"timestamp\"",
        "\"user\"",
        "\"range\"",
        "\"header\"",
        "\"rows\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[tokio::test]
async fn person_edits_fire_signed_webhooks_and_api_writes_do_not() {
    let emu = emulator().await;
    let (url, mut rx) = receiver().await;
    let id = emu.create_spreadsheet("hooks").unwrap();
    let reg = raw(
        &emu,
        "POST",
        &format!("/__emulator/spreadsheets/{id}/triggers"),
        Some(json!({"url": url, "secret": "s3cret"})),
    )
    .await;
    assert_eq!(reg.status, 200, "{}", reg.text);
    assert!(reg.body["triggerId"].is_string());

    // An API write: no trigger runs (like Google).
    let h = hub(&emu);
    h.spreadsheets()
        .values_update(
            ValueRange {
                values: Some(vec![vec![
                    json!("id"),
                    json!("name"),
                    json!("qty"),
                    json!("when"),
                ]]),
                ..Default::default()
            },
            &id,
            "Sheet1!A1",
        )
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();

    person_types_a_row(&emu, &id, &mut rx).await;

    // A multi-row paste reports every row across the header's width ("" for empties).
    emu.paste(
        &id,
        "Sheet1!B3",
        vec![vec![json!("x")], vec![json!("")], vec![json!("y")]],
    )
    .unwrap();
    let body = next(&mut rx).await.json();
    assert_eq!(
        body["range"],
        json!({"startRow": 3, "endRow": 5, "startColumn": 2, "endColumn": 2})
    );
    assert_eq!(
        body["rows"],
        json!([{"row": 3, "values": ["", "x", "", ""]}, {"row": 4, "values": ["", "", "", ""]}, {"row": 5, "values": ["", "y", "", ""]}])
    );
    assert_ne!(body["eventId"], Value::Null);

    // Structure changes are onChange-like: no rows, no range.
    let r = raw(
        &emu,
        "POST",
        &format!("/__emulator/spreadsheets/{id}/edits"),
        Some(json!({"op": "insertRows", "sheet": "Sheet1", "before": 2, "count": 1, "user": "bob@example.com"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = next(&mut rx).await.json();
    assert_eq!(body["changeType"], "INSERT_ROW");
    assert_eq!(body["user"], "bob@example.com");
    assert_eq!(body["rows"], json!([]));
    assert!(body.get("range").is_none());
    assert_eq!(
        emu.read_values(&id, "Sheet1!A3:B3").unwrap(),
        json!([[42, "Widget"]])
    );

    emu.delete_rows(&id, "Sheet1", 2, 1).unwrap();
    assert_eq!(next(&mut rx).await.json()["changeType"], "REMOVE_ROW");
    emu.move_rows(&id, "Sheet1", 5, 1, 2).unwrap();
    assert_eq!(next(&mut rx).await.json()["changeType"], "OTHER");
    assert_eq!(
        emu.read_values(&id, "Sheet1!B2:B3").unwrap(),
        json!([["y"], ["Widget"]])
    );

    emu.sort_range(&id, "Sheet1!A2:D5", 2, true).unwrap();
    let body = next(&mut rx).await.json();
    assert_eq!(body["changeType"], "EDIT");
    assert_eq!(
        emu.read_values(&id, "Sheet1!B2:B4").unwrap(),
        json!([["Widget"], ["x"], ["y"]])
    );

    emu.clear_range(&id, "Sheet1!B2").unwrap();
    let body = next(&mut rx).await.json();
    assert_eq!(body["rows"][0]["values"][1], "");

    // Exactly the person edits were delivered, all successfully.
    let log = emu.wait_for_deliveries(7, Duration::from_secs(20)).await;
    assert_eq!(log.len(), 7);
    assert!(log.iter().all(|d| d.ok && d.status == Some(200)));
    let logged = raw(&emu, "GET", "/__emulator/deliveries", None).await;
    assert_eq!(logged.body.as_array().unwrap().len(), 7);
    emu.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_logged_and_sheet_filters_apply() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("failing").unwrap();
    // A port with nobody listening.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/x", dead.local_addr().unwrap());
    drop(dead);
    emu.add_trigger(
        &id,
        TriggerSpec {
            url: dead_url.clone(),
            secret: "k".into(),
            sheet_id: None,
        },
    )
    .unwrap();
    let (url, mut rx) = receiver().await;
    emu.add_trigger(
        &id,
        TriggerSpec {
            url,
            secret: "k".into(),
            sheet_id: Some(99),
        },
    )
    .unwrap();
    emu.set_cells(&id, "A1", vec![vec![json!("hello")]])
        .unwrap();
    let log = emu.wait_for_deliveries(1, Duration::from_secs(20)).await;
    assert_eq!(log.len(), 1, "the sheet-filtered trigger did not fire");
    assert!(!log[0].ok);
    assert_eq!(log[0].url, dead_url);
    assert!(log[0].error.is_some());
    assert!(rx.try_recv().is_err());
    assert!(emu
        .add_trigger(
            "missing",
            TriggerSpec {
                url: "http://127.0.0.1:1/".into(),
                secret: String::new(),
                sheet_id: None
            }
        )
        .is_err());
    emu.shutdown().await;
}

#[tokio::test]
async fn row_metadata_follows_person_moves() {
    let emu = emulator().await;
    let id = emu
        .create_spreadsheet_from(
            &json!({"spreadsheetId": "fixed-id", "properties": {"title": "meta-moves"}}),
        )
        .unwrap();
    assert_eq!(id, "fixed-id");
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [{"createDeveloperMetadata": {"developerMetadata": {"metadataId": 1, "metadataKey": "row",
            "location": {"dimensionRange": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}},
            "visibility": "DOCUMENT"}}}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    emu.set_cells(&id, "A2", vec![vec![json!("keyed")], vec![json!("other")]])
        .unwrap();
    emu.move_rows(&id, "Sheet1", 2, 1, 4).unwrap();
    assert_eq!(
        emu.read_values(&id, "A2:A3").unwrap(),
        json!([["other"], ["keyed"]])
    );
    let m = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/developerMetadata/1"),
        None,
    )
    .await;
    assert_eq!(m.body["location"]["dimensionRange"]["startIndex"], 2);
    emu.insert_rows(&id, "Sheet1", 1, 2).unwrap();
    let m = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/developerMetadata/1"),
        None,
    )
    .await;
    assert_eq!(m.body["location"]["dimensionRange"]["startIndex"], 4);
    emu.delete_rows(&id, "Sheet1", 5, 1).unwrap();
    let m = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/developerMetadata/1"),
        None,
    )
    .await;
    assert_eq!(m.status, 404, "metadata goes with its row");
    emu.shutdown().await;
}
