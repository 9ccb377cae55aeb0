//! The real binary against an in-process simulator: one `Sim` (simulator + a temp dir), one
//! way to run `spot-connect` with a clean environment, one `Out`.

use spot_connect::sim::{self, SimHandle, SimOpts, seed};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");

/// A simulator and the temp dir that holds its files and the default state dir.
pub struct Sim {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

/// `struct $name(Sim)` that derefs to [`Sim`]: a module's own way to run the binary, on top of
/// the shared one (`env.sim`, `env.dir`, `env.cmd(…)` reach the `Sim`; `env.0` moves it out).
macro_rules! sim_wrapper {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        struct $name($crate::common::cli::Sim);

        impl std::ops::Deref for $name {
            type Target = $crate::common::cli::Sim;
            fn deref(&self) -> &$crate::common::cli::Sim {
                &self.0
            }
        }
    };
}
pub(crate) use sim_wrapper;

/// How a run signs in.
#[derive(Clone, Copy)]
pub enum As {
    /// The device code, approved by the simulator (`approve_after`).
    Operator,
    /// Contoso's CI service principal, with a client secret (no device-code wait).
    CiOperator,
}

/// What a finished run left: exit code (-1 when killed by a signal), stdout, stderr.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// `(code, stdout, stderr)`, the shape the older CLI modules destructure.
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

impl Sim {
    pub async fn start(opts: SimOpts) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim::start(&opts, &dir.path().join("sim"))
            .await
            .expect("simulator starts");
        Sim { sim, dir }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `spot-connect <args> --endpoints … --state-dir <state_dir>`: no terminal, no token or
    /// secret from the environment of the test but the ones `who` needs.
    pub fn cmd(&self, who: As, state_dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        // No sign-in kept between runs unless a test names a keyring service of its own
        // (tests/it/keyring_cli.rs): never the developer's keyring.
        c.env("SPOT_CONNECT_KEYRING", "off");
        c.args(args)
            .arg("--endpoints")
            .arg(&self.sim.endpoints_path)
            .arg("--state-dir")
            .arg(state_dir)
            .env_remove("SPOTINST_TOKEN")
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("SPOT_CONNECT_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let As::CiOperator = who {
            c.args(["--auth", "client-secret"])
                .env("AZURE_TENANT_ID", seed::CONTOSO_TENANT_ID)
                .env("AZURE_CLIENT_ID", seed::CI_OPERATOR_CLIENT_ID)
                .env("AZURE_CLIENT_SECRET", seed::CI_OPERATOR_SECRET);
        }
        c
    }

    /// Runs `cmd` to its end (within `limit`).
    pub async fn run(&self, who: As, args: &[&str], limit: Duration) -> Out {
        output(self.cmd(who, &self.state_dir(), args), limit).await
    }
}

