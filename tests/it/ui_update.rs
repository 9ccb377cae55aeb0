//! The wizard's state machine, driven by Actions as the event loop drives it.

use crate::common::ui as ui_support;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use spot_connect::app::state::{Pane, Run, State, Status};
use spot_connect::app::update::{Action, Effect, SignalKind, start, update};
use spot_connect::onboard::SpotAccountChoice;
use spot_connect::onboard::model::{Step, StepEvent};
use ui_support::*;

/// The exit code the wizard ends with when an effect says to quit.
fn quit_code(fx: &[Effect]) -> Option<i32> {
    fx.iter().find_map(|e| match e {
        Effect::Quit(ending) => Some(ending.code()),
        _ => None,
    })
}

#[test]
fn enter_at_every_prompt_completes_the_wizard() {
    let mut s = State::new(init());
    let fx = start(&mut s, at(0.0));
    assert!(
        matches!(fx[0], Effect::LoadSpotAccounts { .. }),
        "accounts are listed at once"
    );
    assert!(
        matches!(fx[1], Effect::SignIn),
        "sign-in starts while the operator is on the first pane"
    );
    feed(
        &mut s,
        0.2,
        vec![Action::Progress(
            spot_connect::onboard::model::Progress::DeviceCode(device_code()),
        )],
    );
    // The start screen first: Enter is "Connect subscriptions".
    assert_eq!(s.pane, Pane::Start);
    feed(&mut s, 0.3, vec![enter()]);
    assert_eq!(s.pane, Pane::SpotAccount);

    // Spot account: automatic by default, even before the list arrives.
    feed(&mut s, 0.5, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    // Not signed in yet: Enter waits.
    feed(&mut s, 0.6, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    feed(
        &mut s,
        1.5,
        vec![
            Action::SignedIn(Ok(identity())),
            Action::SpotAccounts(Ok(accounts())),
        ],
    );
    assert!(matches!(s.status(Step::AzureLogin), Status::Chosen { .. }));
    assert!(
        matches!(s.status(Step::SpotAccount), Status::Chosen { .. }),
        "the account choice is done once the operator moved on"
    );
    assert!(
        matches!(s.status(Step::Subscription), Status::Running { .. }),
        "discovery runs after sign-in"
    );
    feed(
        &mut s,
        2.0,
        vec![Action::Discovered(Ok(discovery())), enter()],
    );
    assert_eq!(s.pane, Pane::Subscription);

    // The first subscription is Disabled: the first selectable one is preselected.
    let fx = feed(&mut s, 3.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AppRegistration);
    let gen_ = match &fx[..] {
        [
            Effect::Plan {
                generation,
                targets,
                choices,
            },
        ] => {
            assert_eq!(targets.len(), 1);
            assert_eq!(targets[0].subscription_id, SUB);
            assert_eq!(targets[0].tenant_id, TENANT);
            assert_eq!(choices.spot_account, SpotAccountChoice::Auto);
            assert_eq!(choices.secret_months, 12);
            *generation
        }
        other => panic!("expected one Plan effect, got {other:?}"),
    };
    feed(
        &mut s,
        4.0,
        vec![Action::Planned {
            generation: gen_,
            result: Ok(plan()),
        }],
    );
    assert_eq!(
        s.app_name_text(),
        "spot-connect-72f988bf",
        "the plan's name is prefilled"
    );
    assert_eq!(s.role_name_text(), "Spot.io Custom Role");

    feed(&mut s, 5.0, vec![enter(), enter(), enter()]);
    assert_eq!(s.pane, Pane::Confirm);
    let fx = feed(&mut s, 6.0, vec![enter()]);
    assert_eq!(s.pane, Pane::Apply);
    match &fx[..] {
        [Effect::Apply { generation }] => {
            // Exactly the plan the review showed: the generation the engine made it for.
            assert_eq!(*generation, s.plan_gen);
            let p = s.plan.ready().expect("the reviewed plan");
            assert_eq!(*p, plan());
            assert_eq!(p.subscriptions[0].subscription_id, SUB);
        }
        other => panic!("expected one Apply effect, got {other:?}"),
    }
    // Enter while running changes nothing and writes nothing twice.
    assert!(feed(&mut s, 7.0, vec![enter()]).is_empty());
    feed(&mut s, 9.0, vec![Action::Applied(Ok(run_report()))]);
    assert_eq!(s.pane, Pane::Done);
    assert_eq!(s.spot_account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(quit_code(&feed(&mut s, 10.0, vec![enter()])), Some(0));
}

#[test]
fn the_filter_narrows_the_list_and_typing_does_not_trigger_keys() {
    let mut s = at_subscription();
    assert_eq!(s.visible_subscriptions().len(), 4);
    let fx = feed(
        &mut s,
        4.0,
        vec![ch('/'), ch('s'), ch('t'), ch('a'), ch('q')],
    );
    assert!(fx.is_empty(), "q in the filter is text, not quit");
    assert_eq!(s.filter_text(), "staq");
    feed(&mut s, 4.0, vec![key(KeyCode::Backspace), ch('g')]);
    let names: Vec<_> = s
        .visible_subscriptions()
        .iter()
        .map(|x| x.display_name.clone())
        .collect();
    assert_eq!(names, ["Contoso Staging"]);
    assert_eq!(s.selected_subscription().unwrap().subscription_id, SUB3);
    // Matches ids too.
    feed(&mut s, 4.0, vec![key(KeyCode::Esc)]);
    assert_eq!(s.filter_text(), "", "Esc clears the filter");
    assert_eq!(s.visible_subscriptions().len(), 4);
    feed(&mut s, 4.0, vec![ch('/'), ch('5'), ch('e'), ch('7')]);
    assert_eq!(s.selected_subscription().unwrap().subscription_id, SUB4);
    // Enter leaves the filter and keeps it: nothing is chosen yet (issue 21 §1).
    let fx = feed(&mut s, 4.5, vec![enter()]);
    assert!(fx.is_empty(), "Enter in the filter only leaves it: {fx:?}");
    assert_eq!(s.pane, Pane::Subscription);
    assert!(s.field.is_none());
    assert_eq!(s.filter_text(), "5e7", "the filter is kept");
    assert_eq!(s.visible_subscriptions().len(), 1);
    // Typing now goes to the keys, not the filter: j moves, it is not text.
    feed(&mut s, 4.5, vec![ch('j')]);
    assert_eq!(s.filter_text(), "5e7");
    // Then Enter (out of the filter) goes on with the highlighted subscription.
    let fx = feed(&mut s, 4.6, vec![enter()]);
    assert!(
        matches!(&fx[..], [Effect::Plan { targets, .. }] if targets[0].subscription_id == SUB4)
    );
}

#[test]
fn tab_leaves_the_filter_keeping_it() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('/'), ch('s'), ch('t'), ch('a')]);
    feed(&mut s, 4.0, vec![key(KeyCode::Tab)]);
    assert!(s.field.is_none(), "Tab leaves the filter");
    assert_eq!(s.filter_text(), "sta", "and keeps it");
    feed(&mut s, 4.0, vec![ch('x')]);
    assert_eq!(
        s.filter_text(),
        "sta",
        "typing after Tab is not filter text"
    );
    assert_eq!(s.pane, Pane::Subscription);
}

