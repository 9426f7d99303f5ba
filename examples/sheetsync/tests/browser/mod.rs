//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages separated by NUL bytes, commands on the browser's fd 3, answers on its fd 4),
//! so the browser tests need no browser driver, no Node and no extra crate, only a `chromium`
//! binary (Debian: `apt-get install -y chromium`; or point `SHEETSYNC_CHROMIUM` at one). A
//! missing browser fails the test with that advice; it is never skipped.
//!
//! Shared by the demo page's test (`tests/demo_browser.rs`) and the status page's
//! (`tests/e2e/status_page.rs`).

// Each of the two test crates uses a part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Upper bound of every wait.
pub const WAIT: Duration = Duration::from_secs(30);
/// Between two looks at something that is expected to change.
pub const POLL: Duration = Duration::from_millis(100);

pub fn find_chromium() -> PathBuf {
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

/// Chromium with one page; the whole process group is killed on drop.
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    /// Chromium's own log.
    pub log: PathBuf,
    profile: PathBuf,
    /// Where a screenshot goes when the test fails.
    failure_shot: PathBuf,
}

impl Browser {
    /// Starts Chromium with its profile and log in `run_dir`; a failing test leaves a
    /// screenshot at `failure_shot`.
    pub fn launch(chromium: &Path, run_dir: &Path, failure_shot: &Path) -> Browser {
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
            failure_shot: failure_shot.to_path_buf(),
        }
    }

    /// One DevTools command; on the page's session once [`Browser::open`] attached to it.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| {
            panic!(
                "DevTools {method}: {e} (browser log: {})",
                self.log.display()
            )
        })
    }

    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
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
    pub fn open(&mut self, url: &str) {
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
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating in the page: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `probe` (JavaScript evaluated in the page) gives a value `ok` accepts, and
    /// returns it; panics with `what` and the last value otherwise.
    pub fn wait_for(&mut self, probe: &str, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < WAIT {
            let v = self.eval(probe);
            if ok(&v) {
                return v;
            }
            last = v;
            std::thread::sleep(POLL);
        }
        panic!(
            "waited {WAIT:?} for {what}; the page last gave {last}; browser log: {}",
            self.log.display()
        );
    }

    /// Types `text` into the focused element, as a keyboard's input method would.
    pub fn insert_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// Clicks at (`x`, `y`) in the page's viewport.
    pub fn click(&mut self, x: f64, y: f64) {
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

    /// Presses and releases one key (`text` for a key that types, `commands` for editing
    /// commands such as `selectAll`).
    pub fn key(
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

    /// A PNG of the page at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Asks Chromium to quit; [`Drop`] kills what is left.
    pub fn close(&mut self) {
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
            let shot = self.failure_shot.clone();
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

pub fn base64_decode(s: &str) -> Vec<u8> {
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
