//! Shared test helpers: start an emulator, build a google-sheets4 hub, raw HTTP calls.
#![allow(dead_code)]

use bytes::Bytes;
use google_sheets4::hyper_util::client::legacy::connect::HttpConnector;
use google_sheets4::hyper_util::client::legacy::Client;
use google_sheets4::hyper_util::rt::TokioExecutor;
use google_sheets4::Sheets;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use sheetsync_emulator::{Config, EmulatorHandle};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The connector used by the test hubs.
pub type HttpConnectorAlias = HttpConnector;

/// Emulator with default (test) configuration.
pub async fn emulator() -> EmulatorHandle {
    EmulatorHandle::start(Config::default())
        .await
        .expect("start emulator")
}

/// google-sheets4 hub without token.
pub fn hub(emu: &EmulatorHandle) -> Sheets<HttpConnector> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut hub = Sheets::new(client, google_sheets4::common::NoToken);
    hub.base_url(emu.base_url());
    hub.root_url(emu.base_url());
    hub
}

/// google-sheets4 hub whose requests carry `Authorization: Bearer <token>`.
pub fn hub_with_token(emu: &EmulatorHandle, token: &str) -> Sheets<HttpConnector> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut hub = Sheets::new(client, token.to_string());
    hub.base_url(emu.base_url());
    hub.root_url(emu.base_url());
    hub
}

/// Percent-encodes a range for google-sheets4 path parameters (Byron/google-apis-rs#560).
pub fn enc(range: &str) -> String {
    percent_encoding::utf8_percent_encode(range, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A raw HTTP response.
pub struct Raw {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Value,
    pub text: String,
}

/// Sends a raw request to the emulator (`path` starts with `/`).
pub async fn raw(emu: &EmulatorHandle, method: &str, path: &str, body: Option<Value>) -> Raw {
    try_raw(emu, method, path, body).await.expect("response")
}

/// [`raw`], with transport errors (a dropped connection) as `Err`.
pub async fn try_raw(
    emu: &EmulatorHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Raw, String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let url = format!("http://{}{}", emu.addr(), path);
    let data = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(data)))
        .expect("request");
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Raw {
        status,
        content_type,
        body,
        text,
    })
}

/// The JSON body of a google-sheets4 `Error::BadRequest`.
pub fn bad_request(e: google_sheets4::Error) -> Value {
    match e {
        google_sheets4::Error::BadRequest(v) => v,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

/// A received webhook: lower-cased headers and the raw body.
pub struct Hook {
    /// Lower-cased header names and values.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Hook {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// A loopback HTTP receiver answering 200 to every POST.
pub async fn receiver() -> (String, mpsc::UnboundedReceiver<Hook>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/sheets", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let body = buf[head_end..head_end + len].to_vec();
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = tx.send(Hook { headers, body });
            });
        }
    });
    (url, rx)
}

/// The next webhook (waits up to 20 s).
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a webhook arrives")
        .expect("receiver alive")
}
