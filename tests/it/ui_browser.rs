//! The wizard's browser sign-in, blocked device code and sign-in-again: state changes through
//! `update` (keys as data, effects returned), and insta snapshots of the new panes at 80x24 and
//! 120x40.

use crate::common::ui as ui_support;

use spot_connect::app::state::{Field, Now, Pane, State};
use spot_connect::app::update::{Action, Effect, update};
use spot_connect::cli::AuthMethod;
use spot_connect::error::{ApiError, Service};
use spot_connect::onboard::model::{BrowserPrompt, ErrorInfo, Progress};
use time::macros::datetime;
use ui_support::*;

fn snap(name: &str, s: &State, now: Now) {
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(s, w, h, now));
    }
}

fn browser(tenant: &str) -> BrowserPrompt {
    BrowserPrompt {
        url: format!(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize?client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A8400&response_mode=query&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+offline_access+openid+profile&state=Qm9yZWRBdFRoZVN0YXRl&code_challenge=KnzveAyQMhNA_iUwGLkrbZAyXEfR1Ef_lfJqfPWkmvU&code_challenge_method=S256&prompt=select_account"
        ),
        redirect_uri: "http://localhost:8400".into(),
        port: 8400,
        ssh_command: "ssh -L 8400:localhost:8400 ops@10.1.2.3".into(),
        tenant: tenant.into(),
        expires_at: datetime!(2026-11-28 23:45:00 UTC),
    }
}

fn blocked_error() -> ErrorInfo {
    let mut api = ApiError::transport(
        Service::Login,
        "Conditional Access blocks the device-code sign-in (AADSTS53003: the policy does not allow the device-code flow); sign in with a browser instead: --auth browser (AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.)",
    );
    api.status = 400;
    api.code = "invalid_grant".into();
    api.detail_codes = vec!["AADSTS53003".into()];
    api.request_id = Some("5e1c0de0-0000-4000-8000-00000000c0de".into());
    ErrorInfo {
        summary: format!("{api}"),
        api: Some(api),
        hint: None,
    }
}

/// At the Azure login pane, the device-code sign-in refused by Conditional Access.
fn blocked_state() -> State {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    feed(&mut s, 2.0, vec![Action::SignedIn(Err(blocked_error()))]);
    s
}

#[test]
fn a_blocked_device_code_offers_b_which_starts_a_browser_sign_in() {
    let mut s = blocked_state();
    assert!(s.device_code_blocked());
    snap("azure_login_device_code_blocked", &s, now(2.5));
    let fx = feed(&mut s, 3.0, vec![ch('b')]);
    assert!(
        matches!(fx.as_slice(), [Effect::UseBrowserSignIn]),
        "{fx:?}"
    );
    assert_eq!(s.auth_method, AuthMethod::Browser);
    assert!(s.sign_in.is_loading());
    assert!(s.last_error.is_none());
    // b means nothing once the sign-in is no longer a blocked device code.
    assert!(feed(&mut s, 3.1, vec![ch('b')]).is_empty());
}

#[test]
fn b_does_nothing_for_other_sign_in_failures() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    feed(&mut s, 2.0, vec![Action::SignedIn(Err(connect_error()))]);
    assert!(!s.device_code_blocked());
    assert!(feed(&mut s, 3.0, vec![ch('b')]).is_empty());
}

/// The browser sign-in waiting at the Azure login pane.
fn browser_state() -> State {
    let mut s = blocked_state();
    feed(&mut s, 3.0, vec![ch('b')]);
    feed(
        &mut s,
        3.2,
        vec![Action::Progress(Progress::Browser(browser(
            "organizations",
        )))],
    );
    s
}