#[test]
fn disabled_subscriptions_cannot_be_chosen() {
    let mut s = at_subscription();
    assert_eq!(s.selected_subscription().unwrap().subscription_id, SUB);
    feed(&mut s, 4.0, vec![key(KeyCode::Up), ch('k')]);
    assert_eq!(
        s.selected_subscription().unwrap().subscription_id,
        SUB,
        "moving up skips the Disabled row"
    );
    feed(&mut s, 4.0, vec![ch('j'), key(KeyCode::Down)]);
    assert_eq!(s.selected_subscription().unwrap().subscription_id, SUB4);
    // Only the Disabled one left by the filter: Enter does nothing.
    feed(&mut s, 4.0, vec![ch('/'), ch('l'), ch('e'), ch('g')]);
    assert_eq!(s.visible_subscriptions().len(), 1);
    let fx = feed(&mut s, 4.0, vec![enter()]);
    assert!(fx.is_empty());
    assert_eq!(s.pane, Pane::Subscription);
    assert!(s.target.is_none());
}

#[test]
fn quit_asks_while_work_runs_and_not_otherwise() {
    let mut s = started_state();
    assert_eq!(
        quit_code(&feed(&mut s, 1.0, vec![ch('q')])),
        Some(130),
        "nothing written yet: quits at once"
    );

    let mut s = waiting();
    assert!(feed(&mut s, 21.0, vec![ch('q')]).is_empty());
    assert!(s.confirm_quit);
    assert!(feed(&mut s, 21.0, vec![ch('n')]).is_empty());
    assert!(!s.confirm_quit);
    let ctrl_c = Action::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(
        feed(&mut s, 21.0, vec![ctrl_c.clone()]).is_empty(),
        "Ctrl-C asks too"
    );
    assert!(s.confirm_quit);
    assert_eq!(quit_code(&feed(&mut s, 21.0, vec![ch('y')])), Some(130));
}

