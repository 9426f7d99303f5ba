//! The HTTP side: an axum router that authenticates deliveries and hands valid payloads to a
//! handler exactly once.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, Response, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sheetsync_core::{Error, ErrorKind};

use super::payload::{PayloadError, WebhookPayload};
use super::signature::verify;

/// Name of the header carrying the unix-seconds timestamp.
pub const TIMESTAMP_HEADER: &str = "x-sheetsync-timestamp";
/// Name of the header carrying `v1=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "x-sheetsync-signature";

/// What the receiver calls for every authenticated, valid, not-yet-applied payload.
///
/// It runs on the async runtime's worker thread and must not block for long: hand the rows
/// to the engine (a channel, a `Notify`) and return. `Err` answers 503 so the sender retries;
/// the event is then *not* remembered as applied.
pub type WebhookHandler = Arc<dyn Fn(WebhookPayload) -> Result<(), Error> + Send + Sync>;

/// Receiver settings.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The shared HMAC secret (the same string given to the Apps Script's `setup`). Must not
    /// be empty.
    pub secret: String,
    /// Largest accepted body in bytes (default 1 MiB). Larger bodies are answered 413 without
    /// reading more than this many bytes.
    pub max_body_bytes: usize,
    /// How far `X-Sheetsync-Timestamp` may be from this machine's clock, either way (default
    /// 5 minutes).
    pub tolerance: Duration,
    /// How many applied event ids are remembered to drop duplicate deliveries (default
    /// 10,000; at least 1). A duplicate older than `tolerance` is refused by the timestamp check
    /// anyway, so this should exceed the events expected within twice the tolerance.
    pub replay_window_events: usize,
}

impl WebhookConfig {
    /// Defaults (1 MiB, 5 minutes, 10,000 events) with `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookConfig {
            secret: secret.into(),
            max_body_bytes: 1024 * 1024,
            tolerance: Duration::from_secs(5 * 60),
            replay_window_events: 10_000,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tolerance", &self.tolerance)
            .field("replay_window_events", &self.replay_window_events)
            .finish()
    }
}

