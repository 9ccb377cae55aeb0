//! Many subscriptions in one run (`--subscription` repeated, `--all-subscriptions`).
//!
//! Per tenant, first the shared objects, once: the app registration and its service principal,
//! and one custom role whose assignable scopes are all the chosen subscriptions (one PUT, so
//! concurrent subscriptions never race on the role); the tenant's one client secret is made on
//! first need behind a `OnceCell`, so concurrent subscriptions never create two. Then, per
//! subscription, a few at a time: the role assignment and the Spot account (together), then the
//! connection (Spot validates), read back. Each subscription has its state file and its
//! `Report`; a failure in one does not stop the others, but a sign-in or unreachable-service
//! error stops everything (the rest are reported as not started).
//!
//! Concurrency adapts: it starts at `BulkOptions::concurrency`, halves (at most once a second)
//! when ARM answered 429 with a spent quota (`x-ms-ratelimit-remaining-*: 0`) since the last
//! subscription finished (the HTTP layer already waits the Retry-After), and grows back by one
//! after a window's worth of subscriptions without one.

use super::engine::add_months;
use super::model::{ErrorInfo, ObjectRef, Outcome, Progress, Report, Step, StepEvent, Verdict};
use super::policy::Policy;
use super::retry::{Backoff, create_or_find, is_propagation, is_transient, resend_on_transient};
use super::rotate::shared_secret_name;
use super::state::{SecretRecord, State};
use super::status::{
    self, account_for, find_assignment, is_fatal, is_our_role, read, same_scope, scope_of,
};
use super::{Session, Settings, SpotAccountChoice, Target};
use crate::azure::arm::{Arm, AssignmentOutcome, RoleDefinition};
use crate::azure::graph::{Application, Graph, ServicePrincipal};
use crate::error::{ApiError, Error, ErrorClass, Result};
use crate::secret::Secret;
use crate::spot::{AzureCredentials, SpotAccount};
use serde::Serialize;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, OnceCell};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkOptions {
    /// Subscriptions in flight at most (and at the start).
    pub concurrency: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions { concurrency: 8 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkReport {
    /// One per target, in the targets' order.
    pub reports: Vec<Report>,
    /// The error that stopped everything (sign-in, unreachable service), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<ErrorInfo>,
    /// Quota 429 replies (ARM's write limit) seen during the run.
    pub throttled: u64,
    /// The most subscriptions in flight at once.
    pub peak_concurrency: usize,
    pub total_ms: u64,
}

impl BulkReport {
    pub fn failed(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// Adaptive limit (AIMD on 429s).

struct Limiter {
    max: usize,
    inner: Mutex<LimiterState>,
    notify: Notify,
    http: crate::http::Http,
}

struct LimiterState {
    limit: usize,
    in_flight: usize,
    peak: usize,
    seen_throttled: u64,
    last_decrease: Option<Instant>,
    calm: usize,
}

impl Limiter {
    fn new(max: usize, http: crate::http::Http) -> Limiter {
        let max = max.max(1);
        Limiter {
            max,
            inner: Mutex::new(LimiterState {
                limit: max,
                in_flight: 0,
                peak: 0,
                seen_throttled: http.throttled_count(),
                last_decrease: None,
                calm: 0,
            }),
            notify: Notify::new(),
            http,
        }
    }

    async fn acquire(&self) {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.inner.lock().expect("limiter lock");
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    s.peak = s.peak.max(s.in_flight);
                    return;
                }
            }
            notified.await;
        }
    }

    fn release(&self) {
        {
            let mut s = self.inner.lock().expect("limiter lock");
            s.in_flight -= 1;
            let t = self.http.throttled_count();
            // At most one decrease per second: the subscriptions in flight all see the same
            // burst of 429s (Retry-After is about a second).
            if t > s.seen_throttled
                && s.last_decrease
                    .is_none_or(|d| d.elapsed() >= Duration::from_secs(1))
            {
                s.seen_throttled = t;
                s.last_decrease = Some(Instant::now());
                s.limit = (s.limit * 3 / 4).max(1);
                s.calm = 0;
                tracing::info!(limit = s.limit, "throttled: fewer subscriptions at once");
            } else if t == s.seen_throttled {
                s.calm += 1;
                if s.calm >= s.limit && s.limit < self.max {
                    s.limit += 1;
                    s.calm = 0;
                }
            }
        }
        self.notify.notify_waiters();
    }

    fn peak(&self) -> usize {
        self.inner.lock().expect("limiter lock").peak
    }
}

// ---------------------------------------------------------------------------------------------

struct Run<'a> {
    session: &'a Session,
    settings: &'a Settings,
    policy: Policy,
    tx: UnboundedSender<Progress>,
    stop: AtomicBool,
    stopped: Mutex<Option<ErrorInfo>>,
    limiter: Limiter,
}

