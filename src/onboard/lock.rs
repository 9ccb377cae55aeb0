//! One run per tenant/subscription at a time (issue 11 §4).
//!
//! - **Locally**: an advisory lock (`File::try_lock`, flock on Unix) on
//!   `<state_dir>/locks/<tenant>_<subscription>.lock`, which holds the pid of the run that has it.
//!   The kernel drops the lock when that process ends, however it ends (a SIGKILL included), so a
//!   dead run never blocks the next one. A second run waits [`LOCK_WAIT`] for it, then stops
//!   with "another spot-connect is connecting this subscription (pid N)" and changes nothing.
//! - **In the cloud**, where the API allows: a run from a state dir that has never run this
//!   tenant (no lock file of the tenant yet) that finds a fresh app registration of ours (created
//!   less than [`FRESH`] ago) that no state file here records, is probably racing a run that
//!   uses another state dir: it stops with a message naming the app instead of making a second set
//!   of objects. Two runs started within the same second from two state dirs can still both
//!   pass this check: the app and its service principal are upserted by name (one of each),
//!   and after the run the one with the later Spot account deletes it and reports the race
//!   ([`RunGuard::race_reports`]).
//!
//! While the guard is held, the HTTP layer's waits (`Retry-After`, backoff) are reported to the
//! run's progress channel as log lines ("Azure asks to wait 30 s …").

use super::model::Progress;
use super::state::{State, clean, state_path};
use super::{Session, Target};
use crate::error::{Error, Result};
use crate::http::{WaitHook, WaitNotice};
use crate::safe_fs::private_dir as ensure_private_dir;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

/// How long a second run waits for the first to finish before it gives up.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How long a run that must give way waits for the other run's Spot account to connect.
pub const RACE_WAIT: Duration = Duration::from_secs(30);
/// An app of ours created less than this long ago, and unknown to every state file here,
/// marks a competing run.
pub const FRESH: time::Duration = time::Duration::minutes(10);

/// The message a second run stops with.
pub fn busy_message(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another spot-connect is connecting this subscription (pid {pid})"),
        None => "another spot-connect is connecting this subscription".into(),
    }
}

pub fn lock_path(state_dir: &Path, tenant: &str, subscription: &str) -> PathBuf {
    state_dir.join("locks").join(format!(
        "{}_{}.lock",
        clean(&tenant.to_ascii_lowercase()),
        clean(&subscription.to_ascii_lowercase())
    ))
}

/// A held lock: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The lock file did not exist before: this state dir has never run this subscription.
    pub first_time: bool,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_pid(f: &mut File) -> Option<u32> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Takes the lock of `tenant`/`subscription`, waiting up to `wait` for another holder.
