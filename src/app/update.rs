//! `update`: the one place the wizard's state changes. It does no I/O: what must be started
//! (sign-in, lookups, plan, apply) is returned as `Effect`s for the event loop to run.

use super::keymap::{self, Cmd};
use super::state::*;
/// Pure helpers of the state the UI reads too (defined in `app::state`).
pub use super::state::{account_choice, one_account_for_several, secs};
use crate::azure::auth::Identity;
use crate::azure::discovery::Discovery;
use crate::cli::exit;
use crate::onboard::model::ErrorInfo;
use crate::onboard::model::{
    Outcome, Plan, PlanAction, Progress, RunReport, Step, StepEvent, Verdict,
};
use crate::onboard::remove::{RemovalPlan, RemovalResult};
use crate::onboard::rotate::RotateReport;
use crate::onboard::status::SubscriptionStatus;
use crate::onboard::{SpotAccountChoice, Target};
use crate::secret::Secret;
use crate::spot::SpotAccount;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use std::time::Duration;

/// A signal that ends the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Int,
    Term,
    Hup,
}

/// Everything that can happen to the wizard: terminal input, timer ticks, signals and the
/// results of background work. All arrive over one channel.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    Resize(u16, u16),
    /// A spinner / countdown tick: changes nothing but the frame.
    Tick,
    Signal(SignalKind),
    SpotAccounts(Result<Vec<SpotAccount>, ErrorInfo>),
    SignedIn(Result<Identity, ErrorInfo>),
    Discovered(Result<Discovery, ErrorInfo>),
    Planned {
        generation: u64,
        result: Result<Plan, ErrorInfo>,
    },
    Progress(Progress),
    /// The run of the confirmed plan (one subscription or many).
    Applied(Result<Box<RunReport>, ErrorInfo>),
    StatusRead(Result<Vec<SubscriptionStatus>, ErrorInfo>),
    Rotated(Result<Box<RotateReport>, ErrorInfo>),
    RemovalPlanned(Result<Vec<RemovalPlan>, ErrorInfo>),
    Removed(Vec<RemovalResult>),
}

/// The operator's choices, as the engine takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub app_name: Option<String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub spot_account: SpotAccountChoice,
    /// Take over connections that are not ours (the review's `t`, `--take-over`).
    pub take_over: bool,
}

