//! One function per pane.

use super::widgets::{
    elide_path, error_lines, fit, loading, para, sentence, short_id, wrap_words, wrapped_rows,
};
use super::{Theme, fmt_elapsed, spinner, status_word};
use crate::app::state::secs;
use crate::app::state::{Field, Load, Now, Pane, Run, SECRET_MONTHS, State, Status};
use crate::azure::auth::AuthMethod;
use crate::onboard::model::RunReport;
use crate::onboard::model::{PlanAction, PlanItem, Step};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_textarea::TextArea;

/// The panes of the onboarding steps (the start, status, rotate and remove screens are
/// `ui::life`'s).
pub(super) fn wizard_pane(frame: &mut Frame, s: &State, t: Theme, now: Now, inner: Rect) {
    match s.pane {
        Pane::SpotAccount => spot_account(frame, s, t, now, inner),
        Pane::AzureLogin => azure_login(frame, s, t, now, inner),
        Pane::Subscription => subscription(frame, s, t, now, inner),
        Pane::AppRegistration => named(frame, s, t, now, inner, Field::AppName),
        Pane::ClientSecret => client_secret(frame, s, t, now, inner),
        Pane::CustomRole => named(frame, s, t, now, inner, Field::RoleName),
        Pane::Confirm => confirm(frame, s, t, now, inner),
        Pane::Apply => apply(frame, s, t, now, inner),
        Pane::Done => done(frame, s, t, inner),
        Pane::Start | Pane::Status | Pane::Rotate | Pane::Remove => {}
    }
}

/// Dots shown for a non-empty secret field, whatever its length.
pub const MASK_DOTS: usize = 8;

/// The token field as drawn: a fixed number of dots once anything is typed, so the screen never
/// tells the token's length.
fn fixed_mask(ta: &TextArea<'static>) -> TextArea<'static> {
    let mut shown = ta.clone();
    if ta.lines().iter().any(|l| !l.is_empty()) {
        shown.select_all();
        shown.cut();
        shown.insert_str("•".repeat(MASK_DOTS));
    }
    shown
}

/// A one-line text field with a border; highlighted when focused.
fn field(
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
    frame.render_widget(&ta, area);
}

fn spot_account(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
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

fn method_text(m: AuthMethod) -> &'static str {
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

fn countdown(d: time::Duration) -> String {
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
fn blocked_lines(t: Theme) -> Vec<Line<'static>> {
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

fn azure_login(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
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

/// A GUID shortened to its first 8 characters when narrow; an ARM id to its last segment.
/// "Report reports/….json" and "in ~/.local/state/spot-connect": relative to the state dir
/// when under it, the middle elided when still too long.
fn report_lines(s: &State, p: &std::path::Path, t: Theme, w: usize) -> Vec<Line<'static>> {
    let full = p.display().to_string();
    let room = w.saturating_sub(7);
    let under = s.state_dir.as_deref().and_then(|d| {
        let d = d.trim_end_matches('/');
        let abs = d
            .strip_prefix("~/")
            .and_then(|rest| {
                full.find(&format!("/{rest}/"))
                    .map(|i| &full[..i + rest.len() + 1])
            })
            .unwrap_or(d);
        full.strip_prefix(abs)
            .and_then(|r| r.strip_prefix('/'))
            .map(|r| (r.to_string(), d.to_string()))
    });
    match under {
        Some((rel, dir)) => vec![
            Line::from(vec![
                Span::raw("Report "),
                Span::styled(elide_path(&rel, room), t.accent()),
            ]),
            Line::from(Span::styled(
                format!("    in {}", elide_path(&dir, room)),
                t.dim(),
            )),
        ],
        None => vec![Line::from(vec![
            Span::raw("Report "),
            Span::styled(elide_path(&full, room), t.accent()),
        ])],
    }
}

/// `text` cut to `w` columns, with … where it was cut.
fn subscription(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
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

fn action_word(a: PlanAction) -> &'static str {
    match a {
        PlanAction::Create => "create",
        PlanAction::Reuse => "reuse",
        PlanAction::Update => "update",
        PlanAction::Blocked => "BLOCKED",
        PlanAction::Keep => "keep",
    }
}

/// One plan item; its name cut with … to stay on the line (`w` columns).
fn plan_line(i: &PlanItem, t: Theme, w: usize) -> Vec<Line<'static>> {
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
    // Wrapped, never cut: the reason says what to do.
    for l in wrap_words(&i.reason, w.saturating_sub(8)) {
        v.push(Line::from(Span::styled(format!("        {l}"), t.dim())));
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

fn plan_status(s: &State, t: Theme, now: Now, step: Step, w: usize) -> Vec<Line<'static>> {
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
                v.extend(plan_line(i, t, w));
            }
        }
    }
    v
}

