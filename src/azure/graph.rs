//! Microsoft Graph v1.0 calls of the onboarding (reference/azure-api.md §1): applications,
//! their password credentials, and service principals.

use crate::azure::arm::token_with_retry;
use crate::azure::auth::{Audience, Auth};
use crate::error::{ApiError, Error, ErrorClass, Result, Service};
use crate::http::{Http, Pages};
use crate::secret::Secret;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The tag that marks an app registration as ours: an app without it is never taken over.
pub const APP_TAG: &str = "spot-connect";
/// The app's `notes`.
pub const APP_NOTES: &str = "Managed by spot-connect: connects this tenant's subscriptions to Spot (spot.io). \
Do not delete while Spot uses it; `spot-connect remove` undoes it.";
pub const REDIRECT_URI: &str = "https://spot.io";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Web {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub end_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Object id: `/applications/{id}`.
    pub id: String,
    /// Application (client) id.
    pub app_id: String,
    pub display_name: String,
    /// The alternate key this version creates the app under (None for apps of earlier
    /// versions, created by POST).
    #[serde(default)]
    pub unique_name: Option<String>,
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub web: Option<Web>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    /// When the app was registered (to tell a competing run's fresh app from an old one).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_date_time: Option<OffsetDateTime>,
}

impl Application {
    /// Whether this app carries our marker.
    pub fn is_ours(&self) -> bool {
        self.tags.iter().any(|t| t == APP_TAG)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// Object id: the RBAC principal id.
    pub id: String,
    pub app_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub app_owner_organization_id: Option<String>,
}

/// A password just added: the value is only here, once.
pub struct NewPassword {
    pub credential: PasswordCredential,
    pub secret: Secret,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Clone)]
pub struct Graph {
    http: Http,
    base: String,
    auth: Auth,
    tenant: String,
}

/// What we create an application with, by POST or by upsert: single-tenant, the
/// `https://spot.io` Web redirect URI, our marker.
fn app_body(name: &str) -> Value {
    json!({
        "displayName": name,
        "signInAudience": "AzureADMyOrg",
        "web": { "redirectUris": [REDIRECT_URI] },
        "tags": [APP_TAG],
        "notes": APP_NOTES,
    })
}

/// `/servicePrincipals(appId='…')`: the alternate key of a service principal.
fn sp_by_app_id(app_id: &str) -> String {
    format!("/servicePrincipals(appId='{}')", app_id.replace('\'', "''"))
}

const APP_SELECT: &str = "id,appId,displayName,uniqueName,signInAudience,tags,notes,web,passwordCredentials,createdDateTime";

impl Graph {
    /// `base` is the Graph root (`https://graph.microsoft.com`); calls go to `{base}/v1.0/…`.
    pub fn new(http: Http, base: &str, auth: Auth, tenant: &str) -> Graph {
        Graph {
            http,
            base: format!("{}/v1.0", base.trim_end_matches('/')),
            auth,
            tenant: tenant.to_string(),
        }
    }

    async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value> {
        self.call_with(method, url, body, None).await
    }

