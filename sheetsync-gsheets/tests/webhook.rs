//! The webhook receiver: authentication, validation, replay protection, limits, statistics,
//! and the emulator's real deliveries end to end.
#![cfg(feature = "webhook")]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sheetsync_core::{Error, ErrorKind};
use sheetsync_emulator::{Config, EmulatorHandle, TriggerSpec};
use sheetsync_gsheets::webhook::{
    sign, verify, ChangeType, EditRange, PayloadError, PayloadRow, RejectReason, WebhookConfig,
    WebhookHandler, WebhookPayload, WebhookReceiver,
};
use tower::ServiceExt;

const SECRET: &str = "correct horse battery staple";
const PATH: &str = "/hooks/sheetsync";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A receiver whose handler records payloads; `fail_first` handler calls fail.
struct Fixture {
    receiver: WebhookReceiver,
    router: Router,
    seen: Arc<Mutex<Vec<WebhookPayload>>>,
    calls: Arc<AtomicUsize>,
}

fn fixture_with(config: WebhookConfig, fail_first: usize) -> Fixture {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), calls.clone());
    let handler: WebhookHandler = Arc::new(move |p: WebhookPayload| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if n < fail_first {
            return Err(Error::new(
                ErrorKind::Connection,
                "engine queue unavailable",
            ));
        }
        s.lock().unwrap().push(p);
        Ok(())
    });
    let receiver = WebhookReceiver::new(config, handler).expect("valid config");
    let router = receiver.router(PATH);
    Fixture {
        receiver,
        router,
        seen,
        calls,
    }
}

fn fixture() -> Fixture {
    fixture_with(WebhookConfig::new(SECRET), 0)
}

fn edit_payload(event_id: &str, timestamp: u64) -> WebhookPayload {
    WebhookPayload {
        version: 1,
        spreadsheet_id: "1AbC".into(),
        sheet_id: 0,
        sheet_name: "Sheet1".into(),
        change_type: ChangeType::Edit,
        event_id: event_id.into(),
        timestamp,
        user: "alice@example.com".into(),
        range: Some(EditRange {
            start_row: 2,
            end_row: 3,
            start_column: 1,
            end_column: 4,
        }),
        header: vec![json!("id"), json!("name"), json!("qty"), json!("when")],
        rows: vec![
            PayloadRow {
                row: 2,
                values: vec![json!(42), json!("Widget"), json!("#DIV/0!"), json!(43831)],
            },
            PayloadRow {
                row: 3,
                values: vec![json!(""), json!(""), json!(""), json!("")],
            },
        ],
    }
}

fn request(body: Vec<u8>, ts: &str, sig: &str) -> Request<Body> {
    Request::post(PATH)
        .header("content-type", "application/json")
        .header("x-sheetsync-timestamp", ts)
        .header("x-sheetsync-signature", sig)
        .body(Body::from(body))
        .unwrap()
}

/// A correctly signed request for a body whose timestamp is `ts_ms`.
fn signed(body: Vec<u8>, ts_ms: u64) -> Request<Body> {
    let ts = ts_ms / 1000;
    let sig = sign(SECRET.as_bytes(), ts, &body);
    request(body, &ts.to_string(), &sig)
}

/// A correctly signed request for a JSON value (any shape) stamped now.
fn signed_value(mut v: Value) -> Request<Body> {
    let ts = now_ms();
    if v.get("timestamp").is_some() {
        v["timestamp"] = json!(ts);
    }
    signed(serde_json::to_vec(&v).unwrap(), ts)
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
    (status, body)
}

/// Asserts a refusal: status, code, message containing `needle`, nothing handed over.
async fn assert_rejected(
    f: &Fixture,
    req: Request<Body>,
    status: StatusCode,
    reason: RejectReason,
    needle: &str,
) {
    let before = f.receiver.stats().rejected(reason);
    let (got, body) = send(&f.router, req).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], reason.as_str(), "{body}");
    let msg = body["message"].as_str().expect("message");
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    assert_eq!(f.receiver.stats().rejected(reason), before + 1);
    assert!(
        f.seen.lock().unwrap().is_empty(),
        "nothing reaches the handler"
    );
}

