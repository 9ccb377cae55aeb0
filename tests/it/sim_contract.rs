//! Contract tests of the simulated clouds: documented requests get the documented statuses and
//! bodies; every named error case is reachable and has its service's shape. One module per
//! service (identity, graph, arm, spot) and one for the simulator as a whole (harness); this
//! file holds what they share (`T`, `R`, the error-shape asserts; mgmt_sim.rs uses them too).

use serde_json::{Value, json};
use spot_connect::error::spot_codes;
use spot_connect::sim::SimOpts;
use spot_connect::sim::{self, SimHandle, seed::*};
use std::time::Duration;

mod arm;
mod graph;
mod harness;
mod identity;
mod spot;

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
