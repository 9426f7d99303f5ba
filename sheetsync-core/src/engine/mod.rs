//! The engine: reads both sides, merges against the base, applies, then persists.
//!
//! One cycle ([`Engine::run_once`]), one module per phase:
//! 1. `read`: read each side, in full or through its change feed since the persisted cursor;
//! 2. `plan`: find the rows that differ from their base on either side (plus rows to retry,
//!    rows with a write intent and rows with a pending delete), give keys to new rows, merge
//!    each row ([`crate::merge`]) and park a side's deletes in the approval queue if they trip
//!    the mass-delete guard (`deletes`). The result is the internal work list (`work`), whose
//!    public part is the dry-run [`Plan`]; every write of the cycle is in it, including a
//!    database write that waits for its Sheet part;
//! 3. `write`: persist a [`WriteIntent`](crate::WriteIntent) for every row about to be written,
//!    then apply the writes, the Sheet first and then the database, so a database row is only
//!    written once the Sheet accepted its part;
//! 4. `settle`: a pure function from the state, the work and the writes' outcomes to the new
//!    state (one [`StateDelta`](crate::StateDelta)) and the events to tell the host;
//! 5. `cycle`: commit that delta (in the database's write transaction when the database side
//!    offers it), update memory, emit the events, and only then write generated keys back and
//!    acknowledge the change feeds.
//!
//! A crash anywhere re-runs the merge on the next start. Content that equals a pending intent is
//! the engine's own write, never a person's edit (`intent`): the intent is completed (every
//! side written holds its target, which becomes the base) or its writes are merged as if they
//! had not happened. So nothing is duplicated, lost or resurrected.

mod builder;
mod cycle;
mod deletes;
mod events;
mod identity;
mod intent;
mod notices;
mod operator;
mod plan;
mod read;
mod settle;
mod state;
mod stuck;
mod view;
mod work;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{broadcast, Mutex, Notify};
use tracing::Instrument;

use crate::clock::Clock;
use crate::error::Result;
use crate::mapping::{KeyStrategy, MappingConfig};
use crate::model::{Side, TableSchema};
use crate::resolve::ConflictResolver;
use crate::state::StateStore;
use crate::table::Table;

pub use builder::EngineBuilder;
pub use deletes::DeleteSelection;
pub use events::{CycleReport, CycleTimings, Event, QueueChange, SideCounts, WriteKind};
pub use work::{Plan, PlannedOp};

pub(crate) use state::BaseEntry;
use state::EngineState;

/// The sync engine for one mapping. Cheap to share: wrap it in an `Arc` to run it in the
/// background and resolve conflicts from elsewhere.
pub struct Engine {
    mapping: MappingConfig,
    schema: TableSchema,
    sheet: Arc<dyn Table>,
    db: Arc<dyn Table>,
    store: Arc<dyn StateStore>,
    resolver: Arc<dyn ConflictResolver>,
    key_strategy: KeyStrategy,
    origin: String,
    clock: Clock,
    events: broadcast::Sender<Event>,
    wake: Notify,
    /// Marks full reads (see [`BaseEntry`]).
    scan_gen: AtomicU32,
    state: Mutex<EngineState>,
    /// What status callers read without waiting for a cycle (see [`operator`]).
    published: std::sync::RwLock<Arc<operator::Published>>,
    /// Decisions made while a cycle ran, for the next one.
    inbox: std::sync::Mutex<Vec<operator::Decision>>,
    /// The lease the mapping runs under, if any, and its epoch (every state commit's fence).
    owner: Option<Arc<dyn crate::Ownership>>,
    fence: Option<u64>,
    /// Set when [`Engine::run`] returned because the lease was lost.
    lost_ownership: std::sync::atomic::AtomicBool,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Sheet => 0,
        Side::Db => 1,
    }
}

