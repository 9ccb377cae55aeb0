//! Microsoft Graph v1.0: applications (+ addPassword / removePassword), servicePrincipals,
//! organization.

use super::state::{
    AppPolicy, AppRoleAssignment, Application, Audience, DirectoryRoleAssignment,
    FederatedCredential, OAuth2PermissionGrant, PasswordCredential, Principal, ServicePrincipal,
    World, app_role_assignment_id, directory_role_assignment_id, graph_sp_id, parse_time,
    random_token, rfc3339,
};
use super::{Ctx, Resp, Sim, authenticate, seed};
use axum::http::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

const SIGN_IN_AUDIENCES: [&str; 4] = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

/// How an entity is addressed: `/applications/{id}`, `/applications(appId='…')`,
/// `/applications(uniqueName='…')`, `/servicePrincipals(appId='…')`.
enum Key {
    Id(String),
    AppId(String),
    UniqueName(String),
}

impl Key {
    fn value(&self) -> &str {
        match self {
            Key::Id(s) | Key::AppId(s) | Key::UniqueName(s) => s,
        }
    }

    fn app(&self, a: &Application) -> bool {
        match self {
            Key::Id(id) => a.id.eq_ignore_ascii_case(id),
            Key::AppId(id) => a.app_id.eq_ignore_ascii_case(id),
            Key::UniqueName(n) => a
                .unique_name
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(n)),
        }
    }

    fn sp(&self, s: &ServicePrincipal) -> bool {
        match self {
            Key::Id(id) => s.id.eq_ignore_ascii_case(id),
            Key::AppId(id) => s.app_id.eq_ignore_ascii_case(id),
            // Not an alternate key of service principals.
            Key::UniqueName(_) => false,
        }
    }
}

/// `applications`, `applications(appId='x')`, `applications(uniqueName='x')` → (collection, key).
fn collection(seg: &str) -> (&str, Option<Key>) {
    if let Some((name, rest)) = seg.split_once('(') {
        let inner = rest.trim_end_matches(')');
        let literal = |v: &str| v.trim().trim_matches('\'').replace("''", "'");
        if let Some((k, v)) = inner.split_once('=') {
            if k.trim().eq_ignore_ascii_case("appId") {
                return (name, Some(Key::AppId(literal(v))));
            }
            if k.trim().eq_ignore_ascii_case("uniqueName") {
                return (name, Some(Key::UniqueName(literal(v))));
            }
        }
        return (name, Some(Key::Id(literal(inner))));
    }
    (seg, None)
}

fn not_found(ctx: &Ctx, what: &str) -> Resp {
    ctx.service.error(
        ctx,
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(ctx: &Ctx, message: &str) -> Resp {
    ctx.service.error(ctx, 400, "Request_BadRequest", message)
}

/// One `$filter` clause the simulator understands.
#[derive(Debug, PartialEq)]
enum Filter {
    /// `prop eq 'v'`
    Eq(String, String),
    /// `startswith(prop,'v')`
    StartsWith(String, String),
    /// `prop/any(c:c eq 'v')`: a collection property holds the value.
    Any(String, String),
}

impl Filter {
    fn property(&self) -> &str {
        match self {
            Filter::Eq(p, _) | Filter::StartsWith(p, _) | Filter::Any(p, _) => p,
        }
    }

    /// Graph compares strings without regard to case.
    fn accepts(&self, item: &Value) -> bool {
        let eq = |v: &Value, lit: &str| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(lit));
        match self {
            Filter::Eq(p, lit) => item.get(p).is_some_and(|v| eq(v, lit)),
            Filter::StartsWith(p, lit) => item.get(p).and_then(Value::as_str).is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with(&lit.to_ascii_lowercase())
            }),
            Filter::Any(p, lit) => item
                .get(p)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| eq(v, lit))),
        }
    }
}

/// `$filter`: `prop eq 'v'`, `startswith(prop,'v')` or `prop/any(x:x eq 'v')` (OData literals,
/// `''` = `'`).
fn parse_filter(filter: &str) -> Option<Filter> {
    let f = filter.trim();
    let literal = |s: &str| -> Option<String> {
        let s = s.trim();
        let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    };
    if let Some(rest) = f.strip_prefix("startswith(") {
        let rest = rest.strip_suffix(')')?;
        let (prop, lit) = rest.split_once(',')?;
        return Some(Filter::StartsWith(prop.trim().to_string(), literal(lit)?));
    }
    if let Some((prop, lambda)) = f.split_once("/any(") {
        let body = lambda.strip_suffix(')')?;
        let (var, cond) = body.split_once(':')?;
        let (lhs, lit) = cond.split_once(" eq ")?;
        if lhs.trim() != var.trim() || var.trim().is_empty() {
            return None;
        }
        return Some(Filter::Any(prop.trim().to_string(), literal(lit)?));
    }
    let (prop, lit) = f.split_once(" eq ")?;
    Some(Filter::Eq(prop.trim().to_string(), literal(lit)?))
}

fn select(ctx: &Ctx, mut v: Value) -> Value {
    if let (Some(sel), Some(map)) = (ctx.q("$select"), v.as_object_mut()) {
        let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
        map.retain(|k, _| k.starts_with('@') || keep.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    v
}

fn password_json(c: &PasswordCredential, with_secret: bool) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": c.display_name,
        "endDateTime": rfc3339(c.end),
        "hint": c.hint,
        "keyId": c.key_id,
        "secretText": if with_secret { Some(c.secret_text.clone()) } else { None },
        "startDateTime": rfc3339(c.start),
    })
}

fn app_json(w: &World, a: &Application) -> Value {
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appId": a.app_id,
        "applicationTemplateId": null,
        "createdDateTime": rfc3339(a.created),
        "description": null,
        "displayName": a.display_name,
        "uniqueName": a.unique_name,
        "identifierUris": a.identifier_uris,
        "notes": a.notes,
        "publisherDomain": w.tenant(&a.tenant_id).map(|t| t.domain.clone()),
        "signInAudience": a.sign_in_audience,
        "tags": a.tags,
        "keyCredentials": [],
        "passwordCredentials": a.password_credentials.iter().map(|c| password_json(c, false)).collect::<Vec<_>>(),
        "requiredResourceAccess": a.required_resource_access,
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": a.redirect_uris,
            "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false},
        },
    })
}

fn sp_json(w: &World, s: &ServicePrincipal) -> Value {
    let app = w.applications.iter().find(|a| a.app_id == s.app_id);
    let mut v = json!({
        "id": s.id,
        "deletedDateTime": null,
        "accountEnabled": s.account_enabled,
        "appDisplayName": app.map(|a| a.display_name.clone()),
        "appId": s.app_id,
        "appOwnerOrganizationId": app.map(|a| a.tenant_id.clone()).unwrap_or_else(|| s.tenant_id.clone()),
        "displayName": s.display_name,
        // The app's appId and its identifier URIs (resources/serviceprincipal).
        "servicePrincipalNames": std::iter::once(s.app_id.clone())
            .chain(app.map(|a| a.identifier_uris.clone()).unwrap_or_default())
            .collect::<Vec<_>>(),
        "servicePrincipalType": s.kind,
        "signInAudience": app.map(|a| a.sign_in_audience.clone()),
        "tags": [],
        "keyCredentials": [],
        "passwordCredentials": [],
        "appRoles": [],
    });
    if s.app_id == seed::MICROSOFT_GRAPH_APP_ID {
        // Microsoft Graph's service principal: its app is Microsoft's, its app roles are the
        // application permissions (with the ids Microsoft publishes).
        v["appDisplayName"] = json!("Microsoft Graph");
        v["appOwnerOrganizationId"] = json!(seed::MICROSOFT_SERVICES_TENANT_ID);
        v["signInAudience"] = json!("AzureADMultipleOrgs");
        v["servicePrincipalNames"] = json!([
            seed::MICROSOFT_GRAPH_APP_ID,
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
        ]);
        v["appRoles"] = json!(
            seed::GRAPH_APP_ROLES
                .iter()
                .map(|r| json!({
                    "allowedMemberTypes": ["Application"],
                    "description": format!("Allows the app to {} without a signed-in user.", r.display_name.to_lowercase()),
                    "displayName": r.display_name,
                    "id": r.id,
                    "isEnabled": true,
                    "origin": "Application",
                    "value": r.value,
                }))
                .collect::<Vec<_>>()
        );
    }
    v
}

fn with_context(sim: &Sim, mut v: Value, context: &str) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "@odata.context".into(),
            json!(format!("{}/v1.0/$metadata#{context}", sim.graph_base())),
        );
    }
    v
}

/// Graph's default page size for directory objects, and the largest `$top` it takes.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 999;

