//! parc — orchestrates the master images of French lycées' computer rooms.
//!
//! Layers, from the inside out:
//! - [`domain`]: pure model and rules (recipes, validation, the procedure's state machine,
//!   fleet planning). No I/O, no clock, no async runtime.
//! - [`ports`]: the traits through which the engine reaches machines, images and directories.
//! - [`adapters`]: real implementations of those ports (SSH, directories, image store, …).
//! - [`netboot`]: network boot — TFTP, the boot endpoint, the image routes agents use, and the
//!   `BootEndpoint` port on them.
//! - [`workspace`] and [`secrets`]: the technician's folder on disk.
//! - [`cli`]: one file per command; turns arguments into calls of the above.

pub mod adapters;
pub mod agent;
pub mod audit;
pub mod cli;
pub mod console;
pub mod doctor;
pub mod domain;
pub mod engine;
pub mod exit;
pub mod fsutil;
#[cfg(test)]
mod golden;
pub mod image;
pub mod inventory;
pub mod journal;
pub mod lab;
pub mod netboot;
pub mod netif;
pub mod ports;
pub mod psjson;
pub mod quote;
pub mod report;
pub mod secrets;
pub mod state;
pub mod steps;
pub mod ui;
pub mod wiring;
pub mod workspace;
