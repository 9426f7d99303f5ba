//! State shared by the server tasks and the handle: the configuration, the spreadsheets, and
//! the counters, logs, rules and clocks the control surface reads and sets.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ApiError;
use crate::faults::{self, Latency};
use crate::model::Spreadsheet;
use crate::quota;
use crate::schedule;
use crate::triggers::{self, Registration};
use crate::util;

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
    /// Bytes of the request body as received (what Google's 2 MB recommendation counts).
    pub body_bytes: u64,
}

/// Most requests kept in the log.
const REQUEST_LOG_CAP: usize = 10_000;

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
    pub(crate) fn new(config: Config) -> Self {
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

    /// Looks a spreadsheet up or answers 404.
    pub(crate) fn open(&self, id: &str) -> Result<Arc<RwLock<Spreadsheet>>, ApiError> {
        self.spreadsheet(id).ok_or_else(ApiError::not_found)
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

    pub(crate) fn load_from(&self, path: &std::path::Path) -> std::io::Result<()> {
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
    triggers: Vec<(String, Registration)>,
}
