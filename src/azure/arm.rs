//! Azure Resource Manager calls of the onboarding (reference/azure-api.md §2): role definitions,
//! role assignments and the caller's permissions, api-version 2022-04-01.

use crate::azure::auth::{Audience, Auth};
use crate::budget;
use crate::error::{ApiError, Error, ErrorClass, Result, Service};
use crate::http::{Http, Observer, Pages};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const API_VERSION: &str = "2022-04-01";
/// Microsoft.Management (management groups).
pub const MG_API_VERSION: &str = "2020-05-01";

/// The scope of management group `id`.
pub fn mg_scope(id: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{id}")
}

/// A path segment from outside (a group id), percent-encoded.
fn url_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManagementGroupProperties {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// `GET …/managementGroups/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ManagementGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub properties: Option<ManagementGroupProperties>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct DescendantParent {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DescendantProperties {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub parent: Option<DescendantParent>,
}

/// One item of `…/descendants`: a group (`type` Microsoft.Management/managementGroups) or a
/// subscription (`type` /subscriptions; `name` its id).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Descendant {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub properties: Option<DescendantProperties>,
}

impl Descendant {
    pub fn is_subscription(&self) -> bool {
        self.kind.eq_ignore_ascii_case("/subscriptions")
            || self
                .kind
                .eq_ignore_ascii_case("Microsoft.Resources/subscriptions")
    }

    /// The id of the group it sits in (the last segment of `properties.parent.id`).
    pub fn parent(&self) -> Option<&str> {
        self.properties
            .as_ref()?
            .parent
            .as_ref()?
            .id
            .as_deref()?
            .rsplit('/')
            .next()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinitionProperties {
    pub role_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub role_type: Option<String>,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub assignable_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleDefinition {
    /// "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    pub id: String,
    /// The GUID.
    pub name: String,
    pub properties: RoleDefinitionProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    pub role_definition_id: String,
    pub principal_id: String,
    #[serde(default)]
    pub principal_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub properties: RoleAssignmentProperties,
}

/// What `create_role_assignment` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentOutcome {
    Created(RoleAssignment),
    /// 409 RoleAssignmentExists: the same role is already assigned to the principal at the scope.
    AlreadyExists,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

/// The last path segment of an ARM id (the GUID of a role definition or assignment).
pub fn guid_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Whether two role definition ids name the same role (the scope prefix may differ).
pub fn same_role(a: &str, b: &str) -> bool {
    guid_of(a).eq_ignore_ascii_case(guid_of(b))
}

/// OData string literal: `'` doubled.
pub fn odata_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether ARM permission entries grant `action` (wildcards `*` and `Provider/*`, minus notActions).
pub fn permits(perms: &[Permission], action: &str) -> bool {
    perms.iter().any(|p| {
        p.actions.iter().any(|a| action_matches(a, action))
            && !p.not_actions.iter().any(|a| action_matches(a, action))
    })
}

fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.find('*') {
        None => p == a,
        Some(i) => {
            let (pre, post) = (&p[..i], &p[i + 1..]);
            a.len() >= pre.len() + post.len() && a.starts_with(pre) && a.ends_with(post)
        }
    }
}

/// Feeds the `x-ms-ratelimit-remaining-*` of each reply to the session's budgets.
struct BudgetObserver<'a> {
    budgets: &'a budget::Budgets,
    /// (bucket key, the header that reports it)
    buckets: &'a [(String, String)],
    keys: &'a [String],
}

impl Observer for BudgetObserver<'_> {
    fn sent(&self, at: std::time::Instant, attempt: u32) {
        // The first attempt was counted when its token was taken.
        if attempt > 1 {
            self.budgets.resent(self.keys, at);
        }
    }

    fn replied(&self, sent: std::time::Instant, headers: &reqwest::header::HeaderMap) {
        let seen: Vec<(String, u64)> = self
            .buckets
            .iter()
            .filter_map(|(key, name)| {
                let v = headers
                    .get(name.as_str())?
                    .to_str()
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((key.clone(), v))
            })
            .collect();
        if !seen.is_empty() {
            self.budgets.observe(sent, &seen);
        }
    }
}

/// Sends an ARM request of `tenant` paced on the budget ARM announces (`crate::budget`): it
/// waits for a token of every bucket the request draws on, and its reply's counts are fed back.
pub(crate) async fn paced_send(
    http: &Http,
    tenant: &str,
    method: &Method,
    url: &str,
    req: reqwest::RequestBuilder,
) -> std::result::Result<crate::http::Reply, ApiError> {
    let buckets = budget::buckets_of(tenant, url, budget::Kind::of(method));
    let keys: Vec<String> = buckets.iter().map(|(k, _)| k.clone()).collect();
    http.budgets.acquire(&keys).await;
    let observer = BudgetObserver {
        budgets: &http.budgets,
        buckets: &buckets,
        keys: &keys,
    };
    http.send_observed(Service::Arm, req, &observer).await
}

