//! The master procedure as a pure state machine: the eight steps, what each one's result
//! depends on, the gates between them and the plan of a run. No I/O: the journal hands in the
//! history of attempts, the workspace hands in the recipe and the facts; this module decides.

pub mod facts;
pub mod gate;
pub mod history;
pub mod keys;
pub mod plan;
pub mod step;

#[cfg(test)]
mod tests;

pub use facts::{Facts, ImageFact};
pub use gate::{Blocker, gate};
pub use history::{Effective, History, Record, StepStatus};
pub use keys::Current;
pub use plan::{Action, PlanItem, Selection, decide, plan};
pub use step::Step;
