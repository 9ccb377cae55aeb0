//! Azure Resource Manager: tenants, subscriptions (paged), role definitions, role assignments and
//! permissions at subscription scope (Microsoft.Authorization 2022-04-01 shapes).

use super::faults::Fault;
use super::state::{
    Audience, Permission, Principal, RoleAssignment, RoleDefinition, World, role_guid,
    scope_within, sub_scope,
};
use super::{Ctx, Resp, Sim, authenticate};
use axum::http::Method;
use serde_json::{Value, json};
use std::time::Instant;
use time::OffsetDateTime;

const PRINCIPAL_TYPES: [&str; 5] = [
    "User",
    "Group",
    "ServicePrincipal",
    "ForeignGroup",
    "Device",
];

/// Who is calling, in which tenant.
pub(super) struct Caller {
    pub tenant: String,
    pub principal: Principal,
}

fn err(ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
    ctx.service.error(ctx, status, code, message)
}

pub(super) fn authorization_failed(
    w: &World,
    ctx: &Ctx,
    c: &Caller,
    action: &str,
    scope: &str,
) -> Resp {
    err(
        ctx,
        403,
        "AuthorizationFailed",
        &format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            w.principal_label(&c.principal),
            c.principal.object_id()
        ),
    )
}

fn principal_not_found(ctx: &Ctx, principal_id: &str, tenant: &str) -> Resp {
    err(
        ctx,
        400,
        "PrincipalNotFound",
        &format!(
            "Principal {} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
            principal_id.replace('-', "")
        ),
    )
}

/// Case-insensitive property lookup (ARM's JSON binding ignores case).
fn prop<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn prop_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    prop(v, key).and_then(Value::as_str)
}

/// `a eq 'x' and b eq 'y'` → [(a, x), (b, y)]; functions like `atScope()` pass through as (name, "").
fn parse_filter(f: &str) -> Option<Vec<(String, String)>> {
    f.split(" and ")
        .map(|clause| {
            let c = clause.trim();
            if let Some((p, v)) = c.split_once(" eq ") {
                let v = v
                    .trim()
                    .strip_prefix('\'')?
                    .strip_suffix('\'')?
                    .replace("''", "'");
                Some((p.trim().to_string(), v))
            } else if let Some((func, arg)) = c.split_once('(') {
                Some((
                    func.to_string(),
                    arg.trim_end_matches(')').trim_matches('\'').to_string(),
                ))
            } else {
                None
            }
        })
        .collect()
}

fn filter_or_error(ctx: &Ctx) -> Result<Vec<(String, String)>, Resp> {
    match ctx.q("$filter") {
        None => Ok(vec![]),
        Some(f) => parse_filter(f).ok_or_else(|| {
            err(
                ctx,
                400,
                "InvalidFilterInQueryString",
                &format!("The filter '{f}' is not supported."),
            )
        }),
    }
}

/// `{"value":[…]}` of the items every `$filter` clause accepts (`matches(item, lowercased property, value)`).
fn filtered<'a, T: 'a>(
    ctx: &Ctx,
    items: impl Iterator<Item = &'a T>,
    matches: impl Fn(&T, &str, &str) -> bool,
    to_json: impl Fn(&T) -> Value,
) -> Resp {
    let filter = match filter_or_error(ctx) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let value: Vec<Value> = items
        .filter(|i| {
            filter
                .iter()
                .all(|(p, v)| matches(i, &p.to_ascii_lowercase(), v))
        })
        .map(to_json)
        .collect();
    Resp::json(200, json!({ "value": value }))
}

