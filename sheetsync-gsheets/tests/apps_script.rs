//! `apps-script/sheetsync.gs` under Node (with the stand-in services of
//! `tests/apps_script/harness.js`) sends byte-for-byte the payload the emulator sends for the
//! same person edit, and both are accepted by the receiver; in journal mode it appends the
//! same journal rows (`docs/journal.md`) as the emulator's journal trigger.
//!
//! Needs `node` (v18+) on the PATH, or its path in `SHEETSYNC_NODE`; without it these tests
//! fail with a message saying so.
#![cfg(feature = "webhook")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use sheetsync_core::{Error, ErrorKind};
use sheetsync_emulator::journal::JOURNAL_TITLE;
use sheetsync_emulator::{Config, EmulatorHandle, JournalSpec, PersonEdit, TriggerSpec};
use sheetsync_gsheets::webhook::{
    verify, ChangeType, WebhookConfig, WebhookHandler, WebhookPayload, WebhookReceiver,
};

const SECRET: &str = "s3cret-shared-with-apps-script-\u{e9}";
const TZ: &str = "America/New_York";

/// One request as it arrived on the wire.
#[derive(Debug, Clone)]
struct Captured {
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("header {name} missing"))
            .to_string()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    fn verifies(&self) -> bool {
        verify(
            SECRET.as_bytes(),
            &self.header("x-sheetsync-timestamp"),
            &self.body,
            &self.header("x-sheetsync-signature"),
        )
    }
}

#[derive(Clone)]
struct Server {
    receiver: WebhookReceiver,
    captured: Arc<Mutex<Vec<Captured>>>,
    handled: Arc<Mutex<Vec<WebhookPayload>>>,
    url: String,
}

async fn capture(State(s): State<Server>, headers: HeaderMap, body: Bytes) -> Response {
    s.captured.lock().unwrap().push(Captured {
        headers: headers.clone(),
        body: body.clone(),
    });
    let mut req = Request::post("/hook").body(Body::from(body)).unwrap();
    *req.headers_mut() = headers;
    s.receiver.handle(req).await
}

/// A receiver on 127.0.0.1:0 that records the raw requests; the handler fails its first
/// `fail_first` calls.
async fn start_server(fail_first: usize) -> Server {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0usize));
    let h = handled.clone();
    let handler: WebhookHandler = Arc::new(move |p: WebhookPayload| {
        let mut n = calls.lock().unwrap();
        *n += 1;
        if *n <= fail_first {
            return Err(Error::new(ErrorKind::Connection, "engine busy"));
        }
        h.lock().unwrap().push(p);
        Ok(())
    });
    let receiver = WebhookReceiver::new(WebhookConfig::new(SECRET), handler).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = Server {
        receiver,
        captured: Arc::new(Mutex::new(Vec::new())),
        handled,
        url,
    };
    let app = Router::new()
        .route("/hook", post(capture))
        .with_state(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    server
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the harness with a scenario; returns its report (script errors included).
async fn run_script_allowing_errors(mut scenario: Value) -> Value {
    if scenario["script"].is_null() {
        scenario["script"] = json!(manifest_dir()
            .join("apps-script/sheetsync.gs")
            .display()
            .to_string());
    }
    let harness = manifest_dir().join("tests/apps_script/harness.js");
    tokio::task::spawn_blocking(move || {
        let node = std::env::var("SHEETSYNC_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(&node)
            .arg(&harness)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "tests/apps_script.rs runs apps-script/sheetsync.gs under Node.js, but `{node}` \
                     could not be started ({e}). Install Node.js 18 or newer, or set SHEETSYNC_NODE \
                     to the node binary."
                )
            });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scenario.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "harness failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "harness printed no JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    })
    .await
    .unwrap()
}

/// Runs the harness; the script must not throw.
async fn run_script(scenario: Value) -> Value {
    let report = run_script_allowing_errors(scenario).await;
    assert_eq!(report["errors"], json!([]), "script errors: {report}");
    report
}

