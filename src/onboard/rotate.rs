//! `rotate-secret`: a new client secret for the tenant's app, handed to every Spot account that
//! uses the app, verified, and only then the old secrets removed.
//!
//! Order, and what a failure (or a kill) at each point leaves:
//! 1. `addPassword` (new secret N). Killed here: N is an unused secret; the old one still works.
//! 2. Spot validates N for every account (nothing stored). A failure: N is removed, old kept.
//! 3. N is set on each account, the account's state file updated (keyId, end date) right after.
//!    A failure before any account took N: N is removed. After some did: both secrets stay
//!    valid (the accounts that took N use it, the others keep the old one) and the report says
//!    which; run `rotate-secret` again.
//! 4. Read back from Spot (client id, expiration date = N's end).
//! 5. Every other secret of ours on the app (display name `spot-connect …`) is removed by keyId:
//!    the old one, and any left by an earlier rotation that was killed.
//!
//! The secret's value goes from Graph's reply straight to Spot; never to a file or a log.

use super::lifetime::{self, SecretLimit};
use super::lookup::{self, is_fatal, read};
use super::model::{ErrorInfo, Outcome, Progress, Step, StepEvent};
use super::naming::shared_secret_name;
use super::retry::{Backoff, propagate, resend_on_transient};
use super::secrets::HandOver;
use super::secrets::secret_ends_until;
use super::state::{SecretRecord, State};
use super::{Session, Settings};
use crate::azure::graph::{Application, Graph};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::spot::{AzureCredentials, AzureCredentialsInfo};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotatedAccount {
    pub account_id: String,
    pub subscription_id: String,
    /// Spot holds the new secret (set and read back).
    pub updated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotateReport {
    pub tenant_id: String,
    pub app_id: String,
    /// The new secret's keyId (None when it was removed again after a failure).
    pub new_key_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub new_end_date_time: Option<OffsetDateTime>,
    pub accounts: Vec<RotatedAccount>,
    /// Old secrets removed (by keyId).
    pub removed_key_ids: Vec<String>,
    /// Old secrets that could not be removed, with why.
    pub left_key_ids: Vec<(String, String)>,
    /// Every account holds the new secret and the old ones are gone.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// How long Spot may take to accept a brand-new secret (Azure propagating it).
const SPOT_WAIT: Backoff = Backoff {
    budget: Duration::from_secs(90),
    ..Backoff::DEFAULT
};

struct Ctx<'a> {
    tenant: &'a str,
    graph: Graph,
    tx: UnboundedSender<Progress>,
}

impl Ctx<'_> {
    fn emit(&self, sub: Option<&str>, step: Step, event: StepEvent) {
        let _ = self.tx.send(Progress::Step {
            subscription: sub.map(str::to_string),
            step,
            event,
        });
    }

    fn log(&self, message: String) {
        tracing::info!("{message}");
        let _ = self.tx.send(Progress::Log { message });
    }

    /// Calls `f` again while Spot cannot use a brand-new secret yet (the one retry policy,
    /// within `SPOT_WAIT`).
    async fn propagate<T, F, Fut>(&self, sub: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        propagate(&SPOT_WAIT, |_| false, f, self.on_wait(sub)).await
    }

    /// Each wait for Azure to propagate, reported on the subscription's connection step.
    fn on_wait<'s>(&'s self, sub: &'s str) -> impl FnMut(u32, Duration) + 's {
        move |attempt, next_in| {
            self.emit(
                Some(sub),
                Step::ConnectSpot,
                StepEvent::Waiting {
                    reason: "waiting for Azure to propagate".into(),
                    attempt,
                    next_in,
                },
            )
        }
    }

    async fn remove_key(&self, app: &Application, key: &str) -> Result<()> {
        // A retry told "No password credential found" is a removal whose reply was lost.
        super::secrets::remove_secret(&self.graph, &app.id, key).await
    }
}

