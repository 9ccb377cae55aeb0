//! Where the four services live: a national cloud, or custom endpoints (what `spot-connect sim`
//! writes to `<state-dir>/endpoints.json`).

use crate::error::Error;
use crate::secret::Secret;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    #[default]
    Public,
    Usgov,
    China,
}

/// Base URLs without a trailing slash. Clients append the documented paths
/// (`{graph}/v1.0/applications`, `{arm}/subscriptions?api-version=…`, `{login}/{tenant}/oauth2/v2.0/token`,
/// `{spot}/setup/account`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// "public", "usgov", "china" or "custom".
    pub name: String,
    pub login: String,
    pub graph: String,
    pub arm: String,
    pub spot: String,
    /// Only the simulator has it.
    pub inspect: Option<String>,
    /// PEM file of the CA to trust instead of the platform's roots (the simulator's).
    pub ca_cert: Option<PathBuf>,
    /// OAuth scope for ARM tokens.
    pub arm_scope: String,
    /// OAuth scope for Graph tokens.
    pub graph_scope: String,
    /// The endpoints file these came from (named in errors).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The JSON line `spot-connect sim` prints and writes (PRODUCT.md §3): each service's origin
/// (`https://host:port`, no path), the inspect origin, the CA to trust and the Spot token.
#[derive(Clone, Serialize, Deserialize)]
pub struct EndpointsFile {
    pub login: String,
    pub graph: String,
    pub arm: String,
    pub spot: String,
    pub inspect: String,
    pub ca_cert: PathBuf,
    /// The simulated Spot organization's admin token. Not a real credential.
    pub spot_token: String,
}