/// The emulator's sheet as `Range.getValues()` would return it: stored values rendered
/// UNFORMATTED (dates as serials), with date/time-formatted cells marked `{"date": serial}`
/// (the stand-in turns those into `Date` objects in the spreadsheet's time zone).
fn grid_of(emu: &EmulatorHandle, id: &str, sheet: usize) -> Value {
    let ss = emu.spreadsheet(id).expect("spreadsheet");
    let title = ss.sheets[sheet].props.title.clone();
    let values = emu
        .read_values(id, &format!("'{title}'!A1:Z100"))
        .expect("read");
    let grid = &ss.sheets[sheet].grid;
    let rows: Vec<Value> = values
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(r, row)| {
            Value::Array(
                row.as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        let temporal = grid
                            .get(r as u32, c as u32)
                            .and_then(|cell| cell.format.as_ref())
                            .is_some_and(|f| f.kind.is_temporal());
                        if temporal && v.is_number() {
                            json!({ "date": v })
                        } else {
                            v.clone()
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    let props = &ss.sheets[sheet].props;
    json!({"sheetId": props.sheet_id, "name": title, "rows": rows,
           "maxRows": props.row_count, "maxColumns": props.column_count})
}

/// The emulator's tabs as the harness takes them, its journal tab left out (the script keeps
/// its own).
fn data_tabs(emu: &EmulatorHandle, id: &str) -> Vec<Value> {
    let ss = emu.spreadsheet(id).expect("spreadsheet");
    (0..ss.sheets.len())
        .filter(|&i| ss.sheets[i].props.title != JOURNAL_TITLE)
        .map(|i| grid_of(emu, id, i))
        .collect()
}

/// A webhook-mode run on the emulator's first tab.
fn scenario(emu: &EmulatorHandle, id: &str, url: &str, calls: Value) -> Value {
    json!({
        "spreadsheetId": id,
        "timeZone": TZ,
        "activeSheet": 0,
        "sheets": [grid_of(emu, id, 0)],
        "properties": {"SHEETSYNC_MODE": "webhook", "SHEETSYNC_URL": url, "SHEETSYNC_SECRET": SECRET},
        "deliver": true,
        "calls": calls,
    })
}

async fn new_spreadsheet(emu: &EmulatorHandle) -> String {
    let id = emu
        .create_spreadsheet_from(&json!({
            "properties": {"title": "Parity", "timeZone": TZ},
            "sheets": [{"properties": {"sheetId": 1234, "title": "Orders"}}],
        }))
        .unwrap();
    seed_orders(emu, &id);
    id
}

/// Orders' header and two keys, seeded before any trigger exists, so nothing is delivered.
fn seed_orders(emu: &EmulatorHandle, id: &str) {
    emu.set_cells(
        id,
        "Orders!A1",
        vec![
            ["id", "sku", "qty", "price", "active", "day", "at", "note"]
                .map(|s| json!(s))
                .to_vec(),
            vec![json!("1")],
            vec![json!("2")],
        ],
    )
    .unwrap();
}

/// Replaces the Apps Script's `eventId` and `timestamp` with the emulator's, textually.
fn with_ids_of(apps: &str, apps_p: &WebhookPayload, emu_p: &WebhookPayload) -> String {
    let swap = |s: &str, from: &str, to: &str| {
        assert_eq!(s.matches(from).count(), 1, "{from} once in {s}");
        s.replacen(from, to, 1)
    };
    let s = swap(
        apps,
        &format!("\"eventId\":\"{}\",", apps_p.event_id),
        &format!("\"eventId\":\"{}\",", emu_p.event_id),
    );
    swap(
        &s,
        &format!("\"timestamp\":{},", apps_p.timestamp),
        &format!("\"timestamp\":{},", emu_p.timestamp),
    )
}

fn without_ids(body: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let o = v.as_object_mut().unwrap();
    assert!(o.remove("eventId").is_some() && o.remove("timestamp").is_some());
    v
}

/// Asserts that two deliveries carry the same payload apart from `eventId` and `timestamp`,
/// byte for byte (key order included), and that both verify.
fn assert_same_payload(emu_req: &Captured, apps_req: &Captured) {
    assert!(emu_req.verifies(), "the emulator's delivery verifies");
    assert!(apps_req.verifies(), "the Apps Script's delivery verifies");
    for r in [emu_req, apps_req] {
        let p = WebhookPayload::from_json(&r.body).expect("valid payload");
        assert_eq!(
            r.header("x-sheetsync-timestamp"),
            p.timestamp_secs().to_string()
        );
        assert_eq!(
            r.header("content-type")
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_ascii_lowercase(),
            "application/json"
        );
    }
    assert_eq!(without_ids(&emu_req.body), without_ids(&apps_req.body));
    let emu_p = WebhookPayload::from_json(&emu_req.body).unwrap();
    let apps_p = WebhookPayload::from_json(&apps_req.body).unwrap();
    assert_ne!(emu_p.event_id, apps_p.event_id);
    // Key order and number rendering: the script's own bytes, with the emulator's id and
    // timestamp put in, are the emulator's bytes ...
    assert_eq!(
        with_ids_of(&apps_req.text(), &apps_p, &emu_p),
        emu_req.text()
    );
    // ... and re-serialising the script's payload (contract order) gives them too.
    let mut re = apps_p.clone();
    re.event_id = emu_p.event_id.clone();
    re.timestamp = emu_p.timestamp;
    assert_eq!(String::from_utf8(re.to_json()).unwrap(), emu_req.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_script_edit_payload_equals_the_emulators() {
    let server = start_server(0).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = new_spreadsheet(&emu).await;
    emu.add_trigger(
        &id,
        TriggerSpec {
            url: server.url.clone(),
            secret: SECRET.into(),
            sheet_id: None,
        },
    )
    .unwrap();

    // A person pastes B2:I3: leading-zero text, a number, a decimal, a boolean, a date, a
    // date-time, an empty cell, an error formula, non-ASCII text, and one column past the
    // header.
    emu.edit_as(
        &id,
        "alice@example.com",
        PersonEdit::SetCells {
            range: "Orders!B2".into(),
            values: vec![
                vec![
                    json!("'007"),
                    json!("42"),
                    json!("19.99"),
                    json!("TRUE"),
                    json!("2020-01-01"),
                    json!("2024-02-29 13:45:30"),
                    json!(""),
                    json!("extra"),
                ],
                vec![
                    json!("'0042"),
                    json!("=1/0"),
                    json!("-0.5"),
                    json!("FALSE"),
                    json!("1999-12-31"),
                    json!("13:45"),
                    json!("Gr\u{f6}\u{df}e \u{2713} \"quoted\" \\ tab\t"),
                    json!(""),
                ],
            ],
        },
    )
    .unwrap();
    let log = emu.wait_for_deliveries(1, Duration::from_secs(30)).await;
    assert_eq!(log.len(), 1);
    assert!(log[0].ok, "{log:?}");
    let emu_req = server.captured.lock().unwrap()[0].clone();
    let emu_p = WebhookPayload::from_json(&emu_req.body).unwrap();
    assert_eq!(emu_p.change_type, ChangeType::Edit);
    let range = emu_p.range.expect("EDIT range");
    assert_eq!(
        (
            range.start_row,
            range.end_row,
            range.start_column,
            range.end_column
        ),
        (2, 3, 2, 9)
    );
    // The rendering the contract documents.
    assert_eq!(
        emu_p.rows[0].values,
        vec![
            json!(1),
            json!("007"),
            json!(42),
            json!(19.99),
            json!(true),
            json!(43831),
            emu_p.rows[0].values[6].clone(),
            json!(""),
            json!("extra")
        ]
    );
    assert!(emu_p.rows[0].values[6].as_f64().unwrap().fract() > 0.0);
    assert_eq!(emu_p.rows[1].values[2], json!("#DIV/0!"));

    // The same edit through the Apps Script.
    let report = run_script(scenario(
        &emu,
        &id,
        &server.url,
        json!([{"fn": "sheetsyncOnEdit", "event": {
            "sheet": 0, "user": "alice@example.com",
            "range": {"row": range.start_row, "column": range.start_column,
                      "numRows": range.end_row - range.start_row + 1,
                      "numColumns": range.end_column - range.start_column + 1}}}]),
    ))
    .await;
    let reqs = report["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1, "{report}");
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["contentType"], "application/json");
    assert_eq!(reqs[0]["muteHttpExceptions"], true);
    assert_eq!(reqs[0]["status"], 200, "{report}");
    let apps_req = server.captured.lock().unwrap()[1].clone();
    assert_eq!(
        reqs[0]["payload"],
        apps_req.text(),
        "what the script sent arrived"
    );

    assert_same_payload(&emu_req, &apps_req);
    let apps_p = WebhookPayload::from_json(&apps_req.body).unwrap();
    assert_eq!(apps_p.event_id.len(), 36, "Utilities.getUuid()");

    // Both were accepted by the receiver, once each.
    let handled = server.handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 2);
    assert_eq!(handled[0].rows, handled[1].rows);
    assert_eq!(server.receiver.stats().accepted, 2);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_script_change_payloads_equal_the_emulators() {
    let server = start_server(0).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = new_spreadsheet(&emu).await;
    emu.add_trigger(
        &id,
        TriggerSpec {
            url: server.url.clone(),
            secret: SECRET.into(),
            sheet_id: None,
        },
    )
    .unwrap();
    let ops: [(&str, &str); 3] = [
        ("INSERT_ROW", "INSERT_ROW"),
        ("REMOVE_ROW", "REMOVE_ROW"),
        ("OTHER", "INSERT_COLUMN"),
    ];
    for (n, (expected, apps_change)) in ops.into_iter().enumerate() {
        match expected {
            "INSERT_ROW" => emu.insert_rows(&id, "Orders", 3, 2).unwrap(),
            "REMOVE_ROW" => emu.delete_rows(&id, "Orders", 3, 2).unwrap(),
            _ => emu.move_rows(&id, "Orders", 2, 1, 4).unwrap(),
        }
        let log = emu
            .wait_for_deliveries(n + 1, Duration::from_secs(30))
            .await;
        assert_eq!(log.len(), n + 1);
        let emu_req = server.captured.lock().unwrap().last().unwrap().clone();
        let report = run_script(scenario(
            &emu,
            &id,
            &server.url,
            json!([{"fn": "sheetsyncOnChange",
                    "event": {"changeType": apps_change, "user": "person@example.com"}}]),
        ))
        .await;
        assert_eq!(report["requests"][0]["status"], 200, "{report}");
        let apps_req = server.captured.lock().unwrap().last().unwrap().clone();
        let p = WebhookPayload::from_json(&apps_req.body).unwrap();
        assert_eq!(p.change_type.as_str(), expected);
        assert!(p.range.is_none() && p.rows.is_empty());
        assert_same_payload(&emu_req, &apps_req);
    }
    // The script ignores EDIT (onEdit reports it) and FORMAT (no value changes) changes.
    let report = run_script(scenario(
        &emu,
        &id,
        &server.url,
        json!([{"fn": "sheetsyncOnChange", "event": {"changeType": "EDIT"}},
               {"fn": "sheetsyncOnChange", "event": {"changeType": "FORMAT"}}]),
    ))
    .await;
    assert_eq!(report["requests"], json!([]));
    assert_eq!(server.receiver.stats().accepted, 6);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_script_retries_when_the_receiver_answers_503() {
    let server = start_server(1).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = new_spreadsheet(&emu).await;
    let report = run_script(scenario(
        &emu,
        &id,
        &server.url,
        json!([{"fn": "sheetsyncOnEdit", "event": {"sheet": 0, "user": "",
                "range": {"row": 2, "column": 1, "numRows": 1, "numColumns": 1}}}]),
    ))
    .await;
    let statuses: Vec<&Value> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!(503), &json!(200)], "{report}");
    assert_eq!(report["sleeps"], json!([1000]));
    let reqs = server.captured.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "a retry resends the same event");
    let handled = server.handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 1, "applied once");
    assert_eq!(handled[0].user, "");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_script_reports_an_oversized_edit_as_other() {
    let server = start_server(0).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = new_spreadsheet(&emu).await;
    let mut sc = scenario(
        &emu,
        &id,
        &server.url,
        json!([{"fn": "sheetsyncOnEdit", "event": {"sheet": 0, "user": "",
                "range": {"row": 1, "column": 1, "numRows": 3, "numColumns": 2}}}]),
    );
    sc["properties"]["SHEETSYNC_MAX_ROWS"] = json!("2");
    let report = run_script(sc).await;
    assert_eq!(report["requests"][0]["status"], 200, "{report}");
    let handled = server.handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].change_type, ChangeType::Other);
    assert!(handled[0].range.is_none() && handled[0].rows.is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_script_setup_and_install() {
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = new_spreadsheet(&emu).await;
    let mut sc = scenario(
        &emu,
        &id,
        "unused",
        json!([
            {"fn": "setup", "args": ["https://sync.example.com/hooks/sheetsync", "k3y"]},
            {"fn": "install"},
            {"fn": "install"},
        ]),
    );
    sc["properties"] = json!({});
    let report = run_script(sc).await;
    assert_eq!(
        report["properties"],
        json!({"SHEETSYNC_MODE": "webhook", "SHEETSYNC_URL": "https://sync.example.com/hooks/sheetsync", "SHEETSYNC_SECRET": "k3y"})
    );
    assert!(
        script_journal(&report).is_none(),
        "webhook mode makes no journal"
    );
    // Installing twice leaves one trigger of each kind.
    assert_eq!(
        report["triggers"],
        json!([
            {"fn": "sheetsyncOnEdit", "source": id, "event": "ON_EDIT"},
            {"fn": "sheetsyncOnChange", "source": id, "event": "ON_CHANGE"},
        ])
    );

    // In webhook mode without settings, install refuses and the handlers send nothing.
    let mut sc = scenario(
        &emu,
        &id,
        "unused",
        json!([{"fn": "install"}, {"fn": "setup", "args": ["ftp://x", "k"]}]),
    );
    sc["properties"] = json!({"SHEETSYNC_MODE": "webhook"});
    let report = run_script_allowing_errors(sc).await;
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("run setup(url, secret) first"));
    assert!(errors[1]["error"]
        .as_str()
        .unwrap()
        .contains("url must be an http(s) URL"));
    assert_eq!(report["triggers"], json!([]));

    let mut sc = scenario(
        &emu,
        &id,
        "unused",
        json!([{"fn": "sheetsyncOnEdit", "event": {"sheet": 0, "user": "",
                "range": {"row": 2, "column": 1, "numRows": 1, "numColumns": 1}}}]),
    );
    sc["properties"] = json!({"SHEETSYNC_MODE": "webhook"});
    let report = run_script(sc).await;
    assert_eq!(report["requests"], json!([]));
    assert!(report["logs"][0][1]
        .as_str()
        .unwrap()
        .contains("not set up"));
    emu.shutdown().await;

    // The script carries no secret of its own.
    let src = std::fs::read_to_string(manifest_dir().join("apps-script/sheetsync.gs")).unwrap();
    assert!(src.contains("getScriptProperties()"));
    assert!(!src.contains("k3y") && !src.contains(SECRET));
}

#[test]
fn a_missing_node_is_a_clear_failure_not_a_skip() {
    // The harness must be present next to this file, and the node binary resolvable.
    assert!(manifest_dir()
        .join("tests/apps_script/harness.js")
        .is_file());
    let node = std::env::var("SHEETSYNC_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(&node)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "Node.js is required for tests/apps_script.rs: `{node} --version` failed ({e}). \
             Install Node.js 18 or newer, or set SHEETSYNC_NODE to the node binary."
            )
        });
    let v = String::from_utf8_lossy(&out.stdout);
    let major: u32 = v
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 18, "Node.js 18+ is required (fetch), found {v}");
}

