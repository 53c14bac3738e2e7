//! Shared by the engine's binary tests: a temporary copy of the test workspace
//! (tests/fixtures/engine-ws) and the adapters `parc` runs with.
//!
//! The adapters are the test-only fakes (`PARC_ADAPTERS=fake:<dir>`), whose side effects are
//! counted in `<dir>/effects.log`. To rerun these tests with real adapters later, change
//! [`TestWs::command`]'s environment and [`TestWs::effects`] (how side effects are counted).

#![allow(dead_code)]

use parc::fsutil::copy_tree;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestWs {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub fake: PathBuf,
    pub delay_ms: u64,
}

impl TestWs {
    pub fn new(delay_ms: u64) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("ws");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-ws"),
            &root,
        )
        .unwrap();
        let fake = tmp.path().join("fake");
        std::fs::create_dir_all(&fake).expect("mkdir fake");
        TestWs {
            _tmp: tmp,
            root,
            fake,
            delay_ms,
        }
    }

    /// `parc ARGS -w <ws>` with the adapters set up.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parc"));
        c.args(args)
            .arg("-w")
            .arg(&self.root)
            .env("PARC_ADAPTERS", format!("fake:{}", self.fake.display()))
            .env("PARC_FAKE_DELAY_MS", self.delay_ms.to_string())
            .env_remove("PARC_FAKE_FAIL")
            .env_remove("PARC_WORKSPACE")
            .env("USER", "tech-test");
        c
    }

    /// Runs `parc ARGS` to the end: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().expect("run parc");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Every side effect that happened, as (step, host, detail).
    pub fn effects(&self) -> Vec<(String, String, String)> {
        lines(&self.fake.join("effects.log"))
            .into_iter()
            .map(|l| {
                let mut p = l.splitn(3, '\t');
                let mut next = || p.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }

    /// How many times each (step, host) had its side effect.
    pub fn effect_counts(&self) -> std::collections::BTreeMap<(String, String), usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (step, host, _) in self.effects() {
            *counts.entry((step, host)).or_insert(0) += 1;
        }
        counts
    }

    /// How many audit entries each (action, subject) has.
    pub fn audit_counts(&self) -> std::collections::BTreeMap<(String, String), usize> {
        let db = self.audit_db();
        let mut st = db
            .prepare("SELECT action, subject FROM entries")
            .expect("prepare");
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("query");
        let mut counts = std::collections::BTreeMap::new();
        for r in rows {
            *counts.entry(r.expect("row")).or_insert(0) += 1;
        }
        counts
    }

    /// How many lines the fake's trace has (begin/effect/end of every body).
    pub fn trace_len(&self) -> usize {
        lines(&self.fake.join("trace.log")).len()
    }

    pub fn trace(&self) -> Vec<String> {
        lines(&self.fake.join("trace.log"))
    }

    /// `parc status b204 --json`, reduced to what must be equal between two workspaces:
    /// the image and each step's state per host.
    pub fn final_state(&self) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", "b204", "--json"]);
        assert_eq!(code, 0, "status failed: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("status JSON");
        let steps: Vec<serde_json::Value> = v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                let hosts: Vec<serde_json::Value> = s["hosts"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| serde_json::json!([h["host"], h["state"]]))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({ "step": s["step"], "state": s["state"], "hosts": hosts })
            })
            .collect();
        serde_json::json!({ "image": v["image"], "recipe": v["recipe_digest"], "steps": steps })
    }

    pub fn journal(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.root.join(".parc/journal.db")).expect("journal")
    }

    pub fn audit_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.root.join(".parc/audit.db")).expect("audit db")
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
