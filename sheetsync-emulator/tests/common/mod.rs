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
