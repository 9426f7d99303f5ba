//! End-to-end benchmark: the real adapters (SQLite, PostgreSQL, MariaDB/MySQL) against the
//! in-process Sheets emulator with Google-like latency (150 ms + up to 20 ms per call) and
//! Google's quotas (60 reads + 60 writes per minute per user), driven by `Engine::run` the way
//! the reference daemon drives it. Prints one markdown table to stdout.
//!
//! ```text
//! cargo bench -p sheetsync-cli --bench e2e            # full size, ~4 min a database
//! cargo bench -p sheetsync-cli --bench e2e -- --quick # CI size, ~1 min a database
//! ```
//!
//! Environment (each overrides the defaults of either size):
//! * `SHEETSYNC_BENCH_QUICK=1`: the same as `--quick` (sustained 10 s, 10,000 rows, 10 samples,
//!   200-row latency tables, 3 s idle).
//! * `SHEETSYNC_BENCH_SCENARIOS`: `latency` (webhook, polling, database → Sheet, idle),
//!   `journal` (journal mode without a webhook on 10,000- and 100,000-row sheets: person edits
//!   and other programs' API writes → database, idle cost) and/or `sustained` (initial sync,
//!   then sustained load), comma-separated (default `latency,sustained`).
//! * `SHEETSYNC_BENCH_SECONDS`: length of the sustained-load phase (default 60).
//! * `SHEETSYNC_BENCH_RATE`: database updates per second in that phase (default 1000).
//! * `SHEETSYNC_BENCH_ROWS`: rows of the initial sync (default 100000).
//! * `SHEETSYNC_BENCH_SAMPLES`: latency samples per path (default 40; polling uses half).
//! * `SHEETSYNC_BENCH_DBS`: any of `sqlite`, `postgres`, `mariadb` (or `mysql`),
//!   comma-separated (default `sqlite`).
//! * `SHEETSYNC_BENCH_POSTGRES_URL`: an admin URL (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`); the bench creates its own database there
//!   and drops it.
//! * `SHEETSYNC_BENCH_MYSQL_URL`: likewise for MariaDB/MySQL (default
//!   `mysql://root@127.0.0.1:3306/test`; the database named in it is only used to connect).
//!
//! Progress goes to stderr; `RUST_LOG` shows the engine's logs (default `warn`), and
//! `SHEETSYNC_BENCH_TRACE=1` prints every engine event and cycle report there.

