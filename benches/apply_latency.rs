//! `apply` of one subscription against the in-process simulator with 50 ms of latency per call,
//! compared with the critical path of the calls it made (PRODUCT.md §6: within 1.2x).
//!
//! `cargo bench --bench apply_latency` (env `APPLY_BENCH_RUNS`, default 5; `APPLY_BENCH_LOG=1`
//! prints every run's request log, not only the first).
//!
//! Each run: a fresh simulator (latency 50 ms, no faults, no replication delay) and a fresh state
//! dir, device-code sign-in (not timed: the simulator approves it after a pause that stands for
//! the operator), then `onboard::plan` and `onboard::apply` of that plan for Contoso Production
//! from nothing: lookups, plan, writes, connect, read-back. Timed: both calls.
//!
//! The bound is derived from the simulator's request log of that same run. Every logged call is
//! classified ([`Kind`]) and given the calls it needs the result of ([`needs`]): a data dependency
//! of the engine (the app's id before its service principal, the principal and the role before
//! the assignment, ...), plus one rule of the product: nothing is written before the plan is
//! complete (every write waits for every lookup). The bound is the longest chain of that graph
//! over the calls the run made, times the latency. The run's own serial depth (the longest chain
//! of calls that did not overlap in time) is printed next to it: where it is longer, the engine
//! waited for something it did not need, and the calls on that chain are listed. A call the
//! classifier does not know (`Other`, e.g. the preflight's Graph reads) gets only the token and
//! plan dependencies: if such calls came to depend on each other, the bound would be too short
//! and the ratio pessimistic, never flattering.
//!
//! The simulator runs on its own tokio runtime, as a remote service would. After the runs, the
//! `apply` command itself runs as a process (`--yes`, against a fresh simulator) and its request
//! log after sign-in is printed: what the command adds around the engine.

use spot_connect::cli::{CommonOpts, SimOpts};
use spot_connect::onboard::model::Verdict;
use spot_connect::onboard::{self, Session, Settings, Target};
use spot_connect::secret::Secret;
use spot_connect::sim::{self, SimHandle, seed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const LATENCY_MS: u64 = 50;

/// What a logged call is, for the dependency graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An access token (Graph or ARM audience) for the tenant.
    Token,
    /// Device-code sign-in calls (not part of `apply`).
    SignIn,
    // Lookups (the plan).
    SpotListAccounts,
    SpotGetCredentials,
    Permissions,
    FindApp,
    GetApp,
    GetServicePrincipal,
    FindRoleAtScope,
    TenantCustomRoles,
    ListSubscriptions,
    FindRoleOtherSub,
    GetRoleDefinition,
    ListAssignments,
    // Writes.
    CreateAccount,
    CreateApp,
    CreateServicePrincipal,
    AddPassword,
    PutRoleDefinition,
    PutAssignment,
    SetCredentials,
    RemovePassword,
    Other,
}

impl Kind {
    fn is_write(self) -> bool {
        matches!(
            self,
            Kind::CreateAccount
                | Kind::CreateApp
                | Kind::CreateServicePrincipal
                | Kind::AddPassword
                | Kind::PutRoleDefinition
                | Kind::PutAssignment
                | Kind::SetCredentials
                | Kind::RemovePassword
        )
    }
}

#[derive(Debug, Clone)]
struct Call {
    seq: u64,
    method: String,
    path: String,
    status: u64,
    kind: Kind,
    /// When the simulator logged it (after its latency and handler), ms after `apply` started.
    end_ms: f64,
    /// Whether a write of this run came before it (tells the read-back from a lookup).
    after_write: bool,
}

