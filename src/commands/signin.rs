//! The commands' side of an interactive sign-in: the prompts on stderr, and stdin lines as the
//! pasted address of a browser sign-in (`--auth browser`).
//!
//! stdin is read by one thread for the whole process, line by line, into a channel: the browser
//! sign-in takes lines only while it waits, so a later y/N question still gets its answer.

use crate::azure::auth::{Auth, PromptFn, SignInPrompt};
use crate::onboard::model::Progress;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// stdin, a line at a time (`None`: end of input).
fn lines() -> &'static tokio::sync::Mutex<UnboundedReceiver<String>> {
    static LINES: OnceLock<tokio::sync::Mutex<UnboundedReceiver<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = unbounded_channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        tokio::sync::Mutex::new(rx)
    })
}

/// The next line of stdin (None at the end of input).
pub async fn next_line() -> Option<String> {
    lines().lock().await.recv().await
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
