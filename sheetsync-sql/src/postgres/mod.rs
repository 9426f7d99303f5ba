//! The PostgreSQL adapter (PostgreSQL 13 or later).

mod capture;
mod introspect;
mod temporal;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::{
    Capabilities, ChangeBatch, Cursor, Error, ErrorKind, Observation, Result, Row, RowKey, Sink,
    SinkTransaction, Source, StateDelta, TableSchema, TransactionalSink, Value, WriteContext,
    WriteOp, WriteOutcome,
};
use sqlx::postgres::{PgArguments, PgListener, PgPoolOptions, PgRow, PgValueFormat};
use sqlx::query::Query;
use sqlx::{Acquire, PgPool, Postgres, Row as _, ValueRef};

use crate::apply::{apply_ops, rows_per_statement, WriteTx};
use crate::common::{dedup_keys, wake, wake_channel, Common, SqlOptions};
use crate::codec::{parse_text, Bind};
use crate::dialect::audited;
use crate::statements::Lock;
use crate::table::{ReadAs, TableInfo};
use crate::error::{db_error, lock_error, row_error, RowError};

use capture::PgCursor;

const MAX_PARAMS: usize = 65_535;

/// A PostgreSQL table as one side of a sheetsync mapping.
///
/// Construct it with [`PostgresTable::connect`] or [`PostgresTable::open`], then call
/// [`PostgresTable::install`] once to create the change capture (schema `sheetsync`).
pub struct PostgresTable {
    common: Common,
    pool: PgPool,
    oid: i64,
}

impl PostgresTable {
    /// Bounds the lock and statement waits of a write transaction (transaction-local).
    async fn bound_waits(&self, tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<()> {
        let waits = self
            .common
            .info
            .dialect
            .wait_sql(false, self.common.waits());
        let mut q = sqlx::query(audited(waits.set));
        for b in waits.binds {
            q = bind(q, b);
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| db_error(e, "apply"))?;
        Ok(())
    }

    /// Connects to `url` and opens `table` (in the connection's current schema).
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(url)
            .await
            .map_err(|e| db_error(e, "connect"))?;
        Self::open(pool, None, table, SqlOptions::default()).await
    }

    /// Opens `table` in `schema` (default: the current schema) through `pool`, reading its
    /// columns, types and primary key.
    pub async fn open(
        pool: PgPool,
        schema: Option<&str>,
        table: &str,
        options: SqlOptions,
    ) -> Result<Self> {
        let (info, oid) = introspect::introspect(&pool, schema, table).await?;
        Ok(PostgresTable {
            common: Common::new("postgres", info, options)?,
            pool,
            oid,
        })
    }

    /// What introspection found that the adapter cannot make exact; always empty here (see
    /// [`crate::SqliteTable::warnings`]).
    pub fn warnings(&self) -> &[String] {
        &self.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Installs (or upgrades) change capture for this table: the `sheetsync` schema with its
    /// change log, and three statement-level triggers on the table. Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(&self.pool, &self.common.info, self.oid).await
    }

    /// Removes this table's triggers and change-log entries, and the `sheetsync` capture objects
    /// once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(&self.pool, &self.common.info, self.oid).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(&self.pool, self.oid).await
    }

    async fn require_installed(&self, operation: &'static str) -> Result<()> {
        if self.is_installed().await? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "change capture is not installed for {}; call install() first",
                    self.common.name
                ),
            )
            .with_operation(operation))
        }
    }

    fn decode(&self, row: &PgRow) -> std::result::Result<Row, (Option<RowKey>, String)> {
        self.common
            .decode_row(|i| decode_value(&self.common.info, row, i))
    }

    async fn fetch_rows<'e, E>(
        &self,
        exec: E,
        keys: &[RowKey],
        lock: Lock,
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
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

    fn chunk(&self) -> usize {
        rows_per_statement(
            &self.common.info,
            MAX_PARAMS,
            self.common.options.statement_rows,
        )
    }
}

