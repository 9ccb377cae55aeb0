//! The simulated Spot API: accounts and Azure credentials (connect validates like the real one),
//! an expired secret, a scoped token.

use super::*;

#[tokio::test]
async fn spot_accounts_and_credentials_contract() {
    let t = start(fast()).await;
    let r = t.get("/spot/setup/account", "wrong").await;
    assert_spot_error(&r, 401, spot_codes::UNAUTHORIZED);
    let list = t.spot("GET", "/setup/account", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["response"]["kind"], "spotinst:setup:account");
    assert_eq!(list.body["response"]["count"], 2);
    assert_eq!(list.body["request"]["method"], "GET");
    assert_eq!(list.body["request"]["url"], "/setup/account");
    let item = &list.body["response"]["items"][1];
    for k in [
        "accountId",
        "name",
        "organizationId",
        "providerExternalId",
        "cloudProvider",
        "createdAt",
    ] {
        assert!(item[k].is_string(), "{k} in {item}");
    }
    let by_sub = t
        .spot(
            "GET",
            &format!("/setup/account?cloudAccountId={SUB_FABRIKAM_PROD}"),
            None,
        )
        .await;
    assert_eq!(
        by_sub.body["response"]["items"][0]["accountId"],
        SPOT_ACCOUNT_CONNECTED
    );
    assert_eq!(by_sub.body["response"]["count"], 1);

    assert_spot_error(
        &t.spot(
            "POST",
            "/setup/account",
            Some(json!({"account": {"name": "123"}})),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    );
    let created = t
        .spot(
            "POST",
            "/setup/account",
            Some(json!({"account": {"name": "Contoso Dev"}})),
        )
        .await;
    assert_eq!(created.status, 200);
    let acct = created.body["response"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(acct.starts_with("act-") && acct.len() == 12, "{acct}");
    assert_eq!(
        created.body["response"]["items"][0]["organizationId"],
        SPOT_ORG_ID
    );

    // Set credentials: validation of the body, of the account, of the credentials.
    let g = t.operator("graph").await;
    let arm = t.operator("arm").await;
    let (app_id, _, sp_id, secret) = app_with_sp(&t, &g, "Spot.io-contoso-dev").await;
    let set = format!("/azure/setup/credentials?accountId={acct}");
    let mut partial = creds(&app_id, &secret, SUB_CONTOSO_DEV);
    partial.as_object_mut().unwrap().remove("expirationDate");
    let r = t.spot("POST", &set, Some(partial)).await;
    assert_spot_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["response"]["errors"][0]["field"], "expirationDate");
    assert_spot_error(
        &t.spot(
            "POST",
            "/azure/setup/credentials?accountId=act-00000000",
            Some(creds(&app_id, &secret, SUB_CONTOSO_DEV)),
        )
        .await,
        400,
        spot_codes::ACCOUNT_NOT_FOUND,
    );
    assert_spot_error(
        &t.spot(
            "POST",
            "/azure/setup/credentials",
            Some(creds(&app_id, &secret, SUB_CONTOSO_DEV)),
        )
        .await,
        400,
        spot_codes::ACCOUNT_NOT_FOUND,
    );
    let wrong = t
        .spot(
            "POST",
            &set,
            Some(creds(&app_id, "not-the-secret", SUB_CONTOSO_DEV)),
        )
        .await;
    assert_spot_error(&wrong, 400, spot_codes::INVALID_CREDENTIALS);
    assert!(
        wrong.body["response"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("AADSTS7000215")
    );
    assert_spot_error(
        &t.spot("POST", &set, Some(creds(&app_id, &secret, SUB_CONTOSO_DEV)))
            .await,
        400,
        spot_codes::MISSING_PERMISSIONS,
    );

    // A role with Spot's actions, assigned to the SP: connect succeeds.
    let role = new_guid();
    let rd = t
        .put(
            &rd_path(SUB_CONTOSO_DEV, &role),
            &arm,
            spot_role(SUB_CONTOSO_DEV, "Spot.io Custom Role"),
        )
        .await;
    assert_eq!(rd.status, 201, "{}", rd.body);
    let ra = json!({"properties": {"roleDefinitionId": rd.body["id"], "principalId": sp_id, "principalType": "ServicePrincipal"}});
    assert_eq!(
        t.put(&ra_path(SUB_CONTOSO_DEV, &new_guid()), &arm, ra)
            .await
            .status,
        201
    );
    let v = t
        .spot(
            "POST",
            &format!("/azure/setup/credentials/validation?accountId={acct}"),
            Some(creds(&app_id, &secret, SUB_CONTOSO_DEV)),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.body["response"]["status"]["code"], 200);
    let ok = t
        .spot("POST", &set, Some(creds(&app_id, &secret, SUB_CONTOSO_DEV)))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let got = t.spot("GET", &set, None).await;
    assert_eq!(got.body["response"]["kind"], "spotinst:azure:credentials");
    let c = &got.body["response"]["items"][0];
    assert_eq!(c["clientId"], app_id.as_str());
    assert_eq!(c["subscriptionId"], SUB_CONTOSO_DEV);
    assert_eq!(c["expirationDate"], "2027-06-01T00:00:00.000Z");
    let masked = c["clientSecret"].as_str().unwrap();
    assert!(
        masked.starts_with(&secret[..3]) && masked[3..].chars().all(|ch| ch == '*'),
        "{masked}"
    );
    let listed = t
        .spot(
            "GET",
            &format!("/setup/account?cloudAccountId={SUB_CONTOSO_DEV}"),
            None,
        )
        .await;
    assert_eq!(
        listed.body["response"]["items"][0]["accountId"],
        acct.as_str()
    );
    assert_eq!(
        listed.body["response"]["items"][0]["cloudProvider"],
        "AZURE"
    );
    let state = t.sim.state();
    let stored = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == acct.as_str())
        .unwrap();
    assert_eq!(stored["credentials"]["clientSecret"], secret.as_str());

    // Delete the account.
    assert_eq!(
        t.spot("DELETE", &format!("/setup/account/{acct}"), None)
            .await
            .status,
        200
    );
    assert_spot_error(
        &t.spot("DELETE", &format!("/setup/account/{acct}"), None)
            .await,
        400,
        spot_codes::ACCOUNT_NOT_FOUND,
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn spot_refuses_an_expired_secret() {
    let t = start(fast()).await;
    let g = t.operator("graph").await;
    let (app_id, oid, _, _) = app_with_sp(&t, &g, "expired").await;
    let pw = t.post(&format!("/graph/v1.0/applications/{oid}/addPassword"), &g, json!({"passwordCredential": {"startDateTime": "2021-01-01T00:00:00Z", "endDateTime": "2022-01-01T00:00:00Z"}}))
        .await;
    let old = pw.body["secretText"].as_str().unwrap();
    let r = t
        .spot(
            "POST",
            &format!("/azure/setup/credentials?accountId={SPOT_ACCOUNT_UNCONNECTED}"),
            Some(creds(&app_id, old, SUB_CONTOSO_PROD)),
        )
        .await;
    assert_spot_error(&r, 400, spot_codes::EXPIRED_SECRET);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn a_scoped_spot_token_sees_and_changes_only_its_accounts() {
    let t = start(fast()).await;
    let token = t.sim.scoped_spot_token(&[SPOT_ACCOUNT_UNCONNECTED]);
    assert_ne!(token, SPOT_TOKEN);
    // The organization's list needs an Organization Admin (spot-api.md §2).
    assert_spot_error(
        &t.get("/spot/setup/account", &token).await,
        403,
        spot_codes::FORBIDDEN,
    );
    // By subscription: only its own accounts.
    let by_sub = t
        .get(
            &format!("/spot/setup/account?cloudAccountId={SUB_FABRIKAM_PROD}"),
            &token,
        )
        .await;
    assert_eq!(by_sub.status, 200, "{}", by_sub.body);
    assert_eq!(by_sub.body["response"]["count"], 0);
    let admin = t
        .spot(
            "GET",
            &format!("/setup/account?cloudAccountId={SUB_FABRIKAM_PROD}"),
            None,
        )
        .await;
    assert_eq!(admin.body["response"]["count"], 1);
    // Another account's credentials or the account itself: 403.
    for path in [
        format!("/spot/azure/setup/credentials?accountId={SPOT_ACCOUNT_CONNECTED}"),
        format!("/spot/setup/account/{SPOT_ACCOUNT_CONNECTED}"),
    ] {
        assert_spot_error(&t.get(&path, &token).await, 403, spot_codes::FORBIDDEN);
    }
    let own = t
        .get(
            &format!("/spot/azure/setup/credentials?accountId={SPOT_ACCOUNT_UNCONNECTED}"),
            &token,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    // An account it creates joins its view; deleting is for admins only.
    let created = t
        .post(
            "/spot/setup/account",
            &token,
            json!({"account": {"name": "scoped"}}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["response"]["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        t.get(&format!("/spot/setup/account/{id}"), &token)
            .await
            .status,
        200
    );
    assert_spot_error(
        &t.delete(&format!("/spot/setup/account/{id}"), &token).await,
        403,
        spot_codes::FORBIDDEN,
    );
    // The same over the inspect route.
    let r = t
        .send(
            "POST",
            &format!("/inspect/spot/tokens?accounts={SPOT_ACCOUNT_CONNECTED}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let other = r.body["token"].as_str().unwrap();
    assert_eq!(
        t.get(
            &format!("/spot/setup/account/{SPOT_ACCOUNT_CONNECTED}"),
            other
        )
        .await
        .status,
        200
    );
    assert_eq!(t.get("/spot/setup/account", "wrong").await.status, 401);
}
