//! Management-group scope (issue 19; reference/fleet-and-policies.md §1): which subscriptions a
//! group holds (nested groups included), what the run leaves out, and the limits the plan checks
//! before anything is written. The engine's part (one role and one assignment at the group) is in
//! `engine/mg.rs`.

use super::{Session, Target};
use crate::azure::arm::{self, Descendant};
use crate::error::{Error, Result};
use serde::Serialize;
use std::time::Duration;

/// Role assignments at one management group (azure-subscription-service-limits).
pub const MAX_ASSIGNMENTS_PER_MG: usize = 500;
/// Assignable scopes of one custom role.
pub const MAX_ASSIGNABLE_SCOPES: usize = 2000;
/// How long the waits on an assignment at a management group may take in all: Azure's take
/// longer there than at a subscription (up to 30 minutes, reference §1).
pub const MG_PROPAGATION_BUDGET: Duration = Duration::from_secs(30 * 60);

/// `--management-group`, as the engine takes it (the front end resolves it first, [`resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MgScope {
    pub id: String,
    pub display_name: String,
    /// The group's tenant (a group with no enabled subscription below it still has one).
    pub tenant_id: String,
    /// `--exclude-subscription`: below the group, left out of Spot (they still inherit the
    /// group's role assignment: the plan says so).
    pub excluded: Vec<Target>,
    /// `--prune-subscription-assignments`: remove our subscription-scope assignments once the
    /// group's is seen in effect at that subscription.
    pub prune_subscription_assignments: bool,
}

/// What a management group holds, as resolved for a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MgResolved {
    pub tenant_id: String,
    pub group_id: String,
    pub display_name: String,
    /// The enabled subscriptions below it the run is for (nested groups included).
    pub targets: Vec<Target>,
    /// Below it but left out (`--exclude-subscription`).
    pub excluded: Vec<Target>,
    /// Below it but not Enabled (not connected), with their state.
    pub not_enabled: Vec<(Target, String)>,
    /// Below it but not visible to the signed-in identity's subscription list.
    pub unseen: Vec<String>,
    /// Every group below it (id, parent id, display name), for the tree.
    pub groups: Vec<(String, String, String)>,
    /// Every subscription below it (its line in the tree, its group's id).
    pub placement: Vec<(String, String)>,
}

impl MgResolved {
    /// The scope the engine gets.
    pub fn scope(&self, prune: bool) -> MgScope {
        MgScope {
            id: self.group_id.clone(),
            display_name: self.display_name.clone(),
            tenant_id: self.tenant_id.clone(),
            excluded: self.excluded.clone(),
            prune_subscription_assignments: prune,
        }
    }

    /// The tree, one line per group and subscription, indented by depth (for the plan's text).
    pub fn tree_lines(&self) -> Vec<String> {
        let mut out = vec![format!("{} ({})", self.display_name, self.group_id)];
        self.lines_below(&self.group_id, 1, &mut out);
        out
    }

    fn lines_below(&self, id: &str, depth: usize, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        for t in self.subs_in(id) {
            out.push(format!("{pad}{}", t));
        }
        for (g, _, name) in self
            .groups
            .iter()
            .filter(|(_, p, _)| p.eq_ignore_ascii_case(id))
        {
            out.push(format!("{pad}{name} ({g})"));
            if depth < 8 {
                self.lines_below(g, depth + 1, out);
            }
        }
    }

    fn subs_in(&self, group: &str) -> Vec<String> {
        self.placement
            .iter()
            .filter(|(_, p)| p.eq_ignore_ascii_case(group))
            .map(|(line, _)| line.clone())
            .collect()
    }
}

/// The role named for management group `mg`: a custom role may name only one group in its
/// assignable scopes, so each group gets its own (its GUID, UUIDv5 of the tenant and this name,
/// is thereby derived from the tenant and the group).
pub fn mg_role_name(base: &str, mg: &str) -> String {
    format!("{base} ({mg})")
}

/// The role that holds the policy's DataActions when the run is at a management group: a role
/// with DataActions cannot be assigned there, so it is assigned per subscription.
pub fn data_role_name(base: &str) -> String {
    format!("{base} (data actions)")
}

