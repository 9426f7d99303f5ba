//! Tools for adapter authors (feature `testkit`): the conformance suite every adapter runs, the
//! state-store conformance check ([`run_state_store_conformance`]), and proptest strategies for
//! values and rows.
//!
//! An adapter's test provides a [`FixtureFactory`] that creates a fresh, empty table for a schema
//! and a way to change it as another program would ([`ExternalWriter`]); [`run_conformance`] then
//! checks the adapter against the contract of [`Source`](crate::Source) and
//! [`Sink`](crate::Sink), gated by the [`Capabilities`](crate::Capabilities) it declares.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use sheetsync_core::{testkit::*, MemoryTable, Result, Row, RowKey, TableSchema};
//!
//! struct Memory;
//! struct Person(Arc<MemoryTable>);
//!
//! #[async_trait]
//! impl ExternalWriter for Person {
//!     async fn upsert(&self, row: Row) -> Result<()> { self.0.upsert(row); Ok(()) }
//!     async fn delete(&self, key: RowKey) -> Result<()> { self.0.delete(&key); Ok(()) }
//! }
//!
//! #[async_trait]
//! impl FixtureFactory for Memory {
//!     async fn create(&self, schema: TableSchema) -> Result<Fixture> {
//!         let t = Arc::new(MemoryTable::new("memory", schema));
//!         Ok(Fixture { table: t.clone(), external: Arc::new(Person(t)) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let report = run_conformance(&Memory).await;
//! assert!(report.passed.contains(&"changes_since_cursor"));
//! # }
//! ```

mod conformance;
mod state;
mod strategies;

pub use conformance::{
    conformance_schema, run_conformance, ConformanceReport, ExternalWriter, Fixture, FixtureFactory,
};
pub use state::run_state_store_conformance;
pub use strategies::{arb_row, arb_value, arb_value_of};
