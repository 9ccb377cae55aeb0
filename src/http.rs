//! The one HTTP layer under the Graph, ARM, Spot and identity-platform clients.
//!
//! HTTPS only (rustls with the ring provider). Every non-2xx reply is parsed into an [`ApiError`]
//! with the service's code, message and request id, whatever the service's error shape:
//! OAuth (`{"error":"…","error_description":…}`), Graph/ARM (`{"error":{"code","message",…}}`)
//! or Spot (`{"request":{"id"},"response":{"errors":[{"code","message"}]}}`).
//!
//! Retries here are only the ones that are always safe: 429 and 503 (the service did not act on
//! the request) honouring `Retry-After`, and, for idempotent methods (GET, PUT, DELETE), 5xx and
//! dropped connections. A POST that failed in flight is returned to the caller, which looks up
//! before writing again (see `onboard`).
//!
//! What a hostile or broken server cannot do (docs/architecture.md, "HTTP hardening"):
//! - make us follow a redirect: none is followed; a 3xx is an error naming where it pointed,
//!   so no token, secret or form body ever leaves for a host we did not choose;
//! - page us elsewhere or forever: [`Pages`] keeps every `nextLink` on the first request's
//!   origin, refuses a link seen before, and stops at [`MAX_PAGES`] with an error;
//! - flood us: a reply above [`Http::max_body`] bytes is refused (streamed, never buffered whole);
//! - pass a broken reply off as a good one: a body that fails to read, or a 2xx body that is not
//!   JSON, is an error, never an empty success;
//! - keep us waiting: the `Retry-After` waits of one call add up to [`RETRY_AFTER_BUDGET`] at
//!   most; a longer ask is an error at once, and every wait is announced through the wait hook;
//! - waste retries: an untrusted certificate, plain `http://`, a refused connection, a refused
//!   redirect are [`ErrorClass::Fatal`] and never retried.

use crate::error::{ApiError, Error, ErrorClass, Service};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

/// Most `nextLink` pages one listing follows (a loop guard far above any real tenant).
pub const MAX_PAGES: usize = 500;
/// Default cap on one reply's body.
pub const MAX_BODY: usize = 16 << 20;
/// The most one call waits in all because a service said `Retry-After`.
pub const RETRY_AFTER_BUDGET: Duration = Duration::from_secs(120);

/// A reply as read by [`Http::read_raw`], of any status.
#[derive(Debug, Clone)]
pub(crate) struct RawReply {
    pub status: StatusCode,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

/// A reply with a 2xx status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub request_id: Option<String>,
}

/// A wait before a retry, for the front end to show ("Azure asks to wait 30 s").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitNotice {
    pub service: Service,
    pub status: u16,
    pub wait: Duration,
    /// True when the service asked for it (`Retry-After`), false for our own backoff.
    pub asked: bool,
    /// The attempt that failed (1-based).
    pub attempt: u32,
}

impl WaitNotice {
    /// One line for the operator.
    pub fn message(&self) -> String {
        let who = match self.service {
            Service::Spot => "Spot",
            _ => "Azure",
        };
        let secs = self.wait.as_secs_f64().ceil() as u64;
        if self.asked {
            format!(
                "{who} asks to wait {secs} s ({} {}, attempt {}): waiting",
                self.service, self.status, self.attempt
            )
        } else if self.status == 0 {
            // No reply at all: a dropped connection, not an answer.
            format!(
                "{}: the connection dropped before a reply: trying again in {secs} s (attempt {})",
                self.service, self.attempt
            )
        } else {
            format!(
                "{} answered {}: trying again in {secs} s (attempt {})",
                self.service, self.status, self.attempt
            )
        }
    }
}

/// Called before every wait of [`Http::send`].
pub type WaitHook = Arc<dyn Fn(&WaitNotice) + Send + Sync>;

#[derive(Clone, Default)]
struct Hook(Arc<RwLock<Option<WaitHook>>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    /// Attempts for the always-safe retries (throttling, idempotent 5xx).
    pub max_attempts: u32,
    /// Upper bound on one backoff wait of ours (a `Retry-After` is honoured up to the budget).
    pub max_wait: Duration,
    /// Upper bound on the sum of the `Retry-After` waits of one call.
    pub retry_budget: Duration,
    /// Largest reply body accepted, in bytes.
    pub max_body: usize,
    /// 429 replies that say a quota is spent (`x-ms-ratelimit-remaining-*: 0`), seen by this
    /// client and its clones: bulk onboarding sends fewer requests at once after one.
    throttled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Every 429 reply (shared by clones).
    replies_429: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Shared by clones: who hears about waits.
    hook: Hook,
    /// Shared by clones: ARM's buckets as its replies announce them (`crate::budget`).
    pub budgets: Arc<crate::budget::Budgets>,
    /// Shared by clones: the server errors each route has answered in a row (see
    /// [`Http::send`]), so that concurrent requests and the engine's own retries on top of this
    /// layer never send a failing route more than [`ROUTE_FAILURES`] times.
    routes: Arc<std::sync::Mutex<std::collections::HashMap<RouteKey, RouteFailures>>>,
}

