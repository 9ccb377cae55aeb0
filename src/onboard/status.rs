//! `status`: what exists for each subscription, read-only, with a verdict (connected; expiring
//! within 30 days; broken, and why). The lookups it shares with the other steps are in `lookup.rs`.

use super::lookup::{
    account_for, arm, find_app, find_assignment, find_assignment_at, find_role, graph, is_fatal,
    is_our_role, read, same_scope, scope_of, secret_in_use,
};
use super::model::{AccountKind, Drift};
use super::policy::{self, Policy};
use super::secrets::EXPIRY_WARNING;
use super::state::State;
use super::{Session, Settings, Target};
use crate::azure::arm::{Arm, RoleAssignment, RoleDefinition};
use crate::azure::graph::{Application, Graph};
use crate::error::{Error, Result};
use crate::spot::{AzureCredentialsInfo, SpotAccount};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A subscription's verdict (issue 16 §9). `NotOnboarded` and `NotOurs` are not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Connected,
    /// Connected to Spot through an app that is not ours: left as it is.
    NotOurs,
    /// Connected, but the secret ends within the warning window (`--warn-within`).
    Expiring,
    Broken,
    /// Nothing of ours for it, and no Spot account connected to it.
    NotOnboarded,
    /// Could not be seen (a lookup refused or failed): `problems` says why.
    Unknown,
}

