//! The simulated ARM: subscriptions, role definitions and assignments, permissions, the write
//! budget and its headers, the documented examples, the anonymous metadata endpoint.

use super::*;

/// An ARM resource at subscription scope: `id`, `type`, `name` as in the 2022-04-01 examples.
fn assert_arm_resource(r: &R, status: u16, sub: &str, kind: &str, name: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let id = format!("/subscriptions/{sub}/providers/Microsoft.Authorization/{kind}/{name}");
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["type"], format!("Microsoft.Authorization/{kind}"));
    assert_eq!(r.body["name"], name);
}

#[tokio::test]
async fn arm_subscriptions_are_paged_and_scoped_to_the_token_tenant() {
    // Small pages, so the paging itself is exercised (the default page holds 100).
    let t = start(SimOpts {
        subscriptions: 3,
        subscription_page_size: 2,
        ..fast()
    })
    .await;
    let arm = t.operator("arm").await;
    let mut url = "/arm/subscriptions?api-version=2022-12-01".to_string();
    let mut all = vec![];
    let mut pages = 0;
    loop {
        let r = t.get(&url, &arm).await;
        assert_eq!(r.status, 200);
        pages += 1;
        all.extend(r.body["value"].as_array().unwrap().iter().cloned());
        match r.body["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(all.len(), 6);
    assert_eq!(pages, 3);
    assert!(all.iter().all(|s| s["tenantId"] == CONTOSO_TENANT_ID));
    assert!(
        all.iter()
            .any(|s| s["subscriptionId"] == SUB_CONTOSO_LEGACY && s["state"] == "Disabled")
    );
    assert!(
        all.iter()
            .any(|s| s["subscriptionId"] == extra_subscription_id(3).as_str())
    );
    let one = t
        .get(
            &format!("/arm/subscriptions/{SUB_CONTOSO_PROD}?api-version=2022-12-01"),
            &arm,
        )
        .await;
    assert_eq!(one.body["id"], format!("/subscriptions/{SUB_CONTOSO_PROD}"));
    assert_eq!(one.body["displayName"], "Contoso Production");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn arm_role_definitions_contract() {
    let t = start(fast()).await;
    let arm = t.operator("arm").await;
    let guid = new_guid();
    // PutRoleDefinition.json, with a real subscription as scope.
    let body = json!({"properties": {
        "roleName": "Role name", "description": "Role description", "type": "CustomRole",
        "assignableScopes": [format!("/subscriptions/{SUB_CONTOSO_PROD}")],
        "permissions": [{"actions": ["action"], "notActions": [], "dataActions": ["dataAction"], "notDataActions": []}],
    }});
    let r = t
        .put(&rd_path(SUB_CONTOSO_PROD, &guid), &arm, body.clone())
        .await;
    assert_arm_resource(&r, 201, SUB_CONTOSO_PROD, "roleDefinitions", &guid);
    assert_eq!(r.body["properties"]["roleName"], "Role name");
    assert_eq!(r.body["properties"]["type"], "CustomRole");
    assert_eq!(
        r.body["properties"]["permissions"],
        body["properties"]["permissions"]
    );
    assert_eq!(
        t.put(&rd_path(SUB_CONTOSO_PROD, &guid), &arm, body.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        t.get(&rd_path(SUB_CONTOSO_PROD, &guid), &arm).await.body["name"],
        guid.as_str()
    );
    assert_arm_error(
        &t.get(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm).await,
        404,
        "RoleDefinitionDoesNotExist",
    );

    // Names are unique per tenant, even when the other role is not assignable here.
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, body.clone())
            .await,
        409,
        "RoleDefinitionWithSameNameExists",
    );
    let list = format!(
        "/arm/subscriptions/{SUB_CONTOSO_DEV}/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}&$filter=roleName%20eq%20'Role%20name'"
    );
    assert_eq!(t.get(&list, &arm).await.body["value"], json!([]));
    let mut dev = body.clone();
    dev["properties"]["assignableScopes"] = json!([format!("/subscriptions/{SUB_CONTOSO_DEV}")]);
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_DEV, &new_guid()), &arm, dev)
            .await,
        409,
        "RoleDefinitionWithSameNameExists",
    );

    // Tenant scope shows it, with its assignable scopes, so a client can extend them.
    let tenant_wide = t.get(&format!("/arm/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}&$filter=type%20eq%20'CustomRole'"), &arm)
        .await;
    assert_eq!(tenant_wide.status, 200);
    assert_eq!(
        tenant_wide.body["value"][0]["id"],
        format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    );
    assert_eq!(
        tenant_wide.body["value"][0]["properties"]["assignableScopes"],
        json!([format!("/subscriptions/{SUB_CONTOSO_PROD}")])
    );
    // Lists: built-ins and the custom role; filters.
    let all = t.get(&format!("/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}"), &arm).await;
    let names: Vec<&str> = all.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["roleName"].as_str().unwrap())
        .collect();
    for n in ["Owner", "Contributor", "Reader", "Role name"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let custom = t.get(&format!("/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}&$filter=type%20eq%20'CustomRole'"), &arm)
        .await;
    assert_eq!(custom.body["value"].as_array().unwrap().len(), 1);
    let owner = t.get(&format!("/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleDefinitions?{ARM_V}&$filter=roleName+eq+'Owner'"), &arm)
        .await;
    assert_eq!(owner.body["value"][0]["properties"]["type"], "BuiltInRole");

    // Validation errors.
    let mut no_name = body.clone();
    no_name["properties"]["roleName"] = json!("");
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, no_name)
            .await,
        400,
        "RoleDefinitionNameNullOrEmpty",
    );
    let mut no_scopes = body.clone();
    no_scopes["properties"]["roleName"] = json!("other");
    no_scopes["properties"]["assignableScopes"] = json!([]);
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, no_scopes)
            .await,
        400,
        "MissingAssignableScopes",
    );
    let mut bad_scope = body.clone();
    bad_scope["properties"]["roleName"] = json!("other");
    bad_scope["properties"]["assignableScopes"] = json!(["/subscriptions/nope"]);
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, bad_scope)
            .await,
        400,
        "LinkedInvalidPropertyId",
    );
    let mut legacy = body.clone();
    legacy["properties"]["roleName"] = json!("legacy");
    assert_arm_error(
        &t.put(&rd_path(SUB_CONTOSO_LEGACY, &new_guid()), &arm, legacy)
            .await,
        409,
        "ReadOnlyDisabledSubscription",
    );

    // Delete: refused while assigned, 200 then 204.
    let ra = new_guid();
    let assign = json!({"properties": {"roleDefinitionId": r.body["id"], "principalId": OPERATOR_USER_ID, "principalType": "User"}});
    assert_eq!(
        t.put(&ra_path(SUB_CONTOSO_PROD, &ra), &arm, assign)
            .await
            .status,
        201
    );
    assert_arm_error(
        &t.delete(&rd_path(SUB_CONTOSO_PROD, &guid), &arm).await,
        409,
        "RoleDefinitionHasAssignments",
    );
    assert_eq!(
        t.delete(&ra_path(SUB_CONTOSO_PROD, &ra), &arm).await.status,
        200
    );
    let del = t.delete(&rd_path(SUB_CONTOSO_PROD, &guid), &arm).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["name"], guid.as_str());
    assert_eq!(
        t.delete(&rd_path(SUB_CONTOSO_PROD, &guid), &arm)
            .await
            .status,
        204
    );

    // ci-limited has Reader only.
    let limited = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "arm",
        )
        .await;
    let denied = t
        .put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &limited, body)
        .await;
    assert_arm_error(&denied, 403, "AuthorizationFailed");
    let msg = denied.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/write'"), "{msg}");
    assert!(msg.contains(CI_LIMITED_SP_ID));
    t.sim.shutdown().await;
}

