//! The event loop: the terminal, the one action channel, signals, and the effects `update` asks
//! for (sign-in, discovery, Spot accounts, plan, apply) run as tokio tasks.

use super::screen::{self, Screen};
use super::state::{Init, Now, State};
use super::update::{self, Action, Choices, Effect, SignalKind};
use crate::cli::exit::Ending;
use crate::cli::{AuthMethod, Cli};
use crate::endpoints::Endpoints;
use crate::error::Error;
use crate::onboard::model::{ErrorInfo, Progress};
use crate::onboard::{self, Session, Settings};
use crate::secret::Secret;
use crate::spot::SpotClient;
use ratatui::crossterm::event::{self, Event};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

/// `--demo`: latency per simulated call, and Azure's replication delay.
const DEMO_LATENCY_MS: u64 = 80;
const DEMO_REPLICATION_S: f64 = 3.0;

fn info(e: &Error) -> ErrorInfo {
    ErrorInfo::from(e)
}

/// What the wizard needs before the first frame.
struct Setup {
    session: Session,
    init: Init,
    /// The Spot token the session was built with (what the field is prefilled with).
    token: Option<Secret>,
    /// Keeps the in-process simulator running (`--demo`).
    _sim: Option<crate::sim::SimHandle>,
    prompt: crate::azure::auth::PromptFn,
}

async fn setup(cli: &Cli, tx: &UnboundedSender<Action>) -> Result<Setup, Error> {
    let opts = &cli.opts;
    let prompt_tx = tx.clone();
    let prompt: crate::azure::auth::PromptFn =
        Arc::new(move |p| drop(prompt_tx.send(Action::Progress(Progress::from(p)))));
    let (sim, endpoints, token_prefill) = if cli.demo {
        let dir = opts.state_dir().join("demo");
        // Slow enough to watch: every call takes a moment, and Azure takes a few seconds to
        // propagate a new service principal, so one "waiting for Azure" shows.
        let sim_opts = crate::sim::SimOpts {
            latency: DEMO_LATENCY_MS,
            replication_delay: DEMO_REPLICATION_S,
            ..crate::sim::SimOpts::default()
        };
        let handle = crate::sim::start(&sim_opts, &dir).await?;
        let (e, t) = Endpoints::load(&handle.endpoints_path)?;
        (
            Some(handle),
            Some((e, t.clone())),
            Some((t, "the simulator's endpoints file".to_string())),
        )
    } else {
        let prefill = match std::env::var("SPOTINST_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            Some(t) => Some((Secret::new(t.trim()), "SPOTINST_TOKEN".to_string())),
            None => match &opts.spot_token_file {
                Some(p) => std::fs::read_to_string(p)
                    .ok()
                    .map(|t| (Secret::new(t.trim()), p.display().to_string())),
                None => match &opts.endpoints {
                    Some(p) => Endpoints::load(p)
                        .ok()
                        .map(|(_, t)| (t, p.display().to_string())),
                    None => None,
                },
            },
        };
        (None, None, prefill)
    };
    let session = compat::build_session(opts, endpoints, prompt.clone())?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let size = ratatui::crossterm::terminal::size().unwrap_or((80, 24));
    let init = Init {
        demo: cli.demo,
        color,
        cloud: session.endpoints.name.clone(),
        auth_method: opts.auth.unwrap_or(AuthMethod::DeviceCode),
        token_prefill: token_prefill
            .as_ref()
            .map(|(t, src)| (t.expose().to_string(), src.clone())),
        app_name: opts.app_name.clone(),
        role_name: opts.role_name.clone(),
        secret_months: opts.secret_months,
        size,
        state_dir: Some(shown_path(&session.state_dir)),
        log_path: Some(shown_path(&crate::logging::log_path(&session.state_dir))),
        subscriptions: opts.subscriptions.clone(),
    };
    Ok(Setup {
        session,
        init,
        token: token_prefill.map(|(t, _)| t),
        _sim: sim,
        prompt,
    })
}

