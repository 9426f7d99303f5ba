//! The test control surface: person edits (which fire triggers, unlike API writes), person
//! edits scheduled around a client's requests, faults, latency, quotas, clock, counters, state
//! save and reset — on the handle and over HTTP under `/__emulator/`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::batch::{delete_dimension, insert_dimension};
use crate::api::error::{json_response, ApiError};
use crate::api::sheets::{cap_error, open};
use crate::api::{parse_body, Query};
use crate::faults::{FaultRule, Latency};
use crate::model::{Cell, Spreadsheet};
use crate::schedule::{EditTrigger, FiredEdit, ScheduledEdit};
use crate::triggers::{Payload, PayloadRange, PayloadRow, TriggerSpec};
use crate::values::ops::{self, Major, Resolved};
use crate::values::render::render_cell;
use crate::values::{DateRender, Evaluator, InputOption, RenderOpts, ValueRender};
use crate::Shared;

/// An edit made by a person in the browser. Rows and columns are 1-based like the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PersonEdit {
    /// Type or paste a block whose top-left is the range's top-left (USER_ENTERED parsing;
    /// `""` clears a cell, `null` leaves it). The grid grows if the block passes its end.
    SetCells {
        /// A1 range (its top-left cell anchors the block).
        range: String,
        /// Rows of values.
        values: Vec<Vec<Value>>,
    },
    /// Select a range and press Delete.
    Clear {
        /// A1 range.
        range: String,
    },
    /// Insert `count` rows before row `before`.
    InsertRows {
        /// Sheet title.
        sheet: String,
        /// 1-based row the new rows go before (`rowCount + 1` appends).
        before: u32,
        /// How many.
        count: u32,
    },
    /// Delete rows `start ..= start + count - 1`.
    DeleteRows {
        /// Sheet title.
        sheet: String,
        /// 1-based first row.
        start: u32,
        /// How many.
        count: u32,
    },
    /// Drag rows `start ..` (`count` of them) so they sit before row `before`.
    MoveRows {
        /// Sheet title.
        sheet: String,
        /// 1-based first row moved.
        start: u32,
        /// How many.
        count: u32,
        /// 1-based row (in the sheet before the move) the block is dropped before.
        before: u32,
    },
    /// Data → Sort range by a column.
    SortRange {
        /// A1 range to sort (all its rows move; header rows must be left out).
        range: String,
        /// 1-based sheet column to sort by.
        column: u32,
        /// Ascending (A→Z) or descending.
        ascending: bool,
    },
}

fn unformatted() -> RenderOpts {
    RenderOpts {
        value: ValueRender::Unformatted,
        date: DateRender::Serial,
    }
}

/// Renders row `r` of a sheet across `width` columns (UNFORMATTED, SERIAL; empty = "").
fn row_values(
    ss: &Spreadsheet,
    ev: &mut Evaluator<'_>,
    sheet: usize,
    r: u32,
    width: u32,
) -> Vec<Value> {
    let grid = &ss.sheets[sheet].grid;
    (0..width)
        .map(|c| {
            grid.get(r, c)
                .and_then(|cell| render_cell(ev, sheet, r, c, cell, unformatted()))
                .unwrap_or_else(|| Value::String(String::new()))
        })
        .collect()
}

fn header(ss: &Spreadsheet, ev: &mut Evaluator<'_>, sheet: usize) -> Vec<Value> {
    let len = ss.sheets[sheet].grid.row(0).map_or(0, |r| {
        r.iter().rposition(Cell::has_value).map_or(0, |p| p + 1)
    });
    row_values(ss, ev, sheet, 0, len as u32)
}

fn sheet_by_title(ss: &Spreadsheet, title: &str) -> Result<usize, ApiError> {
    ss.sheet_index_by_title(title)
        .ok_or_else(|| ApiError::bad_request(format!("No sheet named \"{title}\".")))
}