fn classify(method: &str, path: &str) -> Kind {
    let target_scope = format!("/arm/subscriptions/{}/", seed::SUB_CONTOSO_PROD);
    let p = path.split('?').next().unwrap_or(path);
    let q = path.split_once('?').map(|x| x.1).unwrap_or("");
    let m = method;
    if p.starts_with("/login") {
        return if p.ends_with("/token") && !q.contains("device") {
            Kind::Token
        } else {
            Kind::SignIn
        };
    }
    if p.starts_with("/spot") {
        return match (m, p) {
            ("GET", "/spot/setup/account") => Kind::SpotListAccounts,
            ("POST", "/spot/setup/account") => Kind::CreateAccount,
            ("GET", _) if p.contains("/azure/setup/credentials") => Kind::SpotGetCredentials,
            ("POST", _) if p.contains("/azure/setup/credentials") => Kind::SetCredentials,
            _ => Kind::Other,
        };
    }
    if p.starts_with("/graph") {
        return match m {
            "GET" if p.ends_with("/applications") => Kind::FindApp,
            // Our app by its uniqueName (a lookup, like the search by name).
            "GET" if p.contains("/applications(") => Kind::FindApp,
            // The upserts that create the app and its service principal.
            "PATCH" if p.contains("/applications(") => Kind::CreateApp,
            "PATCH" if p.contains("/servicePrincipals(") => Kind::CreateServicePrincipal,
            "GET" if p.contains("/applications/") => Kind::GetApp,
            "GET" if p.contains("servicePrincipals") => Kind::GetServicePrincipal,
            "POST" if p.ends_with("/applications") => Kind::CreateApp,
            "POST" if p.ends_with("/servicePrincipals") => Kind::CreateServicePrincipal,
            "POST" if p.ends_with("/addPassword") => Kind::AddPassword,
            "POST" if p.ends_with("/removePassword") => Kind::RemovePassword,
            _ => Kind::Other,
        };
    }
    if p.starts_with("/arm") {
        let at_sub = p.starts_with("/arm/subscriptions/");
        return match m {
            "GET" if p.ends_with("/permissions") => Kind::Permissions,
            "GET" if p == "/arm/subscriptions" => Kind::ListSubscriptions,
            "GET" if p.ends_with("/roleDefinitions") && !at_sub => Kind::TenantCustomRoles,
            "GET" if p.ends_with("/roleDefinitions") && p.starts_with(&target_scope) => {
                Kind::FindRoleAtScope
            }
            "GET" if p.ends_with("/roleDefinitions") => Kind::FindRoleOtherSub,
            "GET" if p.contains("/roleDefinitions/") => Kind::GetRoleDefinition,
            "GET" if p.ends_with("/roleAssignments") => Kind::ListAssignments,
            "PUT" if p.contains("/roleDefinitions/") => Kind::PutRoleDefinition,
            "PUT" if p.contains("/roleAssignments/") => Kind::PutAssignment,
            _ => Kind::Other,
        };
    }
    Kind::Other
}

fn service(c: &Call) -> &str {
    c.path.split('/').nth(1).unwrap_or("")
}

/// Does `b` need the result of `a` (a data dependency of the engine, or the plan rule)?
fn needs(b: &Call, a: &Call, calls: &[Call]) -> bool {
    use Kind::*;
    if a.seq == b.seq || a.end_ms >= b.end_ms {
        return false;
    }
    if a.kind == Token {
        // A Graph/ARM call needs the token its service did not have yet: a call of the same
        // service that ran alongside the token call had its token from the sign-in.
        let svc = service(b);
        let had_token = calls.iter().any(|c| {
            c.seq != a.seq && service(c) == svc && c.end_ms <= a.end_ms + 0.2 * LATENCY_MS as f64
        });
        return (svc == "graph" || svc == "arm") && !had_token;
    }
    // The plan rule: every write waits for every lookup.
    let a_lookup = !a.kind.is_write() && !a.after_write && a.kind != SignIn;
    if b.kind.is_write() && a_lookup {
        return true;
    }
    match b.kind {
        // Paged lists: the next page needs the previous page's nextLink.
        ListSubscriptions if a.kind == ListSubscriptions => true,
        // A role lookup at each other subscription needs the list of subscriptions.
        FindRoleOtherSub => a.kind == ListSubscriptions,
        GetServicePrincipal => matches!(a.kind, FindApp | GetApp | CreateApp),
        SpotGetCredentials if !b.after_write => a.kind == SpotListAccounts,
        SpotGetCredentials => a.kind == SetCredentials,
        ListAssignments => matches!(
            a.kind,
            GetServicePrincipal | FindRoleAtScope | CreateServicePrincipal | PutRoleDefinition
        ),
        CreateServicePrincipal | AddPassword => a.kind == CreateApp,
        PutAssignment => matches!(a.kind, CreateServicePrincipal | PutRoleDefinition),
        SetCredentials => matches!(a.kind, AddPassword | PutAssignment | CreateAccount),
        // The orphan check after the connection: the app as it is now.
        GetApp if b.after_write => a.kind == SetCredentials,
        RemovePassword => matches!(a.kind, GetApp | SetCredentials),
        _ => false,
    }
}

