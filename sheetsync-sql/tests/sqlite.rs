//! The SQLite adapter against real SQLite files in a temporary directory.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use futures::StreamExt;
use sheetsync_core::testkit::{undeclared_capabilities, ExternalWriter, Fixture, FixtureFactory};
use sheetsync_core::{
    ColumnType, ErrorKind, Expected, Result, Row, RowKey, Sink, Source, StateStore, Table,
    TableSchema, Value, WriteOp, WriteOutcome,
};
use sheetsync_sql::{SqlOptions, SqliteStateStore, SqliteTable};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqlitePool};

const D: Dialect = Dialect::Sqlite;

async fn pool(path: &std::path::Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap()
}

/// A database file with one table of `schema`, capture installed, and a second pool playing
/// another program.
struct Db {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    table: Arc<SqliteTable>,
    other: SqlitePool,
    name: String,
    schema: TableSchema,
}

async fn setup(table: &str, schema: &TableSchema, generated: bool) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let p = pool(&path).await;
    sqlx::query(AssertSqlSafe(create_table_sql(D, table, schema, generated)))
        .execute(&p)
        .await
        .unwrap();
    let t = SqliteTable::open(p, table, SqlOptions::default())
        .await
        .unwrap();
    t.install().await.unwrap();
    let other = pool(&path).await;
    Db {
        _dir: dir,
        path,
        table: Arc::new(t),
        other,
        name: table.to_string(),
        schema: schema.clone(),
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    v: &Value,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Bytes(b) => q.bind(b.clone()),
        Value::TimestampTz(t) => q.bind(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        other => q.bind(text_of(D, other).unwrap()),
    }
}

