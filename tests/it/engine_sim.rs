//! The onboarding engine against the in-process simulator: what it creates, that it creates it
//! once, and that it converges after faults, replication delay and interruptions.

use crate::common::sim::Engine;
use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::onboard::model::{
    Outcome, PlanAction, Progress, Report, Step, StepEvent, Verdict,
};
use spot_connect::onboard::{self, Settings, Target};
use spot_connect::sim::seed;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

type Env = Engine;

async fn env(opts: SimOpts) -> Env {
    let env = Engine::start(opts).await;
    env.session
        .auth
        .sign_in()
        .await
        .expect("device code sign-in (auto-approved)");
    env
}

fn prod() -> Target {
    Target {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: seed::SUB_CONTOSO_PROD.into(),
        subscription_name: "Contoso Production".into(),
    }
}

fn dev() -> Target {
    Target {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: seed::SUB_CONTOSO_DEV.into(),
        subscription_name: "Contoso Dev".into(),
    }
}

/// What `apply --yes` does for one subscription: plan, then apply exactly that plan.
async fn apply(env: &Env, target: &Target, settings: &Settings) -> (Report, Vec<Progress>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let plan = onboard::plan(&env.session, std::slice::from_ref(target), settings)
        .await
        .expect("plan");
    let mut run = onboard::apply(&env.session, &plan, tx).await;
    assert_eq!(run.reports.len(), 1);
    let report = run.reports.remove(0);
    let mut events = Vec::new();
    while let Ok(p) = rx.try_recv() {
        events.push(p);
    }
    (report, events)
}

fn arr<'a>(state: &'a Value, key: &str) -> &'a Vec<Value> {
    state[key]
        .as_array()
        .unwrap_or_else(|| panic!("state has {key}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The objects spot-connect made for `sub`, and a check that each exists exactly once.
struct Ours {
    app: Value,
    sp: Value,
    role: Value,
    assignment: Value,
    account: Value,
}

fn ours(state: &Value, sub: &str) -> Ours {
    let apps: Vec<&Value> = arr(state, "applications")
        .iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .collect();
    assert_eq!(apps.len(), 1, "one app registration of ours: {apps:#?}");
    let app = apps[0].clone();
    let sps: Vec<&Value> = arr(state, "servicePrincipals")
        .iter()
        .filter(|p| s(p, "appId") == s(&app, "appId"))
        .collect();
    assert_eq!(sps.len(), 1, "one service principal: {sps:#?}");
    let sp = sps[0].clone();
    let roles: Vec<&Value> = arr(state, "roleDefinitions")
        .iter()
        .filter(|r| s(r, "roleName") == "Spot.io Custom Role")
        .collect();
    assert_eq!(roles.len(), 1, "one custom role: {roles:#?}");
    let role = roles[0].clone();
    let scope = format!("/subscriptions/{sub}");
    let assignments: Vec<&Value> = arr(state, "roleAssignments")
        .iter()
        .filter(|a| s(a, "principalId") == s(&sp, "id") && s(a, "scope") == scope)
        .collect();
    assert_eq!(
        assignments.len(),
        1,
        "one role assignment at {scope}: {assignments:#?}"
    );
    let accounts: Vec<&Value> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| s(a, "providerExternalId") == sub)
        .collect();
    assert_eq!(
        accounts.len(),
        1,
        "one Spot account for {sub}: {accounts:#?}"
    );
    Ours {
        app,
        sp,
        role,
        assignment: assignments[0].clone(),
        account: accounts[0].clone(),
    }
}

/// Secrets of ours on the app (the tenant's shared secret, `spot-connect <tenant>`): exactly
/// one once connected (orphans removed). `sub` only names the subscription in messages.
fn secrets_for<'a>(app: &'a Value, sub: &str) -> Vec<&'a Value> {
    let _ = sub;
    app["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| s(p, "displayName").starts_with("spot-connect "))
        .collect()
}

