//! The plan made from the facts: one item per object of every subscription, the
//! tenant's shared ones once, each with its action and reason.

use super::*;

/// A plan item of the tenant's shared objects (no subscription of its own).
pub(super) fn tenant_item(
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
        hint: None,
    }
}

pub(super) fn plan_items(facts: &Facts, f: &TenantFacts) -> Vec<PlanItem> {
    let mut items = app_items(f);
    items.extend(secret_items(facts, f));
    items.extend(role_items(facts, f));
    for s in &f.subs {
        items.extend(subscription_items(f, s));
    }
    items
}

/// The app registration and its service principal.
pub(super) fn app_items(f: &TenantFacts) -> Vec<PlanItem> {
    let mut items = Vec::new();
    let shared = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        tenant_item(f, step, object, name, action, id, reason)
    };
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
                "{k} app registration(s) named {} exist but are not managed by spot-connect (no \"spot-connect\" tag): they are never taken over",
                f.app_name
            ),
        )
        .not_ours()
        .with_hint(Some(Hint::ChooseAppName))),
        AppFact::Unreadable(e, api) => items.push(shared(
            Step::AppRegistration,
            "app registration",
            &f.app_name,
            PlanAction::Blocked,
            None,
            format!("cannot read app registrations ({e})"),
        ).with_hint(api.as_ref().and_then(ApiError::hint))),
    }
    items
}

/// Client secrets: the secrets Spot keeps, then the tenant's one new secret.
pub(super) fn secret_items(facts: &Facts, f: &TenantFacts) -> Vec<PlanItem> {
    let mut items = Vec::new();
    let shared = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        tenant_item(f, step, object, name, action, id, reason)
    };
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
        let reason = format!("{}{}", subs[0].secret_reason, for_subs(f, subs.clone()));
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
                for_subs(f, needing.clone())
            ),
        ));
    }
    items
}

/// The custom role: one, assignable at every subscription of the run (at a management group, its own).
pub(super) fn role_items(facts: &Facts, f: &TenantFacts) -> Vec<PlanItem> {
    let mut items = Vec::new();
    let shared = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        tenant_item(f, step, object, name, action, id, reason)
    };
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
                "a role named {} exists ({}) but was not made by spot-connect (no marker in its description): it is never changed",
                f.role_name, r.id
            ),
        ).with_hint(Some(Hint::ChooseRoleName)),
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
    items
}

/// Per subscription: Spot account, role assignment, Spot connection.
pub(super) fn subscription_items(f: &TenantFacts, s: &SubFacts) -> Vec<PlanItem> {
    let mut items = Vec::new();
    let shared = |step, object: &str, name: &str, action, id: Option<String>, reason: String| {
        tenant_item(f, step, object, name, action, id, reason)
    };
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
        .not_ours()
        .with_hint(Some(Hint::TakeOver)),
        AccountFact::Blocked(why, e) => sub(
            Step::SpotAccount,
            "Spot account",
            "",
            PlanAction::Blocked,
            None,
            why.clone(),
        )
        .with_hint(e.as_ref().and_then(ApiError::hint)),
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
        // Spot holds this app's credentials with a secret the run replaces (it ends soon, or
        // reconcile renews it): the connection is updated, not made.
        (None, AccountFact::Reuse(a, _, _))
            if s.spot_creds.as_ref().is_some_and(|c| {
                matches!(&f.app, AppFact::Ours(app) if c
                    .client_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&app.app_id)))
            }) =>
        {
            sub(
                Step::ConnectSpot,
                "Spot connection",
                &a.name,
                PlanAction::Update,
                Some(a.account_id.clone()),
                format!(
                    "Spot holds this app's credentials{}: replaced with the tenant's new secret (Spot validates it), then read back",
                    s.spot_creds
                        .as_ref()
                        .and_then(|c| c.expiration_date.clone())
                        .map(|d| format!(" (expire {d})"))
                        .unwrap_or_default()
                ),
            )
        }
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
    items
}

/// " (for 2 subscription(s): a, b)" when the tenant has more than one subscription in the run.
pub(super) fn for_subs(f: &TenantFacts, subs: Vec<&SubFacts>) -> String {
    if f.subs.len() == 1 {
        return String::new();
    }
    let ids: Vec<&str> = subs
        .iter()
        .map(|s| s.target.subscription_id.as_str())
        .collect();
    format!(" (for {} subscription(s): {})", ids.len(), ids.join(", "))
}

/// The one item of a subscription whose connection is not ours: kept.
pub(super) fn keep_item(s: &SubFacts) -> Option<PlanItem> {
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
        hint: Some(Hint::TakeOver),
    })
}

/// The report of a subscription kept as it is (nothing written): connected, not ours.
pub(super) fn kept_report(s: &SubFacts) -> Report {
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

pub(super) fn lacks(action: &str, subs: &[&SubFacts]) -> String {
    let scopes: Vec<String> = subs.iter().map(|s| s.scope()).collect();
    format!(
        "you lack {action} on {}: you need Owner or User Access Administrator on the subscription",
        scopes.join(", ")
    )
}
