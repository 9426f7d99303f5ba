//! The machinery of the end-to-end suite: a fresh database per test, the Sheets emulator in
//! process, a configuration file, and the `sheetsync` daemon as a separate process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{json, Value as Json};
use sheetsync::emulator::{Config as EmulatorConfig, EmulatorHandle, JournalSpec, TriggerSpec};
use sheetsync::sql::sqlx::{self, AssertSqlSafe, Connection, Row as _};

/// How long convergence may take before a test fails (generous: CI machines are slow).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The databases under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    fn admin_url(self) -> String {
        match self {
            Backend::Postgres => std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            Backend::MySql => std::env::var("SHEETSYNC_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into()),
            Backend::Sqlite => String::new(),
        }
    }

    fn unreachable(self, url: &str, e: &dyn std::fmt::Display) -> String {
        match self {
            Backend::Postgres => format!(
                "PostgreSQL is not reachable at {url}: {e}. Start one on 127.0.0.1:5432 with trust \
                 authentication for user postgres (e.g. `pg_ctlcluster 15 main start`, or `docker run \
                 -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`), or set \
                 SHEETSYNC_TEST_POSTGRES_URL to a server where the user may create databases."
            ),
            Backend::MySql => format!(
                "MariaDB/MySQL is not reachable at {url}: {e}. Start one on 127.0.0.1:3306 with an \
                 empty root password (e.g. `service mariadb start`, or `docker run -p 3306:3306 -e \
                 MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 mariadb:11`), or set SHEETSYNC_TEST_MYSQL_URL \
                 to a server where the user may create databases."
            ),
            Backend::Sqlite => format!("SQLite: {e}"),
        }
    }
}

/// A random lowercase hex string (no extra dev-dependency).
pub fn random_hex() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(Instant::now());
    format!("{a:016x}{b:08x}")[..20].to_string()
}

/// `url` with its path (database) replaced by `db`, keeping the query.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

/// The test's own connections: "another program" writing to the table with plain SQL.
#[derive(Clone)]
pub enum Pool {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
    Lite(sqlx::SqlitePool),
}

