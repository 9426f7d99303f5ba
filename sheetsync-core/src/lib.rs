//! The core of sheetsync: the model, the adapter traits, the three-way merge, the conflict
//! resolvers, the state store and the engine that keeps a Google Sheet and a SQL table in sync.
//!
//! * [`Source`] and [`Sink`] are what an adapter implements (a Sheet tab, a database table, the
//!   in-memory [`MemoryTable`]); [`Capabilities`] says what it can do.
//! * [`merge_row`] is the pure three-way merge against the last agreed row; only true conflicts
//!   reach a [`ConflictResolver`].
//! * [`Engine`] runs cycles: read both sides, merge, park deletes that trip the mass-delete
//!   guard, record [`WriteIntent`]s, apply, then persist the bases in a [`StateStore`] (in the
//!   database's write transaction when the database side is a [`TransactionalSink`] into the same
//!   store). The state records which sides it belongs to ([`MappingIdentity`]) and the engine
//!   refuses state that belongs to others.
//!
//! # Example: two tables and a custom resolver
//!
//! ```
//! use std::sync::Arc;
//! use sheetsync_core::*;
//!
//! /// Conflicts on `qty` keep the larger number; every other conflict goes to the Sheet.
//! struct LargerQuantity;
//!
//! impl ConflictResolver for LargerQuantity {
//!     fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
//!         match (c.column.name.as_str(), c.sheet, c.db) {
//!             ("qty", Value::Int(s), Value::Int(d)) => {
//!                 if s >= d { Resolution::Sheet } else { Resolution::Db }
//!             }
//!             _ => Resolution::Sheet,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let schema = TableSchema::new(
//!     "stock",
//!     vec![
//!         Column::new("sku", ColumnType::Text).nullable(false),
//!         Column::new("qty", ColumnType::Int),
//!         Column::new("note", ColumnType::Text),
//!     ],
//!     &["sku"],
//! )?;
//! let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
//! let db = Arc::new(MemoryTable::new("db", schema.clone()));
//! db.upsert(Row::new(vec!["A-1".into(), 5.into(), Value::Null]));
//!
//! let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
//!     .resolver(Chain::new().then(LargerQuantity))
//!     .build()
//!     .await?;
//! engine.run_once().await?; // the database row reaches the Sheet
//! assert_eq!(sheet.rows(), db.rows());
//!
//! // Both sides change the same row: qty conflicts, note changed on one side only.
//! sheet.upsert(Row::new(vec!["A-1".into(), 7.into(), "recount".into()]));
//! db.upsert(Row::new(vec!["A-1".into(), 9.into(), Value::Null]));
//! engine.run_once().await?;
//! let expected = Row::new(vec!["A-1".into(), 9.into(), "recount".into()]);
//! assert_eq!(sheet.rows(), vec![expected.clone()]);
//! assert_eq!(db.rows(), vec![expected]);
//!
//! // Steady state: nothing to write.
//! let report = engine.run_once().await?;
//! assert_eq!(report.writes.total(), 0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
mod engine;
mod error;
pub mod mapping;
mod memory;
pub mod merge;
mod model;
pub mod ownership;
pub mod resolve;
pub mod state;
mod table;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

/// Not part of the API: the engine's internals that the benchmarks measure.
#[doc(hidden)]
pub mod __bench {
    use crate::model::{KeyMap, RowKey};
    use crate::state::RowBase;

    /// The engine's map of merge bases, built from `bases` as the engine keeps them.
    pub fn base_map(bases: impl IntoIterator<Item = (RowKey, RowBase)>) -> impl Sized {
        bases
            .into_iter()
            .map(|(k, b)| (k, crate::engine::BaseEntry::new(b)))
            .collect::<KeyMap<_>>()
    }
}

pub use clock::Clock;
pub use engine::{
    CycleReport, DeleteSelection, Engine, EngineBuilder, Event, Plan, PlannedOp, QueueChange,
    SideCounts, WriteKind,
};
pub use error::{Error, ErrorKind, ErrorStatus, Result};
pub use mapping::{ColumnSpec, DeleteGuard, KeyStrategy, MappingConfig, Timing};
pub use memory::{key_of, MemoryTable};
pub use merge::{merge_row, DeletePropagation, MergePolicy, Merged, SideState};
pub use model::{
    Change, ChangeBatch, Column, ColumnType, ConvertError, Cursor, Decimal, Direction, InvalidRow,
    KeyHashBuilder, KeyHasher, KeyMap, Observation, ParseDecimalError, Row, RowHash, RowKey, Side,
    TableSchema, UnkeyedRow, Value,
};
pub use ownership::{LeaseRecord, Ownership};
#[cfg(feature = "rules")]
#[cfg_attr(docsrs, doc(cfg(feature = "rules")))]
pub use resolve::Rule;
pub use resolve::{
    Chain, ColumnOwner, ConflictResolver, DeleteConflict, DeleteResolution, FieldConflict,
    FnResolver, Granularity, LastWriteWins, Manual, Resolution, ResolverSpec, RowConflict,
    RowResolution, RuleScope, RuleSpec, SideWins,
};
pub use state::{
    Choice, ConflictRecord, DeleteDecision, FieldDiff, HeldRow, MappingIdentity, MemoryStateStore,
    PendingDelete, RecentDeletes, RowBase, SideBefore, StateDelta, StateSnapshot, StateStore,
    WriteIntent,
};
pub use table::{
    Capabilities, Expected, RowNotice, Sink, SinkTransaction, Source, SourceExt, Table,
    TransactionalSink, WriteContext, WriteOp, WriteOutcome,
};
