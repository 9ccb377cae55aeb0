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
mod layers;
mod life_cli;
mod life_sim;
mod managed_identity;
mod many_writers;
mod mgmt_cli;
mod mgmt_sim;
mod ownership_cli;
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

/// A `.rs` file under tests/it/ that is not declared above would never be compiled or run; a
/// `.rs` file directly under tests/ would be a binary of its own (linked again, on 2 cores).
#[test]
fn every_test_file_is_a_module() {
    let root = env!("CARGO_MANIFEST_DIR");
    let main = std::fs::read_to_string(format!("{root}/tests/it/main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/tests/it")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(module) = name.strip_suffix(".rs")
            && module != "main"
            && !main.lines().any(|l| l == format!("mod {module};"))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tests/it/main.rs declares no `mod` for {missing:?}"
    );
    let mut binaries: Vec<String> = std::fs::read_dir(format!("{root}/tests"))
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
