//! What every database adapter shares: options, the origin filter, capabilities, and turning
//! changed keys into observations.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::{Capabilities, Change, InvalidRow, Observation, Row, RowKey, TableSchema};
use tokio::sync::mpsc;

use crate::dialect::Waits;
use crate::table::TableInfo;

/// Options shared by the three adapters.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// The largest batch [`Sink::apply`](sheetsync_core::Sink::apply) takes, reported as
    /// [`Capabilities::max_batch`]. Default 10,000.
    pub max_batch: usize,
    /// The most rows one `INSERT`/`DELETE` statement carries (further limited by the database's
    /// bind parameter limit). Default 1,000.
    pub statement_rows: usize,
    /// The engine origin whose changes the feed skips. `None` (the default) skips every change
    /// written with any origin tag, i.e. by any sheetsync engine; set it when several engines
    /// write the same table and must see each other's writes.
    pub origin: Option<String>,
    /// The name under which this reader records how far it has read (PostgreSQL and SQLite keep
    /// change-log rows until every consumer of the table has acknowledged them). Default
    /// `"default"`.
    pub consumer: String,
    /// How often the wake-up stream polls: the timer poll on PostgreSQL (NOTIFY is the fast path),
    /// the change-log poll on MySQL, the `PRAGMA data_version` poll on SQLite. Default: 10 s on
    /// PostgreSQL, 500 ms on MySQL, 250 ms on SQLite.
    pub poll_interval: Option<Duration>,
    /// Sync only these columns, in this order (the key columns must be among them). Other
    /// columns are never read or written: inserted rows get their defaults. `None` (the
    /// default): every column, in table order.
    pub columns: Option<Vec<String>>,
    /// How long a write waits for a lock that another transaction holds on a row (or the
    /// table) before it gives up on that row: the row is reported held, with the reason, and
    /// the engine retries it next cycle while the rest of the batch is written. PostgreSQL
    /// `lock_timeout`; MySQL/MariaDB `innodb_lock_wait_timeout` and `lock_wait_timeout` (whole
    /// seconds, rounded up). SQLite locks the whole database for a write: its busy timeout
    /// bounds the wait, and a batch that cannot get the lock fails as a whole with a temporary
    /// error. Zero means no limit. Default 5 s.
    pub lock_timeout: Duration,
    /// How long one write statement may run before the database cancels it; the rows of a
    /// cancelled statement are written one by one, and a row that still times out is held and
    /// retried like a locked one. PostgreSQL `statement_timeout`, MariaDB `max_statement_time`,
    /// MySQL `max_execution_time` (which MySQL applies to `SELECT`s only, here the ones that
    /// lock rows); SQLite has no such limit. Zero means no limit. Default 30 s (a statement
    /// carries up to [`SqlOptions::statement_rows`] rows).
    pub statement_timeout: Duration,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_batch: 10_000,
            statement_rows: 1_000,
            origin: None,
            consumer: "default".into(),
            poll_interval: None,
            columns: None,
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// The parts of an adapter that do not depend on the database.
pub(crate) struct Common {
    pub info: TableInfo,
    pub schema: TableSchema,
    pub name: String,
    pub options: SqlOptions,
    pub select_all: String,
    /// What introspection found that the adapter cannot make exact (see `warnings()`).
    pub warnings: Vec<String>,
    used_origins: Mutex<HashSet<String>>,
    full_scan: AtomicBool,
}

impl Common {
    pub(crate) fn new(
        prefix: &str,
        info: TableInfo,
        options: SqlOptions,
    ) -> sheetsync_core::Result<Self> {
        let info = match &options.columns {
            Some(names) => info.with_columns(names)?,
            None => info,
        };
        let schema = info.table_schema()?;
        Ok(Common {
            name: format!("{prefix}:{}", info.display()),
            select_all: info.select_all_sql(),
            schema,
            info,
            options,
            warnings: Vec::new(),
            used_origins: Mutex::new(HashSet::new()),
            full_scan: AtomicBool::new(false),
        })
    }

    /// How long a write transaction may wait.
    pub(crate) fn waits(&self) -> Waits {
        Waits {
            lock: self.options.lock_timeout,
            statement: self.options.statement_timeout,
        }
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        Capabilities {
            incremental: true,
            fetch: true,
            wakeups: true,
            generated_keys: self.info.generated_key,
            conditional_writes: true,
            unkeyed_rows: false,
            source_timestamps: false,
            max_batch: self.options.max_batch.max(1),
            annotations: false,
        }
    }

