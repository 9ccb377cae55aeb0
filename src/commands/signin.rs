//! The commands' side of an interactive sign-in: the prompts on stderr, and stdin lines as the
//! pasted address of a browser sign-in (`--auth browser`).
//!
//! stdin is read by one thread for the whole process, line by line, into a channel: the browser
//! sign-in takes lines only while it waits, so a later y/N question still gets its answer. The
//! thread reads bytes ([`read_lines`]): a line is at most [`MAX_LINE`], must be UTF-8, and one
//! that is not is refused with a sentence while reading goes on (issue 17 §5).

use crate::azure::auth::{Auth, PromptFn, SignInPrompt};
use crate::onboard::model::Progress;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The longest line taken from stdin: a pasted redirect address is a few KiB at most.
pub const MAX_LINE: usize = 64 * 1024;

/// A line of stdin, or why it was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    Refused(String),
}

/// Splits a byte stream into lines (`\n`, a `\r` before it dropped) of at most [`MAX_LINE`]
/// bytes of UTF-8; a longer line is skipped up to its end (never buffered whole), a line that is
/// not UTF-8 is refused with a sentence, and reading goes on after both.
pub fn read_lines(mut input: impl std::io::Read, mut out: impl FnMut(Line) -> bool) {
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut chunk = vec![0u8; 8192];
    let mut finish = |line: &mut Vec<u8>, too_long: &mut bool| -> bool {
        let l = if *too_long {
            Line::Refused(format!(
                "that line was longer than {} KiB and was ignored: paste only the address from the browser's address bar",
                MAX_LINE / 1024
            ))
        } else {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            match String::from_utf8(std::mem::take(line)) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::Refused(
                    "that line is not UTF-8 text and was ignored: copy the address again from the browser's address bar and paste it"
                        .into(),
                ),
            }
        };
        line.clear();
        *too_long = false;
        out(l)
    };
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (part, end) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], Some(i)),
                None => (rest, None),
            };
            if !too_long {
                if line.len() + part.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(part);
                }
            }
            match end {
                Some(i) => {
                    if !finish(&mut line, &mut too_long) {
                        return;
                    }
                    rest = &rest[i + 1..];
                }
                None => rest = &[],
            }
        }
    }
    if !line.is_empty() || too_long {
        finish(&mut line, &mut too_long);
    }
}

/// stdin, a line at a time (`None`: end of input).
fn lines() -> &'static tokio::sync::Mutex<UnboundedReceiver<Line>> {
    static LINES: OnceLock<tokio::sync::Mutex<UnboundedReceiver<Line>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = unbounded_channel();
        std::thread::spawn(move || {
            read_lines(std::io::stdin().lock(), |l| tx.send(l).is_ok());
        });
        tokio::sync::Mutex::new(rx)
    })
}

/// The next line of stdin (None at the end of input). A line that was refused (not UTF-8, too
/// long) is skipped, its reason said on stderr.
pub async fn next_line() -> Option<String> {
    let mut rx = lines().lock().await;
    loop {
        match rx.recv().await? {
            Line::Text(s) => return Some(s),
            Line::Refused(why) => eprintln!("  {why}"),
        }
    }
}

/// The prompt for the commands, and the slot where the session's [`Auth`] goes once built (the
/// pasted addresses are handed to it).
pub fn prompt() -> (PromptFn, Arc<OnceLock<Auth>>) {
    let auth: Arc<OnceLock<Auth>> = Arc::new(OnceLock::new());
    let reader: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::new(Mutex::new(None));
    let slot = auth.clone();
    let prompt: PromptFn = Arc::new(move |p: SignInPrompt| {
        let browser = matches!(p, SignInPrompt::Browser(_));
        let finished = matches!(p, SignInPrompt::Finished { .. });
        if let Some(line) = super::progress_line(&Progress::from(p)) {
            eprintln!("{line}");
        }
        let mut task = reader.lock().unwrap_or_else(|e| e.into_inner());
        if browser && task.is_none() {
            let slot = slot.clone();
            *task = Some(tokio::spawn(async move {
                // Cancel-safe: stopping this task between lines loses none.
                while let Some(line) = next_line().await {
                    if let Some(a) = slot.get() {
                        a.paste_redirect(line.trim());
                    }
                }
            }));
        }
        if finished && let Some(t) = task.take() {
            t.abort();
        }
    });
    (prompt, auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader handing out at most 7 bytes a read: lines split across reads.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all(input: &[u8]) -> Vec<Line> {
        let mut whole = vec![];
        read_lines(input, |l| {
            whole.push(l);
            true
        });
        let mut split = vec![];
        read_lines(Trickle(input), |l| {
            split.push(l);
            true
        });
        assert_eq!(whole, split);
        whole
    }

    #[test]
    fn bad_bytes_and_long_lines_are_refused_and_reading_goes_on() {
        let mut input = b"\xff\xfe not utf-8\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        input.extend(b"\nhttp://localhost:1/?code=c&state=s\r\nlast");
        let got = all(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(matches!(&got[0], Line::Refused(w) if w.contains("not UTF-8")));
        assert!(matches!(&got[1], Line::Refused(w) if w.contains("64 KiB")));
        assert_eq!(
            got[2],
            Line::Text("http://localhost:1/?code=c&state=s".into())
        );
        assert_eq!(got[3], Line::Text("last".into()));
        let exact = vec![b'b'; MAX_LINE];
        assert_eq!(
            all(&[exact.as_slice(), b"\n"].concat()),
            vec![Line::Text("b".repeat(MAX_LINE))]
        );
    }
}
