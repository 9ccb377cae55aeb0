//! Errors of the four services, in one shape: which service, HTTP status, the service's code and
//! message, and its request id (for support). `ApiError::class` decides how a caller reacts.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Login,
    Graph,
    Arm,
    Spot,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Login => "Microsoft identity platform",
            Service::Graph => "Microsoft Graph",
            Service::Arm => "Azure Resource Manager",
            Service::Spot => "Spot API",
        })
    }
}

/// Spot's error codes for a connect/validate that Azure refused. The real service does not
/// document them (reference/spot-api.md §7); the simulator and the client agree on these.
pub mod spot_codes {
    /// The identity platform rejected the client id / secret (AADSTS7000215 and friends).
    pub const INVALID_CREDENTIALS: &str = "AZURE_INVALID_CREDENTIALS";
    /// The service principal lacks a role with Spot's actions on the subscription.
    pub const MISSING_PERMISSIONS: &str = "AZURE_MISSING_PERMISSIONS";
    /// The client secret's end date has passed.
    pub const EXPIRED_SECRET: &str = "AZURE_EXPIRED_CREDENTIALS";
    pub const ACCOUNT_NOT_FOUND: &str = "Account_DOESNT_EXIST";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// A valid token without the right (an account it cannot see, an admin-only call).
    pub const FORBIDDEN: &str = "FORBIDDEN";
}

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429 / 503: wait `retry_after` (or back off) and send again.
    Throttled,
    /// 500 / 502 / 504 / dropped connection: the request may or may not have been applied;
    /// look up before trying a write again.
    Transient,
    /// Azure has not propagated a recent write yet: retry with capped backoff.
    Propagation,
    /// 401 / 403: never retried; the operator needs a right they do not have.
    Permission,
    NotFound,
    Conflict,
    /// Anything else: a request the service will never accept as sent.
    Invalid,
    /// A failure no retry can fix and no caller should retry: an untrusted certificate, plain
    /// HTTP, a refused connection or redirect, a reply too large, a bad `nextLink`, a
    /// `Retry-After` beyond what we wait (`http::codes::FATAL`).
    Fatal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub service: Service,
    /// HTTP status; 0 for a transport failure (no response).
    pub status: u16,
    pub code: String,
    /// Codes from `error.details[]` (Graph puts `NoBackingApplicationObject` there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail_codes: Vec<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The HTTP layer resends failures of this kind and gave up on this one (its attempts ran
    /// out), or did not send it because its route keeps failing (`http::ROUTE_FAILURES`): no
    /// retry on top of it.
    #[serde(skip)]
    pub layer_retried: bool,
}

/// The code of a transport failure where no connection could be made at all (refused, DNS,
/// TLS handshake): the service cannot be reached, so nothing else is tried. Set from
/// `reqwest::Error::is_connect`, never from message text.
pub const CONNECT_FAILED: &str = "ConnectFailed";

impl ApiError {
    /// A transport failure (no connection could be made: `code` CONNECT_FAILED).
    pub fn connect_failed(service: Service, message: impl Into<String>) -> Self {
        ApiError {
            code: CONNECT_FAILED.into(),
            ..ApiError::transport(service, message)
        }
    }

