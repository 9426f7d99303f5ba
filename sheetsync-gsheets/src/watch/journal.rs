//! The edit journal tab (`docs/journal.md`): reading its entries, and trimming the ones the
//! engine has committed.

use google_sheets4::api::{
    AddProtectedRangeRequest, AddSheetRequest, BatchUpdateSpreadsheetRequest,
    DeleteDimensionRequest, DimensionRange, GridRange, ProtectedRange, Request, SheetProperties,
    ValueRange,
};
use serde_json::Value as Json;
use sheetsync_core::{ErrorKind, Result};

use crate::client::SheetsClient;
use crate::layout::quote_title;
use crate::webhook::WebhookPayload;

/// The journal tab's title.
pub const JOURNAL_TAB: &str = "_sheetsync_journal";

/// One entry row of the journal.
#[derive(Debug)]
pub(super) struct Entry {
    /// The 1-based row it is in.
    pub row: u32,
    /// Its sequence number.
    pub seq: u64,
    /// The edit it reports, or why it could not be read.
    pub payload: std::result::Result<WebhookPayload, String>,
}

/// What one read of the journal found.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// The journal's id (`C1`): another id means another journal.
    pub id: Option<String>,
    /// The entries, in row order.
    pub entries: Vec<Entry>,
}

/// The journal's header and entries from row 2 on, as a read of `A1:D` returns them.
pub(super) fn parse(rows: &[Vec<Json>]) -> Journal {
    let id = rows
        .first()
        .and_then(|h| h.get(2))
        .and_then(|c| c.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let entries = rows
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, cells)| entry(i as u32 + 1, cells))
        .collect();
    Journal { id, entries }
}

/// An entry row, or `None` for a blank one (left by a trim racing an append).
fn entry(row: u32, cells: &[Json]) -> Option<Entry> {
    let seq = cells.first().and_then(seq_of)?;
    let payload = match cells.get(1) {
        Some(Json::String(body)) => {
            WebhookPayload::from_json(body.as_bytes()).map_err(|e| e.to_string())
        }
        other => Err(format!(
            "column B holds {other:?}, not an entry's JSON text"
        )),
    };
    Some(Entry { row, seq, payload })
}

