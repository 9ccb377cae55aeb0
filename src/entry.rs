//! The program, from its command line to its exit: parse the arguments, run the front end they
//! name (the wizard, a command, the simulator), then print the result and exit ([`finish`]:
//! the one place a run's result is printed and its exit code picked, after jj's
//! `command_error.rs`). `src/main.rs` only calls [`main`]: the code lives in the library, where
//! its async functions are compiled in the library's codegen units (docs/performance.md,
//! "Build times").

use crate::cli::exit::Ending;
use crate::cli::{Cli, Command, json_out};
use crate::commands::{CommandError, CommandResult, report};
use crate::error::Error;
use crate::{app, commands, docgen, logging, sim};
use std::io::Write;

/// How a run ended, before [`finish`] prints it: a command's result (printed by `finish`), or
/// how the wizard or the simulator ended (they printed what they had to say themselves).
enum Ended {
    Command(CommandResult),
    Other(Ending),
}

/// Runs the program and exits.
pub fn main() -> ! {
    let started = std::time::Instant::now();
    let mut cli = match Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            // `--json`: a usage error is a JSON error object on stdout too.
            let json = std::env::args_os().any(|a| a == "--json");
            let code = e.exit_code();
            if json && e.use_stderr() {
                let msg = e.kind().to_string();
                let detail = e.to_string();
                let first = detail
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or(&msg);
                let first = first.trim().trim_start_matches("error: ");
                let e = CommandError::usage(first.to_string());
                json_out::print(&report::Document::new(command_of_args()).finish(
                    code,
                    Some(&e),
                    0,
                ));
            }
            e.exit()
        }
    };
    if cli.demo && cli.command.is_some() {
        // `--demo apply` would otherwise run `apply` against real Azure and Spot.
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--demo runs the wizard against the embedded simulator and takes no command; \
                 to try a command against a simulator, start `spot-connect sim` and pass its \
                 endpoints file with --endpoints",
            )
            .exit();
    }
    // `--demo` keeps its simulator, state and reports in a new directory of its own, never in
    // the operator's real state dir (unless --state-dir says where).
    let demo_dir = match (cli.demo, &cli.opts.state_dir) {
        (true, None) => match demo_state_dir() {
            Ok(d) => {
                cli.opts.state_dir = Some(d.clone());
                Some(d)
            }
            Err(e) => {
                let e = Error::local("cannot make a directory for the demo", e);
                finish(&cli, Ended::Command(Err(e.into())), started);
            }
        },
        _ => None,
    };
    // Generated text on stdout: no state directory, log or runtime needed.
    if let Some(c @ (Command::Completions { .. } | Command::Man)) = &cli.command {
        let mut out = std::io::stdout().lock();
        let written = match c {
            Command::Completions { shell } => docgen::write_completions(*shell, &mut out),
            _ => docgen::write_man_page(&mut out),
        };
        let ended = match written.and_then(|()| out.flush()) {
            Ok(()) => Ended::Other(Ending::Done),
            Err(e) => Ended::Command(Err(Error::local("cannot write to stdout", e).into())),
        };
        drop(out);
        finish(&cli, ended, started);
    }
    // No command: the full-screen wizard needs a terminal that can draw it.
    if cli.command.is_none() {
        use std::io::IsTerminal;
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        if dumb || !tty {
            let why = if dumb {
                "TERM=dumb"
            } else {
                "stdin or stdout is not a terminal"
            };
            let e = CommandError::usage(format!(
                "the full-screen wizard needs a terminal ({why}); use the plain \
                 commands instead:\n  spot-connect plan --subscription ID\n  spot-connect apply \
                 --subscription ID [--yes]\n  spot-connect status --subscription ID\n(see \
                 `spot-connect --help`)"
            ));
            finish(&cli, Ended::Command(Err(e)), started);
        }
    }
    let filter = match logging::filter(cli.verbose, cli.debug) {
        Ok(f) => f,
        Err(msg) => {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::InvalidValue, msg)
                .exit();
        }
    };
    let state_dir = cli.opts.state_dir();
    if let Err(e) = logging::init(&state_dir, filter) {
        let e = Error::local(
            format!("cannot open the log under {}", state_dir.display()),
            e,
        );
        finish(&cli, Ended::Command(Err(e.into())), started);
    }
    crate::http::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = Error::Internal(format!("cannot start the runtime: {e}"));
            finish(&cli, Ended::Command(Err(e.into())), started);
        }
    };
    let ended = rt.block_on(async {
        match &cli.command {
            None => match app::run(&cli).await {
                Ok(ending) => Ended::Other(ending),
                Err(e) => Ended::Command(Err(e.into())),
            },
            Some(Command::Apply(_)) => Ended::Command(commands::apply(&cli).await),
            Some(Command::Plan(o)) => Ended::Command(commands::plan(&cli, o).await),
            Some(Command::Status(o)) => Ended::Command(commands::status::status(&cli, o).await),
            Some(Command::RotateSecret(_)) => {
                Ended::Command(commands::rotate::rotate_secret(&cli).await)
            }
            Some(Command::Remove(o)) => Ended::Command(commands::remove::remove(&cli, o).await),
            Some(Command::Reconcile(o)) => {
                Ended::Command(commands::reconcile::reconcile(&cli, o).await)
            }
            Some(Command::Logout(_)) => Ended::Command(commands::logout::logout()),
            Some(Command::Sim(o)) => match sim::run_cli(o.sim.clone(), state_dir.clone()).await {
                Ok(()) => Ended::Other(Ending::Done),
                Err(e) => Ended::Command(Err(e.into())),
            },
            Some(Command::Completions { .. } | Command::Man) => unreachable!("handled above"),
        }
    });
    // Do not wait for background tasks (e.g. a device-code poll) to finish.
    rt.shutdown_background();
    if let Some(d) = demo_dir {
        eprintln!(
            "spot-connect: the demo's simulator, state and reports are in {} (throwaway; your real state dir was not touched)",
            d.display()
        );
    }
    finish(&cli, ended, started);
}

