use std::sync::Arc;

use futures::StreamExt;

use super::*;
use crate::error::{Error, ErrorKind};
use crate::mapping::DeleteGuard;
use crate::memory::{key_of, MemoryTable};
use crate::model::{Column, ColumnType, InvalidRow, Row, Value};
use crate::model::{Cursor, RowKey};
use crate::state::Choice;
use crate::state::MemoryStateStore;
use crate::table::{Capabilities, WriteContext, WriteOp, WriteOutcome};

fn schema(key_ty: ColumnType) -> TableSchema {
    TableSchema::new(
        "items",
        vec![
            Column::new("id", key_ty).nullable(false),
            Column::new("name", ColumnType::Text),
            Column::new("qty", ColumnType::Int),
        ],
        &["id"],
    )
    .unwrap()
}

fn r(id: i64, name: &str, qty: i64) -> Row {
    Row::new(vec![Value::Int(id), name.into(), Value::Int(qty)])
}

struct Rig {
    sheet: Arc<MemoryTable>,
    db: Arc<MemoryTable>,
    store: Arc<MemoryStateStore>,
    mapping: MappingConfig,
}

impl Rig {
    fn new() -> Self {
        Self::with(
            schema(ColumnType::Int),
            Capabilities {
                incremental: true,
                fetch: true,
                conditional_writes: true,
                ..Default::default()
            },
        )
    }

    fn with(schema: TableSchema, db_caps: Capabilities) -> Self {
        Rig {
            sheet: Arc::new(MemoryTable::sheet_like("sheet", schema.clone())),
            db: Arc::new(MemoryTable::with_capabilities("db", schema, db_caps)),
            store: Arc::new(MemoryStateStore::new()),
            mapping: MappingConfig::new("items", &["id"]),
        }
    }

    /// Text keys, which the engine generates (UUIDs) for new Sheet rows.
    fn text_keys() -> Self {
        Self::with(
            schema(ColumnType::Text),
            Capabilities {
                incremental: true,
                fetch: true,
                ..Default::default()
            },
        )
    }

    /// The Sheet side shows the rows that wait for a person ([`Capabilities::annotations`]).
    fn showing_notices(mut self) -> Self {
        use crate::table::Source;
        let schema = self.sheet.schema().clone();
        let caps = Capabilities {
            annotations: true,
            ..self.sheet.capabilities()
        };
        self.sheet = Arc::new(MemoryTable::with_capabilities("sheet", schema, caps));
        self
    }

    async fn engine(&self) -> Engine {
        Engine::builder(self.mapping.clone(), self.sheet.clone(), self.db.clone())
            .state(self.store.clone())
            .build()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn initial_sync_merges_both_sides_without_clearing_either() {
    let rig = Rig::new();
    rig.sheet.upsert(r(1, "sheet only", 1));
    rig.db.upsert(r(2, "db only", 2));
    rig.sheet.upsert(r(3, "same", 3));
    rig.db.upsert(r(3, "same", 3));
    let e = rig.engine().await;
    let rep = e.run_once().await.unwrap();
    assert_eq!(
        rig.sheet.rows(),
        vec![r(1, "sheet only", 1), r(2, "db only", 2), r(3, "same", 3)]
    );
    assert_eq!(rig.db.rows(), rig.sheet.rows());
    assert_eq!(rep.writes, SideCounts { sheet: 1, db: 1 });
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.writes.total(), 0, "steady state writes nothing");
    assert_eq!(
        rep.write_calls.total(),
        0,
        "steady state makes no write calls"
    );
}

#[tokio::test]
async fn updates_and_deletes_flow_both_ways() {
    let rig = Rig::new();
    for i in 1..=4 {
        rig.db.upsert(r(i, "x", i));
    }
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.upsert(r(1, "sheet edit", 1));
    rig.db.upsert(r(2, "db edit", 2));
    rig.sheet.delete(&key_of(3));
    rig.db.delete(&key_of(4));
    e.run_once().await.unwrap();
    let want = vec![r(1, "sheet edit", 1), r(2, "db edit", 2)];
    assert_eq!(rig.sheet.rows(), want);
    assert_eq!(rig.db.rows(), want);
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn bad_rows_are_held_and_released_and_never_deleted() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "a", 1));
    rig.db.upsert(r(2, "b", 2));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    // A person types text into qty of row 2: the Sheet adapter reports it invalid.
    rig.sheet.delete(&key_of(2));
    rig.sheet.insert_invalid(InvalidRow {
        key: Some(key_of(2)),
        locator: Some("Sheet1!A3:C3".into()),
        reason: "qty: \"lots\" is not a valid integer".into(),
    });
    rig.sheet.upsert(r(1, "still syncing", 1));
    let mut events = e.subscribe();
    e.run_once().await.unwrap();
    assert_eq!(
        rig.db.get(&key_of(2)),
        Some(r(2, "b", 2)),
        "a held row is never deleted"
    );
    assert_eq!(
        rig.db.get(&key_of(1)),
        Some(r(1, "still syncing", 1)),
        "other rows keep syncing"
    );
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(held[0].reason.contains("lots"));
    let mut saw_held = false;
    while let Ok(ev) = events.try_recv() {
        saw_held |= matches!(ev, Event::Held(_));
    }
    assert!(saw_held);
    // Fixed.
    rig.sheet.clear_invalid();
    rig.sheet.upsert(r(2, "b", 20));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.get(&key_of(2)), Some(r(2, "b", 20)));
    assert!(e.held().await.is_empty());
}

