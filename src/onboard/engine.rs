//! The engine behind `onboard::plan` and `onboard::apply`.
//!
//! Dependencies (not the sidebar order) decide what runs when:
//! ```text
//! Spot account ────────────────────────────────────────────┐
//! App registration ─┬─ service principal ─┐                 ├─ Connect to Spot ─ orphan cleanup
//!                   └─ client secret ─────┼─────────────────┤
//! Custom role ────────────────────────────┴─ role assignment┘
//! ```

use super::model::{
    Drift, ErrorInfo, ObjectRef, Outcome, Plan, PlanAction, PlanItem, Progress, Report, Step,
    StepEvent, Verdict,
};
use super::policy::{self, Policy, ROLE_MARKER};
use super::retry::{Backoff, is_propagation, is_transient};
use super::state::{SecretRecord, State};
use super::{Session, Settings, SpotAccountChoice, Target};
use crate::azure::arm::{self, Arm, AssignmentOutcome, Permission, RoleAssignment, RoleDefinition};
use crate::azure::graph::{
    APP_REGISTRATION_APP_ROLES, APP_REGISTRATION_ROLES, AppRoleAssignment, Application,
    DirectoryRole, Graph, ServicePrincipal,
};
use crate::cli::AuthMethod;
use crate::error::{ApiError, Error, ErrorClass, Result};
use crate::secret::Secret;
use crate::spot::{AzureCredentials, AzureCredentialsInfo, SpotAccount};
use futures::FutureExt;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

const NEED_ROLE_DEF_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
const NEED_ROLE_ASSIGN_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
/// A secret closer than this to its end is replaced.
const EXPIRY_MARGIN: time::Duration = time::Duration::days(30);
const PROPAGATION: &str = "waiting for Azure to propagate";

// ---------------------------------------------------------------------------------------------
// Facts: what exists, looked up before anything is written.

enum AppFact {
    Ours(Application),
    Missing,
    /// Same-named apps without our marker.
    Foreign(usize),
}

enum RoleFact {
    Ours(RoleDefinition),
    Missing,
    Foreign(RoleDefinition),
}

enum AccountFact {
    Reuse(SpotAccount, String),
    Create(String),
    Blocked(String, Option<ApiError>),
}

/// Whether the caller may register applications in the tenant (Entra), checked before writing.
enum AppRights {
    Allowed(String),
    Denied(String),
    /// Could not be read (no permission to read the policy, a managed identity, …): not blocking.
    Unknown(String),
}

/// What to ask for when app registration is not allowed.
const APP_RIGHTS_HINT: &str =
    "ask for the Application Developer role or for 'Users can register applications'";

struct Facts {
    account: AccountFact,
    app_rights: AppRights,
    spot_creds: Option<AzureCredentialsInfo>,
    /// None: the caller's permissions could not be read (not blocking).
    permissions: Option<Vec<Permission>>,
    app: std::result::Result<AppFact, Error>,
    sp: Option<ServicePrincipal>,
    role: RoleFact,
    drift: Option<Drift>,
    assignment: Option<RoleAssignment>,
    /// Some(record): the recorded secret is with Spot, present on the app and not expiring.
    secret_reuse: Option<SecretRecord>,
    secret_reason: String,
}

struct Ctx<'a> {
    session: &'a Session,
    target: &'a Target,
    settings: &'a Settings,
    graph: Graph,
    arm: Arm,
    policy: Policy,
    app_name: String,
    role_name: String,
    scope: String,
    password_name: String,
    backoff: Backoff,
    tx: Option<UnboundedSender<Progress>>,
    state: Mutex<State>,
    objects: Mutex<Vec<ObjectRef>>,
    durations: Mutex<Vec<(Step, u64)>>,
    started: Mutex<HashSet<Step>>,
    first_error: Mutex<Option<ErrorInfo>>,
    /// Set when this run wrote something Azure may not have propagated yet.
    wrote_azure: std::sync::atomic::AtomicBool,
    /// Set when secrets of ours may have been left behind (the app existed before this run,
    /// or an addPassword reply was lost): look for them after connecting.
    sweep: std::sync::atomic::AtomicBool,
    /// `plan`: look everywhere. `apply` leaves the tenant-wide role search to the role step
    /// (off the critical path: a same-named role is then found when the create says it exists).
    full_lookup: bool,
}

