//! `spreadsheets.batchUpdate` (spec §4.9): requests applied in order, all or nothing.

use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::update_paths;
use super::metadata;
use super::sheets::{
    apply_patch, check_cap, open, parse_cell_data, sheet_from_props, spreadsheet_json,
};
use crate::a1;
use crate::model::{Cell, CellValue, DevMeta, MetaLocation, Spreadsheet};
use crate::values::ops::{self, Resolved};
use crate::Shared;

/// Request kinds the discovery document knows (rev. 20261019).
const KNOWN: &[&str] = &[
    "addBanding",
    "addChart",
    "addCommentReply",
    "addConditionalFormatRule",
    "addDataSource",
    "addDimensionGroup",
    "addFilterView",
    "addNamedRange",
    "addProtectedRange",
    "addSheet",
    "addSlicer",
    "addTable",
    "appendCells",
    "appendDimension",
    "autoFill",
    "autoResizeDimensions",
    "cancelDataSourceRefresh",
    "clearBasicFilter",
    "copyPaste",
    "createDeveloperMetadata",
    "cutPaste",
    "deleteBanding",
    "deleteComment",
    "deleteCommentReply",
    "deleteConditionalFormatRule",
    "deleteDataSource",
    "deleteDeveloperMetadata",
    "deleteDimension",
    "deleteDimensionGroup",
    "deleteDuplicates",
    "deleteEmbeddedObject",
    "deleteFilterView",
    "deleteNamedRange",
    "deleteProtectedRange",
    "deleteRange",
    "deleteSheet",
    "deleteTable",
    "duplicateFilterView",
    "duplicateSheet",
    "findReplace",
    "insertComment",
    "insertDimension",
    "insertRange",
    "mergeCells",
    "moveDimension",
    "pasteData",
    "randomizeRange",
    "refreshDataSource",
    "repeatCell",
    "setBasicFilter",
    "setDataValidation",
    "sortRange",
    "textToColumns",
    "trimWhitespace",
    "unmergeCells",
    "updateBanding",
    "updateBorders",
    "updateCells",
    "updateChartSpec",
    "updateCommentPost",
    "updateConditionalFormatRule",
    "updateDataSource",
    "updateDeveloperMetadata",
    "updateDimensionGroup",
    "updateDimensionProperties",
    "updateEmbeddedObjectBorder",
    "updateEmbeddedObjectPosition",
    "updateFilterView",
    "updateNamedRange",
    "updateProtectedRange",
    "updateSheetProperties",
    "updateSlicerSpec",
    "updateSpreadsheetProperties",
    "updateTable",
];

/// Context of one batch.
pub(crate) struct Ctx<'a> {
    /// Shared state (ids, clock).
    pub shared: &'a Shared,
    /// Cell cap.
    pub limit: u64,
}

fn sheet_idx(ss: &Spreadsheet, v: Option<&Value>) -> Result<usize, ApiError> {
    let id = v.and_then(Value::as_i64).unwrap_or(0) as i32;
    ss.sheet_index_by_id(id)
        .ok_or_else(|| ApiError::bad_request(format!("No grid with id: {id}")))
}

fn u32_of(v: &Value, k: &str) -> Option<u32> {
    v.get(k).and_then(Value::as_u64).map(|x| x as u32)
}

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
        return Err(super::sheets::cap_error(limit));
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
    ops::adjust_formulas(
        ss,
        si,
        crate::values::formula::Shift {
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
    ops::adjust_formulas(
        ss,
        si,
        crate::values::formula::Shift {
            rows,
            at: start,
            n,
            insert: false,
        },
    );
    Ok(())
}

fn dim_is_rows(v: Option<&Value>) -> Result<bool, ApiError> {
    match v.and_then(Value::as_str) {
        Some("ROWS") => Ok(true),
        Some("COLUMNS") => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "Invalid dimension: {}",
            other.unwrap_or("DIMENSION_UNSPECIFIED")
        ))),
    }
}

