//! Runs tests/python/scenario.py — gspread and google-api-python-client from PyPI — against the
//! `sheetsync-emulator` binary started with `--port 0`, then stops it with SIGINT and checks
//! that it saved its state file.
//!
//! The virtualenv lives under the cargo target dir and is reused between runs. Set
//! `SHEETSYNC_PYTHON` to choose the interpreter (default `python3`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PACKAGES: &[&str] = &["gspread==6.2.1", "google-api-python-client==2.202.0"];

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

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn ensure_venv() -> PathBuf {
    let python = std::env::var("SHEETSYNC_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "this test needs Python 3 with the venv and pip modules to run gspread and \
             google-api-python-client against the emulator; `{python} --version` gave {other:?}. \
             Install python3 (e.g. `apt-get install python3 python3-venv`) or set SHEETSYNC_PYTHON."
        ),
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sheetsync-emulator-pyvenv");
    let marker = venv.join(format!(".installed-{}", PACKAGES.join("+")));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            "creating the virtualenv (python3 -m venv)",
        );
        run(
            Command::new(venv_python(&venv))
                .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
                .args(PACKAGES),
            "pip install gspread google-api-python-client",
        );
        std::fs::write(&marker, "ok").expect("write marker");
    }
    venv
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
    let venv = ensure_venv();
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
    let out = Command::new(venv_python(&venv))
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
