//! Issue 11 against the real binary and an in-process simulator: a kill storm, two runs at
//! once, bad input (exit codes, no panic, `--json` errors), the state dir's mode, the `sim`
//! endpoints file, and `rotate-secret` after a lost `removePassword` reply.

use crate::common::cli::{As, BIN, Sim, output, sim_wrapper};
use serde_json::Value;
use spot_connect::cli::SimOpts;
use spot_connect::sim::seed;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

const SUB: &str = seed::SUB_CONTOSO_PROD;

sim_wrapper! {
    /// A fresh simulator; runs as Contoso's CI operator (client secret: no device-code wait).
    Env
}

impl Env {
    async fn start(opts: SimOpts) -> Env {
        Env(Sim::start(opts).await)
    }

    /// `spot-connect <args>` as the CI operator, without the debug log (stderr as an operator
    /// sees it).
    fn cmd_in(&self, state_dir: &Path, args: &[&str]) -> Command {
        let mut c = self.0.cmd(As::CiOperator, state_dir, args);
        c.env_remove("SPOT_CONNECT_LOG");
        c
    }

    async fn run_in(&self, state_dir: &Path, args: &[&str]) -> (i32, String, String) {
        output(self.cmd_in(state_dir, args), Duration::from_secs(180))
            .await
            .parts()
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_in(&self.state_dir(), args).await
    }
}

fn ours(state: &Value) -> Vec<&Value> {
    state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "spot-connect"))
        })
        .collect()
}

/// What is wrong with the world for `sub`: not exactly one of each object of ours, or a secret
/// of ours that no Spot account holds. Empty when all is well.
fn problems(state: &Value, sub: &str) -> Vec<String> {
    let mut out = Vec::new();
    let apps = ours(state);
    if apps.len() != 1 {
        out.push(format!("{} apps of ours", apps.len()));
        return out;
    }
    let app_id = apps[0]["appId"].as_str().unwrap();
    let sps: Vec<&Value> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["appId"] == app_id)
        .collect();
    if sps.len() != 1 {
        out.push(format!("{} service principals", sps.len()));
    }
    let roles = state["roleDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["roleName"] == "Spot.io Custom Role")
        .count();
    if roles != 1 {
        out.push(format!("{roles} roles"));
    }
    let scope = format!("/subscriptions/{sub}");
    let assignments = state["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| sps.iter().any(|p| a["principalId"] == p["id"]) && a["scope"] == scope.as_str())
        .count();
    if assignments != 1 {
        out.push(format!("{assignments} role assignments at {scope}"));
    }
    let accounts: Vec<&Value> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["providerExternalId"] == sub)
        .collect();
    if accounts.len() != 1 {
        out.push(format!("{} Spot accounts for {sub}", accounts.len()));
    }
    let held: Vec<&Value> = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["credentials"]["clientId"] == app_id)
        .map(|a| &a["credentials"]["clientSecret"])
        .collect();
    for p in apps[0]["passwordCredentials"].as_array().unwrap() {
        if !held.contains(&&p["secretText"]) {
            out.push(format!(
                "secret {} ({}) is held by no Spot account",
                p["keyId"], p["displayName"]
            ));
        }
    }
    if held.is_empty() {
        out.push("no Spot account holds the app".into());
    }
    out
}

