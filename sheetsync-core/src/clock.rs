//! The engine's hybrid logical clock.
//!
//! Sheets gives no per-cell edit times and database clocks drift, so the engine stamps what it
//! observes with one clock of its own: milliseconds since the Unix epoch in the high 48 bits and a
//! counter in the low 16. It never runs backwards (also across restarts: its last value is
//! persisted) and source timestamps can be folded in with [`Clock::stamp`].

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

const COUNTER_BITS: u32 = 16;

/// A hybrid logical clock.
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// A clock that will never return a value at or below `last`.
    pub fn starting_after(last: u64) -> Self {
        Clock {
            last: AtomicU64::new(last),
        }
    }

    /// A fresh timestamp, greater than every earlier one.
    pub fn now(&self) -> u64 {
        self.advance(physical_now())
    }

    /// A timestamp for an event the source says happened at `at`: `at` itself when it lies in
    /// the past, otherwise now. Source timestamps from the future cannot push the clock ahead.
    pub fn stamp(&self, at: Option<DateTime<Utc>>) -> u64 {
        match at {
            Some(at) => {
                let ms = at.timestamp_millis().max(0) as u64;
                let now = physical_now();
                if ms < now {
                    // Order source events by their own time; the counter keeps them distinct.
                    (ms << COUNTER_BITS) | 0xffff
                } else {
                    self.now()
                }
            }
            None => self.now(),
        }
    }

    /// The last value handed out.
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    fn advance(&self, physical: u64) -> u64 {
        let candidate = physical << COUNTER_BITS;
        let mut prev = self.last.load(Ordering::SeqCst);
        loop {
            let next = candidate.max(prev + 1);
            match self
                .last
                .compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }
}

/// Converts a clock value to the wall-clock time it stands for.
pub fn to_datetime(hlc: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis((hlc >> COUNTER_BITS) as i64)
}

fn physical_now() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_even_when_seeded_in_the_future() {
        let far = (physical_now() + 60_000) << COUNTER_BITS;
        let c = Clock::starting_after(far);
        let a = c.now();
        let b = c.now();
        assert!(a > far && b > a);
    }

    #[test]
    fn source_times_in_the_past_order_by_source() {
        let c = Clock::default();
        let t1 = Utc::now() - chrono::Duration::seconds(10);
        let t2 = t1 + chrono::Duration::seconds(1);
        assert!(c.stamp(Some(t1)) < c.stamp(Some(t2)));
        assert!(c.stamp(Some(t2)) < c.now());
        let future = Utc::now() + chrono::Duration::days(1);
        assert!(c.stamp(Some(future)) < (physical_now() + 1000) << COUNTER_BITS);
        assert_eq!(
            to_datetime(c.stamp(Some(t1))).unwrap().timestamp_millis(),
            t1.timestamp_millis()
        );
    }
}
