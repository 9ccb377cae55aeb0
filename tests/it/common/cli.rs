//! The real binary against an in-process simulator: one `Sim` (simulator + a temp dir), one
//! way to run `spot-connect` with a clean environment, one `Out`.

use spot_connect::sim::{self, SimHandle, SimOpts, seed};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

/// A simulator and the temp dir that holds its files and the default state dir.
pub struct Sim {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

/// How a run signs in.
#[derive(Clone, Copy)]
pub enum As {
    /// The device code, approved by the simulator (`approve_after`).
    Operator,
    /// Contoso's CI service principal, with a client secret (no device-code wait).
    CiOperator,
}

/// What a finished run left: exit code (-1 when killed by a signal), stdout, stderr.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Sim {
    pub async fn start(opts: SimOpts) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim::start(&opts, &dir.path().join("sim"))
            .await
            .expect("simulator starts");
        Sim { sim, dir }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `spot-connect <args> --endpoints … --state-dir <state_dir>`: no terminal, no token or
    /// secret from the environment of the test but the ones `who` needs.
    pub fn cmd(&self, who: As, state_dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--endpoints")
            .arg(&self.sim.endpoints_path)
            .arg("--state-dir")
            .arg(state_dir)
            .env_remove("SPOTINST_TOKEN")
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("SPOT_CONNECT_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let As::CiOperator = who {
            c.args(["--auth", "client-secret"])
                .env("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID)
                .env("AZURE_CLIENT_ID", seed::CI_OPERATOR_CLIENT_ID)
                .env("AZURE_CLIENT_SECRET", seed::CI_OPERATOR_SECRET);
        }
        c
    }

    /// Runs `cmd` to its end (within `limit`).
    pub async fn run(&self, who: As, args: &[&str], limit: Duration) -> Out {
        output(self.cmd(who, &self.state_dir(), args), limit).await
    }
}

/// Waits for `c` to end, within `limit` (a test fails rather than hangs).
pub async fn output(mut c: Command, limit: Duration) -> Out {
    let out = tokio::time::timeout(limit, c.output())
        .await
        .expect("finishes in time")
        .expect("runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How many requests the simulator logged with `method` whose path contains `path`.
pub fn sends(sim: &SimHandle, method: &str, path: &str) -> usize {
    sim.requests()
        .as_array()
        .expect("request log")
        .iter()
        .filter(|r| {
            r["method"] == method
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.to_ascii_lowercase().contains(&path.to_ascii_lowercase()))
        })
        .count()
}
