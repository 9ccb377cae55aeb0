//! One retry policy: a read the HTTP layer has already sent again is not sent again by the
//! engine on top (issue 18 §2: a `plan` whose read route always answered 500 sent it 72 times
//! on Graph and 108 times on ARM, and took 100 s to fail).

use crate::common::cli::{As, Sim, sends};
use spot_connect::sim::{SimOpts, seed};
use std::time::{Duration, Instant};

/// The HTTP layer's attempts (`Http::max_attempts`): the most any one read may be sent.
const MOST: usize = 6;

async fn plan_against_a_failing_route(method: &str, route: &str) -> (usize, Duration, String) {
    let env = Sim::start(SimOpts::default()).await;
    env.sim.fail(method, route, 100_000, 500);
    let started = Instant::now();
    let out = env
        .run(
            As::CiOperator,
            &["plan", "--subscription", seed::SUB_CONTOSO_PROD],
            Duration::from_secs(240),
        )
        .await;
    let took = started.elapsed();
    let n = sends(&env.sim, method, route);
    eprintln!("{method} {route} always 500: sent {n} times, the plan failed after {took:?}");
    assert_ne!(
        out.code, 0,
        "{route}: the plan cannot succeed: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("500"),
        "{route}: the error names the service's answer: {}",
        out.stderr
    );
    (n, took, out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_read_that_keeps_failing_is_sent_at_most_six_times() {
    let (n, took, stderr) = plan_against_a_failing_route("GET", "/applications").await;
    assert!(
        (1..=MOST).contains(&n),
        "GET /applications was sent {n} times (at most {MOST}): {stderr}"
    );
    assert!(took < Duration::from_secs(60), "failed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_read_that_keeps_failing_is_sent_at_most_six_times() {
    let (n, took, stderr) = plan_against_a_failing_route("GET", "/roledefinitions").await;
    assert!(
        (1..=MOST).contains(&n),
        "GET …/roleDefinitions was sent {n} times (at most {MOST}): {stderr}"
    );
    assert!(took < Duration::from_secs(60), "failed after {took:?}");
}
