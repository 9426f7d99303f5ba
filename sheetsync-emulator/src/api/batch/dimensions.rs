//! Rows and columns: `insertDimension`, `deleteDimension`, `appendDimension`, `moveDimension`
//! and `sortRange` (which moves rows).

use serde_json::{json, Value};

use super::args::{dim_is_rows, dimension_range, sheet_idx, u32_of, Ctx};
use crate::values::ops::resolve_grid;

use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::values::dimension;

/// `insertDimension`.
pub(super) fn insert(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let (si, rows, start, end) = dimension_range(ss, req.get("range").unwrap_or(&json!({})))?;
    if req.get("inheritFromBefore").and_then(Value::as_bool) == Some(true) && start == 0 {
        return Err(ApiError::bad_request(
            "Cannot inherit from before when inserting at the first index.",
        ));
    }
    dimension::insert_dimension(ss, si, rows, start, end, ctx.limit)
}

/// `deleteDimension`.
pub(super) fn delete(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let (si, rows, start, end) = dimension_range(ss, req.get("range").unwrap_or(&json!({})))?;
    dimension::delete_dimension(ss, si, rows, start, end)
}

/// `appendDimension`: `length` rows or columns at the end.
pub(super) fn append(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
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
    dimension::insert_dimension(ss, si, rows, count, count + len, ctx.limit)
}

/// `moveDimension`: the source block goes before `destinationIndex`; metadata follows.
pub(super) fn move_block(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let (si, rows, start, end) = dimension_range(ss, req.get("source").unwrap_or(&json!({})))?;
    let dest = u32_of(req, "destinationIndex").unwrap_or(0);
    dimension::move_dimension(ss, si, rows, start, end.saturating_sub(start), dest, true)
}

/// `sortRange` by its `sortSpecs` (ascending unless `DESCENDING`).
pub(super) fn sort_range(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let res = resolve_grid(ss, req.get("range").unwrap_or(&json!({})))?;
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
    dimension::sort_rows(ss, &res, &specs, follow)
}