/// A collection reply: `$filter` on `props`, then `$top` / `$skiptoken` paging with an absolute
/// `@odata.nextLink`, then `$select`.
fn list(sim: &Sim, ctx: &Ctx, context: &str, items: Vec<Value>, props: &[&str]) -> Resp {
    let mut items = items;
    if let Some(f) = ctx.q("$filter") {
        let Some(filter) = parse_filter(f) else {
            return ctx.service.error(
                ctx,
                400,
                "Request_UnsupportedQuery",
                &format!("Unsupported or invalid query filter clause specified: '{f}'."),
            );
        };
        if !props
            .iter()
            .any(|p| p.eq_ignore_ascii_case(filter.property()))
        {
            return ctx.service.error(
                ctx,
                400,
                "Request_UnsupportedQuery",
                &format!(
                    "Unsupported or invalid query filter clause specified for property '{}' of resource '{context}'.",
                    filter.property()
                ),
            );
        }
        items.retain(|v| filter.accepts(v));
    }
    let top = match ctx.q("$top") {
        None => PAGE_DEFAULT,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => {
                return ctx.service.error(
                    ctx,
                    400,
                    "Request_UnsupportedQuery",
                    &format!("Invalid page size specified: '{t}'. Must be between 1 and {PAGE_MAX} inclusive."),
                );
            }
        },
    };
    let skip = match ctx.q("$skiptoken") {
        None => 0,
        Some(tok) => match decode_skiptoken(tok) {
            Some(n) => n,
            None => {
                return ctx.service.error(
                    ctx,
                    400,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                );
            }
        },
    };
    let total = items.len();
    let value: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|v| select(ctx, v))
        .collect();
    let mut body = json!({"value": value});
    if skip + top < total {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in ctx
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
        {
            q.append_pair(k, v);
        }
        q.append_pair("$skiptoken", &encode_skiptoken(skip + top));
        body["@odata.nextLink"] = json!(format!("{}{}?{}", sim.graph_base(), ctx.path, q.finish()));
    }
    Resp::json(200, with_context(sim, body, context))
}

/// An opaque page token (Graph's are opaque too): the offset of the next page.
fn encode_skiptoken(offset: usize) -> String {
    format!("RFNwdAIAAQAAA{offset:08x}")
}

fn decode_skiptoken(tok: &str) -> Option<usize> {
    usize::from_str_radix(tok.strip_prefix("RFNwdAIAAQAAA")?, 16).ok()
}

fn may_write(w: &World, tenant: &str, principal: &Principal) -> bool {
    w.may_register_apps(tenant, principal)
}

/// `GET /policies/authorizationPolicy`: a single object in v1.0.
fn authorization_policy(sim: &Sim, w: &World, tenant: &str) -> Value {
    let allowed = w.tenant(tenant).is_some_and(|t| t.allowed_to_create_apps);
    with_context(
        sim,
        json!({
            "id": "authorizationPolicy",
            "displayName": "Authorization Policy",
            "description": "Used to manage authorization related settings across the company.",
            "allowInvitesFrom": "everyone",
            "allowedToSignUpEmailBasedSubscriptions": true,
            "allowedToUseSSPR": true,
            "allowEmailVerifiedUsersToJoinOrganization": false,
            "blockMsolPowerShell": false,
            "guestUserRoleId": "10dae51f-b6af-4016-8d66-8c2a99b929b3",
            "defaultUserRolePermissions": {
                "allowedToCreateApps": allowed,
                "allowedToCreateSecurityGroups": true,
                "allowedToCreateTenants": true,
                "allowedToReadBitlockerKeysForOwnedDevice": true,
                "allowedToReadOtherUsers": true,
                "permissionGrantPoliciesAssigned": ["ManagePermissionGrantsForSelf.microsoft-user-default-legacy"],
            },
        }),
        "policies/authorizationPolicy/$entity",
    )
}

fn directory_role_name(template: &str) -> &'static str {
    match template {
        seed::DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN => "Privileged Role Administrator",
        seed::DIRECTORY_ROLE_GLOBAL_ADMIN => "Global Administrator",
        seed::DIRECTORY_ROLE_APPLICATION_ADMIN => "Application Administrator",
        seed::DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN => "Cloud Application Administrator",
        seed::DIRECTORY_ROLE_APPLICATION_DEVELOPER => "Application Developer",
        _ => "Directory role",
    }
}

/// The directory roles `principal_id` holds in `tenant`, as `memberOf` lists them.
fn directory_roles(w: &World, tenant: &str, principal_id: &str) -> Vec<Value> {
    w.directory_roles_of(tenant, principal_id)
        .into_iter()
        .map(|template| {
            // The activated role's object id is per tenant.
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{tenant}/{template}").as_bytes(),
            );
            json!({
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": id.to_string(),
                "deletedDateTime": null,
                "description": null,
                "displayName": directory_role_name(template),
                "roleTemplateId": template,
            })
        })
        .collect()
}

fn app_role_assignment_json(a: &AppRoleAssignment) -> Value {
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": rfc3339(a.created),
        "principalDisplayName": a.principal_display_name,
        "principalId": a.principal_id,
        "principalType": a.principal_type,
        "resourceDisplayName": a.resource_display_name,
        "resourceId": a.resource_id,
    })
}

fn directory_role_assignment_json(a: &DirectoryRoleAssignment) -> Value {
    json!({
        "id": a.id,
        "roleDefinitionId": a.role_definition_id,
        "principalId": a.principal_id,
        "directoryScopeId": a.directory_scope_id,
    })
}

/// Directory roles a user needs to grant app roles (serviceprincipal-post-approleassignments,
/// delegated); granting Microsoft Graph's own app roles takes Privileged Role Administrator or
/// Global Administrator (entra/identity/enterprise-apps/grant-admin-consent).
const APP_ROLE_GRANT_ROLES: [&str; 4] = [
    seed::DIRECTORY_ROLE_GLOBAL_ADMIN,
    seed::DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN,
    seed::DIRECTORY_ROLE_APPLICATION_ADMIN,
    seed::DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN,
];
const GRAPH_GRANT_ROLES: [&str; 2] = [
    seed::DIRECTORY_ROLE_GLOBAL_ADMIN,
    seed::DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN,
];

/// May `principal` grant (or revoke) an app role of the resource `resource_id`? An app needs
/// AppRoleAssignment.ReadWrite.All and a read of applications; a user one of the roles above.
fn may_grant_app_roles(w: &World, tenant: &str, principal: &Principal, resource_id: &str) -> bool {
    match principal {
        Principal::ServicePrincipal { id, .. } => {
            w.has_graph_permission(tenant, id, &["AppRoleAssignment.ReadWrite.All"])
                && w.has_graph_permission(
                    tenant,
                    id,
                    &[
                        "Application.Read.All",
                        "Application.ReadWrite.All",
                        "Directory.Read.All",
                        "Directory.ReadWrite.All",
                    ],
                )
        }
        Principal::User { id } => {
            let graph = resource_id.eq_ignore_ascii_case(&graph_sp_id(tenant));
            let allowed: &[&str] = if graph {
                &GRAPH_GRANT_ROLES
            } else {
                &APP_ROLE_GRANT_ROLES
            };
            w.directory_roles_of(tenant, id)
                .iter()
                .any(|r| allowed.contains(r))
        }
    }
}

/// May `principal` create or delete directory role assignments
/// (rbacapplication-post-roleassignments: RoleManagement.ReadWrite.Directory; a user needs
/// Privileged Role Administrator, or Global Administrator).
fn may_manage_directory_roles(w: &World, tenant: &str, principal: &Principal) -> bool {
    match principal {
        Principal::ServicePrincipal { id, .. } => {
            w.has_graph_permission(tenant, id, &["RoleManagement.ReadWrite.Directory"])
        }
        Principal::User { id } => w
            .directory_roles_of(tenant, id)
            .iter()
            .any(|r| GRAPH_GRANT_ROLES.contains(r)),
    }
}

