//! The tenant's secret-lifetime policy (issue 19; reference/fleet-and-policies.md §3).
//!
//! Entra's app management policies can cap a new client secret's lifetime (`passwordLifetime`)
//! or forbid new ones (`passwordAddition`): the tenant default
//! (`GET /policies/defaultAppManagementPolicy`) and, overriding it for one app, the app's own
//! (`GET /applications/{id}/appManagementPolicies`). Spot accepts only a client secret for
//! Azure, so the preflight reads both (when the signed-in identity may) and the plan says what
//! they mean: a capped lifetime, a blocked plan (nothing written), or that they could not be
//! read. Then `addPassword` is refused with `CredentialInvalidLifetimeAsPerAppPolicy` (its
//! message carries no number): the secret step tries 180, 90 and 30 days before any write
//! that depends on the secret ([`add_password_stepping_down`]).

use super::secrets::add_months;
use crate::azure::graph::{AppManagementPolicy, Graph, NewPassword, PasswordRestriction};
use crate::error::{Error, Result};
use time::{Duration, OffsetDateTime};

/// The error code of a lifetime beyond the policy's (the message names the policy, no number).
pub(crate) const LIFETIME_ERROR: &str = "CredentialInvalidLifetimeAsPerAppPolicy";
/// The lifetimes tried, in days, when the policy could not be read and refused the one asked.
pub(crate) const STEP_DOWN_DAYS: [i64; 3] = [180, 90, 30];
/// Apps whose `createdDateTime` Graph does not give are taken as created on 2019-01-01 (as
/// Graph treats service principals with none: appmanagementpolicy-post).
const UNDATED: OffsetDateTime = time::macros::datetime!(2019-01-01 00:00 UTC);

/// What the policies in force mean for the tenant's new secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretLimit {
    /// Nothing in force limits a secret of the months asked.
    Free,
    /// `passwordLifetime` shorter than asked: the secret gets `max`.
    Capped { max: Duration, by: String },
    /// `passwordAddition`: no new secret; `how` says what an administrator can do.
    Blocked { by: String, how: String },
    /// The policies could not be read (why): the run goes on and steps down if refused.
    Unknown(String),
}

/// Whose policy it is, for the plan: "the tenant's policy" or "the app's own policy".
fn whose(own: bool, p: &AppManagementPolicy) -> String {
    let name = p
        .display_name
        .as_deref()
        .map(|n| format!(" '{}'", crate::text::clean(n)))
        .unwrap_or_default();
    let id =
        p.id.as_deref()
            .map(|i| format!(" ({})", crate::text::clean(i)))
            .unwrap_or_default();
    if own {
        format!("the app's own policy{name}{id}")
    } else {
        format!("the tenant's policy{name}{id}")
    }
}

