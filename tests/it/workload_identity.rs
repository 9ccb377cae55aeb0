//! `--auth workload-identity` (issue 19, "Sign in with no secret"): azure_identity's
//! WorkloadIdentityCredential with the variables AKS sets, against the simulator, which checks
//! the federated token against ci-operator's federated identity credential (issuer, subject,
//! audience), its signature (the simulated issuer's JWKS) and its lifetime.

use crate::common::cli::{As, Out, Sim, output};
use serde_json::Value;
use spot_connect::sim::{SimOpts, seed::*};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

/// Writes are every call but the identity platform's and the reads.
fn writes(sim: &Sim) -> Vec<String> {
    sim.sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] != "login" && r["method"] != "GET")
        .map(|r| format!("{} {} {}", r["service"], r["method"], r["path"]))
        .collect()
}

fn token_file(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .unwrap();
    std::io::Write::write_all(&mut f, token.as_bytes()).unwrap();
    p
}

async fn apply(sim: &Sim, env: &[(&str, &str)]) -> Out {
    let mut c = sim.cmd(
        As::Operator,
        &sim.state_dir(),
        &[
            "apply",
            "--auth",
            "workload-identity",
            "--subscription",
            SUB_CONTOSO_DEV,
            "--yes",
        ],
    );
    c.env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_AUTHORITY_HOST");
    for (k, v) in env {
        c.env(k, v);
    }
    output(c, LIMIT).await
}

