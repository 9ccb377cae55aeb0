//! One run per tenant/subscription at a time (issue 11 §4), and races that end right without
//! time windows (issue 16 §1, §6).
//!
//! - **Locally**: an advisory lock (`File::try_lock`, flock on Unix) on
//!   `<state_dir>/locks/<tenant>_<subscription>.lock`, which holds the pid of the run that has it.
//!   The kernel drops the lock when that process ends, however it ends (a SIGKILL included), so a
//!   dead run never blocks the next one. A second run waits [`LOCK_WAIT`] for it, then stops
//!   with "another spot-connect is connecting this subscription (pid N)" and changes nothing.
//!   Every write of an object the tenant's subscriptions share (the client secret, the custom
//!   role) is made holding the tenant's lock too, `<state_dir>/locks/<tenant>.lock`
//!   ([`tenant_lock`]): `apply`, `remove` and `rotate-secret` take it, waiting up to
//!   [`TENANT_WAIT`] for one another.
//! - **In the cloud** there is no lock: the cloud is the truth and every run converges on the
//!   objects it finds by their identity (the app by `uniqueName`, its service principal by appId,
//!   the role by its deterministic GUID, the assignment by its deterministic name, the Spot
//!   account by the subscription it is connected to). Only Spot accounts can be duplicated (no
//!   idempotency key): after the run, a run that made an account in this run and finds another
//!   account connected to the same subscription gives way when its own is the later (by
//!   `createdAt`, then id) and deletes the account Spot returned to it in this run, nothing else
//!   ([`RunGuard::race_reports`]).
//!
//! While the guard is held, the HTTP layer's waits (`Retry-After`, backoff) are reported to the
//! run's progress channel as log lines ("Azure asks to wait 30 s …").

use super::model::Progress;
use super::state::{State, clean};
use super::{Session, Target};
use crate::error::{Error, Result};
use crate::http::{WaitHook, WaitNotice};
use crate::safe_fs::private_dir as ensure_private_dir;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How long a second run waits for the first to finish before it gives up.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How long a run that must give way waits for the other run's Spot account to connect.
pub const RACE_WAIT: Duration = Duration::from_secs(30);
/// How long a run waits for another run of this state dir that writes the tenant's shared
/// objects (an `apply`, `remove` or `rotate-secret` of the same tenant).
pub const TENANT_WAIT: Duration = Duration::from_secs(600);

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
    acquire_at(state_dir, path, wait, busy_message, |_| {}).await
}

/// The tenant's lock file: held by every write of an object the tenant's subscriptions share.
pub fn tenant_lock_path(state_dir: &Path, tenant: &str) -> PathBuf {
    state_dir
        .join("locks")
        .join(format!("{}.lock", clean(&tenant.to_ascii_lowercase())))
}

/// The message a run stops with when another run of this state dir keeps the tenant's lock.
pub fn tenant_busy_message(pid: Option<u32>) -> String {
    let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    format!(
        "another spot-connect{who} is writing this tenant's shared objects (client secret, custom role) from this state dir"
    )
}

/// Takes the tenant's lock, waiting up to `wait` for another holder (said once through
/// `on_wait`, with the holder's pid).
pub async fn tenant_lock(
    state_dir: &Path,
    tenant: &str,
    wait: Duration,
    on_wait: impl FnMut(Option<u32>),
) -> Result<RunLock> {
    let path = tenant_lock_path(state_dir, tenant);
    acquire_at(state_dir, path, wait, tenant_busy_message, on_wait).await
}

