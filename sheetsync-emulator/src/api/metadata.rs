//! `developerMetadata.search` / `.get` and DataFilter matching (spec §4.10).

use serde_json::{json, Value};

use crate::error::ApiError;

use crate::model::{DevMeta, MetaLocation, Spreadsheet};
use crate::state::Shared;
use crate::values::ops;

/// Parses a `DeveloperMetadataLocation`. `create` enforces the single-row/column rule.
pub fn parse_location(
    ss: &Spreadsheet,
    loc: &Value,
    create: bool,
) -> Result<MetaLocation, ApiError> {
    if loc.get("spreadsheet").and_then(Value::as_bool) == Some(true) {
        return Ok(MetaLocation::Spreadsheet);
    }
    if let Some(id) = loc.get("sheetId").and_then(Value::as_i64) {
        let id = id as i32;
        if ss.sheet_index_by_id(id).is_none() {
            return Err(ApiError::bad_request(format!("No grid with id: {id}")));
        }
        return Ok(MetaLocation::Sheet(id));
    }
    if let Some(dr) = loc.get("dimensionRange") {
        let id = dr.get("sheetId").and_then(Value::as_i64).unwrap_or(0) as i32;
        let Some(si) = ss.sheet_index_by_id(id) else {
            return Err(ApiError::bad_request(format!("No grid with id: {id}")));
        };
        let rows = match dr.get("dimension").and_then(Value::as_str) {
            Some("ROWS") => true,
            Some("COLUMNS") => false,
            _ => {
                return Err(ApiError::bad_request(
                    "dimensionRange must specify a dimension.",
                ))
            }
        };
        let (Some(s), Some(e)) = (
            dr.get("startIndex").and_then(Value::as_u64),
            dr.get("endIndex").and_then(Value::as_u64),
        ) else {
            return Err(ApiError::bad_request(
                "Developer metadata dimension range must represent a single row or column. It cannot be unbounded.",
            ));
        };
        if create && e != s + 1 {
            return Err(ApiError::bad_request(
                "Developer metadata dimension range must represent a single row or column. It cannot span multiple rows or columns.",
            ));
        }
        let count = if rows {
            ss.sheets[si].props.row_count
        } else {
            ss.sheets[si].props.column_count
        };
        if s as u32 >= count {
            return Err(ApiError::bad_request(format!(
                "Developer metadata location index {s} is outside the sheet's {count} {}.",
                if rows { "rows" } else { "columns" }
            )));
        }
        return Ok(MetaLocation::Dimension {
            sheet_id: id,
            rows,
            index: s as u32,
        });
    }
    Err(ApiError::bad_request(
        "Developer metadata must have a location.",
    ))
}

/// Whether `m` intersects the rectangle (sheet index, inclusive bounds).
fn intersects(
    ss: &Spreadsheet,
    m: &DevMeta,
    sheet: usize,
    r0: u32,
    c0: u32,
    r1: u32,
    c1: u32,
) -> bool {
    let sid = ss.sheets[sheet].props.sheet_id;
    match &m.location {
        MetaLocation::Spreadsheet => false,
        MetaLocation::Sheet(s) => *s == sid,
        MetaLocation::Dimension {
            sheet_id,
            rows,
            index,
        } => {
            *sheet_id == sid
                && if *rows {
                    *index >= r0 && *index <= r1
                } else {
                    *index >= c0 && *index <= c1
                }
        }
    }
}

