//! The read path of [`SheetTable`]: full reads that are consistent snapshots, or are thrown
//! away and read again.
//!
//! A full read of a big tab takes several `values.batchGetByDataFilter` requests (a small
//! tab's takes one: ranges name the tab by `sheetId` and end open, so the layout looked up
//! earlier serves), and people sort, drag, insert and delete rows between them; an answer can
//! also come back well-formed but short.
//! So the first and the last request of every full read also read the whole key column: the
//! read is kept only when both key columns and the keys seen in the data rows agree row by
//! row. Otherwise rows moved (or an answer lost its tail) during the read, and it starts again;
//! after [`READ_ATTEMPTS`] the read fails, and a failed read never deletes anything.

use super::*;

/// Full reads attempted before giving up while the tab keeps changing under them.
const READ_ATTEMPTS: usize = 3;

/// What one consistent full read saw.
pub(super) struct Snapshot {
    pub(super) observations: Vec<Observation>,
    row_keys: RowKeys,
    key_rows: KeyRows,
}

/// A consistent full read, and what it was read against.
pub(super) struct FullRead {
    pub(super) snap: Snapshot,
    /// The file's Drive version before the read.
    version: Option<String>,
    /// When (Unix ms) the read started: it saw every edit before.
    pub(super) read_start: i64,
    /// The positions generation when it started (see [`Positions`]).
    gen: u64,
}

impl SheetTable {
    /// Reads every row (or takes a read made in the background since, or reuses the last
    /// read when the file did not change).
    pub(super) async fn read_all(&self) -> Result<Arc<Vec<Observation>>> {
        self.settle_unverified().await?;
        let rescans = {
            let mut feed = self.feed.lock().expect("feed lock");
            feed.rescan = false;
            feed.rescans
        };
        if let Some(read) = self.take_background_read(rescans) {
            return Ok(self.keep_read(read));
        }
        let version = self.drive_version().await;
        if let Some(v) = &version {
            let kept = {
                let cache = self.cache.lock().expect("cache lock");
                cache
                    .kept
                    .clone()
                    .filter(|_| cache.version.as_ref() == Some(v))
            };
            // Decoded outside the lock: at a million rows it takes a moment.
            if let Some(obs) = kept.and_then(|k| k.observations()) {
                return Ok(Arc::new(obs));
            }
        }
        let read = self.consistent_read(version).await?;
        Ok(self.keep_read(read))
    }

    /// One full read that is a snapshot, read again (up to [`READ_ATTEMPTS`]) while rows move.
    pub(super) async fn consistent_read(&self, version: Option<String>) -> Result<FullRead> {
        let read_start = now_ms();
        let gen = self.cache.lock().expect("cache lock").positions_gen;
        let mut attempt = 0;
        let snap = loop {
            // Full reads go at Background priority: a journal read never waits behind one.
            match SheetsClient::background(self.read_snapshot()).await {
                Ok(s) => break s,
                Err(e) if e.kind() == ErrorKind::Conflict && attempt + 1 < READ_ATTEMPTS => {
                    tracing::info!(error = %e, attempt, "full read was not a snapshot; reading again");
                    attempt += 1;
                }
                Err(e) => return Err(e.with_operation("full read")),
            }
        };
        Ok(FullRead {
            snap,
            version,
            read_start,
            gen,
        })
    }

    /// Makes `read` the last full read: what the engine gets, what later reads compare with,
    /// where keys are.
    fn keep_read(&self, read: FullRead) -> Arc<Vec<Observation>> {
        let FullRead {
            snap,
            version,
            read_start,
            gen,
        } = read;
        let mut observations = snap.observations;
        self.restore_edit_times(&mut observations);
        let kept = KeptRead::new(&observations);
        let observations = Arc::new(observations);
        self.last_read_ms
            .store(read_start, std::sync::atomic::Ordering::Relaxed);
        self.drop_covered_edits(read_start);
        let mut cache = self.cache.lock().expect("cache lock");
        cache.version = version;
        cache.kept = Some(Arc::new(kept));
        let key_rows = Arc::new(snap.key_rows);
        cache.row_keys = snap.row_keys;
        cache.key_rows = key_rows.clone();
        cache.learn_positions(gen, Positions::read(key_rows));
        observations
    }

    /// Edits not yet handed to the engine that this read (started at `read_start`) already
    /// saw: serving them later would replay a stale snapshot.
    fn drop_covered_edits(&self, read_start: i64) {
        let cutoff = read_start - self.opts.clock_skew_ms;
        self.feed
            .lock()
            .expect("feed lock")
            .drop_unread(|o| o.at.is_some_and(|t| t.timestamp_millis() < cutoff));
    }

