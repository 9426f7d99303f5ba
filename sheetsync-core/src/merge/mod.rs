//! The three-way merge: a pure function of (base, Sheet row, database row) that says what the
//! row should become.
//!
//! A side *changed* a field iff its value differs from the base. One-sided changes propagate; a
//! field changed on both sides to the same value is not a conflict; only a field changed to
//! different values, or an update against a delete, goes to the [`ConflictResolver`]. Column
//! [`Direction`]s override: a side's edits to a column the other side owns are reverted.

use serde::{Deserialize, Serialize};

use crate::model::{Direction, Row, RowKey, Side, TableSchema, Value};
use crate::resolve::{
    field_conflict, ConflictResolver, DeleteConflict, DeleteResolution, Resolution, RowConflict,
    RowResolution,
};
use crate::state::{ConflictRecord, FieldDiff};

/// Which deletes may propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePropagation {
    /// A row deleted in the Sheet is deleted in the database. When `false` it is restored in
    /// the Sheet instead.
    #[serde(default = "yes")]
    pub sheet_to_db: bool,
    /// A row deleted in the database is deleted in the Sheet. When `false` it is restored in
    /// the database instead.
    #[serde(default = "yes")]
    pub db_to_sheet: bool,
}

fn yes() -> bool {
    true
}

impl Default for DeletePropagation {
    fn default() -> Self {
        DeletePropagation {
            sheet_to_db: true,
            db_to_sheet: true,
        }
    }
}

impl DeletePropagation {
    fn allows_delete_from(&self, deleted_on: Side) -> bool {
        match deleted_on {
            Side::Sheet => self.sheet_to_db,
            Side::Db => self.db_to_sheet,
        }
    }
}

/// The rules a merge follows.
#[derive(Clone)]
pub struct MergePolicy<'a> {
    /// The mapping's schema (column directions included).
    pub schema: &'a TableSchema,
    /// Decides true conflicts.
    pub resolver: &'a dyn ConflictResolver,
    /// Update-vs-delete when the resolver has no opinion. `KeepUpdate` loses nothing.
    pub update_vs_delete: DeleteResolution,
    /// Which deletes may propagate.
    pub deletes: DeletePropagation,
}

/// A side's row as observed this cycle (`None`: the side does not have it), and when it changed.
#[derive(Debug, Clone, Copy)]
pub struct SideState<'a> {
    /// The row, or `None` when absent.
    pub row: Option<&'a Row>,
    /// When the side's change happened (engine clock).
    pub at: u64,
}

/// What a row should become.
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// Both sides already agree on this (absent when `None`); it becomes the base.
    Agreed(Option<Row>),
    /// Both sides must become this (deleted when `None`); write it to each side that differs.
    Write(Option<Row>),
    /// A conflict kept for a person: hold the row, write nothing.
    Conflict(ConflictRecord),
}

/// Merges one row. `base` is the last row both sides agreed on (`None` for a new or deleted row).
pub fn merge_row(
    policy: &MergePolicy<'_>,
    key: &RowKey,
    base: Option<&Row>,
    sheet: SideState<'_>,
    db: SideState<'_>,
    now: u64,
) -> Merged {
    if sheet.row == db.row {
        return Merged::Agreed(sheet.row.cloned());
    }
    match (base, sheet.row, db.row) {
        (_, Some(s), Some(d)) => merge_fields(policy, key, base, (s, sheet.at), (d, db.at), now),
        (None, Some(s), None) => Merged::Write(Some(s.clone())),
        (None, None, Some(d)) => Merged::Write(Some(d.clone())),
        (Some(b), None, Some(d)) => {
            one_deleted(policy, key, b, Side::Sheet, sheet.at, d, db.at, now)
        }
        (Some(b), Some(s), None) => one_deleted(policy, key, b, Side::Db, db.at, s, sheet.at, now),
        (_, None, None) => unreachable!("equal sides returned above"),
    }
}

#[allow(clippy::too_many_arguments)]
fn one_deleted(
    policy: &MergePolicy<'_>,
    key: &RowKey,
    base: &Row,
    deleted_on: Side,
    deleted_at: u64,
    updated: &Row,
    updated_at: u64,
    now: u64,
) -> Merged {
    let allowed = policy.deletes.allows_delete_from(deleted_on);
    if updated == base {
        // A plain delete: propagate it, or restore the row where the mapping forbids it.
        return Merged::Write((!allowed).then(|| updated.clone()));
    }
    let conflict = DeleteConflict {
        key,
        deleted_on,
        base,
        updated,
        deleted_at,
        updated_at,
    };
    let mut decision = policy.resolver.resolve_delete(&conflict);
    if decision == DeleteResolution::Fallback {
        decision = policy.update_vs_delete.clone();
    }
    let reason = match decision {
        DeleteResolution::Delete if allowed => return Merged::Write(None),
        DeleteResolution::Manual => None,
        DeleteResolution::ManualBecause(why) => Some(why),
        // KeepUpdate, a Delete the mapping forbids, or a Fallback policy: keep the data.
        _ => return Merged::Write(Some(updated.clone())),
    };
    let (sheet, db) = match deleted_on {
        Side::Sheet => (None, Some(updated.clone())),
        Side::Db => (Some(updated.clone()), None),
    };
    Merged::Conflict(ConflictRecord {
        key: key.clone(),
        fields: Vec::new(),
        deleted_on: Some(deleted_on),
        sheet,
        db,
        at: now,
        reason,
    })
}