/// A fresh database, dropped at the end of the test.
/// A transaction holding the state store's lock (see [`Db::hold_state_lock`]).
pub enum StateLock {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    My(sqlx::Transaction<'static, sqlx::MySql>),
    Lite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl StateLock {
    /// Rolls back, releasing the lock.
    pub async fn release(self) {
        let _ = match self {
            StateLock::Pg(tx) => tx.rollback().await,
            StateLock::My(tx) => tx.rollback().await,
            StateLock::Lite(tx) => tx.rollback().await,
        };
    }
}

pub struct Db {
    pub backend: Backend,
    /// The database name (the file path for SQLite).
    pub name: String,
    /// What the daemon connects to.
    pub url: String,
    pub pool: Pool,
}

/// The columns of every test table, in order.
pub const COLUMNS: [&str; 6] = ["id", "name", "code", "price", "due", "active"];

/// A row as both sides are compared: text forms, `None` for NULL / an empty cell. Decimals
/// without trailing zeros, booleans `true`/`false`, dates `YYYY-MM-DD`.
pub type Canon = Vec<Option<String>>;

/// A row from short text forms (`""` stands for NULL).
pub fn row(v: [&str; 6]) -> Canon {
    v.iter()
        .enumerate()
        .map(|(i, s)| {
            if s.is_empty() {
                None
            } else {
                Some(normalize(COLUMNS[i], s))
            }
        })
        .collect()
}

fn norm_decimal(s: &str) -> String {
    let s = s.trim();
    if s.contains('.') && !s.contains(['e', 'E']) {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() || t == "-" {
            "0".into()
        } else {
            t.to_string()
        }
    } else {
        s.to_string()
    }
}

fn normalize(column: &str, s: &str) -> String {
    match column {
        "price" => norm_decimal(s),
        "active" => match s.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => "true".into(),
            "0" | "f" | "false" => "false".into(),
            other => other.to_string(),
        },
        _ => s.to_string(),
    }
}

impl Db {
    pub async fn create(backend: Backend, dir: &Path) -> Db {
        let admin = backend.admin_url();
        let name = format!("sheetsync_e2e_{}", random_hex());
        match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{}", backend.unreachable(&admin, &e)));
                // Concurrent CREATE DATABASE can collide on the template; retry a little.
                let mut tries = 0;
                loop {
                    match sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                        .execute(&mut conn)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if tries < 10 => {
                            tries += 1;
                            eprintln!("CREATE DATABASE {name}: {e}; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => panic!("CREATE DATABASE {name}: {e}"),
                    }
                }
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                let opts = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(3)
                    .connect_with(opts)
                    .await
                    .unwrap();
                Db {
                    backend,
                    name,
                    url,
                    pool: Pool::Pg(pool),
                }
            }
            Backend::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{}", backend.unreachable(&admin, &e)));
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
                )))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                let opts = sqlx::mysql::MySqlConnectOptions::from_str(&url).unwrap();
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(3)
                    .connect_with(opts)
                    .await
                    .unwrap();
                Db {
                    backend,
                    name,
                    url,
                    pool: Pool::My(pool),
                }
            }
            Backend::Sqlite => {
                let path = dir.join("e2e.sqlite");
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts)
                    .await
                    .unwrap_or_else(|e| panic!("{}", backend.unreachable("", &e)));
                Db {
                    backend,
                    name: path.display().to_string(),
                    url: format!("sqlite://{}", path.display()),
                    pool: Pool::Lite(pool),
                }
            }
        }
    }

    /// Runs a statement; the error as text.
    pub async fn try_exec(&self, sql: &str) -> Result<u64, String> {
        let q = AssertSqlSafe(sql.to_string());
        let r = match &self.pool {
            Pool::Pg(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
            Pool::My(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
            Pool::Lite(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
        };
        r.map_err(|e| format!("{sql}: {e}"))
    }

    /// Runs a statement, retrying a few times on transient errors (the test's own connection
    /// may have been killed with the daemon's, or SQLite may be busy).
    pub async fn exec(&self, sql: &str) -> u64 {
        let mut last = String::new();
        for _ in 0..20 {
            match self.try_exec(sql).await {
                Ok(n) => return n,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("{last}")
    }

    /// Holds the lock of the daemon's state store for `mapping` from another connection until
    /// the guard is released: the daemon's next state commit waits for it. (PostgreSQL and
    /// MySQL: the mapping's state row `FOR UPDATE`; SQLite: the database's write lock.)
    pub async fn hold_state_lock(&self, mapping: &str) -> StateLock {
        match &self.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await.unwrap();
                sqlx::query(
                    "SELECT doc FROM sheetsync.state_mappings WHERE mapping = $1 FOR UPDATE",
                )
                .bind(mapping)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                StateLock::Pg(tx)
            }
            Pool::My(p) => {
                let mut tx = p.begin().await.unwrap();
                sqlx::query(
                    "SELECT doc FROM `_sheetsync_state_mappings` WHERE mapping = ? FOR UPDATE",
                )
                .bind(mapping)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                StateLock::My(tx)
            }
            Pool::Lite(p) => StateLock::Lite(p.begin_with("BEGIN IMMEDIATE").await.unwrap()),
        }
    }

    /// `CREATE TABLE` for a test table.
    pub fn create_table_sql(&self, table: &str) -> String {
        match self.backend {
            Backend::Postgres => format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, code text, \
                 price numeric(12,2), due date, active boolean)"
            ),
            Backend::MySql => format!(
                "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(200), \
                 code VARCHAR(50), price DECIMAL(12,2), due DATE, active BOOLEAN)"
            ),
            Backend::Sqlite => format!(
                "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, name TEXT, code TEXT, \
                 price DECIMAL_TEXT, due DATE, active BOOLEAN)"
            ),
        }
    }

    /// Every row of a test table, by id, in canonical text form.
    pub async fn try_rows(&self, table: &str) -> Result<BTreeMap<i64, Canon>, String> {
        let sql = match self.backend {
            Backend::Postgres => format!(
                "SELECT id::text, name, code, price::text, due::text, active::text FROM {table}"
            ),
            Backend::MySql => format!(
                "SELECT CAST(id AS CHAR), name, code, CAST(price AS CHAR), CAST(due AS CHAR), \
                 CAST(active AS CHAR) FROM {table}"
            ),
            Backend::Sqlite => format!(
                "SELECT CAST(id AS TEXT), name, code, CAST(price AS TEXT), CAST(due AS TEXT), \
                 CAST(active AS TEXT) FROM {table}"
            ),
        };
        let raw = self.try_texts(&sql, COLUMNS.len()).await?;
        let mut out = BTreeMap::new();
        for r in raw {
            let id: i64 =
                r[0].as_deref().unwrap_or("").parse().map_err(|e| {
                    format!("database id {:?} is not an integer: {e}", r[0].as_deref())
                })?;
            let canon: Canon = r
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_deref().map(|s| normalize(COLUMNS[i], s)))
                .collect();
            if out.insert(id, canon).is_some() {
                return Err(format!("database: id {id} twice"));
            }
        }
        Ok(out)
    }

    /// The first `n` columns of every row `sql` selects, as text (each must be text or NULL).
    pub async fn try_texts(&self, sql: &str, n: usize) -> Result<Vec<Vec<Option<String>>>, String> {
        // The same query on each pool type.
        macro_rules! texts {
            ($pool:expr) => {
                sqlx::query(AssertSqlSafe(sql.to_string()))
                    .fetch_all($pool)
                    .await
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|r| (0..n).map(|i| r.try_get(i).unwrap()).collect())
                    .collect()
            };
        }
        Ok(match &self.pool {
            Pool::Pg(p) => texts!(p),
            Pool::My(p) => texts!(p),
            Pool::Lite(p) => texts!(p),
        })
    }

    pub async fn rows(&self, table: &str) -> BTreeMap<i64, Canon> {
        let mut last = String::new();
        for _ in 0..20 {
            match self.try_rows(table).await {
                Ok(r) => return r,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("reading {table}: {last}")
    }

    /// Kills the daemon's connections to the database (PostgreSQL, MariaDB); returns how many.
    pub async fn kill_connections(&self) -> usize {
        match &self.pool {
            Pool::Pg(_) => {
                let admin = self.backend.admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                let rows = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let _ = conn.close().await;
                rows.len()
            }
            Pool::My(_) => {
                let admin = self.backend.admin_url();
                let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap();
                let ids: Vec<i64> = sqlx::query(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE DB = ? AND ID <> CONNECTION_ID()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<i64, _>(0).unwrap())
                .collect();
                for id in &ids {
                    let _ = sqlx::query(AssertSqlSafe(format!("KILL {id}")))
                        .execute(&mut conn)
                        .await;
                }
                let _ = conn.close().await;
                ids.len()
            }
            Pool::Lite(_) => 0,
        }
    }

    pub fn drop_database(&self) {
        let (backend, name) = (self.backend, self.name.clone());
        if backend == Backend::Sqlite {
            return; // the file goes with the test directory
        }
        let admin = backend.admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                match backend {
                    Backend::Postgres => {
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    }
                    Backend::MySql => {
                        if let Ok(mut c) = sqlx::MySqlConnection::connect(&admin).await {
                            let _ = sqlx::query(AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS `{name}`"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    }
                    Backend::Sqlite => {}
                }
            })
        })
        .join();
    }
}

