//! Every broken configuration the daemon can be given ends in one clear message (the setting,
//! its value, why, what to write instead) and a non-zero exit, never a panic; and the
//! README's order `check` → `install` → `plan` → `run` works on a new, empty tab.
//!
//! ```sh
//! cargo test -p sheetsync-cli --test config_errors
//! ```

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{row, Backend, World};

/// What a case expects.
enum Want {
    /// Refused at load: exit 2 and exactly this message.
    Load(String),
    /// Refused at load: exit 2 and a message containing these.
    LoadContains(&'static [&'static str]),
    /// `check` runs and fails: exit 1 and a `FAIL` line containing these.
    Check(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    config: String,
    want: Want,
}

fn load(message: impl Into<String>) -> Want {
    Want::Load(message.into())
}

/// Adds `line` to `[server]`.
fn server(cfg: &str, line: &str) -> String {
    cfg.replacen("\n[log]", &format!("{line}\n\n[log]"), 1)
}

/// Adds `line` to `[sheets]`.
fn sheets(cfg: &str, line: &str) -> String {
    cfg.replacen("[sheets]\n", &format!("[sheets]\n{line}\n"), 1)
}

/// Adds `line` to the mapping.
fn mapping(cfg: &str, line: &str) -> String {
    format!("{cfg}{line}\n")
}

const TIMING: &str = "timing = { poll_interval_ms = 200, full_scan_interval_ms = 1000 }";