fn named(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect, which: Field) {
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

fn add_months(d: time::Date, months: u32) -> time::Date {
    let total = d.year() * 12 + (d.month() as i32 - 1) + months as i32;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u8 + 1);
    let month = time::Month::try_from(m).unwrap_or(time::Month::January);
    let last = time::util::days_in_month(month, y);
    time::Date::from_calendar_date(y, month, d.day().min(last)).unwrap_or(d)
}

fn client_secret(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines = vec![Line::from(Span::styled(
        "Lifetime of the client secret",
        t.bold(),
    ))];
    for (i, m) in SECRET_MONTHS.iter().enumerate() {
        let sel = i == s.months_sel;
        let def = if *m == 12 { " (default)" } else { "" };
        let until = add_months(now.wall.date(), *m);
        lines.push(Line::from(vec![
            Span::styled(if sel { "› " } else { "  " }, t.accent()),
            Span::styled(
                format!("{m:>2} months{def:<10}"),
                if sel {
                    t.selected()
                } else {
                    ratatui::style::Style::default()
                },
            ),
            Span::styled(format!("  until {until}"), t.dim()),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(
        "The secret's value goes straight to Spot: it is never shown, written to disk or logged. Only its expiry date and key id are kept. The tenant's policy may cap the lifetime.",
    ));
    lines.push(Line::from(""));
    lines.extend(plan_status(
        s,
        t,
        now,
        Step::ClientSecret,
        area.width as usize,
    ));
    para(frame, lines, area);
}

/// " + " / " ~ " / " = " / " ✗ " and its style.
fn action_sign(a: PlanAction, t: Theme) -> (&'static str, ratatui::style::Style) {
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
fn confirm(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
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
            lines.extend(plan_line(i, t, w));
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
    let mut last: Option<(&str, Option<&str>)> = None;
    for i in &p.items {
        let here = (i.tenant_id.as_str(), i.subscription_id.as_deref());
        if last != Some(here) {
            let head = match here {
                (tid, None) => format!(
                    "Tenant {} (shared)",
                    s.tenant_name(tid).unwrap_or_else(|| short_id(tid, wide))
                ),
                (_, Some(sub)) => {
                    let name = p
                        .subscriptions
                        .iter()
                        .find(|t| t.subscription_id == sub)
                        .map(|t| t.subscription_name.clone())
                        .unwrap_or_default();
                    format!("Subscription {name} ({})", short_id(sub, wide))
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

fn step_detail(st: &Status, t: Theme, now: Now) -> Vec<Line<'static>> {
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

fn apply(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let mut shown_error = false;
    if let Some(step) = s.apply_focus {
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
fn display_id(id: &str, room: usize) -> String {
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
fn bulk_rows(s: &State, t: Theme, w: usize) -> Vec<Line<'static>> {
    let mut v = vec![];
    for tg in &s.targets {
        let Some((step, st)) = s.bulk_rows.get(&tg.subscription_id) else {
            continue;
        };
        let style = match st {
            Status::Failed { .. } => t.bad(),
            Status::Waiting { .. } => t.warn(),
            Status::Done { .. } => t.ok(),
            Status::Running { .. } => t.accent(),
            _ => t.dim(),
        };
        let name_w = w.saturating_sub(17 + 9).clamp(10, 40);
        v.push(Line::from(vec![
            Span::raw(format!("{:<name_w$} ", fit(&tg.subscription_name, name_w))),
            Span::raw(format!("{:<17}", step.label())),
            Span::styled(status_word(st).to_string(), style),
        ]));
    }
    v
}

/// The Done pane of a bulk run: one row per subscription with its outcome.
fn done_many(frame: &mut Frame, s: &State, t: Theme, area: Rect, b: &RunReport) {
    let mut lines: Vec<Line<'static>> = vec![];
    let failed = b.failed();
    let n = b.reports.len();
    lines.push(Line::from(if failed == 0 && b.stopped.is_none() {
        Span::styled(
            format!("✓ {n} subscriptions are connected to Spot"),
            t.ok().add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled(
            format!(
                "✗ {} of {n} subscriptions connected, {failed} failed",
                n - failed
            ),
            t.bad(),
        )
    }));
    lines.push(Line::from(""));
    let w = area.width as usize;
    let name_w = w.saturating_sub(12 + 10 + 14).clamp(12, 40);
    lines.push(Line::from(Span::styled(
        format!(
            "{:<12}{:<name_w$} {:<10}{}",
            "outcome", "subscription", "id", "Spot account"
        ),
        t.dim(),
    )));
    for r in &b.reports {
        let ok = r.verdict == crate::onboard::model::Verdict::Connected;
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<12}", if ok { "✓ connected" } else { "✗ failed" }),
                if ok { t.ok() } else { t.bad() },
            ),
            Span::raw(format!("{:<name_w$} ", fit(&r.subscription_name, name_w))),
            Span::styled(
                format!("{:<10}", short_id(&r.subscription_id, false)),
                t.dim(),
            ),
            Span::styled(
                r.spot_account_id.clone().unwrap_or_else(|| "-".into()),
                t.accent(),
            ),
        ]));
        if let Some(e) = &r.error {
            lines.push(Line::from(Span::styled(
                format!("            {}", fit(&e.summary, w.saturating_sub(12))),
                t.bad(),
            )));
        }
    }
    if let Some(e) = &b.stopped {
        lines.push(Line::from(""));
        lines.extend(error_lines(e, t, false));
    }
    if s.retryable().is_some() {
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::raw("Press "),
            Span::styled("r", t.key()),
            Span::raw(" to run the failed ones again (what is done is kept)."),
        ]));
    }
    lines.push(Line::from(""));
    if let Some(exp) = b.reports.iter().filter_map(|r| r.secret_expires).min() {
        lines.push(Line::from(vec![
            Span::raw("Client secret expires "),
            Span::styled(exp.date().to_string(), t.bold()),
        ]));
    }
    if let Some(p) = b.reports.iter().find_map(|r| r.report_path.clone()) {
        // One report per subscription, all in the same folder.
        let dir = match (&s.state_dir, p.parent()) {
            (Some(d), _) => format!("{d}/reports"),
            (None, Some(d)) => d.display().to_string(),
            (None, None) => String::new(),
        };
        lines.push(Line::from(vec![
            Span::raw("Reports (one per subscription) in "),
            Span::styled(elide_path(&dir, w.saturating_sub(34)), t.accent()),
        ]));
    }
    lines.push(Line::from(format!(
        "Took {}.",
        fmt_elapsed(std::time::Duration::from_millis(b.total_ms))
    )));
    para(frame, lines, area);
}

fn done(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let Run::Finished(b) = &s.run else {
        para(frame, vec![Line::from("Not finished.")], area);
        return;
    };
    let r = match b.reports.as_slice() {
        [one] if b.stopped.is_none() => one,
        _ => {
            done_many(frame, s, t, area, b);
            return;
        }
    };
    lines.push(Line::from(vec![
        Span::styled("✓ ", t.ok()),
        Span::styled(
            format!("{} is connected to Spot", r.subscription_name),
            t.ok().add_modifier(Modifier::BOLD),
        ),
    ]));
    lines.push(Line::from(vec![
        Span::raw("  subscription "),
        Span::styled(r.subscription_id.clone(), t.accent()),
    ]));
    if let Some(a) = &r.spot_account_id {
        lines.push(Line::from(vec![
            Span::raw("  Spot account "),
            Span::styled(a.clone(), t.accent()),
        ]));
    }
    lines.push(Line::from(""));
    let wide = area.width >= 90;
    let obj_w = 19;
    // In step order, whatever order the run finished them in.
    let mut objects: Vec<_> = r.objects.iter().collect();
    objects.sort_by_key(|o| o.step);
    for o in objects {
        let word = match o.outcome {
            crate::onboard::model::Outcome::Created => "created",
            crate::onboard::model::Outcome::Reused => "reused",
            crate::onboard::model::Outcome::Updated => "updated",
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{word:<8}"), t.ok()),
            Span::raw(format!("{:<obj_w$}", o.object)),
            Span::styled(
                display_id(&o.id, area.width as usize - 8 - obj_w),
                t.accent(),
            ),
        ]));
        if wide {
            lines.push(Line::from(Span::styled(
                format!("{:<8}{:<obj_w$}{}", "", "", o.name),
                t.dim(),
            )));
        }
    }
    lines.push(Line::from(""));
    if let Some(exp) = r.secret_expires {
        lines.push(Line::from(vec![
            Span::raw("Client secret expires "),
            Span::styled(exp.date().to_string(), t.bold()),
        ]));
    }
    if let Some(p) = &r.report_path {
        lines.extend(report_lines(s, p, t, area.width as usize));
    }
    lines.push(Line::from(format!(
        "Took {}.",
        fmt_elapsed(std::time::Duration::from_millis(r.total_ms))
    )));
    para(frame, lines, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(
            fit("spot-connect 2026-11-28", 40),
            "spot-connect 2026-11-28"
        );
        assert_eq!(fit("spot-connect 2026-11-28", 10), "spot-conn…");
        assert_eq!(fit("abc", 0), "");
    }

    #[test]
    fn long_paths_keep_their_end() {
        let p = "/home/someone/with/a/very/long/state/dir/spot-connect/reports/9b1c3e7a.json";
        let e = elide_path(p, 50);
        assert_eq!(e.chars().count(), 50);
        assert!(e.ends_with("…/reports/9b1c3e7a.json"), "{e}");
        assert!(e.starts_with("/home/someone"), "{e}");
        assert_eq!(elide_path("/a/b.json", 50), "/a/b.json");
        let tiny = elide_path(p, 12);
        assert_eq!(tiny.chars().count(), 12);
        assert!(tiny.ends_with("e7a.json"), "{tiny}");
    }
}
