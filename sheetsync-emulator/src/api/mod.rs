//! The HTTP surface: raw-path routing (spec §2.2), query handling, quotas, faults, counters,
//! field masks, and dispatch to the Sheets and Drive handlers.

pub mod batch;
pub mod drive;
pub mod error;
pub mod fields;
pub mod metadata;
pub mod sheets;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use tower::ServiceExt;

use crate::faults::FaultKind;
use crate::Shared;
use error::{json_response, ApiError};

/// Marker extension: close the connection instead of answering.
#[derive(Clone, Copy)]
struct DropConnection;

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Accept loop: one hyper HTTP/1.1 connection task per client, until `stop` flips.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let router = Router::new().fallback(entry).with_state(shared);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let router = router.clone();
                        async move {
                            let resp = match router.oneshot(req.map(Body::new)).await {
                                Ok(r) => r,
                                Err(e) => match e {},
                            };
                            if resp.extensions().get::<DropConnection>().is_some() {
                                Err(Dropped)
                            } else {
                                Ok::<_, Dropped>(resp)
                            }
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
}

/// Decoded query parameters (keys normalised from snake_case to camelCase).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// `value_input_option` → `valueInputOption`.
pub fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for ch in s.chars() {
        if ch == '_' && !out.is_empty() {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

impl Query {
    /// Parses a raw query string as `application/x-www-form-urlencoded`.
    pub fn parse(q: Option<&str>) -> Self {
        let pairs = q
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (camel(&k), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// First value of a parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a repeated parameter.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter (`true`/`True`/`false`/`False`).
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid value at '{k}' (TYPE_BOOL), \"{v}\""
            ))),
        }
    }
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// spreadsheets.create
    Create,
    /// spreadsheets.get
    Get(String),
    /// spreadsheets.batchUpdate
    BatchUpdate(String),
    /// values.get
    ValuesGet(String, String),
    /// values.update
    ValuesUpdate(String, String),
    /// values.append
    ValuesAppend(String, String),
    /// values.clear
    ValuesClear(String, String),
    /// values.batchGet
    ValuesBatchGet(String),
    /// values.batchUpdate
    ValuesBatchUpdate(String),
    /// values.batchClear
    ValuesBatchClear(String),
    /// developerMetadata.search
    MetaSearch(String),
    /// developerMetadata.get
    MetaGet(String, String),
    /// A Google method the emulator does not implement.
    Unsupported(&'static str),
    /// drive.files.create
    DriveCreate,
    /// drive.files.list
    DriveList,
    /// drive.files.get
    DriveGet(String),
    /// drive.files.update (rename)
    DriveUpdate(String),
    /// drive.files.delete
    DriveDelete(String),
    /// drive.changes.getStartPageToken
    DriveStartPageToken,
    /// drive.changes.list
    DriveChanges,
}

impl Route {
    /// Discovery method id.
    pub fn method_id(&self) -> &'static str {
        match self {
            Route::Create => "sheets.spreadsheets.create",
            Route::Get(_) => "sheets.spreadsheets.get",
            Route::BatchUpdate(_) => "sheets.spreadsheets.batchUpdate",
            Route::ValuesGet(..) => "sheets.spreadsheets.values.get",
            Route::ValuesUpdate(..) => "sheets.spreadsheets.values.update",
            Route::ValuesAppend(..) => "sheets.spreadsheets.values.append",
            Route::ValuesClear(..) => "sheets.spreadsheets.values.clear",
            Route::ValuesBatchGet(_) => "sheets.spreadsheets.values.batchGet",
            Route::ValuesBatchUpdate(_) => "sheets.spreadsheets.values.batchUpdate",
            Route::ValuesBatchClear(_) => "sheets.spreadsheets.values.batchClear",
            Route::MetaSearch(_) => "sheets.spreadsheets.developerMetadata.search",
            Route::MetaGet(..) => "sheets.spreadsheets.developerMetadata.get",
            Route::Unsupported(id) => id,
            Route::DriveCreate => "drive.files.create",
            Route::DriveList => "drive.files.list",
            Route::DriveGet(_) => "drive.files.get",
            Route::DriveUpdate(_) => "drive.files.update",
            Route::DriveDelete(_) => "drive.files.delete",
            Route::DriveStartPageToken => "drive.changes.getStartPageToken",
            Route::DriveChanges => "drive.changes.list",
        }
    }

    /// The spreadsheet (or Drive file) the request addresses.
    pub fn spreadsheet_id(&self) -> Option<&str> {
        match self {
            Route::Get(id)
            | Route::BatchUpdate(id)
            | Route::ValuesGet(id, _)
            | Route::ValuesUpdate(id, _)
            | Route::ValuesAppend(id, _)
            | Route::ValuesClear(id, _)
            | Route::ValuesBatchGet(id)
            | Route::ValuesBatchUpdate(id)
            | Route::ValuesBatchClear(id)
            | Route::MetaSearch(id)
            | Route::MetaGet(id, _)
            | Route::DriveGet(id)
            | Route::DriveUpdate(id)
            | Route::DriveDelete(id) => Some(id),
            _ => None,
        }
    }

    /// Whether the Sheets quota counts this as a write (else a read). `None` for Drive.
    pub fn sheets_write(&self) -> Option<bool> {
        match self {
            Route::Get(_)
            | Route::ValuesGet(..)
            | Route::ValuesBatchGet(_)
            | Route::MetaSearch(_)
            | Route::MetaGet(..) => Some(false),
            Route::DriveCreate
            | Route::DriveList
            | Route::DriveGet(_)
            | Route::DriveUpdate(_)
            | Route::DriveDelete(_)
            | Route::DriveStartPageToken
            | Route::DriveChanges => None,
            _ => Some(true),
        }
    }
}

