//! Checks that keep the workspace publishable: the declared `rust-version` covers the
//! dependency tree, every crate carries its license files, README and crates.io/docs.rs
//! metadata, and the docs refer only to files that exist.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `1.94` or `1.94.0` as a comparable triple.
fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// `cargo metadata` of the workspace, all features on, every platform (not offline: it needs
/// the manifests of dependencies for other platforms too, which a build here never fetched).
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--all-features"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The workspace's own packages in `meta`.
fn members(meta: &serde_json::Value) -> Vec<&serde_json::Value> {
    let ids = meta["workspace_members"].as_array().unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(&p["id"]))
        .collect()
}

#[test]
fn rust_version_covers_the_dependency_tree() {
    let meta = metadata();
    let ours = members(&meta);
    let needed = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !ours.contains(p))
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?)))
        .max()
        .expect("dependencies declare rust versions");
    for p in ours {
        let declared = p["rust_version"].as_str().unwrap_or("none");
        assert!(
            version(declared) >= needed.0,
            "{} declares rust-version {declared}, but {} needs {:?}",
            p["name"],
            needed.1,
            needed.0
        );
    }
}

/// Every crate carries its license texts, a README, the metadata crates.io lists it by and the
/// docs.rs settings that render its feature-gated modules.
#[test]
fn every_crate_is_ready_to_publish() {
    let meta = metadata();
    let crates = members(&meta);
    assert_eq!(crates.len(), 6, "the facade, four libraries and the daemon");
    let mut problems = Vec::new();
    for p in crates {
        let name = p["name"].as_str().unwrap();
        let dir = Path::new(p["manifest_path"].as_str().unwrap())
            .parent()
            .unwrap();
        for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            if text.len() < 500 {
                problems.push(format!("{name}: {f} is missing or empty"));
            }
        }
        let readme = p["readme"].as_str().map(|r| dir.join(r));
        let readme_text = readme.and_then(|r| std::fs::read_to_string(r).ok());
        if readme_text.is_none_or(|t| !t.contains(&format!("# {name}")) && name != "sheetsync") {
            problems.push(format!("{name}: no README titled with the crate's name"));
        }
        for field in ["description", "license", "repository", "rust_version"] {
            if p[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: no {field}"));
            }
        }
        let listed = |field: &str| p[field].as_array().map_or(0, Vec::len);
        if !(1..=5).contains(&listed("keywords")) || !(1..=5).contains(&listed("categories")) {
            problems.push(format!(
                "{name}: crates.io takes 1 to 5 keywords and categories"
            ));
        }
        if p["metadata"]["docs"]["rs"]["all-features"] != true {
            problems.push(format!(
                "{name}: docs.rs would build it without its features"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_changelog_has_an_unreleased_section() {
    let text = std::fs::read_to_string(root().join("CHANGELOG.md")).unwrap_or_default();
    assert!(
        text.contains("## [Unreleased]"),
        "CHANGELOG.md: {text:.200}"
    );
}

/// Every `docs/…` path the documentation and the sources mention exists.
#[test]
fn docs_refer_to_files_that_exist() {
    let mut missing = Vec::new();
    visit(&root(), &mut |path| {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "md" | "rs" | "gs" | "toml") {
            return;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (i, _) in text.match_indices("docs/") {
            let prev = text[..i].chars().next_back();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '/' || c == '-') {
                continue; // part of a longer path or a URL
            }
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(rest.len());
            let reference = rest[..end].trim_end_matches(['.', '/']);
            if reference.ends_with(".md") && !root().join(reference).exists() {
                missing.push(format!("{}: {reference}", path.display()));
            }
        }
    });
    assert!(
        missing.is_empty(),
        "references to missing files: {missing:#?}"
    );
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            visit(&path, f);
        } else {
            f(&path);
        }
    }
}

/// The README's library example is `examples/postgres_sheet.rs`, which `tests/postgres_sheet.rs`
/// runs: what people copy compiles and works.
#[test]
fn the_readme_library_example_is_the_tested_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let code = readme
        .split("## Use as a library")
        .nth(1)
        .and_then(|s| s.split("```rust,ignore\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README has a \"Use as a library\" section with a rust code block");
    let example = std::fs::read_to_string(root().join("examples/postgres_sheet.rs")).unwrap();
    assert!(
        example.contains(code),
        "the README's library example differs from examples/postgres_sheet.rs:\n{code}"
    );
}

/// `cargo package` packs every crate of the workspace (each against the others as packed, the
/// way crates.io would see them). Its own target directory: the test's build holds the
/// workspace's lock.
#[test]
fn cargo_package_packs_every_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::temp_dir().join(format!("sheetsync-package-{}", std::process::id()));
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "package",
            "--workspace",
            "--no-verify",
            "--offline",
            "--allow-dirty",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo package runs");
    let packed: Vec<String> = std::fs::read_dir(target.join("package"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "sheetsync",
        "sheetsync-core",
        "sheetsync-sql",
        "sheetsync-gsheets",
    ]
    .into_iter()
    .chain(["sheetsync-emulator", "sheetsync-cli"])
    {
        let file = format!("{name}-{}.crate", env!("CARGO_PKG_VERSION"));
        assert!(packed.contains(&file), "{file} not among {packed:?}");
    }
}
