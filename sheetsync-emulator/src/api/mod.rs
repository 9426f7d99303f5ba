//! The Google API surface: a request is routed (`route`), read (`request`), checked
//! (credentials, access, quotas), delayed or failed by the fault rules, run between the person
//! edits scheduled around it, and answered through its field mask (`fields`). The handlers:
//! `sheets` (`spreadsheets.create`/`get`), `values` (`spreadsheets.values.*`), `batch`
//! (`batchUpdate`), `metadata` (developer metadata) and `drive`.

pub mod batch;
pub mod drive;
pub mod fields;
pub mod metadata;
pub mod request;
pub mod route;
pub mod sheets;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{json_response, ApiError};
use crate::faults::{self, FaultKind};
use crate::person::run_scheduled;
use crate::schedule::When;
use crate::state::{RequestRecord, Shared};
use request::{parse_body, Query};
use route::{route, Route};

/// Marker extension: close the connection instead of answering.
#[derive(Clone, Copy)]
pub(crate) struct DropConnection;

/// What a handler answers on success.
pub enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// 204 without body.
    NoContent,
}

/// The user a request is attributed to for quotas: bearer token, then `access_token`,
/// `quotaUser`, `key`, else `anonymous`.
fn user_of(headers: &HeaderMap, q: &Query) -> String {
    if let Some(auth) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let t = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth);
        return t.trim().to_string();
    }
    for k in ["accessToken", "oauthToken", "quotaUser", "key"] {
        if let Some(v) = q.get(k) {
            return v.to_string();
        }
    }
    "anonymous".to_string()
}

/// Answers a Google API request: routes it, runs it through faults, checks and quotas, and
/// logs it.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    parts: &Parts,
    query: &Query,
    bytes: &[u8],
) -> Response {
    let path = parts.uri.path().to_string();
    let Some(route) = route(&parts.method, &path) else {
        return ApiError::new(
            404,
            "NOT_FOUND",
            format!("Method not found: {} {}", parts.method, path),
        )
        .into_response();
    };
    let user = user_of(&parts.headers, query);
    let has_credential = parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
        || query.get("accessToken").is_some()
        || query.get("oauthToken").is_some()
        || query.get("key").is_some();
    let resp = api_entry(shared, &route, query, bytes, &user, has_credential).await;
    shared.log_request(RequestRecord {
        method_id: route.method_id().to_string(),
        http_method: parts.method.to_string(),
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        user,
        status: resp.status().as_u16(),
        body_bytes: bytes.len() as u64,
    });
    resp
}

/// A response that makes the connection close without an answer.
fn dropped() -> Response {
    let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    r.extensions_mut().insert(DropConnection);
    r
}

/// The error an injected status answers with (Google's body; 429 names the read or write quota).
fn injected_error(shared: &Shared, route: &Route, status: u16) -> ApiError {
    let mut e = ApiError::injected(status);
    if status == 429 {
        let kind = if route.sheets_write() == Some(false) {
            "Read"
        } else {
            "Write"
        };
        let project = shared.config.read().quota.project_number;
        e.message = format!(
            "Quota exceeded for quota metric '{kind} requests' and limit '{kind} requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:{project}'."
        );
    }
    e
}

