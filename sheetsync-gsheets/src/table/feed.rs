//! The change feed of [`SheetTable`]: people's edits reported by the Sheet (see
//! [`crate::webhook`]) become observations, checked against the adapter's own recent writes
//! (an edit a write may have overwritten is reported as [`Change::Overwritten`]), numbered and
//! served to the engine until it acknowledges them.

use super::*;

/// The change feed: observations of people's edits, numbered, until the engine acknowledges
/// them. A cursor is `instance:seq`; a cursor of another instance (another process) starts
/// from the beginning.
#[derive(Default)]
pub(super) struct Feed {
    instance: u64,
    seq: u64,
    /// The last entry the engine has read (through `changes` or a full read's `cursor`).
    handed_out: u64,
    entries: VecDeque<(u64, Observation)>,
    /// For entries from an edit that said which columns it touched: their schema columns.
    edited: HashMap<u64, Vec<usize>>,
    pub(super) rescan: bool,
    /// Times a full read was asked for (see [`Feed::ask_rescan`]).
    pub(super) rescans: u64,
    /// While a background full read is made: every observation pushed since it started, to
    /// lay over it ([`super::background`]).
    pub(super) overlay: Option<Vec<Observation>>,
    /// The last entry the engine acknowledged (it committed everything up to it).
    acked: u64,
    /// Journal entries taken into this feed and not yet acknowledged: the feed entry that has
    /// to be acknowledged first, and the entry's journal seq (oldest first).
    journal: VecDeque<(u64, u64)>,
    /// The journal the entries come from, and the last entry the engine committed.
    journal_id: Option<String>,
    journal_done: u64,
    /// What the cursor saved by an earlier process says it committed: (journal id, seq).
    resumed: Option<(String, u64)>,
}

impl Feed {
    /// A new, empty feed with an instance number of its own.
    pub fn new() -> Self {
        Feed {
            instance: rand::random::<u32>() as u64,
            ..Feed::default()
        }
    }

    /// The entry a cursor of this feed points at (`0`: before the first).
    fn position(&self, c: &Cursor) -> u64 {
        let feed = c.0.split(';').next().unwrap_or_default();
        match feed.split_once(':') {
            Some((inst, seq)) if inst.parse() == Ok(self.instance) => seq.parse().unwrap_or(0),
            // Another process's cursor: everything buffered here is new.
            _ => 0,
        }
    }

    /// `instance:seq`, and with journal entries `;journal=<id>@<last committed seq>` (which
    /// outlives the process: see [`Feed::resume`]).
    fn cursor_at(&self, seq: u64) -> Cursor {
        let mut c = format!("{}:{seq}", self.instance);
        if let Some(id) = &self.journal_id {
            let done = self
                .journal
                .iter()
                .filter(|(f, _)| *f <= seq)
                .map(|(_, j)| *j)
                .fold(self.journal_done, u64::max);
            c.push_str(&format!(";journal={id}@{done}"));
        }
        Cursor(c)
    }

    /// Takes the journal position a saved cursor records: entries of that journal up to it
    /// were committed before, and are skipped.
    pub fn resume(&mut self, saved: &Cursor) {
        let part = saved.0.split(';').find_map(|p| p.strip_prefix("journal="));
        self.resumed = part
            .and_then(|p| p.rsplit_once('@'))
            .and_then(|(id, seq)| Some((id.to_string(), seq.parse().ok()?)));
    }

    /// Whether entry `seq` of journal `id` was committed by an earlier process.
    pub fn committed_before(&self, id: &str, seq: u64) -> bool {
        self.resumed
            .as_ref()
            .is_some_and(|(rid, upto)| rid == id && seq <= *upto)
    }

    /// The journal the next entries come from.
    pub fn set_journal(&mut self, id: Option<String>) {
        if self.journal_id != id {
            self.journal_id = id;
            self.journal.clear();
            self.journal_done = 0;
        }
    }

