//! The SQLite adapter (SQLite 3.35 or later; the bundled library is used).

mod capture;
mod introspect;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sheetsync_core::{
    ChangeBatch, ColumnType, Cursor, Error, ErrorKind, Observation, Result, RowKey, Value,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Connection, Row as _, Sqlite, SqlitePool, TypeInfo, ValueRef};

use crate::adapter::{impl_table, Core, Feed, Writes};
use crate::codec::{from_float, from_int, parse_text};
use crate::common::{wake, wake_channel, Common, SqlOptions};
use crate::dialect::{sqlite_busy_timeout_sql, Dialect, WaitSql};
use crate::driver::{impl_plumbing, Driver};
use crate::error::db_error;
use crate::store_sql::{LeaseSql, StateSql};
use crate::table::TableInfo;

/// A SQLite table as one side of a sheetsync mapping.
///
/// Declared column types decide the sheetsync type (`INTEGER`, `BOOLEAN`, `DECIMAL`, `REAL`,
/// `TEXT`, `DATE`, `TIME`, `DATETIME`, `TIMESTAMPTZ`, `UUID`, `JSON`, `BLOB`, ...). SQLite gives
/// `DECIMAL`/`NUMERIC` columns numeric affinity, which stores long decimals as doubles; declare
/// exact decimal columns as `DECIMAL_TEXT` (text affinity) to keep every digit.
/// [`SqliteTable::warnings`] names the columns where this happens.
pub struct SqliteTable {
    core: Core<Sqlite>,
}

impl SqliteTable {
    /// Opens the database file at `path` (created if missing, in WAL mode) and the table
    /// `table`.
    pub async fn connect(path: &str, table: &str) -> Result<Self> {
        let pool = connect_pool(path).await?;
        Self::open(pool, table, SqlOptions::default()).await
    }

    /// Opens `table` through `pool`, reading its columns, declared types and primary key.
    pub async fn open(pool: SqlitePool, table: &str, options: SqlOptions) -> Result<Self> {
        let info = introspect::introspect(&pool, table).await?;
        let mut common = Common::new(Sqlite::PREFIX, info, options)?;
        common.warnings = introspect::warnings(&common.info);
        for w in &common.warnings {
            tracing::warn!(table = %common.name, "{w}");
        }
        Ok(SqliteTable {
            core: Core::new(common, pool, false),
        })
    }

    /// What SQLite's typing does to this table's values that sheetsync cannot undo, one
    /// sentence per column: a `DECIMAL`/`NUMERIC` column (numeric affinity) stores a long
    /// decimal as a double, a column declared `STRING` stores `'007'` as 7. Each names the
    /// column and the declaration that keeps values exact. Empty when there is nothing to say.
    pub fn warnings(&self) -> &[String] {
        &self.core.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.core.pool
    }

    /// Installs change capture for this table: the `_sheetsync_*` tables and three triggers.
    /// Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(self.pool(), self.core.info()).await
    }

    /// Removes this table's triggers and change-log entries, and the `_sheetsync_*` capture
    /// tables once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(self.pool(), self.core.info()).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(self.pool(), &self.core.info().table).await
    }
}

/// A pool for the SQLite file at `path` (or a `sqlite:` URL): created if missing, WAL journal,
/// a 10 s busy timeout, foreign keys on.
pub(crate) async fn connect_pool(path: &str) -> Result<SqlitePool> {
    let opts = if path.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(path).map_err(|e| db_error(e, "connect"))?
    } else {
        SqliteConnectOptions::new().filename(path)
    };
    let opts = opts
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .map_err(|e| db_error(e, "connect"))
}

