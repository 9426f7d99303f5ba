//! The virtualenv with gspread and google-api-python-client from PyPI that the third-party
//! client tests share (the emulator's Python scenario and the daemon's e2e date test). It is
//! made once under the cargo target directory and reused; `SHEETSYNC_PYTHON` chooses the
//! interpreter that makes it (default `python3`).
//!
//! Tests run side by side (threads of one binary, or binaries under nextest), and two of them
//! making the same virtualenv at once break each other (one's `ensurepip` finds the other's
//! half-made tree), so whoever makes it holds a file lock and the others wait for it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What is installed; a different list makes a new virtualenv.
pub const PACKAGES: &[&str] = &["gspread==6.2.1", "google-api-python-client==2.202.0"];

/// The virtualenv's Python, made (and the packages installed) on first use.
///
/// Blocks while another test makes it. Panics with what failed and what the test needs.
pub fn python() -> PathBuf {
    python_in(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// [`python`] with the virtualenv (and its lock file) under `base`.
pub fn python_in(base: &Path) -> PathBuf {
    std::fs::create_dir_all(base).expect("create the cargo target tmp dir");
    let lock = File::create(base.join("sheetsync-emulator-pyvenv.lock")).expect("lock file");
    lock.lock().expect("lock the virtualenv");
    let venv = base.join("sheetsync-emulator-pyvenv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(format!(".installed-{}", PACKAGES.join("+")));
    if !marker.exists() {
        make(&venv, &python);
        std::fs::write(&marker, "ok").expect("write the virtualenv's marker");
    }
    python
}

/// Makes the virtualenv afresh: a tree left half made by an interrupted run is removed first.
fn make(venv: &Path, python: &Path) {
    let system = std::env::var("SHEETSYNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let _ = std::fs::remove_dir_all(venv);
    let venv_arg = venv.to_str().expect("a UTF-8 target dir");
    let pip = ["-m", "pip", "install", "--disable-pip-version-check", "-q"];
    run(Path::new(&system), &["-m", "venv", venv_arg]);
    run(python, &[&pip[..], PACKAGES].concat());
}

fn run(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output();
    match out {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "this test runs gspread and google-api-python-client against the emulator, in a \
             virtualenv: `{} {}` failed: {other:?}. It needs Python 3 with venv and pip \
             (`apt-get install python3 python3-venv`) and access to PyPI, or SHEETSYNC_PYTHON \
             set to such a Python.",
            program.display(),
            args.join(" ")
        ),
    }
}
