//! `spreadsheets.create` and `spreadsheets.get` (spec §4.1–§4.2): the `Spreadsheet`,
//! `SheetProperties`, `GridData` and `CellData` JSON, in and out.

use serde_json::{json, Map, Value};

use super::fields::Mask;
use super::request::{enum_error, Query};
use crate::error::ApiError;
use crate::model::{Cell, CellValue, FormatKind, MetaLocation, NumberFormat, Sheet, Spreadsheet};
use crate::state::Shared;
use crate::values::format::json_number;
use crate::values::ops::{self, Resolved};
use crate::values::render::formatted;
use crate::values::{Eff, Evaluator};

/// Checks the cell cap of a spreadsheet after a change.
pub fn check_cap(ss: &Spreadsheet, limit: u64) -> Result<(), ApiError> {
    if ss.total_cells() > limit {
        return Err(ApiError::over_cell_limit(limit));
    }
    Ok(())
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
        let protected = ss.protected_ranges(sh.props.sheet_id);
        if !protected.is_empty() {
            s["protectedRanges"] = Value::Array(protected);
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
    let ss = shared.open(id)?;
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
