//! The write path of [`SheetTable`]: locate the keys, plan the cycle's writes as guarded
//! batches, send them, verify each batch's pre-images and repair rows hit by mistake (see
//! [`crate::guard`] for why this holds whatever people do to the rows meanwhile).

use super::*;
use crate::guard::{
    append_bytes, described_targets, guarded_batch, overlay, restore_deleted, scratch_range,
    target_bytes, verify, Action, DataTab, Expect, PreImages, Scratch, Stamp, Target, Verdict,
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

/// How long positions from a full read serve the write that follows it. Stale positions are
/// safe (the pre-image check catches them) but cost a repair.
const POSITIONS_TTL: Duration = Duration::from_secs(5);

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
        // Our own writes change the file: the next read must be a real one.
        self.forget_read();
        self.settle_unverified().await?;
        let l = self.layout(false).await?;
        let located = self.locate(&l, &ops).await?;
        let mut plan = self.plan_writes(&l, &ops, &located);
        self.mark_in_flight(&plan.written);
        let result = self.send_plan(&l, &mut plan).await;
        self.finish_marks(&plan.written);
        if result.is_err() {
            // The tab may have been renamed or resized: look it up again next time.
            *self.layout.lock().expect("layout lock") = None;
        }
        result?;
        self.forget_read();
        Ok(plan
            .outcomes
            .into_iter()
            .map(|o| o.unwrap_or(WriteOutcome::Applied))
            .collect())
    }
}

