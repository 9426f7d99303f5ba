//! Notes on the key cells of rows that wait for a person ([`Sink::annotate`], with
//! [`SheetStatus::Note`]): read the key column's values and notes in one request, set or clear
//! only the notes that differ, all in one guarded batch (so a row sorted away between the read
//! and the write never keeps another row's note: the pre-image check sees the move, the
//! mis-hit row gets its own note back, and the notes are tried again after the next cycle).
//! Only notes that start with [`NOTE_PREFIX`] are ever replaced or removed.

use std::collections::BTreeMap;

use google_sheets4::api::Spreadsheet;
use sheetsync_core::RowNotice;

use super::*;
use crate::guard::effective;

/// How sheetsync shows held rows and conflicts in the tab itself (`sheet_status = "off" |
/// "note"` in a mapping's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SheetStatus {
    /// Not at all (the log, the status page and the admin API still show them).
    #[default]
    Off,
    /// As a note on the row's key cell (the first key column), removed when the row syncs.
    Note,
}

/// The start of every note sheetsync writes: a note without it is a person's, never touched.
pub const NOTE_PREFIX: &str = "sheetsync: ";

/// One data row's key cell as read: its 1-based row, key (when it parses) and note.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KeyCell {
    pub row: u32,
    pub key: Option<RowKey>,
    pub note: Option<String>,
}

impl SheetTable {
    /// Sets and clears key-cell notes so that exactly the rows of `notices` carry ours.
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
        let cells = self.read_key_cells(&l).await?;
        let key_col = l.columns[self.schema.key[0]];
        let targets = note_targets(&cells, notices, key_col);
        if targets.is_empty() {
            return Ok(());
        }
        let n = targets.len();
        let mut plan = WritePlan {
            outcomes: vec![None; n],
            targets,
            appends: Vec::new(),
            written: Vec::new(),
            positions_lost: false,
        };
        let sent = self.send_plan(&l, &mut plan).await;
        if plan.positions_lost {
            self.positions_unknown();
        }
        sent?;
        let missed = plan.outcomes.iter().filter(|o| o.is_some()).count();
        if missed > 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{missed} of {n} note(s) missed their row (rows moved meanwhile)"),
            ));
        }
        Ok(())
    }

    /// Every data row's key cells and the first key column's note, in one `spreadsheets.get`.
    async fn read_key_cells(&self, l: &Layout) -> Result<Vec<KeyCell>> {
        let got = self
            .client
            .get_grid(
                &self.opts.spreadsheet_id,
                &self.key_ranges(l),
                "sheets(properties.sheetId,data(rowData.values(effectiveValue,note)))",
            )
            .await?;
        let columns = grid_columns(&got, self.opts.sheet_id);
        let height = columns.iter().map(Vec::len).max().unwrap_or(0);
        let blank = (Json::String(String::new()), None);
        Ok((0..height)
            .map(|i| {
                let cells: Vec<&(Json, Option<String>)> =
                    columns.iter().map(|c| c.get(i).unwrap_or(&blank)).collect();
                let values: Vec<Json> = cells.iter().map(|(v, _)| v.clone()).collect();
                KeyCell {
                    row: l.header_row + 1 + i as u32,
                    key: self.key_from_cells(l, &values),
                    note: cells.first().and_then(|(_, n)| n.clone()),
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

/// The note writes that make exactly the rows of `notices` carry our note: set where ours is
/// missing or says something else, removed where ours is no longer wanted; a person's note is
/// left as it is (the row then shows none of ours).
pub(super) fn note_targets(cells: &[KeyCell], notices: &[RowNotice], col: u32) -> Vec<Target> {
    let wanted: BTreeMap<&RowKey, String> = notices
        .iter()
        .map(|n| (&n.key, format!("{NOTE_PREFIX}{}", n.text)))
        .collect();
    let ours = |n: &Option<String>| n.as_deref().is_none_or(|n| n.starts_with(NOTE_PREFIX));
    cells
        .iter()
        .filter(|c| ours(&c.note))
        .filter_map(|c| {
            let key = c.key.as_ref()?;
            let want = wanted.get(key).cloned().unwrap_or_default();
            (c.note.as_deref().unwrap_or("") != want).then(|| Target {
                op: 0,
                row: c.row,
                expect: Expect::Key(key.clone()),
                action: Action::Note(col, want),
            })
        })
        .enumerate()
        .map(|(i, t)| Target { op: i, ..t })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheetsync_core::key_of;

    fn cell(row: u32, key: Option<i64>, note: Option<&str>) -> KeyCell {
        KeyCell {
            row,
            key: key.map(key_of),
            note: note.map(str::to_string),
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
        let t = note_targets(&cells, &notices, 0);
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
}
