//! The journal on PostgreSQL, against a real throwaway cluster (`pg_support`): the same
//! behaviour cases as on SQLite (`src/journal/cases.rs`, run here on both backends), lycées
//! sharing one database apart, a row changed in the database found at open, `[state]`
//! mistakes and a missing password told as a user's, and two real `parc master` processes,
//! from two workspaces (two technicians' machines) on the same database, racing for one room:
//! exactly one runs, the other is refused naming it; the holder SIGKILLed, the next run
//! takes its lock over.
//!
//! Needs root (the cluster runs as the `postgres` user); fails, never skips, without it.

mod engine_support;
mod pg_support;

use std::path::Path;
use std::time::{Duration, Instant};

use engine_support::TestWs;
use parc::journal::{Holder, Journal, JournalError, cases};
use pg_support::{Cluster, PASSWORD, parc_in, pg_workspace, set_password, state_toml};

const UAI: &str = "0840042X";

fn open(root: &Path) -> Journal {
    Journal::open_workspace(root).expect("open the journal")
}

#[test]
fn the_journal_behaves_the_same_on_sqlite_and_on_postgres() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    for (i, (name, case)) in cases::ALL.iter().enumerate() {
        eprintln!("case {name} on SQLite");
        let sqlite = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            sqlite.path().join("site.toml"),
            format!("[lycee]\nuai = \"{UAI}\"\n"),
        )
        .expect("site.toml");
        assert!(open(sqlite.path()).location().ends_with("journal.db"));
        case(&|| open(sqlite.path()));

        eprintln!("case {name} on PostgreSQL");
        let db = format!("case{i}");
        cluster.create_db(&db, "parc");
        let ws = pg_workspace(&cluster, &db, UAI);
        let location = open(ws.path()).location();
        assert!(
            location.starts_with("postgresql://parc@/") && location.contains(UAI),
            "{location}"
        );
        case(&|| open(ws.path()));
        assert!(
            !ws.path().join(".parc/journal.db").exists(),
            "no SQLite file beside the database"
        );
    }
    // The tables came from the migrations (the journal's, the audit log's, the fleet's), once.
    assert_eq!(
        cluster.psql(
            "case0",
            "SELECT version, name FROM parc_schema_version ORDER BY version"
        ),
        "1|0001_journal\n2|0002_audit\n3|0003_fleet"
    );
}

#[test]
fn lycees_share_a_database_apart_and_a_changed_row_is_found_at_open() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("region", "parc");
    let mistral = pg_workspace(&cluster, "region", UAI);
    let daudet = pg_workspace(&cluster, "region", "0130001A");
    let me = Holder::me();
    let (mut a, mut b) = (open(mistral.path()), open(daudet.path()));
    let run = a
        .start_run("b204", "sha256:r", "tech", &me, "")
        .expect("run");
    let att = a
        .start_attempt(run, parc::domain::procedure::Step::Collect, None, "k", None)
        .expect("attempt");
    a.finish_attempt(att, "failed", &Default::default())
        .expect("finish");
    // Each lycée sees its own rows; a room lock is per (lycée, room).
    assert_eq!(b.runs(None).expect("runs"), vec![]);
    assert!(matches!(b.run(run), Err(JournalError::NoSuchRun(_))));
    assert_eq!(a.acquire_lock("b204", &me).expect("lock"), None);
    assert_eq!(
        b.acquire_lock("b204", &me).expect("same room, other lycée"),
        None
    );
    let mut a2 = open(mistral.path());
    let other = Holder {
        pid: std::os::unix::process::parent_id(),
        proc_start: String::new(),
        ..Holder::me()
    };
    match a2.acquire_lock("b204", &other) {
        Err(JournalError::Locked { holder, .. }) => assert_eq!(holder.pid, me.pid),
        x => panic!("expected Locked, got {x:?}"),
    }
    a.release_lock("b204", &me).expect("release");
    b.release_lock("b204", &me).expect("release");
    drop((a, a2, b));
    // A failed collect turned into a done one, in the database, behind parc.
    cluster.psql(
        "region",
        &format!("UPDATE attempts SET status = 'done' WHERE id = {att}"),
    );
    match Journal::open_workspace(mistral.path()) {
        Err(e @ JournalError::DamagedDb { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("row id = {att} of table attempts"))
                    && msg.contains(UAI)
                    && !msg.contains(PASSWORD),
                "{msg}"
            );
        }
        other => panic!("expected DamagedDb, got {:?}", other.map(|_| ())),
    }
    // The other lycée's rows are intact: it opens.
    open(daudet.path());
}

