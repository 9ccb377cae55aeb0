//! The simulator's seed data: stable ids, names and (fake) secrets that tests and docs rely on.
//! Every value here is made up; none is a real credential. See docs/simulator.md.

pub const CONTOSO_TENANT_ID: &str = "c0c0c0c0-0000-4000-8000-00000000c001";
pub const CONTOSO_NAME: &str = "Contoso";
pub const CONTOSO_DOMAIN: &str = "contoso.example";
pub const FABRIKAM_TENANT_ID: &str = "fab0fab0-0000-4000-8000-00000000fab2";
pub const FABRIKAM_NAME: &str = "Fabrikam";
pub const FABRIKAM_DOMAIN: &str = "fabrikam.example";

/// Contoso, Enabled.
pub const SUB_CONTOSO_PROD: &str = "5c000001-0000-4000-8000-0000000000a1";
/// Contoso, Enabled.
pub const SUB_CONTOSO_DEV: &str = "5c000002-0000-4000-8000-0000000000a2";
/// Contoso, Disabled (read only: writes get 409 ReadOnlyDisabledSubscription).
pub const SUB_CONTOSO_LEGACY: &str = "5c000003-0000-4000-8000-0000000000a3";
/// Fabrikam, Enabled; already connected to Spot account [`SPOT_ACCOUNT_CONNECTED`].
pub const SUB_FABRIKAM_PROD: &str = "5f000001-0000-4000-8000-0000000000b1";
/// Fabrikam, Enabled.
pub const SUB_FABRIKAM_STAGING: &str = "5f000002-0000-4000-8000-0000000000b2";

/// The device-code user: home tenant Contoso, member of both tenants, Owner on every subscription.
pub const OPERATOR_USER_ID: &str = "0be7a70e-0000-4000-8000-000000000001";
pub const OPERATOR_UPN: &str = "operator@contoso.example";
pub const OPERATOR_NAME: &str = "Sim Operator";
/// The operator's guest user object in Fabrikam: its own object id there (B2B collaboration),
/// `userType` Guest, its UPN in Entra's `#EXT#` form. Owner on the Fabrikam subscriptions,
/// Cloud Application Administrator in Fabrikam.
pub const OPERATOR_FABRIKAM_GUEST_ID: &str = "0be7a70e-0000-4000-8000-00000000fab1";
pub const OPERATOR_FABRIKAM_GUEST_UPN: &str = "operator_contoso.example#EXT#@fabrikam.example";

/// Service principal with the operator's rights (Contoso): Owner on the Contoso subscriptions,
/// may register applications.
pub const CI_OPERATOR_CLIENT_ID: &str = "c1000001-0000-4000-8000-0000000000c1";
pub const CI_OPERATOR_APP_OBJECT_ID: &str = "a1000001-0000-4000-8000-0000000000c1";
pub const CI_OPERATOR_SP_ID: &str = "b1000001-0000-4000-8000-0000000000c1";
/// FAKE secret of the simulator, not a credential.
pub const CI_OPERATOR_SECRET: &str = "sim~ci-operator-secret-NOT-REAL-0001";

/// Service principal without rights (Contoso): Reader on Contoso Production only; Graph writes get
/// 403 Authorization_RequestDenied, ARM writes 403 AuthorizationFailed.
pub const CI_LIMITED_CLIENT_ID: &str = "c1000002-0000-4000-8000-0000000000c2";
pub const CI_LIMITED_APP_OBJECT_ID: &str = "a1000002-0000-4000-8000-0000000000c2";
pub const CI_LIMITED_SP_ID: &str = "b1000002-0000-4000-8000-0000000000c2";
/// FAKE secret of the simulator, not a credential.
pub const CI_LIMITED_SECRET: &str = "sim~ci-limited-secret-NOT-REAL-0002";

