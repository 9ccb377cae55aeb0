//! The simulated clouds: identity platform, Microsoft Graph, ARM and the Spot API over HTTPS on
//! loopback (PRODUCT.md §3, docs/simulator.md).
//!
//! One HTTPS listener per service, each service at the root of its own origin as the real hosts
//! are (`login`, `graph`, `arm`, `spot`, and `inspect` for the test oracle). Every call goes
//! through [`entry`]: latency, fault injection, the request log, then the
//! service's handler, which works on the one [`state::World`] behind a lock. Handlers are plain
//! functions from a [`Ctx`] to a [`Resp`]; errors carry each service's documented shape.

mod arm;
mod authorize;
mod faults;
mod graph;
mod jwt;
mod login;
mod mgmt;
mod opts;
pub mod seed;
mod spot;
pub mod state;
mod tls;

use crate::endpoints::{Endpoints, EndpointsFile};
use crate::error::{Error, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
pub use opts::SimOpts;
use serde_json::{Value, json};
use state::{Audience, Principal, World};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A running simulator.
pub struct SimHandle {
    pub endpoints: EndpointsFile,
    pub endpoints_path: PathBuf,
    sim: Arc<Sim>,
    servers: Vec<axum_server::Handle<SocketAddr>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The endpoints in the form the clients use (custom cloud, CA to trust).
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::from_file_contents(&self.endpoints)
    }

    /// The CA certificate (PEM) the simulator's leaf is signed by.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.sim.ca_pem.clone().into_bytes()
    }

    /// The address each service listens on.
    pub fn addr(&self, service: &str) -> Option<SocketAddr> {
        self.sim
            .addrs
            .iter()
            .find(|(s, _)| s.name() == service)
            .map(|(_, a)| *a)
    }

    /// Same JSON as `GET {inspect}/state` (every object, secrets included).
    pub fn state(&self) -> Value {
        self.sim.world().inspect()
    }

    /// Same JSON as `GET {inspect}/requests`.
    pub fn requests(&self) -> Value {
        self.sim.world().requests_json()
    }

    /// Same as `POST {inspect}/faults/drop-after?method=…&path=…&count=…`: the next `count` calls
    /// with `method` whose path (e.g. `/subscriptions/…/roleAssignments/…`) contains `path` (any case) are
    /// handled, then their connection is dropped: the write happens, the reply is lost.
    pub fn drop_after(&self, method: &str, path: &str, count: u32) {
        let fault = state::ArmedFault::DropAfter;
        self.sim.world().arm(method, path, count, fault);
    }

    /// Same as `POST {inspect}/faults/delay?method=…&path=…&count=…&ms=…`: the next `count` calls
    /// with `method` whose path contains `path` (any case) wait `ms` before they are handled.
    pub fn delay(&self, method: &str, path: &str, count: u32, ms: u64) {
        let fault = state::ArmedFault::Delay(ms);
        self.sim.world().arm(method, path, count, fault);
    }

    /// A Spot token of a user who is not an Organization Admin (`POST {inspect}/spot/tokens`):
    /// it sees and changes only `accounts` and the accounts it creates. Listing the
    /// organization's accounts without `cloudAccountId` is refused (403), `cloudAccountId`
    /// lists only its accounts, deleting an account is refused (admins only), and any call on
    /// another account gets 403 (docs/simulator.md).
    pub fn scoped_spot_token(&self, accounts: &[&str]) -> String {
        let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
        self.sim.world().add_scoped_spot_token(&accounts)
    }

    /// Same as `POST {inspect}/faults/fail?method=…&path=…&count=…&status=…`: the next `count`
    /// calls with `method` whose path contains `path` (any case) are answered with `status` (500,
    /// 502, 503 or 504) instead of being handled.
    pub fn fail(&self, method: &str, path: &str, count: u32, status: u16) {
        let fault = state::ArmedFault::Fail(status);
        self.sim.world().arm(method, path, count, fault);
    }

    /// Same as `POST {inspect}/oidc/token?sub=…&aud=…&expires_in=…`: a federated token of the
    /// simulated Kubernetes issuer for `sub` (ci-operator trusts [`seed::WORKLOAD_SUBJECT`]).
    pub fn workload_token(&self, sub: &str, aud: &str, expires_in: i64) -> String {
        workload_token(&self.sim, sub, aud, None, expires_in)
    }

    /// The `iss` of the simulated Kubernetes issuer (`{inspect}/oidc`).
    pub fn workload_issuer(&self) -> String {
        self.sim.workload_issuer()
    }

    /// Same as `POST {inspect}/policies/app-management?tenant=…` (`app: None`) or `?app=…`:
    /// sets a tenant's default app management policy (`policy` merged over the disabled
    /// default) or gives an application its own policy.
    pub fn set_app_management_policy(
        &self,
        tenant: Option<&str>,
        app: Option<&str>,
        policy: Value,
    ) {
        let mut w = self.sim.world();
        graph::set_policy(&mut w, tenant, app, policy);
    }

    /// Same as `POST {inspect}/policies/app-management/deny-read?tenant=…`: reading the app
    /// management policies of `tenant` is refused (403) whoever asks.
    pub fn deny_app_policy_read(&self, tenant: &str) {
        self.sim
            .world()
            .app_policy_read_denied
            .push(tenant.to_string());
    }

    /// Same as `POST {inspect}/management-groups/subscriptions?group=G&id=ID`: subscription
    /// `id` moved to management group `group`, or, when no subscription has that id, a new
    /// Enabled one (named `name`) made in Contoso and placed there. Panics on an unknown group.
    pub fn place_subscription(&self, group: &str, id: &str, name: &str) {
        let mut w = self.sim.world();
        let tenant = w
            .subscription(id)
            .map(|s| s.tenant_id.clone())
            .unwrap_or_else(|| seed::CONTOSO_TENANT_ID.to_string());
        assert!(
            w.mgmt.group(&tenant, group).is_some(),
            "no management group {group} in tenant {tenant}"
        );
        if w.subscription(id).is_none() {
            w.subscriptions.push(state::Subscription {
                id: id.to_ascii_lowercase(),
                tenant_id: tenant,
                name: name.to_string(),
                state: "Enabled",
            });
        }
        w.place_subscription(id, group);
    }

    /// Same as `POST {inspect}/management-groups/assignments?group=G&count=N`: N Reader
    /// assignments of made-up principals at group `group` (to reach its 500 limit).
    pub fn fill_group_assignments(&self, group: &str, count: usize) {
        let mut w = self.sim.world();
        let g = w
            .mgmt
            .find_any(group)
            .unwrap_or_else(|| panic!("no management group {group}"));
        mgmt::fill(&mut w, &g.0, &g.1, count);
    }

    /// A role assignment deleted out of band (as another administrator's `DELETE` of it would):
    /// drift for `reconcile` to repair. Panics when no assignment has that name.
    pub fn delete_role_assignment(&self, name: &str) {
        let mut w = self.sim.world();
        let before = w.role_assignments.len();
        w.role_assignments
            .retain(|a| !a.name.eq_ignore_ascii_case(name));
        assert!(
            w.role_assignments.len() < before,
            "no role assignment {name}"
        );
    }

    /// Same as `POST {inspect}/secrets/expire?keyId=K&days=N`: client secret `key_id` ends in
    /// `days` days, and the Spot accounts holding it say so. Panics on an unknown keyId.
    pub fn expire_secret(&self, key_id: &str, days: i64) {
        let mut w = self.sim.world();
        assert!(
            mgmt::expire_secret(&mut w, key_id, days).is_some(),
            "no client secret {key_id}"
        );
    }

    /// Stops listening and closes connections.
    pub async fn shutdown(mut self) {
        for s in &self.servers {
            s.shutdown();
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for s in &self.servers {
            s.shutdown();
        }
    }
}