/// A path as shown: `~/…` under the home directory.
fn shown_path(p: &std::path::Path) -> String {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    match home.as_deref().and_then(|h| p.strip_prefix(h).ok()) {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

/// Runs the wizard to its end: how it ended, or why it could not start (`main` prints that
/// and picks the exit code).
pub async fn run(cli: &Cli) -> Result<Ending, Error> {
    let entered = Instant::now();
    let (tx, rx) = unbounded_channel::<Action>();
    let setup = setup(cli, &tx).await.inspect_err(|e| {
        tracing::error!("cannot start the wizard: {e}");
    })?;
    let terminal = ratatui::try_init().map_err(|e| {
        Error::local(
            "cannot open the terminal (use `spot-connect apply` without one)",
            e,
        )
    })?;
    install_panic_hook();
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop.clone());
    let signals = spawn_signals(tx.clone());
    // Waits the HTTP layer makes (Retry-After, backoff) show in the log as they happen; during
    // a run the engine routes them through the run's progress instead (onboard::lock).
    let wait_tx = tx.clone();
    setup
        .session
        .http
        .set_wait_hook(Some(Arc::new(move |n: &crate::http::WaitNotice| {
            let _ = wait_tx.send(Action::Progress(Progress::Log {
                message: n.message(),
            }));
        })));
    let mut rt = Runner {
        tx: tx.clone(),
        session: setup.session,
        token: setup.token,
        settings_cli: cli.clone_settings(),
        prompt: setup.prompt,
        apply: None,
        tasks: vec![],
        plans: Arc::default(),
    };
    let (ending, state) = event_loop(terminal, setup.init, &mut rt, rx, entered).await;
    // Stop cleanly: the engine checkpoints after every write; cancelling it between two awaits
    // loses nothing a next run cannot find again.
    stop.store(true, Ordering::SeqCst);
    if let Some(h) = rt.apply.take() {
        h.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    for t in rt.tasks.drain(..) {
        t.abort();
    }
    ratatui::restore();
    // The input thread notices `stop` within one poll (250 ms). A terminal that is already gone
    // (an SSH drop right after `q`) can leave crossterm's read spinning on a dead tty: do not
    // wait for it forever; the process exits right after this and takes the thread with it.
    let waited = std::time::Instant::now();
    while !input.is_finished() && waited.elapsed() < Duration::from_millis(600) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if input.is_finished() {
        let _ = input.join();
    }
    signals.abort();
    // What state things are in, whatever pane the wizard ended on (the terminal may be gone
    // after an SSH drop: a failed write must not panic).
    if let Some(st) = state.as_ref() {
        let mut out = std::io::stdout().lock();
        for l in super::closing::closing_lines(st) {
            let _ = writeln!(out, "{l}");
        }
    }
    Ok(ending)
}

trait CliExt {
    fn clone_settings(&self) -> CliSettings;
}

/// The CLI options the effects need.
#[derive(Clone)]
struct CliSettings {
    policy: Option<std::path::PathBuf>,
    tenant: Option<String>,
    redirect_port: Option<u16>,
}

impl CliExt for Cli {
    fn clone_settings(&self) -> CliSettings {
        CliSettings {
            policy: self.opts.policy.clone(),
            tenant: self.opts.tenant.clone(),
            redirect_port: self.opts.redirect_port,
        }
    }
}

async fn event_loop(
    terminal: ratatui::DefaultTerminal,
    init: Init,
    rt: &mut Runner,
    mut rx: UnboundedReceiver<Action>,
    entered: Instant,
) -> (Ending, Option<State>) {
    let mut screen = Screen::new(terminal);
    let t0 = Instant::now();
    let wall0 = time::OffsetDateTime::now_utc();
    let now = || {
        let mono = t0.elapsed();
        Now {
            mono,
            wall: wall0 + mono,
        }
    };
    let mut state = State::new(init);
    let fx = update::start(&mut state, now().mono);
    rt.run_effects(fx);
    loop {
        // Everything that arrived is in the state: the latest frame only, and only if it
        // differs from what the terminal shows (`Screen::show`). Outside the full screen (the
        // address printed raw) nothing is drawn until a key.
        if !state.url_printed {
            let n = now();
            match screen.show(&state, n) {
                Ok(true) if screen.draws() == 1 => tracing::info!(
                    "first frame {} ms after the wizard started",
                    entered.elapsed().as_millis()
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("drawing failed: {e}");
                    return (Ending::Failed, Some(state));
                }
            }
        }
        // Something on screen moves: look again at its next frame; otherwise wait for news.
        let first = match screen::next_frame(&state, now().mono) {
            Some(at) => tokio::select! {
                a = rx.recv() => a,
                _ = tokio::time::sleep_until((t0 + at).into()) => Some(Action::Tick),
            },
            None => rx.recv().await,
        };
        let Some(first) = first else {
            return (Ending::Failed, Some(state));
        };
        let mut batch = vec![first];
        while let Ok(a) = rx.try_recv() {
            batch.push(a);
            if batch.len() >= 64 {
                break;
            }
        }
        for a in batch {
            let fx = update::update(&mut state, a, now().mono);
            let fx = screen_effects(&mut screen, fx);
            if let Some(ending) = rt.run_effects(fx) {
                return (ending, Some(state));
            }
        }
    }
}

/// Performs the effects on the terminal itself (clipboard, leaving and re-entering the full
/// screen); returns the others.
fn screen_effects(
    screen: &mut Screen<ratatui::backend::CrosstermBackend<std::io::Stdout>>,
    fx: Vec<Effect>,
) -> Vec<Effect> {
    use ratatui::crossterm::{cursor, execute, terminal as term};
    let mut rest = vec![];
    for e in fx {
        let r = match &e {
            Effect::Copy { text } => {
                let mut out = std::io::stdout().lock();
                out.write_all(&super::clipboard::osc52(text))
                    .and_then(|()| out.flush())
            }
            Effect::PrintUrl { url } => {
                let mut out = std::io::stdout().lock();
                // Raw mode stays on (the key that comes back is read as usual): "\r\n" ends
                // lines. The address is one line; the terminal wraps it softly, so a mouse
                // copy takes it whole.
                execute!(out, term::LeaveAlternateScreen, cursor::Show).and_then(|()| {
                    write!(
                        out,
                        "\r\nOpen this address in a browser (it is one line):\r\n\r\n{}\r\n\r\nPress any key to go back to spot-connect.\r\n",
                        crate::text::clean(url)
                    )?;
                    out.flush()
                })
            }
            Effect::ResumeScreen => {
                execute!(std::io::stdout(), term::EnterAlternateScreen, cursor::Hide)
                    // Everything is drawn again.
                    .and_then(|()| screen.clear())
            }
            _ => {
                rest.push(e);
                continue;
            }
        };
        if let Err(err) = r {
            tracing::warn!("terminal: {err}");
        }
    }
    rest
}

struct Runner {
    tx: UnboundedSender<Action>,
    session: Session,
    token: Option<Secret>,
    settings_cli: CliSettings,
    /// The sign-in prompt (a new sign-in session reports through it too).
    prompt: crate::azure::auth::PromptFn,
    apply: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The plans the engine made, by the wizard's plan generation: the wizard's state holds
    /// their views, and `Effect::Apply` names the generation it confirmed. Only the newest is
    /// kept (an older one is never applied: the wizard ignores its `Planned`).
    plans: Arc<std::sync::Mutex<Option<(u64, onboard::Plan)>>>,
}

impl Runner {
    // `..Default::default()` stays although every field is set today: a field added to
    // Settings (other branches add some) keeps its default here.
    #[allow(clippy::needless_update)]
    fn settings(&self, c: &Choices) -> Settings {
        Settings {
            app_name: c.app_name.clone(),
            app_names: c.app_names.clone(),
            role_name: c.role_name.clone(),
            secret_months: c.secret_months,
            spot_account: c.spot_account.clone(),
            policy_file: self.settings_cli.policy.clone(),
            take_over: c.take_over,
            management_group: c.management_group.clone(),
            ..Default::default()
        }
    }

    /// Runs `work` on the session in the background; the action it ends with reaches `update`.
    fn spawn<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = Action> + Send + 'static,
    {
        let fut = work(self.session.clone());
        let tx = self.tx.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = tx.send(fut.await);
        }));
    }

    /// As `spawn`, for work that reports progress: every progress event reaches `update`
    /// before the action it ends with.
    fn spawn_with_progress<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(Session, UnboundedSender<Progress>) -> Fut,
        Fut: Future<Output = Action> + Send + 'static,
    {
        let h = self.background_with_progress(work);
        self.tasks.push(h);
    }

    fn background_with_progress<F, Fut>(&self, work: F) -> JoinHandle<()>
    where
        F: FnOnce(Session, UnboundedSender<Progress>) -> Fut,
        Fut: Future<Output = Action> + Send + 'static,
    {
        let tx = self.tx.clone();
        let (ptx, fwd) = forward_progress(tx.clone());
        // The work owns the only sender: the forwarder ends after its last event.
        let fut = work(self.session.clone(), ptx);
        tokio::spawn(async move {
            let done = fut.await;
            let _ = fwd.await;
            let _ = tx.send(done);
        })
    }

    /// Signs in, then discovers tenants and subscriptions, in the background.
    fn sign_in(&mut self) {
        let s = self.session.clone();
        let tx = self.tx.clone();
        self.tasks.push(tokio::spawn(async move {
            match s.auth.sign_in().await {
                Ok(id) => {
                    let _ = tx.send(Action::SignedIn(Ok(id)));
                    use crate::azure::discovery::{discover_in, list_tenants};
                    // The tenants first: a tenant that asks to be signed in to again while its
                    // subscriptions are listed is named by its display name and domain.
                    let d = match list_tenants(&s.auth, &s.endpoints, &s.http).await {
                        Ok(ts) => {
                            let _ = tx.send(Action::TenantsListed(ts.clone()));
                            discover_in(&s.auth, &s.endpoints, &s.http, ts).await
                        }
                        Err(e) => Err(e),
                    };
                    let known = d.as_ref().ok().map(|d| {
                        let dir = s.state_dir.clone();
                        let subs: Vec<(String, String)> = d
                            .subscriptions
                            .iter()
                            .map(|x| (x.tenant_id.clone(), x.subscription_id.clone()))
                            .collect();
                        tokio::task::spawn_blocking(move || known_connected(&dir, &subs))
                    });
                    let tenants: Vec<String> = d
                        .as_ref()
                        .map(|d| d.tenants.iter().map(|t| t.tenant_id.clone()).collect())
                        .unwrap_or_default();
                    let found = d.is_ok();
                    let _ = tx.send(Action::Discovered(d.map_err(|e| info(&e))));
                    if let Some(Ok(ids)) = match known {
                        Some(h) => Some(h.await),
                        None => None,
                    } {
                        let _ = tx.send(Action::KnownConnected(ids));
                    }
                    // The picker's "whole management group" choice: the readable groups' trees.
                    if found {
                        let r = crate::onboard::groups::list_groups(&s, &tenants).await;
                        let _ = tx.send(Action::GroupsListed(r.map_err(|e| info(&e))));
                    }
                }
                Err(e) => {
                    let _ = tx.send(Action::SignedIn(Err(info(&e))));
                }
            }
        }));
    }

    /// Starts the effects; returns how the wizard ends when one says to quit.
    fn run_effects(&mut self, fx: Vec<Effect>) -> Option<Ending> {
        self.tasks.retain(|t| !t.is_finished());
        for e in fx {
            match e {
                Effect::Quit(ending) => return Some(ending),
                // The terminal's own (`screen_effects`).
                Effect::Copy { .. } | Effect::PrintUrl { .. } | Effect::ResumeScreen => {}
                Effect::LoadSpotAccounts { token } => {
                    let spot = if self.token.as_ref() == Some(&token) {
                        self.session.spot.clone()
                    } else {
                        // The operator typed another token: the session's client uses it from now on.
                        let c = compat::spot_client(&self.session, token.clone());
                        self.session.spot = c.clone();
                        self.token = Some(token);
                        c
                    };
                    self.spawn(|_| async move {
                        Action::SpotAccounts(spot.list_accounts().await.map_err(|e| info(&e)))
                    });
                }
                Effect::UseBrowserSignIn => {
                    match crate::azure::auth::Auth::with_redirect_port(
                        AuthMethod::Browser,
                        &self.session.endpoints,
                        &self.session.http,
                        self.settings_cli.tenant.clone(),
                        self.settings_cli.redirect_port,
                        self.prompt.clone(),
                    ) {
                        Ok(a) => {
                            self.session.auth = a;
                            self.sign_in();
                        }
                        Err(e) => {
                            let _ = self.tx.send(Action::SignedIn(Err(info(&e))));
                        }
                    }
                }
                Effect::PasteRedirect(address) => {
                    self.session.auth.paste_redirect(address.expose());
                }
                // The flow's future is dropped in the credential: nothing polls after this.
                Effect::CancelSignIn => self.session.auth.cancel_sign_in(),
                Effect::SignIn => self.sign_in(),
                Effect::Plan {
                    generation,
                    targets,
                    choices,
                } => {
                    let settings = self.settings(&choices);
                    let plans = self.plans.clone();
                    self.spawn(|s| async move {
                        let result = onboard::plan(&s, &targets, &settings)
                            .await
                            .map_err(|e| info(&e));
                        let result = result.map(|plan| {
                            let view = plan.view().clone();
                            let mut kept = plans.lock().unwrap_or_else(|e| e.into_inner());
                            if kept.as_ref().is_none_or(|(g, _)| *g <= generation) {
                                *kept = Some((generation, plan));
                            }
                            view
                        });
                        Action::Planned { generation, result }
                    });
                }
                Effect::ReadStatus { targets, choices } => {
                    let settings = self.settings(&choices);
                    self.spawn(|s| async move {
                        let r = onboard::status::status(&s, &targets, &settings).await;
                        Action::StatusRead(r.map_err(|e| info(&e)))
                    });
                }
                Effect::Rotate { tenant, choices } => {
                    let settings = self.settings(&choices);
                    self.spawn_with_progress(|s, ptx| async move {
                        let r = onboard::rotate::rotate(&s, &tenant, &settings, ptx).await;
                        Action::Rotated(r.map(Box::new).map_err(|e| info(&e)))
                    });
                }
                Effect::PlanRemoval { targets, choices } => {
                    let settings = self.settings(&choices);
                    self.spawn(|s| async move {
                        let r = onboard::remove::plan_removal(
                            &s,
                            &targets,
                            &settings,
                            onboard::remove::RemoveOptions::default(),
                        )
                        .await;
                        Action::RemovalPlanned(r.map_err(|e| info(&e)))
                    });
                }
                Effect::Remove { plans } => {
                    self.spawn_with_progress(|s, ptx| async move {
                        let mut out = vec![];
                        for p in &plans {
                            out.extend(onboard::remove::remove(&s, p, ptx.clone()).await);
                        }
                        Action::Removed(out)
                    });
                }
                Effect::Apply { generation } => {
                    if let Some(h) = &self.apply
                        && !h.is_finished()
                    {
                        continue;
                    }
                    let kept = self.plans.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let Some((_, plan)) = kept.filter(|(g, _)| *g == generation) else {
                        // The wizard confirms only a plan it was sent: nothing to carry out.
                        tracing::error!("no plan of generation {generation} to apply");
                        let e = crate::error::Error::Internal(
                            "the confirmed plan is not the one made last: nothing was changed"
                                .into(),
                        );
                        let _ = self.tx.send(Action::Applied(Err(info(&e))));
                        continue;
                    };
                    let h = self.background_with_progress(|s, ptx| async move {
                        let mut r = onboard::apply(&s, &plan, ptx).await;
                        for report in &mut r.reports {
                            save_report(&s.state_dir, report);
                        }
                        Action::Applied(Ok(Box::new(r)))
                    });
                    self.apply = Some(h);
                }
            }
        }
        None
    }
}