/// May `principal` read directory role assignments (rbacapplication-list-roleassignments):
/// an app needs RoleManagement.Read.Directory (or more); users read them (Directory.Read.All
/// is part of every member's default permissions).
fn may_read_directory_roles(w: &World, tenant: &str, principal: &Principal) -> bool {
    match principal {
        Principal::ServicePrincipal { id, .. } => w.has_graph_permission(
            tenant,
            id,
            &[
                "RoleManagement.Read.Directory",
                "RoleManagement.ReadWrite.Directory",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
        ),
        Principal::User { .. } => true,
    }
}

/// The app roles `resource` defines (only Microsoft Graph's service principal has any here);
/// the default role `00000000-…` (no specific role) is valid for every resource.
fn resource_defines(resource: &ServicePrincipal, app_role_id: &str) -> bool {
    app_role_id == "00000000-0000-0000-0000-000000000000"
        || (resource.app_id == seed::MICROSOFT_GRAPH_APP_ID
            && seed::GRAPH_APP_ROLES
                .iter()
                .any(|r| r.id.eq_ignore_ascii_case(app_role_id)))
}

/// `POST /servicePrincipals/{id}/appRoleAssignments` (`{id}` = the principal) or
/// `POST /servicePrincipals/{id}/appRoleAssignedTo` (`{id}` = the resource): body
/// `{principalId, resourceId, appRoleId}` → 201 with the appRoleAssignment.
fn grant_app_role(
    sim: &Sim,
    ctx: &Ctx,
    w: &mut World,
    tenant: &str,
    caller: &Principal,
    path_sp: &str,
    path_is_resource: bool,
) -> Resp {
    let Some(body) = ctx.json().filter(Value::is_object) else {
        return unreadable(ctx);
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(principal_id), Some(resource_id), Some(app_role_id)) = (
        field("principalId"),
        field("resourceId"),
        field("appRoleId"),
    ) else {
        let missing = ["principalId", "resourceId", "appRoleId"]
            .into_iter()
            .find(|k| field(k).is_none())
            .unwrap_or("principalId");
        return bad_request(
            ctx,
            &format!(
                "A value is required for property '{missing}' of resource 'AppRoleAssignment'."
            ),
        );
    };
    let (path_field, path_value) = if path_is_resource {
        ("resourceId", &resource_id)
    } else {
        ("principalId", &principal_id)
    };
    if !path_value.eq_ignore_ascii_case(path_sp) {
        return bad_request(
            ctx,
            &format!(
                "The {path_field} '{path_value}' of the appRoleAssignment does not match the service principal '{path_sp}' of the request URL."
            ),
        );
    }
    let Some(resource) = w
        .service_principals
        .iter()
        .find(|s| s.tenant_id == tenant && s.id.eq_ignore_ascii_case(&resource_id))
    else {
        return not_found(ctx, &resource_id);
    };
    let (resource_id, resource_name, resource_app) = (
        resource.id.clone(),
        resource.display_name.clone(),
        resource.app_id.clone(),
    );
    if !resource_defines(resource, &app_role_id) {
        return bad_request(
            ctx,
            &format!("Permission being assigned was not found on application '{resource_app}'."),
        );
    }
    let principal = if let Some(sp) = w
        .service_principals
        .iter()
        .find(|s| s.tenant_id == tenant && s.id.eq_ignore_ascii_case(&principal_id))
    {
        (sp.id.clone(), sp.display_name.clone(), "ServicePrincipal")
    } else if let Some(u) = w
        .users
        .iter()
        .find(|u| u.tenant == tenant && u.id.eq_ignore_ascii_case(&principal_id))
    {
        (u.id.clone(), u.name.clone(), "User")
    } else {
        return not_found(ctx, &principal_id);
    };
    if !may_grant_app_roles(w, tenant, caller, &resource_id) {
        return denied(ctx);
    }
    if w.app_role_assignments.iter().any(|a| {
        a.tenant_id == tenant
            && a.principal_id.eq_ignore_ascii_case(&principal.0)
            && a.resource_id.eq_ignore_ascii_case(&resource_id)
            && a.app_role_id.eq_ignore_ascii_case(&app_role_id)
    }) {
        return bad_request(
            ctx,
            "Permission being assigned already exists on the object.",
        );
    }
    let a = AppRoleAssignment {
        id: app_role_assignment_id(&principal.0, &format!("{resource_id}/{app_role_id}")),
        tenant_id: tenant.to_string(),
        app_role_id: app_role_id.to_ascii_lowercase(),
        principal_id: principal.0,
        principal_type: principal.2,
        principal_display_name: principal.1,
        resource_id,
        resource_display_name: resource_name,
        created: OffsetDateTime::now_utc(),
    };
    let rel = if path_is_resource {
        "appRoleAssignedTo"
    } else {
        "appRoleAssignments"
    };
    let v = with_context(
        sim,
        app_role_assignment_json(&a),
        &format!("servicePrincipals('{path_sp}')/{rel}/$entity"),
    );
    w.app_role_assignments.push(a);
    Resp::json(201, v)
}

fn grant_json(g: &OAuth2PermissionGrant) -> Value {
    json!({
        "id": g.id,
        "clientId": g.client_id,
        "consentType": g.consent_type,
        "principalId": g.principal_id,
        "resourceId": g.resource_id,
        "scope": g.scope,
    })
}

/// `/oauth2PermissionGrants[/{id}]` (oauth2permissiongrant-post, -list, -get, -update,
/// -delete): delegated grants. Writes need, for a user, one of the roles that may grant app
/// roles (Cloud Application Administrator and up); apps are refused (DelegatedPermissionGrant.
/// ReadWrite.All is not among the simulated Graph app roles).
fn oauth2_permission_grants(
    sim: &Sim,
    ctx: &Ctx,
    w: &mut World,
    tenant: &str,
    caller: &Principal,
    id: Option<&str>,
) -> Resp {
    let may_write = match caller {
        Principal::User { id } => w
            .directory_roles_of(tenant, id)
            .iter()
            .any(|r| APP_ROLE_GRANT_ROLES.contains(r)),
        Principal::ServicePrincipal { .. } => false,
    };
    let pos = |w: &World, gid: &str| {
        w.oauth2_permission_grants
            .iter()
            .position(|g| g.tenant_id == tenant && g.id == gid)
    };
    match (ctx.method.as_str(), id) {
        ("GET", None) => {
            let items = w
                .oauth2_permission_grants
                .iter()
                .filter(|g| g.tenant_id == tenant)
                .map(grant_json)
                .collect();
            list(
                sim,
                ctx,
                "oauth2PermissionGrants",
                items,
                &["clientId", "resourceId", "consentType", "principalId", "id"],
            )
        }
        ("GET", Some(gid)) => match pos(w, gid) {
            Some(i) => Resp::json(
                200,
                with_context(
                    sim,
                    select(ctx, grant_json(&w.oauth2_permission_grants[i])),
                    "oauth2PermissionGrants/$entity",
                ),
            ),
            None => not_found(ctx, gid),
        },
        (_, _) if !may_write => denied(ctx),
        ("POST", None) => {
            let Some(body) = ctx.json().filter(Value::is_object) else {
                return unreadable(ctx);
            };
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(client), Some(resource), Some(consent)) =
                (field("clientId"), field("resourceId"), field("consentType"))
            else {
                let missing = ["clientId", "consentType", "resourceId"]
                    .into_iter()
                    .find(|k| field(k).is_none())
                    .unwrap_or("clientId");
                return bad_request(
                    ctx,
                    &format!(
                        "A value is required for property '{missing}' of resource 'OAuth2PermissionGrant'."
                    ),
                );
            };
            let principal = field("principalId");
            match (consent.as_str(), &principal) {
                ("AllPrincipals", None) | ("Principal", Some(_)) => {}
                _ => {
                    return bad_request(
                        ctx,
                        "consentType must be 'AllPrincipals' (without principalId) or 'Principal' (with principalId).",
                    );
                }
            }
            for sp in [&client, &resource] {
                if !w
                    .service_principals
                    .iter()
                    .any(|s| s.tenant_id == tenant && s.id.eq_ignore_ascii_case(sp))
                {
                    return not_found(ctx, sp);
                }
            }
            if w.oauth2_permission_grants.iter().any(|g| {
                g.tenant_id == tenant
                    && g.client_id.eq_ignore_ascii_case(&client)
                    && g.resource_id.eq_ignore_ascii_case(&resource)
                    && g.consent_type == consent
                    && g.principal_id == principal
            }) {
                return ctx.service.error(
                    ctx,
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Permission entry already exists.",
                );
            }
            let g = OAuth2PermissionGrant {
                id: app_role_assignment_id(
                    &client,
                    &format!(
                        "{resource}/{consent}/{}",
                        principal.as_deref().unwrap_or("")
                    ),
                ),
                tenant_id: tenant.to_string(),
                client_id: client.to_ascii_lowercase(),
                consent_type: consent,
                principal_id: principal,
                resource_id: resource.to_ascii_lowercase(),
                scope: field("scope").unwrap_or_default(),
            };
            let v = with_context(sim, grant_json(&g), "oauth2PermissionGrants/$entity");
            w.oauth2_permission_grants.push(g);
            Resp::json(201, v)
        }
        ("PATCH", Some(gid)) => {
            let Some(i) = pos(w, gid) else {
                return not_found(ctx, gid);
            };
            let Some(scope) = ctx
                .json()
                .and_then(|b| b.get("scope").and_then(Value::as_str).map(str::to_string))
            else {
                return bad_request(ctx, "Only 'scope' can be updated.");
            };
            w.oauth2_permission_grants[i].scope = scope;
            Resp::empty(204)
        }
        ("DELETE", Some(gid)) => match pos(w, gid) {
            Some(i) => {
                w.oauth2_permission_grants.remove(i);
                Resp::empty(204)
            }
            None => not_found(ctx, gid),
        },
        _ => unsupported(ctx, "oauth2PermissionGrants"),
    }
}

