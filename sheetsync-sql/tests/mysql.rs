//! The MySQL/MariaDB adapter against a real server: `SHEETSYNC_TEST_MYSQL_URL`, else
//! `mysql://root@127.0.0.1:3306/`. Each test creates its own database and drops it afterwards
//! (also when the test fails).

mod common;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use futures::StreamExt;
use sheetsync_core::testkit::{undeclared_capabilities, ExternalWriter, Fixture, FixtureFactory};
use sheetsync_core::{
    ColumnType, ErrorKind, Expected, Result, Row, RowKey, Sink, Source, Table, TableSchema, Value,
    WriteOp, WriteOutcome,
};
use sheetsync_sql::{MySqlStateStore, MySqlTable, SqlOptions};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, MySqlPool};

const D: Dialect = Dialect::MySql;

fn admin_url() -> String {
    std::env::var("SHEETSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into())
}

/// A fresh database, dropped when this goes out of scope.
struct TestDb {
    name: String,
    pool: MySqlPool,
}

impl TestDb {
    async fn new() -> TestDb {
        let url = admin_url();
        let mut admin = sqlx::MySqlConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "MySQL/MariaDB is not reachable at {url}: {e}. Set SHEETSYNC_TEST_MYSQL_URL to a server where the user \
                 may create databases, or start one on 127.0.0.1:3306 (e.g. `service mariadb start`, or \
                 `docker run -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 mariadb:11`)."
            )
        });
        let name = format!("sheetsync_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
        let pool = MySqlPoolOptions::new()
            .max_connections(5)
            .connect_with(Self::opts(&name))
            .await
            .unwrap();
        TestDb { name, pool }
    }

    fn opts(name: &str) -> MySqlConnectOptions {
        MySqlConnectOptions::from_str(&admin_url())
            .unwrap()
            .database(name)
    }

    async fn other_pool(&self) -> MySqlPool {
        MySqlPoolOptions::new()
            .max_connections(3)
            .connect_with(Self::opts(&self.name))
            .await
            .unwrap()
    }

    async fn table(
        &self,
        name: &str,
        schema: &TableSchema,
        generated: bool,
        options: SqlOptions,
    ) -> (Arc<MySqlTable>, Arc<Other>) {
        sqlx::query(AssertSqlSafe(create_table_sql(D, name, schema, generated)))
            .execute(&self.pool)
            .await
            .unwrap();
        let t = self.open(name, options).await;
        t.install().await.unwrap();
        let other = Other {
            pool: self.other_pool().await,
            table: quote(D, name),
            schema: schema.clone(),
        };
        (Arc::new(t), Arc::new(other))
    }

    /// Ends every connection to this database but the caller's; returns how many.
    async fn kill_connections(&self) -> usize {
        let mut admin = sqlx::MySqlConnection::connect(&admin_url()).await.unwrap();
        let ids: Vec<u64> = sqlx::query_scalar(
            "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        for id in &ids {
            let _ = sqlx::query(AssertSqlSafe(format!("KILL {id}")))
                .execute(&mut admin)
                .await;
        }
        admin.close().await.unwrap();
        ids.len()
    }

    /// The adapter on the existing table `name`.
    async fn open(&self, name: &str, options: SqlOptions) -> MySqlTable {
        MySqlTable::open(self.pool.clone(), name, options)
            .await
            .unwrap()
    }

    /// The URL (as `mariadb:`) and table name that open `items` through `SqlTable::connect`.
    fn items_url(&self) -> (String, String) {
        let base = admin_url();
        let url = format!("{}/{}", base.trim_end_matches('/'), self.name);
        (url.replacen("mysql:", "mariadb:", 1), "items".into())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::MySqlConnection::connect(&url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                        .execute(&mut admin)
                        .await;
                }
            })
        })
        .join();
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    v: &Value,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Bytes(b) => q.bind(b.clone()),
        other => q.bind(text_of(D, other).unwrap()),
    }
}

/// Plain SQL on another pool, with no origin: what another program does.
struct Other {
    pool: MySqlPool,
    table: String,
    schema: TableSchema,
}

#[async_trait]
impl ExternalWriter for Other {
    async fn upsert(&self, row: Row) -> Result<()> {
        let sql = external_upsert_sql(D, &self.table, &self.schema, &[]);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in &row.0 {
            q = bind(q, v);
        }
        q.execute(&self.pool).await.unwrap();
        Ok(())
    }

    async fn delete(&self, key: RowKey) -> Result<()> {
        let sql = external_delete_sql(D, &self.table, &self.schema, &[]);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in key.values() {
            q = bind(q, &v);
        }
        q.execute(&self.pool).await.unwrap();
        Ok(())
    }
}

/// Each fixture gets a database of its own (the table must have exactly the schema's name).
struct Factory {
    dbs: Mutex<Vec<Arc<TestDb>>>,
}

#[async_trait]
impl FixtureFactory for Factory {
    async fn create(&self, schema: TableSchema) -> Result<Fixture> {
        let db = Arc::new(TestDb::new().await);
        let (t, o) = db
            .table(&schema.name, &schema, true, SqlOptions::default())
            .await;
        self.dbs.lock().unwrap().push(db);
        Ok(Fixture {
            table: t,
            external: o,
        })
    }
}

