//! Staying under Google's per-minute quotas, and retrying what Google asks us to retry.
//!
//! # The rate limiter
//!
//! Google counts requests per minute per user (60 reads and 60 writes). [`RateLimiter`] keeps a
//! budget of `N` requests per minute shared by requests of two [priorities](Priority):
//! Interactive ones, which someone waits for (an edit journal poll, a fetch of a few rows), and
//! Background ones (the requests of a full read of a big tab). Its guarantees, each proved
//! below and checked by the simulation and property tests of this module, hold for both
//! priorities together:
//!
//! 1. **Never over budget:** no 60-second window (`[t, t + 60 s)`, wherever it starts) holds more
//!    than `N` admissions, so neither Google's fixed minutes nor a sliding count is exceeded.
//! 2. **No stall:** while Interactive requests are waiting, one is admitted at least every
//!    `g = 60 s / (N − burst + 1)` (1.07 s for `N` = 60 and the default burst of 5). The limiter
//!    never sits idle with a queue because an old burst still fills the window. Background
//!    requests have the same guarantee at their own pace `g_B` (below) after each Background
//!    admission, until an Interactive request is admitted (then see 6).
//! 3. **No wait below the budget:** Interactive demand that keeps to the budget's pace (arrivals
//!    at least `60 s / N` apart, from one caller or several) is admitted on arrival, and a short
//!    burst of up to `burst` requests goes at once when the last minute leaves room for it.
//!    Demand of both priorities together that keeps to the pace `60 s / (N − reserve)` is all
//!    admitted on arrival.
//!
//! Between the priorities:
//!
//! 4. **Interactive first:** no Background request is admitted while an Interactive one waits,
//!    so an Interactive request waits only for the Interactive requests ahead of it and for the
//!    budget: with `k` of them waiting when it arrives, it is admitted within `(k + 1) · g`,
//!    whatever the Background demand.
//! 5. **A reserve:** Background requests use at most `N − reserve` admissions in any 60 s window
//!    (the reserve is a quarter of `N` by default, see [`RateLimiter::with_reserve`]); the rest
//!    of the budget, and one slot of the burst, are kept for Interactive requests. Interactive
//!    arrivals at least `g` apart are therefore admitted **on arrival**, however many Background
//!    requests wait (given a reserve of at least 1 and a burst of at least 2, the defaults from
//!    `N` = 24 on; with a burst of 1, within `60 s / N`).
//! 6. **No starvation:** Background requests are admitted in the order they arrived, and while
//!    Interactive arrivals are more than `g_B = 60 s / (N − reserve − burst + 2)` apart (fewer
//!    than 42 a minute with the defaults for `N` = 60, `g_B` = 1.43 s; same premises as 5),
//!    waiting Background requests keep being admitted: after a Background admission, the next
//!    one within `(k + 1) · g_B`, for Interactive arrivals `h` apart and the least whole `k`
//!    with `k · (h − g_B) > g_B` (`k` = 1 when `h > 2 g_B`), and the first one within
//!    `60 s + k' · g_B` of reaching the head of its queue, for the least `k'` with
//!    `k' · (h − g_B) > 60 s`. Heavier Interactive demand may hold Background requests back for
//!    as long as it lasts: that is what the priority is for.
//!
//! The [`SheetsClient`](crate::SheetsClient) reads at Background priority inside
//! [`SheetsClient::background`](crate::SheetsClient::background), at Interactive otherwise.
//!
//! ## How: a window-bounded GCRA
//!
//! A GCRA (virtual scheduling) limiter at rate `r` with a tolerance of `b` requests admits a
//! sequence of sends `s₁ < s₂ < …` exactly when every pair satisfies
//! `s_j − s_{j−m} ≥ (m − b) / r`: "at most `b + k` requests in any `k / r` seconds". Its
//! arithmetic fits the window when `b + r · 60 s ≤ N`, so we take `b = burst − 1` and
//! `r = (N − b) / 60 s`. A plain GCRA would then be limited to `N − b` requests a minute forever;
//! this one applies the constraint only to the last `N` sends (`m ≤ N`), i.e. only within the
//! minute that Google counts. In words, **the `m`-th most recent admission (of either priority)
//! must be at least `D(m) = max(0, m − b) · 60 s / (N − b)` old**:
//!
//! * `D(N) = 60 s` exactly: the `N`-th most recent admission is a minute old, so no 60 s window
//!   holds `N + 1` (guarantee 1). Ages are whole milliseconds, rounded up (tokio's timer
//!   resolution), which keeps `D(N)` exact and the other bounds within a millisecond.
//! * `D(m) = 0` for `m ≤ b`: after a quiet spell, `burst` requests go at once. A burst is paid
//!   back within the minute by admissions `60 s / (N − b)` apart instead of `60 s / N`: that
//!   is what "the window's arithmetic allows it" means, and why the pacing never has to stop.
//! * `D(m) ≤ D(m − 1) + g` (`g = 60 s / (N − b)`): the previous admission `s₁` satisfied the
//!   constraint, `s_{m+1} + D(m) ≤ s₁`, so the earliest admission time `max_m (s_m + D(m))` is
//!   never more than `g` after it (guarantee 2). This holds for any history whose admissions
//!   each satisfied `D`, whatever their priority.
//! * `D(m) ≤ m · 60 s / N` for `m ≤ N`, so arrivals `60 s / N` apart never meet a constraint
//!   (guarantee 3). More generally the limiter is, for Interactive requests alone, the greedy
//!   FIFO shaper of `D`: request `j` is admitted at `max_{i ≤ j} (a_i + D*(j − i))` over the
//!   arrival times `a`, where `D*(k)` is the least span of `k + 1` admissions (`D` chained over
//!   successive windows), so a request waits only as long as the requests before it exceed
//!   that curve.
//!
//! Under continuous overload each minute then holds a burst of up to `burst` (the previous
//! minute's burst leaving the window) followed by admissions `60 s / (N − b)` apart: `N` a
//! minute, the whole budget, and never a gap longer than that. A plain sliding window (the
//! `N`-th most recent admission a minute old, no other constraint) would let `N` go at once
//! and then stop for a minute.
//!
//! The sliding window of the previous design (at most `N` in 60 s, plus a pacing bucket of
//! `N / 6` refilled at `N` per minute) admitted about `N + N / 6` requests' worth of pace per
//! minute into a window of `N`: under steady load the window filled 50 s into every minute and
//! the next request waited about 10 s.
//!
//! ## Priorities
//!
//! Each priority has its own FIFO queue. The head of the Interactive queue is admitted at the
//! earliest instant `D` allows. The head of the Background queue is admitted at the earliest
//! instant at which no Interactive request waits and the last admissions of **both** priorities
//! satisfy a stricter curve, a GCRA of budget `N_B = N − reserve` with one burst slot fewer:
//! the `m`-th most recent admission must be at least
//! `D_B(m) = max(0, m − b_B) · g_B` old for `m ≤ N_B`, with `b_B = min(b − 1, N_B − 1)` (at least
//! 0) and `g_B = 60 s / (N_B − b_B)`. Interactive admissions count against Background's curve,
//! so the Interactive requests of the last minute use the reserve first and then Background's
//! share, and Background requests get what Interactive ones leave of `N_B`. By (a) and (b)
//! below, a Background request is never due before an Interactive one on the same history:
//! the count of waiting Interactive requests decides the ties, when both are due at one
//! instant. The curve has four properties (checked by `the_ages_fit_the_window`):
//!
//! * (a) `D_B(N_B) = 60 s`;
//! * (b) `D_B(m) ≥ D(m)` for `m ≤ N_B`: it starts no earlier and rises no slower
//!   (`N_B − b_B ≤ N − b`);
//! * (c) `D_B(m) ≥ D(m + 1)` when the reserve is at least 1 and the burst at least 2
//!   (`b_B ≤ b − 1` and `N_B − b_B ≤ N − b`); with a burst of 1, `D(m + 1) ≤ D_B(m) + 60 s / N`
//!   (`D_B(m) = m · 60 s / N_B`);
//! * (d) `D_B(1) ≤ g_B` and `D_B(m + 1) ≤ D_B(m) + g_B`.
//!
//! The proofs:
//!
//! * **1 and 2 hold for both priorities:** a Background admission satisfies `D` too, by (b) for
//!   `m ≤ N_B` and for older ones because by (a) the `N_B`-th most recent is a minute old. So
//!   the arguments above apply to the whole history. While an Interactive request waits, only
//!   Interactive requests can be admitted, and the head goes at its earliest instant. For
//!   Background, (d) gives the same argument with `D_B`: after a Background admission, which
//!   satisfied `D_B`, the next is due within `g_B`.
//! * **3:** arrivals at least `a` apart, all admitted on arrival (by induction), make the `m`-th
//!   most recent admission at least `m · a` old. For `a = 60 s / N_B`, that is at least `D_B(m)`
//!   (the inequality of `D` above, for `N_B`), so at least `D(m)` by (b); no Interactive request
//!   ever waits, so none holds a Background one back.
//! * **4:** by construction. For the bound: the last admission before the arrival is at
//!   `s ≤ t`; each of the `k` requests ahead, then this one, is admitted within `g` of the
//!   previous admission (2), with no Background one in between: by `s + (k + 1) · g`.
//! * **5:** at a Background admission at `t`, the `N_B`-th most recent admission is at least a
//!   minute old (a), so `(t − 60 s, t]` holds at most `N_B` admissions, this one included; a
//!   window holding Background admissions, moved to end at its last one, so holds at most `N_B`
//!   of them. On arrival, by induction over Interactive arrivals `t`, with `s₁` the last
//!   admission: if it was an Interactive one, it arrived (and went) at least `g` before `t`, and
//!   the earliest instant is within `g` of `s₁` (2). If it was a Background one, its check gave
//!   the `m`-th most recent admission before it an age of at least `D_B(m) ≥ D(m + 1)` (c): with
//!   `s₁` itself as the most recent (`D(1) = 0` for a burst of 2 or more), the history already
//!   satisfies `D` at `s₁ ≤ t`. With a burst of 1, (c) allows a wait of `60 s / N` after a
//!   Background admission, and a wait `w` carries over to the next arrival as at most `w`.
//! * **6:** FIFO by the queue. By (d), an admission at `s` moves the instant `E` at which
//!   Background's curve allows the head to at most `max(s, E) + g_B` (the argument of 2), and
//!   by (a) and (b) `D` never holds it back further. After a Background admission at `σ`,
//!   `E ≤ σ + g_B`. Interactive requests go on arrival (5: `h > g_B ≥ g`) and block nothing
//!   else; `k` of them arriving before the head goes move `E` to at most `σ + (k + 1) · g_B`,
//!   while the next one arrives at `σ + k · h` or later, after `E` once `k · (h − g_B) > g_B`.
//!   From any state `E` is within 60 s of the last admission (`D_B ≤ 60 s`), and the same count
//!   with 60 s in place of `g_B` gives the first bound.
//!
//! ## Sharing and cancellation
//!
//! All methods take `&self`: one limiter behind an [`Arc`](std::sync::Arc) serves every mapping
//! on one credential (one [`SheetsClient`](crate::SheetsClient) holds one for reads and one for
//! writes). Waiters of each priority queue on a fair (FIFO) async mutex; the one at the head
//! sleeps until its admission time while holding it, so a later caller can never overtake an
//! earlier one of its priority. The check and the count of an admission happen under one lock,
//! after the last `await`: dropping an `acquire` future (a cancelled task, a `select!`, a
//! timeout) frees its place in the queue and consumes no slot. An Interactive request counts
//! as waiting, and holds Background requests back, from the start of its `acquire` until it is
//! admitted or dropped; the last one to stop waiting wakes the head of the Background queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The window Google counts requests in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Which of two waiting requests goes first (see the [module documentation](self#priorities)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A request someone is waiting for (an edit journal poll, a fetch of a few rows): it
    /// overtakes queued Background requests and may use the whole budget.
    #[default]
    Interactive,
    /// A request whose latency does not matter (a chunk of a full read): it yields to waiting
    /// Interactive requests and leaves the reserve to them.
    Background,
}

