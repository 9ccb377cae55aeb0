//! Issue 20 §4: a tenant's subscriptions are planned while later pages of `GET /subscriptions`
//! are still coming (`onboard::plan_listed`), and nothing about the plan changes for it.

use crate::common::sim::Engine;
use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::onboard::Plan;
use spot_connect::onboard::{self, Settings};
use spot_connect::sim::seed;

type Env = Engine;

async fn env(opts: SimOpts) -> Env {
    let env = Engine::start(opts).await;
    env.session.auth.sign_in().await.expect("sign-in");
    env
}

/// `--all-subscriptions` planned as the commands plan it now (pipelined).
async fn listed(env: &Env, ids: &[String], all: bool) -> (Vec<onboard::Target>, Plan) {
    let (resolved, plan) =
        onboard::plan_listed(&env.session, ids, all, false, &Settings::default())
            .await
            .expect("resolved");
    (resolved.targets, plan.expect("a target").expect("plan"))
}

/// The same, one after the other: discovery to the end, then the plan.
async fn serial(env: &Env, ids: &[String], all: bool) -> (Vec<onboard::Target>, Plan) {
    let resolved = env
        .session
        .resolve_targets(ids, all, false)
        .await
        .expect("resolved");
    let plan = onboard::plan(&env.session, &resolved.targets, &Settings::default())
        .await
        .expect("plan");
    (resolved.targets, plan)
}

/// Pages of 2 and of 100 give the same targets in the same order and the same plan (every
/// item, in order), pipelined or not; the seed's tenants hold connections of ours to make, one
/// that is not ours (kept) and a disabled subscription (left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_the_same_with_pages_of_2_and_of_100() {
    let small = env(SimOpts {
        subscriptions: 7,
        subscription_page_size: 2,
        ..SimOpts::default()
    })
    .await;
    let large = env(SimOpts {
        subscriptions: 7,
        subscription_page_size: 100,
        ..SimOpts::default()
    })
    .await;
    let (t2, p2) = listed(&small, &[], true).await;
    let (t100, p100) = listed(&large, &[], true).await;
    let (ts, ps) = serial(&small, &[], true).await;
    // Contoso's 2 seeded enabled subscriptions and 7 more, Fabrikam's 2.
    assert_eq!(t2.len(), 11, "{t2:#?}");
    assert_eq!(t2, t100);
    assert_eq!(t2, ts);
    assert!(p2.items.len() > 11, "{p2:#?}");
    assert_eq!(p2, p100);
    assert_eq!(p2, ps);
    // Byte for byte as `plan --json` prints it.
    assert_eq!(
        serde_json::to_string(&p2).unwrap(),
        serde_json::to_string(&p100).unwrap()
    );
    // Chosen subscriptions (one on the last page of 2) too.
    let ids = vec![
        seed::extra_subscription_id(7),
        seed::SUB_CONTOSO_PROD.to_string(),
    ];
    let (a, pa) = listed(&small, &ids, false).await;
    let (b, pb) = serial(&large, &ids, false).await;
    assert_eq!(a, b);
    assert_eq!(pa, pb);
    // Reads only.
    for env in [&small, &large] {
        let log = env.sim.requests();
        let writes: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] != "GET" && r["service"] != "login")
            .collect();
        assert!(writes.is_empty(), "{writes:#?}");
    }
    small.sim.shutdown().await;
    large.sim.shutdown().await;
}

/// With 50 ms per call and pages of 2, Contoso's listing is a chain of 6 pages; the look-ups of
/// the subscriptions of the first pages reach the simulator before the last page is asked for
/// (the request log's `seq` is the order of arrival), so the plan does not wait for the whole
/// listing. Serially, none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_looked_up_while_later_pages_are_coming() {
    let opts = SimOpts {
        subscriptions: 9,
        subscription_page_size: 2,
        latency: 50,
        ..SimOpts::default()
    };
    let pipelined = env(opts.clone()).await;
    let (targets, _) = listed(&pipelined, &[], true).await;
    let serial_env = env(opts).await;
    let (serial_targets, _) = serial(&serial_env, &[], true).await;
    assert_eq!(targets, serial_targets);

    // (seq of the last `GET /subscriptions` page, seqs of the subscriptions' own look-ups)
    let order = |env: &Env| {
        let log = env.sim.requests();
        let log = log.as_array().unwrap().clone();
        let seq = |r: &Value| r["seq"].as_u64().unwrap();
        let last_page = log
            .iter()
            .filter(|r| {
                r["service"] == "arm"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/subscriptions?"))
            })
            .map(seq)
            .max()
            .expect("subscriptions listed");
        let looks: Vec<u64> = log
            .iter()
            .filter(|r| {
                let p = r["path"].as_str().unwrap_or_default();
                (r["service"] == "arm"
                    && p.contains("/providers/Microsoft.Authorization/permissions"))
                    || (r["service"] == "spot" && p.contains("cloudAccountId="))
            })
            .map(seq)
            .collect();
        (last_page, looks, log.len())
    };
    let (last_page, looks, _) = order(&pipelined);
    // Every target is looked up (permissions and its Spot account, at least).
    assert!(looks.len() >= 2 * targets.len(), "{looks:?}");
    let early = looks.iter().filter(|s| **s < last_page).count();
    assert!(
        early >= 4,
        "look-ups sent before the last page was asked for: {early} of {} (last page seq {last_page})",
        looks.len()
    );
    let (last_page, looks, _) = order(&serial_env);
    assert!(
        looks.iter().all(|s| *s > last_page),
        "serially, every look-up follows the listing"
    );
    pipelined.sim.shutdown().await;
    serial_env.sim.shutdown().await;
}
