//! `spot-connect apply` / `plan` as a process, against an in-process simulator: exit codes, the
//! messages an operator sees, a real SIGKILL mid-run, and no secret anywhere on disk or stderr.
//! What an operator reads is checked as insta snapshots of the whole transcript
//! (tests/it/snapshots/it__apply_cli__*.snap), the volatile parts redacted by
//! `common::cli::Redact`; `--json` documents are checked field by field.

use crate::common::cli::{As, Redact, Sim, output, sim_wrapper};
use serde_json::{Value, json};
use spot_connect::cli::SimOpts;
use spot_connect::sim::seed;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

sim_wrapper! {
    /// A fresh simulator; runs as the seeded operator (device code), no terminal.
    Env
}

impl Env {
    async fn start(opts: SimOpts) -> Env {
        Env(Sim::start(opts).await)
    }

    fn redact(&self) -> Redact {
        Redact::new(self.dir.path(), &self.sim)
    }

    /// `spot-connect <args> --endpoints … --state-dir …`, no terminal, clean environment.
    fn cmd(&self, args: &[&str]) -> Command {
        self.0.cmd(As::Operator, &self.state_dir(), args)
    }

    async fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = self.cmd(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        output(c, Duration::from_secs(240)).await.parts()
    }
}

fn counts(state: &Value) -> Vec<usize> {
    let mut v: Vec<usize> = [
        "applications",
        "servicePrincipals",
        "roleDefinitions",
        "roleAssignments",
    ]
    .iter()
    .map(|k| state[k].as_array().map_or(0, Vec::len))
    .collect();
    v.push(state["spot"]["accounts"].as_array().map_or(0, Vec::len));
    v.push(
        state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["passwordCredentials"].as_array().map_or(0, Vec::len))
            .sum(),
    );
    v
}

/// Exactly one of each of our objects for `sub`, and Spot holds this app's credentials.
fn assert_converged(state: &Value, sub: &str) {
    let apps: Vec<&Value> = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .collect();
    assert_eq!(apps.len(), 1, "one app of ours");
    let app_id = apps[0]["appId"].as_str().unwrap();
    let sps: Vec<&Value> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["appId"] == app_id)
        .collect();
    assert_eq!(sps.len(), 1, "one service principal");
    let roles = state["roleDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["roleName"] == "Spot.io Custom Role")
        .count();
    assert_eq!(roles, 1, "one role");
    let scope = format!("/subscriptions/{sub}");
    let assignments = state["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["principalId"] == sps[0]["id"] && a["scope"] == scope.as_str())
        .count();
    assert_eq!(assignments, 1, "one assignment");
    let accounts: Vec<&Value> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == sub)
        .collect();
    assert_eq!(accounts.len(), 1, "one Spot account");
    assert_eq!(accounts[0]["credentials"]["clientId"], app_id);
    let passwords = apps[0]["passwordCredentials"].as_array().unwrap();
    let secrets = passwords
        .iter()
        .filter(|p| p["displayName"] == format!("spot-connect {sub}").as_str())
        .count();
    // The secret Spot holds is on the app: the subscription's own, or (after a run of several
    // subscriptions, which share one per tenant) the tenant's; no orphan of its own is left.
    let held = &accounts[0]["credentials"]["clientSecret"];
    let holder = passwords
        .iter()
        .find(|p| &p["secretText"] == held)
        .expect("Spot's secret is on the app");
    if holder["displayName"] == format!("spot-connect {sub}").as_str() {
        assert_eq!(
            secrets, 1,
            "one secret for the subscription (orphans removed)"
        );
    } else {
        assert_eq!(secrets, 0, "no orphan of the subscription's own");
    }
}

/// An apply's stderr with the progress lines of its steps (after "Plan:", before "✓ Done" or,
/// when the run failed, the report's path) sorted: steps that do not depend on each other run at
/// once, so their lines come in the scheduler's order (the order itself is engine_sim's to check).
fn progress_sorted(r: &Redact, stderr: &str) -> String {
    let end = if stderr.contains("✓ Done") {
        "✓ Done"
    } else {
        "report:"
    };
    r.sort_between(stderr, "Plan:", end)
}

fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&read_tree(&p));
            } else if let Ok(t) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&t));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_json_reports_then_plan_reports_all_reused_and_nothing_secret_leaks() {
    let env = Env::start(SimOpts::default()).await;
    let sub = seed::SUB_CONTOSO_PROD;
    let (code, stdout, stderr) = env
        .run(&["apply", "--subscription", sub, "--yes", "--json"], &[])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints the report");
    let report = &doc["subscriptions"][0];
    assert_eq!(report["verdict"], "connected");
    assert!(report["secret_expires"].is_string());
    assert_eq!(report["objects"].as_array().unwrap().len(), 7);
    // With --json the progress still goes to stderr (stdout holds only the document).
    let mut r = env.redact();
    let progress = progress_sorted(&r, &stderr);
    insta::assert_snapshot!(
        "apply_json_stderr",
        r.transcript(
            &["apply", "--subscription", sub, "--yes", "--json"],
            code,
            "",
            &progress
        )
    );
    let saved = report["report_path"].as_str().unwrap();
    assert!(Path::new(saved).starts_with(env.state_dir().join("reports")));
    let state = env.sim.state();
    assert_converged(&state, sub);

    let (code, stdout, plan_err) = env
        .run(&["plan", "--subscription", sub, "--json"], &[])
        .await;
    assert_eq!(code, 0, "{plan_err}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "reuse"),
        "{plan:#}"
    );

    // The secret values the simulator holds, its tokens and the Spot token appear nowhere.
    let state = env.sim.state();
    let mut needles: Vec<String> =
        vec![seed::SPOT_TOKEN.into(), "sim-at-".into(), "sim-rt-".into()];
    for a in state["applications"].as_array().unwrap() {
        for p in a["passwordCredentials"].as_array().unwrap() {
            needles.push(p["secretText"].as_str().unwrap().to_string());
        }
    }
    let disk = read_tree(&env.state_dir());
    assert!(disk.contains("spot-connect.log") || env.state_dir().join("spot-connect.log").exists());
    let all = format!("{disk}{stdout}{stderr}{plan_err}");
    for n in &needles {
        assert!(
            !all.contains(n.as_str()),
            "a secret or token leaked ({} chars)",
            n.len()
        );
    }
    env.0.sim.shutdown().await;
}

