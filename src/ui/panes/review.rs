//! The review: every object of every subscription, counts per kind, what blocks it.

use super::super::Theme;
use super::super::widgets::{fit, para, sentence, short_id};
use super::*;
use crate::app::state::{Load, Now, State};
use crate::onboard::model::{PlanAction, PlanItem, Step};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// " + " / " ~ " / " = " / " ✗ " and its style.
pub(super) fn action_sign(a: PlanAction, t: Theme) -> (&'static str, ratatui::style::Style) {
    match a {
        PlanAction::Create => (" + ", t.ok()),
        PlanAction::Update => (" ~ ", t.warn()),
        PlanAction::Reuse => (" = ", t.accent()),
        PlanAction::Blocked => (" ✗ ", t.bad()),
        PlanAction::Keep => (" = ", t.accent()),
    }
}

/// The review: every object of every subscription (the tenant's shared ones once), a count per
/// kind, and what Enter does. It scrolls (↑/↓) when it does not fit.
pub(super) fn confirm(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let Load::Ready(p) = &s.plan else {
        lines.extend(plan_status(s, t, now, Step::Done, area.width as usize));
        para(frame, lines, area);
        return;
    };
    let wide = area.width >= 80;
    // One row per object: " + " object(19) name.
    let name_w = (area.width as usize).saturating_sub(3 + 19);
    let writes = p.writes().count();
    let blocked: Vec<&PlanItem> = p.blocked().collect();
    if p.subscriptions.len() > 1 {
        let mut tenants: Vec<&str> = p
            .subscriptions
            .iter()
            .map(|t| t.tenant_id.as_str())
            .collect();
        tenants.sort();
        tenants.dedup();
        lines.push(Line::from(vec![Span::styled(
            format!(
                "{} subscriptions in {} tenant(s)",
                p.subscriptions.len(),
                tenants.len()
            ),
            t.bold(),
        )]));
    }
    let w = area.width as usize;
    let one_account = crate::app::state::one_account_for_several(s);
    // Blocked: what blocks it and what to do come first, wrapped, so they show at 80x24 above
    // the plan (which scrolls); nothing says how many writes there are.
    if one_account {
        lines.extend(sentence(
            Span::styled("Blocked: ", t.bad()),
            &format!(
                "{} holds one subscription. Go back (Esc) to Spot account and choose automatic or a new account, or select one subscription.",
                s.spot_account_id.clone().unwrap_or_else(|| "the chosen Spot account".into())
            ),
            2,
            w,
            ratatui::style::Style::default(),
        ));
        lines.push(Line::from(""));
    } else if !blocked.is_empty() {
        lines.extend(sentence(
            Span::styled("Blocked: ", t.bad()),
            if blocked.len() == 1 {
                "nothing is written until this is fixed:"
            } else {
                "nothing is written until these are fixed:"
            },
            2,
            w,
            t.bold(),
        ));
        for i in &blocked {
            lines.extend(plan_line(s, i, t, w));
        }
        lines.push(Line::from(vec![
            Span::raw("Then press "),
            Span::styled("r", t.key()),
            Span::raw(" to plan again."),
        ]));
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        if one_account || !blocked.is_empty() {
            "The plan (+ create ~ update = reuse), per kind:".to_string()
        } else {
            format!("{writes} to write (+ create ~ update = reuse), per kind:")
        },
        t.bold(),
    )));
    for c in &p.counts {
        lines.push(Line::from(vec![
            Span::raw(format!("   {:<19}", c.object)),
            Span::styled(c.summary(), t.dim()),
        ]));
    }
    let several = {
        let mut ts: Vec<&str> = p
            .subscriptions
            .iter()
            .map(|x| x.tenant_id.as_str())
            .collect();
        ts.sort();
        ts.dedup();
        ts.len() > 1
    };
    let mut last: Option<(&str, Option<&str>)> = None;
    for i in &p.items {
        let here = (i.tenant_id.as_str(), i.subscription_id.as_deref());
        if last != Some(here) {
            let head = match here {
                (tid, None) => format!(
                    "Tenant {}, shared objects",
                    match s.tenant_name(tid) {
                        Some(_) => s.tenant_label(tid),
                        None => short_id(tid, wide),
                    }
                ),
                (tid, Some(sub)) => {
                    let name = p
                        .subscriptions
                        .iter()
                        .find(|t| t.subscription_id == sub)
                        .map(|t| t.subscription_name.clone())
                        .unwrap_or_default();
                    // Several tenants: each subscription names its tenant.
                    let tenant = if several {
                        format!(
                            " in {}",
                            s.tenant_name(tid).unwrap_or_else(|| short_id(tid, false))
                        )
                    } else {
                        String::new()
                    };
                    format!("Subscription {name} ({}){tenant}", short_id(sub, wide))
                }
            };
            lines.push(Line::from(Span::styled(head, t.bold())));
            last = Some(here);
        }
        let (sign, style) = action_sign(i.action, t);
        lines.push(Line::from(vec![
            Span::styled(sign, style),
            Span::raw(format!("{:<19}", i.object)),
            Span::styled(fit(&i.name, name_w), t.bold()),
        ]));
    }
    if !one_account && blocked.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::styled(format!("{}-month", s.secret_months()), t.bold()),
            Span::raw(" secret. Nothing is written before "),
            Span::styled("Enter", t.key()),
            Span::raw("."),
        ]));
    }
    // Scrolling: the first line shown, and where the view is when not everything fits.
    let h = area.height as usize;
    if lines.len() > h && h > 1 {
        let max = lines.len() - (h - 1);
        let top = s.review_scroll.min(max);
        let shown: Vec<Line<'static>> = lines.into_iter().skip(top).take(h - 1).collect();
        let total = shown.len();
        let mut out = shown;
        out.push(Line::from(Span::styled(
            format!(
                "↑/↓ scroll: lines {}-{} of {}",
                top + 1,
                top + total,
                max + h - 1
            ),
            t.dim(),
        )));
        frame.render_widget(Paragraph::new(out), area);
        return;
    }
    para(frame, lines, area);
}
