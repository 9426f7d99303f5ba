//! Real time without a public endpoint: journal mode, no webhook configured, scheduled full
//! reads out of reach. A person's edit reaches the database through the emulator's journal
//! trigger (the Apps Script's semantics); a write by another program through the Sheets API
//! fires no trigger and reaches it through the Drive version check; a daemon killed and
//! restarted loses and re-applies nothing and the consumed journal is trimmed; a deleted journal
//! is reported, made again, and edits keep arriving.

use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::harness::{row, rows_map, wait_until, Backend, Canon, World};

/// Scheduled full reads this far apart never deliver within a test.
const NO_SCHEDULED_READS: &str =
    "timing = { poll_interval_ms = 200, full_scan_interval_ms = 600000 }";

const JOURNAL: &str = "_sheetsync_journal";

async fn journal_world(backend: Backend, test: &str) -> (World, usize) {
    let seed = [
        (
            1,
            row(["1", "Widget", "007", "12.50", "2024-01-31", "true"]),
        ),
        (2, row(["2", "Gadget", "", "", "", "false"])),
    ];
    let mut w = World::new(backend, test).await;
    w.change_detection = "journal";
    w.secret = String::new();
    let m = w.add_mapping("items", &seed, NO_SCHEDULED_READS).await;
    w.start().await;
    w.converge(m, &rows_map(&seed)).await;
    (w, m)
}

/// Waits until the database's row `id` has `name`.
async fn db_name_is(w: &World, m: usize, id: i64, name: &str) {
    let t = w.mappings[m].table.clone();
    wait_until(
        &format!("row {id} is named {name:?} in the database"),
        || async {
            let rows = w.db.try_rows(&t).await?;
            let got = rows.get(&id).and_then(|r: &Canon| r[1].clone());
            match got.as_deref() == Some(name) {
                true => Ok(()),
                false => Err(format!("row {id}: {:?}", rows.get(&id))),
            }
        },
    )
    .await;
}

/// The journal's entry seqs, oldest first.
fn journal_seqs(w: &World, m: usize) -> Vec<i64> {
    let v = w
        .emu
        .read_values(&w.mappings[m].spreadsheet_id, JOURNAL)
        .unwrap_or(Json::Null);
    let rows: Vec<Vec<Json>> = serde_json::from_value(v).unwrap_or_default();
    rows.iter()
        .skip(1)
        .filter_map(|r| r.first().and_then(Json::as_i64))
        .collect()
}

pub async fn person_edits_arrive_through_the_journal_even_after_it_is_deleted(backend: Backend) {
    let (w, m) = journal_world(backend, "journal-person").await;
    w.type_cell(m, 2, "name", json!("Typed by a person"));
    db_name_is(&w, m, 2, "Typed by a person").await;
    assert!(w.emu.deliveries().is_empty(), "no webhook was posted");
    let entries = w
        .metric("sheetsync_watch_journal_entries_total", "spreadsheet=")
        .await
        .unwrap();
    assert!(entries >= 1.0, "applied from the journal: {entries}");

    // The journal is deleted: a warning, a full read, and the tab is made again.
    let id = w.mappings[m].spreadsheet_id.clone();
    let ss = w.emu.spreadsheet(&id).unwrap();
    let tab = ss.sheets.iter().find(|s| s.props.title == JOURNAL).unwrap();
    delete_tab_by_api(&w, &id, tab.props.sheet_id).await;
    w.running().wait_for_log("edit journal tab").await;
    w.type_cell(m, 1, "name", json!("After the journal was lost"));
    db_name_is(&w, m, 1, "After the journal was lost").await;
}

async fn delete_tab_by_api(w: &World, id: &str, sheet_id: i32) {
    let client = w.other_program().await;
    let req: sheetsync::gsheets::BatchUpdateSpreadsheetRequest =
        serde_json::from_value(json!({"requests": [{"deleteSheet": {"sheetId": sheet_id}}]}))
            .unwrap();
    client
        .batch_update(id, req)
        .await
        .expect("delete the journal tab");
}

pub async fn an_api_write_by_another_program_reaches_the_database(backend: Backend) {
    let (w, m) = journal_world(backend, "journal-api-write").await;
    w.api_write_cell(m, 2, "name", json!("Renamed by a script"))
        .await;
    db_name_is(&w, m, 2, "Renamed by a script").await;
    let full_reads = w
        .metric("sheetsync_watch_full_reads_total", "spreadsheet=")
        .await
        .unwrap();
    assert!(
        full_reads >= 1.0,
        "found by the version check: {full_reads}"
    );
    // Once converged, an idle daemon reads nothing from Sheets: polls cost Drive calls only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = w.emu.value_reads();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = w.emu.value_reads();
    assert_eq!(after, before, "an idle daemon reads no values");
}

pub async fn a_restart_resumes_from_the_journal_and_consumed_entries_are_trimmed(backend: Backend) {
    let (mut w, m) = journal_world(backend, "journal-restart").await;
    let t = w.mappings[m].table.clone();
    w.type_cell(m, 1, "name", json!("First edit"));
    db_name_is(&w, m, 1, "First edit").await;
    w.kill9();
    // While the daemon is down: a service changes row 1, a person edits row 2.
    w.db.exec(&format!(
        "UPDATE {t} SET name = 'Changed by a service' WHERE id = 1"
    ))
    .await;
    w.type_cell(m, 2, "name", json!("Typed while down"));
    w.start().await;
    db_name_is(&w, m, 2, "Typed while down").await;
    // The first edit, still in the journal, is not applied again over the newer change.
    let mut want = rows_map(&[
        (
            1,
            row([
                "1",
                "Changed by a service",
                "007",
                "12.50",
                "2024-01-31",
                "true",
            ]),
        ),
        (2, row(["2", "Typed while down", "", "", "", "false"])),
    ]);
    w.converge(m, &want).await;
    // Committed entries older than the trim delay go with the next journal read.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = journal_seqs(&w, m);
    assert!(!before.is_empty(), "entries wait for the next read");
    w.type_cell(m, 2, "name", json!("Third edit"));
    want.get_mut(&2).unwrap()[1] = Some("Third edit".into());
    w.converge(m, &want).await;
    wait_until("the consumed entries are trimmed", || async {
        let now = journal_seqs(&w, m);
        match now.iter().all(|s| !before.contains(s)) {
            true => Ok(()),
            false => Err(format!("journal seqs {now:?}, before {before:?}")),
        }
    })
    .await;
}
