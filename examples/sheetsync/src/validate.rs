//! The configuration's checks at load: one sentence per problem, naming the setting and its
//! value, saying why it is wrong and what to write instead. What needs a connection (the
//! table's primary key, the Sheet) is checked by `sheetsync check`.

use std::net::SocketAddr;

use sheetsync::SyncConfig;

use crate::config::{Config, ServerConfig};

/// The shortest poll interval: below it a daemon spins on the API quota.
pub const MIN_POLL_MS: u64 = 100;
/// The shortest HTTP timeout.
pub const MIN_HTTP_TIMEOUT_MS: u64 = 100;
/// The shortest interval between two progress lines of a long read.
pub const MIN_PROGRESS_INTERVAL_MS: u64 = 100;
/// The shortest admin token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Every problem of `cfg`; takes spreadsheet URLs given as ids apart on the way.
pub fn problems(cfg: &mut Config) -> Vec<String> {
    let mut out = Vec::new();
    server(&cfg.server, &mut out);
    sheets(cfg, &mut out);
    replicas(cfg, &mut out);
    if let Some(filter) = &cfg.log.filter {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
            out.push(format!(
                "log.filter = {filter:?}: {e}; write a filter such as \"info,sqlx=warn\""
            ));
        }
    }
    if cfg.log.progress_interval_ms < MIN_PROGRESS_INTERVAL_MS {
        out.push(format!(
            "log.progress_interval_ms = {}: a progress line more often than every {MIN_PROGRESS_INTERVAL_MS} ms floods the log; write a value such as 5000",
            cfg.log.progress_interval_ms
        ));
    }
    if cfg.mappings.is_empty() {
        out.push(
            "the configuration has no [[mapping]]; add one (see sheetsync.example.toml)".into(),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for m in &mut cfg.mappings {
        if !names.insert(m.sync.name.clone()) {
            out.push(format!(
                "two mappings are named {:?}; give each its own name",
                m.sync.name
            ));
        }
        mapping(m, &mut out);
    }
    out
}

/// The shortest replica heartbeat.
pub const MIN_HEARTBEAT_MS: u64 = 100;

fn replicas(cfg: &Config, out: &mut Vec<String>) {
    let r = &cfg.replicas;
    if r.heartbeat_ms < MIN_HEARTBEAT_MS {
        out.push(format!("replicas.heartbeat_ms = {}: below {MIN_HEARTBEAT_MS} ms every replica writes to every database all the time; write 1000", r.heartbeat_ms));
    }
    if r.ttl_ms < 2 * r.heartbeat_ms {
        out.push(format!("replicas.ttl_ms = {} is less than two heartbeats ({} ms): one late heartbeat would count a live replica as gone; write at least {}", r.ttl_ms, 2 * r.heartbeat_ms, 2 * r.heartbeat_ms));
    }
    let budget = cfg
        .sheets
        .reads_per_minute
        .min(cfg.sheets.writes_per_minute);
    // A budget of 0 is reported on its own; the split of it says nothing more.
    if budget > 0 && (r.quota_split == 0 || r.quota_split > budget) {
        out.push(format!("replicas.quota_split = {}: it divides the per-minute budgets (sheets.reads_per_minute = {}, sheets.writes_per_minute = {}) between the replicas, so write the number of replicas that share the credential, from 1 to {budget}", r.quota_split, cfg.sheets.reads_per_minute, cfg.sheets.writes_per_minute));
    }
}

fn server(s: &ServerConfig, out: &mut Vec<String>) {
    listen_address("server.listen", &s.listen, out);
    webhook_path(&s.webhook_path, out);
    if s.webhook_secret
        .as_deref()
        .is_some_and(|v| v.trim().is_empty())
    {
        out.push("server.webhook_secret is empty; set a long random value (`openssl rand -hex 32`), or leave it out to turn the webhook off".into());
    }
    if let Some(url) = &s.public_url {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            out.push(format!(
                "server.public_url = {url:?}: it is the address Google's servers post to; write a full URL such as \"https://sync.example.com{}\"",
                s.webhook_path
            ));
        }
    }
    admin(s, out);
    for (name, ms) in [
        ("header_timeout_ms", s.header_timeout_ms),
        ("body_timeout_ms", s.body_timeout_ms),
        ("idle_timeout_ms", s.idle_timeout_ms),
    ] {
        if ms < MIN_HTTP_TIMEOUT_MS {
            out.push(format!(
                "server.{name} = {ms}: clients need at least {MIN_HTTP_TIMEOUT_MS} ms; write a value such as {}",
                match name {
                    "header_timeout_ms" => 10_000,
                    "body_timeout_ms" => 30_000,
                    _ => 60_000,
                }
            ));
        }
    }
    if s.max_connections == 0 {
        out.push(
            "server.max_connections = 0: nothing could connect; write a value such as 128".into(),
        );
    }
    if s.max_connections_per_peer == 0 || s.max_connections_per_peer > s.max_connections.max(1) {
        out.push(format!(
            "server.max_connections_per_peer = {}: it must be between 1 and server.max_connections ({}); write a value such as 32",
            s.max_connections_per_peer, s.max_connections
        ));
    }
}

