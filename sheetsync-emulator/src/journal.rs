//! The edit journal (`docs/journal.md`): what a journal trigger appends to the hidden
//! `_sheetsync_journal` tab for a person's edit, exactly as the Apps Script does in journal
//! mode. The caller holds the spreadsheet's lock (the edit's own), which stands in for the
//! script's `LockService.getDocumentLock()`. Appending moves the Drive version, like the
//! script's write, and fires no trigger (script writes fire none).

use serde::Serialize;

use crate::model::{Cell, CellValue, Sheet, Spreadsheet};
use crate::state::Shared;
use crate::triggers::{JournalSpec, Payload, PayloadRange};
use crate::util::Rng;

/// Title of the journal tab.
pub const JOURNAL_TITLE: &str = "_sheetsync_journal";
/// Title prefix of sheetsync's scratch tabs, which the journal never reports.
pub const SCRATCH_PREFIX: &str = "sheetsync-scratch-";
/// Most characters (UTF-16 code units, JavaScript's `String.length`) of one entry.
pub const MAX_ENTRY_CHARS: usize = 45_000;
/// `SHEETSYNC_MAX_ROWS` when unset: an edit of more rows is one `OTHER` entry.
pub const DEFAULT_MAX_ROWS: usize = 2_000;
/// `SHEETSYNC_JOURNAL_MAX_ROWS` when unset: a journal holding this many entries takes no more.
pub const DEFAULT_JOURNAL_MAX_ROWS: usize = 20_000;
/// A new journal tab: Google's 1,000 rows, and the four columns the header row uses.
const NEW_TAB_ROWS: u32 = 1_000;
const COLUMNS: u32 = 4;

/// Whether a tab is sheetsync's own (the journal or a scratch tab): edits of it are not
/// reported, and structural entries are not written for it.
pub fn is_own_tab(title: &str) -> bool {
    title == JOURNAL_TITLE || title.starts_with(SCRATCH_PREFIX)
}

/// The entries of one event, in order: `payloads` is the `EDIT` payload, or one structural
/// payload per tab. An `EDIT` of more than `max_rows` rows, or with a row too large for one
/// entry, becomes one `OTHER` entry; a larger one is split into entries of consecutive rows.
/// An entry over the limit even so (a header that long) is left out.
pub fn entries(payloads: &[Payload], max_rows: usize) -> Vec<String> {
    payloads
        .iter()
        .flat_map(|p| payload_entries(p, max_rows))
        .filter(|e| chars(e) <= MAX_ENTRY_CHARS)
        .collect()
}

fn payload_entries(p: &Payload, max_rows: usize) -> Vec<String> {
    if p.change_type != "EDIT" {
        return vec![json(p)];
    }
    if p.rows.len() > max_rows {
        return vec![json(&other(p))];
    }
    split(p).unwrap_or_else(|| vec![json(&other(p))])
}

/// The same event as `OTHER` (no range, no rows): the reader reads the sheet.
fn other(p: &Payload) -> Payload {
    Payload {
        change_type: "OTHER".into(),
        range: None,
        rows: Vec::new(),
        ..p.clone()
    }
}

