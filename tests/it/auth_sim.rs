//! Sign-in and discovery against the in-process simulator (identity platform + ARM).

use spot_connect::azure::auth::{Audience, Auth, PromptFn, ServicePrincipal, SignInPrompt};
use spot_connect::azure::discovery::discover;
use spot_connect::cli::{AuthMethod, SimOpts};
use spot_connect::endpoints::Endpoints;
use spot_connect::error::Service;
use spot_connect::http::Http;
use spot_connect::onboard::model::DeviceCodePrompt;
use spot_connect::secret::Secret;
use spot_connect::sim::{self, SimHandle, seed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Fixture {
    sim: SimHandle,
    endpoints: Endpoints,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&SimOpts::default(), dir.path())
        .await
        .expect("simulator starts");
    let endpoints = sim.endpoints();
    let http = Http::new(Some(&sim.ca_pem())).unwrap();
    Fixture {
        sim,
        endpoints,
        http,
        _dir: dir,
    }
}

/// Records the device codes shown (the other sign-in prompts are not device codes).
fn recording_prompt() -> (PromptFn, Arc<Mutex<Vec<DeviceCodePrompt>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |p| {
            if let SignInPrompt::DeviceCode(d) = p {
                s.lock().unwrap().push(d)
            }
        }),
        seen,
    )
}

fn device_code_requests(f: &Fixture) -> usize {
    f.sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/devicecode"))
        })
        .count()
}

fn token_requests(f: &Fixture) -> usize {
    f.sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/token")))
        .count()
}

/// Every test is bounded: the simulator approves device codes after ~1.5 s.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("finished in time")
}

#[tokio::test]
async fn one_device_flow_gives_arm_and_graph_tokens_in_both_tenants() {
    let f = start().await;
    let (prompt, prompts) = recording_prompt();
    let auth = Auth::new(AuthMethod::DeviceCode, &f.endpoints, &f.http, None, prompt).unwrap();

    // Three callers at once before anyone signed in: one device flow, the others wait for it.
    let (identity, graph_fab, arm_contoso) = bounded(async {
        tokio::join!(
            auth.sign_in(),
            auth.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
            auth.token(Some(seed::CONTOSO_TENANT_ID), Audience::Arm),
        )
    })
    .await;
    let identity = identity.expect("signed in");
    assert_eq!(identity.display, seed::OPERATOR_UPN);
    assert_eq!(
        identity.home_tenant.as_deref(),
        Some(seed::CONTOSO_TENANT_ID)
    );
    assert_eq!(identity.method, AuthMethod::DeviceCode);

    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1, "one prompt for three concurrent callers");
    assert!(!prompts[0].user_code.is_empty());
    assert!(prompts[0].message.contains(&prompts[0].user_code));
    assert!(prompts[0].expires_at > time::OffsetDateTime::now_utc());
    assert_eq!(device_code_requests(&f), 1);

    let arm_fab = auth
        .token(Some(seed::FABRIKAM_TENANT_ID), Audience::Arm)
        .await
        .unwrap();
    let graph_contoso = auth.token(None, Audience::Graph).await.unwrap();
    let all: Vec<Secret> = vec![
        graph_fab.unwrap(),
        arm_contoso.unwrap(),
        arm_fab,
        graph_contoso,
    ];
    for (i, a) in all.iter().enumerate() {
        assert!(!a.is_empty());
        for b in &all[i + 1..] {
            assert_ne!(a.expose(), b.expose(), "one token per (tenant, audience)");
        }
    }
    // Cached: asking again does not hit the identity platform.
    let before = f.sim.requests().as_array().unwrap().len();
    let again = auth
        .token(Some(seed::FABRIKAM_TENANT_ID), Audience::Arm)
        .await
        .unwrap();
    assert_eq!(again.expose(), all[2].expose());
    assert_eq!(f.sim.requests().as_array().unwrap().len(), before);
    assert_eq!(device_code_requests(&f), 1, "no second device flow");

    // Three callers at once for a token not cached yet: one request to the identity platform.
    let tokens_before = token_requests(&f);
    let (a, b, c) = bounded(async {
        tokio::join!(
            auth.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
            auth.token(Some(seed::CONTOSO_TENANT_ID), Audience::Arm),
            auth.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
        )
    })
    .await;
    assert_eq!(a.unwrap().expose(), c.unwrap().expose());
    assert!(b.is_ok());
    assert_eq!(
        token_requests(&f),
        tokens_before,
        "all three were cached already"
    );
    let auth2 = Auth::new(
        AuthMethod::DeviceCode,
        &f.endpoints,
        &f.http,
        None,
        recording_prompt().0,
    )
    .unwrap();
    auth2.sign_in().await.unwrap();
    let tokens_before = token_requests(&f);
    let (a, b, c) = bounded(async {
        tokio::join!(
            auth2.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
            auth2.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
            auth2.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph),
        )
    })
    .await;
    assert_eq!(a.unwrap().expose(), b.as_ref().unwrap().expose());
    assert_eq!(b.unwrap().expose(), c.unwrap().expose());
    assert_eq!(
        token_requests(&f),
        tokens_before + 1,
        "concurrent callers for one (tenant, audience) share one token request"
    );

    // The azure_core credential view gives the same tokens.
    let cred = auth.credential(Some(seed::FABRIKAM_TENANT_ID));
    let at = cred
        .get_token(&[f.endpoints.arm_scope.as_str()], None)
        .await
        .unwrap();
    assert_eq!(at.token.secret(), all[2].expose());
}

