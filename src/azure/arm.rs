//! Azure Resource Manager calls of the onboarding.
