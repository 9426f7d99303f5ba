//! Structural changes of a sheet: rows or columns inserted, deleted or moved, and rows sorted.
//! Formulas that refer to the sheet follow (see [`super::shift`]), and so does the row and
//! column developer metadata.

use super::formula::{Eff, Evaluator};
use super::ops::Resolved;
use super::shift::{shift_references, Shift};
use crate::a1;
use crate::error::ApiError;
use crate::model::{Cell, CellValue, Spreadsheet};

/// Inserts `[start, end)` rows or columns.
pub fn insert_dimension(
    ss: &mut Spreadsheet,
    si: usize,
    rows: bool,
    start: u32,
    end: u32,
    limit: u64,
) -> Result<(), ApiError> {
    let sh = &ss.sheets[si];
    let count = if rows {
        sh.props.row_count
    } else {
        sh.props.column_count
    };
    if end <= start {
        return Err(ApiError::bad_request(
            "The range must be bounded and non-empty.",
        ));
    }
    if start > count {
        return Err(ApiError::bad_request(format!(
            "Cannot insert {} at index {start}: there are only {count} {}.",
            if rows { "rows" } else { "columns" },
            if rows { "rows" } else { "columns" }
        )));
    }
    let n = end - start;
    if !rows && count + n > a1::MAX_COLUMNS {
        return Err(ApiError::bad_request(format!(
            "This action would increase the number of columns in the sheet above the limit of {}.",
            a1::MAX_COLUMNS
        )));
    }
    let extra = if rows {
        u64::from(n) * u64::from(sh.props.column_count)
    } else {
        u64::from(n) * u64::from(sh.props.row_count)
    };
    if ss.total_cells() + extra > limit {
        return Err(ApiError::over_cell_limit(limit));
    }
    let sid = sh.props.sheet_id;
    let sh = &mut ss.sheets[si];
    if rows {
        sh.grid.insert_rows(start, n);
        sh.props.row_count += n;
    } else {
        sh.grid.insert_cols(start, n);
        sh.props.column_count += n;
    }
    ss.shift_meta_insert(sid, rows, start, n);
    adjust_formulas(
        ss,
        si,
        Shift {
            rows,
            at: start,
            n,
            insert: true,
        },
    );
    Ok(())
}

/// Deletes `[start, end)` rows or columns.
pub fn delete_dimension(
    ss: &mut Spreadsheet,
    si: usize,
    rows: bool,
    start: u32,
    end: u32,
) -> Result<(), ApiError> {
    let sh = &ss.sheets[si];
    let (count, frozen) = if rows {
        (sh.props.row_count, sh.props.frozen_row_count)
    } else {
        (sh.props.column_count, sh.props.frozen_column_count)
    };
    let word = if rows { "row" } else { "column" };
    if end <= start {
        return Err(ApiError::bad_request(
            "The range must be bounded and non-empty.",
        ));
    }
    if end > count {
        return Err(ApiError::bad_request(format!(
            "Cannot delete a {word} that doesn't exist. Tried to delete {word} index {} but there are only {count} {word}s.",
            end - 1
        )));
    }
    if start == 0 && end == count {
        return Err(ApiError::bad_request(format!(
            "You can't delete all the {word}s on the sheet."
        )));
    }
    if frozen > 0 && start <= frozen && end == count {
        return Err(ApiError::bad_request(format!(
            "Sorry, it is not possible to delete all non-frozen {word}s."
        )));
    }
    let n = end - start;
    let sid = sh.props.sheet_id;
    let sh = &mut ss.sheets[si];
    if rows {
        sh.grid.delete_rows(start, n);
        sh.props.row_count -= n;
        sh.props.frozen_row_count = sh
            .props
            .frozen_row_count
            .min(sh.props.row_count.saturating_sub(1));
    } else {
        sh.grid.delete_cols(start, n);
        sh.props.column_count -= n;
        sh.props.frozen_column_count = sh
            .props
            .frozen_column_count
            .min(sh.props.column_count.saturating_sub(1));
    }
    ss.shift_meta_delete(sid, rows, start, n);
    adjust_formulas(
        ss,
        si,
        Shift {
            rows,
            at: start,
            n,
            insert: false,
        },
    );
    Ok(())
}
/// Rewrites every formula of the spreadsheet that refers to sheet `sheet` after rows or
/// columns were inserted or deleted there.
pub fn adjust_formulas(ss: &mut Spreadsheet, sheet: usize, shift: Shift) {
    let target = ss.sheets[sheet].props.title.clone();
    for sh in &mut ss.sheets {
        let own = sh.props.title.clone();
        for (_, _, cell) in sh.grid.cells_mut() {
            if let Some(CellValue::Formula(f)) = &mut cell.value {
                let new = shift_references(f, &own, &target, &shift);
                if new != *f {
                    *f = new;
                }
            }
        }
    }
}

