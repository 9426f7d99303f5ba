//! An idle mapping stays idle: microsecond timestamps (with and without a time zone, one in the
//! repeated hour of a daylight-saving fall-back in the spreadsheet's zone), dates, decimals with
//! more digits than a double holds, and empty and non-empty text go to the Sheet and read back
//! exactly, so full reads (what polling does) find nothing to write, on each database.

use std::sync::Arc;

use sheetsync::emulator::{Config, EmulatorHandle};
use sheetsync::gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};
use sheetsync::sql::{SqlOptions, SqlTable};
use sheetsync::*;

use crate::harness::{random_hex, Backend, Db, World};

/// Full reads of both sides with no edit anywhere: each is one poll of an idle mapping.
const IDLE_CYCLES: usize = 10;

fn create_sql(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, at timestamptz, local timestamp, \
             due date, price numeric(30,6), name text)"
        ),
        Backend::MySql => format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, at DATETIME(6), \
             local DATETIME(6), due DATE, price DECIMAL(30,6), name VARCHAR(100))"
        ),
        Backend::Sqlite => format!(
            "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, at TIMESTAMPTZ, \
             local DATETIME, due DATE, price DECIMAL_TEXT, name TEXT)"
        ),
    }
}

/// Rows whose values a Sheet number cannot all hold exactly, in the emulator's New York time.
fn rows(backend: Backend) -> Vec<String> {
    let tz = |s: &str| match backend {
        Backend::MySql => s.trim_end_matches("+00").to_string(),
        Backend::Sqlite => s.replace(' ', "T").replace("+00", "Z"),
        Backend::Postgres => s.to_string(),
    };
    let local = |s: &str| match backend {
        Backend::Sqlite => s.replace(' ', "T"),
        _ => s.to_string(),
    };
    [
        (
            "2026-03-01 12:34:56.518858+00",
            "2026-03-01 12:34:56.518858",
            "12345678901234.123456",
            "'x'",
        ),
        // 01:30 on the fall-back day, first (EDT) and second (EST) time.
        (
            "2026-11-01 05:30:00.000001+00",
            "2026-11-01 01:30:00.000001",
            "0.000001",
            "''",
        ),
        (
            "2026-11-01 06:30:00.999999+00",
            "2026-11-01 01:30:00",
            "-99999999999999.999999",
            "NULL",
        ),
        (
            "2150-06-30 23:59:59.999999+00",
            "1900-01-01 00:00:00.000001",
            "1.5",
            "'007'",
        ),
    ]
    .iter()
    .enumerate()
    .map(|(i, (at, loc, price, name))| {
        format!(
            "({}, '{}', '{}', '2026-02-28', '{price}', {name})",
            i + 1,
            tz(at),
            local(loc)
        )
    })
    .collect()
}

fn insert(backend: Backend, table: &str) -> String {
    format!(
        "INSERT INTO {table} (id, at, local, due, price, name) VALUES {}",
        rows(backend).join(", ")
    )
}

