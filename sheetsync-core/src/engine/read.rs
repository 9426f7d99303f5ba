//! Reading one side for a cycle: a full scan or the changes since the cursor.

use std::collections::BTreeMap;

use futures::StreamExt;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Change, Cursor, InvalidRow, KeyMap, Observation, Row, RowKey, Side, TableSchema, UnkeyedRow,
};
use crate::state::RowBase;
use std::sync::atomic::Ordering;

use super::{idx, BaseEntry, Engine, EngineState, Event};
use crate::table::Table;

/// A row as a side showed it this cycle.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `None`: the side does not have the row.
    pub row: Option<Row>,
    /// What the side really holds when a concurrent write overwrote `row`
    /// ([`Change::Overwritten`]).
    pub actual: Option<Row>,
    /// When it changed (engine clock).
    pub at: u64,
}

/// Everything read from one side in a cycle.
///
/// A full scan keeps only the rows that differ from their base: an unchanged row is dropped as
/// soon as it is compared, so a scan's memory grows with the changes, not with the table.
#[derive(Debug, Default)]
pub(crate) struct SideRead {
    /// True for a full scan: `seen` holds every key the side has.
    pub full: bool,
    /// Full scan: the rows that differ from their base. Incremental: the rows the feed touched.
    pub rows: KeyMap<Seen>,
    /// Full scan: the keys seen that have no base (keys with a base are marked in the base).
    pub new_seen: KeyMap<()>,
    /// Full scan: which of a base's two marks is this side's.
    pub side: usize,
    /// Full scan: the mark of this read.
    pub gen: u32,
    /// Full scan: how many seen keys have a live base.
    pub seen_with_base: usize,
    /// Rows held for bad data, by key where known.
    pub invalid: Vec<InvalidRow>,
    /// Rows without a key.
    pub unkeyed: Vec<UnkeyedRow>,
    /// Keys seen more than once in a full scan, with where.
    pub duplicates: BTreeMap<RowKey, Vec<String>>,
    /// The cursor to persist after this cycle.
    pub cursor: Option<Cursor>,
    /// The feed's position before this read, to ack after persisting.
    pub ack: Option<Cursor>,
    /// Full scan: a row's encoding, to compare it with its base's (reused row after row).
    encoded: Vec<u8>,
}

impl SideRead {
    /// True when some row could not be identified, so rows missing from a full scan may just be
    /// unreadable: no delete may be inferred from absence this cycle.
    pub fn has_unidentified(&self) -> bool {
        self.invalid.iter().any(|r| r.key.is_none())
    }

    /// True when a full read saw `key` (whose base entry is `entry`).
    pub fn saw(&self, key: &RowKey, entry: Option<&BaseEntry>) -> bool {
        entry.is_some_and(|e| e.seen[self.side].load(Ordering::Relaxed) == self.gen)
            || self.rows.contains_key(key)
            || self.new_seen.contains_key(key)
    }

