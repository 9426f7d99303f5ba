//! Dates and timestamps sheetsync writes into an empty Sheet read as dates in a third-party
//! client: gspread (from PyPI, in a virtualenv under the target directory, the one the
//! emulator's Python client test uses) reads the tab the daemon filled
//! (`sheetsync-emulator/tests/python/sheet_dates.py`), FORMATTED_VALUE as a
//! person sees it and UNFORMATTED_VALUE as stored. `SHEETSYNC_PYTHON` chooses the interpreter
//! (default `python3`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{Backend, World};

/// What the emulator's Python client test installs; the same list finds the same virtualenv.
const PACKAGES: &[&str] = &["gspread==6.2.1", "google-api-python-client==2.202.0"];

/// The virtualenv's Python, made (and the packages installed) on first use.
fn python() -> PathBuf {
    let system = std::env::var("SHEETSYNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sheetsync-emulator-pyvenv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(format!(".installed-{}", PACKAGES.join("+")));
    if marker.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let steps: [(&Path, Vec<&str>); 2] = [
        (
            Path::new(&system),
            vec!["-m", "venv", venv.to_str().unwrap()],
        ),
        (
            &python,
            [
                &["-m", "pip", "install", "--disable-pip-version-check", "-q"][..],
                PACKAGES,
            ]
            .concat(),
        ),
    ];
    for (program, args) in steps {
        let out = Command::new(program).args(&args).output();
        match out {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "this test reads the Sheet with gspread, in a virtualenv: `{} {}` failed: {other:?}. \
                 It needs Python 3 with venv and pip (`apt-get install python3 python3-venv`) and \
                 access to PyPI, or SHEETSYNC_PYTHON set to such a Python.",
                program.display(),
                args.join(" ")
            ),
        }
    }
    std::fs::write(&marker, "ok").unwrap();
    python
}

pub async fn dates_read_as_dates_through_gspread(backend: Backend) {
    let mut w = World::new(backend, "gspreaddates").await;
    let types = match backend {
        Backend::Postgres => "id bigint PRIMARY KEY, due date, seen_at timestamp",
        Backend::MySql => "id BIGINT NOT NULL PRIMARY KEY, due DATE, seen_at DATETIME",
        Backend::Sqlite => "id INTEGER NOT NULL PRIMARY KEY, due DATE, seen_at TIMESTAMP",
    };
    let sql = [
        format!("CREATE TABLE t_dates ({types})"),
        "INSERT INTO t_dates VALUES (1, '2024-03-01', '2024-03-01 13:45:10'), \
         (2, '1999-12-31', '1999-12-31 23:59:59')"
            .to_string(),
    ];
    let m = w.add_mapping_sql("dates", &sql, "").await;
    w.start().await;
    w.wait_for_tab_rows(m, 3, "the daemon fills the empty tab")
        .await;
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    // Beside the emulator's own gspread scenario, whose helpers it shares.
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sheetsync-emulator/tests/python/sheet_dates.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(w.emu.base_url())
        .arg(&w.mappings[m].spreadsheet_id);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run sheet_dates.py");
    assert!(
        out.status.success(),
        "sheet_dates.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("sheet_dates.py prints JSON");
    assert_eq!(
        seen["formatted"],
        json!([
            ["id", "due", "seen_at"],
            ["1", "2024-03-01", "2024-03-01 13:45:10"],
            ["2", "1999-12-31", "1999-12-31 23:59:59"],
        ]),
        "as gspread shows the tab: {seen}"
    );
    // Stored as serial numbers, which is what makes them dates to formulas and sorting.
    let stored = &seen["unformatted"][1];
    assert!(
        stored[1].is_number() && stored[2].is_number(),
        "stored values: {seen}"
    );
}
