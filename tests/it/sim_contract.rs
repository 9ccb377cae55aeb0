//! Contract tests of the simulated clouds: documented requests get the documented statuses and
//! bodies; every named error case is reachable and has its service's shape.

use serde_json::{Value, json};
use spot_connect::error::spot_codes;
use spot_connect::sim::SimOpts;
use spot_connect::sim::{self, SimHandle, seed::*};
use std::time::Duration;

pub(crate) struct T {
    pub(crate) sim: SimHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub(crate) struct R {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

pub(crate) async fn start(opts: SimOpts) -> T {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&opts, dir.path()).await.unwrap();
    let ca = std::fs::read(&sim.endpoints.ca_cert).unwrap();
    let http = reqwest::Client::builder()
        .https_only(true)
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    T {
        sim,
        http,
        _dir: dir,
    }
}

pub(crate) fn fast() -> SimOpts {
    SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    }
}

const ARM_V: &str = "api-version=2022-04-01";

impl T {
    /// The origin of a service (`login`, `graph`, `arm`, `spot`, `inspect`).
    fn origin(&self, service: &str) -> &str {
        let e = &self.sim.endpoints;
        match service {
            "login" => &e.login,
            "graph" => &e.graph,
            "arm" => &e.arm,
            "spot" => &e.spot,
            "inspect" => &e.inspect,
            other => panic!("no service {other}"),
        }
    }

