//! The wizard's state. Changed only by `app::update`; read by `ui::draw`.

use super::keymap::Ctx;
use crate::azure::auth::AuthMethod;
use crate::azure::auth::Identity;
use crate::azure::discovery::{Discovery, Subscription};
use crate::onboard::PlanView;
use crate::onboard::Target;
use crate::onboard::model::{
    BrowserPrompt, DeviceCodePrompt, ErrorInfo, Outcome, PlanItem, RunReport, Step,
};
use crate::onboard::remove::{RemovalAction, RemovalPlan, RemovalResult};
use crate::onboard::rotate::RotateReport;
use crate::onboard::status::SubscriptionStatus;
use crate::spot::SpotAccount;
use ratatui::style::Style;
use ratatui_textarea::TextArea;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use time::OffsetDateTime;

/// The time a frame is drawn at: monotonic time since the wizard started (spinners, elapsed
/// times, retry countdowns) and the wall clock (device-code expiry). Passed in, never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Duration,
    pub wall: OffsetDateTime,
}

/// The panes, in the order the operator walks through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    /// The start screen: connect, status, rotate, remove.
    Start,
    SpotAccount,
    AzureLogin,
    Subscription,
    AppRegistration,
    ClientSecret,
    CustomRole,
    Confirm,
    /// Onboarding runs: role assignment, connect, live retries.
    Apply,
    Done,
    /// The subscriptions of the signed-in tenants, with their verdict.
    Status,
    /// Rotate the client secret of a tenant's app.
    Rotate,
    /// Remove what spot-connect created for a subscription.
    Remove,
}

impl Pane {
    pub const WIZARD: [Pane; 7] = [
        Pane::SpotAccount,
        Pane::AzureLogin,
        Pane::Subscription,
        Pane::AppRegistration,
        Pane::ClientSecret,
        Pane::CustomRole,
        Pane::Confirm,
    ];

    pub fn prev(self) -> Option<Pane> {
        if matches!(
            self,
            Pane::SpotAccount | Pane::Status | Pane::Rotate | Pane::Remove | Pane::Done
        ) {
            return Some(Pane::Start);
        }
        let i = Pane::WIZARD.iter().position(|p| *p == self)?;
        i.checked_sub(1).map(|j| Pane::WIZARD[j])
    }

    /// Panes drawn over the whole width (no step sidebar).
    pub fn full_width(self) -> bool {
        matches!(
            self,
            Pane::Start | Pane::Status | Pane::Rotate | Pane::Remove
        )
    }

    /// The sidebar row this pane belongs to (None: confirmation).
    pub fn step(self) -> Option<Step> {
        Some(match self {
            Pane::SpotAccount => Step::SpotAccount,
            Pane::AzureLogin => Step::AzureLogin,
            Pane::Subscription => Step::Subscription,
            Pane::AppRegistration => Step::AppRegistration,
            Pane::ClientSecret => Step::ClientSecret,
            Pane::CustomRole => Step::CustomRole,
            Pane::Confirm | Pane::Apply => return None,
            Pane::Start | Pane::Status | Pane::Rotate | Pane::Remove => return None,
            Pane::Done => Step::Done,
        })
    }
}

/// One sidebar row.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Pending,
    Running {
        since: Duration,
        detail: String,
    },
    Waiting {
        since: Duration,
        reason: String,
        attempt: u32,
        next_in: Duration,
        at: Duration,
    },
    Done {
        outcome: Outcome,
        id: Option<String>,
        detail: String,
        elapsed: Option<Duration>,
    },
    /// Done by the operator (a choice made, signed in): nothing was created or reused yet.
    Chosen {
        id: Option<String>,
        detail: String,
    },
    Failed {
        error: ErrorInfo,
        elapsed: Option<Duration>,
    },
    Skipped {
        reason: String,
    },
}

impl Status {
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running { .. } | Status::Waiting { .. })
    }
    pub fn since(&self) -> Option<Duration> {
        match self {
            Status::Running { since, .. } | Status::Waiting { since, .. } => Some(*since),
            _ => None,
        }
    }
}

/// Something loaded in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Idle,
    Loading { since: Duration },
    Ready(T),
    Failed(ErrorInfo),
}

impl<T> Load<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(t) => Some(t),
            _ => None,
        }
    }
    pub fn is_loading(&self) -> bool {
        matches!(self, Load::Loading { .. })
    }
}

/// The onboarding run itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    NotStarted,
    Running {
        since: Duration,
    },
    /// The plan was carried out (one report per subscription).
    Finished(Box<RunReport>),
    Failed(ErrorInfo),
}

/// Which text field has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Token,
    Filter,
    AppName,
    RoleName,
    /// The address the browser ended on (browser sign-in).
    Paste,
}

/// Where an error came from, so `r` knows what to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    SpotAccounts,
    SignIn,
    Discovery,
    Plan,
    Apply,
    Status,
    Rotate,
    Remove,
}

/// The start screen's choices: label and what it does.
pub const MENU: [(&str, &str); 4] = [
    (
        "Connect subscriptions",
        "app, secret, role, assignment; credentials to Spot",
    ),
    ("Status", "connected, expiring or broken, and why"),
    (
        "Rotate secret",
        "a new secret to Spot, then the old one removed",
    ),
    ("Remove", "undo what spot-connect created"),
];

