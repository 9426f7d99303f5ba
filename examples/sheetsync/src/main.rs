//! `sheetsync`: the reference daemon. Keeps Google Sheet tabs and SQL tables in two-way sync.
//!
//! ```text
//! cargo run -p sheetsync-cli                                  # embedded demo
//! cargo install --path examples/sheetsync                     # the `sheetsync` binary
//! sheetsync -c sheetsync.toml check
//! sheetsync -c sheetsync.toml run
//! ```
//!
//! Commands: `run`, `check`, `plan`, `install`, `uninstall`, `apps-script`, `status`,
//! `conflicts`, `deletes`, `reset`.
//! The configuration reference is in the README and in `examples/sheetsync/sheetsync.example.toml`.
//! The sync itself is the library's [`SheetSync`]: this binary adds the configuration file, the
//! HTTP side (webhook, health, metrics, admin API), the commands and the demo.

#![warn(clippy::too_many_lines)]

mod access;
mod admin;
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
mod alloc;
mod arenas;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod http;
mod inspect;
mod load;
mod metrics;
mod progress;
mod server;
mod status_page;
mod tables;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use clap::{Parser, Subcommand};
use sheetsync::gsheets::watch::{create_journal, ChangeDetection, JOURNAL_TAB};
use sheetsync::sync::{DbTable, Sides};
use sheetsync::{Error, ErrorKind, Result, SheetSync, Side, SyncConfig};
use tokio::sync::watch;

use admin::{percent_encode, AdminClient};
use config::{Config, LogFormat};
#[cfg(feature = "demo")]
use demo::Demo;
use server::Daemon;

/// Without the `demo` feature there is no embedded demo.
#[cfg(not(feature = "demo"))]
enum Demo {}

