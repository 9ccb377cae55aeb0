//! Keybindings as data: one table says which key does what, in which context, and with which
//! label. The key handler, the footer and the `?` help overlay are all generated from it.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for. `update` interprets these for the current pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Quit,
    Continue,
    Back,
    Up,
    Down,
    Retry,
    ToggleLog,
    Help,
    Filter,
    NextField,
    Yes,
    No,
    CloseHelp,
    /// Space: select or unselect the highlighted subscription.
    Toggle,
    /// Read the status again.
    Refresh,
    /// The explicit yes of a rotation or removal.
    Confirm,
    /// Device code blocked: sign in with a browser instead.
    BrowserSignIn,
    /// Copy the device code to the terminal's clipboard (OSC 52).
    CopyCode,
    /// Copy the sign-in address to the terminal's clipboard (OSC 52).
    CopyUrl,
    /// Leave the full screen and print the sign-in address on one line, until a key.
    ShowUrl,
    /// The review is blocked: plan again (after the operator fixed the cause).
    Replan,
    /// The review shows a connection that is not ours: take it over (or keep it again).
    TakeOver,
    /// A page up / down in the list.
    PageUp,
    PageDown,
    /// The list's first / last row.
    Top,
    Bottom,
    /// Select every (visible, selectable) subscription; none; the others.
    SelectAll,
    SelectNone,
    SelectInvert,
    /// Open the search (`f`): typed letters jump to the next row (or log line) matching them.
    Search,
    /// In the search: the next / previous match.
    SearchNext,
    SearchPrev,
    /// Leave the search where it found; leave it going back to where it began.
    SearchDone,
    SearchCancel,
    /// The log pane: scroll a page back / on, to its first / newest line.
    LogPageUp,
    LogPageDown,
    LogTop,
    LogBottom,
    /// The picker: the management-group tree instead of the subscriptions, and back.
    Groups,
    /// Cancel the tenant's sign-in again (nothing polls after it): the box closes, back to the
    /// pane behind it.
    CancelSignIn,
    /// Hide the sign-in-again box (the sign-in goes on waiting).
    CloseSignIn,
    /// Show the sign-in-again box that was closed.
    ShowSignIn,
}

/// Where a binding applies. `app::State::contexts` says which are active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// Everywhere, modal overlays included.
    Always,
    /// No text field has the focus and no overlay is open.
    Nav,
    /// A text field has the focus: printable keys go to the field.
    Text,
    /// A list is shown and can be moved in.
    List,
    /// A list is shown and no text field has the focus (letters and Home/End move in it).
    ListNav,
    /// The subscription list is shown.
    Filterable,
    /// The subscription filter has the focus: Enter and Tab leave it, keeping it.
    Filtering,
    /// The pane has an editable field.
    Fields,
    /// Something failed and can be retried.
    Failed,
    /// A previous pane exists.
    CanGoBack,
    /// The "quit while work runs?" question is open.
    QuitPrompt,
    /// The help overlay is open.
    Help,
    /// The Done pane: Enter leaves.
    Finished,
    /// Enter moves on (not while the onboarding runs).
    CanContinue,
    /// Several subscriptions can be selected.
    MultiSelect,
    /// The status table can be read again.
    Refreshable,
    /// A rotation or removal waits for its explicit yes.
    Confirmable,
    /// Conditional Access blocked the device-code sign-in.
    DeviceCodeBlocked,
    /// A device code is on screen (no field has the focus).
    CodeShown,
    /// A sign-in address is on screen (no field has the focus).
    UrlShown,
    /// The browser sign-in's address is on screen (no field has the focus).
    BrowserUrl,
    /// The browser sign-in's paste field has the focus: printable keys are text, so the
    /// address keys are Ctrl ones.
    PasteField,
    /// The review's plan has a blocked item: nothing can be written, `r` plans again.
    PlanBlocked,
    /// The review lists a connection that is not ours (kept), or one being taken over.
    CanTakeOver,
    /// The sign-in-again box is open: it takes the keys (none reach the pane behind).
    SignInAgain,
    /// The sign-in-again box is open and its paste field does not have the focus.
    SignInAgainNav,
    /// A sign-in again waits, its box closed.
    SignInAgainHidden,
    /// The search is open: it takes the keys (letters are its text).
    Searching,
    /// There is something to search: a list with rows, or the log pane.
    Searchable,
    /// The log pane is open (no field has the focus): the page keys scroll it.
    LogOpen,
    /// The picker, with management groups the sign-in can read.
    HasGroups,
}

