//! Running mappings under supervision: each engine loop in its own task, a panic caught, logged
//! with the mapping's name, counted, and answered by a restart with backoff or by stopping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sheetsync_core::{
    Choice, DeleteSelection, Engine, Error, ErrorKind, Event, PendingDelete, Result, RowKey,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::share::{Placement, Seat, Share, ShareStatus};

/// What happens when a mapping's engine panics (a bug, or a driver that panics on a value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPanic {
    /// Build the engine again from its saved state and go on, after a backoff that doubles
    /// with each panic in a row (1 s up to 1 min). The other mappings keep syncing.
    #[default]
    Restart,
    /// Stop every mapping: [`SheetSync::failed`] resolves with the panic (a daemon exits
    /// non-zero, and its service manager decides).
    Exit,
}

/// Builds a mapping's engine: at the start, and again after a panic (from the saved state,
/// which a panic mid-cycle may have left ahead of the engine in memory).
pub type EngineFactory =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Engine>> + Send>> + Send + Sync>;

/// The first wait before a restart, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// One mapping of a [`SheetSync`]: its engine while it runs here, its events across
/// restarts, where it runs, its health.
pub struct MappingHandle {
    name: String,
    on_panic: OnPanic,
    factory: EngineFactory,
    engine: RwLock<Option<Arc<Engine>>>,
    events: broadcast::Sender<Event>,
    up: AtomicBool,
    panics: AtomicU64,
    seat: Arc<Seat>,
}

impl MappingHandle {
    fn new(m: Supervised) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(MappingHandle {
            name: m.name,
            on_panic: m.on_panic,
            factory: m.factory,
            engine: RwLock::new(None),
            events,
            up: AtomicBool::new(true),
            panics: AtomicU64::new(0),
            seat: m.seat,
        })
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine running now (a restart replaces it); `None` while the mapping does not run
    /// in this process (it waits for its lease or its turn: see [`MappingHandle::placement`]).
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.read().expect("engine lock").clone()
    }

    /// Where the mapping runs: here (under which epoch), or elsewhere (and who owns it).
    pub fn placement(&self) -> Placement {
        self.seat.placement()
    }

    fn running(&self) -> Result<Arc<Engine>> {
        self.engine().ok_or_else(|| {
            let owner = match self.placement() {
                Placement::Waiting { owner: Some(o), .. } => format!(" ({} runs it, epoch {})", o.owner, o.epoch),
                _ => String::new(),
            };
            Error::new(
                ErrorKind::NotOwner,
                format!("mapping {:?} does not run in this process{owner}: ask the replica that runs it", self.name),
            )
        })
    }

    /// The mapping's [`Event`]s from now on, across restarts of its engine.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// False from a panic until the engine runs again (true while the mapping waits).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The epoch of the lease this process runs the mapping under (`None` without leases).
    pub fn epoch(&self) -> Option<u64> {
        self.engine().and_then(|e| e.ownership_epoch())
    }

    /// Panics of the mapping's engine since the start.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Rows held back now.
    pub async fn held(&self) -> Vec<sheetsync_core::HeldRow> {
        match self.engine() {
            Some(e) => e.held().await,
            None => Vec::new(),
        }
    }

    /// Conflicts kept for people now.
    pub async fn conflicts(&self) -> Vec<sheetsync_core::ConflictRecord> {
        match self.engine() {
            Some(e) => e.conflicts().await,
            None => Vec::new(),
        }
    }

    /// Resolves a kept conflict (see [`Engine::resolve_conflict`]).
    pub async fn resolve_conflict(&self, key: &RowKey, choice: Choice) -> Result<()> {
        self.running()?.resolve_conflict(key, choice).await
    }

    /// The deletes waiting for approval.
    pub async fn pending_deletes(&self) -> Vec<PendingDelete> {
        match self.engine() {
            Some(e) => e.pending_deletes().await,
            None => Vec::new(),
        }
    }

    /// Approves pending deletes (see [`Engine::approve_deletes`]); returns how many.
    pub async fn approve_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.running()?.approve_deletes(which).await
    }

    /// Rejects pending deletes (see [`Engine::reject_deletes`]); returns how many.
    pub async fn reject_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.running()?.reject_deletes(which).await
    }

    fn replace(&self, engine: Engine) {
        let engine = Arc::new(engine);
        forward(&engine, self.events.clone());
        let epoch = engine.ownership_epoch();
        *self.engine.write().expect("engine lock") = Some(engine);
        self.seat.place(Placement::Running { epoch });
    }

    /// Drops the engine (and with it the lease): the mapping no longer runs here.
    fn clear(&self) {
        self.engine.write().expect("engine lock").take();
        self.seat.place(Placement::Starting);
    }
}

