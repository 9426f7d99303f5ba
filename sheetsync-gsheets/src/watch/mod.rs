//! Finding out that a spreadsheet changed, cheaply, without a public endpoint.
//!
//! A [`Watcher`] polls one spreadsheet for the [`SheetTable`]s that sync its tabs. Every poll
//! asks Drive for the file's `version` (`files.get?fields=version`), which costs no Sheets
//! quota and moves on every change to the file (Drive documents it as "a monotonically
//! increasing version number for the file \[that\] reflects every change made to the file on the
//! server"; that it moves *within a second* of a change is what the emulator does and what we
//! have seen, not something Google promises). What a moved version leads to depends on the
//! [`ChangeDetection`] mode:
//!
//! | mode | who reports a person's edit | a move nobody reported |
//! |---|---|---|
//! | [`Journal`](ChangeDetection::Journal) (default) | the Apps Script appends it to a hidden journal tab (`docs/journal.md`); the poll reads that tab (one small read) | a full read of the mapped tabs |
//! | [`Webhook`](ChangeDetection::Webhook) | the Apps Script POSTs it to the daemon ([`crate::webhook`]) | a full read, after a grace period for a late delivery |
//! | [`Polling`](ChangeDetection::Polling) | nobody | a full read |
//!
//! Writes by other programs through the API fire no trigger in any mode: they are the moves
//! nobody reports, found by the version check and read in full (paced: at most one full read
//! per [`WatchOptions::min_full_read_gap`]).
//!
//! This process's own writes move the version too. The watcher counts them
//! ([`SheetsClient::write_activity`]): a move by more than one step per write of ours that may
//! have been applied is someone else's too (this assumes the version moves by one per applied
//! request, which the emulator does and Drive appears to do, but does not promise; were it
//! to move by more, the cost is a needless read, never a missed change). A move that our
//! writes may explain owes nothing when it is exactly one step per write of ours; otherwise (a
//! write in flight, fewer steps than writes, or a version that is not a number) it is taken
//! on trust, owing a journal read within [`WatchOptions::confirm_journal`] and a full read
//! within [`WatchOptions::confirm_full`]. So an unchanged file costs one Drive call per poll and no Sheets read; a
//! person's edit costs one Sheets read; polls come every [`WatchOptions::min_interval`] while
//! things change and slow down to [`WatchOptions::max_interval`] when they do not.
//!
//! The full reads a watcher asks for are made in the background
//! ([`SheetTable::read_in_background`]) and handed to the engine when done: journal entries keep
//! reaching the database while a big tab is read.
//!
//! Journal entries are trimmed only after every watched table's engine committed them
//! ([`SheetTable::first_unconsumed_journal_entry`]); after a restart the engine's first cycle
//! reads in full, and entries older than that read are dropped as already seen.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sheetsync_gsheets::watch::{ChangeDetection, WatchOptions, Watcher};
//! # async fn run(client: Arc<sheetsync_gsheets::SheetsClient>, table: Arc<sheetsync_gsheets::SheetTable>) {
//! let watcher = Arc::new(Watcher::new(client, "spreadsheet-id", WatchOptions::default()));
//! watcher.add(table); // for every table of that spreadsheet this process syncs
//! tokio::spawn(async move { watcher.run(std::future::pending::<()>()).await });
//! # }
//! ```

mod decide;
mod journal;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sheetsync_core::Result;

use crate::client::SheetsClient;
use crate::table::{SheetEdit, SheetTable};
use decide::{decide, next_interval, Owed, Seen, Step};
use journal::Journal;
pub use journal::{create_journal, journal_exists, JOURNAL_TAB};

/// How a person's edit of the Sheet is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeDetection {
    /// The Apps Script appends edits to a hidden journal tab, which polls read: no public URL.
    #[default]
    Journal,
    /// The Apps Script POSTs edits to the daemon's webhook (needs a public HTTPS URL).
    Webhook,
    /// No script: every change is found by the version check and read in full.
    Polling,
}

