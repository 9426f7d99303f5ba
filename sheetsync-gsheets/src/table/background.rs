//! Full reads made outside the engine's cycle, so that a person's reported edits keep flowing
//! while a big tab is read.
//!
//! A full read of 100,000 rows takes several requests, each waiting for background read budget:
//! seconds. Made inside the engine's cycle, it holds back every journal or webhook edit that
//! arrives meanwhile. [`SheetTable::read_in_background`] makes the read in a task of its own and
//! only then asks the engine for a full read, which takes the finished snapshot instead of
//! reading. The snapshot is as of its start; what people did after that reaches the engine
//! through the change feed in the meantime, and is laid over the snapshot when the engine
//! takes it (so the snapshot never reverts an edit the engine already applied, nor hides one
//! the engine's cursor then skips). The snapshot is thrown away, and the engine reads in its
//! cycle as before, when anything happened that an overlay cannot express: a write of this
//! process, a structural edit or another reason to read in full, or an edit of a row without
//! a key.

use super::*;
use read::FullRead;

/// How long a background read waits for a write in flight to end: [`WRITE_WAITS`] ×
/// [`WRITE_WAIT`], a minute (a write waiting for the rate limiter may take that long).
const WRITE_WAITS: u32 = 1_200;
const WRITE_WAIT: Duration = Duration::from_millis(50);

/// The background read of one tab.
#[derive(Default)]
pub(super) struct Background {
    /// Reads asked for so far; one in flight serves only those asked before it started.
    asked: u64,
    running: bool,
    ready: Option<Ready>,
}

/// A finished background read, and what has to be unchanged for the engine to take it.
struct Ready {
    read: FullRead,
    /// [`SheetTable::writes`] when the read started.
    writes: u64,
    /// [`Feed::rescans`] after the read asked the engine to take it.
    rescans: u64,
}

impl SheetTable {
    /// Reads the tab in full in a task of its own, then asks the engine's next cycle to take
    /// that read instead of reading in its cycle, with the edits reported meanwhile laid over
    /// it by key (a write of this table, a structural edit or another reason to read in full
    /// voids it, and the engine reads as before). A read asked for while one is in flight makes
    /// that one read again when it ends. Where keys are is forgotten at once: whatever changed
    /// may have moved rows.
    pub fn read_in_background(self: &Arc<Self>) {
        self.positions_unknown();
        let mut bg = self.background.lock().expect("background lock");
        bg.asked += 1;
        // A finished read not taken yet is older than the reason for this one.
        bg.ready = None;
        if std::mem::replace(&mut bg.running, true) {
            return;
        }
        drop(bg);
        let table = self.clone();
        tokio::spawn(async move { table.background_reads().await });
    }

    /// Whether a full read is asked for, or being made in the background for the engine.
    pub fn full_read_pending(&self) -> bool {
        // One lock at a time: `take_when_ready` holds the feed's while it takes this one.
        let background = {
            let bg = self.background.lock().expect("background lock");
            bg.running || bg.ready.is_some()
        };
        background || self.feed.lock().expect("feed lock").rescan
    }

    async fn background_reads(&self) {
        loop {
            let asked = self.background.lock().expect("background lock").asked;
            let got = self.background_read().await;
            let mut bg = self.background.lock().expect("background lock");
            match got {
                Ok(_) if bg.asked != asked => continue, // asked again meanwhile
                Ok(ready) => {
                    bg.running = false;
                    bg.ready = Some(ready);
                    drop(bg);
                    self.take_when_ready();
                }
                Err(e) => {
                    bg.running = false;
                    drop(bg);
                    tracing::debug!(tab = %self.name, error = %e, "background full read failed; the engine reads in its cycle");
                    self.feed.lock().expect("feed lock").overlay = None;
                    self.request_full_read();
                }
            }
            return;
        }
    }

    /// Asks the engine to take the finished read (the request itself does not void it).
    fn take_when_ready(&self) {
        let mut feed = self.feed.lock().expect("feed lock");
        let rescans = feed.ask_rescan();
        if let Some(r) = &mut self.background.lock().expect("background lock").ready {
            r.rescans = rescans;
        }
        drop(feed);
        let _ = self.wake.send(());
    }

    async fn background_read(&self) -> Result<Ready> {
        let writes = self.between_writes().await?;
        // Edits reported from now on are laid over the read when the engine takes it.
        self.feed.lock().expect("feed lock").overlay = Some(Vec::new());
        let version = self.drive_version().await;
        let read = self.consistent_read(version).await?;
        Ok(Ready {
            read,
            writes,
            rescans: 0,
        })
    }

