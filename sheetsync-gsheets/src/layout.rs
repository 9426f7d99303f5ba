//! Where a mapping's columns are in a tab: the tab's title (looked up by its sheetId, so
//! renaming a tab breaks nothing), its time zone, its grid, and the header row.

use std::collections::HashMap;

use chrono_tz::Tz;
use google_sheets4::api::GridRange;
use serde_json::Value as Json;
use sheetsync_core::{Error, ErrorKind, Result, TableSchema};

/// A0-based column index to A1 letters (`0` → `A`, `26` → `AA`, `18277` → `ZZZ`).
pub fn col_letters(mut col: u32) -> String {
    let mut out = Vec::new();
    col += 1;
    while col > 0 {
        let rem = (col - 1) % 26;
        out.push(b'A' + rem as u8);
        col = (col - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// A sheet title as it goes into an A1 range: always quoted, inner quotes doubled.
pub fn quote_title(title: &str) -> String {
    format!("'{}'", title.replace('\'', "''"))
}

/// The tab title of an A1 range as Google answers it (`'Jon''s Data'!A1:B2` → `Jon's Data`,
/// `Sheet1!A1` → `Sheet1`); `None` without a title.
pub fn range_title(range: &str) -> Option<String> {
    let Some(quoted) = range.strip_prefix('\'') else {
        return range.rfind('!').map(|i| range[..i].to_string());
    };
    let mut title = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            title.push(c);
        } else if chars.next_if_eq(&'\'').is_some() {
            title.push('\'');
        } else {
            return Some(title);
        }
    }
    None
}

/// The tab and where each mapped column is in it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The tab's `sheetId`: what names it for good (titles change).
    pub sheet_id: i32,
    /// The tab's current title.
    pub title: String,
    /// The spreadsheet's time zone.
    pub tz: Tz,
    /// Rows in the grid.
    pub row_count: u32,
    /// Columns in the grid.
    pub column_count: u32,
    /// The 1-based header row.
    pub header_row: u32,
    /// The 0-based sheet column of each schema column; empty until the header was read.
    pub columns: Vec<u32>,
    /// The header row is empty and was taken as written, not written
    /// (`SheetOptions::assume_header`).
    pub header_assumed: bool,
}

impl Layout {
    /// The quoted title for ranges.
    pub fn quoted(&self) -> String {
        quote_title(&self.title)
    }

    /// The last 0-based column a mapped column uses, plus one.
    pub fn width(&self) -> u32 {
        self.columns.iter().max().map_or(0, |c| c + 1)
    }

    /// A1 range of whole rows `from..=to` (1-based).
    pub fn rows_range(&self, from: u32, to: u32) -> String {
        format!("{}!{from}:{to}", self.quoted())
    }

    /// A1 range of one row, columns `c0..=c1` (0-based).
    pub fn cells(&self, row: u32, c0: u32, c1: u32) -> String {
        format!(
            "{}!{}{row}:{}{row}",
            self.quoted(),
            col_letters(c0),
            col_letters(c1)
        )
    }

    /// A1 range of rows `r0..=r1`, columns `c0..=c1`.
    pub fn block(&self, r0: u32, r1: u32, c0: u32, c1: u32) -> String {
        format!(
            "{}!{}{r0}:{}{r1}",
            self.quoted(),
            col_letters(c0),
            col_letters(c1)
        )
    }

    /// A1 range of one column from the first data row down.
    pub fn column_down(&self, col: u32) -> String {
        let l = col_letters(col);
        format!("{}!{l}{}:{l}", self.quoted(), self.header_row + 1)
    }

    /// Whole rows `from..=to` (1-based) of this tab by `sheetId`; `to: None` reaches the last row
    /// of the grid as it is when Google answers (a row count read earlier may be stale).
    pub fn grid_rows(&self, from: u32, to: Option<u32>) -> GridRange {
        GridRange {
            sheet_id: Some(self.sheet_id),
            start_row_index: Some(from as i32 - 1),
            end_row_index: to.map(|t| t as i32),
            start_column_index: None,
            end_column_index: None,
        }
    }

