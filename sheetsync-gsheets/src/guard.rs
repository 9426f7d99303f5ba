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
//!    carries the target it was copied for, in column A) and verifies and repairs it before it
//!    reads or writes anything. Verifying a batch again is harmless: pre-images do not change,
//!    and a repair is itself a batch that replaces the stamp.
//!
//! Updates also write the row's key cells with the key they expect: a mis-hit then shows as a
//! duplicated key (held by the engine, which suspends inferred deletes) rather than as one row's
//! values under another row's key, until the repair restores the row.
//!
//! Why not developer metadata: row metadata follows inserts, deletes and moves, but whether it
//! follows a sort is not documented, and Google limits how much metadata a sheet may carry; a
//! pre-image check holds whatever people do to the rows, at the price of one small hidden tab.

use google_sheets4::api::{
    AddSheetRequest, AppendCellsRequest, BatchUpdateSpreadsheetRequest, CellData, CopyPasteRequest,
    DeleteDimensionRequest, DimensionRange, ExtendedValue, GridCoordinate, GridProperties,
    GridRange, InsertDimensionRequest, Request, RowData, SheetProperties, Spreadsheet,
    UpdateCellsRequest, UpdateSheetPropertiesRequest,
};
use google_sheets4::common::FieldMask;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sheetsync_core::RowKey;

use crate::wire;

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

