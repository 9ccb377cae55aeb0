//! Orphan client secrets (issue 11 §5): secrets of ours on our app that no Spot account holds.
//!
//! A secret becomes an orphan when a run stops between `addPassword` and handing the value to
//! Spot (the value is gone: it was only in memory), when a `removePassword` reply is lost, or
//! when a rotation replaced it. The state files record the intent before `addPassword`
//! (`secret_pending_since`, kept until this module has accounted for every secret made since)
//! and the keyId right after (`orphan_key_ids` until a Spot account has it); but the live app
//! is the truth, so every `apply` (and `status`) compares the app's live secrets with what the
//! Spot accounts hold:
//!
//! - *held*: a Spot account has our app's client id with an expiration date equal (±2 s) to
//!   the secret's end date. When several secrets match one account, the one a state file here
//!   records as handed to that account is held, the others are not; with no such record all of
//!   them count as held (never remove what Spot might use). A secret a state file here records
//!   as handed to Spot is held too.
//! - *orphan*: ours (display name `spot-connect …`), not held, and one of: recorded in an
//!   `orphan_key_ids` of a subscription this run holds the lock of; made after the
//!   `secret_pending_since` of one of them (lost replies, killed runs), unless a run of another
//!   subscription of the tenant holds its lock here right now; named for one of them (earlier versions named a
//!   secret after its subscription); older than [`super::lock::FRESH`]. Anything else is
//!   *fresh*: a run of another subscription of the tenant may be about to hand it over.
//!
//! Nothing is removed unless every Spot account could be read: when in doubt, keep.

use super::model::Progress;
use super::rotate::SECRET_PREFIX;
use super::state::State;
use super::status::{self, read};
use super::{Session, Target};
use crate::azure::graph::{Application, Graph, PasswordCredential};
use crate::error::{Error, Result};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

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

/// The secrets of our app, sorted out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub app_id: String,
    /// keyIds a Spot account holds.
    pub held: Vec<String>,
    /// keyIds of ours no Spot account holds, that may be removed.
    pub orphans: Vec<String>,
    /// keyIds of ours no Spot account holds that are too fresh to remove (another run's).
    pub fresh: Vec<String>,
    /// Set when some Spot account could not be read: nothing is an orphan then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// Spot accounts whose credentials are read at once.
const CREDENTIAL_READS: usize = 16;

fn ours(p: &PasswordCredential) -> bool {
    p.display_name
        .as_deref()
        .is_some_and(|n| n == SECRET_PREFIX || n.starts_with(&format!("{SECRET_PREFIX} ")))
}

fn close(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() < time::Duration::seconds(2)
}

