//! Drawing: a pure function of `app::State` and the time passed in (no I/O, no clock reads).
//! 16 ANSI colours only, never grey (secondary text is dim, placeholders dim italic: readable
//! on light and dark themes alike); none at all when `NO_COLOR` is set (`State::color`).

mod life;
mod panes;
mod widgets;

pub use panes::MASK_DOTS;

use crate::app::keymap;
use crate::app::state::{Now, Pane, SearchIn, State, Status};
use crate::onboard::model::{Outcome, Step};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use std::time::Duration;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
const SIDEBAR_WIDTH: u16 = 28;
/// "HH:MM:SS " before each log entry.
const STAMP_WIDTH: usize = 9;
/// The spinner's frame period: the finest time step anything on screen has (the wizard looks
/// again at this pace while something moves, `app::screen::next_frame`).
pub const SPINNER_FRAME: Duration = Duration::from_millis(100);
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The colours in use: the 16 ANSI ones, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub(crate) fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    pub(crate) fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    pub(crate) fn accent(&self) -> Style {
        self.fg(Color::Cyan)
    }
    /// Secondary text (legend, times, ids, what cannot be chosen): the terminal's own dim,
    /// never grey (palette colour 8 is unreadable on Solarized Dark and near-invisible on
    /// some light themes); with or without colour alike.
    pub(crate) fn dim(&self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }
    /// A text field's placeholder: dim and italic, so it never reads as typed text.
    pub(crate) fn placeholder(&self) -> Style {
        Style::default().add_modifier(Modifier::DIM | Modifier::ITALIC)
    }
    pub(crate) fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    pub(crate) fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

pub(crate) fn spinner(now: Now) -> &'static str {
    SPINNER[(now.mono.as_millis() / SPINNER_FRAME.as_millis()) as usize % SPINNER.len()]
}

/// "0.4s", "12s", "3m05s".
pub(crate) fn fmt_elapsed(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, state: &State, now: Now) {
    let area = frame.area();
    let theme = Theme { color: state.color };
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = vec![
            Line::from(Span::styled("terminal too small (need 80x24)", theme.bad())),
            Line::from(format!(
                "this one is {}x{}: make the window larger, or press q to quit",
                area.width, area.height
            )),
        ];
        frame.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, state, theme, header);
    let (main, log) = if state.show_log {
        let [m, l] = Layout::vertical([Constraint::Min(10), Constraint::Length(7)]).areas(body);
        (m, Some(l))
    } else {
        (body, None)
    };
    // The summary needs the width for its ids: on a narrow terminal it takes the whole body.
    if state.pane.full_width() || (state.pane == Pane::Done && main.width < 120) {
        draw_pane(frame, state, theme, now, main);
    } else {
        let [side, pane] =
            Layout::horizontal([Constraint::Length(SIDEBAR_WIDTH), Constraint::Min(40)])
                .areas(main);
        draw_sidebar(frame, state, theme, now, side);
        draw_pane(frame, state, theme, now, pane);
    }
    if let Some(l) = log {
        draw_log(frame, state, theme, now, l);
    }
    draw_footer(frame, state, theme, footer);
    if state.reauth_open() {
        draw_reauth(frame, state, theme, now, body);
    } else if state.reauth_waiting() {
        draw_reauth_waiting(frame, state, theme, body);
    } else if let Some(tenant) = &state.sign_in_cancelled {
        draw_border_note(frame, theme, body, tenant, " sign-in cancelled ");
    }
    if state.show_help {
        draw_help(frame, state, theme, area);
    }
    if state.confirm_quit {
        draw_quit(frame, state, theme, area);
    }
}

