//! Life after onboarding against the in-process simulator: `status` verdicts, `rotate-secret`
//! (also killed half-way), `remove` (ours only), and many subscriptions at once.

use crate::common::sim::Engine;
use serde_json::{Value, json};
use spot_connect::azure::arm::Arm;
use spot_connect::azure::auth::Audience;
use spot_connect::cli::SimOpts;
use spot_connect::onboard::model::{Progress, Step, StepEvent, Verdict};
use spot_connect::onboard::remove::{RemoveOptions, plan_removal, remove};
use spot_connect::onboard::rotate::rotate;
use spot_connect::onboard::status::{Health, status};
use spot_connect::onboard::{self, Session, Settings, Target};
use spot_connect::secret::Secret;
use spot_connect::sim::seed;
use spot_connect::spot::AzureCredentials;
use std::time::Duration;
use tokio::sync::mpsc;

const ROLE: &str = "Spot.io Custom Role";

type Env = Engine;

async fn env(opts: SimOpts) -> Env {
    let env = Engine::start(opts).await;
    let mut tries = 0;
    while let Err(e) = env.session.auth.sign_in().await {
        tries += 1;
        assert!(tries < 5, "sign-in: {e}");
    }
    env
}

fn target(sub: &str, name: &str) -> Target {
    Target {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: sub.into(),
        subscription_name: name.into(),
    }
}

fn prod() -> Target {
    target(seed::SUB_CONTOSO_PROD, "Contoso Production")
}

fn dev() -> Target {
    target(seed::SUB_CONTOSO_DEV, "Contoso Dev")
}

/// Several subscriptions through the one engine: plan, then apply that plan.
async fn bulk(env: &Env, targets: &[Target]) -> spot_connect::onboard::model::RunReport {
    let (tx, _rx) = mpsc::unbounded_channel();
    let plan = spot_connect::onboard::plan(&env.session, targets, &Settings::default())
        .await
        .expect("plan");
    spot_connect::onboard::apply(&env.session, &plan, tx).await
}

fn arr<'a>(state: &'a Value, key: &str) -> Vec<&'a Value> {
    state[key]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn our_apps(state: &Value) -> Vec<&Value> {
    arr(state, "applications")
        .into_iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .collect()
}

fn accounts(state: &Value) -> Vec<&Value> {
    state["spot"]["accounts"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn account_of<'a>(state: &'a Value, sub: &str) -> &'a Value {
    accounts(state)
        .into_iter()
        .find(|a| s(a, "providerExternalId") == sub)
        .unwrap_or_else(|| panic!("a Spot account for {sub}"))
}

/// Asks the simulated Spot to validate `secret` for the account of `sub` (nothing stored).
async fn validates(env: &Env, app_id: &str, sub: &str, secret: &str) -> Result<(), String> {
    let st = env.sim.state();
    let acct = s(account_of(&st, sub), "accountId").to_string();
    let c = AzureCredentials {
        client_id: app_id.into(),
        client_secret: Secret::new(secret),
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: sub.into(),
        expiration_date: time::OffsetDateTime::now_utc() + time::Duration::days(300),
    };
    env.session
        .spot
        .validate_azure_credentials(&acct, &c)
        .await
        .map_err(|e| e.to_string())
}

/// Every account of `subs` validates with the secret Spot holds for it.
async fn all_working(env: &Env, subs: &[&str]) {
    let st = env.sim.state();
    for sub in subs {
        let c = &account_of(&st, sub)["credentials"];
        validates(env, s(c, "clientId"), sub, s(c, "clientSecret"))
            .await
            .unwrap_or_else(|e| panic!("{sub} still connected: {e}"));
    }
}

