//! The operator's sign-in kept between commands (issue 21 §13): `plan` then `apply` sign in
//! once. What is kept is the refresh token of the interactive sign-in (device code or browser)
//! with who signed in, in the OS keyring only — never in a file: on Linux the kernel's keyutils
//! (the session keyring, linked to the user's persistent keyring: kernel memory, gone at reboot;
//! docs/architecture.md, "The kept sign-in"), the Keychain on macOS, the Credential Manager on
//! Windows. Where no keyring is usable (keyutils refused by a container's seccomp policy, say),
//! the log says so once and every command signs in as before.
//!
//! One keyring entry per service name (default [`DEFAULT_SERVICE`]; tests use their own), whose
//! value is a small JSON document: the sign-ins kept, one per (login origin, client id, sign-in
//! tenant). `spot-connect logout` removes the entry. Nothing here logs or Debug-prints a token.

use crate::secret::Secret;
use serde_json::{Map, Value, json};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// The keyring service name of the kept sign-ins (the entry's user name is [`ENTRY_USER`]).
pub const DEFAULT_SERVICE: &str = "spot-connect";

/// The one entry of a service.
const ENTRY_USER: &str = "azure-sign-in";

/// Sign-ins kept per service at most (the oldest go first): a simulator on a new port each run
/// would otherwise grow the entry without end.
pub const MAX_KEPT: usize = 8;

/// Where the value lives: the OS keyring, or (unit tests) a stand-in.
pub trait Store: Send + Sync {
    /// The value, or None when nothing is kept. Err: the keyring cannot be used (why).
    fn get(&self) -> Result<Option<Zeroizing<String>>, String>;
    fn set(&self, value: &str) -> Result<(), String>;
    /// Ok(true): removed; Ok(false): nothing was kept.
    fn delete(&self) -> Result<bool, String>;
}

/// The OS keyring through the `keyring` crate.
struct OsKeyring {
    service: String,
}

impl OsKeyring {
    fn entry(&self) -> Result<keyring::Entry, String> {
        #[cfg(target_os = "linux")]
        ensure_session_keyring();
        keyring::Entry::new(&self.service, ENTRY_USER)
            .map_err(|e| format!("the keyring cannot be opened: {e}"))
    }
}

/// A process without a session keyring of its own (a container's `exec`, a cron job or a
/// service started without pam_keyinit) is handed the user-session keyring by the `keyring`
/// crate's lookup, while its link to the user's persistent keyring goes into a session keyring
/// the kernel creates for that call: a key written there is never found again by the next
/// process (seen here: plan, then a second plan asked for a device code again). Making sure the
/// process has a session keyring first (a new one, gone with the process, when it had none)
/// puts both in the same place; an SSH login's own session keyring (pam_keyinit) is kept.
#[cfg(target_os = "linux")]
fn ensure_session_keyring() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = linux_keyutils::KeyRing::from_special_id(
            linux_keyutils::KeyRingIdentifier::Session,
            true,
        ) {
            tracing::debug!(error = ?e, "no session keyring");
        }
    });
}

