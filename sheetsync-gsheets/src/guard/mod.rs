//! Positional writes that can never silently hit the wrong row.
//!
//! Google applies every write by row number, and people sort, drag, insert and delete rows while
//! a write waits for the network or the rate limiter. The Sheets API has no conditional write,
//! so sheetsync makes every positional write *verifiable and reversible* instead:
//!
//! 1. One atomic `spreadsheets.batchUpdate` (all its requests apply in order, or none) first
//!    copies each row it is about to change into a hidden scratch tab (`copyPaste`, the whole
//!    row), stamps the scratch tab with a fresh nonce, and only then writes the cells, deletes
//!    the rows and appends the new ones (`appendCells`, placed by Google after the last row with
//!    data: no table detection, gap row or selection can misplace it).
//! 2. The same request asks for the scratch tab's grid in its answer, so the answer carries the
//!    *pre-image* of every row the request touched, taken atomically with the write. A row whose
//!    pre-image does not carry the key the write was meant for was hit by mistake (someone moved
//!    rows between our read and our write): it is repaired from its pre-image, and the intended
//!    row is reported [`Stale`](sheetsync_core::WriteOutcome::Stale) so the engine reads it again
//!    and plans afresh.
//! 3. If the answer is lost (timeout, dropped connection, 5xx), nothing is re-sent: the scratch
//!    tab is read back. Its nonce says whether the request was applied, and its pre-images are
//!    verified exactly as above.
//!
//! 4. If the process dies before it verified a batch, the next process finds the batch in the
//!    scratch tab (the stamp in B1 says which tab and rows it wrote, and each pre-image row
//!    carries a short description of the target it was copied for, in column A: see
//!    `describe`) and verifies and repairs it before it reads or writes anything. Verifying a
//!    batch again is harmless: pre-images do not change, and a repair is itself a batch that
//!    replaces the stamp.
//!
//! Updates also write the row's key cells with the key they expect: a mis-hit then shows as a
//! duplicated key (held by the engine, which suspends inferred deletes) rather than as one row's
//! values under another row's key, until the repair restores the row.
//!
//! Why not developer metadata: row metadata follows inserts, deletes and moves, but whether it
//! follows a sort is not documented, and Google limits how much metadata a sheet may carry; a
//! pre-image check holds whatever people do to the rows, at the price of one small hidden tab.

use google_sheets4::api::{
    CopyPasteRequest, DimensionRange, ExtendedValue, InsertDimensionRequest, Request, Spreadsheet,
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sheetsync_core::RowKey;

mod batch;
mod describe;

use batch::grid_range;
pub(crate) use batch::{append_bytes, guarded_batch, scratch_range, BatchSize};

/// The title of the scratch tab that serves the tab with `sheet_id`.
pub(crate) fn scratch_title(sheet_id: i32) -> String {
    format!("sheetsync-scratch-{sheet_id}")
}

/// The hidden tab where each write copies the rows it is about to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scratch {
    /// Its sheetId.
    pub sheet_id: i32,
    /// Its title.
    pub title: String,
    /// Its grid.
    pub rows: u32,
    /// Its grid.
    pub cols: u32,
    /// False until a batch has created it.
    pub exists: bool,
}

/// What a positional write expects to find in its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Expect {
    /// The row carries this key.
    Key(RowKey),
    /// The row is the unkeyed row with this content fingerprint.
    Fingerprint(String),
    /// The row holds exactly these cells (trailing blanks aside).
    Content(Vec<Json>),
}

/// What a positional write does to its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Action {
    /// Write these cells: 0-based sheet column and value (as the values API takes them).
    Cells(Vec<(u32, Json)>),
    /// Delete the row.
    Delete,
    /// Paste the pre-image kept in this 0-based scratch row over the row (a repair).
    Paste(u32),
    /// Set the note of the cell in this 0-based sheet column (`""` removes it); the values
    /// stay as they are.
    Note(u32, String),
}

