//! tracing to a log file under the state dir: never to the terminal, which belongs to the UI or
//! to `apply`'s progress lines. Nothing logged carries a secret (see `secret::Secret`). The file
//! is opened through `safe_fs` (no symlink followed, a directory of ours).

use crate::safe_fs;
use std::io;
use std::path::{Path, PathBuf};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sends tracing output to `<state_dir>/spot-connect.log` (level from `SPOT_CONNECT_LOG`,
/// default `info`: a level, or `target=level` directives such as `info,spot_connect::http=debug`;
/// a value that does not parse means `info`). Returns the log path.
pub fn init(state_dir: &Path) -> io::Result<PathBuf> {
    safe_fs::private_dir(state_dir)?;
    let path = state_dir.join("spot-connect.log");
    let file = safe_fs::open_append(&path)?;
    // `Targets`, not `EnvFilter`: the same directives without span filters, and without the
    // regex crates EnvFilter needs (smaller binary, shorter build).
    let filter: Targets = std::env::var("SPOT_CONNECT_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE) // `Targets` below decides
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .finish()
        .with(filter)
        .try_init();
    Ok(path)
}