    async fn call_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        prefer: Option<&str>,
    ) -> Result<Value> {
        let token = token_with_retry(&self.auth, &self.tenant, Audience::Graph).await?;
        let mut req = self.http.request(method, url).bearer_auth(token.expose());
        if let Some(p) = prefer {
            req = req.header("Prefer", p);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(self.http.send(Service::Graph, req).await?.body)
    }

    /// A call whose 404 means "already gone": deleting what another run deleted is done.
    async fn call_gone_ok(&self, method: Method, url: &str, body: Option<&Value>) -> Result<()> {
        not_found_is_none::<Value>(self.call(method, url, body).await).map(|_| ())
    }

    /// `PATCH` with `Prefer: create-if-missing` (an upsert by alternate key): the object in the
    /// reply when it was created (201), an empty body when it existed and was updated (204).
    async fn create_if_missing(&self, url: &str, body: &Value) -> Result<Value> {
        self.call_with(Method::PATCH, url, Some(body), Some("create-if-missing"))
            .await
    }

    /// `/applications(uniqueName='…')`: the alternate key of an application.
    fn app_by_unique_name(&self, unique_name: &str) -> String {
        format!(
            "/applications(uniqueName='{}')",
            unique_name.replace('\'', "''")
        )
    }

    /// The application whose `uniqueName` is `unique_name`; None when there is none (yet).
    pub async fn get_application_by_unique_name(
        &self,
        unique_name: &str,
    ) -> Result<Option<Application>> {
        let url = self.url(
            &self.app_by_unique_name(unique_name),
            &[("$select", APP_SELECT)],
        );
        not_found_is_none(self.call(Method::GET, &url, None).await)
    }

    /// Idempotent by construction: `PATCH /applications(uniqueName='…')` with
    /// `Prefer: create-if-missing` creates the app (201, the app in the reply) or, when one with
    /// that uniqueName exists, updates it (204): sent twice after a lost reply, it is still one
    /// app. The same properties as [`Graph::create_application`].
    pub async fn upsert_application(&self, unique_name: &str, name: &str) -> Result<Application> {
        let body = app_body(name);
        let url = self.url(&self.app_by_unique_name(unique_name), &[]);
        let v = self.create_if_missing(&url, &body).await?;
        if v.get("appId").is_some() {
            return parse(v);
        }
        // 204: it existed and was updated; read it back.
        self.get_application_by_unique_name(unique_name)
            .await?
            .ok_or_else(|| unexpected("the upserted application cannot be read back"))
    }

    /// Idempotent by construction: `PATCH /servicePrincipals(appId='…')` with
    /// `Prefer: create-if-missing` creates the app's service principal (201) or leaves the
    /// existing one (204, read back).
    pub async fn upsert_service_principal(&self, app_id: &str) -> Result<ServicePrincipal> {
        let url = self.url(&sp_by_app_id(app_id), &[]);
        let v = self
            .create_if_missing(&url, &json!({"accountEnabled": true}))
            .await?;
        if v.get("id").is_some() {
            return parse(v);
        }
        self.get_service_principal_by_app_id(app_id)
            .await?
            .ok_or_else(|| unexpected("the upserted service principal cannot be read back"))
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let raw = format!("{}{}", self.base, path);
        // An unparsable URL (the base is validated when the endpoints are read) fails in `send`.
        let Ok(mut u) = url::Url::parse(&raw) else {
            return raw;
        };
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    }

    /// Applications whose displayName is exactly `name`.
    pub async fn find_applications(&self, name: &str) -> Result<Vec<Application>> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let mut url = Some(self.url(
            "/applications",
            &[("$filter", &filter), ("$select", APP_SELECT)],
        ));
        let mut pages = Pages::new(Service::Graph, url.as_deref().unwrap_or_default())?;
        let mut out = Vec::new();
        while let Some(u) = url.take() {
            let page: List<Application> = parse(self.call(Method::GET, &u, None).await?)?;
            out.extend(page.value.into_iter().filter(|a| a.display_name == name));
            url = pages.next(page.next_link.as_deref())?;
        }
        Ok(out)
    }

    /// An application by object id; None when it does not exist (or is not visible yet).
    pub async fn get_application(&self, id: &str) -> Result<Option<Application>> {
        let url = self.url(&format!("/applications/{id}"), &[("$select", APP_SELECT)]);
        not_found_is_none(self.call(Method::GET, &url, None).await)
    }

    /// Creates a single-tenant app with the `https://spot.io` Web redirect URI and our marker.
    pub async fn create_application(&self, name: &str) -> Result<Application> {
        let body = app_body(name);
        parse(
            self.call(Method::POST, &self.url("/applications", &[]), Some(&body))
                .await?,
        )
    }

    pub async fn delete_application(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/applications/{id}"), &[]);
        self.call_gone_ok(Method::DELETE, &url, None).await
    }

    /// Adds a client secret ending at `end`. The value is returned only here.
    pub async fn add_password(
        &self,
        app_object_id: &str,
        display_name: &str,
        end: OffsetDateTime,
    ) -> Result<NewPassword> {
        let end_s = end
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Internal(format!("cannot format a date: {e}")))?;
        let body =
            json!({"passwordCredential": {"displayName": display_name, "endDateTime": end_s}});
        let url = self.url(&format!("/applications/{app_object_id}/addPassword"), &[]);
        let mut v = self.call(Method::POST, &url, Some(&body)).await?;
        let secret = match v.get_mut("secretText").map(Value::take) {
            Some(Value::String(s)) if !s.is_empty() => Secret::new(s),
            _ => return Err(unexpected("addPassword returned no secretText")),
        };
        let credential: PasswordCredential = parse(v)?;
        Ok(NewPassword { credential, secret })
    }

    pub async fn remove_password(&self, app_object_id: &str, key_id: &str) -> Result<()> {
        let url = self.url(
            &format!("/applications/{app_object_id}/removePassword"),
            &[],
        );
        self.call_gone_ok(Method::POST, &url, Some(&json!({"keyId": key_id})))
            .await
    }

    /// The service principal of `app_id`; None when there is none (yet).
    pub async fn get_service_principal_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Option<ServicePrincipal>> {
        let url = self.url(&sp_by_app_id(app_id), &[]);
        not_found_is_none(self.call(Method::GET, &url, None).await)
    }

    pub async fn create_service_principal(&self, app_id: &str) -> Result<ServicePrincipal> {
        let body = json!({"appId": app_id, "accountEnabled": true});
        parse(
            self.call(
                Method::POST,
                &self.url("/servicePrincipals", &[]),
                Some(&body),
            )
            .await?,
        )
    }

    pub async fn delete_service_principal(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/servicePrincipals/{id}"), &[]);
        self.call_gone_ok(Method::DELETE, &url, None).await
    }
}

