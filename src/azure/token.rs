//! The identity platform's token endpoint (reference/azure-api.md §3, identity-and-clients.md
//! §5): the form POST that keeps `error_codes` and a `claims` challenge, the reply parsed into a
//! [`TokenGrant`], the display-only JWT claims, and the clock. Shared by the device-code flow,
//! the browser flow and the client-credentials grant; it imports none of them.
//!
//! Nothing here logs or Debug-prints a token.

use crate::error::{ApiError, Error, Result, Service};
use crate::http::Http;
use crate::secret::Secret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The time source (injected in tests).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

// ---------------------------------------------------------------------------------------------
// JWT claims (display only: never verified, never trusted for access decisions)
// ---------------------------------------------------------------------------------------------

/// The claims we show: who signed in and in which tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `tid`: the tenant the token was issued in.
    pub tenant_id: Option<String>,
    /// `preferred_username`, `upn`, `unique_name` or `email`.
    pub username: Option<String>,
    /// `appid` / `azp`: the client (for a service principal or managed identity).
    pub app_id: Option<String>,
    pub object_id: Option<String>,
}

/// Decodes a JWT's payload without verifying it. `None` for an opaque token (the simulator's)
/// or anything that is not a JSON payload.
pub fn decode_jwt_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?; // a JWS has three parts
    let bytes = azure_core::base64::decode_url_safe(payload).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let claims = Claims {
        tenant_id: s("tid"),
        username: s("preferred_username")
            .or_else(|| s("upn"))
            .or_else(|| s("unique_name"))
            .or_else(|| s("email")),
        app_id: s("appid").or_else(|| s("azp")),
        object_id: s("oid"),
    };
    Some(claims)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

/// A successful token response. No `Debug`: it holds tokens.
pub struct TokenGrant {
    pub access_token: Secret,
    pub expires_on: OffsetDateTime,
    pub refresh_token: Option<Secret>,
    /// Claims of the id_token (or of the access token when that is a JWT).
    pub claims: Option<Claims>,
    /// The account's home tenant: `client_info`'s `utid` (sent when the request had
    /// `client_info=1`). For a guest it differs from the token's `tid`, which is the tenant
    /// signed in to.
    pub home_tenant: Option<String>,
}