#[tokio::test]
async fn valid_payload_reaches_the_handler_exactly_once() {
    let f = fixture();
    let ts = now_ms();
    let p = edit_payload("ev-1", ts);
    let (status, body) = send(&f.router, signed(p.to_json(), ts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "accepted", "eventId": "ev-1"}));
    assert_eq!(*f.seen.lock().unwrap(), vec![p.clone()]);

    // The same delivery again (a retry after a lost answer, or a second trigger).
    let (status, body) = send(&f.router, signed(p.to_json(), ts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "duplicate", "eventId": "ev-1"}));
    // Same event id with a fresh timestamp and signature: still a duplicate.
    let later = edit_payload("ev-1", ts + 1000);
    let (status, body) = send(&f.router, signed(later.to_json(), ts + 1000)).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("duplicate"))
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1, "applied once");

    // A different event is applied.
    let q = edit_payload("ev-2", ts);
    assert_eq!(
        send(&f.router, signed(q.to_json(), ts)).await.0,
        StatusCode::OK
    );
    assert_eq!(f.seen.lock().unwrap().len(), 2);

    let stats = f.receiver.stats();
    assert_eq!((stats.accepted, stats.duplicates), (2, 2));
    assert_eq!(stats.rejected_total(), 0);
    assert_eq!(stats.rejected.len(), RejectReason::ALL.len());
}

#[tokio::test]
async fn every_change_type_is_accepted_without_rows() {
    let f = fixture();
    for (i, ct) in [
        ChangeType::InsertRow,
        ChangeType::RemoveRow,
        ChangeType::Other,
    ]
    .into_iter()
    .enumerate()
    {
        let ts = now_ms();
        let mut p = edit_payload(&format!("ev-{i}"), ts);
        p.change_type = ct;
        p.range = None;
        p.rows.clear();
        let (status, body) = send(&f.router, signed(p.to_json(), ts)).await;
        assert_eq!(status, StatusCode::OK, "{ct}: {body}");
        assert!(!p.to_json().windows(7).any(|w| w == b"\"range\""));
    }
    let seen = f.seen.lock().unwrap();
    let types: Vec<ChangeType> = seen.iter().map(|p| p.change_type).collect();
    assert_eq!(
        types,
        [
            ChangeType::InsertRow,
            ChangeType::RemoveRow,
            ChangeType::Other
        ]
    );
}

#[tokio::test]
async fn forged_signature_is_401() {
    let f = fixture();
    let ts = now_ms();
    let body = edit_payload("ev", ts).to_json();
    let forged = format!("v1={}", "ab".repeat(32));
    assert_rejected(
        &f,
        request(body, &(ts / 1000).to_string(), &forged),
        StatusCode::UNAUTHORIZED,
        RejectReason::BadSignature,
        "signature does not match",
    )
    .await;
}

#[tokio::test]
async fn wrong_secret_is_401() {
    let f = fixture();
    let ts = now_ms();
    let body = edit_payload("ev", ts).to_json();
    let sig = sign(b"not the secret", ts / 1000, &body);
    assert_rejected(
        &f,
        request(body, &(ts / 1000).to_string(), &sig),
        StatusCode::UNAUTHORIZED,
        RejectReason::BadSignature,
        "signature",
    )
    .await;
}

#[tokio::test]
async fn altered_body_or_timestamp_is_401() {
    let f = fixture();
    let ts = now_ms();
    let body = edit_payload("ev", ts).to_json();
    let sig = sign(SECRET.as_bytes(), ts / 1000, &body);
    let mut altered = body.clone();
    let at = altered.iter().position(|b| *b == b'W').expect("Widget");
    altered[at] = b'V';
    assert_rejected(
        &f,
        request(altered, &(ts / 1000).to_string(), &sig),
        StatusCode::UNAUTHORIZED,
        RejectReason::BadSignature,
        "signature",
    )
    .await;
    // The signature covers the header text: one second later is a different MAC.
    assert_rejected(
        &f,
        request(body, &(ts / 1000 + 1).to_string(), &sig),
        StatusCode::UNAUTHORIZED,
        RejectReason::BadSignature,
        "signature",
    )
    .await;
}