fn our_secrets(state: &Value) -> Vec<Value> {
    our_apps(state)[0]["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| s(p, "displayName").starts_with("spot-connect"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn after_rotation_the_old_secret_fails_spot_validation_and_the_new_one_passes() {
    let env = env(SimOpts::default()).await;
    let r = bulk(&env, &[prod(), dev()]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    let before = env.sim.state();
    let app_id = s(our_apps(&before)[0], "appId").to_string();
    let old = our_secrets(&before);
    assert_eq!(old.len(), 1, "one secret for the tenant: {old:#?}");
    let old_value = s(&old[0], "secretText").to_string();

    let (tx, _rx) = mpsc::unbounded_channel();
    let rep = rotate(
        &env.session,
        seed::CONTOSO_TENANT_ID,
        &Settings::default(),
        tx,
    )
    .await
    .expect("rotation");
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(rep.accounts.len(), 2);
    assert!(rep.accounts.iter().all(|a| a.updated));

    let after = env.sim.state();
    let new = our_secrets(&after);
    assert_eq!(new.len(), 1, "the old secret is gone: {new:#?}");
    assert_ne!(s(&new[0], "keyId"), s(&old[0], "keyId"));
    let new_value = s(&new[0], "secretText");
    for sub in [seed::SUB_CONTOSO_PROD, seed::SUB_CONTOSO_DEV] {
        let err = validates(&env, &app_id, sub, &old_value)
            .await
            .expect_err("the old secret no longer works");
        assert!(err.contains("AZURE_INVALID_CREDENTIALS"), "{err}");
        validates(&env, &app_id, sub, new_value)
            .await
            .expect("the new secret works");
        assert_eq!(
            s(&account_of(&after, sub)["credentials"], "clientSecret"),
            new_value
        );
    }
    // The state files record the new keyId (and never the value).
    let st = spot_connect::onboard::state::State::load(
        &env.session.state_dir,
        seed::CONTOSO_TENANT_ID,
        seed::SUB_CONTOSO_PROD,
    )
    .unwrap();
    assert_eq!(st.secret.as_ref().unwrap().key_id, s(&new[0], "keyId"));
    let files = std::fs::read_dir(env.session.state_dir.join("state")).unwrap();
    for f in files.flatten() {
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(!text.contains(new_value) && !text.contains(&old_value));
    }
    env.sim.shutdown().await;
}

/// Rotation aborted when `stop_at` is reported, then run again.
async fn killed_rotation(stop_at: impl Fn(&Progress) -> bool) {
    // Latency: the abort lands while the next call is in flight.
    let env = env(SimOpts {
        latency: 150,
        ..Default::default()
    })
    .await;
    let r = bulk(&env, &[prod(), dev()]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let session = env.session.clone();
    let task = tokio::spawn(async move {
        rotate(&session, seed::CONTOSO_TENANT_ID, &Settings::default(), tx).await
    });
    loop {
        let p = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("progress in time")
            .expect("rotation reports progress before it ends");
        if stop_at(&p) {
            task.abort();
            break;
        }
    }
    assert!(task.await.unwrap_err().is_cancelled());
    let mid = env.sim.state();
    assert_eq!(
        our_secrets(&mid).len(),
        2,
        "killed half-way: old and new secret both on the app"
    );
    // Still connected: every account's secret works, and status says so.
    all_working(&env, &[seed::SUB_CONTOSO_PROD, seed::SUB_CONTOSO_DEV]).await;
    let st = status(&env.session, &[prod(), dev()], &Settings::default())
        .await
        .unwrap();
    assert!(st.iter().all(|x| x.verdict == Health::Connected), "{st:#?}");

    // The next rotation finishes the job and removes every other secret of ours.
    let (tx, _rx) = mpsc::unbounded_channel();
    let rep = rotate(
        &env.session,
        seed::CONTOSO_TENANT_ID,
        &Settings::default(),
        tx,
    )
    .await
    .expect("second rotation");
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(rep.removed_key_ids.len(), 2, "{rep:#?}");
    let end = env.sim.state();
    let left = our_secrets(&end);
    assert_eq!(left.len(), 1);
    assert_eq!(s(&left[0], "keyId"), rep.new_key_id.as_deref().unwrap());
    all_working(&env, &[seed::SUB_CONTOSO_PROD, seed::SUB_CONTOSO_DEV]).await;
    env.sim.shutdown().await;
}

#[tokio::test]
async fn rotation_killed_after_the_new_secret_is_made_leaves_a_working_connection() {
    killed_rotation(|p| {
        matches!(
            p,
            Progress::Step {
                step: Step::ClientSecret,
                event: StepEvent::Finished { .. },
                ..
            }
        )
    })
    .await;
}

#[tokio::test]
async fn rotation_killed_after_the_first_account_is_set_leaves_a_working_connection() {
    killed_rotation(|p| {
        matches!(
            p,
            Progress::Step {
                step: Step::ConnectSpot,
                event: StepEvent::Finished { .. },
                ..
            }
        )
    })
    .await;
}

/// Objects that are not ours: a same-named app without the tag, another custom role, and an
/// assignment of it to another principal.
async fn seed_foreign(env: &Env) {
    let tenant = seed::CONTOSO_TENANT_ID;
    let token = env
        .session
        .auth
        .token(Some(tenant), Audience::Graph)
        .await
        .unwrap();
    let url = format!("{}/v1.0/applications", env.session.endpoints.graph);
    let r = env
        .session
        .http
        .client()
        .post(&url)
        .bearer_auth(token.expose())
        .json(&json!({"displayName": onboard::default_app_name(tenant)}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let arm = Arm::new(
        env.session.http.clone(),
        &env.session.endpoints.arm,
        env.session.auth.clone(),
        tenant,
    );
    let scope = format!("/subscriptions/{}", seed::SUB_CONTOSO_PROD);
    let props = spot_connect::azure::arm::RoleDefinitionProperties {
        role_name: "Someone Else's Role".into(),
        description: Some("made by hand".into()),
        role_type: Some("CustomRole".into()),
        permissions: vec![spot_connect::azure::arm::Permission {
            actions: vec!["Microsoft.Compute/*/read".into()],
            ..Default::default()
        }],
        assignable_scopes: vec![scope.clone()],
    };
    let role = arm
        .put_role_definition(&scope, "0e1e0e1e-0000-4000-8000-000000000001", &props)
        .await
        .unwrap();
    arm.create_role_assignment(
        &scope,
        "0e1e0e1e-0000-4000-8000-000000000002",
        &role.id,
        seed::CI_OPERATOR_SP_ID,
    )
    .await
    .unwrap();
}

fn foreign_intact(state: &Value) {
    let name = onboard::default_app_name(seed::CONTOSO_TENANT_ID);
    assert_eq!(
        arr(state, "applications")
            .iter()
            .filter(|a| s(a, "displayName") == name && our_apps(state).iter().all(|o| o != *a))
            .count(),
        1,
        "the same-named app without our tag is untouched"
    );
    assert!(
        arr(state, "roleDefinitions")
            .iter()
            .any(|r| s(r, "roleName") == "Someone Else's Role")
    );
    assert!(
        arr(state, "roleAssignments")
            .iter()
            .any(|a| s(a, "name") == "0e1e0e1e-0000-4000-8000-000000000002")
    );
}

#[tokio::test]
async fn remove_after_apply_leaves_none_of_ours_and_touches_nothing_else() {
    let env = env(SimOpts::default()).await;
    let r = bulk(&env, &[prod(), dev()]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    seed_foreign(&env).await;
    let before = env.sim.state();
    let app_id = s(our_apps(&before)[0], "appId").to_string();
    let sp_id = s(
        arr(&before, "servicePrincipals")
            .into_iter()
            .find(|p| s(p, "appId") == app_id)
            .unwrap(),
        "id",
    )
    .to_string();
    let settings = Settings::default();

    // Dev only: the role keeps Production, the app stays.
    let plans = plan_removal(&env.session, &[dev()], &settings, RemoveOptions::default())
        .await
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let res = remove(&env.session, &plans[0], tx).await;
    assert!(res.iter().all(|r| r.done), "{res:#?}");
    let mid = env.sim.state();
    assert_eq!(our_apps(&mid).len(), 1);
    let role = arr(&mid, "roleDefinitions")
        .into_iter()
        .find(|r| s(r, "roleName") == ROLE)
        .expect("the role stays for Production");
    assert_eq!(
        role["assignableScopes"],
        json!([format!("/subscriptions/{}", seed::SUB_CONTOSO_PROD)])
    );
    let ours_at = |st: &Value, sub: &str| {
        arr(st, "roleAssignments")
            .iter()
            .filter(|a| {
                s(a, "principalId") == sp_id && s(a, "scope") == format!("/subscriptions/{sub}")
            })
            .count()
    };
    assert_eq!(ours_at(&mid, seed::SUB_CONTOSO_DEV), 0);
    assert_eq!(ours_at(&mid, seed::SUB_CONTOSO_PROD), 1);
    // Without --delete-spot-account the account stays (listed as kept).
    assert!(plans[0].items.iter().any(|i| i.object == "Spot account"
        && i.action == spot_connect::onboard::remove::RemovalAction::Keep));
    assert!(
        accounts(&mid)
            .iter()
            .any(|a| s(a, "providerExternalId") == seed::SUB_CONTOSO_DEV)
    );
    foreign_intact(&mid);

    // Production, with its Spot account: nothing of ours is left.
    let prod_acct = s(account_of(&mid, seed::SUB_CONTOSO_PROD), "accountId").to_string();
    let plans = plan_removal(
        &env.session,
        &[prod()],
        &settings,
        RemoveOptions {
            delete_spot_account: true,
        },
    )
    .await
    .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let res = remove(&env.session, &plans[0], tx).await;
    assert!(res.iter().all(|r| r.done), "{res:#?}");
    let end = env.sim.state();
    assert!(our_apps(&end).is_empty(), "our app is gone");
    assert!(
        !arr(&end, "servicePrincipals")
            .iter()
            .any(|p| s(p, "appId") == app_id)
    );
    assert!(
        !arr(&end, "roleDefinitions")
            .iter()
            .any(|r| s(r, "roleName") == ROLE)
    );
    assert!(
        !arr(&end, "roleAssignments")
            .iter()
            .any(|a| s(a, "principalId") == sp_id)
    );
    assert!(
        !accounts(&end)
            .iter()
            .any(|a| s(a, "accountId") == prod_acct)
    );
    foreign_intact(&end);
    assert!(
        !spot_connect::onboard::state::state_path(
            &env.session.state_dir,
            seed::CONTOSO_TENANT_ID,
            seed::SUB_CONTOSO_PROD
        )
        .exists()
    );
    // Nothing of ours left: a second plan changes nothing.
    let again = plan_removal(
        &env.session,
        &[prod(), dev()],
        &settings,
        RemoveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again[0].changes().count(), 0, "{again:#?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn fifty_subscriptions_with_faults_all_connect_with_one_app_one_role_one_secret() {
    let env = env(SimOpts {
        subscriptions: 50,
        fault_rate: 0.2,
        seed: 7,
        ..Default::default()
    })
    .await;
    let targets: Vec<Target> = (1..=50)
        .map(|n| {
            target(
                &seed::extra_subscription_id(n),
                &format!("Contoso Bulk {n:03}"),
            )
        })
        .collect();
    let r = bulk(&env, &targets).await;
    let failed: Vec<_> = r
        .reports
        .iter()
        .filter(|r| r.verdict != Verdict::Connected)
        .collect();
    assert!(failed.is_empty(), "all connected: {failed:#?}");
    assert_eq!(r.reports.len(), 50);
    let st = env.sim.state();
    let apps = our_apps(&st);
    assert_eq!(apps.len(), 1, "exactly one app");
    let app_id = s(apps[0], "appId");
    let sps: Vec<_> = arr(&st, "servicePrincipals")
        .into_iter()
        .filter(|p| s(p, "appId") == app_id)
        .collect();
    assert_eq!(sps.len(), 1, "one service principal");
    let roles: Vec<_> = arr(&st, "roleDefinitions")
        .into_iter()
        .filter(|r| s(r, "roleName") == ROLE)
        .collect();
    assert_eq!(roles.len(), 1, "exactly one role");
    let scopes = roles[0]["assignableScopes"].as_array().unwrap();
    for t in &targets {
        let scope = format!("/subscriptions/{}", t.subscription_id);
        assert!(
            scopes.iter().any(|x| x == &json!(scope)),
            "{scope} assignable"
        );
        let n = arr(&st, "roleAssignments")
            .iter()
            .filter(|a| s(a, "principalId") == s(sps[0], "id") && s(a, "scope") == scope)
            .count();
        assert_eq!(n, 1, "one assignment at {scope}");
        let accts = accounts(&st)
            .into_iter()
            .filter(|a| s(a, "providerExternalId") == t.subscription_id)
            .count();
        assert_eq!(accts, 1, "one Spot account for {}", t.subscription_id);
    }
    assert_eq!(our_secrets(&st).len(), 1, "one secret for the tenant");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn status_says_connected_expiring_and_broken_with_why() {
    let env = env(SimOpts::default()).await;
    let settings = Settings::default();
    let r = bulk(&env, &[prod(), dev()]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    let st = status(&env.session, &[prod(), dev()], &settings)
        .await
        .unwrap();
    assert!(st.iter().all(|x| x.verdict == Health::Connected), "{st:#?}");
    let days = st[0].secret.as_ref().unwrap().days_left.unwrap();
    assert!(days > 300, "{days}");
    assert!(st[0].role.as_ref().unwrap().drift.missing.is_empty());

    // Production: a secret that ends in 10 days, handed to Spot.
    let graph = spot_connect::azure::graph::Graph::new(
        env.session.http.clone(),
        &env.session.endpoints.graph,
        env.session.auth.clone(),
        seed::CONTOSO_TENANT_ID,
    );
    let state = env.sim.state();
    let app = our_apps(&state)[0];
    let end = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(10);
    let np = graph
        .add_password(s(app, "id"), "spot-connect short", end)
        .await
        .unwrap();
    let acct = s(account_of(&state, seed::SUB_CONTOSO_PROD), "accountId").to_string();
    env.session
        .spot
        .set_azure_credentials(
            &acct,
            &AzureCredentials {
                client_id: s(app, "appId").into(),
                client_secret: np.secret,
                tenant_id: seed::CONTOSO_TENANT_ID.into(),
                subscription_id: seed::SUB_CONTOSO_PROD.into(),
                expiration_date: end,
            },
        )
        .await
        .unwrap();
    // Dev: the role assignment deleted.
    let dev_asg = status(&env.session, &[dev()], &settings).await.unwrap()[0]
        .role_assignment_id
        .clone()
        .unwrap();
    let arm = Arm::new(
        env.session.http.clone(),
        &env.session.endpoints.arm,
        env.session.auth.clone(),
        seed::CONTOSO_TENANT_ID,
    );
    arm.delete_role_assignment(&dev_asg).await.unwrap();

    let st = status(&env.session, &[prod(), dev()], &settings)
        .await
        .unwrap();
    assert_eq!(st[0].verdict, Health::Expiring, "{:#?}", st[0]);
    let d = st[0].secret.as_ref().unwrap().days_left.unwrap();
    assert!((9..=10).contains(&d), "{d}");
    assert_eq!(st[1].verdict, Health::Broken, "{:#?}", st[1]);
    assert!(
        st[1].problems.iter().any(|p| p.contains("not assigned")),
        "{:?}",
        st[1].problems
    );
    assert!(st[1].role_assignment_id.is_none());
    // The seeded Fabrikam connection uses an app that is not ours: connected (not ours), with
    // the app and the end of its secret (issue 16 §9).
    let fab = Target {
        tenant_id: seed::FABRIKAM_TENANT_ID.into(),
        subscription_id: seed::SUB_FABRIKAM_PROD.into(),
        subscription_name: "Fabrikam Production".into(),
    };
    let st = status(&env.session, &[fab], &settings).await.unwrap();
    assert_eq!(st[0].verdict, Health::NotOurs, "{:#?}", st[0]);
    let note = st[0].note.as_deref().unwrap_or_default();
    assert!(
        note.contains(seed::FABRIKAM_SPOT_APP_NAME) && note.contains("secret expires"),
        "{note}"
    );
    env.sim.shutdown().await;
}

/// The wizard runs these on tokio tasks: their futures must be Send.
#[allow(dead_code)]
fn library_futures_are_send(session: Session, targets: Vec<Target>) {
    fn is_send<T: Send>(_: T) {}
    let settings = Settings::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    is_send(async move {
        let _ = status(&session, &targets, &settings).await;
        let _ = rotate(&session, "t", &settings, tx.clone()).await;
        let p = plan_removal(&session, &targets, &settings, RemoveOptions::default()).await;
        if let Ok(p) = p {
            let _ = remove(&session, &p[0], tx.clone()).await;
        }
        if let Ok(p) = spot_connect::onboard::plan(&session, &targets, &settings).await {
            let _ = spot_connect::onboard::apply(&session, &p, tx).await;
        }
    });
}

#[tokio::test]
async fn one_failing_subscription_does_not_stop_the_others() {
    let env = env(SimOpts::default()).await;
    let legacy = target(seed::SUB_CONTOSO_LEGACY, "Contoso Legacy");
    let r = bulk(&env, &[prod(), legacy, dev()]).await;
    assert!(r.stopped.is_none(), "{r:#?}");
    let v: Vec<Verdict> = r.reports.iter().map(|x| x.verdict).collect();
    assert_eq!(
        v,
        vec![Verdict::Connected, Verdict::Failed, Verdict::Connected]
    );
    let e = r.reports[1].error.as_ref().unwrap();
    assert!(
        e.summary.starts_with("Role assignment")
            && e.api.as_ref().unwrap().code == "ReadOnlyDisabledSubscription",
        "{e:#?}"
    );
    assert_eq!(r.failed(), 1);
    // The two others are connected for real.
    all_working(&env, &[seed::SUB_CONTOSO_PROD, seed::SUB_CONTOSO_DEV]).await;
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_sign_in_failure_stops_every_subscription() {
    let env = env(SimOpts::default()).await;
    // A tenant the operator is not a member of: the identity platform refuses the token.
    let stranger = Target {
        tenant_id: "0badbad0-0000-4000-8000-000000000bad".into(),
        subscription_id: "5bad0001-0000-4000-8000-000000000bad".into(),
        subscription_name: "Elsewhere".into(),
    };
    // The plan looks every tenant up before anything is written: it fails as a whole.
    let r = spot_connect::onboard::plan(
        &env.session,
        &[stranger, prod(), dev()],
        &Settings::default(),
    )
    .await;
    let e = r.expect_err("a tenant that refuses the sign-in fails the plan");
    assert!(spot_connect::onboard::lookup::is_fatal(&e), "{e:#?}");
    // Nothing was written anywhere.
    assert!(our_apps(&env.sim.state()).is_empty());
    env.sim.shutdown().await;
}

/// One secret model: a run makes at most one new secret per tenant; each subscription records
/// the keyId it holds; removing a subscription deletes a secret only when no other still holds
/// it; rotation moves every subscription of the tenant to one new secret.
#[tokio::test]
async fn a_secret_is_removed_only_when_no_subscription_holds_it_and_rotation_moves_them_all() {
    let env = env(SimOpts::default()).await;
    let settings = Settings::default();
    let recorded = |sub: &str| {
        spot_connect::onboard::state::State::load(
            &env.session.state_dir,
            seed::CONTOSO_TENANT_ID,
            sub,
        )
        .unwrap()
        .secret
        .map(|r| r.key_id)
    };
    // Production alone, then Dev alone: two runs, two secrets, each held by its subscription.
    assert_eq!(bulk(&env, &[prod()]).await.failed(), 0);
    assert_eq!(bulk(&env, &[dev()]).await.failed(), 0);
    let (k_prod, k_dev) = (
        recorded(seed::SUB_CONTOSO_PROD).unwrap(),
        recorded(seed::SUB_CONTOSO_DEV).unwrap(),
    );
    assert_ne!(k_prod, k_dev);
    assert_eq!(our_secrets(&env.sim.state()).len(), 2);
    // Rotation: both subscriptions on one new secret, the two old ones gone.
    let (tx, _rx) = mpsc::unbounded_channel();
    let rot = rotate(&env.session, seed::CONTOSO_TENANT_ID, &settings, tx)
        .await
        .unwrap();
    assert!(rot.complete, "{rot:#?}");
    let k_new = rot.new_key_id.clone().unwrap();
    assert_eq!(
        recorded(seed::SUB_CONTOSO_PROD).as_deref(),
        Some(k_new.as_str())
    );
    assert_eq!(
        recorded(seed::SUB_CONTOSO_DEV).as_deref(),
        Some(k_new.as_str())
    );
    let keys: Vec<String> = our_secrets(&env.sim.state())
        .iter()
        .map(|p| s(p, "keyId").to_string())
        .collect();
    assert_eq!(keys, vec![k_new.clone()]);
    // Status names the secret each subscription holds.
    let st = status(&env.session, &[prod(), dev()], &settings)
        .await
        .unwrap();
    assert!(
        st.iter()
            .all(|x| x.secret.as_ref().is_some_and(|k| k.key_id == k_new)),
        "{st:#?}"
    );
    // Removing Dev keeps the secret Production still holds.
    let plans = plan_removal(&env.session, &[dev()], &settings, RemoveOptions::default())
        .await
        .unwrap();
    let secret_items: Vec<_> = plans[0]
        .items
        .iter()
        .filter(|i| i.object == "client secret")
        .collect();
    assert_eq!(secret_items.len(), 1, "{:#?}", plans[0].items);
    assert_eq!(
        secret_items[0].action,
        spot_connect::onboard::remove::RemovalAction::Keep
    );
    assert!(
        secret_items[0]
            .reason
            .contains("1 other subscription(s) still hold it")
    );
    let (tx, _rx) = mpsc::unbounded_channel();
    let res = remove(&env.session, &plans[0], tx).await;
    assert!(res.iter().all(|r| r.done), "{res:#?}");
    assert_eq!(our_secrets(&env.sim.state()).len(), 1);
    all_working(&env, &[seed::SUB_CONTOSO_PROD]).await;
    env.sim.shutdown().await;
}

/// Issue 16 §4: `remove` takes out only its own scopes from the shared role, as the role is when
/// it writes: a scope another writer added after the removal was planned stays (before: the
/// plan's list minus ours was written back, dropping the newcomer's scope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_takes_out_only_its_scope_from_the_role_as_it_is_now() {
    let env = env(SimOpts {
        subscriptions: 1,
        ..Default::default()
    })
    .await;
    let x = seed::extra_subscription_id(1);
    let r = bulk(&env, &[prod(), dev()]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    let plans = plan_removal(
        &env.session,
        &[dev()],
        &Settings::default(),
        RemoveOptions::default(),
    )
    .await
    .unwrap();
    // Another writer makes the role assignable at a third subscription meanwhile.
    let r = bulk(&env, &[target(&x, "Extra 1")]).await;
    assert_eq!(r.failed(), 0, "{r:#?}");
    let (tx, _rx) = mpsc::unbounded_channel();
    let res = remove(&env.session, &plans[0], tx).await;
    assert!(res.iter().all(|r| r.done), "{res:#?}");
    let st = env.sim.state();
    let role = arr(&st, "roleDefinitions")
        .into_iter()
        .find(|r| s(r, "roleName") == ROLE)
        .expect("the role stays");
    let mut scopes: Vec<String> = role["assignableScopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    scopes.sort();
    let mut want = vec![
        format!("/subscriptions/{}", seed::SUB_CONTOSO_PROD),
        format!("/subscriptions/{x}"),
    ];
    want.sort();
    assert_eq!(scopes, want);
    env.sim.shutdown().await;
}