/// `client_info`: base64url of `{"uid":"<object id>","utid":"<home tenant id>"}` (reference
/// identity-and-clients.md §3); the `utid`.
fn client_info_home_tenant(client_info: &str) -> Option<String> {
    let bytes = azure_core::base64::decode_url_safe(client_info).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("utid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(crate) fn seconds(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses a token endpoint reply body (`expires_in` as number or string, as v1 endpoints sent).
pub fn parse_token_grant(body: &Value, now: OffsetDateTime) -> Result<TokenGrant> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let access = text("access_token").ok_or_else(|| {
        Error::Auth("the identity platform's token response has no access_token".into())
    })?;
    let expires_in = seconds(body.get("expires_in")).unwrap_or(3600).max(0);
    let claims = text("id_token")
        .and_then(decode_jwt_claims)
        .or_else(|| decode_jwt_claims(access));
    Ok(TokenGrant {
        access_token: Secret::new(access),
        expires_on: now + time::Duration::seconds(expires_in),
        refresh_token: text("refresh_token").map(Secret::new),
        claims,
        home_tenant: text("client_info").and_then(client_info_home_tenant),
    })
}

/// A refusal of the identity platform: the error (its `error_codes` as `AADSTS…` in
/// `detail_codes`), and the `claims` challenge when the reply carried one.
#[derive(Debug, Clone)]
pub struct TokenRefusal {
    pub api: ApiError,
    pub claims: Option<String>,
}

/// `POST {login}/{tenant}/oauth2/v2.0/{endpoint}` with a form body, once. Unlike the generic
/// HTTP layer this keeps what the identity platform's error says beyond `error`: its
/// `error_codes` (classified on, §5: the `error` string varies) and a `claims` challenge.
async fn post_token_once(
    http: &Http,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Value, TokenRefusal> {
    let refusal = |api| TokenRefusal { api, claims: None };
    let resp = http
        .request(reqwest::Method::POST, url)
        .form(form)
        .send()
        .await
        .map_err(|e| refusal(crate::http::transport_error(Service::Login, &e)))?;
    // The HTTP layer's rules: no redirect followed, the body capped, a cut-off reply an error.
    let crate::http::RawReply {
        status,
        request_id: header_id,
        retry_after,
        body,
    } = http.read_raw(Service::Login, resp).await.map_err(refusal)?;
    tracing::debug!(status = status.as_u16(), "identity platform");
    if status.is_success() {
        return Ok(body);
    }
    let mut api = crate::http::parse_error(Service::Login, status, &body);
    api.request_id = api.request_id.or(header_id);
    api.retry_after = retry_after;
    let claims = body
        .get("claims")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .map(str::to_string);
    Err(TokenRefusal { api, claims })
}

/// [`post_token_once`], again after throttling (429/503: the service did not act on the
/// request; a bounded Retry-After is honoured), as the HTTP layer does for every POST. With
/// `retry` also after a reply lost in transit (no reply, 500/502/504): only for requests that
/// change nothing a retry could duplicate, i.e. asking for a device code (none has been shown
/// yet) and the refresh-token and client-credentials grants (each just issues a token). Never
/// for device-code polls (the poll loop owns those) or an authorization code (one use).
pub(crate) async fn post_token(
    http: &Http,
    login: &str,
    tenant: &str,
    endpoint: &str,
    form: &[(&str, &str)],
    retry: bool,
) -> Result<Value, TokenRefusal> {
    let url = format!("{login}/{tenant}/oauth2/v2.0/{endpoint}");
    let mut attempt = 0u32;
    let mut asked_total = Duration::ZERO;
    loop {
        attempt += 1;
        match post_token_once(http, &url, form).await {
            // A certificate, plain-http or refused-connection failure is never retried, and the
            // waits the service asks for add up to the HTTP layer's budget at most.
            Err(r)
                if (matches!(r.api.status, 429 | 503)
                    || (retry && matches!(r.api.status, 0 | 500 | 502 | 504)))
                    && r.api.class() != crate::error::ErrorClass::Fatal
                    && attempt < http.max_attempts
                    && asked_total + r.api.retry_after.unwrap_or_default() <= http.retry_budget =>
            {
                let backoff = Duration::from_millis(250u64 << attempt.min(5));
                let wait = r.api.retry_after.unwrap_or(backoff.min(http.max_wait));
                asked_total += r.api.retry_after.unwrap_or_default();
                tracing::info!(
                    status = r.api.status,
                    attempt,
                    endpoint,
                    "identity platform: retrying"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// [`post_token`] without retries, keeping the error only.
pub(crate) async fn post_form(
    http: &Http,
    login: &str,
    tenant: &str,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<Value, ApiError> {
    post_token(http, login, tenant, endpoint, form, false)
        .await
        .map_err(|r| r.api)
}

/// [`post_token`] with retries, keeping the error only.
pub(crate) async fn post_form_retrying(
    http: &Http,
    login: &str,
    tenant: &str,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<Value, ApiError> {
    post_token(http, login, tenant, endpoint, form, true)
        .await
        .map_err(|r| r.api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            azure_core::base64::encode_url_safe(br#"{"alg":"RS256","typ":"JWT"}"#),
            azure_core::base64::encode_url_safe(payload.as_bytes())
        )
    }

    #[test]
    fn jwt_claims_are_decoded_and_opaque_tokens_are_not() {
        let t = jwt(
            r#"{"tid":"72f988bf-0000","preferred_username":"ops@contoso.com","oid":"o-1","appid":"04b0"}"#,
        );
        let c = decode_jwt_claims(&t).unwrap();
        assert_eq!(c.tenant_id.as_deref(), Some("72f988bf-0000"));
        assert_eq!(c.username.as_deref(), Some("ops@contoso.com"));
        assert_eq!(c.app_id.as_deref(), Some("04b0"));
        let c = decode_jwt_claims(&jwt(r#"{"tid":"t","upn":"u@x"}"#)).unwrap();
        assert_eq!(c.username.as_deref(), Some("u@x"));
        assert_eq!(decode_jwt_claims("sim-opaque-token-123"), None);
        assert_eq!(decode_jwt_claims("a.b.c"), None);
        assert_eq!(
            decode_jwt_claims(&format!(
                "x.{}.y",
                azure_core::base64::encode_url_safe(b"not json")
            )),
            None
        );
    }

    #[test]
    fn token_grant_prefers_id_token_claims_and_accepts_string_expiry() {
        let now = OffsetDateTime::now_utc();
        let body = serde_json::json!({
            "access_token": "opaque-at", "expires_in": "3599", "refresh_token": "rt-1",
            "id_token": jwt(r#"{"tid":"home-t","preferred_username":"me@x"}"#)
        });
        let g = parse_token_grant(&body, now).unwrap();
        assert_eq!(g.expires_on, now + time::Duration::seconds(3599));
        assert_eq!(g.refresh_token.unwrap().expose(), "rt-1");
        assert_eq!(g.claims.unwrap().tenant_id.as_deref(), Some("home-t"));
        let g = parse_token_grant(
            &serde_json::json!({"access_token":"opaque","expires_in":60}),
            now,
        )
        .unwrap();
        assert!(g.claims.is_none() && g.refresh_token.is_none());
        assert!(parse_token_grant(&serde_json::json!({"token_type":"Bearer"}), now).is_err());
    }
}
