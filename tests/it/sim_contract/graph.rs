//! The simulated Microsoft Graph: applications, service principals and secrets, who may register
//! applications, the upserts, the servicePrincipalNames filter and getByIds, app-role and
//! directory-role grants.

use super::*;

#[tokio::test]
async fn graph_applications_service_principals_and_secrets() {
    let t = start(fast()).await;
    let g = t.operator("graph").await;
    // reference/azure-api.md §1.1 request.
    let app = t.post("/graph/v1.0/applications", &g, json!({"displayName": "O'Neil Spot", "signInAudience": "AzureADMyOrg", "web": {"redirectUris": ["https://spot.io"]}, "notes": "n", "tags": ["spot-connect"]}))
        .await;
    assert_eq!(app.status, 201, "{}", app.body);
    for k in [
        "id",
        "appId",
        "displayName",
        "signInAudience",
        "createdDateTime",
    ] {
        assert!(app.body[k].is_string(), "{k}");
    }
    assert_eq!(app.body["web"]["redirectUris"], json!(["https://spot.io"]));
    assert_eq!(app.body["passwordCredentials"], json!([]));
    let (oid, app_id) = (
        app.body["id"].as_str().unwrap().to_string(),
        app.body["appId"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        t.get(&format!("/graph/v1.0/applications/{oid}"), &g)
            .await
            .body["notes"],
        "n"
    );
    let list = t
        .get(
            "/graph/v1.0/applications?$filter=displayName%20eq%20'O''Neil%20Spot'&$select=id,appId",
            &g,
        )
        .await;
    assert_eq!(list.body["value"], json!([{"id": oid, "appId": app_id}]));
    assert_eq!(
        t.get(
            "/graph/v1.0/applications?$filter=displayName%20eq%20'O''Neil'",
            &g
        )
        .await
        .body["value"],
        json!([])
    );

    // Secrets: secretText only in the addPassword answer; the policy caps lifetime at 24 months.
    let pw = t
        .post(
            &format!("/graph/v1.0/applications/{oid}/addPassword"),
            &g,
            json!({"passwordCredential": {"displayName": "spot-io"}}),
        )
        .await;
    assert_eq!(pw.status, 200);
    let secret = pw.body["secretText"].as_str().unwrap().to_string();
    assert_eq!(pw.body["hint"], secret[..3]);
    let start = time::OffsetDateTime::parse(
        pw.body["startDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let end = time::OffsetDateTime::parse(
        pw.body["endDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(end.year() - start.year(), 2);
    let got = t.get(&format!("/graph/v1.0/applications/{oid}"), &g).await;
    assert_eq!(
        got.body["passwordCredentials"][0]["secretText"],
        Value::Null
    );
    assert_eq!(
        got.body["passwordCredentials"][0]["keyId"],
        pw.body["keyId"]
    );
    let state = t.sim.state();
    let stored = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == oid.as_str())
        .unwrap();
    assert_eq!(
        stored["passwordCredentials"][0]["secretText"],
        secret.as_str()
    );
    let long = t
        .post(
            &format!("/graph/v1.0/applications/{oid}/addPassword"),
            &g,
            json!({"passwordCredential": {"endDateTime": "2099-01-01T00:00:00Z"}}),
        )
        .await;
    assert_graph_error(&long, 400, "CredentialInvalidLifetimeAsPerAppPolicy");
    assert_eq!(
        long.body["error"]["details"][0]["code"],
        "InvalidKeyEndDate"
    );
    assert_eq!(long.body["error"]["details"][0]["target"], "EndDate");
    let rm = t
        .post(
            &format!("/graph/v1.0/applications/{oid}/removePassword"),
            &g,
            json!({"keyId": pw.body["keyId"]}),
        )
        .await;
    assert_eq!(rm.status, 204);
    assert_eq!(
        t.get(&format!("/graph/v1.0/applications/{oid}"), &g)
            .await
            .body["passwordCredentials"],
        json!([])
    );

    // Service principal: 404 by appId, create, lookups.
    let by_app = format!("/graph/v1.0/servicePrincipals(appId='{app_id}')");
    assert_graph_error(&t.get(&by_app, &g).await, 404, "Request_ResourceNotFound");
    let sp = t
        .post(
            "/graph/v1.0/servicePrincipals",
            &g,
            json!({"appId": app_id}),
        )
        .await;
    assert_eq!(sp.status, 201);
    assert_eq!(sp.body["appOwnerOrganizationId"], CONTOSO_TENANT_ID);
    assert_eq!(sp.body["servicePrincipalNames"], json!([app_id]));
    assert_eq!(sp.body["accountEnabled"], true);
    let sp_id = sp.body["id"].as_str().unwrap().to_string();
    assert_eq!(t.get(&by_app, &g).await.body["id"], sp_id.as_str());
    assert_eq!(
        t.get(&format!("/graph/v1.0/servicePrincipals/{sp_id}"), &g)
            .await
            .status,
        200
    );
    let filtered = t
        .get(
            &format!("/graph/v1.0/servicePrincipals?$filter=appId%20eq%20'{app_id}'"),
            &g,
        )
        .await;
    assert_eq!(filtered.body["value"].as_array().unwrap().len(), 1);
    // An appId that references no application.
    let none = t
        .post(
            "/graph/v1.0/servicePrincipals",
            &g,
            json!({"appId": new_guid()}),
        )
        .await;
    assert_graph_error(&none, 400, "Request_BadRequest");
    assert_eq!(
        none.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );

    // Deleting the application deletes its service principal.
    assert_eq!(
        t.delete(&format!("/graph/v1.0/applications/{oid}"), &g)
            .await
            .status,
        204
    );
    assert_graph_error(
        &t.get(&format!("/graph/v1.0/servicePrincipals/{sp_id}"), &g)
            .await,
        404,
        "Request_ResourceNotFound",
    );
    assert_graph_error(
        &t.get(&format!("/graph/v1.0/applications/{oid}"), &g).await,
        404,
        "Request_ResourceNotFound",
    );

    // ci-limited may not register applications.
    let limited = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "graph",
        )
        .await;
    let denied = t
        .post(
            "/graph/v1.0/applications",
            &limited,
            json!({"displayName": "x"}),
        )
        .await;
    assert_graph_error(&denied, 403, "Authorization_RequestDenied");
    assert_eq!(
        denied.body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    t.sim.shutdown().await;
}

impl T {
    /// A user (operator) token for `tenant` and `service` through the device-code flow.
    async fn user_token(&self, tenant: &str, service: &str) -> String {
        let scope = self.scope(service);
        let dc = self
            .form(
                tenant,
                "devicecode",
                &[("client_id", AZURE_CLI_CLIENT_ID), ("scope", &scope)],
            )
            .await;
        assert_eq!(dc.status, 200, "{}", dc.body);
        let code = dc.body["device_code"].as_str().unwrap().to_string();
        for _ in 0..10 {
            let r = self
                .form(
                    tenant,
                    "token",
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("client_id", AZURE_CLI_CLIENT_ID),
                        ("device_code", code.as_str()),
                    ],
                )
                .await;
            if r.status == 200 {
                return r.body["access_token"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        panic!("device code not approved");
    }
}

#[tokio::test]
async fn graph_tells_who_may_register_applications() {
    let t = start(fast()).await;
    // Contoso: "Users can register applications" is on; the operator's only directory role is
    // Privileged Role Administrator, which does not register apps.
    let contoso = t.user_token(CONTOSO_TENANT_ID, "graph").await;
    let p = t
        .get("/graph/v1.0/policies/authorizationPolicy", &contoso)
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["id"], "authorizationPolicy");
    assert!(p.body.get("value").is_none(), "a single object in v1.0");
    assert!(
        p.body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#policies/authorizationPolicy/$entity")
    );
    assert_eq!(
        p.body["defaultUserRolePermissions"]["allowedToCreateApps"],
        true
    );
    let roles = t
        .get(
            "/graph/v1.0/me/memberOf/microsoft.graph.directoryRole",
            &contoso,
        )
        .await;
    assert_eq!(roles.status, 200, "{}", roles.body);
    let v = roles.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1, "{}", roles.body);
    assert_eq!(v[0]["roleTemplateId"], DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN);
    assert_eq!(v[0]["displayName"], "Privileged Role Administrator");
    let me = t.get("/graph/v1.0/me", &contoso).await;
    assert_eq!(me.body["userPrincipalName"], OPERATOR_UPN);

    // Fabrikam restricts it; the operator registers apps as Cloud Application Administrator.
    let fabrikam = t.user_token(FABRIKAM_TENANT_ID, "graph").await;
    let p = t
        .get("/graph/v1.0/policies/authorizationPolicy", &fabrikam)
        .await;
    assert_eq!(
        p.body["defaultUserRolePermissions"]["allowedToCreateApps"],
        false
    );
    for path in [
        "/graph/v1.0/me/memberOf/microsoft.graph.directoryRole",
        "/graph/v1.0/me/transitiveMemberOf/microsoft.graph.directoryRole?$select=id,displayName,roleTemplateId",
    ] {
        let roles = t.get(path, &fabrikam).await;
        assert_eq!(roles.status, 200, "{}", roles.body);
        let v = roles.body["value"].as_array().unwrap();
        assert_eq!(v.len(), 1, "{}", roles.body);
        assert_eq!(v[0]["@odata.type"], "#microsoft.graph.directoryRole");
        assert_eq!(
            v[0]["roleTemplateId"],
            DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN
        );
        assert_eq!(v[0]["displayName"], "Cloud Application Administrator");
        assert!(v[0]["id"].is_string());
    }
    let created = t
        .post(
            "/graph/v1.0/applications",
            &fabrikam,
            json!({"displayName": "by role"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    // Service principals: no /me; the policy needs Policy.Read.All, which none holds; the right
    // to register apps is Graph's Application.ReadWrite.All app role.
    let ci = t.operator("graph").await;
    assert_graph_error(
        &t.get("/graph/v1.0/me/memberOf/microsoft.graph.directoryRole", &ci)
            .await,
        400,
        "BadRequest",
    );
    assert_graph_error(
        &t.get("/graph/v1.0/policies/authorizationPolicy", &ci).await,
        403,
        "Authorization_RequestDenied",
    );
    let grants = t
        .get(
            &format!(
                "/graph/v1.0/servicePrincipals(appId='{CI_OPERATOR_CLIENT_ID}')/appRoleAssignments"
            ),
            &ci,
        )
        .await;
    assert_eq!(grants.status, 200, "{}", grants.body);
    let g = &grants.body["value"][0];
    assert_eq!(g["appRoleId"], GRAPH_APPLICATION_READWRITE_ALL);
    assert_eq!(g["principalId"], CI_OPERATOR_SP_ID);
    assert_eq!(g["principalType"], "ServicePrincipal");
    assert_eq!(g["resourceDisplayName"], "Microsoft Graph");

    // ci-owner-noapps: Owner on Contoso Production, but no app role and no directory role.
    let noapps = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_OWNER_NOAPPS_CLIENT_ID,
            CI_OWNER_NOAPPS_SECRET,
            "graph",
        )
        .await;
    for path in [
        format!("/graph/v1.0/servicePrincipals/{CI_OWNER_NOAPPS_SP_ID}/appRoleAssignments"),
        format!(
            "/graph/v1.0/servicePrincipals/{CI_OWNER_NOAPPS_SP_ID}/transitiveMemberOf/microsoft.graph.directoryRole"
        ),
    ] {
        let r = t.get(&path, &noapps).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["value"], json!([]), "{path}");
    }
    assert_graph_error(
        &t.post(
            "/graph/v1.0/applications",
            &noapps,
            json!({"displayName": "x"}),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    );
    let arm = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_OWNER_NOAPPS_CLIENT_ID,
            CI_OWNER_NOAPPS_SECRET,
            "arm",
        )
        .await;
    let perms = t
        .get(
            &format!("/arm/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/permissions?{ARM_V}"),
            &arm,
        )
        .await;
    assert_eq!(perms.status, 200, "{}", perms.body);
    assert_eq!(perms.body["value"][0]["actions"], json!(["*"]));
    t.sim.shutdown().await;
}

#[tokio::test]
async fn graph_upserts_create_if_missing_update_or_404() {
    let t = start(fast()).await;
    let g = t.operator("graph").await;
    let prefer = [("Prefer", "create-if-missing")];
    let path = "/graph/v1.0/applications(uniqueName='spot-connect-contoso')";
    // Without the header a missing application is 404 (application-upsert).
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"displayName": "Spot"})),
            &[],
        )
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    // displayName is required to create.
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"notes": "x"})),
            &prefer,
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // Created: 201 with the object, uniqueName set from the key.
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"displayName": "Spot", "signInAudience": "AzureADMyOrg"})),
            &prefer,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["uniqueName"], "spot-connect-contoso");
    assert_eq!(r.body["displayName"], "Spot");
    let app_id = r.body["appId"].as_str().unwrap().to_string();
    // Existing: 204, no body, updated in place (with or without the header).
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"displayName": "Spot renamed"})),
            &prefer,
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (204, Value::Null));
    let got = t.get(path, &g).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["displayName"], "Spot renamed");
    let state = t.sim.state();
    let apps: Vec<&Value> = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["uniqueName"] == "spot-connect-contoso")
        .collect();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["displayName"], "Spot renamed");
    // uniqueName is immutable; passwordCredentials cannot be set this way.
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"uniqueName": "other"})),
            &[],
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = t
        .send_with(
            "PATCH",
            path,
            Some(&g),
            Some(json!({"passwordCredentials": [{"displayName": "x"}]})),
            &[],
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // A user without the right to register apps cannot upsert.
    let limited = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "graph",
        )
        .await;
    let r = t
        .send_with(
            "PATCH",
            "/graph/v1.0/applications(uniqueName='nope')",
            Some(&limited),
            Some(json!({"displayName": "x"})),
            &prefer,
        )
        .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");

    // The service principal upsert keyed by appId.
    let sp_path = format!("/graph/v1.0/servicePrincipals(appId='{app_id}')");
    let r = t
        .send_with("PATCH", &sp_path, Some(&g), Some(json!({})), &[])
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    let r = t
        .send_with(
            "PATCH",
            &sp_path,
            Some(&g),
            Some(json!({"accountEnabled": true})),
            &prefer,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["appId"], app_id.as_str());
    let r = t
        .send_with(
            "PATCH",
            &sp_path,
            Some(&g),
            Some(json!({"accountEnabled": false})),
            &prefer,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let state = t.sim.state();
    let sps: Vec<&Value> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["appId"] == app_id.as_str())
        .collect();
    assert_eq!(sps.len(), 1);
    assert_eq!(sps[0]["accountEnabled"], false);
    // An appId with no application behind it.
    let r = t
        .send_with(
            "PATCH",
            &format!("/graph/v1.0/servicePrincipals(appId='{}')", new_guid()),
            Some(&g),
            Some(json!({})),
            &prefer,
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
}

