//! A Sheet ⇄ database sync from configuration: URLs in, running mappings out.
//!
//! [`SheetSync::builder`] takes a database URL and table, a spreadsheet (URL or id, and tab) and
//! Google credentials; it reads the key and columns from the database table, installs change
//! capture when asked, keeps the mapping's state in the same database, and runs the engine
//! under supervision ([`OnPanic`]). The reference daemon is built on it.

use std::sync::Arc;

use serde::Deserialize;
use sheetsync_core::{
    Engine, Error, ErrorKind, MappingConfig, Ownership, Result, StateStore, Table, TableSchema,
};
use sheetsync_gsheets::watch::{ChangeDetection, WatchOptions, Watcher};
use sheetsync_gsheets::webhook::EditRouter;
use sheetsync_gsheets::{Auth, ClientConfig, SheetOptions, SheetStatus, SheetTable, SheetsClient};

pub use crate::sides::db::{db_location, redact, DbTable, Located};
pub use crate::sides::Sides;

use crate::share::{Placement, Seat, SeatedLease, Share, ShareOptions};
use crate::sides::SheetsSide;
use crate::supervise::{EngineFactory, OnPanic, SheetSync, Supervised};

/// How to reach Google (or the emulator): `[sheets]` in the daemon's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheetsConfig {
    /// Sheets API root (`https://sheets.googleapis.com/`, or an emulator's URL).
    #[serde(default = "google_sheets_url")]
    pub base_url: String,
    /// Drive API root; defaults to `https://www.googleapis.com/`, or `base_url` when that is
    /// not Google's.
    pub drive_url: Option<String>,
    /// Path of a service-account JSON key. None: no credentials (an emulator).
    pub credentials: Option<String>,
    /// Read requests per minute (Google: 60 per user).
    #[serde(default = "sixty")]
    pub reads_per_minute: u32,
    /// Write requests per minute (Google: 60 per user).
    #[serde(default = "sixty")]
    pub writes_per_minute: u32,
    /// How a person's edit is found: `journal` (the Apps Script's journal tab, polled; the
    /// default), `webhook` (the Apps Script posts to the daemon) or `polling` (no script).
    #[serde(default)]
    pub change_detection: ChangeDetection,
    /// The longest time between two polls of a spreadsheet while nothing changes, in
    /// milliseconds (polls come faster while it does).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    WatchOptions::default().max_interval.as_millis() as u64
}

fn google_sheets_url() -> String {
    "https://sheets.googleapis.com/".into()
}

fn sixty() -> u32 {
    60
}

impl Default for SheetsConfig {
    fn default() -> Self {
        SheetsConfig {
            base_url: google_sheets_url(),
            drive_url: None,
            credentials: None,
            reads_per_minute: 60,
            writes_per_minute: 60,
            change_detection: ChangeDetection::default(),
            poll_ms: default_poll_ms(),
        }
    }
}

