//! Rows that never settle are held and parked (finding: a row stale every cycle, or refused
//! every time, was retried for ever and silently), and status callers never wait for a cycle
//! (finding: `/api/status` hung behind a stalled cycle).

use std::time::Duration;

use tokio::sync::Semaphore;

use super::*;
use crate::engine::stuck::MAX_ATTEMPTS;

/// Another program bumps row 1's `qty` in the database just before each of the engine's writes
/// to it, so every conditional write of that row finds it changed.
fn busy_row_1(db: &MemoryTable, ops: &[WriteOp]) {
    let touches_1 = ops.iter().any(|op| match op {
        WriteOp::Upsert { row, .. } => row.0[0] == Value::Int(1),
        _ => false,
    });
    if let (true, Some(mut row)) = (touches_1, db.get(&key_of(1))) {
        let Value::Int(q) = row.0[2] else { return };
        row.0[2] = Value::Int(q + 1);
        db.upsert(row);
    }
}

async fn engine_over(rig: &Rig, db: Arc<Wrapped>) -> Engine {
    Engine::builder(rig.mapping.clone(), rig.sheet.clone(), db)
        .state(rig.store.clone())
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_row_stale_under_every_write_is_held_and_parked() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "base", 1));
    rig.db.upsert(r(2, "base", 2));
    let e = engine_over(
        &rig,
        Arc::new(Wrapped {
            before_apply: Box::new(busy_row_1),
            ..Wrapped::new(&rig.db)
        }),
    )
    .await;
    e.run_once().await.unwrap();
    rig.sheet.upsert(r(1, "sheet edit", 1));
    for _ in 0..MAX_ATTEMPTS {
        e.run_once().await.unwrap();
    }
    let held = e.held().await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].key, Some(key_of(1)));
    assert!(
        held[0].reason.contains("changed under every write") && held[0].reason.contains("attempts"),
        "{}",
        held[0].reason
    );
    // Parked: further cycles write nothing for it, while other rows still sync.
    let writes = rig.db.calls("apply") + rig.sheet.calls("apply");
    for _ in 0..3 {
        e.run_once().await.unwrap();
    }
    assert_eq!(rig.db.calls("apply") + rig.sheet.calls("apply"), writes);
    rig.sheet.upsert(r(2, "other row", 2));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.get(&key_of(2)), Some(r(2, "other row", 2)));
    assert_eq!(e.held().await.len(), 1, "row 1 is still held");
}

#[tokio::test]
async fn a_parked_row_is_tried_again_once_its_source_side_changes() {
    let rig = Rig::new();
    let e = rig.engine().await;
    rig.db.reject_rows(|row| {
        (row.0[2] == Value::Int(-1)).then(|| "CHECK (qty >= 0) violated".to_string())
    });
    rig.sheet.upsert(r(1, "bad", -1));
    for _ in 0..MAX_ATTEMPTS {
        e.run_once().await.unwrap();
    }
    let calls = rig.db.calls("apply");
    e.run_once().await.unwrap();
    e.run_once().await.unwrap();
    assert_eq!(
        rig.db.calls("apply"),
        calls,
        "a parked row is not written again"
    );
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(held[0].reason.contains("CHECK"), "{}", held[0].reason);
    assert!(
        held[0]
            .reason
            .contains("waits until it changes in the sheet"),
        "{}",
        held[0].reason
    );
    // A person fixes the value in the Sheet: the row is tried again at once and syncs.
    rig.sheet.upsert(r(1, "fixed", 5));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "fixed", 5)]);
    assert!(e.held().await.is_empty());
}

#[tokio::test]
async fn a_failed_batch_does_not_park_rows() {
    let rig = Rig::new();
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.db.upsert(r(1, "db", 1));
    rig.sheet.fail_next_applies(MAX_ATTEMPTS as usize + 1);
    for _ in 0..=MAX_ATTEMPTS {
        e.run_once().await.unwrap();
    }
    assert!(
        e.held().await.is_empty(),
        "an unreachable side is not the row's fault"
    );
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), vec![r(1, "db", 1)]);
}

#[tokio::test]
async fn status_and_decisions_never_wait_for_a_running_cycle() {
    let mut rig = Rig::new();
    rig.mapping.resolvers = vec![crate::ResolverSpec::Manual];
    rig.db.upsert(r(1, "base", 1));
    let gate = Arc::new(Semaphore::new(0));
    let db = Arc::new(Wrapped {
        gate: Some(gate.clone()),
        ..Wrapped::new(&rig.db)
    });
    let e = Arc::new(engine_over(&rig, db).await);
    e.run_once().await.unwrap();
    rig.sheet.upsert(r(1, "sheet", 1));
    rig.db.upsert(r(1, "db", 1));
    e.run_once().await.unwrap();
    assert_eq!(e.conflicts().await.len(), 1);
    // The next cycle stalls in its database write (a locked row, say).
    rig.sheet.upsert(r(2, "new", 2));
    let cycle = tokio::spawn({
        let e = e.clone();
        async move { e.run_once().await }
    });
    // Wait until the cycle holds the state (it then stalls in the write).
    while e.state.try_lock().is_ok() {
        tokio::task::yield_now().await;
    }
    let quick = Duration::from_secs(5);
    let status = tokio::time::timeout(quick, async {
        (
            e.held().await,
            e.conflicts().await,
            e.pending_deletes().await,
        )
    });
    let (held, conflicts, queue) = status.await.expect("status waits for the cycle");
    assert!(held.is_empty() && queue.is_empty());
    assert_eq!(conflicts.len(), 1);
    // A decision made now is accepted, and applied by the next cycle.
    tokio::time::timeout(
        quick,
        e.resolve_conflict(&key_of(1), Choice::Side(Side::Sheet)),
    )
    .await
    .expect("resolving waits for the cycle")
    .unwrap();
    let missing = e
        .resolve_conflict(&key_of(9), Choice::Side(Side::Sheet))
        .await;
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
    gate.add_permits(100);
    cycle.await.unwrap().unwrap();
    e.run_once().await.unwrap();
    assert_eq!(rig.db.get(&key_of(1)), Some(r(1, "sheet", 1)));
    assert!(e.conflicts().await.is_empty());
}

/// An empty `qty` becomes 0, as `qty INT NOT NULL DEFAULT 0` would make it.
fn qty_default(mut row: Row) -> Row {
    if row.0[2].is_null() {
        row.0[2] = Value::Int(0);
    }
    row
}

#[tokio::test]
async fn a_new_sheet_row_shows_the_database_defaults() {
    let rig = Rig::new();
    let db = Arc::new(Wrapped {
        defaults: Some(qty_default),
        ..Wrapped::new(&rig.db)
    });
    let e = engine_over(&rig, db).await;
    e.run_once().await.unwrap();
    rig.sheet
        .upsert(Row::new(vec![Value::Int(1), "no qty".into(), Value::Null]));
    let rep = e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(1, "no qty", 0)]);
    assert_eq!(
        rig.sheet.rows(),
        vec![r(1, "no qty", 0)],
        "the Sheet shows the default"
    );
    assert_eq!(
        rep.state_commits, 3,
        "intents, the new state, the stored row's base"
    );
    // Settled: the next cycles write nothing.
    for _ in 0..2 {
        assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
    }
}
