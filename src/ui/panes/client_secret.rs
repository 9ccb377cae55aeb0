//! The Client secret pane: the lifetime.

use super::super::Theme;
use super::super::widgets::para;
use super::*;
use crate::app::state::{Now, SECRET_MONTHS, State};
use crate::onboard::model::Step;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

pub(super) fn add_months(d: time::Date, months: u32) -> time::Date {
    let total = d.year() * 12 + (d.month() as i32 - 1) + months as i32;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u8 + 1);
    let month = time::Month::try_from(m).unwrap_or(time::Month::January);
    let last = time::util::days_in_month(month, y);
    time::Date::from_calendar_date(y, month, d.day().min(last)).unwrap_or(d)
}

pub(super) fn client_secret(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
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