/// At most this many server errors (500, 502, 504, a dropped connection or a cut-off reply) in a
/// row on one route, whoever sends: then the route is not sent again for
/// [`ROUTE_COOL_DOWN`], and its requests fail at once with the last error (PRODUCT.md §6: "a
/// failing read sent at most 6 times").
pub const ROUTE_FAILURES: u32 = 6;
/// How long a route that failed [`ROUTE_FAILURES`] times in a row is left alone; then one
/// request may try it again (a success closes it, another failure opens it again).
pub const ROUTE_COOL_DOWN: Duration = Duration::from_secs(10);

/// A route: the service, the method and the collection a path names (its last segment that is
/// not an id: `/applications(uniqueName='x')` and `/applications?$filter=…` are one route,
/// `…/roleDefinitions/<guid>` and `/subscriptions/<id>/…/roleDefinitions` another).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteKey {
    service: Service,
    method: Method,
    collection: String,
}

impl RouteKey {
    fn of(service: Service, method: &Method, path: &str) -> RouteKey {
        let is_id = |seg: &str| {
            let hex = seg.chars().filter(char::is_ascii_hexdigit).count();
            seg.is_empty()
                || (seg.len() >= 8 && hex * 4 >= seg.len() * 3)
                || seg.starts_with("act-")
        };
        let collection = path
            .rsplit('/')
            .map(|seg| seg.split('(').next().unwrap_or(seg))
            .find(|seg| !is_id(seg))
            .unwrap_or("")
            .to_ascii_lowercase();
        RouteKey {
            service,
            method: method.clone(),
            collection,
        }
    }
}

#[derive(Debug)]
struct RouteFailures {
    in_a_row: u32,
    last: ApiError,
    opened: Option<std::time::Instant>,
}

/// What [`Http::send_observed`] reports about each attempt of a request.
pub trait Observer: Send + Sync {
    /// An attempt left at `at` (`attempt` from 1).
    fn sent(&self, at: std::time::Instant, attempt: u32);
    /// A reply (any status) came back to the attempt sent at `sent`.
    fn replied(&self, sent: std::time::Instant, headers: &reqwest::header::HeaderMap);
}

struct Unobserved;

impl Observer for Unobserved {
    fn sent(&self, _: std::time::Instant, _: u32) {}
    fn replied(&self, _: std::time::Instant, _: &reqwest::header::HeaderMap) {}
}

static INSTALL_PROVIDER: Once = Once::new();