impl ChangeDetection {
    /// The mode's name in configuration (`journal`, `webhook`, `polling`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeDetection::Journal => "journal",
            ChangeDetection::Webhook => "webhook",
            ChangeDetection::Polling => "polling",
        }
    }

    /// What to expect of the mode, in a sentence for logs and `check`.
    pub fn expectation(self, opts: &WatchOptions) -> String {
        let poll = opts.max_interval.as_secs_f64();
        match self {
            ChangeDetection::Journal => format!(
                "person edits reach the database in about {:.1} s through the journal; other programs' API writes in a few seconds (a full read); no public URL needed",
                poll + 0.5
            ),
            ChangeDetection::Webhook => "person edits reach the database in about a second through the webhook; other programs' API writes in a few seconds (a full read)".into(),
            ChangeDetection::Polling => format!(
                "every change is read in full within about {:.0} s of the Drive version moving; install the Apps Script (journal mode) for cheaper, faster edits",
                poll + opts.min_full_read_gap.as_secs_f64()
            ),
        }
    }
}

impl std::fmt::Display for ChangeDetection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a [`Watcher`] polls.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How edits are reported.
    pub mode: ChangeDetection,
    /// The poll interval while the file changes.
    pub min_interval: Duration,
    /// The poll interval it grows to while nothing changes.
    pub max_interval: Duration,
    /// How soon a move taken as this process's own write is followed by a journal read.
    pub confirm_journal: Duration,
    /// How soon a move taken on trust is followed by a full read.
    pub confirm_full: Duration,
    /// How long a move waits for a late webhook delivery before a full read (webhook mode).
    pub webhook_grace: Duration,
    /// The least time between two full reads the watcher asks for.
    pub min_full_read_gap: Duration,
    /// Make the journal tab when it is missing (journal mode).
    pub create_journal: bool,
    /// Committed journal entries are trimmed once this many have gathered ...
    pub trim_rows: usize,
    /// ... or the oldest of them is this old.
    pub trim_after: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            mode: ChangeDetection::Journal,
            min_interval: Duration::from_millis(400),
            max_interval: Duration::from_millis(1200),
            confirm_journal: Duration::from_secs(5),
            confirm_full: Duration::from_secs(60),
            webhook_grace: Duration::from_secs(3),
            min_full_read_gap: Duration::from_secs(5),
            create_journal: true,
            trim_rows: 50,
            trim_after: Duration::from_secs(10),
        }
    }
}

/// What a [`Watcher`] has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchStats {
    /// Polls made (one Drive `files.get` each).
    pub polls: u64,
    /// Polls that found the version moved.
    pub moves: u64,
    /// Journal reads (one Sheets read each).
    pub journal_reads: u64,
    /// Journal entries applied.
    pub entries: u64,
    /// Full reads asked for, because of a change nobody reported or owed after trust.
    pub full_reads: u64,
    /// Journal trims, and the rows they deleted.
    pub trims: u64,
    /// Rows deleted from the journal.
    pub trimmed_rows: u64,
    /// The journal tab is missing (journal mode falls back to full reads).
    pub journal_missing: bool,
}

/// What the poll loop remembers between polls.
#[derive(Default)]
struct PollState {
    version: Option<String>,
    activity: (u64, u64),
    delivered: u64,
    owed: Owed,
    /// When the last full read was asked for, and whether one waits for the gap to pass.
    last_full: Option<Instant>,
    full_pending: bool,
    journal_id: Option<String>,
    /// The last journal seq taken (`None`: none yet, or a new journal).
    last_seq: Option<u64>,
    journal_tab: Option<i32>,
    /// Since when committed entries wait to be trimmed.
    trimmable_since: Option<Instant>,
}