impl SheetsConfig {
    /// Google, with the credentials `GOOGLE_APPLICATION_CREDENTIALS` (or `SHEETSYNC_CREDENTIALS`)
    /// names; `SHEETSYNC_SHEETS_URL` points it at an emulator instead.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        SheetsConfig {
            base_url: var("SHEETSYNC_SHEETS_URL").unwrap_or_else(google_sheets_url),
            credentials: var("SHEETSYNC_CREDENTIALS")
                .or_else(|| var("GOOGLE_APPLICATION_CREDENTIALS")),
            ..SheetsConfig::default()
        }
    }

    /// How the watchers of this configuration poll.
    pub fn watch_options(&self) -> WatchOptions {
        let mut o = WatchOptions {
            mode: self.change_detection,
            ..WatchOptions::default()
        };
        o.max_interval = std::time::Duration::from_millis(self.poll_ms.max(50));
        o.min_interval = o.min_interval.min(o.max_interval);
        o
    }

    /// Whether this talks to Google rather than an emulator.
    fn is_google(&self) -> bool {
        self.base_url.starts_with("https://sheets.googleapis.com")
    }

    /// The Sheets client for this configuration.
    pub async fn client(&self) -> Result<Arc<SheetsClient>> {
        Ok(Arc::new(
            SheetsClient::new(self.client_config().await?).await?,
        ))
    }

    /// The client settings for this configuration (credentials read), to adjust before
    /// [`SheetsClient::new`]: a command that checks a setup retries less than a daemon, say.
    pub async fn client_config(&self) -> Result<ClientConfig> {
        let auth = match &self.credentials {
            Some(path) => Auth::service_account_file(path).await?,
            None if self.is_google() => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "talking to Google needs credentials: set sheets.credentials (or SHEETSYNC_CREDENTIALS, or GOOGLE_APPLICATION_CREDENTIALS) to a service-account key file",
                ))
            }
            None => Auth::None,
        };
        let drive_url = self.drive_url.clone().unwrap_or_else(|| {
            if self.is_google() {
                "https://www.googleapis.com/".into()
            } else {
                self.base_url.clone()
            }
        });
        Ok(ClientConfig {
            sheets_url: self.base_url.clone(),
            drive_url,
            auth,
            reads_per_minute: self.reads_per_minute,
            writes_per_minute: self.writes_per_minute,
            ..ClientConfig::default()
        })
    }
}

/// One mapping: where its two sides are, and the core settings (`[[mapping]]` in the daemon's
/// configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct SyncConfig {
    /// The spreadsheet id.
    pub spreadsheet_id: String,
    /// The tab's sheetId (`gid` in its URL).
    #[serde(default)]
    pub sheet_id: i32,
    /// The 1-based header row.
    #[serde(default = "one")]
    pub header_row: u32,
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://path`.
    pub database_url: String,
    /// The table (optionally `schema.table` on PostgreSQL).
    pub table: String,
    /// What a panic of the mapping's engine leads to.
    #[serde(default)]
    pub on_panic: OnPanic,
    /// Whether held rows and conflicts are shown in the Sheet itself (a note on the row's key
    /// cell, or a status column), besides the log and the status page.
    #[serde(default)]
    pub sheet_status: SheetStatusMode,
    /// The header of the status column, with `sheet_status = "column"`.
    #[serde(default)]
    pub status_column: Option<String>,
    /// Everything else: name, key (default: the table's primary key), columns (default: all),
    /// resolvers, deletes, guard, keys, timing.
    #[serde(flatten)]
    pub sync: MappingConfig,
}

fn one() -> u32 {
    1
}

/// A mapping's `sheet_status`: whether the Sheet shows which rows wait for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SheetStatusMode {
    /// Only the log, the status page and the admin API show them.
    #[default]
    Off,
    /// A note on the row's key cell, removed when the row syncs again.
    Note,
    /// A status column of its own (`status_column`), emptied when the row syncs again.
    Column,
}

/// A spreadsheet's id and tab from its URL (`https://docs.google.com/spreadsheets/d/<id>/edit#gid=<tab>`),
/// or a bare id (tab 0).
pub fn parse_sheet_ref(url_or_id: &str) -> Result<(String, i32)> {
    split_sheet_ref(url_or_id).map(|(id, gid)| (id, gid.unwrap_or(0)))
}

/// The id, and the tab when the URL names one (`gid=`).
fn split_sheet_ref(url_or_id: &str) -> Result<(String, Option<i32>)> {
    let s = url_or_id.trim();
    let Some(rest) = s.split_once("/spreadsheets/d/").map(|(_, r)| r) else {
        let is_id = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        return match is_id {
            false => Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "{s:?} is neither a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit) nor a spreadsheet id (letters, digits, - and _)"
                ),
            )),
            true => Ok((s.to_string(), None)),
        };
    };
    let id: String = rest.chars().take_while(|c| !"/?#".contains(*c)).collect();
    if id.is_empty() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("{s:?}: the URL has no spreadsheet id after /spreadsheets/d/"),
        ));
    }
    let gid = s
        .split(['#', '?', '&'])
        .find_map(|part| part.strip_prefix("gid="))
        .map(|g| {
            g.parse().map_err(|_| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("{s:?}: gid {g:?} is not a tab id"),
                )
            })
        })
        .transpose()?;
    Ok((id, gid))
}

