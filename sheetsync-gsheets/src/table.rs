//! [`SheetTable`]: one tab of a spreadsheet as a sheetsync [`Source`] and [`Sink`].
//!
//! Reads: one `spreadsheets.get` for the tab's title, time zone and grid, then `values.batchGet`
//! in chunks sized to a cell budget; when the Drive `version` of the file has not moved since
//! the last read, the last read is reused and no Sheets quota is spent. Edits reported by the
//! Apps Script trigger arrive through [`SheetTable::accept_edit`] and are served as the change
//! feed, so most edits reach the database without reading the Sheet at all.
//!
//! Writes, per cycle: the key column is re-read (rows move when people sort), then at most one
//! `values.batchUpdate` for every changed cell (contiguous cells merged), one
//! `spreadsheets.batchUpdate` of merged `deleteDimension` ranges (highest first), and one
//! `values.append` for new rows. Values go in `RAW`, so database text never becomes a formula;
//! only cells whose value changes are written, and never a column the Sheet owns.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use google_sheets4::api::{
    AppendDimensionRequest, BatchUpdateSpreadsheetRequest, DeleteDimensionRequest, DimensionRange,
    Request, ValueRange,
};
use serde_json::Value as Json;
use sheetsync_core::{
    Capabilities, Change, ChangeBatch, Cursor, Direction, Error, ErrorKind, Expected, InvalidRow,
    Observation, Result, Row, RowKey, Sink, Source, TableSchema, UnkeyedRow, Value, WriteContext,
    WriteOp, WriteOutcome,
};
use tokio::sync::broadcast;

use crate::client::SheetsClient;
use crate::convert::{parse_tz, read_cell, write_cell};
use crate::layout::{col_letters, Layout};

/// Where the mapped tab is and how to read and write it.
#[derive(Debug, Clone)]
pub struct SheetOptions {
    /// The spreadsheet id (from its URL).
    pub spreadsheet_id: String,
    /// The tab's `sheetId` (the `gid=` in its URL): stable across renames.
    pub sheet_id: i32,
    /// The 1-based row holding the column names; data starts below it.
    pub header_row: u32,
    /// Cells per `values.batchGet` request.
    pub read_chunk_cells: usize,
    /// Bytes of values per write request (Google recommends at most 2 MB).
    pub max_write_bytes: usize,
    /// Skip full reads while the file's Drive `version` is unchanged.
    pub use_drive_version: bool,
    /// Write the header row into a tab that has none yet.
    pub create_header: bool,
    /// How far the clocks of Google (edit times in webhooks) and this host may differ, in
    /// milliseconds. Edits this close to one of the adapter's own writes of the same row are
    /// treated as possibly overwritten by it.
    pub clock_skew_ms: i64,
}

impl SheetOptions {
    /// Options for a tab, with defaults for the rest.
    pub fn new(spreadsheet_id: impl Into<String>, sheet_id: i32) -> Self {
        SheetOptions {
            spreadsheet_id: spreadsheet_id.into(),
            sheet_id,
            header_row: 1,
            read_chunk_cells: 500_000,
            max_write_bytes: 1_500_000,
            use_drive_version: true,
            create_header: true,
            clock_skew_ms: 1_000,
        }
    }
}

/// A person's edit reported by the Sheet (see [`crate::webhook`]): rows with their full
/// contents, or a structural change (rows inserted or removed) that needs a full read.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetEdit {
    /// The tab edited.
    pub sheet_id: i32,
    /// When (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The header row's cells at the time of the edit.
    pub header: Vec<Json>,
    /// Edited rows: 1-based row number and the whole row's cells.
    pub rows: Vec<(u32, Vec<Json>)>,
    /// Rows were inserted, removed or moved: positions shifted, read everything.
    pub structural: bool,
}

#[cfg(feature = "webhook")]
impl From<&crate::webhook::WebhookPayload> for SheetEdit {
    /// The edit a verified webhook payload reports: its rows for `EDIT`, a structural change
    /// (read everything) for inserted, removed or moved rows.
    fn from(p: &crate::webhook::WebhookPayload) -> Self {
        SheetEdit {
            sheet_id: p.sheet_id,
            timestamp_ms: p.timestamp.min(i64::MAX as u64) as i64,
            header: p.header.clone(),
            rows: p.rows.iter().map(|r| (r.row, r.values.clone())).collect(),
            structural: p.change_type != crate::webhook::ChangeType::Edit,
        }
    }
}

