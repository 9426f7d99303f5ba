//! Scenarios that run unchanged on every database: each suite gives them its `items` table
//! (`small_schema`) through [`ItemsDb`] and instantiates one named test per scenario with
//! [`shared_scenarios!`](crate::shared_scenarios).

use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use sheetsync_core::testkit::ExternalWriter;
use sheetsync_core::{Engine, MappingConfig, MemoryTable, Table};

use super::*;

/// One database with the table `items` (`small_schema`), capture installed.
#[async_trait]
pub trait ItemsDb: Send + Sync {
    /// The table through the adapter.
    fn table(&self) -> Arc<dyn Table>;
    /// Another program writing the table, on a connection pool of its own.
    async fn writer(&self) -> Arc<dyn ExternalWriter>;
    /// Runs `sql` as another program.
    async fn exec(&self, sql: &str);
}

/// One `#[tokio::test]` per scenario, each on the fixture `$db` (an expression evaluated
/// inside the test).
#[macro_export]
macro_rules! shared_scenarios {
    ($db:expr => $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let db = $db;
                common::scenarios::$name(&db).await;
            }
        )+
    };
}

/// The shared scenarios' fixture of a server database suite (PostgreSQL, MySQL): a database
/// of its own (the suite's `TestDb`) with the table `items` through `$table`, another program
/// on the suite's `Other` writer. Expects `TestDb`, `Other`, `quote` and the dialect `D` in
/// scope.
#[macro_export]
macro_rules! server_items_fixture {
    ($table:ty) => {
        /// The shared scenarios' fixture: a database of its own with the table `items`.
        struct Items {
            db: TestDb,
            table: Arc<$table>,
        }

        impl Items {
            async fn new() -> Items {
                let db = TestDb::new().await;
                let (table, _) = db
                    .table("items", &small_schema(), false, SqlOptions::default())
                    .await;
                Items { db, table }
            }
        }

        #[async_trait]
        impl common::scenarios::ItemsDb for Items {
            fn table(&self) -> Arc<dyn Table> {
                self.table.clone()
            }

            async fn writer(&self) -> Arc<dyn ExternalWriter> {
                Arc::new(Other {
                    pool: self.db.other_pool().await,
                    table: quote(D, "items"),
                    schema: small_schema(),
                })
            }

            async fn exec(&self, sql: &str) {
                sqlx::query(AssertSqlSafe(sql.to_string()))
                    .execute(&self.db.pool)
                    .await
                    .unwrap();
            }
        }
    };
}

pub async fn engine_round_trip_both_ways_without_echo(db: &dyn ItemsDb) {
    let (o, o2) = (db.writer().await, db.writer().await);
    engine_round_trip(
        db.table(),
        move |r| {
            let o = o.clone();
            async move { o.upsert(r).await.unwrap() }.boxed()
        },
        move |k| {
            let o = o2.clone();
            async move { o.delete(k).await.unwrap() }.boxed()
        },
    )
    .await;
}

pub async fn concurrent_writers_during_sync_converge(db: &dyn ItemsDb) {
    let t = db.table();
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", small_schema()));
    let engine = Arc::new(
        Engine::builder(
            MappingConfig::new("items", &["id"]),
            sheet.clone(),
            t.clone(),
        )
        .build()
        .await
        .unwrap(),
    );
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let o = db.writer().await;
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                o.upsert(item(w * 1000 + i % 10, &format!("w{w} #{i}"), i))
                    .await
                    .unwrap();
            }
        }));
    }
    let syncing = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                engine.run_once().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    syncing.await.unwrap();
    engine.run_once().await.unwrap();
    let rows = scan_rows(&*t).await;
    assert_eq!(rows.len(), 30);
    assert_eq!(sheet.rows(), rows, "the sheet converged to the database");
}

pub async fn a_key_change_reports_the_old_key_as_deleted(db: &dyn ItemsDb) {
    let (t, other) = (db.table(), db.writer().await);
    other.upsert(item(1, "a", 1)).await.unwrap();
    other.upsert(item(2, "b", 2)).await.unwrap();
    let c0 = t.cursor().await.unwrap().unwrap();
    db.exec("UPDATE items SET id = id + 10").await;
    let (seen, _) = drain(&*t, &c0).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[&int_key(1)], None);
    assert_eq!(seen[&int_key(2)], None);
    assert_eq!(seen[&int_key(11)], Some(item(11, "a", 1)));
    assert_eq!(seen[&int_key(12)], Some(item(12, "b", 2)));
}