/// Moves `n` rows (or columns) starting at `s` so they sit before index `d` (coordinates before
/// the move, as `moveDimension` defines them). Row/column metadata moves along if `move_meta`.
pub fn move_dimension(
    ss: &mut Spreadsheet,
    si: usize,
    rows: bool,
    s: u32,
    n: u32,
    d: u32,
    move_meta: bool,
) -> Result<(), ApiError> {
    let p = &ss.sheets[si].props;
    let count = if rows { p.row_count } else { p.column_count };
    if n == 0 || s + n > count || d > count {
        return Err(ApiError::bad_request(format!(
            "Invalid move: source {s}..{} or destination {d} outside the {count} {}.",
            s + n,
            if rows { "rows" } else { "columns" }
        )));
    }
    if d >= s && d <= s + n {
        return Ok(());
    }
    let dest = if d > s { d - n } else { d };
    let map = |i: u32| -> u32 {
        if i >= s && i < s + n {
            dest + (i - s)
        } else {
            let after = if i >= s + n { i - n } else { i };
            if after >= dest {
                after + n
            } else {
                after
            }
        }
    };
    let grid = &mut ss.sheets[si].grid;
    if rows {
        let block = grid.take_rows(s, s + n);
        grid.delete_rows(s, n);
        grid.insert_rows(dest, n);
        grid.put_rows(dest, block);
    } else {
        let width = (s + n).max(d) as usize;
        let keys: Vec<u32> = grid.all_rows().map(|(r, _)| r).collect();
        for r in keys {
            let mut cells: Vec<Cell> = (0..width as u32)
                .map(|c| grid.get(r, c).cloned().unwrap_or_default())
                .collect();
            let block: Vec<Cell> = cells.drain(s as usize..(s + n) as usize).collect();
            for (k, cell) in block.into_iter().enumerate() {
                cells.insert(dest as usize + k, cell);
            }
            for (c, cell) in cells.into_iter().enumerate() {
                grid.set(r, c as u32, cell);
            }
        }
    }
    if move_meta {
        let sid = ss.sheets[si].props.sheet_id;
        for m in &mut ss.metadata {
            if let Some(idx) = m.location.dim_index_mut(sid, rows) {
                *idx = map(*idx);
            }
        }
    }
    Ok(())
}

/// Sort key of a cell: kind rank, number, lower-cased text.
type SortKey = (u8, f64, String);

fn sort_key(e: &Eff) -> SortKey {
    match e {
        Eff::Num(n) => (0, *n, String::new()),
        Eff::Text(s) => (1, 0.0, s.to_lowercase()),
        Eff::Bool(b) => (2, f64::from(u8::from(*b)), String::new()),
        Eff::Err(_) => (3, 0.0, String::new()),
        Eff::Empty => (4, 0.0, String::new()),
    }
}

/// Sorts the rows of a range by columns `(absolute column, ascending)`, numbers before text
/// before booleans, empty cells last whatever the direction. Row metadata follows if asked.
pub fn sort_rows(
    ss: &mut Spreadsheet,
    res: &Resolved,
    specs: &[(u32, bool)],
    move_meta: bool,
) -> Result<(), ApiError> {
    if specs.is_empty() {
        return Err(ApiError::bad_request("At least one sort spec is required."));
    }
    for (col, _) in specs {
        if *col < res.c0 || *col > res.c1 {
            return Err(ApiError::bad_request(
                "The sort column must be inside the range.",
            ));
        }
    }
    let mut order: Vec<(u32, Vec<SortKey>)> = {
        let mut ev = Evaluator::new(ss);
        (res.r0..=res.r1)
            .map(|r| {
                (
                    r,
                    specs
                        .iter()
                        .map(|(c, _)| sort_key(&ev.cell(res.sheet, r, *c)))
                        .collect(),
                )
            })
            .collect()
    };
    order.sort_by(|a, b| {
        for (k, (_, asc)) in specs.iter().enumerate() {
            let (ka, kb) = (&a.1[k], &b.1[k]);
            let o = if ka.0 == 4 || kb.0 == 4 {
                ka.0.cmp(&kb.0)
            } else {
                let o =
                    ka.0.cmp(&kb.0)
                        .then(ka.1.partial_cmp(&kb.1).unwrap_or(std::cmp::Ordering::Equal))
                        .then(ka.2.cmp(&kb.2));
                if *asc {
                    o
                } else {
                    o.reverse()
                }
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let grid = &ss.sheets[res.sheet].grid;
    let old: Vec<Vec<Cell>> = (res.r0..=res.r1)
        .map(|r| {
            (res.c0..=res.c1)
                .map(|c| grid.get(r, c).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let grid = &mut ss.sheets[res.sheet].grid;
    for (k, (src, _)) in order.iter().enumerate() {
        let r = res.r0 + k as u32;
        for (j, cell) in old[(src - res.r0) as usize].iter().enumerate() {
            grid.set(r, res.c0 + j as u32, cell.clone());
        }
    }
    if move_meta {
        let sid = ss.sheets[res.sheet].props.sheet_id;
        let map: std::collections::HashMap<u32, u32> = order
            .iter()
            .enumerate()
            .map(|(k, (src, _))| (*src, res.r0 + k as u32))
            .collect();
        for m in &mut ss.metadata {
            if let Some(idx) = m.location.dim_index_mut(sid, true) {
                if let Some(n) = map.get(idx) {
                    *idx = *n;
                }
            }
        }
    }
    Ok(())
}