impl SyncConfig {
    /// The adapter's [`SheetStatus`] for `sheet_status` and `status_column`, checked: a status
    /// column needs a header of its own, one that none of `mapped` (the mapped columns, when
    /// known) uses.
    pub fn sheet_status(&self, mapped: Option<&[String]>) -> Result<SheetStatus> {
        let invalid = |m: String| Err(Error::new(ErrorKind::ConfigInvalid, m));
        let column = self.status_column.as_deref().map(str::trim);
        match (self.sheet_status, column) {
            (SheetStatusMode::Column, None | Some("")) => invalid(
                "sheet_status = \"column\" needs status_column, the header of the column \
                 sheetsync writes, such as status_column = \"sync status\""
                    .into(),
            ),
            (SheetStatusMode::Column, Some(c))
                if mapped.is_some_and(|m| m.iter().any(|n| n.trim() == c)) =>
            {
                invalid(format!(
                    "status_column = {c:?} is a mapped column: sheetsync would overwrite what \
                     syncs; name a column of its own, such as \"sync status\""
                ))
            }
            (SheetStatusMode::Column, Some(c)) => Ok(SheetStatus::Column(c.to_string())),
            (_, Some(_)) => invalid(
                "status_column is only used with sheet_status = \"column\"; add that, or \
                 leave status_column out"
                    .into(),
            ),
            (SheetStatusMode::Note, None) => Ok(SheetStatus::Note),
            (SheetStatusMode::Off, None) => Ok(SheetStatus::Off),
        }
    }

    /// Takes a spreadsheet URL pasted as `spreadsheet_id` apart: the id stays, and the URL's
    /// `gid` becomes `sheet_id` (a `sheet_id` given as well must agree). A bare id stays as it
    /// is; anything else is an error saying what an id looks like.
    pub fn resolve_spreadsheet(&mut self) -> Result<()> {
        let (id, gid) = split_sheet_ref(&self.spreadsheet_id)?;
        match gid {
            Some(g) if self.sheet_id != 0 && g != self.sheet_id => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "the spreadsheet URL names tab gid={g} but sheet_id = {}; keep one of them",
                        self.sheet_id
                    ),
                ))
            }
            Some(g) => self.sheet_id = g,
            None => {}
        }
        self.spreadsheet_id = id;
        Ok(())
    }
}

/// Checks that the mapping's key, when it names one, is the table's primary key: the key the
/// sync identifies rows by, and the one the database enforces unique.
pub fn check_key(m: &SyncConfig, table: &TableSchema) -> Result<()> {
    let primary = table.key_names();
    if m.sync.key.is_empty()
        || m.sync
            .key
            .iter()
            .map(String::as_str)
            .eq(primary.iter().copied())
    {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ConfigInvalid,
        format!(
            "mapping {:?}: key = {:?} is not the primary key of {} (its primary key is {:?}); write key = {:?}, or leave key out to use it",
            m.sync.name, m.sync.key, m.table, primary, primary
        ),
    ))
}

/// The mapping's column list, when it names one.
pub fn mapped_columns(m: &SyncConfig) -> Option<Vec<String>> {
    (!m.sync.columns.is_empty()).then(|| m.sync.columns.iter().map(|c| c.name.clone()).collect())
}

