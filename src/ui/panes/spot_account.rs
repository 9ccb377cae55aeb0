//! The Spot account pane: the token field, the organization's accounts.

use super::super::Theme;
use super::super::widgets::{error_lines, loading, para};
use super::*;
use crate::app::state::{Field, Load, Now, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

pub(super) fn spot_account(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let [f, src, rest] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(2),
        Constraint::Min(1),
    ])
    .areas(area);
    field(
        frame,
        &fixed_mask(&s.token),
        "Spot API token (Organization Admin)",
        s.field == Some(Field::Token),
        t,
        f,
    );
    let src_text = match &s.token_source {
        Some(src) => format!("from {src} (never shown)"),
        None => "not set: type or paste it (SPOTINST_TOKEN also works)".into(),
    };
    para(
        frame,
        vec![Line::from(Span::styled(src_text, t.dim()))],
        src,
    );
    let mut lines = vec![Line::from(Span::styled(
        "Spot account for this subscription",
        t.bold(),
    ))];
    let mut rows: Vec<(String, String)> =
        vec![("Automatic".into(), "its own account, else a new one".into())];
    for a in s.accounts_list() {
        rows.push((a.account_id.clone(), a.name.clone()));
    }
    rows.push(("+ New".into(), "create a new Spot account".into()));
    for (i, (a, b)) in rows.into_iter().enumerate() {
        let sel = i == s.account_sel;
        let style = if sel && s.field.is_none() {
            t.selected()
        } else {
            ratatui::style::Style::default()
        };
        lines.push(Line::from(vec![
            Span::styled(if sel { "› " } else { "  " }, t.accent()),
            Span::styled(format!("{a:<14}"), style.add_modifier(Modifier::BOLD)),
            Span::styled(format!(" {b}"), style),
        ]));
    }
    if (s.device_code.is_some() || s.browser.is_some()) && s.sign_in.is_loading() {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            if s.browser.is_some() {
                "Azure sign-in is waiting for you: the address to open is on the next pane."
            } else {
                "Azure sign-in is waiting for you: the code is on the next pane."
            },
            t.warn(),
        )));
    }
    match &s.accounts {
        Load::Loading { .. } => lines.push(loading("listing the organization's accounts…", t, now)),
        Load::Failed(e) => {
            lines.push(Line::from(""));
            lines.extend(error_lines(e, t, true));
        }
        _ => {}
    }
    para(frame, lines, rest);
}
