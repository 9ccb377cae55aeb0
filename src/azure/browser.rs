//! Browser sign-in from another machine: authorization code with PKCE (S256), the Azure CLI's
//! public client, redirect `http://localhost:<port>` (reference/identity-and-clients.md §4).
//!
//! For a jump box reached over SSH where Conditional Access blocks the device-code flow. The
//! operator opens the sign-in address in the browser of their laptop. The browser then goes to
//! `http://localhost:<port>/?code=…&state=…`, and one of two things brings that address back:
//! - the operator forwarded the port (`ssh -L <port>:localhost:<port> user@jumpbox`), so the
//!   browser reaches [`Listener`] on this machine's loopback, or
//! - the page fails to load on the laptop and the operator pastes the address from the address
//!   bar (a line on stdin for the commands, a field in the wizard).
//!
//! Either way the address must come from our redirect URI and carry our `state`; the code is
//! redeemed once, with the verifier. Neither the code, the verifier nor a token is logged.

pub use crate::azure::prompt::BrowserPrompt;
use crate::azure::prompt::{PromptFn, SignInPrompt};
use crate::azure::token::{Clock, TokenGrant, TokenRefusal, parse_token_grant, post_token};
use crate::error::{ApiError, Error, Result, Service};
use crate::http::Http;
use crate::secret::Secret;
use std::collections::HashSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a browser sign-in waits for the redirect or a pasted address.
pub const WAIT: Duration = Duration::from_secs(15 * 60);

/// Where a browser sign-in runs.
#[derive(Clone)]
pub struct BrowserOptions {
    pub login: String,
    pub client_id: String,
    pub tenant: String,
    /// The scopes asked for (`<resource>/.default offline_access openid profile`).
    pub scope: String,
    /// `--redirect-port`; None: a free port.
    pub redirect_port: Option<u16>,
    /// A claims challenge from a refused refresh (passed on as `claims`).
    pub claims: Option<String>,
    pub clock: Clock,
}

// ---------------------------------------------------------------------------------------------
// PKCE and state
// ---------------------------------------------------------------------------------------------

/// `n` random bytes from the OS generator, base64url without padding.
fn random_b64(n: usize) -> Result<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Internal("the system random generator failed".into()))?;
    Ok(b64url(&buf))
}

fn b64url(data: &[u8]) -> String {
    azure_core::base64::encode_url_safe(data)
        .trim_end_matches('=')
        .to_string()
}

/// A PKCE verifier (43 characters of 32 random bytes, RFC 7636 §4.1) and its S256 challenge.
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Result<Pkce> {
        let verifier = random_b64(32)?;
        let challenge = s256_challenge(&verifier);
        Ok(Pkce {
            verifier: Secret::new(verifier),
            challenge,
        })
    }
}

/// `BASE64URL(SHA256(verifier))` without padding (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The authorize request (§4): query response mode, S256, `prompt=select_account`.
pub fn authorize_url(
    o: &BrowserOptions,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String> {
    let base = format!("{}/{}/oauth2/v2.0/authorize", o.login, o.tenant);
    let mut u = url::Url::parse(&base)
        .map_err(|e| Error::Usage(format!("invalid sign-in address {base}: {e}")))?;
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("client_id", &o.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &o.scope)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "select_account");
        if let Some(c) = &o.claims {
            q.append_pair("claims", c);
        }
    }
    Ok(u.to_string())
}

// ---------------------------------------------------------------------------------------------
// The address the browser ended on
// ---------------------------------------------------------------------------------------------

/// What the redirect brought back.
pub enum Redirected {
    Code(Secret),
    /// The identity platform's error redirect (`error`, `error_description`), with our state.
    Refused {
        error: String,
        description: String,
    },
}

