//! How a run ended: done, partial (with the workstations that failed or were skipped),
//! failed, blocked by a gate, or interrupted.

use crate::domain::procedure::Step;
use crate::journal::Holder;

/// A workstation that failed, or was skipped because an earlier step failed on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostFailure {
    pub step: Step,
    pub host: String,
    pub skipped: bool,
    pub message: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything selected is done.
    Done,
    /// Some workstations failed; the others went on.
    Partial(Vec<HostFailure>),
    /// A room step (on the master) failed.
    Failed { step: Step, message: String },
    /// A gate refused a step.
    Blocked { step: Step, reason: String },
    /// Ctrl-C: running work was cancelled.
    Interrupted,
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Partial(_) => "partial",
            Outcome::Failed { .. } => "failed",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Done => String::new(),
            Outcome::Partial(f) => f
                .iter()
                .map(|h| {
                    format!(
                        "{} {} {}: {}",
                        h.step,
                        h.host,
                        if h.skipped { "skipped" } else { "failed" },
                        h.message
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Outcome::Failed { step, message } => format!("{step} failed: {message}"),
            Outcome::Blocked { step, reason } => format!("{step} is blocked: {reason}"),
            Outcome::Interrupted => "interrupted (Ctrl-C)".into(),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run: i64,
    pub room: String,
    pub outcome: Outcome,
    /// The dead process whose lock was taken over.
    pub took_over: Option<Holder>,
    /// Runs left open by dead processes, closed as interrupted.
    pub closed: Vec<i64>,
}