impl Sides {
    /// Opens both sides of `m`: the database table first, whose primary key is the mapping's
    /// key unless the mapping names one.
    pub async fn open(m: &SyncConfig, client: Arc<SheetsClient>) -> Result<Sides> {
        let mut m = m.clone();
        m.resolve_spreadsheet()?;
        let m = &m;
        let db = DbTable::open(&m.database_url, &m.table, mapped_columns(m)).await?;
        check_key(m, &db.schema())?;
        let mut mapping = m.sync.clone();
        if mapping.key.is_empty() {
            mapping.key = db
                .schema()
                .key_names()
                .iter()
                .map(|k| k.to_string())
                .collect();
        }
        // The database side already carries exactly the mapped columns, in the mapping's order.
        let schema = mapping.schema_from(&db.schema())?;
        let mut opts = SheetOptions::new(&m.spreadsheet_id, m.sheet_id);
        opts.header_row = m.header_row;
        let mapped: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        opts.sheet_status = m.sheet_status(Some(&mapped)).map_err(|e| {
            Error::new(
                e.kind(),
                format!("mapping {:?}: {}", m.sync.name, e.message()),
            )
        })?;
        let sheet = Arc::new(SheetTable::new(client, opts, schema.clone()));
        Ok(Sides {
            mapping,
            schema,
            sheet,
            db,
        })
    }

    /// The engine of the mapping; `afresh` forgets its saved state first; with `owner` it runs
    /// only while that lease holds the mapping ([`sheetsync_core::EngineBuilder::owner`]).
    pub async fn engine(
        &self,
        store: Arc<dyn StateStore>,
        afresh: bool,
        owner: Option<Arc<dyn Ownership>>,
    ) -> Result<Engine> {
        let sheet: Arc<dyn Table> = self.sheet.clone();
        let mut builder =
            Engine::builder(self.mapping.clone(), sheet, self.db.table()).state(store);
        if let Some(owner) = owner {
            builder = builder.owner(owner);
        }
        if afresh {
            builder.start_afresh().build().await
        } else {
            builder.build().await
        }
    }
}

/// One watcher per spreadsheet the mappings sync, saying at start what to expect of it.
fn watchers_for(
    sides: &[Sides],
    client: &Arc<SheetsClient>,
    opts: &WatchOptions,
) -> Vec<Arc<Watcher>> {
    let mut out: Vec<Arc<Watcher>> = Vec::new();
    for s in sides {
        let id = &s.sheet.options().spreadsheet_id;
        if out.iter().any(|w| w.spreadsheet_id() == id) {
            continue;
        }
        tracing::info!(spreadsheet = %id, change_detection = %opts.mode, "{}", opts.mode.expectation(opts));
        out.push(Arc::new(Watcher::new(client.clone(), id, opts.clone())));
    }
    out
}

/// The watcher of a mapping's spreadsheet.
fn watcher_of(watchers: &[Arc<Watcher>], s: &Sides) -> Option<Arc<Watcher>> {
    let id = &s.sheet.options().spreadsheet_id;
    watchers.iter().find(|w| w.spreadsheet_id() == id).cloned()
}

