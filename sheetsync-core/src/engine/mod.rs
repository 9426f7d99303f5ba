//! The engine: reads both sides, merges against the base, applies, then persists.
//!
//! One cycle ([`Engine::run_once`]):
//! 1. read each side, in full or through its change feed since the persisted cursor;
//! 2. find the rows that differ from their base on either side (plus rows to retry, rows with a
//!    write intent and rows with a pending delete), give keys to new rows, and merge each row
//!    ([`crate::merge`]);
//! 3. park a side's deletes in the approval queue if they trip the mass-delete guard;
//! 4. persist a [`WriteIntent`](crate::WriteIntent) for every row about to be written;
//! 5. apply the writes, the Sheet first and then the database, so a database row is only
//!    written once the Sheet accepted its part;
//! 6. persist the new bases, cursors, held rows, conflicts and queue as one [`StateDelta`]
//!    (in the database's write transaction when the database side offers it), and only then
//!    acknowledge the change feeds.
//!
//! A crash anywhere re-runs the merge on the next start. Content that equals a pending intent is
//! the engine's own write, never a person's edit: the intent is completed (every side written
//! holds its target, which becomes the base) or its writes are merged as if they had not
//! happened. So nothing is duplicated, lost or resurrected.

mod apply;
mod deletes;
mod events;
mod identity;
mod intent;
mod operator;
mod plan;
mod read;
mod stuck;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::{broadcast, Mutex, Notify};
use tracing::Instrument;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::{KeyStrategy, MappingConfig};
use crate::model::{Cursor, KeyMap, RowKey, Side, TableSchema};
use crate::resolve::{ConflictResolver, ResolverSpec};
use crate::state::{
    Choice, ConflictRecord, HeldRow, MappingIdentity, PendingDelete, RecentDeletes, RowBase,
    StateSnapshot, StateStore, WriteIntent,
};
use crate::table::Table;

pub use deletes::DeleteSelection;
pub use events::{CycleReport, CycleTimings, Event, QueueChange, SideCounts, WriteKind};
pub use plan::{Plan, PlannedOp};

use read::SideRead;

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

#[derive(Default)]
struct EngineState {
    bases: KeyMap<BaseEntry>,
    /// How many bases are not tombstones.
    live_bases: usize,
    cursors: BTreeMap<Side, Cursor>,
    pending: BTreeSet<RowKey>,
    held: Vec<HeldRow>,
    conflicts: BTreeMap<RowKey, ConflictRecord>,
    choices: BTreeMap<RowKey, Choice>,
    /// Rows whose writes keep failing (see [`stuck`]); not persisted: a restart gives them
    /// their attempts again.
    stuck: KeyMap<stuck::Stuck>,
    /// For rows to retry: per side, the content hash and time of the change first seen.
    first_seen: KeyMap<[Option<(crate::model::RowHash, u64)>; 2]>,
    last_full: [Option<Instant>; 2],
    allow_deletes: bool,
    cycle: u64,
    /// Writes started and not seen through, by key.
    intents: BTreeMap<RowKey, WriteIntent>,
    /// Deletes waiting for an operator, by key.
    queue: BTreeMap<RowKey, PendingDelete>,
    /// Deletes applied within the guard's window.
    recent_deletes: Vec<RecentDeletes>,
    /// The sides' identity, to record with the next commit (a new mapping, or state from before
    /// identities were recorded).
    identity_to_record: Option<MappingIdentity>,
    /// A state commit failed: whether it landed is unknown, so the next cycle starts from what
    /// the store holds, as a restart would.
    reload: bool,
}

impl EngineState {
    fn from_snapshot(snap: StateSnapshot) -> Self {
        EngineState {
            live_bases: snap.bases.values().filter(|b| !b.tombstone).count(),
            bases: snap
                .bases
                .into_iter()
                .map(|(k, b)| (k, BaseEntry::new(b)))
                .collect(),
            cursors: snap.cursors,
            pending: snap.pending.into_iter().collect(),
            held: snap.held,
            conflicts: snap
                .conflicts
                .into_iter()
                .map(|c| (c.key.clone(), c))
                .collect(),
            choices: snap.choices.into_iter().collect(),
            intents: snap
                .intents
                .into_iter()
                .map(|i| (i.key.clone(), i))
                .collect(),
            queue: snap
                .pending_deletes
                .into_iter()
                .map(|p| (p.key.clone(), p))
                .collect(),
            recent_deletes: snap.recent_deletes,
            ..Default::default()
        }
    }