/// Percent-decodes a path segment once (`+` is a space, as Google decodes it).
pub fn decode_segment(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Routes on the raw (undecoded) path.
pub fn route(method: &Method, raw_path: &str) -> Option<Route> {
    match (method, raw_path.trim_end_matches('/')) {
        (&Method::GET, "/drive/v3/changes/startPageToken") => {
            return Some(Route::DriveStartPageToken)
        }
        (&Method::GET, "/drive/v3/changes") => return Some(Route::DriveChanges),
        _ => {}
    }
    if let Some(rest) = raw_path.strip_prefix("/drive/v3/files") {
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() {
            return match *method {
                Method::POST => Some(Route::DriveCreate),
                Method::GET => Some(Route::DriveList),
                _ => None,
            };
        }
        let id = decode_segment(rest.strip_prefix('/')?);
        if id.contains('/') {
            return None;
        }
        return match *method {
            Method::GET => Some(Route::DriveGet(id)),
            Method::PATCH => Some(Route::DriveUpdate(id)),
            Method::DELETE => Some(Route::DriveDelete(id)),
            _ => None,
        };
    }
    let rest = raw_path.strip_prefix("/v4/spreadsheets")?;
    if rest.is_empty() || rest == "/" {
        return (*method == Method::POST).then_some(Route::Create);
    }
    let rest = rest.strip_prefix('/')?;
    let id_end = rest.find(['/', ':']).unwrap_or(rest.len());
    let id = decode_segment(&rest[..id_end]);
    let tail = &rest[id_end..];
    let m = method.clone();
    match tail {
        "" => (m == Method::GET).then_some(Route::Get(id)),
        ":batchUpdate" => (m == Method::POST).then_some(Route::BatchUpdate(id)),
        ":getByDataFilter" => Some(Route::Unsupported("sheets.spreadsheets.getByDataFilter")),
        "/values:batchGet" => (m == Method::GET).then_some(Route::ValuesBatchGet(id)),
        "/values:batchUpdate" => (m == Method::POST).then_some(Route::ValuesBatchUpdate(id)),
        "/values:batchClear" => (m == Method::POST).then_some(Route::ValuesBatchClear(id)),
        "/values:batchGetByDataFilter" => Some(Route::Unsupported(
            "sheets.spreadsheets.values.batchGetByDataFilter",
        )),
        "/values:batchUpdateByDataFilter" => Some(Route::Unsupported(
            "sheets.spreadsheets.values.batchUpdateByDataFilter",
        )),
        "/values:batchClearByDataFilter" => Some(Route::Unsupported(
            "sheets.spreadsheets.values.batchClearByDataFilter",
        )),
        "/developerMetadata:search" => (m == Method::POST).then_some(Route::MetaSearch(id)),
        _ => {
            if let Some(mid) = tail.strip_prefix("/developerMetadata/") {
                return (m == Method::GET).then(|| Route::MetaGet(id, decode_segment(mid)));
            }
            if tail.starts_with("/sheets/") && tail.ends_with(":copyTo") {
                return Some(Route::Unsupported("sheets.spreadsheets.sheets.copyTo"));
            }
            let range_raw = tail.strip_prefix("/values/")?;
            if range_raw.is_empty() {
                return None;
            }
            match m {
                Method::GET => Some(Route::ValuesGet(id, decode_segment(range_raw))),
                Method::PUT => Some(Route::ValuesUpdate(id, decode_segment(range_raw))),
                Method::POST => {
                    if let Some(r) = range_raw.strip_suffix(":append") {
                        return Some(Route::ValuesAppend(id, decode_segment(r)));
                    }
                    if let Some(r) = range_raw.strip_suffix(":clear") {
                        return Some(Route::ValuesClear(id, decode_segment(r)));
                    }
                    let decoded = decode_segment(range_raw);
                    if let Some(r) = decoded.strip_suffix(":append") {
                        return Some(Route::ValuesAppend(id, r.to_string()));
                    }
                    if let Some(r) = decoded.strip_suffix(":clear") {
                        return Some(Route::ValuesClear(id, r.to_string()));
                    }
                    None
                }
                _ => None,
            }
        }
    }
}

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

/// Parses a JSON request body; empty bodies are `{}`.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON payload received. {e}")))
}

