//! Journal tests on a real SQLite file: locks (live holder refused, dead holder taken over),
//! dead runs closed as interrupted, history from attempts.

use super::*;
use crate::domain::procedure::{Step, StepStatus};

#[test]
fn a_live_holder_is_refused_and_a_dead_one_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = Journal::open(dir.path()).expect("open");
    let me = Holder::me();
    assert_eq!(j.acquire_lock("b204", &me).expect("first"), None);
    // Another live process (our parent, pid 1, is alive) holding the lock refuses us.
    let mut j2 = Journal::open(dir.path()).expect("open");
    let live = Holder {
        pid: std::os::unix::process::parent_id(),
        ..Holder::me()
    };
    let live = Holder {
        proc_start: String::new(),
        ..live
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
                msg.contains(&format!("pid {}", live.pid)) && msg.contains(&holder.host),
                "{msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // A dead process: spawn one, let it exit, then fake its lock.
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");
    j.release_lock("b204", &live).expect("release");
    let dead = Holder {
        pid: dead_pid,
        ..Holder::me()
    };
    j.acquire_lock("b204", &dead).expect("dead takes it");
    let took = j2.acquire_lock("b204", &me).expect("take over");
    assert_eq!(took.map(|h| h.pid), Some(dead_pid));
    assert_eq!(
        j2.lock_holder("b204").expect("holder").map(|h| h.pid),
        Some(me.pid)
    );
}

#[test]
fn dead_runs_end_interrupted_and_history_keeps_the_latest_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(dir.path()).expect("open");
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
        &attempts::Ending {
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
    assert!(matches!(j.run(99), Err(JournalError::NoSuchRun(99))));
}

#[test]
fn a_row_changed_outside_parc_makes_the_journal_refuse_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(dir.path()).expect("open");
    let run = j
        .start_run("b204", "sha256:r", "tech", &Holder::me(), "all")
        .expect("run");
    let a = j
        .start_attempt(run, Step::Deploy, Some("b204-02"), "k", None)
        .expect("attempt");
    j.finish_attempt(a, "failed", &Ending::default())
        .expect("finish");
    drop(j);
    assert!(Journal::open(dir.path()).is_ok(), "sealed rows read back");
    // A failed deploy turned into a done one by a hand (or a bit) on the file.
    let c = Connection::open(dir.path().join(FILE)).expect("sqlite");
    c.execute("UPDATE attempts SET status = 'done' WHERE id = ?1", [a])
        .expect("edit");
    drop(c);
    match Journal::open(dir.path()) {
        Err(e @ JournalError::Damaged { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("row id = {a} of table attempts")),
                "{msg}"
            );
        }
        other => panic!("expected Damaged, got {:?}", other.map(|_| ())),
    }
    // A file that is not a database at all.
    std::fs::write(dir.path().join(FILE), vec![0x55u8; 8192]).expect("garbage");
    let _ = std::fs::remove_file(dir.path().join("journal.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("journal.db-shm"));
    assert!(matches!(
        Journal::open(dir.path()),
        Err(JournalError::Damaged { .. })
    ));
}

#[test]
fn a_journal_written_before_seals_is_sealed_once_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The version 1 schema, as parc wrote it before seals.
    let c = Connection::open(dir.path().join(FILE)).expect("sqlite");
    c.execute_batch(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL,
           recipe_digest TEXT NOT NULL, who TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
           selection TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, outcome TEXT,
           detail TEXT NOT NULL DEFAULT '');
         CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL,
           step TEXT NOT NULL, host TEXT, status TEXT NOT NULL, key TEXT NOT NULL,
           started TEXT NOT NULL, finished TEXT, message TEXT NOT NULL DEFAULT '',
           error_chain TEXT NOT NULL DEFAULT '', log_path TEXT, image TEXT);
         CREATE TABLE locks (room TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
           proc_start TEXT NOT NULL, started TEXT NOT NULL);
         INSERT INTO runs (room, recipe_digest, who, host, pid, selection, started, finished, outcome)
           VALUES ('b204', 'sha256:r', 'tech', 'h', 1, 'all', 't0', 't1', 'done');
         INSERT INTO attempts (run_id, step, host, status, key, started)
           VALUES (1, 'deploy', 'b204-02', 'done', 'k', 't0');
         PRAGMA user_version = 1;",
    )
    .expect("v1 journal");
    drop(c);
    let j = Journal::open(dir.path()).expect("upgraded");
    assert_eq!(j.runs(None).expect("runs").len(), 1);
    assert_eq!(j.attempts(1).expect("attempts")[0].status, "done");
    drop(j);
    // Sealed from now on: an edit is caught.
    let c = Connection::open(dir.path().join(FILE)).expect("sqlite");
    c.execute("UPDATE runs SET outcome = 'failed'", [])
        .expect("edit");
    drop(c);
    assert!(matches!(
        Journal::open(dir.path()),
        Err(JournalError::Damaged { .. })
    ));
}