#[tokio::test]
async fn graph_service_principal_names_filter_get_by_ids_top_and_next_link() {
    let t = start(fast()).await;
    let g = t.operator("graph").await;
    // servicePrincipalNames/any(c:c eq '{appId}') (the Azure CLI's `az ad sp show --id`).
    let r = t
        .get(
            &format!(
                "/graph/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c%20eq%20'{CI_LIMITED_CLIENT_ID}')"
            ),
            &g,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["id"], CI_LIMITED_SP_ID);
    assert_eq!(v[0]["servicePrincipalNames"], json!([CI_LIMITED_CLIENT_ID]));
    let r = t
        .get(
            &format!(
                "/graph/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c%20eq%20'{}')",
                new_guid()
            ),
            &g,
        )
        .await;
    assert_eq!((r.status, r.body["value"].clone()), (200, json!([])));

    // getByIds: users and service principals of this tenant, typed; unknown ids left out.
    let r = t
        .post(
            "/graph/v1.0/directoryObjects/getByIds",
            &g,
            json!({"ids": [CI_LIMITED_SP_ID, OPERATOR_USER_ID, new_guid()], "types": ["user", "group", "servicePrincipal"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{}", r.body);
    assert_eq!(v[0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    assert_eq!(v[0]["appId"], CI_LIMITED_CLIENT_ID);
    assert!(v[0]["displayName"].is_string());
    assert_eq!(v[1]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(v[1]["userPrincipalName"], OPERATOR_UPN);
    // types limits the kinds.
    let r = t
        .post(
            "/graph/v1.0/directoryObjects/getByIds",
            &g,
            json!({"ids": [CI_LIMITED_SP_ID, OPERATOR_USER_ID], "types": ["user"]}),
        )
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let r = t
        .post(
            "/graph/v1.0/directoryObjects/getByIds",
            &g,
            json!({"types": ["user"]}),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");

    // $top pages with an absolute @odata.nextLink; $select keeps only the named properties.
    let mut url = "/graph/v1.0/servicePrincipals?$top=2&$select=id,appId".to_string();
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let r = t.get(&url, &g).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for sp in r.body["value"].as_array().unwrap() {
            let keys: Vec<&String> = sp.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["appId", "id"], "{sp}");
            seen.push(sp["id"].as_str().unwrap().to_string());
        }
        assert!(r.body["value"].as_array().unwrap().len() <= 2);
        match r.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&t.sim.endpoints.graph), "{next}");
                assert!(next.contains("skiptoken"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    let all = t.sim.state()["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tenantId"] == CONTOSO_TENANT_ID)
        .count();
    assert_eq!(seen.len(), all);
    assert!(pages >= 2);
    let r = t.get("/graph/v1.0/servicePrincipals?$top=0", &g).await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = t
        .get("/graph/v1.0/servicePrincipals?$skiptoken=bogus", &g)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

/// Microsoft Graph's service principal in every tenant, app role grants through
/// `appRoleAssignedTo` / `appRoleAssignments`, and directory roles through
/// `roleManagement/directory/roleAssignments` (Graph v1.0 docs: serviceprincipal-post-approleassignedto,
/// serviceprincipal-post-approleassignments, serviceprincipal-delete-approleassignedto,
/// rbacapplication-post-roleassignments, unifiedroleassignment-delete); permission checks honour them.
#[tokio::test]
async fn graph_grants_app_roles_and_directory_roles_as_documented() {
    let t = start(fast()).await;
    // The operator, Privileged Role Administrator in Contoso, as an administrator would sign in.
    let admin = t.user_token(CONTOSO_TENANT_ID, "graph").await;
    let graph_sp = t
        .get(
            &format!("/graph/v1.0/servicePrincipals(appId='{MICROSOFT_GRAPH_APP_ID}')"),
            &admin,
        )
        .await;
    assert_eq!(graph_sp.status, 200, "{}", graph_sp.body);
    assert_eq!(graph_sp.body["displayName"], "Microsoft Graph");
    let graph_id = graph_sp.body["id"].as_str().unwrap().to_string();
    let role_id = |value: &str| {
        graph_sp.body["appRoles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["value"] == value)
            .unwrap_or_else(|| panic!("{value} in {}", graph_sp.body))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        role_id("Application.ReadWrite.OwnedBy"),
        GRAPH_APPLICATION_READWRITE_OWNEDBY
    );
    assert_eq!(
        role_id("Application.ReadWrite.All"),
        GRAPH_APPLICATION_READWRITE_ALL
    );
    // Also found the way the Azure CLI looks it up, and in Fabrikam (another id there).
    let by_name = t
        .get(
            &format!("/graph/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{MICROSOFT_GRAPH_APP_ID}')"),
            &admin,
        )
        .await;
    assert_eq!(by_name.body["value"][0]["id"], graph_id.as_str());
    let fab_admin = t.user_token(FABRIKAM_TENANT_ID, "graph").await;
    let fab_graph = t
        .get(
            &format!("/graph/v1.0/servicePrincipals(appId='{MICROSOFT_GRAPH_APP_ID}')"),
            &fab_admin,
        )
        .await;
    assert_eq!(fab_graph.status, 200, "{}", fab_graph.body);
    assert_ne!(fab_graph.body["id"], graph_id.as_str());

    // A new app and service principal, made as the Azure SDKs make them.
    let app = t
        .post(
            "/graph/v1.0/applications",
            &admin,
            json!({"displayName": "granted-later"}),
        )
        .await;
    assert_eq!(app.status, 201, "{}", app.body);
    let app_id = app.body["appId"].as_str().unwrap().to_string();
    let sp = t
        .post(
            "/graph/v1.0/servicePrincipals",
            &admin,
            json!({"appId": app_id}),
        )
        .await;
    assert_eq!(sp.status, 201, "{}", sp.body);
    let sp_id = sp.body["id"].as_str().unwrap().to_string();
    let secret = t
        .post(
            &format!(
                "/graph/v1.0/applications/{}/addPassword",
                app.body["id"].as_str().unwrap()
            ),
            &admin,
            json!({"passwordCredential": {"displayName": "t"}}),
        )
        .await;
    let secret = secret.body["secretText"].as_str().unwrap().to_string();
    let sp_token = t
        .cc_token(CONTOSO_TENANT_ID, &app_id, &secret, "graph")
        .await;
    // Without a grant it may not register applications.
    assert_graph_error(
        &t.post(
            "/graph/v1.0/applications",
            &sp_token,
            json!({"displayName": "x"}),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    );

    // Grant Application.ReadWrite.OwnedBy on the resource side (the docs' recommended way).
    let grant = json!({"principalId": sp_id, "resourceId": graph_id, "appRoleId": GRAPH_APPLICATION_READWRITE_OWNEDBY});
    let assigned_to = format!("/graph/v1.0/servicePrincipals/{graph_id}/appRoleAssignedTo");
    // Someone without the right: ci-limited (an app with no AppRoleAssignment.ReadWrite.All),
    // and the operator's guest in Fabrikam (Cloud Application Administrator there) for Fabrikam's Graph.
    let limited = t
        .cc_token(
            CONTOSO_TENANT_ID,
            CI_LIMITED_CLIENT_ID,
            CI_LIMITED_SECRET,
            "graph",
        )
        .await;
    assert_graph_error(
        &t.post(&assigned_to, &limited, grant.clone()).await,
        403,
        "Authorization_RequestDenied",
    );
    let fab_sp = t
        .get(
            &format!("/graph/v1.0/servicePrincipals/{FABRIKAM_SPOT_SP_ID}"),
            &fab_admin,
        )
        .await;
    assert_eq!(fab_sp.status, 200);
    assert_graph_error(
        &t.post(
            &format!("/graph/v1.0/servicePrincipals/{}/appRoleAssignedTo", fab_graph.body["id"].as_str().unwrap()),
            &fab_admin,
            json!({"principalId": FABRIKAM_SPOT_SP_ID, "resourceId": fab_graph.body["id"], "appRoleId": GRAPH_APPLICATION_READWRITE_ALL}),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    );
    // Bad requests: a role Graph does not define, a body naming another resource than the URL.
    let mut bad_role = grant.clone();
    bad_role["appRoleId"] = json!(new_guid());
    let r = t.post(&assigned_to, &admin, bad_role).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(MICROSOFT_GRAPH_APP_ID)
    );
    let mut other = grant.clone();
    other["resourceId"] = json!(sp_id);
    assert_graph_error(
        &t.post(&assigned_to, &admin, other).await,
        400,
        "Request_BadRequest",
    );

    let created = t.post(&assigned_to, &admin, grant.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    for (k, v) in [
        ("principalId", sp_id.as_str()),
        ("resourceId", graph_id.as_str()),
        ("appRoleId", GRAPH_APPLICATION_READWRITE_OWNEDBY),
        ("principalType", "ServicePrincipal"),
        ("principalDisplayName", "granted-later"),
        ("resourceDisplayName", "Microsoft Graph"),
    ] {
        assert_eq!(created.body[k], v, "{k}: {}", created.body);
    }
    assert!(created.body["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(created.body["createdDateTime"].is_string());
    assert!(
        created.body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/appRoleAssignedTo/$entity")
    );
    // Granted twice: refused, nothing added.
    let again = t.post(&assigned_to, &admin, grant.clone()).await;
    assert_graph_error(&again, 400, "Request_BadRequest");
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    // Both sides list it.
    let held = t
        .get(
            &format!("/graph/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"),
            &admin,
        )
        .await;
    assert_eq!(held.status, 200, "{}", held.body);
    assert_eq!(held.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(held.body["value"][0]["id"], created.body["id"]);
    let to = t
        .get(
            &format!("{assigned_to}?$filter=principalId eq '{sp_id}'"),
            &admin,
        )
        .await;
    assert_eq!(to.body["value"].as_array().unwrap().len(), 1, "{}", to.body);

    // A token issued after the grant carries it, and the principal may now register apps.
    let sp_token = t
        .cc_token(CONTOSO_TENANT_ID, &app_id, &secret, "graph")
        .await;
    let claims: Value =
        serde_json::from_slice(&b64url_decode(sp_token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["roles"], json!(["Application.ReadWrite.OwnedBy"]));
    let made = t
        .post(
            "/graph/v1.0/applications",
            &sp_token,
            json!({"displayName": "made by the sp"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    // Revoked: DELETE …/appRoleAssignedTo/{id} → 204; then 404; the right is gone.
    let aid = created.body["id"].as_str().unwrap();
    assert_eq!(
        t.delete(&format!("{assigned_to}/{aid}"), &admin)
            .await
            .status,
        204
    );
    assert_graph_error(
        &t.delete(&format!("{assigned_to}/{aid}"), &admin).await,
        404,
        "Request_ResourceNotFound",
    );
    let sp_token = t
        .cc_token(CONTOSO_TENANT_ID, &app_id, &secret, "graph")
        .await;
    assert_graph_error(
        &t.post(
            "/graph/v1.0/applications",
            &sp_token,
            json!({"displayName": "y"}),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    );
    // The principal side works too (`…/{principal}/appRoleAssignments`, principalId = the URL's).
    let via_principal = t
        .post(
            &format!("/graph/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"),
            &admin,
            grant.clone(),
        )
        .await;
    assert_eq!(via_principal.status, 201, "{}", via_principal.body);
    let aid = via_principal.body["id"].as_str().unwrap();
    assert_eq!(
        t.delete(
            &format!("/graph/v1.0/servicePrincipals/{sp_id}/appRoleAssignments/{aid}"),
            &admin
        )
        .await
        .status,
        204
    );

    // Directory roles: Application Administrator for the service principal (tenant scope).
    let ras = "/graph/v1.0/roleManagement/directory/roleAssignments";
    let body = json!({"@odata.type": "#microsoft.graph.unifiedRoleAssignment", "roleDefinitionId": DIRECTORY_ROLE_APPLICATION_ADMIN, "principalId": sp_id, "directoryScopeId": "/"});
    assert_graph_error(
        &t.post(ras, &limited, body.clone()).await,
        403,
        "Authorization_RequestDenied",
    );
    assert_graph_error(
        &t.post(
            ras,
            &admin,
            json!({"roleDefinitionId": DIRECTORY_ROLE_APPLICATION_ADMIN, "directoryScopeId": "/"}),
        )
        .await,
        400,
        "Request_BadRequest",
    );
    let ra = t.post(ras, &admin, body.clone()).await;
    assert_eq!(ra.status, 201, "{}", ra.body);
    assert_eq!(
        ra.body["roleDefinitionId"],
        DIRECTORY_ROLE_APPLICATION_ADMIN
    );
    assert_eq!(ra.body["principalId"], sp_id.as_str());
    assert_eq!(ra.body["directoryScopeId"], "/");
    assert!(
        ra.body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#roleManagement/directory/roleAssignments/$entity")
    );
    assert_graph_error(
        &t.post(ras, &admin, body.clone()).await,
        400,
        "Request_BadRequest",
    );
    let listed = t
        .get(&format!("{ras}?$filter=principalId eq '{sp_id}'"), &admin)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    let rid = ra.body["id"].as_str().unwrap();
    assert_eq!(t.get(&format!("{ras}/{rid}"), &admin).await.body["id"], rid);
    let roles = t
        .get(
            &format!("/graph/v1.0/servicePrincipals/{sp_id}/transitiveMemberOf/microsoft.graph.directoryRole"),
            &admin,
        )
        .await;
    assert_eq!(
        roles.body["value"][0]["roleTemplateId"],
        DIRECTORY_ROLE_APPLICATION_ADMIN
    );
    // The role lets it register apps, with no app role.
    let sp_token = t
        .cc_token(CONTOSO_TENANT_ID, &app_id, &secret, "graph")
        .await;
    let made = t
        .post(
            "/graph/v1.0/applications",
            &sp_token,
            json!({"displayName": "by directory role"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    // An app without RoleManagement.Read.Directory cannot list them.
    assert_graph_error(
        &t.get(ras, &limited).await,
        403,
        "Authorization_RequestDenied",
    );
    assert_eq!(t.delete(&format!("{ras}/{rid}"), &admin).await.status, 204);
    assert_graph_error(
        &t.get(&format!("{ras}/{rid}"), &admin).await,
        404,
        "Request_ResourceNotFound",
    );
    assert_graph_error(
        &t.post(
            "/graph/v1.0/applications",
            &sp_token,
            json!({"displayName": "z"}),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    );
    // Microsoft Graph's own service principal is not the tenant's to change.
    let ci = t.operator("graph").await;
    assert_graph_error(
        &t.delete(&format!("/graph/v1.0/servicePrincipals/{graph_id}"), &ci)
            .await,
        403,
        "Authorization_RequestDenied",
    );
    t.sim.shutdown().await;
}
