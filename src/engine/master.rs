//! `parc master ROOM`: one run over a room — take the lock, close dead runs, then for each
//! step decide (gates, resume), run it (fanned out over workstations for deploy, join and
//! verify), and record everything in the journal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::domain::procedure::{Action, Blocker, Facts, History, Selection, Step, decide};
use crate::journal::{Holder, Journal};
use crate::ports::ProgressEvent;
use crate::workspace::Loaded;

pub use super::outcome::{HostFailure, Outcome, RunSummary};
use super::room::Room;
use super::{EngineError, Ports};

/// What `parc master` was asked.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    pub room: String,
    pub selection: Selection,
    /// How many workstations are worked on at once.
    pub concurrency: usize,
    /// The technician (login) recorded in the journal and the audit log.
    pub who: String,
    /// Today, for the licence gate.
    pub today: chrono::NaiveDate,
    /// Deploy this image although it was captured from another recipe (`parc reimage
    /// --force`); it must be in the store.
    pub forced_image: Option<String>,
}

/// How one attempt ended.
pub(super) enum Ended {
    Done,
    Failed(String),
    Interrupted,
}

/// A run in progress.
pub(super) struct Run<'a> {
    pub loaded: &'a Loaded,
    pub state_dir: PathBuf,
    pub room: Room,
    pub ports: &'a Ports,
    pub journal: Arc<Mutex<Journal>>,
    pub run_id: i64,
    pub who: String,
    pub cancel: CancellationToken,
    pub facts: Facts,
    pub history: History,
    pub today: chrono::NaiveDate,
    /// The audit log, opened at its first use and kept for the run (on PostgreSQL, one
    /// connection for the run's changes rather than one per change).
    pub audit: Mutex<Option<crate::audit::AuditLog>>,
}

/// Releases the room lock when the run ends, however it ends.
struct LockGuard {
    journal: Arc<Mutex<Journal>>,
    room: String,
    me: Holder,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let _ = j.release_lock(&self.room, &self.me);
    }
}

fn selection_text(s: &Selection) -> String {
    let mut parts = Vec::new();
    if let Some(f) = s.from {
        parts.push(format!("--from {f}"));
    }
    if let Some(o) = s.only {
        parts.push(format!("--only {o}"));
    }
    if let Some(h) = &s.hosts {
        parts.push(format!("--hosts {}", h.join(",")));
    }
    parts.join(" ")
}

/// Starts or continues the room's procedure.
pub async fn run_master(
    loaded: &Loaded,
    opts: &MasterOptions,
    ports: &Ports,
    cancel: CancellationToken,
) -> Result<RunSummary, EngineError> {
    let room = Room::resolve(loaded, &opts.room)?;
    if let Some(h) = &opts.selection.hosts {
        room.check_hosts(h)?;
    }
    let state_dir = loaded.dir.state_dir();
    let mut journal = Journal::open_for(loaded)?;
    let me = Holder::me();
    let took_over = journal.acquire_lock(&room.id, &me)?;
    let journal = Arc::new(Mutex::new(journal));
    let _guard = LockGuard {
        journal: journal.clone(),
        room: room.id.clone(),
        me: me.clone(),
    };
    let (closed, history) = {
        let j = journal.lock().unwrap_or_else(|e| e.into_inner());
        let closed = j.close_dead_runs(&room.id)?;
        let mut history = j.history(&room.id)?;
        history.forced_image = opts.forced_image.clone();
        (closed, history)
    };
    let facts = room.facts(loaded, &*ports.images, opts.today).await?;
    let run_id = journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .start_run(
            &room.id,
            &room.current.recipe,
            &opts.who,
            &me,
            &selection_text(&opts.selection),
        )?;
    let reporter = ports.reporter.clone();
    reporter.report(ProgressEvent::RunStarted {
        room: room.id.clone(),
        run: run_id,
    });
    if let Some(h) = &took_over {
        reporter.report(ProgressEvent::Message {
            text: format!(
                "took over the lock of pid {} on {} (started {}), which is no longer running",
                h.pid, h.host, h.started
            ),
        });
    }
    let mut run = Run {
        loaded,
        state_dir,
        room,
        ports,
        journal: journal.clone(),
        run_id,
        who: opts.who.clone(),
        cancel,
        facts,
        history,
        today: opts.today,
        audit: Mutex::new(None),
    };
    let result = run.steps(&opts.selection, opts.concurrency.max(1)).await;
    let (word, detail) = match &result {
        Ok(o) => (o.word(), o.detail()),
        Err(e) => ("failed", e.to_string()),
    };
    journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .finish_run(run_id, word, &detail)?;
    reporter.report(ProgressEvent::RunFinished {
        room: run.room.id.clone(),
        run: run_id,
        outcome: word.into(),
    });
    Ok(RunSummary {
        run: run_id,
        room: run.room.id.clone(),
        outcome: result?,
        took_over,
        closed,
    })
}