/// Entra directory role templates that may register applications whatever the tenant's
/// "Users can register applications" setting (reference/azure-api.md §1.1), with their names.
pub const APP_REGISTRATION_ROLES: [(&str, &str); 4] = [
    (
        "cf1c38e5-3621-4004-a7cb-879624dced7c",
        "Application Developer",
    ),
    (
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    (
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
];

/// Microsoft Graph app roles (application permissions) that allow creating applications.
pub const APP_REGISTRATION_APP_ROLES: [(&str, &str); 2] = [
    (
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
        "Application.ReadWrite.All",
    ),
    (
        "18a4783c-866b-4cc7-a460-3d5e5662c884",
        "Application.ReadWrite.OwnedBy",
    ),
];

/// A directory role the caller holds (`memberOf/microsoft.graph.directoryRole`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryRole {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub role_template_id: Option<String>,
}

/// An app role a service principal holds on some resource (`appRoleAssignments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    pub app_role_id: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub resource_display_name: Option<String>,
}

/// A restriction on password credentials (Graph `passwordCredentialConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRestriction {
    /// `passwordAddition`, `passwordLifetime`, `symmetricKeyAddition`, … .
    #[serde(default)]
    pub restriction_type: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 8601 duration (`P90D`), for `passwordLifetime`.
    #[serde(default)]
    pub max_lifetime: Option<String>,
    /// The restriction applies to apps created after this (absent: to every app). Kept as
    /// text: a date Graph writes in another precision must not make the policy unreadable.
    #[serde(default)]
    pub restrict_for_apps_created_after_date_time: Option<String>,
}

/// The password restrictions of an app management policy: the tenant default
/// (`tenantAppManagementPolicy`, `applicationRestrictions`) or an app's own
/// (`appManagementPolicy`, `restrictions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppManagementPolicy {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub is_enabled: Option<bool>,
    pub password_credentials: Vec<PasswordRestriction>,
}

impl AppManagementPolicy {
    fn from_json(v: &Value, restrictions: &str) -> Result<AppManagementPolicy> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let password_credentials = match v.pointer(&format!("/{restrictions}/passwordCredentials"))
        {
            None | Some(Value::Null) => vec![],
            Some(x) => parse(x.clone())?,
        };
        Ok(AppManagementPolicy {
            id: text("id"),
            display_name: text("displayName"),
            is_enabled: v.get("isEnabled").and_then(Value::as_bool),
            password_credentials,
        })
    }
}

impl Graph {
    /// `GET /policies/defaultAppManagementPolicy` (tenantappmanagementpolicy-get; needs
    /// Policy.Read.All): the tenant default's restrictions on applications.
    pub async fn default_app_management_policy(&self) -> Result<AppManagementPolicy> {
        let v = self
            .call(
                Method::GET,
                &self.url("/policies/defaultAppManagementPolicy", &[]),
                None,
            )
            .await?;
        AppManagementPolicy::from_json(&v, "applicationRestrictions")
    }

