//! Our device code credential (reference/azure-api.md §3): azure_identity 1.x has none
//! (removed upstream, issue Azure/azure-sdk-for-rust#2348), and an operator on a jump box over
//! SSH has no browser anyway.
//!
//! One device flow signs the operator in (tenant `organizations`, or `--tenant`), asking for the
//! ARM scope plus `offline_access openid profile`. The refresh token it returns is kept in memory
//! only (a [`Secret`], replaced by each new one) and redeemed for every other (tenant, audience)
//! pair: `/{tenant}/oauth2/v2.0/token`, grant `refresh_token`, scope `<scope> offline_access`.
//! Access tokens are cached per (tenant, scope) until [`REFRESH_MARGIN`] before they expire.
//! With a [`Keyring`] (the commands give one: [`DeviceCodeCredential::keep_sign_in`]) the
//! refresh token is also kept in the OS keyring, and the next command's sign-in redeems it
//! instead of asking for a device code; a refused one is forgotten and the operator signs in.
//!
//! Nothing here logs or Debug-prints a token, refresh token or device code.

use crate::azure::keyring::{KeptSignIn, Keyring, sign_in_key};
use crate::azure::prompt::{DeviceCodePrompt, PromptFn, SignInPrompt};
use crate::azure::token::{
    Clock, TokenGrant, TokenRefusal, parse_token_grant, post_form, post_form_retrying, post_token,
    seconds,
};
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

/// The error of an interactive sign-in the operator cancelled.
pub const SIGN_IN_CANCELLED: &str = "the sign-in was cancelled";

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
) -> Result<TokenGrant, RefreshFailure> {
    let scope = format!("{scope} offline_access");
    let body = post_token(
        http,
        login,
        tenant,
        "token",
        &[
            ("client_id", client_id),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
            ("client_info", "1"),
        ],
        true,
    )
    .await
    .map_err(RefreshFailure::Refused)?;
    parse_token_grant(&body, now).map_err(RefreshFailure::Other)
}

/// Why a refresh gave no token.
pub(crate) enum RefreshFailure {
    Refused(TokenRefusal),
    Other(Error),
}