#[derive(Parser)]
#[command(
    name = "sheetsync",
    version,
    about = "Keeps Google Sheets and SQL tables in two-way, near-real-time sync"
)]
struct Cli {
    /// Configuration file (TOML). Without one, `run` starts the embedded demo.
    #[arg(short, long, env = "SHEETSYNC_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format (overrides the configuration).
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Sync until stopped (SIGINT/SIGTERM). Without a configuration: the embedded demo.
    Run {
        /// Listen address (overrides the configuration; `127.0.0.1:0` picks a free port).
        #[arg(long)]
        listen: Option<String>,
        /// Do not install change capture if it is missing.
        #[arg(long)]
        no_install: bool,
        /// Where the demo keeps its SQLite file.
        #[arg(long)]
        demo_dir: Option<PathBuf>,
    },
    /// Validate the configuration, connectivity, permissions, schemas and headers.
    Check,
    /// Show what the next cycle would do on each side; writes nothing.
    Plan {
        /// Only this mapping.
        #[arg(long)]
        mapping: Option<String>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install change capture (triggers and change log) on the mapped tables.
    Install {
        /// Only this mapping.
        #[arg(long)]
        mapping: Option<String>,
    },
    /// Remove change capture.
    Uninstall {
        /// Only this mapping.
        #[arg(long)]
        mapping: Option<String>,
    },
    /// Print the Apps Script for the Sheet: in journal mode (the default) as it is, in webhook
    /// mode with the webhook URL filled in.
    AppsScript {
        /// The public webhook URL (webhook mode; default: server.public_url).
        #[arg(long)]
        url: Option<String>,
        /// `journal` or `webhook` (default: sheets.change_detection).
        #[arg(long)]
        mode: Option<String>,
    },
    /// Show a running daemon's mappings: up, lag, held rows, conflicts, pending deletes.
    Status {
        /// The admin API's JSON instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// List or resolve conflicts and held rows of a running daemon.
    Conflicts {
        #[command(subcommand)]
        action: ConflictsCmd,
    },
    /// List, approve or reject the deletes a running daemon's mass-delete guard holds back.
    Deletes {
        #[command(subcommand)]
        action: DeletesCmd,
    },
    /// Start a mapping afresh (the daemon must be stopped): forget its saved state and record
    /// the Sheet and table it points at now, then sync once, merging both sides and deleting
    /// nothing. This is how a mapping is moved to another spreadsheet, tab or table.
    Reset {
        /// The mapping.
        #[arg(long)]
        mapping: String,
    },
}

#[derive(Subcommand)]
enum DeletesCmd {
    /// List the pending deletes.
    List {
        /// Only this mapping.
        #[arg(long)]
        mapping: Option<String>,
        /// The admin API's JSON instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// Approve pending deletes: the rows are deleted on the other side too.
    Approve(DecideArgs),
    /// Reject pending deletes: the rows are restored on the side that deleted them.
    Reject(DecideArgs),
}

#[derive(clap::Args)]
struct DecideArgs {
    /// The mapping.
    #[arg(long)]
    mapping: String,
    #[command(flatten)]
    which: Which,
}

/// Which pending deletes: exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// One row's key value(s); repeat for composite keys.
    #[arg(long)]
    key: Vec<String>,
    /// Every pending delete of the mapping.
    #[arg(long)]
    all: bool,
    /// Pending deletes parked at least this long ago (`90s`, `30m`, `2h`, `1d`).
    #[arg(long, value_parser = parse_age)]
    older_than: Option<u64>,
}

/// Seconds from `90s`, `30m`, `2h`, `1d` (a plain number is seconds).
fn parse_age(s: &str) -> std::result::Result<u64, String> {
    let (n, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not an age such as 90s, 30m, 2h or 1d"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    Ok(n * unit)
}

#[derive(Subcommand)]
enum ConflictsCmd {
    /// List conflicts and held rows.
    List {
        /// Only this mapping.
        #[arg(long)]
        mapping: Option<String>,
        /// The admin API's JSON instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a conflict by taking one side, or given values.
    Resolve {
        /// The mapping.
        #[arg(long)]
        mapping: String,
        /// The key value(s); repeat for composite keys.
        #[arg(long, required = true)]
        key: Vec<String>,
        /// Take this side's row.
        #[arg(long, value_parser = parse_side, conflicts_with = "value")]
        side: Option<Side>,
        /// Or take these values, one per column in order.
        #[arg(long)]
        value: Vec<String>,
    },
}

fn parse_side(s: &str) -> std::result::Result<Side, String> {
    match s {
        "sheet" => Ok(Side::Sheet),
        "db" | "database" => Ok(Side::Db),
        _ => Err(format!("{s:?} is not a side; use sheet or db")),
    }
}

fn main() -> ExitCode {
    arenas::apply(); // before the runtime's threads exist
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Whether the daemon speaks JSON: its log lines, and the lines it prints on stdout.
static JSON_OUTPUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn init_logging(format: LogFormat, filter: Option<&str>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter.unwrap_or("info,sqlx=warn")));
    // Colours only for a person at a terminal: files, journald and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = JSON_OUTPUT.set(format == LogFormat::Json);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Prints `<what> on <url>` on stdout, or `{"event": what, "url": url}` in JSON mode.
fn announce(what: &str, url: &str) {
    if JSON_OUTPUT.get().copied().unwrap_or(false) {
        println!("{}", serde_json::json!({ "event": what, "url": url }));
    } else {
        println!("{what} on {url}");
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Run {
        listen: None,
        no_install: false,
        demo_dir: None,
    });
    let load = || -> Result<Config> {
        match &cli.config {
            Some(p) => Config::load(p),
            None => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "this command needs a configuration file: -c sheetsync.toml (or SHEETSYNC_CONFIG)",
            )),
        }
    };
    match command {
        Command::Run {
            listen,
            no_install,
            demo_dir,
        } => {
            let (cfg, demo) = match &cli.config {
                Some(p) => (Config::load(p)?, None),
                None => start_demo(demo_dir, listen.as_deref()).await?,
            };
            init_logging(
                cli.log_format.unwrap_or(cfg.log.format),
                cfg.log.filter.as_deref(),
            );
            run(cfg, listen, !no_install, demo).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let cfg = load()?;
            init_logging(cli.log_format.unwrap_or(cfg.log.format), Some("warn"));
            inspect::check(&cfg).await
        }
        Command::Plan { mapping, json } => {
            let cfg = load()?;
            init_logging(cli.log_format.unwrap_or(cfg.log.format), Some("warn"));
            inspect::plan(&cfg, mapping.as_deref(), json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { ref mapping } | Command::Uninstall { ref mapping } => {
            let install = matches!(command, Command::Install { .. });
            let cfg = load()?;
            init_logging(cli.log_format.unwrap_or(cfg.log.format), Some("warn"));
            capture(&cfg, mapping.as_deref(), install).await
        }
        Command::AppsScript { url, mode } => apps_script(&load()?, url, mode.as_deref()),
        Command::Status { json } => {
            let cfg = load()?;
            let admin = AdminClient::from_config(&cfg)?;
            match json {
                true => admin.print("GET", "/api/status", None).await,
                false => admin.show("/api/status", tables::status).await,
            }
        }
        Command::Conflicts { action } => {
            let cfg = load()?;
            conflicts(&cfg, action).await
        }
        Command::Deletes { action } => {
            let cfg = load()?;
            deletes(&cfg, action).await
        }
        Command::Reset { mapping } => {
            let cfg = load()?;
            init_logging(cli.log_format.unwrap_or(cfg.log.format), Some("warn"));
            reset(&cfg, &mapping).await
        }
    }
}

/// `install` / `uninstall`: change capture on the mapped tables; `install` in journal mode
/// also makes each spreadsheet's edit journal tab.
async fn capture(cfg: &Config, only: Option<&str>, install: bool) -> Result<ExitCode> {
    let mappings = selected(cfg, only)?;
    for m in &mappings {
        let db = DbTable::open(&m.database_url, &m.table, None).await?;
        if install {
            db.install().await?;
            println!("{}: change capture installed on {}", m.sync.name, m.table);
        } else {
            db.uninstall().await?;
            println!("{}: change capture removed from {}", m.sync.name, m.table);
        }
    }
    if install && cfg.sheets.change_detection == ChangeDetection::Journal {
        install_journals(cfg, &mappings).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the edit journal tab of each mapped spreadsheet that has none.
async fn install_journals(cfg: &Config, mappings: &[&SyncConfig]) -> Result<()> {
    let client = inspect::impatient_client(&cfg.sheets).await?;
    let mut done: Vec<String> = Vec::new();
    for m in mappings {
        let mut m = (*m).clone();
        m.resolve_spreadsheet()?;
        if done.contains(&m.spreadsheet_id) {
            continue;
        }
        let made = create_journal(&client, &m.spreadsheet_id).await.map_err(|e| {
            e.with_context(
                "hint",
                "journal mode needs the edit journal tab; set sheets.change_detection = \"webhook\" or \"polling\" to do without",
            )
        })?;
        let what = if made { "made" } else { "already there" };
        println!(
            "{}: edit journal tab {JOURNAL_TAB} {what} in spreadsheet {}",
            m.sync.name, m.spreadsheet_id
        );
        done.push(m.spreadsheet_id);
    }
    Ok(())
}

/// `apps-script`: the script for the configured change detection mode (or `mode`).
fn apps_script(cfg: &Config, url: Option<String>, mode: Option<&str>) -> Result<ExitCode> {
    let mode = match mode {
        None => cfg.sheets.change_detection,
        Some("journal") => ChangeDetection::Journal,
        Some("webhook") => ChangeDetection::Webhook,
        Some(other) => {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("--mode {other:?}: the Apps Script has two modes, journal and webhook"),
            ))
        }
    };
    match mode {
        ChangeDetection::Journal => {
            print!("{}", sheetsync::gsheets::APPS_SCRIPT);
            eprintln!(
                "Paste the script into the spreadsheet's Extensions > Apps Script editor, run \
                 install, and authorize. Journal mode needs no URL and no secret: the script \
                 appends edits to the hidden {JOURNAL_TAB} tab, which the daemon polls."
            );
            Ok(ExitCode::SUCCESS)
        }
        ChangeDetection::Polling => Err(Error::new(
            ErrorKind::ConfigInvalid,
            "sheets.change_detection = \"polling\" uses no Apps Script; give --mode journal (recommended) or --mode webhook",
        )),
        ChangeDetection::Webhook => webhook_script(cfg, url),
    }
}

/// The script in webhook mode, with the URL filled in (the secret stays a Script Property).
fn webhook_script(cfg: &Config, url: Option<String>) -> Result<ExitCode> {
    let url = url.or(cfg.server.public_url.clone()).ok_or_else(|| {
        Error::new(
            ErrorKind::ConfigInvalid,
            "give --url or set server.public_url: the address Google's servers post to",
        )
    })?;
    if cfg.server.webhook_secret.is_none() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "set server.webhook_secret (or SHEETSYNC_WEBHOOK_SECRET) first",
        ));
    }
    print!("{}", sheetsync::gsheets::apps_script_configured(&url));
    eprintln!(
        "Paste the script into the spreadsheet's Extensions > Apps Script editor. In Project \
         Settings > Script Properties, add SHEETSYNC_SECRET with the value of \
         server.webhook_secret (the script never contains it). Then run sheetsyncConfigure, \
         then install, and authorize."
    );
    Ok(ExitCode::SUCCESS)
}

/// The embedded demo's configuration, with the demo running (emulator and seeded database).
#[cfg(feature = "demo")]
async fn start_demo(
    dir: Option<PathBuf>,
    listen: Option<&str>,
) -> Result<(Config, Option<Arc<Demo>>)> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("sheetsync-demo"));
    let (d, cfg) = Demo::start(&dir, listen.unwrap_or("127.0.0.1:8787")).await?;
    Ok((cfg, Some(Arc::new(d))))
}

