//! `spreadsheets.create/get` and the `spreadsheets.values.*` methods (spec §4.1–§4.8).

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::fields::Mask;
use super::Query;
use crate::model::{Cell, CellValue, FormatKind, MetaLocation, NumberFormat, Sheet, Spreadsheet};
use crate::values::ops::{self, Major, Resolved};
use crate::values::render::{formatted, json_number};
use crate::values::{DateRender, Eff, Evaluator, InputOption, RenderOpts, ValueRender};
use crate::Shared;

/// Looks a spreadsheet up or answers 404.
pub(crate) fn open(shared: &Shared, id: &str) -> Result<Arc<RwLock<Spreadsheet>>, ApiError> {
    shared.spreadsheet(id).ok_or_else(ApiError::not_found)
}

/// `This action would increase the number of cells in the workbook above the limit of N cells.`
pub fn cap_error(limit: u64) -> ApiError {
    ApiError::bad_request(format!(
        "This action would increase the number of cells in the workbook above the limit of {limit} cells."
    ))
}

/// Checks the cell cap of a spreadsheet after a change.
pub fn check_cap(ss: &Spreadsheet, limit: u64) -> Result<(), ApiError> {
    if ss.total_cells() > limit {
        return Err(cap_error(limit));
    }
    Ok(())
}

/// Rejects unknown fields the way Google's JSON binding does.
pub fn check_fields(body: &Value, allowed: &[&str], at: Option<&str>) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(format!(
            "Invalid JSON payload received. Expected an object{}.",
            at.map(|a| format!(" at '{a}'")).unwrap_or_default()
        )));
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let at = at.map(|a| format!(" at '{a}'")).unwrap_or_default();
            let msg = format!(
                "Invalid JSON payload received. Unknown name \"{k}\"{at}: Cannot find field."
            );
            let mut e = ApiError::bad_request(msg.clone());
            e.details = Some(json!([{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": at_field(at.as_str(), k), "description": msg}]
            }]));
            return Err(e);
        }
    }
    Ok(())
}

fn at_field(at: &str, k: &str) -> String {
    let base = at.trim_start_matches(" at '").trim_end_matches('\'');
    if base.is_empty() {
        k.to_string()
    } else {
        format!("{base}.{k}")
    }
}

const VALUE_RANGE_FIELDS: &[&str] = &["range", "majorDimension", "values"];

fn enum_error(field: &str, ty: &str, v: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid value at '{field}' (type.googleapis.com/google.apps.sheets.v4.{ty}), \"{v}\""
    ))
}

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

/// Changes a `CellData` applies to a cell (`None` = field not mentioned).
#[derive(Debug, Clone, Default)]
pub struct CellPatch {
    /// userEnteredValue.
    pub value: Option<Option<CellValue>>,
    /// userEnteredFormat.numberFormat.
    pub format: Option<Option<NumberFormat>>,
    /// note.
    pub note: Option<Option<String>>,
}

/// Parses a `CellData` object.
pub fn parse_cell_data(v: &Value) -> Result<CellPatch, ApiError> {
    let mut p = CellPatch::default();
    if let Some(uev) = v.get("userEnteredValue") {
        let val = if let Some(n) = uev.get("numberValue") {
            Some(CellValue::Number(n.as_f64().ok_or_else(|| {
                ApiError::bad_request("Invalid value at 'userEnteredValue.numberValue'")
            })?))
        } else if let Some(s) = uev.get("stringValue") {
            let s = s.as_str().unwrap_or_default();
            if s.chars().count() > ops::MAX_CELL_CHARS {
                return Err(ApiError::bad_request(format!(
                    "Your input contains more than the maximum of {} characters in a single cell.",
                    ops::MAX_CELL_CHARS
                )));
            }
            Some(CellValue::Text(s.to_string()))
        } else if let Some(b) = uev.get("boolValue") {
            Some(CellValue::Bool(b.as_bool().unwrap_or(false)))
        } else if let Some(f) = uev.get("formulaValue") {
            Some(CellValue::Formula(
                f.as_str().unwrap_or_default().to_string(),
            ))
        } else if uev.get("errorValue").is_some() {
            return Err(ApiError::bad_request(
                "Invalid value at 'userEnteredValue': errorValue is output only",
            ));
        } else {
            None
        };
        p.value = Some(val);
    }
    if let Some(fmt) = v.get("userEnteredFormat") {
        match fmt.get("numberFormat") {
            Some(nf) => {
                let ty = nf.get("type").and_then(Value::as_str).unwrap_or("NUMBER");
                let kind = FormatKind::from_api(ty)
                    .ok_or_else(|| enum_error("number_format.type", "NumberFormatType", ty))?;
                let pattern = nf
                    .get("pattern")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                p.format = Some(Some(NumberFormat { kind, pattern }));
            }
            None => p.format = Some(None),
        }
    }
    if let Some(n) = v.get("note") {
        p.note = Some(n.as_str().map(str::to_string));
    }
    Ok(p)
}

