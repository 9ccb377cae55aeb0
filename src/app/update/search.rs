//! Type-to-search (`f`) in the list on screen or the log pane, and the log pane's scrolling.
//!
//! Letters are commands in the lists (a, n, i, g, G, j, k, q…), so typing jumps only inside
//! the search `f` opens: it takes every key while open; ↓/↑ (Tab, Ctrl-N / Ctrl-P) go to the
//! next / previous match, Enter keeps the place found, Esc goes back to where it began. `/`
//! stays the picker's filter (it hides rows; the search only moves the highlight).

use super::super::keymap::Cmd;
use super::*;
use ratatui::crossterm::event::KeyCode;

/// The highlighted row of the list on screen.
fn list_sel(s: &State) -> usize {
    match s.pane {
        Pane::Start => s.menu_sel,
        Pane::Status => s.health_sel,
        Pane::Rotate => s.tenant_sel,
        Pane::Remove => s.remove_sel,
        Pane::SpotAccount => s.account_sel,
        Pane::Subscription if s.group_view => s.group_sel,
        Pane::Subscription => s.sub_sel,
        _ => 0,
    }
}

fn set_list_sel(s: &mut State, i: usize) {
    match s.pane {
        Pane::Start => s.menu_sel = i,
        Pane::Status => s.health_sel = i,
        Pane::Rotate => s.tenant_sel = i,
        Pane::Remove => s.remove_sel = i,
        Pane::SpotAccount => s.account_sel = i,
        Pane::Subscription if s.group_view => s.group_sel = i,
        Pane::Subscription => s.sub_sel = i,
        _ => {}
    }
}

/// `f`: the search opens on the log when it is shown, else on the list.
pub(super) fn open(s: &mut State) -> Vec<Effect> {
    let (within, origin) = if s.show_log && !s.log.is_empty() {
        (SearchIn::Log, s.log_scroll)
    } else if !s.search_labels().is_empty() {
        (SearchIn::List, list_sel(s))
    } else {
        return vec![];
    };
    s.search = Some(Search {
        within,
        text: String::new(),
        origin,
        missed: false,
    });
    vec![]
}

/// The texts searched, oldest log line first.
fn haystack(s: &State, within: SearchIn) -> Vec<String> {
    match within {
        SearchIn::List => s.search_labels(),
        SearchIn::Log => s.log.iter().map(|l| l.text.clone()).collect(),
    }
}

/// The index the search stands on now: the highlighted row, or the log's bottom line shown.
fn current(s: &State, within: SearchIn) -> usize {
    match within {
        SearchIn::List => list_sel(s),
        SearchIn::Log => s.log.len().saturating_sub(1 + s.log_scroll),
    }
}

fn go(s: &mut State, within: SearchIn, i: usize) {
    match within {
        SearchIn::List => set_list_sel(s, i),
        // The match becomes the bottom line shown.
        SearchIn::Log => s.log_scroll = s.log.len().saturating_sub(1 + i),
    }
}

/// The first match from `from` on (`forward`) or back, wrapping around; `from` itself counts.
fn find(hay: &[String], text: &str, from: usize, forward: bool) -> Option<usize> {
    let n = hay.len();
    if n == 0 || text.is_empty() {
        return None;
    }
    let want = text.to_lowercase();
    (0..n)
        .map(|k| {
            if forward {
                (from + k) % n
            } else {
                (from + n - k % n) % n
            }
        })
        .find(|&i| hay[i].to_lowercase().contains(&want))
}

/// Jumps to the match at or after `from`.
fn seek(s: &mut State, from: usize, forward: bool) {
    let Some(q) = s.search.clone() else {
        return;
    };
    let hay = haystack(s, q.within);
    let hit = find(&hay, &q.text, from, forward);
    if let Some(i) = hit {
        go(s, q.within, i);
    }
    if let Some(q) = s.search.as_mut() {
        q.missed = hit.is_none() && !q.text.is_empty();
    }
}

/// A key while the search is open and no binding took it: its text.
pub(super) fn type_key(s: &mut State, key: KeyEvent) {
    let Some(q) = s.search.as_mut() else {
        return;
    };
    match key.code {
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => q.text.push(c),
        KeyCode::Backspace => {
            q.text.pop();
        }
        _ => return,
    }
    // Each letter searches again from where the search began: "co" then "con" stay on the
    // first row matching, not the one after it.
    let (within, origin) = (q.within, q.origin);
    let from = match within {
        SearchIn::List => origin,
        SearchIn::Log => s.log.len().saturating_sub(1 + origin),
    };
    // The log is searched back from the newest line shown (the newest first).
    seek(s, from, within == SearchIn::List);
}

pub(super) fn on_cmd(s: &mut State, cmd: Cmd) -> Vec<Effect> {
    let Some(q) = s.search.clone() else {
        return vec![];
    };
    let n = haystack(s, q.within).len().max(1);
    let cur = current(s, q.within);
    // The log's "next" is the older line (it is searched from the newest back).
    let forward = match (cmd, q.within) {
        (Cmd::SearchNext, SearchIn::List) | (Cmd::SearchPrev, SearchIn::Log) => true,
        (Cmd::SearchPrev, SearchIn::List) | (Cmd::SearchNext, SearchIn::Log) => false,
        (Cmd::SearchDone, _) => {
            s.search = None;
            return vec![];
        }
        _ => {
            // Cancel: back where it began.
            match q.within {
                SearchIn::List => set_list_sel(s, q.origin),
                SearchIn::Log => s.log_scroll = q.origin,
            }
            s.search = None;
            return vec![];
        }
    };
    let from = if forward {
        (cur + 1) % n
    } else {
        (cur + n - 1) % n
    };
    seek(s, from, forward);
    vec![]
}

/// Rows of the log pane shown (its height less the borders).
pub(super) const LOG_ROWS: usize = 5;

pub(super) fn scroll_log(s: &mut State, cmd: Cmd) -> Vec<Effect> {
    let max = s.log.len().saturating_sub(LOG_ROWS);
    s.log_scroll = match cmd {
        Cmd::LogPageUp => (s.log_scroll + LOG_ROWS).min(max),
        Cmd::LogPageDown => s.log_scroll.saturating_sub(LOG_ROWS),
        Cmd::LogTop => max,
        _ => 0,
    };
    vec![]
}
