//! Fault injection: `parc master` is killed with SIGKILL (a real `kill -9` of the child
//! process) at ≥ 10 different points of a room's procedure, then run again until it finishes.
//! The final journal state must equal that of an uninterrupted run, and no step with side
//! effects may have run twice.
//!
//! The adapters are the slow test-only fakes (see `engine_support`); the test itself only
//! drives the binary and reads the journal, the audit log and the list of side effects, so it
//! can be rerun with real adapters by changing `engine_support`.

mod engine_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use engine_support::TestWs;

/// How long each fake step body takes (ms).
const DELAY_MS: u64 = 120;
/// How many more trace lines (a body's begin, effect or end) to let through before each
/// kill. Deploy, join and verify run 4 bodies at once (4 begins, 4 effects, 4 ends), so some
/// gaps are large enough to kill after effects but before the journal records them.
const GAPS: [usize; 12] = [1, 2, 1, 3, 1, 2, 5, 1, 2, 1, 3, 6];
/// At most this many kills (the gaps repeat); the loop ends when a run gets to the end.
const MAX_KILLS: usize = 30;

fn run_to_end(ws: &TestWs) {
    for _ in 0..3 {
        let (code, _, err) = ws.run(&["master", "b204"]);
        if code == 0 {
            return;
        }
        eprintln!("rerun after exit {code}: {err}");
    }
    panic!("the run never finished");
}

#[test]
fn killed_at_any_point_the_run_resumes_to_the_same_state_without_repeating_side_effects() {
    // Reference: one uninterrupted run.
    let reference = TestWs::new(DELAY_MS);
    run_to_end(&reference);
    let expected_state = reference.final_state();
    let expected_effects = reference.effect_counts();
    assert_eq!(
        expected_effects.len(),
        11,
        "format, install, capture, 4 deploys, 4 joins: {expected_effects:?}"
    );

    // The same procedure, killed again and again.
    let ws = TestWs::new(DELAY_MS);
    let mut kill_points: Vec<(usize, String)> = Vec::new();
    for i in 0..MAX_KILLS {
        let gap = GAPS[i % GAPS.len()];
        let base = ws.trace_len();
        let mut child = ws
            .command(&["master", "b204"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill after `gap` more trace lines, plus a varying delay so some kills land between
        // a body's end and the journal.
        let target = base + gap;
        let extra = Duration::from_millis(((i * 17) % (DELAY_MS as usize / 2)) as u64);
        let start = Instant::now();
        let mut finished = false;
        while ws.trace_len() < target {
            if child.try_wait().expect("try_wait").is_some() {
                finished = true;
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no progress after kill {i}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        if finished {
            break;
        }
        std::thread::sleep(extra);
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let trace = ws.trace();
        kill_points.push((trace.len(), trace.last().cloned().unwrap_or_default()));
    }
    run_to_end(&ws);

    let distinct: std::collections::BTreeSet<usize> = kill_points.iter().map(|(n, _)| *n).collect();
    eprintln!("kill points: {kill_points:?}");
    assert!(
        distinct.len() >= 10,
        "only {} distinct kill points: {kill_points:#?}",
        distinct.len()
    );
    let steps: std::collections::BTreeSet<&str> = kill_points
        .iter()
        .filter_map(|(_, l)| l.split('\t').next())
        .collect();
    assert!(
        steps.len() >= 5,
        "kills landed in too few steps: {kill_points:#?}"
    );
    assert!(
        kill_points.iter().any(|(_, l)| l.ends_with("\teffect")),
        "no kill landed right after a side effect: {kill_points:#?}"
    );

    // Same final journal state.
    assert_eq!(ws.final_state(), expected_state);
    // No side effect twice, none missing.
    assert_eq!(
        ws.effect_counts(),
        expected_effects,
        "kill points: {kill_points:#?}"
    );
    // The journal recorded the kills as interrupted runs; the last run is done.
    let interrupted: i64 = ws
        .journal()
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE outcome = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(interrupted >= 10, "{interrupted} interrupted runs");
    let last: String = ws
        .journal()
        .query_row(
            "SELECT outcome FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("last");
    assert_eq!(last, "done");
    let open: i64 = ws
        .journal()
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE finished IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("open");
    assert_eq!(open, 0);
    // The audit log verifies and holds each change once.
    let (code, out, err) = ws.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ws.audit_counts(), reference.audit_counts());
    assert!(
        ws.audit_counts().values().all(|n| *n == 1),
        "{:?}",
        ws.audit_counts()
    );
}
