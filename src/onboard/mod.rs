//! The onboarding engine: plan, apply, checkpoint, retry. Knows nothing of the terminal.
//!
//! - [`Session::build`] makes the clients from the command-line options (or the wizard's).
//! - [`plan`] looks everything up for one subscription or many (grouped by tenant) and says, per
//!   object, create / reuse / update / blocked.
//! - [`apply`] carries out exactly that plan: nothing when it has a blocked item, else in
//!   dependency order, independent calls concurrently, checkpointing ids to the state files
//!   after every write, and reports progress over the channel.

mod engine;
pub mod fleet;
pub mod groups;
mod lifetime;
pub mod lock;
pub mod lookup;
pub mod model;
pub mod naming;
pub mod orphans;
pub mod pace;
pub mod policy;
pub mod reconcile;
pub mod remove;
pub mod retry;
pub mod rotate;
pub mod secrets;
pub mod state;
pub mod status;

use crate::azure::auth::AuthMethod;
use crate::azure::auth::{Auth, PromptFn};
use crate::azure::discovery::{self, Discovery};
use crate::endpoints::Cloud;
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::Secret;
use crate::spot::SpotClient;
pub use engine::{Plan, PlanView};
use model::{Progress, RunReport};
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

/// What a session is built from. The front ends make it from their options (`cli::CommonOpts`
/// converts with `From`); the engine knows nothing of them.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub auth: AuthMethod,
    /// `--tenant`: sign in to this tenant only.
    pub tenant: Option<String>,
    /// `--redirect-port`: the loopback port of the browser sign-in (default: a free one).
    pub redirect_port: Option<u16>,
    /// `--endpoints FILE` (the file `spot-connect sim` writes).
    pub endpoints_file: Option<PathBuf>,
    pub cloud: Cloud,
    pub spot_token_file: Option<PathBuf>,
    pub state_dir: PathBuf,
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
        opts: impl Into<SessionOptions>,
        endpoints: Option<(Endpoints, Secret)>,
        prompt: PromptFn,
    ) -> Result<Session> {
        let opts = opts.into();
        let given = endpoints.is_some();
        let (endpoints, file_token) = match endpoints {
            Some((e, t)) => (e, Some(t)),
            None => match &opts.endpoints_file {
                Some(p) => {
                    let (e, t) = Endpoints::load(p)?;
                    (e, Some(t))
                }
                None => (Endpoints::for_cloud(opts.cloud), None),
            },
        };
        let token = match (given, file_token) {
            (true, Some(t)) if !t.is_empty() => t,
            (_, file_token) => spot_token(&opts, file_token)?,
        };
        Session::with_token(opts, endpoints, token, prompt)
    }

    /// Builds the clients for these endpoints with this Spot token (which may be empty).
    pub fn with_token(
        opts: impl Into<SessionOptions>,
        endpoints: Endpoints,
        token: Secret,
        prompt: PromptFn,
    ) -> Result<Session> {
        let opts = opts.into();
        let http = Http::new(endpoints.ca_pem()?.as_deref())?;
        let auth = Auth::with_redirect_port(
            opts.auth,
            &endpoints,
            &http,
            opts.tenant.clone(),
            opts.redirect_port,
            prompt,
        )?;
        let spot = SpotClient::new(&endpoints.spot, http.clone(), token);
        Ok(Session {
            endpoints,
            http,
            auth,
            spot,
            state_dir: opts.state_dir,
        })
    }

    /// Tenants and subscriptions the sign-in can see.
    pub async fn discover(&self) -> Result<Discovery> {
        discovery::discover(&self.auth, &self.endpoints, &self.http).await
    }

    /// The targets for these subscription ids, from discovery: an id the sign-in cannot see is
    /// an error that says so. With `all`, every enabled subscription: a tenant whose
    /// subscriptions could not all be listed (refused, failed, more pages than `http::Pages`
    /// reads) is `Error::Incomplete`, naming it, unless `skip_unreachable`: then it is left
    /// out and listed in [`Resolved::unreachable`] for the run to say so.
    pub async fn resolve_targets(
        &self,
        subscription_ids: &[String],
        all: bool,
        skip_unreachable: bool,
    ) -> Result<Resolved> {
        let d = self.discover().await?;
        resolve(&d, subscription_ids, all, skip_unreachable)
    }
}

/// Whether discovery's `s` is one of the targets [`resolve`] will pick (a subscription it
/// refuses is not).
fn wanted(s: &discovery::Subscription, subscription_ids: &[String], all: bool) -> bool {
    s.selectable()
        && (all
            || subscription_ids
                .iter()
                .any(|id| s.subscription_id.eq_ignore_ascii_case(id)))
}

