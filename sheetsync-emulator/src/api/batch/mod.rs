//! `spreadsheets.batchUpdate` (spec §4.9): requests applied in order, all or nothing.
//!
//! This module checks the batch's shape and dispatches each request to the file of its
//! family: `tabs` (sheets and spreadsheet properties), `dimensions` (rows and columns),
//! `cells` (typed cells), `copy_paste`, `metadata` (developer metadata); `args` reads the
//! arguments they share.

mod args;
mod cells;
mod copy_paste;
mod dimensions;
mod metadata;
mod protection;
mod tabs;

use serde_json::{json, Map, Value};

use crate::api::request::check_fields;
use crate::api::sheets::{check_cap, spreadsheet_json};
use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::state::Shared;
use crate::values::ops::{self, Resolved};
use args::Ctx;

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

/// Applies one request; returns its reply (`{}` for kinds that answer nothing).
fn apply_one(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    kind: &str,
    req: &Value,
) -> Result<Value, ApiError> {
    let empty = |r: Result<(), ApiError>| r.map(|()| json!({}));
    match kind {
        "addSheet" => tabs::add_sheet(ctx, ss, req),
        "deleteSheet" => empty(tabs::delete_sheet(ss, req)),
        "updateSheetProperties" => empty(tabs::update_sheet_properties(ss, req, ctx.limit)),
        "updateSpreadsheetProperties" => empty(tabs::update_spreadsheet_properties(ss, req)),
        "insertDimension" => empty(dimensions::insert(ctx, ss, req)),
        "deleteDimension" => empty(dimensions::delete(ss, req)),
        "appendDimension" => empty(dimensions::append(ctx, ss, req)),
        "moveDimension" => empty(dimensions::move_block(ss, req)),
        "sortRange" => empty(dimensions::sort_range(ctx, ss, req)),
        "updateCells" => empty(cells::update_cells(ss, req)),
        "appendCells" => empty(cells::append_cells(ctx, ss, req)),
        "copyPaste" => empty(copy_paste::copy_paste(ss, req)),
        "createDeveloperMetadata" => metadata::create(ctx, ss, req),
        "updateDeveloperMetadata" => metadata::update(ss, req),
        "deleteDeveloperMetadata" => metadata::delete(ss, req),
        "addProtectedRange" => protection::add(ctx, ss, req),
        "deleteProtectedRange" => empty(protection::delete(ss, req)),
        other => Err(ApiError::bad_request(format!(
            "Unsupported request: {other}"
        ))),
    }
}

/// Checks that each request is an object with exactly one known kind; returns (kind, body).
fn request_kinds(requests: &[Value]) -> Result<Vec<(String, Value)>, ApiError> {
    let mut kinds = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let obj = r.as_object().ok_or_else(|| {
            ApiError::bad_request(format!("Invalid value at 'requests[{i}]' (type.googleapis.com/google.apps.sheets.v4.Request), {r}"))
        })?;
        check_known_kinds(obj, i)?;
        if obj.len() != 1 {
            return Err(ApiError::bad_request(format!(
                "Invalid requests[{i}]: A request must set exactly one kind of request."
            )));
        }
        let (k, v) = obj.iter().next().expect("one key");
        kinds.push((k.clone(), v.clone()));
    }
    Ok(kinds)
}

/// Rejects a request kind the discovery document does not know, with Google's body.
fn check_known_kinds(obj: &Map<String, Value>, i: usize) -> Result<(), ApiError> {
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
    Ok(())
}

/// Applies a list of requests; on the first error nothing is applied.
pub(crate) fn apply_requests(
    ctx: &Ctx<'_>,
    ss: &mut Spreadsheet,
    requests: &[Value],
) -> Result<Vec<Value>, ApiError> {
    let kinds = request_kinds(requests)?;
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
    check_fields(
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
    let ss = shared.open(id)?;
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
