//! The simulated clouds: identity platform, Microsoft Graph, ARM and the Spot API over HTTPS on
//! loopback (PRODUCT.md §3). PLACEHOLDER: replaced by the simulator work.

use crate::cli::SimOpts;
use crate::endpoints::EndpointsFile;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct SimHandle {
    pub endpoints: EndpointsFile,
    pub endpoints_path: PathBuf,
}

/// Starts the simulator in this process; writes `<state_dir>/endpoints.json` and the CA file.
pub async fn start(_opts: &SimOpts, _state_dir: &Path) -> Result<SimHandle> {
    Err(Error::Other("the simulator is not built yet".into()))
}

/// `spot-connect sim`: start, print the endpoints JSON line, serve until interrupted.
pub async fn run_cli(_opts: SimOpts, _state_dir: PathBuf) -> Result<()> {
    Err(Error::Other("the simulator is not built yet".into()))
}
