//! `spot-connect logout`, and the keyring the commands keep the operator's sign-in in
//! (issue 21 §13; `azure::keyring`). `SPOT_CONNECT_KEYRING` names the keyring service (default
//! `spot-connect`; a CI job or a test can use its own); `off` keeps nothing.

use super::CommandResult;
use super::report::{CommandError, Document, Outcome, Status};
use crate::azure::keyring::{DEFAULT_SERVICE, Keyring};
use crate::error::Error;
use std::sync::Arc;

/// The variable that names the keyring service, or turns the keyring off.
pub const KEYRING_ENV: &str = "SPOT_CONNECT_KEYRING";

/// The keyring the commands keep the sign-in in (None: `SPOT_CONNECT_KEYRING=off`). A value
/// that cannot be a service name is a usage error naming the variable.
pub fn keyring() -> Result<Option<Arc<Keyring>>, Error> {
    let service = match std::env::var(KEYRING_ENV) {
        Ok(v) if v == "off" => return Ok(None),
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => DEFAULT_SERVICE.to_string(),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Error::Usage(format!("{KEYRING_ENV} is not UTF-8")));
        }
    };
    if service.is_empty() || service.len() > 128 || service.chars().any(|c| c.is_control()) {
        return Err(Error::Usage(format!(
            "{KEYRING_ENV} must be `off` or a keyring service name (1 to 128 characters, no control characters)"
        )));
    }
    Ok(Some(Arc::new(Keyring::os(&service))))
}

/// `spot-connect logout`: forgets the sign-in kept in the keyring. Only this machine's copy:
/// the refresh token itself stays valid at the identity platform until it expires or an
/// administrator revokes the user's sessions. With `--json`, one document with the envelope's
/// keys (docs/json.md) and `keyring: {service, removed}` (service null: `off`); `main` prints
/// it and picks the code.
pub fn logout() -> CommandResult {
    let doc = |service: Option<String>, removed: bool| {
        Document::new("logout")
            .count("removed", usize::from(removed))
            .with(
                "keyring",
                serde_json::json!({ "service": service, "removed": removed }),
            )
    };
    let keyring = match keyring() {
        Ok(Some(k)) => k,
        Ok(None) => {
            eprintln!(
                "spot-connect logout: {KEYRING_ENV}=off: no sign-in is kept, nothing to remove"
            );
            return Ok(Outcome::new(Status::Done, doc(None, false)));
        }
        Err(e) => return Err(CommandError::from(e).with_json(doc(None, false))),
    };
    let service = keyring.service().to_string();
    let removed = match keyring.forget_all() {
        Ok(true) => {
            tracing::info!(service, "logout: the kept sign-in is removed");
            eprintln!(
                "  ✓ signed out: the sign-in kept in the keyring (service {service}) is removed; the next command signs in"
            );
            true
        }
        Ok(false) => {
            eprintln!("  nothing to remove: no sign-in is kept in the keyring (service {service})");
            false
        }
        Err(why) => {
            tracing::warn!(service, %why, "logout: no usable keyring");
            eprintln!("  nothing to remove: no usable keyring ({why}), so no sign-in was kept");
            false
        }
    };
    Ok(Outcome::new(Status::Done, doc(Some(service), removed)))
}
