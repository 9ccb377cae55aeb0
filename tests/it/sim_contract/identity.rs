//! The simulated identity platform: the device-code flow (pending, slow_down, declined, expired,
//! refresh), client credentials, tokens Graph and ARM refuse, OIDC discovery and the JWKS with the
//! documented claims, and the managed-identity endpoint.

use super::*;

fn assert_oauth_error(r: &R, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"], error, "{}", r.body);
    for k in [
        "error_description",
        "timestamp",
        "trace_id",
        "correlation_id",
    ] {
        assert!(r.body[k].is_string(), "{k} missing in {}", r.body);
    }
    assert!(r.body["error_codes"].is_array());
}

#[tokio::test]
async fn device_code_flow_pending_slow_down_then_tokens_and_refresh() {
    let t = start(SimOpts {
        approve_after: 300,
        ..SimOpts::default()
    })
    .await;
    let arm_scope = format!("{} offline_access openid profile", t.scope("arm"));
    let dc = t
        .form(
            "organizations",
            "devicecode",
            &[("client_id", AZURE_CLI_CLIENT_ID), ("scope", &arm_scope)],
        )
        .await;
    assert_eq!(dc.status, 200);
    for k in ["device_code", "user_code", "verification_uri", "message"] {
        assert!(dc.body[k].is_string(), "{k}");
    }
    assert_eq!(dc.body["expires_in"], 900);
    let code = dc.body["device_code"].as_str().unwrap().to_string();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", AZURE_CLI_CLIENT_ID),
        ("device_code", code.as_str()),
    ];
    assert_oauth_error(
        &t.form("organizations", "token", &poll).await,
        400,
        "authorization_pending",
    );
    assert_oauth_error(
        &t.form("organizations", "token", &poll).await,
        400,
        "slow_down",
    );
    let mut tokens = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = t.form("organizations", "token", &poll).await;
        if r.status == 200 {
            tokens = Some(r.body);
            break;
        }
        assert_eq!(r.body["error"], "authorization_pending");
    }
    let tokens = tokens.expect("device code approved");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(id_token.split('.').count(), 3);
    // The code is redeemed once.
    assert_oauth_error(
        &t.form("organizations", "token", &poll).await,
        400,
        "invalid_grant",
    );
    let bad = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", AZURE_CLI_CLIENT_ID),
        ("device_code", "nope"),
    ];
    assert_oauth_error(
        &t.form("organizations", "token", &bad).await,
        400,
        "bad_verification_code",
    );

    // The home tenant's token sees Contoso's subscriptions and both tenants.
    let arm = tokens["access_token"].as_str().unwrap();
    let tenants = t.get("/arm/tenants?api-version=2022-12-01", arm).await;
    assert_eq!(tenants.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        tenants.body["value"][0]["id"],
        format!("/tenants/{CONTOSO_TENANT_ID}")
    );

    // Refresh into Fabrikam: new refresh token, Fabrikam's subscriptions only.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let scope = t.scope("arm");
    let r = t
        .form(
            FABRIKAM_TENANT_ID,
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("refresh_token", rt),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.body["refresh_token"], rt);
    let fab = r.body["access_token"].as_str().unwrap();
    let subs = t
        .get("/arm/subscriptions?api-version=2022-12-01", fab)
        .await;
    let ids: Vec<&str> = subs.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [SUB_FABRIKAM_PROD, SUB_FABRIKAM_STAGING]);
    assert!(
        subs.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["tenantId"] == FABRIKAM_TENANT_ID)
    );

    // Graph token by refresh; an unknown refresh token is invalid_grant.
    let gscope = format!("{} offline_access", t.scope("graph"));
    let g = t
        .form(
            "organizations",
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("refresh_token", rt),
                ("scope", &gscope),
            ],
        )
        .await;
    assert_eq!(g.status, 200);
    let org = t
        .send(
            "GET",
            "/graph/v1.0/organization",
            g.body["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(org.body["value"][0]["id"], CONTOSO_TENANT_ID);
    let bad = t
        .form(
            "organizations",
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("refresh_token", "x"),
                ("scope", &gscope),
            ],
        )
        .await;
    assert_oauth_error(&bad, 400, "invalid_grant");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn device_code_declined_and_expired() {
    let t = start(SimOpts {
        approve_after: 60_000,
        ..SimOpts::default()
    })
    .await;
    let scope = t.scope("arm");
    for (action, expected) in [
        ("decline", "authorization_declined"),
        ("expire", "expired_token"),
    ] {
        let dc = t
            .form(
                CONTOSO_TENANT_ID,
                "devicecode",
                &[("client_id", AZURE_CLI_CLIENT_ID), ("scope", &scope)],
            )
            .await;
        let user_code = dc.body["user_code"].as_str().unwrap();
        let r = t
            .send(
                "POST",
                &format!("/inspect/device/{action}?user_code={user_code}"),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 204);
        let code = dc.body["device_code"].as_str().unwrap();
        let r = t
            .form(
                CONTOSO_TENANT_ID,
                "token",
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", AZURE_CLI_CLIENT_ID),
                    ("device_code", code),
                ],
            )
            .await;
        assert_oauth_error(&r, 400, expected);
    }
    let r = t
        .form(
            "00000000-0000-4000-8000-000000000000",
            "devicecode",
            &[("client_id", AZURE_CLI_CLIENT_ID), ("scope", &scope)],
        )
        .await;
    assert_oauth_error(&r, 400, "invalid_request");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn client_credentials_wrong_unknown_and_expired_secrets() {
    let t = start(fast()).await;
    let scope = t.scope("graph");
    let wrong = t
        .form(
            CONTOSO_TENANT_ID,
            "token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CI_OPERATOR_CLIENT_ID),
                ("client_secret", "nope"),
                ("scope", &scope),
            ],
        )
        .await;
    assert_oauth_error(&wrong, 401, "invalid_client");
    assert_eq!(wrong.body["error_codes"], json!([7000215]));
    assert!(
        wrong.body["error_description"]
            .as_str()
            .unwrap()
            .contains("Invalid client secret provided")
    );
    // Right secret, wrong tenant: the app is not there.
    let other = t
        .form(
            FABRIKAM_TENANT_ID,
            "token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CI_OPERATOR_CLIENT_ID),
                ("client_secret", CI_OPERATOR_SECRET),
                ("scope", &scope),
            ],
        )
        .await;
    assert_oauth_error(&other, 400, "unauthorized_client");
    // An expired secret is refused.
    let g = t.operator("graph").await;
    let (app_id, oid, _, _) = app_with_sp(&t, &g, "expiring").await;
    let pw = t.post(&format!("/graph/v1.0/applications/{oid}/addPassword"), &g, json!({"passwordCredential": {"startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2020-06-01T00:00:00Z"}}))
        .await;
    assert_eq!(pw.status, 200);
    let old = pw.body["secretText"].as_str().unwrap();
    let r = t
        .form(
            CONTOSO_TENANT_ID,
            "token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app_id),
                ("client_secret", old),
                ("scope", &scope),
            ],
        )
        .await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert_eq!(r.body["error_codes"], json!([7000222]));
    t.sim.shutdown().await;
}

