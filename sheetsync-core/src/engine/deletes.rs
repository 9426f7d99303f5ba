//! The mass-delete guard and the approval queue of pending deletes.
//!
//! Deletes the engine would apply to a side are added up over the guard's window (persisted, so
//! a restart does not reset it) plus the cycle. Deletes that exceed a limit are parked as
//! [`PendingDelete`]s: the row stays on the other side, its base stays as it was, and every cycle
//! looks at it again. While a side has deletes waiting, its new deletes wait too. An operator
//! approves (the delete is applied, and does not count against the window) or rejects (the row is
//! restored on the side that deleted it); a pending delete whose row reappears, or that stops
//! being a delete, is dropped.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::Utc;

use super::view::View;
use super::work::Work;
use super::{idx, Engine, EngineState, QueueChange};
use crate::merge::SideState;
use crate::model::{RowKey, Side};
use crate::state::{DeleteDecision, PendingDelete, RecentDeletes, RowBase};
use crate::table::WriteOp;

/// Which pending deletes an operator decides about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteSelection {
    /// Every pending delete.
    All,
    /// The pending deletes of these rows.
    Keys(Vec<RowKey>),
    /// Pending deletes parked at least this long ago.
    OlderThan(Duration),
}

impl DeleteSelection {
    pub(super) fn matches(&self, p: &PendingDelete, now: chrono::DateTime<Utc>) -> bool {
        match self {
            DeleteSelection::All => true,
            DeleteSelection::Keys(keys) => keys.contains(&p.key),
            DeleteSelection::OlderThan(age) => chrono::Duration::from_std(*age)
                .is_ok_and(|age| now.signed_duration_since(p.queued_at) >= age),
        }
    }
}

/// For a rejected delete: the side that deleted the row is merged as if it had not (its base),
/// while the engine knows the row is absent there, so the merge writes it back.
pub(super) fn undo_if_rejected<'a>(
    p: &PendingDelete,
    views: &mut [View<'a>; 2],
    base: Option<&'a RowBase>,
) {
    let v = &mut views[idx(p.deleted_on)];
    if p.decision != Some(DeleteDecision::Reject) || v.holds().is_some() {
        return;
    }
    *v = View {
        merge: SideState {
            row: base.and_then(|b| b.live_row()),
            at: base.map_or(0, |b| b.synced_at),
        },
        holds: Some(None),
        observed: true,
    };
}