/// Changes a subscription's state and writes it.
type SaveFn<'a> = dyn Fn(&dyn Fn(&mut State)) -> Result<()> + Sync + 'a;

/// The tenant's shared objects.
struct Shared {
    tenant: String,
    graph: Graph,
    arm: Arm,
    app: Application,
    sp: ServicePrincipal,
    role: RoleDefinition,
    accounts: Vec<SpotAccount>,
    secret: OnceCell<(SecretRecord, Secret)>,
    /// Keys Spot no longer uses after this run (the subscriptions' previous secrets).
    superseded: Mutex<Vec<String>>,
    started: OffsetDateTime,
    /// Spot account names being created (two subscriptions with one display name).
    names: Mutex<Vec<String>>,
}

/// Onboards many subscriptions (see the module doc). Never fails as a whole: each target gets
/// a `Report`; `stopped` says when a fatal error ended the run early.
pub async fn apply_many(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    progress: UnboundedSender<Progress>,
    opts: BulkOptions,
) -> BulkReport {
    let t0 = Instant::now();
    let throttled0 = session.http.throttled_count();
    let policy = match Policy::load(settings.policy_file.as_deref()) {
        Ok(p) => p,
        Err(e) => return all_failed(targets, &e, t0),
    };
    if matches!(settings.spot_account, SpotAccountChoice::Existing(_)) && targets.len() > 1 {
        let e = Error::Usage(
            "--spot-account act-… names one account: it cannot be used with several subscriptions"
                .into(),
        );
        return all_failed(targets, &e, t0);
    }
    // One run per subscription at a time (onboard::lock).
    let app_name = |tenant: &str| settings.app_name_for(tenant);
    let guard = match super::lock::guard(session, targets, &app_name, &progress).await {
        Ok(g) => g,
        Err(e) => return all_failed(targets, &e, t0),
    };
    let reclaim_tx = progress.clone();
    let run = Run {
        session,
        settings,
        policy,
        tx: progress,
        stop: AtomicBool::new(false),
        stopped: Mutex::new(None),
        limiter: Limiter::new(opts.concurrency, session.http.clone()),
    };
    let mut tenants: Vec<&str> = Vec::new();
    for t in targets {
        if !tenants.contains(&t.tenant_id.as_str()) {
            tenants.push(&t.tenant_id);
        }
    }
    let mut reports: Vec<Report> = Vec::new();
    for tenant in tenants {
        let subs: Vec<&Target> = targets.iter().filter(|t| t.tenant_id == tenant).collect();
        if run.stop.load(Ordering::SeqCst) {
            reports.extend(subs.iter().map(|t| run.not_started(t)));
            continue;
        }
        let shared = match run.tenant_phase(tenant, &subs).await {
            Ok(s) => s,
            Err(e) => {
                if is_fatal(&e) {
                    run.halt(&e);
                }
                reports.extend(subs.iter().map(|t| failed_report(t, &e, 0)));
                continue;
            }
        };
        use futures::StreamExt;
        let mut pending: futures::stream::FuturesUnordered<_> = subs
            .iter()
            .map(|t| async {
                run.limiter.acquire().await;
                let r = if run.stop.load(Ordering::SeqCst) {
                    run.not_started(t)
                } else {
                    run.one(&shared, t).await
                };
                run.limiter.release();
                r
            })
            .collect();
        let mut done = Vec::new();
        while let Some(r) = pending.next().await {
            done.push(r);
        }
        drop(pending);
        run.cleanup(&shared).await;
        reports.extend(done);
    }
    // Targets' order.
    let mut ordered = Vec::new();
    for t in targets {
        if let Some(i) = reports
            .iter()
            .position(|r| r.subscription_id == t.subscription_id)
        {
            ordered.push(reports.swap_remove(i));
        }
    }
    let connected: Vec<Target> = targets
        .iter()
        .filter(|t| {
            ordered
                .iter()
                .any(|r| r.subscription_id == t.subscription_id && r.verdict == Verdict::Connected)
        })
        .cloned()
        .collect();
    super::orphans::reclaim_after_apply(session, &connected, &reclaim_tx).await;
    for r in &mut ordered {
        guard.race_report(session, &app_name, r).await;
    }
    BulkReport {
        reports: ordered,
        stopped: run.stopped.lock().expect("lock").clone(),
        throttled: session.http.throttled_count() - throttled0,
        peak_concurrency: run.limiter.peak(),
        total_ms: t0.elapsed().as_millis() as u64,
    }
}