/// Copies an engine's events to the mapping's channel until the engine is dropped.
fn forward(engine: &Engine, to: broadcast::Sender<Event>) {
    let mut from = engine.subscribe();
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(e) => {
                    let _ = to.send(e);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Running mappings: each engine's loop in a supervised task, with their handles.
///
/// `SheetSync::builder` (features `gsheets` and a database) opens both sides from URLs, and
/// `SyncBuilder` has an example; [`SheetSync::supervise`] runs engines built by the host, here
/// on in-memory sides. A panic of an engine restarts it from its saved state ([`OnPanic`]):
///
/// ```
/// # use std::sync::Arc;
/// # use sheetsync::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let schema = TableSchema::new(
///     "stock",
///     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
///     &["sku"],
/// )?;
/// let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
/// let db = Arc::new(MemoryTable::new("db", schema));
/// db.upsert(Row::new(vec!["bolt".into(), 10i64.into()]));
/// let store = Arc::new(MemoryStateStore::new());
/// let factory: EngineFactory = {
///     let (sheet, db) = (sheet.clone(), db.clone());
///     Arc::new(move || {
///         let mapping = MappingConfig::new("stock", &["sku"]);
///         let engine = Engine::builder(mapping, sheet.clone(), db.clone()).state(store.clone());
///         Box::pin(engine.build())
///     })
/// };
/// let sync = SheetSync::supervise(vec![Supervised::new("stock", OnPanic::Restart, factory)]).await?;
/// let mut events = sync.mapping("stock").expect("the mapping").subscribe();
/// sync.start();
/// while !matches!(events.recv().await, Ok(Event::Cycle(r)) if r.writes.total() > 0) {}
/// assert_eq!(sheet.rows(), db.rows());
/// sync.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct SheetSync {
    mappings: Vec<Arc<MappingHandle>>,
    control: Arc<Control>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    pub(crate) share: Option<Arc<Share>>,
    #[cfg(all(
        feature = "gsheets",
        any(feature = "postgres", feature = "mysql", feature = "sqlite")
    ))]
    pub(crate) sheets: Option<crate::sides::SheetsSide>,
}

/// One mapping to run: its name, what to do on a panic, and how to build its engine.
pub struct Supervised {
    /// The mapping's name (for logs and metrics).
    pub name: String,
    /// What a panic of its engine leads to.
    pub on_panic: OnPanic,
    /// Builds the engine, at the start and after a panic.
    pub factory: EngineFactory,
    /// Where the mapping runs; the factory says so while it waits for the lease.
    pub seat: Arc<Seat>,
}

impl Supervised {
    /// A mapping to run, with a seat of its own.
    pub fn new(name: impl Into<String>, on_panic: OnPanic, factory: EngineFactory) -> Self {
        Supervised {
            name: name.into(),
            on_panic,
            factory,
            seat: Seat::new(),
        }
    }
}

