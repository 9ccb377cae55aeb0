//! The resume file: one per tenant/subscription under `<state_dir>/state/`, mode 0600, written
//! atomically after every write the engine makes. Ids and step status only: never a secret or
//! a token (there is no field that could hold one).

use super::model::Step;
use crate::error::{Error, Result};
use crate::safe_fs::{private_dir as ensure_private_dir, write_private};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use time::OffsetDateTime;

pub const VERSION: u32 = 1;

/// A client secret we added. `handed_to_spot == false` after a crash means the value is lost:
/// the next run makes a new one and removes this one by `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
    pub handed_to_spot: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub tenant_id: String,
    pub subscription_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_definition_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_account_id: Option<String>,
    /// Name of a Spot account we were about to create (so a crash right after is recognised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_account_pending: Option<String>,
    /// When that create call was about to be sent: only an account Spot made after it can be
    /// the one it made.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub spot_account_pending_at: Option<OffsetDateTime>,
    /// How the Spot account came to be ours to connect: created by a run of this state dir
    /// (the id Spot returned to our create call, and the name we gave), or chosen by the
    /// operator (`--spot-account`, a take-over). Only a created one may ever be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_account_origin: Option<AccountOrigin>,
    /// The secret Spot holds (or was about to get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRecord>,
    /// Secrets to remove once the current one is with Spot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphan_key_ids: Vec<String>,
    /// The intent, set just before a run asks for the tenant's new secret (`addPassword`): a
    /// secret of ours made after this time that no Spot account holds was lost (a kill, a lost
    /// reply). Cleared by `onboard::orphans::reclaim_after_apply` once every such secret is
    /// accounted for (removed, or held).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_pending_since: Option<OffsetDateTime>,
    /// The end dates (Unix seconds) a run of this state dir chose for the client secrets it
    /// was about to ask for, recorded before `addPassword` (one per attempt, each distinct to
    /// the second from every other live secret of the app): a live secret of ours with one of
    /// these end dates was made by that run, and if no Spot account got it, it was never handed
    /// over (issue 16 §5). Cleared once every such secret is accounted for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_intents: Vec<i64>,
    #[serde(default)]
    pub steps: BTreeMap<Step, StepStatus>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// How a subscription's Spot account became ours to connect (issue 16 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AccountOrigin {
    /// Spot returned `account_id` to our create call, for an account we named `name`.
    Created { account_id: String, name: String },
    /// The operator picked it (`--spot-account`, or `--take-over` of a connection).
    Chosen { account_id: String },
}

impl State {
    /// The Spot account id a run of this state dir created for this subscription (the record
    /// of the create call), if any. Whether it may be deleted also needs the account as Spot
    /// shows it: [`State::created`].
    pub fn created_account(&self) -> Option<&str> {
        match &self.spot_account_origin {
            Some(AccountOrigin::Created { account_id, .. }) => Some(account_id),
            _ => None,
        }
    }

    /// Whether `account` (as Spot lists it) was created by us for this subscription: its id is
    /// the one our create call recorded and its name the one we gave it, or its credentials
    /// name `our_app` (`creds_app`: the client id Spot holds). One whose credentials name
    /// another app than ours is not ours, whatever the record says.
    pub fn created(
        &self,
        account_id: &str,
        name: &str,
        creds_app: Option<&str>,
        our_app: Option<&str>,
    ) -> bool {
        match &self.spot_account_origin {
            Some(AccountOrigin::Created {
                account_id: id,
                name: n,
            }) if id == account_id => match (creds_app, our_app) {
                (Some(c), Some(o)) if c.eq_ignore_ascii_case(o) => true,
                (Some(_), Some(_)) => false,
                _ => n == name,
            },
            _ => false,
        }
    }

    /// Whether the operator chose `account_id` for this subscription.
    pub fn chosen(&self, account_id: &str) -> bool {
        matches!(&self.spot_account_origin, Some(AccountOrigin::Chosen { account_id: id }) if id == account_id)
    }
}

/// How a step of the last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Done,
    Failed,
}

/// A lock that a panic elsewhere does not poison for good: the data is plain ids.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One subscription's state during a run: changed in memory, written by one writer at a time
/// on the blocking pool (the atomic write and its fsync never run on a tokio worker, and no
/// lock is held while they do). The latest state is what is written.
pub struct Store {
    dir: PathBuf,
    state: Mutex<State>,
    writer: tokio::sync::Mutex<()>,
}

