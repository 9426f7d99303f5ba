//! The adapter contract: [`Source`] (read a side), [`Sink`] (write a side) and the
//! [`Capabilities`] each adapter declares.
//!
//! The traits are object-safe so a host can pick adapters from configuration at run time; the
//! engine holds them as `Arc<dyn Table>`.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{ChangeBatch, Cursor, Observation, Row, RowKey, TableSchema};
use crate::state::StateDelta;

/// What an adapter can do. The engine and the conformance suite rely on these flags, so an
/// adapter must declare only what it really does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// [`Source::changes`] returns the changes since a cursor. An incremental adapter must also
    /// support [`Source::fetch`], which the engine uses to re-read rows it has to retry.
    pub incremental: bool,
    /// [`Source::fetch`] reads rows by key.
    pub fetch: bool,
    /// [`Source::wakeups`] signals when something may have changed.
    pub wakeups: bool,
    /// The side generates keys: [`WriteOp::Insert`] is supported.
    pub generated_keys: bool,
    /// Writes honour [`Expected`] and report [`WriteOutcome::Stale`] on a mismatch.
    pub conditional_writes: bool,
    /// The side can hold rows without a key ([`crate::Change::Unkeyed`]) and accepts
    /// [`WriteOp::SetKey`].
    pub unkeyed_rows: bool,
    /// Observations carry source timestamps.
    pub source_timestamps: bool,
    /// The largest number of operations [`Sink::apply`] takes in one call.
    pub max_batch: usize,
    /// [`Sink::annotate`] shows people which rows wait for them: the engine works out and
    /// hands over those rows only to a side that says so.
    pub annotations: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            incremental: false,
            fetch: false,
            wakeups: false,
            generated_keys: false,
            conditional_writes: false,
            unkeyed_rows: false,
            source_timestamps: false,
            max_batch: 10_000,
            annotations: false,
        }
    }
}

/// Reads one side of a mapping.
#[async_trait]
pub trait Source: Send + Sync {
    /// A short name for messages (`"sheet:1AbC…/Orders"`, `"postgres:public.orders"`).
    fn name(&self) -> &str;

    /// What this adapter can do.
    fn capabilities(&self) -> Capabilities;

    /// What this side is, for the mapping's state: a text that changes when the adapter points
    /// at another spreadsheet, tab, server, database, schema or table (or at a re-created one),
    /// and stays the same otherwise (a renamed tab, a new connection, a restart). The engine
    /// records it with the state and refuses to use that state with another side, whose rows
    /// would all look deleted. The default is [`Source::name`].
    async fn identity(&self) -> Result<String> {
        Ok(self.name().to_string())
    }

    /// The columns rows carry, in order, and the key.
    fn schema(&self) -> &TableSchema;

    /// Every row, streamed in pages of [`Change::Upsert`](crate::Change::Upsert),
    /// [`Change::Invalid`](crate::Change::Invalid) and [`Change::Unkeyed`](crate::Change::Unkeyed)
    /// observations. A read that fails part-way must end the stream with an error, never just
    /// stop: the engine would take the missing rows as deleted.
    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>>;

    /// The current position of the change feed, taken before a full scan so that changes made
    /// during the scan are read afterwards. `None` for adapters without a feed.
    async fn cursor(&self) -> Result<Option<Cursor>> {
        Ok(None)
    }

    /// Up to `limit` changes after `since`. Changes are state-based: an upsert carries the row as
    /// it is now, so re-reading a change is harmless.
    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let _ = (since, limit);
        Err(Error::unsupported("changes", self.name()))
    }

    /// The current rows for `keys`: an upsert for each that exists, a delete for each that does
    /// not.
    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        let _ = keys;
        Err(Error::unsupported("fetch", self.name()))
    }

    /// Called once when an engine is built, with the cursor it saved last time (maybe in
    /// another process) when it has one. The engine's first cycle reads in full; a feed kept
    /// outside the process (the Sheet's edit journal) uses this to skip what that cursor
    /// already covers instead of serving it again. Others need do nothing.
    async fn resume(&self, saved: &Cursor) -> Result<()> {
        let _ = saved;
        Ok(())
    }

    /// Called after the engine has persisted its state up to `cursor`. Queue-style feeds delete
    /// the entries they handed out; others need do nothing.
    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let _ = cursor;
        Ok(())
    }

    /// True when the feed knows it missed something (a Sheet row was deleted or inserted, which
    /// the edit trigger cannot describe): the engine then reads this side in full next cycle.
    fn full_scan_requested(&self) -> bool {
        false
    }

    /// A stream that yields whenever something may have changed (a NOTIFY, a webhook). A hint
    /// only: correctness never depends on it.
    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        None
    }
}

/// What the engine expects a row to be on the side before it writes, for conditional writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// No expectation.
    Any,
    /// The row must not exist.
    Absent,
    /// The row must hold exactly these values.
    Row(Row),
}