fn grid_range(ss: &Spreadsheet, v: &Value) -> Result<Resolved, ApiError> {
    let si = sheet_idx(ss, v.get("sheetId"))?;
    let sh = &ss.sheets[si];
    let r0 = u32_of(v, "startRowIndex").unwrap_or(0);
    let c0 = u32_of(v, "startColumnIndex").unwrap_or(0);
    let r1 = u32_of(v, "endRowIndex").unwrap_or(sh.props.row_count);
    let c1 = u32_of(v, "endColumnIndex").unwrap_or(sh.props.column_count);
    if r1 > sh.props.row_count || c1 > sh.props.column_count || r0 >= r1 || c0 >= c1 {
        let text = a1::format_range(
            &sh.props.title,
            r0,
            c0,
            r1.saturating_sub(1).max(r0),
            c1.saturating_sub(1).max(c0),
            false,
        );
        return Err(ops::grid_error(
            &text,
            sh.props.row_count,
            sh.props.column_count,
        ));
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

fn update_cells(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let fields = req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    let paths = update_paths(fields);
    let all = paths.iter().any(|p| p == "*");
    let want = |p: &str| {
        all || paths
            .iter()
            .any(|x| x == p || x.starts_with(&format!("{p}.")))
    };
    let (want_value, want_format, want_note) = (
        want("userEnteredValue"),
        want("userEnteredFormat"),
        want("note"),
    );
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
    let h = rows.len() as u32;
    let w = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let (target, clear_rest) = if let Some(start) = req.get("start") {
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
        (
            Resolved {
                sheet: si,
                r0,
                c0,
                r1,
                c1,
                single: false,
            },
            false,
        )
    } else if let Some(range) = req.get("range") {
        (grid_range(ss, range)?, true)
    } else {
        return Err(ApiError::bad_request("Either start or range must be set."));
    };
    // Parse everything first (atomicity within the request).
    let mut patches = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for (j, cd) in row.iter().enumerate() {
            let r = target.r0 + i as u32;
            let c = target.c0 + j as u32;
            if r > target.r1 || c > target.c1 {
                continue;
            }
            let mut p = parse_cell_data(cd)?;
            if !want_value {
                p.value = None;
            } else if p.value.is_none() {
                p.value = Some(None);
            }
            if !want_format {
                p.format = None;
            } else if p.format.is_none() {
                p.format = Some(None);
            }
            if !want_note {
                p.note = None;
            } else if p.note.is_none() {
                p.note = Some(None);
            }
            patches.push((r, c, p));
        }
    }
    let grid = &mut ss.sheets[target.sheet].grid;
    if clear_rest {
        let clear = super::sheets::CellPatch {
            value: want_value.then_some(None),
            format: want_format.then_some(None),
            note: want_note.then_some(None),
        };
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
                apply_patch(&mut cell, &clear);
                grid.set(r, c, cell);
            }
        }
    }
    for (r, c, p) in patches {
        let mut cell = grid.get(r, c).cloned().unwrap_or_default();
        apply_patch(&mut cell, &p);
        grid.set(r, c, cell);
    }
    Ok(())
}

/// `appendCells`: typed rows after the last row with data, growing the sheet if needed.
fn append_cells(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
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
    if req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let start = ss.sheets[si].grid.last_value_row().map_or(0, |r| r + 1);
    let p = &ss.sheets[si].props;
    let (rows0, cols0) = (p.row_count, p.column_count);
    let (rows1, cols1) = (rows0.max(start + rows.len() as u32), cols0.max(width));
    let extra = u64::from(rows1) * u64::from(cols1) - u64::from(rows0) * u64::from(cols0);
    if ss.total_cells() + extra > ctx.limit {
        return Err(super::sheets::cap_error(ctx.limit));
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

/// What `copyPaste` takes from each source cell (`pasteType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasteType {
    /// `PASTE_NORMAL` / `PASTE_NO_BORDERS`: the whole cell (value, formula, format, note).
    Normal,
    /// `PASTE_VALUES`: the computed value only.
    Values,
    /// `PASTE_FORMAT`: the number format only.
    Format,
    /// `PASTE_FORMULA`: the entered value or formula only.
    Formula,
}

fn paste_type(v: Option<&Value>) -> Result<PasteType, ApiError> {
    match v.and_then(Value::as_str) {
        None | Some("PASTE_NORMAL") | Some("PASTE_NO_BORDERS") => Ok(PasteType::Normal),
        Some("PASTE_VALUES") => Ok(PasteType::Values),
        Some("PASTE_FORMAT") => Ok(PasteType::Format),
        Some("PASTE_FORMULA") => Ok(PasteType::Formula),
        Some(k @ ("PASTE_DATA_VALIDATION" | "PASTE_CONDITIONAL_FORMATTING")) => Err(
            ApiError::bad_request(format!("Unsupported pasteType: {k} (emulator)")),
        ),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid value at 'paste_type' (type.googleapis.com/google.apps.sheets.v4.PasteType), \"{other}\""
        ))),
    }
}

