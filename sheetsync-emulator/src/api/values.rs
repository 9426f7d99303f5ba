//! The `spreadsheets.values.*` methods (spec §4.3–§4.8): get, batchGet, update, batchUpdate,
//! append, clear, batchClear, and batchGetByDataFilter (by `a1Range` and `gridRange`); and their
//! render and input options.

use serde_json::{json, Value};

use super::request::{check_fields, enum_error, Query};
use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::state::Shared;
use crate::values::dimension;
use crate::values::ops::{self, Major, Resolved};
use crate::values::shift::Shift;
use crate::values::{DateRender, InputOption, RenderOpts, ValueRender};

const VALUE_RANGE_FIELDS: &[&str] = &["range", "majorDimension", "values"];

/// Parses render options (query or body).
pub fn render_opts(
    value: Option<&str>,
    date: Option<&str>,
    response: bool,
) -> Result<RenderOpts, ApiError> {
    let (vf, df) = if response {
        (
            "response_value_render_option",
            "response_date_time_render_option",
        )
    } else {
        ("value_render_option", "date_time_render_option")
    };
    let value = match value {
        None => ValueRender::Formatted,
        Some(v) => ValueRender::parse(v).ok_or_else(|| enum_error(vf, "ValueRenderOption", v))?,
    };
    let date = match date {
        None => DateRender::Serial,
        Some(v) => DateRender::parse(v).ok_or_else(|| enum_error(df, "DateTimeRenderOption", v))?,
    };
    Ok(RenderOpts { value, date })
}

fn major_of(v: Option<&str>) -> Result<Major, ApiError> {
    match v {
        None => Ok(Major::Rows),
        Some(s) => Major::parse(s).ok_or_else(|| enum_error("major_dimension", "Dimension", s)),
    }
}

/// Parses the required `valueInputOption`.
pub fn input_option(v: Option<&str>) -> Result<InputOption, ApiError> {
    match v {
        None | Some("") => Err(ApiError::bad_request(
            "'valueInputOption' is required but not specified",
        )),
        Some(s) => InputOption::parse(s)
            .ok_or_else(|| enum_error("value_input_option", "ValueInputOption", s)),
    }
}

/// `values.get`.
pub(crate) fn values_get(
    shared: &Shared,
    id: &str,
    range: &str,
    q: &Query,
) -> Result<Value, ApiError> {
    let ss = shared.open(id)?;
    let ss = ss.read();
    let clip = shared.config.read().clip_explicit_ranges;
    let major = major_of(q.get("majorDimension"))?;
    let opts = render_opts(
        q.get("valueRenderOption"),
        q.get("dateTimeRenderOption"),
        false,
    )?;
    let res = ops::resolve(&ss, range, clip)?;
    Ok(ops::read(&ss, &res, major, opts))
}

/// `values.batchGet`.
pub(crate) fn values_batch_get(shared: &Shared, id: &str, q: &Query) -> Result<Value, ApiError> {
    let ss = shared.open(id)?;
    let ss = ss.read();
    let clip = shared.config.read().clip_explicit_ranges;
    let major = major_of(q.get("majorDimension"))?;
    let opts = render_opts(
        q.get("valueRenderOption"),
        q.get("dateTimeRenderOption"),
        false,
    )?;
    let ranges = q.all("ranges");
    let resolved = ranges
        .iter()
        .map(|r| ops::resolve(&ss, r, clip))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = json!({"spreadsheetId": ss.id});
    if !resolved.is_empty() {
        out["valueRanges"] = Value::Array(
            resolved
                .iter()
                .map(|r| ops::read(&ss, r, major, opts))
                .collect(),
        );
    }
    Ok(out)
}

