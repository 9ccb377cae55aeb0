//! Microsoft Graph v1.0: applications (+ addPassword / removePassword), servicePrincipals,
//! organization.

use super::state::{
    Application, Audience, PasswordCredential, Principal, ServicePrincipal, World, parse_time,
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

/// How an entity is addressed: `/applications/{id}` or `/applications(appId='…')`.
enum Key {
    Id(String),
    AppId(String),
}

/// `applications`, `applications(appId='x')` → (collection, key).
fn collection(seg: &str) -> (&str, Option<Key>) {
    if let Some((name, rest)) = seg.split_once('(') {
        let inner = rest.trim_end_matches(')');
        if let Some(v) = inner.strip_prefix("appId=") {
            return (name, Some(Key::AppId(v.trim_matches('\'').to_string())));
        }
        return (name, Some(Key::Id(inner.trim_matches('\'').to_string())));
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

/// `$filter`: `prop eq 'v'` or `startswith(prop,'v')` (OData literals, `''` = `'`).
fn parse_filter(filter: &str) -> Option<(String, bool, String)> {
    let f = filter.trim();
    let literal = |s: &str| -> Option<String> {
        let s = s.trim();
        let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    };
    if let Some(rest) = f.strip_prefix("startswith(") {
        let rest = rest.strip_suffix(')')?;
        let (prop, lit) = rest.split_once(',')?;
        return Some((prop.trim().to_string(), true, literal(lit)?));
    }
    let (prop, lit) = f.split_once(" eq ")?;
    Some((prop.trim().to_string(), false, literal(lit)?))
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
        "identifierUris": [],
        "notes": a.notes,
        "publisherDomain": w.tenant(&a.tenant_id).map(|t| t.domain.clone()),
        "signInAudience": a.sign_in_audience,
        "tags": a.tags,
        "keyCredentials": [],
        "passwordCredentials": a.password_credentials.iter().map(|c| password_json(c, false)).collect::<Vec<_>>(),
        "requiredResourceAccess": [],
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
    json!({
        "id": s.id,
        "deletedDateTime": null,
        "accountEnabled": s.account_enabled,
        "appDisplayName": app.map(|a| a.display_name.clone()),
        "appId": s.app_id,
        "appOwnerOrganizationId": app.map(|a| a.tenant_id.clone()).unwrap_or_else(|| s.tenant_id.clone()),
        "displayName": s.display_name,
        "servicePrincipalNames": [s.app_id],
        "servicePrincipalType": "Application",
        "signInAudience": app.map(|a| a.sign_in_audience.clone()),
        "tags": [],
        "keyCredentials": [],
        "passwordCredentials": [],
    })
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

fn list(sim: &Sim, ctx: &Ctx, context: &str, items: Vec<Value>, props: &[&str]) -> Resp {
    let mut items = items;
    if let Some(f) = ctx.q("$filter") {
        let Some((prop, starts, lit)) = parse_filter(f) else {
            return ctx.service.error(
                ctx,
                400,
                "Request_UnsupportedQuery",
                &format!("Unsupported or invalid query filter clause specified: '{f}'."),
            );
        };
        if !props.iter().any(|p| p.eq_ignore_ascii_case(&prop)) {
            return ctx.service.error(
                ctx,
                400,
                "Request_UnsupportedQuery",
                &format!("Unsupported or invalid query filter clause specified for property '{prop}' of resource '{context}'."),
            );
        }
        items.retain(|v| {
            let value = v.get(&prop).and_then(Value::as_str).unwrap_or_default();
            if starts {
                value
                    .to_ascii_lowercase()
                    .starts_with(&lit.to_ascii_lowercase())
            } else {
                value.eq_ignore_ascii_case(&lit)
            }
        });
    }
    let value: Vec<Value> = items.into_iter().map(|v| select(ctx, v)).collect();
    Resp::json(200, with_context(sim, json!({"value": value}), context))
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
        seed::DIRECTORY_ROLE_GLOBAL_ADMIN => "Global Administrator",
        seed::DIRECTORY_ROLE_APPLICATION_ADMIN => "Application Administrator",
        seed::DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN => "Cloud Application Administrator",
        seed::DIRECTORY_ROLE_APPLICATION_DEVELOPER => "Application Developer",
        _ => "Directory role",
    }
}

/// The user's directory roles in `tenant`, as `memberOf` lists them.
fn directory_roles(w: &World, tenant: &str, user_id: &str) -> Vec<Value> {
    w.user(user_id)
        .map(|u| {
            u.directory_roles
                .iter()
                .filter(|(t, _)| t.eq_ignore_ascii_case(tenant))
                .map(|(t, template)| {
                    // The activated role's object id is per tenant.
                    let id = uuid::Uuid::new_v5(
                        &uuid::Uuid::NAMESPACE_OID,
                        format!("{t}/{template}").as_bytes(),
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
        })
        .unwrap_or_default()
}

/// A service principal's app role assignments: Graph's Application.ReadWrite.All for an app
/// that may register applications.
fn app_role_assignments(w: &World, s: &ServicePrincipal) -> Vec<Value> {
    let may = w
        .applications
        .iter()
        .any(|a| a.app_id == s.app_id && a.may_register_apps);
    if !may {
        return vec![];
    }
    let graph_sp = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}/{}", s.tenant_id, seed::MICROSOFT_GRAPH_APP_ID).as_bytes(),
    );
    vec![json!({
        "id": format!("{}-assign", &s.id[..8]),
        "deletedDateTime": null,
        "appRoleId": seed::GRAPH_APPLICATION_READWRITE_ALL,
        "createdDateTime": "2026-01-01T00:00:00Z",
        "principalDisplayName": s.display_name,
        "principalId": s.id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": graph_sp.to_string(),
    })]
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
    let (coll, paren_key) = collection(first);
    let (key, action) = match paren_key {
        Some(k) => (Some(k), rest.first().copied()),
        None => (
            rest.first().map(|s| Key::Id(s.to_string())),
            rest.get(1).copied(),
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
                &["displayName", "appId", "id"],
            )
        }
        ("applications", None, None) if m == Method::POST => {
            if !may_write(&w, &tenant, &principal) {
                return denied(ctx);
            }
            create_app(sim, ctx, &mut w, &tenant)
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
                &["appId", "displayName", "id"],
            )
        }
        ("servicePrincipals", None, None) if m == Method::POST => {
            if !may_write(&w, &tenant, &principal) {
                return denied(ctx);
            }
            create_sp(sim, ctx, &mut w, &tenant)
        }
        ("applications", Some(key), action) => {
            let found = w.applications.iter().position(|a| {
                a.tenant_id == tenant
                    && match &key {
                        Key::Id(id) => a.id.eq_ignore_ascii_case(id),
                        Key::AppId(id) => a.app_id.eq_ignore_ascii_case(id),
                    }
            });
            let Some(i) = found else {
                return not_found(
                    ctx,
                    match &key {
                        Key::Id(s) | Key::AppId(s) => s,
                    },
                );
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
                (_, _) if !may_write(&w, &tenant, &principal) => denied(ctx),
                ("DELETE", None) => {
                    let app = w.applications.remove(i);
                    w.service_principals
                        .retain(|s| !(s.app_id == app.app_id && s.tenant_id == app.tenant_id));
                    Resp::empty(204)
                }
                ("POST", Some("addPassword")) => add_password(sim, ctx, &mut w.applications[i]),
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
        ("servicePrincipals", Some(key), Some("appRoleAssignments")) if m == Method::GET => {
            let found = w.service_principals.iter().find(|s| {
                s.tenant_id == tenant
                    && match &key {
                        Key::Id(id) => s.id.eq_ignore_ascii_case(id),
                        Key::AppId(id) => s.app_id.eq_ignore_ascii_case(id),
                    }
            });
            let Some(sp) = found else {
                return not_found(
                    ctx,
                    match &key {
                        Key::Id(s) | Key::AppId(s) => s,
                    },
                );
            };
            let items = app_role_assignments(&w, sp);
            list(
                sim,
                ctx,
                "appRoleAssignments",
                items,
                &["appRoleId", "resourceId"],
            )
        }
        ("servicePrincipals", Some(key), Some(rel @ ("memberOf" | "transitiveMemberOf")))
            if m == Method::GET =>
        {
            // No directory roles are assigned to service principals in the simulation.
            let exists = w.service_principals.iter().any(|s| {
                s.tenant_id == tenant
                    && match &key {
                        Key::Id(id) => s.id.eq_ignore_ascii_case(id),
                        Key::AppId(id) => s.app_id.eq_ignore_ascii_case(id),
                    }
            });
            if !exists {
                return not_found(ctx, rel);
            }
            list(sim, ctx, "directoryObjects", vec![], &["roleTemplateId"])
        }
        ("servicePrincipals", Some(key), None) => {
            let found = w.service_principals.iter().position(|s| {
                s.tenant_id == tenant
                    && match &key {
                        Key::Id(id) => s.id.eq_ignore_ascii_case(id),
                        Key::AppId(id) => s.app_id.eq_ignore_ascii_case(id),
                    }
            });
            let Some(i) = found else {
                return not_found(
                    ctx,
                    match &key {
                        Key::Id(s) | Key::AppId(s) => s,
                    },
                );
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
                "DELETE" if may_write(&w, &tenant, &principal) => {
                    w.service_principals.remove(i);
                    Resp::empty(204)
                }
                "DELETE" => denied(ctx),
                _ => unsupported(ctx, first),
            }
        }
        _ => unsupported(ctx, first),
    }
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

fn create_app(sim: &Sim, ctx: &Ctx, w: &mut World, tenant: &str) -> Resp {
    let Some(body) = ctx.json().filter(Value::is_object) else {
        return ctx.service.error(ctx, 400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.");
    };
    let Some(name) = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    else {
        return bad_request(
            ctx,
            "A value is required for property 'displayName' of resource 'Application'.",
        );
    };
    let audience = body
        .get("signInAudience")
        .and_then(Value::as_str)
        .unwrap_or("AzureADandPersonalMicrosoftAccount");
    if !SIGN_IN_AUDIENCES.contains(&audience) {
        return bad_request(
            ctx,
            "Invalid value specified for property 'signInAudience' of resource 'Application'.",
        );
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let app = Application {
        id: w.new_guid(),
        app_id: w.new_guid(),
        tenant_id: tenant.to_string(),
        display_name: name.to_string(),
        sign_in_audience: audience.to_string(),
        redirect_uris: strings(body.pointer("/web/redirectUris")),
        notes: body
            .get("notes")
            .and_then(Value::as_str)
            .map(str::to_string),
        tags: strings(body.get("tags")),
        password_credentials: vec![],
        created: OffsetDateTime::now_utc(),
        born: std::time::Instant::now(),
        may_register_apps: false,
    };
    let v = with_context(sim, app_json(w, &app), "applications/$entity");
    let location = format!("{}/v1.0/applications/{}", sim.graph_base(), app.id);
    w.applications.push(app);
    Resp::json(201, v).header("location", location)
}

fn create_sp(sim: &Sim, ctx: &Ctx, w: &mut World, tenant: &str) -> Resp {
    let body = ctx.json().unwrap_or(Value::Null);
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
    };
    let sp = ServicePrincipal {
        id: w.new_guid(),
        ..sp
    };
    let v = with_context(sim, sp_json(w, &sp), "servicePrincipals/$entity");
    w.service_principals.push(sp);
    Resp::json(201, v)
}

fn add_password(sim: &Sim, ctx: &Ctx, app: &mut Application) -> Resp {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parses_escaped_quotes_and_startswith() {
        assert_eq!(
            parse_filter("displayName eq 'O''Neil app'"),
            Some(("displayName".into(), false, "O'Neil app".into()))
        );
        assert_eq!(
            parse_filter("startswith(displayName,'Spot')"),
            Some(("displayName".into(), true, "Spot".into()))
        );
        assert_eq!(parse_filter("displayName ne 'x'"), None);
    }
}