#[tokio::test]
async fn a_sheet_that_shows_no_notices_is_never_asked_to() {
    let rig = Rig::new();
    let e = rig.engine().await;
    rig.sheet.insert_invalid(InvalidRow {
        key: Some(key_of(2)),
        locator: None,
        reason: "qty: \"lots\" is not a valid integer".into(),
    });
    e.run_once().await.unwrap();
    e.run_once().await.unwrap();
    assert_eq!(e.held().await.len(), 1);
    assert_eq!(rig.sheet.calls("annotate"), 0);
}

#[tokio::test]
async fn the_sheet_is_told_which_rows_wait_when_that_changes_and_again_after_a_failure() {
    let rig = Rig::new().showing_notices();
    let e = rig.engine().await;
    rig.db.upsert(r(2, "b", 2));
    e.run_once().await.unwrap();
    assert_eq!(
        rig.sheet.calls("annotate"),
        1,
        "the first cycle clears what was left"
    );
    rig.sheet.delete(&key_of(2));
    rig.sheet.insert_invalid(InvalidRow {
        key: Some(key_of(2)),
        locator: None,
        reason: "qty: \"lots\" is not a valid integer".into(),
    });
    e.run_once().await.unwrap();
    let shown = |t: &MemoryTable| -> Vec<(String, String)> {
        t.notices()
            .into_iter()
            .map(|n| (n.key.to_string(), n.text))
            .collect()
    };
    let held = vec![(
        "2".to_string(),
        "held — qty: \"lots\" is not a valid integer".to_string(),
    )];
    assert_eq!(shown(&rig.sheet), held);
    e.run_once().await.unwrap();
    assert_eq!(
        rig.sheet.calls("annotate"),
        2,
        "nothing changed: not asked again"
    );
    // Fixed, but the Sheet cannot be told at once: the cycle still syncs, the next one tells.
    rig.sheet.clear_invalid();
    rig.sheet.upsert(r(2, "b", 20));
    rig.sheet.fail_next_annotations(1);
    e.run_once().await.unwrap();
    assert_eq!(rig.db.get(&key_of(2)), Some(r(2, "b", 20)));
    assert_eq!(shown(&rig.sheet), held);
    e.run_once().await.unwrap();
    assert_eq!(shown(&rig.sheet), vec![]);
    assert_eq!(rig.db.calls("annotate"), 0, "only the Sheet side is told");
}

#[tokio::test]
async fn unidentifiable_rows_suspend_deletes_inferred_from_absence() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "a", 1));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    // Row 1's key cell now holds garbage: the row is missing under its key.
    rig.sheet.delete(&key_of(1));
    rig.sheet.insert_invalid(InvalidRow {
        key: None,
        locator: Some("row 2".into()),
        reason: "id: \"x\" is not a valid integer".into(),
    });
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "a", 1)]);
}

#[tokio::test]
async fn constraint_violations_hold_one_row_only() {
    let rig = Rig::new();
    let e = rig.engine().await;
    rig.db.reject_rows(|row| {
        (row.0[2] == Value::Int(-1)).then(|| "CHECK (qty >= 0) violated".to_string())
    });
    rig.sheet.upsert(r(1, "ok", 1));
    rig.sheet.upsert(r(2, "bad", -1));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "ok", 1)]);
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(held[0].reason.contains("CHECK"), "{}", held[0].reason);
    rig.db.accept_all_rows();
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "ok", 1), r(2, "bad", -1)]);
    assert!(e.held().await.is_empty());
}

