//! What `parc status` and `parc master --dry-run` show: each step's state (per workstation
//! for deploy/join/verify), why a step is stale, what blocks, and the plan of a run.

use crate::domain::procedure::{Action, Facts, History, ImageFact, Selection, Step, plan};
use crate::journal::{Holder, Journal, RunRow, process_alive};
use crate::ports::ImageStore;
use crate::workspace::Loaded;

use super::EngineError;
use super::room::Room;

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanLine {
    pub step: Step,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// run, done, blocked, not-selected.
    pub action: &'static str,
    /// Why it runs, or what blocks it.
    pub why: String,
    /// What the step does.
    pub what: &'static str,
}

pub(super) fn plan_lines(
    room: &Room,
    history: &History,
    facts: &Facts,
    sel: &Selection,
) -> Vec<PlanLine> {
    plan(history, &room.current, facts, sel, &room.hostnames())
        .into_iter()
        .map(|i| {
            let (action, why) = match i.action {
                Action::NotSelected => ("not-selected", String::new()),
                Action::AlreadyDone => ("done", String::new()),
                Action::Run {
                    why,
                    check_first: true,
                } => (
                    "run",
                    format!("{why}; first checks whether its effect is already in place"),
                ),
                Action::Run {
                    why,
                    check_first: false,
                } => ("run", why),
                Action::Blocked(b) => ("blocked", b.to_string()),
            };
            PlanLine {
                step: i.step,
                host: i.host,
                action,
                why,
                what: i.step.describe(),
            }
        })
        .collect()
}

/// A workstation's state in a per-host step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostState {
    pub host: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One step's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepState {
    pub step: Step,
    /// For per-host steps: done when every workstation is, else the worst.
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostState>,
}

/// A room's procedure at a glance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomStatus {
    pub room: String,
    pub recipe_digest: String,
    pub software_digest: String,
    /// The image of the current capture.
    pub image: Option<String>,
    pub steps: Vec<StepState>,
    /// The first step a run would stop at, and why.
    pub blocked: Option<String>,
    /// The next thing a run would do.
    pub next: Option<String>,
    /// A live `parc master` working on the room.
    pub running: Option<Holder>,
    pub last_run: Option<RunRow>,
    /// Whether the image store was asked (else the journal's word is taken).
    pub images_checked: bool,
}

/// The status of one room. Without an image store (no adapters configured), the image the
/// journal says was captured is taken as present, and `images_checked` is false.
pub async fn room_status(
    loaded: &Loaded,
    room_id: &str,
    images: Option<&dyn ImageStore>,
    today: chrono::NaiveDate,
) -> Result<RoomStatus, EngineError> {
    let room = Room::resolve(loaded, room_id)?;
    let journal = Journal::open_for(loaded)?;
    let history = journal.history(&room.id)?;
    let facts = match images {
        Some(store) => room.facts(loaded, store, today).await?,
        None => {
            let journal_image = history.captured_image(&room.current).map(|id| ImageFact {
                id: id.to_string(),
                recipe_digest: room.current.recipe.clone(),
            });
            Facts::gather(
                &loaded.ws,
                &room.recipe,
                today,
                journal_image.into_iter().collect(),
            )
        }
    };
    let cur = &room.current;
    let mut steps = Vec::new();
    for step in Step::ALL {
        if step.per_host() {
            let hosts: Vec<HostState> = room
                .workstations
                .iter()
                .map(|t| {
                    let e = history.effective(cur, step, Some(&t.hostname));
                    // A done deploy says how its image came (multicast or unicast).
                    let detail = match history.get(step, Some(&t.hostname)) {
                        Some(r) if e.is_done() && step == Step::Deploy => r.message.clone(),
                        _ => e.detail().to_string(),
                    };
                    HostState {
                        host: t.hostname.clone(),
                        state: e.word(),
                        detail,
                    }
                })
                .collect();
            let state = [
                "failed",
                "interrupted",
                "skipped",
                "stale",
                "pending",
                "done",
            ]
            .into_iter()
            .find(|w| hosts.iter().any(|h| h.state == *w))
            .unwrap_or("pending");
            let n_done = hosts.iter().filter(|h| h.state == "done").count();
            let detail = format!("{n_done}/{} workstations done", hosts.len());
            steps.push(StepState {
                step,
                state,
                detail,
                hosts,
            });
        } else {
            let e = history.effective(cur, step, None);
            steps.push(StepState {
                step,
                state: e.word(),
                detail: e.detail().to_string(),
                hosts: Vec::new(),
            });
        }
    }
    let lines = plan_lines(&room, &history, &facts, &Selection::default());
    let label = |l: &PlanLine| match &l.host {
        Some(h) => format!("{} on {h}", l.step),
        None => l.step.to_string(),
    };
    let blocked = lines
        .iter()
        .find(|l| l.action == "blocked")
        .map(|l| format!("{}: {}", label(l), l.why));
    let next = lines
        .iter()
        .find(|l| l.action == "run")
        .map(|l| format!("{} ({})", label(l), l.why));
    let running = journal.lock_holder(&room.id)?.filter(process_alive);
    let last_run = journal.runs(Some(&room.id))?.into_iter().next();
    Ok(RoomStatus {
        room: room.id.clone(),
        recipe_digest: cur.recipe.clone(),
        software_digest: cur.software.clone(),
        image: history.captured_image(cur).map(str::to_string),
        steps,
        blocked,
        next,
        running,
        last_run,
        images_checked: images.is_some(),
    })
}