fn admin(s: &ServerConfig, out: &mut Vec<String>) {
    if let Some(t) = &s.admin_token {
        if t.chars().count() < MIN_TOKEN_LEN || t.chars().any(char::is_whitespace) {
            out.push(format!(
                "server.admin_token is {} characters long{}: it needs at least {MIN_TOKEN_LEN} and no spaces; generate one with `openssl rand -hex 32`",
                t.chars().count(),
                if t.chars().any(char::is_whitespace) { " with spaces" } else { "" }
            ));
        }
    }
    let Some(addr) = &s.admin_listen else { return };
    if let Some(path) = addr.strip_prefix("unix:") {
        if !path.starts_with('/') {
            out.push(format!(
                "server.admin_listen = {addr:?}: a Unix socket needs an absolute path, such as \"unix:/run/sheetsync/admin.sock\""
            ));
        }
        return;
    }
    if !listen_address("server.admin_listen", addr, out) {
        return;
    }
    if addr == &s.listen {
        out.push(format!(
            "server.admin_listen = {addr:?} is server.listen too: the admin API needs a listener of its own, such as \"127.0.0.1:8788\""
        ));
    }
    let loopback = addr
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
        || addr.starts_with("localhost:");
    if !loopback && s.admin_token.is_none() {
        out.push(format!(
            "server.admin_listen = {addr:?} is reachable from other hosts: set server.admin_token as well, or listen on a loopback address such as \"127.0.0.1:8788\""
        ));
    }
}

/// Checks a `host:port`; false when it is not one.
fn listen_address(setting: &str, addr: &str, out: &mut Vec<String>) -> bool {
    if addr.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains('/')
            && port.parse::<u16>().is_ok()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    });
    if !ok {
        let hint = match addr.parse::<u16>() {
            Ok(port) => format!("127.0.0.1:{port}"),
            Err(_) => "127.0.0.1:8787".into(),
        };
        out.push(format!(
            "{setting} = {addr:?} is not a host:port address; write one such as {hint:?}"
        ));
    }
    ok
}

fn webhook_path(path: &str, out: &mut Vec<String>) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    let problem = if !path.starts_with('/') {
        Some(format!("a path starts with '/'; write \"/{path}\""))
    } else if !path.chars().all(allowed) {
        Some("use letters, digits and - . _ ~ / only; write a path such as \"/webhook\"".into())
    } else if path == "/"
        || ["/healthz", "/metrics", "/api", "/demo"]
            .iter()
            .any(|own| path == *own || path.starts_with(&format!("{own}/")))
    {
        Some("the daemon answers there itself; write a path of its own such as \"/webhook\"".into())
    } else {
        None
    };
    if let Some(p) = problem {
        out.push(format!("server.webhook_path = {path:?}: {p}"));
    }
}

fn sheets(cfg: &Config, out: &mut Vec<String>) {
    let s = &cfg.sheets;
    for (setting, url) in [
        ("base_url", Some(&s.base_url)),
        ("drive_url", s.drive_url.as_ref()),
    ] {
        let Some(url) = url else { continue };
        if !url.starts_with("https://") && !url.starts_with("http://") || !url.ends_with('/') {
            out.push(format!(
                "sheets.{setting} = {url:?}: write a full URL ending in '/', such as \"https://sheets.googleapis.com/\""
            ));
        }
    }
    for (setting, n) in [
        ("reads_per_minute", s.reads_per_minute),
        ("writes_per_minute", s.writes_per_minute),
    ] {
        if n == 0 {
            out.push(format!(
                "sheets.{setting} = 0: nothing could be sent; write Google's quota, 60"
            ));
        }
    }
    if s.credentials
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        out.push("sheets.credentials is empty; write the path of the service-account key file, or leave it out for an emulator".into());
    }
}

fn mapping(m: &mut SyncConfig, out: &mut Vec<String>) {
    let name = m.sync.name.clone();
    let mut problem = |p: String| out.push(format!("mapping {name:?}: {p}"));
    if name.trim().is_empty() {
        problem("name is empty; give the mapping a name such as \"orders\"".into());
    }
    if m.spreadsheet_id.trim().is_empty() {
        problem("spreadsheet_id is empty; write the spreadsheet's id or URL".into());
    } else if let Err(e) = m.resolve_spreadsheet() {
        problem(format!("spreadsheet_id: {}", e.message()));
    }
    if m.header_row == 0 {
        problem(
            "header_row = 0: rows are numbered from 1; write header_row = 1 for the first row"
                .into(),
        );
    }
    const SCHEMES: [&str; 5] = [
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "sqlite:",
    ];
    if !SCHEMES.iter().any(|p| m.database_url.starts_with(p)) {
        problem(format!(
            "database_url must start with postgres://, mysql://, mariadb:// or sqlite: (got {:?})",
            sheetsync::sync::redact(&m.database_url)
        ));
    }
    if m.table.trim().is_empty() {
        problem(
            "table is empty; write the table's name, such as \"orders\" or \"public.orders\""
                .into(),
        );
    }
    let t = &m.sync.timing;
    if t.poll_interval_ms < MIN_POLL_MS {
        problem(format!(
            "timing.poll_interval_ms = {}: below {MIN_POLL_MS} ms the daemon spins on the API quota; write 2000 (the webhook makes edits arrive sooner anyway)",
            t.poll_interval_ms
        ));
    }
    if t.full_scan_interval_ms < t.poll_interval_ms.max(MIN_POLL_MS) {
        problem(format!(
            "timing.full_scan_interval_ms = {}: a full read at most once a cycle makes sense; write at least poll_interval_ms ({}), such as 600000",
            t.full_scan_interval_ms, t.poll_interval_ms
        ));
    }
    if t.change_batch == 0 {
        problem("timing.change_batch = 0: no change could be read; write 5000".into());
    }
    let mapped: Vec<String> = m.sync.columns.iter().map(|c| c.name.clone()).collect();
    if let Err(e) = m.sheet_status((!mapped.is_empty()).then_some(&mapped[..])) {
        problem(e.message().to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    for k in &m.sync.key {
        if !seen.insert(k) {
            problem(format!("key names {k:?} twice"));
        }
    }
}