    /// Sets the base of `key`, keeping the count of live bases.
    fn set_base(&mut self, key: RowKey, base: RowBase) {
        let live = !base.tombstone;
        if let Some(old) = self.bases.insert(key, BaseEntry::new(base)) {
            self.live_bases -= !old.base.tombstone as usize;
        }
        self.live_bases += live as usize;
    }

    /// Keys the engine must look at every cycle whatever the feeds say (a parked row only once
    /// its pause is over).
    fn keys_to_revisit(&self) -> BTreeSet<RowKey> {
        self.pending
            .iter()
            .filter(|k| {
                self.stuck
                    .get(*k)
                    .is_none_or(|s| s.parked.is_none() || s.due())
            })
            .chain(self.choices.keys())
            .chain(self.conflicts.keys())
            .chain(self.intents.keys())
            .chain(self.queue.keys())
            .cloned()
            .collect()
    }
}

/// A merge base, and for each side the mark of the last full read that saw its key (a read
/// marks the bases it sees instead of collecting every key in a set of its own).
pub(crate) struct BaseEntry {
    pub base: RowBase,
    pub seen: [AtomicU32; 2],
}

impl BaseEntry {
    fn new(base: RowBase) -> Self {
        BaseEntry {
            base,
            seen: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::Sheet => 0,
        Side::Db => 1,
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    mapping: MappingConfig,
    sheet: Arc<dyn Table>,
    db: Arc<dyn Table>,
    store: Option<Arc<dyn StateStore>>,
    resolver: Option<Arc<dyn ConflictResolver>>,
    origin: Option<String>,
    start_afresh: bool,
    owner: Option<Arc<dyn crate::Ownership>>,
}

impl EngineBuilder {
    /// The state store (default: a new [`crate::MemoryStateStore`]).
    pub fn state(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A resolver of the host's own, used instead of the mapping's configured chain.
    pub fn resolver(mut self, resolver: impl ConflictResolver + 'static) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The origin tag the engine's writes carry (default `sheetsync:<mapping name>`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Runs the mapping only while `owner` (a lease) holds it: every state commit is fenced
    /// with its epoch (see [`StateDelta::fence`](crate::StateDelta::fence)), so once another
    /// process takes the mapping over this engine's commits fail with
    /// [`ErrorKind::NotOwner`] and change nothing; the lease is checked before each Sheet
    /// write; and [`Engine::run`] returns when it is lost. The engine keeps the lease until it
    /// is dropped.
    pub fn owner(mut self, owner: Arc<dyn crate::Ownership>) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Starts the mapping afresh: forgets its saved state (bases, cursors, conflicts, write
    /// intents, pending deletes) and records the sides it points at now. With no bases, the
    /// first cycle is a union of both sides that deletes nothing on either. This is how a
    /// mapping is re-pointed at another spreadsheet, tab or table on purpose; without it the
    /// engine refuses state that belongs to other sides ([`ErrorKind::IdentityMismatch`]).
    pub fn start_afresh(mut self) -> Self {
        self.start_afresh = true;
        self
    }

    /// Checks the sides against each other and the mapping, loads the state (refusing state
    /// that belongs to other sides), and returns the engine.
    pub async fn build(self) -> Result<Engine> {
        let schema = self.sheet.schema().clone();
        schema.check_compatible(self.db.schema())?;
        let key_names: Vec<String> = schema.key_names().iter().map(|s| s.to_string()).collect();
        if key_names != self.mapping.key {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "mapping {:?} has key {:?} but its sides use key {:?}",
                    self.mapping.name, self.mapping.key, key_names
                ),
            ));
        }
        let db_caps = self.db.capabilities();
        let resolver = match self.resolver {
            Some(r) => r,
            None => Arc::new(ResolverSpec::build_chain(
                &self.mapping.resolver_specs(),
                &schema,
            )?),
        };
        let key_strategy = self
            .mapping
            .effective_key_strategy(&schema, db_caps.generated_keys);
        if key_strategy == KeyStrategy::Database && !db_caps.generated_keys {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "mapping {:?} asks the database to generate keys, but {} cannot",
                    self.mapping.name,
                    self.db.name()
                ),
            ));
        }
        let fence = self.owner.as_ref().map(|o| o.epoch());
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(crate::state::MemoryStateStore::new()));
        let current = MappingIdentity {
            sheet: self.sheet.identity().await?,
            db: self.db.identity().await?,
        };
        let snap = if self.start_afresh {
            identity::start_afresh(&*store, &self.mapping.name, &current, fence).await?
        } else {
            store.load(&self.mapping.name).await?
        };
        let identity_to_record = identity::check(&self.mapping.name, &snap, &current)?;
        let clock = snap.clock;
        let state = EngineState {
            identity_to_record,
            ..EngineState::from_snapshot(snap)
        };
        let (events, _) = broadcast::channel(1024);
        let engine = Engine {
            origin: self
                .origin
                .unwrap_or_else(|| format!("sheetsync:{}", self.mapping.name)),
            mapping: self.mapping,
            schema,
            sheet: self.sheet,
            db: self.db,
            store,
            resolver,
            key_strategy,
            clock: Clock::starting_after(clock),
            events,
            wake: Notify::new(),
            scan_gen: AtomicU32::new(0),
            state: Mutex::new(state),
            published: Default::default(),
            inbox: Default::default(),
            owner: self.owner,
            fence,
            lost_ownership: Default::default(),
        };
        engine.publish(&*engine.state.lock().await);
        Ok(engine)
    }
}

