//! Turning what was read into the writes of a cycle: the pure part of a cycle.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::read::SideRead;
use super::{deletes, idx, intent, stuck, Engine, EngineState, SideCounts};
use crate::mapping::KeyStrategy;
use crate::merge::{merge_row, MergePolicy, Merged, SideState};
use crate::model::{ColumnType, Row, RowHash, RowKey, Side, Value};
use crate::state::{Choice, ConflictRecord, HeldRow, PendingDelete, WriteIntent};
use crate::table::{Expected, WriteOp};

/// A write the engine intends to make.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOp {
    /// The row it concerns (`None` for a row whose key the database will generate).
    pub key: Option<RowKey>,
    /// The write.
    pub op: WriteOp,
    /// A key the engine generated: insert the row on the database once the Sheet has it.
    pub(crate) then_insert: bool,
    /// For a database-generated key: the Sheet row to write the key back to.
    pub(crate) locator: Option<String>,
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

/// What a cycle will do. [`Engine::plan`] returns it without doing it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Writes to the Sheet.
    pub sheet: Vec<PlannedOp>,
    /// Writes to the database.
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
    /// Rows both sides already agree on, with their new base.
    #[serde(skip)]
    pub(crate) agreed: BTreeMap<RowKey, Option<Row>>,
    /// Rows being written, with what both sides will hold.
    #[serde(skip)]
    pub(crate) targets: BTreeMap<RowKey, Option<Row>>,
    /// Rows to retry next cycle without a write now.
    #[serde(skip)]
    pub(crate) retry: BTreeSet<RowKey>,
    #[serde(skip)]
    pub(crate) guard_bypassed: bool,
    /// Each merged row's content hash and change time per side, kept for rows retried later so
    /// that re-reading an unchanged row does not make its change look newer.
    #[serde(skip)]
    pub(crate) seen: BTreeMap<RowKey, [Option<(RowHash, u64)>; 2]>,
    /// The write intents to persist before any side is written.
    #[serde(skip)]
    pub(crate) intents: BTreeMap<RowKey, WriteIntent>,
    /// Intents planned against a base that has changed since: forgotten.
    #[serde(skip)]
    pub(crate) intents_obsolete: Vec<RowKey>,
    /// Rows whose pending intent turned out complete, with its target: their base. Saved with
    /// the new intents, since a new intent for such a row is planned against that base.
    #[serde(skip)]
    pub(crate) completed: BTreeMap<RowKey, Option<Row>>,
    /// Deletes parked in the approval queue this cycle.
    #[serde(skip)]
    pub(crate) queued: Vec<PendingDelete>,
    /// Pending deletes that are no longer deletes, and why.
    #[serde(skip)]
    pub(crate) queue_dropped: Vec<(RowKey, String)>,
    /// Deletes an operator approved: they do not count against the guard's window.
    #[serde(skip)]
    pub(crate) approved_deletes: HashSet<RowKey>,
}

impl Plan {
    pub(super) fn ops(&mut self, side: Side) -> &mut Vec<PlannedOp> {
        match side {
            Side::Sheet => &mut self.sheet,
            Side::Db => &mut self.db,
        }
    }

    /// Takes `keys` out of this cycle: their deletes on `side` and every write of theirs on the
    /// other side (a delete-vs-restore never half-applies).
    pub(super) fn withhold(&mut self, side: Side, keys: &HashSet<RowKey>) {
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

/// One side's row as the merge sees it, and what the side really holds when that differs: a
/// person's edit that a concurrent write overwrote, the engine's own unsaved write, a rejected
/// delete.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    /// What the merge sees.
    pub merge: SideState<'a>,
    /// What the side holds, when it is not `merge.row` (`Some(None)`: absent).
    pub holds: Option<Option<&'a Row>>,
    /// The side's read showed the row (or its absence); otherwise it is assumed from the base.
    pub observed: bool,
}

impl<'a> View<'a> {
    /// What the side holds.
    pub fn holds(&self) -> Option<&'a Row> {
        self.holds.unwrap_or(self.merge.row)
    }
}

impl Engine {
    pub(super) fn make_plan(&self, st: &EngineState, reads: &[SideRead; 2]) -> Plan {
        let now = self.clock.now();
        let mut plan = Plan {
            guard_bypassed: st.allow_deletes,
            ..Default::default()
        };
        let held_keys = plan_held(reads, &mut plan);
        // Rows without a key: give them back a key they lost, or a new one.
        let mut restored: [HashSet<RowKey>; 2] = Default::default();
        for side in Side::BOTH {
            self.plan_unkeyed(
                side,
                st,
                &reads[idx(side)],
                &mut restored[idx(side)],
                &mut plan,
            );
        }
        let policy = MergePolicy {
            schema: &self.schema,
            resolver: &*self.resolver,
            update_vs_delete: self.mapping.update_vs_delete.clone(),
            deletes: self.mapping.deletes,
        };
        for k in self.dirty_keys(st, reads, &restored, &mut plan) {
            let sits_out = st
                .stuck
                .get(&k)
                .is_some_and(|s| s.sits_out(stuck::read_hashes(st, reads, &k)));
            if !held_keys.contains(&k) && !sits_out {
                self.plan_row(st, reads, &restored, &policy, &k, now, &mut plan);
            }
        }
        self.guard_deletes(st, &mut plan);
        plan
    }

