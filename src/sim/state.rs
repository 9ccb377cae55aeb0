//! Everything the simulated clouds hold, behind one lock, plus the `/inspect/state` view of it.

use super::seed::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub struct Tenant {
    pub id: String,
    pub name: String,
    pub domain: String,
    /// authorizationPolicy `defaultUserRolePermissions.allowedToCreateApps` ("Users can
    /// register applications").
    pub allowed_to_create_apps: bool,
}

pub struct Subscription {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub state: &'static str,
}

/// A user object of one tenant. A person who belongs to several tenants has one object per
/// tenant: a member in the home tenant, a guest (its own object id, `userType` Guest) elsewhere
/// (learn.microsoft.com/entra/external-id/user-properties).
pub struct User {
    pub id: String,
    pub upn: String,
    pub name: String,
    /// The tenant this object lives in.
    pub tenant: String,
    /// "Member" or "Guest".
    pub user_type: &'static str,
    /// The person's object in their home tenant (its own id for a member).
    pub home_id: String,
    pub home_tenant: String,
    pub mail: Option<String>,
}

/// An app role granted to a service principal (Graph `appRoleAssignment`).
pub struct AppRoleAssignment {
    pub id: String,
    pub tenant_id: String,
    pub app_role_id: String,
    pub principal_id: String,
    pub principal_type: &'static str,
    pub principal_display_name: String,
    /// The resource service principal that defines the app role (e.g. Microsoft Graph's).
    pub resource_id: String,
    pub resource_display_name: String,
    pub created: OffsetDateTime,
}

/// A delegated permission grant (Graph `oAuth2PermissionGrant`): a client may act for users
/// (`AllPrincipals`, or one `Principal`) with `scope` at the resource. Recorded and listed; the
/// simulated user tokens' `scp` does not follow it (docs/simulator.md).
pub struct OAuth2PermissionGrant {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub consent_type: String,
    pub principal_id: Option<String>,
    pub resource_id: String,
    pub scope: String,
}

/// An Entra directory role held by a principal (Graph `unifiedRoleAssignment`, directory provider).
pub struct DirectoryRoleAssignment {
    pub id: String,
    pub tenant_id: String,
    /// The role's template id (built-in roles: the definition id is the template id).
    pub role_definition_id: String,
    pub principal_id: String,
    pub directory_scope_id: String,
}

