//! The engine: reads both sides, merges against the base, applies, then persists.
//!
//! One cycle ([`Engine::run_once`]):
//! 1. read each side, in full or through its change feed since the persisted cursor;
//! 2. find the rows that differ from their base on either side (plus rows to retry), give keys
//!    to new rows, and merge each row ([`crate::merge`]);
//! 3. stop a side's deletes if they trip the mass-delete guard;
//! 4. apply the writes, the Sheet first and then the database, so a database row is only
//!    written once the Sheet accepted its part;
//! 5. persist the new bases, cursors, held rows and conflicts as one [`StateDelta`], and only
//!    then acknowledge the change feeds.
//!
//! A crash anywhere re-runs the merge on the next start: content equal on both sides is agreed
//! without a write, so nothing is duplicated or lost.

mod events;
mod plan;
mod read;

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
use crate::state::{Choice, ConflictRecord, HeldRow, RowBase, StateDelta, StateStore};
use crate::table::{Table, WriteContext, WriteOp, WriteOutcome};

pub use events::{CycleReport, Event, SideCounts, WriteKind};
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
    /// For rows to retry: per side, the content hash and time of the change first seen.
    first_seen: KeyMap<[Option<(crate::model::RowHash, u64)>; 2]>,
    last_full: [Option<Instant>; 2],
    allow_deletes: bool,
    cycle: u64,
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

    /// Checks the sides against each other and the mapping, loads the state, and returns the
    /// engine.
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
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(crate::state::MemoryStateStore::new()));
        let snap = store.load(&self.mapping.name).await?;
        let state = EngineState {
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
            ..Default::default()
        };
        let (events, _) = broadcast::channel(1024);
        Ok(Engine {
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
            clock: Clock::starting_after(snap.clock),
            events,
            wake: Notify::new(),
            scan_gen: AtomicU32::new(0),
            state: Mutex::new(state),
        })
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

    /// A stream of [`Event`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Asks a running [`Engine::run`] loop for a cycle now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Rows held back now.
    pub async fn held(&self) -> Vec<HeldRow> {
        self.state.lock().await.held.clone()
    }

    /// Conflicts kept for people now.
    pub async fn conflicts(&self) -> Vec<ConflictRecord> {
        self.state
            .lock()
            .await
            .conflicts
            .values()
            .cloned()
            .collect()
    }

    /// Lets the next cycle apply deletes that the mass-delete guard stopped.
    pub async fn allow_deletes_once(&self) {
        self.state.lock().await.allow_deletes = true;
        self.wake();
    }

    /// Resolves a kept conflict: the next cycle makes both sides hold `choice`.
    pub async fn resolve_conflict(&self, key: &RowKey, choice: Choice) -> Result<()> {
        let mut st = self.state.lock().await;
        if !st.conflicts.contains_key(key) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no conflict is kept for row {key}"),
            ));
        }
        if let Choice::Row(row) = &choice {
            if row.0.len() != self.schema.columns.len()
                || row.key(&self.schema).as_ref() != Some(key)
            {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "the chosen row must have {} values and key {key}",
                        self.schema.columns.len()
                    ),
                ));
            }
        }
        let mut choices = st.choices.clone();
        choices.insert(key.clone(), choice);
        let delta = StateDelta {
            choices: Some(choices.clone().into_iter().collect()),
            clock: self.clock.last(),
            ..Default::default()
        };
        self.store.commit(&self.mapping.name, &delta).await?;
        st.choices = choices;
        st.pending.insert(key.clone());
        drop(st);
        self.wake();
        Ok(())
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
        async {
            let reads = match self.read_sides(&st).await {
                Ok(r) => r,
                Err(e) => {
                    self.emit(Event::Error {
                        side: None,
                        message: e.to_string(),
                    });
                    return Err(e);
                }
            };
            let plan = self.make_plan(&st, &reads);
            self.apply(&mut st, reads, plan).await
        }
        .instrument(span)
        .await
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
                let retry: Vec<RowKey> = st
                    .pending
                    .iter()
                    .chain(st.choices.keys())
                    .filter(|k| !read.rows.contains_key(*k))
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
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

    async fn apply(
        &self,
        st: &mut EngineState,
        reads: [SideRead; 2],
        mut plan: Plan,
    ) -> Result<CycleReport> {
        let ctx = WriteContext {
            origin: self.origin.clone(),
        };
        let mut report = CycleReport {
            cycle: st.cycle,
            ..Default::default()
        };
        for side in Side::BOTH {
            *report.full_reads.get_mut(side) = reads[idx(side)].full as usize;
        }
        report.changes = plan.changes;
        // Keys whose writes failed on some side (value: why, if a side refused the row).
        let mut failed: BTreeMap<RowKey, Option<(Side, String)>> = BTreeMap::new();
        let mut new_bases: Vec<(RowKey, RowBase)> = Vec::new();
        let now = self.clock.now();

        // 1. The Sheet.
        let sheet_ops = std::mem::take(&mut plan.sheet);
        let sheet_results = self
            .apply_side(Side::Sheet, sheet_ops, &ctx, &mut report, &mut failed)
            .await;
        // Keys generated by the engine go to the database once the Sheet row carries them.
        for (op, outcome) in &sheet_results {
            if let (
                WriteOp::SetKey { row, .. },
                Some(WriteOutcome::Applied | WriteOutcome::Stored(_)),
            ) = (&op.op, outcome)
            {
                if op.then_insert {
                    plan.db.push(PlannedOp {
                        key: op.key.clone(),
                        op: WriteOp::Upsert {
                            row: row.clone(),
                            expected: crate::table::Expected::Absent,
                        },
                        then_insert: false,
                        locator: None,
                    });
                    if let Some(k) = &op.key {
                        plan.targets.insert(k.clone(), Some(row.clone()));
                    }
                }
            }
        }

        // 2. The database, except rows whose Sheet part failed.
        let db_ops: Vec<PlannedOp> = std::mem::take(&mut plan.db)
            .into_iter()
            .filter(|op| op.key.as_ref().is_none_or(|k| !failed.contains_key(k)))
            .collect();
        let db_results = self
            .apply_side(Side::Db, db_ops, &ctx, &mut report, &mut failed)
            .await;

        // 3. Keys the database generated go back into the Sheet rows they came from.
        let mut key_backs = Vec::new();
        for (op, outcome) in &db_results {
            if let (WriteOp::Insert { .. }, Some(WriteOutcome::Stored(stored))) = (&op.op, outcome)
            {
                match stored.key(&self.schema) {
                    Some(k) => {
                        // The base is set now: if writing the key back fails, the next cycle's
                        // restore step finds the unkeyed row by content and retries.
                        new_bases.push((k.clone(), RowBase::live(stored.clone(), now)));
                        if let Some(locator) = &op.locator {
                            key_backs.push(PlannedOp {
                                key: Some(k),
                                op: WriteOp::SetKey {
                                    locator: locator.clone(),
                                    row: stored.clone(),
                                },
                                then_insert: false,
                                locator: None,
                            });
                        }
                    }
                    None => self.emit(Event::Error {
                        side: Some(Side::Db),
                        message: format!("{} stored an inserted row without a key", self.db.name()),
                    }),
                }
            }
        }
        if !key_backs.is_empty() {
            let mut ignore = BTreeMap::new();
            self.apply_side(Side::Sheet, key_backs, &ctx, &mut report, &mut ignore)
                .await;
        }

        // 4. New state.
        let mut released = Vec::new();
        let mut pending: BTreeSet<RowKey> = plan.retry.clone();
        let mut held: Vec<HeldRow> = plan.held.clone();
        for (k, t) in plan.agreed.iter().chain(plan.targets.iter()) {
            if failed.contains_key(k) {
                pending.insert(k.clone());
                continue;
            }
            new_bases.push((
                k.clone(),
                match t {
                    Some(row) => RowBase::live(row.clone(), now),
                    None => RowBase::tombstone(now),
                },
            ));
        }
        for (k, why) in &failed {
            pending.insert(k.clone());
            if let Some((side, reason)) = why {
                held.push(HeldRow {
                    key: Some(k.clone()),
                    side: Some(*side),
                    locator: None,
                    reason: format!("{} refused the row: {reason}", self.table(*side).name()),
                });
            }
        }
        let mut conflicts = st.conflicts.clone();
        let mut choices = st.choices.clone();
        for (k, _) in &new_bases {
            choices.remove(k);
            if conflicts.remove(k).is_some() {
                released.push(k.clone());
            }
        }
        for c in &plan.conflicts {
            pending.insert(c.key.clone());
            let is_new = conflicts
                .get(&c.key)
                .is_none_or(|old| old.fields != c.fields || old.sheet != c.sheet || old.db != c.db);
            if is_new {
                self.emit(Event::Conflict(c.clone()));
            }
            conflicts.insert(c.key.clone(), c.clone());
        }
        for h in &held {
            if let Some(k) = &h.key {
                pending.insert(k.clone());
            }
            if !st.held.contains(h) {
                self.emit(Event::Held(h.clone()));
            }
        }
        for h in &st.held {
            if let Some(k) = &h.key {
                if !held.iter().any(|n| n.key.as_ref() == Some(k)) && !released.contains(k) {
                    released.push(k.clone());
                }
            }
        }
        // Tombstones only matter until both sides have been read in full since the delete.
        let prune: Vec<RowKey> = if reads.iter().all(|r| r.full) {
            let renewed: std::collections::HashSet<&RowKey> =
                new_bases.iter().map(|(k, _)| k).collect();
            st.bases
                .iter()
                .filter(|(k, e)| e.base.tombstone && !renewed.contains(k))
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            Vec::new()
        };
        let mut cursors = Vec::new();
        for side in Side::BOTH {
            if let Some(c) = &reads[idx(side)].cursor {
                if st.cursors.get(&side) != Some(c) {
                    cursors.push((side, c.clone()));
                }
            }
        }
        // Only what changed: a quiet cycle writes nothing to the store either.
        let delta = StateDelta {
            upsert: new_bases,
            remove: prune,
            cursors,
            pending: (pending != st.pending).then(|| pending.iter().cloned().collect()),
            held: (held != st.held).then(|| held.clone()),
            conflicts: (conflicts != st.conflicts).then(|| conflicts.values().cloned().collect()),
            choices: (choices != st.choices).then(|| choices.clone().into_iter().collect()),
            clock: self.clock.last(),
        };
        let quiet = delta.upsert.is_empty()
            && delta.remove.is_empty()
            && delta.cursors.is_empty()
            && delta.pending.is_none()
            && delta.held.is_none()
            && delta.conflicts.is_none()
            && delta.choices.is_none();
        if !quiet {
            self.store
                .commit(&self.mapping.name, &delta)
                .await
                .map_err(|e| e.with_operation("state.commit"))?;
        }

        // 5. The state is safe: update memory, then let queue-style feeds drop what we read.
        for (k, b) in delta.upsert {
            let live = !b.tombstone;
            if let Some(old) = st.bases.insert(k, BaseEntry::new(b)) {
                st.live_bases -= !old.base.tombstone as usize;
            }
            st.live_bases += live as usize;
        }
        for k in &delta.remove {
            if let Some(old) = st.bases.remove(k) {
                st.live_bases -= !old.base.tombstone as usize;
            }
        }
        for (side, c) in delta.cursors {
            st.cursors.insert(side, c);
        }
        // Remember when the changes of rows to retry were first seen.
        st.first_seen.retain(|k, _| pending.contains(k));
        for k in &pending {
            if let Some(now_seen) = plan.seen.get(k) {
                let entry = st.first_seen.entry(k.clone()).or_insert(*now_seen);
                for i in 0..2 {
                    match (entry[i], now_seen[i]) {
                        (Some((h, _)), Some((h2, _))) if h == h2 => {}
                        _ => entry[i] = now_seen[i],
                    }
                }
            }
        }
        st.pending = pending;
        st.held = held;
        st.conflicts = conflicts;
        st.choices = choices;
        if plan.guard_bypassed {
            st.allow_deletes = false;
        }
        for side in Side::BOTH {
            let read = &reads[idx(side)];
            if read.full {
                st.last_full[idx(side)] = Some(Instant::now());
            }
            if let Some(c) = &read.ack {
                if let Err(e) = self.table(side).ack(c).await {
                    // Harmless: the feed hands the same changes out again and they merge to
                    // nothing.
                    self.emit(Event::Error {
                        side: Some(side),
                        message: format!("ack failed: {e}"),
                    });
                }
            }
        }
        for k in released {
            self.emit(Event::Released { key: k });
        }
        for (side, deletes, rows) in &plan.guard {
            report.guard_tripped.push(*side);
            self.emit(Event::GuardTripped {
                side: *side,
                deletes: *deletes,
                rows: *rows,
            });
        }
        report.held = st.held.len();
        report.conflicts = st.conflicts.len();
        report.pending = st.pending.len();
        self.emit(Event::Cycle(report.clone()));
        Ok(report)
    }

    /// Applies `ops` to `side` in batches; records failures per key. Returns each op with its
    /// outcome (`None` when its batch failed).
    async fn apply_side(
        &self,
        side: Side,
        ops: Vec<PlannedOp>,
        ctx: &WriteContext,
        report: &mut CycleReport,
        failed: &mut BTreeMap<RowKey, Option<(Side, String)>>,
    ) -> Vec<(PlannedOp, Option<WriteOutcome>)> {
        let table = self.table(side);
        let max = table.capabilities().max_batch.max(1);
        let mut out = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<PlannedOp> = ops.by_ref().take(max).collect();
            *report.write_calls.get_mut(side) += 1;
            let result = table
                .apply(chunk.iter().map(|p| p.op.clone()).collect(), ctx)
                .await
                .and_then(|outcomes| {
                    if outcomes.len() == chunk.len() {
                        Ok(outcomes)
                    } else {
                        Err(Error::new(
                            ErrorKind::Unexpected,
                            format!(
                                "{} returned {} outcomes for {} operations",
                                table.name(),
                                outcomes.len(),
                                chunk.len()
                            ),
                        ))
                    }
                });
            match result {
                Ok(outcomes) => {
                    tracing::debug!(%side, ops = chunk.len(), ?outcomes, "applied");
                    for (p, o) in chunk.into_iter().zip(outcomes) {
                        match &o {
                            WriteOutcome::Applied | WriteOutcome::Stored(_) => {
                                *report.writes.get_mut(side) += 1;
                                self.emit(Event::Synced {
                                    key: p.key.clone(),
                                    side,
                                    kind: match p.op {
                                        WriteOp::Delete { .. } => WriteKind::Delete,
                                        WriteOp::SetKey { .. } => WriteKind::SetKey,
                                        _ => WriteKind::Upsert,
                                    },
                                });
                            }
                            WriteOutcome::Held(reason) => {
                                if let Some(k) = &p.key {
                                    failed.insert(k.clone(), Some((side, reason.clone())));
                                }
                            }
                            WriteOutcome::Stale => {
                                if let Some(k) = &p.key {
                                    failed.entry(k.clone()).or_insert(None);
                                }
                            }
                        }
                        out.push((p, Some(o)));
                    }
                }
                Err(e) => {
                    tracing::warn!(%side, error = %e, "write batch failed");
                    self.emit(Event::Error {
                        side: Some(side),
                        message: e.to_string(),
                    });
                    for p in chunk {
                        if let Some(k) = &p.key {
                            failed.entry(k.clone()).or_insert(None);
                        }
                        out.push((p, None));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
