//! `update`: the one place the wizard's state changes. It does no I/O: what must be started
//! (sign-in, lookups, plan, apply) is returned as `Effect`s for the event loop to run.
//!
//! One file per part of the walk: `signin` (Spot token and accounts, Azure sign-in, the
//! sign-in-again prompt), `select` (the subscription picker), `review` (names, plan, review),
//! `run` (apply and its progress), `life` (start screen, status, rotate, remove); `keys` turns
//! a key into a command for the pane on screen.

mod keys;
mod life;
mod review;
mod run;
mod search;
mod select;
mod signin;

use super::state::*;
/// Pure helpers of the state the UI reads too (defined in `app::state`).
pub use super::state::{account_choice, one_account_for_several, secs};
use crate::azure::auth::Identity;
use crate::azure::discovery::Discovery;
use crate::onboard::PlanView;
use crate::onboard::SpotAccountChoice;
use crate::onboard::Target;
use crate::onboard::model::ErrorInfo;
use crate::onboard::model::{Progress, RunReport};
use crate::onboard::remove::{RemovalPlan, RemovalResult};
use crate::onboard::rotate::RotateReport;
use crate::onboard::status::SubscriptionStatus;
use crate::secret::Secret;
use crate::spot::SpotAccount;
use ratatui::crossterm::event::{KeyEvent, KeyModifiers};
pub use review::{choices, shared_choices};
pub use signin::{load_accounts, start};
use std::time::Duration;

/// A signal that ends the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Int,
    Term,
    Hup,
}

/// Everything that can happen to the wizard: terminal input, timer ticks, signals and the
/// results of background work. All arrive over one channel.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    Resize(u16, u16),
    /// A spinner / countdown tick: changes nothing but the frame.
    Tick,
    Signal(SignalKind),
    SpotAccounts(Result<Vec<SpotAccount>, ErrorInfo>),
    SignedIn(Result<Identity, ErrorInfo>),
    Discovered(Result<Discovery, ErrorInfo>),
    /// The tenants the sign-in sees, listed before their subscriptions (to name them).
    TenantsListed(Vec<crate::azure::discovery::Tenant>),
    /// The management groups the sign-in can read, resolved (the picker's group tree).
    GroupsListed(Result<Vec<crate::onboard::fleet::MgResolved>, ErrorInfo>),
    /// The discovered subscriptions this state directory's records show connected.
    KnownConnected(std::collections::BTreeSet<String>),
    /// The plan of that generation, as shown (the runtime keeps the plan itself, with its
    /// facts, for `Effect::Apply`).
    Planned {
        generation: u64,
        result: Result<PlanView, ErrorInfo>,
    },
    Progress(Progress),
    /// The run of the confirmed plan (one subscription or many).
    Applied(Result<Box<RunReport>, ErrorInfo>),
    StatusRead(Result<Vec<SubscriptionStatus>, ErrorInfo>),
    Rotated(Result<Box<RotateReport>, ErrorInfo>),
    RemovalPlanned(Result<Vec<RemovalPlan>, ErrorInfo>),
    Removed(Vec<RemovalResult>),
}

/// The operator's choices, as the engine takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub app_name: Option<String>,
    /// Several tenants: the app registration's name typed for a tenant (tenant id -> name).
    pub app_names: std::collections::BTreeMap<String, String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub spot_account: SpotAccountChoice,
    /// Take over connections that are not ours (the review's `t`, `--take-over`).
    pub take_over: bool,
    /// A whole management group chosen in the picker (`--management-group`).
    pub management_group: Option<crate::onboard::fleet::MgScope>,
}