impl Store {
    pub fn new(dir: &Path, state: State) -> Store {
        Store {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Changes the state in memory only (written with the next `save`).
    pub fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut lock(&self.state))
    }

    /// Changes the state and writes it (0600, atomic, fsync).
    pub async fn save(&self, f: impl FnOnce(&mut State)) -> Result<()> {
        self.set(f);
        let _one_writer = self.writer.lock().await;
        let mut snapshot = self.get(State::clone);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || snapshot.save(&dir))
            .await
            .map_err(|e| Error::Internal(format!("the state writer stopped: {e}")))?
    }
}

/// A file name component: keep ids readable, drop anything else.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn state_path(state_dir: &Path, tenant: &str, subscription: &str) -> PathBuf {
    state_dir
        .join("state")
        .join(format!("{}_{}.json", clean(tenant), clean(subscription)))
}

impl State {
    pub fn new(tenant: &str, subscription: &str) -> State {
        State {
            version: VERSION,
            tenant_id: tenant.to_string(),
            subscription_id: subscription.to_string(),
            ..Default::default()
        }
    }

    /// The saved state, or a fresh one when there is none.
    pub fn load(state_dir: &Path, tenant: &str, subscription: &str) -> Result<State> {
        let p = state_path(state_dir, tenant, subscription);
        // A link at the name is refused (`O_NOFOLLOW`): its target is not a state of ours.
        let read = crate::safe_fs::open_read(&p).and_then(|mut f| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).map(|_| b)
        });
        match read {
            Ok(bytes) => {
                let s: State = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::local(
                        format!("state file {}", p.display()),
                        format!("damaged ({e}); move it away to start over"),
                    )
                })?;
                if s.version != VERSION {
                    return Err(Error::local(
                        format!("state file {}", p.display()),
                        format!(
                            "version {}, this spot-connect reads version {VERSION}: use the spot-connect that wrote it, or move the file away to start over",
                            s.version
                        ),
                    ));
                }
                if s.tenant_id != tenant || s.subscription_id != subscription {
                    return Err(Error::local(
                        format!("state file {}", p.display()),
                        "it belongs to another subscription",
                    ));
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(State::new(tenant, subscription))
            }
            Err(e) => Err(Error::local(
                format!("cannot read the state file {}", p.display()),
                e,
            )),
        }
    }

    /// Other subscriptions' states of the same tenant (to find the tenant's app and role).
    pub fn load_tenant_siblings(state_dir: &Path, tenant: &str, subscription: &str) -> Vec<State> {
        let dir = state_dir.join("state");
        let prefix = format!("{}_", clean(tenant));
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&prefix) || !name.ends_with(".json") {
                    continue;
                }
                if let Ok(s) = std::fs::read(e.path())
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice::<State>(&b).map_err(|_| ()))
                    && s.tenant_id == tenant
                    && s.subscription_id != subscription
                {
                    out.push(s);
                }
            }
        }
        out
    }

    /// Writes the state (0600, atomic).
    pub fn save(&mut self, state_dir: &Path) -> Result<()> {
        let p = state_path(state_dir, &self.tenant_id, &self.subscription_id);
        let dir = p.parent().expect("state path has a parent");
        ensure_private_dir(state_dir)
            .and_then(|_| ensure_private_dir(dir))
            .map_err(|e| {
                Error::local(
                    format!("cannot create the state directory {}", dir.display()),
                    e,
                )
            })?;
        self.updated_at = Some(OffsetDateTime::now_utc());
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        write_private(&p, &bytes)
            .map_err(|e| Error::local(format!("cannot write state file {}", p.display()), e))
    }
}

