//! The gates: what must hold before a step may run.
//!
//! - collect: the licence gate clean (in doubt, parc does not even fetch the installers);
//! - install: collect and format done, and the licence gate clean;
//! - test: install done;
//! - capture: test passed and a teachers' sign-off of the list installed on the master;
//! - deploy: a captured image whose manifest's recipe digest is the current one (or the image
//!   the technician forces, which must exist);
//! - join: deploy done on that workstation; verify: join done on that workstation.
//!
//! Windows rooms have the same gates: their steps differ in what they run (PowerShell over
//! SSH, sysprep before capture, an offline join at first boot), not in what must hold first.

use std::fmt;

use super::facts::Facts;
use super::history::{Effective, History};
use super::keys::Current;
use super::step::Step;

/// Why a step may not run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// An earlier step is not done (on this host).
    Needs {
        step: Step,
        host: Option<String>,
        state: String,
    },
    /// The licence gate has errors.
    Licence(Vec<String>),
    /// No sign-off of the list installed on the master.
    Signoff { installed: String },
    /// No image in the store matches the current recipe.
    NoImage { recipe: String },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Needs {
                step,
                host: Some(h),
                state,
            } => write!(f, "{step} on {h} is {state}"),
            Blocker::Needs {
                step,
                host: None,
                state,
            } => write!(f, "{step} is {state}"),
            Blocker::Licence(errs) => write!(f, "the licence gate refuses: {}", errs.join("; ")),
            Blocker::Signoff { installed } => {
                write!(
                    f,
                    "no teachers' sign-off of the list installed on the master ({installed})"
                )
            }
            Blocker::NoImage { recipe } => {
                write!(f, "no captured image matches the current recipe ({recipe})")
            }
        }
    }
}

/// Checks the gate of `step` (on `host` for per-host steps).
pub fn gate(
    step: Step,
    host: Option<&str>,
    history: &History,
    current: &Current,
    facts: &Facts,
) -> Result<(), Blocker> {
    let needs = |s: Step, h: Option<&str>| -> Result<(), Blocker> {
        let e = history.effective(current, s, h);
        if e.is_done() {
            Ok(())
        } else {
            let state = match (&e, e.detail()) {
                (Effective::Skipped(_), _) | (_, "") => e.word().to_string(),
                (_, d) => format!("{} ({d})", e.word()),
            };
            Err(Blocker::Needs {
                step: s,
                host: h.map(str::to_string),
                state,
            })
        }
    };
    let licence = || {
        if facts.licence_errors.is_empty() {
            Ok(())
        } else {
            Err(Blocker::Licence(facts.licence_errors.clone()))
        }
    };
    match step {
        Step::Collect => licence(),
        Step::Format => Ok(()),
        Step::Install => {
            needs(Step::Collect, None)?;
            needs(Step::Format, None)?;
            licence()
        }
        Step::Test => needs(Step::Install, None),
        Step::Capture => {
            needs(Step::Test, None)?;
            // Install is done for the current recipe, so the list on the master is the current one.
            if facts.signed.iter().any(|d| d == &current.software) {
                Ok(())
            } else {
                Err(Blocker::Signoff {
                    installed: current.software.clone(),
                })
            }
        }
        Step::Deploy => {
            needs(Step::Capture, None)?;
            let image = history.captured_image(current);
            let ok = facts.images.iter().any(|i| {
                Some(i.id.as_str()) == image
                    && (i.recipe_digest == current.recipe || history.forced_image.is_some())
            });
            if ok {
                Ok(())
            } else {
                Err(Blocker::NoImage {
                    recipe: current.recipe.clone(),
                })
            }
        }
        Step::Join => needs(Step::Deploy, host),
        Step::Verify => needs(Step::Join, host),
    }
}
