//! Turning what was read into the writes of a cycle: the pure part of a cycle.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::read::SideRead;
use super::{idx, Engine, EngineState, SideCounts};
use crate::mapping::KeyStrategy;
use crate::merge::{merge_row, MergePolicy, Merged, SideState};
use crate::model::{ColumnType, Row, RowHash, RowKey, Side, Value};
use crate::state::{Choice, ConflictRecord, HeldRow};
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
    /// Sides whose deletes the mass-delete guard stops: (side, deletes, rows).
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
}

impl Plan {
    fn ops(&mut self, side: Side) -> &mut Vec<PlannedOp> {
        match side {
            Side::Sheet => &mut self.sheet,
            Side::Db => &mut self.db,
        }
    }
}

impl Engine {
    pub(super) fn make_plan(&self, st: &EngineState, reads: &[SideRead; 2]) -> Plan {
        let now = self.clock.now();
        let mut plan = Plan {
            guard_bypassed: st.allow_deletes,
            ..Default::default()
        };
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

        // Rows that differ from their base on either side, and rows to retry.
        let mut dirty: BTreeSet<RowKey> = st
            .pending
            .iter()
            .chain(st.choices.keys())
            .chain(st.conflicts.keys())
            .cloned()
            .collect();
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

        let policy = MergePolicy {
            schema: &self.schema,
            resolver: &*self.resolver,
            update_vs_delete: self.mapping.update_vs_delete,
            deletes: self.mapping.deletes,
        };
        for k in dirty {
            if held_keys.contains(&k) {
                continue;
            }
            let entry = st.bases.get(&k);
            let base = entry.map(|e| &e.base);
            let base_row = base.and_then(|b| b.live_row());
            let view = |side: Side| -> SideState<'_> {
                let assumed = SideState {
                    row: base_row,
                    at: base.map_or(0, |b| b.synced_at),
                };
                if restored[idx(side)].contains(&k) {
                    return assumed;
                }
                match reads[idx(side)].row_of(&k, entry) {
                    Some((row, at)) => {
                        let at = if row.is_none() && at == 0 { now } else { at };
                        // A row retried with the content it had when first seen keeps the time
                        // it was first seen (a re-read knows only when it read).
                        let hash = row.map_or(RowHash(0), Row::hash);
                        let at = match st.first_seen.get(&k).and_then(|f| f[idx(side)]) {
                            Some((h, first)) if h == hash => first.min(at),
                            _ => at,
                        };
                        SideState { row, at }
                    }
                    // Not in the feed: unchanged since the base.
                    None => assumed,
                }
            };
            let (sheet, db) = (view(Side::Sheet), view(Side::Db));
            plan.seen.insert(
                k.clone(),
                [
                    Some((sheet.row.map_or(RowHash(0), Row::hash), sheet.at)),
                    Some((db.row.map_or(RowHash(0), Row::hash), db.at)),
                ],
            );
            // What each side really holds, when a concurrent write overwrote its change.
            let actual = |side: Side| {
                reads[idx(side)]
                    .rows
                    .get(&k)
                    .and_then(|s| s.actual.as_ref())
            };
            let mut merged = match st.choices.get(&k) {
                Some(Choice::Side(s)) => {
                    Merged::Write(if *s == Side::Sheet { sheet.row } else { db.row }.cloned())
                }
                Some(Choice::Row(r)) => Merged::Write(Some(r.clone())),
                None => merge_row(&policy, &k, base_row, sheet, db, now),
            };
            tracing::debug!(
                key = %k,
                base = ?base_row,
                sheet = ?sheet.row,
                sheet_at = sheet.at,
                sheet_actual = ?actual(Side::Sheet),
                db = ?db.row,
                db_at = db.at,
                ?merged,
                "merged"
            );
            if let Merged::Agreed(t) = &merged {
                if Side::BOTH
                    .iter()
                    .any(|s| actual(*s).is_some_and(|a| Some(a) != t.as_ref()))
                {
                    merged = Merged::Write(t.clone());
                }
            }
            match merged {
                Merged::Agreed(t) => {
                    if t.as_ref() != base_row || (t.is_none() && base.is_some_and(|b| !b.tombstone))
                    {
                        plan.agreed.insert(k, t);
                    } else if st.pending.contains(&k) || st.conflicts.contains_key(&k) {
                        // Nothing to write, but the retry or conflict is over.
                        plan.agreed.insert(k, t);
                    }
                }
                Merged::Write(t) => {
                    for (side, seen) in [(Side::Sheet, sheet.row), (Side::Db, db.row)] {
                        let cur = actual(side).or(seen);
                        if cur == t.as_ref() {
                            continue;
                        }
                        let expected = cur.map_or(Expected::Absent, |r| Expected::Row(r.clone()));
                        let op = match &t {
                            Some(row) => WriteOp::Upsert {
                                row: row.clone(),
                                expected,
                            },
                            None => WriteOp::Delete {
                                key: k.clone(),
                                expected,
                            },
                        };
                        plan.ops(side).push(PlannedOp {
                            key: Some(k.clone()),
                            op,
                            then_insert: false,
                            locator: None,
                        });
                    }
                    plan.targets.insert(k, t);
                }
                Merged::Conflict(c) => plan.conflicts.push(c),
            }
        }

        // The mass-delete guard, per side written.
        for side in Side::BOTH {
            let deletes: Vec<RowKey> = plan
                .ops(side)
                .iter()
                .filter(|p| matches!(p.op, WriteOp::Delete { .. }))
                .filter_map(|p| p.key.clone())
                .collect();
            let rows = st.live_bases;
            if deletes.is_empty()
                || st.allow_deletes
                || !self.mapping.guard.trips(deletes.len(), rows)
            {
                continue;
            }
            let withheld: HashSet<&RowKey> = deletes.iter().collect();
            plan.ops(side).retain(|p| {
                !(matches!(p.op, WriteOp::Delete { .. })
                    && p.key.as_ref().is_some_and(|k| withheld.contains(k)))
            });
            for k in &deletes {
                plan.targets.remove(k);
                plan.retry.insert(k.clone());
            }
            // The other side's writes for these rows wait too (a delete-vs-restore never
            // half-applies).
            plan.ops(side.other())
                .retain(|p| p.key.as_ref().is_none_or(|k| !withheld.contains(k)));
            tracing::warn!(%side, deletes = deletes.len(), rows, "mass-delete guard tripped");
            plan.guard.push((side, deletes.len(), rows));
        }
        plan
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
