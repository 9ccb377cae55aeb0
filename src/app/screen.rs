//! The one place frames reach the terminal, and the decision whether they do.
//!
//! `ui::draw` is a pure function of the state and the time passed in, so the picture is the
//! whole truth about what the operator would see: `Screen::show` renders it into the terminal's
//! back buffer and writes to the terminal only when that picture differs from the last one
//! written. Nothing has to remember to say "changed": an unbound key, a Tick on a static pane,
//! a background result that changes nothing on screen all cost one render in memory (well
//! under a millisecond) and no byte on the terminal; a key that moves the selection, a new
//! spinner frame or a new elapsed-seconds value is one draw of the cells that differ.
//!
//! When to look again without an action is `next_frame`: only while something on screen moves
//! (`State::animating`: a spinner, an elapsed time, a countdown), at the next spinner-frame
//! instant; otherwise never (the loop sleeps until an action arrives).

use super::state::{Now, State};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::buffer::Buffer;
use std::time::Duration;

/// The spinner's frame period: the finest time step anything on screen has.
pub use crate::ui::SPINNER_FRAME as FRAME;

/// A terminal and the last frame written to it.
pub struct Screen<B: Backend> {
    terminal: Terminal<B>,
    /// What the terminal shows (None: unknown, e.g. after it was cleared; the next frame is
    /// written whole).
    shown: Option<Buffer>,
    draws: u64,
}

impl<B: Backend> Screen<B> {
    pub fn new(terminal: Terminal<B>) -> Screen<B> {
        Screen {
            terminal,
            shown: None,
            draws: 0,
        }
    }

    /// Renders the state at `now`; writes it to the terminal only if it differs from what the
    /// terminal shows. Returns whether it wrote.
    pub fn show(&mut self, state: &State, now: Now) -> Result<bool, B::Error> {
        // A resize clears the terminal and its buffers: the frame then differs in size.
        self.terminal.autoresize()?;
        let mut frame = self.terminal.get_frame();
        crate::ui::draw(&mut frame, state, now);
        let rendered = self.terminal.current_buffer_mut();
        if self.shown.as_ref() == Some(rendered) {
            // Unchanged: nothing written; the back buffer is blank again for the next render.
            rendered.reset();
            return Ok(false);
        }
        let copy = rendered.clone();
        self.terminal.apply_buffer()?;
        self.shown = Some(copy);
        self.draws += 1;
        Ok(true)
    }

    /// Frames written to the terminal so far.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// Clears the terminal; the next frame is written whole (after the full screen was left,
    /// e.g. the sign-in address printed raw).
    pub fn clear(&mut self) -> Result<(), B::Error> {
        self.shown = None;
        self.terminal.clear()
    }

    pub fn backend(&self) -> &B {
        self.terminal.backend()
    }

    pub fn backend_mut(&mut self) -> &mut B {
        self.terminal.backend_mut()
    }
}

/// When the picture can change with no action (time since the wizard started): the next
/// spinner-frame instant while something on screen moves; None when nothing does.
pub fn next_frame(state: &State, now: Duration) -> Option<Duration> {
    if !state.animating() {
        return None;
    }
    let f = FRAME.as_nanos();
    let next = (now.as_nanos() / f + 1) * f;
    Some(Duration::from_nanos(next as u64))
}
