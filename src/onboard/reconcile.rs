//! `reconcile` (issue 19): one idempotent pass over a scope, meant for a schedule.
//!
//! 1. Plan (reads only), as `plan` does, except that a secret Spot holds that ends within
//!    `rotate_within` is replaced too (`onboard::plan_renewing`): by the tenant's one new secret
//!    of the pass, the same one that connects the subscriptions that appeared since the last
//!    pass. One secret per app per pass.
//! 2. When the plan writes something (a new subscription, a secret due, a missing action or
//!    assignment) and nothing in it is blocked: `onboard::apply` of that plan (each connection
//!    set and read back, then the old secret removed once no Spot account holds it). Role
//!    updates only add actions (extras are reported, never removed); what is not ours
//!    (`PlanItem::ownership`) is listed, never changed.
//! 3. A blocked plan writes nothing, rotation included: the secrets due are reported `blocked`.
//! 4. Only when the plan had nothing to write and a secret of ours is still due (Spot holds it
//!    for an account the plan could not tie to a connection of this scope): `rotate::rotate`,
//!    the pass's one secret.
//!
//! A pass with nothing to do makes no write.

use super::engine::view::{self, Held};
use super::model::{ErrorInfo, Ownership, PlanAction, Progress, RunReport, Verdict};
use super::rotate::{self, RotateReport};
use super::{Plan, PlanView};
use super::{Session, Settings, Target};
use crate::error::Result;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

/// One subscription's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubOutcome {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    /// `connected` (nothing to do), `connected_now` (this pass connected it: new, or repaired),
    /// `not_ours` (connected through an app that is not ours: left as it is), `failed`,
    /// `blocked` (the plan could not be carried out: nothing was written).
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_account_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_expires: Option<OffsetDateTime>,
    /// What this pass wrote for it, or would have ("create Spot account …").
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// One tenant's secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecretOutcome {
    pub tenant_id: String,
    pub app_id: String,
    /// `not_due`, `rotated`, `partial` (some accounts kept the old secret, or an old secret was
    /// kept because it could not be proven unheld), `failed`.
    pub result: String,
    /// The connections whose secret ends within the window (before this pass).
    pub expiring: Vec<Held>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// A custom role of ours and its drift.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoleOutcome {
    pub tenant_id: String,
    pub name: String,
    /// The plan's action: `reuse`, `update` (missing actions or scopes added), `create`, `blocked`.
    pub action: PlanAction,
    /// Actions of Spot's policy the role lacked (added by this pass).
    pub missing: Vec<String>,
    /// Actions the role has beyond Spot's policy: reported, never removed.
    pub extra: Vec<String>,
}

/// Something found that is not ours: listed, never changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotOurs {
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub object: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

/// The report of one pass (`--json`: the same shape for one subscription or thousands).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReconcileReport {
    pub subscriptions: Vec<SubOutcome>,
    pub secrets: Vec<SecretOutcome>,
    pub roles: Vec<RoleOutcome>,
    pub not_ours: Vec<NotOurs>,
    /// How many objects the plan wrote or would have written (0: a pass with nothing to do).
    pub planned_writes: usize,
    /// Whether `apply` ran (false: nothing to write, or the plan was blocked).
    pub applied: bool,
    /// The error that stopped the apply (sign-in, a service), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<ErrorInfo>,
    /// Everything we manage that failed, was blocked, could not be seen, or kept an old
    /// secret it could not prove unheld, one sentence each (empty: exit 0).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct ReconcileOptions {
    /// Rotate a secret of ours that ends within this (default 30 days).
    pub rotate_within: time::Duration,
}

/// Secrets of the plan's connections that end before `deadline`, by tenant.
fn expiring(plan: &Plan, deadline: OffsetDateTime) -> Vec<(String, Vec<Held>)> {
    let mut out: Vec<(String, Vec<Held>)> = Vec::new();
    for h in view::held_secrets(plan) {
        if h.expires > deadline {
            continue;
        }
        match out.iter_mut().find(|(t, _)| *t == h.tenant_id) {
            Some((_, v)) => v.push(h),
            None => out.push((h.tenant_id.clone(), vec![h])),
        }
    }
    out
}

