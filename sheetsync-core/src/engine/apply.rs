//! Carrying out a plan, in phases: persist the write intents, write the Sheet, write the
//! database, work out the new state and commit it (in the database's write transaction when the
//! database side offers one into the engine's state store), then update memory, write generated
//! keys back and acknowledge the change feeds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use super::plan::{Plan, PlannedOp};
use super::read::SideRead;
use super::stuck::{self, Failure, Stuck};
use super::WriteKind;
use super::{deletes, idx, CycleReport, CycleTimings, Engine, EngineState, Event};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{KeyMap, RowKey, Side};
use crate::state::{Choice, ConflictRecord, HeldRow, RecentDeletes, RowBase, StateDelta};
use crate::table::{
    Expected, SinkTransaction, TransactionalSink, WriteContext, WriteOp, WriteOutcome,
};

/// What the writes of a cycle did.
#[derive(Default)]
pub(super) struct Written {
    /// Keys whose writes failed on some side, and how.
    pub failed: BTreeMap<RowKey, Failure>,
    /// Bases of rows whose keys the database generated.
    pub generated: Vec<(RowKey, RowBase)>,
    /// Rows deleted, per side.
    pub deleted: [Vec<RowKey>; 2],
    /// Generated keys to write back into the Sheet once the state is safe.
    pub key_backs: Vec<PlannedOp>,
    /// Rows the database stored otherwise than written (it filled in defaults): (key, the row
    /// written, the row stored), to show in the Sheet once the state is safe.
    pub shown: Vec<(RowKey, crate::model::Row, crate::model::Row)>,
}

/// A cycle's new state: the delta to commit, and what memory becomes once it is committed.
pub(super) struct NextState {
    pub delta: StateDelta,
    pending: BTreeSet<RowKey>,
    held: Vec<HeldRow>,
    conflicts: BTreeMap<RowKey, ConflictRecord>,
    choices: BTreeMap<RowKey, Choice>,
    queue: Option<deletes::NextQueue>,
    recent: Option<Vec<RecentDeletes>>,
    released: Vec<RowKey>,
    stuck: KeyMap<Stuck>,
}

impl Engine {
    pub(super) async fn apply(
        &self,
        st: &mut EngineState,
        reads: [SideRead; 2],
        mut plan: Plan,
        (started, timings): (Instant, CycleTimings),
    ) -> Result<CycleReport> {
        let ctx = WriteContext {
            origin: self.origin.clone(),
        };
        let mut report = CycleReport {
            cycle: st.cycle,
            changes: plan.changes,
            intents: plan.intents.len(),
            state_commits: (!plan.intents.is_empty()) as usize,
            timings,
            ..Default::default()
        };
        let phase = Instant::now();
        for side in Side::BOTH {
            *report.full_reads.get_mut(side) = reads[idx(side)].full as usize;
        }
        self.persist_intents(st, &plan).await?;
        report.timings.intents = phase.elapsed();
        let phase = Instant::now();
        let mut written = Written::default();
        self.write_sheet(&mut plan, &ctx, &mut report, &mut written)
            .await;
        report.timings.sheet = phase.elapsed();
        let phase = Instant::now();
        let ops = db_ops(&mut plan, &written);
        let step = (ops, &ctx);
        let next = match self.db_transactions().filter(|_| !step.0.is_empty()) {
            Some(sink) => {
                self.write_db_and_commit(sink, st, &reads, &plan, step, &mut report, &mut written)
                    .await?
            }
            None => {
                self.write_db_then_commit(st, &reads, &plan, step, &mut report, &mut written)
                    .await?
            }
        };
        report.timings.db_and_commit = phase.elapsed();
        report.state_commits += !next.delta.is_empty() as usize;
        // The state is safe: update memory, then finish what may follow it.
        self.absorb(st, &reads, &plan, next);
        if !written.key_backs.is_empty() {
            let key_backs = std::mem::take(&mut written.key_backs);
            let mut ignore = Written::default();
            self.apply_side(Side::Sheet, key_backs, &ctx, &mut report, &mut ignore)
                .await;
        }
        let shown = std::mem::take(&mut written.shown);
        self.show_stored(st, shown, &ctx, &mut report).await;
        self.acknowledge(&reads).await;
        report.held = st.held.len();
        report.conflicts = st.conflicts.len();
        report.pending = st.pending.len();
        report.guard_tripped = plan.guard.iter().map(|(side, _, _)| *side).collect();
        report.deletes_queued = plan.queued.len();
        report.pending_deletes = deletes::waiting(&st.queue);
        report.timings.total = started.elapsed();
        self.emit(Event::Cycle(report.clone()));
        Ok(report)
    }

