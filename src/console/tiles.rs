//! A room's board: one tile per workstation (the step it is at, its progress and throughput,
//! the path its image took, its domain, verified or why not) and the run's banner, folded
//! from the engine's progress events. Pure: the events come in with their time.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ports::ProgressEvent;

/// Where a workstation stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TileState {
    /// Nothing started on it in this run.
    #[default]
    Waiting,
    Running,
    Done,
    Failed,
}

impl TileState {
    pub fn as_str(self) -> &'static str {
        match self {
            TileState::Waiting => "waiting",
            TileState::Running => "running",
            TileState::Done => "done",
            TileState::Failed => "failed",
        }
    }
}

/// A step's progress on one workstation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
    pub unit: String,
    /// Units per second since the step's first progress event.
    pub rate: Option<f64>,
    #[serde(skip)]
    first: Option<(i64, u64)>,
}

/// One workstation's tile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tile {
    pub host: String,
    /// The step it is at, or the last one it went through.
    pub step: Option<String>,
    pub state: TileState,
    pub progress: Option<Progress>,
    /// How its image came: `unicast`, `multicast`, … (from the deploy's report).
    pub path: Option<String>,
    /// Whether it joined the site's domain in this run.
    pub joined: bool,
    /// `Some(Ok)` verified conforming, `Some(Err(why))` not.
    pub verified: Option<Result<(), String>>,
    /// The last word of its step (a failure's reason, the deploy's report).
    pub message: String,
}

/// One step of the room's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepLine {
    pub step: String,
    /// `running` until it finishes, then its status.
    pub status: String,
}

/// A room's board during and after a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Board {
    pub run: Option<i64>,
    /// `None` while the run goes on.
    pub outcome: Option<String>,
    pub steps: Vec<StepLine>,
    pub hosts: BTreeMap<String, Tile>,
    /// The last message of the run (`Message` events).
    pub note: String,
    /// The time of the last event.
    pub updated: String,
}

use super::live::Change;

/// Milliseconds of an RFC 3339 time (`None` when it does not parse).
fn millis(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The path a deploy report names: "… by multicast, incrementally …" → `multicast`.
pub(super) fn path_of(message: &str) -> Option<String> {
    let after = message.split(" by ").nth(1)?;
    let word: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '+')
        .collect();
    (!word.is_empty()).then_some(word)
}

impl Board {
    /// Folds one event in; says what changed.
    pub fn apply(&mut self, time: &str, event: &ProgressEvent) -> Option<Change> {
        self.updated = time.to_owned();
        match event {
            ProgressEvent::RunStarted { run, .. } => {
                self.run = Some(*run);
                self.outcome = None;
                Some(Change::Run)
            }
            ProgressEvent::RunFinished { outcome, .. } => {
                self.outcome = Some(outcome.clone());
                Some(Change::Run)
            }
            ProgressEvent::StepStarted { step, .. } => {
                self.steps.retain(|s| &s.step != step);
                self.steps.push(StepLine {
                    step: step.clone(),
                    status: "running".into(),
                });
                Some(Change::Run)
            }
            ProgressEvent::StepFinished { step, status, .. } => {
                match self.steps.iter_mut().find(|s| &s.step == step) {
                    Some(s) => s.status = status.clone(),
                    None => self.steps.push(StepLine {
                        step: step.clone(),
                        status: status.clone(),
                    }),
                }
                Some(Change::Run)
            }
            ProgressEvent::Message { text } => {
                self.note = text.clone();
                Some(Change::Run)
            }
            ProgressEvent::HostStarted { step, host } => {
                let t = self.tile(host);
                t.step = Some(step.clone());
                t.state = TileState::Running;
                t.progress = None;
                t.message.clear();
                if step == "verify" {
                    t.verified = None;
                }
                Some(Change::Host(host.clone()))
            }
            ProgressEvent::HostProgress {
                step,
                host,
                done,
                total,
                unit,
            } => {
                let now = millis(time);
                let t = self.tile(host);
                t.step = Some(step.clone());
                t.state = TileState::Running;
                let first = t
                    .progress
                    .as_ref()
                    .filter(|p| &p.unit == unit && p.done <= *done)
                    .and_then(|p| p.first)
                    .or(now.map(|ms| (ms, *done)));
                let rate = match (first, now) {
                    (Some((t0, d0)), Some(t1)) if t1 > t0 => {
                        Some((done - d0) as f64 * 1000.0 / (t1 - t0) as f64)
                    }
                    _ => None,
                };
                t.progress = Some(Progress {
                    done: *done,
                    total: *total,
                    unit: unit.clone(),
                    rate,
                    first,
                });
                Some(Change::Host(host.clone()))
            }
            ProgressEvent::HostFinished {
                step,
                host,
                ok,
                message,
            } => {
                let t = self.tile(host);
                t.step = Some(step.clone());
                t.state = if *ok {
                    TileState::Done
                } else {
                    TileState::Failed
                };
                t.message = message.clone();
                match (step.as_str(), ok) {
                    ("deploy", true) => t.path = path_of(message),
                    ("join", ok) => t.joined = *ok,
                    ("verify", true) => t.verified = Some(Ok(())),
                    ("verify", false) => t.verified = Some(Err(message.clone())),
                    _ => {}
                }
                Some(Change::Host(host.clone()))
            }
        }
    }

