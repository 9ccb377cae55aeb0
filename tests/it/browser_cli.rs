//! `spot-connect apply --auth browser` as a process, against a simulator that blocks the device
//! code: the sign-in through the forwarded port and through an address pasted on stdin; the
//! blocked device code's message; a tenant that requires interaction signed in to again; a
//! redirect port already taken. The test is the browser (it GETs the sign-in address without
//! following the redirect). Each test prints its transcript (stderr) for the closing note.

use spot_connect::cli::SimOpts;
use spot_connect::sim::{self, SimHandle, seed};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
    browser: reqwest::Client,
}

impl Env {
    async fn start(opts: SimOpts) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim::start(&opts, &dir.path().join("sim")).await.unwrap();
        let ca = sim.ca_pem();
        let browser = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Env { sim, dir, browser }
    }

    fn spawn(&self, args: &[&str]) -> Run {
        let mut c = Command::new(BIN);
        c.env("SPOT_CONNECT_KEYRING", "off");
        c.args(args)
            .arg("--endpoints")
            .arg(&self.sim.endpoints_path)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .env_remove("SPOTINST_TOKEN")
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("USER", "ops")
            .env("SPOT_CONNECT_LOG", "trace")
            .env("SSH_CONNECTION", "10.0.0.5 50122 10.1.2.3 22")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            transcript: vec![],
        }
    }

    /// The browser signs in at `url`: the address it is sent back to.
    async fn open(&self, url: &str) -> String {
        let resp = self.browser.get(url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        resp.headers()["location"].to_str().unwrap().to_string()
    }
}

struct Run {
    child: Child,
    lines: UnboundedReceiver<String>,
    transcript: Vec<String>,
}

impl Run {
    /// Reads stderr until a line satisfies `f`; returns it.
    async fn until(&mut self, f: impl Fn(&str) -> bool) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(90), self.lines.recv())
                .await
                .expect("the line came in time")
                .unwrap_or_else(|| panic!("stderr ended:\n{}", self.transcript.join("\n")));
            self.transcript.push(line.clone());
            if f(&line) {
                return line;
            }
        }
    }

    /// The sign-in address shown.
    async fn sign_in_url(&mut self) -> String {
        self.until(|l| l.trim_start().starts_with("https://"))
            .await
            .trim()
            .to_string()
    }

    async fn paste(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits for the exit; the whole transcript.
    async fn finish(mut self) -> (i32, String) {
        let status = tokio::time::timeout(Duration::from_secs(240), self.child.wait())
            .await
            .expect("finished in time")
            .unwrap();
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await
        {
            self.transcript.push(l);
        }
        let t = self.transcript.join("\n");
        println!("----- transcript -----\n{t}\n----------------------");
        (status.code().unwrap_or(-1), t)
    }
}

fn blocked() -> SimOpts {
    SimOpts {
        approve_after: 0,
        block_device_code: vec!["all".into()],
        ..SimOpts::default()
    }
}

const APPLY: &[&str] = &["apply", "--subscription", seed::SUB_CONTOSO_PROD, "--yes"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = APPLY.to_vec();
    v.extend_from_slice(extra);
    v
}

#[tokio::test]
async fn apply_signs_in_through_the_forwarded_port() {
    let env = Env::start(blocked()).await;
    let mut run = env.spawn(&with(&["--auth", "browser"]));
    let url = run.sign_in_url().await;
    let ssh = run.until(|l| l.trim_start().starts_with("ssh -L")).await;
    let port = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.rsplit(':').next().unwrap().to_string())
        .unwrap();
    assert_eq!(
        ssh.trim(),
        format!("ssh -L {port}:localhost:{port} ops@10.1.2.3")
    );
    let location = env.open(&url).await;
    let page = reqwest::get(&location).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let (code, t) = run.finish().await;
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains("✓ Azure login: signed in as operator@contoso.example"),
        "{t}"
    );
    // Neither the code nor the verifier reaches the output.
    let code_value = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    assert!(!t.contains(&code_value));
    let log =
        std::fs::read_to_string(env.dir.path().join("state/spot-connect.log")).expect("the log");
    assert!(log.contains("browser sign-in completed"), "{log}");
    assert!(!log.contains(&code_value), "the code is not in the log");
    assert!(!log.contains("code_verifier"), "nor the verifier");
    assert!(!log.contains("sim-rt-") && !log.contains("sim-at-"));
}

#[tokio::test]
async fn apply_signs_in_through_an_address_pasted_on_stdin() {
    let env = Env::start(blocked()).await;
    let run = env.spawn(&with(&["--auth", "browser", "--redirect-port", "0"]));
    // --redirect-port 0 is refused (1..=65535): a usage error, nothing started.
    let (code, t) = run.finish().await;
    assert_eq!(code, 2, "{t}");

    let mut run = env.spawn(&with(&["--auth", "browser"]));
    let url = run.sign_in_url().await;
    let location = env.open(&url).await;
    // A wrong paste first: refused, still waiting.
    run.paste("http://localhost:1/?code=abc&state=xyz").await;
    let refused = run.until(|l| l.contains("✗ not signed in yet")).await;
    assert!(refused.contains("not this sign-in's redirect"), "{refused}");
    run.paste(&location).await;
    let (code, t) = run.finish().await;
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains("✓ Azure login: signed in as operator@contoso.example"),
        "{t}"
    );
    assert!(t.contains("Connect to Spot"), "{t}");
}