/// SQL literal of one canonical value of `column`.
fn literal(column: &str, v: &Option<String>) -> String {
    match (column, v) {
        (_, None) => "NULL".into(),
        ("id", Some(s)) => s.clone(),
        ("active", Some(s)) => if s == "true" { "TRUE" } else { "FALSE" }.into(),
        (_, Some(s)) => format!("'{}'", s.replace('\'', "''")),
    }
}

/// `INSERT` of canonical rows (one multi-row statement).
pub fn insert_sql(table: &str, rows: &[(i64, Canon)]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(_, r)| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, v)| literal(COLUMNS[i], v))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        COLUMNS.join(", "),
        values.join(", ")
    )
}

/// What a person types into the Sheet for a canonical value (USER_ENTERED parsing: text that
/// looks like a number gets a leading apostrophe, dates as ISO text, booleans as TRUE/FALSE).
pub fn typed(column: &str, v: &Option<String>) -> Json {
    match (column, v) {
        (_, None) => json!(""),
        ("name" | "code", Some(s)) => json!(format!("'{s}")),
        ("active", Some(s)) => json!(s.to_ascii_uppercase()),
        (_, Some(s)) => json!(s),
    }
}

/// One mapping of the test: a table and a spreadsheet.
pub struct MappingSpec {
    pub name: String,
    pub table: String,
    pub spreadsheet_id: String,
    /// Extra TOML lines in the `[[mapping]]` table (resolvers, guard, ...).
    pub extra: String,
}

/// A running (or stopped) daemon process.
pub struct Daemon {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
}

impl Daemon {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (up to [`DEADLINE`]) until its log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        self.wait_for_log_within(needle, DEADLINE).await;
    }

    /// Waits up to `limit` until its log contains `needle`; how long it took.
    pub async fn wait_for_log_within(&self, needle: &str, limit: Duration) -> Duration {
        wait_within(&format!("the daemon logs {needle:?}"), limit, || async {
            let log = self.log();
            match log.contains(needle) {
                true => Ok(()),
                false => Err(format!("its log so far:\n{log}")),
            }
        })
        .await
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    fn dump(&self) {
        eprintln!("---- daemon stdout ----");
        for l in self.stdout() {
            eprintln!("{l}");
        }
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "---- daemon log (last 80 of {} lines, {}) ----",
            lines.len(),
            self.stderr_path.display()
        );
        for l in &lines[lines.len().saturating_sub(80)..] {
            eprintln!("{l}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            self.dump();
        }
    }
}