/// Checks an address that claims to be our redirect: our redirect URI (scheme, host, port,
/// path), our `state`, and a `code` (or the documented error). The `Err` is the sentence for
/// the operator; nothing has changed and the sign-in keeps waiting.
pub fn check_redirect(
    address: &str,
    redirect_uri: &str,
    state: &str,
) -> std::result::Result<Redirected, String> {
    let address = address.trim();
    let ours = url::Url::parse(redirect_uri).map_err(|e| e.to_string())?;
    let port = ours.port_or_known_default().unwrap_or(0);
    let expected = format!("it starts with {redirect_uri}/?code=");
    if address.is_empty() {
        return Err(format!(
            "nothing was pasted: paste the whole address from the browser's address bar ({expected})"
        ));
    }
    let u = url::Url::parse(address).map_err(|_| {
        format!(
            "that is not an address: paste the whole address from the browser's address bar ({expected})"
        )
    })?;
    let same_host = matches!(u.host_str(), Some("localhost" | "127.0.0.1"));
    if u.scheme() != "http"
        || !same_host
        || u.port_or_known_default() != Some(port)
        || u.path() != ours.path()
    {
        return Err(format!(
            "that address is not this sign-in's redirect ({expected})"
        ));
    }
    // response_mode=query puts the answer in the query; accept a fragment too.
    let mut params: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    if let Some(f) = u.fragment() {
        params.extend(url::form_urlencoded::parse(f.as_bytes()).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("state") {
        Some(s) if s == state => {}
        Some(_) => {
            return Err(
                "that address is from another sign-in (its state differs): open this sign-in's address again"
                    .into(),
            );
        }
        None => {
            return Err(format!(
                "that address has no state: paste the whole address ({expected})"
            ));
        }
    }
    if let Some(error) = get("error") {
        return Ok(Redirected::Refused {
            error: error.to_string(),
            description: get("error_description").unwrap_or_default().to_string(),
        });
    }
    match get("code") {
        Some(c) if !c.is_empty() => Ok(Redirected::Code(Secret::new(c))),
        _ => Err(format!("that address has no sign-in code ({expected})")),
    }
}

/// `AADSTS50011` and friends in a description: the numbers, as `AADSTS…` codes.
pub(crate) fn aadsts_codes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("AADSTS") {
        let digits: String = rest[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            out.push(format!("AADSTS{digits}"));
        }
        rest = &rest[i + 6..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The loopback listener
// ---------------------------------------------------------------------------------------------

/// The redirect's listener on `localhost:<port>`: `127.0.0.1:<port>` and `[::1]:<port>` (a
/// browser may try either for `localhost`, so both must be ours).
///
/// - When `[::1]:<port>` is taken (another local process listens there and would be handed the
///   code and state), the sign-in does not start with an operator's `--redirect-port`, and a
///   port we chose is replaced by another free one.
/// - When the machine has no IPv6 loopback at all (the address cannot be assigned, or the
///   family is not supported), nobody can hold `[::1]`: we listen on `127.0.0.1` only and say
///   so in the log. Any other failure to bind `[::1]` stops the sign-in.
pub struct Listener {
    v4: TcpListener,
    v6: Option<TcpListener>,
    pub port: u16,
}

/// How many free ports are tried when `[::1]` of the one we got is taken.
const PORT_TRIES: usize = 20;

impl Listener {
    pub async fn bind(port: Option<u16>) -> Result<Listener> {
        Self::bind_first(port, None).await
    }

    /// As [`Listener::bind`]; without `port`, `first` (when given) is tried before the free
    /// ports the system hands out (for the test of a taken `[::1]`).
    async fn bind_first(port: Option<u16>, mut first: Option<u16>) -> Result<Listener> {
        let mut tries = 0;
        loop {
            tries += 1;
            let want = port.or(first.take()).unwrap_or(0);
            let v4 = TcpListener::bind(("127.0.0.1", want))
                .await
                .map_err(|e| match port {
                    Some(p) if e.kind() == std::io::ErrorKind::AddrInUse => Error::Usage(format!(
                        "--redirect-port {p}: the port is already in use on this machine; choose another port (or leave --redirect-port out for a free one)"
                    )),
                    Some(p) => Error::Usage(format!(
                        "--redirect-port {p}: cannot listen on localhost:{p}: {e}"
                    )),
                    None => Error::local("cannot listen on localhost", e),
                })?;
            let got = v4
                .local_addr()
                .map_err(|e| Error::local("cannot read the listener's port", e))?
                .port();
            match TcpListener::bind(("::1", got)).await {
                Ok(v6) => {
                    return Ok(Listener {
                        v4,
                        v6: Some(v6),
                        port: got,
                    });
                }
                Err(e) if no_ipv6(&e) => {
                    tracing::info!(port = got, error = %e, "no IPv6 loopback on this machine: the sign-in listens on 127.0.0.1 only");
                    return Ok(Listener {
                        v4,
                        v6: None,
                        port: got,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match port {
                    Some(p) => {
                        return Err(Error::Usage(format!(
                            "--redirect-port {p}: [::1]:{p} is already in use by another program on this machine, which a browser could reach for localhost:{p}; choose another port (or leave --redirect-port out for a free one)"
                        )));
                    }
                    None if tries < PORT_TRIES => {
                        tracing::info!(
                            port = got,
                            "[::1] of the free port is taken: trying another port"
                        );
                        continue;
                    }
                    None => {
                        return Err(Error::local(
                            "cannot find a port free on both 127.0.0.1 and [::1]",
                            format!("{PORT_TRIES} tried"),
                        ));
                    }
                },
                Err(e) => {
                    return Err(Error::local(
                        format!("cannot listen on [::1]:{got} for the sign-in's redirect"),
                        e,
                    ));
                }
            }
        }
    }

    /// Accepts on both addresses and reads each connection on its own task (at most
    /// [`MAX_CONNECTIONS`] at once, [`READ_TIMEOUT`] each): a request for our redirect path is
    /// sent on `found` with its stream; anything else is answered 404. Ends when dropped
    /// (the task is aborted, its connections with it).
    fn serve(self, found: tokio::sync::mpsc::Sender<(String, TcpStream)>) -> AbortOnDrop {
        let task = tokio::spawn(async move {
            let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let accepted = match &self.v6 {
                    Some(v6) => tokio::select! {
                        r = self.v4.accept() => r,
                        r = v6.accept() => r,
                    },
                    None => self.v4.accept().await,
                };
                while conns.try_join_next().is_some() {}
                let Ok((mut stream, _)) = accepted else {
                    // Out of descriptors or similar: let it pass rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Too many at once: this one is closed at once, the others go on.
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    continue;
                };
                let found = found.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    match read_target(&mut stream).await {
                        Some(target)
                            if target == "/"
                                || target.starts_with("/?")
                                || target.starts_with("/#") =>
                        {
                            let _ = found.send((target, stream)).await;
                        }
                        Some(_) => respond(stream, "404 Not Found", "Not found.").await,
                        None => {}
                    }
                });
            }
        });
        AbortOnDrop(task)
    }
}

/// The machine has no IPv6 loopback: `[::1]` cannot be assigned, or IPv6 is not supported.
fn no_ipv6(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AddrNotAvailable
        || e.kind() == std::io::ErrorKind::Unsupported
        || e.raw_os_error() == Some(libc::EAFNOSUPPORT)
        || e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
}

/// Connections read at once by the listener; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads one HTTP request head (at most 16 KiB, [`READ_TIMEOUT`]); the request target of a GET.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok()??;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Some(target.to_string()),
        _ => None,
    }
}

async fn respond(mut stream: TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>spot-connect</title><body style=\"font-family:sans-serif\"><p>{}</p></body>",
        html_escape(text)
    );
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------------
// The ssh command shown to the operator
// ---------------------------------------------------------------------------------------------

/// `ssh -L <port>:localhost:<port> <user>@<jumpbox>`: the user from `$USER`/`$LOGNAME` (else
/// the account of this process in /etc/passwd), the host the operator's SSH client connected to
/// (`$SSH_CONNECTION`'s server address), else this machine's host name.
pub fn ssh_command(port: u16, var: impl Fn(&str) -> Option<String>) -> String {
    let user = var("USER")
        .or_else(|| var("LOGNAME"))
        .filter(|u| !u.trim().is_empty())
        .or_else(passwd_user)
        .unwrap_or_else(|| "<user>".into());
    let host = var("SSH_CONNECTION")
        .and_then(|c| c.split_whitespace().nth(2).map(str::to_string))
        .map(|h| if h.contains(':') { format!("[{h}]") } else { h })
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "<jumpbox>".into());
    format!("ssh -L {port}:localhost:{port} {user}@{host}")
}

/// The name of this process's user in /etc/passwd.
fn passwd_user() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid && !f[0].is_empty()).then(|| f[0].to_string())
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------------

