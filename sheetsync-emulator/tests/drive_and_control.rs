//! Drive v3 subset, the HTTP control surface, the state file and concurrent clients.

mod common;

use common::{emulator, hub, raw};
use google_sheets4::api::ValueRange;
use serde_json::json;
use sheetsync_emulator::{Config, EmulatorHandle};

/// `spreadsheets.create` also makes a Drive file; `files.list` with `q`; `files.delete`
/// deletes the spreadsheet, twice is a 404.
async fn list_and_delete_files(emu: &EmulatorHandle, id: &str) {
    let other = emu.create_spreadsheet("Other file").unwrap();
    let q = "mimeType='application/vnd.google-apps.spreadsheet' and name = 'Budget 2026' and trashed = false";
    let l = raw(
        emu,
        "GET",
        &format!(
            "/drive/v3/files?q={}&fields=files(id,name,createdTime,modifiedTime)",
            common::enc(q)
        ),
        None,
    )
    .await;
    let files = l.body["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["id"], id);
    let all = raw(emu, "GET", "/drive/v3/files", None).await;
    assert_eq!(all.body["kind"], "drive#fileList");
    assert_eq!(all.body["files"].as_array().unwrap().len(), 2);

    let d = raw(emu, "DELETE", &format!("/drive/v3/files/{other}"), None).await;
    assert_eq!(d.status, 204);
    assert!(d.text.is_empty());
    let g = raw(emu, "GET", &format!("/v4/spreadsheets/{other}"), None).await;
    assert_eq!(g.status, 404);
    let d = raw(emu, "DELETE", &format!("/drive/v3/files/{other}"), None).await;
    assert_eq!(d.status, 404);
    assert_eq!(
        d.body["error"]["message"],
        format!("File not found: {other}.")
    );
}

#[tokio::test]
async fn drive_files_create_get_list_delete_and_version() {
    let emu = emulator().await;
    let r = raw(
        &emu,
        "POST",
        "/drive/v3/files?supportsAllDrives=True",
        Some(json!({"name": "Budget 2026", "mimeType": "application/vnd.google-apps.spreadsheet"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body,
        json!({"kind": "drive#file", "id": id, "name": "Budget 2026", "mimeType": "application/vnd.google-apps.spreadsheet"})
    );
    let f = raw(
        &emu,
        "GET",
        &format!("/drive/v3/files/{id}?fields=version,modifiedTime"),
        None,
    )
    .await;
    let v1: u64 = f.body["version"]
        .as_str()
        .expect("int64 as string")
        .parse()
        .unwrap();
    let t1 = f.body["modifiedTime"].as_str().unwrap().to_string();
    assert!(t1.ends_with('Z') && t1.len() == 24, "{t1}");
    assert_eq!(f.body.as_object().unwrap().len(), 2);

    // A Sheets write bumps the version; reads do not.
    emu.advance_clock(std::time::Duration::from_secs(5));
    let h = hub(&emu);
    h.spreadsheets().values_get(&id, "A1").doit().await.unwrap();
    let same = raw(
        &emu,
        "GET",
        &format!("/drive/v3/files/{id}?fields=version"),
        None,
    )
    .await;
    assert_eq!(same.body["version"], v1.to_string());
    h.spreadsheets()
        .values_update(
            ValueRange {
                values: Some(vec![vec![json!(1)]]),
                ..Default::default()
            },
            &id,
            "A1",
        )
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    let f = raw(
        &emu,
        "GET",
        &format!("/drive/v3/files/{id}?fields=id,name,createdTime,modifiedTime,version"),
        None,
    )
    .await;
    let v2: u64 = f.body["version"].as_str().unwrap().parse().unwrap();
    assert!(v2 > v1);
    assert!(f.body["modifiedTime"].as_str().unwrap() > t1.as_str());
    // A person edit bumps it too.
    emu.set_cells(&id, "B1", vec![vec![json!("p")]]).unwrap();
    let f = raw(
        &emu,
        "GET",
        &format!("/drive/v3/files/{id}?fields=version"),
        None,
    )
    .await;
    assert!(f.body["version"].as_str().unwrap().parse::<u64>().unwrap() > v2);

    list_and_delete_files(&emu, &id).await;
    emu.shutdown().await;
}

/// Fault rules over HTTP: two 429s then normal; a delay rule is consumed by one request.
async fn faults_over_http(emu: &EmulatorHandle) {
    // Faults over HTTP: next 2 values.get answer 429, then normal.
    let f = raw(
        emu,
        "POST",
        "/__emulator/faults",
        Some(json!({"kind": "status", "status": 429, "times": 2, "method": "values.get"})),
    )
    .await;
    assert_eq!(f.status, 200, "{}", f.text);
    for _ in 0..2 {
        let r = raw(
            emu,
            "GET",
            "/v4/spreadsheets/seeded-sheet/values/Data!A1",
            None,
        )
        .await;
        assert_eq!(r.status, 429);
        assert_eq!(r.body["error"]["status"], "RESOURCE_EXHAUSTED");
    }
    let r = raw(
        emu,
        "GET",
        "/v4/spreadsheets/seeded-sheet/values/Data!A1",
        None,
    )
    .await;
    assert_eq!(r.status, 200);

    // A delay rule for the next request is consumed and the request still succeeds.
    raw(
        emu,
        "POST",
        "/__emulator/faults",
        Some(json!({"kind": "delay", "ms": 5, "times": 1})),
    )
    .await;
    assert_eq!(
        raw(emu, "GET", "/__emulator/faults", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = raw(
        emu,
        "GET",
        "/v4/spreadsheets/seeded-sheet/values/Data!A1",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        raw(emu, "GET", "/__emulator/faults", None).await.body,
        json!([])
    );
}

/// Latency, quota (partial update, window reset) and the clock over HTTP.
async fn latency_quota_and_clock_over_http(emu: &EmulatorHandle) {
    // Latency settings are accepted and visible.
    raw(
        emu,
        "POST",
        "/__emulator/latency",
        Some(json!({"fixedMs": 1, "jitterMs": 2})),
    )
    .await;
    let l = raw(emu, "GET", "/__emulator/latency", None).await;
    assert_eq!(l.body, json!({"fixedMs": 1, "jitterMs": 2}));

    // Quota over HTTP (partial update), then reset of the window.
    let q = raw(
        emu,
        "POST",
        "/__emulator/quota",
        Some(json!({"enabled": true, "writePerUser": 1})),
    )
    .await;
    assert_eq!(q.body["writePerUser"], 1);
    assert_eq!(q.body["readPerUser"], 60);
    let put = |n: i32| {
        let emu = emu.clone();
        async move {
            raw(
                &emu,
                "PUT",
                "/v4/spreadsheets/seeded-sheet/values/Data!C1?valueInputOption=RAW",
                Some(json!({"values": [[n]]})),
            )
            .await
        }
    };
    assert_eq!(put(1).await.status, 200);
    let r = put(2).await;
    assert_eq!(r.status, 429);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'Write requests per minute per user'"));
    raw(emu, "POST", "/__emulator/quota/reset", None).await;
    assert_eq!(put(3).await.status, 200);
    raw(
        emu,
        "POST",
        "/__emulator/clock",
        Some(json!({"advanceMs": 60000})),
    )
    .await;
    assert_eq!(put(4).await.status, 200);
}

#[tokio::test]
async fn control_surface_over_http() {
    let emu = emulator().await;
    let seeded = raw(
        &emu,
        "POST",
        "/__emulator/spreadsheets",
        Some(json!({
            "spreadsheetId": "seeded-sheet",
            "properties": {"title": "Seeded"},
            "sheets": [{"properties": {"title": "Data", "gridProperties": {"rowCount": 10, "columnCount": 3}},
                        "data": [{"startRow": 0, "rowData": [
                            {"values": [{"userEnteredValue": {"stringValue": "k"}}, {"userEnteredValue": {"stringValue": "v"}}]},
                            {"values": [{"userEnteredValue": {"numberValue": 1}}, {"userEnteredValue": {"formulaValue": "=A2*10"}}]}
                        ]}]}]
        })),
    )
    .await;
    assert_eq!(seeded.status, 200, "{}", seeded.text);
    assert_eq!(
        emu.read_values("seeded-sheet", "Data!A1:B2").unwrap(),
        json!([["k", "v"], [1, 10]])
    );
    let dump = raw(&emu, "GET", "/__emulator/spreadsheets/seeded-sheet", None).await;
    assert_eq!(dump.body["title"], "Seeded");

    // Counters.
    raw(
        &emu,
        "GET",
        "/v4/spreadsheets/seeded-sheet/values/Data!A1",
        None,
    )
    .await;
    raw(
        &emu,
        "GET",
        "/v4/spreadsheets/seeded-sheet/values/Data!A2",
        None,
    )
    .await;
    let c = raw(&emu, "GET", "/__emulator/counters", None).await;
    assert_eq!(c.body["counts"]["sheets.spreadsheets.values.get"], 2);
    assert_eq!(c.body["total"], 2);

    // The request log counts each body's bytes.
    let body = json!({"values": [["x", "y"]]});
    let path = "/v4/spreadsheets/seeded-sheet/values/Data!A3?valueInputOption=RAW";
    assert_eq!(raw(&emu, "PUT", path, Some(body.clone())).await.status, 200);
    let log = raw(&emu, "GET", "/__emulator/requests", None).await;
    let sizes: Vec<(&str, u64)> = log
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["methodId"].as_str().unwrap_or(""),
                r["bodyBytes"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    let put = (
        "sheets.spreadsheets.values.update",
        body.to_string().len() as u64,
    );
    assert_eq!(sizes.last(), Some(&put), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|(_, n)| *n == 0),
        "{sizes:?}"
    );

    faults_over_http(&emu).await;
    latency_quota_and_clock_over_http(&emu).await;

    // Unknown control endpoint and reset.
    let u = raw(&emu, "GET", "/__emulator/nope", None).await;
    assert_eq!(u.status, 404);
    raw(&emu, "POST", "/__emulator/reset", None).await;
    assert!(emu.spreadsheet_ids().is_empty());
    assert!(emu.request_counts().is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn state_file_round_trip() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let cfg = Config {
        state_file: Some(path.clone()),
        ..Config::default()
    };
    let emu = EmulatorHandle::start(cfg.clone()).await.unwrap();
    let id = emu.create_spreadsheet("persisted").unwrap();
    emu.set_cells(&id, "A1", vec![vec![json!("2024-01-02"), json!("=A1+1")]])
        .unwrap();
    let s = raw(&emu, "POST", "/__emulator/save", None).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(path.exists());
    emu.set_cells(&id, "C1", vec![vec![json!("after save")]])
        .unwrap();
    emu.shutdown().await; // saves again
    let emu2 = EmulatorHandle::start(cfg).await.unwrap();
    assert_eq!(
        emu2.read_values(&id, "A1:C1").unwrap(),
        json!([[45293, 45294, "after save"]])
    );
    let f = raw(
        &emu2,
        "GET",
        &format!("/v4/spreadsheets/{id}/values/A1"),
        None,
    )
    .await;
    assert_eq!(f.body["values"], json!([["2024-01-02"]]));
    emu2.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_stay_consistent() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("concurrent").unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let emu = emu.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let h = hub(&emu);
            for i in 0..25 {
                let (_, r) = h
                    .spreadsheets()
                    .values_append(
                        ValueRange {
                            values: Some(vec![vec![json!(format!("t{t}")), json!(i)]]),
                            ..Default::default()
                        },
                        &id,
                        "Sheet1!A:B",
                    )
                    .value_input_option("RAW")
                    .doit()
                    .await
                    .expect("append");
                assert_eq!(r.updates.unwrap().updated_cells, Some(2));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let values = emu.read_values(&id, "Sheet1!A:B").unwrap();
    let rows = values.as_array().unwrap();
    assert_eq!(rows.len(), 200, "every append got its own row");
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 2));
    assert_eq!(emu.request_count("sheets.spreadsheets.values.append"), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn drive_changes_feed() {
    let emu = emulator().await;
    let a = emu.create_spreadsheet("A").unwrap();
    let b = emu.create_spreadsheet("B").unwrap();
    let t = raw(&emu, "GET", "/drive/v3/changes/startPageToken", None).await;
    assert_eq!(t.body["kind"], "drive#startPageToken");
    let token = t.body["startPageToken"].as_str().unwrap().to_string();
    let none = raw(
        &emu,
        "GET",
        &format!("/drive/v3/changes?pageToken={token}"),
        None,
    )
    .await;
    assert_eq!(none.body["changes"], json!([]));
    assert_eq!(none.body["newStartPageToken"], token.as_str());
    // Two API writes and a person edit on A, a delete of B: one entry per file.
    let h = hub(&emu);
    for n in 0..2 {
        h.spreadsheets()
            .values_update(
                ValueRange {
                    values: Some(vec![vec![json!(n)]]),
                    ..Default::default()
                },
                &a,
                "A1",
            )
            .value_input_option("RAW")
            .doit()
            .await
            .unwrap();
    }
    emu.set_cells(&a, "B1", vec![vec![json!("p")]]).unwrap();
    raw(&emu, "DELETE", &format!("/drive/v3/files/{b}"), None).await;
    let c = raw(
        &emu,
        "GET",
        &format!("/drive/v3/changes?pageToken={token}"),
        None,
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let changes = c.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["fileId"], a.as_str());
    assert_eq!(changes[0]["removed"], false);
    assert_eq!(changes[0]["file"]["name"], "A");
    assert_eq!(changes[1]["fileId"], b.as_str());
    assert_eq!(changes[1]["removed"], true);
    let next = c.body["newStartPageToken"].as_str().unwrap();
    assert_ne!(next, token);
    let after = raw(
        &emu,
        "GET",
        &format!("/drive/v3/changes?pageToken={next}"),
        None,
    )
    .await;
    assert_eq!(after.body["changes"], json!([]));
    let bad = raw(&emu, "GET", "/drive/v3/changes?pageToken=abc", None).await;
    assert_eq!(bad.status, 400);
    emu.shutdown().await;
}
