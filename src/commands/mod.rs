//! The non-interactive commands: `apply`, `plan` (and later `status`, `rotate-secret`, `remove`).
//!
//! A line per step on stderr (waits included), `--json` report on stdout, the same report saved
//! under `<state_dir>/reports/`. Writes need `--yes` when stdin is not a terminal.

use crate::cli::{Cli, CommonOpts, exit};
use crate::error::Error;
use crate::logging::{ensure_private_dir, write_private};
use crate::onboard::model::{
    DeviceCodePrompt, Outcome, Plan, PlanAction, Progress, Report, StepEvent, Verdict,
};
use crate::onboard::policy::Policy;
use crate::onboard::{self, Session, Settings, Target};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

pub mod bulk;
pub mod remove;
pub mod rotate;
pub mod status;

pub async fn apply(cli: &Cli) -> i32 {
    interruptible(run(&cli.opts, true)).await
}

pub async fn plan(cli: &Cli) -> i32 {
    interruptible(run(&cli.opts, false)).await
}

/// Ctrl-C, SIGTERM or SIGHUP: stop and exit 130. The state file already holds every write made
/// (it is written after each one), so the next run continues from there.
async fn interruptible(work: impl std::future::Future<Output = i32>) -> i32 {
    tokio::select! {
        code = work => code,
        signal = interrupted() => {
            eprintln!("spot-connect: interrupted ({signal}); what was done is recorded, run the command again to continue");
            exit::INTERRUPTED
        }
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

pub async fn not_yet(name: &str) -> i32 {
    eprintln!("spot-connect: {name} is not built yet");
    exit::FAILED
}

/// Signs in (printing the outcome), trying again after a failure in flight; on failure, the
/// exit code.
async fn sign_in(session: &Session) -> std::result::Result<(), i32> {
    eprintln!("  … Azure login: signing in");
    let mut tries = 0u64;
    let signed_in = loop {
        match session.auth.sign_in().await {
            // A lost reply to the device-code poll makes the next poll "already redeemed"
            // (AADSTS54005): start over, like any failure in flight.
            Err(e)
                if (crate::onboard::retry::is_transient(&e)
                    || e.api().is_some_and(|a| a.message.contains("AADSTS54005")))
                    && tries < 3 =>
            {
                tries += 1;
                tracing::info!(error = %e, "sign-in failed in flight: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            r => break r,
        }
    };
    match signed_in {
        Ok(id) => {
            eprintln!("  ✓ Azure login: signed in as {}", id.display);
            Ok(())
        }
        Err(e) => {
            eprintln!("  ✗ Azure login: {e}");
            Err(fail(&e))
        }
    }
}

/// `--subscription`/`--all-subscriptions` resolved, tried again on transient errors.
async fn resolve_targets(session: &Session, opts: &CommonOpts) -> Result<Vec<Target>, Error> {
    let mut tries = 0u64;
    loop {
        match session
            .resolve_targets(&opts.subscriptions, opts.all_subscriptions)
            .await
        {
            Err(e) if crate::onboard::retry::is_transient(&e) && tries < 3 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
            }
            r => return r,
        }
    }
}

fn fail(e: &Error) -> i32 {
    eprintln!("spot-connect: {e}");
    crate::cli::json_out::note_error(
        serde_json::to_value(crate::onboard::model::ErrorInfo::from(e)).unwrap_or_default(),
    );
    if let Some(h) = e.api().and_then(|a| a.hint()) {
        eprintln!("  hint: {h}");
    }
    match e {
        Error::Usage(_) => exit::USAGE,
        Error::Cancelled => exit::INTERRUPTED,
        _ => exit::FAILED,
    }
}

/// The `Session` for a command, with the device-code prompt on stderr.
fn session(opts: &CommonOpts) -> Result<Session, Error> {
    let prompt: crate::azure::auth::PromptFn = Arc::new(|p: DeviceCodePrompt| {
        eprintln!("{}", p.message);
        eprintln!(
            "  (code {} at {}; expires {:02}:{:02}:{:02} UTC)",
            p.user_code,
            p.verification_uri,
            p.expires_at.hour(),
            p.expires_at.minute(),
            p.expires_at.second()
        );
    });
    let session = Session::build(opts, None, prompt)?;
    // Waits outside `apply` (sign-in, discovery, status, rotate, remove) go straight to stderr;
    // `apply` routes them through its progress lines while it runs (onboard::lock).
    session
        .http
        .set_wait_hook(Some(Arc::new(|n: &crate::http::WaitNotice| {
            eprintln!("  … {}", n.message())
        })));
    Ok(session)
}

async fn run(opts: &CommonOpts, write: bool) -> i32 {
    let cmd = if write { "apply" } else { "plan" };
    if opts.subscriptions.is_empty() && !opts.all_subscriptions {
        let msg = format!(
            "spot-connect {cmd}: --subscription ID is required (repeat it for several subscriptions)"
        );
        eprintln!("{msg}");
        crate::cli::json_out::note_error(serde_json::json!(msg));
        return exit::USAGE;
    }
    let settings = match Settings::from_opts(opts) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Err(e) = Policy::load(settings.policy_file.as_deref()) {
        return fail(&e);
    }
    let interactive = std::io::stdin().is_terminal();
    if write && !opts.yes && !interactive {
        let msg = "spot-connect apply: writes to Azure and Spot need --yes when stdin is not a terminal (run `spot-connect plan` to see what would change)";
        eprintln!("{msg}");
        crate::cli::json_out::note_error(serde_json::json!(msg));
        return exit::USAGE;
    }
    let session = match session(opts) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Err(code) = sign_in(&session).await {
        return code;
    }
    let targets = match resolve_targets(&session, opts).await {
        Ok(t) if t.is_empty() => {
            eprintln!("spot-connect {cmd}: no enabled subscription to connect");
            return exit::FAILED;
        }
        Ok(t) => t,
        Err(e) => return fail(&e),
    };

    // Several subscriptions: bulk (shared objects once, a few subscriptions at a time). With
    // one named Spot account (`--spot-account act-…`) they run one after another instead.
    if write
        && targets.len() > 1
        && !matches!(
            settings.spot_account,
            onboard::SpotAccountChoice::Existing(_)
        )
    {
        return bulk::apply(&session, &targets, &settings, opts).await;
    }
    let mut outputs: Vec<serde_json::Value> = Vec::new();
    let mut failed = 0usize;
    for target in &targets {
        eprintln!(
            "Subscription {} ({}) in tenant {}",
            target.subscription_name, target.subscription_id, target.tenant_id
        );
        // `apply --yes` shows no plan: `apply` makes its own before writing (looking
        // everything up twice cost a whole lookup phase of round trips).
        if write && opts.yes {
            let report = apply_one(&session, target, &settings, opts).await;
            record_apply(report, target, &mut outputs, &mut failed);
            continue;
        }
        let plan = match onboard::plan(&session, target, &settings).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("  ✗ plan: {e}");
                if let Some(h) = e.api().and_then(|a| a.hint()) {
                    eprintln!("    hint: {h}");
                }
                failed += 1;
                outputs.push(serde_json::json!({"subscription_id": target.subscription_id, "error": crate::onboard::model::ErrorInfo::from(&e)}));
                continue;
            }
        };
        if !write {
            print_plan(&plan);
            if plan.blocked().next().is_some() {
                failed += 1;
            }
            outputs.push(serde_json::to_value(&plan).unwrap_or_default());
            continue;
        }
        if !opts.yes {
            print_plan(&plan);
            if plan.blocked().next().is_none() && plan.writes().next().is_some() && !confirm().await
            {
                eprintln!("  nothing was changed");
                return exit::FAILED;
            }
        }
        let report = apply_one(&session, target, &settings, opts).await;
        record_apply(report, target, &mut outputs, &mut failed);
    }
    if opts.json {
        let out = if outputs.len() == 1 {
            outputs.pop().unwrap_or_default()
        } else {
            serde_json::Value::Array(outputs)
        };
        crate::cli::json_out::print(&out);
    }
    match failed {
        0 => exit::DONE,
        n if n == targets.len() => exit::FAILED,
        _ => exit::PARTIAL,
    }
}

fn record_apply(
    report: Result<Report, Error>,
    target: &Target,
    outputs: &mut Vec<serde_json::Value>,
    failed: &mut usize,
) {
    match report {
        Ok(r) => {
            if r.verdict != Verdict::Connected {
                *failed += 1;
            }
            outputs.push(serde_json::to_value(&r).unwrap_or_default());
        }
        Err(e) => {
            eprintln!("  ✗ {e}");
            *failed += 1;
            outputs.push(serde_json::json!({"subscription_id": target.subscription_id, "error": crate::onboard::model::ErrorInfo::from(&e)}));
        }
    }
}

async fn apply_one(
    session: &Session,
    target: &Target,
    settings: &Settings,
    opts: &CommonOpts,
) -> Result<Report, Error> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if let Some(line) = progress_line(&p) {
                eprintln!("{line}");
            }
        }
    });
    let result = onboard::apply(session, target, settings, tx).await;
    let _ = printer.await;
    let mut report = result?;
    match save_report(&opts.state_dir(), &report) {
        Ok(p) => {
            report.report_path = Some(p.clone());
            // Save again with its own path in it.
            let _ = write_report(&p, &report);
            eprintln!("  report: {}", p.display());
        }
        Err(e) => eprintln!("  (could not save the report: {e})"),
    }
    match report.verdict {
        Verdict::Connected => eprintln!(
            "  ✓ {} is connected to Spot{}{}",
            target.subscription_id,
            report
                .spot_account_id
                .as_deref()
                .map(|a| format!(" (account {a})"))
                .unwrap_or_default(),
            report
                .secret_expires
                .map(|e| format!("; secret expires {}", e.date()))
                .unwrap_or_default()
        ),
        Verdict::Failed => {
            if let Some(e) = &report.error {
                eprintln!("  ✗ failed: {}", e.summary);
                if let Some(h) = &e.hint {
                    eprintln!("    hint: {h}");
                }
            }
        }
    }
    Ok(report)
}