#[tokio::test]
async fn arm_role_assignments_and_permissions_contract() {
    let t = start(fast()).await;
    let arm = t.operator("arm").await;
    let g = t.operator("graph").await;
    let reader = format!(
        "/subscriptions/{SUB_CONTOSO_DEV}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_READER}"
    );
    // RoleAssignments_CreateForSubscription.json shape, with the seeded user.
    let name = new_guid();
    let body = json!({"properties": {"roleDefinitionId": reader, "principalId": OPERATOR_USER_ID, "principalType": "User"}});
    let r = t
        .put(&ra_path(SUB_CONTOSO_DEV, &name), &arm, body.clone())
        .await;
    assert_arm_resource(&r, 201, SUB_CONTOSO_DEV, "roleAssignments", &name);
    assert_eq!(r.body["properties"]["principalType"], "User");
    assert_eq!(
        r.body["properties"]["scope"],
        format!("/subscriptions/{SUB_CONTOSO_DEV}")
    );
    assert!(
        r.body["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with(ROLE_READER)
    );
    let dup = t
        .put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, body.clone())
        .await;
    assert_arm_error(&dup, 409, "RoleAssignmentExists");
    assert!(
        dup.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The role assignment already exists.")
    );

    let unknown_role = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB_CONTOSO_DEV}/providers/Microsoft.Authorization/roleDefinitions/{}", new_guid()), "principalId": OPERATOR_USER_ID}});
    assert_arm_error(
        &t.put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, unknown_role)
            .await,
        400,
        "RoleDefinitionDoesNotExist",
    );
    let ghost = new_guid();
    let unknown = json!({"properties": {"roleDefinitionId": reader, "principalId": ghost, "principalType": "ServicePrincipal"}});
    let pnf = t
        .put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, unknown)
        .await;
    assert_arm_error(&pnf, 400, "PrincipalNotFound");
    let msg = pnf.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&ghost.replace('-', ""))
            && msg.contains("does not exist in the directory")
            && msg.contains("principalType"),
        "{msg}"
    );
    let missing = json!({"properties": {"roleDefinitionId": reader}});
    assert_arm_error(
        &t.put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, missing)
            .await,
        400,
        "InvalidRequestContent",
    );

    // A service principal assigned as a User is refused; without principalType ARM resolves it.
    let (_, _, sp_id, _) = app_with_sp(&t, &g, "assignee").await;
    let as_user = json!({"properties": {"roleDefinitionId": reader, "principalId": sp_id, "principalType": "User"}});
    assert_arm_error(
        &t.put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, as_user)
            .await,
        400,
        "UnmatchedPrincipalType",
    );
    let plain = json!({"properties": {"roleDefinitionId": reader, "principalId": sp_id}});
    let sp_name = new_guid();
    let ok = t
        .put(&ra_path(SUB_CONTOSO_DEV, &sp_name), &arm, plain)
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["properties"]["principalType"], "ServicePrincipal");

    let list = t.get(&format!("/arm/subscriptions/{SUB_CONTOSO_DEV}/providers/Microsoft.Authorization/roleAssignments?{ARM_V}&$filter=principalId%20eq%20'{sp_id}'"), &arm)
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["value"][0]["name"], sp_name.as_str());
    assert_eq!(
        t.get(&ra_path(SUB_CONTOSO_DEV, &sp_name), &arm)
            .await
            .status,
        200
    );
    assert_eq!(
        t.delete(&ra_path(SUB_CONTOSO_DEV, &sp_name), &arm)
            .await
            .status,
        200
    );
    assert_eq!(
        t.delete(&ra_path(SUB_CONTOSO_DEV, &sp_name), &arm)
            .await
            .status,
        204
    );
    assert_arm_error(
        &t.get(&ra_path(SUB_CONTOSO_DEV, &sp_name), &arm).await,
        404,
        "RoleAssignmentNotFound",
    );

    // permissions for the caller.
    let perms = format!(
        "/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/permissions?{ARM_V}"
    );
    assert_eq!(
        t.get(&perms, &arm).await.body["value"][0]["actions"],
        json!(["*"])
    );
    let limited = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "arm",
        )
        .await;
    let lp = t.get(&perms, &limited).await;
    assert_eq!(lp.body["value"][0]["actions"], json!(["*/read"]));
    assert_eq!(lp.body["value"][0]["notActions"], json!([]));
    let denied = t
        .put(&ra_path(SUB_CONTOSO_PROD, &new_guid()), &limited, body)
        .await;
    assert_arm_error(&denied, 403, "AuthorizationFailed");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn arm_writes_are_rate_limited_per_tenant() {
    let t = start(SimOpts {
        rate_limit: Some(1),
        ..fast()
    })
    .await;
    let arm = t.operator("arm").await;
    let mut throttled = None;
    for i in 0..5 {
        let body = json!({"properties": {"roleName": format!("r{i}"), "assignableScopes": [format!("/subscriptions/{SUB_CONTOSO_PROD}")], "permissions": []}});
        let r = t
            .put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, body)
            .await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 201);
    }
    let r = throttled.expect("a write beyond the rate is throttled");
    assert_arm_error(&r, 429, "TooManyRequests");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.headers["x-ms-ratelimit-remaining-tenant-writes"], "0");
    // Reads are not counted.
    assert_eq!(
        t.get("/arm/subscriptions?api-version=2022-12-01", &arm)
            .await
            .status,
        200
    );
    t.sim.shutdown().await;
}

