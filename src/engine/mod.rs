//! The engine: drives the ports through the procedure for one room. It owns sequencing, the
//! gates (from `domain::procedure`), the journal, resume, fan-out over workstations with
//! bounded concurrency, the room lock, the audit log and progress events. It never names a
//! concrete adapter: it only holds the traits of `crate::ports`.

mod attempt;
mod log;
mod master;
mod outcome;
mod room;
mod status;

use std::sync::Arc;

pub use master::{HostFailure, MasterOptions, Outcome, RunSummary, dry_run, run_master};
pub use room::Room;
pub use status::{HostState, PlanLine, RoomStatus, StepState, room_status};

use crate::ports::steps::StepActions;
use crate::ports::{ImageStore, PortError, Reporter};

/// The ports a run drives.
#[derive(Clone)]
pub struct Ports {
    pub actions: Arc<dyn StepActions>,
    pub images: Arc<dyn ImageStore>,
    pub reporter: Arc<dyn Reporter>,
}

/// Why the engine could not run (as opposed to a run that ended failed or partial).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Workspace(#[from] crate::workspace::WorkspaceError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(
        "room {room} has no master workstation (no `master` in its recipe and no workstation in service)"
    )]
    NoMaster { room: String },
    #[error("{} not workstation(s) of room {room}: {}", .hosts.len(), .hosts.join(", "))]
    UnknownHosts {
        room: String,
        hosts: Vec<String>,
        known: Vec<String>,
    },
    #[error("cannot list the images of room {room}")]
    Images {
        room: String,
        #[source]
        source: PortError,
    },
    #[error("cannot write the step log {path}")]
    Log {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// Whether the error is the user's (bad input or a refusal) rather than a failure.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            EngineError::UnknownHosts { .. } | EngineError::NoMaster { .. }
        ) || matches!(self, EngineError::Journal(j) if j.is_user_error())
            || matches!(self, EngineError::Workspace(w) if !matches!(w, crate::workspace::WorkspaceError::Io { .. }))
    }
}

#[cfg(test)]
mod tests;
