//! How far a long read has got, for the people who run the daemon: a spinner at a terminal, and
//! periodic log lines (with `mapping`) everywhere else (systemd, containers), who would otherwise
//! see nothing until the read ends. The first cycle of a mapping is its initial sync; later
//! cycles read a side in full now and then (every `timing.full_scan_interval_ms`, or when the
//! Sheet changed in a way no journal entry explains), which for a big tab takes long too.
//!
//! Both follow the engine's [`Event::ReadProgress`] (rows read so far from a side, one event
//! per page read) and [`Event::Cycle`].

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sheetsync::{Event, MappingHandle, Side};
use tokio::sync::broadcast::{self, error::RecvError};

/// Rows read so far in this cycle, per side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Rows([usize; 2]);

impl Rows {
    fn set(&mut self, side: Side, rows: usize) {
        self.0[(side == Side::Db) as usize] = rows;
    }

    fn describe(&self) -> String {
        format!("{} Sheet rows, {} database rows", self.0[0], self.0[1])
    }
}

/// A spinner while someone watches a terminal; nothing otherwise.
fn spinner(tty: bool, message: String) -> indicatif::ProgressBar {
    let bar = match tty {
        true => indicatif::ProgressBar::new_spinner(),
        false => indicatif::ProgressBar::hidden(),
    };
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Shows the mapping's initial sync (its first cycle) until it finishes, fails or panics: a
/// spinner at a terminal, else a log line every `every` and one at the end.
pub async fn initial_sync(
    m: &MappingHandle,
    mut events: broadcast::Receiver<Event>,
    every: Duration,
) {
    let name = m.name();
    let tty = std::io::stderr().is_terminal();
    let bar = spinner(tty, format!("{name}: initial sync (reading both sides)"));
    let mut logged = Instant::now();
    let mut read = Rows::default();
    let done = loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let sheetsync::Placement::Waiting { owner, .. } = m.placement() {
                    let by = owner.map_or("another replica".into(), |o| o.owner);
                    break format!("{name}: runs elsewhere ({by}): this replica waits to take it over when needed");
                }
                if m.is_up() { continue }
                break format!("{name}: initial sync: the engine panicked (see the log)");
            }
        };
        match event {
            Ok(Event::ReadProgress { side, rows }) => {
                read.set(side, rows);
                let progress = format!("{name}: initial sync: read {}", read.describe());
                if !tty && logged.elapsed() >= every {
                    tracing::info!(mapping = %name, "{progress}");
                    logged = Instant::now();
                }
                bar.set_message(progress);
            }
            Ok(Event::Cycle(r)) => break format!(
                "{name}: initial sync done: {} rows written to the Sheet, {} to the database, {} held, {} conflicts, {} deletes waiting for approval",
                r.writes.sheet, r.writes.db, r.held, r.conflicts, r.pending_deletes
            ),
            Ok(Event::Error {
                side: None,
                message,
                ..
            }) => {
                break format!("{name}: initial sync failed, will retry: {message}")
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => break format!("{name}: initial sync stopped"),
        }
    };
    if !tty {
        tracing::info!(mapping = %name, "{done}");
    }
    bar.finish_with_message(done);
}

/// One cycle's full read as far as it has got.
struct FullRead {
    /// When the cycle began at the earliest: the end of the one before.
    since: Instant,
    rows: Rows,
    /// When progress was last shown, once the read has been long enough to show it.
    shown: Option<Instant>,
    bar: Option<indicatif::ProgressBar>,
}

/// What a later full read shows as its events arrive: nothing while it is short, then a line
/// (or the spinner's message) at most every `every`, and one when its cycle ends.
struct LongReads {
    name: String,
    every: Duration,
    tty: bool,
    /// When the last cycle ended.
    last_cycle: Instant,
    read: Option<FullRead>,
}

impl LongReads {
    fn new(name: &str, every: Duration, tty: bool) -> LongReads {
        LongReads {
            name: name.to_string(),
            every,
            tty,
            last_cycle: Instant::now(),
            read: None,
        }
    }