/// Whether a DataFilter selects `m`.
pub fn matches(ss: &Spreadsheet, m: &DevMeta, f: &Value) -> Result<bool, ApiError> {
    if let Some(a1) = f.get("a1Range").and_then(Value::as_str) {
        let r = ops::resolve(ss, a1, true)?;
        return Ok(intersects(ss, m, r.sheet, r.r0, r.c0, r.r1, r.c1));
    }
    if let Some(g) = f.get("gridRange") {
        let id = g.get("sheetId").and_then(Value::as_i64).unwrap_or(0) as i32;
        let Some(si) = ss.sheet_index_by_id(id) else {
            return Err(ApiError::bad_request(format!("No grid with id: {id}")));
        };
        let p = &ss.sheets[si].props;
        let u = |k: &str, d: u32| g.get(k).and_then(Value::as_u64).map_or(d, |v| v as u32);
        let (r0, r1) = (u("startRowIndex", 0), u("endRowIndex", p.row_count));
        let (c0, c1) = (
            u("startColumnIndex", 0),
            u("endColumnIndex", p.column_count),
        );
        if r1 == 0 || c1 == 0 {
            return Ok(false);
        }
        return Ok(intersects(ss, m, si, r0, c0, r1 - 1, c1 - 1));
    }
    let Some(l) = f.get("developerMetadataLookup") else {
        return Err(ApiError::bad_request(
            "DataFilter must set one of developerMetadataLookup, a1Range or gridRange.",
        ));
    };
    if let Some(id) = l.get("metadataId").and_then(Value::as_i64) {
        if i64::from(m.id) != id {
            return Ok(false);
        }
    }
    if let Some(k) = l.get("metadataKey").and_then(Value::as_str) {
        if m.key != k {
            return Ok(false);
        }
    }
    if let Some(v) = l.get("metadataValue").and_then(Value::as_str) {
        if m.value.as_deref() != Some(v) {
            return Ok(false);
        }
    }
    if let Some(v) = l.get("visibility").and_then(Value::as_str) {
        if v != "DEVELOPER_METADATA_VISIBILITY_UNSPECIFIED" && m.visibility != v {
            return Ok(false);
        }
    }
    if let Some(t) = l.get("locationType").and_then(Value::as_str) {
        if t != "DEVELOPER_METADATA_LOCATION_TYPE_UNSPECIFIED" && m.location.location_type() != t {
            return Ok(false);
        }
    }
    if let Some(loc) = l.get("metadataLocation") {
        let exact =
            l.get("locationMatchingStrategy").and_then(Value::as_str) == Some("EXACT_LOCATION");
        if loc.get("spreadsheet").and_then(Value::as_bool) == Some(true) {
            if exact && m.location != MetaLocation::Spreadsheet {
                return Ok(false);
            }
        } else if let Some(dr) = loc.get("dimensionRange") {
            let id = dr.get("sheetId").and_then(Value::as_i64).unwrap_or(0) as i32;
            let rows = dr.get("dimension").and_then(Value::as_str) == Some("ROWS");
            let s = dr.get("startIndex").and_then(Value::as_u64).unwrap_or(0) as u32;
            let e = dr
                .get("endIndex")
                .and_then(Value::as_u64)
                .map_or(u32::MAX, |v| v as u32);
            let ok = match &m.location {
                MetaLocation::Dimension {
                    sheet_id,
                    rows: r,
                    index,
                } if *sheet_id == id && *r == rows => {
                    if exact {
                        *index == s && e == s + 1
                    } else {
                        *index >= s && *index < e
                    }
                }
                MetaLocation::Sheet(sid) if !exact => *sid == id,
                _ => false,
            };
            if !ok {
                return Ok(false);
            }
        } else if let Some(id) = loc.get("sheetId").and_then(Value::as_i64) {
            let id = id as i32;
            let ok = match &m.location {
                MetaLocation::Sheet(s) => *s == id,
                MetaLocation::Dimension { sheet_id, .. } if !exact => *sheet_id == id,
                _ => false,
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// `developerMetadata.search`.
pub(crate) fn search(shared: &Shared, id: &str, body: &Value) -> Result<Value, ApiError> {
    super::request::check_fields(body, &["dataFilters"], None)?;
    let ss = shared.open(id)?;
    let ss = ss.read();
    let filters = body
        .get("dataFilters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut matched = Vec::new();
    for m in &ss.metadata {
        let mut hit = Vec::new();
        for f in &filters {
            if matches(&ss, m, f)? {
                hit.push(f.clone());
            }
        }
        if !hit.is_empty() {
            matched.push(json!({"developerMetadata": m.to_json(), "dataFilters": hit}));
        }
    }
    if matched.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "matchedDeveloperMetadata": matched }))
}

/// `developerMetadata.get`.
pub(crate) fn get(shared: &Shared, id: &str, mid: &str) -> Result<Value, ApiError> {
    let ss = shared.open(id)?;
    let ss = ss.read();
    let n: i64 = mid.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid value at 'metadata_id' (TYPE_INT32), \"{mid}\""
        ))
    })?;
    ss.metadata
        .iter()
        .find(|m| i64::from(m.id) == n)
        .map(DevMeta::to_json)
        .ok_or_else(ApiError::not_found)
}
