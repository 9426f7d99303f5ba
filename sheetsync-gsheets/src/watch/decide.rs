//! What one poll does, decided from what it saw: a pure function with its own tests.

use std::time::{Duration, Instant};

use super::{ChangeDetection, WatchOptions};

/// What a poll saw before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    /// The file's Drive version moved since the last poll (or is unknown).
    pub moved: bool,
    /// This process wrote the file since the last poll (or is writing it now).
    pub own_writes: bool,
    /// Webhook deliveries arrived since the last poll.
    pub delivered: bool,
}

/// The first step of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing to do.
    Idle,
    /// Read the journal: the move is probably a person's edit.
    ReadJournal,
    /// Take the move as this process's own writes (or reported edits), and check later.
    Adopt,
    /// Nobody reported the change: read the mapped tabs in full.
    FullRead,
    /// Unexplained so far: wait for a late webhook delivery before reading in full.
    Wait,
}

/// The checks a poll owes for moves it took on trust.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Owed {
    /// A journal read, to find an entry written while this process wrote too.
    pub journal_at: Option<Instant>,
    /// A full read, to find a change by another program hidden behind this process's writes.
    pub full_at: Option<Instant>,
    /// Since when a move is waiting for a webhook delivery to explain it.
    pub unexplained_since: Option<Instant>,
}

impl Owed {
    /// Owes both checks after taking a move on trust (keeping earlier, sooner deadlines).
    pub fn adopted(&mut self, now: Instant, opts: &WatchOptions) {
        self.journal_at.get_or_insert(now + opts.confirm_journal);
        self.full_at.get_or_insert(now + opts.confirm_full);
    }

    fn due(at: Option<Instant>, now: Instant) -> bool {
        at.is_some_and(|t| now >= t)
    }

    /// A journal read is owed now.
    pub fn journal_due(&self, now: Instant) -> bool {
        Self::due(self.journal_at, now)
    }

    /// A full read is owed now.
    pub fn full_due(&self, now: Instant) -> bool {
        Self::due(self.full_at, now)
    }
}

/// The first step of a poll in `mode`, given what it saw and what it owes.
pub(super) fn decide(
    mode: ChangeDetection,
    seen: Seen,
    owed: &Owed,
    now: Instant,
    grace: Duration,
) -> Step {
    let journal_owed = owed.journal_due(now);
    match mode {
        ChangeDetection::Journal if seen.moved && !seen.own_writes => Step::ReadJournal,
        ChangeDetection::Journal if journal_owed => Step::ReadJournal,
        _ if seen.moved && (seen.own_writes || seen.delivered) => Step::Adopt,
        ChangeDetection::Journal | ChangeDetection::Polling if seen.moved => Step::FullRead,
        ChangeDetection::Webhook if seen.moved || owed.unexplained_since.is_some() => {
            match owed.unexplained_since {
                Some(t) if now.duration_since(t) >= grace => Step::FullRead,
                _ => Step::Wait,
            }
        }
        _ => Step::Idle,
    }
}

/// The next poll's interval: the shortest while things change, growing (×1.5) to the longest
/// while nothing does.
pub(super) fn next_interval(current: Duration, active: bool, opts: &WatchOptions) -> Duration {
    if active {
        return opts.min_interval;
    }
    current
        .mul_f64(1.5)
        .clamp(opts.min_interval, opts.max_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(3);

    fn seen(moved: bool, own_writes: bool, delivered: bool) -> Seen {
        Seen {
            moved,
            own_writes,
            delivered,
        }
    }

    #[test]
    fn an_unchanged_file_costs_nothing_in_every_mode() {
        let now = Instant::now();
        for mode in [
            ChangeDetection::Journal,
            ChangeDetection::Webhook,
            ChangeDetection::Polling,
        ] {
            let step = decide(
                mode,
                seen(false, false, false),
                &Owed::default(),
                now,
                GRACE,
            );
            assert_eq!(step, Step::Idle, "{mode:?}");
        }
    }

    #[test]
    fn a_change_nobody_made_here_is_looked_for_in_the_journal_first() {
        let now = Instant::now();
        let s = seen(true, false, false);
        let step = decide(ChangeDetection::Journal, s, &Owed::default(), now, GRACE);
        assert_eq!(step, Step::ReadJournal);
        let step = decide(ChangeDetection::Polling, s, &Owed::default(), now, GRACE);
        assert_eq!(step, Step::FullRead);
    }

    #[test]
    fn own_writes_are_taken_on_trust_until_the_owed_journal_read() {
        let now = Instant::now();
        let opts = WatchOptions::default();
        let s = seen(true, true, false);
        let mut owed = Owed::default();
        assert_eq!(
            decide(ChangeDetection::Journal, s, &owed, now, GRACE),
            Step::Adopt
        );
        owed.adopted(now, &opts);
        let later = now + opts.confirm_journal;
        assert_eq!(
            decide(ChangeDetection::Journal, s, &owed, later, GRACE),
            Step::ReadJournal
        );
        // Even an unchanged file gets the owed read.
        let quiet = seen(false, false, false);
        assert_eq!(
            decide(ChangeDetection::Journal, quiet, &owed, later, GRACE),
            Step::ReadJournal
        );
        assert!(owed.full_due(now + opts.confirm_full));
    }

    #[test]
    fn an_unreported_change_waits_for_a_late_webhook_then_reads_in_full() {
        let now = Instant::now();
        let s = seen(true, false, false);
        let mut owed = Owed::default();
        assert_eq!(
            decide(ChangeDetection::Webhook, s, &owed, now, GRACE),
            Step::Wait
        );
        owed.unexplained_since = Some(now);
        let quiet = seen(false, false, false);
        assert_eq!(
            decide(
                ChangeDetection::Webhook,
                quiet,
                &owed,
                now + GRACE / 2,
                GRACE
            ),
            Step::Wait
        );
        assert_eq!(
            decide(ChangeDetection::Webhook, quiet, &owed, now + GRACE, GRACE),
            Step::FullRead
        );
        let reported = seen(true, false, true);
        assert_eq!(
            decide(
                ChangeDetection::Webhook,
                reported,
                &Owed::default(),
                now,
                GRACE
            ),
            Step::Adopt
        );
    }

    #[test]
    fn polls_speed_up_on_changes_and_slow_down_when_idle() {
        let opts = WatchOptions::default();
        let mut i = opts.min_interval;
        for _ in 0..20 {
            i = next_interval(i, false, &opts);
        }
        assert_eq!(i, opts.max_interval);
        assert_eq!(next_interval(i, true, &opts), opts.min_interval);
    }
}
