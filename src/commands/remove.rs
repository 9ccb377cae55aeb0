//! `spot-connect remove`: lists what would be deleted, changed or kept, asks, then removes.
//! `--yes` skips the question; stdin not a terminal without `--yes` → exit 2.

use super::{fail, progress_line};
use crate::cli::{Cli, CommonOpts, RemoveOpts, exit};
use crate::onboard::remove::{RemovalAction, RemoveOptions};
use std::io::IsTerminal;

pub async fn remove(cli: &Cli, ro: &RemoveOpts) -> i32 {
    super::interruptible(run(&cli.opts, ro)).await
}

async fn run(opts: &CommonOpts, ro: &RemoveOpts) -> i32 {
    let mut settings = match opts.settings() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let group = opts.management_group.as_deref();
    if opts.subscriptions.is_empty() && !opts.all_subscriptions && group.is_none() {
        eprintln!(
            "spot-connect remove: --subscription ID (repeatable), --all-subscriptions or --management-group ID is required"
        );
        return exit::USAGE;
    }
    if !opts.yes && !std::io::stdin().is_terminal() {
        eprintln!("spot-connect remove: deletes objects: needs --yes when stdin is not a terminal");
        return exit::USAGE;
    }
    let (session, mut targets) =
        match super::status::signed_in(opts, "remove", group.is_none()).await {
            Ok(x) => x,
            Err(code) => return code,
        };
    // --management-group: what is ours at the group (its assignment and role) and for every
    // enabled subscription below it (nested groups included).
    if let Some(g) = group {
        match crate::onboard::fleet::resolve(&session, g, &opts.exclude_subscriptions).await {
            Ok(r) => {
                settings.management_group = Some(r.scope(false));
                targets = r.targets;
            }
            Err(e) => return fail(&e),
        }
    }
    let ropts = RemoveOptions {
        delete_spot_account: ro.delete_spot_account,
    };
    let plans =
        match crate::onboard::remove::plan_removal(&session, &targets, &settings, ropts).await {
            Ok(p) => p,
            Err(e) => return fail(&e),
        };
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
            eprintln!("  {a} {} {} [{}]: {}", i.object, i.name, i.id, i.reason);
        }
    }
    let changes = plans.iter().map(|p| p.changes().count()).sum::<usize>();
    if changes == 0 {
        eprintln!("  nothing of spot-connect's to remove");
        if opts.json {
            crate::cli::json_out::print(&serde_json::json!({"plans": plans, "results": []}));
        }
        return exit::DONE;
    }
    if !opts.yes {
        eprint!("Remove these? [y/N] ");
        if !confirm_line().await {
            eprintln!("  nothing was changed");
            return exit::FAILED;
        }
    }
    let mut results = Vec::new();
    for p in &plans {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(async move {
            while let Some(x) = rx.recv().await {
                if let Some(line) = progress_line(&x) {
                    eprintln!("{line}");
                }
            }
        });
        results.extend(crate::onboard::remove::remove(&session, p, tx).await);
        let _ = printer.await;
    }
    let failed = results.iter().filter(|r| !r.done).count();
    if opts.json {
        crate::cli::json_out::print(&serde_json::json!({"plans": plans, "results": results}));
    }
    if failed == 0 {
        eprintln!("  ✓ removed");
        exit::DONE
    } else {
        eprintln!("  ✗ {failed} item(s) could not be removed (see above); run remove again");
        exit::FAILED
    }
}

/// Reads a y/yes answer from stdin (the question is already printed).
/// (stdin is read through `signin::next_line`, which a browser sign-in shares.)
pub(crate) async fn confirm_line() -> bool {
    super::signin::next_line()
        .await
        .is_some_and(|line| matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
