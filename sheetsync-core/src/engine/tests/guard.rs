//! The mass-delete guard and the approval queue (findings: the guard could be walked around, and
//! when it tripped there was no way forward).

use std::time::Duration;

use super::*;
use crate::engine::{DeleteSelection, QueueChange};
use crate::state::DeleteDecision;

fn rig_with(rows: i64) -> Rig {
    let rig = Rig::new();
    for i in 1..=rows {
        rig.db.upsert(r(i, "x", i));
    }
    rig
}

async fn synced(rig: &Rig) -> Engine {
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), rig.db.rows());
    e
}

fn queue_events(rx: &mut broadcast::Receiver<Event>) -> Vec<(QueueChange, Side, usize)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::DeleteQueue {
            change,
            deleted_on,
            rows,
            ..
        } = ev
        {
            out.push((change, deleted_on, rows));
        }
    }
    out
}

/// Five of six rows is a share too: below the old `min_rows` it used to go through.
#[tokio::test]
async fn five_of_six_rows_wait_for_approval() {
    let rig = rig_with(6);
    let e = synced(&rig).await;
    let mut rx = e.subscribe();
    for i in 1..=5 {
        rig.sheet.delete(&key_of(i));
    }
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.guard_tripped, vec![Side::Db]);
    assert_eq!(rep.deletes_queued, 5);
    assert_eq!(rep.pending_deletes, 5);
    assert_eq!(rig.db.rows().len(), 6, "the rows stay in the database");
    let pending = e.pending_deletes().await;
    assert_eq!(pending.len(), 5);
    assert!(pending.iter().all(|p| p.deleted_on == Side::Sheet));
    assert_eq!(pending[0].row, r(1, "x", 1), "the last known content");
    assert!(
        pending[0].reason.contains("5 deletes of 6 rows"),
        "{}",
        pending[0].reason
    );
    assert!(pending[0].decision.is_none());
    assert_eq!(
        queue_events(&mut rx),
        vec![(QueueChange::Queued, Side::Sheet, 5)]
    );
    // Sticky: the same deletes do not go through a cycle later, nor after a restart.
    for _ in 0..3 {
        let rep = e.run_once().await.unwrap();
        assert_eq!(rep.deletes_queued, 0);
        assert_eq!(rep.writes.total(), 0);
    }
    drop(e);
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows().len(), 6);
    assert_eq!(e.pending_deletes().await.len(), 5);
}

/// 45% at a time, one cycle apart, used to take 100 rows down to 10: the window adds them up.
#[tokio::test]
async fn salami_deletes_over_several_cycles_trip_the_window() {
    let rig = rig_with(100);
    let e = synced(&rig).await;
    let mut next = 1;
    let mut tripped_at = None;
    for round in 0..4 {
        let remaining = rig.sheet.rows().len();
        for _ in 0..(remaining * 45 / 100) {
            while rig.sheet.get(&key_of(next)).is_none() {
                next += 1;
            }
            rig.sheet.delete(&key_of(next));
        }
        let rep = e.run_once().await.unwrap();
        if !rep.guard_tripped.is_empty() && tripped_at.is_none() {
            tripped_at = Some(round);
        }
    }
    assert_eq!(
        tripped_at,
        Some(1),
        "the second 45% brings the window past 50%"
    );
    assert!(
        rig.db.rows().len() >= 50,
        "at most half the table within the window: {} rows left",
        rig.db.rows().len()
    );
    // What waits is what the guard stopped, from the second round on.
    let waiting = e.pending_deletes().await.len();
    assert_eq!(rig.db.rows().len() - rig.sheet.rows().len(), waiting);
}

/// Deletes older than the window no longer count.
#[tokio::test]
async fn the_window_forgets_old_deletes() {
    let mut rig = rig_with(10);
    rig.mapping.guard.window_secs = 1;
    let e = synced(&rig).await;
    for i in 1..=4 {
        rig.sheet.delete(&key_of(i));
    }
    assert!(e.run_once().await.unwrap().guard_tripped.is_empty());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for i in 5..=7 {
        rig.sheet.delete(&key_of(i));
    }
    let rep = e.run_once().await.unwrap();
    assert!(rep.guard_tripped.is_empty(), "3 of 6 within the window");
    assert_eq!(rig.db.rows().len(), 3);
}

/// Approval by key, by age and all at once; approved deletes are applied and do not count
/// against the window.
#[tokio::test]
async fn approved_deletes_are_applied() {
    let rig = rig_with(6);
    let e = synced(&rig).await;
    for i in 1..=5 {
        rig.sheet.delete(&key_of(i));
    }
    e.run_once().await.unwrap();
    let mut rx = e.subscribe();
    let n = e
        .approve_deletes(&DeleteSelection::Keys(vec![key_of(2)]))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        queue_events(&mut rx),
        vec![(QueueChange::Approved, Side::Sheet, 1)]
    );
    let err = e
        .approve_deletes(&DeleteSelection::Keys(vec![key_of(6)]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // The decision is persisted before the next cycle carries it out.
    let stored = rig.store.snapshot("items").pending_deletes;
    assert_eq!(
        stored
            .iter()
            .filter(|p| p.decision == Some(DeleteDecision::Approve))
            .count(),
        1
    );
    e.run_once().await.unwrap();
    assert!(rig.db.get(&key_of(2)).is_none());
    assert_eq!(rig.db.rows().len(), 5);
    assert_eq!(
        queue_events(&mut rx),
        vec![(QueueChange::Applied, Side::Sheet, 1)]
    );
    assert_eq!(
        e.approve_deletes(&DeleteSelection::OlderThan(Duration::from_secs(3600)))
            .await
            .unwrap(),
        0,
        "nothing is an hour old"
    );
    assert_eq!(
        e.approve_deletes(&DeleteSelection::OlderThan(Duration::ZERO))
            .await
            .unwrap(),
        4
    );
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(6, "x", 6)]);
    assert!(e.pending_deletes().await.is_empty());
    // The approved deletes are not held against the next, ordinary delete.
    rig.db.upsert(r(7, "x", 7));
    rig.db.upsert(r(8, "x", 8));
    e.run_once().await.unwrap();
    rig.sheet.delete(&key_of(7));
    let rep = e.run_once().await.unwrap();
    assert!(rep.guard_tripped.is_empty());
    assert_eq!(rig.db.rows(), vec![r(6, "x", 6), r(8, "x", 8)]);
}

