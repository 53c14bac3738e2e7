//! The recorded history of a room's procedure (the latest attempt of each step, per host for
//! deploy/join/verify) and the effective state it gives once compared with the recipe.

use std::collections::BTreeMap;

use super::keys::Current;
use super::step::Step;

/// The status of one step attempt as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Done,
            StepStatus::Failed,
            StepStatus::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The latest attempt of a step (on a host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub status: StepStatus,
    /// The key (see `keys`) the attempt ran under.
    pub key: String,
    /// A number that grows with every attempt (the journal's attempt id): it orders results.
    pub seq: u64,
    pub message: String,
    /// For capture: the image it produced.
    pub image: Option<String>,
}

/// The latest attempts of one room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub room: BTreeMap<Step, Record>,
    pub hosts: BTreeMap<(Step, String), Record>,
    /// An image the technician chose to re-apply although it was captured from another recipe
    /// (`parc reimage --force`): it stands for the room's capture in this run only.
    pub forced_image: Option<String>,
}

/// Where a step stands once its record is compared with the current recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effective {
    /// Never run (or never on this host).
    Pending,
    /// Done, and still valid for the current recipe.
    Done,
    /// Done once, but what it depended on changed since.
    Stale(String),
    Failed(String),
    /// Skipped (blocked upstream on this host).
    Skipped(String),
    /// Was running when its process died or was stopped.
    Interrupted,
}

impl Effective {
    pub fn is_done(&self) -> bool {
        matches!(self, Effective::Done)
    }

    pub fn word(&self) -> &'static str {
        match self {
            Effective::Pending => "pending",
            Effective::Done => "done",
            Effective::Stale(_) => "stale",
            Effective::Failed(_) => "failed",
            Effective::Skipped(_) => "skipped",
            Effective::Interrupted => "interrupted",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Effective::Stale(s) | Effective::Failed(s) | Effective::Skipped(s) => s,
            _ => "",
        }
    }
}

impl History {
    /// Records an attempt (the latest one wins).
    pub fn put(&mut self, step: Step, host: Option<&str>, record: Record) {
        match host {
            Some(h) if step.per_host() => {
                self.hosts.insert((step, h.to_string()), record);
            }
            _ => {
                self.room.insert(step, record);
            }
        }
    }

    pub fn get(&self, step: Step, host: Option<&str>) -> Option<&Record> {
        if step.per_host() {
            self.hosts.get(&(step, host?.to_string()))
        } else {
            self.room.get(&step)
        }
    }

    /// The image the room's current capture produced, if capture is effectively done.
    pub fn captured_image(&self, current: &Current) -> Option<&str> {
        if let Some(forced) = &self.forced_image {
            return Some(forced);
        }
        if self.effective(current, Step::Capture, None).is_done() {
            self.room
                .get(&Step::Capture)
                .and_then(|r| r.image.as_deref())
        } else {
            None
        }
    }

    /// The effective state of a step (on a host for per-host steps).
    pub fn effective(&self, current: &Current, step: Step, host: Option<&str>) -> Effective {
        if step == Step::Capture && self.forced_image.is_some() {
            return Effective::Done;
        }
        let Some(rec) = self.get(step, host) else {
            return Effective::Pending;
        };
        match rec.status {
            StepStatus::Pending => return Effective::Pending,
            StepStatus::Running => return Effective::Interrupted,
            StepStatus::Failed => return Effective::Failed(rec.message.clone()),
            StepStatus::Skipped => return Effective::Skipped(rec.message.clone()),
            StepStatus::Done => {}
        }
        let image = if step.per_host() {
            self.captured_image(current)
        } else {
            None
        };
        if rec.key != current.key(step, image) {
            let why = match step {
                Step::Format => "the base image or model changed since it was done".to_string(),
                Step::Test => "the recipe or its tests changed since it was done".to_string(),
                Step::Deploy | Step::Join | Step::Verify => match image {
                    Some(i) => format!("done with another image; the current image is {i}"),
                    None => "the image it used is no longer current".to_string(),
                },
                _ => "the recipe changed since it was done".to_string(),
            };
            return Effective::Stale(why);
        }
        for pred in step.predecessors() {
            if *pred == Step::Capture && self.forced_image.is_some() {
                continue;
            }
            let phost = if pred.per_host() { host } else { None };
            if !self.effective(current, *pred, phost).is_done() {
                return Effective::Stale(format!("{pred} must be done again first"));
            }
            if let Some(p) = self.get(*pred, phost) {
                if p.seq > rec.seq {
                    return Effective::Stale(format!("{pred} was redone after it"));
                }
            }
        }
        Effective::Done
    }
}