fn bind(q: Query<'_, Postgres, PgArguments>, b: Bind) -> Query<'_, Postgres, PgArguments> {
    match b {
        Bind::Null => q.bind(None::<String>),
        Bind::Bool(v) => q.bind(v),
        Bind::Int(v) => q.bind(v),
        Bind::Float(v) => q.bind(v),
        Bind::Text(v) => q.bind(v),
        Bind::Bytes(v) => q.bind(v),
    }
}

fn decode_value(info: &TableInfo, row: &PgRow, i: usize) -> std::result::Result<Value, String> {
    let c = &info.columns[i];
    let e = |e: sqlx::Error| e.to_string();
    Ok(match c.read {
        ReadAs::Int => row
            .try_get::<Option<i64>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Int),
        ReadAs::Float => row
            .try_get::<Option<f64>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Float),
        ReadAs::Bool => row
            .try_get::<Option<bool>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Bool),
        ReadAs::Date | ReadAs::Time | ReadAs::Timestamp | ReadAs::TimestampTz => {
            temporal_value(c.read, c.ty, row, i)?
        }
        ReadAs::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Bytes),
        ReadAs::Text | ReadAs::Dynamic => match row.try_get::<Option<String>, _>(i).map_err(e)? {
            None => Value::Null,
            Some(s) => parse_text(c.ty, &s)?,
        },
    })
}

/// A date, time or timestamp, decoded by [`temporal`] rather than by sqlx's chrono decoding,
/// which panics on `infinity` and on years chrono cannot hold.
fn temporal_value(
    read: ReadAs,
    ty: sheetsync_core::ColumnType,
    row: &PgRow,
    i: usize,
) -> std::result::Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    if raw.format() == PgValueFormat::Text {
        // Prepared statements return binary values; text would be PostgreSQL's ISO output.
        return parse_text(ty, raw.as_str().map_err(|e| e.to_string())?);
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    match read {
        ReadAs::Date => temporal::date(bytes),
        ReadAs::Time => temporal::time(bytes),
        ReadAs::Timestamp => temporal::timestamp(bytes, false),
        _ => temporal::timestamp(bytes, true),
    }
}