    /// The feed saw something it cannot describe row by row (a TRUNCATE, a cursor from another
    /// history): the engine should read the table in full.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn request_full_scan(&self) {
        self.full_scan.store(true, Ordering::SeqCst);
    }

    /// Whether a full read was requested since the last one started.
    pub(crate) fn full_scan_requested(&self) -> bool {
        self.full_scan.load(Ordering::SeqCst)
    }

    /// A full read starts (its cursor is taken first).
    pub(crate) fn full_scan_started(&self) {
        self.full_scan.store(false, Ordering::SeqCst);
    }

    /// Remembers an origin the engine writes with.
    pub(crate) fn note_origin(&self, origin: &str) {
        self.used_origins
            .lock()
            .expect("origin set lock poisoned")
            .insert(origin.to_string());
    }

    /// True when a change-log entry with this origin was written by the engine and must not come
    /// back as a change.
    pub(crate) fn is_echo(&self, origin: Option<&str>) -> bool {
        let Some(o) = origin else { return false };
        match &self.options.origin {
            None => true,
            Some(mine) => {
                o == mine
                    || self
                        .used_origins
                        .lock()
                        .expect("origin set lock poisoned")
                        .contains(o)
            }
        }
    }

    /// Fetched rows by key; a row that does not decode keeps its reason (rows whose key is
    /// unreadable are left out).
    pub(crate) fn keyed(
        &self,
        decoded: impl IntoIterator<Item = Result<Row, (Option<RowKey>, String)>>,
    ) -> Vec<(RowKey, Result<Row, String>)> {
        decoded
            .into_iter()
            .filter_map(|d| match d {
                Ok(row) => row.key(&self.schema).map(|k| (k, Ok(row))),
                Err((k, reason)) => k.map(|k| (k, Err(reason))),
            })
            .collect()
    }

    /// The observations for changed keys (in first-seen order), given the current rows.
    pub(crate) fn observations(
        &self,
        keys: &[(RowKey, Option<DateTime<Utc>>)],
        mut found: HashMap<RowKey, Result<Row, String>>,
    ) -> Vec<Observation> {
        keys.iter()
            .map(|(k, at)| {
                let change = match found.remove(k) {
                    Some(Ok(row)) => Change::Upsert(row),
                    Some(Err(reason)) => Change::Invalid(InvalidRow {
                        key: Some(k.clone()),
                        locator: Some(format!("{} row {k}", self.name)),
                        reason,
                    }),
                    None => Change::Delete(k.clone()),
                };
                Observation { change, at: *at }
            })
            .collect()
    }

    /// A scanned row, or the reason it cannot be read.
    pub(crate) fn scanned(
        &self,
        row: Result<Row, (Option<RowKey>, String)>,
        n: usize,
    ) -> Observation {
        match row {
            Ok(r) => Observation::row(r),
            Err((key, reason)) => Observation::new(Change::Invalid(InvalidRow {
                locator: Some(match &key {
                    Some(k) => format!("{} row {k}", self.name),
                    None => format!("{} row #{n} of the scan", self.name),
                }),
                key,
                reason,
            })),
        }
    }

    /// Decodes a row value by value; a failure names the column and keeps the key if it decoded.
    pub(crate) fn decode_row(
        &self,
        mut value: impl FnMut(usize) -> Result<sheetsync_core::Value, String>,
    ) -> Result<Row, (Option<RowKey>, String)> {
        let mut vals = Vec::with_capacity(self.info.columns.len());
        let mut error = None;
        for (i, c) in self.info.columns.iter().enumerate() {
            match value(i) {
                Ok(v) => vals.push(v),
                Err(e) => {
                    if error.is_none() {
                        error = Some(format!("column {:?}: {e}", c.name));
                    }
                    vals.push(sheetsync_core::Value::Null);
                }
            }
        }
        let row = Row::new(vals);
        match error {
            None => Ok(row),
            Some(e) => {
                let key_ok = self.info.key.iter().all(|&i| !row.0[i].is_null());
                Err((if key_ok { row.key(&self.schema) } else { None }, e))
            }
        }
    }
}

/// Changed keys in first-seen order with the latest time each was seen.
pub(crate) fn dedup_keys(
    entries: impl IntoIterator<Item = (RowKey, Option<DateTime<Utc>>)>,
) -> Vec<(RowKey, Option<DateTime<Utc>>)> {
    let mut order: Vec<(RowKey, Option<DateTime<Utc>>)> = Vec::new();
    let mut index: HashMap<RowKey, usize> = HashMap::new();
    for (k, at) in entries {
        match index.get(&k) {
            Some(&i) => order[i].1 = order[i].1.max(at),
            None => {
                index.insert(k.clone(), order.len());
                order.push((k, at));
            }
        }
    }
    order
}

/// A wake-up stream fed by a background task: the sender side is handed to the task, which
/// stops when the stream is dropped.
pub(crate) fn wake_channel() -> (mpsc::Sender<()>, BoxStream<'static, ()>) {
    let (tx, rx) = mpsc::channel::<()>(1);
    let stream = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    )
    .boxed();
    (tx, stream)
}

/// Signals a wake-up; a pending one already covers it.
pub(crate) fn wake(tx: &mpsc::Sender<()>) {
    let _ = tx.try_send(());
}
