//! The App registration and Custom role panes: a name field and what the plan does with it.

use super::super::Theme;
use super::super::widgets::{para, short_id};
use super::*;
use crate::app::state::{Field, Now, State};
use crate::onboard::model::Step;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

pub(super) fn named(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect, which: Field) {
    let [f, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
    let (ta, label, step) = match which {
        Field::AppName => (&s.app_name, "Display name", Step::AppRegistration),
        _ => (&s.role_name, "Role name", Step::CustomRole),
    };
    field(frame, ta, label, s.field == Some(which), t, f);
    let mut lines: Vec<Line<'static>> = vec![];
    match which {
        Field::AppName => {
            lines.push(Line::from(
                "Single tenant (AzureADMyOrg), Web redirect URI https://spot.io, with its service principal. Ours is reused if it exists.",
            ));
        }
        _ => {
            let wide = area.width >= 80;
            let scope = s
                .target
                .as_ref()
                .map(|t| format!("/subscriptions/{}", short_id(&t.subscription_id, wide)))
                .unwrap_or_else(|| "the subscription".into());
            lines.push(Line::from(vec![
                Span::raw("Spot's actions, assignable at "),
                Span::styled(scope, t.accent()),
            ]));
            lines.push(Line::from(
                "A role of the same name is reused, or updated if it drifted.",
            ));
        }
    }
    lines.push(Line::from(""));
    lines.extend(plan_status(s, t, now, step, area.width as usize));
    para(frame, lines, rest);
}
