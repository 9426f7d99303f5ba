//! Settling a cycle: from the state it started with, what it read and planned, and what its
//! writes did, the state to commit and the events to tell the host once it is committed.
//!
//! [`settle`] is a pure function: the clock readings and the names it reports with are given
//! in a [`Context`], so the same inputs always settle the same way.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use super::deletes;
use super::read::SideRead;
use super::stuck::{self, Failure, Stuck};
use super::work::{PlannedOp, Work};
use super::{idx, EngineState, Event};
use crate::model::{Cursor, KeyMap, Row, RowKey, Side};
use crate::state::{
    Choice, ConflictRecord, HeldRow, PendingDelete, RecentDeletes, RowBase, StateDelta,
};

/// What the writes of a cycle did.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
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
    pub shown: Vec<(RowKey, Row, Row)>,
}

/// What [`settle`] needs from outside the cycle's data.
pub(super) struct Context<'a> {
    /// The mapping's name, for the log.
    pub mapping: &'a str,
    /// Each side's table name, for the reasons of held rows.
    pub tables: [&'a str; 2],
    /// The mass-delete guard's window.
    pub guard_window: Duration,
    /// The engine clock's time for new bases.
    pub now: u64,
    /// The engine clock's last value, to persist.
    pub clock: u64,
    /// The wall clock in milliseconds since the epoch, for the guard's log.
    pub wall_ms: i64,
    /// The monotonic time, for the pauses of parked rows.
    pub instant: Instant,
}

/// A cycle's new state: the delta to commit, what memory becomes once it is committed, and
/// what to tell the host then.
#[derive(Debug)]
pub(super) struct Settled {
    /// The state to commit.
    pub delta: StateDelta,
    pub pending: BTreeSet<RowKey>,
    pub held: Vec<HeldRow>,
    pub conflicts: BTreeMap<RowKey, ConflictRecord>,
    pub choices: BTreeMap<RowKey, Choice>,
    /// The queue of pending deletes, when it changed.
    pub queue: Option<BTreeMap<RowKey, PendingDelete>>,
    /// The guard's log, when it changed.
    pub recent: Option<Vec<RecentDeletes>>,
    pub stuck: KeyMap<Stuck>,
    /// In order: new conflicts, newly held rows, released rows, tripped guards, queue changes.
    pub events: Vec<Event>,
}