/// `/roleManagement/directory/roleAssignments[/{id}]`: list (`$filter` on principalId,
/// roleDefinitionId), get, create (201), delete (204).
fn directory_role_assignments(
    sim: &Sim,
    ctx: &Ctx,
    w: &mut World,
    tenant: &str,
    caller: &Principal,
    id: Option<&str>,
) -> Resp {
    let m = ctx.method.as_str();
    match (m, id) {
        ("GET", _) if !may_read_directory_roles(w, tenant, caller) => denied(ctx),
        ("GET", None) => {
            let items = w
                .directory_role_assignments
                .iter()
                .filter(|a| a.tenant_id == tenant)
                .map(directory_role_assignment_json)
                .collect();
            list(
                sim,
                ctx,
                "roleManagement/directory/roleAssignments",
                items,
                &["principalId", "roleDefinitionId", "directoryScopeId", "id"],
            )
        }
        ("GET", Some(id)) => match w
            .directory_role_assignments
            .iter()
            .find(|a| a.tenant_id == tenant && a.id == id)
        {
            Some(a) => Resp::json(
                200,
                with_context(
                    sim,
                    select(ctx, directory_role_assignment_json(a)),
                    "roleManagement/directory/roleAssignments/$entity",
                ),
            ),
            None => not_found(ctx, id),
        },
        ("POST", None) => {
            let Some(body) = ctx.json().filter(Value::is_object) else {
                return unreadable(ctx);
            };
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(role), Some(principal_id)) =
                (field("roleDefinitionId"), field("principalId"))
            else {
                let missing = if field("roleDefinitionId").is_none() {
                    "roleDefinitionId"
                } else {
                    "principalId"
                };
                return bad_request(
                    ctx,
                    &format!(
                        "A value is required for property '{missing}' of resource 'UnifiedRoleAssignment'."
                    ),
                );
            };
            let Some(scope) = field("directoryScopeId") else {
                return bad_request(
                    ctx,
                    "Either directoryScopeId or appScopeId must be provided (only directoryScopeId is simulated).",
                );
            };
            if scope != "/" {
                return bad_request(
                    ctx,
                    &format!(
                        "Invalid value specified for property 'directoryScopeId': '{scope}' (only '/' is simulated)."
                    ),
                );
            }
            if directory_role_name(&role.to_ascii_lowercase()) == "Directory role" {
                return not_found(ctx, &role);
            }
            let exists = w
                .users
                .iter()
                .any(|u| u.tenant == tenant && u.id.eq_ignore_ascii_case(&principal_id))
                || w.service_principals
                    .iter()
                    .any(|s| s.tenant_id == tenant && s.id.eq_ignore_ascii_case(&principal_id));
            if !exists {
                return not_found(ctx, &principal_id);
            }
            if !may_manage_directory_roles(w, tenant, caller) {
                return denied(ctx);
            }
            let role = role.to_ascii_lowercase();
            let principal_id = principal_id.to_ascii_lowercase();
            if w.directory_roles_of(tenant, &principal_id)
                .contains(&role.as_str())
            {
                return bad_request(
                    ctx,
                    "A conflicting object with one or more of the specified property values is present in the directory.",
                );
            }
            let a = DirectoryRoleAssignment {
                id: directory_role_assignment_id(&role, &principal_id),
                tenant_id: tenant.to_string(),
                role_definition_id: role,
                principal_id,
                directory_scope_id: scope,
            };
            let v = with_context(
                sim,
                directory_role_assignment_json(&a),
                "roleManagement/directory/roleAssignments/$entity",
            );
            w.directory_role_assignments.push(a);
            Resp::json(201, v)
        }
        ("DELETE", Some(id)) => {
            if !may_manage_directory_roles(w, tenant, caller) {
                return denied(ctx);
            }
            match w
                .directory_role_assignments
                .iter()
                .position(|a| a.tenant_id == tenant && a.id == id)
            {
                Some(i) => {
                    w.directory_role_assignments.remove(i);
                    Resp::empty(204)
                }
                None => not_found(ctx, id),
            }
        }
        _ => unsupported(ctx, "roleAssignments"),
    }
}

/// start + 24 months (Feb 29 → Feb 28).
fn two_years_after(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_year(t.year() + 2)
        .or_else(|_| (t - time::Duration::days(1)).replace_year(t.year() + 2))
        .unwrap_or(t + time::Duration::days(730))
}

fn new_secret() -> String {
    let r = random_token("");
    format!("{}8Q~{}", &r[..3], &r[3..37])
}

