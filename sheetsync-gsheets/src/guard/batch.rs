//! Building a guarded batch, and counting its bytes before it is built.
//!
//! The write quota (60 requests a minute) and Google's recommended body size (2 MB) cap how
//! many rows a second sheetsync can write, so a batch spends as few bytes a row as it can
//! without giving up a pre-image per target:
//! - targets on consecutive rows share one `copyPaste` of their pre-images (they land on
//!   consecutive scratch rows);
//! - the cell runs that start in one column share one `updateCells` across rows: a request
//!   that gives only its `start` writes each row's cells and nothing else, so the rows between
//!   two targets go as empty rows (`{}`, three bytes), which write nothing. Past [`MAX_SKIP`]
//!   rows a new request is cheaper.
//!
//! [`BatchSize`] counts a target's bytes by the same rules, in the order the batch takes
//! them, so a batch is cut at the budget by what it really sends.

use std::collections::BTreeMap;

use google_sheets4::api::{
    AddSheetRequest, AppendCellsRequest, BatchUpdateSpreadsheetRequest, CellData, CopyPasteRequest,
    DeleteDimensionRequest, DimensionRange, ExtendedValue, GridCoordinate, GridProperties,
    GridRange, Request, RowData, SheetProperties, UpdateCellsRequest, UpdateSheetPropertiesRequest,
};
use google_sheets4::common::FieldMask;
use serde_json::Value as Json;

use super::describe::describe;
use super::{Action, DataTab, Scratch, Stamp, Target};
use crate::wire;

/// Rows between two targets that one cell request skips as empty rows: beyond this, a new
/// request (about 120 bytes) costs less than the empty rows (3 bytes each).
pub(crate) const MAX_SKIP: u32 = 32;

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
    let mut requests: Vec<Request> = scratch_sizing(scratch, need_rows, need_cols)
        .into_iter()
        .collect();
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
    for (i, row0, n) in copy_runs(targets) {
        requests.push(copy_rows(
            data,
            (row0, n),
            scratch.sheet_id,
            base + i as u32 + 1,
        ));
    }
    if !targets.is_empty() {
        // One request for every target's description, in column A of its pre-image row.
        let rows = targets
            .iter()
            .map(|t| row_data(&[Json::String(describe(t))]))
            .collect();
        requests.push(update_block(
            scratch.sheet_id,
            (base + 1, 0),
            rows,
            "userEnteredValue",
        ));
    }
    requests.extend(cell_requests(data.sheet_id, targets));
    for t in targets {
        requests.extend(other_action_requests(data, scratch.sheet_id, t));
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

/// Targets on consecutive rows, each run one copy: (first target, its 0-based row, rows).
fn copy_runs(targets: &[Target]) -> Vec<(usize, u32, u32)> {
    let mut out: Vec<(usize, u32, u32)> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match out.last_mut() {
            Some((_, row0, n)) if *row0 + *n == t.row - 1 => *n += 1,
            _ => out.push((i, t.row - 1, 1)),
        }
    }
    out
}

/// Whether a cell run at 0-based `row0` joins the open request whose next row is `next`: the
/// empty rows it needs, if so.
fn joins(next: u32, row0: u32) -> Option<u32> {
    (row0 >= next && row0 - next <= MAX_SKIP).then(|| row0 - next)
}

/// The `updateCells` requests of the targets' cell writes: the runs that start in one column
/// share a request across rows (see the module's doc). A target on a row not below the
/// previous one's closes every open request first, so writes to one cell keep their order.
fn cell_requests(sheet_id: i32, targets: &[Target]) -> Vec<Request> {
    // By first column: the open request's first 0-based row and its rows.
    let mut open: BTreeMap<u32, (u32, Vec<RowData>)> = BTreeMap::new();
    let mut out = Vec::new();
    let close = |c0: u32, (row0, rows): (u32, Vec<RowData>), out: &mut Vec<Request>| {
        out.push(update_block(sheet_id, (row0, c0), rows, "userEnteredValue"));
    };
    let mut last: Option<u32> = None;
    for t in targets {
        let Action::Cells(cells) = &t.action else {
            continue;
        };
        let row0 = t.row - 1;
        if last.is_some_and(|l| row0 <= l) {
            std::mem::take(&mut open)
                .into_iter()
                .for_each(|(c0, b)| close(c0, b, &mut out));
        }
        last = Some(row0);
        for (c0, vals) in runs(cells) {
            let block = open.remove(&c0);
            let gap = block
                .as_ref()
                .and_then(|(first, rows)| joins(first + rows.len() as u32, row0));
            let (first, mut rows) = match block {
                Some(b) if gap.is_some() => b,
                Some(b) => {
                    close(c0, b, &mut out);
                    (row0, Vec::new())
                }
                None => (row0, Vec::new()),
            };
            rows.extend((0..gap.unwrap_or(0)).map(|_| RowData::default()));
            rows.push(row_data(&vals));
            open.insert(c0, (first, rows));
        }
    }
    open.into_iter().for_each(|(c0, b)| close(c0, b, &mut out));
    out
}

