//! What planning hands to the rest of a cycle: the public [`Plan`] (what [`Engine::plan`]
//! returns for a dry run) and the internal [`Work`] list, which adds what the write and settle
//! steps need to carry the plan out.
//!
//! [`Engine::plan`]: super::Engine::plan

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::SideCounts;
use crate::model::{Row, RowHash, RowKey, Side};
use crate::state::{ConflictRecord, HeldRow, PendingDelete, WriteIntent};
use crate::table::WriteOp;

/// A write the engine intends to make.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOp {
    /// The row it concerns (`None` for a row whose key the database will generate).
    pub key: Option<RowKey>,
    /// The write.
    pub op: WriteOp,
    /// For a database-generated key: the Sheet row to write the key back to.
    pub(crate) locator: Option<String>,
}

impl PlannedOp {
    /// A write of row `key` (no key to write back).
    pub(crate) fn new(key: Option<RowKey>, op: WriteOp) -> Self {
        PlannedOp {
            key,
            op,
            locator: None,
        }
    }
}

impl Serialize for PlannedOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PlannedOp", 3)?;
        let (kind, row) = match &self.op {
            WriteOp::Upsert { row, .. } => ("upsert", Some(row)),
            WriteOp::Insert { row } => ("insert", Some(row)),
            WriteOp::Delete { .. } => ("delete", None),
            WriteOp::SetKey { row, .. } => ("set_key", Some(row)),
        };
        st.serialize_field("op", kind)?;
        st.serialize_field("key", &self.key)?;
        st.serialize_field("row", &row)?;
        st.end()
    }
}

/// What a cycle will do. [`Engine::plan`](super::Engine::plan) returns it without doing it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Writes to the Sheet.
    pub sheet: Vec<PlannedOp>,
    /// Writes to the database. A write of a row that the Sheet is written first (a new key
    /// the engine generated) is only made once the Sheet accepted its part.
    pub db: Vec<PlannedOp>,
    /// Conflicts that will be kept for people.
    pub conflicts: Vec<ConflictRecord>,
    /// Rows that will be held.
    pub held: Vec<HeldRow>,
    /// Sides whose deletes trip the mass-delete guard: (side, deletes, rows). Unless the guard
    /// auto-approves, those deletes wait in the approval queue instead of being applied.
    pub guard: Vec<(Side, usize, usize)>,
    /// Changed rows seen per side.
    pub changes: SideCounts,
}

/// The engine's own hand-over from planning to writing and settling: the [`Plan`], and what
/// the later steps need to know about each row.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// What the cycle will do, as a dry run shows it.
    pub plan: Plan,
    /// Rows both sides already agree on, with their new base.
    pub agreed: BTreeMap<RowKey, Option<Row>>,
    /// Rows being written, with what both sides will hold.
    pub targets: BTreeMap<RowKey, Option<Row>>,
    /// The mass-delete guard was lifted for this cycle.
    pub guard_bypassed: bool,
    /// Each merged row's content hash and change time per side, kept for rows retried later so
    /// that re-reading an unchanged row does not make its change look newer.
    pub seen: BTreeMap<RowKey, [Option<(RowHash, u64)>; 2]>,
    /// The write intents to persist before any side is written.
    pub intents: BTreeMap<RowKey, WriteIntent>,
    /// Intents planned against a base that has changed since: forgotten.
    pub intents_obsolete: Vec<RowKey>,
    /// Rows whose pending intent turned out complete, with its target: their base. Saved with
    /// the new intents, since a new intent for such a row is planned against that base.
    pub completed: BTreeMap<RowKey, Option<Row>>,
    /// Deletes parked in the approval queue this cycle.
    pub queued: Vec<PendingDelete>,
    /// Pending deletes that are no longer deletes, and why.
    pub queue_dropped: Vec<(RowKey, String)>,
    /// Deletes an operator approved: they do not count against the guard's window.
    pub approved_deletes: HashSet<RowKey>,
}

impl Work {
    /// The writes planned for `side`.
    pub fn ops(&mut self, side: Side) -> &mut Vec<PlannedOp> {
        match side {
            Side::Sheet => &mut self.plan.sheet,
            Side::Db => &mut self.plan.db,
        }
    }

    /// Takes `keys` out of this cycle: their deletes on `side` and every write of theirs on the
    /// other side (a delete-vs-restore never half-applies).
    pub fn withhold(&mut self, side: Side, keys: &HashSet<RowKey>) {
        let listed = |p: &PlannedOp| p.key.as_ref().is_some_and(|k| keys.contains(k));
        self.ops(side)
            .retain(|p| !(matches!(p.op, WriteOp::Delete { .. }) && listed(p)));
        self.ops(side.other()).retain(|p| !listed(p));
        for k in keys {
            self.targets.remove(k);
            self.intents.remove(k);
        }
    }
}