#[path = "../src/arenas.rs"]
mod arenas;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use sheetsync::emulator::{
    Config as EmuConfig, EmulatorHandle, JournalSpec, Latency, QuotaConfig, TriggerSpec,
};
use sheetsync::gsheets::quota::{CallCounter, LimiterStats};
use sheetsync::gsheets::watch::{WatchOptions, Watcher};
use sheetsync::gsheets::webhook::{EditRouter, WebhookConfig, WebhookReceiver};
use sheetsync::gsheets::{Auth, ClientConfig, SheetsClient};
use sheetsync::sql::sqlx::{self, AssertSqlSafe, Connection, MySqlPool, PgPool, SqlitePool};
use sheetsync::sync::Sides;
use sheetsync::{CycleReport, Engine, Event, MappingConfig, OnPanic, SyncConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = std::result::Result<T, BoxError>;

const SECRET: &str = "sheetsync-bench-secret";
const LATENCY: Latency = Latency {
    fixed_ms: 150,
    jitter_ms: 20,
};
/// How often the other side is looked at while waiting for a change.
const LOOK_EVERY: Duration = Duration::from_millis(10);
/// A sample that takes longer than this is counted as lost.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The polling variant: a full read of the Sheet every cycle, cycles this far apart.
const POLL_MS: u64 = 1_000;
/// Rows in one `INSERT` when filling a MariaDB table.
const INSERT_CHUNK: i64 = 5_000;

/// Prints a progress line to stderr with the seconds since the bench started.
fn progress(message: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {message}", start.elapsed().as_secs_f64());
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    // As the daemon does (`MALLOC_ARENA_MAX` set: glibc's choice, e.g. 16 for its default here).
    let arenas = arenas::apply();
    eprintln!(
        "malloc arenas: {}",
        arenas.map_or("as MALLOC_ARENA_MAX says".into(), |n| n.to_string())
    );
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,sqlx=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("e2e bench failed: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    Mariadb,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
            Kind::Mariadb => "MariaDB",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        match name.trim() {
            "sqlite" => Some(Kind::Sqlite),
            "postgres" | "postgresql" => Some(Kind::Postgres),
            "mariadb" | "mysql" => Some(Kind::Mariadb),
            _ => None,
        }
    }
}

struct Params {
    quick: bool,
    seconds: u64,
    rate: u64,
    rows: i64,
    samples: usize,
    /// Rows of the tables the latency samples use.
    small_rows: i64,
    /// How long the idle measurement lasts.
    idle: Duration,
    latency: bool,
    journal: bool,
    sustained: bool,
}

impl Params {
    /// The sizes (`--quick` or `SHEETSYNC_BENCH_QUICK` for CI), then the environment's
    /// overrides. Cargo passes `--bench` and any arguments after `--`.
    fn from_env() -> Res<Params> {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("SHEETSYNC_BENCH_QUICK").is_ok_and(|v| !matches!(v.trim(), "" | "0"));
        let size = |full: u64, ci: u64| if quick { ci } else { full };
        let scenarios = std::env::var("SHEETSYNC_BENCH_SCENARIOS")
            .unwrap_or_else(|_| "latency,sustained".into());
        let mut p = Params {
            quick,
            seconds: env_num("SHEETSYNC_BENCH_SECONDS", size(60, 10)).max(1),
            rate: env_num("SHEETSYNC_BENCH_RATE", 1_000).max(10),
            rows: env_num("SHEETSYNC_BENCH_ROWS", size(100_000, 10_000)).max(1) as i64,
            samples: env_num("SHEETSYNC_BENCH_SAMPLES", size(40, 10)).max(2) as usize,
            small_rows: size(1_000, 200) as i64,
            idle: Duration::from_secs(size(10, 3)),
            latency: false,
            journal: false,
            sustained: false,
        };
        for s in scenarios.split(',') {
            match s.trim() {
                "latency" => p.latency = true,
                "journal" => p.journal = true,
                "sustained" => p.sustained = true,
                "" => {}
                other => {
                    return Err(
                        format!("unknown scenario {other:?} in SHEETSYNC_BENCH_SCENARIOS").into(),
                    )
                }
            }
        }
        Ok(p)
    }
}

async fn run() -> Res<()> {
    let p = Params::from_env()?;
    let dbs = std::env::var("SHEETSYNC_BENCH_DBS").unwrap_or_else(|_| "sqlite".into());
    let kinds: Vec<Kind> = dbs.split(',').filter_map(Kind::parse).collect();
    if kinds.is_empty() {
        return Err(format!("SHEETSYNC_BENCH_DBS={dbs:?} names no database").into());
    }
    if p.quick {
        progress("quick mode: CI-sized scenarios, figures not comparable with a full run");
    }
    let started = Instant::now();
    let mut columns = Vec::new();
    for kind in kinds {
        progress(&format!("== {} ==", kind.label()));
        columns.push((kind, measure(kind, &p).await?));
    }
    print_table(&p, &columns);
    progress(&format!(
        "total bench time {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Every figure of one database column.
#[derive(Default)]
struct Results {
    webhook: Lat,
    polling: Lat,
    db_to_sheet: Lat,
    /// One change at a time, further apart than the write budget's pace.
    db_to_sheet_spaced: Lat,
    idle_webhook: Option<Idle>,
    idle_polling: Option<Idle>,
    /// Journal mode per sheet size: person edits, API writes by another program, idle.
    journal: Vec<(i64, Lat, Lat, Idle)>,
    initial: Option<Initial>,
    sustained: Option<Sustained>,
}

#[derive(Default)]
struct Lat {
    samples: Vec<Duration>,
    lost: usize,
    reads: u64,
    writes: u64,
    answered_429: usize,
}

impl Lat {
    /// Waits until the database's row `id` is named `value`: a sample from `t0`, or a lost one
    /// after [`SAMPLE_TIMEOUT`].
    async fn until_db_name(&mut self, rig: &Rig, id: i64, value: &str, t0: Instant) -> Res<()> {
        loop {
            if rig.db.name_of(id).await?.as_deref() == Some(value) {
                self.samples.push(t0.elapsed());
                return Ok(());
            }
            if t0.elapsed() > SAMPLE_TIMEOUT {
                self.lost += 1;
                return Ok(());
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
}

/// What the engine does while nothing changes.
struct Idle {
    secs: u64,
    cycles: u64,
    reads: u64,
    writes: u64,
    drive: u64,
}

/// Lets the rig sit without changes for `length`.
async fn idle(rig: &Rig, length: Duration) -> Idle {
    use std::sync::atomic::Ordering::Relaxed;
    // Let the last sample's cycle finish first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c0 = rig.cycles.load(Relaxed);
    let (r0, w0, d0) = rig.api_calls();
    tokio::time::sleep(length).await;
    let (r1, w1, d1) = rig.api_calls();
    Idle {
        secs: length.as_secs(),
        cycles: rig.cycles.load(Relaxed) - c0,
        reads: r1 - r0,
        writes: w1 - w0,
        drive: d1 - d0,
    }
}

struct Initial {
    rows: i64,
    wall: Duration,
    calls: BTreeMap<String, u64>,
    rss_kb: Option<u64>,
    quiet_calls: u64,
    burst: Burst,
}

/// One cycle carrying a burst of DB updates (up to 10,000 rows changed in one transaction):
/// what the write intents cost (issue 10).
struct Burst {
    rows: usize,
    report: CycleReport,
}

/// Rows changed by the burst.
const BURST_ROWS: i64 = 10_000;

struct Sustained {
    seconds: f64,
    updates: u64,
    lags: Vec<Duration>,
    first_third_p99: Option<Duration>,
    last_third_p99: Option<Duration>,
    drain: Option<Duration>,
    unseen: usize,
    reads_per_min: f64,
    writes_per_min: f64,
    max_reads_window: u64,
    max_writes_window: u64,
    window_secs: u64,
    drive_per_min: f64,
    answered_429: usize,
    retries: u64,
    cycles: u64,
    errors: u64,
    hwm_kb: Option<u64>,
    hwm_reset: bool,
    rss_kb: Option<u64>,
    longest_gap: Duration,
    /// The client's read and write limiters over the phase.
    limiter_reads: LimiterDelta,
    limiter_writes: LimiterDelta,
}

/// What a rate limiter did over a phase.
struct LimiterDelta {
    admitted: u64,
    delayed: u64,
    total_wait: Duration,
    /// The longest wait since the client started (the limiter keeps no per-phase maximum).
    longest_wait: Duration,
}

impl LimiterDelta {
    fn between(before: LimiterStats, after: LimiterStats) -> LimiterDelta {
        LimiterDelta {
            admitted: after.admitted - before.admitted,
            delayed: after.delayed - before.delayed,
            total_wait: after.total_wait - before.total_wait,
            longest_wait: after.longest_wait,
        }
    }

    fn mean_wait(&self) -> Duration {
        self.total_wait / self.admitted.max(1) as u32
    }
}

async fn measure(kind: Kind, p: &Params) -> Res<Results> {
    let mut r = Results::default();
    if p.latency {
        latencies(kind, p, &mut r).await?;
    }
    if p.journal {
        journal_latencies(kind, p, &mut r).await?;
    }
    if p.sustained {
        initial_and_sustained(kind, p, &mut r).await?;
    }
    Ok(r)
}

/// 1. Latencies on a small table, with the Apps Script-style trigger and by polling.
async fn latencies(kind: Kind, p: &Params, r: &mut Results) -> Res<()> {
    progress(&format!(
        "latency: webhook and database → Sheet ({} rows)",
        p.small_rows
    ));
    let rig = Rig::start(kind, p.small_rows, Mode::Webhook).await?;
    r.webhook = sheet_to_db(&rig, p.samples, 0, 250).await?;
    r.db_to_sheet = db_to_sheet(&rig, p.samples, 50).await?;
    r.db_to_sheet_spaced = db_to_sheet(&rig, p.samples, SPACED_MS).await?;
    r.idle_webhook = Some(idle(&rig, p.idle).await);
    rig.stop().await;

    progress("latency: Sheet → database by polling");
    let rig = Rig::start(kind, p.small_rows, Mode::Polling).await?;
    r.polling = sheet_to_db(&rig, (p.samples / 2).max(2), 1_000_000, POLL_MS + 1_000).await?;
    r.idle_polling = Some(idle(&rig, p.idle).await);
    rig.stop().await;
    Ok(())
}

/// 1b. Journal mode, no webhook: person edits and API writes by another program → database,
/// on sheets of 10,000 and 100,000 rows (quick: 10,000), and what an idle minute costs.
async fn journal_latencies(kind: Kind, p: &Params, r: &mut Results) -> Res<()> {
    let sizes: &[i64] = if p.quick {
        &[10_000]
    } else {
        &[10_000, 100_000]
    };
    for &rows in sizes {
        progress(&format!(
            "journal mode: person edits and API writes ({rows} rows)"
        ));
        let rig = Rig::start(kind, rows, Mode::Journal).await?;
        let person = sheet_to_db(&rig, p.samples, 7, 1_500).await?;
        let api = api_write_to_db(&rig, (p.samples / 2).max(2)).await?;
        let idle = idle(&rig, p.idle.max(Duration::from_secs(60))).await;
        r.journal.push((rows, person, api, idle));
        rig.stop().await;
    }
    Ok(())
}

/// Another program writes a cell through the Sheets API (no trigger fires); time until the
/// database has it.
async fn api_write_to_db(rig: &Rig, samples: usize) -> Res<Lat> {
    let other = SheetsClient::new(ClientConfig {
        auth: Auth::Bearer("another-program".into()),
        ..ClientConfig::emulator(&rig.emu.base_url())
    })
    .await?;
    let mut rng = Rng(0xA24B_AED4_963E_E407);
    let mut out = Lat::default();
    let (r0, w0, _) = rig.api_calls();
    for i in 0..samples {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2_000))).await;
        let id = 1 + rng.below(rig.rows as u64) as i64;
        let value = format!("api write {i}");
        let range = format!("Sheet1!B{}", rig.row_of[&id]);
        let t0 = Instant::now();
        let data = vec![sheetsync::gsheets::ValueRange {
            range: Some(range),
            major_dimension: Some("ROWS".into()),
            values: Some(vec![vec![json!(value)]]),
        }];
        other.batch_update_values(&rig.sid, data).await?;
        out.until_db_name(rig, id, &value, t0).await?;
    }
    let (r1, w1, _) = rig.api_calls();
    (out.reads, out.writes) = (r1 - r0, w1 - w0);
    Ok(out)
}

/// 2. Initial sync, then 3. sustained load on the same table.
async fn initial_and_sustained(kind: Kind, p: &Params, r: &mut Results) -> Res<()> {
    progress(&format!("initial sync of {} rows", p.rows));
    reset_hwm();
    let mut rig = Rig::start(kind, p.rows, Mode::Webhook).await?;
    r.initial = rig.initial.take();
    progress(&format!(
        "sustained: {} updates/s for {} s on {} rows",
        p.rate, p.seconds, p.rows
    ));
    r.sustained = Some(sustained(&rig, p).await?);
    rig.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database side

enum Db {
    Sqlite {
        path: PathBuf,
        pool: SqlitePool,
    },
    Postgres {
        admin: String,
        name: String,
        url: String,
        pool: PgPool,
    },
    Mysql {
        admin: String,
        name: String,
        url: String,
        pool: MySqlPool,
    },
}

/// `url` with its path (the database name) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let base = match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    };
    format!("{base}/{name}")
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl Db {
    /// A fresh database holding `items(id, name, qty, price)` with `rows` rows.
    async fn create(kind: Kind, rows: i64) -> Res<Db> {
        match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("sheetsync_bench")));
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(30));
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts)
                    .await?;
                sqlx::query(
                    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                     qty INTEGER NOT NULL, price DECIMAL_TEXT)",
                )
                .execute(&pool)
                .await?;
                sqlx::query(
                    "INSERT INTO items (id, name, qty, price)
                     WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
                     SELECT i, 'item ' || i, i * 3, printf('%d.%02d', i, i % 100) FROM s",
                )
                .bind(rows)
                .execute(&pool)
                .await?;
                Ok(Db::Sqlite { path, pool })
            }
            Kind::Postgres => {
                let admin = std::env::var("SHEETSYNC_BENCH_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let name = unique("sheetsync_bench");
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let base = match admin.rfind('/') {
                    Some(i) if i > "postgres://".len() => &admin[..i],
                    _ => admin.as_str(),
                };
                let url = format!("{base}/{name}");
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&url)
                    .await?;
                sqlx::query(
                    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL,
                     qty bigint NOT NULL, price numeric(14,2))",
                )
                .execute(&pool)
                .await?;
                sqlx::query(
                    "INSERT INTO items SELECT i, 'item ' || i, i * 3, i + (i % 100) / 100.0
                     FROM generate_series(1, $1::bigint) AS i",
                )
                .bind(rows)
                .execute(&pool)
                .await?;
                Ok(Db::Postgres {
                    admin,
                    name,
                    url,
                    pool,
                })
            }
            Kind::Mariadb => Self::create_mysql(rows).await,
        }
    }

    /// A fresh MariaDB/MySQL database with the `items` table, filled in chunks.
    async fn create_mysql(rows: i64) -> Res<Db> {
        let admin = std::env::var("SHEETSYNC_BENCH_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        let name = unique("sheetsync_bench");
        let mut conn = sqlx::MySqlConnection::connect(&admin).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let url = with_database(&admin, &name);
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await?;
        sqlx::query(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
             qty BIGINT NOT NULL, price DECIMAL(14,2)) ENGINE=InnoDB",
        )
        .execute(&pool)
        .await?;
        for from in (1..=rows).step_by(INSERT_CHUNK as usize) {
            let to = (from + INSERT_CHUNK - 1).min(rows);
            let values: Vec<String> = (from..=to)
                .map(|i| format!("({i},'item {i}',{},{}.{:02})", i * 3, i, i % 100))
                .collect();
            let sql = format!(
                "INSERT INTO items (id, name, qty, price) VALUES {}",
                values.join(",")
            );
            sqlx::query(AssertSqlSafe(sql)).execute(&pool).await?;
        }
        Ok(Db::Mysql {
            admin,
            name,
            url,
            pool,
        })
    }

    /// Where the database is, as a mapping's `database_url` names it (SQLite: the file).
    fn url(&self) -> String {
        match self {
            Db::Sqlite { path, .. } => path.to_string_lossy().into_owned(),
            Db::Postgres { url, .. } | Db::Mysql { url, .. } => url.clone(),
        }
    }

    async fn name_of(&self, id: i64) -> Res<Option<String>> {
        Ok(match self {
            Db::Sqlite { pool, .. } => {
                sqlx::query_scalar("SELECT name FROM items WHERE id = ?1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT name FROM items WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Mysql { pool, .. } => {
                sqlx::query_scalar("SELECT name FROM items WHERE id = ?")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    /// Sets `qty` of each `(id, qty)` in one statement (the last of an id wins), as another
    /// program would. Beside the engine on two cores a statement a row held the writer to
    /// 2,100-2,800 rows a second; one a batch reached 3,954. The numbers are the bench's own,
    /// written inline.
    async fn set_qty(&self, updates: &[(i64, i64)]) -> Res<()> {
        let mut last = std::collections::BTreeMap::new();
        for &(id, qty) in updates {
            last.insert(id, qty);
        }
        let mut sql = String::from("UPDATE items SET qty = CASE id");
        for (id, qty) in &last {
            sql.push_str(&format!(" WHEN {id} THEN {qty}"));
        }
        sql.push_str(" END WHERE id IN (");
        let ids: Vec<String> = last.keys().map(i64::to_string).collect();
        sql.push_str(&ids.join(","));
        sql.push(')');
        // Only integers the bench made itself go into the text.
        match self {
            Db::Sqlite { pool, .. } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
            Db::Postgres { pool, .. } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
            Db::Mysql { pool, .. } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn drop_db(self) {
        match self {
            Db::Sqlite { path, pool } => {
                pool.close().await;
                for ext in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(ext);
                    let _ = std::fs::remove_file(p);
                }
            }
            Db::Postgres {
                admin, name, pool, ..
            } => {
                pool.close().await;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await {
                        eprintln!("could not drop database {name}: {e}");
                    }
                    let _ = conn.close().await;
                }
            }
            Db::Mysql {
                admin, name, pool, ..
            } => {
                pool.close().await;
                if let Ok(mut conn) = sqlx::MySqlConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name}");
                    if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await {
                        eprintln!("could not drop database {name}: {e}");
                    }
                    let _ = conn.close().await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One emulator + one database + one engine, running like the daemon

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Edit trigger → webhook receiver → `SheetTable::accept_edit`; default timing.
    Webhook,
    /// No trigger: a full read of the Sheet every cycle, `POLL_MS` between cycles.
    Polling,
    /// The Apps Script's journal (the emulator's journal trigger) polled by a `Watcher`; no
    /// webhook; default timing (a scheduled full read every 10 minutes).
    Journal,
}

struct Rig {
    emu: EmulatorHandle,
    sid: String,
    client: Arc<SheetsClient>,
    engine: Arc<Engine>,
    db: Db,
    /// 1-based Sheet row of each id.
    row_of: HashMap<i64, u32>,
    rows: i64,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    initial: Option<Initial>,
    cycles: Arc<std::sync::atomic::AtomicU64>,
    cycle_times: Arc<std::sync::Mutex<Vec<Instant>>>,
    errors: Arc<std::sync::atomic::AtomicU64>,
}

impl Rig {
    async fn start(kind: Kind, rows: i64, mode: Mode) -> Res<Rig> {
        let emu = EmulatorHandle::start(EmuConfig {
            quota: QuotaConfig::google(),
            latency: LATENCY,
            ..EmuConfig::default()
        })
        .await?;
        let sid = emu
            .create_spreadsheet("sheetsync bench")
            .map_err(|e| format!("emulator: {e:?}"))?;
        let db = Db::create(kind, rows).await?;
        let client = Arc::new(
            SheetsClient::new(ClientConfig {
                auth: Auth::Bearer("bench-user".into()),
                ..ClientConfig::emulator(&emu.base_url())
            })
            .await?,
        );
        // Both sides and the engine as the facade's builder opens them (the key from the
        // table, its state store in the same database); the bench runs the loops itself.
        let mut mapping = SyncConfig {
            spreadsheet_id: sid.clone(),
            sheet_id: 0,
            header_row: 1,
            database_url: db.url(),
            table: "items".into(),
            on_panic: OnPanic::default(),
            sheet_status: Default::default(),
            status_column: None,
            sync: MappingConfig::new("items", &[]),
        };
        if mode == Mode::Polling {
            mapping.sync.timing.poll_interval_ms = POLL_MS;
            mapping.sync.timing.full_scan_interval_ms = 0;
        }
        let sides = Sides::open(&mapping, client.clone()).await?;
        sides.db.install().await?;
        let store = sides.db.state_store().await?;
        let engine = Arc::new(sides.engine(store, false, None).await?);
        let sheet = sides.sheet.clone();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Count cycles and errors (best effort: per-row events may make the receiver lag).
        let cycles = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cycle_times = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let mut events = engine.subscribe();
            let (c, e, times) = (cycles.clone(), errors.clone(), cycle_times.clone());
            let trace = std::env::var_os("SHEETSYNC_BENCH_TRACE").is_some();
            tasks.push(tokio::spawn(async move {
                use std::sync::atomic::Ordering::Relaxed;
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match events.recv().await {
                        Ok(Event::Cycle(report)) => {
                            if trace {
                                eprintln!("engine cycle: {report:?}");
                            }
                            c.fetch_add(1, Relaxed);
                            times.lock().expect("cycle times").push(Instant::now());
                        }
                        Ok(Event::Error { side, message, .. }) => {
                            if e.fetch_add(1, Relaxed) < 5 {
                                eprintln!("engine error ({side:?}): {message}");
                            }
                        }
                        Ok(other) if trace => eprintln!("engine event: {other:?}"),
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            }));
        }

        if mode == Mode::Webhook {
            // The daemon's webhook, in process: verified payloads are routed to the Sheet.
            let router = EditRouter::new();
            router.add(sheet.clone());
            let receiver = WebhookReceiver::new(WebhookConfig::new(SECRET), router.handler())?;
            let app = receiver.router("/webhook");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let mut stop_http = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_http.wait_for(|s| *s).await;
                    })
                    .await;
            }));
            emu.add_trigger(
                &sid,
                TriggerSpec {
                    url: format!("http://{addr}/webhook"),
                    secret: SECRET.into(),
                    sheet_id: None,
                },
            )
            .map_err(|e| format!("emulator trigger: {e:?}"))?;
        }

        if mode == Mode::Journal {
            emu.add_journal_trigger(&sid, JournalSpec::default())
                .map_err(|e| format!("emulator trigger: {e:?}"))?;
            let watcher = Arc::new(Watcher::new(client.clone(), &sid, WatchOptions::default()));
            watcher.add(sheet.clone());
            let mut stop_watch = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                watcher
                    .run(async move {
                        let _ = stop_watch.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }

        // The initial sync, as the daemon runs it: one cycle before the loop starts.
        let t0 = Instant::now();
        let report = engine.run_once().await?;
        let wall = t0.elapsed();
        let rss_kb = proc_status("VmHWM");
        let calls: BTreeMap<String, u64> = emu.request_counts();
        if report.writes.sheet < rows as usize {
            return Err(format!(
                "initial sync wrote {} of {rows} rows to the Sheet",
                report.writes.sheet
            )
            .into());
        }
        // A second cycle right after must be quiet: no API call at all.
        let before: u64 = emu.request_counts().values().sum();
        engine.run_once().await?;
        let quiet_calls = emu.request_counts().values().sum::<u64>() - before;
        let burst = burst(&engine, &db, rows).await?;

        // Where each id landed in the Sheet (rows never move during the bench).
        let col = emu
            .read_values(&sid, &format!("Sheet1!A2:A{}", rows + 1))
            .map_err(|e| format!("emulator read: {e:?}"))?;
        let mut row_of = HashMap::with_capacity(rows as usize);
        for (i, r) in col.as_array().into_iter().flatten().enumerate() {
            if let Some(id) = r.get(0).and_then(Json::as_i64) {
                row_of.insert(id, i as u32 + 2);
            }
        }
        if row_of.len() != rows as usize {
            return Err(format!("the Sheet holds {} of {rows} ids", row_of.len()).into());
        }

        let e = engine.clone();
        let mut stop_engine = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            e.run(async move {
                let _ = stop_engine.wait_for(|s| *s).await;
            })
            .await
        }));
        Ok(Rig {
            emu,
            sid,
            client,
            engine,
            db,
            row_of,
            rows,
            stop,
            tasks,
            initial: Some(Initial {
                rows,
                wall,
                calls,
                rss_kb,
                quiet_calls,
                burst,
            }),
            cycles,
            cycle_times,
            errors,
        })
    }

    /// Sheets reads and writes the client sent so far (retries included), and Drive calls.
    fn api_calls(&self) -> (u64, u64, u64) {
        tally(self.client.counter())
    }

    /// The statistics of the client's read and write limiters.
    fn limiter_stats(&self) -> (LimiterStats, LimiterStats) {
        let (reads, writes) = self.client.limiters();
        (reads.stats(), writes.stats())
    }

    /// 429 answers the emulator logged since its counters were last reset.
    fn answered_429(&self) -> usize {
        self.emu
            .request_log()
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    fn cell(&self, range: &str) -> Option<Json> {
        self.emu
            .read_values(&self.sid, range)
            .ok()
            .and_then(|v| v.get(0).and_then(|r| r.get(0)).cloned())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let mut tasks = self.tasks.into_iter();
        // The first task counts events: it would only end with the engine, so it is stopped.
        let events = tasks.next();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        if let Some(t) = events {
            t.abort();
        }
        drop(self.engine);
        self.emu.shutdown().await;
        self.db.drop_db().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Latency samples

/// A small random generator (xorshift64*), enough to spread ids and waits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A person edits the `name` cell of a row; time until the database holds it.
async fn sheet_to_db(rig: &Rig, samples: usize, salt: u64, pause_ms: u64) -> Res<Lat> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ salt.wrapping_add(1));
    let mut out = Lat::default();
    let (r0, w0, _) = rig.api_calls();
    let q0 = rig.answered_429();
    for i in 0..samples {
        // A random pause longer than a cycle, so that edits land at random points of the
        // engine's cycle (polling: about POLL_MS + one cycle; otherwise the 250 ms wake-up
        // poll of SQLite).
        tokio::time::sleep(Duration::from_millis(50 + rng.below(pause_ms))).await;
        let id = 1 + rng.below(rig.rows as u64) as i64;
        let row = rig.row_of[&id];
        let value = format!("edit {salt}-{i}");
        let t0 = Instant::now();
        rig.emu
            .set_cells(
                &rig.sid,
                &format!("Sheet1!B{row}"),
                vec![vec![json!(value)]],
            )
            .map_err(|e| format!("person edit: {e:?}"))?;
        out.until_db_name(rig, id, &value, t0).await?;
    }
    let (r1, w1, _) = rig.api_calls();
    (out.reads, out.writes) = (r1 - r0, w1 - w0);
    out.answered_429 = rig.answered_429() - q0;
    Ok(out)
}

/// Sheets reads and writes a client sent (retries included), and its Drive calls.
fn tally(counter: &CallCounter) -> (u64, u64, u64) {
    let (mut r, mut w, mut d) = (0, 0, 0);
    for (m, n) in counter.calls() {
        match m {
            "spreadsheets.get" | "values.batchGet" | "values.batchGetByDataFilter" => r += n,
            "drive.files.get" => d += n,
            _ => w += n,
        }
    }
    (r, w, d)
}

/// How far apart (at least) the spaced database → Sheet samples come: beyond the write
/// budget's pace (`60 s / 56` between writes after the burst), so no write waits for the
/// limiter and the latency is one round trip plus the wake-up.
const SPACED_MS: u64 = 1_200;

/// Another connection updates `qty` every `apart_ms` to `apart_ms + 250` ms; time until the
/// Sheet shows it.
async fn db_to_sheet(rig: &Rig, samples: usize, apart_ms: u64) -> Res<Lat> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut out = Lat::default();
    let (r0, w0, _) = rig.api_calls();
    let q0 = rig.answered_429();
    for i in 0..samples {
        tokio::time::sleep(Duration::from_millis(apart_ms + rng.below(250))).await;
        let id = 1 + rng.below(rig.rows as u64) as i64;
        let row = rig.row_of[&id];
        let qty = 5_000_000 + apart_ms as i64 * 1_000 + i as i64;
        let t0 = Instant::now();
        rig.db.set_qty(&[(id, qty)]).await?;
        loop {
            if rig.cell(&format!("Sheet1!C{row}")).and_then(|v| v.as_i64()) == Some(qty) {
                out.samples.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > SAMPLE_TIMEOUT {
                out.lost += 1;
                break;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    let (r1, w1, _) = rig.api_calls();
    (out.reads, out.writes) = (r1 - r0, w1 - w0);
    out.answered_429 = rig.answered_429() - q0;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Sustained load

/// One watched update: `qty` of Sheet row `row` must reach `seq`.
struct Probe {
    row: u32,
    seq: i64,
    at: Instant,
}

/// Updates per transaction (one transaction every 10 ms at 1,000 updates per second).
const BATCH_EVERY: Duration = Duration::from_millis(10);
/// Every n-th update is watched in the Sheet.
const PROBE_EVERY: u64 = 10;

/// Changes `qty` of the first [`BURST_ROWS`] rows in one transaction, then runs the one cycle
/// that carries them (before the engine's loop starts, so nothing else runs in it).
async fn burst(engine: &Engine, db: &Db, rows: i64) -> Res<Burst> {
    let n = rows.min(BURST_ROWS);
    let updates: Vec<(i64, i64)> = (1..=n).map(|id| (id, 1_000_000 + id)).collect();
    db.set_qty(&updates).await?;
    let report = engine.run_once().await?;
    if report.writes.sheet < n as usize {
        return Err(format!("the burst cycle wrote {} of {n} rows", report.writes.sheet).into());
    }
    Ok(Burst {
        rows: n as usize,
        report,
    })
}

async fn sustained(rig: &Rig, p: &Params) -> Res<Sustained> {
    use std::sync::atomic::Ordering::Relaxed;
    rig.emu.reset_counters();
    let hwm_reset = reset_hwm();
    let retries0: u64 = rig.client.counter().retries().values().sum();
    let limiters0 = rig.limiter_stats();
    let cycles0 = rig.cycles.load(Relaxed);
    let errors0 = rig.errors.load(Relaxed);
    let duration = Duration::from_secs(p.seconds);
    let per_batch = (p.rate as f64 * BATCH_EVERY.as_secs_f64()).round().max(1.0) as u64;
    let (tx, mut rx) = mpsc::unbounded_channel::<Probe>();
    let start = Instant::now();

    // API calls, sampled every second.
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = {
        let client = rig.client.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let (r, w, d) = tally(client.counter());
                samples.push((r, w, d));
            }
            samples
        })
    };

    // The writer: `per_batch` updates in one transaction every 10 ms, on random rows.
    let writer = async {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut seq: i64 = 10_000_000;
        let mut n: u64 = 0;
        let mut k: u32 = 0;
        while start.elapsed() < duration {
            tokio::time::sleep_until((start + BATCH_EVERY * k).into()).await;
            k += 1;
            let mut batch = Vec::with_capacity(per_batch as usize);
            for _ in 0..per_batch {
                seq += 1;
                batch.push((1 + rng.below(rig.rows as u64) as i64, seq));
            }
            rig.db.set_qty(&batch).await?;
            let at = Instant::now();
            for (id, seq) in batch {
                n += 1;
                if n.is_multiple_of(PROBE_EVERY) {
                    let _ = tx.send(Probe {
                        row: rig.row_of[&id],
                        seq,
                        at,
                    });
                }
            }
        }
        drop(tx);
        Ok::<_, BoxError>((n, start.elapsed()))
    };

    // The watcher: looks at every outstanding probe's cell every 10 ms.
    let watcher = async {
        let mut open: Vec<Probe> = Vec::new();
        let mut lags: Vec<(Duration, Duration)> = Vec::new(); // (sent since start, lag)
        let mut writer_done: Option<Instant> = None;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(p) => open.push(p),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        writer_done.get_or_insert_with(Instant::now);
                        break;
                    }
                }
            }
            let now = Instant::now();
            open.retain(|p| {
                let seen = rig
                    .cell(&format!("Sheet1!C{}", p.row))
                    .and_then(|v| v.as_i64())
                    .is_some_and(|v| v >= p.seq);
                if seen {
                    lags.push((p.at - start, now - p.at));
                }
                !seen
            });
            if let Some(done) = writer_done {
                if open.is_empty() {
                    return (lags, Some(done.elapsed()), 0);
                }
                if done.elapsed() > Duration::from_secs(60) {
                    return (lags, None, open.len());
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    };

    let (written, (lags, drain, unseen)) = tokio::join!(writer, watcher);
    let (updates, elapsed) = written?;
    let _ = stop_tx.send(true);
    let samples = sampler.await.unwrap_or_default();
    let hwm_kb = proc_status("VmHWM");
    let limiters1 = rig.limiter_stats();

    let secs = elapsed.as_secs_f64();
    // samples[k] is taken k seconds into the phase (the first tick fires at once).
    let first = samples.first().copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let span = samples.len().saturating_sub(1).max(1);
    // The most requests in any window of 60 s (or of the whole run when it is shorter).
    let window = 60usize.min(span);
    let (mut max_r, mut max_w) = (0, 0);
    for i in 0..samples.len().saturating_sub(window) {
        max_r = max_r.max(samples[i + window].0 - samples[i].0);
        max_w = max_w.max(samples[i + window].1 - samples[i].1);
    }
    let per_min = |a: u64, b: u64| (b - a) as f64 * 60.0 / span as f64;
    let answered_429 = rig.answered_429();
    let rss_kb = proc_status("VmRSS");
    // The longest time between two finished cycles while updates were coming in.
    let longest_gap = {
        let times = rig.cycle_times.lock().expect("cycle times");
        let mut prev = start;
        let mut gap = Duration::ZERO;
        for &t in times
            .iter()
            .filter(|t| **t > start && **t <= start + elapsed)
        {
            gap = gap.max(t - prev);
            prev = t;
        }
        gap.max((start + elapsed).saturating_duration_since(prev))
    };

    let third = elapsed / 3;
    let p99_of = |pred: &dyn Fn(Duration) -> bool| {
        let mut v: Vec<Duration> = lags.iter().filter(|l| pred(l.0)).map(|l| l.1).collect();
        v.sort();
        pct(&v, 0.99)
    };
    let first_p99 = p99_of(&|t| t < third);
    let last_p99 = p99_of(&|t| t >= elapsed - third);
    Ok(Sustained {
        seconds: secs,
        updates,
        lags: {
            let mut v: Vec<Duration> = lags.iter().map(|l| l.1).collect();
            v.sort();
            v
        },
        first_third_p99: first_p99,
        last_third_p99: last_p99,
        drain,
        unseen,
        reads_per_min: per_min(first.0, last.0),
        writes_per_min: per_min(first.1, last.1),
        max_reads_window: max_r,
        max_writes_window: max_w,
        window_secs: window as u64,
        drive_per_min: per_min(first.2, last.2),
        answered_429,
        retries: rig.client.counter().retries().values().sum::<u64>() - retries0,
        cycles: rig.cycles.load(Relaxed) - cycles0,
        errors: rig.errors.load(Relaxed) - errors0,
        hwm_kb,
        hwm_reset,
        rss_kb,
        longest_gap,
        limiter_reads: LimiterDelta::between(limiters0.0, limiters1.0),
        limiter_writes: LimiterDelta::between(limiters0.1, limiters1.1),
    })
}

// ---------------------------------------------------------------------------------------------
// Process memory

/// A `kB` figure from /proc/self/status.
fn proc_status(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l[field.len() + 1..].split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5); false where that is not possible.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---------------------------------------------------------------------------------------------
// Output

fn pct(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    match d {
        None => "–".into(),
        Some(d) if d >= Duration::from_secs(10) => format!("{:.1} s", d.as_secs_f64()),
        Some(d) => format!("{} ms", d.as_millis()),
    }
}

fn lat_cell(l: &Lat) -> String {
    let mut v = l.samples.clone();
    v.sort();
    let mut s = format!(
        "{} / {} (n={}",
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.99)),
        v.len()
    );
    if l.lost > 0 {
        s.push_str(&format!(", {} lost", l.lost));
    }
    s.push_str(&format!("; {} reads, {} writes", l.reads, l.writes));
    if l.answered_429 > 0 {
        s.push_str(&format!(", {} answered 429", l.answered_429));
    }
    s.push(')');
    s
}

