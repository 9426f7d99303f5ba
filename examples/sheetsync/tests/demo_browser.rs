//! The embedded demo, driven as a person would drive it: headless Chromium opens the demo page,
//! clicks a cell of the Sheet grid, types a new value and presses Enter, and the SQLite file
//! follows; then an `UPDATE` from another connection shows up in the page's grid.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
//! messages separated by NUL bytes, commands on the browser's fd 3, answers on its fd 4), so the
//! test needs no browser driver, no Node and no extra crate, only a `chromium` binary (Debian:
//! `apt-get install -y chromium`; or point `SHEETSYNC_CHROMIUM` at one). A missing browser fails
//! the test with that advice; it is never skipped.
//!
//! The daemon is this crate's `sheetsync` binary, which cargo builds for its tests
//! (`CARGO_BIN_EXE_sheetsync`); `SHEETSYNC_BIN=<path>` runs another one instead (an installed
//! `sheetsync`, for instance).
//!
//! Every wait polls with a bound (30 s); nothing asserts on timing. A screenshot of the page
//! after both edits is written to `target/tmp/demo_browser.png` (and one at a failure to
//! `target/tmp/demo_browser-failure.png`); a failed run leaves the daemon's and the browser's
//! logs under `target/tmp/demo_browser-run-<pid>/`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sheetsync::sql::sqlx::{self, sqlite::SqliteConnectOptions, ConnectOptions, SqliteConnection};

/// Upper bound of every wait.
const WAIT: Duration = Duration::from_secs(30);
/// Between two looks at something that is expected to change.
const POLL: Duration = Duration::from_millis(100);

/// The cell the test edits: column `qty` of the row whose first cell is `A-100`.
const SKU: &str = "A-100";
const COLUMN: &str = "qty";
/// Typed into the Sheet grid (the seed value is 120).
const TYPED: &str = "4321";
/// Written with SQL from the test's own connection.
const FROM_SQL: i64 = 8765;

#[test]
fn demo_page_edits_flow_both_ways_in_a_real_browser() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // One directory per run (several runs may share a target directory); those of earlier runs
    // whose process is gone are removed (a failed run leaves its logs there).
    for entry in std::fs::read_dir(&tmp).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("demo_browser-run-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let run_dir = tmp.join(format!("demo_browser-run-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).unwrap();
    let screenshot = tmp.join("demo_browser.png");
    let _ = std::fs::remove_file(&screenshot);

    let chromium = find_chromium();
    let bin = daemon_binary();
    let daemon = Daemon::start(&bin, &run_dir.join("demo"), &run_dir.join("daemon.log"));
    let url = daemon.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut db = rt.block_on(open_db(&run_dir.join("demo").join("demo.sqlite")));

    let mut browser = Browser::launch(&chromium, &run_dir);
    browser.open(&url);

    // The initial sync fills the Sheet from the database; the page shows it within a refresh.
    let cell = browser.wait_for_cell(|c| c.text == "120", "the seeded qty 120 of A-100");
    assert!(
        cell.editable,
        "the qty cell of {SKU} is not editable: {cell:?}"
    );

    // Sheet -> database: click, select what is there, type, Enter.
    browser.edit_cell(TYPED);
    wait_until(
        &format!("the database to show qty = {TYPED} for {SKU} after typing it into the page"),
        || {
            if rt.block_on(qty_equals(&mut db, TYPED.parse().unwrap())) {
                return Ok(());
            }
            Err(format!(
                "qty is {}; page status: {:?}; daemon log: {}",
                rt.block_on(qty_quoted(&mut db)),
                browser.status(),
                daemon.log.display()
            ))
        },
    );
    eprintln!(
        "database after the browser edit: qty = {}",
        rt.block_on(qty_quoted(&mut db))
    );

    // Database -> Sheet: an UPDATE from another connection, watched in the page's grid.
    rt.block_on(async {
        sqlx::query("UPDATE products SET qty = ? WHERE sku = ?")
            .bind(FROM_SQL)
            .bind(SKU)
            .execute(&mut db)
            .await
            .expect("UPDATE products")
    });
    let want = FROM_SQL.to_string();
    browser.wait_for_cell(
        |c| c.text == want,
        &format!("the page's grid to show qty {want} for {SKU} after the SQL UPDATE"),
    );
    browser.screenshot(&screenshot);
    eprintln!("screenshot: {}", screenshot.display());
    browser.close();

    // A page on another name that resolves to this host (DNS rebinding) cannot edit the Sheet.
    let status = post_edit_with_host(&url, "attacker.example");
    assert_eq!(status, 403, "an edit under a foreign Host header");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// `POST /demo/api/edit` on the daemon at `url` with this `Host` header; the status.