impl SheetSync {
    /// The mappings to run; nothing is built or runs until [`SheetSync::start`], which
    /// builds each engine (waiting for its lease where it has one).
    pub async fn supervise(mappings: Vec<Supervised>) -> Result<SheetSync> {
        Ok(SheetSync {
            mappings: mappings.into_iter().map(MappingHandle::new).collect(),
            control: Arc::new(Control {
                stop: watch::channel(false).0,
                failed: watch::channel(None).0,
                error: std::sync::Mutex::new(None),
            }),
            tasks: std::sync::Mutex::new(Vec::new()),
            share: None,
            #[cfg(all(
                feature = "gsheets",
                any(feature = "postgres", feature = "mysql", feature = "sqlite")
            ))]
            sheets: None,
        })
    }

    /// Starts the mappings: builds each engine (a mapping whose lease another process holds,
    /// or beyond this replica's share, waits: [`MappingHandle::placement`]), runs their
    /// initial syncs (one cycle each) one after another, in the order given, then each its
    /// loop ([`Engine::run`]). Subscribe to a mapping's events before, to see its initial sync.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        if let Some(share) = &self.share {
            tasks.push(tokio::spawn(
                share.clone().run(self.control.stop.subscribe()),
            ));
        }
        let mut previous: Option<watch::Receiver<bool>> = None;
        for m in &self.mappings {
            let (done, next) = watch::channel(false);
            let turn = InitialSync {
                after: previous.replace(next),
                done: Done(done),
            };
            tasks.push(tokio::spawn(supervise(
                m.clone(),
                self.control.clone(),
                turn,
            )));
        }
        #[cfg(all(
            feature = "gsheets",
            any(feature = "postgres", feature = "mysql", feature = "sqlite")
        ))]
        if let Some(s) = &self.sheets {
            tasks.extend(s.spawn_watchers(&self.control.stop));
        }
    }

    /// The mappings, in the order given.
    pub fn mappings(&self) -> &[Arc<MappingHandle>] {
        &self.mappings
    }

    /// The mapping named `name`.
    pub fn mapping(&self, name: &str) -> Option<&Arc<MappingHandle>> {
        self.mappings.iter().find(|m| m.name == name)
    }

    /// This replica's part in sharing the mappings (`None` without leases).
    pub fn share(&self) -> Option<ShareStatus> {
        self.share.as_ref().map(|s| s.status())
    }

    /// Resolves when a mapping with [`OnPanic::Exit`] panicked, or a mapping's first engine
    /// could not be built (its state belongs to other sides, say), with that error (every
    /// mapping is stopped by then); never otherwise.
    pub async fn failed(&self) -> Error {
        let mut rx = self.control.failed.subscribe();
        let message = rx.wait_for(Option::is_some).await.map(|m| m.clone());
        let error = self.control.error.lock().expect("error lock").take();
        match (error, message) {
            (Some(e), _) => e,
            (None, Ok(Some(message))) => Error::new(ErrorKind::Unexpected, message),
            _ => std::future::pending().await,
        }
    }

    /// Stops every mapping after its current cycle and waits for them.
    pub async fn shutdown(&self) -> Result<()> {
        self.control.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// What the supervised tasks share: the stop signal and the fatal panic or error, if one.
struct Control {
    stop: watch::Sender<bool>,
    failed: watch::Sender<Option<String>>,
    error: std::sync::Mutex<Option<Error>>,
}

impl Control {
    /// Stops every mapping with `message` (and `error`, when there is one to hand on).
    fn fail(&self, message: String, error: Option<Error>) {
        *self.error.lock().expect("error lock") = error;
        self.failed.send_replace(Some(message));
        self.stop.send_replace(true);
    }
}

/// Builds a mapping's engine and runs it until stopped, answering panics by its
/// [`OnPanic`], a lost lease by waiting for it again, and a request to hand the mapping over
/// by stopping after the cycle and waiting again.
async fn supervise(m: Arc<MappingHandle>, control: Arc<Control>, turn: InitialSync) {
    let mut stop = control.stop.subscribe();
    let mut turn = Some(turn);
    match build_first(&m, &mut stop, &mut turn).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(mapping = %m.name, error = %e, "the mapping cannot start");
            return control.fail(format!("mapping {:?} cannot start: {e}", m.name), Some(e));
        }
    }
    let mut backoff = BACKOFF.0;
    loop {
        let Some(engine) = m.engine() else { return };
        let watched = engine.clone();
        let (mut engine_stop, seat) = (stop.clone(), m.seat.clone());
        let started = Instant::now();
        let initial = turn.take();
        let run = tokio::spawn(async move {
            if let Some(turn) = initial {
                turn.run(&engine).await;
            }
            let stop_or_hand_over = async move {
                tokio::select! {
                    _ = engine_stop.wait_for(|s| *s) => {}
                    _ = seat.hand_over_asked() => {}
                }
            };
            engine.run(stop_or_hand_over).await
        });
        let outcome = run.await;
        let lost = watched.lost_ownership();
        drop(watched);
        if *stop.borrow() {
            return;
        }
        let panic = match outcome {
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Ok(()) if lost || m.seat.hand_over_requested() => {
                // Another process may own the mapping now, or should: wait for the lease.
                m.clear();
                if !lost {
                    tracing::info!(mapping = %m.name, "handed the mapping over: its lease is released for a replica below its share");
                }
                m.seat.handed_over();
                let wait = if lost { backoff } else { Duration::ZERO };
                if !rebuild(&m, &mut stop, wait, &mut backoff).await {
                    return;
                }
                continue;
            }
            _ => return, // cancelled with the runtime
        };
        m.clear();
        m.up.store(false, Ordering::Relaxed);
        let count = m.panics.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(mapping = %m.name, panic = %panic, panics = count, on_panic = ?m.on_panic, "the mapping's engine panicked");
        if m.on_panic == OnPanic::Exit {
            return control.fail(format!("mapping {:?} panicked: {panic}", m.name), None);
        }
        if started.elapsed() >= BACKOFF.1 {
            backoff = BACKOFF.0; // it had run well for a while: this is a new episode
        }
        let wait = backoff;
        if !rebuild(&m, &mut stop, wait, &mut backoff).await {
            return;
        }
    }
}