/// A value of `ty` from whatever SQLite holds.
fn decode_value(ty: ColumnType, row: &SqliteRow, i: usize) -> std::result::Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let storage = raw.type_info().name().to_string();
    let e = |e: sqlx::Error| e.to_string();
    match storage.as_str() {
        "INTEGER" => from_int(ty, row.try_get_unchecked::<i64, _>(i).map_err(e)?),
        "REAL" => from_float(ty, row.try_get_unchecked::<f64, _>(i).map_err(e)?),
        "BLOB" => {
            let b = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(e)?;
            match ty {
                ColumnType::Bytes => Ok(Value::Bytes(b)),
                ColumnType::Uuid if b.len() == 16 => Ok(Value::Uuid(
                    uuid::Uuid::from_slice(&b).map_err(|e| e.to_string())?,
                )),
                _ => Err(format!("a blob of {} bytes is not a valid {ty}", b.len())),
            }
        }
        _ => parse_text(ty, &row.try_get_unchecked::<String, _>(i).map_err(e)?),
    }
}

/// A key value from the JSON the change-log trigger recorded.
fn key_value(ty: ColumnType, v: &serde_json::Value) -> std::result::Result<Value, String> {
    match v {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => from_int(ty, i),
            None => from_float(ty, n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => parse_text(ty, s),
        other => Err(format!("unexpected change-log key value {other}")),
    }
}

static STATE: StateSql = StateSql {
    mappings: "_sheetsync_state_mappings",
    bases: "_sheetsync_state_bases",
    intents: "_sheetsync_state_intents",
    leases: "_sheetsync_state_leases",
    replicas: "_sheetsync_state_replicas",
    now_ms: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)", // (unused: no heartbeats)
    dollar: false,
    install: &[
        "CREATE TABLE IF NOT EXISTS _sheetsync_state_mappings (mapping TEXT PRIMARY KEY, doc TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS _sheetsync_state_bases (
            mapping TEXT NOT NULL, kh BLOB NOT NULL, k BLOB NOT NULL, row_data BLOB NOT NULL,
            tombstone INTEGER NOT NULL, synced_at INTEGER NOT NULL, PRIMARY KEY (mapping, kh))",
        "CREATE TABLE IF NOT EXISTS _sheetsync_state_intents (
            mapping TEXT NOT NULL, kh BLOB NOT NULL, k BLOB NOT NULL, intent BLOB NOT NULL,
            PRIMARY KEY (mapping, kh))",
        "CREATE TABLE IF NOT EXISTS _sheetsync_state_leases (
            mapping TEXT PRIMARY KEY, epoch INTEGER NOT NULL, owner TEXT NOT NULL, since INTEGER NOT NULL)",
    ],
    uninstall: &[
        "DROP TABLE IF EXISTS _sheetsync_state_mappings",
        "DROP TABLE IF EXISTS _sheetsync_state_bases",
        "DROP TABLE IF EXISTS _sheetsync_state_intents",
        "DROP TABLE IF EXISTS _sheetsync_state_leases",
        "DROP TABLE IF EXISTS _sheetsync_state_replicas",
    ],
    ensure_doc: "INSERT INTO _sheetsync_state_mappings (mapping, doc) VALUES (?, '{}')
        ON CONFLICT (mapping) DO NOTHING",
    // BEGIN IMMEDIATE: one writer at a time.
    lock_doc: "",
    upsert_bases: "ON CONFLICT (mapping, kh) DO UPDATE SET k = excluded.k, row_data = excluded.row_data,
        tombstone = excluded.tombstone, synced_at = excluded.synced_at",
    load_begin: "BEGIN",
    lease: LeaseSql {
        // A file lock lives as long as its process, paused or not (one host: the operator
        // sees both processes).
        ttl: None,
        // A file lock beside the database (one host): see `crate::lease`.
        try_lock: None,
        take: "INSERT INTO _sheetsync_state_leases (mapping, epoch, owner, since) VALUES (?, 1, ?, ?)
            ON CONFLICT (mapping) DO UPDATE SET epoch = epoch + 1, owner = excluded.owner,
            since = excluded.since",
        // No heartbeats: every commit to the file wakes each engine on it (`data_version`),
        // so one a second would run a needless cycle a second. Replicas on one SQLite
        // database stand by instead of sharing (see `crate::replicas`).
        beat_upsert: None,
    },
};

