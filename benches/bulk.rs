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
        let t0_utc = time::OffsetDateTime::now_utc();
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
        // 429s later than the first second of the run (the budget is known by then).
        let late_429 = log
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["status"] == 429)
                    .filter(|r| {
                        r["time"].as_str().and_then(|t| {
                            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                        }).is_some_and(|t| (t - t0_utc).as_seconds_f64() > 1.0)
                    })
                    .count()
            })
            .unwrap_or(0);
        // Where the time went: offsets (s after the start) of the first and last ARM write, of
        // the last call, and the write refill the client measured.
        let offset = |r: &serde_json::Value| {
            r["time"]
                .as_str()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|t| (t - t0_utc).as_seconds_f64())
                .unwrap_or(0.0)
        };
        let writes_at: Vec<f64> = log
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["service"] == "arm" && r["method"] != "GET")
                    .map(offset)
                    .collect()
            })
            .unwrap_or_default();
        if std::env::var_os("BULK_LOG").is_some() {
            for r in log.as_array().into_iter().flatten() {
                let path = r["path"].as_str().unwrap_or_default();
                println!(
                    "{:7.3} {:6} {:6} {} {}",
                    offset(r),
                    r["service"].as_str().unwrap_or_default(),
                    r["method"].as_str().unwrap_or_default(),
                    r["status"],
                    &path[..path.len().min(110)]
                );
            }
        }
        let first_write = writes_at.iter().copied().fold(f64::MAX, f64::min);
        let last_write = writes_at.iter().copied().fold(0.0, f64::max);
        let last_call = log
            .as_array()
            .map(|a| a.iter().map(offset).fold(0.0, f64::max))
            .unwrap_or(0.0);
        let refill = session
            .http
            .budgets
            .refill(&format!("tenant/{}/writes", seed::CONTOSO_TENANT_ID))
            .unwrap_or(0.0);
        println!(
            "{{\"first_write_done_s\":{first_write:.2},\"last_write_done_s\":{last_write:.2},\"last_call_done_s\":{last_call:.2},\"measured_refill_per_s\":{refill:.1}}}"
        );
        let arm_reads = log
            .as_array()
            .map(|a| a.iter().filter(|r| r["service"] == "arm" && r["method"] == "GET").count())
            .unwrap_or(0);
        // Lower bounds. Path: the longest chain of dependent calls (tenant: find app, create app,
        // find SP, create SP; the first subscription: find assignment, PUT assignment, read Spot
        // credentials, addPassword, set the credentials, read back), 10 calls. Budget: ARM's
        // write bucket (`--rate-limit N`: N tokens, N per second) admits the first `bucket`
        // writes at once and the rest at `refill`; the first write (the role) cannot leave
        // before two dependent calls (token, role look-up), and the last one is followed by its
        // subscription's two Spot calls: 2 + 3 calls around (writes - bucket) / refill.
        let lat = latency as f64 / 1000.0;
        let (bucket, refill) = (rate as f64, rate as f64);
        let rate_bound = 2.0 * lat + (arm_writes as f64 - bucket).max(0.0) / refill + 3.0 * lat;
        let path_bound = 10.0 * lat;
        let bound = rate_bound.max(path_bound);
        // The same under the plan-then-apply rule and the engine's dependencies: the
        // assignments need the service principal, so none leaves before token, look-up (the
        // plan), create app, create principal (4 calls); the role's write before them is
        // refilled by then, so the bucket admits the assignments' first `bucket` at once.
        let assignments = arm_writes.saturating_sub(1) as f64;
        let rule_bound = 4.0 * lat + (assignments - bucket).max(0.0) / refill + 3.0 * lat;
        println!(
            "{{\"subscriptions\":{subs},\"latency_ms\":{latency},\"rate_limit\":{rate},\"connected\":{connected},\"plan_s\":{planned:.2},\"wall_s\":{wall:.2},\"arm_writes\":{arm_writes},\"arm_reads\":{arm_reads},\"calls\":{calls},\"http_429\":{throttled},\"http_429_after_1s\":{late_429},\"quota_429_seen\":{},\"peak_in_flight\":{},\"bucket_bound_s\":{rate_bound:.2},\"path_bound_s\":{path_bound:.2},\"ratio\":{:.3},\"rule_bound_s\":{rule_bound:.2},\"ratio_rule\":{:.3}}}",
            report.throttled,
            report.peak_concurrency,
            wall / bound,
            wall / rule_bound.max(path_bound)
        );
        assert_eq!(connected, subs as usize, "every subscription connected");
        sim.shutdown().await;
    });
}
