//! Azure sign-in behind azure_core's `TokenCredential` (PRODUCT.md §1 step 1).
//!
//! Five methods: our [`DeviceCodeCredential`] (default: works over SSH) and its browser variant
//! (authorization code + PKCE from another machine's browser, `azure::browser`), azure_identity's
//! `AzureCliCredential` and `ManagedIdentityCredential`, and a service principal's client secret
//! from `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` ([`ClientSecretCredential`]),
//! and azure_identity's `WorkloadIdentityCredential` (no secret: a federated token from
//! `AZURE_FEDERATED_TOKEN_FILE`, [`WorkloadIdentity`]).
//! [`Auth`] hands out access tokens per (tenant, audience) as [`Secret`]s, and the same thing as
//! an `Arc<dyn TokenCredential>` ([`Auth::credential`]).

use crate::azure::device_code::{
    self, AZURE_CLI_CLIENT_ID, DeviceCodeCredential, DeviceCodeOptions, Interactive, TokenCache,
};
use crate::azure::token::{self, Clock, decode_jwt_claims};
use crate::endpoints::Endpoints;
use crate::error::{Error, Result, Service};
use crate::http::Http;
use crate::secret::Secret;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Device code (default: works over SSH with no browser).
    #[default]
    DeviceCode,
    /// Authorization code + PKCE in a browser on another machine (your laptop): for when
    /// Conditional Access blocks the device code. See --redirect-port.
    Browser,
    /// Reuse the `az login` session.
    AzureCli,
    /// The managed identity of the Azure VM or container this runs on (IMDS); with
    /// AZURE_CLIENT_ID, that user-assigned identity.
    ManagedIdentity,
    /// AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET.
    ClientSecret,
    /// No secret: a federated token from AZURE_FEDERATED_TOKEN_FILE (a Kubernetes service
    /// account's, as AKS workload identity sets it) exchanged for the app AZURE_CLIENT_ID in
    /// AZURE_TENANT_ID through its federated identity credential (AZURE_AUTHORITY_HOST optional).
    WorkloadIdentity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    Arm,
    Graph,
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// UPN for a user, client id for a service principal or managed identity.
    pub display: String,
    pub home_tenant: Option<String>,
    pub method: AuthMethod,
}

/// What an interactive sign-in shows, and the callback that shows it (defined in
/// `azure::prompt`, which the device-code and browser flows use too).
pub use super::prompt::{BrowserPrompt, DeviceCodePrompt, PromptFn, SignInPrompt};

/// The tenant the device flow signs in to when no `--tenant` was given (work/school accounts).
pub const ORGANIZATIONS: &str = "organizations";

const ARM_TENANTS_API: &str = "2022-12-01";

// ---------------------------------------------------------------------------------------------
// Service principal with a client secret
// ---------------------------------------------------------------------------------------------

/// A service principal's credentials. The secret only ever comes from the environment (or a
/// caller's own secure source), never from argv.
#[derive(Clone)]
pub struct ServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: Secret,
}

impl fmt::Debug for ServicePrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePrincipal")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .finish()
    }
}

impl ServicePrincipal {
    /// `AZURE_TENANT_ID` (or `--tenant`), `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    pub fn from_env(tenant: Option<&str>) -> Result<ServicePrincipal> {
        Self::from_vars(tenant, |k| std::env::var(k).ok())
    }

    /// As [`ServicePrincipal::from_env`], reading variables through `get`.
    pub fn from_vars(
        tenant: Option<&str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ServicePrincipal> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let tenant_id = var("AZURE_TENANT_ID").or_else(|| tenant.map(str::to_string));
        let client_id = var("AZURE_CLIENT_ID");
        let secret = var("AZURE_CLIENT_SECRET").map(Secret::new);
        match (tenant_id, client_id, secret) {
            (Some(tenant_id), Some(client_id), Some(secret)) => Ok(ServicePrincipal {
                tenant_id,
                client_id,
                secret,
            }),
            (t, c, s) => {
                let missing: Vec<&str> = [
                    (t.is_none(), "AZURE_TENANT_ID"),
                    (c.is_none(), "AZURE_CLIENT_ID"),
                    (s.is_none(), "AZURE_CLIENT_SECRET"),
                ]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, k)| *k)
                .collect();
                Err(Error::Usage(format!(
                    "--auth client-secret needs {} in the environment",
                    missing.join(", ")
                )))
            }
        }
    }
}