fn remaining(r: &R, name: &str) -> u64 {
    r.headers
        .get(format!("x-ms-ratelimit-remaining-{name}"))
        .unwrap_or_else(|| panic!("x-ms-ratelimit-remaining-{name} in {:?}", r.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// ARM's budget on every reply (reference/fleet-and-policies.md §5): token buckets per
/// subscription (and principal) and per tenant, for reads, writes and deletes, refilled
/// continuously; a request that finds a bucket empty gets 429 with the time to the next token.
#[tokio::test]
async fn arm_announces_its_token_buckets_on_every_reply() {
    let t = start(SimOpts {
        arm_read_bucket: 5,
        arm_read_refill: 2.0,
        arm_write_bucket: 3,
        arm_write_refill: 1.0,
        ..fast()
    })
    .await;
    let arm = t.operator("arm").await;
    // Tenant-level reads: the tenant's read bucket only.
    let r = t
        .get("/arm/subscriptions?api-version=2022-12-01", &arm)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(remaining(&r, "tenant-reads"), 4);
    assert!(
        r.headers
            .get("x-ms-ratelimit-remaining-subscription-reads")
            .is_none()
    );
    // A subscription's reads draw on both; the subscription's bucket is its own.
    let perms = |sub: &str| {
        format!("/arm/subscriptions/{sub}/providers/Microsoft.Authorization/permissions?{ARM_V}")
    };
    let r = t.get(&perms(SUB_CONTOSO_PROD), &arm).await;
    assert_eq!(
        (
            remaining(&r, "subscription-reads"),
            remaining(&r, "tenant-reads")
        ),
        (4, 3)
    );
    let r = t.get(&perms(SUB_CONTOSO_DEV), &arm).await;
    assert_eq!(
        (
            remaining(&r, "subscription-reads"),
            remaining(&r, "tenant-reads")
        ),
        (4, 2)
    );
    // Writes and deletes have buckets of their own, and the headers come on errors too.
    let write = |i: usize| json!({"properties": {"roleName": format!("bucket {i}"), "assignableScopes": [format!("/subscriptions/{SUB_CONTOSO_PROD}")], "permissions": []}});
    let mut lefts = vec![];
    for i in 0..3 {
        let r = t
            .put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, write(i))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        lefts.push((
            remaining(&r, "subscription-writes"),
            remaining(&r, "tenant-writes"),
        ));
    }
    assert_eq!(lefts, [(2, 2), (1, 1), (0, 0)]);
    let r = t
        .put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, write(9))
        .await;
    assert_arm_error(&r, 429, "TooManyRequests");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Write")
    );
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(remaining(&r, "tenant-writes"), 0);
    let d = t
        .delete(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm)
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(remaining(&d, "subscription-deletes"), 2);
    // Reads are still there; the write bucket refills at 1 per second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = t
        .put(&rd_path(SUB_CONTOSO_PROD, &new_guid()), &arm, write(10))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(remaining(&r, "tenant-writes"), 0);
    // Read buckets refill at 2 per second up to their size (5), never beyond.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let r = t
        .get("/arm/subscriptions?api-version=2022-12-01", &arm)
        .await;
    assert_eq!(remaining(&r, "tenant-reads"), 4);
    // Another principal has its own subscription buckets, the same tenant buckets.
    let other = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "arm",
        )
        .await;
    let r = t.get(&perms(SUB_CONTOSO_PROD), &other).await;
    assert_eq!(
        (
            remaining(&r, "subscription-reads"),
            remaining(&r, "tenant-reads")
        ),
        (4, 3)
    );
    t.sim.shutdown().await;
}

