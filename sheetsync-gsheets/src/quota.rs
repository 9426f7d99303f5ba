//! Staying under Google's per-minute quotas, and retrying what Google asks us to retry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// A token bucket refilled continuously to `per_minute` requests per minute, holding at most
/// `per_minute` tokens (Google refills its quota every minute, so a full minute's budget may be
/// spent in a burst).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter for `per_minute` requests per minute (at least one).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        RateLimiter {
            per_minute,
            state: Mutex::new(Bucket {
                tokens: per_minute as f64,
                last: Instant::now(),
            }),
        }
    }

    /// The configured budget.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Waits until a request may be sent, then takes its token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().expect("rate limiter lock poisoned");
                let now = Instant::now();
                let rate = self.per_minute as f64 / 60.0;
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate)
                    .min(self.per_minute as f64);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Google's recommended exponential backoff: wait `min(2^n + random(0..=1000 ms), max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait (Google: one second).
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Retries before giving up.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(32),
            max_retries: 8,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let jitter_cap = self.initial.as_millis().min(1000) as u64;
        let jitter = Duration::from_millis(rand::rng().random_range(0..=jitter_cap));
        (exp + jitter).min(self.max)
    }
}

/// API calls made, by method id (`"values.batchGet"`, `"spreadsheets.batchUpdate"`, ...).
#[derive(Debug, Default)]
pub struct CallCounter {
    calls: Mutex<BTreeMap<&'static str, u64>>,
    retries: Mutex<BTreeMap<&'static str, u64>>,
}

impl CallCounter {
    pub(crate) fn count(&self, method: &'static str) {
        *self
            .calls
            .lock()
            .expect("counter lock")
            .entry(method)
            .or_default() += 1;
    }

    pub(crate) fn retry(&self, method: &'static str) {
        *self
            .retries
            .lock()
            .expect("counter lock")
            .entry(method)
            .or_default() += 1;
    }

    /// Requests sent, by method (retries included).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().expect("counter lock").clone()
    }

    /// Retries, by method.
    pub fn retries(&self) -> BTreeMap<&'static str, u64> {
        self.retries.lock().expect("counter lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_minutes_burst_then_paces() {
        let l = RateLimiter::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            l.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a full budget is available at once"
        );
        l.acquire().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(990) && waited <= Duration::from_millis(1010),
            "{waited:?}"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff::default();
        assert!(b.delay(0) >= Duration::from_secs(1) && b.delay(0) <= Duration::from_secs(2));
        assert!(b.delay(3) >= Duration::from_secs(8));
        assert_eq!(b.delay(30), Duration::from_secs(32));
    }
}
