//! The layers run one way (docs/architecture.md, "Layers"): checked on the sources, so that an
//! import against them fails `cargo test`, not only a review.

use std::path::Path;

/// Every `crate::…` module path a file names: `use crate::a::b`, `crate::a::b::f()`, and each
/// path of a grouped `use crate::{a::b, c}`.
fn crate_paths(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(
                group[..end]
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
            );
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.push(rest[..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// (file, path) for each `crate::` path under `dirs` that starts with one of `forbidden`.
fn offences(dirs: &[&str], forbidden: &[&str]) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in dirs {
        let p = root.join(d);
        if p.is_dir() {
            let mut stack = vec![p];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).unwrap() {
                    let path = e.unwrap().path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "rs") {
                        files.push(path);
                    }
                }
            }
        } else {
            files.push(p);
        }
    }
    assert!(!files.is_empty(), "no sources under {dirs:?}");
    let mut out = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        for path in crate_paths(&src) {
            let hit = forbidden.iter().any(|m| {
                path == *m
                    || path.starts_with(&format!("{m}::"))
                    || path.starts_with(&format!("{m} "))
            });
            if hit {
                let name = f.strip_prefix(&root).unwrap().display().to_string();
                out.push((name, path));
            }
        }
    }
    out
}

#[test]
fn the_paths_of_a_file_are_read_whole_and_grouped() {
    let src = "use crate::onboard::model::Plan;\nlet x = crate::cli::exit::OK;\nuse crate::{app::state, ui};";
    assert_eq!(
        crate_paths(src),
        ["onboard::model::Plan", "cli::exit::OK", "app::state", "ui"]
    );
}

#[test]
fn the_engine_and_the_clients_know_nothing_of_the_front_ends() {
    let below = [
        "onboard",
        "azure",
        "spot",
        "http.rs",
        "error.rs",
        "endpoints.rs",
        "secret.rs",
        "logging.rs",
    ];
    let found = offences(&below, &["app", "ui", "cli", "commands", "docgen"]);
    assert!(found.is_empty(), "imports of a front end: {found:?}");
}

#[test]
fn the_clients_know_nothing_of_the_engine() {
    let clients = ["azure", "spot", "http.rs", "error.rs", "endpoints.rs"];
    let found = offences(&clients, &["onboard"]);
    assert!(found.is_empty(), "clients importing the engine: {found:?}");
}

#[test]
fn drawing_reads_the_wizards_state_only() {
    let found = offences(&["ui"], &["cli", "commands", "app::update", "app::runtime"]);
    assert!(found.is_empty(), "ui/ imports beyond app::state: {found:?}");
    let found = offences(&["app"], &["commands"]);
    assert!(found.is_empty(), "app/ imports the commands: {found:?}");
}

#[test]
fn the_simulator_shares_only_wire_types_with_the_client() {
    let found = offences(
        &["sim"],
        &["azure", "spot", "onboard", "app", "ui", "cli", "commands"],
    );
    assert!(found.is_empty(), "sim/ imports the client: {found:?}");
    // Nor does it judge the client with the client's own role JSON.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "rs") {
            let src = std::fs::read_to_string(&path).unwrap();
            assert!(
                !src.contains("assets/"),
                "{} reads the client's assets/",
                path.display()
            );
        }
    }
}

/// The simulator's copy of Spot's policy is the published one (reference/policies/, beside the
/// checkout as in CI), so the connect validation judges the client's embedded role by Spot's
/// rules, not by the client's own file.
#[test]
fn the_simulators_policy_is_spots_published_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let published = root.join("../shared/reference/policies/spot-core-role-2024-05.json");
    let Ok(published) = std::fs::read_to_string(&published) else {
        eprintln!("skipped: no {} beside the checkout", published.display());
        return;
    };
    let ours = std::fs::read_to_string(root.join("src/sim/spot-core-role-2024-05.json")).unwrap();
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(parse(&ours), parse(&published));
}