#[tokio::test]
async fn client_secret_sign_in_and_a_wrong_secret() {
    let f = start().await;
    let sp = ServicePrincipal {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        client_id: seed::CI_OPERATOR_CLIENT_ID.into(),
        secret: Secret::new(seed::CI_OPERATOR_SECRET),
    };
    let auth = Auth::client_secret(&f.endpoints, &f.http, sp, None);
    let identity = bounded(auth.sign_in())
        .await
        .expect("service principal signs in");
    assert_eq!(identity.display, seed::CI_OPERATOR_CLIENT_ID);
    assert_eq!(
        identity.home_tenant.as_deref(),
        Some(seed::CONTOSO_TENANT_ID)
    );
    assert_eq!(identity.method, AuthMethod::ClientSecret);
    assert!(!auth.token(None, Audience::Graph).await.unwrap().is_empty());

    let d = bounded(discover(&auth, &f.endpoints, &f.http))
        .await
        .unwrap();
    assert!(d.subscription(seed::SUB_CONTOSO_PROD).is_some(), "{d:?}");

    let wrong = ServicePrincipal {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        client_id: seed::CI_OPERATOR_CLIENT_ID.into(),
        secret: Secret::new("not-the-secret"),
    };
    let auth = Auth::client_secret(&f.endpoints, &f.http, wrong, None);
    let err = bounded(auth.sign_in())
        .await
        .expect_err("a wrong secret is refused");
    let api = err
        .api()
        .unwrap_or_else(|| panic!("a service error, got {err}"));
    assert_eq!(api.service, Service::Login);
    assert_eq!(api.code, "invalid_client");
    assert!(api.message.contains("AADSTS7000215"), "{api}");
    assert!(api.request_id.is_some());
    assert_eq!(
        api.hint(),
        Some(spot_connect::error::Hint::ClientCredentials)
    );
    assert!(!err.to_string().contains("not-the-secret"));
}

