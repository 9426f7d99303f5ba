//! The PostgreSQL adapter against a real server: `SHEETSYNC_TEST_POSTGRES_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`. Each test creates its own database and drops
//! it afterwards (also when the test fails).
//!
//! The change feed's horizon is cluster-wide, so the tests run one at a time: a transaction
//! held open by one test (on purpose, in the out-of-order test) would hold back the others'
//! feeds.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use futures::StreamExt;
use sheetsync_core::testkit::{undeclared_capabilities, ExternalWriter, Fixture, FixtureFactory};
use sheetsync_core::{
    ColumnType, Engine, ErrorKind, Expected, MappingConfig, MemoryTable, Result, Row, RowKey, Sink,
    Source, Table, TableSchema, Value, WriteOp, WriteOutcome,
};
use sheetsync_sql::{PostgresStateStore, PostgresTable, SqlOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool};

const D: Dialect = Dialect::Postgres;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn admin_url() -> String {
    std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database, dropped when this goes out of scope.
struct TestDb {
    name: String,
    pool: PgPool,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl TestDb {
    async fn new() -> TestDb {
        let serial = SERIAL.lock().await;
        let url = admin_url();
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url}: {e}. Set SHEETSYNC_TEST_POSTGRES_URL to a server where the user \
                 may create databases, or start one on 127.0.0.1:5432 (e.g. `pg_ctlcluster 15 main start`, or \
                 `docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`)."
            )
        });
        let name = format!("sheetsync_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let opts = PgConnectOptions::from_str(&url).unwrap().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(opts)
            .await
            .unwrap();
        TestDb {
            name,
            pool,
            _serial: serial,
        }
    }

    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&admin_url())
            .unwrap()
            .database(&self.name)
    }

    /// A second pool: another program.
    async fn other_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(3)
            .connect_with(self.options())
            .await
            .unwrap()
    }

    async fn table(
        &self,
        name: &str,
        schema: &TableSchema,
        generated: bool,
        options: SqlOptions,
    ) -> (Arc<PostgresTable>, Arc<Other>) {
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
        let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
        killed.len()
    }

    /// The adapter on the existing table `name`.
    async fn open(&self, name: &str, options: SqlOptions) -> PostgresTable {
        PostgresTable::open(self.pool.clone(), None, name, options)
            .await
            .unwrap()
    }

    /// The URL and (qualified) table name that open `items` through `SqlTable::connect`.
    fn items_url(&self) -> (String, String) {
        let server = admin_url().rsplit_once('/').unwrap().0.to_string();
        (format!("{server}/{}", self.name), "public.items".into())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = admin_url();
        // Runs during unwinding too, so on its own thread and runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            })
        })
        .join();
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    v: &Value,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
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
    pool: PgPool,
    table: String,
    schema: TableSchema,
}

#[async_trait]
impl ExternalWriter for Other {
    async fn upsert(&self, row: Row) -> Result<()> {
        let sql = external_upsert_sql(D, &self.table, &self.schema, &pg_types(&self.schema));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in &row.0 {
            q = bind(q, v);
        }
        q.execute(&self.pool).await.unwrap();
        Ok(())
    }

    async fn delete(&self, key: RowKey) -> Result<()> {
        let sql = external_delete_sql(D, &self.table, &self.schema, &pg_types(&self.schema));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in key.values() {
            q = bind(q, &v);
        }
        q.execute(&self.pool).await.unwrap();
        Ok(())
    }
}

struct Factory {
    db: TestDb,
    n: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl FixtureFactory for Factory {
    async fn create(&self, schema: TableSchema) -> Result<Fixture> {
        // A fresh table of exactly this name: each fixture in a schema of its own.
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ns = format!("fixture_{n}");
        let table = format!("{ns}.{}", quote(D, &schema.name));
        for sql in [
            format!("CREATE SCHEMA {ns}"),
            create_table_sql(D, &schema.name, &schema, true).replacen(
                &quote(D, &schema.name),
                &table,
                1,
            ),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&self.db.pool)
                .await
                .unwrap();
        }
        let t = PostgresTable::open(
            self.db.pool.clone(),
            Some(&ns),
            &schema.name,
            SqlOptions::default(),
        )
        .await?;
        t.install().await?;
        let other = Other {
            pool: self.db.other_pool().await,
            table,
            schema,
        };
        Ok(Fixture {
            table: Arc::new(t),
            external: Arc::new(other),
        })
    }
}

async fn factory() -> Factory {
    Factory {
        db: TestDb::new().await,
        n: Default::default(),
    }
}

/// One test per conformance check.
mod conformance {
    use super::*;
    sheetsync_core::conformance_tests!(factory().await);
}