/// Applies a patch to a cell.
pub fn apply_patch(cell: &mut Cell, p: &CellPatch) {
    if let Some(v) = &p.value {
        cell.value = v.clone();
    }
    if let Some(f) = &p.format {
        cell.format = f.clone().map(Box::new);
    }
    if let Some(n) = &p.note {
        cell.note = n.clone();
    }
}

/// Properties of a new sheet from `SheetProperties` JSON.
pub fn sheet_from_props(props: &Value, sheet_id: i32, default_title: &str) -> Sheet {
    let title = props
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(default_title);
    let gp = props.get("gridProperties");
    let get = |k: &str, d: u32| {
        gp.and_then(|g| g.get(k))
            .and_then(Value::as_u64)
            .map_or(d, |v| v as u32)
    };
    let mut s = Sheet::new(
        sheet_id,
        title,
        get("rowCount", 1000),
        get("columnCount", 26),
    );
    s.props.frozen_row_count = get("frozenRowCount", 0);
    s.props.frozen_column_count = get("frozenColumnCount", 0);
    s.props.hidden = props
        .get("hidden")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    s.props.tab_color = props.get("tabColor").cloned();
    s
}

/// `spreadsheets.create`.
pub(crate) fn create(shared: &Shared, body: &Value) -> Result<Value, ApiError> {
    let now = shared.now_ms();
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let title = props
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled spreadsheet")
        .to_string();
    let id = match body.get("spreadsheetId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => {
            if shared.spreadsheet(id).is_some() {
                return Err(ApiError::new(
                    409,
                    "ALREADY_EXISTS",
                    format!("Spreadsheet {id} already exists."),
                ));
            }
            id.to_string()
        }
        _ => shared.new_spreadsheet_id(),
    };
    let mut ss = Spreadsheet::new(id, title, now);
    if let Some(l) = props.get("locale").and_then(Value::as_str) {
        ss.locale = l.to_string();
    }
    if let Some(t) = props.get("timeZone").and_then(Value::as_str) {
        ss.time_zone = t.to_string();
    }
    if let Some(sheets) = body.get("sheets").and_then(Value::as_array) {
        if !sheets.is_empty() {
            ss.sheets.clear();
            for (i, sd) in sheets.iter().enumerate() {
                let p = sd.get("properties").cloned().unwrap_or(json!({}));
                let sid = match p.get("sheetId").and_then(Value::as_i64) {
                    Some(v) => v as i32,
                    None if i == 0 => 0,
                    None => shared.rng.lock().positive_i32(),
                };
                if ss.sheet_index_by_id(sid).is_some() {
                    return Err(ApiError::bad_request(format!("Duplicate sheet id: {sid}")));
                }
                let sheet = sheet_from_props(&p, sid, &format!("Sheet{}", i + 1));
                if ss.sheets.iter().any(|s| s.props.title == sheet.props.title) {
                    return Err(ApiError::bad_request(format!(
                        "A sheet with the name \"{}\" already exists. Please enter another name.",
                        sheet.props.title
                    )));
                }
                ss.sheets.push(sheet);
                for gd in sd
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let r0 = gd.get("startRow").and_then(Value::as_u64).unwrap_or(0) as u32;
                    let c0 = gd.get("startColumn").and_then(Value::as_u64).unwrap_or(0) as u32;
                    let sheet = ss.sheets.last_mut().expect("pushed");
                    for (ri, rd) in gd
                        .get("rowData")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        for (ci, cd) in rd
                            .get("values")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .enumerate()
                        {
                            let (r, c) = (r0 + ri as u32, c0 + ci as u32);
                            if r >= sheet.props.row_count || c >= sheet.props.column_count {
                                return Err(ops::grid_error(
                                    &crate::a1::format_range(&sheet.props.title, r, c, r, c, true),
                                    sheet.props.row_count,
                                    sheet.props.column_count,
                                ));
                            }
                            let patch = parse_cell_data(cd)?;
                            let mut cell = sheet.grid.get(r, c).cloned().unwrap_or_default();
                            apply_patch(&mut cell, &patch);
                            sheet.grid.set(r, c, cell);
                        }
                    }
                }
            }
        }
    }
    let limit = shared.config.read().cell_limit;
    check_cap(&ss, limit)?;
    let out = spreadsheet_json(&ss, false, &[]);
    shared.insert(ss);
    Ok(out)
}

