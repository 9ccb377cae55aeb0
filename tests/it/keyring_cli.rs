//! The sign-in kept between commands (issue 21 §13): `plan` then `apply` with the device-code
//! flow ask for one device code when the OS keyring works; `logout` removes it and the next
//! command asks again; a kept sign-in the identity platform refuses is forgotten and the
//! operator signs in; `SPOT_CONNECT_KEYRING=off` keeps nothing. The refresh token never reaches
//! the state dir, the log, stdout/stderr or any process's argv. Each test has a keyring service
//! of its own (and removes it at the end), so parallel tests share nothing and the developer's
//! keyring is never touched.

use crate::common::cli::{As, Out, Redact, Sim, output, sends};
use spot_connect::azure::device_code::AZURE_CLI_CLIENT_ID;
use spot_connect::azure::keyring::{KeptSignIn, Keyring, sign_in_key};
use spot_connect::secret::Secret;
use spot_connect::sim::{SimOpts, seed};
use std::path::Path;
use std::time::Duration;

/// A keyring service for one test, removed when the test ends (passed or not).
struct Service {
    name: String,
}

impl Service {
    /// None (with the reason printed) when this machine's keyring cannot be used: a container
    /// whose seccomp policy refuses keyctl, say.
    fn new(test: &str) -> Option<Service> {
        let name = format!("spot-connect-test-{test}-{}", uuid::Uuid::new_v4());
        let probe = Keyring::os(&name);
        probe.store(
            "probe",
            &KeptSignIn {
                refresh_token: Secret::new("probe"),
                username: None,
                home_tenant: None,
            },
        );
        if probe.load("probe").is_none() {
            eprintln!("skipped: no usable OS keyring on this machine (keyutils refused?)");
            return None;
        }
        let _ = probe.forget_all();
        Some(Service { name })
    }

    fn keyring(&self) -> Keyring {
        Keyring::os(&self.name)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.keyring().forget_all();
    }
}

fn fast() -> SimOpts {
    SimOpts {
        approve_after: 0,
        ..SimOpts::default()
    }
}

async fn run(sim: &Sim, service: &str, args: &[&str]) -> Out {
    // `logout` takes no onboarding option (nothing of the simulator to name).
    let mut c = if args.first() == Some(&"logout") {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-connect"));
        c.env("SPOT_CONNECT_KEYRING", service)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    } else {
        sim.cmd(As::Operator, &sim.state_dir(), args)
    };
    c.env("SPOT_CONNECT_KEYRING", service);
    output(c, Duration::from_secs(120)).await
}

fn device_codes(sim: &Sim) -> usize {
    sends(&sim.sim, "POST", "/devicecode")
}

/// Every file under `dir`, as text.
fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&read_tree(&p));
            } else if let Ok(t) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&t));
            }
        }
    }
    out
}

