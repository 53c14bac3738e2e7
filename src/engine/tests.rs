//! Engine tests with in-memory fakes of the ports, on a temporary copy of the test workspace
//! and a real SQLite journal: full run, resume, partial failure, gates, lock, Ctrl-C.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::procedure::{Selection, Step};
use crate::fsutil::copy_tree;
use crate::ports::steps::{Captured, StepActions, StepCx, Target};
use crate::ports::{ImageInfo, PortErrorKind, PortResult, ProgressEvent};
use crate::workspace::{Loaded, WorkspaceDir};

#[derive(Default)]
struct MemImages(Mutex<Vec<ImageInfo>>);

#[async_trait]
impl ImageStore for MemImages {
    async fn list(&self, room: Option<&str>) -> PortResult<Vec<ImageInfo>> {
        let v = self.0.lock().expect("lock").clone();
        Ok(v.into_iter()
            .filter(|i| room.is_none_or(|r| r == i.room))
            .collect())
    }
    async fn get(&self, id: &str) -> PortResult<Option<ImageInfo>> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .iter()
            .find(|i| i.id == id)
            .cloned())
    }
    async fn verify(&self, _id: &str) -> PortResult<Result<(), String>> {
        Ok(Ok(()))
    }
}

#[derive(Default)]
struct MemActions {
    effects: Mutex<Vec<(Step, String)>>,
    calls: Mutex<Vec<(Step, String)>>,
    fail: Mutex<Vec<(Step, String)>>,
    /// Steps whose body waits until cancelled.
    hang: Mutex<Option<Step>>,
    images: Arc<MemImages>,
}

impl MemActions {
    async fn body(&self, cx: &StepCx, step: Step, host: &str) -> PortResult<Result<(), String>> {
        self.calls.lock().expect("lock").push((step, host.into()));
        if *self.hang.lock().expect("lock") == Some(step) {
            cx.cancel.cancelled().await;
            return Err(PortError::new(PortErrorKind::Cancelled, "cancelled"));
        }
        if self
            .fail
            .lock()
            .expect("lock")
            .iter()
            .any(|(s, h)| *s == step && h == host)
        {
            return match step {
                Step::Test | Step::Verify => Ok(Err(format!("{step} found {host} wrong"))),
                _ => Err(PortError::new(
                    PortErrorKind::Unreachable,
                    format!("{host} does not answer"),
                )),
            };
        }
        if step.changes_machine() {
            self.effects.lock().expect("lock").push((step, host.into()));
        }
        Ok(Ok(()))
    }
    fn effects_of(&self, step: Step) -> Vec<String> {
        self.effects
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, _)| *s == step)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

fn unit(r: PortResult<Result<(), String>>) -> PortResult<()> {
    r?.map_err(|m| PortError::new(PortErrorKind::Other, m))
}

