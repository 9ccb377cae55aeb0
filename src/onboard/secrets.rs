//! The client secret's rules, in one place: when a secret counts as expiring, the end dates a
//! new one is given (each distinct, so Spot's `expirationDate` names the secret it holds), and
//! removing one (a lost reply's retry is a success when the key is gone), and the one hand-over
//! of a new secret to Spot (`HandOver`: set, wait for Azure, read back). Used by `plan`,
//! `apply`, `rotate`, `remove`, the race check (`lock`) and the orphan audit.

use super::retry::{Backoff, propagate, read};
use super::state::SecretRecord;
use crate::azure::graph::{Application, Graph as GraphClient};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::spot::{AzureCredentials, SpotClient};
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// A secret closer than this to its end is "expiring".
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// The end dates for a new secret of `app` that ends at about `end` (never after it): one per
/// attempt, whole seconds, each distinct to the second from every live secret of the app, so
/// that the secret a Spot account holds is known by its `expirationDate` (issue 16 §5). A
/// random offset of up to an hour, taken off (a lifetime at the tenant's cap must stay within
/// it), keeps two runs that add a secret at the same moment apart.
pub(crate) fn secret_ends_until(app: &Application, end: OffsetDateTime) -> Vec<OffsetDateTime> {
    let taken: Vec<i64> = app
        .password_credentials
        .iter()
        .filter_map(|p| p.end_date_time.map(OffsetDateTime::unix_timestamp))
        .collect();
    let jitter = 60 + (uuid::Uuid::new_v4().as_u128() % 3600) as i64;
    let base = end.unix_timestamp() - jitter;
    let mut out = Vec::new();
    let mut t = base;
    while out.len() < SECRET_ATTEMPTS {
        if !taken.contains(&t)
            && let Ok(e) = OffsetDateTime::from_unix_timestamp(t)
        {
            out.push(e);
        }
        t += 1;
    }
    out
}

/// `t` plus `months` calendar months (the day kept, or the month's last), whole seconds.
pub fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let total = t.month() as i32 - 1 + months as i32;
    let year = t.year() + total.div_euclid(12);
    let month =
        time::Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(time::Month::January);
    let day = t.day().min(time::util::days_in_month(month, year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) => t.replace_date(date).replace_nanosecond(0).unwrap_or(t),
        Err(_) => t,
    }
}

/// Removes the secret `key_id` of the app, retrying a reply lost in transit. On a retry, a 400
/// (Graph: "No password credential found …", code `Request_BadRequest`) with the keyId no longer
/// on the app means the lost attempt did remove it: success. Decided by reading the app back,
/// not by the message text.
pub async fn remove_secret(graph: &GraphClient, app_object_id: &str, key_id: &str) -> Result<()> {
    let mut tries = 0u64;
    loop {
        match graph.remove_password(app_object_id, key_id).await {
            Ok(()) => return Ok(()),
            Err(Error::Api(a)) if tries > 0 && a.status == 400 => {
                let gone = match read(|| graph.get_application(app_object_id)).await {
                    Ok(Some(app)) => !app
                        .password_credentials
                        .iter()
                        .any(|p| p.key_id.eq_ignore_ascii_case(key_id)),
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !gone {
                    return Err(Error::Api(a));
                }
                tracing::info!(key_id, "removePassword: already removed by a lost attempt");
                return Ok(());
            }
            Err(e) if super::retry::is_transient(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(300 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Attempts of one `addPassword` (a first try and the resends after lost replies).
pub(crate) const SECRET_ATTEMPTS: usize = 6;

/// The tenant's new client secret as the run that added it holds it: its record (keyId and end,
/// what the state files keep) and its value (never written, logged or shown). Returned by the
/// step that adds it and passed to the steps that hand it to Spot.
#[derive(Clone)]
pub(crate) struct NewSecret {
    pub record: SecretRecord,
    pub value: Secret,
}

/// The one way a secret of ours reaches Spot: apply's connections, `rotate-secret` and
/// `reconcile` (through either) all hand it over here.
pub(crate) struct HandOver<'a> {
    pub spot: &'a SpotClient,
    /// The app whose secret it is, to tell "not propagated yet" from "removed meanwhile".
    pub graph: &'a GraphClient,
    pub app_object_id: Option<&'a str>,
    pub account: &'a str,
    pub creds: &'a AzureCredentials,
    pub key_id: &'a str,
}

impl HandOver<'_> {
    /// Sets the credentials on the account, sent again while Spot cannot validate the secret yet
    /// (Azure has not propagated it: `backoff`, each wait reported to `on_wait`) but not once the
    /// secret is gone from the app (removed by a run with another state dir that took it for an
    /// orphan, or by hand: it will never be accepted); setting overwrites, so a resend is safe.
    /// Then reads them back, `alongside` read in the same round: Spot must report this app's
    /// client id, this subscription and this secret's end.
    pub(crate) async fn run<T>(
        &self,
        backoff: &Backoff,
        on_wait: impl FnMut(u32, Duration),
        alongside: impl Future<Output = T>,
    ) -> Result<T> {
        let set = || async {
            let r = self
                .spot
                .set_azure_credentials(self.account, self.creds)
                .await;
            match (&r, self.app_object_id) {
                (Err(e), Some(obj))
                    if e.api().is_some_and(|a| {
                        a.has_code(crate::error::spot_codes::INVALID_CREDENTIALS)
                    }) =>
                {
                    match read(|| self.graph.get_application(obj)).await {
                        Ok(Some(live))
                            if !live
                                .password_credentials
                                .iter()
                                .any(|p| p.key_id.eq_ignore_ascii_case(self.key_id)) =>
                        {
                            Err(secret_removed(self.key_id, &live.display_name))
                        }
                        _ => r,
                    }
                }
                _ => r,
            }
        };
        propagate(backoff, |_| false, set, on_wait).await?;
        let (back, other) = tokio::join!(
            read(|| self.spot.get_azure_credentials(self.account)),
            alongside
        );
        let back = back?;
        let c = self.creds;
        let same = |x: Option<&str>, want: &str| x.is_some_and(|x| x.eq_ignore_ascii_case(want));
        let held = back.as_ref().is_some_and(|b| {
            same(b.client_id.as_deref(), &c.client_id)
                && (c.subscription_id.is_empty()
                    || same(b.subscription_id.as_deref(), &c.subscription_id))
                && b.expiration()
                    .is_none_or(|e| (e - c.expiration_date).abs() < time::Duration::seconds(2))
        });
        if !held {
            return Err(Error::Other(format!(
                "Spot accepted the credentials but account {} reads back {:?}",
                self.account,
                back.map(|b| (b.client_id, b.subscription_id, b.expiration_date))
            )));
        }
        Ok(other)
    }
}

/// The tenant's new secret is gone from the app before Spot could take it.
pub(crate) fn secret_removed(key_id: &str, app: &str) -> Error {
    Error::Conflict(format!(
        "the client secret {key_id} of {app} was removed while this run was handing it to Spot (by a spot-connect run with another state directory, or by hand): Spot cannot use it; a next run makes a new one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months() {
        let t = time::macros::datetime!(2026-01-31 10:00:00.5 UTC);
        assert_eq!(
            add_months(t, 1),
            time::macros::datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_months(t, 12),
            time::macros::datetime!(2027-01-31 10:00 UTC)
        );
        assert_eq!(
            add_months(t, 25),
            time::macros::datetime!(2028-02-29 10:00 UTC)
        );
    }
}
