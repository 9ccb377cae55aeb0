//! The full-screen wizard: `State`, `Action`, `update`, the keymap, and the event loop.
//!
//! Terminal events and background results arrive as `Action`s over one channel;
//! `update(&mut State, Action, at)` is the only place state changes and returns the `Effect`s
//! (sign-in, lookups, plan, apply) the loop starts; `ui::draw` is a pure function of the state.

pub mod clipboard;
pub mod closing;
pub mod keymap;
mod runtime;
pub mod screen;
pub mod state;
pub mod update;

pub use runtime::{PANIC_EXIT, panic_hook};
pub use state::{Ending, Init, Now, Pane, State};
pub use update::{Action, Effect, SignalKind, update};

use crate::cli::Cli;

/// A hint (what the operator can do, as the engine says it) in the wizard's own words: its
/// fields, panes and keys, never a command-line flag (the commands word the same hints as flags:
/// `commands::hint_text`).
pub fn hint_text(h: crate::error::Hint) -> &'static str {
    use crate::error::Hint;
    match h {
        Hint::AppRegistrationRights => {
            "your Entra account may not register applications here: ask for the Application \
             Developer or Cloud Application Administrator role, or for \"Users can register \
             applications\" to be allowed"
        }
        Hint::ServicePrincipalAppRights => {
            "ask an administrator to grant it Microsoft Graph's Application.ReadWrite.OwnedBy \
             application permission (admin consent) or the Application Administrator directory \
             role"
        }
        Hint::SubscriptionOwner => {
            "you need Owner or User Access Administrator on the subscription to create roles and \
             role assignments"
        }
        Hint::SpotAdminToken => {
            "the Spot token was refused: paste an Organization Admin token on the Spot account pane"
        }
        Hint::ClientCredentials => {
            "the client id or secret was not accepted by the identity platform"
        }
        Hint::FewerSecretMonths => {
            "the tenant's policy caps secret lifetimes: pick a shorter lifetime on the Client \
             secret pane"
        }
        Hint::ChooseAppName => {
            "edit the App registration's Display name field to choose another name"
        }
        Hint::ChooseRoleName => "edit the Role name field to choose another name",
        Hint::SignInWithBrowser => "press b to sign in with a browser instead",
        Hint::DeleteSpotAccount => {
            "the Spot account stays: delete it in the Spot console if it is no longer needed"
        }
        Hint::TakeOver => "press t on the review to take it over",
        Hint::AssignmentPropagating => {
            "Check that the role assignment exists, then retry: Azure may still be propagating it."
        }
        Hint::RunAgain => "press r to plan the failed ones again",
        Hint::SkipUnreachable => {
            "press r to try again when it can be read, or pick subscriptions of the other tenants"
        }
        Hint::CheckNetwork => {
            "check the network: DNS, a firewall, or the proxy (HTTPS_PROXY; NO_PROXY for hosts \
             reached directly)"
        }
        Hint::Excluded => "left out of this run: include it in the selection to connect it",
        Hint::PruneSubscriptionAssignments => {
            "kept by the wizard: it is no longer needed once the assignment at the management \
             group is seen in effect"
        }
        Hint::ChosenAccount => "it was chosen on the Spot account pane or taken over on the review",
    }
}

/// Runs the wizard (against the simulator when `cli.demo`): how it ended, or why it could not
/// start.
pub async fn run(cli: &Cli) -> Result<Ending, crate::error::Error> {
    runtime::run(cli).await
}

#[cfg(test)]
mod tests {
    use crate::error::Hint;

    /// The wizard words every hint with its own fields and keys: no flag, no command line.
    #[test]
    fn the_wizard_words_hints_without_command_line_advice() {
        for h in Hint::ALL {
            let t = super::hint_text(*h);
            assert!(!t.contains("--"), "{h:?}: {t}");
            assert!(!t.contains("spot-connect "), "{h:?}: {t}");
        }
        assert!(super::hint_text(Hint::ChooseRoleName).contains("Role name field"));
        assert!(super::hint_text(Hint::SignInWithBrowser).contains("press b"));
        assert!(super::hint_text(Hint::TakeOver).contains("press t"));
        assert!(super::hint_text(Hint::ChosenAccount).contains("Spot account pane"));
    }
}