    /// Records what is about to be written before anything is (and the sides' identity, for a
    /// mapping's first cycle). Rows written again after an intent of theirs completed get that
    /// intent's target as their base in the same commit: the new intent was planned against it.
    /// Nothing is written if this fails.
    async fn persist_intents(&self, st: &mut EngineState, plan: &Plan) -> Result<()> {
        if plan.intents.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let rebased: Vec<(RowKey, RowBase)> = plan
            .completed
            .iter()
            .filter(|(k, _)| plan.intents.contains_key(*k))
            .map(|(k, target)| (k.clone(), RowBase::agreed(target.clone(), now)))
            .collect();
        let delta = StateDelta {
            fence: self.fence,
            upsert: rebased,
            intents: plan.intents.values().cloned().collect(),
            identity: st.identity_to_record.clone(),
            clock: self.clock.last(),
            ..StateDelta::default()
        };
        if let Err(e) = self.store.commit(&self.mapping.name, &delta).await {
            st.reload = true;
            return Err(e.with_operation("state.intents"));
        }
        st.identity_to_record = None;
        st.intents.extend(plan.intents.clone());
        for (k, b) in delta.upsert {
            st.set_base(k, b);
        }
        Ok(())
    }

    /// Writes the Sheet. Keys generated by the engine go to the database once the Sheet row
    /// carries them.
    async fn write_sheet(
        &self,
        plan: &mut Plan,
        ctx: &WriteContext,
        report: &mut CycleReport,
        written: &mut Written,
    ) {
        let ops = std::mem::take(&mut plan.sheet);
        let results = self
            .apply_side(Side::Sheet, ops, ctx, report, written)
            .await;
        for (op, outcome) in results {
            let applied = matches!(
                outcome,
                Some(WriteOutcome::Applied | WriteOutcome::Stored(_))
            );
            if let (WriteOp::SetKey { row, .. }, true, true) = (&op.op, applied, op.then_insert) {
                plan.db.push(PlannedOp {
                    key: op.key.clone(),
                    op: WriteOp::Upsert {
                        row: row.clone(),
                        expected: Expected::Absent,
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

    /// The database side's transactions, when they commit into the engine's state store.
    fn db_transactions(&self) -> Option<&dyn TransactionalSink> {
        let sink = self.db.transactional()?;
        (self.store.location()? == sink.state_location()).then_some(sink)
    }

    /// Commits the new state on its own (after a failure, whether it landed is unknown: the
    /// next cycle reloads it).
    async fn commit_state(&self, st: &mut EngineState, delta: &StateDelta) -> Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.commit(&self.mapping.name, delta).await {
            st.reload = true;
            return Err(e.with_operation("state.commit"));
        }
        Ok(())
    }

    /// Writes the database, then commits the new state in the state store.
    async fn write_db_then_commit(
        &self,
        st: &mut EngineState,
        reads: &[SideRead; 2],
        plan: &Plan,
        (ops, ctx): (Vec<PlannedOp>, &WriteContext),
        report: &mut CycleReport,
        written: &mut Written,
    ) -> Result<NextState> {
        let results = self.apply_side(Side::Db, ops, ctx, report, written).await;
        self.take_generated_keys(results, written);
        let next = self.next_state(st, reads, plan, written);
        self.commit_state(st, &next.delta).await?;
        Ok(next)
    }

    /// Writes the database and commits the new state in the same transaction: after a crash or
    /// a lost answer either both happened or neither did. A transaction that fails before its
    /// commit wrote nothing; the state is then committed on its own, with the rows to retry.
    #[allow(clippy::too_many_arguments)]
    async fn write_db_and_commit(
        &self,
        sink: &dyn TransactionalSink,
        st: &mut EngineState,
        reads: &[SideRead; 2],
        plan: &Plan,
        (ops, ctx): (Vec<PlannedOp>, &WriteContext),
        report: &mut CycleReport,
        written: &mut Written,
    ) -> Result<NextState> {
        match self.apply_in_transaction(sink, &ops, ctx, report).await {
            Ok((tx, outcomes)) => {
                let mut results = Vec::with_capacity(ops.len());
                for (p, o) in ops.into_iter().zip(outcomes) {
                    self.record_outcome(Side::Db, &p, &o, report, written);
                    results.push((p, Some(o)));
                }
                self.take_generated_keys(results, written);
                let next = self.next_state(st, reads, plan, written);
                if let Err(e) = tx.commit(&self.mapping.name, &next.delta).await {
                    st.reload = true;
                    return Err(e.with_operation("state.commit"));
                }
                Ok(next)
            }
            Err(e) => {
                tracing::warn!(side = %Side::Db, error = %e, "write transaction failed");
                self.emit(Event::Error {
                    side: Some(Side::Db),
                    message: e.to_string(),
                });
                for p in &ops {
                    if let Some(k) = &p.key {
                        written.failed.entry(k.clone()).or_insert(Failure::Batch);
                    }
                }
                let next = self.next_state(st, reads, plan, written);
                self.commit_state(st, &next.delta).await?;
                Ok(next)
            }
        }
    }

    /// Applies `ops` in batches inside one new transaction; returns it, uncommitted, with the
    /// outcomes.
    async fn apply_in_transaction<'s>(
        &self,
        sink: &'s dyn TransactionalSink,
        ops: &[PlannedOp],
        ctx: &WriteContext,
        report: &mut CycleReport,
    ) -> Result<(Box<dyn SinkTransaction + 's>, Vec<WriteOutcome>)> {
        let mut tx = sink.begin(ctx).await?;
        let max = self.db.capabilities().max_batch.max(1);
        let mut outcomes = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(max) {
            *report.write_calls.get_mut(Side::Db) += 1;
            let got = tx
                .apply(chunk.iter().map(|p| p.op.clone()).collect())
                .await?;
            if got.len() != chunk.len() {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "{} returned {} outcomes for {} operations",
                        self.db.name(),
                        got.len(),
                        chunk.len()
                    ),
                ));
            }
            outcomes.extend(got);
        }
        Ok((tx, outcomes))
    }

    /// Shows in the Sheet the rows the database stored otherwise than written (defaults it
    /// filled in), then makes the stored rows their bases. Until that commit the base stays the
    /// row written: if the Sheet write or the commit fails, the next reads of both sides find
    /// the stored row on each and agree on it, and a failed Sheet write leaves the database's
    /// change to flow to the Sheet as any other.
    async fn show_stored(
        &self,
        st: &mut EngineState,
        shown: Vec<(RowKey, crate::model::Row, crate::model::Row)>,
        ctx: &WriteContext,
        report: &mut CycleReport,
    ) {
        if shown.is_empty() {
            return;
        }
        let ops = shown
            .into_iter()
            .map(|(k, written, stored)| PlannedOp {
                key: Some(k),
                op: WriteOp::Upsert {
                    row: stored,
                    expected: Expected::Row(written),
                },
                then_insert: false,
                locator: None,
            })
            .collect();
        let mut ignore = Written::default();
        let now = self.clock.now();
        let rebased: Vec<(RowKey, RowBase)> = self
            .apply_side(Side::Sheet, ops, ctx, report, &mut ignore)
            .await
            .into_iter()
            .filter(|(_, o)| matches!(o, Some(WriteOutcome::Applied | WriteOutcome::Stored(_))))
            .filter_map(|(p, _)| match (p.key, p.op) {
                (Some(k), WriteOp::Upsert { row, .. }) => {
                    Some((k, RowBase::agreed(Some(row), now)))
                }
                _ => None,
            })
            .collect();
        if rebased.is_empty() {
            return;
        }
        let delta = StateDelta {
            fence: self.fence,
            upsert: rebased,
            clock: self.clock.last(),
            ..StateDelta::default()
        };
        report.state_commits += 1;
        if self.commit_state(st, &delta).await.is_ok() {
            for (k, b) in delta.upsert {
                st.set_base(k, b);
            }
        }
    }

    /// Keys the database generated get their bases now and are written back into the Sheet
    /// after the commit: if that fails, the next cycle's restore step finds the unkeyed row by
    /// content and retries.
    fn take_generated_keys(
        &self,
        results: Vec<(PlannedOp, Option<WriteOutcome>)>,
        written: &mut Written,
    ) {
        let now = self.clock.now();
        for (op, outcome) in results {
            let Some(WriteOutcome::Stored(stored)) = outcome else {
                continue;
            };
            if let (WriteOp::Upsert { row, .. }, Some(k)) = (&op.op, &op.key) {
                if *row != stored {
                    written.shown.push((k.clone(), row.clone(), stored));
                }
                continue;
            }
            if !matches!(op.op, WriteOp::Insert { .. }) {
                continue;
            }
            let Some(k) = stored.key(&self.schema) else {
                self.emit(Event::Error {
                    side: Some(Side::Db),
                    message: format!("{} stored an inserted row without a key", self.db.name()),
                });
                continue;
            };
            written
                .generated
                .push((k.clone(), RowBase::live(stored.clone(), now)));
            if let Some(locator) = op.locator {
                written.key_backs.push(PlannedOp {
                    key: Some(k),
                    op: WriteOp::SetKey {
                        locator,
                        row: stored,
                    },
                    then_insert: false,
                    locator: None,
                });
            }
        }
    }

    /// The state after the writes: new bases for rows both sides now agree on, rows to retry,
    /// held rows, conflicts, the queue of pending deletes and the guard's log.
    fn next_state(
        &self,
        st: &EngineState,
        reads: &[SideRead; 2],
        plan: &Plan,
        written: &Written,
    ) -> NextState {
        let now = self.clock.now();
        let mut new_bases = written.generated.clone();
        let mut pending: BTreeSet<RowKey> = plan.retry.clone();
        let mut held: Vec<HeldRow> = plan.held.clone();
        for (k, t) in plan.agreed.iter().chain(plan.targets.iter()) {
            if written.failed.contains_key(k) {
                pending.insert(k.clone());
                continue;
            }
            new_bases.push((k.clone(), RowBase::agreed(t.clone(), now)));
        }
        let stuck = stuck::next(st, reads, plan, written, &new_bases);
        for (k, failure) in &written.failed {
            pending.insert(k.clone());
            if let (Failure::Refused(side, reason), None) =
                (failure, stuck.get(k).and_then(|s| s.parked))
            {
                held.push(HeldRow {
                    key: Some(k.clone()),
                    side: Some(*side),
                    locator: None,
                    reason: format!("{} refused the row: {reason}", self.table(*side).name()),
                });
            }
        }
        for (k, s) in &stuck {
            pending.insert(k.clone());
            if let Some(h) = s.held(k, self.table(s.side).name()) {
                held.push(h);
            }
        }
        let mut released = Vec::new();
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
            conflicts.insert(c.key.clone(), c.clone());
        }
        for h in &held {
            if let Some(k) = &h.key {
                pending.insert(k.clone());
            }
        }
        for h in &st.held {
            if let Some(k) = &h.key {
                if !held.iter().any(|n| n.key.as_ref() == Some(k)) && !released.contains(k) {
                    released.push(k.clone());
                }
            }
        }
        let queue = self.next_queue(st, plan, &new_bases);
        let recent = self.next_recent_deletes(st, plan, &written.deleted);
        let intents_done: Vec<RowKey> = new_bases
            .iter()
            .map(|(k, _)| k)
            .chain(&plan.intents_obsolete)
            .filter(|k| st.intents.contains_key(*k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        let intents_cleared = !intents_done.is_empty() && intents_done.len() == st.intents.len();
        let delta = StateDelta {
            fence: self.fence,
            remove: prunable_tombstones(st, reads, &new_bases),
            upsert: new_bases,
            cursors: moved_cursors(st, reads),
            pending: (pending != st.pending).then(|| pending.iter().cloned().collect()),
            held: (held != st.held).then(|| held.clone()),
            conflicts: (conflicts != st.conflicts).then(|| conflicts.values().cloned().collect()),
            choices: (choices != st.choices).then(|| choices.clone().into_iter().collect()),
            clock: self.clock.last(),
            identity: st.identity_to_record.clone(),
            intents_done,
            intents_cleared,
            pending_deletes: queue.as_ref().map(|(q, _)| q.values().cloned().collect()),
            recent_deletes: recent.clone(),
            ..StateDelta::default()
        };
        NextState {
            delta,
            pending,
            held,
            conflicts,
            choices,
            queue,
            recent,
            released,
            stuck,
        }
    }

    /// Makes memory what was committed, and tells the host what changed.
    fn absorb(&self, st: &mut EngineState, reads: &[SideRead; 2], plan: &Plan, next: NextState) {
        for c in &plan.conflicts {
            let is_new = st
                .conflicts
                .get(&c.key)
                .is_none_or(|old| old.fields != c.fields || old.sheet != c.sheet || old.db != c.db);
            if is_new {
                if let Some(why) = &c.reason {
                    tracing::warn!(mapping = %self.mapping.name, key = %c.key, "conflict kept for a person: {why}");
                }
                self.emit(Event::Conflict(c.clone()));
            }
        }
        for h in &next.held {
            if !st.held.contains(h) {
                tracing::warn!(
                    mapping = %self.mapping.name,
                    key = ?h.key.as_ref().map(|k| k.to_string()),
                    side = ?h.side,
                    locator = ?h.locator,
                    "row held: {}",
                    h.reason
                );
                self.emit(Event::Held(h.clone()));
            }
        }
        let delta = next.delta;
        for (k, b) in delta.upsert {
            st.set_base(k, b);
        }
        for k in &delta.remove {
            if let Some(old) = st.bases.remove(k) {
                st.live_bases -= !old.base.tombstone as usize;
            }
        }
        for (side, c) in delta.cursors {
            st.cursors.insert(side, c);
        }
        for k in &delta.intents_done {
            st.intents.remove(k);
        }
        if delta.identity.is_some() {
            st.identity_to_record = None;
        }
        // Remember when the changes of rows to retry were first seen.
        let pending = next.pending;
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
        st.stuck = next.stuck;
        st.held = next.held;
        st.conflicts = next.conflicts;
        st.choices = next.choices;
        if let Some(recent) = next.recent {
            st.recent_deletes = recent;
        }
        if plan.guard_bypassed {
            st.allow_deletes = false;
        }
        for side in Side::BOTH {
            if reads[idx(side)].full {
                st.last_full[idx(side)] = Some(std::time::Instant::now());
            }
        }
        for k in next.released {
            self.emit(Event::Released { key: k });
        }
        for (side, deletes, rows) in &plan.guard {
            self.emit(Event::GuardTripped {
                side: *side,
                deletes: *deletes,
                rows: *rows,
            });
        }
        if let Some((queue, changes)) = next.queue {
            st.queue = queue;
            let waiting = deletes::waiting(&st.queue);
            for (change, side, rows) in changes {
                self.queue_changed(change, side, rows, waiting);
            }
        }
    }

    /// Lets queue-style feeds drop what the committed cycle read.
    async fn acknowledge(&self, reads: &[SideRead; 2]) {
        for side in Side::BOTH {
            if let Some(c) = &reads[idx(side)].ack {
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
    }

    /// Applies `ops` to `side` in batches; records failures and deletes per key. Returns each
    /// op with its outcome (`None` when its batch failed).
    pub(super) async fn apply_side(
        &self,
        side: Side,
        ops: Vec<PlannedOp>,
        ctx: &WriteContext,
        report: &mut CycleReport,
        written: &mut Written,
    ) -> Vec<(PlannedOp, Option<WriteOutcome>)> {
        let table = self.table(side);
        let max = table.capabilities().max_batch.max(1);
        let mut out = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<PlannedOp> = ops.by_ref().take(max).collect();
            *report.write_calls.get_mut(side) += 1;
            match self.apply_chunk(side, &chunk, ctx).await {
                Ok(outcomes) => {
                    tracing::debug!(%side, ops = chunk.len(), ?outcomes, "applied");
                    for (p, o) in chunk.into_iter().zip(outcomes) {
                        self.record_outcome(side, &p, &o, report, written);
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
                            written.failed.entry(k.clone()).or_insert(Failure::Batch);
                        }
                        out.push((p, None));
                    }
                }
            }
        }
        out
    }

    async fn apply_chunk(
        &self,
        side: Side,
        chunk: &[PlannedOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>> {
        let table = self.table(side);
        if let (Side::Sheet, Some(owner)) = (side, &self.owner) {
            // The database's writes are fenced by the state commit; the Sheet has no such
            // transaction, so a lost lease must stop the write before it is sent.
            owner.check().await?;
        }
        let outcomes = table
            .apply(chunk.iter().map(|p| p.op.clone()).collect(), ctx)
            .await?;
        if outcomes.len() != chunk.len() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} returned {} outcomes for {} operations",
                    table.name(),
                    outcomes.len(),
                    chunk.len()
                ),
            ));
        }
        Ok(outcomes)
    }

    fn record_outcome(
        &self,
        side: Side,
        p: &PlannedOp,
        o: &WriteOutcome,
        report: &mut CycleReport,
        written: &mut Written,
    ) {
        match o {
            WriteOutcome::Applied | WriteOutcome::Stored(_) => {
                *report.writes.get_mut(side) += 1;
                let kind = match p.op {
                    WriteOp::Delete { .. } => WriteKind::Delete,
                    WriteOp::SetKey { .. } => WriteKind::SetKey,
                    _ => WriteKind::Upsert,
                };
                if let (WriteKind::Delete, Some(k)) = (kind, &p.key) {
                    tracing::info!(
                        mapping = %self.mapping.name,
                        %side,
                        key = %k,
                        "row deleted in the {side} (it was deleted in the {})",
                        side.other()
                    );
                    written.deleted[idx(side)].push(k.clone());
                }
                self.emit(Event::Synced {
                    key: p.key.clone(),
                    side,
                    kind,
                });
            }
            WriteOutcome::Held(reason) => {
                if let Some(k) = &p.key {
                    written
                        .failed
                        .insert(k.clone(), Failure::Refused(side, reason.clone()));
                }
            }
            WriteOutcome::Stale => {
                if let Some(k) = &p.key {
                    let f = written.failed.entry(k.clone()).or_insert(Failure::Batch);
                    if *f == Failure::Batch {
                        *f = Failure::Stale(side);
                    }
                }
            }
        }
    }
}

