//! Microsoft Graph v1.0 calls of the onboarding.
