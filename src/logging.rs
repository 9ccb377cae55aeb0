//! tracing to a log file under the state dir: never to the terminal, which belongs to the UI or
//! to `apply`'s progress lines. Nothing logged carries a secret (see `secret::Secret`).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Creates `dir` (0700) if needed.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Sends tracing output to `<state_dir>/spot-connect.log` (level from `SPOT_CONNECT_LOG`,
/// default `info`: a level, or `target=level` directives such as `info,spot_connect::http=debug`;
/// a value that does not parse means `info`). Returns the log path.
pub fn init(state_dir: &Path) -> io::Result<PathBuf> {
    ensure_private_dir(state_dir)?;
    let path = state_dir.join("spot-connect.log");
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(&path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_private(&p, b"{}").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_private(&p, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\":1}");
    }
}
