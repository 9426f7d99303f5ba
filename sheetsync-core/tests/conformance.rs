//! The memory table passes the conformance suite in each of its capability sets.

use std::sync::Arc;

use async_trait::async_trait;
use sheetsync_core::testkit::{run_conformance, ExternalWriter, Fixture, FixtureFactory};
use sheetsync_core::{Capabilities, MemoryTable, Result, Row, RowKey, TableSchema};

struct Person(Arc<MemoryTable>);

#[async_trait]
impl ExternalWriter for Person {
    async fn upsert(&self, row: Row) -> Result<()> {
        self.0.upsert(row);
        Ok(())
    }
    async fn delete(&self, key: RowKey) -> Result<()> {
        self.0.delete(&key);
        Ok(())
    }
}

struct Memory(Capabilities);

#[async_trait]
impl FixtureFactory for Memory {
    async fn create(&self, schema: TableSchema) -> Result<Fixture> {
        let t = Arc::new(MemoryTable::with_capabilities("memory", schema, self.0));
        Ok(Fixture {
            table: t.clone(),
            external: Arc::new(Person(t)),
        })
    }
}

fn database_like() -> Capabilities {
    Capabilities {
        incremental: true,
        fetch: true,
        wakeups: true,
        generated_keys: true,
        conditional_writes: true,
        ..Capabilities::default()
    }
}

fn sheet_like() -> Capabilities {
    Capabilities {
        unkeyed_rows: true,
        ..Capabilities::default()
    }
}

/// One test per check, for each capability set.
mod database_like {
    use super::*;
    sheetsync_core::conformance_tests!(Memory(database_like()));
}

mod sheet_like {
    use super::*;
    sheetsync_core::conformance_tests!(Memory(sheet_like()));
}

#[tokio::test]
async fn database_like_memory_table() {
    let report = run_conformance(&Memory(database_like())).await;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), 10);
}

#[tokio::test]
async fn sheet_like_memory_table() {
    let report = run_conformance(&Memory(sheet_like())).await;
    assert_eq!(report.passed.len(), 6);
    assert_eq!(report.skipped.len(), 4);
}

#[tokio::test]
async fn memory_state_store() {
    sheetsync_core::testkit::run_state_store_conformance(&sheetsync_core::MemoryStateStore::new())
        .await;
}
