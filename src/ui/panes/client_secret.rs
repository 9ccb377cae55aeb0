//! The Client secret pane: the lifetime.

use super::super::Theme;
use super::super::widgets::para;
use super::*;
use crate::app::state::{Now, SECRET_MONTHS, State};
use crate::onboard::model::Step;
use crate::onboard::secrets;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

pub(super) fn client_secret(frame: &mut Frame, s: &State, t: Theme, now: Now, area: Rect) {
    let mut lines = vec![Line::from(Span::styled(
        "Lifetime of the client secret",
        t.bold(),
    ))];
    for (i, m) in SECRET_MONTHS.iter().enumerate() {
        let sel = i == s.months_sel;
        let def = if *m == 12 { " (default)" } else { "" };
        let until = secrets::add_months(now.wall, *m).date();
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
