//! Mapping ownership (`sheetsync_sql::lease`) on each database: one owner at a time, a new
//! epoch on every takeover, commits of an older epoch refused in their own transaction (with
//! the database writes they carried), and a lost lock connection ending the lease at once.
//!
//! Two pools on one database stand for two processes. PostgreSQL:
//! `SHEETSYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! MySQL/MariaDB: `SHEETSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`). Each test
//! creates its own database and drops it.
#![cfg(all(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use std::time::Duration;

use async_trait::async_trait;
use common::{id_name_table_sql, test_database, Cleanup, Dialect};
use sheetsync_core::{
    ErrorKind, Result, Row, RowBase, RowKey, StateDelta, StateStore, TransactionalSink, Value,
};
use sheetsync_sql::lease::Lease;
use sheetsync_sql::{
    MySqlStateStore, PostgresStateStore, SqlOptions, SqliteStateStore, SqliteTable,
};
use sqlx::{AssertSqlSafe, Connection};

/// A state store that hands out leases.
#[async_trait]
trait Leasing: StateStore {
    async fn lease(&self, mapping: &str, owner: &str) -> Result<Option<Lease>>;
}

macro_rules! leasing {
    ($($store:ty),*) => {$(
        #[async_trait]
        impl Leasing for $store {
            async fn lease(&self, mapping: &str, owner: &str) -> Result<Option<Lease>> {
                self.try_lease(mapping, owner).await
            }
        }
    )*};
}
leasing!(PostgresStateStore, MySqlStateStore, SqliteStateStore);

/// A database of its own for one test, with two stores on separate pools (two processes), and
/// a way to kill a connection from outside.
struct Db {
    /// The database's URL (SQLite: the file's).
    url: String,
    a: Box<dyn Leasing>,
    b: Box<dyn Leasing>,
    /// Kills the connection that holds `mapping`'s lock (PostgreSQL, MySQL).
    kill: Option<Box<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>>,
    _cleanup: Cleanup,
}

const PREFIX: &str = "sheetsync_lease";

async fn sqlite() -> Db {
    let db = test_database(Dialect::Sqlite, PREFIX).await;
    let url = db.url;
    let store = || async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        Box::new(SqliteStateStore::new(pool).await.unwrap()) as Box<dyn Leasing>
    };
    Db {
        a: store().await,
        b: store().await,
        url: url.clone(),
        kill: None,
        _cleanup: db.cleanup,
    }
}

async fn postgres() -> Db {
    let test_db = test_database(Dialect::Postgres, PREFIX).await;
    let url = test_db.url;
    let store = || async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        Box::new(PostgresStateStore::new(pool).await.unwrap()) as Box<dyn Leasing>
    };
    let (db, kill_url) = (test_db.name, test_db.admin_url);
    Db {
        a: store().await,
        b: store().await,
        url: url.clone(),
        kill: Some(Box::new(move |_mapping| {
            let (url, db) = (kill_url.clone(), db.clone());
            Box::pin(async move {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let sql = format!(
                    "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
                     JOIN pg_database d ON d.oid = l.database
                     WHERE l.locktype = 'advisory' AND d.datname = '{db}'"
                );
                let killed: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                assert_eq!(killed, 1, "one connection holds the lock");
            })
        })),
        _cleanup: test_db.cleanup,
    }
}