/// Sorts the live secrets of `app` (in `tenant`) into held / orphans / fresh. `locked`: the
/// subscriptions whose lock this run holds (their secrets are never "another run's"). `known`:
/// Spot accounts this run has just handed a secret to, which a state file here records (their
/// credentials are not read again: that secret is held by the state file's record).
pub async fn audit(
    session: &Session,
    tenant: &str,
    app: &Application,
    locked: &[String],
    known: &[String],
    accounts: &[crate::spot::SpotAccount],
) -> Audit {
    let is_locked = |s: &State| {
        locked
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&s.subscription_id))
    };
    let mut out = Audit {
        app_id: app.app_id.clone(),
        ..Default::default()
    };
    let states = State::load_tenant_siblings(&session.state_dir, tenant, "");
    let mut held: Vec<String> = Vec::new();
    // Every connected account's credentials, a few at a time (an organization may have
    // hundreds), in the list's order.
    let connected: Vec<&crate::spot::SpotAccount> = accounts
        .iter()
        .filter(|a| a.provider_external_id.is_some() && !known.contains(&a.account_id))
        .collect();
    let spot = session.spot.clone();
    let reads: Vec<_> = connected
        .iter()
        .map(|a| {
            let (spot, id) = (spot.clone(), a.account_id.clone());
            async move { read(|| spot.get_azure_credentials(&id)).await }.boxed()
        })
        .collect();
    let all_creds: Vec<_> = futures::stream::iter(reads)
        .buffered(CREDENTIAL_READS)
        .collect()
        .await;
    for (a, creds) in connected.into_iter().zip(all_creds) {
        let creds = match creds {
            Ok(c) => c,
            Err(e) => {
                out.incomplete = Some(format!("Spot account {}: {e}", a.account_id));
                continue;
            }
        };
        let Some(c) = creds.filter(|c| {
            c.client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
        }) else {
            continue;
        };
        let Some(exp) = c.expiration() else {
            // Spot holds our app without a date: any of ours could be it.
            held.extend(app.password_credentials.iter().map(|p| p.key_id.clone()));
            continue;
        };
        let matching: Vec<&PasswordCredential> = app
            .password_credentials
            .iter()
            .filter(|p| p.end_date_time.is_some_and(|e| close(e, exp)))
            .collect();
        let recorded = states
            .iter()
            .filter(|s| s.spot_account_id.as_deref() == Some(a.account_id.as_str()))
            .filter_map(|s| s.secret.as_ref())
            .filter(|r| r.handed_to_spot)
            .find_map(|r| {
                matching
                    .iter()
                    .find(|p| p.key_id.eq_ignore_ascii_case(&r.key_id))
            });
        match recorded {
            Some(p) if matching.len() > 1 => held.push(p.key_id.clone()),
            _ => held.extend(matching.iter().map(|p| p.key_id.clone())),
        }
    }
    // What a state file here records as handed to Spot is held too (never remove what a
    // subscription uses).
    held.extend(
        states
            .iter()
            .filter_map(|s| s.secret.as_ref())
            .filter(|r| r.handed_to_spot)
            .map(|r| r.key_id.clone()),
    );
    let mine: Vec<&State> = states.iter().filter(|s| is_locked(s)).collect();
    let recorded: Vec<&String> = mine.iter().flat_map(|s| &s.orphan_key_ids).collect();
    let since = mine.iter().filter_map(|s| s.secret_pending_since).min();
    // Another subscription of the tenant being connected from here right now may be about to
    // hand over a secret it has just made: then only what we recorded counts as ours.
    let others_running = super::lock::tenant_busy(&session.state_dir, tenant, locked);
    let now = OffsetDateTime::now_utc();
    for p in &app.password_credentials {
        if held.iter().any(|k| k.eq_ignore_ascii_case(&p.key_id)) {
            out.held.push(p.key_id.clone());
            continue;
        }
        if !ours(p) {
            continue;
        }
        let for_locked = p.display_name.as_deref().is_some_and(|n| {
            locked
                .iter()
                .any(|s| n.eq_ignore_ascii_case(&format!("{SECRET_PREFIX} {s}")))
        });
        let old = p
            .start_date_time
            .is_none_or(|s| now - s >= super::lock::FRESH);
        let was_recorded = recorded.iter().any(|k| k.eq_ignore_ascii_case(&p.key_id));
        let after_intent =
            !others_running && since.is_some_and(|t| p.start_date_time.is_some_and(|s| s >= t));
        if out.incomplete.is_none() && (for_locked || old || was_recorded || after_intent) {
            out.orphans.push(p.key_id.clone());
        } else {
            out.fresh.push(p.key_id.clone());
        }
    }
    out
}

/// The audit when every secret of ours on `app` is recorded as handed to Spot by a state file
/// of `tenant` here (they are held whatever Spot says); None when some is not.
fn all_recorded(state_dir: &std::path::Path, tenant: &str, app: &Application) -> Option<Audit> {
    let handed: Vec<String> = State::load_tenant_siblings(state_dir, tenant, "")
        .into_iter()
        .filter_map(|s| s.secret)
        .filter(|r| r.handed_to_spot)
        .map(|r| r.key_id)
        .collect();
    let is_handed =
        |p: &PasswordCredential| handed.iter().any(|k| k.eq_ignore_ascii_case(&p.key_id));
    if !app
        .password_credentials
        .iter()
        .filter(|p| ours(p))
        .all(is_handed)
    {
        return None;
    }
    Some(Audit {
        app_id: app.app_id.clone(),
        held: app
            .password_credentials
            .iter()
            .filter(|p| is_handed(p))
            .map(|p| p.key_id.clone())
            .collect(),
        ..Default::default()
    })
}

