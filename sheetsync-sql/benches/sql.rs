//! Throughput of the three adapters against real servers: applying 100,000 upserts through
//! `Sink::apply` (in batches of `max_batch`, capture triggers installed), and reading 100,000
//! changes through `Source::changes`.
//!
//! ```text
//! cargo bench -p sheetsync-sql --all-features --bench sql
//! ```
//!
//! Servers: `SHEETSYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! `SHEETSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`); SQLite in a temporary
//! directory. Each run creates its own databases and drops them.

use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sheetsync_core::{Change, Cursor, Expected, Row, Sink, Source, Value, WriteContext, WriteOp};
use sheetsync_sql::{MySqlTable, PostgresTable, SqlOptions, SqliteTable};
use sqlx::{AssertSqlSafe, Connection};

const ROWS: i64 = 100_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn row(i: i64, round: u64) -> Row {
    Row::new(vec![
        Value::Int(i),
        Value::Text(format!("item {i} round {round}")),
        Value::Int(i * 3),
        Value::Decimal(format!("{i}.{round:02}").parse().unwrap()),
    ])
}

fn ctx() -> WriteContext {
    WriteContext {
        origin: "sheetsync:bench".into(),
    }
}

/// Applies `ROWS` upserts in batches of the adapter's `max_batch`.
async fn upsert_all<T: Sink + Source>(t: &T, round: u64) -> Duration {
    let max = t.capabilities().max_batch;
    let ops: Vec<WriteOp> = (0..ROWS)
        .map(|i| WriteOp::Upsert {
            row: row(i, round),
            expected: Expected::Any,
        })
        .collect();
    let start = Instant::now();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let batch: Vec<WriteOp> = ops.by_ref().take(max).collect();
        let out = t.apply(batch, &ctx()).await.unwrap();
        assert!(out
            .iter()
            .all(|o| matches!(o, sheetsync_core::WriteOutcome::Applied)));
    }
    start.elapsed()
}

/// Reads the feed from `cursor` to its end; returns the time and the number of changes.
async fn read_all<T: Source>(t: &T, cursor: &Cursor) -> (Duration, usize) {
    let start = Instant::now();
    let mut at = cursor.clone();
    let mut n = 0;
    loop {
        let b = t.changes(&at, 10_000).await.unwrap();
        n += b
            .changes
            .iter()
            .filter(|o| matches!(o.change, Change::Upsert(_)))
            .count();
        at = b.cursor;
        if !b.more {
            return (start.elapsed(), n);
        }
    }
}

const EXTERNAL_INSERT_PG: &str =
    "INSERT INTO bench (id, name, qty, price) SELECT i, 'external ' || i, i, i::numeric / 100 FROM generate_series(1, 100000) i";

fn postgres(c: &mut Criterion) {
    let rt = rt();
    let url = std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("sheetsync_bench_{}", std::process::id());
    let (table, feed, cursor) = rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&url)
            .await
            .expect("PostgreSQL for the benchmark");
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let opts = sqlx::postgres::PgConnectOptions::from_str(&url)
            .unwrap()
            .database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE bench (id bigint PRIMARY KEY, name text, qty bigint, price numeric)",
            "CREATE TABLE feed (id bigint PRIMARY KEY, name text, qty bigint, price numeric)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let table = PostgresTable::open(pool.clone(), None, "bench", SqlOptions::default())
            .await
            .unwrap();
        table.install().await.unwrap();
        let feed = PostgresTable::open(pool.clone(), None, "feed", SqlOptions::default())
            .await
            .unwrap();
        feed.install().await.unwrap();
        let cursor = feed.cursor().await.unwrap().unwrap();
        sqlx::query(AssertSqlSafe(EXTERNAL_INSERT_PG.replace("bench", "feed")))
            .execute(&pool)
            .await
            .unwrap();
        (table, feed, cursor)
    });
    let mut g = c.benchmark_group("postgres");
    g.sample_size(10)
        .throughput(Throughput::Elements(ROWS as u64));
    let mut round = 0;
    g.bench_function("apply_100k_upserts", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    round += 1;
                    rt.block_on(upsert_all(&table, round))
                })
                .sum()
        })
    });
    g.bench_function("read_100k_changes", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (d, n) = rt.block_on(read_all(&feed, &cursor));
                    assert_eq!(n, ROWS as usize);
                    d
                })
                .sum()
        })
    });
    g.finish();
    rt.block_on(async {
        table.pool().close().await;
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    });
}

