//! What the packaged binary prints for packaging: `--version` (with the commit), `completions`
//! and `man`, run as a user would, and without touching the state directory.

use clap::CommandFactory;
use spot_connect::cli::Cli;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

/// Runs the binary with a throwaway HOME and no XDG_STATE_HOME; returns its output and HOME.
fn run(args: &[&str]) -> (Output, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args(args)
        .env("HOME", home.path())
        .env_remove("XDG_STATE_HOME")
        .output()
        .expect("run spot-connect");
    (out, home)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

/// `git rev-parse --short HEAD` of this checkout, as build.rs computes it ("unknown" without git).
fn expected_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let own = git(&["rev-parse", "--show-toplevel"])
        .and_then(|t| Path::new(&t).canonicalize().ok())
        .is_some_and(|t| Path::new(dir).canonicalize().is_ok_and(|d| d == t));
    own.then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown".into())
}

fn assert_state_untouched(home: &Path) {
    assert!(
        !home.join(".local").exists(),
        "a generated-text command created {}",
        home.join(".local").display()
    );
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let (o, home) = run(&["--version"]);
    assert!(o.status.success(), "{o:?}");
    let want = format!(
        "spot-connect {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        expected_commit()
    );
    assert_eq!(stdout(&o), want);
    assert_state_untouched(home.path());
}

/// Every command name and every long option of the clap definition.
fn words() -> Vec<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut w = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        w.push(sub.get_name().to_string());
        for a in sub.get_arguments().filter(|a| !a.is_global_set()) {
            if let Some(l) = a.get_long() {
                w.push(format!("--{l}"));
            }
        }
    }
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            w.push(format!("--{l}"));
        }
    }
    w
}

#[test]
fn completions_cover_every_command_and_option_in_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _spot__connect"),
        ("zsh", "#compdef spot-connect"),
        ("fish", "complete -c spot-connect"),
    ] {
        let (o, home) = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        let text = stdout(&o);
        assert!(text.contains(marker), "{shell} script lacks {marker:?}");
        for w in words() {
            let bare = w.trim_start_matches('-');
            assert!(
                text.contains(bare),
                "{shell} completions do not mention {w}"
            );
        }
        assert_state_untouched(home.path());
    }
}

/// Asks bash's completion function for the candidates of a partial command line.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let prog = format!(
        "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
         _spot__connect spot-connect \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
    );
    let o = Command::new("bash")
        .args(["--norc", "-c", &prog])
        .output()
        .expect("run bash");
    assert!(o.status.success(), "{o:?}");
    stdout(&o).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_their_options_and_values() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("skipped: no bash here");
        return;
    }
    let (o, _home) = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("spot-connect.bash");
    std::fs::write(&script, &o.stdout).expect("write script");

    assert_eq!(
        bash_complete(&script, &["spot-connect", "rot"]),
        ["rotate-secret"]
    );
    // Past a command (clap-rs/clap#6421: broken for hyphenated names without our fix).
    assert_eq!(
        bash_complete(&script, &["spot-connect", "sim", "--l"]),
        ["--listen", "--latency"]
    );
    assert_eq!(
        bash_complete(&script, &["spot-connect", "remove", "--delete"]),
        ["--delete-spot-account"]
    );
    assert_eq!(
        bash_complete(&script, &["spot-connect", "apply", "--auth", "c"]),
        ["client-secret"]
    );
    let shells = bash_complete(&script, &["spot-connect", "completions", "f"]);
    assert_eq!(shells, ["fish"]);
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_it() {
    let (o, home) = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("tcsh"));
    assert!(o.stdout.is_empty());
    assert_state_untouched(home.path());
}

#[test]
fn man_page_documents_every_command_option_and_exit_code() {
    let (o, home) = run(&["man"]);
    assert!(o.status.success(), "{o:?}");
    let page = stdout(&o);
    assert!(page.contains(".TH spot-connect 1"), "no title: {page:.200}");
    // roff escapes '-' as '\-'.
    let plain = page.replace("\\-", "-");
    for w in words() {
        assert!(plain.contains(&w), "man page does not mention {w}");
    }
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    for code in [0, 1, 2, 3, 130] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR")),
            "exit code {code} missing"
        );
    }
    // One roff preamble, not one per generated piece.
    assert_eq!(page.matches(".ds Aq \\(aq").count(), 1);
    assert!(plain.contains(&format!("(commit {})", expected_commit())));
    assert_state_untouched(home.path());
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn fish_completes_past_a_command_and_zsh_parses_its_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    if have("fish") {
        let (o, _home) = run(&["completions", "fish"]);
        let script = dir.path().join("spot-connect.fish");
        std::fs::write(&script, &o.stdout).expect("write script");
        let o = Command::new("fish")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C'spot-connect sim --la'",
                script.display()
            ))
            .output()
            .expect("run fish");
        assert!(o.status.success(), "{o:?}");
        let first = stdout(&o);
        assert!(first.starts_with("--latency\t"), "fish completed: {first}");
    } else {
        eprintln!("skipped fish: not installed");
    }
    if have("zsh") {
        let (o, _home) = run(&["completions", "zsh"]);
        let script = dir.path().join("_spot-connect");
        std::fs::write(&script, &o.stdout).expect("write script");
        let o = Command::new("zsh")
            .arg("-n")
            .arg(&script)
            .output()
            .expect("run zsh");
        assert!(o.status.success(), "zsh -n: {o:?}");
    } else {
        eprintln!("skipped zsh: not installed");
    }
}