/// Codes the identity platform refuses because of the operator's delay or a second try: the
/// sign-in keeps waiting for a new address (the same sign-in address can be opened again).
fn try_again_later(api: &ApiError) -> Option<&'static str> {
    if api.has_code("AADSTS70008") {
        Some(
            "the sign-in code expired before it came back (codes last minutes): open the sign-in address again",
        )
    } else if api.has_code("AADSTS54005") {
        Some("that sign-in code was already used: open the sign-in address again")
    } else if api.status == 0 {
        Some(
            "the identity platform's answer was lost (a code is sent once only): open the sign-in address again",
        )
    } else {
        None
    }
}

enum Outcome {
    SignedIn(TokenGrant),
    /// Refused input: say why, keep waiting.
    Again(String),
    Failed(Error),
}

/// Runs one browser sign-in: shows the prompt, waits for the redirect on the listener or a
/// pasted address from `pastes`, redeems the code.
pub async fn sign_in(
    http: &Http,
    o: &BrowserOptions,
    prompt: &PromptFn,
    pastes: &mut UnboundedReceiver<String>,
) -> Result<TokenGrant> {
    let listener = Listener::bind(o.redirect_port).await?;
    let redirect_uri = format!("http://localhost:{}", listener.port);
    let pkce = Pkce::new()?;
    let state = random_b64(16)?;
    let url = authorize_url(o, &redirect_uri, &state, &pkce.challenge)?;
    let expires_at = (o.clock)() + time::Duration::seconds(WAIT.as_secs() as i64);
    // Addresses pasted before this sign-in started belong to no one.
    while pastes.try_recv().is_ok() {}
    tracing::info!(tenant = %o.tenant, port = listener.port, "browser sign-in started");
    prompt(SignInPrompt::Browser(BrowserPrompt {
        url,
        redirect_uri: redirect_uri.clone(),
        port: listener.port,
        ssh_command: ssh_command(listener.port, |k| std::env::var(k).ok()),
        tenant: o.tenant.clone(),
        expires_at,
    }));

    let mut used: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pastes_open = true;
    // Connections are read on their own tasks: an idle one delays neither the redirect nor a
    // paste.
    let (found_tx, mut found) = tokio::sync::mpsc::channel(8);
    let _serving = listener.serve(found_tx);
    loop {
        let (address, stream) = tokio::select! {
            Some((target, stream)) = found.recv() => (format!("{redirect_uri}{target}"), Some(stream)),
            pasted = pastes.recv(), if pastes_open => match pasted {
                Some(a) => (a, None),
                None => {
                    pastes_open = false;
                    continue;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::Auth(format!(
                    "no sign-in came back within {} minutes: start the sign-in again",
                    WAIT.as_secs() / 60
                )));
            }
        };
        let via = if stream.is_some() {
            "redirect"
        } else {
            "pasted address"
        };
        let outcome = match check_redirect(&address, &redirect_uri, &state) {
            Err(why) => Outcome::Again(why),
            Ok(Redirected::Refused { error, description }) => {
                // Both come from the address bar: no control characters (`crate::text`).
                let mut e = ApiError::transport(Service::Login, description.clone());
                e.status = 400;
                e.code = crate::text::clean(&error);
                e.detail_codes = aadsts_codes(&description);
                Outcome::Failed(Error::Api(e))
            }
            Ok(Redirected::Code(code)) if !used.insert(code.expose().to_string()) => {
                Outcome::Again(
                    "that address was already used: open the sign-in address again".into(),
                )
            }
            Ok(Redirected::Code(code)) => {
                match redeem(http, o, &redirect_uri, &code, &pkce.verifier).await {
                    Ok(grant) => Outcome::SignedIn(grant),
                    Err(e) => match e.api().and_then(try_again_later) {
                        Some(why) => Outcome::Again(why.to_string()),
                        None => Outcome::Failed(e),
                    },
                }
            }
        };
        match outcome {
            Outcome::SignedIn(grant) => {
                tracing::info!(tenant = %o.tenant, via, "browser sign-in completed");
                if let Some(s) = stream {
                    respond(
                        s,
                        "200 OK",
                        "Signed in to spot-connect. You can close this tab.",
                    )
                    .await;
                }
                return Ok(grant);
            }
            Outcome::Again(why) => {
                tracing::info!(via, "browser sign-in: address refused, still waiting");
                if let Some(s) = stream {
                    respond(s, "400 Bad Request", &format!("spot-connect: {why}")).await;
                }
                prompt(SignInPrompt::Refused(why));
            }
            Outcome::Failed(e) => {
                if let Some(s) = stream {
                    respond(
                        s,
                        "400 Bad Request",
                        &format!("spot-connect: the sign-in failed: {e}"),
                    )
                    .await;
                }
                return Err(e);
            }
        }
    }
}

