//! The commands' progress on stderr (issue 21 §10): a line per event, and one line per wait,
//! not one per attempt. On a terminal the wait's line is rewritten in place as attempts go by
//! (attempt n, next in s); without one (CI logs, files) a wait prints one line when it starts
//! and one when it ends ("waited 23 s, 5 attempts"). The same HTTP wait said again and again
//! (429s with Retry-After) counts as one wait.
//!
//! `Lines::feed` is pure (the text to write for one event at one instant), so it is tested
//! without a terminal; [`say`] writes it to stderr for every command.

use super::progress_line;
use crate::onboard::model::{Progress, StepEvent};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Erases the terminal line the cursor is on.
const CLEAR: &str = "\r\x1b[2K";

#[derive(Debug)]
struct Wait {
    /// What is waited for: "[5c000001]  … Role assignment: waiting for Azure to propagate".
    what: String,
    first: Instant,
    attempts: u32,
}

/// The stderr progress of one command (see the module doc).
#[derive(Debug)]
pub struct Lines {
    tty: bool,
    /// Waits under way, by subscription and step (or by the HTTP notice's text).
    waits: HashMap<String, Wait>,
    /// The wait whose line is drawn (a terminal only), without its newline.
    open: Option<String>,
}

impl Lines {
    pub fn new(tty: bool) -> Lines {
        Lines {
            tty,
            waits: HashMap::new(),
            open: None,
        }
    }

    /// The text to write for `p` (prefixed with `prefix`, the subscription of a run of several)
    /// at `now`.
    pub fn feed(&mut self, prefix: &str, p: &Progress, now: Instant) -> String {
        match p {
            Progress::Step {
                step,
                event:
                    StepEvent::Waiting {
                        reason,
                        attempt,
                        next_in,
                    },
                ..
            } => {
                let key = format!("{prefix}/{step:?}");
                let what = format!("{prefix}  … {}: {}", step.label(), clean(reason));
                let next = next_in.as_secs_f64().ceil() as u64;
                self.wait(key, what, *attempt, format!("next in {next} s"), now)
            }
            Progress::Log { message } if is_http_wait(message) => {
                // "Azure asks to wait 1 s (Azure Resource Manager 429, attempt 3): waiting":
                // the same wait whatever the attempt.
                let key = format!("{prefix}/{}", without_digits(message));
                let what = format!("{prefix}  … {}", clean(message));
                self.wait(key, what, 1, String::new(), now)
            }
            Progress::Step { step, .. } => {
                let mut out = String::new();
                if let Some(w) = self.waits.remove(&format!("{prefix}/{step:?}")) {
                    out.push_str(&self.line(&ended(&w, now)));
                }
                if let Some(l) = progress_line(p) {
                    out.push_str(&self.line(&format!("{prefix}{l}")));
                }
                out
            }
            _ => progress_line(p)
                .map(|l| self.line(&format!("{prefix}{l}")))
                .unwrap_or_default(),
        }
    }

    /// The end lines of the waits still under way (the run is over).
    pub fn finish(&mut self, now: Instant) -> String {
        let mut waits: Vec<Wait> = self.waits.drain().map(|(_, w)| w).collect();
        waits.sort_by_key(|w| w.first);
        let mut out = String::new();
        for w in &waits {
            out.push_str(&self.line(&ended(w, now)));
        }
        if let Some(_open) = self.open.take() {
            out.insert_str(0, CLEAR);
        }
        out
    }

    fn wait(
        &mut self,
        key: String,
        what: String,
        attempt: u32,
        next: String,
        now: Instant,
    ) -> String {
        let w = self.waits.entry(key).or_insert(Wait {
            what,
            first: now,
            attempts: 0,
        });
        w.attempts += 1;
        let attempts = w.attempts.max(attempt);
        let first = w.attempts == 1;
        let what = w.what.clone();
        if self.tty {
            let detail = match next.as_str() {
                "" if attempts > 1 => format!(" ({attempts} times)"),
                "" => String::new(),
                n => format!(" (attempt {attempts}, {n})"),
            };
            let text = format!("{what}{detail}");
            self.open = Some(text.clone());
            format!("{CLEAR}{text}")
        } else if first {
            let detail = if next.is_empty() {
                String::new()
            } else {
                format!(" ({next})")
            };
            format!("{what}{detail}\n")
        } else {
            String::new()
        }
    }

    /// A whole line: on a terminal the wait being drawn is erased first and drawn again below.
    fn line(&mut self, text: &str) -> String {
        if !self.tty {
            return format!("{text}\n");
        }
        match &self.open {
            Some(open) => format!("{CLEAR}{text}\n{open}"),
            None => format!("{text}\n"),
        }
    }
}

