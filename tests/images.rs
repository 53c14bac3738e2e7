//! Image pipeline tests on real parts: the `parc-agent` binary, HTTP on loopback, loop
//! devices, mkfs.ext4, sfdisk and a debootstrap'ed tree. They need root and fail loudly
//! without it. Run: `cargo test --test images` (PARC_CACHE selects the rootfs cache).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod drift;
use drift::{drift_one_percent_from, pseudo_random};
use parc::image::manifest::{
    DiskLayout, Filesystem, OsFamily, Partition, PartitionLabel, SoftwareItem,
};
use parc::image::store::FsImageStore;
use parc::image::treetar::read_xattrs;
use parc::netboot::serve::local::LocalServer;
use parc::netboot::serve::{CaptureTemplate, ImagesService, TaskTicket};

const MIB: u64 = 1 << 20;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the image tests need root (loop devices, mkfs, mount): run them as root"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cached debootstrap tree (`scripts/cache-rootfs.sh lab`), built on first use.
fn lab_tree() -> PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let out = Command::new(repo().join("scripts/cache-rootfs.sh"))
            .arg("lab")
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/cache-rootfs.sh");
        assert!(out.status.success(), "scripts/cache-rootfs.sh lab failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let ck = std::ffi::CString::new(k).unwrap();
    // SAFETY: valid path, name and value.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(rc, 0, "setxattr {k} on {}", p.display());
}

/// A small tree with everything a tar of a root filesystem must carry.
fn special_tree(root: &Path) {
    let c = |p: &str| root.join(p);
    fs::create_dir_all(c("etc/ssh")).unwrap();
    fs::create_dir_all(c("home/eleve/.config")).unwrap();
    fs::create_dir_all(c("dev")).unwrap();
    fs::write(c("etc/hostname"), "master\n").unwrap();
    fs::write(c("etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n").unwrap();
    fs::write(c("etc/empty"), "").unwrap();
    fs::write(c("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    fs::write(c("big.bin"), pseudo_random((3 * MIB) as usize, 7)).unwrap();
    fs::write(c("text.txt"), "salle b204 ".repeat(100_000)).unwrap();
    // Hard links, one of them under another folder.
    fs::hard_link(c("text.txt"), c("etc/text-link")).unwrap();
    fs::hard_link(c("text.txt"), c("home/text-link2")).unwrap();
    // Symlinks: relative, absolute, dangling.
    symlink("../text.txt", c("etc/rel-link")).unwrap();
    symlink("/etc/hostname", c("abs-link")).unwrap();
    symlink("/nowhere/at/all", c("dangling")).unwrap();
    // Owners, set-id bits and restrictive modes.
    let sudo = c("setuid-tool");
    fs::write(&sudo, "#!/bin/sh\n").unwrap();
    sh(Command::new("chown").arg("1234:5678").arg(&sudo));
    fs::set_permissions(&sudo, fs::Permissions::from_mode(0o4755)).unwrap();
    sh(Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(c("home/eleve")));
    fs::set_permissions(c("home/eleve"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(c("etc/ssh"), fs::Permissions::from_mode(0o1750)).unwrap();
    // Device nodes and a fifo.
    sh(Command::new("mknod")
        .arg(c("dev/null"))
        .args(["c", "1", "3"]));
    sh(Command::new("mknod")
        .arg(c("dev/loop-x"))
        .args(["b", "7", "200"]));
    sh(Command::new("mkfifo").arg(c("dev/initctl")));
    // Extended attributes on a file and a directory.
    set_xattr(&c("big.bin"), "user.parc.room", b"b204");
    set_xattr(&c("big.bin"), "trusted.parc", b"\x00\x01binary");
    set_xattr(&c("etc"), "user.parc.dir", b"yes");
    // A path longer than the 100 bytes of a ustar name.
    let long = c(&format!("{}/{}", "d".repeat(90), "f".repeat(60)));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::write(&long, "long").unwrap();
    // Old mtimes everywhere (after every write).
    sh(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "2020-01-02 03:04:05",
        "{}",
        "+",
    ]));
}

/// Every difference between two trees, ignoring the listed relative paths.
fn compare_trees(src: &Path, dst: &Path, ignore: &[&str], ignore_mtime: &[&str]) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        out.push(rel.to_path_buf());
        let full = root.join(rel);
        let m = fs::symlink_metadata(&full).unwrap();
        if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&full)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), out);
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    walk(src, Path::new(""), &mut a);
    walk(dst, Path::new(""), &mut b);
    let skip = |p: &Path| ignore.iter().any(|i| p.starts_with(i));
    let mut diffs = Vec::new();
    let sa: std::collections::BTreeSet<_> = a.iter().filter(|p| !skip(p)).cloned().collect();
    let sb: std::collections::BTreeSet<_> = b.iter().filter(|p| !skip(p)).cloned().collect();
    for p in sa.symmetric_difference(&sb) {
        let m = fs::symlink_metadata(src.join(p));
        if m.is_ok_and(|m| m.file_type().is_socket()) {
            continue;
        }
        diffs.push(format!("{}: only in one tree", p.display()));
    }
    let mut links: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    for p in sa.intersection(&sb) {
        let (x, y) = (src.join(p), dst.join(p));
        let (mx, my) = (
            fs::symlink_metadata(&x).unwrap(),
            fs::symlink_metadata(&y).unwrap(),
        );
        let name = p.display();
        if (mx.mode(), mx.uid(), mx.gid()) != (my.mode(), my.uid(), my.gid()) {
            diffs.push(format!(
                "{name}: mode/uid/gid {:o}/{}/{} vs {:o}/{}/{}",
                mx.mode(),
                mx.uid(),
                mx.gid(),
                my.mode(),
                my.uid(),
                my.gid()
            ));
        }
        if mx.mtime() != my.mtime() && !ignore_mtime.iter().any(|i| Path::new(i) == p.as_path()) {
            diffs.push(format!("{name}: mtime {} vs {}", mx.mtime(), my.mtime()));
        }
        let ft = mx.file_type();
        if ft.is_file() {
            if fs::read(&x).unwrap() != fs::read(&y).unwrap() {
                diffs.push(format!("{name}: content differs"));
            }
            if mx.nlink() > 1 {
                let prev = links.insert((mx.dev(), mx.ino()), (my.dev(), my.ino()));
                if prev.is_some_and(|prev| prev != (my.dev(), my.ino())) {
                    diffs.push(format!("{name}: hard link not preserved"));
                }
            }
            if mx.nlink() != my.nlink() {
                diffs.push(format!("{name}: {} links vs {}", mx.nlink(), my.nlink()));
            }
        } else if ft.is_symlink() {
            if fs::read_link(&x).unwrap() != fs::read_link(&y).unwrap() {
                diffs.push(format!("{name}: symlink target differs"));
            }
        } else if (ft.is_char_device() || ft.is_block_device()) && mx.rdev() != my.rdev() {
            diffs.push(format!("{name}: device number differs"));
        }
        if read_xattrs(&x).unwrap() != read_xattrs(&y).unwrap() {
            diffs.push(format!("{name}: xattrs differ"));
        }
    }
    diffs
}

fn gpt_layout(parts: &[(u64, Option<u64>, &str)]) -> DiskLayout {
    DiskLayout {
        label: PartitionLabel::Gpt,
        disk_guid: None,
        partitions: parts
            .iter()
            .enumerate()
            .map(|(i, &(start, size, mount))| Partition {
                number: i as u32 + 1,
                start_mib: start,
                size_mib: size,
                type_code: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
                uuid: None,
                name: None,
                attrs: None,
                filesystem: Filesystem::Ext4,
                fs_label: None,
                fs_uuid: None,
                mountpoint: Some(mount.into()),
                stream: None,
            })
            .collect(),
    }
}

fn template() -> CaptureTemplate {
    CaptureTemplate {
        recipe_digest: format!("sha256:{}", "1".repeat(64)),
        software_digest: format!("sha256:{}", "2".repeat(64)),
        software: vec![SoftwareItem {
            name: "geogebra".into(),
            version: "6.0".into(),
        }],
        hardware_model: "optiplex-7010".into(),
        os_family: OsFamily::Linux,
        captured_at: "2026-11-22T15:00:00Z".into(),
    }
}

/// A workspace, its image service and an HTTP server in front of it.
struct Lab {
    ws: tempfile::TempDir,
    svc: Arc<ImagesService>,
    server: Option<LocalServer>,
}

impl Lab {
    fn new() -> Self {
        require_root();
        let ws = tempfile::tempdir().unwrap();
        Self::on(ws)
    }

