//! Client secrets of ours that no Spot account holds (issue 11 §5, issue 16 §5).
//!
//! A secret becomes unheld when a run stops between `addPassword` and handing the value to Spot
//! (the value is gone: it was only in memory), when a `removePassword` reply is lost, or when a
//! rotation or a new connection replaced it. Removal is proven, never guessed: a live secret of
//! ours (display name `spot-connect …`) is removed only when
//!
//! - a state file here names it: the run's intent (`secret_intents`: the end date it chose,
//!   distinct to the second from every other live secret of the app), or `orphan_key_ids` (made
//!   and not yet handed over, or the secret its subscription's account has since moved from), or
//!   the secret it records as handed to its Spot account; and
//! - every Spot account those records name was read and does not hold it (never handed, or
//!   moved to another secret), and no Spot account this token can read holds it.
//!
//! The secret a Spot account holds is the one whose `endDateTime` is, to the second, the
//! account's `expirationDate` (and, where Spot's mask shows a prefix, Graph's `hint` agrees).
//! Anything else is kept: a secret no record here names, or one whose recorded account this
//! token cannot see, is "could not be checked", with the reason (`status` says so). What one
//! token does not see is not proof that it does not exist. Nothing is removed when some Spot
//! account could not be read.
//!
//! These checks run holding the tenant's lock (`lock::tenant_lock`): no other run of this state
//! dir is handing a secret of the tenant over meanwhile.

use super::lookup::{self, read};
use super::model::Progress;
use super::naming::SECRET_PREFIX;
use super::secrets::remove_secret;
use super::state::State;
use super::{Session, Target};
use crate::azure::graph::{Application, Graph, PasswordCredential};
use crate::error::Result;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

/// A secret of ours that is kept because the run cannot show whether it is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    pub key_id: String,
    pub reason: String,
}

/// The secrets of our app, sorted out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub app_id: String,
    /// keyIds a Spot account holds (read, or recorded as just handed over by this run).
    pub held: Vec<String>,
    /// keyIds of ours proven unheld: they may be removed.
    pub orphans: Vec<String>,
    /// keyIds of ours that could not be checked, with why: kept.
    pub unchecked: Vec<Unchecked>,
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

/// Whether the credentials Spot shows are the secret `p`: the same end, to the second, and,
/// where Spot's mask shows a prefix, one that agrees with Graph's `hint`.
pub fn holds(creds: &crate::spot::AzureCredentialsInfo, p: &PasswordCredential) -> bool {
    let same_end = match (creds.expiration(), p.end_date_time) {
        (Some(a), Some(b)) => a.unix_timestamp() == b.unix_timestamp(),
        _ => false,
    };
    let prefix = creds.mask_prefix();
    let hint = p.hint.as_deref().unwrap_or_default();
    let n = prefix.len().min(hint.len());
    same_end && prefix.get(..n) == hint.get(..n)
}

/// What a Spot account holds of our app, as far as this run knows.
#[derive(Debug, Clone)]
enum Holding {
    /// Read: the keyIds of ours it holds (none: another secret, another app, or nothing).
    Read(Vec<String>),
    /// Its credentials could not be read (why).
    Unread(String),
}