#[test]
fn signals_end_the_wizard_as_interrupted() {
    for sig in [SignalKind::Int, SignalKind::Term, SignalKind::Hup] {
        let mut s = waiting();
        let fx = update(&mut s, Action::Signal(sig), at(21.0));
        assert_eq!(quit_code(&fx), Some(130));
        assert_eq!(s.exit.map(|e| e.code()), Some(130));
    }
}

#[test]
fn r_retries_a_failed_run_and_resets_failed_steps() {
    let mut s = waiting();
    assert!(
        feed(&mut s, 21.0, vec![ch('r')]).is_empty(),
        "nothing to retry while running"
    );
    feed(
        &mut s,
        24.0,
        vec![step(
            Step::ConnectSpot,
            StepEvent::Failed {
                error: connect_error(),
            },
        )],
    );
    feed(&mut s, 24.0, vec![Action::Applied(Err(connect_error()))]);
    assert!(matches!(s.run, Run::Failed(_)));
    // r plans again (what the failed run wrote is then reused) and shows the new plan for review.
    let fx = feed(&mut s, 30.0, vec![ch('r')]);
    let g = match &fx[..] {
        [
            Effect::Plan {
                targets,
                generation,
                ..
            },
        ] if targets[0].subscription_id == SUB => *generation,
        other => panic!("expected a new plan, got {other:?}"),
    };
    assert_eq!(s.pane, Pane::Confirm);
    feed(
        &mut s,
        30.5,
        vec![Action::Planned {
            generation: g,
            result: Ok(plan()),
        }],
    );
    let fx = feed(&mut s, 31.0, vec![enter()]);
    assert!(
        matches!(&fx[..], [Effect::Apply { generation }] if *generation == g)
            && s.plan
                .ready()
                .is_some_and(|p| p.subscriptions[0].subscription_id == SUB)
    );
    assert!(matches!(s.run, Run::Running { .. }));
    assert_eq!(s.status(Step::ConnectSpot), &Status::Pending);
    assert!(
        matches!(s.status(Step::AppRegistration), Status::Done { .. }),
        "done steps stay done"
    );
}

#[test]
fn r_retries_a_failed_sign_in() {
    let mut s = started_state();
    feed(
        &mut s,
        1.0,
        vec![enter(), Action::SignedIn(Err(connect_error()))],
    );
    assert!(matches!(s.status(Step::AzureLogin), Status::Failed { .. }));
    let fx = feed(&mut s, 2.0, vec![ch('r')]);
    assert!(matches!(&fx[..], [Effect::SignIn]));
}

#[test]
fn a_stale_plan_is_ignored_and_a_renamed_app_is_planned_again() {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        5.5,
        vec![Action::Planned {
            generation: g,
            result: Ok(plan()),
        }],
    );
    // Rename the app: Tab into the field, clear it, type, Tab out.
    let mut actions = vec![key(KeyCode::Tab)];
    actions.extend(std::iter::repeat_n(key(KeyCode::Backspace), 40));
    actions.extend("my-spot-app".chars().map(ch));
    actions.push(key(KeyCode::Tab));
    let fx = feed(&mut s, 6.0, actions);
    match &fx[..] {
        [
            Effect::Plan {
                generation,
                choices,
                ..
            },
        ] => {
            assert_eq!(*generation, g + 1);
            assert_eq!(choices.app_name.as_deref(), Some("my-spot-app"));
        }
        other => panic!("expected a new plan, got {other:?}"),
    }
    // The old plan's answer arriving late changes nothing.
    let mut other = plan();
    other.items.clear();
    feed(
        &mut s,
        6.5,
        vec![Action::Planned {
            generation: g,
            result: Ok(other),
        }],
    );
    assert!(s.plan.is_loading());
}

