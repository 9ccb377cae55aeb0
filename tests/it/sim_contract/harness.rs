//! The simulator as a whole: replication delay, faults, the inspect controls and state, the `sim`
//! binary's endpoints line, the CA the product trusts, the endpoints file's errors.

use super::*;

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
