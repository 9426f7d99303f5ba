//! Values-API operations on one spreadsheet: range resolution, reads with Google's trimming,
//! writes with Google's counting, append table detection and clear.

use serde_json::{json, Map, Value};

use super::formula::Evaluator;
use super::input::{from_json, InputOption, Write};
use super::render::{render_cell, RenderOpts};
use crate::a1;
use crate::error::ApiError;
use crate::model::{Cell, Spreadsheet};

/// Largest number of characters in one cell.
pub const MAX_CELL_CHARS: usize = 50_000;

/// A range resolved against a spreadsheet (inclusive bounds, zero-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Sheet index.
    pub sheet: usize,
    /// First row.
    pub r0: u32,
    /// First column.
    pub c0: u32,
    /// Last row (inclusive).
    pub r1: u32,
    /// Last column (inclusive).
    pub c1: u32,
    /// Input was a single cell.
    pub single: bool,
}

impl Resolved {
    /// Normalised A1 text (`Sheet1!A1:D4`).
    pub fn a1(&self, ss: &Spreadsheet) -> String {
        a1::format_range(
            &ss.sheets[self.sheet].props.title,
            self.r0,
            self.c0,
            self.r1,
            self.c1,
            self.single,
        )
    }
}

/// `majorDimension`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Major {
    /// Rows (default).
    Rows,
    /// Columns.
    Columns,
}

impl Major {
    /// Parses the API name (`DIMENSION_UNSPECIFIED` = rows).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ROWS" | "DIMENSION_UNSPECIFIED" | "" => Some(Major::Rows),
            "COLUMNS" => Some(Major::Columns),
            _ => None,
        }
    }

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Major::Rows => "ROWS",
            Major::Columns => "COLUMNS",
        }
    }
}

/// `Range (<range>) exceeds grid limits. Max rows: R, max columns: C`.
pub fn grid_error(range_text: &str, rows: u32, cols: u32) -> ApiError {
    ApiError::bad_request(format!(
        "Range ({range_text}) exceeds grid limits. Max rows: {rows}, max columns: {cols}"
    ))
}

/// Resolves A1 text. `clip_explicit` clips explicitly bounded ends beyond the grid instead of
/// failing (spec §3.4 leaves this open; the default is to fail).
pub fn resolve(ss: &Spreadsheet, text: &str, clip_explicit: bool) -> Result<Resolved, ApiError> {
    let parsed = a1::parse(text).ok_or_else(|| ApiError::unparsable_range(text))?;
    let sheet = match &parsed.sheet {
        Some(name) => ss
            .sheet_index_by_title(name)
            .ok_or_else(|| ApiError::unparsable_range(text))?,
        None => ss
            .first_visible()
            .ok_or_else(|| ApiError::unparsable_range(text))?,
    };
    let sh = &ss.sheets[sheet];
    let (rows, cols) = (sh.props.row_count, sh.props.column_count);
    let Some(part) = parsed.cells else {
        if rows == 0 || cols == 0 {
            return Err(grid_error(&a1::quote_title(&sh.props.title), rows, cols));
        }
        return Ok(Resolved {
            sheet,
            r0: 0,
            c0: 0,
            r1: rows - 1,
            c1: cols - 1,
            single: false,
        });
    };
    let shown = format!("{}!{}", a1::quote_title(&sh.props.title), parsed.cells_text);
    let r0 = part.start_row.unwrap_or(0);
    let c0 = part.start_col.unwrap_or(0);
    if r0 >= rows || c0 >= cols {
        return Err(grid_error(&shown, rows, cols));
    }
    let mut r1 = part.end_row.unwrap_or(rows - 1);
    let mut c1 = part.end_col.unwrap_or(cols - 1);
    if r1 >= rows || c1 >= cols {
        if !clip_explicit {
            return Err(grid_error(&shown, rows, cols));
        }
        r1 = r1.min(rows - 1);
        c1 = c1.min(cols - 1);
    }
    Ok(Resolved {
        sheet,
        r0,
        c0,
        r1,
        c1,
        single: part.single,
    })
}

/// The index of the tab whose `sheetId` is `v` (missing: 0).
pub fn sheet_of(ss: &Spreadsheet, v: Option<&Value>) -> Result<usize, ApiError> {
    let id = v.and_then(Value::as_i64).unwrap_or(0) as i32;
    ss.sheet_index_by_id(id)
        .ok_or_else(|| ApiError::bad_request(format!("No grid with id: {id}")))
}

