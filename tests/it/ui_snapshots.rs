//! Every pane, drawn from states built by feeding Actions to `update`, at 80x24 and 120x40.

use crate::common::ui as ui_support;

use ratatui::crossterm::event::KeyCode;
use spot_connect::app::state::{Now, Pane, State};
use spot_connect::app::update::Action;
use spot_connect::onboard::model::{Outcome, Step, StepEvent};
use ui_support::*;

fn snap(name: &str, s: &State, now: Now) {
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(s, w, h, now));
    }
}

#[test]
fn spot_account_pane() {
    let s = started_state();
    assert_eq!(s.pane, Pane::SpotAccount);
    snap("spot_account", &s, now(0.8));
}

#[test]
fn spot_account_pane_while_listing() {
    let mut s = State::new(init());
    spot_connect::app::update::start(&mut s, at(0.0));
    feed(&mut s, 0.1, vec![enter()]);
    snap("spot_account_loading", &s, now(0.4));
}

#[test]
fn azure_login_pane_with_device_code() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AzureLogin);
    snap("azure_login_device_code", &s, now(1.5));
}

#[test]
fn azure_login_pane_signed_in() {
    let mut s = started_state();
    feed(&mut s, 1.0, vec![enter()]);
    feed(
        &mut s,
        2.0,
        vec![
            Action::SignedIn(Ok(identity())),
            Action::Discovered(Ok(discovery())),
        ],
    );
    snap("azure_login_signed_in", &s, now(3.0));
}

#[test]
fn subscription_pane() {
    let s = at_subscription();
    assert_eq!(s.pane, Pane::Subscription);
    snap("subscription", &s, now(4.0));
}

#[test]
fn subscription_pane_filtered() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('/'), ch('s'), ch('t'), ch('a')]);
    snap("subscription_filtered", &s, now(4.5));
}

#[test]
fn app_registration_pane_planning() {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    assert_eq!(s.pane, Pane::AppRegistration);
    snap("app_registration_planning", &s, now(5.2));
}

#[test]
fn app_registration_pane() {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![Action::Planned {
            generation: g,
            result: Ok(plan()),
        }],
    );
    snap("app_registration", &s, now(6.5));
}

#[test]
fn client_secret_pane() {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan()),
            },
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::ClientSecret);
    snap("client_secret", &s, now(6.5));
}

#[test]
fn custom_role_pane_with_drift() {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(plan()),
            },
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::CustomRole);
    snap("custom_role", &s, now(6.5));
}

#[test]
fn confirmation_screen() {
    let s = at_confirm();
    assert_eq!(s.pane, Pane::Confirm);
    snap("confirm", &s, now(7.0));
}

#[test]
fn waiting_for_propagation() {
    let s = waiting();
    assert_eq!(s.pane, Pane::Apply);
    // 3 s after the Waiting event: "next in 5 s".
    snap("role_assignment_waiting", &s, now(23.0));
}

/// The role assignment done (24.0 s) and the connection to Spot started (24.1 s).
fn connecting() -> State {
    let mut s = waiting();
    feed(
        &mut s,
        24.0,
        vec![finished(
            Step::RoleAssignment,
            Outcome::Created,
            "7a8b9c0d-1111-4222-8333-000000000013",
            "assigned at subscription scope",
        )],
    );
    feed(
        &mut s,
        24.1,
        vec![started(
            Step::ConnectSpot,
            "sending the credentials to Spot",
        )],
    );
    s
}

#[test]
fn connect_running() {
    let s = connecting();
    snap("connect_running", &s, now(25.3));
}

#[test]
fn error_with_request_id() {
    let mut s = connecting();
    feed(
        &mut s,
        31.0,
        vec![step(
            Step::ConnectSpot,
            StepEvent::Failed {
                error: connect_error(),
            },
        )],
    );
    feed(&mut s, 31.0, vec![Action::Applied(Err(connect_error()))]);
    snap("connect_error", &s, now(32.0));
}

