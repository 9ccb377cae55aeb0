//! Tenants and subscriptions the sign-in can see, the way az CLI finds them
//! (reference/azure-api.md §3.5): ARM `/tenants` with the home-tenant token, then per tenant a
//! token for that tenant and ARM `/subscriptions` (which only lists the token's tenant), following
//! `nextLink`. A tenant that cannot be read (MFA / interaction required, no access) is reported in
//! `skipped`, not fatal.

use crate::azure::auth::{Audience, Auth};
use crate::endpoints::Endpoints;
use crate::error::{Error, Result, Service};
use crate::http::{Http, Pages};
use serde_json::Value;

const API_VERSION: &str = "2022-12-01";

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

impl Discovery {
    pub fn tenant(&self, tenant_id: &str) -> Option<&Tenant> {
        self.tenants
            .iter()
            .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant_id))
    }

    pub fn subscription(&self, subscription_id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.subscription_id.eq_ignore_ascii_case(subscription_id))
    }
}

/// GET `url`, then every `nextLink` (same origin only, no loop, bounded: see [`Pages`]),
/// concatenating `value`. A page without a `value` list is an error, not an empty page.
async fn get_all(
    http: &Http,
    token: &str,
    url: String,
) -> Result<Vec<Value>, crate::error::ApiError> {
    get_all_each(http, None, token, url, |_| {}).await
}

/// [`get_all`], handing each page's `value` to `page` as it arrives; with `tenant`, each page
/// is paced on that tenant's ARM read budget (`crate::budget`).
async fn get_all_each(
    http: &Http,
    tenant: Option<&str>,
    token: &str,
    url: String,
    mut page: impl FnMut(&[Value]),
) -> Result<Vec<Value>, crate::error::ApiError> {
    let mut pages = Pages::new(Service::Arm, &url)?;
    let mut out = Vec::new();
    let mut next = Some(url);
    while let Some(url) = next.take() {
        let req = http.request(reqwest::Method::GET, &url).bearer_auth(token);
        let body = match tenant {
            Some(t) => {
                crate::azure::arm::paced_send(http, t, &reqwest::Method::GET, &url, req)
                    .await?
                    .body
            }
            None => http.send(Service::Arm, req).await?.body,
        };
        match body.get("value").and_then(Value::as_array) {
            Some(v) => {
                page(v);
                out.extend(v.iter().cloned());
            }
            None => {
                return Err(crate::error::ApiError {
                    service: Service::Arm,
                    status: 200,
                    code: "UnexpectedResponse".into(),
                    detail_codes: vec![],
                    message: "a listing page has no \"value\" array".into(),
                    request_id: None,
                    retry_after: None,
                    layer_retried: false,
                });
            }
        }
        next = pages.next(body.get("nextLink").and_then(Value::as_str))?;
    }
    Ok(out)
}

/// A string field, stripped of control characters (names are shown on the terminal).
fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(crate::text::clean)
}