/// Kill storm: per trial, a fresh simulator, `apply` SIGKILLed at random moments a few times
/// (cumulatively), then one clean run: exactly one of each object, and no secret that no Spot
/// account holds. Bounded: TRIALS x KILLS runs of at most a few seconds each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_then_one_clean_run_leaves_one_of_each_and_no_orphan_secret() {
    use rand::{RngExt, SeedableRng};
    const TRIALS: usize = 6;
    const KILLS: usize = 4;
    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
    // Lost replies too (429/5xx/dropped connections on 10 % of calls): the cases where a
    // secret is made and its reply, or its removal's, goes missing.
    let opts = |seed: u64| SimOpts {
        latency: 40,
        fault_rate: 0.1,
        seed,
        ..Default::default()
    };
    // How long one whole run takes here (under this machine's load): kills land within it.
    let calibrate = Env::start(opts(99)).await;
    let c0 = Instant::now();
    let (code, _, stderr) = calibrate
        .run(&["apply", "--subscription", SUB, "--yes"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let whole = c0.elapsed().as_millis() as u64;
    calibrate.0.sim.shutdown().await;
    let mut failures = Vec::new();
    let mut killed_mid_run = 0;
    let t0 = Instant::now();
    for trial in 0..TRIALS {
        let env = Env::start(opts(trial as u64 + 1)).await;
        for _ in 0..KILLS {
            let mut child = env
                .cmd_in(&env.state_dir(), &["apply", "--subscription", SUB, "--yes"])
                .spawn()
                .unwrap();
            let at = Duration::from_millis(rng.random_range(20..whole.max(40)));
            tokio::select! {
                _ = child.wait() => {}
                _ = tokio::time::sleep(at) => {
                    child.start_kill().unwrap();
                    let _ = child.wait().await;
                    killed_mid_run += 1;
                }
            }
        }
        let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
        let mut p = problems(&env.sim.state(), SUB);
        if code != 0 {
            p.push(format!("clean run exit {code}: {stderr}"));
        }
        if !p.is_empty() {
            failures.push((trial, p));
        }
        env.0.sim.shutdown().await;
    }
    eprintln!(
        "kill storm: {TRIALS} trials x {KILLS} kills ({killed_mid_run} killed mid-run; a whole run takes {whole} ms), seed {seed_value}, {:?}, failures: {}",
        t0.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "seed {seed_value}: {failures:#?}");
    assert!(
        killed_mid_run >= TRIALS * KILLS / 2,
        "the kills landed mid-run ({killed_mid_run})"
    );
}

/// Two `apply` at once on one subscription with one state dir: the second waits or stops with
/// the holder's pid; never a second set of objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_at_once_same_state_dir_never_duplicates() {
    const TRIALS: usize = 4;
    let mut failures = Vec::new();
    let mut refused = 0;
    for trial in 0..TRIALS {
        let env = Env::start(SimOpts {
            latency: 30,
            seed: 100 + trial as u64,
            ..Default::default()
        })
        .await;
        let args = ["apply", "--subscription", SUB, "--yes"];
        let dir = env.state_dir();
        let (a, b) = tokio::join!(env.run_in(&dir, &args), env.run_in(&dir, &args));
        let mut p = problems(&env.sim.state(), SUB);
        for (code, _, stderr) in [&a, &b] {
            match code {
                0 => {}
                1 if stderr
                    .contains("another spot-connect is connecting this subscription (pid ") =>
                {
                    refused += 1
                }
                c => p.push(format!("exit {c}: {stderr}")),
            }
        }
        if a.0 != 0 && b.0 != 0 {
            p.push("neither run connected".into());
        }
        if !p.is_empty() {
            failures.push((trial, p));
        }
        env.0.sim.shutdown().await;
    }
    eprintln!(
        "two at once, same state dir: {TRIALS} trials, {refused} second runs refused, failures: {}",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// While another process holds the subscription's lock, `apply` waits briefly, then exits 1
/// naming the holder's pid, having written nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_stops_with_the_holders_pid_while_another_run_holds_the_lock() {
    let env = Env::start(SimOpts::default()).await;
    let held = spot_connect::onboard::lock::acquire(
        &env.state_dir(),
        seed::CONTOSO_TENANT_ID,
        SUB,
        Duration::ZERO,
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another spot-connect is connecting this subscription (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );
    assert!(t0.elapsed() >= spot_connect::onboard::lock::LOCK_WAIT);
    assert!(ours(&env.sim.state()).is_empty(), "nothing written");
    drop(held);
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    env.0.sim.shutdown().await;
}

/// What two runs with separate state dirs left, and how each ended: one of each object, no
/// secret that no Spot account holds, one run connected, and the other either connected too
/// (it found the first's objects), refused (it saw the first's fresh app), or stopped with
/// the race reported, having deleted the Spot account it made. `Err` says what is wrong.
fn settled(
    env: &Env,
    a: &(i32, String, String),
    b: &(i32, String, String),
) -> Result<&'static str, String> {
    let p = problems(&env.sim.state(), SUB);
    let said = |r: &(i32, String, String)| {
        r.0 == 1
            && r.2.contains("at the same moment")
            && r.2.contains("this run deleted its duplicate Spot account")
    };
    let refused = |r: &(i32, String, String)| {
        r.0 == 1
            && r.2
                .contains("another spot-connect is connecting this subscription")
    };
    let show = || format!("{p:?}\na: {} {}\nb: {} {}", a.0, a.2, b.0, b.2);
    if !p.is_empty() || (a.0 != 0 && b.0 != 0) {
        return Err(show());
    }
    match (a.0, b.0) {
        (0, 0) => Ok("both connected"),
        _ if said(a) || said(b) => Ok("race settled"),
        _ if refused(a) || refused(b) => Ok("refused"),
        _ => Err(show()),
    }
}

/// Two `apply` at once with separate state dirs, started at the same moment: both may pass the
/// checks before either has made anything, so both make a Spot account for the subscription
/// (the app and its service principal are upserted by name: one of each). The run whose
/// account is the later waits for the other's to connect, deletes its own and the secret it
/// gave it, and fails naming both: the world ends with one of each object, and no run hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_at_once_separate_state_dirs_settle_on_one_of_each() {
    const TRIALS: usize = 3;
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for trial in 0..TRIALS {
        let env = Env::start(SimOpts {
            latency: 30,
            seed: 200 + trial as u64,
            ..Default::default()
        })
        .await;
        let args = ["apply", "--subscription", SUB, "--yes"];
        let (da, db) = (env.dir.path().join("a"), env.dir.path().join("b"));
        let (a, b) = tokio::join!(env.run_in(&da, &args), env.run_in(&db, &args));
        match settled(&env, &a, &b) {
            Ok(o) => outcomes.push(o),
            Err(e) => failures.push((trial, e)),
        }
        env.0.sim.shutdown().await;
    }
    eprintln!(
        "two at once, separate state dirs: {TRIALS} trials, {outcomes:?}, failures: {}",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The same race with one run held back: its first Spot call (creating its account) waits
/// 1.5 s in the simulator, so the other connects first. The held-back run's account is the
/// later: it connects, sees the other connected to the subscription, deletes only the account
/// Spot returned to it and the secret it made, and says so without advising to delete
/// anything: one of each again. Neither run removes the other's secret (issue 16 §5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_held_back_in_the_race_gives_way_deleting_only_its_own_account() {
    let env = Env::start(SimOpts {
        latency: 30,
        seed: 250,
        ..Default::default()
    })
    .await;
    env.sim.delay("POST", "/setup/account", 1, 1500);
    let args = ["apply", "--subscription", SUB, "--yes"];
    let (da, db) = (env.dir.path().join("a"), env.dir.path().join("b"));
    let t0 = Instant::now();
    let (a, b) = tokio::join!(env.run_in(&da, &args), env.run_in(&db, &args));
    let took = t0.elapsed();
    assert_eq!(settled(&env, &a, &b), Ok("race settled"));
    let behind = if a.0 == 0 { &b } else { &a };
    assert!(
        behind.2.contains("the one Spot returned to this run")
            && behind.2.contains("Nothing else is to be deleted")
            && !behind
                .2
                .contains("was removed while this run was handing it to Spot"),
        "{}",
        behind.2
    );
    // Well inside the propagation budget (180 s).
    assert!(took < Duration::from_secs(60), "{took:?}");
    env.0.sim.shutdown().await;
}

/// A second run with another state dir, started once the first has registered its app: no
/// refusal (the cloud is the truth, issue 16 §1); it converges on the first's objects, or the
/// Spot account race is settled, and the world ends with one of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_another_state_dir_during_another_converges_on_its_objects() {
    let env = Env::start(SimOpts {
        latency: 40,
        ..Default::default()
    })
    .await;
    let args = ["apply", "--subscription", SUB, "--yes"];
    let first = env.cmd_in(&env.state_dir(), &args).output();
    let second = async {
        let t0 = Instant::now();
        while ours(&env.sim.state()).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the first run registers its app"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.run_in(&env.dir.path().join("other-state"), &args).await
    };
    let (first, b) = tokio::join!(first, second);
    let first = first.unwrap();
    let a = (
        first.status.code().unwrap_or(-1),
        String::new(),
        String::from_utf8_lossy(&first.stderr).into_owned(),
    );
    assert!(!b.2.contains("another --state-dir"), "{}", b.2);
    match settled(&env, &a, &b) {
        Ok("both connected" | "race settled") => {}
        other => panic!("{other:?}"),
    }
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_before_sign_in_without_a_panic_and_json_says_why() {
    let env = Env::start(SimOpts::default()).await;
    // Not a GUID: exit 2, nothing sent anywhere.
    let before = env.sim.requests().as_array().map_or(0, Vec::len);
    let (code, stdout, stderr) = env
        .run(&["apply", "--subscription", "prod", "--yes", "--json"])
        .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a subscription id"), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("a JSON error object");
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("prod"),
        "{v}"
    );
    assert_eq!(env.sim.requests().as_array().map_or(0, Vec::len), before);

    // A run that fails before its report (an unknown subscription): a JSON error object.
    let (code, stdout, stderr) = env
        .run(&[
            "apply",
            "--subscription",
            "00000000-dead-4000-8000-000000000000",
            "--yes",
            "--json",
        ])
        .await;
    assert_eq!(code, 1, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("a JSON error object");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("unknown"),
        "{v}"
    );

    // A malformed endpoint URL: a usage error naming the file and field, not a panic (101).
    let mut f: Value =
        serde_json::from_str(&std::fs::read_to_string(&env.sim.endpoints_path).unwrap()).unwrap();
    f["graph"] = serde_json::json!("https://");
    let bad = env.dir.path().join("bad-endpoints.json");
    std::fs::write(&bad, f.to_string()).unwrap();
    let out = Command::new(BIN)
        .env("SPOT_CONNECT_KEYRING", "off")
        .args(["apply", "--subscription", SUB, "--yes", "--endpoints"])
        .arg(&bad)
        .arg("--state-dir")
        .arg(env.state_dir())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad-endpoints.json")
            && stderr.contains("`graph`")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    env.0.sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_state_dir_keeps_its_mode_and_a_shared_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(SimOpts::default()).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let kept = env.dir.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, stderr) = env.run_in(&kept, &["plan", "--subscription", SUB]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode(&kept), 0o755, "an existing dir is not chmodded");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(mode(&kept.join("spot-connect.log")) & 0o777, 0o600);

    // World-writable, not sticky: another user could swap our files. Refused, left as it is.
    let shared = env.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, stderr) = env.run_in(&shared, &["plan", "--subscription", SUB]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(mode(&shared), 0o777);
    assert!(
        stderr.contains("writable by everyone")
            && stderr.contains("not sticky")
            && stderr.contains(&*shared.to_string_lossy()),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written"
    );

    let fresh = env.dir.path().join("new/state");
    let (code, _, stderr) = env.run_in(&fresh, &["plan", "--subscription", SUB]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode(&fresh), 0o700, "a missing dir is made 0700");
    env.0.sim.shutdown().await;
}