/// Applies a person edit and fires the triggers of the spreadsheet.
pub(crate) fn person_edit(
    shared: &Shared,
    id: &str,
    edit: PersonEdit,
    user: Option<&str>,
) -> Result<(), ApiError> {
    let (limit, follow, default_user) = {
        let c = shared.config.read();
        (
            c.cell_limit,
            c.metadata_follows_person_moves,
            c.default_editor.clone(),
        )
    };
    let user = user.map_or(default_user, str::to_string);
    let ss_lock = open(shared, id)?;
    let mut ss = ss_lock.write();
    // (sheet index, change type, edited rect (0-based inclusive) for EDIT)
    let (sheet, change, rect): (usize, &str, Option<Resolved>) = match &edit {
        PersonEdit::SetCells { range, values } => {
            let res = ops::resolve(&ss, range, true)?;
            let arr = Value::Array(values.iter().map(|r| Value::Array(r.clone())).collect());
            let m = ops::parse_matrix(Some(&arr), Major::Rows, InputOption::UserEntered, "values")?;
            let h = m.len() as u32;
            let w = m.iter().map(Vec::len).max().unwrap_or(0) as u32;
            if h == 0 || w == 0 {
                return Ok(());
            }
            let sh = &ss.sheets[res.sheet];
            let (rows0, cols0) = (sh.props.row_count, sh.props.column_count);
            let (rows1, cols1) = (rows0.max(res.r0 + h), cols0.max(res.c0 + w));
            let extra = u64::from(rows1) * u64::from(cols1) - u64::from(rows0) * u64::from(cols0);
            if ss.total_cells() + extra > limit {
                return Err(cap_error(limit));
            }
            ss.sheets[res.sheet].props.row_count = rows1;
            ss.sheets[res.sheet].props.column_count = cols1;
            let anchor = Resolved {
                r1: res.r0,
                c1: res.c0,
                single: true,
                ..res
            };
            let wr = ops::write(&mut ss, &anchor, &m);
            (res.sheet, "EDIT", wr.written)
        }
        PersonEdit::Clear { range } => {
            let res = ops::resolve(&ss, range, true)?;
            ops::clear(&mut ss, &res);
            (res.sheet, "EDIT", Some(res))
        }
        PersonEdit::InsertRows {
            sheet,
            before,
            count,
        } => {
            let si = sheet_by_title(&ss, sheet)?;
            let at = before.saturating_sub(1);
            insert_dimension(&mut ss, si, true, at, at + count, limit)?;
            (si, "INSERT_ROW", None)
        }
        PersonEdit::DeleteRows {
            sheet,
            start,
            count,
        } => {
            let si = sheet_by_title(&ss, sheet)?;
            let at = start.saturating_sub(1);
            delete_dimension(&mut ss, si, true, at, at + count)?;
            (si, "REMOVE_ROW", None)
        }
        PersonEdit::MoveRows {
            sheet,
            start,
            count,
            before,
        } => {
            let si = sheet_by_title(&ss, sheet)?;
            let (s, n, d) = (start.saturating_sub(1), *count, before.saturating_sub(1));
            if d >= s && d <= s + n {
                return Err(ApiError::bad_request("Invalid row move."));
            }
            ops::move_dimension(&mut ss, si, true, s, n, d, follow)?;
            (si, "OTHER", None)
        }
        PersonEdit::SortRange {
            range,
            column,
            ascending,
        } => {
            let res = ops::resolve(&ss, range, true)?;
            ops::sort_rows(
                &mut ss,
                &res,
                &[(column.saturating_sub(1), *ascending)],
                follow,
            )?;
            (res.sheet, "EDIT", Some(res))
        }
    };
    shared.touch(&mut ss);
    let now = ss.modified_ms;
    // Build the payload while the spreadsheet is locked, send after.
    let payload = {
        let mut ev = Evaluator::new(&ss);
        let header = header(&ss, &mut ev, sheet);
        let (range, rows) = match rect {
            Some(r) if change == "EDIT" => {
                let width = (header.len() as u32).max(r.c1 + 1);
                let rows = (r.r0..=r.r1)
                    .map(|row| PayloadRow {
                        row: row + 1,
                        values: row_values(&ss, &mut ev, sheet, row, width),
                    })
                    .collect();
                (
                    Some(PayloadRange {
                        start_row: r.r0 + 1,
                        end_row: r.r1 + 1,
                        start_column: r.c0 + 1,
                        end_column: r.c1 + 1,
                    }),
                    rows,
                )
            }
            _ => (None, Vec::new()),
        };
        let event_id = {
            let mut rng = shared.rng.lock();
            format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
        };
        Payload {
            version: 1,
            spreadsheet_id: ss.id.clone(),
            sheet_id: ss.sheets[sheet].props.sheet_id,
            sheet_name: ss.sheets[sheet].props.title.clone(),
            change_type: change.to_string(),
            event_id,
            timestamp: now,
            user,
            range,
            header,
            rows,
        }
    };
    drop(ss);
    shared.triggers.fire(&payload);
    Ok(())
}

