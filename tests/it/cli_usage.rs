//! The command line's conventions (issue 21 §11): options that cannot go together are refused
//! before anything runs (exit 2, usage) with a sentence that says why, and `plan
//! --detailed-exitcode` tells "nothing to change" (0) from "changes" (4) as Terraform does.

use crate::common::cli::{As, BIN, Sim};
use spot_connect::sim::{SimOpts, seed};
use std::process::Command;
use std::time::Duration;

fn usage(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("SPOTINST_TOKEN")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_with_a_command_is_refused_instead_of_going_to_real_azure() {
    for cmd in ["apply", "plan", "status", "remove", "rotate-secret"] {
        let (code, err) = usage(&["--demo", cmd]);
        assert_eq!(code, 2, "--demo {cmd}: {err}");
        assert!(
            err.contains("--demo") && err.contains("spot-connect sim"),
            "--demo {cmd}: says why and what to do: {err}"
        );
    }
}

#[test]
fn one_subscription_and_all_of_them_are_refused_together() {
    let (code, err) = usage(&[
        "plan",
        "--subscription",
        "5c000001-0000-4000-8000-0000000000a1",
        "--all-subscriptions",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--subscription") && err.contains("--all-subscriptions"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_detailed_exitcode_is_4_with_changes_and_0_without() {
    let env = Sim::start(SimOpts::default()).await;
    let sub = ["--subscription", seed::SUB_CONTOSO_PROD];
    let limit = Duration::from_secs(180);
    let plan = |extra: &'static [&'static str]| {
        let mut a = vec!["plan"];
        a.extend(sub);
        a.extend(extra);
        a
    };
    let out = env
        .run(As::CiOperator, &plan(&["--detailed-exitcode"]), limit)
        .await;
    assert_eq!(
        out.code, 4,
        "a fresh subscription has changes: {}",
        out.stderr
    );
    let out = env.run(As::CiOperator, &plan(&[]), limit).await;
    assert_eq!(out.code, 0, "without the flag a plan with changes exits 0");
    let mut apply = vec!["apply", "--yes"];
    apply.extend(sub);
    let out = env.run(As::CiOperator, &apply, limit).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The log's path is printed with the report's (issue 21 §11).
    let report = out
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("report: "));
    let log = out
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("log: "));
    assert!(report.is_some(), "{}", out.stderr);
    assert!(
        log.is_some_and(|l| l.ends_with("spot-connect.log")),
        "{}",
        out.stderr
    );
    let out = env
        .run(As::CiOperator, &plan(&["--detailed-exitcode"]), limit)
        .await;
    assert_eq!(out.code, 0, "connected: nothing to change: {}", out.stderr);
    env.sim.shutdown().await;
}

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_describes_tenant_and_managed_identity_and_lists_examples_and_exit_codes() {
    let help = stdout_of(&["--help"]);
    // The description is on the line after the flag in the long help.
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--tenant"));
    let flag = lines.next().unwrap_or("");
    let described = lines.next().unwrap_or("");
    assert!(
        flag.contains("--tenant") && described.contains("tenant") && described.len() > 20,
        "--tenant is described: {help}"
    );
    assert!(
        help.contains("managed-identity:"),
        "managed-identity is described: {help}"
    );
    assert!(
        help.contains("EXAMPLES:") && help.contains("spot-connect --demo"),
        "{help}"
    );
    assert!(help.contains("EXIT CODES:"), "{help}");
    for (code, what) in spot_connect::cli::EXIT_CODES {
        assert!(
            help.contains(&format!("{code:<4}{what}")),
            "exit code {code}: {help}"
        );
    }
}

#[test]
fn the_man_page_has_examples_and_no_internal_notes() {
    let man = stdout_of(&["man"]);
    assert!(man.contains(".SH EXAMPLES"), "{man}");
    assert!(
        man.contains("spot\\-connect \\-\\-demo") || man.contains("spot-connect --demo"),
        "{man}"
    );
    let sim = stdout_of(&["sim", "--help"]);
    for (what, text) in [("man", &man), ("sim --help", &sim)] {
        assert!(!text.contains("clap id"), "{what} leaks an internal note");
    }
}