#[test]
fn a_new_token_lists_accounts_again_and_is_never_drawn() {
    let mut s = started_state();
    let mut actions = vec![key(KeyCode::Tab)];
    actions.extend(std::iter::repeat_n(key(KeyCode::Backspace), 40));
    actions.extend("tok-SECRET-42".chars().map(ch));
    actions.push(enter());
    let fx = feed(&mut s, 1.0, actions);
    match &fx[..] {
        [Effect::LoadSpotAccounts { token }] => assert_eq!(token.expose(), "tok-SECRET-42"),
        other => panic!("expected a new listing, got {other:?}"),
    }
    assert!(format!("{fx:?}").contains("redacted") && !format!("{fx:?}").contains("SECRET"));
    // The state holds the token (field, and what the list was loaded with): Debug of the state
    // (a panic message, a log line) must not show it.
    assert!(
        !format!("{s:?}").contains("SECRET"),
        "Debug of the state shows the token"
    );
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&s, w, h, now(1.0));
        assert!(!screen.contains("SECRET"), "the token is masked");
        assert_eq!(
            screen.chars().filter(|c| *c == '•').count(),
            spot_connect::ui::MASK_DOTS,
            "…a fixed number of dots shows it is there, not its length"
        );
    }
}

#[test]
fn choosing_an_existing_account_shows_it_in_the_header() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![ch('j'), ch('j')]);
    let fx = feed(&mut s, 1.0, vec![enter()]);
    assert!(fx.is_empty());
    assert_eq!(s.spot_account_id.as_deref(), Some("act-0a9b8c7d"));
    assert!(render(&s, 80, 24, now(1.0)).contains("Spot account act-0a9b8c7d"));
}

#[test]
fn esc_goes_back_and_help_opens_and_closes() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![key(KeyCode::Esc)]);
    assert_eq!(s.pane, Pane::AzureLogin);
    feed(&mut s, 4.0, vec![ch('?')]);
    assert!(s.show_help);
    assert!(
        feed(&mut s, 4.0, vec![ch('q')]).is_empty(),
        "q closes help, it does not quit"
    );
    assert!(!s.show_help);
    feed(&mut s, 4.0, vec![ch('l')]);
    assert!(s.show_log);
}

#[test]
fn without_a_token_enter_asks_for_it() {
    let mut i = init();
    i.token_prefill = None;
    let mut s = State::new(i);
    let fx = start(&mut s, at(0.0));
    assert!(
        matches!(&fx[..], [Effect::SignIn]),
        "no listing without a token: {fx:?}"
    );
    feed(&mut s, 0.5, vec![enter()]);
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::SpotAccount);
    assert_eq!(s.field, Some(spot_connect::app::state::Field::Token));
    let mut typed: Vec<Action> = "tok-1".chars().map(ch).collect();
    typed.push(enter());
    let fx = feed(&mut s, 2.0, typed);
    assert!(matches!(&fx[..], [Effect::LoadSpotAccounts { .. }]));
    feed(&mut s, 3.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
}

#[test]
fn r_is_offered_only_where_the_error_shows() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![Action::SignedIn(Err(connect_error()))]);
    assert_eq!(s.pane, Pane::SpotAccount);
    assert!(
        feed(&mut s, 1.0, vec![ch('r')]).is_empty(),
        "the sign-in error is not on this pane"
    );
    feed(&mut s, 1.0, vec![enter()]);
    assert!(matches!(
        &feed(&mut s, 2.0, vec![ch('r')])[..],
        [Effect::SignIn]
    ));
}

// --- the start screen, status, rotate, remove, several subscriptions ---

use spot_connect::app::state::OpPhase;
use spot_connect::onboard::model::Progress;

#[test]
fn status_reads_every_selectable_subscription_and_r_reads_again() {
    // Opened before sign-in finished: the read starts when the subscriptions are known.
    let mut s = State::new(init());
    start(&mut s, at(0.0));
    let fx = feed(&mut s, 0.2, vec![key(KeyCode::Down), enter()]);
    assert_eq!(s.pane, Pane::Status);
    assert!(fx.is_empty(), "nothing to read before discovery: {fx:?}");
    feed(&mut s, 0.5, vec![Action::SignedIn(Ok(identity()))]);
    let fx = feed(&mut s, 0.8, vec![Action::Discovered(Ok(discovery()))]);
    let targets = match &fx[..] {
        [Effect::ReadStatus { targets, .. }] => targets.clone(),
        other => panic!("expected a status read, got {other:?}"),
    };
    let ids: Vec<&str> = targets.iter().map(|t| t.subscription_id.as_str()).collect();
    assert_eq!(
        ids,
        [SUB, SUB3, SUB4],
        "Disabled subscriptions are not read"
    );
    assert!(
        feed(&mut s, 0.9, vec![ch('r')]).is_empty(),
        "no second read while one runs"
    );
    feed(&mut s, 1.5, vec![Action::StatusRead(Ok(statuses()))]);
    assert_eq!(s.health.ready().map(Vec::len), Some(3));
    let fx = feed(&mut s, 2.0, vec![ch('r')]);
    assert!(matches!(&fx[..], [Effect::ReadStatus { targets, .. }] if targets.len() == 3));
    feed(&mut s, 2.5, vec![key(KeyCode::Esc)]);
    assert_eq!(s.pane, Pane::Start);
}

