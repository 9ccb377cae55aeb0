//! The real binary's `--demo` under a pseudo-terminal (PRODUCT.md §6): startup to first frame
//! (< 50 ms), CPU while idle (~0: no redraw without a change), peak memory (< 30 MiB).
//!
//! `cargo bench --bench startup_idle` (env `STARTUP_BENCH_RUNS`, default 10; `IDLE_BENCH_SECS`,
//! default 10). Needs `script` (util-linux) and `tmux`; Linux only (/proc).
//!
//! 1. Startup, `STARTUP_BENCH_RUNS` times: `script` gives the wizard a 120x40 pseudo-terminal;
//!    the shell inside prints a marker and `exec`s the binary. Timed from spawning `script` (an
//!    upper bound: `script`, `sh` and `stty` included) and from reading the marker, to reading the
//!    first bytes on the terminal that carry the sidebar ("Role assignment"). The wizard's own log line ("first frame N ms after the wizard started", from
//!    entering the wizard, after the process started and the log was opened) is reported too.
//! 2. Idle and peak memory, once, in tmux (120x40): the wizard is left alone on its first pane
//!    (after sign-in and discovery settled), then driven with Enter only to the Done pane and left
//!    alone there. CPU = utime + stime from /proc/<pid>/stat before and after each idle period;
//!    the pane's content is compared too. Peak RSS = VmHWM from /proc/<pid>/status on the Done
//!    pane just before `q`. `--demo` runs the simulator in the same process: its memory and CPU
//!    are included.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spot-connect");
const MARK: &str = "SPOTC-BENCH-START";

/// Printable text of terminal output: escape sequences and spaces dropped (ratatui skips cells
/// that do not change, so words arrive split by cursor moves).
fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.next() {
                Some('[') => {
                    // CSI: parameters, then a final byte in @..~
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: until BEL or ST
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                            break;
                        }
                    }
                }
                _ => {}
            }
        } else if !c.is_whitespace() && !c.is_control() {
            out.push(c);
        }
    }
    out
}

