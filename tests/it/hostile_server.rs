//! Issue 11 §1–3, 8, 10: the HTTP layer against a small HTTPS server of our own that answers
//! badly on purpose (its own CA and leaf certificate, like the simulator's), plus an "evil"
//! server on another origin that records whatever reaches it.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use spot_connect::azure::auth::{Auth, ServicePrincipal};
use spot_connect::azure::discovery;
use spot_connect::endpoints::{Cloud, Endpoints};
use spot_connect::error::{Error, ErrorClass, Service};
use spot_connect::http::{Http, Pages, WaitNotice, codes};
use spot_connect::secret::Secret;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "client-secret-that-must-not-travel";

struct Certs {
    ca_pem: String,
    leaf_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A CA and a leaf for 127.0.0.1 and localhost signed by it (rustls refuses a CA certificate
/// used as a server certificate).
fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.is_ca = IsCa::ExplicitNoCa;
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    Certs {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

#[derive(Default)]
struct Seen {
    /// "METHOD path?query authorization-present body" of each request.
    requests: Mutex<Vec<String>>,
    /// Bytes of body the huge reply produced before the client stopped reading.
    produced: AtomicU64,
}

struct Hostile {
    mode: &'static str,
    evil: String,
    seen: Seen,
}

struct Servers {
    base: String,
    evil: String,
    ca_pem: String,
    good: Arc<Hostile>,
    evil_seen: Arc<Hostile>,
}

impl Servers {
    fn http(&self) -> Http {
        let mut h = Http::new(Some(self.ca_pem.as_bytes())).unwrap();
        h.max_attempts = 2;
        h
    }

    fn endpoints(&self) -> Endpoints {
        let mut e = Endpoints::for_cloud(Cloud::Public);
        e.login = format!("{}/login", self.base);
        e.arm = format!("{}/arm", self.base);
        e.graph = format!("{}/graph", self.base);
        e.spot = format!("{}/spot", self.base);
        e.arm_scope = format!("{}/arm/.default", self.base);
        e.graph_scope = format!("{}/graph/.default", self.base);
        e
    }

    fn auth(&self, http: &Http) -> Auth {
        Auth::client_secret(
            &self.endpoints(),
            http,
            ServicePrincipal {
                tenant_id: "t1".into(),
                client_id: "c1".into(),
                secret: Secret::new(SECRET),
            },
            None,
        )
    }

    fn evil_requests(&self) -> Vec<String> {
        self.evil_seen.seen.requests.lock().unwrap().clone()
    }

    fn good_requests(&self) -> Vec<String> {
        self.good.seen.requests.lock().unwrap().clone()
    }
}

async fn serve(h: Arc<Hostile>, certs: &Certs) -> SocketAddr {
    spot_connect::http::install_crypto_provider();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(
                certs.leaf_der.clone(),
            )],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into()),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
    let app = axum::Router::new().fallback(handler).with_state(h);
    let srv = axum_server::from_tcp_rustls(listener, tls)
        .unwrap()
        .http1_only();
    tokio::spawn(async move {
        let _ = srv.serve(app.into_make_service()).await;
    });
    addr
}

async fn start(mode: &'static str) -> Servers {
    let c = certs();
    let evil_seen = Arc::new(Hostile {
        mode: "evil",
        evil: String::new(),
        seen: Seen::default(),
    });
    let evil_addr = serve(evil_seen.clone(), &c).await;
    // Another host and port: another origin.
    let evil = format!("https://localhost:{}", evil_addr.port());
    let good = Arc::new(Hostile {
        mode,
        evil: evil.clone(),
        seen: Seen::default(),
    });
    let addr = serve(good.clone(), &c).await;
    Servers {
        base: format!("https://127.0.0.1:{}", addr.port()),
        evil,
        ca_pem: c.ca_pem,
        good,
        evil_seen,
    }
}

fn json(status: u16, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

async fn handler(State(h): State<Arc<Hostile>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req.headers().contains_key("authorization");
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let n = {
        let mut r = h.seen.requests.lock().unwrap();
        r.push(format!("{method} {path}?{query} auth={auth} {body}"));
        r.len()
    };
    if h.mode == "evil" {
        return json(
            200,
            serde_json::json!({"value": [], "access_token": "evil"}),
        );
    }
    if path.ends_with("/oauth2/v2.0/token") {
        if h.mode == "redirect" {
            return Response::builder()
                .status(307)
                .header("location", format!("{}/steal{path}", h.evil))
                .body(Body::empty())
                .unwrap();
        }
        return json(
            200,
            serde_json::json!({"access_token": "hostile-at", "token_type": "Bearer", "expires_in": 3600}),
        );
    }
    let first = format!("{path}?{query}");
    let role_definitions = path.contains("roleDefinitions");
    let page = |next: Option<String>| {
        let mut v = serde_json::json!({"value": [{"tenantId": "t1", "subscriptionId": "s1", "id": "o1", "appId": "a1", "displayName": "x"}]});
        if role_definitions {
            v = serde_json::json!({"value": []});
        }
        if let Some(n) = next {
            v["nextLink"] = serde_json::json!(n);
            v["@odata.nextLink"] = serde_json::json!(n);
        }
        json(200, v)
    };
    match h.mode {
        "redirect" => Response::builder()
            .status(307)
            .header("location", format!("{}/steal{path}", h.evil))
            .body(Body::empty())
            .unwrap(),
        "offorigin" => page(Some(format!("{}{path}?{query}&page=2", h.evil))),
        "self" => page(Some(format!("https://{host}{first}"))),
        "loop" => page(Some(format!("{path}?{query}&n={n}"))),
        "huge" | "huge-cl" => {
            let counter = h.clone();
            let chunk = Bytes::from(vec![b' '; 1 << 20]);
            let stream = futures::stream::iter(0..100).map(move |_| {
                counter
                    .seen
                    .produced
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            let mut r = Response::builder().status(200);
            if h.mode == "huge-cl" {
                r = r.header("content-length", (100u64 << 20).to_string());
            }
            r.body(Body::from_stream(stream)).unwrap()
        }
        "truncated" => {
            // Headers and a first part go out; then the connection breaks.
            let stream = futures::stream::unfold(0, |i| async move {
                match i {
                    0 => Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(
                            br#"{"value":[{"tenantId":"t1"},"#,
                        )),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Some((Err(std::io::Error::other("cut")), 2))
                    }
                    _ => None,
                }
            });
            Response::builder()
                .status(200)
                .header("content-length", "2000")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "badjson" => Response::builder()
            .status(200)
            .body(Body::from(r#"{"value":[{"tenantId":"t1"},"#))
            .unwrap(),
        "retry-after" => {
            let mut r = json(
                429,
                serde_json::json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("999999"));
            r
        }
        "retry-short" if n <= 2 => {
            // The token request is n == 1; the first listing is throttled once.
            let mut r = json(
                429,
                serde_json::json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        }
        _ => page(None),
    }
}

use futures::StreamExt;

fn api(e: &Error) -> &spot_connect::error::ApiError {
    e.api().unwrap_or_else(|| panic!("not an API error: {e}"))
}

#[tokio::test]
async fn a_307_to_another_host_is_not_followed_and_no_secret_reaches_it() {
    let s = start("redirect").await;
    let http = s.http();
    // The client-credentials grant: the client secret is in the form body.
    let e = s.auth(&http).sign_in().await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("follows no redirects") && msg.contains(&s.evil),
        "{msg}"
    );
    // Spot set-credentials: the new client secret is in the JSON body, the token in a header.
    let spot = spot_connect::spot::SpotClient::new(
        &format!("{}/spot", s.base),
        http.clone(),
        Secret::new("spot-token"),
    );
    let creds = spot_connect::spot::AzureCredentials {
        client_id: "c1".into(),
        client_secret: Secret::new(SECRET),
        tenant_id: "t1".into(),
        subscription_id: "s1".into(),
        expiration_date: time::OffsetDateTime::now_utc(),
    };
    let e = spot
        .set_azure_credentials("act-1", &creds)
        .await
        .unwrap_err();
    assert_eq!(api(&e).code, codes::REDIRECT);
    assert_eq!(api(&e).class(), ErrorClass::Fatal);
    assert!(s.evil_requests().is_empty(), "{:?}", s.evil_requests());
    // Not retried either: one request each.
    assert_eq!(s.good_requests().len(), 2, "{:?}", s.good_requests());
}

#[tokio::test]
async fn a_next_link_to_another_origin_gets_no_token_and_fails_the_listing() {
    let s = start("offorigin").await;
    let http = s.http();
    let auth = s.auth(&http);
    let e = discovery::discover(&auth, &s.endpoints(), &http)
        .await
        .unwrap_err();
    let a = api(&e);
    assert_eq!(a.code, codes::NEXT_LINK, "{e}");
    assert!(a.message.contains(&s.evil), "{e}");
    // Graph's @odata.nextLink too.
    let graph =
        spot_connect::azure::graph::Graph::new(http.clone(), &s.endpoints().graph, auth, "t1");
    let e = graph.find_applications("x").await.unwrap_err();
    assert_eq!(api(&e).code, codes::NEXT_LINK, "{e}");
    // ARM's role definitions.
    let arm =
        spot_connect::azure::arm::Arm::new(http.clone(), &s.endpoints().arm, s.auth(&http), "t1");
    let e = arm
        .find_role_definitions("/subscriptions/s1", "Spot.io Custom Role")
        .await
        .unwrap_err();
    assert_eq!(api(&e).code, codes::NEXT_LINK, "{e}");
    assert!(s.evil_requests().is_empty(), "{:?}", s.evil_requests());
}

#[tokio::test]
async fn a_next_link_to_itself_stops_at_once_with_an_error() {
    let s = start("self").await;
    let http = s.http();
    let e = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
        .await
        .unwrap_err();
    assert_eq!(api(&e).code, codes::NEXT_LINK, "{e}");
    assert!(e.to_string().contains("loops"), "{e}");
    // The token request and one page.
    assert_eq!(s.good_requests().len(), 2, "{:?}", s.good_requests());
}

#[tokio::test]
async fn an_endless_listing_stops_at_the_page_limit_with_an_error_not_a_partial_list() {
    let s = start("loop").await;
    let http = s.http();
    let e = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
        .await
        .unwrap_err();
    assert_eq!(api(&e).code, codes::TOO_MANY_PAGES, "{e}");
    let n = s.good_requests().len();
    assert_eq!(
        n,
        1 + spot_connect::http::MAX_PAGES,
        "token + the page limit"
    );
}

#[tokio::test]
async fn a_huge_reply_is_refused_without_reading_it_all() {
    for mode in ["huge", "huge-cl"] {
        let s = start(mode).await;
        let http = s.http();
        let e = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
            .await
            .unwrap_err();
        assert_eq!(api(&e).code, codes::TOO_LARGE, "{mode}: {e}");
        assert_eq!(api(&e).class(), ErrorClass::Fatal);
        // The listing was asked once (not retried), and the client stopped reading early.
        assert_eq!(s.good_requests().len(), 2, "{mode}");
        let produced = s.good.seen.produced.load(Ordering::SeqCst);
        assert!(produced < 40 << 20, "{mode}: {produced} bytes produced");
    }
}

#[tokio::test]
async fn a_reply_that_breaks_off_or_is_not_json_is_an_error_not_an_empty_list() {
    for mode in ["truncated", "badjson"] {
        let s = start(mode).await;
        let http = s.http();
        let e = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
            .await
            .unwrap_err();
        assert_eq!(api(&e).code, codes::INCOMPLETE, "{mode}: {e}");
        // A GET: retried (max_attempts = 2 here), then the error.
        assert_eq!(s.good_requests().len(), 3, "{mode}");
    }
}

#[tokio::test]
async fn retry_after_beyond_the_budget_fails_at_once_and_a_short_one_is_announced() {
    let s = start("retry-after").await;
    let http = s.http();
    let t0 = Instant::now();
    let e = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let a = api(&e);
    assert_eq!(a.code, codes::WAIT_TOO_LONG, "{e}");
    assert_eq!(a.class(), ErrorClass::Fatal);
    assert!(a.message.contains("999999 s"), "{e}");
    assert_eq!(s.good_requests().len(), 2);

    let s = start("retry-short").await;
    let http = s.http();
    let heard: Arc<Mutex<Vec<WaitNotice>>> = Default::default();
    let h2 = heard.clone();
    http.set_wait_hook(Some(Arc::new(move |n: &WaitNotice| {
        h2.lock().unwrap().push(n.clone())
    })));
    let d = discovery::discover(&s.auth(&http), &s.endpoints(), &http)
        .await
        .unwrap();
    assert_eq!(d.tenants.len(), 1);
    let heard = heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].wait, Duration::from_secs(1));
    assert!(
        heard[0].message().starts_with("Azure asks to wait 1 s"),
        "{}",
        heard[0].message()
    );
}

#[tokio::test]
async fn untrusted_certificate_plain_http_and_refused_connections_are_not_retried() {
    let s = start("ok").await;
    // A client that trusts another CA: the server's certificate is not trusted.
    let other = certs();
    let mut http = Http::new(Some(other.ca_pem.as_bytes())).unwrap();
    http.max_attempts = 6;
    let t0 = Instant::now();
    let r = http
        .send(
            Service::Arm,
            http.request(reqwest::Method::GET, &format!("{}/arm/x", s.base)),
        )
        .await
        .unwrap_err();
    assert_eq!(r.code, codes::CERTIFICATE, "{r}");
    assert_eq!(r.class(), ErrorClass::Fatal);
    // Six tries would back off 0.5 + 1 + 2 + 4 + 8 s.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    let http = s.http();
    let r = http
        .send(
            Service::Arm,
            http.request(reqwest::Method::GET, "http://127.0.0.1:9/x"),
        )
        .await
        .unwrap_err();
    assert_eq!(r.code, codes::INSECURE_SCHEME, "{r}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut http = s.http();
    http.max_attempts = 6;
    let t0 = Instant::now();
    let r = http
        .send(
            Service::Arm,
            http.request(reqwest::Method::GET, &format!("https://127.0.0.1:{port}/x")),
        )
        .await
        .unwrap_err();
    assert_eq!(r.code, codes::REFUSED, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // A well-behaved reply still works.
    let ok = http
        .send(
            Service::Arm,
            http.request(reqwest::Method::GET, &format!("{}/arm/ok", s.base)),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
}

#[test]
fn pages_keep_the_origin_refuse_loops_and_stop_at_the_limit() {
    let mut p = Pages::with_limit(
        Service::Graph,
        "https://g.example/v1.0/applications?$top=1",
        3,
    )
    .unwrap();
    assert_eq!(p.next(None).unwrap(), None);
    assert_eq!(p.next(Some("")).unwrap(), None);
    let n2 = p
        .next(Some("https://g.example/v1.0/applications?$skiptoken=2"))
        .unwrap();
    assert_eq!(
        n2.as_deref(),
        Some("https://g.example/v1.0/applications?$skiptoken=2")
    );
    // Same host, other port or scheme: another origin.
    for bad in [
        "https://g.example:8443/v1.0/applications?$skiptoken=3",
        "http://g.example/v1.0/applications?$skiptoken=3",
        "https://evil.example/v1.0/applications?$skiptoken=3",
    ] {
        assert_eq!(
            p.next(Some(bad)).unwrap_err().code,
            codes::NEXT_LINK,
            "{bad}"
        );
    }
    assert_eq!(
        p.next(Some("https://g.example/v1.0/applications?$skiptoken=2"))
            .unwrap_err()
            .code,
        codes::NEXT_LINK
    );
    p.next(Some("/v1.0/applications?$skiptoken=3")).unwrap();
    assert_eq!(
        p.next(Some("/v1.0/applications?$skiptoken=4"))
            .unwrap_err()
            .code,
        codes::TOO_MANY_PAGES
    );
}
