//! The browser's half of the identity platform (reference/identity-and-clients.md §4–5):
//! `GET /{tenant}/oauth2/v2.0/authorize`, the authorization codes it hands out, the
//! `authorization_code` grant's checks (PKCE, single use, lifetime, redirect URI, tenant), and
//! the two Conditional Access stand-ins: `--block-device-code` and `--require-interaction`.
//!
//! The simulator stands for the browser too: `/authorize` signs the seeded operator in at once
//! and answers `302` to `redirect_uri` with `code` and `state` (or the documented error redirect
//! `?error=…&error_description=…&state=…`). Errors that cannot be trusted to a redirect (an
//! unknown tenant or client, a redirect URI the app has not registered) are answered on the
//! "page" itself, as the real service shows them to the user, here as the OAuth error JSON.

use super::login::oauth_error;
use super::seed::OPERATOR_USER_ID;
use super::state::{World, random_token};
use super::{Ctx, Resp, Sim};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The Azure CLI's public client (the one spot-connect signs in with): its registered redirect
/// URIs are the loopback ones, matched with any port (reply-url "localhost exceptions").
const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const AZURE_CLI_REDIRECTS: [&str; 2] = ["http://localhost", "http://127.0.0.1"];

/// One authorization code, until redeemed or expired.
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub tenant_id: String,
    pub user_id: String,
    /// (`code_challenge`, `code_challenge_method`), when the request carried one.
    pub challenge: Option<(String, String)>,
    pub expires: Instant,
    pub redeemed: bool,
}

/// What `/authorize` and the interactive grants remember.
#[derive(Default)]
pub struct AuthState {
    pub codes: HashMap<String, AuthCode>,
    /// Refresh token → the tenants an interactive sign-in satisfied (MFA done there). A refresh
    /// token redeemed for a new one passes the set on.
    pub interactive: HashMap<String, BTreeSet<String>>,
}

/// The claims challenge `--interaction-claims` sends (the shape of a Conditional Access
/// challenge: an essential `acrs` value the new token must carry).
pub const CLAIMS_CHALLENGE: &str = r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#;

fn page_error(ctx: &Ctx, error: &str, aadsts: u32, message: &str) -> Resp {
    oauth_error(ctx, 400, error, aadsts, message)
}

