//! Spot's custom role JSON: embedded, or `--policy FILE`. PLACEHOLDER.