/// Builds a [`SheetSync`] from URLs: one mapping per [`database`](SyncBuilder::database) +
/// [`sheet`](SyncBuilder::sheet) pair, the key and the columns read from the table.
///
/// A SQLite table and a spreadsheet in the [emulator](crate::emulator), which stands in for
/// Google here (with Google, leave [`SyncBuilder::sheets`] out and set
/// `GOOGLE_APPLICATION_CREDENTIALS`):
///
/// ```
/// # #[cfg(all(feature = "sqlite", feature = "emulator"))]
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sheetsync::emulator::{Config, EmulatorHandle};
/// use sheetsync::sql::sqlx::{self, Connection, SqliteConnection};
/// use sheetsync::{Event, SheetSync, SheetsConfig};
///
/// let dir = std::env::temp_dir().join(format!("sheetsync-doc-builder-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let url = format!("sqlite://{}?mode=rwc", dir.join("shop.db").display());
/// let mut db = SqliteConnection::connect(&url).await?;
/// sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER)")
///     .execute(&mut db)
///     .await?;
/// sqlx::query("INSERT INTO orders VALUES (1, 'bolt', 10)").execute(&mut db).await?;
/// let google = EmulatorHandle::start(Config::default()).await?;
/// let sheet = google.create_spreadsheet("orders")?;
///
/// let sync = SheetSync::builder()
///     .sheets(SheetsConfig { base_url: google.base_url(), ..SheetsConfig::default() })
///     .database(&url, "orders") // the mapping is named after the table
///     .sheet(&sheet) // an id, or the URL in the browser's address bar
///     .configure(|m| m.sync.timing.poll_interval_ms = 100)
///     .install_capture(true)
///     .open()
///     .await?;
/// let mut events = sync.mapping("orders").expect("the mapping").subscribe();
/// sync.start();
/// while !matches!(events.recv().await?, Event::Cycle(r) if r.writes.total() > 0) {}
/// let tab = google.read_values(&sheet, "Sheet1")?;
/// assert_eq!(tab, serde_json::json!([["id", "item", "qty"], [1, "bolt", 10]]));
///
/// // A change in the database follows within the poll interval.
/// sqlx::query("UPDATE orders SET qty = 11 WHERE id = 1").execute(&mut db).await?;
/// while google.read_values(&sheet, "Sheet1")?[1][2] != 11 {
///     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
/// }
/// sync.shutdown().await?;
/// # google.shutdown().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// # #[cfg(not(all(feature = "sqlite", feature = "emulator")))]
/// # fn main() {}
/// ```
#[derive(Default)]
pub struct SyncBuilder {
    sheets: Option<SheetsConfig>,
    mappings: Vec<SyncConfig>,
    pending: Option<SyncConfig>,
    install_capture: bool,
    afresh_when_moved: bool,
    /// Run without leases (see [`SyncBuilder::leases`]).
    unleased: bool,
    /// How replicas share the mappings (see [`SyncBuilder::share`]).
    share: ShareOptions,
    error: Option<Error>,
}

impl SyncBuilder {
    /// The database side of a new mapping: a URL (`postgres://…`, `mysql://…`, `sqlite://…`)
    /// and a table. The mapping is named after the table.
    pub fn database(mut self, url: impl Into<String>, table: impl Into<String>) -> Self {
        self.finish_pending();
        let table = table.into();
        self.pending = Some(SyncConfig {
            spreadsheet_id: String::new(),
            sheet_id: 0,
            header_row: 1,
            database_url: url.into(),
            on_panic: OnPanic::default(),
            sheet_status: SheetStatusMode::Off,
            status_column: None,
            sync: MappingConfig::new(table.rsplit('.').next().unwrap_or(&table), &[]),
            table,
        });
        self
    }

    /// The Sheet side of the mapping begun by [`SyncBuilder::database`]: a spreadsheet URL
    /// (its `gid` names the tab) or id (the first tab). An unparsable reference fails
    /// [`SyncBuilder::start`].
    pub fn sheet(mut self, url_or_id: &str) -> Self {
        if let Some(p) = &mut self.pending {
            match parse_sheet_ref(url_or_id) {
                Ok((id, tab)) => (p.spreadsheet_id, p.sheet_id) = (id, tab),
                Err(e) => self.error = Some(e),
            }
        }
        self
    }

    /// Changes the mapping begun by [`SyncBuilder::database`]: its name, columns, resolvers,
    /// timing, panic policy and so on.
    pub fn configure(mut self, f: impl FnOnce(&mut SyncConfig)) -> Self {
        if let Some(p) = &mut self.pending {
            f(p);
        }
        self
    }

    /// Adds a whole mapping (as the daemon reads them from its configuration).
    pub fn mapping(mut self, m: SyncConfig) -> Self {
        self.finish_pending();
        self.mappings.push(m);
        self
    }

