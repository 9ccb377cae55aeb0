//! `spot-connect reconcile`: one unattended pass over `--management-group`,
//! `--all-subscriptions` or `--subscription` (onboard::reconcile). Never asks; a line per step
//! and a one-line summary on stderr; `--json`: the report on stdout (docs/schedule.md).
//! Exit 0: everything we manage is connected and no secret of ours ends within
//! `--rotate-within`; 1: the pass itself failed (sign-in, a service); 3: something we manage
//! failed, was blocked, could not be seen, or kept an old secret it could not prove unheld.
//! Objects that are not ours are listed and never change the code.

use super::CommandResult;
use super::report::{CommandError, Document, Kind, Outcome, Status};
use crate::cli::{Cli, CommonOpts, ReconcileOpts};
use crate::onboard::reconcile::{self, ReconcileOptions, ReconcileReport};
use serde_json::json;

pub async fn reconcile(cli: &Cli, o: &ReconcileOpts) -> CommandResult {
    super::interruptible(run(&cli.opts, o)).await
}

/// The counts of a pass (`summary` in the JSON, with `line`: the one-line summary on stderr).
pub fn counts(r: &ReconcileReport) -> serde_json::Map<String, serde_json::Value> {
    let count = |k: &str| r.subscriptions.iter().filter(|s| s.result == k).count();
    let secrets = |k: &str| r.secrets.iter().filter(|s| s.result == k).count();
    let added: usize = r.roles.iter().map(|x| x.missing.len()).sum();
    let extra: usize = r.roles.iter().map(|x| x.extra.len()).sum();
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("subscriptions", r.subscriptions.len()),
        ("connected", count("connected")),
        ("connected_now", count("connected_now")),
        ("failed", count("failed")),
        ("blocked", count("blocked")),
        ("not_ours", count("not_ours")),
        ("secrets_rotated", secrets("rotated")),
        ("secrets_partial", secrets("partial")),
        ("secrets_failed", secrets("failed")),
        ("actions_added", added),
        ("extra_actions", extra),
        ("not_ours_objects", r.not_ours.len()),
        ("planned_writes", r.planned_writes),
        ("problems", r.problems.len()),
    ] {
        m.insert(k.into(), json!(v));
    }
    m
}

/// The one-line summary (stderr; also `summary.line` in the JSON).
pub fn summary(r: &ReconcileReport, code: i32) -> String {
    let c = counts(r);
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    format!(
        "reconcile: {} subscription(s): {} connected, {} connected now, {} failed, {} blocked, {} not ours; {} secret(s) rotated; {} missing action(s) added, {} extra left; {} write(s) planned; {} problem(s); exit {code}",
        n("subscriptions"),
        n("connected"),
        n("connected_now"),
        n("failed"),
        n("blocked"),
        n("not_ours"),
        n("secrets_rotated"),
        n("actions_added"),
        n("extra_actions"),
        n("planned_writes"),
        n("problems")
    )
}

/// The one document of `--json` (shapes.md's envelope, built by `report::Document`;
/// reconcile's own fields beside it). `line`: the one-line summary (`summary.line`).
fn document(report: &ReconcileReport, scope: &serde_json::Value, line: &str) -> Document {
    let mut d = Document::new("reconcile")
        .subscriptions(&report.subscriptions)
        .with("scope", scope)
        .with("secrets", &report.secrets)
        .with("roles", &report.roles)
        .with("not_ours", &report.not_ours)
        .with("planned_writes", report.planned_writes)
        .with("applied", report.applied)
        .with("problems", &report.problems);
    if let Some(stopped) = &report.stopped {
        d = d.with("stopped", stopped);
    }
    for (k, v) in counts(report) {
        d = d.summary_value(&k, v);
    }
    d.summary_value("line", line)
}

/// A pass that failed before it had a report: the error, with the document of no
/// subscription but its scope (`main` prints both).
fn failed(scope: &serde_json::Value) -> impl Fn(CommandError) -> CommandError + '_ {
    move |e| e.with_json(Document::new("reconcile").with("scope", scope))
}

/// How a pass that has its report ended (see the module doc; `report::exit_code` picks the
/// code): the apply stopped (1), something we manage needs attention (3), or done (0). The
/// document is set afterwards.
fn ended(r: &ReconcileReport) -> CommandResult {
    if let Some(stopped) = &r.stopped {
        let mut e = CommandError::new(Kind::Stopped, stopped.summary.clone());
        e.hints.extend(stopped.hint);
        return Err(e);
    }
    let status = if r.problems.is_empty() {
        Status::Done
    } else {
        Status::Partial
    };
    Ok(Outcome::new(status, Document::new("reconcile")))
}