/// The subscriptions whose state file (this state directory's record of past runs) says they
/// were connected to Spot: the picker's "connected" badge. Read-only; an unreadable file is
/// no badge.
fn known_connected(
    state_dir: &std::path::Path,
    subs: &[(String, String)],
) -> std::collections::BTreeSet<String> {
    use crate::onboard::model::Step;
    use crate::onboard::state::{State as Saved, StepStatus, state_path};
    subs.iter()
        .filter(|(t, s)| state_path(state_dir, t, s).exists())
        .filter(|(t, s)| {
            Saved::load(state_dir, t, s)
                .is_ok_and(|st| st.steps.get(&Step::ConnectSpot) == Some(&StepStatus::Done))
        })
        .map(|(_, s)| s.clone())
        .collect()
}

/// A progress channel whose events reach the wizard as actions; the handle ends after the last.
fn forward_progress(tx: UnboundedSender<Action>) -> (UnboundedSender<Progress>, JoinHandle<()>) {
    let (ptx, mut prx) = unbounded_channel::<Progress>();
    let fwd = tokio::spawn(async move {
        while let Some(p) = prx.recv().await {
            if tx.send(Action::Progress(p)).is_err() {
                break;
            }
        }
    });
    (ptx, fwd)
}

/// Saves the report under `<state-dir>/reports/` (0600), with its own path in it.
fn save_report(state_dir: &std::path::Path, report: &mut crate::onboard::model::Report) {
    if let Err(e) = crate::onboard::state::save_report(state_dir, report) {
        tracing::warn!("could not save the report: {e}");
    }
}

