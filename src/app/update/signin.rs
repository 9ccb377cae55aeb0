//! The Spot account pane (token, account list) and the Azure sign-in: device code, browser
//! sign-in, the sign-in-again prompt, the copy keys; the sidebar rows of the steps the wizard
//! does itself.

use super::*;
use crate::onboard::model::Step;

pub(super) fn on_spot_accounts(
    s: &mut State,
    r: Result<Vec<SpotAccount>, ErrorInfo>,
    at: Duration,
) -> Vec<Effect> {
    match r {
        Ok(list) => {
            log(s, format!("{} Spot account(s) found", list.len()));
            s.accounts = Load::Ready(list);
            s.account_sel = s.account_sel.min(s.account_rows() - 1);
            clear_error(s, Origin::SpotAccounts);
        }
        Err(e) => {
            s.accounts = Load::Failed(failed(
                s,
                "listing Spot accounts",
                Some(Origin::SpotAccounts),
                e,
            ));
        }
    }
    refresh_pre_steps(s, at);
    vec![]
}

pub(super) fn on_signed_in(
    s: &mut State,
    r: Result<Identity, ErrorInfo>,
    at: Duration,
) -> Vec<Effect> {
    let fx = vec![];
    match r {
        Ok(id) => {
            log(s, format!("signed in as {}", id.display));
            s.sign_in = Load::Ready(id);
            s.device_code = None;
            end_interactive(s);
            s.discovery = Load::Loading { since: at };
            clear_error(s, Origin::SignIn);
        }
        Err(e) => {
            end_interactive(s);
            s.sign_in = Load::Failed(failed(s, "sign-in", Some(Origin::SignIn), e));
        }
    }
    refresh_pre_steps(s, at);
    fx
}

pub(super) fn on_discovered(
    s: &mut State,
    r: Result<Discovery, ErrorInfo>,
    at: Duration,
) -> Vec<Effect> {
    match r {
        Ok(d) => {
            log(
                s,
                format!(
                    "{} subscription(s) in {} tenant(s)",
                    d.subscriptions.len(),
                    d.tenants.len()
                ),
            );
            for (t, why) in &d.skipped {
                log(s, format!("tenant {t} skipped: {why}"));
            }
            s.discovery = Load::Ready(d);
            s.sub_sel = select::first_selectable(s).unwrap_or(0);
            clear_error(s, Origin::Discovery);
        }
        Err(e) => {
            s.discovery = Load::Failed(failed(
                s,
                "listing subscriptions",
                Some(Origin::Discovery),
                e,
            ));
        }
    }
    refresh_pre_steps(s, at);
    // The Status screen was opened before the subscriptions were known.
    if s.pane == Pane::Status && matches!(s.health, Load::Idle) {
        return life::read_status(s, at);
    }
    vec![]
}

/// Sidebar rows for the steps the wizard does itself (before the engine runs).
pub(super) fn refresh_pre_steps(s: &mut State, at: Duration) {
    if !matches!(s.run, Run::NotStarted) {
        return;
    }
    let spot = match (&s.accounts, s.pane) {
        (Load::Loading { since }, _) => Status::Running {
            since: *since,
            detail: "listing Spot accounts".into(),
        },
        (Load::Failed(e), _) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
        (_, p) if p == Pane::SpotAccount || p.full_width() => Status::Pending,
        // Chosen; the run says later whether it was created or reused.
        _ => Status::Chosen {
            id: s.spot_account_id.clone(),
            detail: account_choice_label(s),
        },
    };
    s.steps.insert(Step::SpotAccount, spot);
    let login = match &s.sign_in {
        Load::Idle => Status::Pending,
        Load::Loading { since } => match &s.device_code {
            Some(_) => Status::Waiting {
                since: *since,
                reason: "waiting for you to sign in".into(),
                attempt: 1,
                next_in: Duration::ZERO,
                at,
            },
            None => Status::Running {
                since: *since,
                detail: "signing in".into(),
            },
        },
        Load::Ready(id) => Status::Chosen {
            id: None,
            detail: format!("signed in as {}", id.display),
        },
        Load::Failed(e) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
    };
    s.steps.insert(Step::AzureLogin, login);
    let sub = match (&s.target, &s.discovery) {
        (Some(_), _) if s.targets.len() > 1 => Status::Chosen {
            id: None,
            detail: format!("{} subscriptions", s.targets.len()),
        },
        (Some(t), _) => Status::Chosen {
            id: Some(t.subscription_id.clone()),
            detail: t.subscription_name.clone(),
        },
        (None, Load::Loading { since }) => Status::Running {
            since: *since,
            detail: "listing subscriptions".into(),
        },
        (None, Load::Failed(e)) => Status::Failed {
            error: e.clone(),
            elapsed: None,
        },
        _ => Status::Pending,
    };
    s.steps.insert(Step::Subscription, sub);
}

