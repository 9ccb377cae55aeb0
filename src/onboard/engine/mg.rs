//! The engine at a management group (`--management-group`, issue 19): the tenant's role is the
//! group's own (assignable at the group only: a custom role may name one group), assigned ONCE
//! at the group, which every enabled subscription below inherits (nested groups, later ones
//! too); each subscription still gets its Spot account and connection. Limits are checked in
//! the plan before any write: one group per role, 500 assignments per group, no DataActions at
//! a group (split: Actions at the group, DataActions in a role assigned per subscription, within
//! a custom role's 2,000 assignable scopes). Waits on the group's assignment say so and may take
//! 30 minutes. Subscription-scope assignments of an earlier per-subscription run are kept, and
//! removed only with `--prune-subscription-assignments` once the group's is seen in effect.

use super::*;
use crate::onboard::fleet::{self, MgScope};

/// The role's name for this run: the group's own at a management group.
pub(super) fn role_name(settings: &Settings) -> String {
    match &settings.management_group {
        Some(m) => fleet::mg_role_name(&settings.role_name(), &m.id),
        None => settings.role_name(),
    }
}

/// At a management group, a policy with DataActions is split: the role at the group keeps the
/// Actions, the returned second policy holds the DataActions (assigned per subscription).
pub(super) fn split_policy(policy: Policy, settings: &Settings) -> (Policy, Option<Policy>) {
    if settings.management_group.is_none()
        || (policy.data_actions.is_empty() && policy.not_data_actions.is_empty())
    {
        return (policy, None);
    }
    let mut actions = policy.clone();
    actions.data_actions.clear();
    actions.not_data_actions.clear();
    let mut data = policy;
    data.actions.clear();
    data.not_actions.clear();
    (actions, Some(data))
}

#[derive(Debug)]
pub(super) struct MgFacts {
    pub(super) id: String,
    pub(super) scope: String,
    pub(super) display_name: String,
    /// The caller's permissions at the group (None: could not be read; not blocking).
    permissions: Option<Vec<Permission>>,
    /// Our role's assignment to our service principal at the group.
    assignment: Option<RoleAssignment>,
    /// How many assignments the group holds (None: could not be counted).
    at_group: Option<usize>,
    excluded: Vec<Target>,
    prune: bool,
    /// Our subscription-scope assignments of the per-subscription role, from earlier runs.
    legacy: Vec<Legacy>,
    /// Groups other than ours our role already names (a custom role may name one).
    other_groups: Vec<String>,
    data: Option<DataFacts>,
}

#[derive(Debug)]
struct Legacy {
    sub: String,
    assignment: RoleAssignment,
}

/// The DataActions half of a split policy: a role assigned per subscription.
#[derive(Debug)]
struct DataFacts {
    role_name: String,
    policy: Policy,
    role: RoleFact,
    /// Subscriptions (lower case) where it is assigned to our service principal already.
    assigned: Vec<String>,
}