pub(crate) fn handle(sim: &Sim, ctx: &Ctx) -> Resp {
    let mut w = sim.world();
    let (tenant, principal) = match authenticate(sim, &w, ctx, Audience::Graph) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let segs = ctx.segments();
    let Some((&"v1.0", rest)) = segs.split_first() else {
        return ctx.service.error(
            ctx,
            400,
            "BadRequest",
            "Invalid version: only v1.0 is simulated.",
        );
    };
    let Some((first, rest)) = rest.split_first() else {
        return ctx.service.error(
            ctx,
            400,
            "BadRequest",
            "Resource not found for the segment ''.",
        );
    };
    if first.eq_ignore_ascii_case("roleManagement") {
        return match rest {
            [dir, ra, tail @ ..]
                if dir.eq_ignore_ascii_case("directory")
                    && ra.eq_ignore_ascii_case("roleAssignments")
                    && tail.len() <= 1 =>
            {
                directory_role_assignments(
                    sim,
                    ctx,
                    &mut w,
                    &tenant,
                    &principal,
                    tail.first().copied(),
                )
            }
            _ => unsupported(ctx, rest.first().copied().unwrap_or(first)),
        };
    }
    if first.eq_ignore_ascii_case("oauth2PermissionGrants") && rest.len() <= 1 {
        return oauth2_permission_grants(
            sim,
            ctx,
            &mut w,
            &tenant,
            &principal,
            rest.first().copied(),
        );
    }
    let (coll, paren_key) = collection(first);
    // The segment after the action: `…/appRoleAssignments/{id}`.
    let (key, action, item) = match paren_key {
        Some(k) => (Some(k), rest.first().copied(), rest.get(1).copied()),
        None => (
            rest.first().map(|s| Key::Id(s.to_string())),
            rest.get(1).copied(),
            rest.get(2).copied(),
        ),
    };
    let m = &ctx.method;
    match (coll, key, action) {
        ("organization", None, None) if m == Method::GET => {
            let orgs: Vec<Value> = w
                .tenant(&tenant)
                .map(|t| {
                    json!({
                        "id": t.id, "displayName": t.name, "tenantType": "AAD",
                        "verifiedDomains": [{"capabilities": "None", "isDefault": true, "isInitial": true, "name": t.domain, "type": "Managed"}],
                    })
                })
                .into_iter()
                .collect();
            list(sim, ctx, "organization", orgs, &["id"])
        }
        ("policies", Some(Key::Id(k)), None) if k == "authorizationPolicy" && m == Method::GET => {
            // Needs Policy.Read.All: granted to users, held by none of the seeded apps.
            if matches!(principal, Principal::ServicePrincipal { .. }) {
                return denied(ctx);
            }
            Resp::json(200, authorization_policy(sim, &w, &tenant))
        }
        ("policies", Some(Key::Id(k)), None)
            if k.eq_ignore_ascii_case("defaultAppManagementPolicy") && m == Method::GET =>
        {
            if !may_read_app_policies(&w, &tenant, &principal) {
                return denied(ctx);
            }
            let v = tenant_policy(&w, &tenant);
            Resp::json(
                200,
                with_context(
                    sim,
                    select(ctx, v),
                    "policies/defaultAppManagementPolicy/$entity",
                ),
            )
        }
        ("me", key, action) if m == Method::GET => {
            let Principal::User { id } = &principal else {
                return ctx.service.error(
                    ctx,
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                );
            };
            match (key, action) {
                (None, None) => {
                    let Some(u) = w.user(id) else {
                        return not_found(ctx, id);
                    };
                    Resp::json(
                        200,
                        with_context(
                            sim,
                            select(
                                ctx,
                                json!({"id": u.id, "displayName": u.name, "userPrincipalName": u.upn}),
                            ),
                            "users/$entity",
                        ),
                    )
                }
                // No groups are simulated: memberOf and transitiveMemberOf list the same
                // directory roles, with or without the type cast.
                (Some(Key::Id(rel)), cast)
                    if (rel == "memberOf" || rel == "transitiveMemberOf")
                        && cast.is_none_or(|c| c == "microsoft.graph.directoryRole") =>
                {
                    let items = directory_roles(&w, &tenant, id);
                    list(
                        sim,
                        ctx,
                        "directoryObjects",
                        items,
                        &["roleTemplateId", "displayName", "id"],
                    )
                }
                _ => unsupported(ctx, first),
            }
        }
        ("users", None, None) if m == Method::GET => {
            let items = w
                .users
                .iter()
                .filter(|u| u.tenant.eq_ignore_ascii_case(&tenant))
                .map(user_json)
                .collect();
            list(
                sim,
                ctx,
                "users",
                items,
                &["userPrincipalName", "displayName", "id", "mail"],
            )
        }
        ("users", Some(key), None) if m == Method::GET => {
            let v = key.value();
            let found = w.users.iter().find(|u| {
                u.tenant.eq_ignore_ascii_case(&tenant)
                    && (u.id.eq_ignore_ascii_case(v) || u.upn.eq_ignore_ascii_case(v))
            });
            match found {
                Some(u) => Resp::json(
                    200,
                    with_context(sim, select(ctx, user_json(u)), "users/$entity"),
                ),
                None => not_found(ctx, v),
            }
        }
        ("directoryObjects", Some(Key::Id(op)), None) if op == "getByIds" && m == Method::POST => {
            get_by_ids(sim, ctx, &w, &tenant)
        }
        ("applications", None, None) if m == Method::GET => {
            let items = w
                .applications
                .iter()
                .filter(|a| a.tenant_id == tenant)
                .map(|a| app_json(&w, a))
                .collect();
            list(
                sim,
                ctx,
                "applications",
                items,
                &["displayName", "appId", "id", "uniqueName", "identifierUris"],
            )
        }
        ("applications", None, None) if m == Method::POST => {
            if !may_write(&w, &tenant, &principal) {
                return denied(ctx);
            }
            let Some(body) = ctx.json().filter(Value::is_object) else {
                return unreadable(ctx);
            };
            create_app(sim, ctx, &mut w, &tenant, &body, None)
        }
        ("servicePrincipals", None, None) if m == Method::GET => {
            let items = w
                .service_principals
                .iter()
                .filter(|s| s.tenant_id == tenant)
                .map(|s| sp_json(&w, s))
                .collect();
            list(
                sim,
                ctx,
                "servicePrincipals",
                items,
                &["appId", "displayName", "id", "servicePrincipalNames"],
            )
        }
        ("servicePrincipals", None, None) if m == Method::POST => {
            if !may_write(&w, &tenant, &principal) {
                return denied(ctx);
            }
            let body = ctx.json().unwrap_or(Value::Null);
            create_sp(sim, ctx, &mut w, &tenant, &body)
        }
        ("applications", Some(key), action) => {
            let found = w
                .applications
                .iter()
                .position(|a| a.tenant_id == tenant && key.app(a));
            let Some(i) = found else {
                // The upsert: `PATCH /applications(uniqueName='…')` with `Prefer: create-if-missing`.
                if m == Method::PATCH
                    && action.is_none()
                    && let Key::UniqueName(name) = &key
                    && create_if_missing(ctx)
                {
                    if !may_write(&w, &tenant, &principal) {
                        return denied(ctx);
                    }
                    let Some(body) = ctx.json().filter(Value::is_object) else {
                        return unreadable(ctx);
                    };
                    return create_app(sim, ctx, &mut w, &tenant, &body, Some(name.clone()));
                }
                return not_found(ctx, key.value());
            };
            match (m.as_str(), action) {
                ("GET", None) => Resp::json(
                    200,
                    with_context(
                        sim,
                        select(ctx, app_json(&w, &w.applications[i])),
                        "applications/$entity",
                    ),
                ),
                ("GET", Some(rel)) if rel.eq_ignore_ascii_case("appManagementPolicies") => {
                    if !may_read_app_policies(&w, &tenant, &principal) {
                        return denied(ctx);
                    }
                    let app_obj = w.applications[i].id.clone();
                    let items = w
                        .app_policies
                        .iter()
                        .filter(|p| p.tenant_id == tenant && p.applies_to.contains(&app_obj))
                        .map(|p| p.body.clone())
                        .collect();
                    list(
                        sim,
                        ctx,
                        "policies/appManagementPolicies",
                        items,
                        &["id", "displayName"],
                    )
                }
                (verb, Some(rel)) if rel.eq_ignore_ascii_case("federatedIdentityCredentials") => {
                    let app_obj = w.applications[i].id.clone();
                    if verb != "GET" && !may_write(&w, &tenant, &principal) {
                        return denied(ctx);
                    }
                    federated_credentials(sim, ctx, &mut w, &app_obj, item)
                }
                (_, _) if !may_write(&w, &tenant, &principal) => denied(ctx),
                ("PATCH", None) => {
                    let Some(body) = ctx.json().filter(Value::is_object) else {
                        return unreadable(ctx);
                    };
                    match update_app(ctx, &mut w.applications[i], &body) {
                        Ok(()) => Resp::empty(204),
                        Err(r) => r,
                    }
                }
                ("DELETE", None) => {
                    let app = w.applications.remove(i);
                    w.service_principals
                        .retain(|s| !(s.app_id == app.app_id && s.tenant_id == app.tenant_id));
                    Resp::empty(204)
                }
                ("POST", Some("addPassword")) => {
                    let verdict = secret_policy(&w, &w.applications[i]);
                    add_password(sim, ctx, &mut w.applications[i], verdict)
                }
                ("POST", Some("removePassword")) => {
                    let body = ctx.json().unwrap_or(Value::Null);
                    let Some(key_id) = body.get("keyId").and_then(Value::as_str) else {
                        return bad_request(
                            ctx,
                            "A value is required for property 'keyId' of resource 'removePassword'.",
                        );
                    };
                    let app = &mut w.applications[i];
                    let before = app.password_credentials.len();
                    app.password_credentials
                        .retain(|c| !c.key_id.eq_ignore_ascii_case(key_id));
                    if app.password_credentials.len() == before {
                        return bad_request(
                            ctx,
                            &format!("No password credential found with keyId '{key_id}'."),
                        );
                    }
                    Resp::empty(204)
                }
                _ => unsupported(ctx, first),
            }
        }
        (
            "servicePrincipals",
            Some(key),
            Some(rel @ ("appRoleAssignments" | "appRoleAssignedTo")),
        ) => {
            let found = w
                .service_principals
                .iter()
                .find(|s| s.tenant_id == tenant && key.sp(s));
            let Some(sp_id) = found.map(|s| s.id.clone()) else {
                return not_found(ctx, key.value());
            };
            // appRoleAssignments: the grants held by this principal; appRoleAssignedTo: the
            // grants of this resource's app roles.
            let resource_side = rel == "appRoleAssignedTo";
            let mine = |a: &AppRoleAssignment| {
                a.tenant_id == tenant
                    && if resource_side {
                        a.resource_id == sp_id
                    } else {
                        a.principal_id == sp_id
                    }
            };
            match (m.as_str(), item) {
                ("GET", None) => {
                    let items = w
                        .app_role_assignments
                        .iter()
                        .filter(|a| mine(a))
                        .map(app_role_assignment_json)
                        .collect();
                    list(
                        sim,
                        ctx,
                        &format!("servicePrincipals('{sp_id}')/{rel}"),
                        items,
                        &["appRoleId", "resourceId", "principalId", "id"],
                    )
                }
                ("GET", Some(aid)) => match w
                    .app_role_assignments
                    .iter()
                    .find(|a| mine(a) && a.id == aid)
                {
                    Some(a) => Resp::json(
                        200,
                        with_context(
                            sim,
                            select(ctx, app_role_assignment_json(a)),
                            &format!("servicePrincipals('{sp_id}')/{rel}/$entity"),
                        ),
                    ),
                    None => not_found(ctx, aid),
                },
                ("POST", None) => {
                    grant_app_role(sim, ctx, &mut w, &tenant, &principal, &sp_id, resource_side)
                }
                ("DELETE", Some(aid)) => {
                    let Some(i) = w
                        .app_role_assignments
                        .iter()
                        .position(|a| mine(a) && a.id == aid)
                    else {
                        return not_found(ctx, aid);
                    };
                    let resource = w.app_role_assignments[i].resource_id.clone();
                    if !may_grant_app_roles(&w, &tenant, &principal, &resource) {
                        return denied(ctx);
                    }
                    w.app_role_assignments.remove(i);
                    Resp::empty(204)
                }
                _ => unsupported(ctx, rel),
            }
        }
        ("servicePrincipals", Some(key), Some(rel @ ("memberOf" | "transitiveMemberOf")))
            if m == Method::GET && item.is_none_or(|c| c == "microsoft.graph.directoryRole") =>
        {
            // No groups are simulated: both list the principal's directory roles.
            let Some(sp_id) = w
                .service_principals
                .iter()
                .find(|s| s.tenant_id == tenant && key.sp(s))
                .map(|s| s.id.clone())
            else {
                return not_found(ctx, rel);
            };
            let items = directory_roles(&w, &tenant, &sp_id);
            list(
                sim,
                ctx,
                "directoryObjects",
                items,
                &["roleTemplateId", "displayName", "id"],
            )
        }
        ("servicePrincipals", Some(key), None) => {
            let found = w
                .service_principals
                .iter()
                .position(|s| s.tenant_id == tenant && key.sp(s));
            let Some(i) = found else {
                // The upsert: `PATCH /servicePrincipals(appId='…')` with `Prefer: create-if-missing`.
                if m == Method::PATCH
                    && let Key::AppId(app_id) = &key
                    && create_if_missing(ctx)
                {
                    if !may_write(&w, &tenant, &principal) {
                        return denied(ctx);
                    }
                    let Some(mut body) = ctx.json().filter(Value::is_object) else {
                        return unreadable(ctx);
                    };
                    body["appId"] = json!(app_id);
                    return create_sp(sim, ctx, &mut w, &tenant, &body);
                }
                return not_found(ctx, key.value());
            };
            match m.as_str() {
                "GET" => Resp::json(
                    200,
                    with_context(
                        sim,
                        select(ctx, sp_json(&w, &w.service_principals[i])),
                        "servicePrincipals/$entity",
                    ),
                ),
                _ if !may_write(&w, &tenant, &principal) => denied(ctx),
                // Microsoft Graph's own service principal is not the tenant's to change.
                _ if w.service_principals[i].app_id == seed::MICROSOFT_GRAPH_APP_ID => denied(ctx),
                "PATCH" => {
                    let Some(body) = ctx.json().filter(Value::is_object) else {
                        return unreadable(ctx);
                    };
                    match update_sp(ctx, &mut w.service_principals[i], &body) {
                        Ok(()) => Resp::empty(204),
                        Err(r) => r,
                    }
                }
                "DELETE" => {
                    w.service_principals.remove(i);
                    Resp::empty(204)
                }
                _ => unsupported(ctx, first),
            }
        }
        _ => unsupported(ctx, first),
    }
}