    /// The cursor after the last entry, taken before a full read: every entry so far counts
    /// as handed out, as the read sees what they reported. Except a person's edit that our own
    /// write may have overwritten: the read sees our write on top of it, so the edit is moved
    /// after the cursor, to be merged next as usual.
    pub fn cursor(&mut self) -> Cursor {
        let handed_out = self.handed_out;
        let overwritten: Vec<u64> = self
            .entries
            .iter()
            .filter(|(s, o)| *s > handed_out && matches!(o.change, Change::Overwritten { .. }))
            .map(|(s, _)| *s)
            .collect();
        let at = self.seq;
        for old in overwritten {
            let i = self
                .entries
                .iter()
                .position(|(s, _)| *s == old)
                .expect("listed");
            let (_, o) = self.entries.remove(i).expect("listed");
            self.seq += 1;
            self.entries.push_back((self.seq, o));
            if let Some(ed) = self.edited.remove(&old) {
                self.edited.insert(self.seq, ed);
            }
            // Its journal entry is committed with it (the marks stay in order of their
            // entries being acknowledged: a moved one only holds later ones back).
            for m in self.journal.iter_mut().filter(|(f, _)| *f == old) {
                m.0 = self.seq;
            }
        }
        self.handed_out = at;
        self.cursor_at(at)
    }

    /// Up to `limit` entries after `since`, the cursor after them, and whether more follow.
    pub fn page(&mut self, since: &Cursor, limit: usize) -> (Vec<Observation>, Cursor, bool) {
        let since = self.position(since);
        let pending: Vec<&(u64, Observation)> =
            self.entries.iter().filter(|(s, _)| *s > since).collect();
        let page = &pending[..pending.len().min(limit)];
        let last = page.last().map_or(since, |(s, _)| *s);
        let more = pending.len() > page.len();
        let changes = page.iter().map(|(_, o)| o.clone()).collect();
        self.handed_out = self.handed_out.max(last);
        (changes, self.cursor_at(last), more)
    }

    /// Drops the entries up to `cursor`.
    pub fn ack(&mut self, cursor: &Cursor) {
        let upto = self.position(cursor);
        self.acked = self.acked.max(upto);
        while let Some(&(s, j)) = self.journal.front() {
            if s > self.acked {
                break;
            }
            self.journal_done = self.journal_done.max(j);
            self.journal.pop_front();
        }
        while let Some(&(s, _)) = self.entries.front() {
            if s > upto {
                break;
            }
            self.entries.pop_front();
            self.edited.remove(&s);
        }
    }

    /// Asks for a full read next cycle; returns how many were asked for so far.
    pub fn ask_rescan(&mut self) -> u64 {
        self.rescan = true;
        self.rescans += 1;
        self.rescans
    }

    /// Appends observations of one edit, which touched the schema columns `edited` if known.
    pub fn push(&mut self, observations: Vec<Observation>, edited: Option<&[usize]>) {
        if let Some(overlay) = &mut self.overlay {
            overlay.extend(observations.iter().cloned());
        }
        for o in observations {
            self.seq += 1;
            self.entries.push_back((self.seq, o));
            if let Some(e) = edited {
                self.edited.insert(self.seq, e.to_vec());
            }
        }
    }

    /// Notes that journal entry `seq` was just pushed: it is consumed once the engine has
    /// acknowledged everything pushed so far.
    pub fn mark_journal(&mut self, seq: u64) {
        if self.seq > self.acked {
            self.journal.push_back((self.seq, seq));
        } else {
            self.journal_done = self.journal_done.max(seq);
        }
    }

    /// The oldest journal entry of this feed the engine has not committed yet.
    pub fn first_unconsumed_journal(&self) -> Option<u64> {
        self.journal.front().map(|(_, j)| *j)
    }

    /// Drops the entries not yet handed out for which `covered` is true.
    pub fn drop_unread(&mut self, covered: impl Fn(&Observation) -> bool) {
        let handed_out = self.handed_out;
        let Feed {
            entries, edited, ..
        } = self;
        entries.retain(|(seq, o)| {
            // A full read cannot have seen an edit our write overwrote.
            let overwritten = matches!(o.change, Change::Overwritten { .. });
            let drop = *seq > handed_out && !overwritten && covered(o);
            if drop {
                edited.remove(seq);
            }
            !drop
        });
    }

    /// Rewrites the entries not yet handed out, given the columns each edit touched.
    pub fn rewrite_unread(&mut self, f: impl Fn(Observation, Option<&[usize]>) -> Observation) {
        let handed_out = self.handed_out;
        for (seq, o) in self.entries.iter_mut().filter(|(s, _)| *s > handed_out) {
            let ed = self.edited.get(seq).map(Vec::as_slice);
            *o = f(o.clone(), ed);
        }
    }
}