#[test]
fn done_pane() {
    let mut s = connecting();
    feed(
        &mut s,
        28.4,
        vec![finished(
            Step::ConnectSpot,
            Outcome::Created,
            ACCOUNT,
            "connected; read back",
        )],
    );
    feed(&mut s, 28.5, vec![Action::Applied(Ok(run_report()))]);
    assert_eq!(s.pane, Pane::Done);
    snap("done", &s, now(30.0));
}

#[test]
fn help_overlay() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('?')]);
    snap("help", &s, now(4.0));
}

#[test]
fn quit_confirmation_while_running() {
    let mut s = waiting();
    feed(&mut s, 21.0, vec![ch('q')]);
    snap("quit_confirm", &s, now(21.0));
}

#[test]
fn log_pane() {
    let mut s = waiting();
    feed(&mut s, 21.0, vec![ch('l')]);
    snap("log", &s, now(21.0));
}

#[test]
fn log_pane_wraps_long_lines_with_the_stamp_on_the_first() {
    let mut s = with_log(2);
    let long = "connecting to Spot failed: Spot rejected the credentials (ValidationError: the \
                service principal a1b2c3d4-1111-4222-8333-000000000010 holds no role with Spot's \
                actions on subscription 9b1c3e7a-5d2f-4c8e-a1b0-6f4d2e8c7a13) END";
    feed(
        &mut s,
        31.0,
        vec![
            Action::Progress(Progress::Log {
                message: long.into(),
            }),
            Action::Progress(Progress::Log {
                message: "the newest line".into(),
            }),
        ],
    );
    let screen = render(&s, 80, 24, now(32.0));
    insta::assert_snapshot!("log_wrapped_80x24", screen);
    let rows: Vec<&str> = screen.lines().filter(|l| l.starts_with('│')).collect();
    let first = rows
        .iter()
        .position(|r| r.contains("connecting to Spot failed"))
        .expect("the entry is shown");
    assert!(rows[first].contains("23:30:31 connecting"), "{screen}");
    // Nothing cut: the end of the entry is on screen, on rows indented under the text and
    // with no stamp of their own.
    let end = rows
        .iter()
        .position(|r| r.contains(") END"))
        .expect("{screen}");
    assert!(end > first, "{screen}");
    for r in &rows[first + 1..=end] {
        assert!(r.starts_with("│         ") && !r.contains("23:30"), "{r}");
    }
    assert!(
        rows[end + 1].contains("23:30:31 the newest line"),
        "{screen}"
    );
    // Only whole entries: no room is left for an older one, so the long entry starts right
    // under the top border, with its stamp (no older entry's tail above it).
    let all: Vec<&str> = screen.lines().collect();
    let at = all
        .iter()
        .position(|r| r.contains("23:30:31 connecting"))
        .unwrap();
    assert!(all[at - 1].starts_with("┌ Log"), "{screen}");
    for r in &rows {
        assert!(r.chars().count() <= 80, "{r}");
    }
}

#[test]
fn too_small_terminal() {
    let s = started_state();
    insta::assert_snapshot!("too_small_79x24", render(&s, 79, 24, now(1.0)));
    insta::assert_snapshot!("too_small_100x20", render(&s, 100, 20, now(1.0)));
}

#[test]
fn no_color_means_no_colour_at_all() {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;
    let mut with = waiting();
    feed(
        &mut with,
        24.0,
        vec![step(
            Step::ConnectSpot,
            StepEvent::Failed {
                error: connect_error(),
            },
        )],
    );
    feed(&mut with, 24.0, vec![Action::Applied(Err(connect_error()))]);
    let mut without = with.clone();
    without.color = false;
    let colours = |s: &State| {
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| spot_connect::ui::draw(f, s, now(25.0)))
            .unwrap();
        term.backend()
            .buffer()
            .content()
            .iter()
            .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
            .count()
    };
    assert!(colours(&with) > 0, "colour is used when allowed");
    assert_eq!(colours(&without), 0, "NO_COLOR: no colour at all");
    // Same text either way.
    assert_eq!(
        render(&with, 80, 24, now(25.0)),
        render(&without, 80, 24, now(25.0))
    );
    let _ = KeyCode::Esc;
}

