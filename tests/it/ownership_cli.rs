//! Issue 16 §2, §3, §7, §9 as processes against an in-process simulator: whose a Spot account
//! is (created, chosen, not ours), a connection made by hand kept and taken over only with
//! `--take-over`, a Spot token that sees fewer accounts, a partial listing, `status` verdicts.

use crate::common::cli::{As, Redact, Sim, output, sim_wrapper};
use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::sim::seed;
use std::time::Duration;

sim_wrapper! {
    /// A fresh simulator that approves the device code at once; runs as the seeded operator.
    Env
}

impl Env {
    async fn start(opts: SimOpts) -> Env {
        Env(Sim::start(SimOpts {
            approve_after: 0,
            ..opts
        })
        .await)
    }

    fn state_dir(&self, n: &str) -> std::path::PathBuf {
        self.0.dir.path().join(n)
    }

    /// `spot-connect <args>` with the state dir `state`, and `SPOTINST_TOKEN` when given.
    async fn run_as(
        &self,
        state: &str,
        token: Option<&str>,
        args: &[&str],
    ) -> (i32, String, String) {
        let mut c = self.0.cmd(As::Operator, &self.state_dir(state), args);
        c.env_remove("SPOT_CONNECT_LOG");
        if let Some(t) = token {
            c.env("SPOTINST_TOKEN", t);
        }
        output(c, Duration::from_secs(240)).await.parts()
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
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("connected (not ours)"), "{out}");
    assert!(!out.contains("BROKEN") && !out.contains("broken"), "{out}");

    // Taken over only when asked: the plan says what is replaced, and that it is for good.
    let (code, _, err) = env
        .run(&with("apply", fab_prod(), &["--yes", "--take-over"]))
        .await;
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

    let (code, out, err) = env.run(&with("status", fab_prod(), &[])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("{} (chosen)", seed::SPOT_ACCOUNT_CONNECTED)),
        "{out}"
    );

    // `remove --delete-spot-account` never deletes a taken-over (chosen) account, and keeps
    // the app, secret and assignment it uses, saying so.
    let (code, out, err) = env
        .run(&with(
            "remove",
            fab_prod(),
            &["--yes", "--delete-spot-account"],
        ))
        .await;
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
    env.0.sim.shutdown().await;
}

/// A state file that names objects we did not create (edited, or copied from elsewhere: the
/// seed's `default` Spot account, an app that is not ours) never gets them adopted, connected
/// or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_naming_foreign_objects_never_gets_them_adopted_or_deleted() {
    let env = Env::start(SimOpts::default()).await;
    let dev = ["--subscription", seed::SUB_CONTOSO_DEV];
    let path = env.state_dir("state").join("state").join(format!(
        "{}_{}.json",
        seed::CONTOSO_TENANT_ID,
        seed::SUB_CONTOSO_DEV
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let edited = serde_json::json!({
        "version": 1,
        "tenant_id": seed::CONTOSO_TENANT_ID,
        "subscription_id": seed::SUB_CONTOSO_DEV,
        "spot_account_id": seed::SPOT_ACCOUNT_UNCONNECTED,
        "app_object_id": seed::CI_OPERATOR_APP_OBJECT_ID,
        "app_name": "spot-connect-c0c0c0c0",
        "steps": {},
    });
    std::fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();

    let (code, _, plan) = env.run(&with("plan", dev, &[])).await;
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains(&format!(
            "the state file names Spot account {} (default), which no run of this state dir created",
            seed::SPOT_ACCOUNT_UNCONNECTED
        )),
        "{plan}"
    );
    assert!(
        plan.contains("create  Spot account Contoso Dev")
            && plan.contains("create  app registration"),
        "{plan}"
    );

    let (code, _, err) = env.run(&with("apply", dev, &["--yes"])).await;
    assert_eq!(code, 0, "{err}");
    let s = env.sim.state();
    let default = account(&s, seed::SPOT_ACCOUNT_UNCONNECTED).unwrap();
    assert!(default["credentials"].is_null(), "not connected: {default}");
    let ours: Vec<&Value> = s["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == seed::SUB_CONTOSO_DEV)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["name"], "Contoso Dev");
    let created = ours[0]["accountId"].as_str().unwrap().to_string();

    // remove --delete-spot-account deletes the account this run created, not the default one,
    // and leaves the app that is not ours.
    let (code, out, err) = env
        .run(&with("remove", dev, &["--yes", "--delete-spot-account"]))
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let s = env.sim.state();
    assert!(account(&s, seed::SPOT_ACCOUNT_UNCONNECTED).is_some());
    assert!(account(&s, &created).is_none(), "{out}{err}");
    assert!(
        s["applications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == seed::CI_OPERATOR_APP_OBJECT_ID)
    );
    env.0.sim.shutdown().await;
}

/// A Spot token that is not an Organization Admin's cannot list the organization's accounts:
/// the plan says duplicates cannot be ruled out, and the run still connects (the account
/// connected to a subscription is found by `cloudAccountId`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_token_that_sees_fewer_accounts_is_named_in_the_plan() {
    let env = Env::start(SimOpts::default()).await;
    let token = env.sim.scoped_spot_token(&[]);
    let dev = ["--subscription", seed::SUB_CONTOSO_DEV];
    let (code, _, plan) = env
        .run_as("state", Some(&token), &with("plan", dev, &[]))
        .await;
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("this Spot token cannot list the organization's accounts (403 FORBIDDEN)")
            && plan.contains("cannot be ruled out"),
        "{plan}"
    );
    let (code, _, err) = env
        .run_as("state", Some(&token), &with("apply", dev, &["--yes"]))
        .await;
    assert_eq!(code, 0, "{err}");
    let s = env.sim.state();
    assert_eq!(
        s["spot"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["providerExternalId"] == seed::SUB_CONTOSO_DEV)
            .count(),
        1
    );
    // Again, from an empty state dir: the connection is found by the subscription, reused.
    let (code, _, plan) = env
        .run_as("other", Some(&token), &with("plan", dev, &[]))
        .await;
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("reuse   Spot account Contoso Dev: chosen: already connected"),
        "{plan}"
    );
    env.0.sim.shutdown().await;
}