pub(crate) struct Sim {
    pub opts: SimOpts,
    world: Mutex<World>,
    seq: AtomicU64,
    /// The origin of each service (`https://127.0.0.1:PORT`, no path).
    pub origins: Origins,
    addrs: Vec<(Service, SocketAddr)>,
    ca_pem: String,
}

/// Where each simulated service lives: an origin without a path.
pub(crate) struct Origins {
    pub login: String,
    pub graph: String,
    pub arm: String,
    pub spot: String,
    pub inspect: String,
}

impl Sim {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn delay(&self) -> Duration {
        Duration::from_secs_f64(self.opts.replication_delay.max(0.0))
    }

    /// Has an object created at `born` replicated everywhere?
    pub fn settled(&self, born: Instant) -> bool {
        born.elapsed() >= self.delay()
    }

    pub fn graph_base(&self) -> String {
        self.origins.graph.clone()
    }

    pub fn arm_base(&self) -> String {
        self.origins.arm.clone()
    }

    /// The `iss` of the simulated external OpenID Connect issuer (a Kubernetes cluster's).
    pub fn workload_issuer(&self) -> String {
        format!("{}{}", self.origins.inspect, seed::WORKLOAD_ISSUER_PATH)
    }
}

/// Which simulated service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    Login,
    Graph,
    Arm,
    Spot,
    Inspect,
}

