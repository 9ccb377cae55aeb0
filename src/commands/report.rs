//! What a command hands back to `main`, after jj's `CommandError { kind, error, hints }`: a
//! command returns `Result<Outcome, CommandError>` and prints only its progress; `main` alone
//! prints the result (text on stderr/stdout, or the `--json` document) and picks the exit code
//! ([`exit_code`], the one place that maps a result to a code: shapes.md). Hints travel as data
//! ([`Hint`]) and are worded here for the command line ([`hint_text`]: flags and commands).

use crate::cli::exit::Ending;
use crate::error::{Error, Hint};
use serde::Serialize;

/// How a command that ran to its end ended (exit 0, 3 or 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything done (0).
    Done,
    /// Partly done, or something we manage needs attention (3).
    Partial,
    /// `plan --detailed-exitcode`: the plan has changes (4).
    Changes,
}

/// A command that ran to its end: how, what it prints on stdout without `--json`, and its JSON
/// document.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// Printed on stdout without `--json` (status's table); empty for most commands.
    pub text: String,
    pub json: Document,
}

impl Outcome {
    pub fn new(status: Status, json: Document) -> Outcome {
        Outcome {
            status,
            text: String::new(),
            json,
        }
    }
}

/// The version of the `--json` document's shape (docs/json.md); raised when a key changes
/// meaning or goes away, not when one is added.
pub const SCHEMA_VERSION: u32 = 1;

/// The one `--json` document of every command (shapes.md, docs/json.md): the same top-level
/// keys for one subscription or many: `schema_version`, `command`, `exit_code`,
/// `subscriptions` (always an array), `summary` (counts), `duration` (an object of `*_ms`
/// integers), `error` (null or `{kind, message, hints}`), and the command's own keys beside
/// them. `main` sets `exit_code` and `error` ([`Document::finish`]).
#[derive(Debug, Clone, Default)]
pub struct Document {
    command: &'static str,
    subscriptions: Vec<serde_json::Value>,
    summary: serde_json::Map<String, serde_json::Value>,
    duration: serde_json::Map<String, serde_json::Value>,
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The envelope's own keys: a command's extra key never replaces one.
const ENVELOPE: &[&str] = &[
    "schema_version",
    "command",
    "exit_code",
    "subscriptions",
    "summary",
    "duration",
    "error",
];

impl Document {
    pub fn new(command: &'static str) -> Document {
        Document {
            command,
            ..Document::default()
        }
    }

    /// One entry per subscription (each with `subscription_id` and `tenant_id`).
    pub fn subscriptions<T: Serialize>(mut self, list: impl IntoIterator<Item = T>) -> Document {
        self.subscriptions = list
            .into_iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect();
        self
    }

    /// A count in `summary`.
    pub fn count(mut self, key: &str, n: usize) -> Document {
        self.summary.insert(key.into(), n.into());
        self
    }

    /// Any other value in `summary` (reconcile's `line`).
    pub fn summary_value<T: Serialize>(mut self, key: &str, v: T) -> Document {
        self.summary
            .insert(key.into(), serde_json::to_value(v).unwrap_or_default());
        self
    }

    /// A duration in `duration`, as `<key>_ms`.
    pub fn ms(mut self, key: &str, ms: u64) -> Document {
        self.duration.insert(format!("{key}_ms"), ms.into());
        self
    }

    /// A key of this command's own, beside the envelope.
    pub fn with<T: Serialize>(mut self, key: &str, v: T) -> Document {
        debug_assert!(!ENVELOPE.contains(&key), "{key} is an envelope key");
        self.extra
            .insert(key.into(), serde_json::to_value(v).unwrap_or_default());
        self
    }

    pub fn command(&self) -> &'static str {
        self.command
    }