/// The script `sheetsync apps-script` prints stores the webhook URL, asks for the secret in
/// the Script Properties (it never holds it), and then sets up like `setup(url, secret)`.
#[tokio::test]
async fn the_generated_configure_step_needs_the_secret_in_script_properties() {
    let url = "https://sync.example.com/webhook";
    let dir = std::env::temp_dir().join(format!("sheetsync-gs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("code.gs");
    std::fs::write(&path, sheetsync_gsheets::apps_script_configured(url)).unwrap();
    let scenario = |properties: Value| {
        json!({
            "script": path.display().to_string(),
            "spreadsheetId": "generated",
            "timeZone": "UTC",
            "activeSheet": 0,
            "sheets": [{"sheetId": 0, "name": "Sheet1", "rows": []}],
            "properties": properties,
            "calls": [{"fn": "sheetsyncConfigure"}],
        })
    };
    let without = run_script_allowing_errors(scenario(json!({}))).await;
    assert!(
        without["errors"]
            .to_string()
            .contains("add the Script Property SHEETSYNC_SECRET"),
        "{without}"
    );
    let with = run_script(scenario(json!({"SHEETSYNC_SECRET": "s3cret"}))).await;
    assert_eq!(with["properties"]["SHEETSYNC_URL"], json!(url), "{with}");
    assert_eq!(with["properties"]["SHEETSYNC_SECRET"], json!("s3cret"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- journal mode -------------------------------------------------------------------------

/// The most characters (UTF-16 code units) of one journal entry.
const MAX_ENTRY_CHARS: usize = 45_000;

/// The script's journal tab in a harness report.
fn script_journal(report: &Value) -> Option<Value> {
    report["sheets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == JOURNAL_TITLE)
        .cloned()
}

/// A journal-mode run (no Script Properties) on the emulator's tabs and the script's own
/// journal tab from its previous run, if any.
fn journal_scenario(emu: &EmulatorHandle, id: &str, journal: Option<Value>, calls: Value) -> Value {
    let mut sheets = data_tabs(emu, id);
    sheets.extend(journal);
    json!({
        "spreadsheetId": id,
        "timeZone": TZ,
        "activeSheet": 0,
        "sheets": sheets,
        "properties": {},
        "calls": calls,
    })
}

/// Rows as `values.get` returns them: trailing empty cells and rows trimmed.
fn trimmed(rows: &Value) -> Vec<Value> {
    let empty = |v: &Value| v.is_null() || v == "";
    let mut out: Vec<Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.as_array().cloned().unwrap_or_default();
            while r.last().is_some_and(empty) {
                r.pop();
            }
            Value::Array(r)
        })
        .collect();
    while out.last().is_some_and(|r| r == &json!([])) {
        out.pop();
    }
    out
}

/// Journal rows with the journal id and every entry's `eventId` and `timestamp` replaced
/// (textually: the rest stays byte for byte), and each entry's (eventId, timestamp, parsed).
struct Journal {
    rows: Vec<Value>,
    events: Vec<(String, u64, WebhookPayload)>,
}

/// Row by row, so that a difference prints the row, not the whole journal.
fn assert_same_rows(apps: &[Value], emu: &[Value]) {
    let short = |v: &Value| v.to_string().chars().take(400).collect::<String>();
    for (i, (a, e)) in apps.iter().zip(emu).enumerate() {
        assert!(
            a == e,
            "row {}: the script wrote\n{}\nthe emulator\n{}",
            i + 1,
            short(a),
            short(e)
        );
    }
    assert_eq!(apps.len(), emu.len(), "rows: the script's, the emulator's");
}

fn normalised(mut rows: Vec<Value>) -> Journal {
    let jid = rows[0][2].as_str().expect("C1 holds the journal id");
    assert_eq!(jid.len(), 36, "a UUID: {jid}");
    rows[0][2] = json!("<journal id>");
    let mut events = Vec::new();
    for row in rows.iter_mut().skip(1) {
        let text = row[1].as_str().expect("B holds the entry").to_string();
        assert!(
            text.encode_utf16().count() <= MAX_ENTRY_CHARS,
            "{}",
            text.len()
        );
        let p = WebhookPayload::from_json(text.as_bytes()).expect("an entry is a v1 payload");
        let ids = format!(
            "\"eventId\":\"{}\",\"timestamp\":{},",
            p.event_id, p.timestamp
        );
        assert_eq!(text.matches(&ids).count(), 1, "{text}");
        row[1] = json!(text.replacen(&ids, "\"eventId\":\"<id>\",\"timestamp\":0,", 1));
        events.push((p.event_id.clone(), p.timestamp, p));
    }
    Journal { rows, events }
}

/// Orders (seeded like [`new_spreadsheet`]), a scratch tab, then Customers.
async fn three_tab_spreadsheet(emu: &EmulatorHandle) -> String {
    let id = emu
        .create_spreadsheet_from(&json!({
            "properties": {"title": "Parity", "timeZone": TZ},
            "sheets": [{"properties": {"sheetId": 1234, "title": "Orders"}},
                       {"properties": {"sheetId": 99, "title": "sheetsync-scratch-1234", "hidden": true}},
                       {"properties": {"sheetId": 77, "title": "Customers"}}],
        }))
        .unwrap();
    seed_orders(emu, &id);
    emu.set_cells(&id, "Customers!A1", vec![vec![json!("id"), json!("name")]])
        .unwrap();
    emu.set_cells(&id, "sheetsync-scratch-1234!A1", vec![vec![json!("copy")]])
        .unwrap();
    id
}

fn on_edit(sheet: usize, row: u32, column: u32, num_rows: u32, num_columns: u32) -> Value {
    json!([{"fn": "sheetsyncOnEdit", "event": {"sheet": sheet, "user": "alice@example.com",
        "range": {"row": row, "column": column, "numRows": num_rows, "numColumns": num_columns}}}])
}

/// The same person edits through the emulator's journal trigger and through the script in
/// journal mode (each run seeing the tabs as the edit left them): the same journal rows, seqs
/// and entries byte for byte, apart from ids and times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_mode_appends_the_rows_the_emulators_journal_trigger_appends() {
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = three_tab_spreadsheet(&emu).await;
    emu.add_journal_trigger(&id, JournalSpec::default())
        .unwrap();
    // ~3,500 UTF-16 units a row (7,000 UTF-8 bytes, 2,800 chars): a 30-row paste is split.
    let note = |i: usize| format!("{i}: {}", "\u{e9}\u{2713}\u{1d11e}x".repeat(700));
    let paste: Vec<Vec<Value>> = (0..30)
        .map(|i| vec![json!("2024-02-29 13:45:30"), json!(note(i))])
        .collect();
    let customers = 2; // its index among the tabs the script sees
    let steps: Vec<(PersonEdit, Value)> = vec![
        (
            PersonEdit::SetCells {
                range: "Orders!C2".into(),
                values: vec![vec![json!("7")]],
            },
            on_edit(0, 2, 3, 1, 1),
        ),
        (
            PersonEdit::SetCells {
                range: "Orders!G4".into(),
                values: paste,
            },
            on_edit(0, 4, 7, 30, 2),
        ),
        (
            PersonEdit::SetCells {
                range: "Customers!B2".into(),
                values: vec![vec![json!("x".repeat(MAX_ENTRY_CHARS + 1_000))]],
            },
            on_edit(customers, 2, 2, 1, 1),
        ),
        (
            PersonEdit::InsertRows {
                sheet: "Orders".into(),
                before: 3,
                count: 1,
            },
            json!([{"fn": "sheetsyncOnChange",
                    "event": {"changeType": "INSERT_ROW", "user": "alice@example.com"}}]),
        ),
    ];
    let mut journal = None;
    for (edit, calls) in steps {
        emu.edit_as(&id, "alice@example.com", edit).unwrap();
        let report = run_script(journal_scenario(&emu, &id, journal.take(), calls)).await;
        assert_eq!(
            report["locks"],
            json!([["tryLock", 10000], ["flush"], ["releaseLock"]]),
            "{report}"
        );
        journal = script_journal(&report);
        assert!(journal.is_some(), "{report}");
    }
    let journal = journal.unwrap();
    let emu_rows = emu
        .read_values(&id, &format!("'{JOURNAL_TITLE}'!A1:D"))
        .unwrap();
    let emu_j = normalised(emu_rows.as_array().unwrap().clone());
    let apps_j = normalised(trimmed(&journal["rows"]));
    assert_same_rows(&apps_j.rows, &emu_j.rows);

    // What both wrote: 1 edit, the paste in k ≥ 3 entries, an OTHER, INSERT_ROW per tab.
    for j in [&emu_j, &apps_j] {
        let n = j.events.len();
        let k = n - 4;
        assert!(k >= 3, "the paste is split: {n} entries");
        let seqs: Vec<Value> = j.rows[1..].iter().map(|r| r[0].clone()).collect();
        assert_eq!(seqs, (1..=n).map(|s| json!(s)).collect::<Vec<_>>());
        assert_eq!(j.rows[0], json!(["seq", "entry", "<journal id>", n + 1]));
        let paste = &j.events[1..=k];
        assert!(paste.iter().all(|e| e.0 == paste[0].0 && e.1 == paste[0].1));
        let ranges: Vec<(u32, u32)> = paste
            .iter()
            .map(|e| e.2.range.map(|r| (r.start_row, r.end_row)).unwrap())
            .collect();
        assert_eq!(ranges[0].0, 4);
        assert_eq!(ranges[k - 1].1, 33);
        assert!(
            ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1),
            "{ranges:?}"
        );
        let other = &j.events[k + 1].2;
        assert_eq!(
            (other.change_type, other.sheet_name.as_str()),
            (ChangeType::Other, "Customers")
        );
        let tabs: Vec<&str> = j.events[k + 2..]
            .iter()
            .map(|e| e.2.sheet_name.as_str())
            .collect();
        assert_eq!(
            tabs,
            ["Orders", "Customers"],
            "every tab but the scratch tab and the journal"
        );
        assert_ne!(j.events[k + 2].0, j.events[k + 3].0);
        assert_eq!(j.events[k + 2].1, j.events[k + 3].1);
    }
    // The script's tab is what docs/journal.md says; so is the emulator's.
    assert_eq!(journal["hidden"], true);
    assert_eq!(journal["maxColumns"], 4);
    assert_eq!(journal["protections"][0]["warningOnly"], true);
    assert_eq!(journal["protections"].as_array().unwrap().len(), 1);
    let ss = emu.spreadsheet(&id).unwrap();
    let tab = ss.sheets.last().unwrap();
    assert_eq!(
        (tab.props.title.as_str(), tab.props.hidden),
        (JOURNAL_TITLE, true)
    );
    emu.shutdown().await;
}

/// A one-tab run (journal mode unless `properties` say otherwise) with an existing journal.
fn journal_run(properties: Value, journal_rows: Value, max_rows: u32, calls: Value) -> Value {
    json!({
        "spreadsheetId": "ss-journal",
        "timeZone": "UTC",
        "sheets": [{"sheetId": 0, "name": "Items", "rows": [["id", "name"], [1, "bolt"]]},
                   {"sheetId": 5, "name": JOURNAL_TITLE, "rows": journal_rows,
                    "maxRows": max_rows, "maxColumns": 4, "hidden": true}],
        "properties": properties,
        "calls": calls,
    })
}

#[tokio::test]
async fn journal_mode_is_the_default_and_install_makes_the_tab_without_settings() {
    let sc = json!({
        "spreadsheetId": "ss-install", "timeZone": "UTC",
        "sheets": [{"sheetId": 0, "name": "Items", "rows": [["id"]]}],
        "properties": {},
        "calls": [{"fn": "install"}, {"fn": "install"}],
    });
    let report = run_script(sc.clone()).await;
    assert_eq!(report["triggers"].as_array().unwrap().len(), 2, "{report}");
    let sheets = report["sheets"].as_array().unwrap();
    assert_eq!(sheets.len(), 2, "one journal tab, made once");
    let j = &sheets[1];
    assert_eq!(j["name"], JOURNAL_TITLE);
    assert_eq!(
        (&j["hidden"], &j["maxRows"], &j["maxColumns"]),
        (&json!(true), &json!(1000), &json!(4))
    );
    let header = &j["rows"][0];
    assert_eq!(
        (&header[0], &header[1], &header[3]),
        (&json!("seq"), &json!("entry"), &json!(1))
    );
    assert_eq!(header[2].as_str().unwrap().len(), 36);
    assert_eq!(j["protections"].as_array().unwrap().len(), 1);
    assert_eq!(j["protections"][0]["warningOnly"], true);
    assert!(j["protections"][0]["description"]
        .as_str()
        .unwrap()
        .contains("Do not edit"));
    assert_eq!(report["requests"], json!([]));

    // Edits of sheetsync's own tabs are not reported.
    let mut own = sc.clone();
    own["sheets"] = json!([{"sheetId": 0, "name": "Items", "rows": [["id"]]},
                           {"sheetId": 9, "name": "sheetsync-scratch-0", "rows": [["x"]]}]);
    own["calls"] = json!([{"fn": "install"},
        {"fn": "sheetsyncOnEdit", "event": {"sheet": 1, "range": {"row": 1, "column": 1, "numRows": 1, "numColumns": 1}}},
        {"fn": "sheetsyncOnEdit", "event": {"sheet": 2, "range": {"row": 1, "column": 1, "numRows": 1, "numColumns": 1}}}]);
    let report = run_script(own).await;
    let rows = &script_journal(&report).unwrap()["rows"];
    assert_eq!(rows.as_array().unwrap().len(), 1, "{report}");

    // setup() switches to webhook mode, setupJournal() back.
    let mut sc2 = sc.clone();
    sc2["calls"] = json!([{"fn": "setup", "args": ["https://sync.example.com/h", "k"]},
                          {"fn": "setupJournal"}]);
    let report = run_script(sc2).await;
    assert_eq!(report["properties"]["SHEETSYNC_MODE"], "journal");
    // An unknown mode: install refuses, a handler logs and writes nothing.
    let mut sc3 = sc;
    sc3["properties"] = json!({"SHEETSYNC_MODE": "pigeon"});
    sc3["calls"] =
        json!([{"fn": "install"}, {"fn": "sheetsyncOnChange", "event": {"changeType": "OTHER"}}]);
    let report = run_script_allowing_errors(sc3).await;
    assert!(report["errors"][0]["error"]
        .as_str()
        .unwrap()
        .contains("must be journal or webhook"));
    assert_eq!(report["errors"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report["logs"][0][1]
            .as_str()
            .unwrap()
            .contains("edit not reported"),
        "{report}"
    );
    assert!(script_journal(&report).is_none());
}

/// The run left the journal as it was and logged why.
fn assert_nothing_written(report: &Value, rows: &Value, why: &str) {
    assert_eq!(&script_journal(report).unwrap()["rows"], rows);
    let log = report["logs"][0][1].as_str().unwrap_or_default();
    assert!(log.contains(why), "{report}");
}

#[tokio::test]
async fn journal_appends_wait_for_the_lock_stop_when_full_and_grow_the_tab() {
    let rows = json!([["seq", "entry", "jid", 3], [1, "{}"], [2, "{}"]]);
    let edit = json!([{"fn": "sheetsyncOnEdit", "event": {"sheet": 0, "user": "",
        "range": {"row": 2, "column": 2, "numRows": 1, "numColumns": 1}}}]);
    // Another execution holds the lock: nothing is written.
    let mut sc = journal_run(json!({}), rows.clone(), 3, edit.clone());
    sc["lockBusy"] = json!(true);
    assert_nothing_written(&run_script(sc).await, &rows, "lock was busy");
    // Full (SHEETSYNC_JOURNAL_MAX_ROWS = 2): nothing is written.
    let sc = journal_run(
        json!({"SHEETSYNC_JOURNAL_MAX_ROWS": "2"}),
        rows.clone(),
        3,
        edit.clone(),
    );
    assert_nothing_written(&run_script(sc).await, &rows, "the journal holds 2 entries");
    // Room (the default cap) but no free row: the tab grows, the entry gets seq D1.
    let report = run_script(journal_run(json!({}), rows, 3, edit)).await;
    let j = script_journal(&report).unwrap();
    assert_eq!(j["maxRows"], 4);
    assert_eq!(j["rows"][0][3], 4);
    assert_eq!(j["rows"][3][0], 3);
    let entry = WebhookPayload::from_json(j["rows"][3][1].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(entry.rows[0].values, vec![json!(1), json!("bolt")]);
    assert_eq!(report["logs"], json!([]));
}

/// In webhook mode too, onChange reports every tab but sheetsync's own (each payload its own
/// event, so the receiver drops none as a duplicate); the changed tab's equals the emulator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_on_change_reports_every_tab_but_sheetsyncs_own() {
    let server = start_server(0).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = three_tab_spreadsheet(&emu).await;
    let spec = TriggerSpec {
        url: server.url.clone(),
        secret: SECRET.into(),
        sheet_id: None,
    };
    emu.add_trigger(&id, spec).unwrap();
    emu.insert_rows(&id, "Orders", 3, 1).unwrap();
    let log = emu.wait_for_deliveries(1, Duration::from_secs(30)).await;
    assert_eq!(log.len(), 1);
    let emu_req = server.captured.lock().unwrap()[0].clone();
    let mut sc = journal_scenario(
        &emu,
        &id,
        None,
        json!([{"fn": "sheetsyncOnChange", "event": {"changeType": "INSERT_ROW", "user": "person@example.com"}}]),
    );
    sc["properties"] = json!({"SHEETSYNC_MODE": "webhook", "SHEETSYNC_URL": server.url, "SHEETSYNC_SECRET": SECRET});
    sc["deliver"] = json!(true);
    let report = run_script(sc).await;
    assert_eq!(report["requests"].as_array().unwrap().len(), 2, "{report}");
    let reqs = server.captured.lock().unwrap().clone();
    assert_same_payload(&emu_req, &reqs[1]);
    let customers = WebhookPayload::from_json(&reqs[2].body).unwrap();
    assert_eq!(
        (customers.sheet_name.as_str(), customers.change_type),
        ("Customers", ChangeType::InsertRow)
    );
    assert_eq!(
        server.receiver.stats().accepted,
        3,
        "no payload dropped as a duplicate"
    );
    emu.shutdown().await;
}
