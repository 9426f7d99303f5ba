//! Repairing rows a batch hit by mistake (people moved rows while it was in flight), and
//! settling batches whose answer was lost, from the pre-images in the scratch tab.

use super::*;

impl SheetTable {
    /// Puts back rows that a batch hit by mistake: a deleted row is inserted again from its
    /// pre-image (under the header, atomically), a written row gets its pre-image pasted back
    /// (found by the key the write gave it and by content, and verified like any write; a
    /// repair that itself hits another row is undone the same way, for a few rounds).
    pub(super) async fn repair(
        &self,
        l: &Layout,
        data: DataTab,
        scratch: &Scratch,
        base: u32,
        targets: &[Target],
        verdicts: &[Verdict],
    ) -> Result<()> {
        if verdicts.iter().any(|v| matches!(v, Verdict::Missed(_))) {
            // Rows moved under the write, and the repair may put deleted rows back.
            self.positions_unknown();
        }
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
                // The row's values are as they were; pasting its pre-image puts its own
                // note back.
                Action::Note(..) => rewrites.push(Rewrite {
                    op: t.op,
                    from,
                    holds: pre.clone(),
                    key: None,
                    pre: pre.clone(),
                }),
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
    pub(super) async fn repair_rounds(
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
    pub(super) async fn settle_pending_repair(&self) -> Result<()> {
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
    pub(super) async fn locate_rewritten(
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
                    .and_then(|k| positions.get(&k))
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
    pub(in crate::table) async fn settle_unverified(&self) -> Result<()> {
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
    pub(super) async fn recover(&self) -> Result<()> {
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
            let rows = self
                .scratch_rows(&scratch, stamp.base + stamp.targets, data.cols)
                .await?;
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
    pub(super) async fn read_scratch(
        &self,
        scratch: &Scratch,
        data: DataTab,
        base: u32,
        n: usize,
    ) -> Result<PreImages> {
        let (mut rows, mut cols) = (base + n as u32, data.cols);
        if scratch.rows <= rows || scratch.cols < cols {
            // The batch would have grown the tab, atomically with its stamp: a tab still too
            // small was never written by it, and a read past its end would be refused.
            self.fetch_layout().await?;
            let now = self.scratch.lock().expect("scratch lock").clone();
            if let Some(s) = now.filter(|s| s.exists && s.sheet_id == scratch.sheet_id) {
                rows = rows.min(s.rows.saturating_sub(1));
                cols = cols.min(s.cols).max(1);
            }
        }
        let rows = self.scratch_rows(scratch, rows, cols).await?;
        Ok(PreImages::from_values(&rows, base as usize, n))
    }

    /// The scratch tab's stamp row and the `rows` pre-image rows after it, `cols` wide.
    async fn scratch_rows(
        &self,
        scratch: &Scratch,
        rows: u32,
        cols: u32,
    ) -> Result<Vec<Vec<Json>>> {
        let range = scratch_range(scratch, rows, cols);
        let got = self
            .client
            .batch_get(&self.opts.spreadsheet_id, &[range], "UNFORMATTED_VALUE")
            .await?;
        Ok(got
            .into_iter()
            .next()
            .and_then(|v| v.values)
            .unwrap_or_default())
    }

    /// The scratch tab to use (a new one if the spreadsheet has none yet).
    pub(super) fn scratch_tab(&self) -> Scratch {
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
    pub(super) fn scratch_written(&self, used: &Scratch, rows: u32, cols: u32) {
        let mut s = self.scratch.lock().expect("scratch lock");
        let s = s.get_or_insert_with(|| used.clone());
        s.exists = true;
        s.rows = s.rows.max(rows);
        s.cols = s.cols.max(cols);
    }

    /// Makes the next read of this tab a full one.
    pub(super) fn request_rescan(&self) {
        self.positions_unknown();
        self.feed.lock().expect("feed lock").ask_rescan();
    }
}