/// `P90D`, `P4DT12H30M5S`, `P1Y` (years 365 days, months 30: Graph does not say; a guess).
pub(crate) fn iso8601_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, clock) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs: i64 = 0;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                secs = secs.checked_add(num.parse::<i64>().ok()?.checked_mul(*mult)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    eat(
        date,
        &[
            ('Y', 365 * 86400),
            ('M', 30 * 86400),
            ('W', 7 * 86400),
            ('D', 86400),
        ],
    )?;
    if let Some(t) = clock {
        eat(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then(|| Duration::seconds(secs))
}

/// Whether a restriction counts for an app created at `created`: its `state` is enabled and
/// the app was created after its `restrictForAppsCreatedAfterDateTime` (none: every app).
fn in_force(r: &PasswordRestriction, created: OffsetDateTime) -> bool {
    if r.state.as_deref() != Some("enabled") {
        return false;
    }
    match r.restrict_for_apps_created_after_date_time.as_deref() {
        None => true,
        Some(d) => {
            match OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339) {
                Ok(after) => created > after,
                // A date we cannot read: counted (the write would tell anyway).
                Err(_) => true,
            }
        }
    }
}

/// What the policies mean for a new secret of `months`, for our app (`app`: its object id and
/// `createdDateTime` when it exists; a new app is created `now`).
///
/// The app's own enabled policy, when it has one, overrides the tenant default; a policy
/// counts only when `isEnabled` (the tenant default is disabled unless set so; an app policy
/// is enabled unless it says otherwise).
pub(crate) fn evaluate(
    tenant: &Result<AppManagementPolicy>,
    own: Option<&Result<Vec<AppManagementPolicy>>>,
    app: Option<(&str, Option<OffsetDateTime>)>,
    now: OffsetDateTime,
    months: u32,
) -> SecretLimit {
    let unreadable = |what: &str, e: &Error| {
        SecretLimit::Unknown(format!(
            "{what} could not be read ({})",
            crate::text::clean(&e.to_string())
        ))
    };
    let own_policy = match own {
        Some(Err(e)) => {
            return unreadable(
                "the app's own secret-lifetime policy (appManagementPolicies)",
                e,
            );
        }
        Some(Ok(list)) => list.iter().find(|p| p.is_enabled != Some(false)),
        None => None,
    };
    let (policy, is_own) = match (own_policy, tenant) {
        (Some(p), _) => (p, true),
        (None, Ok(p)) if p.is_enabled == Some(true) => (p, false),
        (None, Ok(_)) => return SecretLimit::Free,
        (None, Err(e)) => {
            return unreadable(
                "the tenant's secret-lifetime policy (defaultAppManagementPolicy)",
                e,
            );
        }
    };
    let created = match app {
        Some((_, c)) => c.unwrap_or(UNDATED),
        None => now,
    };
    let by = whose(is_own, policy);
    let restrictions: Vec<&PasswordRestriction> = policy
        .password_credentials
        .iter()
        .filter(|r| in_force(r, created))
        .collect();
    if restrictions
        .iter()
        .any(|r| r.restriction_type.as_deref() == Some("passwordAddition"))
    {
        return SecretLimit::Blocked {
            how: exemption(is_own, policy, app.map(|(id, _)| id)),
            by,
        };
    }
    let asked = add_months(now, months) - now;
    let max = restrictions
        .iter()
        .filter(|r| r.restriction_type.as_deref() == Some("passwordLifetime"))
        .filter_map(|r| r.max_lifetime.as_deref().and_then(iso8601_duration))
        .min();
    match max {
        Some(max) if max < asked => SecretLimit::Capped { max, by },
        _ => SecretLimit::Free,
    }
}

/// How an administrator lets our app have a secret (applicationauthenticationmethodpolicy:
/// an app policy includes or excludes one app from the tenant default).
fn exemption(own: bool, policy: &AppManagementPolicy, app: Option<&str>) -> String {
    let pid = policy.id.as_deref().unwrap_or("{policy id}");
    match (own, app) {
        (true, Some(app)) => format!(
            "remove that policy from the app (Graph: DELETE /v1.0/applications/{app}/appManagementPolicies/{pid}/$ref) or replace it with one whose passwordAddition restriction is disabled, then run spot-connect again"
        ),
        (_, Some(app)) => format!(
            "create an app management policy that allows passwords (Graph: POST /v1.0/policies/appManagementPolicies with restrictions.passwordCredentials [] or its passwordAddition state disabled) and assign it to the app (POST /v1.0/applications/{app}/appManagementPolicies/$ref with {{\"@odata.id\": \"https://graph.microsoft.com/v1.0/policies/appManagementPolicies/<that policy's id>\"}}), then run spot-connect again"
        ),
        (_, None) => "the app does not exist yet, so it cannot be given its own policy before it is created: an administrator can turn the tenant default's passwordAddition restriction off (Graph: PATCH /v1.0/policies/defaultAppManagementPolicy, its state disabled) while spot-connect creates the app, then assign the app an app management policy that allows passwords (POST /v1.0/policies/appManagementPolicies, then POST /v1.0/applications/{id}/appManagementPolicies/$ref) and turn the restriction back on".into(),
    }
}

impl SecretLimit {
    /// The plan's words on the new secret (None: nothing to say).
    pub(crate) fn plan_note(&self, months: u32, now: OffsetDateTime) -> Option<String> {
        match self {
            SecretLimit::Free => None,
            SecretLimit::Capped { max, by } => Some(format!(
                "capped to {} days by {by} ({months} months asked): it expires on {}",
                max.whole_days(),
                (now + *max).date()
            )),
            SecretLimit::Unknown(why) => Some(format!(
                "{why}: if it refuses {months} months, {} days are tried before Spot is given the secret",
                step_down_words(&Self::step_downs(add_months(now, months) - now))
            )),
            SecretLimit::Blocked { by, how } => Some(format!(
                "{by} does not allow new client secrets (passwordAddition) for this app: Spot accepts only a client secret for Azure, so Spot cannot be connected with a secret in this tenant until an administrator exempts the app: {how}"
            )),
        }
    }

    /// The step-down lifetimes shorter than `first`.
    fn step_downs(first: Duration) -> Vec<i64> {
        STEP_DOWN_DAYS
            .iter()
            .copied()
            .filter(|d| Duration::days(*d) < first)
            .collect()
    }
}

fn step_down_words(days: &[i64]) -> String {
    match days {
        [] => "no shorter lifetime".into(),
        [one] => one.to_string(),
        [rest @ .., last] => format!(
            "{} then {last}",
            rest.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One lifetime the secret step asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The end date asked for (before the per-attempt offsets of `secrets::secret_ends_until`).
    pub end: OffsetDateTime,
    /// "12 months", "90 days".
    pub label: String,
}

/// The lifetimes the secret step tries, in order: the one asked (or the cap), then the
/// step-down lifetimes shorter than it.
pub(crate) fn attempts(limit: &SecretLimit, months: u32, now: OffsetDateTime) -> Vec<Attempt> {
    let first = match limit {
        SecretLimit::Capped { max, .. } => Attempt {
            end: now + *max,
            label: format!("{} days", max.whole_days()),
        },
        _ => Attempt {
            end: add_months(now, months),
            label: format!("{months} months"),
        },
    };
    // A policy read and found free of restrictions gives no reason to step down: a refusal
    // then is an error to report (its hint says to ask for fewer months), not a guess.
    let shorter = match limit {
        SecretLimit::Free => Vec::new(),
        _ => SecretLimit::step_downs(first.end - now),
    };
    std::iter::once(first)
        .chain(shorter.into_iter().map(|d| Attempt {
            end: now + Duration::days(d),
            label: format!("{d} days"),
        }))
        .collect()
}

/// Adds the secret with `add(k)` for each lifetime of `attempts` in turn while the policy
/// refuses the lifetime (`CredentialInvalidLifetimeAsPerAppPolicy`); any other error ends it.
/// `note` hears each step down. Returns the secret, its end and the lifetime taken.
pub(crate) async fn add_password_stepping_down<F, Fut>(
    attempts: &[Attempt],
    mut add: F,
    note: impl Fn(String),
) -> Result<(NewPassword, OffsetDateTime, usize)>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(NewPassword, OffsetDateTime)>>,
{
    let mut refused: Vec<&str> = Vec::new();
    for (k, a) in attempts.iter().enumerate() {
        match add(k).await {
            Ok((np, end)) => return Ok((np, end, k)),
            Err(Error::Api(e)) if e.has_code(LIFETIME_ERROR) => {
                refused.push(&a.label);
                if let Some(next) = attempts.get(k + 1) {
                    note(format!(
                        "the tenant's app management policy refused a client secret of {}: trying {}",
                        a.label, next.label
                    ));
                    continue;
                }
                let policy = policy_named(&e.message)
                    .map(|p| format!(" (policy {p})"))
                    .unwrap_or_default();
                return Err(Error::Api(crate::error::ApiError {
                    message: format!(
                        "{} The tenant's app management policy{policy} refused a client secret of {}: Spot cannot be connected with a secret this policy allows; ask an administrator for the policy's maximum lifetime (then choose fewer months) or to exempt the app.",
                        e.message,
                        refused.join(", ")
                    ),
                    ..e
                }));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Internal("no client secret lifetime to try".into()))
}

/// The policy id in "… as per assigned policy '<id>'.".
fn policy_named(message: &str) -> Option<String> {
    let rest = message.split("policy '").nth(1)?;
    let id = rest.split('\'').next()?;
    (!id.is_empty()).then(|| crate::text::clean(id))
}

/// The preflight's read of the tenant default (an error is kept: it never blocks).
pub(crate) async fn read_tenant(graph: &Graph) -> Result<AppManagementPolicy> {
    super::retry::read(|| graph.default_app_management_policy()).await
}

/// The preflight's read of an existing app's own policies (None: no app yet).
pub(crate) async fn read_own(
    graph: &Graph,
    app_object_id: Option<&str>,
) -> Option<Result<Vec<AppManagementPolicy>>> {
    match app_object_id {
        Some(id) => Some(super::retry::read(|| graph.app_management_policies(id)).await),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restriction(
        kind: &str,
        state: &str,
        max: Option<&str>,
        after: Option<&str>,
    ) -> PasswordRestriction {
        PasswordRestriction {
            restriction_type: Some(kind.into()),
            state: Some(state.into()),
            max_lifetime: max.map(str::to_string),
            restrict_for_apps_created_after_date_time: after.map(str::to_string),
        }
    }

    fn policy(enabled: Option<bool>, r: Vec<PasswordRestriction>) -> AppManagementPolicy {
        AppManagementPolicy {
            id: Some("p1".into()),
            display_name: Some("P".into()),
            is_enabled: enabled,
            password_credentials: r,
        }
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-02 10:00 UTC);

    #[test]
    fn durations_parse_as_graph_writes_them() {
        assert_eq!(iso8601_duration("P90D"), Some(Duration::days(90)));
        assert_eq!(
            iso8601_duration("P4DT12H30M5S"),
            Some(Duration::seconds(4 * 86400 + 12 * 3600 + 30 * 60 + 5))
        );
        assert_eq!(iso8601_duration("P1Y"), Some(Duration::days(365)));
        for bad in ["", "P", "90D", "P9X", "PT", "P1D2"] {
            assert_eq!(iso8601_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_restriction_counts_only_enabled_in_an_enabled_policy_for_apps_created_after_its_date() {
        let cap = |state, after: Option<&str>, enabled| {
            policy(
                enabled,
                vec![restriction("passwordLifetime", state, Some("P90D"), after)],
            )
        };
        let capped = SecretLimit::Capped {
            max: Duration::days(90),
            by: "the tenant's policy 'P' (p1)".into(),
        };
        assert_eq!(
            evaluate(&Ok(cap("enabled", None, Some(true))), None, None, NOW, 12),
            capped
        );
        assert_eq!(
            evaluate(&Ok(cap("disabled", None, Some(true))), None, None, NOW, 12),
            SecretLimit::Free
        );
        assert_eq!(
            evaluate(&Ok(cap("enabled", None, Some(false))), None, None, NOW, 12),
            SecretLimit::Free
        );
        assert_eq!(
            evaluate(&Ok(cap("enabled", None, None)), None, None, NOW, 12),
            SecretLimit::Free
        );
        // An existing app created before the date is not restricted; a new one is.
        let after = Some("2025-01-01T00:00:00Z");
        let old = Some(("obj", Some(time::macros::datetime!(2024-06-01 00:00 UTC))));
        assert_eq!(
            evaluate(
                &Ok(cap("enabled", after, Some(true))),
                Some(&Ok(vec![])),
                old,
                NOW,
                12
            ),
            SecretLimit::Free
        );
        assert_eq!(
            evaluate(&Ok(cap("enabled", after, Some(true))), None, None, NOW, 12),
            capped
        );
        // Longer than asked: nothing to say.
        let long = policy(
            Some(true),
            vec![restriction(
                "passwordLifetime",
                "enabled",
                Some("P400D"),
                None,
            )],
        );
        assert_eq!(evaluate(&Ok(long), None, None, NOW, 12), SecretLimit::Free);
    }

    #[test]
    fn an_apps_own_policy_overrides_the_tenant_default() {
        let block = policy(
            Some(true),
            vec![restriction("passwordAddition", "enabled", None, None)],
        );
        let app = Some(("obj-1", Some(time::macros::datetime!(2026-01-01 00:00 UTC))));
        match evaluate(&Ok(block.clone()), Some(&Ok(vec![])), app, NOW, 12) {
            SecretLimit::Blocked { by, how } => {
                assert!(by.starts_with("the tenant's policy"), "{by}");
                assert!(
                    how.contains("/v1.0/applications/obj-1/appManagementPolicies/$ref"),
                    "{how}"
                );
            }
            other => panic!("{other:?}"),
        }
        let exempt = policy(
            Some(true),
            vec![restriction(
                "passwordLifetime",
                "enabled",
                Some("P30D"),
                None,
            )],
        );
        match evaluate(&Ok(block.clone()), Some(&Ok(vec![exempt])), app, NOW, 12) {
            SecretLimit::Capped { max, by } => {
                assert_eq!(max, Duration::days(30));
                assert!(by.starts_with("the app's own policy"), "{by}");
            }
            other => panic!("{other:?}"),
        }
        // A disabled app policy does not override.
        let off = policy(Some(false), vec![]);
        assert!(matches!(
            evaluate(&Ok(block), Some(&Ok(vec![off])), app, NOW, 12),
            SecretLimit::Blocked { .. }
        ));
    }

    #[test]
    fn step_downs_are_shorter_than_the_first_lifetime() {
        let labels = |l: &SecretLimit, m| -> Vec<String> {
            attempts(l, m, NOW).into_iter().map(|a| a.label).collect()
        };
        let unknown = SecretLimit::Unknown("x".into());
        assert_eq!(
            labels(&unknown, 12),
            ["12 months", "180 days", "90 days", "30 days"]
        );
        assert_eq!(labels(&unknown, 3), ["3 months", "30 days"]);
        assert_eq!(labels(&SecretLimit::Free, 12), ["12 months"]);
        let capped = SecretLimit::Capped {
            max: Duration::days(90),
            by: "t".into(),
        };
        assert_eq!(labels(&capped, 12), ["90 days", "30 days"]);
        assert_eq!(attempts(&capped, 12, NOW)[0].end, NOW + Duration::days(90));
        assert_eq!(
            policy_named(
                "Credential lifetime exceeds the max value allowed as per assigned policy 'abc-1'."
            ),
            Some("abc-1".into())
        );
    }
}