/// Work the loop must start.
#[derive(Debug, Clone)]
pub enum Effect {
    /// List Spot accounts with this token.
    LoadSpotAccounts { token: Secret },
    /// Sign in to Azure, then discover tenants and subscriptions.
    SignIn,
    /// From now on sign in with a browser (device code was blocked): a new sign-in session,
    /// then the sign-in (as `SignIn`).
    UseBrowserSignIn,
    /// The address the operator pasted, for the browser sign-in waiting for it.
    PasteRedirect(Secret),
    /// Cancel the interactive sign-in in progress (the operator's Esc): it polls no more.
    CancelSignIn,
    /// Plan the selected subscriptions (one or many: the engine groups them by tenant).
    Plan {
        generation: u64,
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Carry out the plan the operator confirmed, exactly: the one the engine made for this
    /// plan generation (the runtime kept it when it sent `Action::Planned`).
    Apply { generation: u64 },
    /// Read the status of these subscriptions.
    ReadStatus {
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Rotate the client secret of the tenant's app.
    Rotate { tenant: String, choices: Choices },
    /// Look up what removing these subscriptions would delete.
    PlanRemoval {
        targets: Vec<Target>,
        choices: Choices,
    },
    /// Carry out removal plans.
    Remove { plans: Vec<RemovalPlan> },
    /// Put this text on the terminal's clipboard (OSC 52). Only ever the sign-in address or
    /// the device code: never a token or a secret.
    Copy { text: String },
    /// Leave the full screen and print the sign-in address raw on one line (so a mouse copy
    /// takes it whole); the next key comes back (`Effect::ResumeScreen`).
    PrintUrl { url: String },
    /// Back to the full screen after `PrintUrl`, redrawn whole.
    ResumeScreen,
    /// Stop everything and leave, ending so.
    Quit(Ending),
}

/// Applies `action` received at `at` (time since the wizard started).
pub fn update(s: &mut State, action: Action, at: Duration) -> Vec<Effect> {
    let was_busy = s.busy();
    s.clock = s.clock.max(at);
    let effects = update_inner(s, action, at);
    // "Quit while this runs?" is moot once nothing runs: the prompt closes with the run.
    if was_busy && !s.busy() && s.confirm_quit {
        s.confirm_quit = false;
    }
    effects
}

fn update_inner(s: &mut State, action: Action, at: Duration) -> Vec<Effect> {
    match action {
        Action::Key(key) => keys::on_key(s, key, at),
        Action::Resize(w, h) => {
            s.size = (w, h);
            vec![]
        }
        Action::Tick => vec![],
        Action::Signal(kind) => {
            log(s, format!("received {kind:?} signal: stopping"));
            quit(s, Ending::Interrupted)
        }
        Action::SpotAccounts(r) => signin::on_spot_accounts(s, r, at),
        Action::SignedIn(r) => signin::on_signed_in(s, r, at),
        Action::Discovered(r) => signin::on_discovered(s, r, at),
        Action::TenantsListed(ts) => {
            s.tenants_listed = ts;
            vec![]
        }
        Action::GroupsListed(r) => {
            match r {
                Ok(g) => {
                    log(s, format!("{} management group(s) readable", g.len()));
                    s.groups = Load::Ready(g);
                }
                // The subscriptions stay choosable: the group choice is not offered.
                Err(e) => s.groups = Load::Failed(failed(s, "listing management groups", None, e)),
            }
            vec![]
        }
        Action::KnownConnected(ids) => {
            s.connected = ids;
            vec![]
        }
        Action::StatusRead(r) => life::on_status_read(s, r),
        Action::Rotated(r) => life::on_rotated(s, r),
        Action::RemovalPlanned(r) => life::on_removal_planned(s, r),
        Action::Removed(results) => life::on_removed(s, results),
        Action::Planned { generation, result } => review::on_planned(s, generation, result),
        Action::Progress(p) => {
            match p {
                Progress::Step {
                    subscription,
                    step,
                    event,
                } => run::on_step(s, subscription, step, event, at),
                Progress::Log { message } => log(s, message),
                p => signin::on_sign_in_progress(s, p, at),
            }
            vec![]
        }
        Action::Applied(r) => {
            match r {
                Ok(report) => run::on_applied(s, *report),
                Err(e) => {
                    s.run = Run::Failed(failed(s, "onboarding", Some(Origin::Apply), e));
                }
            }
            vec![]
        }
    }
}

/// A line of the log pane, without control characters (`crate::text`).
fn log(s: &mut State, line: String) {
    if s.log.len() >= LOG_LINES {
        s.log.pop_front();
    }
    s.log.push_back(LogLine {
        at: s.clock,
        text: crate::text::clean_lines(&line),
    });
    // Scrolled back: the lines shown stay put as new ones arrive.
    if s.log_scroll > 0 {
        s.log_scroll = (s.log_scroll + 1).min(s.log.len().saturating_sub(1));
    }
}

/// Logs "{what} failed: …" and, with an origin, records the error for the status line and
/// retry; returns it.
fn failed(s: &mut State, what: &str, origin: Option<Origin>, e: ErrorInfo) -> ErrorInfo {
    log(s, format!("{what} failed: {}", e.summary));
    if let Some(o) = origin {
        s.last_error = Some((o, e.clone()));
    }
    e
}

fn clear_error(s: &mut State, origin: Origin) {
    if matches!(s.last_error, Some((o, _)) if o == origin) {
        s.last_error = None;
    }
}

fn quit(s: &mut State, ending: Ending) -> Vec<Effect> {
    s.exit = Some(ending);
    vec![Effect::Quit(ending)]
}

/// How the wizard ends if the operator leaves now.
fn ending(s: &State) -> Ending {
    match &s.run {
        Run::Finished(b) if b.failed() == 0 && b.stopped.is_none() => Ending::Done,
        Run::Finished(b) if b.failed() < b.reports.len() => Ending::Partial,
        Run::Finished(_) | Run::Failed(_) => Ending::Failed,
        // Nothing onboarded: leaving the start screen or a life screen is not an interruption.
        Run::NotStarted if s.pane.full_width() => Ending::Done,
        _ => Ending::Interrupted,
    }
}

fn set_text(t: &mut ratatui_textarea::TextArea<'static>, text: &str) {
    t.select_all();
    t.cut();
    t.insert_str(text);
}
