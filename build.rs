//! Names the git commit the binary is built from, for `spot-connect --version`
//! (`SPOT_CONNECT_COMMIT`: `git rev-parse --short HEAD`, or "unknown" outside a git checkout or
//! without git). Cargo re-runs this when HEAD moves: HEAD itself (a checkout or a detached commit),
//! the branch's ref (a commit) and packed-refs are watched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A path from `git rev-parse --git-path`, relative to `dir` unless absolute.
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p))
}

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=build.rs");
    // Only this crate's own checkout counts, not a repository it happens to be unpacked inside.
    let own_checkout = git(&dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .is_some_and(|top| dir.canonicalize().is_ok_and(|d| d == top));
    let commit = own_checkout
        .then(|| git(&dir, &["rev-parse", "--short", "HEAD"]))
        .flatten();
    if commit.is_some() {
        let mut watch = vec![git_path(&dir, "HEAD")];
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            // A ref that is only in packed-refs gets a loose file on the next commit: watch its
            // directory then (cargo notices a new file in a watched directory).
            watch.push(git_path(&dir, &branch).filter(|p| p.exists()).or_else(|| {
                git_path(&dir, &branch).and_then(|p| p.parent().map(Path::to_path_buf))
            }));
        }
        watch.push(git_path(&dir, "packed-refs"));
        for p in watch.into_iter().flatten().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    println!(
        "cargo:rustc-env=SPOT_CONNECT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