/// Greedy split: each entry takes as many of the remaining rows as fit. `None` when one row
/// alone does not fit.
fn split(p: &Payload) -> Option<Vec<String>> {
    let lens: Vec<usize> = p.rows.iter().map(|r| chars(&json(r))).collect();
    let empty = Payload {
        rows: Vec::new(),
        ..p.clone()
    };
    // Length of the entry holding rows i..=j: its shell, the rows and the commas between.
    let fits = |i: usize, j: usize, rows_len: usize| {
        chars(&json(&part(&empty, p, i, j, false))) + rows_len + (j - i) <= MAX_ENTRY_CHARS
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.rows.len() {
        let mut sum = lens[i];
        if !fits(i, i, sum) {
            return None;
        }
        let mut j = i;
        while j + 1 < p.rows.len() && fits(i, j + 1, sum + lens[j + 1]) {
            j += 1;
            sum += lens[j];
        }
        out.push(json(&part(&empty, p, i, j, true)));
        i = j + 1;
    }
    Some(out)
}

/// The entry of rows `i..=j` of `p` (`with_rows` false: its shell, `rows` empty).
fn part(empty: &Payload, p: &Payload, i: usize, j: usize, with_rows: bool) -> Payload {
    let range = p.range.as_ref().map(|r| PayloadRange {
        start_row: p.rows[i].row,
        end_row: p.rows[j].row,
        ..r.clone()
    });
    let rows = if with_rows {
        p.rows[i..=j].to_vec()
    } else {
        Vec::new()
    };
    Payload {
        range,
        rows,
        ..empty.clone()
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("payloads serialise")
}

/// Characters as the script counts them (`String.length`: UTF-16 code units).
fn chars(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Appends one event's entries to the journal tab (creating it when missing), as the script
/// does: rows `lastRow + 1 …` get seqs `D1, D1 + 1, …`, then `D1` moves past them. Writes
/// nothing when the journal already holds the spec's cap of entries or the spreadsheet's
/// cell limit leaves no room. Returns how many entries were written.
pub(crate) fn append(
    shared: &Shared,
    ss: &mut Spreadsheet,
    entries: &[String],
    spec: &JournalSpec,
    cell_limit: u64,
) -> usize {
    if entries.is_empty() {
        return 0;
    }
    let (si, created) = match journal_index(ss) {
        Some(si) => (si, false),
        None => match create(ss, &mut shared.rng.lock(), cell_limit) {
            Some(si) => (si, true),
            None => return 0,
        },
    };
    let cap = spec.journal_max_rows.unwrap_or(DEFAULT_JOURNAL_MAX_ROWS);
    let written = write(ss, si, entries, cap, cell_limit);
    if created || written > 0 {
        shared.touch(ss);
    }
    written
}

/// Index of the journal tab (exact title, as `getSheetByName` finds it).
pub fn journal_index(ss: &Spreadsheet) -> Option<usize> {
    ss.sheets
        .iter()
        .position(|s| s.props.title == JOURNAL_TITLE)
}

/// A new hidden journal tab at the end, with its header row; `None` over the cell limit.
fn create(ss: &mut Spreadsheet, rng: &mut Rng, cell_limit: u64) -> Option<usize> {
    let sheet_id = loop {
        let id = rng.positive_i32();
        if ss.sheet_index_by_id(id).is_none() {
            break id;
        }
    };
    let mut sheet = Sheet::new(sheet_id, JOURNAL_TITLE, NEW_TAB_ROWS, COLUMNS);
    if ss.total_cells() + sheet.cells() > cell_limit {
        return None;
    }
    sheet.props.hidden = true;
    let header = [
        CellValue::Text("seq".into()),
        CellValue::Text("entry".into()),
        CellValue::Text(uuid(rng)),
        CellValue::Number(1.0),
    ];
    for (c, v) in header.into_iter().enumerate() {
        set(&mut sheet, 0, c as u32, v);
    }
    ss.sheets.push(sheet);
    // As the script's `protect().setWarningOnly(true)`: people are warned, nobody is stopped.
    ss.protected.push(serde_json::json!({
        "protectedRangeId": rng.positive_i32(),
        "range": {"sheetId": sheet_id},
        "description": "sheetsync's edit journal: written by the Apps Script, read and trimmed by sheetsync. Do not edit.",
        "warningOnly": true,
    }));
    Some(ss.sheets.len() - 1)
}

/// Writes the entries below the last row and moves `D1`; 0 when the journal is full or the
/// grid cannot grow.
fn write(ss: &mut Spreadsheet, si: usize, entries: &[String], cap: usize, limit: u64) -> usize {
    // `getLastRow()`, never above the header row.
    let last = ss.sheets[si].grid.last_value_row().map_or(1, |r| r + 1);
    if (last - 1) as usize >= cap {
        return 0;
    }
    let n = entries.len() as u32;
    if !grow(ss, si, last + n, limit) {
        return 0;
    }
    let sheet = &mut ss.sheets[si];
    let next = next_seq(sheet);
    for (k, entry) in entries.iter().enumerate() {
        let row = last + k as u32;
        set(sheet, row, 0, CellValue::Number((next + k as u64) as f64));
        set(sheet, row, 1, CellValue::Text(entry.clone()));
    }
    set(sheet, 0, 3, CellValue::Number((next + u64::from(n)) as f64));
    entries.len()
}

/// `D1` when it holds a whole number of at least 1, else 1 (a person broke the counter; the
/// reader sees the seqs go back and reads the Sheet).
fn next_seq(sheet: &Sheet) -> u64 {
    match sheet.grid.get(0, 3).and_then(|c| c.value.as_ref()) {
        Some(CellValue::Number(f)) if *f >= 1.0 && f.fract() == 0.0 => *f as u64,
        _ => 1,
    }
}

/// Grows the tab to `rows` rows (`insertRowsAfter(getMaxRows(), …)`); false over the limit.
fn grow(ss: &mut Spreadsheet, si: usize, rows: u32, limit: u64) -> bool {
    let props = &ss.sheets[si].props;
    if rows <= props.row_count {
        return true;
    }
    let extra = u64::from(rows - props.row_count) * u64::from(props.column_count);
    if ss.total_cells() + extra > limit {
        return false;
    }
    ss.sheets[si].props.row_count = rows;
    true
}

fn set(sheet: &mut Sheet, row: u32, col: u32, v: CellValue) {
    let mut cell: Cell = sheet.grid.get(row, col).cloned().unwrap_or_default();
    cell.value = Some(v);
    sheet.grid.set(row, col, cell);
}

/// A random (version 4) UUID, the journal id (`Utilities.getUuid()` in the script).
fn uuid(rng: &mut Rng) -> String {
    let a = (rng.next_u64() & !0xF000) | 0x4000;
    let b = (rng.next_u64() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::PayloadRow;
    use serde_json::json;

    fn edit(rows: &[(u32, &str)]) -> Payload {
        Payload {
            version: 1,
            spreadsheet_id: "ss".into(),
            sheet_id: 7,
            sheet_name: "Items".into(),
            change_type: "EDIT".into(),
            event_id: "e1".into(),
            timestamp: 1_767_225_600_123,
            user: String::new(),
            range: Some(PayloadRange {
                start_row: rows[0].0,
                end_row: rows[rows.len() - 1].0,
                start_column: 2,
                end_column: 2,
            }),
            header: vec![json!("id"), json!("note")],
            rows: rows
                .iter()
                .map(|(r, v)| PayloadRow {
                    row: *r,
                    values: vec![json!(r), json!(v)],
                })
                .collect(),
        }
    }

    fn parsed(e: &str) -> serde_json::Value {
        serde_json::from_str(e).unwrap()
    }

    #[test]
    fn a_large_edit_is_split_greedily_into_consecutive_rows_under_the_limit() {
        // 20 rows of ~10,000 UTF-16 units (an astral char counts 2): 4 rows per entry.
        let note = "\u{1d11e}".repeat(5_000);
        let rows: Vec<(u32, &str)> = (3..23).map(|r| (r, note.as_str())).collect();
        let out = entries(&[edit(&rows)], DEFAULT_MAX_ROWS);
        assert_eq!(out.len(), 5);
        let mut next = 3;
        for e in &out {
            assert!(chars(e) <= MAX_ENTRY_CHARS);
            let v = parsed(e);
            assert_eq!(v["eventId"], "e1");
            assert_eq!(v["range"]["startRow"], next);
            let n = v["rows"].as_array().unwrap().len() as u32;
            assert_eq!(n, 4, "greedy: as many rows as fit");
            assert_eq!(v["range"]["endRow"], next + n - 1);
            assert_eq!(v["range"]["startColumn"], 2);
            next += n;
        }
        // One more row would not have fitted.
        assert!(chars(&out[0]) + chars(&json(&edit(&rows).rows[4])) + 1 > MAX_ENTRY_CHARS);
    }

    #[test]
    fn a_row_too_large_or_too_many_rows_make_one_other_entry() {
        let huge = "x".repeat(MAX_ENTRY_CHARS);
        let out = entries(&[edit(&[(2, "a"), (3, &huge)])], DEFAULT_MAX_ROWS);
        assert_eq!(out.len(), 1);
        let v = parsed(&out[0]);
        assert_eq!(v["changeType"], "OTHER");
        assert!(v.get("range").is_none());
        assert_eq!(v["rows"], json!([]));
        assert_eq!(v["header"], json!(["id", "note"]));
        let out = entries(&[edit(&[(2, "a"), (3, "b"), (4, "c")])], 2);
        assert_eq!(parsed(&out[0])["changeType"], "OTHER");
        let out = entries(&[edit(&[(2, "a"), (3, "b")])], 2);
        assert_eq!(parsed(&out[0])["rows"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_entry_too_large_even_as_other_is_left_out() {
        let mut p = edit(&[(2, "a")]);
        p.change_type = "INSERT_ROW".into();
        p.range = None;
        p.rows.clear();
        let small = p.clone();
        p.header = vec![json!("h".repeat(MAX_ENTRY_CHARS))];
        assert_eq!(
            entries(&[p, small.clone()], DEFAULT_MAX_ROWS),
            vec![json(&small)]
        );
    }

    #[test]
    fn journal_ids_are_version_4_uuids() {
        let mut rng = Rng::from_entropy();
        let id = uuid(&mut rng);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(id, uuid(&mut rng));
    }
}