/// One write to a side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or update the row with the row's key.
    Upsert {
        /// The row to store.
        row: Row,
        /// What the side held when the engine read it.
        expected: Expected,
    },
    /// Insert a row whose key the side generates (its key values are `Null`).
    Insert {
        /// The row without its key.
        row: Row,
    },
    /// Delete the row with this key.
    Delete {
        /// The key.
        key: RowKey,
        /// What the side held when the engine read it.
        expected: Expected,
    },
    /// Give the unkeyed row at `locator` its key: store `row` (key included) there.
    SetKey {
        /// Where the unkeyed row was found.
        locator: String,
        /// The row with its new key.
        row: Row,
    },
}

/// The result of one [`WriteOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Done as asked.
    Applied,
    /// Done, and the side stored this row (a generated key, a value the side normalised).
    Stored(Row),
    /// Not done: the side refused this row (a constraint, a type) for this reason. The other
    /// operations of the batch are unaffected.
    Held(String),
    /// Not done: the row no longer matched [`Expected`]; the engine re-reads and merges again.
    Stale,
}

/// Context of a write batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteContext {
    /// The engine's origin tag. Sides with change capture record it so the engine's own writes
    /// never come back as changes.
    pub origin: String,
}

/// Writes one side of a mapping.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Applies `ops` (at most [`Capabilities::max_batch`]) and returns one outcome per op, in
    /// order. One bad row yields [`WriteOutcome::Held`] for that op and never fails the others;
    /// an `Err` means the batch as a whole could not be applied (the engine retries it, so
    /// applying an op twice must be harmless).
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>>;

    /// The sink's transactions that can carry the engine's state, when it has them (a database
    /// table whose state store lives in the same database). The default: none.
    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        None
    }

    /// Shows people, next to the rows themselves, which rows wait for them: `notices` is every
    /// held or conflicted row that should carry one now (a row not in it should carry none).
    /// Called after a cycle's state is safe, on a side whose [`Capabilities::annotations`] is
    /// set, whenever the set changed since the last call
    /// that succeeded (the first cycle always calls it, to clear what an earlier process left).
    /// Best effort: an `Err` is logged and the call made again after the next cycle, so it
    /// must be harmless to repeat. The default shows nothing.
    async fn annotate(&self, notices: &[RowNotice]) -> Result<()> {
        let _ = notices;
        Ok(())
    }
}

/// Why a row waits for a person, for [`Sink::annotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowNotice {
    /// The row.
    pub key: RowKey,
    /// What a person should know, in a short sentence (`held — …`, `conflict on …`).
    pub text: String,
}

/// A sink whose writes and the engine's new state commit in one transaction: after a crash or
/// a lost answer, either both are there or neither is. The engine uses it when
/// [`TransactionalSink::state_location`] equals its state store's
/// [`StateStore::location`](crate::StateStore::location).
#[async_trait]
pub trait TransactionalSink: Send + Sync {
    /// Which state store the transactions commit into; equal to that store's
    /// [`StateStore::location`](crate::StateStore::location).
    fn state_location(&self) -> String;

    /// Begins a write transaction tagged with the engine's origin.
    async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>>;
}

/// One write transaction of a [`TransactionalSink`]. Dropping it without
/// [`SinkTransaction::commit`] rolls everything back.
#[async_trait]
pub trait SinkTransaction: Send {
    /// Applies `ops` (at most [`Capabilities::max_batch`]) inside the transaction, with the
    /// outcomes of [`Sink::apply`]. An `Err` means the transaction is lost.
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// Commits `state` for `mapping` together with the writes.
    async fn commit(self: Box<Self>, mapping: &str, state: &StateDelta) -> Result<()>;
}

/// Conveniences over any [`Source`], for hosts, tools and tests; implemented for every source.
///
/// ```
/// # use sheetsync_core::{Column, ColumnType, MemoryTable, Row, SourceExt, TableSchema, Value};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sheetsync_core::Result<()> {
/// let schema = TableSchema::new("t", vec![Column::new("id", ColumnType::Int)], &["id"])?;
/// let table = MemoryTable::new("t", schema);
/// table.upsert(Row::new(vec![Value::Int(2)]));
/// table.upsert(Row::new(vec![Value::Int(1)]));
/// assert_eq!(table.scan_rows().await?, vec![Row::new(vec![Value::Int(1)]), Row::new(vec![Value::Int(2)])]);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait SourceExt: Source {
    /// Everything a full scan observes, every page.
    async fn scan_all(&self) -> Result<Vec<Observation>> {
        use futures::StreamExt;
        let mut all = Vec::new();
        let mut pages = self.scan();
        while let Some(page) = pages.next().await {
            all.extend(page?);
        }
        Ok(all)
    }

    /// The rows a full scan shows, sorted by key; rows that could not be read and rows without
    /// a key are left out.
    async fn scan_rows(&self) -> Result<Vec<Row>> {
        let schema = self.schema();
        let mut rows: Vec<(RowKey, Row)> = self
            .scan_all()
            .await?
            .into_iter()
            .filter_map(|o| match o.change {
                crate::model::Change::Upsert(r) => Some((r.key(schema)?, r)),
                _ => None,
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }
}

impl<T: Source + ?Sized> SourceExt for T {}

/// A side that can be read and written: what the engine drives.
pub trait Table: Source + Sink {}

impl<T: Source + Sink + ?Sized> Table for T {}