/// One of the adapter's writes of a row: when, and which cells it wrote.
#[derive(Debug, Clone)]
pub(super) struct WriteMark {
    /// `None` while the write is in flight.
    pub(super) end_ms: Option<i64>,
    /// Schema column index and the value written.
    pub(super) cells: Vec<(usize, Value)>,
}

impl WriteMark {
    /// True when a person's edit at `t` may have been overwritten by this write: it happened
    /// before the write finished (allowing for clock skew).
    fn covers(&self, t: i64, skew: i64) -> bool {
        self.end_ms.is_none_or(|end| t < end + skew)
    }

    /// `row` with the written cells applied except in the `kept` columns.
    fn applied_except(&self, row: &Row, kept: &[usize]) -> Row {
        let mut out = row.clone();
        for (i, v) in &self.cells {
            if let Some(slot) = out.0.get_mut(*i).filter(|_| !kept.contains(i)) {
                *slot = v.clone();
            }
        }
        out
    }

    /// `row` with the written cells applied: what the Sheet holds after an overwrite.
    fn applied_to(&self, row: &Row) -> Row {
        let mut out = row.clone();
        for (i, v) in &self.cells {
            if let Some(slot) = out.0.get_mut(*i) {
                *slot = v.clone();
            }
        }
        out
    }
}

impl SheetTable {
    /// Feeds a person's edit reported by the Sheet into the change feed and wakes the engine.
    /// Edits of other tabs are ignored. Structural changes, and edits that change a row's key,
    /// make the next read a full one.
    pub fn accept_edit(&self, edit: SheetEdit) -> Result<()> {
        if edit.sheet_id != self.opts.sheet_id {
            return Ok(());
        }
        self.edits_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.forget_read();
        let (mut observations, rescan, in_place) = self.observe_edit(&edit);
        if !in_place {
            // A person's edit added or moved rows, or typed a key: the positions this process
            // knows no longer tell where keys are (a row typed since would be taken for missing).
            self.positions_unknown();
        }
        // An edit older than the last full read is already in what that read saw.
        let read_ms = self.last_read_ms.load(std::sync::atomic::Ordering::Relaxed);
        let skew = self.opts.clock_skew_ms;
        if read_ms > 0 && edit.timestamp_ms < read_ms - skew {
            observations.clear();
        }
        let layout_columns = self
            .layout
            .lock()
            .expect("layout lock")
            .as_ref()
            .map(|(l, _)| l.columns.clone());
        let edited = edited_columns(layout_columns.as_deref(), edit.columns);
        if edited.as_ref().is_some_and(Vec::is_empty) {
            // Only columns that do not sync (a status column, notes of one's own): not an
            // edit of the row.
            observations.clear();
        }
        let marks = self.marks.lock().expect("marks lock");
        let observations: Vec<Observation> = observations
            .into_iter()
            .map(|o| overwritten_by(&marks, &self.schema, o, skew, edited.as_deref()))
            .collect();
        drop(marks);
        self.remember_edit_times(&observations);
        let mut feed = self.feed.lock().expect("feed lock");
        feed.push(observations, edited.as_deref());
        if rescan {
            feed.ask_rescan();
        }
        drop(feed);
        let _ = self.wake.send(());
        Ok(())
    }

    /// [`SheetTable::accept_edit`] for entry `seq` of the edit journal ([`crate::watch`]),
    /// remembering the entry until the engine has committed what it carried.
    pub fn accept_journal_entry(&self, edit: SheetEdit, seq: u64) -> Result<()> {
        self.accept_edit(edit)?;
        self.feed.lock().expect("feed lock").mark_journal(seq);
        Ok(())
    }

    /// Entry `seq` of journal `journal`: taken into the change feed, or skipped when an
    /// earlier process committed it (its saved cursor says so, [`Source::resume`]).
    pub fn take_journal_entry(
        &self,
        journal: Option<&str>,
        seq: u64,
        edit: SheetEdit,
    ) -> Result<()> {
        let mut feed = self.feed.lock().expect("feed lock");
        feed.set_journal(journal.map(str::to_string));
        if journal.is_some_and(|id| feed.committed_before(id, seq)) {
            feed.mark_journal(seq);
            return Ok(());
        }
        drop(feed);
        self.accept_journal_entry(edit, seq)
    }

