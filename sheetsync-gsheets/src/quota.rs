//! Staying under Google's per-minute quotas, and retrying what Google asks us to retry.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// At most `per_minute` requests in any 60 seconds (a sliding window: Google counts requests
/// per minute, and a plain token bucket that starts full lets up to twice the budget through in
/// one minute), paced by a small bucket (a sixth of the budget, refilled evenly) so that a busy
/// engine spends its budget across the minute instead of in one burst followed by a long stall.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    sent: Mutex<VecDeque<Instant>>,
    pace: Mutex<(f64, Instant)>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limiter for `per_minute` requests per minute (at least one).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        RateLimiter {
            per_minute,
            sent: Mutex::new(VecDeque::new()),
            pace: Mutex::new((Self::burst(per_minute), Instant::now())),
        }
    }

    /// The configured budget.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn burst(per_minute: u32) -> f64 {
        (per_minute as f64 / 6.0).max(1.0)
    }

    /// Waits until a request may be sent without exceeding the budget in any minute (and at
    /// the paced rate), then counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().expect("rate limiter lock poisoned");
                let mut pace = self.pace.lock().expect("rate limiter lock poisoned");
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    sent.pop_front();
                }
                let rate = self.per_minute as f64 / 60.0;
                let tokens = (pace.0 + now.duration_since(pace.1).as_secs_f64() * rate)
                    .min(Self::burst(self.per_minute));
                *pace = (tokens, now);
                let window_wait = if sent.len() < self.per_minute as usize {
                    Duration::ZERO
                } else {
                    WINDOW - now.duration_since(*sent.front().expect("full window"))
                };
                let pace_wait = if tokens >= 1.0 {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64((1.0 - tokens) / rate)
                };
                if window_wait.is_zero() && pace_wait.is_zero() {
                    sent.push_back(now);
                    pace.0 -= 1.0;
                    return;
                }
                window_wait.max(pace_wait)
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
    async fn never_more_than_the_budget_in_any_minute() {
        let l = RateLimiter::new(60);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..150 {
            l.acquire().await;
            sent.push(start.elapsed());
        }
        // A sixth of the budget at once, then one a second.
        assert_eq!(sent[9], Duration::ZERO, "a burst is available at once");
        assert_eq!(sent[10], Duration::from_secs(1), "then requests are paced");
        assert_eq!(sent[20], Duration::from_secs(11));
        // Any 60-second window holds at most 60 sends.
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(60))
                .count();
            assert!(
                in_window <= 60,
                "{in_window} sends in the minute from {t:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff::default();
        assert!(b.delay(0) >= Duration::from_secs(1) && b.delay(0) <= Duration::from_secs(2));
        assert!(b.delay(3) >= Duration::from_secs(8));
        assert_eq!(b.delay(30), Duration::from_secs(32));
    }
}
