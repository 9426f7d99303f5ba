//! Typed cells: `updateCells` (a block at `start`, or a `range` whose other cells are
//! cleared) and `appendCells` (after the last row with data).

use serde_json::{json, Value};

use super::args::{sheet_idx, u32_of, update_fields, Ctx};
use crate::values::ops::resolve_grid;

use crate::a1;
use crate::api::sheets::{apply_patch, parse_cell_data, CellPatch};
use crate::error::ApiError;
use crate::model::{Grid, Spreadsheet};
use crate::values::ops::{self, Resolved};

/// Which parts of a cell an update's `fields` mask names.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    value: bool,
    format: bool,
    note: bool,
}

impl Wanted {
    fn of(paths: &[String]) -> Self {
        let all = paths.iter().any(|p| p == "*");
        let want = |p: &str| {
            all || paths
                .iter()
                .any(|x| x == p || x.starts_with(&format!("{p}.")))
        };
        Wanted {
            value: want("userEnteredValue"),
            format: want("userEnteredFormat"),
            note: want("note"),
        }
    }

    /// Keeps only the named parts of `p`; a named part it leaves out is cleared.
    fn restrict(self, mut p: CellPatch) -> CellPatch {
        if !self.value {
            p.value = None;
        } else if p.value.is_none() {
            p.value = Some(None);
        }
        if !self.format {
            p.format = None;
        } else if p.format.is_none() {
            p.format = Some(None);
        }
        if !self.note {
            p.note = None;
        } else if p.note.is_none() {
            p.note = Some(None);
        }
        p
    }

    /// The patch that clears the named parts.
    fn clearing(self) -> CellPatch {
        CellPatch {
            value: self.value.then_some(None),
            format: self.format.then_some(None),
            note: self.note.then_some(None),
        }
    }
}

/// `updateCells`.
pub(super) fn update_cells(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let wanted = Wanted::of(&update_fields(req)?);
    let rows: Vec<Vec<Value>> = req
        .get("rows")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r.get("values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let (target, clear_rest) = update_target(ss, req, &rows)?;
    // Parse everything first (atomicity within the request).
    let patches = cell_patches(&rows, &target, wanted)?;
    let grid = &mut ss.sheets[target.sheet].grid;
    if clear_rest {
        clear_uncovered(grid, &target, &rows, &wanted.clearing());
    }
    for (r, c, p) in patches {
        let mut cell = grid.get(r, c).cloned().unwrap_or_default();
        apply_patch(&mut cell, &p);
        grid.set(r, c, cell);
    }
    Ok(())
}

/// Where `updateCells` writes: the block at `start` (which must fit the grid), or `range`
/// (whose cells the rows do not cover are cleared: the `bool`).
fn update_target(
    ss: &Spreadsheet,
    req: &Value,
    rows: &[Vec<Value>],
) -> Result<(Resolved, bool), ApiError> {
    let h = rows.len() as u32;
    let w = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    if let Some(start) = req.get("start") {
        let si = sheet_idx(ss, start.get("sheetId"))?;
        let r0 = u32_of(start, "rowIndex").unwrap_or(0);
        let c0 = u32_of(start, "columnIndex").unwrap_or(0);
        let sh = &ss.sheets[si];
        let (r1, c1) = (r0 + h.max(1) - 1, c0 + w.max(1) - 1);
        if r1 >= sh.props.row_count || c1 >= sh.props.column_count {
            let text = a1::format_range(&sh.props.title, r0, c0, r1, c1, false);
            return Err(ops::grid_error(
                &text,
                sh.props.row_count,
                sh.props.column_count,
            ));
        }
        let target = Resolved {
            sheet: si,
            r0,
            c0,
            r1,
            c1,
            single: false,
        };
        Ok((target, false))
    } else if let Some(range) = req.get("range") {
        Ok((resolve_grid(ss, range)?, true))
    } else {
        Err(ApiError::bad_request("Either start or range must be set."))
    }
}

/// The patch of every given cell inside the target, by (row, column).
fn cell_patches(
    rows: &[Vec<Value>],
    target: &Resolved,
    wanted: Wanted,
) -> Result<Vec<(u32, u32, CellPatch)>, ApiError> {
    let mut patches = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for (j, cd) in row.iter().enumerate() {
            let r = target.r0 + i as u32;
            let c = target.c0 + j as u32;
            if r > target.r1 || c > target.c1 {
                continue;
            }
            patches.push((r, c, wanted.restrict(parse_cell_data(cd)?)));
        }
    }
    Ok(patches)
}

/// Applies `clear` to the stored cells of the target that the rows do not cover.
fn clear_uncovered(grid: &mut Grid, target: &Resolved, rows: &[Vec<Value>], clear: &CellPatch) {
    let stored: Vec<(u32, u32)> = grid
        .rows_in(target.r0, target.r1 + 1)
        .flat_map(|(r, row)| {
            (target.c0..=target.c1.min(row.len() as u32).saturating_sub(0))
                .filter(move |c| (*c as usize) < row.len())
                .map(move |c| (r, c))
        })
        .collect();
    for (r, c) in stored {
        let covered = ((r - target.r0) as usize) < rows.len()
            && ((c - target.c0) as usize) < rows[(r - target.r0) as usize].len();
        if !covered {
            let mut cell = grid.get(r, c).cloned().unwrap_or_default();
            apply_patch(&mut cell, clear);
            grid.set(r, c, cell);
        }
    }
}

/// `appendCells`: typed rows after the last row with data, growing the sheet if needed.
pub(super) fn append_cells(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    req: &Value,
) -> Result<(), ApiError> {
    let si = sheet_idx(ss, req.get("sheetId"))?;
    let rows = req
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut width = 0u32;
    for r in &rows {
        let cells = r
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        width = width.max(cells.len() as u32);
        for cd in &cells {
            parse_cell_data(cd)?;
        }
    }
    update_fields(req)?;
    if rows.is_empty() {
        return Ok(());
    }
    let start = ss.sheets[si].grid.last_value_row().map_or(0, |r| r + 1);
    let p = &ss.sheets[si].props;
    let (rows0, cols0) = (p.row_count, p.column_count);
    let (rows1, cols1) = (rows0.max(start + rows.len() as u32), cols0.max(width));
    let extra = u64::from(rows1) * u64::from(cols1) - u64::from(rows0) * u64::from(cols0);
    if ss.total_cells() + extra > ctx.limit {
        return Err(ApiError::over_cell_limit(ctx.limit));
    }
    let sid = ss.sheets[si].props.sheet_id;
    ss.sheets[si].props.row_count = rows1;
    ss.sheets[si].props.column_count = cols1;
    let synthetic = json!({
        "start": {"sheetId": sid, "rowIndex": start, "columnIndex": 0},
        "rows": rows,
        "fields": req.get("fields").cloned().unwrap_or(Value::Null),
    });
    update_cells(ss, &synthetic)
}
