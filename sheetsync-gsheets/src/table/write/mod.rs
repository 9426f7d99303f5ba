//! The write path of [`SheetTable`], one step a module: locate the keys ([`locate`]), plan the
//! batch ([`plan`]), send it as guarded requests and verify each one's pre-images ([`send`]),
//! and repair rows hit by mistake ([`repair`]); see [`crate::guard`] for why this holds
//! whatever people do to the rows meanwhile.

mod formats;
mod locate;
mod plan;
mod repair;
mod send;
mod status;

use send::new_nonce;
pub use status::{SheetStatus, NOTE_PREFIX};

use super::*;
use crate::guard::{
    append_bytes, described_targets, guarded_batch, overlay, restore_deleted, scratch_range,
    verify, Action, BatchSize, DataTab, Expect, PreImages, Scratch, Stamp, Target, Verdict,
    ANSWER_FIELDS,
};

/// One row's cells to write: (0-based sheet column, value).
pub(super) type CellWrites = Vec<(u32, Json)>;

/// Where the keys are in the tab, and the current cells of the rows new keys go into.
struct Located {
    positions: HashMap<RowKey, Vec<u32>>,
    set_key_cells: HashMap<u32, Vec<Json>>,
}

/// One `apply` call's writes.
struct WritePlan {
    /// Per engine op; `None` = applied unless a batch says otherwise.
    outcomes: Vec<Option<WriteOutcome>>,
    targets: Vec<Target>,
    /// New rows, with the engine op each serves.
    appends: Vec<(usize, Vec<Json>)>,
    /// Rows written in place, with the schema cells written (for overwrite detection).
    written: Vec<(RowKey, Vec<(usize, Value)>)>,
    /// A batch missed a row, was refused or left unverified: rows may sit elsewhere than
    /// planned, so the known positions are forgotten.
    positions_lost: bool,
}

impl WritePlan {
    /// The rows the plan deletes (key, row) and the keys it appends, before it is sent.
    fn row_moves(
        &self,
        ops: &[WriteOp],
        schema: &TableSchema,
    ) -> (Vec<(RowKey, u32)>, Vec<RowKey>) {
        let deleted = self
            .targets
            .iter()
            .filter_map(|t| match (&t.action, &t.expect) {
                (Action::Delete, Expect::Key(k)) => Some((k.clone(), t.row)),
                _ => None,
            })
            .collect();
        let appended = self
            .appends
            .iter()
            .filter_map(|(n, _)| match &ops[*n] {
                WriteOp::Upsert { row, .. } => row.key(schema),
                _ => None,
            })
            .collect();
        (deleted, appended)
    }
}

/// A batch whose answer was lost and whose scratch tab could not be read back either: it is
/// checked before anything else is read or written.
pub(super) struct Unverified {
    nonce: String,
    data: DataTab,
    scratch: Scratch,
    targets: Vec<Target>,
}

/// A row that a write changed by mistake: what it holds now, and where its pre-image is.
#[derive(Debug, Clone)]
pub(super) struct Rewrite {
    op: usize,
    /// The 0-based scratch row with the pre-image to paste back.
    from: u32,
    /// What the row holds now (`null`: a cell whose value is not known, ignored when looking).
    holds: Vec<Json>,
    /// The key the row holds now, when the write that left it there knew it.
    key: Option<RowKey>,
    /// The pre-image (what the row holds once repaired).
    pre: Vec<Json>,
}

/// A repair that could not finish yet: retried before the next write.
#[derive(Debug, Clone)]
pub(super) struct PendingRepair {
    data: DataTab,
    rewrites: Vec<Rewrite>,
    /// Pre-image rows in use in the scratch tab.
    base: u32,
    attempts: u32,
}

/// Cycles a pending repair is retried before sheetsync gives up on it and reports the rows.
const REPAIR_ATTEMPTS: u32 = 5;

/// Rounds of repair before giving up on a batch (rows moved again during each repair).
const REPAIR_ROUNDS: usize = 3;