    /// Rows that differ from their base on either side, and rows to look at again.
    fn dirty_keys(
        &self,
        st: &EngineState,
        reads: &[SideRead; 2],
        restored: &[HashSet<RowKey>; 2],
        plan: &mut Plan,
    ) -> BTreeSet<RowKey> {
        let mut dirty = st.keys_to_revisit();
        for side in Side::BOTH {
            let r = &reads[idx(side)];
            let mut changed = 0;
            for (k, seen) in &r.rows {
                let base = st.bases.get(k).and_then(|e| e.base.live_row());
                if seen.row.as_ref() != base {
                    dirty.insert(k.clone());
                    changed += 1;
                }
            }
            // Rows missing from a full read; skipped when every based row was seen.
            if r.full && !r.has_unidentified() && r.seen_with_base < st.live_bases {
                for (k, e) in &st.bases {
                    if !e.base.tombstone && !r.saw(k, Some(e)) && !restored[idx(side)].contains(k) {
                        dirty.insert(k.clone());
                        changed += 1;
                    }
                }
            }
            *plan.changes.get_mut(side) = changed;
        }
        dirty
    }

    /// Both sides' views of row `k`, from the reads (or the base where a read does not tell).
    fn observe<'a>(
        &self,
        st: &'a EngineState,
        reads: &'a [SideRead; 2],
        restored: &[HashSet<RowKey>; 2],
        k: &RowKey,
        now: u64,
    ) -> [View<'a>; 2] {
        let entry = st.bases.get(k);
        let base = entry.map(|e| &e.base);
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
            let Some((row, at)) = read.row_of(k, entry) else {
                // Not in the feed: unchanged since the base.
                return assumed;
            };
            let at = if row.is_none() && at == 0 { now } else { at };
            // A row retried with the content it had when first seen keeps the time it was first
            // seen (a re-read knows only when it read).
            let hash = row.map_or(RowHash(0), Row::hash);
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
        plan: &mut Plan,
    ) {
        let base = st.bases.get(k).map(|e| &e.base);
        let base_row = base.and_then(|b| b.live_row());
        let mut views = self.observe(st, reads, restored, k, now);
        // The engine's own unsaved writes are never a person's edits.
        let merge_base = match st.intents.get(k) {
            Some(i) if intent::applies(i, base_row) => {
                let r = intent::recover(i, &mut views, base_row);
                if r.completed {
                    plan.completed.insert(k.clone(), r.base.cloned());
                }
                r.base
            }
            Some(_) => {
                plan.intents_obsolete.push(k.clone());
                base_row
            }
            None => base_row,
        };
        let pending_delete = st.queue.get(k);
        if let Some(p) = pending_delete {
            deletes::undo_if_rejected(p, &mut views, base);
        }
        let [sheet, db] = views.map(|v| v.merge);
        plan.seen.insert(
            k.clone(),
            [sheet, db].map(|v| Some((v.row.map_or(RowHash(0), Row::hash), v.at))),
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
                    plan.agreed.insert(k.clone(), t);
                }
            }
            Merged::Write(t) => deletes = plan_write(k, t, &views, merge_base, plan),
            Merged::Conflict(c) => plan.conflicts.push(c),
        }
        if let Some(p) = pending_delete {
            deletes::review_pending(p, &views, deletes, plan);
        }
    }

    fn plan_unkeyed(
        &self,
        side: Side,
        st: &EngineState,
        read: &SideRead,
        restored: &mut HashSet<RowKey>,
        plan: &mut Plan,
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
        let vanished: Vec<(&RowKey, &Row)> = if read.full {
            st.bases
                .iter()
                .filter(|(k, e)| !read.saw(k, Some(e)))
                .filter_map(|(k, e)| e.base.live_row().map(|r| (k, r)))
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
                plan.ops(side).push(PlannedOp {
                    key: Some((*k).clone()),
                    op: WriteOp::SetKey {
                        locator: u.locator.clone(),
                        row: (*base).clone(),
                    },
                    then_insert: false,
                    locator: None,
                });
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
                    plan.ops(side).push(PlannedOp {
                        key: row.key(&self.schema),
                        op: WriteOp::SetKey {
                            locator: u.locator.clone(),
                            row,
                        },
                        then_insert: true,
                        locator: None,
                    });
                }
                KeyStrategy::Database => plan.db.push(PlannedOp {
                    key: None,
                    op: WriteOp::Insert { row: u.row.clone() },
                    then_insert: false,
                    locator: Some(u.locator.clone()),
                }),
                KeyStrategy::Require | KeyStrategy::Auto => plan.held.push(HeldRow {
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
fn plan_held(reads: &[SideRead; 2], plan: &mut Plan) -> BTreeSet<RowKey> {
    let mut held_keys = BTreeSet::new();
    for side in Side::BOTH {
        let r = &reads[idx(side)];
        for inv in &r.invalid {
            if let Some(k) = &inv.key {
                held_keys.insert(k.clone());
            }
            plan.held.push(HeldRow {
                key: inv.key.clone(),
                side: Some(side),
                locator: inv.locator.clone(),
                reason: inv.reason.clone(),
            });
        }
        for (k, rows) in &r.duplicates {
            held_keys.insert(k.clone());
            plan.held.push(HeldRow {
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
    plan: &mut Plan,
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
        plan.ops(side).push(PlannedOp {
            key: Some(k.clone()),
            op,
            then_insert: false,
            locator: None,
        });
        wrote = true;
    }
    if wrote {
        plan.intents
            .insert(k.clone(), intent::record(k, &t, base_row, views));
    }
    plan.targets.insert(k.clone(), t);
    deletes
}
