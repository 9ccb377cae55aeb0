//! Shell completions and the man page, both generated from the clap definition in `cli.rs`, so
//! they cannot drift from the options the binary takes (`spot-connect completions SHELL`,
//! `spot-connect man`; scripts/dist ships them in the tarball and the .deb).

use crate::cli::{Cli, exit};
use clap::CommandFactory;
use roff::{Roff, bold, roman};
use std::io::{self, Write};

const BIN: &str = "spot-connect";

/// Writes the completion script for `shell`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 spells a hyphenated binary's state two ways in bash: the loop over the
        // words sets `spot__connect__subcmd__sim`, the case arms test `spot__subcmd__connect__…`,
        // so nothing after a command would complete (clap-rs/clap#6421, open). Use the loop's
        // spelling in the arms; once clap_complete is fixed this replaces nothing.
        let text =
            String::from_utf8_lossy(&script).replace("spot__subcmd__connect", "spot__connect");
        script = text.into_bytes();
    }
    out.write_all(&script)
}

/// Writes the man page (section 1, roff).
pub fn write_man_page(out: &mut dyn Write) -> io::Result<()> {
    let mut page = Page::default();
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut page.next())?;
    man.render_name_section(&mut page.next())?;
    man.render_synopsis_section(&mut page.next())?;

    let mut roff = Roff::default();
    roff.control("SH", ["DESCRIPTION"]);
    for (i, para) in DESCRIPTION.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*para)]);
    }
    roff.to_writer(&mut page.next())?;

    // The onboarding options (the wizard's; the onboarding commands take them too).
    man.render_options_section(&mut page.next())?;
    write_commands(&cmd, &mut page)?;

    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (exit::DONE, "done"),
        (exit::FAILED, "failed"),
        (
            exit::USAGE,
            "usage error: bad option, argument or input file; nothing was changed",
        ),
        (
            exit::PARTIAL,
            "some of several subscriptions failed; a tenant or listing could not be seen whole (see --skip-unreachable); status: something we manage is broken, expires within --warn-within, or could not be seen (not onboarded and connected (not ours) are not errors); reconcile: something we manage failed, was blocked (a policy), could not be seen, or kept an old secret it could not prove unheld (objects not ours never change the code)",
        ),
        (
            exit::CHANGES,
            "plan --detailed-exitcode: the plan would change something (0: it changes nothing)",
        ),
        (
            exit::INTERRUPTED,
            "interrupted (Ctrl-C, SIGTERM, SIGHUP); a next run resumes",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(meaning)]);
    }
    for (heading, entries) in [("ENVIRONMENT", ENVIRONMENT), ("FILES", FILES)] {
        roff.control("SH", [heading]);
        for (name, meaning) in entries {
            roff.control("TP", []);
            roff.text([bold(*name)]);
            roff.text([roman(*meaning)]);
        }
    }
    roff.control("SH", ["EXAMPLES"]);
    for (command, meaning) in crate::cli::EXAMPLES {
        roff.control("TP", []);
        roff.text([bold(*command)]);
        roff.text([roman(*meaning)]);
    }
    roff.to_writer(&mut page.next())?;
    man.render_version_section(&mut page.next())?;
    page.flush();
    out.write_all(page.text.as_bytes())
}

/// The man page, assembled from pieces that each start with roff's preamble (which defines the
/// apostrophe string); the page keeps only the first one.
#[derive(Default)]
struct Page {
    text: String,
    piece: Vec<u8>,
}

const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

impl Page {
    /// Adds the previous piece to the page and returns the buffer for the next one.
    fn next(&mut self) -> &mut Vec<u8> {
        self.flush();
        &mut self.piece
    }

    fn flush(&mut self) {
        let piece = String::from_utf8_lossy(&self.piece).into_owned();
        self.piece.clear();
        for line in piece.lines() {
            if !self.text.is_empty() && PREAMBLE.contains(&line) {
                continue;
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
}

/// One subsection per command: what it does and the options only it takes.
fn write_commands(cmd: &clap::Command, page: &mut Page) -> io::Result<()> {
    let mut roff = Roff::default();
    roff.control("SH", ["COMMANDS"]);
    roff.text([roman(
        "Without a command, the full-screen wizard starts (with --demo, against the embedded \
         simulator).",
    )]);
    roff.to_writer(&mut page.next())?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // The onboarding options are the page's OPTIONS (the wizard's, before any command):
        // a command lists only its own beside them.
        let top: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
        let own: Vec<clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set())
            .filter(|a| !top.contains(&a.get_id().as_str()))
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .cloned()
            .collect();
        let mut usage = format!("{BIN} {}", sub.get_name());
        for a in own.iter().filter(|a| a.is_positional()) {
            let name = a
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string())
                .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
            usage.push_str(&format!(" <{name}>"));
        }
        if own.iter().any(|a| !a.is_positional()) {
            usage.push_str(" [OPTIONS]");
        }
        let mut roff = Roff::default();
        roff.control("SS", [usage.as_str()]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            roff.text([roman(about.to_string())]);
        }
        roff.to_writer(&mut page.next())?;
        if own.is_empty() {
            continue;
        }
        // clap_mangen's list of this command's own options, without its ".SH OPTIONS" heading.
        let alone = clap::Command::new(BIN).disable_help_flag(true).args(own);
        let mut list = Vec::new();
        clap_mangen::Man::new(alone).render_options_section(&mut list)?;
        let list = String::from_utf8_lossy(&list);
        let body: Vec<&str> = list.lines().filter(|l| *l != ".SH OPTIONS").collect();
        page.next()
            .extend_from_slice((body.join("\n") + "\n").as_bytes());
    }
    Ok(())
}

const DESCRIPTION: &[&str] = &[
    "Connects an Azure subscription to Spot (spot.io) from a terminal, over SSH, in one run: \
     Azure sign-in, app registration and service principal, client secret, custom role from \
     Spot's policy, role assignment, and registration of the credentials with the Spot API.",
    "Every write is preceded by lookups and a preflight of your rights; re-runs are idempotent \
     and a killed run resumes from its state file. The client secret goes straight to Spot and \
     is never shown, logged or stored. Tokens and secrets are never taken from the command \
     line.",
    "spot-connect --demo runs the whole wizard against the embedded simulator of the four \
     services: no account needed.",
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SPOTINST_TOKEN",
        "The Spot API token (else --spot-token-file, else the endpoints file).",
    ),
    (
        "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET",
        "The service principal for --auth client-secret; AZURE_CLIENT_ID also picks a \
         user-assigned managed identity.",
    ),
    ("XDG_STATE_HOME", "Parent of the default state directory."),
    (
        "SPOT_CONNECT_LOG",
        "Log level of the log file (default info).",
    ),
    (
        "SPOT_CONNECT_AZ_TIMEOUT",
        "Seconds one az call of --auth azure-cli may take (default 30); az then gets only the \
         environment it needs (PATH, HOME, locale, AZURE_CONFIG_DIR, AZURE_CORE_*, CA bundles, \
         proxies).",
    ),
    (
        "NO_COLOR",
        "When set and not empty, the wizard uses no colours.",
    ),
];

const FILES: &[(&str, &str)] = &[(
    "$XDG_STATE_HOME/spot-connect (default ~/.local/state/spot-connect)",
    "The state directory (--state-dir): state/ holds one resume file per tenant and \
         subscription (mode 0600, ids only), reports/ one JSON report per run and \
         subscription, spot-connect.log the log. No secret is written to any of them. It and \
         its subdirectories must be yours, not links, and not writable by others unless \
         sticky; no file in them is written through a link.",
)];
