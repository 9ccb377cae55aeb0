//! The real binary in a real terminal: `spot-connect --demo` in a detached tmux session (80x24),
//! driven with Enter only, checked against the simulator's own state; and SIGTERM / SIGHUP in
//! the middle of a run leave the terminal usable and the next run resumes.
//!
//! Needs tmux (CI installs it). Each test uses its own tmux server socket and temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "tmux is required for the end-to-end UI test: install it (apt-get install tmux)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        Tmux {
            socket: format!("spotc-{tag}-{}", std::process::id()),
            dir,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts run `n` of the wizard in a fresh 80x24 window. After it exits, its exit code and
    /// `stty -a` of the pane's terminal are written to files.
    fn start(&self, n: u32) {
        self.start_with(n, "--demo");
    }

    /// Like `start`, with other arguments than `--demo` (e.g. `--endpoints FILE`).
    fn start_with(&self, n: u32, args: &str) {
        let command = format!("{BIN} {args} --state-dir {}", self.state_dir().display());
        self.start_command(n, &command);
    }

    /// Runs `command` (a shell command line) as run `n`.
    fn start_command(&self, n: u32, command: &str) {
        let d = self.dir.path().display();
        let script = format!(
            "echo $$ > {d}/pid{n}; {command} ; echo $? > {d}/exit{n}.tmp; \
             stty -a > {d}/stty{n}; mv {d}/exit{n}.tmp {d}/exit{n}; sleep 600"
        );
        // `exec` is not used so the shell survives to report; the wizard is the shell's child.
        let name = format!("run{n}");
        let mut args = vec!["new-session", "-d", "-s", &name, "-x", "80", "-y", "24"];
        if n > 1 {
            args = vec!["new-window", "-t", "run1", "-n", &name];
        }
        let mut cmd = args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        cmd.push(format!(
            "env -u NO_COLOR -u SPOTINST_TOKEN TERM=xterm-256color sh -c '{script}'"
        ));
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(&cmd)
            .output()
            .expect("tmux new-session");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if n > 1 {
            self.tmux(&[
                "resize-window",
                "-t",
                &format!("run1:{name}"),
                "-x",
                "80",
                "-y",
                "24",
            ]);
        }
    }

    fn target(n: u32) -> String {
        if n == 1 {
            "run1".into()
        } else {
            format!("run1:run{n}")
        }
    }

    fn screen(&self, n: u32) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &Tmux::target(n)])
    }

    fn send(&self, n: u32, key: &str) {
        self.tmux(&["send-keys", "-t", &Tmux::target(n), key]);
    }

    /// Presses Enter until `until` is on screen; panics after `limit`.
    fn enter_until(&self, n: u32, until: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen(n);
            if s.contains(until) {
                return s;
            }
            assert!(
                t0.elapsed() < limit,
                "`{until}` did not show within {limit:?}; the screen:\n{s}"
            );
            if s.contains("spot-connect") {
                self.send(n, "Enter");
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    }

    /// Waits (pressing nothing) until `until` is on screen; panics after `limit`.
    fn wait_for(&self, n: u32, until: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen(n);
            if s.contains(until) {
                return s;
            }
            assert!(
                t0.elapsed() < limit,
                "`{until}` did not show within {limit:?}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the run's shell reports the wizard's exit code.
    fn exit_code(&self, n: u32) -> i32 {
        let f = self.dir.path().join(format!("exit{n}"));
        let t0 = Instant::now();
        while !f.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the wizard did not exit; screen:\n{}",
                self.screen(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(&f)
            .unwrap()
            .trim()
            .parse()
            .expect("exit code")
    }

    /// The terminal was restored: canonical mode and echo are back on.
    fn assert_terminal_restored(&self, n: u32) {
        let stty =
            std::fs::read_to_string(self.dir.path().join(format!("stty{n}"))).expect("stty output");
        let words: Vec<&str> = stty.split_whitespace().collect();
        assert!(
            words.contains(&"icanon"),
            "icanon is off after the wizard: {stty}"
        );
        assert!(
            words.contains(&"echo"),
            "echo is off after the wizard: {stty}"
        );
        assert!(
            !self.screen(n).contains("Steps"),
            "the alternate screen was left: {}",
            self.screen(n)
        );
    }

    /// The pid of the wizard (the child of the run's shell).
    fn wizard_pid(&self, n: u32) -> String {
        let shell = std::fs::read_to_string(self.dir.path().join(format!("pid{n}"))).unwrap();
        let out = Command::new("pgrep")
            .args(["-P", shell.trim()])
            .output()
            .expect("pgrep");
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        pids.split_whitespace()
            .next()
            .expect("the wizard runs")
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn inspect_state(state_dir: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(state_dir.join("demo/endpoints.json")).expect("endpoints.json");
    let f: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ca = std::fs::read(f["ca_cert"].as_str().unwrap()).expect("CA file");
    spot_connect::http::install_crypto_provider();
    let http = spot_connect::http::Http::new(Some(&ca)).expect("client");
    let url = format!(
        "{}/state",
        f["inspect"].as_str().unwrap().trim_end_matches('/')
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        http.client()
            .get(&url)
            .send()
            .await
            .expect("GET inspect/state")
            .json()
            .await
            .expect("json")
    })
}

/// The subscription id on the Done pane ("│   subscription <id>").
fn done_subscription(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .find_map(|l| l.strip_prefix("subscription "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the Done pane names the subscription")
        .to_string()
}

fn assert_connected(state: &serde_json::Value, sub: &str) {
    let account = state["spot"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["credentials"]["subscriptionId"] == sub)
        .unwrap_or_else(|| panic!("no Spot account holds credentials for {sub}: {state:#}"));
    let client_id = account["credentials"]["clientId"].as_str().unwrap();
    let app = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == client_id)
        .expect("the app exists");
    let secret = account["credentials"]["clientSecret"].as_str().unwrap();
    assert!(
        app["passwordCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["secretText"] == secret),
        "Spot holds a secret of the app"
    );
    let sp = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["appId"] == client_id)
        .expect("its SP");
    let scope = format!("/subscriptions/{sub}");
    assert!(
        state["roleAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["principalId"] == sp["id"]
                && r["scope"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&scope))
                && r["principalType"] == "ServicePrincipal"),
        "the SP holds a role on the subscription"
    );
}

#[test]
fn demo_with_enter_only_ends_connected() {
    let t = Tmux::new("enter");
    t.start(1);
    let done = t.enter_until(1, "is connected to Spot", Duration::from_secs(90));
    println!("--- Done pane (80x24) ---\n{done}");
    let sub = done_subscription(&done);
    assert_connected(&inspect_state(&t.state_dir()), &sub);
    // Esc: the start screen; ↓ Enter: Status, where the subscription just onboarded is connected.
    t.send(1, "Escape");
    t.wait_for(1, "What do you want to do?", Duration::from_secs(10));
    t.send(1, "Down");
    t.send(1, "Enter");
    let status = t.wait_for(1, "✓ connected", Duration::from_secs(30));
    println!("--- Status (80x24) ---\n{status}");
    let row = status
        .lines()
        .find(|l| l.contains("✓ connected"))
        .expect("a connected row");
    assert!(
        row.contains(&sub[..8]),
        "the connected row is the onboarded subscription {sub}: {row}"
    );
    t.send(1, "q");
    assert_eq!(t.exit_code(1), 0);
    t.assert_terminal_restored(1);
    // What was written and where its report and the log are, after the full screen.
    let after = t.wait_for(1, "report: ", Duration::from_secs(10));
    println!("--- after the wizard ---\n{after}");
    assert!(
        after.contains("is connected to") /* lines wrap at 80 */ && after.contains("log: "),
        "{after}"
    );
}

/// The picker's rows that can be chosen ("[ ]" or "[x]"), and which of them is highlighted.
fn picker_rows(screen: &str) -> (Vec<String>, Option<usize>) {
    let rows: Vec<String> = screen
        .lines()
        .filter(|l| l.contains("[ ]") || l.contains("[x]"))
        .map(str::to_string)
        .collect();
    let at = rows.iter().position(|l| l.contains("› ["));
    (rows, at)
}

#[test]
fn the_picker_s_end_home_and_a_keys_work_in_a_real_terminal() {
    let t = Tmux::new("keys");
    t.start(1);
    t.enter_until(1, "Space select", Duration::from_secs(60));
    // The discovery is in: two tenants' headers.
    let screen = t.wait_for(1, "Tenant Fabrikam", Duration::from_secs(30));
    println!("--- picker (80x24) ---\n{screen}");
    let (rows, _) = picker_rows(&screen);
    assert!(rows.len() >= 3, "{screen}");
    let last = rows.len() - 1;
    t.send(1, "End");
    let wait_at = |want: usize| {
        let t0 = Instant::now();
        loop {
            let s = t.screen(1);
            if picker_rows(&s).1 == Some(want) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "row {want} not highlighted:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_at(last);
    t.send(1, "Home");
    wait_at(0);
    t.send(1, "G");
    wait_at(last);
    t.send(1, "a");
    let t0 = Instant::now();
    loop {
        let (rows, _) = picker_rows(&t.screen(1));
        if rows.iter().all(|l| l.contains("[x]")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a did not select all: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.send(1, "q");
    // (What quitting the picker exits with is not this test's point.)
    let _ = t.exit_code(1);
    t.assert_terminal_restored(1);
}

#[test]
fn sigterm_and_sighup_restore_the_terminal_and_a_next_run_resumes() {
    let t = Tmux::new("signals");
    for (n, sig) in [(1, "-TERM"), (2, "-HUP")] {
        t.start(n);
        // Walk to the confirmation screen; the second run also starts writing before the signal.
        t.enter_until(n, "Review: what will be written", Duration::from_secs(60));
        if n == 2 {
            t.send(n, "Enter");
            std::thread::sleep(Duration::from_millis(300));
        }
        let pid = t.wizard_pid(n);
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
        assert_eq!(t.exit_code(n), 130, "interrupted");
        t.assert_terminal_restored(n);
        // What state things are in: nothing written before the review's Enter; after it, what
        // the run wrote so far (or, had it finished in time, what it connected).
        let said = |s: &str| {
            if n == 1 {
                s.contains("nothing was changed in Azure or Spot")
            } else {
                s.contains("onboarding stopped before it finished") || s.contains("report: ")
            }
        };
        let t0 = Instant::now();
        while !said(&t.screen(n)) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "run {n} did not say what state things are in:\n{}",
                t.screen(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("--- after {sig} ---\n{}", t.screen(n));
    }
    t.start(3);
    let done = t.enter_until(3, "is connected to Spot", Duration::from_secs(90));
    let sub = done_subscription(&done);
    assert_connected(&inspect_state(&t.state_dir()), &sub);
    t.send(3, "Enter");
    assert_eq!(t.exit_code(3), 0);
}

/// An SSH drop right after `q`: the terminal disappears while the wizard is shutting down. It
/// must still exit (it used to wait forever for its input thread, spinning on the dead tty).
#[test]
fn the_wizard_exits_when_its_terminal_closes_right_after_q() {
    let t = Tmux::new("hangup-q");
    let state = t.state_dir();
    let cmd = format!("{BIN} --demo --state-dir {}", state.display());
    let out = Command::new("tmux")
        .args([
            "-L",
            &t.socket,
            "new-session",
            "-d",
            "-s",
            "hq",
            "-x",
            "80",
            "-y",
            "24",
        ])
        .arg(&cmd)
        .output()
        .expect("tmux new-session");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    while !t
        .tmux(&["capture-pane", "-p", "-t", "hq"])
        .contains("What do you want to do?")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the wizard did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.tmux(&["send-keys", "-t", "hq", "q"]);
    t.tmux(&["kill-server"]);
    let running = || {
        Command::new("pgrep")
            .args(["-f", &format!("state-dir {}", state.display())])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    let t1 = Instant::now();
    while running() {
        if t1.elapsed() > Duration::from_secs(10) {
            let _ = Command::new("pkill")
                .args(["-9", "-f", &format!("state-dir {}", state.display())])
                .status();
            panic!("the wizard is still running 10 s after its terminal closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM in the middle of the writes, against a simulator that outlives the wizard (a real
/// cloud does): the next run resumes from the state file and ends connected, with exactly one
/// of each object.
#[test]
fn a_run_stopped_mid_write_is_resumed_by_the_next_run_without_duplicates() {
    let t = Tmux::new("resume");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim_dir = t.dir.path().join("sim");
    let opts = spot_connect::cli::SimOpts {
        latency: 80,
        replication_delay: 4.0,
        ..Default::default()
    };
    let sim = rt
        .block_on(spot_connect::sim::start(&opts, &sim_dir))
        .expect("simulator");
    let args = format!("--endpoints {}", sim.endpoints_path.display());
    t.start_with(1, &args);
    t.enter_until(1, "Review: what will be written", Duration::from_secs(60));
    t.send(1, "Enter");
    // Stop it once something was written but before the end (the replication delay holds the
    // service principal and the assignment back for seconds).
    let t0 = Instant::now();
    loop {
        let st = sim.state();
        if st["applications"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["tags"].to_string().contains("spot-connect"))
        }) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "nothing was written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = t.wizard_pid(1);
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(t.exit_code(1), 130, "interrupted");
    t.assert_terminal_restored(1);
    let mid = sim.state();
    assert!(
        mid["spot"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["credentials"].is_null()
                || a["credentials"]["subscriptionId"] != "5c000002-0000-4000-8000-0000000000a2"),
        "stopped before the connection"
    );

    t.start_with(2, &args);
    let done = t.enter_until(2, "is connected to Spot", Duration::from_secs(90));
    let sub = done_subscription(&done);
    let state = sim.state();
    assert_connected(&state, &sub);
    let ours = |kind: &str| {
        state[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["tags"].to_string().contains("spot-connect"))
            .count()
    };
    assert_eq!(ours("applications"), 1, "one app registration: {state:#}");
    let roles = state["roleDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["properties"]["roleName"] == "Spot.io Custom Role"
                || r["roleName"] == "Spot.io Custom Role"
        })
        .count();
    assert_eq!(roles, 1, "one custom role");
    t.send(2, "Enter");
    assert_eq!(t.exit_code(2), 0);
    rt.block_on(sim.shutdown());
}

/// The sign-in address of the browser prompt, put together from the lines it wraps over.
fn sign_in_url(screen: &str) -> String {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let (i, col) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let s: String = l.iter().collect();
            s.find("Open in a browser on your laptop:")
                .map(|b| (i, s[..b].chars().count()))
        })
        .unwrap_or_else(|| panic!("no browser prompt on screen:\n{screen}"));
    let mut url = String::new();
    for l in &lines[i + 1..] {
        let seg: String = l.iter().skip(col).take_while(|c| **c != '│').collect();
        let seg = seg.trim_end();
        if seg.starts_with("Forward port") {
            break;
        }
        url.push_str(seg);
    }
    url
}

/// The browser: signs in at `url` (the simulator redirects at once) and returns where it is
/// sent (not followed).
fn browse(ca: &[u8], url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = c.get(url).send().await.expect("GET the sign-in address");
        assert_eq!(r.status().as_u16(), 302, "{url}");
        r.headers()["location"].to_str().unwrap().to_string()
    })
}

/// A simulator that blocks the device code, for the browser sign-in tests.
fn blocking_sim(
    t: &Tmux,
) -> (
    tokio::runtime::Runtime,
    spot_connect::sim::SimHandle,
    String,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = spot_connect::cli::SimOpts {
        approve_after: 0,
        block_device_code: vec!["all".into()],
        ..Default::default()
    };
    let sim = rt
        .block_on(spot_connect::sim::start(&opts, &t.dir.path().join("sim")))
        .expect("simulator");
    let args = format!("--endpoints {}", sim.endpoints_path.display());
    (rt, sim, args)
}

#[test]
fn device_code_blocked_b_switches_to_the_browser_and_the_forwarded_port_signs_in() {
    let t = Tmux::new("browser-port");
    let (rt, sim, args) = blocking_sim(&t);
    t.start_with(1, &args);
    t.wait_for(1, "What do you want to do?", Duration::from_secs(30));
    t.send(1, "Enter");
    t.wait_for(1, "Spot account", Duration::from_secs(10));
    t.send(1, "Enter");
    let blocked = t.wait_for(1, "Press b", Duration::from_secs(30));
    println!("--- device code blocked (80x24) ---\n{blocked}");
    assert!(blocked.contains("Conditional Access"), "{blocked}");
    t.send(1, "b");
    let prompt = t.wait_for(
        1,
        "Open in a browser on your laptop:",
        Duration::from_secs(20),
    );
    println!("--- browser sign-in (80x24) ---\n{prompt}");
    let url = sign_in_url(&prompt);
    assert!(
        url.contains("/oauth2/v2.0/authorize?") && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let location = browse(&sim.ca_pem(), &url);
    // The forwarded port: the browser's request reaches the wizard's listener.
    let page = rt
        .block_on(async { reqwest::get(&location).await?.text().await })
        .expect("the listener answers");
    assert!(page.contains("Signed in"), "{page}");
    t.wait_for(1, "Signed in as", Duration::from_secs(20));
    // Enter up to the review, then once: an Enter racing the Done pane would leave the wizard.
    t.enter_until(1, "Review: what will be written", Duration::from_secs(60));
    t.send(1, "Enter");
    let done = t.wait_for(1, "is connected to Spot", Duration::from_secs(60));
    assert_connected(&sim.state(), &done_subscription(&done));
    t.send(1, "Enter");
    assert_eq!(t.exit_code(1), 0);
    t.assert_terminal_restored(1);
    rt.block_on(sim.shutdown());
}

#[test]
fn browser_sign_in_through_the_pasted_address_refuses_a_wrong_one_first() {
    let t = Tmux::new("browser-paste");
    let (rt, sim, args) = blocking_sim(&t);
    t.start_with(1, &format!("{args} --auth browser"));
    t.wait_for(1, "What do you want to do?", Duration::from_secs(30));
    t.send(1, "Enter");
    t.wait_for(1, "Spot account", Duration::from_secs(10));
    t.send(1, "Enter");
    let prompt = t.wait_for(
        1,
        "Open in a browser on your laptop:",
        Duration::from_secs(20),
    );
    let url = sign_in_url(&prompt);
    let location = browse(&sim.ca_pem(), &url);
    // The paste field has the keys already; a wrong address first.
    t.tmux(&[
        "send-keys",
        "-t",
        "run1",
        "-l",
        "http://localhost:1/?code=x&state=y",
    ]);
    t.send(1, "Enter");
    let refused = t.wait_for(1, "not this sign-in", Duration::from_secs(10));
    println!("--- pasted address refused (80x24) ---\n{refused}");
    assert!(!refused.contains("Signed in as"));
    t.tmux(&["send-keys", "-t", "run1", "-l", &location]);
    let masked = t.screen(1);
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    assert!(!masked.contains(&code[..12]), "the pasted code is masked");
    t.send(1, "Enter");
    t.wait_for(1, "Signed in as", Duration::from_secs(20));
    // Enter up to the review, then once: an Enter racing the Done pane would leave the wizard.
    t.enter_until(1, "Review: what will be written", Duration::from_secs(60));
    t.send(1, "Enter");
    let done = t.wait_for(1, "is connected to Spot", Duration::from_secs(60));
    assert_connected(&sim.state(), &done_subscription(&done));
    t.send(1, "Enter");
    assert_eq!(t.exit_code(1), 0);
    t.assert_terminal_restored(1);
    rt.block_on(sim.shutdown());
}

#[test]
fn a_tenant_that_requires_interaction_gets_the_sign_in_again_box_and_is_listed() {
    let t = Tmux::new("reauth");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = spot_connect::cli::SimOpts {
        approve_after: 3000,
        require_interaction: vec![spot_connect::sim::seed::FABRIKAM_TENANT_ID.into()],
        ..Default::default()
    };
    let sim = rt
        .block_on(spot_connect::sim::start(&opts, &t.dir.path().join("sim")))
        .expect("simulator");
    t.start_with(1, &format!("--endpoints {}", sim.endpoints_path.display()));
    let again = t.wait_for(1, "asks you to sign in again", Duration::from_secs(60));
    println!("--- sign in again (80x24) ---\n{again}");
    assert!(
        again.contains("Sign in again") && again.contains("AADSTS50076"),
        "{again}"
    );
    assert!(
        again.contains("fab0fab0-0000-4000-8000-00000000fab2"),
        "{again}"
    );
    // Named as the operator knows it (issue 21 §5), though its subscriptions are not listed yet.
    assert!(
        again.contains("Tenant Fabrikam (fabrikam.example) asks you"),
        "{again}"
    );
    // The sim approves the code: the box goes, and Fabrikam's subscriptions are listed.
    // 5 subscriptions: Fabrikam's two are not skipped.
    let home = t.wait_for(
        1,
        "5 subscription(s) in 2 tenant(s)",
        Duration::from_secs(60),
    );
    assert!(!home.contains("Sign in again"), "{home}");
    t.send(1, "q");
    assert_eq!(t.exit_code(1), 0);
    t.assert_terminal_restored(1);
    rt.block_on(sim.shutdown());
}

/// Esc in the sign-in-again box of a real terminal cancels Fabrikam's device-code sign-in:
/// the box goes, the pane says so, and the simulator's request log gets no token poll at
/// Fabrikam after it (its code would have been approved 3 s after it was issued).
#[test]
fn esc_cancels_a_tenants_sign_in_again_and_nothing_polls_after_it() {
    let t = Tmux::new("reauthesc");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = spot_connect::cli::SimOpts {
        approve_after: 3000,
        require_interaction: vec![spot_connect::sim::seed::FABRIKAM_TENANT_ID.into()],
        ..Default::default()
    };
    let sim = rt
        .block_on(spot_connect::sim::start(&opts, &t.dir.path().join("sim")))
        .expect("simulator");
    let token = format!(
        "/{}/oauth2/v2.0/token",
        spot_connect::sim::seed::FABRIKAM_TENANT_ID
    );
    let polls = || {
        sim.requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str() == Some(token.as_str()))
            .count()
    };
    t.start_with(1, &format!("--endpoints {}", sim.endpoints_path.display()));
    t.wait_for(1, "asks you to sign in again", Duration::from_secs(60));
    t.send(1, "Escape");
    let after = t.wait_for(1, "sign-in cancelled", Duration::from_secs(10));
    println!("--- after Esc (80x24) ---\n{after}");
    assert!(!after.contains("Sign in again"), "{after}");
    std::thread::sleep(Duration::from_millis(500));
    let at_esc = polls();
    // Past the moment the simulator would have approved the code: not one poll more.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(polls(), at_esc, "Fabrikam's device code polled after Esc");
    println!("token requests at Fabrikam: {at_esc} up to Esc, 0 in the 4 s after");
    let screen = t.screen(1);
    assert!(
        !screen.contains("5 subscription(s) in 2 tenant(s)"),
        "Fabrikam cannot have been listed: {screen}"
    );
    // Not asked again: the management-group listing after the discovery needed Fabrikam too.
    assert!(!screen.contains("Sign in again"), "{screen}");
    t.send(1, "q");
    assert_eq!(t.exit_code(1), 0);
    t.assert_terminal_restored(1);
    rt.block_on(sim.shutdown());
}

/// `--demo` without `--state-dir` keeps its simulator, state and reports in a new directory of
/// its own (0700, under TMPDIR), never in the operator's real state dir (issue 21 §8), and says
/// where when it ends.
#[test]
fn demo_keeps_its_files_out_of_the_real_state_dir() {
    let t = Tmux::new("demodir");
    let home = t.dir.path().join("home");
    let tmp = t.dir.path().join("tmp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let d = t.dir.path().display();
    t.start_command(
        1,
        &format!(
            "HOME={} TMPDIR={} XDG_STATE_HOME= {BIN} --demo 2> {d}/stderr1",
            home.display(),
            tmp.display()
        ),
    );
    t.wait_for(1, "Spot account", Duration::from_secs(30));
    t.send(1, "q");
    let s = t.screen(1);
    if s.contains("Quit") || s.contains("quit?") {
        t.send(1, "y");
    }
    let code = t.exit_code(1);
    assert!(code == 0 || code == 130, "exit {code}");
    assert!(
        !home.join(".local/state").exists(),
        "the demo wrote under $HOME/.local/state"
    );
    let made: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(made.len(), 1, "one directory of the demo's own: {made:?}");
    let dir = &made[0];
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("spot-connect-demo."),
        "{dir:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{dir:?} is private");
    assert!(
        dir.join("demo/endpoints.json").exists(),
        "the simulator's files are there"
    );
    let stderr = std::fs::read_to_string(t.dir.path().join("stderr1")).unwrap();
    assert!(
        stderr.contains(&dir.display().to_string()),
        "the end of the run names the directory: {stderr}"
    );
}

/// Issue 21 §7 and issue 19 in a real terminal: `f` then letters jumps to the matching row, `m`
/// shows the demo's management-group tree, the log pane names its file and stamps its lines,
/// and `q` on the picker exits 130 saying nothing was changed.
#[test]
fn search_groups_log_and_quitting_the_picker_in_a_real_terminal() {
    let t = Tmux::new("find");
    t.start(1);
    t.enter_until(1, "Space select", Duration::from_secs(60));
    let screen = t.wait_for(1, "Tenant Fabrikam", Duration::from_secs(30));
    let (rows, at) = picker_rows(&screen);
    assert!(
        !rows[at.expect("a row is highlighted")].contains("Fabrikam"),
        "{screen}"
    );
    t.send(1, "f");
    t.wait_for(1, "find:", Duration::from_secs(10));
    for k in ["f", "a", "b"] {
        t.send(1, k);
    }
    let screen = t.wait_for(1, "find: fab", Duration::from_secs(10));
    let t0 = Instant::now();
    loop {
        let s = t.screen(1);
        let (rows, at) = picker_rows(&s);
        if at.is_some_and(|i| rows[i].contains("Fabrikam")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "f fab did not jump to a Fabrikam row:\n{s}\n(first: {screen})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // "a" was search text, not "select all".
    assert!(!t.screen(1).contains("[x]"), "{}", t.screen(1));
    t.send(1, "Enter");
    t.wait_for(1, "Space select", Duration::from_secs(10));
    // The whole-management-group choice, once the groups are listed.
    let screen = t.wait_for(1, "m groups", Duration::from_secs(30));
    assert!(screen.contains("m groups"));
    t.send(1, "m");
    let tree = t.wait_for(1, "Whole management group", Duration::from_secs(10));
    println!("--- picker, management groups (80x24) ---\n{tree}");
    assert!(tree.contains("Contoso Spot Production"), "{tree}");
    t.send(1, "m");
    t.wait_for(1, "Tenant Fabrikam", Duration::from_secs(10));
    t.send(1, "l");
    let log = t.wait_for(1, "spot-connect.log", Duration::from_secs(10));
    let stamped = log.lines().any(|l| {
        let b = l.trim_start_matches('│').as_bytes();
        b.len() > 8
            && b[2] == b':'
            && b[5] == b':'
            && b[..8].iter().all(|c| c.is_ascii_digit() || *c == b':')
    });
    assert!(stamped, "log lines start with HH:MM:SS:\n{log}");
    t.send(1, "q");
    assert_eq!(
        t.exit_code(1),
        130,
        "quitting the picker is an interruption"
    );
    let after = t.wait_for(1, "nothing was changed", Duration::from_secs(10));
    assert!(after.contains("log: "), "{after}");
    t.assert_terminal_restored(1);
}