/// One pass over `targets` (see the module doc). `Err` only when the pass itself failed
/// (nothing could be planned: sign-in, a service unreachable, bad input).
pub async fn reconcile(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    opts: ReconcileOptions,
    progress: UnboundedSender<Progress>,
) -> Result<ReconcileReport> {
    let deadline = OffsetDateTime::now_utc() + opts.rotate_within;
    // A secret that ends within the window is replaced by the plan's one new secret of the
    // tenant: the same one that connects its new subscriptions (one secret per app per pass).
    let plan = super::plan_renewing(session, targets, settings, deadline).await?;
    let due_before = expiring(&plan, deadline);
    let planned_writes = plan.writes().count();
    let blocked: Vec<String> = plan
        .blocked()
        .map(|b| format!("{}: {}", b.object, b.reason))
        .collect();
    // A blocked plan writes nothing at all: no apply, no rotation.
    let run = if planned_writes > 0 && blocked.is_empty() {
        Some(super::apply(session, &plan, progress.clone()).await)
    } else {
        None
    };
    // The secrets as they are now: looked up again only when something was written.
    let now = match &run {
        Some(_) => super::plan(session, targets, settings).await?,
        None => plan.clone(),
    };
    let due_now = expiring(&now, deadline);
    let mut held = view::held_secrets(&now);
    let mut tenants: Vec<(String, String)> = Vec::new();
    for h in view::held_secrets(&plan).iter().chain(&held) {
        if !tenants.iter().any(|(t, _)| *t == h.tenant_id) {
            tenants.push((h.tenant_id.clone(), h.app_id.clone()));
        }
    }
    let find = |due: &[(String, Vec<Held>)], t: &str| {
        due.iter()
            .find(|(x, _)| x == t)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut secrets: Vec<SecretOutcome> = Vec::new();
    for (tenant, app_id) in &tenants {
        let (before, still) = (find(&due_before, tenant), find(&due_now, tenant));
        let mut outcome = SecretOutcome {
            tenant_id: tenant.clone(),
            app_id: app_id.clone(),
            result: "not_due".into(),
            expiring: if before.is_empty() {
                still.clone()
            } else {
                before.clone()
            },
            rotation: None,
            error: None,
        };
        if still.is_empty() {
            if !before.is_empty() {
                // This pass's apply replaced it (the tenant's new secret, set and read back on
                // each connection, the old one removed once no Spot account holds it).
                outcome.result = "rotated".into();
            }
            secrets.push(outcome);
            continue;
        }
        if !blocked.is_empty() {
            outcome.result = "blocked".into();
            outcome.error = Some(ErrorInfo {
                summary: format!(
                    "not rotated: the plan is blocked, so nothing was written ({})",
                    blocked.join("; ")
                ),
                api: None,
                hint: None,
            });
            secrets.push(outcome);
            continue;
        }
        if let Some(r) = &run {
            // The apply made this pass's one secret of the tenant: no second one. What kept
            // the old secret is in its reports.
            let why: Vec<String> = still
                .iter()
                .filter_map(|h| {
                    r.reports
                        .iter()
                        .find(|x| x.subscription_id.eq_ignore_ascii_case(&h.subscription_id))
                        .and_then(|x| x.error.as_ref())
                        .map(|e| format!("{}: {}", h.subscription_id, e.summary))
                })
                .chain(r.stopped.iter().map(|e| e.summary.clone()))
                .collect();
            outcome.result = if still.len() < before.len() {
                "partial".into()
            } else {
                "failed".into()
            };
            outcome.error = Some(ErrorInfo {
                summary: format!(
                    "{} connection(s) still hold a secret that ends within the window{}",
                    still.len(),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", why.join("; "))
                    }
                ),
                api: None,
                hint: None,
            });
            secrets.push(outcome);
            continue;
        }
        // Nothing else to write (the plan could not tie the secret to a connection of this
        // scope): the rotation of every Spot account that uses the app, the pass's one secret.
        let _ = progress.send(Progress::Log {
            message: format!(
                "tenant {tenant}: {} connection(s) hold a secret of ours that ends within {} day(s): rotating it (new secret, every Spot account that uses the app, each verified, then the old one removed)",
                still.len(),
                opts.rotate_within.whole_days()
            ),
        });
        match rotate::rotate(session, tenant, settings, progress.clone()).await {
            Ok(r) => {
                outcome.result = if r.complete && r.left_key_ids.is_empty() {
                    "rotated".into()
                } else {
                    "partial".into()
                };
                outcome.error = r.error.clone();
                if let Some(end) = r.new_end_date_time {
                    for a in r.accounts.iter().filter(|a| a.updated) {
                        for h in held.iter_mut().filter(|h| h.account_id == a.account_id) {
                            h.expires = end;
                        }
                    }
                }
                outcome.rotation = Some(r);
            }
            Err(e) if super::lookup::is_fatal(&e) => return Err(e),
            Err(e) => {
                outcome.result = "failed".into();
                outcome.error = Some(ErrorInfo::from(&e));
            }
        }
        secrets.push(outcome);
    }
    Ok(assemble(
        &plan,
        run.as_ref(),
        secrets,
        planned_writes,
        deadline,
        &held,
    ))
}