#[async_trait]
impl Driver for Sqlite {
    const PREFIX: &'static str = "sqlite";
    const DIALECT: Dialect = Dialect::Sqlite;
    const MAX_PARAMS: usize = 32_766;
    /// One writer at a time: the origin row the transaction writes is invisible to every other
    /// connection until it is deleted again, just before commit.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    impl_plumbing!();

    fn decode(info: &TableInfo, row: &SqliteRow, i: usize) -> std::result::Result<Value, String> {
        decode_value(info.columns[i].ty, row, i)
    }

    /// The wait for the write lock (another connection's write transaction) is the busy
    /// timeout, a setting of the connection: ours for this write, the pool's afterwards.
    async fn prepare_session(
        conn: &mut sqlx::SqliteConnection,
        waits: &WaitSql,
    ) -> sqlx::Result<Option<String>> {
        let previous: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        Self::raw(conn, waits.set.clone()).await?;
        Ok(Some(sqlite_busy_timeout_sql(previous)))
    }

    async fn tag(
        conn: &mut sqlx::SqliteConnection,
        _waits: &WaitSql,
        origin: Option<&str>,
    ) -> sqlx::Result<bool> {
        let Some(origin) = origin else {
            return Ok(false);
        };
        let captured: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_ctx')",
        )
        .fetch_one(&mut *conn)
        .await?;
        if captured {
            sqlx::query(
                "INSERT INTO _sheetsync_ctx (name, value) VALUES ('origin', ?)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(origin)
            .execute(&mut *conn)
            .await?;
        }
        Ok(captured)
    }

    fn untag(tagged: bool) -> Option<&'static str> {
        tagged.then_some("DELETE FROM _sheetsync_ctx WHERE name = 'origin'")
    }

    fn state() -> &'static StateSql {
        &STATE
    }

    fn database_file(pool: &sqlx::Pool<Sqlite>) -> Option<std::path::PathBuf> {
        let options = pool.connect_options();
        let name = options.get_filename();
        // sqlx names an in-memory database `:memory:` or `file:sqlx-in-memory-N`.
        let in_memory = name.as_os_str().is_empty()
            || name == std::path::Path::new(":memory:")
            || name.to_string_lossy().starts_with("file:");
        (!in_memory).then(|| name.to_path_buf())
    }
}

/// One writer at a time: the default writes hold.
impl Writes for Sqlite {}

/// The change feed; [`impl_table!`] makes the rest of the [`Source`](sheetsync_core::Source).
#[async_trait]
impl Feed for SqliteTable {
    async fn installed(&self) -> Result<bool> {
        self.is_installed().await
    }

