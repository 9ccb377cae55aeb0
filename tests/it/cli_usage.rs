//! The command line's conventions (issue 21 §11): options that cannot go together are refused
//! before anything runs (exit 2, usage) with a sentence that says why, and `plan
//! --detailed-exitcode` tells "nothing to change" (0) from "changes" (4) as Terraform does.

use crate::common::cli::{As, BIN, Sim};
use spot_connect::sim::{SimOpts, seed};
use std::process::Command;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_detailed_exitcode_is_4_with_changes_and_0_without() {
    let env = Sim::start(SimOpts::default()).await;
    let sub = ["--subscription", seed::SUB_CONTOSO_PROD];
    let limit = Duration::from_secs(180);
    let plan = |extra: &'static [&'static str]| {
        let mut a = vec!["plan"];
        a.extend(sub);
        a.extend(extra);
        a
    };
    let out = env
        .run(As::CiOperator, &plan(&["--detailed-exitcode"]), limit)
        .await;
    assert_eq!(
        out.code, 4,
        "a fresh subscription has changes: {}",
        out.stderr
    );
    let out = env.run(As::CiOperator, &plan(&[]), limit).await;
    assert_eq!(out.code, 0, "without the flag a plan with changes exits 0");
    let mut apply = vec!["apply", "--yes"];
    apply.extend(sub);
    let out = env.run(As::CiOperator, &apply, limit).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env
        .run(As::CiOperator, &plan(&["--detailed-exitcode"]), limit)
        .await;
    assert_eq!(out.code, 0, "connected: nothing to change: {}", out.stderr);
    env.sim.shutdown().await;
}