/// Rotation and removal: choose, (plan,) confirm, run, result.
#[derive(Debug, Clone, PartialEq)]
pub enum OpPhase<R> {
    Choose,
    Planning { since: Duration },
    Confirm,
    Running { since: Duration },
    Finished(R),
    Failed(ErrorInfo),
}

impl<R> OpPhase<R> {
    pub fn running(&self) -> bool {
        matches!(self, OpPhase::Running { .. } | OpPhase::Planning { .. })
    }
}

/// One row of the removal review (what `plan_removal` found), as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalRow {
    pub object: String,
    pub name: String,
    pub id: String,
    pub action: RemovalAction,
    pub reason: String,
    pub hint: Option<crate::error::Hint>,
}

impl RemovalRow {
    pub fn of(p: &RemovalPlan) -> Vec<RemovalRow> {
        p.items
            .iter()
            .map(|i| RemovalRow {
                object: i.object.clone(),
                name: i.name.clone(),
                id: i.id.clone(),
                action: i.action,
                reason: i.reason.clone(),
                hint: i.hint,
            })
            .collect()
    }
}

/// One line of a rotation's or removal's live progress.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLine {
    pub step: Step,
    pub subscription: Option<String>,
    pub status: Status,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("demo", &self.demo)
            .field("cloud", &self.cloud)
            .field("pane", &self.pane)
            .field("field", &self.field)
            .field("steps", &self.steps)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Client secret lifetimes offered (months).
pub const SECRET_MONTHS: [u32; 4] = [3, 6, 12, 24];

/// No derived `Debug`: the token field and `token_loaded` hold the Spot token (see the manual
/// impl below, which leaves them out).
#[derive(Clone)]
pub struct State {
    pub demo: bool,
    /// False when NO_COLOR is set.
    pub color: bool,
    /// "public", "usgov", "china", "custom".
    pub cloud: String,
    pub auth_method: AuthMethod,
    /// Terminal size.
    pub size: (u16, u16),
    pub pane: Pane,
    pub field: Option<Field>,
    pub steps: BTreeMap<Step, Status>,

    pub token: TextArea<'static>,
    /// Where the prefilled token came from ("SPOTINST_TOKEN", "the simulator").
    pub token_source: Option<String>,
    /// The token text the account list was loaded with.
    pub token_loaded: String,
    pub accounts: Load<Vec<SpotAccount>>,
    /// 0: automatic; 1..=n: the accounts; n+1: create a new one.
    pub account_sel: usize,
    /// `act-…` once known (chosen, or reported by the run).
    pub spot_account_id: Option<String>,

    pub sign_in: Load<Identity>,
    pub device_code: Option<DeviceCodePrompt>,
    /// The browser sign-in waiting for its redirect or a pasted address.
    pub browser: Option<BrowserPrompt>,
    /// The pasted address (masked: it carries the sign-in code).
    pub paste: TextArea<'static>,
    /// Why the last pasted address or redirect was refused.
    pub sign_in_note: Option<String>,
    /// A tenant that asked to be signed in to again: (tenant, why). Its prompt is shown over
    /// whatever pane is open.
    pub sign_in_again: Option<(String, String)>,
    /// The operator closed the sign-in-again box (Esc): the sign-in still waits, `s` shows it.
    pub sign_in_again_hidden: bool,
    /// The tenant (as shown) whose sign-in again the operator just cancelled (Esc): the pane
    /// says so until the next key.
    pub sign_in_cancelled: Option<String>,
    /// The tenants the sign-in sees, as listed before their subscriptions (names them while
    /// the discovery runs).
    pub tenants_listed: Vec<crate::azure::discovery::Tenant>,
    /// What the last copy key put on the clipboard ("the sign-in address"), shown under the
    /// prompt until the prompt changes.
    pub copied: Option<String>,
    /// The full screen is left: the sign-in address is printed raw on one line until a key.
    pub url_printed: bool,
    pub discovery: Load<Discovery>,
    pub filter: TextArea<'static>,
    /// Index into `visible_subscriptions()`.
    pub sub_sel: usize,
    pub target: Option<Target>,
    /// Subscriptions toggled with Space (ids).
    pub selected: BTreeSet<String>,
    /// Every subscription of the run (several: bulk); `target` is the first.
    pub targets: Vec<Target>,
    /// The management groups the sign-in can read, resolved (the picker's "whole management
    /// group" choice).
    pub groups: Load<Vec<crate::onboard::fleet::MgResolved>>,
    /// The picker shows the management-group tree (`m`) instead of the subscriptions.
    pub group_view: bool,
    /// Index into `group_rows()` (a group's row).
    pub group_sel: usize,
    /// The run is for a whole management group (chosen in the picker): the engine's scope.
    pub chosen_group: Option<crate::onboard::fleet::MgScope>,
    /// Subscriptions this state directory's records show connected (the picker's badge).
    pub connected: BTreeSet<String>,
    /// Per subscription of a bulk run: its latest step and status.
    pub bulk_rows: BTreeMap<String, (Step, Status)>,