#[derive(Default)]
struct Feed {
    instance: u64,
    seq: u64,
    /// The last entry the engine has read (through `changes` or a full read's `cursor`).
    handed_out: u64,
    entries: VecDeque<(u64, Observation)>,
    rescan: bool,
}

/// One of the adapter's writes of a row: when, and which cells it wrote.
#[derive(Debug, Clone)]
struct WriteMark {
    /// `None` while the write is in flight.
    end_ms: Option<i64>,
    /// Schema column index and the value written.
    cells: Vec<(usize, Value)>,
}

impl WriteMark {
    /// True when a person's edit at `t` may have been overwritten by this write: it happened
    /// before the write finished (allowing for clock skew).
    fn covers(&self, t: i64, skew: i64) -> bool {
        self.end_ms.is_none_or(|end| t < end + skew)
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

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[derive(Default)]
struct ReadCache {
    version: Option<String>,
    observations: Option<Arc<Vec<Observation>>>,
    /// Key at each 1-based row, from the last full read.
    keys_by_row: HashMap<u32, RowKey>,
}

/// One tab of a spreadsheet, synced as a table.
pub struct SheetTable {
    client: Arc<SheetsClient>,
    opts: SheetOptions,
    schema: TableSchema,
    name: String,
    layout: Mutex<Option<(Layout, Instant)>>,
    /// The adapter's own recent writes, by row, to notice a person's edit they overwrote.
    marks: Mutex<HashMap<RowKey, WriteMark>>,
    /// When (Unix ms) the last full read started: the state it saw includes every edit before.
    last_read_ms: std::sync::atomic::AtomicI64,
    cache: Mutex<ReadCache>,
    feed: Mutex<Feed>,
    wake: broadcast::Sender<()>,
}

const LAYOUT_FIELDS: &str =
    "properties.timeZone,sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))";

/// How long a layout read for one operation may be reused by the next. Structural changes
/// force a fresh one (a full read always reads it), and a failed write drops it.
const LAYOUT_TTL: Duration = Duration::from_secs(60);

impl SheetTable {
    /// The tab described by `opts`, synced with `schema` (usually the database table's mapped
    /// schema: the Sheet has no types of its own). Column names are matched against the header
    /// row on every read.
    pub fn new(client: Arc<SheetsClient>, opts: SheetOptions, schema: TableSchema) -> Self {
        let (wake, _) = broadcast::channel(64);
        let name = format!("sheet:{}#{}", opts.spreadsheet_id, opts.sheet_id);
        SheetTable {
            client,
            opts,
            schema,
            name,
            layout: Mutex::new(None),
            marks: Mutex::new(HashMap::new()),
            last_read_ms: std::sync::atomic::AtomicI64::new(0),
            cache: Mutex::new(ReadCache::default()),
            feed: Mutex::new(Feed {
                instance: rand::random::<u32>() as u64,
                ..Feed::default()
            }),
            wake,
        }
    }

    /// The client (for its call counters).
    pub fn client(&self) -> &SheetsClient {
        &self.client
    }

    /// The options.
    pub fn options(&self) -> &SheetOptions {
        &self.opts
    }

    /// Looks up the tab by sheetId: title, time zone, grid size.
    async fn fetch_layout(&self) -> Result<Layout> {
        let ss = self
            .client
            .get_spreadsheet(&self.opts.spreadsheet_id, LAYOUT_FIELDS)
            .await?;
        let tz = parse_tz(
            ss.properties
                .as_ref()
                .and_then(|p| p.time_zone.as_deref())
                .unwrap_or("Etc/GMT"),
        );
        let sheet = ss
            .sheets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.properties)
            .find(|p| p.sheet_id.unwrap_or(0) == self.opts.sheet_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "spreadsheet {} has no tab with sheetId {}",
                        self.opts.spreadsheet_id, self.opts.sheet_id
                    ),
                )
            })?;
        let grid = sheet.grid_properties.unwrap_or_default();
        Ok(Layout {
            title: sheet.title.unwrap_or_default(),
            tz,
            row_count: grid.row_count.unwrap_or(0).max(0) as u32,
            column_count: grid.column_count.unwrap_or(0).max(0) as u32,
            header_row: self.opts.header_row,
            columns: Vec::new(),
        })
    }

    /// Looks the tab up and maps its header: what `check` commands report. Writes the header
    /// into an empty tab only when [`SheetOptions::create_header`] is set.
    pub async fn check_layout(&self) -> Result<Layout> {
        self.layout(true).await
    }

    /// The layout with the header mapped, reusing a very recent one.
    async fn layout(&self, fresh: bool) -> Result<Layout> {
        if !fresh {
            if let Some((l, at)) = self.layout.lock().expect("layout lock").as_ref() {
                if at.elapsed() < LAYOUT_TTL && !l.columns.is_empty() {
                    return Ok(l.clone());
                }
            }
        }
        let mut l = self.fetch_layout().await?;
        let header_range = l.rows_range(l.header_row, l.header_row);
        let got = self
            .client
            .batch_get(
                &self.opts.spreadsheet_id,
                &[header_range],
                "UNFORMATTED_VALUE",
            )
            .await?;
        let header = got
            .into_iter()
            .next()
            .and_then(|v| v.values)
            .and_then(|rows| rows.into_iter().next())
            .unwrap_or_default();
        if header.iter().all(|c| c.as_str() == Some("") || c.is_null()) {
            self.create_header(&mut l).await?;
        } else {
            l.map_header(&header, &self.schema)?;
        }
        *self.layout.lock().expect("layout lock") = Some((l.clone(), Instant::now()));
        Ok(l)
    }

    /// Writes the column names into an empty header row, growing the grid if it is too narrow.
    async fn create_header(&self, l: &mut Layout) -> Result<()> {
        if !self.opts.create_header {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("tab {:?} has no header in row {}", l.title, l.header_row),
            ));
        }
        // Data without a header is someone's sheet, not ours to label.
        let below = if l.row_count > l.header_row {
            let probe = l.rows_range(l.header_row + 1, (l.header_row + 1000).min(l.row_count));
            self.client
                .batch_get(&self.opts.spreadsheet_id, &[probe], "UNFORMATTED_VALUE")
                .await?
        } else {
            Vec::new()
        };
        if below
            .iter()
            .any(|v| v.values.as_ref().is_some_and(|r| !r.is_empty()))
        {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "tab {:?} has data but its header row {} is empty; add the column names {:?}",
                    l.title,
                    l.header_row,
                    self.schema
                        .columns
                        .iter()
                        .map(|c| &c.name)
                        .collect::<Vec<_>>()
                ),
            ));
        }
        let n = self.schema.columns.len() as u32;
        if l.column_count < n {
            self.client
                .batch_update(
                    &self.opts.spreadsheet_id,
                    BatchUpdateSpreadsheetRequest {
                        requests: Some(vec![Request {
                            append_dimension: Some(AppendDimensionRequest {
                                sheet_id: Some(self.opts.sheet_id),
                                dimension: Some("COLUMNS".into()),
                                length: Some((n - l.column_count) as i32),
                            }),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                )
                .await?;
            l.column_count = n;
        }
        let names: Vec<Json> = self
            .schema
            .columns
            .iter()
            .map(|c| Json::String(c.name.clone()))
            .collect();
        self.client
            .batch_update_values(
                &self.opts.spreadsheet_id,
                vec![ValueRange {
                    range: Some(l.cells(l.header_row, 0, n - 1)),
                    major_dimension: Some("ROWS".into()),
                    values: Some(vec![names]),
                }],
            )
            .await?;
        l.columns = (0..n).collect();
        tracing::info!(tab = %l.title, "wrote the header row");
        Ok(())
    }

    /// Converts one sheet row to an observation, or `None` for a blank row.
    fn observe_row(
        &self,
        l: &Layout,
        row_no: u32,
        cells: &[Json],
        at: Option<DateTime<Utc>>,
    ) -> Option<Observation> {
        let empty = Json::String(String::new());
        let mut values = Vec::with_capacity(self.schema.columns.len());
        let mut problems = Vec::new();
        let mut bad_cols = Vec::new();
        let mut blank = true;
        for (i, col) in self.schema.columns.iter().enumerate() {
            let sheet_col = l.columns[i];
            let cell = cells.get(sheet_col as usize).unwrap_or(&empty);
            if !(cell.is_null() || cell.as_str() == Some("")) {
                blank = false;
            }
            match read_cell(cell, col.ty, l.tz) {
                Ok(v) => values.push(v),
                Err(e) => {
                    problems.push(format!(
                        "column {:?} ({}{row_no}): {}",
                        col.name,
                        col_letters(sheet_col),
                        e.0
                    ));
                    bad_cols.push(i);
                    values.push(Value::Null);
                }
            }
        }
        if blank {
            return None;
        }
        let row = Row::new(values);
        let key_ok = self.schema.key.iter().all(|k| !bad_cols.contains(k));
        let key = if key_ok { row.key(&self.schema) } else { None };
        let locator = l.block(row_no, row_no, 0, l.width().saturating_sub(1));
        let change = if !problems.is_empty() {
            Change::Invalid(InvalidRow {
                key,
                locator: Some(locator),
                reason: problems.join("; "),
            })
        } else if key.is_none() {
            Change::Unkeyed(UnkeyedRow {
                locator: format!("{row_no}:{:032x}", row.hash().0),
                row,
            })
        } else {
            Change::Upsert(row)
        };
        Some(Observation { change, at })
    }

    /// Reads every row (or reuses the last read when the file did not change).
    async fn read_all(&self) -> Result<Arc<Vec<Observation>>> {
        self.feed.lock().expect("feed lock").rescan = false;
        let version = if self.opts.use_drive_version {
            match self.client.drive_version(&self.opts.spreadsheet_id).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::debug!(error = %e, "Drive version check failed; reading in full");
                    None
                }
            }
        } else {
            None
        };
        if let Some(v) = &version {
            let cache = self.cache.lock().expect("cache lock");
            if cache.version.as_ref() == Some(v) {
                if let Some(obs) = &cache.observations {
                    return Ok(obs.clone());
                }
            }
        }
        let read_start = now_ms();
        let l = self.layout(true).await?;
        let width = l.width().max(1) as usize;
        let chunk_rows = (self.opts.read_chunk_cells / width).max(1) as u32;
        let first = l.header_row + 1;
        let mut observations = Vec::new();
        let mut keys_by_row = HashMap::new();
        let mut start = first;
        while start <= l.row_count {
            let end = (start + chunk_rows - 1).min(l.row_count);
            let got = self
                .client
                .batch_get(
                    &self.opts.spreadsheet_id,
                    &[l.rows_range(start, end)],
                    "UNFORMATTED_VALUE",
                )
                .await?;
            let rows = got
                .into_iter()
                .next()
                .and_then(|v| v.values)
                .unwrap_or_default();
            for (i, cells) in rows.iter().enumerate() {
                let row_no = start + i as u32;
                if let Some(obs) = self.observe_row(&l, row_no, cells, None) {
                    if let Change::Upsert(r) = &obs.change {
                        if let Some(k) = r.key(&self.schema) {
                            keys_by_row.insert(row_no, k);
                        }
                    }
                    observations.push(obs);
                }
            }
            start = end + 1;
        }
        let observations = Arc::new(observations);
        self.last_read_ms
            .store(read_start, std::sync::atomic::Ordering::Relaxed);
        let mut cache = self.cache.lock().expect("cache lock");
        cache.version = version;
        cache.observations = Some(observations.clone());
        cache.keys_by_row = keys_by_row;
        Ok(observations)
    }

    fn forget_read(&self) {
        let mut cache = self.cache.lock().expect("cache lock");
        cache.version = None;
        cache.observations = None;
    }

    /// Feeds a person's edit reported by the Sheet into the change feed and wakes the engine.
    /// Edits of other tabs are ignored. Structural changes, and edits that change a row's key,
    /// make the next read a full one.
    pub fn accept_edit(&self, edit: SheetEdit) -> Result<()> {
        if edit.sheet_id != self.opts.sheet_id {
            return Ok(());
        }
        self.forget_read();
        let layout = self
            .layout
            .lock()
            .expect("layout lock")
            .as_ref()
            .map(|(l, _)| l.clone());
        let mut rescan = edit.structural;
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
                        // A row that held another key before: that key may be gone.
                        if let Some(old) = cache.keys_by_row.get(row_no) {
                            if Some(old) != new_key.as_ref() {
                                rescan = true;
                            }
                        }
                        match obs {
                            Some(o) => observations.push(o),
                            None => rescan = true, // cleared row
                        }
                    }
                }
            }
            _ => rescan = true,
        }
        // An edit older than the last full read is already in what that read saw.
        let read_ms = self.last_read_ms.load(std::sync::atomic::Ordering::Relaxed);
        let skew = self.opts.clock_skew_ms;
        if read_ms > 0 && edit.timestamp_ms < read_ms - skew {
            observations.clear();
        }
        let marks = self.marks.lock().expect("marks lock");
        let observations: Vec<Observation> = observations
            .into_iter()
            .map(|o| overwritten_by(&marks, &self.schema, o, skew))
            .collect();
        drop(marks);
        let mut feed = self.feed.lock().expect("feed lock");
        for o in observations {
            feed.seq += 1;
            let seq = feed.seq;
            feed.entries.push_back((seq, o));
        }
        feed.rescan |= rescan;
        drop(feed);
        let _ = self.wake.send(());
        Ok(())
    }

    fn parse_cursor(&self, c: &Cursor) -> u64 {
        let feed = self.feed.lock().expect("feed lock");
        match c.0.split_once(':') {
            Some((inst, seq)) if inst.parse() == Ok(feed.instance) => seq.parse().unwrap_or(0),
            // Another process's cursor: everything buffered here is new.
            _ => 0,
        }
    }

    fn cursor_at(&self, seq: u64) -> Cursor {
        let feed = self.feed.lock().expect("feed lock");
        Cursor(format!("{}:{seq}", feed.instance))
    }
}

