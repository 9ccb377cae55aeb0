//! tracing to a log file under the state dir: never to the terminal, which belongs to the UI or
//! to `apply`'s progress lines. Nothing logged carries a secret (see `secret::Secret`). The file
//! is opened through `safe_fs` (no symlink followed, a directory of ours).

use crate::safe_fs;
use std::io;
use std::path::{Path, PathBuf};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter: `--debug` (trace) or `-v/--verbose` (debug) if given, else `SPOT_CONNECT_LOG`,
/// else `RUST_LOG` (tracing-subscriber's directive syntax: a level, or `target=level` directives
/// such as `info,spot_connect::http=debug`), else `info`. A value that is not such directives
/// is refused (Err names the variable and the value): a bare word must be a level or a module
/// path (`spot_connect`, `a::b`), so a typo such as `RUST_LOG=verbose` is not silently a target.
pub fn filter(verbose: bool, debug: bool) -> Result<Targets, String> {
    let level = |l| Targets::new().with_default(l);
    if debug {
        return Ok(level(tracing::Level::TRACE));
    }
    if verbose {
        return Ok(level(tracing::Level::DEBUG));
    }
    for var in ["SPOT_CONNECT_LOG", "RUST_LOG"] {
        let Ok(v) = std::env::var(var) else { continue };
        if v.trim().is_empty() {
            continue;
        }
        return parse_directives(&v).map_err(|bad| {
            format!(
                "{var}={v:?}: {bad:?} is not a log level (trace, debug, info, warn, error, off) \
                 nor target=level"
            )
        });
    }
    Ok(level(tracing::Level::INFO))
}

fn parse_directives(v: &str) -> Result<Targets, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    for d in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match d.split_once('=') {
            Some((target, l)) => !target.trim().is_empty() && is_level(l),
            None => is_level(d) || d.contains("::") || d == env!("CARGO_CRATE_NAME"),
        };
        if !ok {
            return Err(d.to_string());
        }
    }
    v.parse().map_err(|_| v.to_string())
}

/// The log file under a state dir.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("spot-connect.log")
}

/// Sends tracing output to `<state_dir>/spot-connect.log` with `filter` (see [`filter`]).
/// Returns the log path.
pub fn init(state_dir: &Path, filter: Targets) -> io::Result<PathBuf> {
    safe_fs::private_dir(state_dir)?;
    let path = log_path(state_dir);
    let file = safe_fs::open_append(&path)?;
    // `Targets`, not `EnvFilter`: the same directives without span filters, and without the
    // regex crates EnvFilter needs (smaller binary, shorter build).
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE) // `Targets` below decides
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .finish()
        .with(filter)
        .try_init();
    Ok(path)
}
