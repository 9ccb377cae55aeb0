//! Spot's custom role JSON: embedded (`assets/spot-core-role-2024-05.json`), or `--policy FILE` in
//! either shape (reference/azure-api.md §6.2):
//! - ARM REST: `{"properties":{"roleName","description","permissions":[{"actions",…}],"assignableScopes"}}`
//! - az CLI: `{"Name","Description","Actions","NotActions","DataActions","NotDataActions","AssignableScopes"}`
//!
//! `{customRoleName}` and `{subscriptionId}` placeholders are substituted; the role name and the
//! assignable scope are then set to the operator's role name and the subscription whatever the
//! file says (Spot's published copy carries a console timestamp name and a dummy subscription).

use crate::azure::arm::{Permission, RoleDefinitionProperties};
use crate::error::{Error, Result};
use crate::onboard::model::Drift;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Spot's core (Elastigroup) role, as published in May 2024 (85 actions).
pub const EMBEDDED: &str = include_str!("../../assets/spot-core-role-2024-05.json");

/// Put in every role description we write: a same-named role without it is not ours.
pub const ROLE_MARKER: &str = "Managed by spot-connect.";

/// The default custom role name.
pub const DEFAULT_ROLE_NAME: &str = "Spot.io Custom Role";

/// A role policy, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub description: String,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
    /// Where the policy came from (for messages): "embedded" or the file path.
    pub source: String,
}

/// The largest `--policy` file read (1 MiB). ARM's request bodies are capped (the simulator's at
/// 2 MiB, as axum's default), and a custom role is a few KB: anything near the cap is a mistake.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

impl Policy {
    /// The embedded policy, or the file's.
    pub fn load(file: Option<&Path>) -> Result<Policy> {
        match file {
            None => Policy::parse(EMBEDDED, "embedded Spot core role (2024-05)"),
            Some(p) => {
                // Checked before anything is read or written: a role definition ARM would refuse
                // must not leave an app, a secret or an assignment behind (issue 16 §8).
                let size = std::fs::metadata(p).map(|m| m.len()).map_err(|e| {
                    Error::Usage(format!("cannot read the policy file {}: {e}", p.display()))
                })?;
                if size > MAX_POLICY_BYTES {
                    return Err(Error::Usage(format!(
                        "the policy file {} is {size} bytes: a role definition of more than {MAX_POLICY_BYTES} bytes is refused (Spot's own role is about 5 KB); nothing was changed",
                        p.display()
                    )));
                }
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::Usage(format!("cannot read the policy file {}: {e}", p.display()))
                })?;
                Policy::parse(&text, &p.display().to_string())
                    .map_err(|e| Error::Usage(format!("policy file {}: {e}", p.display())))
            }
        }
    }

    /// Parses either shape. Placeholders are left as they are: [`Policy::role_properties`]
    /// substitutes them.
    pub fn parse(text: &str, source: &str) -> Result<Policy> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| Error::Usage(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::Usage("a role definition must be a JSON object".into()))?;
        // ARM shape: everything under "properties".
        let props: Map<String, Value> = match obj.get("properties") {
            Some(Value::Object(p)) => lower_first_keys(p),
            _ => lower_first_keys(obj),
        };
        let strings = |m: &Map<String, Value>, k: &str| -> Result<Vec<String>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_string).ok_or_else(|| {
                            Error::Usage(format!("\"{k}\" must be a list of strings"))
                        })
                    })
                    .collect(),
                Some(_) => Err(Error::Usage(format!("\"{k}\" must be a list of strings"))),
            }
        };
        let (mut actions, mut not_actions, mut data_actions, mut not_data_actions) =
            (vec![], vec![], vec![], vec![]);
        match props.get("permissions") {
            Some(Value::Array(perms)) => {
                for p in perms {
                    let p = p.as_object().map(lower_first_keys).ok_or_else(|| {
                        Error::Usage("\"permissions\" entries must be objects".into())
                    })?;
                    actions.extend(strings(&p, "actions")?);
                    not_actions.extend(strings(&p, "notActions")?);
                    data_actions.extend(strings(&p, "dataActions")?);
                    not_data_actions.extend(strings(&p, "notDataActions")?);
                }
            }
            Some(_) => return Err(Error::Usage("\"permissions\" must be a list".into())),
            None => {
                actions = strings(&props, "actions")?;
                not_actions = strings(&props, "notActions")?;
                data_actions = strings(&props, "dataActions")?;
                not_data_actions = strings(&props, "notDataActions")?;
            }
        }
        if actions.is_empty() {
            return Err(Error::Usage("the role has no actions".into()));
        }
        let description = props
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("Custom Role for Spot Account.")
            .to_string();
        Ok(Policy {
            description,
            actions: dedup(actions),
            not_actions: dedup(not_actions),
            data_actions: dedup(data_actions),
            not_data_actions: dedup(not_data_actions),
            source: source.to_string(),
        })
    }

    /// The ARM `properties` of the role for `role_name`, assignable at `scopes`.
    pub fn role_properties(
        &self,
        role_name: &str,
        subscription_id: &str,
        scopes: Vec<String>,
    ) -> RoleDefinitionProperties {
        let sub = |s: &String| {
            s.replace("{subscriptionId}", subscription_id)
                .replace("{customRoleName}", role_name)
        };
        let mut description = sub(&self.description);
        if !description.contains(ROLE_MARKER) {
            if !description.is_empty() && !description.ends_with(' ') {
                description.push(' ');
            }
            description.push_str(ROLE_MARKER);
        }
        RoleDefinitionProperties {
            role_name: role_name.to_string(),
            description: Some(description),
            role_type: Some("CustomRole".into()),
            permissions: vec![Permission {
                actions: self.actions.iter().map(sub).collect(),
                not_actions: self.not_actions.iter().map(sub).collect(),
                data_actions: self.data_actions.iter().map(sub).collect(),
                not_data_actions: self.not_data_actions.iter().map(sub).collect(),
            }],
            assignable_scopes: scopes,
        }
    }
}

