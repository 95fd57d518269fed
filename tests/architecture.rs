//! ARCHITECTURE.md names every module of every crate: a module added
//! without a line there fails this test, with the names it misses.

use std::path::{Path, PathBuf};

/// Each crate's source directory and the name its modules go by.
const CRATES: &[(&str, &str)] = &[
    ("athyper/src", "athyper"),
    ("athyper-macros/src", "athyper_macros"),
    ("athyper-conformance/src", "athyper_conformance"),
    ("test-support/src", "athyper_test_support"),
    ("athyper-cli/src", "athyper_cli"),
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `queue/backend/redis/codec.rs` → `queue::backend::redis::codec`;
/// `queue/mod.rs` → `queue`; the crate root → `None`.
fn module_path(relative: &Path) -> Option<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    (!parts.is_empty()).then(|| parts.join("::"))
}

#[test]
fn architecture_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut modules = Vec::new();
    for (dir, name) in CRATES {
        let src = root.join(dir);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            if let Some(path) = module_path(file.strip_prefix(&src).unwrap()) {
                modules.push(format!("{name}::{path}"));
            }
        }
    }
    assert!(modules.len() > 50, "found only {modules:?}");
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| !page.contains(&format!("`{m}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these modules: {missing:?}"
    );
}