/// Resolves a `GridRange` (a missing bound: to the edge of the grid), which must lie inside
/// the grid of the tab its `sheetId` names (missing: 0).
pub fn resolve_grid(ss: &Spreadsheet, v: &Value) -> Result<Resolved, ApiError> {
    let si = sheet_of(ss, v.get("sheetId"))?;
    let p = &ss.sheets[si].props;
    let bound = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as u32);
    let r0 = bound("startRowIndex").unwrap_or(0);
    let c0 = bound("startColumnIndex").unwrap_or(0);
    let r1 = bound("endRowIndex").unwrap_or(p.row_count);
    let c1 = bound("endColumnIndex").unwrap_or(p.column_count);
    if r1 > p.row_count || c1 > p.column_count || r0 >= r1 || c0 >= c1 {
        let text = a1::format_range(
            &p.title,
            r0,
            c0,
            r1.saturating_sub(1).max(r0),
            c1.saturating_sub(1).max(c0),
            false,
        );
        return Err(grid_error(&text, p.row_count, p.column_count));
    }
    Ok(Resolved {
        sheet: si,
        r0,
        c0,
        r1: r1 - 1,
        c1: c1 - 1,
        single: false,
    })
}

/// Reads a range as a `ValueRange` (trimmed as Google does; `values` omitted when empty).
pub fn read(ss: &Spreadsheet, res: &Resolved, major: Major, opts: RenderOpts) -> Value {
    let matrix = read_matrix(ss, res, opts);
    let mut out = Map::new();
    out.insert("range".into(), Value::String(res.a1(ss)));
    out.insert("majorDimension".into(), Value::String(major.name().into()));
    let rows: Vec<Value> = match major {
        Major::Rows => matrix
            .into_iter()
            .map(|row| {
                Value::Array(
                    row.into_iter()
                        .map(|v| v.unwrap_or_else(|| Value::String(String::new())))
                        .collect(),
                )
            })
            .collect(),
        Major::Columns => {
            let width = matrix.iter().map(Vec::len).max().unwrap_or(0);
            let mut cols: Vec<Vec<Option<Value>>> = vec![Vec::new(); width];
            for (i, row) in matrix.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    if let Some(v) = v {
                        let col = &mut cols[j];
                        col.resize(i, None);
                        col.push(Some(v.clone()));
                    }
                }
            }
            cols.into_iter()
                .map(|c| {
                    Value::Array(
                        c.into_iter()
                            .map(|v| v.unwrap_or_else(|| Value::String(String::new())))
                            .collect(),
                    )
                })
                .collect()
        }
    };
    if !rows.is_empty() {
        out.insert("values".into(), Value::Array(rows));
    }
    Value::Object(out)
}

/// Row-major matrix of rendered cells, trailing empties trimmed (`None` = empty cell).
pub fn read_matrix(ss: &Spreadsheet, res: &Resolved, opts: RenderOpts) -> Vec<Vec<Option<Value>>> {
    let sh = &ss.sheets[res.sheet];
    let mut ev = Evaluator::new(ss);
    let mut out: Vec<Vec<Option<Value>>> = Vec::new();
    for (r, row) in sh.grid.rows_in(res.r0, res.r1.saturating_add(1)) {
        let end = (res.c1 as usize + 1).min(row.len());
        let start = res.c0 as usize;
        if start >= end {
            continue;
        }
        let mut vals: Vec<Option<Value>> = Vec::with_capacity(end - start);
        for (k, cell) in row[start..end].iter().enumerate() {
            vals.push(render_cell(
                &mut ev,
                res.sheet,
                r,
                (start + k) as u32,
                cell,
                opts,
            ));
        }
        while vals.last().is_some_and(Option::is_none) {
            vals.pop();
        }
        if vals.is_empty() {
            continue;
        }
        let idx = (r - res.r0) as usize;
        out.resize_with(idx, Vec::new);
        out.push(vals);
    }
    out
}

/// Counts of a write (`UpdateValuesResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    /// `updatedRange`.
    pub range: String,
    /// `updatedRows`.
    pub rows: u32,
    /// `updatedColumns`.
    pub columns: u32,
    /// `updatedCells`.
    pub cells: u32,
    /// The rectangle written (for `includeValuesInResponse`).
    pub written: Option<Resolved>,
    /// Sheet rows (zero-based) in which at least one cell was written.
    pub touched_rows: Vec<u32>,
}

impl WriteResult {
    /// `UpdateValuesResponse` JSON (zero counts omitted, as proto3 JSON does).
    pub fn to_json(&self, spreadsheet_id: &str) -> Value {
        let mut v = json!({"spreadsheetId": spreadsheet_id, "updatedRange": self.range});
        if self.rows > 0 {
            v["updatedRows"] = json!(self.rows);
        }
        if self.columns > 0 {
            v["updatedColumns"] = json!(self.columns);
        }
        if self.cells > 0 {
            v["updatedCells"] = json!(self.cells);
        }
        v
    }
}

