//! What the requests of a batch share: its context, and reading their common arguments
//! (sheet ids, indexes, dimensions, `fields` masks; `GridRange`s resolve in `values::ops`).

use serde_json::Value;

use crate::api::fields::update_paths;
use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::state::Shared;

/// Context of one batch.
pub(crate) struct Ctx<'a> {
    /// Shared state (ids, clock).
    pub shared: &'a Shared,
    /// Cell cap.
    pub limit: u64,
}

pub(super) use crate::values::ops::sheet_of as sheet_idx;

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
