//! Carrying out a cycle's [`Work`], in phases: persist the write intents, write the Sheet,
//! write the database, settle ([`settle`](super::settle)) and commit the new state (in the
//! database's write transaction when the database side offers one into the engine's state
//! store), then update memory, tell the host, write generated keys back and acknowledge the
//! change feeds.

use std::time::Instant;

use super::read::SideRead;
use super::settle::{self, Outcomes, Settled};
use super::work::{PlannedOp, Work};
use super::write::{db_ops, Results};
use super::{deletes, idx, CycleReport, CycleTimings, Engine, EngineState, Event};
use crate::error::Result;
use crate::model::{Row, RowKey, Side};
use crate::state::{RowBase, StateDelta};
use crate::table::{Expected, WriteContext, WriteOp, WriteOutcome};

impl Engine {
    pub(super) async fn carry_out(
        &self,
        st: &mut EngineState,
        reads: [SideRead; 2],
        mut work: Work,
        (started, timings): (Instant, CycleTimings),
    ) -> Result<CycleReport> {
        let ctx = WriteContext {
            origin: self.origin.clone(),
        };
        let mut report = CycleReport {
            cycle: st.cycle,
            changes: work.plan.changes,
            intents: work.intents.len(),
            state_commits: (!work.intents.is_empty()) as usize,
            timings,
            ..Default::default()
        };
        for side in Side::BOTH {
            *report.full_reads.get_mut(side) = reads[idx(side)].full as usize;
        }
        let phase = Instant::now();
        self.persist_intents(st, &work).await?;
        report.timings.intents = phase.elapsed();
        let phase = Instant::now();
        let mut out = Outcomes::default();
        let sheet_ops = std::mem::take(&mut work.plan.sheet);
        self.apply_side(Side::Sheet, sheet_ops, &ctx, &mut report, &mut out)
            .await;
        report.timings.sheet = phase.elapsed();
        let phase = Instant::now();
        let ops = db_ops(&mut work, &out);
        let settled = self
            .write_db_and_settle(st, &reads, &work, (ops, &ctx), &mut report, &mut out)
            .await?;
        report.timings.db_and_commit = phase.elapsed();
        report.state_commits += !settled.delta.is_empty() as usize;
        // The state is safe: update memory, tell the host, then finish what may follow it.
        let events = st.absorb(&reads, &work, settled);
        self.announce(events);
        if !out.key_backs.is_empty() {
            let key_backs = std::mem::take(&mut out.key_backs);
            let mut ignore = Outcomes::default();
            self.apply_side(Side::Sheet, key_backs, &ctx, &mut report, &mut ignore)
                .await;
        }
        let shown = std::mem::take(&mut out.shown);
        self.show_stored(st, shown, &ctx, &mut report).await;
        self.acknowledge(&reads).await;
        self.annotate_sheet(st).await;
        report.held = st.held.len();
        report.conflicts = st.conflicts.len();
        report.pending = st.pending.len();
        report.guard_tripped = work.plan.guard.iter().map(|(side, _, _)| *side).collect();
        report.deletes_queued = work.queued.len();
        report.pending_deletes = deletes::waiting(&st.queue);
        report.timings.total = started.elapsed();
        self.emit(Event::Cycle(report.clone()));
        Ok(report)
    }

    /// Writes the database, settles the cycle and commits the new state: in the database's
    /// transaction when it commits into the state store (after a crash or a lost answer either
    /// both happened or neither did), otherwise after the writes. A transaction that fails
    /// before its commit wrote nothing; the state is then committed on its own, with the rows
    /// to retry. After a failed commit, whether it landed is unknown: the next cycle reloads.
    async fn write_db_and_settle(
        &self,
        st: &mut EngineState,
        reads: &[SideRead; 2],
        work: &Work,
        (ops, ctx): (Vec<PlannedOp>, &WriteContext),
        report: &mut CycleReport,
        out: &mut Outcomes,
    ) -> Result<Settled> {
        let Some(sink) = self.db_transactions().filter(|_| !ops.is_empty()) else {
            let results = self.apply_side(Side::Db, ops, ctx, report, out).await;
            return self
                .settle_and_commit(st, reads, work, Some(results), out)
                .await;
        };
        let Some((tx, results)) = self.write_in_transaction(sink, ops, ctx, report, out).await
        else {
            return self.settle_and_commit(st, reads, work, None, out).await;
        };
        self.take_stored(results, out);
        let settled = self.settle(st, reads, work, out);
        if let Err(e) = tx.commit(&self.mapping.name, &settled.delta).await {
            st.reload = true;
            return Err(e.with_operation("state.commit"));
        }
        Ok(settled)
    }

    /// Settles the cycle after the database's writes (`None`: a failed transaction) and
    /// commits the new state on its own.
    async fn settle_and_commit(
        &self,
        st: &mut EngineState,
        reads: &[SideRead; 2],
        work: &Work,
        results: Option<Results>,
        out: &mut Outcomes,
    ) -> Result<Settled> {
        if let Some(results) = results {
            self.take_stored(results, out);
        }
        let settled = self.settle(st, reads, work, out);
        self.commit_state(st, &settled.delta).await?;
        Ok(settled)
    }

    /// [`settle::settle`] with this engine's clocks and names.
    fn settle(
        &self,
        st: &EngineState,
        reads: &[SideRead; 2],
        work: &Work,
        out: &Outcomes,
    ) -> Settled {
        let now = self.clock.now();
        let cx = settle::Context {
            mapping: &self.mapping.name,
            tables: [self.sheet.name(), self.db.name()],
            guard_window: self.mapping.guard.window(),
            now,
            clock: self.clock.last(),
            wall_ms: chrono::Utc::now().timestamp_millis(),
            instant: Instant::now(),
        };
        let mut settled = settle::settle(st, reads, work, out, &cx);
        settled.delta.fence = self.fence;
        settled
    }

    /// Shows in the Sheet the rows the database stored otherwise than written (defaults it
    /// filled in), then makes the stored rows their bases. Until that commit the base stays the
    /// row written: if the Sheet write or the commit fails, the next reads of both sides find
    /// the stored row on each and agree on it, and a failed Sheet write leaves the database's
    /// change to flow to the Sheet as any other.
    async fn show_stored(
        &self,
        st: &mut EngineState,
        shown: Vec<(RowKey, Row, Row)>,
        ctx: &WriteContext,
        report: &mut CycleReport,
    ) {
        if shown.is_empty() {
            return;
        }
        let ops = shown
            .into_iter()
            .map(|(k, written, stored)| {
                let op = WriteOp::Upsert {
                    row: stored,
                    expected: Expected::Row(written),
                };
                PlannedOp::new(Some(k), op)
            })
            .collect();
        let mut ignore = Outcomes::default();
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

    /// Lets queue-style feeds drop what the committed cycle read.
    async fn acknowledge(&self, reads: &[SideRead; 2]) {
        for side in Side::BOTH {
            if let Some(c) = &reads[idx(side)].ack {
                if let Err(e) = self.table(side).ack(c).await {
                    // Harmless: the feed hands the same changes out again and they merge to
                    // nothing.
                    self.emit(Event::Error {
                        side: Some(side),
                        kind: e.kind(),
                        status: e.status(),
                        message: format!("ack failed: {e}"),
                    });
                }
            }
        }
    }
}