/// What an operator reads, command by command: `plan` (what would be created and why), `apply`
/// (the same plan, each step's progress, the report and log paths), `status` (the table), and
/// `plan` again (everything reused). One snapshot, the ids numbered across the commands (the
/// account apply creates is the one status shows). The transcripts leave out the
/// `--endpoints`/`--state-dir` every run gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_status_and_plan_again_transcripts() {
    let env = Env::start(SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    })
    .await;
    let sub = seed::SUB_CONTOSO_PROD;
    let mut r = env.redact();
    let mut t = String::new();
    for args in [
        &["plan", "--subscription", sub][..],
        &["apply", "--subscription", sub, "--yes"],
        &["status", "--subscription", sub],
        &["plan", "--subscription", sub],
    ] {
        let (code, stdout, stderr) = env.run(args, &[]).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let stderr = if args[0] == "apply" {
            progress_sorted(&r, &stderr)
        } else {
            stderr
        };
        if !t.is_empty() {
            t.push('\n');
        }
        t += &r.transcript(args, code, &stdout, &stderr);
    }
    insta::assert_snapshot!("plan_apply_status_plan", t);
    assert_converged(&env.sim.state(), sub);
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_the_next_run_converges() {
    let env = Env::start(SimOpts {
        latency: 40,
        ..Default::default()
    })
    .await;
    let sub = seed::SUB_CONTOSO_PROD;
    let mut child = env
        .cmd(&["apply", "--subscription", sub, "--yes"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let killed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            // After the first object is made, while others are in flight.
            if l.contains("✓ Custom role")
                || l.contains("✓ Spot account")
                || l.contains("✓ App registration")
            {
                child.start_kill().unwrap();
                return true;
            }
        }
        false
    })
    .await
    .expect("a step finishes");
    assert!(killed, "killed mid-run");
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    let (code, _, stderr) = env
        .run(&["apply", "--subscription", sub, "--yes"], &[])
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert_converged(&env.sim.state(), sub);
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limited_user_gets_a_permission_message_and_nothing_is_created() {
    let env = Env::start(SimOpts::default()).await;
    let before = counts(&env.sim.state());
    let (code, _, stderr) = env
        .run(
            &[
                "apply",
                "--auth",
                "client-secret",
                "--subscription",
                seed::SUB_CONTOSO_PROD,
                "--yes",
            ],
            &[
                ("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID),
                ("AZURE_CLIENT_ID", seed::CI_LIMITED_CLIENT_ID),
                ("AZURE_CLIENT_SECRET", seed::CI_LIMITED_SECRET),
            ],
        )
        .await;
    assert_eq!(code, 1, "{stderr}");
    // The role to ask for, the action missing, nothing changed.
    insta::assert_snapshot!(
        "limited_user_apply",
        env.redact().transcript(
            &[
                "apply",
                "--auth",
                "client-secret",
                "--subscription",
                seed::SUB_CONTOSO_PROD,
                "--yes"
            ],
            code,
            "",
            &stderr
        )
    );
    assert!(!stderr.contains(seed::CI_LIMITED_SECRET));
    assert_eq!(counts(&env.sim.state()), before, "nothing created");
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_failures_for_wrong_token_unknown_subscription_long_secret_and_missing_yes() {
    let env = Env::start(SimOpts::default()).await;
    let sub = seed::SUB_CONTOSO_PROD;
    // One transcript of the five failures (tests/it/snapshots/…clear_failures.snap): --yes
    // named; the Spot token refused; the unknown subscription named; the app policy's code and
    // "fewer months"; a Disabled subscription refused.
    let mut r = env.redact();
    let mut t = String::new();

    let args = ["apply", "--subscription", sub];
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 2, "writes need --yes without a terminal: {stderr}");
    t += &r.transcript(&args, code, &stdout, &stderr);

    let before = counts(&env.sim.state());
    let args = ["apply", "--subscription", sub, "--yes"];
    let (code, stdout, stderr) = env.run(&args, &[("SPOTINST_TOKEN", "not-the-token")]).await;
    assert_eq!(code, 1, "{stderr}");
    t.push_str("\n(SPOTINST_TOKEN=not-the-token)\n");
    t += &r.transcript(&args, code, &stdout, &stderr);
    assert!(!stderr.contains("not-the-token"));
    assert_eq!(
        counts(&env.sim.state()),
        before,
        "nothing created with a wrong Spot token"
    );

    let unknown = "00000000-dead-4000-8000-000000000000";
    r.name(unknown, unknown);
    let args = ["apply", "--subscription", unknown, "--yes"];
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    t += &format!("\n{}", r.transcript(&args, code, &stdout, &stderr));

    let args = [
        "apply",
        "--subscription",
        sub,
        "--yes",
        "--secret-months",
        "30",
    ];
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    let stderr = progress_sorted(&r, &stderr);
    t += &format!("\n{}", r.transcript(&args, code, &stdout, &stderr));

    // Several subscriptions, one of them unusable (Disabled): exit 3 would need it to get past
    // discovery; a disabled one is refused up front as a usage error.
    let args = [
        "apply",
        "--subscription",
        sub,
        "--subscription",
        seed::SUB_CONTOSO_LEGACY,
        "--yes",
    ];
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 2, "{stderr}");
    t += &format!("\n{}", r.transcript(&args, code, &stdout, &stderr));
    insta::assert_snapshot!("clear_failures", t);
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_spot_account_cannot_take_several_subscriptions_and_several_connect_together() {
    let env = Env::start(SimOpts::default()).await;
    // One named Spot account holds one subscription: naming it for two is bad input, refused
    // before anything is looked up or written.
    let before = counts(&env.sim.state());
    let args = [
        "apply",
        "--subscription",
        seed::SUB_CONTOSO_PROD,
        "--subscription",
        seed::SUB_CONTOSO_DEV,
        "--yes",
        "--json",
        "--spot-account",
        seed::SPOT_ACCOUNT_UNCONNECTED,
    ];
    let (code, _stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, spot_connect::cli::exit::USAGE, "{stderr}");
    insta::assert_snapshot!(
        "one_spot_account_for_two_subscriptions",
        env.redact().transcript(&args, code, "", &stderr)
    );
    assert_eq!(counts(&env.sim.state()), before, "nothing written");

    // Without it: one plan, both connected, nothing duplicated (exit 3 for a partial run is
    // `commands::tests::exit_codes_say_all_some_or_none_connected`).
    let (code, stdout, stderr) = env
        .run(
            &[
                "apply",
                "--subscription",
                seed::SUB_CONTOSO_PROD,
                "--subscription",
                seed::SUB_CONTOSO_DEV,
                "--yes",
                "--json",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        doc["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verdict"] == "connected")
    );
    let state = env.sim.state();
    assert_converged(&state, seed::SUB_CONTOSO_PROD);
    assert_converged(&state, seed::SUB_CONTOSO_DEV);
    env.0.sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_130_and_the_next_run_converges() {
    let env = Env::start(SimOpts {
        latency: 40,
        ..Default::default()
    })
    .await;
    let sub = seed::SUB_CONTOSO_PROD;
    let mut child = env
        .cmd(&["apply", "--subscription", sub, "--yes"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let sent = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains("✓ ") && !l.contains("Azure login") {
                let st = Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .await
                    .unwrap();
                return st.success();
            }
        }
        false
    })
    .await
    .expect("a step finishes");
    assert!(sent, "{seen}");
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted (SIGTERM)"), "{seen}");
    let (code, _, stderr) = env
        .run(&["apply", "--subscription", sub, "--yes"], &[])
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert_converged(&env.sim.state(), sub);
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_who_may_not_register_applications_is_blocked_before_anything_is_written() {
    let env = Env::start(SimOpts::default()).await;
    let before = env.sim.state();
    let noapps = [
        ("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID),
        ("AZURE_CLIENT_ID", seed::CI_OWNER_NOAPPS_CLIENT_ID),
        ("AZURE_CLIENT_SECRET", seed::CI_OWNER_NOAPPS_SECRET),
    ];
    let sub = seed::SUB_CONTOSO_PROD;
    // plan: the app registration is blocked with the missing right and what to ask for; the
    // ARM side (Owner) is fine.
    let (code, stdout, stderr) = env
        .run(
            &[
                "plan",
                "--auth",
                "client-secret",
                "--subscription",
                sub,
                "--json",
            ],
            &noapps,
        )
        .await;
    assert_eq!(code, 1, "a blocked plan exits 1: {stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let item = |o: &str| {
        plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["object"] == o)
            .unwrap_or_else(|| panic!("{o} in {plan:#}"))
            .clone()
    };
    let app = item("app registration");
    assert_eq!(app["action"], "blocked", "{plan:#}");
    let reason = app["reason"].as_str().unwrap();
    // The principal is named by its object id, with what an administrator can grant it (not
    // the users' setting, which does not apply to a service principal).
    let mut r = env.redact();
    insta::assert_snapshot!("owner_without_app_rights_plan_reason", r.text(reason));
    assert_eq!(item("custom role")["action"], "create", "{plan:#}");
    assert_eq!(item("role assignment")["action"], "create", "{plan:#}");

    // apply: exit 1, the same reason, and nothing written anywhere (Spot included).
    let args = [
        "apply",
        "--auth",
        "client-secret",
        "--subscription",
        sub,
        "--yes",
    ];
    let (code, stdout, stderr) = env.run(&args, &noapps).await;
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(
        "owner_without_app_rights_apply",
        r.transcript(&args, code, &stdout, &stderr)
    );
    assert!(!stderr.contains(seed::CI_OWNER_NOAPPS_SECRET));
    assert_eq!(
        env.sim.state(),
        before,
        "the simulator's state is unchanged"
    );
    let writes: Vec<Value> = env
        .sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] != "login" && r["method"] != "GET")
        .cloned()
        .collect();
    assert!(writes.is_empty(), "no write was even tried: {writes:#?}");
    env.0.sim.shutdown().await;
}

