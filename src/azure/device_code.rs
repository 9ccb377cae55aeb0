//! Our device code credential (reference/azure-api.md §3): azure_identity 1.x has none
//! (removed upstream, issue Azure/azure-sdk-for-rust#2348), and an operator on a jump box over
//! SSH has no browser anyway.
//!
//! One device flow signs the operator in (tenant `organizations`, or `--tenant`), asking for the
//! ARM scope plus `offline_access openid profile`. The refresh token it returns is kept in memory
//! only (a [`Secret`], replaced by each new one) and redeemed for every other (tenant, audience)
//! pair: `/{tenant}/oauth2/v2.0/token`, grant `refresh_token`, scope `<scope> offline_access`.
//! Access tokens are cached per (tenant, scope) until [`REFRESH_MARGIN`] before they expire.
//!
//! Nothing here logs or Debug-prints a token, refresh token or device code.

use crate::error::{ApiError, Error, Result, Service};
use crate::http::Http;
use crate::secret::Secret;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// The device-code sign-in prompt: shown large by the UI, printed by `apply`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The identity platform's own sentence ("To sign in, use a web browser to open …").
    pub message: String,
}

/// Called with the device code to show.
pub type PromptFn = std::sync::Arc<dyn Fn(DeviceCodePrompt) + Send + Sync>;

/// The Azure CLI's public client id: first-party, preauthorized for ARM and Graph, same in
/// every cloud (reference/azure-api.md §3.1).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// A cached token is used until this long before it expires.
pub const REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);

/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the interval for this and all later polls.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Polls that failed in transit (no reply, 500/502/504) tolerated in a row before giving up.
/// A poll changes nothing on the service, so repeating it is safe.
const MAX_TRANSIENT_POLL_FAILURES: u32 = 5;

/// The time source (injected in tests).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

// ---------------------------------------------------------------------------------------------
// Token cache
// ---------------------------------------------------------------------------------------------

struct Cached {
    token: Secret,
    expires_on: OffsetDateTime,
}

/// Access tokens per (tenant, scope), valid until [`REFRESH_MARGIN`] before expiry.
pub struct TokenCache {
    clock: Clock,
    map: Mutex<HashMap<(String, String), Cached>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("entries", &n).finish()
    }
}

impl TokenCache {
    pub fn new(clock: Clock) -> TokenCache {
        TokenCache {
            clock,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The cached token, if it is still good for more than [`REFRESH_MARGIN`].
    pub fn get(&self, tenant: &str, scope: &str) -> Option<(Secret, OffsetDateTime)> {
        let now = (self.clock)();
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.to_ascii_lowercase(), scope.to_string()))
            .filter(|c| c.expires_on - REFRESH_MARGIN > now)
            .map(|c| (c.token.clone(), c.expires_on))
    }

    pub fn put(&self, tenant: &str, scope: &str, token: Secret, expires_on: OffsetDateTime) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            (tenant.to_ascii_lowercase(), scope.to_string()),
            Cached { token, expires_on },
        );
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
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
}

fn seconds(v: Option<&Value>) -> Option<i64> {
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
    })
}

