//! The handle of a running emulator: start, stop, and the control surface as methods.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Config;
use crate::edit::PersonEdit;
use crate::error::ApiError;
use crate::faults::{FaultRule, Latency};
use crate::model::Spreadsheet;
use crate::quota::QuotaConfig;
use crate::schedule::{EditTrigger, FiredEdit, ScheduledEdit};
use crate::state::{RequestRecord, Shared};
use crate::triggers::{Delivery, JournalSpec, TriggerSpec};
use crate::{api, server, values};

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
        let task = tokio::spawn(server::serve(listener, shared.clone(), rx));
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
        crate::person::person_edit(&self.shared, id, edit, None)
    }

    /// Applies a person's edit attributed to `user`.
    pub fn edit_as(&self, id: &str, user: &str, edit: PersonEdit) -> Result<(), ApiError> {
        crate::person::person_edit(&self.shared, id, edit, Some(user))
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
    /// an ordinary person edit (triggers fire, the Drive version moves); see [`schedule`](crate::schedule).
    pub fn schedule_edit(
        &self,
        id: &str,
        trigger: EditTrigger,
        edit: PersonEdit,
    ) -> Result<String, ApiError> {
        crate::person::schedule_edit(&self.shared, id, trigger, edit, None)
    }

    /// [`EmulatorHandle::schedule_edit`] attributed to `user`.
    pub fn schedule_edit_as(
        &self,
        id: &str,
        user: &str,
        trigger: EditTrigger,
        edit: PersonEdit,
    ) -> Result<String, ApiError> {
        crate::person::schedule_edit(&self.shared, id, trigger, edit, Some(user.to_string()))
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

    /// Registers a journal trigger on a spreadsheet (the Apps Script in journal mode): person
    /// edits append entries to its `_sheetsync_journal` tab, created hidden when missing (see
    /// [`journal`](crate::journal)); returns the trigger's id.
    pub fn add_journal_trigger(&self, id: &str, spec: JournalSpec) -> Result<String, ApiError> {
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

    /// Requests received that read cell values: `values.get`, `values.batchGet` and
    /// `values.batchGetByDataFilter`.
    pub fn value_reads(&self) -> u64 {
        let counters = self.shared.counters.lock();
        [
            "sheets.spreadsheets.values.get",
            "sheets.spreadsheets.values.batchGet",
            "sheets.spreadsheets.values.batchGetByDataFilter",
        ]
        .iter()
        .filter_map(|m| counters.get(*m))
        .sum()
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