/// `ExtendedValue` JSON of a stored value.
fn extended(v: &CellValue) -> Value {
    match v {
        CellValue::Number(n) => json!({"numberValue": json_number(*n)}),
        CellValue::Text(s) => json!({"stringValue": s}),
        CellValue::Bool(b) => json!({"boolValue": b}),
        CellValue::Formula(f) => json!({"formulaValue": f}),
    }
}

fn effective_json(e: &Eff) -> Option<Value> {
    Some(match e {
        Eff::Empty => return None,
        Eff::Num(n) => json!({"numberValue": json_number(*n)}),
        Eff::Text(s) => json!({"stringValue": s}),
        Eff::Bool(b) => json!({"boolValue": b}),
        Eff::Err(k) => json!({"errorValue": {"type": k.api_type(), "message": k.message()}}),
    })
}

/// `CellData` JSON.
fn cell_json(ev: &mut Evaluator<'_>, sheet: usize, r: u32, c: u32, cell: &Cell) -> Value {
    let mut m = Map::new();
    if let Some(v) = &cell.value {
        m.insert("userEnteredValue".into(), extended(v));
        let eff = ev.cell(sheet, r, c);
        if let Some(e) = effective_json(&eff) {
            m.insert("effectiveValue".into(), e);
        }
        m.insert(
            "formattedValue".into(),
            Value::String(formatted(&eff, cell.format.as_deref())),
        );
    }
    if let Some(f) = &cell.format {
        let mut nf = json!({"type": f.kind.api_name()});
        if !f.pattern.is_empty() {
            nf["pattern"] = json!(f.pattern);
        }
        m.insert("userEnteredFormat".into(), json!({"numberFormat": nf}));
        m.insert("effectiveFormat".into(), json!({"numberFormat": nf}));
    }
    if let Some(n) = &cell.note {
        m.insert("note".into(), json!(n));
    }
    Value::Object(m)
}

/// `GridData` of a range.
fn grid_data(ss: &Spreadsheet, res: &Resolved, ev: &mut Evaluator<'_>) -> Value {
    let sh = &ss.sheets[res.sheet];
    let mut out = Map::new();
    if res.r0 > 0 {
        out.insert("startRow".into(), json!(res.r0));
    }
    if res.c0 > 0 {
        out.insert("startColumn".into(), json!(res.c0));
    }
    let mut rows: Vec<Value> = Vec::new();
    for (r, row) in sh.grid.rows_in(res.r0, res.r1 + 1) {
        let end = (res.c1 as usize + 1).min(row.len());
        let start = res.c0 as usize;
        if start >= end {
            continue;
        }
        let vals: Vec<Value> = (start..end)
            .map(|c| cell_json(ev, res.sheet, r, c as u32, &row[c]))
            .collect();
        let idx = (r - res.r0) as usize;
        while rows.len() < idx {
            rows.push(json!({}));
        }
        rows.push(json!({ "values": vals }));
    }
    if !rows.is_empty() {
        out.insert("rowData".into(), Value::Array(rows));
    }
    let sid = sh.props.sheet_id;
    let dim_meta = |rows_dim: bool, idx: u32| -> Vec<Value> {
        ss.metadata
            .iter()
            .filter(|m| m.location.dim_index(sid, rows_dim) == Some(idx))
            .map(|m| m.to_json())
            .collect()
    };
    let row_meta: Vec<Value> = (res.r0..=res.r1)
        .map(|r| {
            let mut v = json!({"pixelSize": 21});
            let dm = dim_meta(true, r);
            if !dm.is_empty() {
                v["developerMetadata"] = Value::Array(dm);
            }
            v
        })
        .collect();
    let col_meta: Vec<Value> = (res.c0..=res.c1)
        .map(|c| {
            let mut v = json!({"pixelSize": 100});
            let dm = dim_meta(false, c);
            if !dm.is_empty() {
                v["developerMetadata"] = Value::Array(dm);
            }
            v
        })
        .collect();
    out.insert("rowMetadata".into(), Value::Array(row_meta));
    out.insert("columnMetadata".into(), Value::Array(col_meta));
    Value::Object(out)
}

