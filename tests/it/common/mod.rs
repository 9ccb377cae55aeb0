//! What the test modules share: the wizard fixtures (`ui`). One test binary links the crate
//! once (docs/architecture.md, "Tests").
pub mod cli;
pub mod ui;
