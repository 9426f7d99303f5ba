//! The module graph of every crate of the workspace, the daemon's too, is layered: no two sibling
//! modules import each other, directly or around a loop (`scripts/module-cycles.py`), but for
//! the cycles listed in [`KNOWN_CYCLES`], which are to be taken apart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crates whose module graph must stay acyclic: every crate of the workspace.
const LAYERED: &[&str] = &[
    "sheetsync-core",
    "sheetsync-sql",
    "sheetsync-gsheets",
    "sheetsync-emulator",
    "sheetsync",
    "sheetsync-cli",
];

/// Cycles not taken apart yet, exactly as the script prints them. The test fails on any other
/// cycle, and on a listed one that is gone (so that the list only shrinks).
const KNOWN_CYCLES: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the cycle check on `crates` of the workspace at `workspace`.
fn module_cycles(workspace: &Path, crates: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/module-cycles.py"));
    for c in crates {
        cmd.args(["--crate", c]);
    }
    cmd.arg(workspace)
        .output()
        .expect("python3 runs scripts/module-cycles.py")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn crates_have_no_module_cycles() {
    let out = module_cycles(&root(), LAYERED);
    let report = text(&out);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the cycle check did not run:\n{report}"
    );
    let found: Vec<&str> = report.lines().filter(|l| l.contains(" <-> ")).collect();
    let new: Vec<&&str> = found.iter().filter(|c| !KNOWN_CYCLES.contains(c)).collect();
    assert!(
        new.is_empty(),
        "module import cycles (move the item that points up into the lower module):\n{new:#?}"
    );
    let gone: Vec<&&str> = KNOWN_CYCLES.iter().filter(|c| !found.contains(c)).collect();
    assert!(
        gone.is_empty(),
        "these cycles are gone: remove them from KNOWN_CYCLES: {gone:?}"
    );
}

/// The check itself finds a cycle, also one around three modules through a `use` group, and
/// does not take a missing crate for a clean one.
#[test]
fn the_check_reports_a_cycle() {
    let dir = fresh_dir();
    let src = dir.join("sheetsync-core/src");
    std::fs::create_dir_all(&src).unwrap();
    let files = [
        ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "use crate::{d::D, c::C};\npub struct B;\n"),
        ("c.rs", "pub struct C;\nfn f(_: super::a::A) {}\n"),
        ("d.rs", "pub struct D;\n"),
    ];
    for (name, body) in files {
        std::fs::write(src.join(name), body).unwrap();
    }
    let out = module_cycles(&dir, &["sheetsync-core"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sheetsync-core: a <-> b <-> c"),
        "{}",
        text(&out)
    );
    // Without the edge back from c, the graph is layered.
    std::fs::write(src.join("c.rs"), "pub struct C;\n").unwrap();
    let out = module_cycles(&dir, &["sheetsync-core"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = module_cycles(&dir, &["sheetsync-sql"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory for one test run.
fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sheetsync-architecture-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