/// `values.batchGetByDataFilter` for `a1Range` and `gridRange` filters: a `gridRange` names its
/// tab by `sheetId` (so it survives renames) and reaches the grid's edge where a bound is left
/// out. Each range is answered with the filter that matched it, in the order asked.
pub(crate) fn values_batch_get_by_data_filter(
    shared: &Shared,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(
        body,
        &[
            "dataFilters",
            "majorDimension",
            "valueRenderOption",
            "dateTimeRenderOption",
        ],
        None,
    )?;
    let ss = shared.open(id)?;
    let ss = ss.read();
    let clip = shared.config.read().clip_explicit_ranges;
    let major = major_of(str_field(body, "majorDimension"))?;
    let opts = render_opts(
        str_field(body, "valueRenderOption"),
        str_field(body, "dateTimeRenderOption"),
        false,
    )?;
    let filters = match body.get("dataFilters").and_then(Value::as_array) {
        Some(f) if !f.is_empty() => f,
        _ => {
            return Err(ApiError::bad_request(
                "Must specify at least one data filter.",
            ))
        }
    };
    let mut matched = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        let res = filter_range(&ss, f, clip)
            .map_err(|e| e.prefixed(&format!("Invalid dataFilters[{i}]: ")))?;
        matched.push(json!({
            "valueRange": ops::read(&ss, &res, major, opts),
            "dataFilters": [f],
        }));
    }
    Ok(json!({"spreadsheetId": ss.id, "valueRanges": matched}))
}