/// Whether a move of the version from `before` to `now` may be this process's writes alone:
/// some ended since the last poll or are in flight, and (when both versions are numbers, as
/// Drive's are) the version moved no more than once per write that may have been applied.
/// One more means someone else changed the file too (a write by another program, or the
/// Apps Script's journal entry) even while we were writing.
fn maybe_ours(before: Option<&str>, now: &str, was: (u64, u64), is: (u64, u64)) -> bool {
    let ours = is.0.saturating_sub(was.0) + is.1;
    if ours == 0 {
        return false;
    }
    match (
        before.and_then(|b| b.parse::<u64>().ok()),
        now.parse::<u64>().ok(),
    ) {
        (Some(b), Some(n)) => n.saturating_sub(b) <= ours,
        _ => true,
    }
}

/// Whether the move is exactly this process's writes: none in flight at either poll, and the
/// version moved once per write that ended. Then no one else's change can hide behind them
/// (it would have moved the version once more), and no check is owed.
fn exactly_ours(before: Option<&str>, now: &str, was: (u64, u64), is: (u64, u64)) -> bool {
    let ended = is.0.saturating_sub(was.0);
    let versions = (
        before.and_then(|b| b.parse::<u64>().ok()),
        now.parse::<u64>().ok(),
    );
    match versions {
        (Some(b), Some(n)) => ended > 0 && was.1 == 0 && is.1 == 0 && n.saturating_sub(b) == ended,
        _ => false,
    }
}

/// Polls one spreadsheet for the tables that sync its tabs (see the [module docs](self)).
pub struct Watcher {
    client: Arc<SheetsClient>,
    spreadsheet_id: String,
    opts: WatchOptions,
    tables: Mutex<Vec<Arc<SheetTable>>>,
    stats: Mutex<WatchStats>,
    /// Held by the poll in progress: polls never overlap.
    state: tokio::sync::Mutex<PollState>,
}

impl Watcher {
    /// A watcher of `spreadsheet_id`, polling through `client`.
    pub fn new(
        client: Arc<SheetsClient>,
        spreadsheet_id: impl Into<String>,
        opts: WatchOptions,
    ) -> Self {
        Watcher {
            client,
            spreadsheet_id: spreadsheet_id.into(),
            opts,
            tables: Mutex::new(Vec::new()),
            stats: Mutex::new(WatchStats::default()),
            state: tokio::sync::Mutex::new(PollState::default()),
        }
    }

    /// The spreadsheet it watches.
    pub fn spreadsheet_id(&self) -> &str {
        &self.spreadsheet_id
    }

    /// The options.
    pub fn options(&self) -> &WatchOptions {
        &self.opts
    }

    /// Watches `table` (a tab of this spreadsheet) from now on. Add a table only while this
    /// process runs its mapping: the watcher trims journal entries its tables committed.
    pub fn add(&self, table: Arc<SheetTable>) {
        let mut tables = self.tables.lock().expect("tables lock");
        if !tables.iter().any(|t| Arc::ptr_eq(t, &table)) {
            tables.push(table);
        }
    }

    /// Stops watching `table` (its mapping stopped here).
    pub fn remove(&self, table: &Arc<SheetTable>) {
        self.tables
            .lock()
            .expect("tables lock")
            .retain(|t| !Arc::ptr_eq(t, table));
    }

    /// What it has done so far.
    pub fn stats(&self) -> WatchStats {
        self.stats.lock().expect("stats lock").clone()
    }

    fn count(&self, f: impl FnOnce(&mut WatchStats)) {
        f(&mut self.stats.lock().expect("stats lock"));
    }

    fn watched(&self) -> Vec<Arc<SheetTable>> {
        self.tables.lock().expect("tables lock").clone()
    }

