//! Tenants and subscriptions the sign-in can see (reference/azure-api.md §3.5). PLACEHOLDER.

use crate::azure::auth::Auth;
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::http::Http;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub display_name: String,
    pub default_domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub subscription_id: String,
    pub display_name: String,
    pub tenant_id: String,
    /// Enabled, Warned, PastDue, Disabled, Deleted.
    pub state: String,
}

impl Subscription {
    pub fn selectable(&self) -> bool {
        matches!(self.state.as_str(), "Enabled" | "Warned")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub tenants: Vec<Tenant>,
    pub subscriptions: Vec<Subscription>,
    /// Tenants that could not be read (e.g. interaction required), with the reason.
    pub skipped: Vec<(String, String)>,
}

pub async fn discover(_auth: &Auth, _endpoints: &Endpoints, _http: &Http) -> Result<Discovery> {
    Err(Error::Other("discovery is not built yet".into()))
}