impl SheetTable {
    /// Where the keys are: from a full read that just ended, else read from the key column(s)
    /// with the rows `SetKey` ops point at.
    async fn locate(&self, l: &Layout, ops: &[WriteOp]) -> Result<Located> {
        if let Some(positions) = self.fresh_positions() {
            return Ok(Located {
                positions,
                set_key_cells: HashMap::new(),
            });
        }
        let mut ranges: Vec<String> = self.key_ranges(l);
        let set_key_rows: Vec<u32> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::SetKey { locator, .. } => parse_locator(locator).map(|(r, _)| r),
                _ => None,
            })
            .collect();
        ranges.extend(set_key_rows.iter().map(|r| l.rows_range(*r, *r)));
        let got = self
            .client
            .batch_get(&self.opts.spreadsheet_id, &ranges, "UNFORMATTED_VALUE")
            .await?;
        let nkeys = self.schema.key.len();
        let positions = self.key_positions(l, &got[..nkeys]);
        let set_key_cells = set_key_rows
            .iter()
            .zip(&got[nkeys..])
            .map(|(r, vr)| (*r, first_row(vr)))
            .collect();
        Ok(Located {
            positions,
            set_key_cells,
        })
    }

    /// The A1 ranges of the key column(s), from the first data row down.
    pub(super) fn key_ranges(&self, l: &Layout) -> Vec<String> {
        self.schema
            .key
            .iter()
            .map(|&k| l.column_down(l.columns[k]))
            .collect()
    }

    /// Key → 1-based rows, from the key columns read from the first data row down.
    pub(super) fn key_positions(
        &self,
        l: &Layout,
        columns: &[ValueRange],
    ) -> HashMap<RowKey, Vec<u32>> {
        let mut positions: HashMap<RowKey, Vec<u32>> = HashMap::new();
        for (i, k) in self.key_column_rows(l, columns).into_iter().enumerate() {
            if let Some(k) = k {
                positions
                    .entry(k)
                    .or_default()
                    .push(l.header_row + 1 + i as u32);
            }
        }
        positions
    }

    /// The key of each row from the first data row down (`None` where a part is missing),
    /// from the key columns.
    pub(super) fn key_column_rows(
        &self,
        l: &Layout,
        columns: &[ValueRange],
    ) -> Vec<Option<RowKey>> {
        let columns: Vec<Vec<Json>> = columns
            .iter()
            .map(|vr| {
                vr.values
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut cells| {
                        if cells.is_empty() {
                            Json::String(String::new())
                        } else {
                            cells.swap_remove(0)
                        }
                    })
                    .collect()
            })
            .collect();
        let height = columns.iter().map(Vec::len).max().unwrap_or(0);
        (0..height)
            .map(|i| {
                let cells: Vec<Json> = columns
                    .iter()
                    .map(|c| c.get(i).cloned().unwrap_or(Json::String(String::new())))
                    .collect();
                self.key_from_cells(l, &cells)
            })
            .collect()
    }

    /// The key in key-column cells (one cell per key column), if every part is present.
    fn key_from_cells(&self, l: &Layout, cells: &[Json]) -> Option<RowKey> {
        let mut vals = Vec::with_capacity(cells.len());
        for (cell, &k) in cells.iter().zip(&self.schema.key) {
            match read_cell(cell, self.schema.columns[k].ty, l.tz) {
                Ok(v) if !v.is_null() => vals.push(v),
                _ => return None,
            }
        }
        (vals.len() == self.schema.key.len()).then(|| RowKey::from_values(&vals))
    }

    /// The key of a whole row's cells (from column A).
    pub(super) fn key_of_row(&self, l: &Layout, row: &[Json]) -> Option<RowKey> {
        let empty = Json::String(String::new());
        let cells: Vec<Json> = self
            .schema
            .key
            .iter()
            .map(|&k| row.get(l.columns[k] as usize).unwrap_or(&empty).clone())
            .collect();
        self.key_from_cells(l, &cells)
    }

    /// Does a pre-image meet a target's expectation?
    fn meets(&self, l: &Layout, expect: &Expect, row: &[Json]) -> bool {
        match expect {
            Expect::Key(k) => self.key_of_row(l, row).as_ref() == Some(k),
            Expect::Fingerprint(fp) => matches!(
                self.observe_row(l, 0, row, None).map(|o| o.change),
                Some(Change::Unkeyed(u)) if format!("{:032x}", u.row.hash().0) == *fp
            ),
            Expect::Content(c) => same_cells(row, c),
        }
    }

    /// Positions from a full read less than [`POSITIONS_TTL`] old (taken once: our own writes
    /// move rows).
    fn fresh_positions(&self) -> Option<HashMap<RowKey, Vec<u32>>> {
        let mut cache = self.cache.lock().expect("cache lock");
        match cache.positions.take() {
            Some((at, p)) if at.elapsed() < POSITIONS_TTL => Some(p),
            _ => None,
        }
    }

    /// Turns the engine's ops into positional targets and appends.
    fn plan_writes(&self, l: &Layout, ops: &[WriteOp], at: &Located) -> WritePlan {
        let mut plan = WritePlan {
            outcomes: vec![None; ops.len()],
            targets: Vec::new(),
            appends: Vec::new(),
            written: Vec::new(),
        };
        for (n, op) in ops.iter().enumerate() {
            plan.outcomes[n] = match op {
                WriteOp::Upsert { row, expected } => {
                    self.plan_upsert(l, n, row, expected, at, &mut plan)
                }
                WriteOp::Delete { key, .. } => match at.positions.get(key).map(Vec::as_slice) {
                    None => None, // already gone
                    Some([p]) => {
                        plan.targets.push(Target {
                            op: n,
                            row: *p,
                            expect: Expect::Key(key.clone()),
                            action: Action::Delete,
                        });
                        None
                    }
                    Some(ps) => Some(WriteOutcome::Held(format!(
                        "key {key} appears in rows {ps:?} of the Sheet; delete one by hand"
                    ))),
                },
                WriteOp::SetKey { locator, row } => {
                    self.plan_set_key(l, n, locator, row, at, &mut plan)
                }
                WriteOp::Insert { .. } => Some(WriteOutcome::Held(
                    "the Sheet does not generate keys; configure the mapping's keys".into(),
                )),
            };
        }
        plan
    }

    fn plan_upsert(
        &self,
        l: &Layout,
        n: usize,
        row: &Row,
        expected: &Expected,
        at: &Located,
        plan: &mut WritePlan,
    ) -> Option<WriteOutcome> {
        let Some(key) = row.key(&self.schema) else {
            return Some(WriteOutcome::Held(
                "a row without a key cannot be written".into(),
            ));
        };
        if let Some(c) = self
            .schema
            .columns
            .iter()
            .zip(&row.0)
            .find(|(c, v)| v.is_null() && !c.nullable)
        {
            return Some(WriteOutcome::Held(format!(
                "column {:?} may not be empty",
                c.0.name
            )));
        }
        let writable = |i: usize| self.schema.columns[i].direction != Direction::SheetToDb;
        match (at.positions.get(&key).map(Vec::as_slice), expected) {
            (Some(ps @ [_, _, ..]), _) => Some(WriteOutcome::Held(format!(
                "key {key} appears in rows {ps:?} of the Sheet"
            ))),
            (Some([_]), Expected::Absent) | (None, Expected::Row(_)) => Some(WriteOutcome::Stale),
            (Some([p]), _) => {
                let before = match expected {
                    Expected::Row(r) => Some(r),
                    _ => None,
                };
                match self.cell_writes(l, row, before, &writable) {
                    Ok(cells) if cells.is_empty() => None,
                    Ok(mut cells) => {
                        // The key cells too: a write that lands on another row then shows as a
                        // duplicated key, never as this row's values under another key.
                        cells.extend(self.key_cells(l, row));
                        plan.written
                            .push((key.clone(), changed_cells(row, before, &writable)));
                        plan.targets.push(Target {
                            op: n,
                            row: *p,
                            expect: Expect::Key(key),
                            action: Action::Cells(cells),
                        });
                        None
                    }
                    Err(reason) => Some(WriteOutcome::Held(reason)),
                }
            }
            (None, _) => match self.full_row(l, row) {
                Ok(cells) => {
                    // A new row: no person can have edited it yet, so no mark.
                    plan.appends.push((n, cells));
                    None
                }
                Err(reason) => Some(WriteOutcome::Held(reason)),
            },
            (Some([]), _) => unreachable!("positions are never empty"),
        }
    }

    fn plan_set_key(
        &self,
        l: &Layout,
        n: usize,
        locator: &str,
        row: &Row,
        at: &Located,
        plan: &mut WritePlan,
    ) -> Option<WriteOutcome> {
        let Some((r, fingerprint)) = parse_locator(locator) else {
            return Some(WriteOutcome::Held(format!("bad locator {locator:?}")));
        };
        let expect = Expect::Fingerprint(fingerprint.to_string());
        // Checked now when the row was read, and in any case by the write's pre-image.
        if at
            .set_key_cells
            .get(&r)
            .is_some_and(|cells| !self.meets(l, &expect, cells))
        {
            // The row changed or moved since it was read.
            return Some(WriteOutcome::Stale);
        }
        plan.targets.push(Target {
            op: n,
            row: r,
            expect,
            action: Action::Cells(self.key_cells(l, row)),
        });
        None
    }

    /// The key cells of `row`, where the tab has them.
    fn key_cells(&self, l: &Layout, row: &Row) -> CellWrites {
        self.schema
            .key
            .iter()
            .map(|&k| {
                (
                    l.columns[k],
                    write_cell(&row.0[k], l.tz).unwrap_or_default(),
                )
            })
            .collect()
    }

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

    /// Sends the plan as guarded batches within the size budget: cell writes first (they move
    /// no row), then deletes from the bottom up (so the positions of later batches stay valid),
    /// then appends.
    async fn send_plan(&self, l: &Layout, plan: &mut WritePlan) -> Result<()> {
        let data = DataTab {
            sheet_id: self.opts.sheet_id,
            cols: l.column_count.max(l.width()).max(1),
        };
        let mut targets = std::mem::take(&mut plan.targets);
        targets.sort_by_key(|t| match t.action {
            Action::Delete => (1, u32::MAX - t.row),
            _ => (0, 0),
        });
        // Room for the stamp, the scratch sizing and the request's own fields.
        let budget = self.opts.max_write_bytes.saturating_sub(1_024).max(1);
        let mut batches = chunk_by_size(targets, budget, |t| target_bytes(data, t));
        let appends = std::mem::take(&mut plan.appends);
        let used = batches.last().map_or(0, |b| {
            b.iter().map(|t| target_bytes(data, t)).sum::<usize>()
        });
        let mut appends = chunk_by_size(appends, budget, |(_, r)| append_bytes(r)).into_iter();
        // New rows share the last batch when they fit in what it leaves.
        let mut first_appends = Vec::new();
        if let Some(a) = appends.as_slice().first() {
            if used + a.iter().map(|(_, r)| append_bytes(r)).sum::<usize>() <= budget {
                first_appends = appends.next().unwrap_or_default();
            }
        }
        let last = batches.len();
        for (i, chunk) in batches.drain(..).enumerate() {
            let rows = if i + 1 == last {
                std::mem::take(&mut first_appends)
            } else {
                Vec::new()
            };
            self.send_batch(l, data, chunk, rows, plan).await?;
        }
        if !first_appends.is_empty() {
            self.send_batch(l, data, Vec::new(), first_appends, plan)
                .await?;
        }
        for chunk in appends {
            self.send_batch(l, data, Vec::new(), chunk, plan).await?;
        }
        Ok(())
    }

    /// One guarded batch: send, find out what happened if the answer is lost, verify, repair.
    async fn send_batch(
        &self,
        l: &Layout,
        data: DataTab,
        targets: Vec<Target>,
        appends: Vec<(usize, Vec<Json>)>,
        plan: &mut WritePlan,
    ) -> Result<()> {
        if targets.is_empty() && appends.is_empty() {
            return Ok(());
        }
        let scratch = self.scratch_tab();
        let nonce = new_nonce();
        let rows: Vec<Vec<Json>> = appends.iter().map(|(_, r)| r.clone()).collect();
        let req = guarded_batch(data, &scratch, &nonce, 0, &targets, &rows);
        let pre = match self
            .send_guarded(data, &scratch, &nonce, 0, &targets, req)
            .await
        {
            Ok(Some(pre)) => pre,
            Ok(None) => return Ok(()), // verified later by `settle_unverified`
            Err(e) if refused(&e) => {
                return Box::pin(self.isolate(l, data, targets, appends, plan, e)).await
            }
            Err(e) => return Err(e),
        };
        let verdicts = verify(&targets, &pre, |e, r| self.meets(l, e, r));
        for (t, v) in targets.iter().zip(&verdicts) {
            if matches!(v, Verdict::Missed(_)) {
                plan.outcomes[t.op] = Some(WriteOutcome::Stale);
            }
        }
        self.repair(l, data, &scratch, 0, &targets, &verdicts).await
    }

    /// Google refused a batch outright (a 400: nothing of it was applied). Finds the rows at
    /// fault by halving the batch, and holds them with Google's reason, so one bad row never
    /// stops the others, and a permanent refusal never turns into a loop of failing requests.
    /// The cell cap refuses every new row alike: they are all held at once.
    async fn isolate(
        &self,
        l: &Layout,
        data: DataTab,
        mut targets: Vec<Target>,
        mut appends: Vec<(usize, Vec<Json>)>,
        plan: &mut WritePlan,
        e: Error,
    ) -> Result<()> {
        let cap = e.to_string().contains("number of cells in the workbook");
        if targets.len() + appends.len() <= 1 || (cap && targets.is_empty()) {
            let reason = if cap {
                format!(
                    "the spreadsheet is at Google's cell limit; make room (delete unused rows, \
                     columns or tabs) for the row to be written: {e}"
                )
            } else {
                format!("Google refused to write this row: {e}")
            };
            for op in targets
                .iter()
                .map(|t| t.op)
                .chain(appends.iter().map(|(op, _)| *op))
            {
                plan.outcomes[op] = Some(WriteOutcome::Held(reason.clone()));
            }
            return Ok(());
        }
        // Cell writes and deletes first, as the plan sends them, then the new rows.
        let (later_targets, later_appends) = if targets.len() > 1 {
            (
                targets.split_off(targets.len() / 2),
                std::mem::take(&mut appends),
            )
        } else if targets.len() == 1 {
            (Vec::new(), std::mem::take(&mut appends))
        } else {
            (Vec::new(), appends.split_off(appends.len() / 2))
        };
        self.send_batch(l, data, targets, appends, plan).await?;
        self.send_batch(l, data, later_targets, later_appends, plan)
            .await
    }

    /// Sends a guarded request; returns the scratch tab's pre-images (`base` rows skipped), or
    /// an error when the request was certainly not applied or its fate cannot be learned now.
    async fn send_guarded(
        &self,
        data: DataTab,
        scratch: &Scratch,
        nonce: &str,
        base: u32,
        targets: &[Target],
        req: google_sheets4::api::BatchUpdateSpreadsheetRequest,
    ) -> Result<Option<PreImages>> {
        let id = &self.opts.spreadsheet_id;
        let n = targets.len();
        let pre = match self
            .client
            .batch_update_answer(id, req, Some(ANSWER_FIELDS))
            .await
        {
            Ok(answer) => {
                self.scratch_written(scratch, base + n as u32 + 1, data.cols + 1);
                match answer
                    .updated_spreadsheet
                    .as_ref()
                    .and_then(|a| PreImages::from_answer(a, scratch.sheet_id, base as usize, n))
                {
                    Some(p) => p,
                    None => self.read_scratch(scratch, data, base, n).await?,
                }
            }
            Err(e) if e.kind() == ErrorKind::OutcomeUnknown => {
                match self.read_scratch(scratch, data, base, n).await {
                    Ok(p) if p.nonce.as_deref() == Some(nonce) => {
                        tracing::info!(error = %e, "write answer lost; the scratch tab shows it was applied");
                        self.scratch_written(scratch, base + n as u32 + 1, data.cols + 1);
                        p
                    }
                    Ok(_) => return Err(e.with_context("applied", "no")),
                    Err(read) if !scratch.exists && read.kind() != ErrorKind::Connection => {
                        // The batch would have created the tab: no tab, not applied.
                        return Err(e.with_context("applied", "no"));
                    }
                    Err(_) => {
                        *self.unverified.lock().expect("unverified lock") = Some(Unverified {
                            nonce: nonce.to_string(),
                            data,
                            scratch: scratch.clone(),
                            targets: targets.to_vec(),
                        });
                        self.request_rescan();
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        if pre.nonce.as_deref() != Some(nonce) {
            self.request_rescan();
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "the scratch tab {:?} does not hold this write's stamp: is another sheetsync \
                     writing this tab? The Sheet is read in full next cycle",
                    scratch.title
                ),
            ));
        }
        Ok(Some(pre))
    }

    /// Puts back rows that a batch hit by mistake: a deleted row is inserted again from its
    /// pre-image (under the header, atomically), a written row gets its pre-image pasted back
    /// (found by the key the write gave it and by content, and verified like any write; a
    /// repair that itself hits another row is undone the same way, for a few rounds).
    async fn repair(
        &self,
        l: &Layout,
        data: DataTab,
        scratch: &Scratch,
        base: u32,
        targets: &[Target],
        verdicts: &[Verdict],
    ) -> Result<()> {
        let mut restores = Vec::new();
        let mut rewrites = Vec::new();
        for (i, (t, v)) in targets.iter().zip(verdicts).enumerate() {
            let Verdict::Missed(pre) = v else { continue };
            let from = base + i as u32 + 1;
            match &t.action {
                Action::Delete if !is_blank_row(pre) => {
                    restores.extend(restore_deleted(data, scratch.sheet_id, from, l.header_row))
                }
                Action::Delete => {}
                Action::Cells(cells) => rewrites.push(Rewrite {
                    op: t.op,
                    from,
                    holds: overlay(pre, cells),
                    key: match &t.expect {
                        Expect::Key(k) => Some(k.clone()),
                        _ => None,
                    },
                    pre: pre.clone(),
                }),
                // In process, repairs are verified inside `repair`'s own rounds; one found
                // after a restart is reported for a person.
                Action::Paste(_) => tracing::warn!(
                    tab = %l.title,
                    pre_image = ?pre,
                    "a repair sent before a restart hit another row; check this row by hand"
                ),
            }
        }
        if restores.is_empty() && rewrites.is_empty() {
            return Ok(());
        }
        self.request_rescan();
        tracing::warn!(
            tab = %l.title,
            rows = rewrites.len() + restores.len() / 2,
            "rows moved while a write was in flight; repairing the rows it hit by mistake"
        );
        self.repair_rounds(l, data, rewrites, restores, base + targets.len() as u32, 0)
            .await
    }

    /// Pastes pre-images back over the rows that hold what misplaced writes left there, and
    /// inserts rows deleted by mistake; a paste that itself lands on another row is undone the
    /// same way, and a row not found (people moved rows during the repair) is looked for again.
    /// What is still not repaired after a few rounds waits in `pending_repair`: it is retried
    /// before the next write (which would overwrite the pre-images in the scratch tab).
    async fn repair_rounds(
        &self,
        l: &Layout,
        data: DataTab,
        mut rewrites: Vec<Rewrite>,
        mut restores: Vec<Request>,
        mut base: u32,
        attempts: u32,
    ) -> Result<()> {
        for _ in 0..REPAIR_ROUNDS {
            let (found, unfound) = self.locate_rewritten(l, &rewrites).await?;
            let (pending, pasted): (Vec<Target>, Vec<Vec<Json>>) = found.into_iter().unzip();
            let mut next = unfound;
            if !pending.is_empty() || !restores.is_empty() {
                let nonce = new_nonce();
                // As it is now: the batch being repaired may have created it.
                let scratch = &self.scratch_tab();
                let mut req = guarded_batch(data, scratch, &nonce, base, &pending, &[]);
                req.requests
                    .get_or_insert_with(Vec::new)
                    .append(&mut restores);
                let Some(pre) = self
                    .send_guarded(data, scratch, &nonce, base, &pending, req)
                    .await?
                else {
                    return Ok(());
                };
                let verdicts = verify(&pending, &pre, |e, r| self.meets(l, e, r));
                for (j, (t, v)) in pending.iter().zip(&verdicts).enumerate() {
                    if let Verdict::Missed(other) = v {
                        // The paste landed on another row: that row now holds what was pasted.
                        next.push(Rewrite {
                            op: t.op,
                            from: base + j as u32 + 1,
                            holds: pasted[j].clone(),
                            key: None,
                            pre: other.clone(),
                        });
                    }
                }
                base += pending.len() as u32;
            }
            rewrites = next;
            if rewrites.is_empty() {
                return Ok(());
            }
        }
        let rows = rewrites.len();
        *self.pending_repair.lock().expect("repair lock") = Some(PendingRepair {
            data,
            rewrites,
            base,
            attempts,
        });
        Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "{rows} row(s) of tab {:?} hit by a misplaced write could not be repaired yet \
                 (rows kept moving); sheetsync tries again before its next write",
                l.title
            ),
        ))
    }

    /// Retries a repair that could not finish; gives up (loudly, with the pre-images) after
    /// [`REPAIR_ATTEMPTS`] tries, so that a row people changed meanwhile never blocks writing.
    async fn settle_pending_repair(&self) -> Result<()> {
        let Some(mut p) = self.pending_repair.lock().expect("repair lock").take() else {
            return Ok(());
        };
        p.attempts += 1;
        if p.attempts > REPAIR_ATTEMPTS {
            for r in &p.rewrites {
                tracing::error!(
                    pre_image = ?r.pre,
                    holds = ?r.holds,
                    "gave up repairing a row hit by a misplaced write: restore it by hand \
                     (its key is shown as duplicated until then)"
                );
            }
            return Ok(());
        }
        let result = match self.layout(true).await {
            Ok(l) => {
                self.repair_rounds(
                    &l,
                    p.data,
                    p.rewrites.clone(),
                    Vec::new(),
                    p.base,
                    p.attempts,
                )
                .await
            }
            Err(e) => Err(e),
        };
        // Failed before it could record what is left (a read failed): keep it as it was.
        let mut pending = self.pending_repair.lock().expect("repair lock");
        if result.is_err() && pending.is_none() {
            *pending = Some(p);
        }
        result
    }

    /// Finds the rows that hold what a mis-hit write left there (by the key they carry, then by
    /// content) and plans pasting their pre-images back.
    /// Returns each repair found with the content it pastes, and the rewrites not found.
    async fn locate_rewritten(
        &self,
        l: &Layout,
        rewrites: &[Rewrite],
    ) -> Result<(Vec<(Target, Vec<Json>)>, Vec<Rewrite>)> {
        if rewrites.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let ranges: Vec<String> = self.key_ranges(l);
        let got = self
            .client
            .batch_get(&self.opts.spreadsheet_id, &ranges, "UNFORMATTED_VALUE")
            .await?;
        let positions = self.key_positions(l, &got);
        let candidates: Vec<(usize, u32)> = rewrites
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let rows = r
                    .key
                    .clone()
                    .or_else(|| self.key_of_row(l, &r.holds))
                    .and_then(|k| positions.get(&k).cloned())
                    .unwrap_or_default();
                rows.into_iter().map(move |p| (i, p))
            })
            .collect();
        let ranges: Vec<String> = candidates
            .iter()
            .map(|(_, p)| l.rows_range(*p, *p))
            .collect();
        let cells = if ranges.is_empty() {
            Vec::new()
        } else {
            self.client
                .batch_get(&self.opts.spreadsheet_id, &ranges, "UNFORMATTED_VALUE")
                .await?
        };
        let mut out: Vec<(Target, Vec<Json>)> = Vec::new();
        for ((i, p), vr) in candidates.iter().zip(&cells) {
            let r = &rewrites[*i];
            let now = first_row(vr);
            if out.iter().any(|(o, _)| o.op == r.op) || !same_cells(&now, &r.holds) {
                continue;
            }
            out.push((
                Target {
                    op: r.op,
                    row: *p,
                    // Exactly what was read: the paste must find the row as it was found.
                    expect: Expect::Content(now),
                    action: Action::Paste(r.from),
                },
                r.pre.clone(),
            ));
        }
        let unfound = rewrites
            .iter()
            .filter(|r| !out.iter().any(|(o, _)| o.op == r.op))
            .cloned()
            .collect();
        Ok((out, unfound))
    }

    /// Checks a batch whose answer was lost earlier, before anything else is read or written.
    pub(super) async fn settle_unverified(&self) -> Result<()> {
        self.recover().await?;
        self.settle_pending_repair().await?;
        let Some(u) = self.unverified.lock().expect("unverified lock").take() else {
            return Ok(());
        };
        let pre = match self
            .read_scratch(&u.scratch, u.data, 0, u.targets.len())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                *self.unverified.lock().expect("unverified lock") = Some(u);
                return Err(e.with_operation("check a write whose answer was lost"));
            }
        };
        if pre.nonce.as_deref() != Some(u.nonce.as_str()) {
            return Ok(()); // it was never applied
        }
        let l = self.layout(true).await?;
        let verdicts = verify(&u.targets, &pre, |e, r| self.meets(&l, e, r));
        self.repair(&l, u.data, &u.scratch, 0, &u.targets, &verdicts)
            .await
    }

    /// Once per process, before its first read or write: a batch that an earlier process sent
    /// but did not live to verify is verified, and repaired, now.
    async fn recover(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.recovered.load(Ordering::Acquire) {
            return Ok(());
        }
        let l = self.layout(false).await?;
        let scratch = self.scratch.lock().expect("scratch lock").clone();
        let Some(scratch) = scratch.filter(|s| s.exists) else {
            self.recovered.store(true, Ordering::Release);
            return Ok(());
        };
        let stamp_range = format!("{}!A1:B1", crate::layout::quote_title(&scratch.title));
        let got = self
            .client
            .batch_get(
                &self.opts.spreadsheet_id,
                &[stamp_range],
                "UNFORMATTED_VALUE",
            )
            .await?;
        let stamp = got
            .first()
            .map(first_row)
            .and_then(|r| r.get(1).and_then(Stamp::from_cell));
        if let Some(stamp) = stamp.filter(|s| s.data_sheet_id == self.opts.sheet_id) {
            let data = DataTab {
                sheet_id: stamp.data_sheet_id,
                cols: stamp.data_cols,
            };
            let range = scratch_range(&scratch, stamp.base + stamp.targets, data.cols);
            let got = self
                .client
                .batch_get(&self.opts.spreadsheet_id, &[range], "UNFORMATTED_VALUE")
                .await?;
            let rows = got
                .into_iter()
                .next()
                .and_then(|v| v.values)
                .unwrap_or_default();
            if let Some(targets) = described_targets(&rows, &stamp) {
                let pre = PreImages::from_values(&rows, stamp.base as usize, targets.len());
                let verdicts = verify(&targets, &pre, |e, r| self.meets(&l, e, r));
                self.repair(&l, data, &scratch, stamp.base, &targets, &verdicts)
                    .await?;
            }
        }
        self.recovered.store(true, Ordering::Release);
        Ok(())
    }

    /// Reads the scratch tab: its stamp and `n` pre-images after the first `base`.
    async fn read_scratch(
        &self,
        scratch: &Scratch,
        data: DataTab,
        base: u32,
        n: usize,
    ) -> Result<PreImages> {
        let range = scratch_range(scratch, base + n as u32, data.cols);
        let got = self
            .client
            .batch_get(&self.opts.spreadsheet_id, &[range], "UNFORMATTED_VALUE")
            .await?;
        let rows = got
            .into_iter()
            .next()
            .and_then(|v| v.values)
            .unwrap_or_default();
        Ok(PreImages::from_values(&rows, base as usize, n))
    }

    /// The scratch tab to use (a new one if the spreadsheet has none yet).
    fn scratch_tab(&self) -> Scratch {
        let mut s = self.scratch.lock().expect("scratch lock");
        s.get_or_insert_with(|| Scratch {
            sheet_id: rand::random::<u32>() as i32 & i32::MAX | 1,
            title: crate::guard::scratch_title(self.opts.sheet_id),
            rows: 0,
            cols: 0,
            exists: false,
        })
        .clone()
    }

    /// Records that the scratch tab exists with at least this grid.
    fn scratch_written(&self, used: &Scratch, rows: u32, cols: u32) {
        let mut s = self.scratch.lock().expect("scratch lock");
        let s = s.get_or_insert_with(|| used.clone());
        s.exists = true;
        s.rows = s.rows.max(rows);
        s.cols = s.cols.max(cols);
    }

    /// Makes the next read of this tab a full one.
    fn request_rescan(&self) {
        self.feed.lock().expect("feed lock").rescan = true;
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
        let mut feed = self.feed.lock().expect("feed lock");
        let handed_out = feed.handed_out;
        let Feed {
            entries, edited, ..
        } = &mut *feed;
        for (seq, o) in entries.iter_mut() {
            if *seq > handed_out {
                let ed = edited.get(seq).map(Vec::as_slice);
                *o = overwritten_by(&marks, &self.schema, o.clone(), skew, ed);
            }
        }
    }

    /// The cells of `row` that differ from `before` (all mapped cells when unknown), skipping
    /// columns the Sheet owns.
    fn cell_writes(
        &self,
        l: &Layout,
        row: &Row,
        before: Option<&Row>,
        writable: &dyn Fn(usize) -> bool,
    ) -> std::result::Result<CellWrites, String> {
        let mut cells = Vec::new();
        for (i, v) in row.0.iter().enumerate() {
            if !writable(i) || before.is_some_and(|b| b.0.get(i) == Some(v)) {
                continue;
            }
            let cell = write_cell(v, l.tz)
                .map_err(|e| format!("column {:?}: {}", self.schema.columns[i].name, e.0))?;
            cells.push((l.columns[i], cell));
        }
        Ok(cells)
    }

    /// A new row's cells from column A to the last mapped column.
    fn full_row(&self, l: &Layout, row: &Row) -> std::result::Result<Vec<Json>, String> {
        let mut cells = vec![Json::String(String::new()); l.width() as usize];
        for (i, v) in row.0.iter().enumerate() {
            cells[l.columns[i] as usize] = write_cell(v, l.tz)
                .map_err(|e| format!("column {:?}: {}", self.schema.columns[i].name, e.0))?;
        }
        Ok(cells)
    }
}

