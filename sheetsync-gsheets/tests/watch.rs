//! The change watcher against the emulator: journal entries become the table's changes with
//! their edit times, an unchanged file costs no Sheets read, a write by another program is read
//! in full, our own writes are taken on trust until the owed journal read, committed entries are
//! trimmed, and a lost, renewed or gapped journal falls back to full reads.
//!
//! The Apps Script is played by a second client that appends entries exactly as
//! `docs/journal.md` says (its writes are another program's, as the script's are).

use std::sync::Arc;
use std::time::Duration;

use google_sheets4::api::{BatchUpdateSpreadsheetRequest, DeleteSheetRequest, Request, ValueRange};
use serde_json::{json, Value as Json};
use sheetsync_core::{
    Change, Column, ColumnType, Cursor, Expected, Row, Sink, Source, TableSchema, Value,
    WriteContext, WriteOp,
};
use sheetsync_emulator::{Config, EmulatorHandle};
use sheetsync_gsheets::watch::{create_journal, WatchOptions, Watcher, JOURNAL_TAB};
use sheetsync_gsheets::{quote_title, SheetOptions, SheetTable, SheetsClient};

mod common;
use common::fast_client_as;

fn schema() -> TableSchema {
    TableSchema::new(
        "items",
        vec![
            Column::new("id", ColumnType::Int),
            Column::new("name", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap()
}

struct Rig {
    emu: EmulatorHandle,
    id: String,
    table: Arc<SheetTable>,
    watcher: Watcher,
    /// The Apps Script, and any other program writing through the API.
    script: Arc<SheetsClient>,
}

impl Rig {
    async fn new(tune: impl FnOnce(&mut WatchOptions)) -> Rig {
        let emu = EmulatorHandle::start(Config::default()).await.unwrap();
        let id = emu.create_spreadsheet("watched").unwrap();
        let base = emu.base_url();
        let client = Arc::new(
            SheetsClient::new(fast_client_as(&base, "daemon"))
                .await
                .unwrap(),
        );
        let script = Arc::new(
            SheetsClient::new(fast_client_as(&base, "script"))
                .await
                .unwrap(),
        );
        let rig_table = SheetTable::new(client.clone(), SheetOptions::new(&id, 0), schema());
        let mut opts = WatchOptions::default();
        tune(&mut opts);
        let watcher = Watcher::new(client.clone(), &id, opts);
        let rig = Rig {
            emu,
            id,
            table: Arc::new(rig_table),
            watcher,
            script,
        };
        rig.write(
            "Sheet1!A1:B2",
            vec![vec![json!("id"), json!("name")], vec![json!(1), json!("a")]],
        )
        .await;
        assert!(create_journal(&rig.script, &rig.id).await.unwrap());
        assert!(
            !create_journal(&rig.script, &rig.id).await.unwrap(),
            "made once"
        );
        let ss = rig.emu.spreadsheet(&rig.id).unwrap();
        let journal = ss
            .sheets
            .iter()
            .find(|s| s.props.title == JOURNAL_TAB)
            .unwrap();
        assert!(journal.props.hidden);
        assert_eq!(ss.protected.len(), 1);
        assert_eq!(ss.protected[0]["warningOnly"], json!(true));
        rig.watcher.add(rig.table.clone());
        rig
    }

    /// Writes through the API as another program (no trigger fires, no entry is written).
    async fn write(&self, range: &str, values: Vec<Vec<Json>>) {
        let vr = ValueRange {
            range: Some(range.into()),
            major_dimension: Some("ROWS".into()),
            values: Some(values),
        };
        self.script
            .batch_update_values(&self.id, vec![vr])
            .await
            .unwrap();
    }

    fn journal_rows(&self) -> Vec<Vec<Json>> {
        let v = self.emu.read_values(&self.id, JOURNAL_TAB).unwrap();
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Appends entries with these seqs, as the Apps Script would (seq counter in D1).
    async fn append_entries(&self, seqs: &[u64], rows: &[(u32, Vec<Json>)]) {
        let at = self.journal_rows().len() as u32 + 1;
        let body = entry(&self.id, rows);
        let values = seqs.iter().map(|s| vec![json!(s), json!(body)]).collect();
        let tab = quote_title(JOURNAL_TAB);
        let end = at + seqs.len() as u32 - 1;
        self.write(&format!("{tab}!A{at}:B{end}"), values).await;
        let next = seqs.iter().max().copied().unwrap_or(0) + 1;
        self.write(&format!("{tab}!D1"), vec![vec![json!(next)]])
            .await;
    }

    /// A person's edit of `rows`: the cells change and the script journals it.
    async fn person_edit(&self, seq: u64, rows: &[(u32, Vec<Json>)]) {
        for (r, cells) in rows {
            self.write(&format!("Sheet1!A{r}:B{r}"), vec![cells.clone()])
                .await;
        }
        self.append_entries(&[seq], rows).await;
    }

    fn reads(&self) -> u64 {
        self.emu.value_reads()
    }

    /// Reads the tab in full, as the engine's first cycle does (taking a read made in the
    /// background when one was asked for); returns the feed's cursor.
    async fn full_read(&self) -> Cursor {
        if self.table.full_read_pending() {
            assert!(self.full_read_asked().await, "the background read ends");
        }
        let cursor = self.table.cursor().await.unwrap().unwrap();
        let _ = self.table.scan_all().await.unwrap();
        cursor
    }
}

impl Rig {
    /// Whether the engine is asked for a full read within a few seconds (one made in the
    /// background is asked for once it has ended).
    async fn full_read_asked(&self) -> bool {
        for _ in 0..500 {
            if self.table.full_scan_requested() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// An `EDIT` entry body (a v1 webhook payload) for `rows` of tab 0, timed now.
fn entry(spreadsheet: &str, rows: &[(u32, Vec<Json>)]) -> String {
    let first = rows.iter().map(|r| r.0).min().unwrap_or(2);
    let last = rows.iter().map(|r| r.0).max().unwrap_or(2);
    json!({
        "version": 1, "spreadsheetId": spreadsheet, "sheetId": 0, "sheetName": "Sheet1",
        "changeType": "EDIT", "eventId": format!("e-{first}-{}", rand_id()),
        "timestamp": chrono::Utc::now().timestamp_millis(), "user": "",
        "range": {"startRow": first, "endRow": last, "startColumn": 2, "endColumn": 2},
        "header": ["id", "name"],
        "rows": rows.iter().map(|(r, v)| json!({"row": r, "values": v})).collect::<Vec<_>>(),
    })
    .to_string()
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn upserts(changes: &[sheetsync_core::Observation]) -> Vec<Row> {
    changes
        .iter()
        .filter_map(|o| match &o.change {
            Change::Upsert(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Our own write of a new row.
fn insert(id: i64) -> WriteOp {
    WriteOp::Upsert {
        row: row(id, "ours"),
        expected: Expected::Absent,
    }
}

fn row(id: i64, name: &str) -> Row {
    Row::new(vec![Value::Int(id), name.into()])
}

trait ScanAll {
    async fn scan_all(&self) -> sheetsync_core::Result<usize>;
}

impl ScanAll for SheetTable {
    async fn scan_all(&self) -> sheetsync_core::Result<usize> {
        use futures::StreamExt;
        let mut n = 0;
        let mut s = self.scan();
        while let Some(chunk) = s.next().await {
            n += chunk?.len();
        }
        Ok(n)
    }
}

/// The rig after its first poll and the engine's first full read, with nothing pending.
async fn settled(tune: impl FnOnce(&mut WatchOptions)) -> (Rig, Cursor) {
    let rig = Rig::new(tune).await;
    rig.watcher.poll_once().await.unwrap();
    let cursor = rig.full_read().await;
    assert!(!rig.table.full_read_pending());
    (rig, cursor)
}

#[tokio::test]
async fn a_journaled_edit_becomes_a_change_with_its_time_and_an_idle_poll_reads_nothing() {
    let (rig, cursor) = settled(|_| {}).await;
    rig.person_edit(1, &[(2, vec![json!(1), json!("b")])]).await;
    assert!(rig.watcher.poll_once().await.unwrap());
    let batch = rig.table.changes(&cursor, 100).await.unwrap();
    assert_eq!(upserts(&batch.changes), vec![row(1, "b")]);
    let at = batch.changes[0].at.expect("the entry's edit time is kept");
    assert!((chrono::Utc::now() - at).num_seconds() < 60);
    assert!(!rig.table.full_read_pending());
    // Nothing changed since: a poll asks Drive and reads nothing from Sheets.
    let (reads, polls) = (rig.reads(), rig.watcher.stats().polls);
    assert!(!rig.watcher.poll_once().await.unwrap());
    assert_eq!(rig.reads(), reads);
    assert_eq!(rig.watcher.stats().polls, polls + 1);
    assert_eq!(rig.watcher.stats().entries, 1);
    // Full reads queue behind journal reads: they go at background priority.
    let reads = rig.table.client().limiters().0.stats();
    assert!(
        reads.background >= 1 && reads.admitted > reads.background,
        "{reads:?}"
    );
}

#[tokio::test]
async fn a_write_by_another_program_is_read_in_full() {
    let (rig, _) = settled(|_| {}).await;
    rig.write("Sheet1!B2", vec![vec![json!("by a script")]])
        .await;
    rig.watcher.poll_once().await.unwrap();
    assert!(rig.full_read_asked().await);
    assert_eq!(rig.watcher.stats().journal_reads, 2);
}

#[tokio::test]
async fn own_writes_are_trusted_until_the_owed_journal_read_finds_what_came_with_them() {
    let (rig, cursor) = settled(|o| o.confirm_journal = Duration::ZERO).await;
    let ctx = WriteContext {
        origin: "sheetsync".into(),
    };
    let write = vec![insert(5)];
    rig.table.apply(write, &ctx).await.unwrap();
    let journal_reads = rig.watcher.stats().journal_reads;
    rig.watcher.poll_once().await.unwrap();
    assert_eq!(
        rig.watcher.stats().journal_reads,
        journal_reads,
        "taken on trust"
    );
    assert!(!rig.table.full_read_pending());
    // A person's entry that landed with our write is found by the owed read.
    rig.append_entries(&[1], &[(2, vec![json!(1), json!("c")])])
        .await;
    rig.table.apply(vec![insert(6)], &ctx).await.unwrap();
    rig.watcher.poll_once().await.unwrap();
    rig.watcher.poll_once().await.unwrap();
    let batch = rig.table.changes(&cursor, 100).await.unwrap();
    assert!(upserts(&batch.changes).contains(&row(1, "c")), "{batch:?}");
}

#[tokio::test]
async fn committed_entries_are_trimmed_and_uncommitted_ones_stay() {
    let (rig, cursor) = settled(|o| o.trim_rows = 1).await;
    rig.person_edit(1, &[(2, vec![json!(1), json!("b")])]).await;
    rig.watcher.poll_once().await.unwrap();
    // Not committed yet: the entry stays.
    assert_eq!(rig.journal_rows().len(), 2);
    let batch = rig.table.changes(&cursor, 100).await.unwrap();
    rig.table.ack(&batch.cursor).await.unwrap();
    rig.person_edit(2, &[(2, vec![json!(1), json!("d")])]).await;
    rig.watcher.poll_once().await.unwrap();
    let rows = rig.journal_rows();
    assert_eq!(rows.len(), 2, "entry 1 trimmed, entry 2 kept: {rows:?}");
    assert_eq!(rows[1][0], json!(2));
    assert_eq!(rig.watcher.stats().trims, 1);
}

#[tokio::test]
async fn a_deleted_journal_falls_back_to_full_reads_and_a_new_one_is_taken_up() {
    let (rig, cursor) = settled(|o| o.create_journal = false).await;
    let tab = rig.emu.spreadsheet(&rig.id).unwrap();
    let journal_id = tab
        .sheets
        .iter()
        .find(|s| s.props.title == JOURNAL_TAB)
        .map(|s| s.props.sheet_id)
        .unwrap();
    let delete = Request {
        delete_sheet: Some(DeleteSheetRequest {
            sheet_id: Some(journal_id),
        }),
        ..Default::default()
    };
    let req = BatchUpdateSpreadsheetRequest {
        requests: Some(vec![delete]),
        ..Default::default()
    };
    rig.script.batch_update(&rig.id, req).await.unwrap();
    rig.watcher.poll_once().await.unwrap();
    assert!(rig.watcher.stats().journal_missing);
    assert!(rig.full_read_asked().await);
    rig.full_read().await;
    // The script makes it again on the next edit: its entries are taken up.
    assert!(create_journal(&rig.script, &rig.id).await.unwrap());
    rig.watcher.poll_once().await.unwrap();
    rig.person_edit(1, &[(2, vec![json!(1), json!("e")])]).await;
    rig.watcher.poll_once().await.unwrap();
    assert!(!rig.watcher.stats().journal_missing);
    let batch = rig.table.changes(&cursor, 100).await.unwrap();
    assert!(upserts(&batch.changes).contains(&row(1, "e")));
}

#[tokio::test]
async fn a_missing_journal_is_made_again() {
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu.create_spreadsheet("no journal yet").unwrap();
    let client = Arc::new(
        SheetsClient::new(fast_client_as(&emu.base_url(), "daemon"))
            .await
            .unwrap(),
    );
    let table = Arc::new(SheetTable::new(
        client.clone(),
        SheetOptions::new(&id, 0),
        schema(),
    ));
    let watcher = Watcher::new(client, &id, WatchOptions::default());
    watcher.add(table);
    watcher.poll_once().await.unwrap();
    assert!(watcher.stats().journal_missing);
    let ss = emu.spreadsheet(&id).unwrap();
    assert!(ss
        .sheets
        .iter()
        .any(|s| s.props.title == JOURNAL_TAB && s.props.hidden));
}

#[tokio::test]
async fn a_gap_in_the_seqs_or_an_unreadable_entry_asks_for_a_full_read() {
    let (rig, _) = settled(|o| o.min_full_read_gap = Duration::ZERO).await;
    rig.person_edit(1, &[(2, vec![json!(1), json!("b")])]).await;
    rig.watcher.poll_once().await.unwrap();
    assert!(!rig.table.full_read_pending());
    rig.person_edit(3, &[(2, vec![json!(1), json!("f")])]).await;
    rig.watcher.poll_once().await.unwrap();
    assert!(rig.full_read_asked().await, "seq 2 is missing");
    rig.full_read().await;
    let at = rig.journal_rows().len() + 1;
    let tab = quote_title(JOURNAL_TAB);
    rig.write(
        &format!("{tab}!A{at}:B{at}"),
        vec![vec![json!(4), json!("{\"version\":1")]],
    )
    .await;
    rig.watcher.poll_once().await.unwrap();
    assert!(rig.full_read_asked().await, "entry 4 is unreadable");
}

#[tokio::test]
async fn a_new_process_skips_the_entries_the_saved_cursor_committed() {
    let (rig, cursor) = settled(|_| {}).await;
    rig.person_edit(1, &[(2, vec![json!(1), json!("b")])]).await;
    rig.watcher.poll_once().await.unwrap();
    let batch = rig.table.changes(&cursor, 100).await.unwrap();
    assert_eq!(upserts(&batch.changes), vec![row(1, "b")]);
    rig.table.ack(&batch.cursor).await.unwrap();
    // The process dies; entry 2 is journaled before the next one starts.
    rig.person_edit(2, &[(3, vec![json!(2), json!("new")])])
        .await;
    let client = Arc::new(
        SheetsClient::new(fast_client_as(&rig.emu.base_url(), "daemon"))
            .await
            .unwrap(),
    );
    let next = Arc::new(SheetTable::new(
        client.clone(),
        SheetOptions::new(&rig.id, 0),
        schema(),
    ));
    next.resume(&batch.cursor).await.unwrap();
    // Its first cycle reads in full; both entries are within the clock skew of that read, so
    // only the saved cursor tells that entry 1 is old news.
    let start = next.cursor().await.unwrap().unwrap();
    next.scan_all().await.unwrap();
    let watcher = Watcher::new(client, &rig.id, WatchOptions::default());
    watcher.add(next.clone());
    watcher.poll_once().await.unwrap();
    let served = next.changes(&start, 100).await.unwrap();
    assert_eq!(
        upserts(&served.changes),
        vec![row(2, "new")],
        "entry 1 was committed before: only entry 2 is served"
    );
}