fn ended(w: &Wait, now: Instant) -> String {
    let secs = now.saturating_duration_since(w.first).as_secs_f64();
    format!(
        "{}: waited {secs:.0} s ({} attempt{})",
        w.what,
        w.attempts,
        if w.attempts == 1 { "" } else { "s" }
    )
}

fn clean(s: &str) -> String {
    crate::text::clean_lines(s)
}

/// A line of the HTTP layer's wait hook (`http::WaitNotice::message`).
fn is_http_wait(message: &str) -> bool {
    message.contains("asks to wait") || message.contains("trying again in")
}

fn without_digits(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// The one stderr of this process's command.
static STDERR: std::sync::Mutex<Option<Lines>> = std::sync::Mutex::new(None);

/// Writes `p`'s line(s) on stderr (see the module doc).
pub fn say(prefix: &str, p: &Progress) {
    write(|l, now| l.feed(prefix, p, now));
}

/// Ends the waits still drawn (before a summary or the end of the command).
pub fn done() {
    write(|l, now| l.finish(now));
}

fn write(f: impl FnOnce(&mut Lines, Instant) -> String) {
    let Ok(mut g) = STDERR.lock() else {
        return;
    };
    let lines = g.get_or_insert_with(|| Lines::new(std::io::stderr().is_terminal()));
    let text = f(lines, Instant::now());
    if !text.is_empty() {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        let _ = e.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onboard::model::{Outcome, Step};
    use std::time::Duration;

    fn waiting(attempt: u32) -> Progress {
        Progress::Step {
            subscription: Some("s".into()),
            step: Step::RoleAssignment,
            event: StepEvent::Waiting {
                reason: "waiting for Azure to propagate".into(),
                attempt,
                next_in: Duration::from_secs(4),
            },
        }
    }

    fn done_step() -> Progress {
        Progress::Step {
            subscription: Some("s".into()),
            step: Step::RoleAssignment,
            event: StepEvent::Finished {
                outcome: Outcome::Created,
                id: None,
                detail: "ok".into(),
            },
        }
    }

    #[test]
    fn without_a_terminal_a_wait_is_one_line_when_it_starts_and_one_when_it_ends() {
        let t0 = Instant::now();
        let mut l = Lines::new(false);
        let mut out = String::new();
        for n in 1..=9 {
            out.push_str(&l.feed("", &waiting(n), t0 + Duration::from_secs(u64::from(n) * 4)));
        }
        out.push_str(&l.feed("", &done_step(), t0 + Duration::from_secs(40)));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "  … Role assignment: waiting for Azure to propagate (next in 4 s)",
                "  … Role assignment: waiting for Azure to propagate: waited 36 s (9 attempts)",
                "  ✓ Role assignment: created: ok",
            ],
            "{out}"
        );
        assert!(!out.contains("attempt 2"), "{out}");
    }

    #[test]
    fn on_a_terminal_the_wait_line_is_rewritten_in_place() {
        let t0 = Instant::now();
        let mut l = Lines::new(true);
        let a = l.feed("", &waiting(1), t0);
        let b = l.feed("", &waiting(2), t0 + Duration::from_secs(4));
        assert!(a.starts_with(CLEAR) && !a.ends_with('\n'), "{a:?}");
        assert!(
            b.starts_with(CLEAR) && b.contains("attempt 2, next in 4 s"),
            "{b:?}"
        );
        assert!(!b.contains('\n'), "one line, rewritten: {b:?}");
        // Another line meanwhile: the wait is erased, the line printed, the wait drawn again.
        let other = Progress::Log {
            message: "something else".into(),
        };
        let c = l.feed("", &other, t0 + Duration::from_secs(5));
        assert!(
            c.starts_with(CLEAR) && c.contains("something else\n"),
            "{c:?}"
        );
        assert!(c.ends_with("(attempt 2, next in 4 s)"), "{c:?}");
        let d = l.feed("", &done_step(), t0 + Duration::from_secs(8));
        assert!(d.contains("waited 8 s (2 attempts)\n"), "{d:?}");
    }

    #[test]
    fn the_same_http_wait_said_again_is_one_wait() {
        let t0 = Instant::now();
        let mut l = Lines::new(false);
        let mut out = String::new();
        for n in 1..=7 {
            let message = format!(
                "Azure asks to wait 1 s (Azure Resource Manager 429, attempt {n}): waiting"
            );
            out.push_str(&l.feed("", &Progress::Log { message }, t0));
        }
        out.push_str(&l.finish(t0 + Duration::from_secs(7)));
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("waited 7 s (7 attempts)"), "{out}");
    }
}
