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

/// One mapping of a [`SheetSync`]: its engine now, its events across restarts, its health.
pub struct MappingHandle {
    name: String,
    on_panic: OnPanic,
    factory: EngineFactory,
    engine: RwLock<Arc<Engine>>,
    events: broadcast::Sender<Event>,
    up: AtomicBool,
    panics: AtomicU64,
}

impl MappingHandle {
    async fn new(name: String, on_panic: OnPanic, factory: EngineFactory) -> Result<Arc<Self>> {
        let engine = Arc::new(factory().await?);
        let (events, _) = broadcast::channel(1024);
        forward(&engine, events.clone());
        Ok(Arc::new(MappingHandle {
            name,
            on_panic,
            factory,
            engine: RwLock::new(engine),
            events,
            up: AtomicBool::new(true),
            panics: AtomicU64::new(0),
        }))
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine running now (a restart replaces it).
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.read().expect("engine lock").clone()
    }

    /// The mapping's [`Event`]s from now on, across restarts of its engine.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// False from a panic until the engine runs again.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The epoch of the lease this process runs the mapping under (`None` without leases).
    pub fn epoch(&self) -> Option<u64> {
        self.engine().ownership_epoch()
    }

    /// Panics of the mapping's engine since the start.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Rows held back now.
    pub async fn held(&self) -> Vec<sheetsync_core::HeldRow> {
        self.engine().held().await
    }

    /// Conflicts kept for people now.
    pub async fn conflicts(&self) -> Vec<sheetsync_core::ConflictRecord> {
        self.engine().conflicts().await
    }

    /// Resolves a kept conflict (see [`Engine::resolve_conflict`]).
    pub async fn resolve_conflict(&self, key: &RowKey, choice: Choice) -> Result<()> {
        self.engine().resolve_conflict(key, choice).await
    }

    /// The deletes waiting for approval.
    pub async fn pending_deletes(&self) -> Vec<PendingDelete> {
        self.engine().pending_deletes().await
    }

    /// Approves pending deletes (see [`Engine::approve_deletes`]); returns how many.
    pub async fn approve_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.engine().approve_deletes(which).await
    }

    /// Rejects pending deletes (see [`Engine::reject_deletes`]); returns how many.
    pub async fn reject_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.engine().reject_deletes(which).await
    }

    fn replace(&self, engine: Engine) {
        let engine = Arc::new(engine);
        forward(&engine, self.events.clone());
        *self.engine.write().expect("engine lock") = engine;
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
pub struct SheetSync {
    mappings: Vec<Arc<MappingHandle>>,
    control: Arc<Control>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
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
}

impl SheetSync {
    /// Builds each mapping's engine; nothing runs until [`SheetSync::start`].
    pub async fn supervise(mappings: Vec<Supervised>) -> Result<SheetSync> {
        let mut handles = Vec::new();
        for m in mappings {
            handles.push(MappingHandle::new(m.name, m.on_panic, m.factory).await?);
        }
        Ok(SheetSync {
            mappings: handles,
            control: Arc::new(Control {
                stop: watch::channel(false).0,
                failed: watch::channel(None).0,
            }),
            tasks: std::sync::Mutex::new(Vec::new()),
            #[cfg(all(
                feature = "gsheets",
                any(feature = "postgres", feature = "mysql", feature = "sqlite")
            ))]
            sheets: None,
        })
    }

    /// Starts the mappings: their initial syncs (one cycle each) one after another, in the
    /// order given, then each its loop ([`Engine::run`]). Subscribe to a mapping's events
    /// before, to see its initial sync.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
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

    /// Resolves when a mapping with [`OnPanic::Exit`] panicked (every mapping is stopped by
    /// then), with an error naming the mapping and the panic; never otherwise.
    pub async fn failed(&self) -> Error {
        let mut rx = self.control.failed.subscribe();
        let message = rx.wait_for(Option::is_some).await.map(|m| m.clone());
        match message {
            Ok(Some(message)) => Error::new(ErrorKind::Unexpected, message),
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

/// What the supervised tasks share: the stop signal and the fatal panic, if one.
struct Control {
    stop: watch::Sender<bool>,
    failed: watch::Sender<Option<String>>,
}

/// Runs a mapping's engine until stopped, answering panics by its [`OnPanic`].
async fn supervise(m: Arc<MappingHandle>, control: Arc<Control>, turn: InitialSync) {
    let mut stop = control.stop.subscribe();
    let mut backoff = BACKOFF.0;
    let mut turn = Some(turn);
    loop {
        let engine = m.engine();
        let watched = engine.clone();
        let mut engine_stop = stop.clone();
        let started = Instant::now();
        let initial = turn.take();
        let run = tokio::spawn(async move {
            if let Some(turn) = initial {
                turn.run(&engine).await;
            }
            engine
                .run(async move {
                    let _ = engine_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let panic = match run.await {
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Ok(()) if watched.lost_ownership() => {
                // Another process may own the mapping now: wait for the lease again.
                drop(watched);
                m.up.store(false, Ordering::Relaxed);
                if !restart(&m, &mut stop, &mut backoff).await {
                    return;
                }
                continue;
            }
            _ => return, // stopped (or cancelled with the runtime)
        };
        m.up.store(false, Ordering::Relaxed);
        let count = m.panics.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(mapping = %m.name, panic = %panic, panics = count, on_panic = ?m.on_panic, "the mapping's engine panicked");
        if m.on_panic == OnPanic::Exit {
            let message = format!("mapping {:?} panicked: {panic}", m.name);
            control.failed.send_replace(Some(message));
            control.stop.send_replace(true);
            return;
        }
        if started.elapsed() >= BACKOFF.1 {
            backoff = BACKOFF.0; // it had run well for a while: this is a new episode
        }
        if !restart(&m, &mut stop, &mut backoff).await {
            return;
        }
    }
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
    async fn run(self, engine: &Engine) {
        if let Some(mut after) = self.after {
            let _ = after.wait_for(|done| *done).await;
        }
        // A failure is reported as an event and retried by the loop.
        let _ = engine.run_once().await;
        drop(self.done);
    }
}

/// Waits out the backoff and builds the engine again (retrying a failed build with the same
/// backoff); false when stopped meanwhile.
async fn restart(
    m: &MappingHandle,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> bool {
    loop {
        tracing::warn!(mapping = %m.name, in_ms = backoff.as_millis() as u64, "restarting the mapping");
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return false,
            _ = tokio::time::sleep(*backoff) => {}
        }
        *backoff = (*backoff * 2).min(BACKOFF.1);
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