    /// How to reach Google (default: [`SheetsConfig::from_env`]).
    pub fn sheets(mut self, sheets: SheetsConfig) -> Self {
        self.sheets = Some(sheets);
        self
    }

    /// Installs change capture on tables that lack it (default: fail, naming the table).
    pub fn install_capture(mut self, install: bool) -> Self {
        self.install_capture = install;
        self
    }

    /// When a mapping's saved state belongs to another spreadsheet, tab or table, start the
    /// mapping afresh (merging both sides, deleting nothing) instead of failing. For demos whose
    /// spreadsheet is new on every run; see `Engine::builder(..).start_afresh()`.
    pub fn afresh_when_moved(mut self, afresh: bool) -> Self {
        self.afresh_when_moved = afresh;
        self
    }

    fn finish_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.mappings.push(p);
        }
    }

    /// Opens every mapping's sides and builds its engine; nothing syncs until
    /// [`SheetSync::start`] (subscribe to events first to see the initial sync).
    pub async fn open(mut self) -> Result<SheetSync> {
        self.finish_pending();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let sheets = self.sheets.clone().unwrap_or_else(SheetsConfig::from_env);
        let client = sheets.client().await?;
        let router = EditRouter::new();
        let mut sides = Vec::new();
        for m in &self.mappings {
            if m.spreadsheet_id.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("mapping {:?} names no spreadsheet", m.sync.name),
                ));
            }
            let s = Sides::open(m, client.clone()).await?;
            self.ensure_capture(m, &s.db).await?;
            router.add(s.sheet.clone());
            sides.push(s);
        }
        let watchers = watchers_for(&sides, &client, &sheets.watch_options());
        let mut stores = Vec::new();
        for s in &sides {
            stores.push(s.db.state_store().await?);
        }
        let seats: Vec<_> = sides
            .iter()
            .map(|s| (s.mapping.name.clone(), Seat::new()))
            .collect();
        let share = (!self.unleased).then(|| {
            Share::new(
                process_name(),
                self.share.clone(),
                one_per_database(&stores),
                seats.clone(),
            )
        });
        let mut supervised = Vec::new();
        for (i, (m, s)) in self.mappings.iter().zip(&sides).enumerate() {
            let lease = share.clone().map(|share| Leasing {
                share,
                seat: seats[i].1.clone(),
            });
            supervised.push(Supervised {
                name: s.mapping.name.clone(),
                on_panic: m.on_panic,
                factory: self.factory(s, stores[i].clone(), watcher_of(&watchers, s), lease),
                seat: seats[i].1.clone(),
            });
        }
        let mut sync = SheetSync::supervise(supervised).await?;
        sync.share = share;
        sync.sheets = Some(SheetsSide {
            client,
            router,
            sides,
            watchers,
        });
        Ok(sync)
    }

    /// Whether each mapping runs only while this process holds its lease in the mapping's
    /// database (default: yes), so that replicas, or the old and the new process of a rolling
    /// update, never run one mapping at once: a second process waits, says so in its log,
    /// and takes the mapping over when the first stops or dies (see [`crate::ownership`]).
    pub fn leases(mut self, leases: bool) -> Self {
        self.unleased = !leases;
        self
    }

    /// How replicas with the same mappings share them (default: divided, at most ⌈M/N⌉ each
    /// of M mappings among N replicas alive; see [`crate::share`]). With leases off, every
    /// mapping runs here regardless.
    pub fn share(mut self, share: ShareOptions) -> Self {
        self.share = share;
        self
    }

    /// [`SyncBuilder::open`], then [`SheetSync::start`].
    pub async fn start(self) -> Result<SheetSync> {
        let sync = self.open().await?;
        sync.start();
        Ok(sync)
    }

    async fn ensure_capture(&self, m: &SyncConfig, db: &DbTable) -> Result<()> {
        if db.is_installed().await? {
            return Ok(());
        }
        if !self.install_capture {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "change capture is not installed on {}; run `sheetsync install` (or let the sync install it)",
                    m.table
                ),
            ));
        }
        db.install().await?;
        tracing::info!(mapping = %m.sync.name, table = %m.table, "installed change capture");
        Ok(())
    }

    /// Builds the mapping's engine on the state store in its own database, once this process
    /// holds the mapping's lease there (see [`crate::ownership`]) within its share.
    /// The mapping's table is watched for changes only while this process runs it.
    fn factory(
        &self,
        s: &Sides,
        store: Arc<dyn StateStore>,
        watcher: Option<Arc<Watcher>>,
        lease: Option<Leasing>,
    ) -> EngineFactory {
        let (sides, afresh_when_moved) = (s.clone(), self.afresh_when_moved);
        Arc::new(move || {
            let (sides, store, watcher) = (sides.clone(), store.clone(), watcher.clone());
            let lease = lease.clone();
            Box::pin(async move {
                let name = &sides.mapping.name;
                if let Some(w) = &watcher {
                    w.remove(&sides.sheet);
                }
                let owner = match &lease {
                    Some(l) => wait_for_lease(&*store, name, l).await?,
                    None => None,
                };
                let engine = match sides.engine(store.clone(), false, owner.clone()).await {
                    Err(e) if afresh_when_moved && e.kind() == ErrorKind::IdentityMismatch => {
                        tracing::warn!(mapping = %name, "the mapping's saved state belongs to other sides: starting afresh (merging, no deletes)");
                        sides.engine(store, true, owner).await
                    }
                    other => other,
                }?;
                if let Some(w) = &watcher {
                    w.add(sides.sheet.clone());
                }
                Ok(engine)
            })
        })
    }
}

