//! The database side of a mapping, opened from a URL.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sheetsync_core::{
    Capabilities, ChangeBatch, Cursor, Observation, Result, RowKey, Sink, Source, StateStore,
    Table, TableSchema, TransactionalSink, WriteContext, WriteOp, WriteOutcome,
};
use sheetsync_sql::{SqlOptions, SqlTable};

/// The database side of a mapping: any of the SQL adapters, chosen by the URL's scheme.
#[derive(Clone)]
pub struct DbTable(Arc<SqlTable>, Arc<Located>);

impl DbTable {
    /// Connects and introspects the table; with `columns`, only those columns sync.
    pub async fn open(url: &str, table: &str, columns: Option<Vec<String>>) -> Result<DbTable> {
        let options = SqlOptions {
            columns,
            ..SqlOptions::default()
        };
        let t = SqlTable::connect(url, table, options)
            .await
            .map(Arc::new)
            .map_err(|e| {
                e.with_context("database", redact(url))
                    .with_context("table", table.to_string())
            })?;
        let located = Arc::new(Located {
            identity: format!("{} {}", db_location(url), t.name()),
            inner: t.clone(),
        });
        Ok(DbTable(t, located))
    }

    /// The adapter, saying where it is: server, database and table (see [`Located`]).
    pub fn table(&self) -> Arc<dyn Table> {
        self.1.clone()
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

/// Where a database is, for a mapping's identity: the URL without credentials and options
/// (`postgres://db.internal:5432/shop`), or the SQLite file's absolute path.
pub fn db_location(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.find("://") {
        Some(s) => {
            let rest = &url[s + 3..];
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let scheme = &url[..s];
            if scheme.eq_ignore_ascii_case("sqlite") {
                sqlite_file(rest)
            } else {
                format!("{scheme}://{rest}")
            }
        }
        None => sqlite_file(url.trim_start_matches("sqlite:")),
    }
}

fn sqlite_file(path: &str) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    format!("sqlite://{}", abs.display())
}

/// A database table that names its server and database in its identity, which the SQL adapters
/// alone do not (their identity is the schema and table). Everything else is the adapter's.
pub struct Located {
    inner: Arc<SqlTable>,
    identity: String,
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Source for Located {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn identity(&self) -> Result<String> {
        Ok(self.identity.clone())
    }
    fn schema(&self) -> &TableSchema {
        self.inner.schema()
    }
    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        self.inner.scan()
    }
    async fn cursor(&self) -> Result<Option<Cursor>> {
        self.inner.cursor().await
    }
    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        self.inner.changes(since, limit).await
    }
    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        self.inner.fetch(keys).await
    }
    async fn resume(&self, saved: &Cursor) -> Result<()> {
        self.inner.resume(saved).await
    }
    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        self.inner.ack(cursor).await
    }
    fn full_scan_requested(&self) -> bool {
        self.inner.full_scan_requested()
    }
    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        self.inner.wakeups()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Sink for Located {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        self.inner.apply(ops, ctx).await
    }
    /// The database's writes and the engine's state commit in one transaction.
    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        self.inner.transactional()
    }
    async fn annotate(&self, notices: &[sheetsync_core::RowNotice]) -> Result<()> {
        self.inner.annotate(notices).await
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

    #[test]
    fn database_locations_leave_out_credentials_and_options() {
        assert_eq!(
            db_location("postgres://app:hunter2@db:5432/shop?sslmode=require"),
            "postgres://db:5432/shop"
        );
        assert_eq!(
            db_location("mysql://root@127.0.0.1:3306/test"),
            "mysql://127.0.0.1:3306/test"
        );
        let dir = std::env::temp_dir();
        let abs = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            db_location(&format!("sqlite://{}?mode=rwc", dir.display())),
            format!("sqlite://{}", abs.display())
        );
    }
}