/// Builds the mapping's first engine, waiting for its lease as long as it takes; while it
/// waits, the next mapping's initial sync need not wait for this one's (`turn` is passed on).
/// False when stopped meanwhile.
async fn build_first(
    m: &MappingHandle,
    stop: &mut watch::Receiver<bool>,
    turn: &mut Option<InitialSync>,
) -> Result<bool> {
    let mut build = tokio::spawn((m.factory)());
    let built = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                build.abort();
                return Ok(false);
            }
            built = &mut build => break built,
            _ = m.seat.waiting(), if turn.is_some() => {
                if let Some(t) = turn.take() {
                    t.pass();
                }
            }
        }
    };
    let engine = built.map_err(|e| {
        let panic = e
            .try_into_panic()
            .map_or_else(|_| "cancelled".into(), panic_message);
        Error::new(
            ErrorKind::Unexpected,
            format!("building its engine panicked: {panic}"),
        )
    })??;
    m.replace(engine);
    Ok(true)
}

/// A mapping's turn for its initial sync: after the previous mapping's, and before its own
/// loop (whose first cycle follows at once), as the daemon has always run them.
struct InitialSync {
    after: Option<watch::Receiver<bool>>,
    done: Done,
}

/// Tells the next mapping its turn has come, also when the initial sync panicked.
struct Done(watch::Sender<bool>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl InitialSync {
    /// Gives the turn on without an initial sync (the mapping does not run here yet): the
    /// next mapping's comes once the previous one's is done.
    fn pass(self) {
        tokio::spawn(async move {
            if let Some(mut after) = self.after {
                let _ = after.wait_for(|done| *done).await;
            }
            drop(self.done);
        });
    }

    async fn run(self, engine: &Engine) {
        if let Some(mut after) = self.after {
            let _ = after.wait_for(|done| *done).await;
        }
        // A failure is reported as an event and retried by the loop.
        let _ = engine.run_once().await;
        drop(self.done);
    }
}

/// Waits `wait`, then builds the engine again (retrying a failed build after `backoff`,
/// which doubles each time); false when stopped meanwhile.
async fn rebuild(
    m: &MappingHandle,
    stop: &mut watch::Receiver<bool>,
    mut wait: Duration,
    backoff: &mut Duration,
) -> bool {
    loop {
        if !wait.is_zero() {
            tracing::warn!(mapping = %m.name, in_ms = wait.as_millis() as u64, "restarting the mapping");
            *backoff = (*backoff * 2).min(BACKOFF.1);
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return false,
            _ = tokio::time::sleep(wait) => {}
        }
        // Building reads the saved state and both sides' identities: it may panic too. It
        // waits for the mapping's lease, too, which may take until another process stops.
        let mut build = tokio::spawn((m.factory)());
        let built = tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                build.abort();
                return false;
            }
            built = &mut build => built,
        };
        match built {
            Ok(Ok(engine)) => {
                m.replace(engine);
                m.up.store(true, Ordering::Relaxed);
                tracing::info!(mapping = %m.name, "the mapping runs again");
                return true;
            }
            Ok(Err(e)) => {
                tracing::error!(mapping = %m.name, error = %e, "rebuilding the mapping failed")
            }
            Err(e) => {
                let panic = e
                    .try_into_panic()
                    .map_or_else(|_| "cancelled".into(), panic_message);
                tracing::error!(mapping = %m.name, panic = %panic, "rebuilding the mapping panicked")
            }
        }
        wait = *backoff;
    }
}

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
