//! The names spot-connect gives what it makes, where more than one step must agree on them.

/// Display-name prefix of every client secret spot-connect adds.
pub const SECRET_PREFIX: &str = "spot-connect";

/// The display name of the tenant's shared secret (bulk onboarding and rotation).
pub fn shared_secret_name(tenant: &str) -> String {
    format!("{SECRET_PREFIX} {tenant}")
}
