//! The PostgreSQL adapter (PostgreSQL 13 or later).

mod capture;
mod introspect;
mod temporal;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sheetsync_core::{
    ChangeBatch, Cursor, Error, ErrorKind, Observation, Result, Row, RowKey, Value,
};
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow, PgValueFormat};
use sqlx::{PgPool, Postgres, Row as _, ValueRef};

use crate::adapter::{impl_table, Core, Feed, Tx, Writes};
use crate::codec::parse_text;
use crate::common::{wake, wake_channel, Common, SqlOptions};
use crate::dialect::{audited, Dialect, WaitSql};
use crate::driver::{impl_plumbing, Driver};
use crate::error::{db_error, RowError};
use crate::store_sql::{LeaseSql, StateSql};
use crate::table::{ReadAs, TableInfo};

use capture::PgCursor;

/// A PostgreSQL table as one side of a sheetsync mapping.
///
/// Construct it with [`PostgresTable::connect`] or [`PostgresTable::open`], then call
/// [`PostgresTable::install`] once to create the change capture (schema `sheetsync`).
pub struct PostgresTable {
    core: Core<Postgres>,
    oid: i64,
}

/// A pool for `url`, as the adapter opens one.
pub(crate) async fn connect_pool(url: &str) -> Result<PgPool> {
    crate::error::probe_server::<sqlx::PgConnection>(url, 5432).await?;
    PgPoolOptions::new()
        .max_connections(5)
        // A process paused mid-transaction (SIGSTOP, a frozen VM) loses its lease after
        // LEASE_TTL of silence; its open transaction must not hold the mapping's state rows
        // locked against the new owner any longer than that.
        .after_connect(|conn, _| {
            Box::pin(async move {
                let secs = crate::lease::LEASE_TTL.as_secs();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET idle_in_transaction_session_timeout = '{secs}s'"
                )))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| db_error(e, "connect"))
}

impl PostgresTable {
    /// Connects to `url` and opens `table` (in the connection's current schema).
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        Self::open(connect_pool(url).await?, None, table, SqlOptions::default()).await
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
        let common = Common::new(Postgres::PREFIX, info, options)?;
        Ok(PostgresTable {
            core: Core::new(common, pool, false),
            oid,
        })
    }

    /// What introspection found that the adapter cannot make exact; always empty here (see
    /// [`crate::SqliteTable::warnings`]).
    pub fn warnings(&self) -> &[String] {
        &self.core.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.core.pool
    }

    /// Installs (or upgrades) change capture for this table: the `sheetsync` schema with its
    /// change log, and three statement-level triggers on the table. Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(self.pool(), self.core.info(), self.oid).await
    }

    /// Removes this table's triggers and change-log entries, and the `sheetsync` capture objects
    /// once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(self.pool(), self.core.info(), self.oid).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(self.pool(), self.oid).await
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

