//! Identity platform v2: `/{tenant}/oauth2/v2.0/devicecode` and `/{tenant}/oauth2/v2.0/token`
//! (device_code, refresh_token, client_credentials and authorization_code grants), form-encoded,
//! OAuth error shape. `/authorize` and its codes live in `authorize.rs`.

use super::seed::OPERATOR_USER_ID;
use super::state::{Audience, DeviceCode, Principal, World, random_token};
use super::{Ctx, Resp, Sim, base64url, jwt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub const DEVICE_CODE_SECS: u64 = 900;

/// An OAuth 2.0 error body as the identity platform sends it.
pub(crate) fn oauth_error(ctx: &Ctx, status: u16, error: &str, aadsts: u32, message: &str) -> Resp {
    let ts = OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    let prefix = if aadsts > 0 {
        format!("AADSTS{aadsts}: ")
    } else {
        String::new()
    };
    let codes: Vec<u32> = if aadsts > 0 { vec![aadsts] } else { vec![] };
    let mut body = json!({
        "error": error,
        "error_description": format!(
            "{prefix}{message}\r\nTrace ID: {rid}\r\nCorrelation ID: {cid}\r\nTimestamp: {ts}",
            rid = ctx.request_id, cid = ctx.client_request_id()
        ),
        "error_codes": codes,
        "timestamp": ts,
        "trace_id": ctx.request_id,
        "correlation_id": ctx.client_request_id(),
    });
    if aadsts > 0 {
        body["error_uri"] = json!(format!(
            "https://login.microsoftonline.com/error?code={aadsts}"
        ));
    }
    Resp::json(status, body)
}

/// The resource a scope names, as requested: `X/.default` or `X/permission` → `X`
/// (`https://127.0.0.1:PORT/` stays with its slash: it is the audience the token will carry).
pub(crate) fn resource_of(scope: &str) -> Option<&str> {
    let (resource, _permission) = scope.rsplit_once('/')?;
    resource.contains("://").then_some(resource)
}

/// Which service a resource is: the simulator's own origins, or the public cloud's identifiers
/// (compared without case and without trailing slashes).
pub(crate) fn audience_of_resource(sim: &Sim, resource: &str) -> Option<Audience> {
    let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    let r = norm(resource);
    let graph = [
        norm(&sim.graph_base()),
        "https://graph.microsoft.com".into(),
        "00000003-0000-0000-c000-000000000000".into(),
    ];
    let arm = [
        norm(&sim.arm_base()),
        "https://management.core.windows.net".into(),
        "https://management.azure.com".into(),
    ];
    if graph.contains(&r) {
        Some(Audience::Graph)
    } else if arm.contains(&r) {
        Some(Audience::Arm)
    } else {
        None
    }
}

/// Which resource the first scope names (the identity platform issues for the first resource).
fn audience_of(sim: &Sim, scope: &str) -> Option<Audience> {
    let first = scope
        .split_whitespace()
        .find(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))?;
    audience_of_resource(sim, resource_of(first)?)
}

/// `{tenant}` of the URL → a tenant id for this user (organizations/common = home tenant).
pub(crate) fn resolve_user_tenant(
    w: &World,
    tenant: &str,
    user_id: &str,
) -> Result<String, (u32, String)> {
    let user = w.user(user_id).ok_or((
        50034,
        "The user account does not exist in the directory.".to_string(),
    ))?;
    if matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    ) {
        return Ok(user.home_tenant.clone());
    }
    let t = w
        .tenant_named(tenant)
        .ok_or((90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")))?;
    if w.user_tenants(user_id).contains(&t.id) {
        Ok(t.id.clone())
    } else {
        Err((
            50020,
            format!(
                "User account '{}' from identity provider 'live.com' does not exist in tenant '{}' and cannot access the application in that tenant.",
                user.upn, t.name
            ),
        ))
    }
}

/// What a grant has established, for [`issue_tokens`]: every grant (device code, refresh token,
/// client credentials, and any other) ends by calling it.
pub(crate) struct Grant<'a> {
    /// The tenant id the tokens are for.
    pub tenant: &'a str,
    pub principal: Principal,
    /// The client (`client_id`) the tokens are issued to.
    pub client_id: &'a str,
    /// The scopes granted (the request's `scope`).
    pub scope: &'a str,
    /// Whether to issue a refresh token (`offline_access`, users only).
    pub refresh: bool,
    /// `nonce` of the authorization request, echoed in the id token.
    pub nonce: Option<&'a str>,
    /// `client_info=1` was sent: add `client_info`.
    pub client_info: bool,
    /// How the client authenticated.
    pub client_auth: ClientAuth,
}