/// Saves `r` as `<state_dir>/reports/<UTC time>-<subscription>.json` (0600), with its own
/// path in it (`report_path`), and returns the path.
pub fn save_report(state_dir: &Path, r: &mut super::model::Report) -> std::io::Result<PathBuf> {
    let dir = state_dir.join("reports");
    ensure_private_dir(state_dir)?;
    ensure_private_dir(&dir)?;
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    let path = dir.join(format!("{stamp}-{}.json", clean(&r.subscription_id)));
    r.report_path = Some(path.clone());
    let bytes = serde_json::to_vec_pretty(&*r).map_err(std::io::Error::other)?;
    write_private(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_private_and_keyed_by_tenant_and_subscription() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::load(d.path(), "t-1", "s-1").unwrap();
        assert_eq!(s, State::new("t-1", "s-1"));
        s.app_object_id = Some("obj".into());
        s.secret = Some(SecretRecord {
            key_id: "k".into(),
            end_date_time: time::macros::datetime!(2027-01-01 00:00 UTC),
            handed_to_spot: false,
        });
        s.steps.insert(Step::AppRegistration, StepStatus::Done);
        s.save(d.path()).unwrap();
        let back = State::load(d.path(), "t-1", "s-1").unwrap();
        assert_eq!(back, s);
        let p = state_path(d.path(), "t-1", "s-1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A sibling subscription of the same tenant is found; another tenant's is not.
        let mut other = State::new("t-1", "s-2");
        other.role_definition_id = Some("/r/1".into());
        other.save(d.path()).unwrap();
        State::new("t-2", "s-3").save(d.path()).unwrap();
        let sib = State::load_tenant_siblings(d.path(), "t-1", "s-1");
        assert_eq!(sib.len(), 1);
        assert_eq!(sib[0].role_definition_id.as_deref(), Some("/r/1"));
    }

    #[test]
    fn step_status_keeps_the_file_format_of_earlier_versions() {
        let old = r#"{"version":1,"tenant_id":"t","subscription_id":"s","steps":{"app_registration":"done","connect_spot":"failed"}}"#;
        let s: State = serde_json::from_str(old).unwrap();
        assert_eq!(s.steps[&Step::AppRegistration], StepStatus::Done);
        assert_eq!(s.steps[&Step::ConnectSpot], StepStatus::Failed);
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["steps"]["connect_spot"], "failed");
    }

    #[tokio::test]
    async fn the_store_writes_the_latest_state_off_the_workers() {
        let d = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::new(d.path(), State::new("t", "s")));
        let mut tasks = vec![];
        for i in 0..8 {
            let st = store.clone();
            tasks.push(tokio::spawn(async move {
                st.save(|s| s.orphan_key_ids.push(format!("k{i}"))).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let back = State::load(d.path(), "t", "s").unwrap();
        assert_eq!(back.orphan_key_ids.len(), 8);
    }

    #[test]
    fn only_the_record_of_our_create_call_makes_an_account_created() {
        let mut s = State::new("t", "s");
        // A state file that merely names an account (edited, copied, an earlier version's).
        s.spot_account_id = Some("act-1".into());
        assert!(!s.created("act-1", "default", None, None));
        assert!(!s.chosen("act-1"));
        s.spot_account_origin = Some(AccountOrigin::Created {
            account_id: "act-1".into(),
            name: "Contoso Dev".into(),
        });
        assert_eq!(s.created_account(), Some("act-1"));
        assert!(s.created("act-1", "Contoso Dev", None, None));
        // Renamed since: still ours only when its credentials name our app.
        assert!(!s.created("act-1", "renamed", Some("app-x"), Some("app-ours")));
        assert!(s.created("act-1", "renamed", Some("APP-OURS"), Some("app-ours")));
        // Credentials of another app: not ours, even under the name we gave it.
        assert!(!s.created("act-1", "Contoso Dev", Some("app-x"), Some("app-ours")));
        // Another id is never ours by this record.
        assert!(!s.created("act-2", "Contoso Dev", Some("app-ours"), Some("app-ours")));
        s.spot_account_origin = Some(AccountOrigin::Chosen {
            account_id: "act-1".into(),
        });
        assert!(s.chosen("act-1") && !s.created("act-1", "Contoso Dev", None, None));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["spot_account_origin"]["kind"], "chosen");
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_fresh_start() {
        let d = tempfile::tempdir().unwrap();
        let p = state_path(d.path(), "t", "s");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"{not json").unwrap();
        assert!(State::load(d.path(), "t", "s").is_err());
    }

    #[test]
    fn a_state_file_of_an_unknown_version_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::new("t", "s");
        s.version = VERSION + 1;
        s.save(d.path()).unwrap();
        let e = State::load(d.path(), "t", "s").unwrap_err().to_string();
        let p = state_path(d.path(), "t", "s");
        assert!(
            e.contains(&p.display().to_string()) && e.contains(&format!("version {}", VERSION + 1)),
            "{e}"
        );
    }
}
