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
    /// The state store (default: a new [`crate::MemoryStateStore`]). A store that outlives the
    /// engine (the SQL adapters keep theirs in the database) lets a restarted engine continue
    /// from the bases it agreed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let store = Arc::new(MemoryStateStore::new());
    /// let build = || {
    ///     Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    ///         .state(store.clone())
    ///         .build()
    /// };
    /// db.upsert(row("A-1", 5));
    /// build().await?.run_once().await?;
    /// // A new engine (a restart) on the same store: the row is known, nothing to write.
    /// assert_eq!(build().await?.run_once().await?.writes.total(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A resolver of the host's own, used instead of the mapping's configured chain.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    ///     .resolver(SideWins(Side::Db)) // the database wins every conflict
    ///     .build()
    ///     .await?;
    /// db.upsert(row("A-1", 5));
    /// engine.run_once().await?;
    /// sheet.upsert(row("A-1", 7));
    /// db.upsert(row("A-1", 9));
    /// engine.run_once().await?;
    /// assert_eq!(sheet.rows(), vec![row("A-1", 9)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn resolver(mut self, resolver: impl ConflictResolver + 'static) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The origin tag the engine's writes carry (default `sheetsync:<mapping name>`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet, db)
    ///     .origin("inventory-sync")
    ///     .build()
    ///     .await?;
    /// assert_eq!(engine.origin(), "inventory-sync");
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let store = Arc::new(MemoryStateStore::new());
    /// let mapping = MappingConfig::new("stock", &["sku"]);
    /// let build = |sheet: Arc<MemoryTable>| {
    ///     Engine::builder(mapping.clone(), sheet, db.clone()).state(store.clone())
    /// };
    /// build(sheet).build().await?.run_once().await?;
    /// // The mapping now points at another tab: its state is refused, unless on purpose.
    /// let other_tab = Arc::new(MemoryTable::sheet_like("another tab", schema));
    /// let refused = build(other_tab.clone()).build().await.err().unwrap();
    /// assert_eq!(refused.kind(), ErrorKind::IdentityMismatch);
    /// build(other_tab).start_afresh().build().await?.run_once().await?;
    /// # Ok(())
    /// # }
    /// ```
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
