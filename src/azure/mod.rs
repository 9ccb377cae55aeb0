//! Azure: sign-in (`auth`), tenant and subscription discovery (`discovery`), and the Graph and
//! ARM calls of the onboarding (`graph`, `arm`).

pub mod arm;
pub mod auth;
pub mod az;
pub mod browser;
pub mod device_code;
pub mod discovery;
pub mod graph;
pub mod keyring;
pub mod prompt;
pub mod token;
