//! Identity platform v2: `/{tenant}/oauth2/v2.0/devicecode` and `/{tenant}/oauth2/v2.0/token`
//! (device_code, refresh_token, client_credentials and authorization_code grants), form-encoded,
//! OAuth error shape. `/authorize` and its codes live in `authorize.rs`.

use super::seed::OPERATOR_USER_ID;
use super::state::{AccessToken, Audience, DeviceCode, Principal, World, random_token};
use super::{Ctx, Resp, Sim, base64url};
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

/// Which resource the first scope names (the identity platform issues for the first resource).
fn audience_of(sim: &Sim, scope: &str) -> Option<Audience> {
    let first = scope
        .split_whitespace()
        .find(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))?;
    let lower = first.to_ascii_lowercase();
    if lower.starts_with(&sim.graph_base().to_ascii_lowercase())
        || lower.starts_with("https://graph.microsoft.com")
    {
        Some(Audience::Graph)
    } else if lower.starts_with(&sim.arm_base().to_ascii_lowercase())
        || lower.starts_with("https://management.")
    {
        Some(Audience::Arm)
    } else {
        None
    }
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
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(tenant) || t.domain.eq_ignore_ascii_case(tenant))
        .ok_or((90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")))?;
    if user.tenants.contains(&t.id) {
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

fn issue(
    sim: &Sim,
    w: &mut World,
    tenant: &str,
    audience: Audience,
    principal: Principal,
    scope: &str,
    refresh: bool,
) -> Value {
    let token = random_token("sim-at-");
    w.tokens.insert(
        token.clone(),
        AccessToken {
            tenant_id: tenant.to_string(),
            audience,
            principal: principal.clone(),
            expires: Instant::now() + Duration::from_secs(sim.opts.token_lifetime),
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": sim.opts.token_lifetime,
        "ext_expires_in": sim.opts.token_lifetime,
        "access_token": token,
    });
    if let Principal::User { id } = &principal {
        if refresh {
            let rt = random_token("sim-rt-");
            w.refresh_tokens.insert(rt.clone(), id.clone());
            body["refresh_token"] = json!(rt);
        }
        if scope.split_whitespace().any(|s| s == "openid") {
            let user = w.user(id);
            let exp = OffsetDateTime::now_utc().unix_timestamp() + sim.opts.token_lifetime as i64;
            let claims = json!({
                "aud": "sim", "iss": format!("https://login.sim/{tenant}/v2.0"), "tid": tenant, "oid": id,
                "preferred_username": user.map(|u| u.upn.clone()), "name": user.map(|u| u.name.clone()), "exp": exp,
            });
            body["id_token"] = json!(format!(
                "{}.{}.",
                base64url(br#"{"alg":"none","typ":"JWT"}"#),
                base64url(claims.to_string().as_bytes())
            ));
        }
    }
    body
}

pub(crate) fn handle(sim: &Sim, ctx: &Ctx) -> Resp {
    let segs = ctx.segments();
    if let [tenant, "oauth2", "v2.0", "authorize"] = segs.as_slice()
        && ctx.method == axum::http::Method::GET
    {
        return super::authorize::authorize(sim, ctx, tenant);
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
    ) || sim
        .world()
        .tenants
        .iter()
        .any(|t| t.id.eq_ignore_ascii_case(tenant) || t.domain.eq_ignore_ascii_case(tenant));
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
    let (scope, audience) = match scope_of(ctx, sim, form) {
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
            audience,
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
    let (tenant, audience, scope) = (dc.tenant_id.clone(), dc.audience, dc.scope.clone());
    if let Some(blocked) = super::authorize::device_code_blocked(sim, &w, ctx, &tenant) {
        return blocked;
    }
    if let Some(dc) = w.device_codes.get_mut(&code) {
        dc.redeemed = true;
    }
    let refresh = scope.split_whitespace().any(|s| s == "offline_access");
    let body = issue(
        sim,
        &mut w,
        &tenant,
        audience,
        Principal::User {
            id: OPERATOR_USER_ID.into(),
        },
        &scope,
        refresh,
    );
    super::authorize::signed_in_interactively(&mut w, &body, &tenant);
    Resp::json(200, body)
}

/// The `authorization_code` grant: the code's checks are `authorize::redeem`'s.
fn authorization_code(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, audience) = match scope_of(ctx, sim, form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut w = sim.world();
    let who = match super::authorize::redeem(&mut w, ctx, tenant, form) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let refresh = scope.split_whitespace().any(|s| s == "offline_access");
    let body = issue(
        sim,
        &mut w,
        &who.tenant_id,
        audience,
        Principal::User { id: who.user_id },
        scope,
        refresh,
    );
    super::authorize::signed_in_interactively(&mut w, &body, &who.tenant_id);
    Resp::json(200, body)
}

fn refresh(sim: &Sim, ctx: &Ctx, tenant: &str, form: &HashMap<String, String>) -> Resp {
    let (scope, audience) = match scope_of(ctx, sim, form) {
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
    let body = issue(
        sim,
        &mut w,
        &tenant_id,
        audience,
        Principal::User { id: user_id },
        scope,
        true,
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
    let (scope, audience) = match scope_of(ctx, sim, form) {
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
    let Some(tenant_id) = w
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(tenant) || t.domain.eq_ignore_ascii_case(tenant))
        .map(|t| t.id.clone())
    else {
        return oauth_error(
            ctx,
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    };
    let client_id = form
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    match check_client_secret(&w, &tenant_id, client_id, secret) {
        Ok(p) => Resp::json(
            200,
            issue(sim, &mut w, &tenant_id, audience, p, scope, false),
        ),
        Err(e) => {
            let (status, error, code, msg) = e.aadsts();
            oauth_error(ctx, status, error, code, msg)
        }
    }
}