/// What a mapping's factory takes its lease with: this replica's share, and the mapping's
/// seat, where it says that it waits.
#[derive(Clone)]
struct Leasing {
    share: Arc<Share>,
    seat: Arc<Seat>,
}

/// The first store of each database (by location) among `stores`: where replicas beat.
fn one_per_database(stores: &[Arc<dyn StateStore>]) -> Vec<Arc<dyn StateStore>> {
    let mut out: Vec<Arc<dyn StateStore>> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in stores {
        if seen.insert(s.location().unwrap_or_default()) {
            out.push(s.clone());
        }
    }
    out
}

impl SheetSync {
    /// Starts building a sync from URLs.
    pub fn builder() -> SyncBuilder {
        SyncBuilder::default()
    }

    fn sheets_side(&self) -> Option<&SheetsSide> {
        self.sheets.as_ref()
    }

    /// The Sheets client (its call counters), when built by [`SheetSync::builder`].
    pub fn sheets_client(&self) -> Option<&Arc<SheetsClient>> {
        self.sheets_side().map(|s| &s.client)
    }

    /// Routes the edits the Sheet reports to the mappings of the edited tab: give its
    /// [`EditRouter::handler`] to a `WebhookReceiver`.
    pub fn edit_router(&self) -> Option<&EditRouter> {
        self.sheets_side().map(|s| &s.router)
    }

    /// The change watcher of each spreadsheet the mappings sync.
    pub fn watchers(&self) -> &[Arc<Watcher>] {
        self.sheets_side().map_or(&[], |s| &s.watchers)
    }

    /// Each mapping's sides, in the order of the mappings.
    pub fn sides(&self) -> &[Sides] {
        self.sheets_side().map_or(&[], |s| &s.sides)
    }
}