fn mysql(c: &mut Criterion) {
    let rt = rt();
    let url = std::env::var("SHEETSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
    let name = format!("sheetsync_bench_{}", std::process::id());
    let (table, pool) = rt.block_on(async {
        let mut admin = sqlx::MySqlConnection::connect(&url).await.expect("MySQL/MariaDB for the benchmark");
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut admin).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let opts = sqlx::mysql::MySqlConnectOptions::from_str(&url).unwrap().database(&name);
        let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(4).connect_with(opts).await.unwrap();
        for sql in [
            "CREATE TABLE bench (id BIGINT PRIMARY KEY, name TEXT, qty BIGINT, price DECIMAL(30,10))",
            "CREATE TABLE feed (id BIGINT PRIMARY KEY, name TEXT, qty BIGINT, price DECIMAL(30,10))",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let table = MySqlTable::open(pool.clone(), "bench", SqlOptions::default()).await.unwrap();
        table.install().await.unwrap();
        let feed = MySqlTable::open(pool.clone(), "feed", SqlOptions::default()).await.unwrap();
        feed.install().await.unwrap();
        // Another program writes 100,000 rows (generated numbers only, no user input).
        let mut tx = pool.begin().await.unwrap();
        for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1_000) {
            let values: Vec<String> = chunk.iter().map(|i| format!("({i}, 'external {i}', {i}, {i}.25)")).collect();
            sqlx::query(AssertSqlSafe(format!("INSERT INTO feed (id, name, qty, price) VALUES {}", values.join(", "))))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        (table, pool)
    });
    let mut g = c.benchmark_group("mysql");
    g.sample_size(10)
        .throughput(Throughput::Elements(ROWS as u64));
    let mut round = 0;
    g.bench_function("apply_100k_upserts", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    round += 1;
                    rt.block_on(upsert_all(&table, round))
                })
                .sum()
        })
    });
    g.bench_function("read_100k_changes", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    // A queue: a fresh reader (nothing handed out yet) reads it all, without acking.
                    let (d, n) = rt.block_on(async {
                        let feed = MySqlTable::open(pool.clone(), "feed", SqlOptions::default())
                            .await
                            .unwrap();
                        let cursor = feed.cursor().await.unwrap().unwrap();
                        read_all(&feed, &cursor).await
                    });
                    assert_eq!(n, ROWS as usize);
                    d
                })
                .sum()
        })
    });
    g.finish();
    rt.block_on(async {
        pool.close().await;
        let mut admin = sqlx::MySqlConnection::connect(&url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}

fn sqlite(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let (table, feed, cursor) = rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.unwrap();
        for sql in [
            "CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price DECIMAL_TEXT)",
            "CREATE TABLE feed (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price DECIMAL_TEXT)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let table = SqliteTable::open(pool.clone(), "bench", SqlOptions::default()).await.unwrap();
        table.install().await.unwrap();
        let feed = SqliteTable::open(pool.clone(), "feed", SqlOptions::default()).await.unwrap();
        feed.install().await.unwrap();
        let cursor = feed.cursor().await.unwrap().unwrap();
        sqlx::query(
            "INSERT INTO feed (id, name, qty, price)
             WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100000)
             SELECT i, 'external ' || i, i, CAST(i AS TEXT) || '.5' FROM s",
        )
        .execute(&pool)
        .await
        .unwrap();
        (table, feed, cursor)
    });
    let mut g = c.benchmark_group("sqlite");
    g.sample_size(10)
        .throughput(Throughput::Elements(ROWS as u64));
    let mut round = 0;
    g.bench_function("apply_100k_upserts", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    round += 1;
                    rt.block_on(upsert_all(&table, round))
                })
                .sum()
        })
    });
    g.bench_function("read_100k_changes", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (d, n) = rt.block_on(read_all(&feed, &cursor));
                    assert_eq!(n, ROWS as usize);
                    d
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, postgres, mysql, sqlite);
criterion_main!(benches);