/// `--auth workload-identity`'s settings, from the variables AKS workload identity sets
/// (azure_identity's `WorkloadIdentityCredential` reads the same names). No secret: the file
/// holds a short-lived federated token, read again by the credential as it is renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub tenant_id: String,
    pub client_id: String,
    pub token_file: std::path::PathBuf,
    /// `AZURE_AUTHORITY_HOST` (None: the endpoints' login origin).
    pub authority_host: Option<String>,
}

impl WorkloadIdentity {
    /// `AZURE_TENANT_ID` (or `--tenant`), `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
    /// (a readable, non-empty file), `AZURE_AUTHORITY_HOST` (optional, https).
    pub fn from_env(tenant: Option<&str>) -> Result<WorkloadIdentity> {
        Self::from_vars(tenant, |k| std::env::var(k).ok())
    }

    /// As [`WorkloadIdentity::from_env`], reading variables through `get`.
    pub fn from_vars(
        tenant: Option<&str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkloadIdentity> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let tenant_id = var("AZURE_TENANT_ID").or_else(|| tenant.map(str::to_string));
        let client_id = var("AZURE_CLIENT_ID");
        let file = var("AZURE_FEDERATED_TOKEN_FILE");
        let (Some(tenant_id), Some(client_id), Some(file)) =
            (tenant_id.clone(), client_id.clone(), file.clone())
        else {
            let missing: Vec<&str> = [
                (tenant_id.is_none(), "AZURE_TENANT_ID"),
                (client_id.is_none(), "AZURE_CLIENT_ID"),
                (file.is_none(), "AZURE_FEDERATED_TOKEN_FILE"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, k)| *k)
            .collect();
            return Err(Error::Usage(format!(
                "--auth workload-identity needs {} in the environment (AKS workload identity sets them for a pod whose service account is labelled azure.workload.identity/use)",
                missing.join(", ")
            )));
        };
        let token_file = std::path::PathBuf::from(&file);
        // The file must hold a token now: azure_identity reads it when the credential is made,
        // and its own error would come later, from inside the sign-in.
        match std::fs::metadata(&token_file) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            Ok(m) if m.is_file() => {
                return Err(Error::Usage(format!(
                    "AZURE_FEDERATED_TOKEN_FILE={file}: the file is empty (no federated token)"
                )));
            }
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "AZURE_FEDERATED_TOKEN_FILE={file}: not a regular file"
                )));
            }
            Err(e) => {
                return Err(Error::Usage(format!(
                    "AZURE_FEDERATED_TOKEN_FILE={file}: cannot read the federated token file: {e}"
                )));
            }
        }
        if let Err(e) = std::fs::File::open(&token_file) {
            return Err(Error::Usage(format!(
                "AZURE_FEDERATED_TOKEN_FILE={file}: cannot read the federated token file: {e}"
            )));
        }
        let authority_host = match var("AZURE_AUTHORITY_HOST") {
            None => None,
            Some(h) => {
                let ok = url::Url::parse(h.trim())
                    .ok()
                    .filter(|u| u.scheme() == "https" && u.host_str().is_some());
                if ok.is_none() {
                    return Err(Error::Usage(format!(
                        "AZURE_AUTHORITY_HOST={h}: not an https URL (for example https://login.microsoftonline.com/)"
                    )));
                }
                Some(h.trim().trim_end_matches('/').to_string())
            }
        };
        Ok(WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
            authority_host,
        })
    }
}

