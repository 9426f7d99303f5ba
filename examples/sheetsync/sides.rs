//! Opening the two sides of a mapping from configuration.

use std::sync::Arc;

use sheetsync::gsheets::{Auth, ClientConfig, SheetOptions, SheetTable, SheetsClient};
use sheetsync::sql::{SqlOptions, SqlTable};
use sheetsync::{Error, ErrorKind, Result, Source, StateStore, Table, TableSchema};

use crate::config::{MappingEntry, SheetsConfig};

/// The database side of a mapping: any of the SQL adapters, chosen by the URL's scheme.
#[derive(Clone)]
pub struct DbTable(Arc<SqlTable>);

impl DbTable {
    /// Connects and introspects the table; with `columns`, only those columns sync.
    pub async fn open(url: &str, table: &str, columns: Option<Vec<String>>) -> Result<DbTable> {
        let options = SqlOptions {
            columns,
            ..SqlOptions::default()
        };
        SqlTable::connect(url, table, options)
            .await
            .map(|t| DbTable(Arc::new(t)))
            .map_err(|e| {
                e.with_context("database", redact(url))
                    .with_context("table", table.to_string())
            })
    }

    /// The adapter.
    pub fn table(&self) -> Arc<dyn Table> {
        self.0.clone()
    }

    /// The table's schema as introspected.
    pub fn schema(&self) -> TableSchema {
        self.0.schema().clone()
    }

    /// What introspection found that the adapter cannot make exact (SQLite's numeric
    /// affinity), one sentence per column.
    pub fn warnings(&self) -> &[String] {
        self.0.warnings()
    }

    /// The state store in the same database.
    pub async fn state_store(&self) -> Result<Arc<dyn StateStore>> {
        self.0.state_store().await
    }

    /// Installs change capture (idempotent).
    pub async fn install(&self) -> Result<()> {
        self.0.install().await
    }

    /// Removes change capture.
    pub async fn uninstall(&self) -> Result<()> {
        self.0.uninstall().await
    }

    /// Whether change capture is installed.
    pub async fn is_installed(&self) -> Result<bool> {
        self.0.is_installed().await
    }
}

/// The URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The Sheets client for the configuration.
pub async fn sheets_client(cfg: &SheetsConfig) -> Result<Arc<SheetsClient>> {
    let google = cfg.base_url.starts_with("https://sheets.googleapis.com");
    let auth = match &cfg.credentials {
        Some(path) => Auth::service_account_file(path).await?,
        None if google => {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "talking to Google needs credentials: set sheets.credentials (or SHEETSYNC_CREDENTIALS) to a service-account key file",
            ))
        }
        None => Auth::None,
    };
    let config = ClientConfig {
        sheets_url: cfg.base_url.clone(),
        drive_url: cfg.drive_url.clone().unwrap_or_else(|| {
            if google {
                "https://www.googleapis.com/".into()
            } else {
                cfg.base_url.clone()
            }
        }),
        auth,
        reads_per_minute: cfg.reads_per_minute,
        writes_per_minute: cfg.writes_per_minute,
        ..ClientConfig::default()
    };
    Ok(Arc::new(SheetsClient::new(config).await?))
}

/// The mapping's column list, when it names one.
pub fn mapped_columns(m: &MappingEntry) -> Option<Vec<String>> {
    (!m.sync.columns.is_empty()).then(|| m.sync.columns.iter().map(|c| c.name.clone()).collect())
}

/// Both sides of one mapping, ready for an engine.
pub struct Sides {
    /// The mapping's schema (the database columns the mapping selects, with directions).
    pub schema: TableSchema,
    /// The Sheet.
    pub sheet: Arc<SheetTable>,
    /// The database.
    pub db: DbTable,
}

/// Opens both sides of `m`.
pub async fn open(m: &MappingEntry, client: Arc<SheetsClient>) -> Result<Sides> {
    let db = DbTable::open(&m.database_url, &m.table, mapped_columns(m)).await?;
    // The database side already carries exactly the mapped columns, in the mapping's order.
    let schema = m.sync.schema_from(&db.schema())?;
    let mut opts = SheetOptions::new(&m.spreadsheet_id, m.sheet_id);
    opts.header_row = m.header_row;
    let sheet = Arc::new(SheetTable::new(client, opts, schema.clone()));
    Ok(Sides { schema, sheet, db })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