/// At most `per_minute` requests in any 60 seconds, paced so that a busy caller never stalls
/// and a quiet one never waits, with a reserve for [`Priority::Interactive`] requests (see the
/// [module documentation](self) for the design).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    reserve: u32,
    /// `min_age[m - 1]`: how old the `m`-th most recent admission must be, `D(m)`.
    min_age: Vec<Duration>,
    /// `background_age[m - 1]`: the same for a Background admission, `D_B(m)`.
    background_age: Vec<Duration>,
    state: Mutex<State>,
    /// The FIFO queue of Interactive requests: its head sleeps holding it.
    interactive: tokio::sync::Mutex<()>,
    /// The FIFO queue of Background requests.
    background: tokio::sync::Mutex<()>,
    /// Wakes the head of the Background queue when no Interactive request waits any more.
    interactive_done: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// The last `per_minute` admissions of both priorities, oldest first.
    sent: VecDeque<Instant>,
    /// Interactive requests between their arrival and their admission (or cancellation).
    interactive_waiting: usize,
    stats: LimiterStats,
}

/// Why a request may not go yet.
enum NotYet {
    /// The budget allows it at this instant.
    Until(Instant),
    /// An Interactive request waits: it goes first.
    AfterInteractive,
}

/// What a [`RateLimiter`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Of those, the requests acquired with [`Priority::Background`].
    pub background: u64,
    /// Requests that waited a millisecond or more (for the queue or for the budget).
    pub delayed: u64,
    /// The sum of all waits.
    pub total_wait: Duration,
    /// The longest wait of one request.
    pub longest_wait: Duration,
    /// The longest wait of one [`Priority::Interactive`] request.
    pub longest_interactive_wait: Duration,
}

impl RateLimiter {
    /// A limiter for `per_minute` requests per minute (at least one), with the default burst
    /// ([`RateLimiter::default_burst`]) and reserve ([`RateLimiter::default_reserve`]).
    pub fn new(per_minute: u32) -> Self {
        Self::with_burst(per_minute, Self::default_burst(per_minute))
    }