/// [`Session::resolve_targets`] of a finished discovery.
fn resolve(
    d: &Discovery,
    subscription_ids: &[String],
    all: bool,
    skip_unreachable: bool,
) -> Result<Resolved> {
    {
        let unreachable: Vec<crate::error::Unseen> = d
            .skipped
            .iter()
            .map(|(t, why)| crate::error::Unseen {
                what: match d.tenant(t) {
                    Some(x) if x.display_name != *t => format!("tenant {} ({t})", x.display_name),
                    _ => format!("tenant {t}"),
                },
                reason: why.clone(),
            })
            .collect();
        if all && !unreachable.is_empty() && !skip_unreachable {
            return Err(Error::Incomplete(unreachable));
        }
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
                None if !unreachable.is_empty() => {
                    // It may be in a tenant that could not be read.
                    let mut u = unreachable.clone();
                    u.insert(
                        0,
                        crate::error::Unseen {
                            what: format!("subscription {id}"),
                            reason: "not in any tenant that could be read".into(),
                        },
                    );
                    return Err(Error::Incomplete(u));
                }
                None => {
                    let msg = format!(
                        "subscription {id} is unknown: the signed-in identity cannot see it in any of its {} tenant(s)",
                        d.tenants.len().max(1)
                    );
                    return Err(Error::NotFound(msg));
                }
            }
        }
        out.dedup_by(|a, b| a.subscription_id == b.subscription_id);
        Ok(Resolved {
            targets: out,
            unreachable: if all { unreachable } else { vec![] },
        })
    }
}

/// [`Session::resolve_targets`] then [`plan`] of its targets, as one pipeline: a subscription's
/// own look-ups start as soon as the page of `GET /subscriptions` that lists it has arrived,
/// while later pages are still coming. The result is exactly theirs (the same targets in the
/// same order, the same plan). Err: the resolution's error, as `resolve_targets` returns it;
/// else the plan's result (None: no target to plan). Nothing is written either way.
pub async fn plan_listed(
    session: &Session,
    subscription_ids: &[String],
    all: bool,
    skip_unreachable: bool,
    settings: &Settings,
) -> Result<(Resolved, Option<Result<Plan>>)> {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Target>();
    let resolved = async move {
        let tx = tx;
        let on = |s: &discovery::Subscription| {
            if wanted(s, subscription_ids, all) {
                let _ = tx.unbounded_send(Target::from(s));
            }
        };
        let d =
            discovery::discover_each(&session.auth, &session.endpoints, &session.http, &on).await?;
        drop(tx);
        resolve(&d, subscription_ids, all, skip_unreachable)
    };
    engine::plan_listed(session, settings, rx, resolved, |r: &Resolved| &r.targets).await
}

/// The subscriptions a run is for, and what it could not see (skipped with
/// `--skip-unreachable`: the run says so).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub targets: Vec<Target>,
    pub unreachable: Vec<crate::error::Unseen>,
}

fn spot_token(opts: &SessionOptions, file_token: Option<Secret>) -> Result<Secret> {
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
    /// The app registration's name in a given tenant (tenant id -> name): wins over
    /// `app_name` there (the wizard's one name per tenant).
    pub app_names: std::collections::BTreeMap<String, String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub spot_account: SpotAccountChoice,
    /// None: the embedded Spot policy.
    pub policy_file: Option<PathBuf>,
    /// `--take-over`: replace the credentials of a Spot connection made through an app that is
    /// not ours with ours (issue 16 §3). Without it such a connection is kept as it is.
    pub take_over: bool,
    /// `--management-group`: the custom role is assignable at the group and assigned there once
    /// (issue 19); None: at each subscription.
    pub management_group: Option<fleet::MgScope>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            app_name: None,
            app_names: Default::default(),
            role_name: None,
            secret_months: 12,
            spot_account: SpotAccountChoice::Auto,
            policy_file: None,
            take_over: false,
            management_group: None,
        }
    }
}

