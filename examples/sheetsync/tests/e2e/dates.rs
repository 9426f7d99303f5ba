//! Dates and timestamps sheetsync writes into an empty Sheet read as dates in a third-party
//! client: gspread (from PyPI, in a virtualenv under the target directory, the one the
//! emulator's Python client test uses) reads the tab the daemon filled
//! (`sheetsync-emulator/tests/python/sheet_dates.py`), FORMATTED_VALUE as a
//! person sees it and UNFORMATTED_VALUE as stored. `SHEETSYNC_PYTHON` chooses the interpreter
//! (default `python3`).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{Backend, World};
use crate::venv;

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
    let python = tokio::task::spawn_blocking(venv::python).await.unwrap();
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
