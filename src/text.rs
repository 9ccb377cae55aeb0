//! Text from outside (service error messages, names of tenants, subscriptions, apps and Spot
//! accounts, a redirect's `error_description`, pasted input, what `az` prints) on its way to a
//! terminal, the log or the wizard (issue 17 §6): control characters are removed, so no escape
//! sequence (ESC, CSI), bell, backspace or carriage return of another party reaches the screen.
//!
//! Removed: C0 controls (U+0000–U+001F) and DEL, C1 controls (U+0080–U+009F, which some
//! terminals read as CSI/OSC), and the bidirectional overrides and isolates (U+202A–U+202E,
//! U+2066–U+2069) that can make text read other than it is. [`clean`] turns a line break or tab
//! into a space (one-line messages); [`clean_lines`] keeps `\n` and `\t`.

use std::borrow::Cow;

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn strip(s: &str, keep_lines: bool) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            '\n' | '\t' | '\r' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if unsafe_char(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` without control characters; a line break or tab becomes one space.
pub fn clean(s: &str) -> String {
    strip(s, false).into_owned()
}

/// `s` without control characters, keeping line breaks and tabs.
pub fn clean_lines(s: &str) -> String {
    strip(s, true).into_owned()
}

/// Whether `s` has nothing [`clean`] would remove or change.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(unsafe_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_bells_and_c1_controls_are_removed() {
        assert_eq!(
            clean("AADSTS50105: \u{1b}[2J\u{1b}]0;owned\u{7}denied\u{9b}31m\r\nnext"),
            "AADSTS50105: [2J]0;owneddenied31m next"
        );
        assert_eq!(clean("a\u{202E}b\u{2066}c"), "abc");
        assert_eq!(clean_lines("one\n\ttwo\u{1b}[1m"), "one\n\ttwo[1m");
        assert_eq!(clean("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(is_clean("ok") && !is_clean("\u{1b}"));
    }
}