pub struct PasswordCredential {
    pub key_id: String,
    pub display_name: Option<String>,
    pub hint: String,
    pub secret_text: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A federated identity credential of an application (Graph `federatedIdentityCredential`):
/// a token of `issuer` with this `subject` and one of `audiences` signs the app in.
pub struct FederatedCredential {
    pub id: String,
    /// The application's object id.
    pub app_object_id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub description: Option<String>,
}

/// An `appManagementPolicy` (Graph `/policies/appManagementPolicies`), as stored, and the
/// applications (object ids) it applies to.
pub struct AppPolicy {
    pub tenant_id: String,
    pub body: Value,
    pub applies_to: Vec<String>,
}

pub struct Application {
    pub id: String,
    pub app_id: String,
    pub tenant_id: String,
    /// Graph's client-chosen, immutable alternate key (`applications(uniqueName='…')`).
    pub unique_name: Option<String>,
    pub display_name: String,
    pub sign_in_audience: String,
    pub redirect_uris: Vec<String>,
    pub identifier_uris: Vec<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    /// `requiredResourceAccess` as last written (the API permissions the app asks for; a
    /// request only: grants are app role assignments and oauth2PermissionGrants).
    pub required_resource_access: Value,
    pub password_credentials: Vec<PasswordCredential>,
    pub created: OffsetDateTime,
    pub born: Instant,
}

pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub born: Instant,
    /// `servicePrincipalType`: "Application", or "ManagedIdentity" (no application object here).
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

pub struct RoleDefinition {
    pub guid: String,
    /// None: built-in (every tenant).
    pub tenant_id: Option<String>,
    pub role_name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub assignable_scopes: Vec<String>,
    pub created_on: OffsetDateTime,
    pub updated_on: OffsetDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

pub struct RoleAssignment {
    pub name: String,
    pub tenant_id: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub created_on: OffsetDateTime,
    pub created_by: Option<String>,
    pub born: Instant,
}

pub struct SpotCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub expiration_date: String,
}

pub struct SpotAccount {
    pub id: String,
    pub name: String,
    pub provider_external_id: Option<String>,
    pub cloud_provider: Option<String>,
    pub created_at: OffsetDateTime,
    pub credentials: Option<SpotCredentials>,
}

/// A Spot token of a user who is not an Organization Admin: it sees (and may change) only the
/// accounts listed, plus those it creates; it cannot list the organization's accounts.
pub struct ScopedSpotToken {
    pub token: String,
    pub accounts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    User { id: String },
    ServicePrincipal { id: String, app_id: String },
}

impl Principal {
    pub fn object_id(&self) -> &str {
        match self {
            Principal::User { id } | Principal::ServicePrincipal { id, .. } => id,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Arm,
}

pub struct DeviceCode {
    pub user_code: String,
    pub tenant_id: String,
    /// The client the code was issued to.
    pub client_id: String,
    pub scope: String,
    pub created: Instant,
    pub expires: Instant,
    pub interval: Duration,
    pub last_poll: Option<Instant>,
    pub declined: bool,
    pub redeemed: bool,
}

/// A fault armed for chosen calls through `POST {inspect}/faults/drop-after` or
/// `POST {inspect}/faults/delay` (tests): the next `remaining` calls with this method whose path
/// contains `path` get it.
pub struct Armed {
    pub method: String,
    pub path: String,
    pub remaining: u32,
    pub fault: ArmedFault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmedFault {
    /// Handled, then the connection is dropped: the write happens, the reply is lost.
    DropAfter,
    /// Waits this many ms before it is handled (a slow client, or a request stuck on the
    /// network, while other clients go on).
    Delay(u64),
    /// Answered with this status (500, 503…) in the service's error shape, instead of being
    /// handled: a route that keeps failing.
    Fail(u16),
}

pub struct LogEntry {
    pub seq: u64,
    pub time: OffsetDateTime,
    pub service: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub fault: Option<&'static str>,
}

pub struct World {
    pub tenants: Vec<Tenant>,
    pub subscriptions: Vec<Subscription>,
    pub users: Vec<User>,
    pub applications: Vec<Application>,
    pub service_principals: Vec<ServicePrincipal>,
    pub role_definitions: Vec<RoleDefinition>,
    pub role_assignments: Vec<RoleAssignment>,
    /// Graph app roles granted to service principals.
    pub app_role_assignments: Vec<AppRoleAssignment>,
    /// Entra directory roles held by users and service principals.
    pub directory_role_assignments: Vec<DirectoryRoleAssignment>,
    /// Delegated permission grants (`oauth2PermissionGrants`).
    pub oauth2_permission_grants: Vec<OAuth2PermissionGrant>,
    pub federated_credentials: Vec<FederatedCredential>,
    /// The tenant default app management policy (`/policies/defaultAppManagementPolicy`) of
    /// each tenant that has one set; the others have the disabled default
    /// (`graph::default_tenant_policy`).
    pub tenant_app_policies: HashMap<String, Value>,
    pub app_policies: Vec<AppPolicy>,
    /// Tenants where reading the app management policies is refused (403) whoever asks
    /// (`POST {inspect}/policies/app-management/deny-read`).
    pub app_policy_read_denied: Vec<String>,
    pub spot_accounts: Vec<SpotAccount>,
    /// Spot tokens that are not the organization admin's: each sees only its accounts
    /// (`SimHandle::scoped_spot_token`, `POST {inspect}/spot/tokens`).
    pub spot_scoped_tokens: Vec<ScopedSpotToken>,
    /// refresh token → user id
    pub refresh_tokens: HashMap<String, String>,
    pub device_codes: HashMap<String, DeviceCode>,
    pub log: Vec<LogEntry>,
    /// ARM's token buckets (`arm.rs`), by tenant or subscription and kind.
    pub(crate) arm_buckets: HashMap<String, super::arm::Bucket>,
    /// Counter behind generated ids (deterministic for a seed).
    pub id_counter: u64,
    pub armed: Vec<Armed>,
    /// Management groups and the subscriptions placed in them (`mgmt.rs`).
    pub mgmt: super::mgmt::Tree,
    /// Authorization codes and interactive sign-ins (`authorize.rs`).
    pub auth: super::authorize::AuthState,
    pub seed: u64,
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Directory roles that may register applications whatever the tenant setting says.
pub const APP_REGISTRATION_ROLES: [&str; 4] = [
    DIRECTORY_ROLE_GLOBAL_ADMIN,
    DIRECTORY_ROLE_APPLICATION_ADMIN,
    DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN,
    DIRECTORY_ROLE_APPLICATION_DEVELOPER,
];

/// Graph app roles that allow creating applications (application-post-applications).
pub const APP_REGISTRATION_APP_ROLES: [&str; 2] = [
    GRAPH_APPLICATION_READWRITE_ALL,
    GRAPH_APPLICATION_READWRITE_OWNEDBY,
];

/// Microsoft Graph's service principal in `tenant`: a stable id per tenant, as a real tenant's
/// is fixed once made.
pub fn graph_sp_id(tenant: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}/{MICROSOFT_GRAPH_APP_ID}", tenant.to_ascii_lowercase()).as_bytes(),
    )
    .to_string()
}

fn uuid_bytes(s: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(s)
        .unwrap_or_else(|_| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, s.as_bytes()))
        .into_bytes()
}

/// An appRoleAssignment id: like Graph's, 43 base64url characters that begin with the
/// principal's id (a guess at the format; Graph documents it as an opaque string).
pub fn app_role_assignment_id(principal_id: &str, app_role_id: &str) -> String {
    let mut bytes = uuid_bytes(principal_id).to_vec();
    bytes.extend(uuid_bytes(&format!("{principal_id}/{app_role_id}")));
    super::base64url(&bytes)
}

/// A unifiedRoleAssignment id, shaped like the docs' examples (`…-1`): role and principal.
pub fn directory_role_assignment_id(role: &str, principal_id: &str) -> String {
    let mut bytes = uuid_bytes(role).to_vec();
    bytes.extend(uuid_bytes(principal_id));
    format!("{}-1", super::base64url(&bytes))
}

/// splitmix64: the simulator's deterministic mixing function (ids, faults).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random string from the OS generator (tokens, secrets): never derived from the seed.
pub fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Case-insensitive glob with `*` (Azure action wildcards).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Is `scope` equal to or below `parent`?
pub fn scope_within(scope: &str, parent: &str) -> bool {
    let s = scope.trim_end_matches('/').to_ascii_lowercase();
    let p = parent.trim_end_matches('/').to_ascii_lowercase();
    p.is_empty() || s == p || s.starts_with(&format!("{p}/"))
}

pub fn sub_scope(sub: &str) -> String {
    format!("/subscriptions/{sub}")
}

fn perm(actions: &[&str], not_actions: &[&str]) -> Permission {
    Permission {
        actions: actions.iter().map(|s| s.to_string()).collect(),
        not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
        data_actions: vec![],
        not_data_actions: vec![],
    }
}

impl Permission {
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| glob(a, action))
            && !self.not_actions.iter().any(|a| glob(a, action))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "actions": self.actions,
            "notActions": self.not_actions,
            "dataActions": self.data_actions,
            "notDataActions": self.not_data_actions,
        })
    }

    pub fn from_json(v: &Value) -> Permission {
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Permission {
            actions: list("actions"),
            not_actions: list("notActions"),
            data_actions: list("dataActions"),
            not_data_actions: list("notDataActions"),
        }
    }
}

