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
        Field::AppName if s.several_tenants() => (
            &s.app_name,
            // Whose name it is, by name and domain.
            s.name_tenant()
                .map(|tn| format!("Display name in {}", s.tenant_label(&tn)))
                .unwrap_or_else(|| "Display name".into()),
            Step::AppRegistration,
        ),
        Field::AppName => (&s.app_name, "Display name".into(), Step::AppRegistration),
        _ => (&s.role_name, "Role name".to_string(), Step::CustomRole),
    };
    field(frame, ta, &label, s.field == Some(which), t, f);
    let mut lines: Vec<Line<'static>> = vec![];
    match which {
        Field::AppName if s.several_tenants() => {
            // One app registration per tenant: each its own name; ↑/↓ picks the one the field
            // edits, so editing one never renames another's.
            lines.push(Line::from(Span::styled(
                "One app registration per tenant (↑/↓: whose name the field edits):",
                t.bold(),
            )));
            let w = area.width as usize;
            // The tenants' labels whole where they fit beside a default name (21 columns).
            let longest = s
                .run_tenants()
                .iter()
                .map(|tn| s.tenant_label(tn).chars().count())
                .max()
                .unwrap_or(0);
            let label_w = longest.min(w.saturating_sub(24)).max(10);
            for (i, tn) in s.run_tenants().iter().enumerate() {
                let sel = i == s.name_tenant_sel;
                let name = if sel {
                    s.app_name_text()
                } else {
                    s.app_name_in(tn).unwrap_or_else(|| "(default)".into())
                };
                lines.push(Line::from(vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(
                        format!(
                            "{:<label_w$} ",
                            super::super::widgets::fit(&s.tenant_label(tn), label_w)
                        ),
                        if sel { t.selected() } else { t.bold() },
                    ),
                    Span::raw(super::super::widgets::fit(
                        &name,
                        w.saturating_sub(label_w + 3),
                    )),
                ]));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(
                "Single tenant (AzureADMyOrg), Web redirect URI https://spot.io, with its service principal. Ours is reused if it exists.",
            ));
        }
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
