//! What the test modules share: the wizard fixtures (`ui`), the binary against a simulator
//! (`cli`), the engine in-process against one (`sim`). One test binary links the crate
//! once (docs/architecture.md, "Tests").
pub mod cli;
pub mod sim;
pub mod ui;