fn post_edit_with_host(url: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the demo");
    let body = r#"{"row":2,"col":3,"value":"1"}"#;
    write!(
        s,
        "POST /demo/api/edit HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `probe` until it answers `Ok`, for at most [`WAIT`]; panics with `what` and the last
/// state `probe` described otherwise.
fn wait_until(what: &str, mut probe: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < WAIT {
        match probe() {
            Ok(()) => return,
            Err(state) => last = state,
        }
        std::thread::sleep(POLL);
    }
    panic!("waited {WAIT:?} for {what}; last: {last}");
}

// ---------------------------------------------------------------------------------------------
// The database, from the test's own connection

async fn open_db(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

async fn qty_equals(db: &mut SqliteConnection, want: i64) -> bool {
    // SQLite compares numerically, so an integer and a real 4321.0 both match.
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM products WHERE sku = ? AND qty = ?")
        .bind(SKU)
        .bind(want)
        .fetch_one(db)
        .await
        .map(|n| n == 1)
        .unwrap_or(false)
}

/// `quote(qty)`: shows whether SQLite holds an integer (`4321`) or a real (`4321.0`).
async fn qty_quoted(db: &mut SqliteConnection) -> String {
    sqlx::query_scalar::<_, String>("SELECT quote(qty) FROM products WHERE sku = ?")
        .bind(SKU)
        .fetch_optional(db)
        .await
        .map(|v| v.unwrap_or_else(|| "<no row>".into()))
        .unwrap_or_else(|e| format!("<error: {e}>"))
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// The daemon binary: `SHEETSYNC_BIN` when set, else the one cargo built for this test.
fn daemon_binary() -> PathBuf {
    let bin = std::env::var_os("SHEETSYNC_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_sheetsync")),
        PathBuf::from,
    );
    assert!(bin.is_file(), "the daemon {} is not a file", bin.display());
    bin
}

/// `sheetsync run` with the embedded demo; killed on drop (also when the test panics).
struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, demo_dir: &Path, log: &Path) -> Daemon {
        let mut child = Command::new(bin)
            .args(["run", "--listen", "127.0.0.1:0", "--demo-dir"])
            .arg(demo_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        // The first stdout line is `listening on http://127.0.0.1:<port>/`; the rest (banner,
        // progress) is read and dropped so that the daemon never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let mut daemon = Daemon {
            child,
            url: String::new(),
            log: log.to_path_buf(),
        };
        let first = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "the daemon printed no `listening on` line within {WAIT:?} (exit: {:?}); log: {}",
                daemon.child.try_wait(),
                log.display()
            )
        });
        daemon.url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the daemon: {first:?}"))
            .trim()
            .to_string();
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Chromium over the DevTools protocol

fn find_chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("SHEETSYNC_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "this test drives the demo page in headless Chromium, and no `chromium` was found on \
         PATH. Install it (Debian/Ubuntu, as root: `apt-get update && apt-get install -y \
         chromium`) or set SHEETSYNC_CHROMIUM to a Chromium or Chrome binary."
    );
}