/// The subscriptions below management group `id` (nested groups included), from
/// `…/descendants`, against discovery: an enabled one the sign-in sees is a target unless
/// excluded; `exclude` naming a subscription that is not below the group is a usage error.
pub async fn resolve(session: &Session, id: &str, exclude: &[String]) -> Result<MgResolved> {
    let id = id.trim();
    if id.is_empty() || id.contains('/') || id.len() > 90 {
        return Err(Error::Usage(format!(
            "--management-group {id:?} is not a management group id"
        )));
    }
    let d = session.discover().await?;
    // The group's tenant: the first tenant whose ARM answers for it.
    let mut found = None;
    let mut last_err = None;
    for t in &d.tenants {
        let arm = super::lookup::arm(session, &t.tenant_id);
        match super::retry::read(|| arm.get_management_group(id)).await {
            Ok(Some(g)) => {
                found = Some((t.tenant_id.clone(), arm, g));
                break;
            }
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let Some((tenant, arm, group)) = found else {
        let tenants = d.tenants.len().max(1);
        return Err(match last_err {
            // Not `Error::Api`: ARM answers 403 for a group that does not exist too ("or the
            // scope is invalid"), and the 403's hint (Owner on the subscription) would mislead.
            Some(e) => Error::Other(format!(
                "management group {id} could not be read in any of the {tenants} tenant(s) signed in to: {e}"
            )),
            None => Error::NotFound(format!(
                "management group {id} was not found in any of the {tenants} tenant(s) signed in to"
            )),
        });
    };
    let below: Vec<Descendant> =
        super::retry::read(|| arm.management_group_descendants(&group.name)).await?;
    let mut out = MgResolved {
        tenant_id: tenant.clone(),
        group_id: group.name.clone(),
        display_name: group
            .properties
            .as_ref()
            .and_then(|p| p.display_name.clone())
            .unwrap_or_else(|| group.name.clone()),
        ..Default::default()
    };
    let lower_ex: Vec<String> = exclude.iter().map(|e| e.to_ascii_lowercase()).collect();
    let mut seen_ex = vec![false; exclude.len()];
    for item in &below {
        if !item.is_subscription() {
            out.groups.push((
                item.name.clone(),
                item.parent().unwrap_or_default().to_string(),
                item.properties
                    .as_ref()
                    .and_then(|p| p.display_name.clone())
                    .map(|n| crate::text::clean(&n))
                    .unwrap_or_else(|| item.name.clone()),
            ));
            continue;
        }
        let sub = item.name.to_ascii_lowercase();
        let known = d
            .subscriptions
            .iter()
            .find(|s| s.subscription_id.eq_ignore_ascii_case(&sub));
        let parent = item.parent().unwrap_or_default().to_string();
        let Some(s) = known else {
            out.unseen.push(item.name.clone());
            out.placement.push((
                format!("{} (cannot be seen: not connected)", item.name),
                parent,
            ));
            continue;
        };
        let target = Target::from(s);
        let label = format!("{} {}", target.subscription_id, target.subscription_name);
        if let Some(i) = lower_ex.iter().position(|e| *e == sub) {
            seen_ex[i] = true;
            out.placement.push((format!("{label} (excluded)"), parent));
            out.excluded.push(target);
        } else if s.selectable() {
            out.placement.push((label, parent));
            out.targets.push(target);
        } else {
            out.placement
                .push((format!("{label} ({}: not connected)", s.state), parent));
            out.not_enabled.push((target, s.state.clone()));
        }
    }
    if let Some(i) = seen_ex.iter().position(|s| !s) {
        return Err(Error::Usage(format!(
            "--exclude-subscription {} is not below management group {}",
            exclude[i], out.group_id
        )));
    }
    Ok(out)
}

/// The DataActions split at a management group: whether a role over `subscriptions` would pass
/// the 2,000 assignable scopes of a custom role (None: within).
pub fn split_over_limit(subscriptions: usize) -> Option<String> {
    (subscriptions > MAX_ASSIGNABLE_SCOPES).then(|| {
        format!(
            "the DataActions role would need {subscriptions} assignable scopes (one per subscription), more than a custom role's {MAX_ASSIGNABLE_SCOPES}: split the management group, or exclude subscriptions"
        )
    })
}

/// The scope of a group (re-exported for the engine).
pub fn scope(id: &str) -> String {
    arm::mg_scope(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_gets_its_own_role_and_guid() {
        let a = mg_role_name("Spot.io Custom Role", "contoso-spot");
        let b = mg_role_name("Spot.io Custom Role", "contoso-spot-prod");
        assert_ne!(a, b);
        let t = "c0c0c0c0-0000-4000-8000-00000000c001";
        assert_ne!(
            super::super::policy::role_definition_guid(t, &a),
            super::super::policy::role_definition_guid(t, &b)
        );
        assert_eq!(
            super::super::policy::role_definition_guid(t, &a),
            super::super::policy::role_definition_guid(t, &a)
        );
    }

    #[test]
    fn the_split_role_over_2000_scopes_is_named() {
        assert_eq!(split_over_limit(2000), None);
        let over = split_over_limit(2001).unwrap();
        assert!(over.contains("2001") && over.contains("2000"), "{over}");
    }
}