fn check_paste_orientation(v: Option<&Value>) -> Result<(), ApiError> {
    match v.and_then(Value::as_str) {
        None | Some("NORMAL") => Ok(()),
        Some("TRANSPOSE") => Err(ApiError::bad_request(
            "Unsupported pasteOrientation: TRANSPOSE (the emulator pastes NORMAL only)",
        )),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid value at 'paste_orientation' (type.googleapis.com/google.apps.sheets.v4.PasteOrientation), \"{other}\""
        ))),
    }
}

/// The span pasted along one dimension: a destination that is a multiple of the source repeats
/// the source to fill it; any other destination gets the source once from its start (beyond
/// its end if it is smaller).
fn paste_span(source: u32, destination: u32) -> u32 {
    if destination >= source && destination.is_multiple_of(source) {
        destination
    } else {
        source
    }
}

/// The computed value of a cell as an entered value (`PASTE_VALUES`); errors paste as text.
fn computed_value(e: crate::values::Eff) -> Option<CellValue> {
    use crate::values::Eff;
    match e {
        Eff::Empty => None,
        Eff::Num(n) => Some(CellValue::Number(n)),
        Eff::Text(s) => Some(CellValue::Text(s)),
        Eff::Bool(b) => Some(CellValue::Bool(b)),
        Eff::Err(k) => Some(CellValue::Text(k.text().to_string())),
    }
}

/// A source cell as `copyPaste` reads it (before anything is pasted).
struct Copied {
    cell: Cell,
    computed: Option<CellValue>,
}

fn copy_source(ss: &Spreadsheet, src: &Resolved, want_computed: bool) -> Vec<Vec<Copied>> {
    let mut ev = crate::values::Evaluator::new(ss);
    let grid = &ss.sheets[src.sheet].grid;
    (src.r0..=src.r1)
        .map(|r| {
            (src.c0..=src.c1)
                .map(|c| Copied {
                    cell: grid.get(r, c).cloned().unwrap_or_default(),
                    computed: if want_computed {
                        computed_value(ev.cell(src.sheet, r, c))
                    } else {
                        None
                    },
                })
                .collect()
        })
        .collect()
}

/// The destination cell after pasting `from` into `to`; formulas move by (`dr`, `dc`).
fn pasted_cell(kind: PasteType, from: &Copied, to: Option<&Cell>, dr: i64, dc: i64) -> Cell {
    let moved = || match &from.cell.value {
        Some(CellValue::Formula(f)) => Some(CellValue::Formula(
            crate::values::formula::offset_references(f, dr, dc),
        )),
        other => other.clone(),
    };
    let mut cell = to.cloned().unwrap_or_default();
    match kind {
        PasteType::Normal => {
            cell = from.cell.clone();
            cell.value = moved();
        }
        PasteType::Values => cell.value = from.computed.clone(),
        PasteType::Format => cell.format = from.cell.format.clone(),
        PasteType::Formula => cell.value = moved(),
    }
    cell
}

/// `copyPaste`: copies a source range (possibly from another sheet) to a destination, repeated
/// when the destination is a multiple of the source. The pasted area must fit the grid.
fn copy_paste(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let kind = paste_type(req.get("pasteType"))?;
    check_paste_orientation(req.get("pasteOrientation"))?;
    let (Some(source), Some(destination)) = (req.get("source"), req.get("destination")) else {
        return Err(ApiError::bad_request(
            "Both source and destination must be set.",
        ));
    };
    let src = grid_range(ss, source)?;
    let dst = grid_range(ss, destination)?;
    let (h, w) = (src.r1 - src.r0 + 1, src.c1 - src.c0 + 1);
    let rows = paste_span(h, dst.r1 - dst.r0 + 1);
    let cols = paste_span(w, dst.c1 - dst.c0 + 1);
    let (r1, c1) = (dst.r0 + rows - 1, dst.c0 + cols - 1);
    let props = &ss.sheets[dst.sheet].props;
    if r1 >= props.row_count || c1 >= props.column_count {
        let text = a1::format_range(&props.title, dst.r0, dst.c0, r1, c1, false);
        return Err(ops::grid_error(&text, props.row_count, props.column_count));
    }
    let copied = copy_source(ss, &src, kind == PasteType::Values);
    let grid = &mut ss.sheets[dst.sheet].grid;
    for i in 0..rows {
        for j in 0..cols {
            let (r, c) = (dst.r0 + i, dst.c0 + j);
            let (si, sj) = (i % h, j % w);
            let dr = i64::from(r) - i64::from(src.r0 + si);
            let dc = i64::from(c) - i64::from(src.c0 + sj);
            let from = &copied[si as usize][sj as usize];
            let cell = pasted_cell(kind, from, grid.get(r, c), dr, dc);
            grid.set(r, c, cell);
        }
    }
    Ok(())
}

