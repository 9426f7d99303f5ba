//! Clients that open connections and send nothing, or a byte now and then, cannot starve the
//! daemon: with 200 half-sent requests held open against a daemon limited to 150 open files,
//! signed webhooks and `/healthz` keep answering within a second, and the server closes the
//! half-sent requests and the trickling bodies after its timeouts. Loopback only, bounded in
//! connections and time.
//!
//! ```sh
//! cargo test -p sheetsync-cli --test slow_clients
//! ```

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{row, Backend, World};
use serde_json::json;

/// Idle, half-sent requests held open at once.
const IDLE: usize = 200;

/// Whether the server has closed `s` (end of stream or reset), waiting at most `wait`.
fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error answer first (408, 400), then the close
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn healthz(port: u16) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_clients_neither_starve_the_webhook_nor_stay_open() {
    let mut w = World::new(Backend::Sqlite, "slow").await;
    let rows = [(1, row(["1", "one", "", "", "", ""]))];
    // Polls are rare: an edit that arrives within a second came by the webhook.
    let m = w
        .add_mapping(
            "items",
            &rows,
            "timing = { poll_interval_ms = 60000, full_scan_interval_ms = 600000 }",
        )
        .await;
    // Fewer open files than idle connections: without a cap on connections the daemon runs out
    // of descriptors, and neither accepts the webhook nor opens its database.
    w.server_extra = "header_timeout_ms = 3000\nbody_timeout_ms = 2000\n\
                      max_connections = 64\nmax_connections_per_peer = 32"
        .into();
    w.fd_limit = Some(150);
    w.start().await;
    w.converge(m, &harness::rows_map(&rows)).await;

    let port = w.port;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let partial = format!("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: {i}\r\n");
        s.write_all(partial.as_bytes()).unwrap();
        idle.push(s);
    }
    // A body that trickles in at a byte every 200 ms (of the 100 it announces), with headers
    // that make the webhook read it (the signature is checked once the body is in).
    let mut trickle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Sheetsync-Timestamp: {now}\r\nX-Sheetsync-Signature: v1={}\r\nContent-Length: 100\r\n\r\n{{",
        "0".repeat(64)
    );
    trickle.write_all(head.as_bytes()).unwrap();
    let trickle_start = Instant::now();

    // While they are held: health and a signed webhook answer within a second.
    for _ in 0..5 {
        let start = Instant::now();
        let status = tokio::task::spawn_blocking(move || healthz(port))
            .await
            .unwrap();
        assert_eq!(
            status,
            Ok(200),
            "/healthz with {IDLE} idle connections open"
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    let before = w.emu.deliveries().len();
    let edited = Instant::now();
    w.type_cell(m, 1, "name", json!("edited during the flood"));
    let log = w
        .emu
        .wait_for_deliveries(before + 1, Duration::from_secs(1))
        .await;
    let delivery = log.get(before).cloned();
    assert!(
        delivery.as_ref().is_some_and(|d| d.ok),
        "the signed webhook was not accepted within a second ({:?}): {delivery:?}",
        edited.elapsed()
    );
    w.converge(
        m,
        &harness::rows_map(&[(1, row(["1", "edited during the flood", "", "", "", ""]))]),
    )
    .await;

    // The trickling body is cut off after the body timeout (2 s), long before it would end.
    let trickled = tokio::task::spawn_blocking(move || {
        let mut sent = 1;
        while sent < 100 && trickle_start.elapsed() < Duration::from_secs(15) {
            if trickle.write_all(b" ").is_err()
                || closed_by_server(&mut trickle, Duration::from_millis(200))
            {
                return Some(trickle_start.elapsed());
            }
            sent += 1;
        }
        None
    })
    .await
    .unwrap();
    assert!(
        trickled.is_some_and(|t| t < Duration::from_secs(6)),
        "a body trickling in at 5 bytes a second was kept open: {trickled:?}"
    );

    // Every half-sent request is closed by the server: made room for, or timed out (3 s).
    let open_after = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut open = 0;
        for s in &mut idle {
            let left = deadline.saturating_duration_since(Instant::now());
            if !closed_by_server(s, left.max(Duration::from_millis(1))) {
                open += 1;
            }
        }
        open
    })
    .await
    .unwrap();
    assert_eq!(
        open_after, 0,
        "half-sent requests the server kept open past its timeout"
    );
    assert!(w.daemon_running(), "the daemon stopped");
}