/// Why a delivery was refused. Each has a stable [code](RejectReason::as_str) used in the
/// JSON error body, the log line and [`WebhookStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// 415: `Content-Type` is missing or not `application/json`.
    UnsupportedMediaType,
    /// 400: `X-Sheetsync-Timestamp` or `X-Sheetsync-Signature` is missing.
    MissingHeader,
    /// 400: a header is not decimal seconds / not `v1=<hex>` / not ASCII.
    MalformedHeader,
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// 400: the body could not be read (connection dropped mid-body).
    BodyReadError,
    /// 401: the timestamp is older than `tolerance`.
    StaleTimestamp,
    /// 401: the timestamp is further than `tolerance` in the future.
    FutureTimestamp,
    /// 401: the signature does not match (wrong secret, altered body or timestamp).
    BadSignature,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: `version` is not 1.
    UnsupportedVersion,
    /// 400: the JSON breaks the version 1 contract (shape, `changeType`, rows, sizes, the
    /// header timestamp differs from the body's).
    InvalidPayload,
    /// 409: the same event id is being applied by a concurrent delivery right now; retry.
    EventInProgress,
    /// 503: the handler failed; the event was not applied and may be retried.
    HandlerError,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 13] = [
        RejectReason::UnsupportedMediaType,
        RejectReason::MissingHeader,
        RejectReason::MalformedHeader,
        RejectReason::PayloadTooLarge,
        RejectReason::BodyReadError,
        RejectReason::StaleTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::BadSignature,
        RejectReason::MalformedJson,
        RejectReason::UnsupportedVersion,
        RejectReason::InvalidPayload,
        RejectReason::EventInProgress,
        RejectReason::HandlerError,
    ];

    /// The stable code (`bad_signature`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::MissingHeader => "missing_header",
            RejectReason::MalformedHeader => "malformed_header",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::BodyReadError => "body_read_error",
            RejectReason::StaleTimestamp => "stale_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::InvalidPayload => "invalid_payload",
            RejectReason::EventInProgress => "event_in_progress",
            RejectReason::HandlerError => "handler_error",
        }
    }

    /// The HTTP status answered.
    pub fn status(self) -> StatusCode {
        match self {
            RejectReason::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RejectReason::MissingHeader
            | RejectReason::MalformedHeader
            | RejectReason::BodyReadError
            | RejectReason::MalformedJson
            | RejectReason::UnsupportedVersion
            | RejectReason::InvalidPayload => StatusCode::BAD_REQUEST,
            RejectReason::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RejectReason::StaleTimestamp
            | RejectReason::FutureTimestamp
            | RejectReason::BadSignature => StatusCode::UNAUTHORIZED,
            RejectReason::EventInProgress => StatusCode::CONFLICT,
            RejectReason::HandlerError => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn index(self) -> usize {
        RejectReason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every reason is in ALL")
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters since the receiver was created, for the host's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookStats {
    /// Payloads handed to the handler successfully.
    pub accepted: u64,
    /// Authenticated deliveries of an event already applied (answered 200, not applied again).
    pub duplicates: u64,
    /// Refused deliveries per reason (every reason present, zero included).
    pub rejected: BTreeMap<RejectReason, u64>,
}

impl WebhookStats {
    /// Refusals for one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    /// All refusals.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Event ids applied (bounded FIFO) and being applied.
#[derive(Default)]
struct Replay {
    done: HashSet<String>,
    order: VecDeque<String>,
    in_flight: HashSet<String>,
}

struct Inner {
    config: WebhookConfig,
    handler: WebhookHandler,
    replay: Mutex<Replay>,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

impl Inner {
    fn replay(&self) -> MutexGuard<'_, Replay> {
        // A panic while holding the lock leaves the sets consistent (single inserts/removes).
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the in-flight mark when the handler returns or panics.
struct InFlight<'a> {
    inner: &'a Inner,
    event_id: &'a str,
    applied: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut r = self.inner.replay();
        r.in_flight.remove(self.event_id);
        if self.applied {
            let cap = self.inner.config.replay_window_events.max(1);
            while r.order.len() >= cap {
                if let Some(old) = r.order.pop_front() {
                    r.done.remove(&old);
                }
            }
            r.done.insert(self.event_id.to_string());
            r.order.push_back(self.event_id.to_string());
        }
    }
}

/// The webhook receiver. Cheap to clone (clones share counters and the replay window).
///
/// Answers, always with a JSON body:
///
/// | Status | Body | When |
/// |---|---|---|
/// | 200 | `{"status":"accepted","eventId":…}` | handed to the handler |
/// | 200 | `{"status":"duplicate","eventId":…}` | the event id was already applied: **not** applied again (idempotent success, so a sender that retries after a lost answer stops) |
/// | 400 | `{"error":"missing_header" \| "malformed_header" \| "malformed_json" \| "unsupported_version" \| "invalid_payload" \| "body_read_error","message":…}` | |
/// | 401 | `{"error":"bad_signature" \| "stale_timestamp" \| "future_timestamp",…}` | |
/// | 409 | `{"error":"event_in_progress",…}` | a concurrent delivery of the same event is being applied; retry |
/// | 413 | `{"error":"payload_too_large",…}` | |
/// | 415 | `{"error":"unsupported_media_type",…}` | |
/// | 503 | `{"error":"handler_error",…}` | the handler failed; retry |
///
/// Checks run in this order: content type, declared length, headers, timestamp window,
/// body size while reading, signature, JSON, payload rules (including that the header
/// timestamp is `floor(body.timestamp / 1000)`), replay, handler. Only authenticated
/// payloads reach the replay window and the handler.
#[derive(Clone)]
pub struct WebhookReceiver {
    inner: Arc<Inner>,
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// An answer before it becomes an HTTP response.
struct Outcome {
    status: StatusCode,
    body: serde_json::Value,
}

impl WebhookReceiver {
    /// A receiver calling `handler` for every valid payload.
    ///
    /// Fails with [`ErrorKind::ConfigInvalid`] when the secret is empty or `max_body_bytes`
    /// is 0.
    pub fn new(config: WebhookConfig, handler: WebhookHandler) -> Result<Self, Error> {
        if config.secret.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the webhook secret must not be empty",
            ));
        }
        if config.max_body_bytes == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "webhook max_body_bytes must be greater than 0",
            ));
        }
        Ok(WebhookReceiver {
            inner: Arc::new(Inner {
                config,
                handler,
                replay: Mutex::new(Replay::default()),
                accepted: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.inner.config
    }

    /// A router answering `POST path` (other methods on `path` get 405). It is a tower
    /// `Service`; merge it into the host's router (`app.merge(receiver.router("/hook"))`,
    /// or `.with_state(())` first when the host router has a state type) or serve it alone.
    pub fn router(&self, path: &str) -> Router {
        let this = self.clone();
        Router::new().route(
            path,
            post(move |req: Request<Body>| {
                let this = this.clone();
                async move { this.handle(req).await }
            }),
        )
    }

    /// Handles one request (what the router calls), for hosts that route themselves.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let out = self.process(req).await;
        let body = serde_json::to_vec(&out.body).expect("a JSON value serialises");
        Response::builder()
            .status(out.status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a valid response")
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WebhookStats {
        let i = &self.inner;
        WebhookStats {
            accepted: i.accepted.load(Ordering::Relaxed),
            duplicates: i.duplicates.load(Ordering::Relaxed),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| (*r, i.rejected[r.index()].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    fn reject(&self, reason: RejectReason, message: impl Into<String>) -> Outcome {
        let message = message.into();
        self.inner.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        let status = reason.status();
        if status.is_server_error() {
            tracing::error!(reason = reason.as_str(), status = status.as_u16(), %message, "webhook delivery refused");
        } else {
            tracing::warn!(reason = reason.as_str(), status = status.as_u16(), %message, "webhook delivery refused");
        }
        Outcome {
            status,
            body: serde_json::json!({"error": reason.as_str(), "message": message}),
        }
    }

    async fn process(&self, req: Request<Body>) -> Outcome {
        let cfg = &self.inner.config;
        let (parts, body) = req.into_parts();
        let headers = &parts.headers;

        let (ts_text, ts, sig_text) = match self.check_headers(headers) {
            Ok(h) => h,
            Err(rejected) => return rejected,
        };
        let bytes = match Limited::new(body, cfg.max_body_bytes).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return self.reject(
                    RejectReason::PayloadTooLarge,
                    format!("body exceeds the limit of {} bytes", cfg.max_body_bytes),
                )
            }
            Err(e) => {
                return self.reject(
                    RejectReason::BodyReadError,
                    format!("reading the body failed: {e}"),
                )
            }
        };

        if !verify(cfg.secret.as_bytes(), &ts_text, &bytes, &sig_text) {
            return self.reject(
                RejectReason::BadSignature,
                "signature does not match the body and timestamp (wrong secret or altered request)",
            );
        }

        let payload = match self.parse_payload(&bytes, ts) {
            Ok(p) => p,
            Err(rejected) => return rejected,
        };
        self.apply_once(payload)
    }

    /// The headers' checks: content type, declared length, a well-formed timestamp within the
    /// tolerance and a well-formed signature. Returns the timestamp (as sent and parsed) and
    /// the signature, or the rejection.
    fn check_headers(&self, headers: &HeaderMap) -> Result<(String, u64, String), Outcome> {
        let cfg = &self.inner.config;
        if let Err(msg) = check_content_type(headers) {
            return Err(self.reject(RejectReason::UnsupportedMediaType, msg));
        }
        if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            if let Some(n) = len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
                if n > cfg.max_body_bytes as u64 {
                    return Err(self.reject(
                        RejectReason::PayloadTooLarge,
                        format!(
                            "body of {n} bytes exceeds the limit of {} bytes",
                            cfg.max_body_bytes
                        ),
                    ));
                }
            }
        }
        let ts_text = match header_text(headers, TIMESTAMP_HEADER) {
            Ok(t) => t,
            Err(r) => return Err(self.header_error(r, "X-Sheetsync-Timestamp")),
        };
        let sig_text = match header_text(headers, SIGNATURE_HEADER) {
            Ok(t) => t,
            Err(r) => return Err(self.header_error(r, "X-Sheetsync-Signature")),
        };
        let Some(ts) = parse_timestamp(&ts_text) else {
            return Err(self.reject(
                RejectReason::MalformedHeader,
                format!("X-Sheetsync-Timestamp must be decimal unix seconds, got {ts_text:?}"),
            ));
        };
        if !is_signature_shape(&sig_text) {
            return Err(self.reject(
                RejectReason::MalformedHeader,
                "X-Sheetsync-Signature must be \"v1=\" followed by 64 hex digits",
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tol = cfg.tolerance.as_secs();
        if ts.saturating_add(tol) < now {
            return Err(self.reject(
                RejectReason::StaleTimestamp,
                format!(
                    "timestamp {ts} is {} s old (tolerance {tol} s); check the sender's clock or a delayed retry",
                    now - ts
                ),
            ));
        }
        if ts > now.saturating_add(tol) {
            return Err(self.reject(
                RejectReason::FutureTimestamp,
                format!(
                    "timestamp {ts} is {} s in the future (tolerance {tol} s); check the clocks",
                    ts - now
                ),
            ));
        }

        Ok((ts_text, ts, sig_text))
    }

    /// The payload of a verified body, which must carry the headers' timestamp.
    fn parse_payload(&self, bytes: &[u8], ts: u64) -> Result<WebhookPayload, Outcome> {
        let payload = match WebhookPayload::from_json(bytes) {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    PayloadError::MalformedJson(_) => RejectReason::MalformedJson,
                    PayloadError::UnsupportedVersion(_) => RejectReason::UnsupportedVersion,
                    PayloadError::Invalid(_) => RejectReason::InvalidPayload,
                };
                return Err(self.reject(reason, e.message().to_string()));
            }
        };
        if payload.timestamp_secs() != ts {
            return Err(self.reject(
                RejectReason::InvalidPayload,
                format!(
                    "X-Sheetsync-Timestamp {ts} must equal floor(timestamp / 1000) = {}",
                    payload.timestamp_secs()
                ),
            ));
        }

        Ok(payload)
    }

    /// Hands the payload to the handler once per event id: a duplicate delivery is
    /// acknowledged, a concurrent one is asked to retry.
    fn apply_once(&self, payload: WebhookPayload) -> Outcome {
        let event_id = payload.event_id.clone();
        {
            let mut r = self.inner.replay();
            if r.done.contains(&event_id) {
                drop(r);
                self.inner.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::info!(event_id = %event_id, "webhook duplicate delivery ignored (already applied)");
                return Outcome {
                    status: StatusCode::OK,
                    body: serde_json::json!({"status": "duplicate", "eventId": event_id}),
                };
            }
            if !r.in_flight.insert(event_id.clone()) {
                drop(r);
                return self.reject(
                    RejectReason::EventInProgress,
                    format!("event {event_id} is being applied by another delivery; retry later"),
                );
            }
        }
        let mut guard = InFlight {
            inner: &self.inner,
            event_id: &event_id,
            applied: false,
        };
        let (spreadsheet, sheet, change, rows) = (
            payload.spreadsheet_id.clone(),
            payload.sheet_id,
            payload.change_type,
            payload.rows.len(),
        );
        match (self.inner.handler)(payload) {
            Ok(()) => {
                guard.applied = true;
                drop(guard);
                self.inner.accepted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(event_id = %event_id, spreadsheet_id = %spreadsheet, sheet_id = sheet, change_type = %change, rows, "webhook payload accepted");
                Outcome {
                    status: StatusCode::OK,
                    body: serde_json::json!({"status": "accepted", "eventId": event_id}),
                }
            }
            Err(e) => {
                drop(guard);
                self.reject(
                    RejectReason::HandlerError,
                    format!("the payload could not be applied now, retry: {e}"),
                )
            }
        }
    }

    fn header_error(&self, reason: RejectReason, name: &str) -> Outcome {
        let msg = match reason {
            RejectReason::MissingHeader => format!("missing header {name}"),
            _ => format!("header {name} is repeated or not visible ASCII"),
        };
        self.reject(reason, msg)
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), String> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Err("Content-Type is missing (expected application/json)".into());
    };
    let s = v
        .to_str()
        .map_err(|_| "Content-Type is not ASCII (expected application/json)".to_string())?;
    let mime = s.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!("Content-Type {s:?} is not application/json"))
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<String, RejectReason> {
    let mut all = headers.get_all(name).iter();
    let v = all.next().ok_or(RejectReason::MissingHeader)?;
    if all.next().is_some() {
        return Err(RejectReason::MalformedHeader);
    }
    v.to_str()
        .map(|s| s.trim().to_string())
        .map_err(|_| RejectReason::MalformedHeader)
}

fn parse_timestamp(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_signature_shape(s: &str) -> bool {
    s.strip_prefix(super::payload::SIGNATURE_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}