fn cases(w: &World) -> Vec<Case> {
    let base = w.config_text();
    let id = w.mappings[0].spreadsheet_id.clone();
    let listen = format!("127.0.0.1:{}", w.port);
    let case = |name, config: String, want| Case { name, config, want };
    let timing = |t: &str| base.replace(TIMING, &format!("timing = {{ {t} }}"));
    vec![
        case("malformed TOML", base.replace("[server]", "[server"), Want::LoadContains(&["configuration: TOML parse error", "[server"])),
        case("unknown section", base.replace("[log]", "[logging]"), Want::LoadContains(&["unknown field `logging`"])),
        case("unknown server setting", server(&base, "listen_addr = \"x\""), Want::LoadContains(&["unknown field `listen_addr`"])),
        case("unknown mapping setting", mapping(&base, "resolver = []"), Want::LoadContains(&["mapping #1: unknown setting \"resolver\""])),
        case("unset variable", base.replace(&w.secret, "${SHEETSYNC_TEST_NOT_SET}"), load("the configuration uses ${SHEETSYNC_TEST_NOT_SET} but the environment variable SHEETSYNC_TEST_NOT_SET is not set")),
        case("a value of the wrong type", mapping(&base, "header_row = \"two\""), Want::LoadContains(&["header_row", "expected u32"])),
        case("a log filter that does not parse", base.replace("filter = \"info,sqlx=warn\"", "filter = \"info,sqlx=loud\""), Want::LoadContains(&["log.filter = \"info,sqlx=loud\": ", "write a filter such as \"info,sqlx=warn\""])),
        case("progress lines too often", base.replace("filter = \"info,sqlx=warn\"", "filter = \"info,sqlx=warn\"\nprogress_interval_ms = 10"), Want::LoadContains(&["log.progress_interval_ms = 10: ", "write a value such as 5000"])),
        case("unknown panic policy", mapping(&base, "on_panic = \"ignore\""), Want::LoadContains(&["unknown variant `ignore`"])),
        case("webhook path without /", server(&base, "webhook_path = \"hook\""), load("server.webhook_path = \"hook\": a path starts with '/'; write \"/hook\"")),
        case("webhook path the daemon uses", server(&base, "webhook_path = \"/healthz\""), load("server.webhook_path = \"/healthz\": the daemon answers there itself; write a path of its own such as \"/webhook\"")),
        case("webhook path with a capture", server(&base, "webhook_path = \"/hook/{id}\""), load("server.webhook_path = \"/hook/{id}\": use letters, digits and - . _ ~ / only; write a path such as \"/webhook\"")),
        case("listen without host", base.replace(&listen, "8787"), load("server.listen = \"8787\" is not a host:port address; write one such as \"127.0.0.1:8787\"")),
        case("relative admin socket", server(&base, "admin_listen = \"unix:admin.sock\""), load("server.admin_listen = \"unix:admin.sock\": a Unix socket needs an absolute path, such as \"unix:/run/sheetsync/admin.sock\"")),
        case("admin on the webhook listener", server(&base, &format!("admin_listen = \"{listen}\"")), load(format!("server.admin_listen = \"{listen}\" is server.listen too: the admin API needs a listener of its own, such as \"127.0.0.1:8788\""))),
        case("open admin listener without a token", server(&base.replace(&format!("admin_token = \"{}\"\n", w.admin_token), ""), "admin_listen = \"0.0.0.0:8788\""), load("server.admin_listen = \"0.0.0.0:8788\" is reachable from other hosts: set server.admin_token as well, or listen on a loopback address such as \"127.0.0.1:8788\"")),
        case("short admin token", base.replace(&w.admin_token, "hunter2"), load("server.admin_token is 7 characters long: it needs at least 16 and no spaces; generate one with `openssl rand -hex 32`")),
        case("zero header timeout", server(&base, "header_timeout_ms = 0"), load("server.header_timeout_ms = 0: clients need at least 100 ms; write a value such as 10000")),
        case("tiny body timeout", server(&base, "body_timeout_ms = 50"), load("server.body_timeout_ms = 50: clients need at least 100 ms; write a value such as 30000")),
        case("zero idle timeout", server(&base, "idle_timeout_ms = 0"), load("server.idle_timeout_ms = 0: clients need at least 100 ms; write a value such as 60000")),
        case("no connections", server(&base, "max_connections = 0\nmax_connections_per_peer = 1"), load("server.max_connections = 0: nothing could connect; write a value such as 128")),
        case("more per peer than in all", server(&base, "max_connections_per_peer = 500"), load("server.max_connections_per_peer = 500: it must be between 1 and server.max_connections (128); write a value such as 32")),
        case("empty webhook secret", base.replace(&w.secret, ""), load("server.webhook_secret is empty; set a long random value (`openssl rand -hex 32`), or leave it out to turn the webhook off")),
        case("public URL without scheme", server(&base, "public_url = \"sync.example.com\""), load("server.public_url = \"sync.example.com\": it is the address Google's servers post to; write a full URL such as \"https://sync.example.com/webhook\"")),
        case("Sheets URL without /", base.replace(&w.emu.base_url(), "http://127.0.0.1:9"), load("sheets.base_url = \"http://127.0.0.1:9\": write a full URL ending in '/', such as \"https://sheets.googleapis.com/\"")),
        case("no read quota", base.replace("reads_per_minute = 6000", "reads_per_minute = 0"), load("sheets.reads_per_minute = 0: nothing could be sent; write Google's quota, 60")),
        case("zero poll interval", timing("poll_interval_ms = 0, full_scan_interval_ms = 1000"), load("mapping \"items\": timing.poll_interval_ms = 0: below 100 ms the daemon spins on the API quota; write 2000 (the webhook makes edits arrive sooner anyway)")),
        case("full reads more often than cycles", timing("poll_interval_ms = 500, full_scan_interval_ms = 10"), load("mapping \"items\": timing.full_scan_interval_ms = 10: a full read at most once a cycle makes sense; write at least poll_interval_ms (500), such as 600000")),
        case("zero change batch", timing("poll_interval_ms = 200, full_scan_interval_ms = 1000, change_batch = 0"), load("mapping \"items\": timing.change_batch = 0: no change could be read; write 5000")),
        case("unknown sheet status", mapping(&base, "sheet_status = \"cell\""), Want::LoadContains(&["unknown variant `cell`", "`off`, `note`, `column`"])),
        case("status column without its header", mapping(&base, "sheet_status = \"column\""), load("mapping \"items\": sheet_status = \"column\" needs status_column, the header of the column sheetsync writes, such as status_column = \"sync status\"")),
        case("status column without column mode", mapping(&base, "sheet_status = \"note\"\nstatus_column = \"state\""), load("mapping \"items\": status_column is only used with sheet_status = \"column\"; add that, or leave status_column out")),
        case("status column named like a listed column", mapping(&base, "columns = [{ name = \"id\" }, { name = \"name\" }]\nsheet_status = \"column\"\nstatus_column = \"name\""), load("mapping \"items\": status_column = \"name\" is a mapped column: sheetsync would overwrite what syncs; name a column of its own, such as \"sync status\"")),
        case("status column named like a table column", mapping(&base, "sheet_status = \"column\"\nstatus_column = \"price\""), Want::Check(&["status_column = \"price\" is a mapped column"])),
        case("header row 0", mapping(&base, "header_row = 0"), load("mapping \"items\": header_row = 0: rows are numbered from 1; write header_row = 1 for the first row")),
        case("unknown database", base.replace(&w.db.url, "oracle://db/x"), load("mapping \"items\": database_url must start with postgres://, mysql://, mariadb:// or sqlite: (got \"oracle://db/x\")")),
        case("empty spreadsheet id", base.replace(&id, ""), load("mapping \"items\": spreadsheet_id is empty; write the spreadsheet's id or URL")),
        case("not a spreadsheet id", base.replace(&id, "my orders sheet"), load("mapping \"items\": spreadsheet_id: \"my orders sheet\" is neither a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit) nor a spreadsheet id (letters, digits, - and _)")),
        case("URL naming another tab", base.replace(&format!("spreadsheet_id = \"{id}\"\nsheet_id = 0"), &format!("spreadsheet_id = \"https://docs.google.com/spreadsheets/d/{id}/edit#gid=5\"\nsheet_id = 3")), load("mapping \"items\": spreadsheet_id: the spreadsheet URL names tab gid=5 but sheet_id = 3; keep one of them")),
        case("key named twice", base.replace("key = [\"id\"]", "key = [\"id\", \"id\"]"), load("mapping \"items\": key names \"id\" twice")),
        case("two mappings of one name", format!("{base}\n{}", &base[base.find("[[mapping]]").unwrap()..]), load("two mappings are named \"items\"; give each its own name")),
        case("no mapping", base[..base.find("[[mapping]]").unwrap()].to_string(), load("the configuration has no [[mapping]]; add one (see sheetsync.example.toml)")),
        case("several problems at once", server(&mapping(&base, "header_row = 0"), "webhook_path = \"hook\""), load("2 problems in the configuration:\n  - server.webhook_path = \"hook\": a path starts with '/'; write \"/hook\"\n  - mapping \"items\": header_row = 0: rows are numbered from 1; write header_row = 1 for the first row")),
        case("key that is not the primary key", base.replace("key = [\"id\"]", "key = [\"code\"]"), Want::Check(&["items: key: config_invalid: mapping \"items\": key = [\"code\"] is not the primary key of t_items (its primary key is [\"id\"]); write key = [\"id\"], or leave key out to use it"])),
        case("PostgreSQL not listening", base.replace(&w.db.url, "postgres://postgres@127.0.0.1:1/shop"), Want::Check(&["cannot connect to 127.0.0.1:1", "Connection refused"])),
        case("MySQL not listening", base.replace(&w.db.url, "mysql://root@127.0.0.1:1/shop"), Want::Check(&["cannot connect to 127.0.0.1:1", "Connection refused"])),
        case("a table that does not exist", base.replace("table = \"t_items\"", "table = \"no_such_table\""), Want::Check(&["database table no_such_table", "no_such_table"])),
        case("Sheets API not listening", base.replace(&w.emu.base_url(), "http://127.0.0.1:1/"), Want::Check(&["sheet", "Connection refused", "(the Sheets API at 127.0.0.1:1)"])),
        case("Google without credentials", base.replace(&w.emu.base_url(), "https://sheets.googleapis.com/"), Want::Check(&["sheets credentials", "talking to Google needs credentials: set sheets.credentials"])),
        case("a credentials file that is not there", sheets(&base, "credentials = \"/nonexistent/sheetsync-key.json\""), Want::Check(&["sheets credentials", "cannot read the service-account key /nonexistent/sheetsync-key.json"])),
        case("a spreadsheet not shared (or not there)", base.replace(&id, "1NotSharedWithTheServiceAccount"), Want::Check(&["not_found", "check the spreadsheet id and that the spreadsheet is shared with the account sheetsync uses"])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_configuration_gets_one_clear_message_and_a_non_zero_exit() {
    let mut w = World::new(Backend::Sqlite, "config").await;
    w.add_mapping("items", &[(1, row(["1", "one", "A", "", "", ""]))], "")
        .await;
    w.write_config();
    let cases = cases(&w);
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let path = w.dir.join(format!("case-{i}.toml"));
        std::fs::write(&path, &c.config).unwrap();
        let start = Instant::now();
        let out = w.cli(&path, &["check"]).await;
        let took = start.elapsed();
        let text = format!("{}{}", out.stdout, out.stderr);
        let problem = if text.contains("panicked") {
            Some("panicked".to_string())
        } else if took > Duration::from_secs(15) {
            Some(format!("took {took:?}"))
        } else {
            match &c.want {
                Want::Load(msg) => {
                    let want = format!("error: config_invalid: {msg}");
                    (out.code != Some(2) || out.stderr.trim_end() != want)
                        .then(|| format!("wanted exit 2 and\n{want}"))
                }
                Want::LoadContains(parts) => (out.code != Some(2)
                    || !parts.iter().all(|p| out.stderr.contains(p)))
                .then(|| format!("wanted exit 2 and a message with {parts:?}")),
                Want::Check(parts) => {
                    let failed = out
                        .stdout
                        .lines()
                        .find(|l| l.starts_with("FAIL") && parts.iter().all(|p| l.contains(p)));
                    (out.code != Some(1) || failed.is_none())
                        .then(|| format!("wanted exit 1 and a FAIL line with {parts:?}"))
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}\ngot {:?}: {text}", c.name, out.code));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_install_plan_run_on_a_new_empty_tab() {
    let mut w = World::new(Backend::Sqlite, "empty-tab").await;
    let rows = [
        (1, row(["1", "one", "A", "", "", ""])),
        (2, row(["2", "two", "B", "", "", ""])),
    ];
    let m = w.add_mapping("items", &rows, "").await;
    // Pasted from the browser's address bar.
    let id = w.mappings[m].spreadsheet_id.clone();
    let url = format!("https://docs.google.com/spreadsheets/d/{id}/edit#gid=0");
    let cfg = w.config_text().replace(
        &format!("spreadsheet_id = \"{id}\""),
        &format!("spreadsheet_id = \"{url}\""),
    );
    std::fs::write(&w.cfg_path, &cfg).unwrap();

    let out = w.cli(&w.cfg_path, &["check"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!("ok    items: sheet {id}#0: tab \"Sheet1\" is empty: the first cycle writes the header in row 1 (id, name, code, price, due, active) and 2 rows to the Sheet, 0 to the database")),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("warn  items: change capture is not installed"),
        "{out:?}"
    );
    let out = w.cli(&w.cfg_path, &["install"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = w.cli(&w.cfg_path, &["plan"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("the tab \"Sheet1\" is empty: the header is written in row 1 first (id, name, code, price, due, active)")
            && out.stdout.contains("sheet: 2 upserts, 0 deletes"),
        "{out:?}"
    );
    let out = w.cli(&w.cfg_path, &["plan", "--json"]).await;
    let plan: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(plan["writes_header"], "id, name, code, price, due, active");
    assert!(
        w.sheet_values(m).is_empty(),
        "check and plan wrote to the Sheet"
    );

    // `start` writes the configuration again: with the URL, as the person wrote it.
    w.mappings[m].spreadsheet_id = url;
    w.start().await;
    w.mappings[m].spreadsheet_id = id;
    w.converge(m, &harness::rows_map(&rows)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_mode_is_checked_installed_and_scripted() {
    let mut w = World::new(Backend::Sqlite, "journal-setup").await;
    w.change_detection = "journal";
    w.add_mapping("items", &[(1, row(["1", "one", "A", "", "", ""]))], "")
        .await;
    w.write_config();
    let out = w.cli(&w.cfg_path, &["check"]).await;
    assert!(
        out.stdout.contains("warn  items: change detection journal: the spreadsheet has no _sheetsync_journal tab yet; `sheetsync install` makes it"),
        "{out:?}"
    );
    let out = w.cli(&w.cfg_path, &["install"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("items: edit journal tab _sheetsync_journal made in spreadsheet"),
        "{out:?}"
    );
    let again = w.cli(&w.cfg_path, &["install"]).await;
    assert!(again.stdout.contains("already there"), "{again:?}");
    let out = w.cli(&w.cfg_path, &["check"]).await;
    assert!(
        out.stdout.contains(
            "ok    items: change detection journal: person edits reach the database in about"
        ),
        "{out:?}"
    );
    // The script for journal mode needs no URL and holds no secret.
    let out = w.cli(&w.cfg_path, &["apps-script"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("function setupJournal()"), "the script");
    assert!(
        out.stderr.contains("needs no URL and no secret"),
        "{}",
        out.stderr
    );
    let out = w
        .cli(&w.cfg_path, &["apps-script", "--mode", "webhook"])
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("give --url or set server.public_url"),
        "{}",
        out.stderr
    );
    let out = w
        .cli(&w.cfg_path, &["apps-script", "--mode", "pigeon"])
        .await;
    assert!(
        out.stderr
            .contains("the Apps Script has two modes, journal and webhook"),
        "{}",
        out.stderr
    );
    // A mode that does not exist is refused at load.
    let cfg = sheets(&w.config_text(), "").replace(
        "change_detection = \"journal\"",
        "change_detection = \"push\"",
    );
    std::fs::write(&w.cfg_path, cfg).unwrap();
    let out = w.cli(&w.cfg_path, &["check"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("unknown variant `push`, expected one of `journal`, `webhook`, `polling`"),
        "{}",
        out.stderr
    );
}
