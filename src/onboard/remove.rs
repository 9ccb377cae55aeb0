//! `remove`: undo what spot-connect created, in a safe order, touching only objects that carry
//! our marker (the app's `spot-connect` tag, the role's description marker, assignments of that
//! role to that app's service principal, Spot accounts whose credentials name that app).
//!
//! Order: role assignments; the subscriptions out of the role's assignable scopes (the role
//! deleted when none is left); the secrets the removed subscriptions hold that no other
//! subscription still holds, or the app itself (with its service principal and secrets) when no
//! other subscription uses it; the Spot account only with
//! `--delete-spot-account`. Spot documents no call that deletes an account's Azure credentials:
//! without the flag the account stays, listed as kept; it can no longer reach Azure once the
//! assignment (or the app) is gone.

use super::lookup::{self, account_for, find_assignment, is_fatal, is_our_role, read, scope_of};
use super::model::{AccountKind, ErrorInfo, Progress, Step, StepEvent};
use super::naming::SECRET_PREFIX;
use super::state::state_path;
use super::{Session, Settings, Target};
use crate::azure::arm::{RoleDefinition, RoleDefinitionProperties};
use crate::error::Result;
use serde::Serialize;
use std::collections::BTreeSet;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalAction {
    Delete,
    /// Changed, not deleted (the role loses these subscriptions from its assignable scopes).
    Update,
    /// Left as it is, with why.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    None,
    DeleteAssignment(String),
    SetRoleScopes(Box<RoleDefinition>, Vec<String>),
    DeleteRole(String),
    RemovePassword(String, String),
    DeleteApp(String),
    DeleteSpotAccount(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalItem {
    /// None for tenant-wide objects (app, role).
    pub subscription_id: Option<String>,
    /// "role assignment", "custom role", "client secret", "app registration", "Spot account"
    pub object: String,
    pub name: String,
    pub id: String,
    pub action: RemovalAction,
    pub reason: String,
    /// What the operator can do about a kept item (delete the Spot account too), as data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<crate::error::Hint>,
    #[serde(skip)]
    op: Op,
}

/// What `remove` would do in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalPlan {
    pub tenant_id: String,
    pub subscriptions: Vec<String>,
    /// Subscriptions whose chosen Spot account uses our objects: nothing of theirs is removed,
    /// and their state files stay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    pub items: Vec<RemovalItem>,
}

impl RemovalPlan {
    /// Items that change something.
    pub fn changes(&self) -> impl Iterator<Item = &RemovalItem> {
        self.items
            .iter()
            .filter(|i| i.action != RemovalAction::Keep)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Also delete the Spot accounts connected with our app (cannot be undone).
    pub delete_spot_account: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalResult {
    pub item: RemovalItem,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

fn item(
    sub: Option<&str>,
    object: &str,
    name: &str,
    id: &str,
    action: RemovalAction,
    reason: String,
    op: Op,
) -> RemovalItem {
    RemovalItem {
        subscription_id: sub.map(str::to_string),
        object: object.into(),
        name: name.into(),
        id: id.into(),
        action,
        reason,
        hint: None,
        op,
    }
}

/// Looks everything up and says what `remove` would delete, change or keep, per tenant.
/// Read-only.
pub async fn plan_removal(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    opts: RemoveOptions,
) -> Result<Vec<RemovalPlan>> {
    let mut tenants: Vec<&str> = targets.iter().map(|t| t.tenant_id.as_str()).collect();
    // At a management group with no enabled subscription below it: the group's own objects
    // (its assignment and role) are still planned, in the group's tenant.
    if let Some(m) = &settings.management_group
        && tenants.is_empty()
    {
        tenants.push(&m.tenant_id);
    }
    tenants.dedup();
    let tenants: Vec<&str> = tenants
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The organization's accounts: a token that may not list them (not an Organization
    // Admin's) still finds each subscription's own by `cloudAccountId`.
    let accounts = match read(|| session.spot.list_accounts()).await {
        Ok(a) => Some(a),
        Err(e)
            if e.api()
                .is_some_and(|a| a.class() == crate::error::ErrorClass::Permission) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let mut plans = Vec::new();
    for tenant in tenants {
        let subs: Vec<&Target> = targets.iter().filter(|t| t.tenant_id == tenant).collect();
        let g = lookup::graph(session, tenant);
        let app_name = settings.app_name_for(tenant);
        let app = lookup::find_app(session, &g, tenant, &app_name).await?;
        let our_app = app.0.as_ref().map(|a| a.app_id.clone());
        // Each subscription's Spot account and whose it is (issue 16 §2): only one we created
        // may be deleted; one the operator chose (or took over) is never deleted, and what it
        // uses of ours (assignment, secret, app) stays with it.
        let mut spot: Vec<SubSpot> = Vec::new();
        for t in &subs {
            spot.push(sub_spot(session, tenant, t, accounts.as_deref(), our_app.as_deref()).await?);
        }
        let in_use: Vec<String> = spot
            .iter()
            .filter(|s| s.chosen_here && s.uses_our_app)
            .map(|s| s.subscription_id.clone())
            .collect();
        let mut items = Vec::new();
        for s in spot.iter().filter(|s| in_use.contains(&s.subscription_id)) {
            items.push(RemovalItem {
                hint: Some(crate::error::Hint::ChosenAccount),
                ..item(
                    Some(&s.subscription_id),
                    "Spot account",
                    s.account_name.as_deref().unwrap_or_default(),
                    s.account_id.as_deref().unwrap_or_default(),
                    RemovalAction::Keep,
                    "chosen, not created by spot-connect: never deleted, even when deleting the Spot accounts we created is asked for".into(),
                    Op::None,
                )
            });
            items.push(RemovalItem {
                hint: Some(crate::error::Hint::ChosenAccount),
                ..item(
                    Some(&s.subscription_id),
                    "role assignment, client secret and app registration",
                    "used by the chosen Spot account",
                    s.account_id.as_deref().unwrap_or_default(),
                    RemovalAction::Keep,
                    format!(
                        "Spot account {} was chosen, not created by spot-connect: it is never deleted, and the role assignment, client secret and app registration it uses are kept so that it keeps working",
                        s.account_id.as_deref().unwrap_or("?")
                    ),
                    Op::None,
                )
            });
        }
        let all_subs: Vec<String> = subs.iter().map(|t| t.subscription_id.clone()).collect();
        let subs: Vec<&Target> = subs
            .into_iter()
            .filter(|t| !in_use.contains(&t.subscription_id))
            .collect();
        let sub_ids: Vec<String> = subs.iter().map(|t| t.subscription_id.clone()).collect();
        let is_target = |s: &str| sub_ids.iter().any(|x| x.eq_ignore_ascii_case(s));
        let scopes: Vec<String> = sub_ids.iter().map(|s| scope_of(s)).collect();
        let a = lookup::arm(session, tenant);
        let (app, foreign_apps) = app;
        let sp = match &app {
            Some(app) => read(|| g.get_service_principal_by_app_id(&app.app_id)).await?,
            None => None,
        };
        // The roles assigned per subscription: Spot's, and at a management group the
        // DataActions half of a split policy (engine/mg.rs).
        let mut remaining_scopes = Vec::new();
        let mut per_sub = vec![settings.role_name()];
        if settings.management_group.is_some() {
            per_sub.push(super::fleet::data_role_name(&settings.role_name()));
        }
        for role_name in &per_sub {
            let role = lookup::find_role(session, &a, tenant, role_name, &scopes).await?;
            let our_role = role.as_ref().filter(|r| is_our_role(r));
            // Role assignments.
            for t in &subs {
                let sub = t.subscription_id.as_str();
                if let (Some(r), Some(sp)) = (our_role, &sp)
                    && let Some(asg) = find_assignment(&a, sub, &sp.id, r).await?
                {
                    items.push(item(
                        Some(sub),
                        "role assignment",
                        &r.properties.role_name,
                        &asg.id,
                        RemovalAction::Delete,
                        format!(
                            "{role_name} assigned to our service principal at {}",
                            scope_of(sub)
                        ),
                        Op::DeleteAssignment(asg.id.clone()),
                    ));
                }
            }
            // The role.
            let (items_of_role, left) = role_items(role.as_ref(), |s| {
                s.strip_prefix("/subscriptions/")
                    .is_some_and(|x| is_target(x.trim_end_matches('/')))
            });
            items.extend(items_of_role);
            remaining_scopes.extend(left);
        }
        // `--management-group`: the group's own role and its one assignment at the group.
        if let Some(m) = &settings.management_group {
            let mg_scope = super::fleet::scope(&m.id);
            let name = super::fleet::mg_role_name(&settings.role_name(), &m.id);
            let role =
                lookup::find_role(session, &a, tenant, &name, std::slice::from_ref(&mg_scope))
                    .await?;
            if let (Some(r), Some(sp)) = (role.as_ref().filter(|r| is_our_role(r)), &sp)
                && let Some(asg) = lookup::find_assignment_at(&a, &mg_scope, &sp.id, r).await?
            {
                items.push(item(
                    None,
                    "role assignment",
                    &r.properties.role_name,
                    &asg.id,
                    RemovalAction::Delete,
                    format!(
                        "{name} assigned to our service principal at management group {} ({mg_scope}): every subscription below it loses it",
                        m.id
                    ),
                    Op::DeleteAssignment(asg.id.clone()),
                ));
            }
            let (items_of_role, left) =
                role_items(role.as_ref(), |s| lookup::same_scope(s, &mg_scope));
            items.extend(items_of_role);
            remaining_scopes.extend(left);
        }

        // Spot accounts, and whether other subscriptions' accounts use our app.
        let mut app_used_elsewhere = !remaining_scopes.is_empty() || !in_use.is_empty();
        if accounts.is_none() {
            // The other subscriptions' accounts cannot be listed: any other subscription
            // onboarded from here may use the app.
            app_used_elsewhere |= !lookup::tenant_states(session, tenant)
                .iter()
                .all(|s| is_target(&s.subscription_id));
        }
        if let Some(app) = &app {
            for acct in accounts
                .iter()
                .flatten()
                .filter(|x| x.provider_external_id.is_some())
            {
                let sub = acct.provider_external_id.clone().unwrap_or_default();
                let target_acct = is_target(&sub);
                let creds = read(|| session.spot.get_azure_credentials(&acct.account_id)).await?;
                let uses_app = creds.as_ref().is_some_and(|c| {
                    c.client_id
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
                });
                if !uses_app {
                    continue;
                }
                // Another subscription still onboarded (its state file is there) uses it. A
                // subscription removed earlier keeps its Spot account, and that does not count.
                if !target_acct && state_path(&session.state_dir, tenant, &sub).exists() {
                    app_used_elsewhere = true;
                }
            }
        }
        for sp in spot.iter().filter(|s| is_target(&s.subscription_id)) {
            let sub = sp.subscription_id.as_str();
            let (Some(id), Some(name)) = (&sp.account_id, &sp.account_name) else {
                continue;
            };
            let account_item = |action, why: String, op| {
                item(Some(sub), "Spot account", name, id, action, why, op)
            };
            match sp.kind {
                AccountKind::Created if opts.delete_spot_account => items.push(account_item(
                    RemovalAction::Delete,
                    "created by spot-connect (the id our create call recorded, the name we gave it); its deletion was asked for: the account and everything in it is deleted".into(),
                    Op::DeleteSpotAccount(id.clone()),
                )),
                AccountKind::Created => items.push(RemovalItem {
                    hint: Some(crate::error::Hint::DeleteSpotAccount),
                    ..account_item(
                        RemovalAction::Keep,
                        "Spot has no call to delete Azure credentials: the account stays, and can no longer reach Azure once the assignment is gone".into(),
                        Op::None,
                    )
                }),
                AccountKind::Chosen => items.push(account_item(
                    RemovalAction::Keep,
                    "chosen, not created by spot-connect: never deleted".into(),
                    Op::None,
                )),
                AccountKind::NotOurs => items.push(account_item(
                    RemovalAction::Keep,
                    sp.why_not_ours.clone(),
                    Op::None,
                )),
            }
        }

        // The app registration.
        if let Some(app) = &app {
            if app_used_elsewhere {
                // A secret goes only when no other subscription still holds it: the removed
                // subscriptions' own (named after them, by earlier versions), the one each
                // records, and its recorded orphans.
                let states = lookup::tenant_states(session, tenant);
                let held_elsewhere = |k: &str| {
                    states
                        .iter()
                        .filter(|s| !is_target(&s.subscription_id))
                        .filter(|s| {
                            s.secret
                                .as_ref()
                                .is_some_and(|r| r.key_id.eq_ignore_ascii_case(k))
                        })
                        .count()
                };
                let mut seen = BTreeSet::new();
                for t in &subs {
                    let own = format!("{SECRET_PREFIX} {}", t.subscription_id);
                    let state = states
                        .iter()
                        .find(|s| s.subscription_id == t.subscription_id);
                    let recorded: Vec<&str> = state
                        .into_iter()
                        .flat_map(|s| {
                            s.secret
                                .iter()
                                .map(|r| r.key_id.as_str())
                                .chain(s.orphan_key_ids.iter().map(String::as_str))
                        })
                        .collect();
                    for p in app.password_credentials.iter().filter(|p| {
                        p.display_name.as_deref() == Some(own.as_str())
                            || recorded.iter().any(|k| k.eq_ignore_ascii_case(&p.key_id))
                    }) {
                        if !seen.insert(p.key_id.to_ascii_lowercase()) {
                            continue;
                        }
                        let name = p.display_name.clone().unwrap_or_default();
                        let others = held_elsewhere(&p.key_id);
                        items.push(if others > 0 {
                            item(
                                Some(&t.subscription_id),
                                "client secret",
                                &name,
                                &p.key_id,
                                RemovalAction::Keep,
                                format!("{others} other subscription(s) still hold it"),
                                Op::None,
                            )
                        } else {
                            item(
                                Some(&t.subscription_id),
                                "client secret",
                                &name,
                                &p.key_id,
                                RemovalAction::Delete,
                                "no other subscription holds it".into(),
                                Op::RemovePassword(app.id.clone(), p.key_id.clone()),
                            )
                        });
                    }
                }
                items.push(item(
                    None,
                    "app registration",
                    &app.display_name,
                    &app.app_id,
                    RemovalAction::Keep,
                    if in_use.is_empty() {
                        "other subscriptions still use it".into()
                    } else {
                        format!(
                            "still used: by the chosen Spot account of {}{}",
                            in_use.join(", "),
                            if remaining_scopes.len() > in_use.len() {
                                ", and by other subscriptions"
                            } else {
                                ""
                            }
                        )
                    },
                    Op::None,
                ));
            } else {
                items.push(item(
                    None,
                    "app registration",
                    &app.display_name,
                    &app.app_id,
                    RemovalAction::Delete,
                    "no other subscription uses it (its service principal and secrets go with it)"
                        .into(),
                    Op::DeleteApp(app.id.clone()),
                ));
            }
        }
        if foreign_apps > 0 {
            items.push(item(
                None,
                "app registration",
                &app_name,
                "",
                RemovalAction::Keep,
                format!(
                    "{foreign_apps} same-named app(s) without the spot-connect tag: never touched"
                ),
                Op::None,
            ));
        }
        // Safe order.
        let rank = |o: &Op| match o {
            Op::DeleteAssignment(_) => 0,
            Op::SetRoleScopes(..) | Op::DeleteRole(_) => 1,
            Op::RemovePassword(..) => 2,
            Op::DeleteApp(_) => 3,
            Op::DeleteSpotAccount(_) => 4,
            Op::None => 5,
        };
        items.sort_by_key(|i| rank(&i.op));
        plans.push(RemovalPlan {
            tenant_id: tenant.to_string(),
            subscriptions: all_subs,
            kept: in_use,
            items,
        });
    }
    Ok(plans)
}

/// What `remove` does with a custom role found under our name: one not ours is kept; ours loses
/// the scopes `ours_scope` picks (deleted when none is left). Returns the items and the scopes
/// that stay (other subscriptions or groups still use the role).
fn role_items(
    role: Option<&RoleDefinition>,
    ours_scope: impl Fn(&str) -> bool,
) -> (Vec<RemovalItem>, Vec<String>) {
    let Some(r) = role else {
        return (vec![], vec![]);
    };
    if !is_our_role(r) {
        return (
            vec![item(
                None,
                "custom role",
                &r.properties.role_name,
                &r.id,
                RemovalAction::Keep,
                "not made by spot-connect (no marker in its description): never touched".into(),
                Op::None,
            )],
            vec![],
        );
    }
    let (gone, left): (Vec<String>, Vec<String>) = r
        .properties
        .assignable_scopes
        .iter()
        .cloned()
        .partition(|s| ours_scope(s));
    let out = if left.is_empty() {
        vec![item(
            None,
            "custom role",
            &r.properties.role_name,
            &r.id,
            RemovalAction::Delete,
            "nothing else uses it".into(),
            Op::DeleteRole(role_path(
                &r.id,
                r.properties.assignable_scopes.first().map(String::as_str),
            )),
        )]
    } else if !gone.is_empty() {
        vec![item(
            None,
            "custom role",
            &r.properties.role_name,
            &r.id,
            RemovalAction::Update,
            format!(
                "remove {} from its assignable scopes; {} other scope(s) keep it",
                gone.join(", "),
                left.len()
            ),
            Op::SetRoleScopes(Box::new(r.clone()), left.clone()),
        )]
    } else {
        vec![]
    };
    (out, left)
}

/// A subscription's Spot account as `remove` sees it.
struct SubSpot {
    subscription_id: String,
    account_id: Option<String>,
    account_name: Option<String>,
    kind: AccountKind,
    /// Its credentials name our app.
    uses_our_app: bool,
    /// The state file records that the operator chose it (`--spot-account`, `--take-over`).
    chosen_here: bool,
    why_not_ours: String,
}

/// The Spot account connected to the subscription (`?cloudAccountId=`), else the one the
/// state file records, and whose it is.
async fn sub_spot(
    session: &Session,
    tenant: &str,
    t: &Target,
    accounts: Option<&[crate::spot::SpotAccount]>,
    our_app: Option<&str>,
) -> Result<SubSpot> {
    let sub = t.subscription_id.as_str();
    let state = super::state::State::load(&session.state_dir, tenant, sub).unwrap_or_default();
    let recorded = state.spot_account_id.as_deref();
    let connected = read(|| session.spot.accounts_for_subscription(sub)).await?;
    let acct = match connected
        .iter()
        .find(|a| Some(a.account_id.as_str()) == recorded)
        .or(connected.first())
    {
        Some(a) => Some(a.clone()),
        None => match (accounts, recorded) {
            (Some(all), r) => account_for(all, sub, r).cloned(),
            (None, Some(r)) => read(|| session.spot.get_account(r))
                .await?
                .filter(|a| a.provider_external_id.is_none()),
            (None, None) => None,
        },
    };
    let mut out = SubSpot {
        subscription_id: sub.to_string(),
        account_id: acct.as_ref().map(|a| a.account_id.clone()),
        account_name: acct.as_ref().map(|a| a.name.clone()),
        kind: AccountKind::NotOurs,
        uses_our_app: false,
        chosen_here: false,
        why_not_ours: String::new(),
    };
    let Some(acct) = acct else {
        return Ok(out);
    };
    let creds = read(|| session.spot.get_azure_credentials(&acct.account_id)).await?;
    let creds_app = creds.as_ref().and_then(|c| c.client_id.clone());
    out.uses_our_app = creds_app
        .as_deref()
        .zip(our_app)
        .is_some_and(|(c, o)| c.eq_ignore_ascii_case(o));
    out.chosen_here = state.chosen(&acct.account_id);
    out.kind = if state.created(&acct.account_id, &acct.name, creds_app.as_deref(), our_app) {
        AccountKind::Created
    } else if state.chosen(&acct.account_id) || out.uses_our_app {
        AccountKind::Chosen
    } else {
        AccountKind::NotOurs
    };
    out.why_not_ours = match &creds_app {
        Some(c) if !out.uses_our_app => {
            format!("its credentials are not our app's (client id {c}): never touched")
        }
        _ => {
            "not created by spot-connect (no record of our create call for it here): never touched"
                .into()
        }
    };
    Ok(out)
}

/// Carries out a plan, in its order. A failed item does not stop the others, except that the
/// role is not deleted while an assignment failed to go, nor the app while the role is left.
/// The state files of the plan's subscriptions are deleted when every change succeeded.
pub async fn remove(
    session: &Session,
    plan: &RemovalPlan,
    progress: UnboundedSender<Progress>,
) -> Vec<RemovalResult> {
    let g = lookup::graph(session, &plan.tenant_id);
    let a = lookup::arm(session, &plan.tenant_id);
    let mut out = Vec::new();
    // The subscriptions' locks, then the tenant's (the role and the secret are shared): taken
    // before anything is removed; nothing is when another run holds one.
    let mut locks = Vec::new();
    for sub in &plan.subscriptions {
        match super::lock::acquire(
            &session.state_dir,
            &plan.tenant_id,
            sub,
            super::lock::LOCK_WAIT,
        )
        .await
        {
            Ok(l) => locks.push(l),
            Err(e) => return not_removed(plan, &e),
        }
    }
    match super::lock::tenant_locks(&session.state_dir, &[&plan.tenant_id], Some(&progress)).await {
        Ok(l) => locks.extend(l),
        Err(e) => return not_removed(plan, &e),
    }
    let mut failed_rank: Option<u8> = None;
    for it in &plan.items {
        let step = match it.op {
            Op::DeleteAssignment(_) => Step::RoleAssignment,
            Op::SetRoleScopes(..) | Op::DeleteRole(_) => Step::CustomRole,
            Op::RemovePassword(..) => Step::ClientSecret,
            Op::DeleteApp(_) => Step::AppRegistration,
            Op::DeleteSpotAccount(_) | Op::None => Step::SpotAccount,
        };
        let rank = match it.op {
            Op::DeleteAssignment(_) => 0,
            Op::SetRoleScopes(..) | Op::DeleteRole(_) => 1,
            _ => 2,
        };
        if it.op == Op::None {
            continue;
        }
        let emit = |event| {
            let _ = progress.send(Progress::Step {
                subscription: it.subscription_id.clone(),
                step,
                event,
            });
        };
        emit(StepEvent::Started {
            detail: format!("{} {} {}", verb(it.action), it.object, it.name),
        });
        let r = if failed_rank.is_some_and(|f| f < rank)
            && matches!(it.op, Op::DeleteRole(_) | Op::DeleteApp(_))
        {
            Err(crate::error::Error::Skipped(
                "kept: an earlier removal failed and this one depends on it".into(),
            ))
        } else {
            run(session, &g, &a, &it.op).await
        };
        match r {
            Ok(()) => {
                emit(StepEvent::Finished {
                    outcome: super::model::Outcome::Updated,
                    id: Some(it.id.clone()),
                    detail: format!("{} {}", past(it.action), it.object),
                });
                out.push(RemovalResult {
                    item: it.clone(),
                    done: true,
                    error: None,
                });
            }
            Err(e) => {
                let info = ErrorInfo::from(&e);
                emit(StepEvent::Failed {
                    error: info.clone(),
                });
                failed_rank = Some(failed_rank.map_or(rank, |f| f.min(rank)));
                out.push(RemovalResult {
                    item: it.clone(),
                    done: false,
                    error: Some(info),
                });
                if is_fatal(&e) {
                    break;
                }
            }
        }
    }
    if failed_rank.is_none() {
        for sub in plan.subscriptions.iter().filter(|s| !plan.kept.contains(s)) {
            let _ = std::fs::remove_file(state_path(&session.state_dir, &plan.tenant_id, sub));
        }
    }
    out
}

fn verb(a: RemovalAction) -> &'static str {
    match a {
        RemovalAction::Delete => "deleting",
        RemovalAction::Update => "updating",
        RemovalAction::Keep => "keeping",
    }
}

fn past(a: RemovalAction) -> &'static str {
    match a {
        RemovalAction::Delete => "deleted",
        RemovalAction::Update => "updated",
        RemovalAction::Keep => "kept",
    }
}

async fn run(
    session: &Session,
    g: &crate::azure::graph::Graph,
    a: &crate::azure::arm::Arm,
    op: &Op,
) -> Result<()> {
    match op {
        Op::None => Ok(()),
        Op::DeleteAssignment(id) => read(|| a.delete_role_assignment(id)).await,
        Op::DeleteRole(id) => read(|| a.delete_role_definition(id)).await,
        Op::SetRoleScopes(r, left) => {
            // Only our scopes come out: the role is read again (another writer may have added
            // a scope since the plan), ours taken out of what it lists now, written, read back.
            let ours: Vec<&String> = r
                .properties
                .assignable_scopes
                .iter()
                .filter(|s| !left.iter().any(|l| lookup::same_scope(l, s)))
                .collect();
            for _ in 0..super::engine::ROLE_MERGES {
                let now = read(|| a.get_role_definition(&r.id))
                    .await?
                    .unwrap_or_else(|| (**r).clone());
                let keep: Vec<String> = now
                    .properties
                    .assignable_scopes
                    .iter()
                    .filter(|s| !ours.iter().any(|o| lookup::same_scope(o, s)))
                    .cloned()
                    .collect();
                if keep.len() == now.properties.assignable_scopes.len() {
                    return Ok(());
                }
                if keep.is_empty() {
                    // Nothing else lists it any more: left to a removal that deletes it.
                    return Ok(());
                }
                let props = RoleDefinitionProperties {
                    assignable_scopes: keep.clone(),
                    ..now.properties.clone()
                };
                read(|| a.put_role_definition(&keep[0], &r.name, &props)).await?;
                super::engine::jitter().await;
            }
            Ok(())
        }
        // A retry told the keyId is gone is a removal whose reply was lost.
        Op::RemovePassword(app, key) => super::secrets::remove_secret(g, app, key).await,
        Op::DeleteApp(id) => read(|| g.delete_application(id)).await,
        Op::DeleteSpotAccount(id) => read(|| session.spot.delete_account(id)).await,
    }
}

/// Every item of `plan` not done, for `e` (a lock another run holds).
fn not_removed(plan: &RemovalPlan, e: &crate::error::Error) -> Vec<RemovalResult> {
    plan.items
        .iter()
        .filter(|it| it.op != Op::None)
        .map(|it| RemovalResult {
            item: it.clone(),
            done: false,
            error: Some(ErrorInfo::from(e)),
        })
        .collect()
}

/// A role id at a subscription scope (ARM deletes roles there, not at tenant scope).
fn role_path(id: &str, scope: Option<&str>) -> String {
    if id.starts_with("/subscriptions/") {
        return id.to_string();
    }
    let guid = crate::azure::arm::guid_of(id);
    match scope {
        Some(s) => format!("{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        None => id.to_string(),
    }
}