/// Longest chain (in calls) ending at each call, under `edge(later, earlier)`.
fn depths(calls: &[Call], edge: impl Fn(&Call, &Call) -> bool) -> Vec<(usize, Option<usize>)> {
    let mut d: Vec<(usize, Option<usize>)> = Vec::with_capacity(calls.len());
    for (i, b) in calls.iter().enumerate() {
        let mut best = (1, None);
        for (j, a) in calls[..i].iter().enumerate() {
            if edge(b, a) && d[j].0 + 1 > best.0 {
                best = (d[j].0 + 1, Some(j));
            }
        }
        d.push(best);
    }
    d
}

fn chain(d: &[(usize, Option<usize>)]) -> Vec<usize> {
    let Some((mut i, _)) = d.iter().enumerate().max_by_key(|(_, x)| x.0) else {
        return vec![];
    };
    let mut out = vec![i];
    while let Some(j) = d[i].1 {
        out.push(j);
        i = j;
    }
    out.reverse();
    out
}

struct Run {
    wall: Duration,
    bound_calls: usize,
    serial_calls: usize,
    calls: Vec<Call>,
    model: Vec<(usize, Option<usize>)>,
    serial: Vec<(usize, Option<usize>)>,
}

/// The simulator on its own runtime (its own threads), as a remote service would be: the
/// client's stalls (blocking file writes, CPU) do not delay the simulator's replies.
async fn start_sim(
    rt: &tokio::runtime::Handle,
    opts: SimOpts,
    dir: std::path::PathBuf,
) -> SimHandle {
    rt.spawn(async move { sim::start(&opts, &dir).await })
        .await
        .expect("simulator task")
        .expect("simulator starts")
}

/// The simulator's log of calls that ended after `since`, in time order.
fn calls_from_log(log: &serde_json::Value, since: OffsetDateTime) -> Vec<Call> {
    let mut calls = Vec::new();
    for e in log.as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        let Some(t) = sim::state::parse_time(&s("time")) else {
            continue;
        };
        let end_ms = (t - since).as_seconds_f64() * 1000.0;
        if end_ms < 0.0 {
            continue;
        }
        // Each service has its own origin: the log's path has no service prefix, so the
        // classification below gets `/{service}{path}`.
        let (method, path) = (s("method"), format!("/{}{}", s("service"), s("path")));
        calls.push(Call {
            seq: e["seq"].as_u64().unwrap_or(0),
            kind: classify(&method, &path),
            method,
            path,
            status: e["status"].as_u64().unwrap_or(0),
            end_ms,
            after_write: false,
        });
    }
    calls.sort_by(|a, b| a.end_ms.total_cmp(&b.end_ms));
    let mut wrote = false;
    for c in &mut calls {
        c.after_write = wrote;
        wrote |= c.kind.is_write();
    }
    calls
}

async fn one_run(print: bool, sim_rt: &tokio::runtime::Handle, replication: f64) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = SimOpts {
        latency: LATENCY_MS,
        approve_after: 0,
        replication_delay: replication,
        ..Default::default()
    };
    let sim = start_sim(sim_rt, opts, dir.path().join("sim")).await;
    let common = CommonOpts {
        state_dir: Some(dir.path().join("state")),
        ..Default::default()
    };
    let endpoints = (
        sim.endpoints(),
        Secret::new(sim.endpoints.spot_token.clone()),
    );
    let session = Session::build(&common, Some(endpoints), Arc::new(|_| {})).expect("session");
    session.auth.sign_in().await.expect("device-code sign-in");
    let target = Target {
        tenant_id: seed::CONTOSO_TENANT_ID.into(),
        subscription_id: seed::SUB_CONTOSO_PROD.into(),
        subscription_name: "Contoso Production".into(),
    };
    let settings = Settings::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });

    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    // What `apply --yes` does: the plan (every lookup), then exactly that plan.
    let plan = onboard::plan(&session, std::slice::from_ref(&target), &settings)
        .await
        .expect("plan");
    let mut run_report = onboard::apply(&session, &plan, tx).await;
    let report = run_report.reports.remove(0);
    let wall = t0.elapsed();
    let _ = drain.await;
    assert_eq!(
        report.verdict,
        Verdict::Connected,
        "apply must connect: {:?}",
        report.error
    );

    let log = sim.requests();
    sim.shutdown().await;
    let calls = calls_from_log(&log, started_at);
    let lat = LATENCY_MS as f64;
    // Serial in this run: `a` had finished before `b` reached the simulator. A call reaches the
    // simulator `latency` before it is logged; calls in flight together end within a few ms.
    let serial = depths(&calls, |b, a| a.end_ms <= b.end_ms - 0.8 * lat);
    let model = depths(&calls, |b, a| {
        needs(b, a, &calls) && a.end_ms <= b.end_ms - 0.8 * lat
    });
    let bound_calls = model.iter().map(|x| x.0).max().unwrap_or(0);
    let serial_calls = serial.iter().map(|x| x.0).max().unwrap_or(0);
    let run = Run {
        wall,
        bound_calls,
        serial_calls,
        calls,
        model,
        serial,
    };
    if print {
        print_log(&run);
    }
    run
}

