//! The fault campaign (issue 15): parc's reliability figures, measured the same way each time.
//! One table — case, tries, survived, data lost — and a non-zero exit when anything was lost
//! or did not survive. `scripts/faults.sh` runs it (with the network and parser campaigns);
//! `cargo test` (so `scripts/test.sh`) runs its short profile.
//!
//! - `PARC_FAULTS=short|full` (default short): how many tries per case;
//! - `PARC_FAULTS_SEED=N`: the seed the kill points and flipped bits are drawn from (printed;
//!   give it back to replay a campaign).
//!
//! Cases:
//! - **R1 crash anywhere**: `parc master` (fake adapters, real journal, audit log and image
//!   list) killed with SIGKILL at points drawn from the seed across the eight steps, then run
//!   again until done: the same final state as an uninterrupted run (journal, audit chain,
//!   each side effect once).
//! - **R2 corruption**: one flipped bit in each kind of stored object — an image's stream, a
//!   chunk, an index, a manifest, an audit entry —: `parc image verify` / `parc audit verify`
//!   fail and name it; one flipped bit in the journal's database file: parc says the journal
//!   is damaged, or reads the same state (the bit fell where nothing is kept).
//! - **R2 deploy of a damaged image**: the real `parc-agent deploy` of an image with one
//!   flipped bit (in its stream, or in a chunk) onto a disk file (root only): it fails, the
//!   endpoint's report names the corrupt stream, and the disk cannot boot.
//! - **Store full**: an image stored on a small tmpfs (root only): a clear error, no image
//!   listed, nothing left behind; the next one after space is freed is stored.

#[path = "../engine_support/mod.rs"]
mod engine_support;
#[path = "../seeded/mod.rs"]
mod seeded;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine_support::TestWs;
use seeded::Rng;

/// One line of the table.
struct Row {
    case: &'static str,
    tries: usize,
    survived: usize,
    lost: usize,
    /// What did not survive, and how the tries were spread.
    notes: Vec<String>,
}

impl Row {
    fn new(case: &'static str) -> Self {
        Row {
            case,
            tries: 0,
            survived: 0,
            lost: 0,
            notes: Vec::new(),
        }
    }

    fn ok(&self) -> bool {
        self.lost == 0 && self.survived == self.tries && self.tries > 0
    }
}

fn parc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parc"));
    c.env_remove("PARC_ADAPTERS").env_remove("PARC_WORKSPACE");
    c
}

// ---- R1: crash anywhere -------------------------------------------------------------------

/// How long each fake step body takes (ms).
const DELAY_MS: u64 = 40;

/// Runs `parc master b204` until it exits 0 (at most three times).
fn run_to_end(ws: &TestWs) -> bool {
    (0..3).any(|_| ws.run(&["master", "b204"]).0 == 0)
}