/// The requests of a target's action other than cell writes (merged by [`cell_requests`]) and
/// deletes (merged into spans by the batch).
fn other_action_requests(data: DataTab, scratch_id: i32, t: &Target) -> Vec<Request> {
    match &t.action {
        Action::Paste(from) => vec![super::paste_back(data, scratch_id, *from, t.row - 1)],
        Action::Note(col, note) => vec![set_note(data.sheet_id, t.row - 1, *col, note)],
        Action::Cells(_) | Action::Delete => Vec::new(),
    }
}

/// The bytes of a batch's body, counted target by target in the order [`guarded_batch`]
/// takes them, by its rules: a target joining the previous one's copy or an open cell request
/// adds only its rows. An upper bound, a few percent above what is sent.
#[derive(Debug, Default)]
pub(crate) struct BatchSize {
    /// The previous target's 1-based row.
    prev: Option<u32>,
    /// The previous cell-writing target's 0-based row.
    last_cells: Option<u32>,
    /// Open cell requests by first column: the next 0-based row.
    open: BTreeMap<u32, u32>,
}

impl BatchSize {
    /// The bytes `t` adds to the batch after the targets added so far.
    pub fn add(&mut self, data: DataTab, t: &Target) -> usize {
        // The scratch tab's id and row numbers at their widest.
        let copy = if self.prev.is_some_and(|p| p + 1 == t.row) {
            2 // a wider end row index, at most, in source and destination
        } else {
            wire::len(&copy_rows(data, (t.row.max(1) - 1, 1), i32::MAX, 999_999)) + 1
        };
        self.prev = Some(t.row);
        let description = wire::len(&row_data(&[Json::String(describe(t))])) + 1;
        let action: usize = match &t.action {
            Action::Cells(cells) => self.add_cells(data.sheet_id, t.row.max(1) - 1, cells),
            // Its own span at worst (neighbouring rows share one).
            Action::Delete => wire::len(&delete_rows(data.sheet_id, t.row, t.row + 1)) + 1,
            _ => other_action_requests(data, i32::MAX, t)
                .iter()
                .map(|r| wire::len(r) + 1)
                .sum(),
        };
        copy + description + action
    }

