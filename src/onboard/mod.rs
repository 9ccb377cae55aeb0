//! The onboarding engine: plan, apply, checkpoint, retry. Knows nothing of the terminal.
//!
//! - [`Session::build`] makes the clients from the command-line options (or the wizard's).
//! - [`plan`] looks everything up and says, per object, create / reuse / update / blocked.
//! - [`apply`] refuses to write when the plan has a blocked item, then writes in dependency order,
//!   independent calls concurrently, checkpointing ids to the state file after every write, and
//!   reports progress over the channel.

pub mod bulk;
mod engine;
pub mod lock;
pub mod model;
pub mod orphans;
pub mod policy;
pub mod remove;
pub mod retry;
pub mod rotate;
pub mod state;
pub mod status;

use crate::azure::auth::{Auth, PromptFn};
use crate::azure::discovery::{self, Discovery};
use crate::cli::CommonOpts;
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::Secret;
use crate::spot::SpotClient;
use model::{Plan, Progress, Report};
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// How to pick the Spot account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpotAccountChoice {
    /// The account connected to this subscription if any, else a new one.
    #[default]
    Auto,
    Existing(String),
    New,
}

impl SpotAccountChoice {
    /// From `--spot-account act-…|new`.
    pub fn parse(s: Option<&str>) -> Result<SpotAccountChoice> {
        match s.map(str::trim) {
            None | Some("") => Ok(SpotAccountChoice::Auto),
            Some(x) if x.eq_ignore_ascii_case("new") => Ok(SpotAccountChoice::New),
            Some(x) if x.starts_with("act-") && x.len() > 4 => {
                Ok(SpotAccountChoice::Existing(x.to_string()))
            }
            Some(x) => Err(Error::Usage(format!(
                "--spot-account must be an account id (act-…) or \"new\", not {x:?}"
            ))),
        }
    }
}

/// Everything the engine needs to talk to the services.
#[derive(Clone)]
pub struct Session {
    pub endpoints: Endpoints,
    pub http: Http,
    pub auth: Auth,
    pub spot: SpotClient,
    pub state_dir: PathBuf,
}

impl Session {
    /// Builds the clients. Endpoints: `endpoints` when given (the in-process simulator of
    /// `--demo`: its token is used, whatever the environment says), else `--endpoints FILE`,
    /// else `--cloud`. Spot token: `SPOTINST_TOKEN`, else `--spot-token-file`, else the
    /// endpoints file's `spot_token`.
    pub fn build(
        opts: &CommonOpts,
        endpoints: Option<(Endpoints, Secret)>,
        prompt: PromptFn,
    ) -> Result<Session> {
        let given = endpoints.is_some();
        let (endpoints, file_token) = match endpoints {
            Some((e, t)) => (e, Some(t)),
            None => match &opts.endpoints {
                Some(p) => {
                    let (e, t) = Endpoints::load(p)?;
                    (e, Some(t))
                }
                None => (Endpoints::for_cloud(opts.cloud), None),
            },
        };
        let token = match (given, file_token) {
            (true, Some(t)) if !t.is_empty() => t,
            (_, file_token) => spot_token(opts, file_token)?,
        };
        Session::with_token(opts, endpoints, token, prompt)
    }

    /// Builds the clients for these endpoints with this Spot token (which may be empty).
    pub fn with_token(
        opts: &CommonOpts,
        endpoints: Endpoints,
        token: Secret,
        prompt: PromptFn,
    ) -> Result<Session> {
        let http = Http::new(endpoints.ca_pem()?.as_deref())?;
        let auth = Auth::new(
            opts.auth.unwrap_or_default(),
            &endpoints,
            &http,
            opts.tenant.clone(),
            prompt,
        )?;
        let spot = SpotClient::new(&endpoints.spot, http.clone(), token);
        Ok(Session {
            endpoints,
            http,
            auth,
            spot,
            state_dir: opts.state_dir(),
        })
    }

    /// Tenants and subscriptions the sign-in can see.
    pub async fn discover(&self) -> Result<Discovery> {
        discovery::discover(&self.auth, &self.endpoints, &self.http).await
    }

    /// The targets for these subscription ids, from discovery: an id the sign-in cannot see is
    /// an error that says so.
    pub async fn resolve_targets(
        &self,
        subscription_ids: &[String],
        all: bool,
    ) -> Result<Vec<Target>> {
        let d = self.discover().await?;
        let mut out = Vec::new();
        if all {
            out.extend(
                d.subscriptions
                    .iter()
                    .filter(|s| s.selectable())
                    .map(Target::from),
            );
        }
        for id in subscription_ids {
            match d
                .subscriptions
                .iter()
                .find(|s| s.subscription_id.eq_ignore_ascii_case(id))
            {
                Some(s) if s.selectable() => out.push(Target::from(s)),
                Some(s) => {
                    return Err(Error::Usage(format!(
                        "subscription {id} ({}) is {}: only Enabled subscriptions can be connected",
                        s.display_name, s.state
                    )));
                }
                None => {
                    let mut msg = format!(
                        "subscription {id} is unknown: the signed-in identity cannot see it in any of its {} tenant(s)",
                        d.tenants.len().max(1)
                    );
                    if !d.skipped.is_empty() {
                        let names: Vec<&str> = d.skipped.iter().map(|(t, _)| t.as_str()).collect();
                        msg.push_str(&format!(
                            " (tenants not read: {}; try --tenant)",
                            names.join(", ")
                        ));
                    }
                    return Err(Error::Other(msg));
                }
            }
        }
        out.dedup_by(|a, b| a.subscription_id == b.subscription_id);
        Ok(out)
    }
}