    /// One column from the first data row to the last row of the grid, by `sheetId`.
    pub fn grid_column_down(&self, col: u32) -> GridRange {
        GridRange {
            sheet_id: Some(self.sheet_id),
            start_row_index: Some(self.header_row as i32),
            end_row_index: None,
            start_column_index: Some(col as i32),
            end_column_index: Some(col as i32 + 1),
        }
    }

    /// Maps the header row's cells to the schema's columns. Every mapped column must appear
    /// exactly once (matched after trimming spaces); a missing, blank or repeated header is an
    /// error that names it, so the mapping pauses and nothing is taken as deleted. Extra and
    /// reordered columns are fine.
    pub fn map_header(&mut self, header: &[Json], schema: &TableSchema) -> Result<()> {
        let mut found: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, cell) in header.iter().enumerate() {
            let text = header_text(cell);
            if !text.is_empty() {
                found.entry(text).or_default().push(i as u32);
            }
        }
        let mut columns = Vec::with_capacity(schema.columns.len());
        for c in &schema.columns {
            match found.get(c.name.trim()).map(Vec::as_slice) {
                Some([one]) => columns.push(*one),
                Some(many) => {
                    let cols: Vec<String> = many.iter().map(|c| col_letters(*c)).collect();
                    return Err(header_error(
                        self,
                        format!(
                            "the header {:?} appears in columns {} of row {}; rename all but one",
                            c.name,
                            cols.join(", "),
                            self.header_row
                        ),
                    ));
                }
                None => {
                    return Err(header_error(
                        self,
                        format!(
                            "no column of header row {} is named {:?}",
                            self.header_row, c.name
                        ),
                    ))
                }
            }
        }
        self.columns = columns;
        Ok(())
    }
}

/// A header cell's column name, as headers are matched: trimmed, `""` for a blank cell.
pub(crate) fn header_text(cell: &Json) -> String {
    match cell {
        Json::String(s) => s.trim().to_string(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn header_error(layout: &Layout, msg: String) -> Error {
    Error::new(
        ErrorKind::SchemaMismatch,
        format!("tab {:?}: {msg}", layout.title),
    )
    .with_operation("read header")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sheetsync_core::{Column, ColumnType};

    fn layout() -> Layout {
        Layout {
            sheet_id: 0,
            title: "Jon's Data".into(),
            tz: Tz::UTC,
            row_count: 1000,
            column_count: 26,
            header_row: 1,
            columns: vec![],
            header_assumed: false,
        }
    }

    #[test]
    fn letters_past_z() {
        assert_eq!(col_letters(0), "A");
        assert_eq!(col_letters(25), "Z");
        assert_eq!(col_letters(26), "AA");
        assert_eq!(col_letters(701), "ZZ");
        assert_eq!(col_letters(702), "AAA");
        assert_eq!(col_letters(18277), "ZZZ");
        assert_eq!(layout().cells(7, 26, 27), "'Jon''s Data'!AA7:AB7");
    }

    #[test]
    fn titles_come_out_of_answered_ranges() {
        assert_eq!(
            range_title("'Jon''s Data'!A1:B2").as_deref(),
            Some("Jon's Data")
        );
        assert_eq!(range_title("Sheet1!A1").as_deref(), Some("Sheet1"));
        assert_eq!(range_title("'a!b'!A1").as_deref(), Some("a!b"));
        assert_eq!(range_title("''''!A1").as_deref(), Some("'"));
        assert_eq!(range_title("A1:B2"), None);
        assert_eq!(range_title("'unclosed"), None);
        let l = layout();
        assert_eq!(
            range_title(&l.cells(3, 0, 1)).as_deref(),
            Some(l.title.as_str())
        );
    }

    #[test]
    fn header_mapping_tolerates_order_and_extras_and_names_problems() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap();
        let mut l = layout();
        l.map_header(
            &[json!("notes"), json!(" name "), json!(""), json!("id")],
            &schema,
        )
        .unwrap();
        assert_eq!(l.columns, vec![3, 1]);
        assert_eq!(l.width(), 4);
        let e = l.map_header(&[json!("id")], &schema).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
        assert!(e.to_string().contains("\"name\""), "{e}");
        let e = l
            .map_header(&[json!("id"), json!("name"), json!("id")], &schema)
            .unwrap_err();
        assert!(e.to_string().contains("columns A, C"), "{e}");
    }
}
