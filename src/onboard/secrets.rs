//! The client secret's rules, in one place: when a secret counts as expiring, the end dates a
//! new one is given (each distinct, so Spot's `expirationDate` names the secret it holds), and
//! removing one (a lost reply's retry is a success when the key is gone). Used by `plan`,
//! `apply`, `rotate`, `remove`, the race check (`lock`) and the orphan audit.

use super::retry::read;
use crate::azure::graph::{Application, Graph};
use crate::error::{Error, Result};
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
pub async fn remove_secret(graph: &Graph, app_object_id: &str, key_id: &str) -> Result<()> {
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