#[async_trait]
impl Source for SheetTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            incremental: true,
            fetch: true,
            wakeups: true,
            unkeyed_rows: true,
            source_timestamps: true,
            max_batch: 50_000,
            ..Capabilities::default()
        }
    }

    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        stream::once(async move {
            let all = self.read_all().await?;
            Ok(all.as_ref().clone())
        })
        .boxed()
    }

    async fn cursor(&self) -> Result<Option<Cursor>> {
        let seq = {
            let mut feed = self.feed.lock().expect("feed lock");
            feed.handed_out = feed.seq;
            feed.seq
        };
        Ok(Some(self.cursor_at(seq)))
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let since = self.parse_cursor(since);
        let mut feed = self.feed.lock().expect("feed lock");
        let pending: Vec<&(u64, Observation)> =
            feed.entries.iter().filter(|(s, _)| *s > since).collect();
        let page = &pending[..pending.len().min(limit)];
        let last = page.last().map_or(since, |(s, _)| *s);
        let more = pending.len() > page.len();
        let changes = page.iter().map(|(_, o)| o.clone()).collect();
        let instance = feed.instance;
        feed.handed_out = feed.handed_out.max(last);
        Ok(ChangeBatch {
            changes,
            cursor: Cursor(format!("{instance}:{last}")),
            more,
        })
    }

    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        let wanted: BTreeSet<&RowKey> = keys.iter().collect();
        let all = self.read_all().await?;
        let mut found = BTreeSet::new();
        let mut out = Vec::new();
        for o in all.iter() {
            let k = match &o.change {
                Change::Upsert(r) => r.key(&self.schema),
                Change::Invalid(i) => i.key.clone(),
                _ => None,
            };
            if let Some(k) = k {
                if wanted.contains(&k) {
                    found.insert(k);
                    out.push(o.clone());
                }
            }
        }
        for k in keys {
            if !found.contains(k) {
                out.push(Observation::new(Change::Delete(k.clone())));
            }
        }
        Ok(out)
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        let upto = self.parse_cursor(cursor);
        let mut feed = self.feed.lock().expect("feed lock");
        while feed.entries.front().is_some_and(|(s, _)| *s <= upto) {
            feed.entries.pop_front();
        }
        Ok(())
    }

    fn full_scan_requested(&self) -> bool {
        self.feed.lock().expect("feed lock").rescan
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        let rx = self.wake.subscribe();
        Some(
            stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            })
            .boxed(),
        )
    }
}