/// A new directory of our own for `--demo`: `<temp>/spot-connect-demo.<random>`, made 0700 by
/// this call (it fails rather than use one that exists, so nobody can plant it first).
fn demo_state_dir() -> std::io::Result<std::path::PathBuf> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    let dir = std::env::temp_dir().join(format!(
        "spot-connect-demo.{}",
        uuid::Uuid::new_v4().simple()
    ));
    b.create(&dir)?;
    Ok(dir)
}

/// The one place a run's result is printed and its exit code picked (`report::exit_code`): a
/// command's error on stderr with its hints worded for the command line; with `--json`, the
/// command's document on stdout (an error document when it failed before it had one).
fn finish(cli: &Cli, ended: Ended, started: std::time::Instant) -> ! {
    // An `az` still running (the run was interrupted while it waited): it and its group go too.
    crate::azure::az::kill_children();
    let code = match ended {
        Ended::Other(ending) => ending.code(),
        Ended::Command(r) => {
            let code = report::ending(&r).code();
            let name = command_name(cli);
            // A wait still drawn ends before the result.
            commands::lines::done();
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            // `logout` takes no onboarding options: its `--json` is its own.
            let json = cli.opts.json || matches!(&cli.command, Some(Command::Logout(o)) if o.json);
            match &r {
                Ok(o) if json => json_out::print(&o.json.finish(code, None, ms)),
                Ok(o) => print!("{}", o.text),
                Err(e) => {
                    eprint!("{}", report::error_text(name, e));
                    if json {
                        let doc = e
                            .json
                            .as_deref()
                            .cloned()
                            .unwrap_or_else(|| report::Document::new(name));
                        json_out::print(&doc.finish(code, Some(e), ms));
                    }
                }
            }
            code
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The command a command line names, for the JSON document of a line clap refused.
fn command_of_args() -> &'static str {
    const NAMES: &[&str] = &[
        "apply",
        "plan",
        "status",
        "rotate-secret",
        "remove",
        "reconcile",
        "logout",
        "sim",
        "completions",
        "man",
    ];
    std::env::args()
        .skip(1)
        .find_map(|a| NAMES.iter().find(|n| **n == a).copied())
        .unwrap_or("")
}

fn command_name(cli: &Cli) -> &'static str {
    match &cli.command {
        None => "",
        Some(Command::Apply(_)) => "apply",
        Some(Command::Plan(_)) => "plan",
        Some(Command::Status(_)) => "status",
        Some(Command::RotateSecret(_)) => "rotate-secret",
        Some(Command::Remove(_)) => "remove",
        Some(Command::Reconcile(_)) => "reconcile",
        Some(Command::Logout(_)) => "logout",
        Some(Command::Sim(_)) => "sim",
        Some(Command::Completions { .. }) => "completions",
        Some(Command::Man) => "man",
    }
}