/// Installs rustls' ring provider as the process default (once). Needed before any TLS use.
pub fn install_crypto_provider() {
    INSTALL_PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Error codes of ours (status 0 or the reply's status) for failures that are never retried.
pub mod codes {
    pub const CERTIFICATE: &str = "CertificateNotTrusted";
    pub const INSECURE_SCHEME: &str = "InsecureScheme";
    pub const REFUSED: &str = "ConnectionRefused";
    pub const REDIRECT: &str = "RedirectRefused";
    pub const WAIT_TOO_LONG: &str = "RetryAfterTooLong";
    pub const TOO_LARGE: &str = "ReplyTooLarge";
    pub const NEXT_LINK: &str = "NextLinkRefused";
    pub const TOO_MANY_PAGES: &str = "TooManyPages";
    /// Retryable like a dropped connection: the reply could not be read in full.
    pub const INCOMPLETE: &str = "IncompleteReply";
    /// The codes above that [`crate::error::ErrorClass::Fatal`] covers.
    pub const FATAL: &[&str] = &[
        CERTIFICATE,
        INSECURE_SCHEME,
        REFUSED,
        REDIRECT,
        WAIT_TOO_LONG,
        TOO_LARGE,
        NEXT_LINK,
        TOO_MANY_PAGES,
    ];
}

fn ours(service: Service, status: u16, code: &str, message: String) -> ApiError {
    ApiError {
        service,
        status,
        code: code.into(),
        detail_codes: vec![],
        message,
        request_id: None,
        retry_after: None,
        layer_retried: false,
    }
}

impl Http {
    /// A client that trusts the platform's roots, or, when `ca_pem` is given (the simulator's
    /// CA), that CA only. It follows no redirect.
    pub fn new(ca_pem: Option<&[u8]>) -> Result<Http, Error> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("spot-connect/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Usage(format!("invalid CA certificate: {e}")))?;
            builder = builder.tls_certs_only([cert]);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            max_attempts: 6,
            max_wait: Duration::from_secs(60),
            retry_budget: RETRY_AFTER_BUDGET,
            max_body: MAX_BODY,
            throttled: Default::default(),
            replies_429: Default::default(),
            hook: Hook::default(),
            budgets: Default::default(),
            routes: Default::default(),
        })
    }

    /// How many 429 replies (of any kind: quota or Retry-After) this client and its clones have
    /// had so far: what the commands' summary counts.
    pub fn replies_429(&self) -> u64 {
        self.replies_429.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many quota 429 replies this client (and its clones) has had so far.
    pub fn throttled_count(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Who hears about waits before retries, for this client and all its clones (None: nobody).
    /// Returns the previous hook.
    pub fn set_wait_hook(&self, hook: Option<WaitHook>) -> Option<WaitHook> {
        match self.hook.0.write() {
            Ok(mut h) => std::mem::replace(&mut *h, hook),
            Err(p) => std::mem::replace(&mut *p.into_inner(), hook),
        }
    }

    fn notify(&self, n: &WaitNotice) {
        let hook = match self.hook.0.read() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if let Some(h) = hook {
            h(n);
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `req`, retrying what is always safe to retry, and returns the 2xx reply or the
    /// service's error.
    pub async fn send(&self, service: Service, req: RequestBuilder) -> Result<Reply, ApiError> {
        self.send_observed(service, req, &Unobserved).await
    }

    /// [`Http::send`], telling `observer` when each attempt leaves and what headers come back.
    pub async fn send_observed(
        &self,
        service: Service,
        req: RequestBuilder,
        observer: &dyn Observer,
    ) -> Result<Reply, ApiError> {
        let mut attempt = 0u32;
        let mut asked_total = Duration::ZERO;
        loop {
            attempt += 1;
            let this = req
                .try_clone()
                .ok_or_else(|| ApiError::transport(service, "request body cannot be retried"))?;
            let (request, method, path) = match this.build() {
                Ok(r) => {
                    let m = r.method().clone();
                    let p = r.url().path().to_string();
                    (r, m, p)
                }
                Err(e) => {
                    return Err(ours(
                        service,
                        0,
                        "InvalidRequest",
                        format!("invalid request: {e}"),
                    ));
                }
            };
            let idempotent = matches!(
                method,
                Method::GET | Method::PUT | Method::DELETE | Method::HEAD
            );
            let route = RouteKey::of(service, &method, &path);
            if let Some(mut last) = self.route_open(&route) {
                tracing::info!(%service, %method, path, "not sent: the route keeps failing");
                last.layer_retried = true;
                return Err(last);
            }
            let sent = std::time::Instant::now();
            observer.sent(sent, attempt);
            let result = self.client.execute(request).await;
            if let Ok(resp) = &result {
                observer.replied(sent, resp.headers());
            }
            let err = match result {
                Ok(resp) => match self.read_reply(service, resp).await {
                    Ok(reply) => {
                        tracing::debug!(%service, %method, path, status = reply.status, request_id = ?reply.request_id, attempt, "http");
                        self.route_answered(&route, None);
                        return Ok(reply);
                    }
                    Err(e) => {
                        tracing::debug!(%service, %method, path, status = e.status, code = %e.code, attempt, "http error");
                        e
                    }
                },
                Err(e) => {
                    tracing::debug!(%service, %method, path, error = %e, attempt, "http transport error");
                    transport_error(service, &e)
                }
            };
            if err.class() == ErrorClass::Fatal {
                return Err(err);
            }
            // A server error counts against the route; any other answer but throttling (a 4xx:
            // the route works, the request was refused) ends its run of failures.
            let server_error = matches!(err.status, 0 | 500 | 502 | 504);
            let open = match err.status {
                429 | 503 => false,
                _ => self.route_answered(&route, server_error.then_some(&err)),
            };
            let retry = match err.status {
                429 | 503 => true,
                0 | 500 | 502 | 504 => idempotent && !open,
                _ => false,
            };
            if !retry || attempt >= self.max_attempts {
                // A failure this layer resends, resent as often as it may (or a route left
                // alone): the engine's retries must not send it again.
                let mut err = err;
                err.layer_retried = (retry && attempt > 1) || open;
                return Err(err);
            }
            let (wait, asked) = match err.retry_after {
                Some(asked) => (self.within_budget(&err, asked, &mut asked_total)?, true),
                None => (
                    Duration::from_millis(250u64 << attempt.min(6)).min(self.max_wait),
                    false,
                ),
            };
            tracing::info!(%service, %method, path, status = err.status, wait_ms = wait.as_millis() as u64, attempt, "retrying");
            if asked || wait >= Duration::from_secs(1) {
                self.notify(&WaitNotice {
                    service,
                    status: err.status,
                    wait,
                    asked,
                    attempt,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The last error of `route` when it has failed [`ROUTE_FAILURES`] times in a row within
    /// the last [`ROUTE_COOL_DOWN`]: then it is not sent.
    fn route_open(&self, route: &RouteKey) -> Option<ApiError> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let f = routes.get_mut(route)?;
        match f.opened {
            Some(at) if at.elapsed() < ROUTE_COOL_DOWN => Some(f.last.clone()),
            Some(_) => {
                // Cooled down: one more try decides (a failure opens it again at once).
                f.opened = None;
                f.in_a_row = ROUTE_FAILURES - 1;
                None
            }
            None => None,
        }
    }

    /// Records how `route` answered (`failed`: a server error, None: anything else); true when
    /// the route is now open (no more sends for a while).
    fn route_answered(&self, route: &RouteKey, failed: Option<&ApiError>) -> bool {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(err) = failed else {
            routes.remove(route);
            return false;
        };
        let f = routes
            .entry(route.clone())
            .or_insert_with(|| RouteFailures {
                in_a_row: 0,
                last: err.clone(),
                opened: None,
            });
        f.in_a_row += 1;
        f.last = err.clone();
        if f.in_a_row >= ROUTE_FAILURES && f.opened.is_none() {
            f.opened = Some(std::time::Instant::now());
        }
        f.opened.is_some()
    }

    /// `asked` more of waiting on `Retry-After` for one call that has waited `asked_total`:
    /// within [`Http::retry_budget`], else the `RetryAfterTooLong` error (Fatal).
    fn within_budget(
        &self,
        err: &ApiError,
        asked: Duration,
        asked_total: &mut Duration,
    ) -> Result<Duration, ApiError> {
        if *asked_total + asked > self.retry_budget {
            let secs = asked.as_secs_f64().ceil() as u64;
            return Err(ApiError {
                code: codes::WAIT_TOO_LONG.into(),
                message: format!(
                    "{} {} asks to wait {secs} s before trying again; spot-connect waits at most {} s in all per request ({} s already): try again later ({})",
                    err.service,
                    err.status,
                    self.retry_budget.as_secs(),
                    asked_total.as_secs(),
                    err.message
                ),
                ..err.clone()
            });
        }
        *asked_total += asked;
        Ok(asked)
    }

    /// For a caller that sends a throttled (429) request again itself (the engine's paced ARM
    /// writes, on a client with `max_attempts` 1): the wait before try `attempt + 1`, its
    /// `Retry-After` (1 s when it gives none) within the same per-call budget as
    /// [`Http::send`]'s own and announced the same way; beyond the budget, the
    /// `RetryAfterTooLong` error (Fatal), at once.
    pub fn throttled_wait(
        &self,
        err: ApiError,
        asked_total: &mut Duration,
        attempt: u32,
    ) -> Result<Duration, ApiError> {
        let said = err.retry_after.is_some();
        let asked = err.retry_after.unwrap_or(Duration::from_secs(1));
        let (service, status) = (err.service, err.status);
        let wait = self.within_budget(&err, asked, asked_total)?;
        self.notify(&WaitNotice {
            service,
            status,
            wait,
            asked: said,
            attempt,
        });
        Ok(wait)
    }

    /// The reply as a [`Reply`] (2xx) or the service's error; the body is read up to
    /// `max_body` bytes.
    async fn read_reply(
        &self,
        service: Service,
        resp: reqwest::Response,
    ) -> Result<Reply, ApiError> {
        let raw = self.read_raw(service, resp).await?;
        if raw.status.is_success() {
            return Ok(Reply {
                status: raw.status.as_u16(),
                request_id: raw
                    .request_id
                    .or_else(|| body_request_id(service, &raw.body)),
                body: raw.body,
            });
        }
        let mut e = parse_error(service, raw.status, &raw.body);
        e.request_id = e.request_id.or(raw.request_id);
        e.retry_after = raw.retry_after;
        Err(e)
    }

    /// A reply's status and body, read under the rules every caller needs: a redirect is refused,
    /// at most `max_body` bytes are read, a body that breaks off (or a 2xx body that is not JSON)
    /// is an error. A non-2xx body that is not JSON comes back as a JSON string.
    pub(crate) async fn read_raw(
        &self,
        service: Service,
        mut resp: reqwest::Response,
    ) -> Result<RawReply, ApiError> {
        let status = resp.status();
        if status.as_u16() == 429 {
            self.replies_429
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if status.as_u16() == 429 && quota_spent(resp.headers()) {
            self.throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let request_id = header_request_id(resp.headers());
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| match resp.url().join(l) {
                    Ok(u) => u.origin().ascii_serialization(),
                    Err(_) => "an unparsable location".into(),
                })
                .unwrap_or_else(|| "no location".into());
            let mut e = ours(
                service,
                status.as_u16(),
                codes::REDIRECT,
                format!(
                    "the service answered {status} pointing to {to}; spot-connect follows no redirects (a token or secret could go with the request)"
                ),
            );
            e.request_id = request_id;
            return Err(e);
        }
        let retry_after = parse_retry_after(resp.headers());
        if let Some(len) = resp.content_length()
            && len > self.max_body as u64
        {
            return Err(too_large(service, status, self.max_body));
        }
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > self.max_body {
                        return Err(too_large(service, status, self.max_body));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let mut err = ours(
                        service,
                        0,
                        codes::INCOMPLETE,
                        format!(
                            "the reply ({status}) broke off after {} bytes: {}",
                            bytes.len(),
                            transport_message(&e)
                        ),
                    );
                    err.request_id = request_id;
                    return Err(err);
                }
            }
        }
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) if status.is_success() => {
                    let mut err = ours(
                        service,
                        0,
                        codes::INCOMPLETE,
                        format!(
                            "the reply ({status}, {} bytes) is not valid JSON (cut short?): {e}",
                            bytes.len()
                        ),
                    );
                    err.request_id = request_id;
                    return Err(err);
                }
                Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            }
        };
        Ok(RawReply {
            status,
            request_id,
            retry_after,
            body,
        })
    }
}

fn too_large(service: Service, status: StatusCode, max: usize) -> ApiError {
    ours(
        service,
        status.as_u16(),
        codes::TOO_LARGE,
        format!(
            "the reply ({status}) is larger than {} MiB: refused",
            max >> 20
        ),
    )
}

/// A transport failure, classified: the ones a retry cannot fix are [`ErrorClass::Fatal`].
pub(crate) fn transport_error(service: Service, e: &reqwest::Error) -> ApiError {
    let msg = transport_message(e);
    let lower = msg.to_ascii_lowercase();
    let mut tls = false;
    let mut refused = false;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                refused = true;
            }
            // io::Error's source() skips the error it wraps: look at it too.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                tls = true;
            }
        }
        src = s.source();
    }
    tls |= lower.contains("certificate") || lower.contains("unknownissuer");
    refused |= lower.contains("connection refused");
    let scheme = e.url().is_some_and(|u| u.scheme() != "https")
        || lower.contains("scheme is not allowed")
        || lower.contains("url scheme");
    if scheme {
        return ours(
            service,
            0,
            codes::INSECURE_SCHEME,
            format!(
                "refused to send a request to {} over plain HTTP: spot-connect speaks HTTPS only",
                e.url()
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default()
            ),
        );
    }
    if tls {
        return ours(
            service,
            0,
            codes::CERTIFICATE,
            format!("the server's TLS certificate is not trusted (not retried): {msg}"),
        );
    }
    let proxy = proxy_for(e.url());
    let host = e
        .url()
        .and_then(|u| u.host_str())
        .unwrap_or("the service")
        .to_string();
    if refused {
        let what = match &proxy {
            Some(p) => format!("the proxy {p} (HTTPS_PROXY) refused the connection to {host}"),
            None => "the connection was refused".to_string(),
        };
        return ours(
            service,
            0,
            codes::REFUSED,
            format!("{what} (not retried): {msg}"),
        );
    }
    if e.is_connect() {
        // No connection could be made (DNS, unreachable): the engine stops the run on it.
        return ApiError::connect_failed(service, connect_message(&host, proxy.as_deref(), &msg));
    }
    ApiError::transport(service, msg)
}

