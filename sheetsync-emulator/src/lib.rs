//! A faithful local emulator of the Google Sheets API v4 (plus a small Drive v3 subset).
//!
//! It serves plain HTTP/1.1 on loopback with the same paths as `https://sheets.googleapis.com/`
//! and `https://www.googleapis.com/drive/v3/`, so every real client (google-sheets4, gspread,
//! google-api-python-client, node googleapis) works once pointed at its base URL. Behaviour
//! follows `docs/sheets-api-v4.md` of the sheetsync project: raw-path routing, A1 parsing,
//! normalised ranges, trimming, render/input options, formulas, Google's error bodies, quotas.
//!
//! On top of the Google surface there is a control surface for tests (under `/__emulator/`
//! and on [`EmulatorHandle`]): person edits that fire registered webhooks the way installable
//! Apps Script triggers do, latency and fault injection, request counters, quotas and reset.
//!
//! For race and fault tests:
//! * [`FaultKind`]s that refuse a request (`Status`, `Drop`), delay it (`Delay`), run it and
//!   then lose its answer (`DropAfter`: the connection closes unanswered; `StatusAfter`: a 5xx
//!   with Google's body), or answer a read short (`Truncate`: the last value range of a
//!   `values.get`/`values.batchGet` loses its last rows). Rules match the next N requests or a
//!   rate, optionally only method ids containing a text ([`FaultRule`]).
//! * Person edits scheduled around the Nth request matching a method
//!   ([`EmulatorHandle::schedule_edit`], [`EditTrigger`], [`When`]): applied just before the
//!   request runs, or right after its effect and before its answer. They fire triggers and move
//!   the Drive version like any person edit ([`schedule`]).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> std::io::Result<()> {
//! use sheetsync_emulator::{Config, EditTrigger, EmulatorHandle, FaultRule, PersonEdit};
//!
//! let emu = EmulatorHandle::start(Config::default()).await?;
//! let id = emu.create_spreadsheet("Races").expect("created");
//! // The next values.update is applied, then its connection is dropped unanswered.
//! emu.inject_fault(FaultRule::drop_after_next(1).for_method("values.update"));
//! // The next values.batchGet answer misses the last 2 rows of its last range.
//! emu.inject_fault(FaultRule::truncate_next(2, 1).for_method("values.batchGet"));
//! // Right after the second values.batchGet (before its answer), a person sorts the data.
//! let trigger = EditTrigger::after("values.batchGet").nth(2);
//! let sort = PersonEdit::SortRange { range: "Sheet1!A2:C100".into(), column: 1, ascending: true };
//! emu.schedule_edit(&id, trigger, sort).expect("scheduled");
//! assert_eq!(emu.scheduled_edits().len(), 1);
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sheetsync_emulator::{Config, EmulatorHandle};
//!
//! let emu = EmulatorHandle::start(Config::default()).await?;
//! assert!(emu.base_url().starts_with("http://127.0.0.1:"));
//! let id = emu.create_spreadsheet("Demo").expect("created");
//! emu.set_cells(&id, "Sheet1!A1", vec![vec!["name".into(), "qty".into()]])
//!     .expect("edited like a person");
//! let values = emu.read_values(&id, "Sheet1!A1:B1").expect("read");
//! assert_eq!(values, serde_json::json!([["name", "qty"]]));
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod a1;
pub mod api;
pub mod control;
pub mod faults;
pub mod model;
pub mod quota;
pub mod schedule;
pub mod triggers;
mod util;
pub mod values;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

pub use api::error::ApiError;
pub use control::PersonEdit;
pub use faults::{FaultKind, FaultRule, Latency};
pub use model::Spreadsheet;
pub use quota::QuotaConfig;
pub use schedule::{EditTrigger, FiredEdit, ScheduledEdit, When};
pub use triggers::{Delivery, TriggerSpec};