/// The cells one `DataFilter` names.
fn filter_range(ss: &Spreadsheet, f: &Value, clip: bool) -> Result<Resolved, ApiError> {
    if let Some(a1) = str_field(f, "a1Range") {
        return ops::resolve(ss, a1, clip);
    }
    if let Some(g) = f.get("gridRange") {
        return ops::resolve_grid(ss, g);
    }
    if f.get("developerMetadataLookup").is_some() {
        return Err(ApiError::new(
            501,
            "UNIMPLEMENTED",
            "The emulator does not resolve developerMetadataLookup filters in \
             values.batchGetByDataFilter.",
        ));
    }
    Err(ApiError::bad_request(
        "DataFilter must set one of developerMetadataLookup, a1Range or gridRange.",
    ))
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Checks that a ValueRange body's `range` names the same cells as the URL.
fn check_body_range(
    ss: &Spreadsheet,
    body: &Value,
    url_res: &Resolved,
    url_range: &str,
    clip: bool,
) -> Result<(), ApiError> {
    if let Some(br) = str_field(body, "range") {
        let b = ops::resolve(ss, br, clip)?;
        if (b.sheet, b.r0, b.c0, b.r1, b.c1)
            != (
                url_res.sheet,
                url_res.r0,
                url_res.c0,
                url_res.r1,
                url_res.c1,
            )
        {
            return Err(ApiError::bad_request(format!(
                "Requested range [{br}] does not match the range in the URL [{url_range}]"
            )));
        }
    }
    Ok(())
}

fn updated_data(
    ss: &Spreadsheet,
    w: &ops::WriteResult,
    major: Major,
    opts: RenderOpts,
) -> Option<Value> {
    w.written.map(|r| ops::read(ss, &r, major, opts))
}

/// `values.update`.
pub(crate) fn values_update(
    shared: &Shared,
    id: &str,
    range: &str,
    q: &Query,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(body, VALUE_RANGE_FIELDS, None)?;
    let opt = input_option(q.get("valueInputOption"))?;
    let include = q.bool("includeValuesInResponse")?.unwrap_or(false);
    let ropts = render_opts(
        q.get("responseValueRenderOption"),
        q.get("responseDateTimeRenderOption"),
        true,
    )?;
    let major = major_of(str_field(body, "majorDimension"))?;
    let matrix = ops::parse_matrix(body.get("values"), major, opt, "data.values")?;
    let clip = shared.config.read().clip_explicit_ranges;
    let ss = shared.open(id)?;
    let mut ss = ss.write();
    let res = ops::resolve(&ss, range, clip)?;
    check_body_range(&ss, body, &res, range, clip)?;
    ops::check_fit(&ss, &res, &matrix)?;
    let w = ops::write(&mut ss, &res, &matrix);
    shared.touch(&mut ss);
    let mut out = w.to_json(&ss.id);
    if include {
        let read_res = if res.single {
            w.written.unwrap_or(res)
        } else {
            res
        };
        out["updatedData"] = ops::read(&ss, &read_res, major, ropts);
    }
    Ok(out)
}

/// `values.batchUpdate` (atomic).
pub(crate) fn values_batch_update(
    shared: &Shared,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(
        body,
        &[
            "valueInputOption",
            "data",
            "includeValuesInResponse",
            "responseValueRenderOption",
            "responseDateTimeRenderOption",
        ],
        None,
    )?;
    let opt = input_option(str_field(body, "valueInputOption"))?;
    let include = body
        .get("includeValuesInResponse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ropts = render_opts(
        str_field(body, "responseValueRenderOption"),
        str_field(body, "responseDateTimeRenderOption"),
        true,
    )?;
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let clip = shared.config.read().clip_explicit_ranges;
    let ss = shared.open(id)?;
    let mut ss = ss.write();
    let mut plan = Vec::new();
    for (i, vr) in data.iter().enumerate() {
        check_fields(vr, VALUE_RANGE_FIELDS, Some(&format!("data[{i}]")))?;
        let prefix = format!("Invalid data[{i}]: ");
        let range = str_field(vr, "range").unwrap_or_default();
        let major = major_of(str_field(vr, "majorDimension")).map_err(|e| e.prefixed(&prefix))?;
        let m = ops::parse_matrix(vr.get("values"), major, opt, &format!("data[{i}].values"))
            .map_err(|e| e.prefixed(&prefix))?;
        let res = ops::resolve(&ss, range, clip).map_err(|e| e.prefixed(&prefix))?;
        ops::check_fit(&ss, &res, &m).map_err(|e| e.prefixed(&prefix))?;
        plan.push((res, m, major));
    }
    let mut responses = Vec::new();
    let mut rows = std::collections::BTreeSet::new();
    let mut cols = std::collections::BTreeSet::new();
    let mut sheets = std::collections::BTreeSet::new();
    let mut cells = 0u64;
    for (res, m, major) in &plan {
        let w = ops::write(&mut ss, res, m);
        if let Some(wr) = w.written {
            for (i, row) in m.iter().enumerate() {
                for (j, x) in row.iter().enumerate() {
                    if matches!(x, crate::values::input::Write::Set(..)) {
                        rows.insert((wr.sheet, wr.r0 + i as u32));
                        cols.insert((wr.sheet, wr.c0 + j as u32));
                        sheets.insert(wr.sheet);
                    }
                }
            }
        }
        cells += u64::from(w.cells);
        let mut r = w.to_json(&ss.id);
        if include {
            if let Some(d) = updated_data(&ss, &w, *major, ropts) {
                r["updatedData"] = d;
            }
        }
        responses.push(r);
    }
    if !plan.is_empty() {
        shared.touch(&mut ss);
    }
    let mut out = json!({"spreadsheetId": ss.id});
    if !rows.is_empty() {
        out["totalUpdatedRows"] = json!(rows.len());
        out["totalUpdatedColumns"] = json!(cols.len());
        out["totalUpdatedCells"] = json!(cells);
        out["totalUpdatedSheets"] = json!(sheets.len());
    }
    if !responses.is_empty() {
        out["responses"] = Value::Array(responses);
    }
    Ok(out)
}

/// `values.append` with table detection.
pub(crate) fn values_append(
    shared: &Shared,
    id: &str,
    range: &str,
    q: &Query,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(body, VALUE_RANGE_FIELDS, None)?;
    let opt = input_option(q.get("valueInputOption"))?;
    let insert_rows = match q.get("insertDataOption") {
        None | Some("OVERWRITE") => false,
        Some("INSERT_ROWS") => true,
        Some(other) => return Err(enum_error("insert_data_option", "InsertDataOption", other)),
    };
    let include = q.bool("includeValuesInResponse")?.unwrap_or(false);
    let ropts = render_opts(
        q.get("responseValueRenderOption"),
        q.get("responseDateTimeRenderOption"),
        true,
    )?;
    let major = major_of(str_field(body, "majorDimension"))?;
    let matrix = ops::parse_matrix(body.get("values"), major, opt, "data.values")?;
    let limit = shared.config.read().cell_limit;
    let ss = shared.open(id)?;
    let mut ss = ss.write();
    // The range only says where the table search starts: it is clipped to the grid (§4.7).
    let res = ops::resolve(&ss, range, true)?;
    let (table, sr, sc) = ops::find_table(&ss, &res);
    let h = matrix.len() as u32;
    let w = matrix.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let sheet = res.sheet;
    let (rows0, cols0) = (
        ss.sheets[sheet].props.row_count,
        ss.sheets[sheet].props.column_count,
    );
    let new_rows = if insert_rows {
        rows0.max(sr) + h
    } else {
        rows0.max(sr + h)
    };
    let new_cols = cols0.max(sc + w);
    let extra = u64::from(new_rows) * u64::from(new_cols) - u64::from(rows0) * u64::from(cols0);
    if h > 0 && ss.total_cells() + extra > limit {
        return Err(ApiError::over_cell_limit(limit));
    }
    let sid = ss.sheets[sheet].props.sheet_id;
    if h > 0 && insert_rows && sr < rows0 {
        ss.sheets[sheet].grid.insert_rows(sr, h);
        ss.shift_meta_insert(sid, true, sr, h);
        dimension::adjust_formulas(
            &mut ss,
            sheet,
            Shift {
                rows: true,
                at: sr,
                n: h,
                insert: true,
            },
        );
    }
    if h > 0 {
        ss.sheets[sheet].props.row_count = new_rows;
        ss.sheets[sheet].props.column_count = new_cols;
    }
    let anchor = Resolved {
        sheet,
        r0: sr,
        c0: sc,
        r1: sr,
        c1: sc,
        single: true,
    };
    let wr = ops::write(&mut ss, &anchor, &matrix);
    shared.touch(&mut ss);
    let mut updates = wr.to_json(&ss.id);
    if include {
        if let Some(d) = updated_data(&ss, &wr, major, ropts) {
            updates["updatedData"] = d;
        }
    }
    let mut out = json!({"spreadsheetId": ss.id});
    if let Some(t) = table {
        out["tableRange"] = json!(t.a1(&ss));
    }
    out["updates"] = updates;
    Ok(out)
}

/// `values.clear`.
pub(crate) fn values_clear(
    shared: &Shared,
    id: &str,
    range: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(body, &[], None)?;
    let clip = shared.config.read().clip_explicit_ranges;
    let ss = shared.open(id)?;
    let mut ss = ss.write();
    let res = ops::resolve(&ss, range, clip)?;
    ops::clear(&mut ss, &res);
    shared.touch(&mut ss);
    Ok(json!({"spreadsheetId": ss.id, "clearedRange": res.a1(&ss)}))
}

/// `values.batchClear` (atomic).
pub(crate) fn values_batch_clear(
    shared: &Shared,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    check_fields(body, &["ranges"], None)?;
    let ranges: Vec<String> = body
        .get("ranges")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let clip = shared.config.read().clip_explicit_ranges;
    let ss = shared.open(id)?;
    let mut ss = ss.write();
    let resolved = ranges
        .iter()
        .map(|r| ops::resolve(&ss, r, clip))
        .collect::<Result<Vec<_>, _>>()?;
    for r in &resolved {
        ops::clear(&mut ss, r);
    }
    shared.touch(&mut ss);
    let mut out = json!({"spreadsheetId": ss.id});
    if !resolved.is_empty() {
        out["clearedRanges"] = Value::Array(resolved.iter().map(|r| json!(r.a1(&ss))).collect());
    }
    Ok(out)
}