impl Health {
    /// The word `status` prints.
    pub fn label(self) -> &'static str {
        match self {
            Health::Connected => "connected",
            Health::NotOurs => "connected (not ours)",
            Health::Expiring => "expiring",
            Health::Broken => "broken",
            Health::NotOnboarded => "not onboarded",
            Health::Unknown => "unknown",
        }
    }

    /// Whether `status` exits 3 for it: something we manage is broken or expiring, or could
    /// not be seen.
    pub fn needs_attention(self) -> bool {
        matches!(self, Health::Expiring | Health::Broken | Health::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub object_id: String,
    pub app_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub key_id: String,
    pub display_name: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_date_time: Option<OffsetDateTime>,
    /// Whole days until the end (negative: expired).
    pub days_left: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleInfo {
    pub id: String,
    pub name: String,
    pub assignable_here: bool,
    pub assignable_scopes: usize,
    /// Compared with Spot's policy.
    pub drift: Drift,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpotInfo {
    pub account_id: String,
    pub name: String,
    /// What Spot reads back (the secret itself never comes back).
    pub credentials: Option<AzureCredentialsInfo>,
    /// Whose it is (issue 16 §2): created by us (only then ever deleted), chosen, not ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<AccountKind>,
}

/// One subscription's connection, as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStatus {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    pub verdict: Health,
    /// Why the verdict is not `connected` (empty when it is).
    pub problems: Vec<String>,
    pub app: Option<AppInfo>,
    pub service_principal_id: Option<String>,
    /// The secret Spot holds (matched by its end date, or the one the state file records).
    pub secret: Option<SecretInfo>,
    pub role: Option<RoleInfo>,
    pub role_assignment_id: Option<String>,
    pub spot_account: Option<SpotInfo>,
    /// For `connected (not ours)`: "connected through APP (appId), secret expires DATE".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// keyIds of client secrets of the tenant's app that no Spot account holds
    /// (`onboard::orphans`; `apply` removes them). Filled in by `status`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unheld_secrets: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// status

/// What exists for each target, with a verdict. Read-only. `Err` only for errors after which
/// nothing can be checked (sign-in, unreachable service); other failures make a subscription
/// `broken` with the reason.
pub async fn status(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
) -> Result<Vec<SubscriptionStatus>> {
    status_within(session, targets, settings, EXPIRY_WARNING).await
}

/// [`status`], with secrets ending within `warn_within` called `expiring` (`--warn-within`).
pub async fn status_within(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    warn_within: time::Duration,
) -> Result<Vec<SubscriptionStatus>> {
    let policy = Policy::load(settings.policy_file.as_deref())?;
    let accounts = read(|| session.spot.list_accounts()).await;
    let accounts = match accounts {
        Ok(a) => Ok(a),
        Err(e) if is_fatal(&e) => return Err(e),
        Err(e) => Err(e.to_string()),
    };
    let mut by_tenant: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_tenant.entry(&t.tenant_id).or_default().push(t);
    }
    let mut out: BTreeMap<String, SubscriptionStatus> = BTreeMap::new();
    for (tenant, subs) in by_tenant {
        let g = graph(session, tenant);
        let a = arm(session, tenant);
        let app_name = settings.app_name_for(tenant);
        // At a management group: the group's own role, assignable and assigned there once.
        let group = settings.management_group.as_ref();
        let role_name = match group {
            Some(m) => super::fleet::mg_role_name(&settings.role_name(), &m.id),
            None => settings.role_name(),
        };
        let scopes: Vec<String> = match group {
            Some(m) => vec![super::fleet::scope(&m.id)],
            None => subs.iter().map(|t| scope_of(&t.subscription_id)).collect(),
        };
        let (app, role) = tokio::join!(
            find_app(session, &g, tenant, &app_name),
            find_role(session, &a, tenant, &role_name, &scopes)
        );
        let tenant_problem = |e: &Error| format!("cannot check: {e}");
        let (app, app_err) = match app {
            Ok((a, _)) => (a, None),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => (None, Some(tenant_problem(&e))),
        };
        let (role, role_err) = match role {
            Ok(r) => (r, None),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => (None, Some(tenant_problem(&e))),
        };
        let sp = match &app {
            Some(app) => match read(|| g.get_service_principal_by_app_id(&app.app_id)).await {
                Ok(sp) => sp,
                Err(e) if is_fatal(&e) => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        // The group's one assignment, read once for every subscription below it.
        let mg = match (group, &role, &sp) {
            (Some(m), Some(r), Some(sp)) => {
                let scope = super::fleet::scope(&m.id);
                let found = match find_assignment_at(&a, &scope, &sp.id, r).await {
                    Ok(x) => Ok(x),
                    Err(e) if is_fatal(&e) => return Err(e),
                    Err(e) => Err(format!(
                        "role assignment at management group {}: cannot check: {e}",
                        m.id
                    )),
                };
                Some(GroupFacts {
                    id: m.id.clone(),
                    scope,
                    assignment: found,
                })
            }
            (Some(m), _, _) => Some(GroupFacts {
                id: m.id.clone(),
                scope: super::fleet::scope(&m.id),
                assignment: Ok(None),
            }),
            (None, _, _) => None,
        };
        let ctx = TenantFacts {
            mg,
            graph: &g,
            app: app.as_ref(),
            app_name: &app_name,
            app_err: app_err.as_deref(),
            sp_id: sp.as_ref().map(|s| s.id.as_str()),
            role: role.as_ref(),
            role_name: &role_name,
            role_err: role_err.as_deref(),
            policy: &policy,
            accounts: &accounts,
            warn_within,
        };
        for chunk in subs.chunks(8) {
            let mut futs = Vec::new();
            for t in chunk {
                futs.push(one(session, &a, &ctx, t));
            }
            for r in futures::future::join_all(futs).await {
                let s = r?;
                out.insert(s.subscription_id.clone(), s);
            }
        }
    }
    Ok(targets
        .iter()
        .filter_map(|t| out.remove(&t.subscription_id))
        .collect())
}

/// `status --management-group`: every subscription below the group (nested groups included):
/// the enabled ones checked against the group's role and its one assignment at the group, the
/// others listed (not enabled, or not visible to the signed-in identity).
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub tenant_id: String,
    pub group_id: String,
    pub display_name: String,
    /// The tree, one line per group and subscription, indented by depth.
    pub tree: Vec<String>,
    /// The group's own role (its name whether or not it exists).
    pub role_name: String,
    pub role: Option<RoleInfo>,
    /// Our role's assignment to our service principal at the group.
    pub role_assignment_id: Option<String>,
    pub subscriptions: Vec<SubscriptionStatus>,
    /// The enabled subscriptions below it (the ones checked).
    #[serde(skip)]
    pub targets: Vec<Target>,
}

impl GroupStatus {
    /// The lines `status` prints above its table.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "Management group {} ({}), tenant {}: {} subscription(s) below it (nested groups included), {} enabled",
            self.display_name,
            self.group_id,
            self.tenant_id,
            self.subscriptions.len(),
            self.targets.len()
        )];
        out.extend(self.tree.iter().map(|l| format!("  {l}")));
        out.push(match &self.role {
            Some(r) => format!(
                "role {} ({}): {}",
                r.name,
                r.id,
                if r.assignable_here {
                    "assignable at the group"
                } else {
                    "NOT assignable at the group"
                }
            ),
            None => format!("role {}: not found", self.role_name),
        });
        out.push(match &self.role_assignment_id {
            Some(a) => {
                format!("assignment at the group (every subscription below inherits it): {a}")
            }
            None => "no assignment of ours at the group".into(),
        });
        out
    }
}

