//! Writing the sides: persisting the write intents first, then sending each side's planned
//! writes in batches (the database's inside its write transaction when it offers one into the
//! engine's state store), and recording what each write did as [`Outcomes`].

use std::collections::BTreeMap;

use super::settle::Outcomes;
use super::stuck::Failure;
use super::work::{PlannedOp, Work};
use super::{idx, CycleReport, Engine, EngineState, Event, WriteKind};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{RowKey, Side};
use crate::state::{RowBase, StateDelta};
use crate::table::{SinkTransaction, TransactionalSink, WriteContext, WriteOp, WriteOutcome};

/// Each write with its outcome (`None` when its batch failed).
pub(super) type Results = Vec<(PlannedOp, Option<WriteOutcome>)>;

impl Engine {
    /// Records what is about to be written before anything is (and the sides' identity, for a
    /// mapping's first cycle). Rows written again after an intent of theirs completed get that
    /// intent's target as their base in the same commit: the new intent was planned against it.
    /// Nothing is written if this fails.
    pub(super) async fn persist_intents(&self, st: &mut EngineState, work: &Work) -> Result<()> {
        if work.intents.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let rebased: Vec<(RowKey, RowBase)> = work
            .completed
            .iter()
            .filter(|(k, _)| work.intents.contains_key(*k))
            .map(|(k, target)| (k.clone(), RowBase::agreed(target.clone(), now)))
            .collect();
        let delta = StateDelta {
            fence: self.fence,
            upsert: rebased,
            intents: work.intents.values().cloned().collect(),
            identity: st.identity_to_record.clone(),
            clock: self.clock.last(),
            ..StateDelta::default()
        };
        if let Err(e) = self.store.commit(&self.mapping.name, &delta).await {
            st.reload = true;
            return Err(e.with_operation("state.intents"));
        }
        st.identity_to_record = None;
        st.intents.extend(work.intents.clone());
        for (k, b) in delta.upsert {
            st.set_base(k, b);
        }
        Ok(())
    }

    /// The database side's transactions, when they commit into the engine's state store.
    pub(super) fn db_transactions(&self) -> Option<&dyn TransactionalSink> {
        let sink = self.db.transactional()?;
        (self.store.location()? == sink.state_location()).then_some(sink)
    }

