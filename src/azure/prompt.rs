//! What an interactive sign-in (device code or browser) asks the front end to show, and the
//! callback that shows it. A leaf: it imports nothing of the sign-in code, so `auth.rs`,
//! `device_code.rs` and `browser.rs` all use it and none of them imports another back.

use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

/// The device-code sign-in prompt: shown large by the UI, printed by `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The identity platform's own sentence ("To sign in, use a web browser to open …").
    pub message: String,
}

/// The browser sign-in prompt: where to sign in, and how the answer comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowserPrompt {
    /// The sign-in address to open in a browser (carries `state` and the PKCE challenge, never
    /// the verifier).
    pub url: String,
    /// `http://localhost:<port>`
    pub redirect_uri: String,
    pub port: u16,
    /// `ssh -L <port>:localhost:<port> <user>@<jumpbox>`: forwards the redirect to this machine.
    pub ssh_command: String,
    /// The authority's tenant (`organizations`, or the tenant signed in to again).
    pub tenant: String,
    /// When this sign-in stops waiting.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What an interactive sign-in asks the front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInPrompt {
    /// The device code to enter.
    DeviceCode(DeviceCodePrompt),
    /// The address to open in a browser, and how the answer comes back.
    Browser(BrowserPrompt),
    /// A tenant refused the refresh and wants the operator to sign in there (the prompt of
    /// that sign-in follows).
    Again { tenant: String, reason: String },
    /// A pasted address or a redirect was refused (the sentence says why); the sign-in goes
    /// on waiting.
    Refused(String),
    /// The sign-in again to `tenant` (after [`SignInPrompt::Again`]) ended. (The first
    /// sign-in's end is `Auth::sign_in` returning.)
    Finished { tenant: String, ok: bool },
}

/// Called with what to show during an interactive sign-in.
pub type PromptFn = Arc<dyn Fn(SignInPrompt) + Send + Sync>;
