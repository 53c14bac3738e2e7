//! The steps that talk to machines, as library functions over plain inputs and the ports
//! (`RemoteHost`, `Directory`, `Reporter`): collect, install, technical tests, join, verify,
//! and the verify report. The engine wires them to recipes and the journal.

pub mod cache;
pub mod collect;
pub mod conformity;
pub mod conformity_pg;
pub mod error;
pub mod fleet;
pub mod install;
pub mod join;
pub mod report;
pub mod room;
pub mod run;
pub mod sysprep;
pub mod techtest;
pub mod templates;
pub mod unattend;
pub mod verify;

pub use error::StepError;