    /// Polls until `shutdown` completes. Failures are logged (at most once a minute) and the
    /// next poll tries again; the loop never gives up.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = self.opts.min_interval;
        let mut warned = None::<Instant>;
        loop {
            let active = match self.poll_once().await {
                Ok(active) => active,
                Err(e) => {
                    if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(spreadsheet = %self.spreadsheet_id, error = %e, "checking the spreadsheet for changes failed; trying again");
                        warned = Some(Instant::now());
                    }
                    false
                }
            };
            interval = next_interval(interval, active, &self.opts);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One poll (what [`Watcher::run`] does every interval); true when it found something
    /// changing. A failure leaves the version unacknowledged, so the next poll looks again.
    pub async fn poll_once(&self) -> Result<bool> {
        let mut st = self.state.lock().await;
        self.poll(&mut st).await
    }

    async fn poll(&self, st: &mut PollState) -> Result<bool> {
        let tables = self.watched();
        if tables.is_empty() {
            return Ok(false);
        }
        let now = Instant::now();
        // Our writes are counted before the version is asked for: one that starts after the
        // question cannot have moved the answer.
        let activity = self.client.write_activity(&self.spreadsheet_id);
        let version = self.client.drive_version(&self.spreadsheet_id).await?;
        let delivered: u64 = tables.iter().map(|t| t.edits_accepted()).sum();
        let seen = Seen {
            moved: st.version.as_ref() != Some(&version),
            own_writes: maybe_ours(st.version.as_deref(), &version, st.activity, activity),
            delivered: delivered != st.delivered,
        };
        self.count(|s| {
            s.polls += 1;
            s.moves += seen.moved as u64;
        });
        if st.version.is_none() {
            // The first poll knows no earlier version, so whatever changed since the engine's
            // first (full) read is unknown: one more full read, which costs no Sheets read
            // when the version did not move since that read (the table compares it).
            tables.iter().for_each(|t| t.read_in_background());
        }
        let step = match st.version {
            // ... and it takes up what the journal holds (what a full read saw is dropped).
            None if self.opts.mode == ChangeDetection::Journal => Step::ReadJournal,
            None => Step::Idle,
            Some(_) => decide(self.opts.mode, seen, &st.owed, now, self.opts.webhook_grace),
        };
        let mut active = seen.moved;
        if step != Step::Idle {
            tracing::debug!(spreadsheet = %self.spreadsheet_id, ?seen, ?step, "poll");
        }
        match step {
            Step::Idle => {}
            Step::Adopt if exactly_ours(st.version.as_deref(), &version, st.activity, activity) => {
            }
            Step::Adopt => st.owed.adopted(now, &self.opts),
            Step::Wait => {
                st.owed.unexplained_since.get_or_insert(now);
            }
            Step::FullRead => self.full_read(&tables, st, now, "a change nobody reported"),
            Step::ReadJournal => {
                let applied = self.take_journal(&tables, st).await?;
                active |= applied > 0;
                if applied == 0 && seen.moved && !seen.own_writes && st.version.is_some() {
                    self.full_read(&tables, st, now, "a change no journal entry explains");
                }
            }
        }
        if st.owed.full_due(now) || st.full_pending {
            self.full_read(
                &tables,
                st,
                now,
                "a check owed after changes taken on trust",
            );
        }
        (st.version, st.activity, st.delivered) = (Some(version), activity, delivered);
        Ok(active)
    }

    /// Asks every watched table for a full read, at most once per
    /// [`WatchOptions::min_full_read_gap`] (a later one waits for the gap to pass).
    fn full_read(&self, tables: &[Arc<SheetTable>], st: &mut PollState, now: Instant, why: &str) {
        st.owed.unexplained_since = None;
        st.owed.full_at = None;
        if st
            .last_full
            .is_some_and(|t| now.duration_since(t) < self.opts.min_full_read_gap)
        {
            st.full_pending = true;
            return;
        }
        tracing::debug!(spreadsheet = %self.spreadsheet_id, why, "the spreadsheet changed: reading its mapped tabs in full");
        for t in tables {
            t.read_in_background();
        }
        (st.last_full, st.full_pending) = (Some(now), false);
        self.count(|s| s.full_reads += 1);
    }

