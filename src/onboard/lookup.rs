//! The lookups every step shares: the Graph and ARM clients of a tenant, the fatal-error test,
//! and the finds by name and scope (our app, our role, an assignment, the Spot account of a
//! subscription, the secret Spot holds). Read-only; below every step (`plan`, `apply`,
//! `status`, `rotate`, `remove`, `reconcile`).

use super::Session;
use super::policy::{self, ROLE_MARKER};
use super::state::State;
use crate::azure::arm::{self, Arm, RoleAssignment, RoleDefinition};
use crate::azure::graph::{Application, Graph, PasswordCredential};
use crate::error::{Error, ErrorClass, Result, Service};
use crate::spot::{AzureCredentialsInfo, SpotAccount};

pub(crate) fn graph(session: &Session, tenant: &str) -> Graph {
    Graph::new(
        session.http.clone(),
        &session.endpoints.graph,
        session.auth.clone(),
        tenant,
    )
}

pub(crate) fn arm(session: &Session, tenant: &str) -> Arm {
    Arm::new(
        session.http.clone(),
        &session.endpoints.arm,
        session.auth.clone(),
        tenant,
    )
}

pub(crate) use super::retry::read;

/// Errors after which nothing else should be tried: sign-in failed, a token was refused, or a
/// service cannot be reached at all (no connection could be made). By type and code only.
pub fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Auth(_) | Error::Cancelled => true,
        Error::Api(a) => {
            a.class() == ErrorClass::Fatal
                || (a.service == Service::Login
                    && matches!(a.class(), ErrorClass::Permission | ErrorClass::Invalid))
                || a.has_code(crate::error::CONNECT_FAILED)
                || (a.status == 401 && a.has_code("InvalidAuthenticationToken"))
        }
        _ => false,
    }
}

/// Every state file of `tenant`.
pub(crate) fn tenant_states(session: &Session, tenant: &str) -> Vec<State> {
    State::load_tenant_siblings(&session.state_dir, tenant, "")
}

pub(crate) fn is_our_role(r: &RoleDefinition) -> bool {
    r.properties
        .description
        .as_deref()
        .is_some_and(|d| d.contains(ROLE_MARKER))
}

/// The tenant's app of ours named `name` (recorded ids first: a list right after a create may
/// not show it yet), and how many same-named apps are not ours.
pub(crate) async fn find_app(
    session: &Session,
    graph: &Graph,
    tenant: &str,
    name: &str,
) -> Result<(Option<Application>, usize)> {
    let mut ids: Vec<String> = tenant_states(session, tenant)
        .into_iter()
        .filter(|s| s.app_name.as_deref() == Some(name))
        .filter_map(|s| s.app_object_id)
        .collect();
    ids.dedup();
    for id in ids {
        if let Some(a) = read(|| graph.get_application(&id)).await?
            && a.is_ours()
            && a.display_name == name
        {
            return Ok((Some(a), 0));
        }
    }
    // By the uniqueName this version creates it under, and by display name (apps made by
    // earlier versions have no uniqueName), at once.
    let (by_key, apps) = tokio::join!(
        read(|| graph.get_application_by_unique_name(name)),
        read(|| graph.find_applications(name))
    );
    let (by_key, apps) = (by_key?, apps?);
    let foreign_key = by_key.as_ref().is_some_and(|a| !a.is_ours());
    if let Some(a) = by_key.filter(Application::is_ours) {
        return Ok((Some(a), 0));
    }
    let foreign = apps.iter().filter(|a| !a.is_ours()).count();
    let ours = apps.into_iter().find(Application::is_ours);
    // A foreign app holding our uniqueName: ours could never be created under it.
    let foreign = if foreign_key { foreign.max(1) } else { foreign };
    Ok((ours.filter(|_| !foreign_key), foreign))
}

/// The tenant's role named `name` (ours or not). Role names are unique per tenant, and ours may
/// be assignable at other subscriptions only, so this looks at once at: the ids earlier runs
/// recorded and the GUID a run of ours would have written it under; the tenant's custom roles;
/// and each of `scopes`. When ARM cannot list the tenant's roles, the other subscriptions the
/// caller sees are searched too (at most 200).
pub(crate) async fn find_role(
    session: &Session,
    arm: &Arm,
    tenant: &str,
    name: &str,
    scopes: &[String],
) -> Result<Option<RoleDefinition>> {
    let name_eq = |r: &RoleDefinition| r.properties.role_name.eq_ignore_ascii_case(name);
    let mut ids: Vec<String> = tenant_states(session, tenant)
        .into_iter()
        .filter_map(|s| s.role_definition_id)
        .collect();
    ids.push(format!(
        "/providers/Microsoft.Authorization/roleDefinitions/{}",
        policy::role_definition_guid(tenant, name)
    ));
    ids.sort();
    ids.dedup();
    let recorded = async {
        for id in &ids {
            if let Ok(Some(r)) = read(|| arm.get_role_definition(id)).await
                && name_eq(&r)
            {
                return Some(r);
            }
        }
        None
    };
    // The first subscription alongside the tenant-wide list (no extra round trip when that
    // list cannot be read); the others only then.
    let first = &scopes[..scopes.len().min(1)];
    let (recorded, tenant_wide, at_first) = tokio::join!(
        recorded,
        read(|| arm.list_tenant_custom_roles()),
        roles_at(arm, name, first)
    );
    if let Some(r) = recorded {
        return Ok(Some(r));
    }
    let at_first = at_first?;
    match tenant_wide {
        // The tenant's custom roles: when ARM answers, that is the whole answer.
        Ok(all) => Ok(all.into_iter().find(|r| name_eq(r)).or(at_first)),
        Err(_) if at_first.is_some() => Ok(at_first),
        Err(_) => match roles_at(arm, name, &scopes[first.len()..]).await? {
            Some(r) => Ok(Some(r)),
            None => Ok(find_role_elsewhere(arm, name, scopes).await),
        },
    }
}

