//! Journal triggers (`docs/journal.md`): a person edit appends its payload to the hidden
//! `_sheetsync_journal` tab inside the edit's lock, with the tab's own seq counter; the append
//! moves the Drive version and fires no trigger; structural changes write one entry per tab; a
//! full journal takes nothing more until the reader trims it.

mod common;

use std::time::Duration;

use common::{emulator, next, raw, receiver, Hook};
use serde_json::{json, Value};
use sheetsync_emulator::journal::{journal_index, JOURNAL_TITLE};
use sheetsync_emulator::{EditTrigger, EmulatorHandle, JournalSpec, PersonEdit, TriggerSpec};
use tokio::sync::mpsc::UnboundedReceiver;

/// A spreadsheet with the given tabs (title, sheet id), each with a header row, seeded before
/// any trigger exists.
fn spreadsheet(emu: &EmulatorHandle, tabs: &[(&str, i32)]) -> String {
    let sheets: Vec<Value> = tabs
        .iter()
        .map(|(title, sid)| json!({"properties": {"sheetId": sid, "title": title}}))
        .collect();
    let id = emu
        .create_spreadsheet_from(&json!({"properties": {"title": "journal"}, "sheets": sheets}))
        .unwrap();
    for (title, _) in tabs {
        let header = vec![json!("id"), json!(format!("{title} name"))];
        emu.set_cells(&id, &format!("'{title}'!A1"), vec![header])
            .unwrap();
    }
    id
}

/// A request that must succeed; its JSON answer.
async fn ok(emu: &EmulatorHandle, method: &str, path: &str, body: Value) -> Value {
    let r = raw(emu, method, path, Some(body)).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
    r.body
}

/// Registers a journal trigger over HTTP, as the control surface documents it.
async fn journal_trigger(emu: &EmulatorHandle, id: &str, body: Value) -> String {
    let path = format!("/__emulator/spreadsheets/{id}/triggers");
    let r = ok(emu, "POST", &path, body).await;
    r["triggerId"].as_str().unwrap().to_string()
}

/// A webhook trigger on a loopback receiver.
async fn webhook(emu: &EmulatorHandle, id: &str) -> UnboundedReceiver<Hook> {
    let (url, rx) = receiver().await;
    let spec = TriggerSpec {
        url,
        secret: "k".into(),
        sheet_id: None,
    };
    emu.add_trigger(id, spec).unwrap();
    rx
}

/// The journal tab as `values.get` reads it (`[]` when there is none).
fn journal(emu: &EmulatorHandle, id: &str) -> Vec<Value> {
    let ss = emu.spreadsheet(id).unwrap();
    if journal_index(&ss).is_none() {
        return Vec::new();
    }
    let v = emu
        .read_values(id, &format!("'{JOURNAL_TITLE}'!A1:D"))
        .unwrap();
    v.as_array().unwrap().clone()
}

fn version(emu: &EmulatorHandle, id: &str) -> u64 {
    emu.spreadsheet(id).unwrap().version
}

fn text(hook: &Hook) -> String {
    String::from_utf8(hook.body.clone()).unwrap()
}

