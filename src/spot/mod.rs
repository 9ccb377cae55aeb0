//! The Spot API client (reference/spot-api.md). PLACEHOLDER.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpotAccount {
    pub account_id: String,
    pub name: String,
    pub organization_id: Option<String>,
    /// For an Azure-connected account: the subscription id.
    pub provider_external_id: Option<String>,
    pub cloud_provider: Option<String>,
}

#[derive(Clone)]
pub struct SpotClient {
    _p: (),
}

impl SpotClient {
    pub async fn list_accounts(&self) -> Result<Vec<SpotAccount>> {
        Err(Error::Other("Spot client is not built yet".into()))
    }
}
