//! Named regression tests for the ways people and the network race the adapter's row positions:
//! rows deleted, sorted or moved while a write is in flight, answers lost after Google applied a
//! request, full reads in several chunks, short answers, appends around gap rows.
//!
//! Each test drives [`SheetTable`] directly against the emulator, makes the race happen at a
//! known point (a delayed request and a person's edit during the delay, a lost answer), and then
//! checks the Sheet row by row: no row's values under another key, no row deleted that nobody
//! deleted, nothing written lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sheetsync_core::*;
use sheetsync_emulator::{Config, EmulatorHandle, FaultRule};
use sheetsync_gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};

mod common;
use common::{fast_client, id_name_note as schema};

fn row(id: i64, name: &str, note: &str) -> Row {
    Row::new(vec![Value::Int(id), name.into(), note.into()])
}

fn key(id: i64) -> RowKey {
    RowKey::from_values(&[Value::Int(id)])
}

fn ctx() -> WriteContext {
    WriteContext {
        origin: "test".into(),
    }
}

struct Race {
    emu: EmulatorHandle,
    id: String,
    sheet: Arc<SheetTable>,
}

/// A tab with a header and rows `id = 1..=n`, `name = n<id>`, `note = x<id>`.
async fn race(n: i64, tune: impl FnOnce(&mut SheetOptions)) -> Race {
    race_on(Config::default(), n, tune).await
}

async fn race_on(config: Config, n: i64, tune: impl FnOnce(&mut SheetOptions)) -> Race {
    let emu = EmulatorHandle::start(config).await.unwrap();
    let id = emu.create_spreadsheet("races").unwrap();
    let mut values = vec![vec![json!("id"), json!("name"), json!("note")]];
    values.extend((1..=n).map(|i| vec![json!(i), json!(format!("n{i}")), json!(format!("x{i}"))]));
    emu.set_cells(&id, "Sheet1!A1", values).unwrap();
    let client = Arc::new(
        SheetsClient::new(fast_client(&emu.base_url()))
            .await
            .unwrap(),
    );
    let mut opts = SheetOptions::new(&id, 0);
    opts.use_drive_version = false;
    tune(&mut opts);
    let sheet = Arc::new(SheetTable::new(client, opts, schema()));
    Race { emu, id, sheet }
}

impl Race {
    /// The data rows in sheet order (blank rows skipped).
    fn rows(&self) -> Vec<(i64, String, String)> {
        let v = self.emu.read_values(&self.id, "Sheet1").unwrap();
        let rows: Vec<Vec<Json>> = serde_json::from_value(v).unwrap_or_default();
        rows.iter()
            .skip(1)
            .filter(|r| r.iter().any(|c| c.as_str() != Some("") && !c.is_null()))
            .map(|r| {
                let cell = |i: usize| r.get(i).cloned().unwrap_or(json!(""));
                let id = match cell(0) {
                    Json::Number(n) => n.as_f64().unwrap() as i64,
                    Json::String(s) => s.parse().unwrap_or(-1),
                    _ => -1,
                };
                let text = |c: Json| c.as_str().map(str::to_owned).unwrap_or(c.to_string());
                (id, text(cell(1)), text(cell(2)))
            })
            .collect()
    }

    /// The rows by id; panics on a duplicated id.
    fn by_id(&self) -> BTreeMap<i64, (String, String)> {
        let mut out = BTreeMap::new();
        for (id, name, note) in self.rows() {
            assert!(
                out.insert(id, (name, note)).is_none(),
                "id {id} appears twice: {:?}",
                self.rows()
            );
        }
        out
    }

    /// The rows every id should have: the seed, with these ids removed and these changed.
    fn expect(
        n: i64,
        removed: &[i64],
        changed: &[(i64, &str, &str)],
    ) -> BTreeMap<i64, (String, String)> {
        let mut m: BTreeMap<i64, (String, String)> = (1..=n)
            .filter(|i| !removed.contains(i))
            .map(|i| (i, (format!("n{i}"), format!("x{i}"))))
            .collect();
        for (i, name, note) in changed {
            m.insert(*i, (name.to_string(), note.to_string()));
        }
        m
    }

    /// Holds the next write request back for 600 ms (a person's edit can land meanwhile).
    fn delay_next_write(&self) {
        self.emu.inject_fault(
            FaultRule {
                kind: sheetsync_emulator::FaultKind::Delay { ms: 600 },
                times: Some(1),
                rate: None,
                method: None,
            }
            .for_method("spreadsheets.batchUpdate"),
        );
    }

    /// Applies `ops` while `person` runs during a delay of the next write request.
    async fn apply_racing(
        &self,
        ops: Vec<WriteOp>,
        person: impl FnOnce(&EmulatorHandle, &str),
    ) -> Result<Vec<WriteOutcome>> {
        self.delay_next_write();
        let sheet = self.sheet.clone();
        let task = tokio::spawn(async move { sheet.apply(ops, &ctx()).await });
        tokio::time::sleep(Duration::from_millis(250)).await;
        person(&self.emu, &self.id);
        task.await.unwrap()
    }
}

fn update(id: i64, name: &str) -> WriteOp {
    WriteOp::Upsert {
        row: row(id, name, &format!("x{id}")),
        expected: Expected::Row(row(id, &format!("n{id}"), &format!("x{id}"))),
    }
}

fn delete(id: i64) -> WriteOp {
    WriteOp::Delete {
        key: key(id),
        expected: Expected::Any,
    }
}

/// Warms the adapter up (layout, scratch tab) so the race hits the write itself.
async fn warm(r: &Race) {
    let out = r.sheet.apply(vec![update(1, "n1x")], &ctx()).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    let back = WriteOp::Upsert {
        row: row(1, "n1", "x1"),
        expected: Expected::Row(row(1, "n1x", "x1")),
    };
    let out = r.sheet.apply(vec![back], &ctx()).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
}

#[tokio::test]
async fn a_write_in_flight_when_a_row_above_is_deleted_never_lands_on_the_next_row() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let out = r
        .apply_racing(vec![update(20, "new20")], |emu, id| {
            emu.delete_rows(id, "Sheet1", 3, 1).unwrap(); // id 2
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![WriteOutcome::Stale],
        "the mis-hit is reported for a retry"
    );
    assert_eq!(
        r.by_id(),
        Race::expect(30, &[2], &[]),
        "id 21 restored, 20 untouched"
    );
    // The engine's retry, with fresh positions.
    let out = r
        .sheet
        .apply(vec![update(20, "new20")], &ctx())
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(r.by_id(), Race::expect(30, &[2], &[(20, "new20", "x20")]));
}