/// See [`GroupStatus`]. Read-only.
pub async fn group_status(
    session: &Session,
    group: &str,
    settings: &Settings,
    warn_within: time::Duration,
) -> Result<GroupStatus> {
    let r = super::fleet::resolve(session, group, &[]).await?;
    let mut settings = settings.clone();
    settings.management_group = Some(r.scope(false));
    let mut rows = if r.targets.is_empty() {
        vec![]
    } else {
        status_within(session, &r.targets, &settings, warn_within).await?
    };
    let row = |t: &Target, verdict: Health| SubscriptionStatus {
        tenant_id: t.tenant_id.clone(),
        subscription_id: t.subscription_id.clone(),
        subscription_name: t.subscription_name.clone(),
        verdict,
        problems: vec![],
        app: None,
        service_principal_id: None,
        secret: None,
        role: None,
        role_assignment_id: None,
        spot_account: None,
        note: None,
        unheld_secrets: vec![],
    };
    for (t, state) in &r.not_enabled {
        let mut s = row(t, Health::NotOnboarded);
        s.note = Some(format!(
            "{state}: below management group {} but not enabled, so not connected (it still inherits the group's role assignment)",
            r.group_id
        ));
        rows.push(s);
    }
    for u in &r.unseen {
        let t = Target {
            tenant_id: r.tenant_id.clone(),
            subscription_id: u.clone(),
            subscription_name: String::new(),
        };
        let mut s = row(&t, Health::Unknown);
        s.problems.push(format!(
            "below management group {} but the signed-in identity cannot see it (not in its subscription list): cannot check",
            r.group_id
        ));
        rows.push(s);
    }
    Ok(GroupStatus {
        tenant_id: r.tenant_id.clone(),
        group_id: r.group_id.clone(),
        display_name: r.display_name.clone(),
        tree: r.tree_lines().into_iter().skip(1).collect(),
        role_name: super::fleet::mg_role_name(&settings.role_name(), &r.group_id),
        role: rows.iter().find_map(|s| s.role.clone()),
        role_assignment_id: rows.iter().find_map(|s| s.role_assignment_id.clone()),
        subscriptions: rows,
        targets: r.targets,
    })
}

/// `--management-group`: the group and our role's one assignment there.
struct GroupFacts {
    id: String,
    scope: String,
    /// Err: it could not be read (why).
    assignment: std::result::Result<Option<RoleAssignment>, String>,
}

struct TenantFacts<'a> {
    mg: Option<GroupFacts>,
    graph: &'a Graph,
    app: Option<&'a Application>,
    app_name: &'a str,
    app_err: Option<&'a str>,
    sp_id: Option<&'a str>,
    role: Option<&'a RoleDefinition>,
    role_name: &'a str,
    role_err: Option<&'a str>,
    policy: &'a Policy,
    accounts: &'a std::result::Result<Vec<SpotAccount>, String>,
    warn_within: time::Duration,
}

