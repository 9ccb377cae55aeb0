//! `spot-connect reconcile`: one unattended pass over `--management-group`,
//! `--all-subscriptions` or `--subscription` (onboard::reconcile). Never asks; a line per step
//! and a one-line summary on stderr; `--json`: the report on stdout (docs/schedule.md).
//! Exit 0: everything we manage is connected and no secret of ours ends within
//! `--rotate-within`; 1: the pass itself failed (sign-in, a service); 3: something we manage
//! failed, was blocked, could not be seen, or kept an old secret it could not prove unheld.
//! Objects that are not ours are listed and never change the code.

use super::{fail, progress_line};
use crate::cli::{Cli, CommonOpts, ReconcileOpts, exit};
use crate::onboard::reconcile::{self, ReconcileOptions, ReconcileReport};
use serde_json::json;

pub async fn reconcile(cli: &Cli, o: &ReconcileOpts) -> i32 {
    super::interruptible(run(&cli.opts, o)).await
}

/// The one-line summary (stderr; also `summary` in the JSON).
pub fn summary(r: &ReconcileReport, code: i32) -> String {
    let count = |k: &str| r.subscriptions.iter().filter(|s| s.result == k).count();
    let rotated = r.secrets.iter().filter(|s| s.result == "rotated").count();
    let added: usize = r.roles.iter().map(|x| x.missing.len()).sum();
    let extra: usize = r.roles.iter().map(|x| x.extra.len()).sum();
    format!(
        "reconcile: {} subscription(s): {} connected, {} connected now, {} failed, {} blocked, {} not ours; {} secret(s) rotated; {} missing action(s) added, {} extra left; {} write(s) planned; {} problem(s); exit {code}",
        r.subscriptions.len(),
        count("connected"),
        count("connected_now"),
        count("failed"),
        count("blocked"),
        count("not_ours"),
        rotated,
        added,
        extra,
        r.planned_writes,
        r.problems.len()
    )
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
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && opts.management_group.is_none() {
        let msg = "spot-connect reconcile: one of --management-group ID, --all-subscriptions or --subscription ID is required";
        eprintln!("{msg}");
        crate::cli::json_out::note_error(json!(msg));
        return exit::USAGE;
    }
    let mut settings = match opts.settings() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let session = match super::session(opts) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Err(code) = super::sign_in(&session).await {
        return code;
    }
    let (scope, mut unseen) = match &opts.management_group {
        Some(g) => (json!({"management_group": g}), vec![]),
        None if opts.all_subscriptions => (json!({"all_subscriptions": true}), vec![]),
        None => (json!({"subscriptions": opts.subscriptions}), vec![]),
    };
    let targets = match &opts.management_group {
        Some(_) => {
            match crate::onboard::fleet::resolve(
                &session,
                opts.management_group.as_deref().unwrap_or_default(),
                &opts.exclude_subscriptions,
            )
            .await
            {
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
                Err(e) => return fail(&e),
            }
        }
        None => match super::resolve_targets(&session, opts).await {
            Ok(t) => t,
            Err(e) => return fail(&e),
        },
    };
    if targets.is_empty() {
        eprintln!("spot-connect reconcile: no enabled subscription in scope");
        return exit::FAILED;
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
            if let Some(line) = progress_line(&p) {
                eprintln!("{prefix}{line}");
            }
        }
    });
    let opts_r = ReconcileOptions {
        rotate_within: time::Duration::days(i64::from(o.rotate_within)),
    };
    let result = reconcile::reconcile(&session, &targets, &settings, opts_r, tx).await;
    let _ = printer.await;
    let mut report = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
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
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("command".into(), json!("reconcile"));
            m.insert("scope".into(), scope);
            m.insert("summary".into(), json!(line));
            m.insert("exit_code".into(), json!(code));
        }
        crate::cli::json_out::print(&v);
    }
    eprintln!("{line}");
    code
}
