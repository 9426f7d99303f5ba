//! Turning what was read into the writes of a cycle: the pure part of a cycle.

use std::collections::{BTreeSet, HashSet};

use super::read::SideRead;
use super::state::agrees;
use super::view::View;
use super::work::{PlannedOp, Work};
use super::{deletes, idx, intent, stuck, BaseEntry, Engine, EngineState};
use crate::mapping::KeyStrategy;
use crate::merge::{merge_row, MergePolicy, Merged, SideState};
use crate::model::{ColumnType, Row, RowHash, RowKey, Side, Value};
use crate::state::{Choice, HeldRow, RowBase};
use crate::table::{Expected, WriteOp};

impl Engine {
    pub(super) fn make_plan(&self, st: &EngineState, reads: &[SideRead; 2]) -> Work {
        let now = self.clock.now();
        let mut work = Work {
            guard_bypassed: st.allow_deletes,
            ..Default::default()
        };
        let held_keys = plan_held(reads, &mut work);
        // Rows without a key: give them back a key they lost, or a new one.
        let mut restored: [HashSet<RowKey>; 2] = Default::default();
        for side in Side::BOTH {
            self.plan_unkeyed(
                side,
                st,
                &reads[idx(side)],
                &mut restored[idx(side)],
                &mut work,
            );
        }
        let policy = MergePolicy {
            schema: &self.schema,
            resolver: &*self.resolver,
            update_vs_delete: self.mapping.update_vs_delete.clone(),
            deletes: self.mapping.deletes,
        };
        for k in self.dirty_keys(st, reads, &restored, &mut work) {
            let sits_out = st
                .stuck
                .get(&k)
                .is_some_and(|s| s.sits_out(stuck::read_hashes(st, reads, &k)));
            if !held_keys.contains(&k) && !sits_out {
                self.plan_row(st, reads, &restored, &policy, &k, now, &mut work);
            }
        }
        self.guard_deletes(st, &mut work);
        work
    }

    /// Rows that differ from their base on either side, and rows to look at again.
    fn dirty_keys(
        &self,
        st: &EngineState,
        reads: &[SideRead; 2],
        restored: &[HashSet<RowKey>; 2],
        work: &mut Work,
    ) -> BTreeSet<RowKey> {
        let mut dirty = st.keys_to_revisit();
        for side in Side::BOTH {
            let r = &reads[idx(side)];
            let mut changed = 0;
            for (k, seen) in &r.rows {
                if !agrees(st.bases.get(k), seen.row.as_ref()) {
                    dirty.insert(k.clone());
                    changed += 1;
                }
            }
            // Rows missing from a full read; skipped when every based row was seen.
            if r.full && !r.has_unidentified() && r.seen_with_base < st.live_bases {
                for (k, e) in &st.bases {
                    if !e.tombstone && !r.saw(k, Some(e)) && !restored[idx(side)].contains(k) {
                        dirty.insert(k.clone());
                        changed += 1;
                    }
                }
            }
            *work.plan.changes.get_mut(side) = changed;
        }
        dirty
    }

