//! Life after onboarding: the start screen, Status, Rotate and Remove. Drawn over the whole
//! width (no step sidebar), from state only.

use super::widgets::{error_lines, fit, loading, para, short_id};
use super::{Theme, fmt_elapsed, spinner};
use crate::app::state::{Load, MENU, Now, OpLine, OpPhase, State, Status, rotate_changes};
use crate::onboard::remove::RemovalAction;
use crate::onboard::status::Health;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

fn sign_in_line(s: &State, t: Theme, now: Now) -> Line<'static> {
    match (&s.sign_in, &s.discovery) {
        (Load::Failed(e), _) | (_, Load::Failed(e)) => {
            Line::from(Span::styled(format!("✗ {}", e.summary), t.bad()))
        }
        (Load::Ready(id), Load::Ready(d)) => Line::from(Span::styled(
            format!(
                "Signed in as {}: {} subscription(s) in {} tenant(s).",
                id.display,
                d.subscriptions.len(),
                d.tenants.len()
            ),
            t.dim(),
        )),
        (Load::Ready(_), _) => loading("listing tenants and subscriptions…", t, now),
        _ if s.browser.is_some() => Line::from(Span::styled(
            "Azure sign-in waits for you: choose Connect to see the address to open.",
            t.warn(),
        )),
        _ if s.device_code.is_some() => Line::from(Span::styled(
            "Azure sign-in waits for you: choose Connect to see the code.",
            t.warn(),
        )),
        _ => loading("signing in to Azure…", t, now),
    }
}

pub(super) fn start(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![Line::from("")];
    let w = area.width as usize;
    let label_w = 23;
    for (i, (label, what)) in MENU.iter().enumerate() {
        let sel = i == s.menu_sel;
        lines.push(Line::from(vec![
            Span::styled(if sel { "› " } else { "  " }, t.accent()),
            Span::styled(
                format!("{label:<label_w$}"),
                if sel {
                    t.selected().add_modifier(Modifier::BOLD)
                } else {
                    t.bold()
                },
            ),
            Span::styled(
                format!(" {}", fit(what, w.saturating_sub(label_w + 3))),
                t.dim(),
            ),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(sign_in_line(s, t, now));
    if s.demo {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            "Demo: Enter at every prompt connects a simulated subscription.",
            t.dim(),
        )));
    }
    para(frame, lines, area);
}

fn verdict_cell(h: Health, t: Theme) -> (String, Style) {
    match h {
        Health::Connected => ("✓ connected".into(), t.ok()),
        Health::Expiring => ("◔ expiring".into(), t.warn()),
        Health::Broken => ("✗ broken".into(), t.bad()),
        Health::NotOurs => ("= connected (not ours)".into(), t.accent()),
        Health::NotOnboarded => ("· not onboarded".into(), t.accent()),
        Health::Unknown => ("? unknown".into(), t.warn()),
    }
}

pub(super) fn status(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let w = area.width as usize;
    match (&s.health, &s.discovery) {
        (Load::Loading { .. }, _) => lines.push(loading(
            "reading apps, secrets, roles, assignments and Spot accounts…",
            t,
            now,
        )),
        (Load::Failed(e), _) => {
            lines.extend(error_lines(e, t, false));
            lines.push(Line::from(vec![
                Span::raw("  press "),
                Span::styled("r", t.key()),
                Span::raw(" to read again"),
            ]));
        }
        (Load::Idle, _) => lines.push(sign_in_line(s, t, now)),
        (Load::Ready(list), _) => {
            if list.is_empty() {
                lines.push(Line::from(
                    "No enabled subscription is visible to this sign-in.",
                ));
            }
            let wide = w >= 100;
            let name_w = if wide { 30 } else { 22 };
            let id_w = if wide { 37 } else { 10 };
            lines.push(Line::from(Span::styled(
                format!(
                    "  {:<12}{:<name_w$} {:<id_w$}{:<10}{}",
                    "verdict", "subscription", "id", "secret", "Spot account"
                ),
                t.dim(),
            )));
            let max_rows = (area.height as usize).saturating_sub(8).max(3);
            let first = s.health_sel.saturating_sub(max_rows.saturating_sub(1));
            for (i, st) in list.iter().enumerate().skip(first).take(max_rows) {
                let sel = i == s.health_sel;
                let (v, vs) = verdict_cell(st.verdict, t);
                let secret = match st.secret.as_ref().and_then(|x| x.days_left) {
                    Some(d) if d < 0 => "expired".to_string(),
                    Some(d) => format!("{d} days"),
                    None => "-".into(),
                };
                let acct = st
                    .spot_account
                    .as_ref()
                    .map(|a| a.account_id.clone())
                    .unwrap_or_else(|| "-".into());
                let row = if sel { t.selected() } else { Style::default() };
                lines.push(Line::from(vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(format!("{v:<12}"), vs),
                    Span::styled(
                        format!("{:<name_w$} ", fit(&st.subscription_name, name_w)),
                        row,
                    ),
                    Span::styled(
                        format!("{:<id_w$}", short_id(&st.subscription_id, wide)),
                        t.dim(),
                    ),
                    Span::raw(format!("{secret:<10}")),
                    Span::styled(acct, t.accent()),
                ]));
            }
            if let Some(st) = list.get(s.health_sel) {
                lines.push(Line::from(""));
                lines.push(Line::from(Span::styled(
                    fit(
                        &format!("{} ({})", st.subscription_name, st.subscription_id),
                        w,
                    ),
                    t.bold(),
                )));
                if st.problems.is_empty() {
                    let mut what = vec![];
                    if let Some(a) = &st.app {
                        what.push(format!("app {}", a.display_name));
                    }
                    if let Some(r) = &st.role {
                        what.push(format!("role {}", r.name));
                    }
                    if let Some(x) = st.secret.as_ref().and_then(|x| x.end_date_time) {
                        what.push(format!("secret until {}", x.date()));
                    }
                    lines.push(Line::from(Span::styled(
                        format!("  {}", what.join(", ")),
                        t.ok(),
                    )));
                }
                for p in &st.problems {
                    lines.push(Line::from(vec![
                        Span::styled("  ✗ ", t.bad()),
                        Span::raw(p.clone()),
                    ]));
                }
            }
        }
    }
    para(frame, lines, area);
}

