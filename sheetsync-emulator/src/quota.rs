//! Per-minute read/write quotas per user and per project (spec §7.1), answered with 429
//! `RESOURCE_EXHAUSTED` and Google's message and `ErrorInfo` details.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;

/// Quota limits. All four limits are per window (one minute by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QuotaConfig {
    /// Enforce quotas at all.
    pub enabled: bool,
    /// Read requests per minute per user.
    pub read_per_user: u32,
    /// Write requests per minute per user.
    pub write_per_user: u32,
    /// Read requests per minute per project.
    pub read_per_project: u32,
    /// Write requests per minute per project.
    pub write_per_project: u32,
    /// Project number shown in messages (`project_number:N`).
    pub project_number: u64,
    /// Window length in milliseconds (60,000 = Google's per-minute refill).
    pub window_ms: u64,
    /// Add a `Retry-After` header to 429s (Google sends none).
    pub retry_after: bool,
}

impl QuotaConfig {
    /// Google's numbers: 60 per user, 300 per project, per minute.
    pub fn google() -> Self {
        QuotaConfig {
            enabled: true,
            read_per_user: 60,
            write_per_user: 60,
            read_per_project: 300,
            write_per_project: 300,
            project_number: 123_456_789_012,
            window_ms: 60_000,
            retry_after: false,
        }
    }

    /// Quotas switched off (the library default).
    pub fn disabled() -> Self {
        QuotaConfig {
            enabled: false,
            ..Self::google()
        }
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self::disabled()
    }
}

/// Counters of the current window.
#[derive(Debug, Default)]
pub struct QuotaState {
    window: u64,
    per_user: HashMap<(String, bool), u32>,
    project: [u32; 2],
}

impl QuotaState {
    /// Forgets all counts (as if a new minute began).
    pub fn reset(&mut self) {
        self.per_user.clear();
        self.project = [0, 0];
    }

    /// Counts one request of `user`, or answers 429 if a limit is reached.
    /// `elapsed` is the emulator clock (real time plus any test offset).
    pub fn check(
        &mut self,
        cfg: &QuotaConfig,
        elapsed: Duration,
        user: &str,
        write: bool,
    ) -> Result<(), ApiError> {
        if !cfg.enabled {
            return Ok(());
        }
        let window = elapsed.as_millis() as u64 / cfg.window_ms.max(1);
        if window != self.window {
            self.window = window;
            self.reset();
        }
        let (user_limit, project_limit) = if write {
            (cfg.write_per_user, cfg.write_per_project)
        } else {
            (cfg.read_per_user, cfg.read_per_project)
        };
        let kind = if write { "Write" } else { "Read" };
        let used_user = self
            .per_user
            .get(&(user.to_string(), write))
            .copied()
            .unwrap_or(0);
        let used_project = self.project[usize::from(write)];
        let err = |per_user: bool| {
            let limit_text = if per_user {
                format!("{kind} requests per minute per user")
            } else {
                format!("{kind} requests per minute")
            };
            let limit_id = if per_user {
                format!("{kind}RequestsPerMinutePerUser")
            } else {
                format!("{kind}RequestsPerMinutePerProject")
            };
            let mut e = ApiError::new(
                429,
                "RESOURCE_EXHAUSTED",
                format!(
                    "Quota exceeded for quota metric '{kind} requests' and limit '{limit_text}' of service 'sheets.googleapis.com' for consumer 'project_number:{}'.",
                    cfg.project_number
                ),
            );
            e.details = Some(json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "consumer": format!("projects/{}", cfg.project_number),
                    "quota_limit": limit_id,
                    "quota_metric": format!("sheets.googleapis.com/{}_requests", kind.to_lowercase()),
                    "service": "sheets.googleapis.com",
                }
            }]));
            if cfg.retry_after {
                let ms_left = cfg.window_ms - (elapsed.as_millis() as u64 % cfg.window_ms.max(1));
                e.retry_after = Some(ms_left.div_ceil(1000));
            }
            e
        };
        if used_user >= user_limit {
            return Err(err(true));
        }
        if used_project >= project_limit {
            return Err(err(false));
        }
        *self.per_user.entry((user.to_string(), write)).or_default() += 1;
        self.project[usize::from(write)] += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_refill() {
        let cfg = QuotaConfig {
            read_per_user: 2,
            read_per_project: 3,
            ..QuotaConfig::google()
        };
        let mut q = QuotaState::default();
        let t = Duration::from_secs(1);
        assert!(q.check(&cfg, t, "a", false).is_ok());
        assert!(q.check(&cfg, t, "a", false).is_ok());
        let e = q.check(&cfg, t, "a", false).unwrap_err();
        assert_eq!(e.code, 429);
        assert!(e.message.contains("'Read requests per minute per user'"));
        assert!(
            q.check(&cfg, t, "a", true).is_ok(),
            "writes have their own quota"
        );
        assert!(q.check(&cfg, t, "b", false).is_ok());
        let e = q.check(&cfg, t, "c", false).unwrap_err();
        assert!(e.message.contains("'Read requests per minute'"));
        assert!(q.check(&cfg, Duration::from_secs(61), "a", false).is_ok());
    }
}
