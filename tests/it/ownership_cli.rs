//! Issue 16 §2, §3, §7, §9 as processes against an in-process simulator: whose a Spot account
//! is (created, chosen, not ours), a connection made by hand kept and taken over only with
//! `--take-over`, a Spot token that sees fewer accounts, a partial listing, `status` verdicts.

use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::sim::{self, SimHandle, seed};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(opts: SimOpts) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let opts = SimOpts {
            approve_after: 0,
            ..opts
        };
        let sim = sim::start(&opts, &dir.path().join("sim")).await.unwrap();
        Env { sim, dir }
    }

    fn state_dir(&self, n: &str) -> std::path::PathBuf {
        self.dir.path().join(n)
    }

    /// `spot-connect <args>` with the state dir `state`, and `SPOTINST_TOKEN` when given.
    async fn run_as(
        &self,
        state: &str,
        token: Option<&str>,
        args: &[&str],
    ) -> (i32, String, String) {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--endpoints")
            .arg(&self.sim.endpoints_path)
            .arg("--state-dir")
            .arg(self.state_dir(state))
            .env_remove("SPOTINST_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = token {
            c.env("SPOTINST_TOKEN", t);
        }
        let out = tokio::time::timeout(Duration::from_secs(240), c.output())
            .await
            .expect("finishes in time")
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_as("state", None, args).await
    }
}

fn account<'a>(state: &'a Value, id: &str) -> Option<&'a Value> {
    state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == id)
}

fn our_apps(state: &Value) -> Vec<&Value> {
    state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .collect()
}

fn fab_prod() -> [&'static str; 2] {
    ["--subscription", seed::SUB_FABRIKAM_PROD]
}

fn with<'a>(cmd: &'a str, sub: [&'a str; 2], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd, sub[0], sub[1]];
    v.extend_from_slice(extra);
    v
}

/// The seed's Fabrikam Production: connected by hand through `Spot.io-fabrikam-prod`. Kept by
/// plan, apply and status; taken over only with `--take-over`, saying what is replaced; the
/// taken-over account is never deleted by `remove --delete-spot-account`, nor the old app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_made_by_hand_is_kept_then_taken_over_only_with_take_over_and_never_deleted() {
    let env = Env::start(SimOpts::default()).await;
    let before = env.sim.state();
    let held = |s: &Value| {
        account(s, seed::SPOT_ACCOUNT_CONNECTED).unwrap()["credentials"]["clientId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(held(&before), seed::FABRIKAM_SPOT_APP_CLIENT_ID);

    let (code, _, plan) = env.run(&with("plan", fab_prod(), &[])).await;
    std::fs::write("/tmp/acc/plan-keep.txt", &plan).ok();
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains(&format!(
            "connected through {} ({}), secret expires ",
            seed::FABRIKAM_SPOT_APP_NAME,
            seed::FABRIKAM_SPOT_APP_CLIENT_ID
        )) && plan.contains(": keep"),
        "{plan}"
    );
    assert!(
        !plan.contains("create  Spot connection") && !plan.contains("create  app registration"),
        "{plan}"
    );

    let (code, _, err) = env.run(&with("apply", fab_prod(), &["--yes"])).await;
    std::fs::write("/tmp/acc/apply-keep.txt", &err).ok();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("connected (not ours)"), "{err}");
    let after = env.sim.state();
    assert_eq!(held(&after), seed::FABRIKAM_SPOT_APP_CLIENT_ID, "kept");
    assert!(our_apps(&after).is_empty(), "nothing of ours was made");
    assert_eq!(
        after["roleAssignments"].as_array().unwrap().len(),
        before["roleAssignments"].as_array().unwrap().len()
    );

    let (code, out, err) = env.run(&with("status", fab_prod(), &[])).await;
    std::fs::write("/tmp/acc/status-keep.txt", &out).ok();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("connected (not ours)"), "{out}");
    assert!(!out.contains("BROKEN") && !out.contains("broken"), "{out}");

    // Taken over only when asked: the plan says what is replaced, and that it is for good.
    let (code, _, err) = env
        .run(&with("apply", fab_prod(), &["--yes", "--take-over"]))
        .await;
    std::fs::write("/tmp/acc/apply-take-over.txt", &err).ok();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "replace the credentials of Spot account {}",
            seed::SPOT_ACCOUNT_CONNECTED
        )) && err.contains("cannot be undone")
            && err.contains(seed::FABRIKAM_SPOT_APP_CLIENT_ID),
        "{err}"
    );
    let taken = env.sim.state();
    let ours = our_apps(&taken);
    assert_eq!(ours.len(), 1);
    assert_eq!(held(&taken), ours[0]["appId"].as_str().unwrap());
    // The old app is never touched: still there, with its secret.
    let old = taken["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == seed::FABRIKAM_SPOT_APP_OBJECT_ID)
        .expect("the hand-made app is still there");
    assert_eq!(old["passwordCredentials"].as_array().unwrap().len(), 1);

    // `remove --delete-spot-account` never deletes a taken-over (chosen) account, and keeps
    // the app, secret and assignment it uses, saying so.
    let (code, out, err) = env
        .run(&with(
            "remove",
            fab_prod(),
            &["--yes", "--delete-spot-account"],
        ))
        .await;
    std::fs::write("/tmp/acc/remove-chosen.txt", format!("{out}{err}")).ok();
    assert_eq!(code, 0, "{out}{err}");
    let gone = env.sim.state();
    assert!(
        account(&gone, seed::SPOT_ACCOUNT_CONNECTED).is_some(),
        "a chosen account is never deleted: {out}{err}"
    );
    assert!(format!("{out}{err}").contains("chosen"), "{out}{err}");
    assert_eq!(our_apps(&gone).len(), 1, "the app it uses is kept");
    assert_eq!(held(&gone), ours[0]["appId"].as_str().unwrap());
    assert!(
        gone["applications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == seed::FABRIKAM_SPOT_APP_OBJECT_ID)
    );
    env.sim.shutdown().await;
}