/// Each column's merged value where only one side changed it (or neither), and the columns
/// both sides changed differently (`None` in the merged row).
fn classify(
    schema: &TableSchema,
    base: Option<&Row>,
    s: &Row,
    d: &Row,
) -> (Vec<Option<Value>>, Vec<usize>) {
    let mut merged: Vec<Option<Value>> = vec![None; schema.columns.len()];
    let mut conflicts = Vec::new();
    for (i, col) in schema.columns.iter().enumerate() {
        let (sv, dv) = (&s.0[i], &d.0[i]);
        if sv == dv {
            merged[i] = Some(sv.clone());
            continue;
        }
        let bv = base.map(|b| &b.0[i]);
        let sheet_changed = col.direction != Direction::DbToSheet && bv != Some(sv);
        let db_changed = col.direction != Direction::SheetToDb && bv != Some(dv);
        merged[i] = match (sheet_changed, db_changed) {
            (true, false) => Some(sv.clone()),
            (false, true) => Some(dv.clone()),
            (true, true) => {
                conflicts.push(i);
                None
            }
            // Neither counts as changed: the column's owner holds the value.
            (false, false) => Some(match col.direction {
                Direction::SheetToDb => sv.clone(),
                _ => dv.clone(),
            }),
        };
    }
    (merged, conflicts)
}

/// A whole-row win: the winner's conflicting fields, and the fields only the loser changed,
/// except those the loser owns by direction.
fn take_row(schema: &TableSchema, side: Side, winner: &Row, merged: &mut [Option<Value>]) {
    for (i, col) in schema.columns.iter().enumerate() {
        let owned_by_loser = match side {
            Side::Sheet => col.direction == Direction::DbToSheet,
            Side::Db => col.direction == Direction::SheetToDb,
        };
        if !owned_by_loser || merged[i].is_none() {
            merged[i] = Some(winner.0[i].clone());
        }
    }
}

/// Asks the resolver about each conflicting field; the fields kept for a person go to
/// `manual`, with the resolver's reasons when it gave them.
fn resolve_fields(
    policy: &MergePolicy<'_>,
    row_conflict: &RowConflict<'_>,
    merged: &mut [Option<Value>],
    manual: &mut Vec<usize>,
    reasons: &mut Vec<String>,
) {
    let (schema, s, d) = (policy.schema, row_conflict.sheet, row_conflict.db);
    for &i in row_conflict.fields {
        match policy
            .resolver
            .resolve_field(&field_conflict(row_conflict, i))
        {
            Resolution::Sheet => merged[i] = Some(s.0[i].clone()),
            Resolution::Db => merged[i] = Some(d.0[i].clone()),
            Resolution::Value(v) => match v.coerce(schema.columns[i].ty) {
                Ok(v) => merged[i] = Some(v),
                Err(e) => {
                    manual.push(i);
                    reasons.push(format!(
                        "the resolver's value for column {:?}: {e}",
                        schema.columns[i].name
                    ));
                }
            },
            Resolution::ManualBecause(why) => {
                manual.push(i);
                reasons.push(why);
            }
            Resolution::Manual | Resolution::Fallback => manual.push(i),
        }
    }
}

fn merge_fields(
    policy: &MergePolicy<'_>,
    key: &RowKey,
    base: Option<&Row>,
    (s, sheet_at): (&Row, u64),
    (d, db_at): (&Row, u64),
    now: u64,
) -> Merged {
    let schema = policy.schema;
    let (mut merged, conflicts) = classify(schema, base, s, d);
    if conflicts.is_empty() {
        return Merged::Write(Some(Row(merged.into_iter().map(Option::unwrap).collect())));
    }
    let row_conflict = RowConflict {
        key,
        schema,
        base,
        sheet: s,
        db: d,
        fields: &conflicts,
        sheet_at,
        db_at,
    };
    let mut manual = Vec::new();
    // Why a resolver kept fields for a person, when it said.
    let mut reasons: Vec<String> = Vec::new();
    match policy.resolver.resolve_row(&row_conflict) {
        RowResolution::Take(side) => {
            let winner = if side == Side::Sheet { s } else { d };
            take_row(schema, side, winner, &mut merged);
        }
        RowResolution::Manual => manual.extend_from_slice(&conflicts),
        RowResolution::ManualBecause(why) => {
            manual.extend_from_slice(&conflicts);
            reasons.push(why);
        }
        RowResolution::PerField | RowResolution::Fallback => resolve_fields(
            policy,
            &row_conflict,
            &mut merged,
            &mut manual,
            &mut reasons,
        ),
    }
    if manual.is_empty() {
        return Merged::Write(Some(Row(merged.into_iter().map(Option::unwrap).collect())));
    }
    Merged::Conflict(ConflictRecord {
        key: key.clone(),
        fields: manual
            .iter()
            .map(|&i| FieldDiff {
                column: schema.columns[i].name.clone(),
                base: base.map(|b| b.0[i].clone()),
                sheet: s.0[i].clone(),
                db: d.0[i].clone(),
            })
            .collect(),
        deleted_on: None,
        sheet: Some(s.clone()),
        db: Some(d.clone()),
        at: now,
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
    })
}

#[cfg(test)]
mod tests;