/// The OAuth client credentials grant with a client secret.
///
/// Why not azure_identity's `ClientSecretCredential`: it builds its token URL with
/// `authority_host.join("/{tenant}/oauth2/v2.0/token")`, an absolute path that drops any path of
/// the authority host, so it cannot be pointed at an authority that lives under a path (a
/// corporate reverse proxy; the simulator used to serve one too), even with a custom
/// `CloudConfiguration` and transport. Its errors also keep only the numeric AADSTS codes,
/// where the rest of this crate branches on the OAuth `error` code (`invalid_client`, …). The
/// grant is one form POST; this implements it on the same `TokenCredential` trait, over the
/// crate's HTTP layer (which trusts the simulator's CA when the endpoints file names one).
pub struct ClientSecretCredential {
    http: Http,
    login: String,
    sp: ServicePrincipal,
    cache: TokenCache,
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredential")
            .field("login", &self.login)
            .field("tenant_id", &self.sp.tenant_id)
            .field("client_id", &self.sp.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientSecretCredential {
    pub fn new(
        http: Http,
        login: &str,
        sp: ServicePrincipal,
        clock: Clock,
    ) -> Arc<ClientSecretCredential> {
        Arc::new(ClientSecretCredential {
            http,
            login: login.trim_end_matches('/').to_string(),
            sp,
            cache: TokenCache::new(clock),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.sp.client_id
    }

    pub fn tenant_id(&self) -> &str {
        &self.sp.tenant_id
    }

    /// A token for `scope` in `tenant` (None: the service principal's tenant).
    pub async fn token_for(
        &self,
        tenant: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, OffsetDateTime)> {
        let tenant = tenant.unwrap_or(&self.sp.tenant_id);
        if let Some(t) = self.cache.get(tenant, scope) {
            return Ok(t);
        }
        let body = token::post_form_retrying(
            &self.http,
            &self.login,
            tenant,
            "token",
            &[
                ("client_id", self.sp.client_id.as_str()),
                ("client_secret", self.sp.secret.expose()),
                ("grant_type", "client_credentials"),
                ("scope", scope),
            ],
        )
        .await?;
        let grant = token::parse_token_grant(&body, self.cache.now())?;
        self.cache
            .put(tenant, scope, grant.access_token.clone(), grant.expires_on);
        Ok((grant.access_token, grant.expires_on))
    }
}

#[async_trait::async_trait]
impl TokenCredential for ClientSecretCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = device_code::first_scope(scopes)?;
        let (token, expires_on) = self
            .token_for(None, scope)
            .await
            .map_err(device_code::to_core_error)?;
        Ok(AccessToken::new(token.expose().to_string(), expires_on))
    }
}

// ---------------------------------------------------------------------------------------------
// azure_identity credentials
// ---------------------------------------------------------------------------------------------

/// An azure_core error as ours: the identity platform's OAuth error body when there is one
/// (code, description, correlation id), else the credential's message.
fn from_core_error(e: azure_core::Error) -> Error {
    // An `az` that did not answer in time: our own sentence, naming the command.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<super::az::TimedOut>() {
            return Error::Auth(t.0.clone());
        }
        if let Some(t) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<super::az::TimedOut>())
        {
            return Error::Auth(t.0.clone());
        }
        source = s.source();
    }
    fn body_of(e: &azure_core::Error) -> Option<(u16, Value)> {
        if let azure_core::error::ErrorKind::HttpResponse {
            status,
            raw_response: Some(raw),
            ..
        } = e.kind()
        {
            let body: Value = serde_json::from_slice(raw.body().as_ref()).ok()?;
            return Some((u16::from(*status), body));
        }
        None
    }
    let found = body_of(&e).or_else(|| e.downcast_ref::<azure_core::Error>().and_then(body_of));
    if let Some((status, body)) = found
        && body.get("error").is_some()
        && let Ok(status) = reqwest::StatusCode::from_u16(status)
    {
        return Error::Api(crate::http::parse_error(Service::Login, status, &body));
    }
    Error::Auth(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

enum Backend {
    DeviceCode(Arc<DeviceCodeCredential>),
    ClientSecret(Arc<ClientSecretCredential>),
    /// One `az` credential per tenant (`az account get-access-token --tenant`).
    AzureCli(Mutex<HashMap<String, Arc<AzureCliCredential>>>),
    ManagedIdentity(Arc<ManagedIdentityCredential>),
    /// One federated-token credential per tenant (the app may be multi-tenant).
    WorkloadIdentity {
        settings: WorkloadIdentity,
        creds: Mutex<HashMap<String, Arc<WorkloadIdentityCredential>>>,
    },
}

/// Serialises token requests for one (tenant, scope).
type Gate = Arc<tokio::sync::Mutex<()>>;

struct Inner {
    method: AuthMethod,
    endpoints: Endpoints,
    http: Http,
    /// `--tenant`.
    tenant: Option<String>,
    backend: Backend,
    /// Tokens of the azure_identity credentials (`az` does not cache).
    cache: TokenCache,
    home_tenant: Mutex<Option<String>>,
    /// One token request in flight per (tenant, scope): concurrent callers wait for it and
    /// take the cached token instead of asking the identity platform again.
    in_flight: Mutex<HashMap<(String, String), Gate>>,
}

/// The signed-in session: cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("method", &self.inner.method)
            .field("login", &self.inner.endpoints.login)
            .field("tenant", &self.inner.tenant)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Auth {
    pub fn new(
        method: AuthMethod,
        endpoints: &Endpoints,
        http: &Http,
        tenant: Option<String>,
        prompt: PromptFn,
    ) -> Result<Auth> {
        Self::with_redirect_port(method, endpoints, http, tenant, None, prompt)
    }

    /// As [`Auth::new`]; the browser sign-in listens on `redirect_port` (None: a free port).
    pub fn with_redirect_port(
        method: AuthMethod,
        endpoints: &Endpoints,
        http: &Http,
        tenant: Option<String>,
        redirect_port: Option<u16>,
        prompt: PromptFn,
    ) -> Result<Auth> {
        Self::build(
            method,
            endpoints,
            http,
            tenant,
            redirect_port,
            prompt,
            token::system_clock(),
        )
    }

    /// As [`Auth::new`], with the time source injected (tests).
    pub fn with_clock(
        method: AuthMethod,
        endpoints: &Endpoints,
        http: &Http,
        tenant: Option<String>,
        prompt: PromptFn,
        clock: Clock,
    ) -> Result<Auth> {
        Self::build(method, endpoints, http, tenant, None, prompt, clock)
    }

    fn build(
        method: AuthMethod,
        endpoints: &Endpoints,
        http: &Http,
        tenant: Option<String>,
        redirect_port: Option<u16>,
        prompt: PromptFn,
        clock: Clock,
    ) -> Result<Auth> {
        let custom = endpoints.name == "custom";
        let user = |interactive| {
            Backend::DeviceCode(DeviceCodeCredential::with_interactive(
                http.clone(),
                DeviceCodeOptions {
                    login: endpoints.login.clone(),
                    client_id: AZURE_CLI_CLIENT_ID.into(),
                    tenant: tenant.clone().unwrap_or_else(|| ORGANIZATIONS.into()),
                    scope: endpoints.arm_scope.clone(),
                    clock: clock.clone(),
                },
                interactive,
                prompt.clone(),
            ))
        };
        let backend = match method {
            AuthMethod::DeviceCode => user(Interactive::DeviceCode),
            AuthMethod::Browser => user(Interactive::Browser { redirect_port }),
            AuthMethod::ClientSecret => {
                let sp = ServicePrincipal::from_env(tenant.as_deref())?;
                return Ok(Self::client_secret_with_clock(
                    endpoints, http, sp, tenant, clock,
                ));
            }
            // With custom endpoints too: `az account get-access-token --scope {arm}/.default`
            // works against whatever cloud `az` is signed in to (`az cloud register` + `az login`;
            // docs/architecture.md).
            AuthMethod::AzureCli => Backend::AzureCli(Mutex::new(HashMap::new())),
            AuthMethod::WorkloadIdentity => {
                let settings = WorkloadIdentity::from_env(tenant.as_deref())?;
                let home = settings.tenant_id.clone();
                let auth = Self::assemble(
                    method,
                    endpoints,
                    http,
                    tenant,
                    Backend::WorkloadIdentity {
                        settings,
                        creds: Mutex::new(HashMap::new()),
                    },
                    clock,
                );
                *lock(&auth.inner.home_tenant) = Some(home);
                return Ok(auth);
            }
            AuthMethod::ManagedIdentity => {
                let mut options = ManagedIdentityCredentialOptions {
                    user_assigned_id: std::env::var("AZURE_CLIENT_ID")
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(azure_identity::UserAssignedId::ClientId),
                    ..Default::default()
                };
                // Custom endpoints: the identity endpoint comes from App Service's
                // IDENTITY_ENDPOINT / IDENTITY_HEADER (azure_identity reads them), and is reached
                // through our HTTP client, which trusts the endpoints' CA (HTTPS only). A real
                // cloud keeps azure_identity's own transport (IMDS is plain HTTP).
                if custom {
                    options.client_options.transport = Some(azure_core::http::Transport::new(
                        Arc::new(http.client().clone()),
                    ));
                }
                Backend::ManagedIdentity(
                    ManagedIdentityCredential::new(Some(options)).map_err(from_core_error)?,
                )
            }
        };
        Ok(Self::assemble(
            method, endpoints, http, tenant, backend, clock,
        ))
    }

    /// A service principal sign-in with credentials the caller already holds (tests, or a
    /// caller with its own secure source). `Auth::new(ClientSecret, …)` reads them from the env.
    pub fn client_secret(
        endpoints: &Endpoints,
        http: &Http,
        sp: ServicePrincipal,
        tenant: Option<String>,
    ) -> Auth {
        Self::client_secret_with_clock(endpoints, http, sp, tenant, token::system_clock())
    }

    fn client_secret_with_clock(
        endpoints: &Endpoints,
        http: &Http,
        sp: ServicePrincipal,
        tenant: Option<String>,
        clock: Clock,
    ) -> Auth {
        let home = sp.tenant_id.clone();
        let cred = ClientSecretCredential::new(http.clone(), &endpoints.login, sp, clock.clone());
        let auth = Self::assemble(
            AuthMethod::ClientSecret,
            endpoints,
            http,
            tenant,
            Backend::ClientSecret(cred),
            clock,
        );
        *lock(&auth.inner.home_tenant) = Some(home);
        auth
    }

    fn assemble(
        method: AuthMethod,
        endpoints: &Endpoints,
        http: &Http,
        tenant: Option<String>,
        backend: Backend,
        clock: Clock,
    ) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                method,
                endpoints: endpoints.clone(),
                http: http.clone(),
                tenant,
                backend,
                cache: TokenCache::new(clock),
                home_tenant: Mutex::new(None),
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn method(&self) -> AuthMethod {
        self.inner.method
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The client id of a service principal signed in with a client secret (None otherwise).
    pub fn client_id(&self) -> Option<String> {
        match &self.inner.backend {
            Backend::ClientSecret(c) => Some(c.client_id().to_string()),
            Backend::WorkloadIdentity { settings, .. } => Some(settings.client_id.clone()),
            _ => None,
        }
    }

    /// Hands the address the browser ended on to the browser sign-in waiting for it (pasted by
    /// the operator). A refusal comes back through the prompt as [`SignInPrompt::Refused`].
    pub fn paste_redirect(&self, address: &str) {
        if let Backend::DeviceCode(c) = &self.inner.backend {
            c.paste_redirect(address);
        }
    }

    /// Cancels the interactive sign-in in progress (device code or browser), if any: nothing
    /// is polled or listened for after it; the sign-in ends with an error saying so, and a
    /// tenant's sign-in again so cancelled is not started again by this session.
    pub fn cancel_sign_in(&self) {
        if let Backend::DeviceCode(c) = &self.inner.backend {
            c.cancel_interactive();
        }
    }

    /// `--tenant`, when given.
    pub fn requested_tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }

    /// The signed-in identity's home tenant, once known (after [`Auth::sign_in`]).
    pub fn home_tenant(&self) -> Option<String> {
        if let Some(t) = lock(&self.inner.home_tenant).clone() {
            return Some(t);
        }
        match &self.inner.backend {
            Backend::DeviceCode(c) => c.account().and_then(|a| a.home_tenant),
            _ => None,
        }
    }

    /// Signs in (the device code prompt, or a first token from the other credentials) and says who.
    pub async fn sign_in(&self) -> Result<Identity> {
        // Endpoints from a file: every origin answers, signed by its CA (errors name the field).
        self.inner.endpoints.verify(&self.inner.http).await?;
        let method = self.inner.method;
        let (display, claims_tenant) = match &self.inner.backend {
            Backend::DeviceCode(c) => {
                let account = c.sign_in().await?;
                (account.username, account.home_tenant)
            }
            Backend::ClientSecret(c) => {
                let (token, _) = c
                    .token_for(
                        self.inner.tenant.as_deref(),
                        &self.inner.endpoints.arm_scope,
                    )
                    .await?;
                let claims = decode_jwt_claims(token.expose()).unwrap_or_default();
                (
                    Some(c.client_id().to_string()),
                    claims.tenant_id.or_else(|| Some(c.tenant_id().to_string())),
                )
            }
            Backend::AzureCli(_)
            | Backend::ManagedIdentity(_)
            | Backend::WorkloadIdentity { .. } => {
                let token = self
                    .token(self.inner.tenant.as_deref(), Audience::Arm)
                    .await?;
                let claims = decode_jwt_claims(token.expose()).unwrap_or_default();
                let who = match method {
                    AuthMethod::ManagedIdentity => claims
                        .app_id
                        .or(claims.object_id)
                        .map(|id| format!("managed identity {id}")),
                    AuthMethod::WorkloadIdentity => claims
                        .app_id
                        .or(claims.object_id)
                        .map(|id| format!("workload identity {id}")),
                    _ => claims.username.or(claims.app_id),
                };
                (who, claims.tenant_id)
            }
        };
        let home = match claims_tenant {
            Some(t) => Some(t),
            // Opaque tokens (not JWTs, or without `tid`): ask ARM which tenant is home.
            None => self.home_tenant_from_arm().await?,
        };
        if let Some(h) = &home {
            *lock(&self.inner.home_tenant) = Some(h.clone());
            if let Backend::DeviceCode(c) = &self.inner.backend {
                c.set_home_tenant(h);
            }
        }
        let display = display.unwrap_or_else(|| match (method, &home) {
            (AuthMethod::DeviceCode | AuthMethod::Browser | AuthMethod::AzureCli, Some(h)) => {
                format!("user of tenant {h}")
            }
            (AuthMethod::ManagedIdentity, _) => "managed identity".to_string(),
            _ => AZURE_CLI_CLIENT_ID.to_string(),
        });
        tracing::info!(method = ?method, home_tenant = ?home, "signed in");
        Ok(Identity {
            display,
            home_tenant: home,
            method,
        })
    }

    /// Keeps the operator's interactive sign-in (device code, browser) in `keyring` between
    /// commands, and signs in with the one kept there. The other methods keep nothing.
    pub fn keep_sign_in(&self, keyring: Arc<super::keyring::Keyring>) {
        if let Backend::DeviceCode(c) = &self.inner.backend {
            c.keep_sign_in(keyring);
        }
    }

    /// Did the sign-in use the one kept in the OS keyring (no prompt ran)?
    pub fn signed_in_from_keyring(&self) -> bool {
        match &self.inner.backend {
            Backend::DeviceCode(c) => c.account().is_some_and(|a| a.kept),
            _ => false,
        }
    }

    /// `GET {arm}/tenants`: the `Home` tenant, or the only one.
    async fn home_tenant_from_arm(&self) -> Result<Option<String>> {
        let token = self
            .token(self.inner.tenant.as_deref(), Audience::Arm)
            .await?;
        let url = format!(
            "{}/tenants?api-version={ARM_TENANTS_API}",
            self.inner.endpoints.arm
        );
        let req = self
            .inner
            .http
            .request(reqwest::Method::GET, &url)
            .bearer_auth(token.expose());
        let body = self.inner.http.send(Service::Arm, req).await?.body;
        let tenants = body
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let id = |t: &Value| {
            t.get("tenantId")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let home = tenants
            .iter()
            .find(|t| t.get("tenantCategory").and_then(Value::as_str) == Some("Home"))
            .and_then(id)
            .or_else(|| {
                if tenants.len() == 1 {
                    id(&tenants[0])
                } else {
                    None
                }
            });
        Ok(home)
    }

    fn scope(&self, audience: Audience) -> &str {
        match audience {
            Audience::Arm => &self.inner.endpoints.arm_scope,
            Audience::Graph => &self.inner.endpoints.graph_scope,
        }
    }

    /// An access token for `audience` in `tenant` (None: the sign-in's home/organizations tenant).
    pub async fn token(&self, tenant: Option<&str>, audience: Audience) -> Result<Secret> {
        let scope = self.scope(audience).to_string();
        Ok(self.token_for_scope(tenant, &scope).await?.0)
    }

    /// An access token for any `scope` in `tenant`, with its expiry.
    pub async fn token_for_scope(
        &self,
        tenant: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, OffsetDateTime)> {
        let tenant = tenant.or(self.inner.tenant.as_deref());
        let gate = lock(&self.inner.in_flight)
            .entry((tenant.unwrap_or("").to_string(), scope.to_string()))
            .or_default()
            .clone();
        let _one_at_a_time = gate.lock().await;
        match &self.inner.backend {
            Backend::DeviceCode(c) => c.token_for(tenant, scope).await,
            Backend::ClientSecret(c) => c.token_for(tenant, scope).await,
            Backend::AzureCli(creds) => {
                let key = tenant.unwrap_or("").to_string();
                if let Some(t) = self.inner.cache.get(&key, scope) {
                    return Ok(t);
                }
                let cred = {
                    let mut map = lock(creds);
                    match map.get(&key) {
                        Some(c) => c.clone(),
                        None => {
                            let c = AzureCliCredential::new(Some(AzureCliCredentialOptions {
                                tenant_id: tenant.map(str::to_string),
                                executor: Some(Arc::new(super::az::AzExecutor {
                                    timeout: super::az::timeout(),
                                })),
                                ..Default::default()
                            }))
                            .map_err(from_core_error)?;
                            map.insert(key.clone(), c.clone());
                            c
                        }
                    }
                };
                self.core_token(&key, scope, cred.as_ref(), tenant).await
            }
            Backend::ManagedIdentity(cred) => {
                // A managed identity lives in one tenant: the tenant asked for is not selectable.
                self.core_token("", scope, cred.as_ref(), None).await
            }
            Backend::WorkloadIdentity { settings, creds } => {
                let key = tenant.unwrap_or(&settings.tenant_id).to_string();
                if let Some(t) = self.inner.cache.get(&key, scope) {
                    return Ok(t);
                }
                let cred = {
                    let mut map = lock(creds);
                    match map.get(&key) {
                        Some(c) => c.clone(),
                        None => {
                            let c = workload_credential(
                                settings,
                                &key,
                                &self.inner.endpoints,
                                &self.inner.http,
                            )?;
                            map.insert(key.clone(), c.clone());
                            c
                        }
                    }
                };
                // The identity platform issued it for the tenant of the token URL.
                self.core_token(&key, scope, cred.as_ref(), None).await
            }
        }
    }

    async fn core_token(
        &self,
        key: &str,
        scope: &str,
        cred: &dyn TokenCredential,
        tenant: Option<&str>,
    ) -> Result<(Secret, OffsetDateTime)> {
        if let Some(t) = self.inner.cache.get(key, scope) {
            return Ok(t);
        }
        let at = cred
            .get_token(&[scope], None)
            .await
            .map_err(from_core_error)?;
        let token = Secret::new(at.token.secret());
        if let Some(asked) = tenant {
            check_tenant(asked, token.expose())?;
        }
        self.inner
            .cache
            .put(key, scope, token.clone(), at.expires_on);
        Ok((token, at.expires_on))
    }

    /// This sign-in as azure_core's `TokenCredential`, for `tenant` (None: the default tenant).
    /// The scope asked for picks the audience.
    pub fn credential(&self, tenant: Option<&str>) -> Arc<dyn TokenCredential> {
        Arc::new(AuthCredential {
            auth: self.clone(),
            tenant: tenant.map(str::to_string),
        })
    }
}

/// azure_identity's `WorkloadIdentityCredential` for `tenant`: its token URL is
/// `{AZURE_AUTHORITY_HOST or the endpoints' login}/{tenant}/oauth2/v2.0/token`, reached through
/// our HTTP client (HTTPS only; it trusts the endpoints' CA when a file names one).
fn workload_credential(
    settings: &WorkloadIdentity,
    tenant: &str,
    endpoints: &Endpoints,
    http: &Http,
) -> Result<Arc<WorkloadIdentityCredential>> {
    let mut cloud = azure_core::cloud::CustomConfiguration::default();
    cloud.authority_host = settings
        .authority_host
        .clone()
        .unwrap_or_else(|| endpoints.login.trim_end_matches('/').to_string());
    let mut client_options = azure_core::http::ClientOptions {
        cloud: Some(Arc::new(cloud.into())),
        ..Default::default()
    };
    client_options.transport = Some(azure_core::http::Transport::new(Arc::new(
        http.client().clone(),
    )));
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions { client_options },
        client_id: Some(settings.client_id.clone()),
        tenant_id: Some(tenant.to_string()),
        token_file_path: Some(settings.token_file.clone()),
    };
    WorkloadIdentityCredential::new(Some(options)).map_err(|e| match from_core_error(e) {
        Error::Auth(m) => Error::Usage(format!(
            "--auth workload-identity (AZURE_FEDERATED_TOKEN_FILE={}): {m}",
            settings.token_file.display()
        )),
        e => e,
    })
}

/// A token `az` returned for `asked` (`--tenant`, or a tenant discovery found) must be of that
/// tenant (its `tid`), else a clear error: a misconfigured or wrong `az` would otherwise have
/// us write in another directory. A tenant asked for by domain name cannot be compared.
fn check_tenant(asked: &str, token: &str) -> Result<()> {
    if uuid::Uuid::parse_str(asked).is_err() {
        return Ok(());
    }
    match decode_jwt_claims(token).and_then(|c| c.tenant_id) {
        Some(tid) if tid.eq_ignore_ascii_case(asked) => Ok(()),
        Some(tid) => Err(Error::Auth(format!(
            "`az` returned a token for tenant {}, not for the tenant asked for ({asked}): sign az in to that tenant (`az login --tenant {asked}`)",
            crate::text::clean(&tid)
        ))),
        None => Err(Error::Auth(format!(
            "`az` returned a token without a tenant (no `tid` claim): cannot check it is for the tenant asked for ({asked})"
        ))),
    }
}

/// [`Auth`] bound to one tenant, as a `TokenCredential`.
struct AuthCredential {
    auth: Auth,
    tenant: Option<String>,
}

impl fmt::Debug for AuthCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCredential")
            .field("method", &self.auth.inner.method)
            .field("tenant", &self.tenant)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for AuthCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = device_code::first_scope(scopes)?;
        let (token, expires_on) = self
            .auth
            .token_for_scope(self.tenant.as_deref(), scope)
            .await
            .map_err(device_code::to_core_error)?;
        Ok(AccessToken::new(token.expose().to_string(), expires_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_principal_debug_hides_the_secret() {
        let sp = ServicePrincipal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: Secret::new("s3cr3t-value"),
        };
        assert!(!format!("{sp:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn client_secret_settings_come_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let sp = ServicePrincipal::from_vars(
            None,
            env(&[
                ("AZURE_TENANT_ID", "t1"),
                ("AZURE_CLIENT_ID", "c1"),
                ("AZURE_CLIENT_SECRET", "s1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                sp.tenant_id.as_str(),
                sp.client_id.as_str(),
                sp.secret.expose()
            ),
            ("t1", "c1", "s1")
        );
        // --tenant stands in for AZURE_TENANT_ID; the error names what is missing.
        let sp = ServicePrincipal::from_vars(
            Some("t2"),
            env(&[("AZURE_CLIENT_ID", "c1"), ("AZURE_CLIENT_SECRET", "s1")]),
        );
        assert_eq!(sp.unwrap().tenant_id, "t2");
        match ServicePrincipal::from_vars(
            None,
            env(&[("AZURE_CLIENT_ID", "c1"), ("AZURE_CLIENT_SECRET", " ")]),
        ) {
            Err(Error::Usage(m)) => {
                assert!(
                    m.contains("AZURE_TENANT_ID")
                        && m.contains("AZURE_CLIENT_SECRET")
                        && !m.contains("AZURE_CLIENT_ID,"),
                    "{m}"
                )
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn core_errors_keep_the_oauth_code() {
        use azure_core::http::{RawResponse, StatusCode, headers::Headers};
        let raw = RawResponse::from_bytes(
            StatusCode::BadRequest,
            Headers::default(),
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.","correlation_id":"c-1"}"#.to_vec(),
        );
        let e = azure_core::Error::new(
            azure_core::error::ErrorKind::HttpResponse {
                status: StatusCode::BadRequest,
                error_code: Some("7000215".into()),
                raw_response: Some(Box::new(raw)),
            },
            "AADSTS7000215",
        );
        let wrapped = azure_core::Error::with_error(
            azure_core::error::ErrorKind::Credential,
            e,
            "ClientSecretCredential failed",
        );
        let ours = from_core_error(wrapped);
        let api = ours.api().expect("an ApiError");
        assert_eq!(
            (api.code.as_str(), api.request_id.as_deref()),
            ("invalid_client", Some("c-1"))
        );
        assert!(api.hint().is_some());
        let plain = from_core_error(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "az not found",
        ));
        assert!(matches!(plain, Error::Auth(m) if m.contains("az not found")));
    }

    #[test]
    fn azure_cli_and_managed_identity_work_with_custom_endpoints() {
        // Both used to refuse custom endpoints; `az` signed in to a custom cloud and an App
        // Service identity endpoint make them usable there (tests/it/azure_cli.rs,
        // tests/it/managed_identity.rs run them against the simulator).
        let f = crate::endpoints::EndpointsFile {
            login: "https://127.0.0.1:1".into(),
            graph: "https://127.0.0.1:2".into(),
            arm: "https://127.0.0.1:3".into(),
            spot: "https://127.0.0.1:4".into(),
            inspect: "https://127.0.0.1:5".into(),
            ca_cert: "/nonexistent".into(),
            spot_token: "x".into(),
        };
        let ep = Endpoints::from_file_contents(&f);
        let http = Http::new(None).unwrap();
        for m in [AuthMethod::AzureCli, AuthMethod::ManagedIdentity] {
            let auth = Auth::new(m, &ep, &http, None, Arc::new(|_| {})).unwrap();
            assert_eq!(auth.method(), m);
            assert_eq!(auth.endpoints().arm_scope, "https://127.0.0.1:3/.default");
        }
    }
}
