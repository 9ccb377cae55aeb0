//! The non-interactive commands: `apply`, `plan`, `status`, `rotate-secret`, `remove`.
//!
//! `plan` and `apply` make one plan for all the subscriptions given (the engine groups them by
//! tenant); `apply` writes exactly that plan. A line per step on stderr (waits included),
//! `--json` on stdout (the plan; the report of one subscription, or the array of reports), each
//! report saved under `<state_dir>/reports/`. Writes need `--yes` when stdin is not a terminal.
//! Exit 0 all connected, 3 some failed, 1 all failed, stopped or blocked.

use crate::cli::{Cli, CommonOpts};
use crate::error::Error;
use crate::onboard::model::{Outcome, PlanAction, Progress, RunReport, StepEvent, Verdict};
use crate::onboard::policy::Policy;
use crate::onboard::state::save_report;
use crate::onboard::{self, Session, Target};
use crate::onboard::{Plan, PlanView};
pub use report::{CommandError, Kind, Status, hint_text};
use std::io::IsTerminal;

pub mod lines;
pub mod logout;
pub mod reconcile;
pub mod remove;
pub mod report;
pub mod rotate;
pub mod signin;
pub mod status;

/// What every command returns to `main` (report.rs).
pub type CommandResult = Result<report::Outcome, CommandError>;

pub async fn apply(cli: &Cli) -> CommandResult {
    interruptible(run(&cli.opts, true, false)).await
}

pub async fn plan(cli: &Cli, o: &crate::cli::PlanOpts) -> CommandResult {
    interruptible(run(&cli.opts, false, o.detailed_exitcode)).await
}

/// What a command's result is when a signal stops it.
pub(crate) trait OnSignal {
    fn interrupted(signal: &str) -> Self;
}

impl OnSignal for CommandResult {
    fn interrupted(signal: &str) -> Self {
        Err(CommandError::new(
            Kind::Interrupted,
            format!(
                "interrupted ({signal}); what was done is recorded, run the command again to continue"
            ),
        ))
    }
}

/// Ctrl-C, SIGTERM or SIGHUP: stop (exit 130). The state file already holds every write made
/// (it is written after each one), so the next run continues from there.
async fn interruptible<T: OnSignal>(work: impl std::future::Future<Output = T>) -> T {
    tokio::select! {
        r = work => r,
        signal = interrupted() => T::interrupted(signal),
    }
}

