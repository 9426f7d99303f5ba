//! The emulator's configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::faults::{FaultRule, Latency};
use crate::model;
use crate::quota::QuotaConfig;

/// Emulator configuration. `Default` is meant for in-process tests: quotas off, no latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Quotas (disabled by default in the library; the binary uses Google's numbers).
    pub quota: QuotaConfig,
    /// Latency added to every Google API request.
    pub latency: Latency,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Clip explicitly bounded ranges that end beyond the grid instead of failing with
    /// `exceeds grid limits` (unverified Google behaviour, spec §3.4/§12).
    pub clip_explicit_ranges: bool,
    /// Cell cap per spreadsheet (Google: 10,000,000).
    pub cell_limit: u64,
    /// JSON file to load at start and save on shutdown and on `POST /__emulator/save`.
    pub state_file: Option<PathBuf>,
    /// Who person edits are attributed to when the edit names nobody.
    pub default_editor: String,
    /// Whether person row moves and sorts carry row developer metadata along (undocumented
    /// by Google, spec §12).
    pub metadata_follows_person_moves: bool,
    /// Answer 401 `UNAUTHENTICATED` to API requests without any credential (bearer token,
    /// `access_token` or `key`). Off by default: any token or none is accepted.
    pub require_credentials: bool,
}

impl Config {
    /// The binary's defaults: Google's quotas (60 per user, 300 per project, per minute).
    pub fn google_quotas() -> Self {
        Config {
            quota: QuotaConfig::google(),
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            quota: QuotaConfig::disabled(),
            latency: Latency::default(),
            faults: Vec::new(),
            clip_explicit_ranges: false,
            cell_limit: model::DEFAULT_CELL_LIMIT,
            state_file: None,
            default_editor: "person@example.com".into(),
            metadata_follows_person_moves: true,
            require_credentials: false,
        }
    }
}