    /// Both sides' views of row `k`, from the reads (or its `base`, decoded, where a read does
    /// not tell).
    fn observe<'a>(
        &self,
        st: &'a EngineState,
        reads: &'a [SideRead; 2],
        restored: &[HashSet<RowKey>; 2],
        k: &RowKey,
        base: Option<&'a RowBase>,
        now: u64,
    ) -> [View<'a>; 2] {
        let entry = st.bases.get(k);
        let assumed = View {
            merge: SideState {
                row: base.and_then(|b| b.live_row()),
                at: base.map_or(0, |b| b.synced_at),
            },
            holds: None,
            observed: false,
        };
        Side::BOTH.map(|side| {
            if restored[idx(side)].contains(k) {
                return assumed;
            }
            let read = &reads[idx(side)];
            let Some((row, at)) = read.row_of(k, entry, base) else {
                // Not in the feed: unchanged since the base.
                return assumed;
            };
            let at = if row.is_none() && at == 0 { now } else { at };
            // A row retried with the content it had when first seen keeps the time it was first
            // seen (a re-read knows only when it read).
            let hash = row.map_or(RowHash::new(0), Row::hash);
            let at = match st.first_seen.get(k).and_then(|f| f[idx(side)]) {
                Some((h, first)) if h == hash => first.min(at),
                _ => at,
            };
            View {
                merge: SideState { row, at },
                holds: read.rows.get(k).and_then(|s| s.actual.as_ref()).map(Some),
                observed: true,
            }
        })
    }

    /// Merges row `k` and plans its writes.
    #[allow(clippy::too_many_arguments)]
    fn plan_row(
        &self,
        st: &EngineState,
        reads: &[SideRead; 2],
        restored: &[HashSet<RowKey>; 2],
        policy: &MergePolicy<'_>,
        k: &RowKey,
        now: u64,
        work: &mut Work,
    ) {
        let base = st.bases.get(k).map(BaseEntry::base);
        let base = base.as_ref();
        let base_row = base.and_then(|b| b.live_row());
        let mut views = self.observe(st, reads, restored, k, base, now);
        // The engine's own unsaved writes are never a person's edits.
        let merge_base = match st.intents.get(k) {
            Some(i) if intent::applies(i, base_row) => {
                let r = intent::recover(i, &mut views, base_row);
                if r.completed {
                    work.completed.insert(k.clone(), r.base.cloned());
                }
                r.base
            }
            Some(_) => {
                work.intents_obsolete.push(k.clone());
                base_row
            }
            None => base_row,
        };
        let pending_delete = st.queue.get(k);
        if let Some(p) = pending_delete {
            deletes::undo_if_rejected(p, &mut views, base);
        }
        let [sheet, db] = views.map(|v| v.merge);
        work.seen.insert(
            k.clone(),
            [sheet, db].map(|v| Some((v.row.map_or(RowHash::new(0), Row::hash), v.at))),
        );
        let mut merged = match st.choices.get(k) {
            Some(Choice::Side(s)) => {
                Merged::Write(if *s == Side::Sheet { sheet.row } else { db.row }.cloned())
            }
            Some(Choice::Row(r)) => Merged::Write(Some(r.clone())),
            None => merge_row(policy, k, merge_base, sheet, db, now),
        };
        tracing::debug!(
            key = %k,
            base = ?base_row,
            merge_base = ?merge_base,
            sheet = ?sheet.row,
            sheet_at = sheet.at,
            sheet_holds = ?views[0].holds(),
            db = ?db.row,
            db_at = db.at,
            db_holds = ?views[1].holds(),
            ?merged,
            "merged"
        );
        if let Merged::Agreed(t) = &merged {
            if views.iter().any(|v| v.holds() != t.as_ref()) {
                merged = Merged::Write(t.clone());
            }
        }
        let mut deletes = [false; 2];
        match merged {
            Merged::Agreed(t) => {
                let new_base =
                    t.as_ref() != base_row || (t.is_none() && base.is_some_and(|b| !b.tombstone));
                // Nothing to write, but a retry, a conflict or a write intent is over.
                let settles = st.pending.contains(k)
                    || st.conflicts.contains_key(k)
                    || st.intents.contains_key(k);
                if new_base || settles {
                    work.agreed.insert(k.clone(), t);
                }
            }
            Merged::Write(t) => deletes = plan_write(k, t, &views, merge_base, work),
            Merged::Conflict(c) => work.plan.conflicts.push(c),
        }
        if let Some(p) = pending_delete {
            deletes::review_pending(p, &views, deletes, work);
        }
    }

    fn plan_unkeyed(
        &self,
        side: Side,
        st: &EngineState,
        read: &SideRead,
        restored: &mut HashSet<RowKey>,
        work: &mut Work,
    ) {
        if read.unkeyed.is_empty() {
            return;
        }
        let key_cols = &self.schema.key;
        let same_content = |a: &Row, b: &Row| {
            a.0.iter()
                .zip(&b.0)
                .enumerate()
                .all(|(i, (x, y))| key_cols.contains(&i) || x == y)
        };
        // Rows whose key vanished from this full read: a cleared key cell, most likely.
        let vanished: Vec<(&RowKey, Row)> = if read.full {
            st.bases
                .iter()
                .filter(|(k, e)| !read.saw(k, Some(e)))
                .filter_map(|(k, e)| e.live_row().map(|r| (k, r)))
                .collect()
        } else {
            Vec::new()
        };
        let strategy = if side == Side::Sheet {
            self.key_strategy
        } else {
            KeyStrategy::Require
        };
        for u in &read.unkeyed {
            let mut matches = vanished
                .iter()
                .filter(|(k, b)| !restored.contains(*k) && same_content(b, &u.row));
            if let (Some((k, base)), None) = (matches.next(), matches.next()) {
                restored.insert((*k).clone());
                work.ops(side).push(PlannedOp::new(
                    Some((*k).clone()),
                    WriteOp::SetKey {
                        locator: u.locator.clone(),
                        row: base.clone(),
                    },
                ));
                continue;
            }
            match strategy {
                KeyStrategy::Uuid => {
                    let mut row = u.row.clone();
                    let col = key_cols[0];
                    let id = uuid::Uuid::now_v7();
                    row.0[col] = match self.schema.columns[col].ty {
                        ColumnType::Uuid => Value::Uuid(id),
                        _ => Value::Text(id.to_string()),
                    };
                    let key = row.key(&self.schema);
                    let set_key = WriteOp::SetKey {
                        locator: u.locator.clone(),
                        row: row.clone(),
                    };
                    work.ops(side).push(PlannedOp::new(key.clone(), set_key));
                    // The database gets the row once the Sheet row carries its key: the write
                    // step drops a database write whose row's Sheet write failed.
                    let insert = WriteOp::Upsert {
                        row: row.clone(),
                        expected: Expected::Absent,
                    };
                    work.plan.db.push(PlannedOp::new(key.clone(), insert));
                    if let Some(k) = key {
                        work.targets.insert(k, Some(row));
                    }
                }
                KeyStrategy::Database => work.plan.db.push(PlannedOp {
                    key: None,
                    op: WriteOp::Insert { row: u.row.clone() },
                    locator: Some(u.locator.clone()),
                }),
                KeyStrategy::Require | KeyStrategy::Auto => work.plan.held.push(HeldRow {
                    key: None,
                    side: Some(side),
                    locator: Some(u.locator.clone()),
                    reason: format!(
                        "the key column(s) {:?} are empty; type a key (this mapping does not generate keys)",
                        self.schema.key_names()
                    ),
                }),
            }
        }
    }
}

