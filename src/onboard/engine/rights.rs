//! The right to register applications (a user's directory roles, a service principal's
//! app roles), and the small helpers the steps share.

use super::*;

/// The name of the first app-management directory role in `roles`.
pub(super) fn app_role_named(roles: &[DirectoryRole]) -> Option<&'static str> {
    roles.iter().find_map(|r| {
        let t = r.role_template_id.as_deref()?;
        APP_REGISTRATION_ROLES
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(t))
            .map(|(_, name)| *name)
    })
}

pub(super) fn rights_unknown(e: &Error) -> String {
    format!("could not check the right to register applications ({e}); the write will tell")
}

/// A user may register applications through the tenant's "Users can register applications"
/// (`allowedToCreateApps`) or an app-management directory role. Denied only when both were
/// read and neither allows it.
pub(super) fn user_app_rights(
    tenant: &str,
    policy: Result<Option<bool>>,
    roles: Result<Vec<DirectoryRole>>,
) -> AppRights {
    if let Ok(roles) = &roles
        && let Some(name) = app_role_named(roles)
    {
        return AppRights::Allowed(format!("you hold the {name} directory role"));
    }
    match (policy, roles) {
        (Ok(Some(true)), _) => {
            AppRights::Allowed("users may register applications in this tenant".into())
        }
        (Ok(Some(false)), Ok(_)) => AppRights::Denied(format!(
            "you may not register applications in tenant {tenant}: 'Users can register applications' is off and you hold none of the Application Developer, Cloud Application Administrator, Application Administrator or Global Administrator roles; {APP_RIGHTS_HINT}"
        )),
        (Err(e), _) | (_, Err(e)) => AppRights::Unknown(rights_unknown(&e)),
        (Ok(None), Ok(_)) => AppRights::Unknown(
            "could not check the right to register applications (the tenant policy has no allowedToCreateApps); the write will tell".into(),
        ),
    }
}

/// A service principal may register applications through Graph's Application.ReadWrite.All or
/// .OwnedBy app role, or an app-management directory role. Denied only when both were read.
pub(super) fn service_principal_app_rights(
    sp_id: &str,
    client_id: &str,
    grants: Result<Vec<AppRoleAssignment>>,
    roles: Result<Vec<DirectoryRole>>,
) -> AppRights {
    if let Ok(grants) = &grants
        && let Some((_, name)) = APP_REGISTRATION_APP_ROLES.iter().find(|(id, _)| {
            grants
                .iter()
                .any(|g| g.app_role_id.eq_ignore_ascii_case(id))
        })
    {
        return AppRights::Allowed(format!(
            "the service principal holds Microsoft Graph {name}"
        ));
    }
    if let Ok(roles) = &roles
        && let Some(name) = app_role_named(roles)
    {
        return AppRights::Allowed(format!(
            "the service principal holds the {name} directory role"
        ));
    }
    match (grants, roles) {
        (Ok(_), Ok(_)) => AppRights::Denied(format!(
            "service principal {sp_id} (application {client_id}) may not register applications: it holds neither Microsoft Graph Application.ReadWrite.All nor Application.ReadWrite.OwnedBy (admin-consented) nor an app-management directory role; {SP_APP_RIGHTS_HINT}"
        )),
        (Err(e), _) | (_, Err(e)) => AppRights::Unknown(rights_unknown(&e)),
    }
}

/// `t` plus `months` calendar months (clamped to the month's last day).
/// The client secret lifetimes a plan accepts, in months (as `--secret-months`).
pub const SECRET_MONTHS: std::ops::RangeInclusive<u32> = 1..=120;

/// Read-merge-write rounds of the shared role before a run gives up on it.
pub(crate) const ROLE_MERGES: usize = 8;

/// A random pause of 50-400 ms: two writers that keep replacing each other's role drift apart.
pub(crate) async fn jitter() {
    let ms = 50 + (uuid::Uuid::new_v4().as_u128() % 350) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Whether the role lists `scope` among its assignable scopes.
pub(super) fn lists_scope(r: &RoleDefinition, scope: &str) -> bool {
    r.properties
        .assignable_scopes
        .iter()
        .any(|x| same_scope(x, scope))
}