/// az CLI lower-cases the first letter of PascalCase keys; so do we.
fn lower_first_keys(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let mut c = k.chars();
            let key = match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => String::new(),
            };
            (key, v.clone())
        })
        .collect()
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter()
        .filter(|a| seen.insert(a.to_ascii_lowercase()))
        .collect()
}

/// Actions of `existing` compared with the policy's (ARM action names are case-insensitive).
pub fn drift(policy_actions: &[String], existing: &[Permission]) -> Drift {
    let have: BTreeSet<String> = existing
        .iter()
        .flat_map(|p| p.actions.iter())
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let want: BTreeSet<String> = policy_actions
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let missing = policy_actions
        .iter()
        .filter(|a| !have.contains(&a.to_ascii_lowercase()))
        .cloned()
        .collect();
    let mut extra: Vec<String> = existing
        .iter()
        .flat_map(|p| p.actions.iter())
        .filter(|a| !want.contains(&a.to_ascii_lowercase()))
        .cloned()
        .collect();
    extra.sort();
    extra.dedup();
    Drift { missing, extra }
}

/// The namespace of spot-connect's UUIDv5 names (itself UUIDv5 of a URL in the URL namespace).
fn names_namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"https://spot.io/spot-connect")
}

/// The GUID under which a new custom role is written: UUIDv5 of (tenant, role name), so a PUT
/// repeated after a lost reply (or by a later run that did not see the role yet) writes the same
/// role instead of a second one (reference/peers-and-tui-style.md A.4 point 3). Role names are
/// unique per tenant and compared without case, hence lowercased. An existing role of ours found
/// by lookup keeps its own GUID.
pub fn role_definition_guid(tenant_id: &str, role_name: &str) -> String {
    let key = format!(
        "spot-connect/role/{}/{}",
        tenant_id.trim().to_ascii_lowercase(),
        role_name.trim().to_lowercase()
    );
    uuid::Uuid::new_v5(&names_namespace(), key.as_bytes()).to_string()
}