/// The database's writes, except rows whose Sheet part failed.
fn db_ops(plan: &mut Plan, written: &Written) -> Vec<PlannedOp> {
    std::mem::take(&mut plan.db)
        .into_iter()
        .filter(|op| {
            op.key
                .as_ref()
                .is_none_or(|k| !written.failed.contains_key(k))
        })
        .collect()
}

/// Tombstones only matter until both sides have been read in full since the delete.
fn prunable_tombstones(
    st: &EngineState,
    reads: &[SideRead; 2],
    new_bases: &[(RowKey, RowBase)],
) -> Vec<RowKey> {
    if !reads.iter().all(|r| r.full) {
        return Vec::new();
    }
    let renewed: HashSet<&RowKey> = new_bases.iter().map(|(k, _)| k).collect();
    st.bases
        .iter()
        .filter(|(k, e)| e.base.tombstone && !renewed.contains(k))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The cursors that moved this cycle.
fn moved_cursors(st: &EngineState, reads: &[SideRead; 2]) -> Vec<(Side, crate::model::Cursor)> {
    let mut cursors = Vec::new();
    for side in Side::BOTH {
        if let Some(c) = &reads[idx(side)].cursor {
            if st.cursors.get(&side) != Some(c) {
                cursors.push((side, c.clone()));
            }
        }
    }
    cursors
}