/// Terminal events, read on their own thread (crossterm's read blocks).
fn spawn_input(tx: UnboundedSender<Action>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match event::poll(Duration::from_millis(250)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let a = match event::read() {
                Ok(Event::Key(k)) => Action::Key(k),
                Ok(Event::Resize(w, h)) => Action::Resize(w, h),
                Ok(_) => continue,
                // The terminal is gone (SSH drop): end as on SIGHUP.
                Err(_) => Action::Signal(SignalKind::Hup),
            };
            let gone = matches!(a, Action::Signal(_));
            if tx.send(a).is_err() || gone {
                break;
            }
        }
    })
}

fn spawn_signals(tx: UnboundedSender<Action>) -> JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind as K, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(K::interrupt()),
            signal(K::terminate()),
            signal(K::hangup()),
        ) else {
            tracing::warn!("cannot listen for signals");
            return;
        };
        loop {
            let kind = tokio::select! {
                _ = int.recv() => SignalKind::Int,
                _ = term.recv() => SignalKind::Term,
                _ = hup.recv() => SignalKind::Hup,
            };
            if tx.send(Action::Signal(kind)).is_err() {
                break;
            }
        }
    })
}

/// Restores the terminal before anything is printed; the message goes to the log, and only
/// where it happened to the terminal (a payload could carry data we do not control). Then the
/// process ends: a panic in a background task would otherwise leave the wizard running with
/// no screen, cursor hidden, deaf to `q`.
fn install_panic_hook() {
    std::panic::set_hook(panic_hook(
        || {
            ratatui::restore();
            let _ =
                ratatui::crossterm::execute!(std::io::stderr(), ratatui::crossterm::cursor::Show);
        },
        |code| std::process::exit(code),
    ));
}