/// More than 500 pages of subscriptions in a tenant: `--all-subscriptions` names the tenant
/// it could not see and exits 3, writing nothing; `--skip-unreachable` goes on without it,
/// loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_cut_short_is_never_taken_for_the_whole() {
    // Page size 2: 1 001 more subscriptions make more than 500 pages in Contoso. ARM's read
    // budget (a bucket of 250, 25 a second) would make each run wait 10 s for its pages: this
    // test is about the cut, not the pacing (budget.rs and the bulk bench are), so its bucket
    // holds every read.
    let env = Env::start(SimOpts {
        subscriptions: 1001,
        subscription_page_size: 2,
        arm_read_bucket: 100_000,
        ..SimOpts::default()
    })
    .await;
    let (code, _, err) = env.run(&["plan", "--all-subscriptions"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!(
            "could not see tenant Contoso ({})",
            seed::CONTOSO_TENANT_ID
        )),
        "{err}"
    );
    let (code, _, err) = env.run(&["apply", "--all-subscriptions", "--yes"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(our_apps(&env.sim.state()).is_empty(), "nothing written");
    let (code, out, err) = env.run(&["status", "--all-subscriptions"]).await;
    assert_eq!(code, 3, "{out}{err}");

    let (code, _, err) = env
        .run(&["plan", "--all-subscriptions", "--skip-unreachable"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "SKIPPED tenant Contoso ({}) (--skip-unreachable)",
            seed::CONTOSO_TENANT_ID
        )) && err.contains(seed::SUB_FABRIKAM_STAGING)
            && !err.contains(seed::SUB_CONTOSO_DEV),
        "{err}"
    );
    env.0.sim.shutdown().await;
}

