//! `spot-connect status`: a table (or `--json`) of what exists per subscription, with a verdict.
//! Read-only. Exit 0 unless something we manage is broken, expires within `--warn-within`
//! days, or could not be seen: then 3 (issue 16 §9).

use super::report::Outcome;
use super::{CommandError, CommandResult, Kind, Status};
use crate::cli::{Cli, CommonOpts, StatusOpts};
use crate::onboard::status::{Health, SubscriptionStatus};
use crate::onboard::{Session, Target};

/// Signs in and resolves `--subscription`/`--all-subscriptions`.
pub(crate) async fn signed_in(
    opts: &CommonOpts,
    need_targets: bool,
) -> Result<(Session, Vec<Target>), CommandError> {
    if need_targets && opts.subscriptions.is_empty() && !opts.all_subscriptions {
        return Err(CommandError::usage(
            "--subscription ID (repeatable) or --all-subscriptions is required",
        ));
    }
    let session = super::session(opts)?;
    super::sign_in(&session).await?;
    if opts.subscriptions.is_empty() && !opts.all_subscriptions {
        return Ok((session, vec![]));
    }
    let t = super::resolve_targets(&session, opts).await?;
    if t.is_empty() && need_targets {
        return Err(CommandError::new(
            Kind::EmptyScope,
            "no enabled subscription",
        ));
    }
    Ok((session, t))
}

pub async fn status(cli: &Cli, o: &StatusOpts) -> CommandResult {
    super::interruptible(run(&cli.opts, o)).await
}

async fn run(opts: &CommonOpts, o: &StatusOpts) -> CommandResult {
    let settings = opts.settings()?;
    let group = opts.management_group.as_deref();
    let (session, targets) = signed_in(opts, group.is_none()).await?;
    let warn = time::Duration::days(i64::from(o.warn_within));
    // --management-group: every subscription below it, and the group's role and assignment.
    let (targets, mut list, header, group_status) = match group {
        Some(g) => {
            let gs = crate::onboard::status::group_status(&session, g, &settings, warn).await?;
            (
                gs.targets.clone(),
                gs.subscriptions.clone(),
                gs.lines(),
                Some(gs),
            )
        }
        None => {
            let l =
                crate::onboard::status::status_within(&session, &targets, &settings, warn).await?;
            (targets, l, vec![], None)
        }
    };
    let header: String = header
        .iter()
        .map(|l| {
            format!(
                "{}
",
                crate::text::clean(l)
            )
        })
        .collect();
    if opts.json {
        eprint!("{header}");
    }
    let unheld = crate::onboard::orphans::status_lines(&session, &targets).await;
    for u in &unheld {
        for s in list.iter_mut().filter(|s| s.tenant_id == u.tenant_id) {
            s.unheld_secrets.extend(u.key_ids.iter().cloned());
        }
    }
    for u in &unheld {
        eprintln!("  ! {}", u.line);
    }
    super::say_skipped();
    let status = if list.iter().any(|s| s.verdict.needs_attention()) {
        Status::Partial
    } else {
        Status::Done
    };
    Ok(Outcome {
        status,
        text: format!("{header}{}", table(&list, time::OffsetDateTime::now_utc())),
        json: match group_status {
            // The group itself (its tree, its role, our assignment there) beside the rows.
            Some(gs) => document(&list).with(
                "management_group",
                serde_json::json!({
                    "group_id": gs.group_id,
                    "display_name": gs.display_name,
                    "tenant_id": gs.tenant_id,
                    "tree": gs.tree,
                    "role_name": gs.role_name,
                    "role": gs.role,
                    "role_assignment_id": gs.role_assignment_id,
                }),
            ),
            None => document(&list),
        },
    })
}

/// `status --json` (docs/json.md): each subscription's status; a count per verdict.
pub fn document(list: &[SubscriptionStatus]) -> super::report::Document {
    let mut d = super::report::Document::new("status")
        .subscriptions(list)
        .count("subscriptions", list.len());
    for h in [
        Health::Connected,
        Health::NotOurs,
        Health::Expiring,
        Health::Broken,
        Health::NotOnboarded,
        Health::Unknown,
    ] {
        let key = serde_json::to_value(h)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        d = d.count(&key, list.iter().filter(|s| s.verdict == h).count());
    }
    d.count(
        "needs_attention",
        list.iter().filter(|s| s.verdict.needs_attention()).count(),
    )
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
        // A connection that is not ours: what the command line can do about it.
        let hint = match s.verdict {
            Health::NotOurs => format!(" ({})", super::hint_text(crate::error::Hint::TakeOver)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n{} is {}: {}{hint}\n",
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