fn op_lines(lines: &mut Vec<Line<'static>>, ops: &[OpLine], t: Theme, now: Now) {
    for l in ops {
        let (icon, style) = match &l.status {
            Status::Running { .. } => (spinner(now).to_string(), t.accent()),
            Status::Waiting { .. } => ("◔".into(), t.warn()),
            Status::Done { .. } | Status::Chosen { .. } => ("✓".into(), t.ok()),
            Status::Failed { .. } => ("✗".into(), t.bad()),
            _ => ("·".into(), t.dim()),
        };
        let detail = match &l.status {
            Status::Running { detail, since } => format!(
                "{detail} ({})",
                fmt_elapsed(now.mono.saturating_sub(*since))
            ),
            Status::Done { detail, .. } => detail.clone(),
            Status::Waiting {
                reason,
                attempt,
                next_in,
                at,
                ..
            } => format!(
                "{reason} (attempt {attempt}, next in {} s)",
                crate::app::state::secs(next_in.saturating_sub(now.mono.saturating_sub(*at)))
            ),
            Status::Failed { error, .. } => error.summary.clone(),
            Status::Skipped { reason } => format!("skipped: {reason}"),
            _ => String::new(),
        };
        let sub = l
            .subscription
            .as_deref()
            .map(|x| format!(" [{}]", short_id(x, false)))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(format!("{icon} "), style),
            Span::raw(format!("{:<17}", l.step.label())),
            Span::raw(detail),
            Span::styled(sub, t.dim()),
        ]));
        if let Status::Failed { error, .. } = &l.status
            && let Some(h) = error.hint
        {
            lines.push(Line::from(Span::styled(
                format!("    {}", crate::app::hint_text(h)),
                t.dim(),
            )));
        }
    }
}