impl Service {
    const ALL: [Service; 5] = [
        Service::Login,
        Service::Graph,
        Service::Arm,
        Service::Spot,
        Service::Inspect,
    ];

    fn name(self) -> &'static str {
        match self {
            Service::Login => "login",
            Service::Graph => "graph",
            Service::Arm => "arm",
            Service::Spot => "spot",
            Service::Inspect => "inspect",
        }
    }

    /// An error reply in this service's documented shape.
    pub fn error(self, ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
        let now = OffsetDateTime::now_utc();
        let body = match self {
            Service::Login => return login::oauth_error(ctx, status, code, 0, message),
            Service::Graph => json!({"error": {
                "code": code, "message": message,
                "innerError": {
                    "date": now.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).unwrap_or_default(),
                    "request-id": ctx.request_id, "client-request-id": ctx.client_request_id(),
                }
            }}),
            Service::Arm | Service::Inspect => json!({"error": {"code": code, "message": message}}),
            Service::Spot => json!({
                "request": spot::request_json(ctx),
                "response": {
                    "status": {"code": status, "message": reason(status)},
                    "errors": [{"code": code, "message": message}],
                }
            }),
        };
        Resp::json(status, body)
    }
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// One request, as the handlers see it.
pub(crate) struct Ctx {
    pub service: Service,
    pub method: Method,
    /// The request path (percent-decoded), e.g. `/v1.0/applications`.
    pub path: String,
    /// Path and query (Spot's `request.url`).
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
}