/// The atomic request: scratch stamp and pre-images first (in scratch rows `base + 1 ..`), then
/// cell writes and pastes, row deletes (highest first, so earlier positions stay valid) and
/// appends.
pub(crate) fn guarded_batch(
    data: DataTab,
    scratch: &Scratch,
    nonce: &str,
    base: u32,
    targets: &[Target],
    appends: &[Vec<Json>],
) -> BatchUpdateSpreadsheetRequest {
    let need_rows = base + targets.len() as u32 + 1;
    let need_cols = data.cols + 1;
    let mut requests = vec![scratch_sizing(scratch, need_rows, need_cols)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let stamp = Stamp {
        data_sheet_id: data.sheet_id,
        data_cols: data.cols,
        base,
        targets: targets.len() as u32,
    };
    requests.push(update_cells(
        scratch.sheet_id,
        0,
        0,
        vec![
            Json::String(nonce.to_string()),
            Json::String(stamp.to_cell()),
        ],
    ));
    for (i, t) in targets.iter().enumerate() {
        requests.push(copy_row(
            data,
            t.row - 1,
            scratch.sheet_id,
            base + i as u32 + 1,
        ));
    }
    if !targets.is_empty() {
        // One request for every target's description, in column A of its pre-image row.
        requests.push(Request {
            update_cells: Some(UpdateCellsRequest {
                start: Some(GridCoordinate {
                    sheet_id: Some(scratch.sheet_id),
                    row_index: Some(base as i32 + 1),
                    column_index: Some(0),
                }),
                rows: Some(
                    targets
                        .iter()
                        .map(|t| row_data(&[Json::String(describe(t))]))
                        .collect(),
                ),
                fields: Some(FieldMask::new(&["userEnteredValue"])),
                range: None,
            }),
            ..Default::default()
        });
    }
    for t in targets {
        requests.extend(action_requests(data, scratch.sheet_id, t));
    }
    let mut deletes: Vec<u32> = targets
        .iter()
        .filter(|t| t.action == Action::Delete)
        .map(|t| t.row)
        .collect();
    deletes.sort_unstable();
    deletes.dedup();
    for (start, end) in spans(&deletes).into_iter().rev() {
        requests.push(delete_rows(data.sheet_id, start - 1, end));
    }
    if !appends.is_empty() {
        requests.push(Request {
            append_cells: Some(AppendCellsRequest {
                sheet_id: Some(data.sheet_id),
                rows: Some(appends.iter().map(|r| row_data(r)).collect()),
                fields: Some(FieldMask::new(&["userEnteredValue"])),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    BatchUpdateSpreadsheetRequest {
        requests: Some(requests),
        include_spreadsheet_in_response: Some(true),
        response_ranges: Some(vec![scratch_range(
            scratch,
            base + targets.len() as u32,
            data.cols,
        )]),
        response_include_grid_data: Some(true),
    }
}

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
    fn to_cell(&self) -> String {
        serde_json::to_string(self).expect("stamps serialise")
    }

    /// From cell B1.
    pub fn from_cell(cell: &Json) -> Option<Self> {
        serde_json::from_str(cell.as_str()?).ok()
    }
}

/// A target as kept in column A of its pre-image row (Google keeps at most 50,000 characters
/// in a cell: a larger one is kept without its cells, and is then verified but not repaired).
fn describe(t: &Target) -> String {
    // The columns a write changed are enough to find the row again (by its expected key) and to
    // recognise it (the other cells equal the pre-image): the values would double the request.
    let mut short = t.clone();
    if let Action::Cells(cells) = &mut short.action {
        cells.iter_mut().for_each(|(_, v)| *v = Json::Null);
    }
    if let Expect::Content(_) = short.expect {
        short.expect = Expect::Content(Vec::new());
    }
    serde_json::to_string(&short).expect("targets serialise")
}

/// The targets kept in the scratch tab's rows (`rows[0]` is the stamp row), for a stamp.
pub(crate) fn described_targets(rows: &[Vec<Json>], stamp: &Stamp) -> Option<Vec<Target>> {
    (0..stamp.targets as usize)
        .map(|i| {
            let cell = rows.get(stamp.base as usize + i + 1)?.first()?;
            serde_json::from_str(cell.as_str()?).ok()
        })
        .collect()
}

/// The requests that carry out a target's action (deletes are merged by the batch).
fn action_requests(data: DataTab, scratch_id: i32, t: &Target) -> Vec<Request> {
    match &t.action {
        Action::Cells(cells) => runs(cells)
            .into_iter()
            .map(|(c0, vals)| update_cells(data.sheet_id, t.row - 1, c0, vals))
            .collect(),
        Action::Paste(from) => vec![paste_back(data, scratch_id, *from, t.row - 1)],
        Action::Note(col, note) => vec![set_note(data.sheet_id, t.row - 1, *col, note)],
        Action::Delete => Vec::new(),
    }
}

/// The bytes a target adds to a batch's body: its copy, its action and its description.
pub(crate) fn target_bytes(data: DataTab, t: &Target) -> usize {
    // The scratch tab's id and row numbers at their widest.
    let mut n = wire::len(&copy_row(data, t.row.max(1) - 1, i32::MAX, 999_999)) + 1;
    for r in action_requests(data, i32::MAX, t) {
        n += wire::len(&r) + 1;
    }
    if t.action == Action::Delete {
        // Its own span at worst (neighbouring rows share one).
        n += wire::len(&delete_rows(data.sheet_id, t.row, t.row + 1)) + 1;
    }
    n + wire::len(&row_data(&[Json::String(describe(t))])) + 1
}

/// The bytes a new row adds to a batch's body (its `appendCells` row).
pub(crate) fn append_bytes(row: &[Json]) -> usize {
    wire::len(&row_data(row)) + 1
}

/// Creates the scratch tab (hidden) or grows it to hold `rows` × `cols`.
fn scratch_sizing(scratch: &Scratch, rows: u32, cols: u32) -> Option<Request> {
    let grid = |r: u32, c: u32| GridProperties {
        row_count: Some(r as i32),
        column_count: Some(c as i32),
        ..Default::default()
    };
    if !scratch.exists {
        return Some(Request {
            add_sheet: Some(AddSheetRequest {
                properties: Some(SheetProperties {
                    sheet_id: Some(scratch.sheet_id),
                    title: Some(scratch.title.clone()),
                    hidden: Some(true),
                    grid_properties: Some(grid(rows.max(2), cols.max(2))),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        });
    }
    if scratch.rows >= rows && scratch.cols >= cols {
        return None;
    }
    Some(Request {
        update_sheet_properties: Some(UpdateSheetPropertiesRequest {
            properties: Some(SheetProperties {
                sheet_id: Some(scratch.sheet_id),
                grid_properties: Some(grid(scratch.rows.max(rows), scratch.cols.max(cols))),
                ..Default::default()
            }),
            fields: Some(FieldMask::new(&[
                "gridProperties.rowCount",
                "gridProperties.columnCount",
            ])),
        }),
        ..Default::default()
    })
}

/// The A1 range of the scratch tab that a batch of `n` targets fills: the nonce row and one
/// row per target, one column more than the data tab (column A of each row is ours).
pub(crate) fn scratch_range(scratch: &Scratch, n: u32, data_cols: u32) -> String {
    format!(
        "{}!A1:{}{}",
        crate::layout::quote_title(&scratch.title),
        crate::layout::col_letters(data_cols),
        n + 1
    )
}

fn copy_row(data: DataTab, row0: u32, scratch_id: i32, to_row0: u32) -> Request {
    Request {
        copy_paste: Some(CopyPasteRequest {
            source: Some(grid_range(data.sheet_id, row0, 0, data.cols)),
            destination: Some(grid_range(scratch_id, to_row0, 1, data.cols + 1)),
            paste_type: Some("PASTE_NORMAL".into()),
            paste_orientation: None, // NORMAL
        }),
        ..Default::default()
    }
}

fn grid_range(sheet_id: i32, row0: u32, c0: u32, c1: u32) -> GridRange {
    GridRange {
        sheet_id: Some(sheet_id),
        start_row_index: Some(row0 as i32),
        end_row_index: Some(row0 as i32 + 1),
        start_column_index: Some(c0 as i32),
        end_column_index: Some(c1 as i32),
    }
}

fn update_cells(sheet_id: i32, row0: u32, col0: u32, values: Vec<Json>) -> Request {
    update_row(
        sheet_id,
        (row0, col0),
        row_data(&values),
        "userEnteredValue",
    )
}

/// Sets (or, when `note` is empty, removes) one cell's note, leaving its value alone.
fn set_note(sheet_id: i32, row0: u32, col0: u32, note: &str) -> Request {
    let cell = CellData {
        note: (!note.is_empty()).then(|| note.to_string()),
        ..Default::default()
    };
    let row = RowData {
        values: Some(vec![cell]),
    };
    update_row(sheet_id, (row0, col0), row, "note")
}

/// `updateCells` of one row's cells from (`row0`, `col0`), only the `field` of each.
fn update_row(sheet_id: i32, (row0, col0): (u32, u32), row: RowData, field: &str) -> Request {
    Request {
        update_cells: Some(UpdateCellsRequest {
            start: Some(GridCoordinate {
                sheet_id: Some(sheet_id),
                row_index: Some(row0 as i32),
                column_index: Some(col0 as i32),
            }),
            rows: Some(vec![row]),
            fields: Some(FieldMask::new(&[field])),
            range: None,
        }),
        ..Default::default()
    }
}

fn delete_rows(sheet_id: i32, start0: u32, end0: u32) -> Request {
    Request {
        delete_dimension: Some(DeleteDimensionRequest {
            range: Some(DimensionRange {
                sheet_id: Some(sheet_id),
                dimension: Some("ROWS".into()),
                start_index: Some(start0 as i32),
                end_index: Some(end0 as i32),
            }),
        }),
        ..Default::default()
    }
}

/// A row of values as typed cells: text stays text (never a formula), `""` clears the cell.
fn row_data(values: &[Json]) -> RowData {
    RowData {
        values: Some(values.iter().map(cell_data).collect()),
    }
}

fn cell_data(v: &Json) -> CellData {
    let value = match v {
        Json::String(s) if s.is_empty() => None,
        Json::Null => None,
        Json::String(s) => Some(ExtendedValue {
            string_value: Some(s.clone()),
            ..Default::default()
        }),
        Json::Bool(b) => Some(ExtendedValue {
            bool_value: Some(*b),
            ..Default::default()
        }),
        Json::Number(n) => Some(ExtendedValue {
            number_value: n.as_f64(),
            ..Default::default()
        }),
        other => Some(ExtendedValue {
            string_value: Some(other.to_string()),
            ..Default::default()
        }),
    };
    CellData {
        user_entered_value: value,
        ..Default::default()
    }
}

/// A row's cells (sheet column, value) as runs of adjacent columns: first column, values.
pub(crate) fn runs(cells: &[(u32, Json)]) -> Vec<(u32, Vec<Json>)> {
    let mut cells = cells.to_vec();
    cells.sort_by_key(|(c, _)| *c);
    cells.dedup_by_key(|(c, _)| *c);
    let mut out: Vec<(u32, Vec<Json>)> = Vec::new();
    for (c, v) in cells {
        match out.last_mut() {
            Some((c0, vals)) if *c0 + vals.len() as u32 == c => vals.push(v),
            _ => out.push((c, vec![v])),
        }
    }
    out
}

/// Sorted 1-based rows → inclusive spans of consecutive rows.
pub(crate) fn spans(rows: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &r in rows {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == r => *end = r,
            _ => out.push((r, r)),
        }
    }
    out
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
            source: Some(grid_range(scratch_id, scratch_row0, 1, data.cols + 1)),
            destination: Some(grid_range(data.sheet_id, row0, 0, data.cols)),
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
    fn runs_split_on_gaps() {
        let r = runs(&[(4, json!("e")), (0, json!("a")), (1, json!("b"))]);
        assert_eq!(
            r,
            vec![(0, vec![json!("a"), json!("b")]), (4, vec![json!("e")])]
        );
    }

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

    #[test]
    fn deletes_go_highest_first_after_the_copies() {
        let scratch = Scratch {
            sheet_id: 9,
            title: "s".into(),
            rows: 10,
            cols: 10,
            exists: true,
        };
        let t = |row, action| Target {
            op: 0,
            row,
            expect: Expect::Fingerprint(String::new()),
            action,
        };
        let req = guarded_batch(
            DataTab {
                sheet_id: 1,
                cols: 3,
            },
            &scratch,
            "n",
            0,
            &[
                t(3, Action::Delete),
                t(7, Action::Delete),
                t(4, Action::Delete),
            ],
            &[],
        );
        let reqs = req.requests.unwrap();
        // Stamp, a copy per target, their descriptions, then deletes 7 and 3..4.
        assert!(reqs[0].update_cells.is_some());
        assert!(reqs[1..4].iter().all(|r| r.copy_paste.is_some()));
        assert!(reqs[4].update_cells.is_some());
        let dels: Vec<(i32, i32)> = reqs[5..]
            .iter()
            .map(|r| {
                let d = r.delete_dimension.as_ref().unwrap().range.as_ref().unwrap();
                (d.start_index.unwrap(), d.end_index.unwrap())
            })
            .collect();
        assert_eq!(dels, vec![(6, 7), (2, 4)]);
    }

    #[test]
    fn target_sizes_bound_the_request_body() {
        let scratch = Scratch {
            sheet_id: 123_456_789,
            title: "sheetsync-scratch-0".into(),
            rows: 10,
            cols: 4,
            exists: true,
        };
        let data = DataTab {
            sheet_id: 0,
            cols: 12,
        };
        let targets: Vec<Target> = (0..500u32)
            .map(|i| Target {
                op: i as usize,
                row: 2 + i * 3,
                expect: Expect::Key(RowKey::from_values(&[sheetsync_core::Value::Int(i as i64)])),
                action: if i % 4 == 0 {
                    Action::Delete
                } else {
                    Action::Cells(vec![
                        (0, json!(i)),
                        (1, json!(format!("text {i}"))),
                        (2, json!(i as f64 / 3.0)),
                        (7, json!(true)),
                    ])
                },
            })
            .collect();
        let rows = vec![vec![json!(1), json!("new")]; 20];
        let req = guarded_batch(
            data,
            &scratch,
            "sheetsync:0123456789abcdef",
            0,
            &targets,
            &rows,
        );
        let body = wire::len(&req);
        let estimate: usize = targets.iter().map(|t| target_bytes(data, t)).sum::<usize>()
            + rows.iter().map(|r| append_bytes(r)).sum::<usize>()
            + 1_024;
        assert!(body <= estimate, "body {body} > estimate {estimate}");
        assert!(
            estimate - body < estimate / 5,
            "estimate {estimate} far above {body}"
        );
    }
}