#[test]
fn sim_says_next_how_to_point_the_wizard_at_it() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["sim", "--state-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let err = child.stderr.take().expect("stderr");
    let next = BufReader::new(err)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("next:"));
    let _ = child.kill();
    let _ = child.wait();
    let next = next.expect("a next: line");
    let endpoints = dir.path().join("endpoints.json");
    assert!(
        next.contains(&format!("spot-connect --endpoints {}", endpoints.display())),
        "{next}"
    );
}

#[test]
fn a_bogus_log_level_is_refused_naming_it_and_rust_log_is_read() {
    for var in ["RUST_LOG", "SPOT_CONNECT_LOG"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(BIN)
            .args(["status", "--state-dir"])
            .arg(dir.path())
            .env_remove("SPOT_CONNECT_LOG")
            .env_remove("RUST_LOG")
            .env(var, "verbose")
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(var) && err.contains("verbose"), "{var}: {err}");
        assert!(
            !dir.path().join("spot-connect.log").exists(),
            "refused before anything"
        );
    }
    // Directives RUST_LOG understands are taken: the run gets past the log (to its own usage
    // error) and the log file exists.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["status", "-v", "--state-dir"])
        .arg(dir.path())
        .env_remove("SPOT_CONNECT_LOG")
        .env("RUST_LOG", "info,spot_connect::http=debug")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("RUST_LOG"), "{err}");
    assert!(err.contains("--all-subscriptions is required"), "{err}");
    assert!(dir.path().join("spot-connect.log").exists());
}

#[test]
fn no_command_without_a_terminal_or_with_term_dumb_points_at_the_plain_commands() {
    for term in ["dumb", "xterm-256color"] {
        let dir = tempfile::tempdir().expect("tempdir");
        // stdin/stdout are pipes here: not a terminal.
        let out = Command::new(BIN)
            .args(["--state-dir"])
            .arg(dir.path())
            .env("TERM", term)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "TERM={term}: {err}");
        assert!(
            err.contains("spot-connect plan") && err.contains("spot-connect apply"),
            "TERM={term}: {err}"
        );
        if term == "dumb" {
            assert!(err.contains("TERM=dumb"), "{err}");
        }
    }
}