fn trim(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

impl Endpoints {
    pub fn for_cloud(cloud: Cloud) -> Endpoints {
        let (name, login, graph, arm, arm_audience) = match cloud {
            Cloud::Public => (
                "public",
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://management.azure.com",
                "https://management.core.windows.net/",
            ),
            Cloud::Usgov => (
                "usgov",
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://management.usgovcloudapi.net",
                "https://management.core.usgovcloudapi.net/",
            ),
            Cloud::China => (
                "china",
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
                "https://management.core.chinacloudapi.cn/",
            ),
        };
        Endpoints {
            name: name.into(),
            login: login.into(),
            graph: graph.into(),
            arm: arm.into(),
            spot: "https://api.spotinst.io".into(),
            inspect: None,
            ca_cert: None,
            // az CLI keeps the double slash: "<resource>/" + "/.default".
            arm_scope: format!("{arm_audience}/.default"),
            graph_scope: format!("{graph}/.default"),
            source: None,
        }
    }

    /// Custom endpoints: scopes are `<base>/.default` of the service, as the simulator expects.
    pub fn from_file_contents(f: &EndpointsFile) -> Endpoints {
        Endpoints {
            name: "custom".into(),
            login: trim(&f.login),
            graph: trim(&f.graph),
            arm: trim(&f.arm),
            spot: trim(&f.spot),
            inspect: Some(trim(&f.inspect)),
            ca_cert: Some(f.ca_cert.clone()),
            arm_scope: format!("{}/.default", trim(&f.arm)),
            graph_scope: format!("{}/.default", trim(&f.graph)),
            source: None,
        }
    }

    /// Reads an endpoints file; returns the endpoints and the Spot token it carries. Checks that
    /// each service is an `https` origin without a path and that `ca_cert` is a readable PEM
    /// certificate; every error names the file and the field. [`Endpoints::verify`] then checks
    /// that each origin answers and is signed by that CA.
    pub fn load(path: &Path) -> Result<(Endpoints, Secret), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read endpoints file {}: {e}",
                path.display()
            ))
        })?;
        let f: EndpointsFile = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("invalid endpoints file {}: {e}", path.display())))?;
        let bad = |field: &str, why: String| {
            Error::Usage(format!(
                "endpoints file {}: `{field}` {why}",
                path.display()
            ))
        };
        for (field, url) in [
            ("login", &f.login),
            ("graph", &f.graph),
            ("arm", &f.arm),
            ("spot", &f.spot),
            ("inspect", &f.inspect),
        ] {
            check_origin(url).map_err(|why| bad(field, why))?;
        }
        let ca = std::fs::read(&f.ca_cert).map_err(|e| {
            bad(
                "ca_cert",
                format!(
                    "{}: cannot read the CA certificate: {e}",
                    f.ca_cert.display()
                ),
            )
        })?;
        check_pem(&ca).map_err(|why| bad("ca_cert", format!("{}: {why}", f.ca_cert.display())))?;
        let mut e = Endpoints::from_file_contents(&f);
        e.source = Some(path.to_path_buf());
        Ok((e, Secret::new(f.spot_token.clone())))
    }

    /// For endpoints read from a file: each service's origin answers over TLS with a certificate
    /// that `ca_cert` verifies (one request to `/` each, side by side; any HTTP status will do).
    /// Errors name the file and the field. Nothing to check for a national cloud.
    pub async fn verify(&self, http: &crate::http::Http) -> Result<(), Error> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let ca = self
            .ca_cert
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let services = [
            ("login", &self.login),
            ("graph", &self.graph),
            ("arm", &self.arm),
            ("spot", &self.spot),
        ];
        let probes = services.iter().map(|(field, url)| async move {
            // A connection dropped mid-handshake says nothing about the file: tried 3 times
            // (an untrusted certificate is final at once).
            let mut tries = 0u32;
            loop {
                let r = http
                    .client()
                    .get(format!("{url}/"))
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await;
                match r {
                    Err(e) if tries < 2 && !is_untrusted(&error_chain(&e)) => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(
                            200 * u64::from(tries),
                        ))
                        .await;
                    }
                    r => return (*field, *url, r),
                }
            }
        });
        for (field, url, r) in futures::future::join_all(probes).await {
            let Err(e) = r else { continue };
            let chain = error_chain(&e);
            if is_untrusted(&chain) {
                return Err(Error::Usage(format!(
                    "endpoints file {}: `ca_cert` {ca} does not verify the certificate of `{field}` ({url}): {chain}",
                    source.display()
                )));
            }
            if e.is_connect() || e.is_timeout() {
                // Says DNS or the proxy (HTTPS_PROXY) when that is why.
                let parsed = url::Url::parse(url).ok();
                let host = parsed
                    .as_ref()
                    .and_then(|u| u.host_str())
                    .unwrap_or(url)
                    .to_string();
                let why = crate::http::connect_message(
                    &host,
                    crate::http::proxy_for(parsed.as_ref()).as_deref(),
                    &chain,
                );
                return Err(Error::Usage(format!(
                    "endpoints file {}: `{field}` {url} is unreachable: {why}: is the simulator (or the service) running?",
                    source.display()
                )));
            }
            // Anything else (a connection closed after the handshake, a bad reply) means the
            // origin is there and trusted: the calls themselves will report their own errors.
        }
        Ok(())
    }

    /// The CA certificate to trust, if these endpoints name one.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        match &self.ca_cert {
            None => Ok(None),
            Some(p) => std::fs::read(p).map(Some).map_err(|e| {
                Error::Usage(format!("cannot read CA certificate {}: {e}", p.display()))
            }),
        }
    }
}

/// An `https` origin without a path, query or fragment (`https://host[:port]`, a trailing `/` allowed).
fn check_origin(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| match e {
        url::ParseError::EmptyHost => format!("is {url}: it has no host"),
        e => format!("is not a URL ({url}): {e}"),
    })?;
    if u.scheme() != "https" {
        return Err(format!(
            "is {url}: not https, and the client never speaks plain HTTP"
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("is {url}: it has no host"));
    }
    if u.path() != "/" && !u.path().is_empty() {
        return Err(format!(
            "is {url}: a service is an origin without a path (https://host:port). This is the old one-origin shape: start `spot-connect sim` again to write a new endpoints file"
        ));
    }
    if u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(format!(
            "is {url}: an origin has no query, fragment or user"
        ));
    }
    Ok(())
}