#[derive(Clone)]
pub struct Arm {
    http: Http,
    base: String,
    auth: Auth,
    tenant: String,
}

impl Arm {
    pub fn new(http: Http, base: &str, auth: Auth, tenant: &str) -> Arm {
        Arm {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth,
            tenant: tenant.to_string(),
        }
    }

    async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value> {
        let token = token_with_retry(&self.auth, &self.tenant, Audience::Arm).await?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(paced_send(&self.http, &self.tenant, &method, url, req)
            .await?
            .body)
    }

    async fn list<T: serde::de::DeserializeOwned>(&self, first: String) -> Result<Vec<T>> {
        let mut pages = Pages::new(Service::Arm, &first)?;
        let mut out = Vec::new();
        let mut url = Some(first);
        while let Some(u) = url.take() {
            let page: List<T> = parse(self.call(Method::GET, &u, None).await?)?;
            out.extend(page.value);
            url = pages.next(page.next_link.as_deref())?;
        }
        Ok(out)
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let raw = format!("{}{}", self.base, path);
        // An unparsable URL (the base is validated when the endpoints are read) fails in `send`.
        let Ok(mut u) = url::Url::parse(&raw) else {
            return raw;
        };
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("api-version", API_VERSION);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    }

    /// Role definitions named `role_name` applicable at `scope` (e.g. "/subscriptions/{sub}").
    pub async fn find_role_definitions(
        &self,
        scope: &str,
        role_name: &str,
    ) -> Result<Vec<RoleDefinition>> {
        let filter = format!("roleName eq {}", odata_quote(role_name));
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions"),
            &[("$filter", &filter)],
        );
        self.list(url).await
    }

    /// Custom roles of the whole tenant (to find a same-named role assignable elsewhere).
    pub async fn list_tenant_custom_roles(&self) -> Result<Vec<RoleDefinition>> {
        let url = self.url(
            "/providers/Microsoft.Authorization/roleDefinitions",
            &[("$filter", "type eq 'CustomRole'")],
        );
        self.list(url).await
    }

    /// A role definition by its full id; None when it does not exist.
    pub async fn get_role_definition(&self, id: &str) -> Result<Option<RoleDefinition>> {
        match self.call(Method::GET, &self.url(id, &[]), None).await {
            Ok(v) => parse(v).map(Some),
            Err(Error::Api(e)) if e.status == 404 || e.has_code("RoleDefinitionDoesNotExist") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates (new `guid`) or updates (existing `guid`) a role definition at `scope`.
    pub async fn put_role_definition(
        &self,
        scope: &str,
        guid: &str,
        props: &RoleDefinitionProperties,
    ) -> Result<RoleDefinition> {
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
            &[],
        );
        parse(
            self.call(Method::PUT, &url, Some(&json!({ "properties": props })))
                .await?,
        )
    }

    pub async fn delete_role_definition(&self, id: &str) -> Result<()> {
        ignore_not_found(self.call(Method::DELETE, &self.url(id, &[]), None).await)
    }

    /// Role assignments of `principal_id` at `scope` (and above/below, as ARM filters).
    pub async fn list_role_assignments(
        &self,
        scope: &str,
        principal_id: &str,
    ) -> Result<Vec<RoleAssignment>> {
        let filter = format!("principalId eq {}", odata_quote(principal_id));
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
            &[("$filter", &filter)],
        );
        self.list(url).await
    }

    /// Assigns `role_definition_id` to the service principal `principal_id` at `scope`.
    pub async fn create_role_assignment(
        &self,
        scope: &str,
        guid: &str,
        role_definition_id: &str,
        principal_id: &str,
    ) -> Result<AssignmentOutcome> {
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"),
            &[],
        );
        let body = json!({"properties": {
            "roleDefinitionId": role_definition_id,
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }});
        match self.call(Method::PUT, &url, Some(&body)).await {
            Ok(v) => parse(v).map(AssignmentOutcome::Created),
            Err(Error::Api(e)) if e.has_code("RoleAssignmentExists") => {
                Ok(AssignmentOutcome::AlreadyExists)
            }
            Err(e) => Err(e),
        }
    }

    /// How many role assignments sit at `scope` (`$filter=atScope()`).
    pub async fn count_role_assignments_at(&self, scope: &str) -> Result<usize> {
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
            &[("$filter", "atScope()")],
        );
        let all: Vec<RoleAssignment> = self.list(url).await?;
        Ok(all.len())
    }

    pub async fn delete_role_assignment(&self, id: &str) -> Result<()> {
        ignore_not_found(self.call(Method::DELETE, &self.url(id, &[]), None).await)
    }

    /// Ids of the subscriptions of this tenant the caller can see (api-version 2022-12-01).
    pub async fn list_subscription_ids(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Sub {
            subscription_id: String,
        }
        let url = format!("{}/subscriptions?api-version=2022-12-01", self.base);
        let subs: Vec<Sub> = self.list(url).await?;
        Ok(subs.into_iter().map(|s| s.subscription_id).collect())
    }

    /// A management group (`GET /providers/Microsoft.Management/managementGroups/{id}`,
    /// api-version 2020-05-01); None when ARM answers 404 (403 is an error: the caller may not
    /// read it, or it does not exist).
    pub async fn get_management_group(&self, id: &str) -> Result<Option<ManagementGroup>> {
        let url = format!(
            "{}/providers/Microsoft.Management/managementGroups/{}?api-version={MG_API_VERSION}",
            self.base,
            url_segment(id)
        );
        match self.call(Method::GET, &url, None).await {
            Ok(v) => parse(v).map(Some),
            Err(Error::Api(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The management groups the caller may read in this tenant (`GET
    /// /providers/Microsoft.Management/managementGroups`, every page).
    pub async fn list_management_groups(&self) -> Result<Vec<ManagementGroup>> {
        let url = format!(
            "{}/providers/Microsoft.Management/managementGroups?api-version={MG_API_VERSION}",
            self.base
        );
        self.list(url).await
    }

    /// Everything below a management group (groups and subscriptions, nested included), every
    /// page (`nextLink`).
    pub async fn management_group_descendants(&self, id: &str) -> Result<Vec<Descendant>> {
        let url = format!(
            "{}/providers/Microsoft.Management/managementGroups/{}/descendants?api-version={MG_API_VERSION}",
            self.base,
            url_segment(id)
        );
        self.list(url).await
    }

    /// The caller's permissions at `scope`.
    pub async fn permissions(&self, scope: &str) -> Result<Vec<Permission>> {
        let url = self.url(
            &format!("{scope}/providers/Microsoft.Authorization/permissions"),
            &[],
        );
        self.list(url).await
    }
}

/// A token, asked again when the identity platform failed in flight (5xx, 429, dropped).
pub(crate) async fn token_with_retry(
    auth: &Auth,
    tenant: &str,
    audience: Audience,
) -> Result<crate::secret::Secret> {
    let mut tries = 0u64;
    loop {
        match auth.token(Some(tenant), audience).await {
            Err(Error::Api(e))
                if matches!(e.class(), ErrorClass::Transient | ErrorClass::Throttled)
                    && tries < 4 =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250 * tries)).await;
            }
            r => return r,
        }
    }
}

