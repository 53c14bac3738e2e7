//! The audit log on PostgreSQL, against a real throwaway cluster (`pg_support`): the same
//! behaviour cases on SQLite and on PostgreSQL (an intact chain verifies; an entry edited in
//! the database is named; the last entry removed is caught through the head; prune leaves an
//! anchor the chain verifies from), then what only a shared database has: two handles
//! appending to one lycée at once keep one unbroken chain, two lycées in one database keep
//! independent chains, and `parc audit verify` through the binary on a PostgreSQL workspace.
//!
//! Needs root (the cluster runs as the `postgres` user); fails, never skips, without it.

mod pg_support;

use std::path::Path;

use parc::audit::{self, Action, AuditLog, Entry, PruneSummary};
use pg_support::{Cluster, PASSWORD, parc_in, pg_workspace};

const UAI: &str = "0840042X";

fn entry(n: usize) -> Entry {
    Entry {
        room: "b204".into(),
        action: Action::Deploy,
        subject: format!("b204-{n:02}"),
        actor: "tech".into(),
        detail: "image b204/1".into(),
    }
}

fn open(root: &Path) -> AuditLog {
    AuditLog::open_workspace(root).expect("open the audit log")
}

fn record(root: &Path, n: usize) {
    audit::record(root, &entry(n)).expect("record");
}

/// One backend under test: a workspace, and SQL run behind parc's back on its lycée's
/// entries (`{t}` the table, `{w}` the condition selecting the lycée's rows, `AND`-joined).
struct Backend<'a> {
    name: &'static str,
    ws: tempfile::TempDir,
    sql: Box<dyn Fn(&str) + 'a>,
}

impl Backend<'_> {
    fn root(&self) -> &Path {
        self.ws.path()
    }
    fn exec(&self, sql: &str) {
        (self.sql)(sql)
    }
}

fn sqlite<'a>() -> Backend<'a> {
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("site.toml"),
        format!("[lycee]\nuai = \"{UAI}\"\n"),
    )
    .expect("site.toml");
    let db = ws.path().join(".parc/audit.db");
    Backend {
        name: "SQLite",
        ws,
        sql: Box::new(move |sql: &str| {
            let sql = sql.replace("{t}", "entries").replace("{w}", "1 = 1");
            rusqlite::Connection::open(&db)
                .expect("open db")
                .execute_batch(&sql)
                .expect("sql");
        }),
    }
}

fn postgres<'a>(cluster: &'a Cluster, db: &str) -> Backend<'a> {
    cluster.create_db(db, "parc");
    let ws = pg_workspace(cluster, db, UAI);
    let db = db.to_owned();
    Backend {
        name: "PostgreSQL",
        ws,
        sql: Box::new(move |sql: &str| {
            let sql = sql
                .replace("{t}", "audit_entries")
                .replace("{w}", &format!("lycee = '{UAI}'"));
            cluster.psql(&db, &sql);
        }),
    }
}

/// The behaviour cases, each on a fresh log of `b`.
fn an_intact_chain_verifies(b: &Backend) {
    for n in 1..=5 {
        record(b.root(), n);
    }
    let log = open(b.root());
    let v = log.verify().expect("verify").expect("intact");
    assert_eq!((v.entries, v.first_seq, v.last_seq), (5, Some(1), Some(5)));
    assert_eq!(log.list(Some("b204"), None).expect("list").len(), 5);
    assert_eq!(log.list(Some("c101"), None).expect("list").len(), 0);
    let ts = log.list(None, None).expect("list")[2].ts.clone();
    assert_eq!(log.list(None, Some(&ts)).expect("list").len(), 3);
}

fn an_edited_entry_is_named(b: &Backend) {
    for n in 1..=5 {
        record(b.root(), n);
    }
    b.exec("UPDATE {t} SET subject = 'b204-09' WHERE {w} AND seq = 3");
    let broken = open(b.root())
        .verify()
        .expect("verify")
        .expect_err("broken");
    assert_eq!(broken.seq, 3, "{broken}");
}

fn the_last_entry_removed_is_caught_through_the_head(b: &Backend) {
    for n in 1..=5 {
        record(b.root(), n);
    }
    b.exec("DELETE FROM {t} WHERE {w} AND seq = 5");
    let broken = open(b.root())
        .verify()
        .expect("verify")
        .expect_err("broken");
    assert!(broken.why.contains("entries removed"), "{broken}");
    // And a middle one, through the links.
    b.exec("DELETE FROM {t} WHERE {w} AND seq = 2");
    assert!(open(b.root()).verify().expect("verify").is_err());
}

