//! Protected ranges: `addProtectedRange` and `deleteProtectedRange`. The emulator stores them
//! and returns them in `spreadsheets.get` (`sheets.protectedRanges`); it enforces nothing,
//! since every caller of the emulator owns the file (an owner may always edit, and a
//! `warningOnly` range only warns people in the browser).

use serde_json::{json, Value};

use super::args::Ctx;
use crate::error::ApiError;
use crate::model::Spreadsheet;

fn sheet_of(range: &Value) -> i32 {
    crate::model::protected_sheet(range)
}

fn id_of(range: &Value) -> Option<i64> {
    range.get("protectedRangeId").and_then(Value::as_i64)
}

/// `addProtectedRange`: the range must name a sheet of the spreadsheet; the id is chosen.
pub(super) fn add(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let mut pr = req.get("protectedRange").cloned().unwrap_or(json!({}));
    if !pr.is_object() || pr.get("range").is_none() {
        return Err(ApiError::bad_request(
            "Invalid requests[0].addProtectedRange: No range specified.",
        ));
    }
    let sid = sheet_of(&pr);
    if !ss.sheets.iter().any(|s| s.props.sheet_id == sid) {
        return Err(ApiError::bad_request(format!(
            "Invalid requests[0].addProtectedRange: No grid with id: {sid}"
        )));
    }
    let id = loop {
        let id = ctx.shared.rng.lock().positive_i32() as i64;
        if !ss.protected.iter().any(|p| id_of(p) == Some(id)) {
            break id;
        }
    };
    pr["protectedRangeId"] = json!(id);
    ss.protected.push(pr.clone());
    Ok(json!({ "addProtectedRange": { "protectedRange": pr } }))
}

/// `deleteProtectedRange` by id.
pub(super) fn delete(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let id = req.get("protectedRangeId").and_then(Value::as_i64);
    let before = ss.protected.len();
    ss.protected.retain(|p| id.is_none() || id_of(p) != id);
    if ss.protected.len() == before {
        return Err(ApiError::bad_request(format!(
            "Invalid requests[0].deleteProtectedRange: No protected range with id: {}",
            id.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Drops the protected ranges of a deleted sheet.
pub(super) fn forget_sheet(ss: &mut Spreadsheet, sheet_id: i32) {
    ss.protected.retain(|p| sheet_of(p) != sheet_id);
}
