//! Crashes between a side's write and the state commit: the engine's own unsaved write is never
//! taken for a person's edit (finding: rows deleted in the database came back after a crash).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::state::{StateDelta, StateSnapshot};

/// A state store that lets `ok` more commits through, then fails one (the process dies there).
#[derive(Default)]
struct FlakyStore {
    inner: Arc<MemoryStateStore>,
    ok: AtomicUsize,
    armed: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn over(inner: Arc<MemoryStateStore>) -> Arc<Self> {
        Arc::new(FlakyStore {
            inner,
            ..Default::default()
        })
    }

    /// The commit after the next `ok` ones fails.
    fn fail_after(&self, ok: usize) {
        self.ok.store(ok, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl StateStore for FlakyStore {
    async fn load(&self, m: &str) -> Result<StateSnapshot> {
        self.inner.load(m).await
    }
    async fn commit(&self, m: &str, d: &StateDelta) -> Result<()> {
        if self.armed.load(Ordering::SeqCst)
            && self
                .ok
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            self.armed.store(false, Ordering::SeqCst);
            return Err(Error::new(
                ErrorKind::Connection,
                "killed before the commit",
            ));
        }
        self.inner.commit(m, d).await
    }
}

impl Rig {
    async fn engine_with(&self, store: Arc<dyn StateStore>) -> Engine {
        Engine::builder(self.mapping.clone(), self.sheet.clone(), self.db.clone())
            .state(store)
            .build()
            .await
            .unwrap()
    }
}

/// The finding, exactly: another program updates a row, the engine writes the update to the
/// Sheet and dies before it saves the new base; the program deletes the row; on restart the
/// Sheet's row is the engine's own write, not a person's update, so the delete propagates
/// (under the default `keep_update` it used to be restored in the database).
#[tokio::test]
async fn a_row_deleted_in_the_database_after_a_crash_mid_cycle_stays_deleted() {
    let rig = Rig::new();
    for i in 1..=3 {
        rig.db.upsert(r(i, "a", i));
    }
    rig.engine().await.run_once().await.unwrap();
    let store = FlakyStore::over(rig.store.clone());
    let e = rig.engine_with(store.clone()).await;
    rig.db.upsert(r(2, "updated by a program", 2));
    // The intent commit goes through, the Sheet is written, the state commit dies.
    store.fail_after(1);
    assert!(e.run_once().await.is_err());
    drop(e);
    assert_eq!(
        rig.sheet.get(&key_of(2)),
        Some(r(2, "updated by a program", 2))
    );
    rig.db.delete(&key_of(2));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    let want = vec![r(1, "a", 1), r(3, "a", 3)];
    assert_eq!(rig.db.rows(), want, "the deleted row did not come back");
    assert_eq!(rig.sheet.rows(), want);
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

/// The same without a crash: the Sheet write lands but its answer is lost, the engine keeps
/// running, and the program deletes the row before the next cycle.
#[tokio::test]
async fn a_lost_answer_from_the_sheet_does_not_resurrect_a_delete() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "a", 1));
    rig.db.upsert(r(2, "bystander", 2));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.db.upsert(r(1, "b", 1));
    rig.sheet.lose_next_answers(1);
    let rep = e.run_once().await.unwrap();
    assert_eq!(rep.pending, 1, "the row is retried");
    rig.db.delete(&key_of(1));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(2, "bystander", 2)]);
    assert_eq!(rig.sheet.rows(), rig.db.rows());
}

/// A person's Sheet edit reaches the database, the engine dies before saving the base, and the
/// person then deletes the row in the Sheet: the database's row is the engine's write, so the
/// delete propagates instead of the row coming back to the Sheet.
#[tokio::test]
async fn a_sheet_delete_after_a_crash_between_the_database_write_and_the_commit() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "a", 1));
    rig.db.upsert(r(2, "bystander", 2));
    rig.engine().await.run_once().await.unwrap();
    let store = FlakyStore::over(rig.store.clone());
    let e = rig.engine_with(store.clone()).await;
    rig.sheet.upsert(r(1, "edited in the sheet", 1));
    store.fail_after(1);
    assert!(e.run_once().await.is_err());
    drop(e);
    assert_eq!(rig.db.get(&key_of(1)), Some(r(1, "edited in the sheet", 1)));
    rig.sheet.delete(&key_of(1));
    rig.engine().await.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(2, "bystander", 2)]);
    assert_eq!(rig.sheet.rows(), rig.db.rows());
}