fn ignore_not_found(r: Result<Value>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(Error::Api(e)) if e.class() == ErrorClass::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| {
        Error::Api(ApiError {
            service: Service::Arm,
            status: 200,
            code: "UnexpectedResponse".into(),
            detail_codes: vec![],
            message: format!("unexpected response body: {e}"),
            request_id: None,
            retry_after: None,
            layer_retried: false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_not_actions_decide_permissions() {
        let owner = vec![Permission {
            actions: vec!["*".into()],
            ..Default::default()
        }];
        assert!(permits(
            &owner,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        let contributor = vec![Permission {
            actions: vec!["*".into()],
            not_actions: vec![
                "Microsoft.Authorization/*/Delete".into(),
                "Microsoft.Authorization/*/Write".into(),
            ],
            ..Default::default()
        }];
        assert!(!permits(
            &contributor,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(permits(&contributor, "Microsoft.Compute/disks/write"));
        let uaa = vec![Permission {
            actions: vec!["Microsoft.Authorization/*".into(), "*/read".into()],
            ..Default::default()
        }];
        assert!(permits(
            &uaa,
            "Microsoft.Authorization/roleDefinitions/write"
        ));
        let reader = vec![Permission {
            actions: vec!["*/read".into()],
            ..Default::default()
        }];
        assert!(!permits(
            &reader,
            "Microsoft.Authorization/roleDefinitions/write"
        ));
    }

    #[test]
    fn ids_and_quotes() {
        assert!(same_role(
            "/subscriptions/a/providers/Microsoft.Authorization/roleDefinitions/ABC",
            "/providers/Microsoft.Authorization/roleDefinitions/abc"
        ));
        assert_eq!(odata_quote("O'Brien"), "'O''Brien'");
    }
}