static STATE: StateSql = StateSql {
    mappings: "sheetsync.state_mappings",
    bases: "sheetsync.state_bases",
    intents: "sheetsync.state_intents",
    leases: "sheetsync.state_leases",
    replicas: "sheetsync.state_replicas",
    now_ms: "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    dollar: true,
    install: &[
        "SELECT pg_advisory_xact_lock(hashtext('sheetsync.install'))",
        "CREATE SCHEMA IF NOT EXISTS sheetsync",
        "CREATE TABLE IF NOT EXISTS sheetsync.state_mappings (mapping text PRIMARY KEY, doc text NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sheetsync.state_bases (
            mapping text NOT NULL, kh bytea NOT NULL, k bytea NOT NULL, row_data bytea NOT NULL,
            tombstone boolean NOT NULL, synced_at bigint NOT NULL, PRIMARY KEY (mapping, kh))",
        "CREATE TABLE IF NOT EXISTS sheetsync.state_intents (
            mapping text NOT NULL, kh bytea NOT NULL, k bytea NOT NULL, intent bytea NOT NULL,
            PRIMARY KEY (mapping, kh))",
        "CREATE TABLE IF NOT EXISTS sheetsync.state_leases (
            mapping text PRIMARY KEY, epoch bigint NOT NULL, owner text NOT NULL, since bigint NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sheetsync.state_replicas (replica text PRIMARY KEY, seen bigint NOT NULL)",
    ],
    uninstall: &[
        "DROP TABLE IF EXISTS sheetsync.state_mappings",
        "DROP TABLE IF EXISTS sheetsync.state_bases",
        "DROP TABLE IF EXISTS sheetsync.state_intents",
        "DROP TABLE IF EXISTS sheetsync.state_leases",
        "DROP TABLE IF EXISTS sheetsync.state_replicas",
        "DO $$ BEGIN DROP SCHEMA IF EXISTS sheetsync; EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$",
    ],
    ensure_doc: "INSERT INTO sheetsync.state_mappings (mapping, doc) VALUES ($1, '{}') ON CONFLICT (mapping) DO NOTHING",
    lock_doc: " FOR UPDATE",
    upsert_bases: "ON CONFLICT (mapping, kh) DO UPDATE SET k = EXCLUDED.k, row_data = EXCLUDED.row_data,
        tombstone = EXCLUDED.tombstone, synced_at = EXCLUDED.synced_at",
    load_begin: "BEGIN ISOLATION LEVEL REPEATABLE READ",
    lease: LeaseSql {
        // PostgreSQL 14+; the lock connection pings every second.
        ttl: Some("SET idle_session_timeout = '{secs}s'"),
        // Advisory locks are per database; the key is a 64-bit hash of the mapping's name.
        try_lock: Some(
            "SELECT CASE WHEN pg_try_advisory_lock(hashtextextended('sheetsync.lease/' || $1, 0))
             THEN 1::bigint ELSE 0::bigint END",
        ),
        take: "INSERT INTO sheetsync.state_leases (mapping, epoch, owner, since) VALUES ($1, 1, $2, $3)
            ON CONFLICT (mapping) DO UPDATE SET epoch = sheetsync.state_leases.epoch + 1,
            owner = EXCLUDED.owner, since = EXCLUDED.since",
        beat_upsert: Some("ON CONFLICT (replica) DO UPDATE SET seen = EXCLUDED.seen"),
    },
};

#[async_trait]
impl Driver for Postgres {
    const PREFIX: &'static str = "postgres";
    const DIALECT: Dialect = Dialect::Postgres;
    const MAX_PARAMS: usize = 65_535;

    impl_plumbing!();

    fn decode(info: &TableInfo, row: &PgRow, i: usize) -> std::result::Result<Value, String> {
        decode_value(info, row, i)
    }

    /// Both transaction-local: the triggers stamp the origin on every change-log entry, and a
    /// row another session keeps locked holds only that row.
    async fn tag(
        conn: &mut sqlx::PgConnection,
        waits: &WaitSql,
        origin: Option<&str>,
    ) -> sqlx::Result<bool> {
        if let Some(origin) = origin {
            sqlx::query("SELECT set_config('sheetsync.origin', $1, true)")
                .bind(origin)
                .execute(&mut *conn)
                .await?;
        }
        let mut q = sqlx::query(audited(waits.set.clone()));
        for b in &waits.binds {
            q = Self::bind(q, b.clone());
        }
        q.execute(&mut *conn).await?;
        Ok(false)
    }

    fn untag(_tagged: bool) -> Option<&'static str> {
        None
    }

    fn state() -> &'static StateSql {
        &STATE
    }
}

#[async_trait]
impl Writes for Postgres {
    /// `ON CONFLICT DO NOTHING`: a row that another transaction inserted after the check (no
    /// row lock protects an absent key) is left as it is, and reported stale.
    async fn create(
        tx: &mut Tx<'_, Self>,
        rows: &[&Row],
        _keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        let core = tx.core;
        let q = core.rows_query(core.info().create_sql(rows.len(), cols), rows, cols);
        let stored = q.fetch_all(tx.conn()).await.map_err(|e| tx.row_error(e))?;
        Ok(stored
            .iter()
            .filter_map(|r| match core.decode(r) {
                Ok(row) => row.key(core.schema()),
                Err((k, _)) => k,
            })
            .collect())
    }

