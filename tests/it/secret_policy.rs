//! The tenant's secret-lifetime policy (issue 19): the preflight reads the tenant default and
//! the app's own app management policy; a `passwordLifetime` shorter than `--secret-months`
//! caps the secret (and its `expirationDate` at Spot), `passwordAddition` blocks the plan with
//! nothing written, an app's own policy overrides the tenant default, and a policy that cannot
//! be read makes the secret step try 180, 90 and 30 days before Spot is given a secret. The same
//! for `rotate-secret`.

use crate::common::cli::{As, Out, Sim, sends};
use serde_json::{Value, json};
use spot_connect::sim::{SimOpts, seed::*};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const LIMIT: Duration = Duration::from_secs(180);

fn opts(policy: Option<&str>) -> SimOpts {
    SimOpts {
        approve_after: 200,
        secret_lifetime_policy: policy
            .map(|p| vec![(CONTOSO_TENANT_ID.to_string(), p.to_string())])
            .unwrap_or_default(),
        ..SimOpts::default()
    }
}

async fn run(sim: &Sim, args: &[&str]) -> Out {
    sim.run(As::Operator, args, LIMIT).await
}

/// Calls that change something (not the identity platform's, not reads).
fn writes(sim: &Sim) -> Vec<String> {
    sim.sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] != "login" && r["method"] != "GET")
        .map(|r| format!("{} {} {}", r["service"], r["method"], r["path"]))
        .collect()
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

