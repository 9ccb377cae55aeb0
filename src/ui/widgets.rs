//! Text helpers the panes share (ui::panes and ui::life both use them; neither uses the other).

use super::{Theme, spinner};
use crate::app::state::Now;
use crate::onboard::model::ErrorInfo;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub(crate) fn para(frame: &mut Frame, lines: Vec<Line<'static>>, area: Rect) {
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

pub(crate) fn error_lines(e: &ErrorInfo, t: Theme, retry: bool) -> Vec<Line<'static>> {
    let mut v = vec![Line::from(vec![
        Span::styled("✗ ", t.bad()),
        Span::styled(e.summary.clone(), t.bad()),
    ])];
    if let Some(api) = &e.api {
        let status = if api.status == 0 {
            "no response".to_string()
        } else {
            format!("HTTP {}", api.status)
        };
        v.push(Line::from(format!("  {}, {}", api.service, status)));
        v.push(Line::from(vec![
            Span::raw("  code "),
            Span::styled(api.code.clone(), t.bold()),
        ]));
        if !api.message.is_empty() && !e.summary.contains(&api.message) {
            v.push(Line::from(format!("  {}", api.message)));
        }
        v.push(Line::from(vec![
            Span::raw("  request id "),
            Span::styled(
                api.request_id.clone().unwrap_or_else(|| "(none)".into()),
                t.accent(),
            ),
        ]));
    }
    if let Some(h) = e.hint {
        v.push(Line::from(vec![
            Span::styled("  what to do: ", t.bold()),
            Span::raw(crate::app::hint_text(h)),
        ]));
    }
    if retry {
        v.push(Line::from(vec![
            Span::raw("  press "),
            Span::styled("r", t.key()),
            Span::raw(" to retry"),
        ]));
    }
    v
}

pub(crate) fn loading(what: &str, t: Theme, now: Now) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{} ", spinner(now)), t.accent()),
        Span::raw(what.to_string()),
    ])
}

pub(crate) fn fit(text: &str, w: usize) -> String {
    if text.chars().count() <= w {
        return text.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// A path that fits in `w` columns: its middle elided, the file name and its folder kept.
pub(crate) fn elide_path(path: &str, w: usize) -> String {
    let n = path.chars().count();
    if n <= w {
        return path.to_string();
    }
    let tail: Vec<&str> = path.rsplitn(3, '/').collect();
    let keep = match tail.as_slice() {
        [file, dir, _] => format!("{dir}/{file}"),
        _ => path.to_string(),
    };
    let keep_n = keep.chars().count();
    if keep_n + 2 > w {
        // Not even the last two parts fit: keep the end.
        let skip = n.saturating_sub(w.saturating_sub(1));
        return format!("…{}", path.chars().skip(skip).collect::<String>());
    }
    let head_n = w - keep_n - 2;
    let head: String = path.chars().take(head_n).collect();
    format!("{head}…/{keep}")
}

pub(crate) fn short_id(id: &str, wide: bool) -> String {
    let last = id.rsplit('/').next().unwrap_or(id);
    if id.contains('/') && !wide {
        return short_id(last, false);
    }
    if wide || id.chars().count() <= 13 {
        id.to_string()
    } else {
        format!("{}…", id.chars().take(8).collect::<String>())
    }
}

/// Rows `lines` take when word-wrapped at `width` (a word longer than the width, such as a
/// URL, is broken by character), as the paragraph wraps them.
pub(crate) fn wrapped_rows(lines: &[Line<'static>], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    let rows = |text: &str| -> usize {
        let (mut rows, mut col) = (1usize, 0usize);
        for word in text.split(' ') {
            let len = word.chars().count();
            let need = if col == 0 { len } else { col + 1 + len };
            if need <= w {
                col = need;
            } else if len <= w {
                rows += 1;
                col = len;
            } else {
                // Broken by character, starting on a fresh row when this one has text.
                if col > 0 {
                    rows += 1;
                }
                rows += (len - 1) / w;
                col = len - (len - 1) / w * w;
            }
        }
        rows
    };
    lines
        .iter()
        .map(|l| {
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            rows(&text) as u16
        })
        .sum()
}

/// `text` broken at spaces into lines of at most `w` columns (a word longer than `w` is broken
/// by character): a sentence is never cut off, whatever the width.
pub(crate) fn wrap_words(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut out: Vec<String> = vec![];
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        let cur_len = cur.chars().count();
        if cur_len > 0 && cur_len + 1 + word.len() <= w {
            cur.push(' ');
            cur.extend(word);
            continue;
        }
        if cur_len > 0 {
            out.push(std::mem::take(&mut cur));
        }
        while word.len() > w {
            out.push(word.drain(..w).collect());
        }
        cur = word.into_iter().collect();
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// A sentence wrapped to `w` columns: `head` (styled) starts its first line, the rest of the
/// lines are indented by `indent` spaces.
pub(crate) fn sentence(
    head: Span<'static>,
    text: &str,
    indent: usize,
    w: usize,
    style: ratatui::style::Style,
) -> Vec<Line<'static>> {
    let head_w = head.content.chars().count();
    let first_w = w.saturating_sub(head_w).max(1);
    let words = wrap_words(text, first_w);
    let mut out = vec![Line::from(vec![
        head,
        Span::styled(words[0].clone(), style),
    ])];
    let rest: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    if !rest.is_empty() {
        for l in wrap_words(&rest.join(" "), w.saturating_sub(indent)) {
            out.push(Line::from(Span::styled(
                format!("{}{l}", " ".repeat(indent)),
                style,
            )));
        }
    }
    out
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