    /// Commits `delta` on its own (after a failure, whether it landed is unknown: the next
    /// cycle reloads it).
    pub(super) async fn commit_state(
        &self,
        st: &mut EngineState,
        delta: &StateDelta,
    ) -> Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.commit(&self.mapping.name, delta).await {
            st.reload = true;
            return Err(e.with_operation("state.commit"));
        }
        Ok(())
    }

    /// Applies `ops` in batches inside one new transaction; returns it, uncommitted, with each
    /// op's outcome recorded. A transaction that fails wrote nothing: every op's row failed.
    pub(super) async fn write_in_transaction<'s>(
        &self,
        sink: &'s dyn TransactionalSink,
        ops: Vec<PlannedOp>,
        ctx: &WriteContext,
        report: &mut CycleReport,
        out: &mut Outcomes,
    ) -> Option<(Box<dyn SinkTransaction + 's>, Results)> {
        match self.apply_in_transaction(sink, &ops, ctx, report).await {
            Ok((tx, outcomes)) => {
                let mut results = Vec::with_capacity(ops.len());
                for (p, o) in ops.into_iter().zip(outcomes) {
                    self.record_outcome(Side::Db, &p, &o, report, out);
                    results.push((p, Some(o)));
                }
                Some((tx, results))
            }
            Err(e) => {
                tracing::warn!(side = %Side::Db, error = %e, "write transaction failed");
                self.emit(Event::error(Some(Side::Db), &e));
                fail_batch(&ops, &mut out.failed);
                None
            }
        }
    }

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
            check_outcomes(self.db.name(), got.len(), chunk.len())?;
            outcomes.extend(got);
        }
        Ok((tx, outcomes))
    }

    /// Applies `ops` to `side` in batches; records failures and deletes per key. Returns each
    /// op with its outcome (`None` when its batch failed).
    pub(super) async fn apply_side(
        &self,
        side: Side,
        ops: Vec<PlannedOp>,
        ctx: &WriteContext,
        report: &mut CycleReport,
        out: &mut Outcomes,
    ) -> Results {
        let table = self.table(side);
        let max = table.capabilities().max_batch.max(1);
        let mut results = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<PlannedOp> = ops.by_ref().take(max).collect();
            *report.write_calls.get_mut(side) += 1;
            match self.apply_chunk(side, &chunk, ctx).await {
                Ok(outcomes) => {
                    tracing::debug!(%side, ops = chunk.len(), ?outcomes, "applied");
                    for (p, o) in chunk.into_iter().zip(outcomes) {
                        self.record_outcome(side, &p, &o, report, out);
                        results.push((p, Some(o)));
                    }
                }
                Err(e) => {
                    tracing::warn!(%side, error = %e, "write batch failed");
                    self.emit(Event::error(Some(side), &e));
                    fail_batch(&chunk, &mut out.failed);
                    results.extend(chunk.into_iter().map(|p| (p, None)));
                }
            }
        }
        results
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
        check_outcomes(table.name(), outcomes.len(), chunk.len())?;
        Ok(outcomes)
    }

    fn record_outcome(
        &self,
        side: Side,
        p: &PlannedOp,
        o: &WriteOutcome,
        report: &mut CycleReport,
        out: &mut Outcomes,
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
                    out.deleted[idx(side)].push(k.clone());
                }
                self.emit(Event::Synced {
                    key: p.key.clone(),
                    side,
                    kind,
                });
            }
            WriteOutcome::Held(reason) => {
                if let Some(k) = &p.key {
                    out.failed
                        .insert(k.clone(), Failure::Refused(side, reason.clone()));
                }
            }
            WriteOutcome::Stale => {
                if let Some(k) = &p.key {
                    let f = out.failed.entry(k.clone()).or_insert(Failure::Batch);
                    if *f == Failure::Batch {
                        *f = Failure::Stale(side);
                    }
                }
            }
        }
    }

    /// What the database stored: keys it generated get their bases now and are written back
    /// into the Sheet after the commit (if that fails, the next cycle's restore step finds the
    /// unkeyed row by content and retries); rows it stored otherwise than written are shown in
    /// the Sheet after the commit.
    pub(super) fn take_stored(&self, results: Results, out: &mut Outcomes) {
        let now = self.clock.now();
        for (op, outcome) in results {
            let Some(WriteOutcome::Stored(stored)) = outcome else {
                continue;
            };
            if let (WriteOp::Upsert { row, .. }, Some(k)) = (&op.op, &op.key) {
                if *row != stored {
                    out.shown.push((k.clone(), row.clone(), stored));
                }
                continue;
            }
            if !matches!(op.op, WriteOp::Insert { .. }) {
                continue;
            }
            let Some(k) = stored.key(&self.schema) else {
                let e = Error::new(
                    ErrorKind::Unexpected,
                    format!("{} stored an inserted row without a key", self.db.name()),
                );
                self.emit(Event::Error {
                    side: Some(Side::Db),
                    kind: e.kind(),
                    status: e.status(),
                    message: e.message().to_string(),
                });
                continue;
            };
            out.generated
                .push((k.clone(), RowBase::live(stored.clone(), now)));
            if let Some(locator) = op.locator {
                let op = WriteOp::SetKey {
                    locator,
                    row: stored,
                };
                out.key_backs.push(PlannedOp::new(Some(k), op));
            }
        }
    }
}

/// Every row of a failed batch failed, unless it failed otherwise already.
fn fail_batch(ops: &[PlannedOp], failed: &mut BTreeMap<RowKey, Failure>) {
    for k in ops.iter().filter_map(|p| p.key.as_ref()) {
        failed.entry(k.clone()).or_insert(Failure::Batch);
    }
}

/// An adapter must answer every operation of a batch.
fn check_outcomes(table: &str, got: usize, sent: usize) -> Result<()> {
    if got == sent {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unexpected,
        format!("{table} returned {got} outcomes for {sent} operations"),
    ))
}

/// The database's writes, except rows whose Sheet part failed (a row the Sheet is written
/// first for, such as a key the engine generated, is written to the database only once the
/// Sheet has it).
pub(super) fn db_ops(work: &mut Work, out: &Outcomes) -> Vec<PlannedOp> {
    std::mem::take(&mut work.plan.db)
        .into_iter()
        .filter(|op| op.key.as_ref().is_none_or(|k| !out.failed.contains_key(k)))
        .collect()
}
