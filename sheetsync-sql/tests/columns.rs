//! Syncing a subset of a table's columns (`SqlOptions::columns`), on each database: other
//! columns are never read or written, inserted rows get their defaults.

use sheetsync_core::{
    ErrorKind, Expected, Row, Sink, Source, SourceExt, Value, WriteContext, WriteOp, WriteOutcome,
};
use sheetsync_sql::{sqlx, SqlOptions, SqlTable};
use sqlx::{AssertSqlSafe, MySqlPool, PgPool, SqlitePool};

/// Another program's connection.
enum Other {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

fn opts(cols: &[&str]) -> SqlOptions {
    SqlOptions {
        columns: Some(cols.iter().map(|c| c.to_string()).collect()),
        ..SqlOptions::default()
    }
}

async fn exec(o: &Other, sql: &str) {
    let sql = || AssertSqlSafe(sql.to_string());
    match o {
        Other::Pg(p) => sqlx::query(sql()).execute(p).await.map(|_| ()),
        Other::My(p) => sqlx::query(sql()).execute(p).await.map(|_| ()),
        Other::Lite(p) => sqlx::query(sql()).execute(p).await.map(|_| ()),
    }
    .unwrap();
}

async fn secrets(o: &Other) -> Vec<(i64, String, i64)> {
    let sql = "SELECT id, secret, qty FROM items ORDER BY id";
    match o {
        Other::Pg(p) => sqlx::query_as(sql).fetch_all(p).await,
        Other::My(p) => sqlx::query_as(sql).fetch_all(p).await,
        Other::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
    .unwrap()
}

async fn scan(t: &SqlTable) -> Vec<Row> {
    t.scan_rows().await.unwrap()
}

/// Runs the scenario on a database reachable at `url` (the table is created by the caller).
async fn scenario(url: &str, other: &Other) {
    exec(
        other,
        "INSERT INTO items (id, name, secret, qty) VALUES (1, 'a', 'orig', 5)",
    )
    .await;
    let t = SqlTable::connect(url, "items", opts(&["id", "qty", "name"]))
        .await
        .unwrap();
    t.install().await.unwrap();
    let names: Vec<&str> = t.schema().columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "qty", "name"], "the mapping's order");
    let row = |id: i64, qty: i64, name: &str| {
        Row::new(vec![Value::Int(id), Value::Int(qty), name.into()])
    };
    assert_eq!(scan(&t).await, vec![row(1, 5, "a")]);
    let ctx = WriteContext {
        origin: "sheetsync:test".into(),
    };
    let out = t
        .apply(
            vec![
                WriteOp::Upsert {
                    row: row(1, 6, "b"),
                    expected: Expected::Row(row(1, 5, "a")),
                },
                WriteOp::Upsert {
                    row: row(2, 1, "new"),
                    expected: Expected::Absent,
                },
            ],
            &ctx,
        )
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied | WriteOutcome::Stored(_))),
        "{out:?}"
    );
    let rows = secrets(other).await;
    assert_eq!(
        rows,
        vec![(1, "orig".into(), 6), (2, "kept".into(), 1)],
        "unmapped columns untouched"
    );
    // Changes carry the time the change log recorded them (last-write-wins depends on it).
    let cursor = t.cursor().await.unwrap().expect("a cursor");
    exec(other, "UPDATE items SET qty = 7 WHERE id = 1").await;
    let batch = t.changes(&cursor, 10).await.unwrap();
    assert_eq!(batch.changes.len(), 1, "{:?}", batch.changes);
    let at = batch.changes[0].at.expect("the change log's time");
    let age = chrono::Utc::now() - at;
    assert!(age.num_seconds().abs() < 60, "change time {at} is not now");
    for (cols, needle) in [
        (&["qty", "name"][..], "key column"),
        (&["id", "nope"][..], "\"nope\""),
    ] {
        let e = SqlTable::connect(url, "items", opts(cols))
            .await
            .err()
            .expect("must fail");
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains(needle), "{e}");
    }
    t.uninstall().await.unwrap();
}

const CREATE: &str = "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(50), secret VARCHAR(20) NOT NULL DEFAULT 'kept', qty BIGINT)";

#[tokio::test]
async fn sqlite_column_subset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let other = Other::Lite(
        SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap(),
    );
    exec(&other, CREATE).await;
    scenario(&format!("sqlite://{}", path.display()), &other).await;
}

#[tokio::test]
async fn postgres_column_subset() {
    let base = std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = Other::Pg(
        PgPool::connect(&base)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (or set SHEETSYNC_TEST_POSTGRES_URL)"),
    );
    let db = format!("sheetsync_cols_{}", std::process::id());
    exec(&admin, &format!("DROP DATABASE IF EXISTS {db}")).await;
    exec(&admin, &format!("CREATE DATABASE {db}")).await;
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let other = Other::Pg(PgPool::connect(&url).await.unwrap());
    exec(&other, CREATE).await;
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(&url, &other)))
            .await;
    if let Other::Pg(p) = &other {
        p.close().await;
    }
    exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    outcome.unwrap();
}

#[tokio::test]
async fn mysql_column_subset() {
    let base = std::env::var("SHEETSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let admin = Other::My(
        MySqlPool::connect(&base)
            .await
            .expect("MariaDB at 127.0.0.1:3306 (or set SHEETSYNC_TEST_MYSQL_URL)"),
    );
    let db = format!("sheetsync_cols_{}", std::process::id());
    exec(&admin, &format!("DROP DATABASE IF EXISTS {db}")).await;
    exec(&admin, &format!("CREATE DATABASE {db}")).await;
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let other = Other::My(MySqlPool::connect(&url).await.unwrap());
    exec(&other, CREATE).await;
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(&url, &other)))
            .await;
    if let Other::My(p) = &other {
        p.close().await;
    }
    exec(&admin, &format!("DROP DATABASE IF EXISTS {db}")).await;
    outcome.unwrap();
}
