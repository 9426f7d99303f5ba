//! The real-time path from the Sheet: the edits the Apps Script trigger reports, as a signed
//! webhook delivery (the receiver needs the `webhook` feature) or as entries of the edit journal
//! ([`crate::watch`]), both carrying the same payload and routed to tables by [`EditRouter`].
//!
//! The Apps Script shipped with this crate (`apps-script/sheetsync.gs`, install guide in
//! `apps-script/README.md`) runs as an installable `onEdit` + `onChange` trigger and POSTs a
//! signed JSON payload (version 1, `docs/webhook-payload.md`) carrying the edited rows' full
//! contents. [`WebhookReceiver`] authenticates each delivery (HMAC-SHA256 compared in constant
//! time, timestamp window, body size cap, content type), validates it ([`WebhookPayload`]),
//! drops duplicate event ids, and hands every new payload to a handler exactly once.
//!
//! Payloads are hints: deliveries can be lost, duplicated or reordered, so the host keeps a
//! periodic full read as the ground truth; for `INSERT_ROW`, `REMOVE_ROW` and `OTHER` the
//! payload carries no rows and the handler should schedule a re-read.
//!
//! # Duplicates
//!
//! An authenticated delivery whose event id was already applied is answered
//! `200 {"status":"duplicate"}` and **not** handed to the handler again; a delivery of an
//! event that a concurrent request is applying right now is answered `409` (retry). When the
//! handler fails (`503`) the event is not remembered, so a retry applies it.
//!
//! # Mounting the router
//!
//! (Not run as a doctest: the same flow runs in `tests/webhook.rs`; linking doctests against the
//! TLS stack fails in workspace-wide `--all-features` builds.)
//!
//! ```no_run
//! use std::sync::Arc;
//! use sheetsync_gsheets::webhook::{
//!     sign, WebhookConfig, WebhookHandler, WebhookPayload, WebhookReceiver,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<WebhookPayload>();
//! let handler: WebhookHandler = Arc::new(move |payload: WebhookPayload| {
//!     // Hand the rows to the engine and return quickly.
//!     tx.send(payload).map_err(|_| {
//!         sheetsync_core::Error::new(sheetsync_core::ErrorKind::Unexpected, "engine stopped")
//!     })
//! });
//! let secret = "from-your-secret-store"; // the same string given to the Apps Script's setup()
//! let receiver = WebhookReceiver::new(WebhookConfig::new(secret), handler)?;
//!
//! // Merge into the daemon's own axum router (a `Router` is a tower `Service`) ...
//! let app = axum::Router::new().merge(receiver.router("/hooks/sheetsync"));
//! // ... and serve it: axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await?;
//!
//! // What the Apps Script sends:
//! use tower::ServiceExt;
//! let body = br#"{"version":1,"spreadsheetId":"abc","sheetId":0,"sheetName":"Sheet1","changeType":"INSERT_ROW","eventId":"e-1","timestamp":1767225600123,"user":"","header":["id"],"rows":[]}"#;
//! # let body = String::from_utf8(body.to_vec())?.replace("1767225600123",
//! #     &(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis()).to_string());
//! # let body = body.as_bytes();
//! let ts = WebhookPayload::from_json(body)?.timestamp_secs();
//! let request = axum::http::Request::post("/hooks/sheetsync")
//!     .header("content-type", "application/json")
//!     .header("x-sheetsync-timestamp", ts.to_string())
//!     .header("x-sheetsync-signature", sign(secret.as_bytes(), ts, body))
//!     .body(axum::body::Body::from(body.to_vec()))?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(rx.recv().await.map(|p| p.event_id), Some("e-1".to_string()));
//! assert_eq!(receiver.stats().accepted, 1);
//! # Ok(())
//! # }
//! ```

pub mod payload;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub mod receiver;
mod router;
#[cfg(feature = "webhook")]
mod signature;

pub use payload::{
    ChangeType, EditRange, PayloadError, PayloadRow, WebhookPayload, PAYLOAD_VERSION,
};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use receiver::{
    RejectReason, WebhookConfig, WebhookHandler, WebhookReceiver, WebhookStats, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
pub use router::EditRouter;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use signature::{sign, verify};
