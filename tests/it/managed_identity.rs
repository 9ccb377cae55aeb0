//! `--auth managed-identity` with custom endpoints: azure_identity's ManagedIdentityCredential,
//! pointed at the simulator's App Service identity endpoint through `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` (the variables App Service sets), takes `apply` to Connected.

use serde_json::Value;
use spot_connect::sim::{self, SimOpts, seed::*};
use std::process::Stdio;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

async fn apply(sim: &sim::SimHandle, state: &std::path::Path, header: &str) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .env("SPOT_CONNECT_KEYRING", "off")
        .args(["apply", "--auth", "managed-identity", "--endpoints"])
        .arg(&sim.endpoints_path)
        .args(["--subscription", SUB_CONTOSO_DEV, "--yes", "--state-dir"])
        .arg(state)
        .env(
            "IDENTITY_ENDPOINT",
            format!("{}/msi/token", sim.endpoints.login),
        )
        .env("IDENTITY_HEADER", header)
        .env_remove("IDENTITY_SERVER_THUMBPRINT")
        .env_remove("IMDS_ENDPOINT")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("SPOTINST_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("apply finishes")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn apply_with_a_managed_identity_reaches_connected() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(&SimOpts::default(), &dir.path().join("sim"))
        .await
        .unwrap();
    // A wrong IDENTITY_HEADER: refused, nothing written.
    let before = sim.state();
    let (ok, stderr) = apply(&sim, &dir.path().join("state"), "wrong").await;
    assert!(!ok, "{stderr}");
    assert_eq!(sim.state()["applications"], before["applications"]);

    let (ok, stderr) = apply(&sim, &dir.path().join("state"), MANAGED_IDENTITY_HEADER).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains(MANAGED_IDENTITY_CLIENT_ID), "{stderr}");
    let st = sim.state();
    let accounts: Vec<&Value> = st["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == SUB_CONTOSO_DEV)
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["credentials"]["tenantId"], CONTOSO_TENANT_ID);
    // Every token came from the identity endpoint: no other call to the identity platform
    // (besides the endpoints check's `GET /`).
    let log = sim.requests();
    let logins: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == "login" && r["path"] != "/")
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(!logins.is_empty());
    assert!(
        logins.iter().all(|p| p.starts_with("/msi/token?")),
        "{logins:?}"
    );
    sim.shutdown().await;
}