/// Every process's argv on this machine that contains `needle` (while a run goes on).
fn argv_with(needle: &str) -> Vec<String> {
    let mut hits = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let argv = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if argv.contains(needle) {
                hits.push(argv);
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_apply_ask_for_one_device_code_and_logout_makes_the_next_ask_again() {
    let Some(service) = Service::new("one-code") else {
        return;
    };
    let sim = Sim::start(fast()).await;
    let sub = seed::SUB_CONTOSO_PROD;

    let plan = run(&sim, &service.name, &["plan", "--subscription", sub]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(device_codes(&sim), 1, "{}", plan.stderr);
    assert!(plan.stderr.contains("enter the code"), "{}", plan.stderr);

    // apply: no device code; the argv of every process is watched while it runs.
    let key = sign_in_key(
        &sim.sim.endpoints.login,
        AZURE_CLI_CLIENT_ID,
        "organizations",
    );
    let kept = service.keyring().load(&key).expect("plan kept its sign-in");
    let rt = kept.refresh_token.expose().to_string();
    assert!(
        rt.starts_with("sim-rt-"),
        "the simulator's refresh token is kept"
    );
    assert_eq!(kept.username.as_deref(), Some(seed::OPERATOR_UPN));
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        let rt = rt.clone();
        std::thread::spawn(move || {
            let mut hits = vec![];
            let mut looks = 0;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                hits.extend(argv_with(&rt));
                looks += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (hits, looks)
        })
    };
    let apply = run(
        &sim,
        &service.name,
        &["apply", "--subscription", sub, "--yes"],
    )
    .await;
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let (hits, looks) = watcher.join().unwrap();
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        device_codes(&sim),
        1,
        "apply used the kept sign-in: {}",
        apply.stderr
    );
    // What the operator reads of the two sign-ins: a device code, then the kept sign-in.
    let sign_in = |err: &str| {
        let lines: Vec<&str> = err
            .lines()
            .take_while(|l| !l.starts_with("Tenant "))
            .collect();
        lines.join("\n") + "\n"
    };
    let mut r = Redact::new(sim.dir.path(), &sim.sim);
    let t = r.transcript(
        &["plan", "--subscription", sub],
        plan.code,
        "",
        &sign_in(&plan.stderr),
    ) + "(…)\n\n"
        + &r.transcript(
            &["apply", "--subscription", sub, "--yes"],
            apply.code,
            "",
            &sign_in(&apply.stderr),
        )
        + "(…)\n";
    insta::assert_snapshot!("plan_then_apply_sign_in", t);
    assert!(looks > 1, "argv looked at while apply ran");
    assert!(
        hits.is_empty(),
        "a refresh token in argv: {} processes",
        hits.len()
    );

    let status = run(&sim, &service.name, &["status", "--subscription", sub]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(device_codes(&sim), 1, "status too");

    // Whatever the keyring holds now (refresh tokens rotate), no refresh token of the
    // simulator is in the state dir (log and reports included) or the output.
    let now = service.keyring().load(&key).expect("still kept");
    let on_disk = read_tree(&sim.state_dir());
    assert!(on_disk.contains("signed in with the sign-in kept in the keyring"));
    let all = format!(
        "{on_disk}{}{}{}{}{}{}",
        plan.stdout, plan.stderr, apply.stdout, apply.stderr, status.stdout, status.stderr
    );
    for t in [rt.as_str(), now.refresh_token.expose(), "sim-rt-"] {
        assert!(!all.contains(t), "a refresh token on disk or in the output");
    }

    let logout = run(&sim, &service.name, &["logout"]).await;
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(
        logout.stderr.contains(&format!(
            "signed out: the sign-in kept in the keyring (service {}) is removed",
            service.name
        )),
        "{}",
        logout.stderr
    );
    assert!(service.keyring().load(&key).is_none(), "logout removed it");
    let again = run(&sim, &service.name, &["plan", "--subscription", sub]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(device_codes(&sim), 2, "after logout: a device code again");
    let second = run(&sim, &service.name, &["logout", "--json"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let doc: serde_json::Value = serde_json::from_str(&second.stdout).expect("one JSON document");
    assert_eq!(doc["command"], "logout");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["keyring"]["service"], service.name.as_str());
    assert_eq!(doc["keyring"]["removed"], true, "{doc:#}");
    assert!(doc["error"].is_null(), "{doc:#}");
    let third = run(&sim, &service.name, &["logout"]).await;
    assert_eq!(third.code, 0);
    assert!(
        third.stderr.contains("nothing to remove"),
        "{}",
        third.stderr
    );
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_sign_in_that_is_refused_is_forgotten_and_the_operator_signs_in() {
    let Some(service) = Service::new("refused") else {
        return;
    };
    let sim = Sim::start(fast()).await;
    let key = sign_in_key(
        &sim.sim.endpoints.login,
        AZURE_CLI_CLIENT_ID,
        "organizations",
    );
    service.keyring().store(
        &key,
        &KeptSignIn {
            refresh_token: Secret::new("sim-rt-revoked-long-ago"),
            username: Some(seed::OPERATOR_UPN.into()),
            home_tenant: Some(seed::CONTOSO_TENANT_ID.into()),
        },
    );
    let plan = run(
        &sim,
        &service.name,
        &["plan", "--subscription", seed::SUB_CONTOSO_PROD],
    )
    .await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(device_codes(&sim), 1, "signed in with a device code");
    let log = std::fs::read_to_string(sim.state_dir().join("spot-connect.log")).unwrap();
    assert!(
        log.contains("the kept sign-in was refused: forgotten, signing in again"),
        "{log}"
    );
    let now = service
        .keyring()
        .load(&key)
        .expect("the new sign-in is kept");
    assert_ne!(now.refresh_token.expose(), "sim-rt-revoked-long-ago");
    sim.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_off_keeps_nothing_and_a_bad_service_name_is_refused() {
    let sim = Sim::start(fast()).await;
    let args = ["plan", "--subscription", seed::SUB_CONTOSO_PROD];
    for _ in 0..2 {
        let out = run(&sim, "off", &args).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    assert_eq!(device_codes(&sim), 2, "off: each command signs in");
    let out = run(&sim, "off", &["logout"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("nothing to remove"), "{}", out.stderr);

    let out = run(&sim, "bad\u{7}name", &args).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("SPOT_CONNECT_KEYRING must be `off` or a keyring service name"),
        "{}",
        out.stderr
    );
    assert_eq!(device_codes(&sim), 2, "refused before any sign-in");
    sim.sim.shutdown().await;
}

/// A keyring that cannot be used (here: the child's session keyring revoked before it starts,
/// as a container's policy might refuse keyutils): the log says so once per run, and the
/// sign-in goes on with a device code, as without a keyring.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_keyring_is_said_once_in_the_log_and_each_command_signs_in() {
    let sim = Sim::start(fast()).await;
    let service = format!("spot-connect-test-unusable-{}", uuid::Uuid::new_v4());
    let args = ["plan", "--subscription", seed::SUB_CONTOSO_PROD];
    for _ in 0..2 {
        let mut c = sim.cmd(As::Operator, &sim.state_dir(), &args);
        c.env("SPOT_CONNECT_KEYRING", &service);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                // KEYCTL_JOIN_SESSION_KEYRING (a new anonymous one), then KEYCTL_REVOKE it.
                if libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) < 0
                    || libc::syscall(libc::SYS_keyctl, 3, -3i32) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = output(c, Duration::from_secs(120)).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains("enter the code"), "{}", out.stderr);
        assert!(!out.stderr.contains("kept sign-in"), "{}", out.stderr);
    }
    assert_eq!(device_codes(&sim), 2, "each command signed in");
    let log = std::fs::read_to_string(sim.state_dir().join("spot-connect.log")).unwrap();
    if let Some(l) = log.lines().find(|l| l.contains("no usable keyring")) {
        eprintln!("the log says: {l}");
    }
    assert_eq!(
        log.matches("no usable keyring").count(),
        2,
        "once per run: {log}"
    );
    assert!(
        Keyring::os(&service)
            .load(&sign_in_key(
                &sim.sim.endpoints.login,
                AZURE_CLI_CLIENT_ID,
                "organizations"
            ))
            .is_none()
    );
    sim.sim.shutdown().await;
}