#[tokio::test]
async fn stale_timestamp_is_401() {
    let f = fixture();
    let ts = now_ms() - 10 * 60 * 1000;
    let body = edit_payload("ev", ts).to_json();
    assert_rejected(
        &f,
        signed(body, ts),
        StatusCode::UNAUTHORIZED,
        RejectReason::StaleTimestamp,
        "old",
    )
    .await;
}

#[tokio::test]
async fn future_timestamp_is_401() {
    let f = fixture();
    let ts = now_ms() + 10 * 60 * 1000;
    let body = edit_payload("ev", ts).to_json();
    assert_rejected(
        &f,
        signed(body, ts),
        StatusCode::UNAUTHORIZED,
        RejectReason::FutureTimestamp,
        "future",
    )
    .await;
}

#[tokio::test]
async fn tolerance_is_configurable() {
    let mut cfg = WebhookConfig::new(SECRET);
    cfg.tolerance = Duration::from_secs(3600);
    let f = fixture_with(cfg, 0);
    let ts = now_ms() - 10 * 60 * 1000;
    let (status, body) = send(&f.router, signed(edit_payload("ev", ts).to_json(), ts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn replay_window_forgets_the_oldest_ids() {
    let mut cfg = WebhookConfig::new(SECRET);
    cfg.replay_window_events = 2;
    let f = fixture_with(cfg, 0);
    let ts = now_ms();
    for id in ["a", "b", "c"] {
        let (s, b) = send(&f.router, signed(edit_payload(id, ts).to_json(), ts)).await;
        assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("accepted")));
    }
    // "b" and "c" are remembered; "a" fell out of the window of two.
    for id in ["b", "c"] {
        let (_, b) = send(&f.router, signed(edit_payload(id, ts).to_json(), ts)).await;
        assert_eq!(b["status"], "duplicate", "{id}");
    }
    let (_, b) = send(&f.router, signed(edit_payload("a", ts).to_json(), ts)).await;
    assert_eq!(b["status"], "accepted");
}

#[tokio::test]
async fn concurrent_delivery_of_the_same_event_is_409() {
    // The handler, while applying event "ev", receives a second delivery of "ev".
    let nested: Arc<Mutex<Option<(StatusCode, Value)>>> = Arc::new(Mutex::new(None));
    let slot: Arc<Mutex<Option<Router>>> = Arc::new(Mutex::new(None));
    let calls = Arc::new(AtomicUsize::new(0));
    let ts = now_ms();
    let body = edit_payload("ev", ts).to_json();
    let handler: WebhookHandler = {
        let (nested, slot, calls, body) =
            (nested.clone(), slot.clone(), calls.clone(), body.clone());
        Arc::new(move |_p: WebhookPayload| {
            calls.fetch_add(1, Ordering::SeqCst);
            let router = slot.lock().unwrap().clone().expect("router set");
            let res = futures::executor::block_on(send(&router, signed(body.clone(), ts)));
            *nested.lock().unwrap() = Some(res);
            Ok(())
        })
    };
    let receiver = WebhookReceiver::new(WebhookConfig::new(SECRET), handler).unwrap();
    let router = receiver.router(PATH);
    *slot.lock().unwrap() = Some(router.clone());
    let (status, _) = send(&router, signed(body.clone(), ts)).await;
    assert_eq!(status, StatusCode::OK);
    let (nested_status, nested_body) = nested.lock().unwrap().clone().expect("nested ran");
    assert_eq!(nested_status, StatusCode::CONFLICT, "{nested_body}");
    assert_eq!(nested_body["error"], "event_in_progress");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(receiver.stats().rejected(RejectReason::EventInProgress), 1);
    // Afterwards it is an ordinary duplicate.
    let (status, b) = send(&router, signed(body, ts)).await;
    assert_eq!(
        (status, &b["status"]),
        (StatusCode::OK, &json!("duplicate"))
    );
}

#[tokio::test]
async fn oversized_body_with_content_length_is_413() {
    let mut cfg = WebhookConfig::new(SECRET);
    cfg.max_body_bytes = 512;
    let f = fixture_with(cfg, 0);
    let ts = now_ms();
    let mut p = edit_payload("ev", ts);
    p.rows[0].values[1] = json!("x".repeat(600));
    let body = p.to_json();
    let len = body.len();
    let mut req = signed(body, ts);
    req.headers_mut()
        .insert("content-length", len.to_string().parse().unwrap());
    assert_rejected(
        &f,
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        RejectReason::PayloadTooLarge,
        "512",
    )
    .await;
}

/// A body of `chunks` chunks of `size` bytes without a length, counting polled chunks.
struct Chunks {
    left: usize,
    size: usize,
    polled: Arc<AtomicUsize>,
}

impl futures::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        self.polled.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Bytes::from(vec![b' '; self.size]))))
    }
}

