//! `parc master`, `status`, `runs`, `run show` and `audit` as a user runs them, on a copy of
//! the test workspace with the test-only fake adapters: JSON events parse, non-TTY output is
//! one readable line per event, a hand-edited audit row is detected, a second master on the
//! same room is refused naming the first, dry-run shows what blocks.

mod engine_support;

use std::time::{Duration, Instant};

use engine_support::TestWs;
use parc::domain::finding::Severity;

#[test]
fn the_test_workspace_is_valid() {
    let ws = TestWs::new(0);
    let loaded = parc::workspace::WorkspaceDir::open(&ws.root)
        .expect("open")
        .load()
        .expect("load");
    assert!(
        loaded.parse_findings.is_empty(),
        "{:?}",
        loaded.parse_findings
    );
    let cx = parc::domain::validate::CheckContext {
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        known_secrets: Some(vec!["domain-join".into()]),
    };
    let findings = parc::domain::validate::validate(&loaded.ws, &cx);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let room = loaded.ws.room("b204").expect("room");
    assert_eq!(
        room.signoffs[0].digest.value,
        parc::domain::digest::software_digest(&room.software)
    );
}

#[test]
fn json_events_parse_one_per_line() {
    let ws = TestWs::new(10);
    let (code, out, err) = ws.run(&["master", "b204", "--json"]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert_eq!(
        events.first().and_then(|e| e["event"].as_str()),
        Some("run-started")
    );
    let last = events.last().expect("events");
    assert_eq!(last["event"], "summary");
    assert_eq!(last["outcome"], "done");
    let host_done = events
        .iter()
        .filter(|e| e["event"] == "host-finished" && e["step"] == "deploy" && e["ok"] == true)
        .count();
    assert_eq!(host_done, 4);
    assert!(events.iter().all(|e| e["event"].is_string()));
}

#[test]
fn non_tty_output_is_one_plain_line_per_event() {
    let ws = TestWs::new(10);
    let (code, _out, err) = ws.run(&["master", "b204"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "terminal escapes in non-TTY output:\n{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let stamped = lines
        .iter()
        .filter(|l| l.starts_with('[') && l.as_bytes().get(9) == Some(&b']'))
        .count();
    assert_eq!(
        stamped,
        lines.len() - 1,
        "every event line is time-stamped:\n{err}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("] deploy b204-02: done")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("] room b204: capture done")),
        "{err}"
    );
    assert_eq!(lines.last().copied(), Some("room b204: run 1 done"));
}

#[test]
fn audit_verify_fails_on_a_hand_edited_row() {
    let ws = TestWs::new(5);
    assert_eq!(ws.run(&["master", "b204"]).0, 0);
    let (code, out, err) = ws.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("audit log intact: 11 entries"), "{out}");
    let (code, out, _) = ws.run(&["audit", "--room", "b204", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 11);
    // Someone hides that b204-03 was deployed.
    ws.audit_db()
        .execute("UPDATE entries SET subject = 'b204-09' WHERE action = 'deploy' AND subject = 'b204-03'", [])
        .expect("edit");
    let (code, _, err) = ws.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: the audit log is not intact: audit entry"),
        "{err}"
    );
    assert!(err.contains("edited"), "{err}");
}

