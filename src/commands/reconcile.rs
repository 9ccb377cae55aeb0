//! `spot-connect reconcile`: one unattended pass over `--management-group`,
//! `--all-subscriptions` or `--subscription` (onboard::reconcile). Never asks; a line per step
//! and a one-line summary on stderr; `--json`: the report on stdout (docs/schedule.md).
//! Exit 0: everything we manage is connected and no secret of ours ends within
//! `--rotate-within`; 1: the pass itself failed (sign-in, a service); 3: something we manage
//! failed, was blocked, could not be seen, or kept an old secret it could not prove unheld.
//! Objects that are not ours are listed and never change the code.

use super::fail;
use crate::cli::{Cli, CommonOpts, ReconcileOpts, exit};
use crate::onboard::reconcile::{self, ReconcileOptions, ReconcileReport};
use serde_json::json;

pub async fn reconcile(cli: &Cli, o: &ReconcileOpts) -> i32 {
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

/// The `error` object of the document (shapes.md): `{kind, message, hints}`.
fn error_object(kind: &str, info: &serde_json::Value) -> serde_json::Value {
    let message = info
        .get("summary")
        .and_then(|v| v.as_str())
        .or(info.as_str())
        .unwrap_or("spot-connect reconcile failed (see stderr)");
    let hints: Vec<&str> = info
        .get("hint")
        .and_then(|h| h.as_str())
        .into_iter()
        .collect();
    json!({"kind": kind, "message": message, "hints": hints})
}

/// The one document of `--json` (shapes.md's envelope; reconcile's own fields beside it).
fn document(
    code: i32,
    report: Option<&ReconcileReport>,
    scope: &serde_json::Value,
    started: std::time::Instant,
    error: serde_json::Value,
) -> serde_json::Value {
    let mut v = report
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_else(|| json!({"subscriptions": []}));
    let mut summary = report.map(counts).unwrap_or_default();
    if let Some(r) = report {
        summary.insert("line".into(), json!(self::summary(r, code)));
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("schema_version".into(), json!(1));
        m.insert("command".into(), json!("reconcile"));
        m.insert("exit_code".into(), json!(code));
        m.insert("scope".into(), scope.clone());
        m.insert("summary".into(), serde_json::Value::Object(summary));
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        m.insert("duration".into(), json!({"total_ms": ms}));
        m.insert("error".into(), error);
    }
    v
}

/// A pass that failed before it had a report: the message on stderr (already), and with
/// `--json` the document with `error` set (from `info`: a message or an `ErrorInfo`) and no
/// subscription.
fn failed(
    json: bool,
    code: i32,
    kind: &str,
    scope: &serde_json::Value,
    t: std::time::Instant,
    info: serde_json::Value,
) -> i32 {
    if json {
        crate::cli::json_out::print(&document(code, None, scope, t, error_object(kind, &info)));
    }
    code
}

/// An error as `failed` takes it.
fn info(e: &crate::error::Error) -> serde_json::Value {
    serde_json::to_value(crate::onboard::model::ErrorInfo::from(e)).unwrap_or_default()
}

/// 0 / 1 / 3 (see the module doc).
pub fn exit_code(r: &ReconcileReport) -> i32 {
    if r.stopped.is_some() {
        exit::FAILED
    } else if r.problems.is_empty() {
        exit::DONE
    } else {
        exit::PARTIAL
    }
}

async fn run(opts: &CommonOpts, o: &ReconcileOpts) -> i32 {
    let t = std::time::Instant::now();
    let scope = match &opts.management_group {
        Some(g) => json!({"management_group": g}),
        None if opts.all_subscriptions => json!({"all_subscriptions": true}),
        None => json!({"subscriptions": opts.subscriptions}),
    };
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && opts.management_group.is_none() {
        let msg = "spot-connect reconcile: one of --management-group ID, --all-subscriptions or --subscription ID is required";
        eprintln!("{msg}");
        return failed(opts.json, exit::USAGE, "usage", &scope, t, json!(msg));
    }
    let kind_of = |e: &crate::error::Error| match e {
        crate::error::Error::Usage(_) => "usage",
        crate::error::Error::Auth(_) => "sign_in",
        crate::error::Error::Api(_) => "service",
        crate::error::Error::Incomplete(_) => "incomplete",
        crate::error::Error::Cancelled => "interrupted",
        _ => "other",
    };
    let mut settings = match opts.settings() {
        Ok(s) => s,
        Err(e) => return failed(opts.json, fail(&e), kind_of(&e), &scope, t, info(&e)),
    };
    let session = match super::session(opts) {
        Ok(s) => s,
        Err(e) => return failed(opts.json, fail(&e), kind_of(&e), &scope, t, info(&e)),
    };
    if let Err(e) = super::sign_in(&session).await {
        return failed(
            opts.json,
            fail(&e.error),
            "sign_in",
            &scope,
            t,
            info(&e.error),
        );
    }
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
                Err(e) => return failed(opts.json, fail(&e), kind_of(&e), &scope, t, info(&e)),
            }
        }
        None => match super::resolve_targets(&session, opts).await {
            Ok(t) => t,
            Err(e) => return failed(opts.json, fail(&e), kind_of(&e), &scope, t, info(&e)),
        },
    };
    if targets.is_empty() {
        let msg = "spot-connect reconcile: no enabled subscription in scope";
        eprintln!("{msg}");
        return failed(
            opts.json,
            exit::FAILED,
            "empty_scope",
            &scope,
            t,
            json!(msg),
        );
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
    let mut report = match result {
        Ok(r) => r,
        Err(e) => return failed(opts.json, fail(&e), kind_of(&e), &scope, t, info(&e)),
    };
    report.problems.extend(unseen);
    let code = exit_code(&report);
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
    if opts.json {
        let error = match &report.stopped {
            Some(e) => error_object("stopped", &serde_json::to_value(e).unwrap_or_default()),
            None => serde_json::Value::Null,
        };
        crate::cli::json_out::print(&document(code, Some(&report), &scope, t, error));
    }
    eprintln!("{line}");
    code
}
