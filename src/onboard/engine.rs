//! The one engine behind `onboard::plan` and `onboard::apply`, for one subscription or many.
//!
//! `plan` groups the targets by tenant and looks everything up once per tenant (app, service
//! principal, role, the right to register apps) and once per subscription (permissions, Spot
//! account and its credentials, role assignment); the facts travel with the `Plan`. `apply`
//! writes exactly that plan, nothing when it has a blocked item. Per tenant, dependencies (not
//! the sidebar order) decide what runs when; one subscription is a tenant of one:
//! ```text
//! Spot account (each) ──────────────────────────────────────────┐
//! App registration ─┬─ service principal ─┐                      ├─ Connect to Spot (each)
//!                   └─ client secret (one per tenant) ───────────┤   └─ orphan cleanup
//! Custom role (one, assignable at all) ───┴─ role assignment (each)┘
//! ```

use super::lifetime::{self, SecretLimit};
use super::lookup::{self, find_assignment, is_fatal, is_our_role, same_scope, scope_of};
use super::model::{
    AccountKind, ErrorInfo, ObjectRef, Outcome, Ownership, PlanAction, PlanItem, Progress, Report,
    RunReport, Step, StepEvent, Verdict,
};
use super::naming::{SECRET_PREFIX, shared_secret_name};
use super::pace::WriteBudget;
use super::policy::{self, Policy};
use super::retry::{self, Backoff, create_or_find, is_not_found, read};
use super::secrets::{self, NewSecret, secret_ends_until};
use super::state::{AccountOrigin, SecretRecord, State, StepStatus, Store, lock};
use super::{Session, Settings, SpotAccountChoice, Target};
use crate::azure::arm::{self, Arm, AssignmentOutcome, Permission, RoleAssignment, RoleDefinition};
use crate::azure::auth::AuthMethod;
use crate::azure::graph::{
    APP_REGISTRATION_APP_ROLES, APP_REGISTRATION_ROLES, AppRoleAssignment, Application,
    DirectoryRole, Graph, ServicePrincipal,
};
use crate::error::{ApiError, Error, ErrorClass, Hint, Result};
use crate::spot::{AzureCredentials, AzureCredentialsInfo, SpotAccount};
use futures::{FutureExt, StreamExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio::sync::mpsc::UnboundedSender;

mod apply;
mod discover;
mod plan;
mod rights;
pub(crate) use apply::*;
pub(crate) use discover::*;
use plan::*;
pub(crate) use rights::*;
mod mg;
mod planned;
pub use planned::{Plan, PlanView};
pub(super) mod view;

const NEED_ROLE_DEF_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
const NEED_ROLE_ASSIGN_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
/// A secret closer than this to its end is replaced.
const EXPIRY_MARGIN: time::Duration = secrets::EXPIRY_WARNING;
const PROPAGATION: &str = "waiting for Azure to propagate";
/// What to ask for when app registration is not allowed.
const APP_RIGHTS_HINT: &str =
    "ask for the Application Developer role or for 'Users can register applications'";
/// The same for a service principal (app roles and directory roles are what an administrator
/// grants a principal; the user setting does not apply to it).
const SP_APP_RIGHTS_HINT: &str = "ask an administrator to grant it Microsoft Graph's Application.ReadWrite.OwnedBy application permission (admin consent: an app role assignment on Microsoft Graph's service principal) or the Application Administrator directory role";
/// Subscriptions in flight at once within a tenant (their ARM writes are paced by the tenant's
/// write budget, `pace::WriteBudget`, not by this).
const CONCURRENCY: usize = 16;
/// Subscriptions looked up at once, as a rolling window (reads only; ARM's are paced by its
/// read budget, `crate::budget`). Each look-up in flight holds a connection to ARM and one to
/// Spot: more at once means more TLS handshakes at the same moment, which on a small machine
/// delay the tenant's own look-ups on the plan's critical path (docs/performance.md).
const LOOKUP_CONCURRENCY: usize = 48;

// ---------------------------------------------------------------------------------------------
// Facts: what exists, looked up before anything is written. They travel with the `Plan`.

#[derive(Debug, Clone)]
enum AppFact {
    Ours(Application),
    Missing,
    /// Same-named apps without our marker.
    Foreign(usize),
    /// Graph refused to list apps.
    Unreadable(String, Option<ApiError>),
}

#[derive(Debug, Clone)]
enum RoleFact {
    Ours(RoleDefinition),
    Missing,
    Foreign(RoleDefinition),
}

#[derive(Debug, Clone)]
enum AccountFact {
    /// Connect this existing account (whose it is, and why).
    Reuse(SpotAccount, AccountKind, String),
    Create(String),
    /// Connected to the subscription through an app that is not ours: left as it is.
    Keep(Foreign),
    Blocked(String, Option<ApiError>),
}

/// A Spot connection made through an app that is not ours (issue 16 §3).
#[derive(Debug, Clone)]
struct Foreign {
    account: SpotAccount,
    /// The client id Spot holds (None: Spot shows no credentials).
    client_id: Option<String>,
    /// That app's display name in the tenant, when Graph knows it.
    app_name: Option<String>,
    expires: Option<String>,
}

impl Foreign {
    /// "Spot.io-fabrikam-prod (c1000003-…)", or the client id alone.
    fn app(&self) -> String {
        match (&self.app_name, &self.client_id) {
            (Some(n), Some(c)) => format!("{n} ({c})"),
            (None, Some(c)) => format!("app {c}"),
            (_, None) => "credentials Spot does not show".into(),
        }
    }

    fn expiry(&self) -> String {
        self.expires
            .as_deref()
            .map(|d| d.split('T').next().unwrap_or(d).to_string())
            .unwrap_or_else(|| "(unknown)".into())
    }

    /// The plan's line for a connection kept as it is.
    fn keep_line(&self) -> String {
        format!(
            "connected through {}, secret expires {}: keep (Spot account {} is not ours: nothing is changed)",
            self.app(),
            self.expiry(),
            self.account.account_id
        )
    }

    /// The plan's line for a take-over.
    fn take_over_line(&self, our_app: &str) -> String {
        format!(
            "TAKE OVER: replace the credentials of Spot account {} ({}, connected through {}, secret expires {}) with {our_app}'s and a new secret of it; this cannot be undone (Spot has no call that restores or deletes credentials); {} itself is not touched, and the account stays chosen: `remove` never deletes it",
            self.account.account_id,
            self.account.name,
            self.app(),
            self.expiry(),
            self.app_name.as_deref().unwrap_or("the other app"),
        )
    }
}

/// A Spot account and its credentials, as read.
type Looked = (SpotAccount, Option<AzureCredentialsInfo>);

/// What Spot showed for one subscription, before our app is known.
#[derive(Debug, Clone)]
struct SpotLook {
    /// The accounts connected to the subscription (`?cloudAccountId=`), with their credentials.
    connected: Vec<Looked>,
    /// The organization's accounts; Err: the token may not list them (not an Organization
    /// Admin's).
    org: std::result::Result<Vec<SpotAccount>, ApiError>,
    /// The account `--spot-account` names, or the one the state records: None when Spot says
    /// it does not exist (or this token cannot see it).
    named: Option<(String, Option<Looked>)>,
}

/// Whether the caller may register applications in the tenant (Entra), checked before writing.
#[derive(Debug, Clone)]
enum AppRights {
    Allowed(String),
    Denied(String),
    /// Could not be read (no permission to read the policy, a managed identity, …): not blocking.
    Unknown(String),
}

/// Everything `apply` needs, as `plan` found it.
#[derive(Debug)]
pub(crate) struct Facts {
    settings: Settings,
    /// `reconcile`: a secret Spot holds that ends by then is replaced by the tenant's one new
    /// secret of this run (see [`plan_renewing`]).
    renew_before: Option<OffsetDateTime>,
    policy: Policy,
    tenants: Vec<TenantFacts>,
    /// Subscriptions connected through an app that is not ours, kept as they are: nothing of
    /// theirs is written (issue 16 §3).
    kept: Vec<SubFacts>,
}

impl Facts {
    fn kept_sub(&self, subscription: &str) -> Option<&SubFacts> {
        self.kept
            .iter()
            .find(|k| k.target.subscription_id.eq_ignore_ascii_case(subscription))
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(super) fn renew_before(&self) -> Option<OffsetDateTime> {
        self.renew_before
    }

    /// Whether a state file the plan was made from has changed since (another run wrote it).
    pub(super) fn states_changed(&self, state_dir: &std::path::Path) -> bool {
        self.tenants.iter().flat_map(|t| &t.subs).any(|s| {
            let now = State::load(state_dir, &s.target.tenant_id, &s.target.subscription_id);
            now.map_or(true, |now| now != s.state)
        })
    }
}

#[derive(Debug)]
struct TenantFacts {
    tenant: String,
    app_name: String,
    role_name: String,
    app_rights: AppRights,
    app: AppFact,
    sp: Option<ServicePrincipal>,
    role: RoleFact,
    subs: Vec<SubFacts>,
    /// What the tenant's (or the app's own) app management policy means for a new secret.
    secret_limit: SecretLimit,
    /// `--management-group`: the group's facts (the role is assignable there and assigned once).
    mg: Option<mg::MgFacts>,
}

#[derive(Debug)]
struct SubFacts {
    target: Target,
    state: State,
    account: AccountFact,
    /// Notes on the Spot account the plan says (a state file naming an account we did not
    /// create; a token that cannot list the organization's accounts).
    account_notes: Vec<String>,
    /// `--take-over`: the connection whose credentials this run replaces.
    taken_over: Option<Foreign>,
    spot: Option<SpotLook>,
    spot_creds: Option<AzureCredentialsInfo>,
    /// None: the caller's permissions could not be read (not blocking).
    permissions: Option<Vec<Permission>>,
    assignment: Option<RoleAssignment>,
    /// Some(record): the recorded secret is with Spot, present on the app and not expiring.
    secret_reuse: Option<SecretRecord>,
    secret_reason: String,
}

impl SubFacts {
    fn scope(&self) -> String {
        scope_of(&self.target.subscription_id)
    }
    fn can(&self, action: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| arm::permits(p, action))
    }
}

impl TenantFacts {
    /// Whether the run makes the tenant's one new client secret.
    fn new_secret(&self) -> bool {
        self.subs.iter().any(|s| s.secret_reuse.is_none())
    }
    fn scopes(&self) -> Vec<String> {
        if let Some(m) = &self.mg {
            return vec![m.scope.clone()];
        }
        self.subs.iter().map(SubFacts::scope).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(template: &str) -> DirectoryRole {
        DirectoryRole {
            id: Some("r1".into()),
            display_name: None,
            role_template_id: Some(template.into()),
        }
    }

    fn denied() -> Error {
        Error::Api(ApiError {
            service: crate::error::Service::Graph,
            status: 403,
            code: "Authorization_RequestDenied".into(),
            detail_codes: vec![],
            message: "Insufficient privileges to complete the operation.".into(),
            request_id: None,
            retry_after: None,
            layer_retried: false,
        })
    }

    #[test]
    fn a_user_may_register_apps_by_tenant_setting_or_role_and_is_denied_only_when_both_say_no() {
        let dev = "cf1c38e5-3621-4004-a7cb-879624dced7c";
        let other = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"; // Directory Readers
        assert!(matches!(
            user_app_rights("t", Ok(Some(true)), Ok(vec![])),
            AppRights::Allowed(w) if w.contains("users may register")
        ));
        assert!(matches!(
            user_app_rights("t", Ok(Some(false)), Ok(vec![role(dev)])),
            AppRights::Allowed(w) if w.contains("Application Developer")
        ));
        // A role is enough even when the policy cannot be read.
        assert!(matches!(
            user_app_rights("t", Err(denied()), Ok(vec![role(&dev.to_uppercase())])),
            AppRights::Allowed(_)
        ));
        match user_app_rights("t", Ok(Some(false)), Ok(vec![role(other)])) {
            AppRights::Denied(why) => {
                assert!(why.contains("may not register applications"), "{why}");
                assert!(why.contains(APP_RIGHTS_HINT), "{why}");
            }
            _ => panic!("policy off and no app role: denied"),
        }
        assert!(matches!(
            user_app_rights("t", Ok(Some(false)), Err(denied())),
            AppRights::Unknown(w) if w.contains("the write will tell")
        ));
        assert!(matches!(
            user_app_rights("t", Err(denied()), Ok(vec![])),
            AppRights::Unknown(_)
        ));
    }

    #[test]
    fn a_service_principal_may_register_apps_by_graph_app_role_or_directory_role() {
        let grant = |id: &str| AppRoleAssignment {
            app_role_id: id.into(),
            resource_id: None,
            resource_display_name: Some("Microsoft Graph".into()),
        };
        assert!(matches!(
            service_principal_app_rights("sp", "c", Ok(vec![grant("18a4783c-866b-4cc7-a460-3d5e5662c884")]), Ok(vec![])),
            AppRights::Allowed(w) if w.contains("Application.ReadWrite.OwnedBy")
        ));
        assert!(matches!(
            service_principal_app_rights("sp", "c", Ok(vec![]), Ok(vec![role("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3")])),
            AppRights::Allowed(w) if w.contains("Application Administrator")
        ));
        // Mail.Read only: denied.
        assert!(matches!(
            service_principal_app_rights("sp", "c", Ok(vec![grant("810c84a8-4a9e-49e6-bf7d-12d183f40d01")]), Ok(vec![])),
            AppRights::Denied(w) if w.contains("Application.ReadWrite.All")
                && w.starts_with("service principal sp (application c)")
                && w.contains(SP_APP_RIGHTS_HINT)
                && !w.contains("Users can register")
        ));
        assert!(matches!(
            service_principal_app_rights("sp", "c", Err(denied()), Ok(vec![])),
            AppRights::Unknown(_)
        ));
    }
}