    /// Reads the journal, applies the entries after the last one taken and trims what the
    /// engines committed; returns how many entries it applied.
    async fn take_journal(&self, tables: &[Arc<SheetTable>], st: &mut PollState) -> Result<usize> {
        let read = journal::read(&self.client, &self.spreadsheet_id);
        self.count(|s| s.journal_reads += 1);
        // A failed read leaves the owed read owed (and the version unacknowledged).
        let read = read.await?;
        st.owed.journal_at = None;
        let Some(journal) = read else {
            self.journal_missing(tables, st).await;
            return Ok(0);
        };
        self.journal_found(tables, st, &journal);
        let applied = self.apply_entries(tables, st, &journal);
        self.trim(tables, st, &journal).await?;
        Ok(applied)
    }

    /// Falls back to full reads, and makes the tab again (when allowed) so that the Apps
    /// Script's next entries have somewhere to go.
    async fn journal_missing(&self, tables: &[Arc<SheetTable>], st: &mut PollState) {
        (st.journal_id, st.last_seq, st.journal_tab) = (None, None, None);
        let was_missing = std::mem::replace(
            &mut self.stats.lock().expect("stats lock").journal_missing,
            true,
        );
        if !was_missing {
            self.full_read(tables, st, Instant::now(), "the journal is missing");
        }
        let made = match self.opts.create_journal {
            true => journal::create_journal(&self.client, &self.spreadsheet_id).await,
            false => Ok(false),
        };
        match made {
            Ok(true) => {
                tracing::info!(spreadsheet = %self.spreadsheet_id, tab = JOURNAL_TAB, "made the edit journal tab (hidden) for the Apps Script's entries; edits made while it was missing are found by a full read")
            }
            Ok(false) if !was_missing => {
                tracing::warn!(spreadsheet = %self.spreadsheet_id, tab = JOURNAL_TAB, "the edit journal tab is missing: edits are found by full reads until it is back (run `sheetsync install`, or edit the Sheet once: the Apps Script makes it again)")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(spreadsheet = %self.spreadsheet_id, error = %e, "the edit journal tab is missing and could not be made: edits are found by full reads")
            }
        }
    }

    /// Notes the journal's id; a journal made again (another id) may have lost entries.
    fn journal_found(&self, tables: &[Arc<SheetTable>], st: &mut PollState, journal: &Journal) {
        let was_missing = std::mem::replace(
            &mut self.stats.lock().expect("stats lock").journal_missing,
            false,
        );
        if was_missing {
            tracing::info!(spreadsheet = %self.spreadsheet_id, "the edit journal tab is back");
        }
        if st.journal_id.is_some() && st.journal_id != journal.id {
            tracing::warn!(spreadsheet = %self.spreadsheet_id, "the edit journal was made again (its id changed): reading the mapped tabs in full for the edits it may have lost");
            self.full_read(tables, st, Instant::now(), "a new journal");
            (st.last_seq, st.journal_tab) = (None, None);
        }
        st.journal_id = journal.id.clone();
    }

    /// Gives each new entry to the tables of its tab; a skipped seq or an unreadable entry
    /// asks for a full read.
    fn apply_entries(
        &self,
        tables: &[Arc<SheetTable>],
        st: &mut PollState,
        journal: &Journal,
    ) -> usize {
        let mut applied = 0;
        for e in &journal.entries {
            if st.last_seq.is_some_and(|last| e.seq <= last) {
                continue;
            }
            if let Some(last) = st.last_seq.filter(|last| e.seq != last + 1) {
                tracing::warn!(spreadsheet = %self.spreadsheet_id, after = last, next = e.seq, "journal entries are missing (the journal tab was edited?): reading the mapped tabs in full");
                self.full_read(tables, st, Instant::now(), "missing journal entries");
            }
            st.last_seq = Some(e.seq);
            match &e.payload {
                Ok(p) if p.spreadsheet_id == self.spreadsheet_id => {
                    let edit = SheetEdit::from(p);
                    let id = journal.id.as_deref();
                    for t in tables.iter().filter(|t| t.options().sheet_id == p.sheet_id) {
                        if let Err(err) = t.take_journal_entry(id, e.seq, edit.clone()) {
                            tracing::warn!(seq = e.seq, error = %err, "a journal entry could not be applied: reading in full");
                            t.read_in_background();
                        }
                    }
                    applied += 1;
                }
                Ok(p) => {
                    tracing::warn!(seq = e.seq, other = %p.spreadsheet_id, "a journal entry names another spreadsheet: ignored")
                }
                Err(why) => {
                    tracing::warn!(spreadsheet = %self.spreadsheet_id, seq = e.seq, error = %why, "an unreadable journal entry: reading the mapped tabs in full");
                    self.full_read(tables, st, Instant::now(), "an unreadable journal entry");
                }
            }
        }
        self.count(|s| s.entries += applied as u64);
        applied
    }