/// How often a process waiting for a mapping's lease tries again, and how often it says so.
const LEASE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
const LEASE_WAIT_LOG: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a mapping looks whether its replica has counted the others yet, at start.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Takes the mapping's lease in `store`, waiting while another process holds it or this
/// replica runs its share already; `None` when the store keeps no leases (an in-memory SQLite
/// database, which no other process can reach).
async fn wait_for_lease(
    store: &dyn StateStore,
    mapping: &str,
    l: &Leasing,
) -> Result<Option<Arc<dyn Ownership>>> {
    let owner = process_name();
    let mut said = None::<std::time::Instant>;
    loop {
        if !l.share.settled() {
            tokio::time::sleep(SETTLE_POLL).await;
            continue;
        }
        let reserved = l.share.try_reserve(mapping);
        let full = reserved.is_none();
        if let Some(reservation) = reserved {
            match store.try_lease(mapping, &owner).await {
                Ok(Some(lease)) => {
                    let epoch = lease.epoch();
                    match said {
                        Some(_) => tracing::info!(mapping, epoch, "took the mapping over: the process that held it stopped, or handed it over"),
                        None => tracing::info!(mapping, epoch, "running the mapping here (holding its lease)"),
                    }
                    return Ok(Some(SeatedLease::wrap(lease, Some(reservation))));
                }
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let holder = store.lease_record(mapping).await.unwrap_or_default();
        l.seat.place(Placement::Waiting {
            owner: holder.clone(),
            full,
        });
        if said.is_none_or(|t| t.elapsed() >= LEASE_WAIT_LOG) {
            let by = holder.map_or_else(
                || "nobody yet".into(),
                |h| format!("{} (epoch {})", h.owner, h.epoch),
            );
            match full {
                true => {
                    let s = l.share.status();
                    tracing::info!(mapping, last_owner = %by, replicas = s.replicas, share = s.share, "this replica runs its share of the mappings: leaving this one to another replica");
                }
                false => {
                    tracing::warn!(mapping, owner = %by, "another process runs this mapping (its lease is held): waiting to take it over when that process stops")
                }
            }
            said = Some(std::time::Instant::now());
        }
        tokio::time::sleep(LEASE_RETRY).await;
    }
}

/// `host:pid`, naming this process in the leases it holds (and in the daemon's status).
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{}:{}", host.trim(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_references_are_urls_or_ids() {
        let url = "https://docs.google.com/spreadsheets/d/1AbC-d_E/edit#gid=42";
        assert_eq!(parse_sheet_ref(url).unwrap(), ("1AbC-d_E".into(), 42));
        let url = "https://docs.google.com/spreadsheets/d/1AbC/edit?usp=sharing";
        assert_eq!(parse_sheet_ref(url).unwrap(), ("1AbC".into(), 0));
        assert_eq!(parse_sheet_ref(" 1AbC ").unwrap(), ("1AbC".into(), 0));
        assert!(parse_sheet_ref("https://example.com/x").is_err());
        assert!(parse_sheet_ref("https://docs.google.com/spreadsheets/d/x/edit#gid=a").is_err());
        assert!(parse_sheet_ref("my sheet").is_err());
    }

    #[test]
    fn a_pasted_url_becomes_the_id_and_tab() {
        let mut m = SyncConfig {
            spreadsheet_id: "https://docs.google.com/spreadsheets/d/1AbC/edit#gid=7".into(),
            sheet_id: 0,
            header_row: 1,
            database_url: "sqlite://x.db".into(),
            table: "t".into(),
            on_panic: OnPanic::default(),
            sheet_status: SheetStatusMode::Off,
            status_column: None,
            sync: MappingConfig::new("t", &[]),
        };
        m.resolve_spreadsheet().unwrap();
        assert_eq!((m.spreadsheet_id.as_str(), m.sheet_id), ("1AbC", 7));
        m.resolve_spreadsheet().unwrap();
        assert_eq!((m.spreadsheet_id.as_str(), m.sheet_id), ("1AbC", 7));
        m.spreadsheet_id = "https://docs.google.com/spreadsheets/d/1AbC/edit#gid=8".into();
        let e = m.resolve_spreadsheet().unwrap_err();
        assert!(e.to_string().contains("gid=8 but sheet_id = 7"), "{e}");
    }
}
