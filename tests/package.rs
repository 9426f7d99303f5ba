//! Checks that keep the workspace publishable: the declared `rust-version` covers the
//! dependency tree, the license files exist, and the docs refer only to files that exist.

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

#[test]
fn rust_version_covers_the_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--all-features",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().unwrap();
    let needed = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or("")))
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?)))
        .max()
        .expect("dependencies declare rust versions");
    for p in packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
    {
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

#[test]
fn license_files_exist() {
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let text = std::fs::read_to_string(root().join(f)).unwrap_or_default();
        assert!(text.len() > 500, "{f} is missing or empty");
    }
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