    /// Deletes the journal rows every watched engine committed, once enough gathered.
    async fn trim(
        &self,
        tables: &[Arc<SheetTable>],
        st: &mut PollState,
        journal: &Journal,
    ) -> Result<()> {
        let Some(last) = st.last_seq else {
            return Ok(());
        };
        let consumed = tables
            .iter()
            .filter_map(|t| t.first_unconsumed_journal_entry())
            .map(|first| first.saturating_sub(1))
            .min()
            .unwrap_or(last);
        let Some(upto) = journal::trim_upto(journal, consumed) else {
            st.trimmable_since = None;
            return Ok(());
        };
        let since = *st.trimmable_since.get_or_insert_with(Instant::now);
        let rows = journal.entries.iter().filter(|e| e.row <= upto).count();
        if rows < self.opts.trim_rows && since.elapsed() < self.opts.trim_after {
            return Ok(());
        }
        let tab = match st.journal_tab {
            Some(t) => t,
            None => match journal::tab_id(&self.client, &self.spreadsheet_id).await? {
                Some(t) => *st.journal_tab.insert(t),
                None => return Ok(()),
            },
        };
        journal::trim(&self.client, &self.spreadsheet_id, tab, upto).await?;
        st.trimmable_since = None;
        self.count(|s| {
            s.trims += 1;
            s.trimmed_rows += upto.saturating_sub(1) as u64;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{exactly_ours, maybe_ours};

    #[test]
    fn a_move_beyond_our_writes_is_someone_elses() {
        // No write of ours ended or is in flight: not ours.
        assert!(!maybe_ours(Some("5"), "6", (3, 0), (3, 0)));
        // Two of ours ended: up to two steps are ours, a third is not.
        assert!(maybe_ours(Some("5"), "7", (3, 0), (5, 0)));
        assert!(!maybe_ours(Some("5"), "8", (3, 0), (5, 0)));
        // One in flight may have been applied already.
        assert!(maybe_ours(Some("5"), "6", (3, 0), (3, 1)));
        assert!(!maybe_ours(Some("5"), "7", (3, 0), (3, 1)));
        // Versions that are not numbers cannot be counted: ours, on trust.
        assert!(maybe_ours(Some("a"), "b", (3, 0), (4, 0)));
        assert!(maybe_ours(None, "9", (3, 0), (4, 0)));
    }

    #[test]
    fn only_a_move_of_exactly_our_writes_owes_no_check() {
        assert!(exactly_ours(Some("5"), "7", (3, 0), (5, 0)));
        // Fewer steps than writes: a step may have been someone else's too.
        assert!(!exactly_ours(Some("5"), "6", (3, 0), (5, 0)));
        // A write in flight at either poll may have moved either version.
        assert!(!exactly_ours(Some("5"), "7", (3, 1), (5, 0)));
        assert!(!exactly_ours(Some("5"), "7", (3, 0), (5, 1)));
        assert!(!exactly_ours(Some("a"), "b", (3, 0), (4, 0)));
        assert!(!exactly_ours(Some("5"), "5", (3, 0), (3, 0)));
    }
}
