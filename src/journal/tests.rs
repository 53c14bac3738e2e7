//! Journal tests on a real SQLite file: the shared cases (`cases.rs`: locks, dead runs,
//! history, rows read back), then what only a file has: damage found at open, the upgrade of
//! a journal written before seals.

use rusqlite::Connection;

use super::*;
use crate::domain::procedure::Step;

/// The shared cases (`cases.rs`), each on a fresh SQLite journal.
#[test]
fn every_case_on_sqlite() {
    for (name, case) in cases::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        eprintln!("case {name}");
        case(&|| Journal::open(dir.path()).expect("open"));
    }
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