/// A hint is data the engine hands to both front ends (issue 21 §6): a role name that is not
/// ours blocks the plan with `Hint::ChooseRoleName`; the commands word it with their flag
/// (`--role-name`), the wizard with its field, and no command-line advice.
#[test]
fn a_name_clash_is_worded_by_each_front_end_in_its_own_terms() {
    use crate::common::ui::{at_subscription, enter, feed, now, plan, render};
    use spot_connect::app::update::Action;
    use spot_connect::error::Hint;
    use spot_connect::onboard::PlanView;
    use spot_connect::onboard::model::{PlanAction, Step};
    let mut p = plan();
    let role = p
        .items
        .iter_mut()
        .find(|i| i.step == Step::CustomRole)
        .expect("a custom role in the plan");
    role.action = PlanAction::Blocked;
    role.reason = "a role named Spot.io Custom Role exists but was not made by spot-connect: it is never changed".into();
    role.hint = Some(Hint::ChooseRoleName);
    let p = PlanView::new(p.subscriptions.clone(), p.items);

    let cli = spot_connect::commands::plan_text(&p);
    let line = cli
        .lines()
        .find(|l| l.contains("a role named"))
        .expect("the blocked role's line");
    assert!(
        line.contains("choose another name with --role-name"),
        "{cli}"
    );

    let mut s = at_subscription();
    feed(&mut s, 5.0, vec![enter()]);
    let g = s.plan_gen;
    feed(
        &mut s,
        6.0,
        vec![
            Action::Planned {
                generation: g,
                result: Ok(p),
            },
            enter(),
            enter(),
        ],
    );
    let screen = render(&s, 120, 40, now(7.0));
    let words = screen
        .replace(['│', '┌', '┐', '└', '┘', '─'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("edit the Role name field to choose another name"),
        "{screen}"
    );
    assert!(!screen.contains("--"), "no command-line advice: {screen}");
}

/// The keys every `--json` document has (shapes.md, docs/json.md).
const ENVELOPE: &[&str] = &[
    "schema_version",
    "command",
    "exit_code",
    "subscriptions",
    "summary",
    "duration",
    "error",
];

/// Parses a command's stdout as its one JSON document and checks the envelope: the command's
/// name, the process's exit code, `subscriptions` an array naming `subs` (each with its tenant),
/// `duration` an object of `*_ms` integers, `summary` an object. Returns the top-level keys.
fn envelope(out: &crate::common::cli::Out, command: &str, subs: &[&str]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{command}: one JSON document ({e}):\n{}", out.stdout));
    for k in ENVELOPE {
        assert!(v.get(k).is_some(), "{command}: no {k}: {v:#}");
    }
    assert_eq!(v["schema_version"], 1, "{command}");
    assert_eq!(v["command"], command);
    assert_eq!(v["exit_code"], out.code, "{command}: the process's code");
    let list = v["subscriptions"]
        .as_array()
        .expect("subscriptions: an array");
    let mut named: Vec<&str> = list
        .iter()
        .map(|s| {
            assert!(s["tenant_id"].is_string(), "{command}: {s:#}");
            s["subscription_id"].as_str().expect("subscription_id")
        })
        .collect();
    named.sort();
    named.dedup();
    let mut want = subs.to_vec();
    want.sort();
    assert_eq!(named, want, "{command}: {v:#}");
    let duration = v["duration"].as_object().expect("duration: an object");
    assert!(duration.contains_key("total_ms"), "{command}");
    for (k, ms) in duration {
        assert!(k.ends_with("_ms") && ms.is_u64(), "{command}: {k}: {ms}");
    }
    assert!(v["summary"].is_object(), "{command}");
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// One JSON shape for every command whatever the number of subscriptions (issue 21 §9): plan,
/// apply, status, rotate-secret, reconcile and remove, each for one subscription and for two,
/// give the same top-level keys, `subscriptions` always an array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_one_json_shape_for_one_subscription_or_two() {
    let limit = Duration::from_secs(240);
    let runs: [&[&str]; 6] = [
        &["plan"],
        &["apply", "--yes"],
        &["status"],
        &["rotate-secret", "--yes"],
        &["reconcile"],
        &["remove", "--yes"],
    ];
    let mut shapes: Vec<Vec<Vec<String>>> = vec![];
    for subs in [
        &[seed::SUB_CONTOSO_PROD][..],
        &[seed::SUB_CONTOSO_PROD, seed::SUB_CONTOSO_DEV][..],
    ] {
        let env = Sim::start(SimOpts::default()).await;
        let mut keys = vec![];
        for run in runs {
            let mut args: Vec<&str> = run.to_vec();
            for s in subs {
                args.extend(["--subscription", s]);
            }
            args.push("--json");
            let out = env.run(As::CiOperator, &args, limit).await;
            assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
            keys.push(envelope(&out, run[0], subs));
        }
        shapes.push(keys);
        env.sim.shutdown().await;
    }
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(
            shapes[0][i], shapes[1][i],
            "{}: the same keys for 1 and 2 subscriptions",
            run[0]
        );
    }
}

/// A failure's document says what kind it was, and its `exit_code` is the process's: a usage
/// error (2) and an unknown subscription (1), before any report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_prints_the_same_envelope_with_error_kind_and_the_exit_code() {
    let env = Sim::start(SimOpts::default()).await;
    let limit = Duration::from_secs(120);
    for (args, kind, code) in [
        (&["plan", "--json"][..], "usage", 2),
        (
            &["apply", "--yes", "--json", "--subscription", "prod"][..],
            "usage",
            2,
        ),
        (
            &[
                "plan",
                "--json",
                "--subscription",
                "00000000-dead-4000-8000-000000000000",
            ][..],
            "not_found",
            1,
        ),
    ] {
        let out = env.run(As::CiOperator, args, limit).await;
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        envelope(&out, args[0], &[]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["error"]["kind"], kind, "{args:?}: {v:#}");
        assert!(v["error"]["message"].is_string(), "{v:#}");
        assert!(v["error"]["hints"].is_array(), "{v:#}");
        // Printed once on stderr too.
        let message = v["error"]["message"].as_str().unwrap();
        let first = message.lines().next().unwrap();
        assert_eq!(out.stderr.matches(first).count(), 1, "{}", out.stderr);
    }
    env.sim.shutdown().await;
}