pub(super) fn rotate(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let tenants = s.tenants_with_subscriptions();
    let chosen = tenants.get(s.tenant_sel).cloned();
    match &s.rotate {
        OpPhase::Choose | OpPhase::Planning { .. } => {
            lines.push(Line::from(
                "The client secret of spot-connect's app in a tenant: a new secret, given to every Spot account that uses the app, then the old one removed.",
            ));
            lines.push(Line::from(""));
            if tenants.is_empty() {
                lines.push(sign_in_line(s, t, now));
            }
            for (i, (id, name)) in tenants.iter().enumerate() {
                let sel = i == s.tenant_sel;
                lines.push(Line::from(vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(
                        format!("{:<30}", fit(name, 30)),
                        if sel { t.selected() } else { Style::default() },
                    ),
                    Span::styled(format!(" {id}"), t.dim()),
                ]));
            }
            if matches!(s.rotate, OpPhase::Planning { .. }) {
                lines.push(Line::from(""));
                lines.push(loading(
                    "reading which Spot accounts use the app (nothing is changed yet)…",
                    t,
                    now,
                ));
            }
        }
        OpPhase::Confirm => {
            let (id, name) = chosen.unwrap_or_default();
            lines.push(Line::from(vec![
                Span::raw("Rotate the client secret in "),
                Span::styled(format!("{name} ({id})"), t.bold()),
                Span::raw("?"),
            ]));
            lines.push(Line::from(""));
            let (accounts, unheld) = rotate_changes(s);
            match &s.rotate_preview {
                Load::Failed(e) => {
                    lines.push(Line::from(Span::styled(
                        format!("Could not read which Spot accounts use the app: {}", e.summary),
                        t.warn(),
                    )));
                    lines.push(Line::from(
                        "The rotation finds them itself; every one using the app gets the new secret.",
                    ));
                }
                _ if accounts.is_empty() => lines.push(Line::from(Span::styled(
                    "No Spot account of these subscriptions uses spot-connect's app: the rotation will say so and change nothing.",
                    t.warn(),
                ))),
                _ => {
                    lines.push(Line::from(Span::styled(
                        format!(
                            "It changes {} Spot account(s) (and any other using the app):",
                            accounts.len()
                        ),
                        t.bold(),
                    )));
                    let named = area.width >= 100;
                    for (acc, acc_name, sub, key) in &accounts {
                        let mut row = vec![Span::raw(format!("  {acc:<13} "))];
                        if named {
                            row.push(Span::raw(format!("{:<18} ", fit(acc_name, 18))));
                        }
                        row.extend([
                            Span::styled(short_id(sub, false), t.dim()),
                            Span::raw("  holds key "),
                            Span::styled(
                                key.clone().unwrap_or_else(|| "unknown".into()),
                                t.accent(),
                            ),
                        ]);
                        lines.push(Line::from(row));
                    }
                }
            }
            let mut old: Vec<String> = accounts.iter().filter_map(|a| a.3.clone()).collect();
            old.sort();
            old.dedup();
            for k in unheld {
                if !old.contains(&k) {
                    old.push(k);
                }
            }
            if !old.is_empty() {
                lines.push(Line::from("Old secrets removed at the end (key ids):"));
                for k in old {
                    lines.push(Line::from(Span::styled(format!("  {k}"), t.accent())));
                }
            }
            lines.push(Line::from(""));
            lines.push(Line::from(format!(
                " 1. a new secret ({} months) is added to the app",
                s.secret_months()
            )));
            lines.push(Line::from(
                " 2. every Spot account using the app gets it, and it is read back",
            ));
            lines.push(Line::from(" 3. only then are the old secrets removed"));
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::raw("Press "),
                Span::styled("y", t.key()),
                Span::raw(" to rotate, "),
                Span::styled("Esc", t.key()),
                Span::raw(" to choose another tenant."),
            ]));
        }
        OpPhase::Running { since } => {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", spinner(now)), t.accent()),
                Span::raw(format!(
                    "rotating ({})",
                    fmt_elapsed(now.mono.saturating_sub(*since))
                )),
            ]));
            lines.push(Line::from(""));
            op_lines(&mut lines, &s.op_lines, t, now);
        }
        OpPhase::Finished(r) => {
            if r.complete {
                lines.push(Line::from(Span::styled(
                    "✓ rotated: Spot holds the new secret, the old ones are gone",
                    t.ok().add_modifier(Modifier::BOLD),
                )));
            } else {
                lines.push(Line::from(Span::styled(
                    "✗ rotation incomplete: see below, then run it again",
                    t.bad(),
                )));
            }
            lines.push(Line::from(""));
            if let Some(k) = &r.new_key_id {
                lines.push(Line::from(vec![
                    Span::raw("new secret   "),
                    Span::styled(k.clone(), t.accent()),
                ]));
            }
            if let Some(e) = r.new_end_date_time {
                lines.push(Line::from(vec![
                    Span::raw("expires      "),
                    Span::styled(e.date().to_string(), t.bold()),
                ]));
            }
            for a in &r.accounts {
                let (word, style) = if a.updated {
                    ("✓ updated", t.ok())
                } else {
                    ("✗ not updated", t.bad())
                };
                lines.push(Line::from(vec![
                    Span::raw(format!("{:<13}", a.account_id)),
                    Span::styled(format!("{word:<15}"), style),
                    Span::styled(short_id(&a.subscription_id, false), t.dim()),
                ]));
                if let Some(e) = &a.error {
                    lines.push(Line::from(Span::styled(
                        format!("    {}", e.summary),
                        t.bad(),
                    )));
                }
            }
            lines.push(Line::from(format!(
                "old secrets removed: {}",
                r.removed_key_ids.len()
            )));
            for (k, why) in &r.left_key_ids {
                lines.push(Line::from(Span::styled(
                    format!("  left {}: {why}", short_id(k, false)),
                    t.warn(),
                )));
            }
            if let Some(e) = &r.error {
                lines.push(Line::from(""));
                lines.extend(error_lines(e, t, false));
            }
        }
        OpPhase::Failed(e) => {
            lines.extend(error_lines(e, t, false));
            lines.push(Line::from(""));
            op_lines(&mut lines, &s.op_lines, t, now);
        }
    }
    para(frame, lines, area);
}