fn listed_at(list: &[RoleAssignment], scope: &str, role: &str) -> Option<RoleAssignment> {
    list.iter()
        .find(|a| {
            a.properties
                .scope
                .as_deref()
                .is_some_and(|s| same_scope(s, scope))
                && arm::same_role(&a.properties.role_definition_id, role)
        })
        .cloned()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn lookup(
    session: &Session,
    arm: &Arm,
    settings: &Settings,
    m: &MgScope,
    sp: Option<&ServicePrincipal>,
    role: &RoleFact,
    subs: &[&Target],
    data_policy: Option<&Policy>,
) -> Result<MgFacts> {
    let scope = fleet::scope(&m.id);
    let tenant = subs
        .first()
        .map(|s| s.tenant_id.clone())
        .unwrap_or_default();
    // The caller's permissions at the group, our assignment there, and the per-subscription
    // role (of an earlier run without --management-group): independent reads, at once.
    let base_id = format!(
        "/providers/Microsoft.Authorization/roleDefinitions/{}",
        policy::role_definition_guid(&tenant, &settings.role_name())
    );
    let base_f = async {
        match sp {
            Some(_) => read(|| arm.get_role_definition(&base_id)).await,
            None => Ok(None),
        }
    };
    let assignment_f = async {
        match (sp, role) {
            (Some(sp), RoleFact::Ours(r)) => {
                let list = read(|| arm.list_role_assignments(&scope, &sp.id)).await?;
                Ok::<_, Error>(listed_at(&list, &scope, &r.id))
            }
            _ => Ok(None),
        }
    };
    let (permissions, assignment, base) =
        tokio::join!(read(|| arm.permissions(&scope)), assignment_f, base_f);
    let permissions = match permissions {
        Ok(p) => Some(p),
        Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Some(vec![]),
        Err(Error::Api(e)) if e.class() == ErrorClass::NotFound => None,
        Err(e) => return Err(e),
    };
    let assignment = assignment?;
    let base = base?;
    let at_group = if assignment.is_none() {
        read(|| arm.count_role_assignments_at(&scope)).await.ok()
    } else {
        None
    };
    let other_groups = match role {
        RoleFact::Ours(r) => r
            .properties
            .assignable_scopes
            .iter()
            .filter(|s| {
                s.to_ascii_lowercase()
                    .starts_with("/providers/microsoft.management/")
            })
            .filter(|s| !same_scope(s, &scope))
            .cloned()
            .collect(),
        _ => vec![],
    };
    // Subscription-scope assignments of the per-subscription role (an earlier run without
    // --management-group): only when that role exists and is ours.
    let mut legacy = Vec::new();
    if let (Some(sp), Some(base)) = (sp, base)
        && is_our_role(&base)
    {
        for chunk in subs.chunks(LOOKUP_CONCURRENCY) {
            let found = futures::future::join_all(chunk.iter().map(|s| {
                let sub = s.subscription_id.clone();
                let base = &base;
                async move {
                    let a = find_assignment(arm, &sub, &sp.id, base).await?;
                    Ok::<_, Error>(a.map(|assignment| Legacy { sub, assignment }))
                }
            }))
            .await;
            for f in found {
                legacy.extend(f?);
            }
        }
    }
    let data = match data_policy {
        None => None,
        Some(p) => {
            let name = fleet::data_role_name(&settings.role_name());
            let id = format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{}",
                policy::role_definition_guid(&tenant, &name)
            );
            let role = match read(|| arm.get_role_definition(&id)).await? {
                None => RoleFact::Missing,
                Some(r) if is_our_role(&r) => RoleFact::Ours(r),
                Some(r) => RoleFact::Foreign(r),
            };
            let mut assigned = Vec::new();
            if let (Some(sp), RoleFact::Ours(r)) = (sp, &role) {
                for s in subs {
                    if find_assignment(arm, &s.subscription_id, &sp.id, r)
                        .await?
                        .is_some()
                    {
                        assigned.push(s.subscription_id.to_ascii_lowercase());
                    }
                }
            }
            Some(DataFacts {
                role_name: name,
                policy: p.clone(),
                role,
                assigned,
            })
        }
    };
    let _ = session;
    Ok(MgFacts {
        id: m.id.clone(),
        scope,
        display_name: m.display_name.clone(),
        permissions,
        assignment,
        at_group,
        excluded: m.excluded.clone(),
        prune: m.prune_subscription_assignments,
        legacy,
        other_groups,
        data,
    })
}

impl MgFacts {
    fn can(&self, action: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| arm::permits(p, action))
    }

    fn lacks(&self, action: &str) -> String {
        format!(
            "you lack {action} at management group {} ({}): you need Owner or User Access Administrator on the group",
            self.id, self.scope
        )
    }
}

/// The role's plan line at a group: one role per group, and the split when there is one.
pub(super) fn amend_role_item(item: &mut PlanItem, _f: &TenantFacts, m: &MgFacts) {
    item.reason.push_str(&format!(
        "; one role per management group (a custom role may name only one): its GUID is derived from the tenant and {}",
        m.id
    ));
    if let Some(d) = &m.data {
        item.reason.push_str(&format!(
            "; Actions only: the policy's {} DataAction(s) go to {} assigned at each subscription (a role with DataActions cannot be assigned at a management group)",
            d.policy.data_actions.len() + d.policy.not_data_actions.len(),
            d.role_name
        ));
    }
    if !m.other_groups.is_empty() {
        item.action = PlanAction::Blocked;
        item.reason = format!(
            "{} already names management group(s) {} in its assignable scopes: a custom role may name only one; nothing is changed",
            item.name,
            m.other_groups.join(", ")
        );
    } else if matches!(item.action, PlanAction::Create | PlanAction::Update)
        && !m.can(NEED_ROLE_DEF_WRITE)
    {
        item.action = PlanAction::Blocked;
        item.reason = m.lacks(NEED_ROLE_DEF_WRITE);
    }
}

