//! Conflict resolvers: what to do when both sides changed the same field differently, or one
//! side updated a row the other deleted.
//!
//! The three-way merge ([`crate::merge`]) sends only *true* conflicts here: a field changed on one
//! side only, or changed on both to the same value, never reaches a resolver. A resolver is a
//! small trait of pure methods; strategies compose into a fallback [`Chain`], and whatever no
//! strategy decides is kept for a person ([`Resolution::Manual`]), never guessed.

#[cfg(feature = "rules")]
mod rules;
mod spec;
mod strategies;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Column, Row, RowKey, Side, TableSchema, Value};

#[cfg(feature = "rules")]
#[cfg_attr(docsrs, doc(cfg(feature = "rules")))]
pub use rules::Rule;
pub use spec::{RuleScope, RuleSpec};
pub use strategies::{ColumnOwner, FnResolver, LastWriteWins, Manual, SideWins};

/// Both sides changed one field to different values.
#[derive(Debug, Clone, Copy)]
pub struct FieldConflict<'a> {
    /// The row.
    pub key: &'a RowKey,
    /// The column.
    pub column: &'a Column,
    /// The column's index in the schema.
    pub index: usize,
    /// The base value (`None` when both sides inserted the row).
    pub base: Option<&'a Value>,
    /// The Sheet's value.
    pub sheet: &'a Value,
    /// The database's value.
    pub db: &'a Value,
    /// When the Sheet's change happened (engine clock; see [`crate::Clock`]).
    pub sheet_at: u64,
    /// When the database's change happened.
    pub db_at: u64,
    /// The Sheet's whole row.
    pub sheet_row: &'a Row,
    /// The database's whole row.
    pub db_row: &'a Row,
    /// The whole base row (`None` when both sides inserted the row).
    pub base_row: Option<&'a Row>,
}

/// Both sides changed a row; `fields` are the columns in conflict.
#[derive(Debug, Clone, Copy)]
pub struct RowConflict<'a> {
    /// The row.
    pub key: &'a RowKey,
    /// The mapping's schema.
    pub schema: &'a TableSchema,
    /// The base row (`None` when both sides inserted it).
    pub base: Option<&'a Row>,
    /// The Sheet's row.
    pub sheet: &'a Row,
    /// The database's row.
    pub db: &'a Row,
    /// Indexes of the columns in conflict.
    pub fields: &'a [usize],
    /// When the Sheet's change happened.
    pub sheet_at: u64,
    /// When the database's change happened.
    pub db_at: u64,
}

/// One side deleted a row that the other updated.
#[derive(Debug, Clone, Copy)]
pub struct DeleteConflict<'a> {
    /// The row.
    pub key: &'a RowKey,
    /// The side that deleted it.
    pub deleted_on: Side,
    /// The base row.
    pub base: &'a Row,
    /// The updated row on the other side.
    pub updated: &'a Row,
    /// When the delete happened.
    pub deleted_at: u64,
    /// When the update happened.
    pub updated_at: u64,
}

/// A decision for one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Take the Sheet's value.
    Sheet,
    /// Take the database's value.
    Db,
    /// Take this value (it must have the column's type).
    Value(Value),
    /// Keep the conflict for a person; hold the row.
    Manual,
    /// Keep the conflict for a person, telling them why (say, a rule that failed).
    ManualBecause(String),
    /// No opinion: ask the next resolver in the chain.
    Fallback,
}

impl Resolution {
    /// Take the value of `side`.
    pub fn take(side: Side) -> Self {
        match side {
            Side::Sheet => Resolution::Sheet,
            Side::Db => Resolution::Db,
        }
    }
}

/// A decision for a whole row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowResolution {
    /// Take the whole row from this side.
    Take(Side),
    /// Decide field by field.
    PerField,
    /// Keep the conflict for a person.
    Manual,
    /// Keep the conflict for a person, telling them why.
    ManualBecause(String),
    /// No opinion.
    Fallback,
}

/// A decision for update-vs-delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteResolution {
    /// Keep the updated row and restore it on the side that deleted it (loses nothing).
    KeepUpdate,
    /// Delete the row on the side that updated it.
    Delete,
    /// Keep the conflict for a person.
    Manual,
    /// Keep the conflict for a person, telling them why. A resolver's answer only: not a
    /// setting of `update_vs_delete`.
    #[serde(skip)]
    ManualBecause(String),
    /// No opinion.
    Fallback,
}

/// Decides true conflicts. Implement `resolve_field` at least; the defaults of the other methods
/// defer to the next resolver of a [`Chain`] and, at its end, to the mapping's update-vs-delete
/// policy.
///
/// Methods must be pure and deterministic: the same conflict always gets the same answer.
pub trait ConflictResolver: Send + Sync {
    /// Decides a whole row before its fields are looked at.
    fn resolve_row(&self, conflict: &RowConflict<'_>) -> RowResolution {
        let _ = conflict;
        RowResolution::Fallback
    }

    /// Decides one field changed on both sides to different values.
    fn resolve_field(&self, conflict: &FieldConflict<'_>) -> Resolution;

    /// Decides an update on one side against a delete on the other.
    fn resolve_delete(&self, conflict: &DeleteConflict<'_>) -> DeleteResolution {
        let _ = conflict;
        DeleteResolution::Fallback
    }
}

impl<R: ConflictResolver + ?Sized> ConflictResolver for Arc<R> {
    fn resolve_row(&self, c: &RowConflict<'_>) -> RowResolution {
        (**self).resolve_row(c)
    }
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        (**self).resolve_field(c)
    }
    fn resolve_delete(&self, c: &DeleteConflict<'_>) -> DeleteResolution {
        (**self).resolve_delete(c)
    }
}