    fn tile(&mut self, host: &str) -> &mut Tile {
        self.hosts.entry(host.to_owned()).or_insert_with(|| Tile {
            host: host.to_owned(),
            ..Tile::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(step: &str, host: &str) -> ProgressEvent {
        ProgressEvent::HostStarted {
            step: step.into(),
            host: host.into(),
        }
    }

    fn finished(step: &str, host: &str, ok: bool, message: &str) -> ProgressEvent {
        ProgressEvent::HostFinished {
            step: step.into(),
            host: host.into(),
            ok,
            message: message.into(),
        }
    }

    fn progress(done: u64) -> ProgressEvent {
        ProgressEvent::HostProgress {
            step: "deploy".into(),
            host: "b204-02".into(),
            done,
            total: Some(1 << 30),
            unit: "bytes".into(),
        }
    }

    #[test]
    fn a_tile_follows_its_workstation_through_deploy_join_and_verify() {
        let mut b = Board::default();
        assert_eq!(
            b.apply("2026-12-04T10:00:00Z", &started("deploy", "b204-02")),
            Some(Change::Host("b204-02".into()))
        );
        assert_eq!(b.hosts["b204-02"].state, TileState::Running);
        b.apply("2026-12-04T10:00:01Z", &progress(0));
        b.apply("2026-12-04T10:00:03Z", &progress(200 << 20));
        let p = b.hosts["b204-02"].progress.clone().expect("progress");
        assert_eq!(p.done, 200 << 20);
        let rate = p.rate.expect("rate");
        assert!((rate - (100u64 << 20) as f64).abs() < 1.0, "{rate}");
        b.apply(
            "2026-12-04T10:00:09Z",
            &finished(
                "deploy",
                "b204-02",
                true,
                "deployed b204/v-1 as b204-02 by multicast, incrementally (…)",
            ),
        );
        b.apply("2026-12-04T10:00:10Z", &started("join", "b204-02"));
        b.apply(
            "2026-12-04T10:00:11Z",
            &finished("join", "b204-02", true, ""),
        );
        b.apply(
            "2026-12-04T10:00:12Z",
            &finished(
                "verify",
                "b204-02",
                false,
                "GeoGebra 6.0.849 found, 6.0.850 expected",
            ),
        );
        let t = &b.hosts["b204-02"];
        assert_eq!(t.path.as_deref(), Some("multicast"));
        assert!(t.joined);
        assert_eq!(
            t.verified,
            Some(Err("GeoGebra 6.0.849 found, 6.0.850 expected".into()))
        );
        assert_eq!(t.state, TileState::Failed);
        assert_eq!(t.step.as_deref(), Some("verify"));
    }

    #[test]
    fn the_banner_has_the_run_its_steps_and_its_outcome() {
        let mut b = Board::default();
        let t = "2026-12-04T10:00:00Z";
        b.apply(
            t,
            &ProgressEvent::RunStarted {
                room: "b204".into(),
                run: 7,
            },
        );
        b.apply(
            t,
            &ProgressEvent::StepStarted {
                room: "b204".into(),
                step: "deploy".into(),
            },
        );
        assert_eq!(b.steps[0].status, "running");
        b.apply(
            t,
            &ProgressEvent::StepFinished {
                room: "b204".into(),
                step: "deploy".into(),
                status: "done".into(),
            },
        );
        b.apply(
            t,
            &ProgressEvent::RunFinished {
                room: "b204".into(),
                run: 7,
                outcome: "done".into(),
            },
        );
        assert_eq!((b.run, b.outcome.as_deref()), (Some(7), Some("done")));
        assert_eq!(b.steps.len(), 1);
        assert_eq!(b.steps[0].status, "done");
    }

    #[test]
    fn the_path_is_the_word_after_by() {
        assert_eq!(
            path_of("deployed x as h by unicast").as_deref(),
            Some("unicast")
        );
        assert_eq!(path_of("deployed x as h"), None);
    }
}
