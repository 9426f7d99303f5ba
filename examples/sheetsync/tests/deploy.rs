//! The deployment files in `deploy/` describe the binary this crate builds: the systemd unit
//! passes `systemd-analyze verify` with the daemon's real path, its commands exist, and the
//! container recipe installs this crate with the toolchain the workspace declares.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sheetsync");

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `Key=value` lines of a unit or recipe, comments skipped.
fn settings<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .collect()
}

/// The unit with the installed path replaced by the binary cargo built.
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = deploy("sheetsync.service").replace("/usr/local/bin/sheetsync", BIN);
    let path = dir.join("sheetsync.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("sheetsync-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = unit_for_this_build(&dir);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test installs it) runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_the_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sheetsync.service"))
        .collect();
    assert!(
        out.status.success() && about_the_unit.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_systemd_unit_runs_commands_the_daemon_has() {
    let unit = deploy("sheetsync.service");
    let commands: Vec<&str> = ["ExecStartPre=", "ExecStart="]
        .iter()
        .flat_map(|k| settings(&unit, k))
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    for command in commands {
        let mut words = command.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/sheetsync"), "{command}");
        let args: Vec<&str> = words.collect();
        let out = Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`sheetsync {}` is not a command: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = settings(&unit, "Environment=SHEETSYNC_CONFIG=");
    assert_eq!(
        config,
        ["/etc/sheetsync/sheetsync.toml"],
        "the daemon reads SHEETSYNC_CONFIG"
    );
}

#[test]
fn the_container_recipe_installs_this_crate_with_the_declared_toolchain() {
    let recipe = deploy("Containerfile");
    let rust_version = env!("CARGO_PKG_RUST_VERSION");
    assert!(
        settings(&recipe, "ARG RUST_IMAGE=")
            .iter()
            .any(|image| image.ends_with(&format!(":{rust_version}-bookworm"))),
        "the builder image is not Rust {rust_version}"
    );
    let install = settings(&recipe, "RUN cargo install");
    assert_eq!(install.len(), 1, "one cargo install: {install:?}");
    let crate_dir = install[0]
        .split_whitespace()
        .skip_while(|w| *w != "--path")
        .nth(1)
        .expect("cargo install --path");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert_eq!(
        workspace.join(crate_dir).canonicalize().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap(),
        "the recipe installs another crate"
    );
    let copied = settings(&recipe, "COPY --from=build /out/bin/sheetsync ");
    let entry = settings(&recipe, "ENTRYPOINT ");
    assert_eq!(copied, ["/usr/local/bin/sheetsync"]);
    assert_eq!(entry, [r#"["/usr/local/bin/sheetsync"]"#]);
    let config = settings(&recipe, "ENV SHEETSYNC_CONFIG=");
    assert_eq!(config, ["/etc/sheetsync/sheetsync.toml"]);
}