/// Plain SQL on another connection, with no origin: what another program does.
struct Other {
    pool: SqlitePool,
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

impl Db {
    fn other(&self) -> Arc<Other> {
        Arc::new(Other {
            pool: self.other.clone(),
            table: quote(D, &self.name),
            schema: self.schema.clone(),
        })
    }
}

struct Factory {
    dir: tempfile::TempDir,
    n: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl FixtureFactory for Factory {
    async fn create(&self, schema: TableSchema) -> Result<Fixture> {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.dir.path().join(format!("conformance-{n}.db"));
        let p = pool(&path).await;
        sqlx::query(AssertSqlSafe(create_table_sql(
            D,
            &schema.name,
            &schema,
            true,
        )))
        .execute(&p)
        .await
        .unwrap();
        let t = SqliteTable::open(p, &schema.name, SqlOptions::default()).await?;
        t.install().await?;
        let other = Other {
            pool: pool(&path).await,
            table: quote(D, &schema.name),
            schema,
        };
        Ok(Fixture {
            table: Arc::new(t),
            external: Arc::new(other),
        })
    }
}

fn factory() -> Factory {
    Factory {
        dir: tempfile::tempdir().unwrap(),
        n: Default::default(),
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
    let dir = tempfile::tempdir().unwrap();
    let p = pool(&dir.path().join("i.db")).await;
    sqlx::query(
        "CREATE TABLE t (a TEXT NOT NULL, b INTEGER, flag BOOLEAN, amount DECIMAL_TEXT, ratio REAL, d DATE, t TIME,
         ts DATETIME, tz TIMESTAMPTZ, u UUID, j JSON, raw BLOB, v VARCHAR(10), PRIMARY KEY (b, a))",
    )
    .execute(&p)
    .await
    .unwrap();
    let t = SqliteTable::open(p.clone(), "t", SqlOptions::default())
        .await
        .unwrap();
    let s = t.schema();
    let types: Vec<ColumnType> = s.columns.iter().map(|c| c.ty).collect();
    use ColumnType::*;
    assert_eq!(
        types,
        vec![
            Text,
            Int,
            Bool,
            Decimal,
            Float,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Uuid,
            Json,
            Bytes,
            Text
        ]
    );
    assert_eq!(s.key_names(), vec!["b", "a"], "composite key in key order");
    assert!(!s.columns[0].nullable && s.columns[2].nullable);
    assert!(
        !t.capabilities().generated_keys,
        "a composite key is not generated"
    );

    sqlx::query("CREATE TABLE nokey (a TEXT)")
        .execute(&p)
        .await
        .unwrap();
    let e = SqliteTable::open(p.clone(), "nokey", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    assert!(
        e.to_string().contains("\"nokey\" has no primary key"),
        "{e}"
    );

    sqlx::query("CREATE TABLE geo (id INTEGER PRIMARY KEY, shape GEOMETRY)")
        .execute(&p)
        .await
        .unwrap();
    let e = SqliteTable::open(p.clone(), "geo", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("column \"shape\"") && e.to_string().contains("GEOMETRY"),
        "{e}"
    );

    let e = SqliteTable::open(p, "missing", SqlOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn every_type_round_trips_exactly() {
    let schema = sheetsync_core::testkit::conformance_schema();
    let db = setup("all_types", &schema, false).await;
    let mut nulls = full_row(2);
    for v in nulls.0.iter_mut().skip(2) {
        *v = Value::Null;
    }
    let mut tiny = full_row(3);
    tiny.0[3] = Value::Decimal("-0.000000000000000000000000000001".parse().unwrap());
    tiny.0[1] = Value::Text("=SUM(A1:A9) 007".into());
    let rows = vec![full_row(1), nulls, tiny];
    let out = db
        .table
        .apply(rows.iter().cloned().map(upsert).collect(), &ctx())
        .await
        .unwrap();
    assert!(out.iter().all(applied), "{out:?}");
    assert_eq!(scan_rows(&*db.table).await, rows);
    // What another program wrote reads the same.
    db.other().upsert(full_row(4)).await.unwrap();
    let fetched = db.table.fetch(&[int_key(4)]).await.unwrap();
    assert_eq!(
        fetched[0].change,
        sheetsync_core::Change::Upsert(full_row(4))
    );
}

/// The origin row an engine's write transaction carries (SQLite's stand-in for a session tag)
/// never stays behind.
#[tokio::test]
async fn the_engines_origin_row_never_stays_behind() {
    let db = setup("items", &small_schema(), false).await;
    db.table
        .apply(
            vec![upsert(item(1, "engine", 1)), upsert(item(2, "engine", 2))],
            &ctx(),
        )
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM _sheetsync_ctx")
        .fetch_one(&db.other)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_refused_row_is_held_and_the_rest_of_the_batch_applies() {
    let db = setup("items", &small_schema(), false).await;
    sqlx::query("CREATE UNIQUE INDEX items_name ON items (name)")
        .execute(&db.other)
        .await
        .unwrap();
    let out = db
        .table
        .apply(
            vec![
                upsert(item(1, "a", 1)),
                upsert(item(2, "a", 2)), // duplicate name
                upsert(item(3, "c", 3)),
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
        applied(&out[0]) && applied(&out[2]) && applied(&out[3]),
        "{out:?}"
    );
    match &out[1] {
        WriteOutcome::Held(msg) => assert!(msg.contains("UNIQUE"), "{msg}"),
        o => panic!("expected held, got {o:?}"),
    }
    assert_eq!(
        scan_rows(&*db.table).await,
        vec![item(1, "a", 1), item(3, "c", 3)]
    );
}

#[tokio::test]
async fn conditional_writes_compare_null_safely() {
    let db = setup("items", &small_schema(), false).await;
    let mut with_null = item(1, "a", 1);
    with_null.0[2] = Value::Null;
    db.table
        .apply(vec![upsert(with_null.clone())], &ctx())
        .await
        .unwrap();
    let out = db
        .table
        .apply(
            vec![
                WriteOp::Upsert {
                    row: item(1, "b", 5),
                    expected: Expected::Row(with_null.clone()),
                },
                WriteOp::Upsert {
                    row: item(1, "c", 6),
                    expected: Expected::Row(with_null),
                },
                WriteOp::Upsert {
                    row: item(2, "new", 2),
                    expected: Expected::Absent,
                },
            ],
            &ctx(),
        )
        .await
        .unwrap();
    // The second op expected the state before the first one in the same batch: stale.
    assert_eq!(
        out,
        vec![
            WriteOutcome::Applied,
            WriteOutcome::Stale,
            WriteOutcome::Applied
        ]
    );
    assert_eq!(
        scan_rows(&*db.table).await,
        vec![item(1, "b", 5), item(2, "new", 2)]
    );
}

#[tokio::test]
async fn hostile_names_are_quoted_everywhere() {
    let schema = hostile_schema();
    let db = setup(HOSTILE_TABLE, &schema, false).await;
    let c0 = db.table.cursor().await.unwrap().unwrap();
    let rows = vec![
        hostile_row("'; DROP TABLE x; --", 1, "`backtick`"),
        hostile_row("\u{00e9}t\u{00e9}", 2, "\"q\""),
    ];
    let out = db
        .table
        .apply(rows.iter().cloned().map(upsert).collect(), &ctx())
        .await
        .unwrap();
    assert!(out.iter().all(applied), "{out:?}");
    assert_eq!(scan_rows(&*db.table).await, {
        let mut r = rows.clone();
        r.sort_by_key(|r| r.key(&schema));
        r
    });
    db.other()
        .upsert(hostile_row("x", 3, "other"))
        .await
        .unwrap();
    db.other()
        .delete(rows[0].key(&schema).unwrap())
        .await
        .unwrap();
    let (seen, _) = drain(&*db.table, &c0).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[&rows[0].key(&schema).unwrap()], None);
    let out = db
        .table
        .apply(
            vec![WriteOp::Delete {
                key: rows[1].key(&schema).unwrap(),
                expected: Expected::Row(rows[1].clone()),
            }],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    db.table.uninstall().await.unwrap();
}

#[tokio::test]
async fn install_is_idempotent_and_uninstall_leaves_user_data() {
    let db = setup("items", &small_schema(), false).await;
    db.table.install().await.unwrap();
    db.table
        .apply(vec![upsert(item(1, "a", 1))], &ctx())
        .await
        .unwrap();
    db.table.uninstall().await.unwrap();
    assert!(!db.table.is_installed().await.unwrap());
    let objects: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name LIKE '%sheetsync%' ORDER BY name",
    )
    .fetch_all(&db.other)
    .await
    .unwrap();
    assert!(objects.is_empty(), "left behind: {objects:?}");
    assert_eq!(scan_rows(&*db.table).await, vec![item(1, "a", 1)]);
    let e = db.table.cursor().await.unwrap_err();
    assert!(e.to_string().contains("install()"), "{e}");
    db.table.install().await.unwrap();
    assert!(db.table.is_installed().await.unwrap());
}

#[tokio::test]
async fn wakeups_follow_other_connections_commits() {
    let db = setup("items", &small_schema(), false).await;
    let mut w = db.table.wakeups().unwrap();
    // The first wake-up is the catch-up after the watcher starts.
    tokio::time::timeout(std::time::Duration::from_secs(60), w.next())
        .await
        .unwrap()
        .unwrap();
    db.other().upsert(item(1, "a", 1)).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), w.next())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn state_store_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(&dir.path().join("state.db")).await;
    let store = SqliteStateStore::new(p.clone()).await.unwrap();
    SqliteStateStore::new(p.clone()).await.unwrap(); // idempotent
    state_store_contract(&store).await;
    store.uninstall().await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE '%sheetsync%'")
            .fetch_one(&p)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_cursor_into_an_earlier_change_log_restarts_the_feed() {
    let db = setup("items", &small_schema(), false).await;
    db.other().upsert(item(1, "a", 1)).await.unwrap();
    let c = db.table.cursor().await.unwrap().unwrap();
    // Capture reinstalled (or an older copy of the file): the log starts again below the cursor.
    db.table.uninstall().await.unwrap();
    db.table.install().await.unwrap();
    db.other().upsert(item(2, "b", 2)).await.unwrap();
    // The new log's first entry has the same id the old cursor points at.
    let (seen, _) = drain(&*db.table, &c).await;
    assert_eq!(
        seen.get(&int_key(2)),
        Some(&Some(item(2, "b", 2))),
        "{seen:?}"
    );
    assert!(db.table.full_scan_requested());
}

/// The shared scenarios' fixture: a database file of its own with the table `items`.
struct Items(Db);

impl Items {
    /// `generated`: the key is generated by the database.
    async fn new(generated: bool) -> Items {
        Items(setup("items", &small_schema(), generated).await)
    }
}

#[async_trait]
impl common::scenarios::ItemsDb for Items {
    fn table(&self) -> Arc<dyn Table> {
        self.0.table.clone()
    }

    async fn writer(&self) -> Arc<dyn ExternalWriter> {
        self.0.other()
    }

    async fn exec(&self, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&self.0.other)
            .await
            .unwrap();
    }

    async fn exec_on_adapters_pool(&self, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(self.0.table.pool())
            .await
            .unwrap();
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.0.other)
            .await
            .unwrap()
    }

    async fn reopen(&self) -> Arc<dyn Table> {
        let pool = self.0.table.pool().clone();
        Arc::new(
            SqliteTable::open(pool, "items", SqlOptions::default())
                .await
                .unwrap(),
        )
    }

    async fn state_store(&self) -> Arc<dyn StateStore> {
        Arc::new(SqliteStateStore::new(self.0.other.clone()).await.unwrap())
    }

    fn url(&self) -> (String, String) {
        (self.0.path.to_str().unwrap().into(), "items".into())
    }

    fn dialect(&self) -> Dialect {
        D
    }
}

crate::shared_scenarios!(Items::new(false).await =>
    engine_round_trip_both_ways_without_echo,
    concurrent_writers_during_sync_converge,
    a_key_change_reports_the_old_key_as_deleted,
    engine_writes_never_come_back_but_other_writers_do,
    changes_made_while_the_engine_was_stopped_are_picked_up,
    sql_table_opens_the_database_by_url,
);

crate::shared_scenarios!(Items::new(true).await =>
    generated_keys_come_back_and_skip_past_keys_written_explicitly,
);
