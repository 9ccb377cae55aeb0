//! What exists, looked up before anything is written: `plan` groups the targets by
//! tenant and looks everything up once per tenant and once per subscription (the facts).

use super::*;

pub(crate) async fn plan(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
) -> Result<Plan> {
    plan_with(session, targets, settings, None, None).await
}

/// [`plan`], where a secret Spot holds for a subscription that ends by `renew_before` (or whose
/// connection reports so) is replaced too: by the tenant's one new secret of the run, the same
/// one that connects its new subscriptions (`reconcile`'s rotation: one secret per app per pass).
pub(crate) async fn plan_renewing(
    session: &Session,
    targets: &[Target],
    settings: &Settings,
    renew_before: Option<OffsetDateTime>,
) -> Result<Plan> {
    plan_with(session, targets, settings, renew_before, None).await
}

/// Subscriptions' own look-ups begun before the targets were all known
/// ([`plan_listed`]), by (tenant, subscription) in lower case; with Spot's account list they
/// were made alongside.
pub(super) struct Prefetch<'a> {
    pub(super) accounts: AccountsF<'a>,
    pub(super) subs: Mutex<std::collections::HashMap<(String, String), Result<SubFacts>>>,
}

pub(super) fn prefetch_key(t: &Target) -> (String, String) {
    (
        t.tenant_id.to_ascii_lowercase(),
        t.subscription_id.to_ascii_lowercase(),
    )
}

/// Spot's accounts, listed once per plan (or why the token was refused).
pub(super) fn list_accounts(session: &Session) -> AccountsF<'_> {
    async {
        match read(|| session.spot.list_accounts()).await {
            Ok(a) => Ok(Ok(a)),
            Err(Error::Api(e)) if e.class() == ErrorClass::Permission => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }
    .boxed()
    .shared()
}

/// The plan of the subscriptions discovery lists, made while it lists them: each one's own
/// look-ups (permissions, its Spot account and credentials) start as soon as `listed` hands
/// it on (the page of `GET /subscriptions` holding it has arrived), while `resolved` is still
/// reading later pages. `resolved` ends with the targets, in their order; the plan is then
/// made of them exactly as [`plan`] makes it: a look-up made ahead is used only for a target
/// it was made for, from the same state file (else it is made again), and the tenant-wide
/// look-ups, which depend on the whole set, start once it is known. Same items, same order.
/// Err: the resolution's error; then the plan's result (None: no target).
pub(crate) async fn plan_listed<R>(
    session: &Session,
    settings: &Settings,
    listed: futures::channel::mpsc::UnboundedReceiver<Target>,
    resolved: impl std::future::Future<Output = Result<R>>,
    targets_of: impl Fn(&R) -> &[Target],
) -> Result<(R, Option<Result<Plan>>)> {
    check_settings(settings)?;
    let accounts = list_accounts(session);
    // Handed on (whose look-up started) and looked up, by key.
    let started = Mutex::new(std::collections::HashSet::new());
    let done = Mutex::new(std::collections::HashMap::new());
    let ahead = listed
        // Not at the expense of the listing: the pages draw on the tenant's ARM read budget too
        // (a tenant of thousands is looked up after its listing, beyond what the budget holds).
        .filter(|t| {
            let key = format!("tenant/{}/reads", t.tenant_id.to_ascii_lowercase());
            let left = session.http.budgets.available(&key);
            std::future::ready(left.is_none_or(|l| l >= AHEAD_RESERVE))
        })
        .map(|t| {
            let key = prefetch_key(&t);
            lock(&started).insert(key.clone());
            let (accounts, done) = (accounts.clone(), &done);
            async move {
                let arm = lookup::arm(session, &t.tenant_id);
                if let Ok(state) = State::load(&session.state_dir, &t.tenant_id, &t.subscription_id)
                {
                    // Never at a management group (plan_listed resolves subscriptions): permissions read.
                    let found =
                        lookup_sub(session, &arm, settings, &t, state, accounts, true).await;
                    lock(done).insert(key, found);
                }
            }
        })
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .for_each(|()| async {});
    let mut ahead = std::pin::pin!(ahead);
    let mut resolved = std::pin::pin!(resolved);
    let resolved = tokio::select! {
        r = &mut resolved => r,
        () = &mut ahead => resolved.await,
    };
    // An error: the look-ups still going are dropped (reads only).
    let resolved = resolved?;
    // The ones still going are awaited when every one is of a target; else (a tenant left out,
    // a subscription the resolution refused) they are dropped and the rest looked up afresh.
    let wanted: std::collections::HashSet<(String, String)> =
        targets_of(&resolved).iter().map(prefetch_key).collect();
    if lock(&started).iter().all(|k| wanted.contains(k)) {
        (&mut ahead).await;
    }
    let pre = Prefetch {
        accounts: accounts.clone(),
        subs: Mutex::new(std::mem::take(&mut *lock(&done))),
    };
    let targets = targets_of(&resolved);
    if targets.is_empty() {
        return Ok((resolved, None));
    }
    let plan = plan_with(session, targets, settings, None, Some(pre)).await;
    Ok((resolved, Some(plan)))
}

