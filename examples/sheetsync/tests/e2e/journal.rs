//! Real time without a public endpoint (journal mode, no webhook configured): a write by
//! another program through the Sheets API fires no trigger and reaches the database through
//! the Drive version check (a full read), long before the scheduled full read.

use std::time::Duration;

use serde_json::json;

use crate::harness::{row, rows_map, wait_until, Backend, World};

/// Scheduled full reads this far apart never deliver within a test.
const NO_SCHEDULED_READS: &str = "timing = { poll_interval_ms = 200, full_scan_interval_ms = 600000 }";

async fn journal_world(backend: Backend, test: &str) -> (World, usize) {
    let seed = [
        (1, row(["1", "Widget", "007", "12.50", "2024-01-31", "true"])),
        (2, row(["2", "Gadget", "", "", "", "false"])),
    ];
    let mut w = World::new(backend, test).await;
    w.change_detection = "journal";
    let m = w.add_mapping("items", &seed, NO_SCHEDULED_READS).await;
    w.start().await;
    w.converge(m, &rows_map(&seed)).await;
    (w, m)
}

pub async fn an_api_write_by_another_program_reaches_the_database(backend: Backend) {
    let (w, m) = journal_world(backend, "journal-api-write").await;
    let t = w.mappings[m].table.clone();
    w.api_write_cell(m, 2, "name", json!("Renamed by a script")).await;
    wait_until("the API write reaches the database", || async {
        let rows = w.db.try_rows(&t).await.ok()?;
        let name = rows.get(&2)?.get(1).cloned().flatten();
        (name.as_deref() == Some("Renamed by a script")).then_some(())
    })
    .await;
    let full_reads = w
        .metric("sheetsync_watch_full_reads_total", "spreadsheet=")
        .await
        .unwrap();
    assert!(full_reads >= 1.0, "found by the version check: {full_reads}");
    // Once converged, an idle daemon reads nothing from Sheets: polls cost Drive calls only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = w.emu.request_count("sheets.spreadsheets.values.batchGet");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = w.emu.request_count("sheets.spreadsheets.values.batchGet");
    assert_eq!(after, before, "an idle daemon reads no values");
}