fn failed_report(t: &Target, e: &Error, ms: u64) -> Report {
    Report {
        tenant_id: t.tenant_id.clone(),
        subscription_id: t.subscription_id.clone(),
        subscription_name: t.subscription_name.clone(),
        verdict: Verdict::Failed,
        spot_account_id: None,
        objects: vec![],
        secret_expires: None,
        durations_ms: vec![],
        total_ms: ms,
        error: Some(ErrorInfo::from(e)),
        report_path: None,
    }
}

fn all_failed(targets: &[Target], e: &Error, t0: Instant) -> BulkReport {
    BulkReport {
        reports: targets.iter().map(|t| failed_report(t, e, 0)).collect(),
        stopped: Some(ErrorInfo::from(e)),
        throttled: 0,
        peak_concurrency: 0,
        total_ms: t0.elapsed().as_millis() as u64,
    }
}

/// Calls `f` again while Azure propagates a recent write, and on transient errors a few times.
async fn propagate<T, F, Fut>(mut f: F, mut waiting: impl FnMut(u32, Duration)) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let backoff = Backoff::default();
    let start = Instant::now();
    let (mut attempt, mut transient) = (0u32, 0u64);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && transient < 5 => {
                transient += 1;
                tokio::time::sleep(Duration::from_millis(300 * transient)).await;
            }
            Err(e) if is_propagation(&e) => {
                attempt += 1;
                let Some(wait) = backoff.wait(attempt, start.elapsed()) else {
                    return Err(e);
                };
                waiting(attempt, wait);
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Run<'_> {
    fn emit(&self, sub: Option<&str>, step: Step, event: StepEvent) {
        let _ = self.tx.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    }

    fn waiting(&self, sub: Option<&str>, step: Step) -> impl FnMut(u32, Duration) + '_ {
        let sub = sub.map(str::to_string);
        move |attempt, next_in| {
            self.emit(
                sub.as_deref(),
                step,
                StepEvent::Waiting {
                    reason: "waiting for Azure to propagate".into(),
                    attempt,
                    next_in,
                },
            )
        }
    }

    fn halt(&self, e: &Error) {
        self.stop.store(true, Ordering::SeqCst);
        self.stopped
            .lock()
            .expect("lock")
            .get_or_insert_with(|| ErrorInfo::from(e));
    }

    fn not_started(&self, t: &Target) -> Report {
        let why = self
            .stopped
            .lock()
            .expect("lock")
            .as_ref()
            .map(|e| e.summary.clone())
            .unwrap_or_default();
        failed_report(t, &Error::Other(format!("not started: {why}")), 0)
    }

    async fn tenant_phase(&self, tenant: &str, subs: &[&Target]) -> Result<Shared> {
        let graph = status::graph(self.session, tenant);
        let arm = status::arm(self.session, tenant);
        let scopes: Vec<String> = subs.iter().map(|t| scope_of(&t.subscription_id)).collect();
        let (app, role, accounts) = tokio::join!(
            self.app_step(tenant, &graph),
            self.role_step(tenant, &arm, &scopes, &subs[0].subscription_id),
            read(|| self.session.spot.list_accounts())
        );
        let (app, sp) = app?;
        Ok(Shared {
            tenant: tenant.to_string(),
            graph,
            arm,
            app,
            sp,
            role: role?,
            accounts: accounts?,
            secret: OnceCell::new(),
            superseded: Mutex::new(vec![]),
            started: OffsetDateTime::now_utc() - time::Duration::minutes(1),
            names: Mutex::new(vec![]),
        })
    }

    async fn app_step(
        &self,
        tenant: &str,
        graph: &Graph,
    ) -> Result<(Application, ServicePrincipal)> {
        let name = self.settings.app_name_for(tenant);
        self.emit(
            None,
            Step::AppRegistration,
            StepEvent::Started {
                detail: format!("app registration {name} for tenant {tenant}"),
            },
        );
        let r = async {
            let (found, foreign) = status::find_app(self.session, graph, tenant, &name).await?;
            let (app, mut outcome) = match found {
                Some(a) => (a, Outcome::Reused),
                None if foreign > 0 => {
                    return Err(Error::Other(format!(
                        "{foreign} app registration(s) named {name} exist but are not managed by spot-connect (no \"spot-connect\" tag): they are never taken over; choose another name with --app-name"
                    )));
                }
                None => {
                    let name = &name;
                    let app = create_or_find(
                        || graph.create_application(name),
                        || async move {
                            Ok(read(|| graph.find_applications(name))
                                .await?
                                .into_iter()
                                .find(Application::is_ours))
                        },
                    )
                    .await?;
                    (app, Outcome::Created)
                }
            };
            let app_id = app.app_id.clone();
            let sp = match read(|| graph.get_service_principal_by_app_id(&app_id)).await? {
                Some(sp) => sp,
                None => {
                    outcome = Outcome::Created;
                    let r = propagate(
                        || async {
                            match graph.create_service_principal(&app_id).await {
                                Err(e) if is_transient(&e) => {
                                    match read(|| graph.get_service_principal_by_app_id(&app_id))
                                        .await?
                                    {
                                        Some(sp) => Ok(sp),
                                        None => Err(e),
                                    }
                                }
                                Err(Error::Api(e))
                                    if e.class() == ErrorClass::NotFound
                                        || e.has_code("Request_ResourceNotFound") =>
                                {
                                    Err(Error::Api(ApiError {
                                        code: "NoBackingApplicationObject".into(),
                                        ..e
                                    }))
                                }
                                r => r,
                            }
                        },
                        self.waiting(None, Step::AppRegistration),
                    )
                    .await;
                    match r {
                        Ok(sp) => sp,
                        Err(Error::Api(e)) if e.class() == ErrorClass::Conflict => read(|| {
                            graph.get_service_principal_by_app_id(&app_id)
                        })
                        .await?
                        .ok_or(Error::Api(e))?,
                        Err(e) => return Err(e),
                    }
                }
            };
            Ok((app, sp, outcome))
        }
        .await;
        match r {
            Ok((app, sp, outcome)) => {
                self.emit(
                    None,
                    Step::AppRegistration,
                    StepEvent::Finished {
                        outcome,
                        id: Some(app.app_id.clone()),
                        detail: format!(
                            "{} (client id {}, service principal {})",
                            app.display_name, app.app_id, sp.id
                        ),
                    },
                );
                Ok((app, sp))
            }
            Err(e) => {
                self.emit(
                    None,
                    Step::AppRegistration,
                    StepEvent::Failed {
                        error: ErrorInfo::from(&e),
                    },
                );
                Err(e)
            }
        }
    }

    /// One role for the tenant, assignable at every chosen subscription: one PUT at most.
    async fn role_step(
        &self,
        tenant: &str,
        arm: &Arm,
        scopes: &[String],
        first_sub: &str,
    ) -> Result<RoleDefinition> {
        let name = self.settings.role_name();
        self.emit(
            None,
            Step::CustomRole,
            StepEvent::Started {
                detail: format!(
                    "custom role {name}, assignable at {} subscription(s)",
                    scopes.len()
                ),
            },
        );
        let r = async {
            let mut found = status::find_role(self.session, arm, tenant, &name, scopes).await?;
            let mut tries = 0;
            loop {
                tries += 1;
                let (guid, at, mut wanted, outcome) = match &found {
                    Some(r) if !is_our_role(r) => {
                        return Err(Error::Other(format!(
                            "a role named {name} exists ({}) but was not made by spot-connect (no marker in its description): it is never changed; choose another name with --role-name",
                            r.id
                        )));
                    }
                    Some(r) => {
                        let missing: Vec<&String> = scopes
                            .iter()
                            .filter(|s| {
                                !r.properties
                                    .assignable_scopes
                                    .iter()
                                    .any(|x| same_scope(x, s))
                            })
                            .collect();
                        let drift =
                            super::policy::drift(&self.policy.actions, &r.properties.permissions);
                        if missing.is_empty() && drift.missing.is_empty() {
                            return Ok((r.clone(), Outcome::Reused));
                        }
                        let mut wanted = r.properties.assignable_scopes.clone();
                        wanted.extend(missing.into_iter().cloned());
                        let at = r
                            .properties
                            .assignable_scopes
                            .first()
                            .cloned()
                            .unwrap_or_else(|| scopes[0].clone());
                        (r.name.clone(), at, wanted, Outcome::Updated)
                    }
                    None => (
                        super::policy::role_definition_guid(tenant, &name),
                        scopes[0].clone(),
                        vec![],
                        Outcome::Created,
                    ),
                };
                if wanted.is_empty() {
                    wanted = scopes.to_vec();
                }
                let props = self.policy.role_properties(&name, first_sub, wanted);
                match arm.put_role_definition(&at, &guid, &props).await {
                    Ok(r) => return Ok((r, outcome)),
                    Err(Error::Api(e))
                        if e.has_code("RoleDefinitionWithSameNameExists") && tries < 3 =>
                    {
                        found = status::find_role(self.session, arm, tenant, &name, scopes).await?;
                        if found.is_none() {
                            return Err(Error::Api(e));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        .await;
        match r {
            Ok((role, outcome)) => {
                self.emit(
                    None,
                    Step::CustomRole,
                    StepEvent::Finished {
                        outcome,
                        id: Some(role.id.clone()),
                        detail: format!(
                            "{} assignable at {} subscription(s)",
                            role.properties.role_name,
                            role.properties.assignable_scopes.len()
                        ),
                    },
                );
                Ok(role)
            }
            Err(e) => {
                self.emit(
                    None,
                    Step::CustomRole,
                    StepEvent::Failed {
                        error: ErrorInfo::from(&e),
                    },
                );
                Err(e)
            }
        }
    }

    /// The tenant's one new secret, made on first need.
    async fn secret(&self, shared: &Shared) -> Result<(SecretRecord, Secret)> {
        shared
            .secret
            .get_or_try_init(|| async {
                self.emit(
                    None,
                    Step::ClientSecret,
                    StepEvent::Started {
                        detail: format!("one client secret for tenant {}", shared.tenant),
                    },
                );
                let end = add_months(OffsetDateTime::now_utc(), self.settings.secret_months);
                let name = shared_secret_name(&shared.tenant);
                let np = match resend_on_transient(|| {
                    shared.graph.add_password(&shared.app.id, &name, end)
                })
                .await
                {
                    Err(e) => {
                        self.emit(
                            None,
                            Step::ClientSecret,
                            StepEvent::Failed {
                                error: ErrorInfo::from(&e),
                            },
                        );
                        return Err(e);
                    }
                    Ok(np) => np,
                };
                let rec = SecretRecord {
                    key_id: np.credential.key_id.clone(),
                    end_date_time: np.credential.end_date_time.unwrap_or(end),
                    handed_to_spot: false,
                };
                self.emit(
                    None,
                    Step::ClientSecret,
                    StepEvent::Finished {
                        outcome: Outcome::Created,
                        id: Some(rec.key_id.clone()),
                        detail: format!("expires {}", rec.end_date_time.date()),
                    },
                );
                Ok((rec, np.secret))
            })
            .await
            .cloned()
    }

    async fn one(&self, shared: &Shared, t: &Target) -> Report {
        let t0 = Instant::now();
        let sub = t.subscription_id.as_str();
        let mut objects = vec![
            ObjectRef {
                step: Step::AppRegistration,
                object: "app registration".into(),
                name: shared.app.display_name.clone(),
                id: shared.app.app_id.clone(),
                outcome: Outcome::Reused,
            },
            ObjectRef {
                step: Step::CustomRole,
                object: "custom role".into(),
                name: shared.role.properties.role_name.clone(),
                id: shared.role.id.clone(),
                outcome: Outcome::Reused,
            },
        ];
        let mut durations = Vec::new();
        let r = self
            .one_inner(shared, t, &mut objects, &mut durations)
            .await;
        let ms = t0.elapsed().as_millis() as u64;
        match r {
            Ok((account, expires)) => {
                self.emit(
                    Some(sub),
                    Step::Done,
                    StepEvent::Finished {
                        outcome: Outcome::Created,
                        id: Some(account.clone()),
                        detail: format!("{sub} is connected to Spot"),
                    },
                );
                Report {
                    tenant_id: t.tenant_id.clone(),
                    subscription_id: sub.to_string(),
                    subscription_name: t.subscription_name.clone(),
                    verdict: Verdict::Connected,
                    spot_account_id: Some(account),
                    objects,
                    secret_expires: Some(expires),
                    durations_ms: durations,
                    total_ms: ms,
                    error: None,
                    report_path: None,
                }
            }
            Err((step, e)) => {
                if is_fatal(&e) {
                    self.halt(&e);
                }
                let mut info = ErrorInfo::from(&e);
                info.summary = format!("{}: {}", step.label(), info.summary);
                self.emit(
                    Some(sub),
                    step,
                    StepEvent::Failed {
                        error: info.clone(),
                    },
                );
                let mut r = failed_report(t, &e, ms);
                r.error = Some(info);
                r.objects = objects;
                r.durations_ms = durations;
                r
            }
        }
    }

    async fn one_inner(
        &self,
        shared: &Shared,
        t: &Target,
        objects: &mut Vec<ObjectRef>,
        durations: &mut Vec<(Step, u64)>,
    ) -> std::result::Result<(String, OffsetDateTime), (Step, Error)> {
        let sub = t.subscription_id.as_str();
        let dir = &self.session.state_dir;
        let state =
            Mutex::new(State::load(dir, &t.tenant_id, sub).map_err(|e| (Step::Subscription, e))?);
        // Each state write is an fsync: ids that only repeat what a lookup finds again are
        // kept in memory and written with the next write that matters.
        let save = |f: &dyn Fn(&mut State)| -> Result<()> {
            let mut s = state.lock().expect("state lock");
            f(&mut s);
            s.save(dir)
        };
        let set = |f: &dyn Fn(&mut State)| -> Result<()> {
            f(&mut state.lock().expect("state lock"));
            Ok(())
        };
        set(&|s| {
            s.app_object_id = Some(shared.app.id.clone());
            s.app_id = Some(shared.app.app_id.clone());
            s.app_name = Some(shared.app.display_name.clone());
            s.sp_object_id = Some(shared.sp.id.clone());
            s.role_definition_id = Some(shared.role.id.clone());
            s.role_name = Some(shared.role.properties.role_name.clone());
        })
        .map_err(|e| (Step::Subscription, e))?;

        // The assignment and the Spot account, together.
        let assign = async {
            let t1 = Instant::now();
            self.emit(
                Some(sub),
                Step::RoleAssignment,
                StepEvent::Started {
                    detail: format!(
                        "assigning {} at {}",
                        shared.role.properties.role_name,
                        scope_of(sub)
                    ),
                },
            );
            let r = self.assignment(shared, sub).await;
            (r, t1.elapsed().as_millis() as u64)
        };
        let account = async {
            let t1 = Instant::now();
            let recorded = state.lock().expect("lock").spot_account_id.clone();
            let pending = state.lock().expect("lock").spot_account_pending.clone();
            let r = self
                .account(
                    shared,
                    t,
                    recorded.as_deref(),
                    pending.as_deref(),
                    &save,
                    &set,
                )
                .await;
            (r, t1.elapsed().as_millis() as u64)
        };
        let ((assigned, ms_a), (acct, ms_s)) = tokio::join!(assign, account);
        durations.push((Step::RoleAssignment, ms_a));
        durations.push((Step::SpotAccount, ms_s));
        let (acct, acct_outcome) = acct.map_err(|e| (Step::SpotAccount, e))?;
        objects.push(ObjectRef {
            step: Step::SpotAccount,
            object: "Spot account".into(),
            name: acct.name.clone(),
            id: acct.account_id.clone(),
            outcome: acct_outcome,
        });
        self.emit(
            Some(sub),
            Step::SpotAccount,
            StepEvent::Finished {
                outcome: acct_outcome,
                id: Some(acct.account_id.clone()),
                detail: format!("{} ({})", acct.name, acct.account_id),
            },
        );
        let (asg_id, asg_outcome) = assigned.map_err(|e| (Step::RoleAssignment, e))?;
        set(&|s| s.role_assignment_id = Some(asg_id.clone()))
            .map_err(|e| (Step::RoleAssignment, e))?;
        objects.push(ObjectRef {
            step: Step::RoleAssignment,
            object: "role assignment".into(),
            name: shared.role.properties.role_name.clone(),
            id: asg_id.clone(),
            outcome: asg_outcome,
        });
        self.emit(
            Some(sub),
            Step::RoleAssignment,
            StepEvent::Finished {
                outcome: asg_outcome,
                id: Some(asg_id),
                detail: format!("principalType ServicePrincipal at {}", scope_of(sub)),
            },
        );

        // The connection.
        let t1 = Instant::now();
        let spot = &self.session.spot;
        let id = acct.account_id.clone();
        let creds = read(|| spot.get_azure_credentials(&id))
            .await
            .map_err(|e| (Step::ConnectSpot, e))?;
        let holds_ours = creds.as_ref().is_some_and(|c| {
            c.client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&shared.app.app_id))
                && c.subscription_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(sub))
        });
        let recorded = state.lock().expect("lock").secret.clone();
        let now = OffsetDateTime::now_utc();
        let live = recorded.filter(|r| {
            r.handed_to_spot
                && r.end_date_time - now >= super::status::EXPIRY_WARNING
                && (shared
                    .app
                    .password_credentials
                    .iter()
                    .any(|p| p.key_id.eq_ignore_ascii_case(&r.key_id))
                    || shared
                        .secret
                        .get()
                        .is_some_and(|(n, _)| n.key_id == r.key_id))
        });
        if holds_ours && let Some(rec) = live {
            save(&|_| {}).map_err(|e| (Step::ConnectSpot, e))?;
            objects.push(ObjectRef {
                step: Step::ConnectSpot,
                object: "Spot connection".into(),
                name: acct.name.clone(),
                id: acct.account_id.clone(),
                outcome: Outcome::Reused,
            });
            durations.push((Step::ConnectSpot, t1.elapsed().as_millis() as u64));
            return Ok((acct.account_id, rec.end_date_time));
        }
        self.emit(
            Some(sub),
            Step::ConnectSpot,
            StepEvent::Started {
                detail: format!("connecting {} to Spot", acct.account_id),
            },
        );
        let (rec, value) = self
            .secret(shared)
            .await
            .map_err(|e| (Step::ClientSecret, e))?;
        let c = AzureCredentials {
            client_id: shared.app.app_id.clone(),
            client_secret: value,
            tenant_id: t.tenant_id.clone(),
            subscription_id: sub.to_string(),
            expiration_date: rec.end_date_time,
        };
        propagate(
            || spot.set_azure_credentials(&acct.account_id, &c),
            self.waiting(Some(sub), Step::ConnectSpot),
        )
        .await
        .map_err(|e| (Step::ConnectSpot, e))?;
        let old = state.lock().expect("lock").secret.clone();
        save(&|s| {
            s.spot_account_id = Some(acct.account_id.clone());
            s.secret = Some(SecretRecord {
                handed_to_spot: true,
                ..rec.clone()
            });
        })
        .map_err(|e| (Step::ConnectSpot, e))?;
        if let Some(old) = old.filter(|o| o.key_id != rec.key_id) {
            shared.superseded.lock().expect("lock").push(old.key_id);
        }
        let back = read(|| spot.get_azure_credentials(&acct.account_id))
            .await
            .map_err(|e| (Step::ConnectSpot, e))?;
        if !back.as_ref().is_some_and(|c| {
            c.client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&shared.app.app_id))
                && c.subscription_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(sub))
        }) {
            return Err((
                Step::ConnectSpot,
                Error::Other(format!(
                    "Spot accepted the credentials but account {} reads back something else",
                    acct.account_id
                )),
            ));
        }
        durations.push((Step::ConnectSpot, t1.elapsed().as_millis() as u64));
        objects.push(ObjectRef {
            step: Step::ConnectSpot,
            object: "Spot connection".into(),
            name: acct.name.clone(),
            id: acct.account_id.clone(),
            outcome: Outcome::Created,
        });
        self.emit(
            Some(sub),
            Step::ConnectSpot,
            StepEvent::Finished {
                outcome: Outcome::Created,
                id: Some(acct.account_id.clone()),
                detail: format!(
                    "{} connected; secret expires {}",
                    acct.account_id,
                    rec.end_date_time.date()
                ),
            },
        );
        Ok((acct.account_id, rec.end_date_time))
    }

    async fn assignment(&self, shared: &Shared, sub: &str) -> Result<(String, Outcome)> {
        let arm = &shared.arm;
        if let Some(a) = find_assignment(arm, sub, &shared.sp.id, &shared.role).await? {
            return Ok((a.id, Outcome::Reused));
        }
        let scope = scope_of(sub);
        // A deterministic name (as the engine's): a PUT sent twice is the same assignment.
        let guid = super::policy::role_assignment_name(sub, &shared.sp.id, &shared.role.id);
        let out = propagate(
            || arm.create_role_assignment(&scope, &guid, &shared.role.id, &shared.sp.id),
            self.waiting(Some(sub), Step::RoleAssignment),
        )
        .await?;
        Ok(match out {
            AssignmentOutcome::Created(a) => (a.id, Outcome::Created),
            AssignmentOutcome::AlreadyExists => {
                match find_assignment(arm, sub, &shared.sp.id, &shared.role).await? {
                    Some(a) => (a.id, Outcome::Reused),
                    None => (
                        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"),
                        Outcome::Reused,
                    ),
                }
            }
        })
    }

    async fn account(
        &self,
        shared: &Shared,
        t: &Target,
        recorded: Option<&str>,
        pending: Option<&str>,
        save: &SaveFn<'_>,
        set: &SaveFn<'_>,
    ) -> Result<(SpotAccount, Outcome)> {
        let sub = t.subscription_id.as_str();
        if let Some(a) = account_for(&shared.accounts, sub, recorded) {
            set(&|s| s.spot_account_id = Some(a.account_id.clone()))?;
            return Ok((a.clone(), Outcome::Reused));
        }
        if let Some(a) = pending.and_then(|n| {
            shared
                .accounts
                .iter()
                .find(|a| a.name == n && a.provider_external_id.is_none())
        }) {
            save(&|s| {
                s.spot_account_id = Some(a.account_id.clone());
                s.spot_account_pending = None;
            })?;
            return Ok((a.clone(), Outcome::Reused));
        }
        let name = {
            let base = account_name(t);
            let mut names = shared.names.lock().expect("lock");
            let mut n = base.clone();
            let mut i = 2;
            while names.contains(&n) {
                n = format!("{base} ({i})");
                i += 1;
            }
            names.push(n.clone());
            n
        };
        self.emit(
            Some(sub),
            Step::SpotAccount,
            StepEvent::Started {
                detail: format!("creating Spot account {name}"),
            },
        );
        save(&|s| s.spot_account_pending = Some(name.clone()))?;
        let spot = &self.session.spot;
        let name = &name;
        let a = create_or_find(
            || spot.create_account(name),
            || async move {
                Ok(read(|| spot.list_accounts())
                    .await?
                    .into_iter()
                    .find(|a| a.name == *name && a.provider_external_id.is_none()))
            },
        )
        .await?;
        save(&|s| {
            s.spot_account_id = Some(a.account_id.clone());
            s.spot_account_pending = None;
        })?;
        Ok((a, Outcome::Created))
    }

    /// Secrets no longer in use: the subscriptions' previous ones, and any extra shared secret
    /// made by this run (a lost reply to addPassword), unless a state file still records them.
    async fn cleanup(&self, shared: &Shared) {
        let Some((current, _)) = shared.secret.get() else {
            return;
        };
        let in_use: Vec<String> = status::tenant_states(self.session, &shared.tenant)
            .into_iter()
            .filter_map(|s| s.secret.map(|r| r.key_id))
            .collect();
        let mut drop_keys: Vec<String> = shared.superseded.lock().expect("lock").clone();
        let name = shared_secret_name(&shared.tenant);
        if let Ok(Some(app)) = read(|| shared.graph.get_application(&shared.app.id)).await {
            for p in &app.password_credentials {
                if p.display_name.as_deref() == Some(name.as_str())
                    && p.start_date_time.is_some_and(|s| s >= shared.started)
                {
                    drop_keys.push(p.key_id.clone());
                }
            }
        }
        drop_keys.sort();
        drop_keys.dedup();
        for k in drop_keys
            .into_iter()
            .filter(|k| *k != current.key_id && !in_use.contains(k))
        {
            match read(|| shared.graph.remove_password(&shared.app.id, &k)).await {
                Ok(()) => tracing::info!(key_id = %k, "removed a client secret no longer in use"),
                Err(e) => {
                    tracing::warn!(key_id = %k, error = %e, "could not remove a client secret")
                }
            }
        }
    }
}

/// A new Spot account is named after the subscription (Spot wants a letter in the name).
fn account_name(t: &Target) -> String {
    let n = t.subscription_name.trim();
    let n = if n.is_empty() {
        t.subscription_id.as_str()
    } else {
        n
    };
    if n.chars().any(|c| c.is_ascii_alphabetic()) {
        n.to_string()
    } else {
        format!("azure-{n}")
    }
}