/// Rows a side could not read, and keys a side holds twice: held, never merged.
fn plan_held(reads: &[SideRead; 2], work: &mut Work) -> BTreeSet<RowKey> {
    let mut held_keys = BTreeSet::new();
    for side in Side::BOTH {
        let r = &reads[idx(side)];
        for inv in &r.invalid {
            if let Some(k) = &inv.key {
                held_keys.insert(k.clone());
            }
            work.plan.held.push(HeldRow {
                key: inv.key.clone(),
                side: Some(side),
                locator: inv.locator.clone(),
                reason: inv.reason.clone(),
            });
        }
        for (k, rows) in &r.duplicates {
            held_keys.insert(k.clone());
            work.plan.held.push(HeldRow {
                key: Some(k.clone()),
                side: Some(side),
                locator: None,
                reason: format!(
                    "key {k} appears in {} rows of the {side}: [{}]",
                    rows.len(),
                    rows.join("], [")
                ),
            });
        }
    }
    held_keys
}

/// Plans the writes that make both sides hold `t`, and the intent that records them (planned
/// against `base`, the base the row was merged against). Returns which sides get a delete.
fn plan_write(
    k: &RowKey,
    t: Option<Row>,
    views: &[View<'_>; 2],
    base_row: Option<&Row>,
    work: &mut Work,
) -> [bool; 2] {
    let mut deletes = [false; 2];
    let mut wrote = false;
    for side in Side::BOTH {
        let cur = views[idx(side)].holds();
        if cur == t.as_ref() {
            continue;
        }
        let expected = cur.map_or(Expected::Absent, |r| Expected::Row(r.clone()));
        let op = match &t {
            Some(row) => WriteOp::Upsert {
                row: row.clone(),
                expected,
            },
            None => {
                deletes[idx(side)] = true;
                WriteOp::Delete {
                    key: k.clone(),
                    expected,
                }
            }
        };
        work.ops(side).push(PlannedOp::new(Some(k.clone()), op));
        wrote = true;
    }
    if wrote {
        work.intents
            .insert(k.clone(), intent::record(k, &t, base_row, views));
    }
    work.targets.insert(k.clone(), t);
    deletes
}
