//! Options that cannot go together are refused before anything runs (exit 2, usage), with a
//! sentence that says why (issue 21 §11).

use crate::common::cli::BIN;
use std::process::Command;

fn usage(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("SPOTINST_TOKEN")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_with_a_command_is_refused_instead_of_going_to_real_azure() {
    for cmd in ["apply", "plan", "status", "remove", "rotate-secret"] {
        let (code, err) = usage(&["--demo", cmd]);
        assert_eq!(code, 2, "--demo {cmd}: {err}");
        assert!(
            err.contains("--demo") && err.contains("spot-connect sim"),
            "--demo {cmd}: says why and what to do: {err}"
        );
    }
}

#[test]
fn one_subscription_and_all_of_them_are_refused_together() {
    let (code, err) = usage(&[
        "plan",
        "--subscription",
        "5c000001-0000-4000-8000-0000000000a1",
        "--all-subscriptions",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--subscription") && err.contains("--all-subscriptions"),
        "{err}"
    );
}
