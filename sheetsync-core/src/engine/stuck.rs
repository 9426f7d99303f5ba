//! Rows that do not settle. A write that finds its row changed under it (stale) cycle after
//! cycle, or that a side refuses every time, would otherwise be retried for ever, costing calls
//! and hiding the cause. After [`MAX_ATTEMPTS`] failures in a row the row is held with the
//! reason and parked: it is not planned again until its content changes on the side the writes
//! came from (a person fixes the value), or until its pause is over (one more attempt; the pause
//! doubles up to [`MAX_PAUSE`]). Changes on the failing side do not count: a stale row changes
//! there by definition. A failed batch (a side unreachable) is not the row's fault and does not
//! count either, nor does a stale Sheet write (the row was not where it was looked for: people
//! moved rows; the next attempt locates it again).

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::read::SideRead;
use super::work::Work;
use super::{idx, BaseEntry, EngineState};
use crate::model::{KeyMap, Row, RowHash, RowKey, Side};
use crate::state::{HeldRow, RowBase};

/// Failures in a row before a row is parked.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// The first pause of a parked row.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause of a parked row.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Why one row's write failed this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// Its batch failed as a whole: nothing is known about the row.
    Batch,
    /// The side's row was not what the write expected.
    Stale(Side),
    /// The side refused the row, saying why.
    Refused(Side, String),
}

impl Failure {
    /// The side that failed, when known.
    fn side(&self) -> Option<Side> {
        match self {
            Failure::Batch => None,
            Failure::Stale(side) | Failure::Refused(side, _) => Some(*side),
        }
    }

    /// The side and the reason to hold the row with, for a failure that is the row's own.
    fn of_row(&self) -> Option<(Side, String)> {
        match self {
            // A stale Sheet write means the row was not where the write looked for it: people
            // moved or deleted rows meanwhile. The next attempt locates it again; counting those
            // would park rows that a busy afternoon of sorting merely delays.
            Failure::Batch | Failure::Stale(Side::Sheet) => None,
            Failure::Stale(side) => {
                Some((*side, format!("the {side} row changed under every write")))
            }
            Failure::Refused(side, why) => Some((*side, why.clone())),
        }
    }
}

/// A row whose writes keep failing.
#[derive(Debug, Clone)]
pub(super) struct Stuck {
    /// Failures in a row.
    pub attempts: u32,
    /// Each side's content as the last attempt's reads showed it (`None`: not read).
    pub seen: [Option<RowHash>; 2],
    pub side: Side,
    pub reason: String,
    /// While parked: when the row gets its next attempt, and the pause after that one.
    pub parked: Option<(Instant, Duration)>,
}

impl Stuck {
    /// Counts a failure of the row that was seen as `seen`, at `now`; `None` when it is not
    /// the row's.
    pub fn record(
        old: Option<&Stuck>,
        failure: &Failure,
        seen: [Option<RowHash>; 2],
        now: Instant,
    ) -> Option<Stuck> {
        let (side, reason) = failure.of_row()?;
        let attempts = old.map_or(0, |s| s.attempts) + 1;
        let parked = (attempts >= MAX_ATTEMPTS).then(|| {
            let pause = old
                .and_then(|s| s.parked)
                .map_or(FIRST_PAUSE, |(_, p)| (p * 2).min(MAX_PAUSE));
            (now + pause, pause)
        });
        Some(Stuck {
            attempts,
            seen,
            side,
            reason,
            parked,
        })
    }

    /// Whether the row sits out this cycle: parked, its pause not over, and the side the writes
    /// came from shows the content the last attempt saw (`now_seen`: `None` where a side's read
    /// does not tell).
    pub fn sits_out(&self, now_seen: [Option<RowHash>; 2]) -> bool {
        let Some((until, _)) = self.parked else {
            return false;
        };
        let source = idx(self.side.other());
        let unchanged = now_seen[source].is_none_or(|h| Some(h) == self.seen[source]);
        unchanged && Instant::now() < until
    }

    /// Whether a parked row's pause is over (it gets its next attempt).
    pub fn due(&self) -> bool {
        self.parked
            .is_some_and(|(until, _)| Instant::now() >= until)
    }