    /// `/graph/v1.0/x` → `{graph}/v1.0/x`: the first segment of a test path names the service,
    /// whose origin replaces it. Absolute URLs pass through.
    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            return path.to_string();
        }
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (service, tail) = rest.split_once('/').unwrap_or((rest, ""));
        format!("{}/{tail}", self.origin(service))
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> R {
        self.send_with(method, path, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> R {
        let url = self.url(path);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        R {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> R {
        self.send("GET", path, Some(token), None).await
    }

    pub(crate) async fn delete(&self, path: &str, token: &str) -> R {
        self.send("DELETE", path, Some(token), None).await
    }

    pub(crate) async fn put(&self, path: &str, token: &str, body: Value) -> R {
        self.send("PUT", path, Some(token), Some(body)).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> R {
        self.send("POST", path, Some(token), Some(body)).await
    }

    async fn form(&self, tenant: &str, op: &str, form: &[(&str, &str)]) -> R {
        let resp = self
            .http
            .post(self.url(&format!("/login/{tenant}/oauth2/v2.0/{op}")))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        R {
            status,
            headers,
            body: resp.json().await.unwrap(),
        }
    }

    fn scope(&self, service: &str) -> String {
        format!("{}/.default", self.origin(service))
    }

    pub(crate) async fn cc_token(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        service: &str,
    ) -> String {
        let scope = self.scope(service);
        let r = self
            .form(
                tenant,
                "token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", &scope),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    pub(crate) async fn operator(&self, service: &str) -> String {
        self.cc_token(
            CONTOSO_TENANT_ID,
            CI_OPERATOR_CLIENT_ID,
            CI_OPERATOR_SECRET,
            service,
        )
        .await
    }

    pub(crate) async fn spot(&self, method: &str, path: &str, body: Option<Value>) -> R {
        self.send(method, &format!("/spot{path}"), Some(SPOT_TOKEN), body)
            .await
    }
}

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

fn assert_graph_error(r: &R, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string());
    let rid = r.body["error"]["innerError"]["request-id"]
        .as_str()
        .unwrap();
    assert!(r.body["error"]["innerError"]["date"].is_string());
    assert_eq!(r.headers["request-id"].to_str().unwrap(), rid);
}

pub(crate) fn assert_arm_error(r: &R, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string());
    assert!(r.headers.contains_key("x-ms-request-id"));
    assert!(r.headers.contains_key("x-ms-correlation-request-id"));
}

/// Does the array `list` hold an object whose `field` equals `value`?
fn has(list: &Value, field: &str, value: &str) -> bool {
    list.as_array().unwrap().iter().any(|o| o[field] == value)
}

/// An ARM resource at subscription scope: `id`, `type`, `name` as in the 2022-04-01 examples.
fn assert_arm_resource(r: &R, status: u16, sub: &str, kind: &str, name: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let id = format!("/subscriptions/{sub}/providers/Microsoft.Authorization/{kind}/{name}");
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["type"], format!("Microsoft.Authorization/{kind}"));
    assert_eq!(r.body["name"], name);
}

fn assert_spot_error(r: &R, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["response"]["errors"][0]["code"], code, "{}", r.body);
    assert!(r.body["response"]["errors"][0]["message"].is_string());
    assert_eq!(r.body["response"]["status"]["code"], status);
    for k in ["id", "url", "method", "timestamp"] {
        assert!(
            r.body["request"][k].is_string(),
            "request.{k} missing in {}",
            r.body
        );
    }
}

fn ra_path(sub: &str, name: &str) -> String {
    format!(
        "/arm/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{name}?{ARM_V}"
    )
}

fn rd_path(sub: &str, name: &str) -> String {
    format!(
        "/arm/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{name}?{ARM_V}"
    )
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Spot's policy as an ARM role body for `sub`.
pub(crate) fn spot_role(sub: &str, name: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(include_str!("../../assets/spot-core-role-2024-05.json")).unwrap();
    v["properties"]["roleName"] = json!(name);
    v["properties"]["assignableScopes"] = json!([format!("/subscriptions/{sub}")]);
    if let Some(m) = v["properties"].as_object_mut() {
        m.remove("isCustom");
    }
    v
}

/// App + SP + secret in Contoso; returns (appId, app object id, sp id, secret).
pub(crate) async fn app_with_sp(t: &T, g: &str, name: &str) -> (String, String, String, String) {
    let app = t
        .post(
            "/graph/v1.0/applications",
            g,
            json!({"displayName": name, "signInAudience": "AzureADMyOrg"}),
        )
        .await;
    assert_eq!(app.status, 201);
    let app_id = app.body["appId"].as_str().unwrap().to_string();
    let oid = app.body["id"].as_str().unwrap().to_string();
    let sp = t
        .post("/graph/v1.0/servicePrincipals", g, json!({"appId": app_id}))
        .await;
    assert_eq!(sp.status, 201, "{}", sp.body);
    let pw = t
        .post(
            &format!("/graph/v1.0/applications/{oid}/addPassword"),
            g,
            json!({"passwordCredential": {"displayName": "spot"}}),
        )
        .await;
    assert_eq!(pw.status, 200);
    (
        app_id,
        oid,
        sp.body["id"].as_str().unwrap().to_string(),
        pw.body["secretText"].as_str().unwrap().to_string(),
    )
}

pub(crate) fn creds(app_id: &str, secret: &str, sub: &str) -> Value {
    json!({"clientId": app_id, "clientSecret": secret, "tenantId": CONTOSO_TENANT_ID, "subscriptionId": sub, "expirationDate": "2027-06-01T00:00:00.000Z"})
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
    let t = start(SimOpts {
        token_lifetime: 1,
        ..fast()
    })
    .await;
    let g = t.operator("graph").await;
    assert_eq!(t.get("/graph/v1.0/organization", &g).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
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
async fn replication_delay_hides_new_objects_for_a_while() {
    let t = start(SimOpts {
        replication_delay: 1.0,
        ..fast()
    })
    .await;
    let g = t.operator("graph").await;
    let arm = t.operator("arm").await;
    let app = t
        .post(
            "/graph/v1.0/applications",
            &g,
            json!({"displayName": "lagging"}),
        )
        .await;
    let app_id = app.body["appId"].as_str().unwrap().to_string();
    let oid = app.body["id"].as_str().unwrap().to_string();
    let first = t
        .post(
            "/graph/v1.0/servicePrincipals",
            &g,
            json!({"appId": app_id}),
        )
        .await;
    assert_graph_error(&first, 400, "Request_BadRequest");
    assert_eq!(
        first.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );
    assert_eq!(
        first.body["error"]["message"],
        format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        )
    );
    let mut sp = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = t
            .post(
                "/graph/v1.0/servicePrincipals",
                &g,
                json!({"appId": app_id}),
            )
            .await;
        if r.status == 201 {
            sp = Some(r.body["id"].as_str().unwrap().to_string());
            break;
        }
        assert_eq!(
            r.body["error"]["details"][0]["code"],
            "NoBackingApplicationObject"
        );
    }
    let sp_id = sp.expect("SP created after the delay");

    // New SP unknown to ARM: without principalType → PrincipalNotFound; with it → 201.
    let role = format!(
        "/subscriptions/{SUB_CONTOSO_PROD}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_CONTRIBUTOR}"
    );
    let bare = json!({"properties": {"roleDefinitionId": role, "principalId": sp_id}});
    assert_arm_error(
        &t.put(&ra_path(SUB_CONTOSO_PROD, &new_guid()), &arm, bare)
            .await,
        400,
        "PrincipalNotFound",
    );
    let typed = json!({"properties": {"roleDefinitionId": role, "principalId": sp_id, "principalType": "ServicePrincipal"}});
    assert_eq!(
        t.put(&ra_path(SUB_CONTOSO_PROD, &new_guid()), &arm, typed)
            .await
            .status,
        201
    );

    // The new assignment has not taken effect for Spot yet; it does after the delay.
    let pw = t
        .post(
            &format!("/graph/v1.0/applications/{oid}/addPassword"),
            &g,
            json!({}),
        )
        .await;
    let secret = pw.body["secretText"].as_str().unwrap().to_string();
    let validate =
        format!("/azure/setup/credentials/validation?accountId={SPOT_ACCOUNT_UNCONNECTED}");
    assert_spot_error(
        &t.spot(
            "POST",
            &validate,
            Some(creds(&app_id, &secret, SUB_CONTOSO_PROD)),
        )
        .await,
        400,
        spot_codes::MISSING_PERMISSIONS,
    );
    let mut connected = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = t
            .spot(
                "POST",
                &validate,
                Some(creds(&app_id, &secret, SUB_CONTOSO_PROD)),
            )
            .await;
        if r.status == 200 {
            connected = true;
            break;
        }
        assert_eq!(
            r.body["response"]["errors"][0]["code"],
            spot_codes::MISSING_PERMISSIONS
        );
    }
    assert!(connected);
    t.sim.shutdown().await;
}

/// Outcome of one raw call: status, or 0 for a transport error.
async fn outcome(t: &T, method: &str, path: &str, body: Option<Value>) -> (u16, Option<String>) {
    let mut req = t
        .http
        .request(method.parse().unwrap(), t.url(path))
        .bearer_auth(SPOT_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let ra = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(_) => (status, ra),
                Err(_) => (0, None),
            }
        }
        Err(_) => (0, None),
    }
}