fn r1_crash(rng: &mut Rng, tries: usize) -> Row {
    let mut row = Row::new("R1 crash anywhere (SIGKILL, fakes)");
    let reference = TestWs::new(DELAY_MS);
    assert!(run_to_end(&reference), "the uninterrupted run failed");
    let want_state = reference.final_state();
    let want_effects = reference.effect_counts();
    let want_audit = reference.audit_counts();
    let trace_len = reference.trace_len();
    let mut steps: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..tries {
        row.tries += 1;
        // A point in the trace (a body's begin, effect or end), and a delay after it so some
        // kills land between a body's end and the journal's record of it.
        let point = 1 + rng.below(trace_len - 1);
        let extra = Duration::from_millis(rng.below(DELAY_MS as usize) as u64);
        let ws = TestWs::new(DELAY_MS);
        let mut child = ws
            .command(&["master", "b204"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn parc master");
        let start = Instant::now();
        while ws.trace_len() < point && child.try_wait().ok().flatten().is_none() {
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(extra);
        let _ = child.kill();
        let _ = child.wait();
        let at = ws.trace().last().cloned().unwrap_or_default();
        let step = at.split('\t').take(3).collect::<Vec<_>>().join(" ");
        *steps
            .entry(at.split('\t').next().unwrap_or("").to_owned())
            .or_default() += 1;
        let finished = run_to_end(&ws);
        let got_effects = ws.effect_counts();
        let same_state = finished && ws.final_state() == want_state;
        let audit_ok = ws.run(&["audit", "verify"]).0 == 0 && ws.audit_counts() == want_audit;
        let missing = want_effects.keys().any(|k| !got_effects.contains_key(k));
        let twice = got_effects.values().any(|n| *n > 1);
        if same_state && audit_ok && !missing && !twice {
            row.survived += 1;
        } else {
            row.notes.push(format!(
                "killed at trace line {point} ({step}): state {}, audit {}, effects {}",
                if same_state { "same" } else { "DIFFERS" },
                if audit_ok { "same" } else { "DIFFERS" },
                if missing {
                    "MISSING"
                } else if twice {
                    "TWICE"
                } else {
                    "same"
                }
            ));
            if missing || !audit_ok {
                row.lost += 1;
            }
        }
    }
    row.notes.push(format!(
        "kills per step: {}",
        steps
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    row
}

// ---- R2: corruption -----------------------------------------------------------------------

/// Flips one bit of a file at a drawn byte (not past `len`); returns what to undo.
fn flip(path: &Path, rng: &mut Rng, skip: usize) -> (usize, u8) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = skip + rng.below(bytes.len() - skip);
    let bit = 1u8 << rng.below(8);
    bytes[at] ^= bit;
    std::fs::write(path, &bytes).expect("write");
    (at, bit)
}

fn unflip(path: &Path, (at, bit): (usize, u8)) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= bit;
    std::fs::write(path, &bytes).expect("write");
}

/// `parc image verify --all`: (exit code, what it printed).
fn image_verify(ws: &Path) -> (i32, String) {
    let out = parc()
        .args(["image", "verify", "--all", "-w"])
        .arg(ws)
        .output()
        .expect("parc image verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A workspace with two images of room b204: `b204/whole` one stream (`parc image import`),
/// `b204/chunked` the same stream as chunks with its index (as a capture stores it).
fn image_workspace() -> (tempfile::TempDir, PathBuf) {
    use parc::image::chunks::ChunkParams;
    use parc::image::store::FsImageStore;
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path().join("ws");
    let tree = tmp.path().join("tree");
    for (i, dir) in ["etc", "usr/bin", "usr/share/doc", "var/lib"]
        .iter()
        .enumerate()
    {
        let d = tree.join(dir);
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut rng = Rng(i as u64 + 1);
        let data: Vec<u8> = (0..(256 << 10)).map(|_| rng.next() as u8).collect();
        std::fs::write(d.join("data"), data).expect("write");
        std::fs::write(d.join("note"), format!("file {i}\n")).expect("write");
    }
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/base/layout.toml");
    let out = parc()
        .args(["image", "import", "b204/whole", "--tree"])
        .arg(&tree)
        .arg("--layout")
        .arg(&layout)
        .arg("-w")
        .arg(&ws)
        .output()
        .expect("parc image import");
    assert!(out.status.success(), "{out:?}");
    let store = FsImageStore::for_workspace(&ws);
    let whole = store.manifest("b204/whole").expect("manifest");
    let part = whole
        .disk
        .partitions
        .iter()
        .position(|p| p.stream.is_some())
        .expect("a stream");
    let file = whole.disk.partitions[part]
        .stream
        .as_ref()
        .map(|s| s.file.clone())
        .expect("stream");
    let compressed = std::fs::File::open(store.image_dir("b204/whole").expect("dir").join(&file))
        .expect("stream file");
    let st = store.begin("b204", "chunked").expect("staging");
    let s = st
        .chunker()
        .chunk_stream(
            &file,
            zstd::stream::read::Decoder::new(compressed).expect("zstd"),
            ChunkParams::default(),
        )
        .expect("chunk");
    let mut m = whole.clone();
    m.version = "chunked".into();
    m.disk.partitions[part].stream = Some(s);
    st.commit(&m).expect("commit");
    let (code, out) = image_verify(&ws);
    assert_eq!(code, 0, "the fresh store does not verify: {out}");
    (tmp, ws)
}

/// The stream of `b204/chunked` (as [`image_workspace`] made it) and its chunk index.
fn chunked_stream(
    store: &parc::image::store::FsImageStore,
) -> (
    parc::image::manifest::StreamInfo,
    parc::image::chunks::ChunkIndex,
) {
    let chunked = store.manifest("b204/chunked").expect("manifest");
    let s = chunked
        .disk
        .partitions
        .iter()
        .find_map(|p| p.stream.clone())
        .expect("stream");
    let index = store.index("b204/chunked", &s).expect("index");
    (s, index)
}

fn r2_corruption(rng: &mut Rng, tries: usize) -> Row {
    use parc::image::store::FsImageStore;
    let mut row = Row::new("R2 corruption (one flipped bit)");
    let (_tmp, ws) = image_workspace();
    let store = FsImageStore::for_workspace(&ws);
    let (s, index) = chunked_stream(&store);
    let images = ws.join("images/b204");
    let mut detected: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for i in 0..tries {
        let kind = ["stream", "chunk", "index", "manifest"][i % 4];
        let (path, image) = match kind {
            "stream" => (images.join("whole").join(&s.file), "b204/whole"),
            "chunk" => {
                let c = &index.chunks[rng.below(index.chunks.len())];
                (store.chunks().path(c), "b204/chunked")
            }
            "index" => (
                images
                    .join("chunked")
                    .join(&s.index.as_ref().expect("index ref").file),
                "b204/chunked",
            ),
            _ => (images.join("chunked/manifest.toml"), "b204/chunked"),
        };
        row.tries += 1;
        let undo = flip(&path, rng, 0);
        let (code, out) = image_verify(&ws);
        unflip(&path, undo);
        let named = out
            .lines()
            .any(|l| l.starts_with("BROKEN\t") && l.contains(image));
        let e = detected.entry(kind).or_default();
        e.1 += 1;
        if code != 0 && named && !out.contains("panicked") {
            row.survived += 1;
            e.0 += 1;
        } else {
            row.notes.push(format!(
                "{kind} {} byte {} bit {:#04x}: not detected (exit {code}): {}",
                path.display(),
                undo.0,
                undo.1,
                out.trim()
            ));
        }
        assert_eq!(image_verify(&ws).0, 0, "the undo left the store broken");
    }

    // The audit log: one bit of one entry's text, behind parc's back.
    let fake = TestWs::new(5);
    assert!(run_to_end(&fake));
    let entries: i64 = fake
        .audit_db()
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .expect("count");
    for _ in 0..tries.div_ceil(4) {
        row.tries += 1;
        let seq = 1 + rng.below(entries as usize) as i64;
        let column = ["detail", "subject", "actor", "ts"][rng.below(4)];
        let bit = 1 << rng.below(7);
        let db = fake.audit_db();
        let text: String = db
            .query_row(
                &format!("SELECT {column} FROM entries WHERE seq = ?1"),
                [seq],
                |r| r.get(0),
            )
            .expect("entry");
        let mut bytes = text.clone().into_bytes();
        let at = rng.below(bytes.len());
        // ASCII stays ASCII: the text stays valid UTF-8, as a flipped bit on disk often does.
        if bytes[at].is_ascii() {
            bytes[at] ^= bit;
        } else {
            bytes[at] ^= 1;
        }
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        db.execute(
            &format!("UPDATE entries SET {column} = ?1 WHERE seq = ?2"),
            rusqlite::params![changed, seq],
        )
        .expect("tamper");
        let (code, out, err) = fake.run(&["audit", "verify"]);
        db.execute(
            &format!("UPDATE entries SET {column} = ?1 WHERE seq = ?2"),
            rusqlite::params![text, seq],
        )
        .expect("restore");
        let e = detected.entry("audit entry").or_default();
        e.1 += 1;
        if code != 0 && err.contains(&format!("audit entry {seq}")) {
            row.survived += 1;
            e.0 += 1;
        } else {
            row.notes.push(format!(
                "audit entry {seq} {column}: not detected (exit {code}): {out}{err}"
            ));
        }
    }
    // The journal: one bit of its database file, behind parc's back. parc must say the
    // journal is damaged, or read the same state as before (the bit fell in unused space);
    // reading another state without a word is data lost.
    let want = fake.final_state();
    let journal = fake.root.join(".parc/journal.db");
    let pristine = std::fs::read(&journal).expect("journal");
    for _ in 0..tries.div_ceil(4) {
        row.tries += 1;
        let undo = flip(&journal, rng, 0);
        let (code, out, err) = fake.run(&["status", "b204", "--json"]);
        let e = detected.entry("journal page").or_default();
        e.1 += 1;
        let said = code != 0 && err.contains("journal") && !err.contains("panicked");
        let same = code == 0
            && serde_json::from_str::<serde_json::Value>(out.trim()).is_ok()
            && fake.final_state() == want;
        if said || same {
            row.survived += 1;
            e.0 += 1;
        } else {
            row.lost += 1;
            row.notes.push(format!(
                "journal byte {} bit {:#04x}: read without a word (exit {code}): {}",
                undo.0,
                undo.1,
                err.lines().next().unwrap_or("")
            ));
        }
        std::fs::write(&journal, &pristine).expect("restore the journal");
        let _ = std::fs::remove_file(fake.root.join(".parc/journal.db-wal"));
        let _ = std::fs::remove_file(fake.root.join(".parc/journal.db-shm"));
    }
    row.notes.push(format!(
        "detected per object: {}",
        detected
            .iter()
            .map(|(k, (d, n))| format!("{k} {d}/{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    row
}

/// A deploy of a damaged image (a drawn bit flipped in the one-stream image's stream or in
/// one of the chunked image's chunks) by the real `parc-agent` from parc's image routes, onto
/// a disk file whose first and last MiB hold 0xAB: survived when the agent fails, the
/// endpoint's report says which stream is corrupt, and the disk cannot boot (both MiBs
/// zeroed, no partition table); lost when the deploy succeeds or leaves a bootable disk.
fn r2_deploy(rng: &mut Rng, tries: usize) -> Row {
    use parc::image::store::FsImageStore;
    use parc::netboot::serve::ImagesService;
    use parc::netboot::serve::local::LocalServer;
    use std::os::unix::fs::FileExt;
    const MIB: u64 = 1 << 20;
    let mut row = Row::new("R2 deploy of a damaged image");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        row.tries = 1;
        row.notes
            .push("NOT RUN: needs root (the deploy makes and mounts filesystems)".into());
        return row;
    }
    let (tmp, ws) = image_workspace();
    let store = FsImageStore::for_workspace(&ws);
    let svc = std::sync::Arc::new(ImagesService::new(store.clone()));
    let server = LocalServer::start(
        parc::netboot::serve::router(svc.clone()),
        "127.0.0.1:0".parse().expect("address"),
    )
    .expect("the endpoint");
    let (s, index) = chunked_stream(&store);
    let disk = tmp.path().join("disk.img");
    let mut spread: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..tries {
        let (image, path) = if i % 2 == 0 {
            ("b204/whole", ws.join("images/b204/whole").join(&s.file))
        } else {
            let c = &index.chunks[rng.below(index.chunks.len())];
            ("b204/chunked", store.chunks().path(c))
        };
        *spread.entry(image).or_default() += 1;
        row.tries += 1;
        let f = std::fs::File::create(&disk).expect("disk");
        f.set_len(128 * MIB).expect("disk size");
        for at in [0, 127 * MIB] {
            f.write_all_at(&[0xAB; MIB as usize], at).expect("fill");
        }
        drop(f);
        let undo = flip(&path, rng, 0);
        let t = svc.add_deploy(image, "b204-pc01").expect("deploy task");
        let out = Command::new(env!("CARGO_BIN_EXE_parc-agent"))
            .args(["deploy", "--endpoint", &server.url(), "--task", &t.id])
            .args(["--retries", "1", "--target"])
            .arg(&disk)
            .env("PARC_AGENT_TOKEN", &t.token)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("parc-agent");
        unflip(&path, undo);
        let report = svc.state(&t.id).and_then(|st| st.report);
        let f = std::fs::File::open(&disk).expect("disk");
        let mut ends = vec![0u8; 2 * MIB as usize];
        f.read_exact_at(&mut ends[..MIB as usize], 0).expect("read");
        f.read_exact_at(&mut ends[MIB as usize..], 127 * MIB)
            .expect("read");
        let table = Command::new("sfdisk")
            .arg("-d")
            .arg(&disk)
            .output()
            .is_ok_and(|o| o.status.success());
        let bootable = table || ends.iter().any(|&b| b != 0);
        let what = format!(
            "{image} {} byte {} bit {:#04x}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            undo.0,
            undo.1
        );
        let named = report
            .as_ref()
            .is_some_and(|r| !r.success && r.message.contains("corrupt"));
        if out.status.success() || bootable {
            row.lost += 1;
            row.notes.push(format!(
                "{what}: agent {}, disk bootable: {bootable}, report {report:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        } else if named {
            row.survived += 1;
        } else {
            row.notes.push(format!(
                "{what}: refused, but the report does not name the corruption: {report:?}"
            ));
        }
    }
    row.notes.push(format!("tries per image: {spread:?}"));
    row
}

// ---- Store full ---------------------------------------------------------------------------

fn store_full(tries: usize) -> Row {
    use parc::image::chunks::ChunkParams;
    use parc::image::store::FsImageStore;
    let mut row = Row::new("Store full (tmpfs)");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        row.tries = 1;
        row.notes
            .push("NOT RUN: needs root to mount a small tmpfs (run as root)".into());
        return row;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("store");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "parc-faults"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(st.success(), "mount tmpfs");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _umount = Umount(mnt.clone());
    let store = FsImageStore::new(&mnt);
    let noise = |seed: u64, len: usize| -> Vec<u8> {
        let mut r = Rng(seed);
        (0..len).map(|_| r.next() as u8).collect()
    };
    let put = |version: &str, data: &[u8]| -> Result<(), String> {
        let st = store.begin("b204", version).map_err(|e| e.to_string())?;
        let s = st
            .chunker()
            .chunk_stream("p1.tar.zst", data, ChunkParams::default())
            .map_err(|e| e.to_string())?;
        let mut m = minimal_manifest(version);
        m.disk.partitions[0].stream = Some(s);
        st.commit(&m).map_err(|e| e.to_string())
    };
    for i in 0..tries {
        row.tries += 1;
        // 6 MiB that do not compress, into 4 MiB.
        let err = put(&format!("big{i}"), &noise(100 + i as u64, 6 << 20));
        let clear = err
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("No space left on device"));
        let listed = store
            .list_manifests(None)
            .map(|l| l.len())
            .unwrap_or(usize::MAX);
        let left = std::fs::read_dir(mnt.join("b204"))
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        // Space freed as `parc image prune` frees it (the chunks no image uses); then a
        // smaller image fits, and is the one listed.
        let pruned = store.prune(None, 1).map_err(|e| e.to_string());
        let small = put(&format!("small{i}"), &noise(200 + i as u64, 1 << 20));
        let verified = store
            .verify(&format!("b204/small{i}"))
            .map_err(|e| e.to_string());
        let after = store
            .list_manifests(None)
            .map(|l| l.len())
            .unwrap_or(usize::MAX);
        if clear
            && listed == 0
            && left == 0
            && pruned.is_ok()
            && small.is_ok()
            && after == 1
            && matches!(verified, Ok(Ok(())))
        {
            row.survived += 1;
        } else {
            row.notes.push(format!(
                "try {i}: error {err:?}; then {listed} images listed, {left} folders left; \
                 prune {pruned:?}; the next one {small:?}, verify {verified:?}, {after} listed"
            ));
            if listed != 0 || small.is_err() || !matches!(verified, Ok(Ok(()))) {
                row.lost += 1;
            }
        }
        // The next try starts from an empty store.
        let _ = store.prune(None, 0);
    }
    row
}

fn minimal_manifest(version: &str) -> parc::image::manifest::Manifest {
    let text = format!(
        r#"format = 1
room = "b204"
version = "{version}"
recipe-digest = "sha256:{a}"
software-digest = "sha256:{b}"
hardware-model = "m"
os-family = "linux"
captured-from = "faults"
captured-at = "2026-12-04T00:00:00Z"
parc-version = "0.1.0"
compression = "zstd"

[disk]
label = "gpt"

[[disk.partitions]]
number = 1
start-mib = 1
type = "linux"
filesystem = "ext4"
mountpoint = "/"
"#,
        a = "a".repeat(64),
        b = "b".repeat(64),
    );
    toml::from_str(&text).expect("minimal manifest")
}

// ---- The table ----------------------------------------------------------------------------

fn main() {
    let full = std::env::var("PARC_FAULTS").as_deref() == Ok("full");
    let seed = std::env::var("PARC_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    let (r1, r2, sf) = if full { (30, 40, 5) } else { (10, 12, 2) };
    println!(
        "fault campaign: {} profile, seed {seed} (PARC_FAULTS_SEED={seed} replays it)",
        if full { "full" } else { "short" }
    );
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    let mut case = |row: Row| {
        println!(
            "  {:<40} {}/{} survived, {} lost",
            row.case, row.survived, row.tries, row.lost
        );
        rows.push(row);
    };
    case(r1_crash(&mut rng, r1));
    case(r2_corruption(&mut rng, r2));
    case(r2_deploy(&mut rng, r2 / 2));
    case(store_full(sf));
    println!();
    println!(
        "{:<40} {:>6} {:>9} {:>10}",
        "case", "tries", "survived", "data lost"
    );
    for r in &rows {
        println!(
            "{:<40} {:>6} {:>9} {:>10}",
            r.case, r.tries, r.survived, r.lost
        );
        for n in &r.notes {
            println!("    {n}");
        }
    }
    let failed = rows.iter().filter(|r| !r.ok()).count();
    println!(
        "\nfaults: {} cases, {failed} failed, seed {seed}, {:.0} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
