//! The crate builds, without warnings, and documents itself with no database feature, with
//! each alone and with all three: a host enables only the database it uses, and code shared by
//! the adapters must not lean on one of them being there.
//!
//! Runs `cargo check` and `cargo doc` in a target directory of its own (the test's build holds
//! the workspace's), kept between runs so that only the first one builds the dependencies.

use std::path::Path;
use std::process::Command;

/// Every feature set a host may choose.
const FEATURE_SETS: &[&str] = &["", "postgres", "mysql", "sqlite", "postgres,mysql,sqlite"];

/// Runs `cargo <command>` on this crate with only `features`; the error names the set.
fn cargo(command: &[&str], features: &str) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sheetsync-sql-feature-sets");
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(command)
        .args(["--offline", "--quiet", "-p", "sheetsync-sql"])
        .args(["--no-default-features", "--features", features])
        .arg("--target-dir")
        .arg(&target)
        .env("RUSTFLAGS", "-D warnings")
        .env("RUSTDOCFLAGS", "-D warnings")
        .output()
        .expect("cargo runs");
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`cargo {}` with features [{features}] failed:\n{}",
        command.join(" "),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn every_feature_set_builds_and_documents() {
    let failures: Vec<String> = FEATURE_SETS
        .iter()
        .flat_map(|f| [cargo(&["check"], f), cargo(&["doc", "--no-deps"], f)])
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
