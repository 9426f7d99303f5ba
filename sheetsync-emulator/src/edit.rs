//! What a person does in the browser, as data: applied by the control surface
//! (`person`), stored by the schedule until its request comes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An edit made by a person in the browser. Rows and columns are 1-based like the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PersonEdit {
    /// Type or paste a block whose top-left is the range's top-left (USER_ENTERED parsing;
    /// `""` clears a cell, `null` leaves it). The grid grows if the block passes its end.
    SetCells {
        /// A1 range (its top-left cell anchors the block).
        range: String,
        /// Rows of values.
        values: Vec<Vec<Value>>,
    },
    /// Select a range and press Delete.
    Clear {
        /// A1 range.
        range: String,
    },
    /// Insert `count` rows before row `before`.
    InsertRows {
        /// Sheet title.
        sheet: String,
        /// 1-based row the new rows go before (`rowCount + 1` appends).
        before: u32,
        /// How many.
        count: u32,
    },
    /// Delete rows `start ..= start + count - 1`.
    DeleteRows {
        /// Sheet title.
        sheet: String,
        /// 1-based first row.
        start: u32,
        /// How many.
        count: u32,
    },
    /// Drag rows `start ..` (`count` of them) so they sit before row `before`.
    MoveRows {
        /// Sheet title.
        sheet: String,
        /// 1-based first row moved.
        start: u32,
        /// How many.
        count: u32,
        /// 1-based row (in the sheet before the move) the block is dropped before.
        before: u32,
    },
    /// Data → Sort range by a column.
    SortRange {
        /// A1 range to sort (all its rows move; header rows must be left out).
        range: String,
        /// 1-based sheet column to sort by.
        column: u32,
        /// Ascending (A→Z) or descending.
        ascending: bool,
    },
}
