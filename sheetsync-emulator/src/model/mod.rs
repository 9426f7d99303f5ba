//! The data model: spreadsheets, sheets, a sparse grid of cells and developer metadata.

pub mod cell;
pub mod grid;
pub mod metadata;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use cell::{Cell, CellValue, FormatKind, NumberFormat};
pub use grid::Grid;
pub use metadata::{DevMeta, MetaLocation};

/// Google's per-spreadsheet cell cap (all sheets together).
pub const DEFAULT_CELL_LIMIT: u64 = 10_000_000;

/// `SheetProperties` the emulator models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetProps {
    /// `sheetId`.
    pub sheet_id: i32,
    /// `title`.
    pub title: String,
    /// `gridProperties.rowCount`.
    pub row_count: u32,
    /// `gridProperties.columnCount`.
    pub column_count: u32,
    /// `gridProperties.frozenRowCount`.
    #[serde(default)]
    pub frozen_row_count: u32,
    /// `gridProperties.frozenColumnCount`.
    #[serde(default)]
    pub frozen_column_count: u32,
    /// `hidden`.
    #[serde(default)]
    pub hidden: bool,
    /// `tabColorStyle`/`tabColor` etc., kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tab_color: Option<Value>,
}

/// One sheet (tab).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sheet {
    /// Properties.
    pub props: SheetProps,
    /// Cells.
    pub grid: Grid,
}

impl Sheet {
    /// A new empty sheet.
    pub fn new(sheet_id: i32, title: &str, rows: u32, cols: u32) -> Self {
        Sheet {
            props: SheetProps {
                sheet_id,
                title: title.to_string(),
                row_count: rows,
                column_count: cols,
                frozen_row_count: 0,
                frozen_column_count: 0,
                hidden: false,
                tab_color: None,
            },
            grid: Grid::default(),
        }
    }

    /// Number of cells of the grid.
    pub fn cells(&self) -> u64 {
        u64::from(self.props.row_count) * u64::from(self.props.column_count)
    }

    /// `SheetProperties` JSON.
    pub fn properties_json(&self, index: usize) -> Value {
        let p = &self.props;
        let mut grid = json!({"rowCount": p.row_count, "columnCount": p.column_count});
        if p.frozen_row_count > 0 {
            grid["frozenRowCount"] = json!(p.frozen_row_count);
        }
        if p.frozen_column_count > 0 {
            grid["frozenColumnCount"] = json!(p.frozen_column_count);
        }
        let mut v = json!({
            "sheetId": p.sheet_id,
            "title": p.title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": grid,
        });
        if p.hidden {
            v["hidden"] = json!(true);
        }
        if let Some(c) = &p.tab_color {
            v["tabColor"] = c.clone();
        }
        v
    }
}

/// A spreadsheet, including its Drive file record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spreadsheet {
    /// `spreadsheetId` (and Drive file id).
    pub id: String,
    /// `properties.title` (and Drive file name).
    pub title: String,
    /// `properties.locale`.
    pub locale: String,
    /// `properties.timeZone`.
    pub time_zone: String,
    /// `properties.autoRecalc`.
    pub auto_recalc: String,
    /// Sheets in index order.
    pub sheets: Vec<Sheet>,
    /// Developer metadata at every location.
    pub metadata: Vec<DevMeta>,
    /// Protected ranges (`ProtectedRange` JSON, `protectedRangeId` set), in creation order.
    /// Stored and returned; the emulator's callers all own the file, so none restricts them.
    #[serde(default)]
    pub protected: Vec<Value>,
    /// Drive `version` (bumped on every change).
    pub version: u64,
    /// Drive `createdTime`, unix ms.
    pub created_ms: u64,
    /// Drive `modifiedTime`, unix ms.
    pub modified_ms: u64,
}

/// The sheetId a stored protected range covers.
pub fn protected_sheet(range: &Value) -> i32 {
    range
        .get("range")
        .and_then(|r| r.get("sheetId"))
        .and_then(Value::as_i64)
        .unwrap_or(0) as i32
}

impl Spreadsheet {
    /// The protected ranges of one sheet, as `spreadsheets.get` returns them.
    pub fn protected_ranges(&self, sheet_id: i32) -> Vec<Value> {
        self.protected
            .iter()
            .filter(|p| protected_sheet(p) == sheet_id)
            .cloned()
            .collect()
    }

    /// A new spreadsheet with one empty `Sheet1` (1000×26), as Google creates it.
    pub fn new(id: String, title: String, now_ms: u64) -> Self {
        Spreadsheet {
            id,
            title,
            locale: "en_US".into(),
            time_zone: "Etc/GMT".into(),
            auto_recalc: "ON_CHANGE".into(),
            sheets: vec![Sheet::new(0, "Sheet1", 1000, 26)],
            metadata: Vec::new(),
            protected: Vec::new(),
            version: 1,
            created_ms: now_ms,
            modified_ms: now_ms,
        }
    }

    /// Index of a sheet by id.
    pub fn sheet_index_by_id(&self, id: i32) -> Option<usize> {
        self.sheets.iter().position(|s| s.props.sheet_id == id)
    }

    /// Index of a sheet by title: exact match first, then case-insensitive.
    pub fn sheet_index_by_title(&self, title: &str) -> Option<usize> {
        self.sheets
            .iter()
            .position(|s| s.props.title == title)
            .or_else(|| {
                let l = title.to_lowercase();
                self.sheets
                    .iter()
                    .position(|s| s.props.title.to_lowercase() == l)
            })
    }

    /// Index of the first visible sheet.
    pub fn first_visible(&self) -> Option<usize> {
        self.sheets
            .iter()
            .position(|s| !s.props.hidden)
            .or(if self.sheets.is_empty() {
                None
            } else {
                Some(0)
            })
    }

    /// Total grid cells of all sheets.
    pub fn total_cells(&self) -> u64 {
        self.sheets.iter().map(Sheet::cells).sum()
    }

    /// `spreadsheetUrl`.
    pub fn url(&self) -> String {
        format!("https://docs.google.com/spreadsheets/d/{}/edit", self.id)
    }

    /// Records a change (Drive `version` and `modifiedTime`).
    pub fn touch(&mut self, now_ms: u64) {
        self.version += 1;
        self.modified_ms = now_ms.max(self.modified_ms);
    }

    /// Shifts ROW (or COLUMN) metadata of a sheet for an insertion of `n` at `at`.
    pub fn shift_meta_insert(&mut self, sheet_id: i32, rows: bool, at: u32, n: u32) {
        for m in &mut self.metadata {
            if let Some(idx) = m.location.dim_index_mut(sheet_id, rows) {
                if *idx >= at {
                    *idx += n;
                }
            }
        }
    }

    /// Drops metadata of deleted rows/columns `[at, at+n)` and shifts later ones.
    pub fn shift_meta_delete(&mut self, sheet_id: i32, rows: bool, at: u32, n: u32) {
        self.metadata
            .retain(|m| match m.location.dim_index(sheet_id, rows) {
                Some(idx) => !(idx >= at && idx < at + n),
                None => true,
            });
        for m in &mut self.metadata {
            if let Some(idx) = m.location.dim_index_mut(sheet_id, rows) {
                if *idx >= at + n {
                    *idx -= n;
                }
            }
        }
    }
}