/// Our app in the simulator's state (tagged spot-connect).
fn our_app(sim: &Sim) -> Value {
    sim.sim.state()["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .cloned()
        .expect("our app")
}

/// The lifetime of the secret the Spot account of `sub` holds, checked against its end date.
fn held_secret(sim: &Sim, sub: &str) -> time::Duration {
    let st = sim.sim.state();
    let account = st["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["providerExternalId"] == sub)
        .cloned()
        .expect("a Spot account");
    let creds = &account["credentials"];
    let app = our_app(sim);
    let secret = app["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["secretText"] == creds["clientSecret"])
        .cloned()
        .expect("the secret Spot holds is on our app");
    let (start, end) = (
        time_of(&secret["startDateTime"]),
        time_of(&secret["endDateTime"]),
    );
    // Spot's expirationDate is the secret's end (to the second).
    assert_eq!(
        time_of(&creds["expirationDate"]).unix_timestamp(),
        end.unix_timestamp(),
        "{creds}"
    );
    end - start
}

#[tokio::test]
async fn a_lifetime_policy_caps_the_secret_in_the_plan_and_at_spot() {
    let sim = Sim::start(opts(Some("P90D"))).await;
    let plan = run(&sim, &["plan", "--subscription", SUB_CONTOSO_DEV]).await;
    println!(
        "--- plan, tenant policy passwordLifetime P90D:\n{}",
        plan.stderr
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr
            .contains("capped to 90 days by the tenant's policy"),
        "{}",
        plan.stderr
    );
    assert!(writes(&sim).is_empty(), "{:?}", writes(&sim));

    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lifetime = held_secret(&sim, SUB_CONTOSO_DEV);
    assert!(
        lifetime <= time::Duration::days(90) && lifetime > time::Duration::days(89),
        "{lifetime}"
    );
    // Asked within the cap at once: one addPassword.
    assert_eq!(sends(&sim.sim, "POST", "/addPassword"), 1);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_policy_that_blocks_passwords_blocks_the_plan_and_nothing_is_written() {
    let sim = Sim::start(opts(Some("block"))).await;
    let plan = run(&sim, &["plan", "--subscription", SUB_CONTOSO_DEV]).await;
    println!("--- plan, tenant policy passwordAddition:\n{}", plan.stderr);
    assert!(
        plan.stderr.contains(
            "Spot cannot be connected with a secret in this tenant until an administrator exempts the app"
        ) && plan.stderr.contains("PATCH /v1.0/policies/defaultAppManagementPolicy"),
        "{}",
        plan.stderr
    );
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(writes(&sim).is_empty(), "{:?}", writes(&sim));
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn an_apps_own_policy_overrides_the_tenant_default() {
    let sim = Sim::start(opts(None)).await;
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let app = our_app(&sim);
    let app_obj = app["id"].as_str().unwrap().to_string();

    // The tenant default now blocks passwords of every app created after 2019: a second
    // subscription needs the tenant's new secret, and the plan is blocked for our app, saying
    // how to exempt it (its own policy, by its object id).
    let block = json!({"isEnabled": true, "applicationRestrictions": {"passwordCredentials": [
        {"restrictionType": "passwordAddition", "state": "enabled", "maxLifetime": null,
         "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z"}]}});
    sim.sim
        .set_app_management_policy(Some(CONTOSO_TENANT_ID), None, block);
    let plan = run(&sim, &["plan", "--subscription", SUB_CONTOSO_PROD]).await;
    assert!(
        plan.stderr.contains(&format!(
            "/v1.0/applications/{app_obj}/appManagementPolicies/$ref"
        )) && plan.stderr.contains("exempts the app"),
        "{}",
        plan.stderr
    );

    // The app's own policy: passwords allowed, for at most 30 days. It overrides the default.
    let own = json!({"displayName": "spot-connect exemption", "restrictions": {"passwordCredentials": [
        {"restrictionType": "passwordLifetime", "state": "enabled", "maxLifetime": "P30D"}]}});
    sim.sim.set_app_management_policy(None, Some(&app_obj), own);
    let plan = run(&sim, &["plan", "--subscription", SUB_CONTOSO_PROD]).await;
    println!(
        "--- plan, tenant blocks, the app's own policy caps at 30 days:\n{}",
        plan.stderr
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr
            .contains("capped to 30 days by the app's own policy 'spot-connect exemption'"),
        "{}",
        plan.stderr
    );
    let out = run(
        &sim,
        &["apply", "--subscription", SUB_CONTOSO_PROD, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lifetime = held_secret(&sim, SUB_CONTOSO_PROD);
    assert!(
        lifetime <= time::Duration::days(30) && lifetime > time::Duration::days(29),
        "{lifetime}"
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_policy_that_cannot_be_read_steps_the_secret_down_before_spot_is_given_one() {
    let sim = Sim::start(opts(Some("P90D"))).await;
    sim.sim.deny_app_policy_read(CONTOSO_TENANT_ID);
    let plan = run(&sim, &["plan", "--subscription", SUB_CONTOSO_DEV]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr.contains("could not be read")
            && plan.stderr.contains("180, 90 then 30 days are tried"),
        "{}",
        plan.stderr
    );
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    println!(
        "--- apply, policy unreadable (P90D in force):\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("refused a client secret of 12 months: trying 180 days"),
        "{}",
        out.stderr
    );
    let lifetime = held_secret(&sim, SUB_CONTOSO_DEV);
    assert!(
        lifetime <= time::Duration::days(90) && lifetime > time::Duration::days(89),
        "{lifetime}"
    );
    // 12 months, 180 days refused, 90 days taken: three addPassword calls, all before the
    // Spot credentials that depend on the secret, and one secret on the app.
    let log = sim.sim.requests();
    let seq_of = |pred: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    let adds = seq_of(&|r| r["path"].as_str().unwrap().ends_with("/addPassword"));
    let creds = seq_of(&|r| {
        r["service"] == "spot"
            && r["method"] != "GET"
            && r["path"].as_str().unwrap().contains("credentials")
    });
    assert_eq!(adds.len(), 3, "{log}");
    assert!(!creds.is_empty() && adds.iter().all(|a| creds.iter().all(|c| a < c)));
    assert_eq!(
        our_app(&sim)["passwordCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_policy_that_refuses_every_lifetime_stops_the_run_naming_it() {
    let sim = Sim::start(opts(Some("P7D"))).await;
    sim.sim.deny_app_policy_read(CONTOSO_TENANT_ID);
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    println!(
        "--- apply, policy unreadable (P7D in force):\n{}",
        out.stderr
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("policy 00000000-0000-0000-0000-000000000000")
            && out.stderr.contains("12 months, 180 days, 90 days, 30 days"),
        "{}",
        out.stderr
    );
    assert_eq!(sends(&sim.sim, "POST", "/addPassword"), 4);
    // Spot was never given a secret.
    let st = sim.sim.state();
    assert!(
        st["spot"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["providerExternalId"] == SUB_CONTOSO_DEV)
            .all(|a| a["credentials"].is_null()),
        "{}",
        st["spot"]
    );
    assert!(
        our_app(&sim)["passwordCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    sim.sim.shutdown().await;
}

/// The tenant default with one password restriction, for every app created after 2019.
fn tenant_policy(restriction_type: &str, max_lifetime: Option<&str>) -> Value {
    json!({"isEnabled": true, "applicationRestrictions": {"passwordCredentials": [
        {"restrictionType": restriction_type, "state": "enabled", "maxLifetime": max_lifetime,
         "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z"}]}})
}

/// `rotate-secret` reads the policy as apply's preflight does: a cap set after the app was
/// connected shortens the new secret (and Spot's expirationDate) with one addPassword; when the
/// policy cannot be read, a refused lifetime steps down (12 months, 180 days refused, 90 taken).
#[tokio::test]
async fn rotate_secret_obeys_the_tenants_lifetime_policy() {
    let sim = Sim::start(opts(None)).await;
    let rotate = ["rotate-secret", "--subscription", SUB_CONTOSO_DEV, "--yes"];
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(held_secret(&sim, SUB_CONTOSO_DEV) > time::Duration::days(300));
    sim.sim.set_app_management_policy(
        Some(CONTOSO_TENANT_ID),
        None,
        tenant_policy("passwordLifetime", Some("P90D")),
    );
    let adds = sends(&sim.sim, "POST", "/addPassword");
    let out = run(&sim, &rotate).await;
    println!(
        "--- rotate-secret, tenant policy passwordLifetime P90D:\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("capped to 90 days by the tenant's policy"),
        "{}",
        out.stderr
    );
    let lifetime = held_secret(&sim, SUB_CONTOSO_DEV);
    assert!(
        lifetime <= time::Duration::days(90) && lifetime > time::Duration::days(89),
        "{lifetime}"
    );
    assert_eq!(
        sends(&sim.sim, "POST", "/addPassword") - adds,
        1,
        "asked within the cap"
    );

    // The policy cannot be read now: 12 months is asked, refused, then 180 days, then 90.
    sim.sim.deny_app_policy_read(CONTOSO_TENANT_ID);
    let adds = sends(&sim.sim, "POST", "/addPassword");
    let out = run(&sim, &rotate).await;
    println!(
        "--- rotate-secret, policy unreadable (P90D in force):\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not be read")
            && out
                .stderr
                .contains("refused a client secret of 12 months: trying 180 days"),
        "{}",
        out.stderr
    );
    assert_eq!(sends(&sim.sim, "POST", "/addPassword") - adds, 3);
    let lifetime = held_secret(&sim, SUB_CONTOSO_DEV);
    assert!(
        lifetime <= time::Duration::days(90) && lifetime > time::Duration::days(89),
        "{lifetime}"
    );
    // The old secrets are gone: one secret of ours, the one Spot holds.
    assert_eq!(
        our_app(&sim)["passwordCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    sim.sim.shutdown().await;
}

/// A tenant that blocks new passwords (passwordAddition): `rotate-secret` changes nothing,
/// says why and how to exempt the app, and the old secret stays in use.
#[tokio::test]
async fn rotate_secret_in_a_tenant_that_blocks_passwords_writes_nothing() {
    let sim = Sim::start(opts(None)).await;
    let out = run(&sim, &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let secrets = our_app(&sim)["passwordCredentials"].clone();
    sim.sim.set_app_management_policy(
        Some(CONTOSO_TENANT_ID),
        None,
        tenant_policy("passwordAddition", None),
    );
    let before = writes(&sim);
    let out = run(
        &sim,
        &["rotate-secret", "--subscription", SUB_CONTOSO_DEV, "--yes"],
    )
    .await;
    println!(
        "--- rotate-secret, tenant policy passwordAddition:\n{}",
        out.stderr
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was changed")
            && out.stderr.contains("exempts the app")
            && out.stderr.contains("appManagementPolicies/$ref"),
        "{}",
        out.stderr
    );
    assert_eq!(writes(&sim), before, "nothing written");
    assert_eq!(our_app(&sim)["passwordCredentials"], secrets);
    sim.sim.shutdown().await;
}
