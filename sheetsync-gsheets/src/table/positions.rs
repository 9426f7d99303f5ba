//! Where the keys of the tab are: read from the key column (by a full read, or before a
//! write), and kept across this process's own writes.
//!
//! At a million rows these maps are a large part of what the adapter holds, so a read's map
//! is built once and shared (the read cache and the positions point at the same one), a key
//! costs one row number, and a delete is recorded beside the map instead of renumbering it.

use sheetsync_core::KeyMap;

use super::*;

/// Key → 1-based rows, from one read of the key column. A key sits in one row; the rare key
/// typed into several rows keeps its other rows apart, so the usual key costs one `u32`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KeyRows {
    first: KeyMap<u32>,
    /// The rows after the first, for keys found in several rows.
    more: KeyMap<Vec<u32>>,
}

impl KeyRows {
    /// Adds `row` to the rows of `key` (rows are added top down).
    pub(crate) fn push(&mut self, key: RowKey, row: u32) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                self.more.entry(e.key().clone()).or_default().push(row);
            }
        }
    }

    /// The rows holding `key`, top down; `None` when no row does.
    pub(crate) fn get(&self, key: &RowKey) -> Option<Vec<u32>> {
        let first = *self.first.get(key)?;
        let mut rows = vec![first];
        rows.extend(self.more.get(key).into_iter().flatten());
        Some(rows)
    }

    /// The keys found in more than one row, with all their rows.
    pub(crate) fn duplicates(&self) -> impl Iterator<Item = (&RowKey, Vec<u32>)> {
        self.more
            .keys()
            .map(|k| (k, self.get(k).expect("a key in several rows has a first")))
    }

    /// How many keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.first.len()
    }
}

impl FromIterator<(RowKey, u32)> for KeyRows {
    fn from_iter<I: IntoIterator<Item = (RowKey, u32)>>(iter: I) -> Self {
        let mut rows = KeyRows::default();
        for (k, r) in iter {
            rows.push(k, r);
        }
        rows.first.shrink_to_fit();
        rows
    }
}

/// The key in each row, from one full read (rows without a key: `None`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowKeys {
    /// The 1-based row of `keys[0]`.
    first: u32,
    keys: Vec<Option<RowKey>>,
}

impl RowKeys {
    /// The keys of the rows from `first` down.
    pub(crate) fn new(first: u32, mut keys: Vec<Option<RowKey>>) -> Self {
        keys.shrink_to_fit();
        RowKeys { first, keys }
    }

    /// The key in 1-based `row`.
    pub(crate) fn get(&self, row: u32) -> Option<&RowKey> {
        let i = row.checked_sub(self.first)? as usize;
        self.keys.get(i)?.as_ref()
    }

    /// Key → rows.
    pub(crate) fn key_rows(&self) -> KeyRows {
        self.keys
            .iter()
            .zip(self.first..)
            .filter_map(|(k, row)| Some((k.clone()?, row)))
            .collect()
    }
}

/// Where each key of the tab is, kept from a read (full, or of the key column) across this
/// process's own writes, which move rows in known ways: cell writes move nothing, a delete
/// shifts the rows below it up, and an append puts its row at a place the answer does not
/// tell (the key is then known to be there, at an unknown row). Anything else that may move
/// rows (a person's structural edit or new row, a change nobody reported, a write that missed
/// or whose answer was lost) forgets them, and the next write reads the key column again.
/// Positions that went stale unnoticed (a sort no trigger reported) are safe: every write's
/// pre-image check catches a row that moved ([`crate::guard`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Positions {
    /// What the read found (shared with the read cache).
    read: Arc<KeyRows>,
    /// Keys this process deleted since the read.
    deleted: HashSet<RowKey>,
    /// Their rows, numbered as the read saw them, sorted: each moved the rows below up one.
    gone: Vec<u32>,
    /// Keys this process appended since: in the tab, at rows not known.
    pub(crate) unplaced: HashSet<RowKey>,
}

impl Positions {
    /// From a read of every key.
    pub(crate) fn read(read: Arc<KeyRows>) -> Self {
        Positions {
            read,
            ..Positions::default()
        }
    }

    /// The rows of `key` now, top down (`None`: not in the tab, or at rows not known).
    pub(crate) fn rows(&self, key: &RowKey) -> Option<Vec<u32>> {
        if self.deleted.contains(key) {
            return None;
        }
        let mut rows = self.read.get(key)?;
        for r in &mut rows {
            *r = self.now(*r);
        }
        Some(rows)
    }

    /// Where a row the read saw at `row` is now.
    fn now(&self, row: u32) -> u32 {
        row - self.gone.partition_point(|g| *g < row) as u32
    }

    /// Whether `key` is known to be at `row`, and only there.
    pub(crate) fn holds(&self, key: &RowKey, row: u32) -> bool {
        !self.unplaced.contains(key) && self.rows(key).is_some_and(|r| r == [row])
    }

    /// After a write that deleted the rows of `deleted` (keys and their 1-based rows before
    /// the write) and appended rows with `appended` keys. False when a deleted row is not
    /// where these positions had its key: they no longer describe the tab, forget them.
    #[must_use]
    pub(crate) fn advance(&mut self, deleted: &[(RowKey, u32)], appended: &[RowKey]) -> bool {
        let mut gone = Vec::with_capacity(deleted.len());
        for (k, row) in deleted {
            let read_row = (!self.deleted.contains(k))
                .then(|| self.read.get(k))
                .flatten()
                .and_then(|rows| rows.into_iter().find(|r| self.now(*r) == *row));
            match read_row {
                Some(r) => gone.push(r),
                None => return false,
            }
        }
        for (k, _) in deleted {
            self.deleted.insert(k.clone());
            self.unplaced.remove(k);
        }
        self.gone.extend(gone);
        self.gone.sort_unstable();
        self.unplaced.extend(appended.iter().cloned());
        true
    }
}