/// Why no connection could be made, in words: a name that does not resolve (DNS), or the
/// proxy in the way, named with the variable that set it.
pub(crate) fn connect_message(host: &str, proxy: Option<&str>, msg: &str) -> String {
    let lower = msg.to_ascii_lowercase();
    let dns = [
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "nodename nor servname",
        "name resolution",
    ]
    .iter()
    .any(|p| lower.contains(p));
    match (proxy, dns) {
        (Some(p), _) => {
            format!("cannot connect to {host} through the proxy {p} (HTTPS_PROXY): {msg}")
        }
        (None, true) => format!(
            "cannot resolve {host}: the DNS lookup failed (no proxy is set: HTTPS_PROXY is empty): {msg}"
        ),
        (None, false) => {
            format!("cannot connect to {host} (no proxy is set: HTTPS_PROXY is empty): {msg}")
        }
    }
}

/// The proxy the environment sets for `url` (HTTPS_PROXY, ALL_PROXY; not for a NO_PROXY
/// host), without its credentials.
pub(crate) fn proxy_for(url: Option<&url::Url>) -> Option<String> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| std::env::var(k.to_ascii_lowercase()).ok())
            .filter(|v| !v.trim().is_empty())
    };
    let p = var("HTTPS_PROXY").or_else(|| var("ALL_PROXY"))?;
    let host = url.and_then(|u| u.host_str()).unwrap_or_default();
    if let Some(no) = var("NO_PROXY") {
        let bypass = no.split(',').map(str::trim).any(|n| {
            n == "*"
                || (!n.is_empty()
                    && (host == n || host.ends_with(&format!(".{}", n.trim_start_matches('.')))))
        });
        if bypass {
            return None;
        }
    }
    Some(match url::Url::parse(&p) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(unparsable)".into(),
    })
}