fn draw_header(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let mut l1 = vec![Span::styled(
        " spot-connect ",
        t.bold().add_modifier(Modifier::REVERSED),
    )];
    if s.demo {
        l1.push(Span::styled(
            " DEMO (simulated clouds) ",
            t.warn().add_modifier(Modifier::BOLD),
        ));
    }
    l1.push(Span::raw("  cloud "));
    l1.push(Span::styled(s.cloud.clone(), t.accent()));
    l1.push(Span::raw("  Spot account "));
    l1.push(match &s.spot_account_id {
        Some(a) => Span::styled(a.clone(), t.accent()),
        None => Span::styled("-", t.dim()),
    });
    let wide = area.width >= 140;
    let id = |x: &str| {
        if wide || x.chars().count() <= 13 {
            x.to_string()
        } else {
            // By characters: an id from a service may hold any (no panic on a byte boundary).
            format!("{}…", x.chars().take(8).collect::<String>())
        }
    };
    let several = s.targets.len().max(if s.target.is_none() {
        s.selected.len()
    } else {
        0
    });
    let (tenant, sub) = match &s.target {
        Some(_) | None if several > 1 => {
            let ts: std::collections::BTreeSet<&str> = if s.targets.len() > 1 {
                s.targets.iter().map(|t| t.tenant_id.as_str()).collect()
            } else {
                s.selectable_subscriptions()
                    .into_iter()
                    .filter(|x| s.selected.contains(&x.subscription_id))
                    .map(|x| x.tenant_id.as_str())
                    .collect()
            };
            let tenant = match (ts.len(), ts.iter().next()) {
                (1, Some(t)) => s.tenant_name(t).unwrap_or_else(|| t.to_string()),
                (0, _) => "-".into(),
                (n, _) => format!("{n} tenants"),
            };
            (tenant, format!("{several} subscriptions"))
        }
        Some(tg) => (
            match s.tenant_name(&tg.tenant_id) {
                Some(n) => format!("{n} ({})", id(&tg.tenant_id)),
                None => tg.tenant_id.clone(),
            },
            format!("{} ({})", tg.subscription_name, id(&tg.subscription_id)),
        ),
        None => (
            s.sign_in
                .ready()
                .and_then(|i| i.home_tenant.clone())
                .unwrap_or_else(|| "-".into()),
            "-".into(),
        ),
    };
    let l2 = Line::from(vec![
        Span::raw(" tenant "),
        Span::styled(tenant, t.accent()),
        Span::raw("  subscription "),
        Span::styled(sub, t.accent()),
    ]);
    frame.render_widget(Paragraph::new(vec![Line::from(l1), l2]), area);
}

/// Icon, style and time column for a sidebar row.
fn status_cell(st: &Status, t: Theme, now: Now) -> (String, Style, String) {
    let since = |s: Duration| fmt_elapsed(now.mono.saturating_sub(s));
    let time = |e: &Option<Duration>| e.map(fmt_elapsed).unwrap_or_default();
    match st {
        Status::Pending => ("·".into(), t.dim(), String::new()),
        Status::Running { since: s, .. } => (spinner(now).into(), t.accent(), since(*s)),
        Status::Waiting { since: s, .. } => ("◔".into(), t.warn(), since(*s)),
        Status::Done {
            outcome, elapsed, ..
        } => match outcome {
            Outcome::Created => ("✓".into(), t.ok(), time(elapsed)),
            Outcome::Reused => ("=".into(), t.ok(), time(elapsed)),
            Outcome::Updated => ("↑".into(), t.ok(), time(elapsed)),
        },
        Status::Chosen { .. } => ("✓".into(), t.ok(), String::new()),
        Status::Failed { elapsed, .. } => ("✗".into(), t.bad(), time(elapsed)),
        Status::Skipped { .. } => ("-".into(), t.dim(), String::new()),
    }
}

pub(crate) fn status_word(st: &Status) -> &'static str {
    match st {
        Status::Pending => "pending",
        Status::Running { .. } => "running",
        Status::Waiting { .. } => "waiting",
        Status::Done {
            outcome: Outcome::Created,
            ..
        } => "created",
        Status::Done {
            outcome: Outcome::Reused,
            ..
        } => "reused",
        Status::Done {
            outcome: Outcome::Updated,
            ..
        } => "updated",
        Status::Chosen { .. } => "done",
        Status::Failed { .. } => "failed",
        Status::Skipped { .. } => "skipped",
    }
}