/// Emulator configuration. `Default` is meant for in-process tests: quotas off, no latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Quotas (disabled by default in the library; the binary uses Google's numbers).
    pub quota: QuotaConfig,
    /// Latency added to every Google API request.
    pub latency: Latency,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Clip explicitly bounded ranges that end beyond the grid instead of failing with
    /// `exceeds grid limits` (unverified Google behaviour, spec §3.4/§12).
    pub clip_explicit_ranges: bool,
    /// Cell cap per spreadsheet (Google: 10,000,000).
    pub cell_limit: u64,
    /// JSON file to load at start and save on shutdown and on `POST /__emulator/save`.
    pub state_file: Option<PathBuf>,
    /// Who person edits are attributed to when the edit names nobody.
    pub default_editor: String,
    /// Whether person row moves and sorts carry row developer metadata along (undocumented
    /// by Google, spec §12).
    pub metadata_follows_person_moves: bool,
    /// Answer 401 `UNAUTHENTICATED` to API requests without any credential (bearer token,
    /// `access_token` or `key`). Off by default: any token or none is accepted.
    pub require_credentials: bool,
}

impl Config {
    /// The binary's defaults: Google's quotas (60 per user, 300 per project, per minute).
    pub fn google_quotas() -> Self {
        Config {
            quota: QuotaConfig::google(),
            ..Config::default()
        }
    }
}

/// One entry of the request log (`GET /__emulator/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Discovery method id (`sheets.spreadsheets.values.get`).
    pub method_id: String,
    /// HTTP method.
    pub http_method: String,
    /// Raw path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// The user the request was attributed to (bearer token, `quotaUser`, `key`, `anonymous`).
    pub user: String,
    /// HTTP status answered (a dropped connection is logged as 500).
    pub status: u16,
}

/// Most requests kept in the log.
const REQUEST_LOG_CAP: usize = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            quota: QuotaConfig::disabled(),
            latency: Latency::default(),
            faults: Vec::new(),
            clip_explicit_ranges: false,
            cell_limit: model::DEFAULT_CELL_LIMIT,
            state_file: None,
            default_editor: "person@example.com".into(),
            metadata_follows_person_moves: true,
            require_credentials: false,
        }
    }
}

/// State shared by the server tasks and the handle.
pub(crate) struct Shared {
    pub(crate) config: RwLock<Config>,
    pub(crate) store: RwLock<HashMap<String, Arc<RwLock<Spreadsheet>>>>,
    pub(crate) quota: Mutex<quota::QuotaState>,
    pub(crate) faults: Mutex<faults::Faults>,
    pub(crate) schedule: Mutex<schedule::Schedule>,
    pub(crate) counters: Mutex<BTreeMap<String, u64>>,
    pub(crate) rng: Mutex<util::Rng>,
    pub(crate) started: Instant,
    pub(crate) clock_offset_ms: AtomicU64,
    pub(crate) triggers: triggers::TriggerHub,
    pub(crate) denied: Mutex<std::collections::HashSet<(String, String)>>,
    pub(crate) requests: Mutex<std::collections::VecDeque<RequestRecord>>,
    /// Drive change log: (sequence, file id, removed, unix ms).
    pub(crate) changes: Mutex<Vec<(u64, String, bool, u64)>>,
    change_seq: AtomicU64,
}

impl Shared {
    fn new(config: Config) -> Self {
        let faults = faults::Faults {
            rules: config.faults.clone(),
        };
        Shared {
            config: RwLock::new(config),
            store: RwLock::new(HashMap::new()),
            quota: Mutex::new(quota::QuotaState::default()),
            faults: Mutex::new(faults),
            schedule: Mutex::new(schedule::Schedule::default()),
            counters: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(util::Rng::from_entropy()),
            started: Instant::now(),
            clock_offset_ms: AtomicU64::new(0),
            triggers: triggers::TriggerHub::new(),
            denied: Mutex::new(Default::default()),
            requests: Mutex::new(Default::default()),
            changes: Mutex::new(Vec::new()),
            change_seq: AtomicU64::new(1),
        }
    }

    /// Records a change of a spreadsheet: Drive `version`, `modifiedTime` and the changes feed.
    pub(crate) fn touch(&self, ss: &mut Spreadsheet) {
        ss.touch(self.now_ms());
        self.record_change(&ss.id, false);
    }

    pub(crate) fn record_change(&self, id: &str, removed: bool) {
        let seq = self.change_seq.fetch_add(1, Ordering::SeqCst);
        let now = self.now_ms();
        self.changes
            .lock()
            .push((seq, id.to_string(), removed, now));
    }