/// Progress as an operator reads it in a CI log (issue 21 §10): a wait for Azure to propagate
/// is one line when it starts and one when it ends, never a line per attempt; the summary's
/// time and 429 count are the run's (the simulator's request log counts the 429s it sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_one_line_each_and_the_summary_counts_the_runs_429s() {
    let env = Sim::start(SimOpts {
        replication_delay: 4.0,
        fault_rate: 0.15,
        seed: 11,
        ..SimOpts::default()
    })
    .await;
    let t0 = std::time::Instant::now();
    let out = env
        .run(
            As::CiOperator,
            &[
                "apply",
                "--yes",
                "--subscription",
                seed::SUB_CONTOSO_PROD,
                "--subscription",
                seed::SUB_CONTOSO_DEV,
                "--json",
            ],
            Duration::from_secs(300),
        )
        .await;
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("(attempt 2,"), "{}", out.stderr);
    assert!(!out.stderr.contains("answered 0"), "{}", out.stderr);
    let waits: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("waiting for Azure to propagate"))
        .collect();
    assert!(!waits.is_empty(), "the delay makes a wait: {}", out.stderr);
    // Per subscription and step: one line at the start, one at the end ("waited N s").
    let mut per: std::collections::HashMap<String, usize> = Default::default();
    for w in &waits {
        let key = w.split(": waited").next().unwrap().to_string();
        *per.entry(key).or_default() += 1;
    }
    assert!(per.values().all(|n| *n <= 2), "{per:#?}\n{}", out.stderr);
    assert!(
        waits.iter().any(|w| w.contains(": waited ")),
        "{}",
        out.stderr
    );

    let summary = out
        .stderr
        .lines()
        .find(|l| l.contains(" connected, ") && l.contains("429 replies: "))
        .expect("the summary line");
    let n429: usize = summary
        .split("429 replies: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("a count");
    let sent = env
        .sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(n429, sent, "{summary}");
    assert!(sent > 0, "the faults include 429s: {summary}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["replies_429"], sent, "{doc:#}");
    let secs: f64 = summary
        .split(" in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("seconds");
    assert!(
        // The summary rounds to a tenth of a second.
        secs <= wall + 0.05 && secs >= wall * 0.6,
        "the run's time {secs} s, measured {wall:.1} s: {summary}"
    );
    env.sim.shutdown().await;
}

/// A dropped connection is said as one, not as "answered 0".
#[test]
fn a_dropped_connection_is_not_an_answer() {
    let n = spot_connect::http::WaitNotice {
        service: spot_connect::error::Service::Arm,
        status: 0,
        wait: Duration::from_secs(2),
        asked: false,
        attempt: 1,
    };
    let m = n.message();
    assert!(!m.contains("answered"), "{m}");
    assert!(m.contains("connection dropped"), "{m}");
}

/// The identity platform's refusal reads cleanly (issue 21 §10): its description without the
/// run-together "Trace ID: … Correlation ID: … Timestamp: …" trailer, one request id, printed
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_reads_cleanly_with_one_request_id() {
    let env = Sim::start(SimOpts::default()).await;
    let mut c = env.cmd(
        As::CiOperator,
        &env.state_dir(),
        &["plan", "--subscription", seed::SUB_CONTOSO_PROD],
    );
    c.env("AZURE_CLIENT_SECRET", "not-the-secret");
    let out = crate::common::cli::output(c, Duration::from_secs(120)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("AADSTS7000215"), "{}", out.stderr);
    for noise in ["Trace ID", "Correlation ID", "Timestamp:"] {
        assert!(!out.stderr.contains(noise), "{noise}: {}", out.stderr);
    }
    assert_eq!(
        out.stderr.matches("request id").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("AADSTS7000215").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-secret"), "{}", out.stderr);
    env.sim.shutdown().await;
}

/// A name that does not resolve says DNS; a proxy in the way is named with HTTPS_PROXY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_or_proxy_failure_says_so_and_names_https_proxy() {
    let env = Sim::start(SimOpts::default()).await;
    let mut f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&env.sim.endpoints_path).unwrap()).unwrap();
    f["login"] = serde_json::json!("https://login.spot-connect-test.invalid");
    let nowhere = env.dir.path().join("nowhere-endpoints.json");
    std::fs::write(&nowhere, f.to_string()).unwrap();
    let args = ["plan", "--subscription", seed::SUB_CONTOSO_PROD];
    let mut c = tokio::process::Command::new(crate::common::cli::BIN);
    c.args(args)
        .args(["--auth", "client-secret", "--endpoints"])
        .arg(&nowhere)
        .arg("--state-dir")
        .arg(env.state_dir())
        .env_remove("SPOTINST_TOKEN")
        .env("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID)
        .env("AZURE_CLIENT_ID", seed::CI_OPERATOR_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", seed::CI_OPERATOR_SECRET)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    let out = crate::common::cli::output(c, Duration::from_secs(120)).await;
    // The endpoints file is checked before anything else: a usage error naming the field.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot resolve login.spot-connect-test.invalid")
            && out.stderr.contains("DNS")
            && out.stderr.contains("HTTPS_PROXY"),
        "{}",
        out.stderr
    );

    // A proxy that refuses: named, with the variable that set it.
    let mut c = env.cmd(As::CiOperator, &env.state_dir(), &args);
    c.env("HTTPS_PROXY", "http://user:pw@127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = crate::common::cli::output(c, Duration::from_secs(120)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("proxy http://127.0.0.1:9 (HTTPS_PROXY)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("pw@"),
        "no proxy password: {}",
        out.stderr
    );
    env.sim.shutdown().await;
}

/// `sim`, `man` and `completions` list only their own options (issue 21 §12): the onboarding
/// options belong to the onboarding commands (and the wizard), which still take them before
/// or after their name.
#[test]
fn sim_man_and_completions_list_only_their_own_options() {
    // The options a --help lists: each line's first long option.
    let listed = |help: &str| -> Vec<String> {
        help.lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .map(|w| w.trim_end_matches(','))
                    .find(|w| w.starts_with("--"))
                    .filter(|_| l.trim_start().starts_with('-'))
                    .map(str::to_string)
            })
            .collect()
    };
    let onboarding = [
        "--subscription",
        "--all-subscriptions",
        "--role-name",
        "--app-name",
        "--auth",
        "--json",
        "--yes",
        "--take-over",
        "--endpoints",
    ];
    for cmd in ["sim", "man", "completions"] {
        let help = stdout_of(&[cmd, "--help"]);
        let options = listed(&help);
        for o in onboarding {
            assert!(
                !options.iter().any(|x| x == o),
                "{cmd} --help lists {o}:\n{help}"
            );
        }
    }
    let sim = stdout_of(&["sim", "--help"]);
    assert!(
        sim.contains("--listen") && sim.contains("--state-dir"),
        "{sim}"
    );
    for cmd in [
        "apply",
        "plan",
        "status",
        "remove",
        "rotate-secret",
        "reconcile",
    ] {
        let help = stdout_of(&[cmd, "--help"]);
        let options = listed(&help);
        for o in onboarding {
            assert!(
                options.iter().any(|x| x == o),
                "{cmd} --help lacks {o}:\n{help}"
            );
        }
    }
    // The wizard's own: the options with no command.
    assert!(stdout_of(&["--help"]).contains("--role-name"));
    // Given before and after the command, still refused together.
    let (code, err) = usage(&[
        "--subscription",
        "5c000001-0000-4000-8000-0000000000a1",
        "plan",
        "--all-subscriptions",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--all-subscriptions"), "{err}");
}

/// `-v` writes debug lines to the log file and `--debug` trace lines; without them (and
/// without SPOT_CONNECT_LOG / RUST_LOG) neither (issue 21 §11/§12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_and_debug_raise_the_log_files_level() {
    let env = Sim::start(SimOpts::default()).await;
    let mut levels = vec![];
    for (i, flag) in [None, Some("-v"), Some("--debug")].into_iter().enumerate() {
        let dir = env.dir.path().join(format!("state-{i}"));
        let mut args = vec!["plan", "--subscription", seed::SUB_CONTOSO_PROD];
        args.extend(flag);
        let mut c = env.cmd(As::CiOperator, &dir, &args);
        c.env_remove("SPOT_CONNECT_LOG").env_remove("RUST_LOG");
        let out = crate::common::cli::output(c, Duration::from_secs(120)).await;
        assert_eq!(out.code, 0, "{flag:?}: {}", out.stderr);
        let log = std::fs::read_to_string(spot_connect::logging::log_path(&dir)).unwrap();
        levels.push((log.contains(" DEBUG "), log.contains(" TRACE ")));
    }
    assert_eq!(
        levels,
        [(false, false), (true, false), (true, true)],
        "(debug lines, trace lines) without a flag, with -v, with --debug"
    );
    env.sim.shutdown().await;
}