/// Schedules a person edit (checks that the spreadsheet exists).
pub(crate) fn schedule_edit(
    shared: &Shared,
    id: &str,
    trigger: EditTrigger,
    edit: PersonEdit,
    user: Option<String>,
) -> Result<String, ApiError> {
    open(shared, id)?;
    Ok(shared.schedule.lock().add(id, trigger, edit, user))
}

/// Applies the scheduled edits due on a request, recording each outcome.
pub(crate) fn run_scheduled(shared: &Shared, due: Vec<ScheduledEdit>, method_id: &str) {
    for s in due {
        let result = person_edit(shared, &s.spreadsheet_id, s.edit.clone(), s.user.as_deref());
        shared.schedule.lock().record(FiredEdit {
            scheduled_edit_id: s.scheduled_edit_id,
            spreadsheet_id: s.spreadsheet_id,
            method_id: method_id.to_string(),
            when: s.trigger.when,
            edit: s.edit,
            error: result.err().map(|e| e.message),
        });
    }
}

/// `POST /__emulator/scheduled-edits` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleBody {
    spreadsheet_id: String,
    #[serde(flatten)]
    trigger: EditTrigger,
    edit: PersonEdit,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct EditBody {
    #[serde(flatten)]
    edit: PersonEdit,
    #[serde(default)]
    user: Option<String>,
}

fn ok(v: Value) -> Response {
    json_response(200, &v)
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    let v = parse_body(bytes)?;
    serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("Invalid control request: {e}")))
}