/// The role named `name` found at one of `scopes` (8 at a time).
async fn roles_at(arm: &Arm, name: &str, scopes: &[String]) -> Result<Option<RoleDefinition>> {
    let mut out = None;
    for chunk in scopes.chunks(8) {
        let found = futures::future::join_all(
            chunk
                .iter()
                .map(|scope| read(move || arm.find_role_definitions(scope, name))),
        )
        .await;
        for f in found {
            if let Some(r) = f?
                .into_iter()
                .find(|r| r.properties.role_name.eq_ignore_ascii_case(name))
            {
                out.get_or_insert(r);
            }
        }
    }
    Ok(out)
}

/// The role named `name` at the subscriptions the caller sees other than `skip` (a few at a
/// time; a tenant with very many subscriptions is only sampled).
async fn find_role_elsewhere(arm: &Arm, name: &str, skip: &[String]) -> Option<RoleDefinition> {
    let subs = read(|| arm.list_subscription_ids()).await.ok()?;
    let scopes: Vec<String> = subs
        .into_iter()
        .map(|s| scope_of(&s))
        .filter(|s| !skip.iter().any(|k| same_scope(k, s)))
        .take(200)
        .collect();
    for chunk in scopes.chunks(8) {
        let found =
            futures::future::join_all(chunk.iter().map(|s| arm.find_role_definitions(s, name)))
                .await;
        if let Some(r) = found
            .into_iter()
            .flatten()
            .flatten()
            .find(|r| r.properties.role_name.eq_ignore_ascii_case(name))
        {
            return Some(r);
        }
    }
    None
}

pub(crate) fn scope_of(subscription: &str) -> String {
    format!("/subscriptions/{subscription}")
}

pub(crate) fn same_scope(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Our role's assignment to our service principal at the subscription.
pub(crate) async fn find_assignment(
    arm: &Arm,
    subscription: &str,
    sp_id: &str,
    role: &RoleDefinition,
) -> Result<Option<RoleAssignment>> {
    find_assignment_at(arm, &scope_of(subscription), sp_id, role).await
}

/// Our role's assignment to our service principal at `scope` itself (a subscription, or a
/// management group: `/providers/Microsoft.Management/managementGroups/{id}`).
pub(crate) async fn find_assignment_at(
    arm: &Arm,
    scope: &str,
    sp_id: &str,
    role: &RoleDefinition,
) -> Result<Option<RoleAssignment>> {
    let scope = scope.to_string();
    let list = read(|| arm.list_role_assignments(&scope, sp_id)).await?;
    Ok(list.into_iter().find(|a| {
        arm::same_role(&a.properties.role_definition_id, &role.id)
            && a.properties.principal_id.eq_ignore_ascii_case(sp_id)
            && a.properties
                .scope
                .as_deref()
                .is_none_or(|s| same_scope(s, &scope))
    }))
}

/// The Spot account connected to `subscription` (Spot's `providerExternalId`), else the one
/// the state file records.
pub(crate) fn account_for<'a>(
    accounts: &'a [SpotAccount],
    subscription: &str,
    recorded: Option<&str>,
) -> Option<&'a SpotAccount> {
    accounts
        .iter()
        .find(|a| {
            a.provider_external_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(subscription))
        })
        .or_else(|| {
            recorded.and_then(|r| {
                accounts
                    .iter()
                    .find(|a| a.account_id == r && a.provider_external_id.is_none())
            })
        })
}

/// The app's password whose end matches what Spot reports, else the recorded one.
pub(crate) fn secret_in_use<'a>(
    app: &'a Application,
    creds: Option<&AzureCredentialsInfo>,
    recorded: Option<&str>,
) -> Option<&'a PasswordCredential> {
    let spot_end = creds.and_then(AzureCredentialsInfo::expiration);
    spot_end
        .and_then(|end| {
            app.password_credentials.iter().find(|p| {
                p.end_date_time
                    .is_some_and(|e| (e - end).abs() < time::Duration::seconds(2))
            })
        })
        .or_else(|| {
            recorded.and_then(|k| {
                app.password_credentials
                    .iter()
                    .find(|p| p.key_id.eq_ignore_ascii_case(k))
            })
        })
}