#[tokio::test]
async fn mass_delete_guard_stops_and_host_can_override() {
    let rig = Rig::new();
    for i in 1..=20 {
        rig.db.upsert(r(i, "x", i));
    }
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.clear();
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.guard_tripped, vec![Side::Db]);
    assert_eq!(rig.db.rows().len(), 20, "guard keeps the database rows");
    // Edits elsewhere still sync while the guard holds.
    rig.db.upsert(r(21, "new", 21));
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), vec![r(21, "new", 21)]);
    e.allow_deletes_once().await;
    let rep = e.run_once().await.unwrap();
    assert!(rep.guard_tripped.is_empty());
    assert_eq!(rig.db.rows(), vec![r(21, "new", 21)]);
}

#[tokio::test]
async fn a_failed_read_is_not_taken_as_deletes() {
    let rig = Rig::new();
    for i in 1..=3 {
        rig.db.upsert(r(i, "x", i));
    }
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.fail_next_scans(1);
    assert!(e.run_once().await.is_err());
    assert_eq!(rig.db.rows().len(), 3);
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows().len(), 3);
}

#[tokio::test]
async fn failed_writes_are_retried_and_nothing_is_lost_across_restart() {
    let rig = Rig::new();
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.db.upsert(r(1, "db", 1));
    rig.sheet.fail_next_applies(1);
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.pending, 1);
    assert!(rig.sheet.rows().is_empty());
    // The database feed moved past the change; a restarted engine must still deliver it.
    drop(e);
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), vec![r(1, "db", 1)]);
}

#[tokio::test]
async fn manual_conflicts_are_kept_and_resolved_through_the_api() {
    let mut rig = Rig::new();
    rig.mapping.resolvers = vec![crate::ResolverSpec::Manual];
    rig.db.upsert(r(1, "base", 1));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.upsert(r(1, "sheet", 1));
    rig.db.upsert(r(1, "db", 1));
    e.run_once().await.unwrap();
    let conflicts = e.conflicts().await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        rig.sheet.rows(),
        vec![r(1, "sheet", 1)],
        "a held row is not written"
    );
    assert_eq!(rig.db.rows(), vec![r(1, "db", 1)]);
    // Survives a restart.
    drop(e);
    let e = rig.engine().await;
    assert_eq!(e.conflicts().await.len(), 1);
    assert!(e
        .resolve_conflict(&key_of(9), Choice::Side(Side::Db))
        .await
        .is_err());
    e.resolve_conflict(&key_of(1), Choice::Side(Side::Sheet))
        .await
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "sheet", 1)]);
    assert!(e.conflicts().await.is_empty());
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn new_sheet_rows_get_uuid_keys_first_then_reach_the_db() {
    let rig = Rig::text_keys();
    let e = rig.engine().await;
    rig.sheet
        .insert_unkeyed(Row::new(vec![Value::Null, "new".into(), Value::Int(5)]));
    e.run_once().await.unwrap();
    let rows = rig.sheet.rows();
    assert_eq!(rows.len(), 1);
    assert!(rig.sheet.unkeyed().is_empty());
    assert!(matches!(&rows[0].0[0], Value::Text(s) if s.len() == 36));
    assert_eq!(rig.db.rows(), rows);
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn a_generated_key_reaches_the_database_only_once_the_sheet_has_it() {
    let rig = Rig::text_keys();
    let e = rig.engine().await;
    rig.sheet
        .insert_unkeyed(Row::new(vec![Value::Null, "new".into(), Value::Int(5)]));
    let plan = e.plan().await.unwrap();
    assert!(
        matches!(
            &plan.db[..],
            [PlannedOp {
                op: WriteOp::Upsert { .. },
                ..
            }]
        ),
        "the dry run shows the database's part too: {plan:?}"
    );
    rig.sheet.fail_next_applies(1);
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.unkeyed().len(), 1, "the Sheet write failed");
    assert!(rig.db.rows().is_empty(), "so the database was not written");
    e.run_once().await.unwrap();
    let rows = rig.sheet.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rig.db.rows(), rows);
}

