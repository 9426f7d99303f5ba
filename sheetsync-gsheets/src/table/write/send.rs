//! Sending a planned batch: guarded requests within the size budget, learning the fate of a
//! request whose answer was lost, verifying the pre-images, and isolating rows Google refuses.

use super::*;

impl SheetTable {
    /// Sends the plan as guarded batches within the size budget: cell writes first (they move
    /// no row), then deletes from the bottom up (so the positions of later batches stay valid),
    /// then appends.
    pub(super) async fn send_plan(&self, l: &Layout, plan: &mut WritePlan) -> Result<()> {
        let data = DataTab {
            sheet_id: self.opts.sheet_id,
            cols: l.column_count.max(l.width()).max(1),
        };
        let mut targets = std::mem::take(&mut plan.targets);
        // Cell writes top down (neighbouring rows share requests), deletes bottom up.
        targets.sort_by_key(|t| match t.action {
            Action::Delete => (1, u32::MAX - t.row),
            _ => (0, t.row),
        });
        // Room for the stamp, the scratch sizing and the request's own fields.
        let budget = self.opts.max_write_bytes.saturating_sub(1_024).max(1);
        let mut batches = chunk_by_size(targets, budget, |s: &mut BatchSize, t| s.add(data, t));
        let used = batches.last().map_or(0, |(_, used)| *used);
        // A new row also carries the number formats of its date-like cells.
        let formatted = formats::format_bytes(&formats::date_columns(l, &self.schema));
        let row_bytes = |_: &mut (), (_, r): &(usize, Vec<Json>)| append_bytes(r) + formatted;
        let appends = std::mem::take(&mut plan.appends);
        let mut appends = chunk_by_size(appends, budget, row_bytes).into_iter();
        // New rows share the last batch when they fit in what it leaves.
        let mut first_appends = Vec::new();
        if appends
            .as_slice()
            .first()
            .is_some_and(|(_, n)| used + n <= budget)
        {
            first_appends = appends.next().map(|(a, _)| a).unwrap_or_default();
        }
        let last = batches.len();
        for (i, (chunk, _)) in batches.drain(..).enumerate() {
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
        for (chunk, _) in appends {
            self.send_batch(l, data, Vec::new(), chunk, plan).await?;
        }
        Ok(())
    }

    /// One guarded batch: send, find out what happened if the answer is lost, verify, repair.
    pub(super) async fn send_batch(
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
        let mut req = guarded_batch(data, &scratch, &nonce, 0, &targets, &rows);
        formats::format_appended_rows(&mut req, &formats::date_columns(l, &self.schema));
        let pre = match self
            .send_guarded(data, &scratch, &nonce, 0, &targets, req)
            .await
        {
            Ok(Some(pre)) => pre,
            Ok(None) => {
                plan.positions_lost = true;
                return Ok(()); // verified later by `settle_unverified`
            }
            Err(e) if refused(&e) => {
                plan.positions_lost = true;
                return Box::pin(self.isolate(l, data, targets, appends, plan, e)).await;
            }
            Err(e) => return Err(e),
        };
        let verdicts = verify(&targets, &pre, |e, r| self.meets(l, e, r));
        plan.positions_lost |= verdicts.iter().any(|v| matches!(v, Verdict::Missed(_)));
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
    pub(super) async fn isolate(
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
    pub(super) async fn send_guarded(
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
}

/// A write Google refused as a whole (nothing applied): a 400, not a lost answer.
pub(super) fn refused(e: &Error) -> bool {
    e.kind() == ErrorKind::InvalidData && !e.is_temporary()
}

pub(super) fn new_nonce() -> String {
    format!("sheetsync:{:016x}", rand::random::<u64>())
}

/// Cuts `items` into chunks of at most `budget` bytes (an item larger than the budget goes
/// alone), each with its bytes: `size` counts an item after the chunk's earlier ones, in a
/// state `S` that starts afresh with each chunk.
pub(super) fn chunk_by_size<T, S: Default>(
    items: Vec<T>,
    budget: usize,
    mut size: impl FnMut(&mut S, &T) -> usize,
) -> Vec<(Vec<T>, usize)> {
    let mut out: Vec<(Vec<T>, usize)> = Vec::new();
    let mut state = S::default();
    for item in items {
        let mut s = size(&mut state, &item);
        if out.last().is_none_or(|(_, used)| used + s > budget) {
            if !out.is_empty() {
                state = S::default();
                s = size(&mut state, &item);
            }
            out.push((Vec::new(), 0));
        }
        let (chunk, used) = out.last_mut().expect("pushed");
        chunk.push(item);
        *used += s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_budget() {
        let chunks = chunk_by_size(vec![5, 5, 5, 20, 1], 10, |_: &mut (), x| *x);
        let chunks: Vec<Vec<usize>> = chunks.into_iter().map(|(c, _)| c).collect();
        assert_eq!(chunks, vec![vec![5, 5], vec![5], vec![20], vec![1]]);
    }

    #[test]
    fn each_chunk_counts_its_items_from_a_fresh_state() {
        // The first item of a chunk costs 10, each later one 1.
        let size = |seen: &mut bool, _: &u8| if std::mem::replace(seen, true) { 1 } else { 10 };
        let chunks = chunk_by_size(vec![0u8; 7], 12, size);
        let sizes: Vec<(usize, usize)> = chunks.iter().map(|(c, n)| (c.len(), *n)).collect();
        assert_eq!(sizes, vec![(3, 12), (3, 12), (1, 10)]);
    }
}