/// A key: its code and the modifiers that must be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(code: KeyCode) -> KeySpec {
    KeySpec {
        code,
        mods: KeyModifiers::NONE,
    }
}
const fn c(ch: char) -> KeySpec {
    KeySpec {
        code: KeyCode::Char(ch),
        mods: KeyModifiers::NONE,
    }
}
const fn ctrl(ch: char) -> KeySpec {
    KeySpec {
        code: KeyCode::Char(ch),
        mods: KeyModifiers::CONTROL,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [KeySpec],
    /// How the keys are written in the footer and help ("Enter", "↑/k").
    pub key_label: &'static str,
    pub cmd: Cmd,
    /// What it does, in the footer and help.
    pub label: &'static str,
    pub contexts: &'static [Ctx],
    /// Shown in the footer (the help overlay shows every binding).
    pub footer: bool,
}

/// The keymap. Order matters: the first binding whose key matches in an active context wins.
pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: &[k(KeyCode::Enter)],
        key_label: "Enter",
        cmd: Cmd::SearchDone,
        label: "done",
        contexts: &[Ctx::Searching],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Esc)],
        key_label: "Esc",
        cmd: Cmd::SearchCancel,
        label: "back",
        contexts: &[Ctx::Searching],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Down), ctrl('n'), k(KeyCode::Tab)],
        key_label: "↓",
        cmd: Cmd::SearchNext,
        label: "next",
        contexts: &[Ctx::Searching],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Up), ctrl('p'), k(KeyCode::BackTab)],
        key_label: "↑",
        cmd: Cmd::SearchPrev,
        label: "previous",
        contexts: &[Ctx::Searching],
        footer: true,
    },
    Binding {
        keys: &[c('t')],
        key_label: "t",
        cmd: Cmd::TakeOver,
        label: "take over / keep the connection that is not ours",
        contexts: &[Ctx::CanTakeOver],
        footer: true,
    },
    Binding {
        keys: &[c('y'), k(KeyCode::Enter)],
        key_label: "y",
        cmd: Cmd::Yes,
        label: "quit now",
        contexts: &[Ctx::QuitPrompt],
        footer: true,
    },
    Binding {
        keys: &[c('n'), k(KeyCode::Esc)],
        key_label: "n/Esc",
        cmd: Cmd::No,
        label: "keep going",
        contexts: &[Ctx::QuitPrompt],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Esc), c('?'), c('q')],
        key_label: "Esc",
        cmd: Cmd::CloseHelp,
        label: "close help",
        contexts: &[Ctx::Help],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Esc)],
        key_label: "Esc",
        cmd: Cmd::CancelSignIn,
        label: "cancel",
        contexts: &[Ctx::SignInAgain],
        footer: true,
    },
    Binding {
        keys: &[c('h')],
        key_label: "h",
        cmd: Cmd::CloseSignIn,
        label: "hide",
        contexts: &[Ctx::SignInAgainNav],
        footer: true,
    },
    Binding {
        keys: &[c('s')],
        key_label: "s",
        cmd: Cmd::ShowSignIn,
        label: "sign in again",
        contexts: &[Ctx::SignInAgainHidden],
        // The pane's top border says which tenant waits and names the key.
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::Enter)],
        key_label: "Enter",
        cmd: Cmd::Continue,
        label: "exit",
        contexts: &[Ctx::Finished],
        footer: true,
    },
    Binding {
        keys: &[c('y')],
        key_label: "y",
        cmd: Cmd::Confirm,
        label: "yes, go ahead",
        contexts: &[Ctx::Confirmable],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Enter)],
        key_label: "Enter",
        cmd: Cmd::Continue,
        label: "continue",
        contexts: &[Ctx::CanContinue, Ctx::Text],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Esc)],
        key_label: "Esc",
        cmd: Cmd::Back,
        label: "back",
        contexts: &[Ctx::CanGoBack, Ctx::Text],
        footer: true,
    },
    // The sign-in's address and code, copyable at any width (a mouse copy of the wrapped
    // address picks up borders and line breaks).
    Binding {
        keys: &[c('c')],
        key_label: "c",
        cmd: Cmd::CopyCode,
        label: "copy code",
        contexts: &[Ctx::CodeShown],
        footer: true,
    },
    Binding {
        keys: &[ctrl('u')],
        key_label: "Ctrl-U",
        cmd: Cmd::CopyUrl,
        label: "copy URL",
        contexts: &[Ctx::PasteField],
        footer: true,
    },
    Binding {
        keys: &[c('u'), ctrl('u')],
        key_label: "u",
        cmd: Cmd::CopyUrl,
        label: "copy URL",
        contexts: &[Ctx::UrlShown],
        footer: true,
    },
    Binding {
        keys: &[ctrl('o')],
        key_label: "Ctrl-O",
        cmd: Cmd::ShowUrl,
        label: "raw URL",
        contexts: &[Ctx::PasteField],
        footer: true,
    },
    Binding {
        keys: &[c('o'), ctrl('o')],
        key_label: "o",
        cmd: Cmd::ShowUrl,
        label: "raw URL",
        contexts: &[Ctx::BrowserUrl],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Tab), k(KeyCode::BackTab)],
        key_label: "Tab",
        cmd: Cmd::NextField,
        label: "edit/next field",
        contexts: &[Ctx::Fields],
        footer: true,
    },
    Binding {
        keys: &[k(KeyCode::Tab), k(KeyCode::BackTab)],
        key_label: "Tab",
        cmd: Cmd::NextField,
        label: "leave the filter",
        contexts: &[Ctx::Filtering],
        // The filter's box says "Enter/Tab: done".
        footer: false,
    },
    // The log pane, when open, takes the page keys (↑/↓ still move in the list).
    Binding {
        keys: &[k(KeyCode::PageUp)],
        key_label: "PgUp",
        cmd: Cmd::LogPageUp,
        label: "log: page back",
        contexts: &[Ctx::LogOpen],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::PageDown)],
        key_label: "PgDn",
        cmd: Cmd::LogPageDown,
        label: "log: page on",
        contexts: &[Ctx::LogOpen],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::Home)],
        key_label: "Home",
        cmd: Cmd::LogTop,
        label: "log: first line",
        contexts: &[Ctx::LogOpen],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::End)],
        key_label: "End",
        cmd: Cmd::LogBottom,
        label: "log: newest line",
        contexts: &[Ctx::LogOpen],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::Up)],
        key_label: "↑",
        cmd: Cmd::Up,
        label: "move up",
        contexts: &[Ctx::List],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::Down)],
        key_label: "↓",
        cmd: Cmd::Down,
        label: "move down",
        contexts: &[Ctx::List],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::PageUp)],
        key_label: "PgUp",
        cmd: Cmd::PageUp,
        label: "page up",
        contexts: &[Ctx::List],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::PageDown)],
        key_label: "PgDn",
        cmd: Cmd::PageDown,
        label: "page down",
        contexts: &[Ctx::List],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::Home), c('g')],
        key_label: "Home/g",
        cmd: Cmd::Top,
        label: "first row",
        contexts: &[Ctx::ListNav],
        footer: false,
    },
    Binding {
        keys: &[k(KeyCode::End), c('G')],
        key_label: "End/G",
        cmd: Cmd::Bottom,
        label: "last row",
        contexts: &[Ctx::ListNav],
        footer: false,
    },
    Binding {
        keys: &[c('a')],
        key_label: "a",
        cmd: Cmd::SelectAll,
        label: "select all shown",
        contexts: &[Ctx::MultiSelect],
        footer: false,
    },
    Binding {
        keys: &[c('n')],
        key_label: "n",
        cmd: Cmd::SelectNone,
        label: "select none of those shown",
        contexts: &[Ctx::MultiSelect],
        footer: false,
    },
    Binding {
        keys: &[c('i')],
        key_label: "i",
        cmd: Cmd::SelectInvert,
        label: "invert the selection of those shown",
        contexts: &[Ctx::MultiSelect],
        footer: false,
    },
    Binding {
        keys: &[c('k')],
        key_label: "k",
        cmd: Cmd::Up,
        label: "move up",
        contexts: &[Ctx::Nav],
        footer: false,
    },
    Binding {
        keys: &[c('j')],
        key_label: "j",
        cmd: Cmd::Down,
        label: "move down",
        contexts: &[Ctx::Nav],
        footer: false,
    },
    Binding {
        keys: &[c(' ')],
        key_label: "Space",
        cmd: Cmd::Toggle,
        label: "select",
        contexts: &[Ctx::MultiSelect],
        footer: true,
    },
    Binding {
        keys: &[c('r')],
        key_label: "r",
        cmd: Cmd::Refresh,
        label: "refresh",
        contexts: &[Ctx::Refreshable],
        footer: true,
    },
    Binding {
        keys: &[c('m')],
        key_label: "m",
        cmd: Cmd::Groups,
        label: "groups",
        contexts: &[Ctx::HasGroups],
        footer: true,
    },
    Binding {
        keys: &[c('/')],
        key_label: "/",
        cmd: Cmd::Filter,
        label: "filter",
        contexts: &[Ctx::Filterable],
        footer: true,
    },
    Binding {
        keys: &[c('f')],
        key_label: "f",
        cmd: Cmd::Search,
        label: "find",
        contexts: &[Ctx::Searchable],
        footer: false,
    },
    Binding {
        keys: &[c('b')],
        key_label: "b",
        cmd: Cmd::BrowserSignIn,
        label: "sign in with a browser",
        contexts: &[Ctx::DeviceCodeBlocked],
        footer: true,
    },
    Binding {
        keys: &[c('r')],
        key_label: "r",
        cmd: Cmd::Replan,
        label: "plan again",
        contexts: &[Ctx::PlanBlocked],
        footer: true,
    },
    Binding {
        keys: &[c('r')],
        key_label: "r",
        cmd: Cmd::Retry,
        label: "retry",
        contexts: &[Ctx::Failed],
        footer: true,
    },
    Binding {
        keys: &[c('l')],
        key_label: "l",
        cmd: Cmd::ToggleLog,
        label: "log",
        contexts: &[Ctx::Nav],
        footer: true,
    },
    Binding {
        keys: &[c('?')],
        key_label: "?",
        cmd: Cmd::Help,
        label: "help",
        contexts: &[Ctx::Nav],
        footer: true,
    },
    Binding {
        keys: &[c('q')],
        key_label: "q",
        cmd: Cmd::Quit,
        label: "quit",
        contexts: &[Ctx::Nav, Ctx::SignInAgainNav],
        footer: true,
    },
    Binding {
        keys: &[ctrl('c')],
        key_label: "Ctrl-C",
        cmd: Cmd::Quit,
        label: "quit",
        contexts: &[Ctx::Always],
        footer: false,
    },
];

