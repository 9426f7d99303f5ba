//! The MySQL/MariaDB adapter (MySQL 8, MariaDB 10.5 or later).

mod capture;
mod introspect;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sheetsync_core::{
    Change, ChangeBatch, Cursor, Error, ErrorKind, InvalidRow, Observation, Result, Row, RowKey,
    Value,
};
use sqlx::mysql::{MySqlPoolOptions, MySqlRow};
use sqlx::{MySql, MySqlPool, Row as _};

use crate::adapter::{impl_table, Core, Feed, Tx, Writes};
use crate::codec::parse_text;
use crate::common::{wake, wake_channel, Common, SqlOptions};
use crate::dialect::{audited, Dialect, WaitSql};
use crate::driver::{impl_plumbing, Driver};
use crate::error::{db_error, RowError};
use crate::statements::Lock;
use crate::store_sql::{LeaseSql, StateSql};
use crate::table::{ReadAs, TableInfo};

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
    core: Core<MySql>,
    queue: tokio::sync::Mutex<Queue>,
}

/// A pool for `url`, as the adapter opens one.
pub(crate) async fn connect_pool(url: &str) -> Result<MySqlPool> {
    crate::error::probe_server::<sqlx::MySqlConnection>(url, 3306).await?;
    MySqlPoolOptions::new()
        .max_connections(5)
        // As on PostgreSQL: a paused process's open transaction ends after LEASE_TTL of
        // silence (MariaDB's idle_transaction_timeout; MySQL has no such setting and keeps it).
        .after_connect(|conn, _| {
            Box::pin(async move {
                let secs = crate::lease::LEASE_TTL.as_secs();
                let set = format!("SET SESSION idle_transaction_timeout = {secs}");
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(set)).execute(conn).await {
                    tracing::debug!(error = %e, "no idle_transaction_timeout (MySQL)");
                }
                Ok(())
            })
        })
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
        .map_err(|e| db_error(e, "connect"))
}