async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return "Ctrl-C";
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Signs in (printing the outcome), trying again after a failure in flight.
async fn sign_in(session: &Session) -> Result<(), CommandError> {
    eprintln!("  … Azure login: signing in");
    let mut tries = 0u64;
    let signed_in = loop {
        match session.auth.sign_in().await {
            // A lost reply to the device-code poll makes the next poll "already redeemed"
            // (AADSTS54005): start over, like any failure in flight.
            Err(e)
                if (crate::onboard::retry::is_transient(&e)
                    || e.api().is_some_and(|a| a.has_code("AADSTS54005")))
                    && tries < 3 =>
            {
                tries += 1;
                tracing::info!(error = %e, "sign-in failed in flight: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            r => break r,
        }
    };
    let id = signed_in.map_err(CommandError::sign_in)?;
    let kept = if session.auth.signed_in_from_keyring() {
        " (kept sign-in; `spot-connect logout` forgets it)"
    } else {
        ""
    };
    eprintln!("  ✓ Azure login: signed in as {}{kept}", id.display);
    Ok(())
}

/// `--subscription`/`--all-subscriptions` resolved, tried again on transient errors. A tenant
/// that could not be listed whole stops the run (`Error::Incomplete`, exit 3), or, with
/// `--skip-unreachable`, is skipped loudly: said here and again after the run
/// ([`say_skipped`]).
async fn resolve_targets(session: &Session, opts: &CommonOpts) -> Result<Vec<Target>, Error> {
    let mut tries = 0u64;
    loop {
        match session
            .resolve_targets(
                &opts.subscriptions,
                opts.all_subscriptions,
                opts.skip_unreachable,
            )
            .await
        {
            Err(e) if crate::onboard::retry::is_transient(&e) && tries < 3 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            Ok(r) => {
                if let Ok(mut s) = SKIPPED.lock() {
                    s.clone_from(&r.unreachable);
                }
                say_skipped();
                return Ok(r.targets);
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`resolve_targets`] and the plan of its targets in one pipeline (`onboard::plan_listed`),
/// tried again on transient errors of the resolution. The plan's own result is returned as
/// it is (None: no target).
async fn resolve_and_plan(
    session: &Session,
    opts: &CommonOpts,
    settings: &onboard::Settings,
) -> Result<(Vec<Target>, Option<Result<onboard::Plan, Error>>), Error> {
    let mut tries = 0u64;
    loop {
        match onboard::plan_listed(
            session,
            &opts.subscriptions,
            opts.all_subscriptions,
            opts.skip_unreachable,
            settings,
        )
        .await
        {
            Err(e) if crate::onboard::retry::is_transient(&e) && tries < 3 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            Ok((r, plan)) => {
                if let Ok(mut s) = SKIPPED.lock() {
                    s.clone_from(&r.unreachable);
                }
                say_skipped();
                return Ok((r.targets, plan));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `--management-group`: the enabled subscriptions below the group (nested groups included,
/// `--exclude-subscription` left out), the tree printed on stderr, and the group put into the
/// settings for the engine.
pub(crate) async fn management_group_targets(
    session: &Session,
    opts: &CommonOpts,
    settings: &mut crate::onboard::Settings,
) -> Result<Vec<Target>, Error> {
    let id = opts.management_group.clone().unwrap_or_default();
    let mut tries = 0u64;
    let r = loop {
        match crate::onboard::fleet::resolve(session, &id, &opts.exclude_subscriptions).await {
            Err(e) if crate::onboard::retry::is_transient(&e) && tries < 3 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            r => break r?,
        }
    };
    eprintln!(
        "management group {} ({}) in tenant {}: {} enabled subscription(s) to connect, {} excluded, {} not enabled",
        r.display_name,
        r.group_id,
        r.tenant_id,
        r.targets.len(),
        r.excluded.len(),
        r.not_enabled.len()
    );
    for line in r.tree_lines() {
        eprintln!("  {}", crate::text::clean(&line));
    }
    settings.management_group = Some(r.scope(opts.prune_subscription_assignments));
    Ok(r.targets)
}

/// What `--skip-unreachable` left out of this run.
static SKIPPED: std::sync::Mutex<Vec<crate::error::Unseen>> = std::sync::Mutex::new(Vec::new());

/// The loud line for each tenant `--skip-unreachable` left out.
pub(crate) fn say_skipped() {
    let skipped = SKIPPED.lock().map(|s| s.clone()).unwrap_or_default();
    for u in skipped {
        eprintln!(
            "  ! SKIPPED {} (--skip-unreachable): its subscriptions could not all be listed and are not in this run: {}",
            u.what, u.reason
        );
    }
}

/// The `Session` for a command, with the sign-in prompts on stderr (and, for a browser
/// sign-in, stdin lines as the pasted address).
fn session(opts: &CommonOpts) -> Result<Session, Error> {
    let (prompt, slot) = signin::prompt();
    let session = Session::build(opts, None, prompt)?;
    if let Some(k) = logout::keyring()? {
        session.auth.keep_sign_in(k);
    }
    let _ = slot.set(session.auth.clone());
    // Waits outside `apply` (sign-in, discovery, status, rotate, remove) go straight to stderr;
    // `apply` routes them through its progress lines while it runs (onboard::lock).
    session
        .http
        .set_wait_hook(Some(std::sync::Arc::new(|n: &crate::http::WaitNotice| {
            lines::say(
                "",
                &Progress::Log {
                    message: n.message(),
                },
            )
        })));
    Ok(session)
}

fn hms(t: time::OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second())
}

/// `plan` (`write` false; `detailed`: exit 4 when the plan would change something) or `apply`.
async fn run(opts: &CommonOpts, write: bool, detailed: bool) -> CommandResult {
    let started = std::time::Instant::now();
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && opts.management_group.is_none() {
        return Err(CommandError::usage(
            "--subscription ID is required (repeat it for several subscriptions)",
        ));
    }
    let mut settings = opts.settings()?;
    Policy::load(settings.policy_file.as_deref())?;
    let interactive = std::io::stdin().is_terminal();
    if write && !opts.yes && !interactive {
        return Err(CommandError::usage(
            "writes to Azure and Spot need --yes when stdin is not a terminal (run `spot-connect plan` to see what would change)",
        ));
    }
    let session = session(opts)?;
    sign_in(&session).await?;
    // `--subscription`/`--all-subscriptions`: planned while discovery still lists them
    // (`onboard::plan_listed`, issue 20 §4); the same targets and plan as one after the other.
    let (targets, planned) = match &opts.management_group {
        Some(_) => (
            management_group_targets(&session, opts, &mut settings).await?,
            None,
        ),
        None => resolve_and_plan(&session, opts, &settings).await?,
    };
    if targets.is_empty() {
        return Err(CommandError::new(
            Kind::EmptyScope,
            "no enabled subscription to connect",
        ));
    }

    let tenants = {
        let mut t: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
        t.sort();
        t.dedup();
        t.len()
    };
    if targets.len() > 1 && settings.management_group.is_none() {
        eprintln!(
            "{} subscriptions in {tenants} tenant(s): one app, service principal, secret and role per tenant; an assignment, a Spot account and its credentials per subscription",
            targets.len()
        );
    }
    // `apply` plans exactly as `plan` does, and writes exactly that plan.
    let plan = match planned {
        Some(p) => p?,
        None => onboard::plan(&session, &targets, &settings).await?,
    };
    eprint!("{}", plan_text(&plan));
    let blocked = plan.blocked().next().is_some();
    if !write {
        say_skipped();
        let json = plan_document(&plan);
        return if blocked {
            Err(CommandError::new(
                Kind::Blocked,
                "the plan is blocked (see BLOCKED above): nothing can be applied",
            )
            .with_json(json))
        } else if detailed && plan.writes().next().is_some() {
            Ok(report::Outcome::new(Status::Changes, json))
        } else {
            Ok(report::Outcome::new(Status::Done, json))
        };
    }
    if !opts.yes && !blocked && plan.writes().next().is_some() && !confirm().await {
        return Err(CommandError::new(Kind::Declined, "nothing was changed"));
    }
    let report = apply_plan(&session, &plan, opts, started).await;
    say_skipped();
    apply_result(&report, apply_document(&report, session.http.replies_429()))
}

/// `plan --json` (docs/json.md): per subscription its own items; every item (the tenants'
/// shared ones too) in the plan's order beside.
pub fn plan_document(plan: &PlanView) -> report::Document {
    let subscriptions = plan.subscriptions.iter().map(|t| {
        let items: Vec<&crate::onboard::model::PlanItem> = plan
            .items
            .iter()
            .filter(|i| i.subscription_id.as_deref() == Some(t.subscription_id.as_str()))
            .collect();
        serde_json::json!({
            "subscription_id": t.subscription_id,
            "tenant_id": t.tenant_id,
            "subscription_name": t.subscription_name,
            "items": items,
        })
    });
    let n = |a: PlanAction| plan.items.iter().filter(|i| i.action == a).count();
    report::Document::new("plan")
        .subscriptions(subscriptions)
        .count("subscriptions", plan.subscriptions.len())
        .count("create", n(PlanAction::Create))
        .count("update", n(PlanAction::Update))
        .count("reuse", n(PlanAction::Reuse))
        .count("keep", n(PlanAction::Keep))
        .count("blocked", n(PlanAction::Blocked))
        .count("writes", plan.writes().count())
        .with("items", &plan.items)
        .with("counts", &plan.counts)
}

/// `apply --json` (docs/json.md): each subscription's report; the run's counts (`replies_429`:
/// every 429 reply of the run) and time.
pub fn apply_document(r: &RunReport, replies_429: u64) -> report::Document {
    let kept = r
        .reports
        .iter()
        .filter(|x| x.verdict == Verdict::Connected && x.kept.is_some())
        .count();
    let connected = r.reports.len() - r.failed() - kept;
    report::Document::new("apply")
        .subscriptions(r.reports.iter().map(report::report_json))
        .count("subscriptions", r.reports.len())
        .count("connected", connected)
        .count("kept", kept)
        .count("failed", r.failed())
        .count(
            "replies_429",
            usize::try_from(replies_429).unwrap_or(usize::MAX),
        )
        .count(
            "throttled_429",
            usize::try_from(r.throttled).unwrap_or(usize::MAX),
        )
        .count("peak_concurrency", r.peak_concurrency)
        .ms("apply", r.total_ms)
        .with("stopped", &r.stopped)
}

/// Exit 0 all connected, 3 some failed, 1 all failed or stopped.
fn apply_result(report: &RunReport, json: report::Document) -> CommandResult {
    if let Some(e) = &report.stopped {
        return Err(
            CommandError::new(Kind::Failed, format!("stopped: {}", e.summary)).with_json(json),
        );
    }
    match report.failed() {
        0 => Ok(report::Outcome::new(Status::Done, json)),
        n if n == report.reports.len() => Err(CommandError::new(
            Kind::Failed,
            format!("{n} subscription(s) not connected (see above)"),
        )
        .with_json(json)),
        _ => Ok(report::Outcome::new(Status::Partial, json)),
    }
}

/// Applies the plan with a line per step on stderr (prefixed with the subscription when there
/// are several), saves each subscription's report and prints the outcome.
async fn apply_plan(
    session: &Session,
    plan: &Plan,
    opts: &CommonOpts,
    started: std::time::Instant,
) -> RunReport {
    let many = plan.subscriptions.len() > 1;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let printer = tokio::spawn(async move {
        let mut failures_shown = std::collections::HashSet::new();
        while let Some(p) = rx.recv().await {
            let prefix = match &p {
                _ if !many => String::new(),
                Progress::Step {
                    subscription: Some(s),
                    ..
                } => format!("[{}]", &s[..s.len().min(8)]),
                _ => "[tenant]".into(),
            };
            if let Progress::Step {
                event: StepEvent::Failed { .. },
                subscription,
                ..
            } = &p
            {
                failures_shown.insert(subscription.clone());
            }
            lines::say(&prefix, &p);
        }
        failures_shown
    });
    let mut report = onboard::apply(session, plan, tx).await;
    let failures_shown = printer.await.unwrap_or_default();
    lines::done();
    for r in report.reports.iter_mut() {
        match save_report(&opts.state_dir(), r) {
            Ok(p) => {
                if !many {
                    eprintln!("  report: {}", p.display());
                }
            }
            Err(e) => eprintln!("  (could not save the report: {e})"),
        }
    }
    eprintln!(
        "  log: {}",
        crate::logging::log_path(&opts.state_dir()).display()
    );
    // The run's own time and 429 count (sign-in and plan included), not the apply's alone.
    let run_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let replies_429 = session.http.replies_429();
    if many {
        eprint!("{}", table(&report, run_ms, replies_429));
        return report;
    }
    for r in &report.reports {
        match r.verdict {
            Verdict::Connected if r.kept.is_some() => eprintln!(
                "  = {} is connected (not ours): {}",
                r.subscription_id,
                r.kept.as_deref().unwrap_or_default()
            ),
            Verdict::Connected => eprintln!(
                "  ✓ {} is connected to Spot{}{}",
                r.subscription_id,
                r.spot_account_id
                    .as_deref()
                    .map(|a| format!(" (account {a})"))
                    .unwrap_or_default(),
                r.secret_expires
                    .map(|e| format!("; secret expires {}", e.date()))
                    .unwrap_or_default()
            ),
            // Each error once: a step's failure is already on its line above.
            Verdict::Failed if failures_shown.contains(&Some(r.subscription_id.clone())) => {
                let nothing = r
                    .error
                    .as_ref()
                    .is_some_and(|e| e.summary.starts_with("nothing was changed"));
                eprintln!(
                    "  ✗ {} is not connected{} (why: above)",
                    r.subscription_id,
                    if nothing { ": nothing was changed" } else { "" }
                );
            }
            Verdict::Failed => {
                if let Some(e) = &r.error {
                    eprintln!("  ✗ failed: {}", e.summary);
                    if let Some(h) = e.hint {
                        eprintln!("    hint: {}", hint_text(h));
                    }
                }
            }
        }
    }
    report
}

/// The per-subscription outcome table; `run_ms` and `replies_429`: the run's time and the 429
/// replies it had.
pub fn table(report: &RunReport, run_ms: u64, replies_429: u64) -> String {
    let mut out = format!(
        "\n{:<36}  {:<22}  {:<9}  {:<14}  {}\n",
        "SUBSCRIPTION", "NAME", "RESULT", "SPOT ACCOUNT", "SECRET ENDS / ERROR"
    );
    for r in &report.reports {
        let name: String = r.subscription_name.chars().take(22).collect();
        let (result, last) = match r.verdict {
            Verdict::Connected if r.kept.is_some() => ("kept", r.kept.clone().unwrap_or_default()),
            Verdict::Connected => (
                "connected",
                r.secret_expires
                    .map(|e| e.date().to_string())
                    .unwrap_or_default(),
            ),
            Verdict::Failed => (
                "FAILED",
                r.error
                    .as_ref()
                    .map(|e| e.summary.clone())
                    .unwrap_or_default(),
            ),
        };
        out.push_str(&format!(
            "{:<36}  {:<22}  {:<9}  {:<14}  {}\n",
            r.subscription_id,
            name,
            result,
            r.spot_account_id.as_deref().unwrap_or("-"),
            last
        ));
    }
    out.push_str(&format!(
        "{} connected, {} failed in {:.1} s (429 replies: {}, most at once: {})\n",
        report.reports.len() - report.failed(),
        report.failed(),
        run_ms as f64 / 1000.0,
        replies_429,
        report.peak_concurrency
    ));
    out
}

/// "  … Role assignment: waiting for Azure to propagate (attempt 3, next in 8 s)"
/// A progress line for stderr, without control characters (names and messages from outside
/// are in it: `crate::text`).
pub fn progress_line(p: &Progress) -> Option<String> {
    progress_text(p).map(|l| crate::text::clean_lines(&l))
}

fn progress_text(p: &Progress) -> Option<String> {
    match p {
        Progress::Step { step, event, .. } => Some(match event {
            StepEvent::Started { detail } => format!("  … {}: {detail}", step.label()),
            StepEvent::Waiting {
                reason,
                attempt,
                next_in,
            } => format!(
                "  … {}: {reason} (attempt {attempt}, next in {} s)",
                step.label(),
                next_in.as_secs_f64().ceil() as u64
            ),
            StepEvent::Finished {
                outcome, detail, ..
            } => {
                let o = match outcome {
                    Outcome::Created => "created",
                    Outcome::Reused => "reused",
                    Outcome::Updated => "updated",
                };
                format!("  ✓ {}: {o}: {detail}", step.label())
            }
            StepEvent::Failed { error } => {
                let prefix = format!("{}: ", step.label());
                let summary = error
                    .summary
                    .strip_prefix(&prefix)
                    .unwrap_or(&error.summary);
                let mut s = format!("  ✗ {}: {summary}", step.label());
                if let Some(h) = error.hint {
                    s.push_str(&format!("\n    hint: {}", hint_text(h)));
                }
                s
            }
            StepEvent::Skipped { reason } => format!("  - {}: skipped ({reason})", step.label()),
        }),
        Progress::DeviceCode(d) => Some(format!(
            "{}\n  (code {} at {}; expires {})",
            d.message,
            d.user_code,
            d.verification_uri,
            hms(d.expires_at)
        )),
        Progress::Browser(b) => Some(format!(
            "To sign in, open this address in a browser on any machine (your laptop):\n\n  {url}\n\n\
             After the sign-in the browser goes to {redirect}/?code=…, on this machine. Either\n\
             \x20 - forward that port before you open the address, from your laptop:\n\
             \x20     {ssh}\n\
             \x20   and the sign-in completes by itself, or\n\
             \x20 - when that page fails to load, copy the whole address from the browser's address bar,\n\
             \x20   paste it here and press Enter.\n\
             \x20 (tenant {tenant}; waiting until {until})",
            url = b.url,
            redirect = b.redirect_uri,
            ssh = b.ssh_command,
            tenant = b.tenant,
            until = hms(b.expires_at)
        )),
        Progress::SignInAgain { tenant, reason } => Some(format!(
            "  … Azure login: tenant {tenant} asks you to sign in again: {reason}"
        )),
        Progress::RedirectRefused { message } => Some(format!("  ✗ not signed in yet: {message}")),
        Progress::SignInFinished { tenant, ok: true } => {
            Some(format!("  ✓ Azure login: signed in at tenant {tenant}"))
        }
        Progress::SignInFinished { .. } => None,
        Progress::Log { message } => Some(format!("  {message}")),
    }
}

/// The plan as the operator reads it: per tenant its shared objects, then each subscription's,
/// then how many objects of each kind.
pub fn plan_text(plan: &PlanView) -> String {
    let mut out = String::new();
    let mut last: Option<(&str, Option<&str>)> = None;
    for i in &plan.items {
        let here = (i.tenant_id.as_str(), i.subscription_id.as_deref());
        if last != Some(here) {
            match here {
                (t, None) => out.push_str(&format!("Tenant {t} (shared):\n")),
                (_, Some(sub)) => {
                    let name = plan
                        .subscriptions
                        .iter()
                        .find(|t| t.subscription_id == sub)
                        .map(|t| t.subscription_name.as_str())
                        .unwrap_or("");
                    out.push_str(&format!("Subscription {name} ({sub}):\n"));
                }
            }
            last = Some(here);
        }
        let a = match i.action {
            PlanAction::Create => "create ",
            PlanAction::Reuse => "reuse  ",
            PlanAction::Update => "update ",
            PlanAction::Blocked => "BLOCKED",
            PlanAction::Keep => "keep   ",
        };
        let name = if i.name.is_empty() {
            String::new()
        } else {
            format!(" {}", i.name)
        };
        let hint = i
            .hint
            .map(|h| format!("; {}", hint_text(h)))
            .unwrap_or_default();
        out.push_str(&format!("  {a} {}{name}: {}{hint}\n", i.object, i.reason));
        if let Some(d) = &i.drift {
            if !d.missing.is_empty() {
                out.push_str(&format!(
                    "          missing actions: {}\n",
                    d.missing.join(", ")
                ));
            }
            if !d.extra.is_empty() {
                out.push_str(&format!(
                    "          extra actions: {}\n",
                    d.extra.join(", ")
                ));
            }
        }
    }
    out.push_str(&format!("{}\n", counts_line(plan)));
    out
}

/// "Plan: app registration 1 create; role assignment 3 create, 1 reuse; …"
pub fn counts_line(plan: &PlanView) -> String {
    let kinds: Vec<String> = plan
        .counts
        .iter()
        .map(|c| format!("{} {}", c.object, c.summary()))
        .collect();
    format!("Plan: {}", kinds.join("; "))
}

async fn confirm() -> bool {
    eprint!("Apply these changes? [y/N] ");
    remove::confirm_line().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit::Ending;
    use crate::onboard::model::{ErrorInfo, Report, Step};
    use std::time::Duration;

    fn step(step: Step, event: StepEvent) -> Progress {
        Progress::Step {
            subscription: Some("s".into()),
            step,
            event,
        }
    }

    #[test]
    fn progress_lines_read_as_the_operator_expects() {
        let wait = step(
            Step::RoleAssignment,
            StepEvent::Waiting {
                reason: "waiting for Azure to propagate".into(),
                attempt: 3,
                next_in: Duration::from_millis(7600),
            },
        );
        assert_eq!(
            progress_line(&wait).unwrap(),
            "  … Role assignment: waiting for Azure to propagate (attempt 3, next in 8 s)"
        );
        let failed = step(
            Step::ClientSecret,
            StepEvent::Failed {
                error: ErrorInfo {
                    summary: "Client secret: Microsoft Graph 400 X: no".into(),
                    api: None,
                    hint: Some(crate::error::Hint::FewerSecretMonths),
                },
            },
        );
        assert_eq!(
            progress_line(&failed).unwrap(),
            format!(
                "  ✗ Client secret: Microsoft Graph 400 X: no\n    hint: {}",
                hint_text(crate::error::Hint::FewerSecretMonths)
            )
        );
        let done = step(
            Step::CustomRole,
            StepEvent::Finished {
                outcome: Outcome::Updated,
                id: None,
                detail: "assignable at /subscriptions/s".into(),
            },
        );
        assert_eq!(
            progress_line(&done).unwrap(),
            "  ✓ Custom role: updated: assignable at /subscriptions/s"
        );
    }

    #[test]
    fn exit_codes_say_all_some_or_none_connected() {
        let r = |v: Verdict| Report {
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            subscription_name: "S".into(),
            verdict: v,
            spot_account_id: None,
            objects: vec![],
            secret_expires: None,
            durations_ms: vec![],
            total_ms: 1,
            error: None,
            report_path: None,
            kept: None,
        };
        let run = |reports: Vec<Report>, stopped: bool| RunReport {
            reports,
            stopped: stopped.then(|| ErrorInfo {
                summary: "sign-in".into(),
                api: None,
                hint: None,
            }),
            throttled: 0,
            peak_concurrency: 1,
            total_ms: 1,
        };
        use Verdict::*;
        assert_eq!(
            report::ending(&apply_result(
                &run(vec![r(Connected), r(Connected)], false),
                report::Document::new("apply")
            )),
            Ending::Done
        );
        assert_eq!(
            report::ending(&apply_result(
                &run(vec![r(Connected), r(Failed)], false),
                report::Document::new("apply")
            )),
            Ending::Partial
        );
        assert_eq!(
            report::ending(&apply_result(
                &run(vec![r(Failed), r(Failed)], false),
                report::Document::new("apply")
            )),
            Ending::Failed
        );
        assert_eq!(
            report::ending(&apply_result(
                &run(vec![r(Connected), r(Failed)], true),
                report::Document::new("apply")
            )),
            Ending::Failed
        );
    }

    #[test]
    fn reports_are_saved_private_under_reports() {
        let d = tempfile::tempdir().unwrap();
        let r = Report {
            tenant_id: "t".into(),
            subscription_id: "s-1".into(),
            subscription_name: "S".into(),
            verdict: Verdict::Connected,
            spot_account_id: Some("act-1".into()),
            objects: vec![],
            secret_expires: None,
            durations_ms: vec![],
            total_ms: 1,
            error: None,
            report_path: None,
            kept: None,
        };
        let mut r = r;
        let p = save_report(d.path(), &mut r).unwrap();
        assert_eq!(r.report_path.as_deref(), Some(p.as_path()));
        assert!(p.starts_with(d.path().join("reports")));
        assert!(p.to_string_lossy().ends_with("-s-1.json"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back["verdict"], "connected");
    }
}