/// The group's own plan items: the group, the one assignment at it, excluded subscriptions,
/// subscription-scope assignments kept or pruned, the DataActions role and its assignments.
pub(super) fn items(f: &TenantFacts, m: &MgFacts) -> Vec<PlanItem> {
    let item = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        super::tenant_item(f, step, object, name, action, id, reason)
    };
    let mut out = vec![item(
        Step::Subscription,
        "management group",
        &m.display_name,
        PlanAction::Reuse,
        Some(m.scope.clone()),
        format!(
            "{} enabled subscription(s) below {} (nested groups included) get a Spot account and connection; one role assignment at the group covers them all, and every subscription placed below it later",
            f.subs.len(),
            m.id
        ),
    )];
    out.push(match &m.assignment {
        Some(a) => item(
            Step::RoleAssignment,
            "role assignment",
            &f.role_name,
            PlanAction::Reuse,
            Some(a.id.clone()),
            format!(
                "the role is assigned to the service principal at management group {}: every subscription below inherits it",
                m.id
            ),
        ),
        None if !m.can(NEED_ROLE_ASSIGN_WRITE) => item(
            Step::RoleAssignment,
            "role assignment",
            &f.role_name,
            PlanAction::Blocked,
            None,
            m.lacks(NEED_ROLE_ASSIGN_WRITE),
        ),
        None if m.at_group.is_some_and(|n| n >= fleet::MAX_ASSIGNMENTS_PER_MG) => item(
            Step::RoleAssignment,
            "role assignment",
            &f.role_name,
            PlanAction::Blocked,
            None,
            format!(
                "management group {} already holds {} role assignments: Azure allows {} per management group; nothing is changed",
                m.id,
                m.at_group.unwrap_or_default(),
                fleet::MAX_ASSIGNMENTS_PER_MG
            ),
        ),
        None => item(
            Step::RoleAssignment,
            "role assignment",
            &f.role_name,
            PlanAction::Create,
            None,
            format!(
                "assign the role to the app's service principal once, at management group {} ({}); Azure can take up to 30 minutes to propagate an assignment at a management group, so the connections wait up to 30 minutes for it",
                m.id, m.scope
            ),
        ),
    });
    for t in &m.excluded {
        out.push(PlanItem {
            subscription_id: Some(t.subscription_id.clone()),
            hint: Some(crate::error::Hint::Excluded),
            ..item(
                Step::Subscription,
                "excluded subscription",
                &t.subscription_name,
                PlanAction::Keep,
                None,
                format!(
                    "left out of Spot: no Spot account or connection is made for it; it still inherits the role assignment at management group {} (Azure RBAC has no exclusion below an assignment)",
                    m.id
                ),
            )
        });
    }
    for l in &m.legacy {
        let (action, reason, hint) = if m.prune {
            (
                PlanAction::Update,
                format!(
                    "pruned as asked: removed once the assignment at management group {} is seen in effect at this subscription (checked after the connections; otherwise kept and said so)",
                    m.id
                ),
                None,
            )
        } else {
            (
                PlanAction::Keep,
                format!(
                    "kept: live connections rely on it while the assignment at management group {} takes effect (up to 30 minutes)",
                    m.id
                ),
                Some(crate::error::Hint::PruneSubscriptionAssignments),
            )
        };
        out.push(PlanItem {
            subscription_id: Some(l.sub.clone()),
            hint,
            ..item(
                Step::RoleAssignment,
                "subscription role assignment",
                &l.assignment.name,
                action,
                Some(l.assignment.id.clone()),
                reason,
            )
        });
    }
    if let Some(d) = &m.data {
        let over = fleet::split_over_limit(f.subs.len());
        let mut role = match (&d.role, &over) {
            (_, Some(why)) => item(
                Step::CustomRole,
                "custom role",
                &d.role_name,
                PlanAction::Blocked,
                None,
                why.clone(),
            ),
            (RoleFact::Foreign(r), _) => item(
                Step::CustomRole,
                "custom role",
                &d.role_name,
                PlanAction::Blocked,
                Some(r.id.clone()),
                format!(
                    "a role named {} exists ({}) but was not made by spot-connect: it is never changed",
                    d.role_name, r.id
                ),
            )
            .not_ours()
            .with_hint(Some(crate::error::Hint::ChooseRoleName)),
            (RoleFact::Ours(r), _) => {
                let missing = f
                    .subs
                    .iter()
                    .filter(|s| !lists_scope(r, &s.scope()))
                    .count();
                if missing == 0 {
                    item(
                        Step::CustomRole,
                        "custom role",
                        &d.role_name,
                        PlanAction::Reuse,
                        Some(r.id.clone()),
                        "ours: the policy's DataActions, assignable at every subscription of the run".into(),
                    )
                } else {
                    item(
                        Step::CustomRole,
                        "custom role",
                        &d.role_name,
                        PlanAction::Update,
                        Some(r.id.clone()),
                        format!("ours: add {missing} subscription(s) to its assignable scopes"),
                    )
                }
            }
            (RoleFact::Missing, _) => item(
                Step::CustomRole,
                "custom role",
                &d.role_name,
                PlanAction::Create,
                None,
                format!(
                    "the policy's DataActions ({}), which cannot be assigned at a management group: assignable at each of the {} subscription(s) (at most {} for one custom role)",
                    d.policy.data_actions.join(", "),
                    f.subs.len(),
                    fleet::MAX_ASSIGNABLE_SCOPES
                ),
            ),
        };
        if matches!(role.action, PlanAction::Create | PlanAction::Update) {
            let denied: Vec<&SubFacts> = f
                .subs
                .iter()
                .filter(|s| !s.can(NEED_ROLE_DEF_WRITE))
                .collect();
            if !denied.is_empty() {
                role.action = PlanAction::Blocked;
                role.reason = lacks(NEED_ROLE_DEF_WRITE, &denied);
            }
        }
        out.push(role);
        for s in &f.subs {
            let sub = s.target.subscription_id.as_str();
            let (action, reason) = if d.assigned.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                (
                    PlanAction::Reuse,
                    "the DataActions role is assigned to the service principal here".to_string(),
                )
            } else if !s.can(NEED_ROLE_ASSIGN_WRITE) {
                (PlanAction::Blocked, lacks(NEED_ROLE_ASSIGN_WRITE, &[s]))
            } else {
                (
                    PlanAction::Create,
                    format!(
                        "assign the DataActions role at {} (the split: it cannot be assigned at the management group)",
                        s.scope()
                    ),
                )
            };
            out.push(PlanItem {
                subscription_id: Some(sub.to_string()),
                ..item(
                    Step::RoleAssignment,
                    "role assignment (data actions)",
                    &d.role_name,
                    action,
                    None,
                    reason,
                )
            });
        }
    }
    out
}

