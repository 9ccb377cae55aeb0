//! Management groups (Microsoft.Management, api-version 2020-05-01 / 2023-04-01): the tree of
//! each tenant (its root group's id is the tenant id), the subscriptions placed in it, and the
//! routes `GET /providers/Microsoft.Management/managementGroups`, `GET …/{id}` (with
//! `$expand=children&$recurse=true`), `GET …/{id}/descendants` (paged with `$top`,
//! `$skiptoken` and `nextLink`), and Microsoft.Authorization at a group's scope (role
//! definitions, role assignments, permissions). Inheritance lives in `World::covers`: an
//! assignment at a group applies to every group and subscription below it, subscriptions placed
//! there later included (reference/fleet-and-policies.md §1). Guesses: docs/simulator.md.

use super::arm::{self, Caller};
use super::faults::Fault;
use super::seed::*;
use super::state::{Permission, RoleAssignment, World, scope_within, sub_scope};
use super::{Ctx, Resp, Sim};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub const MG_PREFIX: &str = "/providers/Microsoft.Management/managementGroups/";
/// The most role assignments at one management group (azure-subscription-service-limits).
pub const MAX_ASSIGNMENTS_PER_MG: usize = 500;
/// The most assignable scopes of one custom role.
pub const MAX_ASSIGNABLE_SCOPES: usize = 2000;
/// Items per page of `descendants` when `$top` is not given (a guess: docs/simulator.md).
pub const DESCENDANTS_PAGE: usize = 100;

pub struct ManagementGroup {
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    /// None for a tenant's root group.
    pub parent: Option<String>,
}

/// The management-group tree of every tenant.
#[derive(Default)]
pub struct Tree {
    pub groups: Vec<ManagementGroup>,
    /// Subscription id (lower case) → its group; a subscription not listed is under its
    /// tenant's root group.
    pub parents: HashMap<String, String>,
    /// How long an assignment at a management group takes before Spot's validation (and ARM's
    /// listing at a scope below it) sees it (`--mg-propagation-delay`).
    pub propagation: Duration,
}

pub fn mg_scope(id: &str) -> String {
    format!("{MG_PREFIX}{id}")
}

/// The group id of a management-group scope (`/providers/Microsoft.Management/managementGroups/X`).
pub fn mg_of_scope(scope: &str) -> Option<&str> {
    let s = scope.trim_end_matches('/');
    let rest = s.get(MG_PREFIX.len()..)?;
    (s[..MG_PREFIX.len()].eq_ignore_ascii_case(MG_PREFIX) && !rest.contains('/')).then_some(rest)
}

impl Tree {
    pub fn group(&self, tenant: &str, id: &str) -> Option<&ManagementGroup> {
        self.groups
            .iter()
            .find(|g| g.tenant_id == tenant && g.id.eq_ignore_ascii_case(id))
    }

    /// A group by its id in any tenant: its (id, tenant) as recorded.
    pub fn find_any(&self, id: &str) -> Option<(String, String)> {
        self.groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(id))
            .map(|g| (g.id.clone(), g.tenant_id.clone()))
    }

    /// The group a subscription is placed in (its tenant's root group when none is recorded).
    pub fn parent_of_sub(&self, tenant: &str, sub: &str) -> String {
        self.parents
            .get(&sub.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| tenant.to_string())
    }

    /// The groups above `scope` (a subscription, something in one, or a group), nearest first;
    /// a group's own id is not included.
    pub fn ancestors(&self, tenant: &str, scope: &str) -> Vec<String> {
        let s = scope.trim_end_matches('/');
        let mut at = if let Some(id) = mg_of_scope(s) {
            self.group(tenant, id).and_then(|g| g.parent.clone())
        } else if let Some(rest) = s
            .get(..15)
            .filter(|p| p.eq_ignore_ascii_case("/subscriptions/"))
            .map(|_| &s[15..])
        {
            let sub = rest.split('/').next().unwrap_or_default();
            Some(self.parent_of_sub(tenant, sub))
        } else {
            None
        };
        let mut out = Vec::new();
        while let Some(id) = at.take() {
            if out.iter().any(|o: &String| o.eq_ignore_ascii_case(&id)) || out.len() > 16 {
                break;
            }
            at = self.group(tenant, &id).and_then(|g| g.parent.clone());
            out.push(id);
        }
        out
    }

    /// Direct children of a group: groups, then subscriptions (ids) of `subs`.
    fn children<'a>(
        &'a self,
        tenant: &str,
        id: &str,
        subs: &'a [super::state::Subscription],
    ) -> (
        Vec<&'a ManagementGroup>,
        Vec<&'a super::state::Subscription>,
    ) {
        let groups = self
            .groups
            .iter()
            .filter(|g| {
                g.tenant_id == tenant
                    && g.parent
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(id))
            })
            .collect();
        let subs = subs
            .iter()
            .filter(|s| {
                s.tenant_id == tenant && self.parent_of_sub(tenant, &s.id).eq_ignore_ascii_case(id)
            })
            .collect();
        (groups, subs)
    }
}