/// Handles `/__emulator/...` (path given without the prefix).
pub(crate) async fn http(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &Query,
    bytes: &[u8],
) -> Response {
    match control(shared, method, path, q, bytes) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn control(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    _q: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(crate::api::decode_segment)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.clone();
    Ok(match (m, segs.as_slice()) {
        (Method::POST, ["reset"]) => {
            shared.reset();
            ok(json!({}))
        }
        (Method::POST, ["save"]) => {
            let body = parse_body(bytes)?;
            let path = body
                .get("path")
                .and_then(Value::as_str)
                .map(std::path::PathBuf::from)
                .or_else(|| shared.config.read().state_file.clone())
                .ok_or_else(|| {
                    ApiError::bad_request("No state file configured and no path given.")
                })?;
            shared
                .save_to(&path)
                .map_err(|e| ApiError::new(500, "INTERNAL", format!("Saving state failed: {e}")))?;
            ok(json!({"saved": path.display().to_string()}))
        }
        (Method::GET, ["counters"]) => {
            let c = shared.counters.lock().clone();
            let total: u64 = c.values().sum();
            ok(json!({"counts": c, "total": total}))
        }
        (Method::POST, ["counters", "reset"]) | (Method::DELETE, ["counters"]) => {
            shared.counters.lock().clear();
            ok(json!({}))
        }
        (Method::GET, ["faults"]) => {
            ok(serde_json::to_value(&shared.faults.lock().rules).unwrap_or_default())
        }
        (Method::POST, ["faults"]) => {
            let rule: FaultRule = parse(bytes)?;
            shared.faults.lock().rules.push(rule);
            ok(json!({}))
        }
        (Method::DELETE, ["faults"]) => {
            shared.faults.lock().rules.clear();
            ok(json!({}))
        }
        (Method::GET, ["scheduled-edits"]) => {
            let s = shared.schedule.lock();
            ok(json!({"pending": s.pending(), "fired": s.fired()}))
        }
        (Method::POST, ["scheduled-edits"]) => {
            let b: ScheduleBody = parse(bytes)?;
            let sid = schedule_edit(shared, &b.spreadsheet_id, b.trigger, b.edit, b.user)?;
            ok(json!({"scheduledEditId": sid}))
        }
        (Method::DELETE, ["scheduled-edits"]) => {
            shared.schedule.lock().clear();
            ok(json!({}))
        }
        (Method::DELETE, ["scheduled-edits", sid]) => {
            if !shared.schedule.lock().cancel(sid) {
                return Err(ApiError::new(
                    404,
                    "NOT_FOUND",
                    format!("No pending scheduled edit {sid}."),
                ));
            }
            ok(json!({}))
        }
        (Method::GET, ["latency"]) => {
            ok(serde_json::to_value(shared.config.read().latency).unwrap_or_default())
        }
        (Method::POST, ["latency"]) => {
            let l: Latency = parse(bytes)?;
            shared.config.write().latency = l;
            ok(json!({}))
        }
        (Method::GET, ["quota"]) => {
            ok(serde_json::to_value(&shared.config.read().quota).unwrap_or_default())
        }
        (Method::POST, ["quota"]) => {
            // Partial update: merge given fields onto the current configuration.
            let patch = parse_body(bytes)?;
            let mut cur = serde_json::to_value(&shared.config.read().quota).unwrap_or_default();
            if let (Some(c), Some(p)) = (cur.as_object_mut(), patch.as_object()) {
                for (k, v) in p {
                    c.insert(k.clone(), v.clone());
                }
            }
            let q: crate::QuotaConfig = serde_json::from_value(cur)
                .map_err(|e| ApiError::bad_request(format!("Invalid quota: {e}")))?;
            shared.config.write().quota = q.clone();
            ok(serde_json::to_value(q).unwrap_or_default())
        }
        (Method::POST, ["quota", "reset"]) => {
            shared.quota.lock().reset();
            ok(json!({}))
        }
        (Method::POST, ["clock"]) => {
            let body = parse_body(bytes)?;
            let ms = body.get("advanceMs").and_then(Value::as_u64).unwrap_or(0);
            shared
                .clock_offset_ms
                .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
            ok(
                json!({"offsetMs": shared.clock_offset_ms.load(std::sync::atomic::Ordering::SeqCst)}),
            )
        }
        (Method::GET, ["requests"]) => {
            let log: Vec<crate::RequestRecord> = shared.requests.lock().iter().cloned().collect();
            ok(serde_json::to_value(log).unwrap_or_default())
        }
        (Method::POST, ["auth"]) => {
            let body = parse_body(bytes)?;
            if let Some(b) = body.get("requireCredentials").and_then(Value::as_bool) {
                shared.config.write().require_credentials = b;
            }
            ok(json!({"requireCredentials": shared.config.read().require_credentials}))
        }
        (Method::POST, ["spreadsheets", id, "deny"])
        | (Method::POST, ["spreadsheets", id, "allow"]) => {
            let body = parse_body(bytes)?;
            let user = body
                .get("user")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("\"user\" is required."))?
                .to_string();
            let key = (id.to_string(), user);
            if segs[2] == "deny" {
                shared.denied.lock().insert(key);
            } else {
                shared.denied.lock().remove(&key);
            }
            ok(json!({}))
        }
        (Method::GET, ["deliveries"]) => {
            ok(serde_json::to_value(shared.triggers.log()).unwrap_or_default())
        }
        (Method::GET, ["spreadsheets"]) => {
            let mut ids: Vec<String> = shared.store.read().keys().cloned().collect();
            ids.sort();
            ok(json!({"spreadsheetIds": ids}))
        }
        (Method::POST, ["spreadsheets"]) => {
            let body = parse_body(bytes)?;
            ok(crate::api::sheets::create(shared, &body)?)
        }
        (Method::GET, ["spreadsheets", id]) => {
            let ss = open(shared, id)?;
            let v = serde_json::to_value(&*ss.read()).unwrap_or_default();
            ok(v)
        }
        (Method::POST, ["spreadsheets", id, "edits"]) => {
            let b: EditBody = parse(bytes)?;
            person_edit(shared, id, b.edit, b.user.as_deref())?;
            ok(json!({}))
        }
        (Method::POST, ["spreadsheets", id, "triggers"]) => {
            let spec: TriggerSpec = parse(bytes)?;
            open(shared, id)?;
            let tid = shared.triggers.add(id, spec);
            ok(json!({"triggerId": tid}))
        }
        (Method::GET, ["spreadsheets", id, "triggers"]) => {
            let list: Vec<Value> = shared
                .triggers
                .list(id)
                .into_iter()
                .map(|(tid, spec)| json!({"triggerId": tid, "url": spec.url, "sheetId": spec.sheet_id}))
                .collect();
            ok(json!({"triggers": list}))
        }
        _ => ApiError::new(
            404,
            "NOT_FOUND",
            format!("Unknown control endpoint: {method} /__emulator{path}"),
        )
        .into_response(),
    })
}