/// The `authorization_code` grant, sent once (a code is redeemable once: never retried).
async fn redeem(
    http: &Http,
    o: &BrowserOptions,
    redirect_uri: &str,
    code: &Secret,
    verifier: &Secret,
) -> Result<TokenGrant> {
    let form = [
        ("client_id", o.client_id.as_str()),
        ("grant_type", "authorization_code"),
        ("scope", o.scope.as_str()),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.expose()),
        ("client_info", "1"),
    ];
    let body = post_token(http, &o.login, &o.tenant, "token", &form, false)
        .await
        .map_err(|r: TokenRefusal| Error::Api(r.api))?;
    parse_token_grant(&body, (o.clock)())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "http://localhost:8400";

    #[test]
    fn a_redirect_with_our_state_gives_the_code() {
        match check_redirect("  http://localhost:8400/?code=abc&state=s1 \n", R, "s1") {
            Ok(Redirected::Code(c)) => assert_eq!(c.expose(), "abc"),
            _ => panic!("expected the code"),
        }
        match check_redirect(
            "http://127.0.0.1:8400/?state=s1&code=xyz&session_state=q",
            R,
            "s1",
        ) {
            Ok(Redirected::Code(c)) => assert_eq!(c.expose(), "xyz"),
            _ => panic!("expected the code"),
        }
        match check_redirect(
            "http://localhost:8400/?error=access_denied&error_description=AADSTS50105%3A+no&state=s1",
            R,
            "s1",
        ) {
            Ok(Redirected::Refused { error, description }) => {
                assert_eq!(error, "access_denied");
                assert_eq!(aadsts_codes(&description), vec!["AADSTS50105"]);
            }
            _ => panic!("expected the error redirect"),
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        let refused = |a: &str| match check_redirect(a, R, "s1") {
            Err(why) => why,
            Ok(_) => panic!("{a}: accepted"),
        };
        assert!(refused("").contains("nothing was pasted"));
        assert!(refused("hello").contains("not an address"));
        assert!(refused("http://localhost:8400/?state=s1").contains("no sign-in code"));
        assert!(refused("http://localhost:8400/?code=abc&state=other").contains("another sign-in"));
        assert!(refused("http://localhost:8400/?code=abc").contains("no state"));
        for other in [
            "http://localhost:9999/?code=abc&state=s1",
            "https://localhost:8400/?code=abc&state=s1",
            "http://evil.example:8400/?code=abc&state=s1",
            "http://localhost:8400/callback?code=abc&state=s1",
        ] {
            assert!(
                refused(other).contains("not this sign-in's redirect"),
                "{other}"
            );
        }
        // The refusal never repeats the code.
        assert!(!refused("http://localhost:9999/?code=SECRETCODE&state=s1").contains("SECRETCODE"));
    }

    #[test]
    fn pkce_verifier_is_43_url_safe_characters_and_the_challenge_is_s256() {
        let p = Pkce::new().unwrap();
        assert_eq!(p.verifier.expose().len(), 43);
        assert!(
            p.verifier
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(Pkce::new().unwrap().verifier.expose(), p.verifier.expose());
        // python3: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=')
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOSjXk"),
            "KnzveAyQMhNA_iUwGLkrbZAyXEfR1Ef_lfJqfPWkmvU"
        );
    }

    #[test]
    fn the_ssh_command_names_the_port_user_and_the_address_the_operator_used() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            ssh_command(
                8400,
                env(&[
                    ("USER", "ops"),
                    ("SSH_CONNECTION", "10.0.0.5 50122 10.1.2.3 22")
                ])
            ),
            "ssh -L 8400:localhost:8400 ops@10.1.2.3"
        );
        assert_eq!(
            ssh_command(
                9000,
                env(&[
                    ("LOGNAME", "me"),
                    ("SSH_CONNECTION", "fe80::1 5 2001:db8::7 22")
                ])
            ),
            "ssh -L 9000:localhost:9000 me@[2001:db8::7]"
        );
        // Without the environment: this process's account and host name.
        let c = ssh_command(1234, env(&[]));
        assert!(
            c.starts_with("ssh -L 1234:localhost:1234 ") && c.contains('@'),
            "{c}"
        );
    }

    #[tokio::test]
    async fn a_port_already_taken_is_a_clear_usage_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        match Listener::bind(Some(port)).await {
            Err(Error::Usage(m)) => {
                assert!(
                    m.contains(&format!("--redirect-port {port}")) && m.contains("already in use"),
                    "{m}"
                )
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bound a port already taken"),
        }
        let free = Listener::bind(None).await.unwrap();
        assert_ne!(free.port, 0);
    }

    /// A port of our choosing whose `[::1]` another process holds is given up for another.
    #[tokio::test]
    async fn a_free_port_whose_ipv6_loopback_is_taken_is_replaced() {
        let Ok(squatter) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        let p = squatter.local_addr().unwrap().port();
        let l = Listener::bind_first(None, Some(p)).await.unwrap();
        assert_ne!(l.port, p);
        assert!(l.v6.is_some());
        // With the operator's port it is an error instead.
        match Listener::bind(Some(p)).await {
            Err(Error::Usage(m)) => assert!(m.contains(&format!("[::1]:{p}")), "{m}"),
            _ => panic!("bound a port whose [::1] is taken"),
        }
    }
}