#[test]
fn space_selects_several_and_they_run_through_bulk() {
    let mut s = at_subscription();
    // The Disabled row cannot be selected (the cursor skips it; Space on it does nothing).
    feed(&mut s, 4.0, vec![ch(' '), key(KeyCode::Down), ch(' ')]);
    feed(&mut s, 4.1, vec![key(KeyCode::Down), ch(' ')]);
    assert_eq!(s.selected.len(), 3);
    assert!(!s.selected.contains(SUB_DISABLED));
    // Unselect the last again.
    feed(&mut s, 4.2, vec![ch(' ')]);
    assert_eq!(s.selected.len(), 2);
    let fx = feed(&mut s, 5.0, vec![enter()]);
    match &fx[..] {
        [
            Effect::Plan {
                targets, choices, ..
            },
        ] => {
            // One plan for both: the engine groups them by tenant.
            let ids: Vec<&str> = targets.iter().map(|t| t.subscription_id.as_str()).collect();
            assert_eq!(ids, [SUB, SUB3]);
            assert_eq!(
                choices.app_name, None,
                "the first tenant's default app name is not forced on the others"
            );
        }
        other => panic!("expected one plan of both, got {other:?}"),
    }
    assert_eq!(s.targets.len(), 2);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![Action::Planned {
            generation: g,
            result: Ok(plan()),
        }],
    );
    let fx = feed(&mut s, 6.5, vec![enter(), enter(), enter(), enter()]);
    match &fx[..] {
        [Effect::Apply { generation }] => {
            assert_eq!(*generation, g, "the reviewed plan's generation");
            assert_eq!(s.plan.ready(), Some(&plan()), "the reviewed plan");
        }
        other => panic!("expected the run of the plan, got {other:?}"),
    }
    feed(
        &mut s,
        9.0,
        vec![Action::Applied(Ok(Box::new(bulk_report())))],
    );
    assert_eq!(s.pane, Pane::Done);
    let fx = feed(&mut s, 9.5, vec![enter()]);
    assert_eq!(
        quit_code(&fx),
        Some(spot_connect::cli::exit::PARTIAL),
        "one of two failed: exit 3"
    );
}

#[test]
fn enter_without_a_selection_takes_the_highlighted_subscription() {
    let mut s = at_subscription();
    let fx = feed(&mut s, 5.0, vec![enter()]);
    assert!(matches!(&fx[..], [Effect::Plan { targets, .. }] if targets[0].subscription_id == SUB));
    assert_eq!(s.targets.len(), 1);
}

#[test]
fn rotation_asks_for_an_explicit_yes_and_shows_its_progress() {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![key(KeyCode::Down), key(KeyCode::Down), enter()],
    );
    assert_eq!(s.pane, Pane::Rotate);
    feed(&mut s, 1.1, vec![key(KeyCode::Down)]);
    // Enter reads what the rotation would change (the chosen tenant's subscriptions only);
    // nothing is written before the yes.
    let fx = feed(&mut s, 1.2, vec![enter()]);
    assert!(
        matches!(&fx[..], [Effect::ReadStatus { targets, .. }]
            if targets.len() == 1 && targets[0].tenant_id == TENANT2),
        "{fx:?}"
    );
    feed(&mut s, 1.25, vec![Action::StatusRead(Ok(vec![]))]);
    assert_eq!(s.rotate, OpPhase::Confirm);
    assert!(
        matches!(s.health, spot_connect::app::state::Load::Idle),
        "the Status pane's table is not touched"
    );
    // Enter does not rotate: only y does.
    assert!(feed(&mut s, 1.3, vec![enter()]).is_empty());
    let fx = feed(&mut s, 1.4, vec![ch('y')]);
    assert!(
        matches!(&fx[..], [Effect::Rotate { tenant, .. }] if tenant == TENANT2),
        "{fx:?}"
    );
    // q asks while it runs.
    feed(&mut s, 1.5, vec![ch('q')]);
    assert!(s.confirm_quit);
    feed(&mut s, 1.6, vec![ch('n')]);
    feed(
        &mut s,
        2.0,
        vec![Action::Progress(Progress::Step {
            subscription: None,
            step: Step::ClientSecret,
            event: StepEvent::Started {
                detail: "adding a new secret".into(),
            },
        })],
    );
    assert_eq!(s.op_lines.len(), 1);
    assert!(
        matches!(s.status(Step::ClientSecret), Status::Pending),
        "a rotation's progress is not the onboarding's sidebar"
    );
    feed(
        &mut s,
        3.0,
        vec![Action::Rotated(Ok(Box::new(rotate_report(true))))],
    );
    assert!(matches!(s.rotate, OpPhase::Finished(ref r) if r.complete));
    feed(&mut s, 3.5, vec![key(KeyCode::Esc)]);
    assert_eq!(s.pane, Pane::Start);
    assert!(s.op_lines.is_empty());
}

