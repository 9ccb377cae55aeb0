//! Issue 21 §7: type-to-search in the lists and the log, the log pane (scroll, times, path),
//! the footer at 80 columns on every pane, and what quitting says (update and draw tests;
//! ui_e2e_tmux drives the same keys in a real terminal).

use crate::common::ui as ui_support;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use spot_connect::app::closing::closing_lines;
use spot_connect::app::state::{Pane, State};
use spot_connect::app::update::{Action, Effect, SignalKind};
use spot_connect::onboard::model::Progress;
use ui_support::*;

fn typed(s: &mut State, t: f64, text: &str) {
    feed(s, t, text.chars().map(ch).collect());
}

fn highlighted(s: &State) -> String {
    s.selected_subscription()
        .map(|x| x.display_name.clone())
        .unwrap_or_default()
}

#[test]
fn f_then_letters_jumps_to_the_matching_row_and_letters_are_not_commands_meanwhile() {
    let mut s = at_subscription();
    assert_eq!(highlighted(&s), "Contoso Production");
    feed(&mut s, 4.0, vec![ch('f')]);
    assert!(s.search.is_some());
    // "a", "n", "i" would select all / none / invert outside the search: here they are text.
    typed(&mut s, 4.1, "ana");
    assert_eq!(highlighted(&s), "Fabrikam Analytics");
    assert!(s.selected.is_empty(), "no letter selected anything");
    // Backspace: "an" matches from where the search began again (the first row on).
    feed(&mut s, 4.2, vec![key(KeyCode::Backspace)]);
    assert_eq!(highlighted(&s), "Fabrikam Analytics");
    // ↓ and Ctrl-N: the next match, wrapping around; ↑ the previous one.
    feed(
        &mut s,
        4.3,
        vec![key(KeyCode::Backspace), key(KeyCode::Backspace)],
    );
    typed(&mut s, 4.4, "contoso");
    assert_eq!(highlighted(&s), "Contoso Production");
    feed(&mut s, 4.5, vec![key(KeyCode::Down)]);
    assert_eq!(highlighted(&s), "Contoso Staging");
    feed(
        &mut s,
        4.6,
        vec![Action::Key(KeyEvent::new(
            KeyCode::Char('n'),
            KeyModifiers::CONTROL,
        ))],
    );
    assert_eq!(highlighted(&s), "Contoso Production", "wraps around");
    feed(&mut s, 4.7, vec![key(KeyCode::Up)]);
    assert_eq!(highlighted(&s), "Contoso Staging");
    // A miss says so and leaves the highlight.
    typed(&mut s, 4.8, "zz");
    assert!(s.search.as_ref().is_some_and(|q| q.missed));
    let screen = render(&s, 80, 24, now(4.9));
    assert!(screen.contains("find: contosozz▏ no match"), "{screen}");
    assert_eq!(highlighted(&s), "Contoso Staging");
    // Enter keeps the place found; the keys are commands again.
    feed(&mut s, 5.0, vec![enter()]);
    assert!(s.search.is_none());
    assert_eq!(highlighted(&s), "Contoso Staging");
    assert_eq!(s.pane, Pane::Subscription, "Enter left the search only");
    feed(&mut s, 5.1, vec![ch('a')]);
    assert_eq!(
        s.selected.len(),
        3,
        "a selects again once the search is closed"
    );
}

#[test]
fn esc_leaves_the_search_where_it_began_and_disabled_rows_never_match() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('f')]);
    // "Legacy (cancelled)" is Disabled: the search skips it as ↑/↓ do.
    typed(&mut s, 4.1, "legacy");
    assert!(s.search.as_ref().is_some_and(|q| q.missed));
    assert_ne!(highlighted(&s), "Legacy (cancelled)");
    feed(&mut s, 4.2, vec![key(KeyCode::Esc)]);
    feed(&mut s, 4.3, vec![ch('f')]);
    typed(&mut s, 4.4, "staging");
    assert_eq!(highlighted(&s), "Contoso Staging");
    feed(&mut s, 4.5, vec![key(KeyCode::Esc)]);
    assert!(s.search.is_none());
    assert_eq!(highlighted(&s), "Contoso Production", "Esc goes back");
    assert_eq!(
        s.pane,
        Pane::Subscription,
        "Esc left the search, not the pane"
    );
}

#[test]
fn the_search_works_in_every_list_and_the_help_names_it() {
    // The start screen's menu.
    let mut s = home_state();
    feed(&mut s, 1.0, vec![ch('f')]);
    typed(&mut s, 1.1, "rem");
    assert_eq!(s.menu_sel, 3);
    feed(&mut s, 1.2, vec![enter(), enter()]);
    assert_eq!(
        s.pane,
        Pane::Remove,
        "Enter closed the search, the next opened Remove"
    );
    // The Spot account list, by name or id.
    let mut s = started_state();
    feed(&mut s, 1.0, vec![ch('f')]);
    typed(&mut s, 1.1, "sandbox");
    assert_eq!(s.account_sel, 2);
    feed(&mut s, 1.2, vec![enter()]);
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![ch('?')]);
    let help = render(&s, 80, 24, now(4.1));
    assert!(help.contains("f  find"), "{help}");
}