/// A write Google refused as a whole (nothing applied): a 400, not a lost answer.
fn refused(e: &Error) -> bool {
    e.kind() == ErrorKind::InvalidData && !e.is_temporary()
}

fn new_nonce() -> String {
    format!("sheetsync:{:016x}", rand::random::<u64>())
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

/// The cells of `row` that a write changes: those differing from `before` (all when unknown),
/// among the writable columns.
fn changed_cells(
    row: &Row,
    before: Option<&Row>,
    writable: &dyn Fn(usize) -> bool,
) -> Vec<(usize, Value)> {
    row.0
        .iter()
        .enumerate()
        .filter(|(i, v)| writable(*i) && before.is_none_or(|b| b.0.get(*i) != Some(*v)))
        .map(|(i, v)| (i, v.clone()))
        .collect()
}

pub(super) fn parse_locator(locator: &str) -> Option<(u32, &str)> {
    let (row, fp) = locator.split_once(':')?;
    Some((row.parse().ok()?, fp))
}

pub(super) fn chunk_by_size<T>(
    items: Vec<T>,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let s = size(&item);
        if out.is_empty() || (used + s > budget && !out.last().is_some_and(Vec::is_empty)) {
            out.push(Vec::new());
            used = 0;
        }
        used += s;
        out.last_mut().expect("pushed").push(item);
    }
    out
}
