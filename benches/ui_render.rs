//! Frame render time of the wizard (PRODUCT.md §6: a full frame renders in < 1 ms).
//! `cargo bench --bench ui_render`: draws busy panes into a TestBackend many times and prints
//! the mean and worst time per full frame (a fresh terminal each time: no diffing shortcut).

#[path = "../tests/it/common/ui.rs"]
mod ui_support;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};
use ui_support::*;

fn main() {
    let states = [
        ("subscription", at_subscription(), now(4.0)),
        ("confirm", at_confirm(), now(7.0)),
        ("role_assignment_waiting", waiting(), now(23.0)),
    ];
    for (w, h) in [(80u16, 24u16), (120, 40), (200, 60)] {
        for (name, s, t) in &states {
            let n = 2000;
            let mut worst = Duration::ZERO;
            let mut total = Duration::ZERO;
            for i in 0..n {
                let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
                let t0 = Instant::now();
                let mut tt = *t;
                tt.mono += Duration::from_millis(i as u64 * 100);
                term.draw(|f| spot_connect::ui::draw(f, s, tt)).unwrap();
                let d = t0.elapsed();
                total += d;
                worst = worst.max(d);
            }
            let mean = total / n;
            println!(
                "{w:>3}x{h:<3} {name:<24} mean {:>7.1} µs  worst {:>7.1} µs",
                mean.as_secs_f64() * 1e6,
                worst.as_secs_f64() * 1e6
            );
        }
    }
}