    pub fn transport(service: Service, message: impl Into<String>) -> Self {
        ApiError {
            service,
            status: 0,
            code: "ConnectionError".into(),
            detail_codes: vec![],
            message: crate::text::clean(&message.into()),
            request_id: None,
            retry_after: None,
            layer_retried: false,
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.eq_ignore_ascii_case(code)
            || self
                .detail_codes
                .iter()
                .any(|c| c.eq_ignore_ascii_case(code))
    }

    pub fn class(&self) -> ErrorClass {
        if crate::http::codes::FATAL.contains(&self.code.as_str()) {
            return ErrorClass::Fatal;
        }
        const PROPAGATION: &[&str] = &[
            "NoBackingApplicationObject",
            "PrincipalNotFound",
            "RoleDefinitionDoesNotExist",
            spot_codes::MISSING_PERMISSIONS,
            spot_codes::INVALID_CREDENTIALS,
        ];
        if PROPAGATION.iter().any(|c| self.has_code(c)) {
            return ErrorClass::Propagation;
        }
        match self.status {
            0 | 500 | 502 | 504 => ErrorClass::Transient,
            429 | 503 => ErrorClass::Throttled,
            401 | 403 => ErrorClass::Permission,
            404 => ErrorClass::NotFound,
            409 => ErrorClass::Conflict,
            _ => ErrorClass::Invalid,
        }
    }

    /// What the operator can do about it, where we know: a value each front end words
    /// (`commands::hint_text`, `app::hint_text`).
    pub fn hint(&self) -> Option<Hint> {
        if crate::azure::device_code::device_code_blocked(self) {
            return Some(Hint::SignInWithBrowser);
        }
        match (self.service, self.class()) {
            (Service::Graph, ErrorClass::Permission) => Some(Hint::AppRegistrationRights),
            (Service::Arm, ErrorClass::Permission) => Some(Hint::SubscriptionOwner),
            (Service::Spot, ErrorClass::Permission) => Some(Hint::SpotAdminToken),
            (Service::Login, _) if self.has_code("invalid_client") => Some(Hint::ClientCredentials),
            _ if self.has_code("CredentialInvalidLifetimeAsPerAppPolicy") => {
                Some(Hint::FewerSecretMonths)
            }
            _ if self.status == 0 && self.code == CONNECT_FAILED => Some(Hint::CheckNetwork),
            (Service::Spot, _) if self.has_code(spot_codes::MISSING_PERMISSIONS) => {
                Some(Hint::AssignmentPropagating)
            }
            _ => None,
        }
    }
}

/// What the operator can do about an error or a blocked plan item, as data: the engine and the
/// clients say *what* to do; each front end words it for its own controls (the commands name
/// their flags, `commands::hint_text`; the wizard its fields and keys, `app::hint_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hint {
    /// Graph refused: the operator needs a right to register applications.
    AppRegistrationRights,
    /// ARM refused: Owner or User Access Administrator on the subscription.
    SubscriptionOwner,
    /// A service principal may not register applications: an administrator grants it Graph's
    /// Application.ReadWrite.OwnedBy (admin consent) or the Application Administrator role.
    ServicePrincipalAppRights,
    /// Spot refused the token: an Organization Admin token is needed.
    SpotAdminToken,
    /// The identity platform did not accept the client id or secret.
    ClientCredentials,
    /// The tenant's policy caps secret lifetimes: choose fewer months.
    FewerSecretMonths,
    /// An app registration of that name exists and is not ours: choose another name.
    ChooseAppName,
    /// A role of that name exists and is not ours: choose another name.
    ChooseRoleName,
    /// Conditional Access blocks the device code: sign in with the browser.
    SignInWithBrowser,
    /// The Spot account stays unless its deletion is asked for.
    DeleteSpotAccount,
    /// A connection that is not ours is kept unless taking it over is asked for.
    TakeOver,
    /// Spot does not see the role assignment yet: check it exists, then try again (Azure may
    /// still be propagating it).
    AssignmentPropagating,
    /// Run the onboarding (apply) again: it resumes, and makes what went missing anew.
    RunAgain,
    /// A listing was cut short: run again when it can be read, or skip what cannot be seen.
    SkipUnreachable,
    /// No connection could be made: check the network, DNS and proxy.
    CheckNetwork,
    /// A subscription below the management group was left out of the run: include it to
    /// connect it.
    Excluded,
    /// A subscription-scope assignment of ours is kept beside the one at the management group:
    /// pruning removes it once the group's is seen in effect.
    PruneSubscriptionAssignments,
    /// A Spot account the operator chose (named, or taken over): never deleted.
    ChosenAccount,
}

impl Hint {
    /// Every hint (for the front ends' tests: each words them all).
    pub const ALL: &[Hint] = &[
        Hint::AppRegistrationRights,
        Hint::ServicePrincipalAppRights,
        Hint::SubscriptionOwner,
        Hint::SpotAdminToken,
        Hint::ClientCredentials,
        Hint::FewerSecretMonths,
        Hint::ChooseAppName,
        Hint::ChooseRoleName,
        Hint::SignInWithBrowser,
        Hint::DeleteSpotAccount,
        Hint::TakeOver,
        Hint::AssignmentPropagating,
        Hint::RunAgain,
        Hint::SkipUnreachable,
        Hint::CheckNetwork,
        Hint::Excluded,
        Hint::PruneSubscriptionAssignments,
        Hint::ChosenAccount,
    ];
}

/// Text from a service is shown without its control characters (`crate::text`), however it
/// reached the error (a reply body, a redirect's `error_description`, a transport message).
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::clean;
        if self.status == 0 {
            write!(f, "{}: {}", self.service, clean(&self.message))?;
        } else {
            write!(
                f,
                "{} {} {}: {}",
                self.service,
                self.status,
                clean(&self.code),
                clean(&self.message)
            )?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {})", clean(id))?;
        }
        Ok(())
    }
}