/// A daemon started beside another, not yet listening (see [`World::spawn`]).
pub struct Standby {
    pub daemon: Daemon,
    /// The port it listens on.
    pub port: u16,
    ready: std::sync::mpsc::Receiver<()>,
}

impl Standby {
    /// Its log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// The daemon binary: `SHEETSYNC_BIN` when set (an installed `sheetsync`, say), else the one
/// cargo built for these tests.
pub fn daemon_binary() -> PathBuf {
    let bin = std::env::var_os("SHEETSYNC_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_sheetsync")),
        PathBuf::from,
    );
    assert!(bin.is_file(), "the daemon {} is not a file", bin.display());
    bin
}

fn base_command(cfg: &Path) -> Command {
    limited_command(cfg, None)
}

/// The daemon's command line; with `fd_limit`, run under `ulimit -n <fd_limit>`.
fn limited_command(cfg: &Path, fd_limit: Option<u32>) -> Command {
    let mut cmd = match fd_limit {
        None => Command::new(daemon_binary()),
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(daemon_binary());
            sh
        }
    };
    cmd.arg("-c").arg(cfg);
    // The environment must not override the test's configuration.
    for (k, _) in std::env::vars() {
        if k.starts_with("SHEETSYNC_") || k == "GOOGLE_APPLICATION_CREDENTIALS" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// What a CLI command printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    /// Shown in failure messages (through `Debug`).
    #[allow(dead_code)]
    pub stderr: String,
}

/// One test's world: the emulator, a database, the configuration and the daemon.
pub struct World {
    pub backend: Backend,
    pub emu: EmulatorHandle,
    pub db: Db,
    pub dir: PathBuf,
    pub port: u16,
    pub secret: String,
    /// The admin API's token (`server.admin_token`), which the CLI finds in the configuration.
    pub admin_token: String,
    /// Extra TOML lines in `[server]`.
    pub server_extra: String,
    /// Extra TOML lines in `[log]`.
    pub log_extra: String,
    /// Run the daemon under this limit of open files.
    pub fd_limit: Option<u32>,
    pub mappings: Vec<MappingSpec>,
    pub cfg_path: PathBuf,
    /// The time zone of the spreadsheets created from now on (default: the emulator's).
    pub time_zone: Option<String>,
    /// The daemon's `log.format` (default: human).
    pub log_format: Option<&'static str>,
    /// `sheets.change_detection`: `webhook` (the default here: each spreadsheet gets the
    /// emulator's webhook trigger), `journal` or `polling`.
    pub change_detection: &'static str,
    daemon: Option<Daemon>,
    starts: usize,
}