impl RoleDefinition {
    pub fn role_type(&self) -> &'static str {
        if self.tenant_id.is_none() {
            "BuiltInRole"
        } else {
            "CustomRole"
        }
    }

    /// ARM shape, with the id under `scope` (the scope the caller asked at).
    pub fn to_json(&self, scope: &str) -> Value {
        json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{}", self.guid),
            "type": "Microsoft.Authorization/roleDefinitions",
            "name": self.guid,
            "properties": {
                "roleName": self.role_name,
                "type": self.role_type(),
                "description": self.description,
                "assignableScopes": self.assignable_scopes,
                "permissions": self.permissions.iter().map(Permission::to_json).collect::<Vec<_>>(),
                "createdOn": rfc3339(self.created_on),
                "updatedOn": rfc3339(self.updated_on),
                "createdBy": self.created_by,
                "updatedBy": self.updated_by,
            }
        })
    }
}

impl RoleAssignment {
    pub fn to_json(&self) -> Value {
        json!({
            "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", self.scope, self.name),
            "type": "Microsoft.Authorization/roleAssignments",
            "name": self.name,
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": null,
                "conditionVersion": null,
                "createdOn": rfc3339(self.created_on),
                "updatedOn": rfc3339(self.created_on),
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
                "delegatedManagedIdentityResourceId": null,
                "description": null,
            }
        })
    }
}

/// The last path segment of a role definition id (its GUID).
pub fn role_guid(role_definition_id: &str) -> &str {
    role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or(role_definition_id)
}

