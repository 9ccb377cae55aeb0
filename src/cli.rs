//! Command line: `spot-connect [--demo] [COMMAND] [OPTIONS]` (PRODUCT.md §2).
//!
//! Tokens and secrets are never taken from argv (it is visible in `ps`): the Spot token comes from
//! `SPOTINST_TOKEN`, `--spot-token-file` or the endpoints file; Azure client secrets from
//! `AZURE_CLIENT_SECRET`.

use crate::endpoints::Cloud;
/// The simulator owns its options; the CLI flattens them into `spot-connect sim`.
pub use crate::sim::SimOpts;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes (PRODUCT.md §2).
pub mod exit {
    pub const DONE: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PARTIAL: i32 = 3;
    /// `plan --detailed-exitcode`: the plan would change something.
    pub const CHANGES: i32 = 4;
    pub const INTERRUPTED: i32 = 130;

    /// How a run ended, whatever front end ran it (a command's result through
    /// `commands::report::ending`, the wizard's own end, the simulator's): [`Ending::code`] is
    /// the one place an exit code is picked, and `main` the one caller that exits with it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Ending {
        /// Everything done, or nothing asked of the run (0).
        Done,
        /// Partly done, or something we manage needs attention (3).
        Partial,
        /// `plan --detailed-exitcode`: the plan has changes (4).
        Changes,
        /// A usage error: nothing was changed (2).
        Usage,
        /// It failed (1).
        Failed,
        /// The operator or a signal stopped it before its end (130).
        Interrupted,
    }

    impl Ending {
        pub fn code(self) -> i32 {
            match self {
                Ending::Done => DONE,
                Ending::Partial => PARTIAL,
                Ending::Changes => CHANGES,
                Ending::Usage => USAGE,
                Ending::Failed => FAILED,
                Ending::Interrupted => INTERRUPTED,
            }
        }
    }
}

/// `spot-connect --version`: the crate version and the git commit it was built from (build.rs;
/// "unknown" when built outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SPOT_CONNECT_COMMIT"),
    ")"
);

/// `--json`: the one JSON document on stdout (`main` prints every command's; `reconcile` still
/// prints its own).
pub mod json_out {
    /// Prints a JSON document on stdout.
    pub fn print(v: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// Examples shown in `--help` and in the man page's EXAMPLES section: (command, what it does).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "spot-connect",
        "the full-screen wizard: sign in, pick subscriptions, review, apply",
    ),
    (
        "spot-connect --demo",
        "the wizard against the embedded simulator (no account needed)",
    ),
    (
        "spot-connect plan --subscription 00000000-0000-0000-0000-000000000000",
        "what apply would create, reuse or change (read-only)",
    ),
    (
        "SPOTINST_TOKEN=... spot-connect apply --all-subscriptions --yes",
        "onboard every subscription the sign-in can see, without asking",
    ),
    (
        "spot-connect status --all-subscriptions --json",
        "one JSON document with every verdict",
    ),
    (
        "spot-connect sim & spot-connect --endpoints ~/.local/state/spot-connect/endpoints.json",
        "start the simulator, then point the wizard at it",
    ),
];

/// Exit codes as `--help` lists them (the man page's EXIT STATUS says more).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (exit::DONE, "done"),
    (exit::FAILED, "failed"),
    (exit::USAGE, "usage error (nothing was changed)"),
    (
        exit::PARTIAL,
        "partly done, or status found something broken or expiring",
    ),
    (
        exit::CHANGES,
        "plan --detailed-exitcode: the plan has changes",
    ),
    (exit::INTERRUPTED, "interrupted; a next run resumes"),
];

/// The text after the options in `--help`: EXAMPLES and EXIT CODES.
pub fn help_epilogue() -> String {
    let mut s = String::from("EXAMPLES:\n");
    for (cmd, what) in EXAMPLES {
        s.push_str(&format!("  {cmd}\n      {what}\n"));
    }
    s.push_str("\nEXIT CODES:\n");
    for (code, what) in EXIT_CODES {
        s.push_str(&format!("  {code:<4}{what}\n"));
    }
    s
}

