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
}

/// The JSON line `spot-connect sim` prints and writes (PRODUCT.md §3).
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
        }
    }

    /// Reads an endpoints file; returns the endpoints and the Spot token it carries.
    pub fn load(path: &Path) -> Result<(Endpoints, Secret), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read endpoints file {}: {e}",
                path.display()
            ))
        })?;
        let f: EndpointsFile = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("invalid endpoints file {}: {e}", path.display())))?;
        validate_file(path, &f)?;
        Ok((
            Endpoints::from_file_contents(&f),
            Secret::new(f.spot_token.clone()),
        ))
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

/// Every URL of an endpoints file is an absolute `https://` URL with a host, no user info, query
/// or fragment: checked when the file is read, so no client ever builds a request from a bad one.
/// The error names the file and the field.
pub fn validate_file(path: &Path, f: &EndpointsFile) -> Result<(), Error> {
    for (field, value) in [
        ("login", &f.login),
        ("graph", &f.graph),
        ("arm", &f.arm),
        ("spot", &f.spot),
        ("inspect", &f.inspect),
    ] {
        check_url(value).map_err(|why| {
            Error::Usage(format!(
                "endpoints file {}: \"{field}\" is {value:?}: {why}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Why `value` is not a usable service base URL, if it is not.
pub fn check_url(value: &str) -> Result<(), String> {
    let u = url::Url::parse(value.trim()).map_err(|e| match e {
        url::ParseError::EmptyHost => "there is no host".to_string(),
        e => format!("not a URL ({e})"),
    })?;
    if u.scheme() != "https" {
        return Err(format!(
            "the scheme is {:?}: spot-connect speaks HTTPS only",
            u.scheme()
        ));
    }
    match u.host_str() {
        None | Some("") => return Err("there is no host".into()),
        Some(_) => {}
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("it carries a user name or password".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("it has a query or fragment (only a base URL is accepted)".into());
    }
    Ok(())
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
            r#"{"login":"http://127.0.0.1:1/login","graph":"https://x/graph","arm":"https://x/arm","spot":"https://x/spot","inspect":"https://x/inspect","ca_cert":"/tmp/ca.pem","spot_token":"t"}"#,
        )
        .unwrap();
        assert!(Endpoints::load(&p).is_err());
    }

    #[test]
    fn endpoint_urls_are_checked_when_the_file_is_read_and_the_error_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("endpoints.json");
        let good = r#"{"login":"https://x/login","graph":"https://x/graph","arm":"https://x/arm","spot":"https://x/spot","inspect":"https://x/inspect","ca_cert":"/tmp/ca.pem","spot_token":"t"}"#;
        std::fs::write(&p, good).unwrap();
        assert!(Endpoints::load(&p).is_ok());
        for (field, bad, why) in [
            ("graph", "https://", "no host"),
            ("spot", "ftp://x/spot", "HTTPS only"),
            ("login", "x/login", "not a URL"),
            ("inspect", "https://u:p@x/inspect", "user name"),
            ("graph", "https://x/graph?a=1", "query"),
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
                    && e.contains(&format!("\"{field}\""))
                    && e.contains(why),
                "{e}"
            );
        }
    }
}