/// Drops a pending delete of a row that is no longer being deleted: it is back on the side that
/// deleted it, gone from the other side too, or changed there so that the update wins.
pub(super) fn review_pending(
    p: &PendingDelete,
    views: &[View<'_>; 2],
    deletes: [bool; 2],
    work: &mut Work,
) {
    let (deleting, kept) = (p.deleted_on, p.deleted_on.other());
    let still_a_delete = deletes[idx(kept)];
    if still_a_delete
        || p.decision == Some(DeleteDecision::Reject)
        || !views[idx(deleting)].observed
    {
        return;
    }
    let why = if views[idx(deleting)].holds().is_some() {
        format!("the row is back in the {deleting}")
    } else if views[idx(kept)].holds().is_none() {
        format!("the row was deleted in the {kept} too")
    } else {
        format!("the {kept} changed the row, and the change wins over the delete")
    };
    work.queue_dropped.push((p.key.clone(), why));
}

impl Engine {
    /// Applies the mass-delete guard to the planned deletes of each side: approved deletes go
    /// through, pending ones stay parked, and new ones are parked when they exceed a limit or
    /// when the side already has deletes waiting.
    pub(super) fn guard_deletes(&self, st: &EngineState, work: &mut Work) {
        let now = Utc::now();
        let rows = live_rows(st, work);
        for side in Side::BOTH {
            let deletes: Vec<RowKey> = work
                .ops(side)
                .iter()
                .filter(|p| matches!(p.op, WriteOp::Delete { .. }))
                .filter_map(|p| p.key.clone())
                .collect();
            let mut withheld = HashSet::new();
            let mut new = Vec::new();
            for k in deletes {
                match st.queue.get(&k).map(|p| p.decision) {
                    _ if st.allow_deletes => {
                        work.approved_deletes.insert(k);
                    }
                    Some(Some(DeleteDecision::Approve)) => {
                        work.approved_deletes.insert(k);
                    }
                    Some(_) => {
                        withheld.insert(k);
                    }
                    None => new.push(k),
                }
            }
            let reason = self.guard_reason(st, side, new.len(), rows, now.timestamp_millis());
            if let Some(reason) = reason {
                work.plan.guard.push((side, new.len(), rows));
                let auto = self.mapping.guard.auto_approve;
                tracing::warn!(
                    mapping = %self.mapping.name,
                    %side,
                    deletes = new.len(),
                    rows,
                    auto_approve = auto,
                    "mass-delete guard tripped: {reason}"
                );
                if !auto {
                    for k in new {
                        let row = st.bases.get(&k).map(|e| e.base().row);
                        work.queued.push(PendingDelete {
                            key: k.clone(),
                            deleted_on: side.other(),
                            row: row.unwrap_or_else(|| crate::model::Row::new(Vec::new())),
                            queued_at: now,
                            reason: reason.clone(),
                            decision: None,
                        });
                        withheld.insert(k);
                    }
                }
            }
            if !withheld.is_empty() {
                work.withhold(side, &withheld);
            }
        }
    }

    /// Why `new` more deletes of a side's `rows` must wait, if they must.
    fn guard_reason(
        &self,
        st: &EngineState,
        side: Side,
        new: usize,
        rows: usize,
        now_ms: i64,
    ) -> Option<String> {
        if new == 0 {
            return None;
        }
        let guard = &self.mapping.guard;
        let deleting = side.other();
        let waiting = st
            .queue
            .values()
            .filter(|p| p.deleted_on == deleting && p.decision.is_none())
            .count();
        if waiting > 0 && !guard.auto_approve {
            return Some(format!(
                "{waiting} earlier deletes from the {deleting} wait for approval, so these wait too"
            ));
        }
        let earlier = recent_deletes(st, side, now_ms, guard.window());
        let exceeded = guard.exceeded(earlier + new, rows + earlier)?;
        Some(if earlier > 0 {
            format!(
                "rows deleted in the {deleting}: {exceeded} of the {side}'s rows within {}s ({earlier} applied earlier in the window)",
                guard.window_secs
            )
        } else {
            format!("rows deleted in the {deleting}: {exceeded} of the {side}'s rows")
        })
    }
}

/// The queue after a cycle that gave `rebased` new bases: `None` when unchanged.
pub(super) fn next_queue(
    mapping: &str,
    st: &EngineState,
    work: &Work,
    rebased: &[(RowKey, RowBase)],
) -> Option<NextQueue> {
    let touched = !work.queued.is_empty()
        || !work.queue_dropped.is_empty()
        || rebased.iter().any(|(k, _)| st.queue.contains_key(k));
    if !touched {
        return None;
    }
    let mut queue = st.queue.clone();
    let mut changes: BTreeMap<(Side, &'static str), (QueueChange, usize)> = BTreeMap::new();
    let mut count = |change: QueueChange, side: Side| {
        changes
            .entry((side, change.as_str()))
            .or_insert((change, 0))
            .1 += 1;
    };
    for (k, _) in rebased {
        if let Some(p) = queue.remove(k) {
            count(
                match p.decision {
                    Some(DeleteDecision::Approve) => QueueChange::Applied,
                    Some(DeleteDecision::Reject) => QueueChange::Restored,
                    None => QueueChange::Dropped,
                },
                p.deleted_on,
            );
        }
    }
    for (k, why) in &work.queue_dropped {
        if let Some(p) = queue.remove(k) {
            tracing::info!(mapping, key = %k, deleted_on = %p.deleted_on, "pending delete dropped: {why}");
            count(QueueChange::Dropped, p.deleted_on);
        }
    }
    for p in &work.queued {
        tracing::info!(mapping, key = %p.key, deleted_on = %p.deleted_on, "delete waits for approval");
        count(QueueChange::Queued, p.deleted_on);
        queue.insert(p.key.clone(), p.clone());
    }
    let changes = changes
        .into_iter()
        .map(|((side, _), (change, n))| (change, side, n))
        .collect();
    Some((queue, changes))
}

/// The log of recent deletes at `now_ms` after a cycle that applied `deleted` per side: entries older
/// than the window are forgotten; approved deletes are not counted. `None` when unchanged.
pub(super) fn next_recent_deletes(
    (now_ms, window): (i64, Duration),
    st: &EngineState,
    work: &Work,
    deleted: &[Vec<RowKey>; 2],
) -> Option<Vec<RecentDeletes>> {
    let since = now_ms - window.as_millis() as i64;
    let mut recent: Vec<RecentDeletes> = st
        .recent_deletes
        .iter()
        .filter(|r| r.at_ms > since)
        .copied()
        .collect();
    for side in Side::BOTH {
        let count = deleted[idx(side)]
            .iter()
            .filter(|k| !work.approved_deletes.contains(*k))
            .count();
        if count > 0 {
            recent.push(RecentDeletes {
                side,
                at_ms: now_ms,
                count,
            });
        }
    }
    (recent != st.recent_deletes).then_some(recent)
}

/// The rows both sides hold: the live bases, counting rows whose intent completed this cycle
/// with their new base.
fn live_rows(st: &EngineState, work: &Work) -> usize {
    let mut rows = st.live_bases as isize;
    for (k, target) in &work.completed {
        let was_live = st.bases.get(k).is_some_and(|e| !e.tombstone);
        rows += target.is_some() as isize - was_live as isize;
    }
    rows.max(0) as usize
}

/// The queue after a cycle, and what changed in it: (change, side deleted on, rows).
pub(super) type NextQueue = (
    BTreeMap<RowKey, PendingDelete>,
    Vec<(QueueChange, Side, usize)>,
);

/// Deletes applied to `side` within `window` before `now_ms`.
fn recent_deletes(st: &EngineState, side: Side, now_ms: i64, window: Duration) -> usize {
    let since = now_ms - window.as_millis() as i64;
    st.recent_deletes
        .iter()
        .filter(|r| r.side == side && r.at_ms > since)
        .map(|r| r.count)
        .sum()
}

/// Pending deletes without a decision.
pub(super) fn waiting(queue: &BTreeMap<RowKey, PendingDelete>) -> usize {
    queue.values().filter(|p| p.decision.is_none()).count()
}