async fn one(
    session: &Session,
    arm: &Arm,
    f: &TenantFacts<'_>,
    t: &Target,
) -> Result<SubscriptionStatus> {
    // What is wrong with what we manage, and what could not be seen.
    let mut problems = Vec::new();
    let mut unseen = Vec::new();
    let state = State::load(&session.state_dir, &t.tenant_id, &t.subscription_id).ok();
    // At a management group the role is assignable, and assigned, at the group.
    let scope = match &f.mg {
        Some(m) => m.scope.clone(),
        None => scope_of(&t.subscription_id),
    };
    let recorded_account = state.as_ref().and_then(|s| s.spot_account_id.clone());
    let mut st = SubscriptionStatus {
        tenant_id: t.tenant_id.clone(),
        subscription_id: t.subscription_id.clone(),
        subscription_name: t.subscription_name.clone(),
        verdict: Health::Connected,
        problems: vec![],
        app: None,
        service_principal_id: None,
        secret: None,
        role: None,
        role_assignment_id: None,
        spot_account: None,
        note: None,
        unheld_secrets: vec![],
    };
    // Spot: the account connected to the subscription (`?cloudAccountId=`, any token), else the
    // one the state file records.
    let acct = match read(|| session.spot.accounts_for_subscription(&t.subscription_id)).await {
        Ok(list) if !list.is_empty() => {
            let pick = list
                .iter()
                .find(|a| Some(&a.account_id) == recorded_account.as_ref())
                .or(list.first());
            pick.cloned()
        }
        Ok(_) => match (f.accounts, &recorded_account) {
            (Ok(all), Some(r)) => account_for(all, &t.subscription_id, Some(r)).cloned(),
            // A token that may not list the organization's accounts: the recorded one by id.
            (Err(_), Some(r)) => match read(|| session.spot.get_account(r)).await {
                Ok(a) => a.filter(|a| a.provider_external_id.is_none()),
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    unseen.push(format!(
                        "Spot account {r} (recorded here): this Spot token cannot see it: {e}"
                    ));
                    None
                }
            },
            _ => None,
        },
        Err(e) if is_fatal(&e) => return Err(e),
        Err(e) => {
            unseen.push(format!("Spot accounts: cannot check: {e}"));
            None
        }
    };
    let creds = match &acct {
        Some(a) => match read(|| session.spot.get_azure_credentials(&a.account_id)).await {
            Ok(c) => c,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                unseen.push(format!("Spot credentials: cannot read: {e}"));
                None
            }
        },
        None => None,
    };
    let ours_creds = |c: &AzureCredentialsInfo| {
        f.app.is_some_and(|a| {
            c.client_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&a.app_id))
        })
    };
    // Connected through an app that is not ours (and that exists): not an error, and nothing
    // of ours to check. One whose app is gone (a removed connection) is not a connection.
    let mut gone_app = None;
    let other_app = match (&acct, &creds) {
        (Some(_), Some(c))
            if !ours_creds(c)
                && c.subscription_id
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&t.subscription_id)) =>
        {
            let client = c.client_id.clone().unwrap_or_else(|| "?".into());
            match read(|| f.graph.get_service_principal_by_app_id(&client)).await {
                Ok(Some(sp)) => Some(
                    sp.display_name
                        .map(|n| format!("{n} ({client})"))
                        .unwrap_or_else(|| format!("app {client}")),
                ),
                Ok(None) => {
                    gone_app = Some(client);
                    None
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(_) => Some(format!("app {client}")),
            }
        }
        _ => None,
    };
    if let (Some(a), Some(c), Some(name)) = (&acct, &creds, other_app) {
        let expires = c
            .expiration()
            .map(|e| e.date().to_string())
            .or_else(|| c.expiration_date.clone())
            .unwrap_or_else(|| "(unknown)".into());
        st.verdict = Health::NotOurs;
        st.note = Some(format!(
            "connected through {name}, secret expires {expires}: not ours, left as it is"
        ));
        st.spot_account = Some(SpotInfo {
            account_id: a.account_id.clone(),
            name: a.name.clone(),
            credentials: creds.clone(),
            kind: Some(AccountKind::NotOurs),
        });
        return Ok(st);
    }
    match (f.app, f.app_err) {
        (_, Some(e)) => unseen.push(format!("app registration: {e}")),
        (None, None) => problems.push(format!(
            "no app registration of ours named {} (run apply)",
            f.app_name
        )),
        (Some(_), None) if f.sp_id.is_none() => {
            problems.push("the app registration has no service principal".into())
        }
        _ => {}
    }
    let role = match (f.role, f.role_err) {
        (_, Some(e)) => {
            unseen.push(format!("custom role: {e}"));
            None
        }
        (None, None) => {
            problems.push(format!("no custom role named {}", f.role_name));
            None
        }
        (Some(r), None) => {
            let assignable_here = r
                .properties
                .assignable_scopes
                .iter()
                .any(|s| same_scope(s, &scope));
            let drift = policy::drift(&f.policy.actions, &r.properties.permissions);
            if !is_our_role(r) {
                problems.push(format!(
                    "the role {} was not made by spot-connect",
                    r.properties.role_name
                ));
            }
            if !assignable_here {
                problems.push(format!("the role is not assignable at {scope}"));
            }
            if !drift.missing.is_empty() {
                problems.push(format!(
                    "the role lacks {} of Spot's actions (run apply to update it)",
                    drift.missing.len()
                ));
            }
            Some(RoleInfo {
                id: r.id.clone(),
                name: r.properties.role_name.clone(),
                assignable_here,
                assignable_scopes: r.properties.assignable_scopes.len(),
                drift,
            })
        }
    };
    let assignment = match (f.role, f.sp_id, &f.mg) {
        (Some(_), Some(_), Some(m)) => match &m.assignment {
            Ok(a) => a.clone(),
            Err(e) => {
                unseen.push(e.clone());
                None
            }
        },
        (Some(r), Some(sp), None) => match find_assignment(arm, &t.subscription_id, sp, r).await {
            Ok(a) => a,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                unseen.push(format!("role assignment: cannot check: {e}"));
                None
            }
        },
        _ => None,
    };
    if assignment.is_none() && f.role.is_some() && f.sp_id.is_some() {
        problems.push(match &f.mg {
            Some(m) => format!(
                "the role is not assigned to the app's service principal at management group {} ({scope}), which this subscription would inherit",
                m.id
            ),
            None => format!("the role is not assigned to the app's service principal at {scope}"),
        });
    }
    match (&acct, &creds) {
        (None, _) if unseen.iter().any(|u| u.starts_with("Spot")) => {}
        (None, _) => problems.push("no Spot account is connected to this subscription".into()),
        (Some(a), None) if !unseen.iter().any(|u| u.starts_with("Spot")) => problems.push(format!(
            "Spot account {} has no Azure credentials",
            a.account_id
        )),
        (Some(a), Some(c)) => {
            if !ours_creds(c) {
                problems.push(format!(
                    "Spot account {} uses another app (client id {})",
                    a.account_id,
                    c.client_id.as_deref().unwrap_or("?")
                ));
            }
            if !c
                .subscription_id
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(&t.subscription_id))
            {
                problems.push(format!(
                    "Spot account {} holds credentials for subscription {}",
                    a.account_id,
                    c.subscription_id.as_deref().unwrap_or("?")
                ));
            }
        }
        _ => {}
    }
    // Onboarded: something of ours is there for this subscription (its assignment, a Spot
    // account connected through our app), or the state file says a run connected it from here.
    let onboarded = assignment.is_some()
        || creds.as_ref().is_some_and(ours_creds)
        || state
            .as_ref()
            .is_some_and(|s| s.spot_account_id.is_some() || s.role_assignment_id.is_some());
    let spot = acct.as_ref().map(|a| {
        let creds_app = creds.as_ref().and_then(|c| c.client_id.as_deref());
        let our_app = f.app.map(|x| x.app_id.as_str());
        let kind = match &state {
            Some(st) if st.created(&a.account_id, &a.name, creds_app, our_app) => {
                AccountKind::Created
            }
            Some(st) if st.chosen(&a.account_id) => AccountKind::Chosen,
            _ if creds.as_ref().is_some_and(ours_creds) => AccountKind::Chosen,
            _ => AccountKind::NotOurs,
        };
        SpotInfo {
            account_id: a.account_id.clone(),
            name: a.name.clone(),
            credentials: creds.clone(),
            kind: Some(kind),
        }
    });
    let now = OffsetDateTime::now_utc();
    let recorded_key = state
        .as_ref()
        .and_then(|s| s.secret.as_ref().map(|r| r.key_id.clone()));
    let secret = f.app.and_then(|app| {
        secret_in_use(
            app,
            spot.as_ref().and_then(|s| s.credentials.as_ref()),
            recorded_key.as_deref(),
        )
        .map(|p| SecretInfo {
            key_id: p.key_id.clone(),
            display_name: p.display_name.clone(),
            end_date_time: p.end_date_time,
            days_left: p.end_date_time.map(|e| (e - now).whole_days()),
        })
    });
    let mut expiring = false;
    if f.app.is_some() {
        match &secret {
            None if spot.as_ref().is_some_and(|s| s.credentials.is_some()) => {
                problems.push("the secret Spot holds is no longer on the app registration".into())
            }
            None => {}
            Some(s) => match s.end_date_time {
                Some(end) if end <= now => {
                    problems.push(format!("the client secret expired on {}", end.date()))
                }
                Some(end) if end - now < f.warn_within => expiring = true,
                _ => {}
            },
        }
    }
    st.verdict = if !onboarded && unseen.is_empty() {
        problems.clear();
        if let (Some(a), Some(client)) = (&acct, &gone_app) {
            st.note = Some(format!(
                "Spot account {} still holds credentials of app {client}, which no longer exists in the tenant: it cannot reach Azure",
                a.account_id
            ));
        }
        Health::NotOnboarded
    } else if !onboarded {
        problems.clear();
        Health::Unknown
    } else if !problems.is_empty() {
        Health::Broken
    } else if !unseen.is_empty() {
        Health::Unknown
    } else if expiring {
        Health::Expiring
    } else {
        Health::Connected
    };
    problems.extend(unseen);
    st.problems = problems;
    st.app = f.app.map(|a| AppInfo {
        object_id: a.id.clone(),
        app_id: a.app_id.clone(),
        display_name: a.display_name.clone(),
    });
    st.service_principal_id = f.sp_id.map(str::to_string);
    st.secret = secret;
    st.role = role;
    st.role_assignment_id = assignment.map(|a| a.id);
    st.spot_account = spot;
    Ok(st)
}