/// The app registration behind the already-connected Spot account (Fabrikam, Contributor on
/// Fabrikam Production).
pub const FABRIKAM_SPOT_APP_CLIENT_ID: &str = "c1000003-0000-4000-8000-0000000000c3";
pub const FABRIKAM_SPOT_APP_OBJECT_ID: &str = "a1000003-0000-4000-8000-0000000000c3";
pub const FABRIKAM_SPOT_SP_ID: &str = "b1000003-0000-4000-8000-0000000000c3";
pub const FABRIKAM_SPOT_APP_NAME: &str = "Spot.io-fabrikam-prod";
/// FAKE secret of the simulator, not a credential.
pub const FABRIKAM_SPOT_SECRET: &str = "sim~fabrikam-spot-secret-NOT-REAL-0003";

/// The simulated Spot organization's admin token (goes into endpoints.json). FAKE.
pub const SPOT_TOKEN: &str = "sim-spot-org-admin-token-NOT-REAL";
pub const SPOT_ORG_ID: &str = "606079870001";
/// Spot account without Azure credentials.
pub const SPOT_ACCOUNT_UNCONNECTED: &str = "act-5a1e0001";
pub const SPOT_ACCOUNT_UNCONNECTED_NAME: &str = "default";
/// Spot account connected to [`SUB_FABRIKAM_PROD`].
pub const SPOT_ACCOUNT_CONNECTED: &str = "act-5a1e0002";
pub const SPOT_ACCOUNT_CONNECTED_NAME: &str = "Fabrikam Production";

/// Built-in roles (real Azure GUIDs).
pub const ROLE_OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const ROLE_CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const ROLE_READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const ROLE_USER_ACCESS_ADMIN: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";

/// The public client id the product uses for device code (Azure CLI's); any client id is accepted.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// Id of the n-th extra subscription (`--subscriptions N`), n from 1; they live in Contoso.
pub fn extra_subscription_id(n: u32) -> String {
    format!("5e000000-0000-4000-8000-{n:012x}")
}

/// Service principal (Contoso) with Owner on Contoso Production and Contoso Dev but no right to
/// register applications: no Graph app role, so Graph writes get 403 Authorization_RequestDenied.
pub const CI_OWNER_NOAPPS_CLIENT_ID: &str = "c1000004-0000-4000-8000-0000000000c4";
pub const CI_OWNER_NOAPPS_APP_OBJECT_ID: &str = "a1000004-0000-4000-8000-0000000000c4";
pub const CI_OWNER_NOAPPS_SP_ID: &str = "b1000004-0000-4000-8000-0000000000c4";
/// FAKE secret of the simulator, not a credential.
pub const CI_OWNER_NOAPPS_SECRET: &str = "sim~ci-owner-noapps-secret-NOT-REAL-0004";

/// Entra directory role templates (real ids) that may register applications.
pub const DIRECTORY_ROLE_GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
pub const DIRECTORY_ROLE_APPLICATION_ADMIN: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
pub const DIRECTORY_ROLE_CLOUD_APPLICATION_ADMIN: &str = "158c047a-c907-4556-b7ef-446551a6b5f7";
pub const DIRECTORY_ROLE_APPLICATION_DEVELOPER: &str = "cf1c38e5-3621-4004-a7cb-879624dced7c";
/// May grant app roles (Microsoft Graph's included) and directory roles; does not by itself
/// allow registering applications. The operator holds it in Contoso.
pub const DIRECTORY_ROLE_PRIVILEGED_ROLE_ADMIN: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";

/// Microsoft Graph's application id, and the ids of its app roles (application permissions)
/// that allow creating applications.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
pub const GRAPH_APPLICATION_READWRITE_ALL: &str = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9";
pub const GRAPH_APPLICATION_READWRITE_OWNEDBY: &str = "18a4783c-866b-4cc7-a460-3d5e5662c884";

/// One of Microsoft Graph's app roles (application permissions), with the id Microsoft publishes
/// (learn.microsoft.com/graph/permissions-reference).
pub struct GraphAppRole {
    pub id: &'static str,
    pub value: &'static str,
    pub display_name: &'static str,
}

