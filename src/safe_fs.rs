//! Every file spot-connect writes (the log, locks, state files, reports, the simulator's CA and
//! endpoints file, their temp files) is opened here, on a machine other people share
//! (issue 17 §1):
//!
//! - **directories**: the state dir and each directory under it that we write in must be a
//!   real directory (not a symlink), owned by the user running spot-connect, and not writable by
//!   anyone else unless it is sticky (like `/tmp` for root). Missing ones are made 0700. No
//!   directory above them may be writable by others without the sticky bit (whoever could write
//!   there could swap ours for theirs). Anything else is refused with an error naming the path;
//!   nothing is chmodded or deleted.
//! - **files**: opened with `O_NOFOLLOW` (a symlink at the name is an error, never followed),
//!   new ones with `O_EXCL`, mode 0600; a file reused in place (the log, a lock) must be a
//!   regular file of ours with one link, checked on the open descriptor (`fstat`), so a file
//!   another user planted is refused too. State files, reports and the endpoints file are
//!   written to an `O_EXCL` temp file and renamed into place (a rename replaces a link, it does
//!   not write through it).
//!
//! `libc` is used for `geteuid` and the `O_NOFOLLOW`/`ELOOP` constants (already in the build
//! through tokio).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The effective uid of this process.
#[cfg(unix)]
pub fn our_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn refused(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Checks that `dir` is a directory we may write in (see the module doc). Does not create it.
pub fn check_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(dir)?;
        if m.file_type().is_symlink() {
            return Err(refused(
                dir,
                "is a symbolic link: spot-connect writes only in a real directory of its own (remove the link, or choose another --state-dir)",
            ));
        }
        if !m.is_dir() {
            return Err(refused(dir, "is not a directory"));
        }
        let me = our_uid();
        if m.uid() != me {
            return Err(refused(
                dir,
                format!(
                    "belongs to uid {}, not to you (uid {me}): spot-connect writes only in a directory of your own (choose another --state-dir)",
                    m.uid()
                ),
            ));
        }
        let mode = m.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(refused(
                dir,
                format!(
                    "is writable by {} (mode {:04o}) and not sticky: another user could replace its files (chmod go-w it, or choose another --state-dir)",
                    if mode & 0o002 != 0 {
                        "everyone"
                    } else {
                        "its group"
                    },
                    mode & 0o7777
                ),
            ));
        }
        // The directories above: none writable by others without the sticky bit.
        let abs = std::path::absolute(dir)?;
        for up in abs.ancestors().skip(1) {
            let Ok(m) = fs::metadata(up) else { continue };
            let mode = m.mode();
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                return Err(refused(
                    dir,
                    format!(
                        "lies in {}, which is writable by others (mode {:04o}) and not sticky: another user could replace it (choose another --state-dir)",
                        up.display(),
                        mode & 0o7777
                    ),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    {
        if !fs::metadata(dir)?.is_dir() {
            return Err(refused(dir, "is not a directory"));
        }
    }
    Ok(())
}

/// Creates `dir` (and any missing parent) with mode 0700 when it does not exist, then checks it
/// is ours ([`check_dir`]). An existing directory keeps its mode: it is refused, never chmodded.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)?;
        }
        Err(e) => return Err(e),
    }
    check_dir(dir)
}

/// `path`'s directory, which must already have been made by [`private_dir`].
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o
}

/// A symlink at `path` (`O_NOFOLLOW` fails with ELOOP): the error says so.
fn open_with(o: &OpenOptions, path: &Path) -> io::Result<File> {
    o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return refused(
                path,
                "is a symbolic link: spot-connect does not write through links (remove it)",
            );
        }
        e
    })
}