#[tokio::test]
async fn apply_with_a_blocked_device_code_names_conditional_access_and_the_browser_sign_in() {
    let env = Env::start(blocked()).await;
    let run = env.spawn(APPLY);
    let (code, t) = run.finish().await;
    assert_eq!(code, 1, "{t}");
    assert!(
        t.contains("Conditional Access blocks the device-code sign-in (AADSTS53003"),
        "{t}"
    );
    assert!(t.contains("--auth browser"), "{t}");
}

#[tokio::test]
async fn apply_signs_in_again_to_a_tenant_that_requires_interaction() {
    let env = Env::start(SimOpts {
        approve_after: 200,
        require_interaction: vec![seed::FABRIKAM_TENANT_ID.into()],
        ..SimOpts::default()
    })
    .await;
    let run = env.spawn(&[
        "apply",
        "--subscription",
        seed::SUB_FABRIKAM_STAGING,
        "--yes",
    ]);
    let (code, t) = run.finish().await;
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains(&format!(
            "tenant {} asks you to sign in again: multi-factor authentication is required there (AADSTS50076)",
            seed::FABRIKAM_TENANT_ID
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "✓ Azure login: signed in at tenant {}",
            seed::FABRIKAM_TENANT_ID
        )),
        "{t}"
    );
    assert!(!t.contains("skipped"), "{t}");
}

#[tokio::test]
async fn apply_with_a_redirect_port_already_taken_stops_before_signing_in() {
    let env = Env::start(blocked()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let port: &'static str = Box::leak(port.into_boxed_str());
    let before = env.sim.state()["applications"].as_array().unwrap().len();
    let run = env.spawn(&with(&["--auth", "browser", "--redirect-port", port]));
    let (code, t) = run.finish().await;
    assert_eq!(code, 2, "{t}");
    assert!(
        t.contains(&format!(
            "--redirect-port {port}: the port is already in use"
        )),
        "{t}"
    );
    let after = env.sim.state()["applications"].as_array().unwrap().len();
    assert_eq!(after, before, "nothing written");
    let logins = env
        .sim
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/oauth2/v2.0/"))
        })
        .count();
    assert_eq!(logins, 0, "no sign-in was started");
}

impl Run {
    async fn paste_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// As [`Run::until`], within `secs`.
    async fn within(&mut self, secs: u64, f: impl Fn(&str) -> bool) -> String {
        match tokio::time::timeout(Duration::from_secs(secs), self.until(f)).await {
            Ok(l) => l,
            Err(_) => panic!(
                "not within {secs} s; transcript:\n{}",
                self.transcript.join("\n")
            ),
        }
    }
}

/// Issue 17 §5: a line of invalid UTF-8 and a 1 MiB line on stdin are refused with a sentence
/// each, and the good address pasted after them is still taken.
#[tokio::test]
async fn invalid_utf8_and_an_endless_line_on_stdin_are_refused_and_a_good_paste_is_taken() {
    let env = Env::start(blocked()).await;
    let mut run = env.spawn(&with(&["--auth", "browser"]));
    let url = run.sign_in_url().await;
    let location = env.open(&url).await;
    run.paste_bytes(b"\xff\xfe\xfd pasted from a terminal in Latin-1 \xe9\n")
        .await;
    let l = run.within(30, |l| l.contains("not UTF-8")).await;
    assert!(l.contains("was ignored"), "{l}");
    let mut long = vec![b'x'; 1024 * 1024];
    long.push(b'\n');
    run.paste_bytes(&long).await;
    run.within(30, |l| l.contains("longer than 64 KiB")).await;
    run.paste(&location).await;
    run.within(30, |l| {
        l.contains("✓ Azure login: signed in as operator@contoso.example")
    })
    .await;
    let (code, t) = run.finish().await;
    assert_eq!(code, 0, "{t}");
}

/// Issue 17 §6: an error redirect whose `error_description` carries escape sequences, a bell and
/// a C1 control reaches neither stderr nor the log raw: the text is shown without them.
#[tokio::test]
async fn an_error_redirect_with_control_sequences_is_shown_without_them() {
    let env = Env::start(blocked()).await;
    let mut run = env.spawn(&with(&["--auth", "browser"]));
    let url = run.sign_in_url().await;
    let q: std::collections::HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let hostile = "AADSTS50105: \u{1b}[2J\u{1b}]0;pwned\u{7}the admin \u{1b}[31mdenied\u{9b}0m you\r\n\u{8}\u{8}";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let redirect = format!(
        "{}/?error={}&error_description={}&state={}",
        q["redirect_uri"],
        enc("access_denied\u{1b}[5m"),
        enc(hostile),
        enc(&q["state"])
    );
    let page = reqwest::get(&redirect).await.unwrap();
    assert_eq!(page.status().as_u16(), 400);
    let body = page.text().await.unwrap();
    let (code, t) = run.finish().await;
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("AADSTS50105") && t.contains("denied"), "{t}");
    let log = std::fs::read_to_string(env.dir.path().join("state/spot-connect.log")).unwrap();
    for (what, text) in [("stderr", &t), ("the log", &log), ("the page", &body)] {
        for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{8}', '\r'] {
            assert!(
                !text.contains(c),
                "{what} carries U+{:04X}:\n{text:?}",
                c as u32
            );
        }
    }
    let shown = t.lines().find(|l| l.contains("AADSTS50105")).unwrap();
    println!("shown: {shown}");
}
