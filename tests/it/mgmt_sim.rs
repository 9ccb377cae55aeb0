//! The simulator's management groups (issue 19): the tree, `descendants` paged, roles and
//! assignments at a group's scope, inheritance in ARM's checks and in Spot's validation, the
//! documented limits, slower propagation, a subscription placed in a group while it runs.

use crate::sim_contract::{
    R, T, app_with_sp, assert_arm_error, creds, fast, new_guid, spot_role, start,
};
use serde_json::{Value, json};
use spot_connect::error::spot_codes;
use spot_connect::sim::SimOpts;
use spot_connect::sim::seed::*;
use std::time::Duration;

const MG_V: &str = "api-version=2020-05-01";
const ARM_V: &str = "api-version=2022-04-01";

fn mg(id: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{id}")
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `descendants` (following `nextLink`), and how many pages.
async fn descendants(t: &T, token: &str, group: &str, top: usize) -> (Vec<Value>, usize) {
    let mut url = format!("/arm{}/descendants?{MG_V}&$top={top}", mg(group));
    let (mut out, mut pages) = (vec![], 0);
    loop {
        let r = t.get(&url, token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        out.extend(r.body["value"].as_array().unwrap().iter().cloned());
        match r.body["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return (out, pages),
        }
    }
}

/// A role with Spot's actions (and `data_actions`) assignable at `scopes`, written at `at`.
async fn put_role(t: &T, arm: &str, at: &str, name: &str, scopes: &[String], data: bool) -> R {
    let mut body = spot_role(SUB_CONTOSO_DEV, name);
    body["properties"]["assignableScopes"] = json!(scopes);
    if data {
        body["properties"]["permissions"][0]["dataActions"] =
            json!(["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"]);
    }
    t.put(
        &format!(
            "/arm{at}/providers/Microsoft.Authorization/roleDefinitions/{}?{ARM_V}",
            new_guid()
        ),
        arm,
        body,
    )
    .await
}

async fn assign(t: &T, arm: &str, scope: &str, role_id: &Value, principal: &str) -> R {
    t.put(
        &format!(
            "/arm{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{ARM_V}",
            new_guid()
        ),
        arm,
        json!({"properties": {"roleDefinitionId": role_id, "principalId": principal, "principalType": "ServicePrincipal"}}),
    )
    .await
}

#[tokio::test]
async fn the_tree_its_descendants_paged_and_a_subscription_placed_while_running() {
    let t = start(SimOpts {
        subscriptions: 5,
        ..fast()
    })
    .await;
    let arm = t.operator("arm").await;
    // The groups the caller may read: Owner at contoso-spot, not at the root group.
    let list = t
        .get(
            &format!("/arm/providers/Microsoft.Management/managementGroups?{MG_V}"),
            &arm,
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(ids(&list.body["value"]), [MG_SPOT, MG_SPOT_PROD]);
    let root = t
        .get(&format!("/arm{}?{MG_V}", mg(CONTOSO_TENANT_ID)), &arm)
        .await;
    assert_arm_error(&root, 403, "AuthorizationFailed");
    // The tree, two levels, recursed.
    let tree = t
        .get(
            &format!("/arm{}?{MG_V}&$expand=children&$recurse=true", mg(MG_SPOT)),
            &arm,
        )
        .await;
    assert_eq!(tree.status, 200, "{}", tree.body);
    assert_eq!(tree.body["id"], mg(MG_SPOT));
    assert_eq!(
        tree.body["properties"]["details"]["parent"]["id"],
        mg(CONTOSO_TENANT_ID)
    );
    let children = &tree.body["properties"]["children"];
    let prod = children
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == MG_SPOT_PROD)
        .expect("nested group");
    assert_eq!(prod["type"], "Microsoft.Management/managementGroups");
    assert_eq!(prod["children"][0]["name"], SUB_CONTOSO_PROD);
    assert_eq!(prod["children"][0]["type"], "/subscriptions");
    // Descendants: the nested group and every subscription below, paged by $top.
    let (all, pages) = descendants(&t, &arm, MG_SPOT, 3).await;
    let names: Vec<&str> = all.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(all.len(), 1 + 1 + 2 + 5, "{names:?}");
    assert_eq!(pages, 3);
    assert!(names.contains(&SUB_CONTOSO_PROD) && names.contains(&SUB_CONTOSO_DEV));
    let nested = all.iter().find(|d| d["name"] == SUB_CONTOSO_PROD).unwrap();
    assert_eq!(nested["properties"]["parent"]["id"], mg(MG_SPOT_PROD));
    assert_eq!(nested["type"], "/subscriptions");
    // A subscription created under the nested group while the simulator runs: listed, and
    // visible to the caller through the group's Owner assignment alone.
    let new_sub = "5c0000aa-0000-4000-8000-0000000000aa";
    let placed = t
        .send(
            "POST",
            &format!(
                "/inspect/management-groups/subscriptions?group={MG_SPOT_PROD}&id={new_sub}&name=Contoso%20Later"
            ),
            None,
            None,
        )
        .await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    let (all, _) = descendants(&t, &arm, MG_SPOT_PROD, 100).await;
    assert!(all.iter().any(|d| d["name"] == new_sub), "{all:?}");
    let subs = t
        .get("/arm/subscriptions?api-version=2022-12-01", &arm)
        .await;
    assert!(
        subs.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subscriptionId"] == new_sub),
        "{}",
        subs.body
    );
    let one = t
        .get(
            &format!("/arm/subscriptions/{new_sub}?api-version=2022-12-01"),
            &arm,
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    // Moving a subscription: Contoso Dev to the nested group.
    let moved = t
        .send(
            "POST",
            &format!(
                "/inspect/management-groups/subscriptions?group={MG_SPOT_PROD}&id={SUB_CONTOSO_DEV}"
            ),
            None,
            None,
        )
        .await;
    assert_eq!(moved.status, 200);
    let (all, _) = descendants(&t, &arm, MG_SPOT_PROD, 100).await;
    assert!(all.iter().any(|d| d["name"] == SUB_CONTOSO_DEV));
}

#[tokio::test]
async fn roles_and_assignments_at_a_group_are_inherited_below_it_after_propagation() {
    let t = start(SimOpts {
        mg_propagation_delay: 2.0,
        ..fast()
    })
    .await;
    let arm = t.operator("arm").await;
    let g = t.operator("graph").await;
    let (app_id, _, sp_id, secret) = app_with_sp(&t, &g, "Spot.io-mg").await;
    let scope = mg(MG_SPOT);
    let role = put_role(
        &t,
        &arm,
        &scope,
        "Spot MG role",
        std::slice::from_ref(&scope),
        false,
    )
    .await;
    assert_eq!(role.status, 201, "{}", role.body);
    assert_eq!(
        role.body["id"],
        format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions/{}",
            role.body["name"].as_str().unwrap()
        )
    );
    // Listed at a subscription two levels below (roles assignable above apply there).
    let at_sub = t
        .get(
            &format!(
                "/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}&$filter=roleName%20eq%20'Spot%20MG%20role'"
            ),
            &arm,
        )
        .await;
    assert_eq!(at_sub.body["value"].as_array().unwrap().len(), 1);
    let a = assign(&t, &arm, &scope, &role.body["id"], &sp_id).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["properties"]["scope"], scope);
    // Spot's validation of a nested subscription: not yet (the group propagates slower), then
    // connected with no assignment at the subscription.
    let acct = t
        .spot(
            "POST",
            "/setup/account",
            Some(json!({"account": {"name": "Contoso Production"}})),
        )
        .await;
    let acct = acct.body["response"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let set = format!("/azure/setup/credentials?accountId={acct}");
    let early = t
        .spot(
            "POST",
            &set,
            Some(creds(&app_id, &secret, SUB_CONTOSO_PROD)),
        )
        .await;
    assert_eq!(
        early.body["response"]["errors"][0]["code"],
        spot_codes::MISSING_PERMISSIONS,
        "{}",
        early.body
    );
    let listed = |r: &R| {
        r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["properties"]["scope"] == scope)
    };
    let sub_list = format!(
        "/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleAssignments?{ARM_V}&$filter=principalId%20eq%20'{sp_id}'"
    );
    assert!(!listed(&t.get(&sub_list, &arm).await));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        listed(&t.get(&sub_list, &arm).await),
        "inherited, in effect"
    );
    let ok = t
        .spot(
            "POST",
            &set,
            Some(creds(&app_id, &secret, SUB_CONTOSO_PROD)),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A subscription created under the group later inherits it too.
    let later = "5c0000bb-0000-4000-8000-0000000000bb";
    t.sim
        .place_subscription(MG_SPOT_PROD, later, "Contoso Later");
    let acct2 = t
        .spot(
            "POST",
            "/setup/account",
            Some(json!({"account": {"name": "Contoso Later"}})),
        )
        .await;
    let acct2 = acct2.body["response"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = t
        .spot(
            "POST",
            &format!("/azure/setup/credentials?accountId={acct2}"),
            Some(creds(&app_id, &secret, later)),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Outside the group (Fabrikam's, or the root group's other children): not inherited.
    let state = t.sim.state();
    let groups = state["managementGroups"].as_array().unwrap();
    let spot = groups.iter().find(|g| g["id"] == MG_SPOT).unwrap();
    assert!(
        spot["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == SUB_CONTOSO_DEV)
    );
}

#[tokio::test]
async fn the_documented_limits_at_a_group() {
    let t = start(fast()).await;
    let arm = t.operator("arm").await;
    let g = t.operator("graph").await;
    let (_, _, sp_id, _) = app_with_sp(&t, &g, "Spot.io-limits").await;
    let (a, b) = (mg(MG_SPOT), mg(MG_SPOT_PROD));
    // One management group per custom role.
    let two = put_role(&t, &arm, &a, "Two groups", &[a.clone(), b.clone()], false).await;
    assert_arm_error(&two, 400, "InvalidAssignableScopes");
    let unknown = put_role(&t, &arm, &a, "Unknown", &[mg("no-such-group")], false).await;
    assert_arm_error(&unknown, 400, "LinkedInvalidPropertyId");
    // A role with DataActions may list the group, but cannot be assigned there.
    let data = put_role(&t, &arm, &a, "With data", std::slice::from_ref(&a), true).await;
    assert_eq!(data.status, 201, "{}", data.body);
    let refused = assign(&t, &arm, &a, &data.body["id"], &sp_id).await;
    assert_arm_error(&refused, 400, "InvalidCreateRoleAssignmentRequest");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DataActions")
    );
    // At a subscription below it, the same role is assignable.
    let below = assign(
        &t,
        &arm,
        &format!("/subscriptions/{SUB_CONTOSO_DEV}"),
        &data.body["id"],
        &sp_id,
    )
    .await;
    assert_eq!(below.status, 201, "{}", below.body);
    // 500 assignments per group: 499 others' there, ours the 500th, then one more refused.
    let role = put_role(
        &t,
        &arm,
        &b,
        "Actions only",
        std::slice::from_ref(&b),
        false,
    )
    .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let fill = t
        .send(
            "POST",
            &format!("/inspect/management-groups/assignments?group={MG_SPOT_PROD}&count=499"),
            None,
            None,
        )
        .await;
    assert_eq!(fill.status, 204);
    let ours = assign(&t, &arm, &b, &role.body["id"], &sp_id).await;
    assert_eq!(ours.status, 201, "{}", ours.body);
    let over = t
        .put(
            &format!(
                "/arm{b}/providers/Microsoft.Authorization/roleAssignments/{}?{ARM_V}",
                new_guid()
            ),
            &arm,
            json!({"properties": {"roleDefinitionId": role.body["id"], "principalId": OPERATOR_USER_ID, "principalType": "User"}}),
        )
        .await;
    assert_arm_error(&over, 400, "RoleAssignmentLimitExceeded");
}
