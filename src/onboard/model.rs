//! The vocabulary shared by the engine, `apply`/`plan` and the full-screen UI: steps, progress
//! events, plans and reports. Nothing here does I/O.

pub use crate::azure::prompt::BrowserPrompt;
use crate::azure::prompt::SignInPrompt;
use crate::error::{ApiError, Error, Hint};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

/// The onboarding steps, in sidebar order (PRODUCT.md §1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    SpotAccount,
    AzureLogin,
    Subscription,
    AppRegistration,
    ClientSecret,
    CustomRole,
    RoleAssignment,
    ConnectSpot,
    Done,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::SpotAccount,
        Step::AzureLogin,
        Step::Subscription,
        Step::AppRegistration,
        Step::ClientSecret,
        Step::CustomRole,
        Step::RoleAssignment,
        Step::ConnectSpot,
        Step::Done,
    ];

    /// The sidebar label.
    pub fn label(self) -> &'static str {
        match self {
            Step::SpotAccount => "Spot account",
            Step::AzureLogin => "Azure login",
            Step::Subscription => "Subscription",
            Step::AppRegistration => "App registration",
            Step::ClientSecret => "Client secret",
            Step::CustomRole => "Custom role",
            Step::RoleAssignment => "Role assignment",
            Step::ConnectSpot => "Connect to Spot",
            Step::Done => "Done",
        }
    }

    pub fn index(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// What a step did to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Reused,
    Updated,
}

/// An error as shown to an operator: a one-line summary, the service's error when there is one
/// (code, message, request id) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiError>,
    /// What to do about it, as data: each front end words it (`commands::hint_text`,
    /// `app::hint_text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<Hint>,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        ErrorInfo {
            summary: e.to_string(),
            hint: e.hints().first().copied(),
            api: e.api().cloned(),
        }
    }
}

/// The device-code sign-in prompt (made by the client that signs in; part of the progress).
pub use crate::azure::prompt::DeviceCodePrompt;

/// Progress of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepEvent {
    Started {
        detail: String,
    },
    /// A retry is scheduled: "waiting for Azure to propagate (attempt 3, next in 8 s)".
    Waiting {
        reason: String,
        attempt: u32,
        #[serde(with = "duration_ms")]
        next_in: Duration,
    },
    Finished {
        outcome: Outcome,
        id: Option<String>,
        detail: String,
    },
    Failed {
        error: ErrorInfo,
    },
    Skipped {
        reason: String,
    },
}

/// Everything background work reports, over one mpsc channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    Step {
        /// None for steps that are not per subscription (Spot token, Azure login).
        subscription: Option<String>,
        step: Step,
        event: StepEvent,
    },
    DeviceCode(DeviceCodePrompt),
    /// The browser sign-in: the address to open and how the answer comes back.
    Browser(BrowserPrompt),
    /// A tenant refused the refresh and wants the operator to sign in there, and why.
    SignInAgain {
        tenant: String,
        reason: String,
    },
    /// A pasted address or a redirect was refused; the sign-in still waits.
    RedirectRefused {
        message: String,
    },
    /// The interactive sign-in to `tenant` ended.
    SignInFinished {
        tenant: String,
        ok: bool,
    },
    Log {
        message: String,
    },
}

impl From<SignInPrompt> for Progress {
    fn from(p: SignInPrompt) -> Progress {
        match p {
            SignInPrompt::DeviceCode(d) => Progress::DeviceCode(d),
            SignInPrompt::Browser(b) => Progress::Browser(b),
            SignInPrompt::Again { tenant, reason } => Progress::SignInAgain { tenant, reason },
            SignInPrompt::Refused(message) => Progress::RedirectRefused { message },
            SignInPrompt::Finished { tenant, ok } => Progress::SignInFinished { tenant, ok },
        }
    }
}

/// What `plan` says it would do to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Create,
    Reuse,
    Update,
    Blocked,
    /// Left exactly as it is: a connection that is not ours (issue 16 §3).
    Keep,
}