impl From<RefreshFailure> for Error {
    fn from(f: RefreshFailure) -> Error {
        match f {
            RefreshFailure::Refused(r) => Error::Api(r.api),
            RefreshFailure::Other(e) => e,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conditional Access and interaction (reference/identity-and-clients.md §5)
// ---------------------------------------------------------------------------------------------

/// The codes with which Conditional Access or a device policy refuses the device-code flow.
pub const DEVICE_CODE_BLOCKED: [&str; 5] = [
    "AADSTS53003",
    "AADSTS53000",
    "AADSTS53001",
    "AADSTS50097",
    "AADSTS50005",
];

/// Did Conditional Access (or a device policy) refuse this sign-in? On `error_codes` only: the
/// `error` string varies between reports.
pub fn device_code_blocked(api: &ApiError) -> bool {
    api.service == Service::Login && DEVICE_CODE_BLOCKED.iter().any(|c| api.has_code(c))
}

/// The sentence that ends a blocked device-code sign-in.
pub fn blocked_message(api: &ApiError) -> String {
    let code = DEVICE_CODE_BLOCKED
        .iter()
        .find(|c| api.has_code(c))
        .copied()
        .unwrap_or("AADSTS53003");
    let why = match code {
        "AADSTS53000" => "this machine is not a compliant device",
        "AADSTS53001" => "this machine is not domain joined",
        "AADSTS50097" | "AADSTS50005" => "the sign-in needs a registered device",
        _ => "the policy does not allow the device-code flow",
    };
    format!("Conditional Access blocks the device-code sign-in ({code}: {why})")
}

/// Does this refusal of a refresh ask for an interactive sign-in to that tenant? And why, in
/// words.
pub fn interaction_reason(api: &ApiError) -> Option<String> {
    let why = if api.has_code("AADSTS50076") {
        "multi-factor authentication is required there (AADSTS50076)"
    } else if api.has_code("AADSTS50079") {
        "you must register for multi-factor authentication there (AADSTS50079)"
    } else if api.has_code("AADSTS65001") {
        "the Azure CLI's app needs your consent there (AADSTS65001)"
    } else if api.has_code("interaction_required") {
        "it asks for an interactive sign-in (interaction_required)"
    } else {
        return None;
    };
    Some(why.to_string())
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

/// Who the interactive sign-in signed in (from the id_token, when it is a JWT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub username: Option<String>,
    pub home_tenant: Option<String>,
    /// Signed in with the sign-in kept in the OS keyring (no interactive flow ran).
    pub kept: bool,
}

/// How the operator signs in interactively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interactive {
    /// The device-code flow (RFC 8628).
    DeviceCode,
    /// Authorization code + PKCE in a browser on another machine (`azure::browser`).
    Browser { redirect_port: Option<u16> },
}

/// Where the interactive sign-in runs.
#[derive(Clone)]
pub struct DeviceCodeOptions {
    /// Authority base URL without trailing slash (`https://login.microsoftonline.com`, or the
    /// simulator's `https://127.0.0.1:PORT/login`).
    pub login: String,
    pub client_id: String,
    /// `organizations` unless `--tenant` was given.
    pub tenant: String,
    /// The scope asked for in the first sign-in (the ARM scope).
    pub scope: String,
    pub clock: Clock,
}

/// The operator's sign-in: one interactive flow (device code or browser), then a refresh token
/// redeemed for every other (tenant, audience). A tenant that answers a refresh with
/// `interaction_required` gets an interactive sign-in of its own (its authority, the `claims`
/// challenge when given), and its refresh token replaces the one kept.
pub struct DeviceCodeCredential {
    http: Http,
    opts: DeviceCodeOptions,
    interactive: Interactive,
    prompt: PromptFn,
    refresh: Mutex<Option<Secret>>,
    account: Mutex<Option<Account>>,
    cache: TokenCache,
    /// Held for the whole interactive flow: one flow in flight, other callers wait for it.
    flow: tokio::sync::Mutex<()>,
    /// Flows finished (successfully or not), and the last failure, so that callers who waited
    /// for a failed flow get its error instead of starting another prompt.
    flows_done: AtomicU64,
    last_failure: Mutex<Option<Error>>,
    /// Addresses pasted by the operator, for the browser flow in progress.
    paste_tx: tokio::sync::mpsc::UnboundedSender<String>,
    pastes: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    /// Where the sign-in is kept between commands (None: in memory only).
    keyring: std::sync::OnceLock<Arc<Keyring>>,
    /// The operator cancelled the interactive flow in progress (the wizard's Esc).
    cancel: tokio::sync::Notify,
    /// The tenant whose sign-in again is in progress, and the tenants whose sign-in again the
    /// operator cancelled: they are not asked again in this run (another lookup would
    /// otherwise open a new prompt right after the Esc).
    again_for: Mutex<Option<String>>,
    cancelled: Mutex<std::collections::BTreeSet<String>>,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("login", &self.opts.login)
            .field("client_id", &self.opts.client_id)
            .field("tenant", &self.opts.tenant)
            .field("interactive", &self.interactive)
            .field("signed_in", &self.has_refresh_token())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeviceCodeCredential {
    pub fn new(http: Http, opts: DeviceCodeOptions, prompt: PromptFn) -> Arc<DeviceCodeCredential> {
        Self::with_interactive(http, opts, Interactive::DeviceCode, prompt)
    }

    pub fn with_interactive(
        http: Http,
        opts: DeviceCodeOptions,
        interactive: Interactive,
        prompt: PromptFn,
    ) -> Arc<DeviceCodeCredential> {
        let (paste_tx, pastes) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(DeviceCodeCredential {
            http,
            cache: TokenCache::new(opts.clock.clone()),
            opts,
            interactive,
            prompt,
            refresh: Mutex::new(None),
            account: Mutex::new(None),
            flow: tokio::sync::Mutex::new(()),
            flows_done: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            paste_tx,
            pastes: tokio::sync::Mutex::new(pastes),
            keyring: std::sync::OnceLock::new(),
            cancel: tokio::sync::Notify::new(),
            again_for: Mutex::new(None),
            cancelled: Mutex::new(Default::default()),
        })
    }

    /// Keeps the sign-in in `keyring` between commands, and signs in with the one kept there.
    /// Set once, before the first sign-in.
    pub fn keep_sign_in(&self, keyring: Arc<Keyring>) {
        let _ = self.keyring.set(keyring);
    }

    fn keyring_key(&self) -> String {
        sign_in_key(&self.opts.login, &self.opts.client_id, &self.opts.tenant)
    }

    /// Writes the refresh token in memory (and who signed in) to the keyring, if there is one.
    fn remember(&self) {
        let (Some(k), Some(rt)) = (self.keyring.get(), lock(&self.refresh).clone()) else {
            return;
        };
        let account = self.account().unwrap_or_default();
        k.store(
            &self.keyring_key(),
            &KeptSignIn {
                refresh_token: rt,
                username: account.username,
                home_tenant: account.home_tenant,
            },
        );
    }

    /// The sign-in kept in the keyring, redeemed for the first scope. None: nothing kept, no
    /// usable keyring, or the identity platform refused it (then it is forgotten).
    async fn sign_in_kept(&self, tenant: &str, scope: &str) -> Option<Account> {
        let k = self.keyring.get()?;
        let key = self.keyring_key();
        let kept = k.load(&key)?;
        match self.refresh(tenant, scope, &kept.refresh_token).await {
            Ok(_) => {
                let account = Account {
                    username: kept.username,
                    home_tenant: kept.home_tenant,
                    kept: true,
                };
                *lock(&self.account) = Some(account.clone());
                self.remember();
                tracing::info!(
                    service = k.service(),
                    "signed in with the sign-in kept in the keyring"
                );
                Some(account)
            }
            Err(RefreshFailure::Refused(r)) => {
                k.forget(&key);
                tracing::info!(
                    service = k.service(),
                    code = ?r.api.code,
                    "the kept sign-in was refused: forgotten, signing in again"
                );
                None
            }
            Err(RefreshFailure::Other(e)) => {
                tracing::info!(error = %e, "the kept sign-in could not be redeemed: signing in");
                None
            }
        }
    }

    pub fn interactive(&self) -> Interactive {
        self.interactive
    }

    /// Hands the address the browser ended on to the browser sign-in waiting for it. It is
    /// checked there (our redirect, our state, a code); a refusal comes back as
    /// [`SignInPrompt::Refused`].
    pub fn paste_redirect(&self, address: &str) {
        let _ = self.paste_tx.send(address.to_string());
    }

    /// Cancels the interactive flow in progress, if any: its device code is polled no more (a
    /// browser sign-in stops listening), and it ends with [`SIGN_IN_CANCELLED`]. A later call
    /// that needs a sign-in starts a new flow.
    /// A tenant's sign-in again that is cancelled is not started again in this run: what needs
    /// the tenant fails at once with the same error.
    pub fn cancel_interactive(&self) {
        if let Some(t) = lock(&self.again_for).clone() {
            lock(&self.cancelled).insert(t);
        }
        self.cancel.notify_waiters();
    }

    pub fn has_refresh_token(&self) -> bool {
        lock(&self.refresh).is_some()
    }

    /// Who signed in, once the interactive flow has completed.
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

    /// Runs the interactive flow unless it has already run (or is running: then waits for it).
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
        let tenant = self.opts.tenant.clone();
        let scope = self.opts.scope.clone();
        if let Some(account) = self.sign_in_kept(&tenant, &scope).await {
            self.flows_done.fetch_add(1, Ordering::SeqCst);
            return Ok(account);
        }
        let mut result = self.run_interactive(&tenant, &scope, None).await;
        if matches!(&result, Err(Error::Auth(m)) if m == LOST_REPLY) {
            // The operator signed in but the reply never arrived: a new code is the only way on.
            tracing::info!("device code: reply lost in transit, starting a new device code");
            result = self.run_interactive(&tenant, &scope, None).await;
        }
        let result = result.map(|grant| {
            let account = Account {
                username: grant.claims.as_ref().and_then(|c| c.username.clone()),
                // client_info's home tenant; the token's `tid` is the tenant signed in to.
                home_tenant: grant
                    .home_tenant
                    .clone()
                    .or_else(|| grant.claims.as_ref().and_then(|c| c.tenant_id.clone())),
                kept: false,
            };
            self.keep(&tenant, &scope, &grant);
            // Cached under the tenant it was issued in (`tid`), not the home tenant.
            if let Some(tid) = grant.claims.as_ref().and_then(|c| c.tenant_id.as_deref()) {
                self.cache
                    .put(tid, &scope, grant.access_token.clone(), grant.expires_on);
            }
            if grant.refresh_token.is_none() {
                tracing::warn!(
                    "the sign-in returned no refresh token: other tenants and Graph will be unavailable"
                );
            }
            *lock(&self.account) = Some(account.clone());
            self.remember();
            match self.interactive {
                Interactive::DeviceCode => {
                    tracing::info!(home_tenant = ?account.home_tenant, "device code sign-in completed")
                }
                Interactive::Browser { .. } => {
                    tracing::info!(home_tenant = ?account.home_tenant, "browser sign-in: signed in")
                }
            }
            account
        });
        if let Err(e) = &result {
            *lock(&self.last_failure) = Some(e.clone());
        }
        self.flows_done.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Caches the grant's access token for (tenant, scope) and keeps its refresh token.
    fn keep(&self, tenant: &str, scope: &str, grant: &TokenGrant) {
        self.cache
            .put(tenant, scope, grant.access_token.clone(), grant.expires_on);
        if let Some(rt) = &grant.refresh_token {
            *lock(&self.refresh) = Some(rt.clone());
        }
    }

    /// One interactive sign-in at `tenant`'s authority for `scope`, until it ends or is
    /// cancelled ([`Self::cancel_interactive`]: the flow's future is dropped, so nothing polls).
    async fn run_interactive(
        &self,
        tenant: &str,
        scope: &str,
        claims: Option<&str>,
    ) -> Result<TokenGrant> {
        let cancelled = self.cancel.notified();
        tokio::pin!(cancelled);
        // Registered before the flow starts: a cancel from now on ends it.
        cancelled.as_mut().enable();
        tokio::select! {
            r = self.run_flow(tenant, scope, claims) => r,
            () = cancelled => {
                tracing::info!(%tenant, "interactive sign-in cancelled by the operator");
                Err(Error::Auth(SIGN_IN_CANCELLED.into()))
            }
        }
    }

    async fn run_flow(
        &self,
        tenant: &str,
        scope: &str,
        claims: Option<&str>,
    ) -> Result<TokenGrant> {
        let scopes = format!("{scope} offline_access openid profile");
        match self.interactive {
            Interactive::DeviceCode => self.run_device_flow(tenant, &scopes, claims).await,
            Interactive::Browser { redirect_port } => {
                let o = crate::azure::browser::BrowserOptions {
                    login: self.opts.login.clone(),
                    client_id: self.opts.client_id.clone(),
                    tenant: tenant.to_string(),
                    scope: scopes,
                    redirect_port,
                    claims: claims.map(str::to_string),
                    clock: self.opts.clock.clone(),
                };
                let mut pastes = self.pastes.lock().await;
                crate::azure::browser::sign_in(&self.http, &o, &self.prompt, &mut pastes).await
            }
        }
    }

    async fn run_device_flow(
        &self,
        tenant: &str,
        scopes: &str,
        claims: Option<&str>,
    ) -> Result<TokenGrant> {
        let o = &self.opts;
        let mut request = vec![("client_id", o.client_id.as_str()), ("scope", scopes)];
        if let Some(c) = claims {
            request.push(("claims", c));
        }
        let body = post_form_retrying(&self.http, &o.login, tenant, "devicecode", &request)
            .await
            .map_err(blocked_or)?;
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
        tracing::info!(%tenant, expires_in, interval_s = interval.as_secs(), "device code sign-in started");
        (self.prompt)(SignInPrompt::DeviceCode(DeviceCodePrompt {
            user_code,
            verification_uri,
            expires_at,
            message,
        }));

        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", o.client_id.as_str()),
            ("device_code", device_code.expose()),
            ("client_info", "1"),
        ];
        poll_for_token(
            interval,
            expires_at,
            &o.clock,
            || async {
                let body = post_form(&self.http, &o.login, tenant, "token", &form).await?;
                parse_token_grant(&body, (o.clock)())
                    .map_err(|e| ApiError::transport(Service::Login, e.to_string()))
            },
            tokio::time::sleep,
        )
        .await
        .map_err(|e| match e {
            Error::Api(api) => blocked_or(api),
            other => other,
        })
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
        let rt = self.refresh_token()?;
        match self.refresh(&tenant, scope, &rt).await {
            Err(RefreshFailure::Refused(r)) => match interaction_reason(&r.api) {
                Some(reason) => {
                    self.sign_in_again(&tenant, scope, &rt, r.claims.as_deref(), &reason)
                        .await
                }
                None => Err(Error::Api(r.api)),
            },
            other => other.map_err(Error::from),
        }
    }

    fn refresh_token(&self) -> Result<Secret> {
        lock(&self.refresh).clone().ok_or_else(|| {
            Error::Auth("no refresh token from the sign-in: cannot get tokens for another tenant or audience".into())
        })
    }

    async fn refresh(
        &self,
        tenant: &str,
        scope: &str,
        rt: &Secret,
    ) -> Result<(Secret, OffsetDateTime), RefreshFailure> {
        let grant = redeem_refresh_token(
            &self.http,
            &self.opts.login,
            &self.opts.client_id,
            tenant,
            scope,
            rt,
            self.cache.now(),
        )
        .await?;
        let rotated = grant
            .refresh_token
            .as_ref()
            .is_some_and(|n| n.expose() != rt.expose());
        self.keep(tenant, scope, &grant);
        if rotated && self.account().is_some() {
            self.remember();
        }
        tracing::debug!(%tenant, scope, "token from refresh token");
        Ok((grant.access_token, grant.expires_on))
    }

    /// `tenant` refused the refresh token `stale` and wants the operator to sign in there.
    async fn sign_in_again(
        &self,
        tenant: &str,
        scope: &str,
        stale: &Secret,
        claims: Option<&str>,
        reason: &str,
    ) -> Result<(Secret, OffsetDateTime)> {
        let _guard = self.flow.lock().await;
        // Another caller may have signed in to this tenant while we waited.
        if let Some(t) = self.cache.get(tenant, scope) {
            return Ok(t);
        }
        let current = self.refresh_token()?;
        if current.expose() != stale.expose()
            && let Ok(t) = self.refresh(tenant, scope, &current).await
        {
            return Ok(t);
        }
        if lock(&self.cancelled).contains(tenant) {
            return Err(Error::Auth(SIGN_IN_CANCELLED.into()));
        }
        tracing::info!(%tenant, reason, "tenant asks for an interactive sign-in");
        (self.prompt)(SignInPrompt::Again {
            tenant: tenant.to_string(),
            reason: reason.to_string(),
        });
        *lock(&self.again_for) = Some(tenant.to_string());
        let result = self.run_interactive(tenant, scope, claims).await;
        *lock(&self.again_for) = None;
        (self.prompt)(SignInPrompt::Finished {
            tenant: tenant.to_string(),
            ok: result.is_ok(),
        });
        let grant = result?;
        self.keep(tenant, scope, &grant);
        self.remember();
        tracing::info!(%tenant, "signed in to the tenant again");
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

/// A blocked device-code sign-in gets the sentence that names Conditional Access and the way
/// out; any other error stays as it is.
fn blocked_or(api: ApiError) -> Error {
    if device_code_blocked(&api) {
        let what = blocked_message(&api);
        Error::Api(with_message(api, &what))
    } else {
        Error::Api(api)
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
            layer_retried: false,
        }
    }

    fn grant(token: &str) -> TokenGrant {
        TokenGrant {
            access_token: Secret::new(token),
            expires_on: OffsetDateTime::now_utc() + time::Duration::hours(1),
            refresh_token: Some(Secret::new("rt")),
            claims: None,
            home_tenant: None,
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