/// Work the loop must start.
#[derive(Debug, Clone)]
pub enum Effect {
    /// List Spot accounts with this token.
    LoadSpotAccounts { token: Secret },
    /// Sign in to Azure, then discover tenants and subscriptions.
    SignIn,
    /// From now on sign in with a browser (device code was blocked): a new sign-in session,
    /// then the sign-in (as `SignIn`).
    UseBrowserSignIn,
    /// The address the operator pasted, for the browser sign-in waiting for it.
    PasteRedirect(Secret),
    /// Plan the selected subscriptions (one or many: the engine groups them by tenant).
    Plan {
        generation: u64,
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Carry out the plan the operator confirmed, exactly.
    Apply { plan: Box<Plan> },
    /// Read the status of these subscriptions.
    ReadStatus {
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Rotate the client secret of the tenant's app.
    Rotate { tenant: String, choices: Choices },
    /// Look up what removing these subscriptions would delete.
    PlanRemoval {
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Carry out removal plans.
    Remove { plans: Vec<RemovalPlan> },
    /// Put this text on the terminal's clipboard (OSC 52). Only ever the sign-in address or
    /// the device code: never a token or a secret.
    Copy { text: String },
    /// Leave the full screen and print the sign-in address raw on one line (so a mouse copy
    /// takes it whole); the next key comes back (`Effect::ResumeScreen`).
    PrintUrl { url: String },
    /// Back to the full screen after `PrintUrl`, redrawn whole.
    ResumeScreen,
    /// Stop everything and leave with this exit code.
    Quit(i32),
}

/// Applies `action` received at `at` (time since the wizard started).
pub fn update(s: &mut State, action: Action, at: Duration) -> Vec<Effect> {
    let was_busy = s.busy();
    let effects = update_inner(s, action, at);
    // "Quit while this runs?" is moot once nothing runs: the prompt closes with the run.
    if was_busy && !s.busy() && s.confirm_quit {
        s.confirm_quit = false;
    }
    effects
}

fn update_inner(s: &mut State, action: Action, at: Duration) -> Vec<Effect> {
    match action {
        Action::Key(key) => on_key(s, key, at),
        Action::Resize(w, h) => {
            s.size = (w, h);
            vec![]
        }
        Action::Tick => vec![],
        Action::Signal(kind) => {
            log(s, format!("received {kind:?} signal: stopping"));
            quit(s, exit::INTERRUPTED)
        }
        Action::SpotAccounts(r) => {
            match r {
                Ok(list) => {
                    log(s, format!("{} Spot account(s) found", list.len()));
                    s.accounts = Load::Ready(list);
                    s.account_sel = s.account_sel.min(s.account_rows() - 1);
                    clear_error(s, Origin::SpotAccounts);
                }
                Err(e) => {
                    s.accounts = Load::Failed(failed(
                        s,
                        "listing Spot accounts",
                        Some(Origin::SpotAccounts),
                        e,
                    ));
                }
            }
            refresh_pre_steps(s, at);
            vec![]
        }
        Action::SignedIn(r) => {
            let fx = vec![];
            match r {
                Ok(id) => {
                    log(s, format!("signed in as {}", id.display));
                    s.sign_in = Load::Ready(id);
                    s.device_code = None;
                    end_interactive(s);
                    s.discovery = Load::Loading { since: at };
                    clear_error(s, Origin::SignIn);
                }
                Err(e) => {
                    end_interactive(s);
                    s.sign_in = Load::Failed(failed(s, "sign-in", Some(Origin::SignIn), e));
                }
            }
            refresh_pre_steps(s, at);
            fx
        }
        Action::Discovered(r) => {
            match r {
                Ok(d) => {
                    log(
                        s,
                        format!(
                            "{} subscription(s) in {} tenant(s)",
                            d.subscriptions.len(),
                            d.tenants.len()
                        ),
                    );
                    for (t, why) in &d.skipped {
                        log(s, format!("tenant {t} skipped: {why}"));
                    }
                    s.discovery = Load::Ready(d);
                    s.sub_sel = first_selectable(s).unwrap_or(0);
                    clear_error(s, Origin::Discovery);
                }
                Err(e) => {
                    s.discovery = Load::Failed(failed(
                        s,
                        "listing subscriptions",
                        Some(Origin::Discovery),
                        e,
                    ));
                }
            }
            refresh_pre_steps(s, at);
            // The Status screen was opened before the subscriptions were known.
            if s.pane == Pane::Status && matches!(s.health, Load::Idle) {
                return read_status(s, at);
            }
            vec![]
        }
        Action::StatusRead(r) => {
            match r {
                Ok(list) => {
                    log(s, format!("status of {} subscription(s) read", list.len()));
                    s.health_sel = s.health_sel.min(list.len().saturating_sub(1));
                    s.health = Load::Ready(list);
                }
                Err(e) => {
                    s.health = Load::Failed(failed(s, "reading the status", None, e));
                }
            }
            vec![]
        }
        Action::Rotated(r) => {
            match r {
                Ok(rep) => {
                    log(
                        s,
                        format!(
                            "rotation in tenant {}: {}",
                            rep.tenant_id,
                            if rep.complete { "complete" } else { "partial" }
                        ),
                    );
                    s.rotate = OpPhase::Finished(rep);
                }
                Err(e) => {
                    s.rotate = OpPhase::Failed(failed(s, "rotation", None, e));
                }
            }
            vec![]
        }
        Action::RemovalPlanned(r) => {
            match r {
                Ok(plans) => {
                    log(
                        s,
                        format!(
                            "removal plan: {} change(s)",
                            plans.iter().map(|p| p.changes().count()).sum::<usize>()
                        ),
                    );
                    s.removal_rows = plans.iter().flat_map(RemovalRow::of).collect();
                    s.removal_plans = plans;
                    s.remove = OpPhase::Confirm;
                }
                Err(e) => {
                    s.remove = OpPhase::Failed(failed(s, "planning the removal", None, e));
                }
            }
            vec![]
        }
        Action::Removed(results) => {
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            log(
                s,
                format!("removal: {} item(s), {failed} failed", results.len()),
            );
            s.remove = OpPhase::Finished(results);
            vec![]
        }
        Action::Planned { generation, result } => {
            if generation != s.plan_gen {
                return vec![];
            }
            match result {
                Ok(p) => {
                    log(
                        s,
                        format!(
                            "plan: {} write(s), {} blocked",
                            p.writes().count(),
                            p.blocked().count()
                        ),
                    );
                    prefill_names(s, &p);
                    s.plan = Load::Ready(p);
                    s.review_scroll = 0;
                    clear_error(s, Origin::Plan);
                }
                Err(e) => {
                    s.plan = Load::Failed(failed(s, "planning", Some(Origin::Plan), e));
                }
            }
            vec![]
        }
        Action::Progress(p) => {
            on_progress(s, p, at);
            vec![]
        }
        Action::Applied(r) => {
            match r {
                Ok(report) => on_applied(s, *report),
                Err(e) => {
                    s.run = Run::Failed(failed(s, "onboarding", Some(Origin::Apply), e));
                }
            }
            vec![]
        }
    }
}

/// A line of the log pane, without control characters (`crate::text`).
fn log(s: &mut State, line: String) {
    if s.log.len() >= LOG_LINES {
        s.log.pop_front();
    }
    s.log.push_back(crate::text::clean_lines(&line));
}

/// Logs "{what} failed: …" and, with an origin, records the error for the status line and
/// retry; returns it.
fn failed(s: &mut State, what: &str, origin: Option<Origin>, e: ErrorInfo) -> ErrorInfo {
    log(s, format!("{what} failed: {}", e.summary));
    if let Some(o) = origin {
        s.last_error = Some((o, e.clone()));
    }
    e
}

fn clear_error(s: &mut State, origin: Origin) {
    if matches!(s.last_error, Some((o, _)) if o == origin) {
        s.last_error = None;
    }
}

fn quit(s: &mut State, code: i32) -> Vec<Effect> {
    s.exit = Some(code);
    vec![Effect::Quit(code)]
}

/// The exit code if the operator leaves now.
fn exit_code(s: &State) -> i32 {
    match &s.run {
        Run::Finished(b) if b.failed() == 0 && b.stopped.is_none() => exit::DONE,
        Run::Finished(b) if b.failed() < b.reports.len() => exit::PARTIAL,
        Run::Finished(_) | Run::Failed(_) => exit::FAILED,
        // Nothing onboarded: leaving the start screen or a life screen is not an interruption.
        Run::NotStarted if s.pane.full_width() => exit::DONE,
        _ => exit::INTERRUPTED,
    }
}

fn first_selectable(s: &State) -> Option<usize> {
    s.visible_subscriptions()
        .iter()
        .position(|x| x.selectable())
}

/// Sidebar rows for the steps the wizard does itself (before the engine runs).
fn refresh_pre_steps(s: &mut State, at: Duration) {
    if !matches!(s.run, Run::NotStarted) {
        return;
    }
    let spot = match (&s.accounts, s.pane) {
        (Load::Loading { since }, _) => Status::Running {
            since: *since,
            detail: "listing Spot accounts".into(),
        },
        (Load::Failed(e), _) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
        (_, p) if p == Pane::SpotAccount || p.full_width() => Status::Pending,
        // Chosen; the run says later whether it was created or reused.
        _ => Status::Chosen {
            id: s.spot_account_id.clone(),
            detail: account_choice_label(s),
        },
    };
    s.steps.insert(Step::SpotAccount, spot);
    let login = match &s.sign_in {
        Load::Idle => Status::Pending,
        Load::Loading { since } => match &s.device_code {
            Some(_) => Status::Waiting {
                since: *since,
                reason: "waiting for you to sign in".into(),
                attempt: 1,
                next_in: Duration::ZERO,
                at,
            },
            None => Status::Running {
                since: *since,
                detail: "signing in".into(),
            },
        },
        Load::Ready(id) => Status::Chosen {
            id: None,
            detail: format!("signed in as {}", id.display),
        },
        Load::Failed(e) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
    };
    s.steps.insert(Step::AzureLogin, login);
    let sub = match (&s.target, &s.discovery) {
        (Some(_), _) if s.targets.len() > 1 => Status::Chosen {
            id: None,
            detail: format!("{} subscriptions", s.targets.len()),
        },
        (Some(t), _) => Status::Chosen {
            id: Some(t.subscription_id.clone()),
            detail: t.subscription_name.clone(),
        },
        (None, Load::Loading { since }) => Status::Running {
            since: *since,
            detail: "listing subscriptions".into(),
        },
        (None, Load::Failed(e)) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
        _ => Status::Pending,
    };
    s.steps.insert(Step::Subscription, sub);
}

fn account_choice_label(s: &State) -> String {
    match account_choice(s) {
        SpotAccountChoice::Auto => "automatic".into(),
        SpotAccountChoice::New => "new account".into(),
        SpotAccountChoice::Existing(id) => id,
    }
}

/// The names the plan will use are shown in the fields, unless the operator typed their own.
fn prefill_names(s: &mut State, p: &Plan) {
    let name_of = |step: Step, object: &str| {
        p.items
            .iter()
            .find(|i| i.step == step && i.object == object)
            .map(|i| i.name.clone())
    };
    if s.app_name_text().is_empty()
        && let Some(n) = name_of(Step::AppRegistration, "app registration")
    {
        set_text(&mut s.app_name, &n);
        s.app_name_default = Some(n);
    }
    if s.role_name_text().is_empty()
        && let Some(n) = name_of(Step::CustomRole, "custom role")
    {
        set_text(&mut s.role_name, &n);
        s.role_name_default = Some(n);
    }
}

fn set_text(t: &mut ratatui_textarea::TextArea<'static>, text: &str) {
    t.select_all();
    t.cut();
    t.insert_str(text);
}

pub fn choices(s: &State) -> Choices {
    // An empty field means the default name (the engine's, or the plan's once known).
    let name = |text: String, default: &Option<String>| {
        if text.is_empty() {
            default.clone()
        } else {
            Some(text)
        }
    };
    Choices {
        app_name: name(s.app_name_text(), &s.app_name_default),
        role_name: name(s.role_name_text(), &s.role_name_default),
        secret_months: s.secret_months(),
        spot_account: account_choice(s),
        take_over: s.take_over,
    }
}

/// The names for work over several tenants (bulk, status, rotate, remove): what the operator
/// typed or gave on the command line, never the first tenant's default name.
pub fn shared_choices(s: &State) -> Choices {
    let pick = |text: String, default: &Option<String>, cli: &Option<String>| {
        if text.is_empty() || Some(&text) == default.as_ref() {
            cli.clone()
        } else {
            Some(text)
        }
    };
    Choices {
        app_name: pick(s.app_name_text(), &s.app_name_default, &s.app_name_cli),
        role_name: pick(s.role_name_text(), &s.role_name_default, &s.role_name_cli),
        ..choices(s)
    }
}

/// The operator's choices for this run: with several subscriptions (maybe of several
/// tenants) the shared names, never the first tenant's default.
fn run_choices(s: &State) -> Choices {
    let several = s.targets.len() > 1
        || s.plan.ready().is_some_and(|p| p.subscriptions.len() > 1)
        || matches!(&s.run, Run::Finished(b) if b.reports.len() > 1);
    if several {
        shared_choices(s)
    } else {
        choices(s)
    }
}

fn start_plan(s: &mut State, at: Duration) -> Vec<Effect> {
    let targets = if s.targets.is_empty() {
        s.target.iter().cloned().collect()
    } else {
        s.targets.clone()
    };
    if targets.is_empty() {
        return vec![];
    }
    let choices = run_choices(s);
    s.plan_gen += 1;
    s.plan = Load::Loading { since: at };
    vec![Effect::Plan {
        generation: s.plan_gen,
        targets,
        choices,
    }]
}

/// Carries out the plan on screen (the one the operator confirmed).
fn start_apply(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(plan) = s.plan.ready().cloned() else {
        return vec![];
    };
    s.run = Run::Running { since: at };
    s.last_error = None;
    s.pane = Pane::Apply;
    for step in [
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
    ] {
        if matches!(s.status(step), Status::Failed { .. }) {
            s.steps.insert(step, Status::Pending);
        }
    }
    if plan.subscriptions.len() > 1 {
        log(
            s,
            format!("onboarding {} subscriptions", plan.subscriptions.len()),
        );
        s.bulk_rows = plan
            .subscriptions
            .iter()
            .map(|t| {
                (
                    t.subscription_id.clone(),
                    (Step::AppRegistration, Status::Pending),
                )
            })
            .collect();
    } else if let Some(t) = plan.subscriptions.first() {
        log(
            s,
            format!("onboarding {} ({})", t.subscription_name, t.subscription_id),
        );
    }
    vec![Effect::Apply {
        plan: Box::new(plan),
    }]
}

fn on_applied(s: &mut State, report: RunReport) {
    // One subscription that failed: the error stays on the Apply screen (r plans again).
    if let ([one], None) = (report.reports.as_slice(), &report.stopped) {
        if let Some(a) = &one.spot_account_id {
            s.spot_account_id = Some(a.clone());
        }
        if one.verdict != Verdict::Connected {
            let e = one.error.clone().unwrap_or(ErrorInfo {
                summary: "the subscription was not connected".into(),
                api: None,
                hint: None,
            });
            s.run = Run::Failed(failed(s, "onboarding", Some(Origin::Apply), e));
            return;
        }
        log(s, format!("subscription {} connected", one.subscription_id));
        s.steps.insert(
            Step::Done,
            Status::Done {
                outcome: Outcome::Created,
                id: None,
                detail: "connected".into(),
                elapsed: None,
            },
        );
        s.run = Run::Finished(Box::new(report));
        s.pane = Pane::Done;
        s.last_error = None;
        return;
    }
    let failed = report.failed();
    log(
        s,
        format!(
            "{} of {} subscription(s) connected",
            report.reports.len() - failed,
            report.reports.len()
        ),
    );
    // One account each: the header names one only when they all share it.
    let first = report
        .reports
        .iter()
        .find_map(|r| r.spot_account_id.clone());
    s.spot_account_id = first.filter(|a| {
        report
            .reports
            .iter()
            .all(|r| r.spot_account_id.as_ref() == Some(a))
    });
    let ok = failed == 0 && report.stopped.is_none();
    s.steps.insert(
        Step::Done,
        if ok {
            Status::Done {
                outcome: Outcome::Created,
                id: None,
                detail: "connected".into(),
                elapsed: None,
            }
        } else {
            Status::Failed {
                error: report.stopped.clone().unwrap_or(ErrorInfo {
                    summary: format!("{failed} subscription(s) not connected"),
                    api: None,
                    hint: None,
                }),
                elapsed: None,
            }
        },
    );
    s.last_error = (!ok).then(|| {
        (
            Origin::Apply,
            ErrorInfo {
                summary: format!("{failed} subscription(s) not connected"),
                api: None,
                hint: Some("press r to plan the failed ones again".into()),
            },
        )
    });
    s.run = Run::Finished(Box::new(report));
    s.pane = Pane::Done;
}

/// The subscriptions whose status is read: every selectable one of the signed-in tenants.
fn read_status(s: &mut State, at: Duration) -> Vec<Effect> {
    if s.discovery.ready().is_none() {
        // Started when the subscriptions arrive.
        s.health = Load::Idle;
        return vec![];
    }
    let targets: Vec<Target> = s
        .selectable_subscriptions()
        .into_iter()
        .map(Target::from)
        .collect();
    s.health = Load::Loading { since: at };
    vec![Effect::ReadStatus {
        targets,
        choices: shared_choices(s),
    }]
}

fn status_of(event: StepEvent, prev_since: Option<Duration>, at: Duration) -> Status {
    let elapsed = prev_since.map(|p| at.saturating_sub(p));
    match event {
        StepEvent::Started { detail } => Status::Running { since: at, detail },
        StepEvent::Waiting {
            reason,
            attempt,
            next_in,
        } => Status::Waiting {
            since: prev_since.unwrap_or(at),
            reason,
            attempt,
            next_in,
            at,
        },
        StepEvent::Finished {
            outcome,
            id,
            detail,
        } => Status::Done {
            outcome,
            id,
            detail,
            elapsed,
        },
        StepEvent::Failed { error } => Status::Failed { error, elapsed },
        StepEvent::Skipped { reason } => Status::Skipped { reason },
    }
}

/// A rotation's or removal's progress: one line per (step, subscription), latest status.
fn op_progress(
    s: &mut State,
    step: Step,
    subscription: Option<String>,
    event: StepEvent,
    at: Duration,
) {
    let i = s
        .op_lines
        .iter()
        .position(|l| l.step == step && l.subscription == subscription);
    let prev_since = i.and_then(|i| s.op_lines[i].status.since());
    let status = status_of(event, prev_since, at);
    match i {
        Some(i) => s.op_lines[i].status = status,
        None => s.op_lines.push(OpLine {
            step,
            subscription,
            status,
        }),
    }
}

fn on_progress(s: &mut State, p: Progress, at: Duration) {
    match p {
        Progress::DeviceCode(prompt) => {
            log(
                s,
                format!("device code issued, expires {}", prompt.expires_at),
            );
            s.device_code = Some(prompt);
            s.copied = None;
            if matches!(s.sign_in, Load::Idle) {
                s.sign_in = Load::Loading { since: at };
            }
            refresh_pre_steps(s, at);
        }
        Progress::Browser(prompt) => {
            log(
                s,
                format!(
                    "browser sign-in started (tenant {}, redirect {})",
                    prompt.tenant, prompt.redirect_uri
                ),
            );
            s.browser = Some(prompt);
            s.device_code = None;
            s.sign_in_note = None;
            s.copied = None;
            set_text(&mut s.paste, "");
            if matches!(s.sign_in, Load::Idle) {
                s.sign_in = Load::Loading { since: at };
            }
            if s.browser_shown() && s.field.is_none() {
                s.field = Some(Field::Paste);
            }
            refresh_pre_steps(s, at);
        }
        Progress::SignInAgain { tenant, reason } => {
            log(
                s,
                format!("tenant {tenant} asks to sign in again: {reason}"),
            );
            s.sign_in_again = Some((tenant, reason));
        }
        Progress::RedirectRefused { message } => {
            log(s, format!("address refused: {message}"));
            s.sign_in_note = Some(message);
        }
        Progress::SignInFinished { tenant, ok } => {
            if s.sign_in_again.is_some() {
                log(
                    s,
                    if ok {
                        format!("signed in to tenant {tenant} again")
                    } else {
                        format!("signing in to tenant {tenant} again failed")
                    },
                );
                s.device_code = None;
            }
            end_interactive(s);
        }
        Progress::Log { message } => log(s, message),
        Progress::Step {
            subscription,
            step,
            event,
        } => {
            if s.op_active() {
                op_progress(s, step, subscription, event, at);
                return;
            }
            if let Some(sub) = &subscription
                && s.targets.len() > 1
            {
                // Each subscription's row; the sidebar shows the latest news of any.
                let Some((_, prev)) = s.bulk_rows.get(sub) else {
                    return;
                };
                let row = status_of(event.clone(), prev.since(), at);
                s.bulk_rows.insert(sub.clone(), (step, row));
            } else if let (Some(sub), Some(t)) = (&subscription, &s.target)
                && sub != &t.subscription_id
            {
                return;
            }
            let prev_since = s.status(step).since();
            let elapsed = prev_since.map(|p| at.saturating_sub(p));
            let status = match event {
                StepEvent::Started { detail } => {
                    log(s, format!("{}: {detail}", step.label()));
                    Status::Running { since: at, detail }
                }
                StepEvent::Waiting {
                    reason,
                    attempt,
                    next_in,
                } => {
                    log(
                        s,
                        format!(
                            "{}: {reason} (attempt {attempt}, next in {} s)",
                            step.label(),
                            secs(next_in)
                        ),
                    );
                    Status::Waiting {
                        since: prev_since.unwrap_or(at),
                        reason,
                        attempt,
                        next_in,
                        at,
                    }
                }
                StepEvent::Finished {
                    outcome,
                    id,
                    detail,
                } => {
                    log(s, format!("{}: {detail}", step.label()));
                    // Several subscriptions have an account each: the header names none.
                    if step == Step::SpotAccount
                        && s.targets.len() <= 1
                        && let Some(id) = &id
                    {
                        s.spot_account_id = Some(id.clone());
                    }
                    Status::Done {
                        outcome,
                        id,
                        detail,
                        elapsed,
                    }
                }
                StepEvent::Failed { error } => {
                    log(s, format!("{}: failed: {}", step.label(), error.summary));
                    s.last_error = Some((Origin::Apply, error.clone()));
                    Status::Failed { error, elapsed }
                }
                StepEvent::Skipped { reason } => {
                    log(s, format!("{}: skipped: {reason}", step.label()));
                    Status::Skipped { reason }
                }
            };
            s.steps.insert(step, status);
            if s.run_active() || matches!(s.run, Run::Failed(_)) {
                s.apply_focus = Some(step);
            }
        }
    }
}

fn on_key(s: &mut State, key: KeyEvent, at: Duration) -> Vec<Effect> {
    if key.kind != ratatui::crossterm::event::KeyEventKind::Press {
        return vec![];
    }
    // The address is printed outside the full screen: any key comes back, changing nothing
    // else.
    if s.url_printed {
        s.url_printed = false;
        return vec![Effect::ResumeScreen];
    }
    let active = s.contexts();
    let pane = s.pane;
    let fx = match keymap::lookup(&key, &active) {
        Some(b) => on_cmd(s, b.cmd, at),
        None => {
            if let Some(f) = s.field {
                type_into(s, f, key);
            }
            vec![]
        }
    };
    // Arriving where the browser sign-in waits: the paste field takes the keys.
    if s.pane != pane && s.browser_shown() && s.field.is_none() {
        s.field = Some(Field::Paste);
    }
    fx
}

/// A copy key: `text` (the sign-in address or the device code) to the clipboard.
fn copy(s: &mut State, what: &str, text: String) -> Vec<Effect> {
    log(s, format!("{what} copied to the clipboard (OSC 52)"));
    s.copied = Some(what.to_string());
    vec![Effect::Copy { text }]
}

/// The interactive sign-in ended: its browser prompt, note and paste field go.
fn end_interactive(s: &mut State) {
    s.copied = None;
    s.browser = None;
    s.sign_in_note = None;
    s.sign_in_again = None;
    set_text(&mut s.paste, "");
    if s.field == Some(Field::Paste) {
        s.field = None;
    }
}

/// Enter in the paste field: the address goes to the browser sign-in (which checks it).
fn submit_paste(s: &mut State) -> Vec<Effect> {
    let text = s.paste.lines().join("").trim().to_string();
    set_text(&mut s.paste, "");
    if text.is_empty() {
        s.sign_in_note = Some(
            "nothing was pasted: paste the whole address from the browser's address bar".into(),
        );
        return vec![];
    }
    s.sign_in_note = None;
    vec![Effect::PasteRedirect(Secret::new(text))]
}

fn type_into(s: &mut State, f: Field, key: KeyEvent) {
    // Single-line fields: no newlines, no multi-line shortcuts.
    if matches!(key.code, KeyCode::Enter | KeyCode::Tab) {
        return;
    }
    let area = match f {
        Field::Token => &mut s.token,
        Field::Filter => &mut s.filter,
        Field::AppName => &mut s.app_name,
        Field::RoleName => &mut s.role_name,
        Field::Paste => &mut s.paste,
    };
    area.input(key);
    if f == Field::Filter {
        s.sub_sel = first_selectable(s).unwrap_or(0);
    }
}

/// Leaves the focused field; a changed field starts what depends on it.
fn leave_field(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(f) = s.field.take() else {
        return vec![];
    };
    match f {
        Field::Token => {
            let t = s.token_text();
            if !t.is_empty() && t != s.token_loaded {
                return load_accounts(s, at);
            }
            vec![]
        }
        Field::AppName | Field::RoleName => {
            if s.target.is_some() {
                let c = choices(s);
                let planned = match s.plan.ready() {
                    Some(p) => {
                        let name = |step, obj: &str| {
                            p.items
                                .iter()
                                .find(|i| i.step == step && i.object == obj)
                                .map(|i| i.name.clone())
                        };
                        c.app_name == name(Step::AppRegistration, "app registration")
                            && c.role_name == name(Step::CustomRole, "custom role")
                    }
                    None => false,
                };
                if !planned {
                    return start_plan(s, at);
                }
            }
            vec![]
        }
        Field::Filter | Field::Paste => vec![],
    }
}

/// The explicit yes of a rotation or removal.
fn confirm_op(s: &mut State, at: Duration) -> Vec<Effect> {
    match s.pane {
        Pane::Rotate if matches!(s.rotate, OpPhase::Confirm) => {
            let tenants = s.tenants_with_subscriptions();
            let Some((tenant, name)) = tenants.get(s.tenant_sel).cloned() else {
                return vec![];
            };
            log(
                s,
                format!("rotating the client secret in {name} ({tenant})"),
            );
            s.op_lines.clear();
            s.rotate = OpPhase::Running { since: at };
            vec![Effect::Rotate {
                tenant,
                choices: shared_choices(s),
            }]
        }
        Pane::Remove if matches!(s.remove, OpPhase::Confirm) => {
            let plans = s.removal_plans.clone();
            log(s, "removing".to_string());
            s.op_lines.clear();
            s.remove = OpPhase::Running { since: at };
            vec![Effect::Remove { plans }]
        }
        _ => vec![],
    }
}

pub fn load_accounts(s: &mut State, at: Duration) -> Vec<Effect> {
    let t = s.token_text();
    if t.is_empty() {
        return vec![];
    }
    s.token_loaded = t.clone();
    s.accounts = Load::Loading { since: at };
    refresh_pre_steps(s, at);
    vec![Effect::LoadSpotAccounts {
        token: Secret::new(t),
    }]
}

/// The effects the wizard starts with: the lookups that need nothing from the operator.
pub fn start(s: &mut State, at: Duration) -> Vec<Effect> {
    let mut fx = load_accounts(s, at);
    s.sign_in = Load::Loading { since: at };
    fx.push(Effect::SignIn);
    refresh_pre_steps(s, at);
    fx
}

fn list_len(s: &State) -> usize {
    match s.pane {
        Pane::Start => MENU.len(),
        Pane::Status => s.health.ready().map(Vec::len).unwrap_or(0),
        Pane::Rotate => s.tenants_with_subscriptions().len(),
        Pane::Remove => s.selectable_subscriptions().len(),
        Pane::SpotAccount => s.account_rows(),
        Pane::Subscription => s.visible_subscriptions().len(),
        Pane::ClientSecret => SECRET_MONTHS.len(),
        // The review's lines: one per object, plus headers.
        Pane::Confirm => s.plan.ready().map_or(0, |p| {
            // The blocked items come first too, their reasons wrapped (a row per ~20
            // characters is more than enough at 80 columns).
            let blocked: usize = p.blocked().map(|i| i.reason.len() / 20 + 3).sum();
            p.items.len() * 2 + p.counts.len() + 8 + blocked
        }),
        _ => 0,
    }
}

fn move_sel(s: &mut State, down: bool) {
    let n = list_len(s);
    if n == 0 {
        return;
    }
    let step = |i: usize| {
        if down {
            (i + 1).min(n - 1)
        } else {
            i.saturating_sub(1)
        }
    };
    match s.pane {
        Pane::SpotAccount => s.account_sel = step(s.account_sel),
        Pane::Start => s.menu_sel = step(s.menu_sel),
        Pane::Status => s.health_sel = step(s.health_sel),
        Pane::Rotate => s.tenant_sel = step(s.tenant_sel),
        Pane::Remove => s.remove_sel = step(s.remove_sel),
        Pane::ClientSecret => s.months_sel = step(s.months_sel),
        Pane::Confirm => s.review_scroll = step(s.review_scroll),
        Pane::Subscription => {
            // Skip rows that cannot be chosen (Disabled, Deleted, PastDue).
            let subs = s.visible_subscriptions();
            let mut i = s.sub_sel.min(n - 1);
            loop {
                let j = step(i);
                if j == i {
                    break;
                }
                i = j;
                if subs[i].selectable() {
                    s.sub_sel = i;
                    break;
                }
            }
        }
        _ => {}
    }
}

fn on_cmd(s: &mut State, cmd: Cmd, at: Duration) -> Vec<Effect> {
    match cmd {
        Cmd::Quit => {
            if s.confirm_quit {
                return quit(s, exit::INTERRUPTED);
            }
            if s.busy() {
                s.confirm_quit = true;
                s.show_help = false;
                vec![]
            } else {
                let code = exit_code(s);
                quit(s, code)
            }
        }
        Cmd::Yes => quit(s, exit::INTERRUPTED),
        Cmd::No => {
            s.confirm_quit = false;
            vec![]
        }
        Cmd::Help => {
            s.show_help = true;
            vec![]
        }
        Cmd::CloseHelp => {
            s.show_help = false;
            vec![]
        }
        Cmd::ToggleLog => {
            s.show_log = !s.show_log;
            vec![]
        }
        Cmd::Up => {
            move_sel(s, false);
            vec![]
        }
        Cmd::Down => {
            move_sel(s, true);
            vec![]
        }
        Cmd::Filter => {
            s.field = Some(Field::Filter);
            vec![]
        }
        Cmd::NextField => {
            if s.field.is_some() {
                leave_field(s, at)
            } else {
                s.field = match s.pane {
                    _ if s.browser_shown() => Some(Field::Paste),
                    Pane::SpotAccount => Some(Field::Token),
                    Pane::AppRegistration => Some(Field::AppName),
                    Pane::CustomRole => Some(Field::RoleName),
                    _ => None,
                };
                vec![]
            }
        }
        Cmd::Back => {
            if s.field == Some(Field::Filter) {
                // Esc in the filter clears it.
                set_text(&mut s.filter, "");
                s.field = None;
                s.sub_sel = first_selectable(s).unwrap_or(0);
                return vec![];
            }
            if s.field.is_some() {
                return leave_field(s, at);
            }
            match s.pane {
                // From a confirmation back to the choice; from a result to the start screen.
                Pane::Rotate if matches!(s.rotate, OpPhase::Confirm) => {
                    s.rotate = OpPhase::Choose;
                    return vec![];
                }
                Pane::Remove if matches!(s.remove, OpPhase::Confirm) => {
                    s.remove = OpPhase::Choose;
                    return vec![];
                }
                Pane::Rotate | Pane::Remove => {
                    s.rotate = OpPhase::Choose;
                    s.remove = OpPhase::Choose;
                    s.op_lines.clear();
                    if matches!(s.last_error, Some((Origin::Rotate | Origin::Remove, _))) {
                        s.last_error = None;
                    }
                }
                _ => {}
            }
            if let Some(p) = s.pane.prev() {
                s.pane = p;
                refresh_pre_steps(s, at);
            }
            vec![]
        }
        Cmd::Retry => retry(s, at),
        Cmd::Replan => {
            if !(s.pane == Pane::Confirm && s.plan_blocked()) {
                return vec![];
            }
            log(s, "planning again".into());
            s.review_scroll = 0;
            start_plan(s, at)
        }
        Cmd::Toggle => {
            if let Some(sub) = s.selected_subscription()
                && sub.selectable()
            {
                let id = sub.subscription_id.clone();
                if !s.selected.remove(&id) {
                    s.selected.insert(id);
                }
            }
            vec![]
        }
        Cmd::Refresh => read_status(s, at),
        Cmd::TakeOver => {
            if !s.contexts().contains(&keymap::Ctx::CanTakeOver) {
                return vec![];
            }
            // The plan is made again: its review says what a take-over replaces, and that it
            // cannot be undone, before Enter writes anything.
            s.take_over = !s.take_over;
            let what = if s.take_over {
                "take over: the plan replaces the credentials of connections that are not ours"
            } else {
                "keep: connections that are not ours are left as they are"
            };
            log(s, what.into());
            start_plan(s, at)
        }
        Cmd::Confirm => confirm_op(s, at),
        Cmd::BrowserSignIn => {
            if !s.device_code_blocked() {
                return vec![];
            }
            log(
                s,
                "device code blocked by Conditional Access: signing in with a browser".into(),
            );
            s.auth_method = crate::azure::auth::AuthMethod::Browser;
            s.last_error = None;
            s.device_code = None;
            s.pane = Pane::AzureLogin;
            s.sign_in = Load::Loading { since: at };
            refresh_pre_steps(s, at);
            vec![Effect::UseBrowserSignIn]
        }
        Cmd::CopyCode => match s.sign_in_code().map(str::to_string) {
            Some(text) => copy(s, "the device code", text),
            None => vec![],
        },
        Cmd::CopyUrl => match s.sign_in_url().map(str::to_string) {
            Some(text) => copy(s, "the sign-in address", text),
            None => vec![],
        },
        Cmd::ShowUrl => {
            let Some(url) = s.browser_shown().then(|| s.sign_in_url()).flatten() else {
                return vec![];
            };
            let url = url.to_string();
            s.url_printed = true;
            vec![Effect::PrintUrl { url }]
        }
        Cmd::Continue if s.field == Some(Field::Paste) => submit_paste(s),
        Cmd::Continue => {
            if s.field.is_some() {
                // Enter in a field leaves it, keeping what was typed; in the filter, choosing
                // a subscription stays a separate act (Space, then Enter).
                return leave_field(s, at);
            }
            advance(s, at)
        }
    }
}

fn retry(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(origin) = s.retryable() else {
        return vec![];
    };
    s.last_error = None;
    match origin {
        Origin::SpotAccounts => load_accounts(s, at),
        Origin::SignIn => {
            s.sign_in = Load::Loading { since: at };
            s.device_code = None;
            refresh_pre_steps(s, at);
            vec![Effect::SignIn]
        }
        Origin::Discovery => {
            // Discovery runs right after sign-in: sign in again (tokens are cached).
            s.discovery = Load::Idle;
            s.sign_in = Load::Loading { since: at };
            refresh_pre_steps(s, at);
            vec![Effect::SignIn]
        }
        Origin::Plan => start_plan(s, at),
        Origin::Apply => {
            // What was written since the plan was made: plan again (the failed subscriptions
            // only, after a run of several) and review it before anything more is written.
            if let Run::Finished(b) = &s.run {
                let failed: Vec<String> = b
                    .reports
                    .iter()
                    .filter(|r| r.verdict != Verdict::Connected)
                    .map(|r| r.subscription_id.clone())
                    .collect();
                s.targets.retain(|t| failed.contains(&t.subscription_id));
                s.target = s.targets.first().cloned();
            }
            // The names of the run (shared ones after a run of several), then a fresh start.
            let fx = start_plan(s, at);
            s.run = Run::NotStarted;
            s.last_error = None;
            s.pane = Pane::Confirm;
            fx
        }
        Origin::Status => read_status(s, at),
        Origin::Rotate | Origin::Remove => vec![],
    }
}

/// Enter on a pane: take its choice and move on, when it can be taken.
fn advance(s: &mut State, at: Duration) -> Vec<Effect> {
    let mut fx = vec![];
    match s.pane {
        Pane::Start => {
            match s.menu_sel {
                0 => {
                    s.pane = Pane::SpotAccount;
                    refresh_pre_steps(s, at);
                }
                1 => {
                    s.pane = Pane::Status;
                    // Read afresh each time: a rotation or removal may have changed it.
                    if !s.health.is_loading() {
                        return read_status(s, at);
                    }
                }
                2 => {
                    s.pane = Pane::Rotate;
                    s.rotate = OpPhase::Choose;
                }
                _ => {
                    s.pane = Pane::Remove;
                    s.remove = OpPhase::Choose;
                }
            }
            return vec![];
        }
        Pane::Status => return vec![],
        Pane::Rotate => {
            if matches!(s.rotate, OpPhase::Choose)
                && s.tenant_sel < s.tenants_with_subscriptions().len()
            {
                s.rotate = OpPhase::Confirm;
            }
            return vec![];
        }
        Pane::Remove => {
            if !matches!(s.remove, OpPhase::Choose) {
                return vec![];
            }
            let Some(sub) = s.selectable_subscriptions().get(s.remove_sel).copied() else {
                return vec![];
            };
            let target = Target::from(sub);
            s.remove = OpPhase::Planning { since: at };
            s.removal_plans.clear();
            s.removal_rows.clear();
            s.op_lines.clear();
            return vec![Effect::PlanRemoval {
                targets: vec![target],
                choices: shared_choices(s),
            }];
        }
        Pane::SpotAccount => {
            if s.token_text().trim().is_empty() {
                // Nothing can be done in Spot without a token: ask for it.
                s.field = Some(Field::Token);
                return vec![];
            }
            if let SpotAccountChoice::Existing(id) = account_choice(s) {
                s.spot_account_id = Some(id);
            } else {
                s.spot_account_id = None;
            }
            s.pane = Pane::AzureLogin;
        }
        Pane::AzureLogin => {
            if s.sign_in.ready().is_some() {
                s.pane = Pane::Subscription;
            }
        }
        Pane::Subscription => {
            // Toggled ones (in discovery order), or else the highlighted one.
            let toggled: Vec<Target> = s
                .discovery
                .ready()
                .map(|d| {
                    d.subscriptions
                        .iter()
                        .filter(|x| x.selectable() && s.selected.contains(&x.subscription_id))
                        .map(Target::from)
                        .collect()
                })
                .unwrap_or_default();
            let targets = if toggled.is_empty() {
                let Some(sub) = s.selected_subscription() else {
                    return vec![];
                };
                if !sub.selectable() {
                    return vec![];
                }
                vec![Target::from(sub)]
            } else {
                toggled
            };
            let target = targets[0].clone();
            let changed = s.target.as_ref() != Some(&target) || s.targets != targets;
            s.targets = targets;
            s.target = Some(target);
            if changed || matches!(s.plan, Load::Idle | Load::Failed(_)) {
                fx = start_plan(s, at);
            }
            s.pane = Pane::AppRegistration;
        }
        Pane::AppRegistration => s.pane = Pane::ClientSecret,
        Pane::ClientSecret => s.pane = Pane::CustomRole,
        Pane::CustomRole => s.pane = Pane::Confirm,
        Pane::Confirm => {
            if let Some(p) = s.plan.ready()
                && !p.items.iter().any(|i| i.action == PlanAction::Blocked)
                && !one_account_for_several(s)
            {
                fx = start_apply(s, at);
            }
            return fx;
        }
        Pane::Apply => {
            if let Run::Finished(_) = s.run {
                s.pane = Pane::Done;
            }
        }
        Pane::Done => {
            let code = exit_code(s);
            return quit(s, code);
        }
    }
    refresh_pre_steps(s, at);
    fx
}
