//! Exact values and writes that never stall, on each database (issue 11): a stored empty text
//! does not make conditional writes stale, values the adapter cannot carry are held with a
//! reason instead of panicking, a locked row is held and retried while the rest of the batch
//! is written, and an empty cell of a `NOT NULL DEFAULT` column takes the default.
//!
//! Each test works in a database (PostgreSQL, MariaDB) or file (SQLite) of its own and drops
//! it afterwards, also when the test fails.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use sheetsync_core::{
    Engine, MappingConfig, MemoryTable, Row, Sink, Source, Value, WriteContext, WriteOp,
    WriteOutcome,
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

    /// Opens `table` through the adapter, as a host does, and installs change capture.
    async fn table(&self, table: &str, options: SqlOptions) -> Arc<SqlTable> {
        let t = SqlTable::connect(&self.url, table, options)
            .await
            .unwrap_or_else(|e| panic!("open {table}: {e}"));
        t.install().await.unwrap();
        Arc::new(t)
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
    let db = Arc::new(TestDb { url, other });
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
    let quiet = engine.run_once().await.unwrap();
    assert_eq!(sheet.rows(), vec![r(6)], "{quiet:?}");
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