/// Commands the help overlay shows on one row (their keys side by side, this label), so the
/// overlay fits 80x24.
pub const HELP_GROUPS: &[(&[Cmd], &str)] = &[
    (&[Cmd::Up, Cmd::Down], "move up / down"),
    (&[Cmd::PageUp, Cmd::PageDown], "page up / down"),
    (&[Cmd::Top, Cmd::Bottom], "first / last row"),
    (
        &[
            Cmd::LogPageUp,
            Cmd::LogPageDown,
            Cmd::LogTop,
            Cmd::LogBottom,
        ],
        "log: page back / on, first / newest line",
    ),
    (&[Cmd::SearchNext, Cmd::SearchPrev], "next / previous match"),
    (
        &[Cmd::SelectAll, Cmd::SelectNone, Cmd::SelectInvert],
        "select all / none / invert (those shown)",
    ),
];

fn matches(spec: &KeySpec, key: &KeyEvent) -> bool {
    if spec.code != key.code {
        return false;
    }
    // Shift is implied by the character itself ('?' is Shift-/ on most layouts).
    let mods = key.modifiers - KeyModifiers::SHIFT;
    let want = spec.mods - KeyModifiers::SHIFT;
    mods == want
}

/// The first binding for `key` among the active contexts.
pub fn lookup(key: &KeyEvent, active: &[Ctx]) -> Option<&'static Binding> {
    KEYMAP.iter().find(|b| {
        b.contexts.iter().any(|c| active.contains(c)) && b.keys.iter().any(|s| matches(s, key))
    })
}

