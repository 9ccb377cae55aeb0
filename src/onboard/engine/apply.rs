//! Apply: writes exactly the plan, in dependency order, independent calls concurrent
//! (`TenantRun`: one tenant's run and its steps).

use super::*;

/// One tenant's run.
pub(super) struct TenantRun<'a> {
    pub(super) session: &'a Session,
    pub(super) facts: &'a Facts,
    pub(super) f: &'a TenantFacts,
    pub(super) graph: Graph,
    pub(super) arm: Arm,
    /// ARM for the writes: 429s are paced by `budget`, not resent by the HTTP layer.
    pub(super) arm_writes: Arm,
    pub(super) tx: &'a UnboundedSender<Progress>,
    pub(super) stop: &'a AtomicBool,
    pub(super) stopped: &'a Mutex<Option<ErrorInfo>>,
    pub(super) in_flight: &'a AtomicUsize,
    pub(super) peak: &'a AtomicUsize,
    pub(super) stores: Vec<Store>,
    pub(super) backoff: Backoff,
    /// `--management-group`: the group's assignment, made once for every subscription.
    pub(super) mg: mg::MgRun,
    /// The outcomes of the tenant's shared objects, listed in every subscription's report.
    pub(super) shared_objects: Mutex<Vec<ObjectRef>>,
    pub(super) shared_durations: Mutex<Vec<(Step, u64)>>,
    /// The first failure of a shared step (the subscriptions that needed it report it).
    pub(super) shared_error: Mutex<Option<ErrorInfo>>,
    /// This run wrote something Azure may not have propagated yet.
    pub(super) wrote_azure: AtomicBool,
    /// This run wrote the tenant's role: read back after the assignments.
    pub(super) wrote_role: AtomicBool,
    /// Scopes whose assignment this run made or found, and how many assignment steps ended.
    pub(super) assigned: Mutex<Vec<String>>,
    pub(super) assignments_ended: AtomicUsize,
    /// Subscriptions not yet at their connection's read-back (the last one reads what the
    /// checks after the run need alongside, see `connect_step`).
    pub(super) connects_left: AtomicUsize,
    pub(super) assignments_done: tokio::sync::Notify,
    /// The tenant's ARM write budget.
    pub(super) budget: WriteBudget,
    /// What was read right after this run connected the one Spot account it created (see
    /// [`apply_listing`]).
    pub(super) listed: &'a Mutex<AfterConnect>,
}

/// A subscription's run: its objects, step times and the first error.
#[derive(Default)]
pub(super) struct SubRun {
    pub(super) objects: Vec<ObjectRef>,
    pub(super) durations: Vec<(Step, u64)>,
    pub(super) error: Option<ErrorInfo>,
}

pub(super) fn dependency(what: &str) -> Error {
    Error::Skipped(format!("skipped: {what} did not complete"))
}

/// What the checks after the run need, read alongside the connection's read-back when the plan
/// creates exactly one Spot account, so they cost no round trip of the run's chain: the Spot
/// accounts (the race check, `lock::RunGuard::race_reports`, needs a listing made after that
/// account was created) and our app with its live secrets (the orphan audit's). A one-tenant
/// run that creates several accounts reads them alongside its last read-back (every
/// subscription then at its read-back); any other run reads them once, after all of them.
#[derive(Default)]
pub(crate) struct AfterConnect {
    pub accounts: Option<Vec<SpotAccount>>,
    /// The tenant and our app there, read after the secret was handed to Spot.
    pub app: Option<(String, Application)>,
}

/// The run of `plan` (what `onboard::apply` starts, inside its locks), and what it read for the
/// checks after the run ([`AfterConnect`]).
pub(crate) async fn apply_listing(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
) -> (RunReport, AfterConnect) {
    let listed = Mutex::new(AfterConnect::default());
    let report = apply_inner(session, plan, progress, &listed).await;
    (
        report,
        listed.into_inner().unwrap_or_else(|e| e.into_inner()),
    )
}