impl<'a> Ctx<'a> {
    fn new(
        session: &'a Session,
        target: &'a Target,
        settings: &'a Settings,
        tx: Option<UnboundedSender<Progress>>,
    ) -> Result<Ctx<'a>> {
        let tenant = &target.tenant_id;
        let state = State::load(&session.state_dir, tenant, &target.subscription_id)?;
        let full_lookup = tx.is_none();
        Ok(Ctx {
            session,
            target,
            settings,
            graph: Graph::new(
                session.http.clone(),
                &session.endpoints.graph,
                session.auth.clone(),
                tenant,
            ),
            arm: Arm::new(
                session.http.clone(),
                &session.endpoints.arm,
                session.auth.clone(),
                tenant,
            ),
            policy: Policy::load(settings.policy_file.as_deref())?,
            app_name: settings.app_name_for(tenant),
            role_name: settings.role_name(),
            scope: format!("/subscriptions/{}", target.subscription_id),
            password_name: format!("spot-connect {}", target.subscription_id),
            backoff: Backoff::default(),
            tx,
            state: Mutex::new(state),
            objects: Mutex::new(Vec::new()),
            durations: Mutex::new(Vec::new()),
            started: Mutex::new(HashSet::new()),
            first_error: Mutex::new(None),
            wrote_azure: std::sync::atomic::AtomicBool::new(false),
            sweep: std::sync::atomic::AtomicBool::new(false),
            full_lookup,
        })
    }

    fn emit(&self, step: Step, event: StepEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Progress::Step {
                subscription: Some(self.target.subscription_id.clone()),
                step,
                event,
            });
        }
    }

    fn state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("state lock"))
    }

    /// Changes the state and writes it (0600, atomic).
    fn checkpoint(&self, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut s = self.state.lock().expect("state lock");
        f(&mut s);
        s.save(&self.session.state_dir)
    }

    fn record(&self, step: Step, object: &str, name: &str, id: &str, outcome: Outcome) {
        self.objects.lock().expect("objects lock").push(ObjectRef {
            step,
            object: object.into(),
            name: name.into(),
            id: id.into(),
            outcome,
        });
    }

    fn scope_eq(&self, s: &str) -> bool {
        s.trim_end_matches('/').eq_ignore_ascii_case(&self.scope)
    }

    /// Runs one step: Started, then Finished or Failed, wall time, step status in the state.
    async fn step<T>(
        &self,
        step: Step,
        detail: String,
        fut: impl Future<Output = Result<(T, Outcome, Option<String>, String)>>,
    ) -> Result<T> {
        self.started.lock().expect("lock").insert(step);
        self.emit(step, StepEvent::Started { detail });
        let t0 = Instant::now();
        let r = fut.await;
        self.durations
            .lock()
            .expect("lock")
            .push((step, t0.elapsed().as_millis() as u64));
        let key = serde_json::to_value(step)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match r {
            Ok((v, outcome, id, detail)) => {
                let _ = self.checkpoint(|s| {
                    s.steps.insert(key, "done".into());
                });
                self.emit(
                    step,
                    StepEvent::Finished {
                        outcome,
                        id,
                        detail,
                    },
                );
                Ok(v)
            }
            Err(e) => {
                let _ = self.checkpoint(|s| {
                    s.steps.insert(key, "failed".into());
                });
                let mut info = ErrorInfo::from(&e);
                info.summary = format!("{}: {}", step.label(), info.summary);
                self.first_error
                    .lock()
                    .expect("lock")
                    .get_or_insert(info.clone());
                self.emit(step, StepEvent::Failed { error: info });
                Err(e)
            }
        }
    }

    /// Calls `f` again while Azure propagates (or `also(e)`), with capped backoff, reporting
    /// each wait as `StepEvent::Waiting`.
    async fn propagate<T, F, Fut>(
        &self,
        step: Step,
        also: impl Fn(&Error) -> bool,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if is_propagation(&e) || also(&e) => {
                    attempt += 1;
                    let Some(wait) = self.backoff.wait(attempt, start.elapsed()) else {
                        return Err(e);
                    };
                    tracing::info!(step = ?step, attempt, wait_ms = wait.as_millis() as u64, error = %e, "waiting for propagation");
                    self.emit(
                        step,
                        StepEvent::Waiting {
                            reason: PROPAGATION.into(),
                            attempt,
                            next_in: wait,
                        },
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A non-idempotent write: on a transient failure (it may have been applied) look up first,
    /// and write again only when the lookup finds nothing.
    async fn write_or_find<T, W, WF, L, LF>(&self, mut write: W, mut lookup: L) -> Result<T>
    where
        W: FnMut() -> WF,
        WF: Future<Output = Result<T>>,
        L: FnMut() -> LF,
        LF: Future<Output = Result<Option<T>>>,
    {
        let mut tries = 0u32;
        loop {
            match write().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && tries < 5 => {
                    tries += 1;
                    tracing::info!(error = %e, tries, "write failed in flight: looking up before writing again");
                    tokio::time::sleep(Duration::from_millis(300 * u64::from(tries))).await;
                    if let Some(v) = self.retry_read(&mut lookup).await? {
                        return Ok(v);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A read (or an idempotent write: a PUT under a deterministic name), retried on transient
    /// errors beyond what the HTTP layer already does.
    async fn retry_read<T, L, LF>(&self, lookup: &mut L) -> Result<T>
    where
        L: FnMut() -> LF,
        LF: Future<Output = Result<T>>,
    {
        let mut tries = 0u32;
        loop {
            match lookup().await {
                Err(e) if is_transient(&e) && tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
                }
                r => return r,
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Lookups

    async fn lookup_spot(&self) -> Result<(AccountFact, Option<AzureCredentialsInfo>)> {
        let spot = &self.session.spot;
        let accounts = match self.retry_read(&mut || spot.list_accounts()).await {
            Ok(a) => a,
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => {
                return Ok((
                    AccountFact::Blocked(
                        format!("the Spot token was refused ({} {})", e.status, e.code),
                        Some(e),
                    ),
                    None,
                ));
            }
            Err(e) => return Err(e),
        };
        let sub = &self.target.subscription_id;
        let connected = accounts.iter().find(|a| {
            a.provider_external_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(sub))
        });
        let (recorded, pending) =
            self.state(|s| (s.spot_account_id.clone(), s.spot_account_pending.clone()));
        let fact = match &self.settings.spot_account {
            SpotAccountChoice::Existing(id) => {
                match accounts.iter().find(|a| &a.account_id == id) {
                    None => AccountFact::Blocked(
                        format!("Spot account {id} is not in your organization"),
                        None,
                    ),
                    Some(a) => match &a.provider_external_id {
                        Some(p) if !p.eq_ignore_ascii_case(sub) => AccountFact::Blocked(
                            format!("Spot account {id} is already connected to subscription {p}"),
                            None,
                        ),
                        _ => AccountFact::Reuse(a.clone(), "the account you chose".into()),
                    },
                }
            }
            SpotAccountChoice::Auto | SpotAccountChoice::New => {
                if let Some(a) = connected {
                    AccountFact::Reuse(a.clone(), "already connected to this subscription".into())
                } else if let Some(a) = recorded.as_ref().and_then(|r| {
                    accounts
                        .iter()
                        .find(|a| &a.account_id == r && a.provider_external_id.is_none())
                }) {
                    AccountFact::Reuse(a.clone(), "created by an earlier run".into())
                } else if let Some(a) = pending.as_ref().and_then(|n| {
                    accounts
                        .iter()
                        .find(|a| &a.name == n && a.provider_external_id.is_none())
                }) {
                    AccountFact::Reuse(a.clone(), "created by an interrupted run".into())
                } else {
                    AccountFact::Create(self.account_name())
                }
            }
        };
        let creds = match &fact {
            AccountFact::Reuse(a, _) => {
                let id = a.account_id.clone();
                self.retry_read(&mut || spot.get_azure_credentials(&id))
                    .await?
            }
            _ => None,
        };
        Ok((fact, creds))
    }

    /// A new Spot account is named after the subscription (Spot wants a letter in the name).
    fn account_name(&self) -> String {
        let n = self.target.subscription_name.trim();
        let n = if n.is_empty() {
            self.target.subscription_id.as_str()
        } else {
            n
        };
        if n.chars().any(|c| c.is_ascii_alphabetic()) {
            n.to_string()
        } else {
            format!("azure-{n}")
        }
    }

    async fn lookup_permissions(&self) -> Result<Option<Vec<Permission>>> {
        match self
            .retry_read(&mut || self.arm.permissions(&self.scope))
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(Error::Api(e))
                if e.has_code("SubscriptionNotFound") || e.has_code("InvalidSubscriptionId") =>
            {
                Err(Error::Other(format!(
                    "subscription {} was not found in tenant {} ({e})",
                    self.target.subscription_id, self.target.tenant_id
                )))
            }
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Ok(Some(vec![])),
            Err(Error::Api(e)) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The Entra right to register applications: for a user, the tenant's "Users can register
    /// applications" (authorizationPolicy) or an app-management directory role; for a service
    /// principal signed in with a secret, Graph's Application.ReadWrite.All/OwnedBy app role or
    /// such a directory role. What cannot be read is "unknown", never a block.
    async fn lookup_app_rights(&self) -> AppRights {
        match self.session.auth.method() {
            AuthMethod::DeviceCode | AuthMethod::AzureCli => {
                let (mut policy_f, mut roles_f) = (
                    || self.graph.users_may_create_apps(),
                    || self.graph.my_directory_roles(),
                );
                let (policy, roles) = tokio::join!(
                    self.retry_read(&mut policy_f),
                    self.retry_read(&mut roles_f)
                );
                user_app_rights(&self.target.tenant_id, policy, roles)
            }
            AuthMethod::ClientSecret => {
                let Some(client_id) = self.session.auth.client_id() else {
                    return AppRights::Unknown(
                        "could not check the right to register applications; the write will tell"
                            .into(),
                    );
                };
                let sp = match self
                    .retry_read(&mut || self.graph.get_service_principal_by_app_id(&client_id))
                    .await
                {
                    Ok(Some(sp)) => sp,
                    Ok(None) => {
                        return AppRights::Unknown(format!(
                            "could not check the right to register applications (no service principal for {client_id} in this tenant); the write will tell"
                        ));
                    }
                    Err(e) => return AppRights::Unknown(rights_unknown(&e)),
                };
                let (mut grants_f, mut roles_f) = (
                    || self.graph.app_role_assignments(&sp.id),
                    || self.graph.service_principal_directory_roles(&sp.id),
                );
                let (grants, roles) = tokio::join!(
                    self.retry_read(&mut grants_f),
                    self.retry_read(&mut roles_f)
                );
                service_principal_app_rights(&client_id, grants, roles)
            }
            AuthMethod::ManagedIdentity => AppRights::Unknown(
                "could not check a managed identity's right to register applications; the write will tell".into(),
            ),
        }
    }

    /// Ids recorded by earlier runs: this subscription's `own` first, then those `pick`
    /// takes from the state of the tenant's other subscriptions.
    fn recorded_ids(
        &self,
        own: Option<String>,
        pick: impl FnMut(State) -> Option<String>,
    ) -> Vec<String> {
        own.into_iter()
            .chain(
                State::load_tenant_siblings(
                    &self.session.state_dir,
                    &self.target.tenant_id,
                    &self.target.subscription_id,
                )
                .into_iter()
                .filter_map(pick),
            )
            .collect()
    }

    async fn lookup_app(&self) -> Result<(AppFact, Option<ServicePrincipal>)> {
        // The id recorded by an earlier run (this subscription or another one of the tenant)
        // first: a list right after a create may not show the app yet.
        let ids = self.recorded_ids(self.state(|s| s.app_object_id.clone()), |s| {
            s.app_object_id
                .filter(|_| s.app_name.as_deref() == Some(self.app_name.as_str()))
        });
        let mut found = None;
        for id in ids {
            if let Some(a) = self
                .retry_read(&mut || self.graph.get_application(&id))
                .await?
                && a.is_ours()
                && a.display_name == self.app_name
            {
                found = Some(a);
                break;
            }
        }
        let fact = match found {
            Some(a) => AppFact::Ours(a),
            None => {
                let apps = self
                    .retry_read(&mut || self.graph.find_applications(&self.app_name))
                    .await?;
                let (ours, foreign): (Vec<_>, Vec<_>) = apps.into_iter().partition(|a| a.is_ours());
                match ours.into_iter().next() {
                    Some(a) => AppFact::Ours(a),
                    None if !foreign.is_empty() => AppFact::Foreign(foreign.len()),
                    None => AppFact::Missing,
                }
            }
        };
        let sp = match &fact {
            AppFact::Ours(a) => {
                let app_id = a.app_id.clone();
                self.retry_read(&mut || self.graph.get_service_principal_by_app_id(&app_id))
                    .await?
            }
            _ => None,
        };
        Ok((fact, sp))
    }

    async fn lookup_role(&self) -> Result<RoleFact> {
        let name_eq =
            |r: &RoleDefinition| r.properties.role_name.eq_ignore_ascii_case(&self.role_name);
        // Role names are unique per tenant: ours may be assignable at other subscriptions only.
        // Ids recorded by earlier runs (this subscription or others of the tenant) first.
        let ids = self.recorded_ids(self.state(|s| s.role_definition_id.clone()), |s| {
            s.role_definition_id
        });
        let at_scope = async {
            self.retry_read(&mut || self.arm.find_role_definitions(&self.scope, &self.role_name))
                .await
                .map(|v| v.into_iter().find(|r| name_eq(r)))
        };
        let mut found = if ids.is_empty() && self.full_lookup {
            // Nothing recorded (first run here, or the state is lost): search the tenant at
            // the same time as the subscription, not after it.
            let (here, elsewhere) = tokio::join!(at_scope, self.find_role_elsewhere());
            here?.or(elsewhere)
        } else {
            at_scope.await?
        };
        // Last, the GUID a run of ours would have written the role under (tenant scope): a
        // role of ours assignable only at other subscriptions is found without a tenant-wide
        // search, and a PUT of that GUID never replaces its assignable scopes with ours.
        let by_guid = format!(
            "/providers/Microsoft.Authorization/roleDefinitions/{}",
            policy::role_definition_guid(&self.target.tenant_id, &self.role_name)
        );
        if found.is_none() {
            for id in ids.iter().chain(std::iter::once(&by_guid)) {
                if let Ok(Some(r)) = self
                    .retry_read(&mut || self.arm.get_role_definition(id))
                    .await
                    && name_eq(&r)
                {
                    found = Some(r);
                    break;
                }
            }
        }
        if found.is_none() && !ids.is_empty() && self.full_lookup {
            found = self.find_role_elsewhere().await;
        }
        Ok(match found {
            None => RoleFact::Missing,
            Some(r) if is_our_role(&r) => RoleFact::Ours(r),
            Some(r) => RoleFact::Foreign(r),
        })
    }

    async fn lookup_assignment(
        &self,
        sp: &ServicePrincipal,
        role: &RoleDefinition,
    ) -> Result<Option<RoleAssignment>> {
        let list = self
            .retry_read(&mut || self.arm.list_role_assignments(&self.scope, &sp.id))
            .await?;
        Ok(list.into_iter().find(|a| {
            arm::same_role(&a.properties.role_definition_id, &role.id)
                && a.properties.principal_id.eq_ignore_ascii_case(&sp.id)
                && a.properties
                    .scope
                    .as_deref()
                    .is_none_or(|s| self.scope_eq(s))
        }))
    }

    async fn facts(&self) -> Result<Facts> {
        let (spot, perms, app, role, app_rights) = tokio::join!(
            self.lookup_spot(),
            self.lookup_permissions(),
            self.lookup_app(),
            self.lookup_role(),
            self.lookup_app_rights()
        );
        let (account, spot_creds) = spot?;
        let permissions = perms?;
        let role = role?;
        let (app, sp) = match app {
            Ok((a, sp)) => (Ok(a), sp),
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => (Err(Error::Api(e)), None),
            Err(e) => return Err(e),
        };
        let drift = match &role {
            RoleFact::Ours(r) | RoleFact::Foreign(r) => Some(policy::drift(
                &self.policy.actions,
                &r.properties.permissions,
            )),
            RoleFact::Missing => None,
        };
        let assignment = match (&sp, &role) {
            (Some(sp), RoleFact::Ours(r)) => self.lookup_assignment(sp, r).await?,
            _ => None,
        };
        let (secret_reuse, secret_reason) =
            self.secret_decision(&app, &account, spot_creds.as_ref());
        Ok(Facts {
            account,
            app_rights,
            spot_creds,
            permissions,
            app,
            sp,
            role,
            drift,
            assignment,
            secret_reuse,
            secret_reason,
        })
    }

    fn secret_decision(
        &self,
        app: &std::result::Result<AppFact, Error>,
        account: &AccountFact,
        creds: Option<&AzureCredentialsInfo>,
    ) -> (Option<SecretRecord>, String) {
        let Ok(AppFact::Ours(app)) = app else {
            return (None, "a new app registration needs a secret".into());
        };
        let AccountFact::Reuse(acct, _) = account else {
            return (None, "a new secret for the new Spot account".into());
        };
        let spot_has_it = creds.is_some_and(|c| {
            c.client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
                && c.subscription_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&self.target.subscription_id))
        });
        if !spot_has_it {
            return (
                None,
                format!(
                    "Spot account {} has no credentials of this app for this subscription",
                    acct.account_id
                ),
            );
        }
        let rec = self.state(|s| s.secret.clone());
        let now = OffsetDateTime::now_utc();
        // The secret Spot holds: the one recorded, or (state lost) ours by name whose end date
        // is the expiration Spot reports.
        let rec = rec.filter(|r| r.handed_to_spot).or_else(|| {
            let spot_end = creds.and_then(AzureCredentialsInfo::expiration)?;
            app.password_credentials
                .iter()
                .filter(|p| p.display_name.as_deref() == Some(self.password_name.as_str()))
                .find(|p| {
                    p.end_date_time
                        .is_some_and(|e| (e - spot_end).abs() < time::Duration::seconds(2))
                })
                .map(|p| SecretRecord {
                    key_id: p.key_id.clone(),
                    end_date_time: p.end_date_time.unwrap_or(spot_end),
                    handed_to_spot: true,
                })
        });
        let Some(rec) = rec else {
            return (
                None,
                "no secret recorded as handed to Spot: a new one replaces it".into(),
            );
        };
        let present = app
            .password_credentials
            .iter()
            .any(|p| p.key_id.eq_ignore_ascii_case(&rec.key_id));
        if !present {
            return (
                None,
                format!("the recorded secret {} is no longer on the app", rec.key_id),
            );
        }
        if rec.end_date_time - now < EXPIRY_MARGIN {
            return (
                None,
                format!(
                    "the secret expires on {}: a new one replaces it",
                    rec.end_date_time.date()
                ),
            );
        }
        (
            Some(rec.clone()),
            format!("Spot holds it; it expires on {}", rec.end_date_time.date()),
        )
    }

    fn plan_from(&self, f: &Facts) -> Plan {
        let mut items = Vec::new();
        let t = &self.target;
        let item =
            |step, object: &str, name: &str, action, id: Option<String>, reason: String| PlanItem {
                step,
                object: object.into(),
                name: name.into(),
                action,
                id,
                reason,
                drift: None,
            };
        // Spot account
        items.push(match &f.account {
            AccountFact::Reuse(a, why) => item(
                Step::SpotAccount,
                "Spot account",
                &a.name,
                PlanAction::Reuse,
                Some(a.account_id.clone()),
                why.clone(),
            ),
            AccountFact::Create(n) => item(
                Step::SpotAccount,
                "Spot account",
                n,
                PlanAction::Create,
                None,
                "no Spot account is connected to this subscription".into(),
            ),
            AccountFact::Blocked(why, e) => {
                let hint = e
                    .as_ref()
                    .and_then(ApiError::hint)
                    .map(|h| format!(": {h}"))
                    .unwrap_or_default();
                item(
                    Step::SpotAccount,
                    "Spot account",
                    "",
                    PlanAction::Blocked,
                    None,
                    format!("{why}{hint}"),
                )
            }
        });
        // App registration + service principal
        let graph_denied = |e: &Error| {
            let hint = e
                .api()
                .and_then(ApiError::hint)
                .map(|h| format!(" {h}"))
                .unwrap_or_default();
            format!("cannot read app registrations ({e}).{hint}")
        };
        match &f.app {
            Ok(AppFact::Ours(a)) => {
                items.push(item(
                    Step::AppRegistration,
                    "app registration",
                    &a.display_name,
                    PlanAction::Reuse,
                    Some(a.app_id.clone()),
                    "ours: it carries the spot-connect tag".into(),
                ));
                items.push(match &f.sp {
                    None if let AppRights::Denied(why) = &f.app_rights => item(
                        Step::AppRegistration,
                        "service principal",
                        &a.display_name,
                        PlanAction::Blocked,
                        None,
                        format!("the app has no service principal and {why}"),
                    ),
                    Some(sp) => item(
                        Step::AppRegistration,
                        "service principal",
                        &a.display_name,
                        PlanAction::Reuse,
                        Some(sp.id.clone()),
                        "exists for the app".into(),
                    ),
                    None => item(
                        Step::AppRegistration,
                        "service principal",
                        &a.display_name,
                        PlanAction::Create,
                        None,
                        "the app has no service principal yet".into(),
                    ),
                });
            }
            Ok(AppFact::Missing) => {
                items.push(match &f.app_rights {
                    AppRights::Denied(why) => item(
                        Step::AppRegistration,
                        "app registration",
                        &self.app_name,
                        PlanAction::Blocked,
                        None,
                        why.clone(),
                    ),
                    AppRights::Allowed(why) | AppRights::Unknown(why) => item(Step::AppRegistration, "app registration", &self.app_name, PlanAction::Create, None, format!("no app registration named {} exists (single tenant, redirect URI https://spot.io); {why}", self.app_name)),
                });
                items.push(item(
                    Step::AppRegistration,
                    "service principal",
                    &self.app_name,
                    PlanAction::Create,
                    None,
                    "for the new app".into(),
                ));
            }
            Ok(AppFact::Foreign(n)) => {
                items.push(item(Step::AppRegistration, "app registration", &self.app_name, PlanAction::Blocked, None, format!(
                    "{n} app registration(s) named {} exist but are not managed by spot-connect (no \"spot-connect\" tag): they are never taken over; choose another name with --app-name",
                    self.app_name
                )));
            }
            Err(e) => items.push(item(
                Step::AppRegistration,
                "app registration",
                &self.app_name,
                PlanAction::Blocked,
                None,
                graph_denied(e),
            )),
        }
        // Client secret
        items.push(match &f.secret_reuse {
            Some(r) => item(
                Step::ClientSecret,
                "client secret",
                &self.password_name,
                PlanAction::Reuse,
                Some(r.key_id.clone()),
                f.secret_reason.clone(),
            ),
            None => item(
                Step::ClientSecret,
                "client secret",
                &self.password_name,
                PlanAction::Create,
                None,
                format!(
                    "{} ({} months){}",
                    f.secret_reason,
                    self.settings.secret_months,
                    match (&f.app_rights, &f.app) {
                        (AppRights::Denied(_), Ok(AppFact::Ours(_))) =>
                            "; you may not register applications, so this works only if you own the app",
                        _ => "",
                    }
                ),
            ),
        });
        // Custom role
        let can = |action: &str| {
            f.permissions
                .as_ref()
                .is_none_or(|p| arm::permits(p, action))
        };
        let denied = |action: &str| {
            format!(
                "you lack {action} on {}: you need Owner or User Access Administrator on the subscription",
                self.scope
            )
        };
        let mut role_item = match &f.role {
            RoleFact::Missing => item(
                Step::CustomRole,
                "custom role",
                &self.role_name,
                PlanAction::Create,
                None,
                format!(
                    "no role named {} exists; Spot's actions from the {}, assignable at {}",
                    self.role_name, self.policy.source, self.scope
                ),
            ),
            RoleFact::Foreign(r) => item(
                Step::CustomRole,
                "custom role",
                &self.role_name,
                PlanAction::Blocked,
                Some(r.id.clone()),
                format!(
                    "a role named {} exists but was not made by spot-connect (no marker in its description): it is never changed; choose another name with --role-name",
                    self.role_name
                ),
            ),
            RoleFact::Ours(r) => {
                let d = f.drift.clone().unwrap_or_default();
                let in_scope = r
                    .properties
                    .assignable_scopes
                    .iter()
                    .any(|s| self.scope_eq(s));
                let mut why = Vec::new();
                if !in_scope {
                    why.push(format!("add {} to its assignable scopes", self.scope));
                }
                if !d.missing.is_empty() {
                    why.push(format!("add {} missing action(s)", d.missing.len()));
                }
                if why.is_empty() {
                    let extra = if d.extra.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} extra action(s) left as they are)", d.extra.len())
                    };
                    item(
                        Step::CustomRole,
                        "custom role",
                        &self.role_name,
                        PlanAction::Reuse,
                        Some(r.id.clone()),
                        format!("ours, with all of Spot's actions{extra}"),
                    )
                } else {
                    item(
                        Step::CustomRole,
                        "custom role",
                        &self.role_name,
                        PlanAction::Update,
                        Some(r.id.clone()),
                        format!("ours: {}", why.join(", ")),
                    )
                }
            }
        };
        role_item.drift = f.drift.clone().filter(|d| !d.is_empty());
        if matches!(role_item.action, PlanAction::Create | PlanAction::Update)
            && !can(NEED_ROLE_DEF_WRITE)
        {
            role_item.action = PlanAction::Blocked;
            role_item.reason = denied(NEED_ROLE_DEF_WRITE);
        }
        items.push(role_item);
        // Role assignment
        let mut assign = match &f.assignment {
            Some(a) => item(
                Step::RoleAssignment,
                "role assignment",
                &self.role_name,
                PlanAction::Reuse,
                Some(a.id.clone()),
                format!(
                    "the role is assigned to the service principal at {}",
                    self.scope
                ),
            ),
            None => item(
                Step::RoleAssignment,
                "role assignment",
                &self.role_name,
                PlanAction::Create,
                None,
                format!(
                    "assign the role to the app's service principal at {}",
                    self.scope
                ),
            ),
        };
        if assign.action == PlanAction::Create && !can(NEED_ROLE_ASSIGN_WRITE) {
            assign.action = PlanAction::Blocked;
            assign.reason = denied(NEED_ROLE_ASSIGN_WRITE);
        }
        items.push(assign);
        // Spot connection
        items.push(match (&f.secret_reuse, &f.account) {
            (Some(_), AccountFact::Reuse(a, _)) => item(Step::ConnectSpot, "Spot connection", &a.name, PlanAction::Reuse, Some(a.account_id.clone()), format!(
                "Spot holds this app's credentials for this subscription{}",
                f.spot_creds.as_ref().and_then(|c| c.expiration_date.clone()).map(|d| format!(" (expire {d})")).unwrap_or_default()
            )),
            _ => item(Step::ConnectSpot, "Spot connection", "", PlanAction::Create, None, "set the Azure credentials on the Spot account (Spot validates them), then read them back".into()),
        });
        Plan {
            tenant_id: t.tenant_id.clone(),
            subscription_id: t.subscription_id.clone(),
            items,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Steps

    async fn spot_account_step(&self, fact: &AccountFact) -> Result<SpotAccount> {
        let spot = &self.session.spot;
        match fact {
            AccountFact::Reuse(a, why) => {
                let a = a.clone();
                self.step(
                    Step::SpotAccount,
                    format!("using {}", a.account_id),
                    async {
                        self.checkpoint(|s| s.spot_account_id = Some(a.account_id.clone()))?;
                        self.record(
                            Step::SpotAccount,
                            "Spot account",
                            &a.name,
                            &a.account_id,
                            Outcome::Reused,
                        );
                        let id = a.account_id.clone();
                        let detail = format!("{} ({}): {why}", a.name, a.account_id);
                        Ok((a, Outcome::Reused, Some(id), detail))
                    },
                )
                .await
            }
            AccountFact::Create(name) => {
                self.step(
                    Step::SpotAccount,
                    format!("creating Spot account {name}"),
                    async {
                        self.checkpoint(|s| s.spot_account_pending = Some(name.clone()))?;
                        let a = self
                            .write_or_find(
                                || spot.create_account(name),
                                || async {
                                    Ok(spot.list_accounts().await?.into_iter().find(|a| {
                                        &a.name == name && a.provider_external_id.is_none()
                                    }))
                                },
                            )
                            .await?;
                        self.checkpoint(|s| {
                            s.spot_account_id = Some(a.account_id.clone());
                            s.spot_account_pending = None;
                        })?;
                        self.record(
                            Step::SpotAccount,
                            "Spot account",
                            &a.name,
                            &a.account_id,
                            Outcome::Created,
                        );
                        let id = a.account_id.clone();
                        let detail = format!("{} ({})", a.name, a.account_id);
                        Ok((a, Outcome::Created, Some(id), detail))
                    },
                )
                .await
            }
            AccountFact::Blocked(why, _) => Err(Error::Other(why.clone())),
        }
    }

    /// The app (sent on `app_tx` as soon as it exists) and its service principal.
    async fn app_registration_step(
        &self,
        fact: Option<&AppFact>,
        sp_fact: Option<ServicePrincipal>,
        app_tx: tokio::sync::oneshot::Sender<Application>,
    ) -> Result<(Application, ServicePrincipal)> {
        let name = self.app_name.clone();
        self.step(
            Step::AppRegistration,
            format!("app registration {name}"),
            async {
                let (app, app_outcome) = match fact {
                    Some(AppFact::Ours(a)) => {
                        self.sweep.store(true, std::sync::atomic::Ordering::Relaxed);
                        (a.clone(), Outcome::Reused)
                    }
                    Some(AppFact::Missing) => {
                        let a = self
                            .write_or_find(
                                || self.graph.create_application(&name),
                                || async {
                                    Ok(self
                                        .graph
                                        .find_applications(&name)
                                        .await?
                                        .into_iter()
                                        .find(Application::is_ours))
                                },
                            )
                            .await?;
                        self.wrote_azure
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        (a, Outcome::Created)
                    }
                    _ => return Err(Error::Other("the app registration step was blocked".into())),
                };
                self.checkpoint(|s| {
                    s.app_object_id = Some(app.id.clone());
                    s.app_id = Some(app.app_id.clone());
                    s.app_name = Some(app.display_name.clone());
                })?;
                self.record(
                    Step::AppRegistration,
                    "app registration",
                    &app.display_name,
                    &app.app_id,
                    app_outcome,
                );
                let _ = app_tx.send(app.clone());

                let (sp, sp_outcome) = match sp_fact {
                    Some(sp) => (sp, Outcome::Reused),
                    None => {
                        let app_id = app.app_id.clone();
                        let created_app = app_outcome == Outcome::Created;
                        let sp = self
                            .propagate(
                                Step::AppRegistration,
                                |e| created_app && is_not_found(e),
                                || {
                                    self.write_or_find(
                                        || self.graph.create_service_principal(&app_id),
                                        || self.graph.get_service_principal_by_app_id(&app_id),
                                    )
                                },
                            )
                            .await;
                        let sp = match sp {
                            Ok(sp) => sp,
                            // Created meanwhile (e.g. by an earlier attempt whose reply was lost).
                            Err(Error::Api(e)) if e.class() == ErrorClass::Conflict => self
                                .graph
                                .get_service_principal_by_app_id(&app_id)
                                .await?
                                .ok_or(Error::Api(e))?,
                            Err(e) => return Err(e),
                        };
                        self.wrote_azure
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        (sp, Outcome::Created)
                    }
                };
                self.checkpoint(|s| s.sp_object_id = Some(sp.id.clone()))?;
                self.record(
                    Step::AppRegistration,
                    "service principal",
                    &app.display_name,
                    &sp.id,
                    sp_outcome,
                );
                let outcome = if app_outcome == Outcome::Created || sp_outcome == Outcome::Created {
                    Outcome::Created
                } else {
                    Outcome::Reused
                };
                let detail = format!(
                    "{} (client id {}, service principal {})",
                    app.display_name, app.app_id, sp.id
                );
                let id = app.app_id.clone();
                Ok(((app, sp), outcome, Some(id), detail))
            },
        )
        .await
    }

    async fn secret_step(
        &self,
        app: &Application,
        reuse: Option<SecretRecord>,
    ) -> Result<SecretOutcome> {
        let months = self.settings.secret_months;
        self.step(Step::ClientSecret, format!("client secret for {}", app.display_name), async {
            if let Some(rec) = reuse {
                self.record(Step::ClientSecret, "client secret", &self.password_name, &rec.key_id, Outcome::Reused);
                let detail = format!("kept (expires {})", rec.end_date_time.date());
                let id = rec.key_id.clone();
                return Ok((SecretOutcome::Reused(rec), Outcome::Reused, Some(id), detail));
            }
            // The previous secret (never handed to Spot, expiring, or unknown to Spot) is
            // removed once the new one is with Spot.
            self.checkpoint(|s| {
                if let Some(old) = s.secret.take()
                    && !s.orphan_key_ids.contains(&old.key_id)
                {
                    s.orphan_key_ids.push(old.key_id);
                }
            })?;
            let end = add_months(OffsetDateTime::now_utc(), months);
            // Intent first: a run killed before the keyId is recorded leaves a trace.
            self.checkpoint(|s| s.secret_intent = Some(OffsetDateTime::now_utc()))?;
            let created_app = self.wrote_azure.load(std::sync::atomic::Ordering::Relaxed);
            let obj = app.id.clone();
            let np = self
                .propagate(
                    Step::ClientSecret,
                    |e| created_app && is_not_found(e),
                    || async {
                        let mut tries = 0;
                        loop {
                            // Not idempotent, and a lost reply loses the value: try again;
                            // the orphan is removed by name after the connection.
                            match self.graph.add_password(&obj, &self.password_name, end).await {
                                Err(e) if is_transient(&e) && tries < 5 => {
                                    tries += 1;
                                    self.sweep.store(true, std::sync::atomic::Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(300 * tries)).await;
                                }
                                r => return r,
                            }
                        }
                    },
                )
                .await
                .map_err(|e| match e {
                    Error::Api(a) if a.has_code("CredentialInvalidLifetimeAsPerAppPolicy") => Error::Api(ApiError {
                        message: format!(
                            "{} The tenant's policy does not allow a {months}-month secret: use fewer months (--secret-months).",
                            a.message
                        ),
                        ..a
                    }),
                    e => e,
                })?;
            let end_actual = np.credential.end_date_time.unwrap_or(end);
            let rec = SecretRecord {
                key_id: np.credential.key_id.clone(),
                end_date_time: end_actual,
                handed_to_spot: false,
            };
            self.checkpoint(|s| {
                s.secret = Some(rec.clone());
                s.secret_intent = None;
            })?;
            self.record(Step::ClientSecret, "client secret", &self.password_name, &rec.key_id, Outcome::Created);
            let detail = format!("expires {}", end_actual.date());
            let id = rec.key_id.clone();
            Ok((SecretOutcome::New(rec, np.secret), Outcome::Created, Some(id), detail))
        })
        .await
    }

    /// Brings our role up to date: this subscription in its assignable scopes, Spot's actions.
    async fn update_ours(&self, r: &RoleDefinition) -> Result<(RoleDefinition, Outcome, String)> {
        let d = policy::drift(&self.policy.actions, &r.properties.permissions);
        let in_scope = r
            .properties
            .assignable_scopes
            .iter()
            .any(|s| self.scope_eq(s));
        if in_scope && d.missing.is_empty() {
            return Ok((
                r.clone(),
                Outcome::Reused,
                format!("{} has all of Spot's actions", r.properties.role_name),
            ));
        }
        let mut scopes = r.properties.assignable_scopes.clone();
        if !in_scope {
            scopes.push(self.scope.clone());
        }
        let props =
            self.policy
                .role_properties(&self.role_name, &self.target.subscription_id, scopes);
        // Updated at a scope it is assignable at.
        let at = r
            .properties
            .assignable_scopes
            .first()
            .cloned()
            .unwrap_or_else(|| self.scope.clone());
        let updated = self
            .retry_read(&mut || self.arm.put_role_definition(&at, &r.name, &props))
            .await?;
        self.wrote_azure
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut what = Vec::new();
        if !in_scope {
            what.push(format!("assignable at {}", self.scope));
        }
        if !d.missing.is_empty() {
            what.push(format!("{} missing action(s) added", d.missing.len()));
        }
        Ok((updated, Outcome::Updated, what.join(", ")))
    }

    /// The tenant's role named like ours, looked up at every subscription of the tenant the
    /// caller sees (role names are unique per tenant).
    async fn find_role_elsewhere(&self) -> Option<RoleDefinition> {
        let (tenant_wide, subs) = tokio::join!(
            self.arm.list_tenant_custom_roles(),
            self.arm.list_subscription_ids()
        );
        if let Ok(all) = tenant_wide
            && let Some(r) = all
                .into_iter()
                .find(|r| r.properties.role_name.eq_ignore_ascii_case(&self.role_name))
        {
            return Some(r);
        }
        let subs = subs.ok()?;
        // A few at a time; a tenant with very many subscriptions is only sampled.
        use futures::StreamExt;
        let mut lookups = futures::stream::iter(
            subs.into_iter()
                .filter(|s| !s.eq_ignore_ascii_case(&self.target.subscription_id))
                .take(200),
        )
        .map(|sub| async move {
            self.arm
                .find_role_definitions(&format!("/subscriptions/{sub}"), &self.role_name)
                .await
                .ok()
                .and_then(|found| {
                    found
                        .into_iter()
                        .find(|r| r.properties.role_name.eq_ignore_ascii_case(&self.role_name))
                })
        })
        .buffer_unordered(8);
        while let Some(r) = lookups.next().await {
            if r.is_some() {
                return r;
            }
        }
        None
    }

    async fn role_step(&self, fact: &RoleFact) -> Result<RoleDefinition> {
        let name = self.role_name.clone();
        self.step(Step::CustomRole, format!("custom role {name}"), async {
            let sub = self.target.subscription_id.as_str();
            let (role, outcome, detail) = match fact {
                RoleFact::Foreign(_) => return Err(Error::Other("the custom role step was blocked".into())),
                RoleFact::Ours(r) => self.update_ours(r).await?,
                RoleFact::Missing => {
                    // A deterministic GUID: the PUT is idempotent, so it is simply repeated
                    // when its reply is lost (it may have been applied).
                    let guid = policy::role_definition_guid(&self.target.tenant_id, &name);
                    let props = self.policy.role_properties(&name, sub, vec![self.scope.clone()]);
                    let put = self
                        .retry_read(&mut || self.arm.put_role_definition(&self.scope, &guid, &props))
                        .await;
                    let created = match put {
                        Ok(r) => r,
                        Err(Error::Api(e)) if e.has_code("RoleDefinitionWithSameNameExists") => {
                            // Assignable only at other subscriptions of the tenant: if it is
                            // ours, add this subscription to it.
                            if let Some(r) = self.find_role_elsewhere().await {
                                if is_our_role(&r) {
                                    let (role, outcome, detail) = self.update_ours(&r).await?;
                                    self.checkpoint(|s| {
                                        s.role_definition_id = Some(role.id.clone());
                                        s.role_name = Some(role.properties.role_name.clone());
                                    })?;
                                    self.record(Step::CustomRole, "custom role", &role.properties.role_name, &role.id, outcome);
                                    let id = role.id.clone();
                                    return Ok((role, outcome, Some(id), detail));
                                }
                                return Err(Error::Other(format!(
                                    "a role named {name} exists in this tenant ({}) but was not made by spot-connect: choose another name with --role-name",
                                    r.id
                                )));
                            }
                            return Err(Error::Api(ApiError {
                                message: format!(
                                    "{} It is not visible from this subscription: choose another name with --role-name.",
                                    e.message
                                ),
                                ..e
                            }));
                        }
                        Err(e) => return Err(e),
                    };
                    self.wrote_azure.store(true, std::sync::atomic::Ordering::Relaxed);
                    let n = self.policy.actions.len();
                    (created, Outcome::Created, format!("{n} actions, assignable at {}", self.scope))
                }
            };
            self.checkpoint(|s| {
                s.role_definition_id = Some(role.id.clone());
                s.role_name = Some(role.properties.role_name.clone());
            })?;
            self.record(Step::CustomRole, "custom role", &role.properties.role_name, &role.id, outcome);
            let id = role.id.clone();
            Ok((role, outcome, Some(id), detail))
        })
        .await
    }

    async fn assignment_step(
        &self,
        sp: &ServicePrincipal,
        role: &RoleDefinition,
        existing: Option<RoleAssignment>,
    ) -> Result<()> {
        self.step(Step::RoleAssignment, format!("assigning {} to the service principal", role.properties.role_name), async {
            let (id, outcome) = match existing {
                Some(a) => (a.id, Outcome::Reused),
                None => {
                    // Deterministic: a PUT repeated after a lost reply names the same
                    // assignment (then 409 RoleAssignmentExists, which is success).
                    let guid = policy::role_assignment_name(&self.target.subscription_id, &sp.id, &role.id);
                    let out = self
                        .propagate(Step::RoleAssignment, |_| false, || async {
                            self.retry_read(&mut || self.arm.create_role_assignment(&self.scope, &guid, &role.id, &sp.id))
                                .await
                        })
                        .await?;
                    self.wrote_azure.store(true, std::sync::atomic::Ordering::Relaxed);
                    match out {
                        AssignmentOutcome::Created(a) => (a.id, Outcome::Created),
                        AssignmentOutcome::AlreadyExists => match self.lookup_assignment(sp, role).await? {
                            Some(a) => (a.id, Outcome::Reused),
                            None => (
                                format!("{}/providers/Microsoft.Authorization/roleAssignments/{guid}", self.scope),
                                Outcome::Reused,
                            ),
                        },
                    }
                }
            };
            self.checkpoint(|s| s.role_assignment_id = Some(id.clone()))?;
            self.record(Step::RoleAssignment, "role assignment", &role.properties.role_name, &id, outcome);
            Ok(((), outcome, Some(id), format!("principalType ServicePrincipal at {}", self.scope)))
        })
        .await
    }

    async fn connect_step(
        &self,
        account: &SpotAccount,
        app: &Application,
        secret: &SecretOutcome,
    ) -> Result<Option<OffsetDateTime>> {
        let spot = &self.session.spot;
        self.step(
            Step::ConnectSpot,
            format!("connecting {} to Spot", account.account_id),
            async {
                let (rec, value) = match secret {
                    SecretOutcome::Reused(rec) => {
                        self.record(
                            Step::ConnectSpot,
                            "Spot connection",
                            &account.name,
                            &account.account_id,
                            Outcome::Reused,
                        );
                        let detail = format!(
                            "{} already holds this app's credentials",
                            account.account_id
                        );
                        return Ok((
                            Some(rec.end_date_time),
                            Outcome::Reused,
                            Some(account.account_id.clone()),
                            detail,
                        ));
                    }
                    SecretOutcome::New(rec, value) => (rec, value),
                };
                let creds = AzureCredentials {
                    client_id: app.app_id.clone(),
                    client_secret: value.clone(),
                    tenant_id: self.target.tenant_id.clone(),
                    subscription_id: self.target.subscription_id.clone(),
                    expiration_date: rec.end_date_time,
                };
                // Spot validates against Azure: right after our writes it may not see them yet.
                let fresh = self.wrote_azure.load(std::sync::atomic::Ordering::Relaxed)
                    || !rec.handed_to_spot;
                self.propagate(
                    Step::ConnectSpot,
                    |_| false,
                    || async {
                        // Setting credentials overwrites: safe to send again after a lost reply.
                        let mut tries = 0;
                        loop {
                            match spot
                                .set_azure_credentials(&account.account_id, &creds)
                                .await
                            {
                                Err(e) if is_transient(&e) && tries < 5 => {
                                    tries += 1;
                                    tokio::time::sleep(Duration::from_millis(300 * tries)).await;
                                }
                                Err(e) if is_propagation(&e) && !fresh => {
                                    return Err(Error::Other(e.to_string()));
                                }
                                r => return r,
                            }
                        }
                    },
                )
                .await?;
                self.checkpoint(|s| {
                    if let Some(r) = s.secret.as_mut()
                        && r.key_id == rec.key_id
                    {
                        r.handed_to_spot = true;
                    }
                })?;
                // Read back: Spot must report this app and this subscription. Meanwhile, the
                // secrets Spot no longer uses (never handed over, or replaced) are removed.
                let mut read_back = || spot.get_azure_credentials(&account.account_id);
                let (back, ()) = tokio::join!(
                    self.retry_read(&mut read_back),
                    self.remove_orphans(app, &rec.key_id)
                );
                let back = back?;
                let ok = back.as_ref().is_some_and(|c| {
                    c.client_id
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
                        && c.subscription_id
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(&self.target.subscription_id))
                });
                if !ok {
                    return Err(Error::Other(format!(
                        "Spot accepted the credentials but reads back {:?} for account {}",
                        back.map(|c| (c.client_id, c.subscription_id)),
                        account.account_id
                    )));
                }
                self.record(
                    Step::ConnectSpot,
                    "Spot connection",
                    &account.name,
                    &account.account_id,
                    Outcome::Created,
                );
                let detail = format!(
                    "{} connected; secret expires {}",
                    account.account_id,
                    rec.end_date_time.date()
                );
                Ok((
                    Some(rec.end_date_time),
                    Outcome::Created,
                    Some(account.account_id.clone()),
                    detail,
                ))
            },
        )
        .await
    }

    /// Removes secrets of ours for this subscription other than `current`: the ones recorded as
    /// orphans, and any left by a run killed between addPassword and its checkpoint.
    async fn remove_orphans(&self, app: &Application, current: &str) {
        let mut keys: Vec<String> = self.state(|s| s.orphan_key_ids.clone());
        if keys.is_empty() && !self.sweep.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Ok(Some(fresh)) = self.graph.get_application(&app.id).await {
            for p in fresh.password_credentials {
                if p.display_name.as_deref() == Some(self.password_name.as_str())
                    && !p.key_id.eq_ignore_ascii_case(current)
                    && !keys.contains(&p.key_id)
                {
                    keys.push(p.key_id);
                }
            }
        }
        for k in keys
            .into_iter()
            .filter(|k| !k.eq_ignore_ascii_case(current))
        {
            match super::orphans::remove_secret(&self.graph, &app.id, &k).await {
                Ok(()) => {
                    tracing::info!(key_id = %k, "removed an orphaned client secret");
                    let _ = self.checkpoint(|s| s.orphan_key_ids.retain(|x| x != &k));
                }
                Err(e) => {
                    tracing::warn!(key_id = %k, error = %e, "could not remove an orphaned client secret")
                }
            }
        }
    }

    fn report(
        &self,
        verdict: Verdict,
        account: Option<String>,
        secret_expires: Option<OffsetDateTime>,
        t0: Instant,
    ) -> Report {
        Report {
            tenant_id: self.target.tenant_id.clone(),
            subscription_id: self.target.subscription_id.clone(),
            subscription_name: self.target.subscription_name.clone(),
            verdict,
            spot_account_id: account,
            objects: self.objects.lock().expect("lock").clone(),
            secret_expires,
            durations_ms: self.durations.lock().expect("lock").clone(),
            total_ms: t0.elapsed().as_millis() as u64,
            error: if verdict == Verdict::Failed {
                self.first_error.lock().expect("lock").clone()
            } else {
                None
            },
            report_path: None,
        }
    }
}

#[derive(Clone)]
enum SecretOutcome {
    Reused(SecretRecord),
    New(SecretRecord, Secret),
}

/// The name of the first app-management directory role in `roles`.
fn app_role_named(roles: &[DirectoryRole]) -> Option<&'static str> {
    roles.iter().find_map(|r| {
        let t = r.role_template_id.as_deref()?;
        APP_REGISTRATION_ROLES
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(t))
            .map(|(_, name)| *name)
    })
}

fn rights_unknown(e: &Error) -> String {
    format!("could not check the right to register applications ({e}); the write will tell")
}

/// A user may register applications through the tenant's "Users can register applications"
/// (`allowedToCreateApps`) or an app-management directory role. Denied only when both were
/// read and neither allows it.
fn user_app_rights(
    tenant: &str,
    policy: Result<Option<bool>>,
    roles: Result<Vec<DirectoryRole>>,
) -> AppRights {
    if let Ok(roles) = &roles
        && let Some(name) = app_role_named(roles)
    {
        return AppRights::Allowed(format!("you hold the {name} directory role"));
    }
    match (policy, roles) {
        (Ok(Some(true)), _) => {
            AppRights::Allowed("users may register applications in this tenant".into())
        }
        (Ok(Some(false)), Ok(_)) => AppRights::Denied(format!(
            "you may not register applications in tenant {tenant}: 'Users can register applications' is off and you hold none of the Application Developer, Cloud Application Administrator, Application Administrator or Global Administrator roles; {APP_RIGHTS_HINT}"
        )),
        (Err(e), _) | (_, Err(e)) => AppRights::Unknown(rights_unknown(&e)),
        (Ok(None), Ok(_)) => AppRights::Unknown(
            "could not check the right to register applications (the tenant policy has no allowedToCreateApps); the write will tell".into(),
        ),
    }
}

/// A service principal may register applications through Graph's Application.ReadWrite.All or
/// .OwnedBy app role, or an app-management directory role. Denied only when both were read.
fn service_principal_app_rights(
    client_id: &str,
    grants: Result<Vec<AppRoleAssignment>>,
    roles: Result<Vec<DirectoryRole>>,
) -> AppRights {
    if let Ok(grants) = &grants
        && let Some((_, name)) = APP_REGISTRATION_APP_ROLES.iter().find(|(id, _)| {
            grants
                .iter()
                .any(|g| g.app_role_id.eq_ignore_ascii_case(id))
        })
    {
        return AppRights::Allowed(format!(
            "the service principal holds Microsoft Graph {name}"
        ));
    }
    if let Ok(roles) = &roles
        && let Some(name) = app_role_named(roles)
    {
        return AppRights::Allowed(format!(
            "the service principal holds the {name} directory role"
        ));
    }
    match (grants, roles) {
        (Ok(_), Ok(_)) => AppRights::Denied(format!(
            "service principal {client_id} may not register applications: it holds neither Microsoft Graph Application.ReadWrite.All nor Application.ReadWrite.OwnedBy (admin-consented) nor an app-management directory role; {APP_RIGHTS_HINT}"
        )),
        (Err(e), _) | (_, Err(e)) => AppRights::Unknown(rights_unknown(&e)),
    }
}

fn is_our_role(r: &RoleDefinition) -> bool {
    r.properties
        .description
        .as_deref()
        .is_some_and(|d| d.contains(ROLE_MARKER))
}

fn is_not_found(e: &Error) -> bool {
    e.api().is_some_and(|a| {
        a.class() == ErrorClass::NotFound || a.has_code("Request_ResourceNotFound")
    })
}

/// `t` plus `months` calendar months (clamped to the month's last day).
pub(crate) fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let total = t.month() as i32 - 1 + months as i32;
    let year = t.year() + total.div_euclid(12);
    let month = time::Month::try_from((total.rem_euclid(12) + 1) as u8).expect("valid month");
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = time::Date::from_calendar_date(year, month, day).expect("valid date");
    t.replace_date(date)
        .replace_nanosecond(0)
        .expect("valid time")
}

fn dependency(what: &str) -> Error {
    Error::Other(format!("skipped: {what} did not complete"))
}

pub(super) async fn plan(session: &Session, target: &Target, settings: &Settings) -> Result<Plan> {
    let ctx = Ctx::new(session, target, settings, None)?;
    let facts = ctx.facts().await?;
    Ok(ctx.plan_from(&facts))
}

pub(super) async fn apply(
    session: &Session,
    target: &Target,
    settings: &Settings,
    progress: UnboundedSender<Progress>,
) -> Result<Report> {
    let t0 = Instant::now();
    let ctx = Ctx::new(session, target, settings, Some(progress))?;
    let facts = ctx.facts().await?;
    let plan = ctx.plan_from(&facts);
    let blocked: Vec<&PlanItem> = plan.blocked().collect();
    if !blocked.is_empty() {
        let mut reasons = Vec::new();
        for b in &blocked {
            let info = ErrorInfo {
                summary: format!("{}: {}", b.object, b.reason),
                api: None,
                hint: None,
            };
            ctx.emit(b.step, StepEvent::Failed { error: info });
            reasons.push(format!("{}: {}", b.object, b.reason));
        }
        let api = match (&facts.account, &facts.app) {
            (AccountFact::Blocked(_, Some(e)), _) => Some(e.clone()),
            (_, Err(e)) => e.api().cloned(),
            _ => None,
        };
        let rights_blocked = matches!(facts.app_rights, AppRights::Denied(_))
            && blocked.iter().any(|b| b.step == Step::AppRegistration);
        *ctx.first_error.lock().expect("lock") = Some(ErrorInfo {
            summary: format!("nothing was changed: {}", reasons.join("; ")),
            hint: api
                .as_ref()
                .and_then(ApiError::hint)
                .map(str::to_string)
                .or_else(|| rights_blocked.then(|| APP_RIGHTS_HINT.to_string())),
            api,
        });
        for step in [
            Step::SpotAccount,
            Step::AppRegistration,
            Step::ClientSecret,
            Step::CustomRole,
            Step::RoleAssignment,
            Step::ConnectSpot,
        ] {
            if !blocked.iter().any(|b| b.step == step) {
                ctx.emit(
                    step,
                    StepEvent::Skipped {
                        reason: "blocked: nothing is written".into(),
                    },
                );
            }
        }
        return Ok(ctx.report(Verdict::Failed, None, None, t0));
    }

    let (app_tx, app_rx) = tokio::sync::oneshot::channel::<Application>();
    let app_fact = facts.app.as_ref().ok();
    let role_f = ctx.role_step(&facts.role).shared();
    let spot_f = ctx.spot_account_step(&facts.account).shared();
    let app_f = ctx
        .app_registration_step(app_fact, facts.sp.clone(), app_tx)
        .shared();
    let secret_reuse = facts.secret_reuse.clone();
    let secret_f = async {
        let app = app_rx.await.map_err(|_| dependency("App registration"))?;
        ctx.secret_step(&app, secret_reuse).await
    }
    .shared();
    let existing_assignment = facts.assignment.clone();
    let assign_f = async {
        let (_, sp) = app_f
            .clone()
            .await
            .map_err(|_| dependency("App registration"))?;
        let role = role_f
            .clone()
            .await
            .map_err(|_| dependency("Custom role"))?;
        ctx.assignment_step(&sp, &role, existing_assignment).await
    };
    let connect_f = async {
        let (secret, assigned, account) = tokio::join!(secret_f.clone(), assign_f, spot_f.clone());
        let secret = secret.map_err(|_| dependency("Client secret"))?;
        assigned.map_err(|_| dependency("Role assignment"))?;
        let account = account.map_err(|_| dependency("Spot account"))?;
        let (app, _) = app_f
            .clone()
            .await
            .map_err(|_| dependency("App registration"))?;
        ctx.connect_step(&account, &app, &secret).await
    };
    let (_, account, _, _, connected) = tokio::join!(
        role_f.clone(),
        spot_f.clone(),
        app_f.clone(),
        secret_f.clone(),
        connect_f
    );

    let started = ctx.started.lock().expect("lock").clone();
    for step in [
        Step::SpotAccount,
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
    ] {
        if !started.contains(&step) {
            ctx.emit(
                step,
                StepEvent::Skipped {
                    reason: "an earlier step failed".into(),
                },
            );
        }
    }
    let account_id = account.ok().map(|a| a.account_id);
    Ok(match connected {
        Ok(expires) => {
            ctx.emit(
                Step::Done,
                StepEvent::Finished {
                    outcome: if ctx
                        .objects
                        .lock()
                        .expect("lock")
                        .iter()
                        .any(|o| o.outcome != Outcome::Reused)
                    {
                        Outcome::Created
                    } else {
                        Outcome::Reused
                    },
                    id: account_id.clone(),
                    detail: format!("{} is connected to Spot", target.subscription_id),
                },
            );
            ctx.report(Verdict::Connected, account_id, expires, t0)
        }
        Err(_) => ctx.report(Verdict::Failed, account_id, None, t0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(template: &str) -> DirectoryRole {
        DirectoryRole {
            id: Some("r1".into()),
            display_name: None,
            role_template_id: Some(template.into()),
        }
    }

    fn denied() -> Error {
        Error::Api(ApiError {
            service: crate::error::Service::Graph,
            status: 403,
            code: "Authorization_RequestDenied".into(),
            detail_codes: vec![],
            message: "Insufficient privileges to complete the operation.".into(),
            request_id: None,
            retry_after: None,
        })
    }

    #[test]
    fn a_user_may_register_apps_by_tenant_setting_or_role_and_is_denied_only_when_both_say_no() {
        let dev = "cf1c38e5-3621-4004-a7cb-879624dced7c";
        let other = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"; // Directory Readers
        assert!(matches!(
            user_app_rights("t", Ok(Some(true)), Ok(vec![])),
            AppRights::Allowed(w) if w.contains("users may register")
        ));
        assert!(matches!(
            user_app_rights("t", Ok(Some(false)), Ok(vec![role(dev)])),
            AppRights::Allowed(w) if w.contains("Application Developer")
        ));
        // A role is enough even when the policy cannot be read.
        assert!(matches!(
            user_app_rights("t", Err(denied()), Ok(vec![role(&dev.to_uppercase())])),
            AppRights::Allowed(_)
        ));
        match user_app_rights("t", Ok(Some(false)), Ok(vec![role(other)])) {
            AppRights::Denied(why) => {
                assert!(why.contains("may not register applications"), "{why}");
                assert!(why.contains(APP_RIGHTS_HINT), "{why}");
            }
            _ => panic!("policy off and no app role: denied"),
        }
        assert!(matches!(
            user_app_rights("t", Ok(Some(false)), Err(denied())),
            AppRights::Unknown(w) if w.contains("the write will tell")
        ));
        assert!(matches!(
            user_app_rights("t", Err(denied()), Ok(vec![])),
            AppRights::Unknown(_)
        ));
    }

    #[test]
    fn a_service_principal_may_register_apps_by_graph_app_role_or_directory_role() {
        let grant = |id: &str| AppRoleAssignment {
            app_role_id: id.into(),
            resource_id: None,
            resource_display_name: Some("Microsoft Graph".into()),
        };
        assert!(matches!(
            service_principal_app_rights("c", Ok(vec![grant("18a4783c-866b-4cc7-a460-3d5e5662c884")]), Ok(vec![])),
            AppRights::Allowed(w) if w.contains("Application.ReadWrite.OwnedBy")
        ));
        assert!(matches!(
            service_principal_app_rights("c", Ok(vec![]), Ok(vec![role("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3")])),
            AppRights::Allowed(w) if w.contains("Application Administrator")
        ));
        // Mail.Read only: denied.
        assert!(matches!(
            service_principal_app_rights("c", Ok(vec![grant("810c84a8-4a9e-49e6-bf7d-12d183f40d01")]), Ok(vec![])),
            AppRights::Denied(w) if w.contains("Application.ReadWrite.All")
        ));
        assert!(matches!(
            service_principal_app_rights("c", Err(denied()), Ok(vec![])),
            AppRights::Unknown(_)
        ));
    }

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