#[test]
fn the_browser_prompt_focuses_the_paste_field_and_enter_hands_the_address_over() {
    let mut s = browser_state();
    assert_eq!(s.field, Some(Field::Paste));
    snap("azure_login_browser", &s, now(4.0));
    // q is text here, not quit.
    let mut keys: Vec<Action> = "http://localhost:8400/?code=c0de&state=Qm9y"
        .chars()
        .map(ch)
        .collect();
    keys.push(enter());
    let fx = feed(&mut s, 5.0, keys);
    match fx.as_slice() {
        [Effect::PasteRedirect(a)] => {
            assert_eq!(a.expose(), "http://localhost:8400/?code=c0de&state=Qm9y")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.field, Some(Field::Paste), "still there for another try");
    assert!(s.paste.lines().join("").is_empty());
    // The masked field never shows the code.
    let screen = render(&s, 120, 40, now(5.0));
    assert!(!screen.contains("c0de"));
    // Enter on an empty field: a note, nothing sent.
    assert!(feed(&mut s, 5.5, vec![enter()]).is_empty());
    assert!(
        s.sign_in_note
            .as_deref()
            .unwrap()
            .contains("nothing was pasted")
    );
}

#[test]
fn a_refused_address_is_shown_and_the_sign_in_keeps_waiting() {
    let mut s = browser_state();
    feed(
        &mut s,
        6.0,
        vec![Action::Progress(Progress::RedirectRefused {
            message: "that address is from another sign-in (its state differs): open this sign-in's address again".into(),
        })],
    );
    assert!(s.sign_in.is_loading());
    snap("azure_login_browser_refused", &s, now(6.5));
    // Signed in: the prompt goes.
    feed(&mut s, 7.0, vec![Action::SignedIn(Ok(identity()))]);
    assert!(s.browser.is_none() && s.sign_in_note.is_none());
    assert_eq!(s.field, None);
}

#[test]
fn a_tenant_that_wants_interaction_gets_its_sign_in_over_the_pane() {
    let mut s = at_subscription();
    feed(
        &mut s,
        4.0,
        vec![
            Action::Progress(Progress::SignInAgain {
                tenant: TENANT2.into(),
                reason: "multi-factor authentication is required there (AADSTS50076)".into(),
            }),
            Action::Progress(Progress::DeviceCode(device_code())),
        ],
    );
    assert!(s.reauth_open());
    snap("sign_in_again_device_code", &s, now(4.5));
    feed(
        &mut s,
        5.0,
        vec![Action::Progress(Progress::SignInFinished {
            tenant: TENANT2.into(),
            ok: true,
        })],
    );
    assert!(!s.reauth_open() && s.device_code.is_none());
    assert!(s.log.iter().any(|l| l.text.contains("signed in to tenant")));
}

#[test]
fn a_tenant_that_wants_interaction_with_the_browser_sign_in() {
    let mut s = at_subscription();
    s.auth_method = AuthMethod::Browser;
    feed(
        &mut s,
        4.0,
        vec![
            Action::Progress(Progress::SignInAgain {
                tenant: TENANT2.into(),
                reason: "multi-factor authentication is required there (AADSTS50076)".into(),
            }),
            Action::Progress(Progress::Browser(browser(TENANT2))),
        ],
    );
    assert!(s.reauth_open());
    assert_eq!(
        s.field,
        Some(Field::Paste),
        "the box's paste field has the keys"
    );
    snap("sign_in_again_browser", &s, now(4.5));
    let fx = update(
        &mut s,
        Action::Progress(Progress::SignInFinished {
            tenant: TENANT2.into(),
            ok: false,
        }),
        at(6.0),
    );
    assert!(fx.is_empty());
    assert!(!s.reauth_open() && s.field.is_none());
}

#[test]
fn with_auth_browser_the_prompt_waits_for_the_azure_login_pane_then_takes_the_keys() {
    let mut i = init();
    i.auth_method = AuthMethod::Browser;
    let mut s = State::new(i);
    spot_connect::app::update::start(&mut s, at(0.0));
    feed(
        &mut s,
        0.3,
        vec![
            Action::Progress(Progress::Browser(browser("organizations"))),
            Action::SpotAccounts(Ok(accounts())),
        ],
    );
    assert_eq!(s.field, None, "the start screen keeps its keys");
    assert!(render(&s, 120, 40, now(0.4)).contains("choose Connect to see the address to open"));
    feed(&mut s, 0.7, vec![enter()]);
    assert_eq!(s.pane, Pane::SpotAccount);
    assert_eq!(s.field, None);
    assert!(render(&s, 120, 40, now(0.8)).contains("the address to open is on the next pane"));
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    assert_eq!(s.field, Some(Field::Paste));
    // Esc leaves the field; Tab takes it back.
    feed(
        &mut s,
        1.1,
        vec![key(ratatui::crossterm::event::KeyCode::Esc)],
    );
    assert_eq!(s.field, None);
    feed(
        &mut s,
        1.2,
        vec![key(ratatui::crossterm::event::KeyCode::Tab)],
    );
    assert_eq!(s.field, Some(Field::Paste));
}

fn ctrl(c: char) -> Action {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn copied(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Copy { text } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The footer: the last line of the screen.
fn footer(screen: &str) -> String {
    screen.lines().last().unwrap_or_default().to_string()
}

#[test]
fn the_device_code_is_one_word_and_c_and_u_copy_the_code_and_the_address() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    let screen = render(&s, 80, 24, now(1.5));
    assert!(screen.contains("GKQ7-XR2M"), "one word:\n{screen}");
    assert!(!screen.contains("G K Q 7"), "{screen}");
    let f = footer(&screen);
    assert!(f.contains("c copy code") && f.contains("u copy URL"), "{f}");
    let fx = feed(&mut s, 2.0, vec![ch('c')]);
    assert_eq!(copied(&fx), vec!["GKQ7-XR2M".to_string()], "{fx:?}");
    assert_eq!(fx.len(), 1);
    assert!(render(&s, 80, 24, now(2.1)).contains("the device code copied to the clipboard"));
    let fx = feed(&mut s, 2.5, vec![ch('u')]);
    assert_eq!(
        copied(&fx),
        vec!["https://microsoft.com/devicelogin".to_string()]
    );
    // The address is short here: nothing to print on one line.
    assert!(feed(&mut s, 3.0, vec![ch('o')]).is_empty());
    assert!(!s.url_printed);
    // Signed in: the code is gone, and so are the keys and the note.
    feed(&mut s, 4.0, vec![Action::SignedIn(Ok(identity()))]);
    assert!(feed(&mut s, 4.1, vec![ch('c'), ch('u')]).is_empty());
    assert!(!render(&s, 80, 24, now(4.2)).contains("copied to the clipboard"));
}

#[test]
fn copy_keys_copy_only_what_is_on_screen_never_the_token() {
    // The Spot account pane: a device code is issued but shown on the next pane only, and the
    // token field is there.
    let mut s = started_state();
    assert_eq!(s.pane, Pane::SpotAccount);
    assert!(s.device_code.is_some());
    let fx = feed(&mut s, 1.0, vec![ch('c'), ch('u'), ch('o'), ctrl('u')]);
    assert!(copied(&fx).is_empty(), "{fx:?}");
    assert!(!fx.iter().any(|e| matches!(e, Effect::PrintUrl { .. })));
    assert!(s.copied.is_none() && !s.url_printed);
    let screen = render(&s, 80, 24, now(1.1));
    assert!(!footer(&screen).contains("copy"), "{screen}");
}

#[test]
fn the_browser_address_is_copied_with_ctrl_u_in_the_paste_field_and_u_outside_it() {
    let mut s = browser_state();
    let url = browser("organizations").url;
    assert_eq!(s.field, Some(Field::Paste));
    let f = footer(&render(&s, 80, 24, now(4.0)));
    assert!(
        f.contains("Ctrl-U copy URL") && f.contains("Ctrl-O raw URL"),
        "{f}"
    );
    let fx = feed(&mut s, 4.5, vec![ctrl('u')]);
    assert_eq!(
        copied(&fx),
        vec![url.clone()],
        "exactly the address: {fx:?}"
    );
    assert!(
        s.paste.lines().join("").is_empty(),
        "the key is not typed into the field"
    );
    assert!(render(&s, 80, 24, now(4.6)).contains("the sign-in address copied"));
    // Outside the field, plain u (typed in the field, u is text).
    feed(
        &mut s,
        5.0,
        vec![key(ratatui::crossterm::event::KeyCode::Esc)],
    );
    assert_eq!(s.field, None);
    assert_eq!(copied(&feed(&mut s, 5.1, vec![ch('u')])), vec![url.clone()]);
    feed(
        &mut s,
        5.2,
        vec![key(ratatui::crossterm::event::KeyCode::Tab)],
    );
    assert_eq!(s.field, Some(Field::Paste));
    assert!(copied(&feed(&mut s, 5.3, vec![ch('u')])).is_empty());
    assert_eq!(s.paste.lines().join(""), "u");
}

#[test]
fn o_prints_the_address_raw_and_any_key_comes_back_with_the_state_unchanged() {
    let mut s = browser_state();
    let url = browser("organizations").url;
    let before = render(&s, 80, 24, now(4.0));
    let fx = feed(&mut s, 4.0, vec![ctrl('o')]);
    match fx.as_slice() {
        [Effect::PrintUrl { url: u }] => assert_eq!(u, &url),
        other => panic!("{other:?}"),
    }
    assert!(s.url_printed);
    // Any key comes back, and does nothing else (not typed into the paste field).
    let fx = feed(&mut s, 9.0, vec![ch('x')]);
    assert!(matches!(fx.as_slice(), [Effect::ResumeScreen]), "{fx:?}");
    assert!(!s.url_printed);
    assert_eq!(s.field, Some(Field::Paste));
    assert!(s.paste.lines().join("").is_empty());
    assert_eq!(render(&s, 80, 24, now(4.0)), before);
    // Outside the field, plain o does the same; q while printed only comes back.
    feed(
        &mut s,
        10.0,
        vec![key(ratatui::crossterm::event::KeyCode::Esc)],
    );
    assert!(matches!(
        feed(&mut s, 10.1, vec![ch('o')]).as_slice(),
        [Effect::PrintUrl { .. }]
    ));
    assert!(matches!(
        feed(&mut s, 10.2, vec![ch('q')]).as_slice(),
        [Effect::ResumeScreen]
    ));
    assert!(s.exit.is_none());
}

/// On the Subscription pane, Fabrikam asks to be signed in to again (device code).
fn reauth_device_code_state() -> State {
    let mut s = at_subscription();
    feed(
        &mut s,
        4.0,
        vec![
            Action::Progress(Progress::SignInAgain {
                tenant: TENANT2.into(),
                reason: "multi-factor authentication is required there (AADSTS50076)".into(),
            }),
            Action::Progress(Progress::DeviceCode(device_code())),
        ],
    );
    assert!(s.reauth_open());
    s
}

#[test]
fn the_sign_in_again_box_takes_the_keys_and_h_hides_it_not_the_pane() {
    use ratatui::crossterm::event::KeyCode;
    let mut s = reauth_device_code_state();
    let (sel, selected) = (s.sub_sel, s.selected.clone());
    // The pane's keys do not reach behind the box: no move, no select, no filter, no log.
    feed(
        &mut s,
        4.1,
        vec![ch('j'), key(KeyCode::Down), ch(' '), ch('/'), ch('l')],
    );
    assert_eq!(
        (s.pane, s.sub_sel, &s.selected, s.field, s.show_log),
        (Pane::Subscription, sel, &selected, None, false)
    );
    let screen = render(&s, 80, 24, now(4.2));
    assert_eq!(
        footer(&screen).trim(),
        "Esc cancel  h hide  c copy code  u copy URL  q quit"
    );
    // `h` hides the box: the pane stays, the sign-in still waits and says so.
    let fx = feed(&mut s, 4.3, vec![ch('h')]);
    assert!(fx.is_empty(), "hiding cancels nothing: {fx:?}");
    assert_eq!(s.pane, Pane::Subscription, "h went to the pane behind");
    assert!(!s.reauth_open() && s.reauth_waiting());
    let screen = render(&s, 80, 24, now(4.4));
    assert!(!screen.contains("Sign in again"), "{screen}");
    assert!(screen.contains("Fabrikam waits: s sign in"), "{screen}");
    // The pane has its keys back; `s` shows the box again.
    feed(&mut s, 4.5, vec![key(KeyCode::Down)]);
    assert_ne!(s.sub_sel, sel);
    feed(&mut s, 4.6, vec![ch('s')]);
    assert!(s.reauth_open());
    // The sign-in ends: no box, no reminder.
    feed(
        &mut s,
        5.0,
        vec![Action::Progress(Progress::SignInFinished {
            tenant: TENANT2.into(),
            ok: true,
        })],
    );
    assert!(!s.reauth_waiting());
    assert!(!render(&s, 80, 24, now(5.1)).contains("waits: s sign in"));
}

#[test]
fn esc_cancels_the_tenants_sign_in_and_says_so_on_the_pane_behind() {
    use ratatui::crossterm::event::KeyCode;
    let mut s = reauth_device_code_state();
    let fx = feed(&mut s, 4.3, vec![key(KeyCode::Esc)]);
    assert!(
        matches!(fx.as_slice(), [Effect::CancelSignIn]),
        "the loop is told to stop the sign-in: {fx:?}"
    );
    // Back on the pane the box was over, with its keys; nothing waits, no code shown.
    assert_eq!(s.pane, Pane::Subscription);
    assert!(!s.reauth_open() && !s.reauth_waiting());
    assert!(s.device_code.is_none() && s.sign_in_again.is_none());
    let last = &s.log.back().unwrap().text;
    assert!(
        last.contains("sign-in to Fabrikam") && last.contains("cancelled (Esc)"),
        "{last}"
    );
    let screen = render(&s, 80, 24, now(4.4));
    assert!(!screen.contains("Sign in again"), "{screen}");
    assert!(!screen.contains("waits: s sign in"), "{screen}");
    assert!(screen.contains("Fabrikam sign-in cancelled"), "{screen}");
    // The credential's own end of the flow changes nothing more; `s` shows nothing.
    feed(
        &mut s,
        4.5,
        vec![Action::Progress(Progress::SignInFinished {
            tenant: TENANT2.into(),
            ok: false,
        })],
    );
    let fx = feed(&mut s, 4.6, vec![ch('s')]);
    assert!(fx.is_empty() && !s.reauth_open());
    // Said once: the next key moves on and the note goes.
    assert!(!render(&s, 80, 24, now(4.7)).contains("sign-in cancelled"));
    // A second Esc is the pane's own (back), not another cancel.
    let fx = feed(&mut s, 4.8, vec![key(KeyCode::Esc)]);
    assert!(!fx.iter().any(|e| matches!(e, Effect::CancelSignIn)));
}

#[test]
fn esc_in_the_box_s_paste_field_cancels_and_tab_h_hides_it() {
    use ratatui::crossterm::event::KeyCode;
    let mut s = at_subscription();
    s.auth_method = AuthMethod::Browser;
    let open = |s: &mut State, t: f64| {
        feed(
            s,
            t,
            vec![
                Action::Progress(Progress::SignInAgain {
                    tenant: TENANT2.into(),
                    reason: "multi-factor authentication is required there (AADSTS50076)".into(),
                }),
                Action::Progress(Progress::Browser(browser(TENANT2))),
            ],
        );
    };
    open(&mut s, 4.0);
    assert_eq!(s.field, Some(Field::Paste));
    // Letters are the address's, never commands (q quits nowhere, h hides nothing here).
    let fx = feed(&mut s, 4.1, vec![ch('q'), ch('s'), ch('h')]);
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(s.paste.lines().join(""), "qsh");
    // Tab leaves the field, `h` hides the box; `s` gives the field back.
    feed(&mut s, 4.2, vec![key(KeyCode::Tab), ch('h')]);
    assert_eq!(s.pane, Pane::Subscription);
    assert_eq!(s.field, None, "the pane behind gets the keys");
    assert!(!s.reauth_open() && s.reauth_waiting());
    feed(&mut s, 4.3, vec![ch('s')]);
    assert!(s.reauth_open());
    assert_eq!(s.field, Some(Field::Paste));
    // Esc, even in the field: the browser sign-in is cancelled too.
    let fx = feed(&mut s, 4.4, vec![key(KeyCode::Esc)]);
    assert!(matches!(fx.as_slice(), [Effect::CancelSignIn]), "{fx:?}");
    assert_eq!((s.pane, s.field), (Pane::Subscription, None));
    assert!(!s.reauth_waiting() && s.browser.is_none());
}

#[test]
fn a_tenant_asking_while_its_subscriptions_are_listed_is_named_by_name_and_domain() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    feed(&mut s, 2.0, vec![Action::SignedIn(Ok(identity()))]);
    assert!(s.discovery.ready().is_none(), "the discovery still runs");
    let mut tenants = discovery().tenants;
    tenants[1].default_domain = Some("fabrikam.example".into());
    feed(
        &mut s,
        2.5,
        vec![
            Action::TenantsListed(tenants),
            Action::Progress(Progress::SignInAgain {
                tenant: TENANT2.into(),
                reason: "multi-factor authentication is required there (AADSTS50076)".into(),
            }),
            Action::Progress(Progress::DeviceCode(device_code())),
        ],
    );
    let screen = render(&s, 120, 40, now(3.0));
    assert!(
        screen.contains("Tenant Fabrikam (fabrikam.example) asks you to sign in again"),
        "{screen}"
    );
    assert!(screen.contains(&format!("tenant id {TENANT2}")), "{screen}");
}

/// The wizard's Esc (`Effect::CancelSignIn` -> `Auth::cancel_sign_in`) against the simulator:
/// Fabrikam asks to be signed in to again, its device code is polled, Esc: the token call ends
/// with "the sign-in was cancelled" and the simulator's request log gets no poll after it.
#[tokio::test]
async fn a_cancelled_sign_in_again_polls_the_simulator_no_more() {
    use spot_connect::azure::auth::{Audience, Auth, PromptFn, SignInPrompt};
    use spot_connect::sim::seed::FABRIKAM_TENANT_ID;
    use std::sync::Arc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    // The first sign-in is approved after 2.5 s; Fabrikam's code would be too, 2.5 s after it
    // is issued: the cancel comes after its first poll (1 s interval), before that.
    let sim = spot_connect::sim::start(
        &spot_connect::cli::SimOpts {
            approve_after: 2500,
            device_interval: 1,
            require_interaction: vec![FABRIKAM_TENANT_ID.into()],
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    let http = spot_connect::http::Http::new(Some(&sim.ca_pem())).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let prompt: PromptFn = Arc::new(move |p| drop(tx.send(p)));
    let auth = Auth::with_redirect_port(
        AuthMethod::DeviceCode,
        &sim.endpoints(),
        &http,
        None,
        None,
        prompt,
    )
    .unwrap();
    fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(30), f)
    }
    bounded(auth.sign_in()).await.unwrap().unwrap();
    let polls = || {
        let token = format!("/{FABRIKAM_TENANT_ID}/oauth2/v2.0/token");
        sim.requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str() == Some(token.as_str()))
            .count()
    };
    let fabrikam = {
        let a = auth.clone();
        tokio::spawn(async move { a.token(Some(FABRIKAM_TENANT_ID), Audience::Arm).await })
    };
    // Its sign-in again starts (the box opens) and its device code is polled.
    loop {
        match bounded(rx.recv()).await.unwrap().unwrap() {
            SignInPrompt::Again { tenant, .. } => assert_eq!(tenant, FABRIKAM_TENANT_ID),
            SignInPrompt::DeviceCode(_) => break,
            _ => {}
        }
    }
    let t = std::time::Instant::now();
    // The refused refresh is one request to the token endpoint; the first poll makes two.
    while polls() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "no poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    auth.cancel_sign_in();
    let r = bounded(fabrikam).await.unwrap().unwrap();
    let e = r.expect_err("cancelled");
    assert!(e.to_string().contains("the sign-in was cancelled"), "{e}");
    let at_cancel = polls();
    // Three poll intervals later: not one more poll (and the code was never redeemed).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(polls(), at_cancel, "polled after the cancel");
    println!("token requests at Fabrikam: {at_cancel} up to the cancel, 0 in the 3.5 s after");
    // Not asked again in this run: a later call for the tenant fails at once, no new code.
    let codes = format!("/{FABRIKAM_TENANT_ID}/oauth2/v2.0/devicecode");
    let count = |p: &str| {
        sim.requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str() == Some(p))
            .count()
    };
    let issued = count(&codes);
    let e = bounded(auth.token(Some(FABRIKAM_TENANT_ID), Audience::Graph))
        .await
        .unwrap()
        .expect_err("still cancelled");
    assert!(e.to_string().contains("the sign-in was cancelled"), "{e}");
    assert_eq!(count(&codes), issued, "no new device code");
    // Other tenants are not affected.
    bounded(auth.token(
        Some(spot_connect::sim::seed::CONTOSO_TENANT_ID),
        Audience::Graph,
    ))
    .await
    .unwrap()
    .unwrap();
}
