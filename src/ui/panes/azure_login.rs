//! The Azure login pane: the device code, the browser sign-in (also drawn in the sign-in-again
//! popup), who is signed in.

use super::super::Theme;
use super::super::widgets::{error_lines, loading, para, wrapped_rows};
use super::*;
use crate::app::state::{Field, Load, Now, State};
use crate::azure::auth::AuthMethod;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

pub(super) fn method_text(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::DeviceCode => "device code",
        AuthMethod::Browser => "a browser sign-in (authorization code + PKCE)",
        AuthMethod::AzureCli => "the Azure CLI's login (az login)",
        AuthMethod::ManagedIdentity => "this machine's managed identity",
        AuthMethod::WorkloadIdentity => {
            "a workload identity (AZURE_CLIENT_ID, token in AZURE_FEDERATED_TOKEN_FILE)"
        }
        AuthMethod::ClientSecret => "a service principal (AZURE_CLIENT_ID / AZURE_CLIENT_SECRET)",
    }
}

pub(super) fn countdown(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    format!("{}:{:02}", s / 60, s % 60)
}

/// The device code, large, and its countdown.
pub(crate) fn device_code_lines(
    dc: &crate::onboard::model::DeviceCodePrompt,
    t: Theme,
    now: Now,
) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = vec![];
    lines.push(Line::from("On any device with a browser, open"));
    lines.push(Line::from(Span::styled(
        format!("  {}", dc.verification_uri),
        t.accent().add_modifier(Modifier::UNDERLINED),
    )));
    lines.push(Line::from("and enter this code:"));
    // One word: a double-click selects it whole.
    let code = dc.user_code.clone();
    let w = code.chars().count() + 4;
    lines.push(Line::from(Span::styled(
        format!("  ┏{}┓", "━".repeat(w)),
        t.bold(),
    )));
    lines.push(Line::from(vec![
        Span::styled("  ┃  ", t.bold()),
        Span::styled(code, t.bold().add_modifier(Modifier::REVERSED)),
        Span::styled("  ┃", t.bold()),
    ]));
    lines.push(Line::from(Span::styled(
        format!("  ┗{}┛", "━".repeat(w)),
        t.bold(),
    )));
    let left = dc.expires_at - now.wall;
    if left.is_positive() {
        lines.push(Line::from(vec![
            Span::raw("The code expires in "),
            Span::styled(countdown(left), t.warn()),
        ]));
    } else {
        lines.push(Line::from(vec![
            Span::styled("The code has expired: ", t.bad()),
            Span::raw("press "),
            Span::styled("r", t.key()),
            Span::raw(" for a new one"),
        ]));
    }
    lines
}

/// "✓ the sign-in address copied …", after a copy key.
pub(crate) fn copied_line(s: &State, t: Theme) -> Option<Line<'static>> {
    let what = s.copied.as_ref()?;
    Some(Line::from(vec![
        Span::styled("✓ ", t.ok()),
        Span::raw(format!(
            "{what} copied to the clipboard (if your terminal allows OSC 52)"
        )),
    ]))
}

/// Device code blocked: what `b` does.
pub(super) fn blocked_lines(t: Theme) -> Vec<Line<'static>> {
    vec![
        Line::from(Span::styled(
            "Conditional Access blocks the device-code sign-in here.",
            t.bold(),
        )),
        Line::from(vec![
            Span::raw("Press "),
            Span::styled("b", t.key()),
            Span::raw(" to sign in with a browser instead: you open a link on your laptop,"),
        ]),
        Line::from("and the address it ends on comes back here (forwarded port, or pasted)."),
    ]
}

/// The browser sign-in: the address to open, the ssh command, the paste field.
pub(crate) fn browser_prompt(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let Some(b) = &s.browser else {
        return;
    };
    let top = vec![
        Line::from("Open in a browser on your laptop:"),
        Line::from(Span::styled(b.url.clone(), t.accent())),
        Line::from(format!("Forward port {} first, from the laptop:", b.port)),
        Line::from(Span::styled(format!("  {}", b.ssh_command), t.bold())),
        Line::from(format!(
            "or paste where the browser ends ({}/?code=…):",
            b.redirect_uri
        )),
    ];
    let mut bottom = vec![];
    if let Some(n) = &s.sign_in_note {
        bottom.push(Line::from(vec![
            Span::styled("✗ ", t.bad()),
            Span::styled(n.clone(), t.bad()),
        ]));
    }
    let left = b.expires_at - now.wall;
    // The refusal, when there is one, is what matters (the sidebar still spins).
    if bottom.is_empty() {
        bottom.extend(copied_line(s, t));
        bottom.push(loading(
            &format!("waiting for the sign-in… {} left", countdown(left)),
            t,
            now,
        ));
    }
    let top_h = wrapped_rows(&top, area.width);
    let [a, f, c] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Length(3),
        Constraint::Min(1),
    ])
    .areas(area);
    para(frame, top, a);
    field(
        frame,
        &s.paste,
        "address from the browser",
        s.field == Some(Field::Paste),
        t,
        f,
    );
    para(frame, bottom, c);
}

pub(super) fn azure_login(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    match (&s.sign_in, &s.device_code) {
        (Load::Ready(id), _) => {
            lines.push(Line::from(vec![
                Span::styled("✓ ", t.ok()),
                Span::raw("Signed in as "),
                Span::styled(id.display.clone(), t.bold()),
            ]));
            lines.push(Line::from(format!("  with {}", method_text(id.method))));
            if let Some(ht) = &id.home_tenant {
                lines.push(Line::from(format!("  home tenant {ht}")));
            }
            lines.push(Line::from(""));
            match &s.discovery {
                Load::Loading { .. } => {
                    lines.push(loading("listing tenants and subscriptions…", t, now))
                }
                Load::Ready(d) => lines.push(Line::from(format!(
                    "{} subscription(s) in {} tenant(s) found.",
                    d.subscriptions.len(),
                    d.tenants.len()
                ))),
                Load::Failed(e) => lines.extend(error_lines(e, t, true)),
                Load::Idle => {}
            }
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::styled("Enter", t.key()),
                Span::raw(": choose the subscription"),
            ]));
        }
        (Load::Failed(e), _) => {
            // Blocked: the way out first, then the error.
            if s.device_code_blocked() {
                lines.extend(blocked_lines(t));
                lines.push(Line::from(""));
            }
            lines.extend(error_lines(e, t, true));
        }
        (Load::Loading { .. }, _) if s.browser.is_some() => {
            return browser_prompt(frame, s, t, now, area);
        }
        (Load::Loading { .. }, Some(dc)) => {
            lines.extend(device_code_lines(dc, t, now));
            lines.extend(copied_line(s, t));
            lines.push(Line::from(""));
            lines.push(loading("waiting for you to sign in…", t, now));
        }
        (Load::Loading { .. }, None) => {
            lines.push(loading(
                &format!("signing in with {}…", method_text(s.auth_method)),
                t,
                now,
            ));
        }
        (Load::Idle, _) => lines.push(Line::from("Sign-in has not started.")),
    }
    para(frame, lines, area);
}
