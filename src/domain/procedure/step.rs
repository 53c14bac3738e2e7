//! The eight steps of the procedure (PACA §7.5.4 a–h, plus verify) and what kind each is.

use std::fmt;
use std::str::FromStr;

/// One step of the master procedure, in the order they run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// a) gather the installation media and licences.
    Collect,
    /// b) format the master workstation and lay down the base OS.
    Format,
    /// c) install the room's software on the master.
    Install,
    /// d) the technician's tests on the master.
    Test,
    /// f) capture the master into an image (after the teachers' sign-off, step e).
    Capture,
    /// g) deploy the image to every workstation.
    Deploy,
    /// h) join every workstation to the domain.
    Join,
    /// parc's last step: every workstation runs the right image and software, in the domain.
    Verify,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Collect,
        Step::Format,
        Step::Install,
        Step::Test,
        Step::Capture,
        Step::Deploy,
        Step::Join,
        Step::Verify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Collect => "collect",
            Step::Format => "format",
            Step::Install => "install",
            Step::Test => "test",
            Step::Capture => "capture",
            Step::Deploy => "deploy",
            Step::Join => "join",
            Step::Verify => "verify",
        }
    }

    /// Whether the step runs once per workstation (deploy, join, verify) rather than once per room.
    pub fn per_host(self) -> bool {
        matches!(self, Step::Deploy | Step::Join | Step::Verify)
    }

    /// Whether running the step twice is harmless. A non-idempotent step interrupted mid-way is
    /// not re-run blindly: the engine first asks whether its effect is already in place.
    pub fn idempotent(self) -> bool {
        matches!(self, Step::Collect | Step::Test | Step::Verify)
    }

    /// Whether the step changes a machine or an image (and so is written to the audit log).
    pub fn changes_machine(self) -> bool {
        !self.idempotent()
    }

    /// The step whose result this one builds on (per host for join/verify).
    pub fn predecessors(self) -> &'static [Step] {
        match self {
            Step::Collect | Step::Format => &[],
            Step::Install => &[Step::Collect, Step::Format],
            Step::Test => &[Step::Install],
            Step::Capture => &[Step::Test],
            Step::Deploy => &[Step::Capture],
            Step::Join => &[Step::Deploy],
            Step::Verify => &[Step::Join],
        }
    }

    /// One sentence for the plan: what the step does.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Collect => "fetch every installer of the recipe and check its sha256",
            Step::Format => "format the master and lay down the base OS",
            Step::Install => "install the room's software list on the master",
            Step::Test => "run the recipe's technical tests on the master",
            Step::Capture => "capture the master into a new image of the room",
            Step::Deploy => "write the image to the workstation",
            Step::Join => "join the workstation to the domain",
            Step::Verify => "check image, software and domain membership of the workstation",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step name that is not one of the eight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown step \"{0}\" (steps: collect, format, install, test, capture, deploy, join, verify)"
)]
pub struct UnknownStep(pub String);

impl FromStr for Step {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStep(s.into()))
    }
}
