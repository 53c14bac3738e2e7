//! The fault campaign's network part (issue 15, R3): parc's real deploy path, without QEMU,
//! under a broken network. parc's image routes (`parc::netboot::serve::router`, what `parc serve`
//! mounts) serve a real captured image from one network namespace; the real `parc-agent
//! deploy` runs in another, joined by a veth pair whose server side is shaped by `tc tbf`
//! (80 Mbit/s: the 48 MiB stream takes about 5 s, so every fault lands mid-stream), and
//! writes to a loop device over a sparse file.
//!
//! Tries: the link cut for 10 s on the server's side and on the workstation's side; 5% of the
//! packets lost (`tc netem` under the tbf where the kernel has sch_netem, else nftables'
//! random numbers on the workstation's input, as `scripts/bench-room.sh` does); the agent
//! SIGKILLed mid-stream, and SIGKILLed while the link is down, each followed by a deploy again
//! on the same disk (a new task, after detaching what the killed agent left, as a reboot
//! would); the stream's connection black-holed, and the server's link down, past what the
//! agent waits (`--retries 0`: one 30 s read timeout): clean failures, both reported to the
//! endpoint (the second once the link is back: the agent retries its final report). Each try
//! prints one line, then
//! `faults_net: N tries, S survived, L lost`. Survived: the deploy finished with the image's
//! files (and boot code), or failed (non-zero exit) leaving a disk that cannot boot. Lost: a
//! bootable half-written disk, or a success whose content differs. The cuts, the loss and the
//! deploys after a kill must moreover finish.
//!
//! Not bootable, in parc's deploy (`src/image/deploy.rs`): the deploy zeroes the disk's first
//! MiB (MBR boot code, MBR signature, protective MBR, primary GPT) and last MiB (backup GPT)
//! before anything else, and writes the partition table, the boot area and syslinux's MBR boot
//! code (with the root partition's LegacyBIOSBootable attribute) only after every stream
//! verified; a failure zeroes both again. So a disk is not bootable when [`boot_traces`]
//! finds nothing: both MiBs all zero (no boot code for a BIOS, no GPT for a UEFI firmware)
//! and no partition table sfdisk reads. The disks start with both MiBs filled with 0xAB, so
//! a deploy that never wiped them is seen too.
//!
//! Root only (namespaces, loop devices, mkfs, mount): it fails, never skips, without root.
//! Run: `cargo test --test faults_net -- --nocapture`.

mod drift;
use drift::pseudo_random;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parc::agent::wire::FinalReport;
use parc::image::manifest::{DiskLayout, OsFamily};
use parc::image::store::FsImageStore;
use parc::netboot::serve::local::LocalServer;
use parc::netboot::serve::{CaptureTemplate, ImagesService, TaskTicket};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const SRV_ADDR: &str = "10.87.0.1";
const WS_ADDR: &str = "10.87.0.2";
/// The server's side of the link: 48 MiB in about 5 s.
const RATE: &str = "80mbit";
const IMAGE: &str = "b204/2026-12-01.1";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &str) {
    sh(Command::new("ip").args(args.split_whitespace()));
}