/// One row's cells to write: (0-based sheet column, value).
type CellWrites = Vec<(u32, Json)>;

#[async_trait]
impl Sink for SheetTable {
    async fn apply(&self, ops: Vec<WriteOp>, _ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // Our own writes change the file: the next read must be a real one.
        self.forget_read();
        let l = self.layout(false).await?;
        let id = &self.opts.spreadsheet_id;

        // Where every key is now, and the rows new keys go into.
        let mut ranges: Vec<String> = self
            .schema
            .key
            .iter()
            .map(|&k| l.column_down(l.columns[k]))
            .collect();
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
            .batch_get(id, &ranges, "UNFORMATTED_VALUE")
            .await?;
        let nkeys = self.schema.key.len();
        let mut positions: HashMap<RowKey, Vec<u32>> = HashMap::new();
        {
            let columns: Vec<Vec<Json>> = got[..nkeys]
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
            for i in 0..height {
                let mut vals = Vec::with_capacity(nkeys);
                for (j, &k) in self.schema.key.iter().enumerate() {
                    let cell = columns[j]
                        .get(i)
                        .cloned()
                        .unwrap_or(Json::String(String::new()));
                    match read_cell(&cell, self.schema.columns[k].ty, l.tz) {
                        Ok(v) if !v.is_null() => vals.push(v),
                        _ => break,
                    }
                }
                if vals.len() == nkeys {
                    positions
                        .entry(RowKey::from_values(&vals))
                        .or_default()
                        .push(l.header_row + 1 + i as u32);
                }
            }
        }
        let set_key_cells: HashMap<u32, Vec<Json>> = set_key_rows
            .iter()
            .zip(&got[nkeys..])
            .map(|(r, vr)| {
                (
                    *r,
                    vr.values
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                )
            })
            .collect();

        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ops.len()];
        let mut updates: BTreeMap<u32, CellWrites> = BTreeMap::new();
        let mut deletes: BTreeSet<u32> = BTreeSet::new();
        let mut appends: Vec<Vec<Json>> = Vec::new();
        let mut written: Vec<(RowKey, Vec<(usize, Value)>)> = Vec::new();
        let writable = |i: usize| self.schema.columns[i].direction != Direction::SheetToDb;
        for (n, op) in ops.iter().enumerate() {
            let outcome = match op {
                WriteOp::Upsert { row, expected } => {
                    let Some(key) = row.key(&self.schema) else {
                        outcomes[n] = Some(WriteOutcome::Held(
                            "a row without a key cannot be written".into(),
                        ));
                        continue;
                    };
                    if let Some(c) = row
                        .0
                        .iter()
                        .zip(&self.schema.columns)
                        .find(|(v, c)| v.is_null() && !c.nullable)
                    {
                        outcomes[n] = Some(WriteOutcome::Held(format!(
                            "column {:?} may not be empty",
                            c.1.name
                        )));
                        continue;
                    }
                    match (positions.get(&key).map(Vec::as_slice), expected) {
                        (Some([_, _, ..]), _) => Some(WriteOutcome::Held(format!(
                            "key {key} appears in rows {:?} of the Sheet",
                            positions[&key]
                        ))),
                        (Some([_]), Expected::Absent) | (None, Expected::Row(_)) => {
                            Some(WriteOutcome::Stale)
                        }
                        (Some([p]), _) => {
                            let before = match expected {
                                Expected::Row(r) => Some(r),
                                _ => None,
                            };
                            match self.cell_writes(&l, row, before, &writable) {
                                Ok(cells) => {
                                    if !cells.is_empty() {
                                        updates.entry(*p).or_default().extend(cells);
                                        written.push((
                                            key.clone(),
                                            changed_cells(row, before, &writable),
                                        ));
                                    }
                                    None
                                }
                                Err(reason) => Some(WriteOutcome::Held(reason)),
                            }
                        }
                        (None, _) => match self.full_row(&l, row) {
                            Ok(cells) => {
                                // A new row: no person can have edited it yet, so no mark.
                                appends.push(cells);
                                None
                            }
                            Err(reason) => Some(WriteOutcome::Held(reason)),
                        },
                        (Some([]), _) => unreachable!("positions are never empty"),
                    }
                }
                WriteOp::Delete { key, .. } => match positions.get(key).map(Vec::as_slice) {
                    None => None, // already gone
                    Some([p]) => {
                        deletes.insert(*p);
                        None
                    }
                    Some(ps) => Some(WriteOutcome::Held(format!(
                        "key {key} appears in rows {ps:?} of the Sheet; delete one by hand"
                    ))),
                },
                WriteOp::SetKey { locator, row } => {
                    let Some((r, fingerprint)) = parse_locator(locator) else {
                        outcomes[n] = Some(WriteOutcome::Held(format!("bad locator {locator:?}")));
                        continue;
                    };
                    let cells = set_key_cells.get(&r).cloned().unwrap_or_default();
                    match self.observe_row(&l, r, &cells, None).map(|o| o.change) {
                        Some(Change::Unkeyed(u))
                            if format!("{:032x}", u.row.hash().0) == fingerprint =>
                        {
                            let key_cells: Vec<(u32, Json)> = self
                                .schema
                                .key
                                .iter()
                                .map(|&k| {
                                    (
                                        l.columns[k],
                                        write_cell(&row.0[k], l.tz).unwrap_or_default(),
                                    )
                                })
                                .collect();
                            updates.entry(r).or_default().extend(key_cells);
                            None
                        }
                        // The row changed or moved since it was read.
                        _ => Some(WriteOutcome::Stale),
                    }
                }
                WriteOp::Insert { .. } => Some(WriteOutcome::Held(
                    "the Sheet does not generate keys; configure the mapping's keys".into(),
                )),
            };
            outcomes[n] = outcome;
        }

