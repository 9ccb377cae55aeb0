//! The engine in-process against an in-process simulator: one `Engine` (simulator, temp dir, a
//! `Session` built on the simulator's endpoints and Spot token), not yet signed in: each module
//! signs in as its tests need.

use spot_connect::cli::{CommonOpts, SimOpts};
use spot_connect::onboard::Session;
use spot_connect::secret::Secret;
use spot_connect::sim::{self, SimHandle};
use std::path::PathBuf;
use std::sync::Arc;

/// A simulator, the temp dir that holds its files and the state dir, and a session on it.
pub struct Engine {
    pub sim: SimHandle,
    /// Removed when the `Engine` is dropped.
    pub _dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub session: Session,
}

impl Engine {
    /// Starts a simulator with `opts` and builds a session on it (state in `<dir>/state`).
    pub async fn start(opts: SimOpts) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim::start(&opts, &dir.path().join("sim"))
            .await
            .expect("simulator starts");
        let state_dir = dir.path().join("state");
        let common = CommonOpts {
            state_dir: Some(state_dir.clone()),
            ..Default::default()
        };
        let endpoints = (
            sim.endpoints(),
            Secret::new(sim.endpoints.spot_token.clone()),
        );
        let session = Session::build(&common, Some(endpoints), Arc::new(|_| {})).expect("session");
        Engine {
            sim,
            _dir: dir,
            state_dir,
            session,
        }
    }
}