impl Run<'_> {
    pub(super) fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn reload(&mut self, step: Step) -> Result<(), EngineError> {
        let mut history = self.journal().history(&self.room.id)?;
        history.forced_image = self.history.forced_image.take();
        self.history = history;
        if step == Step::Capture {
            self.facts = self
                .room
                .facts(self.loaded, &*self.ports.images, self.today)
                .await?;
        }
        Ok(())
    }

    async fn steps(&mut self, sel: &Selection, concurrency: usize) -> Result<Outcome, EngineError> {
        let mut failures = Vec::new();
        let reporter = self.ports.reporter.clone();
        for step in Step::ALL {
            if self.cancel.is_cancelled() {
                return Ok(Outcome::Interrupted);
            }
            let cur = &self.room.current;
            if !step.per_host() {
                match decide(step, None, &self.history, cur, &self.facts, sel) {
                    Action::NotSelected | Action::AlreadyDone => continue,
                    Action::Blocked(b) => {
                        return Ok(Outcome::Blocked {
                            step,
                            reason: b.to_string(),
                        });
                    }
                    Action::Run { check_first, .. } => {
                        reporter.report(ProgressEvent::StepStarted {
                            room: self.room.id.clone(),
                            step: step.to_string(),
                        });
                        let ended = self.attempt(step, None, check_first).await?;
                        let status = match &ended {
                            Ended::Done => "done",
                            Ended::Failed(_) => "failed",
                            Ended::Interrupted => "interrupted",
                        };
                        reporter.report(ProgressEvent::StepFinished {
                            room: self.room.id.clone(),
                            step: step.to_string(),
                            status: status.into(),
                        });
                        self.reload(step).await?;
                        match ended {
                            Ended::Done => {}
                            Ended::Failed(message) => return Ok(Outcome::Failed { step, message }),
                            Ended::Interrupted => return Ok(Outcome::Interrupted),
                        }
                    }
                }
                continue;
            }
            let mut to_run = Vec::new();
            for t in &self.room.workstations {
                match decide(
                    step,
                    Some(&t.hostname),
                    &self.history,
                    cur,
                    &self.facts,
                    sel,
                ) {
                    Action::NotSelected | Action::AlreadyDone => {}
                    Action::Blocked(b @ Blocker::Needs { host: Some(_), .. }) => {
                        let why = b.to_string();
                        let key = cur.key(step, self.history.captured_image(cur));
                        self.journal()
                            .skip(self.run_id, step, Some(&t.hostname), &key, &why)?;
                        failures.push(HostFailure {
                            step,
                            host: t.hostname.clone(),
                            skipped: true,
                            message: why,
                        });
                    }
                    Action::Blocked(b) => {
                        return Ok(Outcome::Blocked {
                            step,
                            reason: b.to_string(),
                        });
                    }
                    Action::Run { check_first, .. } => to_run.push((t.clone(), check_first)),
                }
            }
            if to_run.is_empty() {
                self.reload(step).await?;
                continue;
            }
            reporter.report(ProgressEvent::StepStarted {
                room: self.room.id.clone(),
                step: step.to_string(),
            });
            // A run's deploys may go together, as one multicast stream to the room.
            let mut width = concurrency;
            let batch_cx = if step == Step::Deploy {
                let (cx, batch) = self.begin_deploy(&to_run).await?;
                if batch.together {
                    width = to_run.len();
                }
                reporter.report(ProgressEvent::Message { text: batch.note });
                Some(cx)
            } else {
                None
            };
            let this = &*self;
            let results: Vec<(String, Result<Ended, EngineError>)> = futures::stream::iter(to_run)
                .map(|(t, check_first)| async move {
                    let r = this.attempt(step, Some(&t), check_first).await;
                    (t.hostname, r)
                })
                .buffer_unordered(width)
                .collect()
                .await;
            if let Some(cx) = &batch_cx {
                if let Some(line) = self.ports.actions.end_deploy(cx).await {
                    cx.log.line(&line);
                    reporter.report(ProgressEvent::Message { text: line });
                }
            }
            let mut interrupted = false;
            let mut step_failed = false;
            let mut first_error = None;
            for (host, r) in results {
                match r {
                    Ok(Ended::Done) => {}
                    Ok(Ended::Failed(message)) => {
                        step_failed = true;
                        failures.push(HostFailure {
                            step,
                            host,
                            skipped: false,
                            message,
                        });
                    }
                    Ok(Ended::Interrupted) => interrupted = true,
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            reporter.report(ProgressEvent::StepFinished {
                room: self.room.id.clone(),
                step: step.to_string(),
                status: if interrupted {
                    "interrupted"
                } else if step_failed {
                    "partial"
                } else {
                    "done"
                }
                .into(),
            });
            self.reload(step).await?;
            if let Some(e) = first_error {
                return Err(e);
            }
            if interrupted {
                return Ok(Outcome::Interrupted);
            }
        }
        failures.sort_by(|a, b| (a.step, &a.host).cmp(&(b.step, &b.host)));
        Ok(if failures.is_empty() {
            Outcome::Done
        } else {
            Outcome::Partial(failures)
        })
    }
}

/// The plan of `parc master --dry-run`: nothing is run, nothing is locked.
/// The plan, without running it: it needs only the image store (to know whether an
/// image of the current recipe exists), never a machine.
pub async fn dry_run(
    loaded: &Loaded,
    opts: &MasterOptions,
    images: &dyn crate::ports::ImageStore,
) -> Result<Vec<super::PlanLine>, EngineError> {
    let room = Room::resolve(loaded, &opts.room)?;
    if let Some(h) = &opts.selection.hosts {
        room.check_hosts(h)?;
    }
    let mut history = Journal::open_for(loaded)?.history(&room.id)?;
    history.forced_image = opts.forced_image.clone();
    let facts = room.facts(loaded, images, opts.today).await?;
    Ok(super::status::plan_lines(
        &room,
        &history,
        &facts,
        &opts.selection,
    ))
}