#[test]
fn state_mistakes_are_the_users_with_their_place_and_a_wrong_password_names_the_url() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("parc", "parc");
    let ws = pg_workspace(&cluster, "parc", UAI);
    let parc = |args: &[&str]| {
        let (code, _, stderr) = parc_in(ws.path(), args);
        (code, stderr)
    };
    assert_eq!(parc(&["runs"]), (0, String::new()));
    // No password stored: exit 2, saying which secret to set.
    std::fs::remove_dir_all(ws.path().join(".parc/secrets")).expect("rm secrets");
    let (code, err) = parc(&["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("parc secret set state-db"), "{err}");
    // A wrong one: the server refuses; the URL is named, never a password.
    parc::secrets::SecretStore::new(&ws.path().join(".parc"))
        .set("state-db", b"not-the-password")
        .expect("secret");
    let (code, err) = parc(&["runs"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot connect to the journal database {}",
            cluster.url("parc", "parc")
        )) && !err.contains("not-the-password"),
        "{err}"
    );
    // A mistake in [state]: its place, exit 2.
    std::fs::write(
        ws.path().join("site.toml"),
        format!("[lycee]\nuai = \"{UAI}\"\n\n[state]\nbackend = \"postgres\"\nurl = \"mysql://db/parc\"\n"),
    )
    .expect("site.toml");
    let (code, err) = parc(&["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("site.toml:6:") && err.contains("not a PostgreSQL URL"),
        "{err}"
    );
}

/// Runs `parc master b204` in `ws` to its end: (exit code, stderr).
fn master(ws: &TestWs, delay_ms: &str) -> (i32, String) {
    let out = ws
        .command(&["master", "b204"])
        .env("PARC_FAKE_DELAY_MS", delay_ms)
        .output()
        .expect("run parc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_parc_processes_race_for_one_room_and_a_killed_holders_lock_is_recovered() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("region", "parc");
    // Two technicians' clones of the lycée's workspace, one database.
    let (one, two) = (TestWs::new(400), TestWs::new(400));
    for ws in [&one, &two] {
        let site = ws.root.join("site.toml");
        let mut text = std::fs::read_to_string(&site).expect("site.toml");
        text.push_str(&state_toml(&cluster, "region"));
        std::fs::write(&site, text).expect("site.toml");
        set_password(&ws.root);
    }
    // Both start at once, on a database without tables yet.
    let spawn = |ws: &TestWs| {
        ws.command(&["master", "b204"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn parc")
    };
    let mut children = [spawn(&one), spawn(&two)];
    let pids = [children[0].id(), children[1].id()];
    // The loser ends first, refused; the winner is still running.
    let start = Instant::now();
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| matches!(children[i].try_wait(), Ok(Some(_)))) {
            break i;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "neither parc ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let winner = 1 - loser;
    let out = std::mem::replace(&mut children[loser], spawn_true())
        .wait_with_output()
        .expect("loser's output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("room b204 is already being worked on")
            && err.contains(&format!("pid {}", pids[winner])),
        "{err}"
    );
    assert!(
        matches!(children[winner].try_wait(), Ok(None)),
        "exactly one runs: the winner is still at it"
    );
    // From the other machine, `parc status` names who runs the room.
    let (wins, loses) = if winner == 0 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    let (_, out, _) = loses.run(&["status", "b204"]);
    assert!(
        out.contains(&format!("running: parc master, pid {}", pids[winner])),
        "{out}"
    );
    // Let the winner do some work, then SIGKILL it: its connection dies, and with it the
    // session's advisory lock; its row stays, stale.
    while wins.trace_len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the winner never started working"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    children[winner].kill().expect("kill -9");
    children[winner].wait().expect("wait");
    assert!(
        !cluster
            .psql("region", "SELECT pid FROM locks WHERE room = 'b204'")
            .is_empty(),
        "the dead holder's row stays"
    );
    let (code, err) = master(wins, "5");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("took over the lock of pid {}", pids[winner])),
        "{err}"
    );
    let (_, out, _) = loses.run(&["runs"]);
    assert!(out.lines().any(|l| l.contains(" interrupted ")), "{out}");
    // The verify report is in the database too, as its file in reports/ holds it.
    assert!(
        err.contains("verify report stored in postgresql://"),
        "{err}"
    );
    let reports: Vec<_> = std::fs::read_dir(wins.root.join("reports"))
        .expect("reports/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        cluster.psql(
            "region",
            "SELECT record FROM verify_results WHERE room = 'b204' AND compliant"
        ),
        std::fs::read_to_string(&reports[0])
            .expect("the report")
            .trim()
    );
    // The audit log is in the database too: the other clone verifies both runs' changes.
    let (code, out, err) = loses.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("audit log intact: "), "{out}");
    assert!(
        !loses.root.join(".parc/audit.db").exists() && !wins.root.join(".parc/audit.db").exists()
    );
    assert_ne!(
        cluster.psql("region", "SELECT count(*) FROM audit_entries"),
        "0"
    );
    assert_eq!(
        cluster.psql("region", "SELECT count(*) FROM locks"),
        "0",
        "the lock is released at the end"
    );
    let _ = children[loser].wait();
}

/// A finished child to stand in for one whose output was taken.
fn spawn_true() -> std::process::Child {
    std::process::Command::new("true").spawn().expect("true")
}