#[test]
fn removal_plans_first_and_runs_only_on_y() {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![
            key(KeyCode::Down),
            key(KeyCode::Down),
            key(KeyCode::Down),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Remove);
    feed(&mut s, 1.1, vec![key(KeyCode::Down)]);
    let fx = feed(&mut s, 1.2, vec![enter()]);
    assert!(
        matches!(&fx[..], [Effect::PlanRemoval { targets, .. }] if targets.len() == 1 && targets[0].subscription_id == SUB3),
        "{fx:?}"
    );
    assert!(matches!(s.remove, OpPhase::Planning { .. }));
    // The plan arrives (its rows, as update keeps them from plan_removal's items).
    s.removal_rows = removal_rows();
    s.remove = OpPhase::Confirm;
    assert!(
        feed(&mut s, 2.0, vec![enter()]).is_empty(),
        "Enter does not remove"
    );
    let fx = feed(&mut s, 2.1, vec![ch('y')]);
    assert!(matches!(&fx[..], [Effect::Remove { .. }]), "{fx:?}");
    assert!(matches!(s.remove, OpPhase::Running { .. }));
    assert!(feed(&mut s, 2.2, vec![key(KeyCode::Esc)]).is_empty());
    assert_eq!(s.pane, Pane::Remove, "no leaving while it runs");
    feed(&mut s, 3.0, vec![Action::Removed(vec![])]);
    assert!(matches!(s.remove, OpPhase::Finished(_)));
}

#[test]
fn nothing_to_remove_offers_no_yes() {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![
            key(KeyCode::Down),
            key(KeyCode::Down),
            key(KeyCode::Down),
            enter(),
            enter(),
        ],
    );
    feed(&mut s, 2.0, vec![Action::RemovalPlanned(Ok(vec![]))]);
    assert_eq!(s.remove, OpPhase::Confirm);
    assert!(feed(&mut s, 2.1, vec![ch('y')]).is_empty());
}

#[test]
fn subscriptions_from_the_command_line_skip_the_start_screen_and_are_preselected() {
    let mut i = init();
    i.subscriptions = vec![SUB3.into(), SUB4.into()];
    let mut s = State::new(i);
    start(&mut s, at(0.0));
    assert_eq!(s.pane, Pane::SpotAccount);
    feed(
        &mut s,
        0.5,
        vec![
            Action::SpotAccounts(Ok(accounts())),
            Action::SignedIn(Ok(identity())),
            Action::Discovered(Ok(discovery())),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Subscription);
    feed(&mut s, 1.0, vec![enter()]);
    let ids: Vec<&str> = s
        .targets
        .iter()
        .map(|t| t.subscription_id.as_str())
        .collect();
    assert_eq!(ids, [SUB3, SUB4]);
}

#[test]
fn a_named_spot_account_cannot_take_several_subscriptions() {
    let mut s = started_state();
    // The first existing account, then two subscriptions.
    feed(&mut s, 1.0, vec![key(KeyCode::Down), enter()]);
    feed(
        &mut s,
        2.0,
        vec![
            Action::SignedIn(Ok(identity())),
            Action::Discovered(Ok(discovery())),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Subscription);
    feed(
        &mut s,
        3.0,
        vec![ch(' '), key(KeyCode::Down), ch(' '), enter()],
    );
    let g = s.plan_gen;
    feed(
        &mut s,
        4.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan()),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Confirm);
    assert!(
        feed(&mut s, 5.0, vec![enter()]).is_empty(),
        "nothing is written"
    );
    assert!(spot_connect::app::update::one_account_for_several(&s));
}

#[test]
fn r_after_a_bulk_run_retries_only_the_failed_subscriptions() {
    let mut s = at_subscription();
    feed(
        &mut s,
        4.0,
        vec![ch(' '), key(KeyCode::Down), ch(' '), enter()],
    );
    let g = s.plan_gen;
    feed(
        &mut s,
        5.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan()),
            },
            enter(),
            enter(),
            enter(),
            enter(),
        ],
    );
    feed(
        &mut s,
        9.0,
        vec![Action::Applied(Ok(Box::new(bulk_report())))],
    );
    assert_eq!(s.pane, Pane::Done);
    let fx = feed(&mut s, 10.0, vec![ch('r')]);
    match &fx[..] {
        [
            Effect::Plan {
                targets, choices, ..
            },
        ] => {
            let ids: Vec<&str> = targets.iter().map(|t| t.subscription_id.as_str()).collect();
            assert_eq!(ids, [SUB3], "only the failed one");
            assert_eq!(choices.app_name, None);
        }
        other => panic!("expected a new plan of the failed one, got {other:?}"),
    }
    assert_eq!(
        s.pane,
        Pane::Confirm,
        "reviewed again before anything is written"
    );
}