fn factory() -> Factory {
    Factory {
        dbs: Mutex::new(Vec::new()),
    }
}

/// One test per conformance check.
mod conformance {
    use super::*;
    sheetsync_core::conformance_tests!(factory());
}

#[tokio::test]
async fn conformance_skips_nothing() {
    let missing = undeclared_capabilities(&factory()).await;
    assert!(
        missing.is_empty(),
        "every capability is declared: {missing:?}"
    );
}

#[tokio::test]
async fn introspection_maps_types_keys_and_refuses_what_it_cannot_sync() {
    let db = TestDb::new().await;
    for sql in [
        "CREATE TABLE t (a TINYINT(1), b INT UNSIGNED NOT NULL, c BIGINT, d DECIMAL(10,2), e FLOAT, f DOUBLE,
           g CHAR(3), h VARCHAR(10) NOT NULL, i TEXT, j ENUM('x','y'), k DATE, l TIME(3), m DATETIME(6), n TIMESTAMP(6) NULL,
           o JSON, p UUID, q BLOB, r CHAR(36) COMMENT 'sheetsync:uuid', PRIMARY KEY (h, b))",
        "CREATE TABLE nokey (a INT)",
        "CREATE TABLE odd (id INT PRIMARY KEY, y YEAR)",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    let t = MySqlTable::open(db.pool.clone(), "t", SqlOptions::default())
        .await
        .unwrap();
    use ColumnType::*;
    let types: Vec<ColumnType> = t.schema().columns.iter().map(|c| c.ty).collect();
    assert_eq!(
        types,
        vec![
            Bool,
            Int,
            Int,
            Decimal,
            Float,
            Float,
            Text,
            Text,
            Text,
            Text,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Json,
            Uuid,
            Bytes,
            Uuid
        ]
    );
    assert_eq!(t.schema().key_names(), vec!["h", "b"]);
    let e = MySqlTable::open(db.pool.clone(), "nokey", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    assert!(e.to_string().contains("nokey\" has no primary key"), "{e}");
    let e = MySqlTable::open(db.pool.clone(), "odd", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("column \"y\"") && e.to_string().contains("year"),
        "{e}"
    );
    let e = MySqlTable::open(db.pool.clone(), "missing", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn every_type_round_trips_exactly() {
    let db = TestDb::new().await;
    let schema = sheetsync_core::testkit::conformance_schema();
    let (t, other) = db
        .table("all_types", &schema, false, SqlOptions::default())
        .await;
    let mut nulls = full_row(2);
    for v in nulls.0.iter_mut().skip(2) {
        *v = Value::Null;
    }
    let mut tiny = full_row(3);
    tiny.0[3] = Value::Decimal("-0.000000000000000000000000000001".parse().unwrap());
    tiny.0[1] = Value::Text("=SUM(A1:A9) 007".into());
    let rows = vec![full_row(1), nulls, tiny];
    let out = t
        .apply(rows.iter().cloned().map(upsert).collect(), &ctx())
        .await
        .unwrap();
    assert!(out.iter().all(applied), "{out:?}");
    assert_eq!(scan_rows(&*t).await, rows);
    other.upsert(full_row(4)).await.unwrap();
    let fetched = t.fetch(&[int_key(4)]).await.unwrap();
    assert_eq!(
        fetched[0].change,
        sheetsync_core::Change::Upsert(full_row(4))
    );
}

#[tokio::test]
async fn engine_writes_never_come_back_and_the_session_tag_never_leaks() {
    let db = TestDb::new().await;
    let (t, other) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    let c0 = t.cursor().await.unwrap().unwrap();
    t.apply(
        vec![upsert(item(1, "engine", 1)), upsert(item(2, "engine", 2))],
        &ctx(),
    )
    .await
    .unwrap();
    // A conditional write that goes stale, and one that fails: the tag is cleared either way.
    let out = t
        .apply(
            vec![WriteOp::Upsert {
                row: item(1, "x", 0),
                expected: Expected::Absent,
            }],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Stale]);
    let (seen, c1) = drain(&*t, &c0).await;
    assert!(
        seen.is_empty(),
        "the engine's own writes came back: {seen:?}"
    );
    t.ack(&c1).await.unwrap();
    // Every pooled connection is untagged: writes through it are seen as changes.
    let mut conns = Vec::new();
    for _ in 0..5 {
        let mut c = t.pool().acquire().await.unwrap();
        let tag: Option<String> = sqlx::query_scalar("SELECT @sheetsync_origin")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(tag, None, "a pooled connection kept the engine's origin");
        conns.push(c);
    }
    drop(conns);
    sqlx::query("UPDATE items SET qty = 99 WHERE id = 2")
        .execute(t.pool())
        .await
        .unwrap();
    other.delete(int_key(1)).await.unwrap();
    let (seen, c2) = drain(&*t, &c1).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[&int_key(1)], None);
    t.ack(&c2).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sheetsync_changelog")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "acknowledged entries are deleted");
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_never_skipped() {
    let db = TestDb::new().await;
    let (t, _) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    let c0 = t.cursor().await.unwrap().unwrap();
    let mut a = sqlx::MySqlConnection::connect_with(&TestDb::opts(&db.name))
        .await
        .unwrap();
    let mut b = sqlx::MySqlConnection::connect_with(&TestDb::opts(&db.name))
        .await
        .unwrap();
    // A writes first (the lower change-log id) but commits last.
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("INSERT INTO items (id, name) VALUES (1, 'from A')")
        .execute(&mut a)
        .await
        .unwrap();
    sqlx::query("INSERT INTO items (id, name) VALUES (2, 'from B')")
        .execute(&mut b)
        .await
        .unwrap();
    let (mut seen, c1) = drain(&*t, &c0).await;
    assert!(
        seen.contains_key(&int_key(2)) && !seen.contains_key(&int_key(1)),
        "{seen:?}"
    );
    t.ack(&c1).await.unwrap();
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    let (later, _) = drain(&*t, &c1).await;
    seen.extend(later);
    assert!(
        seen.contains_key(&int_key(1)),
        "A's late commit was skipped: {seen:?}"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_row_is_held_and_the_rest_of_the_batch_applies() {
    let db = TestDb::new().await;
    let (t, _) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    sqlx::query("CREATE UNIQUE INDEX items_name ON items (name(50))")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 1000)")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = t
        .apply(
            vec![
                upsert(item(1, "a", 1)),
                WriteOp::Upsert {
                    row: item(2, "a", 2),
                    expected: Expected::Absent,
                }, // duplicate name
                upsert(item(3, "c", 5000)), // check
                upsert(item(4, "d", 4)),
                WriteOp::Delete {
                    key: int_key(9),
                    expected: Expected::Any,
                },
            ],
            &ctx(),
        )
        .await
        .unwrap();
    assert!(
        applied(&out[0]) && applied(&out[3]) && applied(&out[4]),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], WriteOutcome::Held(m) if m.contains("Duplicate")),
        "{out:?}"
    );
    assert!(
        matches!(&out[2], WriteOutcome::Held(m) if m.contains("qty_small")),
        "{out:?}"
    );
    assert_eq!(scan_rows(&*t).await, vec![item(1, "a", 1), item(4, "d", 4)]);
}

#[tokio::test]
async fn hostile_names_are_quoted_everywhere() {
    let db = TestDb::new().await;
    let schema = hostile_schema();
    // MySQL table names cannot end with a space or hold some characters; keep the rest.
    let table = "Order\"s`; DELETE FROM x; -- \u{00e9}";
    let (t, other) = db.table(table, &schema, false, SqlOptions::default()).await;
    let c0 = t.cursor().await.unwrap().unwrap();
    let rows = vec![
        hostile_row("'; DROP TABLE x; --", 1, "`backtick`"),
        hostile_row("\u{00e9}t\u{00e9}", 2, "\\ \"q\""),
    ];
    let out = t
        .apply(rows.iter().cloned().map(upsert).collect(), &ctx())
        .await
        .unwrap();
    assert!(out.iter().all(applied), "{out:?}");
    let mut sorted = rows.clone();
    sorted.sort_by_key(|r| r.key(&schema));
    assert_eq!(scan_rows(&*t).await, sorted);
    other.upsert(hostile_row("x", 3, "other")).await.unwrap();
    other.delete(rows[0].key(&schema).unwrap()).await.unwrap();
    let (seen, _) = drain(&*t, &c0).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[&rows[0].key(&schema).unwrap()], None);
    t.uninstall().await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '\\_sheetsync%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "uninstall removes the capture tables once unused");
    let triggers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(triggers, 0);
    assert_eq!(scan_rows(&*t).await.len(), 2, "user rows stay");
}