    /// The oldest journal entry given to this table whose changes the engine has not
    /// committed yet: the journal may be trimmed only below it.
    pub fn first_unconsumed_journal_entry(&self) -> Option<u64> {
        self.feed
            .lock()
            .expect("feed lock")
            .first_unconsumed_journal()
    }

    /// How many edits of this tab the Sheet has reported so far (webhook or journal).
    pub fn edits_accepted(&self) -> u64 {
        self.edits_accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the next cycle read the tab in full (something changed that no reported edit
    /// explains) and wakes the engine for it.
    pub fn request_full_read(&self) {
        // Whatever changed may have moved rows (another program's insert, say).
        self.positions_unknown();
        self.feed.lock().expect("feed lock").ask_rescan();
        let _ = self.wake.send(());
    }

    /// The observations of an edit's rows, whether the next read must be a full one (the
    /// layout is unknown or moved, a header or key changed, a row was cleared, a key typed
    /// twice), and whether every edited row holds a key known to be at that very row (then the
    /// edit moved no key, and the positions this process knows still hold).
    fn observe_edit(&self, edit: &SheetEdit) -> (Vec<Observation>, bool, bool) {
        let layout = self
            .layout
            .lock()
            .expect("layout lock")
            .as_ref()
            .map(|(l, _)| l.clone());
        let mut rescan = edit.structural;
        let mut in_place = !edit.structural;
        let mut observations = Vec::new();
        match layout {
            Some(mut l) if !edit.structural => {
                // The edit's own header decides where columns are (they may have moved).
                if l.map_header(&edit.header, &self.schema).is_err() {
                    rescan = true;
                } else {
                    let at = DateTime::from_timestamp_millis(edit.timestamp_ms);
                    let cache = self.cache.lock().expect("cache lock");
                    for (row_no, cells) in &edit.rows {
                        if *row_no <= l.header_row {
                            rescan = true;
                            continue;
                        }
                        let obs = self.observe_row(&l, *row_no, cells, at);
                        let new_key = match obs.as_ref().map(|o| &o.change) {
                            Some(Change::Upsert(r)) => r.key(&self.schema),
                            _ => None,
                        };
                        in_place &= new_key.as_ref().is_some_and(|k| {
                            cache
                                .positions
                                .as_ref()
                                .is_some_and(|p| p.holds(k, *row_no))
                        });
                        // A row that held another key before: that key may be gone.
                        if let Some(old) = cache.row_keys.get(*row_no) {
                            if Some(old) != new_key.as_ref() {
                                rescan = true;
                            }
                        }
                        // A key that another row already has: a duplicate typed by a person
                        // must never overwrite that row's data. Held until a full read says.
                        let elsewhere: Vec<u32> = new_key
                            .as_ref()
                            .and_then(|k| cache.key_rows.get(k))
                            .map(|rows| rows.into_iter().filter(|r| r != row_no).collect())
                            .unwrap_or_default();
                        let obs = match (obs, &new_key) {
                            (Some(_), Some(k)) if !elsewhere.is_empty() => {
                                rescan = true;
                                let mut rows = elsewhere;
                                rows.push(*row_no);
                                Some(Observation {
                                    at,
                                    ..duplicate(k, &rows, &l.title)
                                })
                            }
                            (obs, _) => obs,
                        };
                        match obs {
                            Some(o) => observations.push(o),
                            None => rescan = true, // cleared row
                        }
                    }
                }
            }
            _ => rescan = true,
        }
        (observations, rescan, in_place && !rescan)
    }

    /// Records the time and content of rows a person's edit reported.
    pub(super) fn remember_edit_times(&self, observations: &[Observation]) {
        let mut times = self.edit_times.lock().expect("edit times lock");
        for o in observations {
            let (Change::Upsert(row) | Change::Overwritten { actual: row, .. }) = &o.change else {
                continue;
            };
            if let (Some(k), Some(at)) = (row.key(&self.schema), o.at) {
                times.insert(k, (row.hash(), at));
            }
        }
    }

    /// Gives a full read's rows the edit time a person's edit reported for the same content;
    /// forgets the times of rows whose content changed since (their time is unknown).
    pub(super) fn restore_edit_times(&self, observations: &mut [Observation]) {
        let mut times = self.edit_times.lock().expect("edit times lock");
        if times.is_empty() {
            return;
        }
        for o in observations.iter_mut() {
            let Change::Upsert(row) = &o.change else {
                continue;
            };
            let Some(k) = row.key(&self.schema) else {
                continue;
            };
            match times.get(&k) {
                Some((hash, at)) if *hash == row.hash() => o.at = Some(*at),
                Some(_) => {
                    times.remove(&k);
                }
                None => {}
            }
        }
    }
}

/// A person's edit of a row the adapter wrote around the same time, reported as
/// [`Change::Overwritten`] (the Sheet then holds the edit with the written cells on top).
///
/// When the edit says which schema columns the person touched (`edited`), the row's other cells
/// are only a snapshot: where the adapter's write changed them, the write is newer, so they
/// take the written values and are never reported as the person's edit.
pub(super) fn overwritten_by(
    marks: &HashMap<RowKey, WriteMark>,
    schema: &TableSchema,
    o: Observation,
    skew: i64,
    edited: Option<&[usize]>,
) -> Observation {
    let Change::Upsert(row) = &o.change else {
        return o;
    };
    let (Some(key), Some(at)) = (row.key(schema), o.at) else {
        return o;
    };
    match marks.get(&key) {
        Some(m) if m.covers(at.timestamp_millis(), skew) => {
            let actual = m.applied_to(row);
            if actual == *row {
                return o;
            }
            let person = match edited {
                Some(ed) => m.applied_except(row, ed),
                None => row.clone(),
            };
            let change = if person == actual {
                Change::Upsert(actual)
            } else {
                Change::Overwritten {
                    row: person,
                    actual,
                }
            };
            Observation { change, at: o.at }
        }
        _ => o,
    }
}

/// The schema columns inside the edited sheet columns (1-based, inclusive), given where each
/// schema column is in the tab.
fn edited_columns(layout: Option<&[u32]>, cols: Option<(u32, u32)>) -> Option<Vec<usize>> {
    let (layout, (c0, c1)) = (layout?, cols?);
    Some(
        layout
            .iter()
            .enumerate()
            .filter(|(_, c)| (c0..=c1).contains(&(**c + 1)))
            .map(|(i, _)| i)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: i64) -> Observation {
        Observation::new(Change::Upsert(super::super::tests::row(id, "x", 0)))
    }

    fn ids(changes: &[Observation]) -> Vec<i64> {
        changes
            .iter()
            .map(|o| match &o.change {
                Change::Upsert(r) => match r.0[0] {
                    Value::Int(i) => i,
                    _ => unreachable!(),
                },
                c => panic!("{c:?}"),
            })
            .collect()
    }

    #[test]
    fn the_feed_pages_from_a_cursor_and_forgets_what_was_acknowledged() {
        let mut feed = Feed::new();
        let start = feed.cursor();
        feed.push((1..=3).map(obs).collect(), None);
        let (page, at, more) = feed.page(&start, 2);
        assert_eq!((ids(&page), more), (vec![1, 2], true));
        let (page, end, more) = feed.page(&at, 2);
        assert_eq!((ids(&page), more), (vec![3], false));
        // Nothing is dropped before the engine acknowledges it.
        assert_eq!(ids(&feed.page(&start, 10).0), vec![1, 2, 3]);
        feed.ack(&at);
        assert_eq!(ids(&feed.page(&start, 10).0), vec![3]);
        feed.ack(&end);
        let (page, same, more) = feed.page(&end, 10);
        assert!(page.is_empty() && !more);
        assert_eq!(same, end);
    }

    #[test]
    fn a_journal_entry_is_consumed_once_its_observations_are_acknowledged() {
        let mut feed = Feed::new();
        feed.push(vec![obs(1)], None);
        feed.mark_journal(7);
        let first = feed.cursor();
        feed.push(vec![obs(2)], None);
        feed.mark_journal(8);
        // An entry with nothing new for the feed waits for the entries before it.
        feed.mark_journal(9);
        assert_eq!(feed.first_unconsumed_journal(), Some(7));
        feed.ack(&first);
        assert_eq!(feed.first_unconsumed_journal(), Some(8));
        let all = feed.cursor();
        feed.ack(&all);
        assert_eq!(feed.first_unconsumed_journal(), None);
        // Once everything is acknowledged, an entry that adds nothing is consumed at once.
        feed.mark_journal(10);
        assert_eq!(feed.first_unconsumed_journal(), None);
    }

    #[test]
    fn the_cursor_carries_the_committed_journal_seq_to_the_next_process() {
        let mut feed = Feed::new();
        feed.set_journal(Some("j1".into()));
        feed.push(vec![obs(1)], None);
        feed.mark_journal(4);
        let at = feed.cursor();
        feed.push(vec![obs(2)], None);
        feed.mark_journal(5);
        // Only what the cursor's position covers counts as committed.
        assert!(at.0.ends_with(";journal=j1@4"), "{at:?}");
        feed.ack(&at);
        let mut next = Feed::new();
        next.resume(&at);
        assert!(next.committed_before("j1", 4));
        assert!(!next.committed_before("j1", 5));
        assert!(!next.committed_before("j2", 1), "another journal");
        // A cursor of this feed still points where it did.
        assert_eq!(feed.position(&at), 1);
    }

    #[test]
    fn a_cursor_of_another_process_reads_the_whole_feed() {
        let mut feed = Feed::new();
        feed.push(vec![obs(1), obs(2)], None);
        let foreign = Cursor(format!("{}:1", feed.instance + 1));
        assert_eq!(ids(&feed.page(&foreign, 10).0), vec![1, 2]);
        assert_eq!(ids(&feed.page(&Cursor("garbage".into()), 10).0), vec![1, 2]);
    }

    #[test]
    fn only_entries_not_yet_handed_out_are_rewritten_or_dropped() {
        let mut feed = Feed::new();
        feed.push(vec![obs(1)], Some(&[1]));
        feed.cursor();
        feed.push(vec![obs(2)], Some(&[2]));
        feed.push(vec![obs(3)], None);
        let seen = std::sync::Mutex::new(Vec::new());
        feed.rewrite_unread(|_, ed| {
            seen.lock().unwrap().push(ed.map(<[usize]>::to_vec));
            Observation::new(Change::Upsert(super::super::tests::row(9, "y", 0)))
        });
        assert_eq!(seen.into_inner().unwrap(), vec![Some(vec![2]), None]);
        let start = Cursor("another process".into());
        assert_eq!(ids(&feed.page(&start, 10).0), vec![1, 9, 9]);
        let mut feed = Feed::new();
        feed.push(vec![obs(1)], None);
        feed.cursor();
        feed.push(vec![obs(2), obs(3)], None);
        feed.drop_unread(|_| true);
        assert_eq!(ids(&feed.page(&start, 10).0), vec![1]);
    }

    #[test]
    fn edits_around_our_own_writes_are_reported_overwritten() {
        use sheetsync_core::{Column, ColumnType};
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap();
        let row = |name: &str| Row::new(vec![Value::Int(1), name.into()]);
        let edit = |ms: i64| Observation {
            change: Change::Upsert(row("person")),
            at: DateTime::from_timestamp_millis(ms),
        };
        let mut marks = HashMap::new();
        marks.insert(
            row("x").key(&schema).unwrap(),
            WriteMark {
                end_ms: Some(10_000),
                cells: vec![(1, Value::Text("engine".into()))],
            },
        );
        // Before the write ended (within the skew): overwritten, the Sheet holds the write.
        match overwritten_by(&marks, &schema, edit(11_000), 2_000, None).change {
            Change::Overwritten { row: r, actual } => {
                assert_eq!(r, row("person"));
                assert_eq!(actual, row("engine"));
            }
            c => panic!("expected an overwrite, got {c:?}"),
        }
        // Well after the write: the person's edit stands.
        assert_eq!(
            overwritten_by(&marks, &schema, edit(13_000), 2_000, None).change,
            Change::Upsert(row("person"))
        );
        // A write still in flight covers any edit.
        marks.values_mut().for_each(|m| m.end_ms = None);
        assert!(matches!(
            overwritten_by(&marks, &schema, edit(99_000), 2_000, None).change,
            Change::Overwritten { .. }
        ));
    }
}