/// Waits for `c` to end, within `limit` (a test fails rather than hangs).
pub async fn output(mut c: Command, limit: Duration) -> Out {
    let out = tokio::time::timeout(limit, c.output())
        .await
        .expect("finishes in time")
        .expect("runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How many requests the simulator logged with `method` whose path contains `path`.
pub fn sends(sim: &SimHandle, method: &str, path: &str) -> usize {
    sim.requests()
        .as_array()
        .expect("request log")
        .iter()
        .filter(|r| {
            r["method"] == method
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.to_ascii_lowercase().contains(&path.to_ascii_lowercase()))
        })
        .count()
}

/// Turns a command's output into a snapshot that is the same on every run: what is made at run
/// time is replaced, what the seed fixes is kept.
///
/// - the test's temp dir → `[DIR]`; the simulator's origins → `[login]`, `[graph]`, `[arm]`,
///   `[spot]`, `[inspect]` (their ports change); any other `127.0.0.1:<port>` → `127.0.0.1:[port]`
/// - a GUID written in src/sim/seed.rs is kept (it names a seeded tenant, subscription or
///   principal); any other GUID → `[id-N]`, and a Spot account id not in the seed → `act-[N]`,
///   numbered by first appearance, so the same object keeps its label across the commands of
///   one transcript (an apply's account is the one status shows)
/// - dates → `[date]`, clock times → `[time]`, the reports' file stamps → `[stamp]`,
///   durations (`1.2 s`, `350ms`, `364 d`) → `[n] s` / `[n]ms` / `[n] d`
/// - the device code after "the code " / "(code " → `[user-code]`
#[derive(Clone)]
pub struct Redact {
    literal: Vec<(String, String)>,
    seed: std::collections::HashSet<String>,
    labels: std::collections::HashMap<String, String>,
    ids: usize,
    accounts: usize,
}

/// The GUIDs and Spot account ids the seed writes down (read from its source: a constant added
/// there is kept in snapshots without a list to update here).
fn seed_literals() -> std::collections::HashSet<String> {
    let src = include_str!("../../../src/sim/seed.rs");
    let mut out = std::collections::HashSet::new();
    for i in 0..src.len() {
        if !src.is_char_boundary(i) || (i > 0 && src.as_bytes()[i - 1].is_ascii_alphanumeric()) {
            continue;
        }
        if let Some(n) = guid_at(src, i).or_else(|| account_at(src, i)) {
            out.insert(src[i..i + n].to_string());
        }
    }
    out
}

/// The length of a GUID (8-4-4-4-12 hex digits) starting at byte `i` of `s`.
fn guid_at(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes().get(i..i + 36)?;
    let ok = b.iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    let bounded = s
        .as_bytes()
        .get(i + 36)
        .is_none_or(|c| !c.is_ascii_alphanumeric());
    (ok && bounded).then_some(36)
}

/// The length of a Spot account id (`act-` and 8 hex digits) starting at byte `i` of `s`.
fn account_at(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes().get(i..i + 12)?;
    let ok = b.starts_with(b"act-") && b[4..].iter().all(u8::is_ascii_hexdigit);
    let bounded = s
        .as_bytes()
        .get(i + 12)
        .is_none_or(|c| !c.is_ascii_alphanumeric());
    (ok && bounded).then_some(12)
}

/// Is `b` at `i` the start of a run of `n` digits (not preceded or followed by a digit)?
fn digits_at(b: &[u8], i: usize, n: usize) -> bool {
    b.get(i..i + n)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(i + n).is_none_or(|c| !c.is_ascii_digit())
}

impl Redact {
    /// For a run against `sim` with its files under `dir`.
    pub fn new(dir: &Path, sim: &SimHandle) -> Redact {
        let e = &sim.endpoints;
        let mut literal = vec![];
        // The canonical path too: a child may print the resolved one.
        if let Ok(real) = dir.canonicalize()
            && real != dir
        {
            literal.push((real.display().to_string(), "[DIR]".to_string()));
        }
        literal.push((dir.display().to_string(), "[DIR]".to_string()));
        for (origin, name) in [
            (&e.login, "[login]"),
            (&e.graph, "[graph]"),
            (&e.arm, "[arm]"),
            (&e.spot, "[spot]"),
            (&e.inspect, "[inspect]"),
        ] {
            literal.push((origin.clone(), name.to_string()));
        }
        Redact {
            literal,
            seed: seed_literals(),
            labels: Default::default(),
            ids: 0,
            accounts: 0,
        }
    }

    /// Shows `value` (an id made at run time that the test knows) as `label` wherever it appears.
    pub fn name(&mut self, value: &str, label: &str) -> &mut Redact {
        self.labels.insert(value.to_string(), label.to_string());
        self
    }

    fn label(&mut self, value: &str, account: bool) -> String {
        if self.seed.contains(value) {
            return value.to_string();
        }
        if let Some(l) = self.labels.get(value) {
            return l.clone();
        }
        let l = if account {
            self.accounts += 1;
            format!("act-[{}]", self.accounts)
        } else {
            self.ids += 1;
            format!("[id-{}]", self.ids)
        };
        self.labels.insert(value.to_string(), l.clone());
        l
    }

    /// `text` with the volatile parts replaced (see the type).
    pub fn text(&mut self, text: &str) -> String {
        let mut s = text.to_string();
        for (from, to) in &self.literal {
            s = s.replace(from.as_str(), to);
        }
        let mut out = String::with_capacity(s.len());
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
            let rest = &s[i..];
            if word_start && let Some(n) = guid_at(&s, i) {
                out.push_str(&self.label(&s[i..i + n], false));
                i += n;
            } else if word_start && let Some(n) = account_at(&s, i) {
                out.push_str(&self.label(&s[i..i + n], true));
                i += n;
            } else if word_start
                && let Some(code) = ["the code ", "(code "]
                    .iter()
                    .find(|p| rest.starts_with(**p))
            {
                out.push_str(code);
                i += code.len();
                let n = s[i..]
                    .bytes()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    .count();
                if n >= 6 {
                    out.push_str("[user-code]");
                    i += n;
                }
            } else if rest.starts_with("127.0.0.1:")
                && b.get(i + 10).is_some_and(u8::is_ascii_digit)
            {
                out.push_str("127.0.0.1:[port]");
                i += 10;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else if word_start && b[i].is_ascii_digit() {
                let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                let (shown, len) = Self::number(&s, i, n);
                out.push_str(&shown);
                i += len;
            } else {
                let ch = rest.chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    /// A run of `n` digits at `i`: a report stamp, a date, a time, a duration, or a plain
    /// number (kept). Returns what to print and how many bytes it covered.
    fn number(s: &str, i: usize, n: usize) -> (String, usize) {
        let b = s.as_bytes();
        let at = |k: usize, c: u8| b.get(i + k) == Some(&c);
        // 20261202T154328.656Z
        if n == 8
            && at(8, b'T')
            && digits_at(b, i + 9, 6)
            && at(15, b'.')
            && digits_at(b, i + 16, 3)
            && at(19, b'Z')
        {
            return ("[stamp]".into(), 20);
        }
        // 2026-12-02, or 2026-12-02T15:43:28(.656)Z as one timestamp
        if n == 4 && at(4, b'-') && digits_at(b, i + 5, 2) && at(7, b'-') && digits_at(b, i + 8, 2)
        {
            if at(10, b'T') && digits_at(b, i + 11, 2) && at(13, b':') {
                let len = 11
                    + s[i + 11..]
                        .bytes()
                        .take_while(|c| c.is_ascii_digit() || b":.+-Z".contains(c))
                        .count();
                return ("[timestamp]".into(), len);
            }
            return ("[date]".into(), 10);
        }
        // 15:43:28 or 15:43:28.656
        if n == 2 && at(2, b':') && digits_at(b, i + 3, 2) && at(5, b':') && digits_at(b, i + 6, 2)
        {
            let mut len = 8;
            if at(8, b'.') {
                len += 1 + b[i + 9..].iter().take_while(|c| c.is_ascii_digit()).count();
            }
            return ("[time]".into(), len);
        }
        // durations: 1.2 s, 350ms, 364 d (the unit a word of its own)
        let mut len = n;
        if at(n, b'.') && b.get(i + n + 1).is_some_and(u8::is_ascii_digit) {
            len += 1 + b[i + n + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        }
        let tail = &s[i + len..];
        for unit in [" ms", "ms", " s", "s", " min", " d", " h"] {
            if let Some(after) = tail.strip_prefix(unit)
                && after.chars().next().is_none_or(|c| !c.is_alphanumeric())
            {
                return (format!("[n]{unit}"), len + unit.len());
            }
        }
        (s[i..i + n].to_string(), n)
    }

    /// One command's transcript: the command line, its exit code, stdout and stderr, redacted.
    pub fn transcript(&mut self, args: &[&str], code: i32, stdout: &str, stderr: &str) -> String {
        let mut t = format!("$ spot-connect {}\nexit {code}\n", args.join(" "));
        for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
            if !text.is_empty() {
                t.push_str(&format!("--- {name}\n{text}"));
                if !text.ends_with('\n') {
                    t.push('\n');
                }
            }
        }
        self.text(&t)
    }

    /// The lines of `text` after the one starting with `from` and before the one starting with
    /// `to` sorted: the progress lines of steps that run at once come in the scheduler's order,
    /// which a snapshot must not depend on. Sorted by their redacted form (each line on its
    /// own), before `transcript` numbers the ids, so the numbering does not depend on it either.
    pub fn sort_between(&self, text: &str, from: &str, to: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let starts = |l: &&str, p: &str| l.trim_start().starts_with(p);
        let Some(a) = lines.iter().position(|l| starts(l, from)) else {
            panic!("no line starting with {from:?} in:\n{text}");
        };
        let Some(b) = lines[a + 1..]
            .iter()
            .position(|l| starts(l, to))
            .map(|k| a + 1 + k)
        else {
            panic!("no line starting with {to:?} after {from:?} in:\n{text}");
        };
        let mut mid: Vec<(String, &str)> = lines[a + 1..b]
            .iter()
            .map(|l| (self.clone().text(l), *l))
            .collect();
        mid.sort();
        let mut out: Vec<&str> = lines[..=a].to_vec();
        out.extend(mid.into_iter().map(|(_, l)| l));
        out.extend(&lines[b..]);
        let mut s = out.join("\n");
        if text.ends_with('\n') {
            s.push('\n');
        }
        s
    }
}

/// The redaction keeps what the seed fixes and replaces only what a run makes (a redactor that
/// replaced everything would make every snapshot pass).
#[test]
fn redact_replaces_what_a_run_makes_and_keeps_the_seed() {
    let dir = Path::new("/tmp/.tmpAbC123");
    let mut r = Redact {
        literal: vec![
            (dir.display().to_string(), "[DIR]".into()),
            ("https://127.0.0.1:39951".into(), "[login]".into()),
        ],
        seed: seed_literals(),
        labels: Default::default(),
        ids: 0,
        accounts: 0,
    };
    r.name("11111111-2222-4333-8444-555555555555", "[the app]");
    let text = format!(
        "sub {} tenant {} act {} made 7b231e6a-2a95-4af0-810d-fca726b7aded and act-dc9ccf08, \
         again 7b231e6a-2a95-4af0-810d-fca726b7aded; app 11111111-2222-4333-8444-555555555555\n\
         code A3A08874B, (code 65B591E8D at https://127.0.0.1:39951; expires 15:58:26 UTC)\n\
         report: /tmp/.tmpAbC123/state/reports/20261202T154328.656Z-x.json on 2027-12-02 \
         (364 d) at 2026-12-02T15:43:28.656Z in 1.25 s and 350ms; 127.0.0.1:4431\n\
         kept: 12 months, 85 actions, 3 subscriptions, spot-connect-c0c0c0c0, version 0.1.0",
        spot_connect::sim::seed::SUB_CONTOSO_PROD,
        spot_connect::sim::seed::CONTOSO_TENANT_ID,
        spot_connect::sim::seed::SPOT_ACCOUNT_CONNECTED,
    );
    assert_eq!(
        r.text(&text),
        format!(
            "sub {} tenant {} act {} made [id-1] and act-[1], again [id-1]; app [the app]\n\
             code A3A08874B, (code [user-code] at [login]; expires [time] UTC)\n\
             report: [DIR]/state/reports/[stamp]-x.json on [date] ([n] d) at [timestamp] in \
             [n] s and [n]ms; 127.0.0.1:[port]\n\
             kept: 12 months, 85 actions, 3 subscriptions, spot-connect-c0c0c0c0, version 0.1.0",
            spot_connect::sim::seed::SUB_CONTOSO_PROD,
            spot_connect::sim::seed::CONTOSO_TENANT_ID,
            spot_connect::sim::seed::SPOT_ACCOUNT_CONNECTED,
        )
    );
}
