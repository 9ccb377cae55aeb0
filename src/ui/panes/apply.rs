//! The run: each step's status, a row per subscription of a bulk run.

use super::super::widgets::{error_lines, fit, loading, para, short_id};
use super::super::{Theme, fmt_elapsed, spinner, status_word};
use crate::app::state::secs;
use crate::app::state::{Now, Run, State, Status};
use crate::onboard::model::Step;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

pub(super) fn step_detail(st: &Status, t: Theme, now: Now) -> Vec<Line<'static>> {
    match st {
        Status::Pending => vec![Line::from(Span::styled("pending", t.dim()))],
        Status::Running { detail, since } => vec![Line::from(vec![
            Span::styled(format!("{} ", spinner(now)), t.accent()),
            Span::raw(format!(
                "{detail} ({})",
                fmt_elapsed(now.mono.saturating_sub(*since))
            )),
        ])],
        Status::Waiting {
            reason,
            attempt,
            next_in,
            at,
            ..
        } => {
            let left = next_in.saturating_sub(now.mono.saturating_sub(*at));
            vec![
                Line::from(vec![
                    Span::styled("◔ ", t.warn()),
                    Span::styled(format!("{reason},"), t.warn()),
                ]),
                Line::from(Span::styled(
                    format!("  attempt {attempt}, next in {} s", secs(left)),
                    t.warn(),
                )),
            ]
        }
        Status::Done { detail, id, .. } | Status::Chosen { detail, id } => {
            let mut v = vec![Line::from(vec![
                Span::styled(format!("✓ {} ", status_word(st)), t.ok()),
                Span::raw(detail.clone()),
            ])];
            if let Some(id) = id {
                v.push(Line::from(Span::styled(format!("  id {id}"), t.dim())));
            }
            v
        }
        Status::Failed { error, .. } => error_lines(error, t, false),
        Status::Skipped { reason } => vec![Line::from(Span::styled(
            format!("skipped: {reason}"),
            t.dim(),
        ))],
    }
}

pub(super) fn apply(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let mut shown_error = false;
    if let Some(step) = s.apply_focus {
        // Several subscriptions: whose news this is, so two subscriptions' details never mix.
        if s.targets.len() > 1 {
            let whose = match &s.apply_focus_sub {
                Some(sub) => s
                    .targets
                    .iter()
                    .find(|t| &t.subscription_id == sub)
                    .map(|t| {
                        let tenant = if s.several_tenants() {
                            format!(" in {}", s.tenant_label(&t.tenant_id))
                        } else {
                            String::new()
                        };
                        format!("{}{tenant}", t.subscription_name)
                    })
                    .unwrap_or_else(|| sub.clone()),
                None => "a tenant's shared objects".into(),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{}: ", step.label()), t.bold()),
                Span::styled(whose, t.accent()),
            ]));
        }
        match s.status(step) {
            Status::Failed { error, .. } => {
                lines.extend(error_lines(error, t, s.retryable().is_some()));
                shown_error = true;
            }
            st => lines.extend(step_detail(st, t, now)),
        }
        lines.push(Line::from(""));
    } else if s.run_active() {
        lines.push(loading("starting…", t, now));
        lines.push(Line::from(""));
    }
    let wide = area.width >= 80;
    for step in Step::ALL
        .iter()
        .filter(|st| !matches!(st, Step::Done | Step::AzureLogin | Step::Subscription))
    {
        let st = s.status(*step);
        let style = match st {
            Status::Failed { .. } => t.bad(),
            Status::Waiting { .. } => t.warn(),
            Status::Done { .. } | Status::Chosen { .. } => t.ok(),
            Status::Running { .. } => t.accent(),
            _ => t.dim(),
        };
        let id = match st {
            Status::Done { id: Some(id), .. } if wide => {
                display_id(id, (area.width as usize).saturating_sub(26))
            }
            Status::Done { id: Some(id), .. } => short_id(id, false),
            _ => String::new(),
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<17}", step.label())),
            Span::styled(format!("{:<8}", status_word(st)), style),
            Span::styled(id, t.dim()),
        ]));
    }
    if s.targets.len() > 1 {
        lines.push(Line::from(""));
        lines.extend(bulk_rows(s, t, area.width as usize));
    }
    lines.push(Line::from(""));
    match &s.run {
        Run::Failed(e) if !shown_error => {
            lines.extend(error_lines(e, t, s.retryable().is_some()));
        }
        Run::Running { .. } => lines.push(Line::from(Span::styled(
            "Progress is saved after every write: q stops, a next run resumes.",
            t.dim(),
        ))),
        _ => {}
    }
    para(frame, lines, area);
}

/// An id that fits: ARM ids (`/subscriptions/…/roleAssignments/<guid>`) shorten to `…/<type>/<guid>`.
pub(super) fn display_id(id: &str, room: usize) -> String {
    if id.chars().count() <= room {
        return id.to_string();
    }
    let parts: Vec<&str> = id.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [name, kind, _] if kind.len() + name.len() + 3 <= room => format!("…/{kind}/{name}"),
        [name, _, _] => format!("…/{name}"),
        _ => id.to_string(),
    }
}

/// One row per subscription of a bulk run: name, latest step, its status.
pub(super) fn bulk_rows(s: &State, t: Theme, w: usize) -> Vec<Line<'static>> {
    let mut v = vec![];
    let grouped = s.several_tenants();
    let mut last_tenant: Option<&str> = None;
    let mut targets: Vec<&crate::onboard::Target> = s.targets.iter().collect();
    if grouped {
        let order = s.run_tenants();
        targets.sort_by_key(|tg| order.iter().position(|x| *x == tg.tenant_id));
    }
    for tg in targets {
        let Some((step, st)) = s.bulk_rows.get(&tg.subscription_id) else {
            continue;
        };
        if grouped && last_tenant != Some(tg.tenant_id.as_str()) {
            last_tenant = Some(tg.tenant_id.as_str());
            v.push(Line::from(Span::styled(
                format!("Tenant {}", s.tenant_label(&tg.tenant_id)),
                t.bold(),
            )));
        }
        let style = match st {
            Status::Failed { .. } => t.bad(),
            Status::Waiting { .. } => t.warn(),
            Status::Done { .. } => t.ok(),
            Status::Running { .. } => t.accent(),
            _ => t.dim(),
        };
        let name_w = w.saturating_sub(17 + 9).clamp(10, 40);
        // This subscription's own detail (what it waits for), never another's.
        let detail = match st {
            Status::Running { detail, .. } => detail.clone(),
            Status::Waiting { reason, .. } => reason.clone(),
            Status::Failed { error, .. } => error.summary.clone(),
            _ => String::new(),
        };
        let room = w.saturating_sub(name_w + 1 + 17 + 8);
        v.push(Line::from(vec![
            Span::raw(format!("{:<name_w$} ", fit(&tg.subscription_name, name_w))),
            Span::raw(format!("{:<17}", step.label())),
            Span::styled(format!("{:<8}", status_word(st)), style),
            Span::styled(fit(&detail, room), t.dim()),
        ]));
    }
    v
}