#[tokio::test]
async fn a_write_in_flight_during_a_sort_never_lands_on_another_row() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let out = r
        .apply_racing(vec![update(20, "new20"), update(5, "new5")], |emu, id| {
            // By note, descending: x9, x8, ..., x30, x3, ... every row moves.
            emu.sort_range(id, "Sheet1!A2:C31", 3, false).unwrap();
        })
        .await
        .unwrap();
    assert!(out
        .iter()
        .all(|o| *o == WriteOutcome::Stale || *o == WriteOutcome::Applied));
    let applied: Vec<(i64, &str, &str)> = [(20, "new20"), (5, "new5")]
        .into_iter()
        .zip(&out)
        .filter(|(_, o)| **o == WriteOutcome::Applied)
        .map(|((id, name), _)| (id, name, if id == 20 { "x20" } else { "x5" }))
        .collect();
    assert_eq!(
        r.by_id(),
        Race::expect(30, &[], &applied),
        "no values under another key"
    );
}

#[tokio::test]
async fn a_delete_in_flight_when_rows_move_never_deletes_another_row() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let out = r
        .apply_racing(vec![delete(20), delete(7)], |emu, id| {
            emu.delete_rows(id, "Sheet1", 3, 1).unwrap(); // id 2: ids 3.. move up
        })
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Stale, WriteOutcome::Stale]);
    assert_eq!(
        r.by_id(),
        Race::expect(30, &[2], &[]),
        "ids 21 and 8 restored"
    );
    let out = r
        .sheet
        .apply(vec![delete(20), delete(7)], &ctx())
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied, WriteOutcome::Applied]);
    assert_eq!(r.by_id(), Race::expect(30, &[2, 7, 20], &[]));
}

#[tokio::test]
async fn a_delete_in_flight_when_a_row_is_dragged_keeps_every_other_row() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let out = r
        .apply_racing(vec![delete(10)], |emu, id| {
            emu.move_rows(id, "Sheet1", 25, 1, 2).unwrap(); // id 24 dragged to the top
        })
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Stale]);
    assert_eq!(r.by_id(), Race::expect(30, &[], &[]));
}

#[tokio::test]
async fn a_lost_answer_is_never_sent_again_blindly() {
    let r = race(10, |_| {}).await;
    warm(&r).await;
    r.emu.reset_counters();
    // The connection drops before Google applies anything.
    r.emu
        .inject_fault(FaultRule::drop_next(1).for_method("spreadsheets.batchUpdate"));
    let err = r
        .sheet
        .apply(vec![delete(5)], &ctx())
        .await
        .expect_err("the answer was lost");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert_eq!(
        r.emu.request_count("sheets.spreadsheets.batchUpdate"),
        1,
        "not re-sent"
    );
    assert_eq!(r.by_id(), Race::expect(10, &[], &[]), "nothing happened");
    // The engine plans again and the delete goes through once.
    let out = r.sheet.apply(vec![delete(5)], &ctx()).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(r.by_id(), Race::expect(10, &[5], &[]));
}

#[tokio::test]
async fn new_rows_go_after_the_last_row_with_data_whatever_gaps_there_are() {
    let r = race(6, |_| {}).await;
    // A person clears row 4 (id 3): a gap in the middle of the data.
    r.emu.clear_range(&r.id, "Sheet1!A4:C4").unwrap();
    let out = r
        .sheet
        .apply(
            vec![WriteOp::Upsert {
                row: row(99, "n99", "x99"),
                expected: Expected::Absent,
            }],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    let ids: Vec<i64> = r.rows().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 4, 5, 6, 99],
        "appended at the bottom, the gap left alone"
    );
    let v = r.emu.read_values(&r.id, "Sheet1!A4:C4").unwrap();
    assert_eq!(v, json!([]), "the gap row stays blank");
}

#[tokio::test]
async fn a_duplicate_key_typed_by_a_person_is_held_on_every_path() {
    use futures::StreamExt;
    let r = race(5, |_| {}).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap(); // a full read: keys and rows known
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    // A person types a new row whose key, 3, row 4 already has.
    let typed = vec![json!(3), json!("dup"), json!("typed")];
    r.emu
        .set_cells(&r.id, "Sheet1!A7", vec![typed.clone()])
        .unwrap();
    r.sheet
        .accept_edit(sheetsync_gsheets::SheetEdit {
            sheet_id: 0,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            header: vec![json!("id"), json!("name"), json!("note")],
            rows: vec![(7, typed)],
            structural: false,
            columns: Some((1, 3)),
        })
        .unwrap();
    let is_held = |changes: &[Observation]| {
        changes.iter().any(|o| {
            matches!(&o.change, Change::Invalid(i) if i.key == Some(key(3)) && i.reason.contains("[4, 7]"))
        })
    };
    let no_upsert_of_3 = |changes: &[Observation]| {
        !changes
            .iter()
            .any(|o| matches!(&o.change, Change::Upsert(row) if row.0[0] == Value::Int(3)))
    };
    // The webhook path: held, never an update of row 3's data.
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert!(is_held(&batch.changes), "{:?}", batch.changes);
    assert!(no_upsert_of_3(&batch.changes));
    assert!(r.sheet.full_scan_requested());
    // The fetch path and the next cycles, until a person fixes it.
    let fetched = r.sheet.fetch(&[key(3)]).await.unwrap();
    assert!(
        matches!(&fetched[0].change, Change::Invalid(i) if i.key == Some(key(3))),
        "{fetched:?}"
    );
    r.sheet.ack(&batch.cursor).await.unwrap();
    let again = r.sheet.changes(&batch.cursor, 100).await.unwrap();
    assert!(is_held(&again.changes), "still held: {:?}", again.changes);
    // Fixed: the typed row gets another key; the hold ends with the next full read.
    r.emu
        .set_cells(&r.id, "Sheet1!A7", vec![vec![json!(7)]])
        .unwrap();
    let _ = r.sheet.scan().next().await.unwrap().unwrap();
    let after = r.sheet.changes(&again.cursor, 100).await.unwrap();
    assert!(!after
        .changes
        .iter()
        .any(|o| matches!(o.change, Change::Invalid(_))));
}