/// The exit code after a panic in the wizard.
pub const PANIC_EXIT: i32 = 101;

/// The wizard's panic hook: `restore` the terminal, log, print one line without the payload,
/// then `end` the process with [`PANIC_EXIT`] (parameters so the path is testable).
pub fn panic_hook(
    restore: impl Fn() + Send + Sync + 'static,
    end: impl Fn(i32) + Send + Sync + 'static,
) -> Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static> {
    Box::new(move |info| {
        restore();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!("panic at {at}: {msg}");
        eprintln!(
            "spot-connect: internal error at {at} (details in the log); progress so far is saved"
        );
        end(PANIC_EXIT);
    })
}

/// Building the session from the engine's pieces.
mod compat {
    use super::*;
    use crate::azure::auth::PromptFn;
    use crate::cli::CommonOpts;

    /// `Session::build`, except that a missing Spot token is not an error here: the wizard asks
    /// for it on its first pane. A token given explicitly (the simulator's) wins over the
    /// environment.
    pub fn build_session(
        opts: &CommonOpts,
        endpoints: Option<(Endpoints, Secret)>,
        prompt: PromptFn,
    ) -> Result<Session, Error> {
        let explicit = endpoints.as_ref().map(|(_, t)| t.clone());
        match Session::build(opts, endpoints.clone(), prompt.clone()) {
            Ok(mut s) => {
                if let Some(t) = explicit {
                    s.spot = SpotClient::new(&s.endpoints.spot, s.http.clone(), t);
                }
                Ok(s)
            }
            Err(e)
                if explicit.is_none()
                    && opts.endpoints.is_none()
                    && opts.spot_token_file.is_none() =>
            {
                tracing::info!("no Spot token yet ({e}): the wizard asks for it");
                Session::with_token(
                    opts,
                    Endpoints::for_cloud(opts.cloud),
                    Secret::new(""),
                    prompt,
                )
            }
            Err(e) => Err(e),
        }
    }

    pub fn spot_client(s: &Session, token: Secret) -> SpotClient {
        SpotClient::new(&s.endpoints.spot, s.http.clone(), token)
    }
}

#[cfg(test)]
mod tests {
    use super::known_connected;
    use crate::onboard::model::Step;
    use crate::onboard::state::{State, StepStatus};

    #[test]
    fn only_subscriptions_recorded_connected_get_the_badge() {
        let dir = tempfile::tempdir().unwrap();
        let mut done = State::new("t1", "s-done");
        done.steps.insert(Step::ConnectSpot, StepStatus::Done);
        done.save(dir.path()).unwrap();
        // Half way: the role assigned, Spot not yet connected.
        let mut half = State::new("t1", "s-half");
        half.steps.insert(Step::RoleAssignment, StepStatus::Done);
        half.save(dir.path()).unwrap();
        let subs = [
            ("t1".to_string(), "s-done".to_string()),
            ("t1".to_string(), "s-half".to_string()),
            ("t1".to_string(), "s-none".to_string()),
        ];
        let got: Vec<String> = known_connected(dir.path(), &subs).into_iter().collect();
        assert_eq!(got, ["s-done"]);
    }
}