fn parse_tenant(v: &Value) -> Option<Tenant> {
    let tenant_id = text(v, "tenantId")?;
    let default_domain = text(v, "defaultDomain").or_else(|| {
        v.get("domains")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Some(Tenant {
        display_name: text(v, "displayName")
            .or_else(|| default_domain.clone())
            .unwrap_or_else(|| tenant_id.clone()),
        tenant_id,
        default_domain,
    })
}

fn parse_subscription(v: &Value, tenant: &str) -> Option<Subscription> {
    let subscription_id = text(v, "subscriptionId")?;
    Some(Subscription {
        display_name: text(v, "displayName").unwrap_or_else(|| subscription_id.clone()),
        subscription_id,
        tenant_id: text(v, "tenantId").unwrap_or_else(|| tenant.to_string()),
        state: text(v, "state").unwrap_or_else(|| "Unknown".into()),
    })
}

/// Why a tenant could not be read, for the operator.
fn reason(e: &Error) -> String {
    match e.api() {
        Some(api)
            if api.has_code("interaction_required") || api.message.contains("AADSTS50076") =>
        {
            format!(
                "this tenant requires an interactive sign-in (MFA or Conditional Access): {api}"
            )
        }
        _ => e.to_string(),
    }
}

/// What discovery hands on as it goes: each subscription as soon as its page has arrived
/// (the whole listing, and what it leaves out, is known only at the end).
pub type OnSubscription<'a> = &'a (dyn Fn(&Subscription) + Sync);

async fn subscriptions_of(
    auth: &Auth,
    endpoints: &Endpoints,
    http: &Http,
    tenant: &str,
    on: OnSubscription<'_>,
) -> Result<Vec<Subscription>> {
    let token = auth.token(Some(tenant), Audience::Arm).await?;
    let url = format!("{}/subscriptions?api-version={API_VERSION}", endpoints.arm);
    let values = get_all_each(http, Some(tenant), token.expose(), url, |page| {
        page.iter()
            .filter_map(|v| parse_subscription(v, tenant))
            .for_each(|s| on(&s))
    })
    .await?;
    Ok(values
        .iter()
        .filter_map(|v| parse_subscription(v, tenant))
        .collect())
}

/// Lists tenants and their subscriptions. With `--tenant`, only that tenant.
pub async fn discover(auth: &Auth, endpoints: &Endpoints, http: &Http) -> Result<Discovery> {
    discover_each(auth, endpoints, http, &|_| {}).await
}

/// [`discover`], handing on each subscription as soon as its page has arrived (`on`), so a
/// caller can start on it while later pages are still coming. The result is [`discover`]'s.
pub async fn discover_each(
    auth: &Auth,
    endpoints: &Endpoints,
    http: &Http,
    on: OnSubscription<'_>,
) -> Result<Discovery> {
    let tenants = list_tenants(auth, endpoints, http).await?;
    discover_in_each(auth, endpoints, http, tenants, on).await
}

/// The tenants the sign-in can see (with `--tenant`, only that one): the first half of
/// [`discover`], so a front end can name a tenant (display name, domain) while its
/// subscriptions are still being listed.
pub async fn list_tenants(auth: &Auth, endpoints: &Endpoints, http: &Http) -> Result<Vec<Tenant>> {
    let token = auth.token(None, Audience::Arm).await?;
    let url = format!("{}/tenants?api-version={API_VERSION}", endpoints.arm);
    let mut tenants: Vec<Tenant> = get_all(http, token.expose(), url)
        .await?
        .iter()
        .filter_map(parse_tenant)
        .collect();
    drop(token);
    if let Some(only) = auth.requested_tenant() {
        tenants.retain(|t| {
            t.tenant_id.eq_ignore_ascii_case(only)
                || t.default_domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(only))
        });
        if tenants.is_empty() {
            // Not listed (e.g. a guest tenant ARM does not show): still try it by id.
            tenants.push(Tenant {
                tenant_id: only.to_string(),
                display_name: only.to_string(),
                default_domain: None,
            });
        }
    }
    Ok(tenants)
}

/// The subscriptions of `tenants` (from [`list_tenants`]): the second half of [`discover`].
pub async fn discover_in(
    auth: &Auth,
    endpoints: &Endpoints,
    http: &Http,
    tenants: Vec<Tenant>,
) -> Result<Discovery> {
    discover_in_each(auth, endpoints, http, tenants, &|_| {}).await
}

async fn discover_in_each(
    auth: &Auth,
    endpoints: &Endpoints,
    http: &Http,
    tenants: Vec<Tenant>,
    on: OnSubscription<'_>,
) -> Result<Discovery> {
    let results = futures::future::join_all(
        tenants
            .iter()
            .map(|t| subscriptions_of(auth, endpoints, http, &t.tenant_id, on)),
    )
    .await;
    let mut discovery = Discovery {
        tenants,
        ..Default::default()
    };
    for (tenant, result) in discovery.tenants.iter().zip(results) {
        match result {
            Ok(subs) => discovery.subscriptions.extend(subs),
            Err(e) => {
                tracing::warn!(tenant = %tenant.tenant_id, error = %e, "tenant skipped");
                discovery
                    .skipped
                    .push((tenant.tenant_id.clone(), reason(&e)));
            }
        }
    }
    // A subscription can show up under two tenants (delegated access): keep the first.
    let mut seen = std::collections::HashSet::new();
    discovery
        .subscriptions
        .retain(|s| seen.insert(s.subscription_id.to_ascii_lowercase()));
    discovery.subscriptions.sort_by(|a, b| {
        (!a.selectable(), a.display_name.to_lowercase())
            .cmp(&(!b.selectable(), b.display_name.to_lowercase()))
    });
    Ok(discovery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_arm_tenants_and_subscriptions() {
        let t = parse_tenant(&json!({"id":"/tenants/t1","tenantId":"t1","tenantCategory":"Home",
            "displayName":"Contoso","domains":["contoso.onmicrosoft.com"],"defaultDomain":"contoso.com"}))
        .unwrap();
        assert_eq!(
            t,
            Tenant {
                tenant_id: "t1".into(),
                display_name: "Contoso".into(),
                default_domain: Some("contoso.com".into())
            }
        );
        let t =
            parse_tenant(&json!({"tenantId":"t2","domains":["fabrikam.onmicrosoft.com"]})).unwrap();
        assert_eq!(t.display_name, "fabrikam.onmicrosoft.com");
        assert!(parse_tenant(&json!({"id":"/tenants/x"})).is_none());

        let s = parse_subscription(
            &json!({"id":"/subscriptions/s1","subscriptionId":"s1","displayName":"Prod","tenantId":"t1","state":"Disabled"}),
            "t9",
        )
        .unwrap();
        assert_eq!(s.tenant_id, "t1");
        assert!(!s.selectable());
        let s = parse_subscription(&json!({"subscriptionId":"s2","state":"Warned"}), "t9").unwrap();
        assert_eq!((s.tenant_id.as_str(), s.selectable()), ("t9", true));
    }
}