/// "  … Role assignment: waiting for Azure to propagate (attempt 3, next in 8 s)"
pub fn progress_line(p: &Progress) -> Option<String> {
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
                if let Some(h) = &error.hint {
                    s.push_str(&format!("\n    hint: {h}"));
                }
                s
            }
            StepEvent::Skipped { reason } => format!("  - {}: skipped ({reason})", step.label()),
        }),
        Progress::DeviceCode(d) => Some(d.message.clone()),
        Progress::Log { message } => Some(format!("  {message}")),
    }
}

fn print_plan(plan: &Plan) {
    for i in &plan.items {
        let a = match i.action {
            PlanAction::Create => "create ",
            PlanAction::Reuse => "reuse  ",
            PlanAction::Update => "update ",
            PlanAction::Blocked => "BLOCKED",
        };
        let name = if i.name.is_empty() {
            String::new()
        } else {
            format!(" {}", i.name)
        };
        eprintln!("  {a} {}{name}: {}", i.object, i.reason);
        if let Some(d) = &i.drift {
            if !d.missing.is_empty() {
                eprintln!("          missing actions: {}", d.missing.join(", "));
            }
            if !d.extra.is_empty() {
                eprintln!("          extra actions: {}", d.extra.join(", "));
            }
        }
    }
}

async fn confirm() -> bool {
    eprint!("Apply these changes? [y/N] ");
    remove::confirm_line().await
}

fn write_report(path: &std::path::Path, r: &Report) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    write_private(path, &bytes)
}

/// `<state_dir>/reports/<UTC time>-<subscription>.json`, 0600.
pub fn save_report(state_dir: &std::path::Path, r: &Report) -> std::io::Result<PathBuf> {
    let dir = state_dir.join("reports");
    ensure_private_dir(state_dir)?;
    ensure_private_dir(&dir)?;
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    let path = dir.join(format!("{stamp}-{}.json", r.subscription_id));
    write_report(&path, r)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onboard::model::{ErrorInfo, Step};
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
                    hint: Some("use fewer months".into()),
                },
            },
        );
        assert_eq!(
            progress_line(&failed).unwrap(),
            "  ✗ Client secret: Microsoft Graph 400 X: no\n    hint: use fewer months"
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
        };
        let p = save_report(d.path(), &r).unwrap();
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
