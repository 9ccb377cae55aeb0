//! `spot-connect status`: a table (or `--json`) of what exists per subscription, with a verdict.
//! Read-only. Exit 0 unless something we manage is broken, expires within `--warn-within`
//! days, or could not be seen: then 3 (issue 16 §9).

use super::fail;
use crate::cli::{Cli, CommonOpts, StatusOpts, exit};
use crate::onboard::status::{Health, SubscriptionStatus};
use crate::onboard::{Session, Target};

/// Signs in and resolves `--subscription`/`--all-subscriptions`; on failure, the exit code.
pub(crate) async fn signed_in(
    opts: &CommonOpts,
    cmd: &str,
    need_targets: bool,
) -> Result<(Session, Vec<Target>), i32> {
    if need_targets && opts.subscriptions.is_empty() && !opts.all_subscriptions {
        eprintln!(
            "spot-connect {cmd}: --subscription ID (repeatable) or --all-subscriptions is required"
        );
        return Err(exit::USAGE);
    }
    let session = super::session(opts).map_err(|e| fail(&e))?;
    super::sign_in(&session).await?;
    if opts.subscriptions.is_empty() && !opts.all_subscriptions {
        return Ok((session, vec![]));
    }
    match super::resolve_targets(&session, opts).await {
        Ok(t) if t.is_empty() && need_targets => {
            eprintln!("spot-connect {cmd}: no enabled subscription");
            Err(exit::FAILED)
        }
        Ok(t) => Ok((session, t)),
        Err(e) => Err(fail(&e)),
    }
}

pub async fn status(cli: &Cli, o: &StatusOpts) -> i32 {
    super::interruptible(run(&cli.opts, o)).await
}

async fn run(opts: &CommonOpts, o: &StatusOpts) -> i32 {
    let settings = match opts.settings() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let group = opts.management_group.as_deref();
    let (session, targets) = match signed_in(opts, "status", group.is_none()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let warn = time::Duration::days(i64::from(o.warn_within));
    // --management-group: every subscription below it, and the group's role and assignment.
    let (targets, mut list, header) = match group {
        Some(g) => match crate::onboard::status::group_status(&session, g, &settings, warn).await {
            Ok(gs) => (gs.targets.clone(), gs.subscriptions.clone(), gs.lines()),
            Err(e) => return fail(&e),
        },
        None => {
            match crate::onboard::status::status_within(&session, &targets, &settings, warn).await {
                Ok(l) => (targets, l, vec![]),
                Err(e) => return fail(&e),
            }
        }
    };
    for l in header.iter().map(|l| crate::text::clean(l)) {
        if opts.json {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
    let unheld = crate::onboard::orphans::status_lines(&session, &targets).await;
    for u in &unheld {
        for s in list.iter_mut().filter(|s| s.tenant_id == u.tenant_id) {
            s.unheld_secrets.extend(u.key_ids.iter().cloned());
        }
    }
    if opts.json {
        crate::cli::json_out::print(&serde_json::to_value(&list).unwrap_or_default());
    } else {
        print!("{}", table(&list, time::OffsetDateTime::now_utc()));
    }
    for u in &unheld {
        eprintln!("  ! {}", u.line);
    }
    super::say_skipped();
    if list.iter().any(|s| s.verdict.needs_attention()) {
        exit::PARTIAL
    } else {
        exit::DONE
    }
}

/// The human table: one row per subscription, then the reasons for each broken one.
pub fn table(list: &[SubscriptionStatus], _now: time::OffsetDateTime) -> String {
    let mut out = format!(
        "{:<36}  {:<22}  {:<20}  {:<18}  {:<13}  {}\n",
        "SUBSCRIPTION", "NAME", "VERDICT", "SECRET ENDS", "ROLE", "SPOT ACCOUNT"
    );
    for s in list {
        let verdict = match s.verdict {
            Health::Broken => "BROKEN",
            Health::Unknown => "UNKNOWN",
            h => h.label(),
        };
        let secret = s
            .secret
            .as_ref()
            .and_then(|x| x.end_date_time.map(|e| (e, x.days_left.unwrap_or(0))))
            .map(|(e, d)| format!("{} ({d} d)", e.date()))
            .unwrap_or_else(|| "-".into());
        let role = match &s.role {
            None => "-".to_string(),
            Some(r) if !r.drift.missing.is_empty() => format!("{} missing", r.drift.missing.len()),
            Some(r) if !r.drift.extra.is_empty() => format!("ok (+{} extra)", r.drift.extra.len()),
            Some(_) if s.role_assignment_id.is_none() => "not assigned".into(),
            Some(_) => "ok".into(),
        };
        let spot = s
            .spot_account
            .as_ref()
            .map(|a| match a.kind {
                Some(k) => format!("{} ({})", a.account_id, k.label()),
                None => a.account_id.clone(),
            })
            .unwrap_or_else(|| "-".into());
        let name: String = s.subscription_name.chars().take(22).collect();
        out.push_str(&format!(
            "{:<36}  {:<22}  {:<20}  {:<18}  {:<13}  {}\n",
            s.subscription_id, name, verdict, secret, role, spot
        ));
    }
    for s in list.iter().filter(|s| s.note.is_some()) {
        out.push_str(&format!(
            "\n{} is {}: {}\n",
            s.subscription_id,
            s.verdict.label(),
            s.note.as_deref().unwrap_or_default()
        ));
    }
    for s in list.iter().filter(|s| !s.problems.is_empty()) {
        out.push_str(&format!(
            "\n{} is {}:\n",
            s.subscription_id,
            s.verdict.label()
        ));
        for p in &s.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out
}