async fn mysql() -> Db {
    let test_db = test_database(Dialect::MySql, PREFIX).await;
    let url = test_db.url;
    let store = || async {
        let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
        Box::new(MySqlStateStore::new(pool).await.unwrap()) as Box<dyn Leasing>
    };
    let kill_url = url.clone();
    Db {
        a: store().await,
        b: store().await,
        url: url.clone(),
        kill: Some(Box::new(move |mapping| {
            let url = kill_url.clone();
            Box::pin(async move {
                let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
                let holder: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(IS_USED_LOCK(CONCAT('sheetsync:', SHA1(CONCAT(DATABASE(), '/', ?)))) AS SIGNED)",
                )
                .bind(mapping)
                .fetch_one(&mut c)
                .await
                .unwrap();
                let id = holder.expect("a connection holds the lock");
                sqlx::query(AssertSqlSafe(format!("KILL {id}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
            })
        })),
        _cleanup: test_db.cleanup,
    }
}

/// Tries to take `mapping` from `store` until it succeeds (a released lock is freed when its
/// connection closes, which takes a moment), at most 10 s.
async fn take(store: &dyn Leasing, mapping: &str, owner: &str) -> Lease {
    for _ in 0..100 {
        if let Some(lease) = store.lease(mapping, owner).await.unwrap() {
            return lease;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{owner} never got the lease on {mapping}");
}

fn base(n: i64) -> (RowKey, RowBase) {
    let key = RowKey::from_values(&[Value::Int(n)]);
    (key, RowBase::live(Row::new(vec![Value::Int(n)]), 1))
}

fn fenced(epoch: u64, n: i64) -> StateDelta {
    StateDelta {
        upsert: vec![base(n)],
        clock: n as u64,
        fence: Some(epoch),
        ..StateDelta::default()
    }
}

async fn one_owner_at_a_time_and_each_takeover_a_new_epoch(db: Db) {
    let first =
        db.a.lease("orders", "replica a")
            .await
            .unwrap()
            .expect("free");
    assert!(first.is_held());
    first.check().await.unwrap();
    assert!(
        db.b.lease("orders", "replica b").await.unwrap().is_none(),
        "a second owner while the first holds the lease"
    );
    assert!(db
        .a
        .lease("orders", "replica a again")
        .await
        .unwrap()
        .is_none());
    let other = db.b.lease("customers", "replica b").await.unwrap();
    assert!(other.is_some(), "leases are per mapping");
    let epoch = first.epoch();
    first.release();
    let second = take(db.b.as_ref(), "orders", "replica b").await;
    assert_eq!(second.epoch(), epoch + 1, "a takeover is a new epoch");
}

async fn a_commit_from_an_older_epoch_is_refused(db: Db) {
    let old = db.a.lease("orders", "replica a").await.unwrap().unwrap();
    db.a.commit("orders", &fenced(old.epoch(), 1))
        .await
        .unwrap();
    let old_epoch = old.epoch();
    old.release();
    let new = take(db.b.as_ref(), "orders", "replica b").await;
    // The old owner, paused past its lease, wakes up and commits.
    let err =
        db.a.commit("orders", &fenced(old_epoch, 2))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{err}");
    let state = db.b.load("orders").await.unwrap();
    assert_eq!(state.bases.len(), 1, "nothing of the refused commit stayed");
    assert_eq!(state.clock, 1);
    db.b.commit("orders", &fenced(new.epoch(), 3))
        .await
        .unwrap();
    assert_eq!(db.b.load("orders").await.unwrap().bases.len(), 2);
    let unleased = db.b.commit("customers", &fenced(1, 4)).await.unwrap_err();
    assert_eq!(
        unleased.kind(),
        ErrorKind::NotOwner,
        "no lease, no fenced commit"
    );
    // Unfenced commits (a mapping without replicas) are not affected.
    let plain = StateDelta {
        upsert: vec![base(5)],
        ..StateDelta::default()
    };
    db.a.commit("customers", &plain).await.unwrap();
}

async fn a_lost_lock_connection_ends_the_lease(db: Db) {
    let lease = db.a.lease("orders", "replica a").await.unwrap().unwrap();
    let kill = db.kill.as_ref().expect("a server database");
    kill("orders".into()).await;
    let err = lease.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{err}");
    assert!(!lease.is_held());
    tokio::time::timeout(Duration::from_secs(1), lease.lost())
        .await
        .expect("lost() resolves once the lock is gone");
    let next = take(db.b.as_ref(), "orders", "replica b").await;
    assert_eq!(next.epoch(), lease.epoch() + 1);
}

/// Membership of replicas: each heartbeat counts its replica alive for the time to live, by
/// the database's clock; leaving removes it at once; the lease record names the last owner.
async fn heartbeats_count_the_replicas_alive(db: Db) {
    let ttl = Duration::from_millis(1500);
    assert_eq!(db.a.heartbeat("a", ttl).await.unwrap(), ["a"]);
    assert_eq!(db.b.heartbeat("b", ttl).await.unwrap(), ["a", "b"]);
    assert_eq!(db.a.heartbeat("a", ttl).await.unwrap(), ["a", "b"]);
    db.b.leave("b").await.unwrap();
    assert_eq!(db.a.heartbeat("a", ttl).await.unwrap(), ["a"], "left");
    db.b.heartbeat("b", ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    db.a.heartbeat("a", ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // b's row is 1.8 s old, a's 0.8 s: only a counts.
    assert_eq!(db.a.heartbeat("a", ttl).await.unwrap(), ["a"], "expired");
    the_lease_record_names_the_last_owner(&db).await;
}

async fn the_lease_record_names_the_last_owner(db: &Db) {
    assert_eq!(db.a.lease_record("orders").await.unwrap(), None);
    let lease = take(db.a.as_ref(), "orders", "host-a:1").await;
    let record =
        db.b.lease_record("orders")
            .await
            .unwrap()
            .expect("a record");
    assert_eq!(
        (record.owner.as_str(), record.epoch),
        ("host-a:1", lease.epoch())
    );
}

macro_rules! per_database {
    ($($check:ident: $($db:ident),*;)*) => {$($(
        paste_test!($check, $db);
    )*)*};
}

macro_rules! paste_test {
    ($check:ident, $db:ident) => {
        #[tokio::test]
        async fn $db() {
            $check(super::$db().await).await;
        }
    };
}

mod one_owner_at_a_time {
    use super::*;
    per_database!(one_owner_at_a_time_and_each_takeover_a_new_epoch: sqlite, postgres, mysql;);
}

mod older_epochs_are_fenced {
    use super::*;
    per_database!(a_commit_from_an_older_epoch_is_refused: sqlite, postgres, mysql;);
}

mod replica_membership {
    use super::*;
    per_database!(heartbeats_count_the_replicas_alive: postgres, mysql;);

    /// SQLite keeps no membership (a heartbeat would wake every engine on the file): its
    /// replicas stand by.
    #[tokio::test]
    async fn sqlite_keeps_none() {
        let db = super::sqlite().await;
        let err =
            db.a.heartbeat("a", Duration::from_secs(5))
                .await
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        db.a.leave("a").await.unwrap();
        the_lease_record_names_the_last_owner(&db).await;
    }
}

mod a_lost_lock_ends_the_lease {
    use super::*;
    per_database!(a_lost_lock_connection_ends_the_lease: postgres, mysql;);
}

/// The table's write transaction carries the fence too: a refused state commit takes the
/// cycle's database writes with it.
#[tokio::test]
async fn a_fenced_write_transaction_rolls_back_its_writes() {
    let db = test_database(Dialect::Sqlite, PREFIX).await;
    let url = db.url.clone();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(id_name_table_sql(Dialect::Sqlite))
        .execute(&pool)
        .await
        .unwrap();
    let table = SqliteTable::open(pool.clone(), "items", SqlOptions::default())
        .await
        .unwrap();
    table.install().await.unwrap();
    let store = SqliteStateStore::new(pool.clone()).await.unwrap();
    let old = store.try_lease("items", "a").await.unwrap().unwrap();
    let epoch = old.epoch();
    old.release();
    let other = SqliteStateStore::new(sqlx::SqlitePool::connect(&url).await.unwrap())
        .await
        .unwrap();
    let _new = take(&other, "items", "b").await;
    let mut tx = table.begin(&common::ctx()).await.unwrap();
    let row = Row::new(vec![Value::Int(1), Value::Text("late".into())]);
    tx.apply(vec![common::upsert(row)]).await.unwrap();
    let err = tx.commit("items", &fenced(epoch, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{err}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the old owner's database write was rolled back");
}

/// An engine that owns its mapping by a lease: once the lease is lost and another process
/// took the mapping over, a cycle of the old engine (paused, it never noticed) writes nothing to
/// the Sheet, its database write is rolled back with its refused state commit, and its loop ends.
#[tokio::test]
async fn an_engine_whose_mapping_was_taken_over_changes_nothing() {
    use sheetsync_core::{Engine, MappingConfig, MemoryTable, Source, Table};
    use sheetsync_sql::PostgresTable;
    use std::sync::Arc;
    let db = postgres().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(id_name_table_sql(Dialect::Postgres))
        .execute(&pool)
        .await
        .unwrap();
    let table = PostgresTable::open(pool.clone(), None, "items", SqlOptions::default())
        .await
        .unwrap();
    table.install().await.unwrap();
    let store = Arc::new(PostgresStateStore::new(pool.clone()).await.unwrap());
    let lease = store.try_lease("items", "a").await.unwrap().unwrap();
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", table.schema().clone()));
    let engine = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        Arc::new(table) as Arc<dyn Table>,
    )
    .state(store.clone())
    .owner(Arc::new(lease))
    .build()
    .await
    .unwrap();
    engine.run_once().await.unwrap();
    (db.kill.as_ref().unwrap())("items".into()).await;
    let _taken = take(db.b.as_ref(), "items", "b").await;
    sheet.upsert(Row::new(vec![Value::Int(1), Value::Text("typed".into())]));
    let err = engine.run_once().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{err}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the old owner's write was rolled back");
    let state = db.b.load("items").await.unwrap();
    assert!(
        state.bases.is_empty() && state.intents.is_empty(),
        "{state:?}"
    );
    // A database row for the Sheet: the old engine must not write it there.
    sqlx::query("INSERT INTO items VALUES (2, 'from the database')")
        .execute(&pool)
        .await
        .unwrap();
    let _ = engine.run_once().await;
    assert!(
        sheet.rows().is_empty() || sheet.rows().len() == 1,
        "{:?}",
        sheet.rows()
    );
    assert!(
        !sheet.rows().iter().any(|r| r.0[0] == Value::Int(2)),
        "the old owner wrote the Sheet"
    );
    tokio::time::timeout(Duration::from_secs(5), engine.run(std::future::pending()))
        .await
        .expect("the loop ends once the lease is lost");
    assert!(engine.lost_ownership());
    pool.close().await;
}
