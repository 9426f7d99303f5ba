//! [`SheetTable`]: one tab of a spreadsheet as a sheetsync [`Source`] and [`Sink`].
//!
//! Reads: `values.batchGetByDataFilter` in chunks sized to a cell budget, the tab named by its
//! `sheetId` and the last chunk open-ended, so the tab's layout (title, time zone, grid: one
//! `spreadsheets.get`) is looked up at most once a [`LAYOUT_TTL`] or when an answer says it
//! changed, and a small tab reads in one request; when the Drive `version` of the file has not
//! moved since the last read, the last read is reused and no Sheets quota is spent. Edits reported
//! by the Apps Script trigger arrive through [`SheetTable::accept_edit`] and are served as the
//! change feed, so most edits reach the database without reading the Sheet at all.
//!
//! Writes, per cycle: the rows are located (from the full read that just ended, or by reading
//! the key column), then each batch of writes goes in one atomic `spreadsheets.batchUpdate`
//! that copies the pre-image of every row it touches into a hidden scratch tab before writing
//! the changed cells (and the key cells), deleting rows (highest first) and appending new rows
//! after the last row with data (`appendCells`). The answer carries the pre-images, so a write
//! that people's sorting or deleting sent to another row is noticed at once and repaired
//! ([`crate::guard`]). Only cells whose value changes are written, never a column the Sheet owns.
//!
//! The parts: `feed` (people's edits as the change feed), `read` (full reads and the read
//! cache) and `write` (locate the keys → plan a write batch → send it → repair), each with
//! unit tests of its own.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use google_sheets4::api::{
    AppendDimensionRequest, BatchUpdateSpreadsheetRequest, GridRange, Request, ValueRange,
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
use crate::guard::{scratch_title, Scratch};
use crate::layout::{col_letters, range_title, Layout};

mod background;
mod feed;
mod kept;
mod positions;
mod read;
mod write;

pub use write::{SheetStatus, NOTE_PREFIX};

use feed::{overwritten_by, Feed, WriteMark};
use kept::KeptRead;
pub(crate) use positions::{KeyRows, Positions, RowKeys};

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
    /// Bytes per write request body, everything counted (Google recommends at most 2 MB).
    pub max_write_bytes: usize,
    /// Skip full reads while the file's Drive `version` is unchanged.
    pub use_drive_version: bool,
    /// Write the header row into a tab that has none yet.
    pub create_header: bool,
    /// Without `create_header`: read an empty tab as if its header were written (the mapping's
    /// columns from column A) and write nothing, for plans and checks of a new tab.
    pub assume_header: bool,
    /// How far the clocks of Google (edit times in webhooks) and this host may differ, in
    /// milliseconds. Edits this close to one of the adapter's own writes of the same row are
    /// treated as possibly overwritten by it.
    pub clock_skew_ms: i64,
    /// Whether held rows and conflicts are shown in the tab (default: not).
    pub sheet_status: SheetStatus,
}