    pub(crate) fn next_change_seq(&self) -> u64 {
        self.change_seq.load(Ordering::SeqCst)
    }

    pub(crate) fn log_request(&self, r: RequestRecord) {
        let mut log = self.requests.lock();
        if log.len() >= REQUEST_LOG_CAP {
            log.pop_front();
        }
        log.push_back(r);
    }

    /// Emulator clock for quota windows (real time since start plus test offset).
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed() + Duration::from_millis(self.clock_offset_ms.load(Ordering::SeqCst))
    }

    /// Wall clock (ms) including the test offset.
    pub(crate) fn now_ms(&self) -> u64 {
        util::now_ms() + self.clock_offset_ms.load(Ordering::SeqCst)
    }

    pub(crate) fn spreadsheet(&self, id: &str) -> Option<Arc<RwLock<Spreadsheet>>> {
        self.store.read().get(id).cloned()
    }

    pub(crate) fn new_spreadsheet_id(&self) -> String {
        self.rng.lock().id(44)
    }

    pub(crate) fn insert(&self, ss: Spreadsheet) {
        self.record_change(&ss.id, false);
        self.store
            .write()
            .insert(ss.id.clone(), Arc::new(RwLock::new(ss)));
    }

    fn snapshot(&self) -> StateFile {
        let store = self.store.read();
        let mut spreadsheets: Vec<Spreadsheet> = store.values().map(|s| s.read().clone()).collect();
        spreadsheets.sort_by(|a, b| a.id.cmp(&b.id));
        StateFile {
            spreadsheets,
            triggers: self.triggers.all(),
        }
    }

    pub(crate) fn save_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let snap = self.snapshot();
        let text = serde_json::to_vec(&snap).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    fn load_from(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = std::fs::read(path)?;
        let state: StateFile = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        let mut store = self.store.write();
        store.clear();
        for ss in state.spreadsheets {
            store.insert(ss.id.clone(), Arc::new(RwLock::new(ss)));
        }
        drop(store);
        self.triggers.replace_all(state.triggers);
        Ok(())
    }

    pub(crate) fn reset(&self) {
        self.store.write().clear();
        self.quota.lock().reset();
        self.faults.lock().rules.clear();
        self.schedule.lock().clear();
        self.counters.lock().clear();
        self.requests.lock().clear();
        self.denied.lock().clear();
        self.changes.lock().clear();
        self.triggers.clear();
        self.clock_offset_ms.store(0, Ordering::SeqCst);
        self.config.write().latency = Latency::default();
    }
}

/// What the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    spreadsheets: Vec<Spreadsheet>,
    #[serde(default)]
    triggers: Vec<(String, TriggerSpec)>,
}