    /// The header row read with the first chunk must map the columns as the layout does.
    fn check_header(&self, l: &Layout, header: &[Json]) -> Result<()> {
        // An empty tab read as if its header were written (plans) still has no header.
        if l.header_assumed
            && header
                .iter()
                .all(|c| c.as_str().is_some_and(str::is_empty) || c.is_null())
        {
            return Ok(());
        }
        let mut now = l.clone();
        match now.map_header(header, &self.schema) {
            Ok(()) if now.columns == l.columns => Ok(()),
            // Moved columns, a header cleared or an answer that lost it: look it up afresh.
            _ => {
                *self.layout.lock().expect("layout lock") = None;
                Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the header row of tab {:?} changed during the read",
                        l.title
                    ),
                ))
            }
        }
    }

    pub(super) async fn drive_version(&self) -> Option<String> {
        if !self.opts.use_drive_version {
            return None;
        }
        match self.client.drive_version(&self.opts.spreadsheet_id).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "Drive version check failed; reading in full");
                None
            }
        }
    }

    /// The layout looked up less than [`LAYOUT_TTL`] ago, header mapped: full reads name the tab
    /// by `sheetId` and end open, so a rename or new rows since do not make it wrong.
    fn known_layout(&self) -> Option<Layout> {
        let known = self.layout.lock().expect("layout lock");
        let (l, at) = known.as_ref()?;
        (at.elapsed() < LAYOUT_TTL && !l.columns.is_empty()).then(|| l.clone())
    }

    /// The grid as it is now (one `spreadsheets.get`) with the header mapping of the last read;
    /// a tab never read (or whose header is missing) gets its header read (or written) first.
    async fn current_layout(&self) -> Result<Layout> {
        let known = self
            .layout
            .lock()
            .expect("layout lock")
            .as_ref()
            .map(|(l, _)| (l.columns.clone(), l.header_assumed));
        match known {
            Some((columns, header_assumed)) if !columns.is_empty() => {
                let mut l = self.fetch_layout().await?;
                l.columns = columns;
                l.header_assumed = header_assumed;
                *self.layout.lock().expect("layout lock") = Some((l.clone(), Instant::now()));
                Ok(l)
            }
            _ => self.layout(true).await,
        }
    }

    /// One full read: with the known layout if there is one, and with the tab looked up again
    /// when Google answers that those ranges no longer fit (the grid shrank, the tab is gone).
    async fn read_snapshot(&self) -> Result<Snapshot> {
        if let Some(l) = self.known_layout() {
            match self.read_chunks(l).await {
                Err(e) if layout_may_be_stale(&e) => {
                    tracing::debug!(error = %e, "full read failed with the known layout; looking the tab up");
                }
                done => return done,
            }
        }
        self.read_chunks(self.current_layout().await?).await
    }

    /// A read by `sheetId` is answered under the tab's current title: A1 ranges need it.
    fn note_title(&self, l: &Layout, answer: &ValueRange) {
        let Some(title) = answer.range.as_deref().and_then(range_title) else {
            return;
        };
        if title != l.title {
            if let Some((known, _)) = self.layout.lock().expect("layout lock").as_mut() {
                tracing::info!(from = %known.title, to = %title, "the tab was renamed");
                known.title = title;
            }
        }
    }

    /// One full read in chunks, bracketed by two reads of the key column; the header row comes
    /// with the first chunk, and a header that moved columns means reading again. The last
    /// chunk and the key columns end open: a row count read earlier never hides rows.
    async fn read_chunks(&self, l: Layout) -> Result<Snapshot> {
        let width = l.width().max(1) as usize;
        let chunk_rows = (self.opts.read_chunk_cells / width).max(1) as u32;
        let first = l.header_row + 1;
        let mut spans: Vec<(u32, u32)> = (first..=l.row_count)
            .step_by(chunk_rows as usize)
            .map(|s| (s, (s + chunk_rows - 1).min(l.row_count)))
            .collect();
        match spans.first_mut() {
            Some(s) => s.0 = l.header_row,
            None => spans.push((l.header_row, l.header_row)),
        }
        let key_ranges = self.key_grid_ranges(&l);
        let nk = key_ranges.len();
        let mut observations = Vec::new();
        let mut data_keys: Vec<Option<RowKey>> = Vec::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (i, (start, end)) in spans.iter().enumerate() {
            let last = i + 1 == spans.len();
            let mut ranges = Vec::new();
            if i == 0 {
                ranges.extend(key_ranges.iter().cloned());
            }
            ranges.push(l.grid_rows(*start, (!last).then_some(*end)));
            if last {
                ranges.extend(key_ranges.iter().cloned());
            }
            let mut got = self
                .client
                .batch_get_grid(&self.opts.spreadsheet_id, &ranges, "UNFORMATTED_VALUE")
                .await?;
            let data_at = if i == 0 { nk } else { 0 };
            if i == 0 {
                self.note_title(&l, &got[data_at]);
                before = self.key_column_rows(&l, &got[..nk]);
            }
            if last {
                after = self.key_column_rows(&l, &got[data_at + 1..]);
            }
            // Taken, not copied: a chunk is up to the whole tab.
            let mut rows = std::mem::take(&mut got[data_at].values).unwrap_or_default();
            if i == 0 {
                self.check_header(&l, rows.first().map(Vec::as_slice).unwrap_or_default())?;
                rows = rows.split_off(1.min(rows.len()));
            }
            let start = (*start).max(first);
            data_keys.resize((start - first) as usize, None);
            for (j, cells) in rows.iter().enumerate() {
                let row_no = start + j as u32;
                data_keys.push(self.key_of_row(&l, cells));
                observations.extend(self.observe_row(&l, row_no, cells, None));
            }
        }
        let trim = |v: &mut Vec<Option<RowKey>>| {
            while v.last().is_some_and(Option::is_none) {
                v.pop();
            }
        };
        trim(&mut data_keys);
        trim(&mut before);
        trim(&mut after);
        if data_keys != before || before != after {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "rows of tab {:?} moved during the read, or an answer came back short \
                     (key column before: {} rows, after: {}, data: {})",
                    l.title,
                    before.len(),
                    after.len(),
                    data_keys.len()
                ),
            ));
        }
        let row_keys = RowKeys::new(first, data_keys);
        Ok(Snapshot {
            observations,
            key_rows: row_keys.key_rows(),
            row_keys,
        })
    }
}

/// Errors of a read that a fresh look at the tab may cure: a range outside the grid (400), a
/// tab not found, an answer that does not match the ranges asked.
fn layout_may_be_stale(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidData | ErrorKind::NotFound | ErrorKind::Unexpected
    )
}