/// `POST {login}/{tenant}/oauth2/v2.0/{endpoint}` with a form body.
pub(crate) async fn post_form(
    http: &Http,
    login: &str,
    tenant: &str,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<Value, ApiError> {
    let url = format!("{login}/{tenant}/oauth2/v2.0/{endpoint}");
    let req = http.request(reqwest::Method::POST, &url).form(form);
    http.send(Service::Login, req).await.map(|r| r.body)
}

/// As [`post_form`], also retrying replies lost in transit (no reply, 500/502/504). Only for
/// requests that change nothing a retry could duplicate: asking for a device code (none has been
/// shown yet) and the refresh-token and client-credentials grants (each just issues a token).
/// Device-code polls are not retried here: the poll loop owns their pacing.
pub(crate) async fn post_form_retrying(
    http: &Http,
    login: &str,
    tenant: &str,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<Value, ApiError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match post_form(http, login, tenant, endpoint, form).await {
            Err(e)
                if matches!(e.status, 0 | 500 | 502 | 504)
                    && e.class() != crate::error::ErrorClass::Fatal
                    && attempt < http.max_attempts =>
            {
                let wait = Duration::from_millis(250u64 << attempt.min(5));
                tracing::info!(
                    status = e.status,
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

/// The message when a poll's successful reply was lost and the code is now redeemed.
pub const LOST_REPLY: &str = "the identity platform's reply to the sign-in was lost in transit";

/// A token for `scope` in `tenant` from a refresh token (reference/azure-api.md §3.4).
pub(crate) async fn redeem_refresh_token(
    http: &Http,
    login: &str,
    client_id: &str,
    tenant: &str,
    scope: &str,
    refresh_token: &Secret,
    now: OffsetDateTime,
) -> Result<TokenGrant> {
    let scope = format!("{scope} offline_access");
    let body = post_form_retrying(
        http,
        login,
        tenant,
        "token",
        &[
            ("client_id", client_id),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
        ],
    )
    .await?;
    parse_token_grant(&body, now)
}

// ---------------------------------------------------------------------------------------------
// Polling (pure, so slow_down / expiry are tested without waiting)
// ---------------------------------------------------------------------------------------------

/// Polls the token endpoint until the operator has signed in, honouring `interval`,
/// `authorization_pending`, `slow_down` (+5 s for this and every later poll) and expiry
/// (the service's `expired_token`, or locally when `expires_at` has passed).
/// `sleep` waits; `poll` sends one token request.
pub async fn poll_for_token<P, PF, S, SF>(
    mut interval: Duration,
    expires_at: OffsetDateTime,
    clock: &Clock,
    mut poll: P,
    mut sleep: S,
) -> Result<TokenGrant>
where
    P: FnMut() -> PF,
    PF: Future<Output = Result<TokenGrant, ApiError>>,
    S: FnMut(Duration) -> SF,
    SF: Future<Output = ()>,
{
    let mut transient = 0u32;
    loop {
        sleep(interval).await;
        if clock() >= expires_at {
            return Err(Error::Auth(
                "the device code expired before the sign-in was completed: start the sign-in again"
                    .into(),
            ));
        }
        let err = match poll().await {
            Ok(grant) => return Ok(grant),
            Err(e) => e,
        };
        // A successful reply lost in transit redeems the code: the next poll is refused.
        if transient > 0 && err.code == "invalid_grant" {
            return Err(Error::Auth(LOST_REPLY.into()));
        }
        match err.code.as_str() {
            "authorization_pending" => transient = 0,
            "slow_down" => {
                transient = 0;
                interval += SLOW_DOWN_STEP;
                tracing::info!(interval_s = interval.as_secs(), "device code: slow_down");
            }
            "expired_token" | "code_expired" => {
                return Err(Error::Api(with_message(
                    err,
                    "the device code expired before the sign-in was completed: start the sign-in again",
                )));
            }
            "authorization_declined" => {
                return Err(Error::Api(with_message(err, "the sign-in was declined")));
            }
            "bad_verification_code" => {
                return Err(Error::Api(with_message(
                    err,
                    "the identity platform did not recognise the device code",
                )));
            }
            _ if matches!(err.status, 0 | 500 | 502 | 504)
                && err.class() != crate::error::ErrorClass::Fatal
                && transient < MAX_TRANSIENT_POLL_FAILURES =>
            {
                transient += 1;
                tracing::info!(
                    status = err.status,
                    attempt = transient,
                    "device code: poll failed in transit, polling again"
                );
            }
            _ => return Err(Error::Api(err)),
        }
    }
}

/// Keeps the service's code and request id, and puts our sentence before its description.
fn with_message(mut e: ApiError, what: &str) -> ApiError {
    e.message = if e.message.is_empty() {
        what.to_string()
    } else {
        format!("{what} ({})", e.message)
    };
    e
}

// ---------------------------------------------------------------------------------------------
// The credential
// ---------------------------------------------------------------------------------------------

/// Who the device flow signed in (from the id_token, when it is a JWT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub username: Option<String>,
    pub home_tenant: Option<String>,
}

/// Where the device flow runs.
#[derive(Clone)]
pub struct DeviceCodeOptions {
    /// Authority base URL without trailing slash (`https://login.microsoftonline.com`, or the
    /// simulator's `https://127.0.0.1:PORT/login`).
    pub login: String,
    pub client_id: String,
    /// `organizations` unless `--tenant` was given.
    pub tenant: String,
    /// The scope asked for in the device flow (the ARM scope).
    pub scope: String,
    pub clock: Clock,
}

pub struct DeviceCodeCredential {
    http: Http,
    opts: DeviceCodeOptions,
    prompt: PromptFn,
    refresh: Mutex<Option<Secret>>,
    account: Mutex<Option<Account>>,
    cache: TokenCache,
    /// Held for the whole device flow: one flow in flight, other callers wait for it.
    flow: tokio::sync::Mutex<()>,
    /// Flows finished (successfully or not), and the last failure, so that callers who waited
    /// for a failed flow get its error instead of starting another prompt.
    flows_done: AtomicU64,
    last_failure: Mutex<Option<Error>>,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("login", &self.opts.login)
            .field("client_id", &self.opts.client_id)
            .field("tenant", &self.opts.tenant)
            .field("signed_in", &self.has_refresh_token())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeviceCodeCredential {
    pub fn new(http: Http, opts: DeviceCodeOptions, prompt: PromptFn) -> Arc<DeviceCodeCredential> {
        Arc::new(DeviceCodeCredential {
            http,
            cache: TokenCache::new(opts.clock.clone()),
            opts,
            prompt,
            refresh: Mutex::new(None),
            account: Mutex::new(None),
            flow: tokio::sync::Mutex::new(()),
            flows_done: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        })
    }

    pub fn has_refresh_token(&self) -> bool {
        lock(&self.refresh).is_some()
    }

    /// Who signed in, once the device flow has completed.
    pub fn account(&self) -> Option<Account> {
        lock(&self.account).clone()
    }

    /// Records the home tenant when it was learnt elsewhere (ARM `/tenants`, for opaque tokens).
    pub fn set_home_tenant(&self, tenant: &str) {
        let mut a = lock(&self.account);
        let acc = a.get_or_insert_with(Account::default);
        if acc.home_tenant.is_none() {
            acc.home_tenant = Some(tenant.to_string());
        }
    }

    /// The tenant used when none is named: the home tenant once known, else the sign-in tenant.
    pub fn default_tenant(&self) -> String {
        self.account()
            .and_then(|a| a.home_tenant)
            .unwrap_or_else(|| self.opts.tenant.clone())
    }

    /// Runs the device flow unless it has already run (or is running: then waits for it).
    pub async fn sign_in(&self) -> Result<Account> {
        let seen = self.flows_done.load(Ordering::SeqCst);
        let _guard = self.flow.lock().await;
        if self.has_refresh_token()
            || self
                .cache
                .get(&self.opts.tenant, &self.opts.scope)
                .is_some()
        {
            return Ok(self.account().unwrap_or_default());
        }
        if self.flows_done.load(Ordering::SeqCst) != seen
            && let Some(e) = lock(&self.last_failure).clone()
        {
            // A flow ended while we waited for it, and failed: do not prompt again for the same call.
            return Err(e);
        }
        let mut result = self.run_device_flow().await;
        if matches!(&result, Err(Error::Auth(m)) if m == LOST_REPLY) {
            // The operator signed in but the reply never arrived: a new code is the only way on.
            tracing::info!("device code: reply lost in transit, starting a new device code");
            result = self.run_device_flow().await;
        }
        if let Err(e) = &result {
            *lock(&self.last_failure) = Some(e.clone());
        }
        self.flows_done.fetch_add(1, Ordering::SeqCst);
        result
    }

    async fn run_device_flow(&self) -> Result<Account> {
        let o = &self.opts;
        let scope = format!("{} offline_access openid profile", o.scope);
        let body = post_form_retrying(
            &self.http,
            &o.login,
            &o.tenant,
            "devicecode",
            &[("client_id", &o.client_id), ("scope", &scope)],
        )
        .await?;
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let device_code = Secret::new(text("device_code"));
        let user_code = text("user_code");
        if device_code.is_empty() || user_code.is_empty() {
            return Err(Error::Auth(
                "the identity platform's device code response is incomplete".into(),
            ));
        }
        let started = (o.clock)();
        let expires_in = seconds(body.get("expires_in")).unwrap_or(900).max(1);
        let interval =
            Duration::from_secs(seconds(body.get("interval")).unwrap_or(5).clamp(1, 60) as u64);
        let expires_at = started + time::Duration::seconds(expires_in);
        let verification_uri = text("verification_uri");
        let message = match text("message") {
            m if !m.is_empty() => m,
            _ => format!(
                "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
            ),
        };
        tracing::info!(tenant = %o.tenant, expires_in, interval_s = interval.as_secs(), "device code sign-in started");
        (self.prompt)(DeviceCodePrompt {
            user_code,
            verification_uri,
            expires_at,
            message,
        });

        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", o.client_id.as_str()),
            ("device_code", device_code.expose()),
        ];
        let grant = poll_for_token(
            interval,
            expires_at,
            &o.clock,
            || async {
                let body = post_form(&self.http, &o.login, &o.tenant, "token", &form).await?;
                parse_token_grant(&body, (o.clock)())
                    .map_err(|e| ApiError::transport(Service::Login, e.to_string()))
            },
            tokio::time::sleep,
        )
        .await?;

        let account = Account {
            username: grant.claims.as_ref().and_then(|c| c.username.clone()),
            home_tenant: grant.claims.as_ref().and_then(|c| c.tenant_id.clone()),
        };
        self.cache.put(
            &o.tenant,
            &o.scope,
            grant.access_token.clone(),
            grant.expires_on,
        );
        if let Some(home) = &account.home_tenant {
            self.cache
                .put(home, &o.scope, grant.access_token.clone(), grant.expires_on);
        }
        if let Some(rt) = grant.refresh_token {
            *lock(&self.refresh) = Some(rt);
        } else {
            tracing::warn!(
                "device code sign-in returned no refresh token: other tenants and Graph will be unavailable"
            );
        }
        *lock(&self.account) = Some(account.clone());
        tracing::info!(home_tenant = ?account.home_tenant, "device code sign-in completed");
        Ok(account)
    }

    /// An access token for `scope` in `tenant` (None: [`Self::default_tenant`]).
    pub async fn token_for(
        &self,
        tenant: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, OffsetDateTime)> {
        let tenant = tenant
            .map(str::to_string)
            .unwrap_or_else(|| self.default_tenant());
        if let Some(t) = self.cache.get(&tenant, scope) {
            return Ok(t);
        }
        if !self.has_refresh_token() {
            self.sign_in().await?;
            if let Some(t) = self.cache.get(&tenant, scope) {
                return Ok(t);
            }
        }
        let rt = lock(&self.refresh).clone().ok_or_else(|| {
            Error::Auth("no refresh token from the device code sign-in: cannot get tokens for another tenant or audience".into())
        })?;
        let grant = redeem_refresh_token(
            &self.http,
            &self.opts.login,
            &self.opts.client_id,
            &tenant,
            scope,
            &rt,
            self.cache.now(),
        )
        .await?;
        if let Some(new_rt) = grant.refresh_token {
            *lock(&self.refresh) = Some(new_rt);
        }
        self.cache
            .put(&tenant, scope, grant.access_token.clone(), grant.expires_on);
        tracing::debug!(%tenant, scope, "token from refresh token");
        Ok((grant.access_token, grant.expires_on))
    }

    /// This credential as azure_core's trait, bound to `tenant` (None: the default tenant).
    pub fn for_tenant(self: &Arc<Self>, tenant: Option<&str>) -> Arc<dyn TokenCredential> {
        Arc::new(TenantBound {
            inner: self.clone(),
            tenant: tenant.map(str::to_string),
        })
    }
}

pub(crate) fn to_core_error(e: Error) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
}

/// One resource per request: the identity platform answers for the first scope only.
pub(crate) fn first_scope<'a>(scopes: &[&'a str]) -> azure_core::Result<&'a str> {
    scopes.first().copied().ok_or_else(|| {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "no scopes specified",
        )
    })
}