    /// Rows written with explicit keys do not move an identity or serial sequence, so a
    /// generated key may collide with one of them; then the sequence is moved past the largest
    /// key and the insert tried once more.
    async fn insert(
        tx: &mut Tx<'_, Self>,
        row: &Row,
        cols: &[usize],
    ) -> std::result::Result<Row, RowError> {
        let core = tx.core;
        let info = core.info();
        let sql = info.insert_generated_sql(cols);
        let query = || core.row_query(sql.clone(), row, cols);
        let exec = |sql: &'static str| sqlx::query(sql);
        exec("SAVEPOINT sheetsync_generated")
            .execute(tx.conn())
            .await
            .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
        let stored = match query().fetch_one(tx.conn()).await {
            Ok(r) => r,
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => {
                exec("ROLLBACK TO SAVEPOINT sheetsync_generated")
                    .execute(tx.conn())
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
                    .fetch_optional(tx.conn())
                    .await
                    .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
                query()
                    .fetch_one(tx.conn())
                    .await
                    .map_err(|e| tx.row_error(e))?
            }
            Err(e) => return Err(tx.row_error(e)),
        };
        exec("RELEASE SAVEPOINT sheetsync_generated")
            .execute(tx.conn())
            .await
            .map_err(|e| RowError::Fatal(db_error(e, "apply")))?;
        core.read_back(Some(&stored))
    }
}

/// The change feed; [`impl_table!`] makes the rest of the [`Source`](sheetsync_core::Source).
#[async_trait]
impl Feed for PostgresTable {
    async fn installed(&self) -> Result<bool> {
        self.is_installed().await
    }

    async fn position(&self) -> Result<Cursor> {
        Ok(Cursor(capture::horizon(self.pool()).await?.render()))
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
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| db_error(e, "changes"))?;
        if entries.is_empty() && since.xid >= capture::next_xid(&self.core.pool).await? {
            // The transaction counter is behind the cursor: the database was restored or
            // replaced. Entries from now on would all sort before the cursor, so start over and
            // have the engine read the table in full.
            tracing::warn!(table = %self.core.common.name, cursor = %since.render(),
                "change cursor is ahead of the database's transaction counter; reading from the start");
            self.core.common.request_full_scan();
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
            if self.core.common.is_echo(origin.as_deref()) {
                continue;
            }
            let op: i8 = e.get("op");
            if op == b'T' as i8 {
                self.core.common.request_full_scan();
                continue;
            }
            let pk: Vec<Option<String>> = e.get("pk");
            let at: DateTime<Utc> = e.get("at");
            match self.core.common.info.key_from_texts(&pk) {
                Ok(k) => keys.push((k, Some(at))),
                Err(reason) => invalid.push(Observation::new(sheetsync_core::Change::Invalid(
                    sheetsync_core::InvalidRow {
                        key: None,
                        locator: Some(format!(
                            "{} change log entry {}",
                            self.core.common.name,
                            cursor.render()
                        )),
                        reason,
                    },
                ))),
            }
        }
        Ok(ChangeBatch {
            changes: self.core.changed(keys, invalid).await?,
            cursor: Cursor(cursor.render()),
            more: entries.len() >= limit,
        })
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let c = PgCursor::parse(&cursor.0)?;
        let err = |e| db_error(e, "ack");
        let mut tx = self.core.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO sheetsync.consumers (tbl, consumer, xid, seq) VALUES ($1, $2, $3::text::xid8, $4)
             ON CONFLICT (tbl, consumer) DO UPDATE SET xid = EXCLUDED.xid, seq = EXCLUDED.seq, acked_at = now()",
        )
        .bind(self.oid)
        .bind(&self.core.common.options.consumer)
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
        let pool = self.core.pool.clone();
        let payload = self.oid.to_string();
        let interval = self
            .core
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

impl_table!(PostgresTable, "crate::PostgresStateStore");