impl Engine {
    /// Starts building an engine for `mapping` between a Sheet side and a database side.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// let db = Arc::new(MemoryTable::new("db", schema));
    /// db.upsert(row("A-1", 5));
    /// let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    ///     .build()
    ///     .await?;
    /// engine.run_once().await?;
    /// assert_eq!(sheet.rows(), db.rows());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(
        mapping: MappingConfig,
        sheet: Arc<dyn Table>,
        db: Arc<dyn Table>,
    ) -> EngineBuilder {
        EngineBuilder {
            mapping,
            sheet,
            db,
            store: None,
            resolver: None,
            origin: None,
            start_afresh: false,
            owner: None,
        }
    }

    /// The mapping's schema.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// The mapping.
    pub fn mapping(&self) -> &MappingConfig {
        &self.mapping
    }

    /// The origin tag of the engine's writes.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The ownership epoch of the lease this engine runs under
    /// ([`EngineBuilder::owner`]), if any.
    pub fn ownership_epoch(&self) -> Option<u64> {
        self.fence
    }

    /// True once [`Engine::run`] returned because the mapping's lease
    /// ([`EngineBuilder::owner`]) was lost: build a new engine when the lease is held again.
    pub fn lost_ownership(&self) -> bool {
        self.lost_ownership.load(Ordering::Relaxed)
    }

    /// A stream of [`Event`]s from now on.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// let mut events = engine.subscribe();
    /// db.upsert(row("A-1", 5));
    /// engine.run_once().await?;
    /// let mut written = Vec::new();
    /// while let Ok(event) = events.try_recv() {
    ///     if let Event::Synced { key, side, .. } = event {
    ///         written.push((key, side));
    ///     }
    /// }
    /// let a1 = RowKey::from_values(&["A-1".into()]);
    /// assert_eq!(written, vec![(Some(a1), Side::Sheet)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Asks a running [`Engine::run`] loop for a cycle now (a host that knows a side changed,
    /// say from a webhook, need not wait for the poll interval). See [`Engine::run`].
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn table(&self, side: Side) -> &dyn Table {
        match side {
            Side::Sheet => &*self.sheet,
            Side::Db => &*self.db,
        }
    }

    /// What the next cycle would do, without writing anything or changing state.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// db.upsert(row("A-1", 5));
    /// let plan = engine.plan().await?;
    /// assert_eq!(plan.sheet.len(), 1, "the row would be written to the Sheet");
    /// assert!(plan.db.is_empty());
    /// assert!(sheet.rows().is_empty(), "a plan writes nothing");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn plan(&self) -> Result<Plan> {
        let st = self.state.lock().await;
        let reads = self.read_sides(&st).await?;
        Ok(self.make_plan(&st, &reads).plan)
    }

    /// Runs one cycle: reads both sides, merges, writes, and commits the new state. The report
    /// says what it did.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// db.upsert(row("A-1", 5));
    /// let report = engine.run_once().await?;
    /// assert_eq!(report.writes.get(Side::Sheet), 1);
    /// // Steady state: nothing to write, and the engine's own write is not taken for an edit.
    /// assert_eq!(engine.run_once().await?.writes.total(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_once(&self) -> Result<CycleReport> {
        let mut st = self.state.lock().await;
        st.cycle += 1;
        let span = tracing::info_span!("cycle", mapping = %self.mapping.name, cycle = st.cycle);
        // A span guard must not live across an await: instrument the future instead.
        let result = self.cycle(&mut st).instrument(span).await;
        self.publish(&st);
        result
    }

    async fn cycle(&self, st: &mut EngineState) -> Result<CycleReport> {
        if st.reload {
            self.reload(st).await?;
        }
        self.apply_deferred(st).await;
        let started = Instant::now();
        let reads = match self.read_sides(st).await {
            Ok(r) => r,
            Err(e) => {
                self.emit(Event::error(None, &e));
                return Err(e);
            }
        };
        let read = started.elapsed();
        let work = self.make_plan(st, &reads);
        let timings = CycleTimings {
            read,
            plan: started.elapsed() - read,
            ..CycleTimings::default()
        };
        self.carry_out(st, reads, work, (started, timings)).await
    }

    /// Replaces the state in memory with what the store holds (after a commit whose outcome is
    /// unknown), keeping what only this process knows.
    async fn reload(&self, st: &mut EngineState) -> Result<()> {
        let snap = self.store.load(&self.mapping.name).await?;
        tracing::info!(mapping = %self.mapping.name, "reloading the state after a failed commit");
        let fresh = EngineState::from_snapshot(snap);
        let keep = std::mem::take(st);
        *st = EngineState {
            cycle: keep.cycle,
            last_full: keep.last_full,
            allow_deletes: keep.allow_deletes,
            identity_to_record: keep.identity_to_record,
            first_seen: keep.first_seen,
            stuck: keep.stuck,
            annotated: keep.annotated,
            ..fresh
        };
        Ok(())
    }

    /// Runs cycles until `shutdown` completes: after a wake-up from either side or
    /// [`Engine::wake`], and at least every poll interval. A failed cycle is reported as an
    /// [`Event::Error`] and retried with backoff; the loop itself never gives up.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// let engine = Arc::new(engine);
    /// let mut events = engine.subscribe();
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let running = tokio::spawn({
    ///     let engine = engine.clone();
    ///     async move { engine.run(async { let _ = stopped.await; }).await }
    /// });
    /// db.upsert(row("A-1", 5));
    /// engine.wake(); // a cycle now, not at the next poll
    /// while !matches!(events.recv().await, Ok(Event::Cycle(r)) if r.writes.total() > 0) {}
    /// assert_eq!(sheet.rows(), db.rows());
    /// stop.send(()).unwrap();
    /// running.await.unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut wakeups = futures::stream::select_all(
            [self.sheet.wakeups(), self.db.wakeups()]
                .into_iter()
                .flatten(),
        );
        tokio::pin!(shutdown);
        let lost = async {
            match &self.owner {
                Some(owner) => owner.lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(lost);
        let poll = self.mapping.timing.poll_interval();
        let mut failures = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            let wait = match self.run_once().await {
                Ok(_) => {
                    failures = 0;
                    until_next_poll(poll, started.elapsed())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync cycle failed");
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_millis(200u64 << failures.min(8));
                    backoff.min(poll)
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = &mut lost => {
                    tracing::error!(mapping = %self.mapping.name, epoch = ?self.fence, "lost the mapping's lease: another process may own it now, so this one stops writing it");
                    self.lost_ownership.store(true, Ordering::Relaxed);
                    return;
                }
                _ = self.wake.notified() => {}
                Some(()) = wakeups.next(), if !wakeups.is_empty() => {
                    // Coalesce a burst of wake-ups into one cycle.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// How long to wait after a cycle that took `took` for the next one: polls start `poll` apart
/// (a change waits at most one interval for the next read to begin, however long reads take),
/// but a cycle longer than the interval is followed by a quarter of it, so that reads are not
/// made back to back.
fn until_next_poll(poll: Duration, took: Duration) -> Duration {
    poll.saturating_sub(took).max(poll / 4)
}

#[cfg(test)]
mod tests;
