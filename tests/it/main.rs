//! The integration tests: one binary (linked once, as jj's `cli/tests/runner.rs`), a module per
//! area, the shared harness under `common/`. `tests/panic_hook.rs` stays a binary of its own: a
//! panic hook is process-wide. `every_test_file_is_a_module` keeps a new file from being forgotten.

mod common;

mod apply_cli;
mod auth_log;
mod auth_sim;
mod azure_cli;
mod browser_cli;
mod browser_sim;
mod cli_usage;
mod dist_cli;
mod engine_sim;
mod harden_cli;
mod harden_ui;
mod hostile_server;
mod keyring_cli;
mod layers;
mod life_cli;
mod life_sim;
mod managed_identity;
mod many_writers;
mod mgmt_cli;
mod mgmt_sim;
mod ownership_cli;
mod plan_pipeline;
mod reconcile_cli;
mod retry_sends;
mod secret_policy;
mod sim_authorize;
mod sim_contract;
mod ui_browser;
mod ui_e2e_tmux;
mod ui_groups;
mod ui_lists;
mod ui_readme;
mod ui_redraw;
mod ui_snapshots;
mod ui_styles;
mod ui_tenants;
mod ui_update;
mod workload_identity;

/// A `.rs` file under tests/it/ (at any depth) that no module file declares would never be
/// compiled or run; a `.rs` file directly under tests/ would be a binary of its own (linked again,
/// on 2 cores).
#[test]
fn every_test_file_is_a_module() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    let mut seen = 0;
    undeclared(
        &root.join("it"),
        &root.join("it/main.rs"),
        &mut missing,
        &mut seen,
    );
    assert!(
        missing.is_empty(),
        "no `mod` declares {missing:?} (a file `x/y.rs` is declared by `mod y;` in `x.rs` or `x/mod.rs`)"
    );
    // The walk saw the modules (a wrong root would pass vacuously): 30-odd files at least.
    assert!(seen > 30, "only {seen} test files found under tests/it/");
    let mut binaries: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    binaries.sort();
    assert_eq!(
        binaries,
        ["panic_hook.rs"],
        "integration tests go in tests/it/ as modules, not as binaries of their own"
    );
}

/// A run of the binary that signs in with a device code or a browser keeps the sign-in in the
/// OS keyring under `SPOT_CONNECT_KEYRING` (default `spot-connect`: the developer's own).
/// Every place a test or bench starts the binary says which: `off`, or a service of the test's
/// own (tests/it/keyring_cli.rs), so no test writes to the developer's keyring or reads
/// another test's sign-in. Files that only run usage errors, help or `sim` are listed.
#[test]
fn every_run_of_the_binary_names_its_keyring() {
    // Never sign in: usage errors, --help/--version/man/completions, `sim` alone.
    const NO_SIGN_IN: [&str; 3] = [
        "tests/it/cli_usage.rs",
        "tests/it/dist_cli.rs",
        "tests/it/sim_contract/harness.rs",
    ];
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![];
    let mut dirs = vec![root.join("tests/it"), root.join("benches")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let starts = [
        "Command::new(BIN)",
        "Command::new(env!(\"CARGO_BIN_EXE_spot-connect\"))",
        "Command::new(&self.exe)",
    ];
    let mut unnamed = vec![];
    let mut seen = 0;
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if NO_SIGN_IN.contains(&rel.as_str()) || rel == "tests/it/main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if starts.iter().any(|s| l.contains(s)) {
                seen += 1;
                let near = lines[i..(i + 5).min(lines.len())].join("\n");
                if !near.contains("SPOT_CONNECT_KEYRING") {
                    unnamed.push(format!("{rel}:{}", i + 1));
                }
            }
        }
    }
    assert!(seen > 10, "only {seen} runs of the binary found");
    assert!(
        unnamed.is_empty(),
        "set SPOT_CONNECT_KEYRING (\"off\" or a service of the test's own) where the binary is started: {unnamed:?}"
    );
}

/// The `.rs` files in `dir` (and below) that `parent` (the module file of `dir`) and the module
/// files of its subdirectories do not declare, into `missing`; `seen` counts the files looked at.
fn undeclared(
    dir: &std::path::Path,
    parent: &std::path::Path,
    missing: &mut Vec<String>,
    seen: &mut usize,
) {
    let text = std::fs::read_to_string(parent).unwrap_or_default();
    let declares = |module: &str| {
        text.lines().any(|l| {
            let l = l.trim();
            [
                format!("mod {module};"),
                format!("pub mod {module};"),
                format!("pub(crate) mod {module};"),
            ]
            .iter()
            .any(|d| l == d)
        })
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            // `x/` belongs to the module `x`: its file is `x.rs` beside it or `x/mod.rs`.
            let own = if path.join("mod.rs").exists() {
                path.join("mod.rs")
            } else {
                dir.join(format!("{name}.rs"))
            };
            undeclared(&path, &own, missing, seen);
        } else if let Some(module) = name.strip_suffix(".rs") {
            *seen += 1;
            let is_module_file = path == parent;
            if !is_module_file && !declares(module) {
                let shown = path
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(&path);
                missing.push(shown.display().to_string());
            }
        }
    }
}