#[test]
fn the_log_pane_scrolls_shows_times_and_names_its_file() {
    let mut s = with_log(20);
    let screen = render(&s, 80, 24, now(30.0));
    // Wall clock of each line (the frame's time less the line's age), the file named.
    assert!(screen.contains("23:30:23 line 19"), "{screen}");
    assert!(
        screen.contains("~/.local/state/spot-connect/spot-connect.log"),
        "{screen}"
    );
    feed(&mut s, 31.0, vec![key(KeyCode::PageUp)]);
    assert_eq!(s.log_scroll, 5);
    let screen = render(&s, 80, 24, now(31.0));
    assert!(
        screen.contains("line 14") && !screen.contains("line 15"),
        "{screen}"
    );
    assert!(screen.contains("5 newer below: End"), "{screen}");
    // A new line while scrolled back: what is shown stays put.
    feed(
        &mut s,
        31.5,
        vec![Action::Progress(Progress::Log {
            message: "line 20".into(),
        })],
    );
    assert_eq!(s.log_scroll, 6);
    feed(&mut s, 32.0, vec![key(KeyCode::Home)]);
    let screen = render(&s, 80, 24, now(32.0));
    // The first lines of the log: the start-up's, then "line 0".
    assert!(
        screen.contains("device code issued")
            && screen.contains("line 0")
            && !screen.contains("line 1"),
        "{screen}"
    );
    feed(&mut s, 33.0, vec![key(KeyCode::End)]);
    assert_eq!(s.log_scroll, 0);
    // ↑/↓ still move in the list under it.
    feed(&mut s, 33.5, vec![key(KeyCode::Down)]);
    assert_eq!(highlighted(&s), "Contoso Staging");
}

#[test]
fn f_with_the_log_open_searches_the_log_newest_first() {
    let mut s = with_log(20);
    feed(&mut s, 31.0, vec![ch('f')]);
    typed(&mut s, 31.1, "line 1");
    // The newest match first: "line 19" is the bottom line already.
    assert_eq!(s.log_scroll, 0);
    // Next: older matches ("line 18" … "line 10", then "line 1").
    feed(&mut s, 31.2, vec![key(KeyCode::Down)]);
    assert_eq!(s.log_scroll, 1);
    feed(&mut s, 31.3, vec![key(KeyCode::Backspace)]);
    typed(&mut s, 31.4, "3");
    // "line 3" only (from the place the search began, back).
    assert_eq!(s.log_scroll, 20 - 1 - 3);
    let screen = render(&s, 80, 24, now(31.5));
    assert!(screen.contains("line 3"), "{screen}");
    feed(&mut s, 31.6, vec![enter()]);
    assert_eq!(s.log_scroll, 16, "Enter keeps the place");
    feed(&mut s, 31.7, vec![ch('f'), ch('9'), key(KeyCode::Esc)]);
    assert_eq!(s.log_scroll, 16, "Esc goes back to where that search began");
}

/// The footer's chunks ("key label"), split where the footer puts two spaces.
fn chunks(line: &str) -> Vec<String> {
    line.split("  ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn footer(screen: &str) -> String {
    screen.lines().last().unwrap_or_default().to_string()
}

#[test]
fn the_footer_fits_80_columns_on_every_pane_whole() {
    for (name, s) in every_pane() {
        let narrow = footer(&render(&s, 80, 24, now(40.0)));
        let wide = footer(&render(&s, 400, 24, now(40.0)));
        assert!(narrow.chars().count() <= 80, "{name}: {narrow}");
        let all = chunks(&wide);
        // Each binding shown is shown whole: no "q q" cut from "q quit".
        for c in chunks(&narrow) {
            assert!(
                all.contains(&c) || c.starts_with("find:"),
                "{name}: {c:?} is cut ({narrow:?} vs {wide:?})"
            );
        }
        // What goes when the room runs out is never the way to the rest of the keys.
        for must in ["? help", "q quit"] {
            if all.iter().any(|c| c == must) {
                assert!(
                    chunks(&narrow).iter().any(|c| c == must),
                    "{name}: {narrow}"
                );
            }
        }
    }
}

/// The exit code the wizard ends with when an effect says to quit.
fn quit_code(fx: &[Effect]) -> Option<i32> {
    fx.iter().find_map(|e| match e {
        Effect::Quit(ending) => Some(ending.code()),
        _ => None,
    })
}

#[test]
fn quitting_the_picker_says_nothing_was_changed_and_exits_130() {
    let mut s = at_subscription();
    let fx = feed(&mut s, 4.0, vec![ch('q')]);
    assert_eq!(quit_code(&fx), Some(130));
    let lines = closing_lines(&s);
    assert_eq!(
        lines,
        vec![
            "spot-connect: nothing was changed in Azure or Spot".to_string(),
            "log: ~/.local/state/spot-connect/spot-connect.log".to_string(),
        ]
    );
}

#[test]
fn stopping_mid_run_says_what_was_written_and_how_it_resumes() {
    let mut s = waiting();
    let fx = feed(&mut s, 21.0, vec![Action::Signal(SignalKind::Term)]);
    assert_eq!(quit_code(&fx), Some(130));
    let text = closing_lines(&s).join("\n");
    assert!(
        text.contains("onboarding stopped before it finished"),
        "{text}"
    );
    assert!(
        text.contains("created spot account act-7d3c9a21: created Contoso Production"),
        "{text}"
    );
    assert!(text.contains("updated custom role"), "{text}");
    assert!(
        text.contains("recorded in ~/.local/state/spot-connect: run spot-connect again"),
        "{text}"
    );
    assert!(
        text.ends_with("log: ~/.local/state/spot-connect/spot-connect.log"),
        "{text}"
    );
}

#[test]
fn leaving_after_a_run_names_each_subscription_and_its_report() {
    let mut s = waiting();
    feed(&mut s, 30.0, vec![Action::Applied(Ok(run_report()))]);
    let text = closing_lines(&s).join("\n");
    assert!(text.contains("is connected to Spot"), "{text}");
    assert!(text.contains("report: "), "{text}");
    assert!(text.contains("log: "), "{text}");
}

#[test]
fn the_rotate_prompt_lists_the_accounts_and_key_ids_it_changes() {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![key(KeyCode::Down), key(KeyCode::Down), enter(), enter()],
    );
    feed(&mut s, 1.5, vec![Action::StatusRead(Ok(rotate_statuses()))]);
    let screen = render(&s, 80, 24, now(1.6));
    assert!(screen.contains("It changes 2 Spot account(s)"), "{screen}");
    assert!(
        screen.contains(ACCOUNT) && screen.contains("act-51e0b7c2"),
        "{screen}"
    );
    assert!(
        screen.contains("holds key 0d1e2f3a-1111-4222-8333-000000000012"),
        "{screen}"
    );
    // The old key ids, the one no account holds included.
    assert!(
        screen.contains("3c4d5e6f-1111-4222-8333-000000000077"),
        "{screen}"
    );
}

