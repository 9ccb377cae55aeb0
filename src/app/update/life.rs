//! The start screen, Status, Rotate and Remove: their results, progress lines and the
//! explicit yes.

use super::*;
use crate::onboard::model::{Step, StepEvent};

pub(super) fn on_status_read(
    s: &mut State,
    r: Result<Vec<SubscriptionStatus>, ErrorInfo>,
) -> Vec<Effect> {
    // The rotation's prompt waits for what it will change.
    if s.pane == Pane::Rotate && matches!(s.rotate, OpPhase::Planning { .. }) {
        s.rotate_preview = match r {
            Ok(list) => Load::Ready(list),
            Err(e) => Load::Failed(failed(s, "reading what the rotation changes", None, e)),
        };
        s.rotate = OpPhase::Confirm;
        return vec![];
    }
    match r {
        Ok(list) => {
            log(s, format!("status of {} subscription(s) read", list.len()));
            s.health_sel = s.health_sel.min(list.len().saturating_sub(1));
            s.health = Load::Ready(list);
        }
        Err(e) => {
            s.health = Load::Failed(failed(s, "reading the status", None, e));
        }
    }
    vec![]
}

pub(super) fn on_rotated(s: &mut State, r: Result<Box<RotateReport>, ErrorInfo>) -> Vec<Effect> {
    match r {
        Ok(rep) => {
            log(
                s,
                format!(
                    "rotation in tenant {}: {}",
                    rep.tenant_id,
                    if rep.complete { "complete" } else { "partial" }
                ),
            );
            s.rotate = OpPhase::Finished(rep);
        }
        Err(e) => {
            s.rotate = OpPhase::Failed(failed(s, "rotation", None, e));
        }
    }
    vec![]
}

pub(super) fn on_removal_planned(
    s: &mut State,
    r: Result<Vec<RemovalPlan>, ErrorInfo>,
) -> Vec<Effect> {
    match r {
        Ok(plans) => {
            log(
                s,
                format!(
                    "removal plan: {} change(s)",
                    plans.iter().map(|p| p.changes().count()).sum::<usize>()
                ),
            );
            s.removal_rows = plans.iter().flat_map(RemovalRow::of).collect();
            s.removal_plans = plans;
            s.remove = OpPhase::Confirm;
        }
        Err(e) => {
            s.remove = OpPhase::Failed(failed(s, "planning the removal", None, e));
        }
    }
    vec![]
}

pub(super) fn on_removed(s: &mut State, results: Vec<RemovalResult>) -> Vec<Effect> {
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    log(
        s,
        format!("removal: {} item(s), {failed} failed", results.len()),
    );
    s.remove = OpPhase::Finished(results);
    vec![]
}

/// The subscriptions whose status is read: every selectable one of the signed-in tenants.
pub(super) fn read_status(s: &mut State, at: Duration) -> Vec<Effect> {
    if s.discovery.ready().is_none() {
        // Started when the subscriptions arrive.
        s.health = Load::Idle;
        return vec![];
    }
    let targets: Vec<Target> = s
        .selectable_subscriptions()
        .into_iter()
        .map(Target::from)
        .collect();
    s.health = Load::Loading { since: at };
    vec![Effect::ReadStatus {
        targets,
        choices: shared_choices(s),
    }]
}

/// A rotation's or removal's progress: one line per (step, subscription), latest status.
pub(super) fn op_progress(
    s: &mut State,
    step: Step,
    subscription: Option<String>,
    event: StepEvent,
    at: Duration,
) {
    let i = s
        .op_lines
        .iter()
        .position(|l| l.step == step && l.subscription == subscription);
    let prev_since = i.and_then(|i| s.op_lines[i].status.since());
    let status = run::status_of(event, prev_since, at);
    match i {
        Some(i) => s.op_lines[i].status = status,
        None => s.op_lines.push(OpLine {
            step,
            subscription,
            status,
        }),
    }
}

/// The explicit yes of a rotation or removal.
pub(super) fn confirm_op(s: &mut State, at: Duration) -> Vec<Effect> {
    match s.pane {
        Pane::Rotate if matches!(s.rotate, OpPhase::Confirm) => {
            let tenants = s.tenants_with_subscriptions();
            let Some((tenant, name)) = tenants.get(s.tenant_sel).cloned() else {
                return vec![];
            };
            log(
                s,
                format!("rotating the client secret in {name} ({tenant})"),
            );
            s.op_lines.clear();
            s.rotate = OpPhase::Running { since: at };
            vec![Effect::Rotate {
                tenant,
                choices: shared_choices(s),
            }]
        }
        Pane::Remove if matches!(s.remove, OpPhase::Confirm) => {
            let plans = s.removal_plans.clone();
            log(s, "removing".to_string());
            s.op_lines.clear();
            s.remove = OpPhase::Running { since: at };
            vec![Effect::Remove { plans }]
        }
        _ => vec![],
    }
}

/// Enter on the start screen (open the chosen screen) and on Status, Rotate, Remove.
pub(super) fn advance(s: &mut State, at: Duration) -> Vec<Effect> {
    match s.pane {
        Pane::Start => {
            match s.menu_sel {
                0 => {
                    s.pane = Pane::SpotAccount;
                    signin::refresh_pre_steps(s, at);
                }
                1 => {
                    s.pane = Pane::Status;
                    // Read afresh each time: a rotation or removal may have changed it.
                    if !s.health.is_loading() {
                        return read_status(s, at);
                    }
                }
                2 => {
                    s.pane = Pane::Rotate;
                    s.rotate = OpPhase::Choose;
                }
                _ => {
                    s.pane = Pane::Remove;
                    s.remove = OpPhase::Choose;
                }
            }
            vec![]
        }
        Pane::Status => vec![],
        Pane::Rotate => {
            let tenants = s.tenants_with_subscriptions();
            if !matches!(s.rotate, OpPhase::Choose) || s.tenant_sel >= tenants.len() {
                return vec![];
            }
            // Read first (reads only): the prompt lists the accounts and key ids it changes.
            let tenant = tenants[s.tenant_sel].0.clone();
            let targets: Vec<Target> = s
                .selectable_subscriptions()
                .into_iter()
                .filter(|x| x.tenant_id == tenant)
                .map(Target::from)
                .collect();
            s.rotate = OpPhase::Planning { since: at };
            s.rotate_preview = Load::Loading { since: at };
            vec![Effect::ReadStatus {
                targets,
                choices: shared_choices(s),
            }]
        }
        Pane::Remove => {
            if !matches!(s.remove, OpPhase::Choose) {
                return vec![];
            }
            let Some(sub) = s.selectable_subscriptions().get(s.remove_sel).copied() else {
                return vec![];
            };
            let target = Target::from(sub);
            s.remove = OpPhase::Planning { since: at };
            s.removal_plans.clear();
            s.removal_rows.clear();
            s.op_lines.clear();
            vec![Effect::PlanRemoval {
                targets: vec![target],
                choices: shared_choices(s),
            }]
        }
        _ => vec![],
    }
}
