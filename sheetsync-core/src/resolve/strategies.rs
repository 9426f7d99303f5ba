//! The strategies sheetsync ships.

use std::collections::HashMap;

use super::{
    ConflictResolver, DeleteConflict, DeleteResolution, FieldConflict, Granularity, Resolution,
    RowConflict, RowResolution,
};
use crate::model::Side;

/// One side always wins: its value in field conflicts, and its choice in update-vs-delete (its
/// delete deletes, its update is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideWins(pub Side);

impl ConflictResolver for SideWins {
    fn resolve_row(&self, _: &RowConflict<'_>) -> RowResolution {
        RowResolution::PerField
    }

    fn resolve_field(&self, _: &FieldConflict<'_>) -> Resolution {
        Resolution::take(self.0)
    }

    fn resolve_delete(&self, c: &DeleteConflict<'_>) -> DeleteResolution {
        if c.deleted_on == self.0 {
            DeleteResolution::Delete
        } else {
            DeleteResolution::KeepUpdate
        }
    }
}

/// The later change wins, by source timestamps where the sides give them and the engine's
/// hybrid logical clock otherwise; equal times go to `tie`. Update-vs-delete is left to the
/// mapping's delete policy, which by default keeps the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastWriteWins {
    /// Row or field granularity.
    pub granularity: Granularity,
    /// The side that wins on equal times.
    pub tie: Side,
}

impl LastWriteWins {
    fn later(&self, sheet_at: u64, db_at: u64) -> Side {
        match sheet_at.cmp(&db_at) {
            std::cmp::Ordering::Greater => Side::Sheet,
            std::cmp::Ordering::Less => Side::Db,
            std::cmp::Ordering::Equal => self.tie,
        }
    }
}

impl ConflictResolver for LastWriteWins {
    fn resolve_row(&self, c: &RowConflict<'_>) -> RowResolution {
        match self.granularity {
            Granularity::Row => RowResolution::Take(self.later(c.sheet_at, c.db_at)),
            Granularity::Field => RowResolution::PerField,
        }
    }

    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        Resolution::take(self.later(c.sheet_at, c.db_at))
    }
}

/// Each listed column belongs to one side, which wins its conflicts; other columns fall back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnOwner {
    owners: HashMap<String, Side>,
}

impl ColumnOwner {
    /// Owners by column name.
    pub fn new(owners: impl IntoIterator<Item = (String, Side)>) -> Self {
        ColumnOwner {
            owners: owners.into_iter().collect(),
        }
    }
}

impl ConflictResolver for ColumnOwner {
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        self.owners
            .get(&c.column.name)
            .map_or(Resolution::Fallback, |s| Resolution::take(*s))
    }
}

/// Keeps every conflict for a person: the row is held, both values are recorded, and the host
/// resolves it later through [`crate::Engine::resolve_conflict`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Manual;

impl ConflictResolver for Manual {
    fn resolve_row(&self, _: &RowConflict<'_>) -> RowResolution {
        RowResolution::Manual
    }

    fn resolve_field(&self, _: &FieldConflict<'_>) -> Resolution {
        Resolution::Manual
    }

    fn resolve_delete(&self, _: &DeleteConflict<'_>) -> DeleteResolution {
        DeleteResolution::Manual
    }
}

/// A resolver from a closure over field conflicts.
///
/// ```
/// use sheetsync_core::{FnResolver, Resolution, Value};
/// // Keep the larger number; let the next resolver decide anything else.
/// let max = FnResolver::new(|c| match (c.sheet, c.db) {
///     (Value::Int(s), Value::Int(d)) => if s >= d { Resolution::Sheet } else { Resolution::Db },
///     _ => Resolution::Fallback,
/// });
/// # let _ = max;
/// ```
pub struct FnResolver<F>(F);

impl<F> FnResolver<F>
where
    F: Fn(&FieldConflict<'_>) -> Resolution + Send + Sync,
{
    /// Wraps the closure.
    pub fn new(f: F) -> Self {
        FnResolver(f)
    }
}

impl<F> ConflictResolver for FnResolver<F>
where
    F: Fn(&FieldConflict<'_>) -> Resolution + Send + Sync,
{
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        (self.0)(c)
    }
}