/// A running emulator. Cloning shares it; [`EmulatorHandle::shutdown`] stops it.
#[derive(Clone)]
pub struct EmulatorHandle {
    pub(crate) shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    done: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl EmulatorHandle {
    /// Starts the emulator on `127.0.0.1:config.port` in the current tokio runtime, loading
    /// `config.state_file` if it exists.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        let port = config.port;
        let state_file = config.state_file.clone();
        let shared = Arc::new(Shared::new(config));
        if let Some(path) = &state_file {
            if path.exists() {
                shared.load_from(path)?;
            }
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(api::serve(listener, shared.clone(), rx));
        Ok(EmulatorHandle {
            shared,
            addr,
            stop: Arc::new(tx),
            done: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// `http://127.0.0.1:<port>/` (with the trailing slash google-sheets4 needs).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and saves the state file if one is configured.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.done.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let _ = self.save_state();
    }

    /// Saves the state to the configured state file (no-op without one).
    pub fn save_state(&self) -> std::io::Result<()> {
        let path = self.shared.config.read().state_file.clone();
        match path {
            Some(p) => self.shared.save_to(&p),
            None => Ok(()),
        }
    }

    /// Saves the state to `path`.
    pub fn save_state_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.shared.save_to(path)
    }

    /// Forgets all spreadsheets, triggers, faults, scheduled edits, counters and quota counts.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Creates a spreadsheet the way `spreadsheets.create` does; returns its id.
    pub fn create_spreadsheet(&self, title: &str) -> Result<String, ApiError> {
        let body = serde_json::json!({"properties": {"title": title}});
        let v = api::sheets::create(&self.shared, &body)?;
        Ok(v["spreadsheetId"].as_str().unwrap_or_default().to_string())
    }

    /// Creates a spreadsheet from a `Spreadsheet` JSON body (as `spreadsheets.create` takes it,
    /// plus an optional `spreadsheetId`; `sheets[].data[]` GridData seeds cells). Returns its id.
    pub fn create_spreadsheet_from(&self, body: &serde_json::Value) -> Result<String, ApiError> {
        let v = api::sheets::create(&self.shared, body)?;
        Ok(v["spreadsheetId"].as_str().unwrap_or_default().to_string())
    }

    /// A copy of a spreadsheet's full state.
    pub fn spreadsheet(&self, id: &str) -> Option<Spreadsheet> {
        self.shared.spreadsheet(id).map(|s| s.read().clone())
    }

    /// Ids of all spreadsheets.
    pub fn spreadsheet_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.store.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Reads a range as `UNFORMATTED_VALUE` rows (trimmed like `values.get`).
    pub fn read_values(&self, id: &str, range: &str) -> Result<serde_json::Value, ApiError> {
        let ss = self
            .shared
            .spreadsheet(id)
            .ok_or_else(ApiError::not_found)?;
        let ss = ss.read();
        let clip = self.shared.config.read().clip_explicit_ranges;
        let res = values::ops::resolve(&ss, range, clip)?;
        let opts = values::RenderOpts {
            value: values::ValueRender::Unformatted,
            date: values::DateRender::Serial,
        };
        let vr = values::ops::read(&ss, &res, values::ops::Major::Rows, opts);
        Ok(vr
            .get("values")
            .cloned()
            .unwrap_or(serde_json::Value::Array(Vec::new())))
    }

    /// Applies a person's edit (as in the browser) and fires the registered triggers.
    pub fn edit(&self, id: &str, edit: PersonEdit) -> Result<(), ApiError> {
        control::person_edit(&self.shared, id, edit, None)
    }

    /// Applies a person's edit attributed to `user`.
    pub fn edit_as(&self, id: &str, user: &str, edit: PersonEdit) -> Result<(), ApiError> {
        control::person_edit(&self.shared, id, edit, Some(user))
    }

    /// A person types/pastes `values` starting at (or into) `range` (USER_ENTERED parsing).
    pub fn set_cells(
        &self,
        id: &str,
        range: &str,
        values: Vec<Vec<serde_json::Value>>,
    ) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::SetCells {
                range: range.into(),
                values,
            },
        )
    }

    /// A person pastes a block (same as [`EmulatorHandle::set_cells`]).
    pub fn paste(
        &self,
        id: &str,
        range: &str,
        values: Vec<Vec<serde_json::Value>>,
    ) -> Result<(), ApiError> {
        self.set_cells(id, range, values)
    }

