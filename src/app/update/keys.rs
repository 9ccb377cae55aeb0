//! Keys: the keymap's command for the pane on screen, text typed into the focused field,
//! moving in lists, retry, and Enter (each pane's move on).

use super::super::keymap::{self, Cmd};
use super::*;
use crate::onboard::model::{PlanAction, Step, Verdict};
use ratatui::crossterm::event::KeyCode;

pub(super) fn on_key(s: &mut State, key: KeyEvent, at: Duration) -> Vec<Effect> {
    if key.kind != ratatui::crossterm::event::KeyEventKind::Press {
        return vec![];
    }
    // The address is printed outside the full screen: any key comes back, changing nothing
    // else.
    if s.url_printed {
        s.url_printed = false;
        return vec![Effect::ResumeScreen];
    }
    // "Sign-in cancelled" was said; the next key is the operator moving on.
    s.sign_in_cancelled = None;
    let active = s.contexts();
    let pane = s.pane;
    let fx = match keymap::lookup(&key, &active) {
        Some(b) => on_cmd(s, b.cmd, at),
        None => {
            if s.search.is_some() {
                search::type_key(s, key);
            } else if let Some(f) = s.field {
                type_into(s, f, key);
            }
            vec![]
        }
    };
    // Arriving where the browser sign-in waits: the paste field takes the keys.
    if s.pane != pane && s.browser_shown() && s.field.is_none() {
        s.field = Some(Field::Paste);
    }
    fx
}

pub(super) fn type_into(s: &mut State, f: Field, key: KeyEvent) {
    // Single-line fields: no newlines, no multi-line shortcuts.
    if matches!(key.code, KeyCode::Enter | KeyCode::Tab) {
        return;
    }
    let area = match f {
        Field::Token => &mut s.token,
        Field::Filter => &mut s.filter,
        Field::AppName => &mut s.app_name,
        Field::RoleName => &mut s.role_name,
        Field::Paste => &mut s.paste,
    };
    area.input(key);
    if f == Field::Filter {
        s.sub_sel = select::first_selectable(s).unwrap_or(0);
    }
}

/// Leaves the focused field; a changed field starts what depends on it.
pub(super) fn leave_field(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(f) = s.field.take() else {
        return vec![];
    };
    match f {
        Field::Token => {
            let t = s.token_text();
            if !t.is_empty() && t != s.token_loaded {
                return signin::load_accounts(s, at);
            }
            vec![]
        }
        Field::AppName if s.several_tenants() => {
            if review::keep_tenant_name(s) {
                return review::start_plan(s, at);
            }
            vec![]
        }
        Field::AppName | Field::RoleName => {
            if s.target.is_some() {
                let c = choices(s);
                let planned = match s.plan.ready() {
                    Some(p) => {
                        let name = |step, obj: &str| {
                            p.items
                                .iter()
                                .find(|i| i.step == step && i.object == obj)
                                .map(|i| i.name.clone())
                        };
                        // Several tenants: the app names are per tenant (`keep_tenant_name`).
                        (s.several_tenants()
                            || c.app_name == name(Step::AppRegistration, "app registration"))
                            && c.role_name == name(Step::CustomRole, "custom role")
                    }
                    None => false,
                };
                if !planned {
                    return review::start_plan(s, at);
                }
            }
            vec![]
        }
        Field::Filter | Field::Paste => vec![],
    }
}

pub(super) fn list_len(s: &State) -> usize {
    match s.pane {
        Pane::Start => MENU.len(),
        Pane::Status => s.health.ready().map(Vec::len).unwrap_or(0),
        Pane::Rotate => s.tenants_with_subscriptions().len(),
        Pane::Remove => s.selectable_subscriptions().len(),
        Pane::SpotAccount => s.account_rows(),
        Pane::Subscription if s.group_view => s.group_rows().len(),
        Pane::Subscription => s.visible_subscriptions().len(),
        Pane::ClientSecret => SECRET_MONTHS.len(),
        // The review's lines: one per object, plus headers.
        Pane::Confirm => s.plan.ready().map_or(0, |p| {
            // The blocked items come first too, their reasons wrapped (a row per ~20
            // characters is more than enough at 80 columns).
            let blocked: usize = p.blocked().map(|i| i.reason.len() / 20 + 3).sum();
            p.items.len() * 2 + p.counts.len() + 8 + blocked
        }),
        _ => 0,
    }
}