    /// The row this side holds for `key`, if the read tells: `Some(None)` for absent. `base`
    /// is `entry`'s, decoded.
    pub fn row_of<'a>(
        &'a self,
        key: &RowKey,
        entry: Option<&BaseEntry>,
        base: Option<&'a RowBase>,
    ) -> Option<(Option<&'a Row>, u64)> {
        if let Some(seen) = self.rows.get(key) {
            return Some((seen.row.as_ref(), seen.at));
        }
        if self.full {
            if self.saw(key, entry) {
                // Seen and equal to its base.
                return Some((
                    base.and_then(|b| b.live_row()),
                    base.map_or(0, |b| b.synced_at),
                ));
            }
            if !self.has_unidentified() {
                return Some((None, 0));
            }
        }
        None
    }

    /// Adds one observation. `now` stamps observations without a source time: one clock
    /// reading per read, since a full scan cannot tell when its rows changed anyway. `bases`
    /// is given for full scans.
    fn take(
        &mut self,
        obs: Observation,
        clock: &Clock,
        now: u64,
        bases: Option<&KeyMap<BaseEntry>>,
        schema: &TableSchema,
    ) {
        let at = match obs.at {
            Some(_) => clock.stamp(obs.at),
            None => now,
        };
        let mut change = obs.change;
        if let Change::Overwritten {
            mut row,
            mut actual,
        } = change
        {
            schema.normalize(&mut row);
            schema.normalize(&mut actual);
            match (row.key(schema), actual.key(schema)) {
                (Some(key), Some(same)) if key == same => {
                    let seen = Seen {
                        row: Some(row),
                        actual: Some(actual),
                        at,
                    };
                    self.rows.insert(key, seen);
                    return;
                }
                // An overwrite of another row's key is just this row's change.
                _ => change = Change::Upsert(row),
            }
        }
        if let Change::Upsert(row) = &mut change {
            schema.normalize(row);
        }
        match change {
            Change::Upsert(row) => match row.key(schema) {
                Some(key) => {
                    if let Some(bases) = bases {
                        let entry = bases.get(&key);
                        // Mark the key seen: in its base when it has one (no second map to
                        // fill for the common case), else in `new_seen`.
                        let again = match entry {
                            Some(e) => {
                                e.seen[self.side].swap(self.gen, Ordering::Relaxed) == self.gen
                            }
                            None => self.new_seen.insert(key.clone(), ()).is_some(),
                        };
                        if again {
                            let locs = self.duplicates.entry(key.clone()).or_default();
                            if locs.is_empty() {
                                let prev = match self.rows.get(&key) {
                                    Some(s) => describe(s.row.as_ref()),
                                    None => describe(entry.and_then(|e| e.live_row()).as_ref()),
                                };
                                locs.push(prev);
                            }
                            locs.push(describe(Some(&row)));
                        } else if entry.is_some_and(|e| !e.tombstone) {
                            self.seen_with_base += 1;
                        }
                        let unchanged = entry.is_some_and(|e| e.holds(&row, &mut self.encoded));
                        if unchanged && !self.duplicates.contains_key(&key) {
                            return;
                        }
                    }
                    self.rows.insert(
                        key,
                        Seen {
                            row: Some(row),
                            actual: None,
                            at,
                        },
                    );
                }
                // An adapter that reports a keyless row as an upsert: treat it as unkeyed only
                // if it gave a locator, which it did not, so hold it.
                None => self.invalid.push(InvalidRow {
                    key: None,
                    locator: None,
                    reason: "row has an empty key but the side reported no locator for it".into(),
                }),
            },
            Change::Delete(key) => {
                self.rows.insert(
                    key,
                    Seen {
                        row: None,
                        actual: None,
                        at,
                    },
                );
            }
            Change::Invalid(inv) => self.invalid.push(inv),
            Change::Overwritten { .. } => unreachable!("handled above"),
            Change::Unkeyed(mut u) => {
                schema.normalize(&mut u.row);
                if u.row.0.iter().any(|v| !v.is_null()) {
                    self.unkeyed.push(u)
                }
            }
        }
    }
}

fn describe(row: Option<&Row>) -> String {
    match row {
        Some(r) => {
            r.0.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        None => "(deleted)".into(),
    }
}

/// Reads every row of `table`.
pub(crate) async fn full_scan(
    table: &dyn Table,
    clock: &Clock,
    bases: &KeyMap<BaseEntry>,
    side: usize,
    gen: u32,
    now: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SideRead> {
    let schema = table.schema().clone();
    let mut read = SideRead {
        full: true,
        side,
        gen,
        ..Default::default()
    };
    // The feed position before the scan: changes during the scan are read again afterwards.
    read.cursor = table.cursor().await?;
    read.ack = read.cursor.clone();
    let mut pages = table.scan();
    let mut rows = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        rows += page.len();
        for obs in page {
            if matches!(obs.change, Change::Delete(_) | Change::Overwritten { .. }) {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "{} returned a change-feed entry from a full scan",
                        table.name()
                    ),
                ));
            }
            read.take(obs, clock, now, Some(bases), &schema);
        }
        progress(rows);
    }
    Ok(read)
}

