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

use crate::error::{ApiError, Error, Service};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::sync::Once;
use std::time::Duration;

/// A reply with a 2xx status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    /// Attempts for the always-safe retries (throttling, idempotent 5xx).
    pub max_attempts: u32,
    /// Upper bound on one wait, whatever Retry-After says.
    pub max_wait: Duration,
    /// 429 replies that say a quota is spent (`x-ms-ratelimit-remaining-*: 0`), seen by this
    /// client and its clones: bulk onboarding sends fewer requests at once after one.
    throttled: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

static INSTALL_PROVIDER: Once = Once::new();

/// Installs rustls' ring provider as the process default (once). Needed before any TLS use.
pub fn install_crypto_provider() {
    INSTALL_PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Http {
    /// A client that trusts the platform's roots, or, when `ca_pem` is given (the simulator's
    /// CA), that CA only.
    pub fn new(ca_pem: Option<&[u8]>) -> Result<Http, Error> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("spot-connect/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Other(format!("invalid CA certificate: {e}")))?;
            builder = builder.tls_certs_only([cert]);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            max_attempts: 6,
            max_wait: Duration::from_secs(60),
            throttled: Default::default(),
        })
    }

    /// How many quota 429 replies this client (and its clones) has had so far.
    pub fn throttled_count(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
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
        let mut attempt = 0u32;
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
                    return Err(ApiError::transport(
                        service,
                        format!("invalid request: {e}"),
                    ));
                }
            };
            let idempotent = matches!(
                method,
                Method::GET | Method::PUT | Method::DELETE | Method::HEAD
            );
            let result = self.client.execute(request).await;
            let err = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if status.as_u16() == 429 && quota_spent(resp.headers()) {
                        self.throttled
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let request_id = header_request_id(resp.headers());
                    let retry_after = parse_retry_after(resp.headers());
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let body: Value = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&bytes).into_owned())
                        })
                    };
                    tracing::debug!(%service, %method, path, status = status.as_u16(), request_id = ?request_id, attempt, "http");
                    if status.is_success() {
                        return Ok(Reply {
                            status: status.as_u16(),
                            request_id: request_id.or_else(|| body_request_id(service, &body)),
                            body,
                        });
                    }
                    let mut e = parse_error(service, status, &body);
                    e.request_id = e.request_id.or(request_id);
                    e.retry_after = retry_after;
                    e
                }
                Err(e) => {
                    tracing::debug!(%service, %method, path, error = %e, attempt, "http transport error");
                    if e.is_connect() {
                        ApiError::connect_failed(service, transport_message(&e))
                    } else {
                        ApiError::transport(service, transport_message(&e))
                    }
                }
            };
            let retry = match err.status {
                429 | 503 => true,
                0 | 500 | 502 | 504 => idempotent,
                _ => false,
            };
            if !retry || attempt >= self.max_attempts {
                return Err(err);
            }
            let backoff = Duration::from_millis(250u64 << attempt.min(6));
            let wait = err.retry_after.unwrap_or(backoff).min(self.max_wait);
            tracing::info!(%service, %method, path, status = err.status, wait_ms = wait.as_millis() as u64, attempt, "retrying");
            tokio::time::sleep(wait).await;
        }
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
                text(map.get("error_description")).unwrap_or(reason),
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
    ApiError {
        service,
        status: status.as_u16(),
        code,
        detail_codes,
        message,
        request_id: body_request_id(service, body),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