#[async_trait::async_trait]
impl TokenCredential for DeviceCodeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = first_scope(scopes)?;
        let (token, expires_on) = self.token_for(None, scope).await.map_err(to_core_error)?;
        Ok(AccessToken::new(token.expose().to_string(), expires_on))
    }
}

/// A [`DeviceCodeCredential`] bound to one tenant.
pub struct TenantBound {
    inner: Arc<DeviceCodeCredential>,
    tenant: Option<String>,
}

impl fmt::Debug for TenantBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantBound")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for TenantBound {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = first_scope(scopes)?;
        let (token, expires_on) = self
            .inner
            .token_for(self.tenant.as_deref(), scope)
            .await
            .map_err(to_core_error)?;
        Ok(AccessToken::new(token.expose().to_string(), expires_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    fn fake_clock(start: OffsetDateTime) -> (Clock, Arc<AtomicI64>) {
        let offset = Arc::new(AtomicI64::new(0));
        let o = offset.clone();
        (
            Arc::new(move || start + time::Duration::seconds(o.load(Ordering::SeqCst))),
            offset,
        )
    }

    fn oauth_err(code: &str) -> ApiError {
        ApiError {
            service: Service::Login,
            status: 400,
            code: code.into(),
            detail_codes: vec![],
            message: format!("AADSTS: {code}"),
            request_id: Some("corr-9".into()),
            retry_after: None,
        }
    }

    fn grant(token: &str) -> TokenGrant {
        TokenGrant {
            access_token: Secret::new(token),
            expires_on: OffsetDateTime::now_utc() + time::Duration::hours(1),
            refresh_token: Some(Secret::new("rt")),
            claims: None,
        }
    }

    /// Runs `poll_for_token` against a scripted token endpoint; returns the result and the
    /// waits it asked for. The fake clock advances by each wait.
    async fn run_script(
        script: Vec<Result<&'static str, &'static str>>,
        interval: u64,
        expires_in: i64,
    ) -> (Result<TokenGrant>, Vec<u64>, usize) {
        let start = OffsetDateTime::now_utc();
        let (clock, offset) = fake_clock(start);
        let script = Mutex::new(script.into_iter());
        let polls = AtomicU64::new(0);
        let waits = Mutex::new(Vec::new());
        let res = poll_for_token(
            Duration::from_secs(interval),
            start + time::Duration::seconds(expires_in),
            &clock,
            || {
                polls.fetch_add(1, Ordering::SeqCst);
                let next = lock(&script).next().expect("poll after the script ended");
                async move { next.map(grant).map_err(oauth_err) }
            },
            |d: Duration| {
                lock(&waits).push(d.as_secs());
                offset.fetch_add(d.as_secs() as i64, Ordering::SeqCst);
                async {}
            },
        )
        .await;
        let waits = lock(&waits).clone();
        (res, waits, polls.load(Ordering::SeqCst) as usize)
    }

    #[tokio::test]
    async fn pending_then_token_waits_the_interval_before_every_poll() {
        let (res, waits, polls) = run_script(
            vec![
                Err("authorization_pending"),
                Err("authorization_pending"),
                Ok("at"),
            ],
            5,
            900,
        )
        .await;
        assert_eq!(res.unwrap().access_token.expose(), "at");
        assert_eq!(waits, vec![5, 5, 5]);
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    async fn slow_down_adds_five_seconds_to_this_and_later_polls() {
        let (res, waits, _) = run_script(
            vec![
                Err("authorization_pending"),
                Err("slow_down"),
                Err("authorization_pending"),
                Err("slow_down"),
                Ok("at"),
            ],
            2,
            900,
        )
        .await;
        assert!(res.is_ok());
        assert_eq!(waits, vec![2, 2, 7, 7, 12]);
    }

    #[tokio::test]
    async fn service_errors_stop_polling_with_the_service_code() {
        for code in [
            "authorization_declined",
            "bad_verification_code",
            "expired_token",
            "invalid_grant",
        ] {
            let (res, _, polls) =
                run_script(vec![Err("authorization_pending"), Err(code)], 1, 900).await;
            let e = res.err().unwrap();
            let api = e.api().unwrap_or_else(|| panic!("{code}: {e}"));
            assert_eq!(api.code, code);
            assert_eq!(api.request_id.as_deref(), Some("corr-9"));
            assert!(
                api.message.contains("AADSTS"),
                "{code}: the service's description is kept: {api}"
            );
            assert_eq!(polls, 2, "{code}: no poll after the error");
        }
    }

    #[tokio::test]
    async fn stops_locally_when_the_code_has_expired() {
        // 20 s to live, 5 s interval, the service keeps saying pending: at most 3 polls.
        let (res, waits, polls) = run_script(vec![Err("authorization_pending"); 10], 5, 20).await;
        match res {
            Err(Error::Auth(m)) => assert!(m.contains("expired"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("expected expiry"),
        }
        assert_eq!(polls, 3);
        assert_eq!(waits, vec![5, 5, 5, 5]);
    }

    #[tokio::test]
    async fn transient_poll_failures_are_polled_through_but_bounded() {
        let start = OffsetDateTime::now_utc();
        let (clock, _) = fake_clock(start);
        let polls = AtomicU64::new(0);
        let res = poll_for_token(
            Duration::from_secs(1),
            start + time::Duration::seconds(900),
            &clock,
            || {
                polls.fetch_add(1, Ordering::SeqCst);
                async { Err(ApiError::transport(Service::Login, "connection reset")) }
            },
            |_| async {},
        )
        .await;
        assert_eq!(res.err().unwrap().api().unwrap().status, 0);
        assert_eq!(
            polls.load(Ordering::SeqCst),
            u64::from(MAX_TRANSIENT_POLL_FAILURES) + 1
        );
    }

    #[tokio::test]
    async fn a_lost_success_reply_is_reported_as_such() {
        let start = OffsetDateTime::now_utc();
        let (clock, _) = fake_clock(start);
        let replies = Mutex::new(
            vec![
                Err(ApiError::transport(Service::Login, "connection closed")),
                Err(oauth_err("invalid_grant")),
            ]
            .into_iter(),
        );
        let res = poll_for_token(
            Duration::from_secs(1),
            start + time::Duration::seconds(900),
            &clock,
            || {
                let r: Result<TokenGrant, ApiError> = lock(&replies).next().unwrap();
                async move { r }
            },
            |_| async {},
        )
        .await;
        assert!(matches!(res, Err(Error::Auth(m)) if m == LOST_REPLY));
        // Without a transport failure before it, invalid_grant is the service's own answer.
        let (res, _, _) = run_script(vec![Err("invalid_grant")], 1, 900).await;
        assert_eq!(res.err().unwrap().api().unwrap().code, "invalid_grant");
    }

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

    #[test]
    fn cache_serves_until_five_minutes_before_expiry() {
        let start = OffsetDateTime::now_utc();
        let (clock, offset) = fake_clock(start);
        let cache = TokenCache::new(clock);
        cache.put(
            "Tenant-A",
            "arm/.default",
            Secret::new("t1"),
            start + time::Duration::minutes(60),
        );
        assert_eq!(
            cache.get("tenant-a", "arm/.default").unwrap().0.expose(),
            "t1"
        );
        assert!(
            cache.get("tenant-a", "graph/.default").is_none(),
            "per audience"
        );
        assert!(
            cache.get("tenant-b", "arm/.default").is_none(),
            "per tenant"
        );
        offset.store(54 * 60, Ordering::SeqCst);
        assert!(
            cache.get("tenant-a", "arm/.default").is_some(),
            "6 minutes left"
        );
        offset.store(55 * 60, Ordering::SeqCst);
        assert!(
            cache.get("tenant-a", "arm/.default").is_none(),
            "5 minutes left: refresh"
        );
        assert!(!format!("{cache:?}").contains("t1"));
    }
}