#[cfg(not(feature = "demo"))]
async fn start_demo(_: Option<PathBuf>, _: Option<&str>) -> Result<(Config, Option<Arc<Demo>>)> {
    Err(Error::new(
        ErrorKind::ConfigInvalid,
        "this build has no embedded demo (feature `demo`): give a configuration, -c sheetsync.toml",
    ))
}

fn selected<'a>(cfg: &'a Config, only: Option<&str>) -> Result<Vec<&'a SyncConfig>> {
    let list: Vec<&SyncConfig> = cfg
        .mappings
        .iter()
        .filter(|m| only.is_none_or(|n| m.sync.name == n))
        .collect();
    if list.is_empty() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("no mapping named {:?}", only.unwrap_or_default()),
        ));
    }
    Ok(list)
}

async fn run(
    cfg: Config,
    listen_override: Option<String>,
    install: bool,
    demo: Option<Arc<Demo>>,
) -> Result<()> {
    let mut builder = SheetSync::builder()
        .sheets(cfg.replicas.quota_part(&cfg.sheets))
        .share(cfg.replicas.share_options())
        .install_capture(install)
        // The demo's Sheet lives in an emulator started anew each time: its state belongs to
        // the previous run's spreadsheet, so the demo starts the mapping afresh.
        .afresh_when_moved(demo.is_some());
    for m in &cfg.mappings {
        builder = builder.mapping(m.clone());
    }
    let sync = Arc::new(builder.open().await?);
    let daemon = Arc::new(Daemon::new(sync.clone()));
    let (stop_tx, stop_http) = watch::channel(false);
    let servers = serve_http(&cfg, listen_override, &daemon, &demo, stop_http).await?;

    // The first cycle of each mapping is the initial sync: show progress while it runs.
    let first: Vec<_> = sync.mappings().iter().map(|m| m.subscribe()).collect();
    sync.start();
    let every = cfg.log.progress_interval();
    let running = async {
        for (m, events) in sync.mappings().iter().zip(first) {
            progress::initial_sync(m, events, every).await;
        }
        // Later full reads of a big tab take long too: they say how far they got in the same way.
        for m in sync.mappings() {
            progress::follow_long_reads(m.clone(), every);
        }
        wait_for_signal().await
    };
    // A mapping that cannot start (its state belongs to other sides, say) ends the daemon,
    // during the initial syncs too.
    let outcome = tokio::select! {
        _ = running => Ok(()),
        e = sync.failed() => Err(e),
    };
    tracing::info!("shutting down");
    sync.shutdown().await?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(servers)).await;
    stop_demo(demo).await;
    outcome
}

