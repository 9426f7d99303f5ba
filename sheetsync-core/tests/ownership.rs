//! An engine run under a lease ([`EngineBuilder::owner`]): it stops writing the Sheet the
//! moment the lease is lost, even between a cycle's plan and its writes, and its loop ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sheetsync_core::*;

/// A lease whose loss the test decides (the SQL leases are tested against real databases in
/// `sheetsync-sql/tests/lease.rs`).
#[derive(Default)]
struct Switch {
    lost: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Switch {
    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

#[async_trait]
impl Ownership for Switch {
    fn epoch(&self) -> u64 {
        7
    }

    async fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::NotOwner,
                "the test took the lease away",
            ));
        }
        Ok(())
    }

    async fn lost(&self) {
        while !self.lost.load(Ordering::SeqCst) {
            let notified = self.notify.notified();
            if self.lost.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

fn schema() -> TableSchema {
    TableSchema::new(
        "items",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("name", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap()
}

fn row(id: i64, name: &str) -> Row {
    Row::new(vec![id.into(), name.into()])
}

#[tokio::test]
async fn a_lost_lease_stops_sheet_writes_and_the_loop() {
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema()));
    let db = Arc::new(MemoryTable::new("db", schema()));
    let store = Arc::new(MemoryStateStore::new());
    let lease = Arc::new(Switch::default());
    let engine = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        db.clone(),
    )
    .state(store.clone())
    .owner(lease.clone())
    .build()
    .await
    .unwrap();
    db.upsert(row(1, "one"));
    engine.run_once().await.unwrap();
    assert_eq!(
        sheet.rows(),
        vec![row(1, "one")],
        "the owner writes the Sheet"
    );
    // The memory store keeps no leases, so only the check before the Sheet write stands
    // between a lost lease and the Sheet.
    lease.lose();
    db.upsert(row(2, "two"));
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.writes.sheet, 0, "{report:?}");
    assert_eq!(
        sheet.rows(),
        vec![row(1, "one")],
        "no write after the lease was lost"
    );
    tokio::time::timeout(Duration::from_secs(5), engine.run(std::future::pending()))
        .await
        .expect("the loop ends once the lease is lost");
    assert!(engine.lost_ownership());
}

#[tokio::test]
async fn commits_carry_the_owners_epoch() {
    /// Records the fence of every commit.
    #[derive(Default)]
    struct Recording(MemoryStateStore, std::sync::Mutex<Vec<Option<u64>>>);

    #[async_trait]
    impl StateStore for Recording {
        async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
            self.0.load(mapping).await
        }

        async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
            self.1.lock().unwrap().push(delta.fence);
            self.0.commit(mapping, delta).await
        }
    }

    let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema()));
    let db = Arc::new(MemoryTable::new("db", schema()));
    let store = Arc::new(Recording::default());
    let engine = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        db.clone(),
    )
    .state(store.clone())
    .owner(Arc::new(Switch::default()))
    .build()
    .await
    .unwrap();
    db.upsert(row(1, "one"));
    engine.run_once().await.unwrap();
    let fences = store.1.lock().unwrap().clone();
    assert!(!fences.is_empty());
    assert!(fences.iter().all(|f| *f == Some(7)), "{fences:?}");
}