/// One positional write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    /// The index of the engine's operation it serves.
    pub op: usize,
    /// The 1-based row the write was planned for.
    pub row: u32,
    /// What must be there.
    pub expect: Expect,
    /// What to do.
    pub action: Action,
}

/// The data tab a batch writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataTab {
    /// Its sheetId.
    pub sheet_id: i32,
    /// Columns in its grid: the width of the copied rows.
    pub cols: u32,
}

/// The fields of the answer a guarded batch needs: the scratch tab's values and the grids.
pub(crate) const ANSWER_FIELDS: &str = "updatedSpreadsheet.sheets(properties(sheetId,title,gridProperties(rowCount,columnCount)),data(startRow,rowData.values.effectiveValue))";

/// What the scratch tab's cell B1 says about the batch that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// The data tab the batch wrote.
    pub data_sheet_id: i32,
    /// Its width then.
    pub data_cols: u32,
    /// Pre-image rows before the batch's own.
    pub base: u32,
    /// The batch's targets.
    pub targets: u32,
}

impl Stamp {
    pub(super) fn to_cell(&self) -> String {
        serde_json::to_string(self).expect("stamps serialise")
    }

    /// From cell B1.
    pub fn from_cell(cell: &Json) -> Option<Self> {
        serde_json::from_str(cell.as_str()?).ok()
    }
}

/// The targets kept in the scratch tab's rows (`rows[0]` is the stamp row), for a stamp.
pub(crate) fn described_targets(rows: &[Vec<Json>], stamp: &Stamp) -> Option<Vec<Target>> {
    (0..stamp.targets as usize)
        .map(|i| {
            let cell = rows.get(stamp.base as usize + i + 1)?.first()?;
            describe::parse(cell.as_str()?)
        })
        .collect()
}

/// What the scratch tab holds after a batch: its nonce and the pre-image of each target's row
/// (the data tab's cells, from column A).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreImages {
    /// The nonce of the batch that last wrote the scratch tab.
    pub nonce: Option<String>,
    /// Its stamp.
    pub stamp: Option<Stamp>,
    /// One row of cells per target, in order.
    pub rows: Vec<Vec<Json>>,
}

impl PreImages {
    /// From scratch rows as the values API returns them (`rows[0]` holds the nonce), for
    /// `targets` pre-images after the first `base`.
    pub fn from_values(rows: &[Vec<Json>], base: usize, targets: usize) -> Self {
        let nonce = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_str)
            .map(str::to_owned);
        let stamp = rows
            .first()
            .and_then(|r| r.get(1))
            .and_then(Stamp::from_cell);
        let rows = (0..targets)
            .map(|i| {
                rows.get(base + i + 1)
                    .map(|r| r.iter().skip(1).cloned().collect())
                    .unwrap_or_default()
            })
            .collect();
        PreImages { nonce, stamp, rows }
    }

    /// From the answer of a guarded batch (the scratch tab's grid data).
    pub fn from_answer(
        answer: &Spreadsheet,
        scratch_id: i32,
        base: usize,
        targets: usize,
    ) -> Option<Self> {
        let sheet = answer
            .sheets
            .as_ref()?
            .iter()
            .find(|s| s.properties.as_ref().and_then(|p| p.sheet_id) == Some(scratch_id))?;
        let grid = sheet.data.as_ref()?.first()?;
        let start = grid.start_row.unwrap_or(0).max(0) as usize;
        let mut rows: Vec<Vec<Json>> = vec![Vec::new(); start];
        for rd in grid.row_data.as_deref().unwrap_or_default() {
            rows.push(
                rd.values
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| effective(c.effective_value.as_ref()))
                    .collect(),
            );
        }
        Some(PreImages::from_values(&rows, base, targets))
    }
}

