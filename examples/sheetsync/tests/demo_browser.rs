//! The embedded demo, driven as a person would drive it: headless Chromium opens the demo page,
//! clicks a cell of the Sheet grid, types a new value and presses Enter, and the SQLite file
//! follows; then an `UPDATE` from another connection shows up in the page's grid; then a value
//! that does not fit its column is typed, and the page lists the row as held, with the reason.
//!
//! Chromium is driven over the DevTools protocol (see `tests/browser/mod.rs`); a missing
//! browser fails the test with advice; it is never skipped.
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
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use sheetsync::sql::sqlx::{self, sqlite::SqliteConnectOptions, ConnectOptions, SqliteConnection};

mod browser;

use browser::{find_chromium, Browser, POLL, WAIT};

/// The cell the test edits: column `qty` of the row whose first cell is `A-100`.
const SKU: &str = "A-100";
const COLUMN: &str = "qty";
/// Typed into the Sheet grid (the seed value is 120).
const TYPED: &str = "4321";
/// Written with SQL from the test's own connection.
const FROM_SQL: i64 = 8765;
/// Typed into the Sheet grid last: not an integer, so the row is held.
const NOT_A_NUMBER: &str = "lots";

/// The demo page's held-rows table: `[key, where, reason]` per row.
const HELD_ROWS_JS: &str = r##"[...document.querySelectorAll("#held tbody tr")]
  .filter(tr => tr.cells.length === 3)
  .map(tr => [...tr.cells].map(td => td.textContent))"##;

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

    let mut browser = Browser::launch(&chromium, &run_dir, &tmp.join("demo_browser-failure.png"));
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

    // A value that is not a quantity: the row is held, and the page says which and why.
    browser.edit_cell(NOT_A_NUMBER);
    let held = browser.wait_for(
        HELD_ROWS_JS,
        |v| {
            v.as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r[0] == SKU
                        && r[2]
                            .as_str()
                            .is_some_and(|why| why.contains(COLUMN) && why.contains(NOT_A_NUMBER))
                })
            })
        },
        &format!("the page to list {SKU} as held because of {NOT_A_NUMBER:?}"),
    );
    eprintln!("held rows on the page: {held}");
    assert!(
        rt.block_on(qty_equals(&mut db, FROM_SQL)),
        "the held value reached the database: qty is {}",
        rt.block_on(qty_quoted(&mut db))
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

impl Browser {
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
}