impl<R: ConflictResolver + ?Sized> ConflictResolver for Box<R> {
    fn resolve_row(&self, c: &RowConflict<'_>) -> RowResolution {
        (**self).resolve_row(c)
    }
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        (**self).resolve_field(c)
    }
    fn resolve_delete(&self, c: &DeleteConflict<'_>) -> DeleteResolution {
        (**self).resolve_delete(c)
    }
}

/// The field conflict of column `i` within a row conflict.
pub(crate) fn field_conflict<'a>(c: &RowConflict<'a>, i: usize) -> FieldConflict<'a> {
    FieldConflict {
        key: c.key,
        column: &c.schema.columns[i],
        index: i,
        base: c.base.map(|b| &b.0[i]),
        sheet: &c.sheet.0[i],
        db: &c.db.0[i],
        sheet_at: c.sheet_at,
        db_at: c.db_at,
        sheet_row: c.sheet,
        db_row: c.db,
        base_row: c.base,
    }
}

/// Asks each resolver in turn; the first answer that is not `Fallback` counts.
#[derive(Clone, Default)]
pub struct Chain(Vec<Arc<dyn ConflictResolver>>);

impl Chain {
    /// An empty chain (it decides nothing: every conflict is kept for a person).
    pub fn new() -> Self {
        Chain(Vec::new())
    }

    /// Appends a resolver.
    pub fn then(mut self, r: impl ConflictResolver + 'static) -> Self {
        self.0.push(Arc::new(r));
        self
    }

    /// Appends a shared resolver.
    pub fn then_arc(mut self, r: Arc<dyn ConflictResolver>) -> Self {
        self.0.push(r);
        self
    }
}

impl ConflictResolver for Chain {
    /// The first row-level answer, unless a resolver earlier in the chain decides some of the
    /// conflicting fields: then the row goes field by field, so that (say) a column owner
    /// before `manual` or row-level last-write-wins still decides its columns.
    fn resolve_row(&self, c: &RowConflict<'_>) -> RowResolution {
        for r in &self.0 {
            match r.resolve_row(c) {
                RowResolution::Fallback => {
                    let decides_a_field = c
                        .fields
                        .iter()
                        .any(|&i| r.resolve_field(&field_conflict(c, i)) != Resolution::Fallback);
                    if decides_a_field {
                        return RowResolution::PerField;
                    }
                }
                other => return other,
            }
        }
        RowResolution::Fallback
    }
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        self.0
            .iter()
            .map(|r| r.resolve_field(c))
            .find(|r| *r != Resolution::Fallback)
            .unwrap_or(Resolution::Fallback)
    }
    fn resolve_delete(&self, c: &DeleteConflict<'_>) -> DeleteResolution {
        self.0
            .iter()
            .map(|r| r.resolve_delete(c))
            .find(|r| *r != DeleteResolution::Fallback)
            .unwrap_or(DeleteResolution::Fallback)
    }
}

/// Granularity of last-write-wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// The later side's whole row wins, including fields only the other side changed.
    Row,
    /// Fields changed on one side merge; only conflicting fields go to the later side.
    #[default]
    Field,
}

/// A resolver named in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum ResolverSpec {
    /// [`LastWriteWins`].
    LastWriteWins {
        /// Row or field granularity.
        #[serde(default)]
        granularity: Granularity,
        /// The side that wins when both changes have the same time.
        #[serde(default = "default_tie")]
        tie: Side,
    },
    /// [`SideWins`] for the Sheet.
    SheetWins,
    /// [`SideWins`] for the database.
    DbWins,
    /// [`ColumnOwner`].
    ColumnOwner {
        /// Column name to owning side.
        owners: std::collections::BTreeMap<String, Side>,
    },
    /// [`Manual`].
    Manual,
    /// A [`RuleSpec`]: an expression in the Common Expression Language (feature `rules`).
    Rule(RuleSpec),
}

fn default_tie() -> Side {
    Side::Db
}

impl ResolverSpec {
    /// Builds the resolver, checking column names against the schema.
    pub fn build(&self, schema: &TableSchema) -> Result<Arc<dyn ConflictResolver>> {
        Ok(match self {
            ResolverSpec::LastWriteWins { granularity, tie } => Arc::new(LastWriteWins {
                granularity: *granularity,
                tie: *tie,
            }),
            ResolverSpec::SheetWins => Arc::new(SideWins(Side::Sheet)),
            ResolverSpec::DbWins => Arc::new(SideWins(Side::Db)),
            ResolverSpec::ColumnOwner { owners } => {
                for name in owners.keys() {
                    if schema.index_of(name).is_none() {
                        return Err(Error::new(
                            ErrorKind::ConfigInvalid,
                            format!(
                                "column_owner names column {name:?}, which mapping {:?} does not have",
                                schema.name
                            ),
                        ));
                    }
                }
                Arc::new(ColumnOwner::new(
                    owners.iter().map(|(k, v)| (k.clone(), *v)),
                ))
            }
            ResolverSpec::Manual => Arc::new(Manual),
            ResolverSpec::Rule(spec) => spec.build(schema)?,
        })
    }

    /// Builds a [`Chain`] of specs, in order.
    pub fn build_chain(specs: &[ResolverSpec], schema: &TableSchema) -> Result<Chain> {
        specs
            .iter()
            .try_fold(Chain::new(), |c, s| Ok(c.then_arc(s.build(schema)?)))
    }
}