#[tokio::test]
async fn conformance_skips_nothing() {
    let missing = undeclared_capabilities(&factory().await).await;
    assert!(
        missing.is_empty(),
        "every capability is declared: {missing:?}"
    );
}

#[tokio::test]
async fn introspection_maps_types_keys_and_refuses_what_it_cannot_sync() {
    let db = TestDb::new().await;
    for sql in [
        "CREATE TYPE mood AS ENUM ('happy', 'sad')",
        "CREATE DOMAIN positive AS integer CHECK (VALUE > 0)",
        "CREATE TABLE t (a smallint, b integer, c bigint, d numeric(10,2), e real, f double precision, g boolean,
           h char(3), i varchar(10), j text, k date, l time, m timestamp, n timestamptz, o json, p jsonb, q uuid,
           r mood, s positive, u bytea, PRIMARY KEY (j, c))",
        "CREATE TABLE nokey (a int)",
        "CREATE TABLE odd (id int PRIMARY KEY, span interval)",
        "CREATE TABLE gen (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x int, twice int GENERATED ALWAYS AS (x * 2) STORED)",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    let t = PostgresTable::open(db.pool.clone(), None, "t", SqlOptions::default())
        .await
        .unwrap();
    use ColumnType::*;
    let types: Vec<ColumnType> = t.schema().columns.iter().map(|c| c.ty).collect();
    assert_eq!(
        types,
        vec![
            Int,
            Int,
            Int,
            Decimal,
            Float,
            Float,
            Bool,
            Text,
            Text,
            Text,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Json,
            Json,
            Uuid,
            Text,
            Int,
            Bytes
        ]
    );
    assert_eq!(t.schema().key_names(), vec!["j", "c"]);
    assert!(!t.capabilities().generated_keys);

    let e = PostgresTable::open(db.pool.clone(), None, "nokey", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    assert!(
        e.to_string()
            .contains("\"public.nokey\" has no primary key"),
        "{e}"
    );
    let e = PostgresTable::open(db.pool.clone(), None, "odd", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("column \"span\"") && e.to_string().contains("interval"),
        "{e}"
    );
    let e = PostgresTable::open(db.pool.clone(), Some("nope"), "t", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // GENERATED ALWAYS identity key: upserts override it, inserts generate it; the generated
    // column is read-only (database to sheet).
    let g = PostgresTable::open(db.pool.clone(), None, "gen", SqlOptions::default())
        .await
        .unwrap();
    g.install().await.unwrap();
    assert!(g.capabilities().generated_keys);
    assert_eq!(
        g.schema().columns[2].direction,
        sheetsync_core::Direction::DbToSheet
    );
    let out = g
        .apply(
            vec![
                upsert(Row::new(vec![Value::Int(10), Value::Int(1), Value::Null])),
                WriteOp::Insert {
                    row: Row::new(vec![Value::Null, Value::Int(2), Value::Null]),
                },
            ],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out[0], WriteOutcome::Applied);
    assert_eq!(
        out[1],
        WriteOutcome::Stored(Row::new(vec![Value::Int(1), Value::Int(2), Value::Int(4)]))
    );
    assert_eq!(
        scan_rows(&g).await,
        vec![
            Row::new(vec![Value::Int(1), Value::Int(2), Value::Int(4)]),
            Row::new(vec![Value::Int(10), Value::Int(1), Value::Int(2)])
        ]
    );
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
    // numeric keeps every digit; the scale the column stores does not make it a different value.
    let text: String = sqlx::query_scalar("SELECT price::text FROM all_types WHERE id = 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(text, "12345678901234567890.125");
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_never_skipped() {
    let db = TestDb::new().await;
    let (t, _) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    let c0 = t.cursor().await.unwrap().unwrap();
    let mut a = sqlx::PgConnection::connect_with(&db.options())
        .await
        .unwrap();
    let mut b = sqlx::PgConnection::connect_with(&db.options())
        .await
        .unwrap();
    // A starts first and writes first: its change-log entry has the lower xid and seq.
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("INSERT INTO items (id, name) VALUES (1, 'from A')")
        .execute(&mut a)
        .await
        .unwrap();
    // B writes later and commits first.
    sqlx::query("INSERT INTO items (id, name) VALUES (2, 'from B')")
        .execute(&mut b)
        .await
        .unwrap();
    let (mut seen, c1) = drain(&*t, &c0).await;
    assert!(!seen.contains_key(&int_key(1)), "A has not committed");
    // Now A commits, after the reader has moved on.
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    let (later, _) = drain(&*t, &c1).await;
    seen.extend(later);
    assert!(
        seen.contains_key(&int_key(1)),
        "A's late commit was skipped: {seen:?}"
    );
    assert!(
        seen.contains_key(&int_key(2)),
        "B's row is missing: {seen:?}"
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
    sqlx::query("CREATE UNIQUE INDEX items_name ON items (name)")
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
                upsert(item(2, "a", 2)),    // unique violation
                upsert(item(3, "c", 5000)), // check violation
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
    match (&out[1], &out[2]) {
        (WriteOutcome::Held(a), WriteOutcome::Held(b)) => {
            assert!(a.contains("items_name"), "{a}");
            assert!(b.contains("qty_small"), "{b}");
        }
        o => panic!("expected two held rows, got {o:?}"),
    }
    assert_eq!(scan_rows(&*t).await, vec![item(1, "a", 1), item(4, "d", 4)]);
}

#[tokio::test]
async fn hostile_names_are_quoted_everywhere() {
    let db = TestDb::new().await;
    let schema = hostile_schema();
    let (t, other) = db
        .table(HOSTILE_TABLE, &schema, false, SqlOptions::default())
        .await;
    let c0 = t.cursor().await.unwrap().unwrap();
    let rows = vec![
        hostile_row("'; DROP TABLE x; --", 1, "`backtick`"),
        hostile_row("\u{00e9}t\u{00e9}", 2, "$1 \"q\""),
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
    let left: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'sheetsync'")
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        left, None,
        "uninstall removes the sheetsync schema once unused"
    );
    assert_eq!(scan_rows(&*t).await.len(), 2, "user rows stay");
}

#[tokio::test]
async fn install_is_idempotent_and_uninstall_keeps_other_tables_captured() {
    let db = TestDb::new().await;
    let (a, _) = db
        .table("a", &small_schema(), false, SqlOptions::default())
        .await;
    let (b, other_b) = db
        .table("b", &small_schema(), false, SqlOptions::default())
        .await;
    a.install().await.unwrap();
    a.install().await.unwrap();
    let c0 = b.cursor().await.unwrap().unwrap();
    a.uninstall().await.unwrap();
    assert!(!a.is_installed().await.unwrap());
    assert!(b.is_installed().await.unwrap());
    other_b.upsert(item(1, "b", 1)).await.unwrap();
    let (seen, _) = drain(&*b, &c0).await;
    assert_eq!(seen.len(), 1);
    let e = a.cursor().await.unwrap_err();
    assert!(e.to_string().contains("install()"), "{e}");
}

#[tokio::test]
async fn wakeups_come_from_notify() {
    let db = TestDb::new().await;
    let opts = SqlOptions {
        // Long enough that only NOTIFY can produce the second wake-up.
        poll_interval: Some(Duration::from_secs(3600)),
        ..SqlOptions::default()
    };
    let (t, other) = db.table("items", &small_schema(), false, opts).await;
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
    let store = PostgresStateStore::new(db.pool.clone()).await.unwrap();
    PostgresStateStore::new(db.pool.clone()).await.unwrap(); // idempotent
    state_store_contract(&store).await;
    store.uninstall().await.unwrap();
    let left: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'sheetsync'")
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn an_insert_expecting_absence_never_overwrites_a_concurrent_insert() {
    let db = TestDb::new().await;
    let (t, _) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    // Another program inserts key 5 and has not committed yet.
    let mut b = sqlx::PgConnection::connect_with(&db.options())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut b).await.unwrap();
    sqlx::query("INSERT INTO items (id, name, qty) VALUES (5, 'theirs', 1)")
        .execute(&mut b)
        .await
        .unwrap();
    // The engine's check sees no row 5; its insert then waits for the other transaction.
    let engine_write = {
        let t = t.clone();
        tokio::spawn(async move {
            t.apply(
                vec![
                    WriteOp::Upsert {
                        row: item(5, "ours", 2),
                        expected: Expected::Absent,
                    },
                    WriteOp::Upsert {
                        row: item(6, "ours", 2),
                        expected: Expected::Absent,
                    },
                ],
                &ctx(),
            )
            .await
        })
    };
    let mut blocked = false;
    for _ in 0..1_200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if waiting > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        blocked,
        "the engine's insert never waited for the other transaction"
    );
    sqlx::query("COMMIT").execute(&mut b).await.unwrap();
    let out = engine_write.await.unwrap().unwrap();
    assert_eq!(out, vec![WriteOutcome::Stale, WriteOutcome::Applied]);
    let mut theirs = item(5, "theirs", 1);
    theirs.0[3] = Value::Null;
    assert_eq!(scan_rows(&*t).await, vec![theirs, item(6, "ours", 2)]);
}

#[tokio::test]
async fn truncate_asks_for_a_full_read_and_the_delete_guard_decides() {
    let db = TestDb::new().await;
    let (t, other) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", small_schema()));
    let engine = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        t.clone() as Arc<dyn Table>,
    )
    .build()
    .await
    .unwrap();
    for i in 1..=3 {
        other.upsert(item(i, "x", i)).await.unwrap();
    }
    engine.run_once().await.unwrap();
    assert_eq!(sheet.rows().len(), 3);
    sqlx::query("TRUNCATE items")
        .execute(&db.pool)
        .await
        .unwrap();
    engine.run_once().await.unwrap();
    assert!(
        t.full_scan_requested(),
        "a TRUNCATE names no rows: a full read is needed"
    );
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.full_reads.db, 1);
    assert!(!t.full_scan_requested());
    // Every row gone at once trips the mass-delete guard: the Sheet keeps its rows until the
    // host allows the deletes.
    assert_eq!(report.guard_tripped, vec![sheetsync_core::Side::Sheet]);
    assert_eq!(sheet.rows().len(), 3);
    engine.allow_deletes_once().await;
    engine.run_once().await.unwrap();
    assert!(sheet.rows().is_empty());
}

#[tokio::test]
async fn a_cursor_from_another_history_restarts_the_feed() {
    let db = TestDb::new().await;
    let (t, other) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    other.upsert(item(1, "a", 1)).await.unwrap();
    // A cursor persisted before the database was restored from a dump: ahead of its xids.
    let ahead = sheetsync_core::Cursor(format!("pg:{}:0", u32::MAX));
    let b = t.changes(&ahead, 100).await.unwrap();
    assert!(b.changes.is_empty() && b.more);
    assert!(t.full_scan_requested());
    let (seen, _) = drain(&*t, &b.cursor).await;
    assert_eq!(seen[&int_key(1)], Some(item(1, "a", 1)));
}

#[tokio::test]
async fn values_the_column_cannot_hold_are_held_with_the_database_message() {
    let db = TestDb::new().await;
    sqlx::query(
        "CREATE TABLE small (id int PRIMARY KEY, code varchar(3), n smallint, amount numeric(6,2))",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let t = PostgresTable::open(db.pool.clone(), None, "small", SqlOptions::default())
        .await
        .unwrap();
    let r = |id: i64, code: &str, n: i64, amount: &str| {
        Row::new(vec![
            Value::Int(id),
            Value::Text(code.into()),
            Value::Int(n),
            Value::Decimal(amount.parse().unwrap()),
        ])
    };
    let out = t
        .apply(
            vec![
                upsert(r(1, "abc", 1, "1234.5")),
                upsert(r(2, "abcd", 1, "1")),      // too long
                upsert(r(3, "x", 100_000, "1")),   // out of smallint range
                upsert(r(4, "y", 1, "123456789")), // numeric overflow
            ],
            &ctx(),
        )
        .await
        .unwrap();
    assert!(applied(&out[0]), "{out:?}");
    for (o, needle) in out[1..]
        .iter()
        .zip(["too long", "out of range", "overflow"])
    {
        assert!(
            matches!(o, WriteOutcome::Held(m) if m.contains(needle)),
            "{o:?}"
        );
    }
    // Nothing was truncated or rounded silently on the way in; numeric(6,2) shows its scale.
    assert_eq!(scan_rows(&t).await, vec![r(1, "abc", 1, "1234.50")]);
}

#[tokio::test]
async fn sqlstates_are_classified_once() {
    let db = TestDb::new().await;
    let (t, _) = db
        .table("items", &small_schema(), false, SqlOptions::default())
        .await;
    // A user trigger that fails the way the server would: by SQLSTATE, chosen per row.
    sqlx::query(
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.name = 'serialization' THEN RAISE EXCEPTION 'retry me' USING ERRCODE = '40001'; END IF;
           IF NEW.name = 'deadlock' THEN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END IF;
           IF NEW.name = 'refused' THEN RAISE EXCEPTION 'refused by rule' USING ERRCODE = '23514'; END IF;
           IF NEW.name = 'denied' THEN RAISE EXCEPTION 'not yours' USING ERRCODE = '42501'; END IF;
           RETURN NEW;
         END $$",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER fail BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION fail()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    for (name, temporary) in [
        ("serialization", true),
        ("deadlock", true),
        ("denied", false),
    ] {
        let e = t
            .apply(vec![upsert(item(1, name, 1))], &ctx())
            .await
            .unwrap_err();
        assert_eq!(e.is_temporary(), temporary, "{name}: {e}");
        if name == "denied" {
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        }
    }
    let out = t
        .apply(
            vec![upsert(item(1, "refused", 1)), upsert(item(2, "fine", 2))],
            &ctx(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Held(m) if m.contains("refused by rule")),
        "{out:?}"
    );
    assert_eq!(out[1], WriteOutcome::Applied);
}

crate::server_items_fixture!(PostgresTable, PostgresStateStore);

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