impl SheetOptions {
    /// Options for a tab, with defaults for the rest.
    pub fn new(spreadsheet_id: impl Into<String>, sheet_id: i32) -> Self {
        SheetOptions {
            spreadsheet_id: spreadsheet_id.into(),
            sheet_id,
            header_row: 1,
            read_chunk_cells: 500_000,
            max_write_bytes: 2_000_000,
            use_drive_version: true,
            create_header: true,
            assume_header: false,
            clock_skew_ms: 1_000,
            sheet_status: SheetStatus::Off,
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
    /// The 1-based sheet columns the person edited (first, last), when the trigger says: the
    /// other cells of `rows` are a snapshot that the adapter's own later writes may have
    /// overtaken, and are never taken as the person's edit.
    pub columns: Option<(u32, u32)>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[derive(Default)]
struct ReadCache {
    version: Option<String>,
    /// The last full read, to serve again while the version stays the same.
    kept: Option<Arc<KeptRead>>,
    /// The key in each row, from the last full read.
    row_keys: RowKeys,
    /// Where each key is, as far as this process knows (see [`Positions`]).
    positions: Option<Positions>,
    /// Moves on every event that may have moved rows behind our back: positions learned by a
    /// read that started before the move are not kept.
    positions_gen: u64,
    /// Where each key was in the last full read (kept until the next one; shared with
    /// `positions` until a write moves rows).
    key_rows: Arc<KeyRows>,
}

impl ReadCache {
    /// Forgets where keys are (something may have moved rows).
    fn positions_unknown(&mut self) {
        self.positions = None;
        self.positions_gen += 1;
    }

    /// Keeps `positions` read since generation `gen`, unless rows may have moved since.
    fn learn_positions(&mut self, gen: u64, positions: Positions) {
        if self.positions_gen == gen {
            self.positions = Some(positions);
        }
    }

    /// Keys that the last full read found in more than one row.
    fn duplicates(&self) -> impl Iterator<Item = (&RowKey, Vec<u32>)> {
        self.key_rows.duplicates()
    }
}

fn is_blank_row(cells: &[Json]) -> bool {
    cells.iter().all(|c| c.as_str() == Some("") || c.is_null())
}

/// The hold of a key that several rows of the tab carry.
fn duplicate(key: &RowKey, rows: &[u32], l_title: &str) -> Observation {
    Observation::new(Change::Invalid(InvalidRow {
        key: Some(key.clone()),
        locator: None,
        reason: format!(
            "key {key} appears in rows {rows:?} of tab {l_title:?}; nothing of these rows is \
             synced until only one row has it"
        ),
    }))
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
    /// The hidden tab each write copies its rows' pre-images into (see [`crate::guard`]).
    scratch: Mutex<Option<Scratch>>,
    /// A write whose answer was lost and not yet checked.
    unverified: Mutex<Option<write::Unverified>>,
    /// Rows hit by mistake whose repair has to be retried.
    pending_repair: Mutex<Option<write::PendingRepair>>,
    /// When a person last edited a row (from the trigger), with the content the edit left: a
    /// full read that finds the same content keeps that time (last-write-wins needs it).
    edit_times: Mutex<HashMap<RowKey, (sheetsync_core::RowHash, DateTime<Utc>)>>,
    /// The scratch tab was checked for a batch an earlier process left unverified.
    recovered: std::sync::atomic::AtomicBool,
    /// Edits of this tab reported so far (for change detection, [`crate::watch`]).
    edits_accepted: std::sync::atomic::AtomicU64,
    /// The full read made outside the engine's cycle ([`background`]).
    background: Mutex<background::Background>,
    /// Moves when one of this table's writes starts and again when it ends: odd while one
    /// is in flight.
    writes: std::sync::atomic::AtomicU64,
}

const LAYOUT_FIELDS: &str =
    "properties.timeZone,sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))";

/// How long a layout read for one operation may be reused by the next. A full read that the
/// grid no longer fits looks it up again; a header that moved and a failed write drop it.
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
            feed: Mutex::new(Feed::new()),
            wake,
            scratch: Mutex::new(None),
            unverified: Mutex::new(None),
            pending_repair: Mutex::new(None),
            edit_times: Mutex::new(HashMap::new()),
            recovered: std::sync::atomic::AtomicBool::new(false),
            edits_accepted: std::sync::atomic::AtomicU64::new(0),
            background: Mutex::new(background::Background::default()),
            writes: std::sync::atomic::AtomicU64::new(0),
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
        let tabs: Vec<_> = ss
            .sheets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.properties)
            .collect();
        self.note_scratch(&tabs);
        let sheet = tabs
            .into_iter()
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
            sheet_id: self.opts.sheet_id,
            title: sheet.title.unwrap_or_default(),
            tz,
            row_count: grid.row_count.unwrap_or(0).max(0) as u32,
            column_count: grid.column_count.unwrap_or(0).max(0) as u32,
            header_row: self.opts.header_row,
            columns: Vec::new(),
            header_assumed: false,
        })
    }

    /// Remembers the scratch tab if the spreadsheet has one (by title).
    fn note_scratch(&self, tabs: &[google_sheets4::api::SheetProperties]) {
        let title = scratch_title(self.opts.sheet_id);
        let found = tabs
            .iter()
            .find(|p| p.title.as_deref() == Some(title.as_str()));
        let mut s = self.scratch.lock().expect("scratch lock");
        match found {
            Some(p) => {
                let grid = p.grid_properties.clone().unwrap_or_default();
                *s = Some(Scratch {
                    sheet_id: p.sheet_id.unwrap_or(0),
                    title,
                    rows: grid.row_count.unwrap_or(0).max(0) as u32,
                    cols: grid.column_count.unwrap_or(0).max(0) as u32,
                    exists: true,
                });
            }
            // Gone (deleted by someone): the next write creates it again.
            None if s.as_ref().is_some_and(|s| s.exists) => *s = None,
            None => {}
        }
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
        let mut header = self.read_header(&l).await?;
        if is_blank_row(&header) {
            // Before writing a header, make sure an answer that lost it did not fool us.
            header = self.read_header(&l).await?;
        }
        if is_blank_row(&header) {
            self.create_header(&mut l).await?;
        } else {
            l.map_header(&header, &self.schema)?;
        }
        *self.layout.lock().expect("layout lock") = Some((l.clone(), Instant::now()));
        Ok(l)
    }

    async fn read_header(&self, l: &Layout) -> Result<Vec<Json>> {
        let header_range = l.rows_range(l.header_row, l.header_row);
        let got = self
            .client
            .batch_get(
                &self.opts.spreadsheet_id,
                &[header_range],
                "UNFORMATTED_VALUE",
            )
            .await?;
        Ok(got.first().map(write::first_row).unwrap_or_default())
    }

    /// Writes the column names into an empty header row, growing the grid if it is too narrow.
    async fn create_header(&self, l: &mut Layout) -> Result<()> {
        if !self.opts.create_header && !self.opts.assume_header {
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
        if !self.opts.create_header {
            l.columns = (0..n).collect();
            l.header_assumed = true;
            return Ok(());
        }
        self.grow_columns(l, n).await?;
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

    /// Adds columns at the tab's right edge until it has `n` (appended, never set: a person's
    /// own new columns are kept).
    async fn grow_columns(&self, l: &mut Layout, n: u32) -> Result<()> {
        if l.column_count >= n {
            return Ok(());
        }
        let append = Request {
            append_dimension: Some(AppendDimensionRequest {
                sheet_id: Some(self.opts.sheet_id),
                dimension: Some("COLUMNS".into()),
                length: Some((n - l.column_count) as i32),
            }),
            ..Default::default()
        };
        let req = BatchUpdateSpreadsheetRequest {
            requests: Some(vec![append]),
            ..Default::default()
        };
        self.client
            .batch_update(&self.opts.spreadsheet_id, req)
            .await?;
        l.column_count = n;
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
                locator: format!("{row_no}:{:032x}", row.hash()),
                row,
            })
        } else {
            Change::Upsert(row)
        };
        Some(Observation { change, at })
    }

    /// Forgets where keys are: the next write reads the key column first.
    pub(crate) fn positions_unknown(&self) {
        self.cache.lock().expect("cache lock").positions_unknown();
    }

    fn forget_read(&self) {
        let mut cache = self.cache.lock().expect("cache lock");
        cache.version = None;
        cache.kept = None;
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
            annotations: self.opts.sheet_status != SheetStatus::Off,
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
        Ok(Some(self.feed.lock().expect("feed lock").cursor()))
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        let (mut changes, cursor, more) = self.feed.lock().expect("feed lock").page(since, limit);
        // Duplicated keys stay held on every cycle until a full read finds them resolved.
        let cache = self.cache.lock().expect("cache lock");
        changes.extend(
            cache
                .duplicates()
                .map(|(k, rows)| duplicate(k, &rows, self.name())),
        );
        Ok(ChangeBatch {
            changes,
            cursor,
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
                if wanted.contains(&k) && found.insert(k) {
                    out.push(o.clone());
                }
            }
        }
        for k in keys {
            if !found.contains(k) {
                out.push(Observation::new(Change::Delete(k.clone())));
            }
        }
        // A key in several rows is held, whichever path reads it.
        let cache = self.cache.lock().expect("cache lock");
        for o in &mut out {
            let k = match &o.change {
                Change::Upsert(r) => r.key(&self.schema),
                _ => None,
            };
            if let Some(rows) = k.as_ref().and_then(|k| cache.key_rows.get(k)) {
                if rows.len() > 1 {
                    *o = duplicate(k.as_ref().expect("matched"), &rows, self.name());
                }
            }
        }
        Ok(out)
    }

    async fn resume(&self, saved: &Cursor) -> Result<()> {
        self.feed.lock().expect("feed lock").resume(saved);
        Ok(())
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        self.feed.lock().expect("feed lock").ack(cursor);
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

/// What the unit tests of the table's parts share: a table that never connects (planning and
/// locating make no calls) and a layout.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sheetsync_core::{Column, ColumnType};

    /// `id` (integer key), `name` (text, required) and `qty` (integer), in sheet columns A, C, B.
    pub fn schema() -> TableSchema {
        TableSchema::new(
            "items",
            vec![
                Column::new("id", ColumnType::Int).nullable(false),
                Column::new("name", ColumnType::Text).nullable(false),
                Column::new("qty", ColumnType::Int),
            ],
            &["id"],
        )
        .unwrap()
    }

    pub fn layout() -> Layout {
        Layout {
            sheet_id: 0,
            title: "Items".into(),
            tz: chrono_tz::UTC,
            row_count: 100,
            column_count: 5,
            header_row: 1,
            columns: vec![0, 2, 1],
            header_assumed: false,
        }
    }

    pub async fn table() -> SheetTable {
        let client = SheetsClient::new(crate::client::ClientConfig::emulator("http://127.0.0.1:9"))
            .await
            .unwrap();
        SheetTable::new(Arc::new(client), SheetOptions::new("sheet", 0), schema())
    }

    pub fn row(id: i64, name: &str, qty: i64) -> Row {
        Row::new(vec![Value::Int(id), name.into(), Value::Int(qty)])
    }
}