async fn entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 512 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return ApiError::bad_request("Unable to read the request body.").into_response(),
    };
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    if let Some(rest) = path.strip_prefix("/__emulator") {
        return crate::control::http(&shared, &parts.method, rest, &query, &bytes).await;
    }
    let Some(route) = route(&parts.method, &path) else {
        return ApiError::new(
            404,
            "NOT_FOUND",
            format!("Method not found: {} {}", parts.method, path),
        )
        .into_response();
    };
    let user = user_of(&parts.headers, &query);
    let has_credential = parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
        || query.get("accessToken").is_some()
        || query.get("oauthToken").is_some()
        || query.get("key").is_some();
    let resp = api_entry(&shared, &route, &query, &bytes, &user, has_credential).await;
    shared.log_request(crate::RequestRecord {
        method_id: route.method_id().to_string(),
        http_method: parts.method.to_string(),
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        user,
        status: resp.status().as_u16(),
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
                crate::faults::truncate_read(&mut v, rows);
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
        .partition(|e| e.trigger.when == crate::schedule::When::Before);
    crate::control::run_scheduled(shared, before, method_id);
    let result = dispatch(shared, route, q, bytes);
    crate::control::run_scheduled(shared, after, method_id);
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
pub(crate) fn dispatch(
    shared: &Shared,
    route: &Route,
    q: &Query,
    bytes: &[u8],
) -> Result<Reply, ApiError> {
    let body = || parse_body(bytes);
    let fields_set = q.get("fields").is_some_and(|f| !f.is_empty());
    let v = match route {
        Route::Create => sheets::create(shared, &body()?)?,
        Route::Get(id) => sheets::get(shared, id, q, fields_set)?,
        Route::BatchUpdate(id) => batch::batch_update(shared, id, &body()?)?,
        Route::ValuesGet(id, range) => sheets::values_get(shared, id, range, q)?,
        Route::ValuesBatchGet(id) => sheets::values_batch_get(shared, id, q)?,
        Route::ValuesUpdate(id, range) => sheets::values_update(shared, id, range, q, &body()?)?,
        Route::ValuesBatchUpdate(id) => sheets::values_batch_update(shared, id, &body()?)?,
        Route::ValuesAppend(id, range) => sheets::values_append(shared, id, range, q, &body()?)?,
        Route::ValuesClear(id, range) => sheets::values_clear(shared, id, range, &body()?)?,
        Route::ValuesBatchClear(id) => sheets::values_batch_clear(shared, id, &body()?)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_raw_paths() {
        let r = route(
            &Method::GET,
            "/v4/spreadsheets/abc/values/%27My%20Sheet%27%21A1%3AB2",
        );
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "'My Sheet'!A1:B2".into()))
        );
        let r = route(
            &Method::GET,
            "/v4/spreadsheets/abc/values/'My%20Sheet'!A1:B2",
        );
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "'My Sheet'!A1:B2".into()))
        );
        let r = route(
            &Method::POST,
            "/v4/spreadsheets/abc/values/Sheet1!A:A:append",
        );
        assert_eq!(
            r,
            Some(Route::ValuesAppend("abc".into(), "Sheet1!A:A".into()))
        );
        let r = route(
            &Method::POST,
            "/v4/spreadsheets/abc/values/%27Sheet1%27%21A1%3A1%3Aclear",
        );
        assert_eq!(
            r,
            Some(Route::ValuesClear("abc".into(), "'Sheet1'!A1:1".into()))
        );
        let r = route(&Method::GET, "/v4/spreadsheets/abc/values/Users+!1:101");
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "Users !1:101".into()))
        );
        let r = route(&Method::GET, "/v4/spreadsheets/abc/values/a%2Fb!A1");
        assert_eq!(r, Some(Route::ValuesGet("abc".into(), "a/b!A1".into())));
        assert_eq!(route(&Method::POST, "/v4/spreadsheets/abc/values/A1"), None);
        assert_eq!(
            route(&Method::POST, "/v4/spreadsheets"),
            Some(Route::Create)
        );
        assert_eq!(
            route(&Method::GET, "/v4/spreadsheets/abc/values:batchGet"),
            Some(Route::ValuesBatchGet("abc".into()))
        );
        assert_eq!(
            route(&Method::GET, "/v4/spreadsheets/abc/developerMetadata/12"),
            Some(Route::MetaGet("abc".into(), "12".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/drive/v3/files/xyz"),
            Some(Route::DriveDelete("xyz".into()))
        );
    }

    #[test]
    fn query_booleans_and_camel() {
        let q = Query::parse(Some(
            "include_values_in_response=True&ranges=a+b&ranges=c%20d",
        ));
        assert_eq!(q.bool("includeValuesInResponse").unwrap(), Some(true));
        assert_eq!(q.all("ranges"), vec!["a b".to_string(), "c d".to_string()]);
    }
}