impl World {
    pub async fn new(backend: Backend, test: &str) -> World {
        let dir =
            std::env::temp_dir().join(format!("sheetsync-e2e-{test}-{backend:?}-{}", random_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        let emu = EmulatorHandle::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let db = Db::create(backend, &dir).await;
        let port = free_port();
        World {
            backend,
            emu,
            db,
            cfg_path: dir.join("sheetsync.toml"),
            dir,
            port,
            secret: format!("secret-{}", random_hex()),
            admin_token: format!("admin-{}", random_hex()),
            server_extra: String::new(),
            log_extra: String::new(),
            fd_limit: None,
            mappings: Vec::new(),
            time_zone: None,
            log_format: None,
            change_detection: "webhook",
            daemon: None,
            starts: 0,
        }
    }

    /// Creates a test table (plain SQL) with `rows`, a spreadsheet with the webhook trigger,
    /// and adds the mapping; returns its index.
    pub async fn add_mapping(&mut self, name: &str, rows: &[(i64, Canon)], extra: &str) -> usize {
        let table = format!("t_{name}");
        let mut sql = vec![self.db.create_table_sql(&table)];
        if !rows.is_empty() {
            sql.push(insert_sql(&table, rows));
        }
        self.add_mapping_sql(name, &sql, extra).await
    }

    /// Like [`World::add_mapping`] for a table of the test's own: `sql` creates and fills the
    /// table `t_<name>`.
    pub async fn add_mapping_sql(&mut self, name: &str, sql: &[String], extra: &str) -> usize {
        let table = format!("t_{name}");
        for statement in sql {
            self.db.exec(statement).await;
        }
        let mut props = serde_json::json!({ "title": name });
        if let Some(tz) = &self.time_zone {
            props["timeZone"] = tz.as_str().into();
        }
        let spreadsheet_id = self
            .emu
            .create_spreadsheet_from(&serde_json::json!({ "properties": props }))
            .expect("spreadsheet");
        if self.change_detection == "journal" {
            let journal = JournalSpec {
                sheet_id: Some(0),
                ..JournalSpec::default()
            };
            self.emu
                .add_journal_trigger(&spreadsheet_id, journal)
                .expect("journal trigger");
        }
        if self.change_detection == "webhook" {
            self.emu
                .add_trigger(
                    &spreadsheet_id,
                    TriggerSpec {
                        url: format!("http://127.0.0.1:{}/webhook", self.port),
                        secret: self.secret.clone(),
                        sheet_id: Some(0),
                    },
                )
                .expect("trigger");
        }
        self.mappings.push(MappingSpec {
            name: name.into(),
            table,
            spreadsheet_id,
            extra: extra.into(),
        });
        self.mappings.len() - 1
    }

    pub fn config_text(&self) -> String {
        let mut s = format!(
            "[sheets]\nbase_url = \"{}\"\nreads_per_minute = 6000\nwrites_per_minute = 6000\n\
             change_detection = \"{}\"\n\n\
             [server]\nlisten = \"127.0.0.1:{}\"\n{}{}{}\n\
             [log]\nfilter = \"{}\"\n{}{}",
            self.emu.base_url(),
            self.change_detection,
            self.port,
            // Without a secret the webhook is off.
            match self.secret.as_str() {
                "" => String::new(),
                s => format!("webhook_secret = \"{s}\"\n"),
            },
            // Without a token the admin API is off, unless `server_extra` gives it a listener.
            match self.admin_token.as_str() {
                "" => String::new(),
                t => format!("admin_token = \"{t}\"\n"),
            },
            self.server_extra,
            // The daemon's log filter (its RUST_LOG is cleared): e.g. `info,sheetsync_core=debug`.
            std::env::var("SHEETSYNC_E2E_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
            self.log_format
                .map_or(String::new(), |f| format!("format = \"{f}\"\n")),
            self.log_extra,
        );
        for m in &self.mappings {
            s.push_str(&format!(
                "\n[[mapping]]\nname = \"{}\"\nspreadsheet_id = \"{}\"\nsheet_id = 0\n\
                 database_url = \"{}\"\ntable = \"{}\"\nkey = [\"id\"]\nkeys = \"require\"\n{}\n",
                m.name, m.spreadsheet_id, self.db.url, m.table, m.extra
            ));
            if !m.extra.contains("timing =") {
                s.push_str("timing = { poll_interval_ms = 200, full_scan_interval_ms = 1000 }\n");
            }
        }
        s
    }

    pub fn write_config(&self) {
        std::fs::write(&self.cfg_path, self.config_text()).unwrap();
    }

    /// Writes the configuration, starts `sheetsync -c <file> run` and waits for
    /// `listening on http://...`.
    pub async fn start(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        self.write_config();
        let standby = self.spawn(None);
        self.promote(standby, DEADLINE).await;
        // The daemon listens at once; wait until it runs its mappings (alone, it runs all).
        // After a kill -9 the killed process counts as alive until its heartbeat expires: the
        // mappings beyond this replica's share then start later, as takeovers.
        let n = self.mappings.len();
        let daemon = self.daemon.as_ref().expect("promoted");
        wait_until("the daemon runs its mappings", || async {
            let log = daemon.log();
            let running = log.matches("running the mapping here").count()
                + log.matches("took the mapping over").count();
            match running >= n {
                true => Ok(()),
                false => Err(format!("its log so far:\n{log}")),
            }
        })
        .await;
    }

    /// Starts one more `sheetsync -c <file> run` beside the running daemon (a replica on its
    /// own port), without waiting for it: it listens only once it took its mappings over.
    pub fn spawn_replica(&mut self) -> Standby {
        self.spawn(Some(free_port()))
    }

    fn spawn(&mut self, port: Option<u16>) -> Standby {
        self.starts += 1;
        let stderr_path = self.dir.join(format!("daemon-{}.log", self.starts));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = limited_command(&self.cfg_path, self.fd_limit);
        if let Some(port) = port {
            cmd.env("SHEETSYNC_LISTEN", format!("127.0.0.1:{port}"));
        }
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn the daemon");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Human: `listening on http://…`; JSON: `{"event":"listening","url":"http://…"}`.
                if line.starts_with("listening on http://")
                    || line.starts_with(r#"{"event":"listening","url":"http://"#)
                {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let daemon = Daemon {
            child,
            stdout: lines,
            stderr_path,
        };
        Standby {
            daemon,
            port: port.unwrap_or(self.port),
            ready: rx,
        }
    }

    /// Waits up to `limit` for `standby` to listen, then makes it the world's daemon.
    pub async fn promote(&mut self, standby: Standby, limit: Duration) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let Standby {
            mut daemon, ready, ..
        } = standby;
        let ready = tokio::task::spawn_blocking(move || ready.recv_timeout(limit))
            .await
            .unwrap();
        if ready.is_err() {
            let status = daemon.child.try_wait();
            daemon.dump();
            panic!("the daemon did not print `listening on http://...` within {limit:?} (exit status: {status:?})");
        }
        self.daemon = Some(daemon);
    }

    /// `kill -9` of the daemon at rest: once every mapping has finished a cycle since the call.
    /// A cycle writes both sides before it saves its state, so sides that agree may not be
    /// saved yet; a test that edits while the daemon is down, and expects the merge against
    /// the state it saw, kills it here, not in the middle of a cycle.
    pub async fn kill9_at_rest(&mut self) {
        for m in 0..self.mappings.len() {
            self.cycles_more(m, 1).await;
        }
        self.kill9();
    }

    /// `kill -9` of the daemon.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill9();
        }
    }

    /// The running daemon, taken out of the world (which then has none).
    pub fn take_daemon(&mut self) -> Option<Daemon> {
        self.daemon.take()
    }

    pub fn daemon_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(|d| d.is_running())
    }

    /// Runs `sheetsync -c <cfg> <args>` to completion.
    pub async fn cli(&self, cfg: &Path, args: &[&str]) -> Output {
        let mut cmd = base_command(cfg);
        cmd.args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("run the sheetsync CLI");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `sheetsync -c <cfg> <args>` and waits up to `limit` for it to exit; a command still
    /// running then is killed and reported as `code: None`.
    pub async fn cli_within(&self, limit: Duration, args: &[&str]) -> Output {
        let mut cmd = base_command(&self.cfg_path);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run the sheetsync CLI");
        let start = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Output {
            code,
            stdout,
            stderr,
        }
    }

    /// `sheetsync deletes list --mapping <m>`: the mapping's pending deletes, as JSON.
    pub async fn pending_deletes(&self, m: usize) -> Result<Vec<Json>, String> {
        let out = self
            .cli(
                &self.cfg_path,
                &[
                    "deletes",
                    "list",
                    "--json",
                    "--mapping",
                    &self.mappings[m].name,
                ],
            )
            .await;
        if out.code != Some(0) {
            return Err(format!("deletes list failed: {out:?}"));
        }
        let v: Json =
            serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stdout))?;
        Ok(v[0]["pending_deletes"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `sheetsync conflicts list --mapping <m>` as JSON.
    pub async fn conflicts_list(&self, m: usize) -> Result<Json, String> {
        let out = self
            .cli(
                &self.cfg_path,
                &[
                    "conflicts",
                    "list",
                    "--json",
                    "--mapping",
                    &self.mappings[m].name,
                ],
            )
            .await;
        if out.code != Some(0) {
            return Err(format!("conflicts list failed: {out:?}"));
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stdout))
    }

    /// `GET path` on the daemon's listener (with the admin token).
    pub async fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        self.http_get_on(self.port, path).await
    }

    /// `GET path` on the listener at `port` (a replica's), with the admin token.
    pub async fn http_get_on(&self, port: u16, path: &str) -> Result<(u16, String), String> {
        let path = path.to_string();
        let auth = match self.admin_token.as_str() {
            "" => String::new(),
            t => format!("Authorization: Bearer {t}\r\n"),
        };
        tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
            let mut s =
                std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
            )
            .map_err(|e| e.to_string())?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
            let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not HTTP: {head}"))?;
            Ok((status, body.to_string()))
        })
        .await
        .unwrap()
    }

    /// The sum of a metric's samples whose labels contain `label` (e.g. `mapping="items"`).
    pub async fn metric(&self, name: &str, label: &str) -> Result<f64, String> {
        let (status, body) = self.http_get("/metrics").await?;
        if status != 200 {
            return Err(format!("/metrics answered {status}"));
        }
        let mut sum = 0.0;
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix(name) {
                if rest.starts_with('{') && rest.contains(label) {
                    let v = rest.rsplit(' ').next().unwrap_or("");
                    sum += v.parse::<f64>().map_err(|e| format!("{line}: {e}"))?;
                }
            }
        }
        Ok(sum)
    }

    /// Checks that mapping `m` is quiet once converged: over the next cycles (a full read of
    /// both sides among them) it writes nothing, so nothing echoes or ping-pongs.
    pub async fn assert_quiet(&self, m: usize) {
        let label = format!("mapping=\"{}\"", self.mappings[m].name);
        // The cycle that made the sides converge may not have reported its writes yet: count
        // from the end of the next one.
        self.cycles_more(m, 2).await;
        let writes = self.metric("sheetsync_writes_total", &label).await.unwrap();
        self.cycles_more(m, 8).await;
        let after = self.metric("sheetsync_writes_total", &label).await.unwrap();
        assert_eq!(
            after, writes,
            "mapping {} keeps writing after it converged",
            self.mappings[m].name
        );
    }

    /// Waits until mapping `m` has finished `n` more cycles than it had now.
    pub async fn cycles_more(&self, m: usize, n: u32) {
        let label = format!("mapping=\"{}\"", self.mappings[m].name);
        let first = self.metric("sheetsync_cycles_total", &label).await.unwrap();
        wait_until(&format!("{n} more cycles"), || async {
            let now = self.metric("sheetsync_cycles_total", &label).await?;
            if now >= first + f64::from(n) {
                Ok(())
            } else {
                Err(format!("{now} cycles"))
            }
        })
        .await;
    }

    // ---- the Sheet ----

    /// Waits until mapping `m`'s tab has `n` rows, the header among them.
    pub async fn wait_for_tab_rows(&self, m: usize, n: usize, what: &str) {
        wait_until(what, || async {
            match self.sheet_values(m).len() {
                got if got == n => Ok(()),
                got => Err(format!("{got} rows in the tab, not {n}")),
            }
        })
        .await;
    }

    /// The tab's values as the API returns them (unformatted), header first.
    pub fn sheet_values(&self, m: usize) -> Vec<Vec<Json>> {
        let v = self
            .emu
            .read_values(&self.mappings[m].spreadsheet_id, "Sheet1")
            .expect("read the sheet");
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The data rows of the Sheet: (1-based row number, id, canonical row). Rows without an
    /// id are reported as errors.
    pub fn sheet_list(&self, m: usize) -> Result<Vec<(u32, i64, Canon)>, String> {
        let values = self.sheet_values(m);
        let Some(header) = values.first() else {
            return Ok(Vec::new());
        };
        let pos: Vec<Option<usize>> = COLUMNS
            .iter()
            .map(|c| header.iter().position(|h| h.as_str() == Some(c)))
            .collect();
        if pos.iter().any(Option::is_none) {
            return Err(format!("sheet header {header:?} lacks a column"));
        }
        let mut out = Vec::new();
        for (i, cells) in values.iter().enumerate().skip(1) {
            let row_no = i as u32 + 1;
            if cells.iter().all(|c| c == "" || c.is_null()) {
                continue;
            }
            let canon: Canon = COLUMNS
                .iter()
                .zip(&pos)
                .map(|(c, p)| cell_text(c, cells.get(p.unwrap()).unwrap_or(&Json::Null)))
                .collect();
            let id = canon[0]
                .as_deref()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| format!("sheet row {row_no} has no integer id: {cells:?}"))?;
            out.push((row_no, id, canon));
        }
        Ok(out)
    }

    /// The Sheet's rows by id; a key present twice is an error.
    pub fn sheet_rows(&self, m: usize) -> Result<BTreeMap<i64, Canon>, String> {
        let mut out = BTreeMap::new();
        for (row_no, id, canon) in self.sheet_list(m)? {
            if out.insert(id, canon).is_some() {
                return Err(format!("sheet: id {id} twice (again at row {row_no})"));
            }
        }
        Ok(out)
    }

    /// The 1-based Sheet row holding `id`.
    pub fn sheet_row_of(&self, m: usize, id: i64) -> u32 {
        self.sheet_list(m)
            .unwrap()
            .into_iter()
            .find(|(_, i, _)| *i == id)
            .unwrap_or_else(|| panic!("id {id} is not in the sheet"))
            .0
    }

    fn column_letter(&self, m: usize, column: &str) -> String {
        let values = self.sheet_values(m);
        let i = values
            .first()
            .and_then(|h| h.iter().position(|c| c.as_str() == Some(column)))
            .unwrap_or_else(|| panic!("the sheet has no column {column}"));
        ((b'A' + i as u8) as char).to_string()
    }

    /// A person types `value` into `column` of the row holding `id`.
    pub fn type_cell(&self, m: usize, id: i64, column: &str, value: Json) {
        let cell = format!(
            "Sheet1!{}{}",
            self.column_letter(m, column),
            self.sheet_row_of(m, id)
        );
        self.emu
            .set_cells(&self.mappings[m].spreadsheet_id, &cell, vec![vec![value]])
            .expect("person edit");
    }

    /// A client of another program (its own credentials): its writes fire no trigger.
    pub async fn other_program(&self) -> sheetsync::gsheets::SheetsClient {
        let mut cfg = sheetsync::gsheets::ClientConfig::emulator(&self.emu.base_url());
        cfg.auth = sheetsync::gsheets::Auth::Bearer("another-program".into());
        sheetsync::gsheets::SheetsClient::new(cfg)
            .await
            .expect("client")
    }

    /// Another program writes `value` into the cell through the Sheets API.
    pub async fn api_write_cell(&self, m: usize, id: i64, column: &str, value: Json) {
        let range = format!(
            "Sheet1!{}{}",
            self.column_letter(m, column),
            self.sheet_row_of(m, id)
        );
        let data = vec![sheetsync::gsheets::ValueRange {
            range: Some(range),
            major_dimension: Some("ROWS".into()),
            values: Some(vec![vec![value]]),
        }];
        self.other_program()
            .await
            .batch_update_values(&self.mappings[m].spreadsheet_id, data)
            .await
            .expect("API write");
    }

    /// The running daemon.
    pub fn running(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// A person types whole new rows below the last one.
    pub fn type_rows(&self, m: usize, rows: &[(i64, Canon)]) {
        let values = self.sheet_values(m);
        let header: Vec<String> = values[0]
            .iter()
            .map(|h| h.as_str().unwrap_or("").to_string())
            .collect();
        let first = values.len() as u32 + 1;
        let block: Vec<Vec<Json>> = rows
            .iter()
            .map(|(_, r)| {
                header
                    .iter()
                    .map(|h| match COLUMNS.iter().position(|c| c == h) {
                        Some(i) => typed(h, &r[i]),
                        None => json!(""),
                    })
                    .collect()
            })
            .collect();
        self.emu
            .set_cells(
                &self.mappings[m].spreadsheet_id,
                &format!("Sheet1!A{first}"),
                block,
            )
            .expect("person paste");
    }

    /// A person deletes the row holding `id`.
    pub fn delete_sheet_row(&self, m: usize, id: i64) {
        let r = self.sheet_row_of(m, id);
        self.emu
            .delete_rows(&self.mappings[m].spreadsheet_id, "Sheet1", r, 1)
            .expect("person delete");
    }

    // ---- convergence ----

    /// Polls until both sides of mapping `m` hold exactly `expected`.
    pub async fn converge(&self, m: usize, expected: &BTreeMap<i64, Canon>) {
        let table = self.mappings[m].table.clone();
        wait_until(
            &format!("mapping {} converges", self.mappings[m].name),
            || async {
                let db = self.db.try_rows(&table).await?;
                let sheet = self.sheet_rows(m)?;
                let mut problems = Vec::new();
                if &db != expected {
                    problems.push(format!("database differs: {}", diff(expected, &db)));
                }
                if &sheet != expected {
                    problems.push(format!("sheet differs: {}", diff(expected, &sheet)));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            },
        )
        .await;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The daemon first (its Drop prints its log when the test failed), then the database.
        self.daemon.take();
        self.db.drop_database();
        if std::thread::panicking() || std::env::var_os("SHEETSYNC_E2E_KEEP").is_some() {
            eprintln!("test files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A cell as canonical text: numbers in shortest form, dates from serial numbers.
/// A Sheet cell's canonical text form (see [`Canon`]).
pub fn cell_text(column: &str, cell: &Json) -> Option<String> {
    let s = match cell {
        Json::Null => return None,
        Json::String(s) if s.is_empty() => return None,
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => {
            if column == "due" {
                let days = n.as_f64().unwrap_or(f64::NAN);
                if days.fract() == 0.0 {
                    let d = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap()
                        + chrono::Duration::days(days as i64);
                    return Some(d.format("%Y-%m-%d").to_string());
                }
                days.to_string()
            } else if let Some(i) = n.as_i64() {
                i.to_string()
            } else {
                format!("{}", n.as_f64().unwrap_or(f64::NAN))
            }
        }
        other => other.to_string(),
    };
    Some(normalize(column, &s))
}

/// A short description of how `got` differs from `want`.
pub fn diff(want: &BTreeMap<i64, Canon>, got: &BTreeMap<i64, Canon>) -> String {
    let mut out = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            None => out.push(format!("{k} missing")),
            Some(g) if g != w => out.push(format!("{k}: {g:?} instead of {w:?}")),
            _ => {}
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            out.push(format!("{k} unexpected"));
        }
    }
    let n = out.len();
    out.truncate(6);
    if n > 6 {
        out.push(format!("... {} more", n - 6));
    }
    out.join(", ")
}

/// Polls `check` every 100 ms until it succeeds; fails the test with its last error after
/// [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    wait_within(what, DEADLINE, check).await;
}

/// Polls `check` until it passes, failing the test after `limit`; returns how long it took.
pub async fn wait_within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let err = match check().await {
            Ok(()) => return start.elapsed(),
            Err(e) => e,
        };
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting until {what}: {err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Canonical rows by id.
pub fn rows_map(rows: &[(i64, Canon)]) -> BTreeMap<i64, Canon> {
    rows.iter().cloned().collect()
}