#[tokio::test]
async fn wakeups_follow_the_queue() {
    let db = TestDb::new().await;
    let (t, other) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    let mut w = t.wakeups().unwrap();
    tokio::time::timeout(Duration::from_secs(60), w.next())
        .await
        .unwrap()
        .unwrap();
    other.upsert(item(1, "a", 1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), w.next())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn state_store_keeps_what_was_committed() {
    let db = TestDb::new().await;
    let store = MySqlStateStore::new(db.pool.clone()).await.unwrap();
    MySqlStateStore::new(db.pool.clone()).await.unwrap(); // idempotent
    state_store_contract(&store).await;
    store.uninstall().await.unwrap();
}

crate::server_items_fixture!(MySqlTable, MySqlStateStore);

crate::shared_scenarios!(Items::new(false).await =>
    engine_round_trip_both_ways_without_echo,
    concurrent_writers_during_sync_converge,
    a_key_change_reports_the_old_key_as_deleted,
    engine_writes_never_come_back_but_other_writers_do,
    changes_made_while_the_engine_was_stopped_are_picked_up,
    sql_table_opens_the_database_by_url,
    a_killed_connection_is_recovered_with_nothing_missed,
);

crate::shared_scenarios!(Items::new(true).await =>
    generated_keys_come_back_and_skip_past_keys_written_explicitly,
);