async fn run(opts: &CommonOpts, o: &ReconcileOpts) -> CommandResult {
    let scope = match &opts.management_group {
        Some(g) => json!({"management_group": g}),
        None if opts.all_subscriptions => json!({"all_subscriptions": true}),
        None => json!({"subscriptions": opts.subscriptions}),
    };
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && opts.management_group.is_none() {
        return Err(failed(&scope)(CommandError::usage(
            "one of --management-group ID, --all-subscriptions or --subscription ID is required",
        )));
    }
    let fail = failed(&scope);
    let mut settings = opts.settings().map_err(|e| fail(e.into()))?;
    let session = super::session(opts).map_err(|e| fail(e.into()))?;
    super::sign_in(&session).await.map_err(&fail)?;
    let mut unseen = vec![];
    let targets = match &opts.management_group {
        Some(g) => {
            match crate::onboard::fleet::resolve(&session, g, &opts.exclude_subscriptions).await {
                Ok(r) => {
                    for u in &r.unseen {
                        unseen.push(format!(
                            "subscription {u} is below management group {} but the signed-in identity cannot see it",
                            r.group_id
                        ));
                    }
                    settings.management_group = Some(r.scope(opts.prune_subscription_assignments));
                    r.targets
                }
                Err(e) => return Err(fail(e.into())),
            }
        }
        None => super::resolve_targets(&session, opts)
            .await
            .map_err(|e| fail(e.into()))?,
    };
    if targets.is_empty() {
        return Err(fail(CommandError::new(
            Kind::EmptyScope,
            "no enabled subscription in scope",
        )));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let many = targets.len() > 1;
    let printer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let prefix = match &p {
                _ if !many => String::new(),
                crate::onboard::model::Progress::Step {
                    subscription: Some(s),
                    ..
                } => format!("[{}]", &s[..s.len().min(8)]),
                _ => "[tenant]".into(),
            };
            super::lines::say(&prefix, &p);
        }
    });
    let opts_r = ReconcileOptions {
        rotate_within: time::Duration::days(i64::from(o.rotate_within)),
    };
    let result = reconcile::reconcile(&session, &targets, &settings, opts_r, tx).await;
    let _ = printer.await;
    super::lines::done();
    let mut report = result.map_err(|e| fail(e.into()))?;
    report.problems.extend(unseen);
    let result = ended(&report);
    let code = super::report::ending(&result).code();
    for p in &report.problems {
        eprintln!("  ! {}", crate::text::clean(p));
    }
    for n in &report.not_ours {
        eprintln!(
            "  = not ours (left as it is): {} {}: {}",
            n.object,
            n.name,
            crate::text::clean(&n.reason)
        );
    }
    let line = summary(&report, code);
    eprintln!("{line}");
    let doc = document(&report, &scope, &line);
    match result {
        Ok(o) => Ok(Outcome { json: doc, ..o }),
        Err(e) => Err(e.with_json(doc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit;
    use crate::error::Hint;
    use crate::onboard::model::ErrorInfo;

    fn report() -> ReconcileReport {
        ReconcileReport {
            subscriptions: vec![],
            secrets: vec![],
            roles: vec![],
            not_ours: vec![],
            planned_writes: 0,
            applied: false,
            stopped: None,
            problems: vec![],
        }
    }

    /// A pass's report picks its result; `report::ending` its ending, and `Ending::code` (the one place) its code.
    #[test]
    fn a_pass_ends_done_partial_or_stopped_with_its_hint() {
        let mut r = report();
        assert_eq!(super::super::report::ending(&ended(&r)).code(), exit::DONE);
        r.problems.push("blocked".into());
        assert_eq!(
            super::super::report::ending(&ended(&r)).code(),
            exit::PARTIAL
        );
        r.stopped = Some(ErrorInfo {
            summary: "the sign-in was refused".into(),
            api: None,
            hint: Some(Hint::SignInWithBrowser),
        });
        let e = ended(&r).unwrap_err();
        assert_eq!(e.kind, Kind::Stopped);
        assert_eq!(e.message(), "the sign-in was refused");
        assert_eq!(e.hints, vec![Hint::SignInWithBrowser]);
        assert_eq!(super::super::report::ending(&Err(e)).code(), exit::FAILED);
        // The document keeps reconcile's keys beside the envelope, and `summary.line`.
        let d =
            document(&r, &json!({"all_subscriptions": true}), "reconcile: 0").finish(1, None, 5);
        for k in [
            "scope",
            "secrets",
            "roles",
            "not_ours",
            "planned_writes",
            "applied",
            "stopped",
            "problems",
        ] {
            assert!(d.get(k).is_some(), "{k} missing: {d}");
        }
        assert_eq!(d["summary"]["line"], "reconcile: 0");
        assert_eq!(d["summary"]["problems"], 1);
        assert_eq!(d["duration"]["total_ms"], 5);
    }
}
