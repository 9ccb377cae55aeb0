//! The full-screen wizard: `State`, `Action`, `update`, and the event loop. PLACEHOLDER.

use crate::cli::{Cli, exit};

/// Runs the wizard (against the simulator when `cli.demo`). Returns the exit code.
pub async fn run(_cli: &Cli) -> i32 {
    eprintln!("spot-connect: the full-screen wizard is not built yet");
    exit::FAILED
}
