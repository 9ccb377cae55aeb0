//! tracing to a log file under the state dir: never to the terminal, which belongs to the UI or
//! to `apply`'s progress lines. Nothing logged carries a secret (see `secret::Secret`).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Creates `dir` (and any missing parent) with mode 0700 when it does not exist. An existing
/// directory keeps its mode: `--state-dir /tmp` must not change `/tmp`, and a directory the
/// user may write but does not own must not fail on a chmod (see [`dir_warning`]).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// A warning when `dir` may be written by other users and is not sticky (another user could
/// replace the files in it), else None.
pub fn dir_warning(dir: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir).ok()?.permissions().mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Some(format!(
                "the state directory {} is writable by {} (mode {:04o}) and not sticky: another user could replace its files; use a private --state-dir",
                dir.display(),
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                mode & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    None
}

/// Opens `path` for writing as a new file of ours, mode 0600; never follows a symlink or
/// reuses a file someone else left there (a stale one of ours is removed first).
fn create_new_private(path: &Path) -> io::Result<fs::File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            opts.open(path)
        }
        r => r,
    }
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = create_new_private(&tmp)?;
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
    // Ours: 0600 even if an older version or the umask left it wider.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
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

    #[cfg(unix)]
    #[test]
    fn a_missing_dir_is_made_0700_and_an_existing_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join("a/b");
        ensure_private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(dir_warning(&fresh), None);

        // Like /tmp: world-writable and sticky. Left alone, no warning, files inside 0600.
        let shared = d.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o1777);
        assert_eq!(dir_warning(&shared), None);
        write_private(&shared.join("f.json"), b"{}").unwrap();
        assert_eq!(mode(&shared.join("f.json")), 0o600);

        // Group-writable, not sticky: kept, but warned about.
        let open = d.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o770)).unwrap();
        ensure_private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o770);
        let w = dir_warning(&open).expect("a warning");
        assert!(w.contains("its group") && w.contains("0770"), "{w}");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(dir_warning(&open).unwrap().contains("everyone"));
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_at_the_temp_name_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        fs::write(&target, b"keep").unwrap();
        let p = d.path().join("state.json");
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(fs::read(&p).unwrap(), b"new");
    }
}
