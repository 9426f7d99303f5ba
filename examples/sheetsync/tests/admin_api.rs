//! The daemon's admin API is protected by its token, by the names its `Host` header may carry,
//! and, when configured, by a listener of its own that the webhook listener never stands in
//! for; the CLI finds the address and the token in the configuration.
//!
//! ```sh
//! cargo test -p sheetsync-cli --test admin_api
//! ```

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::time::Duration;

use harness::{row, Backend, World};
use serde_json::Value as Json;

/// One request on `127.0.0.1:port` with these extra header lines; the status and body.
fn raw(port: u16, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = if method == "POST" { "{}" } else { "" };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{headers}Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("an answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn world() -> World {
    let mut w = World::new(Backend::Sqlite, "admin").await;
    let rows = [(1, row(["1", "one", "", "", "", ""]))];
    let m = w.add_mapping("items", &rows, "").await;
    w.start().await;
    w.converge(m, &harness::rows_map(&rows)).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_token_and_one_of_the_hosts_names() {
    let w = world().await;
    let host = "Host: 127.0.0.1\r\n".to_string();
    let good = format!("{host}Authorization: Bearer {}\r\n", w.admin_token);

    let (status, body) = raw(w.port, "GET", "/api/conflicts", &host);
    assert_eq!(status, 401, "no token: {body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let wrong = format!("{host}Authorization: Bearer {}x\r\n", w.admin_token);
    let (status, body) = raw(w.port, "GET", "/api/conflicts", &wrong);
    assert_eq!(status, 401, "a wrong token: {body}");
    assert!(body.contains("wrong admin token"), "{body}");
    // A write is refused the same way.
    let (status, _) = raw(w.port, "POST", "/api/conflicts/resolve", &host);
    assert_eq!(status, 401);

    // DNS rebinding: a page on another name that resolves to this host.
    let rebound = format!(
        "Host: attacker.example:{}\r\nAuthorization: Bearer {}\r\n",
        w.port, w.admin_token
    );
    let (status, body) = raw(w.port, "GET", "/api/conflicts", &rebound);
    assert_eq!(status, 403, "a foreign Host: {body}");
    assert!(body.contains("attacker.example"), "{body}");

    let (status, body) = raw(w.port, "GET", "/api/status", &good);
    assert_eq!(status, 200, "{body}");
    let v: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mappings"][0]["mapping"], "items");
    // Health and metrics stay open: they show no rows.
    assert_eq!(raw(w.port, "GET", "/healthz", &host).0, 200);
    assert_eq!(raw(w.port, "GET", "/metrics", &host).0, 200);
    // The status page holds no data: it is served without the token, under the Host check.
    let (status, body) = raw(w.port, "GET", "/status", &host);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/status/app.js"), "{body}");
    assert_eq!(raw(w.port, "GET", "/status", &rebound).0, 403);
    // The demo's page and its edit endpoint exist in demo mode only.
    assert_eq!(raw(w.port, "POST", "/demo/api/edit", &host).0, 404);
    assert_eq!(raw(w.port, "GET", "/", &host).0, 404);

    // The CLI reads the token and address from the configuration.
    for args in [
        &["status"][..],
        &["conflicts", "list"],
        &["deletes", "list", "--mapping", "items"],
    ] {
        let out = w.cli(&w.cfg_path, args).await;
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    }
    let out = w.cli(&w.cfg_path, &["status", "--json"]).await;
    assert!(out.stdout.contains("\"mapping\": \"items\""), "{out:?}");
    let out = w.cli(&w.cfg_path, &["status"]).await;
    assert!(out.stdout.starts_with("items: up, "), "{out:?}");
    // With another token it is refused, and says why.
    let other = w.dir.join("other-token.toml");
    std::fs::write(
        &other,
        w.config_text()
            .replace(&w.admin_token, "another-token-of-some-length"),
    )
    .unwrap();
    let out = w.cli(&other, &["conflicts", "list"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("wrong admin token"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_or_listener_the_admin_api_is_off() {
    let mut w = World::new(Backend::Sqlite, "admin-off").await;
    let rows = [(1, row(["1", "one", "", "", "", ""]))];
    w.add_mapping("items", &rows, "").await;
    w.admin_token.clear();
    w.start().await;
    let (status, body) = raw(w.port, "GET", "/api/conflicts", "Host: 127.0.0.1\r\n");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("the admin API is off"), "{body}");
    let (status, body) = raw(w.port, "GET", "/status", "Host: 127.0.0.1\r\n");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("the admin API is off"), "{body}");
    let out = w.cli(&w.cfg_path, &["status"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("the admin API is off in this configuration"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_of_its_own_is_never_answered_by_the_webhook_listener() {
    let mut w = World::new(Backend::Sqlite, "admin-listener").await;
    let rows = [(1, row(["1", "one", "", "", "", ""]))];
    let m = w.add_mapping("items", &rows, "").await;
    let admin_port = free_port();
    w.server_extra = format!("admin_listen = \"127.0.0.1:{admin_port}\"");
    w.start().await;
    w.converge(m, &harness::rows_map(&rows)).await;
    let good = format!(
        "Host: 127.0.0.1\r\nAuthorization: Bearer {}\r\n",
        w.admin_token
    );
    let (status, body) = raw(w.port, "GET", "/api/status", &good);
    assert_eq!(
        status, 404,
        "the webhook listener answered the admin API: {body}"
    );
    assert_eq!(raw(w.port, "POST", "/api/conflicts/resolve", &good).0, 404);
    let (status, body) = raw(admin_port, "GET", "/api/status", &good);
    assert_eq!(status, 200, "{body}");
    // The status page goes where the admin API goes.
    assert_eq!(raw(w.port, "GET", "/status", &good).0, 404);
    assert_eq!(
        raw(admin_port, "GET", "/status", "Host: 127.0.0.1\r\n").0,
        200
    );
    let out = w.cli(&w.cfg_path, &["status"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    w.kill9();

    // A Unix socket only the daemon's user may open: its file permissions are the
    // protection, no token needed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let socket = w.dir.join("admin.sock");
        w.server_extra = format!("admin_listen = \"unix:{}\"", socket.display());
        w.admin_token.clear();
        w.start().await;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
        for args in [
            &["status"][..],
            &["conflicts", "list"],
            &["deletes", "list"],
        ] {
            let out = w.cli(&w.cfg_path, args).await;
            assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        }
        let (status, _) = raw(w.port, "GET", "/api/status", "Host: 127.0.0.1\r\n");
        assert_eq!(status, 404);
    }
}