    fn add_cells(&mut self, sheet_id: i32, row0: u32, cells: &[(u32, Json)]) -> usize {
        if self.last_cells.is_some_and(|l| row0 <= l) {
            self.open.clear();
        }
        self.last_cells = Some(row0);
        let mut n = 0;
        for (c0, vals) in runs(cells) {
            n += match self.open.get(&c0).and_then(|&next| joins(next, row0)) {
                Some(gap) => 3 * gap as usize + wire::len(&row_data(&vals)) + 1,
                None => wire::len(&update_cells(sheet_id, row0, c0, vals)) + 1,
            };
            self.open.insert(c0, row0 + 1);
        }
        n
    }
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

/// Copies `n` whole data rows from 0-based `row0` to the scratch tab from `to_row0`, column B
/// on (`pasteType` left out: `PASTE_NORMAL`, the whole cell, is its default).
fn copy_rows(data: DataTab, (row0, n): (u32, u32), scratch_id: i32, to_row0: u32) -> Request {
    Request {
        copy_paste: Some(CopyPasteRequest {
            source: Some(grid_range(data.sheet_id, (row0, n), 0, data.cols)),
            destination: Some(grid_range(scratch_id, (to_row0, n), 1, data.cols + 1)),
            paste_type: None,
            paste_orientation: None, // NORMAL
        }),
        ..Default::default()
    }
}

/// `n` rows from 0-based `row0`, columns `c0 .. c1`.
pub(super) fn grid_range(sheet_id: i32, (row0, n): (u32, u32), c0: u32, c1: u32) -> GridRange {
    GridRange {
        sheet_id: Some(sheet_id),
        start_row_index: Some(row0 as i32),
        end_row_index: Some((row0 + n) as i32),
        start_column_index: Some(c0 as i32),
        end_column_index: Some(c1 as i32),
    }
}

fn update_cells(sheet_id: i32, row0: u32, col0: u32, values: Vec<Json>) -> Request {
    update_block(
        sheet_id,
        (row0, col0),
        vec![row_data(&values)],
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
    update_block(sheet_id, (row0, col0), vec![row], "note")
}

/// `updateCells` of `rows` from (`row0`, `col0`), only the `field` of each given cell: with a
/// start and no range, Google writes the cells given and nothing else.
fn update_block(
    sheet_id: i32,
    (row0, col0): (u32, u32),
    rows: Vec<RowData>,
    field: &str,
) -> Request {
    Request {
        update_cells: Some(UpdateCellsRequest {
            start: Some(GridCoordinate {
                sheet_id: Some(sheet_id),
                row_index: Some(row0 as i32),
                column_index: Some(col0 as i32),
            }),
            rows: Some(rows),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Expect;
    use serde_json::json;
    use sheetsync_core::{RowKey, Value};

    fn scratch() -> Scratch {
        Scratch {
            sheet_id: 123_456_789,
            title: "sheetsync-scratch-0".into(),
            rows: 10,
            cols: 4,
            exists: true,
        }
    }

    fn keyed(row: u32, action: Action) -> Target {
        Target {
            op: row as usize,
            row,
            expect: Expect::Key(RowKey::from_values(&[Value::Int(row as i64)])),
            action,
        }
    }

    /// The body's bytes, and what `BatchSize` counted for it.
    fn body_and_estimate(data: DataTab, targets: &[Target], rows: &[Vec<Json>]) -> (usize, usize) {
        let req = guarded_batch(
            data,
            &scratch(),
            "sheetsync:0123456789abcdef",
            0,
            targets,
            rows,
        );
        let mut size = BatchSize::default();
        let estimate = targets.iter().map(|t| size.add(data, t)).sum::<usize>()
            + rows.iter().map(|r| append_bytes(r)).sum::<usize>()
            + 1_024;
        (wire::len(&req), estimate)
    }

    /// The `updateCells` requests on the data tab: (start row, start column, rows given).
    fn cell_blocks(req: &BatchUpdateSpreadsheetRequest, sheet_id: i32) -> Vec<(i32, i32, usize)> {
        req.requests
            .iter()
            .flatten()
            .filter_map(|r| r.update_cells.as_ref())
            .filter_map(|u| {
                let s = u.start.as_ref()?;
                (s.sheet_id == Some(sheet_id)).then(|| {
                    let rows = u.rows.as_ref().map_or(0, Vec::len);
                    (s.row_index.unwrap(), s.column_index.unwrap(), rows)
                })
            })
            .collect()
    }

    #[test]
    fn runs_split_on_gaps() {
        let r = runs(&[(4, json!("e")), (0, json!("a")), (1, json!("b"))]);
        assert_eq!(
            r,
            vec![(0, vec![json!("a"), json!("b")]), (4, vec![json!("e")])]
        );
    }

    #[test]
    fn deletes_go_highest_first_after_the_copies() {
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
            &scratch(),
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
        // Stamp, a copy per target (no two follow each other), their descriptions, then
        // deletes 7 and 3..4.
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
    fn targets_on_following_rows_share_a_copy_and_their_cells_share_requests() {
        let data = DataTab {
            sheet_id: 7,
            cols: 5,
        };
        let cells = |v: i64| Action::Cells(vec![(2, json!(v)), (0, json!(v))]);
        // Rows 5-7 follow each other, 20 is within MAX_SKIP rows of 7, 100 is not.
        let rows = [5u32, 6, 7, 20, 100];
        let targets: Vec<Target> = rows.iter().map(|&r| keyed(r, cells(r as i64))).collect();
        let req = guarded_batch(data, &scratch(), "n", 3, &targets, &[]);
        let copies: Vec<(i32, i32, i32)> = req
            .requests
            .iter()
            .flatten()
            .filter_map(|r| r.copy_paste.as_ref())
            .map(|c| {
                let (s, d) = (c.source.as_ref().unwrap(), c.destination.as_ref().unwrap());
                assert_eq!(
                    s.end_row_index.unwrap() - s.start_row_index.unwrap(),
                    d.end_row_index.unwrap() - d.start_row_index.unwrap()
                );
                (
                    s.start_row_index.unwrap(),
                    s.end_row_index.unwrap(),
                    d.start_row_index.unwrap(),
                )
            })
            .collect();
        // Each pre-image lands in scratch row base + its index + 1.
        assert_eq!(copies, vec![(4, 7, 4), (19, 20, 7), (99, 100, 8)]);
        // Column A (the key) and column C: rows 5..20 (12 empty rows between), then row 100.
        assert_eq!(
            cell_blocks(&req, 7),
            vec![(4, 0, 16), (4, 2, 16), (99, 0, 1), (99, 2, 1)]
        );
        let block = req.requests.as_ref().unwrap().iter().find_map(|r| {
            r.update_cells.as_ref().filter(|u| {
                u.start.as_ref().and_then(|s| s.sheet_id) == Some(7)
                    && u.rows.as_ref().unwrap().len() == 16
            })
        });
        let given: Vec<bool> = block
            .unwrap()
            .rows
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.values.is_some())
            .collect();
        let mut expected = vec![true; 3];
        expected.extend([false; 12]);
        expected.push(true);
        assert_eq!(
            given, expected,
            "the rows between targets are given no cells"
        );
    }

    #[test]
    fn a_target_not_below_the_previous_one_starts_new_cell_requests() {
        let data = DataTab {
            sheet_id: 7,
            cols: 5,
        };
        let targets = [
            keyed(10, Action::Cells(vec![(1, json!("a"))])),
            keyed(4, Action::Cells(vec![(1, json!("b"))])),
            keyed(11, Action::Cells(vec![(1, json!("c"))])),
        ];
        let req = guarded_batch(data, &scratch(), "n", 0, &targets, &[]);
        assert_eq!(cell_blocks(&req, 7), vec![(9, 1, 1), (3, 1, 8)]);
    }

    #[test]
    fn batch_sizes_bound_the_request_body() {
        let data = DataTab {
            sheet_id: 0,
            cols: 12,
        };
        let wide = |i: u32| {
            Action::Cells(vec![
                (0, json!(i)),
                (1, json!(format!("text {i}"))),
                (2, json!(i as f64 / 3.0)),
                (7, json!(true)),
            ])
        };
        let one = |i: u32| Action::Cells(vec![(2, json!(10_000_000 + i)), (0, json!(i))]);
        let patterns: Vec<(&str, Vec<Target>)> = vec![
            (
                "every third row, a quarter deletes",
                (0..500u32)
                    .map(|i| keyed(2 + i * 3, if i % 4 == 0 { Action::Delete } else { wide(i) }))
                    .collect(),
            ),
            (
                "following rows",
                (0..500u32).map(|i| keyed(2 + i, one(i))).collect(),
            ),
            (
                "one row in ten, then one in a hundred",
                (0..500u32)
                    .map(|i| keyed(if i < 250 { 2 + i * 10 } else { 2_500 + i * 100 }, one(i)))
                    .collect(),
            ),
            (
                "rows going up, then down",
                (0..500u32)
                    .map(|i| keyed(if i % 2 == 0 { 1_000 + i } else { 1_000 - i }, one(i)))
                    .collect(),
            ),
        ];
        let rows = vec![vec![json!(1), json!("new")]; 20];
        for (name, targets) in patterns {
            let (body, estimate) = body_and_estimate(data, &targets, &rows);
            assert!(
                body <= estimate,
                "{name}: body {body} > estimate {estimate}"
            );
            assert!(
                estimate - body < estimate / 10,
                "{name}: estimate {estimate} far above {body}"
            );
        }
    }
}