    pub menu_sel: usize,
    pub health: Load<Vec<SubscriptionStatus>>,
    pub health_sel: usize,
    /// Index into the tenants of the discovery.
    pub tenant_sel: usize,
    pub rotate: OpPhase<Box<RotateReport>>,
    /// Before the rotation's yes: the tenant's subscriptions as read (status), so the prompt
    /// lists the Spot accounts and the key ids the rotation changes.
    pub rotate_preview: Load<Vec<SubscriptionStatus>>,
    /// Index into the selectable subscriptions (Remove).
    pub remove_sel: usize,
    pub removal_plans: Vec<RemovalPlan>,
    /// The plans' items, as the review shows them.
    pub removal_rows: Vec<RemovalRow>,
    pub remove: OpPhase<Vec<RemovalResult>>,
    pub op_lines: Vec<OpLine>,

    pub plan: Load<PlanView>,
    pub plan_gen: u64,
    pub app_name: TextArea<'static>,
    pub app_name_default: Option<String>,
    /// Several tenants: the app registration's name the operator typed for each (tenant id ->
    /// name); a tenant not in it gets its default (or `--app-name`).
    pub app_names: BTreeMap<String, String>,
    /// Each tenant's app registration name in the latest plan (kept while the next one is made).
    pub planned_app_names: BTreeMap<String, String>,
    /// Several tenants: which tenant's name the App registration field edits (index into
    /// `run_tenants()`).
    pub name_tenant_sel: usize,
    /// `--app-name` / `--role-name` as given (None: the per-tenant default).
    pub app_name_cli: Option<String>,
    pub role_name_cli: Option<String>,
    pub role_name: TextArea<'static>,
    pub role_name_default: Option<String>,
    /// Index into `SECRET_MONTHS`.
    pub months_sel: usize,
    /// First line of the review shown (it scrolls when the plan does not fit).
    pub review_scroll: usize,

    pub run: Run,
    /// The step the Apply pane shows (the latest with news).
    pub apply_focus: Option<Step>,
    /// The subscription the focused step's latest news came from (None: a tenant's shared
    /// object), so a run of several never mixes two subscriptions' details.
    pub apply_focus_sub: Option<String>,
    pub last_error: Option<(Origin, ErrorInfo)>,

    /// The state directory, as shown; report paths under it are shown relative to it.
    pub state_dir: Option<String>,
    pub log: VecDeque<LogLine>,
    /// The log file's path, as shown (the log pane's title names it).
    pub log_path: Option<String>,
    /// Lines the log pane is scrolled back from its end (0: it follows the newest).
    pub log_scroll: usize,
    /// The search open (`f`), if any.
    pub search: Option<Search>,
    /// The time of the latest action (time since the wizard started): what log lines are
    /// stamped with.
    pub clock: Duration,
    pub show_log: bool,
    pub show_help: bool,
    pub confirm_quit: bool,
    /// The operator chose, in the review, to take over connections that are not ours
    /// (`--take-over`): the plan is made again with it.
    pub take_over: bool,
    /// Set when the wizard ends: how (`main` picks the exit code from it).
    pub exit: Option<Ending>,
}

/// How the wizard ended, as data (never `Changes` or `Usage`): `main` turns it into the exit
/// code as it does a command's result.
pub use crate::cli::exit::Ending;

pub const LOG_LINES: usize = 200;

/// One line of the log pane: when it came (time since the wizard started; shown as the wall
/// clock's HH:MM:SS, from the frame's `Now`) and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: Duration,
    pub text: String,
}

/// What the search (`f`) looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchIn {
    /// The list on screen: its highlight jumps to the next row matching the typed text.
    List,
    /// The log pane: it scrolls to the next line matching.
    Log,
}

/// Type-to-search (`f`, then letters). While it is open typed keys go to it; ↓/↑ (Ctrl-N /
/// Ctrl-P) jump to the next / previous match, Enter keeps the place found, Esc goes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub within: SearchIn,
    pub text: String,
    /// The highlighted row (list) or the scroll (log) when the search began (Esc returns).
    pub origin: usize,
    /// The typed text matches nothing.
    pub missed: bool,
}