/// Our app in `tenant`, from the state files of `targets` (None: no app recorded, or gone).
async fn recorded_app(
    session: &Session,
    graph: &Graph,
    tenant: &str,
    targets: &[&Target],
    read_already: &[Application],
) -> Result<Option<Application>> {
    let mut ids: Vec<String> = Vec::new();
    for t in targets {
        if let Ok(s) = State::load(&session.state_dir, tenant, &t.subscription_id)
            && let Some(id) = s.app_object_id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    for id in ids {
        if let Some(app) = read_already.iter().find(|a| a.id.eq_ignore_ascii_case(&id)) {
            return Ok(Some(app.clone()));
        }
        if let Some(app) = read(|| graph.get_application(&id)).await? {
            return Ok(Some(app));
        }
    }
    Ok(None)
}

/// After `apply` connected `targets`: per tenant, our app's secrets that no Spot account holds are
/// removed (and dropped from the state files' orphan lists). Reported as log lines.
pub async fn reclaim_after_apply(
    session: &Session,
    targets: &[Target],
    progress: &UnboundedSender<Progress>,
    mut seen: super::lock::Seen,
) -> Vec<Audit> {
    let log = |message: String| {
        tracing::info!("{message}");
        let _ = progress.send(Progress::Log { message });
    };
    let mut out = Vec::new();
    let mut tenants: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
    tenants.dedup();
    for tenant in tenants {
        let subs: Vec<&Target> = targets.iter().filter(|t| t.tenant_id == tenant).collect();
        let locked: Vec<String> = subs.iter().map(|t| t.subscription_id.clone()).collect();
        let graph = status::graph(session, tenant);
        // The app (unless the race check has just read it).
        let read_already = seen
            .apps
            .iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, a)| a.as_slice())
            .unwrap_or_default();
        let app = match recorded_app(session, &graph, tenant, &subs, read_already).await {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                log(format!("client secrets not checked for orphans: {e}"));
                continue;
            }
        };
        // Every secret of ours on the app is one a state file here records as handed to Spot:
        // all held, nothing to read (the usual end of a run).
        if let Some(audit) = all_recorded(&session.state_dir, tenant, &app) {
            settle(session, tenant, &locked, &audit.held);
            out.push(audit);
            continue;
        }
        if seen.accounts.is_none() {
            match read(|| session.spot.list_accounts()).await {
                Ok(l) => seen.accounts = Some(l),
                Err(e) => {
                    log(format!("client secrets not checked for orphans: {e}"));
                    continue;
                }
            }
        }
        let accounts = seen.accounts.as_deref().unwrap_or_default();
        // The accounts this run connected hold the secret their state file records.
        let known: Vec<String> = subs
            .iter()
            .filter_map(|t| State::load(&session.state_dir, tenant, &t.subscription_id).ok())
            .filter(|s| s.secret.as_ref().is_some_and(|r| r.handed_to_spot))
            .filter_map(|s| s.spot_account_id)
            .collect();
        let audit = audit(session, tenant, &app, &locked, &known, accounts).await;
        if let Some(why) = &audit.incomplete {
            log(format!(
                "client secrets not checked for orphans: a Spot account could not be read ({why})"
            ));
        }
        let mut removed = Vec::new();
        for k in &audit.orphans {
            match remove_secret(&graph, &app.id, k).await {
                Ok(()) => removed.push(k.clone()),
                Err(e) => log(format!(
                    "could not remove the client secret {k} that no Spot account holds: {e}"
                )),
            }
        }
        if !removed.is_empty() {
            log(format!(
                "removed {} client secret(s) of {} that no Spot account holds: {}",
                removed.len(),
                app.display_name,
                removed.join(", ")
            ));
            forget(session, tenant, &removed);
        }
        // Every secret made since the intent is accounted for (held, or removed): the intent
        // is done.
        if audit.incomplete.is_none() && removed.len() == audit.orphans.len() {
            settle(session, tenant, &locked, &audit.held);
        }
        out.push(audit);
    }
    out
}