#[tokio::test]
async fn oversized_streamed_body_is_413_without_buffering_it() {
    let f = fixture(); // 1 MiB default
    let polled = Arc::new(AtomicUsize::new(0));
    let stream = Chunks {
        left: 1024, // 64 MiB if read to the end
        size: 64 * 1024,
        polled: polled.clone(),
    };
    let ts = now_ms() / 1000;
    let req = Request::post(PATH)
        .header("content-type", "application/json")
        .header("x-sheetsync-timestamp", ts.to_string())
        .header("x-sheetsync-signature", format!("v1={}", "00".repeat(32)))
        .body(Body::from_stream(stream))
        .unwrap();
    assert_rejected(
        &f,
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        RejectReason::PayloadTooLarge,
        "1048576",
    )
    .await;
    let n = polled.load(Ordering::SeqCst);
    assert!(
        n <= 17,
        "read {n} chunks of 64 KiB; at most the 1 MiB limit plus one chunk may be read"
    );
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let f = fixture();
    let ts = now_ms();
    let mut req = signed(edit_payload("ev", ts).to_json(), ts);
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_rejected(
        &f,
        req,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RejectReason::UnsupportedMediaType,
        "text/plain",
    )
    .await;
    let mut req = signed(edit_payload("ev", ts).to_json(), ts);
    req.headers_mut().remove("content-type");
    assert_rejected(
        &f,
        req,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RejectReason::UnsupportedMediaType,
        "missing",
    )
    .await;
    // Parameters are fine.
    let mut req = signed(edit_payload("ev", ts).to_json(), ts);
    req.headers_mut().insert(
        "content-type",
        "Application/JSON; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(send(&f.router, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_malformed_headers_are_400() {
    let f = fixture();
    let ts = now_ms();
    let body = edit_payload("ev", ts).to_json();
    let sig = sign(SECRET.as_bytes(), ts / 1000, &body);

    let mut req = request(body.clone(), &(ts / 1000).to_string(), &sig);
    req.headers_mut().remove("x-sheetsync-timestamp");
    assert_rejected(
        &f,
        req,
        StatusCode::BAD_REQUEST,
        RejectReason::MissingHeader,
        "X-Sheetsync-Timestamp",
    )
    .await;
    let mut req = request(body.clone(), &(ts / 1000).to_string(), &sig);
    req.headers_mut().remove("x-sheetsync-signature");
    assert_rejected(
        &f,
        req,
        StatusCode::BAD_REQUEST,
        RejectReason::MissingHeader,
        "X-Sheetsync-Signature",
    )
    .await;
    for bad_ts in ["", "-5", "1.5", "12e3", "now", "123456789012345678901"] {
        assert_rejected(
            &f,
            request(body.clone(), bad_ts, &sig),
            StatusCode::BAD_REQUEST,
            RejectReason::MalformedHeader,
            "X-Sheetsync-Timestamp",
        )
        .await;
    }
    let bare_hex = sig.trim_start_matches("v1=").to_string();
    for bad_sig in [bare_hex.as_str(), "v2=00", "v1=zz", "v1="] {
        assert_rejected(
            &f,
            request(body.clone(), &(ts / 1000).to_string(), bad_sig),
            StatusCode::BAD_REQUEST,
            RejectReason::MalformedHeader,
            "X-Sheetsync-Signature",
        )
        .await;
    }
    // Still accepted when everything is right.
    let (status, _) = send(&f.router, request(body, &(ts / 1000).to_string(), &sig)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_json_is_400() {
    let f = fixture();
    let ts = now_ms();
    assert_rejected(
        &f,
        signed(b"{\"version\":1,".to_vec(), ts),
        StatusCode::BAD_REQUEST,
        RejectReason::MalformedJson,
        "not valid JSON",
    )
    .await;
    assert_rejected(
        &f,
        signed(b"[1,2,3]".to_vec(), ts),
        StatusCode::BAD_REQUEST,
        RejectReason::InvalidPayload,
        "JSON object",
    )
    .await;
}

#[tokio::test]
async fn wrong_version_is_400() {
    let f = fixture();
    let mut v = serde_json::to_value(edit_payload("ev", 0)).unwrap();
    v["version"] = json!(2);
    assert_rejected(
        &f,
        signed_value(v.clone()),
        StatusCode::BAD_REQUEST,
        RejectReason::UnsupportedVersion,
        "version 2",
    )
    .await;
    v.as_object_mut().unwrap().remove("version");
    assert_rejected(
        &f,
        signed_value(v),
        StatusCode::BAD_REQUEST,
        RejectReason::UnsupportedVersion,
        "missing \"version\"",
    )
    .await;
}

#[tokio::test]
async fn unknown_change_type_is_400() {
    let f = fixture();
    let mut v = serde_json::to_value(edit_payload("ev", 0)).unwrap();
    v["changeType"] = json!("INSERT_COLUMN");
    assert_rejected(
        &f,
        signed_value(v),
        StatusCode::BAD_REQUEST,
        RejectReason::InvalidPayload,
        "unknown changeType \"INSERT_COLUMN\"",
    )
    .await;
}

#[tokio::test]
async fn rows_on_remove_row_are_400() {
    let f = fixture();
    let mut v = serde_json::to_value(edit_payload("ev", 0)).unwrap();
    v["changeType"] = json!("REMOVE_ROW");
    v.as_object_mut().unwrap().remove("range");
    assert_rejected(
        &f,
        signed_value(v.clone()),
        StatusCode::BAD_REQUEST,
        RejectReason::InvalidPayload,
        "\"rows\" must be empty for REMOVE_ROW",
    )
    .await;
    v["rows"] = json!([]);
    v["range"] = json!({"startRow": 2, "endRow": 2, "startColumn": 1, "endColumn": 1});
    assert_rejected(
        &f,
        signed_value(v),
        StatusCode::BAD_REQUEST,
        RejectReason::InvalidPayload,
        "only allowed for EDIT",
    )
    .await;
}

#[tokio::test]
async fn header_timestamp_must_match_the_body() {
    let f = fixture();
    let ts = now_ms();
    let body = edit_payload("ev", ts - 60_000).to_json();
    let sig = sign(SECRET.as_bytes(), ts / 1000, &body);
    assert_rejected(
        &f,
        request(body, &(ts / 1000).to_string(), &sig),
        StatusCode::BAD_REQUEST,
        RejectReason::InvalidPayload,
        "floor(timestamp / 1000)",
    )
    .await;
}

#[tokio::test]
async fn handler_error_is_503_and_a_retry_applies_the_event() {
    let f = fixture_with(WebhookConfig::new(SECRET), 1);
    let ts = now_ms();
    let p = edit_payload("ev", ts);
    let (status, body) = send(&f.router, signed(p.to_json(), ts)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "handler_error");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("engine queue unavailable"));
    assert!(f.seen.lock().unwrap().is_empty());
    // The failed event was not remembered: the retry is applied, once.
    let (status, body) = send(&f.router, signed(p.to_json(), ts)).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("accepted"))
    );
    let (_, body) = send(&f.router, signed(p.to_json(), ts)).await;
    assert_eq!(body["status"], "duplicate");
    assert_eq!(*f.seen.lock().unwrap(), vec![p]);
    let stats = f.receiver.stats();
    assert_eq!(stats.rejected(RejectReason::HandlerError), 1);
    assert_eq!((stats.accepted, stats.duplicates), (1, 1));
}