/// A role named like ours, made by someone else (no spot-connect marker) and assignable only
/// at another subscription (so a lookup at the target subscription does not see it).
async fn foreign_role_at_dev(env: &Env) {
    use spot_connect::azure::arm::{Arm, Permission, RoleDefinitionProperties};
    let common = spot_connect::cli::CommonOpts {
        state_dir: Some(env.dir.path().join("other-operator")),
        ..Default::default()
    };
    let session = spot_connect::onboard::Session::build(
        &common,
        Some((
            env.sim.endpoints(),
            spot_connect::secret::Secret::new(env.sim.endpoints.spot_token.clone()),
        )),
        std::sync::Arc::new(|_| {}),
    )
    .unwrap();
    session.auth.sign_in().await.unwrap();
    let arm = Arm::new(
        session.http.clone(),
        &session.endpoints.arm,
        session.auth.clone(),
        seed::CONTOSO_TENANT_ID,
    );
    let scope = format!("/subscriptions/{}", seed::SUB_CONTOSO_DEV);
    arm.put_role_definition(
        &scope,
        "0f0f0f0f-0000-4000-8000-00000000f00d",
        &RoleDefinitionProperties {
            role_name: "Spot.io Custom Role".into(),
            description: Some("made by hand in the portal".into()),
            role_type: Some("CustomRole".into()),
            permissions: vec![Permission {
                actions: vec!["Microsoft.Compute/disks/read".into()],
                ..Default::default()
            }],
            assignable_scopes: vec![scope.clone()],
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_role_made_by_someone_else_at_another_subscription_blocks_plan_and_apply_writes_nothing()
 {
    let env = Env::start(SimOpts::default()).await;
    foreign_role_at_dev(&env).await;
    let before = counts(&env.sim.state());
    let log_before = env.sim.requests().as_array().unwrap().len();
    let args = ["plan", "--subscription", seed::SUB_CONTOSO_PROD, "--json"];
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, spot_connect::cli::exit::FAILED, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let role = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["object"] == "custom role")
        .unwrap();
    assert_eq!(role["action"], "blocked", "{role:#}");
    insta::assert_snapshot!(
        "same_named_role_elsewhere_plan",
        env.redact().transcript(&args, code, "", &stderr)
    );
    // apply --yes plans exactly as plan does: blocked, nothing written (no app, no secret, no
    // Spot account before a role PUT that would answer 409).
    let (code, stdout, stderr) = env
        .run(
            &[
                "apply",
                "--subscription",
                seed::SUB_CONTOSO_PROD,
                "--yes",
                "--json",
            ],
            &[],
        )
        .await;
    assert_eq!(code, spot_connect::cli::exit::FAILED, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let report = &doc["subscriptions"][0];
    assert_eq!(report["verdict"], "failed");
    assert!(
        report["error"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("nothing was changed"),
        "{report:#}"
    );
    assert_eq!(counts(&env.sim.state()), before, "nothing written");
    let writes = env
        .sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .skip(log_before)
        .filter(|r| {
            r["method"] != "GET"
                && r["service"] != "login"
                && !(r["service"] == "spot"
                    && r["method"] == "POST"
                    && r["path"].as_str().is_some_and(|p| p.contains("validate")))
        })
        .map(|r| format!("{} {} {}", r["service"], r["method"], r["path"]))
        .collect::<Vec<_>>();
    assert!(writes.is_empty(), "no write reached a service: {writes:#?}");
    env.0.sim.shutdown().await;
}

/// The plan is the contract: `plan --json` for three subscriptions of Contoso and one of
/// Fabrikam lists exactly what `apply --yes` then creates, object by object, as the simulator
/// holds it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_json_of_four_subscriptions_in_two_tenants_is_what_apply_writes() {
    let env = Env::start(SimOpts {
        subscriptions: 1,
        ..Default::default()
    })
    .await;
    let contoso = [
        seed::SUB_CONTOSO_PROD.to_string(),
        seed::SUB_CONTOSO_DEV.to_string(),
        seed::extra_subscription_id(1),
    ];
    let fabrikam = seed::SUB_FABRIKAM_STAGING.to_string();
    let mut args: Vec<&str> = vec!["plan", "--json"];
    for s in contoso.iter().chain([&fabrikam]) {
        args.extend(["--subscription", s.as_str()]);
    }
    let before = env.sim.state();
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let items = plan["items"].as_array().unwrap();
    let count = |object: &str, action: &str, sub: Option<&str>| {
        items
            .iter()
            .filter(|i| {
                i["object"] == object
                    && i["action"] == action
                    && sub.is_none_or(|s| i["subscription_id"] == s)
            })
            .count()
    };
    // Per tenant: one app, one service principal, one new secret, one role; per subscription an
    // assignment, a Spot account and the connection.
    for (object, n) in [
        ("app registration", 2),
        ("service principal", 2),
        ("client secret", 2),
        ("custom role", 2),
        ("role assignment", 4),
        ("Spot account", 4),
        ("Spot connection", 4),
    ] {
        assert_eq!(count(object, "create", None), n, "{object}: {items:#?}");
    }
    assert_eq!(items.len(), 20, "nothing but those: {items:#?}");
    let counts_json = plan["counts"].as_array().unwrap();
    assert!(
        counts_json
            .iter()
            .any(|c| c["object"] == "role assignment" && c["create"] == 4),
        "{counts_json:#?}"
    );
    assert_eq!(env.sim.state(), before, "plan writes nothing");

    args[0] = "apply";
    args.push("--yes");
    let (code, stdout, stderr) = env.run(&args, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let reports: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reports["subscriptions"].as_array().unwrap().len(), 4);
    let after = env.sim.state();

    // Object by object: what the simulator holds now and did not before is what the plan said.
    let new_of = |key: &str, id: &str| -> Vec<Value> {
        let old: Vec<&Value> = before[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v[id])
            .collect();
        after[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| !old.contains(&&v[id]))
            .cloned()
            .collect()
    };
    let apps = new_of("applications", "id");
    let sps = new_of("servicePrincipals", "id");
    let roles = new_of("roleDefinitions", "name");
    let assignments = new_of("roleAssignments", "name");
    let accounts: Vec<Value> = {
        let old: Vec<&Value> = before["spot"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["accountId"])
            .collect();
        after["spot"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !old.contains(&&a["accountId"]))
            .cloned()
            .collect()
    };
    let plan_names = |object: &str| -> Vec<String> {
        let mut v: Vec<String> = items
            .iter()
            .filter(|i| i["object"] == object)
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let names = |objs: &[Value], key: &str| -> Vec<String> {
        let mut v: Vec<String> = objs
            .iter()
            .map(|o| o[key].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&apps, "displayName"), plan_names("app registration"));
    assert_eq!(names(&sps, "displayName"), plan_names("service principal"));
    assert_eq!(names(&roles, "roleName"), plan_names("custom role"));
    assert_eq!(names(&accounts, "name"), plan_names("Spot account"));
    assert_eq!(assignments.len(), count("role assignment", "create", None));
    // Each planned assignment is at its subscription, and each planned connection is held by
    // that subscription's account.
    for sub in contoso.iter().chain([&fabrikam]) {
        let scope = format!("/subscriptions/{sub}");
        assert_eq!(
            assignments
                .iter()
                .filter(|a| a["scope"] == scope.as_str())
                .count(),
            count("role assignment", "create", Some(sub)),
            "{sub}"
        );
        let acct = accounts
            .iter()
            .find(|a| a["providerExternalId"] == sub.as_str())
            .unwrap_or_else(|| panic!("{sub} has its planned Spot account"));
        assert_eq!(count("Spot connection", "create", Some(sub)), 1);
        assert!(acct["credentials"]["clientId"].is_string());
    }
    // The role of each tenant is assignable at exactly that tenant's planned subscriptions.
    for r in &roles {
        let scopes: Vec<&str> = r["assignableScopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let n = if scopes.iter().any(|s| s.contains(&fabrikam)) {
            1
        } else {
            3
        };
        assert_eq!(scopes.len(), n, "{scopes:?}");
    }
    // Secrets: exactly one new per tenant (the planned "client secret" creates), each held by
    // every Spot account of its tenant.
    let secrets: Vec<(String, String)> = after["applications"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["passwordCredentials"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    p["displayName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("spot-connect "))
                })
                .map(|p| {
                    (
                        a["appId"].as_str().unwrap().to_string(),
                        p["secretText"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        secrets.len(),
        count("client secret", "create", None),
        "{secrets:?}"
    );
    for a in &accounts {
        let c = &a["credentials"];
        assert!(
            secrets
                .iter()
                .any(|(app, s)| c["clientId"] == app.as_str() && c["clientSecret"] == s.as_str()),
            "{a:#}"
        );
    }
    // The comparison, as the closing note shows it.
    for (object, planned, found) in [
        (
            "app registration",
            count("app registration", "create", None),
            apps.len(),
        ),
        (
            "service principal",
            count("service principal", "create", None),
            sps.len(),
        ),
        (
            "client secret",
            count("client secret", "create", None),
            secrets.len(),
        ),
        (
            "custom role",
            count("custom role", "create", None),
            roles.len(),
        ),
        (
            "role assignment",
            count("role assignment", "create", None),
            assignments.len(),
        ),
        (
            "Spot account",
            count("Spot account", "create", None),
            accounts.len(),
        ),
        (
            "Spot connection",
            count("Spot connection", "create", None),
            accounts
                .iter()
                .filter(|a| a["credentials"].is_object())
                .count(),
        ),
    ] {
        eprintln!(
            "plan vs state: {object:<18} planned create {planned}  new in the simulator {found}"
        );
        assert_eq!(planned, found, "{object}");
    }
    // The same plan again: everything is reused.
    args.pop();
    args[0] = "plan";
    let (code, stdout, _) = env.run(&args, &[]).await;
    assert_eq!(code, 0);
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        again["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "reuse"),
        "{again:#}"
    );
    env.0.sim.shutdown().await;
}

/// Graph and ARM as an SDK (or `az rest`) calls them, for the e2e below.
struct Rest {
    http: reqwest::Client,
    graph: String,
    arm: String,
}

impl Rest {
    fn new(env: &Env) -> Rest {
        let ca = std::fs::read(&env.sim.endpoints.ca_cert).unwrap();
        Rest {
            http: reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            graph: env.sim.endpoints.graph.clone(),
            arm: env.sim.endpoints.arm.clone(),
        }
    }

    /// The operator's token for `resource` in Contoso, by device code (as `az login` gets it).
    async fn operator_token(&self, env: &Env, resource: &str) -> String {
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            env.sim.endpoints.login,
            seed::CONTOSO_TENANT_ID
        );
        let dc: Value = self
            .http
            .post(token_url.replace("/token", "/devicecode"))
            .form(&[
                ("client_id", seed::AZURE_CLI_CLIENT_ID),
                ("scope", &format!("{resource}/.default")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for _ in 0..20 {
            let r: Value = self
                .http
                .post(&token_url)
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", seed::AZURE_CLI_CLIENT_ID),
                    ("device_code", dc["device_code"].as_str().unwrap()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(t) = r["access_token"].as_str() {
                return t.to_string();
            }
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        panic!("device code not approved");
    }

    async fn call(&self, method: &str, url: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// An administrator makes a service principal through Graph (app, principal, secret, Owner on a
/// subscription), as the Azure SDKs do. Signed in as it, `apply --auth client-secret` is refused
/// before any write, naming the principal's object id; once the administrator grants it
/// Microsoft Graph's Application.ReadWrite.OwnedBy through `appRoleAssignedTo`, it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_made_and_granted_through_graph_connects_with_client_secret() {
    let env = Env::start(SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    })
    .await;
    let rest = Rest::new(&env);
    let graph_token = rest.operator_token(&env, &rest.graph).await;
    let arm_token = rest.operator_token(&env, &rest.arm).await;
    let g = |p: &str| format!("{}/v1.0{p}", rest.graph);
    let (s, app) = rest
        .call(
            "POST",
            &g("/applications"),
            &graph_token,
            json!({"displayName": "ci-made-through-graph"}),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let app_id = app["appId"].as_str().unwrap().to_string();
    let (s, sp) = rest
        .call(
            "POST",
            &g("/servicePrincipals"),
            &graph_token,
            json!({"appId": app_id}),
        )
        .await;
    assert_eq!(s, 201, "{sp}");
    let sp_id = sp["id"].as_str().unwrap().to_string();
    let (s, pw) = rest
        .call(
            "POST",
            &g(&format!(
                "/applications/{}/addPassword",
                app["id"].as_str().unwrap()
            )),
            &graph_token,
            json!({"passwordCredential": {"displayName": "ci"}}),
        )
        .await;
    assert_eq!(s, 200, "{pw}");
    let secret = pw["secretText"].as_str().unwrap().to_string();
    let sub = seed::SUB_CONTOSO_DEV;
    let (s, ra) = rest
        .call(
            "PUT",
            &format!(
                "{}/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
                rest.arm,
                "4b1d0e2a-0000-4000-8000-00000000e2e0"
            ),
            &arm_token,
            json!({"properties": {
                "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{}", seed::ROLE_OWNER),
                "principalId": sp_id, "principalType": "ServicePrincipal"}}),
        )
        .await;
    assert_eq!(s, 201, "{ra}");
    let as_sp = [
        ("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID),
        ("AZURE_CLIENT_ID", app_id.as_str()),
        ("AZURE_CLIENT_SECRET", secret.as_str()),
    ];
    let args = [
        "apply",
        "--auth",
        "client-secret",
        "--subscription",
        sub,
        "--yes",
    ];

    // Not granted yet: refused before anything is written, the principal named by object id.
    let before = env.sim.state();
    let (code, stdout, stderr) = env.run(&args, &as_sp).await;
    assert_eq!(code, 1, "{stderr}");
    let mut r = env.redact();
    r.name(&sp_id, "[its service principal]")
        .name(&app_id, "[its app]");
    insta::assert_snapshot!(
        "service_principal_not_granted_apply",
        r.transcript(&args, code, &stdout, &stderr)
    );
    assert!(!stderr.contains(&secret));
    assert_eq!(env.sim.state(), before, "nothing written");

    // The administrator grants the app role on Microsoft Graph's service principal.
    let (s, graph_sp) = rest
        .call(
            "GET",
            &g(&format!(
                "/servicePrincipals(appId='{}')",
                seed::MICROSOFT_GRAPH_APP_ID
            )),
            &graph_token,
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{graph_sp}");
    let graph_id = graph_sp["id"].as_str().unwrap();
    let (s, grant) = rest
        .call(
            "POST",
            &g(&format!("/servicePrincipals/{graph_id}/appRoleAssignedTo")),
            &graph_token,
            json!({"principalId": sp_id, "resourceId": graph_id, "appRoleId": seed::GRAPH_APPLICATION_READWRITE_OWNEDBY}),
        )
        .await;
    assert_eq!(s, 201, "{grant}");

    let (code, _, stderr) = env.run(&args, &as_sp).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(&secret));
    assert_converged(&env.sim.state(), sub);
    env.0.sim.shutdown().await;
}
