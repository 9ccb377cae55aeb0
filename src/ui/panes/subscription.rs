//! The subscription picker.

use super::super::Theme;
use super::super::widgets::{error_lines, fit, loading, para, short_id};
use super::*;
use crate::app::state::{Field, Load, Now, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

/// The picker's "whole management group" choice (`m`): the tree of the groups the sign-in can
/// read, their subscriptions under them; Enter connects the highlighted group.
fn groups(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let w = area.width as usize;
    let mut lines: Vec<Line<'static>> = vec![
        Line::from(Span::styled("Whole management group", t.bold())),
        Line::from(
            "Every enabled subscription below the group, nested groups included, now and later: one role and one assignment at the group.",
        ),
        Line::from(""),
    ];
    let rows = s.group_rows();
    let max_rows = (area.height as usize).saturating_sub(lines.len() + 2 + 4);
    let start = s.group_sel.saturating_sub(max_rows.saturating_sub(1));
    for (i, r) in rows.iter().enumerate().skip(start).take(max_rows) {
        let pad = "  ".repeat(r.depth);
        let sel = i == s.group_sel;
        let mut spans = vec![Span::styled(if sel { "› " } else { "  " }, t.accent())];
        match &r.group {
            Some(id) => {
                let count = match r.count {
                    Some(1) => "  1 subscription".to_string(),
                    Some(n) => format!("  {n} subscriptions"),
                    None => String::new(),
                };
                let room = w.saturating_sub(2 + pad.len() + 2 + count.chars().count());
                let name = fit(&r.text, room);
                // The id where it fits (the portal shows groups by id too).
                let left = room.saturating_sub(name.chars().count());
                let id = if id.chars().count() + 2 <= left {
                    format!("  {id}")
                } else {
                    String::new()
                };
                spans.push(Span::raw(pad));
                spans.push(Span::styled("▸ ", t.accent()));
                spans.push(Span::styled(
                    name,
                    if sel { t.selected() } else { t.bold() },
                ));
                spans.push(Span::styled(count, t.ok()));
                spans.push(Span::styled(id, t.dim()));
            }
            None => {
                let room = w.saturating_sub(2 + pad.len());
                spans.push(Span::raw(pad));
                spans.push(Span::styled(fit(&r.text, room), t.dim()));
            }
        }
        lines.push(Line::from(spans));
    }
    if let Some(g) = s.selected_group() {
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::raw("Enter connects "),
            Span::styled(g.display_name.clone(), t.bold()),
            Span::raw(format!(
                ": {} subscription(s) in tenant {}",
                g.targets.len(),
                s.tenant_label(&g.tenant_id)
            )),
        ]));
        if !g.not_enabled.is_empty() {
            lines.push(Line::from(Span::styled(
                format!("{} below it not enabled: left out", g.not_enabled.len()),
                t.warn(),
            )));
        }
    }
    lines.push(Line::from(vec![
        Span::styled("m", t.key()),
        Span::raw(" back to the subscriptions"),
    ]));
    para(frame, lines, area);
}

/// The subscriptions (filtered), their selection, and the highlighted one's ids.
pub(super) fn subscription(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    if s.group_view {
        return groups(frame, s, t, area);
    }
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
            // The "connected" badge takes its room from the ids column (the highlighted one's id
            // is shown below), then from the names, so a row stays one line.
            let badge = " ✓ connected";
            let badged = subs
                .iter()
                .any(|x| s.connected.contains(&x.subscription_id));
            let full_w = if wide { 32 } else { 20 };
            let (name_w, show_id) = if badged {
                let id_w = short_id(&subs[0].subscription_id, wide).chars().count() + 1;
                let state_w = subs
                    .iter()
                    .map(|x| x.state.chars().count())
                    .max()
                    .unwrap_or(0);
                let room = (rest.width as usize)
                    .saturating_sub(2 + 4 + 1 + state_w + badge.chars().count());
                if room >= full_w + id_w {
                    (full_w, true)
                } else {
                    (room.clamp(10, full_w), false)
                }
            } else {
                (full_w, true)
            };
            let max_rows = rest.height.saturating_sub(4) as usize;
            // Several tenants: each tenant's subscriptions under its header (name, domain, id).
            let grouped = s.discovery_tenants() > 1;
            let mut rows: Vec<(Option<usize>, Line<'static>)> = vec![];
            let mut last_tenant: Option<&str> = None;
            for (i, sub) in subs.iter().enumerate() {
                if grouped && last_tenant != Some(sub.tenant_id.as_str()) {
                    last_tenant = Some(sub.tenant_id.as_str());
                    let n = subs.iter().filter(|x| x.tenant_id == sub.tenant_id).count();
                    // One line (the scroll counts rows): the name whole, then its id and
                    // count where they fit.
                    let w = rest.width as usize;
                    let head = fit(&format!("Tenant {}", s.tenant_label(&sub.tenant_id)), w);
                    let count = format!("  {n} subscription{}", if n == 1 { "" } else { "s" });
                    let id = format!("  {}", short_id(&sub.tenant_id, false));
                    let room = w.saturating_sub(head.chars().count());
                    let tail = if id.chars().count() + count.chars().count() <= room {
                        format!("{id}{count}")
                    } else if count.chars().count() <= room {
                        count
                    } else {
                        String::new()
                    };
                    rows.push((
                        None,
                        Line::from(vec![
                            Span::styled(head, t.bold()),
                            Span::styled(tail, t.dim()),
                        ]),
                    ));
                }
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
                let mut spans = vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(format!("{mark} "), t.accent()),
                    Span::styled(
                        if show_id {
                            format!("{name:<name_w$} {} ", short_id(&sub.subscription_id, wide))
                        } else {
                            format!("{name:<name_w$} ")
                        },
                        base,
                    ),
                    Span::styled(
                        sub.state.clone(),
                        if sub.selectable() { t.ok() } else { t.dim() },
                    ),
                ];
                if s.connected.contains(&sub.subscription_id) {
                    spans.push(Span::styled(badge, t.ok()));
                }
                rows.push((Some(i), Line::from(spans)));
            }
            let sel_row = rows
                .iter()
                .position(|(i, _)| *i == Some(s.sub_sel))
                .unwrap_or(0);
            let mut start = sel_row.saturating_sub(max_rows.saturating_sub(1));
            // The selected row's tenant header stays in view when it fits.
            if start > 0 && start == sel_row && rows[start - 1].0.is_none() {
                start -= 1;
            }
            lines.extend(rows.into_iter().skip(start).take(max_rows).map(|(_, l)| l));
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
                lines.push(Line::from(vec![
                    Span::raw("tenant "),
                    Span::styled(
                        format!(
                            "{} {}",
                            s.tenant_label(&sel.tenant_id),
                            short_id(&sel.tenant_id, wide)
                        ),
                        t.accent(),
                    ),
                ]));
            }
            if let Some(n) = s.groups.ready().map(Vec::len).filter(|n| *n > 0) {
                lines.push(Line::from(vec![
                    Span::styled("m", t.key()),
                    Span::raw(format!(" a whole management group instead ({n} readable)")),
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