/// The name of the role assignment of `role_definition` (an id or a GUID) to `principal_id` at
/// the subscription: UUIDv5 of the three, so repeating the PUT names the same assignment.
pub fn role_assignment_name(
    subscription_id: &str,
    principal_id: &str,
    role_definition: &str,
) -> String {
    let role_guid = role_definition
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(role_definition);
    let key = format!(
        "spot-connect/assignment/{}/{}/{}",
        subscription_id.trim().to_ascii_lowercase(),
        principal_id.trim().to_ascii_lowercase(),
        role_guid.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&names_namespace(), key.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_names_are_stable_per_tenant_role_and_principal() {
        let t = "c0c0c0c0-0000-4000-8000-00000000c001";
        let g = role_definition_guid(t, "Spot.io Custom Role");
        // Same inputs (any case) → same GUID, a valid v5 UUID; other tenant or name → another.
        assert_eq!(
            g,
            role_definition_guid(&t.to_uppercase(), "spot.io custom role")
        );
        let u = uuid::Uuid::parse_str(&g).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert_ne!(
            g,
            role_definition_guid(
                "fab0fab0-0000-4000-8000-00000000fab2",
                "Spot.io Custom Role"
            )
        );
        assert_ne!(g, role_definition_guid(t, "Spot Role"));
        let sub = "5c000001-0000-4000-8000-0000000000a1";
        let id =
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{g}");
        let a = role_assignment_name(sub, "b1", &id);
        assert_eq!(a, role_assignment_name(sub, "B1", &g), "by role id or GUID");
        assert_ne!(a, role_assignment_name(sub, "b2", &g));
        assert_ne!(
            a,
            role_assignment_name("5c000002-0000-4000-8000-0000000000a2", "b1", &g)
        );
        assert_ne!(a, g);
    }

    #[test]
    fn embedded_policy_has_spots_85_actions() {
        let p = Policy::load(None).unwrap();
        assert_eq!(p.actions.len(), 85);
        assert!(
            p.actions
                .iter()
                .any(|a| a == "Microsoft.Compute/virtualMachines/*")
        );
        let props = p.role_properties(
            "Spot.io Custom Role",
            "sub-1",
            vec!["/subscriptions/sub-1".into()],
        );
        assert_eq!(props.role_name, "Spot.io Custom Role");
        assert_eq!(props.assignable_scopes, vec!["/subscriptions/sub-1"]);
        assert!(props.description.as_deref().unwrap().contains(ROLE_MARKER));
        assert_eq!(props.role_type.as_deref(), Some("CustomRole"));
    }

    #[test]
    fn cli_shape_and_arm_shape_normalise_alike() {
        let cli = r#"{"Name":"{customRoleName}","Description":"Role for {customRoleName}","Actions":["Microsoft.Compute/disks/read","Microsoft.Resources/subscriptions/{subscriptionId}/read"],
            "NotActions":[],"DataActions":[],"NotDataActions":[],"AssignableScopes":["/subscriptions/{subscriptionId}"]}"#;
        let arm = r#"{"properties":{"roleName":"{customRoleName}","description":"Role for {customRoleName}","assignableScopes":["/subscriptions/{subscriptionId}"],
            "permissions":[{"actions":["Microsoft.Compute/disks/read","Microsoft.Resources/subscriptions/{subscriptionId}/read"],"notActions":[]}]}}"#;
        let a = Policy::parse(cli, "cli").unwrap();
        let b = Policy::parse(arm, "arm").unwrap();
        assert_eq!(a.actions, b.actions);
        let props = a.role_properties("Mine", "s-9", vec!["/subscriptions/s-9".into()]);
        assert_eq!(
            props.permissions[0].actions[1],
            "Microsoft.Resources/subscriptions/s-9/read"
        );
        assert!(props.description.unwrap().starts_with("Role for Mine"));
    }

    #[test]
    fn rejects_a_role_without_actions() {
        assert!(Policy::parse(r#"{"Name":"x","Actions":[]}"#, "t").is_err());
        assert!(Policy::parse(r#"[1]"#, "t").is_err());
    }

    #[test]
    fn drift_lists_missing_and_extra_case_insensitively() {
        let policy = vec![
            "A/read".to_string(),
            "B/write".to_string(),
            "C/*".to_string(),
        ];
        let existing = vec![Permission {
            actions: vec!["a/READ".into(), "C/*".into(), "Z/delete".into()],
            ..Default::default()
        }];
        let d = drift(&policy, &existing);
        assert_eq!(d.missing, vec!["B/write"]);
        assert_eq!(d.extra, vec!["Z/delete"]);
        assert!(
            drift(
                &policy,
                &[Permission {
                    actions: policy.clone(),
                    ..Default::default()
                }]
            )
            .is_empty()
        );
    }
}