/// Displayed without control characters: a message may carry text from outside (what `az`
/// printed, a name, a service's words).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(ApiError),
    #[error("sign-in failed: {}", crate::text::clean_lines(.0))]
    Auth(String),
    #[error("{}", crate::text::clean_lines(.0))]
    Usage(String),
    #[error("{}", crate::text::clean_lines(.0))]
    Other(String),
    #[error("interrupted")]
    Cancelled,
    /// The plan blocks this step (an object of that name is not ours, a policy forbids it).
    #[error("{}", crate::text::clean_lines(.0))]
    Blocked(String),
    /// Not started because a step it needs did not complete (that step's error says why).
    #[error("{}", crate::text::clean_lines(.0))]
    Skipped(String),
    /// Another writer changed what this run was using (a role's scopes, a secret): run again.
    #[error("{}", crate::text::clean_lines(.0))]
    Conflict(String),
    /// An object the run needs was not found (a subscription in its tenant).
    #[error("{}", crate::text::clean_lines(.0))]
    NotFound(String),
    /// Another run holds the lock on this subscription or tenant.
    #[error("{}", crate::text::clean_lines(.0))]
    Busy(String),
    /// A file of ours on this machine (state, lock, report) could not be read or written.
    #[error("{what}: {reason}")]
    Local { what: String, reason: String },
    /// A failure of this program or its machine that no operator input causes (a thread that
    /// stopped, the random generator).
    #[error("internal error: {0}")]
    Internal(String),
    /// A listing cut short (a tenant that failed or refused, more pages than the pager reads):
    /// what could not be seen, and why. Never taken for the whole (issue 16 §7).
    #[error("{}", incomplete_text(.0))]
    Incomplete(Vec<Unseen>),
}

/// Something a listing could not see, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unseen {
    /// "tenant c0c0c0c0-…" and the like.
    pub what: String,
    pub reason: String,
}

fn incomplete_text(u: &[Unseen]) -> String {
    let list: Vec<String> = u
        .iter()
        .map(|u| format!("{} ({})", u.what, u.reason))
        .collect();
    format!(
        "could not see everything, so nothing was taken for the whole: {}",
        list.join("; ")
    )
}

impl Error {
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// A file of ours that could not be read or written: `what` names it.
    pub fn local(what: impl Into<String>, reason: impl fmt::Display) -> Error {
        Error::Local {
            what: what.into(),
            reason: crate::text::clean(&reason.to_string()),
        }
    }

    /// What the operator can do about it, as data (each front end words it).
    pub fn hints(&self) -> Vec<Hint> {
        match self {
            Error::Api(e) => e.hint().into_iter().collect(),
            Error::Incomplete(_) => vec![Hint::SkipUnreachable],
            Error::Conflict(_) => vec![Hint::RunAgain],
            _ => vec![],
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(service: Service, status: u16, code: &str) -> ApiError {
        ApiError {
            service,
            status,
            code: code.into(),
            detail_codes: vec![],
            message: "m".into(),
            request_id: Some("rid-1".into()),
            retry_after: None,
            layer_retried: false,
        }
    }

    #[test]
    fn classes_follow_the_documented_codes() {
        let mut e = err(Service::Graph, 400, "Request_BadRequest");
        assert_eq!(e.class(), ErrorClass::Invalid);
        e.detail_codes.push("NoBackingApplicationObject".into());
        assert_eq!(e.class(), ErrorClass::Propagation);
        assert_eq!(
            err(Service::Arm, 400, "PrincipalNotFound").class(),
            ErrorClass::Propagation
        );
        assert_eq!(
            err(Service::Arm, 429, "TooManyRequests").class(),
            ErrorClass::Throttled
        );
        assert_eq!(
            err(Service::Arm, 403, "AuthorizationFailed").class(),
            ErrorClass::Permission
        );
        assert_eq!(
            err(Service::Arm, 409, "RoleAssignmentExists").class(),
            ErrorClass::Conflict
        );
        assert_eq!(
            ApiError::transport(Service::Spot, "reset").class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn display_carries_code_message_and_request_id() {
        let s = err(Service::Arm, 403, "AuthorizationFailed").to_string();
        assert!(
            s.contains("403") && s.contains("AuthorizationFailed") && s.contains("rid-1"),
            "{s}"
        );
        assert_eq!(
            err(Service::Arm, 403, "AuthorizationFailed").hint(),
            Some(Hint::SubscriptionOwner)
        );
    }
}