/// `--subscription`: a GUID (checked before any sign-in; a typo exits 2 at once).
pub fn parse_subscription_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    match uuid::Uuid::try_parse(t) {
        Ok(_) if t.len() == 36 => Ok(t.to_string()),
        _ => Err(format!(
            "{s:?} is not a subscription id (a GUID like 00000000-0000-0000-0000-000000000000)"
        )),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "spot-connect",
    version = VERSION,
    about = "Connect an Azure subscription to Spot (spot.io), safely, in one run.",
    after_help = help_epilogue()
)]
pub struct Cli {
    /// Run the full-screen wizard against the embedded simulator: no account needed.
    #[arg(long)]
    pub demo: bool,

    /// Debug detail in the log file (overrides SPOT_CONNECT_LOG and RUST_LOG).
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Everything in the log file (trace; overrides -v, SPOT_CONNECT_LOG and RUST_LOG).
    #[arg(long, global = true)]
    pub debug: bool,

    /// The onboarding options: the wizard's (no command), and those given before a command.
    /// The onboarding commands take them after their name too ([`Cli::try_parse_from`] merges
    /// both into this field); `sim`, `man` and `completions` do not list them.
    #[command(flatten)]
    pub opts: CommonOpts,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses the process's arguments (see [`Cli::try_parse_from`]).
    pub fn try_parse_args() -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::env::args_os())
    }

    /// Parses a command line. The onboarding options may come before the command (`spot-connect
    /// --json plan`) or after it (`spot-connect plan --json`): both are merged into `opts` (a
    /// repeatable option from both places, a single one from after the command when given
    /// there), then checked together (`--subscription` with `--all-subscriptions` is refused
    /// wherever each was given).
    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let m = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&m)?;
        if let Some((_, sub)) = m.subcommand() {
            if let Some(given) = cli.command.as_mut().and_then(Command::common_mut) {
                let given = std::mem::take(given);
                cli.opts = CommonOpts::merge(std::mem::take(&mut cli.opts), given, sub);
            }
            if let Some(Command::Sim(s)) = &cli.command
                && s.state_dir.is_some()
            {
                cli.opts.state_dir.clone_from(&s.state_dir);
            }
        }
        if let Some(msg) = cli.opts.conflict() {
            return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg));
        }
        Ok(cli)
    }
}

// `Sim` carries the simulator's options inline: the enum is parsed once per process, so its size
// does not matter, and clap's derive reads plain structs most simply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Onboard without the full-screen UI (automation, CI).
    Apply(ApplyOpts),
    /// Read-only: what apply would create, reuse or change, and why.
    Plan(PlanOpts),
    /// What exists for a subscription: secret expiry, role drift, Spot connection.
    ///
    /// One verdict per subscription: `connected`; `connected (not ours)` (connected to Spot
    /// through an app that is not ours: left as it is); `expiring` (the secret ends within
    /// --warn-within); `broken` (with the reason); `not onboarded` (nothing of ours, no Spot
    /// account connected to it); `unknown` (could not be seen, with the reason). `not
    /// onboarded` and `connected (not ours)` are not errors. Exit 0 unless something we manage
    /// is broken, expires within --warn-within, or could not be seen: then 3.
    Status(StatusOpts),
    /// New secret -> Spot -> old secret removed.
    RotateSecret(RotateOpts),
    /// Undo what spot-connect created.
    Remove(RemoveOpts),
    /// Keep a scope connected, unattended (cron, a systemd timer, a Kubernetes CronJob).
    ///
    /// Over --management-group, --all-subscriptions or --subscription: connects subscriptions
    /// that appeared since the last run; rotates every secret of ours that ends within
    /// --rotate-within (new secret, every Spot account that uses the app, each verified, then
    /// the old one removed); adds the actions Spot's policy needs that a role of ours lacks
    /// (never removes one: extras are reported) and missing assignments; lists what is not ours
    /// and never touches it. Never asks. A pass with nothing to do makes no write. One-line
    /// summary on stderr; --json: the report on stdout (docs/schedule.md).
    ///
    /// Exit codes: 0 everything we manage is connected and no secret of ours ends within
    /// --rotate-within; 1 the run itself failed (sign-in, a service, usage of a service);
    /// 3 anything we manage failed, was blocked (a policy), could not be seen, or kept an old
    /// secret it could not prove unheld (the JSON's `problems` names each). Objects that are
    /// not ours are listed and never change the code. 2: bad usage.
    Reconcile(ReconcileOpts),
    /// Forget the Azure sign-in kept in the OS keyring (SPOT_CONNECT_KEYRING names its service,
    /// default spot-connect; `off` keeps none). The next command signs in again.
    Logout(LogoutOpts),
    /// Run the simulated clouds on their own.
    Sim(SimArgs),
    /// Print the shell completion script (bash: `source <(spot-connect completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff: `spot-connect man | man -l -`).
    Man,
}

