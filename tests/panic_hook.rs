//! The wizard's panic hook (issue 11 §6): whatever panics, in whichever thread or task, the
//! terminal is restored first and the process ends (here the two are recorded instead).
//! Its own test binary: a panic hook is process-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

#[test]
fn a_panic_anywhere_restores_the_terminal_then_ends_the_process() {
    let order = Arc::new(AtomicUsize::new(0));
    let restored_at = Arc::new(AtomicUsize::new(0));
    let ended_with = Arc::new(AtomicI32::new(-1));
    let ended_at = Arc::new(AtomicUsize::new(0));
    let (o1, r1) = (order.clone(), restored_at.clone());
    let (o2, e1, e2) = (order.clone(), ended_with.clone(), ended_at.clone());
    std::panic::set_hook(spot_connect::app::panic_hook(
        move || {
            r1.store(o1.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        },
        move |code| {
            e1.store(code, Ordering::SeqCst);
            e2.store(o2.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        },
    ));
    // A panic in a tokio task (where the wizard's background work runs): tokio catches the
    // unwind, so only the hook can end the process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let joined = rt.block_on(async {
        tokio::spawn(async {
            let v: Vec<u8> = Vec::new();
            // Data from outside that a bug indexes into.
            std::hint::black_box(v)[3]
        })
        .await
    });
    assert!(joined.is_err(), "the task panicked");
    let _ = std::panic::take_hook();
    assert_eq!(restored_at.load(Ordering::SeqCst), 1, "restored first");
    assert_eq!(ended_at.load(Ordering::SeqCst), 2, "then ended");
    assert_eq!(
        ended_with.load(Ordering::SeqCst),
        spot_connect::app::PANIC_EXIT
    );
}
