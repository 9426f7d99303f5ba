//! The engine's persistent memory: per-row merge bases, cursors, held rows and conflicts.
//!
//! The engine keeps the bases of a mapping in memory while it runs and persists each cycle's
//! changes as one [`StateDelta`], which a store must commit atomically. [`MemoryStateStore`] is the
//! reference implementation; the SQL adapters provide one that lives in the synced database.
//!
//! Besides the bases a mapping's state holds the engine's [`WriteIntent`]s (what it is about to
//! write, recorded before it writes), the [`MappingIdentity`] of the two sides it belongs to,
//! the [`PendingDelete`]s the mass-delete guard parked for an operator, and the
//! [`RecentDeletes`] the guard's window adds up.

mod memory;
mod records;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Cursor, Row, RowHash, RowKey, Side, Value};

pub use memory::MemoryStateStore;
pub use records::{
    DeleteDecision, MappingIdentity, PendingDelete, RecentDeletes, SideBefore, WriteIntent,
};

/// The last state of a row that both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowBase {
    /// The agreed values (empty for a tombstone).
    pub row: Row,
    /// `row.hash()`, kept so unchanged rows are recognised without comparing values.
    pub hash: RowHash,
    /// The row was deleted on both sides.
    pub tombstone: bool,
    /// The engine clock when the sides agreed.
    pub synced_at: u64,
}

impl RowBase {
    /// The base for an agreed row.
    pub fn live(row: Row, synced_at: u64) -> Self {
        RowBase {
            hash: row.hash(),
            row,
            tombstone: false,
            synced_at,
        }
    }

    /// The base for a row deleted on both sides.
    pub fn tombstone(synced_at: u64) -> Self {
        let row = Row::new(Vec::new());
        RowBase {
            hash: row.hash(),
            row,
            tombstone: true,
            synced_at,
        }
    }

    /// The base for what both sides agreed on: the row, or a tombstone for `None`.
    pub fn agreed(row: Option<Row>, synced_at: u64) -> Self {
        match row {
            Some(r) => RowBase::live(r, synced_at),
            None => RowBase::tombstone(synced_at),
        }
    }

    /// The agreed row, or `None` for a tombstone.
    pub fn live_row(&self) -> Option<&Row> {
        (!self.tombstone).then_some(&self.row)
    }
}

/// A row the engine is holding back, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRow {
    /// The row's key, when known.
    pub key: Option<RowKey>,
    /// The side whose data is at fault, when one is.
    pub side: Option<Side>,
    /// Where the row is on that side, for people.
    pub locator: Option<String>,
    /// Exactly what is wrong.
    pub reason: String,
}

/// One field changed to different values on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The column's name.
    pub column: String,
    /// The base value (`None` when the row is new on both sides).
    pub base: Option<Value>,
    /// The Sheet's value.
    pub sheet: Value,
    /// The database's value.
    pub db: Value,
}

/// A conflict kept for a person to resolve (the Manual strategy, or no strategy decided).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// The row.
    pub key: RowKey,
    /// The fields in conflict (empty for update-vs-delete).
    pub fields: Vec<FieldDiff>,
    /// For update-vs-delete: the side that deleted the row.
    pub deleted_on: Option<Side>,
    /// The Sheet's row when the conflict arose (`None` if deleted there).
    pub sheet: Option<Row>,
    /// The database's row when the conflict arose (`None` if deleted there).
    pub db: Option<Row>,
    /// The engine clock when the conflict arose.
    pub at: u64,
    /// Why it is kept, when a resolver said (say, the error of a conflict rule that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a person resolved a kept conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Take the row as it is on this side (a delete if it was deleted there).
    Side(Side),
    /// Take these values.
    Row(Row),
}

/// Everything a store keeps for one mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Merge bases by key.
    pub bases: BTreeMap<RowKey, RowBase>,
    /// The persisted change-feed cursor per side.
    pub cursors: BTreeMap<Side, Cursor>,
    /// Keys the engine must merge again next cycle (held, stale, failed writes).
    pub pending: Vec<RowKey>,
    /// Rows held back.
    pub held: Vec<HeldRow>,
    /// Conflicts kept for people.
    pub conflicts: Vec<ConflictRecord>,
    /// Resolutions chosen for kept conflicts, applied next cycle.
    pub choices: Vec<(RowKey, Choice)>,
    /// The engine clock, so it never runs backwards after a restart.
    pub clock: u64,
    /// The sides this state belongs to (`None`: not recorded yet).
    pub identity: Option<MappingIdentity>,
    /// Writes the engine started and has not seen through.
    pub intents: Vec<WriteIntent>,
    /// Deletes waiting for an operator.
    pub pending_deletes: Vec<PendingDelete>,
    /// Deletes applied recently, for the guard's window.
    pub recent_deletes: Vec<RecentDeletes>,
}