#[tokio::test]
async fn database_generated_keys_are_written_back() {
    let rig = Rig::with(
        schema(ColumnType::Int),
        Capabilities {
            incremental: true,
            fetch: true,
            generated_keys: true,
            ..Default::default()
        },
    );
    rig.db.upsert(r(41, "existing", 1));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet
        .insert_unkeyed(Row::new(vec![Value::Null, "new".into(), Value::Int(5)]));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.get(&key_of(42)), Some(r(42, "new", 5)));
    assert_eq!(rig.sheet.rows(), rig.db.rows());
    assert!(rig.sheet.unkeyed().is_empty());
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn a_cleared_key_cell_gets_its_key_back() {
    let rig = Rig::new();
    rig.db.upsert(r(7, "keep me", 3));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.delete(&key_of(7));
    rig.sheet
        .insert_unkeyed(Row::new(vec![Value::Null, "keep me".into(), Value::Int(3)]));
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), vec![r(7, "keep me", 3)]);
    assert_eq!(rig.db.rows(), vec![r(7, "keep me", 3)]);
}

#[tokio::test]
async fn rows_without_key_are_held_when_keys_are_required() {
    let mut rig = Rig::new();
    rig.mapping.keys = crate::KeyStrategy::Require;
    let e = rig.engine().await;
    rig.sheet
        .insert_unkeyed(Row::new(vec![Value::Null, "no key".into(), Value::Int(1)]));
    e.run_once().await.unwrap();
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(held[0].reason.contains("key column"), "{}", held[0].reason);
    assert!(rig.db.rows().is_empty());
}

#[tokio::test]
async fn duplicate_keys_in_the_sheet_are_held() {
    let schema = schema(ColumnType::Int);
    let inner = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    inner.upsert(r(1, "a", 1));
    inner.upsert(r(2, "first", 2));
    // A Sheet whose scan shows one key typed twice (a memory table cannot hold that).
    let sheet = Arc::new(Wrapped {
        scan_extra: Some(r(2, "second", 2)),
        ..Wrapped::new(&inner)
    });
    let db = Arc::new(MemoryTable::new("db", schema));
    db.upsert(r(2, "first", 2));
    let e = Engine::builder(MappingConfig::new("items", &["id"]), sheet, db.clone())
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(
        db.rows(),
        vec![r(1, "a", 1), r(2, "first", 2)],
        "the duplicated key is not synced"
    );
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(
        held[0].reason.contains("appears in 2 rows"),
        "{}",
        held[0].reason
    );
}

#[tokio::test]
async fn stale_conditional_writes_are_merged_again() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "base", 1));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    // A sheet edit, and a db edit that the engine's read does not see: insert it between read
    // and write by making the db edit right after planning.
    rig.sheet.upsert(r(1, "sheet", 1));
    let plan = e.plan().await.unwrap();
    assert_eq!(plan.db.len(), 1);
    rig.db.upsert(r(1, "base", 99));
    e.run_once().await.unwrap();
    // The db edit to qty survives next to the sheet edit to name.
    assert_eq!(rig.db.rows(), vec![r(1, "sheet", 99)]);
    assert_eq!(rig.sheet.rows(), vec![r(1, "sheet", 99)]);
}

#[tokio::test]
async fn guard_count_limit() {
    let mut rig = Rig::new();
    rig.mapping.guard = DeleteGuard {
        max_count: Some(2),
        max_share: 1.0,
        min_rows: 1,
        stop_total_wipe: true,
        ..DeleteGuard::default()
    };
    for i in 1..=10 {
        rig.db.upsert(r(i, "x", i));
    }
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    for i in 1..=3 {
        rig.db.delete(&key_of(i));
    }
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.guard_tripped, vec![Side::Sheet]);
    assert_eq!(rig.sheet.rows().len(), 10);
}

/// `Engine::run` in a task; sending on the channel shuts it down.
fn run_in_background(
    e: &Arc<Engine>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let e = e.clone();
    let runner = tokio::spawn(async move {
        e.run(async {
            let _ = rx.await;
        })
        .await
    });
    (tx, runner)
}

#[tokio::test]
async fn run_loop_wakes_on_changes_and_shuts_down() {
    let rig = Rig::new();
    let e = Arc::new(rig.engine().await);
    let (tx, runner) = run_in_background(&e);
    let mut events = e.subscribe();
    rig.db.upsert(r(1, "woken", 1));
    // Wait (bounded) until the row arrives.
    let arrived = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if rig.sheet.rows() == vec![r(1, "woken", 1)] {
                break;
            }
            let _ = events.recv().await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the db change never reached the sheet");
    tx.send(()).unwrap();
    runner.await.unwrap();
}

