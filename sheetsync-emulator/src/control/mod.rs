//! The test control surface: person edits (which fire triggers, unlike API writes), person
//! edits scheduled around a client's requests, faults, latency, quotas, clock, counters, state
//! save and reset — on the handle and over HTTP under `/__emulator/`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::request::{decode_segment, parse_body, Query};
use crate::api::sheets;
use crate::edit::PersonEdit;
use crate::error::{json_response, ApiError};
use crate::faults::{FaultRule, Latency};
use crate::person::{person_edit, schedule_edit};
use crate::quota::QuotaConfig;
use crate::schedule::EditTrigger;
use crate::state::{RequestRecord, Shared};
use crate::triggers::Registration;

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

/// A control request, its path split into decoded segments.
#[derive(Clone, Copy)]
struct ControlRequest<'a> {
    shared: &'a Arc<Shared>,
    method: &'a Method,
    segs: &'a [&'a str],
    bytes: &'a [u8],
}

/// Routes a control request to the group that handles its path.
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
        .map(decode_segment)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let req = ControlRequest {
        shared,
        method,
        segs: &segs,
        bytes,
    };
    let groups = [
        state_routes,
        rule_routes,
        schedule_routes,
        spreadsheet_routes,
    ];
    for group in groups {
        if let Some(r) = group(&req)? {
            return Ok(r);
        }
    }
    Ok(ApiError::new(
        404,
        "NOT_FOUND",
        format!("Unknown control endpoint: {method} /__emulator{path}"),
    )
    .into_response())
}

/// Reset, save, counters, the request log, the clock and the credential switch.
fn state_routes(req: &ControlRequest<'_>) -> Result<Option<Response>, ApiError> {
    let (shared, segs, bytes) = (req.shared, req.segs, req.bytes);
    Ok(Some(match (req.method.clone(), segs) {
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
        (Method::POST, ["clock"]) => {
            let body = parse_body(bytes)?;
            let ms = body.get("advanceMs").and_then(Value::as_u64).unwrap_or(0);
            shared.clock_offset_ms.fetch_add(ms, Ordering::SeqCst);
            ok(json!({"offsetMs": shared.clock_offset_ms.load(Ordering::SeqCst)}))
        }
        (Method::GET, ["requests"]) => {
            let log: Vec<RequestRecord> = shared.requests.lock().iter().cloned().collect();
            ok(serde_json::to_value(log).unwrap_or_default())
        }
        (Method::POST, ["auth"]) => {
            let body = parse_body(bytes)?;
            if let Some(b) = body.get("requireCredentials").and_then(Value::as_bool) {
                shared.config.write().require_credentials = b;
            }
            ok(json!({"requireCredentials": shared.config.read().require_credentials}))
        }
        _ => return Ok(None),
    }))
}

/// Fault rules, latency and quotas.
fn rule_routes(req: &ControlRequest<'_>) -> Result<Option<Response>, ApiError> {
    let (shared, segs, bytes) = (req.shared, req.segs, req.bytes);
    Ok(Some(match (req.method.clone(), segs) {
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
            let q: QuotaConfig = serde_json::from_value(cur)
                .map_err(|e| ApiError::bad_request(format!("Invalid quota: {e}")))?;
            shared.config.write().quota = q.clone();
            ok(serde_json::to_value(q).unwrap_or_default())
        }
        (Method::POST, ["quota", "reset"]) => {
            shared.quota.lock().reset();
            ok(json!({}))
        }
        _ => return Ok(None),
    }))
}

/// Scheduled person edits.
fn schedule_routes(req: &ControlRequest<'_>) -> Result<Option<Response>, ApiError> {
    let (shared, segs, bytes) = (req.shared, req.segs, req.bytes);
    Ok(Some(match (req.method.clone(), segs) {
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
        _ => return Ok(None),
    }))
}

/// A trigger as `GET .../triggers` lists it (never the secret).
fn trigger_json(trigger_id: &str, spec: &Registration) -> Value {
    let mut v = json!({"triggerId": trigger_id, "mode": spec.mode(), "sheetId": spec.sheet_id()});
    if let Registration::Webhook(w) = spec {
        v["url"] = json!(w.url);
    }
    v
}

/// Spreadsheets: list, create, read, person edits, triggers, access; webhook deliveries.
fn spreadsheet_routes(req: &ControlRequest<'_>) -> Result<Option<Response>, ApiError> {
    let (shared, segs, bytes) = (req.shared, req.segs, req.bytes);
    Ok(Some(match (req.method.clone(), segs) {
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
            ok(sheets::create(shared, &body)?)
        }
        (Method::GET, ["spreadsheets", id]) => {
            let ss = shared.open(id)?;
            let v = serde_json::to_value(&*ss.read()).unwrap_or_default();
            ok(v)
        }
        (Method::POST, ["spreadsheets", id, "edits"]) => {
            let b: EditBody = parse(bytes)?;
            person_edit(shared, id, b.edit, b.user.as_deref())?;
            ok(json!({}))
        }
        (Method::POST, ["spreadsheets", id, "triggers"]) => {
            // A webhook (`url`, `secret`) or `{"mode": "journal"}`; `sheetId` optional.
            let spec: Registration = parse(bytes)?;
            shared.open(id)?;
            let tid = shared.triggers.add(id, spec);
            ok(json!({"triggerId": tid}))
        }
        (Method::GET, ["spreadsheets", id, "triggers"]) => {
            let list: Vec<Value> = shared
                .triggers
                .list(id)
                .into_iter()
                .map(|(tid, spec)| trigger_json(&tid, &spec))
                .collect();
            ok(json!({"triggers": list}))
        }
        _ => return Ok(None),
    }))
}
