//! Issue 11's guarantees on issue 10's engine, at `onboard::apply` (the call the wizard and
//! `apply` share): the run lock, a plan made before another run wrote, and orphan secrets of
//! lost `addPassword` replies.

use serde_json::Value;
use spot_connect::cli::{CommonOpts, SimOpts};
use spot_connect::onboard::model::{Progress, RunReport, Verdict};
use spot_connect::onboard::{self, Session, Settings, Target, lock};
use spot_connect::secret::Secret;
use spot_connect::sim::{self, SimHandle, seed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct Env {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    state_dir: std::path::PathBuf,
    session: Session,
}

async fn env(opts: SimOpts) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&opts, &dir.path().join("sim"))
        .await
        .expect("simulator starts");
    let state_dir = dir.path().join("state");
    let common = CommonOpts {
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    };
    let endpoints = (
        sim.endpoints(),
        Secret::new(sim.endpoints.spot_token.clone()),
    );
    let session = Session::build(&common, Some(endpoints), Arc::new(|_| {})).expect("session");
    session.auth.sign_in().await.expect("sign-in");
    Env {
        sim,
        _dir: dir,
        state_dir,
        session,
    }
}

fn prod() -> Target {
    Target {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: seed::SUB_CONTOSO_PROD.into(),
        subscription_name: "Contoso Production".into(),
    }
}

async fn run(env: &Env, plan: &onboard::model::Plan) -> (RunReport, Vec<Progress>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let report = onboard::apply(&env.session, plan, tx).await;
    let mut events = Vec::new();
    while let Ok(p) = rx.try_recv() {
        events.push(p);
    }
    (report, events)
}

fn ours(state: &Value) -> Vec<&Value> {
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

fn accounts_for<'a>(state: &'a Value, sub: &str) -> Vec<&'a Value> {
    state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == sub)
        .collect()
}

/// Secrets of our app that no Spot account holds.
fn unheld(state: &Value) -> Vec<String> {
    let apps = ours(state);
    let held: Vec<&Value> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["credentials"]["clientSecret"])
        .collect();
    apps[0]["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !held.contains(&&p["secretText"]))
        .map(|p| p["keyId"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_takes_the_run_lock_and_stops_before_writing_while_another_run_holds_it() {
    let env = env(SimOpts::default()).await;
    let plan = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    let held = lock::acquire(
        &env.state_dir,
        seed::CONTOSO_TENANT_ID,
        seed::SUB_CONTOSO_PROD,
        Duration::ZERO,
    )
    .await
    .unwrap();
    let (report, _) = run(&env, &plan).await;
    let stopped = report.stopped.expect("stopped");
    assert_eq!(
        stopped.summary,
        lock::busy_message(Some(std::process::id())),
        "{stopped:?}"
    );
    assert_eq!(report.reports.len(), 1);
    assert_eq!(report.reports[0].verdict, Verdict::Failed);
    assert!(ours(&env.sim.state()).is_empty(), "nothing written");
    drop(held);
    let (report, _) = run(&env, &plan).await;
    assert_eq!(report.reports[0].verdict, Verdict::Connected, "{report:?}");
    env.sim.shutdown().await;
}

/// A plan made before another run connected the subscription (the review screen left open,
/// a second `apply` waiting for the lock) is looked up again: it now writes nothing the
/// confirmed plan did not list, so it goes on and reuses, never a second Spot account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_before_another_run_wrote_is_looked_up_again_and_makes_no_duplicate() {
    let env = env(SimOpts::default()).await;
    let stale = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    let first = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    let (report, _) = run(&env, &first).await;
    assert_eq!(report.reports[0].verdict, Verdict::Connected, "{report:?}");
    let (report, _) = run(&env, &stale).await;
    assert_eq!(report.reports[0].verdict, Verdict::Connected, "{report:?}");
    let state = env.sim.state();
    assert_eq!(ours(&state).len(), 1);
    assert_eq!(accounts_for(&state, seed::SUB_CONTOSO_PROD).len(), 1);
    assert_eq!(unheld(&state), Vec::<String>::new());
    env.sim.shutdown().await;
}

/// The first `addPassword` is made but its reply lost: the engine asks again, and after the run
/// the secret of the lost reply (no Spot account holds it) is removed; the intent is settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_of_a_lost_add_password_reply_is_removed_after_the_run() {
    let env = env(SimOpts::default()).await;
    env.sim.drop_after("POST", "addPassword", 1);
    let plan = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    let (report, events) = run(&env, &plan).await;
    assert_eq!(report.reports[0].verdict, Verdict::Connected, "{report:?}");
    let log: Vec<&str> = events
        .iter()
        .filter_map(|p| match p {
            Progress::Log { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        log.iter()
            .any(|m| m.starts_with("removed 1 client secret(s)")),
        "{log:?}"
    );
    let state = env.sim.state();
    let adds = env
        .sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["method"] == "POST" && e["path"].as_str().unwrap_or("").ends_with("addPassword")
        })
        .count();
    assert_eq!(adds, 2, "asked again after the lost reply");
    assert_eq!(unheld(&state), Vec::<String>::new());
    assert_eq!(
        ours(&state)[0]["passwordCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let st = onboard::state::State::load(
        &env.state_dir,
        seed::CONTOSO_TENANT_ID,
        seed::SUB_CONTOSO_PROD,
    )
    .unwrap();
    assert_eq!(st.secret_pending_since, None);
    assert!(st.orphan_key_ids.is_empty(), "{:?}", st.orphan_key_ids);
    env.sim.shutdown().await;
}