    /// Waits (a while) until no write of this tab is in flight; returns [`SheetTable::writes`]
    /// then. A write left unsettled (its answer lost, a repair to retry) is the engine's cycle's
    /// to settle before anything is read.
    async fn between_writes(&self) -> Result<u64> {
        use std::sync::atomic::Ordering;
        for _ in 0..WRITE_WAITS {
            let writes = self.writes.load(Ordering::Acquire);
            let unsettled = self.unverified.lock().expect("unverified lock").is_some()
                || self.pending_repair.lock().expect("repair lock").is_some();
            if unsettled {
                break;
            }
            if writes.is_multiple_of(2) {
                return Ok(writes);
            }
            tokio::time::sleep(WRITE_WAIT).await;
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "a write of this tab is in flight or unsettled",
        ))
    }

    /// The background read the engine may take now, with the edits reported since it started
    /// laid over it; `None` when there is none, or it is void (see the [module docs](self)).
    pub(super) fn take_background_read(&self, rescans: u64) -> Option<FullRead> {
        let ready = self
            .background
            .lock()
            .expect("background lock")
            .ready
            .take()?;
        let edits = self.feed.lock().expect("feed lock").overlay.take()?;
        let writes = self.writes.load(std::sync::atomic::Ordering::Acquire);
        if ready.writes != writes || ready.rescans != rescans {
            return None;
        }
        let mut read = ready.read;
        let since = read.read_start - self.opts.clock_skew_ms;
        overlay_edits(&mut read.snap.observations, edits, since, &self.schema).then_some(read)
    }
}

/// Lays edits reported after `since_ms` (Unix ms) over a snapshot's rows, by key, in the order
/// they were reported; false when one cannot be laid over (it is not a keyed row).
fn overlay_edits(
    rows: &mut Vec<Observation>,
    edits: Vec<Observation>,
    since_ms: i64,
    schema: &TableSchema,
) -> bool {
    let key_of = |o: &Observation| match &o.change {
        Change::Upsert(r) => r.key(schema),
        Change::Invalid(i) => i.key.clone(),
        _ => None,
    };
    let mut at: HashMap<RowKey, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((key_of(o)?, i)))
        .collect();
    for edit in edits {
        if edit.at.is_some_and(|t| t.timestamp_millis() < since_ms) {
            continue; // the snapshot saw it
        }
        let Some(key) =
            key_of(&edit).filter(|_| matches!(edit.change, Change::Upsert(_) | Change::Invalid(_)))
        else {
            return false;
        };
        match at.get(&key) {
            Some(&i) => rows[i] = edit,
            None => {
                at.insert(key, rows.len());
                rows.push(edit);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::tests::{row, schema};
    use super::*;

    fn upsert(id: i64, name: &str, at_ms: i64) -> Observation {
        Observation {
            change: Change::Upsert(row(id, name, 1)),
            at: DateTime::from_timestamp_millis(at_ms),
        }
    }

    fn names(rows: &[Observation]) -> Vec<String> {
        rows.iter()
            .map(|o| match &o.change {
                Change::Upsert(r) => format!("{:?}", r.0[1]),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn later_edits_replace_their_rows_in_order_and_new_keys_are_added() {
        let mut rows = vec![upsert(1, "a", 0), upsert(2, "b", 0)];
        let edits = vec![
            upsert(2, "old", 500), // before the read: the snapshot saw it
            upsert(2, "b1", 2_000),
            upsert(2, "b2", 2_100),
            upsert(3, "typed", 2_200),
        ];
        assert!(overlay_edits(&mut rows, edits, 1_000, &schema()));
        assert_eq!(
            names(&rows),
            names(&[upsert(1, "a", 0), upsert(2, "b2", 0), upsert(3, "typed", 0)])
        );
        assert_eq!(
            rows[1].at,
            DateTime::from_timestamp_millis(2_100),
            "the edit's time"
        );
    }

    #[test]
    fn an_edit_that_is_not_a_keyed_row_voids_the_overlay() {
        let mut rows = vec![upsert(1, "a", 0)];
        let gone = Observation {
            change: Change::Delete(row(1, "", 0).key(&schema()).unwrap()),
            at: None,
        };
        assert!(!overlay_edits(&mut rows, vec![gone], 0, &schema()));
    }
}
