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
//!
//! In an adapter's test file, `sheetsync_core::conformance_tests!(Memory);` instead makes one
//! test per check ([`CHECKS`]), so every failing check is reported, each by name.

mod conformance;
mod state;
mod strategies;

pub use conformance::{
    changes_since_cursor, conditional_writes, conformance_schema, engine_roundtrip, generated_keys,
    held_row_does_not_block_batch, idempotent_reapply, run_check, run_conformance, scan_empty,
    undeclared_capabilities, update_and_delete, upsert_roundtrip, wakeups, Check, CheckFn,
    ConformanceReport, ExternalWriter, Fixture, FixtureFactory, Outcome, CHECKS,
};

/// One `#[tokio::test]` per conformance check ([`CHECKS`]), named after the check, for the
/// fixture factory that `$factory` evaluates to (inside each test, so it may `.await`). A check
/// whose capability the adapter does not declare passes and says so on stderr: pair it with a
/// test of [`undeclared_capabilities`]. In a test file, inside a module of its own so the
/// test names read `conformance::scan_empty`: `sheetsync_core::conformance_tests!(factory().await);`
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@checks ($factory)
            scan_empty upsert_roundtrip update_and_delete idempotent_reapply
            held_row_does_not_block_batch conditional_writes changes_since_cursor generated_keys
            wakeups engine_roundtrip);
    };
    (@checks ($factory:expr) $($check:ident)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let factory = $factory;
                $crate::testkit::run_check(stringify!($check), &factory).await;
            }
        )*
    };
}
pub use state::run_state_store_conformance;
pub use strategies::{arb_row, arb_value, arb_value_of};