    /// A person clears a range (Delete key).
    pub fn clear_range(&self, id: &str, range: &str) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::Clear {
                range: range.into(),
            },
        )
    }

    /// A person inserts `count` rows before 1-based row `before`.
    pub fn insert_rows(
        &self,
        id: &str,
        sheet: &str,
        before: u32,
        count: u32,
    ) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::InsertRows {
                sheet: sheet.into(),
                before,
                count,
            },
        )
    }

    /// A person deletes `count` rows starting at 1-based row `start`.
    pub fn delete_rows(
        &self,
        id: &str,
        sheet: &str,
        start: u32,
        count: u32,
    ) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::DeleteRows {
                sheet: sheet.into(),
                start,
                count,
            },
        )
    }

    /// A person drags `count` rows starting at 1-based `start` so they sit before row `before`.
    pub fn move_rows(
        &self,
        id: &str,
        sheet: &str,
        start: u32,
        count: u32,
        before: u32,
    ) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::MoveRows {
                sheet: sheet.into(),
                start,
                count,
                before,
            },
        )
    }

    /// A person sorts `range` by the 1-based sheet column `column`.
    pub fn sort_range(
        &self,
        id: &str,
        range: &str,
        column: u32,
        ascending: bool,
    ) -> Result<(), ApiError> {
        self.edit(
            id,
            PersonEdit::SortRange {
                range: range.into(),
                column,
                ascending,
            },
        )
    }

    /// Schedules a person edit of spreadsheet `id` for the request that `trigger` names (the
    /// Nth request to that spreadsheet whose method id contains `trigger.method`), just before
    /// it runs or right after its effect; returns the scheduled edit's id. When it fires it is
    /// an ordinary person edit (triggers fire, the Drive version moves); see [`schedule`].
    pub fn schedule_edit(
        &self,
        id: &str,
        trigger: EditTrigger,
        edit: PersonEdit,
    ) -> Result<String, ApiError> {
        control::schedule_edit(&self.shared, id, trigger, edit, None)
    }

    /// [`EmulatorHandle::schedule_edit`] attributed to `user`.
    pub fn schedule_edit_as(
        &self,
        id: &str,
        user: &str,
        trigger: EditTrigger,
        edit: PersonEdit,
    ) -> Result<String, ApiError> {
        control::schedule_edit(&self.shared, id, trigger, edit, Some(user.to_string()))
    }

    /// Scheduled edits still waiting for their request, in scheduling order.
    pub fn scheduled_edits(&self) -> Vec<ScheduledEdit> {
        self.shared.schedule.lock().pending()
    }

    /// Scheduled edits that have fired (with the error if one could not be applied).
    pub fn fired_edits(&self) -> Vec<FiredEdit> {
        self.shared.schedule.lock().fired()
    }

    /// Cancels a pending scheduled edit; whether it was still pending.
    pub fn cancel_scheduled_edit(&self, scheduled_edit_id: &str) -> bool {
        self.shared.schedule.lock().cancel(scheduled_edit_id)
    }

    /// Forgets all pending and fired scheduled edits.
    pub fn clear_scheduled_edits(&self) {
        self.shared.schedule.lock().clear();
    }

    /// Registers a webhook trigger on a spreadsheet; returns its id.
    pub fn add_trigger(&self, id: &str, spec: TriggerSpec) -> Result<String, ApiError> {
        if self.shared.spreadsheet(id).is_none() {
            return Err(ApiError::not_found());
        }
        Ok(self.shared.triggers.add(id, spec))
    }

    /// Webhook deliveries so far (successes and failures).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.triggers.log()
    }

    /// Waits until at least `n` deliveries are logged or `timeout` passes; returns the log.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.deliveries();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Adds a fault rule.
    pub fn inject_fault(&self, rule: FaultRule) {
        self.shared.faults.lock().rules.push(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().rules.clear();
    }

    /// Sets the latency added to every Google API request.
    pub fn set_latency(&self, latency: Latency) {
        self.shared.config.write().latency = latency;
    }

    /// Replaces the quota configuration (counts of the current window are kept).
    pub fn set_quota(&self, quota: QuotaConfig) {
        self.shared.config.write().quota = quota;
    }

    /// Starts a fresh quota window (as if a minute had passed).
    pub fn reset_quota_window(&self) {
        self.shared.quota.lock().reset();
    }

    /// Moves the emulator clock forward (quota windows, Drive `modifiedTime`).
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock_offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests received per API method id (`sheets.spreadsheets.values.get`, ...).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.counters.lock().clone()
    }

    /// Requests received for one method id.
    pub fn request_count(&self, method_id: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .get(method_id)
            .copied()
            .unwrap_or(0)
    }

    /// Zeroes the request counters and empties the request log.
    pub fn reset_counters(&self) {
        self.shared.counters.lock().clear();
        self.shared.requests.lock().clear();
    }

    /// The last requests received (up to 10,000), oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().iter().cloned().collect()
    }

    /// Makes `user` (bearer token) get 403 `PERMISSION_DENIED` on a spreadsheet.
    pub fn deny_access(&self, spreadsheet_id: &str, user: &str) {
        self.shared
            .denied
            .lock()
            .insert((spreadsheet_id.to_string(), user.to_string()));
    }

    /// Undoes [`EmulatorHandle::deny_access`].
    pub fn allow_access(&self, spreadsheet_id: &str, user: &str) {
        self.shared
            .denied
            .lock()
            .remove(&(spreadsheet_id.to_string(), user.to_string()));
    }

    /// Turns "401 without credentials" on or off.
    pub fn set_require_credentials(&self, on: bool) {
        self.shared.config.write().require_credentials = on;
    }
}