    /// A limiter for `per_minute` requests per minute that lets `burst` requests go at once
    /// after a quiet minute (clamped to `1..=per_minute`; 1 paces every request at
    /// `60 s / per_minute`), with the default reserve.
    pub fn with_burst(per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(1);
        let burst = burst.clamp(1, per_minute);
        let limiter = RateLimiter {
            per_minute,
            burst,
            reserve: 0,
            min_age: min_ages(per_minute, burst),
            background_age: Vec::new(),
            state: Mutex::new(State {
                sent: VecDeque::with_capacity(per_minute as usize),
                ..State::default()
            }),
            interactive: tokio::sync::Mutex::new(()),
            background: tokio::sync::Mutex::new(()),
            interactive_done: Notify::new(),
        };
        limiter.with_reserve(Self::default_reserve(per_minute))
    }

    /// The same limiter keeping `reserve` admissions of every minute for Interactive requests:
    /// Background requests use at most `per_minute − reserve` (clamped to `0..per_minute`, so
    /// that Background requests always have one).
    pub fn with_reserve(mut self, reserve: u32) -> Self {
        self.reserve = reserve.min(self.per_minute - 1);
        let (budget, burst) = background_curve(self.per_minute, self.burst, self.reserve);
        self.background_age = min_ages(budget, burst);
        self
    }

    /// The default burst: a twelfth of the budget (5 of 60), at least one.
    pub fn default_burst(per_minute: u32) -> u32 {
        (per_minute / 12).max(1)
    }

    /// The default reserve: a quarter of the budget (15 of 60), at least one when the budget
    /// is more than one.
    pub fn default_reserve(per_minute: u32) -> u32 {
        if per_minute > 1 {
            (per_minute / 4).max(1)
        } else {
            0
        }
    }

    /// The configured budget.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// How many requests may go at once after a quiet minute.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How many admissions of every 60 s window are kept for Interactive requests.
    pub fn reserve(&self) -> u32 {
        self.reserve
    }

    /// The budget's even pace, `60 s / per_minute`: demand at or below it is never delayed.
    pub fn pacing_interval(&self) -> Duration {
        WINDOW / self.per_minute
    }

    /// The longest time between two admissions while Interactive requests wait,
    /// `60 s / (per_minute − burst + 1)` rounded up to the millisecond.
    pub fn max_gap(&self) -> Duration {
        paced_gap(self.per_minute, self.burst)
    }

    /// What the limiter has done so far.
    pub fn stats(&self) -> LimiterStats {
        self.lock_state().stats
    }

    /// Waits until an [`Interactive`](Priority::Interactive) request may be sent within the
    /// budget, then counts it: [`acquire_with`](Self::acquire_with) that priority.
    pub async fn acquire(&self) {
        self.acquire_with(Priority::Interactive).await;
    }

    /// Waits until a request of this priority may be sent within the budget, then counts it.
    /// Requests of one priority are admitted in the order their `acquire` began, Interactive
    /// ones before any Background one that waits; dropping the future before it completes
    /// counts nothing.
    pub async fn acquire_with(&self, priority: Priority) {
        let arrived = Instant::now();
        match priority {
            Priority::Interactive => self.acquire_interactive(arrived).await,
            Priority::Background => self.acquire_background(arrived).await,
        }
    }

    async fn acquire_interactive(&self, arrived: Instant) {
        let _waiting = InteractiveWaiting::new(self);
        let _turn = self.interactive.lock().await;
        while let Err(NotYet::Until(at)) = self.try_admit(Priority::Interactive, arrived) {
            tokio::time::sleep_until(at).await;
        }
    }

    async fn acquire_background(&self, arrived: Instant) {
        let _turn = self.background.lock().await;
        loop {
            match self.try_admit(Priority::Background, arrived) {
                Ok(()) => return,
                Err(NotYet::Until(at)) => tokio::time::sleep_until(at).await,
                // A permit stored by `notify_one` makes this return at once: no lost wake-up.
                Err(NotYet::AfterInteractive) => self.interactive_done.notified().await,
            }
        }
    }

    /// Counts the request if it may go now; checking and counting under one lock is what
    /// keeps the budget when several heads wake at the same instant.
    fn try_admit(&self, priority: Priority, arrived: Instant) -> Result<(), NotYet> {
        let mut state = self.lock_state();
        if priority == Priority::Background && state.interactive_waiting > 0 {
            return Err(NotYet::AfterInteractive);
        }
        let now = Instant::now();
        if let Some(at) = self.due(&state.sent, priority).filter(|at| *at > now) {
            return Err(NotYet::Until(at));
        }
        state.admit(now, self.per_minute as usize, priority, now - arrived);
        Ok(())
    }

    /// The earliest instant a request of this priority may be admitted; `None` when nothing
    /// constrains it.
    fn due(&self, sent: &VecDeque<Instant>, priority: Priority) -> Option<Instant> {
        let union = earliest(sent, &self.min_age);
        match priority {
            Priority::Interactive => union,
            Priority::Background => union.max(earliest(sent, &self.background_age)),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // No update of the state can be left half done, and a waiter's guard locks it while
        // dropping, also during a panic: a poisoned lock is still a good one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn admit(&mut self, now: Instant, capacity: usize, priority: Priority, waited: Duration) {
        if self.sent.len() == capacity {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
        let s = &mut self.stats;
        s.admitted += 1;
        match priority {
            Priority::Background => s.background += 1,
            Priority::Interactive => {
                s.longest_interactive_wait = s.longest_interactive_wait.max(waited);
            }
        }
        if waited >= Duration::from_millis(1) {
            s.delayed += 1;
            s.total_wait += waited;
            s.longest_wait = s.longest_wait.max(waited);
        }
    }
}

/// An Interactive request from its arrival to its admission or cancellation: while one
/// exists, no Background request is admitted.
struct InteractiveWaiting<'a>(&'a RateLimiter);

impl<'a> InteractiveWaiting<'a> {
    fn new(limiter: &'a RateLimiter) -> Self {
        limiter.lock_state().interactive_waiting += 1;
        InteractiveWaiting(limiter)
    }
}

impl Drop for InteractiveWaiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock_state();
        state.interactive_waiting -= 1;
        if state.interactive_waiting == 0 {
            self.0.interactive_done.notify_one();
        }
    }
}

/// `max_m (s_m + ages[m − 1])` over the `m`-th most recent admissions `s_m`: the earliest
/// instant the next one may be admitted under these minimum ages.
fn earliest(sent: &VecDeque<Instant>, ages: &[Duration]) -> Option<Instant> {
    sent.iter()
        .rev()
        .zip(ages)
        .map(|(at, age)| *at + *age)
        .max()
}

/// The budget and burst of the Background curve `D_B`: what the reserve leaves, and one burst
/// slot fewer than Interactive requests have, so that one of them can always follow at once.
fn background_curve(per_minute: u32, burst: u32, reserve: u32) -> (u32, u32) {
    let budget = per_minute - reserve;
    (budget, (burst - 1).clamp(1, budget))
}

/// `60 s / (per_minute − burst + 1)` rounded up to the millisecond: the pace of a curve's
/// admissions after its burst.
fn paced_gap(per_minute: u32, burst: u32) -> Duration {
    let paced = u128::from(per_minute - burst + 1);
    Duration::from_millis(ceil_div(WINDOW.as_millis(), paced) as u64)
}