#[tokio::test]
async fn apply_with_a_workload_identity_reaches_connected_with_no_secret_of_its_own() {
    let sim = Sim::start(SimOpts::default()).await;
    let token = sim
        .sim
        .workload_token(WORKLOAD_SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 3600);
    let file = token_file(sim.dir.path(), "sa-token", &token);
    let login = sim.sim.endpoints.login.clone();
    let out = apply(
        &sim,
        &[
            ("AZURE_TENANT_ID", CONTOSO_TENANT_ID),
            ("AZURE_CLIENT_ID", CI_OPERATOR_CLIENT_ID),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
            ("AZURE_AUTHORITY_HOST", &login),
        ],
    )
    .await;
    println!(
        "--- apply --auth workload-identity: exit {}\n{}",
        out.code, out.stderr
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("workload identity {CI_OPERATOR_CLIENT_ID}")),
        "{}",
        out.stderr
    );
    let st = sim.sim.state();
    let accounts: Vec<&Value> = st["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == SUB_CONTOSO_DEV)
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["credentials"]["tenantId"], CONTOSO_TENANT_ID);
    // The identity platform was asked for tokens only with the assertion grant's token URL of
    // the tenant; no secret of ci-operator's was needed (its one seed secret is untouched).
    let tokens = crate::common::cli::sends(
        &sim.sim,
        "POST",
        &format!("/{CONTOSO_TENANT_ID}/oauth2/v2.0/token"),
    );
    assert!(tokens >= 2, "ARM and Graph tokens: {tokens}");
    let ci = st["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == CI_OPERATOR_CLIENT_ID)
        .unwrap();
    assert_eq!(ci["passwordCredentials"].as_array().unwrap().len(), 1);
    // The token never reaches the log or the output.
    let log = std::fs::read_to_string(sim.state_dir().join("spot-connect.log")).unwrap();
    assert!(!log.contains(&token) && !out.stderr.contains(&token));
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_workload_token_of_another_subject_or_expired_or_missing_is_refused_before_any_write() {
    let sim = Sim::start(SimOpts::default()).await;
    let base = |file: &str| {
        vec![
            ("AZURE_TENANT_ID", CONTOSO_TENANT_ID.to_string()),
            ("AZURE_CLIENT_ID", CI_OPERATOR_CLIENT_ID.to_string()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_string()),
        ]
    };
    let run = |env: Vec<(&'static str, String)>| {
        let sim = &sim;
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            apply(sim, &env).await
        }
    };

    // Another service account: no federated identity credential matches (AADSTS70021, naming
    // the subject). No AZURE_AUTHORITY_HOST: the endpoints' login is the authority.
    let other = "system:serviceaccount:default:intruder";
    let t = sim.sim.workload_token(other, TOKEN_EXCHANGE_AUDIENCE, 3600);
    let f = token_file(sim.dir.path(), "other", &t);
    let out = run(base(f.to_str().unwrap())).await;
    println!("--- another subject: exit {}\n{}", out.code, out.stderr);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("AADSTS70021") && out.stderr.contains(other),
        "{}",
        out.stderr
    );

    // The right subject, another audience: refused too.
    let t = sim
        .sim
        .workload_token(WORKLOAD_SUBJECT, "api://other", 3600);
    let f = token_file(sim.dir.path(), "aud", &t);
    let out = run(base(f.to_str().unwrap())).await;
    assert!(out.stderr.contains("AADSTS70021"), "{}", out.stderr);

    // Expired ten minutes ago: AADSTS700024.
    let t = sim
        .sim
        .workload_token(WORKLOAD_SUBJECT, TOKEN_EXCHANGE_AUDIENCE, -600);
    let f = token_file(sim.dir.path(), "expired", &t);
    let out = run(base(f.to_str().unwrap())).await;
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("AADSTS700024")
            && out.stderr.contains("not within its valid time range"),
        "{}",
        out.stderr
    );

    // Tampered: the claims of another subject under the right subject's signature.
    let good = sim
        .sim
        .workload_token(WORKLOAD_SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 3600);
    let forged = sim.sim.workload_token(other, TOKEN_EXCHANGE_AUDIENCE, 3600);
    let (g, fo): (Vec<&str>, Vec<&str>) = (good.split('.').collect(), forged.split('.').collect());
    // The forged token's header and signature, the good token's claims: the signature fails.
    let tampered = format!("{}.{}.{}", fo[0], g[1], fo[2]);
    let f = token_file(sim.dir.path(), "tampered", &tampered);
    let out = run(base(f.to_str().unwrap())).await;
    assert!(out.stderr.contains("AADSTS700027"), "{}", out.stderr);

    // No file, an empty file, a missing variable: usage errors (exit 2) naming them, before
    // any call at all.
    let before = sim.sim.requests().as_array().unwrap().len();
    let missing = sim.dir.path().join("no-such-token");
    let out = run(base(missing.to_str().unwrap())).await;
    println!("--- no token file: exit {}\n{}", out.code, out.stderr);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("AZURE_FEDERATED_TOKEN_FILE")
            && out.stderr.contains(missing.to_str().unwrap()),
        "{}",
        out.stderr
    );
    let empty = token_file(sim.dir.path(), "empty", "");
    let out = run(base(empty.to_str().unwrap())).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    let mut no_client = base(f.to_str().unwrap());
    no_client.retain(|(k, _)| *k != "AZURE_CLIENT_ID");
    let out = run(no_client).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("AZURE_CLIENT_ID"), "{}", out.stderr);
    assert_eq!(sim.sim.requests().as_array().unwrap().len(), before);

    assert!(writes(&sim).is_empty(), "{:?}", writes(&sim));
    sim.sim.shutdown().await;
}

/// The other unattended sign-ins still work beside it (tests elsewhere cover them end to end:
/// managed_identity::apply_with_a_managed_identity_reaches_connected for managed identity,
/// this one for a client secret in the same simulator as a workload identity).
#[tokio::test]
async fn a_client_secret_still_signs_in_where_a_workload_identity_is_trusted() {
    let sim = Sim::start(SimOpts::default()).await;
    let out = sim
        .run(
            As::CiOperator,
            &["apply", "--subscription", SUB_CONTOSO_DEV, "--yes"],
            LIMIT,
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    sim.sim.shutdown().await;
}