fn print_log(run: &Run) {
    let lat = LATENCY_MS as f64;
    println!(
        "request log of the timed apply (ms after apply started; each call is in the simulator for {LATENCY_MS} ms before it ends):"
    );
    println!(
        "  {:>4} {:>6} {:>6} {:>3} {:>3} {:<22} {:<7} path",
        "seq", "start", "end", "dep", "ser", "kind", "status"
    );
    for (i, c) in run.calls.iter().enumerate() {
        let path: String = c.path.chars().take(110).collect();
        println!(
            "  {:>4} {:>6.0} {:>6.0} {:>3} {:>3} {:<22} {:<7} {} {}",
            c.seq,
            c.end_ms - lat,
            c.end_ms,
            run.model[i].0,
            run.serial[i].0,
            format!("{:?}", c.kind),
            c.status,
            c.method,
            path
        );
    }
    let names = |ix: &[usize]| {
        ix.iter()
            .map(|&i| format!("{:?}", run.calls[i].kind))
            .collect::<Vec<_>>()
            .join(" -> ")
    };
    println!(
        "  dependency chain ({} calls): {}",
        run.bound_calls,
        names(&chain(&run.model))
    );
    println!(
        "  serial chain in this run ({} calls): {}",
        run.serial_calls,
        names(&chain(&run.serial))
    );
    let waited: Vec<String> = run
        .calls
        .iter()
        .enumerate()
        .filter(|(i, _)| run.serial[*i].0 > run.model[*i].0)
        .map(|(i, c)| {
            format!(
                "{:?} (seq {}: depth {} needed, started at depth {})",
                c.kind, c.seq, run.model[i].0, run.serial[i].0
            )
        })
        .collect();
    if !waited.is_empty() {
        println!("  calls that started later than their dependencies allow:");
        for w in waited {
            println!("    {w}");
        }
    }
    println!();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let runs: usize = std::env::var("APPLY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let all_logs = std::env::var("APPLY_BENCH_LOG").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime for the simulator");
    println!(
        "apply of one subscription from nothing, simulator latency {LATENCY_MS} ms per call, {runs} runs"
    );
    let mut walls = Vec::new();
    let mut ratios = Vec::new();
    let mut chains = Vec::new();
    for i in 0..runs {
        let run = rt.block_on(one_run(i == 0 || all_logs, sim_rt.handle(), 0.0));
        let wall_ms = run.wall.as_secs_f64() * 1000.0;
        let bound_ms = run.bound_calls as f64 * LATENCY_MS as f64;
        println!(
            "run {:>2}: wall {wall_ms:>5.0} ms, {} calls, dependency chain {} calls (bound {bound_ms:.0} ms), serial chain of the run {} calls, wall/bound {:.3}",
            i + 1,
            run.calls.len(),
            run.bound_calls,
            run.serial_calls,
            wall_ms / bound_ms,
        );
        walls.push(wall_ms);
        ratios.push(wall_ms / bound_ms);
        chains.push(bound_ms);
    }
    let stats = |v: &mut Vec<f64>| {
        let m = median(v);
        (m, v[0], v[v.len() - 1])
    };
    let (m, lo, hi) = stats(&mut walls);
    println!("wall ms: median {m:.0}, min {lo:.0}, max {hi:.0}");
    let (m, lo, hi) = stats(&mut ratios);
    println!(
        "wall / dependency chain: median {m:.3}, min {lo:.3}, max {hi:.3} (target <= 1.2: {})",
        if m <= 1.2 { "met" } else { "NOT met" }
    );
    println!();
    // Propagation waits: with a replication delay D, Azure refuses the service principal's
    // first use until D after it was made, twice on the critical path (the principal after the
    // app, then Spot's validation after the assignment); the wait should end right after it.
    // Bound: 2 × D + the dependency chain of the runs above.
    let delay: f64 = std::env::var("APPLY_BENCH_REPLICATION")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let rep_runs: usize = std::env::var("APPLY_BENCH_REPLICATION_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if delay > 0.0 && rep_runs > 0 {
        let chain_ms = median(&mut chains);
        let bound_ms = 2.0 * delay * 1000.0 + chain_ms;
        println!(
            "apply with --replication-delay {delay} --latency {LATENCY_MS}: bound 2 x {delay} s + dependency chain {chain_ms:.0} ms = {bound_ms:.0} ms"
        );
        let mut rep_ratios = Vec::new();
        for i in 0..rep_runs {
            let run = rt.block_on(one_run(false, sim_rt.handle(), delay));
            let wall_ms = run.wall.as_secs_f64() * 1000.0;
            println!(
                "replication run {:>2}: wall {wall_ms:>6.0} ms, {} calls, wall/bound {:.3}",
                i + 1,
                run.calls.len(),
                wall_ms / bound_ms
            );
            rep_ratios.push(wall_ms / bound_ms);
        }
        let (m, lo, hi) = stats(&mut rep_ratios);
        println!(
            "wall / (2 x replication delay + chain): median {m:.3}, min {lo:.3}, max {hi:.3} (target <= 1.15: {})",
            if m <= 1.15 { "met" } else { "NOT met" }
        );
        println!();
    }
    rt.block_on(command_run(sim_rt.handle()));
}