impl Settings {
    /// The app registration's name in `tenant`.
    pub fn app_name_for(&self, tenant: &str) -> String {
        if let Some(n) = self.app_names.get(tenant) {
            return n.clone();
        }
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// Read-only: what `apply` would create, reuse, update, or cannot do (blocked, with why), for
/// every object of every target: the tenant's shared objects once, then each subscription's.
/// `Err` when nothing could be looked up (or the input is wrong).
pub async fn plan(session: &Session, targets: &[Target], settings: &Settings) -> Result<Plan> {
    engine::plan(session, targets, settings).await
}

/// [`plan`], where the secret Spot holds for a subscription that ends by `renew_before` is
/// replaced by the tenant's one new secret of the run (`reconcile`'s rotation, so that a pass
/// that connects new subscriptions and rotates makes one secret per app).
pub async fn plan_renewing(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    renew_before: time::OffsetDateTime,
) -> Result<Plan> {
    engine::plan_renewing(session, targets, settings, Some(renew_before)).await
}

/// Carries out `plan` (made by [`plan`]): nothing is written when it has a blocked item. Each
/// subscription's outcome is in the returned report (`verdict: Failed`, `error`); a sign-in or
/// unreachable-service error stops the run (`stopped`), and so does another run holding one of
/// the plan's subscriptions (`onboard::lock`). After the run, a Spot account made for the same
/// subscription by a run with another state dir at the same moment is settled (the run that
/// gives way deletes its own and reports the race as its failure), then our app's secrets no
/// Spot account holds are removed (`onboard::orphans`).
pub async fn apply(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
) -> RunReport {
    let t0 = std::time::Instant::now();
    let facts = plan.facts.clone();
    // One run per subscription at a time, and the tenants' locks for their shared objects,
    // before anything is written.
    let guard = match lock::guard(session, &plan.subscriptions, &progress).await {
        Ok(g) => g,
        Err(e) => return stopped_before_writing(plan, &e, t0),
    };
    // A run that held the lock while this plan was made (or confirmed) may have written since:
    // the plan is looked up again, and carried out only if it writes nothing the confirmed one
    // did not list.
    let fresh;
    let plan = if facts.states_changed(&session.state_dir) {
        fresh = match engine::plan_renewing(
            session,
            &plan.subscriptions,
            facts.settings(),
            facts.renew_before(),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => return stopped_before_writing(plan, &e, t0),
        };
        let listed = |i: &model::PlanItem| {
            plan.writes().any(|w| {
                (w.step, &w.object, &w.name, &w.subscription_id)
                    == (i.step, &i.object, &i.name, &i.subscription_id)
            })
        };
        if fresh.blocked().next().is_none() && fresh.writes().all(listed) {
            &fresh
        } else {
            let e = Error::Conflict(
                "another spot-connect run changed these subscriptions after this plan was made: nothing was changed".into(),
            );
            return stopped_before_writing(plan, &e, t0);
        }
    } else {
        plan
    };
    let (mut report, after) = engine::apply_listing(session, plan, progress.clone()).await;
    // First, a run elsewhere that made a Spot account for the same subscription at the same
    // moment (`lock::RunGuard::race_reports`): the one that gives way deletes its own and fails.
    // The apps the orphan audit reads, alongside (off the run's critical path), unless the
    // engine read them already with the connection's read-back.
    let mut seen = lock::Seen::default();
    let read_apps = async {
        match after.app {
            Some(app) => vec![(app.0, vec![app.1])],
            None => orphans::prefetch_apps(session, &plan.subscriptions).await,
        }
    };
    let (apps, ()) = tokio::join!(
        read_apps,
        guard.race_reports(session, &mut report.reports, &mut seen, after.accounts)
    );
    let changed = std::mem::take(&mut seen.changed);
    seen.apps
        .extend(apps.into_iter().filter(|(t, _)| !changed.contains(t)));
    // Secrets of ours no Spot account holds (a run killed before handing one over, a lost
    // addPassword or removePassword reply, a rotated-out secret) are removed for the
    // subscriptions this run connected (a blocked or failed one writes nothing more).
    let connected: Vec<Target> = plan
        .subscriptions
        .iter()
        .filter(|t| {
            report.reports.iter().any(|r| {
                r.subscription_id == t.subscription_id
                    && r.verdict == model::Verdict::Connected
                    && r.kept.is_none()
            })
        })
        .cloned()
        .collect();
    orphans::reclaim_after_apply(session, &connected, &progress, seen).await;
    report
}

/// The report of a run that stopped before its first write.
fn stopped_before_writing(plan: &Plan, e: &Error, t0: std::time::Instant) -> RunReport {
    let error = model::ErrorInfo::from(e);
    RunReport {
        reports: plan
            .subscriptions
            .iter()
            .map(|t| engine::failed_report(t, error.clone()))
            .collect(),
        stopped: Some(error),
        throttled: 0,
        peak_concurrency: 0,
        total_ms: t0.elapsed().as_millis() as u64,
    }
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