/// A victim file behind a planted link: its bytes and mode before and after the run.
#[cfg(unix)]
struct Victim {
    path: PathBuf,
    bytes: Vec<u8>,
}

#[cfg(unix)]
impl Victim {
    fn new(dir: &Path, name: &str) -> Victim {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        let bytes =
            format!("{name}: the victim's own bytes, which no run may touch\n").into_bytes();
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Victim { path, bytes }
    }

    /// Bytes left, of how many; panics when the file changed in any way.
    fn check(&self, what: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let now = std::fs::read(&self.path).unwrap();
        let mode = std::fs::metadata(&self.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            now,
            self.bytes,
            "{what}: the file behind the link was written ({} bytes left of {})",
            now.len(),
            self.bytes.len()
        );
        assert_eq!(mode, 0o644, "{what}: the file behind the link was chmodded");
        format!(
            "{what}: {} of {} bytes left, mode 0644",
            now.len(),
            self.bytes.len()
        )
    }
}

/// Issue 17 §1: a link planted where spot-connect writes (the log, a lock file, the locks,
/// state and reports directories, a state file) is never written through: the run refuses with
/// the path named, and the file behind the link keeps every byte and its mode.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_symlink_is_never_written_through() {
    use spot_connect::onboard::lock::lock_path;
    use spot_connect::onboard::state::state_path;
    use std::os::unix::fs::symlink;
    let env = Env::start(SimOpts::default()).await;
    let victims = env.dir.path().join("victims");
    std::fs::create_dir(&victims).unwrap();
    let tenant = seed::CONTOSO_TENANT_ID;
    let mut figures = vec![];
    let fresh = |name: &str| {
        let d = env.dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };

    // The log.
    let d = fresh("log");
    let v = Victim::new(&victims, "log-target");
    symlink(&v.path, d.join("spot-connect.log")).unwrap();
    let (code, _, stderr) = env.run_in(&d, &["plan", "--subscription", SUB]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("spot-connect.log") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    figures.push(v.check("spot-connect.log"));

    // A lock file.
    let d = fresh("lock");
    let lock = lock_path(&d, tenant, SUB);
    std::fs::create_dir(lock.parent().unwrap()).unwrap();
    let v = Victim::new(&victims, "lock-target");
    symlink(&v.path, &lock).unwrap();
    let (code, _, stderr) = env
        .run_in(&d, &["apply", "--yes", "--subscription", SUB])
        .await;
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&*lock.to_string_lossy()) && stderr.contains("symbolic link"),
        "{stderr}"
    );
    figures.push(v.check("locks/<tenant>_<subscription>.lock"));
    let st = env.sim.state();
    assert!(ours(&st).is_empty(), "nothing was written in the cloud");

    // The locks directory itself.
    let d = fresh("locksdir");
    let elsewhere = fresh("elsewhere");
    symlink(&elsewhere, d.join("locks")).unwrap();
    let (code, _, stderr) = env
        .run_in(&d, &["apply", "--yes", "--subscription", SUB])
        .await;
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("locks") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    figures.push(format!(
        "locks -> another dir: {} files made there",
        std::fs::read_dir(&elsewhere).unwrap().count()
    ));

    // The state directory and a state file.
    let d = fresh("statedir");
    let elsewhere2 = fresh("elsewhere2");
    symlink(&elsewhere2, d.join("state")).unwrap();
    let (code, _, stderr) = env
        .run_in(&d, &["apply", "--yes", "--subscription", SUB])
        .await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_dir(&elsewhere2).unwrap().count(), 0);

    let d = fresh("statefile");
    let sp = state_path(&d, tenant, SUB);
    std::fs::create_dir(sp.parent().unwrap()).unwrap();
    let v = Victim::new(&victims, "state-target");
    symlink(&v.path, &sp).unwrap();
    // Neither read nor written through (a rename into place would replace it, not follow it).
    let (code, _, stderr) = env
        .run_in(&d, &["apply", "--yes", "--subscription", SUB])
        .await;
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&*sp.to_string_lossy()) && stderr.contains("symbolic link"),
        "{stderr}"
    );
    figures.push(v.check("state/<tenant>_<subscription>.json"));

    // The reports directory: the report is not saved there, and the run says why.
    let d = fresh("reportsdir");
    let elsewhere3 = fresh("elsewhere3");
    symlink(&elsewhere3, d.join("reports")).unwrap();
    let (_, _, stderr) = env
        .run_in(&d, &["apply", "--yes", "--subscription", SUB])
        .await;
    assert!(
        stderr.contains("could not save the report") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere3).unwrap().count(), 0);

    eprintln!("planted links:\n  {}", figures.join("\n  "));
    env.0.sim.shutdown().await;
}

