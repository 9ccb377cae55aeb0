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

/// Page size of `GET /subscriptions` (small, so clients must follow `nextLink`).
pub const SUBSCRIPTIONS_PAGE_SIZE: usize = 2;

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

/// Microsoft Graph's application id, and the ids of its app roles (application permissions)
/// that allow creating applications.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
pub const GRAPH_APPLICATION_READWRITE_ALL: &str = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9";
pub const GRAPH_APPLICATION_READWRITE_OWNEDBY: &str = "18a4783c-866b-4cc7-a460-3d5e5662c884";

/// A managed identity in Contoso (system-assigned, as on an App Service app): Owner on Contoso
/// Dev, may register apps (Graph Application.ReadWrite.All). Its tokens come from the simulated
/// App Service identity endpoint `{login}/msi/token` (docs/simulator.md).
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "c1000005-0000-4000-8000-0000000000c5";
pub const MANAGED_IDENTITY_SP_ID: &str = "b1000005-0000-4000-8000-0000000000c5";
pub const MANAGED_IDENTITY_NAME: &str = "spot-connect-sim-identity";
/// The `IDENTITY_HEADER` value the identity endpoint wants in `X-IDENTITY-HEADER`. Not a real
/// credential.
pub const MANAGED_IDENTITY_HEADER: &str = "sim-identity-header-NOT-REAL";