impl Ctx {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The JSON body; `None` when absent or not JSON.
    pub fn json(&self) -> Option<Value> {
        if self.body.is_empty() {
            return Some(Value::Null);
        }
        serde_json::from_slice(&self.body).ok()
    }

    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    pub fn bearer(&self) -> Option<&str> {
        let v = self.headers.get("authorization")?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    pub fn client_request_id(&self) -> String {
        self.headers
            .get("client-request-id")
            .or_else(|| self.headers.get("x-ms-client-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| self.request_id.clone())
    }
}

/// A reply: status, optional JSON body, extra headers.
pub(crate) struct Resp {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    pub fn json(status: u16, body: Value) -> Resp {
        Resp {
            status,
            body: Some(body),
            headers: vec![],
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: None,
            headers: vec![],
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Resp {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `details` to an `{"error":{…}}` body (Graph / ARM).
    pub fn details(mut self, details: Value) -> Resp {
        if let Some(e) = self
            .body
            .as_mut()
            .and_then(|b| b.get_mut("error"))
            .and_then(Value::as_object_mut)
        {
            e.insert("details".into(), details);
        }
        self
    }
}

/// Checks the bearer token of a Graph or ARM call: returns the token's tenant and principal.
pub(crate) fn authenticate(
    sim: &Sim,
    w: &World,
    ctx: &Ctx,
    audience: Audience,
) -> std::result::Result<(String, Principal), Resp> {
    let deny = |m: &str| Err(ctx.service.error(ctx, 401, "InvalidAuthenticationToken", m));
    let Some(token) = ctx.bearer() else {
        return match ctx.service {
            Service::Graph => deny("Access token is empty."),
            _ => deny(
                "The access token is missing. The 'Authorization' header must carry a bearer token.",
            ),
        };
    };
    // An RS256 JWT signed by the simulator's key (jwt.rs), for this audience, tenant and time.
    let Some(claims) = jwt::key().verify(token) else {
        return deny("Access token validation failure. Invalid audience or signature.");
    };
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= OffsetDateTime::now_utc().unix_timestamp() {
        return match ctx.service {
            Service::Graph => deny("Lifetime validation failed, the token is expired."),
            _ => deny("The access token expiry UTC time is earlier than current UTC time."),
        };
    }
    if login::audience_of_resource(sim, s("aud")) != Some(audience) {
        let expected = match audience {
            Audience::Graph => sim.graph_base(),
            Audience::Arm => sim.arm_base(),
        };
        return deny(&format!(
            "Access token validation failure. Invalid audience: the token is not for '{expected}'."
        ));
    }
    let tenant = s("tid");
    if w.tenant(tenant).is_none() || s("iss") != format!("https://sts.windows.net/{tenant}/") {
        return deny("Access token validation failure. Invalid issuer or tenant.");
    }
    let principal = match s("idtyp") {
        "user" => Principal::User {
            id: s("oid").to_string(),
        },
        "app" => Principal::ServicePrincipal {
            id: s("oid").to_string(),
            app_id: s("appid").to_string(),
        },
        _ => return deny("Access token validation failure. Unknown token type."),
    };
    Ok((tenant.to_string(), principal))
}

async fn entry(State((sim, service)): State<(Arc<Sim>, Service)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let rest = percent_decode(parts.uri.path());
    let query_str = parts.uri.query().unwrap_or("").to_string();
    let seq = if service == Service::Inspect {
        0
    } else {
        sim.seq.fetch_add(1, Ordering::SeqCst) + 1
    };
    let ctx = Ctx {
        service,
        method: parts.method.clone(),
        url: if query_str.is_empty() {
            rest.clone()
        } else {
            format!("{rest}?{query_str}")
        },
        path: rest,
        query: url::form_urlencoded::parse(query_str.as_bytes())
            .into_owned()
            .collect(),
        headers: parts.headers,
        body,
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    if service != Service::Inspect && sim.opts.latency > 0 {
        tokio::time::sleep(Duration::from_millis(sim.opts.latency)).await;
    }
    let armed_delay = if service == Service::Inspect {
        None
    } else {
        sim.world().take_armed(ctx.method.as_str(), &ctx.path, |f| {
            matches!(f, state::ArmedFault::Delay(_))
        })
    };
    if let Some(state::ArmedFault::Delay(ms)) = armed_delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let armed_fail = if service == Service::Inspect {
        None
    } else {
        sim.world().take_armed(ctx.method.as_str(), &ctx.path, |f| {
            matches!(f, state::ArmedFault::Fail(_))
        })
    };
    let fault = if service == Service::Inspect || armed_fail.is_some() {
        None
    } else {
        faults::pick(&sim.opts, seq, faults::is_role_assignment_put(&ctx)).or_else(|| {
            sim.world()
                .take_armed(ctx.method.as_str(), &ctx.path, |f| {
                    f == state::ArmedFault::DropAfter
                })
                .map(|_| faults::Fault::DropAfter)
        })
    };
    let resp = match (fault, armed_fail) {
        (_, Some(state::ArmedFault::Fail(status))) => faults::status_reply(&ctx, status),
        (Some(f), _) if f.before_handling() => f.reply(&ctx),
        _ => match service {
            Service::Login => login::handle(&sim, &ctx),
            Service::Graph => graph::handle(&sim, &ctx),
            Service::Arm => arm::handle(&sim, &ctx, fault),
            Service::Spot => spot::handle(&sim, &ctx),
            Service::Inspect => inspect(&sim, &ctx),
        },
    };
    let resp = decorate(service, &ctx, resp);
    if service != Service::Inspect {
        let mut w = sim.world();
        w.log.push(state::LogEntry {
            seq,
            time: OffsetDateTime::now_utc(),
            service: service.name(),
            method: ctx.method.to_string(),
            path: ctx.url.clone(),
            status: if fault.is_some_and(faults::Fault::drops) {
                0
            } else {
                resp.status
            },
            fault: fault
                .map(faults::Fault::name)
                .or(armed_fail.map(|_| "fail")),
        });
    }
    tracing::debug!(service = service.name(), method = %ctx.method, path = %ctx.path, status = resp.status, "sim");
    if fault.is_some_and(faults::Fault::drops) {
        // Unwinds the connection task without running the panic hook: the client sees the
        // connection close with no response.
        std::panic::resume_unwind(Box::new("simulated dropped connection"));
    }
    to_response(resp)
}

/// `%XX` → byte (paths like `servicePrincipals(appId=%27…%27)`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Headers every reply of a service carries.
fn decorate(service: Service, ctx: &Ctx, resp: Resp) -> Resp {
    match service {
        Service::Graph => resp
            .header("request-id", ctx.request_id.clone())
            .header("client-request-id", ctx.client_request_id()),
        Service::Arm => resp
            .header("x-ms-request-id", ctx.request_id.clone())
            .header("x-ms-correlation-request-id", ctx.client_request_id()),
        Service::Login => resp
            .header("x-ms-request-id", ctx.request_id.clone())
            .header("cache-control", "no-store, no-cache"),
        _ => resp,
    }
}

fn to_response(resp: Resp) -> Response {
    let mut b = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        b = b.header(*k, v);
    }
    let body = match &resp.body {
        Some(v) => {
            b = b.header("content-type", "application/json; charset=utf-8");
            Body::from(serde_json::to_vec(v).unwrap_or_default())
        }
        None => Body::empty(),
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// `/inspect`: the test oracle (state, request log) and device-code controls.
fn inspect(sim: &Sim, ctx: &Ctx) -> Resp {
    let segs = ctx.segments();
    match (ctx.method.as_str(), segs.as_slice()) {
        ("GET", ["state"]) => Resp::json(200, sim.world().inspect()),
        ("GET", ["requests"]) => Resp::json(200, sim.world().requests_json()),
        ("POST", ["device", action @ ("decline" | "expire")]) => {
            let code = ctx.q("user_code").map(str::to_string).or_else(|| {
                ctx.json().and_then(|v| {
                    v.get("user_code")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            });
            let mut w = sim.world();
            let Some(dc) = w
                .device_codes
                .values_mut()
                .find(|d| Some(&d.user_code) == code.as_ref())
            else {
                return ctx.service.error(
                    ctx,
                    404,
                    "NotFound",
                    "No device code with that user_code.",
                );
            };
            if *action == "decline" {
                dc.declined = true;
            } else {
                dc.expires = Instant::now();
            }
            Resp::empty(204)
        }
        ("POST", ["management-groups", "subscriptions"]) => {
            mgmt::inspect_place(&mut sim.world(), ctx)
        }
        ("POST", ["management-groups", "assignments"]) => mgmt::inspect_fill(&mut sim.world(), ctx),
        ("POST", ["secrets", "expire"]) => {
            let days = ctx.q("days").and_then(|d| d.parse::<i64>().ok());
            match (ctx.q("keyId"), days) {
                (Some(k), Some(d)) => match mgmt::expire_secret(&mut sim.world(), k, d) {
                    Some(end) => Resp::json(200, json!({"keyId": k, "endDateTime": end})),
                    None => {
                        ctx.service
                            .error(ctx, 404, "NotFound", "No client secret with that keyId.")
                    }
                },
                _ => ctx.service.error(
                    ctx,
                    400,
                    "BadRequest",
                    "keyId and days (a number) are required.",
                ),
            }
        }
        ("POST", ["spot", "tokens"]) => {
            let accounts: Vec<String> = ctx
                .q("accounts")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            let token = sim.world().add_scoped_spot_token(&accounts);
            Resp::json(200, json!({"token": token, "accounts": accounts}))
        }
        ("GET", ["oidc", ".well-known", "openid-configuration"]) => {
            let iss = sim.workload_issuer();
            Resp::json(
                200,
                json!({
                    "issuer": iss,
                    "jwks_uri": format!("{iss}/openid/v1/jwks"),
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            )
        }
        ("GET", ["oidc", "openid", "v1", "jwks"]) => Resp::json(200, jwt::issuer_key().jwks()),
        ("POST", ["oidc", "token"]) => {
            let Ok(expires_in) = ctx.q("expires_in").unwrap_or("3600").parse::<i64>() else {
                return ctx.service.error(
                    ctx,
                    400,
                    "BadRequest",
                    "expires_in: a number of seconds (negative: already expired).",
                );
            };
            let token = workload_token(
                sim,
                ctx.q("sub").unwrap_or(seed::WORKLOAD_SUBJECT),
                ctx.q("aud").unwrap_or(seed::TOKEN_EXCHANGE_AUDIENCE),
                ctx.q("iss"),
                expires_in,
            );
            Resp::json(200, json!({"token": token}))
        }
        ("POST", ["policies", "app-management", rest @ ..]) => {
            graph::inspect_policies(sim, ctx, rest)
        }
        ("POST", ["faults", kind @ ("drop-after" | "delay" | "fail")]) => {
            let number = |name| ctx.q(name).and_then(|v| v.parse::<u64>().ok());
            let fault = match *kind {
                "drop-after" => Some(state::ArmedFault::DropAfter),
                "delay" => number("ms").map(state::ArmedFault::Delay),
                _ => number("status")
                    .filter(|s| matches!(s, 500 | 502 | 503 | 504))
                    .map(|s| state::ArmedFault::Fail(s as u16)),
            };
            let (Some(method), Some(path), Some(fault)) = (ctx.q("method"), ctx.q("path"), fault)
            else {
                return ctx.service.error(
                    ctx,
                    400,
                    "BadRequest",
                    "method and path are required (and ms, a number, for a delay; status, one of 500, 502, 503, 504, for a failure).",
                );
            };
            let count = ctx.q("count").and_then(|c| c.parse().ok()).unwrap_or(1);
            sim.world().arm(method, path, count, fault);
            Resp::empty(204)
        }
        _ => ctx
            .service
            .error(ctx, 404, "NotFound", "Unknown inspect route."),
    }
}

/// A service account token of the simulated Kubernetes cluster, as the kubelet projects it for
/// workload identity (`POST {inspect}/oidc/token`): signed by the issuer's key, `iss` the
/// simulated issuer unless `iss` is given, valid for `expires_in` seconds (negative: expired).
fn workload_token(sim: &Sim, sub: &str, aud: &str, iss: Option<&str>, expires_in: i64) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let iss = iss
        .map(str::to_string)
        .unwrap_or_else(|| sim.workload_issuer());
    let iat = now.min(now + expires_in - 60);
    jwt::issuer_key().sign(&json!({
        "aud": [aud], "iss": iss, "sub": sub,
        "iat": iat, "nbf": iat, "exp": now + expires_in,
        "kubernetes.io": {"namespace": "spot", "serviceaccount": {"name": "spot-connect"}},
    }))
}

/// The address of each service's listener: all on `listen`'s IP; port 0 gives each a free port,
/// port P gives login P, graph P+1, arm P+2, spot P+3, inspect P+4.
fn listen_addrs(listen: SocketAddr) -> Result<Vec<(Service, SocketAddr)>> {
    Service::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let port = match listen.port() {
                0 => Some(0),
                p => p.checked_add(i as u16),
            }
            .ok_or_else(|| {
                Error::Other(format!(
                    "--listen {listen}: the port is too high for five services"
                ))
            })?;
            Ok((*s, SocketAddr::new(listen.ip(), port)))
        })
        .collect()
}

/// Starts the simulator in this process; writes `<state_dir>/endpoints.json` and the CA file.
pub async fn start(opts: &SimOpts, state_dir: &Path) -> Result<SimHandle> {
    crate::http::install_crypto_provider();
    crate::safe_fs::private_dir(state_dir)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", state_dir.display())))?;
    let certs = tls::generate()?;
    // Absolute: the endpoints file is read from other directories (`--state-dir` may be relative).
    let ca_path = std::path::absolute(state_dir.join("sim-ca.pem"))
        .map_err(|e| Error::Other(format!("cannot resolve {}: {e}", state_dir.display())))?;
    crate::safe_fs::write_private(&ca_path, certs.ca_pem.as_bytes())
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", ca_path.display())))?;

    let mut listeners = vec![];
    let mut addrs = vec![];
    for (service, want) in listen_addrs(opts.listen)? {
        let listener = std::net::TcpListener::bind(want).map_err(|e| {
            Error::Other(format!(
                "cannot listen on {want} (the {} service): {e}",
                service.name()
            ))
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Other(format!("cannot configure the listener: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("cannot read the listen address: {e}")))?;
        listeners.push((service, listener));
        addrs.push((service, addr));
    }
    let origin = |service: Service| {
        let addr = addrs
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
            .unwrap_or(opts.listen);
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match addr.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            }
        };
        format!("https://{host}:{}", addr.port())
    };
    let origins = Origins {
        login: origin(Service::Login),
        graph: origin(Service::Graph),
        arm: origin(Service::Arm),
        spot: origin(Service::Spot),
        inspect: origin(Service::Inspect),
    };

    let mut server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(certs.leaf_der)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certs.leaf_key_der.into()),
        )
        .map_err(|e| Error::Other(format!("invalid simulator certificate: {e}")))?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls_config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_config));

    let sim = Arc::new(Sim {
        opts: opts.clone(),
        world: Mutex::new({
            let mut w = World::seeded(opts.seed, opts.subscriptions);
            w.mgmt.propagation = Duration::from_secs_f64(
                opts.mg_propagation_delay
                    .max(opts.replication_delay)
                    .max(0.0),
            );
            w
        }),
        seq: AtomicU64::new(0),
        origins,
        addrs,
        ca_pem: certs.ca_pem.clone(),
    });
    {
        let mut w = sim.world();
        // ci-operator trusts the simulated Kubernetes issuer (its origin is known only now).
        w.federated_credentials.push(state::FederatedCredential {
            id: seed::WORKLOAD_FIC_ID.into(),
            app_object_id: seed::CI_OPERATOR_APP_OBJECT_ID.into(),
            name: seed::WORKLOAD_FIC_NAME.into(),
            issuer: sim.workload_issuer(),
            subject: seed::WORKLOAD_SUBJECT.into(),
            audiences: vec![seed::TOKEN_EXCHANGE_AUDIENCE.into()],
            description: Some("AKS workload identity of spot-connect (simulator seed)".into()),
        });
        for (tenant, policy) in &opts.secret_lifetime_policy {
            graph::set_tenant_secret_policy(&mut w, tenant, policy)?;
        }
    }
    let mut servers = vec![];
    let mut tasks = vec![];
    for (service, listener) in listeners {
        let app = axum::Router::new()
            .fallback(entry)
            .with_state((sim.clone(), service));
        let handle = axum_server::Handle::new();
        let srv = axum_server::from_tcp_rustls(listener, tls_config.clone())
            .map_err(|e| Error::Other(format!("cannot start the simulator: {e}")))?
            .http1_only()
            .handle(handle.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = srv.serve(app.into_make_service()).await {
                tracing::error!(error = %e, service = service.name(), "simulator server stopped");
            }
        }));
        servers.push(handle);
    }

    let o = &sim.origins;
    let endpoints = EndpointsFile {
        login: o.login.clone(),
        graph: o.graph.clone(),
        arm: o.arm.clone(),
        spot: o.spot.clone(),
        inspect: o.inspect.clone(),
        ca_cert: ca_path,
        spot_token: seed::SPOT_TOKEN.to_string(),
    };
    let endpoints_path = state_dir.join("endpoints.json");
    let line = serde_json::to_string(&endpoints).map_err(|e| Error::Other(e.to_string()))?;
    crate::safe_fs::write_private(&endpoints_path, format!("{line}\n").as_bytes())
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", endpoints_path.display())))?;
    tracing::info!(login = %o.login, graph = %o.graph, arm = %o.arm, spot = %o.spot, "simulator listening");
    Ok(SimHandle {
        endpoints,
        endpoints_path,
        sim,
        servers,
        tasks,
    })
}

/// base64url without padding (JWT parts, `client_info`).
pub(crate) fn base64url(data: &[u8]) -> String {
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

/// `spot-connect sim`: start, print the endpoints JSON line, serve until interrupted.
pub async fn run_cli(opts: SimOpts, state_dir: PathBuf) -> Result<()> {
    let handle = start(&opts, &state_dir).await?;
    let line = serde_json::to_string(&handle.endpoints).map_err(|e| Error::Other(e.to_string()))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::Other(format!("stdout: {e}")))?;
    }
    // stderr, so stdout stays the one JSON line scripts read.
    eprintln!(
        "next: spot-connect --endpoints {}   (in another terminal; Ctrl-C here stops the simulator)",
        handle.endpoints_path.display()
    );
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_its_own_port() {
        let free = listen_addrs("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(free.len(), 5);
        assert!(free.iter().all(|(_, a)| a.port() == 0));
        let fixed = listen_addrs("127.0.0.1:8440".parse().unwrap()).unwrap();
        let ports: Vec<(&str, u16)> = fixed.iter().map(|(s, a)| (s.name(), a.port())).collect();
        assert_eq!(
            ports,
            [
                ("login", 8440),
                ("graph", 8441),
                ("arm", 8442),
                ("spot", 8443),
                ("inspect", 8444)
            ]
        );
        assert!(listen_addrs("127.0.0.1:65533".parse().unwrap()).is_err());
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64url(b"{\"a\":1}"), "eyJhIjoxfQ");
    }
}