#[test]
fn enter_on_a_group_plans_the_whole_group_and_choosing_subscriptions_again_drops_it() {
    let mut s = at_subscription();
    feed(&mut s, 4.0, vec![Action::GroupsListed(Ok(groups()))]);
    feed(&mut s, 4.1, vec![ch('m'), key(KeyCode::Down)]);
    assert_eq!(
        s.selected_group().map(|g| g.group_id.as_str()),
        Some("contoso-prod"),
        "↓ skips the subscriptions' rows to the nested group"
    );
    feed(&mut s, 4.2, vec![key(KeyCode::Up)]);
    let fx = feed(&mut s, 4.3, vec![enter()]);
    let plan = fx.iter().find_map(|e| match e {
        Effect::Plan {
            targets, choices, ..
        } => Some((targets.clone(), choices.clone())),
        _ => None,
    });
    let (targets, choices) = plan.expect("Enter on a group plans");
    assert_eq!(targets.len(), 2);
    assert_eq!(
        choices.management_group.map(|g| g.id),
        Some("contoso-platform".to_string())
    );
    // Back, the subscription list, one subscription: no longer the group's run.
    feed(&mut s, 5.0, vec![key(KeyCode::Esc), ch('m')]);
    assert!(!s.group_view);
    let fx = feed(&mut s, 5.1, vec![enter()]);
    let again = fx.iter().find_map(|e| match e {
        Effect::Plan { choices, .. } => Some(choices.management_group.clone()),
        _ => None,
    });
    assert_eq!(again, Some(None), "planned again, without the group");
}

#[test]
fn a_group_below_a_resolved_one_is_derived_from_it() {
    let all = groups();
    let d = spot_connect::onboard::groups::below(&all[0], "CONTOSO-PROD");
    assert_eq!(d.group_id, "contoso-prod");
    assert_eq!(d.display_name, "Production");
    assert_eq!(d.targets, all[1].targets);
    assert_eq!(d.placement, all[1].placement);
    assert!(d.groups.is_empty() && d.not_enabled.is_empty());
    // The top one's own part is all of it.
    let top = spot_connect::onboard::groups::below(&all[0], "contoso-platform");
    assert_eq!(top.targets, all[0].targets);
    assert_eq!(top.not_enabled.len(), 1);
}

#[test]
fn leaving_after_a_rotation_says_what_it_changed() {
    let mut s = home_state();
    feed(
        &mut s,
        1.0,
        vec![key(KeyCode::Down), key(KeyCode::Down), enter(), enter()],
    );
    feed(&mut s, 1.5, vec![Action::StatusRead(Ok(rotate_statuses()))]);
    // Quit at the prompt: nothing was changed.
    assert_eq!(
        closing_lines(&s)[0],
        "spot-connect: nothing was changed in Azure or Spot"
    );
    feed(
        &mut s,
        2.0,
        vec![ch('y'), Action::Rotated(Ok(Box::new(rotate_report(true))))],
    );
    let text = closing_lines(&s).join("\n");
    assert!(
        text.contains("rotated the client secret in tenant 72f988bf-86f1-41af-91ab-2d7cd011db47"),
        "{text}"
    );
    assert!(text.contains("hold the new secret"), "{text}");
}
