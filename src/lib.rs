#![doc = include_str!("../README.md")]
//!
//! # The facade
//!
//! This crate re-exports [`sheetsync_core`] (model, traits, merge, resolvers, engine) and, by
//! feature, the adapters:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `postgres`, `mysql`, `sqlite` | [`sql`] | database adapters on sqlx |
//! | `gsheets` | [`gsheets`] | the Google Sheets adapter and webhook receiver |
//! | `emulator` | [`emulator`] | the local Google Sheets API emulator |
//! | `testkit` | `testkit` | the adapter conformance suite |
//! | `full` | all of the above but `testkit` | what the reference daemon uses |
//!
//! [`SheetSync`] runs mappings under supervision ([`OnPanic`]); with `gsheets` and a database
//! feature, [`SheetSync::builder`] builds them from URLs ([`SyncConfig`]).
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
// Links to feature-gated modules resolve when those features are on (docs.rs builds with all).
#![cfg_attr(
    all(feature = "full", feature = "testkit"),
    deny(rustdoc::broken_intra_doc_links)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use sheetsync_core::*;

pub mod share;
mod supervise;
pub use share::{Placement, Seat, ShareOptions, ShareStatus};
pub use supervise::{EngineFactory, MappingHandle, OnPanic, SheetSync, Supervised};

#[cfg(all(
    feature = "gsheets",
    any(feature = "postgres", feature = "mysql", feature = "sqlite")
))]
mod sides;
/// Mappings from configuration: both sides opened from URLs (needs `gsheets` and a database).
#[cfg(all(
    feature = "gsheets",
    any(feature = "postgres", feature = "mysql", feature = "sqlite")
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "gsheets",
        any(feature = "postgres", feature = "mysql", feature = "sqlite")
    )))
)]
pub mod sync;
#[cfg(all(
    feature = "gsheets",
    any(feature = "postgres", feature = "mysql", feature = "sqlite")
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "gsheets",
        any(feature = "postgres", feature = "mysql", feature = "sqlite")
    )))
)]
pub use sync::{SheetStatusMode, SheetsConfig, SyncBuilder, SyncConfig};

/// PostgreSQL, MySQL/MariaDB and SQLite adapters.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite")))
)]
pub use sheetsync_sql as sql;

/// The Google Sheets adapter.
#[cfg(feature = "gsheets")]
#[cfg_attr(docsrs, doc(cfg(feature = "gsheets")))]
pub use sheetsync_gsheets as gsheets;

/// The Google Sheets API emulator.
#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub use sheetsync_emulator as emulator;