/// `appidacr`: "0" a public client, "1" a client secret, "2" a certificate (managed identities).
#[derive(Clone, Copy)]
pub(crate) enum ClientAuth {
    Public,
    Secret,
    Certificate,
}

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A stable pairwise `sub` for (principal, client), as Entra's are per application.
fn pairwise_sub(oid: &str, client_id: &str) -> String {
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sub/{oid}/{client_id}").as_bytes(),
    );
    base64url(id.as_bytes())
}

/// The token response (reference/identity-and-clients.md §3): a v1.0 access token for the
/// resource of the first scope, and for users an id token (with `openid`), a refresh token (with
/// `offline_access`) and `client_info` (when asked). Tokens are RS256 JWTs signed by
/// [`jwt::key`]; Graph and ARM check signature, `aud`, `tid` and `exp`.
pub(crate) fn issue_tokens(sim: &Sim, w: &mut World, g: Grant<'_>) -> Value {
    let key = jwt::key();
    let now = now_secs();
    let exp = now + sim.opts.token_lifetime as i64;
    let resource = g
        .scope
        .split_whitespace()
        .find(|s| !OIDC_SCOPES.contains(s))
        .and_then(resource_of)
        .unwrap_or_default()
        .to_string();
    let audience = audience_of_resource(sim, &resource);
    // A user's tokens carry the user's object in the token's tenant: the member at home, the
    // guest object elsewhere (its own oid; B2B user-token). `g.principal` is the person's home
    // object, as the refresh token knows it.
    let object = match &g.principal {
        Principal::User { id } => w
            .user(id)
            .and_then(|u| w.user_in(g.tenant, &u.home_id))
            .or_else(|| w.user(id)),
        Principal::ServicePrincipal { .. } => None,
    };
    let oid = object
        .map(|u| u.id.clone())
        .unwrap_or_else(|| g.principal.object_id().to_string());
    let mut at = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", g.tenant),
        "iat": now, "nbf": now, "exp": exp,
        "tid": g.tenant,
        "oid": oid,
        "appid": g.client_id,
        "appidacr": match g.client_auth {
            ClientAuth::Public => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        },
        "ver": "1.0",
        "uti": random_token("")[..22].to_string(),
    });
    match &g.principal {
        Principal::User { .. } => {
            at["idtyp"] = json!("user");
            at["sub"] = json!(pairwise_sub(&oid, g.client_id));
            at["name"] = json!(object.map(|u| u.name.clone()));
            at["amr"] = json!(["pwd"]);
            match object {
                // A guest (an object outside the person's home tenant): `idp` names the home
                // tenant's issuer (access-token-claims-reference: "identical to the value of the
                // Issuer claim unless the user account isn't in the same tenant as the issuer,
                // such as guests"); `unique_name` and `email` are the home sign-in name, and there
                // is no `upn` (the Entra-account guest token of external-id/user-token).
                Some(u) if u.user_type == "Guest" => {
                    at["idp"] = json!(format!("https://sts.windows.net/{}/", u.home_tenant));
                    let home_upn = w.user(&u.home_id).map(|h| h.upn.clone());
                    at["unique_name"] = json!(home_upn);
                    at["email"] = json!(u.mail);
                }
                u => {
                    at["upn"] = json!(u.map(|u| u.upn.clone()));
                    at["unique_name"] = json!(u.map(|u| u.upn.clone()));
                }
            }
            // Delegated permissions: ARM's only one; for Graph, what the Azure CLI's public
            // client is consented to for these operations (a guess: the real list is longer).
            at["scp"] = json!(match audience {
                Some(Audience::Graph) =>
                    "Application.ReadWrite.All AppRoleAssignment.ReadWrite.All Directory.AccessAsUser.All Group.ReadWrite.All RoleManagement.ReadWrite.Directory User.Read.All",
                _ => "user_impersonation",
            });
        }
        Principal::ServicePrincipal { id, .. } => {
            at["idtyp"] = json!("app");
            at["sub"] = json!(oid);
            // The Graph app roles granted to it (admin consent = an appRoleAssignment).
            let roles = w.graph_role_values(g.tenant, id);
            if audience == Some(Audience::Graph) && !roles.is_empty() {
                at["roles"] = json!(roles);
            }
        }
    }
    let mut body = json!({
        "token_type": "Bearer",
        "scope": g.scope,
        "expires_in": sim.opts.token_lifetime,
        "ext_expires_in": sim.opts.token_lifetime,
        "access_token": key.sign(&at),
    });
    if let Principal::User { id } = &g.principal {
        let home = w
            .user(id)
            .map(|u| (u.home_id.clone(), u.home_tenant.clone()));
        let (home_id, home_tenant) = home.unwrap_or_else(|| (id.clone(), g.tenant.to_string()));
        if g.scope.split_whitespace().any(|s| s == "openid") {
            let mut idt = json!({
                "aud": g.client_id,
                "iss": format!("{}/{}/v2.0", sim.origins.login, g.tenant),
                "iat": now, "nbf": now, "exp": exp,
                "sub": pairwise_sub(&oid, g.client_id),
                "oid": oid,
                "tid": g.tenant,
                "preferred_username": w.user(&home_id).map(|u| u.upn.clone()),
                "name": object.map(|u| u.name.clone()),
                "ver": "2.0",
            });
            if let Some(u) = object.filter(|u| u.user_type == "Guest") {
                idt["idp"] = json!(format!("https://sts.windows.net/{}/", u.home_tenant));
            }
            if let Some(n) = g.nonce {
                idt["nonce"] = json!(n);
            }
            body["id_token"] = json!(key.sign(&idt));
        }
        if g.refresh {
            let rt = random_token("sim-rt-");
            w.refresh_tokens.insert(rt.clone(), home_id.clone());
            body["refresh_token"] = json!(rt);
        }
        if g.client_info {
            // MSAL's home account: the person's object and tenant at home.
            body["client_info"] = json!(base64url(
                json!({"uid": home_id, "utid": home_tenant})
                    .to_string()
                    .as_bytes()
            ));
        }
    }
    body
}

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// `GET {login}/{tenant}/v2.0/.well-known/openid-configuration` (v2-protocols-oidc): for a tenant
/// id or domain the endpoints and issuer carry the tenant id; for `common`/`organizations` the
/// endpoints carry that word and the issuer the literal `{tenantid}`.
fn discovery(sim: &Sim, ctx: &Ctx, tenant: &str) -> Resp {
    let lower = tenant.to_ascii_lowercase();
    let (path_tenant, issuer_tenant) = if matches!(lower.as_str(), "organizations" | "common") {
        (lower.clone(), "{tenantid}".to_string())
    } else {
        let w = sim.world();
        let Some(t) = w.tenant_named(tenant) else {
            return oauth_error(ctx, 400, "invalid_tenant", 90002, &tenant_not_found(tenant));
        };
        (t.id.clone(), t.id.clone())
    };
    let login = &sim.origins.login;
    let host = login.strip_prefix("https://").unwrap_or(login);
    let ep = |p: &str| format!("{login}/{path_tenant}/{p}");
    Resp::json(
        200,
        json!({
            "token_endpoint": ep("oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": ep("discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{login}/{issuer_tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{}/oidc/userinfo", sim.origins.graph),
            "authorization_endpoint": ep("oauth2/v2.0/authorize"),
            "device_authorization_endpoint": ep("oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": ep("oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": ep("kerberos"),
            "tenant_region_scope": null,
            "cloud_instance_name": host,
            "cloud_graph_host_name": host,
            "msgraph_host": sim.origins.graph.strip_prefix("https://").unwrap_or(&sim.origins.graph),
            "rbac_url": sim.origins.arm,
        }),
    )
}

fn tenant_not_found(tenant: &str) -> String {
    format!(
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    )
}

pub(crate) fn handle(sim: &Sim, ctx: &Ctx) -> Resp {
    let segs = ctx.segments();
    if ctx.method == axum::http::Method::GET {
        match segs.as_slice() {
            [tenant, "v2.0", ".well-known", "openid-configuration"] => {
                return discovery(sim, ctx, tenant);
            }
            [_, "discovery", "v2.0", "keys"] | ["discovery", "v2.0", "keys"] => {
                return Resp::json(200, jwt::key().jwks());
            }
            ["msi", "token"] => return managed_identity(sim, ctx),
            [tenant, "oauth2", "v2.0", "authorize"] => {
                return super::authorize::authorize(sim, ctx, tenant);
            }
            _ => {}
        }
    }
    let (tenant, op) = match segs.as_slice() {
        [tenant, "oauth2", "v2.0", op] if ctx.method == axum::http::Method::POST => (*tenant, *op),
        _ => {
            return oauth_error(
                ctx,
                404,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            );
        }
    };
    let form: HashMap<String, String> = ctx.form().into_iter().collect();
    let known_tenant = matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    ) || sim.world().tenant_named(tenant).is_some();
    if !known_tenant {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if form.get("client_id").is_none_or(|c| c.is_empty()) {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    match op {
        "devicecode" => device_code(sim, ctx, tenant, &form),
        "token" => match form.get("grant_type").map(String::as_str) {
            Some("urn:ietf:params:oauth:grant-type:device_code") => poll(sim, ctx, &form),
            Some("refresh_token") => refresh(sim, ctx, tenant, &form),
            Some("client_credentials") => client_credentials(sim, ctx, tenant, &form),
            Some("authorization_code") => authorization_code(sim, ctx, tenant, &form),
            Some(other) => oauth_error(
                ctx,
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ),
            None => oauth_error(
                ctx,
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ),
        },
        _ => oauth_error(ctx, 404, "invalid_request", 900561, "Unknown endpoint."),
    }
}

fn scope_of<'a>(
    ctx: &Ctx,
    sim: &Sim,
    form: &'a HashMap<String, String>,
) -> Result<(&'a str, Audience), Resp> {
    let Some(scope) = form.get("scope").filter(|s| !s.trim().is_empty()) else {
        return Err(oauth_error(
            ctx,
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    };
    match audience_of(sim, scope) {
        Some(a) => Ok((scope.as_str(), a)),
        None => Err(oauth_error(
            ctx,
            400,
            "invalid_scope",
            70011,
            &format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )),
    }
}

fn device_code(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, _audience) = match scope_of(ctx, sim, form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut w = sim.world();
    let tenant_id = match resolve_user_tenant(&w, tenant, OPERATOR_USER_ID) {
        Ok(t) => t,
        Err((code, msg)) => return oauth_error(ctx, 400, "invalid_request", code, &msg),
    };
    let device_code = random_token("sim-dc-");
    let user_code: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(9)
        .collect::<String>()
        .to_ascii_uppercase();
    let now = Instant::now();
    w.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            tenant_id,
            client_id: form.get("client_id").cloned().unwrap_or_default(),
            scope: scope.to_string(),
            created: now,
            expires: now + Duration::from_secs(DEVICE_CODE_SECS),
            interval: Duration::from_secs(sim.opts.device_interval),
            last_poll: None,
            declined: false,
            redeemed: false,
        },
    );
    let uri = "https://microsoft.com/devicelogin";
    Resp::json(
        200,
        json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_SECS,
            "interval": sim.opts.device_interval,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate. (Simulator: approved automatically.)"),
        }),
    )
}

fn poll(sim: &Sim, ctx: &Ctx, form: &HashMap<String, String>) -> Resp {
    let code = form.get("device_code").cloned().unwrap_or_default();
    let mut w = sim.world();
    let now = Instant::now();
    let approve_after = Duration::from_millis(sim.opts.approve_after);
    let Some(dc) = w.device_codes.get_mut(&code) else {
        return oauth_error(
            ctx,
            400,
            "bad_verification_code",
            70019,
            "Verification code not recognized.",
        );
    };
    if dc.redeemed {
        return oauth_error(
            ctx,
            400,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    }
    if now >= dc.expires {
        return oauth_error(
            ctx,
            400,
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        );
    }
    if dc.declined {
        return oauth_error(
            ctx,
            400,
            "authorization_declined",
            70000,
            "The user declined the authorization request.",
        );
    }
    let too_fast = dc
        .last_poll
        .is_some_and(|t| now.duration_since(t) + Duration::from_millis(50) < dc.interval);
    dc.last_poll = Some(now);
    if too_fast {
        return oauth_error(
            ctx,
            400,
            "slow_down",
            70016,
            "The client is polling too frequently. Increase the polling interval by 5 seconds.",
        );
    }
    if now.duration_since(dc.created) < approve_after {
        return oauth_error(
            ctx,
            400,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        );
    }
    let (tenant, scope, client_id) = (dc.tenant_id.clone(), dc.scope.clone(), dc.client_id.clone());
    if let Some(blocked) = super::authorize::device_code_blocked(sim, &w, ctx, &tenant) {
        return blocked;
    }
    if let Some(dc) = w.device_codes.get_mut(&code) {
        dc.redeemed = true;
    }
    let refresh = scope.split_whitespace().any(|s| s == "offline_access");
    let body = issue_tokens(
        sim,
        &mut w,
        Grant {
            tenant: &tenant,
            principal: Principal::User {
                id: OPERATOR_USER_ID.into(),
            },
            client_id: &client_id,
            scope: &scope,
            refresh,
            nonce: None,
            client_info: wants_client_info(form),
            client_auth: ClientAuth::Public,
        },
    );
    super::authorize::signed_in_interactively(&mut w, &body, &tenant);
    Resp::json(200, body)
}

/// The `authorization_code` grant: the code's checks are `authorize::redeem`'s.
fn authorization_code(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, _audience) = match scope_of(ctx, sim, form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut w = sim.world();
    let who = match super::authorize::redeem(&mut w, ctx, tenant, form) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let refresh = scope.split_whitespace().any(|s| s == "offline_access");
    let body = issue_tokens(
        sim,
        &mut w,
        Grant {
            tenant: &who.tenant_id,
            principal: Principal::User { id: who.user_id },
            client_id: &client_id,
            scope,
            refresh,
            nonce: None,
            client_info: wants_client_info(form),
            client_auth: ClientAuth::Public,
        },
    );
    super::authorize::signed_in_interactively(&mut w, &body, &who.tenant_id);
    Resp::json(200, body)
}

/// `client_info=1` in the token request.
fn wants_client_info(form: &HashMap<String, String>) -> bool {
    form.get("client_info").is_some_and(|v| v == "1")
}

fn refresh(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, _audience) = match scope_of(ctx, sim, form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut w = sim.world();
    let rt = form.get("refresh_token").cloned().unwrap_or_default();
    let Some(user_id) = w.refresh_tokens.get(&rt).cloned() else {
        return oauth_error(
            ctx,
            400,
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is not valid.",
        );
    };
    let tenant_id = match resolve_user_tenant(&w, tenant, &user_id) {
        Ok(t) => t,
        Err((code, msg)) => return oauth_error(ctx, 400, "invalid_grant", code, &msg),
    };
    if let Some(r) = super::authorize::interaction_challenge(sim, &w, ctx, &tenant_id, &rt) {
        return r;
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let body = issue_tokens(
        sim,
        &mut w,
        Grant {
            tenant: &tenant_id,
            principal: Principal::User { id: user_id },
            client_id: &client_id,
            scope,
            refresh: true,
            nonce: None,
            client_info: wants_client_info(form),
            client_auth: ClientAuth::Public,
        },
    );
    super::authorize::refreshed(&mut w, &rt, &body);
    Resp::json(200, body)
}

/// Why a client id + secret is refused in a tenant (shared with Spot's validation).
pub(crate) enum ClientAuthError {
    UnknownApp(String),
    WrongSecret(String),
    Expired(String),
    NoServicePrincipal(String),
}

impl ClientAuthError {
    pub fn aadsts(&self) -> (u16, &'static str, u32, &str) {
        match self {
            ClientAuthError::UnknownApp(m) => (400, "unauthorized_client", 700016, m),
            ClientAuthError::WrongSecret(m) => (401, "invalid_client", 7000215, m),
            ClientAuthError::Expired(m) => (401, "invalid_client", 7000222, m),
            ClientAuthError::NoServicePrincipal(m) => (401, "invalid_client", 7000229, m),
        }
    }

    pub fn message(&self) -> String {
        let (_, _, code, m) = self.aadsts();
        format!("AADSTS{code}: {m}")
    }
}

/// Checks `client_id` + `client_secret` against the app's password credentials in `tenant`;
/// returns the service principal.
pub(crate) fn check_client_secret(
    w: &World,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> Result<Principal, ClientAuthError> {
    let Some(app) = w
        .applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(client_id) && a.tenant_id == tenant)
    else {
        return Err(ClientAuthError::UnknownApp(format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        )));
    };
    let now = OffsetDateTime::now_utc();
    let Some(cred) = app
        .password_credentials
        .iter()
        .find(|c| c.secret_text == secret)
    else {
        return Err(ClientAuthError::WrongSecret(format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
            app.app_id
        )));
    };
    if cred.end <= now {
        return Err(ClientAuthError::Expired(format!(
            "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
            app.app_id
        )));
    }
    let Some(sp) = w
        .service_principals
        .iter()
        .find(|s| s.app_id == app.app_id && s.tenant_id == tenant)
    else {
        return Err(ClientAuthError::NoServicePrincipal(format!(
            "The client application {} is missing service principal in the tenant {tenant}.",
            app.app_id
        )));
    };
    Ok(Principal::ServicePrincipal {
        id: sp.id.clone(),
        app_id: sp.app_id.clone(),
    })
}

fn client_credentials(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, _audience) = match scope_of(ctx, sim, form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    ) {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            1002012,
            "The provided value for scope or tenant is not valid: client credentials need a tenant-specific endpoint, not /organizations or /common.",
        );
    }
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        return client_assertion(sim, ctx, tenant, scope, form);
    }
    let Some(secret) = form.get("client_secret").filter(|s| !s.is_empty()) else {
        return oauth_error(
            ctx,
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    let mut w = sim.world();
    let (tenant_id, client_id) = match client_tenant(&w, ctx, tenant, form) {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match check_client_secret(&w, &tenant_id, client_id, secret) {
        Ok(p) => {
            let body = issue_tokens(
                sim,
                &mut w,
                Grant {
                    tenant: &tenant_id,
                    principal: p,
                    client_id,
                    scope,
                    refresh: false,
                    nonce: None,
                    client_info: false,
                    client_auth: ClientAuth::Secret,
                },
            );
            Resp::json(200, body)
        }
        Err(e) => {
            let (status, error, code, msg) = e.aadsts();
            oauth_error(ctx, status, error, code, msg)
        }
    }
}

/// The tenant a client-credentials request names (by id or domain) and its `client_id`, or the
/// AADSTS90002 reply when no such tenant is simulated.
fn client_tenant<'f>(
    w: &World,
    ctx: &Ctx,
    tenant: &str,
    form: &'f HashMap<String, String>,
) -> Result<(String, &'f str), Resp> {
    let Some(t) = w.tenant_named(tenant) else {
        return Err(oauth_error(
            ctx,
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        ));
    };
    let client_id = form
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    Ok((t.id.clone(), client_id))
}

/// `client_assertion_type` of a federated token (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client credentials grant with a federated token as `client_assertion` (workload identity
/// federation: entra/workload-id/workload-identity-federation): the token's `iss`, `sub` and
/// `aud` must match one federated identity credential of the app (AADSTS70021 otherwise, the
/// message naming the three as Entra's does), its signature must verify against the issuer's
/// JWKS (only the simulator's own issuer, `{inspect}/oidc`, can be fetched: AADSTS50166 for
/// another, a guess) and it must be within `nbf`..`exp` (AADSTS700024). docs/simulator.md.
fn client_assertion(
    sim: &Sim,
    ctx: &Ctx,
    tenant: &str,
    scope: &str,
    form: &HashMap<String, String>,
) -> Resp {
    let kind = form.get("client_assertion_type").map(String::as_str);
    if kind != Some(JWT_BEARER) {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            50027,
            &format!(
                "Invalid client_assertion_type '{}': only '{JWT_BEARER}' is supported.",
                kind.unwrap_or_default()
            ),
        );
    }
    let assertion = form
        .get("client_assertion")
        .map(|a| a.trim())
        .unwrap_or_default();
    let Some((header, claims)) = jwt::Key::peek(assertion) else {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        );
    };
    let mut w = sim.world();
    let (tenant_id, client_id) = match client_tenant(&w, ctx, tenant, form) {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let Some(app) = w
        .applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(client_id) && a.tenant_id == tenant_id)
    else {
        let e = ClientAuthError::UnknownApp(format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ));
        let (status, error, code, msg) = e.aadsts();
        return oauth_error(ctx, status, error, code, msg);
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    let (iss, sub) = (text("iss"), text("sub"));
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let matched = w.federated_credentials.iter().any(|f| {
        f.app_object_id == app.id
            && f.issuer == iss
            && f.subject == sub
            && f.audiences.iter().any(|a| auds.contains(&a.as_str()))
    });
    if !matched {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                auds.join(",")
            ),
        );
    }
    if iss != sim.workload_issuer() {
        return oauth_error(
            ctx,
            400,
            "invalid_client",
            50166,
            &format!(
                "Request to External OIDC endpoint failed. The issuer '{iss}' could not be reached for its signing keys."
            ),
        );
    }
    let key = jwt::issuer_key();
    let kid_ok = header.get("kid").and_then(Value::as_str) == Some(key.kid.as_str());
    if !kid_ok || key.verify(assertion).is_none() {
        return oauth_error(
            ctx,
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation: no key of the issuer's JWKS verifies it.",
        );
    }
    let now = now_secs();
    let (nbf, exp) = (
        claims.get("nbf").and_then(Value::as_i64).unwrap_or(0),
        claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
    );
    if now >= exp || now < nbf {
        let at = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|t| {
                    t.format(time::macros::format_description!(
                        "[month]/[day]/[year] [hour]:[minute]:[second]"
                    ))
                    .ok()
                })
                .unwrap_or_default()
        };
        return oauth_error(
            ctx,
            400,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                at(now),
                at(nbf),
                at(exp)
            ),
        );
    }
    let Some(sp) = w
        .service_principals
        .iter()
        .find(|s| s.app_id == app.app_id && s.tenant_id == tenant_id)
    else {
        let e = ClientAuthError::NoServicePrincipal(format!(
            "The client application {} is missing service principal in the tenant {tenant_id}.",
            app.app_id
        ));
        let (status, error, code, msg) = e.aadsts();
        return oauth_error(ctx, status, error, code, msg);
    };
    let principal = Principal::ServicePrincipal {
        id: sp.id.clone(),
        app_id: sp.app_id.clone(),
    };
    let app_id = app.app_id.clone();
    let body = issue_tokens(
        sim,
        &mut w,
        Grant {
            tenant: &tenant_id,
            principal,
            client_id: &app_id,
            scope,
            refresh: false,
            nonce: None,
            client_info: false,
            client_auth: ClientAuth::Certificate,
        },
    );
    Resp::json(200, body)
}