/// At least one PEM certificate, each one usable as a trust anchor.
fn check_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

/// Whether a probe failed on the server's certificate (the CA file does not verify it).
fn is_untrusted(chain: &str) -> bool {
    chain.contains("certificate") || chain.contains("UnknownIssuer")
}

/// An error and its sources, joined (reqwest hides the TLS reason in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_cloud_uses_documented_hosts_and_scopes() {
        let e = Endpoints::for_cloud(Cloud::Public);
        assert_eq!(e.arm_scope, "https://management.core.windows.net//.default");
        assert_eq!(e.graph_scope, "https://graph.microsoft.com/.default");
        let g = Endpoints::for_cloud(Cloud::Usgov);
        assert_eq!(g.graph, "https://graph.microsoft.us");
        assert_eq!(
            Endpoints::for_cloud(Cloud::China).login,
            "https://login.chinacloudapi.cn"
        );
    }

    #[test]
    fn endpoints_file_must_be_https() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("endpoints.json");
        std::fs::write(
            &p,
            r#"{"login":"http://127.0.0.1:1","graph":"https://x","arm":"https://x","spot":"https://x","inspect":"https://x","ca_cert":"/tmp/ca.pem","spot_token":"t"}"#,
        )
        .unwrap();
        let e = Endpoints::load(&p).unwrap_err().to_string();
        assert!(e.contains("`login`") && e.contains("not https"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
    }

    #[test]
    fn the_old_one_origin_shape_and_a_bad_ca_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("endpoints.json");
        std::fs::write(
            &p,
            r#"{"login":"https://127.0.0.1:1/login","graph":"https://127.0.0.1:1/graph","arm":"https://127.0.0.1:1/arm","spot":"https://127.0.0.1:1/spot","inspect":"https://127.0.0.1:1/inspect","ca_cert":"/nonexistent/ca.pem","spot_token":"t"}"#,
        )
        .unwrap();
        let e = Endpoints::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("`login`") && e.contains("old one-origin shape"),
            "{e}"
        );
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        std::fs::write(
            &p,
            format!(
                r#"{{"login":"https://127.0.0.1:1","graph":"https://127.0.0.1:2/","arm":"https://127.0.0.1:3","spot":"https://127.0.0.1:4","inspect":"https://127.0.0.1:5","ca_cert":{:?},"spot_token":"t"}}"#,
                ca.display().to_string()
            ),
        )
        .unwrap();
        let e = Endpoints::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("`ca_cert`") && e.contains("no PEM certificate"),
            "{e}"
        );
        std::fs::remove_file(&ca).unwrap();
        let e = Endpoints::load(&p).unwrap_err().to_string();
        assert!(e.contains("`ca_cert`") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn endpoint_urls_are_checked_when_the_file_is_read_and_the_error_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("endpoints.json");
        // Every URL is fine: the check goes on to the CA certificate (missing here).
        let good = r#"{"login":"https://x:1","graph":"https://x:2","arm":"https://x:3","spot":"https://x:4","inspect":"https://x:5","ca_cert":"/nonexistent/ca.pem","spot_token":"t"}"#;
        std::fs::write(&p, good).unwrap();
        let e = Endpoints::load(&p).unwrap_err().to_string();
        assert!(e.contains("`ca_cert`"), "{e}");
        for (field, bad, why) in [
            ("graph", "https://", "no host"),
            ("spot", "ftp://x:4", "not https"),
            ("login", "x/login", "not a URL"),
            ("inspect", "https://u:p@x:5", "user"),
            ("inspect", "https://:p@x:5", "user"),
            ("graph", "https://x:2/?a=1", "query"),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(good).unwrap();
            v[field] = serde_json::json!(bad);
            std::fs::write(&p, v.to_string()).unwrap();
            let e = match Endpoints::load(&p) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{field}={bad} accepted"),
            };
            assert!(
                e.contains(&p.display().to_string())
                    && e.contains(&format!("`{field}`"))
                    && e.contains(why),
                "{field}={bad}: {e}"
            );
        }
    }
}