        // Mark the rows about to be written, so an edit a person makes meanwhile is noticed.
        let start = now_ms();
        {
            let mut marks = self.marks.lock().expect("marks lock");
            // An edit is only compared with writes that ended less than a minute before it.
            marks.retain(|_, m| m.end_ms.is_none_or(|e| start - e < 60_000));
            for (k, cells) in &written {
                marks.insert(
                    k.clone(),
                    WriteMark {
                        end_ms: None,
                        cells: cells.clone(),
                    },
                );
            }
        }
        let result = self.send_writes(&l, updates, deletes, appends).await;
        self.finish_marks(&written);
        if result.is_err() {
            // The tab may have been renamed or resized: look it up again next time.
            *self.layout.lock().expect("layout lock") = None;
        }
        result?;
        self.forget_read();
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(WriteOutcome::Applied))
            .collect())
    }
}

impl SheetTable {
    /// Sends one cycle's writes: cell updates, then deletes, then appends.
    async fn send_writes(
        &self,
        l: &Layout,
        updates: BTreeMap<u32, CellWrites>,
        deletes: BTreeSet<u32>,
        appends: Vec<Vec<Json>>,
    ) -> Result<()> {
        let id = &self.opts.spreadsheet_id;
        // 1. Cell updates, contiguous runs merged, in requests under the size budget.
        let data = merge_runs(l, updates);
        for chunk in chunk_by_size(data, self.opts.max_write_bytes, |vr| {
            serde_json::to_string(&vr.values).map_or(0, |s| s.len())
        }) {
            self.client.batch_update_values(id, chunk).await?;
        }
        // 2. Deletes, highest rows first so earlier positions stay valid.
        if !deletes.is_empty() {
            let requests = merge_row_spans(&deletes)
                .into_iter()
                .rev()
                .map(|(start, end)| Request {
                    delete_dimension: Some(DeleteDimensionRequest {
                        range: Some(DimensionRange {
                            sheet_id: Some(self.opts.sheet_id),
                            dimension: Some("ROWS".into()),
                            start_index: Some((start - 1) as i32),
                            end_index: Some(end as i32),
                        }),
                    }),
                    ..Default::default()
                })
                .collect();
            self.client
                .batch_update(
                    id,
                    BatchUpdateSpreadsheetRequest {
                        requests: Some(requests),
                        ..Default::default()
                    },
                )
                .await?;
        }
        // 3. New rows, appended after the table that starts at the header.
        if !appends.is_empty() {
            let anchor = l.cells(l.header_row, 0, l.width().saturating_sub(1));
            for chunk in chunk_by_size(appends, self.opts.max_write_bytes, |r| {
                serde_json::to_string(r).map_or(0, |s| s.len())
            }) {
                self.client.append(id, &anchor, chunk).await?;
            }
        }
        Ok(())
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
        for (seq, o) in feed.entries.iter_mut() {
            if *seq > handed_out {
                *o = overwritten_by(&marks, &self.schema, o.clone(), skew);
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

/// A person's edit of a row the adapter wrote around the same time, reported as
/// [`Change::Overwritten`] (the Sheet then holds the edit with the written cells on top).
fn overwritten_by(
    marks: &HashMap<RowKey, WriteMark>,
    schema: &TableSchema,
    o: Observation,
    skew: i64,
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
            Observation {
                change: Change::Overwritten {
                    row: row.clone(),
                    actual,
                },
                at: o.at,
            }
        }
        _ => o,
    }
}

fn parse_locator(locator: &str) -> Option<(u32, &str)> {
    let (row, fp) = locator.split_once(':')?;
    Some((row.parse().ok()?, fp))
}

/// Cells of adjacent columns in one row: first column, last column, values.
type Run = (u32, u32, Vec<Json>);

/// A rectangle of cells: first and last row, first and last column, rows of values.
struct Block {
    r0: u32,
    r1: u32,
    c0: u32,
    c1: u32,
    values: Vec<Vec<Json>>,
}

/// Rows → ValueRanges: each row's cells split into runs of adjacent columns, and runs spanning
/// the same columns on consecutive rows merged into one block.
fn merge_runs(l: &Layout, updates: BTreeMap<u32, CellWrites>) -> Vec<ValueRange> {
    // (first column, last column) of a run → cells.
    let mut per_row: Vec<(u32, Vec<Run>)> = Vec::new();
    for (row, mut cells) in updates {
        cells.sort_by_key(|(c, _)| *c);
        cells.dedup_by_key(|(c, _)| *c);
        let mut runs: Vec<Run> = Vec::new();
        for (c, v) in cells {
            match runs.last_mut() {
                Some((_, last, vals)) if *last + 1 == c => {
                    *last = c;
                    vals.push(v);
                }
                _ => runs.push((c, c, vec![v])),
            }
        }
        per_row.push((row, runs));
    }
    let mut out: Vec<Block> = Vec::new();
    for (row, runs) in per_row {
        for (c0, c1, vals) in runs {
            match out.iter_mut().rev().find(|b| b.c0 == c0 && b.c1 == c1) {
                Some(block) if block.r1 + 1 == row => {
                    block.r1 = row;
                    block.values.push(vals);
                }
                _ => out.push(Block {
                    r0: row,
                    r1: row,
                    c0,
                    c1,
                    values: vec![vals],
                }),
            }
        }
    }
    out.into_iter()
        .map(|b| ValueRange {
            range: Some(l.block(b.r0, b.r1, b.c0, b.c1)),
            major_dimension: Some("ROWS".into()),
            values: Some(b.values),
        })
        .collect()
}

/// Sorted 1-based rows → inclusive spans of consecutive rows.
fn merge_row_spans(rows: &BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut spans: Vec<(u32, u32)> = Vec::new();
    for &r in rows {
        match spans.last_mut() {
            Some((_, end)) if *end + 1 == r => *end = r,
            _ => spans.push((r, r)),
        }
    }
    spans
}

fn chunk_by_size<T>(items: Vec<T>, budget: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;
    use serde_json::json;

    fn layout() -> Layout {
        Layout {
            title: "Data".into(),
            tz: Tz::UTC,
            row_count: 100,
            column_count: 5,
            header_row: 1,
            columns: vec![0, 1, 2, 4],
        }
    }

    #[test]
    fn runs_merge_across_columns_and_rows() {
        let mut u = BTreeMap::new();
        u.insert(2, vec![(1, json!("b2")), (0, json!("a2"))]);
        u.insert(3, vec![(0, json!("a3")), (1, json!("b3"))]);
        u.insert(4, vec![(0, json!("a4")), (4, json!("e4"))]);
        let vr = merge_runs(&layout(), u);
        let ranges: Vec<_> = vr.iter().map(|v| v.range.clone().unwrap()).collect();
        assert_eq!(ranges, vec!["'Data'!A2:B3", "'Data'!A4:A4", "'Data'!E4:E4"]);
        assert_eq!(
            vr[0].values,
            Some(vec![
                vec![json!("a2"), json!("b2")],
                vec![json!("a3"), json!("b3")]
            ])
        );
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
        match overwritten_by(&marks, &schema, edit(11_000), 2_000).change {
            Change::Overwritten { row: r, actual } => {
                assert_eq!(r, row("person"));
                assert_eq!(actual, row("engine"));
            }
            c => panic!("expected an overwrite, got {c:?}"),
        }
        // Well after the write: the person's edit stands.
        assert_eq!(
            overwritten_by(&marks, &schema, edit(13_000), 2_000).change,
            Change::Upsert(row("person"))
        );
        // A write still in flight covers any edit.
        marks.values_mut().for_each(|m| m.end_ms = None);
        assert!(matches!(
            overwritten_by(&marks, &schema, edit(99_000), 2_000).change,
            Change::Overwritten { .. }
        ));
    }

    #[test]
    fn delete_spans_merge() {
        let rows: BTreeSet<u32> = [2, 3, 4, 7, 9, 10].into_iter().collect();
        assert_eq!(merge_row_spans(&rows), vec![(2, 4), (7, 7), (9, 10)]);
    }

    #[test]
    fn chunks_respect_the_budget() {
        let chunks = chunk_by_size(vec![5, 5, 5, 20, 1], 10, |x| *x);
        assert_eq!(chunks, vec![vec![5, 5], vec![5], vec![20], vec![1]]);
    }
}
