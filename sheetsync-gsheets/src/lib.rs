//! The Google Sheets side of sheetsync: one tab of a spreadsheet as a [`Source`] and [`Sink`]
//! that keeps to Google's quotas, plus the signed webhook that brings a person's edits in
//! without reading the Sheet.
//!
//! * [`SheetsClient`]: `google-sheets4` with a per-minute read and write budget, exponential
//!   backoff with jitter on 429, 5xx and timeouts, and call counters by method.
//! * [`SheetTable`]: reads in chunks sized to a cell budget (skipped while the Drive `version`
//!   is unchanged), maps the header row to columns by name, converts cells exactly
//!   ([`convert`]), and writes each cycle in at most one `values.batchUpdate`, one
//!   `deleteDimension` batch and one `values.append`, in `RAW` so database text never becomes a
//!   formula.
//! * `webhook` (feature `webhook`): the receiver for the Apps Script trigger shipped in
//!   `apps-script/sheetsync.gs`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sheetsync_core::{Column, ColumnType, TableSchema};
//! use sheetsync_gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};
//!
//! # async fn demo() -> sheetsync_core::Result<()> {
//! let client = Arc::new(SheetsClient::new(ClientConfig::emulator("http://127.0.0.1:8080/")).await?);
//! let schema = TableSchema::new(
//!     "orders",
//!     vec![Column::new("id", ColumnType::Int), Column::new("total", ColumnType::Decimal)],
//!     &["id"],
//! )?;
//! let sheet = SheetTable::new(client, SheetOptions::new("1AbC...", 0), schema);
//! # let _ = sheet; Ok(()) }
//! ```
//!
//! [`Source`]: sheetsync_core::Source
//! [`Sink`]: sheetsync_core::Sink
#![deny(missing_docs)]

mod client;
pub mod convert;
mod layout;
pub mod quota;
mod table;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use client::{encode_range, Access, Auth, ClientConfig, SheetsClient, TokenProvider};
pub use layout::{col_letters, quote_title, Layout};
pub use table::{SheetEdit, SheetOptions, SheetTable};