fn field(placeholder: &str, text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.set_placeholder_text(placeholder);
    t.set_cursor_line_style(Style::default());
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

/// What the wizard starts from (the CLI's choices).
#[derive(Debug, Clone, Default)]
pub struct Init {
    pub demo: bool,
    pub color: bool,
    pub cloud: String,
    pub auth_method: AuthMethod,
    pub token_prefill: Option<(String, String)>,
    pub app_name: Option<String>,
    pub role_name: Option<String>,
    pub secret_months: u32,
    pub size: (u16, u16),
    /// The state directory, as shown (`~/…` under the home directory).
    pub state_dir: Option<String>,
    /// The log file's path, as shown.
    pub log_path: Option<String>,
    /// `--subscription` ids: preselected, and the start screen is skipped.
    pub subscriptions: Vec<String>,
}

impl State {
    pub fn new(init: Init) -> State {
        let (token_text, token_source) = match init.token_prefill {
            Some((t, src)) => (t, Some(src)),
            None => (String::new(), None),
        };
        let mut token = field("paste an Organization Admin API token", &token_text);
        token.set_mask_char('•');
        let months_sel = SECRET_MONTHS
            .iter()
            .position(|m| *m == init.secret_months)
            .unwrap_or(2);
        let mut steps = BTreeMap::new();
        for s in Step::ALL {
            steps.insert(s, Status::Pending);
        }
        State {
            demo: init.demo,
            color: init.color,
            cloud: init.cloud,
            auth_method: init.auth_method,
            size: init.size,
            pane: if init.subscriptions.is_empty() {
                Pane::Start
            } else {
                Pane::SpotAccount
            },
            field: None,
            steps,
            token,
            token_source,
            token_loaded: String::new(),
            accounts: Load::Idle,
            account_sel: 0,
            spot_account_id: None,
            sign_in: Load::Idle,
            device_code: None,
            browser: None,
            paste: {
                let mut p = field("paste the address the browser ended on", "");
                p.set_mask_char('•');
                p
            },
            sign_in_note: None,
            sign_in_again: None,
            sign_in_again_hidden: false,
            sign_in_cancelled: None,
            tenants_listed: vec![],
            copied: None,
            url_printed: false,
            discovery: Load::Idle,
            filter: field("type to filter by name or id", ""),
            sub_sel: 0,
            target: None,
            selected: init.subscriptions.iter().cloned().collect(),
            targets: vec![],
            connected: BTreeSet::new(),
            groups: Load::Idle,
            group_view: false,
            group_sel: 0,
            chosen_group: None,
            bulk_rows: BTreeMap::new(),
            menu_sel: 0,
            health: Load::Idle,
            health_sel: 0,
            tenant_sel: 0,
            rotate: OpPhase::Choose,
            rotate_preview: Load::Idle,
            remove_sel: 0,
            removal_plans: vec![],
            removal_rows: vec![],
            remove: OpPhase::Choose,
            op_lines: vec![],
            plan: Load::Idle,
            plan_gen: 0,
            app_name: field(
                "default name (from the plan)",
                init.app_name.as_deref().unwrap_or(""),
            ),
            app_name_default: init.app_name.clone(),
            app_names: BTreeMap::new(),
            planned_app_names: BTreeMap::new(),
            name_tenant_sel: 0,
            app_name_cli: init.app_name,
            role_name_cli: init.role_name.clone(),
            role_name: field(
                "Spot.io Custom Role",
                init.role_name.as_deref().unwrap_or(""),
            ),
            role_name_default: init.role_name,
            months_sel,
            review_scroll: 0,
            run: Run::NotStarted,
            apply_focus: None,
            apply_focus_sub: None,
            last_error: None,
            state_dir: init.state_dir,
            log: VecDeque::new(),
            log_path: init.log_path,
            log_scroll: 0,
            search: None,
            clock: Duration::ZERO,
            show_log: false,
            show_help: false,
            confirm_quit: false,
            take_over: false,
            exit: None,
        }
    }

    pub fn token_text(&self) -> String {
        self.token.lines().join("")
    }
    pub fn filter_text(&self) -> String {
        self.filter.lines().join("")
    }
    pub fn app_name_text(&self) -> String {
        self.app_name.lines().join("").trim().to_string()
    }
    pub fn role_name_text(&self) -> String {
        self.role_name.lines().join("").trim().to_string()
    }
    pub fn secret_months(&self) -> u32 {
        SECRET_MONTHS[self.months_sel.min(SECRET_MONTHS.len() - 1)]
    }

    pub fn accounts_list(&self) -> &[SpotAccount] {
        self.accounts.ready().map(Vec::as_slice).unwrap_or(&[])
    }
    /// Rows of the account list: automatic, the accounts, create new.
    pub fn account_rows(&self) -> usize {
        self.accounts_list().len() + 2
    }

    /// Subscriptions matching the filter, grouped by tenant (in the discovery's tenant order),
    /// each tenant's in discovery order.
    pub fn visible_subscriptions(&self) -> Vec<&Subscription> {
        let f = self.filter_text().to_lowercase();
        match self.discovery.ready() {
            None => vec![],
            Some(d) => {
                let mut v: Vec<&Subscription> = d
                    .subscriptions
                    .iter()
                    .filter(|s| {
                        f.is_empty()
                            || s.display_name.to_lowercase().contains(&f)
                            || s.subscription_id.to_lowercase().contains(&f)
                    })
                    .collect();
                let rank = |t: &str| {
                    d.tenants
                        .iter()
                        .position(|x| x.tenant_id == t)
                        .unwrap_or(usize::MAX)
                };
                v.sort_by_key(|s| rank(&s.tenant_id));
                v
            }
        }
    }

    /// The discovery spans several tenants: the picker groups its rows under tenant headers.
    pub fn discovery_tenants(&self) -> usize {
        self.discovery.ready().map_or(0, |d| {
            let mut ts: Vec<&str> = d
                .subscriptions
                .iter()
                .map(|s| s.tenant_id.as_str())
                .collect();
            ts.sort();
            ts.dedup();
            ts.len()
        })
    }

    /// A tenant as the operator knows it: "Contoso (contoso.example)", its name alone, or
    /// (not discovered) its id.
    pub fn tenant_label(&self, tenant_id: &str) -> String {
        let t = self
            .discovery
            .ready()
            .and_then(|d| d.tenants.iter().find(|t| t.tenant_id == tenant_id))
            .or_else(|| {
                self.tenants_listed
                    .iter()
                    .find(|t| t.tenant_id == tenant_id)
            });
        match t {
            Some(t) => match &t.default_domain {
                Some(dom) if !dom.is_empty() && !t.display_name.is_empty() => {
                    format!("{} ({dom})", t.display_name)
                }
                _ if !t.display_name.is_empty() => t.display_name.clone(),
                Some(dom) => dom.clone(),
                None => tenant_id.to_string(),
            },
            None => tenant_id.to_string(),
        }
    }

    /// The tenants of the run's subscriptions (the chosen ones, else the plan's), in order.
    pub fn run_tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        let from: Vec<&str> = if self.targets.is_empty() {
            match (self.plan.ready(), &self.target) {
                (Some(p), _) => p
                    .subscriptions
                    .iter()
                    .map(|t| t.tenant_id.as_str())
                    .collect(),
                (None, Some(t)) => vec![t.tenant_id.as_str()],
                (None, None) => vec![],
            }
        } else {
            self.targets.iter().map(|t| t.tenant_id.as_str()).collect()
        };
        for t in from {
            if !v.iter().any(|x| x == t) {
                v.push(t.to_string());
            }
        }
        v
    }

    /// The run spans several tenants: one app registration name per tenant.
    pub fn several_tenants(&self) -> bool {
        self.run_tenants().len() > 1
    }

    /// The tenant whose app registration name the field edits (several tenants).
    pub fn name_tenant(&self) -> Option<String> {
        let ts = self.run_tenants();
        ts.get(self.name_tenant_sel.min(ts.len().saturating_sub(1)))
            .cloned()
    }

    /// The app registration's name in `tenant` as it stands: typed, else the latest plan's.
    pub fn app_name_in(&self, tenant: &str) -> Option<String> {
        self.app_names
            .get(tenant)
            .or_else(|| self.planned_app_names.get(tenant))
            .cloned()
    }

    /// Subscriptions that can be onboarded, status-checked or removed, in discovery order.
    pub fn selectable_subscriptions(&self) -> Vec<&Subscription> {
        match self.discovery.ready() {
            None => vec![],
            Some(d) => d.subscriptions.iter().filter(|s| s.selectable()).collect(),
        }
    }

    /// Tenants that have at least one selectable subscription.
    pub fn tenants_with_subscriptions(&self) -> Vec<(String, String)> {
        let Some(d) = self.discovery.ready() else {
            return vec![];
        };
        d.tenants
            .iter()
            .filter(|t| {
                d.subscriptions
                    .iter()
                    .any(|s| s.tenant_id == t.tenant_id && s.selectable())
            })
            .map(|t| (t.tenant_id.clone(), t.display_name.clone()))
            .collect()
    }

    /// Rotation or removal runs.
    pub fn op_active(&self) -> bool {
        self.rotate.running() || self.remove.running()
    }

    /// Something runs that `q` should ask about.
    pub fn busy(&self) -> bool {
        self.run_active()
            || matches!(self.rotate, OpPhase::Running { .. })
            || matches!(self.remove, OpPhase::Running { .. })
    }

    pub fn selected_subscription(&self) -> Option<&Subscription> {
        self.visible_subscriptions().get(self.sub_sel).copied()
    }

    pub fn tenant_name(&self, tenant_id: &str) -> Option<String> {
        let d = self.discovery.ready()?;
        d.tenants
            .iter()
            .find(|t| t.tenant_id == tenant_id)
            .map(|t| t.display_name.clone())
    }

    pub fn plan_items(&self, step: Step) -> Vec<&PlanItem> {
        match self.plan.ready() {
            Some(p) => p.items.iter().filter(|i| i.step == step).collect(),
            None => vec![],
        }
    }

    pub fn status(&self, step: Step) -> &Status {
        self.steps.get(&step).unwrap_or(&Status::Pending)
    }

    pub fn run_active(&self) -> bool {
        matches!(self.run, Run::Running { .. })
    }

    /// A spinner or countdown is on screen: the loop ticks only then.
    pub fn animating(&self) -> bool {
        self.steps.values().any(Status::is_active)
            || self.run_active()
            || (self.device_code.is_some() && self.sign_in.is_loading())
            || self.browser.is_some()
            || self.reauth_open()
            || self.accounts.is_loading()
            || self.discovery.is_loading()
            || self.plan.is_loading()
            || self.health.is_loading()
            || self.op_active()
    }

    /// A tenant's sign-in-again prompt is open (over every pane; it takes the keys).
    pub fn reauth_open(&self) -> bool {
        self.reauth_waiting() && !self.sign_in_again_hidden
    }

    /// A tenant's sign-in again waits for the operator (its box open, or closed with Esc).
    pub fn reauth_waiting(&self) -> bool {
        self.sign_in_again.is_some() && (self.browser.is_some() || self.device_code.is_some())
    }

    /// The browser sign-in's prompt is on screen (Azure login pane, or the sign-in-again box).
    pub fn browser_shown(&self) -> bool {
        self.browser.is_some()
            && if self.sign_in_again.is_some() {
                self.reauth_open()
            } else {
                self.pane == Pane::AzureLogin && self.sign_in.is_loading()
            }
    }

    /// The plan under review has a blocked item: nothing can be written.
    pub fn plan_blocked(&self) -> bool {
        self.plan
            .ready()
            .is_some_and(|p| p.blocked().next().is_some())
    }

    /// The review cannot go ahead: a blocked item, or one named Spot account for several
    /// subscriptions.
    pub fn review_blocked(&self) -> bool {
        self.pane == Pane::Confirm
            && (self.plan_blocked()
                || (self.plan.ready().is_some() && one_account_for_several(self)))
    }

    /// A device code is on screen (Azure login pane, or the sign-in-again box).
    pub fn code_shown(&self) -> bool {
        self.device_code.is_some()
            && self.browser.is_none()
            && (self.reauth_open() || (self.pane == Pane::AzureLogin && self.sign_in.is_loading()))
    }

    /// The device code on screen, if any (never a token: the code the operator types).
    pub fn sign_in_code(&self) -> Option<&str> {
        self.code_shown()
            .then(|| self.device_code.as_ref().map(|d| d.user_code.as_str()))
            .flatten()
    }

    /// The sign-in address on screen: the browser sign-in's, or the device code's page.
    pub fn sign_in_url(&self) -> Option<&str> {
        if self.browser_shown() {
            return self.browser.as_ref().map(|b| b.url.as_str());
        }
        self.code_shown()
            .then(|| {
                self.device_code
                    .as_ref()
                    .map(|d| d.verification_uri.as_str())
            })
            .flatten()
    }

    /// The device-code sign-in failed because Conditional Access blocks it (`b` switches to
    /// the browser sign-in).
    pub fn device_code_blocked(&self) -> bool {
        self.auth_method == AuthMethod::DeviceCode
            && matches!(&self.sign_in, Load::Failed(e)
                if e.api.as_ref().is_some_and(crate::azure::device_code::device_code_blocked))
    }

    /// The retry `r` would do, if any.
    pub fn retryable(&self) -> Option<Origin> {
        if self.run_active() {
            return None;
        }
        // Only where the error is on screen.
        let (origin, _) = self.last_error.as_ref()?;
        let here = match origin {
            Origin::SpotAccounts => self.pane == Pane::SpotAccount,
            Origin::SignIn | Origin::Discovery => {
                matches!(self.pane, Pane::AzureLogin | Pane::Subscription)
            }
            Origin::Plan => matches!(
                self.pane,
                Pane::AppRegistration | Pane::ClientSecret | Pane::CustomRole | Pane::Confirm
            ),
            // A bulk run's failures are retried from its Done table.
            Origin::Apply => {
                self.pane == Pane::Apply
                    || (self.pane == Pane::Done && matches!(self.run, Run::Finished(_)))
            }
            Origin::Status => false,
            Origin::Rotate => self.pane == Pane::Rotate,
            Origin::Remove => self.pane == Pane::Remove,
        };
        here.then_some(*origin)
    }

    /// The keymap contexts active now.
    pub fn contexts(&self) -> Vec<Ctx> {
        let mut v = vec![Ctx::Always];
        if self.confirm_quit {
            v.push(Ctx::QuitPrompt);
            return v;
        }
        if self.show_help {
            v.push(Ctx::Help);
            return v;
        }
        // The search takes the keys while open (letters are its text).
        if self.search.is_some() {
            v.push(Ctx::Searching);
            return v;
        }
        // The sign-in-again box takes the keys: its own, never the pane's behind it.
        if self.reauth_open() {
            v.push(Ctx::SignInAgain);
            if self.field == Some(Field::Paste) {
                v.extend([Ctx::Text, Ctx::PasteField, Ctx::Fields]);
                return v;
            }
            v.push(Ctx::SignInAgainNav);
            if self.browser_shown() {
                v.extend([Ctx::Fields, Ctx::BrowserUrl]);
            }
            if self.code_shown() {
                v.push(Ctx::CodeShown);
            }
            if self.sign_in_url().is_some() {
                v.push(Ctx::UrlShown);
            }
            return v;
        }
        if self.reauth_waiting() && self.field.is_none() {
            v.push(Ctx::SignInAgainHidden);
        }
        if self.field.is_some() {
            v.push(Ctx::Text);
        } else {
            v.push(Ctx::Nav);
            let can_continue = match self.pane {
                Pane::Apply | Pane::Status => false,
                Pane::Rotate => matches!(self.rotate, OpPhase::Choose),
                Pane::Remove => matches!(self.remove, OpPhase::Choose),
                // Enter does nothing on a blocked review: the footer says what does.
                Pane::Confirm => !self.review_blocked(),
                _ => true,
            };
            if can_continue {
                v.push(Ctx::CanContinue);
            }
            let can_back = match self.pane {
                Pane::Rotate => !self.rotate.running(),
                Pane::Remove => !self.remove.running(),
                p => p.prev().is_some(),
            };
            if can_back {
                v.push(Ctx::CanGoBack);
            }
        }
        if self.pane == Pane::Confirm
            && self.field.is_none()
            && (self.take_over
                || self.plan.ready().is_some_and(|p| {
                    p.items
                        .iter()
                        .any(|i| i.action == crate::onboard::model::PlanAction::Keep)
                }))
        {
            v.push(Ctx::CanTakeOver);
        }
        match self.pane {
            Pane::Rotate if matches!(self.rotate, OpPhase::Confirm) => v.push(Ctx::Confirmable),
            Pane::Remove
                if matches!(self.remove, OpPhase::Confirm)
                    && self
                        .removal_rows
                        .iter()
                        .any(|r| r.action != RemovalAction::Keep) =>
            {
                v.push(Ctx::Confirmable)
            }
            Pane::Status if !self.health.is_loading() && self.discovery.ready().is_some() => {
                v.push(Ctx::Refreshable)
            }
            _ => {}
        }
        if self.pane == Pane::Done {
            v.push(Ctx::Finished);
        }
        match self.pane {
            Pane::SpotAccount | Pane::AppRegistration | Pane::CustomRole => v.push(Ctx::Fields),
            _ if self.browser_shown() => v.push(Ctx::Fields),
            // Tab leaves the filter too (keeping it), as its box says.
            Pane::Subscription if self.field.is_some() => v.push(Ctx::Filtering),
            _ => {}
        }
        if self.field.is_none() {
            if self.code_shown() {
                v.push(Ctx::CodeShown);
            }
            if self.sign_in_url().is_some() {
                v.push(Ctx::UrlShown);
            }
            if self.browser_shown() {
                v.push(Ctx::BrowserUrl);
            }
        } else if self.field == Some(Field::Paste) && self.browser_shown() {
            v.push(Ctx::PasteField);
        }
        if self.device_code_blocked()
            && self.field.is_none()
            && matches!(self.pane, Pane::AzureLogin | Pane::Subscription)
        {
            v.push(Ctx::DeviceCodeBlocked);
        }
        match self.pane {
            Pane::SpotAccount | Pane::ClientSecret | Pane::Start | Pane::Status | Pane::Confirm => {
                v.push(Ctx::List)
            }
            Pane::AppRegistration if self.several_tenants() => v.push(Ctx::List),
            Pane::Rotate if matches!(self.rotate, OpPhase::Choose) => v.push(Ctx::List),
            Pane::Remove if matches!(self.remove, OpPhase::Choose) => v.push(Ctx::List),
            Pane::Subscription if self.group_view => v.push(Ctx::List),
            Pane::Subscription => {
                v.push(Ctx::List);
                v.push(Ctx::Filterable);
                if self.field.is_none() {
                    v.push(Ctx::MultiSelect);
                }
            }
            _ => {}
        }
        if self.pane == Pane::Confirm && self.plan_blocked() && self.field.is_none() {
            v.push(Ctx::PlanBlocked);
        }
        if self.retryable().is_some() && self.field.is_none() {
            v.push(Ctx::Failed);
        }
        if self.field.is_none() && v.contains(&Ctx::List) {
            v.push(Ctx::ListNav);
        }
        if self.field.is_none() && self.show_log {
            v.push(Ctx::LogOpen);
        }
        if self.pane == Pane::Subscription
            && self.field.is_none()
            && self.groups.ready().is_some_and(|g| !g.is_empty())
        {
            v.push(Ctx::HasGroups);
        }
        if self.field.is_none()
            && ((self.show_log && !self.log.is_empty())
                || (v.contains(&Ctx::ListNav) && !self.search_labels().is_empty()))
        {
            v.push(Ctx::Searchable);
        }
        v
    }

    /// The management-group tree as the picker draws it: each readable group that is not below
    /// another (its tenant's top), then its groups and subscriptions, indented by depth.
    pub fn group_rows(&self) -> Vec<GroupRow> {
        let Some(all) = self.groups.ready() else {
            return vec![];
        };
        let below: BTreeSet<String> = all
            .iter()
            .flat_map(|r| r.groups.iter().map(|(id, ..)| id.to_lowercase()))
            .collect();
        let mut out = vec![];
        for top in all
            .iter()
            .filter(|r| !below.contains(&r.group_id.to_lowercase()))
        {
            out.push(GroupRow {
                depth: 0,
                group: Some(top.group_id.clone()),
                text: top.display_name.clone(),
                count: Some(top.targets.len()),
            });
            group_rows_below(self, all, top, &top.group_id, 1, &mut out);
        }
        out
    }

    /// A resolved group by id.
    pub fn group(&self, id: &str) -> Option<&crate::onboard::fleet::MgResolved> {
        self.groups
            .ready()?
            .iter()
            .find(|r| r.group_id.eq_ignore_ascii_case(id))
    }

    /// The group highlighted in the picker's tree.
    pub fn selected_group(&self) -> Option<&crate::onboard::fleet::MgResolved> {
        let rows = self.group_rows();
        let id = rows.get(self.group_sel)?.group.clone()?;
        self.group(&id)
    }

    /// The rows of the list on screen, as the search matches them (empty: no list to search).
    pub fn search_labels(&self) -> Vec<String> {
        match self.pane {
            Pane::Start => MENU.iter().map(|(l, _)| l.to_string()).collect(),
            Pane::Status => self.health.ready().map_or(vec![], |h| {
                h.iter()
                    .map(|x| format!("{} {}", x.subscription_name, x.subscription_id))
                    .collect()
            }),
            Pane::Rotate if matches!(self.rotate, OpPhase::Choose) => self
                .tenants_with_subscriptions()
                .into_iter()
                .map(|(id, name)| format!("{name} {id}"))
                .collect(),
            Pane::Remove if matches!(self.remove, OpPhase::Choose) => self
                .selectable_subscriptions()
                .iter()
                .map(|x| format!("{} {}", x.display_name, x.subscription_id))
                .collect(),
            Pane::SpotAccount => {
                let mut v = vec!["automatic".to_string()];
                v.extend(
                    self.accounts_list()
                        .iter()
                        .map(|a| format!("{} {}", a.name, a.account_id)),
                );
                v.push("create a new Spot account".into());
                v
            }
            Pane::Subscription if self.group_view => self
                .group_rows()
                .into_iter()
                .map(|r| {
                    if r.group.is_some() {
                        r.text
                    } else {
                        String::new()
                    }
                })
                .collect(),
            Pane::Subscription => self
                .visible_subscriptions()
                .iter()
                .map(|x| {
                    // A row that cannot be chosen is never a match (the highlight skips it).
                    if x.selectable() {
                        format!("{} {}", x.display_name, x.subscription_id)
                    } else {
                        String::new()
                    }
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// Whole seconds, rounded up ("next in 8 s").
pub fn secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// The Spot account the operator chose (the highlighted row of the Spot account pane).
pub fn account_choice(s: &State) -> crate::onboard::SpotAccountChoice {
    use crate::onboard::SpotAccountChoice;
    let n = s.accounts_list().len();
    match s.account_sel {
        0 => SpotAccountChoice::Auto,
        i if i <= n => SpotAccountChoice::Existing(s.accounts_list()[i - 1].account_id.clone()),
        _ => SpotAccountChoice::New,
    }
}

/// A Spot account a rotation changes: account id, name, subscription, the key id it holds.
pub type RotatedRow = (String, String, String, Option<String>);

/// One row of the picker's management-group tree: a group (its id; `count` the enabled
/// subscriptions below it, nested included) or a subscription placed in the group above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub depth: usize,
    pub group: Option<String>,
    pub text: String,
    pub count: Option<usize>,
}

fn group_rows_below(
    s: &State,
    all: &[crate::onboard::fleet::MgResolved],
    top: &crate::onboard::fleet::MgResolved,
    id: &str,
    depth: usize,
    out: &mut Vec<GroupRow>,
) {
    for (line, _) in top
        .placement
        .iter()
        .filter(|(_, g)| g.eq_ignore_ascii_case(id))
    {
        // A subscription the sign-in sees: by name first (its id shortened), and why it is
        // left out when it is.
        let id = line.split(' ').next().unwrap_or_default();
        let known = s.discovery.ready().and_then(|d| {
            d.subscriptions
                .iter()
                .find(|x| x.subscription_id.eq_ignore_ascii_case(id))
        });
        let text = match known {
            Some(x) if x.selectable() => {
                format!("{} {}", x.display_name, short(&x.subscription_id))
            }
            Some(x) => format!(
                "{} {} ({}: left out)",
                x.display_name,
                short(&x.subscription_id),
                x.state
            ),
            None => line.clone(),
        };
        out.push(GroupRow {
            depth,
            group: None,
            text,
            count: None,
        });
    }
    for (g, _, name) in top
        .groups
        .iter()
        .filter(|(_, p, _)| p.eq_ignore_ascii_case(id))
    {
        out.push(GroupRow {
            depth,
            group: Some(g.clone()),
            text: name.clone(),
            count: all
                .iter()
                .find(|r| r.group_id.eq_ignore_ascii_case(g))
                .map(|r| r.targets.len()),
        });
        if depth < 8 {
            group_rows_below(s, all, top, g, depth + 1, out);
        }
    }
}

fn short(id: &str) -> String {
    format!("{}…", id.chars().take(8).collect::<String>())
}

/// What a rotation in the chosen tenant changes, as read before its yes: each Spot account
/// connected through our app (account id, name, subscription) with the key id it holds now,
/// and the key ids of our secrets no account holds. Both kinds are removed once every account
/// holds the new one.
pub fn rotate_changes(s: &State) -> (Vec<RotatedRow>, Vec<String>) {
    let Some(rows) = s.rotate_preview.ready() else {
        return (vec![], vec![]);
    };
    let mut accounts: Vec<RotatedRow> = vec![];
    let mut unheld: Vec<String> = vec![];
    for r in rows {
        let app = r.app.as_ref().map(|a| a.app_id.to_lowercase());
        if let Some(acc) = &r.spot_account {
            let through_ours = acc
                .credentials
                .as_ref()
                .and_then(|c| c.client_id.as_ref())
                .is_some_and(|c| Some(c.to_lowercase()) == app);
            if through_ours && !accounts.iter().any(|(id, ..)| id == &acc.account_id) {
                accounts.push((
                    acc.account_id.clone(),
                    acc.name.clone(),
                    r.subscription_id.clone(),
                    r.secret.as_ref().map(|k| k.key_id.clone()),
                ));
            }
        }
        for k in &r.unheld_secrets {
            if !unheld.contains(k) {
                unheld.push(k.clone());
            }
        }
    }
    (accounts, unheld)
}

/// A named Spot account holds one subscription: it cannot take several.
pub fn one_account_for_several(s: &State) -> bool {
    s.targets.len() > 1
        && matches!(
            account_choice(s),
            crate::onboard::SpotAccountChoice::Existing(_)
        )
}