#[tokio::test]
async fn graph_and_arm_refuse_missing_or_wrong_tokens() {
    let t = start(fast()).await;
    assert_graph_error(
        &t.send("GET", "/graph/v1.0/applications", None, None).await,
        401,
        "InvalidAuthenticationToken",
    );
    let arm = t.operator("arm").await;
    assert_graph_error(
        &t.get("/graph/v1.0/applications", &arm).await,
        401,
        "InvalidAuthenticationToken",
    );
    assert_arm_error(
        &t.send(
            "GET",
            "/arm/subscriptions?api-version=2022-12-01",
            None,
            None,
        )
        .await,
        401,
        "InvalidAuthenticationToken",
    );
    let g = t.operator("graph").await;
    assert_arm_error(
        &t.get("/arm/subscriptions?api-version=2022-12-01", &g).await,
        401,
        "InvalidAuthenticationToken",
    );
    // A Contoso token on a Fabrikam subscription.
    let r = t
        .get(
            &format!("/arm/subscriptions/{SUB_FABRIKAM_PROD}?api-version=2022-12-01"),
            &arm,
        )
        .await;
    assert_arm_error(&r, 401, "InvalidAuthenticationTokenTenant");
    assert_arm_error(
        &t.get("/arm/subscriptions", &arm).await,
        400,
        "MissingApiVersionParameter",
    );
    let r = t
        .get(
            &format!("/arm/subscriptions/{}?api-version=2022-12-01", new_guid()),
            &arm,
        )
        .await;
    assert_arm_error(&r, 404, "SubscriptionNotFound");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn expired_access_tokens_are_refused() {
    // `exp` is in whole seconds: a lifetime of 3 s is more than 2 s from the token's issue,
    // time enough for the first call even on a loaded machine (with 1 s, a token issued late
    // in a second could expire before it was used).
    let t = start(SimOpts {
        token_lifetime: 3,
        ..fast()
    })
    .await;
    let g = t.operator("graph").await;
    assert_eq!(t.get("/graph/v1.0/organization", &g).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = t.get("/graph/v1.0/organization", &g).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    t.sim.shutdown().await;
}

/// The claims of a JWT, after checking its RS256 signature against the JWKS at `jwks_uri`.
fn verified_claims(jwks: &Value, token: &str) -> Value {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    let b64 = b64url_decode;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three parts");
    let header: Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["use"].as_str()),
        (Some("RSA"), Some("sig"))
    );
    let n = rsa::BigUint::from_bytes_be(&b64(jwk["n"].as_str().unwrap()));
    let e = rsa::BigUint::from_bytes_be(&b64(jwk["e"].as_str().unwrap()));
    let key = VerifyingKey::<rsa::sha2::Sha256>::new(rsa::RsaPublicKey::new(n, e).unwrap());
    let sig = Signature::try_from(b64(parts[2]).as_slice()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies with the published key");
    serde_json::from_slice(&b64(parts[1])).unwrap()
}

#[tokio::test]
async fn oidc_discovery_jwks_and_documented_token_claims() {
    let t = start(fast()).await;
    let login = t.sim.endpoints.login.clone();
    // Discovery for a tenant id, a domain, organizations and common (v2-protocols-oidc).
    let anon = |path: String| {
        let url = format!("{login}{path}");
        let http = t.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, d) = anon(format!(
        "/{CONTOSO_TENANT_ID}/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["issuer"], format!("{login}/{CONTOSO_TENANT_ID}/v2.0"));
    for (k, p) in [
        ("token_endpoint", "oauth2/v2.0/token"),
        ("authorization_endpoint", "oauth2/v2.0/authorize"),
        ("device_authorization_endpoint", "oauth2/v2.0/devicecode"),
        ("end_session_endpoint", "oauth2/v2.0/logout"),
        ("jwks_uri", "discovery/v2.0/keys"),
    ] {
        assert_eq!(d[k], format!("{login}/{CONTOSO_TENANT_ID}/{p}"), "{k}");
    }
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d["subject_types_supported"], json!(["pairwise"]));
    assert!(
        d["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("offline_access"))
    );
    let (_, by_domain) = anon(format!(
        "/{CONTOSO_DOMAIN}/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(by_domain["issuer"], d["issuer"]);
    for word in ["organizations", "common"] {
        let (status, w) = anon(format!("/{word}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(status, 200);
        assert_eq!(w["issuer"], format!("{login}/{{tenantid}}/v2.0"));
        assert_eq!(
            w["token_endpoint"],
            format!("{login}/{word}/oauth2/v2.0/token")
        );
    }
    let (status, unknown) =
        anon("/nope.example/v2.0/.well-known/openid-configuration".into()).await;
    assert_eq!(status, 400);
    assert_eq!(unknown["error_codes"], json!([90002]));
    let (status, jwks) = anon(format!("/{CONTOSO_TENANT_ID}/discovery/v2.0/keys")).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["e"], "AQAB");

    // A user's tokens: device code with client_info=1.
    let arm_scope = format!("{} offline_access openid profile", t.scope("arm"));
    let dc = t
        .form(
            "organizations",
            "devicecode",
            &[("client_id", AZURE_CLI_CLIENT_ID), ("scope", &arm_scope)],
        )
        .await;
    let code = dc.body["device_code"].as_str().unwrap().to_string();
    let r = t
        .form(
            "organizations",
            "token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("device_code", &code),
                ("client_info", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = verified_claims(&jwks, r.body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], AZURE_CLI_CLIENT_ID);
    assert_eq!(id["iss"], format!("{login}/{CONTOSO_TENANT_ID}/v2.0"));
    assert_eq!(id["tid"], CONTOSO_TENANT_ID);
    assert_eq!(id["oid"], OPERATOR_USER_ID);
    assert_eq!(id["preferred_username"], OPERATOR_UPN);
    assert_eq!(id["ver"], "2.0");
    assert!(
        id["sub"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s != OPERATOR_USER_ID)
    );
    for k in ["iat", "nbf", "exp"] {
        assert!(id[k].as_i64().unwrap().abs_diff(now) <= 3700, "{k}");
    }
    let at = verified_claims(&jwks, r.body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], t.sim.endpoints.arm);
    assert_eq!(
        at["iss"],
        format!("https://sts.windows.net/{CONTOSO_TENANT_ID}/")
    );
    assert_eq!(
        (at["tid"].clone(), at["oid"].clone()),
        (json!(CONTOSO_TENANT_ID), json!(OPERATOR_USER_ID))
    );
    assert_eq!(at["appid"], AZURE_CLI_CLIENT_ID);
    assert_eq!(at["ver"], "1.0");
    assert_eq!(at["idtyp"], "user");
    assert_eq!(at["upn"], OPERATOR_UPN);
    assert_eq!(at["scp"], "user_impersonation");
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        3600
    );
    let info: Value =
        serde_json::from_slice(&b64url_decode(r.body["client_info"].as_str().unwrap())).unwrap();
    assert_eq!(
        info,
        json!({"uid": OPERATOR_USER_ID, "utid": CONTOSO_TENANT_ID})
    );
    // A refresh for Fabrikam: bound to Fabrikam; ARM refuses it for a Contoso subscription.
    // The audience may be named with the Azure CLI's trailing slash (`{arm}/` + `/.default`).
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let fab = t
        .form(
            FABRIKAM_TENANT_ID,
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("refresh_token", &rt),
                (
                    "scope",
                    &format!(
                        "{}//.default offline_access openid profile",
                        t.sim.endpoints.arm
                    ),
                ),
            ],
        )
        .await;
    assert_eq!(fab.status, 200, "{}", fab.body);
    assert!(fab.body.get("client_info").is_none(), "only when asked");
    let fab_at = fab.body["access_token"].as_str().unwrap();
    let fab_claims = verified_claims(&jwks, fab_at);
    assert_eq!(fab_claims["tid"], FABRIKAM_TENANT_ID);
    assert_eq!(fab_claims["aud"], format!("{}/", t.sim.endpoints.arm));
    // The operator is a guest in Fabrikam: `idp` names the home tenant (absent at home).
    assert_eq!(
        fab_claims["idp"],
        format!("https://sts.windows.net/{CONTOSO_TENANT_ID}/")
    );
    assert!(at.get("idp").is_none());
    // …and a guest is its own user object there: its own oid (and so its own pairwise sub),
    // the home sign-in name as unique_name/email, no upn (external-id/user-token).
    assert_eq!(fab_claims["oid"], OPERATOR_FABRIKAM_GUEST_ID);
    assert_ne!(fab_claims["sub"], at["sub"]);
    assert!(fab_claims.get("upn").is_none(), "{fab_claims}");
    assert_eq!(fab_claims["unique_name"], OPERATOR_UPN);
    let fab_id = verified_claims(&jwks, fab.body["id_token"].as_str().unwrap());
    assert_eq!(fab_id["oid"], OPERATOR_FABRIKAM_GUEST_ID);
    assert_eq!(fab_id["tid"], FABRIKAM_TENANT_ID);
    assert_eq!(fab_id["preferred_username"], OPERATOR_UPN);
    // ARM knows the guest by its own id: its Owner assignment in Fabrikam is the guest's.
    let mine = t
        .get(
            &format!(
                "/arm/subscriptions/{SUB_FABRIKAM_PROD}/providers/Microsoft.Authorization/roleAssignments?{ARM_V}&$filter=principalId eq '{OPERATOR_FABRIKAM_GUEST_ID}'"
            ),
            fab_at,
        )
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        mine.body["value"].as_array().unwrap().len(),
        1,
        "{}",
        mine.body
    );
    let home_id_there = t
        .get(
            &format!(
                "/arm/subscriptions/{SUB_FABRIKAM_PROD}/providers/Microsoft.Authorization/roleAssignments?{ARM_V}&$filter=principalId eq '{OPERATOR_USER_ID}'"
            ),
            fab_at,
        )
        .await;
    assert_eq!(home_id_there.body["value"], json!([]));
    let subs = t
        .get("/arm/subscriptions?api-version=2022-12-01", fab_at)
        .await;
    assert!(
        has(&subs.body["value"], "subscriptionId", SUB_FABRIKAM_PROD),
        "{}",
        subs.body
    );
    let other = t
        .get(
            &format!("/arm/subscriptions/{SUB_CONTOSO_PROD}?api-version=2022-12-01"),
            fab_at,
        )
        .await;
    assert_arm_error(&other, 401, "InvalidAuthenticationTokenTenant");

    // An app's token: no upn/scp, idtyp app, sub = oid = the service principal.
    let g = t.operator("graph").await;
    let app = verified_claims(&jwks, &g);
    assert_eq!(app["idtyp"], "app");
    assert_eq!(app["oid"], CI_OPERATOR_SP_ID);
    assert_eq!(app["sub"], CI_OPERATOR_SP_ID);
    assert_eq!(app["appid"], CI_OPERATOR_CLIENT_ID);
    assert_eq!(app["aud"], t.sim.endpoints.graph);
    assert_eq!(app["roles"], json!(["Application.ReadWrite.All"]));
    assert!(app.get("upn").is_none() && app.get("scp").is_none());

    // Graph and ARM check the signature and the audience: a re-signed or edited token fails.
    let parts: Vec<&str> = g.split('.').collect();
    let forged_payload = {
        let mut c = app.clone();
        c["oid"] = json!(OPERATOR_USER_ID);
        b64url_encode(c.to_string().as_bytes())
    };
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_graph_error(
        &t.get("/graph/v1.0/applications", &forged).await,
        401,
        "InvalidAuthenticationToken",
    );
    assert_arm_error(
        &t.get("/arm/subscriptions?api-version=2022-12-01", &g).await,
        401,
        "InvalidAuthenticationToken",
    );
    assert_eq!(t.get("/graph/v1.0/applications", &g).await.status, 200);
}

#[tokio::test]
async fn managed_identity_endpoint_issues_tokens_for_the_seeded_identity() {
    let t = start(fast()).await;
    let url = format!("{}/msi/token", t.sim.endpoints.login);
    let get = |query: Vec<(&'static str, String)>, header: Option<&'static str>| {
        let mut req = t.http.get(&url).query(&query);
        if let Some(h) = header {
            req = req.header("X-IDENTITY-HEADER", h);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let arm = format!("{}/", t.sim.endpoints.arm);
    let q = |extra: &[(&'static str, &str)]| {
        let mut v = vec![
            ("api-version", "2019-08-01".to_string()),
            ("resource", arm.clone()),
        ];
        v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
        v
    };
    assert_eq!(get(q(&[]), None).await.0, 401);
    assert_eq!(get(q(&[]), Some("wrong")).await.0, 401);
    let mut bad_version = q(&[]);
    bad_version[0].1 = "2017-09-01".into();
    assert_eq!(get(bad_version, Some(MANAGED_IDENTITY_HEADER)).await.0, 400);
    let (status, _) = get(
        q(&[("client_id", CI_OPERATOR_CLIENT_ID)]),
        Some(MANAGED_IDENTITY_HEADER),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = get(
        q(&[("client_id", MANAGED_IDENTITY_CLIENT_ID)]),
        Some(MANAGED_IDENTITY_HEADER),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], arm.as_str());
    assert_eq!(body["client_id"], MANAGED_IDENTITY_CLIENT_ID);
    let expires: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(expires > time::OffsetDateTime::now_utc().unix_timestamp());
    let token = body["access_token"].as_str().unwrap();
    // The identity is Owner on Contoso Dev only.
    let dev = t
        .get(
            &format!("/arm/subscriptions/{SUB_CONTOSO_DEV}/providers/Microsoft.Authorization/permissions?{ARM_V}"),
            token,
        )
        .await;
    assert_eq!(dev.status, 200, "{}", dev.body);
    assert_eq!(dev.body["value"][0]["actions"], json!(["*"]));
    let st = t.sim.state();
    assert!(has(&st["servicePrincipals"], "id", MANAGED_IDENTITY_SP_ID));
    // A Graph token for it may register applications.
    let (_, g) = get(
        vec![
            ("api-version", "2019-08-01".into()),
            ("resource", t.sim.endpoints.graph.clone()),
        ],
        Some(MANAGED_IDENTITY_HEADER),
    )
    .await;
    let g = g["access_token"].as_str().unwrap().to_string();
    let app = t
        .post(
            "/graph/v1.0/applications",
            &g,
            json!({"displayName": "made by a managed identity"}),
        )
        .await;
    assert_eq!(app.status, 201, "{}", app.body);
    let sp = t
        .get(
            &format!("/graph/v1.0/servicePrincipals/{MANAGED_IDENTITY_SP_ID}"),
            &g,
        )
        .await;
    assert_eq!(sp.body["servicePrincipalType"], "ManagedIdentity");
}