async fn idle_suite(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("sheetsync-idle-{}", random_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::create(backend, &dir).await;
    let table = format!("idle_{}", &random_hex()[..10]);
    db.exec(&create_sql(backend, &table)).await;
    db.exec(&insert(backend, &table)).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu
        .create_spreadsheet_from(&serde_json::json!({
            "properties": {"title": "idle", "timeZone": "America/New_York"},
            "sheets": [{"properties": {"sheetId": 0, "title": "Sheet1"}}]
        }))
        .unwrap();
    let sql = SqlTable::connect(&db.url, &table, SqlOptions::default())
        .await
        .unwrap();
    sql.install().await.unwrap();
    let store = sql.state_store().await.unwrap();
    let mut cfg = ClientConfig::emulator(&emu.base_url());
    cfg.reads_per_minute = 1_000_000;
    cfg.writes_per_minute = 1_000_000;
    let client = Arc::new(SheetsClient::new(cfg).await.unwrap());
    let mut opts = SheetOptions::new(&id, 0);
    opts.use_drive_version = false; // every poll really reads the Sheet
    let sheet = Arc::new(SheetTable::new(client, opts, sql.schema().clone()));
    let mut mapping = MappingConfig::new(format!("idle_{table}"), &["id"]);
    mapping.timing.full_scan_interval_ms = 1;
    let engine = Engine::builder(mapping, sheet, Arc::new(sql))
        .state(store)
        .build()
        .await
        .unwrap();
    engine.run_once().await.unwrap(); // the initial sync fills the Sheet
    let before = emu.read_values(&id, "Sheet1").unwrap();
    assert_eq!(
        before.as_array().map(Vec::len),
        Some(5),
        "{backend:?}: the header and four rows: {before}"
    );
    if std::env::var_os("SHEETSYNC_IDLE_DEBUG").is_some() {
        eprintln!("{backend:?}: {before}");
    }
    emu.reset_counters();
    for _ in 0..IDLE_CYCLES {
        let report = engine.run_once().await.unwrap();
        assert_eq!(
            report.writes.total(),
            0,
            "{backend:?}: an idle cycle wrote: {report:?}"
        );
    }
    let counts = emu.request_counts();
    let writes: u64 = counts
        .iter()
        .filter(|(m, _)| {
            m.contains("batchUpdate") || m.contains("append") || m.ends_with(".update")
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(writes, 0, "{backend:?}: write calls while idle: {counts:?}");
    assert_eq!(
        emu.read_values(&id, "Sheet1").unwrap(),
        before,
        "{backend:?}: the Sheet changed while idle"
    );
    assert!(engine.held().await.is_empty(), "{:?}", engine.held().await);
    emu.shutdown().await;
    db.drop_database();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mapping_writes_nothing_sqlite() {
    idle_suite(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mapping_writes_nothing_postgres() {
    idle_suite(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mapping_writes_nothing_mysql() {
    idle_suite(Backend::MySql).await;
}

/// How long the daemon idles (`SHEETSYNC_IDLE_SECONDS`, default five minutes).
fn idle_for() -> std::time::Duration {
    let secs = std::env::var("SHEETSYNC_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    std::time::Duration::from_secs(secs)
}

/// The daemon in polling mode (a poll a second, a scheduled full read every 30 s) on the
/// mapping above makes no write call and no Sheets read while idle: only the Drive version
/// checks that tell it nothing changed. Returns the API calls made, by method.
async fn daemon_idles(backend: Backend) -> Vec<(String, u64)> {
    let mut w = World::new(backend, "idle-daemon").await;
    let sql = [create_sql(backend, "t_idle"), insert(backend, "t_idle")];
    let extra = "timing = { poll_interval_ms = 1000, full_scan_interval_ms = 30000 }";
    w.time_zone = Some("America/New_York".into());
    let m = w.add_mapping_sql("idle", &sql, extra).await;
    w.start().await;
    w.wait_for_tab_rows(m, 5, "the initial sync").await;
    // The full read that follows the initial sync's writes, then a quiet start.
    tokio::time::sleep(std::time::Duration::from_secs(35)).await;
    w.emu.reset_counters();
    let before = w.sheet_values(m);
    tokio::time::sleep(idle_for()).await;
    let counts: Vec<(String, u64)> = w.emu.request_counts().into_iter().collect();
    assert_eq!(
        w.sheet_values(m),
        before,
        "{backend:?}: the Sheet changed while idle"
    );
    let sheets_calls: Vec<_> = counts
        .iter()
        .filter(|(method, _)| !method.starts_with("drive."))
        .collect();
    assert!(
        sheets_calls.is_empty(),
        "{backend:?}: Sheets API calls while idle (only Drive version checks expected): {counts:?}"
    );
    counts
}

/// Five minutes of an idle daemon on each database at once (one test, so the three waits overlap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_daemon_makes_only_version_checks() {
    let (sqlite, postgres, mysql) = tokio::join!(
        daemon_idles(Backend::Sqlite),
        daemon_idles(Backend::Postgres),
        daemon_idles(Backend::MySql)
    );
    let minutes = idle_for().as_secs_f64() / 60.0;
    for (backend, counts) in [
        ("SQLite", sqlite),
        ("PostgreSQL", postgres),
        ("MariaDB", mysql),
    ] {
        let per_minute: Vec<String> = counts
            .iter()
            .map(|(m, n)| format!("{m} {:.1}/min", *n as f64 / minutes))
            .collect();
        eprintln!(
            "idle daemon, {backend}, {minutes:.1} min: {}",
            per_minute.join(", ")
        );
    }
}