impl World {
    /// Is `scope` equal to or below `parent`, management groups included?
    pub fn covers(&self, tenant: &str, scope: &str, parent: &str) -> bool {
        if scope_within(scope, parent) {
            return true;
        }
        match mg_of_scope(parent) {
            Some(id) => self
                .mgmt
                .ancestors(tenant, scope)
                .iter()
                .any(|a| a.eq_ignore_ascii_case(id)),
            None => false,
        }
    }

    /// Whether an assignment has taken effect for Spot's validation: a management group's
    /// later than the rest (`--mg-propagation-delay`).
    pub fn mg_settled(&self, a: &RoleAssignment) -> bool {
        mg_of_scope(&a.scope).is_none() || a.born.elapsed() >= self.mgmt.propagation
    }

    /// Places `sub` in group `mg` (which must exist in its tenant).
    pub fn place_subscription(&mut self, sub: &str, mg: &str) {
        self.mgmt
            .parents
            .insert(sub.to_ascii_lowercase(), mg.to_string());
    }
}

/// The seeded tree: every tenant's root group; in Contoso two levels below it,
/// `contoso-spot` (Contoso Dev, Contoso Legacy, the bulk subscriptions) and under it
/// `contoso-spot-prod` (Contoso Production). The operator and ci-operator are Owner at
/// `contoso-spot` (fixed assignment names: the generated ids of the rest do not move).
pub fn seed(w: &mut World, propagation: Duration) {
    let now = OffsetDateTime::now_utc();
    let old = Instant::now()
        .checked_sub(Duration::from_secs(86_400))
        .unwrap_or_else(Instant::now);
    w.mgmt.propagation = propagation;
    let tenants: Vec<String> = w.tenants.iter().map(|t| t.id.clone()).collect();
    for t in tenants {
        w.mgmt.groups.push(ManagementGroup {
            id: t.clone(),
            tenant_id: t.clone(),
            display_name: "Tenant Root Group".into(),
            parent: None,
        });
    }
    for (id, name, parent) in [
        (MG_SPOT, MG_SPOT_NAME, CONTOSO_TENANT_ID),
        (MG_SPOT_PROD, MG_SPOT_PROD_NAME, MG_SPOT),
    ] {
        w.mgmt.groups.push(ManagementGroup {
            id: id.into(),
            tenant_id: CONTOSO_TENANT_ID.into(),
            display_name: name.into(),
            parent: Some(parent.into()),
        });
    }
    let contoso: Vec<String> = w
        .subscriptions
        .iter()
        .filter(|s| s.tenant_id == CONTOSO_TENANT_ID)
        .map(|s| s.id.clone())
        .collect();
    for s in contoso {
        let mg = if s.eq_ignore_ascii_case(SUB_CONTOSO_PROD) {
            MG_SPOT_PROD
        } else {
            MG_SPOT
        };
        w.place_subscription(&s, mg);
    }
    for (name, principal, ptype) in [
        (
            "0a000006-0000-4000-8000-0000000000a1",
            OPERATOR_USER_ID,
            "User",
        ),
        (
            "0a000006-0000-4000-8000-0000000000a2",
            CI_OPERATOR_SP_ID,
            "ServicePrincipal",
        ),
    ] {
        let scope = mg_scope(MG_SPOT);
        w.role_assignments.push(RoleAssignment {
            name: name.into(),
            tenant_id: CONTOSO_TENANT_ID.into(),
            role_definition_id: format!(
                "{scope}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_OWNER}"
            ),
            scope,
            principal_id: principal.into(),
            principal_type: ptype.into(),
            created_on: now - time::Duration::days(30),
            created_by: None,
            born: old,
        });
    }
}

fn group_json(g: &ManagementGroup) -> Value {
    json!({
        "id": mg_scope(&g.id),
        "type": "Microsoft.Management/managementGroups",
        "name": g.id,
        "properties": {"tenantId": g.tenant_id, "displayName": g.display_name},
    })
}

fn sub_child(s: &super::state::Subscription) -> Value {
    json!({"id": sub_scope(&s.id), "type": "/subscriptions", "name": s.id, "displayName": s.name})
}