    /// `GET /applications/{id}/appManagementPolicies` (application-list-appmanagementpolicies):
    /// the policies applied to the app itself, which override the tenant default.
    pub async fn app_management_policies(
        &self,
        app_object_id: &str,
    ) -> Result<Vec<AppManagementPolicy>> {
        let items: Vec<Value> = self
            .list_all(self.url(
                &format!("/applications/{app_object_id}/appManagementPolicies"),
                &[],
            ))
            .await?;
        items
            .iter()
            .map(|v| AppManagementPolicy::from_json(v, "restrictions"))
            .collect()
    }

    async fn list_all<T: serde::de::DeserializeOwned>(&self, first: String) -> Result<Vec<T>> {
        let mut pages = Pages::new(Service::Graph, &first)?;
        let mut url = Some(first);
        let mut out = Vec::new();
        while let Some(u) = url.take() {
            let page: List<T> = parse(self.call(Method::GET, &u, None).await?)?;
            out.extend(page.value);
            url = pages.next(page.next_link.as_deref())?;
        }
        Ok(out)
    }

    /// The tenant's `authorizationPolicy` → `defaultUserRolePermissions.allowedToCreateApps`
    /// ("Users can register applications"). A single object in v1.0; needs Policy.Read.All.
    pub async fn users_may_create_apps(&self) -> Result<Option<bool>> {
        let v = self
            .call(
                Method::GET,
                &self.url("/policies/authorizationPolicy", &[]),
                None,
            )
            .await?;
        // beta answers with a collection of one: accept that shape too.
        let obj = match v.get("value").and_then(Value::as_array) {
            Some(items) => items.first().cloned().unwrap_or(Value::Null),
            None => v,
        };
        Ok(obj
            .pointer("/defaultUserRolePermissions/allowedToCreateApps")
            .and_then(Value::as_bool))
    }

    /// The signed-in user's directory roles (through groups too). Delegated sign-in only:
    /// for an app token Graph answers 400.
    pub async fn my_directory_roles(&self) -> Result<Vec<DirectoryRole>> {
        self.list_all(self.url(
            "/me/transitiveMemberOf/microsoft.graph.directoryRole",
            &[("$select", "id,displayName,roleTemplateId")],
        ))
        .await
    }

    /// Directory roles held by the service principal `sp_id`.
    pub async fn service_principal_directory_roles(
        &self,
        sp_id: &str,
    ) -> Result<Vec<DirectoryRole>> {
        self.list_all(self.url(
            &format!("/servicePrincipals/{sp_id}/transitiveMemberOf/microsoft.graph.directoryRole"),
            &[("$select", "id,displayName,roleTemplateId")],
        ))
        .await
    }

    /// App roles (application permissions) granted to the service principal `sp_id`.
    pub async fn app_role_assignments(&self, sp_id: &str) -> Result<Vec<AppRoleAssignment>> {
        self.list_all(self.url(
            &format!("/servicePrincipals/{sp_id}/appRoleAssignments"),
            &[],
        ))
        .await
    }
}

fn not_found_is_none<T: serde::de::DeserializeOwned>(r: Result<Value>) -> Result<Option<T>> {
    match r {
        Ok(Value::Null) => Ok(None),
        Ok(v) => parse(v).map(Some),
        Err(Error::Api(e)) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn unexpected(msg: &str) -> Error {
    Error::Api(ApiError {
        service: Service::Graph,
        status: 200,
        code: "UnexpectedResponse".into(),
        detail_codes: vec![],
        message: msg.to_string(),
        request_id: None,
        retry_after: None,
        layer_retried: false,
    })
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| unexpected(&format!("unexpected response body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_parse_with_marker_and_passwords() {
        let v = json!({"id":"o1","appId":"a1","displayName":"spot-connect","tags":["spot-connect"],
            "passwordCredentials":[{"keyId":"k1","displayName":"x","endDateTime":"2027-06-01T00:00:00Z","hint":"ab~"}]});
        let a: Application = parse(v).unwrap();
        assert!(a.is_ours());
        assert_eq!(
            a.password_credentials[0].end_date_time.unwrap().year(),
            2027
        );
        let b: Application =
            parse(json!({"id":"o2","appId":"a2","displayName":"spot-connect"})).unwrap();
        assert!(!b.is_ours());
    }
}