    async fn position(&self) -> Result<Cursor> {
        let (epoch, id) = log_position(self.pool()).await?;
        Ok(Cursor(format!("sqlite:{epoch}:{id}")))
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let (since_epoch, since_id) = parse_cursor(&since.0)?;
        let limit = limit.max(1);
        {
            let (epoch, last) = log_position(&self.core.pool).await?;
            if epoch != since_epoch || since_id > last {
                // The change log was created anew since this cursor (capture reinstalled), or is
                // behind it (an older copy of the file): its ids mean nothing any more. Start
                // over, and have the engine read the table in full.
                tracing::warn!(table = %self.core.common.name, cursor = %since.0,
                    "change cursor belongs to another change log; reading from the start");
                self.core.common.request_full_scan();
                return Ok(ChangeBatch {
                    changes: Vec::new(),
                    cursor: Cursor(format!("sqlite:{epoch}:0")),
                    more: true,
                });
            }
        }
        let entries = sqlx::query(
            "SELECT id, pk, origin, at FROM _sheetsync_changelog WHERE tbl = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(&self.core.common.info.table)
        .bind(since_id)
        .bind(limit as i64)
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| db_error(e, "changes"))?;
        let mut cursor = since_id;
        let mut keys = Vec::with_capacity(entries.len());
        let mut invalid = Vec::new();
        for e in &entries {
            cursor = e.get("id");
            let origin: Option<String> = e.get("origin");
            if self.core.common.is_echo(origin.as_deref()) {
                continue;
            }
            let pk: String = e.get("pk");
            let at: Option<String> = e.get("at");
            let at = at
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|d| d.with_timezone(&Utc));
            let parsed: std::result::Result<RowKey, String> =
                serde_json::from_str::<Vec<serde_json::Value>>(&pk)
                    .map_err(|e| format!("change-log key {pk:?} is not a JSON array: {e}"))
                    .and_then(|vals| {
                        let info = &self.core.common.info;
                        if vals.len() != info.key.len() {
                            return Err(format!("change-log key {pk:?} has {} values", vals.len()));
                        }
                        let vals = vals
                            .iter()
                            .zip(&info.key)
                            .map(|(v, &i)| key_value(info.columns[i].ty, v))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        Ok(RowKey::from_values(&vals))
                    });
            match parsed {
                Ok(k) => keys.push((k, at)),
                Err(reason) => invalid.push(Observation::new(sheetsync_core::Change::Invalid(
                    sheetsync_core::InvalidRow {
                        key: None,
                        locator: Some(format!(
                            "{} change log entry {cursor}",
                            self.core.common.name
                        )),
                        reason,
                    },
                ))),
            }
        }
        Ok(ChangeBatch {
            changes: self.core.changed(keys, invalid).await?,
            cursor: Cursor(format!("sqlite:{since_epoch}:{cursor}")),
            more: entries.len() >= limit,
        })
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let (_, id) = parse_cursor(&cursor.0)?;
        let err = |e| db_error(e, "ack");
        let mut tx = self
            .core
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO _sheetsync_consumers (tbl, consumer, id) VALUES (?, ?, ?)
             ON CONFLICT (tbl, consumer) DO UPDATE SET id = excluded.id",
        )
        .bind(&self.core.common.info.table)
        .bind(&self.core.common.options.consumer)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "DELETE FROM _sheetsync_changelog WHERE tbl = ?1
             AND id <= (SELECT min(id) FROM _sheetsync_consumers WHERE tbl = ?1)",
        )
        .bind(&self.core.common.info.table)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        let (tx, stream) = wake_channel();
        let opts = (*self.core.pool.connect_options()).clone();
        let interval = self
            .core
            .common
            .options
            .poll_interval
            .unwrap_or(Duration::from_millis(250));
        tokio::spawn(async move {
            // `PRAGMA data_version` changes when another connection commits: poll it on a
            // connection of our own.
            let mut conn = None;
            let mut last: Option<i64> = None;
            while !tx.is_closed() {
                if conn.is_none() {
                    conn = sqlx::SqliteConnection::connect_with(&opts).await.ok();
                }
                if let Some(c) = conn.as_mut() {
                    match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                        .fetch_one(&mut *c)
                        .await
                    {
                        Ok(v) => {
                            // The first reading is a catch-up: writes before it were not seen.
                            if last != Some(v) {
                                wake(&tx);
                            }
                            last = Some(v);
                        }
                        Err(_) => {
                            conn = None;
                            wake(&tx);
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Some(stream)
    }
}

/// `sqlite:<change-log epoch>:<last id read>`.
fn parse_cursor(s: &str) -> Result<(String, i64)> {
    s.strip_prefix("sqlite:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(e, n)| Some((e.to_string(), n.parse().ok()?)))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidData,
                format!("{s:?} is not a SQLite change cursor"),
            )
        })
}

/// The change log's epoch (set when it is created) and its last id.
async fn log_position(pool: &SqlitePool) -> Result<(String, i64)> {
    let row = sqlx::query(
        "SELECT COALESCE((SELECT value FROM _sheetsync_meta WHERE name = 'log_epoch'), ''),
                COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '_sheetsync_changelog'), 0)",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| db_error(e, "changes"))?;
    Ok((row.get(0), row.get(1)))
}

impl_table!(SqliteTable, "crate::SqliteStateStore");