/// The simulated App Service identity endpoint (`IDENTITY_ENDPOINT` = `{login}/msi/token`,
/// `IDENTITY_HEADER` = [`seed::MANAGED_IDENTITY_HEADER`]): `GET ?api-version=2019-08-01&resource=R
/// [&client_id=…]` with `X-IDENTITY-HEADER` → `{"access_token","expires_on" (epoch seconds, a
/// string),"resource","token_type","client_id"}` for the seeded managed identity.
fn managed_identity(sim: &Sim, ctx: &Ctx) -> Resp {
    use super::seed::{
        CONTOSO_TENANT_ID, MANAGED_IDENTITY_CLIENT_ID, MANAGED_IDENTITY_HEADER,
        MANAGED_IDENTITY_SP_ID,
    };
    // The error body is a guess (docs/simulator.md): App Service documents statuses, not bodies.
    let fail = |status: u16, message: &str| {
        Resp::json(
            status,
            json!({"statusCode": status, "message": message, "correlationId": ctx.request_id}),
        )
    };
    let header = ctx
        .headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if header != Some(MANAGED_IDENTITY_HEADER) {
        return fail(401, "The X-IDENTITY-HEADER header is missing or wrong.");
    }
    if ctx.q("api-version") != Some("2019-08-01") {
        return fail(
            400,
            "Unsupported or missing api-version: 2019-08-01 is required.",
        );
    }
    let Some(resource) = ctx.q("resource").filter(|r| !r.is_empty()) else {
        return fail(400, "The resource parameter is required.");
    };
    if audience_of_resource(sim, resource).is_none() {
        return fail(
            400,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        );
    }
    if ctx
        .q("client_id")
        .is_some_and(|c| !c.eq_ignore_ascii_case(MANAGED_IDENTITY_CLIENT_ID))
        || ctx
            .q("principal_id")
            .is_some_and(|p| !p.eq_ignore_ascii_case(MANAGED_IDENTITY_SP_ID))
        || ctx.q("mi_res_id").is_some()
    {
        return fail(400, "No managed identity found for the specified identity.");
    }
    let scope = format!("{resource}/.default");
    let body = issue_tokens(
        sim,
        &mut sim.world(),
        Grant {
            tenant: CONTOSO_TENANT_ID,
            principal: Principal::ServicePrincipal {
                id: MANAGED_IDENTITY_SP_ID.into(),
                app_id: MANAGED_IDENTITY_CLIENT_ID.into(),
            },
            client_id: MANAGED_IDENTITY_CLIENT_ID,
            scope: &scope,
            refresh: false,
            nonce: None,
            client_info: false,
            client_auth: ClientAuth::Certificate,
        },
    );
    let expires_on = now_secs() + sim.opts.token_lifetime as i64;
    Resp::json(
        200,
        json!({
            "access_token": body["access_token"],
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": MANAGED_IDENTITY_CLIENT_ID,
        }),
    )
}
