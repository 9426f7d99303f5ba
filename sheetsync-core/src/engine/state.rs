//! What the engine holds in memory between cycles: the merge bases and everything else the
//! state store persists, plus what only this process knows (rows that keep failing, when each
//! side was last read in full).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::stuck;
use crate::model::{Cursor, KeyMap, Row, RowKey, Side};
use crate::state::{
    Choice, ConflictRecord, HeldRow, MappingIdentity, PendingDelete, RecentDeletes, RowBase,
    StateSnapshot, WriteIntent,
};

/// The engine's state.
#[derive(Default)]
pub(super) struct EngineState {
    pub bases: KeyMap<BaseEntry>,
    /// How many bases are not tombstones.
    pub live_bases: usize,
    pub cursors: BTreeMap<Side, Cursor>,
    pub pending: BTreeSet<RowKey>,
    pub held: Vec<HeldRow>,
    pub conflicts: BTreeMap<RowKey, ConflictRecord>,
    pub choices: BTreeMap<RowKey, Choice>,
    /// Rows whose writes keep failing (see [`stuck`]); not persisted: a restart gives them
    /// their attempts again.
    pub stuck: KeyMap<stuck::Stuck>,
    /// For rows to retry: per side, the content hash and time of the change first seen.
    pub first_seen: KeyMap<[Option<(crate::model::RowHash, u64)>; 2]>,
    pub last_full: [Option<Instant>; 2],
    pub allow_deletes: bool,
    pub cycle: u64,
    /// Writes started and not seen through, by key.
    pub intents: BTreeMap<RowKey, WriteIntent>,
    /// Deletes waiting for an operator, by key.
    pub queue: BTreeMap<RowKey, PendingDelete>,
    /// Deletes applied within the guard's window.
    pub recent_deletes: Vec<RecentDeletes>,
    /// The sides' identity, to record with the next commit (a new mapping, or state from before
    /// identities were recorded).
    pub identity_to_record: Option<MappingIdentity>,
    /// A state commit failed: whether it landed is unknown, so the next cycle starts from what
    /// the store holds, as a restart would.
    pub reload: bool,
    /// The notices the Sheet side last took ([`crate::Sink::annotate`]); `None` until the
    /// first call succeeds.
    pub annotated: Option<Vec<crate::table::RowNotice>>,
}

impl EngineState {
    pub fn from_snapshot(snap: StateSnapshot) -> Self {
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
    pub fn set_base(&mut self, key: RowKey, base: RowBase) {
        let live = !base.tombstone;
        if let Some(old) = self.bases.insert(key, BaseEntry::new(base)) {
            self.live_bases -= !old.tombstone as usize;
        }
        self.live_bases += live as usize;
    }

    /// Keys the engine must look at every cycle whatever the feeds say (a parked row only once
    /// its pause is over).
    pub fn keys_to_revisit(&self) -> BTreeSet<RowKey> {
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
///
/// The agreed row is kept as its canonical encoding ([`Row::encode`]) in one allocation: as
/// `Value`s it takes a `Vec` and one more allocation per text or decimal, about three times
/// the bytes, and a million rows of small allocations made during a large sync fragment the
/// heap. A merge decodes the row it needs; a read compares rows encoded.
pub(crate) struct BaseEntry {
    /// The row's encoding; empty for a tombstone.
    row: Box<[u8]>,
    /// The row was deleted on both sides.
    pub tombstone: bool,
    /// The engine clock when the sides agreed.
    pub synced_at: u64,
    pub seen: [AtomicU32; 2],
}

impl BaseEntry {
    pub fn new(base: RowBase) -> Self {
        let mut row = Vec::new();
        if !base.tombstone {
            base.row.encode(&mut row);
        }
        BaseEntry {
            row: row.into_boxed_slice(),
            tombstone: base.tombstone,
            synced_at: base.synced_at,
            seen: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }

    /// The base, decoded.
    pub fn base(&self) -> RowBase {
        RowBase::agreed(self.live_row(), self.synced_at)
    }

    /// The agreed row, decoded; `None` for a tombstone.
    pub fn live_row(&self) -> Option<Row> {
        (!self.tombstone).then(|| Row::decode(&self.row).expect("a base decodes as encoded"))
    }

    /// Whether the agreed row is `row`, compared encoded (as `Row`'s equality compares), in
    /// `buf`.
    pub fn holds(&self, row: &Row, buf: &mut Vec<u8>) -> bool {
        if self.tombstone {
            return false;
        }
        buf.clear();
        row.encode(buf);
        **buf == *self.row
    }
}

/// Whether `row` (`None`: absent) is what the base `entry` (`None`: no base) agreed on.
pub(crate) fn agrees(entry: Option<&BaseEntry>, row: Option<&Row>) -> bool {
    match (entry.filter(|e| !e.tombstone), row) {
        (Some(e), Some(r)) => e.holds(r, &mut Vec::new()),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    #[test]
    fn a_base_in_the_map_takes_at_most_64_bytes_besides_its_encoding() {
        // The map holds one entry per row of the table: at a million rows every 8 bytes
        // here are about 17 MB (the map keeps up to twice as many slots as rows).
        assert!(std::mem::size_of::<(RowKey, BaseEntry)>() <= 64);
    }

    fn row() -> Row {
        Row::new(vec![
            Value::Int(7),
            Value::Text("item 7".into()),
            Value::Float(-0.0),
            Value::Decimal("1.50".parse().unwrap()),
            Value::Null,
        ])
    }

    #[test]
    fn a_base_gives_back_the_row_it_was_made_of() {
        let e = BaseEntry::new(RowBase::live(row(), 9));
        assert_eq!(e.base(), RowBase::live(row(), 9));
        let buf = &mut Vec::new();
        assert!(e.holds(&row(), buf));
        let mut other = row();
        other.0[1] = Value::Text("item 8".into());
        assert!(!e.holds(&other, buf));
        assert!(e.holds(&row(), buf), "the buffer is cleared first");
        assert!(agrees(Some(&e), Some(&row())));
        assert!(!agrees(Some(&e), None));
    }

    #[test]
    fn a_tombstone_holds_no_row() {
        let e = BaseEntry::new(RowBase::tombstone(3));
        assert_eq!(e.base(), RowBase::tombstone(3));
        assert_eq!(e.live_row(), None);
        assert!(!e.holds(&Row::new(Vec::new()), &mut Vec::new()));
        assert!(agrees(Some(&e), None) && agrees(None, None));
        assert!(!agrees(None, Some(&row())));
    }
}
