//! Routing the edits the Sheet reports to the tables that sync its tabs.

use std::sync::{Arc, RwLock};

use sheetsync_core::Result;

use super::payload::{ChangeType, WebhookPayload};
#[cfg(feature = "webhook")]
use super::receiver::WebhookHandler;
use crate::table::{SheetEdit, SheetTable};

impl From<&WebhookPayload> for SheetEdit {
    /// The edit a verified webhook payload reports: its rows for `EDIT`, a structural change
    /// (read everything) for inserted, removed or moved rows.
    fn from(p: &WebhookPayload) -> Self {
        SheetEdit {
            sheet_id: p.sheet_id,
            timestamp_ms: p.timestamp.min(i64::MAX as u64) as i64,
            header: p.header.clone(),
            rows: p.rows.iter().map(|r| (r.row, r.values.clone())).collect(),
            structural: p.change_type != ChangeType::Edit,
            columns: p.range.map(|r| (r.start_column, r.end_column)),
        }
    }
}

/// Hands each reported edit to every [`SheetTable`] that syncs the edited tab: one receiver
/// serves any number of mappings, and the payload becomes a [`SheetEdit`] in one place.
///
/// ```
/// use sheetsync_gsheets::webhook::{EditRouter, WebhookConfig, WebhookReceiver};
///
/// let router = EditRouter::new();
/// // router.add(sheet_table.clone()); for each mapping, before or after the receiver starts
/// let receiver = WebhookReceiver::new(WebhookConfig::new("secret"), router.handler()).unwrap();
/// # let _ = receiver;
/// ```
#[derive(Clone, Default)]
pub struct EditRouter {
    tables: Arc<RwLock<Vec<Arc<SheetTable>>>>,
}

impl EditRouter {
    /// A router with no tables yet.
    pub fn new() -> Self {
        EditRouter::default()
    }

    /// Routes the edits of `table`'s spreadsheet tab to it from now on.
    pub fn add(&self, table: Arc<SheetTable>) {
        self.tables.write().expect("router lock").push(table);
    }

    /// Gives a verified payload to the tables of its spreadsheet and tab; returns how many took
    /// it (an edit of a tab nobody syncs is no error: the Apps Script reports every tab).
    pub fn route(&self, payload: &WebhookPayload) -> Result<usize> {
        let tables: Vec<Arc<SheetTable>> = self
            .tables
            .read()
            .expect("router lock")
            .iter()
            .filter(|t| {
                let o = t.options();
                o.spreadsheet_id == payload.spreadsheet_id && o.sheet_id == payload.sheet_id
            })
            .cloned()
            .collect();
        for t in &tables {
            t.accept_edit(SheetEdit::from(payload))?;
        }
        Ok(tables.len())
    }

    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    /// The handler for a [`super::WebhookReceiver`]: every verified delivery is routed.
    pub fn handler(&self) -> WebhookHandler {
        let router = self.clone();
        Arc::new(move |p: WebhookPayload| router.route(&p).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use sheetsync_core::{Column, ColumnType, Source, TableSchema};

    use super::*;
    use crate::{ClientConfig, SheetOptions, SheetsClient};

    async fn table(client: &Arc<SheetsClient>, spreadsheet: &str, tab: i32) -> Arc<SheetTable> {
        let schema =
            TableSchema::new("t", vec![Column::new("id", ColumnType::Int)], &["id"]).unwrap();
        let opts = SheetOptions::new(spreadsheet, tab);
        Arc::new(SheetTable::new(client.clone(), opts, schema))
    }

    fn inserted_rows(spreadsheet: &str, tab: i32) -> WebhookPayload {
        let body = format!(
            r#"{{"version":1,"spreadsheetId":"{spreadsheet}","sheetId":{tab},"sheetName":"S","changeType":"INSERT_ROW","eventId":"e","timestamp":1767225600123,"user":"","header":["id"],"rows":[]}}"#
        );
        WebhookPayload::from_json(body.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn edits_reach_exactly_the_tables_of_their_tab() {
        // No request is made: an edit only feeds the table's change feed.
        let config = ClientConfig::emulator("http://127.0.0.1:9/");
        let client = Arc::new(SheetsClient::new(config).await.unwrap());
        let (a0, a1, b0) = (
            table(&client, "a", 0).await,
            table(&client, "a", 1).await,
            table(&client, "b", 0).await,
        );
        let router = EditRouter::new();
        for t in [&a0, &a1, &b0] {
            router.add(t.clone());
        }
        assert_eq!(router.route(&inserted_rows("a", 1)).unwrap(), 1);
        // Inserted rows shift positions: the table that took the edit asks for a full read.
        let asked: Vec<bool> = [&a0, &a1, &b0]
            .iter()
            .map(|t| t.full_scan_requested())
            .collect();
        assert_eq!(asked, [false, true, false]);
        assert_eq!(router.route(&inserted_rows("c", 0)).unwrap(), 0);
        router.route(&inserted_rows("b", 0)).unwrap();
        assert!(b0.full_scan_requested());
    }
}