fn seq_of(cell: &Json) -> Option<u64> {
    match cell {
        Json::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                .map(|f| f as u64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The last row of the journal's committed beginning: the entries from row 2 down whose seqs
/// are all at most `consumed`. `None` when the first entry is not consumed yet.
pub(super) fn trim_upto(journal: &Journal, consumed: u64) -> Option<u32> {
    journal
        .entries
        .iter()
        .take_while(|e| e.seq <= consumed)
        .last()
        .map(|e| e.row)
}

/// Reads the whole journal (header included; it holds only what was not trimmed yet, and the
/// script stops appending at its cap); `None` when the spreadsheet has no journal tab.
pub(super) async fn read(client: &SheetsClient, spreadsheet: &str) -> Result<Option<Journal>> {
    let range = format!("{}!A1:D", quote_title(JOURNAL_TAB));
    match client
        .batch_get(spreadsheet, &[range], "UNFORMATTED_VALUE")
        .await
    {
        Ok(got) => Ok(Some(parse(
            &got.into_iter()
                .next()
                .and_then(|v| v.values)
                .unwrap_or_default(),
        ))),
        // A range naming a tab that does not exist is a 400: find out whether that is it.
        Err(e) if e.kind() == ErrorKind::InvalidData => match tab_id(client, spreadsheet).await? {
            None => Ok(None),
            Some(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Whether the spreadsheet has the journal tab (for `check`).
pub async fn journal_exists(client: &SheetsClient, spreadsheet: &str) -> Result<bool> {
    Ok(tab_id(client, spreadsheet).await?.is_some())
}

/// The journal tab's sheetId, if the spreadsheet has one.
pub(super) async fn tab_id(client: &SheetsClient, spreadsheet: &str) -> Result<Option<i32>> {
    let ss = client
        .get_spreadsheet(spreadsheet, "sheets.properties(sheetId,title)")
        .await?;
    Ok(ss
        .sheets
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.properties)
        .find(|p| p.title.as_deref() == Some(JOURNAL_TAB))
        .map(|p| p.sheet_id.unwrap_or(0)))
}

/// Deletes rows 2 ..= `upto` of the journal tab (one `deleteDimension`). Only this process
/// deletes journal rows and the script only appends below them, so they are still the rows
/// that were read; if they were not (a person sorted the tab), the seqs that follow skip and
/// the next read finds out.
pub(super) async fn trim(
    client: &SheetsClient,
    spreadsheet: &str,
    tab: i32,
    upto: u32,
) -> Result<()> {
    let request = Request {
        delete_dimension: Some(DeleteDimensionRequest {
            range: Some(DimensionRange {
                sheet_id: Some(tab),
                dimension: Some("ROWS".into()),
                start_index: Some(1),
                end_index: Some(upto as i32),
            }),
        }),
        ..Default::default()
    };
    client
        .batch_update(
            spreadsheet,
            BatchUpdateSpreadsheetRequest {
                requests: Some(vec![request]),
                ..Default::default()
            },
        )
        .await
}

/// Makes the journal tab (hidden, its header row written, protected with a warning) unless the
/// spreadsheet has one; returns whether it made it. The header's id is new, so a reader of an
/// earlier journal of this spreadsheet reads the Sheet in full once.
pub async fn create_journal(client: &SheetsClient, spreadsheet: &str) -> Result<bool> {
    if tab_id(client, spreadsheet).await?.is_some() {
        return Ok(false);
    }
    let tab = rand::random::<u16>() as i32 + 1_000_000;
    let add = Request {
        add_sheet: Some(AddSheetRequest {
            properties: Some(SheetProperties {
                sheet_id: Some(tab),
                title: Some(JOURNAL_TAB.into()),
                hidden: Some(true),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let protect = Request {
        add_protected_range: Some(AddProtectedRangeRequest {
            protected_range: Some(ProtectedRange {
                range: Some(GridRange {
                    sheet_id: Some(tab),
                    ..Default::default()
                }),
                description: Some("sheetsync's edit journal: written by the Apps Script, read and trimmed by sheetsync. Do not edit.".into()),
                warning_only: Some(true),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let requests = vec![add, protect];
    client
        .batch_update(
            spreadsheet,
            BatchUpdateSpreadsheetRequest {
                requests: Some(requests),
                ..Default::default()
            },
        )
        .await?;
    let id = format!("{:032x}", rand::random::<u128>());
    let header = ValueRange {
        range: Some(format!("{}!A1:D1", quote_title(JOURNAL_TAB))),
        major_dimension: Some("ROWS".into()),
        values: Some(vec![vec![
            Json::from("seq"),
            Json::from("entry"),
            Json::from(id),
            Json::from(1),
        ]]),
    };
    client
        .batch_update_values(spreadsheet, vec![header])
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(seq: u64) -> Json {
        Json::String(format!(
            r#"{{"version":1,"spreadsheetId":"s","sheetId":0,"sheetName":"Items","changeType":"INSERT_ROW","eventId":"e{seq}","timestamp":1767225600123,"user":"","header":["id"],"rows":[]}}"#
        ))
    }

    #[test]
    fn entries_are_read_in_order_skipping_blank_rows() {
        let rows = vec![
            vec![json!("seq"), json!("entry"), json!("j-1"), json!(4)],
            vec![json!(1), body(1)],
            vec![],
            vec![json!(""), json!("")],
            vec![json!(2.0), body(2)],
            vec![json!("3"), json!("{not json")],
        ];
        let j = parse(&rows);
        assert_eq!(j.id.as_deref(), Some("j-1"));
        let seen: Vec<(u32, u64, bool)> = j
            .entries
            .iter()
            .map(|e| (e.row, e.seq, e.payload.is_ok()))
            .collect();
        assert_eq!(seen, [(2, 1, true), (5, 2, true), (6, 3, false)]);
        assert_eq!(trim_upto(&j, 0), None);
        assert_eq!(trim_upto(&j, 1), Some(2));
        assert_eq!(trim_upto(&j, 2), Some(5));
        assert_eq!(trim_upto(&j, 9), Some(6));
    }

    #[test]
    fn a_journal_without_a_header_has_no_id() {
        let j = parse(&[]);
        assert!(j.id.is_none() && j.entries.is_empty());
        let j = parse(&[vec![json!("seq"), json!("entry")]]);
        assert!(j.id.is_none());
    }
}