#[async_trait]
impl Source for PostgresTable {
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
        self.require_installed("cursor").await?;
        self.common.full_scan_started();
        Ok(Some(Cursor(capture::horizon(&self.pool).await?.render())))
    }

    fn full_scan_requested(&self) -> bool {
        self.common.full_scan_requested()
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let since = PgCursor::parse(&since.0)?;
        let limit = limit.max(1);
        let entries = sqlx::query(
            "SELECT xid::text AS xid, seq, op, pk, origin, at FROM sheetsync.changelog
             WHERE tbl = $1 AND (xid, seq) > ($2::text::xid8, $3)
               AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY xid, seq
             LIMIT $4",
        )
        .bind(self.oid)
        .bind(since.xid.to_string())
        .bind(since.seq)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(e, "changes"))?;
        if entries.is_empty() && since.xid >= capture::next_xid(&self.pool).await? {
            // The transaction counter is behind the cursor: the database was restored or
            // replaced. Entries from now on would all sort before the cursor, so start over and
            // have the engine read the table in full.
            tracing::warn!(table = %self.common.name, cursor = %since.render(),
                "change cursor is ahead of the database's transaction counter; reading from the start");
            self.common.request_full_scan();
            return Ok(ChangeBatch {
                changes: Vec::new(),
                cursor: Cursor(PgCursor { xid: 0, seq: 0 }.render()),
                more: true,
            });
        }
        let mut cursor = since;
        let mut keys = Vec::with_capacity(entries.len());
        let mut invalid = Vec::new();
        for e in &entries {
            let xid: String = e.get("xid");
            cursor = PgCursor {
                xid: xid.parse().map_err(|_| {
                    Error::new(ErrorKind::Unexpected, format!("unexpected xid8 {xid:?}"))
                })?,
                seq: e.get("seq"),
            };
            let origin: Option<String> = e.get("origin");
            if self.common.is_echo(origin.as_deref()) {
                continue;
            }
            let op: i8 = e.get("op");
            if op == b'T' as i8 {
                self.common.request_full_scan();
                continue;
            }
            let pk: Vec<Option<String>> = e.get("pk");
            let at: DateTime<Utc> = e.get("at");
            match self.common.info.key_from_texts(&pk) {
                Ok(k) => keys.push((k, Some(at))),
                Err(reason) => invalid.push(Observation::new(sheetsync_core::Change::Invalid(
                    sheetsync_core::InvalidRow {
                        key: None,
                        locator: Some(format!(
                            "{} change log entry {}",
                            self.common.name,
                            cursor.render()
                        )),
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
            cursor: Cursor(cursor.render()),
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
        let c = PgCursor::parse(&cursor.0)?;
        let err = |e| db_error(e, "ack");
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO sheetsync.consumers (tbl, consumer, xid, seq) VALUES ($1, $2, $3::text::xid8, $4)
             ON CONFLICT (tbl, consumer) DO UPDATE SET xid = EXCLUDED.xid, seq = EXCLUDED.seq, acked_at = now()",
        )
        .bind(self.oid)
        .bind(&self.common.options.consumer)
        .bind(c.xid.to_string())
        .bind(c.seq)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        // Entries every consumer of the table has read are no longer needed.
        sqlx::query(
            "DELETE FROM sheetsync.changelog
             WHERE tbl = $1 AND (xid, seq) <= (
               SELECT xid, seq FROM sheetsync.consumers WHERE tbl = $1 ORDER BY xid, seq LIMIT 1)",
        )
        .bind(self.oid)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        let (tx, stream) = wake_channel();
        let pool = self.pool.clone();
        let payload = self.oid.to_string();
        let interval = self
            .common
            .options
            .poll_interval
            .unwrap_or(Duration::from_secs(10));
        tokio::spawn(async move {
            while !tx.is_closed() {
                let listener = async {
                    let mut l = PgListener::connect_with(&pool).await?;
                    l.listen("sheetsync").await?;
                    Ok::<_, sqlx::Error>(l)
                };
                let mut listener = match listener.await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::debug!(error = %e, "sheetsync: LISTEN failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(interval) => { wake(&tx); continue }
                            _ = tx.closed() => return,
                        }
                    }
                };
                // Anything committed before LISTEN took effect was not notified: catch up.
                wake(&tx);
                loop {
                    tokio::select! {
                        r = listener.try_recv() => match r {
                            Ok(Some(n)) => if n.payload() == payload { wake(&tx) },
                            // The connection was lost (the listener reconnects on the next call):
                            // notifications may have been missed.
                            Ok(None) => wake(&tx),
                            Err(e) => {
                                tracing::debug!(error = %e, "sheetsync: listener failed; reconnecting");
                                wake(&tx);
                                break;
                            }
                        },
                        _ = tokio::time::sleep(interval) => wake(&tx),
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Some(stream)
    }
}

struct PgTx<'a> {
    table: &'a PostgresTable,
    tx: sqlx::Transaction<'static, Postgres>,
}

#[async_trait]
impl WriteTx for PgTx<'_> {
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

    /// `ON CONFLICT DO NOTHING`: a row that another transaction inserted after the check (no
    /// row lock protects an absent key) is left as it is, and reported stale.
    async fn create(
        &mut self,
        rows: &[&Row],
        _keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        let info = &self.table.common.info;
        let sql = info.create_sql(rows.len(), cols);
        let mut q = sqlx::query(audited(sql));
        for r in rows {
            for &i in cols {
                q = bind(q, info.bind(&r.0[i]));
            }
        }
        let stored = q
            .fetch_all(&mut *self.tx)
            .await
            .map_err(|e| row_error(e, "apply"))?;
        Ok(stored
            .iter()
            .filter_map(|r| match self.table.decode(r) {
                Ok(row) => row.key(&self.table.common.schema),
                Err((k, _)) => k,
            })
            .collect())
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

    /// Rows written with explicit keys do not move an identity or serial sequence, so a
    /// generated key may collide with one of them; then the sequence is moved past the largest
    /// key and the insert tried once more.
    async fn insert(&mut self, row: &Row, cols: &[usize]) -> std::result::Result<Row, RowError> {
        let info = &self.table.common.info;
        let sql = info.insert_generated_sql(cols);
        let query = || {
            let mut q = sqlx::query(audited(sql.clone()));
            for &i in cols {
                q = bind(q, info.bind(&row.0[i]));
            }
            q
        };
        let exec = |sql: &'static str| sqlx::query(sql);
        exec("SAVEPOINT sheetsync_generated")
            .execute(&mut *self.tx)
            .await
            .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
        let stored = match query().fetch_one(&mut *self.tx).await {
            Ok(r) => r,
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => {
                exec("ROLLBACK TO SAVEPOINT sheetsync_generated")
                    .execute(&mut *self.tx)
                    .await
                    .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
                let key = &info.columns[info.key[0]].name;
                let table = info.quoted();
                sqlx::query(audited(format!(
                    // Forward only: never below the next value the sequence would give.
                    "SELECT setval(s.seq::regclass, GREATEST((SELECT max({col}) FROM {table}), nextval(s.seq::regclass)))
                     FROM (SELECT pg_get_serial_sequence($1, $2) AS seq) s WHERE s.seq IS NOT NULL",
                    col = crate::dialect::Dialect::Postgres.quote(key)
                )))
                .bind(&table)
                .bind(key)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
                query()
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err(|e| row_error(e, "apply"))?
            }
            Err(e) => return Err(row_error(e, "apply")),
        };
        exec("RELEASE SAVEPOINT sheetsync_generated")
            .execute(&mut *self.tx)
            .await
            .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
        self.table.decode(&stored).map_err(|(_, reason)| {
            RowError::Held(format!("the stored row does not read back: {reason}"))
        })
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(|e| db_error(e, "apply"))
    }
}

#[async_trait]
impl Sink for PostgresTable {
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
        let mut tx = self.pool.begin().await.map_err(err)?;
        // Transaction-local: the triggers stamp this origin on every change-log entry.
        sqlx::query("SELECT set_config('sheetsync.origin', $1, true)")
            .bind(&ctx.origin)
            .execute(tx.acquire().await.map_err(err)?)
            .await
            .map_err(err)?;
        // Transaction-local too: a row another session keeps locked holds only that row.
        self.bound_waits(&mut tx).await?;
        let mut w = Box::new(PgTx { table: self, tx });
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

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        Some(self)
    }
}

/// Writes and the engine's state in one transaction, with a [`crate::PostgresStateStore`] on
/// the same pool.
#[async_trait]
impl TransactionalSink for PostgresTable {
    fn state_location(&self) -> String {
        crate::state::pool_location(&self.pool)
    }

    async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        self.common.note_origin(&ctx.origin);
        let err = |e| db_error(e, "apply");
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("SELECT set_config('sheetsync.origin', $1, true)")
            .bind(&ctx.origin)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // The same bounded waits as `Sink::apply`.
        self.bound_waits(&mut tx).await?;
        let w = PgTx { table: self, tx };
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
impl crate::state::CommitWithState for PgTx<'_> {
    async fn commit_with_state(
        mut self: Box<Self>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        // The origin is transaction-local: the state tables have no triggers anyway.
        crate::state::postgres::commit_in(&mut self.tx, mapping, delta).await?;
        self.tx
            .commit()
            .await
            .map_err(|e| db_error(e, "state.commit"))
    }
}