fn children_json(w: &World, tenant: &str, id: &str, recurse: bool, depth: usize) -> Vec<Value> {
    let (groups, subs) = w.mgmt.children(tenant, id, &w.subscriptions);
    let mut out: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut c = json!({
                "id": mg_scope(&g.id), "type": "Microsoft.Management/managementGroups",
                "name": g.id, "displayName": g.display_name,
            });
            if recurse && depth < 8 {
                c["children"] = json!(children_json(w, tenant, &g.id, true, depth + 1));
            }
            c
        })
        .collect();
    out.extend(subs.into_iter().map(sub_child));
    out
}

/// Everything below a group, depth first (groups before their subscriptions).
fn descendants(w: &World, tenant: &str, id: &str, out: &mut Vec<Value>, depth: usize) {
    let (groups, subs) = w.mgmt.children(tenant, id, &w.subscriptions);
    let parent = json!({"id": mg_scope(id)});
    for g in groups {
        out.push(json!({
            "id": mg_scope(&g.id), "type": "Microsoft.Management/managementGroups", "name": g.id,
            "properties": {"displayName": g.display_name, "parent": parent},
        }));
        if depth < 8 {
            descendants(w, tenant, &g.id, out, depth + 1);
        }
    }
    for s in subs {
        out.push(json!({
            "id": sub_scope(&s.id), "type": "/subscriptions", "name": s.id,
            "properties": {"displayName": s.name, "parent": parent},
        }));
    }
}

const MG_READ: &str = "Microsoft.Management/managementGroups/read";

/// `/providers/Microsoft.Management/managementGroups[/…]` (`rest`: the lower-cased segments
/// after `managementGroups`, `segs` the original ones).
pub(super) fn route(
    sim: &Sim,
    w: &mut World,
    ctx: &Ctx,
    c: &Caller,
    rest: &[&str],
    segs: &[&str],
    fault: Option<Fault>,
) -> Resp {
    let oid = c.principal.object_id().to_string();
    match (ctx.method.as_str(), rest) {
        ("GET", []) => {
            let value: Vec<Value> = w
                .mgmt
                .groups
                .iter()
                .filter(|g| g.tenant_id == c.tenant)
                .filter(|g| w.allowed(&c.tenant, &oid, &mg_scope(&g.id), MG_READ))
                .map(group_json)
                .collect();
            Resp::json(200, json!({"value": value}))
        }
        (_, [_, tail @ ..]) => {
            let id = segs[3];
            let scope = mg_scope(id);
            let Some(g) = w.mgmt.group(&c.tenant, id) else {
                // ARM does not tell a missing group from one the caller may not read.
                return arm::authorization_failed(w, ctx, c, MG_READ, &scope);
            };
            let id = g.id.clone();
            let scope = mg_scope(&id);
            if !w.allowed(&c.tenant, &oid, &scope, MG_READ) {
                return arm::authorization_failed(w, ctx, c, MG_READ, &scope);
            }
            match (ctx.method.as_str(), tail) {
                ("GET", []) => {
                    let mut v = group_json(g);
                    let parent = g.parent.clone();
                    v["properties"]["details"] = json!({
                        "parent": parent.as_ref().map(|p| json!({
                            "id": mg_scope(p), "name": p,
                            "displayName": w.mgmt.group(&c.tenant, p).map(|g| g.display_name.clone()),
                        })),
                    });
                    let expand = ctx
                        .q("$expand")
                        .is_some_and(|e| e.eq_ignore_ascii_case("children"));
                    let recurse = ctx.q("$recurse").is_some_and(|r| r == "true");
                    if expand {
                        v["properties"]["children"] =
                            json!(children_json(w, &c.tenant, &id, recurse, 0));
                    }
                    Resp::json(200, v)
                }
                ("GET", ["descendants"]) => {
                    let mut all = Vec::new();
                    descendants(w, &c.tenant, &id, &mut all, 0);
                    let skip: usize = ctx
                        .q("$skiptoken")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let top = ctx
                        .q("$top")
                        .and_then(|s| s.parse::<usize>().ok())
                        .filter(|t| *t > 0)
                        .unwrap_or(DESCENDANTS_PAGE);
                    let page: Vec<Value> = all.iter().skip(skip).take(top).cloned().collect();
                    let mut body = json!({"value": page});
                    if skip + top < all.len() {
                        let api = ctx.q("api-version").unwrap_or_default();
                        body["nextLink"] = json!(format!(
                            "{}{MG_PREFIX}{id}/descendants?api-version={api}&%24top={top}&%24skiptoken={}",
                            sim.arm_base(),
                            skip + top
                        ));
                    }
                    Resp::json(200, body)
                }
                (_, ["providers", "microsoft.authorization", coll, more @ ..])
                    if more.len() <= 1 =>
                {
                    let name = more.first().map(|_| segs[7]);
                    match *coll {
                        "roledefinitions" => arm::role_definitions(w, ctx, c, &scope, name),
                        "roleassignments" => {
                            arm::role_assignments(sim, w, ctx, c, &scope, name, fault)
                        }
                        "permissions" if name.is_none() && ctx.method == "GET" => {
                            let perms = w.effective_permissions(&c.tenant, &oid, &scope, |_| true);
                            Resp::json(
                                200,
                                json!({"value": perms.iter().map(Permission::to_json).collect::<Vec<_>>()}),
                            )
                        }
                        _ => arm::no_route(ctx),
                    }
                }
                _ => arm::no_route(ctx),
            }
        }
        _ => arm::no_route(ctx),
    }
}