struct Startup {
    /// From spawning `script` (so `script`, `sh` and `stty` included): an upper bound.
    spawn_ms: f64,
    /// From reading the marker the shell prints just before `exec`: 0 when the marker and the
    /// frame arrive in one read (the reader was late), so only a rough figure.
    outside_ms: f64,
    inside_ms: Option<f64>,
    /// The wizard was still running 1 s after its terminal went away: its CPU use then
    /// (fraction of one core). It is killed.
    survived: Option<f64>,
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|x| x.1.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn startup_once(dir: &Path) -> Startup {
    let state = dir.join("state");
    let cmd = format!(
        "stty rows 40 cols 120; printf '{MARK}\\n'; exec '{BIN}' --demo --state-dir '{}'",
        state.display()
    );
    let spawned = Instant::now();
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("SPOTINST_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut marked: Option<(Instant, usize)> = None;
    let mut frame: Option<Instant> = None;
    let limit = Instant::now() + Duration::from_secs(10);
    while frame.is_none() && Instant::now() < limit {
        let Ok((t, chunk)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        seen.extend_from_slice(&chunk);
        if marked.is_none()
            && let Some(p) = seen.windows(MARK.len()).position(|w| w == MARK.as_bytes())
        {
            marked = Some((t, p + MARK.len()));
        }
        if let Some((_, from)) = marked
            && text(&seen[from..]).contains("Roleassignment")
        {
            frame = Some(t);
        }
    }
    // The wizard is the child of `script` (the shell exec'd into it). Closing the pty (killing
    // `script`) is a hangup, as when an SSH connection drops: the wizard must end on its own.
    let wizard = children(child.id()).into_iter().next();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let survived = wizard.and_then(|pid| {
        let gone_by = Instant::now() + Duration::from_secs(1);
        while Instant::now() < gone_by {
            if !alive(pid) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let c0 = cpu_secs(pid);
        std::thread::sleep(Duration::from_millis(500));
        let busy = (cpu_secs(pid) - c0) / 0.5;
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        Some(busy)
    });
    let (Some((t0, _)), Some(t1)) = (marked, frame) else {
        panic!(
            "no first frame within 10 s; the terminal showed: {}",
            text(&seen)
        );
    };
    // The wizard's own figure, from its log.
    let log = std::fs::read_to_string(state.join("spot-connect.log")).unwrap_or_default();
    let inside_ms = log.lines().find_map(|l| {
        let i = l.find("first frame ")?;
        l[i + "first frame ".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    Startup {
        spawn_ms: (t1 - spawned).as_secs_f64() * 1000.0,
        outside_ms: (t1 - t0).as_secs_f64() * 1000.0,
        inside_ms,
        survived,
    }
}

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "bench"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

struct Idle {
    cpu_ms: f64,
    screen_changed: bool,
}

fn idle(t: &Tmux, pid: u32, secs: u64) -> Idle {
    let before_screen = t.screen();
    let c0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = cpu_secs(pid);
    Idle {
        cpu_ms: (c1 - c0) * 1000.0,
        screen_changed: t.screen() != before_screen,
    }
}

/// Waits until the screen has not changed for `quiet` (bounded by `limit`).
fn settle(t: &Tmux, quiet: Duration, limit: Duration) -> String {
    let t0 = Instant::now();
    let mut last = t.screen();
    let mut since = Instant::now();
    while t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
        let s = t.screen();
        if s != last {
            last = s;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
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

fn pct(v: &[f64], p: f64) -> f64 {
    // v sorted
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn main() {
    let runs: usize = std::env::var("STARTUP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let idle_secs: u64 = std::env::var("IDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!("binary: {BIN}");

    // 1. Startup to first frame.
    let mut outside = Vec::new();
    let mut spawn = Vec::new();
    let mut inside = Vec::new();
    let mut survivors = 0;
    for i in 0..runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = startup_once(dir.path());
        println!(
            "startup run {:>2}: first frame {:>5.1} ms after spawning `script`, {:>5.1} ms after the marker (wizard's log: {})",
            i + 1,
            s.spawn_ms,
            s.outside_ms,
            s.inside_ms
                .map(|m| format!("{m:.0} ms"))
                .unwrap_or_else(|| "no line".into())
        );
        if let Some(busy) = s.survived {
            survivors += 1;
            println!(
                "  the wizard was still running 1 s after its terminal closed (hangup), using {:.0} % of a core: killed",
                busy * 100.0
            );
        }
        outside.push(s.outside_ms);
        spawn.push(s.spawn_ms);
        inside.extend(s.inside_ms);
    }
    let m = median(&mut spawn);
    println!(
        "startup to first frame (spawn of `script` -> sidebar on the pty), {runs} runs: median {m:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms (target < 50 ms: {})",
        pct(&spawn, 0.9),
        spawn[0],
        spawn[spawn.len() - 1],
        if m < 50.0 { "met" } else { "NOT met" }
    );
    let m = median(&mut outside);
    println!(
        "  from the marker printed just before exec: median {m:.1} ms, max {:.1} ms",
        outside[outside.len() - 1]
    );
    println!("  the wizard outlived the hangup of its terminal in {survivors} of {runs} runs");
    if !inside.is_empty() {
        let m = median(&mut inside);
        println!(
            "  the wizard's own log (from entering the wizard): median {m:.0} ms, max {:.0} ms",
            inside[inside.len() - 1]
        );
    }

    // 2. Idle CPU and peak memory over a whole --demo run.
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Tmux {
        socket: format!("spotc-bench-{}", std::process::id()),
    };
    let cmd = format!(
        "exec env -u NO_COLOR -u SPOTINST_TOKEN TERM=xterm-256color '{BIN}' --demo --state-dir '{}'",
        dir.path().join("state").display()
    );
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "bench",
        "-x",
        "120",
        "-y",
        "40",
        &cmd,
    ]);
    let pid: u32 = t
        .run(&["display-message", "-p", "-t", "bench", "#{pane_pid}"])
        .trim()
        .parse()
        .expect("the pane's pid");
    let first = settle(&t, Duration::from_secs(2), Duration::from_secs(20));
    assert!(
        first.contains("Role assignment"),
        "the wizard did not start:\n{first}"
    );
    let a = idle(&t, pid, idle_secs);
    println!(
        "idle on the first pane for {idle_secs} s: CPU {:.0} ms ({:.2} % of one core), screen {}",
        a.cpu_ms,
        a.cpu_ms / (idle_secs as f64 * 10.0),
        if a.screen_changed {
            "changed"
        } else {
            "unchanged"
        }
    );
    let t_run = Instant::now();
    let done = loop {
        let s = t.screen();
        if s.contains("is connected to Spot") {
            break s;
        }
        assert!(
            t_run.elapsed() < Duration::from_secs(60),
            "the demo did not reach Done in 60 s:\n{s}"
        );
        t.run(&["send-keys", "-t", "bench", "Enter"]);
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = done;
    println!(
        "demo driven with Enter to the Done pane in {:.1} s",
        t_run.elapsed().as_secs_f64()
    );
    settle(&t, Duration::from_secs(2), Duration::from_secs(10));
    let b = idle(&t, pid, idle_secs);
    println!(
        "idle on the Done pane for {idle_secs} s: CPU {:.0} ms ({:.2} % of one core), screen {}",
        b.cpu_ms,
        b.cpu_ms / (idle_secs as f64 * 10.0),
        if b.screen_changed {
            "changed"
        } else {
            "unchanged"
        }
    );
    let hwm = status_kib(pid, "VmHWM:");
    let rss = status_kib(pid, "VmRSS:");
    let total_cpu = cpu_secs(pid);
    t.run(&["send-keys", "-t", "bench", "q"]);
    let gone_by = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        println!("the wizard did not exit within 5 s of `q`: killed");
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    println!(
        "peak RSS (VmHWM) over the whole --demo run, simulator included: {:.1} MiB (RSS now {:.1} MiB; target < 30 MiB: {}); CPU over the whole run {:.2} s",
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        if hwm < 30 * 1024 { "met" } else { "NOT met" },
        total_cpu
    );
}
