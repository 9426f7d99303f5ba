//! Installable-trigger emulation: person edits POST a signed JSON payload to every webhook
//! registered on the spreadsheet (see `docs/webhook-payload.md`). Delivery runs on a
//! background task and never blocks the edit; every attempt is logged. A trigger registered in
//! journal mode appends the payload to the spreadsheet's journal tab instead (`docs/journal.md`,
//! done by [`crate::journal`] inside the edit's lock); the hub only keeps the registrations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A webhook registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// `http://127.0.0.1:PORT/path` (plain HTTP).
    pub url: String,
    /// HMAC secret.
    pub secret: String,
    /// Only edits on this sheet fire the trigger (all sheets if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet_id: Option<i32>,
}

/// A journal-mode registration (`{"mode": "journal"}` over HTTP): person edits append entries
/// to the `_sheetsync_journal` tab, as the Apps Script does in its default mode. The limits
/// stand in for the script's Script Properties.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalSpec {
    /// Only edits on this sheet fire the trigger (all sheets if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet_id: Option<i32>,
    /// `SHEETSYNC_MAX_ROWS`: an edit of more rows is one `OTHER` entry (default 2,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
    /// `SHEETSYNC_JOURNAL_MAX_ROWS`: a journal holding this many entries takes no more
    /// (default 20,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_max_rows: Option<usize>,
}

/// A trigger registration: a webhook (the JSON of [`TriggerSpec`], with `"mode": "webhook"`
/// or no `mode`) or a journal trigger (`"mode": "journal"` and the fields of [`JournalSpec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// POSTs signed payloads.
    Webhook(TriggerSpec),
    /// Appends entries to the journal tab.
    Journal(JournalSpec),
}

impl Registration {
    /// `webhook` or `journal`.
    pub fn mode(&self) -> &'static str {
        match self {
            Registration::Webhook(_) => "webhook",
            Registration::Journal(_) => "journal",
        }
    }

    /// The sheet filter.
    pub fn sheet_id(&self) -> Option<i32> {
        match self {
            Registration::Webhook(s) => s.sheet_id,
            Registration::Journal(s) => s.sheet_id,
        }
    }
}

impl From<TriggerSpec> for Registration {
    fn from(spec: TriggerSpec) -> Self {
        Registration::Webhook(spec)
    }
}

impl From<JournalSpec> for Registration {
    fn from(spec: JournalSpec) -> Self {
        Registration::Journal(spec)
    }
}

impl Serialize for Registration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A webhook keeps the JSON it always had (no `mode`), so older state files and
        // readers stay valid.
        match self {
            Registration::Webhook(spec) => spec.serialize(s),
            Registration::Journal(spec) => {
                let mut v = serde_json::to_value(spec).map_err(serde::ser::Error::custom)?;
                v["mode"] = Value::from("journal");
                v.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Registration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut v = Value::deserialize(d)?;
        let mode = match v.as_object_mut().and_then(|o| o.remove("mode")) {
            None => "webhook".to_string(),
            Some(Value::String(m)) => m,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "mode must be a string, got {other}"
                )))
            }
        };
        match mode.as_str() {
            "webhook" => serde_json::from_value(v).map(Registration::Webhook),
            "journal" => serde_json::from_value(v).map(Registration::Journal),
            m => {
                return Err(D::Error::custom(format!(
                    "unknown trigger mode \"{m}\" (webhook or journal)"
                )))
            }
        }
        .map_err(D::Error::custom)
    }
}

/// The edited rectangle, 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadRange {
    /// First row.
    pub start_row: u32,
    /// Last row.
    pub end_row: u32,
    /// First column.
    pub start_column: u32,
    /// Last column.
    pub end_column: u32,
}

/// One edited row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadRow {
    /// 1-based row number.
    pub row: u32,
    /// Values across the header's width (UNFORMATTED_VALUE, SERIAL_NUMBER; empty = "").
    pub values: Vec<Value>,
}

