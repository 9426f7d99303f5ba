//! The SQLite adapter (SQLite 3.35 or later; the bundled library is used).

mod capture;
mod introspect;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::{
    Capabilities, ChangeBatch, ColumnType, Cursor, Error, ErrorKind, Observation, Result, Row,
    RowKey, Sink, SinkTransaction, Source, StateDelta, TableSchema, TransactionalSink, Value,
    WriteContext, WriteOp, WriteOutcome,
};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Connection, Row as _, Sqlite, SqlitePool, TypeInfo, ValueRef};

use crate::apply::{apply_ops, rows_per_statement, WriteTx};
use crate::common::{dedup_keys, wake, wake_channel, Common, SqlOptions};
use crate::codec::{from_float, from_int, parse_text, Bind};
use crate::dialect::audited;
use crate::statements::Lock;
use crate::table::TableInfo;
use crate::error::{db_error, lock_error, row_error, RowError};

const MAX_PARAMS: usize = 32_766;

/// A SQLite table as one side of a sheetsync mapping.
///
/// Declared column types decide the sheetsync type (`INTEGER`, `BOOLEAN`, `DECIMAL`, `REAL`,
/// `TEXT`, `DATE`, `TIME`, `DATETIME`, `TIMESTAMPTZ`, `UUID`, `JSON`, `BLOB`, ...). SQLite gives
/// `DECIMAL`/`NUMERIC` columns numeric affinity, which stores long decimals as doubles; declare
/// exact decimal columns as `DECIMAL_TEXT` (text affinity) to keep every digit.
/// [`SqliteTable::warnings`] names the columns where this happens.
pub struct SqliteTable {
    common: Common,
    pool: SqlitePool,
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
        let mut common = Common::new("sqlite", info, options)?;
        common.warnings = introspect::warnings(&common.info);
        for w in &common.warnings {
            tracing::warn!(table = %common.name, "{w}");
        }
        Ok(SqliteTable { common, pool })
    }

    /// What SQLite's typing does to this table's values that sheetsync cannot undo, one
    /// sentence per column: a `DECIMAL`/`NUMERIC` column (numeric affinity) stores a long
    /// decimal as a double, a column declared `STRING` stores `'007'` as 7. Each names the
    /// column and the declaration that keeps values exact. Empty when there is nothing to say.
    pub fn warnings(&self) -> &[String] {
        &self.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Installs change capture for this table: the `_sheetsync_*` tables and three triggers.
    /// Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(&self.pool, &self.common.info).await
    }

    /// Removes this table's triggers and change-log entries, and the `_sheetsync_*` capture
    /// tables once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(&self.pool, &self.common.info).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(&self.pool, &self.common.info.table).await
    }

    fn decode(&self, row: &SqliteRow) -> std::result::Result<Row, (Option<RowKey>, String)> {
        self.common
            .decode_row(|i| decode_value(self.common.info.columns[i].ty, row, i))
    }

    fn chunk(&self) -> usize {
        rows_per_statement(
            &self.common.info,
            MAX_PARAMS,
            self.common.options.statement_rows,
        )
    }

    async fn fetch_rows<'e, E>(
        &self,
        exec: E,
        keys: &[RowKey],
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.common.info.select_keys_sql(keys.len(), Lock::None);
        let mut q = sqlx::query(audited(sql));
        for k in keys {
            for b in self.common.info.key_binds(k) {
                q = bind(q, b);
            }
        }
        let rows = q.fetch_all(exec).await?;
        Ok(self.common.keyed(rows.iter().map(|r| self.decode(r))))
    }

    async fn current(
        &self,
        keys: &[RowKey],
    ) -> Result<HashMap<RowKey, std::result::Result<Row, String>>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(self.chunk()) {
            found.extend(
                self.fetch_rows(&self.pool, chunk)
                    .await
                    .map_err(|e| db_error(e, "fetch"))?,
            );
        }
        Ok(found)
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

