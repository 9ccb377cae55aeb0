//! `apply` with several subscriptions, `status`, `rotate-secret` and `remove` as processes
//! against an in-process simulator: exit codes, `--json`, and no writes without `--yes`.

use crate::common::cli::{As, Sim};
use serde_json::Value;
use spot_connect::sim::{SimOpts, seed};
use std::time::Duration;

/// The operator (device code, approved at once) against a fresh simulator.
struct Env(Sim);

impl std::ops::Deref for Env {
    type Target = Sim;
    fn deref(&self) -> &Sim {
        &self.0
    }
}

impl Env {
    async fn start() -> Env {
        Env(Sim::start(SimOpts {
            approve_after: 0,
            ..Default::default()
        })
        .await)
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .0
            .run(As::Operator, args, Duration::from_secs(120))
            .await;
        (out.code, out.stdout, out.stderr)
    }
}

const BOTH: [&str; 4] = [
    "--subscription",
    seed::SUB_CONTOSO_PROD,
    "--subscription",
    seed::SUB_CONTOSO_DEV,
];

fn with<'a>(cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd];
    v.extend(BOTH);
    v.extend(extra);
    v
}

fn tagged_apps(state: &Value) -> usize {
    state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .count()
}

#[tokio::test]
async fn apply_many_then_status_rotate_and_remove_from_the_command_line() {
    let env = Env::start().await;
    // Several subscriptions: one outcome table, a JSON report per subscription.
    let (code, out, err) = env.run(&with("apply", &["--yes", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let reports = v["subscriptions"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r["verdict"] == "connected"), "{v:#}");
    assert!(
        err.contains("SUBSCRIPTION") && err.contains("2 connected, 0 failed"),
        "{err}"
    );

    let (code, out, err) = env.run(&with("status", &["--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["verdict"] == "connected"),
        "{v:#}"
    );
    let (code, out, _) = env.run(&with("status", &[])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("VERDICT") && out.matches("connected").count() == 2,
        "{out}"
    );

    // Writes need --yes without a terminal.
    let (code, _, err) = env
        .run(&["rotate-secret", "--tenant", seed::CONTOSO_TENANT_ID])
        .await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = env
        .run(&[
            "rotate-secret",
            "--tenant",
            seed::CONTOSO_TENANT_ID,
            "--yes",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rotated: 2 account(s)"), "{err}");

    let (code, _, err) = env.run(&with("remove", &[])).await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        tagged_apps(&env.sim.state()),
        1,
        "nothing removed without --yes"
    );
    let (code, out, err) = env.run(&with("remove", &["--yes", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["done"] == true)
    );
    assert_eq!(tagged_apps(&env.sim.state()), 0);
    assert!(
        err.contains("keep") && err.contains("Spot account"),
        "{err}"
    );

    // Nothing of ours left: not onboarded, which is not an error (issue 16 §9). The Spot
    // accounts still name the deleted app: said so.
    let (code, out, _) = env.run(&with("status", &[])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.matches("not onboarded").count() >= 2
            && !out.contains("BROKEN")
            && out.contains("no longer exists"),
        "{out}"
    );
    env.0.sim.shutdown().await;
}