/// Polls start an interval apart however long the read takes (a change waits at most one
/// interval for the read that sees it), and a read longer than the interval is followed by a
/// quarter of it rather than by the next read at once.
#[tokio::test(start_paused = true)]
async fn polls_start_an_interval_apart_and_a_long_read_leaves_a_gap() {
    // Over 10.4 s with a 1 s interval: reads of 0.6 s start every 1 s (11; 7 if the interval
    // followed the read); reads of 1.5 s start every 1.75 s (6; 7 back to back, 5 after a
    // whole interval).
    for (read_ms, want) in [(600, 11), (1_500, 6)] {
        let mut rig = Rig::new();
        rig.mapping.timing.poll_interval_ms = 1_000;
        let e = Arc::new(rig.engine().await);
        rig.sheet
            .delay_scans(std::time::Duration::from_millis(read_ms));
        let before = rig.sheet.calls("scan");
        let (tx, runner) = run_in_background(&e);
        tokio::time::sleep(std::time::Duration::from_millis(10_400)).await;
        tx.send(()).unwrap();
        runner.await.unwrap();
        assert_eq!(
            rig.sheet.calls("scan") - before,
            want,
            "reads of {read_ms} ms with a 1 s interval"
        );
    }
}

#[tokio::test]
async fn empty_text_and_null_are_one_value() {
    let mut s = schema(ColumnType::Int);
    s.columns[1].nullable = true;
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", s.clone()));
    let db = Arc::new(MemoryTable::new("db", s));
    db.upsert(r(1, "", 1));
    sheet.upsert(Row::new(vec![Value::Int(1), Value::Null, Value::Int(1)]));
    let e = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        db.clone(),
    )
    .build()
    .await
    .unwrap();
    let rep = e.run_once().await.unwrap();
    assert_eq!(
        rep.writes.total(),
        0,
        "'' in the database equals an empty cell"
    );
    assert_eq!(
        db.rows(),
        vec![r(1, "", 1)],
        "the database keeps its empty text"
    );
}

#[tokio::test]
async fn full_reads_report_progress_per_page() {
    let rig = Rig::new();
    // Both sides already agree, so the cycle writes nothing and its events fit the channel.
    for i in 0..2500 {
        rig.db.upsert(r(i, "x", i));
        rig.sheet.upsert(r(i, "x", i));
    }
    let e = rig.engine().await;
    let mut events = e.subscribe();
    e.run_once().await.unwrap();
    let mut db_progress = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let Event::ReadProgress {
            side: Side::Db,
            rows,
        } = ev
        {
            db_progress.push(rows);
        }
    }
    // The memory table pages by 1,000 rows.
    assert_eq!(db_progress, vec![1000, 2000, 2500]);
}

#[tokio::test]
async fn an_overwritten_person_edit_is_merged_and_written_back() {
    let schema = schema(ColumnType::Int);
    // A Sheet whose feed reports that a concurrent write overwrote a person's edit.
    let inner = Arc::new(MemoryTable::new("sheet", schema.clone()));
    let sheet = Arc::new(Wrapped::new(&inner));
    let db = Arc::new(MemoryTable::new("db", schema));
    db.upsert(r(1, "engine wrote", 1));
    let e = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        db.clone(),
    )
    .build()
    .await
    .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(inner.rows(), vec![r(1, "engine wrote", 1)]);
    // The person typed "person" while the engine's write was in flight; the write landed last.
    *sheet.feed_extra.lock().unwrap() = Some(crate::Observation::new(crate::Change::Overwritten {
        row: r(1, "person", 1),
        actual: r(1, "engine wrote", 1),
    }));
    e.run_once().await.unwrap();
    assert_eq!(
        db.rows(),
        vec![r(1, "person", 1)],
        "the person's edit reaches the database"
    );
    assert_eq!(
        inner.rows(),
        vec![r(1, "person", 1)],
        "and is written back into the Sheet"
    );
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn an_error_event_says_what_failed_and_whether_retrying_can_help() {
    let rig = Rig::new();
    let e = rig.engine().await;
    let mut events = e.subscribe();
    rig.sheet.upsert(r(1, "a", 1));
    rig.db.fail_next_applies(1);
    e.run_once().await.unwrap();
    let error = std::iter::from_fn(|| events.try_recv().ok())
        .find(|ev| matches!(ev, Event::Error { .. }))
        .expect("an error event");
    let Event::Error {
        side, kind, status, ..
    } = &error
    else {
        unreachable!()
    };
    assert_eq!(
        (*side, *kind, *status),
        (
            Some(Side::Db),
            ErrorKind::Connection,
            crate::ErrorStatus::Temporary
        ),
        "{error:?}"
    );
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json["kind"], "connection");
    assert_eq!(json["status"], "temporary");
    // The row is written on the next cycle.
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "a", 1)]);
}