fn current_step(s: &State) -> Option<Step> {
    match s.pane {
        Pane::Apply => s.apply_focus,
        p => p.step(),
    }
}

fn draw_sidebar(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let cur = current_step(s);
    let inner_w = area.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    for step in Step::ALL {
        let st = s.status(step);
        let (icon, style, time) = status_cell(st, t, now);
        let marker = if Some(step) == cur { "›" } else { " " };
        let label_w = inner_w.saturating_sub(4 + time.len() + 1);
        let mut row_style = Style::default();
        if Some(step) == cur {
            row_style = row_style.add_modifier(Modifier::BOLD);
        }
        lines.push(Line::from(vec![
            Span::styled(marker, t.accent()),
            Span::styled(format!("{icon} "), style),
            Span::styled(format!("{:<label_w$}", step.label()), row_style),
            Span::styled(
                format!(" {time:>w$}", w = inner_w.saturating_sub(3 + label_w + 1)),
                t.dim(),
            ),
        ]));
    }
    if s.pane == Pane::Confirm {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            "› review before writing",
            t.accent().add_modifier(Modifier::BOLD),
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" · pending  ◔ waiting", t.dim())));
    lines.push(Line::from(Span::styled(
        " ✓ done/created  = reused",
        t.dim(),
    )));
    lines.push(Line::from(Span::styled(" ↑ updated  ✗ failed", t.dim())));
    let block = Block::default().borders(Borders::ALL).title(" Steps ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_log(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let h = area.height.saturating_sub(2) as usize;
    let end = s.log.len().saturating_sub(s.log_scroll);
    let find = s
        .search
        .as_ref()
        .filter(|q| q.within == SearchIn::Log && !q.text.is_empty())
        .map(|q| q.text.to_lowercase());
    // Lines wider than the pane wrap (never cut): the stamp starts an entry's first row, its
    // other rows are indented under the text. Filled from the newest entry up with whole
    // entries (an entry is never shown without its stamp); only an entry taller than the pane
    // alone shows its first rows.
    let text_w = (area.width as usize).saturating_sub(2 + STAMP_WIDTH).max(1);
    let mut rows: Vec<Line> = Vec::with_capacity(h);
    for l in s.log.iter().take(end).rev() {
        if rows.len() >= h {
            break;
        }
        // The wall clock of the line: the frame's, less the time since the line came.
        let wall = now.wall - now.mono.saturating_sub(l.at);
        let stamp = format!(
            "{:02}:{:02}:{:02} ",
            wall.hour(),
            wall.minute(),
            wall.second()
        );
        let hit = find
            .as_ref()
            .is_some_and(|f| l.text.to_lowercase().contains(f.as_str()));
        let style = if hit { t.key() } else { Style::default() };
        let parts: Vec<String> = l
            .text
            .split('\n')
            .flat_map(|seg| widgets::wrap_words(seg, text_w))
            .collect();
        let entry: Vec<Line> = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let lead = if i == 0 {
                    Span::styled(stamp.clone(), t.dim())
                } else {
                    Span::raw(" ".repeat(STAMP_WIDTH))
                };
                Line::from(vec![lead, Span::styled(part, style)])
            })
            .collect();
        if rows.is_empty() && entry.len() > h {
            rows.extend(entry.into_iter().take(h).rev());
            break;
        }
        if rows.len() + entry.len() > h {
            break;
        }
        rows.extend(entry.into_iter().rev());
    }
    rows.reverse();
    let lines = rows;
    // The title names the log file (its middle elided when long).
    let room = (area.width as usize).saturating_sub(22);
    let title = match &s.log_path {
        Some(p) => format!(" Log (UTC) {} ", widgets::elide_path(p, room)),
        None => " Log (UTC) ".to_string(),
    };
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .title(Line::from(" l hide ").right_aligned());
    if s.log_scroll > 0 {
        block = block.title_bottom(
            Line::from(format!(
                " {} newer below: End ",
                s.log_scroll.min(s.log.len())
            ))
            .right_aligned(),
        );
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_footer(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let active = s.contexts();
    let mut spans = vec![];
    // The state first: a blocked review cannot go on (Enter is not offered).
    if s.review_blocked() && !s.show_help && !s.confirm_quit {
        spans.push(Span::styled(
            " BLOCKED",
            t.bad().add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(q) = &s.search {
        spans.push(Span::styled(" find: ", t.bold()));
        spans.push(Span::styled(format!("{}▏", q.text), t.accent()));
        if q.missed {
            spans.push(Span::styled(" no match", t.bad()));
        }
        spans.push(Span::raw(" "));
    }
    let used: usize = spans.iter().map(|x| x.content.chars().count()).sum();
    for b in footer_bindings(&active, (area.width as usize).saturating_sub(used)) {
        spans.push(Span::styled(format!(" {}", b.key_label), t.key()));
        spans.push(Span::raw(format!(" {} ", b.label)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The footer's bindings that fit in `w` columns, whole: the pane's own first, in keymap
/// order; when they do not all fit the last ones go (the `?` help lists every key), never
/// `? help` nor `q quit`.
pub(crate) fn footer_bindings(active: &[keymap::Ctx], w: usize) -> Vec<&'static keymap::Binding> {
    let mut v = keymap::visible(active, true);
    let width = |b: &keymap::Binding| b.key_label.chars().count() + b.label.chars().count() + 3;
    let kept = |b: &keymap::Binding| matches!(b.cmd, keymap::Cmd::Help | keymap::Cmd::Quit);
    // The last binding's trailing space may fall off the edge.
    while v.iter().map(|b| width(b)).sum::<usize>() > w + 1 {
        match v.iter().rposition(|b| !kept(b)) {
            Some(i) => {
                v.remove(i);
            }
            None => break,
        }
    }
    v
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_help(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let mut lines = vec![
        Line::from(Span::styled("Keys on this screen", t.bold())),
        Line::from(""),
    ];
    // Every binding of the pane, as if no overlay were open.
    let mut under = s.clone();
    under.show_help = false;
    let active = under.contexts();
    // One row per command, with every key that does it ("↑/k"); a group's commands on one
    // row, their keys side by side ("↑/k ↓/j  move up / down").
    let mut rows: Vec<(Vec<(keymap::Cmd, String)>, &str)> = vec![];
    for b in keymap::reachable(&active) {
        let group = keymap::HELP_GROUPS
            .iter()
            .find(|(cmds, _)| cmds.contains(&b.cmd));
        let row = rows.iter_mut().find(|r| {
            r.0.iter()
                .any(|(c, _)| *c == b.cmd || group.is_some_and(|(cmds, _)| cmds.contains(c)))
        });
        match row {
            Some(r) => match r.0.iter_mut().find(|(c, _)| *c == b.cmd) {
                Some((_, keys)) => {
                    if !keys.split('/').any(|k| k == b.key_label) {
                        *keys = format!("{keys}/{}", b.key_label);
                    }
                }
                None => r.0.push((b.cmd, b.key_label.to_string())),
            },
            None => rows.push((
                vec![(b.cmd, b.key_label.to_string())],
                group.map_or(b.label, |(_, l)| l),
            )),
        }
    }
    for (keys, label) in rows {
        let keys: Vec<String> = keys.into_iter().map(|(_, k)| k).collect();
        let keys = keys.join(" ");
        lines.push(Line::from(vec![
            Span::styled(format!("{keys:>14}  "), t.key()),
            Span::raw(label),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Typing goes to the focused field; Tab leaves it.",
        t.dim(),
    )));
    lines.push(Line::from(Span::styled(
        "Progress is saved: quit any time, run again to resume.",
        t.dim(),
    )));
    let h = lines.len() as u16 + 2;
    let r = centered(area, 60, h);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Help ")),
        r,
    );
}

/// A tenant asked to be signed in to again: which, why, and its sign-in, over every pane.
fn draw_reauth(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let Some((tenant, reason)) = &s.sign_in_again else {
        return;
    };
    let r = centered(
        area,
        area.width.saturating_sub(4).min(100),
        area.height.min(24),
    );
    frame.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.accent())
        .title(" Sign in again ");
    let inner = block.inner(r);
    frame.render_widget(block, r);
    // Named as the operator knows it (display name and domain), its id beside for the portal.
    let label = s.tenant_label(tenant);
    let mut head = vec![Line::from(vec![
        Span::raw("Tenant "),
        Span::styled(label.clone(), t.bold()),
        Span::raw(" asks you to sign in again: "),
        Span::styled(reason.clone(), t.warn()),
    ])];
    if label != *tenant {
        head.push(Line::from(Span::styled(
            format!("tenant id {tenant}"),
            t.dim(),
        )));
    }
    let rows = widgets::wrapped_rows(&head, inner.width);
    let [h, rest] = Layout::vertical([Constraint::Length(rows), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(head).wrap(Wrap { trim: false }), h);
    if s.browser.is_some() {
        panes::browser_prompt(frame, s, t, now, rest);
    } else if let Some(dc) = &s.device_code {
        let mut lines = panes::device_code_lines(dc, t, now);
        lines.extend(panes::copied_line(s, t));
        lines.push(Line::from(""));
        lines.push(widgets::loading("waiting for you to sign in…", t, now));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), rest);
    }
}

/// The sign-in-again box was closed: the body's top border says which tenant still waits and
/// the key that shows its sign-in again.
fn draw_reauth_waiting(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let Some((tenant, _)) = &s.sign_in_again else {
        return;
    };
    draw_border_note(
        frame,
        t,
        area,
        &s.tenant_label(tenant),
        " waits: s sign in ",
    );
}

/// " {name}{tail}" on the right of the body's top border, reversed.
fn draw_border_note(frame: &mut Frame, t: Theme, area: Rect, name: &str, tail: &str) {
    let room = (area.width as usize).saturating_sub(tail.chars().count() + 4);
    let name = widgets::fit(name, room.min(36));
    let text = format!(" {name}{tail}");
    let w = (text.chars().count() as u16).min(area.width);
    let r = Rect {
        x: area.x + area.width.saturating_sub(w + 2),
        y: area.y,
        width: w,
        height: 1,
    };
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            text,
            t.warn().add_modifier(Modifier::REVERSED),
        ))),
        r,
    );
}

fn draw_quit(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
    let what = match s.pane {
        Pane::Rotate => "The rotation is still running.",
        Pane::Remove => "The removal is still running.",
        _ => "Onboarding is still running.",
    };
    let lines = vec![
        Line::from(Span::styled(what, t.bold())),
        Line::from(""),
        Line::from("Quit now? What is done so far is saved;"),
        Line::from("running spot-connect again resumes from there."),
        Line::from(""),
        Line::from(vec![
            Span::styled(" y ", t.key()),
            Span::raw("quit now    "),
            Span::styled(" n/Esc ", t.key()),
            Span::raw("keep going"),
        ]),
    ];
    let r = centered(area, 52, 8);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Quit? ")),
        r,
    );
}

fn title(s: &State) -> String {
    let t = match s.pane {
        Pane::SpotAccount => "Spot account",
        Pane::AzureLogin => "Azure login",
        Pane::Subscription => "Subscription",
        Pane::AppRegistration => "App registration",
        Pane::ClientSecret => "Client secret",
        Pane::CustomRole => "Custom role",
        Pane::Confirm => "Review: what will be written",
        Pane::Apply => s.apply_focus.map(Step::label).unwrap_or("Onboarding"),
        Pane::Done => "Done",
        Pane::Start => "What do you want to do?",
        Pane::Status => "Status",
        Pane::Rotate => "Rotate a client secret",
        Pane::Remove => "Remove what spot-connect created",
    };
    format!(" {t} ")
}

fn draw_pane(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title(s), t.bold()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let inner = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    };
    match s.pane {
        Pane::Start => life::start(frame, s, t, now, inner),
        Pane::Status => life::status(frame, s, t, now, inner),
        Pane::Rotate => life::rotate(frame, s, t, now, inner),
        Pane::Remove => life::remove(frame, s, t, now, inner),
        _ => panes::wizard_pane(frame, s, t, now, inner),
    }
}