fn bind(q: Query<'_, Sqlite, SqliteArguments>, b: Bind) -> Query<'_, Sqlite, SqliteArguments> {
    match b {
        Bind::Null => q.bind(None::<String>),
        Bind::Bool(v) => q.bind(v),
        Bind::Int(v) => q.bind(v),
        Bind::Float(v) => q.bind(v),
        Bind::Text(v) => q.bind(v),
        Bind::Bytes(v) => q.bind(v),
    }
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

#[async_trait]
impl Source for SqliteTable {
    fn name(&self) -> &str {
        &self.common.name
    }

    fn capabilities(&self) -> Capabilities {
        self.common.capabilities()
    }

    fn schema(&self) -> &TableSchema {
        &self.common.schema
    }

    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        sqlx::query(audited(self.common.select_all.clone()))
            .fetch(&self.pool)
            .enumerate()
            .map(|(n, r)| {
                r.map(|r| self.common.scanned(self.decode(&r), n))
                    .map_err(|e| db_error(e, "scan"))
            })
            .chunks(1_000)
            .map(|page| page.into_iter().collect::<Result<Vec<_>>>())
            .boxed()
    }

    async fn cursor(&self) -> Result<Option<Cursor>> {
        if !self.is_installed().await? {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "change capture is not installed for {}; call install() first",
                    self.common.name
                ),
            )
            .with_operation("cursor"));
        }
        self.common.full_scan_started();
        let (epoch, id) = log_position(&self.pool).await?;
        Ok(Some(Cursor(format!("sqlite:{epoch}:{id}"))))
    }

    fn full_scan_requested(&self) -> bool {
        self.common.full_scan_requested()
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let (since_epoch, since_id) = parse_cursor(&since.0)?;
        let limit = limit.max(1);
        {
            let (epoch, last) = log_position(&self.pool).await?;
            if epoch != since_epoch || since_id > last {
                // The change log was created anew since this cursor (capture reinstalled), or is
                // behind it (an older copy of the file): its ids mean nothing any more. Start
                // over, and have the engine read the table in full.
                tracing::warn!(table = %self.common.name, cursor = %since.0,
                    "change cursor belongs to another change log; reading from the start");
                self.common.request_full_scan();
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
        .bind(&self.common.info.table)
        .bind(since_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(e, "changes"))?;
        let mut cursor = since_id;
        let mut keys = Vec::with_capacity(entries.len());
        let mut invalid = Vec::new();
        for e in &entries {
            cursor = e.get("id");
            let origin: Option<String> = e.get("origin");
            if self.common.is_echo(origin.as_deref()) {
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
                        let info = &self.common.info;
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
                        locator: Some(format!("{} change log entry {cursor}", self.common.name)),
                        reason,
                    },
                ))),
            }
        }
        let keys = dedup_keys(keys);
        let just_keys: Vec<RowKey> = keys.iter().map(|(k, _)| k.clone()).collect();
        let found = self.current(&just_keys).await?;
        let mut changes = self.common.observations(&keys, found);
        changes.extend(invalid);
        Ok(ChangeBatch {
            changes,
            cursor: Cursor(format!("sqlite:{since_epoch}:{cursor}")),
            more: entries.len() >= limit,
        })
    }

    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        let found = self.current(keys).await?;
        let keys: Vec<(RowKey, Option<DateTime<Utc>>)> =
            keys.iter().map(|k| (k.clone(), None)).collect();
        Ok(self.common.observations(&keys, found))
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let (_, id) = parse_cursor(&cursor.0)?;
        let err = |e| db_error(e, "ack");
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::query(
            "INSERT INTO _sheetsync_consumers (tbl, consumer, id) VALUES (?, ?, ?)
             ON CONFLICT (tbl, consumer) DO UPDATE SET id = excluded.id",
        )
        .bind(&self.common.info.table)
        .bind(&self.common.options.consumer)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "DELETE FROM _sheetsync_changelog WHERE tbl = ?1
             AND id <= (SELECT min(id) FROM _sheetsync_consumers WHERE tbl = ?1)",
        )
        .bind(&self.common.info.table)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        let (tx, stream) = wake_channel();
        let opts = (*self.pool.connect_options()).clone();
        let interval = self
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

struct SqliteTx<'a> {
    table: &'a SqliteTable,
    tx: sqlx::Transaction<'a, Sqlite>,
    tagged: bool,
}

