//! The Spot API client (reference/spot-api.md §1–§2): accounts, and an account's Azure
//! credentials (flat body, `expirationDate`, `accountId` always in the query).

use crate::error::{ApiError, Error, Result, Service};
use crate::http::Http;
use crate::secret::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpotAccount {
    pub account_id: String,
    pub name: String,
    pub organization_id: Option<String>,
    /// For an Azure-connected account: the subscription id.
    pub provider_external_id: Option<String>,
    pub cloud_provider: Option<String>,
    /// When Spot made it (`createdAt`, in real list replies; spot-api.md §2).
    #[serde(skip)]
    pub created_at: Option<OffsetDateTime>,
}

/// List returns `accountId`, create returns `id` (spot-api.md §2).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAccount {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    organization_id: Option<Value>,
    #[serde(default)]
    provider_external_id: Option<String>,
    #[serde(default)]
    cloud_provider: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

impl RawAccount {
    fn into_account(self) -> Option<SpotAccount> {
        Some(SpotAccount {
            account_id: self.account_id.or(self.id)?,
            name: crate::text::clean(&self.name.unwrap_or_default()),
            organization_id: self.organization_id.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            provider_external_id: self.provider_external_id.filter(|s| !s.is_empty()),
            cloud_provider: self.cloud_provider,
            created_at: self.created_at.and_then(|s| {
                OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
            }),
        })
    }
}

/// What Spot holds for an account's Azure connection (the secret comes back masked, if at all).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureCredentialsInfo {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub expiration_date: Option<String>,
    /// The secret as Spot shows it: masked (`abc*****…`), at most a prefix in clear.
    #[serde(default, rename = "clientSecret")]
    pub client_secret_mask: Option<String>,
}

impl AzureCredentialsInfo {
    /// The characters Spot's mask shows in clear, from the start (empty when none).
    pub fn mask_prefix(&self) -> &str {
        let m = self.client_secret_mask.as_deref().unwrap_or_default();
        let end = m.find(['*', '•', '…']).unwrap_or(m.len());
        // A mask without any masking character shows nothing we can trust as a prefix.
        if end == m.len() { "" } else { &m[..end] }
    }

    pub fn expiration(&self) -> Option<OffsetDateTime> {
        self.expiration_date.as_deref().and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
    }
}

/// The credentials Spot needs to manage a subscription.
pub struct AzureCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub tenant_id: String,
    pub subscription_id: String,
    /// The secret's endDateTime.
    pub expiration_date: OffsetDateTime,
}