/// The open file must be a regular file of ours with a single name.
fn check_file(f: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(refused(path, "is not a regular file"));
        }
        if m.uid() != our_uid() {
            return Err(refused(
                path,
                format!(
                    "belongs to uid {}, not to you (uid {}): spot-connect writes only files of its own",
                    m.uid(),
                    our_uid()
                ),
            ));
        }
        if m.nlink() > 1 {
            return Err(refused(
                path,
                "has other names (hard links): spot-connect writes only files of its own",
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (f, path);
    Ok(())
}

/// A new file at `path`, mode 0600 (`O_CREAT|O_EXCL|O_NOFOLLOW`). A stale file of ours at the
/// name (a temp file a killed run left) is removed first; a link is removed, never followed.
pub fn create_new(path: &Path) -> io::Result<File> {
    check_dir(parent_of(path))?;
    let mut o = options();
    o.write(true).create_new(true);
    match open_with(&o, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open_with(&o, path)
        }
        r => r,
    }
}

/// Writes `contents` to `path` with mode 0600, atomically: an `O_EXCL` temp file beside it,
/// then a rename (which replaces whatever is at `path`, a link included, without following it).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = create_new(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Opens (creating it 0600 if missing) `path` to append to: the log.
pub fn open_append(path: &Path) -> io::Result<File> {
    check_dir(parent_of(path))?;
    let mut o = options();
    o.append(true).create(true);
    let f = open_with(&o, path)?;
    check_file(&f, path)?;
    // Ours: 0600 even if an older version or the umask left it wider.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Opens (creating it 0600 if missing) `path` to read and write in place, without truncating
/// it: a lock file. Returns whether it was made now.
pub fn open_in_place(path: &Path) -> io::Result<(File, bool)> {
    check_dir(parent_of(path))?;
    let mut o = options();
    o.read(true).write(true);
    let (f, created) = match open_with(&o, path) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut n = options();
            n.read(true).write(true).create_new(true);
            match open_with(&n, path) {
                Ok(f) => (f, true),
                // Another run made it in between.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (open_with(&o, path)?, false),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    check_file(&f, path)?;
    Ok((f, created))
}

/// Opens `path` to read, refusing a symlink (`O_NOFOLLOW`).
pub fn open_read(path: &Path) -> io::Result<File> {
    let mut o = options();
    o.read(true);
    open_with(&o, path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn private_files_are_0600_and_replaced_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_private(&p, b"{}").unwrap();
        assert_eq!(mode(&p), 0o600);
        write_private(&p, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\":1}");
    }

    #[test]
    fn a_missing_dir_is_made_0700_an_existing_private_one_is_kept_a_shared_one_refused() {
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join("a/b");
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o700);

        let kept = d.path().join("kept");
        fs::create_dir(&kept).unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&kept).unwrap();
        assert_eq!(mode(&kept), 0o755);

        // Ours, world-writable and sticky (root's /tmp): allowed, files inside 0600.
        let sticky = d.path().join("sticky");
        fs::create_dir(&sticky).unwrap();
        fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
        private_dir(&sticky).unwrap();
        write_private(&sticky.join("f.json"), b"{}").unwrap();
        assert_eq!(mode(&sticky.join("f.json")), 0o600);

        // Group-writable, not sticky: refused, mode untouched; and so is a dir below it.
        let open = d.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o770)).unwrap();
        let e = private_dir(&open).unwrap_err().to_string();
        assert!(
            e.contains("its group") && e.contains("0770") && e.contains(&*open.to_string_lossy()),
            "{e}"
        );
        assert_eq!(mode(&open), 0o770);
        let e = private_dir(&open.join("below")).unwrap_err().to_string();
        assert!(e.contains("lies in") && e.contains("not sticky"), "{e}");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            private_dir(&open)
                .unwrap_err()
                .to_string()
                .contains("everyone")
        );
    }

    #[test]
    fn a_directory_that_is_a_link_or_of_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = d.path().join("locks");
        symlink(&real, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(create_new(&link.join("x.lock")).is_err());
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);

        if our_uid() == 0 {
            let theirs = d.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let e = private_dir(&theirs).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
    }

    #[test]
    fn no_opener_writes_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();

        let log = d.path().join("spot-connect.log");
        symlink(&victim, &log).unwrap();
        let e = open_append(&log).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        let lock = d.path().join("t_s.lock");
        symlink(&victim, &lock).unwrap();
        assert!(open_in_place(&lock).is_err());
        assert!(open_read(&lock).is_err());

        // The temp name of an atomic write: the link is removed, not followed.
        let p = d.path().join("state.json");
        symlink(
            &victim,
            p.with_extension(format!("tmp{}", std::process::id())),
        )
        .unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        // The final name of an atomic write: the link is replaced.
        let q = d.path().join("report.json");
        symlink(&victim, &q).unwrap();
        write_private(&q, b"report").unwrap();
        assert!(!fs::symlink_metadata(&q).unwrap().file_type().is_symlink());

        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(mode(&victim), 0o644);

        // A hard link to someone's file is refused too.
        let hard = d.path().join("hard.log");
        fs::hard_link(&victim, &hard).unwrap();
        assert!(
            open_append(&hard)
                .unwrap_err()
                .to_string()
                .contains("hard links")
        );
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn a_lock_file_is_made_once_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t_s.lock");
        let (_, created) = open_in_place(&p).unwrap();
        assert!(created);
        assert_eq!(mode(&p), 0o600);
        let (_, created) = open_in_place(&p).unwrap();
        assert!(!created);
    }
}