/// Reads the changes of `table` since `cursor`, page after page until the feed is drained.
pub(crate) async fn incremental(
    table: &dyn Table,
    cursor: &Cursor,
    batch: usize,
    clock: &Clock,
    now: u64,
) -> Result<SideRead> {
    let schema = table.schema().clone();
    let mut read = SideRead::default();
    let mut at = cursor.clone();
    loop {
        let page = table.changes(&at, batch.max(1)).await?;
        for obs in page.changes {
            read.take(obs, clock, now, None, &schema);
        }
        at = page.cursor;
        if !page.more {
            break;
        }
    }
    read.ack = Some(at.clone());
    read.cursor = Some(at);
    Ok(read)
}

/// Re-reads `keys` from an incremental side: the rows found (deleted ones as `None`) and the
/// rows that are there but invalid.
pub(crate) async fn fetch(
    table: &dyn Table,
    side: Side,
    keys: &[RowKey],
    clock: &Clock,
    now: u64,
) -> Result<(KeyMap<Seen>, Vec<InvalidRow>)> {
    let schema = table.schema().clone();
    let mut read = SideRead::default();
    for chunk in keys.chunks(table.capabilities().max_batch.max(1)) {
        let found = table
            .fetch(chunk)
            .await
            .map_err(|e| e.with_context("side", side.to_string()))?;
        for obs in found {
            read.take(obs, clock, now, None, &schema);
        }
    }
    Ok((read.rows, read.invalid))
}
impl Engine {
    /// Reads both sides for a cycle: each in full when a full read is due or asked for,
    /// otherwise through its change feed, plus the rows the engine must look at again.
    pub(super) async fn read_sides(&self, st: &EngineState) -> Result<[SideRead; 2]> {
        let full_every = self.mapping.timing.full_scan_interval();
        let mut out: [SideRead; 2] = Default::default();
        // One time for everything this cycle observes without a time of its own: which side
        // was read first must not decide last-write-wins (the configured tie does).
        let now = self.clock.now();
        for side in Side::BOTH {
            let table = self.table(side);
            let caps = table.capabilities();
            let cursor = st.cursors.get(&side);
            let full_due = st.last_full[idx(side)].is_none_or(|t| t.elapsed() >= full_every)
                || table.full_scan_requested();
            let mut read = match cursor {
                Some(c) if caps.incremental && !full_due => {
                    incremental(table, c, self.mapping.timing.change_batch, &self.clock, now).await
                }
                _ => {
                    let gen = self
                        .scan_gen
                        .fetch_add(1, Ordering::Relaxed)
                        .wrapping_add(1);
                    let progress = |rows| self.emit(Event::ReadProgress { side, rows });
                    full_scan(
                        table,
                        &self.clock,
                        &st.bases,
                        idx(side),
                        gen,
                        now,
                        &progress,
                    )
                    .await
                }
            }
            .map_err(|e| e.with_context("side", side.to_string()))?;
            if !read.full && caps.fetch {
                // Rows to retry were read before; the feed will not show them again.
                // So were rows with a write intent or a pending delete, and the engine's own
                // writes never come back through the feed.
                let retry: Vec<RowKey> = st
                    .keys_to_revisit()
                    .into_iter()
                    .filter(|k| !read.rows.contains_key(k))
                    .collect();
                if !retry.is_empty() {
                    let (rows, invalid) = fetch(table, side, &retry, &self.clock, now).await?;
                    read.rows.extend(rows);
                    read.invalid.extend(invalid);
                }
            }
            out[idx(side)] = read;
        }
        Ok(out)
    }
}