/// The rows a page key moves: the list rows an 80x24-style layout shows at this height
/// (header, footer, borders and a field take 12).
pub(super) fn page_rows(s: &State) -> usize {
    (s.size.1 as usize).saturating_sub(12).max(1)
}

pub(super) fn move_sel(s: &mut State, down: bool) {
    let n = list_len(s);
    if n == 0 {
        return;
    }
    let step = |i: usize| {
        if down {
            (i + 1).min(n - 1)
        } else {
            i.saturating_sub(1)
        }
    };
    match s.pane {
        Pane::SpotAccount => s.account_sel = step(s.account_sel),
        Pane::Start => s.menu_sel = step(s.menu_sel),
        Pane::Status => s.health_sel = step(s.health_sel),
        Pane::Rotate => s.tenant_sel = step(s.tenant_sel),
        Pane::Remove => s.remove_sel = step(s.remove_sel),
        Pane::ClientSecret => s.months_sel = step(s.months_sel),
        Pane::Confirm => s.review_scroll = step(s.review_scroll),
        Pane::Subscription if s.group_view => {
            // Only a group's row can be chosen (its subscriptions are listed under it).
            let rows = s.group_rows();
            let mut i = s.group_sel.min(n - 1);
            loop {
                let j = step(i);
                if j == i {
                    break;
                }
                i = j;
                if rows[i].group.is_some() {
                    s.group_sel = i;
                    break;
                }
            }
        }
        Pane::Subscription => {
            // Skip rows that cannot be chosen (Disabled, Deleted, PastDue).
            let subs = s.visible_subscriptions();
            let mut i = s.sub_sel.min(n - 1);
            loop {
                let j = step(i);
                if j == i {
                    break;
                }
                i = j;
                if subs[i].selectable() {
                    s.sub_sel = i;
                    break;
                }
            }
        }
        _ => {}
    }
}

