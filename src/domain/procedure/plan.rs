//! What a run will do: for each selected step (and host), run it, leave it (already done) or
//! stop at a gate. The engine asks [`decide`] before each step; `--dry-run` prints [`plan`],
//! which decides every step assuming the ones before it succeed.

use super::facts::{Facts, ImageFact};
use super::gate::{Blocker, gate};
use super::history::{Effective, History, Record, StepStatus};
use super::keys::Current;
use super::step::Step;

/// Which steps and hosts a run covers (`--from`, `--only`, `--hosts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Re-run this step and every later one, even if done.
    pub from: Option<Step>,
    /// Run only this step, even if done.
    pub only: Option<Step>,
    /// Restrict per-host steps to these workstations.
    pub hosts: Option<Vec<String>>,
}

impl Selection {
    pub fn selects(&self, step: Step) -> bool {
        match (self.only, self.from) {
            (Some(o), _) => o == step,
            (None, Some(f)) => step >= f,
            (None, None) => true,
        }
    }

    /// Whether the step runs even when done.
    pub fn forces(&self, step: Step) -> bool {
        self.only == Some(step) || self.from.is_some_and(|f| step >= f)
    }

    pub fn selects_host(&self, host: &str) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }
}

/// What to do with one step (on one host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Outside `--only`/`--from`/`--hosts`.
    NotSelected,
    /// Done and still valid: nothing to do.
    AlreadyDone,
    /// Run it. `check_first`: it was interrupted and is not idempotent, so first check whether
    /// its effect is already in place.
    Run { why: String, check_first: bool },
    /// A gate refuses it.
    Blocked(Blocker),
}

/// Decides one step (on one host) from the history as it is now.
pub fn decide(
    step: Step,
    host: Option<&str>,
    history: &History,
    current: &Current,
    facts: &Facts,
    selection: &Selection,
) -> Action {
    if !selection.selects(step) || host.is_some_and(|h| !selection.selects_host(h)) {
        return Action::NotSelected;
    }
    let eff = history.effective(current, step, host);
    let forced = selection.forces(step);
    if eff.is_done() && !forced {
        return Action::AlreadyDone;
    }
    if let Err(b) = gate(step, host, history, current, facts) {
        return Action::Blocked(b);
    }
    let why = match &eff {
        Effective::Pending => "not done yet".to_string(),
        Effective::Done => "asked again (--from/--only)".to_string(),
        Effective::Stale(d) => format!("stale: {d}"),
        Effective::Failed(d) => format!("failed last time: {d}"),
        Effective::Skipped(d) => format!("skipped last time: {d}"),
        Effective::Interrupted => "interrupted last time".to_string(),
    };
    let check_first = eff == Effective::Interrupted && !step.idempotent();
    Action::Run { why, check_first }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    pub step: Step,
    pub host: Option<String>,
    pub action: Action,
}

/// The whole plan of a run over `hosts` (the room's workstations), assuming each step that
/// runs succeeds. Blocked steps stay blocked for what follows them.
pub fn plan(
    history: &History,
    current: &Current,
    facts: &Facts,
    selection: &Selection,
    hosts: &[String],
) -> Vec<PlanItem> {
    let mut sim = history.clone();
    let mut facts = facts.clone();
    let mut seq = sim
        .room
        .values()
        .chain(sim.hosts.values())
        .map(|r| r.seq)
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for step in Step::ALL {
        let targets: Vec<Option<&str>> = if step.per_host() {
            hosts.iter().map(|h| Some(h.as_str())).collect()
        } else {
            vec![None]
        };
        for host in targets {
            let action = decide(step, host, &sim, current, &facts, selection);
            if matches!(action, Action::Run { .. }) {
                seq += 1;
                let image = if step == Step::Capture {
                    let id = format!("{}/(new)", current.room);
                    facts.images.push(ImageFact {
                        id: id.clone(),
                        recipe_digest: current.recipe.clone(),
                    });
                    Some(id)
                } else {
                    None
                };
                let key = current.key(step, sim.captured_image(current).or(image.as_deref()));
                sim.put(
                    step,
                    host,
                    Record {
                        status: StepStatus::Done,
                        key,
                        seq,
                        message: String::new(),
                        image,
                    },
                );
            }
            out.push(PlanItem {
                step,
                host: host.map(str::to_string),
                action,
            });
        }
    }
    out
}