fn subscription_json(s: &super::state::Subscription) -> Value {
    json!({
        "id": sub_scope(&s.id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.id,
        "tenantId": s.tenant_id,
        "displayName": s.name,
        "state": s.state,
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        "tags": {},
    })
}

/// `GET /metadata/endpoints?api-version=…` (anonymous): this cloud's endpoints, the simulator's
/// own origins. api-version 2022-09-01 and later answer one object; earlier ones an array of
/// clouds (azure-powershell-common PR #374: "ArmMetadata with API version 2022-09-01 has changed
/// the response format from array to single object"; azure-cli `az cloud register` reads the
/// 2022-09-01 object).
fn metadata_endpoints(sim: &Sim, ctx: &Ctx) -> Resp {
    let Some(api) = ctx.q("api-version").filter(|v| !v.is_empty()) else {
        return err(
            ctx,
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let o = &sim.origins;
    let cloud = json!({
        "name": "SpotConnectSim",
        "portal": o.arm,
        "resourceManager": format!("{}/", o.arm),
        "authentication": {
            "loginEndpoint": o.login,
            "audiences": [format!("{}/", o.arm)],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "microsoftGraphResourceId": format!("{}/", o.graph),
        // No storage, Key Vault or other data-plane services are simulated.
        "suffixes": {},
    });
    if api.as_bytes() >= b"2022-09-01".as_slice() {
        Resp::json(200, cloud)
    } else {
        Resp::json(200, json!([cloud]))
    }
}

pub(crate) fn handle(sim: &Sim, ctx: &Ctx, fault: Option<Fault>) -> Resp {
    if ctx.method == Method::GET
        && ctx
            .segments()
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .eq(["metadata", "endpoints"])
    {
        return metadata_endpoints(sim, ctx);
    }
    let mut w = sim.world();
    let (tenant, principal) = match authenticate(sim, &w, ctx, Audience::Arm) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let caller = Caller { tenant, principal };
    // ARM's token buckets (reference/fleet-and-policies.md §5): every reply carries what is left.
    let budget = match charge(sim, &mut w, ctx, &caller) {
        Ok(b) => b,
        Err(throttled) => return throttled,
    };
    let resp = route(sim, &mut w, ctx, &caller, fault);
    budget
        .into_iter()
        .fold(resp, |r, (name, left)| r.header(name, left.to_string()))
}

/// The kind of an ARM request, for its budget: reads (GET, HEAD), deletes, writes (the rest).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum OpKind {
    Read,
    Write,
    Delete,
}

impl OpKind {
    fn of(m: &Method) -> OpKind {
        match *m {
            Method::GET | Method::HEAD => OpKind::Read,
            Method::DELETE => OpKind::Delete,
            _ => OpKind::Write,
        }
    }

    fn word(self) -> &'static str {
        match self {
            OpKind::Read => "reads",
            OpKind::Write => "writes",
            OpKind::Delete => "deletes",
        }
    }

    fn label(self) -> &'static str {
        match self {
            OpKind::Read => "Read",
            OpKind::Write => "Write",
            OpKind::Delete => "Delete",
        }
    }
}

/// A token bucket: `tokens` as of `at`, refilled continuously up to its size.
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

/// (size, refill per second) of a kind's buckets: the reference's defaults, `--arm-*` options,
/// and `--rate-limit N` = writes and deletes with a bucket of N refilled at N per second.
fn limits(sim: &Sim, kind: OpKind) -> (f64, f64) {
    let o = &sim.opts;
    match (kind, o.rate_limit) {
        (OpKind::Read, _) => (f64::from(o.arm_read_bucket), o.arm_read_refill),
        (_, Some(n)) => (f64::from(n), f64::from(n)),
        (_, None) => (f64::from(o.arm_write_bucket), o.arm_write_refill),
    }
}

/// Takes one token from each bucket the request draws on: the subscription's (per subscription,
/// principal and kind) when it is addressed to one, and the tenant's (per tenant and kind: a
/// simplification, see docs/simulator.md). Ok: the `x-ms-ratelimit-remaining-*` headers; Err:
/// the 429, when a bucket has no token (then none is taken).
fn charge(
    sim: &Sim,
    w: &mut World,
    ctx: &Ctx,
    c: &Caller,
) -> Result<Vec<(&'static str, u64)>, Resp> {
    let kind = OpKind::of(&ctx.method);
    let (size, refill) = limits(sim, kind);
    let segs = ctx.segments();
    let sub = match segs.as_slice() {
        [first, id, ..] if first.eq_ignore_ascii_case("subscriptions") => {
            Some(id.to_ascii_lowercase())
        }
        _ => None,
    };
    let now = Instant::now();
    let mut keys = vec![(
        format!("tenant/{}/{}", c.tenant, kind.word()),
        tenant_header(kind),
    )];
    if let Some(sub) = &sub {
        keys.push((
            format!(
                "subscription/{sub}/{}/{}",
                c.principal.object_id(),
                kind.word()
            ),
            subscription_header(kind),
        ));
    }
    let mut levels = vec![];
    for (key, _) in &keys {
        let b = w.arm_buckets.entry(key.clone()).or_insert(Bucket {
            tokens: size,
            at: now,
        });
        b.tokens = (b.tokens + refill * now.duration_since(b.at).as_secs_f64()).min(size);
        b.at = now;
        levels.push(b.tokens);
    }
    if let Some(short) = levels.iter().copied().reduce(f64::min).filter(|t| *t < 1.0) {
        // Seconds until a token is back (Retry-After counts whole seconds).
        let wait = if refill > 0.0 {
            ((1.0 - short) / refill).ceil().max(1.0)
        } else {
            60.0
        };
        let mut r = err(
            ctx,
            429,
            "TooManyRequests",
            &format!(
                "The request is being throttled as the limit has been reached for operation type - {}. Please retry after the time in the Retry-After header.",
                kind.label()
            ),
        )
        .header("retry-after", format!("{wait}"));
        for ((_, name), level) in keys.iter().zip(&levels) {
            if let Some(name) = name {
                r = r.header(name, level.floor().max(0.0).to_string());
            }
        }
        return Err(r);
    }
    let mut left = vec![];
    for (key, name) in &keys {
        if let Some(b) = w.arm_buckets.get_mut(key) {
            b.tokens -= 1.0;
            if let Some(name) = name {
                left.push((*name, b.tokens.floor().max(0.0) as u64));
            }
        }
    }
    Ok(left)
}

/// The tenant-level header of a kind (ARM sends none for tenant deletes).
fn tenant_header(kind: OpKind) -> Option<&'static str> {
    match kind {
        OpKind::Read => Some("x-ms-ratelimit-remaining-tenant-reads"),
        OpKind::Write => Some("x-ms-ratelimit-remaining-tenant-writes"),
        OpKind::Delete => None,
    }
}