#[tokio::test]
async fn discovery_lists_both_tenants_and_every_subscription() {
    let f = start().await;
    let (prompt, _) = recording_prompt();
    let auth = Auth::new(AuthMethod::DeviceCode, &f.endpoints, &f.http, None, prompt).unwrap();
    bounded(auth.sign_in()).await.unwrap();
    let d = bounded(discover(&auth, &f.endpoints, &f.http))
        .await
        .unwrap();

    let mut tenants: Vec<&str> = d.tenants.iter().map(|t| t.tenant_id.as_str()).collect();
    tenants.sort();
    let mut expected = vec![seed::CONTOSO_TENANT_ID, seed::FABRIKAM_TENANT_ID];
    expected.sort();
    assert_eq!(tenants, expected);
    let contoso = d.tenant(seed::CONTOSO_TENANT_ID).unwrap();
    assert_eq!(contoso.display_name, seed::CONTOSO_NAME);
    assert_eq!(
        contoso.default_domain.as_deref(),
        Some(seed::CONTOSO_DOMAIN)
    );
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);

    // Five seeded subscriptions over pages of two (nextLink followed), each with its tenant.
    for (sub, tenant) in [
        (seed::SUB_CONTOSO_PROD, seed::CONTOSO_TENANT_ID),
        (seed::SUB_CONTOSO_DEV, seed::CONTOSO_TENANT_ID),
        (seed::SUB_CONTOSO_LEGACY, seed::CONTOSO_TENANT_ID),
        (seed::SUB_FABRIKAM_PROD, seed::FABRIKAM_TENANT_ID),
        (seed::SUB_FABRIKAM_STAGING, seed::FABRIKAM_TENANT_ID),
    ] {
        let s = d
            .subscription(sub)
            .unwrap_or_else(|| panic!("{sub} missing: {d:?}"));
        assert_eq!(s.tenant_id, tenant);
    }
    assert_eq!(d.subscriptions.len(), 5);
    let legacy = d.subscription(seed::SUB_CONTOSO_LEGACY).unwrap();
    assert_eq!(legacy.state, "Disabled");
    assert!(!legacy.selectable());
    assert!(
        d.subscription(seed::SUB_FABRIKAM_PROD)
            .unwrap()
            .selectable()
    );

    // With --tenant, only that tenant.
    let (prompt, _) = recording_prompt();
    let auth = Auth::new(
        AuthMethod::DeviceCode,
        &f.endpoints,
        &f.http,
        Some(seed::FABRIKAM_TENANT_ID.into()),
        prompt,
    )
    .unwrap();
    // The operator is a Contoso user, a guest in Fabrikam: signed in to Fabrikam, the home
    // tenant shown is still Contoso (client_info's `utid`, not the token's `tid`).
    let id = bounded(auth.sign_in()).await.unwrap();
    assert_eq!(id.home_tenant.as_deref(), Some(seed::CONTOSO_TENANT_ID));
    let d = bounded(discover(&auth, &f.endpoints, &f.http))
        .await
        .unwrap();
    assert_eq!(d.tenants.len(), 1);
    assert!(
        d.subscriptions
            .iter()
            .all(|s| s.tenant_id == seed::FABRIKAM_TENANT_ID)
    );
    assert_eq!(d.subscriptions.len(), 2);
}

#[tokio::test]
async fn sign_in_and_discovery_survive_injected_faults() {
    // 20 % of calls fail (429, 500, 503, dropped connections before or after handling): token
    // requests are repeated where that is safe, and no tenant is skipped for a transient fault.
    for fault_seed in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let opts = SimOpts {
            fault_rate: 0.2,
            seed: fault_seed,
            ..SimOpts::default()
        };
        let sim = sim::start(&opts, dir.path())
            .await
            .expect("simulator starts");
        let endpoints = sim.endpoints();
        let http = Http::new(Some(&sim.ca_pem())).unwrap();
        let (prompt, prompts) = recording_prompt();
        let auth = Auth::new(AuthMethod::DeviceCode, &endpoints, &http, None, prompt).unwrap();
        let identity = bounded(auth.sign_in())
            .await
            .unwrap_or_else(|e| panic!("seed {fault_seed}: {e}"));
        assert_eq!(identity.display, seed::OPERATOR_UPN);
        assert!(!prompts.lock().unwrap().is_empty());
        let d = bounded(discover(&auth, &endpoints, &http))
            .await
            .unwrap_or_else(|e| panic!("seed {fault_seed}: {e}"));
        assert!(d.skipped.is_empty(), "seed {fault_seed}: {:?}", d.skipped);
        assert_eq!(
            (d.tenants.len(), d.subscriptions.len()),
            (2, 5),
            "seed {fault_seed}"
        );
        bounded(auth.token(Some(seed::FABRIKAM_TENANT_ID), Audience::Graph))
            .await
            .unwrap_or_else(|e| panic!("seed {fault_seed}: {e}"));
    }
}
