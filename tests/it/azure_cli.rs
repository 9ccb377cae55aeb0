//! The official Azure CLI (`pip install azure-cli`) against the simulator, configured as a custom
//! cloud the way Azure Stack users do it (reference/identity-and-clients.md §1): every `az`
//! operation of issue 8, each checked by its effect in `{inspect}/state`, and `spot-connect apply
//! --auth azure-cli` on top of an `az login` to the simulator.
//!
//! Runs when `SPOT_CONNECT_AZ` names the `az` executable (`.ci/run` sets it); otherwise each test
//! prints a "skipped" line and passes: the rest of the suite does not need az.

use serde_json::{Value, json};
use spot_connect::sim::{self, SimHandle, SimOpts, seed::*};
use std::path::PathBuf;
use std::time::Duration;

fn az_exe() -> Option<PathBuf> {
    match std::env::var_os("SPOT_CONNECT_AZ").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            // Straight to file descriptor 2: the test harness captures what a passing test
            // prints through println!/eprintln!, and this line must be seen.
            #[cfg(unix)]
            {
                use std::io::Write;
                use std::os::fd::FromRawFd;
                // SAFETY: fd 2 is open for the whole process; ManuallyDrop never closes it.
                let mut fd2 = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
                let _ = writeln!(
                    fd2,
                    "skipped: set SPOT_CONNECT_AZ to the az executable to run the Azure CLI tests"
                );
            }
            None
        }
    }
}

/// One `az` installation with its own throwaway configuration directory, signed in to `sim`.
struct Az {
    exe: PathBuf,
    config: tempfile::TempDir,
    ca: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Az {
    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("AZURE_CONFIG_DIR", self.config.path().into()),
            ("REQUESTS_CA_BUNDLE", self.ca.clone().into()),
            ("SSL_CERT_FILE", self.ca.clone().into()),
            ("AZURE_CORE_COLLECT_TELEMETRY", "false".into()),
            ("AZURE_CORE_NO_COLOR", "true".into()),
            ("AZURE_CORE_SURVEY_MESSAGE", "false".into()),
        ]
    }

    async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.env("SPOT_CONNECT_KEYRING", "off");
        cmd.args(args)
            .envs(self.env())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("az {args:?} did not finish in 180 s"))
            .expect("az runs");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `az ARGS -o json`: must succeed; its JSON output (Null when it prints nothing).
    async fn ok(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.run(&all).await;
        assert!(
            out.ok,
            "az {} failed:\n{}\n{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        if out.stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("az {args:?}: not JSON ({e}): {}", out.stdout))
        }
    }

    /// A fresh configuration: the simulator as a custom cloud, then `az login --use-device-code`.
    async fn signed_in(exe: PathBuf, sim: &SimHandle, tenant: Option<&str>) -> (Az, Value) {
        let e = &sim.endpoints;
        let az = Az {
            exe,
            config: tempfile::tempdir().unwrap(),
            ca: e.ca_cert.clone(),
        };
        az.ok(&["config", "set", "core.instance_discovery=false"])
            .await;
        // Endpoint discovery reads the simulator's anonymous `{arm}/metadata/endpoints`.
        az.ok(&[
            "cloud",
            "register",
            "--name",
            "SpotConnectSim",
            "--endpoint-resource-manager",
            &format!("{}/", e.arm),
            "--endpoint-active-directory",
            &e.login,
            "--endpoint-active-directory-resource-id",
            &format!("{}/", e.arm),
            "--endpoint-microsoft-graph-resource-id",
            &format!("{}/", e.graph),
        ])
        .await;
        az.ok(&["cloud", "set", "--name", "SpotConnectSim"]).await;
        let mut login = vec!["login", "--use-device-code"];
        if let Some(t) = tenant {
            login.extend(["--tenant", t]);
        }
        let subs = az.ok(&login).await;
        (az, subs)
    }
}