/// Binds the listeners and serves them until `stop`: the webhook, health and metrics (and the
/// demo's page) on `server.listen`; the admin API there too, behind its token, or on
/// `server.admin_listen` alone.
async fn serve_http(
    cfg: &Config,
    listen_override: Option<String>,
    daemon: &Arc<Daemon>,
    demo: &Option<Arc<Demo>>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let webhook = cfg
        .server
        .webhook_secret
        .clone()
        .map(|secret| (cfg.server.webhook_path.clone(), secret));
    let access = Arc::new(cfg.server.admin_access());
    let admin = server::admin_router(daemon.clone(), access.clone());
    let mut app = server::public_router(daemon.clone(), webhook)?;
    add_demo_page(&mut app, demo, &daemon.sync, &access);
    let limits = cfg.server.limits();
    let mut servers = Vec::new();
    match (&cfg.server.admin_listen, &cfg.server.admin_token) {
        (Some(addr), _) => {
            let listener = http::Listener::bind(addr).await?;
            announce("admin API", &listener.describe());
            servers.push(tokio::spawn(http::serve(listener, admin, limits, stop.clone())));
            app = app.merge(server::admin_elsewhere(StatusCode::NOT_FOUND, "not found"));
        }
        (None, Some(_)) => app = app.merge(admin),
        (None, None) => app = app.merge(server::admin_elsewhere(
            StatusCode::FORBIDDEN,
            "the admin API is off: set server.admin_token (or SHEETSYNC_ADMIN_TOKEN), or server.admin_listen",
        )),
    }
    let listen = listen_override.unwrap_or(cfg.server.listen.clone());
    let listener = http::Listener::bind(&listen).await?;
    announce("listening", &listener.describe());
    if let Some(addr) = listener.local_addr() {
        announce_demo(demo, addr)?;
    }
    servers.push(tokio::spawn(http::serve(listener, app, limits, stop)));
    Ok(servers)
}

