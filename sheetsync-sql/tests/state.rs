//! The SQL state stores keep write intents, the mapping identity, pending deletes and the log of
//! recent deletes exactly, commit them atomically, and reset a mapping: the state-store
//! conformance check of `sheetsync_core::testkit` on SQLite, PostgreSQL and MySQL/MariaDB. And a
//! table adapter with the store on the same pool commits the engine's writes and new state in
//! one transaction.
//!
//! PostgreSQL: `SHEETSYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! MySQL/MariaDB: `SHEETSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`). Each test
//! creates its own database and drops it.
#![cfg(all(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use std::sync::Arc;

use common::{id_name_table_sql, test_database, Dialect};
use sheetsync_core::testkit::run_state_store_conformance;
use sheetsync_core::{Engine, MappingConfig, MemoryTable, Row, StateStore, Table, Value};
use sheetsync_sql::{
    MySqlStateStore, MySqlTable, PostgresStateStore, PostgresTable, SqlOptions, SqliteStateStore,
    SqliteTable,
};

const PREFIX: &str = "sheetsync_state";

#[tokio::test]
async fn sqlite_state_store_conformance() {
    let db = test_database(Dialect::Sqlite, PREFIX).await;
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    run_state_store_conformance(&SqliteStateStore::new(pool).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_state_store_conformance() {
    let db = test_database(Dialect::Postgres, PREFIX).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    run_state_store_conformance(&PostgresStateStore::new(pool.clone()).await.unwrap()).await;
    pool.close().await;
}

#[tokio::test]
async fn mysql_state_store_conformance() {
    let db = test_database(Dialect::MySql, PREFIX).await;
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    run_state_store_conformance(&MySqlStateStore::new(pool.clone()).await.unwrap()).await;
    pool.close().await;
}

/// Runs SQL on the test's database.
type Exec = Box<dyn Fn(&'static str) -> futures::future::BoxFuture<'static, i64> + Send + Sync>;

/// An [`Exec`] on `pool`: a `SELECT` returns its count, anything else 0.
macro_rules! exec_on {
    ($pool:expr) => {{
        let p = $pool.clone();
        Box::new(move |sql: &'static str| {
            let p = p.clone();
            Box::pin(async move {
                if sql.starts_with("SELECT") {
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&p)
                        .await
                        .unwrap()
                } else {
                    sqlx::query(sql).execute(&p).await.unwrap();
                    0
                }
            }) as futures::future::BoxFuture<'static, i64>
        }) as Exec
    }};
}

/// The cycle's database write and its new bases commit in one transaction: when the state
/// commit fails (here the bases table is missing, after the write intents were saved), the
/// database write is rolled back with it; once the table is back, the row syncs once.
async fn writes_and_bases_commit_together(
    table: Arc<dyn Table>,
    store: Arc<dyn StateStore>,
    exec: Exec,
    (hide, unhide, count): (&'static str, &'static str, &'static str),
) {
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", table.schema().clone()));
    let engine = Engine::builder(MappingConfig::new("items", &["id"]), sheet.clone(), table)
        .state(store.clone())
        .build()
        .await
        .unwrap();
    engine.run_once().await.unwrap();
    sheet.upsert(Row::new(vec![
        Value::Int(1),
        Value::Text("from the sheet".into()),
    ]));
    exec(hide).await;
    assert!(engine.run_once().await.is_err(), "the state commit fails");
    assert_eq!(
        exec(count).await,
        0,
        "the database write was rolled back with the state"
    );
    exec(unhide).await;
    engine.run_once().await.unwrap();
    assert_eq!(exec(count).await, 1);
    let state = store.load("items").await.unwrap();
    assert_eq!(state.bases.len(), 1);
    assert!(state.intents.is_empty());
    assert_eq!(engine.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn sqlite_writes_and_bases_commit_together() {
    let db = test_database(Dialect::Sqlite, PREFIX).await;
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    sqlx::query(id_name_table_sql(Dialect::Sqlite))
        .execute(&pool)
        .await
        .unwrap();
    let t = SqliteTable::open(pool.clone(), "items", SqlOptions::default())
        .await
        .unwrap();
    t.install().await.unwrap();
    let store = SqliteStateStore::new(pool.clone()).await.unwrap();
    writes_and_bases_commit_together(
        Arc::new(t),
        Arc::new(store),
        exec_on!(pool),
        (
            "ALTER TABLE _sheetsync_state_bases RENAME TO _sheetsync_state_bases_away",
            "ALTER TABLE _sheetsync_state_bases_away RENAME TO _sheetsync_state_bases",
            "SELECT count(*) FROM items",
        ),
    )
    .await;
}

#[tokio::test]
async fn postgres_writes_and_bases_commit_together() {
    let db = test_database(Dialect::Postgres, PREFIX).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(id_name_table_sql(Dialect::Postgres))
        .execute(&pool)
        .await
        .unwrap();
    let t = PostgresTable::open(pool.clone(), None, "items", SqlOptions::default())
        .await
        .unwrap();
    t.install().await.unwrap();
    let store = PostgresStateStore::new(pool.clone()).await.unwrap();
    writes_and_bases_commit_together(
        Arc::new(t),
        Arc::new(store),
        exec_on!(pool),
        (
            "ALTER TABLE sheetsync.state_bases RENAME TO state_bases_away",
            "ALTER TABLE sheetsync.state_bases_away RENAME TO state_bases",
            "SELECT count(*) FROM items",
        ),
    )
    .await;
    pool.close().await;
}

#[tokio::test]
async fn mysql_writes_and_bases_commit_together() {
    let db = test_database(Dialect::MySql, PREFIX).await;
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    sqlx::query(id_name_table_sql(Dialect::MySql))
        .execute(&pool)
        .await
        .unwrap();
    let t = MySqlTable::open(pool.clone(), "items", SqlOptions::default())
        .await
        .unwrap();
    t.install().await.unwrap();
    let store = MySqlStateStore::new(pool.clone()).await.unwrap();
    writes_and_bases_commit_together(
        Arc::new(t),
        Arc::new(store),
        exec_on!(pool),
        (
            "RENAME TABLE `_sheetsync_state_bases` TO `_sheetsync_state_bases_away`",
            "RENAME TABLE `_sheetsync_state_bases_away` TO `_sheetsync_state_bases`",
            "SELECT count(*) FROM items",
        ),
    )
    .await;
    pool.close().await;
}