    /// The document with its exit code and error, as printed; `total_ms`: the run's time (when
    /// the command did not set `duration.total_ms` itself).
    pub fn finish(
        &self,
        exit_code: i32,
        error: Option<&CommandError>,
        total_ms: u64,
    ) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("schema_version".into(), SCHEMA_VERSION.into());
        m.insert("command".into(), self.command.into());
        m.insert("exit_code".into(), exit_code.into());
        m.insert(
            "subscriptions".into(),
            serde_json::Value::Array(self.subscriptions.clone()),
        );
        m.insert("summary".into(), self.summary.clone().into());
        let mut duration = self.duration.clone();
        duration.entry("total_ms").or_insert(total_ms.into());
        m.insert("duration".into(), duration.into());
        m.insert(
            "error".into(),
            match error {
                None => serde_json::Value::Null,
                Some(e) => serde_json::json!({
                    "kind": e.kind,
                    "message": e.message(),
                    "hints": e.hint_lines(),
                }),
            },
        );
        for (k, v) in &self.extra {
            if !ENVELOPE.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        serde_json::Value::Object(m)
    }
}

/// A subscription's report with its durations as an object of `*_ms` integers (the report
/// file keeps its own shape).
pub fn report_json(r: &crate::onboard::model::Report) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("durations_ms");
        m.remove("total_ms");
        let mut d = serde_json::Map::new();
        for (step, ms) in &r.durations_ms {
            let key = serde_json::to_value(step)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default();
            d.insert(format!("{key}_ms"), (*ms).into());
        }
        d.insert("total_ms".into(), r.total_ms.into());
        m.insert("duration".into(), d.into());
    }
    v
}

/// What kind of failure: it picks the exit code and is `error.kind` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Bad options or input files; nothing was changed (2).
    Usage,
    /// The sign-in failed.
    SignIn,
    /// A service refused or failed.
    Service,
    /// Something could not be seen whole (3).
    Incomplete,
    /// Ctrl-C, SIGTERM or SIGHUP (130).
    Interrupted,
    /// The plan is blocked (an object that is not ours, a policy).
    Blocked,
    /// Another run holds the lock.
    Busy,
    /// Another writer changed what this run used.
    Conflict,
    NotFound,
    /// The operator answered no: nothing was changed.
    Declined,
    /// No enabled subscription in what was asked for.
    EmptyScope,
    /// Every subscription (or item) of the run failed; each says why.
    Failed,
    /// A file of ours on this machine.
    Local,
    /// `reconcile`: an error stopped the apply after the pass had its report.
    Stopped,
    Internal,
}

impl Kind {
    pub fn of(e: &Error) -> Kind {
        match e {
            Error::Api(_) => Kind::Service,
            Error::Auth(_) => Kind::SignIn,
            Error::Usage(_) => Kind::Usage,
            Error::Cancelled => Kind::Interrupted,
            Error::Incomplete(_) => Kind::Incomplete,
            Error::Blocked(_) => Kind::Blocked,
            Error::Busy(_) => Kind::Busy,
            Error::Conflict(_) => Kind::Conflict,
            Error::NotFound(_) => Kind::NotFound,
            Error::Local { .. } => Kind::Local,
            Error::Internal(_) => Kind::Internal,
            Error::Skipped(_) | Error::Other(_) => Kind::Failed,
        }
    }
}

/// A failed command: its kind, the error, and what the operator can do (as data).
#[derive(Debug, Clone)]
pub struct CommandError {
    pub kind: Kind,
    pub error: Box<Error>,
    pub hints: Vec<Hint>,
    /// What the command had done when it failed (apply's reports), for `--json`.
    pub json: Option<Box<Document>>,
}

impl From<Error> for CommandError {
    fn from(error: Error) -> Self {
        CommandError {
            kind: Kind::of(&error),
            hints: error.hints(),
            error: Box::new(error),
            json: None,
        }
    }
}

