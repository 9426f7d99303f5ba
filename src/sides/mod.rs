//! What a [`SheetSync`](crate::SheetSync) built from configuration keeps of its mappings: each
//! mapping's two sides and the Sheets side they share. Only the types live here, below the
//! supervisor that holds them; [`crate::sync`], which builds on the supervisor, opens them.

pub(crate) mod db;

use std::sync::Arc;

use sheetsync_core::{MappingConfig, TableSchema};
use sheetsync_gsheets::watch::Watcher;
use sheetsync_gsheets::webhook::EditRouter;
use sheetsync_gsheets::{SheetTable, SheetsClient};

use db::DbTable;

/// Both sides of one mapping, ready for an engine.
#[derive(Clone)]
pub struct Sides {
    /// The mapping with its key filled in from the database when it named none.
    pub mapping: MappingConfig,
    /// The mapping's schema (the database columns the mapping selects, with directions).
    pub schema: TableSchema,
    /// The Sheet.
    pub sheet: Arc<SheetTable>,
    /// The database.
    pub db: DbTable,
}

/// The Sheets side a [`SheetSync`](crate::SheetSync) built from configuration shares: one
/// client, one router of reported edits, and each mapping's sides.
pub(crate) struct SheetsSide {
    pub(crate) client: Arc<SheetsClient>,
    pub(crate) router: EditRouter,
    pub(crate) sides: Vec<Sides>,
    /// One change watcher per spreadsheet.
    pub(crate) watchers: Vec<Arc<Watcher>>,
}

impl SheetsSide {
    /// Runs every spreadsheet's watcher until `stop` turns true.
    pub(crate) fn spawn_watchers(
        &self,
        stop: &tokio::sync::watch::Sender<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.watchers
            .iter()
            .map(|w| {
                let (w, mut stop) = (w.clone(), stop.subscribe());
                tokio::spawn(async move {
                    w.run(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
                })
            })
            .collect()
    }
}