pub(super) async fn apply_inner(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
    listed: &Mutex<AfterConnect>,
) -> RunReport {
    let t0 = Instant::now();
    let throttled0 = session.http.throttled_count();
    let facts = &*plan.facts;
    let emit = |sub: Option<&str>, step, event| {
        let _ = progress.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    };
    // Blocked means nothing written.
    let blocked: Vec<&PlanItem> = plan.blocked().collect();
    if !blocked.is_empty() {
        let reasons: Vec<String> = blocked
            .iter()
            .map(|b| format!("{}: {}", b.object, b.reason))
            .collect();
        for b in &blocked {
            let error = ErrorInfo {
                summary: format!("{}: {}", b.object, b.reason),
                api: None,
                hint: None,
            };
            emit(
                b.subscription_id.as_deref(),
                b.step,
                StepEvent::Failed { error },
            );
        }
        let api = facts.tenants.iter().find_map(|t| match &t.app {
            AppFact::Unreadable(_, e) => e.clone(),
            _ => t.subs.iter().find_map(|s| match &s.account {
                AccountFact::Blocked(_, e) => e.clone(),
                _ => None,
            }),
        });
        let rights_blocked = facts
            .tenants
            .iter()
            .any(|t| matches!(t.app_rights, AppRights::Denied(_)))
            && blocked.iter().any(|b| b.step == Step::AppRegistration);
        let error = ErrorInfo {
            summary: format!("nothing was changed: {}", reasons.join("; ")),
            hint: api.as_ref().and_then(ApiError::hint).or_else(|| {
                rights_blocked.then(|| match session.auth.method() {
                    AuthMethod::ClientSecret | AuthMethod::WorkloadIdentity => {
                        Hint::ServicePrincipalAppRights
                    }
                    _ => Hint::AppRegistrationRights,
                })
            }),
            api,
        };
        for step in RUN_STEPS {
            if !blocked.iter().any(|b| b.step == step) {
                emit(
                    None,
                    step,
                    StepEvent::Skipped {
                        reason: "blocked: nothing is written".into(),
                    },
                );
            }
        }
        return RunReport {
            reports: plan
                .subscriptions
                .iter()
                .map(|t| match facts.kept_sub(&t.subscription_id) {
                    Some(k) => kept_report(k),
                    None => failed_report(t, error.clone()),
                })
                .collect(),
            stopped: None,
            throttled: 0,
            peak_concurrency: 0,
            total_ms: t0.elapsed().as_millis() as u64,
        };
    }
    let stop = AtomicBool::new(false);
    let stopped = Mutex::new(None);
    let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let runs = facts.tenants.iter().map(|f| {
        let run = TenantRun {
            session,
            facts,
            f,
            graph: lookup::graph(session, &f.tenant),
            arm: lookup::arm(session, &f.tenant),
            arm_writes: {
                // 429s come back to `paced`, which resends them in the write budget's slots.
                let mut http = session.http.clone();
                http.max_attempts = 1;
                Arm::new(
                    http,
                    &session.endpoints.arm,
                    session.auth.clone(),
                    &f.tenant,
                )
            },
            tx: &progress,
            stop: &stop,
            stopped: &stopped,
            in_flight: &in_flight,
            peak: &peak,
            stores: f
                .subs
                .iter()
                .map(|s| Store::new(&session.state_dir, s.state.clone()))
                .collect(),
            backoff: mg::backoff(f),
            mg: mg::MgRun::default(),
            shared_objects: Mutex::new(vec![]),
            shared_durations: Mutex::new(vec![]),
            shared_error: Mutex::new(None),
            wrote_azure: AtomicBool::new(false),
            wrote_role: AtomicBool::new(false),
            assigned: Mutex::new(vec![]),
            assignments_ended: AtomicUsize::new(0),
            connects_left: AtomicUsize::new(f.subs.len()),
            assignments_done: tokio::sync::Notify::new(),
            budget: WriteBudget::new(session.http.throttled_count()),
            listed,
        };
        async move { run.run().await }
    });
    let mut reports: Vec<Report> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    for k in &facts.kept {
        if let AccountFact::Keep(f) = &k.account {
            emit(
                Some(&k.target.subscription_id),
                Step::ConnectSpot,
                StepEvent::Skipped {
                    reason: f.keep_line(),
                },
            );
        }
        reports.push(kept_report(k));
    }
    let mut ordered = Vec::new();
    for t in &plan.subscriptions {
        if let Some(i) = reports
            .iter()
            .position(|r| r.subscription_id == t.subscription_id)
        {
            ordered.push(reports.swap_remove(i));
        }
    }
    RunReport {
        reports: ordered,
        stopped: lock(&stopped).clone(),
        throttled: session.http.throttled_count() - throttled0,
        peak_concurrency: peak.load(Ordering::Relaxed),
        total_ms: t0.elapsed().as_millis() as u64,
    }
}

pub(super) const RUN_STEPS: [Step; 6] = [
    Step::SpotAccount,
    Step::AppRegistration,
    Step::ClientSecret,
    Step::CustomRole,
    Step::RoleAssignment,
    Step::ConnectSpot,
];

pub(crate) fn failed_report(t: &Target, error: ErrorInfo) -> Report {
    Report {
        tenant_id: t.tenant_id.clone(),
        subscription_id: t.subscription_id.clone(),
        subscription_name: t.subscription_name.clone(),
        verdict: Verdict::Failed,
        spot_account_id: None,
        objects: vec![],
        secret_expires: None,
        durations_ms: vec![],
        total_ms: 0,
        error: Some(error),
        report_path: None,
        kept: None,
    }
}