// --- the start screen and life after onboarding ---

use spot_connect::app::state::{OpPhase, Run};
use spot_connect::onboard::model::Progress;

fn op_step(step: Step, sub: Option<&str>, event: StepEvent) -> Action {
    Action::Progress(Progress::Step {
        subscription: sub.map(str::to_string),
        step,
        event,
    })
}

#[test]
fn start_screen() {
    let s = home_state();
    assert_eq!(s.pane, Pane::Start);
    snap("start", &s, now(1.0));
}

#[test]
fn status_screen() {
    let mut s = home_state();
    feed(&mut s, 1.0, vec![key(KeyCode::Down), enter()]);
    assert_eq!(s.pane, Pane::Status);
    snap("status_loading", &s, now(1.3));
    feed(
        &mut s,
        2.0,
        vec![Action::StatusRead(Ok(statuses())), key(KeyCode::Down)],
    );
    snap("status", &s, now(2.5));
}

fn at_rotate() -> State {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![key(KeyCode::Down), key(KeyCode::Down), enter()],
    );
    assert_eq!(s.pane, Pane::Rotate);
    s
}

#[test]
fn rotate_screens() {
    let mut s = at_rotate();
    snap("rotate_choose", &s, now(1.2));
    feed(&mut s, 1.5, vec![enter()]);
    // It reads first (nothing changes), then lists what the rotation changes before asking.
    assert!(matches!(s.rotate, OpPhase::Planning { .. }));
    feed(
        &mut s,
        1.55,
        vec![Action::StatusRead(Ok(rotate_statuses()))],
    );
    assert_eq!(s.rotate, OpPhase::Confirm);
    snap("rotate_confirm", &s, now(1.6));
    feed(
        &mut s,
        2.0,
        vec![
            ch('y'),
            op_step(
                Step::ClientSecret,
                None,
                StepEvent::Finished {
                    outcome: Outcome::Created,
                    id: Some("9f8e7d6c-1111-4222-8333-000000000099".into()),
                    detail: "new secret, until 2027-11-28".into(),
                },
            ),
            op_step(
                Step::ConnectSpot,
                Some(SUB),
                StepEvent::Started {
                    detail: "giving act-7d3c9a21 the new secret".into(),
                },
            ),
        ],
    );
    snap("rotate_running", &s, now(2.8));
    let mut partial = s.clone();
    feed(
        &mut s,
        3.0,
        vec![Action::Rotated(Ok(Box::new(rotate_report(true))))],
    );
    snap("rotate_done", &s, now(3.1));
    feed(
        &mut partial,
        3.0,
        vec![Action::Rotated(Ok(Box::new(rotate_report(false))))],
    );
    snap("rotate_partial", &partial, now(3.1));
}

#[test]
fn remove_screens() {
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
    snap("remove_choose", &s, now(1.2));
    feed(&mut s, 1.5, vec![enter()]);
    assert!(matches!(s.remove, OpPhase::Planning { .. }));
    // What plan_removal found (its items, as the review shows them).
    s.removal_rows = removal_rows();
    s.remove = OpPhase::Confirm;
    snap("remove_confirm", &s, now(2.0));
    feed(
        &mut s,
        2.5,
        vec![
            ch('y'),
            op_step(
                Step::RoleAssignment,
                Some(SUB),
                StepEvent::Finished {
                    outcome: Outcome::Updated,
                    id: None,
                    detail: "role assignment deleted".into(),
                },
            ),
            op_step(
                Step::CustomRole,
                None,
                StepEvent::Started {
                    detail: "removing the subscription from the role's scopes".into(),
                },
            ),
        ],
    );
    snap("remove_running", &s, now(3.0));
}

#[test]
fn subscription_pane_with_several_selected() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch(' '), key(KeyCode::Down), ch(' ')]);
    assert_eq!(s.selected.len(), 2);
    snap("subscription_multi", &s, now(4.5));
}

