//! `parc-agent`: runs on a workstation inside the boot environment, fetches its task from the
//! endpoint and captures, deploys or formats the disk, reporting progress and the outcome.

pub mod args;
pub mod endpoint;
pub mod error;
pub mod local;
pub mod multicast;
pub mod run;
pub mod wire;