#[async_trait]
impl Sink for SheetTable {
    async fn apply(&self, ops: Vec<WriteOp>, _ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let _writing = Writing::begin(&self.writes);
        // Our own writes change the file: the next read must be a real one.
        self.forget_read();
        self.settle_unverified().await?;
        let l = self.layout(false).await?;
        let located = self.locate(&l, &ops).await?;
        let mut plan = self.plan_writes(&l, &ops, &located);
        let (deleted, appended) = plan.row_moves(&ops, &self.schema);
        self.mark_in_flight(&plan.written);
        let result = self.send_plan(&l, &mut plan).await;
        self.finish_marks(&plan.written);
        if result.is_err() {
            // The tab may have been renamed or resized: look it up again next time.
            *self.layout.lock().expect("layout lock") = None;
        }
        let mut cache = self.cache.lock().expect("cache lock");
        let kept = match (&result, plan.positions_lost, cache.positions.as_mut()) {
            (Ok(()), false, Some(known)) => known.advance(&deleted, &appended),
            _ => false,
        };
        if !kept {
            cache.positions_unknown();
        }
        drop(cache);
        result?;
        self.forget_read();
        Ok(plan
            .outcomes
            .into_iter()
            .map(|o| o.unwrap_or(WriteOutcome::Applied))
            .collect())
    }

    async fn annotate(&self, notices: &[sheetsync_core::RowNotice]) -> Result<()> {
        self.annotate_rows(notices).await
    }
}

/// Counts a write in [`SheetTable::writes`] from its start to its end, however it ends.
struct Writing<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Writing<'a> {
    fn begin(writes: &'a std::sync::atomic::AtomicU64) -> Self {
        writes.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Writing(writes)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl SheetTable {
    /// Marks the rows about to be written, so an edit a person makes meanwhile is noticed.
    fn mark_in_flight(&self, written: &[(RowKey, Vec<(usize, Value)>)]) {
        let start = now_ms();
        let mut marks = self.marks.lock().expect("marks lock");
        // An edit is only compared with writes that ended less than a minute before it.
        marks.retain(|_, m| m.end_ms.is_none_or(|e| start - e < 60_000));
        for (k, cells) in written {
            marks.insert(
                k.clone(),
                WriteMark {
                    end_ms: None,
                    cells: cells.clone(),
                },
            );
        }
    }

    /// Ends the marks of a finished (or failed) write, and turns edits of those rows that
    /// arrived after the engine's last read, and may have been overwritten, into
    /// [`Change::Overwritten`].
    fn finish_marks(&self, written: &[(RowKey, Vec<(usize, Value)>)]) {
        if written.is_empty() {
            return;
        }
        let end = now_ms();
        let mut marks = self.marks.lock().expect("marks lock");
        for (k, _) in written {
            if let Some(m) = marks.get_mut(k) {
                m.end_ms = Some(end);
            }
        }
        let skew = self.opts.clock_skew_ms;
        self.feed
            .lock()
            .expect("feed lock")
            .rewrite_unread(|o, ed| overwritten_by(&marks, &self.schema, o, skew, ed));
    }
}

pub(super) fn first_row(vr: &ValueRange) -> Vec<Json> {
    vr.values
        .clone()
        .unwrap_or_default()
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// `a` (cells read) holds what `b` describes, cell by cell: a missing cell counts as blank,
/// numbers compare by value (`2` and `2.0` are one cell), and a `null` in `b` is a cell whose
/// value is not known (any value matches).
fn same_cells(a: &[Json], b: &[Json]) -> bool {
    let blank = Json::String(String::new());
    let same = |x: &Json, y: &Json| match (x, y) {
        (_, Json::Null) => true,
        (Json::Number(m), Json::Number(n)) => m.as_f64() == n.as_f64(),
        (Json::Null, o) => o == &blank,
        _ => x == y,
    };
    (0..a.len().max(b.len())).all(|i| same(a.get(i).unwrap_or(&blank), b.get(i).unwrap_or(&blank)))
}

pub(super) fn parse_locator(locator: &str) -> Option<(u32, &str)> {
    let (row, fp) = locator.split_once(':')?;
    Some((row.parse().ok()?, fp))
}