impl Command {
    /// The onboarding options given after the command's name (None: `sim`, `man`,
    /// `completions`, which take none).
    fn common_mut(&mut self) -> Option<&mut CommonOpts> {
        match self {
            Command::Apply(o) => Some(&mut o.common),
            Command::Plan(o) => Some(&mut o.common),
            Command::Status(o) => Some(&mut o.common),
            Command::RotateSecret(o) => Some(&mut o.common),
            Command::Remove(o) => Some(&mut o.common),
            Command::Reconcile(o) => Some(&mut o.common),
            Command::Logout(_) | Command::Sim(_) | Command::Completions { .. } | Command::Man => {
                None
            }
        }
    }
}

/// `spot-connect logout`: its only option.
#[derive(Debug, Clone, Args, Default)]
pub struct LogoutOpts {
    /// One JSON document on stdout (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// `spot-connect sim`: the simulator's own options, and where it writes its files.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub sim: SimOpts,
    /// Where endpoints.json, the CA and the log go (default: $XDG_STATE_HOME/spot-connect).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `spot-connect apply`: the onboarding options.
#[derive(Debug, Clone, Args, Default)]
pub struct ApplyOpts {
    #[command(flatten)]
    pub common: CommonOpts,
}

/// `spot-connect rotate-secret`: the onboarding options.
#[derive(Debug, Clone, Args, Default)]
pub struct RotateOpts {
    #[command(flatten)]
    pub common: CommonOpts,
}

/// The sign-in method (defined with the clients: the engine and the clients need it too).
pub use crate::azure::auth::AuthMethod;

#[derive(Debug, Clone, Args, Default)]
pub struct CommonOpts {
    /// Subscription id (repeatable: several subscriptions in one run).
    #[arg(long = "subscription", value_name = "ID", value_parser = parse_subscription_id, conflicts_with = "all_subscriptions")]
    pub subscriptions: Vec<String>,
    /// Every enabled subscription the sign-in can see.
    #[arg(long)]
    pub all_subscriptions: bool,
    /// A management group: every enabled subscription below it (nested groups included) is
    /// connected; the custom role is the group's own, assigned once at the group.
    #[arg(long, value_name = "ID", conflicts_with_all = ["subscriptions", "all_subscriptions"])]
    pub management_group: Option<String>,
    /// With --management-group: leave this subscription out of Spot (repeatable). It still
    /// inherits the group's role assignment.
    #[arg(long = "exclude-subscription", value_name = "ID", value_parser = parse_subscription_id, requires = "management_group")]
    pub exclude_subscriptions: Vec<String>,
    /// With --management-group: remove our subscription-scope role assignments (of an earlier
    /// per-subscription run) once the group's assignment is seen in effect there.
    #[arg(long, requires = "management_group")]
    pub prune_subscription_assignments: bool,
    /// Directory (tenant) id to sign in to (default: the sign-in's home tenant).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// `act-…` to use that Spot account, or `new` to create one.
    #[arg(long, value_name = "act-…|new")]
    pub spot_account: Option<String>,
    #[arg(long, value_enum)]
    pub auth: Option<AuthMethod>,
    /// `--auth browser`: the local port the sign-in redirects to (http://localhost:PORT);
    /// default: a free port. Fix it to forward it with `ssh -L PORT:localhost:PORT`.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub redirect_port: Option<u16>,
    /// Display name of the app registration (default: spot-connect-<tenant prefix>).
    #[arg(long)]
    pub app_name: Option<String>,
    /// Name of the custom role (default: Spot.io Custom Role).
    #[arg(long)]
    pub role_name: Option<String>,
    /// Client secret lifetime in months. A tenant's app management policy with a shorter
    /// passwordLifetime caps it (the plan says so); one that forbids passwords blocks the plan.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub secret_months: u32,
    /// Role JSON to use instead of the embedded Spot policy (ARM or az CLI shape).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Cloud::Public)]
    pub cloud: Cloud,
    /// Custom endpoints, as written by `spot-connect sim`.
    #[arg(long, value_name = "FILE")]
    pub endpoints: Option<PathBuf>,
    /// Where state files, reports and the log go (default: $XDG_STATE_HOME/spot-connect).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Read the Spot token from this file instead of SPOTINST_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub spot_token_file: Option<PathBuf>,
    /// Machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not ask before writing.
    #[arg(long)]
    pub yes: bool,
    /// Replace the Spot credentials of a subscription already connected through an app that is
    /// not ours with ours. Cannot be undone (Spot has no call that restores or deletes
    /// credentials); the other app is never touched, and the account is never deleted by
    /// `remove`. Without it such a connection is kept as it is.
    #[arg(long)]
    pub take_over: bool,
    /// With --all-subscriptions: a tenant whose subscriptions cannot all be listed (refused,
    /// failed, more than 500 pages) is skipped, and said so, instead of stopping the run with
    /// exit 3.
    #[arg(long)]
    pub skip_unreachable: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusOpts {
    /// A secret of ours that ends within this many days is `expiring` (exit 3).
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub warn_within: u32,
    #[command(flatten)]
    pub common: CommonOpts,
}

#[derive(Debug, Clone, Args, Default)]
pub struct PlanOpts {
    /// Exit 4 when the plan would change something and 0 when it changes nothing, as
    /// `terraform plan -detailed-exitcode` (1: failed or blocked; 2: usage).
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub common: CommonOpts,
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileOpts {
    /// Rotate a secret of ours that ends within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub rotate_within: u32,
    #[command(flatten)]
    pub common: CommonOpts,
}

#[derive(Debug, Clone, Args, Default)]
pub struct RemoveOpts {
    /// Also delete the Spot account (cannot be undone).
    #[arg(long)]
    pub delete_spot_account: bool,
    #[command(flatten)]
    pub common: CommonOpts,
}

/// Default state directory: `$XDG_STATE_HOME/spot-connect`, else `~/.local/state/spot-connect`.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("spot-connect");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/spot-connect")
}

impl CommonOpts {
    /// `top` (before the command) and `sub` (after it) as one: repeatable options from both,
    /// flags set in either, any other option from `sub` when given there (`m`: the command's
    /// matches), else from `top`.
    fn merge(top: CommonOpts, sub: CommonOpts, m: &clap::ArgMatches) -> CommonOpts {
        use clap::parser::ValueSource;
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        macro_rules! pick {
            ($f:ident) => {
                if given(stringify!($f)) {
                    sub.$f
                } else {
                    top.$f
                }
            };
        }
        CommonOpts {
            subscriptions: [top.subscriptions, sub.subscriptions].concat(),
            all_subscriptions: top.all_subscriptions || sub.all_subscriptions,
            management_group: pick!(management_group),
            exclude_subscriptions: [top.exclude_subscriptions, sub.exclude_subscriptions].concat(),
            prune_subscription_assignments: top.prune_subscription_assignments
                || sub.prune_subscription_assignments,
            tenant: pick!(tenant),
            spot_account: pick!(spot_account),
            auth: pick!(auth),
            redirect_port: pick!(redirect_port),
            app_name: pick!(app_name),
            role_name: pick!(role_name),
            secret_months: pick!(secret_months),
            policy: pick!(policy),
            cloud: pick!(cloud),
            endpoints: pick!(endpoints),
            state_dir: pick!(state_dir),
            spot_token_file: pick!(spot_token_file),
            json: top.json || sub.json,
            yes: top.yes || sub.yes,
            take_over: top.take_over || sub.take_over,
            skip_unreachable: top.skip_unreachable || sub.skip_unreachable,
        }
    }