/// Rejecting restores the rows on the side that deleted them, with what the other side holds.
#[tokio::test]
async fn rejected_deletes_restore_the_rows() {
    let rig = rig_with(6);
    let e = synced(&rig).await;
    for i in 1..=5 {
        rig.sheet.delete(&key_of(i));
    }
    e.run_once().await.unwrap();
    let mut rx = e.subscribe();
    // Meanwhile a program updates one of the rows in the database.
    rig.db.upsert(r(3, "updated", 3));
    e.run_once().await.unwrap();
    assert_eq!(e.reject_deletes(&DeleteSelection::All).await.unwrap(), 4);
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.writes.db, 0, "nothing is deleted");
    let mut want: Vec<Row> = (1..=6).map(|i| r(i, "x", i)).collect();
    want[2] = r(3, "updated", 3);
    assert_eq!(rig.sheet.rows(), want, "the rows are back in the sheet");
    assert_eq!(rig.db.rows(), want);
    assert!(e.pending_deletes().await.is_empty());
    let events = queue_events(&mut rx);
    assert!(
        events.contains(&(QueueChange::Rejected, Side::Sheet, 4)),
        "{events:?}"
    );
    assert!(
        events.contains(&(QueueChange::Restored, Side::Sheet, 4)),
        "{events:?}"
    );
    // Row 3 was not "deleted" at all any more: the update won, and the delete was dropped.
    assert!(
        events.contains(&(QueueChange::Dropped, Side::Sheet, 1)),
        "{events:?}"
    );
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

/// A pending delete whose row comes back (undo in the Sheet) is dropped; one that becomes a
/// delete on both sides is dropped too.
#[tokio::test]
async fn pending_deletes_whose_row_reappears_are_dropped() {
    let rig = rig_with(6);
    let e = synced(&rig).await;
    for i in 1..=5 {
        rig.sheet.delete(&key_of(i));
    }
    e.run_once().await.unwrap();
    assert_eq!(e.pending_deletes().await.len(), 5);
    let mut rx = e.subscribe();
    rig.sheet.upsert(r(1, "x", 1));
    rig.db.delete(&key_of(2));
    e.run_once().await.unwrap();
    let keys: Vec<RowKey> = e
        .pending_deletes()
        .await
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, vec![key_of(3), key_of(4), key_of(5)]);
    assert_eq!(
        queue_events(&mut rx),
        vec![(QueueChange::Dropped, Side::Sheet, 2)]
    );
    assert_eq!(rig.sheet.get(&key_of(1)), Some(r(1, "x", 1)));
    assert_eq!(rig.db.get(&key_of(1)), Some(r(1, "x", 1)));
    assert!(rig.db.get(&key_of(2)).is_none());
}

/// While deletes wait, a single further delete of that side waits too.
#[tokio::test]
async fn while_deletes_wait_further_deletes_wait_too() {
    let rig = rig_with(20);
    let e = synced(&rig).await;
    for i in 1..=15 {
        rig.sheet.delete(&key_of(i));
    }
    e.run_once().await.unwrap();
    rig.sheet.delete(&key_of(16));
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.deletes_queued, 1);
    assert!(e.pending_deletes().await[15]
        .reason
        .contains("wait for approval"));
    assert_eq!(rig.db.rows().len(), 20);
    // The other side is not held up: a delete in the database still reaches the Sheet.
    rig.db.delete(&key_of(20));
    e.run_once().await.unwrap();
    assert!(rig.sheet.get(&key_of(20)).is_none());
}

/// Deletes in the database that would empty the Sheet wait the same way.
#[tokio::test]
async fn database_deletes_wait_too() {
    let rig = rig_with(4);
    let e = synced(&rig).await;
    for i in 1..=4 {
        rig.db.delete(&key_of(i));
    }
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.guard_tripped, vec![Side::Sheet]);
    assert_eq!(rig.sheet.rows().len(), 4);
    let pending = e.pending_deletes().await;
    assert!(pending.iter().all(|p| p.deleted_on == Side::Db));
    assert!(pending[0].reason.contains("empty"), "{}", pending[0].reason);
    e.reject_deletes(&DeleteSelection::All).await.unwrap();
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows().len(), 4, "rejected: restored in the database");
}

/// `auto_approve` keeps the old behaviour: the deletes are reported and applied.
#[tokio::test]
async fn auto_approve_applies_tripped_deletes() {
    let mut rig = rig_with(6);
    rig.mapping.guard.auto_approve = true;
    let e = synced(&rig).await;
    for i in 1..=5 {
        rig.sheet.delete(&key_of(i));
    }
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.guard_tripped, vec![Side::Db]);
    assert_eq!(rep.deletes_queued, 0);
    assert_eq!(rig.db.rows(), vec![r(6, "x", 6)]);
}
