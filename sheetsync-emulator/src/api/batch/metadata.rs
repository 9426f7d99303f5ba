//! Developer metadata: `createDeveloperMetadata`, `updateDeveloperMetadata` and
//! `deleteDeveloperMetadata` (matched by data filters, as `developerMetadata.search` does).

use serde_json::{json, Value};

use super::args::{update_fields, Ctx};

use crate::api::metadata::{matches, parse_location};
use crate::error::ApiError;
use crate::model::{DevMeta, Spreadsheet};

/// `createDeveloperMetadata`: a key and a visibility are required; the id is chosen if not
/// given.
pub(super) fn create(ctx: &Ctx<'_>, ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
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
    let location = parse_location(ss, &loc, true)?;
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

/// `updateDeveloperMetadata`: the masked fields of every entry a data filter matches.
pub(super) fn update(ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let filters = req
        .get("dataFilters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let dm = req.get("developerMetadata").cloned().unwrap_or(json!({}));
    let paths = update_fields(req)?;
    let all = paths.iter().any(|p| p == "*");
    let has = |p: &str| {
        all || paths
            .iter()
            .any(|x| x == p || x.starts_with(&format!("{p}.")))
    };
    let new_loc = if has("location") {
        Some(parse_location(
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
            hit |= matches(ss, m, f)?;
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

/// `deleteDeveloperMetadata`: every entry the data filter matches.
pub(super) fn delete(ss: &mut Spreadsheet, req: &Value) -> Result<Value, ApiError> {
    let f = req.get("dataFilter").cloned().unwrap_or(json!({}));
    let mut deleted = Vec::new();
    let mut keep = Vec::new();
    for m in ss.metadata.clone() {
        if matches(ss, &m, &f)? {
            deleted.push(m.to_json());
        } else {
            keep.push(m);
        }
    }
    ss.metadata = keep;
    Ok(json!({"deleteDeveloperMetadata": {"deletedDeveloperMetadata": deleted}}))
}