fn subscription_header(kind: OpKind) -> Option<&'static str> {
    Some(match kind {
        OpKind::Read => "x-ms-ratelimit-remaining-subscription-reads",
        OpKind::Write => "x-ms-ratelimit-remaining-subscription-writes",
        OpKind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
    })
}

fn route(sim: &Sim, w: &mut World, ctx: &Ctx, caller: &Caller, fault: Option<Fault>) -> Resp {
    if ctx.q("api-version").is_none_or(str::is_empty) {
        return err(
            ctx,
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let segs = ctx.segments();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (ctx.method.as_str(), lower.as_slice()) {
        ("GET", ["tenants"]) => tenants(w, ctx, caller),
        ("GET", ["subscriptions"]) => subscriptions(sim, w, ctx, caller),
        // Tenant scope: every role of the directory (reference/azure-api.md §2.2, name conflicts).
        (
            "GET",
            [
                "providers",
                "microsoft.authorization",
                "roledefinitions",
                tail @ ..,
            ],
        ) if tail.len() <= 1 => role_definitions(w, ctx, caller, "", tail.first().map(|_| segs[3])),
        (
            _,
            [
                "providers",
                "microsoft.management",
                "managementgroups",
                rest @ ..,
            ],
        ) => super::mgmt::route(sim, w, ctx, caller, rest, &segs, fault),
        (_, ["subscriptions", _, rest @ ..]) => {
            let sub_id = segs[1];
            let Some(sub) = w.subscription(sub_id) else {
                return err(
                    ctx,
                    404,
                    "SubscriptionNotFound",
                    &format!("The subscription '{sub_id}' could not be found."),
                );
            };
            if sub.tenant_id != caller.tenant {
                let t = sub.tenant_id.clone();
                return err(
                    ctx,
                    401,
                    "InvalidAuthenticationTokenTenant",
                    &format!(
                        "The access token is from the wrong issuer 'https://sts.windows.net/{}/'. It must match the tenant 'https://sts.windows.net/{t}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{t}' to get the token.",
                        caller.tenant
                    ),
                );
            }
            let (sub_id, disabled) = (sub.id.clone(), sub.state == "Disabled");
            let scope = sub_scope(&sub_id);
            let write = ctx.method != Method::GET;
            if write && disabled {
                return err(
                    ctx,
                    409,
                    "ReadOnlyDisabledSubscription",
                    &format!(
                        "The subscription '{sub_id}' is disabled and therefore marked as read only. You cannot perform any write actions on this subscription until it is re-enabled."
                    ),
                );
            }
            match (ctx.method.as_str(), rest) {
                ("GET", []) => {
                    if !w.allowed(
                        &caller.tenant,
                        caller.principal.object_id(),
                        &scope,
                        "Microsoft.Resources/subscriptions/read",
                    ) {
                        return err(
                            ctx,
                            404,
                            "SubscriptionNotFound",
                            &format!("The subscription '{sub_id}' could not be found."),
                        );
                    }
                    let s = w
                        .subscription(&sub_id)
                        .map(subscription_json)
                        .unwrap_or(Value::Null);
                    Resp::json(200, s)
                }
                (_, ["providers", "microsoft.authorization", coll, tail @ ..]) => {
                    let name = tail.first().map(|_| segs[5]);
                    match (*coll, tail.len()) {
                        ("roledefinitions", 0 | 1) => {
                            role_definitions(w, ctx, caller, &scope, name)
                        }
                        ("roleassignments", 0 | 1) => {
                            role_assignments(sim, w, ctx, caller, &scope, name, fault)
                        }
                        ("permissions", 0) if ctx.method == Method::GET => {
                            let perms = w.effective_permissions(
                                &caller.tenant,
                                caller.principal.object_id(),
                                &scope,
                                |_| true,
                            );
                            Resp::json(
                                200,
                                json!({"value": perms.iter().map(Permission::to_json).collect::<Vec<_>>()}),
                            )
                        }
                        _ => no_route(ctx),
                    }
                }
                _ => no_route(ctx),
            }
        }
        _ => no_route(ctx),
    }
}

pub(super) fn no_route(ctx: &Ctx) -> Resp {
    err(
        ctx,
        404,
        "InvalidResourceType",
        &format!(
            "The resource type could not be found for '{} {}'.",
            ctx.method, ctx.path
        ),
    )
}

fn tenants(w: &World, _ctx: &Ctx, c: &Caller) -> Resp {
    let ids: Vec<String> = match &c.principal {
        Principal::User { id } => w.user_tenants(id),
        Principal::ServicePrincipal { .. } => vec![c.tenant.clone()],
    };
    let value: Vec<Value> = w
        .tenants
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(|t| {
            json!({
                "id": format!("/tenants/{}", t.id), "tenantId": t.id, "countryCode": "US", "displayName": t.name,
                "domains": [t.domain], "defaultDomain": t.domain, "tenantCategory": "Home", "tenantType": "AAD",
            })
        })
        .collect();
    Resp::json(200, json!({"value": value}))
}

fn subscriptions(sim: &Sim, w: &World, ctx: &Ctx, c: &Caller) -> Resp {
    let readable = w.allowed_at(
        &c.tenant,
        c.principal.object_id(),
        "Microsoft.Resources/subscriptions/read",
    );
    // The skiptoken is opaque to clients (ARM's is too): here the index, in the world's list,
    // of the next page's first subscription, so that a page costs its own size and not the
    // pages before it (a 1 000-subscription tenant read 2 at a time is 500 pages).
    let start: usize = ctx
        .q("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let size = sim.opts.subscription_page_size.max(1);
    let mut page: Vec<Value> = Vec::new();
    let mut next = None;
    for (i, s) in w.subscriptions.iter().enumerate().skip(start) {
        if s.tenant_id != c.tenant || !readable(&sub_scope(&s.id)) {
            continue;
        }
        if page.len() == size {
            next = Some(i);
            break;
        }
        page.push(subscription_json(s));
    }
    let mut body = json!({"value": page});
    if let Some(next) = next {
        let api = ctx.q("api-version").unwrap_or_default();
        body["nextLink"] = json!(format!(
            "{}/subscriptions?api-version={api}&%24skiptoken={next}",
            sim.arm_base(),
        ));
    }
    Resp::json(200, body)
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// Roles that apply at `scope`: built-ins and this tenant's custom roles assignable at or above it
/// (`scope` "" = tenant scope: all of them).
fn applies_at(w: &World, r: &RoleDefinition, tenant: &str, scope: &str) -> bool {
    match &r.tenant_id {
        None => true,
        Some(t) => {
            t == tenant
                && (scope.is_empty()
                    || r.assignable_scopes
                        .iter()
                        .any(|s| w.covers(tenant, scope, s)))
        }
    }
}

pub(super) fn role_definitions(
    w: &mut World,
    ctx: &Ctx,
    c: &Caller,
    scope: &str,
    name: Option<&str>,
) -> Resp {
    let oid = c.principal.object_id().to_string();
    match (ctx.method.as_str(), name) {
        ("GET", None) => filtered(
            ctx,
            w.role_definitions
                .iter()
                .filter(|r| applies_at(w, r, &c.tenant, scope)),
            |r, p, v| match p {
                "rolename" => r.role_name.eq_ignore_ascii_case(v),
                "type" => r.role_type().eq_ignore_ascii_case(v),
                _ => true,
            },
            |r| r.to_json(scope),
        ),
        ("GET", Some(guid)) => match w.role_definition(&c.tenant, guid) {
            Some(r) => Resp::json(200, r.to_json(scope)),
            None => role_def_missing(ctx, guid),
        },
        ("PUT", Some(guid)) => put_role_definition(w, ctx, c, scope, guid),
        ("DELETE", Some(guid)) => {
            if !w.allowed(
                &c.tenant,
                &oid,
                scope,
                "Microsoft.Authorization/roleDefinitions/delete",
            ) {
                return authorization_failed(
                    w,
                    ctx,
                    c,
                    "Microsoft.Authorization/roleDefinitions/delete",
                    scope,
                );
            }
            let Some(i) = w.role_definitions.iter().position(|r| {
                r.guid.eq_ignore_ascii_case(guid) && r.tenant_id.as_deref() == Some(&c.tenant)
            }) else {
                return Resp::empty(204);
            };
            if w.role_assignments.iter().any(|a| {
                a.tenant_id == c.tenant
                    && role_guid(&a.role_definition_id).eq_ignore_ascii_case(guid)
            }) {
                return err(
                    ctx,
                    409,
                    "RoleDefinitionHasAssignments",
                    "There are existing role assignments referencing role (code: RoleDefinitionHasAssignments).",
                );
            }
            let r = w.role_definitions.remove(i);
            Resp::json(200, r.to_json(scope))
        }
        _ => no_route(ctx),
    }
}

fn role_def_missing(ctx: &Ctx, guid: &str) -> Resp {
    err(
        ctx,
        404,
        "RoleDefinitionDoesNotExist",
        &format!("The specified role definition with ID '{guid}' does not exist."),
    )
}

/// A PUT's resource name must be a GUID and its body an object; returns `properties`.
fn put_properties(ctx: &Ctx, name: &str, kind: &str, label: &str) -> Result<Value, Resp> {
    if !is_guid(name) {
        return Err(err(
            ctx,
            400,
            &format!("Invalid{kind}Id"),
            &format!("The {label} ID '{name}' is not valid. The {label} ID must be a GUID."),
        ));
    }
    let body = ctx.json().filter(Value::is_object).ok_or_else(|| {
        err(
            ctx,
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        )
    })?;
    Ok(prop(&body, "properties").cloned().unwrap_or(Value::Null))
}

fn put_role_definition(w: &mut World, ctx: &Ctx, c: &Caller, scope: &str, guid: &str) -> Resp {
    let props = match put_properties(ctx, guid, "RoleDefinition", "role definition") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let role_name = prop_str(&props, "roleName")
        .unwrap_or_default()
        .trim()
        .to_string();
    if role_name.is_empty() {
        return err(
            ctx,
            400,
            "RoleDefinitionNameNullOrEmpty",
            "The role definition name cannot be null or empty.",
        );
    }
    if let Some(t) = prop_str(&props, "type")
        && !t.eq_ignore_ascii_case("CustomRole")
    {
        return err(
            ctx,
            400,
            "InvalidRoleDefinitionType",
            &format!(
                "The role definition type '{t}' is not valid. Only 'CustomRole' can be created or updated."
            ),
        );
    }
    let scopes: Vec<String> = prop(&props, "assignableScopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty() {
        return err(
            ctx,
            400,
            "MissingAssignableScopes",
            "The role definition must have at least one assignable scope.",
        );
    }
    if let Some(r) = super::mgmt::check_assignable_scopes(w, ctx, &c.tenant, &scopes) {
        return r;
    }
    for (i, s) in scopes.iter().enumerate() {
        if super::mgmt::mg_of_scope(s).is_some() {
            continue;
        }
        let sub_ok = s
            .strip_prefix("/subscriptions/")
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .and_then(|id| w.subscription(id))
            .is_some_and(|sub| sub.tenant_id == c.tenant);
        if !sub_ok {
            return err(
                ctx,
                400,
                "LinkedInvalidPropertyId",
                &format!(
                    "Property id '{s}' at path 'properties.assignableScopes[{i}]' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{{subscriptionId}}' or '/providers/{{resourceProviderNamespace}}/'."
                ),
            );
        }
    }
    let action = "Microsoft.Authorization/roleDefinitions/write";
    for s in std::iter::once(scope.to_string()).chain(scopes.iter().cloned()) {
        if !w.allowed(&c.tenant, c.principal.object_id(), &s, action) {
            return authorization_failed(w, ctx, c, action, &s);
        }
    }
    if w.role_definitions
        .iter()
        .any(|r| r.guid.eq_ignore_ascii_case(guid) && r.tenant_id.as_deref() != Some(&c.tenant))
    {
        return err(
            ctx,
            409,
            "RoleDefinitionExists",
            &format!("A role definition with ID '{guid}' already exists."),
        );
    }
    if w.role_definitions.iter().any(|r| {
        r.tenant_id.as_deref() == Some(&c.tenant)
            && !r.guid.eq_ignore_ascii_case(guid)
            && r.role_name.eq_ignore_ascii_case(&role_name)
    }) {
        return err(
            ctx,
            409,
            "RoleDefinitionWithSameNameExists",
            "A custom role with the same name already exists in this directory.",
        );
    }
    let permissions: Vec<Permission> = prop(&props, "permissions")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Permission::from_json).collect())
        .unwrap_or_default();
    let description = prop_str(&props, "description")
        .unwrap_or_default()
        .to_string();
    let now = OffsetDateTime::now_utc();
    let oid = c.principal.object_id().to_string();
    let existing = w
        .role_definitions
        .iter_mut()
        .find(|r| r.guid.eq_ignore_ascii_case(guid) && r.tenant_id.as_deref() == Some(&c.tenant));
    let (status, v) = match existing {
        Some(r) => {
            r.role_name = role_name;
            r.description = description;
            r.permissions = permissions;
            r.assignable_scopes = scopes;
            r.updated_on = now;
            r.updated_by = Some(oid);
            (200, r.to_json(scope))
        }
        None => {
            let r = RoleDefinition {
                guid: guid.to_ascii_lowercase(),
                tenant_id: Some(c.tenant.clone()),
                role_name,
                description,
                permissions,
                assignable_scopes: scopes,
                created_on: now,
                updated_on: now,
                created_by: Some(oid.clone()),
                updated_by: Some(oid),
            };
            let v = r.to_json(scope);
            w.role_definitions.push(r);
            (201, v)
        }
    };
    Resp::json(status, v)
}

pub(super) fn role_assignments(
    sim: &Sim,
    w: &mut World,
    ctx: &Ctx,
    c: &Caller,
    scope: &str,
    name: Option<&str>,
    fault: Option<Fault>,
) -> Resp {
    let oid = c.principal.object_id().to_string();
    match (ctx.method.as_str(), name) {
        ("GET", None) => filtered(
            ctx,
            w.role_assignments.iter().filter(|a| {
                a.tenant_id == c.tenant
                    && (scope_within(&a.scope, scope)
                        // Inherited from above (a management group's once in effect).
                        || (w.covers(&c.tenant, scope, &a.scope) && w.mg_settled(a)))
            }),
            |a, p, v| match p {
                "principalid" | "assignedto" => a.principal_id.eq_ignore_ascii_case(v),
                "atscope" => a.scope.eq_ignore_ascii_case(scope),
                _ => true,
            },
            RoleAssignment::to_json,
        ),
        ("GET", Some(n)) => match w
            .role_assignments
            .iter()
            .find(|a| a.tenant_id == c.tenant && a.name.eq_ignore_ascii_case(n))
        {
            Some(a) => Resp::json(200, a.to_json()),
            None => err(
                ctx,
                404,
                "RoleAssignmentNotFound",
                &format!("The role assignment '{n}' is not found."),
            ),
        },
        ("DELETE", Some(n)) => {
            let action = "Microsoft.Authorization/roleAssignments/delete";
            if !w.allowed(&c.tenant, &oid, scope, action) {
                return authorization_failed(w, ctx, c, action, scope);
            }
            match w
                .role_assignments
                .iter()
                .position(|a| a.tenant_id == c.tenant && a.name.eq_ignore_ascii_case(n))
            {
                Some(i) => Resp::json(200, w.role_assignments.remove(i).to_json()),
                None => Resp::empty(204),
            }
        }
        ("PUT", Some(n)) => put_role_assignment(sim, w, ctx, c, scope, n, fault),
        _ => no_route(ctx),
    }
}

fn put_role_assignment(
    sim: &Sim,
    w: &mut World,
    ctx: &Ctx,
    c: &Caller,
    scope: &str,
    name: &str,
    fault: Option<Fault>,
) -> Resp {
    let props = match put_properties(ctx, name, "RoleAssignment", "role assignment") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (Some(role_id), Some(principal_id)) = (
        prop_str(&props, "roleDefinitionId"),
        prop_str(&props, "principalId"),
    ) else {
        let missing = if prop_str(&props, "roleDefinitionId").is_none() {
            "roleDefinitionId"
        } else {
            "principalId"
        };
        return err(
            ctx,
            400,
            "InvalidRequestContent",
            &format!(
                "The request content was invalid and could not be deserialized: 'Required property '{missing}' not found in JSON. Path 'properties'.'."
            ),
        );
    };
    let requested_type = prop_str(&props, "principalType");
    if let Some(t) = requested_type
        && !PRINCIPAL_TYPES.contains(&t)
    {
        return err(
            ctx,
            400,
            "InvalidRequestContent",
            &format!(
                "The request content was invalid and could not be deserialized: 'Error converting value \"{t}\" to type 'PrincipalType'.'."
            ),
        );
    }
    let action = "Microsoft.Authorization/roleAssignments/write";
    if !w.allowed(&c.tenant, c.principal.object_id(), scope, action) {
        return authorization_failed(w, ctx, c, action, scope);
    }
    let guid = role_guid(role_id).to_string();
    if !w
        .role_definitions
        .iter()
        .any(|r| r.guid.eq_ignore_ascii_case(&guid) && applies_at(w, r, &c.tenant, scope))
    {
        return err(
            ctx,
            400,
            "RoleDefinitionDoesNotExist",
            &format!("The specified role definition with ID '{guid}' does not exist."),
        );
    }
    if let Some(r) = super::mgmt::check_assignment_at_group(w, ctx, &c.tenant, scope, &guid) {
        return r;
    }
    if fault == Some(Fault::PrincipalNotFound) {
        return principal_not_found(ctx, principal_id, &c.tenant);
    }
    // What the directory knows about the principal, as ARM sees it (after replication).
    let user = w
        .users
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(principal_id) && u.tenant == c.tenant);
    let sp = w
        .service_principals
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(principal_id) && s.tenant_id == c.tenant);
    let (actual_type, replicated) = match (user, sp) {
        (Some(_), _) => ("User", true),
        (None, Some(s)) => ("ServicePrincipal", sim.settled(s.born)),
        (None, None) => return principal_not_found(ctx, principal_id, &c.tenant),
    };
    let principal_type = match requested_type {
        None if !replicated => return principal_not_found(ctx, principal_id, &c.tenant),
        None => actual_type,
        Some(t) if replicated && t != actual_type => {
            return err(
                ctx,
                400,
                "UnmatchedPrincipalType",
                &format!(
                    "The PrincipalType in the request '{t}' does not match the principal type '{actual_type}' of the principal ID '{principal_id}'."
                ),
            );
        }
        Some(t) => t,
    };
    let same = |a: &RoleAssignment| {
        a.tenant_id == c.tenant
            && a.scope.eq_ignore_ascii_case(scope)
            && a.principal_id.eq_ignore_ascii_case(principal_id)
            && role_guid(&a.role_definition_id).eq_ignore_ascii_case(&guid)
    };
    if let Some(existing) = w
        .role_assignments
        .iter()
        .find(|a| a.tenant_id == c.tenant && a.name.eq_ignore_ascii_case(name))
    {
        return if same(existing) {
            err(
                ctx,
                409,
                "RoleAssignmentExists",
                "The role assignment already exists.",
            )
        } else {
            err(
                ctx,
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        };
    }
    if let Some(existing) = w.role_assignments.iter().find(|a| same(a)) {
        return err(
            ctx,
            409,
            "RoleAssignmentExists",
            &format!(
                "The role assignment already exists. The ID of the existing role assignment is {}.",
                existing.name.replace('-', "")
            ),
        );
    }
    let a = RoleAssignment {
        name: name.to_ascii_lowercase(),
        tenant_id: c.tenant.clone(),
        scope: scope.to_string(),
        role_definition_id: format!(
            "{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        ),
        principal_id: principal_id.to_ascii_lowercase(),
        principal_type: principal_type.to_string(),
        created_on: OffsetDateTime::now_utc(),
        created_by: Some(c.principal.object_id().to_string()),
        born: Instant::now(),
    };
    let v = a.to_json();
    w.role_assignments.push(a);
    Resp::json(201, v)
}
