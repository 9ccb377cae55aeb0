//! `spot-connect rotate-secret`: new secret -> every Spot account that uses the app -> old
//! secrets removed. The tenant: `--tenant`, else the tenants of `--subscription`.
//! Exit 0 when complete, 1 when nothing changed or the rotation is partial.

use super::report::Outcome;
use super::{CommandError, CommandResult, Kind, Status};
use crate::cli::{Cli, CommonOpts};
use std::io::IsTerminal;

pub async fn rotate_secret(cli: &Cli) -> CommandResult {
    super::interruptible(run(&cli.opts)).await
}

async fn run(opts: &CommonOpts) -> CommandResult {
    let settings = opts.settings()?;
    if opts.tenant.is_none() && opts.subscriptions.is_empty() && !opts.all_subscriptions {
        return Err(CommandError::usage(
            "--tenant ID or --subscription ID is required",
        ));
    }
    if !opts.yes && !std::io::stdin().is_terminal() {
        return Err(CommandError::usage(
            "changes Azure and Spot: needs --yes when stdin is not a terminal",
        ));
    }
    let (session, targets) = super::status::signed_in(opts, false).await?;
    let mut tenants: Vec<String> = opts.tenant.iter().cloned().collect();
    for t in &targets {
        if !tenants.contains(&t.tenant_id) {
            tenants.push(t.tenant_id.clone());
        }
    }
    if !opts.yes {
        eprintln!(
            "A new client secret will be made for the spot-connect app of {} tenant(s), set on every Spot account that uses it, and the old secrets removed.",
            tenants.len()
        );
        eprint!("Rotate? [y/N] ");
        if !super::remove::confirm_line().await {
            return Err(CommandError::new(Kind::Declined, "nothing was changed"));
        }
    }
    let mut reports = Vec::new();
    let mut subscriptions = Vec::new();
    let (mut updated, mut not_updated, mut removed, mut left) = (0, 0, 0, 0);
    let mut ok = true;
    for tenant in &tenants {
        eprintln!("Tenant {tenant}");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                super::lines::say("", &p);
            }
        });
        let r = crate::onboard::rotate::rotate(&session, tenant, &settings, tx).await;
        let _ = printer.await;
        super::lines::done();
        match r {
            Ok(r) => {
                if r.complete {
                    eprintln!(
                        "  ✓ rotated: {} account(s) hold the new secret {} (expires {}); {} old secret(s) removed",
                        r.accounts.len(),
                        r.new_key_id.as_deref().unwrap_or("?"),
                        r.new_end_date_time
                            .map(|d| d.date().to_string())
                            .unwrap_or_default(),
                        r.removed_key_ids.len()
                    );
                } else {
                    ok = false;
                    for a in r.accounts.iter().filter(|a| !a.updated) {
                        eprintln!(
                            "  ✗ {} ({}) keeps the old secret: {}",
                            a.account_id,
                            a.subscription_id,
                            a.error.as_ref().map(|e| e.summary.as_str()).unwrap_or("")
                        );
                    }
                    for (k, why) in &r.left_key_ids {
                        eprintln!("  ✗ old secret {k} not removed: {why}");
                    }
                    eprintln!("  run rotate-secret again to finish");
                }
                for a in &r.accounts {
                    subscriptions.push(serde_json::json!({
                        "subscription_id": a.subscription_id,
                        "tenant_id": r.tenant_id,
                        "account_id": a.account_id,
                        "updated": a.updated,
                        "error": a.error,
                    }));
                }
                updated += r.accounts.iter().filter(|a| a.updated).count();
                not_updated += r.accounts.iter().filter(|a| !a.updated).count();
                removed += r.removed_key_ids.len();
                left += r.left_key_ids.len();
                reports.push(serde_json::to_value(&r).unwrap_or_default());
            }
            Err(e) => {
                ok = false;
                eprintln!("  ✗ {e}");
                reports.push(serde_json::json!({"tenant_id": tenant, "error": crate::onboard::model::ErrorInfo::from(&e)}));
            }
        }
    }
    // `rotate-secret --json` (docs/json.md): per Spot account (and its subscription) whether it
    // holds the new secret; each tenant's rotation beside.
    let json = super::report::Document::new("rotate-secret")
        .subscriptions(subscriptions)
        .count("tenants", tenants.len())
        .count("accounts_updated", updated)
        .count("accounts_not_updated", not_updated)
        .count("old_secrets_removed", removed)
        .count("old_secrets_left", left)
        .with("tenants", reports);
    if ok {
        Ok(Outcome::new(Status::Done, json))
    } else {
        Err(
            CommandError::new(Kind::Failed, "the rotation is not complete (see above)")
                .with_json(json),
        )
    }
}
