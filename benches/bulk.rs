//! Bulk onboarding: 100 subscriptions against the simulator with 50 ms latency per call and
//! ARM's write limit at 20 per second per tenant. Prints the wall time next to the lower bound
//! that latency and the rate limit allow (docs/performance.md, "Bulk onboarding").
//!
//! The time is the whole run as `apply --yes` makes it: `onboard::plan` (every lookup) then
//! `onboard::apply` of that plan.
//!
//! `cargo bench --bench bulk` (env: BULK_SUBS, BULK_LATENCY_MS, BULK_RATE).

use spot_connect::cli::{CommonOpts, SimOpts};
use spot_connect::onboard;
use spot_connect::onboard::model::Verdict;
use spot_connect::onboard::{Session, Settings, Target};
use spot_connect::secret::Secret;
use spot_connect::sim::{self, seed};
use std::sync::Arc;
use std::time::Instant;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let subs = env_or("BULK_SUBS", 100) as u32;
    let latency = env_or("BULK_LATENCY_MS", 50);
    let rate = env_or("BULK_RATE", 20) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = sim::start(
            &SimOpts {
                latency,
                rate_limit: Some(rate),
                subscriptions: subs,
                approve_after: 0,
                ..Default::default()
            },
            &dir.path().join("sim"),
        )
        .await
        .expect("simulator");
        let common = CommonOpts {
            state_dir: Some(dir.path().join("state")),
            ..Default::default()
        };
        let session = Session::build(
            &common,
            Some((sim.endpoints(), Secret::new(sim.endpoints.spot_token.clone()))),
            Arc::new(|_| {}),
        )
        .expect("session");
        session.auth.sign_in().await.expect("sign-in");
        let targets: Vec<Target> = (1..=subs)
            .map(|n| Target {
                tenant_id: seed::CONTOSO_TENANT_ID.into(),
                subscription_id: seed::extra_subscription_id(n),
                subscription_name: format!("Contoso Bulk {n:03}"),
            })
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let t0 = Instant::now();
        let plan = onboard::plan(&session, &targets, &Settings::default())
            .await
            .expect("plan");
        let planned = t0.elapsed().as_secs_f64();
        let report = onboard::apply(&session, &plan, tx).await;
        let wall = t0.elapsed().as_secs_f64();
        let _ = drain.await;
        let connected = report
            .reports
            .iter()
            .filter(|r| r.verdict == Verdict::Connected)
            .count();
        let log = sim.requests();
        let calls = log.as_array().map_or(0, Vec::len);
        let arm_writes = log
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| {
                        r["service"] == "arm"
                            && r["method"] != "GET"
                            && r["status"].as_u64().is_some_and(|s| s != 429)
                    })
                    .count()
            })
            .unwrap_or(0);
        let throttled = log
            .as_array()
            .map(|a| a.iter().filter(|r| r["status"] == 429).count())
            .unwrap_or(0);
        // Lower bounds. Rate: the limiter admits `rate` writes in any 1 s window, so write n
        // (1-based) cannot start before floor((n-1)/rate) s. Path: the longest chain of
        // dependent calls (tenant: find app, create app, find SP, create SP; the first
        // subscription: find assignment, PUT assignment, read Spot credentials, addPassword, set
        // the credentials, read back), 10 calls.
        let rate_bound = ((arm_writes.max(1) - 1) / rate as usize) as f64 + latency as f64 / 1000.0;
        let path_bound = 10.0 * latency as f64 / 1000.0;
        let bound = rate_bound.max(path_bound);
        println!(
            "{{\"subscriptions\":{subs},\"latency_ms\":{latency},\"rate_limit\":{rate},\"connected\":{connected},\"plan_s\":{planned:.2},\"wall_s\":{wall:.2},\"arm_writes\":{arm_writes},\"calls\":{calls},\"http_429\":{throttled},\"quota_429_seen\":{},\"peak_in_flight\":{},\"rate_bound_s\":{rate_bound:.2},\"path_bound_s\":{path_bound:.2},\"ratio\":{:.2}}}",
            report.throttled,
            report.peak_concurrency,
            wall / bound
        );
        assert_eq!(connected, subs as usize, "every subscription connected");
        sim.shutdown().await;
    });
}