#[async_trait]
impl StepActions for MemActions {
    async fn collect(&self, cx: &StepCx) -> PortResult<()> {
        unit(self.body(cx, Step::Collect, &cx.master.hostname).await)
    }
    async fn format(&self, cx: &StepCx) -> PortResult<()> {
        unit(self.body(cx, Step::Format, &cx.master.hostname).await)
    }
    async fn install(&self, cx: &StepCx) -> PortResult<()> {
        unit(self.body(cx, Step::Install, &cx.master.hostname).await)
    }
    async fn test(&self, cx: &StepCx) -> PortResult<Result<(), String>> {
        self.body(cx, Step::Test, &cx.master.hostname).await
    }
    async fn capture(&self, cx: &StepCx) -> PortResult<Captured> {
        unit(self.body(cx, Step::Capture, &cx.master.hostname).await)?;
        let mut images = self.images.0.lock().expect("lock");
        let version = format!("{}", images.len() + 1);
        let id = format!("{}/{version}", cx.room);
        images.push(ImageInfo {
            room: cx.room.clone(),
            version,
            id: id.clone(),
            recipe_digest: cx.recipe_digest.clone(),
            software_digest: cx.software_digest.clone(),
            captured_at: None,
        });
        Ok(Captured { id })
    }
    async fn deploy_host(&self, cx: &StepCx, host: &Target) -> PortResult<String> {
        unit(self.body(cx, Step::Deploy, &host.hostname).await).map(|()| String::new())
    }
    async fn join_host(&self, cx: &StepCx, host: &Target) -> PortResult<()> {
        unit(self.body(cx, Step::Join, &host.hostname).await)
    }
    async fn verify_host(&self, cx: &StepCx, host: &Target) -> PortResult<Result<(), String>> {
        self.body(cx, Step::Verify, &host.hostname).await
    }
    async fn check_done(&self, cx: &StepCx, step: Step, host: Option<&Target>) -> PortResult<bool> {
        let h = host.map_or(cx.master.hostname.clone(), |t| t.hostname.clone());
        Ok(self
            .effects
            .lock()
            .expect("lock")
            .iter()
            .any(|(s, x)| *s == step && *x == h))
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressEvent>>);

impl crate::ports::Reporter for Recorder {
    fn report(&self, event: ProgressEvent) {
        self.0.lock().expect("lock").push(event);
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    actions: Arc<MemActions>,
    recorder: Arc<Recorder>,
    ports: Ports,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("ws");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-ws"),
        &root,
    )
    .unwrap();
    let actions = Arc::new(MemActions::default());
    let recorder = Arc::new(Recorder::default());
    let ports = Ports {
        actions: actions.clone(),
        images: actions.images.clone(),
        reporter: recorder.clone(),
    };
    Bench {
        _dir: dir,
        root,
        actions,
        recorder,
        ports,
    }
}

impl Bench {
    fn loaded(&self) -> Loaded {
        WorkspaceDir::open(&self.root)
            .expect("open")
            .load()
            .expect("load")
            .require_parsed()
            .expect("parsed")
    }
    fn opts(&self, selection: Selection) -> MasterOptions {
        MasterOptions {
            room: "b204".into(),
            selection,
            concurrency: 2,
            who: "tech".into(),
            today: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
            forced_image: None,
        }
    }
    async fn run(&self, selection: Selection) -> Result<RunSummary, EngineError> {
        run_master(
            &self.loaded(),
            &self.opts(selection),
            &self.ports,
            CancellationToken::new(),
        )
        .await
    }
    fn audit(&self) -> Vec<crate::audit::Stored> {
        crate::audit::AuditLog::open(&self.root.join(".parc"))
            .expect("audit")
            .list(None, None)
            .expect("list")
    }
}

const HOSTS: [&str; 4] = ["b204-01", "b204-02", "b204-03", "b204-04"];

#[tokio::test]
async fn a_full_run_does_every_step_once_and_a_second_run_nothing() {
    let b = bench();
    let s = b.run(Selection::default()).await.expect("run");
    assert_eq!(s.outcome, Outcome::Done);
    assert_eq!(b.actions.effects_of(Step::Format), vec!["b204-01"]);
    assert_eq!(b.actions.effects_of(Step::Capture), vec!["b204-01"]);
    let mut deployed = b.actions.effects_of(Step::Deploy);
    deployed.sort();
    assert_eq!(deployed, HOSTS);
    assert_eq!(b.actions.effects_of(Step::Join).len(), 4);
    // The audit log has every change and verifies.
    let audit = b.audit();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "deploy").count(), 4);
    assert_eq!(actions.iter().filter(|a| **a == "join").count(), 4);
    assert!(
        actions.contains(&"format") && actions.contains(&"install") && actions.contains(&"capture")
    );
    assert!(
        crate::audit::AuditLog::open(&b.root.join(".parc"))
            .expect("open")
            .verify()
            .expect("verify")
            .is_ok()
    );
    // Progress: started, finished events for each step.
    let events = b.recorder.0.lock().expect("lock").clone();
    assert!(matches!(
        events.first(),
        Some(ProgressEvent::RunStarted { .. })
    ));
    assert!(
        matches!(events.last(), Some(ProgressEvent::RunFinished { outcome, .. }) if outcome == "done")
    );

    let calls = b.actions.calls.lock().expect("lock").len();
    let s2 = b.run(Selection::default()).await.expect("second run");
    assert_eq!(s2.outcome, Outcome::Done);
    assert_eq!(
        b.actions.calls.lock().expect("lock").len(),
        calls,
        "a finished room has nothing to do"
    );
    let status = room_status(
        &b.loaded(),
        "b204",
        Some(&*b.ports.images),
        b.opts(Selection::default()).today,
    )
    .await
    .expect("status");
    assert!(
        status.steps.iter().all(|s| s.state == "done"),
        "{status:#?}"
    );
    assert_eq!(status.next, None);
}

