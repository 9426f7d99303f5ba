//! sheetsync keeps a Google Sheet tab and a SQL table in two-way, near-real-time sync.
//!
//! This facade re-exports [`sheetsync_core`] (model, traits, merge, resolvers, engine) and, by
//! feature, the adapters:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `postgres`, `mysql`, `sqlite` | [`sql`] | database adapters on sqlx |
//! | `gsheets` | [`gsheets`] | the Google Sheets adapter and webhook receiver |
//! | `emulator` | [`emulator`] | the local Google Sheets API emulator |
//! | `testkit` | `testkit` | the adapter conformance suite |
//! | `full` | all of the above but `testkit` | what the reference daemon uses |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use sheetsync_core::*;

/// PostgreSQL, MySQL/MariaDB and SQLite adapters.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use sheetsync_sql as sql;

/// The Google Sheets adapter.
#[cfg(feature = "gsheets")]
pub use sheetsync_gsheets as gsheets;

/// The Google Sheets API emulator.
#[cfg(feature = "emulator")]
pub use sheetsync_emulator as emulator;
