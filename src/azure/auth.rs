//! Azure sign-in behind azure_core's `TokenCredential`. PLACEHOLDER: replaced by the auth work.

use crate::cli::AuthMethod;
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::onboard::model::DeviceCodePrompt;
use crate::secret::Secret;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    Arm,
    Graph,
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// UPN for a user, client id for a service principal or managed identity.
    pub display: String,
    pub home_tenant: Option<String>,
    pub method: AuthMethod,
}

/// Called with the device code to show.
pub type PromptFn = Arc<dyn Fn(DeviceCodePrompt) + Send + Sync>;

#[derive(Clone)]
pub struct Auth {
    _p: (),
}

impl Auth {
    pub fn new(
        _method: AuthMethod,
        _endpoints: &Endpoints,
        _http: &Http,
        _tenant: Option<String>,
        _prompt: PromptFn,
    ) -> Result<Auth> {
        Err(Error::Other("sign-in is not built yet".into()))
    }

    pub async fn sign_in(&self) -> Result<Identity> {
        Err(Error::Other("sign-in is not built yet".into()))
    }

    /// An access token for `audience` in `tenant` (None: the sign-in's home/organizations tenant).
    pub async fn token(&self, _tenant: Option<&str>, _audience: Audience) -> Result<Secret> {
        Err(Error::Other("sign-in is not built yet".into()))
    }
}
