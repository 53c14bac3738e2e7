//! Fleet planning over one or several lycées: homogeneity, rotation, renewal and the PRELP
//! request. Pure: every function takes the inventory and "today" as values.

pub mod homogeneity;
pub mod input;
pub mod prelp;
pub mod region;
pub mod renewal;
pub mod rotation;
#[cfg(test)]
mod rotation_props;
pub mod stats;
pub mod synth;
pub mod workdays;

pub use input::{Fleet, Machine, RoomPlan};