#[tokio::test]
async fn only_post_is_routed() {
    let f = fixture();
    let res = f
        .router
        .clone()
        .oneshot(Request::get(PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let res = f
        .router
        .clone()
        .oneshot(Request::post("/elsewhere").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[test]
fn config_is_checked_and_the_secret_is_not_printed() {
    let handler: WebhookHandler = Arc::new(|_| Ok(()));
    let err = WebhookReceiver::new(WebhookConfig::new(""), handler.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    let mut cfg = WebhookConfig::new(SECRET);
    cfg.max_body_bytes = 0;
    assert!(WebhookReceiver::new(cfg, handler.clone()).is_err());
    let r = WebhookReceiver::new(WebhookConfig::new(SECRET), handler).unwrap();
    let shown = format!("{r:?}");
    assert!(
        !shown.contains(SECRET) && shown.contains("redacted"),
        "{shown}"
    );
}

#[test]
fn payload_rules() {
    let ok = edit_payload("ev", 1);
    ok.validate().expect("valid");
    let check = |f: &dyn Fn(&mut WebhookPayload), needle: &str| {
        let mut p = ok.clone();
        f(&mut p);
        let e = p.validate().unwrap_err();
        assert!(
            matches!(
                e,
                PayloadError::Invalid(_) | PayloadError::UnsupportedVersion(_)
            ),
            "{e}"
        );
        assert!(e.message().contains(needle), "{e} lacks {needle:?}");
        // from_json applies the same rules.
        assert!(WebhookPayload::from_json(&p.to_json()).is_err());
    };
    check(&|p| p.version = 3, "version 3");
    check(&|p| p.event_id.clear(), "\"eventId\" must not be empty");
    check(&|p| p.spreadsheet_id.clear(), "\"spreadsheetId\"");
    check(&|p| p.user = "u".repeat(2000), "\"user\" is 2000 bytes");
    check(&|p| p.sheet_id = -1, "negative");
    check(&|p| p.range = None, "\"range\" is required for EDIT");
    check(&|p| p.rows[0].row = 0, "1-based");
    check(&|p| p.rows[1].row = 4, "outside the edited range");
    check(&|p| p.rows.swap(0, 1), "ascending");
    check(
        &|p| {
            p.rows.pop();
        },
        "one entry per row",
    );
    check(&|p| p.rows[0].values.push(json!(1)), "expected 4");
    check(
        &|p| p.rows[1].values[0] = Value::Null,
        "number, string or boolean",
    );
    check(&|p| p.header[0] = json!([1]), "header[0]");
    check(&|p| p.range.as_mut().unwrap().start_row = 0, "1-based");
    check(
        &|p| {
            let r = p.range.as_mut().unwrap();
            r.start_column = 3;
            r.end_column = 2;
        },
        "inverted",
    );
    // A range wider than the header widens every row.
    let mut wide = ok.clone();
    wide.range.as_mut().unwrap().end_column = 6;
    for r in &mut wide.rows {
        r.values.resize(6, json!(""));
    }
    wide.validate().expect("rows as wide as the range");
    // Unknown fields are ignored.
    let mut v = serde_json::to_value(&ok).unwrap();
    v["future"] = json!(true);
    let parsed = WebhookPayload::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(parsed, ok);
}

#[test]
fn sign_matches_the_documented_construction() {
    use hmac::{Hmac, Mac};
    let body = b"{\"version\":1}";
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"1767225600.{\"version\":1}");
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sign(SECRET.as_bytes(), 1_767_225_600, body), expected);
    assert!(verify(SECRET.as_bytes(), "1767225600", body, &expected));
    assert!(verify(
        SECRET.as_bytes(),
        "1767225600",
        body,
        &expected.to_uppercase().replacen("V1=", "v1=", 1)
    ));
    assert!(!verify(SECRET.as_bytes(), "1767225600", body, "v1=00"));
}

/// Serves a receiver on 127.0.0.1:0; returns its URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}{PATH}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_deliveries_are_accepted_end_to_end() {
    let f = fixture();
    let url = serve(f.router.clone()).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu.create_spreadsheet("Orders").unwrap();
    emu.set_cells(
        &id,
        "Sheet1!A1",
        vec![
            vec![json!("id"), json!("sku"), json!("qty"), json!("when")],
            vec![json!("1"), json!("'007"), json!("3"), json!("2020-01-01")],
            vec![json!("2"), json!("b"), json!("4"), json!("")],
        ],
    )
    .unwrap();
    emu.add_trigger(
        &id,
        TriggerSpec {
            url: url.clone(),
            secret: SECRET.into(),
            sheet_id: None,
        },
    )
    .unwrap();
    // A second trigger with another secret is refused by this receiver.
    emu.add_trigger(
        &id,
        TriggerSpec {
            url,
            secret: "someone else's".into(),
            sheet_id: None,
        },
    )
    .unwrap();

    emu.edit_as(
        &id,
        "alice@example.com",
        sheetsync_emulator::PersonEdit::SetCells {
            range: "Sheet1!B3".into(),
            values: vec![vec![json!("0042"), json!("TRUE")]],
        },
    )
    .unwrap();
    emu.insert_rows(&id, "Sheet1", 4, 1).unwrap();
    emu.delete_rows(&id, "Sheet1", 4, 1).unwrap();
    emu.move_rows(&id, "Sheet1", 2, 1, 4).unwrap();
    let log = emu.wait_for_deliveries(8, Duration::from_secs(30)).await;
    assert_eq!(log.len(), 8, "{log:?}");
    let mut ok = 0;
    for d in &log {
        if d.ok {
            assert_eq!(d.status, Some(200), "{d:?}");
            ok += 1;
        } else {
            assert_eq!(d.status, Some(401), "{d:?}");
        }
    }
    assert_eq!(ok, 4, "{log:?}");

    // Deliveries run concurrently and may arrive in any order.
    let seen = f.seen.lock().unwrap().clone();
    let mut types: Vec<&str> = seen.iter().map(|p| p.change_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["EDIT", "INSERT_ROW", "OTHER", "REMOVE_ROW"]);
    let edit = seen
        .iter()
        .find(|p| p.change_type == ChangeType::Edit)
        .expect("the EDIT");
    assert_eq!(edit.spreadsheet_id, id);
    assert_eq!(edit.user, "alice@example.com");
    assert_eq!(
        edit.range,
        Some(EditRange {
            start_row: 3,
            end_row: 3,
            start_column: 2,
            end_column: 3
        })
    );
    assert_eq!(
        edit.header,
        vec![json!("id"), json!("sku"), json!("qty"), json!("when")]
    );
    assert_eq!(
        edit.rows,
        vec![PayloadRow {
            row: 3,
            values: vec![json!(2), json!(42), json!(true), json!("")]
        }]
    );
    let stats = f.receiver.stats();
    assert_eq!(stats.accepted, 4);
    assert_eq!(stats.rejected(RejectReason::BadSignature), 4);
    emu.shutdown().await;
}
