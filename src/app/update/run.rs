//! Carrying out the confirmed plan: the run's progress per step and per subscription, and
//! its result.

use super::*;
use crate::onboard::model::{Outcome, Step, StepEvent, Verdict};

/// Carries out the plan on screen (the one the operator confirmed).
pub(super) fn start_apply(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(plan) = s.plan.ready().cloned() else {
        return vec![];
    };
    s.run = Run::Running { since: at };
    s.last_error = None;
    s.pane = Pane::Apply;
    for step in [
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
    ] {
        if matches!(s.status(step), Status::Failed { .. }) {
            s.steps.insert(step, Status::Pending);
        }
    }
    if plan.subscriptions.len() > 1 {
        log(
            s,
            format!("onboarding {} subscriptions", plan.subscriptions.len()),
        );
        s.bulk_rows = plan
            .subscriptions
            .iter()
            .map(|t| {
                (
                    t.subscription_id.clone(),
                    (Step::AppRegistration, Status::Pending),
                )
            })
            .collect();
    } else if let Some(t) = plan.subscriptions.first() {
        log(
            s,
            format!("onboarding {} ({})", t.subscription_name, t.subscription_id),
        );
    }
    vec![Effect::Apply {
        generation: s.plan_gen,
    }]
}

pub(super) fn on_applied(s: &mut State, report: RunReport) {
    // One subscription that failed: the error stays on the Apply screen (r plans again).
    if let ([one], None) = (report.reports.as_slice(), &report.stopped) {
        if let Some(a) = &one.spot_account_id {
            s.spot_account_id = Some(a.clone());
        }
        if one.verdict != Verdict::Connected {
            let e = one.error.clone().unwrap_or(ErrorInfo {
                summary: "the subscription was not connected".into(),
                api: None,
                hint: None,
            });
            s.run = Run::Failed(failed(s, "onboarding", Some(Origin::Apply), e));
            return;
        }
        log(s, format!("subscription {} connected", one.subscription_id));
        s.steps.insert(
            Step::Done,
            Status::Done {
                outcome: Outcome::Created,
                id: None,
                detail: "connected".into(),
                elapsed: None,
            },
        );
        s.run = Run::Finished(Box::new(report));
        s.pane = Pane::Done;
        s.last_error = None;
        return;
    }
    let failed = report.failed();
    log(
        s,
        format!(
            "{} of {} subscription(s) connected",
            report.reports.len() - failed,
            report.reports.len()
        ),
    );
    // One account each: the header names one only when they all share it.
    let first = report
        .reports
        .iter()
        .find_map(|r| r.spot_account_id.clone());
    s.spot_account_id = first.filter(|a| {
        report
            .reports
            .iter()
            .all(|r| r.spot_account_id.as_ref() == Some(a))
    });
    let ok = failed == 0 && report.stopped.is_none();
    s.steps.insert(
        Step::Done,
        if ok {
            Status::Done {
                outcome: Outcome::Created,
                id: None,
                detail: "connected".into(),
                elapsed: None,
            }
        } else {
            Status::Failed {
                error: report.stopped.clone().unwrap_or(ErrorInfo {
                    summary: format!("{failed} subscription(s) not connected"),
                    api: None,
                    hint: None,
                }),
                elapsed: None,
            }
        },
    );
    s.last_error = (!ok).then(|| {
        (
            Origin::Apply,
            ErrorInfo {
                summary: format!("{failed} subscription(s) not connected"),
                api: None,
                hint: Some(crate::error::Hint::RunAgain),
            },
        )
    });
    s.run = Run::Finished(Box::new(report));
    s.pane = Pane::Done;
}

pub(super) fn status_of(event: StepEvent, prev_since: Option<Duration>, at: Duration) -> Status {
    let elapsed = prev_since.map(|p| at.saturating_sub(p));
    match event {
        StepEvent::Started { detail } => Status::Running { since: at, detail },
        StepEvent::Waiting {
            reason,
            attempt,
            next_in,
        } => Status::Waiting {
            since: prev_since.unwrap_or(at),
            reason,
            attempt,
            next_in,
            at,
        },
        StepEvent::Finished {
            outcome,
            id,
            detail,
        } => Status::Done {
            outcome,
            id,
            detail,
            elapsed,
        },
        StepEvent::Failed { error } => Status::Failed { error, elapsed },
        StepEvent::Skipped { reason } => Status::Skipped { reason },
    }
}

/// A step's progress: the sidebar row, a bulk run's row of its subscription, the log.
pub(super) fn on_step(
    s: &mut State,
    subscription: Option<String>,
    step: Step,
    event: StepEvent,
    at: Duration,
) {
    if s.op_active() {
        life::op_progress(s, step, subscription, event, at);
        return;
    }
    if let Some(sub) = &subscription
        && s.targets.len() > 1
    {
        // Each subscription's row; the sidebar shows the latest news of any.
        let Some((_, prev)) = s.bulk_rows.get(sub) else {
            return;
        };
        let row = status_of(event.clone(), prev.since(), at);
        s.bulk_rows.insert(sub.clone(), (step, row));
    } else if let (Some(sub), Some(t)) = (&subscription, &s.target)
        && sub != &t.subscription_id
    {
        return;
    }
    let prev_since = s.status(step).since();
    let elapsed = prev_since.map(|p| at.saturating_sub(p));
    let status = match event {
        StepEvent::Started { detail } => {
            log(s, format!("{}: {detail}", step.label()));
            Status::Running { since: at, detail }
        }
        StepEvent::Waiting {
            reason,
            attempt,
            next_in,
        } => {
            log(
                s,
                format!(
                    "{}: {reason} (attempt {attempt}, next in {} s)",
                    step.label(),
                    secs(next_in)
                ),
            );
            Status::Waiting {
                since: prev_since.unwrap_or(at),
                reason,
                attempt,
                next_in,
                at,
            }
        }
        StepEvent::Finished {
            outcome,
            id,
            detail,
        } => {
            log(s, format!("{}: {detail}", step.label()));
            // Several subscriptions have an account each: the header names none.
            if step == Step::SpotAccount
                && s.targets.len() <= 1
                && let Some(id) = &id
            {
                s.spot_account_id = Some(id.clone());
            }
            Status::Done {
                outcome,
                id,
                detail,
                elapsed,
            }
        }
        StepEvent::Failed { error } => {
            log(s, format!("{}: failed: {}", step.label(), error.summary));
            s.last_error = Some((Origin::Apply, error.clone()));
            Status::Failed { error, elapsed }
        }
        StepEvent::Skipped { reason } => {
            log(s, format!("{}: skipped: {reason}", step.label()));
            Status::Skipped { reason }
        }
    };
    s.steps.insert(step, status);
    if s.run_active() || matches!(s.run, Run::Failed(_)) {
        s.apply_focus = Some(step);
        s.apply_focus_sub = subscription;
    }
}
