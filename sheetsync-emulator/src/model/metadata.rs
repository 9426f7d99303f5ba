//! Developer metadata (spec §4.9, §4.10).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a piece of developer metadata is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaLocation {
    /// The whole spreadsheet.
    Spreadsheet,
    /// A sheet.
    Sheet(i32),
    /// A single row (`rows == true`) or column of a sheet; moves with it.
    Dimension {
        /// Sheet id.
        sheet_id: i32,
        /// Row (true) or column (false).
        rows: bool,
        /// Zero-based index.
        index: u32,
    },
}

impl MetaLocation {
    /// The index if this is a row/column location on `sheet_id` of the given dimension.
    pub fn dim_index(&self, sid: i32, want_rows: bool) -> Option<u32> {
        match self {
            MetaLocation::Dimension {
                sheet_id,
                rows,
                index,
            } if *sheet_id == sid && *rows == want_rows => Some(*index),
            _ => None,
        }
    }

    /// Mutable variant of [`MetaLocation::dim_index`].
    pub fn dim_index_mut(&mut self, sid: i32, want_rows: bool) -> Option<&mut u32> {
        match self {
            MetaLocation::Dimension {
                sheet_id,
                rows,
                index,
            } if *sheet_id == sid && *rows == want_rows => Some(index),
            _ => None,
        }
    }

    /// `locationType`.
    pub fn location_type(&self) -> &'static str {
        match self {
            MetaLocation::Spreadsheet => "SPREADSHEET",
            MetaLocation::Sheet(_) => "SHEET",
            MetaLocation::Dimension { rows: true, .. } => "ROW",
            MetaLocation::Dimension { rows: false, .. } => "COLUMN",
        }
    }

    /// `DeveloperMetadataLocation` JSON.
    pub fn to_json(&self) -> Value {
        match self {
            MetaLocation::Spreadsheet => {
                json!({"locationType": "SPREADSHEET", "spreadsheet": true})
            }
            MetaLocation::Sheet(id) => json!({"locationType": "SHEET", "sheetId": id}),
            MetaLocation::Dimension {
                sheet_id,
                rows,
                index,
            } => json!({
                "locationType": self.location_type(),
                "dimensionRange": {
                    "sheetId": sheet_id,
                    "dimension": if *rows { "ROWS" } else { "COLUMNS" },
                    "startIndex": index,
                    "endIndex": index + 1,
                }
            }),
        }
    }
}

/// One `DeveloperMetadata` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevMeta {
    /// `metadataId` (positive).
    pub id: i32,
    /// `metadataKey`.
    pub key: String,
    /// `metadataValue`.
    pub value: Option<String>,
    /// `visibility` (`DOCUMENT` | `PROJECT`).
    pub visibility: String,
    /// `location`.
    pub location: MetaLocation,
}

impl DevMeta {
    /// `DeveloperMetadata` JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "metadataId": self.id,
            "metadataKey": self.key,
        });
        if let Some(val) = &self.value {
            v["metadataValue"] = json!(val);
        }
        v["location"] = self.location.to_json();
        v["visibility"] = json!(self.visibility);
        v
    }
}