/// The webhook body (field order is part of the contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Always 1.
    pub version: u32,
    /// Spreadsheet id.
    pub spreadsheet_id: String,
    /// Sheet id.
    pub sheet_id: i32,
    /// Sheet title.
    pub sheet_name: String,
    /// `EDIT` | `INSERT_ROW` | `REMOVE_ROW` | `OTHER`.
    pub change_type: String,
    /// Unique event id.
    pub event_id: String,
    /// Unix milliseconds.
    pub timestamp: u64,
    /// Who edited.
    pub user: String,
    /// Edited rectangle (EDIT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PayloadRange>,
    /// Row 1 values.
    pub header: Vec<Value>,
    /// Edited rows (EDIT only).
    pub rows: Vec<PayloadRow>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Event id of the payload.
    pub event_id: String,
    /// Trigger id.
    pub trigger_id: String,
    /// Spreadsheet id.
    pub spreadsheet_id: String,
    /// Target URL.
    pub url: String,
    /// Change type.
    pub change_type: String,
    /// 2xx received.
    pub ok: bool,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    /// Transport error, or a non-2xx description.
    pub error: Option<String>,
}

struct Registered {
    spreadsheet_id: String,
    trigger_id: String,
    spec: Registration,
}

/// Registered triggers and the delivery log.
pub struct TriggerHub {
    triggers: Mutex<Vec<Registered>>,
    log: Arc<Mutex<Vec<Delivery>>>,
    next: AtomicU64,
}

impl Default for TriggerHub {
    fn default() -> Self {
        Self::new()
    }
}

