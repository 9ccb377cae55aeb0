//! The UI never redraws without a change: the event loop's screen (`app::screen::Screen`, over a
//! test terminal) writes a frame only when the picture differs from the one shown, and looks
//! again without an action only while something on screen moves (`screen::next_frame`).

use crate::common::ui as ui_support;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;
use spot_connect::app::screen::{self, FRAME, Screen};
use spot_connect::app::state::{Pane, State};
use spot_connect::app::update::{Action, update};
use ui_support::*;

fn screen() -> Screen<TestBackend> {
    Screen::new(Terminal::new(TestBackend::new(80, 24)).expect("test terminal"))
}

/// As the loop does: the actions, then one look at the screen.
fn step(sc: &mut Screen<TestBackend>, s: &mut State, t: f64, actions: Vec<Action>) -> bool {
    for a in actions {
        let fx = update(s, a, at(t));
        assert!(fx.is_empty(), "no effect expected, got {fx:?}");
    }
    sc.show(s, now(t)).expect("show")
}

fn shown(sc: &Screen<TestBackend>) -> String {
    let buf = sc.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn unbound_keys_and_idle_ticks_on_a_static_pane_draw_nothing() {
    let mut s = home_state();
    assert_eq!(s.pane, Pane::Start);
    let mut sc = screen();
    assert!(sc.show(&s, now(1.0)).unwrap(), "the first frame is drawn");
    assert_eq!(sc.draws(), 1);
    let first = shown(&sc);
    // Nothing moves on the start screen: the loop does not even wake up.
    assert_eq!(screen::next_frame(&s, at(1.0)), None);
    for i in 0..20 {
        let t = 1.0 + 0.05 * f64::from(i);
        assert!(!step(&mut sc, &mut s, t, vec![ch('z')]), "unbound key {i}");
        assert!(!step(&mut sc, &mut s, t, vec![key(KeyCode::F(12))]));
    }
    // Ticks (as a stray timer would send) and a minute passing change nothing on this pane.
    for i in 0..20 {
        let t = 3.0 + 3.0 * f64::from(i);
        assert!(!step(&mut sc, &mut s, t, vec![Action::Tick]), "tick {i}");
    }
    assert_eq!(sc.draws(), 1, "40 unbound keys and 20 ticks: no frame");
    assert_eq!(shown(&sc), first);
}

#[test]
fn a_key_that_moves_the_selection_draws_exactly_once() {
    let mut s = home_state();
    let mut sc = screen();
    sc.show(&s, now(1.0)).unwrap();
    let before = shown(&sc);
    let sel = s.menu_sel;
    assert!(step(&mut sc, &mut s, 1.1, vec![key(KeyCode::Down)]));
    assert_ne!(s.menu_sel, sel);
    assert_eq!(sc.draws(), 2);
    assert_ne!(shown(&sc), before, "the terminal shows the new selection");
    // Looking again with nothing new: no frame.
    assert!(!sc.show(&s, now(1.2)).unwrap());
    // Three keys in one batch (television-style: only the latest frame): one frame.
    for _ in 0..3 {
        update(&mut s, key(KeyCode::Down), at(1.3));
    }
    assert!(sc.show(&s, now(1.3)).unwrap());
    assert_eq!(sc.draws(), 3);
}

#[test]
fn a_running_steps_spinner_still_animates() {
    // The run is under way: the role assignment waits for Azure, with a spinner and times.
    let s = waiting();
    let mut sc = screen();
    let t0 = at(20.03);
    assert!(sc.show(&s, now(20.03)).unwrap());
    let first = shown(&sc);
    // The loop looks again at the next spinner frame, not later.
    let next = screen::next_frame(&s, t0).expect("something moves");
    assert_eq!(next, at(20.1));
    assert!(next > t0 && next - t0 <= FRAME);
    // Within the same spinner frame, and the same tenth of a second of the times shown:
    // nothing new.
    assert!(!sc.show(&s, now(20.04)).unwrap());
    assert_eq!(sc.draws(), 1);
    // At each of the next ten frame instants the spinner has moved: ten frames.
    let mut t = next;
    for _ in 0..10 {
        assert!(sc.show(&s, now(t.as_secs_f64())).unwrap(), "frame at {t:?}");
        t = screen::next_frame(&s, t).unwrap();
    }
    assert_eq!(sc.draws(), 11);
    assert_ne!(shown(&sc), first);
}

#[test]
fn a_resize_and_a_cleared_terminal_are_drawn_again() {
    let mut s = home_state();
    let mut sc = screen();
    sc.show(&s, now(1.0)).unwrap();
    sc.backend_mut().resize(100, 30);
    assert!(step(&mut sc, &mut s, 1.05, vec![Action::Resize(100, 30)]));
    assert_eq!(sc.backend().buffer().area.width, 100);
    // After the full screen was left (the sign-in address printed raw) and cleared.
    sc.clear().unwrap();
    assert!(sc.show(&s, now(1.1)).unwrap());
    assert_eq!(sc.draws(), 3);
    assert!(!sc.show(&s, now(1.2)).unwrap());
    // The frame after the clear is whole again, not a diff against what was shown before it.
    assert!(shown(&sc).contains("What do you want to do?"));
}