pub(super) fn on_cmd(s: &mut State, cmd: Cmd, at: Duration) -> Vec<Effect> {
    match cmd {
        Cmd::Quit => {
            if s.confirm_quit {
                return quit(s, Ending::Interrupted);
            }
            if s.busy() {
                s.confirm_quit = true;
                s.show_help = false;
                vec![]
            } else {
                let ending = ending(s);
                quit(s, ending)
            }
        }
        Cmd::Yes => quit(s, Ending::Interrupted),
        Cmd::No => {
            s.confirm_quit = false;
            vec![]
        }
        Cmd::Help => {
            s.show_help = true;
            vec![]
        }
        Cmd::CloseHelp => {
            s.show_help = false;
            vec![]
        }
        Cmd::CancelSignIn => signin::cancel_sign_in_again(s),
        Cmd::CloseSignIn => {
            s.sign_in_again_hidden = true;
            if s.field == Some(Field::Paste) {
                s.field = None;
            }
            if let Some((tenant, _)) = &s.sign_in_again {
                let t = s.tenant_label(tenant);
                log(s, format!("sign-in box for {t} hidden: s shows it again"));
            }
            vec![]
        }
        Cmd::ShowSignIn => {
            s.sign_in_again_hidden = false;
            // The box's paste field takes the keys, as when it first opened.
            if s.browser_shown() {
                s.field = Some(Field::Paste);
            }
            vec![]
        }
        Cmd::ToggleLog => {
            s.show_log = !s.show_log;
            s.log_scroll = 0;
            vec![]
        }
        Cmd::Search => search::open(s),
        Cmd::Groups => select::toggle_groups(s),
        Cmd::SearchNext | Cmd::SearchPrev | Cmd::SearchDone | Cmd::SearchCancel => {
            search::on_cmd(s, cmd)
        }
        Cmd::LogPageUp | Cmd::LogPageDown | Cmd::LogTop | Cmd::LogBottom => {
            search::scroll_log(s, cmd)
        }
        Cmd::Up | Cmd::Down if s.pane == Pane::AppRegistration => {
            review::move_name_tenant(s, cmd == Cmd::Down, at)
        }
        Cmd::PageUp | Cmd::PageDown | Cmd::Top | Cmd::Bottom => {
            let down = matches!(cmd, Cmd::PageDown | Cmd::Bottom);
            let rows = match cmd {
                Cmd::PageUp | Cmd::PageDown => page_rows(s),
                _ => list_len(s).max(s.run_tenants().len()),
            };
            let mut fx = vec![];
            for _ in 0..rows {
                if s.pane == Pane::AppRegistration {
                    fx.extend(review::move_name_tenant(s, down, at));
                } else {
                    move_sel(s, down);
                }
            }
            fx
        }
        Cmd::SelectAll | Cmd::SelectNone | Cmd::SelectInvert => select::select_shown(s, cmd),
        Cmd::Up => {
            move_sel(s, false);
            vec![]
        }
        Cmd::Down => {
            move_sel(s, true);
            vec![]
        }
        Cmd::Filter => {
            s.field = Some(Field::Filter);
            vec![]
        }
        Cmd::NextField => {
            if s.field.is_some() {
                leave_field(s, at)
            } else {
                s.field = match s.pane {
                    _ if s.browser_shown() => Some(Field::Paste),
                    Pane::SpotAccount => Some(Field::Token),
                    Pane::AppRegistration => Some(Field::AppName),
                    Pane::CustomRole => Some(Field::RoleName),
                    _ => None,
                };
                vec![]
            }
        }
        Cmd::Back => {
            if s.field == Some(Field::Filter) {
                // Esc in the filter clears it.
                set_text(&mut s.filter, "");
                s.field = None;
                s.sub_sel = select::first_selectable(s).unwrap_or(0);
                return vec![];
            }
            if s.field.is_some() {
                return leave_field(s, at);
            }
            match s.pane {
                // From a confirmation back to the choice; from a result to the start screen.
                Pane::Rotate if matches!(s.rotate, OpPhase::Confirm) => {
                    s.rotate = OpPhase::Choose;
                    return vec![];
                }
                Pane::Remove if matches!(s.remove, OpPhase::Confirm) => {
                    s.remove = OpPhase::Choose;
                    return vec![];
                }
                Pane::Rotate | Pane::Remove => {
                    s.rotate = OpPhase::Choose;
                    s.remove = OpPhase::Choose;
                    s.op_lines.clear();
                    if matches!(s.last_error, Some((Origin::Rotate | Origin::Remove, _))) {
                        s.last_error = None;
                    }
                }
                _ => {}
            }
            if let Some(p) = s.pane.prev() {
                s.pane = p;
                signin::refresh_pre_steps(s, at);
            }
            vec![]
        }
        Cmd::Retry => retry(s, at),
        Cmd::Replan => {
            if !(s.pane == Pane::Confirm && s.plan_blocked()) {
                return vec![];
            }
            log(s, "planning again".into());
            s.review_scroll = 0;
            review::start_plan(s, at)
        }
        Cmd::Toggle => select::toggle(s),
        Cmd::Refresh => life::read_status(s, at),
        Cmd::TakeOver => {
            if !s.contexts().contains(&keymap::Ctx::CanTakeOver) {
                return vec![];
            }
            // The plan is made again: its review says what a take-over replaces, and that it
            // cannot be undone, before Enter writes anything.
            s.take_over = !s.take_over;
            let what = if s.take_over {
                "take over: the plan replaces the credentials of connections that are not ours"
            } else {
                "keep: connections that are not ours are left as they are"
            };
            log(s, what.into());
            review::start_plan(s, at)
        }
        Cmd::Confirm => life::confirm_op(s, at),
        Cmd::BrowserSignIn => {
            if !s.device_code_blocked() {
                return vec![];
            }
            log(
                s,
                "device code blocked by Conditional Access: signing in with a browser".into(),
            );
            s.auth_method = crate::azure::auth::AuthMethod::Browser;
            s.last_error = None;
            s.device_code = None;
            s.pane = Pane::AzureLogin;
            s.sign_in = Load::Loading { since: at };
            signin::refresh_pre_steps(s, at);
            vec![Effect::UseBrowserSignIn]
        }
        Cmd::CopyCode => match s.sign_in_code().map(str::to_string) {
            Some(text) => signin::copy(s, "the device code", text),
            None => vec![],
        },
        Cmd::CopyUrl => match s.sign_in_url().map(str::to_string) {
            Some(text) => signin::copy(s, "the sign-in address", text),
            None => vec![],
        },
        Cmd::ShowUrl => {
            let Some(url) = s.browser_shown().then(|| s.sign_in_url()).flatten() else {
                return vec![];
            };
            let url = url.to_string();
            s.url_printed = true;
            vec![Effect::PrintUrl { url }]
        }
        Cmd::Continue if s.field == Some(Field::Paste) => signin::submit_paste(s),
        Cmd::Continue => {
            if s.field.is_some() {
                // Enter in a field leaves it, keeping what was typed; in the filter, choosing
                // a subscription stays a separate act (Space, then Enter).
                return leave_field(s, at);
            }
            advance(s, at)
        }
    }
}

