//! How `--auth azure-cli` runs `az` (issue 17 §2, §3): azure_identity's `AzureCliCredential`
//! builds the command (`/bin/sh -c "cd /bin && az account get-access-token …"`) and hands it to
//! an [`Executor`]; ours runs it
//!
//! - with **only the environment `az` needs** ([`child_env`]: `PATH`, `HOME`, the locale, `az`'s
//!   own configuration, CA bundles, proxies, temp dirs), so `SPOTINST_TOKEN`,
//!   `AZURE_CLIENT_SECRET` and anything else of ours never reach it or what it starts;
//! - in **its own process group**, for a **bounded time** ([`timeout`]: 30 s, or
//!   `SPOT_CONNECT_AZ_TIMEOUT` seconds): on timeout the whole group is killed and the error names
//!   the command that hung. The group is also killed when the call is dropped (the run was
//!   interrupted) and when the process exits through `main` ([`kill_children`]); what `az` left
//!   running in its group after it answered is killed too. (A SIGKILL of spot-connect itself
//!   cannot be acted on: the group then lives on until `az` ends.)
//! - **one at a time** ([`ONE_AT_A_TIME`]): `az account get-access-token` for a tenant or scope
//!   it has no token for yet writes the MSAL token cache, and two such calls at once on one
//!   configuration directory can make the other read an empty cache ("User … does not exist in
//!   MSAL token cache. Run `az login`", seen in CI with the ARM and Graph tokens of a tenant
//!   asked together; the Azure CLI's docs on concurrent runs say only reads are safe). The time
//!   limit counts from the spawn, not the wait for the turn.

use azure_identity::Executor;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::process::{Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Held while an `az` runs: never two at once (the token cache; see the module docs).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long one `az` call may take unless `SPOT_CONNECT_AZ_TIMEOUT` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `SPOT_CONNECT_AZ_TIMEOUT` (whole seconds, at least 1), else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var("SPOT_CONNECT_AZ_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Variables passed on by name.
const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    // a Python installed outside the system's library path needs it to start
    "LD_LIBRARY_PATH",
    // az's own configuration
    "AZURE_CONFIG_DIR",
    "AZURE_EXTENSION_DIR",
    // certificate bundles (Python requests, OpenSSL, curl)
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    // proxies
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

/// Prefixes passed on: the locale, and az's `[core]` settings as environment
/// (`AZURE_CORE_COLLECT_TELEMETRY`, `AZURE_CORE_OUTPUT`, …).
const ALLOWED_PREFIXES: &[&str] = &["LC_", "AZURE_CORE_"];

/// Whether the variable `name` goes to an `az` child.
pub fn allowed(name: &str) -> bool {
    ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The environment of an `az` child: the allowed variables of `vars`.
pub fn child_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(k, _)| k.to_str().is_some_and(allowed))
        .collect()
}

/// The process groups of the `az` children running now.
fn groups() -> &'static Mutex<HashSet<i32>> {
    static G: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    G.get_or_init(Default::default)
}

fn kill_group(pgid: i32) {
    #[cfg(unix)]
    if pgid > 1 {
        // SAFETY: kill has no memory preconditions; a negative pid names the process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Kills every `az` child still running (and whatever it started in its group): called on the
/// way out of the process.
pub fn kill_children() {
    let all: Vec<i32> = groups()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for g in all {
        kill_group(g);
    }
}

/// One running child's process group: killed when dropped (answered, timed out, or the call
/// was dropped), so nothing it started outlives the call.
struct Group(i32);

impl Group {
    fn new(pgid: i32) -> Group {
        groups()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pgid);
        Group(pgid)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let present = groups()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
        if present {
            kill_group(self.0);
        }
    }
}

/// The error of an `az` call that did not finish in time (found again by
/// `auth::from_core_error` in azure_identity's error chain).
#[derive(Debug)]
pub struct TimedOut(pub String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimedOut {}

/// The command azure_identity asked for, as the operator would type it (`az account …`).
fn shown(program: &OsStr, args: &[&OsStr]) -> String {
    let last = args.last().map(|a| a.to_string_lossy()).unwrap_or_default();
    match last.split_once("&& ") {
        Some((_, cmd)) => cmd.trim().to_string(),
        None => format!("{} {}", program.to_string_lossy(), last),
    }
}

/// Runs `az` for azure_identity with tokio: a cleared environment, its own process group, a
/// time limit.
#[derive(Debug)]
pub struct AzExecutor {
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl Executor for AzExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> io::Result<Output> {
        let _turn = ONE_AT_A_TIME.lock().await;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(child_env(std::env::vars_os()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn()?;
        let _group = child.id().map(|pid| Group::new(pid as i32));
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out,
            Err(_) => {
                let command = shown(program, args);
                tracing::warn!(command = %command, seconds = self.timeout.as_secs(), "az did not answer in time: stopped");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    TimedOut(format!(
                        "`{command}` did not finish within {} s: spot-connect stopped it (and what it started). Run that command yourself to see what it waits for (a prompt, the network, an expired `az login`); on a slow machine set SPOT_CONNECT_AZ_TIMEOUT to more seconds",
                        self.timeout.as_secs()
                    )),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowed_variables_reach_az() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/ops"),
            ("LC_ALL", "C.UTF-8"),
            ("AZURE_CONFIG_DIR", "/home/ops/.azure"),
            ("AZURE_CORE_COLLECT_TELEMETRY", "false"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("SPOTINST_TOKEN", "spot-secret"),
            ("AZURE_CLIENT_SECRET", "sp-secret"),
            ("AZURE_CLIENT_ID", "id"),
            ("AZURE_TENANT_ID", "t"),
            ("SPOT_CONNECT_LOG", "trace"),
            ("IDENTITY_HEADER", "h"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let names: Vec<String> = child_env(vars)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "AZURE_CONFIG_DIR",
                "AZURE_CORE_COLLECT_TELEMETRY",
                "HTTPS_PROXY"
            ]
        );
    }

    #[test]
    fn the_command_shown_is_the_az_command() {
        let args = [
            OsStr::new("-c"),
            OsStr::new("cd /bin && az account get-access-token -o json --scope s --tenant t"),
        ];
        assert_eq!(
            shown(OsStr::new("/bin/sh"), &args),
            "az account get-access-token -o json --scope s --tenant t"
        );
    }
}