/// The identity platform's `error_description` without its trailer: "…\r\nTrace ID: …\r\n
/// Correlation ID: …\r\nTimestamp: …" (the ids are the request id, kept once beside it).
pub fn login_description(d: &str) -> String {
    let cut = ["Trace ID:", "Correlation ID:", "Timestamp:"]
        .iter()
        .filter_map(|m| d.find(m))
        .min()
        .unwrap_or(d.len());
    d[..cut].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Follows `nextLink` / `@odata.nextLink` safely: every link must stay on the origin of the
/// first request (the bearer token goes with it), no link may come back to a page already
/// read, and at most [`MAX_PAGES`] pages are read: anything else is an error, never a list cut
/// short.
#[derive(Debug)]
pub struct Pages {
    service: Service,
    first: url::Url,
    seen: HashSet<String>,
    pages: usize,
    max: usize,
}

impl Pages {
    /// For a listing that starts at `first` (the first page counts).
    pub fn new(service: Service, first: &str) -> Result<Pages, ApiError> {
        Pages::with_limit(service, first, MAX_PAGES)
    }

    pub fn with_limit(service: Service, first: &str, max: usize) -> Result<Pages, ApiError> {
        let u = url::Url::parse(first).map_err(|e| {
            ours(
                service,
                0,
                "InvalidRequest",
                format!("invalid URL {first:?}: {e}"),
            )
        })?;
        let mut seen = HashSet::new();
        seen.insert(u.to_string());
        Ok(Pages {
            service,
            first: u,
            seen,
            pages: 1,
            max,
        })
    }

    /// The next page to read, from the `nextLink` of the page just read (None or "": done).
    pub fn next(&mut self, link: Option<&str>) -> Result<Option<String>, ApiError> {
        let Some(link) = link.map(str::trim).filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let u = self.first.join(link).map_err(|e| {
            ours(
                self.service,
                0,
                codes::NEXT_LINK,
                format!("the service sent an unreadable nextLink ({e})"),
            )
        })?;
        if u.origin() != self.first.origin() {
            return Err(ours(
                self.service,
                0,
                codes::NEXT_LINK,
                format!(
                    "the service's nextLink points to {} instead of {}: refused (the access token would go there)",
                    u.origin().ascii_serialization(),
                    self.first.origin().ascii_serialization()
                ),
            ));
        }
        if !self.seen.insert(u.to_string()) {
            return Err(ours(
                self.service,
                0,
                codes::NEXT_LINK,
                format!(
                    "the service's nextLink after page {} points back to a page already read: the listing loops",
                    self.pages
                ),
            ));
        }
        self.pages += 1;
        if self.pages > self.max {
            return Err(ours(
                self.service,
                0,
                codes::TOO_MANY_PAGES,
                format!(
                    "the listing has more than {} pages: stopped rather than use a partial list",
                    self.max
                ),
            ));
        }
        Ok(Some(u.to_string()))
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn header_request_id(h: &reqwest::header::HeaderMap) -> Option<String> {
    [
        "x-ms-request-id",
        "request-id",
        "x-ms-correlation-request-id",
        "x-request-id",
    ]
    .iter()
    .find_map(|k| h.get(*k).and_then(|v| v.to_str().ok()).map(str::to_string))
}

/// ARM's throttling headers: `x-ms-ratelimit-remaining-*` at 0.
fn quota_spent(h: &reqwest::header::HeaderMap) -> bool {
    h.iter().any(|(k, v)| {
        k.as_str().starts_with("x-ms-ratelimit-remaining-")
            && v.to_str().is_ok_and(|v| v.trim() == "0")
    })
}

fn parse_retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .or_else(|| h.get("x-ms-retry-after-ms"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(delta.as_seconds_f64().max(0.0)))
}

fn body_request_id(service: Service, body: &Value) -> Option<String> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    match service {
        Service::Spot => body.pointer("/request/id").and_then(s),
        Service::Login => body
            .get("correlation_id")
            .and_then(s)
            .or_else(|| body.get("trace_id").and_then(s)),
        Service::Graph | Service::Arm => body
            .pointer("/error/innerError/request-id")
            .or_else(|| body.pointer("/error/innererror/request-id"))
            .and_then(s),
    }
}

/// Parses any of the four services' error bodies.
pub fn parse_error(service: Service, status: StatusCode, body: &Value) -> ApiError {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    let (code, message, detail_codes) = match body {
        Value::Object(_) if service == Service::Spot => {
            let first = body.pointer("/response/errors/0");
            (
                text(first.and_then(|e| e.get("code")))
                    .unwrap_or_else(|| status.as_u16().to_string()),
                text(first.and_then(|e| e.get("message"))).unwrap_or(reason),
                body.pointer("/response/errors")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .skip(1)
                            .filter_map(|e| text(e.get("code")))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
        Value::Object(map) => match map.get("error") {
            // OAuth 2.0 (identity platform): "error" is a string.
            // Its numeric `error_codes` become detail codes "AADSTS<n>", so callers match the
            // code, never the description text.
            Some(Value::String(code)) => (
                code.clone(),
                text(map.get("error_description"))
                    .map(|d| login_description(&d))
                    .unwrap_or(reason),
                map.get("error_codes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_u64)
                            .map(|n| format!("AADSTS{n}"))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            // OData / ARM: "error" is an object.
            Some(Value::Object(e)) => (
                text(e.get("code")).unwrap_or_else(|| status.as_u16().to_string()),
                text(e.get("message")).unwrap_or(reason),
                e.get("details")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|d| text(d.get("code"))).collect())
                    .unwrap_or_default(),
            ),
            _ => (status.as_u16().to_string(), reason, vec![]),
        },
        Value::String(s) if !s.is_empty() => (
            status.as_u16().to_string(),
            s.chars().take(300).collect(),
            vec![],
        ),
        _ => (status.as_u16().to_string(), reason, vec![]),
    };
    // The service's words reach the screen, the log and --json: no control characters.
    use crate::text::clean;
    ApiError {
        service,
        status: status.as_u16(),
        code: clean(&code),
        detail_codes: detail_codes.iter().map(|c| clean(c)).collect(),
        message: clean(&message),
        request_id: body_request_id(service, body).map(|r| clean(&r)),
        retry_after: None,
        layer_retried: false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_route_is_the_collection_a_path_names() {
        let key = |p: &str| RouteKey::of(Service::Graph, &Method::GET, p).collection;
        assert_eq!(
            key("/applications(uniqueName='spot-connect-x')"),
            "applications"
        );
        assert_eq!(key("/applications"), "applications");
        assert_eq!(
            key("/applications/0a1b2c3d-0000-4000-8000-000000000001"),
            "applications"
        );
        assert_eq!(
            key(
                "/providers/Microsoft.Authorization/roleDefinitions/5c000001-0000-4000-8000-0000000000a1"
            ),
            "roledefinitions"
        );
        assert_eq!(
            key(
                "/subscriptions/5c000001-0000-4000-8000-0000000000a1/providers/Microsoft.Authorization/roleDefinitions"
            ),
            "roledefinitions"
        );
        assert_eq!(key("/setup/account/act-5a1e0001"), "account");
        assert_ne!(key("/servicePrincipals"), key("/applications"));
    }

    #[test]
    fn a_route_that_keeps_failing_is_left_alone_until_it_cools_down_and_a_success_closes_it() {
        let http = Http::new(None).unwrap();
        let route = RouteKey::of(Service::Arm, &Method::GET, "/subscriptions");
        let err = ApiError::transport(Service::Arm, "reset");
        for n in 1..ROUTE_FAILURES {
            assert!(!http.route_answered(&route, Some(&err)), "open after {n}");
            assert!(http.route_open(&route).is_none());
        }
        assert!(http.route_answered(&route, Some(&err)));
        assert!(
            http.route_open(&route).is_some(),
            "open after {ROUTE_FAILURES}"
        );
        // Another route is not affected.
        let other = RouteKey::of(Service::Arm, &Method::PUT, "/subscriptions");
        assert!(http.route_open(&other).is_none());
        // A success closes it.
        http.route_answered(&route, None);
        assert!(http.route_open(&route).is_none());
    }

    use super::*;
    use serde_json::json;

    /// The engine's paced ARM writes resend a 429 themselves: their waits share `send`'s
    /// budget, are announced, and an ask beyond the budget fails at once, Fatal.
    #[test]
    fn throttled_waits_of_a_paced_write_share_the_budget_and_are_announced() {
        let http = Http::new(None).unwrap();
        let heard = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let h = heard.clone();
        http.set_wait_hook(Some(Arc::new(move |n: &WaitNotice| {
            h.lock().unwrap().push(n.message())
        })));
        let refused = |secs: Option<u64>| ApiError {
            retry_after: secs.map(Duration::from_secs),
            ..ApiError::transport(Service::Arm, "m")
        };
        let refused = |secs| ApiError {
            status: 429,
            code: "TooManyRequests".into(),
            ..refused(secs)
        };
        let mut asked = Duration::ZERO;
        assert_eq!(
            http.throttled_wait(refused(Some(100)), &mut asked, 1)
                .unwrap(),
            Duration::from_secs(100)
        );
        assert_eq!(
            http.throttled_wait(refused(None), &mut asked, 2).unwrap(),
            Duration::from_secs(1)
        );
        let e = http
            .throttled_wait(refused(Some(30)), &mut asked, 3)
            .unwrap_err();
        assert_eq!(e.code, codes::WAIT_TOO_LONG);
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert_eq!(asked, Duration::from_secs(101));
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(
            heard[0].starts_with("Azure asks to wait 100 s"),
            "{heard:?}"
        );
    }

    #[test]
    fn parses_graph_error_with_details_and_inner_request_id() {
        let body = json!({"error":{"code":"Request_BadRequest","message":"The appId 'x' of the service principal does not reference a valid application object.",
            "details":[{"code":"NoBackingApplicationObject","message":"…","target":"appId"}],
            "innerError":{"date":"2026-01-01T00:00:00","request-id":"req-42","client-request-id":"c"}}});
        let e = parse_error(Service::Graph, StatusCode::BAD_REQUEST, &body);
        assert_eq!(e.code, "Request_BadRequest");
        assert_eq!(e.detail_codes, vec!["NoBackingApplicationObject"]);
        assert_eq!(e.request_id.as_deref(), Some("req-42"));
    }

    #[test]
    fn parses_oauth_and_spot_errors() {
        let e = parse_error(
            Service::Login,
            StatusCode::BAD_REQUEST,
            &json!({"error":"authorization_pending","error_description":"AADSTS70016: pending","correlation_id":"corr-1"}),
        );
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("authorization_pending", Some("corr-1"))
        );
        // The numeric AADSTS codes are matched as codes, not as text of the description.
        let e = parse_error(
            Service::Login,
            StatusCode::BAD_REQUEST,
            &json!({"error":"invalid_grant","error_description":"already redeemed","error_codes":[54005]}),
        );
        assert!(e.has_code("AADSTS54005") && e.has_code("invalid_grant"));
        let e = parse_error(
            Service::Spot,
            StatusCode::BAD_REQUEST,
            &json!({"request":{"id":"spot-req"},"response":{"status":{"code":400,"message":"Bad Request"},"errors":[{"code":"Account_DOESNT_EXIST","message":"Account doesn't exist"}]}}),
        );
        assert_eq!(e.code, "Account_DOESNT_EXIST");
        assert_eq!(e.request_id.as_deref(), Some("spot-req"));
    }
}
