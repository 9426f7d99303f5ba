//! Sheets (tabs) and the spreadsheet itself: `addSheet`, `deleteSheet`,
//! `updateSheetProperties`, `updateSpreadsheetProperties`.

use serde_json::{json, Value};

use super::args::{sheet_idx, u32_of, update_fields, Ctx};

use crate::a1;
use crate::api::sheets::sheet_from_props;
use crate::error::ApiError;
use crate::model::{MetaLocation, Sheet, Spreadsheet};

/// `addSheet`: a new sheet (id chosen if not given, `SheetN` title by default).
pub(super) fn add_sheet(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    req: &Value,
) -> Result<Value, ApiError> {
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
        return Err(ApiError::over_cell_limit(ctx.limit));
    }
    let idx =
        u32_of(&props, "index").map_or(ss.sheets.len(), |i| (i as usize).min(ss.sheets.len()));
    ss.sheets.insert(idx, sheet);
    Ok(json!({"addSheet": {"properties": ss.sheets[idx].properties_json(idx)}}))
}

/// `deleteSheet` (not the last one); its metadata goes with it.
pub(super) fn delete_sheet(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let si = sheet_idx(ss, req.get("sheetId"))?;
    if ss.sheets.len() == 1 {
        return Err(ApiError::bad_request(
            "You can't remove all the sheets in a document.",
        ));
    }
    let sid = ss.sheets[si].props.sheet_id;
    ss.sheets.remove(si);
    super::protection::forget_sheet(ss, sid);
    ss.metadata.retain(|m| match m.location {
        MetaLocation::Sheet(s) => s != sid,
        MetaLocation::Dimension { sheet_id, .. } => sheet_id != sid,
        MetaLocation::Spreadsheet => true,
    });
    Ok(())
}

/// `updateSheetProperties`: the fields the mask names; a smaller grid drops the cells and
/// dimension metadata beyond it.
pub(super) fn update_sheet_properties(
    ss: &mut Spreadsheet,
    req: &Value,
    limit: u64,
) -> Result<(), ApiError> {
    let props = req.get("properties").cloned().unwrap_or(json!({}));
    let paths = update_fields(req)?;
    let si = sheet_idx(ss, props.get("sheetId"))?;
    let all = paths.iter().any(|p| p == "*");
    let has = |p: &str| {
        all || paths
            .iter()
            .any(|x| x == p || p.starts_with(&format!("{x}.")))
    };
    let before = ss.sheets[si].clone();
    let mut sh = before.clone();
    set_sheet_properties(ss, si, &mut sh, &props, &has)?;
    check_grid_size(ss, &before, &sh, limit)?;
    sh.grid.truncate(sh.props.row_count, sh.props.column_count);
    let (rows, cols, sid) = (sh.props.row_count, sh.props.column_count, sh.props.sheet_id);
    ss.sheets[si] = sh;
    drop_dimension_metadata_beyond(ss, sid, rows, cols);
    if has("index") {
        if let Some(idx) = u32_of(&props, "index") {
            let s = ss.sheets.remove(si);
            let idx = (idx as usize).min(ss.sheets.len());
            ss.sheets.insert(idx, s);
        }
    }
    Ok(())
}

/// Sets the named properties of sheet `si` on its copy `sh` (a new title must be unique).
fn set_sheet_properties(
    ss: &Spreadsheet,
    si: usize,
    sh: &mut Sheet,
    props: &Value,
    has: &dyn Fn(&str) -> bool,
) -> Result<(), ApiError> {
    let gp = props.get("gridProperties").cloned().unwrap_or(json!({}));
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
    Ok(())
}

/// A sheet keeps at least one row and column, at most Google's columns, and the spreadsheet
/// its cell cap (checked only when the sheet grows).
fn check_grid_size(
    ss: &Spreadsheet,
    before: &Sheet,
    sh: &Sheet,
    limit: u64,
) -> Result<(), ApiError> {
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
        return Err(ApiError::over_cell_limit(limit));
    }
    Ok(())
}

/// Drops the row and column metadata of sheet `sid` at or beyond (`rows`, `cols`).
fn drop_dimension_metadata_beyond(ss: &mut Spreadsheet, sid: i32, rows: u32, cols: u32) {
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
}

/// `updateSpreadsheetProperties`: title, locale, time zone, recalculation.
pub(super) fn update_spreadsheet_properties(
    ss: &mut Spreadsheet,
    req: &Value,
) -> Result<(), ApiError> {
    let props = req.get("properties").cloned().unwrap_or(json!({}));
    let paths = update_fields(req)?;
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