/// Sorts the live secrets of `app` (in `tenant`) into held / orphans / unchecked. `known`:
/// Spot accounts this run has just handed a secret to, which a state file here records (their
/// credentials are not read again: they hold that secret). `accounts`: the Spot accounts this
/// token can list.
pub async fn audit(
    session: &Session,
    tenant: &str,
    app: &Application,
    known: &[String],
    accounts: &[crate::spot::SpotAccount],
) -> Audit {
    let mut out = Audit {
        app_id: app.app_id.clone(),
        ..Default::default()
    };
    let states = State::load_tenant_siblings(&session.state_dir, tenant, "");
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
    let mut holding: Vec<(String, Holding)> = Vec::new();
    for k in known {
        let key = states
            .iter()
            .filter(|s| s.spot_account_id.as_deref() == Some(k.as_str()))
            .filter_map(|s| s.secret.as_ref())
            .filter(|r| r.handed_to_spot)
            .map(|r| r.key_id.clone())
            .collect();
        holding.push((k.clone(), Holding::Read(key)));
    }
    for (a, creds) in connected.into_iter().zip(all_creds) {
        let h = match creds {
            Err(e) => {
                out.incomplete = Some(format!("Spot account {}: {e}", a.account_id));
                Holding::Unread(e.to_string())
            }
            Ok(creds) => match creds.filter(|c| {
                c.client_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
            }) {
                None => Holding::Read(vec![]),
                // Spot holds our app without a date: any of ours could be it.
                Some(c) if c.expiration().is_none() => Holding::Read(
                    app.password_credentials
                        .iter()
                        .map(|p| p.key_id.clone())
                        .collect(),
                ),
                Some(c) => Holding::Read(
                    app.password_credentials
                        .iter()
                        .filter(|p| holds(&c, p))
                        .map(|p| p.key_id.clone())
                        .collect(),
                ),
            },
        };
        holding.push((a.account_id.clone(), h));
    }
    let holds_key = |h: &Holding, k: &str| match h {
        Holding::Read(keys) => keys.iter().any(|x| x.eq_ignore_ascii_case(k)),
        Holding::Unread(_) => false,
    };
    for p in &app.password_credentials {
        let k = p.key_id.as_str();
        if holding.iter().any(|(_, h)| holds_key(h, k)) {
            out.held.push(p.key_id.clone());
            continue;
        }
        if !ours(p) {
            continue;
        }
        let end = p.end_date_time.map(OffsetDateTime::unix_timestamp);
        // The records here that name it, and the account each names.
        let naming: Vec<&State> = states
            .iter()
            .filter(|s| {
                s.secret
                    .as_ref()
                    .is_some_and(|r| r.key_id.eq_ignore_ascii_case(k))
                    || s.orphan_key_ids.iter().any(|x| x.eq_ignore_ascii_case(k))
                    || end.is_some_and(|e| s.secret_intents.contains(&e))
            })
            .collect();
        if naming.is_empty() {
            out.unchecked.push(Unchecked {
                key_id: p.key_id.clone(),
                reason: "no state file here records it and no Spot account this token can read holds it: it may be held by an account of another run (another state dir or machine) that this token cannot see".into(),
            });
            continue;
        }
        let mut why_not = None;
        for s in &naming {
            let Some(acct) = s.spot_account_id.as_deref() else {
                // No Spot account yet: it cannot have been handed over.
                continue;
            };
            match holding.iter().find(|(a, _)| a == acct).map(|(_, h)| h) {
                Some(Holding::Read(_)) => {}
                Some(Holding::Unread(e)) => {
                    why_not = Some(format!(
                        "the state of {} names Spot account {acct}, whose credentials could not be read ({e})",
                        s.subscription_id
                    ));
                }
                None => {
                    why_not = Some(format!(
                        "the state of {} names Spot account {acct}, which this Spot token cannot see",
                        s.subscription_id
                    ));
                }
            }
        }
        match why_not {
            Some(reason) => out.unchecked.push(Unchecked {
                key_id: p.key_id.clone(),
                reason,
            }),
            None if out.incomplete.is_some() => out.unchecked.push(Unchecked {
                key_id: p.key_id.clone(),
                reason: format!(
                    "a Spot account could not be read ({})",
                    out.incomplete.as_deref().unwrap_or_default()
                ),
            }),
            None => out.orphans.push(p.key_id.clone()),
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

/// Per tenant of `targets`, our app as its state files here record it (read now, alongside the
/// race check: `reclaim_after_apply` then needs no read of its own).
pub async fn prefetch_apps(
    session: &Session,
    targets: &[Target],
) -> Vec<(String, Vec<Application>)> {
    let mut tenants: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
    tenants.sort();
    tenants.dedup();
    let reads = tenants.into_iter().map(|tenant| async move {
        let subs: Vec<&Target> = targets.iter().filter(|t| t.tenant_id == tenant).collect();
        let graph = lookup::graph(session, tenant);
        match recorded_app(session, &graph, tenant, &subs, &[]).await {
            Ok(Some(app)) => Some((tenant.to_string(), vec![app])),
            _ => None,
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Removes the audit's orphans from `app`; what was removed, and lines for what was not.
pub async fn remove_orphans(
    session: &Session,
    graph: &Graph,
    tenant: &str,
    app: &Application,
    audit: &Audit,
    log: &(dyn Fn(String) + Sync),
) -> Vec<String> {
    let mut removed = Vec::new();
    for k in &audit.orphans {
        match remove_secret(graph, &app.id, k).await {
            Ok(()) => removed.push(k.clone()),
            Err(e) => log(format!(
                "could not remove the client secret {k} that no Spot account holds: {e}"
            )),
        }
    }
    if !removed.is_empty() {
        log(format!(
            "removed {} client secret(s) of {} that no Spot account holds (recorded here, never handed over or replaced): {}",
            removed.len(),
            app.display_name,
            removed.join(", ")
        ));
        forget(session, tenant, &removed);
    }
    for u in &audit.unchecked {
        tracing::info!(key_id = %u.key_id, reason = %u.reason, "client secret kept: could not be checked");
    }
    removed
}

/// After `apply` connected `targets`: per tenant, our app's secrets proven unheld are removed
/// (and dropped from the state files' records). Reported as log lines.
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
        let graph = lookup::graph(session, tenant);
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
            settle(session, tenant, &app, &audit);
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
        let audit = audit(session, tenant, &app, &known, accounts).await;
        if let Some(why) = &audit.incomplete {
            log(format!(
                "client secrets not checked for orphans: a Spot account could not be read ({why})"
            ));
        }
        let removed = remove_orphans(session, &graph, tenant, &app, &audit, &log).await;
        if removed.len() == audit.orphans.len() {
            settle(session, tenant, &app, &audit);
        }
        out.push(audit);
    }
    out
}

/// For `status`: per tenant whose app has secrets of ours no Spot account holds, a line and
/// their keyIds.
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
        let graph = lookup::graph(session, tenant);
        let Ok(Some(app)) = recorded_app(session, &graph, tenant, &subs, &[]).await else {
            continue;
        };
        // Every secret of ours is recorded as handed to Spot: none can be unheld.
        if all_recorded(&session.state_dir, tenant, &app).is_some() {
            continue;
        }
        let audited = match read(|| session.spot.list_accounts()).await {
            Ok(accounts) => Ok(audit(session, tenant, &app, &[], &accounts).await),
            Err(e) => Err(e),
        };
        match audited {
            Ok(a) => {
                if !a.orphans.is_empty() {
                    out.push(Unheld {
                        tenant_id: tenant.to_string(),
                        key_ids: a.orphans.clone(),
                        line: format!(
                            "{} client secret(s) of {} ({}) are held by no Spot account: {} (`spot-connect apply` removes them)",
                            a.orphans.len(),
                            app.display_name,
                            app.app_id,
                            a.orphans.join(", ")
                        ),
                    });
                }
                for u in &a.unchecked {
                    out.push(Unheld {
                        tenant_id: tenant.to_string(),
                        key_ids: vec![u.key_id.clone()],
                        line: format!(
                            "client secret {} of {} ({}) could not be checked: {}; it is kept",
                            u.key_id, app.display_name, app.app_id, u.reason
                        ),
                    });
                }
            }
            Err(e) => out.push(Unheld {
                tenant_id: tenant.to_string(),
                key_ids: vec![],
                line: format!(
                    "could not check {} for client secrets no Spot account holds: {e}",
                    app.display_name
                ),
            }),
        }
    }
    out
}

/// After an audit whose orphans are all removed: the records of the tenant's state files that
/// are accounted for are dropped (intents and orphan keyIds no longer on the app, or held);
/// what could not be checked stays recorded, for a run that can.
fn settle(session: &Session, tenant: &str, app: &Application, audit: &Audit) {
    let unchecked = |k: &str| {
        audit
            .unchecked
            .iter()
            .any(|u| u.key_id.eq_ignore_ascii_case(k))
    };
    let live_unchecked_ends: Vec<i64> = app
        .password_credentials
        .iter()
        .filter(|p| unchecked(&p.key_id))
        .filter_map(|p| p.end_date_time.map(OffsetDateTime::unix_timestamp))
        .collect();
    let live = |k: &str| {
        app.password_credentials
            .iter()
            .any(|p| p.key_id.eq_ignore_ascii_case(k))
    };
    let held = |k: &str| audit.held.iter().any(|h| h.eq_ignore_ascii_case(k));
    let mut changed: Vec<State> = Vec::new();
    for mut s in State::load_tenant_siblings(&session.state_dir, tenant, "") {
        let before = (s.secret_intents.clone(), s.orphan_key_ids.clone());
        s.secret_intents.retain(|e| live_unchecked_ends.contains(e));
        s.orphan_key_ids
            .retain(|k| live(k) && !held(k) && !audit.orphans.contains(k));
        if before != (s.secret_intents.clone(), s.orphan_key_ids.clone()) {
            changed.push(s);
        }
    }
    // Each file written (and synced) as before, several at once: after a run of 100
    // subscriptions every one of their files drops the run's secret intent, and 100 syncs one
    // after the other put 0.2 s on the end of the run (issue 20 §3).
    let per = changed.len().div_ceil(SETTLE_WRITERS).max(1);
    std::thread::scope(|scope| {
        for chunk in changed.chunks_mut(per) {
            scope.spawn(|| {
                for s in chunk {
                    let _ = s.save(&session.state_dir);
                }
            });
        }
    });
}

/// State files [`settle`] writes at once.
const SETTLE_WRITERS: usize = 16;

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
