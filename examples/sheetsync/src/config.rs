//! The daemon's configuration file's settings (TOML). Reading one, with `${VAR}` expansion,
//! environment overrides and the checks, is in `load`.

use std::time::Duration;

use serde::Deserialize;
use sheetsync::{SheetsConfig, SyncConfig};

use crate::access::{host_name, AdminAccess};
use crate::http::Limits;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach Google (or the emulator).
    #[serde(default)]
    pub sheets: SheetsConfig,
    /// The HTTP listener: webhook, `/healthz`, `/metrics`.
    #[serde(default)]
    pub server: ServerConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How replicas with this configuration share the mappings and the Google quota.
    #[serde(default)]
    pub replicas: ReplicasConfig,
    /// The mappings.
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<SyncConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The webhook's shared secret (env `SHEETSYNC_WEBHOOK_SECRET`). Without one the webhook
    /// is not mounted.
    pub webhook_secret: Option<String>,
    /// The public URL the Apps Script posts to (for `sheetsync apps-script`).
    pub public_url: Option<String>,
    /// The webhook's path.
    #[serde(default = "default_webhook_path")]
    pub webhook_path: String,
    /// The token every admin API request must carry (env `SHEETSYNC_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Serve the admin API only here, never on `listen`: a loopback `host:port`, or
    /// `unix:/path` (a socket only the daemon's user may open).
    pub admin_listen: Option<String>,
    /// Names the admin API's `Host` header may carry besides `localhost`, `127.0.0.1`, `::1`
    /// and the listen addresses.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a client may take to send a request's headers, in milliseconds.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in milliseconds.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// How long an idle connection stays open between requests, in milliseconds.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections open at once, per listener.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one IP address, per listener.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
}

fn default_listen() -> String {
    "127.0.0.1:8787".into()
}

fn default_webhook_path() -> String {
    "/webhook".into()
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_body_timeout_ms() -> u64 {
    30_000
}

fn default_idle_timeout_ms() -> u64 {
    60_000
}

fn default_max_connections() -> usize {
    128
}

fn default_max_connections_per_peer() -> usize {
    32
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            webhook_secret: None,
            public_url: None,
            webhook_path: default_webhook_path(),
            admin_token: None,
            admin_listen: None,
            allowed_hosts: Vec::new(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_connections: default_max_connections(),
            max_connections_per_peer: default_max_connections_per_peer(),
        }
    }
}

impl ServerConfig {
    /// The listener limits.
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
        }
    }

    /// Who may use the admin API: the token, and the host names its requests may carry.
    pub fn admin_access(&self) -> AdminAccess {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|h| h.to_string())
            .chain(self.allowed_hosts.iter().map(|h| host_name(h)))
            .collect();
        for addr in [Some(&self.listen), self.admin_listen.as_ref()]
            .into_iter()
            .flatten()
        {
            let wildcard = addr
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_unspecified());
            if !wildcard && !addr.starts_with("unix:") {
                hosts.push(host_name(addr));
            }
        }
        hosts.sort();
        hosts.dedup();
        AdminAccess {
            token: self.admin_token.clone(),
            hosts,
        }
    }
}

/// `[replicas]`: several daemons with this configuration divide the mappings between them
/// (see the README's "Replicas").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasConfig {
    /// Divide the mappings, at most ⌈M/N⌉ each (default); false: hot standby, the first
    /// replica to start runs every mapping and the others wait.
    #[serde(default = "yes")]
    pub share: bool,
    /// How often a replica writes its heartbeat and reconsiders its share, in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// How long a replica counts as alive after its last heartbeat, in milliseconds.
    #[serde(default = "default_replica_ttl_ms")]
    pub ttl_ms: u64,
    /// How many replicas share the Google credential's per-minute budget: each uses
    /// `sheets.reads_per_minute / quota_split` (and writes alike), so together they stay
    /// within it without talking to each other.
    #[serde(default = "default_quota_split")]
    pub quota_split: u32,
}

fn yes() -> bool {
    true
}

fn default_heartbeat_ms() -> u64 {
    sheetsync::ShareOptions::default().heartbeat.as_millis() as u64
}

fn default_replica_ttl_ms() -> u64 {
    sheetsync::ShareOptions::default().ttl.as_millis() as u64
}

fn default_quota_split() -> u32 {
    1
}

impl Default for ReplicasConfig {
    fn default() -> Self {
        ReplicasConfig {
            share: true,
            heartbeat_ms: default_heartbeat_ms(),
            ttl_ms: default_replica_ttl_ms(),
            quota_split: default_quota_split(),
        }
    }
}

impl ReplicasConfig {
    /// The sharing settings of the library.
    pub fn share_options(&self) -> sheetsync::ShareOptions {
        sheetsync::ShareOptions {
            enabled: self.share,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            ttl: Duration::from_millis(self.ttl_ms),
        }
    }

    /// `sheets` with this replica's part of the per-minute budgets.
    pub fn quota_part(&self, sheets: &SheetsConfig) -> SheetsConfig {
        let split = self.quota_split.max(1);
        SheetsConfig {
            reads_per_minute: (sheets.reads_per_minute / split).max(1),
            writes_per_minute: (sheets.writes_per_minute / split).max(1),
            ..sheets.clone()
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,sheetsync_core=debug` (env `RUST_LOG` wins).
    pub filter: Option<String>,
    /// How often a long read (the initial sync, a later full read) logs how far it got, in
    /// milliseconds, when stderr is not a terminal.
    #[serde(default = "default_progress_interval_ms")]
    pub progress_interval_ms: u64,
}

fn default_progress_interval_ms() -> u64 {
    5_000
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            filter: None,
            progress_interval_ms: default_progress_interval_ms(),
        }
    }
}

impl LogConfig {
    /// How often a long read says how far it got.
    pub fn progress_interval(&self) -> Duration {
        Duration::from_millis(self.progress_interval_ms)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}
