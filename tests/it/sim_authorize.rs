//! Contract tests of the simulator's browser sign-in (reference/identity-and-clients.md §4–5):
//! `/authorize` and its documented redirects, the `authorization_code` grant with PKCE, and the
//! Conditional Access stand-ins `--block-device-code` and `--require-interaction`.

use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::sim::{self, SimHandle, seed::*};
use std::time::Duration;

const CLI_CLIENT: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// A verifier and its S256 challenge (computed with python3's hashlib, padding dropped).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOSjXk";
const CHALLENGE: &str = "KnzveAyQMhNA_iUwGLkrbZAyXEfR1Ef_lfJqfPWkmvU";
const REDIRECT: &str = "http://localhost:8400";

struct T {
    sim: SimHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(opts: SimOpts) -> T {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&opts, dir.path()).await.unwrap();
    let ca = std::fs::read(&sim.endpoints.ca_cert).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        // We are the browser: look at each redirect instead of following it.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    T {
        sim,
        http,
        _dir: dir,
    }
}

fn fast() -> SimOpts {
    SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    }
}

fn query(url: &str) -> Vec<(String, String)> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs().into_owned().collect()
}

fn param(url: &str, key: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn codes(body: &Value) -> Vec<u64> {
    body["error_codes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

impl T {
    fn arm_scope(&self) -> String {
        format!("{}/.default", self.sim.endpoints.arm)
    }

    /// `GET /authorize` with these parameters (defaults: a correct PKCE request); the status and
    /// the `Location` header.
    async fn authorize(&self, tenant: &str, over: &[(&str, &str)]) -> (u16, Option<String>, Value) {
        let scope = format!("{} offline_access openid profile", self.arm_scope());
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", CLI_CLIENT),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("response_mode", "query"),
            ("scope", &scope),
            ("state", "st-123"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("prompt", "select_account"),
        ];
        for (k, v) in over {
            params.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/authorize",
            self.sim.endpoints.login
        );
        let resp = self.http.get(url).query(&params).send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, location, body)
    }

    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.sim.endpoints.login);
        let resp = self.http.post(url).form(form).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn code(&self, tenant: &str) -> String {
        let (status, location, _) = self.authorize(tenant, &[]).await;
        assert_eq!(status, 302);
        param(&location.unwrap(), "code").unwrap()
    }

    async fn redeem(&self, tenant: &str, code: &str, over: &[(&str, &str)]) -> (u16, Value) {
        let scope = format!("{} offline_access openid profile", self.arm_scope());
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", CLI_CLIENT),
            ("grant_type", "authorization_code"),
            ("scope", &scope),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        for (k, v) in over {
            form.retain(|(pk, _)| pk != k);
            form.push((k, v));
        }
        self.token(tenant, &form).await
    }

    async fn refresh(&self, tenant: &str, rt: &str) -> (u16, Value) {
        let scope = format!("{} offline_access", self.arm_scope());
        self.token(
            tenant,
            &[
                ("client_id", CLI_CLIENT),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", &scope),
            ],
        )
        .await
    }

    /// A device-code sign-in at `tenant`: the token endpoint's answer to the first poll.
    async fn device_code(&self, tenant: &str) -> (u16, Value) {
        let scope = format!("{} offline_access openid profile", self.arm_scope());
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/devicecode",
            self.sim.endpoints.login
        );
        let dc: Value = self
            .http
            .post(url)
            .form(&[("client_id", CLI_CLIENT), ("scope", &scope)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = dc["device_code"].as_str().unwrap();
        self.token(
            tenant,
            &[
                ("client_id", CLI_CLIENT),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", code),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state_and_the_code_is_redeemed_once_with_pkce() {
    let t = start(fast()).await;
    let (status, location, _) = t.authorize("organizations", &[]).await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(
        location.starts_with("http://localhost:8400/?"),
        "{location}"
    );
    assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
    let code = param(&location, "code").unwrap();

    let (status, body) = t.redeem("organizations", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().is_some());
    assert!(body["refresh_token"].as_str().is_some());
    // The id token names the operator in the home tenant.
    let id = body["id_token"].as_str().unwrap();
    let payload = id.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&azure_core::base64::decode_url_safe(payload).unwrap()).unwrap();
    assert_eq!(claims["tid"], CONTOSO_TENANT_ID);
    assert_eq!(claims["preferred_username"], OPERATOR_UPN);

    // The token works on ARM.
    let arm = format!(
        "{}/subscriptions?api-version=2022-12-01",
        t.sim.endpoints.arm
    );
    let r = t
        .http
        .get(arm)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let (status, body) = t.redeem("organizations", &code, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(codes(&body), vec![54005], "{body}");
}

#[tokio::test]
async fn a_wrong_verifier_another_redirect_or_another_tenant_is_refused_and_keeps_the_code() {
    let t = start(fast()).await;
    let code = t.code("organizations").await;
    let (status, body) = t
        .redeem(
            "organizations",
            &code,
            &[(
                "code_verifier",
                "not-the-verifier-0000000000000000000000000",
            )],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(codes(&body), vec![501481]);
    let (status, body) = t
        .redeem("organizations", &code, &[("code_verifier", "")])
        .await;
    assert_eq!((status, codes(&body)), (400, vec![501481]));

    let (status, body) = t
        .redeem(
            "organizations",
            &code,
            &[("redirect_uri", "http://localhost:9999")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(codes(&body), vec![50011]);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not match the reply address 'http://localhost:8400'"),
        "{body}"
    );

    let (status, body) = t.redeem(FABRIKAM_TENANT_ID, &code, &[]).await;
    assert_eq!((status, codes(&body)), (400, vec![700005]));

    // None of these used the code up.
    let (status, _) = t.redeem(CONTOSO_TENANT_ID, &code, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_expired_code_gets_aadsts70008() {
    let t = start(SimOpts {
        auth_code_lifetime: 1,
        ..fast()
    })
    .await;
    let code = t.code("organizations").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = t.redeem("organizations", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(codes(&body), vec![70008]);
}

#[tokio::test]
async fn unregistered_redirects_are_refused_on_the_page_and_the_loopback_port_is_ignored() {
    let t = start(fast()).await;
    for port in [
        "http://localhost:1",
        "http://localhost:65000",
        "http://127.0.0.1:8400",
    ] {
        let (status, location, _) = t
            .authorize("organizations", &[("redirect_uri", port)])
            .await;
        assert_eq!(status, 302, "{port}");
        assert!(location.unwrap().starts_with(port));
    }
    for bad in [
        "http://evil.example:8400",
        "https://localhost:8400",
        "http://localhost:8400/other",
        "urn:ietf:wg:oauth:2.0:oob",
    ] {
        let (status, location, body) = t.authorize("organizations", &[("redirect_uri", bad)]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(location.is_none(), "{bad}: never redirected");
        assert_eq!(codes(&body), vec![50011], "{bad}: {body}");
    }
    // No redirect URI at all, an unknown client, an unknown tenant: on the page too.
    let (status, _, body) = t.authorize("organizations", &[("redirect_uri", "")]).await;
    assert_eq!((status, codes(&body)), (400, vec![50011]));
    let (status, _, body) = t
        .authorize(
            "organizations",
            &[("client_id", "11111111-2222-3333-4444-555555555555")],
        )
        .await;
    assert_eq!((status, codes(&body)), (400, vec![700016]));
    let (status, _, body) = t.authorize("nosuch.example", &[]).await;
    assert_eq!((status, codes(&body)), (400, vec![90002]));
}

#[tokio::test]
async fn a_wrong_request_gets_the_documented_error_redirect_with_the_state() {
    let t = start(fast()).await;
    for (over, error, aadsts) in [
        (
            vec![("response_type", "")],
            "invalid_request",
            "AADSTS900144",
        ),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
            "AADSTS70005",
        ),
        (vec![("scope", "")], "invalid_request", "AADSTS900144"),
        (
            vec![("code_challenge", "")],
            "invalid_request",
            "AADSTS900144",
        ),
        (
            vec![("code_challenge_method", "S512")],
            "invalid_request",
            "AADSTS501491",
        ),
    ] {
        let (status, location, _) = t.authorize("organizations", &over).await;
        assert_eq!(status, 302, "{over:?}");
        let location = location.unwrap();
        assert!(
            location.starts_with("http://localhost:8400/?"),
            "{location}"
        );
        assert_eq!(
            param(&location, "error").as_deref(),
            Some(error),
            "{over:?}"
        );
        assert!(
            param(&location, "error_description")
                .unwrap()
                .starts_with(aadsts),
            "{location}"
        );
        assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
        assert!(param(&location, "code").is_none());
    }
}

#[tokio::test]
async fn block_device_code_answers_aadsts53003_and_leaves_the_browser_sign_in_alone() {
    for value in ["all", CONTOSO_TENANT_ID, CONTOSO_DOMAIN] {
        let t = start(SimOpts {
            block_device_code: vec![value.to_string()],
            ..fast()
        })
        .await;
        let (status, body) = t.device_code("organizations").await;
        assert_eq!(status, 400, "{value}");
        assert_eq!(codes(&body), vec![53003], "{value}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS53003: Access has been blocked by Conditional Access policies"),
            "{body}"
        );
        let code = t.code("organizations").await;
        let (status, _) = t.redeem("organizations", &code, &[]).await;
        assert_eq!(status, 200, "{value}: the browser sign-in is not blocked");
    }
    // Another tenant's block does not touch Contoso's sign-in.
    let t = start(SimOpts {
        block_device_code: vec![FABRIKAM_TENANT_ID.to_string()],
        ..fast()
    })
    .await;
    let (status, body) = t.device_code("organizations").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = t.device_code(FABRIKAM_TENANT_ID).await;
    assert_eq!((status, codes(&body)), (400, vec![53003]));
}

#[tokio::test]
async fn require_interaction_refuses_the_refresh_until_an_interactive_sign_in_to_that_tenant() {
    let t = start(SimOpts {
        require_interaction: vec![FABRIKAM_DOMAIN.to_string()],
        interaction_claims: true,
        ..fast()
    })
    .await;
    let (status, home) = t.device_code("organizations").await;
    assert_eq!(status, 200);
    let rt = home["refresh_token"].as_str().unwrap();
    // Home tenant: fine. Fabrikam: interaction required, with the claims challenge.
    assert_eq!(t.refresh(CONTOSO_TENANT_ID, rt).await.0, 200);
    let (status, body) = t.refresh(FABRIKAM_TENANT_ID, rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("interaction_required"))
    );
    assert_eq!(codes(&body), vec![50076]);
    let claims: Value = serde_json::from_str(body["claims"].as_str().unwrap()).unwrap();
    assert!(claims["access_token"].is_object(), "{claims}");

    // A browser sign-in with Fabrikam's authority: its refresh token works for Fabrikam, and
    // passes that on to the refresh tokens redeemed from it.
    let code = t.code(FABRIKAM_TENANT_ID).await;
    let (status, body) = t.redeem(FABRIKAM_TENANT_ID, &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let rt2 = body["refresh_token"].as_str().unwrap();
    let (status, contoso) = t.refresh(CONTOSO_TENANT_ID, rt2).await;
    assert_eq!(status, 200);
    let rt3 = contoso["refresh_token"].as_str().unwrap();
    assert_eq!(t.refresh(FABRIKAM_TENANT_ID, rt3).await.0, 200);
    // The first refresh token still is not enough.
    assert_eq!(t.refresh(FABRIKAM_TENANT_ID, rt).await.0, 400);

    // A device-code sign-in with Fabrikam's authority works the same way.
    let (status, body) = t.device_code(FABRIKAM_TENANT_ID).await;
    assert_eq!(status, 200);
    let rt4 = body["refresh_token"].as_str().unwrap();
    assert_eq!(t.refresh(FABRIKAM_TENANT_ID, rt4).await.0, 200);

    // Without --interaction-claims: no claims member.
    let t = start(SimOpts {
        require_interaction: vec![FABRIKAM_TENANT_ID.to_string()],
        ..fast()
    })
    .await;
    let (_, home) = t.device_code("organizations").await;
    let (status, body) = t
        .refresh(FABRIKAM_TENANT_ID, home["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!((status, codes(&body)), (400, vec![50076]));
    assert!(body.get("claims").is_none());
}