type Hook = Box<dyn Fn(&MemoryTable, &[WriteOp]) + Send + Sync>;

/// A memory table with a twist: another identity, a row its scans show once more (a key typed
/// twice, which a memory table cannot hold), an observation its feed adds to the next batch
/// (a person's edit a write overwrote), something happening just before each write (another
/// program changing a row, a write that waits for the test to let it through), or database
/// defaults. Everything else is the memory table's.
struct Wrapped {
    inner: Arc<MemoryTable>,
    /// What it says it is (default: the memory table's identity).
    identity: Option<String>,
    /// Added to every page of a scan.
    scan_extra: Option<Row>,
    /// Added to the next batch of changes.
    feed_extra: std::sync::Mutex<Option<crate::Observation>>,
    before_apply: Hook,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Fills in what an upserted row leaves empty, as a database's defaults do, and answers
    /// with the stored row.
    defaults: Option<fn(Row) -> Row>,
}

impl Wrapped {
    fn new(inner: &Arc<MemoryTable>) -> Self {
        Wrapped {
            inner: inner.clone(),
            identity: None,
            scan_extra: None,
            feed_extra: Default::default(),
            before_apply: Box::new(|_, _| {}),
            gate: None,
            defaults: None,
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl crate::Source for Wrapped {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn identity(&self) -> Result<String> {
        match &self.identity {
            Some(id) => Ok(id.clone()),
            None => self.inner.identity().await,
        }
    }
    fn schema(&self) -> &TableSchema {
        self.inner.schema()
    }
    fn scan(&self) -> futures::stream::BoxStream<'_, Result<Vec<crate::Observation>>> {
        let Some(extra) = self.scan_extra.clone() else {
            return self.inner.scan();
        };
        let extra = crate::Observation::row(extra);
        self.inner
            .scan()
            .map(move |p| {
                p.map(|mut v| {
                    v.push(extra.clone());
                    v
                })
            })
            .boxed()
    }
    async fn cursor(&self) -> Result<Option<Cursor>> {
        self.inner.cursor().await
    }
    async fn changes(&self, since: &Cursor, limit: usize) -> Result<crate::ChangeBatch> {
        let mut batch = self.inner.changes(since, limit).await?;
        batch.changes.extend(self.feed_extra.lock().unwrap().take());
        Ok(batch)
    }
    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<crate::Observation>> {
        self.inner.fetch(keys).await
    }
    async fn resume(&self, saved: &Cursor) -> Result<()> {
        self.inner.resume(saved).await
    }
    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        self.inner.ack(cursor).await
    }
    fn full_scan_requested(&self) -> bool {
        self.inner.full_scan_requested()
    }
    fn wakeups(&self) -> Option<futures::stream::BoxStream<'static, ()>> {
        self.inner.wakeups()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl crate::Sink for Wrapped {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        (self.before_apply)(&self.inner, &ops);
        let Some(fill) = self.defaults else {
            return self.inner.apply(ops, ctx).await;
        };
        let filled: Vec<(WriteOp, Option<Row>)> = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Upsert { row, expected } => {
                    let stored = fill(row);
                    let op = WriteOp::Upsert {
                        row: stored.clone(),
                        expected,
                    };
                    (op, Some(stored))
                }
                op => (op, None),
            })
            .collect();
        let (ops, stored): (Vec<_>, Vec<_>) = filled.into_iter().unzip();
        let outcomes = self.inner.apply(ops, ctx).await?;
        Ok(outcomes
            .into_iter()
            .zip(stored)
            .map(|(o, s)| match (o, s) {
                (WriteOutcome::Applied, Some(row)) => WriteOutcome::Stored(row),
                (o, _) => o,
            })
            .collect())
    }

    /// None: every write goes through [`Wrapped::apply`], where the hooks are.
    fn transactional(&self) -> Option<&dyn crate::TransactionalSink> {
        None
    }

    async fn annotate(&self, notices: &[crate::RowNotice]) -> Result<()> {
        self.inner.annotate(notices).await
    }
}

mod crash;
mod guard;
mod identity;
mod stalls;
