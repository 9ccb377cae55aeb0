//! The one engine behind `onboard::plan` and `onboard::apply`, for one subscription or many.
//!
//! `plan` groups the targets by tenant and looks everything up once per tenant (app, service
//! principal, role, the right to register apps) and once per subscription (permissions, Spot
//! account and its credentials, role assignment); the facts travel with the `Plan`. `apply`
//! writes exactly that plan, nothing when it has a blocked item. Per tenant, dependencies (not
//! the sidebar order) decide what runs when; one subscription is a tenant of one:
//! ```text
//! Spot account (each) ──────────────────────────────────────────┐
//! App registration ─┬─ service principal ─┐                      ├─ Connect to Spot (each)
//!                   └─ client secret (one per tenant) ───────────┤   └─ orphan cleanup
//! Custom role (one, assignable at all) ───┴─ role assignment (each)┘
//! ```

use super::lifetime::{self, SecretLimit};
use super::model::{
    AccountKind, ErrorInfo, ObjectRef, Outcome, Ownership, Plan, PlanAction, PlanItem, Progress,
    Report, RunReport, Step, StepEvent, Verdict,
};
use super::pace::WriteBudget;
use super::policy::{self, Policy};
use super::retry::{self, Backoff, create_or_find, is_not_found, read};
use super::rotate::{SECRET_PREFIX, shared_secret_name};
use super::state::{AccountOrigin, SecretRecord, State, StepStatus, Store, lock};
use super::status::{self, find_assignment, is_fatal, is_our_role, same_scope, scope_of};
use super::{Session, Settings, SpotAccountChoice, Target};
use crate::azure::arm::{self, Arm, AssignmentOutcome, Permission, RoleAssignment, RoleDefinition};
use crate::azure::auth::AuthMethod;
use crate::azure::graph::{
    APP_REGISTRATION_APP_ROLES, APP_REGISTRATION_ROLES, AppRoleAssignment, Application,
    DirectoryRole, Graph, ServicePrincipal,
};
use crate::error::{ApiError, Error, ErrorClass, Result};
use crate::secret::Secret;
use crate::spot::{AzureCredentials, AzureCredentialsInfo, SpotAccount};
use futures::{FutureExt, StreamExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio::sync::mpsc::UnboundedSender;

mod mg;
pub(super) mod view;

const NEED_ROLE_DEF_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
const NEED_ROLE_ASSIGN_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
/// A secret closer than this to its end is replaced.
const EXPIRY_MARGIN: time::Duration = status::EXPIRY_WARNING;
const PROPAGATION: &str = "waiting for Azure to propagate";
/// What to ask for when app registration is not allowed.
const APP_RIGHTS_HINT: &str =
    "ask for the Application Developer role or for 'Users can register applications'";
/// The same for a service principal (app roles and directory roles are what an administrator
/// grants a principal; the user setting does not apply to it).
const SP_APP_RIGHTS_HINT: &str = "ask an administrator to grant it Microsoft Graph's Application.ReadWrite.OwnedBy application permission (admin consent: an app role assignment on Microsoft Graph's service principal) or the Application Administrator directory role";
/// Subscriptions in flight at once within a tenant (their ARM writes are paced by the tenant's
/// write budget, `pace::WriteBudget`, not by this).
const CONCURRENCY: usize = 16;
/// Subscriptions looked up at once (reads only).
const LOOKUP_CONCURRENCY: usize = 32;

// ---------------------------------------------------------------------------------------------
// Facts: what exists, looked up before anything is written. They travel with the `Plan`.

#[derive(Debug, Clone)]
enum AppFact {
    Ours(Application),
    Missing,
    /// Same-named apps without our marker.
    Foreign(usize),
    /// Graph refused to list apps.
    Unreadable(String, Option<ApiError>),
}

#[derive(Debug, Clone)]
enum RoleFact {
    Ours(RoleDefinition),
    Missing,
    Foreign(RoleDefinition),
}

#[derive(Debug, Clone)]
enum AccountFact {
    /// Connect this existing account (whose it is, and why).
    Reuse(SpotAccount, AccountKind, String),
    Create(String),
    /// Connected to the subscription through an app that is not ours: left as it is.
    Keep(Foreign),
    Blocked(String, Option<ApiError>),
}

/// A Spot connection made through an app that is not ours (issue 16 §3).
#[derive(Debug, Clone)]
struct Foreign {
    account: SpotAccount,
    /// The client id Spot holds (None: Spot shows no credentials).
    client_id: Option<String>,
    /// That app's display name in the tenant, when Graph knows it.
    app_name: Option<String>,
    expires: Option<String>,
}

impl Foreign {
    /// "Spot.io-fabrikam-prod (c1000003-…)", or the client id alone.
    fn app(&self) -> String {
        match (&self.app_name, &self.client_id) {
            (Some(n), Some(c)) => format!("{n} ({c})"),
            (None, Some(c)) => format!("app {c}"),
            (_, None) => "credentials Spot does not show".into(),
        }
    }

    fn expiry(&self) -> String {
        self.expires
            .as_deref()
            .map(|d| d.split('T').next().unwrap_or(d).to_string())
            .unwrap_or_else(|| "(unknown)".into())
    }

    /// The plan's line for a connection kept as it is.
    fn keep_line(&self) -> String {
        format!(
            "connected through {}, secret expires {}: keep (Spot account {} is not ours: nothing is changed; --take-over replaces its credentials with ours)",
            self.app(),
            self.expiry(),
            self.account.account_id
        )
    }

    /// The plan's line for a take-over.
    fn take_over_line(&self, our_app: &str) -> String {
        format!(
            "TAKE OVER: replace the credentials of Spot account {} ({}, connected through {}, secret expires {}) with {our_app}'s and a new secret of it; this cannot be undone (Spot has no call that restores or deletes credentials); {} itself is not touched, and the account stays chosen: `remove` never deletes it",
            self.account.account_id,
            self.account.name,
            self.app(),
            self.expiry(),
            self.app_name.as_deref().unwrap_or("the other app"),
        )
    }
}

/// A Spot account and its credentials, as read.
type Looked = (SpotAccount, Option<AzureCredentialsInfo>);

/// What Spot showed for one subscription, before our app is known.
#[derive(Debug, Clone)]
struct SpotLook {
    /// The accounts connected to the subscription (`?cloudAccountId=`), with their credentials.
    connected: Vec<Looked>,
    /// The organization's accounts; Err: the token may not list them (not an Organization
    /// Admin's).
    org: std::result::Result<Vec<SpotAccount>, ApiError>,
    /// The account `--spot-account` names, or the one the state records: None when Spot says
    /// it does not exist (or this token cannot see it).
    named: Option<(String, Option<Looked>)>,
}

/// Whether the caller may register applications in the tenant (Entra), checked before writing.
#[derive(Debug, Clone)]
enum AppRights {
    Allowed(String),
    Denied(String),
    /// Could not be read (no permission to read the policy, a managed identity, …): not blocking.
    Unknown(String),
}

/// Everything `apply` needs, as `plan` found it.
#[derive(Debug)]
pub(crate) struct Facts {
    settings: Settings,
    /// `reconcile`: a secret Spot holds that ends by then is replaced by the tenant's one new
    /// secret of this run (see [`plan_renewing`]).
    renew_before: Option<OffsetDateTime>,
    policy: Policy,
    tenants: Vec<TenantFacts>,
    /// Subscriptions connected through an app that is not ours, kept as they are: nothing of
    /// theirs is written (issue 16 §3).
    kept: Vec<SubFacts>,
}

impl Facts {
    fn kept_sub(&self, subscription: &str) -> Option<&SubFacts> {
        self.kept
            .iter()
            .find(|k| k.target.subscription_id.eq_ignore_ascii_case(subscription))
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(super) fn renew_before(&self) -> Option<OffsetDateTime> {
        self.renew_before
    }

    /// Whether a state file the plan was made from has changed since (another run wrote it).
    pub(super) fn states_changed(&self, state_dir: &std::path::Path) -> bool {
        self.tenants.iter().flat_map(|t| &t.subs).any(|s| {
            let now = State::load(state_dir, &s.target.tenant_id, &s.target.subscription_id);
            now.map_or(true, |now| now != s.state)
        })
    }
}

#[derive(Debug)]
struct TenantFacts {
    tenant: String,
    app_name: String,
    role_name: String,
    app_rights: AppRights,
    app: AppFact,
    sp: Option<ServicePrincipal>,
    role: RoleFact,
    subs: Vec<SubFacts>,
    /// What the tenant's (or the app's own) app management policy means for a new secret.
    secret_limit: SecretLimit,
    /// `--management-group`: the group's facts (the role is assignable there and assigned once).
    mg: Option<mg::MgFacts>,
}

#[derive(Debug)]
struct SubFacts {
    target: Target,
    state: State,
    account: AccountFact,
    /// Notes on the Spot account the plan says (a state file naming an account we did not
    /// create; a token that cannot list the organization's accounts).
    account_notes: Vec<String>,
    /// `--take-over`: the connection whose credentials this run replaces.
    taken_over: Option<Foreign>,
    spot: Option<SpotLook>,
    spot_creds: Option<AzureCredentialsInfo>,
    /// None: the caller's permissions could not be read (not blocking).
    permissions: Option<Vec<Permission>>,
    assignment: Option<RoleAssignment>,
    /// Some(record): the recorded secret is with Spot, present on the app and not expiring.
    secret_reuse: Option<SecretRecord>,
    secret_reason: String,
}

impl SubFacts {
    fn scope(&self) -> String {
        scope_of(&self.target.subscription_id)
    }
    fn can(&self, action: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| arm::permits(p, action))
    }
}

impl TenantFacts {
    /// Whether the run makes the tenant's one new client secret.
    fn new_secret(&self) -> bool {
        self.subs.iter().any(|s| s.secret_reuse.is_none())
    }
    fn scopes(&self) -> Vec<String> {
        if let Some(m) = &self.mg {
            return vec![m.scope.clone()];
        }
        self.subs.iter().map(SubFacts::scope).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

pub(super) async fn plan(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
) -> Result<Plan> {
    plan_renewing(session, targets, settings, None).await
}

/// [`plan`], where a secret Spot holds for a subscription that ends by `renew_before` (or whose
/// connection reports so) is replaced too: by the tenant's one new secret of the run, the same
/// one that connects its new subscriptions (`reconcile`'s rotation: one secret per app per pass).
pub(super) async fn plan_renewing(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    renew_before: Option<OffsetDateTime>,
) -> Result<Plan> {
    let mut targets: Vec<Target> = targets.to_vec();
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.subscription_id.to_ascii_lowercase()));
    if targets.is_empty() {
        return Err(Error::Usage("no subscription to plan".into()));
    }
    if matches!(settings.spot_account, SpotAccountChoice::Existing(_)) && targets.len() > 1 {
        return Err(Error::Usage(
            "--spot-account act-… names one account: it cannot be used with several subscriptions"
                .into(),
        ));
    }
    // Every check the plan can make comes before any write (issue 16 §8).
    if !SECRET_MONTHS.contains(&settings.secret_months) {
        return Err(Error::Usage(format!(
            "a client secret of {} months: the lifetime must be {} to {} months",
            settings.secret_months,
            SECRET_MONTHS.start(),
            SECRET_MONTHS.end()
        )));
    }
    let policy = Policy::load(settings.policy_file.as_deref())?;
    // At a management group, a role with DataActions cannot be assigned: split (mg.rs).
    let (policy, data_policy) = mg::split_policy(policy, settings);
    // Spot's accounts, listed once, alongside the tenants' lookups (each subscription waits
    // for them only where it needs them).
    let accounts: AccountsF<'_> = async {
        match read(|| session.spot.list_accounts()).await {
            Ok(a) => Ok(Ok(a)),
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }
    .boxed()
    .shared();
    let mut tenants: Vec<String> = Vec::new();
    for t in &targets {
        if !tenants.contains(&t.tenant_id) {
            tenants.push(t.tenant_id.clone());
        }
    }
    // New Spot accounts are named after their subscription; two of one name get " (2)".
    let names = Mutex::new(Vec::<String>::new());
    let lookups = tenants.iter().map(|tenant| {
        let subs: Vec<&Target> = targets.iter().filter(|t| &t.tenant_id == tenant).collect();
        lookup_tenant(
            session,
            settings,
            tenant,
            subs,
            accounts.clone(),
            &names,
            data_policy.as_ref(),
        )
    });
    let mut tenants = futures::future::try_join_all(lookups).await?;
    // A connection that is not ours is kept: its subscription needs none of the tenant's
    // objects, and a tenant left with none writes nothing.
    let mut kept = Vec::new();
    for t in &mut tenants {
        let (k, active): (Vec<SubFacts>, Vec<SubFacts>) = std::mem::take(&mut t.subs)
            .into_iter()
            .partition(|s| matches!(s.account, AccountFact::Keep(_)));
        t.subs = active;
        kept.extend(k);
    }
    tenants.retain(|t| !t.subs.is_empty());
    if let Some(before) = renew_before {
        for s in tenants.iter_mut().flat_map(|t| t.subs.iter_mut()) {
            renew(s, before);
        }
    }
    let facts = Facts {
        settings: settings.clone(),
        renew_before,
        policy,
        tenants,
        kept,
    };
    let mut items: Vec<PlanItem> = facts
        .tenants
        .iter()
        .flat_map(|t| plan_items(&facts, t))
        .collect();
    items.extend(facts.kept.iter().filter_map(keep_item));
    let mut plan = Plan::new(targets, items);
    plan.facts = Some(std::sync::Arc::new(facts));
    Ok(plan)
}

/// Spot's accounts (or why the token was refused), listed once per plan.
type AccountsF<'a> = futures::future::Shared<
    futures::future::BoxFuture<
        'a,
        std::result::Result<std::result::Result<Vec<SpotAccount>, ApiError>, Error>,
    >,
>;

async fn lookup_tenant(
    session: &Session,
    settings: &Settings,
    tenant: &str,
    subs: Vec<&Target>,
    accounts: AccountsF<'_>,
    names: &Mutex<Vec<String>>,
    data_policy: Option<&Policy>,
) -> Result<TenantFacts> {
    let graph = status::graph(session, tenant);
    let arm = status::arm(session, tenant);
    let app_name = settings.app_name_for(tenant);
    let role_name = mg::role_name(settings);
    let scopes: Vec<String> = match &settings.management_group {
        Some(m) => vec![crate::onboard::fleet::scope(&m.id)],
        None => subs.iter().map(|t| scope_of(&t.subscription_id)).collect(),
    };
    let states: Vec<State> = subs
        .iter()
        .map(|t| State::load(&session.state_dir, tenant, &t.subscription_id))
        .collect::<Result<_>>()?;
    let app_f = async {
        let (fact, sp) = match status::find_app(session, &graph, tenant, &app_name).await {
            Ok((Some(a), _)) => (AppFact::Ours(a), None),
            Ok((None, 0)) => (AppFact::Missing, None),
            Ok((None, n)) => (AppFact::Foreign(n), None),
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => {
                (AppFact::Unreadable(e.to_string(), Some(e)), None)
            }
            Err(e) => return Err(e),
        };
        // The app's own app management policies, alongside its service principal.
        let own_id = match &fact {
            AppFact::Ours(a) => Some(a.id.clone()),
            _ => None,
        };
        let sp_f = async {
            match &fact {
                AppFact::Ours(a) => read(|| graph.get_service_principal_by_app_id(&a.app_id)).await,
                _ => Ok(sp),
            }
        };
        let (sp, own) = tokio::join!(sp_f, lifetime::read_own(&graph, own_id.as_deref()));
        Ok((fact, sp?, own))
    };
    let role_f = status::find_role(session, &arm, tenant, &role_name, &scopes);
    let sub_permissions = settings.management_group.is_none() || data_policy.is_some();
    // LOOKUP_CONCURRENCY subscriptions in flight, the next one starting as soon as one ends
    // (a window, not rounds that wait for their slowest), in the targets' order.
    let subs_f = {
        use futures::StreamExt;
        let mut lookups = Vec::with_capacity(subs.len());
        for (t, state) in subs.iter().copied().zip(states) {
            lookups.push(lookup_sub(
                session,
                &arm,
                settings,
                t,
                state,
                accounts.clone(),
                sub_permissions,
            ));
        }
        futures::stream::iter(lookups)
            .buffered(LOOKUP_CONCURRENCY)
            .collect::<Vec<_>>()
    };
    // The tenant's app and role, then (at a management group) the group's facts: alongside the
    // subscriptions' look-ups, which they do not wait for.
    let tenant_f = async {
        let (app, role) = tokio::join!(app_f, role_f);
        let (app, sp, own) = app?;
        let role = match role? {
            None => RoleFact::Missing,
            Some(r) if is_our_role(&r) => RoleFact::Ours(r),
            Some(r) => RoleFact::Foreign(r),
        };
        let mg = match &settings.management_group {
            Some(m) => Some(
                mg::lookup(
                    session,
                    &arm,
                    settings,
                    m,
                    sp.as_ref(),
                    &role,
                    &subs,
                    data_policy,
                )
                .await?,
            ),
            None => None,
        };
        Ok::<_, Error>((app, sp, own, role, mg))
    };
    let (tenant_facts, rights, subs_found, tenant_policy) = tokio::join!(
        tenant_f,
        app_rights(session, &graph, tenant),
        subs_f,
        lifetime::read_tenant(&graph)
    );
    let (app, sp, own_policies, role, mg) = tenant_facts?;
    let subs = subs_found;
    let secret_limit = lifetime::evaluate(
        &tenant_policy,
        own_policies.as_ref(),
        match &app {
            AppFact::Ours(a) => Some((a.id.as_str(), a.created_date_time)),
            _ => None,
        },
        OffsetDateTime::now_utc(),
        settings.secret_months,
    );
    let mut subs = subs.into_iter().collect::<Result<Vec<_>>>()?;
    let our_app = match &app {
        AppFact::Ours(a) => Some(a.app_id.clone()),
        _ => None,
    };
    for s in &mut subs {
        if let Some(look) = &s.spot {
            let (fact, creds, notes, taken_over) = account_fact(
                settings,
                &s.target,
                &s.state,
                look,
                our_app.as_deref(),
                names,
            );
            (s.account, s.spot_creds, s.account_notes) = (fact, creds, notes);
            s.taken_over = taken_over;
        }
        // The other app's name, for the plan's line.
        let f = match (&mut s.account, &mut s.taken_over) {
            (AccountFact::Keep(f), _) | (_, Some(f)) => Some(f),
            _ => None,
        };
        if let Some(f) = f
            && let Some(c) = f.client_id.clone()
        {
            f.app_name = match read(|| graph.get_service_principal_by_app_id(&c)).await {
                Ok(Some(sp)) => sp.display_name.clone(),
                _ => None,
            };
        }
    }
    for s in &mut subs {
        if let (Some(sp), RoleFact::Ours(r), None) = (&sp, &role, &settings.management_group) {
            s.assignment = find_assignment(&arm, &s.target.subscription_id, &sp.id, r).await?;
        }
        (s.secret_reuse, s.secret_reason) = secret_decision(&app, s);
    }
    Ok(TenantFacts {
        tenant: tenant.to_string(),
        app_name,
        role_name,
        app_rights: rights,
        app,
        sp,
        role,
        subs,
        secret_limit,
        mg,
    })
}

async fn lookup_sub(
    session: &Session,
    arm: &Arm,
    settings: &Settings,
    t: &Target,
    state: State,
    accounts: AccountsF<'_>,
    sub_permissions: bool,
) -> Result<SubFacts> {
    let scope = scope_of(&t.subscription_id);
    let sub = t.subscription_id.as_str();
    // The account connected to the subscription, whatever the token (`?cloudAccountId=`).
    let connected = async {
        let list = match read(|| session.spot.accounts_for_subscription(sub)).await {
            Ok(l) => l,
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => return Ok(Err(e)),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for a in list {
            let c = read(|| session.spot.get_azure_credentials(&a.account_id)).await?;
            out.push((a, c));
        }
        Ok(Ok(out))
    };
    let named_id = match &settings.spot_account {
        SpotAccountChoice::Existing(id) => Some(id.clone()),
        _ => state
            .spot_account_origin
            .as_ref()
            .map(|o| match o {
                AccountOrigin::Created { account_id, .. }
                | AccountOrigin::Chosen { account_id } => account_id.clone(),
            })
            .or_else(|| state.spot_account_id.clone()),
    };
    let named = async {
        let Some(id) = named_id.clone() else {
            return Ok(None);
        };
        match read(|| session.spot.get_account(&id)).await {
            Ok(Some(a)) => {
                let c = read(|| session.spot.get_azure_credentials(&a.account_id)).await?;
                Ok(Some((id, Some((a, c)))))
            }
            Ok(None) => Ok(Some((id, None))),
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Ok(Some((id, None))),
            Err(e) => Err(e),
        }
    };
    // At a management group without the DataActions split nothing of the plan is decided by
    // the caller's permissions at each subscription (the group's are read once, mg::lookup):
    // not read, so that a pass over a thousand subscriptions makes no ARM read per subscription.
    let permissions = async {
        if sub_permissions {
            Some(read(|| arm.permissions(&scope)).await)
        } else {
            None
        }
    };
    let (permissions, accounts, connected) = tokio::join!(permissions, accounts, connected);
    let accounts = accounts?;
    let connected = connected?;
    // The account the state (or --spot-account) names is usually the one connected to the
    // subscription, already read with its credentials: looked up on its own only otherwise.
    let named = match (&named_id, &connected) {
        (Some(id), Ok(list)) if list.iter().any(|(a, _)| a.account_id == *id) => list
            .iter()
            .find(|(a, _)| a.account_id == *id)
            .map(|(a, c)| Some((id.clone(), Some((a.clone(), c.clone())))))
            .unwrap_or_default(),
        _ => named.await?,
    };
    let permissions = match permissions {
        None => Ok(None),
        Some(p) => p.map(Some),
    };
    let permissions = match permissions {
        Ok(p) => p,
        Err(Error::Api(e))
            if e.has_code("SubscriptionNotFound") || e.has_code("InvalidSubscriptionId") =>
        {
            return Err(Error::Other(format!(
                "subscription {} was not found in tenant {} ({e})",
                t.subscription_id, t.tenant_id
            )));
        }
        Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Some(vec![]),
        Err(Error::Api(e)) if e.class() == ErrorClass::NotFound => None,
        Err(e) => return Err(e),
    };
    let (account, spot) = match connected {
        Err(e) => (
            AccountFact::Blocked(
                format!("the Spot token was refused ({} {})", e.status, e.code),
                Some(e.clone()),
            ),
            None,
        ),
        Ok(connected) => (
            // Decided once the tenant's app is known (`account_fact`).
            AccountFact::Create(String::new()),
            Some(SpotLook {
                connected,
                org: accounts,
                named,
            }),
        ),
    };
    Ok(SubFacts {
        target: t.clone(),
        state,
        account,
        account_notes: vec![],
        taken_over: None,
        spot,
        spot_creds: None,
        permissions,
        assignment: None,
        secret_reuse: None,
        secret_reason: String::new(),
    })
}

/// Whose the Spot account of a subscription is and what the run does with it (issue 16 §2,
/// §3), once the tenant's app of ours is known (`our_app`: its client id). Returns the fact,
/// the credentials Spot holds for it, notes for the plan, and the connection a take-over
/// replaces.
fn account_fact(
    settings: &Settings,
    t: &Target,
    state: &State,
    look: &SpotLook,
    our_app: Option<&str>,
    names: &Mutex<Vec<String>>,
) -> (
    AccountFact,
    Option<AzureCredentialsInfo>,
    Vec<String>,
    Option<Foreign>,
) {
    let sub = &t.subscription_id;
    let mut notes = Vec::new();
    let ours = |c: &Option<AzureCredentialsInfo>| {
        c.as_ref()
            .and_then(|c| c.client_id.as_deref())
            .zip(our_app)
            .is_some_and(|(c, o)| c.eq_ignore_ascii_case(o))
    };
    let foreign = |a: &SpotAccount, c: &Option<AzureCredentialsInfo>| Foreign {
        account: a.clone(),
        client_id: c.as_ref().and_then(|c| c.client_id.clone()),
        app_name: None,
        expires: c.as_ref().and_then(|c| c.expiration_date.clone()),
    };
    // A connection through another app: kept, or taken over (then chosen).
    let keep_or_take = |a: &SpotAccount, c: &Option<AzureCredentialsInfo>, notes: Vec<String>| {
        let f = foreign(a, c);
        if settings.take_over {
            (
                AccountFact::Reuse(
                    a.clone(),
                    AccountKind::Chosen,
                    "taken over with --take-over: chosen, never deleted".into(),
                ),
                c.clone(),
                notes,
                Some(f),
            )
        } else {
            (AccountFact::Keep(f), c.clone(), notes, None)
        }
    };
    let kind_of = |a: &SpotAccount, c: &Option<AzureCredentialsInfo>| {
        let creds_app = c.as_ref().and_then(|c| c.client_id.as_deref());
        if state.created(&a.account_id, &a.name, creds_app, our_app) {
            AccountKind::Created
        } else {
            AccountKind::Chosen
        }
    };
    if let SpotAccountChoice::Existing(id) = &settings.spot_account {
        let Some((_, Some((a, c)))) = &look.named else {
            return (
                AccountFact::Blocked(
                    format!(
                        "Spot account {id} is not in your organization (or this Spot token cannot see it)"
                    ),
                    None,
                ),
                None,
                notes,
                None,
            );
        };
        return match (&a.provider_external_id, c) {
            (Some(p), _) if !p.eq_ignore_ascii_case(sub) => (
                AccountFact::Blocked(
                    format!("Spot account {id} is already connected to subscription {p}"),
                    None,
                ),
                None,
                notes,
                None,
            ),
            (_, Some(_)) if ours(c) => (
                AccountFact::Reuse(
                    a.clone(),
                    kind_of(a, c),
                    "the account you chose; connected through this tenant's app of ours".into(),
                ),
                c.clone(),
                notes,
                None,
            ),
            (_, Some(_)) => keep_or_take(a, c, notes),
            (_, None) => (
                AccountFact::Reuse(
                    a.clone(),
                    AccountKind::Chosen,
                    "the account you chose (--spot-account): connected, never deleted".into(),
                ),
                None,
                notes,
                None,
            ),
        };
    }
    // The account connected to this subscription: through our app first.
    let mut connected: Vec<&Looked> = look.connected.iter().collect();
    connected.sort_by_key(|(a, c)| (!ours(c), a.created_at, a.account_id.clone()));
    if let Some((a, c)) = connected.first() {
        if ours(c) {
            let kind = kind_of(a, c);
            let why = match kind {
                AccountKind::Created => {
                    "created by an earlier run (recorded); connected through this tenant's app of ours"
                }
                _ if state.chosen(&a.account_id) => {
                    "chosen earlier (recorded); connected through this tenant's app of ours: never deleted"
                }
                _ => {
                    "already connected to this subscription through this tenant's app of ours (no record here of creating it: never deleted)"
                }
            };
            return (
                AccountFact::Reuse(a.clone(), kind, why.into()),
                c.clone(),
                notes,
                None,
            );
        }
        return keep_or_take(a, c, notes);
    }
    // The account a run of this state dir created or the operator chose, not connected yet.
    if let Some((id, found)) = &look.named {
        match found {
            Some((a, c))
                if a.provider_external_id.is_none()
                    && c.is_none()
                    && (state.created(&a.account_id, &a.name, None, None)
                        || state.chosen(&a.account_id)) =>
            {
                let (kind, why) = if state.chosen(&a.account_id) {
                    (AccountKind::Chosen, "chosen earlier (recorded), not connected yet")
                } else {
                    (AccountKind::Created, "created by an earlier run (recorded), not connected yet")
                };
                return (AccountFact::Reuse(a.clone(), kind, why.into()), None, notes, None);
            }
            Some((a, _)) => notes.push(format!(
                "the state file names Spot account {id} ({}), which no run of this state dir created for this subscription: it is left alone",
                a.name
            )),
            None => notes.push(format!(
                "the state file names Spot account {id}, which Spot does not show: it is left alone"
            )),
        }
    }
    match &look.org {
        Ok(org) => {
            // Created by a run killed before it could record the id: an account of the name
            // it gave, made after it asked, not connected.
            if let (Some(n), Some(at)) = (&state.spot_account_pending, state.spot_account_pending_at)
                && let Some(a) = org.iter().find(|a| {
                    &a.name == n
                        && a.provider_external_id.is_none()
                        && a.created_at.is_some_and(|c| c >= at - time::Duration::seconds(2))
                })
            {
                return (
                    AccountFact::Reuse(
                        a.clone(),
                        AccountKind::Created,
                        "created by an interrupted run".into(),
                    ),
                    None,
                    notes,
                    None,
                );
            }
        }
        Err(e) => notes.push(format!(
            "this Spot token cannot list the organization's accounts ({} {}): a Spot account another run made for this subscription and has not connected yet cannot be ruled out (a duplicate)",
            e.status, e.code
        )),
    }
    let base = account_name(t);
    let mut names = lock(names);
    let mut n = base.clone();
    let mut i = 2;
    while names.contains(&n) {
        n = format!("{base} ({i})");
        i += 1;
    }
    names.push(n.clone());
    (AccountFact::Create(n), None, notes, None)
}

/// A new Spot account is named after the subscription (Spot wants a letter in the name).
fn account_name(t: &Target) -> String {
    let n = t.subscription_name.trim();
    let n = if n.is_empty() {
        t.subscription_id.as_str()
    } else {
        n
    };
    if n.chars().any(|c| c.is_ascii_alphabetic()) {
        n.to_string()
    } else {
        format!("azure-{n}")
    }
}

/// The Entra right to register applications: for a user, the tenant's "Users can register
/// applications" (authorizationPolicy) or an app-management directory role; for a service
/// principal signed in with a secret, Graph's Application.ReadWrite.All/OwnedBy app role or
/// such a directory role. What cannot be read is "unknown", never a block.
async fn app_rights(session: &Session, graph: &Graph, tenant: &str) -> AppRights {
    match session.auth.method() {
        AuthMethod::DeviceCode | AuthMethod::Browser | AuthMethod::AzureCli => {
            let (policy, roles) = tokio::join!(
                read(|| graph.users_may_create_apps()),
                read(|| graph.my_directory_roles())
            );
            user_app_rights(tenant, policy, roles)
        }
        AuthMethod::ClientSecret | AuthMethod::WorkloadIdentity => {
            let Some(client_id) = session.auth.client_id() else {
                return AppRights::Unknown(
                    "could not check the right to register applications; the write will tell".into(),
                );
            };
            let sp = match read(|| graph.get_service_principal_by_app_id(&client_id)).await {
                Ok(Some(sp)) => sp,
                Ok(None) => {
                    return AppRights::Unknown(format!(
                        "could not check the right to register applications (no service principal for {client_id} in this tenant); the write will tell"
                    ));
                }
                Err(e) => return AppRights::Unknown(rights_unknown(&e)),
            };
            let (grants, roles) = tokio::join!(
                read(|| graph.app_role_assignments(&sp.id)),
                read(|| graph.service_principal_directory_roles(&sp.id))
            );
            service_principal_app_rights(&sp.id, &client_id, grants, roles)
        }
        AuthMethod::ManagedIdentity => AppRights::Unknown(
            "could not check a managed identity's right to register applications; the write will tell".into(),
        ),
    }
}

/// Whether the secret Spot holds for this subscription can stay, and why (not).
fn secret_decision(app: &AppFact, s: &SubFacts) -> (Option<SecretRecord>, String) {
    let AppFact::Ours(app) = app else {
        return (None, "a new app registration needs a secret".into());
    };
    let AccountFact::Reuse(acct, _, _) = &s.account else {
        return (None, "a new Spot account needs the secret".into());
    };
    let creds = s.spot_creds.as_ref();
    let spot_has_it = creds.is_some_and(|c| {
        c.client_id
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
            && c.subscription_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&s.target.subscription_id))
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
    // The secret Spot holds: the one recorded, or (state lost) one of ours whose end date is
    // the expiration Spot reports.
    let rec = s
        .state
        .secret
        .clone()
        .filter(|r| r.handed_to_spot)
        .or_else(|| {
            let c = creds?;
            let spot_end = c.expiration()?;
            app.password_credentials
                .iter()
                .filter(|p| {
                    p.display_name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(SECRET_PREFIX))
                })
                .find(|p| super::orphans::holds(c, p))
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
    if !app
        .password_credentials
        .iter()
        .any(|p| p.key_id.eq_ignore_ascii_case(&rec.key_id))
    {
        return (
            None,
            format!("the recorded secret {} is no longer on the app", rec.key_id),
        );
    }
    if rec.end_date_time - OffsetDateTime::now_utc() < EXPIRY_MARGIN {
        return (
            None,
            format!(
                "the secret expires on {}: a new one replaces it",
                rec.end_date_time.date()
            ),
        );
    }
    let why = format!("Spot holds it; it expires on {}", rec.end_date_time.date());
    (Some(rec), why)
}

/// `plan_renewing`: the secret this subscription's connection holds ends by `before` (as
/// recorded, or as Spot reports its `expirationDate`): the run's new secret replaces it.
fn renew(s: &mut SubFacts, before: OffsetDateTime) {
    let Some(rec) = &s.secret_reuse else { return };
    let spot_end = s.spot_creds.as_ref().and_then(|c| c.expiration());
    let end = spot_end.map_or(rec.end_date_time, |e| e.min(rec.end_date_time));
    if end > before {
        return;
    }
    s.secret_reason = format!(
        "the secret Spot holds ends on {}, within the rotation window: the run's new secret replaces it (set on the Spot account, read back, then the old one removed once no Spot account holds it)",
        end.date()
    );
    s.secret_reuse = None;
}

// ---------------------------------------------------------------------------------------------
// The plan

/// A plan item of the tenant's shared objects (no subscription of its own).
fn tenant_item(
    f: &TenantFacts,
    step: Step,
    object: &str,
    name: &str,
    action: PlanAction,
    id: Option<String>,
    reason: String,
) -> PlanItem {
    PlanItem {
        step,
        object: object.into(),
        name: name.into(),
        action,
        tenant_id: f.tenant.clone(),
        subscription_id: None,
        id,
        reason,
        drift: None,
        ownership: None,
    }
}

fn plan_items(facts: &Facts, f: &TenantFacts) -> Vec<PlanItem> {
    let mut items = Vec::new();
    let shared = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        tenant_item(f, step, object, name, action, id, reason)
    };
    let n = f.subs.len();
    let for_subs = |subs: Vec<&SubFacts>| -> String {
        if n == 1 {
            return String::new();
        }
        let ids: Vec<&str> = subs
            .iter()
            .map(|s| s.target.subscription_id.as_str())
            .collect();
        format!(" (for {} subscription(s): {})", ids.len(), ids.join(", "))
    };
    // App registration + service principal
    match &f.app {
        AppFact::Ours(a) => {
            items.push(shared(
                Step::AppRegistration,
                "app registration",
                &a.display_name,
                PlanAction::Reuse,
                Some(a.app_id.clone()),
                "ours: it carries the spot-connect tag".into(),
            )
            .ours());
            items.push(match (&f.sp, &f.app_rights) {
                (Some(sp), _) => shared(
                    Step::AppRegistration,
                    "service principal",
                    &a.display_name,
                    PlanAction::Reuse,
                    Some(sp.id.clone()),
                    "exists for the app".into(),
                ),
                (None, AppRights::Denied(why)) => shared(
                    Step::AppRegistration,
                    "service principal",
                    &a.display_name,
                    PlanAction::Blocked,
                    None,
                    format!("the app has no service principal and {why}"),
                ),
                (None, _) => shared(
                    Step::AppRegistration,
                    "service principal",
                    &a.display_name,
                    PlanAction::Create,
                    None,
                    "the app has no service principal yet".into(),
                ),
            });
        }
        AppFact::Missing => {
            items.push(match &f.app_rights {
                AppRights::Denied(why) => shared(
                    Step::AppRegistration,
                    "app registration",
                    &f.app_name,
                    PlanAction::Blocked,
                    None,
                    why.clone(),
                ),
                AppRights::Allowed(why) | AppRights::Unknown(why) => shared(
                    Step::AppRegistration,
                    "app registration",
                    &f.app_name,
                    PlanAction::Create,
                    None,
                    format!(
                        "no app registration named {} exists (single tenant, redirect URI https://spot.io); {why}",
                        f.app_name
                    ),
                ),
            });
            items.push(shared(
                Step::AppRegistration,
                "service principal",
                &f.app_name,
                PlanAction::Create,
                None,
                "for the new app".into(),
            ));
        }
        AppFact::Foreign(k) => items.push(shared(
            Step::AppRegistration,
            "app registration",
            &f.app_name,
            PlanAction::Blocked,
            None,
            format!(
                "{k} app registration(s) named {} exist but are not managed by spot-connect (no \"spot-connect\" tag): they are never taken over; choose another name with --app-name",
                f.app_name
            ),
        )
        .not_ours()),
        AppFact::Unreadable(e, api) => items.push(shared(
            Step::AppRegistration,
            "app registration",
            &f.app_name,
            PlanAction::Blocked,
            None,
            format!(
                "cannot read app registrations ({e}).{}",
                api.as_ref()
                    .and_then(ApiError::hint)
                    .map(|h| format!(" {h}"))
                    .unwrap_or_default()
            ),
        )),
    }
    // Client secrets: the secrets Spot keeps, then the tenant's one new secret.
    let mut kept: Vec<(&SecretRecord, Vec<&SubFacts>)> = Vec::new();
    for s in &f.subs {
        if let Some(r) = &s.secret_reuse {
            match kept.iter_mut().find(|(k, _)| k.key_id == r.key_id) {
                Some((_, v)) => v.push(s),
                None => kept.push((r, vec![s])),
            }
        }
    }
    for (r, subs) in kept {
        let reason = format!("{}{}", subs[0].secret_reason, for_subs(subs.clone()));
        // Its own name (earlier versions named a secret after its subscription).
        let name = match &f.app {
            AppFact::Ours(a) => a
                .password_credentials
                .iter()
                .find(|p| p.key_id.eq_ignore_ascii_case(&r.key_id))
                .and_then(|p| p.display_name.clone()),
            _ => None,
        }
        .unwrap_or_else(|| shared_secret_name(&f.tenant));
        items.push(shared(
            Step::ClientSecret,
            "client secret",
            &name,
            PlanAction::Reuse,
            Some(r.key_id.clone()),
            reason,
        ));
    }
    if f.new_secret() {
        let needing: Vec<&SubFacts> = f.subs.iter().filter(|s| s.secret_reuse.is_none()).collect();
        let owner_only = match (&f.app_rights, &f.app) {
            (AppRights::Denied(_), AppFact::Ours(_)) => {
                "; you may not register applications, so this works only if you own the app"
            }
            _ => "",
        };
        let months = facts.settings.secret_months;
        let policy = f
            .secret_limit
            .plan_note(months, OffsetDateTime::now_utc())
            .map(|n| format!("; {n}"))
            .unwrap_or_default();
        let (action, lifetime) = match &f.secret_limit {
            SecretLimit::Blocked { .. } => (PlanAction::Blocked, String::new()),
            SecretLimit::Capped { .. } => (PlanAction::Create, String::new()),
            _ => (PlanAction::Create, format!(" ({months} months)")),
        };
        items.push(shared(
            Step::ClientSecret,
            "client secret",
            &shared_secret_name(&f.tenant),
            action,
            None,
            format!(
                "{}{lifetime}{}{policy}{owner_only}",
                needing[0].secret_reason,
                for_subs(needing.clone())
            ),
        ));
    }
    // Custom role: one, assignable at every subscription of the run.
    let missing_scopes: Vec<String> = match &f.role {
        RoleFact::Ours(r) => f
            .scopes()
            .into_iter()
            .filter(|s| {
                !r.properties
                    .assignable_scopes
                    .iter()
                    .any(|x| same_scope(x, s))
            })
            .collect(),
        _ => f.scopes(),
    };
    let drift = match &f.role {
        RoleFact::Ours(r) | RoleFact::Foreign(r) => Some(policy::drift(
            &facts.policy.actions,
            &r.properties.permissions,
        )),
        RoleFact::Missing => None,
    };
    let at = |scopes: &[String]| -> String {
        if scopes.len() == 1 {
            scopes[0].clone()
        } else {
            format!("{} subscriptions", scopes.len())
        }
    };
    let mut role_item = match &f.role {
        RoleFact::Missing => shared(
            Step::CustomRole,
            "custom role",
            &f.role_name,
            PlanAction::Create,
            None,
            format!(
                "no role named {} exists; Spot's actions from the {}, assignable at {}",
                f.role_name,
                facts.policy.source,
                at(&f.scopes())
            ),
        ),
        RoleFact::Foreign(r) => shared(
            Step::CustomRole,
            "custom role",
            &f.role_name,
            PlanAction::Blocked,
            Some(r.id.clone()),
            format!(
                "a role named {} exists ({}) but was not made by spot-connect (no marker in its description): it is never changed; choose another name with --role-name",
                f.role_name, r.id
            ),
        ),
        RoleFact::Ours(r) => {
            let d = drift.clone().unwrap_or_default();
            let mut why = Vec::new();
            if !missing_scopes.is_empty() {
                why.push(format!(
                    "add {} to its assignable scopes",
                    at(&missing_scopes)
                ));
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
                shared(
                    Step::CustomRole,
                    "custom role",
                    &f.role_name,
                    PlanAction::Reuse,
                    Some(r.id.clone()),
                    format!("ours, with all of Spot's actions{extra}"),
                )
            } else {
                shared(
                    Step::CustomRole,
                    "custom role",
                    &f.role_name,
                    PlanAction::Update,
                    Some(r.id.clone()),
                    format!("ours: {}", why.join(", ")),
                )
            }
        }
    };
    role_item.drift = drift.filter(|d| !d.is_empty());
    role_item.ownership = match &f.role {
        RoleFact::Ours(_) => Some(Ownership::Ours),
        RoleFact::Foreign(_) => Some(Ownership::NotOurs),
        RoleFact::Missing => None,
    };
    if let Some(m) = &f.mg {
        mg::amend_role_item(&mut role_item, f, m);
    } else if matches!(role_item.action, PlanAction::Create | PlanAction::Update) {
        // The role's new assignable scopes must all be writable by the caller.
        let denied: Vec<&SubFacts> = f
            .subs
            .iter()
            .filter(|s| !s.can(NEED_ROLE_DEF_WRITE))
            .collect();
        if !denied.is_empty() {
            role_item.action = PlanAction::Blocked;
            role_item.reason = lacks(NEED_ROLE_DEF_WRITE, &denied);
        }
    }
    items.push(role_item);
    if let Some(m) = &f.mg {
        items.extend(mg::items(f, m));
    }
    // Per subscription: Spot account, role assignment, Spot connection.
    for s in &f.subs {
        let sub =
            |step, object: &str, name: &str, action, id: Option<String>, reason: String| PlanItem {
                subscription_id: Some(s.target.subscription_id.clone()),
                ..shared(step, object, name, action, id, reason)
            };
        let notes: String = s.account_notes.iter().map(|n| format!("; {n}")).collect();
        items.push(match &s.account {
            AccountFact::Reuse(a, kind, why) => sub(
                Step::SpotAccount,
                "Spot account",
                &a.name,
                PlanAction::Reuse,
                Some(a.account_id.clone()),
                format!("{}: {why}{notes}", kind.label()),
            ),
            AccountFact::Create(n) => sub(
                Step::SpotAccount,
                "Spot account",
                n,
                PlanAction::Create,
                None,
                format!("no Spot account is connected to this subscription: created by this run (then ours to delete){notes}"),
            ),
            AccountFact::Keep(f) => sub(
                Step::SpotAccount,
                "Spot account",
                &f.account.name,
                PlanAction::Keep,
                Some(f.account.account_id.clone()),
                f.keep_line(),
            )
            .not_ours(),
            AccountFact::Blocked(why, e) => sub(
                Step::SpotAccount,
                "Spot account",
                "",
                PlanAction::Blocked,
                None,
                format!(
                    "{why}{}",
                    e.as_ref()
                        .and_then(ApiError::hint)
                        .map(|h| format!(": {h}"))
                        .unwrap_or_default()
                ),
            ),
        });
        let scope = s.scope();
        // At a management group: one assignment there covers them all (mg::items).
        if f.mg.is_none() {
            items.push(match &s.assignment {
                Some(a) => sub(
                    Step::RoleAssignment,
                    "role assignment",
                    &f.role_name,
                    PlanAction::Reuse,
                    Some(a.id.clone()),
                    format!("the role is assigned to the service principal at {scope}"),
                ),
                None if !s.can(NEED_ROLE_ASSIGN_WRITE) => sub(
                    Step::RoleAssignment,
                    "role assignment",
                    &f.role_name,
                    PlanAction::Blocked,
                    None,
                    lacks(NEED_ROLE_ASSIGN_WRITE, &[s]),
                ),
                None => sub(
                    Step::RoleAssignment,
                    "role assignment",
                    &f.role_name,
                    PlanAction::Create,
                    None,
                    format!("assign the role to the app's service principal at {scope}"),
                ),
            });
        }
        let app_label = match &f.app {
            AppFact::Ours(a) => a.display_name.clone(),
            _ => f.app_name.clone(),
        };
        items.push(match (&s.secret_reuse, &s.account) {
            (_, AccountFact::Reuse(a, _, _)) if s.taken_over.is_some() => sub(
                Step::ConnectSpot,
                "Spot connection",
                &a.name,
                PlanAction::Update,
                Some(a.account_id.clone()),
                s.taken_over
                    .as_ref()
                    .map(|t| t.take_over_line(&app_label))
                    .unwrap_or_default(),
            ),
            (Some(_), AccountFact::Reuse(a, _, _)) => sub(
                Step::ConnectSpot,
                "Spot connection",
                &a.name,
                PlanAction::Reuse,
                Some(a.account_id.clone()),
                format!(
                    "Spot holds this app's credentials for this subscription{}",
                    s.spot_creds
                        .as_ref()
                        .and_then(|c| c.expiration_date.clone())
                        .map(|d| format!(" (expire {d})"))
                        .unwrap_or_default()
                ),
            ),
            (_, a) => sub(
                Step::ConnectSpot,
                "Spot connection",
                match a {
                    AccountFact::Reuse(a, _, _) => &a.name,
                    AccountFact::Keep(f) => &f.account.name,
                    AccountFact::Create(n) => n,
                    AccountFact::Blocked(..) => "",
                },
                PlanAction::Create,
                None,
                "set the Azure credentials on the Spot account (Spot validates them), then read them back".into(),
            ),
        });
    }
    items
}

/// The one item of a subscription whose connection is not ours: kept.
fn keep_item(s: &SubFacts) -> Option<PlanItem> {
    let AccountFact::Keep(f) = &s.account else {
        return None;
    };
    Some(PlanItem {
        step: Step::ConnectSpot,
        object: "Spot connection".into(),
        name: f.account.name.clone(),
        action: PlanAction::Keep,
        tenant_id: s.target.tenant_id.clone(),
        subscription_id: Some(s.target.subscription_id.clone()),
        id: Some(f.account.account_id.clone()),
        reason: f.keep_line(),
        drift: None,
        ownership: Some(Ownership::NotOurs),
    })
}

/// The report of a subscription kept as it is (nothing written): connected, not ours.
fn kept_report(s: &SubFacts) -> Report {
    let mut r = failed_report(&s.target, ErrorInfo::from(&dependency("the run")));
    r.verdict = Verdict::Connected;
    r.error = None;
    if let AccountFact::Keep(f) = &s.account {
        r.kept = Some(f.keep_line());
        r.secret_expires = f.expires.as_deref().and_then(|d| {
            OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok()
        });
    }
    r
}

fn lacks(action: &str, subs: &[&SubFacts]) -> String {
    let scopes: Vec<String> = subs.iter().map(|s| s.scope()).collect();
    format!(
        "you lack {action} on {}: you need Owner or User Access Administrator on the subscription",
        scopes.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------
// Apply

/// One tenant's run.
struct TenantRun<'a> {
    session: &'a Session,
    facts: &'a Facts,
    f: &'a TenantFacts,
    graph: Graph,
    arm: Arm,
    /// ARM for the writes: 429s are paced by `budget`, not resent by the HTTP layer.
    arm_writes: Arm,
    tx: &'a UnboundedSender<Progress>,
    stop: &'a AtomicBool,
    stopped: &'a Mutex<Option<ErrorInfo>>,
    in_flight: &'a AtomicUsize,
    peak: &'a AtomicUsize,
    stores: Vec<Store>,
    backoff: Backoff,
    /// `--management-group`: the group's assignment, made once for every subscription.
    mg: mg::MgRun,
    /// The outcomes of the tenant's shared objects, listed in every subscription's report.
    shared_objects: Mutex<Vec<ObjectRef>>,
    shared_durations: Mutex<Vec<(Step, u64)>>,
    /// The first failure of a shared step (the subscriptions that needed it report it).
    shared_error: Mutex<Option<ErrorInfo>>,
    /// This run wrote something Azure may not have propagated yet.
    wrote_azure: AtomicBool,
    /// This run wrote the tenant's role: read back after the assignments.
    wrote_role: AtomicBool,
    /// Scopes whose assignment this run made or found, and how many assignment steps ended.
    assigned: Mutex<Vec<String>>,
    assignments_ended: AtomicUsize,
    assignments_done: tokio::sync::Notify,
    new_secret: OnceCell<(SecretRecord, Secret)>,
    /// The tenant's ARM write budget.
    budget: WriteBudget,
    /// What was read right after this run connected the one Spot account it created (see
    /// [`apply_listing`]).
    listed: &'a Mutex<AfterConnect>,
}

/// A subscription's run: its objects, step times and the first error.
#[derive(Default)]
struct SubRun {
    objects: Vec<ObjectRef>,
    durations: Vec<(Step, u64)>,
    error: Option<ErrorInfo>,
}

fn dependency(what: &str) -> Error {
    Error::Other(format!("skipped: {what} did not complete"))
}

pub(super) async fn apply(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
) -> RunReport {
    apply_listing(session, plan, progress).await.0
}

/// What the checks after the run need, read alongside the connection's read-back when the plan
/// creates exactly one Spot account, so they cost no round trip of the run's chain: the Spot
/// accounts (the race check, `lock::RunGuard::race_reports`, needs a listing made after that
/// account was created) and our app with its live secrets (the orphan audit's). A run that
/// creates several accounts reads these once, after all of them.
#[derive(Default)]
pub(super) struct AfterConnect {
    pub accounts: Option<Vec<SpotAccount>>,
    /// The tenant and our app there, read after the secret was handed to Spot.
    pub app: Option<(String, Application)>,
}

/// [`apply`], and what it read for the checks after the run ([`AfterConnect`]).
pub(super) async fn apply_listing(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
) -> (RunReport, AfterConnect) {
    let listed = Mutex::new(AfterConnect::default());
    let report = apply_inner(session, plan, progress, &listed).await;
    (
        report,
        listed.into_inner().unwrap_or_else(|e| e.into_inner()),
    )
}

async fn apply_inner(
    session: &Session,
    plan: &Plan,
    progress: UnboundedSender<Progress>,
    listed: &Mutex<AfterConnect>,
) -> RunReport {
    let t0 = Instant::now();
    let throttled0 = session.http.throttled_count();
    let Some(facts) = plan.facts.as_deref() else {
        let e = Error::Other("this plan was not made by onboard::plan: nothing was changed".into());
        return RunReport {
            reports: plan
                .subscriptions
                .iter()
                .map(|t| failed_report(t, ErrorInfo::from(&e)))
                .collect(),
            stopped: Some(ErrorInfo::from(&e)),
            throttled: 0,
            peak_concurrency: 0,
            total_ms: 0,
        };
    };
    let emit = |sub: Option<&str>, step, event| {
        let _ = progress.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    };
    // Blocked means nothing written.
    let blocked: Vec<&PlanItem> = plan.blocked().collect();
    if !blocked.is_empty() {
        let reasons: Vec<String> = blocked
            .iter()
            .map(|b| format!("{}: {}", b.object, b.reason))
            .collect();
        for b in &blocked {
            let error = ErrorInfo {
                summary: format!("{}: {}", b.object, b.reason),
                api: None,
                hint: None,
            };
            emit(
                b.subscription_id.as_deref(),
                b.step,
                StepEvent::Failed { error },
            );
        }
        let api = facts.tenants.iter().find_map(|t| match &t.app {
            AppFact::Unreadable(_, e) => e.clone(),
            _ => t.subs.iter().find_map(|s| match &s.account {
                AccountFact::Blocked(_, e) => e.clone(),
                _ => None,
            }),
        });
        let rights_blocked = facts
            .tenants
            .iter()
            .any(|t| matches!(t.app_rights, AppRights::Denied(_)))
            && blocked.iter().any(|b| b.step == Step::AppRegistration);
        let error = ErrorInfo {
            summary: format!("nothing was changed: {}", reasons.join("; ")),
            hint: api
                .as_ref()
                .and_then(ApiError::hint)
                .map(str::to_string)
                .or_else(|| {
                    rights_blocked.then(|| match session.auth.method() {
                        AuthMethod::ClientSecret | AuthMethod::WorkloadIdentity => {
                            SP_APP_RIGHTS_HINT.to_string()
                        }
                        _ => APP_RIGHTS_HINT.to_string(),
                    })
                }),
            api,
        };
        for step in RUN_STEPS {
            if !blocked.iter().any(|b| b.step == step) {
                emit(
                    None,
                    step,
                    StepEvent::Skipped {
                        reason: "blocked: nothing is written".into(),
                    },
                );
            }
        }
        return RunReport {
            reports: plan
                .subscriptions
                .iter()
                .map(|t| match facts.kept_sub(&t.subscription_id) {
                    Some(k) => kept_report(k),
                    None => failed_report(t, error.clone()),
                })
                .collect(),
            stopped: None,
            throttled: 0,
            peak_concurrency: 0,
            total_ms: t0.elapsed().as_millis() as u64,
        };
    }
    let stop = AtomicBool::new(false);
    let stopped = Mutex::new(None);
    let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let runs = facts.tenants.iter().map(|f| {
        let run = TenantRun {
            session,
            facts,
            f,
            graph: status::graph(session, &f.tenant),
            arm: status::arm(session, &f.tenant),
            arm_writes: {
                // 429s come back to `paced`, which resends them in the write budget's slots.
                let mut http = session.http.clone();
                http.max_attempts = 1;
                Arm::new(
                    http,
                    &session.endpoints.arm,
                    session.auth.clone(),
                    &f.tenant,
                )
            },
            tx: &progress,
            stop: &stop,
            stopped: &stopped,
            in_flight: &in_flight,
            peak: &peak,
            stores: f
                .subs
                .iter()
                .map(|s| Store::new(&session.state_dir, s.state.clone()))
                .collect(),
            backoff: mg::backoff(f),
            mg: mg::MgRun::default(),
            shared_objects: Mutex::new(vec![]),
            shared_durations: Mutex::new(vec![]),
            shared_error: Mutex::new(None),
            wrote_azure: AtomicBool::new(false),
            wrote_role: AtomicBool::new(false),
            assigned: Mutex::new(vec![]),
            assignments_ended: AtomicUsize::new(0),
            assignments_done: tokio::sync::Notify::new(),
            new_secret: OnceCell::new(),
            budget: WriteBudget::new(session.http.throttled_count()),
            listed,
        };
        async move { run.run().await }
    });
    let mut reports: Vec<Report> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    for k in &facts.kept {
        if let AccountFact::Keep(f) = &k.account {
            emit(
                Some(&k.target.subscription_id),
                Step::ConnectSpot,
                StepEvent::Skipped {
                    reason: f.keep_line(),
                },
            );
        }
        reports.push(kept_report(k));
    }
    let mut ordered = Vec::new();
    for t in &plan.subscriptions {
        if let Some(i) = reports
            .iter()
            .position(|r| r.subscription_id == t.subscription_id)
        {
            ordered.push(reports.swap_remove(i));
        }
    }
    RunReport {
        reports: ordered,
        stopped: lock(&stopped).clone(),
        throttled: session.http.throttled_count() - throttled0,
        peak_concurrency: peak.load(Ordering::Relaxed),
        total_ms: t0.elapsed().as_millis() as u64,
    }
}

const RUN_STEPS: [Step; 6] = [
    Step::SpotAccount,
    Step::AppRegistration,
    Step::ClientSecret,
    Step::CustomRole,
    Step::RoleAssignment,
    Step::ConnectSpot,
];

pub(super) fn failed_report(t: &Target, error: ErrorInfo) -> Report {
    Report {
        tenant_id: t.tenant_id.clone(),
        subscription_id: t.subscription_id.clone(),
        subscription_name: t.subscription_name.clone(),
        verdict: Verdict::Failed,
        spot_account_id: None,
        objects: vec![],
        secret_expires: None,
        durations_ms: vec![],
        total_ms: 0,
        error: Some(error),
        report_path: None,
        kept: None,
    }
}

impl TenantRun<'_> {
    fn emit(&self, sub: Option<&str>, step: Step, event: StepEvent) {
        let _ = self.tx.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    }

    fn waiting(&self, sub: Option<&str>, step: Step) -> impl FnMut(u32, std::time::Duration) + '_ {
        let sub = sub.map(str::to_string);
        move |attempt, next_in| {
            self.emit(
                sub.as_deref(),
                step,
                StepEvent::Waiting {
                    reason: mg::propagation_reason(self.f, step),
                    attempt,
                    next_in,
                },
            )
        }
    }

    fn halt(&self, e: &Error) {
        if is_fatal(e) {
            self.stop.store(true, Ordering::SeqCst);
            lock(self.stopped).get_or_insert_with(|| ErrorInfo::from(e));
        }
    }

    /// Writes the tenant's shared ids: to the first subscription's state at once (a later run
    /// finds them through it), to the others with their next write.
    async fn save_shared(&self, f: impl Fn(&mut State)) -> Result<()> {
        for s in &self.stores[1..] {
            s.set(&f);
        }
        self.stores[0].save(&f).await
    }

    fn mark(&self, i: Option<usize>, step: Step, status: StepStatus) {
        match i {
            Some(i) => self.stores[i].set(|s| {
                s.steps.insert(step, status);
            }),
            None => self.stores.iter().for_each(|st| {
                st.set(|s| {
                    s.steps.insert(step, status);
                })
            }),
        }
    }

    /// Runs one step: Started, then Finished or Failed, its wall time, its status in the state.
    /// `i`: the subscription (None: the tenant's shared object).
    async fn step<T>(
        &self,
        i: Option<usize>,
        step: Step,
        detail: String,
        fut: impl Future<Output = Result<(T, Outcome, Option<String>, String)>>,
        run: Option<&Mutex<SubRun>>,
    ) -> Result<T> {
        let sub = i.map(|i| self.f.subs[i].target.subscription_id.as_str());
        self.emit(sub, step, StepEvent::Started { detail });
        self.mark(i, step, StepStatus::Running);
        let t0 = Instant::now();
        let r = fut.await;
        let ms = t0.elapsed().as_millis() as u64;
        match run {
            Some(run) => lock(run).durations.push((step, ms)),
            None => lock(&self.shared_durations).push((step, ms)),
        }
        match r {
            Ok((v, outcome, id, detail)) => {
                self.mark(i, step, StepStatus::Done);
                self.emit(
                    sub,
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
                self.mark(i, step, StepStatus::Failed);
                self.halt(&e);
                let mut info = ErrorInfo::from(&e);
                info.summary = format!("{}: {}", step.label(), info.summary);
                match run {
                    Some(run) => lock(run).error.get_or_insert(info.clone()),
                    None => lock(&self.shared_error).get_or_insert(info.clone()),
                };
                self.emit(sub, step, StepEvent::Failed { error: info });
                Err(e)
            }
        }
    }

    /// One more subscription's assignment step has ended (or will never start): when all have,
    /// the role read-back may go.
    fn assignment_ended(&self) {
        if self.assignments_ended.fetch_add(1, Ordering::SeqCst) + 1 == self.f.subs.len() {
            self.assignments_done.notify_one();
        }
    }

    fn shared_object(&self, step: Step, object: &str, name: &str, id: &str, outcome: Outcome) {
        lock(&self.shared_objects).push(ObjectRef {
            step,
            object: object.into(),
            name: name.into(),
            id: id.into(),
            outcome,
        });
    }

    async fn run(&self) -> Vec<Report> {
        let (app_tx, app_rx) = tokio::sync::oneshot::channel::<Application>();
        let app_f = self.app_step(app_tx).shared();
        let app_only = async { app_rx.await.map_err(|_| dependency("App registration")) }.shared();
        let role_f = self.role_step().shared();
        let secret_f = async {
            if !self.f.new_secret() {
                return Ok(());
            }
            let app = app_only.clone().await?;
            self.secret_step(&app).await
        }
        .shared();
        let subs = futures::stream::iter(0..self.f.subs.len())
            .map(|i| self.sub_run(i, app_f.clone(), role_f.clone(), secret_f.clone()))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>();
        // The role this run wrote, read back once every assignment step has ended (alongside
        // the connections): a writer elsewhere that replaced it meanwhile may have taken our
        // scopes out; merged again.
        let verify = async {
            if self.f.subs.is_empty() {
                return;
            }
            self.assignments_done.notified().await;
            if !self.wrote_role.load(Ordering::Relaxed) {
                return;
            }
            let ours: Vec<String> = lock(&self.assigned).clone();
            if !ours.is_empty()
                && let Err(e) = self.merge_role(false, &ours, None, true).await
            {
                let message = format!("the custom role could not be read back: {e}");
                tracing::warn!("{message}");
                let _ = self.tx.send(Progress::Log { message });
            }
        };
        let (_, _, _, mut reports, ()) = tokio::join!(
            app_f.clone(),
            role_f.clone(),
            secret_f.clone(),
            subs,
            verify
        );
        if self.f.mg.is_some() {
            self.prune_subscription_assignments(&mut reports).await;
        }
        reports
    }

    /// One subscription: Spot account and role assignment (together), then the connection.
    async fn sub_run(
        &self,
        i: usize,
        app_f: impl Future<Output = Result<(Application, ServicePrincipal)>>,
        role_f: impl Future<Output = Result<RoleDefinition>>,
        secret_f: impl Future<Output = Result<()>>,
    ) -> Report {
        let t0 = Instant::now();
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let run = Mutex::new(SubRun::default());
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let result = if self.stop.load(Ordering::SeqCst) {
            self.assignment_ended();
            let why = lock(self.stopped)
                .as_ref()
                .map(|e| e.summary.clone())
                .unwrap_or_default();
            Err(Error::Other(format!("not started: {why}")))
        } else {
            let account_f = self.account_step(i, &run);
            let assign_f = async {
                let done = async {
                    let (_, sp) = app_f.await.map_err(|_| dependency("App registration"))?;
                    let role = role_f.await.map_err(|_| dependency("Custom role"))?;
                    if self.f.mg.is_some() {
                        self.mg_assignment_step(i, &sp, &role, &run).await
                    } else {
                        self.assignment_step(i, &sp, &role, &run).await
                    }
                }
                .await;
                if done.is_ok() && self.f.mg.is_none() {
                    lock(&self.assigned).push(s.scope());
                } else if let (Ok(()), Some(m)) = (&done, &self.f.mg) {
                    let mut a = lock(&self.assigned);
                    if a.is_empty() {
                        a.push(m.scope.clone());
                    }
                }
                self.assignment_ended();
                done
            };
            let (account, assigned) = tokio::join!(account_f, assign_f);
            match (account, assigned) {
                (Ok(account), Ok(())) => {
                    let secret = secret_f.await.map_err(|_| dependency("Client secret"));
                    match secret {
                        Ok(()) => self
                            .connect_step(i, &account, &run)
                            .await
                            .map(|e| (account, e)),
                        Err(e) => Err(e),
                    }
                }
                (Err(_), _) => Err(dependency("Spot account")),
                (_, Err(_)) => Err(dependency("Role assignment")),
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut run = run.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut objects = lock(&self.shared_objects).clone();
        objects.append(&mut run.objects);
        let mut durations = lock(&self.shared_durations).clone();
        durations.append(&mut run.durations);
        let mut report = failed_report(&s.target, ErrorInfo::from(&dependency("the run")));
        report.objects = objects;
        report.durations_ms = durations;
        report.total_ms = t0.elapsed().as_millis() as u64;
        let _ = self.stores[i].save(|_| {}).await;
        match result {
            Ok((account, expires)) => {
                let changed = report.objects.iter().any(|o| o.outcome != Outcome::Reused);
                self.emit(
                    Some(sub),
                    Step::Done,
                    StepEvent::Finished {
                        outcome: if changed {
                            Outcome::Created
                        } else {
                            Outcome::Reused
                        },
                        id: Some(account.account_id.clone()),
                        detail: format!("{sub} is connected to Spot"),
                    },
                );
                report.verdict = Verdict::Connected;
                report.spot_account_id = Some(account.account_id);
                report.secret_expires = Some(expires);
                report.error = None;
            }
            Err(e) => {
                for step in RUN_STEPS {
                    if !report.durations_ms.iter().any(|(s, _)| *s == step) {
                        self.emit(
                            Some(sub),
                            step,
                            StepEvent::Skipped {
                                reason: "an earlier step failed".into(),
                            },
                        );
                    }
                }
                report.spot_account_id = self.stores[i].get(|s| s.spot_account_id.clone());
                let shared = lock(&self.shared_error).clone();
                report.error = Some(run.error.or(shared).unwrap_or_else(|| ErrorInfo::from(&e)));
            }
        }
        report
    }

    // -----------------------------------------------------------------------------------------
    // Steps: the tenant's shared objects

    /// The app (sent on `app_tx` as soon as it exists) and its service principal.
    async fn app_step(
        &self,
        app_tx: tokio::sync::oneshot::Sender<Application>,
    ) -> Result<(Application, ServicePrincipal)> {
        let name = self.f.app_name.clone();
        self.step(
            None,
            Step::AppRegistration,
            format!("app registration {name}"),
            async {
                let graph = &self.graph;
                let (app, app_outcome) = match &self.f.app {
                    AppFact::Ours(a) => (a.clone(), Outcome::Reused),
                    AppFact::Missing => {
                        // An upsert by uniqueName (the app's name): sent again after a lost
                        // reply, it is still one app.
                        let a = read(|| graph.upsert_application(&name, &name)).await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        (a, Outcome::Created)
                    }
                    _ => return Err(Error::Other("the app registration step was blocked".into())),
                };
                self.save_shared(|s| {
                    s.app_object_id = Some(app.id.clone());
                    s.app_id = Some(app.app_id.clone());
                    s.app_name = Some(app.display_name.clone());
                })
                .await?;
                self.shared_object(
                    Step::AppRegistration,
                    "app registration",
                    &app.display_name,
                    &app.app_id,
                    app_outcome,
                );
                let _ = app_tx.send(app.clone());

                let (sp, sp_outcome) = match &self.f.sp {
                    Some(sp) => (sp.clone(), Outcome::Reused),
                    None => {
                        let app_id = app.app_id.clone();
                        let created_app = app_outcome == Outcome::Created;
                        // An upsert by appId: never two service principals. Right after the app
                        // was created, Graph may not know it yet: polled.
                        let sp = retry::propagate(
                            &self.backoff,
                            |e| created_app && is_not_found(e),
                            || graph.upsert_service_principal(&app_id),
                            self.waiting(None, Step::AppRegistration),
                        )
                        .await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        (sp, Outcome::Created)
                    }
                };
                self.save_shared(|s| s.sp_object_id = Some(sp.id.clone()))
                    .await?;
                self.shared_object(
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
            None,
        )
        .await
    }

    /// The tenant's one new secret. Its value stays in memory until Spot has it.
    /// (The only place the engine creates a client secret.)
    async fn secret_step(&self, app: &Application) -> Result<()> {
        let months = self.facts.settings.secret_months;
        let name = shared_secret_name(&self.f.tenant);
        self.step(
            None,
            Step::ClientSecret,
            format!("client secret for {}", app.display_name),
            async {
                // The lifetime asked for (or the policy's cap), then shorter ones should the
                // tenant's policy refuse it (lifetime.rs): each with its own end dates.
                let tries =
                    lifetime::attempts(&self.f.secret_limit, months, OffsetDateTime::now_utc());
                let ends: Vec<Vec<OffsetDateTime>> = tries
                    .iter()
                    .map(|t| secret_ends_until(app, t.end))
                    .collect();
                let created_app = self.wrote_azure.load(Ordering::Relaxed);
                // The intent, before the keyId is known: the end date of every attempt, each
                // distinct to the second from the app's other live secrets. A run killed now, or a
                // lost reply, leaves a secret of ours with one of these ends and no Spot account
                // holding it: `orphans::reclaim_after_apply` can prove it ours and removes it.
                let recorded: Vec<i64> =
                    ends.iter().flatten().map(|e| e.unix_timestamp()).collect();
                self.save_shared(|s| {
                    for e in &recorded {
                        if !s.secret_intents.contains(e) {
                            s.secret_intents.push(*e);
                        }
                    }
                })
                .await?;
                let name = &name;
                let add = |k: usize| {
                    let ends = &ends[k];
                    async move {
                        // A new attempt after one that may have made a secret (a lost reply) asks
                        // for the next end date: every secret made has its own.
                        let attempt = AtomicUsize::new(0);
                        let np = retry::propagate(
                            &self.backoff,
                            |e| created_app && is_not_found(e),
                            || async {
                                let i = attempt.load(Ordering::Relaxed).min(ends.len() - 1);
                                let r = self.graph.add_password(&app.id, name, ends[i]).await;
                                if r.as_ref().is_err_and(|e| {
                                    !is_not_found(e)
                                        && !retry::is_propagation(e)
                                        && !e
                                            .api()
                                            .is_some_and(|a| a.has_code(lifetime::LIFETIME_ERROR))
                                }) {
                                    attempt.fetch_add(1, Ordering::Relaxed);
                                }
                                r
                            },
                            self.waiting(None, Step::ClientSecret),
                        )
                        .await?;
                        let i = attempt.load(Ordering::Relaxed).min(ends.len() - 1);
                        Ok((np, ends[i]))
                    }
                };
                let note = |message: String| {
                    tracing::warn!("{message}");
                    let _ = self.tx.send(Progress::Log { message });
                };
                let (np, end, taken) =
                    lifetime::add_password_stepping_down(&tries, add, note).await?;
                let rec = SecretRecord {
                    key_id: np.credential.key_id.clone(),
                    end_date_time: np.credential.end_date_time.unwrap_or(end),
                    handed_to_spot: false,
                };
                // An orphan until a subscription hands it to Spot: a run killed before that loses
                // the value, and the next run removes it by keyId.
                self.save_shared(|s| {
                    if !s.orphan_key_ids.contains(&rec.key_id) {
                        s.orphan_key_ids.push(rec.key_id.clone());
                    }
                })
                .await?;
                self.shared_object(
                    Step::ClientSecret,
                    "client secret",
                    name,
                    &rec.key_id,
                    Outcome::Created,
                );
                let lifetime = match (&self.f.secret_limit, taken) {
                    (SecretLimit::Capped { by, .. }, 0) => {
                        format!(" ({}, capped by {by})", tries[0].label)
                    }
                    (_, 0) => String::new(),
                    (_, k) => format!(
                        " ({}: the tenant's policy refused {})",
                        tries[k].label,
                        tries[..k]
                            .iter()
                            .map(|t| t.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let detail = format!("expires {}{lifetime}", rec.end_date_time.date());
                let id = rec.key_id.clone();
                let _ = self.new_secret.set((rec, np.secret));
                Ok(((), Outcome::Created, Some(id), detail))
            },
            None,
        )
        .await
    }

    /// One role for the tenant, assignable at every subscription of the run. The role is
    /// shared by every run of the tenant, anywhere, and a PUT replaces it whole (no ETag):
    /// read, merge, write, read back, merge again (`merge_role`).
    async fn role_step(&self) -> Result<RoleDefinition> {
        let name = self.f.role_name.clone();
        let scopes = self.f.scopes();
        let policy = &self.facts.policy;
        self.step(
            None,
            Step::CustomRole,
            format!("custom role {name}"),
            async {
                let (outcome, detail) = match &self.f.role {
                    RoleFact::Foreign(_) => {
                        return Err(Error::Other("the custom role step was blocked".into()));
                    }
                    RoleFact::Ours(r) => {
                        let missing: Vec<String> = scopes
                            .iter()
                            .filter(|s| !lists_scope(r, s))
                            .cloned()
                            .collect();
                        let d = policy::drift(&policy.actions, &r.properties.permissions);
                        if missing.is_empty() && d.missing.is_empty() {
                            (
                                Outcome::Reused,
                                format!("{} has all of Spot's actions", r.properties.role_name),
                            )
                        } else {
                            let mut what = Vec::new();
                            if !missing.is_empty() {
                                what.push(format!("assignable at {}", missing.join(", ")));
                            }
                            if !d.missing.is_empty() {
                                what.push(format!("{} missing action(s) added", d.missing.len()));
                            }
                            (Outcome::Updated, what.join(", "))
                        }
                    }
                    RoleFact::Missing => (
                        Outcome::Created,
                        format!(
                            "{} actions, assignable at {}",
                            policy.actions.len(),
                            scopes.join(", ")
                        ),
                    ),
                };
                let role = match (&self.f.role, outcome) {
                    (RoleFact::Ours(r), Outcome::Reused) => r.clone(),
                    (known, _) => {
                        // The plan has just found no role: written with our scopes at once.
                        let known = matches!(known, RoleFact::Missing).then(Vec::new);
                        let r = self.merge_role(true, &scopes, known, false).await?;
                        self.wrote_azure.store(true, Ordering::Relaxed);
                        self.wrote_role.store(true, Ordering::Relaxed);
                        r
                    }
                };
                self.save_shared(|s| {
                    s.role_definition_id = Some(role.id.clone());
                    s.role_name = Some(role.properties.role_name.clone());
                })
                .await?;
                self.shared_object(
                    Step::CustomRole,
                    "custom role",
                    &role.properties.role_name,
                    &role.id,
                    outcome,
                );
                let id = role.id.clone();
                Ok((role, outcome, Some(id), detail))
            },
            None,
        )
        .await
    }

    /// Makes the tenant's role (deterministic GUID) assignable at `scopes`, keeping every scope
    /// it lists now: read it (unless `write` and the plan just did), merge, write (with Spot's
    /// actions), read it back; when another writer's PUT has removed one of `scopes` meanwhile,
    /// merge again, at most [`ROLE_MERGES`] times with a random pause between. `write`: PUT even
    /// when the scopes are there (the policy's actions changed).
    /// `known`: the scopes the role lists as the plan has just read them (the first round does
    /// not read again); `read_back`: false to return the first PUT's reply at once (the run
    /// reads the role back once its assignments are made, alongside the connections).
    async fn merge_role(
        &self,
        write: bool,
        scopes: &[String],
        mut known: Option<Vec<String>>,
        read_back: bool,
    ) -> Result<RoleDefinition> {
        let name = &self.f.role_name;
        let policy = &self.facts.policy;
        let first = &self.f.subs[0].target.subscription_id;
        let guid = match &self.f.role {
            RoleFact::Ours(r) => r.name.clone(),
            _ => policy::role_definition_guid(&self.f.tenant, name),
        };
        let id = format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}");
        let mut must_write = write;
        let mut last: Option<RoleDefinition> = None;
        for round in 0..ROLE_MERGES {
            let (now, listed) = match known.take() {
                Some(listed) => (None, listed),
                None => {
                    let now = read(|| self.arm.get_role_definition(&id)).await?;
                    let listed = now
                        .as_ref()
                        .map(|r| r.properties.assignable_scopes.clone())
                        .unwrap_or_default();
                    (now, listed)
                }
            };
            if let Some(r) = &now
                && !is_our_role(r)
            {
                return Err(Error::Other(format!(
                    "the custom role {} ({}) is no longer ours (no spot-connect marker): not changed",
                    r.properties.role_name, r.id
                )));
            }
            let missing: Vec<&String> = scopes
                .iter()
                .filter(|s| !listed.iter().any(|x| same_scope(x, s)))
                .collect();
            if missing.is_empty()
                && !must_write
                && let Some(mut r) = now
            {
                // Named at a scope of this run, as a PUT's reply names it.
                if r.id.starts_with("/providers/") {
                    r.id = format!("{}{id}", scopes[0]);
                }
                return Ok(r);
            }
            // Not visible yet right after our own PUT (ARM's replicas): the PUT's reply stands.
            if now.is_none() && round > 0 && !must_write {
                return last
                    .ok_or_else(|| Error::Other("the custom role could not be read back".into()));
            }
            if round > 0 {
                let message = format!(
                    "the custom role {name} lost its assignable scope(s) {} to another writer: merging again",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                tracing::info!("{message}");
                let _ = self.tx.send(Progress::Log { message });
                jitter().await;
            }
            let mut wanted = listed.clone();
            wanted.extend(missing.into_iter().cloned());
            // Written at a scope it is assignable at now (ARM checks the caller there).
            let at = listed.first().cloned().unwrap_or_else(|| scopes[0].clone());
            // Never removes an action the role has (another team's policy may need it): the
            // policy's actions are added to what it lists.
            let mut props = policy.role_properties(name, first, wanted);
            let existing = now.as_ref().or(match &self.f.role {
                RoleFact::Ours(r) => Some(r),
                _ => None,
            });
            view::keep_extra_actions(&mut props, existing);
            let r = read(|| self.paced(|| self.arm_writes.put_role_definition(&at, &guid, &props)))
                .await?;
            if !read_back {
                return Ok(r);
            }
            last = Some(r);
            must_write = false;
        }
        Err(Error::Other(format!(
            "the custom role {name} kept losing its assignable scopes to other writers ({ROLE_MERGES} merges): run again"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Steps: per subscription

    fn object(
        run: &Mutex<SubRun>,
        step: Step,
        object: &str,
        name: &str,
        id: &str,
        outcome: Outcome,
    ) {
        lock(run).objects.push(ObjectRef {
            step,
            object: object.into(),
            name: name.into(),
            id: id.into(),
            outcome,
        });
    }

    async fn account_step(&self, i: usize, run: &Mutex<SubRun>) -> Result<SpotAccount> {
        let spot = &self.session.spot;
        let store = &self.stores[i];
        let sf = &self.f.subs[i];
        let (detail, fact) = match &sf.account {
            AccountFact::Reuse(a, _, _) => (format!("using {}", a.account_id), &sf.account),
            AccountFact::Create(n) => (format!("creating Spot account {n}"), &sf.account),
            AccountFact::Keep(f) => {
                return Err(Error::Other(format!(
                    "Spot account {} is not ours: kept",
                    f.account.account_id
                )));
            }
            AccountFact::Blocked(why, _) => return Err(Error::Other(why.clone())),
        };
        // The operator picked it (`--spot-account`, `--take-over`): recorded as chosen, so no
        // run ever deletes it.
        let picked = sf.taken_over.is_some()
            || matches!(
                self.facts.settings.spot_account,
                SpotAccountChoice::Existing(_)
            );
        self.step(
            Some(i),
            Step::SpotAccount,
            detail,
            async {
                let (a, outcome, why) = match fact {
                    AccountFact::Reuse(a, kind, why) => {
                        let origin = match kind {
                            AccountKind::Created => Some(AccountOrigin::Created {
                                account_id: a.account_id.clone(),
                                name: a.name.clone(),
                            }),
                            AccountKind::Chosen if picked => Some(AccountOrigin::Chosen {
                                account_id: a.account_id.clone(),
                            }),
                            _ => None,
                        };
                        store
                            .save(|s| {
                                s.spot_account_id = Some(a.account_id.clone());
                                s.spot_account_pending = None;
                                s.spot_account_pending_at = None;
                                if origin.is_some() {
                                    s.spot_account_origin = origin.clone();
                                }
                            })
                            .await?;
                        (a.clone(), Outcome::Reused, format!(": {why}"))
                    }
                    AccountFact::Create(name) => {
                        let asked = OffsetDateTime::now_utc();
                        store
                            .save(|s| {
                                s.spot_account_pending = Some(name.clone());
                                s.spot_account_pending_at = Some(asked);
                            })
                            .await?;
                        // After a lost reply: the account of this name Spot made since we
                        // asked, not connected (a token that may not list accounts cannot
                        // tell: then a second create).
                        let a = create_or_find(
                            || spot.create_account(name),
                            || async {
                                match spot.list_accounts().await {
                                    Ok(list) => Ok(list.into_iter().find(|a| {
                                        &a.name == name
                                            && a.provider_external_id.is_none()
                                            && a.created_at.is_some_and(|c| {
                                                c >= asked - time::Duration::seconds(2)
                                            })
                                    })),
                                    Err(Error::Api(e)) if e.class() == ErrorClass::Permission => {
                                        Ok(None)
                                    }
                                    Err(e) => Err(e),
                                }
                            },
                        )
                        .await?;
                        // The id Spot returned to our create call, and the name we gave it:
                        // the proof that it is ours to delete (issue 16 §2).
                        store
                            .save(|s| {
                                s.spot_account_id = Some(a.account_id.clone());
                                s.spot_account_pending = None;
                                s.spot_account_pending_at = None;
                                s.spot_account_origin = Some(AccountOrigin::Created {
                                    account_id: a.account_id.clone(),
                                    name: name.clone(),
                                });
                            })
                            .await?;
                        (a, Outcome::Created, String::new())
                    }
                    AccountFact::Keep(_) | AccountFact::Blocked(..) => {
                        return Err(Error::Other("the Spot account step was blocked".into()));
                    }
                };
                Self::object(
                    run,
                    Step::SpotAccount,
                    "Spot account",
                    &a.name,
                    &a.account_id,
                    outcome,
                );
                let id = a.account_id.clone();
                let detail = format!("{} ({}){why}", a.name, a.account_id);
                Ok((a, outcome, Some(id), detail))
            },
            Some(run),
        )
        .await
    }

    async fn assignment_step(
        &self,
        i: usize,
        sp: &ServicePrincipal,
        role: &RoleDefinition,
        run: &Mutex<SubRun>,
    ) -> Result<()> {
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let scope = s.scope();
        self.step(Some(i), Step::RoleAssignment, format!("assigning {} to the service principal", role.properties.role_name), async {
            let (id, outcome) = match &s.assignment {
                Some(a) => (a.id.clone(), Outcome::Reused),
                None => {
                    // Deterministic: a PUT repeated after a lost reply names the same
                    // assignment (then 409 RoleAssignmentExists, which is success).
                    let guid = policy::role_assignment_name(sub, &sp.id, &role.id);
                    // Refused because the role is not assignable here: when another writer's
                    // PUT took our scope out of the role, the role is repaired and the
                    // assignment sent again at once; only a role that does list the scope is
                    // Azure propagating.
                    let repairs = AtomicUsize::new(0);
                    let create = || async {
                        loop {
                            let r = self
                                .paced(|| {
                                    self.arm_writes.create_role_assignment(
                                        &scope, &guid, &role.id, &sp.id,
                                    )
                                })
                                .await;
                            let refused = matches!(&r, Err(Error::Api(a)) if a.has_code("RoleDefinitionDoesNotExist")
                                || a.has_code("RoleAssignmentScopeNotAssignableToRoleDefinition"));
                            if !refused || repairs.load(Ordering::Relaxed) >= ROLE_MERGES {
                                return r;
                            }
                            let id = format!(
                                "/providers/Microsoft.Authorization/roleDefinitions/{}",
                                arm::guid_of(&role.id)
                            );
                            match read(|| self.arm.get_role_definition(&id)).await {
                                Ok(Some(now)) if !lists_scope(&now, &scope) => {
                                    repairs.fetch_add(1, Ordering::Relaxed);
                                    let message = format!(
                                        "the custom role {} is no longer assignable at {scope} (another writer replaced it): repairing it",
                                        now.properties.role_name
                                    );
                                    tracing::info!("{message}");
                                    let _ = self.tx.send(Progress::Log { message });
                                    self.merge_role(false, std::slice::from_ref(&scope), None, true)
                                        .await?;
                                }
                                _ => return r,
                            }
                        }
                    };
                    let out = retry::propagate(
                        &self.backoff,
                        |_| false,
                        create,
                        self.waiting(Some(sub), Step::RoleAssignment),
                    )
                    .await?;
                    self.wrote_azure.store(true, Ordering::Relaxed);
                    match out {
                        AssignmentOutcome::Created(a) => (a.id, Outcome::Created),
                        AssignmentOutcome::AlreadyExists => match find_assignment(&self.arm, sub, &sp.id, role).await? {
                            Some(a) => (a.id, Outcome::Reused),
                            None => (format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"), Outcome::Reused),
                        },
                    }
                }
            };
            self.stores[i].save(|s| s.role_assignment_id = Some(id.clone())).await?;
            Self::object(run, Step::RoleAssignment, "role assignment", &role.properties.role_name, &id, outcome);
            Ok(((), outcome, Some(id), format!("principalType ServicePrincipal at {scope}")))
        }, Some(run))
        .await
    }

    async fn connect_step(
        &self,
        i: usize,
        account: &SpotAccount,
        run: &Mutex<SubRun>,
    ) -> Result<OffsetDateTime> {
        let s = &self.f.subs[i];
        let sub = s.target.subscription_id.as_str();
        let spot = &self.session.spot;
        let store = &self.stores[i];
        self.step(
            Some(i),
            Step::ConnectSpot,
            format!("connecting {} to Spot", account.account_id),
            async {
                if let Some(rec) = &s.secret_reuse {
                    Self::object(
                        run,
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
                        rec.end_date_time,
                        Outcome::Reused,
                        Some(account.account_id.clone()),
                        detail,
                    ));
                }
                let (Some(app), Some((rec, value))) = (self.app_id(), self.new_secret.get()) else {
                    return Err(dependency("Client secret"));
                };
                let creds = AzureCredentials {
                    client_id: app.clone(),
                    client_secret: value.clone(),
                    tenant_id: self.f.tenant.clone(),
                    subscription_id: sub.to_string(),
                    expiration_date: rec.end_date_time,
                };
                // Spot validates against Azure: right after our writes (a new secret is one) it
                // may not see them yet. Setting credentials overwrites: safe to send again.
                // A refused secret is waited for only while it is still on the app: one
                // removed meanwhile (by a run with another state dir that took it for an
                // orphan, or by hand) will never be accepted.
                let app_object = store.get(|s| s.app_object_id.clone());
                let set = || async {
                    let r = spot
                        .set_azure_credentials(&account.account_id, &creds)
                        .await;
                    match (&r, &app_object) {
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
                                        .any(|p| p.key_id.eq_ignore_ascii_case(&rec.key_id)) =>
                                {
                                    Err(secret_removed(&rec.key_id, &live.display_name))
                                }
                                _ => r,
                            }
                        }
                        _ => r,
                    }
                };
                retry::propagate(
                    &self.backoff,
                    |_| false,
                    set,
                    self.waiting(Some(sub), Step::ConnectSpot),
                )
                .await?;
                let old = store.get(|s| s.secret.clone());
                store
                    .save(|s| {
                        if let Some(old) = old.as_ref().filter(|o| o.key_id != rec.key_id)
                            && !s.orphan_key_ids.contains(&old.key_id)
                        {
                            // Kept until no Spot account holds it (`orphans::reclaim_after_apply`).
                            s.orphan_key_ids.push(old.key_id.clone());
                        }
                        s.orphan_key_ids.retain(|k| k != &rec.key_id);
                        s.spot_account_id = Some(account.account_id.clone());
                        s.secret = Some(SecretRecord {
                            handed_to_spot: true,
                            ..rec.clone()
                        });
                    })
                    .await?;
                // Read back: Spot must report this app and this subscription. When this is the
                // one account the run created, the race check's listing goes alongside.
                let list_too = matches!(s.account, AccountFact::Create(_))
                    && self
                        .facts
                        .tenants
                        .iter()
                        .flat_map(|t| &t.subs)
                        .filter(|x| matches!(x.account, AccountFact::Create(_)))
                        .count()
                        == 1;
                let (back, list, live) = tokio::join!(
                    read(|| spot.get_azure_credentials(&account.account_id)),
                    async {
                        if list_too {
                            read(|| spot.list_accounts()).await.ok()
                        } else {
                            None
                        }
                    },
                    async {
                        match (&app_object, list_too) {
                            (Some(obj), true) => read(|| self.graph.get_application(obj))
                                .await
                                .ok()
                                .flatten(),
                            _ => None,
                        }
                    }
                );
                if list_too {
                    let mut after = lock(self.listed);
                    after.accounts = list;
                    after.app = live.map(|a| (self.f.tenant.clone(), a));
                }
                let back = back?;
                let ok = back.as_ref().is_some_and(|c| {
                    c.client_id
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&app))
                        && c.subscription_id
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(sub))
                });
                if !ok {
                    return Err(Error::Other(format!(
                        "Spot accepted the credentials but reads back {:?} for account {}",
                        back.map(|c| (c.client_id, c.subscription_id)),
                        account.account_id
                    )));
                }
                Self::object(
                    run,
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
                    rec.end_date_time,
                    Outcome::Created,
                    Some(account.account_id.clone()),
                    detail,
                ))
            },
            Some(run),
        )
        .await
    }

    /// An ARM write (`write` uses `arm_writes`, whose HTTP layer does not resend a 429), in
    /// its slot of the tenant's write budget; refused (429), it waits its Retry-After and takes
    /// a new slot, so every resend is paced too.
    async fn paced<T, F, Fut>(&self, mut write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 0u32;
        // The Retry-After waits of one write share the HTTP layer's per-call budget (2 min):
        // announced as they start, and an ask beyond it fails at once (Fatal: not resent).
        let mut asked = std::time::Duration::ZERO;
        loop {
            let ticket = self.budget.acquire().await;
            let r = write().await;
            let refused = matches!(&r, Err(Error::Api(a)) if a.status == 429);
            self.budget
                .done(ticket, refused, self.session.http.throttled_count());
            match r {
                Err(Error::Api(a)) if a.status == 429 && tries < 30 => {
                    tries += 1;
                    let wait = self.session.http.throttled_wait(a, &mut asked, tries)?;
                    tokio::time::sleep(wait).await;
                }
                r => return r,
            }
        }
    }

    fn app_id(&self) -> Option<String> {
        lock(&self.shared_objects)
            .iter()
            .find(|o| o.object == "app registration")
            .map(|o| o.id.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Rights

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

/// The tenant's new secret is gone from the app before Spot could take it.
fn secret_removed(key_id: &str, app: &str) -> Error {
    Error::Other(format!(
        "the client secret {key_id} of {app} was removed while this run was handing it to Spot (by a spot-connect run with another --state-dir, or by hand): Spot cannot use it; run `spot-connect apply` again for a new one"
    ))
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
    sp_id: &str,
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
            "service principal {sp_id} (application {client_id}) may not register applications: it holds neither Microsoft Graph Application.ReadWrite.All nor Application.ReadWrite.OwnedBy (admin-consented) nor an app-management directory role; {SP_APP_RIGHTS_HINT}"
        )),
        (Err(e), _) | (_, Err(e)) => AppRights::Unknown(rights_unknown(&e)),
    }
}

/// `t` plus `months` calendar months (clamped to the month's last day).
/// The client secret lifetimes a plan accepts, in months (as `--secret-months`).
pub const SECRET_MONTHS: std::ops::RangeInclusive<u32> = 1..=120;

/// Read-merge-write rounds of the shared role before a run gives up on it.
pub(crate) const ROLE_MERGES: usize = 8;

/// A random pause of 50-400 ms: two writers that keep replacing each other's role drift apart.
pub(crate) async fn jitter() {
    let ms = 50 + (uuid::Uuid::new_v4().as_u128() % 350) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Whether the role lists `scope` among its assignable scopes.
fn lists_scope(r: &RoleDefinition, scope: &str) -> bool {
    r.properties
        .assignable_scopes
        .iter()
        .any(|x| same_scope(x, scope))
}

/// Attempts of one `addPassword` (a first try and the resends after lost replies).
pub(crate) const SECRET_ATTEMPTS: usize = 6;

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

pub(crate) fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
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
            layer_retried: false,
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
            service_principal_app_rights("sp", "c", Ok(vec![grant("18a4783c-866b-4cc7-a460-3d5e5662c884")]), Ok(vec![])),
            AppRights::Allowed(w) if w.contains("Application.ReadWrite.OwnedBy")
        ));
        assert!(matches!(
            service_principal_app_rights("sp", "c", Ok(vec![]), Ok(vec![role("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3")])),
            AppRights::Allowed(w) if w.contains("Application Administrator")
        ));
        // Mail.Read only: denied.
        assert!(matches!(
            service_principal_app_rights("sp", "c", Ok(vec![grant("810c84a8-4a9e-49e6-bf7d-12d183f40d01")]), Ok(vec![])),
            AppRights::Denied(w) if w.contains("Application.ReadWrite.All")
                && w.starts_with("service principal sp (application c)")
                && w.contains(SP_APP_RIGHTS_HINT)
                && !w.contains("Users can register")
        ));
        assert!(matches!(
            service_principal_app_rights("sp", "c", Err(denied()), Ok(vec![])),
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
