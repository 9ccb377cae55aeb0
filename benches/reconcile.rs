//! `reconcile` over 1,000 subscriptions under one management group where nothing changed
//! (issue 19 §Performance): reads only, paced within ARM's read budget, and within 1.2× of its
//! dependent-call chain (docs/performance.md, "reconcile over 1,000 subscriptions").
//!
//! The simulator (in process, on its own runtime) adds `RECON_LATENCY_MS` to every call and keeps
//! ARM's default read budget (a bucket of 250, refilled at 25 per second per tenant). 1,000
//! subscriptions are placed under `contoso-spot-prod` (1,002 under `contoso-spot`). A first pass
//! connects them (not timed); then each timed pass is what `spot-connect reconcile
//! --management-group contoso-spot` does after its sign-in: resolve the group (discovery, the
//! group, its descendants), then `onboard::reconcile::reconcile`.
//!
//! `cargo bench --bench reconcile` (env: RECON_SUBS 1000, RECON_LATENCY_MS 50, RECON_RUNS 3,
//! RECON_LOG=1 prints the last pass's request log).

use spot_connect::azure::auth::AuthMethod;
use spot_connect::cli::{CommonOpts, SimOpts};
use spot_connect::onboard::reconcile::{ReconcileOptions, reconcile};
use spot_connect::onboard::{Session, Settings, fleet};
use spot_connect::secret::Secret;
use spot_connect::sim::{self, seed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Subscriptions the engine looks up at once (`onboard::engine::LOOKUP_CONCURRENCY`).
const WINDOW: u64 = 32;
/// The simulator's default ARM read budget per tenant.
const READ_BUCKET: f64 = 250.0;
const READ_REFILL: f64 = 25.0;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let subs = env_or("RECON_SUBS", 1000) as u32;
    let latency = env_or("RECON_LATENCY_MS", 50);
    let runs = env_or("RECON_RUNS", 3).max(1);
    // The CI operator (a service principal with rights at the group), as a scheduled job signs in.
    // SAFETY: set before the runtime and its threads exist.
    unsafe {
        std::env::set_var("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID);
        std::env::set_var("AZURE_CLIENT_ID", seed::CI_OPERATOR_CLIENT_ID);
        std::env::set_var("AZURE_CLIENT_SECRET", seed::CI_OPERATOR_SECRET);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = sim::start(
            &SimOpts {
                latency,
                subscriptions: subs,
                approve_after: 0,
                ..Default::default()
            },
            &dir.path().join("sim"),
        )
        .await
        .expect("simulator");
        for n in 1..=subs {
            sim.place_subscription(seed::MG_SPOT_PROD, &seed::extra_subscription_id(n), "");
        }
        let common = CommonOpts {
            state_dir: Some(dir.path().join("state")),
            auth: Some(AuthMethod::ClientSecret),
            ..Default::default()
        };
        let session = Session::build(
            &common,
            Some((sim.endpoints(), Secret::new(sim.endpoints.spot_token.clone()))),
            Arc::new(|_| {}),
        )
        .expect("session");
        session.auth.sign_in().await.expect("sign-in");
        let opts = ReconcileOptions {
            rotate_within: time::Duration::days(30),
        };
        // One pass as the command makes it after its sign-in.
        let pass = || async {
            let r = fleet::resolve(&session, seed::MG_SPOT, &[])
                .await
                .expect("the group");
            let settings = Settings {
                management_group: Some(r.scope(false)),
                ..Settings::default()
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let report = reconcile(&session, &r.targets, &settings, opts, tx)
                .await
                .expect("reconcile");
            let _ = drain.await;
            report
        };
        let t = Instant::now();
        let first = pass().await;
        let first_s = t.elapsed().as_secs_f64();
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        assert_eq!(first.subscriptions.len(), subs as usize + 2);
        println!(
            "{{\"first_pass_s\":{first_s:.2},\"planned_writes\":{}}}",
            first.planned_writes
        );
        let lat = latency as f64 / 1000.0;
        let mut ratios = Vec::new();
        for run in 0..runs {
            // A scheduled pass starts with ARM's read bucket full (the last pass was long ago).
            tokio::time::sleep(Duration::from_secs_f64(READ_BUCKET / READ_REFILL + 1.0)).await;
            let c0 = sim.requests().as_array().map_or(0, Vec::len);
            let t0_utc = OffsetDateTime::now_utc();
            let t = Instant::now();
            let r = pass().await;
            let wall = t.elapsed().as_secs_f64();
            let log = sim.requests();
            let log: Vec<&serde_json::Value> = log.as_array().unwrap()[c0..].iter().collect();
            assert_eq!(r.planned_writes, 0, "nothing changed");
            assert!(!r.applied);
            assert!(r.problems.is_empty(), "{:?}", r.problems);
            let count = |f: &dyn Fn(&serde_json::Value) -> bool| log.iter().filter(|x| f(x)).count();
            let path = |x: &serde_json::Value| x["path"].as_str().unwrap_or_default().to_string();
            // The path without its query.
            let bare = |x: &serde_json::Value| path(x).split('?').next().unwrap_or_default().to_string();
            let writes = count(&|x| {
                x["service"] != "login" && x["method"] != "GET" && !path(x).contains("/inspect")
            });
            assert_eq!(writes, 0, "reads only");
            let arm_reads = count(&|x| x["service"] == "arm" && x["method"] == "GET");
            let throttled = count(&|x| x["status"] == 429);
            let spot = count(&|x| x["service"] == "spot");
            let graph = count(&|x| x["service"] == "graph");
            // Pages that each need the previous one's nextLink: the tenant's subscriptions and
            // the group's descendants.
            // (The log does not say whose token listed a page: Contoso's pages are computed from
            // its subscriptions, 100 a page, the simulator's default.)
            let sub_pages_all = count(&|x| {
                x["service"] == "arm" && bare(x).trim_end_matches('/').ends_with("/subscriptions")
            });
            let sub_pages = u64::from(subs + 3).div_ceil(100);
            let desc_pages = count(&|x| bare(x).ends_with("/descendants"));
            // The dependent-call chain (docs/performance.md says what it counts): tenants, then
            // the subscription pages one after another, the group, its descendant pages one after
            // another; then the per-subscription look-ups, each two dependent Spot calls (the
            // accounts connected to the subscription, then their credentials), WINDOW of them in
            // flight: ceil(n / WINDOW) look-ups one after another in each slot of the window.
            let n = r.subscriptions.len() as u64;
            let head = 1 + sub_pages + 1 + desc_pages as u64;
            let per_sub = n.div_ceil(WINDOW) * 2;
            let chain = (head + per_sub) as f64 * lat;
            let data_chain = (head + 2) as f64 * lat;
            let budget = (arm_reads as f64 - READ_BUCKET).max(0.0) / READ_REFILL;
            let bound = chain.max(budget);
            let offset = |x: &serde_json::Value| {
                x["time"]
                    .as_str()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                    .map(|t| (t - t0_utc).as_seconds_f64())
                    .unwrap_or(0.0)
            };
            if run + 1 == runs && std::env::var_os("RECON_LOG").is_some() {
                for x in &log {
                    let p = path(x);
                    println!(
                        "{:7.3} {:6} {:6} {} {}",
                        offset(x),
                        x["service"].as_str().unwrap_or_default(),
                        x["method"].as_str().unwrap_or_default(),
                        x["status"],
                        &p[..p.len().min(110)]
                    );
                }
            }
            let ratio = wall / bound;
            ratios.push(ratio);
            println!(
                "{{\"run\":{run},\"subscriptions\":{n},\"latency_ms\":{latency},\"wall_s\":{wall:.3},\"calls\":{},\"arm_reads\":{arm_reads},\"graph\":{graph},\"spot\":{spot},\"writes\":{writes},\"http_429\":{throttled},\"subscription_pages\":{sub_pages_all},\"contoso_pages\":{sub_pages},\"descendant_pages\":{desc_pages},\"chain_calls\":{},\"chain_s\":{chain:.3},\"data_chain_s\":{data_chain:.3},\"read_budget_bound_s\":{budget:.3},\"ratio\":{ratio:.3}}}",
                log.len(),
                head + per_sub
            );
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        println!(
            "reconcile, nothing changed, {} subscriptions: wall / bound median {median:.3} (min {:.3}, max {:.3}); target <= 1.2: {}",
            subs + 2,
            ratios[0],
            ratios[ratios.len() - 1],
            if median <= 1.2 { "met" } else { "NOT met" }
        );
        sim.shutdown().await;
    });
}