/// A cell's computed value as the values API renders it unformatted.
pub(crate) fn effective(v: Option<&ExtendedValue>) -> Json {
    let Some(v) = v else {
        return Json::String(String::new());
    };
    if let Some(s) = &v.string_value {
        Json::String(s.clone())
    } else if let Some(n) = v.number_value {
        // As the values API answers: whole numbers without a fraction.
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            Json::from(n as i64)
        } else {
            serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
        }
    } else if let Some(b) = v.bool_value {
        Json::Bool(b)
    } else if let Some(e) = &v.error_value {
        Json::String(e.message.clone().unwrap_or_else(|| "#ERROR!".into()))
    } else {
        Json::String(String::new())
    }
}

/// Whether a target's write hit the row it was meant for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The pre-image is the expected row.
    Hit,
    /// Another row (or a blank one) was there: its pre-image.
    Missed(Vec<Json>),
}

/// Checks each target's pre-image with `matches` (does this row meet the expectation?).
pub(crate) fn verify(
    targets: &[Target],
    pre: &PreImages,
    matches: impl Fn(&Expect, &[Json]) -> bool,
) -> Vec<Verdict> {
    targets
        .iter()
        .zip(&pre.rows)
        .map(|(t, row)| {
            if matches(&t.expect, row) {
                Verdict::Hit
            } else {
                Verdict::Missed(row.clone())
            }
        })
        .collect()
}

/// `pre` with `cells` written over it: what a mis-hit row holds after the write (a `null`
/// value, from a target's description, stands for a value not known any more).
pub(crate) fn overlay(pre: &[Json], cells: &[(u32, Json)]) -> Vec<Json> {
    let width = cells
        .iter()
        .map(|(c, _)| *c as usize + 1)
        .max()
        .unwrap_or(0)
        .max(pre.len());
    let mut out: Vec<Json> = (0..width)
        .map(|i| pre.get(i).cloned().unwrap_or(Json::String(String::new())))
        .collect();
    for (c, v) in cells {
        out[*c as usize] = v.clone();
    }
    out
}

/// The atomic repair of a row deleted by mistake: insert a row at `at0` (0-based, within the
/// grid) and paste its pre-image there from scratch row `scratch_row0`.
pub(crate) fn restore_deleted(
    data: DataTab,
    scratch_id: i32,
    scratch_row0: u32,
    at0: u32,
) -> Vec<Request> {
    vec![
        Request {
            insert_dimension: Some(InsertDimensionRequest {
                range: Some(DimensionRange {
                    sheet_id: Some(data.sheet_id),
                    dimension: Some("ROWS".into()),
                    start_index: Some(at0 as i32),
                    end_index: Some(at0 as i32 + 1),
                }),
                inherit_from_before: Some(false),
            }),
            ..Default::default()
        },
        paste_back(data, scratch_id, scratch_row0, at0),
    ]
}

/// Pastes scratch row `scratch_row0` (a pre-image) over data row `row0`.
pub(crate) fn paste_back(data: DataTab, scratch_id: i32, scratch_row0: u32, row0: u32) -> Request {
    Request {
        copy_paste: Some(CopyPasteRequest {
            source: Some(grid_range(scratch_id, (scratch_row0, 1), 1, data.cols + 1)),
            destination: Some(grid_range(data.sheet_id, (row0, 1), 0, data.cols)),
            paste_type: Some("PASTE_NORMAL".into()),
            paste_orientation: Some("NORMAL".into()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_images_skip_the_nonce_row_and_column_a() {
        let rows = vec![
            vec![json!("n1")],
            vec![json!(""), json!(5), json!("x")],
            vec![],
        ];
        let p = PreImages::from_values(&rows, 0, 3);
        assert_eq!(p.nonce.as_deref(), Some("n1"));
        assert_eq!(p.stamp, None);
        assert_eq!(p.rows, vec![vec![json!(5), json!("x")], vec![], vec![]]);
    }

    #[test]
    fn overlay_writes_over_the_pre_image() {
        let o = overlay(&[json!(1), json!("a")], &[(3, json!("z")), (0, json!(2))]);
        assert_eq!(o, vec![json!(2), json!("a"), json!(""), json!("z")]);
    }
}