/// A parsed `values` matrix, row-major.
pub type Matrix = Vec<Vec<Write>>;

/// Validates and converts a `values` JSON matrix. `field` names it in errors (`data.values`).
pub fn parse_matrix(
    values: Option<&Value>,
    major: Major,
    opt: InputOption,
    field: &str,
) -> Result<Matrix, ApiError> {
    let Some(values) = values else {
        return Ok(Vec::new());
    };
    if values.is_null() {
        return Ok(Vec::new());
    }
    let arr = values.as_array().ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid value at '{field}' (type.googleapis.com/google.protobuf.ListValue), {values}"
        ))
    })?;
    let mut m: Matrix = Vec::with_capacity(arr.len());
    for (i, row) in arr.iter().enumerate() {
        let cells = row.as_array().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid value at '{field}[{i}]' (type.googleapis.com/google.protobuf.ListValue), {row}"
            ))
        })?;
        let mut out = Vec::with_capacity(cells.len());
        for (j, v) in cells.iter().enumerate() {
            let w = from_json(v, opt).ok_or_else(|| {
                let kind = if v.is_array() {
                    "list_value"
                } else {
                    "struct_value"
                };
                ApiError::bad_request(format!("Invalid values[{i}][{j}]: {kind} {{{v}}}"))
            })?;
            if let Write::Set(Some(crate::model::CellValue::Text(s)), _)
            | Write::Set(Some(crate::model::CellValue::Formula(s)), _) = &w
            {
                if s.chars().count() > MAX_CELL_CHARS {
                    return Err(ApiError::bad_request(format!(
                        "Your input contains more than the maximum of {MAX_CELL_CHARS} characters in a single cell."
                    )));
                }
            }
            out.push(w);
        }
        m.push(out);
    }
    if major == Major::Columns {
        let height = m.iter().map(Vec::len).max().unwrap_or(0);
        let mut t: Matrix = (0..height).map(|_| Vec::new()).collect();
        for (j, col) in m.into_iter().enumerate() {
            for (i, w) in col.into_iter().enumerate() {
                let row = &mut t[i];
                row.resize(j, Write::Skip);
                row.push(w);
            }
        }
        m = t;
    }
    Ok(m)
}

/// Checks that a matrix fits a target range (values.update semantics: never grow the grid).
pub fn check_fit(ss: &Spreadsheet, res: &Resolved, m: &Matrix) -> Result<(), ApiError> {
    let h = m.len() as u32;
    let w = m.iter().map(Vec::len).max().unwrap_or(0) as u32;
    if h == 0 || w == 0 {
        return Ok(());
    }
    let sh = &ss.sheets[res.sheet];
    if res.single {
        let (er, ec) = (res.r0 + h - 1, res.c0 + w - 1);
        if er >= sh.props.row_count || ec >= sh.props.column_count {
            let text = a1::format_range(&sh.props.title, res.r0, res.c0, er, ec, false);
            return Err(grid_error(&text, sh.props.row_count, sh.props.column_count));
        }
        return Ok(());
    }
    if h > res.r1 - res.r0 + 1 {
        return Err(ApiError::bad_request(format!(
            "Requested writing within range [{}], but tried writing to row [{}]",
            res.a1(ss),
            res.r1 + 2
        )));
    }
    if w > res.c1 - res.c0 + 1 {
        return Err(ApiError::bad_request(format!(
            "Requested writing within range [{}], but tried writing to column [{}]",
            res.a1(ss),
            a1::col_letters(res.c1 + 1)
        )));
    }
    Ok(())
}

/// Writes a matrix at the range's top-left corner (call [`check_fit`] first).
pub fn write(ss: &mut Spreadsheet, res: &Resolved, m: &Matrix) -> WriteResult {
    let h = m.len() as u32;
    let w = m.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let sheet = res.sheet;
    let title = ss.sheets[sheet].props.title.clone();
    if h == 0 || w == 0 {
        return WriteResult {
            range: res.a1(ss),
            ..WriteResult::default()
        };
    }
    let mut cols_touched = vec![false; w as usize];
    let mut rows = 0;
    let mut cells = 0;
    let mut touched_rows = Vec::new();
    let grid = &mut ss.sheets[sheet].grid;
    for (i, row) in m.iter().enumerate() {
        let r = res.r0 + i as u32;
        let mut any = false;
        for (j, wr) in row.iter().enumerate() {
            let Write::Set(v, f) = wr else { continue };
            let c = res.c0 + j as u32;
            any = true;
            cols_touched[j] = true;
            cells += 1;
            let mut cell: Cell = grid.get(r, c).cloned().unwrap_or_default();
            cell.value = v.clone();
            if let Some(f) = f {
                cell.format = Some(Box::new(f.clone()));
            }
            grid.set(r, c, cell);
        }
        if any {
            rows += 1;
            touched_rows.push(r);
        }
    }
    let written = Resolved {
        sheet,
        r0: res.r0,
        c0: res.c0,
        r1: res.r0 + h - 1,
        c1: res.c0 + w - 1,
        single: h == 1 && w == 1 && res.single,
    };
    WriteResult {
        range: a1::format_range(
            &title,
            written.r0,
            written.c0,
            written.r1,
            written.c1,
            written.single,
        ),
        rows,
        columns: cols_touched.iter().filter(|b| **b).count() as u32,
        cells,
        written: Some(written),
        touched_rows,
    }
}