#[tokio::test]
async fn a_row_delete_applied_whose_answer_is_lost_deletes_nothing_else() {
    for fault in [
        FaultRule::drop_after_next(1),
        FaultRule::status_after_next(503, 1),
    ] {
        let r = race(12, |_| {}).await;
        warm(&r).await;
        r.emu.reset_counters();
        // Google deletes ids 5-7, then the answer is lost.
        r.emu
            .inject_fault(fault.for_method("spreadsheets.batchUpdate"));
        let out = r
            .sheet
            .apply(vec![delete(5), delete(6), delete(7)], &ctx())
            .await
            .expect("the scratch tab shows the batch was applied");
        assert_eq!(out, vec![WriteOutcome::Applied; 3]);
        assert_eq!(
            r.emu.request_count("sheets.spreadsheets.batchUpdate"),
            1,
            "never re-sent"
        );
        assert_eq!(
            r.by_id(),
            Race::expect(12, &[5, 6, 7], &[]),
            "ids 8-10 kept"
        );
    }
}

#[tokio::test]
async fn a_write_applied_whose_answer_is_lost_is_verified_not_repeated() {
    let r = race(12, |_| {}).await;
    warm(&r).await;
    r.emu
        .inject_fault(FaultRule::drop_after_next(1).for_method("spreadsheets.batchUpdate"));
    let out = r
        .sheet
        .apply(
            vec![
                update(3, "new3"),
                WriteOp::Upsert {
                    row: row(50, "n50", "x50"),
                    expected: Expected::Absent,
                },
            ],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied; 2]);
    let mut want = Race::expect(12, &[], &[(3, "new3", "x3")]);
    want.insert(50, ("n50".into(), "x50".into()));
    assert_eq!(r.by_id(), want, "appended once, never twice");
}

#[tokio::test]
async fn a_short_read_answer_never_deletes_rows() {
    use futures::StreamExt;
    // Ten rows a request: a full read of 40 rows takes five.
    let r = race(40, |o| o.read_chunk_cells = 30).await;
    // The very first answer (the header) comes back empty: read again, never taken as a tab
    // without a header.
    r.emu
        .inject_fault(FaultRule::truncate_next(5, 1).for_method("values.batchGet"));
    let _ = r.sheet.scan().next().await.unwrap().unwrap();
    // One well-formed answer of a full read misses its last 5 rows.
    for nth in 0..5 {
        for _ in 0..nth {
            r.emu.inject_fault(
                FaultRule::next(sheetsync_emulator::FaultKind::Delay { ms: 0 }, 1)
                    .for_method("values.batchGet"),
            );
        }
        r.emu
            .inject_fault(FaultRule::truncate_next(5, 1).for_method("values.batchGet"));
        assert_eq!(
            scanned_ids(&r).await,
            (1..=40).collect::<Vec<_>>(),
            "read again, nothing missing"
        );
        r.emu.clear_faults();
    }
    // A tab that keeps answering short: the read fails, it never reports fewer rows.
    r.emu.inject_fault(FaultRule {
        rate: Some(1.0),
        times: None,
        ..FaultRule::truncate_next(5, 1).for_method("values.batchGet")
    });
    let err = r.sheet.scan().next().await.unwrap();
    assert!(err.is_err(), "a read that is never a snapshot fails");
}

#[tokio::test]
async fn a_batch_a_crashed_process_never_verified_is_repaired_by_the_next() {
    use futures::StreamExt;
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap(); // positions known
                                                           // A person deletes row 3 (id 2): the positions are now stale by one.
    r.emu.delete_rows(&r.id, "Sheet1", 3, 1).unwrap();
    // The batch is applied, its answer is lost, and the scratch tab cannot be read back
    // before the process dies.
    r.emu
        .inject_fault(FaultRule::drop_after_next(1).for_method("spreadsheets.batchUpdate"));
    r.emu
        .inject_fault(FaultRule::status_rate(503, 1.0).for_method("values.batchGet"));
    let err = r
        .sheet
        .apply(vec![delete(20)], &ctx())
        .await
        .expect_err("nothing could be verified");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(
        !r.by_id().contains_key(&21),
        "the stale delete took id 21 (the race happened)"
    );
    r.emu.clear_faults();
    // The next process: before anything else it checks the scratch tab and restores id 21.
    let client = Arc::new(
        SheetsClient::new(ClientConfig::emulator(&r.emu.base_url()))
            .await
            .unwrap(),
    );
    let mut opts = SheetOptions::new(&r.id, 0);
    opts.use_drive_version = false;
    let next = SheetTable::new(client, opts, schema());
    let _ = next.scan().next().await.unwrap().unwrap();
    assert_eq!(
        r.by_id(),
        Race::expect(30, &[2], &[]),
        "id 21 back, id 20 kept"
    );
    // Verifying again (another restart) changes nothing.
    let client = Arc::new(
        SheetsClient::new(ClientConfig::emulator(&r.emu.base_url()))
            .await
            .unwrap(),
    );
    let again = SheetTable::new(client, SheetOptions::new(&r.id, 0), schema());
    let _ = again.scan().next().await.unwrap().unwrap();
    assert_eq!(r.by_id(), Race::expect(30, &[2], &[]));
}

#[tokio::test]
async fn a_full_read_in_chunks_is_a_snapshot_when_rows_move_between_chunks() {
    use futures::StreamExt;
    use sheetsync_emulator::{EditTrigger, PersonEdit};
    // 1,200 rows, 90 a request: the read takes 14 requests.
    let r = race(1200, |o| o.read_chunk_cells = 270).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap(); // layout known
    let edits = [
        // A row dragged to the bottom after the first chunk was read.
        PersonEdit::MoveRows {
            sheet: "Sheet1".into(),
            start: 5,
            count: 1,
            before: 1202,
        },
        // The whole range sorted between two chunks.
        PersonEdit::SortRange {
            range: "Sheet1!A2:C1201".into(),
            column: 3,
            ascending: false,
        },
    ];
    for (nth, edit) in [(1, edits[0].clone()), (6, edits[1].clone())] {
        r.emu
            .schedule_edit(&r.id, EditTrigger::after("values.batchGet").nth(nth), edit)
            .unwrap();
        let ids = scanned_ids(&r).await;
        assert_eq!(ids.len(), 1200, "no row invisible to the read");
        assert_eq!(ids, (1..=1200).collect::<Vec<_>>());
        assert_eq!(r.emu.fired_edits().len(), 1, "the edit happened mid-read");
        r.emu.clear_scheduled_edits();
    }
}