impl World {
    pub fn seeded(seed: u64, extra_subscriptions: u32) -> World {
        let now = OffsetDateTime::now_utc();
        let born = Instant::now();
        // Seeded objects are "old": replication delay never applies to them.
        let old = born
            .checked_sub(Duration::from_secs(86_400))
            .unwrap_or(born);
        let tenant = |id: &str, name: &str, domain: &str, apps: bool| Tenant {
            id: id.into(),
            name: name.into(),
            domain: domain.into(),
            allowed_to_create_apps: apps,
        };
        let sub = |id: &str, t: &str, name: &str, state: &'static str| Subscription {
            id: id.into(),
            tenant_id: t.into(),
            name: name.into(),
            state,
        };
        let mut subscriptions = vec![
            sub(
                SUB_CONTOSO_PROD,
                CONTOSO_TENANT_ID,
                "Contoso Production",
                "Enabled",
            ),
            sub(SUB_CONTOSO_DEV, CONTOSO_TENANT_ID, "Contoso Dev", "Enabled"),
            sub(
                SUB_CONTOSO_LEGACY,
                CONTOSO_TENANT_ID,
                "Contoso Legacy",
                "Disabled",
            ),
            sub(
                SUB_FABRIKAM_PROD,
                FABRIKAM_TENANT_ID,
                "Fabrikam Production",
                "Enabled",
            ),
            sub(
                SUB_FABRIKAM_STAGING,
                FABRIKAM_TENANT_ID,
                "Fabrikam Staging",
                "Enabled",
            ),
        ];
        for n in 1..=extra_subscriptions {
            subscriptions.push(Subscription {
                id: extra_subscription_id(n),
                tenant_id: CONTOSO_TENANT_ID.into(),
                name: format!("Contoso Bulk {n:03}"),
                state: "Enabled",
            });
        }
        let two_years = time::Duration::days(730);
        let app = |id: &str, app_id: &str, t: &str, name: &str, secret: &str| Application {
            id: id.into(),
            app_id: app_id.into(),
            tenant_id: t.into(),
            unique_name: None,
            display_name: name.into(),
            sign_in_audience: "AzureADMyOrg".into(),
            redirect_uris: vec![],
            identifier_uris: vec![],
            notes: None,
            tags: vec![],
            required_resource_access: json!([]),
            password_credentials: vec![PasswordCredential {
                key_id: format!("d{}", &id[1..]),
                display_name: Some("seed".into()),
                hint: secret.chars().take(3).collect(),
                secret_text: secret.into(),
                start: now - time::Duration::days(1),
                end: now + two_years,
            }],
            created: now - time::Duration::days(30),
            born: old,
        };
        let applications = vec![
            app(
                CI_OPERATOR_APP_OBJECT_ID,
                CI_OPERATOR_CLIENT_ID,
                CONTOSO_TENANT_ID,
                "ci-operator",
                CI_OPERATOR_SECRET,
            ),
            app(
                CI_LIMITED_APP_OBJECT_ID,
                CI_LIMITED_CLIENT_ID,
                CONTOSO_TENANT_ID,
                "ci-limited",
                CI_LIMITED_SECRET,
            ),
            app(
                FABRIKAM_SPOT_APP_OBJECT_ID,
                FABRIKAM_SPOT_APP_CLIENT_ID,
                FABRIKAM_TENANT_ID,
                FABRIKAM_SPOT_APP_NAME,
                FABRIKAM_SPOT_SECRET,
            ),
            app(
                CI_OWNER_NOAPPS_APP_OBJECT_ID,
                CI_OWNER_NOAPPS_CLIENT_ID,
                CONTOSO_TENANT_ID,
                "ci-owner-noapps",
                CI_OWNER_NOAPPS_SECRET,
            ),
        ];
        let service_principals = applications
            .iter()
            .zip([
                CI_OPERATOR_SP_ID,
                CI_LIMITED_SP_ID,
                FABRIKAM_SPOT_SP_ID,
                CI_OWNER_NOAPPS_SP_ID,
            ])
            .map(|(a, sp)| ServicePrincipal {
                id: sp.into(),
                app_id: a.app_id.clone(),
                tenant_id: a.tenant_id.clone(),
                display_name: a.display_name.clone(),
                account_enabled: true,
                born: old,
                kind: "Application",
            })
            .chain([ServicePrincipal {
                id: MANAGED_IDENTITY_SP_ID.into(),
                app_id: MANAGED_IDENTITY_CLIENT_ID.into(),
                tenant_id: CONTOSO_TENANT_ID.into(),
                display_name: MANAGED_IDENTITY_NAME.into(),
                account_enabled: true,
                born: old,
                kind: "ManagedIdentity",
            }])
            // Microsoft Graph's own service principal, present in every tenant (its app lives in
            // Microsoft's tenant; the simulator has no application object for it).
            .chain(
                [CONTOSO_TENANT_ID, FABRIKAM_TENANT_ID].map(|t| ServicePrincipal {
                    id: graph_sp_id(t),
                    app_id: MICROSOFT_GRAPH_APP_ID.into(),
                    tenant_id: t.into(),
                    display_name: "Microsoft Graph".into(),
                    account_enabled: true,
                    born: old,
                    kind: "Application",
                }),
            )
            .collect();
        let builtin = |guid: &str, name: &str, desc: &str, p: Permission| RoleDefinition {
            guid: guid.into(),
            tenant_id: None,
            role_name: name.into(),
            description: desc.into(),
            permissions: vec![p],
            assignable_scopes: vec!["/".into()],
            created_on: now - time::Duration::days(3000),
            updated_on: now - time::Duration::days(300),
            created_by: None,
            updated_by: None,
        };
        let role_definitions = vec![
            builtin(
                ROLE_OWNER,
                "Owner",
                "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
                perm(&["*"], &[]),
            ),
            builtin(
                ROLE_CONTRIBUTOR,
                "Contributor",
                "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
                perm(
                    &["*"],
                    &[
                        "Microsoft.Authorization/*/Delete",
                        "Microsoft.Authorization/*/Write",
                        "Microsoft.Authorization/elevateAccess/Action",
                        "Microsoft.Blueprint/blueprintAssignments/write",
                        "Microsoft.Blueprint/blueprintAssignments/delete",
                        "Microsoft.Compute/galleries/share/action",
                    ],
                ),
            ),
            builtin(
                ROLE_READER,
                "Reader",
                "View all resources, but does not allow you to make any changes.",
                perm(&["*/read"], &[]),
            ),
            builtin(
                ROLE_USER_ACCESS_ADMIN,
                "User Access Administrator",
                "Lets you manage user access to Azure resources.",
                perm(
                    &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
                    &[],
                ),
            ),
        ];
        let mut w = World {
            tenants: vec![
                // Contoso: users may register apps. Fabrikam restricts it to app roles.
                tenant(CONTOSO_TENANT_ID, CONTOSO_NAME, CONTOSO_DOMAIN, true),
                tenant(FABRIKAM_TENANT_ID, FABRIKAM_NAME, FABRIKAM_DOMAIN, false),
            ],
            subscriptions,
            // The operator: a member of Contoso, and a guest in Fabrikam (its own object there).
            users: vec![
                User {
                    id: OPERATOR_USER_ID.into(),
                    upn: OPERATOR_UPN.into(),
                    name: OPERATOR_NAME.into(),
                    tenant: CONTOSO_TENANT_ID.into(),
                    user_type: "Member",
                    home_id: OPERATOR_USER_ID.into(),
                    home_tenant: CONTOSO_TENANT_ID.into(),
                    mail: Some(OPERATOR_UPN.into()),
                },
                User {
                    id: OPERATOR_FABRIKAM_GUEST_ID.into(),
                    upn: OPERATOR_FABRIKAM_GUEST_UPN.into(),
                    name: OPERATOR_NAME.into(),
                    tenant: FABRIKAM_TENANT_ID.into(),
                    user_type: "Guest",
                    home_id: OPERATOR_USER_ID.into(),
                    home_tenant: CONTOSO_TENANT_ID.into(),
                    mail: Some(OPERATOR_UPN.into()),
                },
            ],
            applications,
            service_principals,
            role_definitions,
            role_assignments: vec![],
            app_role_assignments: vec![],
            directory_role_assignments: vec![],
            oauth2_permission_grants: vec![],
            federated_credentials: vec![],
            tenant_app_policies: HashMap::new(),
            app_policies: vec![],
            app_policy_read_denied: vec![],
            spot_accounts: vec![],
            spot_scoped_tokens: vec![],
            refresh_tokens: HashMap::new(),
            device_codes: HashMap::new(),
            log: vec![],
            arm_buckets: HashMap::new(),
            id_counter: 0,
            armed: vec![],
            mgmt: Default::default(),
            auth: Default::default(),
            seed,
        };
        // Assignments: operator Owner everywhere; ci-operator Owner on Contoso's; ci-limited Reader
        // on Contoso Production; the Fabrikam Spot app Contributor on Fabrikam Production.
        let mut grants: Vec<(String, String, &str, &str, &str)> = vec![];
        for s in &w.subscriptions {
            // The operator's object in the subscription's tenant (the guest in Fabrikam).
            let operator = if s.tenant_id == FABRIKAM_TENANT_ID {
                OPERATOR_FABRIKAM_GUEST_ID
            } else {
                OPERATOR_USER_ID
            };
            grants.push((
                s.id.clone(),
                s.tenant_id.clone(),
                ROLE_OWNER,
                operator,
                "User",
            ));
            if s.tenant_id == CONTOSO_TENANT_ID {
                grants.push((
                    s.id.clone(),
                    s.tenant_id.clone(),
                    ROLE_OWNER,
                    CI_OPERATOR_SP_ID,
                    "ServicePrincipal",
                ));
            }
        }
        grants.push((
            SUB_CONTOSO_PROD.into(),
            CONTOSO_TENANT_ID.into(),
            ROLE_READER,
            CI_LIMITED_SP_ID,
            "ServicePrincipal",
        ));
        grants.push((
            SUB_FABRIKAM_PROD.into(),
            FABRIKAM_TENANT_ID.into(),
            ROLE_CONTRIBUTOR,
            FABRIKAM_SPOT_SP_ID,
            "ServicePrincipal",
        ));
        for (sub, tenant, role, principal, ptype) in grants {
            let name = w.new_guid();
            w.role_assignments.push(RoleAssignment {
                name,
                tenant_id: tenant,
                scope: sub_scope(&sub),
                role_definition_id: format!(
                    "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
                ),
                principal_id: principal.into(),
                principal_type: ptype.into(),
                created_on: now - time::Duration::days(30),
                created_by: None,
                born: old,
            });
        }
        // ci-owner-noapps: Owner on Contoso Production and Dev; the managed identity: Owner on
        // Contoso Dev (fixed names, so the ids generated above and after stay what they were).
        for (name, sub, principal) in [
            (
                "0a000004-0000-4000-8000-0000000000a1",
                SUB_CONTOSO_PROD,
                CI_OWNER_NOAPPS_SP_ID,
            ),
            (
                "0a000004-0000-4000-8000-0000000000a2",
                SUB_CONTOSO_DEV,
                CI_OWNER_NOAPPS_SP_ID,
            ),
            (
                "0a000005-0000-4000-8000-0000000000a2",
                SUB_CONTOSO_DEV,
                MANAGED_IDENTITY_SP_ID,
            ),
        ] {
            w.role_assignments.push(RoleAssignment {
                name: name.into(),
                tenant_id: CONTOSO_TENANT_ID.into(),
                scope: sub_scope(sub),
                role_definition_id: format!(
                    "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_OWNER}"
                ),
                principal_id: principal.into(),
                principal_type: "ServicePrincipal".into(),
                created_on: now - time::Duration::days(30),
                created_by: None,
                born: old,
            });
        }
        // Graph app roles: ci-operator and the managed identity hold Application.ReadWrite.All.
        for (sp, name) in [
            (CI_OPERATOR_SP_ID, "ci-operator"),
            (MANAGED_IDENTITY_SP_ID, MANAGED_IDENTITY_NAME),
        ] {
            w.app_role_assignments.push(AppRoleAssignment {
                id: app_role_assignment_id(sp, GRAPH_APPLICATION_READWRITE_ALL),
                tenant_id: CONTOSO_TENANT_ID.into(),
                app_role_id: GRAPH_APPLICATION_READWRITE_ALL.into(),
                principal_id: sp.into(),
                principal_type: "ServicePrincipal",
                principal_display_name: name.into(),
                resource_id: graph_sp_id(CONTOSO_TENANT_ID),
                resource_display_name: "Microsoft Graph".into(),
                created: now - time::Duration::days(30),
            });
        }
        // Directory roles: in Fabrikam the operator's guest registers apps as Cloud Application
        // Administrator; in Contoso the operator is Privileged Role Administrator (may grant app
        // roles and directory roles, but not register apps by that role).
        for (tenant, role, principal) in [
            (
                FABRIKAM_TENANT_ID,
                DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN,
                OPERATOR_FABRIKAM_GUEST_ID,
            ),
            (
                CONTOSO_TENANT_ID,
                DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN,
                OPERATOR_USER_ID,
            ),
        ] {
            w.directory_role_assignments.push(DirectoryRoleAssignment {
                id: directory_role_assignment_id(role, principal),
                tenant_id: tenant.into(),
                role_definition_id: role.into(),
                principal_id: principal.into(),
                directory_scope_id: "/".into(),
            });
        }
        w.spot_accounts = vec![
            SpotAccount {
                id: SPOT_ACCOUNT_UNCONNECTED.into(),
                name: SPOT_ACCOUNT_UNCONNECTED_NAME.into(),
                provider_external_id: None,
                cloud_provider: None,
                created_at: now - time::Duration::days(400),
                credentials: None,
            },
            SpotAccount {
                id: SPOT_ACCOUNT_CONNECTED.into(),
                name: SPOT_ACCOUNT_CONNECTED_NAME.into(),
                provider_external_id: Some(SUB_FABRIKAM_PROD.into()),
                cloud_provider: Some("AZURE".into()),
                created_at: now - time::Duration::days(200),
                credentials: Some(SpotCredentials {
                    client_id: FABRIKAM_SPOT_APP_CLIENT_ID.into(),
                    client_secret: FABRIKAM_SPOT_SECRET.into(),
                    tenant_id: FABRIKAM_TENANT_ID.into(),
                    subscription_id: SUB_FABRIKAM_PROD.into(),
                    expiration_date: rfc3339(now + two_years),
                }),
            },
        ];
        super::mgmt::seed(&mut w, Duration::ZERO);
        w
    }

    /// A new GUID, deterministic for the seed and the order of creation.
    pub fn new_guid(&mut self) -> String {
        self.id_counter += 1;
        let a = mix(self.seed ^ mix(self.id_counter));
        let b = mix(a ^ 0x5151_5151);
        uuid::Builder::from_random_bytes({
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&a.to_be_bytes());
            bytes[8..].copy_from_slice(&b.to_be_bytes());
            bytes
        })
        .into_uuid()
        .to_string()
    }

    /// Arms `fault` for the next `count` calls with `method` whose path contains `path` (any case).
    /// A new Spot token that sees only `accounts` (and the accounts it creates).
    pub fn add_scoped_spot_token(&mut self, accounts: &[String]) -> String {
        let token = format!(
            "sim-spot-scoped-token-{}-NOT-REAL",
            self.spot_scoped_tokens.len() + 1
        );
        self.spot_scoped_tokens.push(ScopedSpotToken {
            token: token.clone(),
            accounts: accounts.to_vec(),
        });
        token
    }

    pub fn arm(&mut self, method: &str, path: &str, count: u32, fault: ArmedFault) {
        self.armed.push(Armed {
            method: method.to_ascii_uppercase(),
            path: path.to_ascii_lowercase(),
            remaining: count,
            fault,
        });
    }

    /// The armed fault of this kind (`is`) that applies to this call, if any (and uses it up).
    pub fn take_armed(
        &mut self,
        method: &str,
        path: &str,
        is: impl Fn(ArmedFault) -> bool,
    ) -> Option<ArmedFault> {
        let path = path.to_ascii_lowercase();
        let d = self.armed.iter_mut().find(|d| {
            d.remaining > 0
                && is(d.fault)
                && d.method.eq_ignore_ascii_case(method)
                && path.contains(&d.path)
        })?;
        d.remaining -= 1;
        Some(d.fault)
    }

    /// Whether `principal` may register applications in `tenant`: a user through the tenant's
    /// "Users can register applications" or an app-management directory role; a service
    /// principal through Graph's Application.ReadWrite.All or .OwnedBy app role, or such a
    /// directory role (application-post-applications: the permissions and roles it lists).
    pub fn may_register_apps(&self, tenant: &str, principal: &Principal) -> bool {
        let by_role = self
            .directory_roles_of(tenant, principal.object_id())
            .iter()
            .any(|r| APP_REGISTRATION_ROLES.contains(r));
        by_role
            || match principal {
                Principal::User { .. } => self
                    .tenant(tenant)
                    .is_some_and(|t| t.allowed_to_create_apps),
                Principal::ServicePrincipal { id, .. } => self
                    .graph_app_roles(tenant, id)
                    .iter()
                    .any(|r| APP_REGISTRATION_APP_ROLES.contains(&r.as_str())),
            }
    }

    /// The directory role templates `principal_id` holds in `tenant`.
    pub fn directory_roles_of(&self, tenant: &str, principal_id: &str) -> Vec<&str> {
        self.directory_role_assignments
            .iter()
            .filter(|a| {
                a.tenant_id.eq_ignore_ascii_case(tenant)
                    && a.principal_id.eq_ignore_ascii_case(principal_id)
            })
            .map(|a| a.role_definition_id.as_str())
            .collect()
    }

    /// Ids of the Microsoft Graph app roles granted to the service principal `sp_id`.
    pub fn graph_app_roles(&self, tenant: &str, sp_id: &str) -> Vec<String> {
        let graph = graph_sp_id(tenant);
        self.app_role_assignments
            .iter()
            .filter(|a| {
                a.tenant_id.eq_ignore_ascii_case(tenant)
                    && a.principal_id.eq_ignore_ascii_case(sp_id)
                    && a.resource_id == graph
            })
            .map(|a| a.app_role_id.to_ascii_lowercase())
            .collect()
    }

    /// The `value`s of the Graph app roles of `sp_id` (an app token's `roles` claim).
    pub fn graph_role_values(&self, tenant: &str, sp_id: &str) -> Vec<&'static str> {
        let held = self.graph_app_roles(tenant, sp_id);
        GRAPH_APP_ROLES
            .iter()
            .filter(|r| held.iter().any(|h| h.eq_ignore_ascii_case(r.id)))
            .map(|r| r.value)
            .collect()
    }

    /// Whether the service principal `sp_id` holds one of Graph's app roles named `values`.
    pub fn has_graph_permission(&self, tenant: &str, sp_id: &str, values: &[&str]) -> bool {
        self.graph_role_values(tenant, sp_id)
            .iter()
            .any(|v| values.contains(v))
    }

    /// The user object of the person whose home object is `home_id`, in `tenant` (the member
    /// itself at home, its guest elsewhere).
    pub fn user_in(&self, tenant: &str, home_id: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.tenant.eq_ignore_ascii_case(tenant) && u.home_id.eq_ignore_ascii_case(home_id)
        })
    }

    /// The simulated tenant named by its id or its domain (either case), as the identity
    /// platform accepts either in a path.
    pub fn tenant_named(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(id_or_domain) || t.domain.eq_ignore_ascii_case(id_or_domain)
        })
    }

    /// The tenants the person behind user object `id` has an object in.
    pub fn user_tenants(&self, id: &str) -> Vec<String> {
        let Some(home) = self.user(id).map(|u| u.home_id.clone()) else {
            return vec![];
        };
        self.users
            .iter()
            .filter(|u| u.home_id == home)
            .map(|u| u.tenant.clone())
            .collect()
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id.eq_ignore_ascii_case(id))
    }

    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(id))
    }

    pub fn role_definition(&self, tenant: &str, guid: &str) -> Option<&RoleDefinition> {
        self.role_definitions.iter().find(|r| {
            r.guid.eq_ignore_ascii_case(guid) && r.tenant_id.as_deref().is_none_or(|t| t == tenant)
        })
    }

    /// Display name of a principal for ARM messages (UPN for users, appId for service principals).
    pub fn principal_label(&self, p: &Principal) -> String {
        match p {
            Principal::User { id } => self
                .user(id)
                .map(|u| u.upn.clone())
                .unwrap_or_else(|| id.clone()),
            Principal::ServicePrincipal { app_id, .. } => app_id.clone(),
        }
    }

    /// Assignments of `principal_id` that apply at `scope` and that have taken effect.
    pub fn effective_permissions(
        &self,
        tenant: &str,
        principal_id: &str,
        scope: &str,
        settled: impl Fn(Instant) -> bool,
    ) -> Vec<Permission> {
        self.role_assignments
            .iter()
            .filter(|a| {
                a.tenant_id == tenant
                    && a.principal_id == principal_id
                    && self.covers(tenant, scope, &a.scope)
                    && settled(a.born)
                    && self.mg_settled(a)
            })
            .filter_map(|a| self.role_definition(tenant, role_guid(&a.role_definition_id)))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }

    /// `allowed` for many scopes at once (a listing of thousands of subscriptions must not
    /// scan every assignment for each): the scopes of the principal's assignments whose role
    /// allows `action`, looked up once. Same answers as `allowed`.
    pub fn allowed_at(
        &self,
        tenant: &str,
        principal_id: &str,
        action: &str,
    ) -> impl Fn(&str) -> bool + use<> {
        let granting: Vec<String> = self
            .role_assignments
            .iter()
            .filter(|a| a.tenant_id == tenant && a.principal_id == principal_id)
            .filter(|a| {
                self.role_definition(tenant, role_guid(&a.role_definition_id))
                    .is_some_and(|r| r.permissions.iter().any(|p| p.allows(action)))
            })
            .map(|a| a.scope.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        let mut exact: std::collections::HashSet<String> = granting.iter().cloned().collect();
        // Subscriptions below a granting management group are granted too.
        let groups: Vec<&str> = granting
            .iter()
            .filter_map(|s| super::mgmt::mg_of_scope(s))
            .collect();
        if !groups.is_empty() {
            for s in self.subscriptions.iter().filter(|s| s.tenant_id == tenant) {
                let scope = sub_scope(&s.id);
                if self
                    .mgmt
                    .ancestors(tenant, &scope)
                    .iter()
                    .any(|a| groups.iter().any(|g| g.eq_ignore_ascii_case(a)))
                {
                    exact.insert(scope.to_ascii_lowercase());
                }
            }
        }
        let broad: Vec<String> = granting
            .into_iter()
            .filter(|s| !s.starts_with("/subscriptions/"))
            .filter(|s| super::mgmt::mg_of_scope(s).is_none())
            .collect();
        move |scope: &str| {
            let s = scope.trim_end_matches('/').to_ascii_lowercase();
            // Every ancestor of the scope under /subscriptions/…, then the broad ones.
            let mut at = s.as_str();
            loop {
                if exact.contains(at) {
                    return true;
                }
                match at.rfind('/') {
                    Some(i) if at[..i].starts_with("/subscriptions/") => at = &at[..i],
                    _ => break,
                }
            }
            broad.iter().any(|b| scope_within(&s, b))
        }
    }

    pub fn allowed(&self, tenant: &str, principal_id: &str, scope: &str, action: &str) -> bool {
        self.effective_permissions(tenant, principal_id, scope, |_| true)
            .iter()
            .any(|p| p.allows(action))
    }

    /// `GET {inspect}/state`: every object, secrets included (test oracle only).
    pub fn inspect(&self) -> Value {
        let pc = |c: &PasswordCredential| {
            json!({
                "keyId": c.key_id, "displayName": c.display_name, "hint": c.hint,
                "secretText": c.secret_text, "startDateTime": rfc3339(c.start), "endDateTime": rfc3339(c.end),
            })
        };
        json!({
            "tenants": self.tenants.iter().map(|t| json!({"tenantId": t.id, "displayName": t.name, "defaultDomain": t.domain, "allowedToCreateApps": t.allowed_to_create_apps})).collect::<Vec<_>>(),
            "subscriptions": self.subscriptions.iter().map(|s| json!({"subscriptionId": s.id, "tenantId": s.tenant_id, "displayName": s.name, "state": s.state})).collect::<Vec<_>>(),
            "users": self.users.iter().map(|u| json!({"id": u.id, "userPrincipalName": u.upn, "displayName": u.name, "tenantId": u.tenant, "userType": u.user_type,
                "homeUserId": u.home_id, "homeTenantId": u.home_tenant,
                "directoryRoles": self.directory_roles_of(&u.tenant, &u.id).iter().map(|r| json!({"tenantId": u.tenant, "roleTemplateId": r})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "applications": self.applications.iter().map(|a| json!({
                "id": a.id, "appId": a.app_id, "tenantId": a.tenant_id, "uniqueName": a.unique_name, "displayName": a.display_name,
                "signInAudience": a.sign_in_audience, "redirectUris": a.redirect_uris, "notes": a.notes, "tags": a.tags,
                "createdDateTime": rfc3339(a.created),
                "passwordCredentials": a.password_credentials.iter().map(pc).collect::<Vec<_>>(),
                "federatedIdentityCredentials": self.federated_credentials.iter().filter(|f| f.app_object_id == a.id).map(|f| json!({
                    "id": f.id, "name": f.name, "issuer": f.issuer, "subject": f.subject, "audiences": f.audiences,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "servicePrincipals": self.service_principals.iter().map(|s| json!({
                "id": s.id, "appId": s.app_id, "tenantId": s.tenant_id, "displayName": s.display_name, "accountEnabled": s.account_enabled,
            })).collect::<Vec<_>>(),
            "roleDefinitions": self.role_definitions.iter().map(|r| json!({
                "name": r.guid, "tenantId": r.tenant_id, "roleName": r.role_name, "type": r.role_type(),
                "assignableScopes": r.assignable_scopes,
                "permissions": r.permissions.iter().map(Permission::to_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "roleAssignments": self.role_assignments.iter().map(|a| json!({
                "name": a.name, "tenantId": a.tenant_id, "scope": a.scope, "roleDefinitionId": a.role_definition_id,
                "principalId": a.principal_id, "principalType": a.principal_type,
            })).collect::<Vec<_>>(),
            "appRoleAssignments": self.app_role_assignments.iter().map(|a| json!({
                "id": a.id, "tenantId": a.tenant_id, "appRoleId": a.app_role_id, "principalId": a.principal_id,
                "principalType": a.principal_type, "resourceId": a.resource_id, "resourceDisplayName": a.resource_display_name,
            })).collect::<Vec<_>>(),
            "directoryRoleAssignments": self.directory_role_assignments.iter().map(|a| json!({
                "id": a.id, "tenantId": a.tenant_id, "roleDefinitionId": a.role_definition_id,
                "principalId": a.principal_id, "directoryScopeId": a.directory_scope_id,
            })).collect::<Vec<_>>(),
            "oauth2PermissionGrants": self.oauth2_permission_grants.iter().map(|g| json!({
                "id": g.id, "tenantId": g.tenant_id, "clientId": g.client_id, "consentType": g.consent_type,
                "principalId": g.principal_id, "resourceId": g.resource_id, "scope": g.scope,
            })).collect::<Vec<_>>(),
            "managementGroups": super::mgmt::inspect_json(self),
            "spot": {
                "organizationId": SPOT_ORG_ID,
                "accounts": self.spot_accounts.iter().map(|a| json!({
                    "accountId": a.id, "name": a.name, "providerExternalId": a.provider_external_id,
                    "cloudProvider": a.cloud_provider, "createdAt": rfc3339(a.created_at),
                    "credentials": a.credentials.as_ref().map(|c| json!({
                        "clientId": c.client_id, "clientSecret": c.client_secret, "tenantId": c.tenant_id,
                        "subscriptionId": c.subscription_id, "expirationDate": c.expiration_date,
                    })),
                })).collect::<Vec<_>>(),
            },
        })
    }

    pub fn requests_json(&self) -> Value {
        Value::Array(
            self.log
                .iter()
                .map(|e| {
                    json!({
                        "seq": e.seq, "time": rfc3339(e.time), "service": e.service, "method": e.method,
                        "path": e.path, "status": e.status, "fault": e.fault,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_azure_wildcards() {
        assert!(glob("*", "Microsoft.Compute/disks/read"));
        assert!(glob("*/read", "Microsoft.Compute/disks/read"));
        assert!(!glob("*/read", "Microsoft.Compute/disks/write"));
        assert!(glob(
            "Microsoft.Authorization/*/Write",
            "microsoft.authorization/roleAssignments/write"
        ));
        assert!(!glob(
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/readx"
        ));
    }

    #[test]
    fn contributor_cannot_write_role_assignments_but_owner_can() {
        let w = World::seeded(1, 0);
        let scope = sub_scope(SUB_FABRIKAM_PROD);
        assert!(!w.allowed(
            FABRIKAM_TENANT_ID,
            FABRIKAM_SPOT_SP_ID,
            &scope,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(w.allowed(
            FABRIKAM_TENANT_ID,
            FABRIKAM_SPOT_SP_ID,
            &scope,
            "Microsoft.Compute/virtualMachines/write"
        ));
        // In Fabrikam the operator is its guest object: the Owner assignment is the guest's.
        assert!(w.allowed(
            FABRIKAM_TENANT_ID,
            OPERATOR_FABRIKAM_GUEST_ID,
            &scope,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!w.allowed(
            FABRIKAM_TENANT_ID,
            OPERATOR_USER_ID,
            &scope,
            "Microsoft.Authorization/roleAssignments/write"
        ));
    }
}