    /// A page of a full read arrived: `rows` read so far from `side`. The progress line, when
    /// one is due.
    fn page(&mut self, side: Side, rows: usize) -> Option<String> {
        let since = self.last_cycle;
        let read = self.read.get_or_insert_with(|| FullRead {
            since,
            rows: Rows::default(),
            shown: None,
            bar: None,
        });
        read.rows.set(side, rows);
        let took = read.since.elapsed();
        let due = took >= self.every && read.shown.is_none_or(|at| at.elapsed() >= self.every);
        if !due {
            return None;
        }
        read.shown = Some(Instant::now());
        // The engine says when a page arrives, not when its cycle began: the time counts from
        // the end of the cycle before, so it may include the wait between the two.
        let line = format!(
            "{}: full read: {} so far, under way for at most {:.1} s",
            self.name,
            read.rows.describe(),
            took.as_secs_f64()
        );
        if self.tty {
            read.bar
                .get_or_insert_with(|| spinner(true, line.clone()))
                .set_message(line);
            return None;
        }
        Some(line)
    }

    /// The cycle ended (`how`: `done` or `failed`): the closing line of a read that was shown.
    fn cycle_ended(&mut self, how: &str) -> Option<String> {
        self.last_cycle = Instant::now();
        let read = self.read.take()?;
        read.shown?;
        let line = format!(
            "{}: full read {how}: {} in at most {:.1} s",
            self.name,
            read.rows.describe(),
            read.since.elapsed().as_secs_f64()
        );
        match read.bar {
            Some(bar) => {
                bar.finish_with_message(line);
                None
            }
            None => Some(line),
        }
    }
}

/// Follows the mapping's later cycles and shows the progress of each full read that takes
/// longer than `every`, until the engine stops.
pub fn follow_long_reads(m: Arc<MappingHandle>, every: Duration) {
    let mut events = m.subscribe();
    let mut reads = LongReads::new(m.name(), every, std::io::stderr().is_terminal());
    tokio::spawn(async move {
        loop {
            let line = match events.recv().await {
                Ok(Event::ReadProgress { side, rows }) => reads.page(side, rows),
                Ok(Event::Cycle(_)) => reads.cycle_ended("done"),
                Ok(Event::Error { side: None, .. }) => reads.cycle_ended("failed"),
                Ok(_) | Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            };
            if let Some(line) = line {
                tracing::info!(mapping = %m.name(), "{line}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_full_read_says_nothing() {
        let mut r = LongReads::new("items", Duration::from_secs(60), false);
        assert_eq!(r.page(Side::Sheet, 10), None);
        assert_eq!(r.page(Side::Db, 10), None);
        assert_eq!(r.cycle_ended("done"), None);
    }

    #[test]
    fn a_long_full_read_says_how_far_it_got_then_that_it_ended() {
        let mut r = LongReads::new("items", Duration::from_millis(30), false);
        std::thread::sleep(Duration::from_millis(40));
        let first = r
            .page(Side::Sheet, 5_000)
            .expect("a line past the interval");
        assert!(
            first.starts_with("items: full read: 5000 Sheet rows, 0 database rows so far, "),
            "{first}"
        );
        // Not again before the interval has passed once more.
        assert_eq!(r.page(Side::Db, 1_000), None);
        std::thread::sleep(Duration::from_millis(40));
        let second = r.page(Side::Db, 2_000).expect("a second line");
        assert!(
            second.contains("5000 Sheet rows, 2000 database rows"),
            "{second}"
        );
        let end = r.cycle_ended("done").expect("a closing line");
        assert!(
            end.starts_with("items: full read done: 5000 Sheet rows, 2000 database rows in "),
            "{end}"
        );
        // The next cycle's read starts from zero, and counts from the end of this cycle.
        assert_eq!(r.page(Side::Sheet, 1), None);
        assert_eq!(r.cycle_ended("done"), None);
    }
}
