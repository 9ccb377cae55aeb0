//! `spot-connect remove`: lists what would be deleted, changed or kept, asks, then removes.
//! `--yes` skips the question; stdin not a terminal without `--yes` → exit 2.

use super::report::Outcome;
use super::{CommandError, CommandResult, Kind, Status};
use crate::cli::{Cli, CommonOpts, RemoveOpts};
use crate::onboard::remove::{RemovalAction, RemoveOptions};
use std::io::IsTerminal;

pub async fn remove(cli: &Cli, ro: &RemoveOpts) -> CommandResult {
    super::interruptible(run(&cli.opts, ro)).await
}

async fn run(opts: &CommonOpts, ro: &RemoveOpts) -> CommandResult {
    let mut settings = opts.settings()?;
    let group = opts.management_group.as_deref();
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && group.is_none() {
        return Err(CommandError::usage(
            "--subscription ID (repeatable), --all-subscriptions or --management-group ID is required",
        ));
    }
    if !opts.yes && !std::io::stdin().is_terminal() {
        return Err(CommandError::usage(
            "deletes objects: needs --yes when stdin is not a terminal",
        ));
    }
    let (session, mut targets) = super::status::signed_in(opts, group.is_none()).await?;
    // --management-group: what is ours at the group (its assignment and role) and for every
    // enabled subscription below it (nested groups included).
    if let Some(g) = group {
        let r = crate::onboard::fleet::resolve(&session, g, &opts.exclude_subscriptions).await?;
        settings.management_group = Some(r.scope(false));
        targets = r.targets;
    }
    let ropts = RemoveOptions {
        delete_spot_account: ro.delete_spot_account,
    };
    let plans = crate::onboard::remove::plan_removal(&session, &targets, &settings, ropts).await?;
    for p in &plans {
        eprintln!(
            "Tenant {} ({} subscription(s))",
            p.tenant_id,
            p.subscriptions.len()
        );
        for i in &p.items {
            let a = match i.action {
                RemovalAction::Delete => "delete",
                RemovalAction::Update => "update",
                RemovalAction::Keep => "keep  ",
            };
            let hint = i
                .hint
                .map(|h| format!("; {}", super::hint_text(h)))
                .unwrap_or_default();
            eprintln!(
                "  {a} {} {} [{}]: {}{hint}",
                i.object, i.name, i.id, i.reason
            );
        }
    }
    let changes = plans.iter().map(|p| p.changes().count()).sum::<usize>();
    if changes == 0 {
        eprintln!("  nothing of spot-connect's to remove");
        return Ok(Outcome::new(Status::Done, document(&plans, &[])));
    }
    if !opts.yes {
        eprint!("Remove these? [y/N] ");
        if !confirm_line().await {
            return Err(CommandError::new(Kind::Declined, "nothing was changed"));
        }
    }
    let mut results = Vec::new();
    for p in &plans {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(async move {
            while let Some(x) = rx.recv().await {
                super::lines::say("", &x);
            }
        });
        results.extend(crate::onboard::remove::remove(&session, p, tx).await);
        let _ = printer.await;
        super::lines::done();
    }
    let failed = results.iter().filter(|r| !r.done).count();
    let json = document(&plans, &results);
    if failed == 0 {
        eprintln!("  ✓ removed");
        Ok(Outcome::new(Status::Done, json))
    } else {
        Err(CommandError::new(
            Kind::Failed,
            format!("{failed} item(s) could not be removed (see above); run remove again"),
        )
        .with_json(json))
    }
}

/// `remove --json` (docs/json.md): per subscription the items that concern it; the tenants'
/// removal plans and each removal's result beside.
pub fn document(
    plans: &[crate::onboard::remove::RemovalPlan],
    results: &[crate::onboard::remove::RemovalResult],
) -> super::report::Document {
    let subscriptions = plans.iter().flat_map(|p| {
        p.subscriptions.iter().map(move |sub| {
            let items: Vec<_> = p
                .items
                .iter()
                .filter(|i| i.subscription_id.as_deref() == Some(sub.as_str()))
                .collect();
            serde_json::json!({"subscription_id": sub, "tenant_id": p.tenant_id, "items": items})
        })
    });
    let n = |a: RemovalAction| {
        plans
            .iter()
            .flat_map(|p| &p.items)
            .filter(|i| i.action == a)
            .count()
    };
    super::report::Document::new("remove")
        .subscriptions(subscriptions)
        .count(
            "subscriptions",
            plans.iter().map(|p| p.subscriptions.len()).sum(),
        )
        .count("delete", n(RemovalAction::Delete))
        .count("update", n(RemovalAction::Update))
        .count("keep", n(RemovalAction::Keep))
        .count("done", results.iter().filter(|r| r.done).count())
        .count("failed", results.iter().filter(|r| !r.done).count())
        .with("plans", plans)
        .with("results", results)
}

/// Reads a y/yes answer from stdin (the question is already printed).
/// (stdin is read through `signin::next_line`, which a browser sign-in shares.)
pub(crate) async fn confirm_line() -> bool {
    super::signin::next_line()
        .await
        .is_some_and(|line| matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
