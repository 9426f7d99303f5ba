//! Building an [`Engine`]: checking the sides against each other and the mapping, and loading
//! the state.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use tokio::sync::{broadcast, Mutex, Notify};

use super::{identity, Engine, EngineState};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::{KeyStrategy, MappingConfig};
use crate::model::Side;
use crate::resolve::{ConflictResolver, ResolverSpec};
use crate::state::{MappingIdentity, StateStore};
use crate::table::Table;

/// Builds an [`Engine`].
pub struct EngineBuilder {
    pub(super) mapping: MappingConfig,
    pub(super) sheet: Arc<dyn Table>,
    pub(super) db: Arc<dyn Table>,
    pub(super) store: Option<Arc<dyn StateStore>>,
    pub(super) resolver: Option<Arc<dyn ConflictResolver>>,
    pub(super) origin: Option<String>,
    pub(super) start_afresh: bool,
    pub(super) owner: Option<Arc<dyn crate::Ownership>>,
}

impl EngineBuilder {
    /// The state store (default: a new [`crate::MemoryStateStore`]).
    pub fn state(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A resolver of the host's own, used instead of the mapping's configured chain.
    pub fn resolver(mut self, resolver: impl ConflictResolver + 'static) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The origin tag the engine's writes carry (default `sheetsync:<mapping name>`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Runs the mapping only while `owner` (a lease) holds it: every state commit is fenced
    /// with its epoch (see [`StateDelta::fence`](crate::StateDelta::fence)), so once another
    /// process takes the mapping over this engine's commits fail with
    /// [`ErrorKind::NotOwner`] and change nothing; the lease is checked before each Sheet
    /// write; and [`Engine::run`] returns when it is lost. The engine keeps the lease until it
    /// is dropped.
    pub fn owner(mut self, owner: Arc<dyn crate::Ownership>) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Starts the mapping afresh: forgets its saved state (bases, cursors, conflicts, write
    /// intents, pending deletes) and records the sides it points at now. With no bases, the
    /// first cycle is a union of both sides that deletes nothing on either. This is how a
    /// mapping is re-pointed at another spreadsheet, tab or table on purpose; without it the
    /// engine refuses state that belongs to other sides ([`ErrorKind::IdentityMismatch`]).
    pub fn start_afresh(mut self) -> Self {
        self.start_afresh = true;
        self
    }

    /// Checks the sides against each other and the mapping, loads the state (refusing state
    /// that belongs to other sides), and returns the engine.
    pub async fn build(self) -> Result<Engine> {
        let schema = self.sheet.schema().clone();
        schema.check_compatible(self.db.schema())?;
        let key_names: Vec<String> = schema.key_names().iter().map(|s| s.to_string()).collect();
        if key_names != self.mapping.key {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "mapping {:?} has key {:?} but its sides use key {:?}",
                    self.mapping.name, self.mapping.key, key_names
                ),
            ));
        }
        let db_caps = self.db.capabilities();
        let resolver = match self.resolver {
            Some(r) => r,
            None => Arc::new(ResolverSpec::build_chain(
                &self.mapping.resolver_specs(),
                &schema,
            )?),
        };
        let key_strategy = self
            .mapping
            .effective_key_strategy(&schema, db_caps.generated_keys);
        if key_strategy == KeyStrategy::Database && !db_caps.generated_keys {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "mapping {:?} asks the database to generate keys, but {} cannot",
                    self.mapping.name,
                    self.db.name()
                ),
            ));
        }
        let fence = self.owner.as_ref().map(|o| o.epoch());
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(crate::state::MemoryStateStore::new()));
        let current = MappingIdentity {
            sheet: self.sheet.identity().await?,
            db: self.db.identity().await?,
        };
        let snap = if self.start_afresh {
            identity::start_afresh(&*store, &self.mapping.name, &current, fence).await?
        } else {
            store.load(&self.mapping.name).await?
        };
        let identity_to_record = identity::check(&self.mapping.name, &snap, &current)?;
        for (side, table) in [(Side::Sheet, &self.sheet), (Side::Db, &self.db)] {
            if let Some(c) = snap.cursors.get(&side) {
                table.resume(c).await?;
            }
        }
        let clock = snap.clock;
        let state = EngineState {
            identity_to_record,
            ..EngineState::from_snapshot(snap)
        };
        let (events, _) = broadcast::channel(1024);
        let engine = Engine {
            origin: self
                .origin
                .unwrap_or_else(|| format!("sheetsync:{}", self.mapping.name)),
            mapping: self.mapping,
            schema,
            sheet: self.sheet,
            db: self.db,
            store,
            resolver,
            key_strategy,
            clock: Clock::starting_after(clock),
            events,
            wake: Notify::new(),
            scan_gen: AtomicU32::new(0),
            state: Mutex::new(state),
            published: Default::default(),
            inbox: Default::default(),
            owner: self.owner,
            fence,
            lost_ownership: Default::default(),
        };
        engine.publish(&*engine.state.lock().await);
        Ok(engine)
    }
}
