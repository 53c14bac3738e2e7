//! Audit log tests on a real SQLite file: the chain verifies, and any edited, removed or
//! reordered entry is detected; prune keeps it verifiable; secrets are refused.

use super::*;

/// Appends to the SQLite log of the state folder `dir` (the tests' folders have no
/// `site.toml`).
fn record(dir: &std::path::Path, e: &Entry) -> Result<Stored, AuditError> {
    AuditLog::open(dir)?.append(e, dir)
}

fn entry(n: usize) -> Entry {
    Entry {
        room: "b204".into(),
        action: Action::Deploy,
        subject: format!("b204-0{n}"),
        actor: "tech".into(),
        detail: "image b204/1".into(),
    }
}

fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 1..=n {
        record(dir.path(), &entry(i)).expect("record");
    }
    let log = AuditLog::open(dir.path()).expect("open");
    (dir, log)
}

fn exec(dir: &tempfile::TempDir, sql: &str) {
    let c = rusqlite::Connection::open(dir.path().join("audit.db")).expect("open db");
    c.execute_batch(sql).expect("sql");
}

#[test]
fn an_intact_chain_verifies() {
    let (_d, log) = log_with(5);
    let v = log.verify().expect("verify").expect("intact");
    assert_eq!((v.entries, v.first_seq, v.last_seq), (5, Some(1), Some(5)));
    assert_eq!(log.list(Some("b204"), None).expect("list").len(), 5);
    assert_eq!(log.list(Some("c101"), None).expect("list").len(), 0);
}

#[test]
fn an_edited_entry_is_detected() {
    let (d, log) = log_with(5);
    exec(&d, "UPDATE entries SET subject = 'b204-09' WHERE seq = 3");
    let b = log.verify().expect("verify").expect_err("broken");
    assert_eq!(b.seq, 3, "{b}");
}

#[test]
fn an_edited_entry_with_its_hash_recomputed_breaks_the_next_link() {
    let (d, log) = log_with(5);
    let mut e = log.list(None, None).expect("list")[2].clone();
    e.subject = "b204-09".into();
    let h = chain::hash_of(&e);
    exec(
        &d,
        &format!("UPDATE entries SET subject = 'b204-09', hash = '{h}' WHERE seq = 3"),
    );
    assert_eq!(log.verify().expect("verify").expect_err("broken").seq, 4);
}

#[test]
fn removed_entries_are_detected_first_middle_and_last() {
    for seq in [1, 3, 5] {
        let (d, log) = log_with(5);
        exec(&d, &format!("DELETE FROM entries WHERE seq = {seq}"));
        assert!(
            log.verify().expect("verify").is_err(),
            "removing entry {seq} went unnoticed"
        );
    }
}

#[test]
fn reordered_entries_are_detected() {
    let (d, log) = log_with(4);
    // Swap the contents of entries 2 and 3 (hashes and all).
    exec(
        &d,
        "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (2, 3);
         DELETE FROM entries WHERE seq IN (2, 3);
         INSERT INTO entries SELECT 2, ts, room, action, subject, actor, detail, prev_hash, hash FROM t WHERE seq = 3;
         INSERT INTO entries SELECT 3, ts, room, action, subject, actor, detail, prev_hash, hash FROM t WHERE seq = 2;",
    );
    assert!(log.verify().expect("verify").is_err());
}

#[test]
fn prune_keeps_the_chain_verifiable_with_an_anchor() {
    let d = tempfile::tempdir().expect("tempdir");
    for i in 1..=3 {
        record(d.path(), &entry(i)).expect("record");
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    for i in 4..=6 {
        record(d.path(), &entry(i)).expect("record");
    }
    let mut log = AuditLog::open(d.path()).expect("open");
    let cut = log.list(None, None).expect("list")[3].ts.clone();
    let summary = log.prune(&cut, "tech").expect("prune").expect("pruned");
    assert_eq!(
        summary,
        PruneSummary {
            removed: 3,
            anchor_seq: Some(3)
        }
    );
    let v = log.verify().expect("verify").expect("still intact");
    assert!(v.anchored);
    assert_eq!((v.entries, v.first_seq, v.last_seq), (4, Some(3), Some(6)));
    // Removing the entry right after the anchor is still detected.
    exec(&d, "DELETE FROM entries WHERE seq = 4");
    assert!(log.verify().expect("verify").is_err());
    exec(&d, "DELETE FROM entries");
    assert!(
        log.verify().expect("verify").is_err(),
        "an emptied log must not verify"
    );
}

#[test]
fn pruning_everything_leaves_an_anchor_the_log_continues_from() {
    let (d, mut log) = log_with(6);
    let summary = log
        .prune("9999-01-01T00:00:00Z", "tech")
        .expect("prune")
        .expect("pruned");
    assert_eq!(summary.anchor_seq, Some(6));
    let v = log.verify().expect("verify").expect("anchor alone");
    assert!(v.anchored);
    assert_eq!(v.entries, 1);
    record(d.path(), &entry(7)).expect("record");
    let v = log.verify().expect("verify").expect("intact after");
    assert_eq!((v.entries, v.last_seq), (2, Some(7)));
    // A second prune replaces the anchor.
    log.prune("9999-01-01T00:00:00Z", "tech")
        .expect("prune")
        .expect("pruned");
    assert!(log.verify().expect("verify").is_ok());
}

#[test]
fn entries_containing_a_secret_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::secrets::SecretStore::new(dir.path())
        .set("regressi-key", b"ABCD-1234-SECRET")
        .expect("set");
    let mut e = entry(1);
    e.detail = "key ABCD-1234-SECRET".into();
    assert!(matches!(record(dir.path(), &e), Err(AuditError::Secret(n)) if n == "regressi-key"));
    assert!(record(dir.path(), &entry(1)).is_ok());
}

#[test]
fn a_signoff_is_recorded_with_the_digest_it_binds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Entry::signoff("b204", "Mme Durand", "SVT", "sha256:9f7d", "tech");
    let stored = record(dir.path(), &e).expect("record");
    assert_eq!(
        (stored.action.as_str(), stored.subject.as_str()),
        ("signoff", "Mme Durand (SVT)")
    );
    assert!(stored.detail.contains("sha256:9f7d"));
    assert_eq!(stored.prev_hash, chain::GENESIS);
}