#[tokio::test]
async fn one_failed_workstation_does_not_stop_the_others() {
    let b = bench();
    b.actions
        .fail
        .lock()
        .expect("lock")
        .push((Step::Deploy, "b204-03".into()));
    let s = b.run(Selection::default()).await.expect("run");
    let Outcome::Partial(failures) = &s.outcome else {
        panic!("expected partial, got {:?}", s.outcome)
    };
    let list: Vec<(Step, &str, bool)> = failures
        .iter()
        .map(|f| (f.step, f.host.as_str(), f.skipped))
        .collect();
    assert_eq!(
        list,
        vec![
            (Step::Deploy, "b204-03", false),
            (Step::Join, "b204-03", true),
            (Step::Verify, "b204-03", true)
        ]
    );
    assert!(failures[0].message.contains("does not answer"));
    assert_eq!(b.actions.effects_of(Step::Join).len(), 3);
    // The run row says partial, with the list.
    let j = crate::journal::Journal::open(&b.root.join(".parc")).expect("journal");
    let run = j.run(s.run).expect("run row");
    assert_eq!(run.outcome.as_deref(), Some("partial"));
    assert!(
        run.detail.contains("deploy b204-03 failed"),
        "{}",
        run.detail
    );
    // Fixed: the next run only works on b204-03.
    b.actions.fail.lock().expect("lock").clear();
    b.actions.calls.lock().expect("lock").clear();
    let s = b.run(Selection::default()).await.expect("rerun");
    assert_eq!(s.outcome, Outcome::Done);
    let calls = b.actions.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![
            (Step::Deploy, "b204-03".into()),
            (Step::Join, "b204-03".into()),
            (Step::Verify, "b204-03".into())
        ]
    );
}

#[tokio::test]
async fn capture_is_refused_without_the_teachers_signoff() {
    let b = bench();
    let room = b.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room).expect("read");
    std::fs::write(&room, text.split("[[signoff]]").next().expect("head")).expect("write");
    let s = b.run(Selection::default()).await.expect("run");
    match &s.outcome {
        Outcome::Blocked {
            step: Step::Capture,
            reason,
        } => assert!(reason.contains("sign-off"), "{reason}"),
        other => panic!("expected blocked at capture, got {other:?}"),
    }
    assert!(b.actions.effects_of(Step::Capture).is_empty());
    assert_eq!(b.actions.effects_of(Step::Install).len(), 1);
}

#[tokio::test]
async fn a_second_master_on_the_room_is_refused_naming_the_first() {
    let b = bench();
    let mut j = crate::journal::Journal::open(&b.root.join(".parc")).expect("journal");
    let other = crate::journal::Holder {
        pid: std::os::unix::process::parent_id(),
        proc_start: String::new(),
        ..crate::journal::Holder::me()
    };
    j.acquire_lock("b204", &other).expect("lock");
    let err = b.run(Selection::default()).await.expect_err("refused");
    assert!(err.is_user_error());
    assert!(
        err.to_string().contains(&format!("pid {}", other.pid)),
        "{err}"
    );
    assert!(b.actions.calls.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn ctrl_c_cancels_running_work_and_the_journal_says_interrupted() {
    let b = bench();
    *b.actions.hang.lock().expect("lock") = Some(Step::Deploy);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        c2.cancel();
    });
    let s = run_master(&b.loaded(), &b.opts(Selection::default()), &b.ports, cancel)
        .await
        .expect("run");
    assert_eq!(s.outcome, Outcome::Interrupted);
    let j = crate::journal::Journal::open(&b.root.join(".parc")).expect("journal");
    assert_eq!(
        j.run(s.run).expect("run").outcome.as_deref(),
        Some("interrupted")
    );
    let attempts = j.attempts(s.run).expect("attempts");
    let deploys: Vec<&str> = attempts
        .iter()
        .filter(|a| a.step == "deploy")
        .map(|a| a.status.as_str())
        .collect();
    assert_eq!(
        deploys,
        vec!["interrupted", "interrupted"],
        "two hosts at a time were running"
    );
    assert!(
        j.lock_holder("b204").expect("lock").is_none(),
        "the lock is released"
    );
    // Resume: the interrupted deploys are checked first (not in place), then run.
    *b.actions.hang.lock().expect("lock") = None;
    assert_eq!(
        b.run(Selection::default()).await.expect("resume").outcome,
        Outcome::Done
    );
    assert_eq!(b.actions.effects_of(Step::Deploy).len(), 4);
}