/// `v1=<hex hmac-sha256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl TriggerHub {
    /// Empty hub.
    pub fn new() -> Self {
        TriggerHub {
            triggers: Mutex::new(Vec::new()),
            log: Arc::new(Mutex::new(Vec::new())),
            next: AtomicU64::new(1),
        }
    }

    /// Registers a trigger (a [`TriggerSpec`], a [`JournalSpec`] or a [`Registration`]);
    /// returns its id.
    pub fn add(&self, spreadsheet_id: &str, spec: impl Into<Registration>) -> String {
        let id = format!("trigger-{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.triggers.lock().push(Registered {
            spreadsheet_id: spreadsheet_id.to_string(),
            trigger_id: id.clone(),
            spec: spec.into(),
        });
        id
    }

    /// The journal triggers of a spreadsheet that an edit of sheet `sheet_id` fires.
    pub fn journals(&self, spreadsheet_id: &str, sheet_id: i32) -> Vec<JournalSpec> {
        self.triggers
            .lock()
            .iter()
            .filter(|t| t.spreadsheet_id == spreadsheet_id)
            .filter_map(|t| match &t.spec {
                Registration::Journal(j) if j.sheet_id.is_none_or(|s| s == sheet_id) => {
                    Some(j.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Triggers of one spreadsheet as (id, registration).
    pub fn list(&self, spreadsheet_id: &str) -> Vec<(String, Registration)> {
        self.triggers
            .lock()
            .iter()
            .filter(|t| t.spreadsheet_id == spreadsheet_id)
            .map(|t| (t.trigger_id.clone(), t.spec.clone()))
            .collect()
    }

    /// All triggers as (spreadsheet id, registration) for the state file.
    pub fn all(&self) -> Vec<(String, Registration)> {
        self.triggers
            .lock()
            .iter()
            .map(|t| (t.spreadsheet_id.clone(), t.spec.clone()))
            .collect()
    }

    /// Replaces all triggers (state file load).
    pub fn replace_all(&self, all: Vec<(String, Registration)>) {
        self.triggers.lock().clear();
        for (sid, spec) in all {
            self.add(&sid, spec);
        }
    }

    /// Removes the triggers of a spreadsheet.
    pub fn remove_spreadsheet(&self, spreadsheet_id: &str) {
        self.triggers
            .lock()
            .retain(|t| t.spreadsheet_id != spreadsheet_id);
    }

    /// Removes all triggers and the log.
    pub fn clear(&self) {
        self.triggers.lock().clear();
        self.log.lock().clear();
    }

    /// The delivery log.
    pub fn log(&self) -> Vec<Delivery> {
        self.log.lock().clone()
    }

    /// Sends a payload to every matching webhook trigger in the background.
    pub fn fire(&self, payload: &Payload) {
        let targets: Vec<(String, TriggerSpec)> = self
            .triggers
            .lock()
            .iter()
            .filter(|t| t.spreadsheet_id == payload.spreadsheet_id)
            .filter_map(|t| match &t.spec {
                Registration::Webhook(w) if w.sheet_id.is_none_or(|s| s == payload.sheet_id) => {
                    Some((t.trigger_id.clone(), w.clone()))
                }
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let body = serde_json::to_vec(payload).expect("payload serialises");
        let ts = payload.timestamp / 1000;
        for (tid, spec) in targets {
            let sig = signature(&spec.secret, ts, &body);
            let log = self.log.clone();
            let body = body.clone();
            let mut record = Delivery {
                event_id: payload.event_id.clone(),
                trigger_id: tid,
                spreadsheet_id: payload.spreadsheet_id.clone(),
                url: spec.url.clone(),
                change_type: payload.change_type.clone(),
                ok: false,
                status: None,
                error: None,
            };
            let task = async move {
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    post(&spec.url, ts, &sig, &body),
                )
                .await
                {
                    Ok(Ok(status)) => {
                        record.status = Some(status);
                        record.ok = (200..300).contains(&status);
                        if !record.ok {
                            record.error = Some(format!("HTTP {status}"));
                        }
                    }
                    Ok(Err(e)) => record.error = Some(e.to_string()),
                    Err(_) => record.error = Some("timed out after 10 s".into()),
                }
                log.lock().push(record);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(task);
                }
                Err(_) => {
                    std::thread::spawn(move || {
                        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            rt.block_on(task);
                        }
                    });
                }
            }
        }
    }
}

/// A minimal HTTP/1.1 POST over a plain TCP connection; returns the status code.
async fn post(url: &str, ts: u64, sig: &str, body: &[u8]) -> std::io::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// webhook URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Sheetsync-Timestamp: {ts}\r\nX-Sheetsync-Signature: {sig}\r\nUser-Agent: sheetsync-emulator\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // RFC 4231-independent check: recompute with the same primitives.
        let sig = signature("s3cret", 1_700_000_000, b"{\"a\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_eq!(sig.len(), 3 + 64);
    }

    #[test]
    fn registrations_read_old_webhook_json_and_the_journal_mode() {
        let old: Registration =
            serde_json::from_str(r#"{"url":"http://127.0.0.1:1/h","secret":"k","sheetId":3}"#)
                .unwrap();
        let spec = TriggerSpec {
            url: "http://127.0.0.1:1/h".into(),
            secret: "k".into(),
            sheet_id: Some(3),
        };
        assert_eq!(old, Registration::Webhook(spec.clone()));
        let tagged: Registration = serde_json::from_str(
            r#"{"mode":"webhook","url":"http://127.0.0.1:1/h","secret":"k","sheetId":3}"#,
        )
        .unwrap();
        assert_eq!(tagged, old);
        // A webhook is written as it always was.
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            serde_json::to_value(&spec).unwrap()
        );
        let journal: Registration = serde_json::from_str(r#"{"mode":"journal"}"#).unwrap();
        assert_eq!(journal, Registration::Journal(JournalSpec::default()));
        let full = Registration::Journal(JournalSpec {
            sheet_id: Some(0),
            max_rows: Some(5),
            journal_max_rows: Some(9),
        });
        let text = serde_json::to_string(&full).unwrap();
        assert!(text.contains(r#""mode":"journal""#), "{text}");
        assert_eq!(serde_json::from_str::<Registration>(&text).unwrap(), full);
        for bad in [
            r#"{"mode":"email"}"#,
            r#"{"mode":1}"#,
            r#"{"mode":"webhook"}"#,
        ] {
            assert!(serde_json::from_str::<Registration>(bad).is_err(), "{bad}");
        }
    }
}
