//! What a side reports: observed rows, deletes, rows it could not read, and cursors.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::row::{Row, RowKey};

/// One of the two sides of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The Google Sheet tab (or whatever plays its part).
    Sheet,
    /// The database table (or whatever plays its part).
    Db,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Sheet => Side::Db,
            Side::Db => Side::Sheet,
        }
    }

    /// Both sides, Sheet first.
    pub const BOTH: [Side; 2] = [Side::Sheet, Side::Db];
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Sheet => "sheet",
            Side::Db => "db",
        })
    }
}

/// A row a side holds but that cannot be synced as it is: a cell that does not convert to its
/// column's type, a key typed twice. It is held (never treated as deleted) until fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    /// The row's key when it could be read; `None` when the key itself is unreadable.
    pub key: Option<RowKey>,
    /// Where the row is on its side, for people (`"Sheet1!A7:F7"`, `"row 7"`).
    pub locator: Option<String>,
    /// Exactly what is wrong, naming column and value.
    pub reason: String,
}

/// A row whose key is empty: a new Sheet row that the engine must give a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnkeyedRow {
    /// Where the row is, in a form the same side's sink accepts in [`WriteOp::SetKey`](crate::WriteOp::SetKey).
    pub locator: String,
    /// The row's values; the key values are `Null`.
    pub row: Row,
}

/// A change (or scanned row) reported by a side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The row as it is now on that side.
    Upsert(Row),
    /// The row with this key no longer exists on that side.
    Delete(RowKey),
    /// A row that cannot be synced as it is.
    Invalid(InvalidRow),
    /// A row without a key.
    Unkeyed(UnkeyedRow),
    /// A person's edit (`row`) that a write of the engine running at the same time overwrote:
    /// the side now holds `actual`. The engine merges `row` as this side's change, as if the
    /// write had not happened, and writes the result wherever it differs from `actual`. Sides
    /// without a transaction or conditional write (a Sheet) report it from their change feed.
    Overwritten {
        /// The row as the person left it.
        row: Row,
        /// The row as the side holds it now.
        actual: Row,
    },
}

/// A [`Change`] and, where the side knows it, when it happened (a changelog timestamp, a webhook
/// event time). Last-write-wins uses it; without it the engine's own clock stamps the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// What was observed.
    pub change: Change,
    /// When the side says it happened.
    pub at: Option<DateTime<Utc>>,
}

impl Observation {
    /// An observation with no source timestamp.
    pub fn new(change: Change) -> Self {
        Observation { change, at: None }
    }

    /// An upserted row with no source timestamp.
    pub fn row(row: Row) -> Self {
        Observation::new(Change::Upsert(row))
    }
}

/// An opaque position in a side's change feed, persisted by the engine between cycles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A page of changes since a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The changes, oldest first. Several may name the same key; the last one counts.
    pub changes: Vec<Observation>,
    /// The position after these changes.
    pub cursor: Cursor,
    /// True when more changes are ready beyond `cursor`.
    pub more: bool,
}
