//! PostgreSQL, MySQL/MariaDB and SQLite as one side of a sheetsync mapping, on [sqlx].
//!
//! Each adapter ([`PostgresTable`], [`MySqlTable`], [`SqliteTable`], behind the features
//! `postgres`, `mysql` and `sqlite`) implements sheetsync's [`Source`](sheetsync_core::Source)
//! and [`Sink`](sheetsync_core::Sink) for one table:
//!
//! * **Introspection.** Columns, types and the primary key come from the database's catalog
//!   and map to a [`TableSchema`](sheetsync_core::TableSchema); an unsupported type or a table
//!   without a primary key is an error naming it. Decimals travel as text, never through `f64`.
//! * **Change capture.** [`install`](PostgresTable::install) creates triggers that record the
//!   keys of changed rows in a change log of sheetsync's own (schema `sheetsync` on PostgreSQL,
//!   `_sheetsync_*` tables elsewhere); [`uninstall`](PostgresTable::uninstall) removes them.
//!   PostgreSQL reads the log with a gap-free `(xid8, seq)` cursor below the snapshot horizon and
//!   wakes on `LISTEN/NOTIFY`; MySQL/MariaDB consume it as a queue, deleting exactly the entries
//!   handed out once acknowledged; SQLite reads an `AUTOINCREMENT` log and polls
//!   `PRAGMA data_version`.
//! * **No echo.** The engine's write transactions carry its origin (`set_config` on PostgreSQL,
//!   `@sheetsync_origin` on MySQL, a `_sheetsync_ctx` row on SQLite); the triggers record it and
//!   the feed skips those entries.
//! * **Writes.** One transaction per batch, multi-row statements, conditional writes against
//!   the locked current rows ([`WriteOutcome::Stale`](sheetsync_core::WriteOutcome::Stale) on a
//!   mismatch), and savepoints so that a row the database refuses is
//!   [held](sheetsync_core::WriteOutcome::Held) with the database's message while the rest of the
//!   batch applies.
//! * **State.** [`PostgresStateStore`], [`MySqlStateStore`] and [`SqliteStateStore`] keep the
//!   engine's state in the same database, one transaction per delta.
//!
//! Table and column names only ever come from introspection and are quoted for the dialect;
//! values are always bound.
//!
//! # Example
//!
//! A SQLite table synced with a Sheet (here the in-memory stand-in for one):
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sheetsync_core::{Engine, MappingConfig, MemoryTable, Source};
//! use sheetsync_sql::{sqlx, SqlOptions, SqliteStateStore, SqliteTable};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("shop.db");
//! let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
//! sqlx::query("CREATE TABLE products (sku TEXT PRIMARY KEY, qty INTEGER, price DECIMAL_TEXT)")
//!     .execute(&pool)
//!     .await?;
//!
//! let db = Arc::new(SqliteTable::open(pool.clone(), "products", SqlOptions::default()).await?);
//! db.install().await?; // triggers and the change log; `uninstall()` removes them
//! let sheet = Arc::new(MemoryTable::sheet_like("sheet", db.schema().clone()));
//! let engine = Engine::builder(MappingConfig::new("products", &["sku"]), sheet.clone(), db.clone())
//!     .state(Arc::new(SqliteStateStore::new(pool.clone()).await?))
//!     .build()
//!     .await?;
//!
//! // Another program writes to the table; the next cycle brings the row to the Sheet.
//! sqlx::query("INSERT INTO products VALUES ('A-1', 5, '19.990')").execute(&pool).await?;
//! engine.run_once().await?;
//! assert_eq!(sheet.rows()[0].0[2].to_string(), "19.99");
//!
//! // The engine's own writes do not come back: nothing to do in steady state.
//! let report = engine.run_once().await?;
//! assert_eq!(report.writes.total(), 0);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, unused_imports)
)]
// Each database uses its part of the shared modules (dialects, statements, values); the crate
// docs name every database's types, which resolve with all three (as docs.rs builds).
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, rustdoc::broken_intra_doc_links)
)]
#![cfg_attr(
    all(feature = "postgres", feature = "mysql", feature = "sqlite"),
    deny(rustdoc::broken_intra_doc_links)
)]

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod adapter;
mod apply;
mod codec;
mod common;
mod dialect;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod driver;
mod error;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite")))
)]
pub mod lease;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod replicas;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod session;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod state;
mod statements;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod store_sql;
mod table;

pub use common::SqlOptions;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod any;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite")))
)]
pub use any::SqlTable;
/// The sqlx this crate is built on, for building pools of the same version.
pub use sqlx;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresTable;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use state::PostgresStateStore;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use mysql::MySqlTable;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use state::MySqlStateStore;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteTable;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use state::SqliteStateStore;