fn spot_token(opts: &CommonOpts, file_token: Option<Secret>) -> Result<Secret> {
    if let Ok(t) = std::env::var("SPOTINST_TOKEN") {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(Secret::new(t));
        }
    }
    if let Some(p) = &opts.spot_token_file {
        let text = std::fs::read_to_string(p).map_err(|e| {
            Error::Usage(format!(
                "cannot read the Spot token file {}: {e}",
                p.display()
            ))
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::Usage(format!(
                "the Spot token file {} is empty",
                p.display()
            )));
        }
        return Ok(Secret::new(t));
    }
    // An empty token is reported when Spot is first called.
    Ok(file_token.unwrap_or_else(|| Secret::new("")))
}

/// What the operator chose.
#[derive(Debug, Clone)]
pub struct Settings {
    /// None: the default name.
    pub app_name: Option<String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub spot_account: SpotAccountChoice,
    /// None: the embedded Spot policy.
    pub policy_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            app_name: None,
            role_name: None,
            secret_months: 12,
            spot_account: SpotAccountChoice::Auto,
            policy_file: None,
        }
    }
}

impl Settings {
    pub fn from_opts(opts: &CommonOpts) -> Result<Settings> {
        Ok(Settings {
            app_name: opts.app_name.clone().filter(|s| !s.trim().is_empty()),
            role_name: opts.role_name.clone().filter(|s| !s.trim().is_empty()),
            secret_months: opts.secret_months,
            spot_account: SpotAccountChoice::parse(opts.spot_account.as_deref())?,
            policy_file: opts.policy.clone(),
        })
    }

    /// The app registration's name in `tenant`.
    pub fn app_name_for(&self, tenant: &str) -> String {
        self.app_name
            .clone()
            .unwrap_or_else(|| default_app_name(tenant))
    }

    pub fn role_name(&self) -> String {
        self.role_name
            .clone()
            .unwrap_or_else(|| policy::DEFAULT_ROLE_NAME.to_string())
    }
}

/// `spot-connect-<first 8 characters of the tenant id>`: one app per tenant.
pub fn default_app_name(tenant: &str) -> String {
    let prefix: String = tenant.chars().take(8).collect();
    format!("spot-connect-{prefix}")
}

/// The subscription to onboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
}

impl From<&discovery::Subscription> for Target {
    fn from(s: &discovery::Subscription) -> Self {
        Target {
            tenant_id: s.tenant_id.clone(),
            subscription_id: s.subscription_id.clone(),
            subscription_name: s.display_name.clone(),
        }
    }
}

/// Read-only: what `apply` would create, reuse, update, or cannot do (blocked, with why).
pub async fn plan(session: &Session, target: &Target, settings: &Settings) -> Result<Plan> {
    engine::plan(session, target, settings).await
}

/// Onboards `target`. A failure after the plan is reported in the returned `Report`
/// (`verdict: Failed`, `error`); `Err` only when nothing could be looked up.
/// Nothing is written when the plan has a blocked item.
pub async fn apply(
    session: &Session,
    target: &Target,
    settings: &Settings,
    progress: UnboundedSender<Progress>,
) -> Result<Report> {
    let targets = std::slice::from_ref(target);
    let app_name = |tenant: &str| settings.app_name_for(tenant);
    let guard = lock::guard(session, targets, &app_name, &progress).await?;
    let mut report = engine::apply(session, target, settings, progress.clone()).await;
    // Secrets of ours no Spot account holds (a run killed before handing one over, a lost
    // removePassword reply) are removed once the subscription is connected (a blocked or
    // failed run writes nothing more).
    if matches!(&report, Ok(r) if r.verdict == model::Verdict::Connected) {
        orphans::reclaim_after_apply(session, targets, &progress).await;
    }
    if let Ok(r) = report.as_mut() {
        guard.race_report(session, &app_name, r).await;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_account_choice_parses() {
        assert_eq!(
            SpotAccountChoice::parse(None).unwrap(),
            SpotAccountChoice::Auto
        );
        assert_eq!(
            SpotAccountChoice::parse(Some("NEW")).unwrap(),
            SpotAccountChoice::New
        );
        assert_eq!(
            SpotAccountChoice::parse(Some("act-12ab34cd")).unwrap(),
            SpotAccountChoice::Existing("act-12ab34cd".into())
        );
        assert!(SpotAccountChoice::parse(Some("12ab")).is_err());
    }

    #[test]
    fn default_names() {
        assert_eq!(
            default_app_name("72f988bf-86f1-41af"),
            "spot-connect-72f988bf"
        );
        assert_eq!(Settings::default().role_name(), "Spot.io Custom Role");
    }
}