/// Where the edited cell is and what it shows.
#[derive(Debug, Clone)]
struct Cell {
    text: String,
    editable: bool,
    x: f64,
    y: f64,
}

/// Finds the `qty` cell of `A-100` in the Sheet grid by the header row's text and the first
/// column's text, so neither column order nor row order is assumed.
const FIND_CELL_JS: &str = r#"(() => {
  const t = document.getElementById("sheet");
  if (!t) return null;
  const header = [...t.querySelectorAll("tr.header td[data-c]")].map(td => td.textContent.trim());
  const col = header.indexOf(COLUMN) + 1;
  if (col < 1) return null;
  for (const tr of t.querySelectorAll("tbody tr")) {
    const first = tr.querySelector('td[data-c="1"]');
    if (first && first.textContent.trim() === SKU) {
      const td = tr.querySelector(`td[data-c="${col}"]`);
      if (!td) return null;
      td.scrollIntoView({block: "center"});
      const b = td.getBoundingClientRect();
      return { text: td.textContent, editable: td.isContentEditable,
               row: +td.dataset.r, col, x: b.left + b.width / 2, y: b.top + b.height / 2 };
    }
  }
  return null;
})()"#;

/// Chromium with one page; the whole process group is killed on drop.
struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    log: PathBuf,
    profile: PathBuf,
}

impl Browser {
    fn launch(chromium: &Path, run_dir: &Path) -> Browser {
        let profile = run_dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = run_dir.join("chromium.log");
        // `--remote-debugging-pipe` reads commands from fd 3 and writes to fd 4: the shell moves
        // our stdin/stdout pipes there, then becomes Chromium (same pid, own process group).
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >&2"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--mute-audio",
                "--window-size=1280,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
        let to_browser = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            loop {
                let n = match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to_browser,
            from_browser: rx,
            next_id: 0,
            session: None,
            log,
            profile,
        }
    }