/// The documented example files (verbatim copies under tests/fixtures/openapi/).
fn example(name: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/openapi/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

/// Every key path of `documented` exists in `actual` (arrays: their first element against every
/// element of `actual`). Values may differ: they are the example's, not the simulator's.
fn has_documented_shape(documented: &Value, actual: &Value, path: &str, missing: &mut Vec<String>) {
    match (documented, actual) {
        (Value::Object(d), Value::Object(a)) => {
            for (k, dv) in d {
                // A next page link is there only when there is a next page.
                if k == "nextLink" {
                    continue;
                }
                // A free-form map: its keys are the example's data, not fields.
                if k == "tags" {
                    if !a.get(k).is_some_and(Value::is_object) {
                        missing.push(format!("{path}.{k}"));
                    }
                    continue;
                }
                match a.get(k) {
                    Some(av) => has_documented_shape(dv, av, &format!("{path}.{k}"), missing),
                    None => missing.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if let Some(d0) = d.first() {
                for (i, av) in a.iter().enumerate() {
                    has_documented_shape(d0, av, &format!("{path}[{i}]"), missing);
                }
            }
        }
        (Value::Object(_) | Value::Array(_), _) => missing.push(format!("{path} (type)")),
        _ => {}
    }
}

fn assert_documented(example_name: &str, status: &str, actual: &R) {
    let ex = example(example_name);
    let documented = &ex["responses"][status]["body"];
    assert!(
        documented.is_object(),
        "{example_name} documents status {status}"
    );
    assert_eq!(
        actual.status.to_string(),
        status,
        "{example_name}: {}",
        actual.body
    );
    let mut missing = vec![];
    has_documented_shape(documented, &actual.body, "$", &mut missing);
    assert!(
        missing.is_empty(),
        "{example_name}: the simulator's answer lacks documented fields {missing:?}: {}",
        actual.body
    );
}

#[tokio::test]
async fn documented_examples_get_tenants_and_subscriptions() {
    let t = start(fast()).await;
    let arm = t.operator("arm").await;
    let v = example("GetTenants")["parameters"]["api-version"].clone();
    let r = t
        .get(
            &format!("/arm/tenants?api-version={}", v.as_str().unwrap()),
            &arm,
        )
        .await;
    assert_documented("GetTenants", "200", &r);
    let v = example("GetSubscriptions")["parameters"]["api-version"].clone();
    let r = t
        .get(
            &format!("/arm/subscriptions?api-version={}", v.as_str().unwrap()),
            &arm,
        )
        .await;
    assert_documented("GetSubscriptions", "200", &r);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn documented_examples_put_role_definition_and_assignment() {
    let t = start(fast()).await;
    let arm = t.operator("arm").await;
    // PutRoleDefinition.json: its body, with a real subscription as the assignable scope (the
    // example's "/subscriptions/subId" does not exist), sent in the ARM `properties` shape.
    let ex = example("PutRoleDefinition");
    let mut props = ex["parameters"]["body"]["roleDefinition"].clone();
    for k in ["id", "type", "name"] {
        props.as_object_mut().unwrap().remove(k);
    }
    props["assignableScopes"] = json!([format!("/subscriptions/{SUB_CONTOSO_PROD}")]);
    props["type"] = json!("CustomRole");
    let role = new_guid();
    let r = t
        .put(
            &rd_path(SUB_CONTOSO_PROD, &role),
            &arm,
            json!({ "properties": props }),
        )
        .await;
    assert_documented("PutRoleDefinition", "201", &r);

    // RoleAssignments_CreateForSubscription.json: its body, with a real principal and role.
    let ex = example("RoleAssignments_CreateForSubscription");
    let mut body = ex["parameters"]["parameters"].clone();
    body["properties"]["roleDefinitionId"] = r.body["id"].clone();
    body["properties"]["principalId"] = json!(OPERATOR_USER_ID);
    let name = ex["parameters"]["roleAssignmentName"].as_str().unwrap();
    let a = t
        .put(&ra_path(SUB_CONTOSO_PROD, name), &arm, body.clone())
        .await;
    assert_documented("RoleAssignments_CreateForSubscription", "201", &a);
    assert_eq!(a.body["properties"]["principalType"], "User");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn arm_metadata_endpoints_are_anonymous_and_name_the_simulator() {
    let t = start(fast()).await;
    let e = &t.sim.endpoints;
    let get = |q: &str| {
        let url = format!("{}/metadata/endpoints{q}", e.arm);
        let http = t.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // 2022-09-01: one object, no token needed.
    let (status, m) = get("?api-version=2022-09-01").await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["resourceManager"], format!("{}/", e.arm));
    assert_eq!(m["authentication"]["loginEndpoint"], e.login.as_str());
    assert_eq!(m["authentication"]["audiences"][0], format!("{}/", e.arm));
    assert_eq!(m["microsoftGraphResourceId"], format!("{}/", e.graph));
    assert!(m["name"].is_string() && m["suffixes"].is_object());
    // Earlier versions: an array of clouds.
    let (status, old) = get("?api-version=2019-05-01").await;
    assert_eq!(status, 200);
    assert_eq!(old, json!([m]));
    let (status, _) = get("").await;
    assert_eq!(status, 400);
    // The audience it names gets tokens ARM accepts.
    let arm = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_OPERATOR_CLIENT_ID,
            CI_OPERATOR_SECRET,
            "arm",
        )
        .await;
    assert_eq!(
        t.get("/arm/subscriptions?api-version=2022-12-01", &arm)
            .await
            .status,
        200
    );
}