/// A subscription is looked up while the listing goes on only while its tenant's ARM read
/// budget holds at least this much (ARM's bucket is 250).
pub(super) const AHEAD_RESERVE: f64 = 100.0;

/// The checks of the settings alone, before anything is looked up.
pub(super) fn check_settings(settings: &Settings) -> Result<()> {
    if !SECRET_MONTHS.contains(&settings.secret_months) {
        return Err(Error::Usage(format!(
            "a client secret of {} months: the lifetime must be {} to {} months",
            settings.secret_months,
            SECRET_MONTHS.start(),
            SECRET_MONTHS.end()
        )));
    }
    Ok(())
}

pub(super) async fn plan_with<'a>(
    session: &'a Session,
    targets: &[Target],
    settings: &Settings,
    renew_before: Option<OffsetDateTime>,
    pre: Option<Prefetch<'a>>,
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
    check_settings(settings)?;
    let policy = Policy::load(settings.policy_file.as_deref())?;
    // At a management group, a role with DataActions cannot be assigned: split (mg.rs).
    let (policy, data_policy) = mg::split_policy(policy, settings);
    // Spot's accounts, listed once, alongside the tenants' lookups (each subscription waits
    // for them only where it needs them).
    let (accounts, ahead) = match pre {
        Some(p) => (
            p.accounts,
            p.subs.into_inner().unwrap_or_else(|e| e.into_inner()),
        ),
        None => (list_accounts(session), Default::default()),
    };
    let ahead = Mutex::new(ahead);
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
            &ahead,
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
    Ok(Plan::made(PlanView::new(targets, items), facts))
}

/// Spot's accounts (or why the token was refused), listed once per plan.
pub(super) type AccountsF<'a> = futures::future::Shared<
    futures::future::BoxFuture<
        'a,
        std::result::Result<std::result::Result<Vec<SpotAccount>, ApiError>, Error>,
    >,
>;

// `ahead`: the look-ups `plan_listed` made while the listing went on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn lookup_tenant(
    session: &Session,
    settings: &Settings,
    tenant: &str,
    subs: Vec<&Target>,
    accounts: AccountsF<'_>,
    names: &Mutex<Vec<String>>,
    data_policy: Option<&Policy>,
    ahead: &Mutex<std::collections::HashMap<(String, String), Result<SubFacts>>>,
) -> Result<TenantFacts> {
    let graph = lookup::graph(session, tenant);
    let arm = lookup::arm(session, tenant);
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
        let (fact, sp) = match lookup::find_app(session, &graph, tenant, &app_name).await {
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
    let role_f = lookup::find_role(session, &arm, tenant, &role_name, &scopes);
    let sub_permissions = settings.management_group.is_none() || data_policy.is_some();
    // LOOKUP_CONCURRENCY subscriptions in flight, the next one starting as soon as one ends
    // (a window, not rounds that wait for their slowest), in the targets' order.
    // (The futures are made first: a closure in the stream trips the Send check of callers.)
    let looks: Vec<_> = subs
        .iter()
        .copied()
        .zip(states)
        .map(|(t, state)| {
            // Made ahead (`plan_listed`) for this very target and state file: taken as it is.
            let made = lock(ahead)
                .remove(&prefetch_key(t))
                .and_then(Result::ok)
                .filter(|f| f.target == *t && f.state == state);
            let (arm, accounts) = (&arm, accounts.clone());
            async move {
                match made {
                    Some(f) => Ok(f),
                    None => {
                        lookup_sub(session, arm, settings, t, state, accounts, sub_permissions)
                            .await
                    }
                }
            }
        })
        .collect();
    let subs_f = futures::stream::iter(looks)
        .buffered(LOOKUP_CONCURRENCY)
        .collect::<Vec<_>>();
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

pub(super) async fn lookup_sub(
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
            return Err(Error::NotFound(format!(
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
pub(super) fn account_fact(
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
                    "taken over as asked: chosen, never deleted".into(),
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
                    "the account you chose: connected, never deleted".into(),
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
pub(super) fn account_name(t: &Target) -> String {
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
pub(super) async fn app_rights(session: &Session, graph: &Graph, tenant: &str) -> AppRights {
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
pub(super) fn secret_decision(app: &AppFact, s: &SubFacts) -> (Option<SecretRecord>, String) {
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
                .find(|p| super::super::orphans::holds(c, p))
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
pub(super) fn renew(s: &mut SubFacts, before: OffsetDateTime) {
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