#[test]
fn audit_verify_fails_when_the_last_row_is_removed_and_prune_keeps_it_verifiable() {
    let ws = TestWs::new(5);
    assert_eq!(ws.run(&["master", "b204"]).0, 0);
    let (code, out, err) = ws.run(&["audit", "prune", "--older-than", "6months"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pruned 0 entries"), "{out}");
    let (code, _, err) = ws.run(&["audit", "prune", "--older-than", "six months"]);
    assert_eq!(code, 2, "{err}");
    ws.audit_db()
        .execute(
            "DELETE FROM entries WHERE seq = (SELECT MAX(seq) FROM entries)",
            [],
        )
        .expect("delete");
    let (code, _, err) = ws.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("removed"), "{err}");
}

#[test]
fn a_second_master_is_refused_naming_the_first_and_a_dead_ones_lock_is_taken_over() {
    let ws = TestWs::new(400);
    let mut first = ws
        .command(&["master", "b204"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while ws.trace_len() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, _, err) = ws.run(&["master", "b204"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(
        err.contains("room b204 is already being worked on"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    // status shows who is running
    let (_, out, _) = ws.run(&["status", "b204"]);
    assert!(
        out.contains(&format!("running: parc master, pid {}", first.id())),
        "{out}"
    );
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    let (code, _, err) = {
        let mut c = ws.command(&["master", "b204"]);
        c.env("PARC_FAKE_DELAY_MS", "5");
        let o = c.output().expect("run");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("took over the lock of pid"), "{err}");
    let (_, out, _) = ws.run(&["runs"]);
    assert!(out.lines().any(|l| l.contains(" interrupted ")), "{out}");
}

#[test]
fn dry_run_shows_each_step_and_what_blocks_and_changes_nothing() {
    let ws = TestWs::new(5);
    let room = ws.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room).expect("read");
    std::fs::write(&room, text.split("[[signoff]]").next().expect("head")).expect("write");
    let (code, out, err) = ws.run(&["master", "b204", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let capture = out
        .lines()
        .find(|l| l.starts_with("capture"))
        .expect("capture line");
    assert!(
        capture.contains("blocked") && capture.contains("sign-off"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("install") && l.contains(" run ")),
        "{out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("deploy"))
            .all(|l| l.contains("blocked")),
        "{out}"
    );
    assert!(ws.effects().is_empty());
    let (_, runs, _) = ws.run(&["runs"]);
    assert!(runs.trim().is_empty(), "a dry run is not a run: {runs}");
    // The real run stops at capture, exit 2, and says why.
    let (code, _, err) = ws.run(&["master", "b204"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: capture is blocked: no teachers' sign-off"),
        "{err}"
    );
    let (_, status, _) = ws.run(&["status", "b204"]);
    assert!(
        status.contains("blocked: capture: no teachers' sign-off"),
        "{status}"
    );
}

/// A Windows room runs its eight steps through the same ports as a Linux room (the fakes
/// here; what they do on Windows is the adapters' business): the signed room ends done, exit 0,
/// nothing skipped for being Windows.
#[test]
fn a_windows_room_runs_its_eight_steps_through_the_ports() {
    let ws = TestWs::new(5);
    let room = ws.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room).expect("read");
    let windows = text.replace("family = \"linux\"", "family = \"windows\"");
    assert_ne!(windows, text);
    std::fs::write(&room, windows).expect("write");
    let (code, _, err) = ws.run(&["master", "b204"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Windows"), "{err}");
    // The fakes record the steps that change machines: each once, per workstation for
    // deploy and join; the log says collect, test and verify ran too.
    let steps: Vec<String> = ws.effects().into_iter().map(|e| e.0).collect();
    let mut expected = vec!["format", "install", "capture"];
    expected.extend(["deploy"; 4]);
    expected.extend(["join"; 4]);
    assert_eq!(steps, expected);
    for s in ["collect", "test", "verify"] {
        assert!(err.contains(&format!("room b204: {s} done")), "{s}: {err}");
    }
}

#[test]
fn a_partial_run_exits_1_lists_the_failed_workstation_and_the_next_run_finishes_it() {
    let ws = TestWs::new(5);
    let mut c = ws.command(&["master", "b204"]);
    c.env("PARC_FAKE_FAIL", "deploy:b204-03");
    let o = c.output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("room b204: run 1 partial"), "{err}");
    assert!(
        err.contains("  deploy b204-03 failed: injected failure of deploy on b204-03"),
        "{err}"
    );
    let (code, out, _) = ws.run(&["run", "show", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("log: "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("deploy") && l.contains("b204-03") && l.contains("failed")),
        "{out}"
    );
    let (code, _, err) = ws.run(&["run", "show", "42"]);
    assert_eq!(code, 2, "{err}");
    // Recipe change: status says what became stale.
    let room = ws.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room).expect("read");
    std::fs::write(&room, text.replace("6.0.850", "6.0.900")).expect("write");
    let (_, status, _) = ws.run(&["status", "b204"]);
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("install") && l.contains("stale")),
        "{status}"
    );
    std::fs::write(&room, text).expect("restore");
    let (code, _, err) = ws.run(&["master", "b204", "--hosts", "b204-03"]);
    assert_eq!(code, 0, "{err}");
    let deploys = ws.effects().into_iter().filter(|e| e.0 == "deploy").count();
    assert_eq!(deploys, 4);
}

#[test]
fn ctrl_c_stops_cleanly_and_the_journal_records_interrupted() {
    let ws = TestWs::new(600);
    let child = ws
        .command(&["master", "b204"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while ws.trace_len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: sends SIGINT (what Ctrl-C sends) to the child we spawned.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("room b204: run 1 interrupted"), "{err}");
    let db = ws.journal();
    let outcome: String = db
        .query_row("SELECT outcome FROM runs WHERE id = 1", [], |r| r.get(0))
        .expect("run");
    assert_eq!(outcome, "interrupted");
    let last: String = db
        .query_row(
            "SELECT status FROM attempts ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("attempt");
    assert_eq!(last, "interrupted");
    let locks: i64 = db
        .query_row("SELECT COUNT(*) FROM locks", [], |r| r.get(0))
        .expect("locks");
    assert_eq!(locks, 0, "the lock is released");
    // The cancelled body stopped mid-way: it began but never ended.
    let trace = ws.trace();
    let began = trace.iter().filter(|l| l.ends_with("\tbegin")).count();
    let ended = trace
        .iter()
        .filter(|l| l.ends_with("\tend") || l.ends_with("\tfail"))
        .count();
    assert_eq!(began, ended + 1, "{trace:?}");
}

#[test]
fn audit_since_filters_and_status_works_without_adapters() {
    let ws = TestWs::new(5);
    assert_eq!(ws.run(&["master", "b204"]).0, 0);
    assert_eq!(
        ws.run(&["audit", "--since", "2000-01-01"])
            .1
            .lines()
            .count(),
        11
    );
    assert_eq!(
        ws.run(&["audit", "--since", "2999-01-01"])
            .1
            .lines()
            .count(),
        0
    );
    assert_eq!(
        ws.run(&["audit", "--since", "30days"]).1.lines().count(),
        11
    );
    let (code, _, err) = ws.run(&["audit", "--since", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    let out = ws
        .command(&["status"])
        .env_remove("PARC_ADAPTERS")
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The workspace's own image store is read (the fakes' images are not in it).
    assert!(!text.contains("image store not checked"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("verify") && l.contains("done")),
        "{text}"
    );
    let runs_before = ws.run(&["runs"]).1;
    let out = ws
        .command(&["master", "b204"])
        .env_remove("PARC_ADAPTERS")
        .output()
        .expect("master");
    // Off the lycée's network, the pre-flight says what this machine lacks, sends nothing,
    // and refuses: exit 2, nothing started.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("not wired"), "{err}");
    assert!(err.contains("the pre-flight found"), "{err}");
    assert!(
        err.contains("10.49.0.2 (site.toml [endpoint] address) is not an address of this machine"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("pre-flight: skipped dhcp") && l.contains("nothing was sent")),
        "{err}"
    );
    assert!(err.contains("no boot environment given"), "{err}");
    assert_eq!(
        ws.run(&["runs"]).1,
        runs_before,
        "the refused run was journaled"
    );
}

#[test]
fn reimage_reapplies_the_current_image_and_refuses_a_stale_one_unless_forced() {
    let ws = TestWs::new(0);
    let deploys = |ws: &TestWs| -> Vec<(String, String)> {
        ws.effects()
            .into_iter()
            .filter(|e| e.0 == "deploy")
            .map(|e| (e.1, e.2))
            .collect()
    };
    let (code, _, err) = ws.run(&["reimage", "b204-02"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("room b204 has no image to re-apply"), "{err}");
    let (code, _, err) = ws.run(&["reimage", "b204-02", "b204-99"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("b204-99 is not in devices.csv"), "{err}");

    let (code, _, err) = ws.run(&["master", "b204"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(deploys(&ws).len(), 4);
    let (code, _, err) = ws.run(&["reimage", "b204-02"]);
    assert_eq!(code, 0, "{err}");
    let d = deploys(&ws);
    assert_eq!(d.len(), 5, "{d:?}");
    assert_eq!(d[4].0, "b204-02");
    // Join and verify followed, on that workstation only.
    let joins: Vec<_> = ws.effects().into_iter().filter(|e| e.0 == "join").collect();
    assert_eq!(joins.len(), 5);
    assert_eq!(joins[4].1, "b204-02");

    // The recipe moves on: the image no longer realises it.
    let room = ws.root.join("rooms/b204.toml");
    let text = std::fs::read_to_string(&room).expect("read");
    std::fs::write(&room, text.replace("6.0.850", "6.0.900")).expect("write");
    let (code, _, err) = ws.run(&["reimage", "b204-02"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is stale"), "{err}");
    assert!(err.contains("--force"), "the hint names the way out: {err}");
    assert_eq!(deploys(&ws).len(), 5, "nothing touched");

    let (code, _, err) = ws.run(&["reimage", "b204-03", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("forced"), "{err}");
    let d = deploys(&ws);
    assert_eq!(d.len(), 6, "{d:?}");
    assert_eq!(d[5].0, "b204-03");
    assert_eq!(d[5].1, d[0].1, "the old image was re-applied: {d:?}");
    // The force holds for that run only: the room still needs a capture of today's recipe.
    let (_, status, _) = ws.run(&["status", "b204"]);
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("capture") && l.contains("stale")),
        "{status}"
    );
}