/// Whose a Spot account is (issue 16 §2): only `Created` may ever be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Spot returned its id to a create call of ours (recorded), and it has the name we gave
    /// it (or its credentials name our app).
    Created,
    /// An existing account the operator picked (`--spot-account`, `--take-over`), or one
    /// connected through our app that no record here says we created: connected, never deleted.
    Chosen,
    /// Everything else: never changed, taken over or deleted by a run on its own.
    NotOurs,
}

impl AccountKind {
    pub fn label(self) -> &'static str {
        match self {
            AccountKind::Created => "created",
            AccountKind::Chosen => "chosen",
            AccountKind::NotOurs => "not ours",
        }
    }
}

/// Actions missing from / extra in an existing role compared with Spot's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Whose an object the plan found is, by the marks we set (PRODUCT.md §4 "many writers"):
/// `reconcile` lists the ones not ours, and the plan never changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// It carries our mark (the app's tag, the role's marker, credentials naming our app).
    Ours,
    /// It exists under the name we would use (or holds the subscription) without our mark:
    /// never changed, taken over or deleted.
    NotOurs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    pub step: Step,
    /// "app registration", "service principal", "client secret", "custom role", …
    pub object: String,
    /// Display name of the object.
    pub name: String,
    pub action: PlanAction,
    pub tenant_id: String,
    /// None for the tenant's shared objects (app, service principal, secret, role).
    pub subscription_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why this action ("no app named … exists", "ours: marker found", "blocked: 403 …").
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Whose the object found is (None: nothing found yet, or not a question of ownership).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// What the operator can do about a blocked or kept item (another name, a take-over), as
    /// data each front end words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<Hint>,
}

impl PlanItem {
    /// The same item, of an object found that is not ours.
    pub fn not_ours(self) -> Self {
        PlanItem {
            ownership: Some(Ownership::NotOurs),
            ..self
        }
    }

    /// The same item, of an object found that is ours.
    pub fn ours(self) -> Self {
        PlanItem {
            ownership: Some(Ownership::Ours),
            ..self
        }
    }

    pub fn with_hint(mut self, h: Option<Hint>) -> PlanItem {
        self.hint = h;
        self
    }
}

/// How many objects of one kind the plan creates, updates, reuses or cannot do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub object: String,
    pub create: usize,
    pub update: usize,
    pub reuse: usize,
    pub blocked: usize,
    pub keep: usize,
}

impl KindCount {
    /// "3 create, 1 reuse": the non-zero counts, in the plan's order of actions.
    pub fn summary(&self) -> String {
        [
            (self.create, "create"),
            (self.update, "update"),
            (self.reuse, "reuse"),
            (self.keep, "keep"),
            (self.blocked, "BLOCKED"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One object in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub step: Step,
    pub object: String,
    pub name: String,
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Connected,
    Failed,
}

/// What `apply` did for one subscription; printed with `--json`, saved under the state dir.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub tenant_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_account_id: Option<String>,
    pub objects: Vec<ObjectRef>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_expires: Option<OffsetDateTime>,
    /// Per-step wall time in milliseconds.
    pub durations_ms: Vec<(Step, u64)>,
    pub total_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_path: Option<std::path::PathBuf>,
    /// Connected to Spot through an app that is not ours, and left so (issue 16 §3): the plan's
    /// line ("connected through APP (appId), secret expires DATE: keep"). The verdict is then
    /// `connected`, and nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

/// What `apply` did: one `Report` per subscription of the plan, in the plan's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub reports: Vec<Report>,
    /// The error that stopped everything (sign-in, unreachable service), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<ErrorInfo>,
    /// Quota 429 replies (ARM's write limit) seen during the run.
    pub throttled: u64,
    /// The most subscriptions in flight at once.
    pub peak_concurrency: usize,
    pub total_ms: u64,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
            .count()
    }
}

mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}