    /// The held row that reports a parked row.
    pub fn held(&self, key: &RowKey, table: &str) -> Option<HeldRow> {
        let (_, pause) = self.parked?;
        Some(HeldRow {
            key: Some(key.clone()),
            side: Some(self.side),
            locator: None,
            reason: format!(
                "{table}: {}; {} attempts in a row failed, so the row waits until it changes in the {} (or {}s pass)",
                self.reason,
                self.attempts,
                self.side.other(),
                pause.as_secs()
            ),
        })
    }
}

/// Each side's content of `k` as this cycle's reads show it (`None`: the read does not tell).
pub(super) fn read_hashes(
    st: &EngineState,
    reads: &[SideRead; 2],
    k: &RowKey,
) -> [Option<RowHash>; 2] {
    let entry = st.bases.get(k);
    let base = entry.map(BaseEntry::base);
    [0, 1].map(|i| {
        reads[i]
            .row_of(k, entry, base.as_ref())
            .map(|(row, _)| row.map_or(RowHash::new(0), Row::hash))
    })
}

/// The rows that keep failing after this cycle's writes: rows that settled or were written
/// leave, rows whose writes failed on their own count one more failure, rows that sat out stay.
pub(super) fn next(
    st: &EngineState,
    reads: &[SideRead; 2],
    work: &Work,
    failed: &BTreeMap<RowKey, Failure>,
    new_bases: &[(RowKey, RowBase)],
    now: Instant,
) -> KeyMap<Stuck> {
    let mut stuck = st.stuck.clone();
    for (k, _) in new_bases {
        stuck.remove(k);
    }
    for k in work.agreed.keys().chain(work.targets.keys()) {
        if !failed.contains_key(k) {
            stuck.remove(k);
        }
    }
    for (k, failure) in failed {
        let mut seen = read_hashes(st, reads, k);
        // A side written this cycle holds the target now (the Sheet is written first, so when
        // the database's write fails, the Sheet's succeeded).
        let written_side = work.intents.get(k).into_iter().flat_map(|i| &i.sides);
        for before in written_side.filter(|b| Some(b.side) != failure.side()) {
            let target = work.targets.get(k).and_then(|t| t.as_ref());
            seen[idx(before.side)] = Some(target.map_or(RowHash::new(0), Row::hash));
        }
        if let Some(s) = Stuck::record(st.stuck.get(k), failure, seen, now) {
            stuck.insert(k.clone(), s);
        }
    }
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEN: [Option<RowHash>; 2] = [Some(RowHash::new(1)), Some(RowHash::new(2))];

    fn fail(times: u32, failure: &Failure) -> Option<Stuck> {
        (0..times).fold(None, |s, _| {
            Stuck::record(s.as_ref(), failure, SEEN, Instant::now())
        })
    }

    #[test]
    fn a_failed_batch_is_not_the_rows_fault() {
        assert!(fail(10, &Failure::Batch).is_none());
    }

    #[test]
    fn a_row_is_parked_after_max_attempts_only() {
        let stale = Failure::Stale(Side::Db);
        let before = fail(MAX_ATTEMPTS - 1, &stale).unwrap();
        assert!(before.parked.is_none());
        assert!(!before.sits_out([None, None]));
        let parked = fail(MAX_ATTEMPTS, &stale).unwrap();
        assert!(parked.sits_out([None, None]));
        assert!(parked.sits_out([Some(RowHash::new(1)), Some(RowHash::new(2))]));
        let held = parked.held(&crate::memory::key_of(1), "items").unwrap();
        assert!(
            held.reason.contains("changed under every write"),
            "{}",
            held.reason
        );
    }

    #[test]
    fn a_parked_row_is_tried_again_when_its_source_side_changes() {
        let parked = fail(
            MAX_ATTEMPTS,
            &Failure::Refused(Side::Sheet, "too big".into()),
        )
        .unwrap();
        assert!(!parked.sits_out([None, Some(RowHash::new(9))]));
        // The refusing side's own changes do not matter (a stale row changes there every time).
        assert!(parked.sits_out([Some(RowHash::new(9)), None]));
    }

    #[test]
    fn the_pause_doubles_up_to_its_cap() {
        let stale = Failure::Stale(Side::Db);
        let mut s = fail(MAX_ATTEMPTS, &stale);
        let mut pauses = Vec::new();
        for _ in 0..10 {
            pauses.push(s.as_ref().unwrap().parked.unwrap().1);
            s = Stuck::record(s.as_ref(), &stale, SEEN, Instant::now());
        }
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
    }
}
