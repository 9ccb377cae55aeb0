//! The subscription picker.

use super::super::Theme;
use super::super::widgets::{error_lines, loading, para, short_id};
use super::*;
use crate::app::state::{Field, Load, Now, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

/// The subscriptions (filtered), their selection, and the highlighted one's ids.
pub(super) fn subscription(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let [f, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
    field(
        frame,
        &s.filter,
        "Filter (/)",
        s.field == Some(Field::Filter),
        t,
        f,
    );
    let wide = area.width >= 80;
    let mut lines: Vec<Line<'static>> = vec![];
    match &s.discovery {
        Load::Idle => lines.push(Line::from("Sign in first (Azure login).")),
        Load::Loading { .. } => lines.push(loading("listing tenants and subscriptions…", t, now)),
        Load::Failed(e) => lines.extend(error_lines(e, t, true)),
        Load::Ready(d) => {
            let subs = s.visible_subscriptions();
            if subs.is_empty() {
                lines.push(Line::from(if d.subscriptions.is_empty() {
                    "No subscription is visible to this sign-in."
                } else {
                    "No subscription matches the filter (Esc clears it)."
                }));
            }
            let name_w = if wide { 32 } else { 20 };
            let max_rows = rest.height.saturating_sub(4) as usize;
            let start = s.sub_sel.saturating_sub(max_rows.saturating_sub(1));
            for (i, sub) in subs.iter().enumerate().skip(start).take(max_rows) {
                let sel = i == s.sub_sel;
                let base = if !sub.selectable() {
                    t.dim()
                } else if sel {
                    t.selected()
                } else {
                    ratatui::style::Style::default()
                };
                let mut name: String = sub.display_name.chars().take(name_w).collect();
                if sub.display_name.chars().count() > name_w {
                    name.pop();
                    name.push('…');
                }
                let mark = if !sub.selectable() {
                    "   "
                } else if s.selected.contains(&sub.subscription_id) {
                    "[x]"
                } else {
                    "[ ]"
                };
                lines.push(Line::from(vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(format!("{mark} "), t.accent()),
                    Span::styled(
                        format!("{name:<name_w$} {} ", short_id(&sub.subscription_id, wide)),
                        base,
                    ),
                    Span::styled(
                        sub.state.clone(),
                        if sub.selectable() { t.ok() } else { t.dim() },
                    ),
                ]));
            }
            if !s.selected.is_empty() {
                lines.push(Line::from(""));
                lines.push(Line::from(Span::styled(
                    format!(
                        "{} selected: Enter onboards them together (one app and role per tenant)",
                        s.selected.len()
                    ),
                    t.bold(),
                )));
            }
            if let Some(sel) = s.selected_subscription() {
                lines.push(Line::from(""));
                lines.push(Line::from(vec![
                    Span::raw("id     "),
                    Span::styled(sel.subscription_id.clone(), t.accent()),
                ]));
                let tn = s
                    .tenant_name(&sel.tenant_id)
                    .map(|n| format!("{n} "))
                    .unwrap_or_default();
                lines.push(Line::from(vec![
                    Span::raw("tenant "),
                    Span::styled(
                        format!("{tn}{}", short_id(&sel.tenant_id, wide)),
                        t.accent(),
                    ),
                ]));
            }
            if !d.skipped.is_empty() {
                lines.push(Line::from(Span::styled(
                    format!("{} tenant(s) could not be read (see log)", d.skipped.len()),
                    t.warn(),
                )));
            }
        }
    }
    para(frame, lines, rest);
}