#[test]
fn the_review_scrolls_when_the_plan_does_not_fit() {
    let mut s = at_subscription();
    feed(
        &mut s,
        4.0,
        vec![ch(' '), key(KeyCode::Down), ch(' '), enter()],
    );
    let g = s.plan_gen;
    feed(
        &mut s,
        5.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan_many()),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Confirm);
    assert_eq!(s.review_scroll, 0);
    feed(&mut s, 5.5, vec![key(KeyCode::Down), key(KeyCode::Down)]);
    assert_eq!(s.review_scroll, 2, "↓ scrolls the review");
    feed(&mut s, 5.6, vec![key(KeyCode::Up)]);
    assert_eq!(s.review_scroll, 1);
    // Enter still applies the reviewed plan.
    let fx = feed(&mut s, 6.0, vec![enter()]);
    assert!(matches!(&fx[..], [Effect::Apply { generation }] if *generation == s.plan_gen));
    assert_eq!(s.plan.ready().map(|p| p.subscriptions.len()), Some(2));
}

#[test]
fn t_in_the_review_takes_over_a_connection_that_is_not_ours_only_when_there_is_one() {
    use spot_connect::onboard::PlanView;
    use spot_connect::onboard::model::{PlanAction, PlanItem};
    // No connection that is not ours: `t` does nothing.
    let mut s = at_confirm();
    assert_eq!(s.pane, Pane::Confirm);
    assert!(feed(&mut s, 7.0, vec![ch('t')]).is_empty());
    assert!(!s.take_over);

    // One kept: `t` plans again with the take-over; `t` again keeps it.
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    let p = plan();
    let mut items = p.items.clone();
    items.push(PlanItem {
        step: Step::ConnectSpot,
        object: "Spot connection".into(),
        name: "Fabrikam Production".into(),
        action: PlanAction::Keep,
        tenant_id: items[0].tenant_id.clone(),
        subscription_id: p.subscriptions.first().map(|t| t.subscription_id.clone()),
        id: Some("act-5a1e0002".into()),
        reason:
            "connected through Spot.io-fabrikam-prod (c1000003-…), secret expires 2028-12-01: keep"
                .into(),
        drift: None,
        ownership: None,
        hint: None,
    });
    let kept = PlanView::new(p.subscriptions.clone(), items);
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(kept),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Confirm);
    let fx = feed(&mut s, 7.0, vec![ch('t')]);
    assert!(
        matches!(&fx[..], [Effect::Plan { choices, .. }] if choices.take_over),
        "{fx:?}"
    );
    assert!(s.take_over);
    let fx = feed(&mut s, 8.0, vec![ch('t')]);
    assert!(
        matches!(&fx[..], [Effect::Plan { choices, .. }] if !choices.take_over),
        "{fx:?}"
    );
}

#[test]
fn the_picker_badges_only_the_subscriptions_recorded_connected() {
    let mut s = at_subscription();
    feed(
        &mut s,
        4.0,
        vec![Action::KnownConnected([SUB3.to_string()].into())],
    );
    let screen = render(&s, 80, 24, now(4.0));
    let row = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name:?} not on screen:\n{screen}"))
            .to_string()
    };
    assert!(row("Contoso Staging").contains("✓ connected"), "{screen}");
    assert!(!row("Contoso Production").contains("connected"), "{screen}");
    assert!(!row("Fabrikam Analytics").contains("connected"), "{screen}");
}

