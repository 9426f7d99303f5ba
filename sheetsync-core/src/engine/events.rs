//! What the engine tells its host.

use serde::Serialize;

use super::Engine;
use crate::error::{Error, ErrorKind, ErrorStatus};
use crate::model::{RowKey, Side};
use crate::state::{ConflictRecord, HeldRow};

/// The kind of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// A row was inserted or updated.
    Upsert,
    /// A row was deleted.
    Delete,
    /// A new row was given its key.
    SetKey,
}

/// Something that happened during a cycle. Subscribe with [`crate::Engine::subscribe`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A write to a side was applied.
    Synced {
        /// The row (`None` for a database-generated key not yet known).
        key: Option<RowKey>,
        /// The side written.
        side: Side,
        /// What was written.
        kind: WriteKind,
    },
    /// A conflict was kept for a person.
    Conflict(ConflictRecord),
    /// A row is held back.
    Held(HeldRow),
    /// A held or conflicted row syncs again.
    Released {
        /// The row.
        key: RowKey,
    },
    /// A side's deletes exceeded the mass-delete guard's limits this cycle: they wait in the
    /// approval queue (or, with `auto_approve`, were applied anyway).
    GuardTripped {
        /// The side whose rows would have been deleted.
        side: Side,
        /// How many deletes tripped it.
        deletes: usize,
        /// How many rows the side has.
        rows: usize,
    },
    /// The queue of deletes waiting for approval changed.
    DeleteQueue {
        /// What happened.
        change: QueueChange,
        /// The side the rows were deleted on.
        deleted_on: Side,
        /// How many rows it concerns.
        rows: usize,
        /// Deletes waiting for a decision now, on both sides.
        waiting: usize,
    },
    /// An operation failed; the cycle's affected rows are retried.
    Error {
        /// The side involved, if one.
        side: Option<Side>,
        /// What went wrong.
        kind: ErrorKind,
        /// Whether retrying can help.
        status: ErrorStatus,
        /// The error.
        message: String,
    },
    /// A full read is under way: rows read so far from one side (one event per page).
    ReadProgress {
        /// The side being read.
        side: Side,
        /// Rows read so far in this read.
        rows: usize,
    },
    /// A cycle finished.
    Cycle(CycleReport),
}

impl Event {
    /// An [`Event::Error`] for `error`, on `side` if one.
    pub fn error(side: Option<Side>, error: &Error) -> Self {
        Event::Error {
            side,
            kind: error.kind(),
            status: error.status(),
            message: error.to_string(),
        }
    }
}

impl Engine {
    pub(super) fn emit(&self, e: Event) {
        // No subscribers is fine.
        let _ = self.events.send(e);
    }

    /// Emits `events`, logging those an operator must see in the log too: a held row, a
    /// conflict kept for a person, a tripped guard, a change of the queue of pending deletes.
    pub(super) fn announce(&self, events: Vec<Event>) {
        for e in events {
            match &e {
                Event::Held(h) => tracing::warn!(
                    mapping = %self.mapping.name,
                    key = ?h.key.as_ref().map(|k| k.to_string()),
                    side = ?h.side,
                    locator = ?h.locator,
                    "row held: {}",
                    h.reason
                ),
                Event::DeleteQueue {
                    change,
                    deleted_on,
                    rows,
                    waiting,
                } => tracing::warn!(
                    mapping = %self.mapping.name,
                    change = change.as_str(),
                    deleted_on = %deleted_on,
                    rows,
                    waiting,
                    "pending deletes {}: {rows} row(s) deleted in the {deleted_on}",
                    change.as_str()
                ),
                Event::Conflict(c) => {
                    let fields: Vec<&str> = c.fields.iter().map(|f| f.column.as_str()).collect();
                    let why = c
                        .reason
                        .as_deref()
                        .unwrap_or("the resolvers left it to a person");
                    tracing::warn!(mapping = %self.mapping.name, key = %c.key, ?fields, deleted_on = ?c.deleted_on, "conflict kept for a person: {why}");
                }
                Event::GuardTripped {
                    side,
                    deletes,
                    rows,
                } => tracing::warn!(
                    mapping = %self.mapping.name,
                    %side,
                    deletes,
                    rows,
                    "the mass-delete guard stopped {deletes} delete(s) of {rows} row(s) in the {side}: they wait for approval"
                ),
                _ => {}
            }
            self.emit(e);
        }
    }
}

/// A change to the queue of pending deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueChange {
    /// Deletes were parked by the guard.
    Queued,
    /// An operator approved deletes; the next cycle applies them.
    Approved,
    /// An operator rejected deletes; the next cycle restores the rows.
    Rejected,
    /// Approved deletes were applied on the other side.
    Applied,
    /// Rejected deletes were undone: the rows are back on the side that deleted them.
    Restored,
    /// Pending deletes were dropped: the row reappeared, or it changed so that it is no longer
    /// a delete (deleted on both sides, updated on the other side).
    Dropped,
}

impl QueueChange {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueChange::Queued => "queued",
            QueueChange::Approved => "approved",
            QueueChange::Rejected => "rejected",
            QueueChange::Applied => "applied",
            QueueChange::Restored => "restored",
            QueueChange::Dropped => "dropped",
        }
    }
}

/// Counts for one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SideCounts {
    /// The Sheet's count.
    pub sheet: usize,
    /// The database's count.
    pub db: usize,
}

impl SideCounts {
    /// The count of `side`.
    pub fn get(&self, side: Side) -> usize {
        match side {
            Side::Sheet => self.sheet,
            Side::Db => self.db,
        }
    }

    /// A mutable reference to the count of `side`.
    pub fn get_mut(&mut self, side: Side) -> &mut usize {
        match side {
            Side::Sheet => &mut self.sheet,
            Side::Db => &mut self.db,
        }
    }

    /// The sum of both sides.
    pub fn total(&self) -> usize {
        self.sheet + self.db
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CycleReport {
    /// The cycle's number since the engine started.
    pub cycle: u64,
    /// Which sides were read in full.
    pub full_reads: SideCounts,
    /// Changed rows observed per side.
    pub changes: SideCounts,
    /// Operations applied per side.
    pub writes: SideCounts,
    /// `Sink::apply` calls per side.
    pub write_calls: SideCounts,
    /// Rows held at the end of the cycle.
    pub held: usize,
    /// Conflicts kept at the end of the cycle.
    pub conflicts: usize,
    /// Keys to retry next cycle.
    pub pending: usize,
    /// Sides whose deletes tripped the guard.
    pub guard_tripped: Vec<crate::model::Side>,
    /// Deletes parked in the approval queue this cycle.
    pub deletes_queued: usize,
    /// Deletes waiting for an operator at the end of the cycle.
    pub pending_deletes: usize,
    /// Write intents persisted before the writes (one per row written).
    pub intents: usize,
    /// Commits to the state store (the intents, the new state, rows the database stored
    /// otherwise than written).
    pub state_commits: usize,
    /// Where the cycle's time went.
    pub timings: CycleTimings,
}

/// The time each phase of a cycle took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CycleTimings {
    /// Reading both sides.
    pub read: std::time::Duration,
    /// Merging and planning.
    pub plan: std::time::Duration,
    /// Persisting the write intents.
    pub intents: std::time::Duration,
    /// Writing the Sheet.
    pub sheet: std::time::Duration,
    /// Writing the database and committing the new state (one transaction when the state lives
    /// in the database).
    pub db_and_commit: std::time::Duration,
    /// The whole cycle.
    pub total: std::time::Duration,
}