impl Store for OsKeyring {
    fn get(&self) -> Result<Option<Zeroizing<String>>, String> {
        match self.entry()?.get_password() {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            // A value that is not ours to read (not UTF-8): treated as nothing kept; the next
            // sign-in replaces it.
            Err(keyring::Error::BadEncoding(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn set(&self, value: &str) -> Result<(), String> {
        self.entry()?.set_password(value).map_err(|e| e.to_string())
    }

    fn delete(&self) -> Result<bool, String> {
        match self.entry()?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One kept sign-in.
#[derive(Clone)]
pub struct KeptSignIn {
    pub refresh_token: Secret,
    pub username: Option<String>,
    pub home_tenant: Option<String>,
}

impl fmt::Debug for KeptSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptSignIn")
            .field("refresh_token", &self.refresh_token)
            .field("username", &self.username)
            .field("home_tenant", &self.home_tenant)
            .finish()
    }
}

/// The kept sign-ins of one keyring service.
pub struct Keyring {
    service: String,
    store: Box<dyn Store>,
    /// The keyring failed once: said in the log, not tried again by this process.
    unusable: AtomicBool,
    /// One read-modify-write of the entry at a time within this process.
    write: Mutex<()>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("service", &self.service)
            .field("unusable", &self.unusable.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The key of a sign-in inside the entry: the identity platform, the client and the tenant
/// signed in to (`organizations` or `--tenant`).
pub fn sign_in_key(login: &str, client_id: &str, tenant: &str) -> String {
    format!("{} {client_id} {tenant}", login.trim_end_matches('/'))
}

impl Keyring {
    /// The OS keyring, under `service`.
    pub fn os(service: &str) -> Keyring {
        Self::with_store(
            service,
            Box::new(OsKeyring {
                service: service.to_string(),
            }),
        )
    }

    pub fn with_store(service: &str, store: Box<dyn Store>) -> Keyring {
        Keyring {
            service: service.to_string(),
            store,
            unusable: AtomicBool::new(false),
            write: Mutex::new(()),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Notes a failure of the keyring: the first one goes to the log, later calls are skipped.
    fn failed(&self, what: &str, why: &str) {
        if !self.unusable.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                service = %self.service,
                "no usable keyring ({what}: {why}): the sign-in is not kept, each command signs in"
            );
        }
    }

    fn read(&self) -> Option<Map<String, Value>> {
        if self.unusable.load(Ordering::SeqCst) {
            return None;
        }
        match self.store.get() {
            Ok(None) => Some(Map::new()),
            Ok(Some(v)) => Some(match serde_json::from_str::<Value>(&v) {
                Ok(Value::Object(mut doc)) if doc.get("v") == Some(&json!(1)) => {
                    match doc.remove("sign_ins") {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    }
                }
                // Not a document of ours (or of a later version): replaced by the next write.
                _ => Map::new(),
            }),
            Err(why) => {
                self.failed("reading", &why);
                None
            }
        }
    }

    /// The sign-in kept under `key`, if any (nothing when the keyring cannot be used).
    pub fn load(&self, key: &str) -> Option<KeptSignIn> {
        let map = self.read()?;
        let v = map.get(key)?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let rt = text("refresh_token").filter(|t| !t.is_empty())?;
        Some(KeptSignIn {
            refresh_token: Secret::new(rt),
            username: text("username"),
            home_tenant: text("home_tenant"),
        })
    }

    fn write_map(&self, map: Map<String, Value>) {
        let doc = if map.is_empty() {
            None
        } else {
            Some(Zeroizing::new(
                json!({"v": 1, "sign_ins": Value::Object(map)}).to_string(),
            ))
        };
        let result = match doc {
            Some(d) => self.store.set(&d),
            None => self.store.delete().map(|_| ()),
        };
        if let Err(why) = result {
            self.failed("writing", &why);
        }
    }

    /// Keeps `kept` under `key` (replacing what was there).
    pub fn store(&self, key: &str, kept: &KeptSignIn) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut map) = self.read() else {
            return;
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        map.insert(
            key.to_string(),
            json!({
                "refresh_token": kept.refresh_token.expose(),
                "username": kept.username,
                "home_tenant": kept.home_tenant,
                "stored_at": now,
            }),
        );
        while map.len() > MAX_KEPT {
            let oldest = map
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .min_by_key(|(_, v)| v.get("stored_at").and_then(Value::as_i64).unwrap_or(0))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        self.write_map(map);
        // The map held the token in plain Strings: serde_json's values are not zeroized, but
        // they are dropped here, right after the write.
    }

    /// Forgets the sign-in under `key` (the identity platform refused it).
    pub fn forget(&self, key: &str) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut map) = self.read() else {
            return;
        };
        if map.remove(key).is_some() {
            self.write_map(map);
        }
    }

    /// `spot-connect logout`: removes every sign-in kept under this service. Ok(true): removed,
    /// Ok(false): nothing was kept; Err: the keyring cannot be used (why).
    pub fn forget_all(&self) -> Result<bool, String> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.store.delete()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A keyring in memory, or one that always fails.
    #[derive(Clone, Default)]
    pub(crate) struct MemStore {
        pub value: Arc<Mutex<Option<String>>>,
        pub broken: bool,
        pub calls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Store for MemStore {
        fn get(&self) -> Result<Option<Zeroizing<String>>, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.broken {
                return Err("Operation not permitted (os error 1)".into());
            }
            Ok(self.value.lock().unwrap().clone().map(Zeroizing::new))
        }
        fn set(&self, value: &str) -> Result<(), String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.broken {
                return Err("Operation not permitted (os error 1)".into());
            }
            *self.value.lock().unwrap() = Some(value.to_string());
            Ok(())
        }
        fn delete(&self) -> Result<bool, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.broken {
                return Err("Operation not permitted (os error 1)".into());
            }
            Ok(self.value.lock().unwrap().take().is_some())
        }
    }

    fn kept(rt: &str) -> KeptSignIn {
        KeptSignIn {
            refresh_token: Secret::new(rt),
            username: Some("operator@contoso.example".into()),
            home_tenant: Some("c0c0".into()),
        }
    }

    #[test]
    fn kept_sign_ins_are_stored_per_key_replaced_forgotten_and_all_removed() {
        let mem = MemStore::default();
        let k = Keyring::with_store("t", Box::new(mem.clone()));
        let a = sign_in_key("https://login.example/", "client", "organizations");
        let b = sign_in_key("https://login.example", "client", "fab0");
        assert_eq!(a, "https://login.example client organizations");
        assert!(k.load(&a).is_none());
        k.store(&a, &kept("rt-a1"));
        k.store(&b, &kept("rt-b"));
        k.store(&a, &kept("rt-a2"));
        let got = k.load(&a).unwrap();
        assert_eq!(got.refresh_token.expose(), "rt-a2");
        assert_eq!(got.username.as_deref(), Some("operator@contoso.example"));
        assert_eq!(k.load(&b).unwrap().refresh_token.expose(), "rt-b");
        // Debug shows no token.
        assert!(!format!("{got:?} {k:?}").contains("rt-a2"));
        k.forget(&a);
        assert!(k.load(&a).is_none());
        assert!(k.load(&b).is_some());
        k.forget(&b);
        assert!(
            mem.value.lock().unwrap().is_none(),
            "an empty entry is removed"
        );
        k.store(&a, &kept("rt-a3"));
        assert_eq!(k.forget_all(), Ok(true));
        assert_eq!(k.forget_all(), Ok(false));
        assert!(k.load(&a).is_none());
    }

    #[test]
    fn at_most_max_kept_sign_ins_are_kept_the_newest_and_the_one_stored() {
        let mem = MemStore::default();
        let k = Keyring::with_store("t", Box::new(mem.clone()));
        for i in 0..MAX_KEPT + 3 {
            k.store(&format!("key{i}"), &kept(&format!("rt{i}")));
        }
        let doc: Value =
            serde_json::from_str(mem.value.lock().unwrap().as_deref().unwrap()).unwrap();
        assert_eq!(doc["sign_ins"].as_object().unwrap().len(), MAX_KEPT);
        let last = format!("key{}", MAX_KEPT + 2);
        assert_eq!(
            k.load(&last).unwrap().refresh_token.expose(),
            format!("rt{}", MAX_KEPT + 2)
        );
    }

    #[test]
    fn a_value_not_of_ours_is_nothing_kept_and_replaced() {
        let mem = MemStore::default();
        *mem.value.lock().unwrap() = Some("not json".into());
        let k = Keyring::with_store("t", Box::new(mem.clone()));
        assert!(k.load("x").is_none());
        k.store("x", &kept("rt"));
        assert_eq!(k.load("x").unwrap().refresh_token.expose(), "rt");
    }

    #[test]
    fn a_broken_keyring_is_tried_once_then_left_alone() {
        let mem = MemStore {
            broken: true,
            ..Default::default()
        };
        let k = Keyring::with_store("t", Box::new(mem.clone()));
        assert!(k.load("x").is_none());
        k.store("x", &kept("rt"));
        k.forget("x");
        assert!(k.load("x").is_none());
        assert_eq!(mem.calls.load(Ordering::SeqCst), 1, "one try, then none");
        assert!(
            k.forget_all().is_err(),
            "logout says the keyring is unusable"
        );
    }
}
