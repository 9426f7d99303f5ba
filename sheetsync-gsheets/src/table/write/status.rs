//! Showing the rows that wait for a person in the tab itself ([`Sink::annotate`]): as a note on
//! the row's key cell ([`SheetStatus::Note`]) or in a status column of sheetsync's own
//! ([`SheetStatus::Column`]). The key column (and the status column) is read in one request,
//! and only the marks that differ are written, all in one guarded batch: a row sorted away
//! between the read and the write never keeps another row's mark (the pre-image check sees
//! the move, the mis-hit row gets its own cells and note back, and the marks are tried again
//! after the next cycle). Only notes that start with [`NOTE_PREFIX`] are ever replaced or
//! removed; the status column is sheetsync's, never synced and never a mapped column.

use std::collections::BTreeMap;

use google_sheets4::api::Spreadsheet;
use sheetsync_core::RowNotice;

use super::*;
use crate::guard::effective;
use crate::layout::header_text;

/// How sheetsync shows held rows and conflicts in the tab itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SheetStatus {
    /// Not at all (the log, the status page and the admin API still show them).
    #[default]
    Off,
    /// As a note on the row's key cell (the first key column), removed when the row syncs.
    Note,
    /// In the column with this header (added at the header's end when missing), emptied when
    /// the row syncs. It must not be a mapped column.
    Column(String),
}

/// The start of every note sheetsync writes: a note without it is a person's, never touched.
pub const NOTE_PREFIX: &str = "sheetsync: ";

/// Where the tab shows a row's status: the 0-based sheet column, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// The note of the key cell in this column.
    Note(u32),
    /// The value of the cell in this status column.
    Column(u32),
}

/// One data row as read: its 1-based row, key (when it parses) and the status it shows now.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KeyCell {
    pub row: u32,
    pub key: Option<RowKey>,
    pub mark: Option<String>,
}

impl SheetTable {
    /// Sets and clears the rows' marks so that exactly the rows of `notices` show theirs.
    pub(super) async fn annotate_rows(&self, notices: &[RowNotice]) -> Result<()> {
        if self.opts.sheet_status == SheetStatus::Off {
            return Ok(());
        }
        let _writing = Writing::begin(&self.writes);
        self.settle_unverified().await?;
        let l = self.layout(false).await?;
        if l.header_assumed {
            return Ok(()); // a plan: nothing is written
        }
        let place = match &self.opts.sheet_status {
            SheetStatus::Column(name) => Place::Column(self.status_column(&l, name).await?),
            _ => Place::Note(l.columns[self.schema.key[0]]),
        };
        let cells = self.read_key_cells(&l, place).await?;
        let targets = status_targets(&cells, notices, place);
        if targets.is_empty() {
            return Ok(());
        }
        self.send_marks(&l, targets).await
    }

    /// Sends the marks as guarded writes; a mark that missed its row (rows moved meanwhile)
    /// is an error, so the engine asks again after the next cycle.
    async fn send_marks(&self, l: &Layout, targets: Vec<Target>) -> Result<()> {
        let n = targets.len();
        let mut plan = WritePlan {
            outcomes: vec![None; n],
            targets,
            appends: Vec::new(),
            written: Vec::new(),
            positions_lost: false,
        };
        let sent = self.send_plan(l, &mut plan).await;
        if plan.positions_lost {
            self.positions_unknown();
        }
        sent?;
        match plan.outcomes.iter().filter(|o| o.is_some()).count() {
            0 => Ok(()),
            missed => Err(Error::new(
                ErrorKind::Conflict,
                format!("{missed} of {n} row status(es) missed their row (rows moved meanwhile)"),
            )),
        }
    }

