//! `--management-group` (issue 19) with the real binary against the simulator's two-level tree
//! (contoso-spot > contoso-spot-prod): one role of the group's own and ONE assignment at the
//! group, every enabled subscription below connected (nested included), exclusions, the
//! subscription-scope assignments of an earlier run kept then pruned, the DataActions split, and
//! the limits refused in the plan with nothing written; `status` and `remove` at the group.

use crate::common::cli::{As, Sim, sends};
use serde_json::Value;
use spot_connect::sim::SimOpts;
use spot_connect::sim::seed::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);
const MG_ROLE: &str = "Spot.io Custom Role (contoso-spot)";

/// A command of ci-operator (client secret) against `sim`, within LIMIT.
async fn ci(sim: &Sim, args: &[&str]) -> crate::common::cli::Out {
    sim.run(As::CiOperator, args, LIMIT).await
}

fn fast() -> SimOpts {
    SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    }
}

fn mg(id: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{id}")
}

fn role<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["roleDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["roleName"] == name)
}

/// Our role assignments (of the app spot-connect made in Contoso), by scope.
fn our_assignment_scopes(state: &Value) -> Vec<String> {
    let app = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["displayName"]
                .as_str()
                .is_some_and(|n| n.starts_with("spot-connect-"))
        })
        .expect("our app");
    let sp = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["appId"] == app["appId"])
        .expect("our service principal");
    let mut v: Vec<String> = state["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["principalId"] == sp["id"])
        .map(|a| a["scope"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn connected(state: &Value, sub: &str) -> bool {
    state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["providerExternalId"] == sub && a["credentials"]["subscriptionId"] == sub)
}

/// Every write the simulator logged (ARM, Graph, Spot).
fn writes(sim: &spot_connect::sim::SimHandle) -> usize {
    ["PUT", "POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| {
            sends(sim, m, "/")
                - sends(sim, m, "/oauth2/")
                - sends(sim, m, "/inspect/")
                - sends(sim, m, "/msi/")
        })
        .sum()
}

#[tokio::test]
async fn apply_at_a_management_group_connects_the_two_level_tree_with_one_assignment() {
    let sim = Sim::start(fast()).await;
    let out = ci(&sim, &["apply", "--management-group", MG_SPOT, "--yes"]).await;
    // The transcript the lead shows (cargo test … -- --nocapture).
    eprintln!(
        "$ spot-connect apply --management-group {MG_SPOT} --yes\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The tree and the plan say what happens at the group.
    assert!(
        out.stderr
            .contains("Contoso Spot Production (contoso-spot-prod)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("one role per management group"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("up to 30 minutes"), "{}", out.stderr);
    let state = sim.sim.state();
    let r = role(&state, MG_ROLE).expect("the group's role");
    assert_eq!(r["assignableScopes"], serde_json::json!([mg(MG_SPOT)]));
    assert!(
        role(&state, "Spot.io Custom Role").is_none(),
        "no per-subscription role"
    );
    // ONE assignment, at the group: nested Contoso Production connected through it.
    assert_eq!(our_assignment_scopes(&state), [mg(MG_SPOT)]);
    assert!(connected(&state, SUB_CONTOSO_DEV));
    assert!(connected(&state, SUB_CONTOSO_PROD), "nested subscription");
    assert!(
        !connected(&state, SUB_CONTOSO_LEGACY),
        "disabled: not connected"
    );
    // Nothing left to do: the plan writes nothing (exit 0 with --detailed-exitcode).
    let again = ci(
        &sim,
        &["plan", "--management-group", MG_SPOT, "--detailed-exitcode"],
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("is assigned to the service principal at management group contoso-spot"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn an_excluded_subscription_gets_no_spot_connection_and_the_plan_says_it_still_inherits() {
    let sim = Sim::start(fast()).await;
    let out = ci(
        &sim,
        &[
            "apply",
            "--management-group",
            MG_SPOT,
            "--exclude-subscription",
            SUB_CONTOSO_DEV,
            "--yes",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("excluded subscription")
            && out.stderr.contains("still inherits the role assignment"),
        "{}",
        out.stderr
    );
    let state = sim.sim.state();
    assert!(connected(&state, SUB_CONTOSO_PROD));
    assert!(!connected(&state, SUB_CONTOSO_DEV), "excluded");
    // An exclusion that is not below the group is refused before anything is written.
    let before = writes(&sim.sim);
    let bad = ci(
        &sim,
        &[
            "apply",
            "--management-group",
            MG_SPOT_PROD,
            "--exclude-subscription",
            SUB_CONTOSO_DEV,
            "--yes",
        ],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("is not below management group"),
        "{}",
        bad.stderr
    );
    assert_eq!(writes(&sim.sim), before);
}

#[tokio::test]
async fn subscription_assignments_are_kept_then_pruned_once_the_groups_is_in_effect() {
    let sim = Sim::start(SimOpts {
        mg_propagation_delay: 15.0,
        ..fast()
    })
    .await;
    // An earlier per-subscription run.
    let first = ci(
        &sim,
        &[
            "apply",
            "--subscription",
            SUB_CONTOSO_DEV,
            "--subscription",
            SUB_CONTOSO_PROD,
            "--yes",
        ],
    )
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let subs = [
        format!("/subscriptions/{SUB_CONTOSO_DEV}"),
        format!("/subscriptions/{SUB_CONTOSO_PROD}"),
    ];
    // At the group: its assignment is made, the subscriptions' are kept.
    let second = ci(&sim, &["apply", "--management-group", MG_SPOT, "--yes"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("subscription role assignment"),
        "{}",
        second.stderr
    );
    let mut all = vec![mg(MG_SPOT), subs[0].clone(), subs[1].clone()];
    all.sort();
    assert_eq!(our_assignment_scopes(&sim.sim.state()), all);
    let made = std::time::Instant::now();
    // Pruning before the group's is in effect (15 s): kept, and said so.
    let early = ci(
        &sim,
        &[
            "apply",
            "--management-group",
            MG_SPOT,
            "--prune-subscription-assignments",
            "--yes",
        ],
    )
    .await;
    assert_eq!(early.code, 0, "{}", early.stderr);
    if made.elapsed() < Duration::from_secs(14) {
        assert!(
            early.stderr.contains("not yet seen in effect"),
            "{}",
            early.stderr
        );
        assert_eq!(our_assignment_scopes(&sim.sim.state()), all);
    }
    tokio::time::sleep(Duration::from_secs(16).saturating_sub(made.elapsed())).await;
    let prune = ci(
        &sim,
        &[
            "apply",
            "--management-group",
            MG_SPOT,
            "--prune-subscription-assignments",
            "--yes",
        ],
    )
    .await;
    eprintln!(
        "$ spot-connect apply --management-group {MG_SPOT} --prune-subscription-assignments --yes\n{}",
        prune.stderr
    );
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    assert!(
        prune
            .stderr
            .contains("removed the subscription-scope assignment"),
        "{}",
        prune.stderr
    );
    let state = sim.sim.state();
    assert_eq!(our_assignment_scopes(&state), [mg(MG_SPOT)]);
    assert!(connected(&state, SUB_CONTOSO_DEV) && connected(&state, SUB_CONTOSO_PROD));
}

/// Spot's core role with a DataAction added (the shape of the Ocean AKS role's).
fn policy_with_data_actions(dir: &std::path::Path) -> std::path::PathBuf {
    let mut v: Value =
        serde_json::from_str(include_str!("../../assets/spot-core-role-2024-05.json")).unwrap();
    v["properties"]["permissions"][0]["dataActions"] = serde_json::json!([
        "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
    ]);
    let p = dir.join("ocean.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

#[tokio::test]
async fn a_policy_with_data_actions_is_split_actions_at_the_group_data_actions_per_subscription() {
    let sim = Sim::start(fast()).await;
    let policy = policy_with_data_actions(sim.dir.path());
    let policy = policy.to_str().unwrap();
    let plan = ci(
        &sim,
        &["plan", "--management-group", MG_SPOT, "--policy", policy],
    )
    .await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr
            .contains("cannot be assigned at a management group"),
        "{}",
        plan.stderr
    );
    let out = ci(
        &sim,
        &[
            "apply",
            "--management-group",
            MG_SPOT,
            "--policy",
            policy,
            "--yes",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = sim.sim.state();
    let at_group = role(&state, MG_ROLE).unwrap();
    assert_eq!(
        at_group["permissions"][0]["dataActions"],
        serde_json::json!([])
    );
    let data = role(&state, "Spot.io Custom Role (data actions)").expect("the split role");
    assert_eq!(data["permissions"][0]["actions"], serde_json::json!([]));
    assert_eq!(
        data["permissions"][0]["dataActions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut want = vec![
        mg(MG_SPOT),
        format!("/subscriptions/{SUB_CONTOSO_DEV}"),
        format!("/subscriptions/{SUB_CONTOSO_PROD}"),
    ];
    want.sort();
    assert_eq!(our_assignment_scopes(&state), want);
    assert!(connected(&state, SUB_CONTOSO_DEV) && connected(&state, SUB_CONTOSO_PROD));
}

#[tokio::test]
async fn a_full_management_group_is_refused_in_the_plan_and_nothing_is_written() {
    let sim = Sim::start(fast()).await;
    // With the two seeded Owner assignments there: 500.
    sim.sim.fill_group_assignments(MG_SPOT, 498);
    let before = writes(&sim.sim);
    let state0 = sim.sim.state();
    let out = ci(&sim, &["apply", "--management-group", MG_SPOT, "--yes"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("already holds 500 role assignments")
            && out.stderr.contains("500 per management group"),
        "{}",
        out.stderr
    );
    assert_eq!(writes(&sim.sim), before, "nothing written");
    let state = sim.sim.state();
    for k in ["applications", "roleDefinitions", "roleAssignments"] {
        assert_eq!(state[k], state0[k], "{k} unchanged");
    }
    assert_eq!(state["spot"]["accounts"], state0["spot"]["accounts"]);
}

/// Our service principal's id (of the app spot-connect made in Contoso).
fn our_sp(state: &Value) -> String {
    let app = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["displayName"]
                .as_str()
                .is_some_and(|n| n.starts_with("spot-connect-"))
        })
        .expect("our app");
    state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["appId"] == app["appId"])
        .and_then(|s| s["id"].as_str())
        .expect("our service principal")
        .to_string()
}

/// The names of `principal`'s role assignments at the group `id`.
fn at_group(state: &Value, id: &str, principal: &str) -> Vec<String> {
    state["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == mg(id) && a["principalId"] == principal)
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

/// `status --management-group`: every subscription below the group (the nested one and the
/// disabled one included) and the group's role and assignment; an assignment deleted out of
/// band at the group makes every enabled subscription below it broken (exit 3).
#[tokio::test]
async fn status_at_a_management_group_lists_every_subscription_below_and_the_groups_assignment() {
    let sim = Sim::start(fast()).await;
    let apply = ci(&sim, &["apply", "--management-group", MG_SPOT, "--yes"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let before = writes(&sim.sim);
    let out = ci(&sim, &["status", "--management-group", MG_SPOT]).await;
    eprintln!(
        "$ spot-connect status --management-group {MG_SPOT}\n{}{}",
        out.stdout, out.stderr
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for s in [
        "Management group Contoso Spot (contoso-spot)",
        "Contoso Spot Production (contoso-spot-prod)",
        &format!("role {MG_ROLE} ("),
        "assignable at the group",
        &format!(
            "assignment at the group (every subscription below inherits it): {}/providers/Microsoft.Authorization/roleAssignments/",
            mg(MG_SPOT)
        ),
    ] {
        assert!(out.stdout.contains(s), "{s:?} not in\n{}", out.stdout);
    }
    let json_out = ci(&sim, &["status", "--management-group", MG_SPOT, "--json"]).await;
    assert_eq!(json_out.code, 0, "{}", json_out.stderr);
    let v: Value = serde_json::from_str(&json_out.stdout).unwrap();
    let rows = v["subscriptions"].as_array().expect("the rows");
    // The group itself: its role and our one assignment there, beside the rows.
    let group = &v["management_group"];
    assert_eq!(group["group_id"], MG_SPOT, "{v:#}");
    assert_eq!(group["role_name"], MG_ROLE, "{v:#}");
    assert!(
        group["role_assignment_id"]
            .as_str()
            .is_some_and(|a| a.starts_with(&mg(MG_SPOT))),
        "{v:#}"
    );
    assert!(
        group["tree"].as_array().is_some_and(|t| t.len() >= 3),
        "{v:#}"
    );
    let verdict = |sub: &str| {
        rows.iter()
            .find(|r| r["subscription_id"] == sub)
            .map(|r| r["verdict"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{sub} not in {v}"))
    };
    assert_eq!(verdict(SUB_CONTOSO_DEV), "connected");
    assert_eq!(verdict(SUB_CONTOSO_PROD), "connected", "nested");
    assert_eq!(verdict(SUB_CONTOSO_LEGACY), "not_onboarded", "disabled");
    let row = rows
        .iter()
        .find(|r| r["subscription_id"] == SUB_CONTOSO_PROD)
        .unwrap();
    assert_eq!(row["role"]["name"], MG_ROLE);
    assert!(
        row["role_assignment_id"]
            .as_str()
            .is_some_and(|a| a.starts_with(&mg(MG_SPOT))),
        "the group's assignment: {row}"
    );
    assert_eq!(writes(&sim.sim), before, "status is read-only");

    // Our assignment at the group is deleted out of band: broken, exit 3, and why.
    let state = sim.sim.state();
    let ours = at_group(&state, MG_SPOT, &our_sp(&state));
    assert_eq!(ours.len(), 1, "{ours:?}");
    sim.sim.delete_role_assignment(&ours[0]);
    let out = ci(&sim, &["status", "--management-group", MG_SPOT]).await;
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no assignment of ours at the group")
            && out.stdout.contains(
                "not assigned to the app's service principal at management group contoso-spot"
            ),
        "{}",
        out.stdout
    );
}

/// `remove --management-group`: the plan first (nothing without --yes off a terminal), then
/// what is ours at the group (its assignment, its role), the app, and with
/// --delete-spot-account the Spot accounts of the subscriptions below; another principal's
/// assignments at the group stay.
#[tokio::test]
async fn remove_at_a_management_group_removes_ours_there_and_nothing_else() {
    let sim = Sim::start(fast()).await;
    let apply = ci(&sim, &["apply", "--management-group", MG_SPOT, "--yes"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let sp = our_sp(&sim.sim.state());
    assert_eq!(at_group(&sim.sim.state(), MG_SPOT, &sp).len(), 1);
    // Another team's assignments at the group: not ours.
    sim.sim.fill_group_assignments(MG_SPOT, 3);
    let others = |state: &Value| -> usize {
        state["roleAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["scope"] == mg(MG_SPOT) && a["principalType"] == "User")
            .count()
    };
    let others_before = others(&sim.sim.state());
    assert!(others_before >= 3);
    // Not a terminal and no --yes: usage, nothing removed.
    let before = writes(&sim.sim);
    let refused = ci(&sim, &["remove", "--management-group", MG_SPOT]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(writes(&sim.sim), before);
    let out = ci(
        &sim,
        &[
            "remove",
            "--management-group",
            MG_SPOT,
            "--delete-spot-account",
            "--yes",
        ],
    )
    .await;
    eprintln!(
        "$ spot-connect remove --management-group {MG_SPOT} --delete-spot-account --yes\n{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("delete role assignment")
            && out.stderr.contains("at management group contoso-spot")
            && out
                .stderr
                .contains(&format!("delete custom role {MG_ROLE}")),
        "{}",
        out.stderr
    );
    let state = sim.sim.state();
    assert!(role(&state, MG_ROLE).is_none(), "the group's role is gone");
    assert!(
        !state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["displayName"]
                .as_str()
                .is_some_and(|n| n.starts_with("spot-connect-"))),
        "the app is gone (nothing else uses it)"
    );
    assert!(
        at_group(&state, MG_SPOT, &sp).is_empty(),
        "our assignment at the group is gone"
    );
    assert_eq!(others(&state), others_before, "not ours: kept");
    for sub in [SUB_CONTOSO_DEV, SUB_CONTOSO_PROD] {
        assert!(
            !state["spot"]["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["providerExternalId"] == sub),
            "{sub}: its Spot account (ours) deleted"
        );
    }
    // Nothing of ours left: a second remove changes nothing.
    let before = writes(&sim.sim);
    let again = ci(&sim, &["remove", "--management-group", MG_SPOT, "--yes"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("nothing of spot-connect's to remove"),
        "{}",
        again.stderr
    );
    assert_eq!(writes(&sim.sim), before);
}

/// A group whose subscriptions have all moved out of it still has its own objects of ours
/// (the group's role and its assignment there): `remove --management-group` finds them in the
/// group's tenant and removes them, though no enabled subscription is below it.
#[tokio::test]
async fn remove_at_a_group_with_no_subscription_left_below_it_removes_the_groups_own_objects() {
    let sim = Sim::start(fast()).await;
    let apply = ci(
        &sim,
        &["apply", "--management-group", MG_SPOT_PROD, "--yes"],
    )
    .await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let sp = our_sp(&sim.sim.state());
    assert_eq!(at_group(&sim.sim.state(), MG_SPOT_PROD, &sp).len(), 1);
    let prod_role = format!("Spot.io Custom Role ({MG_SPOT_PROD})");
    assert!(role(&sim.sim.state(), &prod_role).is_some());
    // Its one subscription moves up to the parent group: none is left below the group.
    sim.sim.place_subscription(MG_SPOT, SUB_CONTOSO_PROD, "");
    let out = ci(
        &sim,
        &["remove", "--management-group", MG_SPOT_PROD, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("at management group {MG_SPOT_PROD}"))
            && out
                .stderr
                .contains(&format!("delete custom role {prod_role}")),
        "{}",
        out.stderr
    );
    let state = sim.sim.state();
    assert!(
        at_group(&state, MG_SPOT_PROD, &sp).is_empty(),
        "{}",
        out.stderr
    );
    assert!(role(&state, &prod_role).is_none(), "{}", out.stderr);
}
