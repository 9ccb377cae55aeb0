//! What the wizard prints when it ends, whatever pane it ends on: what state things are in
//! (nothing changed; what was written and where its report is; a run stopped part-way and how
//! it resumes), and where the log is. A pure function of the state, so it is tested.

use super::state::{OpPhase, Run, State, Status};
use crate::onboard::model::{Outcome, Step, Verdict};

/// The lines printed after the full screen is left (the exit code is the state's).
pub fn closing_lines(s: &State) -> Vec<String> {
    let mut out = vec![];
    let dir = s
        .state_dir
        .clone()
        .unwrap_or_else(|| "the state directory".into());
    match &s.run {
        Run::Finished(b) => {
            for r in &b.reports {
                let what = if r.verdict == Verdict::Connected {
                    "is connected to Spot"
                } else {
                    "was NOT connected"
                };
                out.push(format!(
                    "spot-connect: {} ({}) {what}",
                    r.subscription_name, r.subscription_id
                ));
                if let Some(p) = &r.report_path {
                    out.push(format!("report: {}", p.display()));
                }
            }
            if let Some(e) = &b.stopped {
                out.push(format!("spot-connect: the run stopped: {}", e.summary));
            }
        }
        Run::Running { .. } => {
            out.push(
                "spot-connect: onboarding stopped before it finished; what it wrote is below"
                    .into(),
            );
            out.extend(written(s));
            out.push(format!(
                "each write is recorded in {dir}: run spot-connect again to resume from there"
            ));
        }
        Run::Failed(e) => {
            out.push(format!("spot-connect: onboarding failed: {}", e.summary));
            out.extend(written(s));
            out.push(format!(
                "what was written is recorded in {dir}: run spot-connect again to resume"
            ));
        }
        Run::NotStarted => match (&s.rotate, &s.remove) {
            (OpPhase::Running { .. }, _) => out.push(format!(
                "spot-connect: the rotation was stopped part-way: the old secret stays valid until a rotation finishes; its progress is in {dir}; run rotate again"
            )),
            (OpPhase::Finished(r), _) => {
                let updated = r.accounts.iter().filter(|a| a.updated).count();
                out.push(format!(
                    "spot-connect: rotated the client secret in tenant {}: {updated} of {} Spot account(s) hold the new secret{}; {} old secret(s) removed",
                    r.tenant_id,
                    r.accounts.len(),
                    r.new_key_id
                        .as_ref()
                        .map(|k| format!(" ({k})"))
                        .unwrap_or_default(),
                    r.removed_key_ids.len()
                ));
            }
            (_, OpPhase::Running { .. }) => out.push(format!(
                "spot-connect: the removal was stopped part-way: what is left is listed by `spot-connect status`; progress in {dir}"
            )),
            (_, OpPhase::Finished(rs)) => {
                let done = rs.iter().filter(|r| r.done).count();
                out.push(format!(
                    "spot-connect: removed {done} of {} object(s) spot-connect created",
                    rs.len()
                ));
                for r in rs.iter().filter(|r| !r.done) {
                    out.push(format!("  left: {} {} ({})", r.item.object, r.item.name, r.item.id));
                }
            }
            _ => out.push("spot-connect: nothing was changed in Azure or Spot".into()),
        },
    }
    if let Some(l) = &s.log_path {
        out.push(format!("log: {l}"));
    }
    out
}

/// "  created app registration spot-connect-… (id)", one line per step the run wrote.
fn written(s: &State) -> Vec<String> {
    let mut v = vec![];
    for step in Step::ALL {
        if let Status::Done {
            outcome,
            id,
            detail,
            ..
        } = s.status(step)
        {
            let verb = match outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Reused => continue,
            };
            let id = id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
            v.push(format!(
                "  {verb} {}{id}: {detail}",
                step.label().to_lowercase()
            ));
        }
    }
    if v.is_empty() {
        v.push("  nothing yet".into());
    }
    v
}