/// One cycle's changes to a mapping's state. Fields that are `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// Bases to insert or replace.
    pub upsert: Vec<(RowKey, RowBase)>,
    /// Bases to forget.
    pub remove: Vec<RowKey>,
    /// Cursors to set.
    pub cursors: Vec<(Side, Cursor)>,
    /// Replaces the pending keys.
    pub pending: Option<Vec<RowKey>>,
    /// Replaces the held rows.
    pub held: Option<Vec<HeldRow>>,
    /// Replaces the conflicts.
    pub conflicts: Option<Vec<ConflictRecord>>,
    /// Replaces the choices.
    pub choices: Option<Vec<(RowKey, Choice)>>,
    /// The engine clock.
    pub clock: u64,
    /// Forget everything stored for the mapping (but the clock) before applying the rest: a
    /// mapping started afresh.
    pub reset: bool,
    /// Records the sides the state belongs to.
    pub identity: Option<MappingIdentity>,
    /// Write intents to insert or replace (by key), after `intents_done` are removed.
    pub intents: Vec<WriteIntent>,
    /// Keys whose write intents are over.
    pub intents_done: Vec<RowKey>,
    /// Every write intent of the mapping is over (`intents_done` names them all): a store may
    /// drop them at once.
    pub intents_cleared: bool,
    /// Replaces the deletes waiting for an operator.
    pub pending_deletes: Option<Vec<PendingDelete>>,
    /// Replaces the log of recent deletes.
    pub recent_deletes: Option<Vec<RecentDeletes>>,
    /// The ownership epoch of the process that commits (a fencing token, see
    /// `sheetsync_sql::lease`): a store that keeps leases refuses the commit with
    /// [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) when the mapping's lease has moved
    /// to another epoch since, in the commit's own transaction. `None`: not fenced.
    pub fence: Option<u64>,
}

impl StateDelta {
    /// True when the delta changes nothing but (perhaps) the clock.
    pub fn is_empty(&self) -> bool {
        !self.reset
            && self.upsert.is_empty()
            && self.remove.is_empty()
            && self.cursors.is_empty()
            && self.pending.is_none()
            && self.held.is_none()
            && self.conflicts.is_none()
            && self.choices.is_none()
            && self.identity.is_none()
            && self.intents.is_empty()
            && self.intents_done.is_empty()
            && self.pending_deletes.is_none()
            && self.recent_deletes.is_none()
    }

    /// Applies the delta to a snapshot: what a store must do atomically.
    pub fn apply_to(&self, s: &mut StateSnapshot) {
        if self.reset {
            *s = StateSnapshot {
                clock: s.clock,
                ..StateSnapshot::default()
            };
        }
        for (k, b) in &self.upsert {
            s.bases.insert(k.clone(), b.clone());
        }
        for k in &self.remove {
            s.bases.remove(k);
        }
        for (side, c) in &self.cursors {
            s.cursors.insert(*side, c.clone());
        }
        if let Some(p) = &self.pending {
            s.pending = p.clone();
        }
        if let Some(h) = &self.held {
            s.held = h.clone();
        }
        if let Some(c) = &self.conflicts {
            s.conflicts = c.clone();
        }
        if let Some(c) = &self.choices {
            s.choices = c.clone();
        }
        if let Some(i) = &self.identity {
            s.identity = Some(i.clone());
        }
        if self.intents_cleared {
            s.intents.clear();
        }
        if !self.intents_done.is_empty() || !self.intents.is_empty() {
            let replaced: std::collections::HashSet<&RowKey> = self
                .intents_done
                .iter()
                .chain(self.intents.iter().map(|i| &i.key))
                .collect();
            s.intents.retain(|i| !replaced.contains(&i.key));
            s.intents.extend(self.intents.iter().cloned());
        }
        if let Some(p) = &self.pending_deletes {
            s.pending_deletes = p.clone();
        }
        if let Some(r) = &self.recent_deletes {
            s.recent_deletes = r.clone();
        }
        s.clock = s.clock.max(self.clock);
    }
}

/// Persists the engine's state, per mapping name.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Everything stored for `mapping` (empty for a new mapping).
    async fn load(&self, mapping: &str) -> Result<StateSnapshot>;

    /// Commits `delta` for `mapping` atomically: after a crash either all of it or none of it is
    /// visible to the next [`StateStore::load`].
    async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()>;

    /// Where the state lives, for sinks that commit into it in their own transactions
    /// ([`TransactionalSink::state_location`](crate::TransactionalSink::state_location)); `None`
    /// (the default) when no sink can.
    fn location(&self) -> Option<String> {
        None
    }

    /// Tries to take ownership of `mapping` for `owner` (a name for logs: host and process),
    /// so that one process at a time runs it ([`crate::ownership`]): `Ok(None)` while another
    /// holds it. The default, for stores that only one process can reach (the memory store),
    /// keeps no leases: [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
    async fn try_lease(
        &self,
        mapping: &str,
        owner: &str,
    ) -> Result<Option<std::sync::Arc<dyn crate::Ownership>>> {
        let _ = owner;
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("this state store keeps no leases (mapping {mapping:?})"),
        ))
    }

    /// Who last took `mapping`'s lease (`None` if nobody did, or the store keeps no leases).
    async fn lease_record(&self, mapping: &str) -> Result<Option<crate::LeaseRecord>> {
        let _ = mapping;
        Ok(None)
    }

    /// Membership of replicas sharing mappings: records that `replica` is alive now and
    /// returns the replicas seen alive within `ttl` (`replica` among them), sorted. The
    /// default, for stores that only one process can reach, keeps no membership:
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
    async fn heartbeat(&self, replica: &str, ttl: std::time::Duration) -> Result<Vec<String>> {
        let _ = ttl;
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("this state store keeps no replica membership (replica {replica:?})"),
        ))
    }

    /// Removes `replica` from the membership at once (a clean shutdown), so that the others
    /// need not wait for its heartbeat to expire.
    async fn leave(&self, replica: &str) -> Result<()> {
        let _ = replica;
        Ok(())
    }
}
