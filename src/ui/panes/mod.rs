//! The panes of the onboarding steps, one file each (the start, status, rotate and remove
//! screens are `ui::life`'s); what several of them draw (text fields, plan lines) is here.

mod apply;
mod azure_login;
mod client_secret;
mod done;
mod names;
mod review;
mod spot_account;
mod subscription;

pub(crate) use azure_login::{browser_prompt, copied_line, device_code_lines};

use super::Theme;
use super::widgets::{error_lines, fit, loading, wrap_words};
use crate::app::state::{Field, Load, Now, Pane, State};
use crate::onboard::model::{PlanAction, PlanItem, Step};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};
use ratatui_textarea::TextArea;

/// The panes of the onboarding steps (the start, status, rotate and remove screens are
/// `ui::life`'s).
pub(super) fn wizard_pane(frame: &mut Frame, s: &State, t: Theme, now: Now, inner: Rect) {
    match s.pane {
        Pane::SpotAccount => spot_account::spot_account(frame, s, t, now, inner),
        Pane::AzureLogin => azure_login::azure_login(frame, s, t, now, inner),
        Pane::Subscription => subscription::subscription(frame, s, t, now, inner),
        Pane::AppRegistration => names::named(frame, s, t, now, inner, Field::AppName),
        Pane::ClientSecret => client_secret::client_secret(frame, s, t, now, inner),
        Pane::CustomRole => names::named(frame, s, t, now, inner, Field::RoleName),
        Pane::Confirm => review::confirm(frame, s, t, now, inner),
        Pane::Apply => apply::apply(frame, s, t, now, inner),
        Pane::Done => done::done(frame, s, t, inner),
        Pane::Start | Pane::Status | Pane::Rotate | Pane::Remove => {}
    }
}

/// Dots shown for a non-empty secret field, whatever its length.
pub const MASK_DOTS: usize = 8;

/// The token field as drawn: a fixed number of dots once anything is typed, so the screen never
/// tells the token's length.
pub(super) fn fixed_mask(ta: &TextArea<'static>) -> TextArea<'static> {
    let mut shown = ta.clone();
    if ta.lines().iter().any(|l| !l.is_empty()) {
        shown.select_all();
        shown.cut();
        shown.insert_str("•".repeat(MASK_DOTS));
    }
    shown
}

/// A one-line text field with a border; highlighted when focused.
pub(super) fn field(
    frame: &mut Frame,
    ta: &TextArea<'static>,
    label: &str,
    focused: bool,
    t: Theme,
    area: Rect,
) {
    let mut ta = ta.clone();
    let style = if focused { t.accent() } else { t.dim() };
    let hint = if focused {
        " Enter/Tab: done "
    } else {
        " Tab: edit "
    };
    ta.set_block(
        Block::default()
            .borders(Borders::ALL)
            .border_style(style)
            .title(format!(" {label} "))
            .title_bottom(Line::from(hint).right_aligned()),
    );
    if !focused {
        ta.set_cursor_style(ratatui::style::Style::default());
    }
    // The placeholder by emphasis, not the widget's grey default (issue 21 §15).
    ta.set_placeholder_style(t.placeholder());
    frame.render_widget(&ta, area);
}

pub(super) fn action_word(a: PlanAction) -> &'static str {
    match a {
        PlanAction::Create => "create",
        PlanAction::Reuse => "reuse",
        PlanAction::Update => "update",
        PlanAction::Blocked => "BLOCKED",
        PlanAction::Keep => "keep",
    }
}

/// One plan item; its name cut with … to stay on the line (`w` columns).
/// Where a plan item is, when the plan spans several tenants: "in Contoso (contoso.example)",
/// "in Contoso Production, Contoso (contoso.example)"; None with one tenant.
pub(super) fn item_place(s: &State, i: &PlanItem) -> Option<String> {
    let p = s.plan.ready()?;
    let first = p.subscriptions.first()?;
    if p.subscriptions
        .iter()
        .all(|x| x.tenant_id == first.tenant_id)
    {
        return None;
    }
    let tenant = s.tenant_label(&i.tenant_id);
    Some(match &i.subscription_id {
        None => format!("in {tenant}"),
        Some(sub) => {
            let name = p
                .subscriptions
                .iter()
                .find(|x| &x.subscription_id == sub)
                .map_or(sub.as_str(), |x| x.subscription_name.as_str());
            format!("in {name}, {tenant}")
        }
    })
}

/// One plan item; its name cut with … to stay on the line (`w` columns); with several
/// tenants, the tenant (and subscription) it is in.
pub(super) fn plan_line(s: &State, i: &PlanItem, t: Theme, w: usize) -> Vec<Line<'static>> {
    let style = match i.action {
        PlanAction::Create => t.ok(),
        PlanAction::Reuse => t.accent(),
        PlanAction::Update => t.warn(),
        PlanAction::Blocked => t.bad(),
        PlanAction::Keep => t.accent(),
    };
    let mut v = vec![Line::from(vec![
        Span::styled(
            format!("{:<7} ", action_word(i.action)),
            style.add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{}: ", i.object)),
        Span::styled(
            fit(&i.name, w.saturating_sub(8 + i.object.chars().count() + 2)),
            t.bold(),
        ),
    ])];
    if let Some(place) = item_place(s, i) {
        v.push(Line::from(Span::styled(
            format!("        {}", fit(&place, w.saturating_sub(8))),
            t.accent(),
        )));
    }
    // Wrapped, never cut: the reason says what to do.
    for l in wrap_words(&i.reason, w.saturating_sub(8)) {
        v.push(Line::from(Span::styled(format!("        {l}"), t.dim())));
    }
    if let Some(h) = i.hint {
        for l in wrap_words(crate::app::hint_text(h), w.saturating_sub(8)) {
            v.push(Line::from(Span::styled(format!("        {l}"), t.dim())));
        }
    }
    if let Some(id) = &i.id {
        v.push(Line::from(Span::styled(
            format!("        id {id}"),
            t.dim(),
        )));
    }
    if let Some(d) = &i.drift
        && !d.is_empty()
    {
        v.push(Line::from(Span::styled(
            format!(
                "drift: {} missing (+), {} extra (-)",
                d.missing.len(),
                d.extra.len()
            ),
            t.warn(),
        )));
        for a in &d.missing {
            v.push(Line::from(Span::styled(format!(" + {a}"), t.warn())));
        }
        for a in &d.extra {
            v.push(Line::from(Span::styled(format!(" - {a}"), t.warn())));
        }
    }
    v
}

pub(super) fn plan_status(
    s: &State,
    t: Theme,
    now: Now,
    step: Step,
    w: usize,
) -> Vec<Line<'static>> {
    let mut v = vec![];
    match &s.plan {
        Load::Idle => v.push(Line::from(Span::styled(
            "Choose a subscription to see the plan.",
            t.dim(),
        ))),
        Load::Loading { .. } => v.push(loading("looking at what already exists…", t, now)),
        Load::Failed(e) => v.extend(error_lines(e, t, true)),
        Load::Ready(_) => {
            for i in s.plan_items(step) {
                v.extend(plan_line(s, i, t, w));
            }
        }
    }
    v
}