/// For `status`: per tenant whose app has secrets no Spot account holds, a line and their keyIds.
pub struct Unheld {
    pub tenant_id: String,
    pub key_ids: Vec<String>,
    pub line: String,
}

pub async fn status_lines(session: &Session, targets: &[Target]) -> Vec<Unheld> {
    let mut out = Vec::new();
    let mut tenants: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
    tenants.dedup();
    for tenant in tenants {
        let subs: Vec<&Target> = targets.iter().filter(|t| t.tenant_id == tenant).collect();
        let graph = status::graph(session, tenant);
        let Ok(Some(app)) = recorded_app(session, &graph, tenant, &subs, &[]).await else {
            continue;
        };
        // Every secret of ours is recorded as handed to Spot: none can be unheld.
        if all_recorded(&session.state_dir, tenant, &app).is_some() {
            continue;
        }
        let audited = match read(|| session.spot.list_accounts()).await {
            Ok(accounts) => Ok(audit(session, tenant, &app, &[], &[], &accounts).await),
            Err(e) => Err(e),
        };
        let (key_ids, line) = match audited {
            Ok(a) if !a.orphans.is_empty() || !a.fresh.is_empty() => {
                let mut keys = a.orphans.clone();
                keys.extend(a.fresh.iter().cloned());
                let line = format!(
                    "{} client secret(s) of {} ({}) are held by no Spot account: {} (`spot-connect apply` removes them)",
                    keys.len(),
                    app.display_name,
                    app.app_id,
                    keys.join(", ")
                );
                (keys, line)
            }
            Ok(_) => continue,
            Err(e) => (
                vec![],
                format!(
                    "could not check {} for client secrets no Spot account holds: {e}",
                    app.display_name
                ),
            ),
        };
        out.push(Unheld {
            tenant_id: tenant.to_string(),
            key_ids,
            line,
        });
    }
    out
}

/// For the subscriptions of `locked`: the intent is cleared, and recorded orphans a Spot account
/// holds after all are no orphans.
fn settle(session: &Session, tenant: &str, locked: &[String], held: &[String]) {
    for mut s in State::load_tenant_siblings(&session.state_dir, tenant, "") {
        if !locked
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&s.subscription_id))
        {
            continue;
        }
        let before = (s.secret_pending_since, s.orphan_key_ids.len());
        s.secret_pending_since = None;
        s.orphan_key_ids
            .retain(|k| !held.iter().any(|h| h.eq_ignore_ascii_case(k)));
        if before != (s.secret_pending_since, s.orphan_key_ids.len()) {
            let _ = s.save(&session.state_dir);
        }
    }
}

/// Drops removed keyIds from every state file of the tenant (orphan lists, a stale record).
pub fn forget(session: &Session, tenant: &str, removed: &[String]) {
    for mut s in State::load_tenant_siblings(&session.state_dir, tenant, "") {
        let before = s.orphan_key_ids.len();
        s.orphan_key_ids
            .retain(|k| !removed.iter().any(|r| r.eq_ignore_ascii_case(k)));
        if s.orphan_key_ids.len() != before {
            let _ = s.save(&session.state_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_display_names_are_candidates() {
        let p = |n: Option<&str>| PasswordCredential {
            key_id: "k".into(),
            display_name: n.map(str::to_string),
            end_date_time: None,
            start_date_time: None,
            hint: None,
        };
        assert!(ours(&p(Some(
            "spot-connect 5c000001-0000-4000-8000-0000000000a1"
        ))));
        assert!(ours(&p(Some("spot-connect"))));
        assert!(!ours(&p(Some("spot-connector"))));
        assert!(!ours(&p(Some("ci pipeline"))));
        assert!(!ours(&p(None)));
    }
}