async fn acquire_at(
    state_dir: &Path,
    path: PathBuf,
    wait: Duration,
    busy: fn(Option<u32>) -> String,
    mut on_wait: impl FnMut(Option<u32>),
) -> Result<RunLock> {
    let io =
        |e: std::io::Error| Error::local(format!("cannot use the lock file {}", path.display()), e);
    if let Some(dir) = path.parent() {
        ensure_private_dir(state_dir)
            .and_then(|_| ensure_private_dir(dir))
            .map_err(io)?;
    }
    // Where the run will write its state and report: checked before anything is written.
    for sub in ["state", "reports"] {
        let dir = state_dir.join(sub);
        ensure_private_dir(&dir)
            .map_err(|e| Error::local(format!("cannot write under {}", dir.display()), e))?;
    }
    // No symlink followed, a regular file of ours in a directory of ours (`safe_fs`).
    let (mut file, first_time) = crate::safe_fs::open_in_place(&path).map_err(io)?;
    let t0 = Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if t0.elapsed() >= wait {
                    let pid = read_pid(&mut file);
                    return Err(Error::Busy(busy(pid)));
                }
                if !said {
                    said = true;
                    on_wait(read_pid(&mut file));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    // The pid only names the holder in a "busy" message (read by other processes on this
    // machine, from the page cache); the lock is the flock, released when the process ends.
    // Not synced to disk: a run of 100 subscriptions takes 101 locks before its first write,
    // and an fsync each (a few ms on this disk) put a tenth of a second on its critical path.
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(RunLock {
        file,
        path,
        first_time,
    })
}

/// The tenants' locks for a command that writes their shared objects (`rotate-secret`,
/// `remove`), waiting for a run of this state dir that holds one, said on `progress`.
pub async fn tenant_locks(
    state_dir: &Path,
    tenants: &[&str],
    progress: Option<&UnboundedSender<Progress>>,
) -> Result<Vec<RunLock>> {
    let mut tenants: Vec<String> = tenants.iter().map(|t| t.to_ascii_lowercase()).collect();
    tenants.sort();
    tenants.dedup();
    let mut out = Vec::new();
    for t in &tenants {
        out.push(
            tenant_lock(state_dir, t, TENANT_WAIT, |pid| {
                let message = format!("{}: waiting for it to finish", tenant_busy_message(pid));
                tracing::info!("{message}");
                if let Some(tx) = progress {
                    let _ = tx.send(Progress::Log { message });
                }
            })
            .await?,
        );
    }
    Ok(out)
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
    progress: UnboundedSender<Progress>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.session_http.set_wait_hook(self.previous.take());
    }
}

/// Before `apply` writes anything for `targets`: the subscriptions' locks (all of them, or
/// none), then their tenants' locks (the run writes the tenant's shared secret and role), and
/// the wait hook. `Err` means nothing may be written. There is no cloud-side refusal: a run
/// from any state dir converges on the objects it finds.
pub async fn guard(
    session: &Session,
    targets: &[Target],
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
    let tenants: Vec<&str> = sorted.iter().map(|t| t.tenant_id.as_str()).collect();
    locks.extend(tenant_locks(&session.state_dir, &tenants, Some(progress)).await?);
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
        progress: progress.clone(),
    })
}