#[cfg(feature = "demo")]
fn add_demo_page(
    app: &mut axum::Router,
    demo: &Option<Arc<Demo>>,
    sync: &SheetSync,
    access: &Arc<server::AdminAccess>,
) {
    if let (Some(d), Some(s), Some(m)) = (demo, sync.sides().first(), sync.mappings().first()) {
        // The page edits the Sheet: only under this host's own names (no DNS rebinding).
        let hosts_only = Arc::new(access.hosts_only());
        let page = d.clone().router(s.db.table(), m.clone()).route_layer(
            axum::middleware::from_fn_with_state(hosts_only, server::guard),
        );
        *app = std::mem::take(app).merge(page);
    }
}

#[cfg(feature = "demo")]
fn announce_demo(demo: &Option<Arc<Demo>>, addr: std::net::SocketAddr) -> Result<()> {
    if let Some(d) = demo {
        d.register_webhook(addr)?;
        println!("{}", d.banner(addr));
    }
    Ok(())
}

#[cfg(feature = "demo")]
async fn stop_demo(demo: Option<Arc<Demo>>) {
    if let Some(d) = demo {
        d.emulator.shutdown().await;
    }
}

#[cfg(not(feature = "demo"))]
fn add_demo_page(
    _: &mut axum::Router,
    _: &Option<Arc<Demo>>,
    _: &SheetSync,
    _: &Arc<server::AdminAccess>,
) {
}

#[cfg(not(feature = "demo"))]
fn announce_demo(_: &Option<Arc<Demo>>, _: std::net::SocketAddr) -> Result<()> {
    Ok(())
}

#[cfg(not(feature = "demo"))]
async fn stop_demo(_: Option<Arc<Demo>>) {}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn conflicts(cfg: &Config, action: ConflictsCmd) -> Result<ExitCode> {
    let admin = AdminClient::from_config(cfg)?;
    let (method, path, body) = match action {
        ConflictsCmd::List { mapping, json } => {
            let path = match mapping {
                Some(m) => format!("/api/conflicts?mapping={}", percent_encode(&m)),
                None => "/api/conflicts".into(),
            };
            if !json {
                return admin.show(&path, tables::conflicts).await;
            }
            ("GET", path, None)
        }
        ConflictsCmd::Resolve {
            mapping,
            key,
            side,
            value,
        } => {
            let body = match side {
                Some(s) => serde_json::json!({"mapping": mapping, "key": key, "side": s}),
                None if !value.is_empty() => {
                    serde_json::json!({"mapping": mapping, "key": key, "row": value})
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "give --side sheet|db or the row's --value list",
                    ))
                }
            };
            (
                "POST",
                "/api/conflicts/resolve".into(),
                Some(body.to_string()),
            )
        }
    };
    admin.print(method, &path, body.as_deref()).await
}

async fn deletes(cfg: &Config, action: DeletesCmd) -> Result<ExitCode> {
    let admin = AdminClient::from_config(cfg)?;
    let (method, path, body) = match action {
        DeletesCmd::List { mapping, json } => {
            let path = match mapping {
                Some(m) => format!("/api/deletes?mapping={}", percent_encode(&m)),
                None => "/api/deletes".into(),
            };
            if !json {
                return admin.show(&path, tables::deletes).await;
            }
            ("GET", path, None)
        }
        DeletesCmd::Approve(args) => ("POST", "/api/deletes/approve".into(), Some(args.body())),
        DeletesCmd::Reject(args) => ("POST", "/api/deletes/reject".into(), Some(args.body())),
    };
    admin.print(method, &path, body.as_deref()).await
}

impl DecideArgs {
    /// The admin API request (clap makes sure exactly one selection is given).
    fn body(&self) -> String {
        let mut body = serde_json::json!({ "mapping": self.mapping });
        if self.which.all {
            body["all"] = true.into();
        } else if let Some(secs) = self.which.older_than {
            body["older_than_secs"] = secs.into();
        } else {
            body["keys"] = serde_json::json!([self.which.key]);
        }
        body.to_string()
    }
}

