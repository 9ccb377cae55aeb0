//! The summary: what was created or reused, the report's path.

use super::super::widgets::{elide_path, error_lines, fit, para, short_id};
use super::super::{Theme, fmt_elapsed};
use super::apply::display_id;
use crate::app::state::{Run, State};
use crate::onboard::model::RunReport;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

/// "Report reports/….json" and "in ~/.local/state/spot-connect": relative to the state dir
/// when under it, the middle elided when still too long.
pub(super) fn report_lines(
    s: &State,
    p: &std::path::Path,
    t: Theme,
    w: usize,
) -> Vec<Line<'static>> {
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

/// The Done pane of a bulk run: one row per subscription with its outcome.
pub(super) fn done_many(frame: &mut Frame, s: &State, t: Theme, area: Rect, b: &RunReport) {
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

pub(super) fn done(frame: &mut Frame, s: &State, t: Theme, area: Rect) {
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