impl TenantRun<'_> {
    pub(super) fn emit(&self, sub: Option<&str>, step: Step, event: StepEvent) {
        let _ = self.tx.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    }

    pub(super) fn waiting(
        &self,
        sub: Option<&str>,
        step: Step,
    ) -> impl FnMut(u32, std::time::Duration) + '_ {
        let sub = sub.map(str::to_string);
        move |attempt, next_in| {
            self.emit(
                sub.as_deref(),
                step,
                StepEvent::Waiting {
                    reason: mg::propagation_reason(self.f, step),
                    attempt,
                    next_in,
                },
            )
        }
    }

    pub(super) fn halt(&self, e: &Error) {
        if is_fatal(e) {
            self.stop.store(true, Ordering::SeqCst);
            lock(self.stopped).get_or_insert_with(|| ErrorInfo::from(e));
        }
    }

    /// Writes the tenant's shared ids: to the first subscription's state at once (a later run
    /// finds them through it), to the others with their next write.
    pub(super) async fn save_shared(&self, f: impl Fn(&mut State)) -> Result<()> {
        for s in &self.stores[1..] {
            s.set(&f);
        }
        self.stores[0].save(&f).await
    }

    pub(super) fn mark(&self, i: Option<usize>, step: Step, status: StepStatus) {
        match i {
            Some(i) => self.stores[i].set(|s| {
                s.steps.insert(step, status);
            }),
            None => self.stores.iter().for_each(|st| {
                st.set(|s| {
                    s.steps.insert(step, status);
                })
            }),
        }
    }

    /// Runs one step: Started, then Finished or Failed, its wall time, its status in the state.
    /// `i`: the subscription (None: the tenant's shared object).
    pub(super) async fn step<T>(
        &self,
        i: Option<usize>,
        step: Step,
        detail: String,
        fut: impl Future<Output = Result<(T, Outcome, Option<String>, String)>>,
        run: Option<&Mutex<SubRun>>,
    ) -> Result<T> {
        let sub = i.map(|i| self.f.subs[i].target.subscription_id.as_str());
        self.emit(sub, step, StepEvent::Started { detail });
        self.mark(i, step, StepStatus::Running);
        let t0 = Instant::now();
        let r = fut.await;
        let ms = t0.elapsed().as_millis() as u64;
        match run {
            Some(run) => lock(run).durations.push((step, ms)),
            None => lock(&self.shared_durations).push((step, ms)),
        }
        match r {
            Ok((v, outcome, id, detail)) => {
                self.mark(i, step, StepStatus::Done);
                self.emit(
                    sub,
                    step,
                    StepEvent::Finished {
                        outcome,
                        id,
                        detail,
                    },
                );
                Ok(v)
            }
            Err(e) => {
                self.mark(i, step, StepStatus::Failed);
                self.halt(&e);
                let mut info = ErrorInfo::from(&e);
                info.summary = format!("{}: {}", step.label(), info.summary);
                match run {
                    Some(run) => lock(run).error.get_or_insert(info.clone()),
                    None => lock(&self.shared_error).get_or_insert(info.clone()),
                };
                self.emit(sub, step, StepEvent::Failed { error: info });
                Err(e)
            }
        }
    }

    /// One more subscription's assignment step has ended (or will never start): when all have,
    /// the role read-back may go.
    pub(super) fn assignment_ended(&self) {
        if self.assignments_ended.fetch_add(1, Ordering::SeqCst) + 1 == self.f.subs.len() {
            self.assignments_done.notify_one();
        }
    }

    pub(super) fn shared_object(
        &self,
        step: Step,
        object: &str,
        name: &str,
        id: &str,
        outcome: Outcome,
    ) {
        lock(&self.shared_objects).push(ObjectRef {
            step,
            object: object.into(),
            name: name.into(),
            id: id.into(),
            outcome,
        });
    }

    pub(super) async fn run(&self) -> Vec<Report> {
        let (app_tx, app_rx) = tokio::sync::oneshot::channel::<Application>();
        let app_f = self.app_step(app_tx).shared();
        let app_only = async { app_rx.await.map_err(|_| dependency("App registration")) }.shared();
        let role_f = self.role_step().shared();
        let secret_f = async {
            if !self.f.new_secret() {
                return Ok(None);
            }
            let app = app_only.clone().await?;
            self.secret_step(&app).await.map(Some)
        }
        .shared();
        let subs = futures::stream::iter(0..self.f.subs.len())
            .map(|i| self.sub_run(i, app_f.clone(), role_f.clone(), secret_f.clone()))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>();
        // The role this run wrote, read back once every assignment step has ended (alongside
        // the connections): a writer elsewhere that replaced it meanwhile may have taken our
        // scopes out; merged again.
        let verify = async {
            if self.f.subs.is_empty() {
                return;
            }
            self.assignments_done.notified().await;
            if !self.wrote_role.load(Ordering::Relaxed) {
                return;
            }
            let ours: Vec<String> = lock(&self.assigned).clone();
            if !ours.is_empty()
                && let Err(e) = self.merge_role(false, &ours, None, true).await
            {
                let message = format!("the custom role could not be read back: {e}");
                tracing::warn!("{message}");
                let _ = self.tx.send(Progress::Log { message });
            }
        };
        let (_, _, _, mut reports, ()) = tokio::join!(
            app_f.clone(),
            role_f.clone(),
            secret_f.clone(),
            subs,
            verify
        );
        if self.f.mg.is_some() {
            self.prune_subscription_assignments(&mut reports).await;
        }
        reports
    }

    /// One subscription: Spot account and role assignment (together), then the connection.
    pub(super) async fn sub_run(
        &self,
        i: usize,
        app_f: impl Future<Output = Result<(Application, ServicePrincipal)>>,
        role_f: impl Future<Output = Result<RoleDefinition>>,
        secret_f: impl Future<Output = Result<Option<NewSecret>>>,
    ) -> Report {
        let t0 = Instant::now();
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let run = Mutex::new(SubRun::default());
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let result = if self.stop.load(Ordering::SeqCst) {
            self.assignment_ended();
            let why = lock(self.stopped)
                .as_ref()
                .map(|e| e.summary.clone())
                .unwrap_or_default();
            Err(Error::Skipped(format!("not started: {why}")))
        } else {
            let account_f = self.account_step(i, &run);
            let assign_f = async {
                let done = async {
                    let (app, sp) = app_f.await.map_err(|_| dependency("App registration"))?;
                    let role = role_f.await.map_err(|_| dependency("Custom role"))?;
                    if self.f.mg.is_some() {
                        self.mg_assignment_step(i, &sp, &role, &run).await?;
                    } else {
                        self.assignment_step(i, &sp, &role, &run).await?;
                    }
                    Ok::<String, Error>(app.app_id)
                }
                .await;
                if done.is_ok() && self.f.mg.is_none() {
                    lock(&self.assigned).push(s.scope());
                } else if let (Ok(_), Some(m)) = (&done, &self.f.mg) {
                    let mut a = lock(&self.assigned);
                    if a.is_empty() {
                        a.push(m.scope.clone());
                    }
                }
                self.assignment_ended();
                done
            };
            let (account, assigned) = tokio::join!(account_f, assign_f);
            match (account, assigned) {
                (Ok(account), Ok(app_id)) => {
                    let secret = secret_f.await.map_err(|_| dependency("Client secret"));
                    match secret {
                        Ok(secret) => self
                            .connect_step(i, &account, &app_id, secret.as_ref(), &run)
                            .await
                            .map(|e| (account, e)),
                        Err(e) => Err(e),
                    }
                }
                (Err(_), _) => Err(dependency("Spot account")),
                (_, Err(_)) => Err(dependency("Role assignment")),
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut run = run.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut objects = lock(&self.shared_objects).clone();
        objects.append(&mut run.objects);
        let mut durations = lock(&self.shared_durations).clone();
        durations.append(&mut run.durations);
        let mut report = failed_report(&s.target, ErrorInfo::from(&dependency("the run")));
        report.objects = objects;
        report.durations_ms = durations;
        report.total_ms = t0.elapsed().as_millis() as u64;
        let _ = self.stores[i].save(|_| {}).await;
        match result {
            Ok((account, expires)) => {
                let changed = report.objects.iter().any(|o| o.outcome != Outcome::Reused);
                self.emit(
                    Some(sub),
                    Step::Done,
                    StepEvent::Finished {
                        outcome: if changed {
                            Outcome::Created
                        } else {
                            Outcome::Reused
                        },
                        id: Some(account.account_id.clone()),
                        detail: format!("{sub} is connected to Spot"),
                    },
                );
                report.verdict = Verdict::Connected;
                report.spot_account_id = Some(account.account_id);
                report.secret_expires = Some(expires);
                report.error = None;
            }
            Err(e) => {
                for step in RUN_STEPS {
                    if !report.durations_ms.iter().any(|(s, _)| *s == step) {
                        self.emit(
                            Some(sub),
                            step,
                            StepEvent::Skipped {
                                reason: "an earlier step failed".into(),
                            },
                        );
                    }
                }
                report.spot_account_id = self.stores[i].get(|s| s.spot_account_id.clone());
                let shared = lock(&self.shared_error).clone();
                report.error = Some(run.error.or(shared).unwrap_or_else(|| ErrorInfo::from(&e)));
            }
        }
        report
    }

    // -----------------------------------------------------------------------------------------
    // Steps: the tenant's shared objects

    /// The app (sent on `app_tx` as soon as it exists) and its service principal.
    pub(super) async fn app_step(
        &self,
        app_tx: tokio::sync::oneshot::Sender<Application>,
    ) -> Result<(Application, ServicePrincipal)> {
        let name = self.f.app_name.clone();
        self.step(
            None,
            Step::AppRegistration,
            format!("app registration {name}"),
            async {
                let graph = &self.graph;
                let (app, app_outcome) = match &self.f.app {
                    AppFact::Ours(a) => (a.clone(), Outcome::Reused),
                    AppFact::Missing => {
                        // An upsert by uniqueName (the app's name): sent again after a lost
                        // reply, it is still one app.
                        let a = read(|| graph.upsert_application(&name, &name)).await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        (a, Outcome::Created)
                    }
                    _ => {
                        return Err(Error::Blocked(
                            "the app registration step was blocked".into(),
                        ));
                    }
                };
                self.save_shared(|s| {
                    s.app_object_id = Some(app.id.clone());
                    s.app_id = Some(app.app_id.clone());
                    s.app_name = Some(app.display_name.clone());
                })
                .await?;
                self.shared_object(
                    Step::AppRegistration,
                    "app registration",
                    &app.display_name,
                    &app.app_id,
                    app_outcome,
                );
                let _ = app_tx.send(app.clone());

                let (sp, sp_outcome) = match &self.f.sp {
                    Some(sp) => (sp.clone(), Outcome::Reused),
                    None => {
                        let app_id = app.app_id.clone();
                        let created_app = app_outcome == Outcome::Created;
                        // An upsert by appId: never two service principals. Right after the app
                        // was created, Graph may not know it yet: polled.
                        let sp = retry::propagate(
                            &self.backoff,
                            |e| created_app && is_not_found(e),
                            || graph.upsert_service_principal(&app_id),
                            self.waiting(None, Step::AppRegistration),
                        )
                        .await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        (sp, Outcome::Created)
                    }
                };
                self.save_shared(|s| s.sp_object_id = Some(sp.id.clone()))
                    .await?;
                self.shared_object(
                    Step::AppRegistration,
                    "service principal",
                    &app.display_name,
                    &sp.id,
                    sp_outcome,
                );
                let outcome = if app_outcome == Outcome::Created || sp_outcome == Outcome::Created {
                    Outcome::Created
                } else {
                    Outcome::Reused
                };
                let detail = format!(
                    "{} (client id {}, service principal {})",
                    app.display_name, app.app_id, sp.id
                );
                let id = app.app_id.clone();
                Ok(((app, sp), outcome, Some(id), detail))
            },
            None,
        )
        .await
    }

    /// The tenant's one new secret. Its value stays in memory until Spot has it.
    /// (The only place the engine creates a client secret.)
    pub(super) async fn secret_step(&self, app: &Application) -> Result<NewSecret> {
        let months = self.facts.settings.secret_months;
        let name = shared_secret_name(&self.f.tenant);
        self.step(
            None,
            Step::ClientSecret,
            format!("client secret for {}", app.display_name),
            async {
                // The lifetime asked for (or the policy's cap), then shorter ones should the
                // tenant's policy refuse it (lifetime.rs): each with its own end dates.
                let tries =
                    lifetime::attempts(&self.f.secret_limit, months, OffsetDateTime::now_utc());
                let ends: Vec<Vec<OffsetDateTime>> = tries
                    .iter()
                    .map(|t| secret_ends_until(app, t.end))
                    .collect();
                let created_app = self.wrote_azure.load(Ordering::Relaxed);
                // The intent, before the keyId is known: the end date of every attempt, each
                // distinct to the second from the app's other live secrets. A run killed now, or a
                // lost reply, leaves a secret of ours with one of these ends and no Spot account
                // holding it: `orphans::reclaim_after_apply` can prove it ours and removes it.
                let recorded: Vec<i64> =
                    ends.iter().flatten().map(|e| e.unix_timestamp()).collect();
                self.save_shared(|s| {
                    for e in &recorded {
                        if !s.secret_intents.contains(e) {
                            s.secret_intents.push(*e);
                        }
                    }
                })
                .await?;
                let name = &name;
                let add = |k: usize| {
                    let ends = &ends[k];
                    async move {
                        // A new attempt after one that may have made a secret (a lost reply) asks
                        // for the next end date: every secret made has its own.
                        let attempt = AtomicUsize::new(0);
                        let np = retry::propagate(
                            &self.backoff,
                            |e| created_app && is_not_found(e),
                            || async {
                                let i = attempt.load(Ordering::Relaxed).min(ends.len() - 1);
                                let r = self.graph.add_password(&app.id, name, ends[i]).await;
                                if r.as_ref().is_err_and(|e| {
                                    !is_not_found(e)
                                        && !retry::is_propagation(e)
                                        && !e
                                            .api()
                                            .is_some_and(|a| a.has_code(lifetime::LIFETIME_ERROR))
                                }) {
                                    attempt.fetch_add(1, Ordering::Relaxed);
                                }
                                r
                            },
                            self.waiting(None, Step::ClientSecret),
                        )
                        .await?;
                        let i = attempt.load(Ordering::Relaxed).min(ends.len() - 1);
                        Ok((np, ends[i]))
                    }
                };
                let note = |message: String| {
                    tracing::warn!("{message}");
                    let _ = self.tx.send(Progress::Log { message });
                };
                let (np, end, taken) =
                    lifetime::add_password_stepping_down(&tries, add, note).await?;
                let rec = SecretRecord {
                    key_id: np.credential.key_id.clone(),
                    end_date_time: np.credential.end_date_time.unwrap_or(end),
                    handed_to_spot: false,
                };
                // An orphan until a subscription hands it to Spot: a run killed before that loses
                // the value, and the next run removes it by keyId.
                self.save_shared(|s| {
                    if !s.orphan_key_ids.contains(&rec.key_id) {
                        s.orphan_key_ids.push(rec.key_id.clone());
                    }
                })
                .await?;
                self.shared_object(
                    Step::ClientSecret,
                    "client secret",
                    name,
                    &rec.key_id,
                    Outcome::Created,
                );
                let lifetime = match (&self.f.secret_limit, taken) {
                    (SecretLimit::Capped { by, .. }, 0) => {
                        format!(" ({}, capped by {by})", tries[0].label)
                    }
                    (_, 0) => String::new(),
                    (_, k) => format!(
                        " ({}: the tenant's policy refused {})",
                        tries[k].label,
                        tries[..k]
                            .iter()
                            .map(|t| t.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let detail = format!("expires {}{lifetime}", rec.end_date_time.date());
                let id = rec.key_id.clone();
                let made = NewSecret {
                    record: rec,
                    value: np.secret,
                };
                Ok((made, Outcome::Created, Some(id), detail))
            },
            None,
        )
        .await
    }

    /// One role for the tenant, assignable at every subscription of the run. The role is
    /// shared by every run of the tenant, anywhere, and a PUT replaces it whole (no ETag):
    /// read, merge, write, read back, merge again (`merge_role`).
    pub(super) async fn role_step(&self) -> Result<RoleDefinition> {
        let name = self.f.role_name.clone();
        let scopes = self.f.scopes();
        let policy = &self.facts.policy;
        self.step(
            None,
            Step::CustomRole,
            format!("custom role {name}"),
            async {
                let (outcome, detail) = match &self.f.role {
                    RoleFact::Foreign(_) => {
                        return Err(Error::Blocked("the custom role step was blocked".into()));
                    }
                    RoleFact::Ours(r) => {
                        let missing: Vec<String> = scopes
                            .iter()
                            .filter(|s| !lists_scope(r, s))
                            .cloned()
                            .collect();
                        let d = policy::drift(&policy.actions, &r.properties.permissions);
                        if missing.is_empty() && d.missing.is_empty() {
                            (
                                Outcome::Reused,
                                format!("{} has all of Spot's actions", r.properties.role_name),
                            )
                        } else {
                            let mut what = Vec::new();
                            if !missing.is_empty() {
                                what.push(format!("assignable at {}", missing.join(", ")));
                            }
                            if !d.missing.is_empty() {
                                what.push(format!("{} missing action(s) added", d.missing.len()));
                            }
                            (Outcome::Updated, what.join(", "))
                        }
                    }
                    RoleFact::Missing => (
                        Outcome::Created,
                        format!(
                            "{} actions, assignable at {}",
                            policy.actions.len(),
                            scopes.join(", ")
                        ),
                    ),
                };
                let role = match (&self.f.role, outcome) {
                    (RoleFact::Ours(r), Outcome::Reused) => r.clone(),
                    (known, _) => {
                        // The plan has just found no role: written with our scopes at once.
                        let known = matches!(known, RoleFact::Missing).then(Vec::new);
                        let r = self.merge_role(true, &scopes, known, false).await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        self.wrote_role.store(true, Ordering::Relaxed);
                        r
                    }
                };
                self.save_shared(|s| {
                    s.role_definition_id = Some(role.id.clone());
                    s.role_name = Some(role.properties.role_name.clone());
                })
                .await?;
                self.shared_object(
                    Step::CustomRole,
                    "custom role",
                    &role.properties.role_name,
                    &role.id,
                    outcome,
                );
                let id = role.id.clone();
                Ok((role, outcome, Some(id), detail))
            },
            None,
        )
        .await
    }

    /// Makes the tenant's role (deterministic GUID) assignable at `scopes`, keeping every scope
    /// it lists now: read it (unless `write` and the plan just did), merge, write (with Spot's
    /// actions), read it back; when another writer's PUT has removed one of `scopes` meanwhile,
    /// merge again, at most [`ROLE_MERGES`] times with a random pause between. `write`: PUT even
    /// when the scopes are there (the policy's actions changed).
    /// `known`: the scopes the role lists as the plan has just read them (the first round does
    /// not read again); `read_back`: false to return the first PUT's reply at once (the run
    /// reads the role back once its assignments are made, alongside the connections).
    pub(super) async fn merge_role(
        &self,
        write: bool,
        scopes: &[String],
        mut known: Option<Vec<String>>,
        read_back: bool,
    ) -> Result<RoleDefinition> {
        let name = &self.f.role_name;
        let policy = &self.facts.policy;
        let first = &self.f.subs[0].target.subscription_id;
        let guid = match &self.f.role {
            RoleFact::Ours(r) => r.name.clone(),
            _ => policy::role_definition_guid(&self.f.tenant, name),
        };
        let id = format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}");
        let mut must_write = write;
        let mut last: Option<RoleDefinition> = None;
        for round in 0..ROLE_MERGES {
            let (now, listed) = match known.take() {
                Some(listed) => (None, listed),
                None => {
                    let now = read(|| self.arm.get_role_definition(&id)).await?;
                    let listed = now
                        .as_ref()
                        .map(|r| r.properties.assignable_scopes.clone())
                        .unwrap_or_default();
                    (now, listed)
                }
            };
            if let Some(r) = &now
                && !is_our_role(r)
            {
                return Err(Error::Conflict(format!(
                    "the custom role {} ({}) is no longer ours (no spot-connect marker): not changed",
                    r.properties.role_name, r.id
                )));
            }
            let missing: Vec<&String> = scopes
                .iter()
                .filter(|s| !listed.iter().any(|x| same_scope(x, s)))
                .collect();
            if missing.is_empty()
                && !must_write
                && let Some(mut r) = now
            {
                // Named at a scope of this run, as a PUT's reply names it.
                if r.id.starts_with("/providers/") {
                    r.id = format!("{}{id}", scopes[0]);
                }
                return Ok(r);
            }
            // Not visible yet right after our own PUT (ARM's replicas): the PUT's reply stands.
            if now.is_none() && round > 0 && !must_write {
                return last
                    .ok_or_else(|| Error::Other("the custom role could not be read back".into()));
            }
            if round > 0 {
                let message = format!(
                    "the custom role {name} lost its assignable scope(s) {} to another writer: merging again",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                tracing::info!("{message}");
                let _ = self.tx.send(Progress::Log { message });
                jitter().await;
            }
            let mut wanted = listed.clone();
            wanted.extend(missing.into_iter().cloned());
            // Written at a scope it is assignable at now (ARM checks the caller there).
            let at = listed.first().cloned().unwrap_or_else(|| scopes[0].clone());
            // Never removes an action the role has (another team's policy may need it): the
            // policy's actions are added to what it lists.
            let mut props = policy.role_properties(name, first, wanted);
            let existing = now.as_ref().or(match &self.f.role {
                RoleFact::Ours(r) => Some(r),
                _ => None,
            });
            view::keep_extra_actions(&mut props, existing);
            let r = read(|| self.paced(|| self.arm_writes.put_role_definition(&at, &guid, &props)))
                .await?;
            if !read_back {
                return Ok(r);
            }
            last = Some(r);
            must_write = false;
        }
        Err(Error::Conflict(format!(
            "the custom role {name} kept losing its assignable scopes to other writers ({ROLE_MERGES} merges)"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Steps: per subscription

    pub(super) fn object(
        run: &Mutex<SubRun>,
        step: Step,
        object: &str,
        name: &str,
        id: &str,
        outcome: Outcome,
    ) {
        lock(run).objects.push(ObjectRef {
            step,
            object: object.into(),
            name: name.into(),
            id: id.into(),
            outcome,
        });
    }

    pub(super) async fn account_step(&self, i: usize, run: &Mutex<SubRun>) -> Result<SpotAccount> {
        let spot = &self.session.spot;
        let store = &self.stores[i];
        let sf = &self.f.subs[i];
        let (detail, fact) = match &sf.account {
            AccountFact::Reuse(a, _, _) => (format!("using {}", a.account_id), &sf.account),
            AccountFact::Create(n) => (format!("creating Spot account {n}"), &sf.account),
            AccountFact::Keep(f) => {
                return Err(Error::Blocked(format!(
                    "Spot account {} is not ours: kept",
                    f.account.account_id
                )));
            }
            AccountFact::Blocked(why, _) => return Err(Error::Blocked(why.clone())),
        };
        // The operator picked it (`--spot-account`, `--take-over`): recorded as chosen, so no
        // run ever deletes it.
        let picked = sf.taken_over.is_some()
            || matches!(
                self.facts.settings.spot_account,
                SpotAccountChoice::Existing(_)
            );
        self.step(
            Some(i),
            Step::SpotAccount,
            detail,
            async {
                let (a, outcome, why) = match fact {
                    AccountFact::Reuse(a, kind, why) => {
                        let origin = match kind {
                            AccountKind::Created => Some(AccountOrigin::Created {
                                account_id: a.account_id.clone(),
                                name: a.name.clone(),
                            }),
                            AccountKind::Chosen if picked => Some(AccountOrigin::Chosen {
                                account_id: a.account_id.clone(),
                            }),
                            _ => None,
                        };
                        store
                            .save(|s| {
                                s.spot_account_id = Some(a.account_id.clone());
                                s.spot_account_pending = None;
                                s.spot_account_pending_at = None;
                                if origin.is_some() {
                                    s.spot_account_origin = origin.clone();
                                }
                            })
                            .await?;
                        (a.clone(), Outcome::Reused, format!(": {why}"))
                    }
                    AccountFact::Create(name) => {
                        let asked = OffsetDateTime::now_utc();
                        store
                            .save(|s| {
                                s.spot_account_pending = Some(name.clone());
                                s.spot_account_pending_at = Some(asked);
                            })
                            .await?;
                        // After a lost reply: the account of this name Spot made since we
                        // asked, not connected (a token that may not list accounts cannot
                        // tell: then a second create).
                        let a = create_or_find(
                            || spot.create_account(name),
                            || async {
                                match spot.list_accounts().await {
                                    Ok(list) => Ok(list.into_iter().find(|a| {
                                        &a.name == name
                                            && a.provider_external_id.is_none()
                                            && a.created_at.is_some_and(|c| {
                                                c >= asked - time::Duration::seconds(2)
                                            })
                                    })),
                                    Err(Error::Api(e)) if e.class() == ErrorClass::Permission => {
                                        Ok(None)
                                    }
                                    Err(e) => Err(e),
                                }
                            },
                        )
                        .await?;
                        // The id Spot returned to our create call, and the name we gave it:
                        // the proof that it is ours to delete (issue 16 §2).
                        store
                            .save(|s| {
                                s.spot_account_id = Some(a.account_id.clone());
                                s.spot_account_pending = None;
                                s.spot_account_pending_at = None;
                                s.spot_account_origin = Some(AccountOrigin::Created {
                                    account_id: a.account_id.clone(),
                                    name: name.clone(),
                                });
                            })
                            .await?;
                        (a, Outcome::Created, String::new())
                    }
                    AccountFact::Keep(_) | AccountFact::Blocked(..) => {
                        return Err(Error::Blocked("the Spot account step was blocked".into()));
                    }
                };
                Self::object(
                    run,
                    Step::SpotAccount,
                    "Spot account",
                    &a.name,
                    &a.account_id,
                    outcome,
                );
                let id = a.account_id.clone();
                let detail = format!("{} ({}){why}", a.name, a.account_id);
                Ok((a, outcome, Some(id), detail))
            },
            Some(run),
        )
        .await
    }

    pub(super) async fn assignment_step(
        &self,
        i: usize,
        sp: &ServicePrincipal,
        role: &RoleDefinition,
        run: &Mutex<SubRun>,
    ) -> Result<()> {
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let scope = s.scope();
        self.step(Some(i), Step::RoleAssignment, format!("assigning {} to the service principal", role.properties.role_name), async {
            let (id, outcome) = match &s.assignment {
                Some(a) => (a.id.clone(), Outcome::Reused),
                None => {
                    // Deterministic: a PUT repeated after a lost reply names the same
                    // assignment (then 409 RoleAssignmentExists, which is success).
                    let guid = policy::role_assignment_name(sub, &sp.id, &role.id);
                    // Refused because the role is not assignable here: when another writer's
                    // PUT took our scope out of the role, the role is repaired and the
                    // assignment sent again at once; only a role that does list the scope is
                    // Azure propagating.
                    let repairs = AtomicUsize::new(0);
                    let create = || async {
                        loop {
                            let r = self
                                .paced(|| {
                                    self.arm_writes.create_role_assignment(
                                        &scope, &guid, &role.id, &sp.id,
                                    )
                                })
                                .await;
                            let refused = matches!(&r, Err(Error::Api(a)) if a.has_code("RoleDefinitionDoesNotExist")
                                || a.has_code("RoleAssignmentScopeNotAssignableToRoleDefinition"));
                            if !refused || repairs.load(Ordering::Relaxed) >= ROLE_MERGES {
                                return r;
                            }
                            let id = format!(
                                "/providers/Microsoft.Authorization/roleDefinitions/{}",
                                arm::guid_of(&role.id)
                            );
                            match read(|| self.arm.get_role_definition(&id)).await {
                                Ok(Some(now)) if !lists_scope(&now, &scope) => {
                                    repairs.fetch_add(1, Ordering::Relaxed);
                                    let message = format!(
                                        "the custom role {} is no longer assignable at {scope} (another writer replaced it): repairing it",
                                        now.properties.role_name
                                    );
                                    tracing::info!("{message}");
                                    let _ = self.tx.send(Progress::Log { message });
                                    self.merge_role(false, std::slice::from_ref(&scope), None, true)
                                        .await?;
                                }
                                _ => return r,
                            }
                        }
                    };
                    let out = retry::propagate(
                        &self.backoff,
                        |_| false,
                        create,
                        self.waiting(Some(sub), Step::RoleAssignment),
                    )
                    .await?;
                    self.wrote_azure.store(true, Ordering::Relaxed);
                    match out {
                        AssignmentOutcome::Created(a) => (a.id, Outcome::Created),
                        AssignmentOutcome::AlreadyExists => match find_assignment(&self.arm, sub, &sp.id, role).await? {
                            Some(a) => (a.id, Outcome::Reused),
                            None => (format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"), Outcome::Reused),
                        },
                    }
                }
            };
            self.stores[i].save(|s| s.role_assignment_id = Some(id.clone())).await?;
            Self::object(run, Step::RoleAssignment, "role assignment", &role.properties.role_name, &id, outcome);
            Ok(((), outcome, Some(id), format!("principalType ServicePrincipal at {scope}")))
        }, Some(run))
        .await
    }

    pub(super) async fn connect_step(
        &self,
        i: usize,
        account: &SpotAccount,
        app: &str,
        secret: Option<&NewSecret>,
        run: &Mutex<SubRun>,
    ) -> Result<OffsetDateTime> {
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let spot = &self.session.spot;
        let store = &self.stores[i];
        self.step(
            Some(i),
            Step::ConnectSpot,
            format!("connecting {} to Spot", account.account_id),
            async {
                if let Some(rec) = &s.secret_reuse {
                    Self::object(
                        run,
                        Step::ConnectSpot,
                        "Spot connection",
                        &account.name,
                        &account.account_id,
                        Outcome::Reused,
                    );
                    let detail = format!(
                        "{} already holds this app's credentials",
                        account.account_id
                    );
                    return Ok((
                        rec.end_date_time,
                        Outcome::Reused,
                        Some(account.account_id.clone()),
                        detail,
                    ));
                }
                let Some(NewSecret { record: rec, value }) = secret else {
                    return Err(dependency("Client secret"));
                };
                let creds = AzureCredentials {
                    client_id: app.to_string(),
                    client_secret: value.clone(),
                    tenant_id: self.f.tenant.clone(),
                    subscription_id: sub.to_string(),
                    expiration_date: rec.end_date_time,
                };
                // Spot validates against Azure: right after our writes (a new secret is one) it
                // may not see them yet (secrets::HandOver waits, and reads back).
                let app_object = store.get(|s| s.app_object_id.clone());
                // When this is the one account the run created, the race check's listing goes
                // alongside the read-back; so it does with the last read-back of a one-tenant run
                // that creates several (every subscription of the run is then past its set: every
                // account it created exists, and the tenant's secret has been handed to Spot).
                // Decided when the read-back starts (`alongside` runs after the set).
                let created = self
                    .facts
                    .tenants
                    .iter()
                    .flat_map(|t| &t.subs)
                    .filter(|x| matches!(x.account, AccountFact::Create(_)))
                    .count();
                let alongside = async {
                    let last = self.connects_left.fetch_sub(1, Ordering::SeqCst) == 1;
                    let list_too = (matches!(s.account, AccountFact::Create(_)) && created == 1)
                        || (last && created > 1 && self.facts.tenants.len() == 1);
                    if !list_too {
                        return None;
                    }
                    Some(tokio::join!(
                        async { read(|| spot.list_accounts()).await.ok() },
                        async {
                            match &app_object {
                                Some(obj) => read(|| self.graph.get_application(obj))
                                    .await
                                    .ok()
                                    .flatten(),
                                None => None,
                            }
                        }
                    ))
                };
                let hand_over = secrets::HandOver {
                    spot,
                    graph: &self.graph,
                    app_object_id: app_object.as_deref(),
                    account: &account.account_id,
                    creds: &creds,
                    key_id: &rec.key_id,
                };
                let listed = hand_over
                    .run(
                        &self.backoff,
                        self.waiting(Some(sub), Step::ConnectSpot),
                        alongside,
                    )
                    .await?;
                if let Some((list, live)) = listed {
                    let mut after = lock(self.listed);
                    after.accounts = list;
                    after.app = live.map(|a| (self.f.tenant.clone(), a));
                }
                let old = store.get(|s| s.secret.clone());
                store
                    .save(|s| {
                        if let Some(old) = old.as_ref().filter(|o| o.key_id != rec.key_id)
                            && !s.orphan_key_ids.contains(&old.key_id)
                        {
                            // Kept until no Spot account holds it (`orphans::reclaim_after_apply`).
                            s.orphan_key_ids.push(old.key_id.clone());
                        }
                        s.orphan_key_ids.retain(|k| k != &rec.key_id);
                        s.spot_account_id = Some(account.account_id.clone());
                        s.secret = Some(SecretRecord {
                            handed_to_spot: true,
                            ..rec.clone()
                        });
                    })
                    .await?;
                // It held this app's credentials with the secret replaced (renewal): updated,
                // as the plan said.
                let renewed = s.spot_creds.as_ref().is_some_and(|c| {
                    c.client_id
                        .as_deref()
                        .is_some_and(|id| id.eq_ignore_ascii_case(app))
                });
                let (outcome, what) = if renewed {
                    (Outcome::Updated, "holds the new secret")
                } else {
                    (Outcome::Created, "connected")
                };
                Self::object(
                    run,
                    Step::ConnectSpot,
                    "Spot connection",
                    &account.name,
                    &account.account_id,
                    outcome,
                );
                let detail = format!(
                    "{} {what}; secret expires {}",
                    account.account_id,
                    rec.end_date_time.date()
                );
                Ok((
                    rec.end_date_time,
                    outcome,
                    Some(account.account_id.clone()),
                    detail,
                ))
            },
            Some(run),
        )
        .await
    }

    /// An ARM write (`write` uses `arm_writes`, whose HTTP layer does not resend a 429), in
    /// its slot of the tenant's write budget; refused (429), it waits its Retry-After and takes
    /// a new slot, so every resend is paced too.
    pub(super) async fn paced<T, F, Fut>(&self, mut write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 0u32;
        // The Retry-After waits of one write share the HTTP layer's per-call budget (2 min):
        // announced as they start, and an ask beyond it fails at once (Fatal: not resent).
        let mut asked = std::time::Duration::ZERO;
        loop {
            let ticket = self.budget.acquire().await;
            let r = write().await;
            let refused = matches!(&r, Err(Error::Api(a)) if a.status == 429);
            self.budget
                .done(ticket, refused, self.session.http.throttled_count());
            match r {
                Err(Error::Api(a)) if a.status == 429 && tries < 30 => {
                    tries += 1;
                    let wait = self.session.http.throttled_wait(a, &mut asked, tries)?;
                    tokio::time::sleep(wait).await;
                }
                r => return r,
            }
        }
    }
}