/// `D(m)` for `m = 1..=per_minute`: `max(0, m − b) · 60 s / (per_minute − b)` with
/// `b = burst − 1`, rounded up to the millisecond (the resolution of tokio's timer, so that a
/// sleep never ends before it), which keeps `D(per_minute)` exactly 60 s.
fn min_ages(per_minute: u32, burst: u32) -> Vec<Duration> {
    let extra = u128::from(burst - 1);
    let paced = u128::from(per_minute) - extra;
    (1..=u128::from(per_minute))
        .map(|m| {
            let millis = ceil_div(m.saturating_sub(extra) * WINDOW.as_millis(), paced);
            Duration::from_millis(millis as u64)
        })
        .collect()
}

fn ceil_div(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
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
    use std::sync::Arc;

    use proptest::prelude::*;

    /// One request: when its `acquire` began and when it returned, from the start.
    #[derive(Debug, Clone, Copy)]
    struct Admission {
        arrived: Duration,
        admitted: Duration,
        priority: Priority,
    }

    impl Admission {
        fn wait(&self) -> Duration {
            self.admitted - self.arrived
        }
    }

    /// Tolerance for tokio's timer, which rounds deadlines up to the millisecond.
    const TICK: Duration = Duration::from_millis(1);

    /// Sends one request per arrival offset (each in its own task, so requests overlap as
    /// they would from many callers), all through one shared limiter; returns them in the
    /// order they were admitted.
    async fn run_arrivals(limiter: &Arc<RateLimiter>, arrivals: &[Duration]) -> Vec<Admission> {
        let interactive: Vec<_> = arrivals
            .iter()
            .map(|&at| (at, Priority::Interactive))
            .collect();
        run_mixed(limiter, &interactive).await
    }

    /// [`run_arrivals`] with a priority for each request.
    async fn run_mixed(
        limiter: &Arc<RateLimiter>,
        arrivals: &[(Duration, Priority)],
    ) -> Vec<Admission> {
        let start = Instant::now();
        let tasks: Vec<_> = arrivals
            .iter()
            .map(|&(at, priority)| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + at).await;
                    let arrived = start.elapsed();
                    limiter.acquire_with(priority).await;
                    Admission {
                        arrived,
                        admitted: start.elapsed(),
                        priority,
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.expect("caller task"));
        }
        in_admission_order(out)
    }

    /// Sorted by admission; at one instant Background first (a Background admission is never
    /// checked against an Interactive one of its instant, which only weakens its check, and
    /// by (c) an Interactive one still fits `D` after it), then by arrival (FIFO).
    fn in_admission_order(mut v: Vec<Admission>) -> Vec<Admission> {
        v.sort_by_key(|a| (a.admitted, a.priority == Priority::Interactive, a.arrived));
        v
    }

    fn of(admissions: &[Admission], priority: Priority) -> Vec<Admission> {
        let mine = admissions.iter().filter(|a| a.priority == priority);
        mine.copied().collect()
    }

    fn times(admissions: &[Admission]) -> Vec<Duration> {
        admissions.iter().map(|a| a.admitted).collect()
    }

    /// The most admissions in any window `[t, t + 60 s)`.
    fn most_in_any_window(admissions: &[Admission]) -> usize {
        let times: Vec<Duration> = admissions.iter().map(|a| a.admitted).collect();
        let mut most = 0;
        let mut end = 0;
        for (i, t) in times.iter().enumerate() {
            while end < times.len() && times[end] < *t + WINDOW {
                end += 1;
            }
            most = most.max(end - i);
        }
        most
    }

    /// Asserts the guarantees that hold for any arrivals: the budget in every window, FIFO
    /// order, and no stall (a waiting request is admitted within `max_gap` of the previous
    /// admission).
    fn assert_guarantees(l: &RateLimiter, admissions: &[Admission]) {
        let most = most_in_any_window(admissions);
        assert!(
            most <= l.per_minute() as usize,
            "{most} admissions in one 60 s window, budget {}",
            l.per_minute()
        );
        assert_fifo(admissions);
        for pair in admissions.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            let due = next.arrived.max(prev.admitted + l.max_gap()) + TICK;
            assert!(
                next.admitted <= due,
                "stalled: {next:?} admitted {:?} after the previous admission at {:?} (max gap {:?})",
                next.admitted - prev.admitted,
                prev.admitted,
                l.max_gap()
            );
        }
    }

    fn assert_fifo(admissions: &[Admission]) {
        for pair in admissions.windows(2) {
            assert!(
                pair[0].arrived <= pair[1].arrived,
                "not FIFO: {:?} overtook {:?}",
                pair[1],
                pair[0]
            );
        }
    }

    /// `g_B`, the pace of the Background curve.
    fn background_gap(l: &RateLimiter) -> Duration {
        let (budget, burst) = background_curve(l.per_minute, l.burst, l.reserve);
        paced_gap(budget, burst)
    }

    /// Asserts that every admission (of `only` this priority) found the `m`-th most recent
    /// admission before it at least `ages[m − 1]` old.
    fn assert_fits(admissions: &[Admission], ages: &[Duration], only: Option<Priority>) {
        for (j, a) in admissions.iter().enumerate() {
            if only.is_some_and(|p| p != a.priority) {
                continue;
            }
            for (m, age) in ages.iter().enumerate().take(j) {
                let before = admissions[j - 1 - m];
                assert!(
                    a.admitted - before.admitted >= *age,
                    "{a:?} came less than {age:?} after the {}-th most recent admission {before:?}",
                    m + 1
                );
            }
        }
    }

    /// Guarantee 4: no Background request is admitted while an Interactive one waits.
    fn assert_interactive_first(admissions: &[Admission]) {
        let background = times(&of(admissions, Priority::Background));
        for a in of(admissions, Priority::Interactive) {
            let next = background.partition_point(|t| *t <= a.arrived);
            if let Some(t) = background.get(next) {
                assert!(
                    *t >= a.admitted,
                    "a Background request went at {t:?} while {a:?} waited"
                );
            }
        }
    }

    /// Guarantee 4: with `k` Interactive requests waiting ahead of it, an Interactive request
    /// is admitted within `(k + 1) · g`.
    fn assert_interactive_bound(l: &RateLimiter, admissions: &[Admission]) {
        let interactive = of(admissions, Priority::Interactive);
        for (j, a) in interactive.iter().enumerate() {
            let ahead = j - interactive[..j].partition_point(|b| b.admitted < a.arrived);
            let bound = a.arrived + l.max_gap() * (ahead as u32 + 1) + TICK;
            assert!(
                a.admitted <= bound,
                "{a:?} waited behind {ahead} Interactive requests, past {bound:?}"
            );
        }
    }

    /// Guarantee 2 for Background: while Background requests wait and no Interactive one is
    /// admitted, they go at least every `g_B` after a Background admission.
    fn assert_background_paced(l: &RateLimiter, admissions: &[Admission]) {
        let interactive = times(&of(admissions, Priority::Interactive));
        let after = |t: Duration| interactive.partition_point(|i| *i < t);
        for pair in of(admissions, Priority::Background).windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            let interleaved = after(next.admitted + TICK) > after(prev.admitted);
            if next.arrived <= prev.admitted && !interleaved {
                assert!(
                    next.admitted <= prev.admitted + background_gap(l) + TICK,
                    "Background stalled: {next:?} after {prev:?}"
                );
            }
        }
    }

    /// The guarantees that hold for any arrivals of both priorities: 1 and 2 for both, 4, and
    /// the count of 5 (Background admissions fit `D_B`), FIFO within each priority.
    fn assert_mixed_guarantees(l: &RateLimiter, admissions: &[Admission]) {
        let background = of(admissions, Priority::Background);
        let share = (l.per_minute() - l.reserve()) as usize;
        assert!(most_in_any_window(admissions) <= l.per_minute() as usize);
        assert!(most_in_any_window(&background) <= share, "over {share}");
        assert_fits(admissions, &l.min_age, None);
        assert_fits(admissions, &l.background_age, Some(Priority::Background));
        assert_fifo(&background);
        assert_fifo(&of(admissions, Priority::Interactive));
        assert_interactive_first(admissions);
        assert_interactive_bound(l, admissions);
        assert_background_paced(l, admissions);
    }

    /// Guarantee 5: while Interactive arrivals are at least `g` apart, each one is admitted on
    /// arrival (within `60 s / N` with a burst of 1), whatever the Background demand.
    fn assert_spaced_interactive_go_on_arrival(l: &RateLimiter, admissions: &[Admission]) -> usize {
        assert!(l.reserve() >= 1);
        // With a burst of 1: `60 s / N`, rounded up to the millisecond as ages are (which
        // `max_gap` is for that burst); unrounded, 6.667 s > 6.6666… s failed for N = 9.
        let slack = if l.burst() >= 2 {
            Duration::ZERO
        } else {
            l.max_gap()
        };
        let mut interactive = of(admissions, Priority::Interactive);
        interactive.sort_by_key(|a| a.arrived);
        let spaced = 1 + interactive
            .windows(2)
            .take_while(|w| w[1].arrived - w[0].arrived >= l.max_gap())
            .count();
        for a in interactive.iter().take(spaced) {
            assert!(a.wait() <= slack, "{a:?} waited (spaced arrivals)");
        }
        spaced.min(interactive.len())
    }

    /// Guarantee 6: while Interactive arrivals are more than `g_B` apart (at least `h`),
    /// a waiting Background request goes within `(k + 1) · g_B` of the previous Background
    /// admission, `k` the least with `k · (h − g_B) > g_B`; checked between `from` and `to`.
    fn assert_background_progress(
        l: &RateLimiter,
        admissions: &[Admission],
        h: Duration,
        (from, to): (Duration, Duration),
    ) -> usize {
        let gap = background_gap(l);
        let k = (gap.as_millis() / (h - gap).as_millis() + 1) as u32;
        let mut background = of(admissions, Priority::Background);
        background.retain(|a| a.admitted >= from && a.admitted <= to);
        for pair in background.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            assert!(
                next.arrived > prev.admitted || next.admitted <= prev.admitted + gap * (k + 1),
                "Background starved: {next:?} after {prev:?}, with Interactive arrivals {h:?} apart"
            );
        }
        background.len()
    }

    /// When a greedy FIFO limiter admits each request, computed in closed form: admission `j`
    /// is `max_{i ≤ j} (a_i + D*(j − i))` over the arrivals `a` in admission order, where
    /// `D*(k)` is the least span of `k + 1` admissions, `D` chained (the superadditive
    /// closure of `D(m)`, `m ≤ N`).
    fn model_admissions(l: &RateLimiter, admissions: &[Admission]) -> Vec<Duration> {
        let n = admissions.len();
        let mut closure = vec![Duration::ZERO; n];
        for k in 1..n {
            closure[k] = (1..=k.min(l.min_age.len()))
                .map(|m| closure[k - m] + l.min_age[m - 1])
                .max()
                .expect("k ≥ 1");
        }
        (0..n)
            .map(|j| {
                (0..=j)
                    .map(|i| admissions[i].arrived + closure[j - i])
                    .max()
                    .expect("i = j")
            })
            .collect()
    }

    /// `count` arrivals `every` apart, from `from`.
    fn steady(from: Duration, every: Duration, count: u32) -> Vec<Duration> {
        (0..count).map(|i| from + every * i).collect()
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    /// A phase of the simulation: arrivals and whether their demand is within the budget.
    struct Phase {
        name: &'static str,
        arrivals: Vec<Duration>,
        within_budget: bool,
    }

    /// Phases one after another: each starts `gap` after the previous one's last arrival.
    #[derive(Default)]
    struct Plan {
        t: Duration,
        phases: Vec<Phase>,
    }

    impl Plan {
        fn push(&mut self, name: &'static str, arrivals: Vec<Duration>, within_budget: bool) {
            self.t = arrivals.iter().max().copied().unwrap_or(self.t);
            self.phases.push(Phase {
                name,
                arrivals,
                within_budget,
            });
        }

        fn idle(&mut self, gap: Duration) {
            self.t += gap;
        }
    }

    /// Three and a half hours of demand on one limiter of 60 per minute: steady below, at and
    /// above the budget, bursts, idle gaps, and several callers at once. Every phase begins
    /// with whatever the previous one left in the window (or queue).
    fn phases() -> Vec<Phase> {
        let ms = Duration::from_millis;
        let mut plan = Plan::default();
        // 50 a minute for 30 minutes, then an idle gap.
        plan.push("steady below", steady(plan.t, ms(1200), 1500), true);
        plan.idle(minutes(5));
        // Exactly the budget's pace for 30 minutes, right after it.
        plan.push("steady at", steady(plan.t, ms(1000), 1800), true);
        plan.idle(ms(1000));
        // 90 a minute for 20 minutes: the queue grows by 30 a minute; 20 quiet minutes drain it.
        plan.push("steady above", steady(plan.t, ms(667), 1800), false);
        plan.idle(minutes(20));
        // 40 a minute with a burst of 4 more every 20 s (52 a minute on average).
        let t = plan.t;
        let mut mixed = steady(t, ms(1500), 1200);
        for k in 0..90u32 {
            mixed.extend([t + ms(20_000) * k + ms(700); 4]);
        }
        plan.push("steady below with small bursts", mixed, true);
        plan.idle(minutes(2));
        // A burst of 5 (the default burst) every 5 minutes: no wait at all.
        let t = plan.t;
        let small = (0..6u32).flat_map(|k| [t + minutes(5) * k; 5]).collect();
        plan.push("bursts of 5", small, true);
        plan.idle(minutes(3));
        // A burst of 100 (more than the budget) every 4 minutes.
        let t = plan.t;
        let big = (0..5u32).flat_map(|k| [t + minutes(4) * k; 100]).collect();
        plan.push("bursts of 100", big, false);
        plan.idle(minutes(5));
        // Four callers of 14 a minute each (56 a minute), out of phase, for 20 minutes.
        let t = plan.t;
        let callers = (0..4u64)
            .flat_map(|c| steady(t + ms(1_137 * c), ms(60_000 / 14), 280))
            .collect();
        plan.push("four callers below", callers, true);
        plan.idle(minutes(2));
        // Four callers of 30 a minute each (120 a minute) for 10 minutes.
        let t = plan.t;
        let callers = (0..4u64)
            .flat_map(|c| steady(t + ms(250 * c), ms(2_000), 300))
            .collect();
        plan.push("four callers above", callers, false);
        plan.phases
    }

    #[tokio::test(start_paused = true)]
    async fn hours_of_arrivals_keep_the_budget_and_never_stall() {
        let limiter = Arc::new(RateLimiter::new(60));
        let phases = phases();
        let all: Vec<Duration> = phases.iter().flat_map(|p| p.arrivals.clone()).collect();
        let admissions = run_arrivals(&limiter, &all).await;
        assert_eq!(admissions.len(), all.len());
        assert!(
            admissions.last().expect("admissions").admitted > minutes(210),
            "the simulation covers hours"
        );
        assert_guarantees(&limiter, &admissions);
        for phase in &phases {
            let first = *phase.arrivals.iter().min().expect("arrivals");
            let last = *phase.arrivals.iter().max().expect("arrivals");
            let mine: Vec<&Admission> = admissions
                .iter()
                .filter(|a| a.arrived >= first && a.arrived <= last)
                .collect();
            let longest = mine.iter().map(|a| a.wait()).max().unwrap_or_default();
            eprintln!(
                "{}: {} requests, longest wait {longest:?}",
                phase.name,
                mine.len()
            );
            if !phase.within_budget {
                assert!(
                    longest > minutes(1),
                    "{}: demand over budget queues",
                    phase.name
                );
            } else {
                assert!(
                    longest <= limiter.pacing_interval(),
                    "{}: a request waited {longest:?} (pacing interval {:?})",
                    phase.name,
                    limiter.pacing_interval()
                );
            }
        }
        let stats = limiter.stats();
        assert_eq!(stats.admitted, all.len() as u64);
    }

    /// Interactive phases beside a Background backlog that never runs dry (waves of 1000
    /// requests every 10 minutes, a few full reads each): `within_budget` marks the phases
    /// whose Interactive arrivals are at least `g` apart.
    fn mixed_phases() -> (Vec<(Duration, Priority)>, Vec<Phase>) {
        let ms = Duration::from_millis;
        let mut plan = Plan::default();
        // Background alone for 5 minutes, then 10 minutes of each pace.
        plan.idle(minutes(5));
        for (name, every) in [
            ("50 a minute", 1200),
            ("30 a minute", 2000),
            ("12 a minute", 5000),
        ] {
            plan.push(
                name,
                steady(plan.t, ms(every), 600_000 / every as u32),
                true,
            );
            plan.idle(ms(every));
        }
        // Journal polls of five mappings at once, every 10 s.
        let t = plan.t;
        let polls = (0..60u32).flat_map(|k| [t + ms(10_000) * k; 5]).collect();
        plan.push("bursts of 5", polls, false);
        plan.idle(ms(10_000));
        plan.push("90 a minute", steady(plan.t, ms(667), 450), false);
        let interactive = plan.phases.iter().flat_map(|p| &p.arrivals);
        let mut arrivals: Vec<_> = interactive.map(|&a| (a, Priority::Interactive)).collect();
        let waves = (0..4u32).flat_map(|w| [(minutes(10) * w, Priority::Background); 1000]);
        arrivals.extend(waves);
        (arrivals, plan.phases)
    }

    #[tokio::test(start_paused = true)]
    async fn interactive_requests_go_first_and_background_ones_keep_going() {
        let l = Arc::new(RateLimiter::new(60));
        let (arrivals, phases) = mixed_phases();
        let admissions = run_mixed(&l, &arrivals).await;
        assert_eq!(admissions.len(), arrivals.len());
        assert_mixed_guarantees(&l, &admissions);
        let last = phases.last().and_then(|p| p.arrivals.last()).copied();
        let last_background = of(&admissions, Priority::Background)
            .last()
            .unwrap()
            .admitted;
        assert!(
            last_background > last.unwrap() + minutes(10),
            "Background never ran dry"
        );
        let spaced: usize = phases
            .iter()
            .filter(|p| p.within_budget)
            .map(|p| p.arrivals.len())
            .sum();
        // The phases, and the first poll after them.
        let checked = assert_spaced_interactive_go_on_arrival(&l, &admissions);
        assert_eq!(checked, spaced + 1);
        for phase in &phases {
            check_mixed_phase(&l, phase, &admissions);
        }
        assert_eq!(
            l.stats().longest_interactive_wait,
            interactive_longest(&admissions, (Duration::ZERO, Duration::MAX))
        );
    }

    fn interactive_longest(admissions: &[Admission], (from, to): (Duration, Duration)) -> Duration {
        let interactive = of(admissions, Priority::Interactive);
        let mine = interactive
            .iter()
            .filter(|a| a.arrived >= from && a.arrived <= to);
        mine.map(Admission::wait).max().unwrap_or_default()
    }

    /// One phase of the mixed simulation: what guarantees 5 and 6 promise for it.
    fn check_mixed_phase(l: &RateLimiter, phase: &Phase, admissions: &[Admission]) {
        let span = (phase.arrivals[0], *phase.arrivals.last().unwrap());
        let h = phase
            .arrivals
            .windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap();
        let longest = interactive_longest(admissions, span);
        let background = of(admissions, Priority::Background);
        let went = background
            .iter()
            .filter(|a| a.admitted >= span.0 && a.admitted <= span.1);
        eprintln!(
            "{}: longest Interactive wait {longest:?}, {} Background admissions",
            phase.name,
            went.count()
        );
        if phase.within_budget && h > background_gap(l) {
            assert!(assert_background_progress(l, admissions, h, span) > 0);
        }
        if h < l.max_gap() && !h.is_zero() {
            assert!(
                longest > minutes(1),
                "{}: Interactive overload queues",
                phase.name
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_caller_gets_the_burst_then_the_pace_and_the_whole_budget() {
        let l = RateLimiter::new(60);
        assert_eq!(
            (l.burst(), l.pacing_interval()),
            (5, Duration::from_secs(1))
        );
        assert_eq!(
            l.max_gap(),
            Duration::from_millis(1072),
            "60 s / 56, rounded up"
        );
        let start = Instant::now();
        let mut sent = Vec::new();
        while start.elapsed() < minutes(30) {
            l.acquire().await;
            sent.push(start.elapsed());
        }
        assert_eq!(sent[4], Duration::ZERO, "the burst goes at once");
        assert_eq!(sent[5], l.max_gap(), "then the pace pays the burst back");
        let gaps = sent.windows(2).map(|w| w[1] - w[0]);
        assert!(gaps.clone().all(|g| g <= l.max_gap()), "never a stall");
        // The budget is used, not lost to pacing: 60 in every minute after the first.
        let last_20 = sent.iter().filter(|t| **t >= minutes(10)).count();
        assert!(last_20 >= 20 * 60 - 1, "{last_20} admissions in 20 minutes");
        let admissions: Vec<Admission> = sent
            .iter()
            .map(|&t| Admission {
                arrived: t,
                admitted: t,
                priority: Priority::Interactive,
            })
            .collect();
        assert!(most_in_any_window(&admissions) <= 60);
    }

    #[tokio::test(start_paused = true)]
    async fn demand_at_the_budgets_pace_never_waits() {
        for (budget, every) in [(60, 1000), (60, 1001), (7, 8572), (300, 200), (1, 60_000)] {
            let l = Arc::new(RateLimiter::new(budget));
            let arrivals = steady(Duration::ZERO, Duration::from_millis(every), budget * 20);
            let admissions = run_arrivals(&l, &arrivals).await;
            let longest = admissions.iter().map(Admission::wait).max().unwrap();
            assert_eq!(longest, Duration::ZERO, "budget {budget}, every {every} ms");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn demand_of_both_priorities_at_the_background_pace_never_waits() {
        for budget in [60, 7, 300, 2] {
            let l = Arc::new(RateLimiter::new(budget));
            let share = u64::from(budget - l.reserve());
            let every = Duration::from_millis(60_000_u64.div_ceil(share));
            let arrivals: Vec<_> = steady(Duration::ZERO, every, budget * 20)
                .into_iter()
                .enumerate()
                .map(|(i, at)| match i % 3 {
                    0 => (at, Priority::Interactive),
                    _ => (at, Priority::Background),
                })
                .collect();
            let admissions = run_mixed(&l, &arrivals).await;
            let longest = admissions.iter().map(Admission::wait).max().unwrap();
            assert_eq!(longest, Duration::ZERO, "budget {budget}, every {every:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_acquire_consumes_no_slot() {
        // Two a minute, no burst: one every 30 s.
        let l = Arc::new(RateLimiter::with_burst(2, 1));
        let start = Instant::now();
        l.acquire().await;
        // A caller queues (due at 30 s) and is cancelled after 10 s; one more waits behind it.
        let first = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let second = tokio::spawn({
            let l = l.clone();
            async move {
                l.acquire().await;
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        // Cut short by a timeout, too.
        let timed_out = tokio::time::timeout(Duration::from_secs(1), l.acquire()).await;
        assert!(timed_out.is_err());
        // The slot at 30 s goes to the second caller, the next one at 60 s.
        assert_eq!(second.await.unwrap(), Duration::from_secs(30));
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        assert_eq!(l.stats().admitted, 3);
    }

    /// Spawns `acquire_with(priority)` and returns when it was admitted, from `start`.
    fn spawn_acquire(l: &Arc<RateLimiter>, priority: Priority, start: Instant) -> Acquiring {
        let l = l.clone();
        tokio::spawn(async move {
            l.acquire_with(priority).await;
            start.elapsed()
        })
    }

    /// Four a minute, no burst, a reserve of one: `D(m) = m · 15 s`, `D_B(m) = m · 20 s`.
    fn four_a_minute() -> Arc<RateLimiter> {
        let l = RateLimiter::with_burst(4, 1).with_reserve(1);
        assert_eq!(l.background_age, [20, 40, 60].map(Duration::from_secs));
        Arc::new(l)
    }

    type Acquiring = tokio::task::JoinHandle<Duration>;

    /// [`four_a_minute`] after an admission at 0 s, with two Background requests queued at
    /// 0 s (the first due at 20 s), and the instant it started.
    async fn two_background_queued() -> (Arc<RateLimiter>, Instant, [Acquiring; 2]) {
        let l = four_a_minute();
        let start = Instant::now();
        l.acquire().await;
        let first = spawn_acquire(&l, Priority::Background, start);
        let second = spawn_acquire(&l, Priority::Background, start);
        (l, start, [first, second])
    }

    #[tokio::test(start_paused = true)]
    async fn an_interactive_request_overtakes_queued_background_ones() {
        let (l, start, [first, second]) = two_background_queued().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        // An Interactive request arriving at 5 s goes first, at 15 s (`D(1)`).
        let interactive = spawn_acquire(&l, Priority::Interactive, start);
        assert_eq!(interactive.await.unwrap(), Duration::from_secs(15));
        // Then 0 s and 15 s must be 40 s and 20 s old for the Background curve.
        assert_eq!(first.await.unwrap(), Duration::from_secs(40));
        // 0 s, 15 s and 40 s: 60 s, 40 s and 20 s old.
        assert_eq!(second.await.unwrap(), Duration::from_secs(60));
        let stats = l.stats();
        assert_eq!((stats.admitted, stats.background), (4, 2));
        assert_eq!(stats.longest_interactive_wait, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn at_one_instant_the_interactive_request_goes_first() {
        // No reserve and no burst: both curves are `D`, so the two are due at the same 30 s,
        // and the Background request, queued first, wakes first.
        let l = Arc::new(RateLimiter::with_burst(2, 1).with_reserve(0));
        assert_eq!(l.background_age, l.min_age);
        let start = Instant::now();
        l.acquire().await;
        let background = spawn_acquire(&l, Priority::Background, start);
        let interactive = spawn_acquire(&l, Priority::Interactive, start);
        assert_eq!(interactive.await.unwrap(), Duration::from_secs(30));
        assert_eq!(background.await.unwrap(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interactive_request_keeps_a_burst_slot_after_background_ones() {
        let l = Arc::new(RateLimiter::new(60));
        let start = Instant::now();
        let background: Vec<_> = (0..10)
            .map(|_| spawn_acquire(&l, Priority::Background, start))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Four of the five burst slots went to Background requests, the fifth is kept.
        assert_eq!(l.stats().background, 4);
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100), "on arrival");
        for b in background {
            b.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_request_lets_the_other_priority_go() {
        let (l, start, [background, dropped]) = two_background_queued().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Due at 15 s and 30 s: at 20 s, when the first Background request is due, the
        // second Interactive one waits, and it is cancelled at 25 s.
        let interactive = spawn_acquire(&l, Priority::Interactive, start);
        let cancelled = spawn_acquire(&l, Priority::Interactive, start);
        tokio::time::sleep(Duration::from_secs(24)).await;
        cancelled.abort();
        dropped.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        assert_eq!(interactive.await.unwrap(), Duration::from_secs(15));
        let admitted = tokio::time::timeout(minutes(5), background).await;
        let admitted = admitted.expect("the Background request was woken").unwrap();
        // 0 s and 15 s are 40 s and 25 s old: the cancelled request took no slot.
        assert_eq!(admitted, Duration::from_secs(40));
        // Nor did the cancelled Background one: the next one takes its turn, at 60 s.
        let next = spawn_acquire(&l, Priority::Background, start);
        assert_eq!(next.await.unwrap(), Duration::from_secs(60));
        assert_eq!((l.stats().admitted, l.stats().background), (4, 2));
    }

    #[test]
    fn the_ages_fit_the_window() {
        for (budget, burst) in [(60, 5), (60, 1), (60, 60), (7, 3), (1, 1), (300, 25)] {
            let l = RateLimiter::with_burst(budget, burst);
            let ages = &l.min_age;
            assert_eq!(ages.len(), budget as usize);
            assert_eq!(*ages.last().unwrap(), WINDOW, "D(N) is the window");
            assert!(ages[..burst as usize - 1].iter().all(|a| a.is_zero()));
            for (m, pair) in ages.windows(2).enumerate() {
                assert!(pair[1] >= pair[0] && pair[1] <= pair[0] + l.max_gap());
                let paced = l.pacing_interval() * (m as u32 + 2);
                assert!(pair[1] <= paced + TICK, "D({}) > {paced:?}", m + 2);
            }
            for reserve in [0, 1, budget / 4, budget - 1, budget] {
                assert_background_curve(&l.min_age, &l.with_reserve_of(reserve));
            }
        }
        assert_eq!(RateLimiter::new(60).reserve(), 15);
        assert_eq!(RateLimiter::new(2).reserve(), 1);
        assert_eq!(RateLimiter::new(1).reserve(), 0);
        assert_eq!(RateLimiter::new(60).with_reserve(99).reserve(), 59);
    }

    /// Properties (a) to (d) of the Background curve `D_B` of the module documentation.
    fn assert_background_curve(d: &[Duration], l: &RateLimiter) {
        let d_b = &l.background_age;
        assert_eq!(d_b.len() as u32, l.per_minute - l.reserve);
        assert_eq!(*d_b.last().unwrap(), WINDOW, "(a)");
        let mut previous = Duration::ZERO;
        for (m, age) in d_b.iter().enumerate() {
            assert!(*age >= d[m], "(b) at {}", m + 1);
            if l.reserve >= 1 && l.burst >= 2 {
                assert!(*age >= d[m + 1], "(c) at {}", m + 1);
            } else if l.reserve >= 1 {
                assert!(
                    d[m + 1] <= *age + l.pacing_interval() + TICK,
                    "(c') at {}",
                    m + 1
                );
            }
            assert!(*age <= previous + background_gap(l), "(d) at {}", m + 1);
            previous = *age;
        }
    }

    impl RateLimiter {
        fn with_reserve_of(&self, reserve: u32) -> RateLimiter {
            RateLimiter::with_burst(self.per_minute, self.burst).with_reserve(reserve)
        }
    }

    /// One case of the property test: arrival groups `(gap since the previous group, size)`.
    fn check_random_arrivals(budget: u32, burst: u32, groups: &[(u64, u32)]) {
        paused(async {
            let l = Arc::new(RateLimiter::with_burst(budget, burst));
            let arrivals = grouped(groups, |_| Priority::Interactive);
            let arrivals: Vec<Duration> = arrivals.iter().map(|a| a.0).collect();
            let admissions = run_arrivals(&l, &arrivals).await;
            assert_guarantees(&l, &admissions);
            let model = model_admissions(&l, &admissions);
            for (a, due) in admissions.iter().zip(model) {
                assert!(
                    a.admitted >= due && a.admitted <= due + TICK,
                    "{a:?} admitted, the model says at {due:?}"
                );
            }
        });
    }

    /// Runs `f` on a runtime whose clock is paused (it jumps to the next timer when idle).
    fn paused<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(f)
    }

    /// Arrival groups `(gap since the previous group in ms, size)`, the `i`-th group of the
    /// given priority.
    fn grouped(
        groups: &[(u64, u32)],
        priority: impl Fn(usize) -> Priority,
    ) -> Vec<(Duration, Priority)> {
        let mut at = Duration::ZERO;
        let mut arrivals = Vec::new();
        for (i, &(gap_ms, size)) in groups.iter().enumerate() {
            at += Duration::from_millis(gap_ms);
            arrivals.extend(std::iter::repeat_n((at, priority(i)), size as usize));
        }
        arrivals
    }

    /// A limiter of `budget` with a share of it as burst and a share as reserve.
    fn shared_limiter(budget: u32, burst_share: f64, reserve_share: f64) -> Arc<RateLimiter> {
        let burst = 1 + ((budget - 1) as f64 * burst_share) as u32;
        let reserve = ((budget - 1) as f64 * reserve_share).round() as u32;
        let reserve = if reserve_share > 0.0 {
            reserve.max(1)
        } else {
            0
        };
        Arc::new(RateLimiter::with_burst(budget, burst).with_reserve(reserve))
    }

    /// One case of the mixed property test: groups of random priorities.
    fn check_random_mixed(l: Arc<RateLimiter>, groups: &[(u64, u32, bool)]) {
        paused(async {
            let sizes: Vec<(u64, u32)> = groups.iter().map(|g| (g.0, g.1)).collect();
            let priority = |i: usize| match groups[i].2 {
                true => Priority::Background,
                false => Priority::Interactive,
            };
            let admissions = run_mixed(&l, &grouped(&sizes, priority)).await;
            assert_mixed_guarantees(&l, &admissions);
        });
    }

    /// One case of the spaced property test: Interactive arrivals `g + extra + jitter` apart
    /// beside groups of Background ones.
    fn check_spaced_interactive(
        l: Arc<RateLimiter>,
        extra: u64,
        jitter: &[u64],
        background: &[(u64, u32)],
    ) {
        paused(async {
            let h = l.max_gap() + Duration::from_millis(extra);
            let mut arrivals = grouped(background, |_| Priority::Background);
            let mut at = Duration::ZERO;
            for j in jitter {
                arrivals.push((at, Priority::Interactive));
                at += h + Duration::from_millis(*j);
            }
            let admissions = run_mixed(&l, &arrivals).await;
            assert_mixed_guarantees(&l, &admissions);
            let spaced = assert_spaced_interactive_go_on_arrival(&l, &admissions);
            assert_eq!(spaced, jitter.len());
            if l.burst() >= 2 && h > background_gap(&l) {
                assert_background_progress(&l, &admissions, h, (Duration::ZERO, Duration::MAX));
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random arrival patterns (quiet spells, steady trickles, bursts) under random budgets
        /// and bursts: never more than the budget in a window, FIFO, no stall, and every
        /// request admitted exactly when the closed-form model of a greedy limiter says: no
        /// wait that the arrivals before it do not explain.
        #[test]
        fn random_arrivals_keep_every_guarantee(
            budget in 1u32..=120,
            burst_share in 0.0f64..=1.0,
            groups in prop::collection::vec(
                (prop_oneof![0u64..50, 0u64..3_000, 0u64..120_000], 1u32..=6),
                1..150,
            ),
        ) {
            let burst = 1 + ((budget - 1) as f64 * burst_share) as u32;
            check_random_arrivals(budget, burst, &groups);
        }

        /// Random arrivals of random priorities under random budgets, bursts and reserves:
        /// the budget and the Background share in every window, both curves, FIFO within each
        /// priority, Interactive first and within `(k + 1) · g`, Background never stalled.
        #[test]
        fn random_mixed_arrivals_keep_every_guarantee(
            budget in 1u32..=120,
            burst_share in 0.0f64..=1.0,
            reserve_share in 0.0f64..=1.0,
            groups in prop::collection::vec(
                (prop_oneof![0u64..50, 0u64..3_000, 0u64..120_000], 1u32..=6, any::<bool>()),
                1..150,
            ),
        ) {
            check_random_mixed(shared_limiter(budget, burst_share, reserve_share), &groups);
        }

        /// Interactive arrivals at least `g` apart beside random Background demand, under a
        /// reserve of at least one: every Interactive request goes on arrival (guarantee 5),
        /// and Background keeps going while they are more than `g_B` apart (guarantee 6).
        #[test]
        fn spaced_interactive_arrivals_go_on_arrival_beside_any_background(
            budget in 2u32..=120,
            burst_share in 0.0f64..=1.0,
            reserve_share in 0.0f64..=1.0,
            extra in prop_oneof![0u64..100, 0u64..5_000],
            jitter in prop::collection::vec(prop_oneof![Just(0u64), 0u64..2_000], 1..80),
            background in prop::collection::vec(
                (prop_oneof![0u64..50, 0u64..3_000, 0u64..120_000], 1u32..=20),
                1..40,
            ),
        ) {
            let l = shared_limiter(budget, burst_share, reserve_share.max(f64::MIN_POSITIVE));
            check_spaced_interactive(l, extra, &jitter, &background);
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
