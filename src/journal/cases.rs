//! The journal's behaviour, as cases any backend must pass: `tests.rs` runs them on SQLite,
//! `tests/journal_pg.rs` on SQLite and on a throwaway PostgreSQL cluster. Each case gets a
//! function that opens a journal on one fresh, empty store (each call is another connection
//! to the same store, as another parc process would open it).

use super::{Ending, Holder, Journal, JournalError};
use crate::domain::procedure::{Step, StepStatus};

/// A case: its name and its body.
pub type Case = (&'static str, fn(&dyn Fn() -> Journal));

/// Every case.
pub const ALL: &[Case] = &[
    (
        "a_live_holder_is_refused_and_a_dead_one_taken_over",
        a_live_holder_is_refused_and_a_dead_one_taken_over,
    ),
    (
        "dead_runs_end_interrupted_and_history_keeps_the_latest_attempt",
        dead_runs_end_interrupted_and_history_keeps_the_latest_attempt,
    ),
    ("sealed_rows_read_back", sealed_rows_read_back),
];

pub fn a_live_holder_is_refused_and_a_dead_one_taken_over(open: &dyn Fn() -> Journal) {
    let mut j = open();
    let me = Holder::me();
    assert_eq!(j.acquire_lock("b204", &me).expect("first"), None);
    // Another live process (our parent is alive) holding the lock refuses us.
    let mut j2 = open();
    let live = Holder {
        pid: std::os::unix::process::parent_id(),
        proc_start: String::new(),
        ..Holder::me()
    };
    j.release_lock("b204", &me).expect("release");
    j.acquire_lock("b204", &live).expect("parent takes it");
    match j2.acquire_lock("b204", &me) {
        Err(JournalError::Locked { holder, .. }) => {
            assert_eq!(holder.pid, live.pid);
            let msg = JournalError::Locked {
                room: "b204".into(),
                holder: holder.clone(),
            }
            .to_string();
            assert!(
                msg.contains(&format!("pid {}", live.pid))
                    && msg.contains(&holder.host)
                    && msg.contains(&format!("started {}", live.started)),
                "{msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Another room is free.
    assert_eq!(j2.acquire_lock("c112", &me).expect("other room"), None);
    // A dead process: spawn one, let it exit, then fake its lock from a journal that closes
    // (as a dead process's connection does).
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");
    j.release_lock("b204", &live).expect("release");
    let dead = Holder {
        pid: dead_pid,
        ..Holder::me()
    };
    {
        let mut j3 = open();
        j3.acquire_lock("b204", &dead).expect("dead takes it");
    }
    let took = j2.acquire_lock("b204", &me).expect("take over");
    assert_eq!(took.map(|h| h.pid), Some(dead_pid));
    assert_eq!(
        j2.lock_holder("b204").expect("holder").map(|h| h.pid),
        Some(me.pid)
    );
    // Released, it is free for the next one.
    j2.release_lock("b204", &me).expect("release");
    assert_eq!(j.lock_holder("b204").expect("holder"), None);
    assert_eq!(j.acquire_lock("b204", &live).expect("free again"), None);
}

pub fn dead_runs_end_interrupted_and_history_keeps_the_latest_attempt(open: &dyn Fn() -> Journal) {
    let j = open();
    let me = Holder::me();
    let r1 = j
        .start_run("b204", "sha256:a", "tech", &me, "")
        .expect("run");
    let a1 = j
        .start_attempt(r1, Step::Collect, None, "k", None)
        .expect("attempt");
    j.finish_attempt(
        a1,
        "failed",
        &Ending {
            message: "no media",
            ..Default::default()
        },
    )
    .expect("finish");
    let a2 = j
        .start_attempt(r1, Step::Collect, None, "k", None)
        .expect("attempt");
    j.finish_attempt(a2, "done", &Default::default())
        .expect("finish");
    j.start_attempt(r1, Step::Format, None, "b", None)
        .expect("attempt");
    // The process "dies" here: the next one closes the run.
    assert_eq!(j.close_dead_runs("b204").expect("close"), vec![r1]);
    let run = j.run(r1).expect("run");
    assert_eq!(run.outcome.as_deref(), Some("interrupted"));
    let h = j.history("b204").expect("history");
    assert_eq!(
        h.get(Step::Collect, None).map(|r| r.status),
        Some(StepStatus::Done)
    );
    assert_eq!(
        h.get(Step::Format, None).map(|r| r.status),
        Some(StepStatus::Running)
    );
    assert_eq!(
        j.attempts(r1).expect("attempts")[3 - 1].status,
        "interrupted"
    );
    assert!(matches!(j.run(r1 + 1000), Err(JournalError::NoSuchRun(_))));
    // Another room's history is its own.
    assert!(
        j.history("c112")
            .expect("history")
            .get(Step::Collect, None)
            .is_none()
    );
}

pub fn sealed_rows_read_back(open: &dyn Fn() -> Journal) {
    let j = open();
    let me = Holder::me();
    let run = j
        .start_run("b204", "sha256:r", "tech", &me, "all")
        .expect("run");
    let a = j
        .start_attempt(run, Step::Deploy, Some("b204-02"), "k", Some("logs/a.log"))
        .expect("attempt");
    j.finish_attempt(
        a,
        "failed",
        &Ending {
            message: "no link",
            error_chain: &["no link".into(), "timeout".into()],
            image: Some("img-1"),
        },
    )
    .expect("finish");
    let s = j
        .skip(run, Step::Join, Some("b204-02"), "k", "deploy failed")
        .expect("skip");
    j.finish_run(run, "failed", "deploy failed on 1 workstation")
        .expect("finish run");
    drop(j);
    let j = open();
    let runs = j.runs(Some("b204")).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].outcome.as_deref(),
            runs[0].pid,
            runs[0].selection.as_str()
        ),
        (Some("failed"), me.pid, "all")
    );
    assert_eq!(j.runs(Some("c112")).expect("runs"), vec![]);
    let attempts = j.attempts(run).expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].error_chain, "no link\ntimeout");
    assert_eq!(attempts[0].image.as_deref(), Some("img-1"));
    assert_eq!(attempts[0].log_path.as_deref(), Some("logs/a.log"));
    assert_eq!(attempts[1].id, s);
    assert_eq!(
        (attempts[1].status.as_str(), attempts[1].message.as_str()),
        ("skipped", "deploy failed")
    );
    assert_eq!(attempts[1].finished.as_ref(), Some(&attempts[1].started));
}