/// The `Spreadsheet` resource. `ranges` limits sheets (and grid data) to those ranges.
pub fn spreadsheet_json(ss: &Spreadsheet, include_grid: bool, ranges: &[Resolved]) -> Value {
    let mut ev = Evaluator::new(ss);
    let mut sheets = Vec::new();
    for (i, sh) in ss.sheets.iter().enumerate() {
        let mine: Vec<Resolved> = ranges.iter().filter(|r| r.sheet == i).copied().collect();
        if !ranges.is_empty() && mine.is_empty() {
            continue;
        }
        let mut s = json!({"properties": sh.properties_json(i)});
        if include_grid {
            let rs = if mine.is_empty() {
                vec![Resolved {
                    sheet: i,
                    r0: 0,
                    c0: 0,
                    r1: sh.props.row_count.saturating_sub(1),
                    c1: sh.props.column_count.saturating_sub(1),
                    single: false,
                }]
            } else {
                mine
            };
            s["data"] = Value::Array(rs.iter().map(|r| grid_data(ss, r, &mut ev)).collect());
        }
        let meta: Vec<Value> = ss
            .metadata
            .iter()
            .filter(|m| m.location == MetaLocation::Sheet(sh.props.sheet_id))
            .map(|m| m.to_json())
            .collect();
        if !meta.is_empty() {
            s["developerMetadata"] = Value::Array(meta);
        }
        sheets.push(s);
    }
    let mut out = json!({
        "spreadsheetId": ss.id,
        "properties": {
            "title": ss.title,
            "locale": ss.locale,
            "autoRecalc": ss.auto_recalc,
            "timeZone": ss.time_zone,
            "defaultFormat": {
                "backgroundColor": {"red": 1, "green": 1, "blue": 1},
                "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
                "verticalAlignment": "BOTTOM",
                "wrapStrategy": "OVERFLOW_CELL",
                "textFormat": {"fontFamily": "arial,sans,sans-serif", "fontSize": 10,
                               "bold": false, "italic": false, "strikethrough": false, "underline": false}
            }
        },
        "sheets": sheets,
    });
    let meta: Vec<Value> = ss
        .metadata
        .iter()
        .filter(|m| m.location == MetaLocation::Spreadsheet)
        .map(|m| m.to_json())
        .collect();
    if !meta.is_empty() {
        out["developerMetadata"] = Value::Array(meta);
    }
    out["spreadsheetUrl"] = json!(ss.url());
    out
}

/// `spreadsheets.get`.
pub(crate) fn get(
    shared: &Shared,
    id: &str,
    q: &Query,
    fields_set: bool,
) -> Result<Value, ApiError> {
    let ss = open(shared, id)?;
    let ss = ss.read();
    let clip = shared.config.read().clip_explicit_ranges;
    let mut include = q.bool("includeGridData")?.unwrap_or(false);
    if fields_set {
        let mask = Mask::parse(q.get("fields").unwrap_or_default())?;
        include = mask.selects(&["sheets", "data"]);
    }
    let ranges = q
        .all("ranges")
        .iter()
        .map(|r| ops::resolve(&ss, r, clip))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(spreadsheet_json(&ss, include, &ranges))
}

/// `values.get`.
pub(crate) fn values_get(
    shared: &Shared,
    id: &str,
    range: &str,
    q: &Query,
) -> Result<Value, ApiError> {
    let ss = open(shared, id)?;
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
    let ss = open(shared, id)?;
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
    let ss = open(shared, id)?;
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
    let ss = open(shared, id)?;
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
    let ss = open(shared, id)?;
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
        return Err(cap_error(limit));
    }
    let sid = ss.sheets[sheet].props.sheet_id;
    if h > 0 && insert_rows && sr < rows0 {
        ss.sheets[sheet].grid.insert_rows(sr, h);
        ss.shift_meta_insert(sid, true, sr, h);
        ops::adjust_formulas(
            &mut ss,
            sheet,
            crate::values::formula::Shift {
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
    let ss = open(shared, id)?;
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
    let ss = open(shared, id)?;
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