/// `status` verdicts (issue 16 §9): never-onboarded subscriptions and a connection that is not
/// ours are not errors (exit 0); what we manage that expires within --warn-within, is broken
/// or could not be seen exits 3. Documented in --help and the man page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_verdicts_and_exit_codes_over_onboarded_not_onboarded_and_not_ours() {
    let env = Env::start(SimOpts::default()).await;
    let prod = ["--subscription", seed::SUB_CONTOSO_PROD];
    let (code, _, err) = env.run(&with("apply", prod, &["--yes"])).await;
    assert_eq!(code, 0, "{err}");

    // One transcript of the four status runs below (tests/it/snapshots/
    // it__ownership_cli__status_verdicts.snap): every verdict with the kind of its Spot account
    // (created, not ours), expiring, unknown with why, broken.
    let mut r = Redact::new(env.dir.path(), &env.sim);
    let mut t = String::new();
    let args = ["status", "--all-subscriptions"];
    let (code, out, err) = env.run(&args).await;
    assert_eq!(code, 0, "{out}{err}");
    t += &r.transcript(&args, code, &out, "");
    let (code, out, _) = env.run(&["status", "--all-subscriptions", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<&str> = v["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["verdict"].as_str().unwrap())
        .collect();
    assert!(
        verdicts.contains(&"not_onboarded") && verdicts.contains(&"not_ours"),
        "{verdicts:?}"
    );

    // The 12-month secret expires within 400 days: expiring, exit 3.
    let args = with("status", prod, &["--warn-within", "400"]);
    let (code, out, _) = env.run(&args).await;
    assert_eq!(code, 3, "{out}");
    t += &format!("\n{}", r.transcript(&args, code, &out, ""));

    // A token that cannot see the account: unknown, with why, exit 3.
    let token = env.sim.scoped_spot_token(&[]);
    let args = with("status", prod, &[]);
    let (code, out, err) = env.run_as("state", Some(&token), &args).await;
    assert_eq!(code, 3, "{out}{err}");
    t += &format!(
        "\n(SPOTINST_TOKEN: one that sees no account)\n{}",
        r.transcript(&args, code, &out, &err)
    );

    // The state file says a run connected Dev from here, and nothing is there: broken, exit 3.
    let path = env.state_dir("state").join("state").join(format!(
        "{}_{}.json",
        seed::CONTOSO_TENANT_ID,
        seed::SUB_CONTOSO_DEV
    ));
    let record = serde_json::json!({
        "version": 1, "tenant_id": seed::CONTOSO_TENANT_ID, "subscription_id": seed::SUB_CONTOSO_DEV,
        "role_assignment_id": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments/0e9b7c11-0000-4000-8000-000000000001", seed::SUB_CONTOSO_DEV),
        "steps": {},
    });
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let args = ["status", "--subscription", seed::SUB_CONTOSO_DEV];
    let (code, out, _) = env.run(&args).await;
    assert_eq!(code, 3, "{out}");
    t += &format!(
        "\n(a state file says Dev was connected from here)\n{}",
        r.transcript(&args, code, &out, "")
    );
    insta::assert_snapshot!("status_verdicts", t);

    // Documented.
    let (_, help, _) = env.run(&["status", "--help"]).await;
    for v in [
        "connected (not ours)",
        "not onboarded",
        "unknown",
        "--warn-within",
    ] {
        assert!(help.contains(v), "{v}: {help}");
    }
    // `man` takes no onboarding option (issue 21 §12): run it as it is.
    let man = std::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"))
        .env("SPOT_CONNECT_KEYRING", "off")
        .arg("man")
        .output()
        .expect("runs");
    let man = String::from_utf8_lossy(&man.stdout).into_owned();
    assert!(
        man.contains("not onboarded") && man.contains("warn\\-within"),
        "{man}"
    );
    env.0.sim.shutdown().await;
}

/// An empty Spot account with the subscription's name, made by hand while a run creates its
/// own: the run ends right (exit 0, its account connected), leaves the hand-made one alone,
/// and advises deleting nothing that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_same_name_account_made_by_hand_during_a_run_changes_nothing_that_works() {
    let env = Env::start(SimOpts::default()).await;
    // The run's account creation waits 8 s: the hand-made one is made meanwhile (earlier).
    env.sim.delay("POST", "/setup/account", 1, 8000);
    let dev = ["--subscription", seed::SUB_CONTOSO_DEV];
    let args = with("apply", dev, &["--yes"]);
    let run = env.run(&args);
    let hand = async {
        let path = env.state_dir("state").join("state").join(format!(
            "{}_{}.json",
            seed::CONTOSO_TENANT_ID,
            seed::SUB_CONTOSO_DEV
        ));
        // The run records the name it is about to create before it asks.
        let t0 = std::time::Instant::now();
        while !std::fs::read_to_string(&path).is_ok_and(|s| s.contains("spot_account_pending")) {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the run never got there"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ca = std::fs::read(&env.sim.endpoints.ca_cert).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        let r = http
            .post(format!("{}/setup/account", env.sim.endpoints.spot))
            .bearer_auth(seed::SPOT_TOKEN)
            .json(&serde_json::json!({"account": {"name": "Contoso Dev"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["response"]["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ((code, _, err), by_hand) = tokio::join!(run, hand);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("delete this run") && !err.contains("keep the other"),
        "{err}"
    );
    let s = env.sim.state();
    let hand_made = account(&s, &by_hand).expect("the hand-made account is left alone");
    assert!(hand_made["credentials"].is_null());
    let ours: Vec<&Value> = s["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == seed::SUB_CONTOSO_DEV)
        .collect();
    assert_eq!(ours.len(), 1, "ours is connected");
    assert_ne!(ours[0]["accountId"], by_hand.as_str());
    assert_eq!(
        ours[0]["credentials"]["clientId"],
        our_apps(&s)[0]["appId"],
        "connected through our app"
    );
    env.0.sim.shutdown().await;
}