/// Waits for the delivery of a sentinel edit (made after everything else) and for `expected`
/// more, then returns the event ids of all deliveries, sorted: an extra trigger fired earlier
/// would be among them. Deliveries run side by side and each is logged when its POST is
/// answered, so the sentinel's record can come before an earlier edit's; after the count is
/// reached, a short pause lets a straggler show up.
async fn delivered_ids(
    emu: &EmulatorHandle,
    id: &str,
    rx: &mut UnboundedReceiver<Hook>,
    expected: usize,
) -> Vec<String> {
    emu.set_cells(id, "Z1", vec![vec![json!("sentinel")]])
        .unwrap();
    let sentinel = next(rx).await.json()["eventId"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let others = |log: Vec<sheetsync_emulator::Delivery>| -> Option<Vec<String>> {
        log.iter().any(|d| d.event_id == sentinel).then(|| {
            log.into_iter()
                .map(|d| d.event_id)
                .filter(|e| *e != sentinel)
                .collect()
        })
    };
    loop {
        let done = others(emu.deliveries()).filter(|ids| ids.len() >= expected);
        if done.is_some() || std::time::Instant::now() > deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut ids = others(emu.deliveries()).unwrap_or_default();
            ids.sort();
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_get_consecutive_seqs_and_the_append_moves_the_version_but_fires_nothing() {
    let emu = emulator().await;
    let id = spreadsheet(&emu, &[("Items", 0)]);
    let tid = journal_trigger(&emu, &id, json!({"mode": "journal"})).await;
    let mut rx = webhook(&emu, &id).await;
    let listed = raw(
        &emu,
        "GET",
        &format!("/__emulator/spreadsheets/{id}/triggers"),
        None,
    )
    .await;
    assert_eq!(
        listed.body["triggers"][0],
        json!({"triggerId": tid, "mode": "journal", "sheetId": null})
    );
    assert_eq!(listed.body["triggers"][1]["mode"], "webhook");
    assert!(
        journal(&emu, &id).is_empty(),
        "the tab is made on the first edit"
    );

    let v0 = version(&emu, &id);
    emu.set_cells(&id, "Items!A2", vec![vec![json!("1"), json!("bolt")]])
        .unwrap();
    let first = next(&mut rx).await;
    assert_eq!(
        version(&emu, &id),
        v0 + 2,
        "the edit, then the script's append"
    );
    let ss = emu.spreadsheet(&id).unwrap();
    let tab = &ss.sheets[journal_index(&ss).unwrap()];
    assert_eq!(
        journal_index(&ss),
        Some(ss.sheets.len() - 1),
        "added at the end"
    );
    assert!(tab.props.hidden);
    let protected: Vec<_> = ss
        .protected
        .iter()
        .filter(|p| p["range"]["sheetId"] == tab.props.sheet_id)
        .collect();
    assert_eq!(protected.len(), 1, "protected with a warning");
    assert_eq!(protected[0]["warningOnly"], true);
    assert_eq!((tab.props.row_count, tab.props.column_count), (1000, 4));
    let rows = journal(&emu, &id);
    let jid = rows[0][2].as_str().unwrap().to_string();
    assert_eq!(jid.len(), 36, "a UUID: {jid}");
    // The entry is the webhook body, byte for byte (same event).
    assert_eq!(
        rows,
        vec![json!(["seq", "entry", jid, 2]), json!([1, text(&first)])]
    );

    emu.edit(
        &id,
        PersonEdit::Clear {
            range: "Items!B2".into(),
        },
    )
    .unwrap();
    let second = next(&mut rx).await;
    assert_eq!(version(&emu, &id), v0 + 4);
    let rows = journal(&emu, &id);
    assert_eq!(
        rows,
        vec![
            json!(["seq", "entry", jid, 3]),
            json!([1, text(&first)]),
            json!([2, text(&second)]),
        ]
    );
    assert_eq!(
        second.json()["rows"],
        json!([{"row": 2, "values": [1, ""]}])
    );

    // A person typing into the journal tab is not an edit anyone reports.
    let v = version(&emu, &id);
    emu.set_cells(&id, &format!("{JOURNAL_TITLE}!D9"), vec![vec![json!("x")]])
        .unwrap();
    assert_eq!(version(&emu, &id), v + 1);
    let rows = journal(&emu, &id);
    assert_eq!(rows[0][3], 3, "no entry");
    assert_eq!(rows.len(), 9);
    assert_eq!(rows[8], json!(["", "", "", "x"]));
    // The webhook saw the two edits only: the appends fired nothing.
    let ids = delivered_ids(&emu, &id, &mut rx, 2).await;
    let mut expected = [&first, &second].map(|h| h.json()["eventId"].as_str().unwrap().to_string());
    expected.sort();
    assert_eq!(ids, expected);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_insertion_writes_one_entry_per_tab_but_sheetsyncs_own() {
    let emu = emulator().await;
    let id = spreadsheet(
        &emu,
        &[
            ("Orders", 10),
            ("sheetsync-scratch-10", 11),
            ("Customers", 12),
        ],
    );
    journal_trigger(&emu, &id, json!({"mode": "journal"})).await;
    let mut rx = webhook(&emu, &id).await;
    emu.insert_rows(&id, "Customers", 2, 3).unwrap();
    let hook = next(&mut rx).await;
    let rows = journal(&emu, &id);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][3], 3);
    // The changed tab's entry is the webhook's payload; the other tab's its own event.
    assert_eq!(rows[2], json!([2, text(&hook)]));
    let orders: Value = serde_json::from_str(rows[1][1].as_str().unwrap()).unwrap();
    let customers = hook.json();
    assert_eq!(customers["sheetName"], "Customers");
    assert_eq!(orders["sheetId"], 10);
    assert_eq!(orders["sheetName"], "Orders");
    assert_eq!(orders["changeType"], "INSERT_ROW");
    assert_eq!(orders["header"], json!(["id", "Orders name"]));
    assert_eq!(orders["rows"], json!([]));
    assert!(orders.get("range").is_none());
    assert_eq!(orders["timestamp"], customers["timestamp"]);
    assert_ne!(orders["eventId"], customers["eventId"]);

    // Edits of a scratch tab report nothing either.
    emu.set_cells(&id, "sheetsync-scratch-10!A2", vec![vec![json!("copy")]])
        .unwrap();
    assert_eq!(journal(&emu, &id).len(), 3);
    let ids = delivered_ids(&emu, &id, &mut rx, 1).await;
    assert_eq!(ids, [customers["eventId"].as_str().unwrap()]);
    emu.shutdown().await;
}

/// Fills the journal up to `entries` entries with API writes (which fire nothing).
async fn fill_journal(emu: &EmulatorHandle, id: &str, entries: u32) {
    let ss = emu.spreadsheet(id).unwrap();
    let tab = &ss.sheets[journal_index(&ss).unwrap()];
    let grow = json!({"requests": [{"appendDimension": {
        "sheetId": tab.props.sheet_id, "dimension": "ROWS", "length": entries + 1 - tab.props.row_count}}]});
    ok(
        emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        grow,
    )
    .await;
    let filler: Vec<Value> = (2..=entries).map(|s| json!([s, "{}"])).collect();
    let path = format!("/v4/spreadsheets/{id}/values/{JOURNAL_TITLE}!A3?valueInputOption=RAW");
    ok(emu, "PUT", &path, json!({"values": filler})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_takes_no_entry_until_it_is_trimmed() {
    let emu = emulator().await;
    let id = spreadsheet(&emu, &[("Items", 0)]);
    journal_trigger(&emu, &id, json!({"mode": "journal"})).await;
    emu.set_cells(&id, "Items!A2", vec![vec![json!("1")]])
        .unwrap();
    // 20,000 entries (the default SHEETSYNC_JOURNAL_MAX_ROWS): the daemon is not reading.
    fill_journal(&emu, &id, 20_000).await;
    assert_eq!(journal(&emu, &id).len(), 20_001);
    let v = version(&emu, &id);
    emu.set_cells(&id, "Items!A3", vec![vec![json!("2")]])
        .unwrap();
    assert_eq!(
        version(&emu, &id),
        v + 1,
        "the edit moved it, no append did"
    );
    let rows = journal(&emu, &id);
    assert_eq!(rows.len(), 20_001);
    assert_eq!(rows[0][3], 2, "the counter did not move");

    // The reader trims one entry (one deleteDimension): there is room for the next event.
    let ss = emu.spreadsheet(&id).unwrap();
    let sid = ss.sheets[journal_index(&ss).unwrap()].props.sheet_id;
    let trim = json!({"requests": [{"deleteDimension": {"range": {
        "sheetId": sid, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}}}]});
    ok(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        trim,
    )
    .await;
    emu.set_cells(&id, "Items!A4", vec![vec![json!("3")]])
        .unwrap();
    let rows = journal(&emu, &id);
    assert_eq!(rows.len(), 20_001);
    assert_eq!(rows[0][3], 3);
    assert_eq!(rows[20_000][0], 2, "seq from D1, after the last row");
    let entry: Value = serde_json::from_str(rows[20_000][1].as_str().unwrap()).unwrap();
    assert_eq!(entry["range"]["startRow"], 4);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specs_limits_stand_in_for_the_script_properties() {
    let emu = emulator().await;
    let id = spreadsheet(&emu, &[("Items", 0), ("Other", 5)]);
    let spec = JournalSpec {
        sheet_id: Some(0),
        max_rows: Some(1),
        journal_max_rows: Some(1),
    };
    emu.add_journal_trigger(&id, spec).unwrap();
    assert!(emu
        .add_journal_trigger("missing", JournalSpec::default())
        .is_err());
    // An edit of the other sheet does not fire this trigger.
    emu.set_cells(&id, "Other!A2", vec![vec![json!("x")]])
        .unwrap();
    assert!(journal(&emu, &id).is_empty());
    // Two rows, over SHEETSYNC_MAX_ROWS = 1: one OTHER entry.
    emu.set_cells(&id, "Items!A2", vec![vec![json!("1")], vec![json!("2")]])
        .unwrap();
    let rows = journal(&emu, &id);
    assert_eq!(rows.len(), 2);
    let entry: Value = serde_json::from_str(rows[1][1].as_str().unwrap()).unwrap();
    assert_eq!(entry["changeType"], "OTHER");
    assert_eq!(entry["rows"], json!([]));
    // SHEETSYNC_JOURNAL_MAX_ROWS = 1: full.
    emu.set_cells(&id, "Items!A4", vec![vec![json!("3")]])
        .unwrap();
    assert_eq!(journal(&emu, &id).len(), 2);
    let bad = raw(
        &emu,
        "POST",
        &format!("/__emulator/spreadsheets/{id}/triggers"),
        Some(json!({"mode": "carrier-pigeon"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("unknown trigger mode"), "{}", bad.text);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_triggers_survive_the_state_file() {
    let dir = std::env::temp_dir().join(format!("sheetsync-emu-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let emu = emulator().await;
    let id = spreadsheet(&emu, &[("Items", 0)]);
    emu.add_journal_trigger(&id, JournalSpec::default())
        .unwrap();
    emu.save_state_to(&path).unwrap();
    emu.shutdown().await;
    let config = sheetsync_emulator::Config {
        state_file: Some(path.clone()),
        ..Default::default()
    };
    let emu = EmulatorHandle::start(config).await.unwrap();
    emu.set_cells(&id, "Items!A2", vec![vec![json!("1")]])
        .unwrap();
    assert_eq!(journal(&emu, &id).len(), 2);
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_edit_is_journaled_like_any_person_edit() {
    let emu = emulator().await;
    let id = spreadsheet(&emu, &[("Items", 0)]);
    emu.add_journal_trigger(&id, JournalSpec::default())
        .unwrap();
    let edit = PersonEdit::SetCells {
        range: "Items!A2".into(),
        values: vec![vec![json!("9")]],
    };
    emu.schedule_edit(&id, EditTrigger::after("values.get"), edit)
        .unwrap();
    let read = ok(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/values/Items!A1"),
        Value::Null,
    )
    .await;
    assert_eq!(
        read["values"],
        json!([["id"]]),
        "the edit comes after the read"
    );
    assert_eq!(emu.fired_edits().len(), 1);
    let rows = journal(&emu, &id);
    assert_eq!(rows.len(), 2);
    let entry: Value = serde_json::from_str(rows[1][1].as_str().unwrap()).unwrap();
    assert_eq!(entry["rows"], json!([{"row": 2, "values": [9, ""]}]));
}