/// The report of a pass from its plan, the apply's report (None: not run) and the secrets.
fn assemble(
    plan: &PlanView,
    run: Option<&RunReport>,
    secrets: Vec<SecretOutcome>,
    planned_writes: usize,
    deadline: OffsetDateTime,
    held_now: &[Held],
) -> ReconcileReport {
    // The subscriptions whose connection held a secret due before the pass.
    let rotated: Vec<&str> = secrets
        .iter()
        .flat_map(|s| s.expiring.iter())
        .map(|h| h.subscription_id.as_str())
        .collect();
    let mut problems = Vec::new();
    let blocked: Vec<_> = plan.blocked().collect();
    let mut not_ours = Vec::new();
    let mut roles = Vec::new();
    for i in &plan.items {
        let foreign = i.ownership == Some(Ownership::NotOurs);
        if foreign
            && !not_ours.iter().any(|n: &NotOurs| {
                n.object == i.object && n.subscription_id == i.subscription_id && n.name == i.name
            })
        {
            not_ours.push(NotOurs {
                tenant_id: i.tenant_id.clone(),
                subscription_id: i.subscription_id.clone(),
                object: i.object.clone(),
                name: i.name.clone(),
                id: i.id.clone(),
                reason: i.reason.clone(),
            });
        }
        if i.object == "custom role" && !foreign {
            let d = i.drift.clone().unwrap_or_default();
            roles.push(RoleOutcome {
                tenant_id: i.tenant_id.clone(),
                name: i.name.clone(),
                action: i.action,
                missing: d.missing,
                extra: d.extra,
            });
        }
    }
    for b in &blocked {
        problems.push(format!("blocked: {}: {}", b.object, b.reason));
    }
    let writes_of = |sub: &str| -> Vec<String> {
        plan.writes()
            .filter(|w| {
                w.subscription_id
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(sub))
            })
            .map(|w| {
                let a = match w.action {
                    PlanAction::Create => "create",
                    _ => "update",
                };
                format!("{a} {} {}", w.object, w.name)
            })
            .collect()
    };
    let mut subscriptions = Vec::new();
    for t in &plan.subscriptions {
        let sub = t.subscription_id.as_str();
        let changes = writes_of(sub);
        let kept = plan.items.iter().any(|i| {
            i.subscription_id.as_deref() == Some(sub)
                && i.action == PlanAction::Keep
                && i.object == "Spot connection"
        });
        let held = held_now
            .iter()
            .find(|h| h.subscription_id.eq_ignore_ascii_case(sub));
        let mut o = SubOutcome {
            tenant_id: t.tenant_id.clone(),
            subscription_id: t.subscription_id.clone(),
            subscription_name: t.subscription_name.clone(),
            result: String::new(),
            spot_account_id: held.as_ref().map(|h| h.account_id.clone()),
            secret_expires: held.as_ref().map(|h| h.expires),
            changes,
            error: None,
        };
        match run.and_then(|r| {
            r.reports
                .iter()
                .find(|x| x.subscription_id.eq_ignore_ascii_case(sub))
        }) {
            Some(r) => {
                o.spot_account_id = o.spot_account_id.or(r.spot_account_id.clone());
                o.secret_expires = o.secret_expires.or(r.secret_expires);
                match r.verdict {
                    Verdict::Connected if r.kept.is_some() => o.result = "not_ours".into(),
                    Verdict::Connected if o.changes.is_empty() => o.result = "connected".into(),
                    Verdict::Connected => o.result = "connected_now".into(),
                    Verdict::Failed => {
                        o.result = "failed".into();
                        o.error = r.error.clone();
                        problems.push(format!(
                            "{sub} ({}) failed: {}",
                            t.subscription_name,
                            r.error
                                .as_ref()
                                .map(|e| e.summary.as_str())
                                .unwrap_or("(no reason given)")
                        ));
                    }
                }
            }
            None if kept => o.result = "not_ours".into(),
            None if !blocked.is_empty() => {
                o.result = "blocked".into();
                o.error = Some(ErrorInfo {
                    summary: format!(
                        "nothing was changed: {}",
                        blocked
                            .iter()
                            .filter(|b| {
                                b.subscription_id
                                    .as_deref()
                                    .is_none_or(|s| s.eq_ignore_ascii_case(sub))
                            })
                            .map(|b| format!("{}: {}", b.object, b.reason))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    api: None,
                    hint: None,
                });
            }
            None => o.result = "connected".into(),
        }
        if o.result == "connected" && !o.changes.is_empty() && run.is_none() && blocked.is_empty() {
            o.result = "connected_now".into();
        }
        // Its only change was the new secret on its connection (a rotation): it was connected.
        if o.result == "connected_now" && rotated.iter().any(|s| s.eq_ignore_ascii_case(sub)) {
            let only_secret = plan.writes().all(|w| {
                w.subscription_id
                    .as_deref()
                    .is_none_or(|s| !s.eq_ignore_ascii_case(sub))
                    || w.object == "Spot connection"
            });
            if only_secret {
                o.result = "connected".into();
            }
        }
        subscriptions.push(o);
    }
    for s in &secrets {
        match s.result.as_str() {
            "blocked" => problems.push(format!(
                "tenant {}: the secret of app {} ends within the window and was not rotated: {}",
                s.tenant_id,
                s.app_id,
                s.error
                    .as_ref()
                    .map(|e| e.summary.as_str())
                    .unwrap_or("the plan is blocked")
            )),
            "failed" => problems.push(format!(
                "tenant {}: the secret of app {} could not be rotated: {}",
                s.tenant_id,
                s.app_id,
                s.error
                    .as_ref()
                    .map(|e| e.summary.as_str())
                    .unwrap_or("(no reason given)")
            )),
            "partial" => {
                let r = s.rotation.as_ref();
                let left: Vec<String> = r
                    .map(|r| {
                        r.left_key_ids
                            .iter()
                            .map(|(k, why)| format!("{k} ({why})"))
                            .collect()
                    })
                    .unwrap_or_default();
                problems.push(format!(
                    "tenant {}: the rotation of app {}'s secret is partial{}{}",
                    s.tenant_id,
                    s.app_id,
                    s.error
                        .as_ref()
                        .map(|e| format!(": {}", e.summary))
                        .unwrap_or_default(),
                    if left.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; old secret(s) kept, not proven unheld: {}",
                            left.join(", ")
                        )
                    }
                ));
            }
            _ => {}
        }
    }
    // A secret of ours that still ends within the window after the pass.
    for o in &subscriptions {
        if let Some(e) = o.secret_expires
            && e <= deadline
            && o.result != "not_ours"
        {
            problems.push(format!(
                "{}: its secret of ours ends {} (within the window)",
                o.subscription_id,
                e.date()
            ));
        }
    }
    let stopped = run.and_then(|r| r.stopped.clone());
    ReconcileReport {
        subscriptions,
        secrets,
        roles,
        not_ours,
        planned_writes,
        applied: run.is_some(),
        stopped,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onboard::model::{PlanItem, Step};

    fn item(object: &str, action: PlanAction, reason: &str) -> PlanItem {
        PlanItem {
            step: Step::CustomRole,
            object: object.into(),
            name: "Spot.io Custom Role".into(),
            action,
            tenant_id: "t".into(),
            subscription_id: None,
            id: Some("/providers/x".into()),
            reason: reason.into(),
            drift: None,
            ownership: None,
            hint: None,
        }
    }

    /// "Not ours" is the plan item's typed ownership, never its wording.
    #[test]
    fn not_ours_is_the_items_ownership_not_its_reason() {
        let worded = item(
            "custom role",
            PlanAction::Reuse,
            "a role named x exists but is not ours (only the words say so)",
        )
        .ours();
        let marked = PlanItem {
            object: "app registration".into(),
            name: "spot-connect-t".into(),
            ..item("", PlanAction::Blocked, "found without our tag")
        }
        .not_ours();
        let target = Target {
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            subscription_name: "S".into(),
        };
        let plan = PlanView::new(vec![target], vec![worded, marked]);
        let r = assemble(&plan, None, vec![], 0, OffsetDateTime::now_utc(), &[]);
        let listed: Vec<&str> = r.not_ours.iter().map(|n| n.object.as_str()).collect();
        assert_eq!(listed, ["app registration"], "{r:?}");
        assert_eq!(r.not_ours[0].reason, "found without our tag");
        // The role of ours is reported with its drift, whatever its reason says.
        assert_eq!(r.roles.len(), 1);
        assert_eq!(r.roles[0].action, PlanAction::Reuse);
    }
}
