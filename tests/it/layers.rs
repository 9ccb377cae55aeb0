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

/// The modules of `src/onboard/` each file names: `super::m` and `crate::onboard::m` (from a
/// submodule file `onboard/x/y.rs`, `super::super::m`; its own `super::` is `x` itself).
fn onboard_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/onboard");
    let mut modules = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if (path.is_dir() || path.extension().is_some_and(|x| x == "rs")) && stem != "mod" {
            modules.insert(stem);
        }
    }
    let mut graph = std::collections::BTreeMap::new();
    for m in &modules {
        let mut files = vec![(root.join(format!("{m}.rs")), "super::")];
        if let Ok(dir) = std::fs::read_dir(root.join(m)) {
            files.extend(dir.map(|e| (e.unwrap().path(), "super::super::")));
        }
        let mut deps = std::collections::BTreeSet::new();
        for (f, parent) in files {
            let Ok(src) = std::fs::read_to_string(&f) else {
                continue;
            };
            for prefix in [parent, "crate::onboard::"] {
                let mut rest = src.as_str();
                while let Some(i) = rest.find(prefix) {
                    // `super::super::x` also contains `super::x`: only whole prefixes count.
                    let whole = !rest[..i].ends_with("super::");
                    rest = &rest[i + prefix.len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(g) => g[..g.find('}').unwrap_or(g.len())]
                            .split(',')
                            .map(|p| p.trim().split("::").next().unwrap_or("").trim())
                            .collect(),
                        None => vec![
                            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .next()
                                .unwrap_or(""),
                        ],
                    };
                    for n in names {
                        if whole && n != m && modules.contains(n) {
                            deps.insert(n.to_string());
                        }
                    }
                }
            }
        }
        graph.insert(m.clone(), deps);
    }
    graph
}

/// A cycle of `graph` (its modules in order), if it has one.
fn a_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        g: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn a_cycle_is_found_and_a_chain_is_not() {
    let g = |edges: &[(&str, &str)]| {
        let mut g = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(
        a_cycle(&g(&[("engine", "model"), ("model", "state")])),
        None
    );
    assert_eq!(
        a_cycle(&g(&[
            ("engine", "model"),
            ("model", "state"),
            ("state", "engine")
        ])),
        Some(vec![
            "engine".into(),
            "model".into(),
            "state".into(),
            "engine".into()
        ])
    );
}

/// issue 18 §1: the engine's files form layers (lookups, naming and secrets below the steps),
/// not one import circle.
#[test]
fn the_engines_modules_import_each_other_without_a_cycle() {
    let graph = onboard_graph();
    assert!(
        graph.len() > 10 && graph["engine"].contains("lookup"),
        "{graph:?}"
    );
    assert_eq!(a_cycle(&graph), None, "src/onboard/ imports: {graph:#?}");
}

/// The sources of `src/` outside their `#[cfg(test)]` modules: (file, text).
fn non_test_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&path).unwrap();
                let code = match src.find("#[cfg(test)]\nmod tests") {
                    Some(i) => src[..i].to_string(),
                    None => src,
                };
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                out.push((name, code));
            }
        }
    }
    out
}

/// One place picks the exit code (`cli::exit::Ending::code`) and one ends the process with it
/// (`entry.rs`): no front end names a code or exits by itself (the wizard's panic hook aside,
/// which ends a process that cannot go on), and nothing below the entry imports it.
#[test]
fn the_exit_code_is_picked_in_one_place() {
    let codes = [
        "DONE",
        "FAILED",
        "USAGE",
        "PARTIAL",
        "CHANGES",
        "INTERRUPTED",
    ];
    let mut found = Vec::new();
    for (file, code) in non_test_sources() {
        // cli.rs defines the codes; docgen.rs lists them in the man page.
        if file != "cli.rs" && file != "docgen.rs" {
            for c in codes {
                if code.contains(&format!("exit::{c}")) {
                    found.push(format!("{file}: exit::{c}"));
                }
            }
        }
        let exits = code.matches("process::exit(").count();
        let allowed = match file.as_str() {
            "entry.rs" => usize::MAX,
            "app/runtime.rs" => 1,
            _ => 0,
        };
        if exits > allowed {
            found.push(format!("{file}: {exits} process::exit"));
        }
    }
    assert!(
        found.is_empty(),
        "exit codes picked outside cli::exit: {found:?}"
    );
    let below = ["app", "ui", "commands", "onboard", "azure", "spot", "sim"];
    let found = offences(&below, &["entry"]);
    assert!(found.is_empty(), "imports of the entry: {found:?}");
}