/// Clears the values of a range (formats stay).
pub fn clear(ss: &mut Spreadsheet, res: &Resolved) {
    let grid = &mut ss.sheets[res.sheet].grid;
    let rows: Vec<u32> = grid
        .rows_in(res.r0, res.r1.saturating_add(1))
        .map(|(r, _)| r)
        .collect();
    for r in rows {
        let len = grid.row(r).map_or(0, <[Cell]>::len) as u32;
        for c in res.c0..=res.c1.min(len.saturating_sub(1)) {
            if len == 0 {
                break;
            }
            let mut cell = grid.get(r, c).cloned().unwrap_or_default();
            if cell.value.is_some() {
                cell.value = None;
                grid.set(r, c, cell);
            }
        }
    }
}

/// The last non-empty cell of a range in row-major order (where append's table search starts).
fn last_value_cell(ss: &Spreadsheet, res: &Resolved) -> Option<(u32, u32)> {
    let grid = &ss.sheets[res.sheet].grid;
    grid.rows_in(res.r0, res.r1.saturating_add(1))
        .rev()
        .find_map(|(r, row)| {
            let end = (res.c1 as usize + 1).min(row.len());
            (res.c0 as usize..end)
                .rev()
                .find(|c| row[*c].has_value())
                .map(|c| (r, c as u32))
        })
}

/// The run of non-empty cells of `row` that contains column `c` (which must hold a value).
fn run_around(row: &[Cell], c: usize) -> (usize, usize) {
    let mut a = c;
    while a > 0 && row[a - 1].has_value() {
        a -= 1;
    }
    let mut b = c;
    while b + 1 < row.len() && row[b + 1].has_value() {
        b += 1;
    }
    (a, b)
}

/// Bounding box `(r0, c0, r1, c1)` of the 4-connected block of non-empty cells that contains
/// `start`, over the whole sheet. Works on horizontal runs, so a block costs about its cells.
fn block_bounds(ss: &Spreadsheet, sheet: usize, start: (u32, u32)) -> (u32, u32, u32, u32) {
    let grid = &ss.sheets[sheet].grid;
    let rows = ss.sheets[sheet].props.row_count;
    let Some(first) = grid.row(start.0) else {
        return (start.0, start.1, start.0, start.1);
    };
    let (a, b) = run_around(first, start.1 as usize);
    let mut seen = std::collections::HashSet::new();
    seen.insert((start.0, a));
    let mut stack = vec![(start.0, a, b)];
    let (mut r0, mut r1) = (start.0, start.0);
    let (mut c0, mut c1) = (a, b);
    while let Some((r, a, b)) = stack.pop() {
        (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(a), c1.max(b));
        let neighbours = [r.checked_sub(1), (r + 1 < rows).then_some(r + 1)];
        for nr in neighbours.into_iter().flatten() {
            let Some(row) = grid.row(nr) else { continue };
            let mut c = a;
            while c <= b && c < row.len() {
                if !row[c].has_value() {
                    c += 1;
                    continue;
                }
                let (ra, rb) = run_around(row, c);
                if seen.insert((nr, ra)) {
                    stack.push((nr, ra, rb));
                }
                c = rb + 1;
            }
        }
    }
    (r0, c0 as u32, r1, c1 as u32)
}

/// Append table detection (spec §4.7, corrected): the range is where the search starts. With
/// no value in the range there is no table and the write starts at the range's top-left;
/// otherwise the table is the bounding box of the 4-connected block of non-empty cells (over
/// the whole sheet) around the range's last non-empty cell, and the write starts below it in
/// the block's first column. Returns (table, first row to write, first column to write).
pub fn find_table(ss: &Spreadsheet, res: &Resolved) -> (Option<Resolved>, u32, u32) {
    let Some(start) = last_value_cell(ss, res) else {
        return (None, res.r0, res.c0);
    };
    let (r0, c0, r1, c1) = block_bounds(ss, res.sheet, start);
    let table = Resolved {
        sheet: res.sheet,
        r0,
        c0,
        r1,
        c1,
        single: r0 == r1 && c0 == c1,
    };
    (Some(table), r1 + 1, c0)
}