fn counts(state: &Value) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = [
        "applications",
        "servicePrincipals",
        "roleDefinitions",
        "roleAssignments",
    ]
    .iter()
    .map(|k| (k.to_string(), arr(state, k).len()))
    .collect();
    v.push((
        "spot accounts".into(),
        state["spot"]["accounts"].as_array().unwrap().len(),
    ));
    let passwords: usize = arr(state, "applications")
        .iter()
        .map(|a| a["passwordCredentials"].as_array().map_or(0, Vec::len))
        .sum();
    v.push(("passwords".into(), passwords));
    v
}

fn finished(events: &[Progress]) -> Vec<(Step, Outcome)> {
    events
        .iter()
        .filter_map(|p| match p {
            Progress::Step {
                step,
                event: StepEvent::Finished { outcome, .. },
                ..
            } => Some((*step, *outcome)),
            _ => None,
        })
        .collect()
}

fn assert_connected(state: &Value, target: &Target, report: &Report) {
    assert_eq!(report.verdict, Verdict::Connected, "{report:#?}");
    let o = ours(state, &target.subscription_id);
    let sub = &target.subscription_id;
    let scope = format!("/subscriptions/{sub}");
    // App registration: single tenant, Web redirect URI https://spot.io, our marker.
    assert_eq!(s(&o.app, "signInAudience"), "AzureADMyOrg");
    assert_eq!(
        o.app["redirectUris"],
        serde_json::json!(["https://spot.io"])
    );
    assert!(s(&o.app, "notes").contains("spot-connect"));
    // Role: Spot's 85 actions, assignable at the subscription.
    let actions = o.role["permissions"][0]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 85);
    assert!(
        o.role["assignableScopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == &scope)
    );
    // Assignment: the role, to the service principal's object id, as a ServicePrincipal.
    assert_eq!(s(&o.assignment, "principalType"), "ServicePrincipal");
    assert!(s(&o.assignment, "roleDefinitionId").ends_with(s(&o.role, "name")));
    assert_eq!(s(&o.assignment, "principalId"), s(&o.sp, "id"));
    // Spot: this app's credentials for this subscription, expiring with the secret.
    let creds = &o.account["credentials"];
    assert_eq!(s(creds, "clientId"), s(&o.app, "appId"));
    assert_eq!(s(creds, "subscriptionId"), sub);
    assert_eq!(s(creds, "tenantId"), target.tenant_id);
    // The secret Spot holds for this subscription is one of ours; and every secret of ours is
    // held by some Spot account (no orphans: a run makes at most one per tenant).
    let ours_all = secrets_for(&o.app, sub);
    let secrets: Vec<&Value> = ours_all
        .iter()
        .copied()
        .filter(|p| s(p, "secretText") == s(creds, "clientSecret"))
        .collect();
    assert_eq!(
        secrets.len(),
        1,
        "Spot holds one secret of ours for {sub}: {ours_all:#?}"
    );
    let held: Vec<&str> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(&a["credentials"], "clientSecret"))
        .collect();
    for p in &ours_all {
        assert!(
            held.contains(&s(p, "secretText")),
            "an orphaned secret is left: {p:#?}"
        );
    }
    let parse = |x: &str| {
        time::OffsetDateTime::parse(x, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(
        parse(s(creds, "expirationDate")),
        parse(s(secrets[0], "endDateTime"))
    );
    assert_eq!(
        report.secret_expires.map(|t| t.unix_timestamp()),
        Some(parse(s(secrets[0], "endDateTime")).unix_timestamp())
    );
    assert_eq!(
        report.spot_account_id.as_deref(),
        Some(s(&o.account, "accountId"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_creates_the_seed_pages_objects_once_and_a_second_run_reuses_them() {
    let env = env(SimOpts::default()).await;
    let settings = Settings::default();
    let (report, events) = apply(&env, &prod(), &settings).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    let done = finished(&events);
    for step in [
        Step::SpotAccount,
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
    ] {
        assert!(
            done.contains(&(step, Outcome::Created)),
            "{step:?} created: {done:?}"
        );
    }
    // The state file is private and holds no secret.
    let state_files: Vec<_> = std::fs::read_dir(env.state_dir.join("state"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(state_files.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            state_files[0].metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Second run: nothing new, everything reused.
    let before = counts(&state);
    let (again, events) = apply(&env, &prod(), &settings).await;
    assert_eq!(again.verdict, Verdict::Connected);
    let after = env.sim.state();
    assert_eq!(counts(&after), before, "a second run creates nothing");
    assert!(
        again.objects.iter().all(|o| o.outcome == Outcome::Reused),
        "{:#?}",
        again.objects
    );
    assert!(finished(&events).iter().all(|(_, o)| *o == Outcome::Reused));
    assert_connected(&after, &prod(), &again);

    let plan = onboard::plan(&env.session, &[prod()], &settings)
        .await
        .unwrap();
    assert!(
        plan.items.iter().all(|i| i.action == PlanAction::Reuse),
        "{plan:#?}"
    );
    assert_eq!(plan.items.len(), 7);

    // A second subscription of the tenant: the same app and role (scope added), its own
    // assignment, secret and Spot account.
    let (second, _) = apply(&env, &dev(), &settings).await;
    let state = env.sim.state();
    assert_connected(&state, &dev(), &second);
    assert_connected(&state, &prod(), &again);
    let role_outcome = second
        .objects
        .iter()
        .find(|o| o.step == Step::CustomRole)
        .unwrap()
        .outcome;
    assert_eq!(role_outcome, Outcome::Updated);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing_and_says_what_apply_would_do() {
    let env = env(SimOpts::default()).await;
    let before = counts(&env.sim.state());
    let plan = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    assert_eq!(counts(&env.sim.state()), before);
    let actions: Vec<(&str, PlanAction)> = plan
        .items
        .iter()
        .map(|i| (i.object.as_str(), i.action))
        .collect();
    assert_eq!(
        actions,
        // The tenant's shared objects, then the subscription's.
        vec![
            ("app registration", PlanAction::Create),
            ("service principal", PlanAction::Create),
            ("client secret", PlanAction::Create),
            ("custom role", PlanAction::Create),
            ("Spot account", PlanAction::Create),
            ("role assignment", PlanAction::Create),
            ("Spot connection", PlanAction::Create),
        ]
    );
    assert!(
        !env.state_dir.join("state").exists(),
        "plan writes no state"
    );
    // The right to register applications was checked: Contoso lets users register apps.
    let app = &plan.items[0];
    assert!(
        app.reason
            .contains("users may register applications in this tenant"),
        "{}",
        app.reason
    );
    // Fabrikam does not; the operator registers apps there as Cloud Application Administrator.
    let fabrikam = Target {
        tenant_id: seed::FABRIKAM_TENANT_ID.into(),
        subscription_id: seed::SUB_FABRIKAM_STAGING.into(),
        subscription_name: "Fabrikam Staging".into(),
    };
    let plan = onboard::plan(
        &env.session,
        std::slice::from_ref(&fabrikam),
        &Settings::default(),
    )
    .await
    .unwrap();
    let app = plan
        .items
        .iter()
        .find(|i| i.object == "app registration")
        .unwrap();
    assert_eq!(app.action, PlanAction::Create);
    assert!(
        app.reason.contains("Cloud Application Administrator"),
        "{}",
        app.reason
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_app_that_is_not_ours_is_never_taken_over() {
    let env = env(SimOpts::default()).await;
    let settings = Settings {
        app_name: Some(seed::FABRIKAM_SPOT_APP_NAME.into()),
        ..Default::default()
    };
    // That app lives in Fabrikam; look for it there.
    let fabrikam = Target {
        tenant_id: seed::FABRIKAM_TENANT_ID.into(),
        subscription_id: seed::SUB_FABRIKAM_STAGING.into(),
        subscription_name: "Fabrikam Staging".into(),
    };
    let before = counts(&env.sim.state());
    let plan = onboard::plan(&env.session, std::slice::from_ref(&fabrikam), &settings)
        .await
        .unwrap();
    let app = plan
        .items
        .iter()
        .find(|i| i.object == "app registration")
        .unwrap();
    assert_eq!(app.action, PlanAction::Blocked);
    // What to do is a hint value; each front end words it (the CLI: --app-name).
    assert_eq!(app.hint, Some(spot_connect::error::Hint::ChooseAppName));
    assert!(!app.reason.contains("--"), "{}", app.reason);
    let (report, _) = apply(&env, &fabrikam, &settings).await;
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(
        report
            .error
            .unwrap()
            .summary
            .contains("nothing was changed")
    );
    assert_eq!(counts(&env.sim.state()), before, "nothing written");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_replication_delay_end_connected_without_duplicates() {
    let env = env(SimOpts {
        fault_rate: 0.2,
        replication_delay: 4.0,
        seed: 7,
        ..Default::default()
    })
    .await;
    let settings = Settings::default();
    let (report, events) = apply(&env, &prod(), &settings).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    let waited = events.iter().any(|p| {
        matches!(p, Progress::Step { event: StepEvent::Waiting { reason, .. }, .. } if reason.contains("propagate"))
    });
    assert!(waited, "replication delay is reported as a wait");
    let (second, _) = apply(&env, &dev(), &settings).await;
    let state = env.sim.state();
    assert_connected(&state, &dev(), &second);
    assert_connected(&state, &prod(), &report);
    env.sim.shutdown().await;
}

/// Runs apply and aborts it when `step` finishes; returns whether it got there.
async fn apply_until(env: &Env, target: &Target, step: Step) -> bool {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (session, target2, settings) = (env.session.clone(), target.clone(), Settings::default());
    let task = tokio::spawn(async move {
        let plan = onboard::plan(&session, &[target2], &settings).await?;
        Ok::<_, spot_connect::error::Error>(onboard::apply(&session, &plan, tx).await)
    });
    let mut reached = false;
    while let Some(p) = rx.recv().await {
        if let Progress::Step {
            step: s,
            event: StepEvent::Finished { .. },
            ..
        } = p
            && s == step
        {
            task.abort();
            reached = true;
            break;
        }
    }
    let _ = task.await;
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_after_each_step_the_next_run_converges_without_duplicates() {
    for step in [
        Step::SpotAccount,
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
    ] {
        let env = env(SimOpts {
            latency: 20,
            ..Default::default()
        })
        .await;
        assert!(apply_until(&env, &prod(), step).await, "{step:?} finished");
        let (report, _) = apply(&env, &prod(), &Settings::default()).await;
        assert_connected(&env.sim.state(), &prod(), &report);
        env.sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_never_handed_to_spot_is_replaced_and_removed() {
    let env = env(SimOpts {
        latency: 20,
        ..Default::default()
    })
    .await;
    assert!(apply_until(&env, &prod(), Step::ClientSecret).await);
    let orphan_key = {
        let st: Value = serde_json::from_slice(
            &std::fs::read(
                std::fs::read_dir(env.state_dir.join("state"))
                    .unwrap()
                    .flatten()
                    .next()
                    .unwrap()
                    .path(),
            )
            .unwrap(),
        )
        .unwrap();
        // Recorded as an orphan until Spot has it (nothing holds it yet).
        assert!(st["secret"].is_null(), "{st:#}");
        let orphans = st["orphan_key_ids"].as_array().unwrap();
        assert_eq!(orphans.len(), 1, "{st:#}");
        orphans[0].as_str().unwrap().to_string()
    };
    let (report, _) = apply(&env, &prod(), &Settings::default()).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    let o = ours(&state, seed::SUB_CONTOSO_PROD);
    assert!(
        secrets_for(&o.app, seed::SUB_CONTOSO_PROD)
            .iter()
            .all(|p| s(p, "keyId") != orphan_key)
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_state_files_or_reports() {
    let env = env(SimOpts::default()).await;
    let (report, events) = apply(&env, &prod(), &Settings::default()).await;
    assert_eq!(report.verdict, Verdict::Connected);
    let state = env.sim.state();
    let o = ours(&state, seed::SUB_CONTOSO_PROD);
    let secret = s(secrets_for(&o.app, seed::SUB_CONTOSO_PROD)[0], "secretText").to_string();
    assert!(secret.len() > 8);
    let mut text = serde_json::to_string(&report).unwrap();
    text.push_str(&serde_json::to_string(&events).unwrap());
    text.push_str(&read_tree(&env.state_dir));
    for needle in [secret.as_str(), seed::SPOT_TOKEN] {
        assert!(!text.contains(needle), "a secret leaked");
    }
    env.sim.shutdown().await;
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
async fn secret_lifetime_beyond_the_tenant_policy_says_to_use_fewer_months() {
    let env = env(SimOpts::default()).await;
    let settings = Settings {
        secret_months: 30,
        ..Default::default()
    };
    let (report, _) = apply(&env, &prod(), &settings).await;
    assert_eq!(report.verdict, Verdict::Failed);
    let e = report.error.unwrap();
    assert!(
        e.summary
            .contains("CredentialInvalidLifetimeAsPerAppPolicy"),
        "{e:?}"
    );
    assert!(
        e.summary.contains("fewer months")
            || e.hint == Some(spot_connect::error::Hint::FewerSecretMonths),
        "{e:?}"
    );
    // With fewer months the next run converges.
    let (ok, _) = apply(&env, &prod(), &Settings::default()).await;
    assert_connected(&env.sim.state(), &prod(), &ok);
    let _ = Duration::ZERO;
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_missing_actions_of_the_policy_is_updated_and_the_drift_shown() {
    let env = env(SimOpts::default()).await;
    let (first, _) = apply(&env, &prod(), &Settings::default()).await;
    assert_eq!(first.verdict, Verdict::Connected);
    // A policy in az CLI shape with one action more than Spot's embedded one.
    let mut actions = spot_connect::onboard::policy::Policy::load(None)
        .unwrap()
        .actions;
    actions.push("Microsoft.Compute/diskEncryptionSets/read".into());
    let file = env.state_dir.join("policy.json");
    std::fs::write(
        &file,
        serde_json::json!({"Name": "{customRoleName}", "Description": "Spot", "Actions": actions,
            "AssignableScopes": ["/subscriptions/{subscriptionId}"]})
        .to_string(),
    )
    .unwrap();
    let settings = Settings {
        policy_file: Some(file),
        ..Default::default()
    };
    let plan = onboard::plan(&env.session, &[prod()], &settings)
        .await
        .unwrap();
    let role = plan
        .items
        .iter()
        .find(|i| i.object == "custom role")
        .unwrap();
    assert_eq!(role.action, PlanAction::Update);
    let drift = role.drift.as_ref().expect("drift shown");
    assert_eq!(
        drift.missing,
        vec!["Microsoft.Compute/diskEncryptionSets/read"]
    );
    assert!(drift.extra.is_empty());
    let (report, _) = apply(&env, &prod(), &settings).await;
    assert_eq!(report.verdict, Verdict::Connected, "{report:#?}");
    let outcome = report
        .objects
        .iter()
        .find(|o| o.step == Step::CustomRole)
        .unwrap()
        .outcome;
    assert_eq!(outcome, Outcome::Updated);
    let state = env.sim.state();
    let o = ours(&state, seed::SUB_CONTOSO_PROD);
    assert_eq!(
        o.role["permissions"][0]["actions"]
            .as_array()
            .unwrap()
            .len(),
        86
    );
    // Nothing else was touched: no new secret.
    assert_eq!(secrets_for(&o.app, seed::SUB_CONTOSO_PROD).len(), 1);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_state_lost_the_tenants_app_and_role_are_found_and_reused() {
    let env = env(SimOpts::default()).await;
    let (first, _) = apply(&env, &prod(), &Settings::default()).await;
    assert_eq!(first.verdict, Verdict::Connected);
    std::fs::remove_dir_all(env.state_dir.join("state")).unwrap();
    // Another subscription of the tenant: the role is assignable at Production only, so it is
    // not visible at Dev's scope; it is found elsewhere in the tenant and gets Dev added.
    let plan = onboard::plan(&env.session, &[dev()], &Settings::default())
        .await
        .unwrap();
    let action = |o: &str| plan.items.iter().find(|i| i.object == o).unwrap().action;
    assert_eq!(action("app registration"), PlanAction::Reuse);
    assert_eq!(action("service principal"), PlanAction::Reuse);
    assert_eq!(action("custom role"), PlanAction::Update, "{plan:#?}");
    assert_eq!(action("role assignment"), PlanAction::Create);
    let (report, _) = apply(&env, &dev(), &Settings::default()).await;
    let state = env.sim.state();
    assert_connected(&state, &dev(), &report);
    // And Production, state lost too: everything reused, no new secret (Spot's expiry matches ours).
    let before = counts(&state);
    let (again, _) = apply(&env, &prod(), &Settings::default()).await;
    assert_eq!(counts(&env.sim.state()), before);
    assert!(
        again.objects.iter().all(|o| o.outcome == Outcome::Reused),
        "{:#?}",
        again.objects
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_role_that_is_not_ours_blocks_and_nothing_is_written() {
    use spot_connect::azure::arm::{Arm, Permission, RoleDefinitionProperties};
    let env = env(SimOpts::default()).await;
    // Someone else's role, made by hand in the portal (no spot-connect marker).
    let arm = Arm::new(
        env.session.http.clone(),
        &env.session.endpoints.arm,
        env.session.auth.clone(),
        seed::CONTOSO_TENANT_ID,
    );
    let scope = format!("/subscriptions/{}", seed::SUB_CONTOSO_PROD);
    arm.put_role_definition(
        &scope,
        "0f0f0f0f-0000-4000-8000-000000000001",
        &RoleDefinitionProperties {
            role_name: "Spot Role".into(),
            description: Some("made by hand".into()),
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
    let settings = Settings {
        role_name: Some("Spot Role".into()),
        ..Default::default()
    };
    let before = counts(&env.sim.state());
    let plan = onboard::plan(&env.session, &[prod()], &settings)
        .await
        .unwrap();
    let role = plan
        .items
        .iter()
        .find(|i| i.object == "custom role")
        .unwrap();
    assert_eq!(role.action, PlanAction::Blocked);
    assert_eq!(role.hint, Some(spot_connect::error::Hint::ChooseRoleName));
    assert!(!role.reason.contains("--"), "{}", role.reason);
    assert_eq!(
        role.drift.as_ref().unwrap().missing.len(),
        84,
        "drift against Spot's policy shown"
    );
    let (report, events) = apply(&env, &prod(), &settings).await;
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(events.iter().any(|p| matches!(
        p,
        Progress::Step {
            step: Step::CustomRole,
            event: StepEvent::Failed { .. },
            ..
        }
    )));
    assert_eq!(counts(&env.sim.state()), before, "nothing written");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_to_the_role_and_assignment_puts_leave_one_of_each_under_deterministic_names()
{
    use spot_connect::onboard::policy::{role_assignment_name, role_definition_guid};
    let env = env(SimOpts::default()).await;
    // Each PUT is applied, then its connection is dropped: the reply is lost.
    env.sim.drop_after("PUT", "/roleDefinitions/", 1);
    env.sim.drop_after("PUT", "/roleAssignments/", 1);
    let (report, _) = apply(&env, &prod(), &Settings::default()).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    let o = ours(&state, seed::SUB_CONTOSO_PROD);
    let role_guid = role_definition_guid(seed::CONTOSO_TENANT_ID, "Spot.io Custom Role");
    assert_eq!(s(&o.role, "name"), role_guid);
    let assignment = role_assignment_name(seed::SUB_CONTOSO_PROD, s(&o.sp, "id"), &role_guid);
    assert_eq!(s(&o.assignment, "name"), assignment);
    // Both replies were lost, and the repeated PUT named the same object.
    let log = env.sim.requests();
    let puts = |needle: &str| -> Vec<(String, String, Option<String>)> {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "PUT" && s(e, "path").contains(needle))
            .map(|e| {
                (
                    s(e, "path").split('?').next().unwrap().to_string(),
                    e["status"].to_string(),
                    e["fault"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    let role_puts = puts("/roleDefinitions/");
    assert_eq!(role_puts.len(), 2, "{role_puts:?}");
    assert_eq!(role_puts[0].2.as_deref(), Some("drop_after"));
    assert!(
        role_puts.iter().all(|p| p.0.ends_with(&role_guid)),
        "{role_puts:?}"
    );
    assert_eq!(role_puts[1].1, "200", "the repeat updates the same role");
    let assign_puts = puts("/roleAssignments/");
    assert_eq!(assign_puts.len(), 2, "{assign_puts:?}");
    assert_eq!(assign_puts[0].2.as_deref(), Some("drop_after"));
    assert!(assign_puts.iter().all(|p| p.0.ends_with(&assignment)));
    assert_eq!(assign_puts[1].1, "409", "the repeat finds it already there");
    // The recorded id is the real one.
    let id = report
        .objects
        .iter()
        .find(|x| x.step == Step::RoleAssignment)
        .map(|x| x.id.clone())
        .unwrap();
    assert!(id.ends_with(&assignment), "{id}");
    env.sim.shutdown().await;
}

/// Idempotent by construction: the app is upserted by uniqueName and the service principal by
/// appId, so lost replies to both leave one of each; an app made by an earlier version (POST, no
/// uniqueName) is still found and reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_upsert_replies_leave_one_app_and_one_principal_and_old_apps_are_reused() {
    let env = env(SimOpts::default()).await;
    env.sim.drop_after("PATCH", "/applications(uniquename=", 1);
    env.sim.drop_after("PATCH", "/serviceprincipals(appid=", 1);
    let (report, _) = apply(&env, &prod(), &Settings::default()).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    let o = ours(&state, seed::SUB_CONTOSO_PROD);
    assert_eq!(s(&o.app, "uniqueName"), "spot-connect-c0c0c0c0");
    let log = env.sim.requests();
    let patches = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "PATCH")
        .count();
    assert!(
        patches >= 4,
        "both upserts were sent again after the lost replies: {patches}"
    );
    assert!(
        !log.as_array().unwrap().iter().any(|e| e["method"] == "POST"
            && (s(e, "path").ends_with("/applications")
                || s(e, "path").ends_with("/servicePrincipals"))),
        "no POST create"
    );
    env.sim.shutdown().await;

    // An app of an earlier version: created by POST, no uniqueName, our tag.
    let env = env_fresh().await;
    let graph = spot_connect::azure::graph::Graph::new(
        env.session.http.clone(),
        &env.session.endpoints.graph,
        env.session.auth.clone(),
        seed::CONTOSO_TENANT_ID,
    );
    let old = graph
        .create_application("spot-connect-c0c0c0c0")
        .await
        .unwrap();
    assert!(old.unique_name.is_none());
    let plan = onboard::plan(&env.session, &[prod()], &Settings::default())
        .await
        .unwrap();
    let app = plan
        .items
        .iter()
        .find(|i| i.object == "app registration")
        .unwrap();
    assert_eq!(app.action, PlanAction::Reuse, "{app:#?}");
    assert_eq!(app.id.as_deref(), Some(old.app_id.as_str()));
    let (report, _) = apply(&env, &prod(), &Settings::default()).await;
    let state = env.sim.state();
    assert_connected(&state, &prod(), &report);
    assert_eq!(
        s(&ours(&state, seed::SUB_CONTOSO_PROD).app, "appId"),
        old.app_id
    );
    env.sim.shutdown().await;
}

async fn env_fresh() -> Env {
    env(SimOpts::default()).await
}

/// Issue 11's guarantees on the one engine, at `onboard::apply` (the call the wizard and
/// `apply` share): the run lock, a plan made before another run wrote, and orphan secrets of
/// lost `addPassword` replies.
mod run_guard {
    use super::*;
    use spot_connect::onboard::lock;
    use spot_connect::onboard::model::RunReport;

    async fn run(env: &Env, plan: &onboard::Plan) -> (RunReport, Vec<Progress>) {
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
}

/// Issue 16 §8: a secret lifetime outside what the plan accepts is refused by the plan itself,
/// before anything is written (before: the app and its service principal were made, then
/// `addPassword` failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_lifetime_out_of_range_is_refused_by_the_plan_before_any_write() {
    let env = env(SimOpts::default()).await;
    let before = env.sim.state();
    for months in [0, 121] {
        let settings = Settings {
            secret_months: months,
            ..Default::default()
        };
        let e = onboard::plan(&env.session, &[prod()], &settings)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains(&format!("{months} months")), "{e}");
    }
    let after = env.sim.state();
    for k in [
        "applications",
        "servicePrincipals",
        "roleDefinitions",
        "roleAssignments",
    ] {
        assert_eq!(arr(&before, k).len(), arr(&after, k).len(), "{k}");
    }
    env.sim.shutdown().await;
}
