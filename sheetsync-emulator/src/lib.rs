//! A faithful local emulator of the Google Sheets API v4 (plus a small Drive v3 subset).
//!
//! It serves plain HTTP/1.1 on loopback with the same paths as `https://sheets.googleapis.com/`
//! and `https://www.googleapis.com/drive/v3/`, so every real client (google-sheets4, gspread,
//! google-api-python-client, node googleapis) works once pointed at its base URL. Behaviour
//! follows `docs/sheets-api-v4.md` of the sheetsync project: raw-path routing, A1 parsing,
//! normalised ranges, trimming, render/input options, formulas, Google's error bodies, quotas.
//!
//! On top of the Google surface there is a control surface for tests (under `/__emulator/`
//! and on [`EmulatorHandle`]): person edits that fire registered webhooks the way installable
//! Apps Script triggers do, or append to the spreadsheet's hidden edit journal the way the
//! script does in journal mode ([`journal`]), latency and fault injection, request counters,
//! quotas and reset.
//!
//! For race and fault tests:
//! * [`FaultKind`]s that refuse a request (`Status`, `Drop`), delay it (`Delay`), run it and
//!   then lose its answer (`DropAfter`: the connection closes unanswered; `StatusAfter`: a 5xx
//!   with Google's body), or answer a read short (`Truncate`: the last value range of a
//!   `values.get`/`values.batchGet` loses its last rows). Rules match the next N requests or a
//!   rate, optionally only method ids containing a text ([`FaultRule`]).
//! * Person edits scheduled around the Nth request matching a method
//!   ([`EmulatorHandle::schedule_edit`], [`EditTrigger`], [`When`]): applied just before the
//!   request runs, or right after its effect and before its answer. They fire triggers and move
//!   the Drive version like any person edit ([`schedule`]).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> std::io::Result<()> {
//! use sheetsync_emulator::{Config, EditTrigger, EmulatorHandle, FaultRule, PersonEdit};
//!
//! let emu = EmulatorHandle::start(Config::default()).await?;
//! let id = emu.create_spreadsheet("Races").expect("created");
//! // The next values.update is applied, then its connection is dropped unanswered.
//! emu.inject_fault(FaultRule::drop_after_next(1).for_method("values.update"));
//! // The next values.batchGet answer misses the last 2 rows of its last range.
//! emu.inject_fault(FaultRule::truncate_next(2, 1).for_method("values.batchGet"));
//! // Right after the second values.batchGet (before its answer), a person sorts the data.
//! let trigger = EditTrigger::after("values.batchGet").nth(2);
//! let sort = PersonEdit::SortRange { range: "Sheet1!A2:C100".into(), column: 1, ascending: true };
//! emu.schedule_edit(&id, trigger, sort).expect("scheduled");
//! assert_eq!(emu.scheduled_edits().len(), 1);
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sheetsync_emulator::{Config, EmulatorHandle};
//!
//! let emu = EmulatorHandle::start(Config::default()).await?;
//! assert!(emu.base_url().starts_with("http://127.0.0.1:"));
//! let id = emu.create_spreadsheet("Demo").expect("created");
//! emu.set_cells(&id, "Sheet1!A1", vec![vec!["name".into(), "qty".into()]])
//!     .expect("edited like a person");
//! let values = emu.read_values(&id, "Sheet1!A1:B1").expect("read");
//! assert_eq!(values, serde_json::json!([["name", "qty"]]));
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Modules depend only on modules below them (no import cycles):
//! * the HTTP server (`server`) and the [`EmulatorHandle`], on top;
//! * [`api`], the Google surface (routing, checks, quotas, faults, handlers; `api::batch` has
//!   one file per family of `batchUpdate` request), and [`control`], the test surface under
//!   `/__emulator/` (person edits are applied in `person`, which hands journal triggers'
//!   entries to [`journal`]);
//! * the shared state (configuration, spreadsheets, counters, logs);
//! * [`schedule`], [`triggers`], [`faults`], [`quota`] and [`edit`] (a person edit, as data);
//! * [`values`] (input parsing, formatting, formulas, rendering, reference shifting, grid
//!   operations), [`model`], [`a1`] and the error type.
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod a1;
pub mod api;
mod config;
pub mod control;
pub mod edit;
mod error;
pub mod faults;
mod handle;
pub mod journal;
pub mod model;
mod person;
pub mod quota;
pub mod schedule;
mod server;
mod state;
pub mod triggers;
mod util;
pub mod values;

pub use config::Config;
pub use edit::PersonEdit;
pub use error::ApiError;
pub use faults::{FaultKind, FaultRule, Latency};
pub use handle::EmulatorHandle;
pub use model::Spreadsheet;
pub use quota::QuotaConfig;
pub use schedule::{EditTrigger, FiredEdit, ScheduledEdit, When};
pub use state::RequestRecord;
pub use triggers::{Delivery, JournalSpec, Registration, TriggerSpec};
