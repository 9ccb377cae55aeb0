//! The onboarding engine: plan, apply, checkpoint, retry. Knows nothing of the terminal.
//! PLACEHOLDER façade: replaced by the engine work.

pub mod model;
pub mod policy;

use crate::azure::auth::Auth;
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::spot::SpotClient;
use model::{Plan, Progress, Report};
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// How to pick the Spot account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpotAccountChoice {
    /// The account connected to this subscription if any, else a new one.
    #[default]
    Auto,
    Existing(String),
    New,
}

/// Everything the engine needs to talk to the services.
#[derive(Clone)]
pub struct Session {
    pub endpoints: Endpoints,
    pub http: Http,
    pub auth: Auth,
    pub spot: SpotClient,
    pub state_dir: PathBuf,
}

/// What the operator chose.
#[derive(Debug, Clone)]
pub struct Settings {
    /// None: the default name.
    pub app_name: Option<String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub spot_account: SpotAccountChoice,
    /// None: the embedded Spot policy.
    pub policy_file: Option<PathBuf>,
}

/// The subscription to onboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
}

pub async fn plan(_session: &Session, _target: &Target, _settings: &Settings) -> Result<Plan> {
    Err(Error::Other("the engine is not built yet".into()))
}

pub async fn apply(
    _session: &Session,
    _target: &Target,
    _settings: &Settings,
    _progress: UnboundedSender<Progress>,
) -> Result<Report> {
    Err(Error::Other("the engine is not built yet".into()))
}
