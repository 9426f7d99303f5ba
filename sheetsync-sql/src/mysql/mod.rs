//! The MySQL/MariaDB adapter (MySQL 8, MariaDB 10.5 or later).

mod capture;
mod introspect;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::{
    Capabilities, Change, ChangeBatch, Cursor, Error, ErrorKind, InvalidRow, Observation, Result,
    Row, RowKey, Sink, SinkTransaction, Source, StateDelta, TableSchema, TransactionalSink, Value,
    WriteContext, WriteOp, WriteOutcome,
};
use sqlx::mysql::{MySqlArguments, MySqlPoolOptions, MySqlRow};
use sqlx::query::Query;
use sqlx::{Connection, MySql, MySqlPool, Row as _};

use crate::apply::{apply_ops, rows_per_statement, WriteTx};
use crate::common::{dedup_keys, wake, wake_channel, Common, SqlOptions};
use crate::codec::{parse_text, Bind};
use crate::dialect::audited;
use crate::statements::Lock;
use crate::table::{ReadAs, TableInfo};
use crate::error::{db_error, lock_error, row_error, RowError};

const MAX_PARAMS: usize = 65_535;

/// The change-log entries handed out and not yet acknowledged, by hand-out number.
#[derive(Default)]
struct Queue {
    next: u64,
    handed_out: BTreeMap<u64, Vec<u64>>,
}

/// A MySQL or MariaDB table as one side of a sheetsync mapping.
///
/// The change log is a queue with a single consumer: run one engine per captured table.
pub struct MySqlTable {
    common: Common,
    pool: MySqlPool,
    queue: tokio::sync::Mutex<Queue>,
    /// The server is MariaDB (whose statement time limit is `max_statement_time`).
    mariadb: bool,
}

impl MySqlTable {
    /// Connects to `url` (which names the database) and opens `table`.
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(5)
            // Belt and braces: a connection never goes back to the pool with the engine's tag.
            .after_release(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET @sheetsync_origin = NULL")
                        .execute(conn)
                        .await?;
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .map_err(|e| db_error(e, "connect"))?;
        Self::open(pool, table, SqlOptions::default()).await
    }

    /// Opens `table` of the connection's database through `pool`, reading its columns, types
    /// and primary key. The pool's sessions must use `time_zone = '+00:00'` (sqlx's default).
    pub async fn open(pool: MySqlPool, table: &str, options: SqlOptions) -> Result<Self> {
        let info = introspect::introspect(&pool, table).await?;
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(&pool)
            .await
            .map_err(|e| db_error(e, "introspect"))?;
        Ok(MySqlTable {
            common: Common::new("mysql", info, options)?,
            pool,
            queue: tokio::sync::Mutex::new(Queue::default()),
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
        })
    }

    /// What introspection found that the adapter cannot make exact; always empty here (see
    /// [`crate::SqliteTable::warnings`]).
    pub fn warnings(&self) -> &[String] {
        &self.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Installs change capture for this table: the `_sheetsync_*` tables and three triggers.
    /// Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(&self.pool, &self.common.info).await
    }

    /// Removes this table's triggers and queue entries, and the `_sheetsync_*` capture tables
    /// once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(&self.pool, &self.common.info).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(&self.pool, &self.common.info.table).await
    }

    fn decode(&self, row: &MySqlRow) -> std::result::Result<Row, (Option<RowKey>, String)> {
        self.common
            .decode_row(|i| decode_value(&self.common.info, row, i))
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
        lock: Lock,
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = MySql>,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.common.info.select_keys_sql(keys.len(), lock);
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
                self.fetch_rows(&self.pool, chunk, Lock::None)
                    .await
                    .map_err(|e| db_error(e, "fetch"))?,
            );
        }
        Ok(found)
    }
}

fn bind(q: Query<'_, MySql, MySqlArguments>, b: Bind) -> Query<'_, MySql, MySqlArguments> {
    match b {
        Bind::Null => q.bind(None::<String>),
        Bind::Bool(v) => q.bind(v),
        Bind::Int(v) => q.bind(v),
        Bind::Float(v) => q.bind(v),
        Bind::Text(v) => q.bind(v),
        Bind::Bytes(v) => q.bind(v),
    }
}

fn decode_value(info: &TableInfo, row: &MySqlRow, i: usize) -> std::result::Result<Value, String> {
    let c = &info.columns[i];
    let e = |e: sqlx::Error| e.to_string();
    Ok(match c.read {
        ReadAs::Float => row
            .try_get::<Option<f64>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Float),
        ReadAs::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Bytes),
        _ => match row.try_get_unchecked::<Option<String>, _>(i).map_err(e)? {
            None => Value::Null,
            Some(s) => parse_text(c.ty, &s)?,
        },
    })
}