/// The picker with 30 enabled subscriptions of one tenant ("Sub 00" … "Sub 29"), at 80x24.
fn picker_of_thirty() -> State {
    let mut s = at_subscription();
    let mut d = discovery();
    d.subscriptions = (0..30)
        .map(|i| spot_connect::azure::discovery::Subscription {
            subscription_id: format!("00000000-0000-4000-8000-0000000000{i:02}"),
            display_name: format!("Sub {i:02}"),
            tenant_id: TENANT.into(),
            state: "Enabled".into(),
        })
        .collect();
    feed(
        &mut s,
        4.0,
        vec![Action::Resize(80, 24), Action::Discovered(Ok(d))],
    );
    assert_eq!(s.sub_sel, 0);
    s
}

fn highlighted(s: &State) -> String {
    s.selected_subscription()
        .map(|x| x.display_name.clone())
        .unwrap_or_default()
}

#[test]
fn the_picker_pages_and_jumps_with_pgup_pgdn_home_end_g_and_capital_g() {
    let mut s = picker_of_thirty();
    // 80x24: a page is the 12 rows the picker shows.
    feed(&mut s, 4.1, vec![key(KeyCode::PageDown)]);
    assert_eq!(highlighted(&s), "Sub 12");
    let screen = render(&s, 80, 24, now(4.1));
    assert!(screen.contains("› [ ] Sub 12"), "{screen}");
    feed(&mut s, 4.2, vec![key(KeyCode::End)]);
    assert_eq!(highlighted(&s), "Sub 29");
    assert!(render(&s, 80, 24, now(4.2)).contains("› [ ] Sub 29"));
    feed(&mut s, 4.3, vec![key(KeyCode::PageUp)]);
    assert_eq!(highlighted(&s), "Sub 17");
    feed(&mut s, 4.4, vec![key(KeyCode::Home)]);
    assert_eq!(highlighted(&s), "Sub 00");
    feed(&mut s, 4.5, vec![ch('G')]);
    assert_eq!(highlighted(&s), "Sub 29");
    feed(&mut s, 4.6, vec![ch('g')]);
    assert_eq!(highlighted(&s), "Sub 00");
    // In the filter, letters and Home/End are the field's: g is typed, the highlight stays.
    feed(
        &mut s,
        4.7,
        vec![ch('/'), ch('2'), ch('g'), key(KeyCode::End)],
    );
    assert_eq!(s.filter_text(), "2g");
    assert_eq!(s.field, Some(spot_connect::app::state::Field::Filter));
}

#[test]
fn a_n_and_i_select_all_none_and_invert_what_the_filter_shows() {
    let mut s = picker_of_thirty();
    feed(&mut s, 4.1, vec![ch('a')]);
    assert_eq!(s.selected.len(), 30);
    feed(&mut s, 4.2, vec![ch('n')]);
    assert!(s.selected.is_empty());
    // Sub 05 selected, then the filter "Sub 0" (Sub 00 … Sub 09): i inverts those ten only.
    feed(&mut s, 4.3, vec![key(KeyCode::Down); 5]);
    feed(&mut s, 4.4, vec![ch(' ')]);
    let mut keys = vec![ch('/')];
    keys.extend("Sub 0".chars().map(ch));
    keys.push(key(KeyCode::Tab));
    keys.push(ch('i'));
    feed(&mut s, 4.5, keys);
    let names = |s: &State| -> Vec<String> {
        let d = s.discovery.ready().unwrap();
        d.subscriptions
            .iter()
            .filter(|x| s.selected.contains(&x.subscription_id))
            .map(|x| x.display_name.clone())
            .collect()
    };
    let want: Vec<String> = (0..10)
        .filter(|i| *i != 5)
        .map(|i| format!("Sub {i:02}"))
        .collect();
    assert_eq!(names(&s), want);
    // n clears the shown ones only: one outside the filter keeps its selection.
    // (Esc in the filter clears it.)
    feed(
        &mut s,
        4.6,
        vec![ch('/'), key(KeyCode::Esc), key(KeyCode::End), ch(' ')],
    );
    assert_eq!(s.filter_text(), "");
    let mut keys = vec![ch('/')];
    keys.extend("Sub 0".chars().map(ch));
    keys.extend([key(KeyCode::Tab), ch('n')]);
    feed(&mut s, 4.7, keys);
    assert_eq!(names(&s), ["Sub 29"]);
}