pub(super) fn remove(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines: Vec<Line<'static>> = vec![];
    let w = area.width as usize;
    match &s.remove {
        OpPhase::Choose => {
            lines.push(Line::from(
                "Choose a subscription. Nothing is deleted before you see the list and press y.",
            ));
            lines.push(Line::from(""));
            let subs = s.selectable_subscriptions();
            if subs.is_empty() {
                lines.push(sign_in_line(s, t, now));
            }
            let max_rows = (area.height as usize).saturating_sub(4).max(3);
            let first = s.remove_sel.saturating_sub(max_rows.saturating_sub(1));
            for (i, sub) in subs.iter().enumerate().skip(first).take(max_rows) {
                let sel = i == s.remove_sel;
                let tenant = s.tenant_name(&sub.tenant_id).unwrap_or_default();
                lines.push(Line::from(vec![
                    Span::styled(if sel { "› " } else { "  " }, t.accent()),
                    Span::styled(
                        format!("{:<28}", fit(&sub.display_name, 28)),
                        if sel { t.selected() } else { Style::default() },
                    ),
                    Span::styled(
                        format!(
                            " {} {}",
                            short_id(&sub.subscription_id, w >= 100),
                            fit(&tenant, 20)
                        ),
                        t.dim(),
                    ),
                ]));
            }
        }
        OpPhase::Planning { .. } => {
            lines.push(loading("looking up what spot-connect created…", t, now))
        }
        OpPhase::Confirm => {
            let changes = s
                .removal_rows
                .iter()
                .filter(|r| r.action != RemovalAction::Keep)
                .count();
            lines.push(Line::from(Span::styled(
                format!(
                    "{changes} object(s) will be deleted (-) or changed (~); kept (=) as they are:"
                ),
                t.bold(),
            )));
            let name_w = w.saturating_sub(3 + 19).min(50);
            for r in &s.removal_rows {
                let (sign, style) = match r.action {
                    RemovalAction::Delete => (" - ", t.bad()),
                    RemovalAction::Update => (" ~ ", t.warn()),
                    RemovalAction::Keep => (" = ", t.dim()),
                };
                lines.push(Line::from(vec![
                    Span::styled(sign, style),
                    Span::raw(format!("{:<19}", fit(&r.object, 18))),
                    Span::styled(fit(&r.name, name_w), t.bold()),
                ]));
                // Wrapped, not cut: the reason is why something is kept or changed.
                lines.push(Line::from(Span::styled(
                    format!("      {}", r.reason),
                    t.dim(),
                )));
                if let Some(h) = r.hint {
                    lines.push(Line::from(Span::styled(
                        format!("      {}", crate::app::hint_text(h)),
                        t.dim(),
                    )));
                }
            }
            lines.push(Line::from(""));
            if changes == 0 {
                lines.push(Line::from(
                    "Nothing of spot-connect's to remove here. Esc goes back.",
                ));
            } else {
                lines.push(Line::from(vec![
                    Span::raw("Press "),
                    Span::styled("y", t.key()),
                    Span::raw(" to remove, "),
                    Span::styled("Esc", t.key()),
                    Span::raw(" to keep everything."),
                ]));
            }
        }
        OpPhase::Running { since } => {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", spinner(now)), t.accent()),
                Span::raw(format!(
                    "removing ({})",
                    fmt_elapsed(now.mono.saturating_sub(*since))
                )),
            ]));
            lines.push(Line::from(""));
            op_lines(&mut lines, &s.op_lines, t, now);
        }
        OpPhase::Finished(results) => {
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            lines.push(Line::from(if failed == 0 {
                Span::styled("✓ removed", t.ok().add_modifier(Modifier::BOLD))
            } else {
                Span::styled(format!("✗ {failed} item(s) could not be removed"), t.bad())
            }));
            lines.push(Line::from(""));
            for r in results {
                let (word, style) = match (&r.error, r.done, r.item.action) {
                    (Some(_), _, _) => ("✗ failed ", t.bad()),
                    (None, _, RemovalAction::Keep) => ("= kept   ", t.dim()),
                    (None, true, RemovalAction::Update) => ("~ changed", t.warn()),
                    (None, true, _) => ("✓ deleted", t.ok()),
                    (None, false, _) => ("· skipped", t.dim()),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{word} "), style),
                    Span::raw(format!("{:<19}", fit(&r.item.object, 18))),
                    Span::raw(fit(&r.item.name, w.saturating_sub(29))),
                ]));
                if let Some(e) = &r.error {
                    lines.push(Line::from(Span::styled(
                        fit(&format!("          {}", e.summary), w),
                        t.bad(),
                    )));
                }
            }
        }
        OpPhase::Failed(e) => {
            lines.extend(error_lines(e, t, false));
            lines.push(Line::from(""));
            op_lines(&mut lines, &s.op_lines, t, now);
        }
    }
    para(frame, lines, area);
}
