//! spot-connect: connect an Azure subscription to Spot (spot.io) from a terminal.
//! See docs/architecture.md for the map of these modules.

pub mod app;
pub mod azure;
pub mod budget;
pub mod cli;
pub mod commands;
pub mod docgen;
pub mod endpoints;
pub mod entry;
pub mod error;
pub mod http;
pub mod logging;
pub mod onboard;
pub mod safe_fs;
pub mod secret;
pub mod sim;
pub mod spot;
pub mod text;
pub mod ui;
