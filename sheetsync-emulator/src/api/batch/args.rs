//! What the requests of a batch share: its context, and reading their common arguments
//! (sheet ids, indexes, dimensions, `GridRange`s, `fields` masks).

use serde_json::Value;

use crate::a1;
use crate::api::fields::update_paths;
use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::state::Shared;
use crate::values::ops::{self, Resolved};

/// Context of one batch.
pub(crate) struct Ctx<'a> {
    /// Shared state (ids, clock).
    pub shared: &'a Shared,
    /// Cell cap.
    pub limit: u64,
}

/// The index of the sheet whose `sheetId` is `v` (missing: 0).
pub(super) fn sheet_idx(ss: &Spreadsheet, v: Option<&Value>) -> Result<usize, ApiError> {
    let id = v.and_then(Value::as_i64).unwrap_or(0) as i32;
    ss.sheet_index_by_id(id)
        .ok_or_else(|| ApiError::bad_request(format!("No grid with id: {id}")))
}

/// An unsigned field of an object.
pub(super) fn u32_of(v: &Value, k: &str) -> Option<u32> {
    v.get(k).and_then(Value::as_u64).map(|x| x as u32)
}

/// `ROWS` (true) or `COLUMNS` (false).
pub(super) fn dim_is_rows(v: Option<&Value>) -> Result<bool, ApiError> {
    match v.and_then(Value::as_str) {
        Some("ROWS") => Ok(true),
        Some("COLUMNS") => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "Invalid dimension: {}",
            other.unwrap_or("DIMENSION_UNSPECIFIED")
        ))),
    }
}

/// A bounded `DimensionRange`: (sheet index, rows, start, end).
pub(super) fn dimension_range(
    ss: &Spreadsheet,
    range: &Value,
) -> Result<(usize, bool, u32, u32), ApiError> {
    let si = sheet_idx(ss, range.get("sheetId"))?;
    let rows = dim_is_rows(range.get("dimension"))?;
    let (Some(start), Some(end)) = (u32_of(range, "startIndex"), u32_of(range, "endIndex")) else {
        return Err(ApiError::bad_request(
            "Both the start and end indexes must be bounded.",
        ));
    };
    Ok((si, rows, start, end))
}

/// A `GridRange` (missing bounds: the whole sheet) that must lie inside the grid.
pub(super) fn grid_range(ss: &Spreadsheet, v: &Value) -> Result<Resolved, ApiError> {
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

/// The paths of an update request's `fields` mask; a missing or empty mask is an error.
pub(super) fn update_fields(req: &Value) -> Result<Vec<String>, ApiError> {
    let fields = req
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(ApiError::bad_request(
            "At least one field must be specified.",
        ));
    }
    Ok(update_paths(fields))
}