/// `Prefer: create-if-missing` (the upserts of application-upsert / serviceprincipal-upsert).
fn create_if_missing(ctx: &Ctx) -> bool {
    ctx.headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("create-if-missing"))
        })
    })
}

fn unreadable(ctx: &Ctx) -> Resp {
    ctx.service.error(
        ctx,
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

fn user_json(u: &super::state::User) -> Value {
    json!({
        "id": u.id,
        "businessPhones": [],
        "displayName": u.name,
        "givenName": null,
        "jobTitle": null,
        "mail": u.mail,
        "userType": u.user_type,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": null,
        "userPrincipalName": u.upn,
    })
}

/// `POST /directoryObjects/getByIds` `{"ids":[…],"types":[…]}`: the objects of this tenant with
/// those ids, each with its `@odata.type` (unknown ids are left out).
fn get_by_ids(sim: &Sim, ctx: &Ctx, w: &World, tenant: &str) -> Resp {
    let Some(body) = ctx.json().filter(Value::is_object) else {
        return unreadable(ctx);
    };
    let Some(ids) = body.get("ids").and_then(Value::as_array) else {
        return bad_request(
            ctx,
            "A value is required for property 'ids' of resource 'getByIds'.",
        );
    };
    if ids.len() > 1000 {
        return bad_request(ctx, "Too many ids: at most 1000 are allowed.");
    }
    let types: Option<Vec<String>> = body.get("types").and_then(Value::as_array).map(|t| {
        t.iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    });
    let wants = |t: &str| {
        types
            .as_ref()
            .is_none_or(|ts| ts.is_empty() || ts.iter().any(|x| x == t))
    };
    let typed = |t: &str, mut v: Value| {
        v["@odata.type"] = json!(format!("#microsoft.graph.{t}"));
        v
    };
    let mut value = vec![];
    for id in ids.iter().filter_map(Value::as_str) {
        if wants("user")
            && let Some(u) = w
                .users
                .iter()
                .find(|u| u.id.eq_ignore_ascii_case(id) && u.tenant.eq_ignore_ascii_case(tenant))
        {
            value.push(typed("user", user_json(u)));
        } else if wants("serviceprincipal")
            && let Some(s) = w
                .service_principals
                .iter()
                .find(|s| s.tenant_id == tenant && s.id.eq_ignore_ascii_case(id))
        {
            value.push(typed("servicePrincipal", sp_json(w, s)));
        } else if wants("application")
            && let Some(a) = w
                .applications
                .iter()
                .find(|a| a.tenant_id == tenant && a.id.eq_ignore_ascii_case(id))
        {
            value.push(typed("application", app_json(w, a)));
        }
    }
    let value: Vec<Value> = value.into_iter().map(|v| select(ctx, v)).collect();
    Resp::json(
        200,
        with_context(sim, json!({"value": value}), "directoryObjects"),
    )
}

fn denied(ctx: &Ctx) -> Resp {
    ctx.service.error(
        ctx,
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn unsupported(ctx: &Ctx, seg: &str) -> Resp {
    ctx.service.error(
        ctx,
        400,
        "BadRequest",
        &format!("Resource not found for the segment '{seg}'."),
    )
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The writable application properties of a POST or PATCH body, checked, applied to `app`.
fn apply_app_body(ctx: &Ctx, app: &mut Application, body: &Value) -> Result<(), Resp> {
    if body
        .get("passwordCredentials")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(bad_request(
            ctx,
            "Property 'passwordCredentials' cannot be set this way: use the addPassword and removePassword actions.",
        ));
    }
    if let Some(name) = body.get("displayName") {
        match name.as_str().filter(|s| !s.trim().is_empty()) {
            Some(n) => app.display_name = n.to_string(),
            None => {
                return Err(bad_request(
                    ctx,
                    "A value is required for property 'displayName' of resource 'Application'.",
                ));
            }
        }
    }
    if let Some(aud) = body.get("signInAudience") {
        match aud.as_str().filter(|a| SIGN_IN_AUDIENCES.contains(a)) {
            Some(a) => app.sign_in_audience = a.to_string(),
            None => {
                return Err(bad_request(
                    ctx,
                    "Invalid value specified for property 'signInAudience' of resource 'Application'.",
                ));
            }
        }
    }
    if let Some(uris) = body.pointer("/web/redirectUris") {
        app.redirect_uris = strings(Some(uris));
    }
    if let Some(notes) = body.get("notes") {
        app.notes = notes.as_str().map(str::to_string);
    }
    if let Some(tags) = body.get("tags") {
        app.tags = strings(Some(tags));
    }
    if let Some(uris) = body.get("identifierUris") {
        app.identifier_uris = strings(Some(uris));
    }
    if let Some(rra) = body.get("requiredResourceAccess") {
        // A collection of {resourceAppId, resourceAccess: [{id, type: Role|Scope}]}.
        let valid = rra.as_array().is_some_and(|a| {
            a.iter().all(|r| {
                r.get("resourceAppId").is_some_and(Value::is_string)
                    && r.get("resourceAccess")
                        .and_then(Value::as_array)
                        .is_some_and(|ra| {
                            ra.iter().all(|x| {
                                x.get("id").is_some_and(Value::is_string)
                                    && matches!(
                                        x.get("type").and_then(Value::as_str),
                                        Some("Role" | "Scope")
                                    )
                            })
                        })
            })
        });
        if !valid {
            return Err(bad_request(
                ctx,
                "Invalid value specified for property 'requiredResourceAccess' of resource 'Application'.",
            ));
        }
        app.required_resource_access = rra.clone();
    }
    Ok(())
}

/// `POST /applications`, or the create half of the `uniqueName` upsert (`unique_name` from the URL).
fn create_app(
    sim: &Sim,
    ctx: &Ctx,
    w: &mut World,
    tenant: &str,
    body: &Value,
    unique_name: Option<String>,
) -> Resp {
    if body
        .get("displayName")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return bad_request(
            ctx,
            "A value is required for property 'displayName' of resource 'Application'.",
        );
    }
    let unique_name = unique_name.or_else(|| {
        body.get("uniqueName")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(u) = &unique_name
        && w.applications.iter().any(|a| {
            a.tenant_id == tenant
                && a.unique_name
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(u))
        })
    {
        return ctx.service.error(
            ctx,
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            &format!(
                "Another object with the same value for property uniqueName already exists: '{u}'."
            ),
        );
    }
    let mut app = Application {
        id: w.new_guid(),
        app_id: w.new_guid(),
        tenant_id: tenant.to_string(),
        unique_name,
        display_name: String::new(),
        sign_in_audience: "AzureADandPersonalMicrosoftAccount".into(),
        redirect_uris: vec![],
        identifier_uris: vec![],
        notes: None,
        tags: vec![],
        required_resource_access: json!([]),
        password_credentials: vec![],
        created: OffsetDateTime::now_utc(),
        born: std::time::Instant::now(),
    };
    if let Err(r) = apply_app_body(ctx, &mut app, body) {
        return r;
    }
    let v = with_context(sim, app_json(w, &app), "applications/$entity");
    let location = format!("{}/v1.0/applications/{}", sim.graph_base(), app.id);
    w.applications.push(app);
    Resp::json(201, v).header("location", location)
}

/// `PATCH /applications/{id}` (or by an alternate key): 204; `uniqueName` cannot change.
fn update_app(ctx: &Ctx, app: &mut Application, body: &Value) -> Result<(), Resp> {
    if let Some(u) = body.get("uniqueName")
        && u.as_str() != app.unique_name.as_deref()
    {
        return Err(bad_request(
            ctx,
            "Property 'uniqueName' is immutable: it can only be set when the application is created.",
        ));
    }
    apply_app_body(ctx, app, body)
}

/// `PATCH /servicePrincipals/{id}`: 204.
fn update_sp(ctx: &Ctx, sp: &mut ServicePrincipal, body: &Value) -> Result<(), Resp> {
    if let Some(v) = body.get("accountEnabled") {
        let Some(b) = v.as_bool() else {
            return Err(bad_request(
                ctx,
                "Invalid value specified for property 'accountEnabled' of resource 'ServicePrincipal'.",
            ));
        };
        sp.account_enabled = b;
    }
    if let Some(n) = body.get("displayName").and_then(Value::as_str) {
        sp.display_name = n.to_string();
    }
    Ok(())
}

/// `POST /servicePrincipals {"appId"}`, or the create half of the `appId` upsert.
fn create_sp(sim: &Sim, ctx: &Ctx, w: &mut World, tenant: &str, body: &Value) -> Resp {
    let Some(app_id) = body.get("appId").and_then(Value::as_str) else {
        return bad_request(
            ctx,
            "A value is required for property 'appId' of resource 'ServicePrincipal'.",
        );
    };
    let app = w
        .applications
        .iter()
        .find(|a| {
            a.app_id.eq_ignore_ascii_case(app_id)
                && (a.tenant_id == tenant || a.sign_in_audience != "AzureADMyOrg")
        })
        .filter(|a| sim.settled(a.born));
    let Some(app) = app else {
        let msg = format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        );
        return bad_request(ctx, &msg).details(
            json!([{"code": "NoBackingApplicationObject", "message": msg, "target": "appId"}]),
        );
    };
    if w.service_principals
        .iter()
        .any(|s| s.app_id == app.app_id && s.tenant_id == tenant)
    {
        return ctx.service.error(
            ctx,
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            &format!("The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."),
        );
    }
    let sp = ServicePrincipal {
        id: String::new(),
        app_id: app.app_id.clone(),
        tenant_id: tenant.to_string(),
        display_name: app.display_name.clone(),
        account_enabled: body
            .get("accountEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        born: std::time::Instant::now(),
        kind: "Application",
    };
    let sp = ServicePrincipal {
        id: w.new_guid(),
        ..sp
    };
    let v = with_context(sim, sp_json(w, &sp), "servicePrincipals/$entity");
    w.service_principals.push(sp);
    Resp::json(201, v)
}

fn add_password(sim: &Sim, ctx: &Ctx, app: &mut Application, policy: SecretPolicy) -> Resp {
    let body = ctx.json().unwrap_or(Value::Null);
    let pc = body
        .get("passwordCredential")
        .cloned()
        .unwrap_or(Value::Null);
    let date = |k: &str| -> Result<Option<OffsetDateTime>, Resp> {
        match pc.get(k).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => parse_time(s)
                .map(Some)
                .ok_or_else(|| bad_request(ctx, &format!("Invalid value specified for property '{k}' of resource 'PasswordCredential'."))),
        }
    };
    let (start, end) = match (date("startDateTime"), date("endDateTime")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let start = start.unwrap_or_else(OffsetDateTime::now_utc);
    let end = end.unwrap_or_else(|| two_years_after(start));
    if end <= start {
        return bad_request(
            ctx,
            "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential': it must be after startDateTime.",
        );
    }
    if let Some(policy_id) = &policy.blocked {
        return ctx.service.error(
            ctx,
            400,
            "CredentialTypeNotAllowedAsPerAppPolicy",
            &format!("Credential type not allowed as per assigned policy '{policy_id}'."),
        );
    }
    if let Some((max, policy_id)) = &policy.max_lifetime
        && end - start > *max
    {
        return ctx.service.error(
            ctx,
            400,
            "CredentialInvalidLifetimeAsPerAppPolicy",
            &format!(
                "Credential lifetime exceeds the max value allowed as per assigned policy '{policy_id}'."
            ),
        );
    }
    if end > two_years_after(start) {
        let request_id = ctx.request_id.clone();
        let mut r = ctx
            .service
            .error(
                ctx,
                400,
                "CredentialInvalidLifetimeAsPerAppPolicy",
                "Credential lifetime exceeds the max value allowed as per assigned policy '00000000-0000-0000-0000-000000000000'.",
            )
            .details(json!([{
                "code": "InvalidKeyEndDate",
                "message": "The end date of the password credential is beyond the maximum lifetime of 24 months allowed by the tenant's app management policy.",
                "target": "EndDate",
            }]));
        if let Some(inner) = r
            .body
            .as_mut()
            .and_then(|b| b.pointer_mut("/error/innerError"))
        {
            inner["request-id"] = json!(request_id);
        }
        return r;
    }
    let secret = new_secret();
    let cred = PasswordCredential {
        key_id: uuid::Uuid::new_v4().to_string(),
        display_name: pc
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_string),
        hint: secret.chars().take(3).collect(),
        secret_text: secret,
        start,
        end,
    };
    let v = with_context(
        sim,
        password_json(&cred, true),
        "microsoft.graph.passwordCredential",
    );
    app.password_credentials.push(cred);
    Resp::json(200, v)
}

// ---------------------------------------------------------------------------------------------
// App management policies (resources/applicationauthenticationmethodpolicy) and federated
// identity credentials (resources/federatedidentitycredential)

/// The id of every tenant's default app management policy (tenantappmanagementpolicy-get).
pub(crate) const TENANT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A tenant's default policy as it always exists: disabled, no restrictions
/// (tenantappmanagementpolicy-get's example).
fn default_tenant_policy() -> Value {
    json!({
        "id": TENANT_POLICY_ID,
        "displayName": "Default app management tenant policy",
        "description": "Default tenant policy that enforces app management restrictions on applications and service principals. To apply policy to targeted resources, create a new policy under appManagementPolicies collection.",
        "isEnabled": false,
        "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": []},
        "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
    })
}

fn tenant_policy(w: &World, tenant: &str) -> Value {
    w.tenant_app_policies
        .get(tenant)
        .cloned()
        .unwrap_or_else(default_tenant_policy)
}

/// Policy.Read.All (or Policy.Read.ApplicationConfiguration): users (the simulated operator is
/// taken to hold a directory role that may read them: Global Reader and up, a guess), and
/// service principals holding Graph's Policy.Read.All; nobody where `deny-read` was set.
fn may_read_app_policies(w: &World, tenant: &str, principal: &Principal) -> bool {
    if w.app_policy_read_denied.iter().any(|t| t == tenant) {
        return false;
    }
    match principal {
        Principal::User { .. } => true,
        Principal::ServicePrincipal { id, .. } => w.has_graph_permission(
            tenant,
            id,
            &[
                "Policy.Read.All",
                "Policy.ReadWrite.ApplicationConfiguration",
            ],
        ),
    }
}

/// What the policies in force allow for a new password of an app.
#[derive(Default)]
pub(crate) struct SecretPolicy {
    /// `passwordAddition` in force: the policy's id.
    blocked: Option<String>,
    /// `passwordLifetime` in force: its `maxLifetime` and the policy's id.
    max_lifetime: Option<(time::Duration, String)>,
}

/// An app's own enabled appManagementPolicy, else the tenant default when `isEnabled`; of its
/// `applicationRestrictions.passwordCredentials` (an app policy's `restrictions.…`), those whose
/// `state` is `enabled` and whose `restrictForAppsCreatedAfterDateTime` is before the app's
/// creation (none: every app).
fn secret_policy(w: &World, app: &Application) -> SecretPolicy {
    let own = w
        .app_policies
        .iter()
        .find(|p| {
            p.tenant_id == app.tenant_id
                && p.applies_to.contains(&app.id)
                && p.body.get("isEnabled").and_then(Value::as_bool) != Some(false)
        })
        .map(|p| (p.body.clone(), "/restrictions/passwordCredentials"));
    let tenant = Some(tenant_policy(w, &app.tenant_id))
        .filter(|p| p.get("isEnabled").and_then(Value::as_bool) == Some(true))
        .map(|p| (p, "/applicationRestrictions/passwordCredentials"));
    let Some((policy, path)) = own.or(tenant) else {
        return SecretPolicy::default();
    };
    let id = policy
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(TENANT_POLICY_ID)
        .to_string();
    let mut out = SecretPolicy::default();
    for r in policy
        .pointer(path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| r.get(k).and_then(Value::as_str);
        if s("state") != Some("enabled") {
            continue;
        }
        let after = s("restrictForAppsCreatedAfterDateTime").and_then(parse_time);
        if after.is_some_and(|t| app.created <= t) {
            continue;
        }
        match s("restrictionType") {
            Some("passwordAddition") => out.blocked = Some(id.clone()),
            Some("passwordLifetime") => {
                if let Some(d) = s("maxLifetime").and_then(iso8601_duration) {
                    out.max_lifetime = Some((d, id.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

/// An ISO 8601 duration as Graph writes `maxLifetime` (`P90D`, `P4DT12H30M5S`, `P1Y`): years
/// count 365 days, months 30 (a guess: Graph does not say). None when malformed.
///
/// Written apart from the client's `onboard/lifetime.rs` on purpose: the simulator judges the
/// end dates the client derives from `maxLifetime`, and a parser both shared would agree with
/// itself about any mistake (tests/it/layers.rs keeps sim/ from the client's modules).
pub(crate) fn iso8601_duration(s: &str) -> Option<time::Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, clock) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs: i64 = 0;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                secs = secs.checked_add(num.parse::<i64>().ok()?.checked_mul(*mult)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    eat(
        date,
        &[
            ('Y', 365 * 86400),
            ('M', 30 * 86400),
            ('W', 7 * 86400),
            ('D', 86400),
        ],
    )?;
    if let Some(t) = clock {
        eat(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then(|| time::Duration::seconds(secs))
}

/// `sim --secret-lifetime-policy TENANT=P90D|block`: the tenant default policy enabled with one
/// enabled restriction for every app (created after 2019-01-01).
pub(crate) fn set_tenant_secret_policy(
    w: &mut World,
    tenant: &str,
    policy: &str,
) -> crate::error::Result<()> {
    let Some(t) = w.tenant_named(tenant).map(|t| t.id.clone()) else {
        return Err(crate::error::Error::Usage(format!(
            "--secret-lifetime-policy {tenant}={policy}: no simulated tenant {tenant}"
        )));
    };
    let restriction = if policy.eq_ignore_ascii_case("block") {
        json!({"restrictionType": "passwordAddition", "state": "enabled", "maxLifetime": null,
               "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z"})
    } else if iso8601_duration(policy).is_some() {
        json!({"restrictionType": "passwordLifetime", "state": "enabled", "maxLifetime": policy,
               "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z"})
    } else {
        return Err(crate::error::Error::Usage(format!(
            "--secret-lifetime-policy {tenant}={policy}: the policy is an ISO 8601 duration (P90D) or `block`"
        )));
    };
    let mut v = default_tenant_policy();
    v["isEnabled"] = json!(true);
    v["applicationRestrictions"]["passwordCredentials"] = json!([restriction]);
    w.tenant_app_policies.insert(t, v);
    Ok(())
}

/// `POST {inspect}/policies/app-management?tenant=T` (body: a tenantAppManagementPolicy, merged
/// over the default: the tenant default policy), `…?app=ID` (body: an appManagementPolicy,
/// applied to the application of that object id or appId: the app's own policy) and
/// `…/deny-read?tenant=T` (reads of the policies refused, 403, whoever asks).
pub(crate) fn inspect_policies(sim: &Sim, ctx: &Ctx, rest: &[&str]) -> Resp {
    let mut w = sim.world();
    let tenant_of = |w: &World, t: &str| {
        w.tenants
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(t) || x.domain.eq_ignore_ascii_case(t))
            .map(|x| x.id.clone())
    };
    let bad = |m: &str| ctx.service.error(ctx, 400, "BadRequest", m);
    match rest {
        ["deny-read"] => {
            let Some(t) = ctx.q("tenant").and_then(|t| tenant_of(&w, t)) else {
                return bad("tenant: a simulated tenant id or domain.");
            };
            w.app_policy_read_denied.push(t);
            Resp::empty(204)
        }
        [] => {
            let Some(body) = ctx.json().filter(Value::is_object) else {
                return bad("The body is a JSON policy object.");
            };
            if let Some(t) = ctx.q("tenant") {
                if tenant_of(&w, t).is_none() {
                    return bad("tenant: a simulated tenant id or domain.");
                }
                return Resp::json(200, set_policy(&mut w, Some(t), None, body));
            }
            let Some(key) = ctx.q("app") else {
                return bad("tenant or app is required.");
            };
            if !w
                .applications
                .iter()
                .any(|a| a.id.eq_ignore_ascii_case(key) || a.app_id.eq_ignore_ascii_case(key))
            {
                return bad("app: no application with that object id or appId.");
            }
            Resp::json(200, set_policy(&mut w, None, Some(key), body))
        }
        _ => ctx
            .service
            .error(ctx, 404, "NotFound", "Unknown inspect route."),
    }
}

/// Sets `tenant`'s default policy (`body` merged over the disabled default) or gives the app
/// `app` (object id or appId) its own appManagementPolicy; returns the policy as stored. An
/// unknown tenant or app changes nothing (the inspect route checks them first).
pub(crate) fn set_policy(
    w: &mut World,
    tenant: Option<&str>,
    app: Option<&str>,
    body: Value,
) -> Value {
    let merge = |mut v: Value| {
        if let (Some(m), Some(b)) = (v.as_object_mut(), body.as_object()) {
            for (k, x) in b {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    };
    if let Some(t) = tenant {
        let Some(t) = w
            .tenants
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(t) || x.domain.eq_ignore_ascii_case(t))
            .map(|x| x.id.clone())
        else {
            return Value::Null;
        };
        let v = merge(default_tenant_policy());
        w.tenant_app_policies.insert(t, v.clone());
        return v;
    }
    let Some((app_obj, tenant)) = app.and_then(|key| {
        w.applications
            .iter()
            .find(|a| a.id.eq_ignore_ascii_case(key) || a.app_id.eq_ignore_ascii_case(key))
            .map(|a| (a.id.clone(), a.tenant_id.clone()))
    }) else {
        return Value::Null;
    };
    let v = merge(json!({
        "id": w.new_guid(),
        "displayName": "app policy",
        "description": "set through the simulator's inspect control",
        "isEnabled": true,
        "restrictions": {"passwordCredentials": [], "keyCredentials": []},
    }));
    w.app_policies.push(AppPolicy {
        tenant_id: tenant,
        body: v.clone(),
        applies_to: vec![app_obj],
    });
    v
}

fn fic_json(f: &FederatedCredential) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "issuer": f.issuer,
        "subject": f.subject,
        "audiences": f.audiences,
        "description": f.description,
    })
}

/// At most 20 federated identity credentials per application
/// (workload-identity-federation-considerations).
const MAX_FEDERATED_CREDENTIALS: usize = 20;

/// `/applications/{id}/federatedIdentityCredentials[/{id or name}]`: list, create, get, delete
/// (federatedidentitycredential-*): `name` (unique per app, at most 120 characters), `issuer`,
/// `subject` and `audiences` (exactly one) required on create.
fn federated_credentials(
    sim: &Sim,
    ctx: &Ctx,
    w: &mut World,
    app_obj: &str,
    item: Option<&str>,
) -> Resp {
    let context = format!("applications('{app_obj}')/federatedIdentityCredentials");
    let find = |w: &World, k: &str| {
        w.federated_credentials.iter().position(|f| {
            f.app_object_id == app_obj && (f.id.eq_ignore_ascii_case(k) || f.name == k)
        })
    };
    match (ctx.method.as_str(), item) {
        ("GET", None) => {
            let items = w
                .federated_credentials
                .iter()
                .filter(|f| f.app_object_id == app_obj)
                .map(fic_json)
                .collect();
            list(
                sim,
                ctx,
                &context,
                items,
                &["name", "subject", "issuer", "id"],
            )
        }
        ("GET", Some(k)) => match find(w, k) {
            Some(i) => Resp::json(
                200,
                with_context(
                    sim,
                    fic_json(&w.federated_credentials[i]),
                    &format!("{context}/$entity"),
                ),
            ),
            None => not_found(ctx, k),
        },
        ("DELETE", Some(k)) => match find(w, k) {
            Some(i) => {
                w.federated_credentials.remove(i);
                Resp::empty(204)
            }
            None => not_found(ctx, k),
        },
        ("POST", None) => {
            let Some(body) = ctx.json().filter(Value::is_object) else {
                return unreadable(ctx);
            };
            let text = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            let required = |k: &str| {
                format!(
                    "A value is required for property '{k}' of resource 'FederatedIdentityCredential'."
                )
            };
            let (Some(name), Some(issuer), Some(subject)) =
                (text("name"), text("issuer"), text("subject"))
            else {
                let k = ["name", "issuer", "subject"]
                    .into_iter()
                    .find(|k| text(k).is_none())
                    .unwrap_or("name");
                return bad_request(ctx, &required(k));
            };
            let audiences = strings(body.get("audiences"));
            if audiences.len() != 1 || audiences[0].trim().is_empty() {
                return bad_request(
                    ctx,
                    "Invalid value specified for property 'audiences' of resource 'FederatedIdentityCredential': exactly one audience is supported.",
                );
            }
            if name.chars().count() > 120 {
                return bad_request(
                    ctx,
                    "Invalid value specified for property 'name' of resource 'FederatedIdentityCredential': at most 120 characters.",
                );
            }
            if find(w, &name).is_some() {
                return ctx.service.error(
                    ctx,
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    &format!("FederatedIdentityCredential with name {name} already exists."),
                );
            }
            if w.federated_credentials
                .iter()
                .filter(|f| f.app_object_id == app_obj)
                .count()
                >= MAX_FEDERATED_CREDENTIALS
            {
                return bad_request(
                    ctx,
                    "An application can have at most 20 federated identity credentials.",
                );
            }
            let f = FederatedCredential {
                id: w.new_guid(),
                app_object_id: app_obj.to_string(),
                name,
                issuer,
                subject,
                audiences,
                description: body
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let v = with_context(sim, fic_json(&f), &format!("{context}/$entity"));
            w.federated_credentials.push(f);
            Resp::json(201, v)
        }
        _ => unsupported(ctx, "federatedIdentityCredentials"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parses_escaped_quotes_startswith_and_any() {
        assert_eq!(
            parse_filter("displayName eq 'O''Neil app'"),
            Some(Filter::Eq("displayName".into(), "O'Neil app".into()))
        );
        assert_eq!(
            parse_filter("startswith(displayName,'Spot')"),
            Some(Filter::StartsWith("displayName".into(), "Spot".into()))
        );
        assert_eq!(
            parse_filter("servicePrincipalNames/any(c:c eq 'abc')"),
            Some(Filter::Any("servicePrincipalNames".into(), "abc".into()))
        );
        assert_eq!(
            parse_filter("servicePrincipalNames/any(c:d eq 'abc')"),
            None
        );
        assert_eq!(parse_filter("displayName ne 'x'"), None);
        let sp = json!({"servicePrincipalNames": ["ABC", "api://x"]});
        assert!(Filter::Any("servicePrincipalNames".into(), "abc".into()).accepts(&sp));
        assert!(!Filter::Any("servicePrincipalNames".into(), "api://y".into()).accepts(&sp));
    }

    #[test]
    fn skiptoken_round_trips() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(1234)), Some(1234));
        assert_eq!(decode_skiptoken("garbage"), None);
    }
}