#[tokio::test]
async fn faults_are_deterministic_and_dropped_writes_may_have_happened() {
    let opts = SimOpts {
        fault_rate: 0.5,
        seed: 7,
        latency: 1,
        ..fast()
    };
    let mut runs = vec![];
    for _ in 0..2 {
        let t = start(opts.clone()).await;
        let mut seen = vec![];
        for i in 0..40 {
            seen.push(
                outcome(
                    &t,
                    "POST",
                    "/spot/setup/account",
                    Some(json!({"account": {"name": format!("a{i}")}})),
                )
                .await,
            );
        }
        let state = t.sim.state();
        let log = t.sim.requests();
        runs.push((seen, state, log));
        t.sim.shutdown().await;
    }
    let (a, state, log) = &runs[0];
    assert_eq!(a, &runs[1].0, "same seed, same faults");
    let statuses: Vec<u16> = a.iter().map(|o| o.0).collect();
    for s in [0, 429, 500, 503, 200] {
        assert!(statuses.contains(&s), "status {s} among {statuses:?}");
    }
    assert!(
        a.iter()
            .filter(|o| o.0 == 429 || o.0 == 503)
            .all(|o| o.1.as_deref() == Some("1"))
    );
    // Accounts created = answered 200 + processed-then-dropped.
    let drops_after = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fault"] == "drop_after")
        .count();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(drops_after > 0);
    assert_eq!(
        state["spot"]["accounts"].as_array().unwrap().len(),
        2 + ok + drops_after
    );
    // The request log: no bodies.
    let text = log.to_string();
    assert!(!text.contains("\"a1\"") && !text.contains(SPOT_TOKEN));
    assert!(
        log[0]["method"] == "POST"
            && log[0]["path"] == "/setup/account"
            && log[0]["service"] == "spot"
            && log[0]["time"].is_string()
    );
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

/// The test controls `faults/delay` and `faults/drop-after` over HTTP: a delay holds only the
/// calls it names, `count` times; a drop-after handles the call and closes the connection; a
/// delay without `ms` is refused.
#[tokio::test]
async fn inspect_faults_delay_and_drop_after_hit_only_the_calls_they_name() {
    let t = start(fast()).await;
    let discovery = format!("/login/{CONTOSO_TENANT_ID}/v2.0/.well-known/openid-configuration");
    let r = t
        .send(
            "POST",
            "/inspect/faults/delay?method=GET&path=/v2.0/&count=1",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 400, "a delay needs ms: {}", r.body);
    let r = t
        .send(
            "POST",
            "/inspect/faults/delay?method=GET&path=/V2.0/.well-known/&count=1&ms=1500",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let t0 = std::time::Instant::now();
    assert_eq!(t.send("GET", &discovery, None, None).await.status, 200);
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1500),
        "held back"
    );
    // Used up: the next call is not held (a 1.5 s hold would show as >= 1.5 s).
    let t1 = std::time::Instant::now();
    assert_eq!(t.send("GET", &discovery, None, None).await.status, 200);
    assert!(
        t1.elapsed() < std::time::Duration::from_millis(1500),
        "not held again"
    );
    let r = t
        .send(
            "POST",
            "/inspect/faults/drop-after?method=GET&path=/.well-known/openid-configuration",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let dropped = t.http.get(t.url(&discovery)).send().await;
    assert!(dropped.is_err(), "the connection is dropped after handling");
    assert_eq!(t.send("GET", &discovery, None, None).await.status, 200);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn inspect_state_lists_every_seeded_object() {
    let t = start(fast()).await;
    let state: Value = t.send("GET", "/inspect/state", None, None).await.body;
    assert_eq!(state["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(state["subscriptions"].as_array().unwrap().len(), 5);
    assert!(has(&state["subscriptions"], "state", "Disabled"));
    assert_eq!(state["users"][0]["userPrincipalName"], OPERATOR_UPN);
    let ci = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == CI_OPERATOR_CLIENT_ID)
        .unwrap();
    assert_eq!(
        ci["passwordCredentials"][0]["secretText"],
        CI_OPERATOR_SECRET
    );
    assert!(has(&state["servicePrincipals"], "id", CI_LIMITED_SP_ID));
    assert!(has(&state["roleDefinitions"], "name", ROLE_OWNER));
    assert!(has(
        &state["roleAssignments"],
        "principalId",
        OPERATOR_USER_ID
    ));
    let connected = &state["spot"]["accounts"][1];
    assert_eq!(connected["accountId"], SPOT_ACCOUNT_CONNECTED);
    assert_eq!(
        connected["credentials"]["subscriptionId"],
        SUB_FABRIKAM_PROD
    );
    assert_eq!(state, t.sim.state());
    // The connected seed account's credentials really validate.
    let r = t
        .spot(
            "POST",
            &format!("/azure/setup/credentials/validation?accountId={SPOT_ACCOUNT_CONNECTED}"),
            Some(json!({"clientId": FABRIKAM_SPOT_APP_CLIENT_ID, "clientSecret": FABRIKAM_SPOT_SECRET, "tenantId": FABRIKAM_TENANT_ID, "subscriptionId": SUB_FABRIKAM_PROD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.sim.shutdown().await;
}

#[test]
fn sim_binary_prints_the_endpoints_line_first() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"))
        .args(["sim", "--state-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a first line within 30 s");
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    // Each service at the root of its own origin: https://127.0.0.1:PORT, no path, five ports.
    let mut ports = std::collections::HashSet::new();
    for k in ["login", "graph", "arm", "spot", "inspect"] {
        let origin = v[k].as_str().unwrap();
        let port = origin.strip_prefix("https://127.0.0.1:").expect(k);
        assert!(port.parse::<u16>().is_ok(), "{k}: {origin} has a path");
        ports.insert(port.to_string());
    }
    assert_eq!(ports.len(), 5);
    assert_eq!(v["spot_token"], SPOT_TOKEN);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("endpoints.json")).unwrap())
            .unwrap();
    assert_eq!(file, v);
    let ca = std::path::PathBuf::from(v["ca_cert"].as_str().unwrap());
    assert_eq!(ca, dir.path().join("sim-ca.pem"));
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("endpoints.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn the_product_endpoints_trust_only_the_sim_ca() {
    let t = start(fast()).await;
    let e = t.sim.endpoints();
    assert_eq!(e.name, "custom");
    assert_eq!(e.graph_scope, t.scope("graph"));
    let http = spot_connect::http::Http::new(e.ca_pem().unwrap().as_deref()).unwrap();
    let r = http
        .send(
            spot_connect::error::Service::Spot,
            http.request(reqwest::Method::GET, &format!("{}/setup/account", e.spot))
                .bearer_auth(SPOT_TOKEN),
        )
        .await
        .unwrap();
    assert_eq!(r.body["response"]["count"], 2);
    // A client with the platform roots does not trust the simulator.
    if let Ok(plain) = reqwest::Client::builder().build() {
        assert!(
            plain
                .get(format!("{}/setup/account", e.spot))
                .send()
                .await
                .is_err()
        );
    }
    t.sim.shutdown().await;
}

#[tokio::test]
async fn endpoints_file_errors_name_the_file_and_the_field() {
    use spot_connect::endpoints::Endpoints;
    async fn load_and_verify(path: &std::path::Path) -> Result<Endpoints, String> {
        let (e, _) = Endpoints::load(path).map_err(|e| e.to_string())?;
        let http = spot_connect::http::Http::new(e.ca_pem().unwrap().as_deref()).unwrap();
        e.verify(&http).await.map_err(|e| e.to_string())?;
        Ok(e)
    }
    let a = start(fast()).await;
    let b = start(fast()).await;
    let loaded = load_and_verify(&a.sim.endpoints_path).await.unwrap();
    assert_eq!(loaded.arm, a.sim.endpoints().arm);
    assert_eq!(
        loaded.source.as_deref(),
        Some(a.sim.endpoints_path.as_path())
    );
    // A CA that did not sign the simulator's certificate (the other simulator's).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endpoints.json");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(&a.sim.endpoints_path).unwrap()).unwrap();
    let mut f = original.clone();
    f["ca_cert"] = json!(b.sim.endpoints.ca_cert);
    std::fs::write(&path, f.to_string()).unwrap();
    let e = load_and_verify(&path).await.unwrap_err();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("`ca_cert`") && e.contains("does not verify"),
        "{e}"
    );
    // An origin nobody listens on.
    let b_arm = b.sim.endpoints.arm.clone();
    b.sim.shutdown().await;
    let mut f = original.clone();
    f["arm"] = json!(b_arm);
    std::fs::write(&path, f.to_string()).unwrap();
    let e = load_and_verify(&path).await.unwrap_err();
    assert!(e.contains("`arm`") && e.contains("unreachable"), "{e}");
    // The old shape: one origin with a path per service.
    let mut f = original.clone();
    f["arm"] = json!(format!("{}/arm", a.sim.endpoints.login));
    std::fs::write(&path, f.to_string()).unwrap();
    let e = load_and_verify(&path).await.unwrap_err();
    assert!(
        e.contains("`arm`") && e.contains("old one-origin shape"),
        "{e}"
    );
    a.sim.shutdown().await;
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

/// base64url without padding, both ways (RFC 4648 §5), for the JWT checks.
fn b64url_decode(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut acc, mut bits) = (vec![], 0u32, 0);
    for c in s.bytes() {
        let v = A.iter().position(|a| *a == c).expect("base64url") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn b64url_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
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
