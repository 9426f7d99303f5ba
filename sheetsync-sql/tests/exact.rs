//! Exact values and writes that never stall, on each database (issue 11): a stored empty text
//! does not make conditional writes stale, values the adapter cannot carry are held with a
//! reason instead of panicking, a locked row is held and retried while the rest of the batch
//! is written, and an empty cell of a `NOT NULL DEFAULT` column takes the default.
//!
//! Each test works in a database (PostgreSQL, MariaDB) or file (SQLite) of its own and drops
//! it afterwards, also when the test fails.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use sheetsync_core::{
    Change, Engine, MappingConfig, MemoryTable, Row, RowKey, Sink, Source, SourceExt, Value,
    WriteContext, WriteOp, WriteOutcome,
};
use sheetsync_sql::{sqlx, SqlOptions, SqlTable};
use sqlx::{AssertSqlSafe, MySqlPool, PgPool, SqlitePool};

/// The database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

/// A connection of another program.
enum Other {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

/// A database of the test's own.
struct TestDb {
    kind: Kind,
    url: String,
    other: Other,
}

impl TestDb {
    /// Runs SQL as another program.
    async fn exec(&self, sql: &str) {
        exec(&self.other, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The rows of a query whose columns are text and a big integer.
    async fn text_int(&self, sql: &str) -> Vec<(String, i64)> {
        let q = || AssertSqlSafe(sql.to_string());
        match &self.other {
            Other::Pg(p) => sqlx::query_as(q()).fetch_all(p).await,
            Other::My(p) => sqlx::query_as(q()).fetch_all(p).await,
            Other::Lite(p) => sqlx::query_as(q()).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs statements one after the other on one connection (session settings hold).
    async fn exec_session(&self, sqls: &[&str]) {
        macro_rules! on_one {
            ($pool:expr) => {{
                let mut c = $pool.acquire().await.unwrap();
                for sql in sqls {
                    sqlx::query(AssertSqlSafe(sql.to_string()))
                        .execute(&mut *c)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            }};
        }
        match &self.other {
            Other::Pg(p) => on_one!(p),
            Other::My(p) => on_one!(p),
            Other::Lite(p) => on_one!(p),
        }
    }

    /// Another program's transaction that runs `sqls` (after `BEGIN`, or the statement that
    /// begins it) and stays open until [`Held::release`].
    async fn hold(&self, sqls: &[&str]) -> Holder {
        macro_rules! open {
            ($pool:expr, $variant:ident) => {{
                let mut c = $pool.acquire().await.unwrap();
                for sql in sqls {
                    sqlx::query(AssertSqlSafe(sql.to_string()))
                        .execute(&mut *c)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                Holder::$variant(c)
            }};
        }
        match &self.other {
            Other::Pg(p) => open!(p, Pg),
            Other::My(p) => open!(p, My),
            Other::Lite(p) => open!(p, Lite),
        }
    }

    /// Opens `table` through the adapter, as a host does, and installs change capture.
    async fn table(&self, table: &str, options: SqlOptions) -> Arc<SqlTable> {
        let t = SqlTable::connect(&self.url, table, options)
            .await
            .unwrap_or_else(|e| panic!("open {table}: {e}"));
        t.install().await.unwrap();
        Arc::new(t)
    }
}

/// A connection with an open transaction of another program.
enum Holder {
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    My(sqlx::pool::PoolConnection<sqlx::MySql>),
    Lite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl Holder {
    /// Rolls the transaction back.
    async fn release(self) {
        match self {
            Holder::Pg(mut c) => sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ()),
            Holder::My(mut c) => sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ()),
            Holder::Lite(mut c) => sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ()),
        }
        .unwrap();
    }
}

async fn exec(o: &Other, sql: &str) -> Result<(), sqlx::Error> {
    let q = || AssertSqlSafe(sql.to_string());
    match o {
        Other::Pg(p) => sqlx::query(q()).execute(p).await.map(|_| ()),
        Other::My(p) => sqlx::query(q()).execute(p).await.map(|_| ()),
        Other::Lite(p) => sqlx::query(q()).execute(p).await.map(|_| ()),
    }
}

fn server_url(kind: Kind) -> String {
    match kind {
        Kind::Postgres => std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        Kind::MySql => std::env::var("SHEETSYNC_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        Kind::Sqlite => unreachable!("SQLite needs no server"),
    }
}

/// Runs `scenario` on a fresh database of `kind`, dropped afterwards even if it panics.
async fn on<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(Arc<TestDb>) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("sheetsync_exact_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let (admin, url) = match kind {
        Kind::Sqlite => {
            let path = dir.path().join("exact.db");
            (None, format!("sqlite://{}?mode=rwc", path.display()))
        }
        Kind::Postgres | Kind::MySql => {
            let base = server_url(kind);
            let admin = match kind {
                Kind::Postgres => Other::Pg(PgPool::connect(&base).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {base} (or set SHEETSYNC_TEST_POSTGRES_URL): {e}")
                })),
                _ => Other::My(MySqlPool::connect(&base).await.unwrap_or_else(|e| {
                    panic!("MySQL/MariaDB at {base} (or set SHEETSYNC_TEST_MYSQL_URL): {e}")
                })),
            };
            exec(&admin, &format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
            (Some(admin), url)
        }
    };
    let other = match kind {
        Kind::Sqlite => Other::Lite(SqlitePool::connect(&url).await.unwrap()),
        Kind::Postgres => Other::Pg(PgPool::connect(&url).await.unwrap()),
        Kind::MySql => Other::My(MySqlPool::connect(&url).await.unwrap()),
    };
    let db = Arc::new(TestDb { kind, url, other });
    let outcome = std::panic::AssertUnwindSafe(scenario(db.clone()))
        .catch_unwind()
        .await;
    match &db.other {
        Other::Pg(p) => p.close().await,
        Other::My(p) => p.close().await,
        Other::Lite(p) => p.close().await,
    }
    if let Some(admin) = admin {
        let force = if kind == Kind::Postgres {
            " WITH (FORCE)"
        } else {
            ""
        };
        let _ = exec(&admin, &format!("DROP DATABASE IF EXISTS {name}{force}")).await;
    }
    drop(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn ctx() -> WriteContext {
    WriteContext {
        origin: "sheetsync:exact".into(),
    }
}

fn row(values: Vec<Value>) -> Row {
    Row::new(values)
}

// ---------------------------------------------------------------------------------------------
// An empty text in a nullable text column.

/// A row stored with `''` in a nullable text column reads as NULL for the engine (the Sheet
/// cannot tell them apart). Sheet edits of that row must reach the database, and the stored
/// `''` stays as it was.
async fn empty_text_does_not_block_sheet_edits(db: Arc<TestDb>) {
    db.exec("CREATE TABLE notes (id BIGINT PRIMARY KEY, body VARCHAR(50), qty BIGINT)")
        .await;
    db.exec("INSERT INTO notes (id, body, qty) VALUES (1, '', 1)")
        .await;
    let t = db.table("notes", SqlOptions::default()).await;
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", t.schema().clone()));
    let engine = Engine::builder(
        MappingConfig::new("notes", &["id"]),
        sheet.clone(),
        t.clone(),
    )
    .build()
    .await
    .unwrap();
    engine.run_once().await.unwrap();
    let r = |qty| row(vec![Value::Int(1), Value::Null, Value::Int(qty)]);
    assert_eq!(sheet.rows(), vec![r(1)]);

    // A person edits the row in the Sheet: the conditional write expects (1, NULL, 1).
    sheet.upsert(r(5));
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.pending, 0, "the write went stale: {report:?}");
    let sql = "SELECT CASE WHEN body IS NULL THEN 'null' ELSE body END AS body, qty FROM notes";
    assert_eq!(
        db.text_int(sql).await,
        vec![(String::new(), 5)],
        "the '' is kept"
    );

    // And the expectation is honoured: a real change by someone else still makes it stale.
    db.exec("UPDATE notes SET qty = 6 WHERE id = 1").await;
    let out = t
        .apply(
            vec![WriteOp::Upsert {
                row: r(7),
                expected: sheetsync_core::Expected::Row(r(5)),
            }],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Stale]);
    // The change feed hands the update out once no older transaction of the cluster is open
    // (PostgreSQL's horizon): other tests' transactions may delay it by a few seconds.
    let mut last = None;
    for _ in 0..40 {
        last = Some(engine.run_once().await.unwrap());
        if sheet.rows() == vec![r(6)] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(sheet.rows(), vec![r(6)], "{last:?}");
    let quiet = engine.run_once().await.unwrap();
    assert_eq!(quiet.writes.total(), 0, "{quiet:?}");
    t.uninstall().await.unwrap();
}

#[tokio::test]
async fn empty_text_does_not_block_sheet_edits_sqlite() {
    on(Kind::Sqlite, empty_text_does_not_block_sheet_edits).await;
}

#[tokio::test]
async fn empty_text_does_not_block_sheet_edits_postgres() {
    on(Kind::Postgres, empty_text_does_not_block_sheet_edits).await;
}

#[tokio::test]
async fn empty_text_does_not_block_sheet_edits_mysql() {
    on(Kind::MySql, empty_text_does_not_block_sheet_edits).await;
}

// ---------------------------------------------------------------------------------------------
// Values the adapter cannot carry.

/// What each bad row's reason must mention: its id, the column, and the value as shown.
type Bad = &'static [(i64, &'static str, &'static str)];

/// Rows 1 and 8 of table `events` are ordinary, the `bad` ones hold values sheetsync cannot
/// carry. Reading never panics: each bad row is held with a reason naming column and value,
/// the others sync, and a bad row syncs once it is fixed (`fix` repairs row `bad[0]`).
async fn extremes_are_held_with_a_reason(db: Arc<TestDb>, bad: Bad, fix: &str) {
    let t = db.table("events", SqlOptions::default()).await;
    let seen: Vec<Change> = (t.scan_all().await)
        .expect("the scan must not fail")
        .into_iter()
        .map(|o| o.change)
        .collect();
    let key = |id: i64| RowKey::from_values(&[Value::Int(id)]);
    let mut ok = Vec::new();
    for c in &seen {
        match c {
            Change::Upsert(r) => ok.push(r.key(t.schema()).unwrap()),
            Change::Invalid(inv) => {
                let k = inv.key.clone().expect("the key reads");
                let (_, col, shown) = bad
                    .iter()
                    .find(|(id, _, _)| key(*id) == k)
                    .unwrap_or_else(|| panic!("row {k} held: {}", inv.reason));
                let col = format!("column {col:?}");
                assert!(
                    inv.reason.contains(&col) && inv.reason.contains(shown),
                    "row {k}: {} should name {col} and {shown}",
                    inv.reason
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, vec![key(1), key(8)], "{seen:?}");

    // The engine starts, syncs the ordinary rows and holds the others.
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", t.schema().clone()));
    let engine = Engine::builder(
        MappingConfig::new("events", &["id"]),
        sheet.clone(),
        t.clone(),
    )
    .build()
    .await
    .unwrap();
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.held, bad.len(), "{report:?}");
    let keys = |rows: Vec<Row>| -> Vec<RowKey> {
        rows.iter().map(|r| r.key(t.schema()).unwrap()).collect()
    };
    assert_eq!(keys(sheet.rows()), vec![key(1), key(8)]);
    // A fixed row syncs; the others stay held.
    db.exec(fix).await;
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.held, bad.len() - 1, "{report:?}");
    assert_eq!(keys(sheet.rows()), vec![key(1), key(bad[0].0), key(8)]);
    t.uninstall().await.unwrap();
}

#[tokio::test]
async fn postgres_infinity_and_far_dates_are_held_not_panics() {
    on(Kind::Postgres, |db| async move {
        db.exec(
            "CREATE TABLE events (id BIGINT PRIMARY KEY, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, t TIME)",
        )
        .await;
        db.exec(
            "INSERT INTO events VALUES
             (1, '2026-01-01', '2026-01-01 10:00', '2026-01-01 10:00+00', '10:00'),
             (2, 'infinity', NULL, NULL, NULL),
             (3, NULL, '-infinity', NULL, NULL),
             (4, NULL, NULL, 'infinity', NULL),
             (5, '300000-01-01', NULL, NULL, NULL),
             (6, NULL, '294276-12-31 23:59:59.5', NULL, NULL),
             (7, NULL, NULL, NULL, '24:00:00'),
             (8, '4713-01-01 BC', '0001-01-01 00:00 BC', '262142-12-31 23:59:59+00', '23:59:59.999999')",
        )
        .await;
        let bad: Bad = &[
            (2, "d", "infinity is not a date"),
            (3, "ts", "-infinity is not a timestamp"),
            (4, "tz", "infinity is not a timestamp with time zone"),
            (5, "d", "300000-01-01 is beyond the date values"),
            (6, "ts", "294276-12-31 23:59:59.500000 is beyond the timestamp values"),
            (7, "t", "24:00:00 is not a time of day"),
        ];
        extremes_are_held_with_a_reason(db, bad, "UPDATE events SET d = '2026-02-02' WHERE id = 2")
            .await;
    })
    .await;
}

#[tokio::test]
async fn mysql_zero_and_invalid_dates_are_held_not_misread() {
    on(Kind::MySql, |db| async move {
        db.exec(
            "CREATE TABLE events (id BIGINT PRIMARY KEY, d DATE NULL, ts DATETIME(6) NULL,
             tz TIMESTAMP(6) NULL DEFAULT NULL, t TIME(6) NULL)",
        )
        .await;
        // What a lax sql_mode lets other programs store.
        db.exec_session(&[
            "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
            "INSERT INTO events VALUES
             (1, '2026-01-01', '2026-01-01 10:00', '2026-01-01 10:00', '10:00'),
             (2, '0000-00-00', NULL, NULL, NULL),
             (3, NULL, '0000-00-00 00:00:00', NULL, NULL),
             (4, NULL, NULL, '0000-00-00 00:00:00', NULL),
             (5, '2024-02-30', NULL, NULL, NULL),
             (6, NULL, NULL, NULL, '838:59:59'),
             (7, NULL, NULL, NULL, '-00:00:01'),
             (8, '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '23:59:59.999999')",
        ])
        .await;
        let bad: Bad = &[
            (2, "d", "\"0000-00-00\" is not a valid date"),
            (3, "ts", "\"0000-00-00 00:00:00.000000\" is not a valid timestamp"),
            (4, "tz", "\"0000-00-00 00:00:00.000000\" is not a valid timestamp with time zone"),
            (5, "d", "\"2024-02-30\" is not a valid date"),
            (6, "t", "\"838:59:59.000000\" is not a valid time"),
            (7, "t", "\"-00:00:01.000000\" is not a valid time"),
        ];
        extremes_are_held_with_a_reason(db, bad, "UPDATE events SET d = '2026-02-02' WHERE id = 2")
            .await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_dates_outside_the_range_are_held_not_misread() {
    on(Kind::Sqlite, |db| async move {
        db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, d DATE, ts DATETIME, tz TIMESTAMPTZ, t TIME)")
            .await;
        db.exec(
            "INSERT INTO events VALUES
             (1, '2026-01-01', '2026-01-01 10:00:00', '2026-01-01T10:00:00Z', '10:00:00'),
             (2, 'infinity', NULL, NULL, NULL),
             (3, NULL, '-infinity', NULL, NULL),
             (4, NULL, NULL, '300000-01-01T00:00:00Z', NULL),
             (5, '300000-01-01', NULL, NULL, NULL),
             (6, 20260101, NULL, NULL, NULL),
             (7, NULL, NULL, NULL, '24:00:00'),
             (8, '-4713-11-24', '9999-12-31 23:59:59.999999', '2026-01-01T10:00:00+05:30', '23:59:59.999999')",
        )
        .await;
        let bad: Bad = &[
            (2, "d", "\"infinity\" is not a valid date"),
            (3, "ts", "\"-infinity\" is not a valid timestamp"),
            (4, "tz", "\"300000-01-01T00:00:00Z\" is not a valid timestamp with time zone"),
            (5, "d", "\"300000-01-01\" is not a valid date"),
            (6, "d", "the integer 20260101 is not a valid date"),
            (7, "t", "\"24:00:00\" is not a valid time"),
        ];
        extremes_are_held_with_a_reason(db, bad, "UPDATE events SET d = '2026-02-02' WHERE id = 2")
            .await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// A row locked by another session.

fn item(id: i64, qty: i64) -> Row {
    row(vec![
        Value::Int(id),
        Value::Text(format!("item {id}")),
        Value::Int(qty),
    ])
}

fn waits(lock_ms: u64) -> SqlOptions {
    SqlOptions {
        lock_timeout: Duration::from_millis(lock_ms),
        ..SqlOptions::default()
    }
}

/// Applies `ops`, checking that it returns within `bound`.
async fn timed_apply(t: &SqlTable, ops: Vec<WriteOp>, bound: Duration) -> Vec<WriteOutcome> {
    let started = Instant::now();
    let out = tokio::time::timeout(bound * 2, t.apply(ops, &ctx()))
        .await
        .expect("the write must not wait for the lock")
        .unwrap();
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    out
}

fn is_busy(o: &WriteOutcome) -> bool {
    matches!(o, WriteOutcome::Held(m) if m.contains("another transaction holds a lock"))
}

/// Another session keeps rows 2 and 3 locked. A batch writing rows 1 to 4 gives up on them
/// after one lock time-out (held, with the reason, and retried) and writes the others; the
/// engine keeps syncing around them and writes row 2 once the lock is gone.
async fn a_locked_row_is_held_and_the_rest_is_written(db: Arc<TestDb>, lock: &str) {
    db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), qty BIGINT)")
        .await;
    db.exec("INSERT INTO items VALUES (1, 'item 1', 0), (2, 'item 2', 0), (3, 'item 3', 0)")
        .await;
    let t = db.table("items", waits(1_000)).await;
    let holder = db.hold(&["BEGIN", lock]).await;

    // Conditional writes, the engine's: the rows are locked first, waiting one lock time-out
    // for the chunk, not one per locked row.
    let conditional = |id, qty| WriteOp::Upsert {
        row: item(id, qty),
        expected: sheetsync_core::Expected::Row(item(id, 0)),
    };
    let ops = vec![
        conditional(1, 1),
        conditional(2, 1),
        conditional(3, 1),
        WriteOp::Upsert {
            row: item(4, 1),
            expected: sheetsync_core::Expected::Absent,
        },
    ];
    let out = timed_apply(&t, ops, Duration::from_millis(2_500)).await;
    assert!(is_busy(&out[1]) && is_busy(&out[2]), "{out:?}");
    assert_eq!(
        [&out[0], &out[3]].map(|o| *o == WriteOutcome::Applied),
        [true; 2],
        "{out:?}"
    );
    // Unconditional writes wait in the statement itself: the same outcome.
    let out = timed_apply(
        &t,
        vec![
            WriteOp::Upsert {
                row: item(2, 9),
                expected: sheetsync_core::Expected::Any,
            },
            WriteOp::Upsert {
                row: item(5, 9),
                expected: sheetsync_core::Expected::Any,
            },
        ],
        Duration::from_secs(8),
    )
    .await;
    assert!(is_busy(&out[0]), "{out:?}");
    assert_eq!(out[1], WriteOutcome::Applied);
    let sql = "SELECT name, qty FROM items ORDER BY id";
    let qtys = |rows: Vec<(String, i64)>| rows.into_iter().map(|r| r.1).collect::<Vec<_>>();
    assert_eq!(qtys(db.text_int(sql).await), vec![1, 0, 0, 1, 9]);

    // The engine: Sheet edits of rows 1 and 2; row 2 is held, row 1 syncs.
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", t.schema().clone()));
    let engine = Engine::builder(
        MappingConfig::new("items", &["id"]),
        sheet.clone(),
        t.clone(),
    )
    .build()
    .await
    .unwrap();
    engine.run_once().await.unwrap();
    sheet.upsert(item(1, 10));
    sheet.upsert(item(2, 20));
    let started = Instant::now();
    let report = engine.run_once().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(report.held, 1, "{report:?}");
    let held = engine.held().await;
    assert!(held[0].reason.contains("lock"), "{held:?}");
    assert_eq!(qtys(db.text_int(sql).await), vec![10, 0, 0, 1, 9]);

    holder.release().await;
    let report = engine.run_once().await.unwrap();
    assert_eq!((report.held, report.pending), (0, 0), "{report:?}");
    assert_eq!(qtys(db.text_int(sql).await), vec![10, 20, 0, 1, 9]);
    t.uninstall().await.unwrap();
}

#[tokio::test]
async fn a_locked_row_is_held_and_the_rest_is_written_postgres() {
    on(Kind::Postgres, |db| async move {
        a_locked_row_is_held_and_the_rest_is_written(
            db,
            "SELECT * FROM items WHERE id IN (2, 3) FOR UPDATE",
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn a_locked_row_is_held_and_the_rest_is_written_mysql() {
    on(Kind::MySql, |db| async move {
        a_locked_row_is_held_and_the_rest_is_written(
            db,
            "SELECT * FROM items WHERE id IN (2, 3) FOR UPDATE",
        )
        .await
    })
    .await;
}

/// A statement that runs out of its time (a slow trigger, here) is cancelled; its rows are
/// written one by one and only the slow one is held, with the reason.
async fn a_slow_row_is_held_and_the_rest_is_written(db: Arc<TestDb>, slow_trigger: &[&str]) {
    db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), qty BIGINT)")
        .await;
    db.exec("INSERT INTO items VALUES (1, 'item 1', 0), (2, 'item 2', 0), (3, 'item 3', 0)")
        .await;
    for sql in slow_trigger {
        db.exec(sql).await;
    }
    let options = SqlOptions {
        statement_timeout: Duration::from_millis(500),
        ..SqlOptions::default()
    };
    let t = db.table("items", options).await;
    let update = |id, name: &str| WriteOp::Upsert {
        row: row(vec![
            Value::Int(id),
            Value::Text(name.into()),
            Value::Int(1),
        ]),
        expected: sheetsync_core::Expected::Row(item(id, 0)),
    };
    let out = timed_apply(
        &t,
        vec![update(1, "fast"), update(2, "slow"), update(3, "fast")],
        Duration::from_secs(8),
    )
    .await;
    assert!(
        matches!(&out[1], WriteOutcome::Held(m) if m.contains("statement time-out")),
        "{out:?}"
    );
    assert_eq!([&out[0], &out[2]], [&WriteOutcome::Applied; 2], "{out:?}");
    let sql = "SELECT name, qty FROM items ORDER BY id";
    assert_eq!(
        db.text_int(sql).await,
        vec![
            ("fast".to_string(), 1),
            ("item 2".to_string(), 0),
            ("fast".to_string(), 1)
        ]
    );
    t.uninstall().await.unwrap();
}

#[tokio::test]
async fn a_slow_row_is_held_and_the_rest_is_written_postgres() {
    on(Kind::Postgres, |db| async move {
        a_slow_row_is_held_and_the_rest_is_written(
            db,
            &[
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF NEW.name = 'slow' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END $$",
                "CREATE TRIGGER slow BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION slow()",
            ],
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn a_slow_row_is_held_and_the_rest_is_written_mysql() {
    on(Kind::MySql, |db| async move {
        a_slow_row_is_held_and_the_rest_is_written(
            db,
            &["CREATE TRIGGER slow BEFORE UPDATE ON items FOR EACH ROW
               BEGIN IF NEW.name = 'slow' THEN SET @slept = SLEEP(3); END IF; END"],
        )
        .await
    })
    .await;
}

/// SQLite locks the whole database for a write: a batch waits the busy time-out for it, then
/// fails as a whole with a temporary error (the engine retries it), and goes through once the
/// other writer is done.
#[tokio::test]
async fn a_locked_database_fails_the_batch_in_bounded_time_sqlite() {
    on(Kind::Sqlite, |db| async move {
        db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), qty BIGINT)")
            .await;
        let t = db.table("items", waits(500)).await;
        let holder = db
            .hold(&["BEGIN IMMEDIATE", "UPDATE items SET qty = 1"])
            .await;
        let started = Instant::now();
        let e = t
            .apply(vec![sheetsync_sql_upsert(item(1, 1))], &ctx())
            .await
            .unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert!(is_lock_error(&e) && e.to_string().contains("items"), "{e}");
        assert!(
            (Duration::from_millis(400)..Duration::from_secs(5)).contains(&started.elapsed()),
            "waited {:?}",
            started.elapsed()
        );
        holder.release().await;
        let out = t
            .apply(vec![sheetsync_sql_upsert(item(1, 1))], &ctx())
            .await
            .unwrap();
        assert_eq!(out, vec![WriteOutcome::Applied]);
        // The pool's own busy timeout is back on the connection.
        if let SqlTable::Sqlite(s) = &*t {
            let ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert_eq!(ms, 10_000, "the adapter's pool sets 10 s");
        }
    })
    .await;
}

/// Within `bound`, or the test fails: the write must not wait for the lock.
async fn bounded<T>(bound: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, f)
        .await
        .expect("the write waited for the lock past its bound")
}

fn is_lock_error(e: &sheetsync_core::Error) -> bool {
    e.kind() == sheetsync_core::ErrorKind::Conflict && e.is_temporary()
}

/// The transaction that writes the cycle's rows and the engine's state bounds its waits too:
/// a row another session keeps locked is held with the reason (naming the table) while the
/// rest is written, a state row another session keeps locked fails the commit with a
/// temporary conflict naming the table, and the state store's own commit gives up the same
/// way; each succeeds once the lock is released.
async fn the_transactional_path_bounds_its_waits(db: Arc<TestDb>, state_table: &str) {
    db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), qty BIGINT)")
        .await;
    db.exec("INSERT INTO items VALUES (1, 'item 1', 0), (2, 'item 2', 0)")
        .await;
    let t = db.table("items", waits(500)).await;
    let store = t.state_store().await.unwrap();
    let sink = t.transactional().expect("a transactional sink");
    let conditional = |id, qty| WriteOp::Upsert {
        row: item(id, qty),
        expected: sheetsync_core::Expected::Row(item(id, qty - 1)),
    };
    let delta = sheetsync_core::StateDelta::default();
    let bound = Duration::from_secs(4);

    let holder = db
        .hold(&["BEGIN", "SELECT * FROM items WHERE id = 2 FOR UPDATE"])
        .await;
    let mut tx = sink.begin(&ctx()).await.unwrap();
    let out = bounded(bound, tx.apply(vec![conditional(1, 1), conditional(2, 1)]))
        .await
        .unwrap();
    assert_eq!(out[0], WriteOutcome::Applied, "{out:?}");
    assert!(
        is_busy(&out[1]) && matches!(&out[1], WriteOutcome::Held(m) if m.contains("items")),
        "{out:?}"
    );
    tx.commit("m", &delta).await.unwrap();
    holder.release().await;

    let lock_state = format!("SELECT doc FROM {state_table} WHERE mapping = 'm' FOR UPDATE");
    let holder = db.hold(&["BEGIN", &lock_state]).await;
    let mut tx = sink.begin(&ctx()).await.unwrap();
    let out = tx.apply(vec![conditional(2, 1)]).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Applied]);
    let e = bounded(bound, tx.commit("m", &delta)).await.unwrap_err();
    assert!(is_lock_error(&e) && e.to_string().contains("items"), "{e}");
    // The store on its own waits its default lock time-out (5 s), then gives up the same way.
    let e = bounded(bound * 2, store.commit("m", &delta))
        .await
        .unwrap_err();
    assert!(is_lock_error(&e), "{e}");
    holder.release().await;

    let mut tx = sink.begin(&ctx()).await.unwrap();
    let out = tx.apply(vec![conditional(2, 1)]).await.unwrap();
    assert_eq!(
        out,
        vec![WriteOutcome::Applied],
        "the first commit was rolled back"
    );
    tx.commit("m", &delta).await.unwrap();
    store.commit("m", &delta).await.unwrap();
    let qtys: Vec<i64> = db
        .text_int("SELECT name, qty FROM items ORDER BY id")
        .await
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(qtys, vec![1, 1]);
    t.uninstall().await.unwrap();
}

#[tokio::test]
async fn the_transactional_path_bounds_its_waits_postgres() {
    on(Kind::Postgres, |db| async move {
        the_transactional_path_bounds_its_waits(db, "sheetsync.state_mappings").await
    })
    .await;
}

#[tokio::test]
async fn the_transactional_path_bounds_its_waits_mysql() {
    on(Kind::MySql, |db| async move {
        the_transactional_path_bounds_its_waits(db, "_sheetsync_state_mappings").await
    })
    .await;
}

/// SQLite: another connection's write transaction holds the database's write lock. Beginning
/// the transaction that writes rows and state gives up after the busy time-out with a
/// temporary conflict naming the table, and so does the state store's commit; both go
/// through once the lock is released, and the connection has the pool's busy timeout back.
#[tokio::test]
async fn the_transactional_path_bounds_its_waits_sqlite() {
    on(Kind::Sqlite, |db| async move {
        db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), qty BIGINT)")
            .await;
        let t = db.table("items", waits(500)).await;
        let store = t.state_store().await.unwrap();
        let sink = t.transactional().expect("a transactional sink");
        let delta = sheetsync_core::StateDelta::default();
        let bound = Duration::from_secs(4);
        let holder = db
            .hold(&["BEGIN IMMEDIATE", "UPDATE items SET qty = 1"])
            .await;
        let e = match bounded(bound, sink.begin(&ctx())).await {
            Err(e) => e,
            Ok(_) => panic!("began a write while another connection holds the lock"),
        };
        assert!(is_lock_error(&e) && e.to_string().contains("items"), "{e}");
        let e = bounded(bound * 2, store.commit("m", &delta))
            .await
            .unwrap_err();
        assert!(is_lock_error(&e), "{e}");
        holder.release().await;

        let mut tx = sink.begin(&ctx()).await.unwrap();
        let out = tx
            .apply(vec![sheetsync_sql_upsert(item(1, 1))])
            .await
            .unwrap();
        assert_eq!(out, vec![WriteOutcome::Applied]);
        tx.commit("m", &delta).await.unwrap();
        store.commit("m", &delta).await.unwrap();
        if let SqlTable::Sqlite(s) = &*t {
            let ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert_eq!(ms, 10_000, "the adapter's pool sets 10 s");
        }
    })
    .await;
}

fn sheetsync_sql_upsert(row: Row) -> WriteOp {
    WriteOp::Upsert {
        row,
        expected: sheetsync_core::Expected::Any,
    }
}

// ---------------------------------------------------------------------------------------------
// Empty cells of NOT NULL DEFAULT columns.

fn create(row: Row) -> WriteOp {
    WriteOp::Upsert {
        row,
        expected: sheetsync_core::Expected::Absent,
    }
}

/// A new row that leaves `NOT NULL DEFAULT` columns empty takes the defaults, and the write
/// reports the stored row; an update may not empty them, nor may any row empty a `NOT NULL`
/// column without a default.
async fn empty_cells_take_the_column_default(db: Arc<TestDb>) {
    db.exec(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL,
         qty BIGINT NOT NULL DEFAULT 1, status VARCHAR(20) NOT NULL DEFAULT 'new',
         created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, flag BOOLEAN NOT NULL DEFAULT TRUE,
         note VARCHAR(20))",
    )
    .await;
    let t = db.table("orders", SqlOptions::default()).await;
    let order = |id: i64, qty: Value, status: Value, flag: Value| {
        row(vec![
            Value::Int(id),
            Value::Text(format!("order {id}")),
            qty,
            status,
            Value::Null,
            flag,
            Value::Null,
        ])
    };
    let null = || Value::Null;
    let out = t
        .apply(
            vec![
                create(order(1, null(), null(), null())),
                create(order(2, Value::Int(5), null(), Value::Bool(false))),
                create(order(3, null(), null(), null())),
                create(row(vec![
                    Value::Int(4),
                    Value::Text("order 4".into()),
                    Value::Int(4),
                    Value::Text("paid".into()),
                    Value::Timestamp(
                        chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
                            .unwrap()
                            .and_hms_opt(3, 4, 5)
                            .unwrap(),
                    )
                    .coerce(t.schema().columns[4].ty)
                    .unwrap(),
                    Value::Bool(false),
                    Value::Text("given".into()),
                ])),
            ],
            &ctx(),
        )
        .await
        .unwrap();
    let stored = |o: &WriteOutcome| match o {
        WriteOutcome::Stored(r) => r.clone(),
        other => panic!("expected the stored row, got {other:?}"),
    };
    for (o, (id, qty, flag)) in out.iter().zip([(1, 1, true), (2, 5, false), (3, 1, true)]) {
        let r = stored(o);
        assert!(!r.0[4].is_null(), "created is filled in: {r:?}");
        let mut want = order(
            id,
            Value::Int(qty),
            Value::Text("new".into()),
            Value::Bool(flag),
        );
        want.0[4] = r.0[4].clone();
        assert_eq!(r, want);
    }
    assert_eq!(out[3], WriteOutcome::Applied, "nothing left to a default");

    // An update may not empty a NOT NULL column; no row may empty one without a default.
    let current = stored(&out[0]);
    let mut emptied = current.clone();
    emptied.0[2] = Value::Null;
    let mut nameless = order(5, null(), null(), null());
    nameless.0[1] = Value::Null;
    let out = t
        .apply(
            vec![
                WriteOp::Upsert {
                    row: emptied,
                    expected: sheetsync_core::Expected::Row(current),
                },
                create(nameless),
            ],
            &ctx(),
        )
        .await
        .unwrap();
    for (o, col) in out.iter().zip(["qty", "name"]) {
        assert_eq!(
            *o,
            WriteOutcome::Held(format!("column {col:?} may not be empty"))
        );
    }

    // Through the engine: a new Sheet row with empty defaulted cells is written, not held.
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", t.schema().clone()));
    let mut mapping = MappingConfig::new("orders", &["id"]);
    mapping.timing.full_scan_interval_ms = 0;
    let engine = Engine::builder(mapping, sheet.clone(), t.clone())
        .build()
        .await
        .unwrap();
    engine.run_once().await.unwrap();
    sheet.upsert(order(6, null(), Value::Text("rush".into()), null()));
    let report = engine.run_once().await.unwrap();
    assert_eq!((report.held, report.writes.db), (0, 1), "{report:?}");
    let sql = "SELECT status, qty FROM orders WHERE id = 6";
    assert_eq!(db.text_int(sql).await, vec![("rush".to_string(), 1)]);
    // The Sheet shows the defaults after the next full read of the database at the latest.
    engine.run_once().await.unwrap();
    let shown = sheet
        .rows()
        .into_iter()
        .find(|r| r.0[0] == Value::Int(6))
        .unwrap();
    assert_eq!(
        (&shown.0[2], &shown.0[5]),
        (&Value::Int(1), &Value::Bool(true))
    );

    // Keys the database generates: the same.
    let ddl = match db.kind {
        Kind::Postgres => "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        Kind::MySql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
        Kind::Sqlite => "id INTEGER PRIMARY KEY",
    };
    db.exec(&format!(
        "CREATE TABLE tickets ({ddl}, title VARCHAR(50), prio BIGINT NOT NULL DEFAULT 3)"
    ))
    .await;
    let t = db.table("tickets", SqlOptions::default()).await;
    let out = t
        .apply(
            vec![WriteOp::Insert {
                row: row(vec![Value::Null, Value::Text("t".into()), Value::Null]),
            }],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![WriteOutcome::Stored(row(vec![
            Value::Int(1),
            Value::Text("t".into()),
            Value::Int(3)
        ]))]
    );
}

#[tokio::test]
async fn empty_cells_take_the_column_default_sqlite() {
    on(Kind::Sqlite, empty_cells_take_the_column_default).await;
}

#[tokio::test]
async fn empty_cells_take_the_column_default_postgres() {
    on(Kind::Postgres, empty_cells_take_the_column_default).await;
}

#[tokio::test]
async fn empty_cells_take_the_column_default_mysql() {
    on(Kind::MySql, empty_cells_take_the_column_default).await;
}

// ---------------------------------------------------------------------------------------------
// SQLite's numeric affinity.

/// SQLite stores a long decimal in a `DECIMAL(20,6)` column as a double (numeric affinity),
/// before sheetsync can read it, and `'007'` in a `STRING` column as 7: introspection says so
/// for those columns, naming the declaration that keeps values exact.
#[tokio::test]
async fn sqlite_numeric_affinity_is_reported_as_a_warning() {
    on(Kind::Sqlite, |db| async move {
        db.exec(
            "CREATE TABLE prices (id INTEGER PRIMARY KEY, price DECIMAL(20,6), exact DECIMAL_TEXT,
             code STRING, name TEXT, qty INTEGER)",
        )
        .await;
        db.exec(
            "INSERT INTO prices VALUES
             (1, '12345678901234.123456', '12345678901234.123456', '007', '007', 1)",
        )
        .await;
        let t = db.table("prices", SqlOptions::default()).await;
        let warnings = t.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with(
                "column \"price\" of table \"prices\" is declared DECIMAL(20,6), which SQLite \
                 gives numeric affinity"
            ) && warnings[0].contains("declare the column DECIMAL_TEXT"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].starts_with("column \"code\"") && warnings[1].contains("'007' becomes 7"),
            "{}",
            warnings[1]
        );
        // What the warning is about: the digits are gone before the adapter reads the row.
        let mut scan = t.scan();
        let page = scan.next().await.unwrap().unwrap();
        drop(scan);
        let Change::Upsert(r) = &page[0].change else {
            panic!("{page:?}")
        };
        let dec = |s: &str| Value::Decimal(s.parse().unwrap());
        assert_eq!(r.0[1], dec("12345678901234.123"), "rounded by SQLite");
        assert_eq!(r.0[2], dec("12345678901234.123456"), "kept");
        assert_eq!(r.0[3], Value::Text("7".into()));
        assert_eq!(r.0[4], Value::Text("007".into()));
        t.uninstall().await.unwrap();
        // Only the synced columns are reported.
        let subset = SqlOptions {
            columns: Some(vec!["id".into(), "exact".into(), "code".into()]),
            ..SqlOptions::default()
        };
        let t = SqlTable::connect(&db.url, "prices", subset).await.unwrap();
        assert_eq!(t.warnings().len(), 1);
        assert!(t.warnings()[0].contains("\"code\""));
    })
    .await;
}

#[tokio::test]
async fn only_sqlite_tables_have_warnings() {
    for kind in [Kind::Postgres, Kind::MySql] {
        on(kind, |db| async move {
            db.exec("CREATE TABLE prices (id BIGINT PRIMARY KEY, price DECIMAL(20,6))")
                .await;
            let t = db.table("prices", SqlOptions::default()).await;
            assert!(t.warnings().is_empty(), "{:?}", t.warnings());
            t.uninstall().await.unwrap();
        })
        .await;
    }
}
