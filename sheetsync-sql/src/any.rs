//! One type for a table of whichever enabled database a URL names, for hosts that pick the
//! database from configuration.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sheetsync_core::{
    Capabilities, ChangeBatch, Cursor, Error, ErrorKind, Observation, Result, RowKey, Sink, Source,
    StateStore, TableSchema, TransactionalSink, WriteContext, WriteOp, WriteOutcome,
};

use crate::common::SqlOptions;

/// A table of any enabled database, chosen by the URL's scheme: `postgres://` or
/// `postgresql://`, `mysql://` or `mariadb://`, `sqlite:` (or a plain file path).
pub enum SqlTable {
    /// A PostgreSQL table.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(crate::PostgresTable),
    /// A MySQL or MariaDB table.
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    MySql(crate::MySqlTable),
    /// A SQLite table.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(crate::SqliteTable),
}

macro_rules! each {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "postgres")]
            SqlTable::Postgres($t) => $body,
            #[cfg(feature = "mysql")]
            SqlTable::MySql($t) => $body,
            #[cfg(feature = "sqlite")]
            SqlTable::Sqlite($t) => $body,
        }
    };
}

impl SqlTable {
    /// Connects to `url` and opens `table`. On PostgreSQL, `schema.table` names a table outside
    /// the current schema (use [`crate::PostgresTable::open`] for names that contain a dot).
    pub async fn connect(url: &str, table: &str, options: SqlOptions) -> Result<SqlTable> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                let pool = crate::postgres::connect_pool(url).await?;
                let (schema, name) = match table.split_once('.') {
                    Some((s, t)) if !t.contains('.') => (Some(s), t),
                    _ => (None, table),
                };
                Ok(SqlTable::Postgres(crate::PostgresTable::open(pool, schema, name, options).await?))
            }
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb:", "mysql:", 1);
                let pool = crate::mysql::connect_pool(&url).await?;
                Ok(SqlTable::MySql(crate::MySqlTable::open(pool, table, options).await?))
            }
            #[cfg(feature = "sqlite")]
            _ if scheme == "sqlite" || !url.contains("://") => {
                let pool = crate::sqlite::connect_pool(url).await?;
                Ok(SqlTable::Sqlite(crate::SqliteTable::open(pool, table, options).await?))
            }
            _ => Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no enabled sheetsync-sql adapter for {scheme:?} URLs (features: postgres, mysql, sqlite)"
                ),
            )),
        }
    }

    /// Installs change capture (see the adapter's `install`).
    pub async fn install(&self) -> Result<()> {
        each!(self, t => t.install().await)
    }

    /// Removes change capture (see the adapter's `uninstall`).
    pub async fn uninstall(&self) -> Result<()> {
        each!(self, t => t.uninstall().await)
    }

    /// True when change capture is installed for this table.
    pub async fn is_installed(&self) -> Result<bool> {
        each!(self, t => t.is_installed().await)
    }

    /// What introspection found that the adapter cannot make exact, one sentence per column
    /// (SQLite's numeric affinity; see [`crate::SqliteTable::warnings`]). Hosts should show
    /// them, as the reference daemon's `check` does.
    pub fn warnings(&self) -> &[String] {
        each!(self, t => t.warnings())
    }

    /// A state store in the same database, through the same pool (creating its tables).
    pub async fn state_store(&self) -> Result<Arc<dyn StateStore>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            SqlTable::Postgres(t) => {
                Arc::new(crate::PostgresStateStore::new(t.pool().clone()).await?)
            }
            #[cfg(feature = "mysql")]
            SqlTable::MySql(t) => Arc::new(crate::MySqlStateStore::new(t.pool().clone()).await?),
            #[cfg(feature = "sqlite")]
            SqlTable::Sqlite(t) => Arc::new(crate::SqliteStateStore::new(t.pool().clone()).await?),
        })
    }
}

// Forwarding impls: a provided method left out would silently take the trait's default
// instead of the adapter's own.
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Source for SqlTable {
    fn name(&self) -> &str {
        each!(self, t => t.name())
    }

    async fn identity(&self) -> Result<String> {
        each!(self, t => t.identity().await)
    }

    fn capabilities(&self) -> Capabilities {
        each!(self, t => t.capabilities())
    }

    fn schema(&self) -> &TableSchema {
        each!(self, t => t.schema())
    }

    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        each!(self, t => t.scan())
    }

    async fn cursor(&self) -> Result<Option<Cursor>> {
        each!(self, t => t.cursor().await)
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        each!(self, t => t.changes(since, limit).await)
    }

    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        each!(self, t => t.fetch(keys).await)
    }

    async fn resume(&self, saved: &Cursor) -> Result<()> {
        each!(self, t => t.resume(saved).await)
    }

    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        each!(self, t => t.ack(cursor).await)
    }

    fn full_scan_requested(&self) -> bool {
        each!(self, t => t.full_scan_requested())
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        each!(self, t => t.wakeups())
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Sink for SqlTable {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        each!(self, t => t.apply(ops, ctx).await)
    }

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        each!(self, t => t.transactional())
    }

    async fn annotate(&self, notices: &[sheetsync_core::RowNotice]) -> Result<()> {
        each!(self, t => t.annotate(notices).await)
    }
}