impl RunGuard {
    /// After the run: did a run elsewhere (another state dir or machine) make a Spot account for
    /// the same subscription? The app, its service principal, the role and the assignment are
    /// found by identity (one of each whatever happens), but a Spot account is not: two runs
    /// may each make one. Only a report whose Spot account was created in this run is looked at
    /// (the id Spot returned to this run's create call). Which run gives way is fixed, not
    /// timed: the one whose account is the later (by `createdAt`, then id), once the other is
    /// connected to the subscription; or the one that failed while another account got
    /// connected to it. It deletes the account it made itself (and the client secret it handed
    /// to it, when nothing else holds it) and reports the race as its failure, naming both.
    /// So the world ends with one of each object.
    ///
    /// One look-up of the Spot accounts serves every report (a run of 100 subscriptions must
    /// not ask 100 times).
    pub async fn race_reports(
        &self,
        session: &Session,
        reports: &mut [super::model::Report],
        seen: &mut Seen,
        listed: Option<Vec<crate::spot::SpotAccount>>,
    ) {
        use super::model::Verdict;
        // A listing made after this run's account was created (the engine's, alongside the
        // connection's read-back) serves as well as one made now: an account made before ours
        // is in it, and one still unconnected there is read again while waiting.
        let mut accounts: Option<Vec<crate::spot::SpotAccount>> = listed;
        for report in reports.iter_mut() {
            let Some(summary) = self.duplicate_account(session, report, &mut accounts).await else {
                continue;
            };
            // This run deleted an account and maybe a secret: an app read before is stale.
            seen.apps.retain(|(t, _)| *t != report.tenant_id);
            seen.changed.push(report.tenant_id.clone());
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

    /// Another Spot account for this subscription that this run must give way to; when it is
    /// connected, this run's own account (made in this run) is deleted.
    async fn duplicate_account(
        &self,
        session: &Session,
        report: &mut super::model::Report,
        cache: &mut Option<Vec<crate::spot::SpotAccount>>,
    ) -> Option<String> {
        use super::model::{Outcome, Verdict};
        let mine = report.spot_account_id.clone()?;
        // Only an account Spot returned to this run's create call is ever deleted.
        let made_here = report.objects.iter().any(|o| {
            o.step == super::model::Step::SpotAccount
                && o.id == mine
                && o.outcome == Outcome::Created
        });
        if !made_here {
            return None;
        }
        let sub = report.subscription_id.clone();
        let connected = report.verdict == Verdict::Connected;
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
            // Connected: another account for this subscription made before ours (connected to
            // it, or not yet, with the same name). Failed: another one connected to it.
            let other = accounts
                .iter()
                .find(|a| {
                    a.account_id != mine
                        && if connected {
                            (for_sub(a) || (a.provider_external_id.is_none() && a.name == me.name))
                                && key(a) < key(&me)
                        } else {
                            for_sub(a)
                        }
                })?
                .clone();
            if for_sub(&other) {
                break (me, other);
            }
            if t0.elapsed() >= RACE_WAIT {
                // Never connected: not a run of ours that connects it (a same-named account made
                // by hand, say). Ours stays; the other is not ours to judge.
                let message = format!(
                    "Spot account {} ({}) has the name of this run's {} but was not connected to {sub} within {} s: left as it is",
                    other.account_id,
                    other.name,
                    me.account_id,
                    RACE_WAIT.as_secs()
                );
                tracing::info!("{message}");
                let _ = self.progress.send(Progress::Log { message });
                return None;
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
            "{}: a run elsewhere (another state dir or machine) made Spot account {} ({}) for subscription {sub} at the same moment as this run's {} ({})",
            busy_message(None),
            other.account_id,
            other.name,
            me.account_id,
            me.name,
        );
        if let Err(e) = super::retry::read(|| session.spot.delete_account(&me.account_id)).await {
            return Some(format!(
                "{what}; this run gives way (its account is the later), but the account it made could not be deleted ({e}): both are connected to {sub} and work; this state dir still records {} as the one it made",
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
            "{what}; the other run connected it, so this run deleted its duplicate Spot account {} (the one Spot returned to this run){secret}{failed}. Nothing else is to be deleted: the app registration, its service principal, the custom role and the role assignment are shared, and {} stays connected",
            me.account_id, other.account_id
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
        let graph = super::lookup::graph(session, tenant);
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
        super::secrets::remove_secret(&graph, app, key_id).await?;
        Ok(format!(" and removed the client secret {key_id} it held"))
    }
}

/// What the checks after a run have read, for the next one (`orphans::reclaim_after_apply`):
/// the tenants' apps of our name (with their secrets) and the organization's Spot accounts, as
/// they are after the race check.
#[derive(Default)]
pub struct Seen {
    pub apps: Vec<(String, Vec<crate::azure::graph::Application>)>,
    pub accounts: Option<Vec<crate::spot::SpotAccount>>,
    /// Tenants whose app the race check changed (a secret removed): an app read before is stale.
    pub changed: Vec<String>,
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
