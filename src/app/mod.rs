//! The full-screen wizard: `State`, `Action`, `update`, the keymap, and the event loop.
//!
//! Terminal events and background results arrive as `Action`s over one channel;
//! `update(&mut State, Action, at)` is the only place state changes and returns the `Effect`s
//! (sign-in, lookups, plan, apply) the loop starts; `ui::draw` is a pure function of the state.

pub mod clipboard;
pub mod closing;
pub mod keymap;
mod runtime;
pub mod screen;
pub mod state;
pub mod update;

pub use runtime::{PANIC_EXIT, panic_hook};
pub use state::{Init, Now, Pane, State};
pub use update::{Action, Effect, SignalKind, update};

use crate::cli::Cli;

/// Runs the wizard (against the simulator when `cli.demo`). Returns the exit code.
pub async fn run(cli: &Cli) -> i32 {
    runtime::run(cli).await
}