fn prune_leaves_an_anchor_the_chain_verifies_from(b: &Backend) {
    for n in 1..=3 {
        record(b.root(), n);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    for n in 4..=6 {
        record(b.root(), n);
    }
    let mut log = open(b.root());
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
    // Everything pruned: the anchor alone, and the log goes on from it.
    log.prune("9999-01-01T00:00:00Z", "tech")
        .expect("prune")
        .expect("pruned");
    assert_eq!(log.verify().expect("verify").expect("anchor").entries, 1);
    record(b.root(), 7);
    let v = log.verify().expect("verify").expect("intact after");
    assert_eq!((v.entries, v.last_seq), (2, Some(7)));
    // The entry after the anchor removed is still caught.
    b.exec("DELETE FROM {t} WHERE {w} AND seq = 7");
    assert!(log.verify().expect("verify").is_err());
    // A broken chain is not pruned.
    assert!(
        log.prune("9999-01-01T00:00:00Z", "tech")
            .expect("prune")
            .is_err()
    );
}

type Case = fn(&Backend);

const CASES: &[(&str, Case)] = &[
    ("an_intact_chain_verifies", an_intact_chain_verifies),
    ("an_edited_entry_is_named", an_edited_entry_is_named),
    (
        "the_last_entry_removed_is_caught_through_the_head",
        the_last_entry_removed_is_caught_through_the_head,
    ),
    (
        "prune_leaves_an_anchor_the_chain_verifies_from",
        prune_leaves_an_anchor_the_chain_verifies_from,
    ),
];

#[test]
fn the_audit_log_behaves_the_same_on_sqlite_and_on_postgres() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    for (i, (name, case)) in CASES.iter().enumerate() {
        for b in [sqlite(), postgres(&cluster, &format!("case{i}"))] {
            eprintln!("case {name} on {}", b.name);
            case(&b);
        }
    }
    // On PostgreSQL, nothing in the workspace: the chain and its head are in the database.
    let b = postgres(&cluster, "nofile");
    record(b.root(), 1);
    assert!(!b.root().join(".parc/audit.db").exists());
    assert!(!b.root().join(".parc/audit.head").exists());
    assert_eq!(
        cluster.psql("nofile", "SELECT lycee, seq FROM audit_heads"),
        format!("{UAI}|1")
    );
    assert_eq!(
        cluster.psql(
            "nofile",
            "SELECT version, name FROM parc_schema_version ORDER BY version"
        ),
        "1|0001_journal\n2|0002_audit\n3|0003_fleet"
    );
}

#[test]
fn two_handles_appending_to_one_lycee_at_once_keep_one_chain() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("region", "parc");
    let ws = pg_workspace(&cluster, "region", UAI);
    let state = ws.path().join(".parc");
    std::thread::scope(|s| {
        for t in 0..2 {
            let (root, state) = (ws.path(), state.as_path());
            s.spawn(move || {
                // Each thread its own log, as two machines would be.
                let mut log = open(root);
                for n in 0..50 {
                    log.append(&entry(t * 100 + n), state).expect("append");
                }
            });
        }
    });
    let log = open(ws.path());
    let v = log.verify().expect("verify").expect("one unbroken chain");
    assert_eq!(
        (v.entries, v.first_seq, v.last_seq),
        (100, Some(1), Some(100))
    );
    let subjects: std::collections::BTreeSet<String> = log
        .list(None, None)
        .expect("list")
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(subjects.len(), 100, "every append once");
}

#[test]
fn two_lycees_in_one_database_keep_independent_chains() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("region", "parc");
    let mistral = pg_workspace(&cluster, "region", UAI);
    let daudet = pg_workspace(&cluster, "region", "0130001A");
    for n in 1..=3 {
        record(mistral.path(), n);
        record(daudet.path(), n);
    }
    record(daudet.path(), 4);
    let (a, b) = (open(mistral.path()), open(daudet.path()));
    let va = a.verify().expect("verify").expect("intact");
    let vb = b.verify().expect("verify").expect("intact");
    assert_eq!((va.first_seq, va.last_seq), (Some(1), Some(3)));
    assert_eq!((vb.first_seq, vb.last_seq), (Some(1), Some(4)));
    assert!(a.location().contains(UAI) && b.location().contains("0130001A"));
    // One lycée's chain broken: the other's still verifies.
    cluster.psql(
        "region",
        "UPDATE audit_entries SET actor = 'someone' WHERE lycee = '0130001A' AND seq = 2",
    );
    assert_eq!(b.verify().expect("verify").expect_err("broken").seq, 2);
    assert!(a.verify().expect("verify").is_ok());
}

#[test]
fn parc_audit_verify_checks_the_chain_in_the_database() {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("parc", "parc");
    let ws = pg_workspace(&cluster, "parc", UAI);
    let parc = |args: &[&str]| parc_in(ws.path(), args);
    for n in 1..=4 {
        record(ws.path(), n);
    }
    let (code, out, err) = parc(&["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "audit log intact: 4 entries");
    let (code, out, err) = parc(&["audit", "--room", "b204"]);
    assert_eq!((code, out.lines().count()), (0, 4), "{err}");
    // The last entry removed in the database: exit 1, naming it and the database.
    cluster.psql("parc", "DELETE FROM audit_entries WHERE seq = 4");
    let (code, _, err) = parc(&["audit", "verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the audit log is not intact: audit entry 3")
            && err.contains(&cluster.url("parc", "parc"))
            && !err.contains(PASSWORD),
        "{err}"
    );
    // No password stored: the user's to fix (exit 2), naming the secret.
    std::fs::remove_dir_all(ws.path().join(".parc/secrets")).expect("rm secrets");
    let (code, _, err) = parc(&["audit", "verify"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("state-db"), "{err}");
}