/// Writes that did not land before the crash are merged as before: a person's edit on the side
/// that was not written survives, and the other side's change is not lost either.
#[tokio::test]
async fn a_crash_before_the_database_write_keeps_both_edits() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "a", 1));
    rig.db.upsert(r(2, "bystander", 2));
    rig.engine().await.run_once().await.unwrap();
    let store = FlakyStore::over(rig.store.clone());
    let e = rig.engine_with(store.clone()).await;
    // Both sides change different fields: the merge writes both sides.
    rig.sheet.upsert(r(1, "sheet name", 1));
    rig.db.upsert(r(1, "a", 7));
    rig.db.fail_next_applies(1);
    store.fail_after(1);
    assert!(e.run_once().await.is_err());
    drop(e);
    // The Sheet holds the merged row; the database still has only its own change.
    assert_eq!(rig.sheet.get(&key_of(1)), Some(r(1, "sheet name", 7)));
    assert_eq!(rig.db.get(&key_of(1)), Some(r(1, "a", 7)));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    assert_eq!(
        rig.db.rows(),
        vec![r(1, "sheet name", 7), r(2, "bystander", 2)]
    );
    assert_eq!(rig.sheet.rows(), rig.db.rows());
    // And the database deleting it now is a plain delete.
    rig.db.delete(&key_of(1));
    e.run_once().await.unwrap();
    assert_eq!(rig.sheet.rows(), vec![r(2, "bystander", 2)]);
}

/// The intent is in the store before the first side is written, and gone once the bases are.
#[tokio::test]
async fn intents_are_persisted_before_writing_and_cleared_after() {
    let rig = Rig::new();
    let store = FlakyStore::over(rig.store.clone());
    let e = rig.engine_with(store.clone()).await;
    rig.db.upsert(r(1, "a", 1));
    // Only the intent commit goes through.
    rig.sheet.fail_next_applies(1);
    store.fail_after(1);
    assert!(e.run_once().await.is_err());
    let snap = rig.store.snapshot("items");
    assert_eq!(snap.intents.len(), 1);
    assert_eq!(snap.intents[0].target, Some(r(1, "a", 1)));
    assert_eq!(snap.intents[0].sides.len(), 1);
    assert_eq!(snap.intents[0].sides[0].side, Side::Sheet);
    assert_eq!(snap.intents[0].sides[0].row, None);
    e.run_once().await.unwrap();
    let snap = rig.store.snapshot("items");
    assert!(snap.intents.is_empty());
    assert_eq!(snap.bases.len(), 1);
}

/// With the state committed in the database's write transaction, a database write whose answer
/// was lost is never ambiguous: the engine reloads the state, which holds the new base if and only
/// if the write landed. Here it landed, and another program then deletes the row: the delete
/// propagates. (Without the shared transaction the engine cannot tell "landed, then deleted" from
/// "never landed", and keeps the Sheet's update.)
#[tokio::test]
async fn a_lost_commit_answer_is_settled_by_the_shared_transaction() {
    let store = Arc::new(MemoryStateStore::new());
    let schema = schema(ColumnType::Int);
    let rig = Rig {
        sheet: Arc::new(MemoryTable::sheet_like("sheet", schema.clone())),
        db: Arc::new(MemoryTable::new("db", schema).commit_state_to(store.clone())),
        store,
        mapping: MappingConfig::new("items", &["id"]),
    };
    rig.db.upsert(r(1, "a", 1));
    rig.db.upsert(r(2, "bystander", 2));
    let e = rig.engine().await;
    e.run_once().await.unwrap();
    rig.sheet.upsert(r(1, "edited in the sheet", 1));
    rig.db.lose_next_answers(1);
    assert!(e.run_once().await.is_err(), "the commit's answer was lost");
    assert_eq!(rig.db.get(&key_of(1)), Some(r(1, "edited in the sheet", 1)));
    let base = rig.store.snapshot("items").bases[&key_of(1)].clone();
    assert_eq!(
        base.row,
        r(1, "edited in the sheet", 1),
        "committed with the write"
    );
    rig.db.delete(&key_of(1));
    e.run_once().await.unwrap();
    assert_eq!(rig.db.rows(), vec![r(2, "bystander", 2)]);
    assert_eq!(rig.sheet.rows(), rig.db.rows());
}