/// `spot-connect apply --subscription … --yes` as a process against the same simulator: what the
/// command adds around the engine (sign-in, discovery, the plan it prints).
async fn command_run(sim_rt: &tokio::runtime::Handle) {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = SimOpts {
        latency: LATENCY_MS,
        approve_after: 0,
        ..Default::default()
    };
    let sim = start_sim(sim_rt, opts, dir.path().join("sim")).await;
    let since = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"))
        .env("SPOT_CONNECT_KEYRING", "off")
        .args(["apply", "--subscription", seed::SUB_CONTOSO_PROD, "--yes"])
        .arg("--endpoints")
        .arg(&sim.endpoints_path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env_remove("SPOTINST_TOKEN")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = calls_from_log(&sim.requests(), since);
    sim.shutdown().await;
    // Sign-in ends with the first token issued after the device code was asked for.
    let dc = calls
        .iter()
        .position(|c| c.path.ends_with("/devicecode"))
        .unwrap_or(0);
    let signed = calls
        .iter()
        .enumerate()
        .skip(dc)
        .find(|(_, c)| c.path.ends_with("/token") && c.status == 200)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let signed_at = calls.get(signed).map_or(0.0, |c| c.end_ms);
    let rest = &calls[signed + 1..];
    let lat = LATENCY_MS as f64;
    let serial = depths(rest, |b, a| a.end_ms <= b.end_ms - 0.8 * lat);
    let end = rest.last().map_or(signed_at, |c| c.end_ms);
    println!(
        "the `apply` command as a process: wall {wall:.0} ms; sign-in (device code, approved at once) {signed_at:.0} ms; then {} calls over {:.0} ms, serial chain {} calls",
        rest.len(),
        end - signed_at,
        serial.iter().map(|x| x.0).max().unwrap_or(0)
    );
    let mut seen: Vec<(Kind, usize)> = Vec::new();
    for c in rest.iter().filter(|c| !c.after_write && !c.kind.is_write()) {
        match seen.iter_mut().find(|(k, _)| *k == c.kind) {
            Some((_, n)) => *n += 1,
            None => seen.push((c.kind, 1)),
        }
    }
    let names = |ix: &[usize]| {
        ix.iter()
            .map(|&i| format!("{:?}", rest[i].kind))
            .collect::<Vec<_>>()
            .join(" -> ")
    };
    for (i, c) in rest.iter().enumerate() {
        let path: String = c.path.chars().take(100).collect();
        println!(
            "  {:>4} {:>6.0} {:>6.0} {:>3} {:<22} {:<4} {} {}",
            c.seq,
            c.end_ms - signed_at - lat,
            c.end_ms - signed_at,
            serial[i].0,
            format!("{:?}", c.kind),
            c.status,
            c.method,
            path
        );
    }
    println!("  serial chain after sign-in: {}", names(&chain(&serial)));
    println!(
        "  lookups before the first write, by kind: {}",
        seen.iter()
            .map(|(k, n)| format!("{k:?} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