#[test]
fn bulk_done_pane() {
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
    snap("confirm_multi", &s, now(5.5));
    feed(&mut s, 6.0, vec![enter()]);
    feed(
        &mut s,
        7.0,
        vec![
            op_step(
                Step::RoleAssignment,
                Some(SUB),
                StepEvent::Finished {
                    outcome: Outcome::Created,
                    id: None,
                    detail: "assigned".into(),
                },
            ),
            op_step(
                Step::ConnectSpot,
                Some(SUB3),
                StepEvent::Waiting {
                    reason: "waiting for Azure to propagate".into(),
                    attempt: 1,
                    next_in: std::time::Duration::from_secs(4),
                },
            ),
        ],
    );
    assert_eq!(s.pane, Pane::Apply);
    snap("apply_multi", &s, now(8.0));
    feed(
        &mut s,
        9.0,
        vec![Action::Applied(Ok(Box::new(bulk_report())))],
    );
    assert!(matches!(s.run, Run::Finished(_)));
    assert_eq!(s.pane, Pane::Done);
    snap("done_multi", &s, now(9.5));
}

const BLOCKED_REASON: &str = "you (ops@contoso.com) cannot assign roles on Contoso Production: Owner or User Access Administrator is needed there (you have Contributor); ask an Owner to grant it, then plan again";

/// The review of a plan whose role assignment is blocked (the operator lacks the right).
fn at_blocked_review() -> State {
    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let mut p = plan();
    let ra = p
        .items
        .iter_mut()
        .find(|i| i.step == Step::RoleAssignment)
        .expect("a role assignment in the plan");
    ra.action = spot_connect::onboard::model::PlanAction::Blocked;
    ra.reason = BLOCKED_REASON.into();
    let p = spot_connect::onboard::PlanView::new(p.subscriptions.clone(), p.items);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(p),
            },
            enter(),
            enter(),
            enter(),
        ],
    );
    assert_eq!(s.pane, Pane::Confirm);
    s
}

/// The words of the pane right of the step sidebar, borders and line breaks aside (a wrapped
/// sentence reads whole).
fn words(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.chars().skip(28).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
        .replace(['│', '┌', '┐', '└', '┘', '─'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_blocked_review_says_what_to_do_at_80x24() {
    let mut s = at_blocked_review();
    snap("confirm_blocked", &s, now(7.0));
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&s, w, h, now(7.0));
        let footer = screen.lines().last().unwrap().to_string();
        assert!(
            words(&screen).contains(BLOCKED_REASON),
            "the reason whole at {w}x{h}:\n{screen}"
        );
        assert!(screen.contains("press r to plan again"), "{screen}");
        assert!(!screen.contains("to write"), "{screen}");
        assert!(
            footer.contains("BLOCKED") && footer.contains("r plan again"),
            "{footer}"
        );
        assert!(!footer.contains("Enter"), "{footer}");
    }
    // Enter writes nothing; r plans again (a new generation), and the review waits for it.
    let fx = feed(&mut s, 8.0, vec![enter()]);
    assert!(fx.is_empty(), "{fx:?}");
    let g = s.plan_gen;
    let fx = feed(&mut s, 8.5, vec![ch('r')]);
    match fx.as_slice() {
        [spot_connect::app::update::Effect::Plan { generation, .. }] => {
            assert_eq!(*generation, g + 1)
        }
        other => panic!("{other:?}"),
    }
    assert!(s.plan.is_loading());
    assert!(!s.review_blocked());
    // The plan, unblocked now: Enter is back, and the footer shows no BLOCKED.
    feed(
        &mut s,
        9.0,
        vec![Action::Planned {
            generation: g + 1,
            result: Ok(plan()),
        }],
    );
    let footer = render(&s, 80, 24, now(9.1))
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(
        footer.contains("Enter continue") && !footer.contains("BLOCKED"),
        "{footer}"
    );
    assert!(
        feed(&mut s, 9.2, vec![ch('r')]).is_empty(),
        "r does nothing then"
    );
}