pub async fn acquire(
    state_dir: &Path,
    tenant: &str,
    subscription: &str,
    wait: Duration,
) -> Result<RunLock> {
    let path = lock_path(state_dir, tenant, subscription);
    let io = |e: std::io::Error| {
        Error::Other(format!("cannot use the lock file {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        ensure_private_dir(state_dir)
            .and_then(|_| ensure_private_dir(dir))
            .map_err(io)?;
    }
    // Where the run will write its state and report: checked before anything is written.
    for sub in ["state", "reports"] {
        let dir = state_dir.join(sub);
        ensure_private_dir(&dir)
            .map_err(|e| Error::Other(format!("cannot write under {}: {e}", dir.display())))?;
    }
    // No symlink followed, a regular file of ours in a directory of ours (`safe_fs`).
    let (mut file, first_time) = crate::safe_fs::open_in_place(&path).map_err(io)?;
    let t0 = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if t0.elapsed() >= wait {
                    let pid = read_pid(&mut file);
                    return Err(Error::Other(busy_message(pid)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    let _ = file.sync_all();
    Ok(RunLock {
        file,
        path,
        first_time,
    })
}

/// Whether this state dir has run any subscription of `tenant` before (a lock file of the
/// tenant exists: they are never deleted).
pub fn tenant_seen(state_dir: &Path, tenant: &str) -> bool {
    let prefix = format!("{}_", clean(&tenant.to_ascii_lowercase()));
    std::fs::read_dir(state_dir.join("locks")).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    })
}

/// Whether a run (this process or another) holds the lock of a subscription of `tenant` other
/// than those of `except` in this state dir.
pub fn tenant_busy(state_dir: &Path, tenant: &str, except: &[String]) -> bool {
    let prefix = format!("{}_", clean(&tenant.to_ascii_lowercase()));
    let mine: Vec<PathBuf> = except
        .iter()
        .map(|s| lock_path(state_dir, tenant, s))
        .collect();
    let Ok(rd) = std::fs::read_dir(state_dir.join("locks")) else {
        return false;
    };
    rd.flatten().any(|e| {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with(&prefix) || mine.contains(&path) {
            return false;
        }
        let Ok(f) = crate::safe_fs::open_read(&path) else {
            return false;
        };
        match f.try_lock_shared() {
            Ok(()) => {
                let _ = f.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => false,
        }
    })
}

/// The app registration's display name in a tenant (`Settings::app_name_for`).
pub type AppName<'a> = &'a (dyn Fn(&str) -> String + Sync);

/// What a run holds while it writes: its locks, and the wait hook on the HTTP layer.
pub struct RunGuard {
    _locks: Vec<RunLock>,
    session_http: crate::http::Http,
    previous: Option<WaitHook>,
    /// Tenants this state dir had never run: checked for a race after the run.
    new_tenants: Vec<String>,
    progress: UnboundedSender<Progress>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.session_http.set_wait_hook(self.previous.take());
    }
}

/// Before `apply` writes anything for `targets`: the local locks (all of them, or none), the
/// cloud check for a competing run, and the wait hook. `Err` means nothing may be written.
pub async fn guard(
    session: &Session,
    targets: &[Target],
    app_name: AppName<'_>,
    plan_apps: PlanApps<'_>,
    progress: &UnboundedSender<Progress>,
) -> Result<RunGuard> {
    let mut sorted: Vec<&Target> = targets.iter().collect();
    sorted.sort_by_key(|t| {
        (
            t.tenant_id.to_ascii_lowercase(),
            t.subscription_id.to_ascii_lowercase(),
        )
    });
    sorted.dedup_by_key(|t| t.subscription_id.to_ascii_lowercase());
    // Tenants this state dir has run before (any subscription): looked at before our own lock
    // files exist.
    let seen: Vec<bool> = sorted
        .iter()
        .map(|t| tenant_seen(&session.state_dir, &t.tenant_id))
        .collect();
    let mut locks = Vec::new();
    for t in &sorted {
        locks.push(
            acquire(
                &session.state_dir,
                &t.tenant_id,
                &t.subscription_id,
                LOCK_WAIT,
            )
            .await?,
        );
    }
    let mut new_tenants = Vec::new();
    // The cloud check looks at the tenant's app: once per tenant (every state file of the
    // tenant here counts as known), not once per subscription.
    for (t, seen) in sorted.iter().zip(seen) {
        if !seen && !new_tenants.contains(&t.tenant_id) {
            competing_run(session, t, app_name, plan_apps(&t.tenant_id)).await?;
            new_tenants.push(t.tenant_id.clone());
        }
    }
    let tx = progress.clone();
    let hook: WaitHook = Arc::new(move |n: &WaitNotice| {
        let _ = tx.send(Progress::Log {
            message: n.message(),
        });
    });
    let previous = session.http.set_wait_hook(Some(hook));
    Ok(RunGuard {
        _locks: locks,
        session_http: session.http.clone(),
        previous,
        new_tenants,
        progress: progress.clone(),
    })
}

impl RunGuard {
    /// After the run, for a tenant this state dir had never run: did a run with another state
    /// dir, started at the same moment, make the same objects too? The app and its service
    /// principal are upserted by name (one of each whatever happens), but a Spot account is not:
    /// two runs may each make one for the subscription. The run that must give way is the one
    /// whose account is the later (by `createdAt`, then id), or the one that failed while the
    /// other connected the subscription: once the other account is connected to the
    /// subscription it deletes the account it made itself, and the client secret it handed to
    /// it, and reports the race as its failure, naming both. So the world ends with one of each
    /// object. (The run to keep may not see the other yet, and need not.) An app of an earlier
    /// version (made by POST, no upsert) can be duplicated too: reported the same way.
    ///
    /// One look-up of the tenant's apps and one of the Spot accounts serve every report of the
    /// tenant (a run of 100 subscriptions must not ask 200 times).
    pub async fn race_reports(
        &self,
        session: &Session,
        app_name: AppName<'_>,
        reports: &mut [super::model::Report],
        seen: &mut Seen,
    ) {
        use super::model::Verdict;
        let mut accounts: Option<Vec<crate::spot::SpotAccount>> = None;
        for report in reports.iter_mut() {
            if !self.new_tenants.contains(&report.tenant_id) {
                continue;
            }
            // The tenant's apps (and, the first time, the Spot accounts) at once.
            if !seen.apps.iter().any(|(t, _)| *t == report.tenant_id) {
                let graph = super::status::graph(session, &report.tenant_id);
                let name = app_name(&report.tenant_id);
                let list_accounts = async {
                    match &accounts {
                        Some(_) => None,
                        None => super::retry::read(|| session.spot.list_accounts())
                            .await
                            .ok(),
                    }
                };
                let (found, listed) = tokio::join!(graph.find_applications(&name), list_accounts);
                if let Ok(found) = found {
                    seen.apps.push((report.tenant_id.clone(), found));
                }
                if listed.is_some() {
                    accounts = listed;
                }
            }
            let list = seen
                .apps
                .iter()
                .find(|(t, _)| *t == report.tenant_id)
                .map(|(_, a)| a.as_slice());
            let summary = match report.verdict {
                Verdict::Connected => match list.and_then(|l| duplicate_app(session, l, report)) {
                    Some(s) => Some(s),
                    None => self.duplicate_account(session, report, &mut accounts).await,
                },
                Verdict::Failed => self.duplicate_account(session, report, &mut accounts).await,
            };
            let Some(summary) = summary else {
                continue;
            };
            // This run deleted an account and maybe a secret: the app read above is stale.
            seen.apps.retain(|(t, _)| *t != report.tenant_id);
            tracing::warn!("{summary}");
            report.verdict = Verdict::Failed;
            report.error = Some(super::model::ErrorInfo {
                summary,
                api: None,
                hint: None,
            });
        }
        if accounts.is_some() {
            seen.accounts = accounts;
        }
    }

    /// Another fresh Spot account for this subscription that this run must give way to; when
    /// it is connected, this run's own account (made in this run) is deleted.
    async fn duplicate_account(
        &self,
        session: &Session,
        report: &mut super::model::Report,
        cache: &mut Option<Vec<crate::spot::SpotAccount>>,
    ) -> Option<String> {
        use super::model::{Outcome, Verdict};
        let mine = report.spot_account_id.clone()?;
        let made_here = report.objects.iter().any(|o| {
            o.step == super::model::Step::SpotAccount
                && o.id == mine
                && o.outcome == Outcome::Created
        });
        let sub = report.subscription_id.clone();
        let connected = report.verdict == Verdict::Connected;
        if !connected && !made_here {
            return None;
        }
        let for_sub = |a: &crate::spot::SpotAccount| {
            a.provider_external_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(&sub))
        };
        // Waits (a little) for the other run to connect its account when it has not yet.
        let t0 = Instant::now();
        let mut said_wait = false;
        let (me, other) = loop {
            // The run's list first; read again only while waiting.
            let accounts = match cache.take() {
                Some(a) if !said_wait => a,
                _ => super::retry::read(|| session.spot.list_accounts())
                    .await
                    .ok()?,
            };
            let accounts = &*cache.insert(accounts);
            let me = accounts.iter().find(|a| a.account_id == mine)?.clone();
            let key = |a: &crate::spot::SpotAccount| (a.created_at, a.account_id.clone());
            let now = OffsetDateTime::now_utc();
            // Connected: another account for this subscription made before ours (connected to
            // it, or not yet, with the same name). Failed: another one connected to it.
            let other = accounts
                .iter()
                .find(|a| {
                    a.account_id != mine
                        && a.created_at.is_some_and(|c| now - c < FRESH)
                        && if connected {
                            (for_sub(a) || (a.provider_external_id.is_none() && a.name == me.name))
                                && key(a) < key(&me)
                        } else {
                            for_sub(a)
                        }
                })?
                .clone();
            if for_sub(&other) || !made_here || t0.elapsed() >= RACE_WAIT {
                break (me, other);
            }
            if !said_wait {
                said_wait = true;
                let _ = self.progress.send(Progress::Log {
                    message: format!(
                        "Spot account {} ({}) was made for {sub} by another run at the same moment: waiting for it to connect",
                        other.account_id, other.name
                    ),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let what = format!(
            "{}: a run with another state dir made Spot account {} ({}) for subscription {sub} at the same moment as this run's {} ({})",
            busy_message(None),
            other.account_id,
            other.name,
            me.account_id,
            me.name,
        );
        if !(made_here && for_sub(&other)) {
            return Some(format!(
                "{what}; keep the other one and delete this run's duplicate: Spot account {} (the app registration, its service principal and the custom role are shared: leave them)",
                me.account_id
            ));
        }
        if let Err(e) = super::retry::read(|| session.spot.delete_account(&me.account_id)).await {
            return Some(format!(
                "{what}; this run's duplicate could not be deleted ({e}): delete Spot account {} (the app registration, its service principal and the custom role are shared: leave them)",
                me.account_id
            ));
        }
        if let Some(list) = cache.as_mut() {
            list.retain(|a| a.account_id != me.account_id);
        }
        report.spot_account_id = None;
        report.secret_expires = None;
        let secret = self.forget_account(session, report).await;
        let failed = match (&report.error, connected) {
            (Some(e), false) => format!(" (this run had failed: {})", e.summary),
            _ => String::new(),
        };
        Some(format!(
            "{what}; the other run connected it, so this run deleted its duplicate Spot account {}{secret}{failed}. The app registration, its service principal, the custom role and the role assignment are shared; connect this subscription from the other run's state dir from now on",
            me.account_id
        ))
    }

    /// After this run's duplicate Spot account was deleted: its state no longer names the
    /// account, and the client secret this run handed to it is removed from the app when no
    /// other subscription connected from here holds it. What was done, for the report.
    async fn forget_account(&self, session: &Session, report: &super::model::Report) -> String {
        let (tenant, sub) = (&report.tenant_id, &report.subscription_id);
        let Ok(mut state) = State::load(&session.state_dir, tenant, sub) else {
            return String::new();
        };
        state.spot_account_id = None;
        let secret = state.secret.take();
        // Saved before the removal is tried: a run killed meanwhile no longer names the account.
        let _ = state.save(&session.state_dir);
        let (Some(rec), Some(app)) = (secret, state.app_object_id.clone()) else {
            return String::new();
        };
        match self
            .remove_handed_secret(session, report, &app, &rec.key_id)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                // Left for the next run's orphan check.
                if !state.orphan_key_ids.contains(&rec.key_id) {
                    state.orphan_key_ids.push(rec.key_id.clone());
                    let _ = state.save(&session.state_dir);
                }
                format!(
                    "; its client secret {} could not be removed ({e}): the next `spot-connect apply` removes it",
                    rec.key_id
                )
            }
        }
    }

    /// Removes the secret `key_id` this run handed to its deleted account, unless another
    /// subscription connected from this state dir holds it, or it is gone already.
    async fn remove_handed_secret(
        &self,
        session: &Session,
        report: &super::model::Report,
        app: &str,
        key_id: &str,
    ) -> Result<String> {
        let (tenant, sub) = (&report.tenant_id, &report.subscription_id);
        let held_here = State::load_tenant_siblings(&session.state_dir, tenant, sub)
            .iter()
            .filter_map(|s| s.secret.as_ref())
            .any(|r| r.handed_to_spot && r.key_id.eq_ignore_ascii_case(key_id));
        if held_here {
            return Ok(String::new());
        }
        let graph = super::status::graph(session, tenant);
        let on_app = |a: &crate::azure::graph::Application| {
            a.password_credentials
                .iter()
                .any(|p| p.key_id.eq_ignore_ascii_case(key_id))
        };
        match super::retry::read(|| graph.get_application(app)).await {
            Ok(Some(a)) if !on_app(&a) => return Ok(String::new()),
            Ok(None) => return Ok(String::new()),
            _ => {}
        }
        super::orphans::remove_secret(&graph, app, key_id).await?;
        Ok(format!(" and removed the client secret {key_id} it held"))
    }
}

/// An app of ours made before this run's (by an earlier version's POST: not upserted) at the
/// same moment by a run with another state dir, among `apps` (the tenant's apps of our name).
fn duplicate_app(
    session: &Session,
    apps: &[crate::azure::graph::Application],
    report: &super::model::Report,
) -> Option<String> {
    let state = State::load(
        &session.state_dir,
        &report.tenant_id,
        &report.subscription_id,
    )
    .ok()?;
    let mine = state.app_object_id?;
    let key =
        |a: &crate::azure::graph::Application| (a.created_date_time, a.id.to_ascii_lowercase());
    let me = apps.iter().find(|a| a.id.eq_ignore_ascii_case(&mine))?;
    let now = OffsetDateTime::now_utc();
    let other = apps.iter().find(|a| {
        a.is_ours()
            && !a.id.eq_ignore_ascii_case(&mine)
            && a.created_date_time.is_some_and(|c| now - c < FRESH)
            && key(a) < key(me)
    })?;
    let account = report
        .spot_account_id
        .as_deref()
        .map(|a| format!(" and Spot account {a}"))
        .unwrap_or_default();
    Some(format!(
        "{}: a run with another state dir registered {} ({}) at the same moment as this run's {} ({}); keep the other one and delete this run's duplicates: app registration {}{account} (the custom role is shared: leave it)",
        busy_message(None),
        other.display_name,
        other.app_id,
        me.display_name,
        me.app_id,
        me.app_id,
    ))
}

/// What the checks after a run have read, for the next one (`orphans::reclaim_after_apply`):
/// the tenants' apps of our name (with their secrets) and the organization's Spot accounts, as
/// they are after the race check.
#[derive(Default)]
pub struct Seen {
    pub apps: Vec<(String, Vec<crate::azure::graph::Application>)>,
    pub accounts: Option<Vec<crate::spot::SpotAccount>>,
}

/// The apps of ours a plan made a moment ago found in a tenant (`engine::Facts::recent_apps`):
/// the cloud check uses them instead of asking Graph again. None: ask.
pub type PlanApps<'a> = &'a (dyn Fn(&str) -> Option<Vec<crate::azure::graph::Application>> + Sync);

/// How recent a plan's look-up must be for the cloud check to use it (`apply --yes` guards
/// milliseconds after its plan; the wizard's review may stay open for minutes: then Graph is
/// asked again).
pub const PLAN_FRESH: Duration = Duration::from_secs(5);

/// The cloud check: a fresh app of ours for this tenant that no state file here records.
async fn competing_run(
    session: &Session,
    target: &Target,
    app_name: AppName<'_>,
    from_plan: Option<Vec<crate::azure::graph::Application>>,
) -> Result<()> {
    let apps = match from_plan {
        Some(apps) => apps,
        None => {
            let name = app_name(&target.tenant_id);
            let graph = super::status::graph(session, &target.tenant_id);
            // A lookup that fails is not a competing run: the engine's own lookups report it.
            let Ok(apps) = graph.find_applications(&name).await else {
                return Ok(());
            };
            apps
        }
    };
    let mut known: Vec<String> =
        State::load_tenant_siblings(&session.state_dir, &target.tenant_id, "")
            .into_iter()
            .filter_map(|s| s.app_object_id)
            .collect();
    if let Ok(s) = State::load(
        &session.state_dir,
        &target.tenant_id,
        &target.subscription_id,
    ) && let Some(id) = s.app_object_id
    {
        known.push(id);
    }
    let now = OffsetDateTime::now_utc();
    // Only an app with a uniqueName: this version's runs upsert it by that name; one without
    // was made by an earlier version and is reused, however fresh.
    if let Some(app) = apps.iter().find(|a| {
        a.is_ours()
            && a.unique_name.is_some()
            && !known.iter().any(|k| k.eq_ignore_ascii_case(&a.id))
            && a.created_date_time.is_some_and(|c| now - c < FRESH)
    }) {
        let ago = app
            .created_date_time
            .map(|c| (now - c).whole_seconds().max(0))
            .unwrap_or_default();
        return Err(Error::Other(format!(
            "{}: app registration {} ({}) was created {ago} s ago by a run that keeps its state elsewhere (another --state-dir or machine); wait for it to finish and run again, or use its state dir (state here: {})",
            busy_message(None),
            app.display_name,
            app.app_id,
            state_path(
                &session.state_dir,
                &target.tenant_id,
                &target.subscription_id
            )
            .display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_then_gets_the_pid_and_a_dead_holder_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path(), "T-1", "S-1", Duration::ZERO)
            .await
            .unwrap();
        assert!(first.first_time);
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Same subscription, any case: busy, with the holder's pid, after waiting.
        let t0 = Instant::now();
        let e = acquire(d.path(), "t-1", "s-1", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            e.to_string(),
            format!(
                "another spot-connect is connecting this subscription (pid {})",
                std::process::id()
            )
        );
        // Another subscription is not blocked.
        let other = acquire(d.path(), "t-1", "s-2", Duration::ZERO)
            .await
            .unwrap();
        drop(other);
        // Released on drop: the waiter gets it.
        let waiter = tokio::spawn({
            let dir = d.path().to_path_buf();
            async move { acquire(&dir, "t-1", "s-1", Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(first);
        let second = waiter.await.unwrap().unwrap();
        assert!(!second.first_time);
        assert!(tenant_seen(d.path(), "T-1"));
        assert!(!tenant_seen(d.path(), "t-2"));
        // Another subscription of the tenant is busy while its lock is held, not after.
        assert!(tenant_busy(d.path(), "t-1", &["s-2".into()]));
        assert!(!tenant_busy(d.path(), "t-1", &["S-1".into()]));
        drop(second);
        assert!(!tenant_busy(d.path(), "t-1", &["s-2".into()]));
    }
}