#[tokio::test]
async fn a_webhook_snapshot_never_reverts_what_sheetsync_wrote_after_it() {
    let r = race(10, |_| {}).await;
    warm(&r).await;
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    // A person edits id 5's note; the trigger reports the row as it was then.
    r.emu
        .set_cells(&r.id, "Sheet1!C6", vec![vec![json!("person")]])
        .unwrap();
    r.sheet
        .accept_edit(sheetsync_gsheets::SheetEdit {
            sheet_id: 0,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            header: vec![json!("id"), json!("name"), json!("note")],
            rows: vec![(6, vec![json!(5), json!("n5"), json!("person")])],
            structural: false,
            columns: Some((3, 3)),
        })
        .unwrap();
    // Meanwhile the database's change of id 5's name is written to the Sheet.
    let out = r
        .sheet
        .apply(vec![update(5, "new5")], &ctx())
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    let seen: Vec<Row> = batch
        .changes
        .iter()
        .filter_map(|o| match &o.change {
            Change::Upsert(row) => Some(row.clone()),
            Change::Overwritten { row, .. } => Some(row.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        vec![row(5, "new5", "person")],
        "the person's note, and the name sheetsync wrote after the edit: {:?}",
        batch.changes
    );
}

#[tokio::test]
async fn an_edit_a_later_full_read_covered_is_never_served_again() {
    use futures::StreamExt;
    let r = race(10, |o| o.clock_skew_ms = 0).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap();
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    r.emu
        .set_cells(&r.id, "Sheet1!C6", vec![vec![json!("person")]])
        .unwrap();
    r.sheet
        .accept_edit(sheetsync_gsheets::SheetEdit {
            sheet_id: 0,
            timestamp_ms: chrono::Utc::now().timestamp_millis() - 5,
            header: vec![json!("id"), json!("name"), json!("note")],
            rows: vec![(6, vec![json!(5), json!("n5"), json!("person")])],
            structural: false,
            columns: Some((3, 3)),
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A full read that started after the edit saw it.
    let _ = r.sheet.scan().next().await.unwrap().unwrap();
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert!(batch.changes.is_empty(), "{:?}", batch.changes);
}

#[tokio::test]
async fn a_full_read_keeps_the_edit_time_a_person_edit_reported() {
    use futures::StreamExt;
    let r = race(10, |o| o.clock_skew_ms = 0).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap();
    let at = chrono::Utc::now().timestamp_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    r.emu
        .set_cells(&r.id, "Sheet1!C6", vec![vec![json!("person")]])
        .unwrap();
    r.sheet
        .accept_edit(sheetsync_gsheets::SheetEdit {
            sheet_id: 0,
            timestamp_ms: at,
            header: vec![json!("id"), json!("name"), json!("note")],
            rows: vec![(6, vec![json!(5), json!("n5"), json!("person")])],
            structural: false,
            columns: Some((3, 3)),
        })
        .unwrap();
    // A person inserts a row somewhere: the next read is a full one.
    r.emu.insert_rows(&r.id, "Sheet1", 3, 1).unwrap();
    let all = r.sheet.scan().next().await.unwrap().unwrap();
    let time_of = |id: i64| {
        all.iter()
            .find(|o| matches!(&o.change, Change::Upsert(row) if row.0[0] == Value::Int(id)))
            .and_then(|o| o.at)
            .map(|t| t.timestamp_millis())
    };
    assert_eq!(time_of(5), Some(at), "the person's edit keeps its time");
    assert_eq!(
        time_of(4),
        None,
        "rows nobody edited have no time of their own"
    );
    // Once the row changes again without a trigger (another program), its time is unknown.
    r.emu
        .set_cells(&r.id, "Sheet1!B7", vec![vec![json!("program")]])
        .unwrap();
    let all = r.sheet.scan().next().await.unwrap().unwrap();
    let five = all
        .iter()
        .find(|o| matches!(&o.change, Change::Upsert(row) if row.0[0] == Value::Int(5)))
        .unwrap();
    assert_eq!(five.at, None);
}

#[tokio::test]
async fn a_row_google_refuses_is_held_and_the_others_are_written_without_a_loop() {
    // The data fills the tab's 1,000 rows; the spreadsheet may hold only a few more cells than
    // that and the scratch tab, so a new row (a new grid row) hits Google's cell limit.
    let config = Config {
        cell_limit: 26_000 + 2 * 27 + 10,
        ..Config::default()
    };
    let r = race_on(config, 999, |_| {}).await;
    warm(&r).await;
    r.emu.reset_counters();
    let insert = WriteOp::Upsert {
        row: row(5000, "n5000", "x5000"),
        expected: Expected::Absent,
    };
    let out = r
        .sheet
        .apply(vec![update(7, "new7"), insert.clone()], &ctx())
        .await
        .unwrap();
    assert_eq!(out[0], WriteOutcome::Applied, "the other row is written");
    match &out[1] {
        WriteOutcome::Held(reason) => assert!(reason.contains("cell limit"), "{reason}"),
        other => panic!("the refused row is held, not {other:?}"),
    }
    // The batch, then the row written alone, then the refused row alone: no loop.
    assert_eq!(r.emu.request_count("sheets.spreadsheets.batchUpdate"), 3);
    let out = r.sheet.apply(vec![insert], &ctx()).await.unwrap();
    assert!(matches!(out[0], WriteOutcome::Held(_)));
    assert_eq!(r.emu.request_count("sheets.spreadsheets.batchUpdate"), 4);
    assert_eq!(r.by_id()[&7].0, "new7");
}

#[tokio::test]
async fn a_write_a_crashed_process_never_verified_is_repaired_by_the_next() {
    use futures::StreamExt;
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let _ = r.sheet.scan().next().await.unwrap().unwrap(); // positions known
    r.emu.delete_rows(&r.id, "Sheet1", 3, 1).unwrap(); // id 2: positions stale by one
    r.emu
        .inject_fault(FaultRule::drop_after_next(1).for_method("spreadsheets.batchUpdate"));
    r.emu
        .inject_fault(FaultRule::status_rate(503, 1.0).for_method("values.batchGet"));
    let err = r
        .sheet
        .apply(vec![update(20, "new20")], &ctx())
        .await
        .expect_err("nothing could be verified");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    r.emu.clear_faults();
    // The next process finds id 21's row carrying key 20 and puts it back.
    let client = Arc::new(
        SheetsClient::new(ClientConfig::emulator(&r.emu.base_url()))
            .await
            .unwrap(),
    );
    let mut opts = SheetOptions::new(&r.id, 0);
    opts.use_drive_version = false;
    let next = SheetTable::new(client, opts, schema());
    let _ = next.scan().next().await.unwrap().unwrap();
    assert_eq!(r.by_id(), Race::expect(30, &[2], &[]), "id 21 restored");
}

impl Race {
    /// Applies `ops`, which must not fail.
    async fn write(&self, ops: Vec<WriteOp>) -> Vec<WriteOutcome> {
        self.sheet.apply(ops, &ctx()).await.unwrap()
    }
}

/// Key-column (and other value) reads the client has sent so far.
fn reads(r: &Race) -> u64 {
    r.emu.value_reads()
}

fn insert_new(id: i64) -> WriteOp {
    WriteOp::Upsert {
        row: row(id, &format!("n{id}"), &format!("x{id}")),
        expected: Expected::Absent,
    }
}

fn edit_of(rows: Vec<(u32, Vec<Json>)>) -> sheetsync_gsheets::SheetEdit {
    sheetsync_gsheets::SheetEdit {
        sheet_id: 0,
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        header: vec![json!("id"), json!("name"), json!("note")],
        rows,
        structural: false,
        columns: Some((3, 3)),
    }
}

#[tokio::test]
async fn writes_keep_positions_up_to_date_without_reading_the_key_column() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let before = reads(&r);
    // Cell writes move nothing; a delete shifts the rows below it up by one.
    for ops in [
        vec![update(5, "new5")],
        vec![delete(7)],
        vec![update(20, "new20"), update(30, "new30")],
    ] {
        let out = r.write(ops).await;
        assert!(out.iter().all(|o| *o == WriteOutcome::Applied), "{out:?}");
    }
    assert_eq!(reads(&r), before, "no write read the key column");
    let changed = [
        (5, "new5", "x5"),
        (20, "new20", "x20"),
        (30, "new30", "x30"),
    ];
    assert_eq!(r.by_id(), Race::expect(30, &[7], &changed));
    // A new row lands at a row the answer does not tell: writing it again reads once.
    let out = r.write(vec![insert_new(31)]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(reads(&r), before, "an append needs no position");
    let out = r.write(vec![update(31, "new31")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(reads(&r), before + 1, "the appended row was located once");
    let out = r.write(vec![update(4, "new4")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(reads(&r), before + 1);
    let mut expect = Race::expect(31, &[7], &changed);
    expect.insert(31, ("new31".into(), "x31".into()));
    expect.insert(4, ("new4".into(), "x4".into()));
    assert_eq!(r.by_id(), expect);
}

#[tokio::test]
async fn rows_moved_unreported_between_writes_are_caught_and_the_retry_reads_again() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    // No trigger reports it: the positions this process knows are one row off below row 3.
    r.emu.delete_rows(&r.id, "Sheet1", 3, 1).unwrap(); // id 2
    let out = r.write(vec![update(20, "new20")]).await;
    assert_eq!(out, vec![WriteOutcome::Stale], "the mis-hit is reported");
    assert_eq!(r.by_id(), Race::expect(30, &[2], &[]), "id 21 restored");
    let before = reads(&r);
    let out = r.write(vec![update(20, "new20")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(reads(&r), before + 1, "the retry read the key column");
    assert_eq!(r.by_id(), Race::expect(30, &[2], &[(20, "new20", "x20")]));
}

#[tokio::test]
async fn a_reported_edit_keeps_positions_only_when_it_moved_no_key() {
    let r = race(30, |_| {}).await;
    warm(&r).await;
    let before = reads(&r);
    // A person's edit of id 5's note, at the row id 5 is known to be: positions hold.
    r.sheet
        .accept_edit(edit_of(vec![(6, vec![json!(5), json!("n5"), json!("p5")])]))
        .unwrap();
    let out = r.write(vec![update(9, "new9")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(reads(&r), before, "an edit in place moves no row");
    // A person types a new row at the bottom: where keys are must be read again, or the
    // database's insert of the same key would be appended a second time.
    r.emu
        .set_cells(
            &r.id,
            "Sheet1!A32",
            vec![vec![json!(31), json!("p31"), json!("")]],
        )
        .unwrap();
    r.sheet
        .accept_edit(edit_of(vec![(
            32,
            vec![json!(31), json!("p31"), json!("")],
        )]))
        .unwrap();
    let out = r.write(vec![insert_new(31)]).await;
    assert_eq!(
        out,
        vec![WriteOutcome::Stale],
        "the key is in the Sheet already"
    );
    assert_eq!(reads(&r), before + 1);
    assert_eq!(
        r.by_id()[&31],
        ("p31".into(), "".into()),
        "not appended twice"
    );
}

#[tokio::test]
async fn a_lost_batch_that_would_have_grown_the_scratch_tab_never_blocks_the_tab() {
    let r = race(30, |_| {}).await;
    warm(&r).await; // the scratch tab holds one pre-image row
    r.emu
        .inject_fault(FaultRule::drop_next(1).for_method("spreadsheets.batchUpdate"));
    let err = r
        .sheet
        .apply(vec![update(2, "new2"), update(3, "new3")], &ctx())
        .await
        .expect_err("the connection dropped before Google applied anything");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    r.emu.clear_faults();
    // The batch would have grown the scratch tab to two pre-image rows; it is still one row
    // short, which shows the batch was never applied (a read past its end is refused).
    let out = r.write(vec![update(2, "new2"), update(3, "new3")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied; 2]);
    let changed = [(2, "new2", "x2"), (3, "new3", "x3")];
    assert_eq!(r.by_id(), Race::expect(30, &[], &changed));
}

/// Makes a full read in the background and waits until the engine is asked to take it.
async fn read_in_background(r: &Race) {
    r.sheet.read_in_background();
    for _ in 0..500 {
        if r.sheet.full_scan_requested() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the background read never ended");
}

/// The engine's full read: its cursor, then the scan; the rows by id (name, note).
async fn engine_full_read(r: &Race) -> (Cursor, BTreeMap<i64, (String, String)>) {
    use futures::StreamExt;
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    let rows = r.sheet.scan().next().await.unwrap().unwrap();
    let by_id = rows
        .into_iter()
        .filter_map(|o| match o.change {
            Change::Upsert(row) => Some(row),
            _ => None,
        })
        .map(|row| {
            let text = |v: &Value| match v {
                Value::Text(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let Value::Int(id) = row.0[0] else {
                panic!("id {:?}", row.0[0])
            };
            (id, (text(&row.0[1]), text(&row.0[2])))
        })
        .collect();
    (cursor, by_id)
}

/// A person edits id 5's note in the Sheet, and the trigger reports it.
fn person_edits_note_of_5(r: &Race) {
    r.emu
        .set_cells(&r.id, "Sheet1!C6", vec![vec![json!("p5")]])
        .unwrap();
    r.sheet
        .accept_edit(edit_of(vec![(6, vec![json!(5), json!("n5"), json!("p5")])]))
        .unwrap();
}

#[tokio::test]
async fn a_background_read_never_reverts_an_edit_the_engine_took_meanwhile() {
    let r = race(10, |_| {}).await;
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    read_in_background(&r).await; // a snapshot from before the edit
    person_edits_note_of_5(&r);
    // The engine's incremental cycle takes the edit (and commits it) ...
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert_eq!(batch.changes.len(), 1);
    r.sheet.ack(&batch.cursor).await.unwrap();
    // ... then the full read it was asked for takes the snapshot, without reading again.
    let reads_before = reads(&r);
    let (_, rows) = engine_full_read(&r).await;
    assert_eq!(
        reads(&r),
        reads_before,
        "the background read served the engine"
    );
    assert_eq!(
        rows[&5],
        ("n5".into(), "p5".into()),
        "the edit is not reverted"
    );
    assert_eq!(rows.len(), 10);
}

#[tokio::test]
async fn a_background_read_serves_an_edit_the_engine_has_not_taken_yet() {
    let r = race(10, |_| {}).await;
    read_in_background(&r).await;
    person_edits_note_of_5(&r);
    // The full read's cursor passes the edit: the read itself must carry it.
    let (cursor, rows) = engine_full_read(&r).await;
    assert_eq!(rows[&5], ("n5".into(), "p5".into()));
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert!(batch.changes.is_empty(), "{:?}", batch.changes);
}

#[tokio::test]
async fn a_write_or_a_structural_edit_after_a_background_read_voids_it() {
    let r = race(10, |_| {}).await;
    read_in_background(&r).await;
    let out = r.write(vec![update(5, "new5")]).await;
    assert_eq!(out, vec![WriteOutcome::Applied]);
    let (_, rows) = engine_full_read(&r).await;
    assert_eq!(
        rows[&5],
        ("new5".into(), "x5".into()),
        "read again after our write"
    );

    read_in_background(&r).await;
    r.emu.delete_rows(&r.id, "Sheet1", 4, 1).unwrap(); // id 3
    let mut removed = edit_of(vec![]);
    removed.structural = true;
    r.sheet.accept_edit(removed).unwrap();
    let (_, rows) = engine_full_read(&r).await;
    assert!(
        !rows.contains_key(&3),
        "read again after the structural edit"
    );
    assert_eq!(rows.len(), 9);
}

#[tokio::test]
async fn a_full_read_never_drops_an_edit_our_write_overwrote() {
    // No clock skew: the edit is older than the full read, which would drop it as seen.
    let r = race(10, |o| o.clock_skew_ms = 0).await;
    warm(&r).await;
    // A person types id 5's name while our write of it is in flight; ours lands on top.
    let t_edit = chrono::Utc::now().timestamp_millis() + 250;
    let out = r
        .apply_racing(vec![update(5, "new5")], |emu, id| {
            emu.set_cells(id, "Sheet1!B6", vec![vec![json!("person")]])
                .unwrap();
        })
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    assert_eq!(r.by_id()[&5].0, "new5", "our write landed on top");
    // The trigger's report of the person's edit comes after.
    let mut edit = edit_of(vec![(6, vec![json!(5), json!("person"), json!("x5")])]);
    (edit.timestamp_ms, edit.columns) = (t_edit, Some((2, 2)));
    r.sheet.accept_edit(edit).unwrap();
    // A full read now sees our write, not the person's edit: the edit must still come next.
    let (cursor, rows) = engine_full_read(&r).await;
    assert_eq!(rows[&5].0, "new5");
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert!(
        batch
            .changes
            .iter()
            .any(|o| matches!(&o.change, Change::Overwritten { row, .. } if row.0[1] == Value::Text("person".into()))),
        "the person's edit is kept for the merge: {:?}",
        batch.changes
    );
}

// ---- notes on rows that wait for a person (`sheet_status = "note"`) ----

fn notice(id: i64, text: &str) -> RowNotice {
    RowNotice {
        key: key(id),
        text: text.into(),
    }
}

impl Race {
    /// Every note in the tab: (1-based row, 0-based column) → text.
    fn notes(&self) -> BTreeMap<(u32, u32), String> {
        let ss = self.emu.spreadsheet(&self.id).unwrap();
        let sheet = ss.sheets.iter().find(|s| s.props.sheet_id == 0).unwrap();
        let mut out = BTreeMap::new();
        for r in 0..sheet.props.row_count {
            for (c, cell) in sheet.grid.row(r).unwrap_or_default().iter().enumerate() {
                if let Some(n) = &cell.note {
                    out.insert((r + 1, c as u32), n.clone());
                }
            }
        }
        out
    }

    /// The 1-based row holding `id`.
    fn row_of(&self, id: i64) -> u32 {
        let at = self.rows().iter().position(|(i, _, _)| *i == id);
        at.expect("the id is in the tab") as u32 + 2
    }

    /// A person's own note on a cell (through the API: notes fire no trigger).
    async fn person_note(&self, row: u32, col: u32, note: &str) {
        let client = SheetsClient::new(fast_client(&self.emu.base_url()))
            .await
            .unwrap();
        use google_sheets4::api::{CellData, GridCoordinate, Request, RowData, UpdateCellsRequest};
        let req = sheetsync_gsheets::BatchUpdateSpreadsheetRequest {
            requests: Some(vec![Request {
                update_cells: Some(UpdateCellsRequest {
                    start: Some(GridCoordinate {
                        sheet_id: Some(0),
                        row_index: Some(row as i32 - 1),
                        column_index: Some(col as i32),
                    }),
                    rows: Some(vec![RowData {
                        values: Some(vec![CellData {
                            note: Some(note.into()),
                            ..Default::default()
                        }]),
                    }]),
                    fields: Some(google_sheets4::common::FieldMask::new(&["note"])),
                    range: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        client.batch_update(&self.id, req).await.unwrap();
    }
}

#[tokio::test]
async fn notes_mark_rows_that_wait_and_go_when_they_sync_leaving_peoples_notes_alone() {
    let r = race(6, |o| o.sheet_status = sheetsync_gsheets::SheetStatus::Note).await;
    r.person_note(4, 0, "ask Ann first").await; // id 3's key cell
    r.person_note(5, 1, "typo?").await; // id 4's name cell
    let people: BTreeMap<(u32, u32), String> = [((4, 0), "ask Ann first"), ((5, 1), "typo?")]
        .into_iter()
        .map(|(at, n)| (at, n.to_string()))
        .collect();
    let waiting = [
        notice(2, "held — column \"qty\": \"abc\" is not a valid integer"),
        notice(3, "conflict on name"),
        notice(4, "conflict on note"),
    ];
    r.sheet.annotate(&waiting).await.unwrap();
    let mut want = people.clone();
    for (row, text) in [(3, &waiting[0].text), (5, &waiting[2].text)] {
        want.insert((row, 0), format!("sheetsync: {text}"));
    }
    assert_eq!(r.notes(), want, "id 3's key cell keeps the person's note");
    let writes = r.emu.request_count("spreadsheets.batchUpdate");
    r.sheet.annotate(&waiting).await.unwrap();
    assert_eq!(
        r.emu.request_count("spreadsheets.batchUpdate"),
        writes,
        "notes already right are not written again"
    );
    r.sheet.annotate(&waiting[2..]).await.unwrap();
    want.remove(&(3, 0));
    assert_eq!(r.notes(), want, "id 2 synced again: its note is gone");
    r.sheet.annotate(&[]).await.unwrap();
    assert_eq!(r.notes(), people, "only people's notes are left");
    assert_eq!(r.by_id(), Race::expect(6, &[], &[]), "no value changed");
}

#[tokio::test]
async fn a_note_in_flight_during_a_sort_never_lands_on_another_row() {
    let r = race(30, |o| {
        o.sheet_status = sheetsync_gsheets::SheetStatus::Note
    })
    .await;
    // Warm up: layout, scratch tab.
    r.sheet.annotate(&[notice(1, "held — x")]).await.unwrap();
    r.sheet.annotate(&[]).await.unwrap();
    r.person_note(r.row_of(9), 0, "mine").await;
    r.delay_next_write();
    let waiting = [notice(20, "held — bad"), notice(5, "conflict on name")];
    let sheet = r.sheet.clone();
    let task = tokio::spawn(async move { sheet.annotate(&waiting).await });
    tokio::time::sleep(Duration::from_millis(250)).await;
    // By note, descending: x9, x8, ..., x30, x3, ... every row moves.
    r.emu.sort_range(&r.id, "Sheet1!A2:C31", 3, false).unwrap();
    let first = task.await.unwrap();
    let check = |all: bool| {
        let notes = r.notes();
        for ((row, col), text) in &notes {
            let id = r.rows()[*row as usize - 2].0;
            let fine = match id {
                9 => text == "mine",
                20 => text == "sheetsync: held — bad",
                5 => text == "sheetsync: conflict on name",
                _ => false,
            };
            assert!(
                fine && *col == 0,
                "row {row} (id {id}) has note {text:?}: {notes:?}"
            );
        }
        if all {
            assert_eq!(notes.len(), 3, "{notes:?}");
        }
    };
    check(false);
    assert!(first.is_err(), "the notes that missed are reported");
    let waiting = [notice(20, "held — bad"), notice(5, "conflict on name")];
    r.sheet.annotate(&waiting).await.unwrap();
    check(true);
    assert_eq!(r.by_id(), Race::expect(30, &[], &[]), "no value changed");
}

#[tokio::test]
async fn the_status_column_is_added_written_and_cleared_and_never_synced() {
    let status = sheetsync_gsheets::SheetStatus::Column("sync status".into());
    let r = race(6, |o| o.sheet_status = status).await;
    warm(&r).await;
    let column_d = |r: &Race| -> Vec<Json> {
        let v = r.emu.read_values(&r.id, "Sheet1!D1:D7").unwrap();
        let rows: Vec<Vec<Json>> = serde_json::from_value(v).unwrap_or_default();
        (0..7)
            .map(|i| {
                rows.get(i)
                    .and_then(|c| c.first())
                    .cloned()
                    .unwrap_or(json!(""))
            })
            .collect()
    };
    r.sheet
        .annotate(&[notice(2, "held — bad"), notice(5, "conflict on name")])
        .await
        .unwrap();
    let mut want = vec![json!(""); 7];
    want[0] = json!("sync status");
    want[2] = json!("held — bad");
    want[5] = json!("conflict on name");
    assert_eq!(column_d(&r), want, "the header added after the last one");
    let cursor = r.sheet.cursor().await.unwrap().unwrap();
    let rows: Vec<Row> = r.sheet.scan_rows().await.unwrap();
    let seed: Vec<Row> = (1..=6)
        .map(|i| row(i, &format!("n{i}"), &format!("x{i}")))
        .collect();
    assert_eq!(rows, seed, "the status column is not part of the rows");
    // A person types into the status column: not an edit of the row.
    r.emu
        .set_cells(&r.id, "Sheet1!D4", vec![vec![json!("done?")]])
        .unwrap();
    let typed = vec![json!(3), json!("n3"), json!("x3"), json!("done?")];
    let header = vec![
        json!("id"),
        json!("name"),
        json!("note"),
        json!("sync status"),
    ];
    r.sheet
        .accept_edit(sheetsync_gsheets::SheetEdit {
            header,
            columns: Some((4, 4)),
            ..edit_of(vec![(4, typed)])
        })
        .unwrap();
    let batch = r.sheet.changes(&cursor, 100).await.unwrap();
    assert!(batch.changes.is_empty(), "{:?}", batch.changes);
    // Row 2 synced again; the status column is sheetsync's: what a person typed goes too.
    r.sheet
        .annotate(&[notice(5, "conflict on name")])
        .await
        .unwrap();
    want[2] = json!("");
    assert_eq!(column_d(&r), want);
    r.sheet.annotate(&[]).await.unwrap();
    want[5] = json!("");
    assert_eq!(column_d(&r), want);
    assert_eq!(r.by_id(), Race::expect(6, &[], &[]), "no value changed");
}

/// The ids of the rows a full read saw, sorted.
async fn scanned_ids(r: &Race) -> Vec<i64> {
    use futures::StreamExt;
    let all = r.sheet.scan().next().await.unwrap().unwrap();
    let mut ids: Vec<i64> = all
        .iter()
        .filter_map(|o| match &o.change {
            Change::Upsert(row) => match row.0[0] {
                Value::Int(i) => Some(i),
                _ => None,
            },
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn layout_reads(r: &Race) -> u64 {
    r.emu.request_count("sheets.spreadsheets.get")
}

#[tokio::test]
async fn a_small_tab_reads_in_one_request_once_its_layout_is_known() {
    let r = race(10, |_| {}).await;
    assert_eq!(scanned_ids(&r).await, (1..=10).collect::<Vec<_>>());
    let (values, layouts) = (reads(&r), layout_reads(&r));
    r.emu
        .set_cells(&r.id, "Sheet1!B3", vec![vec![json!("edited")]])
        .unwrap();
    assert_eq!(scanned_ids(&r).await.len(), 10);
    assert_eq!(
        reads(&r) - values,
        1,
        "header, rows and key columns in one request"
    );
    assert_eq!(layout_reads(&r), layouts, "the known layout serves");
}

/// People rename tabs and give another tab the old title (a copy renamed into place): full
/// reads name the tab by sheetId, so they read the renamed tab, and writes follow it.
#[tokio::test]
async fn a_renamed_tab_is_read_by_id_not_the_tab_that_took_its_title() {
    use google_sheets4::api::{
        AddSheetRequest, BatchUpdateSpreadsheetRequest, Request, SheetProperties,
        UpdateSheetPropertiesRequest,
    };
    let r = race(10, |_| {}).await;
    assert_eq!(scanned_ids(&r).await.len(), 10, "layout known");
    let tab = |sheet_id, title: &str| SheetProperties {
        sheet_id,
        title: Some(title.into()),
        ..Default::default()
    };
    let requests = vec![
        Request {
            update_sheet_properties: Some(UpdateSheetPropertiesRequest {
                properties: Some(tab(Some(0), "Renamed")),
                fields: Some(google_sheets4::common::FieldMask::new(&["title"])),
            }),
            ..Default::default()
        },
        Request {
            add_sheet: Some(AddSheetRequest {
                properties: Some(tab(Some(77), "Sheet1")),
            }),
            ..Default::default()
        },
    ];
    let client = SheetsClient::new(fast_client(&r.emu.base_url()))
        .await
        .unwrap();
    let req = BatchUpdateSpreadsheetRequest {
        requests: Some(requests),
        ..Default::default()
    };
    client.batch_update(&r.id, req).await.unwrap();
    let impostor = vec![
        vec![json!("id"), json!("name"), json!("note")],
        vec![json!(500), json!("other"), json!("tab")],
    ];
    r.emu.set_cells(&r.id, "Sheet1!A1", impostor).unwrap();

    assert_eq!(scanned_ids(&r).await, (1..=10).collect::<Vec<_>>());
    r.sheet
        .apply(vec![update(3, "n3x"), insert_new(11)], &ctx())
        .await
        .unwrap();
    let renamed = r.emu.read_values(&r.id, "Renamed!A2:B").unwrap();
    assert_eq!(renamed[2], json!([3, "n3x"]));
    assert_eq!(renamed[10], json!([11, "n11"]));
    let other = r.emu.read_values(&r.id, "Sheet1!A1:C").unwrap();
    assert_eq!(other.as_array().unwrap().len(), 2, "untouched: {other}");
}

/// The row count a full read chunks by may be stale: rows added past it are still read (the
/// last chunk ends open), and a grid that shrank under it gets the tab looked up again.
#[tokio::test]
async fn a_stale_row_count_hides_no_rows_and_a_shrunk_grid_is_looked_up_again() {
    let r = race(40, |o| o.read_chunk_cells = 600).await; // 200 rows a chunk, 1,000-row grid
    assert_eq!(scanned_ids(&r).await.len(), 40, "layout known");
    r.emu
        .edit(
            &r.id,
            sheetsync_emulator::PersonEdit::InsertRows {
                sheet: "Sheet1".into(),
                before: 1001,
                count: 500,
            },
        )
        .unwrap();
    r.emu
        .set_cells(&r.id, "Sheet1!A1400", vec![vec![json!(41), json!("n41")]])
        .unwrap();
    let layouts = layout_reads(&r);
    let ids = scanned_ids(&r).await;
    assert_eq!(
        ids,
        (1..=41).collect::<Vec<_>>(),
        "row 1,400 of a 1,500-row grid read"
    );
    assert_eq!(layout_reads(&r), layouts, "no lookup needed for that");

    r.emu.delete_rows(&r.id, "Sheet1", 200, 1300).unwrap();
    assert_eq!(
        scanned_ids(&r).await,
        (1..=40).collect::<Vec<_>>(),
        "read whole with the grid looked up again"
    );
    assert_eq!(layout_reads(&r), layouts + 1);
}