/// The waits' budget: 30 minutes at a management group.
pub(super) fn backoff(f: &TenantFacts) -> Backoff {
    match &f.mg {
        Some(_) => Backoff {
            budget: fleet::MG_PROPAGATION_BUDGET,
            max_wait: std::time::Duration::from_secs(30),
            ..Backoff::default()
        },
        None => Backoff::default(),
    }
}

/// What a wait says: at a management group, that it is the group's assignment and may take 30
/// minutes.
pub(super) fn propagation_reason(f: &TenantFacts, step: Step) -> String {
    match (&f.mg, step) {
        (Some(m), Step::ConnectSpot | Step::RoleAssignment) => format!(
            "{PROPAGATION} the role assignment at management group {} (this can take up to 30 minutes; waiting up to 30 minutes)",
            m.id
        ),
        _ => PROPAGATION.into(),
    }
}

/// The group's objects written once for every subscription of the run.
#[derive(Default)]
pub(super) struct MgRun {
    assignment: OnceCell<std::result::Result<(String, Outcome), ErrorInfo>>,
    data_role: OnceCell<std::result::Result<RoleDefinition, ErrorInfo>>,
}

fn shared_error(e: &ErrorInfo) -> Error {
    Error::Other(e.summary.clone())
}

impl TenantRun<'_> {
    fn mg(&self) -> &MgFacts {
        self.f.mg.as_ref().expect("a management-group run")
    }

    /// The group's one assignment (made by the first subscription to get here), then, for a
    /// split policy, this subscription's DataActions assignment.
    pub(super) async fn mg_assignment_step(
        &self,
        i: usize,
        sp: &ServicePrincipal,
        role: &RoleDefinition,
        run: &Mutex<SubRun>,
    ) -> Result<()> {
        let m = self.mg();
        let done = self
            .mg
            .assignment
            .get_or_init(|| async {
                self.step(
                    None,
                    Step::RoleAssignment,
                    format!(
                        "assigning {} at management group {}",
                        role.properties.role_name, m.id
                    ),
                    async {
                        let (id, outcome) = match &m.assignment {
                            Some(a) => (a.id.clone(), Outcome::Reused),
                            None => {
                                let name = policy::role_assignment_name(&m.scope, &sp.id, &role.id);
                                let create = || {
                                    self.paced(|| {
                                        self.arm_writes.create_role_assignment(
                                            &m.scope, &name, &role.id, &sp.id,
                                        )
                                    })
                                };
                                let out = retry::propagate(
                                    &Backoff::default(),
                                    |_| false,
                                    create,
                                    self.waiting(None, Step::RoleAssignment),
                                )
                                .await?;
                                self.wrote_azure.store(true, Ordering::Relaxed);
                                let id = match out {
                                    AssignmentOutcome::Created(a) => a.id,
                                    AssignmentOutcome::AlreadyExists => format!(
                                        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                                        m.scope
                                    ),
                                };
                                (id, Outcome::Created)
                            }
                        };
                        let detail = format!(
                            "principalType ServicePrincipal at management group {} (inherited by every subscription below it)",
                            m.id
                        );
                        Ok(((id.clone(), outcome), outcome, Some(id), detail))
                    },
                    None,
                )
                .await
                .map_err(|e| ErrorInfo::from(&e))
            })
            .await;
        let (id, outcome) = done.clone().map_err(|e| shared_error(&e))?;
        Self::object(
            run,
            Step::RoleAssignment,
            "role assignment",
            &role.properties.role_name,
            &id,
            outcome,
        );
        if let Some(d) = &m.data {
            self.data_assignment_step(i, sp, d, run).await?;
        }
        Ok(())
    }

    /// The DataActions role (once, merged: assignable at every subscription of the run) and its
    /// assignment at subscription `i`.
    async fn data_assignment_step(
        &self,
        i: usize,
        sp: &ServicePrincipal,
        d: &DataFacts,
        run: &Mutex<SubRun>,
    ) -> Result<()> {
        let role = self
            .mg
            .data_role
            .get_or_init(|| async {
                self.step(
                    None,
                    Step::CustomRole,
                    format!("custom role {} (the DataActions of the split)", d.role_name),
                    async {
                        let (r, outcome) = self.merge_data_role(d).await?;
                        let id = r.id.clone();
                        let detail = format!(
                            "{} DataAction(s), assignable at {} subscription(s)",
                            d.policy.data_actions.len(),
                            self.f.subs.len()
                        );
                        Ok((r, outcome, Some(id), detail))
                    },
                    None,
                )
                .await
                .map_err(|e| ErrorInfo::from(&e))
            })
            .await
            .clone()
            .map_err(|e| shared_error(&e))?;
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let scope = s.scope();
        self.step(
            Some(i),
            Step::RoleAssignment,
            format!("assigning {} at {scope}", d.role_name),
            async {
                let outcome = if d.assigned.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                    Outcome::Reused
                } else {
                    let name = policy::role_assignment_name(sub, &sp.id, &role.id);
                    let create = || {
                        self.paced(|| {
                            self.arm_writes
                                .create_role_assignment(&scope, &name, &role.id, &sp.id)
                        })
                    };
                    retry::propagate(
                        &Backoff::default(),
                        |_| false,
                        create,
                        self.waiting(Some(sub), Step::RoleAssignment),
                    )
                    .await?;
                    Outcome::Created
                };
                let id = format!(
                    "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
                    policy::role_assignment_name(sub, &sp.id, &role.id)
                );
                Self::object(
                    run,
                    Step::RoleAssignment,
                    "role assignment (data actions)",
                    &d.role_name,
                    &id,
                    outcome,
                );
                Ok(((), outcome, Some(id), format!("the DataActions at {scope}")))
            },
            Some(run),
        )
        .await
    }

    /// Read, merge our subscriptions into the DataActions role's assignable scopes, write, read
    /// back; again when another writer's PUT took one of ours out (never overwrite).
    async fn merge_data_role(&self, d: &DataFacts) -> Result<(RoleDefinition, Outcome)> {
        let guid = match &d.role {
            RoleFact::Ours(r) => r.name.clone(),
            RoleFact::Foreign(r) => {
                return Err(Error::Blocked(format!(
                    "{} ({}) is not ours: not changed",
                    d.role_name, r.id
                )));
            }
            RoleFact::Missing => policy::role_definition_guid(&self.f.tenant, &d.role_name),
        };
        let id = format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}");
        let ours: Vec<String> = self.f.subs.iter().map(SubFacts::scope).collect();
        let first = &self.f.subs[0].target.subscription_id;
        let mut outcome = Outcome::Reused;
        for round in 0..ROLE_MERGES {
            let now = read(|| self.arm.get_role_definition(&id)).await?;
            if let Some(r) = &now
                && !is_our_role(r)
            {
                return Err(Error::Conflict(format!(
                    "the custom role {} ({}) is no longer ours: not changed",
                    r.properties.role_name, r.id
                )));
            }
            let listed: Vec<String> = now
                .as_ref()
                .map(|r| r.properties.assignable_scopes.clone())
                .unwrap_or_default();
            let missing: Vec<&String> = ours
                .iter()
                .filter(|s| !listed.iter().any(|x| same_scope(x, s)))
                .collect();
            if let (true, Some(mut r)) = (missing.is_empty(), now) {
                if r.id.starts_with("/providers/") {
                    r.id = format!("{}{id}", ours[0]);
                }
                return Ok((r, outcome));
            }
            if round > 0 {
                jitter().await;
            }
            outcome = if listed.is_empty() {
                Outcome::Created
            } else {
                Outcome::Updated
            };
            let mut wanted = listed.clone();
            wanted.extend(missing.into_iter().cloned());
            let at = listed.first().cloned().unwrap_or_else(|| ours[0].clone());
            let props = d.policy.role_properties(&d.role_name, first, wanted);
            let r = read(|| self.paced(|| self.arm_writes.put_role_definition(&at, &guid, &props)))
                .await?;
            self.wrote_azure.store(true, Ordering::Relaxed);
            if round + 1 == ROLE_MERGES {
                return Ok((r, outcome));
            }
        }
        Err(Error::Conflict(format!(
            "the custom role {} kept losing its assignable scopes to other writers",
            d.role_name
        )))
    }

    /// `--prune-subscription-assignments`: each subscription-scope assignment of ours on a
    /// subscription now connected is removed once the group's assignment is seen in effect
    /// there (ARM lists it at the subscription); otherwise it is kept and the run says so.
    pub(super) async fn prune_subscription_assignments(&self, reports: &mut [Report]) {
        let m = self.mg();
        if !m.prune || m.legacy.is_empty() {
            return;
        }
        let sp = match lock(&self.shared_objects)
            .iter()
            .find(|o| o.object == "service principal")
            .map(|o| o.id.clone())
        {
            Some(sp) => sp,
            None => return,
        };
        let role = lock(&self.shared_objects)
            .iter()
            .find(|o| o.object == "custom role")
            .map(|o| o.id.clone());
        let Some(role) = role else { return };
        for l in &m.legacy {
            let Some(report) = reports
                .iter_mut()
                .find(|r| r.subscription_id.eq_ignore_ascii_case(&l.sub))
            else {
                continue;
            };
            if report.verdict != Verdict::Connected {
                continue;
            }
            let scope = scope_of(&l.sub);
            let in_effect = match read(|| self.arm.list_role_assignments(&scope, &sp)).await {
                Ok(list) => listed_at(&list, &m.scope, &role).is_some(),
                Err(_) => false,
            };
            let sub = Some(l.sub.as_str());
            if !in_effect {
                self.emit(
                    sub,
                    Step::RoleAssignment,
                    StepEvent::Skipped {
                        reason: format!(
                            "the subscription-scope assignment {} is kept: the assignment at management group {} is not yet seen in effect here (propagation can take 30 minutes); a later run that prunes subscription-scope assignments removes it",
                            l.assignment.name, m.id
                        ),
                    },
                );
                continue;
            }
            let removed = self
                .paced(|| self.arm_writes.delete_role_assignment(&l.assignment.id))
                .await;
            match removed {
                Ok(()) => {
                    self.emit(
                        sub,
                        Step::RoleAssignment,
                        StepEvent::Finished {
                            outcome: Outcome::Updated,
                            id: Some(l.assignment.id.clone()),
                            detail: format!(
                                "removed the subscription-scope assignment: the one at management group {} is in effect here",
                                m.id
                            ),
                        },
                    );
                    report.objects.push(ObjectRef {
                        step: Step::RoleAssignment,
                        object: "subscription role assignment (removed)".into(),
                        name: l.assignment.name.clone(),
                        id: l.assignment.id.clone(),
                        outcome: Outcome::Updated,
                    });
                }
                Err(e) => self.emit(
                    sub,
                    Step::RoleAssignment,
                    StepEvent::Skipped {
                        reason: format!(
                            "the subscription-scope assignment {} could not be removed ({e}): kept",
                            l.assignment.name
                        ),
                    },
                ),
            }
        }
    }
}