pub(super) fn account_choice_label(s: &State) -> String {
    match account_choice(s) {
        SpotAccountChoice::Auto => "automatic".into(),
        SpotAccountChoice::New => "new account".into(),
        SpotAccountChoice::Existing(id) => id,
    }
}

/// The sign-in's own progress (prompts, refusals, the end of an interactive sign-in).
pub(super) fn on_sign_in_progress(s: &mut State, p: Progress, at: Duration) {
    match p {
        Progress::DeviceCode(prompt) => {
            log(
                s,
                format!("device code issued, expires {}", prompt.expires_at),
            );
            s.device_code = Some(prompt);
            s.copied = None;
            if matches!(s.sign_in, Load::Idle) {
                s.sign_in = Load::Loading { since: at };
            }
            refresh_pre_steps(s, at);
        }
        Progress::Browser(prompt) => {
            log(
                s,
                format!(
                    "browser sign-in started (tenant {}, redirect {})",
                    prompt.tenant, prompt.redirect_uri
                ),
            );
            s.browser = Some(prompt);
            s.device_code = None;
            s.sign_in_note = None;
            s.copied = None;
            set_text(&mut s.paste, "");
            if matches!(s.sign_in, Load::Idle) {
                s.sign_in = Load::Loading { since: at };
            }
            if s.browser_shown() && s.field.is_none() {
                s.field = Some(Field::Paste);
            }
            refresh_pre_steps(s, at);
        }
        Progress::SignInAgain { tenant, reason } => {
            log(
                s,
                format!("tenant {tenant} asks to sign in again: {reason}"),
            );
            s.sign_in_again = Some((tenant, reason));
            s.sign_in_again_hidden = false;
            s.sign_in_cancelled = None;
        }
        Progress::RedirectRefused { message } => {
            log(s, format!("address refused: {message}"));
            s.sign_in_note = Some(message);
        }
        Progress::SignInFinished { tenant, ok } => {
            if s.sign_in_again.is_some() {
                log(
                    s,
                    if ok {
                        format!("signed in to tenant {tenant} again")
                    } else {
                        format!("signing in to tenant {tenant} again failed")
                    },
                );
                s.device_code = None;
            }
            end_interactive(s);
        }
        Progress::Log { .. } | Progress::Step { .. } => {}
    }
}

/// A copy key: `text` (the sign-in address or the device code) to the clipboard.
pub(super) fn copy(s: &mut State, what: &str, text: String) -> Vec<Effect> {
    log(s, format!("{what} copied to the clipboard (OSC 52)"));
    s.copied = Some(what.to_string());
    vec![Effect::Copy { text }]
}

/// Esc in the sign-in-again box: the tenant's sign-in is cancelled (nothing polls for it any
/// more), the box closes on the pane behind it, and the log and the pane say so. What needs
/// the tenant fails with "the sign-in was cancelled"; the tenant is not asked again in this
/// run (a next run signs in there).
pub(super) fn cancel_sign_in_again(s: &mut State) -> Vec<Effect> {
    let Some((tenant, _)) = s.sign_in_again.clone() else {
        return vec![];
    };
    let t = s.tenant_label(&tenant);
    log(
        s,
        format!(
            "sign-in to {t} cancelled (Esc): no longer polled; what needs it fails and says so"
        ),
    );
    s.sign_in_cancelled = Some(t);
    s.device_code = None;
    end_interactive(s);
    vec![Effect::CancelSignIn]
}

/// The interactive sign-in ended: its browser prompt, note and paste field go.
pub(super) fn end_interactive(s: &mut State) {
    s.copied = None;
    s.browser = None;
    s.sign_in_note = None;
    s.sign_in_again = None;
    s.sign_in_again_hidden = false;
    set_text(&mut s.paste, "");
    if s.field == Some(Field::Paste) {
        s.field = None;
    }
}

/// Enter in the paste field: the address goes to the browser sign-in (which checks it).
pub(super) fn submit_paste(s: &mut State) -> Vec<Effect> {
    let text = s.paste.lines().join("").trim().to_string();
    set_text(&mut s.paste, "");
    if text.is_empty() {
        s.sign_in_note = Some(
            "nothing was pasted: paste the whole address from the browser's address bar".into(),
        );
        return vec![];
    }
    s.sign_in_note = None;
    vec![Effect::PasteRedirect(Secret::new(text))]
}

pub fn load_accounts(s: &mut State, at: Duration) -> Vec<Effect> {
    let t = s.token_text();
    if t.is_empty() {
        return vec![];
    }
    s.token_loaded = t.clone();
    s.accounts = Load::Loading { since: at };
    refresh_pre_steps(s, at);
    vec![Effect::LoadSpotAccounts {
        token: Secret::new(t),
    }]
}

/// The effects the wizard starts with: the lookups that need nothing from the operator.
pub fn start(s: &mut State, at: Duration) -> Vec<Effect> {
    let mut fx = load_accounts(s, at);
    s.sign_in = Load::Loading { since: at };
    fx.push(Effect::SignIn);
    refresh_pre_steps(s, at);
    fx
}