    /// One DevTools command; on the page's session once [`Browser::open`] attached to it.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| {
            panic!(
                "DevTools {method}: {e} (browser log: {})",
                self.log.display()
            )
        })
    }

    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .and_then(|_| self.to_browser.flush())
            .map_err(|e| format!("writing to the browser: {e}"))?;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.from_browser.recv_timeout(left).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => format!("no answer within {WAIT:?}"),
                mpsc::RecvTimeoutError::Disconnected => "the browser closed the pipe".into(),
            })?;
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    return Err(err.to_string());
                }
                return Ok(v["result"].clone());
            }
            // Anything else is an event; none is needed.
        }
    }

    /// Opens a page, attaches to it, and navigates it to `url`.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        let nav = self.call("Page.navigate", json!({ "url": url }));
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
    }

    /// Evaluates `expr` in the page and returns its value (JSON).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating in the page: {ex}");
        }
        r["result"]["value"].clone()
    }

    fn find_cell(&mut self) -> Option<Cell> {
        let js = FIND_CELL_JS
            .replace("COLUMN", &format!("{COLUMN:?}"))
            .replace("SKU", &format!("{SKU:?}"));
        let v = self.eval(&js);
        if v.is_null() {
            return None;
        }
        Some(Cell {
            text: v["text"].as_str().unwrap_or_default().to_string(),
            editable: v["editable"].as_bool().unwrap_or(false),
            x: v["x"].as_f64().unwrap(),
            y: v["y"].as_f64().unwrap(),
        })
    }

    /// Waits until the grid's cell satisfies `ok`.
    fn wait_for_cell(&mut self, ok: impl Fn(&Cell) -> bool, what: &str) -> Cell {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < WAIT {
            if let Some(c) = self.find_cell() {
                if ok(&c) {
                    return c;
                }
                last = Some(c);
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "waited {WAIT:?} for {what}; the cell last showed {last:?}; page status: {:?}; \
             browser log: {}",
            self.status(),
            self.log.display()
        );
    }

    /// The page's status line (what the last commit said).
    fn status(&mut self) -> String {
        match self.try_call(
            "Runtime.evaluate",
            json!({ "expression": "document.getElementById('status')?.textContent",
                    "returnByValue": true }),
        ) {
            Ok(v) => v["result"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Err(e) => format!("<{e}>"),
        }
    }

    /// Clicks the cell, selects its text, types `value` key by key and presses Enter.
    ///
    /// The page re-renders the grid every 700 ms while no cell has focus; a re-render that was
    /// already under way when the click landed can replace the focused cell, and the keys then
    /// go nowhere. So before Enter, the focused element must be the cell with exactly `value`
    /// in it; otherwise the half-typed text is put back, focus released, and it is tried again.
    fn edit_cell(&mut self, value: &str) {
        let mut tries = Vec::new();
        for _ in 0..5 {
            let cell = self.wait_for_cell(|_| true, "the qty cell of A-100");
            self.click(cell.x, cell.y);
            self.key("a", "KeyA", 65, None, 2, &["selectAll"]);
            for ch in value.chars() {
                let s = ch.to_string();
                let code = if ch.is_ascii_digit() {
                    format!("Digit{ch}")
                } else {
                    format!("Key{}", ch.to_ascii_uppercase())
                };
                self.key(&s, &code, ch.to_ascii_uppercase() as u32, Some(&s), 0, &[]);
            }
            let focused = self.eval(
                r#"(() => { const a = document.activeElement;
                   return a && a.dataset && a.dataset.r
                     ? { r: a.dataset.r, c: a.dataset.c, text: a.textContent,
                         first: a.parentElement.querySelector('td[data-c="1"]').textContent }
                     : null; })()"#,
            );
            let ok = focused["first"].as_str() == Some(SKU)
                && focused["text"].as_str() == Some(value)
                && self.find_cell().is_some_and(|c| c.text == value);
            if ok {
                self.key("Enter", "Enter", 13, Some("\r"), 0, &[]);
                return;
            }
            eprintln!("typing into the cell did not stick (focused: {focused}); trying again");
            tries.push(focused.to_string());
            self.eval(
                r#"(() => { const a = document.activeElement;
                   if (a && a.dataset && a.dataset.before !== undefined) a.textContent = a.dataset.before;
                   if (a && a.blur) a.blur(); })()"#,
            );
            std::thread::sleep(Duration::from_millis(800));
        }
        panic!("typing {value:?} into the qty cell of {SKU} did not stick; focused element after each try: {tries:?}");
    }

    fn click(&mut self, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            );
        }
    }

    fn key(
        &mut self,
        key: &str,
        code: &str,
        vk: u32,
        text: Option<&str>,
        modifiers: u32,
        commands: &[&str],
    ) {
        let mut down = json!({
            "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers,
            "commands": commands,
        });
        if let Some(t) = text {
            down["text"] = json!(t);
            down["unmodifiedText"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", down);
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                    "modifiers": modifiers }),
        );
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Asks Chromium to quit; [`Drop`] kills what is left.
    fn close(&mut self) {
        self.session = None;
        let _ = self.try_call("Browser.close", json!({}));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && self.session.is_some() {
            let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo_browser-failure.png");
            if let Ok(v) = self.try_call("Page.captureScreenshot", json!({ "format": "png" })) {
                if let Some(data) = v["data"].as_str() {
                    if std::fs::write(&shot, base64_decode(data)).is_ok() {
                        eprintln!("screenshot at the failure: {}", shot.display());
                    }
                }
            }
        }
        // The group is Chromium's own (process_group(0)): the browser, its renderers and helpers.
        let pgid = self.child.id().to_string();
        let group = |signal: &str| {
            Command::new("/bin/sh")
                .args(["-c", &format!("kill -{signal} -- -$0"), &pgid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        group("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Renderers and helpers go a moment later; then the profile can be removed.
        let start = Instant::now();
        while group("0") && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(POLL);
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}