impl CommandError {
    pub fn new(kind: Kind, message: impl Into<String>) -> CommandError {
        CommandError {
            kind,
            error: Box::new(Error::Other(message.into())),
            hints: vec![],
            json: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> CommandError {
        CommandError::from(Error::Usage(message.into()))
    }

    /// The sign-in failed with `e`.
    pub fn sign_in(e: Error) -> CommandError {
        CommandError {
            kind: match e {
                Error::Cancelled => Kind::Interrupted,
                Error::Usage(_) => Kind::Usage,
                _ => Kind::SignIn,
            },
            ..CommandError::from(e)
        }
    }

    pub fn with_json(mut self, v: Document) -> CommandError {
        self.json = Some(Box::new(v));
        self
    }

    pub fn with_hint(mut self, h: Hint) -> CommandError {
        if !self.hints.contains(&h) {
            self.hints.push(h);
        }
        self
    }

    /// The one-line message (an Azure sign-in's service error says it was the sign-in).
    pub fn message(&self) -> String {
        match (&self.kind, &*self.error) {
            (Kind::SignIn, Error::Api(_)) => format!("Azure login: {}", self.error),
            _ => self.error.to_string(),
        }
    }

    /// The hints worded for the command line.
    pub fn hint_lines(&self) -> Vec<String> {
        self.hints
            .iter()
            .map(|h| hint_text(*h).to_string())
            .collect()
    }
}

/// How a command's result ended (its exit code is [`Ending::code`]; shapes.md: 0 done, 1
/// failed, 2 usage, 3 partial, 4 plan changes, 130 interrupted).
pub fn ending(r: &Result<Outcome, CommandError>) -> Ending {
    match r {
        Ok(o) => match o.status {
            Status::Done => Ending::Done,
            Status::Partial => Ending::Partial,
            Status::Changes => Ending::Changes,
        },
        Err(e) => match e.kind {
            Kind::Usage => Ending::Usage,
            Kind::Interrupted => Ending::Interrupted,
            Kind::Incomplete => Ending::Partial,
            _ => Ending::Failed,
        },
    }
}

/// A command's result's exit code.
#[cfg(test)]
fn exit_code(r: &Result<Outcome, CommandError>) -> i32 {
    ending(r).code()
}

/// A hint as the command line words it: the flag or command that does it.
pub fn hint_text(h: Hint) -> &'static str {
    match h {
        Hint::AppRegistrationRights => {
            "your Entra account may not register applications here: ask for the Application \
             Developer or Cloud Application Administrator role, or for \"Users can register \
             applications\" to be allowed"
        }
        Hint::ServicePrincipalAppRights => {
            "ask an administrator to grant it Microsoft Graph's Application.ReadWrite.OwnedBy \
             application permission (admin consent: an app role assignment on Microsoft Graph's \
             service principal) or the Application Administrator directory role"
        }
        Hint::SubscriptionOwner => {
            "you need Owner or User Access Administrator on the subscription to create roles and \
             role assignments"
        }
        Hint::SpotAdminToken => {
            "the Spot token was refused: use an Organization Admin token (SPOTINST_TOKEN or \
             --spot-token-file)"
        }
        Hint::ClientCredentials => {
            "the client id or secret was not accepted by the identity platform (AZURE_CLIENT_ID, \
             AZURE_CLIENT_SECRET)"
        }
        Hint::FewerSecretMonths => {
            "the tenant's app management policy caps secret lifetimes: choose fewer months with \
             --secret-months"
        }
        Hint::ChooseAppName => "choose another name with --app-name",
        Hint::ChooseRoleName => "choose another name with --role-name",
        Hint::SignInWithBrowser => "sign in with a browser instead: --auth browser",
        Hint::DeleteSpotAccount => "--delete-spot-account deletes the Spot account too",
        Hint::TakeOver => "--take-over replaces its credentials with ours",
        Hint::AssignmentPropagating => {
            "check that the role assignment exists, then run `spot-connect apply` again: Azure \
             may still be propagating it"
        }
        Hint::RunAgain => "run `spot-connect apply` again: it continues where this run stopped",
        Hint::SkipUnreachable => {
            "run again when it can be read, or pass --skip-unreachable to go on without it"
        }
        Hint::CheckNetwork => {
            "check the network: DNS, a firewall, or the proxy (HTTPS_PROXY; NO_PROXY for hosts \
             reached directly)"
        }
        Hint::Excluded => "left out with --exclude-subscription: run without it to connect it",
        Hint::PruneSubscriptionAssignments => {
            "--prune-subscription-assignments removes it once the assignment at the management \
             group is seen in effect"
        }
        Hint::ChosenAccount => "it was chosen with --spot-account or --take-over",
    }
}

/// The error as `main` prints it on stderr: `spot-connect <command>: message`, then a line per
/// hint.
pub fn error_text(command: &str, e: &CommandError) -> String {
    let who = match command {
        "" => "spot-connect".to_string(),
        c => format!("spot-connect {c}"),
    };
    let mut s = format!("{who}: {}\n", e.message());
    if let Error::Incomplete(unseen) = &*e.error {
        for u in unseen {
            s.push_str(&format!("  ✗ could not see {}: {}\n", u.what, u.reason));
        }
    }
    for h in e.hint_lines() {
        s.push_str(&format!("  hint: {h}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit;

    #[test]
    fn the_kind_picks_the_exit_code() {
        let err = |e: Error| exit_code(&Err(CommandError::from(e)));
        assert_eq!(err(Error::Usage("u".into())), exit::USAGE);
        assert_eq!(err(Error::Cancelled), exit::INTERRUPTED);
        assert_eq!(err(Error::Incomplete(vec![])), exit::PARTIAL);
        assert_eq!(err(Error::Auth("a".into())), exit::FAILED);
        assert_eq!(err(Error::Busy("b".into())), exit::FAILED);
        let ok = |s| exit_code(&Ok(Outcome::new(s, Document::new("plan"))));
        assert_eq!(ok(Status::Done), exit::DONE);
        assert_eq!(ok(Status::Partial), exit::PARTIAL);
        assert_eq!(ok(Status::Changes), exit::CHANGES);
        assert_eq!(
            exit_code(&Err(CommandError::new(Kind::Declined, "no"))),
            exit::FAILED
        );
    }

    /// The command line words each hint with the flag or command that does it.
    #[test]
    fn the_command_line_names_the_flag_of_each_hint() {
        for (h, flag) in [
            (Hint::ChooseRoleName, "--role-name"),
            (Hint::ChooseAppName, "--app-name"),
            (Hint::SignInWithBrowser, "--auth browser"),
            (Hint::DeleteSpotAccount, "--delete-spot-account"),
            (Hint::TakeOver, "--take-over"),
            (Hint::FewerSecretMonths, "--secret-months"),
            (Hint::SkipUnreachable, "--skip-unreachable"),
            (Hint::RunAgain, "spot-connect apply"),
            (Hint::CheckNetwork, "HTTPS_PROXY"),
            (Hint::Excluded, "--exclude-subscription"),
            (
                Hint::PruneSubscriptionAssignments,
                "--prune-subscription-assignments",
            ),
            (Hint::ChosenAccount, "--spot-account or --take-over"),
        ] {
            assert!(hint_text(h).contains(flag), "{h:?}: {}", hint_text(h));
        }
        for h in Hint::ALL {
            assert!(
                !hint_text(*h).is_empty() && !hint_text(*h).ends_with('.'),
                "{h:?}"
            );
        }
    }

    #[test]
    fn hints_are_data_until_the_command_line_words_them() {
        let e = CommandError::from(Error::Incomplete(vec![]));
        assert_eq!(e.hints, vec![Hint::SkipUnreachable]);
        let text = error_text("plan", &e);
        assert!(
            text.starts_with("spot-connect plan: could not see"),
            "{text}"
        );
        assert!(
            text.contains("  hint: ") && text.contains("--skip-unreachable"),
            "{text}"
        );
    }
}