fn ns_cmd(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// The endpoint's namespace and the workstation's, one veth pair between them (`eth0` on
/// both sides); removed, with whatever still runs in them, on drop.
struct Net {
    prefix: String,
    /// How the loss is made, once set.
    loss: Option<Loss>,
    /// Whether the workstation's nftables table exists.
    nft: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    Netem,
    Nft,
}

impl Net {
    fn up() -> Self {
        let net = Net {
            prefix: format!("parcfn-{}", std::process::id()),
            loss: None,
            nft: false,
        };
        let (s, w) = (net.srv(), net.ws());
        ip(&format!("netns add {s}"));
        ip(&format!("netns add {w}"));
        ip(&format!(
            "-n {s} link add eth0 type veth peer name eth0 netns {w}"
        ));
        for (ns, addr) in [(&s, SRV_ADDR), (&w, WS_ADDR)] {
            ip(&format!("-n {ns} addr add {addr}/24 dev eth0"));
            ip(&format!("-n {ns} link set eth0 up"));
            ip(&format!("-n {ns} link set lo up"));
        }
        // One wire packet per packet the stack handles (no 64 KiB GSO segments): a loss
        // of 5% is 5% of the packets on the wire.
        ip(&format!("-n {s} link set dev eth0 gso_max_segs 1"));
        // What the endpoint sends (the image) goes at RATE, as bench-deploy.sh shapes it.
        sh(ns_cmd(&s, "tc").args([
            "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "tbf", "rate", RATE, "burst",
            "64kb", "latency", "50ms",
        ]));
        net
    }

    fn srv(&self) -> String {
        format!("{}-srv", self.prefix)
    }

    fn ws(&self) -> String {
        format!("{}-ws", self.prefix)
    }

    fn link(&self, ns: &str, up: bool) {
        ip(&format!(
            "-n {ns} link set eth0 {}",
            if up { "up" } else { "down" }
        ));
    }

    /// Drops `percent`% of what the endpoint sends: netem under the tbf where the kernel has
    /// sch_netem, else nftables on the workstation's input (the packet crossed the wire and
    /// is lost before TCP sees it).
    fn set_loss(&mut self, percent: u32) -> Loss {
        let netem = ns_cmd(&self.srv(), "tc")
            .args([
                "qdisc",
                "add",
                "dev",
                "eth0",
                "parent",
                "1:1",
                "handle",
                "10:",
                "netem",
                "loss",
                &format!("{percent}%"),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        let how = if netem {
            Loss::Netem
        } else {
            self.nft_drop(&format!(
                "ip saddr {SRV_ADDR} numgen random mod 100 < {percent} counter drop"
            ));
            Loss::Nft
        };
        self.loss = Some(how);
        how
    }

    /// Adds `rule` to the workstation's input chain (nftables, installed if missing).
    fn nft_drop(&mut self, rule: &str) {
        let w = self.ws();
        if !self.nft {
            let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            sh(Command::new(repo.join("scripts/ensure-packages.sh")).arg("nftables"));
            sh(ns_cmd(&w, "nft").args(["add", "table", "inet", "parcfn"]));
            sh(ns_cmd(&w, "nft").args([
                "add",
                "chain",
                "inet",
                "parcfn",
                "in",
                "{ type filter hook input priority 0; }",
            ]));
            self.nft = true;
        }
        let rule = format!("add rule inet parcfn in {rule}");
        sh(ns_cmd(&w, "nft").args(rule.split_whitespace()));
    }

    fn clear_nft(&mut self) {
        if std::mem::take(&mut self.nft) {
            sh(ns_cmd(&self.ws(), "nft").args(["delete", "table", "inet", "parcfn"]));
        }
    }

    /// The workstation's local port of its connection to the endpoint that received the
    /// most bytes: the image stream's.
    fn stream_port(&self, srv_port: u16) -> u16 {
        let out = sh(ns_cmd(&self.ws(), "ss").args([
            "-Htni",
            "state",
            "established",
            &format!("( dport = :{srv_port} )"),
        ]));
        let mut best = (0u64, 0u16);
        let mut port = 0u16;
        for line in out.lines() {
            if !line.starts_with(char::is_whitespace) {
                let local = line.split_whitespace().nth(2).unwrap_or_default();
                port = local.rsplit(':').next().unwrap().parse().unwrap_or(0);
            } else if let Some(n) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bytes_received:"))
            {
                let n: u64 = n.parse().unwrap_or(0);
                if n > best.0 {
                    best = (n, port);
                }
            }
        }
        assert!(best.1 != 0, "no connection receiving the stream: {out}");
        best.1
    }

    /// Packets dropped so far (nftables' counter; None with netem, which tc counts apart).
    fn dropped(&self) -> Option<u64> {
        if self.loss != Some(Loss::Nft) {
            return None;
        }
        let out = sh(ns_cmd(&self.ws(), "nft").args(["list", "chain", "inet", "parcfn", "in"]));
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "packets")
            .and_then(|w| w[1].parse().ok())
    }

    fn clear_loss(&mut self) {
        match self.loss.take() {
            Some(Loss::Netem) => {
                sh(ns_cmd(&self.srv(), "tc")
                    .args(["qdisc", "del", "dev", "eth0", "parent", "1:1"]));
            }
            Some(Loss::Nft) => self.clear_nft(),
            None => {}
        }
    }

    /// SIGKILLs what still runs in namespace `ns` (what the killed agent started).
    fn sweep(&self, ns: &str) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [self.ws(), self.srv()] {
            self.sweep(&ns);
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// A workstation's disk: a loop device over a sparse file whose first and last MiB hold
/// 0xAB. Detached on drop, with the loop devices a killed agent left on it.
struct Disk {
    dev: String,
}

impl Disk {
    fn new(dir: &Path, name: &str, size: u64) -> Self {
        let file = dir.join(name);
        let f = fs::File::create(&file).unwrap();
        f.set_len(size).unwrap();
        f.write_all_at(&vec![0xAB; MIB as usize], 0).unwrap();
        f.write_all_at(&vec![0xAB; MIB as usize], size - MIB)
            .unwrap();
        drop(f);
        let dev = sh(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file))
        .trim()
        .to_string();
        Disk { dev }
    }

    fn path(&self) -> &Path {
        Path::new(&self.dev)
    }

    /// What a reboot does to what a killed agent left: its partition loop devices are
    /// detached (its mounts lived in its own mount namespace, gone with it).
    fn release_leftovers(&self) -> usize {
        let out = Command::new("losetup")
            .args([
                "--noheadings",
                "--output",
                "NAME",
                "--associated",
                &self.dev,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut n = 0;
        for d in out.split_whitespace() {
            let _ = Command::new("umount").arg(d).stderr(Stdio::null()).status();
            let _ = Command::new("losetup").args(["-d", d]).status();
            n += 1;
        }
        n
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.release_leftovers();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Everything on `disk` a firmware could boot from; empty: not bootable (see the module's
/// comment).
fn boot_traces(disk: &Path) -> Vec<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::open(disk).unwrap();
    // A block device's metadata says 0 bytes: its size is where its end is.
    let size = f.seek(SeekFrom::End(0)).unwrap();
    let mut first = vec![0u8; MIB as usize];
    let mut last = vec![0u8; MIB as usize];
    f.read_exact_at(&mut first, 0).unwrap();
    f.read_exact_at(&mut last, size - MIB).unwrap();
    let mut traces = Vec::new();
    if first[..440].iter().any(|&b| b != 0) {
        traces.push("boot code in the MBR's first 440 bytes".to_string());
    }
    if first[510..512] == [0x55, 0xAA] {
        traces.push("an MBR signature".to_string());
    }
    if &first[512..520] == b"EFI PART" {
        traces.push("a primary GPT header".to_string());
    }
    if &last[last.len() - 512..][..8] == b"EFI PART" {
        traces.push("a backup GPT header".to_string());
    }
    let nonzero = |b: &[u8]| b.iter().filter(|&&x| x != 0).count();
    let (a, b) = (nonzero(&first), nonzero(&last));
    if a + b > 0 {
        traces.push(format!(
            "{a} non-zero bytes in the first MiB, {b} in the last"
        ));
    }
    if let Some(t) = partition_table(disk) {
        traces.push(format!("a partition table: {}", t.replace('\n', "; ")));
    }
    traces
}

fn partition_table(disk: &Path) -> Option<String> {
    let out = Command::new("sfdisk").arg("-d").arg(disk).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// sha256 of every regular file under `root` (relative path → hex), and the other entries
/// (directories, symlinks) with an empty digest.
fn digests(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(p);
                out.insert(format!("{rel}/"), String::new());
            } else if ft.is_file() {
                out.insert(rel, hex::encode(Sha256::digest(fs::read(&p).unwrap())));
            } else {
                out.insert(rel, String::new());
            }
        }
    }
    out
}

/// Partition 1 of `disk`, checked by `fsck.ext4 -n -f` and mounted read-only.
struct Mounted {
    dir: tempfile::TempDir,
    dev: String,
    mounted: bool,
}

impl Mounted {
    fn root(disk: &Path) -> Result<Self, String> {
        let out = sh(Command::new("sfdisk").arg("-J").arg(disk));
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let p = &j["partitiontable"]["partitions"][0];
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let dev = sh(Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(format!("--offset={}", start * 512))
            .arg(format!("--sizelimit={}", size * 512))
            .arg(disk))
        .trim()
        .to_string();
        let mut m = Mounted {
            dir: tempfile::tempdir().unwrap(),
            dev,
            mounted: false,
        };
        let fsck = Command::new("fsck.ext4")
            .args(["-n", "-f", &m.dev])
            .output()
            .unwrap();
        if !fsck.status.success() {
            return Err(format!(
                "fsck.ext4 -n -f: {}",
                String::from_utf8_lossy(&fsck.stdout)
            ));
        }
        sh(Command::new("mount")
            .args(["-o", "ro", &m.dev])
            .arg(m.dir.path()));
        m.mounted = true;
        Ok(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Why the deployed disk is not the image (with its boot code), or Ok.
fn deployed_as_image(disk: &Path, tree: &Path, host: &str) -> Result<(), String> {
    let table = partition_table(disk).ok_or("no partition table")?;
    if !table.contains("label: gpt") || !table.contains("LegacyBIOSBootable") {
        return Err(format!("not a bootable GPT: {table}"));
    }
    let mut first = vec![0u8; 440];
    fs::File::open(disk)
        .unwrap()
        .read_exact_at(&mut first, 0)
        .unwrap();
    let gptmbr = fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    if first[..gptmbr.len()] != gptmbr[..] {
        return Err("the MBR boot code is not syslinux's gptmbr.bin".into());
    }
    let m = Mounted::root(disk)?;
    let root = m.dir.path();
    let mut want = digests(tree);
    let mut got = digests(root);
    // What the deploy writes besides the image's files.
    let written = [
        "lost+found/",
        "etc/parc/",
        "etc/parc/image-id",
        "etc/hostname",
        "boot/extlinux/ldlinux.sys",
        "boot/extlinux/ldlinux.c32",
    ];
    for w in written {
        want.remove(w);
        got.remove(w);
    }
    if want != got {
        let diff: Vec<String> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(*k) != got.get(*k))
            .take(5)
            .cloned()
            .collect();
        return Err(format!("files differ from the image's: {diff:?}"));
    }
    let marker = fs::read_to_string(root.join("etc/parc/image-id")).unwrap_or_default();
    if marker != format!("{IMAGE}\n") {
        return Err(format!("image marker {marker:?}"));
    }
    let hostname = fs::read_to_string(root.join("etc/hostname")).unwrap_or_default();
    if hostname != format!("{host}\n") {
        return Err(format!("hostname {hostname:?}"));
    }
    Ok(())
}

/// The image's tree: 48 MiB of incompressible files, a few small ones, an extlinux
/// configuration (so that the deploy installs the boot code: "bootable" is concrete).
fn image_tree(root: &Path) {
    fs::create_dir_all(root.join("data/sub")).unwrap();
    for i in 0..6u64 {
        let dir = if i % 2 == 0 { "data" } else { "data/sub" };
        fs::write(
            root.join(format!("{dir}/f{i}.bin")),
            pseudo_random(8 * MIB as usize, 1001 + 2 * i),
        )
        .unwrap();
    }
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), "master\n").unwrap();
    fs::write(root.join("etc/motd"), "salle b204\n".repeat(1000)).unwrap();
    fs::create_dir_all(root.join("boot/extlinux")).unwrap();
    fs::write(
        root.join("boot/extlinux/extlinux.conf"),
        "DEFAULT linux\nLABEL linux\n  KERNEL /boot/vmlinuz\n  APPEND root=LABEL=root ro\n",
    )
    .unwrap();
}

fn template() -> CaptureTemplate {
    CaptureTemplate {
        recipe_digest: format!("sha256:{}", "1".repeat(64)),
        software_digest: format!("sha256:{}", "2".repeat(64)),
        software: Vec::new(),
        hardware_model: "optiplex-7010".into(),
        os_family: OsFamily::Linux,
        captured_at: "2026-12-01T10:00:00Z".into(),
    }
}

/// Captures `tree` as IMAGE through the agent, on loopback.
fn capture(svc: &Arc<ImagesService>, tree: &Path) {
    let server = LocalServer::start(
        parc::netboot::serve::router(svc.clone()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (room, version) = IMAGE.split_once('/').unwrap();
    let t = svc
        .add_capture(
            room,
            version,
            DiskLayout::single_ext4_root(Some("root")),
            template(),
        )
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parc-agent"))
        .args(["capture", "--endpoint", &server.url(), "--task", &t.id])
        .arg("--source")
        .arg(format!("1={}", tree.display()))
        .env("PARC_AGENT_TOKEN", &t.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "capture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill();
}

/// The world the tries share.
struct Bench {
    net: Net,
    svc: Arc<ImagesService>,
    url: String,
    tree: PathBuf,
    tmp: PathBuf,
    total: u64,
    srv_port: u16,
}

/// One `parc-agent deploy` running in the workstation's namespace.
struct Agent {
    child: Option<Child>,
    ticket: TaskTicket,
    log: PathBuf,
    started: Instant,
}

impl Agent {
    fn bytes(&self, svc: &ImagesService) -> u64 {
        svc.state(&self.ticket.id)
            .and_then(|s| s.progress)
            .map_or(0, |p| p.bytes)
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a power cut or a crash would stop it.
    fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn wait(&mut self) -> (ExitStatus, f64) {
        let mut c = self.child.take().unwrap();
        let limit = Duration::from_secs(120);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return (s, self.started.elapsed().as_secs_f64());
            }
            if self.started.elapsed() > limit {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the agent ran over {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How one try ended.
enum Outcome {
    Survived(String),
    Lost(String),
}

impl Bench {
    fn agent(&self, host: &str, disk: &Disk, extra: &[&str]) -> Agent {
        let ticket = self.svc.add_deploy(IMAGE, host).unwrap();
        let log = self.tmp.join(format!("{}.log", ticket.id));
        let child = ns_cmd(&self.net.ws(), env!("CARGO_BIN_EXE_parc-agent"))
            .args(["deploy", "--endpoint", &self.url, "--task", &ticket.id])
            .args(["--report-every", "0.2", "--target", &disk.dev])
            .args(extra)
            .env("PARC_AGENT_TOKEN", &ticket.token)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            ticket,
            log,
            started: Instant::now(),
        }
    }

    /// Waits until the agent has received `fraction` of the stream (its progress reports).
    fn mid_stream(&self, a: &mut Agent, fraction: f64) -> u64 {
        let want = (self.total as f64 * fraction) as u64;
        wait_for(
            "the deploy to be mid-stream",
            Duration::from_secs(60),
            || {
                assert!(a.running(), "the agent stopped early:\n{}", a.log());
                a.bytes(&self.svc) >= want
            },
        );
        a.bytes(&self.svc)
    }

    fn report(&self, a: &Agent) -> Option<FinalReport> {
        self.svc.state(&a.ticket.id).and_then(|s| s.report)
    }

    /// Beyond surviving, for an agent that was to give up: it failed, and the endpoint knows
    /// it and why (its final report).
    fn gave_up_and_said_so(&self, a: &Agent, out: Outcome) -> Outcome {
        let report = self.report(a);
        match (&out, &report) {
            (Outcome::Survived(s), Some(r))
                if s.starts_with("failed") && !r.success && r.message.contains("gave up") =>
            {
                out
            }
            (Outcome::Lost(_), _) => out,
            (Outcome::Survived(s), _) => {
                let log = a.log();
                let tail: Vec<&str> = log.lines().rev().take(6).collect();
                Outcome::Lost(format!(
                    "the agent was to give up and report it: {s}; report {report:?}; its log ends (last first): {tail:#?}"
                ))
            }
        }
    }

    /// Judges a finished agent: its exit, its report, the disk.
    fn judge(&self, a: &mut Agent, disk: &Disk, host: &str) -> Outcome {
        let (status, secs) = a.wait();
        let report = self.report(a);
        let resumes = a.log().matches("resuming at byte").count();
        if status.success() {
            let reported = report.as_ref().is_some_and(|r| r.success);
            match deployed_as_image(disk.path(), &self.tree, host) {
                Ok(()) if reported => {
                    let sent = self.svc.access.bytes_sent_to(&a.ticket.id);
                    let seeded = report
                        .as_ref()
                        .and_then(|r| r.delivery.as_ref())
                        .map_or(0, |d| d.seeded_bytes);
                    Outcome::Survived(format!(
                        "finished in {secs:.1} s ({} MiB sent, {} MiB found on the disk, {resumes} resume(s)), the disk is the image (files, marker, boot code)",
                        sent >> 20,
                        seeded >> 20
                    ))
                }
                Ok(()) => Outcome::Lost(format!(
                    "exit 0 but the endpoint has no successful report: {report:?}"
                )),
                Err(e) => Outcome::Lost(format!("reported success but {e}")),
            }
        } else {
            let traces = boot_traces(disk.path());
            let said = report.map_or_else(
                || "no report reached the endpoint".to_string(),
                |r| format!("reported success={}: {}", r.success, short(&r.message)),
            );
            if traces.is_empty() {
                return Outcome::Survived(format!(
                    "failed cleanly after {secs:.1} s ({status}; {said}), the disk is not bootable"
                ));
            }
            // Bootable after a failure is fine only when the deploy did complete (the agent
            // then failed to say so: its report).
            match deployed_as_image(disk.path(), &self.tree, host) {
                Ok(()) => Outcome::Survived(format!(
                    "the deploy completed but the agent failed ({status}; {said}): the disk is the image"
                )),
                Err(e) => Outcome::Lost(format!(
                    "failed ({status}; {said}) leaving a bootable disk ({traces:?}) that is not the image: {e}"
                )),
            }
        }
    }
}

/// A report's message, cut for one line.
fn short(s: &str) -> String {
    const MAX: usize = 150;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Link cut for 10 s mid-stream on `side`'s end of the veth.
fn try_link_cut(b: &Bench, side: &str, ns: &str, n: usize) -> Outcome {
    let disk = Disk::new(&b.tmp, &format!("cut-{n}.img"), 256 * MIB);
    let host = format!("b204-pc{n:02}");
    let mut a = b.agent(&host, &disk, &[]);
    let at = b.mid_stream(&mut a, 0.3);
    b.net.link(ns, false);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let traces = boot_traces(disk.path());
    std::thread::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed()));
    let still = a.running();
    b.net.link(ns, true);
    assert!(
        still,
        "the deploy ended during the cut (not mid-deploy):\n{}",
        a.log()
    );
    if !traces.is_empty() {
        return Outcome::Lost(format!(
            "mid-deploy, with the {side} link down, the disk is bootable: {traces:?}"
        ));
    }
    eprintln!(
        "  {side} link down 10 s at {} of {} MiB",
        at >> 20,
        b.total >> 20
    );
    b.judge(&mut a, &disk, &host)
}

fn try_loss(b: &mut Bench, n: usize) -> Outcome {
    let how = b.net.set_loss(5);
    let disk = Disk::new(&b.tmp, &format!("loss-{n}.img"), 256 * MIB);
    let host = format!("b204-pc{n:02}");
    let mut a = b.agent(&host, &disk, &[]);
    let out = b.judge(&mut a, &disk, &host);
    eprintln!(
        "  5% loss by {how:?}: {} packets dropped",
        b.net
            .dropped()
            .map_or_else(|| "(tc counts)".into(), |d| d.to_string())
    );
    b.net.clear_loss();
    out
}

/// SIGKILL mid-stream (with the workstation's link down first when `cut`): the disk must not
/// boot; the next deploy on the same disk (a new task, after what a reboot clears) finishes.
fn try_kill(b: &Bench, cut: bool, n: usize) -> (Outcome, Outcome) {
    let disk = Disk::new(&b.tmp, &format!("kill-{n}.img"), 256 * MIB);
    let host = format!("b204-pc{n:02}");
    let mut a = b.agent(&host, &disk, &[]);
    let at = b.mid_stream(&mut a, 0.4);
    if cut {
        b.net.link(&b.net.ws(), false);
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(a.running(), "the deploy ended before the kill");
    a.kill();
    b.net.sweep(&b.net.ws());
    std::thread::sleep(Duration::from_millis(200));
    let traces = boot_traces(disk.path());
    if cut {
        b.net.link(&b.net.ws(), true);
    }
    let left = disk.release_leftovers();
    eprintln!(
        "  killed at {} of {} MiB{}; {left} loop device(s) it left detached",
        at >> 20,
        b.total >> 20,
        if cut { ", its link down" } else { "" }
    );
    let killed = if traces.is_empty() {
        Outcome::Survived("SIGKILLed mid-stream, the disk is not bootable".into())
    } else {
        Outcome::Lost(format!(
            "SIGKILLed mid-stream, the disk is bootable: {traces:?}"
        ))
    };
    let mut again = b.agent(&host, &disk, &[]);
    let rerun = b.judge(&mut again, &disk, &host);
    (killed, rerun)
}

/// The image stream's connection black-holed (nftables drops everything the workstation
/// receives on it) with `--retries 0`: after its 30 s read timeout the agent gives up, wipes
/// the disk and reports the failure over a new connection, which works.
fn try_stream_black_holed(b: &mut Bench, n: usize) -> Outcome {
    let disk = Disk::new(&b.tmp, &format!("black-hole-{n}.img"), 256 * MIB);
    let host = format!("b204-pc{n:02}");
    let mut a = b.agent(&host, &disk, &["--retries", "0"]);
    let at = b.mid_stream(&mut a, 0.3);
    let port = b.net.stream_port(b.srv_port);
    b.net.nft_drop(&format!(
        "tcp sport {} tcp dport {port} counter drop",
        b.srv_port
    ));
    eprintln!(
        "  the stream's connection (port {port}) black-holed at {} of {} MiB",
        at >> 20,
        b.total >> 20
    );
    let out = b.judge(&mut a, &disk, &host);
    b.net.clear_nft();
    b.gave_up_and_said_so(&a, out)
}

/// The server's link down longer than the agent waits for its stream (`--retries 0`: one
/// 30 s read timeout): the deploy fails and leaves a disk that does not boot. Its report
/// cannot reach the endpoint while the link is down: the agent retries it (its report
/// patience) and, the link back, the endpoint learns the failure and why.
fn try_link_down_past_patience(b: &Bench, n: usize) -> Outcome {
    let disk = Disk::new(&b.tmp, &format!("down-{n}.img"), 256 * MIB);
    let host = format!("b204-pc{n:02}");
    let mut a = b.agent(
        &host,
        &disk,
        &["--retries", "0", "--report-patience", "120"],
    );
    let at = b.mid_stream(&mut a, 0.3);
    b.net.link(&b.net.srv(), false);
    wait_for(
        "the agent to give up and retry its report",
        Duration::from_secs(90),
        || !a.running() || a.log().contains("reporting the outcome"),
    );
    let retried = a.log().matches("trying again in").count();
    b.net.link(&b.net.srv(), true);
    eprintln!(
        "  server link down at {} of {} MiB until the agent gave up and retried its report ({retried} time(s))",
        at >> 20,
        b.total >> 20
    );
    let out = b.judge(&mut a, &disk, &host);
    b.gave_up_and_said_so(&a, out)
}

#[test]
fn deploys_survive_a_cut_link_loss_and_a_killed_agent() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "faults_net needs root (network namespaces, veth, tc, loop devices, mkfs, mount): run it as root"
    );
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    image_tree(&tree);
    let svc = Arc::new(ImagesService::new(FsImageStore::for_workspace(
        &tmp.path().join("ws"),
    )));
    capture(&svc, &tree);
    let total = svc
        .store()
        .manifest(IMAGE)
        .unwrap()
        .streams()
        .map(|s| s.size)
        .sum::<u64>();

    let net = Net::up();
    // The endpoint serves from its namespace (its sockets are opened there).
    let (srv_ns, router) = (net.srv(), parc::netboot::serve::router(svc.clone()));
    let server = std::thread::spawn(move || {
        parc::lab::enter_netns(&srv_ns).unwrap();
        LocalServer::start(router, format!("{SRV_ADDR}:0").parse().unwrap()).unwrap()
    })
    .join()
    .unwrap();
    let mut b = Bench {
        url: server.url(),
        srv_port: server.addr.port(),
        net,
        svc,
        tree,
        tmp: tmp.path().to_path_buf(),
        total,
    };

    // (name, outcome, whether the case must finish rather than fail cleanly)
    let mut lines: Vec<(String, Outcome, bool)> = Vec::new();
    let mut record = |name: &str, o: Outcome, must_finish: bool| {
        let (word, what) = match &o {
            Outcome::Survived(s) => ("survived", s),
            Outcome::Lost(s) => ("LOST", s),
        };
        println!(
            "faults_net: try {}: {name}: {word}: {what}",
            lines.len() + 1
        );
        lines.push((name.to_string(), o, must_finish));
    };
    let o = try_link_cut(&b, "server", &b.net.srv(), 1);
    record("link cut 10 s mid-stream, server side", o, true);
    let o = try_link_cut(&b, "workstation", &b.net.ws(), 2);
    record("link cut 10 s mid-stream, workstation side", o, true);
    let o = try_loss(&mut b, 3);
    record("5% packet loss", o, true);
    let (killed, rerun) = try_kill(&b, false, 4);
    record("SIGKILL mid-stream", killed, false);
    record("deploy again on the killed disk", rerun, true);
    let (killed, rerun) = try_kill(&b, true, 5);
    record("SIGKILL mid-stream, link down", killed, false);
    record("deploy again on that disk", rerun, true);
    let o = try_stream_black_holed(&mut b, 6);
    record("stream black-holed past the agent's patience", o, false);
    let o = try_link_down_past_patience(&b, 7);
    record("server link down past the agent's patience", o, false);

    let survived = lines
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Survived(_)))
        .count();
    let lost = lines.len() - survived;
    println!(
        "faults_net: {} tries, {survived} survived, {lost} lost",
        lines.len()
    );
    eprintln!("  ({:.0} s)", t0.elapsed().as_secs_f64());
    // Beyond surviving: the cuts, the loss and the deploys after a kill finish.
    let unfinished: Vec<&str> = lines
        .iter()
        .filter(|(_, o, must)| {
            *must && matches!(o, Outcome::Survived(s) if !s.starts_with("finished"))
        })
        .map(|(n, _, _)| n.as_str())
        .collect();
    server.kill();
    drop(b);
    assert_eq!(lost, 0, "a try lost the workstation's disk");
    assert!(
        unfinished.is_empty(),
        "failed (cleanly) where the deploy must finish: {unfinished:?}"
    );
}