/// The bindings that can run now, in keymap order: active, and not shadowed (a binding all of
/// whose keys an earlier active one takes never runs: Esc closes the sign-in box, not "back").
pub fn reachable(active: &[Ctx]) -> Vec<&'static Binding> {
    let mut out = Vec::new();
    let mut taken: Vec<KeySpec> = Vec::new();
    for b in KEYMAP {
        if !b.contexts.iter().any(|c| active.contains(c)) {
            continue;
        }
        if !b.keys.iter().all(|k| taken.contains(k)) {
            out.push(b);
        }
        taken.extend(b.keys.iter().copied());
    }
    out
}

/// The bindings to show, in keymap order, one per command.
pub fn visible(active: &[Ctx], footer_only: bool) -> Vec<&'static Binding> {
    let mut out: Vec<&'static Binding> = Vec::new();
    for b in reachable(active) {
        if footer_only && !b.footer {
            continue;
        }
        if out.iter().any(|o| o.cmd == b.cmd) {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_commands_only_outside_text_fields() {
        assert_eq!(
            lookup(&key(KeyCode::Char('q')), &[Ctx::Nav]).map(|b| b.cmd),
            Some(Cmd::Quit)
        );
        assert!(lookup(&key(KeyCode::Char('q')), &[Ctx::Text]).is_none());
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            lookup(&ctrl_c, &[Ctx::Text, Ctx::Always]).map(|b| b.cmd),
            Some(Cmd::Quit)
        );
    }

    #[test]
    fn question_mark_with_shift_opens_help() {
        let k = KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(lookup(&k, &[Ctx::Nav]).map(|b| b.cmd), Some(Cmd::Help));
    }
}