/// The Graph app roles the simulated Microsoft Graph service principal lists (a subset of the
/// real ~400: those that bear on registering apps and granting rights).
pub const GRAPH_APP_ROLES: [GraphAppRole; 10] = [
    GraphAppRole {
        id: GRAPH_APPLICATION_READWRITE_ALL,
        value: "Application.ReadWrite.All",
        display_name: "Read and write all applications",
    },
    GraphAppRole {
        id: GRAPH_APPLICATION_READWRITE_OWNEDBY,
        value: "Application.ReadWrite.OwnedBy",
        display_name: "Manage apps that this app creates or owns",
    },
    GraphAppRole {
        id: "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
        value: "Application.Read.All",
        display_name: "Read all applications",
    },
    GraphAppRole {
        id: "06b708a9-e830-4db3-a914-8e69da51d44f",
        value: "AppRoleAssignment.ReadWrite.All",
        display_name: "Manage app permission grants and app role assignments",
    },
    GraphAppRole {
        id: "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
        value: "Directory.Read.All",
        display_name: "Read directory data",
    },
    GraphAppRole {
        id: "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
        value: "Directory.ReadWrite.All",
        display_name: "Read and write directory data",
    },
    GraphAppRole {
        id: "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
        value: "RoleManagement.Read.Directory",
        display_name: "Read all directory RBAC settings",
    },
    GraphAppRole {
        id: "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
        value: "RoleManagement.ReadWrite.Directory",
        display_name: "Read and write all directory RBAC settings",
    },
    GraphAppRole {
        id: "246dd0d5-5bd0-4def-940b-0421030a5b68",
        value: "Policy.Read.All",
        display_name: "Read your organization's policies",
    },
    GraphAppRole {
        id: "df021288-bdef-4463-88db-98f22de89214",
        value: "User.Read.All",
        display_name: "Read all users' full profiles",
    },
];

/// Microsoft's own tenant, the `appOwnerOrganizationId` of Microsoft Graph's service principal.
pub const MICROSOFT_SERVICES_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// A managed identity in Contoso (system-assigned, as on an App Service app): Owner on Contoso
/// Dev, may register apps (Graph Application.ReadWrite.All). Its tokens come from the simulated
/// App Service identity endpoint `{login}/msi/token` (docs/simulator.md).
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "c1000005-0000-4000-8000-0000000000c5";
pub const MANAGED_IDENTITY_SP_ID: &str = "b1000005-0000-4000-8000-0000000000c5";
pub const MANAGED_IDENTITY_NAME: &str = "spot-connect-sim-identity";
/// The `IDENTITY_HEADER` value the identity endpoint wants in `X-IDENTITY-HEADER`. Not a real
/// credential.
pub const MANAGED_IDENTITY_HEADER: &str = "sim-identity-header-NOT-REAL";

/// The audience a federated token must carry for Entra (federatedIdentityCredential `audiences`).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// ci-operator's federated identity credential: a Kubernetes service account of the simulated
/// external OpenID Connect issuer (`{inspect}/oidc`) signs the app in with no secret
/// (`--auth workload-identity`; docs/simulator.md).
pub const WORKLOAD_FIC_ID: &str = "f1c00001-0000-4000-8000-0000000000c1";
pub const WORKLOAD_FIC_NAME: &str = "aks-spot-connect";
pub const WORKLOAD_SUBJECT: &str = "system:serviceaccount:spot:spot-connect";
/// The path of the simulated external issuer on the inspect origin: its `iss` is
/// `{inspect}{WORKLOAD_ISSUER_PATH}`.
pub const WORKLOAD_ISSUER_PATH: &str = "/oidc";
/// Management groups of Contoso (`sim/mgmt.rs`): `contoso-spot` under the tenant root group
/// (Contoso Dev, Contoso Legacy and the bulk subscriptions), `contoso-spot-prod` under it
/// (Contoso Production). The operator and ci-operator are Owner at `contoso-spot`.
pub const MG_SPOT: &str = "contoso-spot";
pub const MG_SPOT_NAME: &str = "Contoso Spot";
pub const MG_SPOT_PROD: &str = "contoso-spot-prod";
pub const MG_SPOT_PROD_NAME: &str = "Contoso Spot Production";