/// Issue 17 §1, across users: the victim (`nobody`, run with setpriv) points --state-dir at a
/// shared sticky directory where another user (root, here) planted `spot-connect.log` as a link
/// to the victim's own file; and a state dir of ours holding a log file another user made.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_directory_or_file_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    if spot_connect::safe_fs::our_uid() != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv to act as two users");
        return;
    }
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The victim's own file.
    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let v = Victim::new(&home, "precious");
    chown(&home, Some(65534), Some(65534)).unwrap();
    chown(&v.path, Some(65534), Some(65534)).unwrap();
    // The shared sticky directory (like /tmp), with the attacker's link in it.
    let shared = top.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    symlink(&v.path, shared.join("spot-connect.log")).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["plan", "--auth", "client-secret", "--subscription", SUB])
            .arg("--state-dir")
            .arg(&shared)
            .env_remove("SPOTINST_TOKEN")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&*shared.to_string_lossy()) && stderr.contains("not to you (uid 65534)"),
        "{stderr}"
    );
    let figure = v.check("nobody's file behind root's link in a sticky dir");

    // A state dir of ours where another user made the log file: refused, not appended to.
    let mine = top.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    let planted = Victim::new(&mine, "spot-connect.log");
    chown(&planted.path, Some(65534), Some(65534)).unwrap();
    let env = Env::start(SimOpts::default()).await;
    let (code, _, stderr) = env.run_in(&mine, &["plan", "--subscription", SUB]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    let figure2 = planted.check("a log file of uid 65534 in our dir");
    eprintln!("{figure}\n{figure2}");
    env.0.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_with_a_relative_state_dir_writes_an_absolute_ca_cert() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env("SPOT_CONNECT_KEYRING", "off")
        .args(["sim", "--state-dir", "rel/sim"])
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the endpoints line")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let ca = PathBuf::from(v["ca_cert"].as_str().unwrap());
    assert!(ca.is_absolute(), "{ca:?}");
    assert!(
        std::fs::read(&ca)
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_secret_after_a_lost_remove_password_reply_succeeds_and_status_sees_no_orphan() {
    let env = Env::start(SimOpts::default()).await;
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    // The old secret's removal is applied, its reply lost: the retry hears "No password
    // credential found", which is the removal having worked.
    env.sim.drop_after("POST", "removePassword", 1);
    let (code, _, stderr) = env
        .run(&["rotate-secret", "--subscription", SUB, "--yes"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let state = env.sim.state();
    assert_eq!(problems(&state, SUB), Vec::<String>::new());
    assert_eq!(
        ours(&state)[0]["passwordCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, _, stderr) = env.run(&["status", "--subscription", SUB]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("held by no Spot account"), "{stderr}");
    env.0.sim.shutdown().await;
}

/// An orphan a killed run left (added, never recorded): `status` reports it, `apply` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_and_apply_removes_a_secret_no_spot_account_holds() {
    let env = Env::start(SimOpts::default()).await;
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    // Another secret of ours, as a run killed right after addPassword leaves it: the intent
    // (its end date) recorded, the keyId not.
    use spot_connect::onboard::state::State;
    let st = State::load(&env.state_dir(), seed::CONTOSO_TENANT_ID, SUB).unwrap();
    assert!(
        st.secret_intents.is_empty(),
        "a clean run settles its intent"
    );
    let app = ours(&env.sim.state())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let http = spot_connect::http::Http::new(Some(&env.sim.ca_pem())).unwrap();
    let endpoints = env.sim.endpoints();
    let auth = spot_connect::azure::auth::Auth::client_secret(
        &endpoints,
        &http,
        spot_connect::azure::auth::ServicePrincipal {
            tenant_id: seed::CONTOSO_TENANT_ID.into(),
            client_id: seed::CI_OPERATOR_CLIENT_ID.into(),
            secret: spot_connect::secret::Secret::new(seed::CI_OPERATOR_SECRET),
        },
        None,
    );
    let graph = spot_connect::azure::graph::Graph::new(
        http,
        &endpoints.graph,
        auth,
        seed::CONTOSO_TENANT_ID,
    );
    let end = time::OffsetDateTime::from_unix_timestamp(
        (time::OffsetDateTime::now_utc() + time::Duration::days(300)).unix_timestamp(),
    )
    .unwrap();
    let orphan = graph
        .add_password(
            &app,
            &spot_connect::onboard::naming::shared_secret_name(seed::CONTOSO_TENANT_ID),
            end,
        )
        .await
        .unwrap()
        .credential
        .key_id;
    assert_eq!(problems(&env.sim.state(), SUB).len(), 1);
    // No record of it here: it may be another run's (a state dir elsewhere, a Spot token that
    // sees its account): kept, and named as not checked.
    let (_, _, stderr) = env.run(&["status", "--subscription", SUB]).await;
    assert!(
        stderr.contains(&format!("client secret {orphan} of"))
            && stderr.contains("could not be checked: no state file here records it"),
        "{stderr}"
    );
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("no Spot account holds"), "{stderr}");
    assert_eq!(problems(&env.sim.state(), SUB).len(), 1, "kept");
    // The killed run's intent: the end date it chose.
    let mut st = State::load(&env.state_dir(), seed::CONTOSO_TENANT_ID, SUB).unwrap();
    st.secret_intents = vec![end.unix_timestamp()];
    st.save(&env.state_dir()).unwrap();
    let (_, _, stderr) = env.run(&["status", "--subscription", SUB]).await;
    assert!(
        stderr.contains("held by no Spot account") && stderr.contains(&orphan),
        "{stderr}"
    );
    // And in `--json`, on the subscription's entry.
    let (_, stdout, _) = env.run(&["status", "--subscription", SUB, "--json"]).await;
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["subscriptions"][0]["unheld_secrets"],
        serde_json::json!([orphan]),
        "{v}"
    );
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no Spot account holds"), "{stderr}");
    assert_eq!(problems(&env.sim.state(), SUB), Vec::<String>::new());
    let st = State::load(&env.state_dir(), seed::CONTOSO_TENANT_ID, SUB).unwrap();
    assert!(st.secret_intents.is_empty(), "the intent is settled");
    assert!(st.orphan_key_ids.is_empty(), "{:?}", st.orphan_key_ids);
    let (_, stdout, _) = env.run(&["status", "--subscription", SUB, "--json"]).await;
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["subscriptions"][0].get("unheld_secrets").is_none(), "{v}");
    env.0.sim.shutdown().await;
}

/// Throttling replies with `Retry-After` are announced as they happen, on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_waits_are_shown_live() {
    let env = Env::start(SimOpts {
        fault_rate: 0.3,
        seed: 7,
        ..Default::default()
    })
    .await;
    let (code, _, stderr) = env.run(&["apply", "--subscription", SUB, "--yes"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("asks to wait 1 s"),
        "a 429/503 with Retry-After: 1 is announced: {stderr}"
    );
    assert_eq!(problems(&env.sim.state(), SUB), Vec::<String>::new());
    env.0.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Issue 17 §2, §3: the `az` child of `--auth azure-cli`
// ---------------------------------------------------------------------------------------------

/// A directory with an executable `az` (the script given) to put first on PATH.
#[cfg(unix)]
fn fake_az(dir: &Path, script: &str) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let az = bin.join("az");
    std::fs::write(&az, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap()
}

/// `spot-connect <args> --auth azure-cli` with secrets of ours in its environment.
#[cfg(unix)]
fn az_run(state_dir: &Path, path: &std::ffi::OsStr, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("SPOT_CONNECT_KEYRING", "off");
    c.args(args)
        .args(["--auth", "azure-cli", "--state-dir"])
        .arg(state_dir)
        .env("PATH", path)
        .env("SPOTINST_TOKEN", "spot-token-of-the-operator")
        .env("AZURE_CLIENT_SECRET", "client-secret-of-ci")
        .env("AZURE_CLIENT_ID", "c1")
        .env("AZURE_CONFIG_DIR", state_dir.join("azure"))
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Whether process `pid` has ended (gone, or a zombie waiting for its reaper).
#[cfg(unix)]
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// The `az` a run starts and what that starts, as the fake records them: `<sh pid> <sleep pid>`.
#[cfg(unix)]
async fn az_pids(file: &Path) -> (u32, u32) {
    for _ in 0..600 {
        if let Ok(s) = std::fs::read_to_string(file)
            && let Some((a, b)) = s.trim().split_once(' ')
        {
            return (a.parse().unwrap(), b.parse().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fake az never started");
}

/// A hanging `az`: the run gives up after SPOT_CONNECT_AZ_TIMEOUT naming the command, and kills
/// it and what it started; the child's environment (read from /proc) holds only allowed names.
/// Then a run interrupted (SIGTERM) while `az` hangs takes `az` with it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_az_is_stopped_with_its_group_and_sees_only_the_environment_it_needs() {
    let d = tempfile::tempdir().unwrap();
    let pids = d.path().join("pids");
    let path = fake_az(
        d.path(),
        &format!(
            "sleep 600 &\necho \"$$ $!\" > {}.tmp && mv {0}.tmp {0}\nwait",
            pids.display()
        ),
    );
    let state = d.path().join("state");
    let t0 = Instant::now();
    let child = az_run(&state, &path, &["plan", "--subscription", SUB])
        .env("SPOT_CONNECT_AZ_TIMEOUT", "6")
        .spawn()
        .unwrap();
    let (az, sleeper) = az_pids(&pids).await;
    // The child's environment, from /proc while it runs.
    let environ = std::fs::read(format!("/proc/{az}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map_or(kv.to_string(), |(k, _)| k.to_string())
        })
        .collect();
    names.sort();
    for secret in ["SPOTINST_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_ID"] {
        assert!(
            !names.iter().any(|n| n == secret),
            "{secret} reached az: {names:?}"
        );
    }
    for needed in [
        "PATH",
        "AZURE_CONFIG_DIR",
        "AZURE_CORE_COLLECT_TELEMETRY",
        "LC_ALL",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} missing: {names:?}"
        );
    }
    // What sh itself sets (PWD, SHLVL, OLDPWD after `cd`) besides ours.
    for n in &names {
        assert!(
            spot_connect::azure::az::allowed(n)
                || ["PWD", "OLDPWD", "SHLVL", "_"].contains(&n.as_str()),
            "{n} reached az: {names:?}"
        );
    }
    eprintln!("the az child's environment: {}", names.join(" "));

    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the run ends")
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`az account get-access-token")
            && stderr.contains("did not finish within 6 s"),
        "{stderr}"
    );
    assert!(!stderr.contains("client-secret-of-ci") && !stderr.contains("spot-token-of"));
    for _ in 0..50 {
        if ended(az) && ended(sleeper) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended(az), "az {az} still runs");
    assert!(ended(sleeper), "what az started ({sleeper}) still runs");
    eprintln!(
        "hanging az: the run ended after {:.1} s (timeout 6 s), az and its child gone",
        took.as_secs_f64()
    );

    // Interrupted while az hangs (default timeout, 30 s): az goes with the run.
    std::fs::remove_file(&pids).unwrap();
    let child = az_run(&state, &path, &["plan", "--subscription", SUB])
        .spawn()
        .unwrap();
    let (az, sleeper) = az_pids(&pids).await;
    let t1 = Instant::now();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id().unwrap() as i32, libc::SIGTERM);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the run ends on SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    for _ in 0..50 {
        if ended(az) && ended(sleeper) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended(az) && ended(sleeper),
        "az ({az}, {sleeper}) outlived the interrupted run"
    );
    eprintln!(
        "SIGTERM while az hangs: the run ended in {:.1} s, az and its child gone",
        t1.elapsed().as_secs_f64()
    );
}

/// An unsigned JWT with these claims (what the fake az hands out).
#[cfg(unix)]
fn jwt(claims: Value) -> String {
    let b = |v: &Value| {
        use std::fmt::Write;
        // base64url without padding, by hand (no base64 crate in the tests).
        let bytes = serde_json::to_vec(v).unwrap();
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..=c.len() {
                let _ = write!(out, "{}", A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.c2ln",
        b(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b(&claims)
    )
}

/// A token `az` returns for another tenant than the one asked for is refused, naming both.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_az_for_another_tenant_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let answer = |tid: &str| {
        let token = jwt(serde_json::json!({"tid": tid, "upn": "ops@contoso.com", "exp": exp}));
        format!(
            "cat <<'JSON'\n{{\"accessToken\": \"{token}\", \"expires_on\": {exp}, \"tokenType\": \"Bearer\"}}\nJSON"
        )
    };
    let env = Env::start(SimOpts::default()).await;
    let endpoints = env.sim.endpoints_path.to_string_lossy().into_owned();
    let wrong = fake_az(&d.path().join("wrong"), &answer(seed::FABRIKAM_TENANT_ID));
    let args = [
        "plan",
        "--tenant",
        seed::CONTOSO_TENANT_ID,
        "--subscription",
        SUB,
        "--endpoints",
        &endpoints,
    ];
    let out = az_run(&d.path().join("s1"), &wrong, &args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "returned a token for tenant {}, not for the tenant asked for ({})",
            seed::FABRIKAM_TENANT_ID,
            seed::CONTOSO_TENANT_ID
        )),
        "{stderr}"
    );
    // The right tenant passes the check (and goes on to sign in).
    let right = fake_az(&d.path().join("right"), &answer(seed::CONTOSO_TENANT_ID));
    let out = az_run(&d.path().join("s2"), &right, &args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("returned a token for tenant")
            && stderr.contains("signed in as ops@contoso.com"),
        "{stderr}"
    );
    env.0.sim.shutdown().await;
}