/// The checks ARM makes on a custom role's assignable scopes that name management groups:
/// each must exist in the caller's tenant, at most one of them, at most 2,000 scopes in all.
pub(super) fn check_assignable_scopes(
    w: &World,
    ctx: &Ctx,
    tenant: &str,
    scopes: &[String],
) -> Option<Resp> {
    if scopes.len() > MAX_ASSIGNABLE_SCOPES {
        return Some(ctx.service.error(
            ctx,
            400,
            "RoleDefinitionAssignableScopesLimitExceeded",
            &format!(
                "A custom role can have at most {MAX_ASSIGNABLE_SCOPES} assignable scopes; this one has {}.",
                scopes.len()
            ),
        ));
    }
    let groups: Vec<&str> = scopes.iter().filter_map(|s| mg_of_scope(s)).collect();
    if groups.len() > 1 {
        return Some(ctx.service.error(
            ctx,
            400,
            "InvalidAssignableScopes",
            &format!(
                "Only one management group can be specified in the assignable scopes of a custom role; found {}: {}.",
                groups.len(),
                groups.join(", ")
            ),
        ));
    }
    for (i, id) in scopes.iter().enumerate() {
        if let Some(g) = mg_of_scope(id)
            && w.mgmt.group(tenant, g).is_none()
        {
            return Some(ctx.service.error(
                ctx,
                400,
                "LinkedInvalidPropertyId",
                &format!(
                    "Property id '{id}' at path 'properties.assignableScopes[{i}]' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{{subscriptionId}}' or '/providers/{{resourceProviderNamespace}}/'."
                ),
            ));
        }
    }
    None
}

/// The checks of an assignment at a management group: the role has no DataActions (the
/// documented refusal), and the group holds fewer than 500 assignments.
pub(super) fn check_assignment_at_group(
    w: &World,
    ctx: &Ctx,
    tenant: &str,
    scope: &str,
    role_guid: &str,
) -> Option<Resp> {
    let id = mg_of_scope(scope)?;
    let role = w.role_definition(tenant, role_guid)?;
    if role.tenant_id.is_some() && role.permissions.iter().any(|p| !p.data_actions.is_empty()) {
        // netr0m/az-pim-cli#97; learn.microsoft.com custom-roles#custom-role-limits.
        return Some(ctx.service.error(
            ctx,
            400,
            "InvalidCreateRoleAssignmentRequest",
            "Role assignments to Management Groups can not be made to custom role definitions with DataActions",
        ));
    }
    let n = w
        .role_assignments
        .iter()
        .filter(|a| a.tenant_id == tenant && a.scope.eq_ignore_ascii_case(scope))
        .count();
    if n >= MAX_ASSIGNMENTS_PER_MG {
        return Some(ctx.service.error(
            ctx,
            400,
            "RoleAssignmentLimitExceeded",
            &format!(
                "No more role assignments can be created for management group '{id}': it has {n} (the limit is {MAX_ASSIGNMENTS_PER_MG})."
            ),
        ));
    }
    None
}

