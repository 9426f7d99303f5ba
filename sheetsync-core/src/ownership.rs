//! Ownership of a mapping among processes: what an engine needs from a lease so that two
//! replicas never both write one mapping.
//!
//! A lease is held through some lock manager (the SQL adapters use the database's own, see
//! `sheetsync_sql::lease`) and carries an epoch that grows with every takeover. An engine
//! built with an owner ([`EngineBuilder::owner`](crate::EngineBuilder::owner)) fences every
//! state commit with the epoch ([`StateDelta::fence`](crate::StateDelta::fence)), checks the
//! lease before each Sheet write, and leaves its loop ([`Engine::run`](crate::Engine::run))
//! as soon as the lease is lost.

use async_trait::async_trait;

use crate::error::Result;

/// A held lease on one mapping. Dropping it gives the mapping up.
#[async_trait]
pub trait Ownership: Send + Sync {
    /// The ownership epoch: later owners have larger ones.
    fn epoch(&self) -> u64;

    /// `Ok` while this process still owns the mapping, checked now (a round trip to the lock
    /// manager); [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) once it does not.
    async fn check(&self) -> Result<()>;

    /// Resolves when the lease is lost (never while it is held).
    async fn lost(&self);
}

/// Who last took a mapping's lease, as its store records it: the current owner while the
/// lease is held (the record outlives an owner that died, until the next takeover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The owner's name (host and process).
    pub owner: String,
    /// The epoch it took.
    pub epoch: u64,
}