async fn api_entry(
    shared: &Arc<Shared>,
    route: &Route,
    query: &Query,
    bytes: &[u8],
    user: &str,
    has_credential: bool,
) -> Response {
    let method_id = route.method_id();
    *shared
        .counters
        .lock()
        .entry(method_id.to_string())
        .or_default() += 1;

    // Latency and faults.
    let fault = {
        let mut rng = shared.rng.lock();
        shared.faults.lock().pick(method_id, &mut rng)
    };
    let latency = shared.config.read().latency;
    let mut delay = latency.fixed_ms;
    if latency.jitter_ms > 0 {
        delay += (shared.rng.lock().next_f64() * latency.jitter_ms as f64) as u64;
    }
    if let Some(FaultKind::Delay { ms }) = fault {
        delay += ms;
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match fault {
        Some(FaultKind::Status { status }) => {
            return injected_error(shared, route, status).into_response()
        }
        Some(FaultKind::Drop) => return dropped(),
        _ => {}
    }
    let resp = serve_request(shared, route, query, bytes, user, has_credential, fault);
    // Faults that let the request run and then lose its answer.
    match fault {
        Some(FaultKind::DropAfter) => dropped(),
        Some(FaultKind::StatusAfter { status }) => {
            injected_error(shared, route, status).into_response()
        }
        _ => resp,
    }
}

/// Checks `alt`, credentials, access and quota, then runs the request (with the person edits
/// scheduled around it) and renders its answer; `fault` may shorten a read's answer.
fn serve_request(
    shared: &Shared,
    route: &Route,
    query: &Query,
    bytes: &[u8],
    user: &str,
    has_credential: bool,
    fault: Option<FaultKind>,
) -> Response {
    if let Some(alt) = query.get("alt") {
        if alt != "json" && !(alt == "media" && route.method_id().starts_with("drive.")) {
            return ApiError::bad_request(format!("Invalid value at 'alt' (TYPE_ENUM), \"{alt}\""))
                .into_response();
        }
    }

    // Authentication and per-spreadsheet access.
    if shared.config.read().require_credentials && !has_credential {
        return ApiError::new(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
        .into_response();
    }
    if let Some(sid) = route.spreadsheet_id() {
        if shared
            .denied
            .lock()
            .contains(&(sid.to_string(), user.to_string()))
        {
            return ApiError::permission_denied().into_response();
        }
    }

    // Quotas (Sheets methods only).
    if let Some(write) = route.sheets_write() {
        let cfg = shared.config.read().quota.clone();
        let elapsed = shared.elapsed();
        if let Err(e) = shared.quota.lock().check(&cfg, elapsed, user, write) {
            return e.into_response();
        }
    }

    let result = run_blocking(|| run_with_scheduled_edits(shared, route, query, bytes));
    match result {
        Ok(Reply::Json(mut v)) => {
            if let Some(FaultKind::Truncate { rows }) = fault {
                faults::truncate_read(&mut v, rows);
            }
            let v = match query.get("fields") {
                Some(mask) if !mask.is_empty() => match fields::Mask::parse(mask) {
                    Ok(m) => m.apply(&v),
                    Err(e) => return e.into_response(),
                },
                _ => v,
            };
            json_response(200, &v)
        }
        Ok(Reply::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs a request between the person edits scheduled before and after it.
fn run_with_scheduled_edits(
    shared: &Shared,
    route: &Route,
    q: &Query,
    bytes: &[u8],
) -> Result<Reply, ApiError> {
    let method_id = route.method_id();
    let due = match route.spreadsheet_id() {
        Some(sid) => shared.schedule.lock().take_due(sid, method_id),
        None => Vec::new(),
    };
    if due.is_empty() {
        return dispatch(shared, route, q, bytes);
    }
    let (before, after): (Vec<_>, Vec<_>) = due
        .into_iter()
        .partition(|e| e.trigger.when == When::Before);
    run_scheduled(shared, before, method_id);
    let result = dispatch(shared, route, q, bytes);
    run_scheduled(shared, after, method_id);
    result
}

/// Runs `f` inline; on a multi-thread runtime, lets other tasks move off this worker first
/// (large reads and writes are CPU-bound).
fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs a routed request against the store.
fn dispatch(shared: &Shared, route: &Route, q: &Query, bytes: &[u8]) -> Result<Reply, ApiError> {
    let body = || parse_body(bytes);
    let fields_set = q.get("fields").is_some_and(|f| !f.is_empty());
    let v = match route {
        Route::Create => sheets::create(shared, &body()?)?,
        Route::Get(id) => sheets::get(shared, id, q, fields_set)?,
        Route::BatchUpdate(id) => batch::batch_update(shared, id, &body()?)?,
        Route::ValuesGet(id, range) => values::values_get(shared, id, range, q)?,
        Route::ValuesBatchGet(id) => values::values_batch_get(shared, id, q)?,
        Route::ValuesBatchGetByDataFilter(id) => {
            values::values_batch_get_by_data_filter(shared, id, &body()?)?
        }
        Route::ValuesUpdate(id, range) => values::values_update(shared, id, range, q, &body()?)?,
        Route::ValuesBatchUpdate(id) => values::values_batch_update(shared, id, &body()?)?,
        Route::ValuesAppend(id, range) => values::values_append(shared, id, range, q, &body()?)?,
        Route::ValuesClear(id, range) => values::values_clear(shared, id, range, &body()?)?,
        Route::ValuesBatchClear(id) => values::values_batch_clear(shared, id, &body()?)?,
        Route::MetaSearch(id) => metadata::search(shared, id, &body()?)?,
        Route::MetaGet(id, mid) => metadata::get(shared, id, mid)?,
        Route::Unsupported(m) => {
            return Err(ApiError::new(
                501,
                "UNIMPLEMENTED",
                format!("The emulator does not implement {m}."),
            ))
        }
        Route::DriveCreate => drive::create(shared, &body()?)?,
        Route::DriveList => drive::list(shared, q)?,
        Route::DriveGet(id) => drive::get(shared, id, q)?,
        Route::DriveUpdate(id) => drive::update(shared, id, &body()?)?,
        Route::DriveStartPageToken => drive::start_page_token(shared),
        Route::DriveChanges => drive::changes(shared, q)?,
        Route::DriveDelete(id) => {
            drive::delete(shared, id)?;
            return Ok(Reply::NoContent);
        }
    };
    Ok(Reply::Json(v))
}