pub(super) fn retry(s: &mut State, at: Duration) -> Vec<Effect> {
    let Some(origin) = s.retryable() else {
        return vec![];
    };
    s.last_error = None;
    match origin {
        Origin::SpotAccounts => signin::load_accounts(s, at),
        Origin::SignIn => {
            s.sign_in = Load::Loading { since: at };
            s.device_code = None;
            signin::refresh_pre_steps(s, at);
            vec![Effect::SignIn]
        }
        Origin::Discovery => {
            // Discovery runs right after sign-in: sign in again (tokens are cached).
            s.discovery = Load::Idle;
            s.sign_in = Load::Loading { since: at };
            signin::refresh_pre_steps(s, at);
            vec![Effect::SignIn]
        }
        Origin::Plan => review::start_plan(s, at),
        Origin::Apply => {
            // What was written since the plan was made: plan again (the failed subscriptions
            // only, after a run of several) and review it before anything more is written.
            if let Run::Finished(b) = &s.run {
                let failed: Vec<String> = b
                    .reports
                    .iter()
                    .filter(|r| r.verdict != Verdict::Connected)
                    .map(|r| r.subscription_id.clone())
                    .collect();
                s.targets.retain(|t| failed.contains(&t.subscription_id));
                s.target = s.targets.first().cloned();
            }
            // The names of the run (shared ones after a run of several), then a fresh start.
            let fx = review::start_plan(s, at);
            s.run = Run::NotStarted;
            s.last_error = None;
            s.pane = Pane::Confirm;
            fx
        }
        Origin::Status => life::read_status(s, at),
        Origin::Rotate | Origin::Remove => vec![],
    }
}

/// Enter on a pane: take its choice and move on, when it can be taken.
pub(super) fn advance(s: &mut State, at: Duration) -> Vec<Effect> {
    let mut fx = vec![];
    match s.pane {
        Pane::Start | Pane::Status | Pane::Rotate | Pane::Remove => return life::advance(s, at),
        Pane::SpotAccount => {
            if s.token_text().trim().is_empty() {
                // Nothing can be done in Spot without a token: ask for it.
                s.field = Some(Field::Token);
                return vec![];
            }
            if let SpotAccountChoice::Existing(id) = account_choice(s) {
                s.spot_account_id = Some(id);
            } else {
                s.spot_account_id = None;
            }
            s.pane = Pane::AzureLogin;
        }
        Pane::AzureLogin => {
            if s.sign_in.ready().is_some() {
                s.pane = Pane::Subscription;
            }
        }
        Pane::Subscription => fx = select::advance(s, at),
        Pane::AppRegistration => s.pane = Pane::ClientSecret,
        Pane::ClientSecret => s.pane = Pane::CustomRole,
        Pane::CustomRole => s.pane = Pane::Confirm,
        Pane::Confirm => {
            if let Some(p) = s.plan.ready()
                && !p.items.iter().any(|i| i.action == PlanAction::Blocked)
                && !one_account_for_several(s)
            {
                fx = run::start_apply(s, at);
            }
            return fx;
        }
        Pane::Apply => {
            if let Run::Finished(_) = s.run {
                s.pane = Pane::Done;
            }
        }
        Pane::Done => {
            let ending = ending(s);
            return quit(s, ending);
        }
    }
    signin::refresh_pre_steps(s, at);
    fx
}