/// `POST {inspect}/management-groups/subscriptions?group=G[&id=ID][&name=N][&tenant=T]`: a new
/// Enabled subscription placed in group G (made while the simulator runs), or, with an `id` that
/// exists, that subscription moved to G. Answers the subscription.
pub(super) fn inspect_place(w: &mut World, ctx: &Ctx) -> Resp {
    let Some(group) = ctx.q("group").map(str::to_string) else {
        return ctx.service.error(
            ctx,
            400,
            "BadRequest",
            "group (a management group id) is required.",
        );
    };
    let tenant = match ctx.q("id").and_then(|id| w.subscription(id)) {
        Some(s) => s.tenant_id.clone(),
        None => ctx.q("tenant").unwrap_or(CONTOSO_TENANT_ID).to_string(),
    };
    let Some(g) = w.mgmt.group(&tenant, &group).map(|g| g.id.clone()) else {
        return ctx.service.error(
            ctx,
            404,
            "NotFound",
            &format!("No management group {group} in tenant {tenant}."),
        );
    };
    let id = match ctx.q("id") {
        Some(id) if w.subscription(id).is_some() => id.to_ascii_lowercase(),
        Some(id) if uuid::Uuid::parse_str(id).is_err() => {
            return ctx
                .service
                .error(ctx, 400, "BadRequest", "id must be a subscription GUID.");
        }
        given => {
            let id = given
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| w.new_guid());
            let n = w.subscriptions.len() + 1;
            let name = ctx
                .q("name")
                .map(str::to_string)
                .unwrap_or_else(|| format!("Contoso New {n:03}"));
            w.subscriptions.push(super::state::Subscription {
                id: id.clone(),
                tenant_id: tenant.clone(),
                name,
                state: "Enabled",
            });
            id
        }
    };
    w.place_subscription(&id, &g);
    let s = w.subscription(&id).map(|s| {
        json!({"subscriptionId": s.id, "tenantId": s.tenant_id, "displayName": s.name, "managementGroup": g})
    });
    Resp::json(200, s.unwrap_or(Value::Null))
}

/// `POST {inspect}/management-groups/assignments?group=G&count=N`: N Reader assignments of
/// other principals (made-up object ids) at group G, so that a test reaches the 500 limit.
pub(super) fn inspect_fill(w: &mut World, ctx: &Ctx) -> Resp {
    let (Some(group), Some(count)) = (
        ctx.q("group"),
        ctx.q("count").and_then(|c| c.parse::<usize>().ok()),
    ) else {
        return ctx.service.error(
            ctx,
            400,
            "BadRequest",
            "group and count (a number) are required.",
        );
    };
    let Some(g) = w.mgmt.find_any(group) else {
        return ctx.service.error(
            ctx,
            404,
            "NotFound",
            &format!("No management group {group}."),
        );
    };
    fill(w, &g.0, &g.1, count);
    Resp::empty(204)
}

/// N Reader assignments of made-up principals at group `id` of `tenant`.
pub(super) fn fill(w: &mut World, id: &str, tenant: &str, count: usize) {
    let scope = mg_scope(id);
    for _ in 0..count.min(5000) {
        let (name, principal) = (w.new_guid(), w.new_guid());
        w.role_assignments.push(RoleAssignment {
            name,
            tenant_id: tenant.to_string(),
            role_definition_id: format!(
                "{scope}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_READER}"
            ),
            scope: scope.clone(),
            principal_id: principal,
            principal_type: "User".into(),
            created_on: OffsetDateTime::now_utc(),
            created_by: None,
            born: Instant::now(),
        });
    }
}

/// The tree in `GET {inspect}/state` (`managementGroups`).
pub fn inspect_json(w: &World) -> Value {
    json!(w
        .mgmt
        .groups
        .iter()
        .map(|g| {
            let subs: Vec<&str> = w
                .subscriptions
                .iter()
                .filter(|s| s.tenant_id == g.tenant_id && w.mgmt.parent_of_sub(&s.tenant_id, &s.id).eq_ignore_ascii_case(&g.id))
                .map(|s| s.id.as_str())
                .collect();
            json!({"id": g.id, "tenantId": g.tenant_id, "displayName": g.display_name, "parent": g.parent, "subscriptions": subs})
        })
        .collect::<Vec<_>>())
}

/// `POST {inspect}/secrets/expire?keyId=K&days=N` (`SimHandle::expire_secret`): the client secret
/// `keyId` now ends in N days (`endDateTime`), and every Spot account holding it shows the same
/// `expirationDate` (Spot keeps what it was told when the secret was set, which was its end):
/// a secret near expiry, for `reconcile`'s rotation. Answers the new end.
pub(super) fn expire_secret(w: &mut World, key_id: &str, days: i64) -> Option<String> {
    let end = OffsetDateTime::now_utc().replace_nanosecond(0).ok()? + time::Duration::days(days);
    let mut text = None;
    for a in &mut w.applications {
        for p in &mut a.password_credentials {
            if p.key_id.eq_ignore_ascii_case(key_id) {
                p.end = end;
                text = Some(p.secret_text.clone());
            }
        }
    }
    let text = text?;
    let stamp = super::state::rfc3339(end);
    for acct in &mut w.spot_accounts {
        if let Some(c) = acct.credentials.as_mut()
            && c.client_secret == text
        {
            c.expiration_date = stamp.clone();
        }
    }
    Some(stamp)
}
