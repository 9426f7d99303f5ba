//! The `sheetsync-emulator` binary: first line, quota and fault flags, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sheetsync-emulator"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line was {line:?}"));
    let addr = url.trim_end_matches('/').to_string();
    Running { child, addr }
}

/// One HTTP/1.1 request; returns (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn quota_flags_apply_per_token() {
    let emu = start(&["--read-per-user", "1", "--project-number", "7"]);
    let (status, created) = http(&emu.addr, "POST", "/v4/spreadsheets", "{}", Some("t1"));
    assert_eq!(status, 200);
    let id = created["spreadsheetId"].as_str().unwrap();
    let path = format!("/v4/spreadsheets/{id}/values/A1");
    assert_eq!(http(&emu.addr, "GET", &path, "", Some("t1")).0, 200);
    let (status, body) = http(&emu.addr, "GET", &path, "", Some("t1"));
    assert_eq!(status, 429);
    assert_eq!(
        body["error"]["message"],
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:7'."
    );
    assert_eq!(
        http(&emu.addr, "GET", &path, "", Some("t2")).0,
        200,
        "another token has its own quota"
    );
}

#[test]
fn fault_flags_and_sigterm() {
    let mut emu = start(&[
        "--error-rate",
        "1",
        "--error-status",
        "500",
        "--latency-ms",
        "1",
        "--jitter-ms",
        "2",
    ]);
    let (status, body) = http(&emu.addr, "GET", "/v4/spreadsheets/x", "", None);
    assert_eq!(status, 500);
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})
    );
    // Control endpoints are never faulted.
    assert_eq!(
        http(&emu.addr, "DELETE", "/__emulator/faults", "", None).0,
        200
    );
    assert_eq!(
        http(&emu.addr, "GET", "/v4/spreadsheets/x", "", None).0,
        404
    );
    Command::new("kill")
        .args(["-TERM", &emu.child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        emu.child.wait().unwrap().success(),
        "SIGTERM is a clean shutdown"
    );
}
