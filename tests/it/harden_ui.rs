//! Issue 11 §11, the wizard's share: the masked token field tells nothing about the token, and
//! the quit prompt does not outlive the run it asked about.

use crate::common::ui as ui_support;

use spot_connect::app::state::{Pane, State};
use spot_connect::app::update::Action;
use spot_connect::onboard::model::{Outcome, Step};
use ui_support::*;

fn with_token(token: &str) -> State {
    let mut i = init();
    i.token_prefill = Some((token.into(), "SPOTINST_TOKEN".into()));
    let mut s = State::new(i);
    spot_connect::app::update::start(&mut s, at(0.0));
    feed(&mut s, 0.6, vec![Action::SpotAccounts(Ok(accounts()))]);
    feed(&mut s, 0.7, vec![enter()]);
    assert_eq!(s.pane, Pane::SpotAccount);
    s
}

#[test]
fn the_masked_token_shows_the_same_dots_whatever_its_length() {
    let short = render(&with_token("abc"), 80, 24, now(0.8));
    let long = render(&with_token(&"x".repeat(61)), 80, 24, now(0.8));
    let dots = |s: &str| s.chars().filter(|c| *c == '•').count();
    assert_eq!(dots(&short), spot_connect::ui::MASK_DOTS, "{short}");
    assert_eq!(dots(&long), spot_connect::ui::MASK_DOTS, "{long}");
    assert_eq!(
        short, long,
        "nothing on screen depends on the token's length"
    );
    assert!(!short.contains("abc") && !long.contains("xxx"));
}

#[test]
fn the_quit_prompt_closes_when_the_run_ends() {
    let mut s = waiting();
    feed(&mut s, 21.0, vec![ch('q')]);
    assert!(s.confirm_quit, "asked while running");
    feed(
        &mut s,
        24.0,
        vec![
            finished(
                Step::RoleAssignment,
                Outcome::Created,
                "7a8b9c0d-1111-4222-8333-000000000013",
                "assigned",
            ),
            finished(Step::ConnectSpot, Outcome::Created, ACCOUNT, "connected"),
            Action::Applied(Ok(run_report())),
        ],
    );
    assert_eq!(s.pane, Pane::Done);
    assert!(!s.confirm_quit, "the prompt closed with the run");
    let screen = render(&s, 80, 24, now(25.0));
    assert!(!screen.contains("Quit now?"), "{screen}");
}