#[tokio::test]
async fn an_interrupted_effect_already_in_place_is_not_redone() {
    let b = bench();
    b.run(Selection {
        only: Some(Step::Collect),
        ..Selection::default()
    })
    .await
    .expect("collect");
    b.run(Selection {
        only: Some(Step::Format),
        ..Selection::default()
    })
    .await
    .expect("format");
    // A process dies right after the install happened on the master.
    let j = crate::journal::Journal::open(&b.root.join(".parc")).expect("journal");
    let dead = crate::journal::Holder {
        pid: 999_999,
        ..crate::journal::Holder::me()
    };
    let cur = crate::domain::procedure::Current::of(b.loaded().room("b204").expect("room"));
    let run = j
        .start_run("b204", &cur.recipe, "tech", &dead, "")
        .expect("run");
    j.start_attempt(run, Step::Install, None, &cur.recipe, None)
        .expect("attempt");
    b.actions
        .effects
        .lock()
        .expect("lock")
        .push((Step::Install, "b204-01".into()));
    let s = b.run(Selection::default()).await.expect("resume");
    assert_eq!(s.outcome, Outcome::Done);
    assert_eq!(s.closed, vec![run]);
    assert_eq!(
        b.actions.effects_of(Step::Install).len(),
        1,
        "install ran again"
    );
    assert!(
        !b.actions
            .calls
            .lock()
            .expect("lock")
            .iter()
            .any(|(s, _)| *s == Step::Install)
    );
    let installs: Vec<_> = b
        .audit()
        .into_iter()
        .filter(|e| e.action == "install")
        .collect();
    assert_eq!(installs.len(), 1);
    assert!(
        installs[0].detail.contains("found in place"),
        "{}",
        installs[0].detail
    );
}

#[tokio::test]
async fn unknown_hosts_are_refused() {
    let b = bench();
    let err = b
        .run(Selection {
            hosts: Some(vec!["b204-02".into(), "b205-01".into()]),
            ..Selection::default()
        })
        .await
        .expect_err("refused");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("b205-01"), "{err}");
}

#[tokio::test]
async fn redeploying_a_workstation_is_audited_as_a_reimage() {
    let b = bench();
    assert_eq!(
        b.run(Selection::default()).await.expect("run").outcome,
        Outcome::Done
    );
    let s = b
        .run(Selection {
            from: Some(Step::Deploy),
            hosts: Some(vec!["b204-02".into()]),
            ..Selection::default()
        })
        .await
        .expect("reimage");
    assert_eq!(s.outcome, Outcome::Done);
    assert_eq!(
        b.actions
            .effects_of(Step::Deploy)
            .iter()
            .filter(|h| *h == "b204-02")
            .count(),
        2
    );
    let reimages: Vec<_> = b
        .audit()
        .into_iter()
        .filter(|e| e.action == "reimage")
        .collect();
    assert_eq!(reimages.len(), 1);
    assert_eq!(reimages[0].subject, "b204-02");
    // Join and verify of b204-02 ran again after its new deploy; the others were left alone.
    assert_eq!(
        b.actions
            .effects_of(Step::Join)
            .iter()
            .filter(|h| *h == "b204-02")
            .count(),
        2
    );
    assert_eq!(b.actions.effects_of(Step::Join).len(), 5);
}

#[tokio::test]
async fn an_install_under_the_heads_authorisation_is_audited_as_a_licence_override() {
    let b = bench();
    let room = b.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room)
        .expect("read")
        .replace("seats = 10", "seats = 2");
    std::fs::write(&room, &text).expect("write");
    // Refused without the authorisation, from collect on: no installer is even fetched.
    let s = b.run(Selection::default()).await.expect("run");
    assert!(
        matches!(&s.outcome, Outcome::Blocked { step: Step::Collect, reason } if reason.contains("2 seats")),
        "{s:?}"
    );
    let authorised = format!(
        "{text}\n[[authorisation]]\nproduct = \"Régressi\"\nby = \"M. Martin, proviseur\"\ndate = 2026-09-02\nreference = \"courrier 2026-41\"\n"
    );
    std::fs::write(&room, authorised).expect("write");
    assert_eq!(
        b.run(Selection::default()).await.expect("run").outcome,
        Outcome::Done
    );
    let overrides: Vec<_> = b
        .audit()
        .into_iter()
        .filter(|e| e.action == "licence-override")
        .collect();
    assert_eq!(overrides.len(), 1);
    assert!(
        overrides[0].detail.contains("courrier 2026-41"),
        "{}",
        overrides[0].detail
    );
}