/// The state after the writes: new bases for rows both sides now agree on, rows to retry,
/// held rows, conflicts, the queue of pending deletes and the guard's log.
pub(super) fn settle(
    st: &EngineState,
    reads: &[SideRead; 2],
    work: &Work,
    outcomes: &Outcomes,
    cx: &Context<'_>,
) -> Settled {
    let mut new_bases = outcomes.generated.clone();
    let mut pending = BTreeSet::new();
    for (k, t) in work.agreed.iter().chain(work.targets.iter()) {
        if outcomes.failed.contains_key(k) {
            pending.insert(k.clone());
            continue;
        }
        new_bases.push((k.clone(), RowBase::agreed(t.clone(), cx.now)));
    }
    let stuck = stuck::next(st, reads, work, &outcomes.failed, &new_bases, cx.instant);
    let held = held_rows(work, outcomes, &stuck, cx.tables, &mut pending);
    let (conflicts, choices, released) = settle_conflicts(st, work, &new_bases, &held);
    pending.extend(work.plan.conflicts.iter().map(|c| c.key.clone()));
    pending.extend(held.iter().filter_map(|h| h.key.clone()));
    let queue = deletes::next_queue(cx.mapping, st, work, &new_bases);
    let recent =
        deletes::next_recent_deletes((cx.wall_ms, cx.guard_window), st, work, &outcomes.deleted);
    let intents_done: Vec<RowKey> = new_bases
        .iter()
        .map(|(k, _)| k)
        .chain(&work.intents_obsolete)
        .filter(|k| st.intents.contains_key(*k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    let intents_cleared = !intents_done.is_empty() && intents_done.len() == st.intents.len();
    let events = events(st, work, &held, released, &queue);
    let delta = StateDelta {
        remove: prunable_tombstones(st, reads, &new_bases),
        upsert: new_bases,
        cursors: moved_cursors(st, reads),
        pending: (pending != st.pending).then(|| pending.iter().cloned().collect()),
        held: (held != st.held).then(|| held.clone()),
        conflicts: (conflicts != st.conflicts).then(|| conflicts.values().cloned().collect()),
        choices: (choices != st.choices).then(|| choices.clone().into_iter().collect()),
        clock: cx.clock,
        identity: st.identity_to_record.clone(),
        intents_done,
        intents_cleared,
        pending_deletes: queue.as_ref().map(|(q, _)| q.values().cloned().collect()),
        recent_deletes: recent.clone(),
        ..StateDelta::default()
    };
    Settled {
        delta,
        pending,
        held,
        conflicts,
        choices,
        queue: queue.map(|(q, _)| q),
        recent,
        stuck,
        events,
    }
}

/// The rows held after the writes: those the plan holds, those a side refused (unless they
/// are parked, which holds them with its own reason) and the parked ones. Every row whose
/// writes failed or that is parked is retried.
fn held_rows(
    work: &Work,
    outcomes: &Outcomes,
    stuck: &KeyMap<Stuck>,
    tables: [&str; 2],
    pending: &mut BTreeSet<RowKey>,
) -> Vec<HeldRow> {
    let mut held = work.plan.held.clone();
    for (k, failure) in &outcomes.failed {
        pending.insert(k.clone());
        if let (Failure::Refused(side, reason), None) =
            (failure, stuck.get(k).and_then(|s| s.parked))
        {
            held.push(HeldRow {
                key: Some(k.clone()),
                side: Some(*side),
                locator: None,
                reason: format!("{} refused the row: {reason}", tables[idx(*side)]),
            });
        }
    }
    for (k, s) in stuck {
        pending.insert(k.clone());
        if let Some(h) = s.held(k, tables[idx(s.side)]) {
            held.push(h);
        }
    }
    held
}

/// The conflicts and choices after the writes, and the rows released: a row with a new base
/// leaves both, and a row held before and not now is released too.
fn settle_conflicts(
    st: &EngineState,
    work: &Work,
    new_bases: &[(RowKey, RowBase)],
    held: &[HeldRow],
) -> (
    BTreeMap<RowKey, ConflictRecord>,
    BTreeMap<RowKey, Choice>,
    Vec<RowKey>,
) {
    let mut released = Vec::new();
    let mut conflicts = st.conflicts.clone();
    let mut choices = st.choices.clone();
    for (k, _) in new_bases {
        choices.remove(k);
        if conflicts.remove(k).is_some() {
            released.push(k.clone());
        }
    }
    for c in &work.plan.conflicts {
        conflicts.insert(c.key.clone(), c.clone());
    }
    for k in st.held.iter().filter_map(|h| h.key.as_ref()) {
        if !held.iter().any(|n| n.key.as_ref() == Some(k)) && !released.contains(k) {
            released.push(k.clone());
        }
    }
    (conflicts, choices, released)
}

/// What to tell the host once the new state is committed.
fn events(
    st: &EngineState,
    work: &Work,
    held: &[HeldRow],
    released: Vec<RowKey>,
    queue: &Option<deletes::NextQueue>,
) -> Vec<Event> {
    let mut events = Vec::new();
    for c in &work.plan.conflicts {
        let is_new = st
            .conflicts
            .get(&c.key)
            .is_none_or(|old| old.fields != c.fields || old.sheet != c.sheet || old.db != c.db);
        if is_new {
            events.push(Event::Conflict(c.clone()));
        }
    }
    // A row held before is not announced again when only its place (people moved rows) or
    // the wording changed: one warning per held row until it is released.
    let was_held = |h: &HeldRow| {
        st.held.iter().any(|old| match (&h.key, &old.key) {
            (Some(k), Some(old_key)) => k == old_key && h.side == old.side,
            _ => old == h,
        })
    };
    let newly_held = held.iter().filter(|h| !was_held(h));
    events.extend(newly_held.cloned().map(Event::Held));
    events.extend(released.into_iter().map(|key| Event::Released { key }));
    for &(side, deletes, rows) in &work.plan.guard {
        events.push(Event::GuardTripped {
            side,
            deletes,
            rows,
        });
    }
    if let Some((queue, changes)) = queue {
        let waiting = deletes::waiting(queue);
        for &(change, deleted_on, rows) in changes {
            events.push(Event::DeleteQueue {
                change,
                deleted_on,
                rows,
                waiting,
            });
        }
    }
    events
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
        .filter(|(k, e)| e.tombstone && !renewed.contains(k))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The cursors that moved this cycle.
fn moved_cursors(st: &EngineState, reads: &[SideRead; 2]) -> Vec<(Side, Cursor)> {
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

impl EngineState {
    /// Makes memory what was committed; returns the events to tell the host.
    pub(super) fn absorb(&mut self, reads: &[SideRead; 2], work: &Work, s: Settled) -> Vec<Event> {
        let delta = s.delta;
        for (k, b) in delta.upsert {
            self.set_base(k, b);
        }
        for k in &delta.remove {
            if let Some(old) = self.bases.remove(k) {
                self.live_bases -= !old.tombstone as usize;
            }
        }
        self.cursors.extend(delta.cursors);
        for k in &delta.intents_done {
            self.intents.remove(k);
        }
        if delta.identity.is_some() {
            self.identity_to_record = None;
        }
        self.remember_first_seen(&s.pending, work);
        self.pending = s.pending;
        self.stuck = s.stuck;
        self.held = s.held;
        self.conflicts = s.conflicts;
        self.choices = s.choices;
        if let Some(recent) = s.recent {
            self.recent_deletes = recent;
        }
        if work.guard_bypassed {
            self.allow_deletes = false;
        }
        for side in Side::BOTH {
            if reads[idx(side)].full {
                self.last_full[idx(side)] = Some(Instant::now());
            }
        }
        if let Some(queue) = s.queue {
            self.queue = queue;
        }
        s.events
    }

    /// Remembers when the changes of rows to retry were first seen.
    fn remember_first_seen(&mut self, pending: &BTreeSet<RowKey>, work: &Work) {
        self.first_seen.retain(|k, _| pending.contains(k));
        for k in pending {
            if let Some(now_seen) = work.seen.get(k) {
                let entry = self.first_seen.entry(k.clone()).or_insert(*now_seen);
                for i in 0..2 {
                    match (entry[i], now_seen[i]) {
                        (Some((h, _)), Some((h2, _))) if h == h2 => {}
                        _ => entry[i] = now_seen[i],
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