async fn start_sim() -> (SimHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(
        &SimOpts {
            approve_after: 200,
            ..SimOpts::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    (sim, dir)
}

/// `GET {inspect}/state`, trusting only the simulator's CA.
async fn state(sim: &SimHandle) -> Value {
    let ca = reqwest::Certificate::from_pem(&sim.ca_pem()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    http.get(format!("{}/state", sim.endpoints.inspect))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn items<'a>(state: &'a Value, kind: &str, key: &str, value: &str) -> Vec<&'a Value> {
    state[kind]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o[key] == value)
        .collect()
}

/// The claims of a JWT (not verified: the contract tests check signatures).
fn claims(token: &str) -> Value {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let payload = token.split('.').nth(1).expect("a JWT");
    let (mut out, mut acc, mut bits) = (vec![], 0u32, 0);
    for c in payload.bytes() {
        acc = (acc << 6) | A.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    serde_json::from_slice(&out).unwrap()
}

fn tenants_of(subs: &Value) -> std::collections::BTreeSet<String> {
    subs.as_array()
        .unwrap()
        .iter()
        .map(|s| s["tenantId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_operations_take_effect_in_the_simulator() {
    let Some(exe) = az_exe() else { return };
    let (sim, _dir) = start_sim().await;
    let sub = SUB_CONTOSO_PROD;
    let scope = format!("/subscriptions/{sub}");

    // az login --use-device-code: every subscription of both tenants.
    let (az, subs) = Az::signed_in(exe.clone(), &sim, None).await;
    assert_eq!(
        tenants_of(&subs),
        [CONTOSO_TENANT_ID, FABRIKAM_TENANT_ID]
            .map(String::from)
            .into()
    );
    assert!(
        subs.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == sub && s["user"]["name"] == OPERATOR_UPN && s["isDefault"] == true)
    );
    let all = az.ok(&["account", "list", "--all"]).await;
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
    assert_eq!(tenants_of(&all).len(), 2);

    // az account get-access-token [--tenant] [--resource]: JWTs for that tenant and audience.
    let t = az.ok(&["account", "get-access-token"]).await;
    let c = claims(t["accessToken"].as_str().unwrap());
    assert_eq!(c["aud"], format!("{}/", sim.endpoints.arm));
    assert_eq!(c["tid"], CONTOSO_TENANT_ID);
    assert_eq!(c["upn"], OPERATOR_UPN);
    let t = az
        .ok(&[
            "account",
            "get-access-token",
            "--tenant",
            FABRIKAM_TENANT_ID,
        ])
        .await;
    assert_eq!(t["tenant"], FABRIKAM_TENANT_ID);
    assert_eq!(
        claims(t["accessToken"].as_str().unwrap())["tid"],
        FABRIKAM_TENANT_ID
    );
    let graph_resource = format!("{}/", sim.endpoints.graph);
    let t = az
        .ok(&["account", "get-access-token", "--resource", &graph_resource])
        .await;
    assert_eq!(
        claims(t["accessToken"].as_str().unwrap())["aud"],
        graph_resource
    );

    // az ad app create | list | show
    let app = az
        .ok(&["ad", "app", "create", "--display-name", "az-cli-app"])
        .await;
    let app_id = app["appId"].as_str().unwrap().to_string();
    let st = state(&sim).await;
    let stored = items(&st, "applications", "appId", &app_id);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["displayName"], "az-cli-app");
    assert_eq!(stored[0]["tenantId"], CONTOSO_TENANT_ID);
    let object_id = stored[0]["id"].as_str().unwrap().to_string();
    let listed = az
        .ok(&["ad", "app", "list", "--display-name", "az-cli-app"])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], object_id.as_str());
    let shown = az.ok(&["ad", "app", "show", "--id", &app_id]).await;
    assert_eq!(shown["id"], object_id.as_str());

    // az ad sp create | show
    let sp = az.ok(&["ad", "sp", "create", "--id", &app_id]).await;
    let st = state(&sim).await;
    let sps = items(&st, "servicePrincipals", "appId", &app_id);
    assert_eq!(sps.len(), 1);
    let sp_id = sps[0]["id"].as_str().unwrap().to_string();
    assert_eq!(sp["id"], sp_id.as_str());
    let shown = az.ok(&["ad", "sp", "show", "--id", &app_id]).await;
    assert_eq!(shown["id"], sp_id.as_str());

    // az ad app credential reset --append (twice: both secrets stay).
    let mut secrets = vec![];
    for _ in 0..2 {
        let cred = az
            .ok(&[
                "ad",
                "app",
                "credential",
                "reset",
                "--id",
                &app_id,
                "--append",
            ])
            .await;
        assert_eq!(cred["appId"], app_id.as_str());
        assert_eq!(cred["tenant"], CONTOSO_TENANT_ID);
        secrets.push(cred["password"].as_str().unwrap().to_string());
    }
    let st = state(&sim).await;
    let stored: Vec<String> =
        items(&st, "applications", "appId", &app_id)[0]["passwordCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["secretText"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(stored, secrets);

    // az role definition create | list
    let role_file = _dir.path().join("role.json");
    std::fs::write(
        &role_file,
        json!({"Name": "az cli role", "Description": "made by az", "Actions": ["Microsoft.Compute/*/read"],
               "NotActions": [], "AssignableScopes": [scope]})
        .to_string(),
    )
    .unwrap();
    let role = az
        .ok(&[
            "role",
            "definition",
            "create",
            "--role-definition",
            &format!("@{}", role_file.display()),
        ])
        .await;
    let role_guid = role["name"].as_str().unwrap().to_string();
    let st = state(&sim).await;
    let roles = items(&st, "roleDefinitions", "name", &role_guid);
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["roleName"], "az cli role");
    assert_eq!(roles[0]["tenantId"], CONTOSO_TENANT_ID);
    assert_eq!(roles[0]["assignableScopes"], json!([scope]));
    let listed = az
        .ok(&[
            "role",
            "definition",
            "list",
            "--name",
            "az cli role",
            "--scope",
            &scope,
        ])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], role_guid.as_str());

    // az role assignment create | list | delete, with the principal named by its appId.
    let ra = az
        .ok(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app_id,
            "--role",
            "az cli role",
            "--scope",
            &scope,
        ])
        .await;
    let st = state(&sim).await;
    let assigned = items(&st, "roleAssignments", "principalId", &sp_id);
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["name"], ra["name"]);
    assert_eq!(assigned[0]["scope"], scope.as_str());
    assert!(
        assigned[0]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with(&role_guid)
    );
    assert_eq!(assigned[0]["principalType"], "ServicePrincipal");
    let listed = az
        .ok(&[
            "role",
            "assignment",
            "list",
            "--assignee",
            &app_id,
            "--scope",
            &scope,
        ])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["roleDefinitionName"], "az cli role");
    assert_eq!(listed[0]["principalName"], app_id.as_str());
    // Every assignment at the scope, names resolved through directoryObjects/getByIds.
    let everyone = az
        .ok(&["role", "assignment", "list", "--scope", &scope])
        .await;
    assert!(
        everyone
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["principalName"] == OPERATOR_UPN
                && a["principalType"] == "User"
                && a["roleDefinitionName"] == "Owner"),
        "{everyone}"
    );
    az.ok(&[
        "role",
        "assignment",
        "delete",
        "--assignee",
        &app_id,
        "--role",
        "az cli role",
        "--scope",
        &scope,
    ])
    .await;
    assert!(items(&state(&sim).await, "roleAssignments", "principalId", &sp_id).is_empty());

    // az role definition delete
    az.ok(&[
        "role",
        "definition",
        "delete",
        "--name",
        "az cli role",
        "--scope",
        &scope,
    ])
    .await;
    assert!(items(&state(&sim).await, "roleDefinitions", "name", &role_guid).is_empty());

    // az ad sp create-for-rbac --role --scopes: app, SP, secret and assignment in one.
    let rbac = az
        .ok(&[
            "ad",
            "sp",
            "create-for-rbac",
            "--name",
            "az-cli-rbac",
            "--role",
            "Contributor",
            "--scopes",
            &scope,
        ])
        .await;
    let rbac_app = rbac["appId"].as_str().unwrap().to_string();
    let st = state(&sim).await;
    let apps = items(&st, "applications", "appId", &rbac_app);
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["displayName"], "az-cli-rbac");
    assert_eq!(
        apps[0]["passwordCredentials"][0]["secretText"],
        rbac["password"]
    );
    let rbac_sp = items(&st, "servicePrincipals", "appId", &rbac_app)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let assigned = items(&st, "roleAssignments", "principalId", &rbac_sp);
    assert_eq!(assigned.len(), 1);
    assert!(
        assigned[0]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with(ROLE_CONTRIBUTOR)
    );
    assert_eq!(assigned[0]["scope"], scope.as_str());

    // az ad app delete: the app and its service principal are gone.
    az.ok(&["ad", "app", "delete", "--id", &app_id]).await;
    let st = state(&sim).await;
    assert!(items(&st, "applications", "appId", &app_id).is_empty());
    assert!(items(&st, "servicePrincipals", "appId", &app_id).is_empty());

    // az login --tenant: only that tenant's subscriptions, and tokens for it.
    let (fab, subs) = Az::signed_in(exe, &sim, Some(FABRIKAM_TENANT_ID)).await;
    assert_eq!(tenants_of(&subs), [FABRIKAM_TENANT_ID.to_string()].into());
    let t = fab.ok(&["account", "get-access-token"]).await;
    assert_eq!(
        claims(t["accessToken"].as_str().unwrap())["tid"],
        FABRIKAM_TENANT_ID
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_auth_azure_cli_reaches_connected() {
    let Some(exe) = az_exe() else { return };
    let (sim, dir) = start_sim().await;
    let (az, _) = Az::signed_in(exe.clone(), &sim, None).await;
    // `spot-connect` finds `az` on PATH (azure_identity's AzureCliCredential runs
    // `az account get-access-token --scope …`).
    let bin_dir = exe.parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"));
    cmd.env("SPOT_CONNECT_KEYRING", "off");
    cmd.args(["apply", "--auth", "azure-cli", "--endpoints"])
        .arg(&sim.endpoints_path)
        .args([
            "--subscription",
            SUB_CONTOSO_DEV,
            "--yes",
            "--json",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .envs(az.env())
        .env("PATH", path)
        .env_remove("SPOTINST_TOKEN")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("apply finishes")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "apply failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains(OPERATOR_UPN),
        "signed in as the az user: {stderr}"
    );
    let st = state(&sim).await;
    let connected: Vec<&Value> = st["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == SUB_CONTOSO_DEV)
        .collect();
    assert_eq!(connected.len(), 1, "{}", st["spot"]);
    let creds = &connected[0]["credentials"];
    assert_eq!(creds["tenantId"], CONTOSO_TENANT_ID);
    let app = items(
        &st,
        "applications",
        "appId",
        creds["clientId"].as_str().unwrap(),
    );
    assert_eq!(app.len(), 1);
    assert!(
        app[0]["passwordCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["secretText"] == creds["clientSecret"])
    );
    // The tokens came from az: the only device-code sign-in is az's own `az login`.
    let device_codes = sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/devicecode"))
        .count();
    assert_eq!(device_codes, 1);
    sim.shutdown().await;
}

/// `spot-connect apply --auth client-secret` for one subscription as the app `client_id`.
async fn apply_as(
    sim: &SimHandle,
    state_dir: &std::path::Path,
    client_id: &str,
    secret: &str,
    sub: &str,
) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"));
    cmd.env("SPOT_CONNECT_KEYRING", "off");
    cmd.args(["apply", "--auth", "client-secret", "--endpoints"])
        .arg(&sim.endpoints_path)
        .args(["--subscription", sub, "--yes", "--state-dir"])
        .arg(state_dir)
        .env("AZURE_TENANT_ID", CONTOSO_TENANT_ID)
        .env("AZURE_CLIENT_ID", client_id)
        .env("AZURE_CLIENT_SECRET", secret)
        .env_remove("SPOTINST_TOKEN")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("apply finishes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(secret), "no secret on stderr");
    (out.status.success(), stderr)
}

/// An administrator with the Azure CLI makes a service principal (`az ad sp create-for-rbac`),
/// asks for and grants it Microsoft Graph's Application.ReadWrite.OwnedBy, and then that
/// principal connects a subscription with `apply --auth client-secret`. `az ad app permission
/// add|list|grant|list-grants` drive Graph's routes; `admin-consent` is refused by the CLI itself
/// outside the public cloud, so the app role is granted with `az rest` on Graph's documented
/// `appRoleAssignedTo`, and a directory role with `az rest` on `roleManagement/directory/roleAssignments`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_grants_a_service_principal_the_right_to_register_apps_and_it_connects() {
    let Some(exe) = az_exe() else { return };
    let (sim, dir) = start_sim().await;
    let (az, _) = Az::signed_in(exe, &sim, None).await;
    let sub = SUB_CONTOSO_DEV;
    let rbac = az
        .ok(&[
            "ad",
            "sp",
            "create-for-rbac",
            "--name",
            "az-cli-granted",
            "--role",
            "Owner",
            "--scopes",
            &format!("/subscriptions/{sub}"),
        ])
        .await;
    let app_id = rbac["appId"].as_str().unwrap().to_string();
    let secret = rbac["password"].as_str().unwrap().to_string();
    let sp_id = az.ok(&["ad", "sp", "show", "--id", &app_id]).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Microsoft Graph's service principal and its app roles, as `az ad sp show` finds them.
    let graph_sp = az
        .ok(&["ad", "sp", "show", "--id", MICROSOFT_GRAPH_APP_ID])
        .await;
    assert_eq!(graph_sp["displayName"], "Microsoft Graph");
    let graph_id = graph_sp["id"].as_str().unwrap().to_string();
    assert!(
        graph_sp["appRoles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == GRAPH_APPLICATION_READWRITE_OWNEDBY
                && r["value"] == "Application.ReadWrite.OwnedBy"),
        "{graph_sp}"
    );

    // az ad app permission add | list: the request is stored on the app (requiredResourceAccess).
    let role_perm = format!("{GRAPH_APPLICATION_READWRITE_OWNEDBY}=Role");
    az.ok(&[
        "ad",
        "app",
        "permission",
        "add",
        "--id",
        &app_id,
        "--api",
        MICROSOFT_GRAPH_APP_ID,
        "--api-permissions",
        &role_perm,
    ])
    .await;
    let listed = az
        .ok(&["ad", "app", "permission", "list", "--id", &app_id])
        .await;
    assert_eq!(listed[0]["resourceAppId"], MICROSOFT_GRAPH_APP_ID);
    assert_eq!(
        listed[0]["resourceAccess"],
        json!([{"id": GRAPH_APPLICATION_READWRITE_OWNEDBY, "type": "Role"}])
    );
    // admin-consent: the CLI calls a portal API of the public cloud only.
    let consent = az
        .run(&["ad", "app", "permission", "admin-consent", "--id", &app_id])
        .await;
    assert!(!consent.ok);
    assert!(
        consent
            .stderr
            .contains("not yet supported on sovereign clouds"),
        "{}",
        consent.stderr
    );
    // az ad app permission grant | list-grants: a delegated grant (oauth2PermissionGrants).
    let grant = az
        .ok(&[
            "ad",
            "app",
            "permission",
            "grant",
            "--id",
            &app_id,
            "--api",
            MICROSOFT_GRAPH_APP_ID,
            "--scope",
            "User.Read",
        ])
        .await;
    assert_eq!(grant["clientId"], sp_id.as_str());
    assert_eq!(grant["resourceId"], graph_id.as_str());
    assert_eq!(grant["consentType"], "AllPrincipals");
    let st = state(&sim).await;
    let grants = items(&st, "oauth2PermissionGrants", "clientId", &sp_id);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["scope"], "User.Read");
    let listed = az
        .ok(&["ad", "app", "permission", "list-grants", "--id", &app_id])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Delegated grants do not let an app register apps on its own: refused, naming it.
    let state_dir = dir.path().join("state");
    let (ok, stderr) = apply_as(&sim, &state_dir, &app_id, &secret, sub).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("service principal {sp_id}")),
        "{stderr}"
    );

    // The application permission, granted with az rest on Graph's appRoleAssignedTo.
    let graph = &sim.endpoints.graph;
    let assigned = az
        .ok(&[
            "rest",
            "--method",
            "POST",
            "--url",
            &format!("{graph}/v1.0/servicePrincipals/{graph_id}/appRoleAssignedTo"),
            "--body",
            &json!({"principalId": sp_id, "resourceId": graph_id, "appRoleId": GRAPH_APPLICATION_READWRITE_OWNEDBY}).to_string(),
        ])
        .await;
    assert_eq!(assigned["principalId"], sp_id.as_str());
    assert_eq!(assigned["appRoleId"], GRAPH_APPLICATION_READWRITE_OWNEDBY);
    let st = state(&sim).await;
    assert_eq!(
        items(&st, "appRoleAssignments", "principalId", &sp_id).len(),
        1
    );
    let held = az
        .ok(&[
            "rest",
            "--url",
            &format!("{graph}/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"),
        ])
        .await;
    assert_eq!(held["value"][0]["id"], assigned["id"]);

    // A directory role the same way: create, list, delete.
    let ras = format!("{graph}/v1.0/roleManagement/directory/roleAssignments");
    let ra = az
        .ok(&[
            "rest",
            "--method",
            "POST",
            "--url",
            &ras,
            "--body",
            &json!({"roleDefinitionId": DIRECTORY_ROLE_APPLICATION_ADMIN, "principalId": sp_id, "directoryScopeId": "/"}).to_string(),
        ])
        .await;
    assert_eq!(ra["roleDefinitionId"], DIRECTORY_ROLE_APPLICATION_ADMIN);
    let mine = az
        .ok(&[
            "rest",
            "--url",
            &format!("{ras}?$filter=principalId eq '{sp_id}'"),
        ])
        .await;
    assert_eq!(mine["value"].as_array().unwrap().len(), 1, "{mine}");
    az.ok(&[
        "rest",
        "--method",
        "DELETE",
        "--url",
        &format!("{ras}/{}", ra["id"].as_str().unwrap()),
    ])
    .await;
    assert!(
        items(
            &state(&sim).await,
            "directoryRoleAssignments",
            "principalId",
            &sp_id
        )
        .is_empty()
    );

    // Now the az-made principal connects the subscription.
    let (ok, stderr) = apply_as(&sim, &state_dir, &app_id, &secret, sub).await;
    assert!(ok, "{stderr}");
    let st = state(&sim).await;
    let connected = items(&st["spot"], "accounts", "providerExternalId", sub);
    assert_eq!(connected.len(), 1, "{}", st["spot"]);
    let made = connected[0]["credentials"]["clientId"].as_str().unwrap();
    assert_ne!(
        made, app_id,
        "the app Spot holds is the one the principal made"
    );
    assert_eq!(items(&st, "applications", "appId", made).len(), 1);
    sim.shutdown().await;
}