/// Where a daemon runs `mapping`, asked through the admin API; without one, any daemon that
/// answers `/healthz` on `server.listen` counts.
async fn daemon_running(cfg: &Config, mapping: &str) -> Option<String> {
    let Ok(admin) = AdminClient::from_config(cfg) else {
        let health = AdminClient::health(cfg)
            .request("GET", "/healthz", None)
            .await;
        return health.is_ok().then(|| cfg.server.listen.clone());
    };
    let (200, status) = admin.request("GET", "/api/status", None).await.ok()? else {
        return None;
    };
    let runs = serde_json::from_str::<serde_json::Value>(&status)
        .ok()
        .and_then(|v| v["mappings"].as_array().cloned())
        .is_some_and(|ms| ms.iter().any(|x| x["mapping"] == mapping));
    runs.then(|| admin.describe())
}

async fn reset(cfg: &Config, mapping: &str) -> Result<ExitCode> {
    let m = selected(cfg, Some(mapping))?[0];
    // The running daemon holds the mapping's state in memory and would write it back.
    if let Some(at) = daemon_running(cfg, mapping).await {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("a daemon at {at} runs mapping {mapping:?}: stop it first, then reset"),
        ));
    }
    let client = cfg.sheets.client().await?;
    let s = Sides::open(m, client).await?;
    if !s.db.is_installed().await? {
        s.db.install().await?;
        println!("{mapping}: change capture installed on {}", m.table);
    }
    let store = s.db.state_store().await?;
    // A running daemon holds the mapping's lease: resetting under it would race its cycles.
    let owner = match store.try_lease(mapping, "sheetsync reset").await {
        Ok(Some(lease)) => Some(lease),
        Ok(None) => {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("mapping {mapping:?} is running in another process (it holds the mapping's lease): stop the daemon first"),
            ))
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => None,
        Err(e) => return Err(e),
    };
    let engine = s.engine(store, true, owner).await?;
    println!(
        "{mapping}: saved state forgotten; syncing both sides as they are (nothing is deleted)"
    );
    let r = engine.run_once().await?;
    println!(
        "{mapping}: started afresh: {} rows written to the Sheet, {} to the database, {} held, {} conflicts",
        r.writes.sheet, r.writes.db, r.held, r.conflicts
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_arena_bound_applies_unless_malloc_arena_max_is_set() {
        assert_eq!(arenas::bound(None), Some(arenas::DEFAULT));
        assert_eq!(arenas::bound(Some("8")), None);
        let empty = arenas::bound(Some(""));
        assert_eq!(empty, Some(arenas::DEFAULT), "an empty value sets nothing");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_arena_bound() {
        assert!(arenas::set(arenas::DEFAULT), "mallopt(M_ARENA_MAX) refused");
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("90"), Ok(90));
        assert_eq!(parse_age("90s"), Ok(90));
        assert_eq!(parse_age("30m"), Ok(1_800));
        assert_eq!(parse_age("2h"), Ok(7_200));
        assert_eq!(parse_age("1d"), Ok(86_400));
        assert!(parse_age("2 weeks").is_err());
        assert!(parse_age("h").is_err());
    }

    fn decide_body(args: &[&str]) -> Result<String, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        match cli.command {
            Some(Command::Deletes {
                action: DeletesCmd::Approve(a) | DeletesCmd::Reject(a),
            }) => Ok(a.body()),
            _ => panic!("not a deletes decision"),
        }
    }

    #[test]
    fn deletes_commands_take_exactly_one_selection() {
        let body = decide_body(&[
            "sheetsync",
            "deletes",
            "approve",
            "--mapping",
            "m",
            "--key",
            "7",
        ])
        .unwrap();
        assert_eq!(body, r#"{"keys":[["7"]],"mapping":"m"}"#);
        let body =
            decide_body(&["sheetsync", "deletes", "reject", "--mapping", "m", "--all"]).unwrap();
        assert_eq!(body, r#"{"all":true,"mapping":"m"}"#);
        let body = decide_body(&[
            "sheetsync",
            "deletes",
            "approve",
            "--mapping",
            "m",
            "--older-than",
            "2h",
        ])
        .unwrap();
        assert_eq!(body, r#"{"mapping":"m","older_than_secs":7200}"#);
        assert!(decide_body(&["sheetsync", "deletes", "approve", "--mapping", "m"]).is_err());
        assert!(decide_body(&[
            "sheetsync",
            "deletes",
            "approve",
            "--mapping",
            "m",
            "--all",
            "--key",
            "1"
        ])
        .is_err());
    }
}
