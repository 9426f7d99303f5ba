//! SQL adapters for sheetsync.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code, unused_imports))]

mod apply;
mod common;
#[cfg_attr(not(all(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code))]
mod dialect;
mod error;
mod state;

pub use common::SqlOptions;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresTable;
#[cfg(feature = "postgres")]
pub use state::PostgresStateStore;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "mysql")]
pub use mysql::MySqlTable;
#[cfg(feature = "mysql")]
pub use state::MySqlStateStore;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteTable;
#[cfg(feature = "sqlite")]
pub use state::SqliteStateStore;