/// Does `uri` match one of the app's registered redirect URIs? Exact match, except that a
/// loopback registration without a port matches the same URI with any port (RFC 8252 §7.3).
fn redirect_registered(registered: &[String], uri: &str) -> bool {
    if registered.iter().any(|r| r == uri) {
        return true;
    }
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    registered.iter().any(|r| {
        let Ok(reg) = url::Url::parse(r) else {
            return false;
        };
        let loopback = matches!(reg.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        loopback
            && reg.port().is_none()
            && u.scheme() == "http"
            && reg.scheme() == "http"
            && u.host_str() == reg.host_str()
            && u.path() == reg.path()
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

fn registered_redirects(w: &World, client_id: &str) -> Option<Vec<String>> {
    if client_id.eq_ignore_ascii_case(AZURE_CLI_CLIENT_ID) {
        return Some(AZURE_CLI_REDIRECTS.iter().map(|s| s.to_string()).collect());
    }
    w.applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(client_id))
        .map(|a| a.redirect_uris.clone())
}

/// `redirect_uri` with these parameters added, in the query or the fragment.
fn redirect_to(redirect_uri: &str, fragment: bool, params: &[(&str, &str)]) -> Resp {
    let mut u = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return Resp::empty(400),
    };
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if fragment {
        u.set_fragment(Some(&encoded));
    } else {
        let q = match u.query() {
            Some(q) if !q.is_empty() => format!("{q}&{encoded}"),
            _ => encoded,
        };
        u.set_query(Some(&q));
    }
    Resp::empty(302).header("location", u.to_string())
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) fn authorize(sim: &Sim, ctx: &Ctx, tenant: &str) -> Resp {
    let mut w = sim.world();
    let client_id = ctx.q("client_id").unwrap_or_default().to_string();
    if client_id.is_empty() {
        return page_error(
            ctx,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    let tenant_id = match super::login::resolve_user_tenant(&w, tenant, OPERATOR_USER_ID) {
        Ok(t) => t,
        Err((code, msg)) => return page_error(ctx, "invalid_request", code, &msg),
    };
    let Some(registered) = registered_redirects(&w, &client_id) else {
        return page_error(
            ctx,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    let redirect_uri = ctx.q("redirect_uri").unwrap_or_default().to_string();
    if !redirect_registered(&registered, &redirect_uri) {
        return page_error(
            ctx,
            "invalid_request",
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        );
    }
    // From here on, errors go back to the app through its redirect URI.
    let state = ctx.q("state").unwrap_or_default().to_string();
    let mode = ctx.q("response_mode").unwrap_or("query");
    let fragment = mode == "fragment";
    let fail = |error: &str, aadsts: u32, message: &str| {
        let description = format!("AADSTS{aadsts}: {message}");
        redirect_to(
            &redirect_uri,
            fragment,
            &[
                ("error", error),
                ("error_description", &description),
                ("state", &state),
            ],
        )
    };
    match ctx.q("response_type") {
        None | Some("") => {
            return fail(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            );
        }
        Some("code") => {}
        Some(other) => {
            return fail(
                "unsupported_response_type",
                70005,
                &format!("response_type '{other}' is not enabled for the application."),
            );
        }
    }
    if !matches!(mode, "query" | "fragment") {
        return fail(
            "invalid_request",
            900144,
            &format!(
                "response_mode '{mode}': the simulator answers response_mode=query or fragment."
            ),
        );
    }
    if ctx.q("scope").is_none_or(|s| s.trim().is_empty()) {
        return fail(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    }
    let challenge = match (ctx.q("code_challenge"), ctx.q("code_challenge_method")) {
        (None | Some(""), None) => None,
        (None | Some(""), Some(_)) => {
            return fail(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'code_challenge'.",
            );
        }
        // "If excluded, code_challenge is assumed to be plaintext" (auth-code flow reference).
        (Some(c), None) => Some((c.to_string(), "plain".to_string())),
        (Some(c), Some(m @ ("S256" | "plain"))) => Some((c.to_string(), m.to_string())),
        (Some(_), Some(m)) => {
            return fail(
                "invalid_request",
                501491,
                &format!("Invalid code_challenge_method '{m}': use S256 or plain."),
            );
        }
    };
    if let Some(claims) = ctx.q("claims")
        && serde_json::from_str::<Value>(claims).is_err()
    {
        return fail(
            "invalid_request",
            90014,
            "The claims parameter is not valid JSON.",
        );
    }
    let code = random_token("sim-ac-");
    w.auth.codes.insert(
        code.clone(),
        AuthCode {
            client_id,
            redirect_uri: redirect_uri.clone(),
            tenant_id,
            user_id: OPERATOR_USER_ID.to_string(),
            challenge,
            expires: Instant::now() + Duration::from_secs(sim.opts.auth_code_lifetime),
            redeemed: false,
        },
    );
    redirect_to(
        &redirect_uri,
        fragment,
        &[("code", &code), ("state", &state)],
    )
}

/// base64url(SHA-256(verifier)), no padding (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    super::base64url(digest.as_ref())
}

/// Who an `authorization_code` grant signs in.
pub struct Redeemed {
    pub tenant_id: String,
    pub user_id: String,
}

/// Checks and consumes the code of an `authorization_code` grant at `/{tenant}/…/token`.
pub(crate) fn redeem(
    w: &mut World,
    ctx: &Ctx,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Redeemed, Resp> {
    let bad = |error: &str, aadsts: u32, message: &str| {
        Err(oauth_error(ctx, 400, error, aadsts, message))
    };
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.",
        );
    };
    let url_tenant = super::login::resolve_user_tenant(w, tenant, OPERATOR_USER_ID).ok();
    let Some(ac) = w.auth.codes.get_mut(code) else {
        return bad(
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid.",
        );
    };
    if ac.redeemed {
        return bad(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    }
    if Instant::now() >= ac.expires {
        return bad(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        );
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    if !client_id.eq_ignore_ascii_case(&ac.client_id) {
        return bad(
            "invalid_grant",
            70000,
            "The provided authorization code was issued to another client.",
        );
    }
    if url_tenant.as_deref() != Some(ac.tenant_id.as_str()) {
        return bad(
            "invalid_grant",
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        );
    }
    let redirect = form.get("redirect_uri").map(String::as_str).unwrap_or("");
    if redirect != ac.redirect_uri {
        return bad(
            "invalid_grant",
            50011,
            &format!(
                "The reply address '{redirect}' does not match the reply address '{}' provided when requesting Authorization code.",
                ac.redirect_uri
            ),
        );
    }
    if let Some((challenge, method)) = &ac.challenge {
        let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
        let computed = if method == "S256" {
            s256(verifier)
        } else {
            verifier.to_string()
        };
        if verifier.is_empty() || computed != *challenge {
            return bad(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    ac.redeemed = true;
    Ok(Redeemed {
        tenant_id: ac.tenant_id.clone(),
        user_id: ac.user_id.clone(),
    })
}

/// Does a `--block-device-code` / `--require-interaction` value name this tenant?
fn names_tenant(w: &World, values: &[String], tenant_id: &str) -> bool {
    let domain = w
        .tenants
        .iter()
        .find(|t| t.id == tenant_id)
        .map(|t| t.domain.as_str());
    values.iter().any(|v| {
        v.eq_ignore_ascii_case("all")
            || v.eq_ignore_ascii_case(tenant_id)
            || domain.is_some_and(|d| v.eq_ignore_ascii_case(d))
    })
}

/// `--block-device-code`: the device-code grant's answer once the user has "signed in" in a
/// tenant whose Conditional Access blocks the device-code flow (§5).
pub(crate) fn device_code_blocked(
    sim: &Sim,
    w: &World,
    ctx: &Ctx,
    tenant_id: &str,
) -> Option<Resp> {
    names_tenant(w, &sim.opts.block_device_code, tenant_id).then(|| {
        oauth_error(
            ctx,
            400,
            "invalid_grant",
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        )
    })
}

/// `--require-interaction`: the refresh-token grant's answer for a tenant that wants the user
/// to sign in there interactively (MFA), unless this refresh token came from such a sign-in.
pub(crate) fn interaction_challenge(
    sim: &Sim,
    w: &World,
    ctx: &Ctx,
    tenant_id: &str,
    refresh_token: &str,
) -> Option<Resp> {
    if !names_tenant(w, &sim.opts.require_interaction, tenant_id) {
        return None;
    }
    if w.auth
        .interactive
        .get(refresh_token)
        .is_some_and(|t| t.contains(tenant_id))
    {
        return None;
    }
    let mut resp = oauth_error(
        ctx,
        400,
        "interaction_required",
        50076,
        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this resource.",
    );
    if sim.opts.interaction_claims
        && let Some(b) = resp.body.as_mut()
    {
        b["claims"] = json!(CLAIMS_CHALLENGE);
    }
    Some(resp)
}

fn new_refresh_token(body: &Value) -> Option<String> {
    body.get("refresh_token")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// After an interactive sign-in (device code, authorization code) to `tenant_id`: its refresh
/// token carries that sign-in.
pub(crate) fn signed_in_interactively(w: &mut World, body: &Value, tenant_id: &str) {
    if let Some(rt) = new_refresh_token(body) {
        w.auth
            .interactive
            .entry(rt)
            .or_default()
            .insert(tenant_id.to_string());
    }
}

/// After a refresh-token grant: the new refresh token carries what the old one did.
pub(crate) fn refreshed(w: &mut World, old: &str, body: &Value) {
    let Some(set) = w.auth.interactive.get(old).cloned() else {
        return;
    };
    if let Some(rt) = new_refresh_token(body) {
        w.auth.interactive.entry(rt).or_default().extend(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registrations_match_any_port_and_nothing_else() {
        let reg: Vec<String> = AZURE_CLI_REDIRECTS.iter().map(|s| s.to_string()).collect();
        assert!(redirect_registered(&reg, "http://localhost:8400"));
        assert!(redirect_registered(&reg, "http://localhost"));
        assert!(redirect_registered(&reg, "http://127.0.0.1:51000"));
        assert!(!redirect_registered(&reg, "https://localhost:8400"));
        assert!(!redirect_registered(&reg, "http://localhost:8400/callback"));
        assert!(!redirect_registered(&reg, "http://evil.example:8400"));
        assert!(!redirect_registered(&reg, "http://localhost.evil.example"));
        assert!(!redirect_registered(&reg, ""));
    }

    #[test]
    fn s256_is_base64url_of_sha256_without_padding() {
        // Computed independently: python3 hashlib.sha256 + base64.urlsafe_b64encode, '=' dropped.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOSjXk"),
            "KnzveAyQMhNA_iUwGLkrbZAyXEfR1Ef_lfJqfPWkmvU"
        );
    }
}
