//! The workspace's dependency rules (ARCHITECTURE.md, "Architecture invariants"), checked on
//! every test run so a refactor cannot quietly break them:
//!
//! - `meshfs-core` and `meshfs-hub` depend on no other meshfs crate;
//! - every door (the other library crates) depends on `meshfs-core` alone among meshfs crates:
//!   doors never call each other, the binary wires them together;
//! - only the binary parses flags: no library depends on `clap`.
//!
//! Dev-dependencies are free: a door's tests may start a real file server.

use std::path::{Path, PathBuf};

/// The `[dependencies]` table of one manifest: the dependency names, in order.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.trim().to_owned());
        }
    }
    names
}

fn crates() -> Vec<(String, Vec<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all: Vec<(String, Vec<String>)> = std::fs::read_dir(&root)
        .expect("the crates folder")
        .map(|e| e.expect("a crates/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p: PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let manifest = std::fs::read_to_string(p.join("Cargo.toml")).unwrap();
            (name, dependencies(&manifest))
        })
        .collect();
    all.sort();
    all
}

#[test]
fn the_manifest_reader_sees_dependencies() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nmeshfs-core.workspace = true\n\
                    clap = { version = \"4\" }\n# a comment\n[dev-dependencies]\nmeshfs-server = \"1\"\n";
    assert_eq!(dependencies(manifest), ["meshfs-core", "clap"]);
}

#[test]
fn doors_depend_on_the_core_alone_and_only_the_binary_parses_flags() {
    let crates = crates();
    assert!(crates.len() >= 10, "found only {crates:?}");
    let mut broken = Vec::new();
    for (name, deps) in &crates {
        let meshfs_deps: Vec<&String> = deps.iter().filter(|d| d.starts_with("meshfs")).collect();
        match name.as_str() {
            "meshfs" => {}
            "meshfs-core" | "meshfs-hub" => {
                if !meshfs_deps.is_empty() {
                    broken.push(format!("{name} depends on {meshfs_deps:?}"));
                }
            }
            _ => {
                if meshfs_deps.iter().any(|d| *d != "meshfs-core") {
                    broken.push(format!("{name} depends on {meshfs_deps:?}"));
                }
            }
        }
        if name != "meshfs" && deps.iter().any(|d| d == "clap") {
            broken.push(format!(
                "{name} depends on clap: flags belong in the binary"
            ));
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}
