//! A [`StateStore`] in memory: for tests, examples and hosts that accept a full re-sync (a
//! three-way merge with no base) after a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{StateDelta, StateSnapshot, StateStore};
use crate::error::Result;

/// Keeps state in memory, shared by clones of the same `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    mappings: Mutex<HashMap<String, StateSnapshot>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of what is stored for `mapping`.
    pub fn snapshot(&self, mapping: &str) -> StateSnapshot {
        self.mappings
            .lock()
            .expect("state store lock poisoned")
            .get(mapping)
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
        Ok(self.snapshot(mapping))
    }

    async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
        self.commit_now(mapping, delta);
        Ok(())
    }

    /// This store, by address: a [`MemoryTable`](crate::MemoryTable) made
    /// [transactional](crate::MemoryTable::commit_state_to) with it commits into it.
    fn location(&self) -> Option<String> {
        Some(format!("memory:{:p}", self as *const Self))
    }
}

impl MemoryStateStore {
    /// Commits at once (the store never waits).
    pub(crate) fn commit_now(&self, mapping: &str, delta: &StateDelta) {
        let mut m = self.mappings.lock().expect("state store lock poisoned");
        delta.apply_to(m.entry(mapping.to_string()).or_default());
    }
}