/// Rotates the client secret of the tenant's app (see the module doc for the order).
/// `Err` when nothing was changed (no app, no Spot account uses it, the new secret failed
/// validation and was removed again). A partial rotation is `Ok` with `complete == false`.
pub async fn rotate(
    session: &Session,
    tenant: &str,
    settings: &Settings,
    progress: UnboundedSender<Progress>,
) -> Result<RotateReport> {
    // The tenant's secret is shared by its subscriptions: written holding the tenant's lock
    // (an `apply` of this state dir handing a secret over finishes first).
    let _tenant_lock =
        super::lock::tenant_locks(&session.state_dir, &[tenant], Some(&progress)).await?;
    let ctx = Ctx {
        tenant,
        graph: lookup::graph(session, tenant),
        tx: progress,
    };
    let app_name = settings.app_name_for(tenant);
    let (app, _) = lookup::find_app(session, &ctx.graph, tenant, &app_name).await?;
    let app = app.ok_or_else(|| {
        Error::NotFound(format!(
            "tenant {tenant} has no app registration of ours named {app_name}: nothing to rotate (onboard it first)"
        ))
    })?;

    // The accounts that use this app: their credentials' clientId is our appId.
    let accounts = read(|| session.spot.list_accounts()).await?;
    let users = {
        let azure: Vec<&crate::spot::SpotAccount> = accounts
            .iter()
            .filter(|a| a.provider_external_id.is_some())
            .collect();
        let mut users = Vec::new();
        for chunk in azure.chunks(8) {
            let mut futs = Vec::new();
            for a in chunk {
                futs.push(async move {
                    let id = a.account_id.clone();
                    let c = read(|| session.spot.get_azure_credentials(&id)).await?;
                    Ok::<_, Error>((id, c))
                });
            }
            for r in futures::future::join_all(futs).await {
                let (id, c) = r?;
                if let Some(c) = c.filter(|c| {
                    c.client_id
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&app.app_id))
                        && c.tenant_id
                            .as_deref()
                            .is_none_or(|t| t.eq_ignore_ascii_case(tenant))
                }) {
                    users.push((id, c));
                }
            }
        }
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users
    };
    if users.is_empty() {
        return Err(Error::NotFound(format!(
            "no Spot account uses the app {} ({}): nothing to rotate",
            app.display_name, app.app_id
        )));
    }
    let sub_of = |c: &AzureCredentialsInfo| c.subscription_id.clone().unwrap_or_default();

    // 1. The new secret.
    let name = shared_secret_name(tenant);
    ctx.emit(
        None,
        Step::ClientSecret,
        StepEvent::Started {
            detail: format!("new client secret for {}", app.display_name),
        },
    );
    // The tenant's (or the app's own) secret-lifetime policy, read as apply's preflight does:
    // a cap shortens the secret (and Spot's expirationDate), passwordAddition stops the rotation
    // before anything is written, and when it cannot be read a refused lifetime steps down.
    let now = OffsetDateTime::now_utc();
    let months = settings.secret_months;
    let (tenant_policy, own_policy) = tokio::join!(
        lifetime::read_tenant(&ctx.graph),
        lifetime::read_own(&ctx.graph, Some(&app.id))
    );
    let limit = lifetime::evaluate(
        &tenant_policy,
        own_policy.as_ref(),
        Some((app.id.as_str(), app.created_date_time)),
        now,
        months,
    );
    let note = limit.plan_note(months, now);
    if let SecretLimit::Blocked { .. } = &limit {
        let e = Error::Blocked(format!(
            "nothing was changed: the new secret of app {} cannot be made: {}",
            app.display_name,
            note.unwrap_or_default()
        ));
        ctx.emit(
            None,
            Step::ClientSecret,
            StepEvent::Failed {
                error: ErrorInfo::from(&e),
            },
        );
        return Err(e);
    }
    if let Some(n) = note {
        ctx.log(format!("client secret: {n}"));
    }
    let tries = lifetime::attempts(&limit, months, now);
    let ends: Vec<Vec<OffsetDateTime>> = tries
        .iter()
        .map(|t| secret_ends_until(&app, t.end))
        .collect();
    // The intent, before the keyId is known: a rotation killed now leaves a secret with one of
    // these end dates, which the next `apply` of these subscriptions can prove ours and removes
    // (`orphans::reclaim_after_apply`).
    let recorded: Vec<i64> = ends.iter().flatten().map(|e| e.unix_timestamp()).collect();
    for mut s in lookup::tenant_states(session, tenant) {
        let before = s.secret_intents.len();
        for e in &recorded {
            if !s.secret_intents.contains(e) {
                s.secret_intents.push(*e);
            }
        }
        if s.secret_intents.len() != before {
            let dir = session.state_dir.clone();
            let _ = tokio::task::spawn_blocking(move || s.save(&dir)).await;
        }
    }
    let add = |k: usize| {
        let (ends, name, graph, app_id) = (&ends[k], &name, &ctx.graph, &app.id);
        async move {
            // A resend after a lost reply asks for the next end date: every secret made has
            // its own (a refused lifetime is not resent: the next lifetime is tried).
            let attempt = std::sync::atomic::AtomicUsize::new(0);
            let np = resend_on_transient(|| async {
                use std::sync::atomic::Ordering;
                let i = attempt.load(Ordering::Relaxed).min(ends.len() - 1);
                let r = graph.add_password(app_id, name, ends[i]).await;
                if r.is_err() {
                    attempt.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
            .await?;
            let i = attempt
                .load(std::sync::atomic::Ordering::Relaxed)
                .min(ends.len() - 1);
            Ok((np, ends[i]))
        }
    };
    let added = lifetime::add_password_stepping_down(&tries, add, |m| ctx.log(m)).await;
    let (np, end, taken) = match added {
        Err(e) => {
            ctx.emit(
                None,
                Step::ClientSecret,
                StepEvent::Failed {
                    error: ErrorInfo::from(&e),
                },
            );
            return Err(e);
        }
        Ok(x) => x,
    };
    if taken > 0 {
        ctx.log(format!(
            "client secret: {} (the tenant's policy refused {})",
            tries[taken].label,
            tries[..taken]
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let new_key = np.credential.key_id.clone();
    let new_end = np.credential.end_date_time.unwrap_or(end);
    let value: Secret = np.secret;
    ctx.emit(
        None,
        Step::ClientSecret,
        StepEvent::Finished {
            outcome: Outcome::Created,
            id: Some(new_key.clone()),
            detail: format!("expires {}", new_end.date()),
        },
    );
    let creds_for = |c: &AzureCredentialsInfo| AzureCredentials {
        client_id: app.app_id.clone(),
        client_secret: value.clone(),
        tenant_id: tenant.to_string(),
        subscription_id: sub_of(c),
        expiration_date: new_end,
    };
    let mut report = RotateReport {
        tenant_id: tenant.to_string(),
        app_id: app.app_id.clone(),
        new_key_id: Some(new_key.clone()),
        new_end_date_time: Some(new_end),
        accounts: users
            .iter()
            .map(|(a, c)| RotatedAccount {
                account_id: a.clone(),
                subscription_id: sub_of(c),
                updated: false,
                error: None,
            })
            .collect(),
        removed_key_ids: vec![],
        left_key_ids: vec![],
        complete: false,
        error: None,
    };

    // 2. Spot validates the new secret for every account before any is changed.
    for (i, (acct, c)) in users.iter().enumerate() {
        let sub = sub_of(c);
        let creds = creds_for(c);
        if let Err(e) = ctx
            .propagate(&sub, || {
                session.spot.validate_azure_credentials(acct, &creds)
            })
            .await
        {
            report.accounts[i].error = Some(ErrorInfo::from(&e));
            return Err(give_up(&ctx, &app, &new_key, &sub, e).await);
        }
    }

    // 3. Set it on each account, recording it in the subscription's state right after.
    let mut first_error: Option<Error> = None;
    for (i, (acct, c)) in users.iter().enumerate() {
        let sub = sub_of(c);
        ctx.emit(
            Some(&sub),
            Step::ConnectSpot,
            StepEvent::Started {
                detail: format!("new secret to {acct}"),
            },
        );
        let creds = creds_for(c);
        let hand_over = HandOver {
            spot: &session.spot,
            graph: &ctx.graph,
            app_object_id: Some(&app.id),
            account: acct,
            creds: &creds,
            key_id: &new_key,
        };
        let set = hand_over.run(&SPOT_WAIT, ctx.on_wait(&sub), async {}).await;
        match set {
            Ok(()) => {
                report.accounts[i].updated = true;
                record(session, tenant, &sub, &app, acct, &new_key, new_end).await;
                ctx.emit(
                    Some(&sub),
                    Step::ConnectSpot,
                    StepEvent::Finished {
                        outcome: Outcome::Updated,
                        id: Some(acct.clone()),
                        detail: format!("{acct} holds the new secret (read back)"),
                    },
                );
            }
            Err(e) => {
                if is_fatal(&e) && !report.accounts.iter().any(|a| a.updated) {
                    return Err(give_up(&ctx, &app, &new_key, &sub, e).await);
                }
                report.accounts[i].error = Some(ErrorInfo::from(&e));
                ctx.emit(
                    Some(&sub),
                    Step::ConnectSpot,
                    StepEvent::Failed {
                        error: ErrorInfo::from(&e),
                    },
                );
                first_error.get_or_insert(e);
                if is_fatal(first_error.as_ref().expect("set above")) {
                    break;
                }
            }
        }
    }
    if let Some(e) = first_error {
        if !report.accounts.iter().any(|a| a.updated) {
            let sub = report.accounts[0].subscription_id.clone();
            return Err(give_up(&ctx, &app, &new_key, &sub, e).await);
        }
        ctx.log(format!(
            "some accounts did not take the new secret: the old secret stays valid for them; run rotate-secret again ({e})"
        ));
        report.error = Some(ErrorInfo::from(&e));
        return Ok(report);
    }

    // 5. Every account has the new secret: the others of ours are removed where that is
    // proven (the accounts that held them have moved to the new one, or they were never
    // handed over: `orphans::audit`); one that may be held by an account this token cannot
    // see is kept and named.
    let fresh = read(|| ctx.graph.get_application(&app.id))
        .await?
        .unwrap_or(app.clone());
    let audit = super::orphans::audit(session, tenant, &fresh, &[], &accounts).await;
    for k in &audit.orphans {
        if k.eq_ignore_ascii_case(&new_key) {
            continue;
        }
        match ctx.remove_key(&fresh, k).await {
            Ok(()) => {
                ctx.log(format!("removed the old client secret {k}"));
                report.removed_key_ids.push(k.clone());
            }
            Err(e) => report.left_key_ids.push((k.clone(), e.to_string())),
        }
    }
    for u in &audit.unchecked {
        ctx.log(format!(
            "kept the old client secret {}: it could not be checked ({})",
            u.key_id, u.reason
        ));
        report.left_key_ids.push((
            u.key_id.clone(),
            format!("could not be checked: {}", u.reason),
        ));
    }
    super::orphans::forget(session, tenant, &report.removed_key_ids);
    // Intents accounted for: the new secret is held, the others removed or named.
    for mut s in lookup::tenant_states(session, tenant) {
        if !s.secret_intents.is_empty() && audit.incomplete.is_none() {
            s.secret_intents.clear();
            let dir = session.state_dir.clone();
            let _ = tokio::task::spawn_blocking(move || s.save(&dir)).await;
        }
    }
    report.complete = report.left_key_ids.is_empty();
    Ok(report)
}

/// Nothing took the new secret: remove it again and keep the old one.
async fn give_up(ctx: &Ctx<'_>, app: &Application, new_key: &str, sub: &str, e: Error) -> Error {
    ctx.emit(
        Some(sub),
        Step::ConnectSpot,
        StepEvent::Failed {
            error: ErrorInfo::from(&e),
        },
    );
    let undo = ctx.remove_key(app, new_key).await;
    let what = match undo {
        Ok(()) => "the new secret was removed again; the old secret is unchanged and still in use"
            .to_string(),
        Err(u) => format!(
            "the old secret is unchanged and still in use; the new secret {new_key} could not be removed ({u}): the next rotation removes it"
        ),
    };
    tracing::warn!(tenant = ctx.tenant, error = %e, "rotation abandoned");
    match e {
        Error::Api(mut a) => {
            a.message = format!("{} ({what})", a.message);
            Error::Api(a)
        }
        other => Error::Other(format!("{other} ({what})")),
    }
}

/// The subscription's state: the secret Spot now holds (keyId and end date, never the value).
async fn record(
    session: &Session,
    tenant: &str,
    sub: &str,
    app: &Application,
    acct: &str,
    key: &str,
    end: OffsetDateTime,
) {
    let Ok(mut s) = State::load(&session.state_dir, tenant, sub) else {
        return;
    };
    s.app_object_id.get_or_insert_with(|| app.id.clone());
    s.app_id.get_or_insert_with(|| app.app_id.clone());
    s.app_name.get_or_insert_with(|| app.display_name.clone());
    s.spot_account_id = Some(acct.to_string());
    // The account has moved from the secret it held: recorded, so that an audit can prove it
    // unheld (`orphans::audit`).
    if let Some(old) = s
        .secret
        .as_ref()
        .filter(|o| !o.key_id.eq_ignore_ascii_case(key))
        && !s.orphan_key_ids.contains(&old.key_id)
    {
        s.orphan_key_ids.push(old.key_id.clone());
    }
    s.orphan_key_ids.retain(|k| !k.eq_ignore_ascii_case(key));
    s.secret = Some(SecretRecord {
        key_id: key.to_string(),
        end_date_time: end,
        handed_to_spot: true,
    });
    // The atomic write and its fsync on the blocking pool, not on a tokio worker.
    let dir = session.state_dir.clone();
    let saved = tokio::task::spawn_blocking(move || s.save(&dir)).await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!("could not record the new secret in the state file");
    }
}