    /// Options that cannot go together, given before and after the command (clap checks each
    /// place on its own).
    fn conflict(&self) -> Option<String> {
        let subs = !self.subscriptions.is_empty();
        let mg = self.management_group.is_some();
        if subs && self.all_subscriptions {
            return Some(
                "the argument '--subscription <ID>' cannot be used with '--all-subscriptions'"
                    .into(),
            );
        }
        if mg && (subs || self.all_subscriptions) {
            return Some(
                "the argument '--management-group <ID>' cannot be used with '--subscription <ID>' or '--all-subscriptions'"
                    .into(),
            );
        }
        if !mg && (!self.exclude_subscriptions.is_empty() || self.prune_subscription_assignments) {
            return Some(
                "--exclude-subscription and --prune-subscription-assignments need --management-group <ID>"
                    .into(),
            );
        }
        None
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The operator's choices, as the engine takes them (a bad `--spot-account` is an error
    /// that names it).
    pub fn settings(&self) -> crate::error::Result<crate::onboard::Settings> {
        Ok(crate::onboard::Settings {
            app_name: self.app_name.clone().filter(|s| !s.trim().is_empty()),
            app_names: Default::default(),
            role_name: self.role_name.clone().filter(|s| !s.trim().is_empty()),
            secret_months: self.secret_months,
            spot_account: crate::onboard::SpotAccountChoice::parse(self.spot_account.as_deref())?,
            policy_file: self.policy.clone(),
            take_over: self.take_over,
            management_group: None,
        })
    }
}

/// The front end converts its options for the engine.
impl From<&CommonOpts> for crate::onboard::SessionOptions {
    fn from(o: &CommonOpts) -> Self {
        crate::onboard::SessionOptions {
            auth: o.auth.unwrap_or_default(),
            tenant: o.tenant.clone(),
            redirect_port: o.redirect_port,
            endpoints_file: o.endpoints.clone(),
            cloud: o.cloud,
            spot_token_file: o.spot_token_file.clone(),
            state_dir: o.state_dir(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_work_before_and_after_the_command() {
        let c = Cli::try_parse_from([
            "spot-connect",
            "apply",
            "--subscription",
            "5c000001-0000-4000-8000-0000000000a1",
            "--subscription",
            "5c000002-0000-4000-8000-0000000000a2",
            "--yes",
        ])
        .unwrap();
        assert!(matches!(c.command, Some(Command::Apply(_))));
        assert_eq!(
            c.opts.subscriptions,
            vec![
                "5c000001-0000-4000-8000-0000000000a1",
                "5c000002-0000-4000-8000-0000000000a2"
            ]
        );
        assert!(c.opts.yes);
        let c = Cli::try_parse_from(["spot-connect", "--json", "plan"]).unwrap();
        assert!(c.opts.json);
        assert_eq!(c.opts.secret_months, 12);
    }

    #[test]
    fn a_subscription_that_is_not_a_guid_is_a_usage_error() {
        for bad in [
            "a",
            "5c000001-0000-4000-8000",
            "{5c000001-0000-4000-8000-0000000000a1}",
            "5c0000010000400080000000000000a1",
        ] {
            let e =
                Cli::try_parse_from(["spot-connect", "apply", "--subscription", bad]).unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{bad}");
            assert!(e.to_string().contains("is not a subscription id"), "{e}");
        }
    }
}