fn burst_cell(b: &Burst) -> String {
    let t = &b.report.timings;
    format!(
        "{} rows: {} ({}; Sheet {}, DB and state {}); {} intents, {} commits",
        b.rows,
        ms(Some(t.total)),
        ms(Some(t.intents)),
        ms(Some(t.sheet)),
        ms(Some(t.db_and_commit)),
        b.report.intents,
        b.report.state_commits
    )
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |k| format!("{:.0} MB", k as f64 / 1024.0))
}

fn short(method: &str) -> &str {
    method
        .strip_prefix("sheets.spreadsheets.")
        .unwrap_or(method)
}

/// The journal-mode figures of the `i`-th sheet size, if that size was measured.
fn journal_at(r: &Results, i: usize, size: i64) -> Option<(&Lat, &Lat, &Idle)> {
    r.journal
        .get(i)
        .filter(|j| j.0 == size)
        .map(|j| (&j.1, &j.2, &j.3))
}

fn print_table(p: &Params, cols: &[(Kind, Results)]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: String, f: &dyn Fn(&Results) -> String| {
        rows.push((name, cols.iter().map(|(_, r)| f(r)).collect()));
    };
    add("Sheet → DB, webhook: latency p50 / p99".into(), &|r| {
        lat_cell(&r.webhook)
    });
    add(
        format!("Sheet → DB, polling (full read every cycle, {POLL_MS} ms apart): p50 / p99"),
        &|r| lat_cell(&r.polling),
    );
    for (i, size) in [10_000i64, 100_000].into_iter().enumerate() {
        add(
            format!("Sheet → DB, journal mode ({size} rows): person edit p50 / p99"),
            &|r| journal_at(r, i, size).map_or("–".into(), |j| lat_cell(j.0)),
        );
        add(
            format!(
                "Sheet → DB, journal mode ({size} rows): another program's API write p50 / p99"
            ),
            &|r| journal_at(r, i, size).map_or("–".into(), |j| lat_cell(j.1)),
        );
        add(
            format!("Idle, journal mode ({size} rows): Sheets reads per minute"),
            &|r| {
                journal_at(r, i, size).map_or("–".into(), |j| {
                    let per_min = j.2.reads as f64 * 60.0 / j.2.secs.max(1) as f64;
                    format!(
                        "{per_min:.1} ({} reads, {} Drive calls in {} s)",
                        j.2.reads, j.2.drive, j.2.secs
                    )
                })
            },
        );
    }
    add(
        "DB → Sheet: latency p50 / p99 (a change every 50-300 ms: the write budget's pace)".into(),
        &|r| lat_cell(&r.db_to_sheet),
    );
    add(
        format!(
            "DB → Sheet: latency p50 / p99 (a change every {SPACED_MS}-{} ms)",
            SPACED_MS + 250
        ),
        &|r| lat_cell(&r.db_to_sheet_spaced),
    );
    let idle_cell = |i: &Option<Idle>| {
        i.as_ref().map_or("–".into(), |i| {
            format!(
                "{} cycles; {} reads, {} writes, {} Drive calls in {} s",
                i.cycles, i.reads, i.writes, i.drive, i.secs
            )
        })
    };
    add(
        "Idle (no changes), webhook mode: engine cycles and API calls".into(),
        &|r| idle_cell(&r.idle_webhook),
    );
    add(
        "Idle (no changes), polling mode: engine cycles and API calls".into(),
        &|r| idle_cell(&r.idle_polling),
    );
    add(
        format!("Initial sync, {} rows DB → empty Sheet: wall time", p.rows),
        &|r| {
            r.initial.as_ref().map_or("–".into(), |i| {
                format!(
                    "{:.1} s ({:.0} rows/s)",
                    i.wall.as_secs_f64(),
                    i.rows as f64 / i.wall.as_secs_f64().max(1e-9)
                )
            })
        },
    );
    add("Initial sync: API calls by method".into(), &|r| {
        r.initial.as_ref().map_or("–".into(), |i| {
            let parts: Vec<String> = i
                .calls
                .iter()
                .map(|(m, n)| format!("{} {n}", short(m)))
                .collect();
            format!("{} (next cycle: {} calls)", parts.join(", "), i.quiet_calls)
        })
    });
    add("Initial sync: peak RSS (VmHWM)".into(), &|r| {
        mb(r.initial.as_ref().and_then(|i| i.rss_kb))
    });
    add(
        "Burst of DB updates in one cycle: cycle time (writing the intents); intents, state-store commits".into(),
        &|r| r.initial.as_ref().map_or("–".into(), |i| burst_cell(&i.burst)),
    );
    add(
        format!(
            "Sustained {} DB updates/s for {} s: updates made",
            p.rate, p.seconds
        ),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                format!(
                    "{} ({:.0}/s; {} cycles, longest gap between cycles {})",
                    s.updates,
                    s.updates as f64 / s.seconds.max(1e-9),
                    s.cycles,
                    ms(Some(s.longest_gap))
                )
            })
        },
    );
    add("Sustained: lag p50 / p99 / max".into(), &|r| {
        r.sustained.as_ref().map_or("–".into(), |s| {
            let mut t = format!(
                "{} / {} / {} (n={}",
                ms(pct(&s.lags, 0.5)),
                ms(pct(&s.lags, 0.99)),
                ms(s.lags.last().copied()),
                s.lags.len()
            );
            if s.unseen > 0 {
                t.push_str(&format!(", {} never seen", s.unseen));
            }
            t.push(')');
            t
        })
    });
    add(
        "Sustained: lag p99, first third → last third; drain after the last update".into(),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                format!(
                    "{} → {}; {}",
                    ms(s.first_third_p99),
                    ms(s.last_third_p99),
                    ms(s.drain)
                )
            })
        },
    );
    add(
        "Sustained: Sheets API calls per minute, reads / writes (average; most in any window)"
            .into(),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                format!(
                    "{:.0} / {:.0} ({} / {} in {} s); Drive {:.0}/min",
                    s.reads_per_min,
                    s.writes_per_min,
                    s.max_reads_window,
                    s.max_writes_window,
                    s.window_secs,
                    s.drive_per_min
                )
            })
        },
    );
    add(
        "Sustained: client rate limiter, reads / writes: requests delayed, mean wait; longest wait since start".into(),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                let cell = |l: &LimiterDelta| {
                    format!(
                        "{} of {}, {}; {}",
                        l.delayed,
                        l.admitted,
                        ms(Some(l.mean_wait())),
                        ms(Some(l.longest_wait))
                    )
                };
                format!("{} / {}", cell(&s.limiter_reads), cell(&s.limiter_writes))
            })
        },
    );
    add(
        "Sustained: 429 answers / client retries / engine errors".into(),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                format!("{} / {} / {}", s.answered_429, s.retries, s.errors)
            })
        },
    );
    add(
        "Sustained: peak RSS (VmHWM) / RSS at the end".into(),
        &|r| {
            r.sustained.as_ref().map_or("–".into(), |s| {
                let mut t = mb(s.hwm_kb);
                if !s.hwm_reset {
                    t.push_str(" (since start)");
                }
                format!("{t} / {}", mb(s.rss_kb))
            })
        },
    );

    // Each row belongs to the scenario its name says; only the measured ones are printed.
    rows.retain(|(name, _)| {
        if name.contains("journal mode") {
            p.journal
        } else if name.starts_with("Sheet → DB")
            || name.starts_with("DB → Sheet")
            || name.starts_with("Idle (no changes)")
        {
            p.latency
        } else {
            p.sustained
        }
    });
    println!();
    if p.quick {
        println!(
            "Quick mode (CI-sized): {} rows, {} s sustained.",
            p.rows, p.seconds
        );
        println!();
    }
    print!("| Measurement |");
    for (k, _) in cols {
        print!(" {} |", k.label());
    }
    println!();
    print!("|---|");
    for _ in cols {
        print!("---|");
    }
    println!();
    for (name, cells) in rows {
        print!("| {name} |");
        for c in cells {
            print!(" {c} |");
        }
        println!();
    }
}