    fn on(ws: tempfile::TempDir) -> Self {
        let svc = Arc::new(ImagesService::new(FsImageStore::for_workspace(ws.path())));
        let server = LocalServer::start(
            parc::netboot::serve::router(svc.clone()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        Self {
            ws,
            svc,
            server: Some(server),
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }

    /// The agent as a test runs it: its outcome is retried for 3 s, not the 10 minutes a
    /// workstation waits for its endpoint (the tests that cut the network or kill the
    /// endpoint would wait that long for a report nobody can take).
    fn agent(&self, url: &str, t: &TaskTicket, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parc-agent"));
        c.args(args)
            .args(["--endpoint", url, "--task", &t.id, "--report-every", "0.1"])
            .args(["--report-patience", "3"])
            .env("PARC_AGENT_TOKEN", &t.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs the agent to the end for task `t` and asserts it succeeded.
    fn agent_ok(&self, t: &TaskTicket, args: &[&str]) -> Output {
        let out = self.agent(&self.url(), t, args).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn capture(&self, version: &str, layout: DiskLayout, sources: &[(u32, &Path)]) -> String {
        let t = self
            .svc
            .add_capture("b204", version, layout, template())
            .unwrap();
        let srcs: Vec<String> = sources
            .iter()
            .map(|(n, p)| format!("{n}={}", p.display()))
            .collect();
        let mut args = vec!["capture"];
        for s in &srcs {
            args.extend(["--source", s]);
        }
        self.agent_ok(&t, &args);
        let report = self.svc.state(&t.id).unwrap().report.unwrap();
        assert!(report.success, "{report:?}");
        format!("b204/{version}")
    }

    fn parc(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_parc"))
            .args(args)
            .arg("-w")
            .arg(self.ws.path())
            .output()
            .unwrap()
    }
}

/// A sparse disk image file.
fn sparse_disk(dir: &Path, size: u64, fill_first_mib: Option<u8>) -> PathBuf {
    let p = dir.join("disk.img");
    let f = fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    if let Some(b) = fill_first_mib {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&vec![b; MIB as usize], 0).unwrap();
        f.write_all_at(&vec![b; MIB as usize], size - MIB).unwrap();
    }
    p
}

fn first_and_last_mib(disk: &Path) -> (Vec<u8>, Vec<u8>) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(disk).unwrap();
    let len = f.metadata().unwrap().len();
    let mut a = vec![0u8; MIB as usize];
    let mut b = vec![0u8; MIB as usize];
    f.read_exact_at(&mut a, 0).unwrap();
    f.read_exact_at(&mut b, len - MIB).unwrap();
    (a, b)
}

/// The partition table as sfdisk reads it, or `None` when there is none.
fn partition_table(disk: &Path) -> Option<String> {
    let out = Command::new("sfdisk").arg("-d").arg(disk).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Mounts partition `n` of `disk` read-only, by the offset sfdisk reports.
struct Mounted {
    dir: tempfile::TempDir,
    dev: String,
}

impl Mounted {
    fn partition(disk: &Path, n: usize) -> Self {
        Self::open(disk, n, false)
    }

    fn open(disk: &Path, n: usize, writable: bool) -> Self {
        let out = sh(Command::new("sfdisk").arg("-J").arg(disk));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = &j["partitiontable"]["partitions"][n - 1];
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let mut losetup = Command::new("losetup");
        losetup.args(["--find", "--show"]);
        if !writable {
            losetup.arg("--read-only");
        }
        let dev = sh(losetup
            .arg(format!("--offset={}", start * 512))
            .arg(format!("--sizelimit={}", size * 512))
            .arg(disk));
        let dev = String::from_utf8(dev.stdout).unwrap().trim().to_string();
        sh(Command::new("fsck.ext4").args(["-n", "-f", &dev]));
        let dir = tempfile::tempdir().unwrap();
        sh(Command::new("mount")
            .args(["-o", if writable { "rw" } else { "ro" }, &dev])
            .arg(dir.path()));
        Self { dir, dev }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[test]
fn round_trip_debootstrap_tree_and_special_files() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let special = tmp.path().join("special");
    fs::create_dir(&special).unwrap();
    special_tree(&special);
    let tree = lab_tree();
    let layout = gpt_layout(&[(1, Some(64), "/srv"), (65, None, "/")]);
    let id = lab.capture("2026-11-22.1", layout, &[(1, &special), (2, &tree)]);

    let list = lab.parc(&["image", "list"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let verify = lab.parc(&["image", "verify", &id]);
    assert!(verify.status.success(), "{verify:?}");
    let show = String::from_utf8(lab.parc(&["image", "show", &id]).stdout).unwrap();
    assert!(
        show.contains("file = \"p2.tar.zst\"") && show.contains("geogebra"),
        "{show}"
    );

    let disk = sparse_disk(tmp.path(), 1536 * MIB, Some(0xAB));
    let t = lab.svc.add_deploy(&id, "b204-pc07").unwrap();
    let target = disk.display().to_string();
    lab.agent_ok(&t, &["deploy", "--target", &target]);
    let state = lab.svc.state(&t.id).unwrap();
    assert!(state.report.as_ref().unwrap().success, "{state:?}");
    let progress = state.progress.unwrap();
    assert!(
        progress.bytes > 0 && progress.bytes == progress.total,
        "{progress:?}"
    );

    let table = partition_table(&disk).expect("a partition table after a successful deploy");
    assert!(table.contains("label: gpt"), "{table}");
    let srv = Mounted::partition(&disk, 1);
    let diffs = compare_trees(&special, srv.dir.path(), &["lost+found"], &[""]);
    assert!(
        diffs.is_empty(),
        "special tree differs:\n{}",
        diffs.join("\n")
    );
    let root = Mounted::partition(&disk, 2);
    let r = root.dir.path();
    let diffs = compare_trees(
        &tree,
        r,
        &["lost+found", "etc/parc", "etc/hostname", "etc/hosts"],
        &["", "etc"],
    );
    assert!(
        diffs.is_empty(),
        "debootstrap tree differs:\n{}",
        diffs.join("\n")
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/parc/image-id")).unwrap(),
        format!("{id}\n")
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/hostname")).unwrap(),
        "b204-pc07\n"
    );
}

/// Partition 1 of `disk` holds `tree` (but what a deploy writes: marker, hostname, hosts).
fn assert_root_is(disk: &Path, tree: &Path) {
    let root = Mounted::partition(disk, 1);
    let diffs = compare_trees(
        tree,
        root.dir.path(),
        &["lost+found", "etc/parc", "etc/hostname", "etc/hosts"],
        &["", "etc"],
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// A lab with the lab tree captured as one root partition, and an empty 1.5 GiB disk.
fn lab_tree_image() -> (Lab, tempfile::TempDir, PathBuf, String, PathBuf) {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let tree = lab_tree();
    let id = lab.capture("2026-11-22.1", gpt_layout(&[(1, None, "/")]), &[(1, &tree)]);
    let disk = sparse_disk(tmp.path(), 1536 * MIB, Some(0xAB));
    (lab, tmp, tree, id, disk)
}

/// Stored bytes of every stream of image `id`.
fn image_bytes(lab: &Lab, id: &str) -> u64 {
    let m = FsImageStore::for_workspace(lab.ws.path())
        .manifest(id)
        .unwrap();
    m.streams().map(|s| s.size).sum()
}

/// A reimage of a workstation whose disk drifted from its image by 1% of its files fetches
/// only the chunks that changed, as counted by the endpoint's access log; the result is the
/// image's tree. The first reimage takes the record of the last deploy (only the changed
/// files are read), the second is told to read every file (`--read-all`).
#[test]
fn a_reimage_of_a_drifted_disk_fetches_only_what_changed() {
    let (lab, _tmp, tree, id, disk) = lab_tree_image();
    let total = image_bytes(&lab, &id);
    let target = disk.display().to_string();
    let first = lab.svc.add_deploy(&id, "b204-pc04").unwrap();
    let out = lab.agent_ok(&first, &["deploy", "--target", &target]);
    let full = lab.svc.access.bytes_sent_to(&first.id);
    assert!(full >= total, "a full deploy sent {full} of {total} bytes");
    assert!(
        lab.svc.records.get("b204-pc04", 1).unwrap().is_some(),
        "the deploy left no record: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (round, read_all) in [(1, false), (2, true)] {
        let lost = {
            let m = Mounted::open(&disk, 1, true);
            drift_one_percent_from(m.dir.path(), round)
        };
        let again = lab.svc.add_deploy(&id, "b204-pc04").unwrap();
        let mut args = vec!["deploy", "--target", &target];
        if read_all {
            args.push("--read-all");
        }
        let out = lab.agent_ok(&again, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let fetched = lab.svc.access.bytes_sent_to(&again.id);
        let report = lab.svc.state(&again.id).unwrap().report.unwrap();
        let delivery = report.delivery.clone().unwrap();
        eprintln!(
            "reimage {round}: {fetched} of {total} bytes fetched ({:.2}%), {lost} bytes of files drifted, {} found on the disk, record used: {}",
            100.0 * fetched as f64 / total as f64,
            delivery.seeded_bytes,
            delivery.recorded
        );
        assert!(delivery.seeded_bytes > 0, "nothing seeded: {stderr}");
        assert_eq!(delivery.recorded, !read_all, "{stderr}");
        assert!(
            lab.svc
                .access
                .entries()
                .iter()
                .any(|e| e.task == again.id && e.path.contains("/chunks/")),
            "the access log names no chunk fetched by b204-pc04"
        );
        // The chunks around each change and the index (2.3% here, the P4 target 3%).
        assert!(
            fetched * 100 < total * 3,
            "fetched {fetched} of {total} bytes: {stderr}"
        );
        assert!(fetched > 0);
        assert_root_is(&disk, &tree);
    }
}

/// A deploy cut by the network half way leaves a filesystem the next try seeds from: what was
/// written and verified is not fetched again.
#[test]
fn a_deploy_cut_half_way_resumes_from_what_it_wrote() {
    let (lab, _tmp, tree, id, disk) = lab_tree_image();
    let total = image_bytes(&lab, &id);
    let target = disk.display().to_string();
    let limit = total / 2;
    let proxy = Proxy::start(lab.server.as_ref().unwrap().addr, limit, true);
    let url = format!("http://{}", proxy.addr);
    let cut = lab.svc.add_deploy(&id, "b204-pc05").unwrap();
    let out = lab
        .agent(
            &url,
            &cut,
            &["deploy", "--target", &target, "--retries", "1"],
        )
        .output()
        .unwrap();
    assert!(!out.status.success(), "the cut deploy succeeded");
    assert_eq!(partition_table(&disk), None, "a cut deploy left a table");
    let sent = lab.svc.access.bytes_sent_to(&cut.id);
    let again = lab.svc.add_deploy(&id, "b204-pc05").unwrap();
    let out = lab.agent_ok(&again, &["deploy", "--target", &target]);
    let fetched = lab.svc.access.bytes_sent_to(&again.id);
    eprintln!(
        "resume: {limit} bytes through before the cut ({sent} left the endpoint), {fetched} after, of {total}"
    );
    // The pipeline holds a few MiB in flight when cut; the rest was written and is kept.
    assert!(
        fetched + limit * 8 / 10 < total,
        "fetched {fetched} after {limit} of {total}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_root_is(&disk, &tree);
}

/// Captures the special tree alone (fast) into a fresh lab.
/// Flips a bit in the middle of a chunk of stream `file` of image `id`; returns the chunk's
/// digest (hex).
fn flip_a_chunk(lab: &Lab, id: &str, file: &str) -> String {
    let store = FsImageStore::for_workspace(lab.ws.path());
    let m = store.manifest(id).unwrap();
    let s = m.streams().find(|s| s.file == file).unwrap();
    let index = store.index(id, s).unwrap();
    let c = index.chunks[index.chunks.len() / 2];
    let path = store.chunks().path(&c);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&path, bytes).unwrap();
    c.hex()
}

fn small_image(lab: &Lab, tmp: &Path) -> (String, PathBuf) {
    let special = tmp.join("special");
    fs::create_dir(&special).unwrap();
    special_tree(&special);
    let id = lab.capture(
        "2026-11-22.1",
        gpt_layout(&[(1, None, "/")]),
        &[(1, &special)],
    );
    (id, special)
}

#[test]
fn flipped_bit_is_named_by_verify_and_refused_by_deploy() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let (id, special) = small_image(&lab, tmp.path());
    // A second image sharing the first one's chunks.
    let other = lab.capture(
        "2026-11-22.2",
        gpt_layout(&[(1, None, "/")]),
        &[(1, &special)],
    );
    let chunk = flip_a_chunk(&lab, &id, "p1.tar.zst");

    let v = lab.parc(&["image", "verify", &id]);
    assert_eq!(v.status.code(), Some(1), "{v:?}");
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains("BROKEN") && text.contains("p1.tar.zst") && text.contains(&chunk),
        "{text}"
    );
    // Every image using the chunk is named with it.
    let all = lab.parc(&["image", "verify", "--all"]);
    assert_eq!(all.status.code(), Some(1));
    let all = String::from_utf8_lossy(&all.stdout);
    for i in [&id, &other] {
        assert!(
            all.lines()
                .any(|l| l.contains(i.as_str()) && l.contains(&chunk)),
            "{all}"
        );
    }

    let disk = sparse_disk(tmp.path(), 128 * MIB, Some(0xAB));
    let t = lab.svc.add_deploy(&id, "b204-pc01").unwrap();
    let target = disk.display().to_string();
    let out = lab
        .agent(&lab.url(), &t, &["deploy", "--target", &target])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = lab.svc.state(&t.id).unwrap().report.unwrap();
    assert!(!report.success);
    assert!(
        report.message.contains("p1.tar.zst") && report.message.contains("corrupt"),
        "{report:?}"
    );
    let (first, last) = first_and_last_mib(&disk);
    assert!(first.iter().all(|&b| b == 0), "the first MiB was written");
    assert!(
        last.iter().all(|&b| b == 0),
        "the backup GPT area was not wiped"
    );
    assert_eq!(partition_table(&disk), None);
}

/// A TCP proxy that breaks the connection carrying more than `limit` bytes to the client:
/// once (then lets connections through), or for good (and refuses new connections).
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr, limit: u64, for_good: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let cut2 = cut.clone();
        std::thread::spawn(move || {
            loop {
                if for_good && cut2.load(Ordering::SeqCst) {
                    for c in conns.lock().unwrap().drain(..) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                    return; // Drops the listener: connections are refused.
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(upstream).unwrap();
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        std::thread::spawn(move || pump(c2, s2, u64::MAX, None));
                        let cut3 = cut2.clone();
                        std::thread::spawn(move || pump(server, client, limit, Some(cut3)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, cut }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: u64, cut: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        n += got as u64;
        if n > limit {
            if let Some(c) = &cut {
                if !c.swap(true, Ordering::SeqCst) {
                    break; // Break this connection once.
                }
            }
        }
        if to.write_all(&buf[..got]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn broken_connection_resumes_with_range() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let (id, special) = small_image(&lab, tmp.path());
    let proxy = Proxy::start(lab.server.as_ref().unwrap().addr, 512 * 1024, false);
    let disk = sparse_disk(tmp.path(), 128 * MIB, Some(0xAB));
    let t = lab.svc.add_deploy(&id, "b204-pc02").unwrap();
    let target = disk.display().to_string();
    let url = format!("http://{}", proxy.addr);
    let out = lab
        .agent(&url, &t, &["deploy", "--target", &target])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "deploy: {stderr}");
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy never cut the connection"
    );
    assert!(stderr.contains("resuming at byte"), "{stderr}");
    let root = Mounted::partition(&disk, 1);
    let diffs = compare_trees(
        &special,
        root.dir.path(),
        &["lost+found", "etc/parc", "etc/hostname", "etc/hosts"],
        &["", "etc"],
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn dead_server_mid_deploy_leaves_no_partition_table() {
    let mut lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let (id, _) = small_image(&lab, tmp.path());
    let proxy = Proxy::start(lab.server.as_ref().unwrap().addr, 512 * 1024, true);
    let disk = sparse_disk(tmp.path(), 128 * MIB, Some(0xAB));
    let t = lab.svc.add_deploy(&id, "b204-pc03").unwrap();
    let target = disk.display().to_string();
    let url = format!("http://{}", proxy.addr);
    let mut child = lab
        .agent(&url, &t, &["deploy", "--target", &target, "--retries", "2"])
        .spawn()
        .unwrap();
    // Once the proxy cut, the server dies too.
    let start = Instant::now();
    while !proxy.cut.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the deploy never got far enough"
    );
    lab.server.take().unwrap().kill();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("gave up"), "{stderr}");
    let (first, last) = first_and_last_mib(&disk);
    assert!(first.iter().all(|&b| b == 0), "the first MiB is not wiped");
    assert!(
        last.iter().all(|&b| b == 0),
        "the backup GPT area is not wiped"
    );
    assert_eq!(partition_table(&disk), None);
}

#[test]
fn killed_capture_leaves_no_image_and_the_next_one_succeeds() {
    let lab = Lab::new();
    let tree = lab_tree();
    let layout = gpt_layout(&[(1, None, "/")]);
    let t = lab
        .svc
        .add_capture("b204", "2026-11-22.1", layout.clone(), template())
        .unwrap();
    let src = format!("1={}", tree.display());
    let mut child = lab
        .agent(&lab.url(), &t, &["capture", "--source", &src])
        .spawn()
        .unwrap();
    let start = Instant::now();
    let moved = || {
        lab.svc
            .state(&t.id)
            .and_then(|s| s.progress)
            .is_some_and(|p| p.bytes > 4 * MIB)
    };
    while !moved() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(moved(), "the capture never reported progress");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let list = lab.parc(&["image", "list"]);
    assert!(list.status.success());
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "",
        "an image appeared"
    );

    // The endpoint dies as well (and with it the capture's hold on the store); a new one on
    // the same workspace takes a fresh capture.
    let Lab { ws, server, svc } = lab;
    server.unwrap().kill();
    drop(svc);
    let lab = Lab::on(ws);
    assert_eq!(
        String::from_utf8_lossy(&lab.parc(&["image", "list"]).stdout),
        ""
    );
    let id = lab.capture("2026-11-22.1", layout, &[(1, &tree)]);
    let list = String::from_utf8(lab.parc(&["image", "list"]).stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&id), "{list}");
    assert!(lab.parc(&["image", "verify", "--all"]).status.success());
    // prune removes the killed capture's staging folder, keeps the image.
    assert!(
        lab.parc(&["image", "prune", "--keep", "1"])
            .status
            .success()
    );
    let room: Vec<_> = fs::read_dir(lab.ws.path().join("images/b204"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(room, vec!["2026-11-22.1".to_string()]);
}

fn blkid(dev: &str, tag: &str) -> String {
    let out = sh(Command::new("blkid").args(["-p", "-s", tag, "-o", "value", dev]));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn deploy_ok(lab: &Lab, id: &str, disk: &Path) {
    let t = lab.svc.add_deploy(id, "b204-pc09").unwrap();
    let target = disk.display().to_string();
    lab.agent_ok(&t, &["deploy", "--target", &target]);
}

#[test]
fn capture_from_a_disk_keeps_uuid_and_boot_area() {
    use std::os::unix::fs::FileExt;
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let (id, _) = small_image(&lab, tmp.path());
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    fs::create_dir(&a_dir).unwrap();
    fs::create_dir(&b_dir).unwrap();
    let disk_a = sparse_disk(&a_dir, 128 * MIB, None);
    deploy_ok(&lab, &id, &disk_a);
    // Boot code and a GRUB-like core image in the gap after the GPT entries.
    let f = fs::OpenOptions::new().write(true).open(&disk_a).unwrap();
    f.write_all_at(&[0x5A; 440], 0).unwrap();
    f.write_all_at(&vec![0xC3; (2048 - 34) * 512], 34 * 512)
        .unwrap();
    drop(f);
    let uuid_a = {
        let m = Mounted::partition(&disk_a, 1);
        blkid(&m.dev, "UUID")
    };
    assert!(!uuid_a.is_empty());

    let t = lab
        .svc
        .add_capture("b204", "v2", gpt_layout(&[(1, None, "/")]), template())
        .unwrap();
    let disk_arg = disk_a.display().to_string();
    lab.agent_ok(&t, &["capture", "--disk", &disk_arg]);
    let m = FsImageStore::for_workspace(lab.ws.path())
        .manifest("b204/v2")
        .unwrap();
    assert_eq!(
        m.disk.partitions[0].fs_uuid.as_deref(),
        Some(uuid_a.as_str())
    );
    assert_eq!(m.boot_area.as_ref().unwrap().size, MIB);

    let disk_b = sparse_disk(&b_dir, 160 * MIB, Some(0xAB));
    deploy_ok(&lab, "b204/v2", &disk_b);
    let (first, _) = first_and_last_mib(&disk_b);
    assert!(
        first[..440].iter().all(|&b| b == 0x5A),
        "boot code not restored"
    );
    assert!(
        first[34 * 512..].iter().all(|&b| b == 0xC3),
        "gap not restored"
    );
    assert!(partition_table(&disk_b).unwrap().contains("label: gpt"));
    let ma = Mounted::partition(&disk_a, 1);
    let mb = Mounted::partition(&disk_b, 1);
    assert_eq!(blkid(&mb.dev, "UUID"), uuid_a);
    let diffs = compare_trees(
        ma.dir.path(),
        mb.dir.path(),
        &["etc/parc", "etc/hostname", "etc/hosts"],
        &["", "etc"],
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_eq!(
        fs::read_to_string(mb.dir.path().join("etc/parc/image-id")).unwrap(),
        "b204/v2\n"
    );
}

#[test]
fn format_makes_the_table_and_filesystems() {
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = gpt_layout(&[(1, Some(32), "/data"), (33, None, "/")]);
    layout.partitions[0].fs_label = Some("data".into());
    layout.partitions[1].filesystem = Filesystem::Swap;
    let t = lab.svc.add_format(layout).unwrap();
    let disk = sparse_disk(tmp.path(), 96 * MIB, Some(0xAB));
    let target = disk.display().to_string();
    lab.agent_ok(&t, &["format", "--target", &target]);
    let table = partition_table(&disk).unwrap();
    assert_eq!(table.matches("start=").count(), 2, "{table}");
    let m = Mounted::partition(&disk, 1);
    assert_eq!(blkid(&m.dev, "LABEL"), "data");
    assert!(lab.svc.state(&t.id).unwrap().report.unwrap().success);
}

/// A format with a base OS is a deploy of the base image plus the injected files, and a root
/// filesystem that boots with extlinux gets extlinux installed, syslinux's GPT boot code and
/// the legacy-BIOS-bootable attribute. A missing base image is refused with how to build it.
#[test]
fn format_with_a_base_image_lays_it_down_bootable_with_the_injected_files() {
    use parc::ports::InjectFile;
    let lab = Lab::new();
    let tmp = tempfile::tempdir().unwrap();
    let e = lab
        .svc
        .add_format_base("debian-12-amd64", "b204-master", Vec::new())
        .unwrap_err();
    assert!(
        e.to_string().contains("base/debian-12-amd64") && e.to_string().contains("build.sh"),
        "{e}"
    );
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("boot/extlinux")).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("boot/extlinux/extlinux.conf"), "DEFAULT x\n").unwrap();
    fs::write(tree.join("etc/hosts"), "127.0.1.1\tdebian\n").unwrap();
    let mut layout = gpt_layout(&[(1, Some(8), "/data"), (9, None, "/")]);
    layout.partitions[1].fs_label = Some("parc-root".into());
    // Imported as a user does; a broken layout file is refused with its place, exit 2.
    let layout_file = tmp.path().join("layout.toml");
    let tree_arg = tree.display().to_string();
    let layout_arg = layout_file.display().to_string();
    let import = [
        "image",
        "import",
        "base/debian-12-amd64",
        "--tree",
        &tree_arg,
        "--layout",
        &layout_arg,
    ];
    fs::write(&layout_file, "label = \"gpt\"\npartitions = 3\n").unwrap();
    let bad = lab.parc(&import);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("layout.toml:2:"), "{err}");
    fs::write(&layout_file, toml::to_string(&layout).unwrap()).unwrap();
    let ok = lab.parc(&import);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("imported\tbase/debian-12-amd64"));
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTest parc\n";
    let t = lab
        .svc
        .add_format_base(
            "debian-12-amd64",
            "b204-master",
            vec![InjectFile {
                path: "/root/.ssh/authorized_keys".into(),
                mode: 0o600,
                content: key.into(),
            }],
        )
        .unwrap();
    let disk = sparse_disk(tmp.path(), 64 * MIB, Some(0xAB));
    let target = disk.display().to_string();
    lab.agent_ok(&t, &["format", "--target", &target]);
    let report = lab.svc.state(&t.id).unwrap().report.unwrap();
    assert!(report.success, "{report:?}");
    assert!(
        report.message.contains("base/debian-12-amd64"),
        "{report:?}"
    );
    let table = partition_table(&disk).unwrap();
    assert!(table.contains("attrs=\"LegacyBIOSBootable\""), "{table}");
    let gptmbr = fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    let (first, _) = first_and_last_mib(&disk);
    assert_eq!(&first[..gptmbr.len()], &gptmbr[..], "no syslinux boot code");
    let m = Mounted::partition(&disk, 2);
    let root = m.dir.path();
    assert_eq!(blkid(&m.dev, "LABEL"), "parc-root");
    assert!(
        root.join("boot/extlinux/ldlinux.sys").is_file(),
        "no extlinux"
    );
    assert_eq!(
        fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap(),
        key
    );
    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("root/.ssh"), 0o700);
    assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "b204-master\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/parc/image-id")).unwrap(),
        "base/debian-12-amd64\n"
    );
}

// --- Windows disks: GPT with ESP, MSR, NTFS and a recovery NTFS -----------------------------

const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const MSR: &str = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";
const BASIC: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
const RECOVERY: &str = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC";

fn ensure_windows_tools() {
    sh(
        Command::new(repo().join("scripts/ensure-packages.sh")).args([
            "ntfs-3g",
            "partclone",
            "wimtools",
            "dosfstools",
            "mtools",
            "fdisk",
            "attr",
        ]),
    );
}

/// A loop device over partition `n` of `disk` (by sfdisk's offsets); detached on drop.
struct PartDev(String);

impl PartDev {
    fn new(disk: &Path, n: usize, ro: bool) -> Self {
        let j = sfdisk_json(disk);
        let p = &j["partitions"][n - 1];
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let mut c = Command::new("losetup");
        c.args(["--find", "--show"])
            .arg(format!("--offset={}", start * 512))
            .arg(format!("--sizelimit={}", size * 512));
        if ro {
            c.arg("--read-only");
        }
        let out = sh(c.arg(disk));
        Self(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for PartDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn sfdisk_json(disk: &Path) -> serde_json::Value {
    let out = sh(Command::new("sfdisk").arg("--json").arg(disk));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    j["partitiontable"].clone()
}

/// A filesystem mounted on a temporary folder (`ntfs-3g` for NTFS); unmounted on drop.
struct FsMount {
    dir: tempfile::TempDir,
}

impl FsMount {
    fn ntfs(dev: &str, opts: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        sh(Command::new("ntfs-3g")
            .args(["-o", opts, dev])
            .arg(dir.path()));
        Self { dir }
    }
}

impl Drop for FsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn get_xattr(p: &Path, k: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let ck = std::ffi::CString::new(k).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid path, name and buffer.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), ck.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Every file of an NTFS volume mounted by ntfs-3g (streams_interface=xattr) with what NTFS
/// keeps about it: content, link count, security descriptor, attributes, DOS name, times,
/// reparse data, object id and named streams (ntfs-3g shows them as `user.*`).
fn ntfs_metadata(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let m = fs::symlink_metadata(&full).unwrap();
        let mut line = format!("{}: nlink {}", rel.display(), m.nlink());
        if m.is_file() {
            let h = parc::image::hashing::hash_reader(fs::File::open(&full).unwrap()).unwrap();
            line.push_str(&format!(" data {}", h.0));
        }
        for k in [
            "system.ntfs_acl",
            "system.ntfs_attrib",
            "system.ntfs_dos_name",
            "system.ntfs_times",
            "system.ntfs_reparse_data",
            "system.ntfs_object_id",
        ] {
            if let Some(v) = get_xattr(&full, k) {
                line.push_str(&format!(" {k}={}", hex(&v)));
            }
        }
        let mut names: Vec<_> = read_xattrs(&full)
            .unwrap()
            .into_iter()
            .map(|(k, v)| format!(" {}={}", String::from_utf8_lossy(&k), hex(&v)))
            .collect();
        names.sort();
        line.extend(names);
        out.push(line);
        if m.is_dir() {
            let mut kids: Vec<_> = fs::read_dir(&full)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            kids.sort();
            for k in kids.into_iter().rev() {
                stack.push(rel.join(k));
            }
        }
    }
    out
}

/// Every file of the FAT volume on `dev` (read with mtools, no mount): path, size, mtime and
/// content digest.
fn esp_files(dev: &str) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    sh(Command::new("mcopy")
        .args(["-s", "-p", "-m", "-n", "-i", dev, "::/"])
        .arg(out.path()));
    let mut lines = Vec::new();
    let mut stack = vec![out.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(out.path()).unwrap().display().to_string();
            if m.is_dir() {
                lines.push(format!("{rel}/"));
                stack.push(p);
            } else {
                let h = parc::image::hashing::hash_reader(fs::File::open(&p).unwrap()).unwrap();
                lines.push(format!("{rel}: {} {} {}", m.len(), m.mtime(), h.0));
            }
        }
    }
    lines.sort();
    lines
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first difference of two listings, named.
fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return Some(format!("master: {x}\n deployed: {y}"));
        }
    }
    (a.len() != b.len()).then(|| format!("{} entries vs {}", a.len(), b.len()))
}

/// A Windows-like master disk: ESP (FAT32) + MSR + Windows (NTFS) + recovery (NTFS), with
/// GUIDs, names and attribute bits, and the Windows volume carrying ACLs, named streams, a
/// symlink, hard links, a compressed file, a DOS name and odd Unicode names.
fn windows_master(dir: &Path) -> PathBuf {
    windows_master_in_state(dir, "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE")
}

/// A Windows master whose sysprep state (`Windows\Setup\State\State.ini`, UTF-16LE as
/// Windows writes it) is `image_state`.
fn windows_master_in_state(dir: &Path, image_state: &str) -> PathBuf {
    let disk = dir.join("master.img");
    fs::File::create(&disk)
        .unwrap()
        .set_len(1024 * MIB)
        .unwrap();
    let script = format!(
        "label: gpt\nlabel-id: 6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9\nunit: sectors\n\n\
         start=2048, size=131072, type={ESP}, uuid=0A1B2C3D-0000-4000-8000-000000000001, name=\"EFI system partition\", attrs=\"RequiredPartition\"\n\
         start=133120, size=32768, type={MSR}, uuid=0A1B2C3D-0000-4000-8000-000000000002, name=\"Microsoft reserved partition\"\n\
         start=165888, size=1519616, type={BASIC}, uuid=0A1B2C3D-0000-4000-8000-000000000003, name=\"Basic data partition\"\n\
         start=1685504, size=409600, type={RECOVERY}, uuid=0A1B2C3D-0000-4000-8000-000000000004, attrs=\"RequiredPartition GUID:63\"\n"
    );
    let mut c = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&disk)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success());
    {
        let esp = PartDev::new(&disk, 1, false);
        sh(Command::new("mkfs.vfat").args(["-F", "32", "-n", "SYSTEM", &esp.0]));
        // What bcdboot lays out, written with mtools (this test's kernel may lack vfat).
        for d in ["EFI", "EFI/Microsoft", "EFI/Microsoft/Boot", "EFI/Boot"] {
            sh(Command::new("mmd").args(["-i", &esp.0, &format!("::/{d}")]));
        }
        let src = dir.join("esp-src");
        fs::create_dir(&src).unwrap();
        for (name, len, seed) in [("bootmgfw.efi", 1_500_000, 11), ("BCD", 32_768, 12)] {
            fs::write(src.join(name), pseudo_random(len, seed)).unwrap();
            sh(Command::new("mcopy")
                .args(["-i", &esp.0])
                .arg(src.join(name))
                .arg(format!("::/EFI/Microsoft/Boot/{name}")));
        }
        sh(Command::new("mcopy")
            .args(["-i", &esp.0])
            .arg(src.join("bootmgfw.efi"))
            .arg("::/EFI/Boot/bootx64.efi"));
    }
    {
        let win = PartDev::new(&disk, 3, false);
        sh(Command::new("mkntfs").args(["-Q", "-F", "-q", "-L", "Windows", &win.0]));
        let m = FsMount::ntfs(&win.0, "streams_interface=windows,compression");
        let r = m.dir.path();
        fs::create_dir_all(r.join("Windows/System32")).unwrap();
        fs::create_dir_all(r.join("Windows/Panther")).unwrap();
        fs::create_dir_all(r.join("Windows/Setup/State")).unwrap();
        fs::create_dir_all(r.join("ProgramData")).unwrap();
        let mut ini = vec![0xff, 0xfe];
        for u in format!("[State]\r\nImageState={image_state}\r\n").encode_utf16() {
            ini.extend(u.to_le_bytes());
        }
        fs::write(r.join("Windows/Setup/State/State.ini"), ini).unwrap();
        fs::create_dir_all(r.join("Users/Élève 日本語")).unwrap();
        fs::write(
            r.join("Windows/System32/ntoskrnl.exe"),
            pseudo_random(2_000_000, 5),
        )
        .unwrap();
        fs::write(r.join("Users/Élève 日本語/notes ☃ 😀.txt"), "bonjour\n").unwrap();
        // A named stream (what a browser's Zone.Identifier is).
        fs::write(r.join("Users/setup.exe"), "MZ").unwrap();
        fs::write(
            r.join("Users/setup.exe:Zone.Identifier"),
            "[ZoneTransfer]\r\nZoneId=3\r\n",
        )
        .unwrap();
        // Hard links and a symlink (a reparse point).
        fs::hard_link(
            r.join("Windows/System32/ntoskrnl.exe"),
            r.join("Windows/ntoskrnl-link.exe"),
        )
        .unwrap();
        symlink("Windows/System32", r.join("sys32")).unwrap();
        // A compressed folder and a file compressed in it.
        fs::create_dir(r.join("Compressed")).unwrap();
        set_xattr(
            &r.join("Compressed"),
            "system.ntfs_attrib_be",
            &0x800u32.to_be_bytes(),
        );
        fs::write(r.join("Compressed/log.txt"), "journal ".repeat(50_000)).unwrap();
        // A DOS (8.3) name and a restrictive ACL-bearing attribute set (hidden, system).
        fs::write(r.join("Program Files long name.txt"), "x").unwrap();
        set_xattr(
            &r.join("Program Files long name.txt"),
            "system.ntfs_dos_name",
            b"PROGRA~1.TXT",
        );
        set_xattr(
            &r.join("Users/setup.exe"),
            "system.ntfs_attrib_be",
            &0x26u32.to_be_bytes(),
        );
        // A security descriptor copied from another file than the default.
        let acl = get_xattr(r, "system.ntfs_acl").expect("the root has a security descriptor");
        set_xattr(&r.join("Users/Élève 日本語"), "system.ntfs_acl", &acl);
    }
    {
        let rec = PartDev::new(&disk, 4, false);
        sh(Command::new("mkntfs").args(["-Q", "-F", "-q", "-L", "Recovery", &rec.0]));
        let m = FsMount::ntfs(&rec.0, "rw");
        fs::create_dir_all(m.dir.path().join("Recovery/WindowsRE")).unwrap();
        fs::write(
            m.dir.path().join("Recovery/WindowsRE/Winre.wim"),
            pseudo_random(500_000, 9),
        )
        .unwrap();
    }
    disk
}

fn windows_layout() -> DiskLayout {
    let part = |n: u32, start: u64, size: Option<u64>, ty: &str, fs: Filesystem| Partition {
        number: n,
        start_mib: start,
        size_mib: size,
        type_code: ty.into(),
        uuid: None,
        name: None,
        attrs: None,
        filesystem: fs,
        fs_label: None,
        fs_uuid: None,
        mountpoint: None,
        stream: None,
    };
    DiskLayout {
        label: PartitionLabel::Gpt,
        disk_guid: None,
        partitions: vec![
            part(1, 1, Some(64), ESP, Filesystem::Vfat),
            part(2, 65, Some(16), MSR, Filesystem::None),
            part(3, 81, None, BASIC, Filesystem::Ntfs),
            part(4, 823, Some(200), RECOVERY, Filesystem::Ntfs),
        ],
    }
}

/// A Windows master disk built in `tmp`, captured as `b204/win.1` through the agent.
fn captured_windows_master() -> (Lab, tempfile::TempDir, PathBuf) {
    let lab = Lab::new();
    ensure_windows_tools();
    let tmp = tempfile::tempdir().unwrap();
    let master = windows_master(tmp.path());
    let t = lab
        .svc
        .add_capture("b204", "win.1", windows_layout(), template())
        .unwrap();
    let disk_arg = master.display().to_string();
    lab.agent_ok(&t, &["capture", "--disk", &disk_arg]);
    (lab, tmp, master)
}

/// The round trip of a Windows disk onto a larger one: the table's identity (types, GUIDs,
/// names, attribute bits, disk GUID), the Windows partition grown with the recovery partition
/// after it, the ESP's files and the NTFS metadata of every file.
#[test]
fn windows_disk_round_trip_onto_a_larger_disk() {
    let (lab, tmp, master) = captured_windows_master();
    let m = FsImageStore::for_workspace(lab.ws.path())
        .manifest("b204/win.1")
        .unwrap();
    let files: Vec<_> = m.streams().map(|s| s.file.as_str()).collect();
    assert_eq!(
        files,
        ["boot.bin", "p1.vfat.zst", "p3.ntfs.zst", "p4.ntfs.zst"]
    );

    let b_dir = tmp.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    let target = sparse_disk(&b_dir, 1536 * MIB, Some(0xAB));
    deploy_ok(&lab, "b204/win.1", &target);

    let (a, b) = (sfdisk_json(&master), sfdisk_json(&target));
    assert_eq!(a["id"], b["id"], "disk GUID");
    for n in 0..4 {
        for k in ["type", "uuid", "name", "attrs"] {
            assert_eq!(
                a["partitions"][n][k],
                b["partitions"][n][k],
                "partition {}: {k}",
                n + 1
            );
        }
    }
    let (pa, pb) = (&a["partitions"], &b["partitions"]);
    assert_eq!(
        pa[3]["size"], pb[3]["size"],
        "the recovery partition keeps its size"
    );
    assert_eq!(pb[3]["start"].as_u64().unwrap(), (1536 - 1 - 200) * 2048);
    assert_eq!(
        pb[2]["start"].as_u64().unwrap() + pb[2]["size"].as_u64().unwrap(),
        pb[3]["start"].as_u64().unwrap(),
        "the Windows partition grows up to the recovery partition"
    );

    assert_ntfs_volumes_match(&master, &target);
    // The ESP: same FAT type, serial and label, same files with their times.
    let (ea, eb) = (
        PartDev::new(&master, 1, true),
        PartDev::new(&target, 1, true),
    );
    for tag in ["VERSION", "UUID", "LABEL"] {
        assert_eq!(blkid(&ea.0, tag), blkid(&eb.0, tag), "ESP {tag}");
    }
    assert_eq!(blkid(&eb.0, "VERSION"), "FAT32");
    let (fa, fb) = (esp_files(&ea.0), esp_files(&eb.0));
    assert!(fa.iter().any(|l| l.contains("bootx64.efi")), "{fa:?}");
    if let Some(d) = first_difference(&fa, &fb) {
        panic!("ESP differs: {d}");
    }

    let win = PartDev::new(&target, 3, true);
    let info = sh(Command::new("ntfsresize").args(["--info", "--force", &win.0]));
    let info = String::from_utf8_lossy(&info.stdout);
    let vol = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Current volume size:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap();
    let part = pb[2]["size"].as_u64().unwrap() * 512;
    assert!(
        vol + MIB > part,
        "the NTFS volume ({vol}) does not fill its partition ({part})"
    );
}

/// Every NTFS file's metadata, on both NTFS volumes of two Windows disks (the deployed one
/// with the image marker parc writes); volume serials and labels.
fn assert_ntfs_volumes_match(master: &Path, target: &Path) {
    for n in [3, 4] {
        let (da, db) = (PartDev::new(master, n, true), PartDev::new(target, n, true));
        let check = sh(Command::new("ntfsfix").args(["--no-action", &db.0]));
        let check = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.contains("Checking the alternate boot sector... OK"),
            "partition {n}: {check}"
        );
        let opts = "ro,streams_interface=xattr";
        let (ma, mb) = (FsMount::ntfs(&da.0, opts), FsMount::ntfs(&db.0, opts));
        let (la, mut lb) = (ntfs_metadata(ma.dir.path()), ntfs_metadata(mb.dir.path()));
        assert!(la.len() > 3, "{la:?}");
        if n == 3 {
            // What the deploy adds: the image marker in ProgramData (whose times it changes).
            let marker = lb
                .iter()
                .position(|l| l.starts_with("ProgramData/parc-image-id:"));
            lb.remove(marker.expect("the image marker on the Windows volume"));
            for (a, b) in la.iter().zip(lb.iter_mut()) {
                if a.starts_with("ProgramData:") && b.starts_with("ProgramData:") {
                    b.clone_from(a);
                }
            }
        }
        if let Some(d) = first_difference(&la, &lb) {
            panic!("partition {n} differs: {d}");
        }
        assert_eq!(blkid(&da.0, "UUID"), blkid(&db.0, "UUID"), "volume serial");
        assert_eq!(blkid(&da.0, "LABEL"), blkid(&db.0, "LABEL"));
    }
}

/// A Windows workstation reimaged: its NTFS volumes seed the deploy (partclone reads them as
/// a capture would); only the chunks that changed are fetched, and the volumes are the
/// image's again.
#[test]
fn a_windows_reimage_seeds_from_the_ntfs_volumes_on_the_disk() {
    let (lab, tmp, master) = captured_windows_master();
    let target = sparse_disk(tmp.path(), 1536 * MIB, Some(0xAB));
    deploy_ok(&lab, "b204/win.1", &target);
    let m = FsImageStore::for_workspace(lab.ws.path())
        .manifest("b204/win.1")
        .unwrap();
    let ntfs: u64 = m
        .streams()
        .filter(|s| s.file.ends_with(".ntfs.zst"))
        .map(|s| s.size)
        .sum();
    {
        // Windows ran: a file changed, one added, one removed.
        let win = PartDev::new(&target, 3, false);
        let mnt = FsMount::ntfs(&win.0, "rw");
        let root = mnt.dir.path();
        let some = ntfs_paths(root)
            .into_iter()
            .map(|p| p.trim_start_matches('/').to_string())
            .filter(|p| !p.is_empty() && !p.contains("parc") && root.join(p).is_file())
            .collect::<Vec<_>>();
        assert!(some.len() >= 2, "{some:?}");
        fs::write(root.join(&some[0]), pseudo_random(300_000, 3)).unwrap();
        fs::remove_file(root.join(&some[1])).unwrap();
        fs::write(root.join("nouveau.txt"), pseudo_random(100_000, 4)).unwrap();
    }
    let t = lab.svc.add_deploy("b204/win.1", "b204-pc09").unwrap();
    let out = lab.agent_ok(&t, &["deploy", "--target", &target.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fetched: u64 = lab
        .svc
        .access
        .entries()
        .iter()
        .filter(|e| e.task == t.id && e.path.contains("/chunks/"))
        .map(|e| e.bytes)
        .sum();
    let delivery = lab
        .svc
        .state(&t.id)
        .unwrap()
        .report
        .unwrap()
        .delivery
        .unwrap();
    eprintln!(
        "windows reimage: {fetched} bytes of chunks fetched, NTFS streams {ntfs} bytes, {} found on the disk",
        delivery.seeded_bytes
    );
    assert!(delivery.seeded_bytes > 0, "nothing seeded: {stderr}");
    // The volumes were compared with what the deploy recorded of their MFT, not read whole.
    assert!(delivery.recorded, "the record was not used: {stderr}");
    assert!(
        stderr.contains("p3.ntfs.zst: ") && fetched > 0,
        "the changed Windows volume was not seeded: {stderr}"
    );
    assert!(
        fetched * 4 < ntfs,
        "fetched {fetched} bytes of chunks for {ntfs} bytes of NTFS streams: {stderr}"
    );
    assert_ntfs_volumes_match(&master, &target);
}

/// A flipped bit in an NTFS stream: the deploy fails, naming it, and the disk has no table.
#[test]
fn flipped_bit_in_an_ntfs_stream_is_refused() {
    let (lab, tmp, _master) = captured_windows_master();
    let chunk = flip_a_chunk(&lab, "b204/win.1", "p3.ntfs.zst");
    let v = String::from_utf8(lab.parc(&["image", "verify", "b204/win.1"]).stdout).unwrap();
    assert!(v.contains("BROKEN") && v.contains(&chunk), "{v}");
    let b_dir = tmp.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    let target = sparse_disk(&b_dir, 1536 * MIB, Some(0xAB));
    let t = lab.svc.add_deploy("b204/win.1", "b204-pc01").unwrap();
    let target_arg = target.display().to_string();
    let out = lab
        .agent(&lab.url(), &t, &["deploy", "--target", &target_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = lab.svc.state(&t.id).unwrap().report.unwrap();
    assert!(
        report.message.contains("p3.ntfs.zst") && report.message.contains("corrupt"),
        "{report:?}"
    );
    let (first, last) = first_and_last_mib(&target);
    assert!(first.iter().all(|&b| b == 0), "the first MiB was written");
    assert!(
        last.iter().all(|&b| b == 0),
        "the backup GPT area was not wiped"
    );
    assert_eq!(partition_table(&target), None);
}

/// A Windows master that sysprep has not generalised is refused before any stream is sent:
/// the task fails naming the state, and the store has no image.
#[test]
fn a_windows_master_not_generalised_is_not_captured() {
    let lab = Lab::new();
    ensure_windows_tools();
    let tmp = tempfile::tempdir().unwrap();
    let master = windows_master_in_state(tmp.path(), "IMAGE_STATE_COMPLETE");
    let t = lab
        .svc
        .add_capture("b204", "win.1", windows_layout(), template())
        .unwrap();
    let disk_arg = master.display().to_string();
    let out = lab
        .agent(&lab.url(), &t, &["capture", "--disk", &disk_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = lab.svc.state(&t.id).unwrap().report.unwrap();
    assert!(
        report.message.contains("not generalised")
            && report.message.contains("IMAGE_STATE_COMPLETE"),
        "{report:?}"
    );
    assert!(
        lab.svc
            .state(&t.id)
            .unwrap()
            .progress
            .is_none_or(|p| p.bytes == 0),
        "a stream was sent"
    );
    assert!(!lab.ws.path().join("images/b204/win.1").exists());
}

/// A Windows deploy with an answer file: written as `Windows\Panther\unattend.xml` with the
/// image marker on the deployed system volume (read back with ntfscat), fetched once: the
/// same task run again is refused before the disk is touched.
#[test]
fn a_windows_deploy_writes_its_answer_file_fetched_once() {
    let (lab, tmp, _master) = captured_windows_master();
    let b_dir = tmp.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    let target = sparse_disk(&b_dir, 1536 * MIB, Some(0xAB));
    let answer = b"<?xml version=\"1.0\"?><unattend>B204-PC01 &amp; blob</unattend>\r\n".to_vec();
    let t = lab
        .svc
        .add_deploy_with(
            "b204/win.1",
            "b204-pc01",
            Some(parc::ports::SecretBytes(answer.clone())),
            None,
            false,
        )
        .unwrap();
    let target_arg = target.display().to_string();
    lab.agent_ok(&t, &["deploy", "--target", &target_arg]);
    {
        let win = PartDev::new(&target, 3, true);
        let cat = |p: &str| sh(Command::new("ntfscat").args(["-f", &win.0, p])).stdout;
        assert_eq!(cat("/Windows/Panther/unattend.xml"), answer);
        assert_eq!(cat("/ProgramData/parc-image-id"), b"b204/win.1\r\n");
    }
    let before = parc::steps::cache::sha256_of(&target).unwrap();
    let out = lab
        .agent(&lab.url(), &t, &["deploy", "--target", &target_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = lab.svc.state(&t.id).unwrap().report.unwrap();
    assert!(
        report.message.contains("already fetched once"),
        "{report:?}"
    );
    assert_eq!(
        parc::steps::cache::sha256_of(&target).unwrap(),
        before,
        "the refused deploy touched the disk"
    );
}

// --- WIM export and import -------------------------------------------------------------------

/// Every path of an NTFS volume mounted by ntfs-3g, as `wimlib-imagex dir` writes them.
fn ntfs_paths(root: &Path) -> Vec<String> {
    let mut out = vec!["/".to_string()];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            out.push(format!("/{}", r.display()));
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            }
        }
    }
    out.sort();
    out
}

fn wim_paths(wim: &Path) -> Vec<String> {
    let out = sh(Command::new("wimlib-imagex").arg("dir").arg(wim).arg("1"));
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The example lycée's recipes beside the lab's image store, so exports find the room's name.
fn with_example_recipes(lab: &Lab) {
    let ex = repo().join("recipes/lycee-mistral");
    for f in ["site.toml", "models.toml", "devices.csv"] {
        fs::copy(ex.join(f), lab.ws.path().join(f)).unwrap();
    }
    fs::create_dir_all(lab.ws.path().join("rooms")).unwrap();
    for e in fs::read_dir(ex.join("rooms")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), lab.ws.path().join("rooms").join(e.file_name())).unwrap();
    }
}

/// `parc image export --wim`: a WIM that wimlib verifies, named from the recipe, holding every
/// file of the master's Windows partition (with the named stream).
#[test]
fn an_exported_wim_verifies_and_holds_the_windows_partition() {
    let (lab, tmp, master) = captured_windows_master();
    with_example_recipes(&lab);
    let wim = tmp.path().join("b204.wim");
    let wim_arg = wim.display().to_string();
    let o = lab.parc(&["image", "export", "b204/win.1", "--wim", &wim_arg]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!tmp.path().join("b204.wim.partial").exists());
    sh(Command::new("wimlib-imagex").arg("verify").arg(&wim));
    let info = sh(Command::new("wimlib-imagex").arg("info").arg(&wim));
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.lines()
            .any(|l| l.starts_with("Image Count:") && l.ends_with(" 1")),
        "{info}"
    );
    assert!(
        info.contains("Name:                   b204 — Mathématiques / SES (win.1)"),
        "{info}"
    );
    assert!(
        info.contains("Description:            Image parc b204/win.1"),
        "{info}"
    );
    let dev = PartDev::new(&master, 3, true);
    let m = FsMount::ntfs(&dev.0, "ro");
    let (want, got) = (ntfs_paths(m.dir.path()), wim_paths(&wim));
    assert!(
        want.iter().any(|p| p.ends_with("notes ☃ 😀.txt")),
        "{want:?}"
    );
    if let Some(d) = first_difference(&want, &got) {
        panic!("the WIM's files differ from the partition's: {d}");
    }
    let streams = sh(Command::new("wimlib-imagex")
        .arg("dir")
        .arg(&wim)
        .arg("1")
        .args(["--path=/Users/setup.exe", "--detailed"]));
    let streams = String::from_utf8_lossy(&streams.stdout);
    assert!(streams.contains("Zone.Identifier"), "{streams}");

    // The export's scratch volume is gone with it.
    let store_root = lab.ws.path().join("images");
    let scratch = |root: &Path| -> Vec<String> {
        fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".scratch-"))
            .collect()
    };
    assert_eq!(scratch(&store_root), Vec::<String>::new());

    // An image that does not exist, or a folder that does not: user errors, nothing written.
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let wim2 = out_dir.join("x.wim").display().to_string();
    let o = lab.parc(&["image", "export", "b204/nope", "--wim", &wim2]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let missing = tmp.path().join("no/such/dir/x.wim").display().to_string();
    let o = lab.parc(&["image", "export", "b204/win.1", "--wim", &missing]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{o:?}"
    );
    assert!(fs::read_dir(&out_dir).unwrap().next().is_none());
    assert_eq!(scratch(&store_root), Vec::<String>::new());

    // A scratch folder a killed export left behind: prune removes it, images stay.
    fs::create_dir(store_root.join(".scratch-export-killed")).unwrap();
    let o = lab.parc(&["image", "prune", "--keep", "5"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(scratch(&store_root), Vec::<String>::new());
    assert!(store_root.join("b204/win.1/manifest.toml").exists());
}

/// `parc image import --wim`: a WIM built here becomes a Windows base image whose Windows
/// partition is the WIM's tree; deployed onto a disk, the files and named stream are there.
#[test]
fn a_wim_imports_as_a_windows_base_image_that_deploys() {
    let lab = Lab::new();
    ensure_windows_tools();
    let tmp = tempfile::tempdir().unwrap();
    // A WIM of a small volume, as a manufacturer's install.wim is one of a volume.
    let vol = tmp.path().join("src.img");
    fs::File::create(&vol).unwrap().set_len(300 * MIB).unwrap();
    sh(Command::new("mkntfs").args(["-Q", "-F", "-q"]).arg(&vol));
    {
        let m = FsMount::ntfs(vol.to_str().unwrap(), "streams_interface=windows");
        let r = m.dir.path();
        fs::create_dir_all(r.join("ProgramData")).unwrap();
        fs::create_dir_all(r.join("Windows/System32")).unwrap();
        fs::write(
            r.join("Windows/System32/ntoskrnl.exe"),
            pseudo_random(3_000_000, 21),
        )
        .unwrap();
        fs::write(r.join("Windows/setup.exe"), "MZ").unwrap();
        fs::write(
            r.join("Windows/setup.exe:Zone.Identifier"),
            "[ZoneTransfer]\r\n",
        )
        .unwrap();
    }
    let wim = tmp.path().join("install.wim");
    sh(Command::new("wimlib-imagex")
        .arg("capture")
        .arg(&vol)
        .arg(&wim)
        .arg("Windows 11 Education"));
    let (wim_arg, layout) = (
        wim.display().to_string(),
        repo().join("images/base/windows-layout.toml"),
    );
    let o = lab.parc(&[
        "image",
        "import",
        "base/win11-edu",
        "--wim",
        &wim_arg,
        "--index",
        "1",
        "--layout",
        layout.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = FsImageStore::for_workspace(lab.ws.path())
        .manifest("base/win11-edu")
        .unwrap();
    assert_eq!(m.os_family, parc::image::manifest::OsFamily::Windows);
    let files: Vec<_> = m.streams().map(|s| s.file.as_str()).collect();
    assert_eq!(files, ["p3.ntfs.zst"]);
    assert_eq!(m.disk.partitions[2].fs_label.as_deref(), Some("Windows"));

    // An index the WIM does not have: a user error naming it.
    let o = lab.parc(&[
        "image",
        "import",
        "base/x",
        "--wim",
        &wim_arg,
        "--index",
        "4",
        "--layout",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");

    let b_dir = tmp.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    let target = sparse_disk(&b_dir, 2048 * MIB, None);
    deploy_ok(&lab, "base/win11-edu", &target);
    let t = sfdisk_json(&target);
    assert_eq!(t["partitions"].as_array().unwrap().len(), 4);
    let esp = PartDev::new(&target, 1, true);
    assert_eq!(blkid(&esp.0, "VERSION"), "FAT32");
    let win = PartDev::new(&target, 3, true);
    let mnt = FsMount::ntfs(&win.0, "ro,streams_interface=xattr");
    let r = mnt.dir.path();
    assert_eq!(
        fs::read(r.join("Windows/System32/ntoskrnl.exe")).unwrap(),
        pseudo_random(3_000_000, 21)
    );
    let zone = get_xattr(&r.join("Windows/setup.exe"), "user.Zone.Identifier");
    assert_eq!(zone.as_deref(), Some(&b"[ZoneTransfer]\r\n"[..]));
}

/// The inode tables read from an ext4 device give what `lstat` gives for every path: on a
/// filesystem made by mkfs.ext4's defaults (64bit, flex_bg, metadata_csum, 256-byte inodes),
/// with files, folders, symlinks, device nodes, hard links, a sparse file over 4 GiB and a
/// removed file, read after unmounting and read again while mounted.
#[test]
fn ext4_inode_tables_read_as_lstat_shows_them() {
    use parc::image::ext4::InodeTables;
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    fs::File::create(&img).unwrap().set_len(512 * MIB).unwrap();
    sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
    let lo =
        String::from_utf8(sh(Command::new("losetup").args(["--find", "--show"]).arg(&img)).stdout)
            .unwrap()
            .trim()
            .to_string();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = || sh(Command::new("mount").arg(&lo).arg(&mnt));
    let umount = || sh(Command::new("umount").arg(&mnt));
    mount();
    special_tree(&mnt.join("special"));
    for d in 0..40 {
        let dir = mnt.join(format!("d{d:02}"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        for f in 0..60 {
            fs::write(
                dir.join(format!("f{f}")),
                pseudo_random(f * 37, (d * 100 + f) as u64),
            )
            .unwrap();
        }
        fs::hard_link(dir.join("f1"), dir.join("sub/link")).unwrap();
        fs::remove_file(dir.join("f2")).unwrap();
    }
    fs::File::create(mnt.join("big"))
        .unwrap()
        .set_len(5 << 30)
        .unwrap();
    // Every path's stamp as the kernel gives it.
    fn walk(p: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
        let md = fs::symlink_metadata(p).unwrap();
        let dir = md.is_dir();
        out.push((p.to_path_buf(), md));
        if dir {
            for e in fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    let mut seen = Vec::new();
    walk(&mnt, &mut seen);
    assert!(seen.len() > 2500, "{} paths", seen.len());
    let inos: Vec<u64> = seen.iter().map(|(_, md)| md.ino()).collect();
    let check = |when: &str| {
        let t = InodeTables::open(Path::new(&lo))
            .unwrap()
            .expect("an ext4 filesystem");
        let got = t.stamps(&inos).unwrap();
        for (p, md) in &seen {
            let s = got.get(&md.ino()).unwrap_or_else(|| {
                panic!("{when}: inode {} of {} not read", md.ino(), p.display())
            });
            assert_eq!(
                (s.ino, s.mode, s.size, s.ctime, s.ctime_nsec),
                (md.ino(), md.mode(), md.size(), md.ctime(), md.ctime_nsec()),
                "{when}: {}",
                p.display()
            );
        }
        // Inodes not in use (freed ones first: a removed file's) are not in the map.
        let free: Vec<u64> = (12..).filter(|n| !inos.contains(n)).take(50).collect();
        assert!(t.stamps(&free).unwrap().is_empty(), "{when}");
    };
    umount();
    check("unmounted");
    mount();
    check("mounted");
    umount();
    sh(Command::new("losetup").args(["-d", &lo]));
}