#[async_trait]
impl WriteTx for SqliteTx<'_> {
    fn info(&self) -> &TableInfo {
        &self.table.common.info
    }

    async fn current(
        &mut self,
        keys: &[RowKey],
        _lock: Lock,
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, RowError> {
        // BEGIN IMMEDIATE already holds the write lock: no one else can change these rows.
        self.table
            .fetch_rows(&mut *self.tx, keys)
            .await
            .map_err(|e| lock_error(e, "apply"))
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        sqlx::query(audited(sql))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(|e| db_error(e, "apply"))
    }

    async fn upsert(&mut self, rows: &[&Row], cols: &[usize]) -> std::result::Result<(), RowError> {
        let info = &self.table.common.info;
        let sql = info.upsert_sql(rows.len(), cols);
        let mut q = sqlx::query(audited(sql));
        for r in rows {
            for &i in cols {
                q = bind(q, info.bind(&r.0[i]));
            }
        }
        q.execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(|e| row_error(e, "apply"))
    }

    async fn delete(&mut self, keys: &[&RowKey]) -> std::result::Result<(), RowError> {
        let info = &self.table.common.info;
        let sql = info.delete_sql(keys.len());
        let mut q = sqlx::query(audited(sql));
        for k in keys {
            for b in info.key_binds(k) {
                q = bind(q, b);
            }
        }
        q.execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(|e| row_error(e, "apply"))
    }

    async fn insert(&mut self, row: &Row, cols: &[usize]) -> std::result::Result<Row, RowError> {
        let info = &self.table.common.info;
        let sql = info.insert_generated_sql(cols);
        let mut q = sqlx::query(audited(sql));
        for &i in cols {
            q = bind(q, info.bind(&row.0[i]));
        }
        let stored = q
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| row_error(e, "apply"))?;
        self.table.decode(&stored).map_err(|(_, reason)| {
            RowError::Held(format!("the stored row does not read back: {reason}"))
        })
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.tagged {
            self.execute("DELETE FROM _sheetsync_ctx WHERE name = 'origin'")
                .await?;
        }
        self.tx.commit().await.map_err(|e| db_error(e, "apply"))
    }
}

#[async_trait]
impl Sink for SqliteTable {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        if ops.len() > self.common.options.max_batch.max(1) {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} ops exceed max_batch {}",
                    ops.len(),
                    self.common.options.max_batch
                ),
            ));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.common.note_origin(&ctx.origin);
        let err = |e| db_error(e, "apply");
        let mut conn = self.pool.acquire().await.map_err(err)?;
        // The wait for the write lock (another connection's write transaction) is the busy
        // timeout, a setting of the connection: ours for this write, the pool's afterwards.
        let previous: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
        let waits = self
            .common
            .info
            .dialect
            .wait_sql(false, self.common.waits());
        sqlx::query(audited(waits.set))
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let result = self.apply_on(&mut conn, ops, ctx).await;
        let restore = crate::dialect::sqlite_busy_timeout_sql(previous);
        if sqlx::query(audited(restore))
            .execute(&mut *conn)
            .await
            .is_err()
        {
            let _ = conn.detach().close().await;
        }
        result
    }

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        Some(self)
    }
}

impl SqliteTable {
    /// The write transaction of [`Sink::apply`], on `conn`.
    async fn apply_on(
        &self,
        conn: &mut sqlx::SqliteConnection,
        ops: Vec<WriteOp>,
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>> {
        let err = |e| db_error(e, "apply");
        // One writer at a time: the origin row below is invisible to every other connection
        // until it is deleted again, just before commit.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let tagged: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_ctx')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        if tagged {
            sqlx::query(
                "INSERT INTO _sheetsync_ctx (name, value) VALUES ('origin', ?)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(&ctx.origin)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        let mut w = Box::new(SqliteTx {
            table: self,
            tx,
            tagged,
        });
        let out = apply_ops(
            &self.common.info,
            &self.common.schema,
            &mut *w,
            ops,
            self.chunk(),
        )
        .await?;
        w.commit().await?;
        Ok(out)
    }
}

/// Writes and the engine's state in one transaction, with a [`crate::SqliteStateStore`] on the
/// same pool.
#[async_trait]
impl TransactionalSink for SqliteTable {
    fn state_location(&self) -> String {
        crate::state::pool_location(&self.pool)
    }

    async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        self.common.note_origin(&ctx.origin);
        let err = |e| db_error(e, "apply");
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let tagged: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_ctx')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        if tagged {
            sqlx::query(
                "INSERT INTO _sheetsync_ctx (name, value) VALUES ('origin', ?)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(&ctx.origin)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        let w = SqliteTx {
            table: self,
            tx,
            tagged,
        };
        let (max, rows) = (self.common.options.max_batch, self.chunk());
        Ok(Box::new(crate::state::StateTx::new(
            &self.common.info,
            &self.common.schema,
            w,
            max,
            rows,
        )))
    }
}

#[async_trait]
impl crate::state::CommitWithState for SqliteTx<'_> {
    async fn commit_with_state(
        mut self: Box<Self>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        if self.tagged {
            self.execute("DELETE FROM _sheetsync_ctx WHERE name = 'origin'")
                .await?;
        }
        crate::state::sqlite::commit_in(&mut self.tx, mapping, delta).await?;
        self.tx
            .commit()
            .await
            .map_err(|e| db_error(e, "state.commit"))
    }
}
