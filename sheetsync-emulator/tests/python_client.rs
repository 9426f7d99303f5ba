//! Runs tests/python/scenario.py — gspread and google-api-python-client from PyPI — against the
//! `sheetsync-emulator` binary started with `--port 0`, then stops it with SIGINT and checks
//! that it saved its state file.
//!
//! The virtualenv is the one `python/venv.rs` makes under the cargo target dir and reuses. Set
//! `SHEETSYNC_PYTHON` to choose the interpreter that makes it (default `python3`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "python/venv.rs"]
mod venv;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the emulator if the test panics before stopping it.
struct Guard(Option<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn gspread_and_google_api_python_client_scenario_against_the_binary() {
    let python = venv::python();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("py-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sheetsync-emulator"))
        .args(["--port", "0", "--state-file"])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sheetsync-emulator");
    let stdout = child.stdout.take().unwrap();
    let mut guard = Guard(Some(child));
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/scenario.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&url)
        .output()
        .expect("run the python scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));

    // Stop the emulator like a person pressing Ctrl-C: it must save its state and exit 0.
    let mut child = guard.0.take().expect("running");
    run(
        Command::new("kill").args(["-INT", &child.id().to_string()]),
        "kill -INT",
    );
    let status = child.wait().expect("emulator exits");
    assert!(
        out.status.success(),
        "python scenario failed: {}",
        out.status
    );
    assert!(stdout.contains("SCENARIO PASSED"));
    assert!(status.success(), "emulator exit status {status}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state saved on SIGINT"))
            .expect("state is JSON");
    assert!(saved["spreadsheets"].is_array());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tests that make the virtualenv at once (the e2e date tests run side by side) each get a
/// working one: one makes it, the others wait for it instead of breaking it half made.
#[test]
fn tests_making_the_virtualenv_at_once_all_get_a_working_one() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pyvenv-race-{}", std::process::id()));
    let makers: Vec<_> = (0..2)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || venv::python_in(&base))
        })
        .collect();
    for maker in makers {
        let python = maker.join().expect("the virtualenv is made");
        let imports = Command::new(&python)
            .args(["-c", "import gspread, googleapiclient"])
            .status()
            .expect("run the virtualenv's python");
        assert!(imports.success(), "gspread imports in {}", python.display());
    }
    let _ = std::fs::remove_dir_all(&base);
}