impl MySqlTable {
    /// Connects to `url` (which names the database) and opens `table`.
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        Self::open(connect_pool(url).await?, table, SqlOptions::default()).await
    }

    /// Opens `table` of the connection's database through `pool`, reading its columns, types
    /// and primary key. The pool's sessions must use `time_zone = '+00:00'` (sqlx's default).
    pub async fn open(pool: MySqlPool, table: &str, options: SqlOptions) -> Result<Self> {
        let info = introspect::introspect(&pool, table).await?;
        let err = |e| db_error(e, "introspect");
        let mariadb = MySql::mariadb(&mut *pool.acquire().await.map_err(err)?)
            .await
            .map_err(err)?;
        Ok(MySqlTable {
            core: Core::new(Common::new(MySql::PREFIX, info, options)?, pool, mariadb),
            queue: tokio::sync::Mutex::new(Queue::default()),
        })
    }

    /// What introspection found that the adapter cannot make exact; always empty here (see
    /// [`crate::SqliteTable::warnings`]).
    pub fn warnings(&self) -> &[String] {
        &self.core.common.warnings
    }

    /// The connection pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.core.pool
    }

    /// Installs change capture for this table: the `_sheetsync_*` tables and three triggers.
    /// Idempotent.
    pub async fn install(&self) -> Result<()> {
        capture::install(self.pool(), self.core.info()).await
    }

    /// Removes this table's triggers and queue entries, and the `_sheetsync_*` capture tables
    /// once no table uses them. The table's own columns and rows are never touched.
    pub async fn uninstall(&self) -> Result<()> {
        capture::uninstall(self.pool(), self.core.info()).await
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        capture::is_installed(self.pool(), &self.core.info().table).await
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

static STATE: StateSql = StateSql {
    mappings: "`_sheetsync_state_mappings`",
    bases: "`_sheetsync_state_bases`",
    intents: "`_sheetsync_state_intents`",
    leases: "`_sheetsync_state_leases`",
    replicas: "`_sheetsync_state_replicas`",
    now_ms: "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
    dollar: false,
    install: &[
        "CREATE TABLE IF NOT EXISTS `_sheetsync_state_mappings` (
            mapping VARCHAR(191) NOT NULL PRIMARY KEY, doc LONGTEXT NOT NULL
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS `_sheetsync_state_bases` (
            mapping VARCHAR(191) NOT NULL, kh BINARY(16) NOT NULL, k LONGBLOB NOT NULL,
            row_data LONGBLOB NOT NULL, tombstone BOOLEAN NOT NULL, synced_at BIGINT NOT NULL,
            PRIMARY KEY (mapping, kh)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS `_sheetsync_state_intents` (
            mapping VARCHAR(191) NOT NULL, kh BINARY(16) NOT NULL, k LONGBLOB NOT NULL,
            intent LONGBLOB NOT NULL, PRIMARY KEY (mapping, kh)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS `_sheetsync_state_leases` (
            mapping VARCHAR(191) NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL,
            owner VARCHAR(255) NOT NULL, since BIGINT NOT NULL
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS `_sheetsync_state_replicas` (
            replica VARCHAR(191) NOT NULL PRIMARY KEY, seen BIGINT NOT NULL
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
    uninstall: &[
        "DROP TABLE IF EXISTS `_sheetsync_state_mappings`, `_sheetsync_state_bases`, `_sheetsync_state_intents`, `_sheetsync_state_leases`, `_sheetsync_state_replicas`",
    ],
    ensure_doc: "INSERT IGNORE INTO `_sheetsync_state_mappings` (mapping, doc) VALUES (?, '{}')",
    lock_doc: " FOR UPDATE",
    // Only the primary key is unique in this table of ours.
    upsert_bases: "ON DUPLICATE KEY UPDATE k = VALUES(k), row_data = VALUES(row_data),
        tombstone = VALUES(tombstone), synced_at = VALUES(synced_at)",
    load_begin: "BEGIN",
    lease: LeaseSql {
        ttl: Some("SET SESSION wait_timeout = {secs}"),
        // Named locks are server-wide and their names at most 64 characters: the name hashes
        // the database and the mapping.
        try_lock: Some(
            "SELECT CAST(COALESCE(GET_LOCK(CONCAT('sheetsync:', SHA1(CONCAT(DATABASE(), '/', ?))), 0), 0) AS SIGNED)",
        ),
        take: "INSERT INTO `_sheetsync_state_leases` (mapping, epoch, owner, since) VALUES (?, 1, ?, ?)
            ON DUPLICATE KEY UPDATE epoch = epoch + 1, owner = VALUES(owner), since = VALUES(since)",
        beat_upsert: Some("ON DUPLICATE KEY UPDATE seen = VALUES(seen)"),
    },
};

#[async_trait]
impl Driver for MySql {
    const PREFIX: &'static str = "mysql";
    const DIALECT: Dialect = Dialect::MySql;
    const MAX_PARAMS: usize = 65_535;

    impl_plumbing!();

    fn decode(info: &TableInfo, row: &MySqlRow, i: usize) -> std::result::Result<Value, String> {
        decode_value(info, row, i)
    }

    async fn mariadb(conn: &mut sqlx::MySqlConnection) -> sqlx::Result<bool> {
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(conn)
            .await?;
        Ok(version.to_ascii_lowercase().contains("mariadb"))
    }

    /// Session-scoped (saved first, restored before the transaction ends): a row another
    /// session keeps locked holds only that row.
    async fn prepare_session(
        conn: &mut sqlx::MySqlConnection,
        waits: &WaitSql,
    ) -> sqlx::Result<Option<String>> {
        let mut q = sqlx::query(audited(waits.set.clone()));
        for b in &waits.binds {
            q = Self::bind(q, b.clone());
        }
        q.execute(&mut *conn).await?;
        Ok(waits.restore.map(str::to_string))
    }

    /// Session-scoped too: cleared before commit, and by the restore statement, and by the
    /// adapter's pools on release.
    async fn tag(
        conn: &mut sqlx::MySqlConnection,
        _waits: &WaitSql,
        origin: Option<&str>,
    ) -> sqlx::Result<bool> {
        let Some(origin) = origin else {
            return Ok(false);
        };
        sqlx::query("SET @sheetsync_origin = ?")
            .bind(origin)
            .execute(&mut *conn)
            .await?;
        Ok(true)
    }

    fn untag(tagged: bool) -> Option<&'static str> {
        tagged.then_some("SET @sheetsync_origin = NULL")
    }

    fn state() -> &'static StateSql {
        &STATE
    }
}

#[async_trait]
impl Writes for MySql {
    /// `INSERT ... ON DUPLICATE KEY UPDATE` would also fire on a collision with any other unique
    /// index and then update that other row. So: lock the keys, insert the new rows, and update
    /// the existing ones through a join on the primary key; a unique collision is an error that
    /// holds the row.
    async fn upsert(
        tx: &mut Tx<'_, Self>,
        rows: &[&Row],
        cols: &[usize],
    ) -> std::result::Result<(), RowError> {
        let core = tx.core;
        let keys: Vec<RowKey> = rows
            .iter()
            .map(|r| r.key(core.schema()).expect("upserted rows have keys"))
            .collect();
        let existing: HashSet<RowKey> = core
            .fetch_rows(tx.conn(), &keys, Lock::Wait)
            .await
            .map_err(|e| tx.row_error(e))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for (r, k) in rows.iter().zip(&keys) {
            if existing.contains(k) {
                old.push(*r);
            } else {
                new.push(*r);
            }
        }
        let mut statements = Vec::new();
        if !new.is_empty() {
            statements.push((core.info().insert_sql(new.len(), cols), new));
        }
        if let Some(sql) = core
            .info()
            .update_join_sql(old.len(), cols)
            .filter(|_| !old.is_empty())
        {
            statements.push((sql, old));
        }
        for (sql, rows) in statements {
            Self::execute(tx.conn(), core.rows_query(sql, &rows, cols))
                .await
                .map_err(|e| tx.row_error(e))?;
        }
        Ok(())
    }

    /// A plain `INSERT`: a row that another transaction inserted after the check (possible
    /// under READ COMMITTED, which takes no gap locks) makes it fail instead of being updated.
    async fn create(
        tx: &mut Tx<'_, Self>,
        rows: &[&Row],
        keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        let core = tx.core;
        let q = core.rows_query(core.info().insert_sql(rows.len(), cols), rows, cols);
        Self::execute(tx.conn(), q)
            .await
            .map_err(|e| tx.row_error(e))?;
        Ok(keys.iter().map(|k| (*k).clone()).collect())
    }

    /// No `RETURNING`: the stored row is read back by the generated key.
    async fn insert(
        tx: &mut Tx<'_, Self>,
        row: &Row,
        cols: &[usize],
    ) -> std::result::Result<Row, RowError> {
        let core = tx.core;
        let q = core.row_query(core.info().insert_generated_sql(cols), row, cols);
        let done = q.execute(tx.conn()).await.map_err(|e| tx.row_error(e))?;
        let id = i64::try_from(done.last_insert_id()).map_err(|_| {
            RowError::Held(format!(
                "generated key {} does not fit a 64-bit integer",
                done.last_insert_id()
            ))
        })?;
        let key = RowKey::from_values(&[Value::Int(id)]);
        let found = core
            .fetch_rows(tx.conn(), std::slice::from_ref(&key), Lock::None)
            .await
            .map_err(|e| tx.row_error(e))?;
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
}

/// The change feed; [`impl_table!`] makes the rest of the [`Source`](sheetsync_core::Source).
#[async_trait]
impl Feed for MySqlTable {
    async fn installed(&self) -> Result<bool> {
        self.is_installed().await
    }

    async fn position(&self) -> Result<Cursor> {
        let q = self.queue.lock().await;
        Ok(Cursor(format!("mysql:{}:0", q.next.saturating_sub(1))))
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
            .bind(&self.core.common.info.table)
            .bind(after)
            .bind(limit as u64)
            .fetch_all(&self.core.pool)
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
            if self.core.common.is_echo(origin.as_deref()) {
                continue;
            }
            let id: u64 = r.get("id");
            let pk: String = r.get("pk");
            // TIMESTAMP decodes as an instant (sqlx sets the session time zone to UTC), not as
            // a NaiveDateTime: without this every change would lose its time.
            let at: Option<DateTime<Utc>> = r.try_get("at").ok();
            let parsed = serde_json::from_str::<Vec<Option<String>>>(&pk)
                .map_err(|e| format!("change-log key {pk:?} is not a JSON array of text: {e}"))
                .and_then(|texts| self.core.common.info.key_from_texts(&texts));
            match parsed {
                Ok(k) => keys.push((k, at)),
                Err(reason) => invalid.push(Observation::new(Change::Invalid(InvalidRow {
                    key: None,
                    locator: Some(format!("{} change log entry {id}", self.core.common.name)),
                    reason,
                }))),
            }
        }
        Ok(ChangeBatch {
            changes: self.core.changed(keys, invalid).await?,
            cursor: Cursor(format!("mysql:{n}:{after}")),
            more: got.len() == limit,
        })
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
            del.execute(&self.core.pool)
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
        let pool = self.core.pool.clone();
        let table = self.core.common.info.table.clone();
        let interval = self
            .core
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

impl_table!(MySqlTable, "crate::MySqlStateStore");