    /// The status column's 0-based position, added after the header's last cell if missing.
    async fn status_column(&self, l: &Layout, name: &str) -> Result<u32> {
        let header = self.read_header(l).await?;
        let found: Vec<u32> = (0..header.len() as u32)
            .filter(|&i| header_text(&header[i as usize]) == name.trim())
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => self.add_status_column(l, name, header.len() as u32).await,
            many => Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "tab {:?}: the status column {name:?} appears in columns {}; rename all but one",
                    l.title,
                    many.iter().map(|c| col_letters(*c)).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Writes the status column's header into the first free header cell, `col`.
    async fn add_status_column(&self, l: &Layout, name: &str, col: u32) -> Result<u32> {
        let mut l = l.clone();
        self.grow_columns(&mut l, col + 1).await?;
        let header = ValueRange {
            range: Some(l.cells(l.header_row, col, col)),
            major_dimension: Some("ROWS".into()),
            values: Some(vec![vec![Json::String(name.to_string())]]),
        };
        self.client
            .batch_update_values(&self.opts.spreadsheet_id, vec![header])
            .await?;
        // The grid may have grown.
        *self.layout.lock().expect("layout lock") = None;
        tracing::info!(tab = %l.title, column = %col_letters(col), "added the status column {name:?}");
        Ok(col)
    }

    /// Every data row's key and the status it shows, in one `spreadsheets.get`.
    async fn read_key_cells(&self, l: &Layout, place: Place) -> Result<Vec<KeyCell>> {
        let mut ranges = self.key_ranges(l);
        if let Place::Column(c) = place {
            ranges.push(l.column_down(c));
        }
        let got = self
            .client
            .get_grid(
                &self.opts.spreadsheet_id,
                &ranges,
                "sheets(properties.sheetId,data(rowData.values(effectiveValue,note)))",
            )
            .await?;
        let columns = grid_columns(&got, self.opts.sheet_id);
        let nkeys = self.schema.key.len();
        let height = columns.iter().map(Vec::len).max().unwrap_or(0);
        let blank = (Json::String(String::new()), None);
        let at = |c: usize, i: usize| columns.get(c).and_then(|col| col.get(i)).unwrap_or(&blank);
        Ok((0..height)
            .map(|i| {
                let values: Vec<Json> = (0..nkeys).map(|c| at(c, i).0.clone()).collect();
                let mark = match place {
                    Place::Note(_) => at(0, i).1.clone(),
                    Place::Column(_) => Some(match &at(nkeys, i).0 {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .filter(|s| !s.is_empty()),
                };
                KeyCell {
                    row: l.header_row + 1 + i as u32,
                    key: self.key_from_cells(l, &values),
                    mark,
                }
            })
            .collect())
    }
}

/// The tab's grid data, one entry per range: each row's (effective value, note) of its first
/// cell.
fn grid_columns(got: &Spreadsheet, sheet_id: i32) -> Vec<Vec<(Json, Option<String>)>> {
    let data = got
        .sheets
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|s| s.properties.as_ref().and_then(|p| p.sheet_id).unwrap_or(0) == sheet_id)
        .and_then(|s| s.data.clone())
        .unwrap_or_default();
    data.iter()
        .map(|grid| {
            grid.row_data
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|rd| {
                    let cell = rd.values.as_deref().and_then(|v| v.first());
                    (
                        effective(cell.and_then(|c| c.effective_value.as_ref())),
                        cell.and_then(|c| c.note.clone()).filter(|n| !n.is_empty()),
                    )
                })
                .collect()
        })
        .collect()
}

/// The writes that make exactly the rows of `notices` show their status: set where it is
/// missing or says something else, removed where it is no longer wanted. A person's note (one
/// without [`NOTE_PREFIX`]) is left as it is: that row then shows none of ours.
pub(super) fn status_targets(
    cells: &[KeyCell],
    notices: &[RowNotice],
    place: Place,
) -> Vec<Target> {
    let prefix = match place {
        Place::Note(_) => NOTE_PREFIX,
        Place::Column(_) => "",
    };
    let wanted: BTreeMap<&RowKey, String> = notices
        .iter()
        .map(|n| (&n.key, format!("{prefix}{}", n.text)))
        .collect();
    let ours = |m: &Option<String>| m.as_deref().is_none_or(|m| m.starts_with(prefix));
    cells
        .iter()
        .filter(|c| ours(&c.mark))
        .filter_map(|c| {
            let key = c.key.as_ref()?;
            let want = wanted.get(key).cloned().unwrap_or_default();
            (c.mark.as_deref().unwrap_or("") != want).then(|| Target {
                op: 0,
                row: c.row,
                expect: Expect::Key(key.clone()),
                action: match place {
                    Place::Note(col) => Action::Note(col, want),
                    Place::Column(col) => Action::Cells(vec![(col, Json::String(want))]),
                },
            })
        })
        .enumerate()
        .map(|(i, t)| Target { op: i, ..t })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sheetsync_core::key_of;

    fn cell(row: u32, key: Option<i64>, mark: Option<&str>) -> KeyCell {
        KeyCell {
            row,
            key: key.map(key_of),
            mark: mark.map(str::to_string),
        }
    }

    fn notice(id: i64, text: &str) -> RowNotice {
        RowNotice {
            key: key_of(id),
            text: text.into(),
        }
    }

    fn actions(targets: &[Target]) -> Vec<(u32, String)> {
        targets
            .iter()
            .map(|t| match &t.action {
                Action::Note(_, n) => (t.row, n.clone()),
                other => panic!("not a note: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn only_our_notes_change_and_only_where_they_differ() {
        let cells = [
            cell(2, Some(1), None),                           // gets one
            cell(3, Some(2), Some("sheetsync: held — old")),  // reworded
            cell(4, Some(3), Some("sheetsync: held — gone")), // removed
            cell(5, Some(4), Some("call Ann about this")),    // a person's: kept
            cell(6, Some(5), Some("sheetsync: held — same")), // already right
            cell(7, None, Some("sheetsync: held — no key")),  // cannot be guarded
            cell(8, Some(6), None),                           // nothing to do
        ];
        let notices = [
            notice(1, "held — bad"),
            notice(2, "held — new"),
            notice(4, "held — x"),
            notice(5, "held — same"),
        ];
        let t = status_targets(&cells, &notices, Place::Note(0));
        assert_eq!(
            actions(&t),
            vec![
                (2, "sheetsync: held — bad".into()),
                (3, "sheetsync: held — new".into()),
                (4, String::new()),
            ]
        );
        assert_eq!(t.iter().map(|t| t.op).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(
            t[0].expect,
            Expect::Key(key_of(1)),
            "guarded by the row's key"
        );
    }

    #[test]
    fn the_status_column_is_ours_whatever_it_holds() {
        let cells = [
            cell(2, Some(1), None),
            cell(3, Some(2), Some("typed by a person")),
            cell(4, Some(3), Some("held — same")),
        ];
        let notices = [notice(1, "held — bad"), notice(3, "held — same")];
        let t = status_targets(&cells, &notices, Place::Column(5));
        let cells: Vec<(u32, Action)> = t.iter().map(|t| (t.row, t.action.clone())).collect();
        assert_eq!(
            cells,
            vec![
                (2, Action::Cells(vec![(5, json!("held — bad"))])),
                (3, Action::Cells(vec![(5, json!(""))])),
            ]
        );
    }
}