/// `mysql:<hand-out number>:<last id examined>`.
fn parse_cursor(s: &str) -> Result<(u64, u64)> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("{s:?} is not a MySQL change cursor"),
        )
    };
    let rest = s.strip_prefix("mysql:").ok_or_else(bad)?;
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    Ok((h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?))
}

#[async_trait]
impl Source for MySqlTable {
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
        let q = self.queue.lock().await;
        Ok(Some(Cursor(format!(
            "mysql:{}:0",
            q.next.saturating_sub(1)
        ))))
    }

    fn full_scan_requested(&self) -> bool {
        self.common.full_scan_requested()
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let (h, m) = parse_cursor(&since.0)?;
        let limit = limit.max(1);
        let mut q = self.queue.lock().await;
        // Hand-outs after `since` were read by a cycle that did not finish: read them again.
        q.handed_out.retain(|&n, _| n <= h);
        q.next = q.next.max(h + 1);
        // Entries still handed out (not yet acknowledged) are not handed out twice. When none
        // are, read from the queue's start: a transaction that committed late shows up there.
        let pending: HashSet<u64> = q.handed_out.values().flatten().copied().collect();
        let mut after = if q.handed_out.is_empty() { 0 } else { m };
        let mut got: Vec<MySqlRow> = Vec::new();
        loop {
            let rows = sqlx::query(
                "SELECT id, pk, origin, at FROM `_sheetsync_changelog` WHERE tbl = ? AND id > ? ORDER BY id LIMIT ?",
            )
            .bind(&self.common.info.table)
            .bind(after)
            .bind(limit as u64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(e, "changes"))?;
            let exhausted = rows.len() < limit;
            for r in rows {
                after = r.get("id");
                if !pending.contains(&after) {
                    got.push(r);
                    if got.len() == limit {
                        break;
                    }
                }
            }
            if exhausted || got.len() == limit {
                break;
            }
        }
        if got.is_empty() {
            return Ok(ChangeBatch {
                changes: Vec::new(),
                cursor: since.clone(),
                more: false,
            });
        }
        let n = q.next;
        q.next += 1;
        q.handed_out
            .insert(n, got.iter().map(|r| r.get::<u64, _>("id")).collect());
        drop(q);

        let mut keys = Vec::new();
        let mut invalid = Vec::new();
        for r in &got {
            let origin: Option<String> = r.get("origin");
            if self.common.is_echo(origin.as_deref()) {
                continue;
            }
            let id: u64 = r.get("id");
            let pk: String = r.get("pk");
            // TIMESTAMP decodes as an instant (sqlx sets the session time zone to UTC), not as
            // a NaiveDateTime: without this every change would lose its time.
            let at: Option<DateTime<Utc>> = r.try_get("at").ok();
            let parsed = serde_json::from_str::<Vec<Option<String>>>(&pk)
                .map_err(|e| format!("change-log key {pk:?} is not a JSON array of text: {e}"))
                .and_then(|texts| self.common.info.key_from_texts(&texts));
            match parsed {
                Ok(k) => keys.push((k, at)),
                Err(reason) => invalid.push(Observation::new(Change::Invalid(InvalidRow {
                    key: None,
                    locator: Some(format!("{} change log entry {id}", self.common.name)),
                    reason,
                }))),
            }
        }
        let keys = dedup_keys(keys);
        let just_keys: Vec<RowKey> = keys.iter().map(|(k, _)| k.clone()).collect();
        let found = self.current(&just_keys).await?;
        let mut changes = self.common.observations(&keys, found);
        changes.extend(invalid);
        Ok(ChangeBatch {
            changes,
            cursor: Cursor(format!("mysql:{n}:{after}")),
            more: got.len() == limit,
        })
    }

    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        let found = self.current(keys).await?;
        let keys: Vec<(RowKey, Option<DateTime<Utc>>)> =
            keys.iter().map(|k| (k.clone(), None)).collect();
        Ok(self.common.observations(&keys, found))
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let (h, _) = parse_cursor(&cursor.0)?;
        let mut q = self.queue.lock().await;
        let done: Vec<u64> = q.handed_out.range(..=h).map(|(&n, _)| n).collect();
        let ids: Vec<u64> = done
            .iter()
            .flat_map(|n| q.handed_out[n].iter().copied())
            .collect();
        // Exactly the entries handed out, never "everything up to id n": an entry with a lower id
        // that committed late was not handed out and stays in the queue.
        for chunk in ids.chunks(1_000) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut del = sqlx::query(audited(format!(
                "DELETE FROM `_sheetsync_changelog` WHERE id IN ({placeholders})"
            )));
            for id in chunk {
                del = del.bind(*id);
            }
            del.execute(&self.pool)
                .await
                .map_err(|e| db_error(e, "ack"))?;
        }
        for n in done {
            q.handed_out.remove(&n);
        }
        Ok(())
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        let (tx, stream) = wake_channel();
        let pool = self.pool.clone();
        let table = self.common.info.table.clone();
        let interval = self
            .common
            .options
            .poll_interval
            .unwrap_or(Duration::from_millis(500));
        tokio::spawn(async move {
            // No NOTIFY in MySQL: poll the newest untagged queue entry of the table (one index
            // probe).
            let mut last: Option<Option<u64>> = None;
            while !tx.is_closed() {
                let newest = sqlx::query_scalar::<_, Option<u64>>(
                    "SELECT MAX(id) FROM `_sheetsync_changelog` WHERE tbl = ? AND origin IS NULL",
                )
                .bind(&table)
                .fetch_one(&pool)
                .await;
                match newest {
                    Ok(v) => {
                        if last != Some(v) {
                            wake(&tx);
                        }
                        last = Some(v);
                    }
                    Err(_) => wake(&tx),
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

struct MyTx<'c> {
    table: &'c MySqlTable,
    tx: sqlx::Transaction<'c, MySql>,
}

#[async_trait]
impl WriteTx for MyTx<'_> {
    fn info(&self) -> &TableInfo {
        &self.table.common.info
    }

    async fn current(
        &mut self,
        keys: &[RowKey],
        lock: Lock,
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, RowError> {
        self.table
            .fetch_rows(&mut *self.tx, keys, lock)
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

    /// `INSERT ... ON DUPLICATE KEY UPDATE` would also fire on a collision with any other unique
    /// index and then update that other row. So: lock the keys, insert the new rows, and update
    /// the existing ones through a join on the primary key; a unique collision is an error that
    /// holds the row.
    async fn upsert(&mut self, rows: &[&Row], cols: &[usize]) -> std::result::Result<(), RowError> {
        let info = &self.table.common.info;
        let keys: Vec<RowKey> = rows
            .iter()
            .map(|r| {
                r.key(&self.table.common.schema)
                    .expect("upserted rows have keys")
            })
            .collect();
        let existing: HashSet<RowKey> = {
            let sql = info.select_keys_sql(keys.len(), Lock::Wait);
            let mut q = sqlx::query(audited(sql));
            for k in &keys {
                for b in info.key_binds(k) {
                    q = bind(q, b);
                }
            }
            let found = q
                .fetch_all(&mut *self.tx)
                .await
                .map_err(|e| row_error(e, "apply"))?;
            found
                .iter()
                .filter_map(|r| {
                    let vals: Option<Vec<Value>> = info
                        .key
                        .iter()
                        .map(|&i| decode_value(info, r, i).ok())
                        .collect();
                    vals.map(|v| RowKey::from_values(&v))
                })
                .collect()
        };
        let (old, new): (Vec<(&Row, &RowKey)>, Vec<(&Row, &RowKey)>) = rows
            .iter()
            .copied()
            .zip(&keys)
            .partition(|(_, k)| existing.contains(*k));
        if !new.is_empty() {
            let sql = info.insert_sql(new.len(), cols);
            let mut q = sqlx::query(audited(sql));
            for (r, _) in &new {
                for &i in cols {
                    q = bind(q, info.bind(&r.0[i]));
                }
            }
            q.execute(&mut *self.tx)
                .await
                .map_err(|e| row_error(e, "apply"))?;
        }
        if !old.is_empty() {
            if let Some(sql) = info.update_join_sql(old.len(), cols) {
                let mut q = sqlx::query(audited(sql));
                for (r, _) in &old {
                    for &i in cols {
                        q = bind(q, info.bind(&r.0[i]));
                    }
                }
                q.execute(&mut *self.tx)
                    .await
                    .map_err(|e| row_error(e, "apply"))?;
            }
        }
        Ok(())
    }

    /// A plain `INSERT`: a row that another transaction inserted after the check (possible
    /// under READ COMMITTED, which takes no gap locks) makes it fail instead of being updated.
    async fn create(
        &mut self,
        rows: &[&Row],
        keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        let info = &self.table.common.info;
        let mut q = sqlx::query(audited(info.insert_sql(rows.len(), cols)));
        for r in rows {
            for &i in cols {
                q = bind(q, info.bind(&r.0[i]));
            }
        }
        q.execute(&mut *self.tx)
            .await
            .map_err(|e| row_error(e, "apply"))?;
        Ok(keys.iter().map(|k| (*k).clone()).collect())
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
        let done = q
            .execute(&mut *self.tx)
            .await
            .map_err(|e| row_error(e, "apply"))?;
        let id = i64::try_from(done.last_insert_id()).map_err(|_| {
            RowError::Held(format!(
                "generated key {} does not fit a 64-bit integer",
                done.last_insert_id()
            ))
        })?;
        let key = RowKey::from_values(&[Value::Int(id)]);
        let found = self
            .table
            .fetch_rows(&mut *self.tx, std::slice::from_ref(&key), Lock::None)
            .await
            .map_err(|e| row_error(e, "apply"))?;
        match found.into_iter().next() {
            Some((_, Ok(stored))) => Ok(stored),
            Some((_, Err(reason))) => Err(RowError::Held(format!(
                "the stored row does not read back: {reason}"
            ))),
            None => Err(RowError::Fatal(Error::new(
                ErrorKind::Unexpected,
                format!("the row inserted with key {id} is not there"),
            ))),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.execute("SET @sheetsync_origin = NULL").await?;
        self.tx.commit().await.map_err(|e| db_error(e, "apply"))
    }
}

#[async_trait]
impl Sink for MySqlTable {
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
        let waits = self
            .common
            .info
            .dialect
            .wait_sql(self.mariadb, self.common.waits());
        let result = async {
            let mut tx = conn.begin().await.map_err(err)?;
            // Session-scoped: set inside the transaction, cleared before commit and again below
            // before the connection goes back to the pool.
            sqlx::query("SET @sheetsync_origin = ?")
                .bind(&ctx.origin)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            // Session-scoped too (saved first, restored below): a row another session keeps
            // locked holds only that row.
            let mut q = sqlx::query(audited(waits.set));
            for b in waits.binds {
                q = bind(q, b);
            }
            q.execute(&mut *tx).await.map_err(err)?;
            let mut w = Box::new(MyTx { table: self, tx });
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
        .await;
        let mut reset = sqlx::query("SET @sheetsync_origin = NULL")
            .execute(&mut *conn)
            .await
            .is_ok();
        if let Some(restore) = waits.restore {
            reset &= sqlx::query(restore).execute(&mut *conn).await.is_ok();
        }
        if !reset {
            // Never hand a tagged session, or one with our time limits, back to the pool.
            let _ = conn.detach().close().await;
        }
        result
    }

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        Some(self)
    }
}

/// Writes and the engine's state in one transaction, with a [`crate::MySqlStateStore`] on the
/// same pool.
#[async_trait]
impl TransactionalSink for MySqlTable {
    fn state_location(&self) -> String {
        crate::state::pool_location(&self.pool)
    }

    async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        self.common.note_origin(&ctx.origin);
        let err = |e| db_error(e, "apply");
        let mut tx = self.pool.begin().await.map_err(err)?;
        // Cleared again before the commit. A transaction abandoned on an error goes back to the
        // pool tagged only if its connection survived the error; pools opened through
        // `SqlTable::connect` clear the tag on release.
        sqlx::query("SET @sheetsync_origin = ?")
            .bind(&ctx.origin)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let w = MyTx { table: self, tx };
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
impl crate::state::CommitWithState for MyTx<'_> {
    async fn commit_with_state(
        mut self: Box<Self>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        self.execute("SET @sheetsync_origin = NULL").await?;
        crate::state::mysql::commit_in(&mut self.tx, mapping, delta).await?;
        self.tx
            .commit()
            .await
            .map_err(|e| db_error(e, "state.commit"))
    }
}