fn update_sheet_properties(ss: &mut Spreadsheet, req: &Value, limit: u64) -> Result<(), ApiError> {
    let props = req.get("properties").cloned().unwrap_or(json!({}));
    let fields = req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    let si = sheet_idx(ss, props.get("sheetId"))?;
    let paths = update_paths(fields);
    let all = paths.iter().any(|p| p == "*");
    let has = |p: &str| {
        all || paths
            .iter()
            .any(|x| x == p || p.starts_with(&format!("{x}.")))
    };
    let before = ss.sheets[si].clone();
    let gp = props.get("gridProperties").cloned().unwrap_or(json!({}));
    let mut sh = before.clone();
    if has("title") {
        let t = props
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if t.is_empty() {
            return Err(ApiError::bad_request("The sheet name cannot be empty."));
        }
        if ss
            .sheets
            .iter()
            .enumerate()
            .any(|(i, s)| i != si && s.props.title == t)
        {
            return Err(ApiError::bad_request(format!(
                "A sheet with the name \"{t}\" already exists. Please enter another name."
            )));
        }
        sh.props.title = t;
    }
    if has("hidden") {
        sh.props.hidden = props
            .get("hidden")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    if has("tabColor") {
        sh.props.tab_color = props.get("tabColor").cloned();
    }
    if has("gridProperties.rowCount") {
        sh.props.row_count = u32_of(&gp, "rowCount").unwrap_or(0);
    }
    if has("gridProperties.columnCount") {
        sh.props.column_count = u32_of(&gp, "columnCount").unwrap_or(0);
    }
    if has("gridProperties.frozenRowCount") {
        sh.props.frozen_row_count = u32_of(&gp, "frozenRowCount").unwrap_or(0);
    }
    if has("gridProperties.frozenColumnCount") {
        sh.props.frozen_column_count = u32_of(&gp, "frozenColumnCount").unwrap_or(0);
    }
    if sh.props.row_count == 0 || sh.props.column_count == 0 {
        return Err(ApiError::bad_request(
            "A sheet must have at least one row and one column.",
        ));
    }
    if sh.props.column_count > a1::MAX_COLUMNS {
        return Err(ApiError::bad_request(format!(
            "This action would increase the number of columns in the sheet above the limit of {}.",
            a1::MAX_COLUMNS
        )));
    }
    let new_total = ss.total_cells() - before.cells() + sh.cells();
    if new_total > limit && sh.cells() > before.cells() {
        return Err(super::sheets::cap_error(limit));
    }
    sh.grid.truncate(sh.props.row_count, sh.props.column_count);
    let (rows, cols, sid) = (sh.props.row_count, sh.props.column_count, sh.props.sheet_id);
    ss.sheets[si] = sh;
    ss.metadata.retain(|m| match m.location {
        MetaLocation::Dimension {
            sheet_id,
            rows: true,
            index,
        } if sheet_id == sid => index < rows,
        MetaLocation::Dimension {
            sheet_id,
            rows: false,
            index,
        } if sheet_id == sid => index < cols,
        _ => true,
    });
    if has("index") {
        if let Some(idx) = u32_of(&props, "index") {
            let s = ss.sheets.remove(si);
            let idx = (idx as usize).min(ss.sheets.len());
            ss.sheets.insert(idx, s);
        }
    }
    Ok(())
}

fn add_sheet(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let props = req.get("properties").cloned().unwrap_or(json!({}));
    let sid = match props.get("sheetId").and_then(Value::as_i64) {
        Some(id) => {
            let id = id as i32;
            if ss.sheet_index_by_id(id).is_some() {
                return Err(ApiError::bad_request(format!(
                    "Sheet with ID {id} already exists. Please enter another ID."
                )));
            }
            id
        }
        None => loop {
            let id = ctx.shared.rng.lock().positive_i32();
            if ss.sheet_index_by_id(id).is_none() {
                break id;
            }
        },
    };
    let mut n = ss.sheets.len() + 1;
    let default_title = loop {
        let t = format!("Sheet{n}");
        if ss.sheet_index_by_title(&t).is_none() {
            break t;
        }
        n += 1;
    };
    let sheet = sheet_from_props(&props, sid, &default_title);
    if ss.sheets.iter().any(|s| s.props.title == sheet.props.title) {
        return Err(ApiError::bad_request(format!(
            "A sheet with the name \"{}\" already exists. Please enter another name.",
            sheet.props.title
        )));
    }
    if ss.total_cells() + sheet.cells() > ctx.limit {
        return Err(super::sheets::cap_error(ctx.limit));
    }
    let idx =
        u32_of(&props, "index").map_or(ss.sheets.len(), |i| (i as usize).min(ss.sheets.len()));
    ss.sheets.insert(idx, sheet);
    Ok(json!({"addSheet": {"properties": ss.sheets[idx].properties_json(idx)}}))
}

fn create_meta(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let dm = req.get("developerMetadata").cloned().unwrap_or(json!({}));
    let key = dm
        .get("metadataKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if key.is_empty() {
        return Err(ApiError::bad_request("Developer metadata must have a key."));
    }
    let visibility = dm
        .get("visibility")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if visibility != "DOCUMENT" && visibility != "PROJECT" {
        return Err(ApiError::bad_request(
            "Developer metadata must specify a visibility (DOCUMENT or PROJECT).",
        ));
    }
    let loc = dm.get("location").cloned().unwrap_or(json!({}));
    let location = metadata::parse_location(ss, &loc, true)?;
    let id = match dm.get("metadataId").and_then(Value::as_i64) {
        Some(id) if id <= 0 => {
            return Err(ApiError::bad_request(
                "Developer metadata ID must be positive.",
            ))
        }
        Some(id) => {
            let id = id as i32;
            if ss.metadata.iter().any(|m| m.id == id) {
                return Err(ApiError::bad_request(format!(
                    "Developer metadata with ID {id} already exists."
                )));
            }
            id
        }
        None => loop {
            let id = ctx.shared.rng.lock().positive_i32();
            if !ss.metadata.iter().any(|m| m.id == id) {
                break id;
            }
        },
    };
    let m = DevMeta {
        id,
        key: key.to_string(),
        value: dm
            .get("metadataValue")
            .and_then(Value::as_str)
            .map(str::to_string),
        visibility: visibility.to_string(),
        location,
    };
    let out = m.to_json();
    ss.metadata.push(m);
    Ok(json!({"createDeveloperMetadata": {"developerMetadata": out}}))
}

fn update_meta(ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let filters = req
        .get("dataFilters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let dm = req.get("developerMetadata").cloned().unwrap_or(json!({}));
    let fields = req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    let paths = update_paths(fields);
    let all = paths.iter().any(|p| p == "*");
    let has = |p: &str| {
        all || paths
            .iter()
            .any(|x| x == p || x.starts_with(&format!("{p}.")))
    };
    let new_loc = if has("location") {
        Some(metadata::parse_location(
            ss,
            dm.get("location").unwrap_or(&json!({})),
            true,
        )?)
    } else {
        None
    };
    let mut matched = Vec::new();
    for (i, m) in ss.metadata.iter().enumerate() {
        let mut hit = false;
        for f in &filters {
            hit |= metadata::matches(ss, m, f)?;
        }
        if hit {
            matched.push(i);
        }
    }
    let mut out = Vec::new();
    for i in matched {
        let m = &mut ss.metadata[i];
        if has("metadataKey") {
            m.key = dm
                .get("metadataKey")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
        if has("metadataValue") {
            m.value = dm
                .get("metadataValue")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if has("visibility") {
            m.visibility = dm
                .get("visibility")
                .and_then(Value::as_str)
                .unwrap_or("DOCUMENT")
                .to_string();
        }
        if let Some(l) = &new_loc {
            m.location = l.clone();
        }
        out.push(m.to_json());
    }
    Ok(json!({"updateDeveloperMetadata": {"developerMetadata": out}}))
}

fn delete_meta(ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let f = req.get("dataFilter").cloned().unwrap_or(json!({}));
    let mut deleted = Vec::new();
    let mut keep = Vec::new();
    for m in ss.metadata.clone() {
        if metadata::matches(ss, &m, &f)? {
            deleted.push(m.to_json());
        } else {
            keep.push(m);
        }
    }
    ss.metadata = keep;
    Ok(json!({"deleteDeveloperMetadata": {"deletedDeveloperMetadata": deleted}}))
}

fn update_spreadsheet_properties(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let props = req.get("properties").cloned().unwrap_or(json!({}));
    let fields = req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    let paths = update_paths(fields);
    let all = paths.iter().any(|p| p == "*");
    let has = |p: &str| all || paths.iter().any(|x| x == p);
    let s = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    if has("title") {
        ss.title = s("title").unwrap_or_default();
    }
    if has("locale") {
        if let Some(v) = s("locale") {
            ss.locale = v;
        }
    }
    if has("timeZone") {
        if let Some(v) = s("timeZone") {
            ss.time_zone = v;
        }
    }
    if has("autoRecalc") {
        if let Some(v) = s("autoRecalc") {
            ss.auto_recalc = v;
        }
    }
    Ok(())
}

/// Applies one request; returns its reply.
fn apply_one(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    kind: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    match kind {
        "addSheet" => add_sheet(ctx, ss, req),
        "deleteSheet" => {
            let si = sheet_idx(ss, req.get("sheetId"))?;
            if ss.sheets.len() == 1 {
                return Err(ApiError::bad_request(
                    "You can't remove all the sheets in a document.",
                ));
            }
            let sid = ss.sheets[si].props.sheet_id;
            ss.sheets.remove(si);
            ss.metadata.retain(|m| match m.location {
                MetaLocation::Sheet(s) => s != sid,
                MetaLocation::Dimension { sheet_id, .. } => sheet_id != sid,
                MetaLocation::Spreadsheet => true,
            });
            Ok(json!({}))
        }
        "updateSheetProperties" => update_sheet_properties(ss, req, ctx.limit).map(|()| json!({})),
        "insertDimension" | "deleteDimension" => {
            let range = req.get("range").cloned().unwrap_or(json!({}));
            let si = sheet_idx(ss, range.get("sheetId"))?;
            let rows = dim_is_rows(range.get("dimension"))?;
            let (Some(start), Some(end)) =
                (u32_of(&range, "startIndex"), u32_of(&range, "endIndex"))
            else {
                return Err(ApiError::bad_request(
                    "Both the start and end indexes must be bounded.",
                ));
            };
            if kind == "insertDimension" {
                if req.get("inheritFromBefore").and_then(Value::as_bool) == Some(true) && start == 0
                {
                    return Err(ApiError::bad_request(
                        "Cannot inherit from before when inserting at the first index.",
                    ));
                }
                insert_dimension(ss, si, rows, start, end, ctx.limit)?;
            } else {
                delete_dimension(ss, si, rows, start, end)?;
            }
            Ok(json!({}))
        }
        "appendDimension" => {
            let si = sheet_idx(ss, req.get("sheetId"))?;
            let rows = dim_is_rows(req.get("dimension"))?;
            let len = u32_of(req, "length").unwrap_or(0);
            if len == 0 {
                return Err(ApiError::bad_request("length must be positive."));
            }
            let count = if rows {
                ss.sheets[si].props.row_count
            } else {
                ss.sheets[si].props.column_count
            };
            insert_dimension(ss, si, rows, count, count + len, ctx.limit)?;
            Ok(json!({}))
        }
        "updateCells" => update_cells(ss, req).map(|()| json!({})),
        "copyPaste" => copy_paste(ss, req).map(|()| json!({})),
        "appendCells" => append_cells(ctx, ss, req).map(|()| json!({})),
        "moveDimension" => {
            let src = req.get("source").cloned().unwrap_or(json!({}));
            let si = sheet_idx(ss, src.get("sheetId"))?;
            let rows = dim_is_rows(src.get("dimension"))?;
            let (Some(start), Some(end)) = (u32_of(&src, "startIndex"), u32_of(&src, "endIndex"))
            else {
                return Err(ApiError::bad_request(
                    "Both the start and end indexes must be bounded.",
                ));
            };
            let dest = u32_of(req, "destinationIndex").unwrap_or(0);
            ops::move_dimension(ss, si, rows, start, end.saturating_sub(start), dest, true)?;
            Ok(json!({}))
        }
        "sortRange" => {
            let res = grid_range(ss, req.get("range").unwrap_or(&json!({})))?;
            let specs: Vec<(u32, bool)> = req
                .get("sortSpecs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            (
                                u32_of(s, "dimensionIndex").unwrap_or(0),
                                s.get("sortOrder").and_then(Value::as_str) != Some("DESCENDING"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let follow = ctx.shared.config.read().metadata_follows_person_moves;
            ops::sort_rows(ss, &res, &specs, follow)?;
            Ok(json!({}))
        }
        "createDeveloperMetadata" => create_meta(ctx, ss, req),
        "updateDeveloperMetadata" => update_meta(ss, req),
        "deleteDeveloperMetadata" => delete_meta(ss, req),
        "updateSpreadsheetProperties" => update_spreadsheet_properties(ss, req).map(|()| json!({})),
        other => Err(ApiError::bad_request(format!(
            "Unsupported request: {other}"
        ))),
    }
}

/// Applies a list of requests; on the first error nothing is applied.
pub(crate) fn apply_requests(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    requests: &[Value],
) -> Result<Vec<Value>, ApiError> {
    // Validate shapes first.
    let mut kinds = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let obj = r.as_object().ok_or_else(|| {
            ApiError::bad_request(format!("Invalid value at 'requests[{i}]' (type.googleapis.com/google.apps.sheets.v4.Request), {r}"))
        })?;
        for k in obj.keys() {
            if !KNOWN.contains(&k.as_str()) {
                let mut e = ApiError::bad_request(format!(
                    "Invalid JSON payload received. Unknown name \"{k}\" at 'requests[{i}]': Cannot find field."
                ));
                e.details = Some(json!([{
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": format!("requests[{i}]"),
                        "description": format!("Invalid JSON payload received. Unknown name \"{k}\" at 'requests[{i}]': Cannot find field.")}]
                }]));
                return Err(e);
            }
        }
        if obj.len() != 1 {
            return Err(ApiError::bad_request(format!(
                "Invalid requests[{i}]: A request must set exactly one kind of request."
            )));
        }
        let (k, v) = obj.iter().next().expect("one key");
        kinds.push((k.clone(), v.clone()));
    }
    let mut work = if requests.len() > 1 {
        Some(ss.clone())
    } else {
        None
    };
    let mut replies = Vec::new();
    {
        let target: &mut Spreadsheet = match work.as_mut() {
            Some(w) => w,
            None => ss,
        };
        for (i, (k, v)) in kinds.iter().enumerate() {
            let reply = apply_one(ctx, target, k, v)
                .map_err(|e| e.prefixed(&format!("Invalid requests[{i}].{k}: ")))?;
            replies.push(reply);
        }
        check_cap(target, ctx.limit)?;
    }
    if let Some(w) = work {
        *ss = w;
    }
    Ok(replies)
}

/// `spreadsheets.batchUpdate`.
pub(crate) fn batch_update(shared: &Shared, id: &str, body: &Value) -> Result<Value, ApiError> {
    super::sheets::check_fields(
        body,
        &[
            "requests",
            "includeSpreadsheetInResponse",
            "responseRanges",
            "responseIncludeGridData",
        ],
        None,
    )?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (limit, clip) = {
        let c = shared.config.read();
        (c.cell_limit, c.clip_explicit_ranges)
    };
    let ctx = Ctx { shared, limit };
    let ss = open(shared, id)?;
    let mut ss = ss.write();
    let replies = apply_requests(&ctx, &mut ss, &requests)?;
    if !requests.is_empty() {
        shared.touch(&mut ss);
    }
    let mut out = json!({"spreadsheetId": ss.id, "replies": replies});
    if body
        .get("includeSpreadsheetInResponse")
        .and_then(Value::as_bool)
        == Some(true)
    {
        let ranges: Vec<Resolved> = body
            .get("responseRanges")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|r| ops::resolve(&ss, r, clip))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let grid = body.get("responseIncludeGridData").and_then(Value::as_bool) == Some(true);
        out["updatedSpreadsheet"] = spreadsheet_json(&ss, grid, &ranges);
    }
    Ok(out)
}