impl Engine {
    /// Starts building an engine for `mapping` between a Sheet side and a database side.
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

    /// True once [`Engine::run`] returned because the mapping's lease
    /// ([`EngineBuilder::owner`]) was lost: build a new engine when the lease is held again.
    pub fn lost_ownership(&self) -> bool {
        self.lost_ownership.load(Ordering::Relaxed)
    }

    /// A stream of [`Event`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Asks a running [`Engine::run`] loop for a cycle now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn table(&self, side: Side) -> &dyn Table {
        match side {
            Side::Sheet => &*self.sheet,
            Side::Db => &*self.db,
        }
    }

    fn emit(&self, e: Event) {
        // No subscribers is fine.
        let _ = self.events.send(e);
    }

    /// What the next cycle would do, without writing anything or changing state.
    pub async fn plan(&self) -> Result<Plan> {
        let st = self.state.lock().await;
        let reads = self.read_sides(&st).await?;
        Ok(self.make_plan(&st, &reads))
    }

    /// Runs one cycle.
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
                self.emit(Event::Error {
                    side: None,
                    message: e.to_string(),
                });
                return Err(e);
            }
        };
        let read = started.elapsed();
        let plan = self.make_plan(st, &reads);
        let timings = CycleTimings {
            read,
            plan: started.elapsed() - read,
            ..CycleTimings::default()
        };
        self.apply(st, reads, plan, (started, timings)).await
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
            ..fresh
        };
        Ok(())
    }

    /// Runs cycles until `shutdown` completes: after a wake-up from either side or
    /// [`Engine::wake`], and at least every poll interval. A failed cycle is reported as an
    /// [`Event::Error`] and retried with backoff; the loop itself never gives up.
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
            let wait = match self.run_once().await {
                Ok(_) => {
                    failures = 0;
                    poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync cycle failed");
                    failures = failures.saturating_add(1);
                    let backoff = std::time::Duration::from_millis(200u64 << failures.min(8));
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
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn read_sides(&self, st: &EngineState) -> Result<[SideRead; 2]> {
        let full_every = self.mapping.timing.full_scan_interval();
        let mut out: [SideRead; 2] = Default::default();
        // One time for everything this cycle observes without a time of its own: which side
        // was read first must not decide last-write-wins (the configured tie does).
        let now = self.clock.now();
        for side in Side::BOTH {
            let table = self.table(side);
            let caps = table.capabilities();
            let cursor = st.cursors.get(&side);
            let full_due = st.last_full[idx(side)].is_none_or(|t| t.elapsed() >= full_every)
                || table.full_scan_requested();
            let mut read = match cursor {
                Some(c) if caps.incremental && !full_due => {
                    read::incremental(table, c, self.mapping.timing.change_batch, &self.clock, now)
                        .await
                }
                _ => {
                    let gen = self
                        .scan_gen
                        .fetch_add(1, Ordering::Relaxed)
                        .wrapping_add(1);
                    let progress = |rows| self.emit(Event::ReadProgress { side, rows });
                    read::full_scan(
                        table,
                        &self.clock,
                        &st.bases,
                        idx(side),
                        gen,
                        now,
                        &progress,
                    )
                    .await
                }
            }
            .map_err(|e| e.with_context("side", side.to_string()))?;
            if !read.full && caps.fetch {
                // Rows to retry were read before; the feed will not show them again.
                // So were rows with a write intent or a pending delete, and the engine's own
                // writes never come back through the feed.
                let retry: Vec<RowKey> = st
                    .keys_to_revisit()
                    .into_iter()
                    .filter(|k| !read.rows.contains_key(k))
                    .collect();
                if !retry.is_empty() {
                    let (rows, invalid) =
                        read::fetch(table, side, &retry, &self.clock, now).await?;
                    read.rows.extend(rows);
                    read.invalid.extend(invalid);
                }
            }
            out[idx(side)] = read;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
