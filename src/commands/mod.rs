//! The non-interactive commands: `apply`, `plan` (and later `status`, `rotate-secret`, `remove`).
//! PLACEHOLDER: replaced by the engine work.

use crate::cli::{Cli, exit};

pub async fn apply(_cli: &Cli) -> i32 {
    eprintln!("spot-connect: apply is not built yet");
    exit::FAILED
}

pub async fn plan(_cli: &Cli) -> i32 {
    eprintln!("spot-connect: plan is not built yet");
    exit::FAILED
}

pub async fn not_yet(name: &str) -> i32 {
    eprintln!("spot-connect: {name} is not built yet");
    exit::FAILED
}
