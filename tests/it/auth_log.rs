//! Tokens, refresh tokens, device codes and client secrets never reach the log or Debug output.
//! Its own test binary: the tracing subscriber is per thread, and no other test runs beside it.

use spot_connect::azure::auth::{Audience, Auth, ServicePrincipal};
use spot_connect::azure::discovery::discover;
use spot_connect::cli::{AuthMethod, SimOpts};
use spot_connect::error::Error;
use spot_connect::http::Http;
use spot_connect::secret::Secret;
use spot_connect::sim::{self, seed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("finished in time")
}

#[tokio::test]
async fn tokens_never_reach_the_log_or_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&SimOpts::default(), dir.path())
        .await
        .expect("simulator starts");
    let endpoints = sim.endpoints();
    let http = Http::new(Some(&sim.ca_pem())).unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("spot-connect.log");
    let file = std::fs::File::create(&log_path).unwrap();
    // Everything at TRACE (HTTP, TLS, ours), except the simulator's own lines.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE) // `Targets` below decides
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .finish()
        .with(
            "trace,spot_connect::sim=off"
                .parse::<tracing_subscriber::filter::Targets>()
                .expect("valid directives"),
        );
    let _guard = tracing::subscriber::set_default(subscriber); // this (current-thread) runtime's thread

    let auth = Auth::new(
        AuthMethod::DeviceCode,
        &endpoints,
        &http,
        None,
        Arc::new(|_| {}),
    )
    .unwrap();
    let identity = bounded(auth.sign_in()).await.unwrap();
    let d = bounded(discover(&auth, &endpoints, &http)).await.unwrap();
    let mut tokens = Vec::new();
    for tenant in [seed::CONTOSO_TENANT_ID, seed::FABRIKAM_TENANT_ID] {
        for aud in [Audience::Arm, Audience::Graph] {
            tokens.push(auth.token(Some(tenant), aud).await.unwrap());
        }
    }
    let bad = ServicePrincipal {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        client_id: seed::CI_OPERATOR_CLIENT_ID.into(),
        secret: Secret::new("wrong-secret-value-xyz"),
    };
    let err = Auth::client_secret(&endpoints, &http, bad, None)
        .sign_in()
        .await
        .unwrap_err();
    drop(_guard);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("device code sign-in completed"),
        "the log is written: {log}"
    );
    let debug = format!(
        "{auth:?} {identity:?} {d:?} {tokens:?} {err:?} {:?}",
        auth.credential(Some(seed::FABRIKAM_TENANT_ID))
    );
    for t in &tokens {
        assert!(!log.contains(t.expose()), "an access token is in the log");
        assert!(
            !debug.contains(t.expose()),
            "an access token is in Debug output"
        );
    }
    // The simulator's access tokens, refresh tokens and device codes carry these prefixes.
    for prefix in ["sim-at-", "sim-rt-", "sim-dc-", "wrong-secret-value-xyz"] {
        assert!(!log.contains(prefix), "{prefix} in the log");
        assert!(!debug.contains(prefix), "{prefix} in Debug output");
    }
    assert!(matches!(err, Error::Api(_)));
}