impl AzureCredentials {
    fn body(&self, with_expiry: bool) -> Result<Value> {
        let mut v = json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret.expose(),
            "tenantId": self.tenant_id,
            "subscriptionId": self.subscription_id,
        });
        if with_expiry {
            v["expirationDate"] = json!(spot_date(self.expiration_date)?);
        }
        Ok(v)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` in UTC (spot-api.md §1.3).
pub fn spot_date(t: OffsetDateTime) -> Result<String> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f)
        .map_err(|e| Error::Internal(format!("cannot format a date: {e}")))
}

#[derive(Clone)]
pub struct SpotClient {
    base: String,
    http: Http,
    token: Secret,
}

impl SpotClient {
    /// `base` is the API root (`https://api.spotinst.io`).
    pub fn new(base: &str, http: Http, token: Secret) -> SpotClient {
        SpotClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            token,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        if self.token.is_empty() {
            return Err(Error::Usage(
                "no Spot token: set SPOTINST_TOKEN or pass --spot-token-file FILE".into(),
            ));
        }
        let mut req = self
            .http
            .request(method, &format!("{}{}", self.base, path))
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(self.http.send(Service::Spot, req).await?.body)
    }

    /// Every account of the organization (needs an Organization Admin token).
    pub async fn list_accounts(&self) -> Result<Vec<SpotAccount>> {
        let v = self.call(Method::GET, "/setup/account", &[], None).await?;
        Ok(items::<RawAccount>(v)?
            .into_iter()
            .filter_map(RawAccount::into_account)
            .collect())
    }

    /// The accounts connected to an Azure subscription (`?cloudAccountId=`, spot-api.md §2):
    /// a token that is not an Organization Admin's may ask this too (it sees its own accounts).
    pub async fn accounts_for_subscription(&self, subscription: &str) -> Result<Vec<SpotAccount>> {
        let v = self
            .call(
                Method::GET,
                "/setup/account",
                &[("cloudAccountId", subscription)],
                None,
            )
            .await?;
        Ok(items::<RawAccount>(v)?
            .into_iter()
            .filter_map(RawAccount::into_account)
            .filter(|a| {
                a.provider_external_id
                    .as_deref()
                    .is_none_or(|p| p.eq_ignore_ascii_case(subscription))
            })
            .collect())
    }

    /// One account by id; None when Spot says it does not exist.
    pub async fn get_account(&self, account_id: &str) -> Result<Option<SpotAccount>> {
        match self
            .call(
                Method::GET,
                &format!("/setup/account/{account_id}"),
                &[],
                None,
            )
            .await
        {
            Ok(v) => Ok(items::<RawAccount>(v)?
                .into_iter()
                .find_map(RawAccount::into_account)),
            Err(Error::Api(e))
                if e.status == 404 || e.has_code(crate::error::spot_codes::ACCOUNT_NOT_FOUND) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn create_account(&self, name: &str) -> Result<SpotAccount> {
        let v = self
            .call(
                Method::POST,
                "/setup/account",
                &[],
                Some(&json!({"account": {"name": name}})),
            )
            .await?;
        items::<RawAccount>(v)?
            .into_iter()
            .find_map(RawAccount::into_account)
            .ok_or_else(|| unexpected("account creation returned no account"))
    }

    pub async fn delete_account(&self, account_id: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/setup/account/{account_id}"),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    /// Connects the account to the subscription (Spot validates against Azure).
    pub async fn set_azure_credentials(
        &self,
        account_id: &str,
        c: &AzureCredentials,
    ) -> Result<()> {
        self.post_credentials("/azure/setup/credentials", account_id, c.body(true)?)
            .await
    }

    /// Checks credentials without setting them.
    pub async fn validate_azure_credentials(
        &self,
        account_id: &str,
        c: &AzureCredentials,
    ) -> Result<()> {
        self.post_credentials(
            "/azure/setup/credentials/validation",
            account_id,
            c.body(false)?,
        )
        .await
    }

    async fn post_credentials(&self, path: &str, account_id: &str, body: Value) -> Result<()> {
        self.call(
            Method::POST,
            path,
            &[("accountId", account_id)],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// The account's Azure credentials; None when it has none.
    pub async fn get_azure_credentials(
        &self,
        account_id: &str,
    ) -> Result<Option<AzureCredentialsInfo>> {
        match self
            .call(
                Method::GET,
                "/azure/setup/credentials",
                &[("accountId", account_id)],
                None,
            )
            .await
        {
            Ok(v) => Ok(items::<AzureCredentialsInfo>(v)?
                .into_iter()
                .find(|c| c.client_id.as_deref().is_some_and(|s| !s.is_empty()))),
            Err(Error::Api(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn items<T: serde::de::DeserializeOwned>(v: Value) -> Result<Vec<T>> {
    match v.pointer("/response/items") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(items) => serde_json::from_value(items.clone())
            .map_err(|e| unexpected(&format!("unexpected response body: {e}"))),
    }
}

fn unexpected(msg: &str) -> Error {
    Error::Api(ApiError {
        service: Service::Spot,
        status: 200,
        code: "UnexpectedResponse".into(),
        detail_codes: vec![],
        message: msg.to_string(),
        request_id: None,
        retry_after: None,
        layer_retried: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_create_shapes_both_parse() {
        let list = json!({"response":{"items":[{"accountId":"act-1","name":"a","organizationId":606012341234u64,"providerExternalId":"sub-1","cloudProvider":"AZURE"}]}});
        let a: Vec<SpotAccount> = items::<RawAccount>(list)
            .unwrap()
            .into_iter()
            .filter_map(RawAccount::into_account)
            .collect();
        assert_eq!(a[0].account_id, "act-1");
        assert_eq!(a[0].organization_id.as_deref(), Some("606012341234"));
        let created =
            json!({"response":{"items":[{"id":"act-2","name":"b","organizationId":"6"}]}});
        let b = items::<RawAccount>(created)
            .unwrap()
            .into_iter()
            .find_map(RawAccount::into_account)
            .unwrap();
        assert_eq!(
            (b.account_id.as_str(), b.provider_external_id),
            ("act-2", None)
        );
    }

    #[test]
    fn credentials_body_is_flat_with_utc_expiry() {
        let c = AzureCredentials {
            client_id: "c".into(),
            client_secret: Secret::new("s3cr3t"),
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            expiration_date: time::macros::datetime!(2027-06-01 02:00 +02:00),
        };
        let b = c.body(true).unwrap();
        assert_eq!(b["expirationDate"], "2027-06-01T00:00:00.000Z");
        assert_eq!(b["clientSecret"], "s3cr3t");
        assert!(b.get("credentials").is_none());
        assert!(c.body(false).unwrap().get("expirationDate").is_none());
    }
}
