//! A room's multicast deploy with unicast catch-up, on real udpcast between network
//! namespaces: one endpoint namespace and three workstation namespaces on one bridge, the
//! agents deploying onto disk files. Needs root (namespaces, loop devices, mkfs) and udpcast
//! (installed with apt-get if missing).
//!
//! - pc01's agent is killed mid-stream (SIGKILL), its disk is left without a partition
//!   table, and the agent started again deploys by unicast (the session has started).
//! - pc02's udp-receiver is killed mid-stream: the agent takes the rest of the stream by
//!   HTTP from the byte it reached (multicast, then unicast), as the chunks it lacks (the
//!   capture is chunked): the endpoint's access log shows chunk requests and no request of
//!   the stream itself (no Range download).
//! - pc03 takes everything by multicast.
//!
//! Every disk ends with its partition table and the same files; the endpoint's session says
//! its transfer completed.

mod drift;
use drift::pseudo_random;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parc::agent::wire::DeliveryPath;
use parc::domain::multicast::MulticastPolicy;
use parc::image::manifest::{DiskLayout, OsFamily};
use parc::image::store::FsImageStore;
use parc::netboot::serve::local::LocalServer;
use parc::netboot::serve::multicast::{MulticastSettings, SessionPhase};
use parc::netboot::serve::{CaptureTemplate, ImagesService, TaskTicket};

const MIB: u64 = 1 << 20;

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

/// The bridge, the endpoint's namespace and `n` workstation namespaces; removed on drop.
struct Net {
    prefix: String,
    n: usize,
}

impl Net {
    fn up(n: usize) -> Self {
        let prefix = format!("pmc{}", std::process::id() % 10000);
        let net = Net { prefix, n };
        let p = &net.prefix;
        ip(&format!("netns add {p}-br"));
        ip(&format!("-n {p}-br link add br0 type bridge"));
        ip(&format!("-n {p}-br link set br0 up"));
        let attach = |ns: String, port: String, addr: String| {
            ip(&format!("netns add {ns}"));
            ip(&format!(
                "-n {p}-br link add {port} type veth peer name eth0 netns {ns}"
            ));
            ip(&format!("-n {p}-br link set {port} master br0"));
            ip(&format!("-n {p}-br link set {port} up"));
            ip(&format!("-n {ns} addr add {addr}/24 brd + dev eth0"));
            ip(&format!("-n {ns} link set eth0 up"));
            ip(&format!("-n {ns} link set lo up"));
        };
        attach(net.srv(), format!("{p}s"), "10.81.0.1".into());
        for i in 1..=n {
            attach(net.ws(i), format!("{p}w{i}"), format!("10.81.0.{}", 10 + i));
        }
        net
    }

    fn srv(&self) -> String {
        format!("{}-srv", self.prefix)
    }

    fn ws(&self, i: usize) -> String {
        format!("{}-w{i}", self.prefix)
    }

    /// The pid of `comm` running in namespace `ns`.
    fn pid_of(&self, ns: &str, comm: &str) -> Option<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let mut all = vec![self.srv(), format!("{}-br", self.prefix)];
        all.extend((1..=self.n).map(|i| self.ws(i)));
        for ns in all {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn template() -> CaptureTemplate {
    CaptureTemplate {
        recipe_digest: format!("sha256:{}", "1".repeat(64)),
        software_digest: format!("sha256:{}", "2".repeat(64)),
        software: Vec::new(),
        hardware_model: "OptiPlex 7010".into(),
        os_family: OsFamily::Linux,
        captured_at: "2026-12-03T10:00:00Z".into(),
    }
}

fn agent(ns: &str, url: &str, t: &TaskTicket, disk: &Path) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_parc-agent"),
            "deploy",
        ])
        .args(["--endpoint", url, "--task", &t.id, "--report-every", "0.2"])
        .arg("--target")
        .arg(disk)
        .env("PARC_AGENT_TOKEN", &t.token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut c: Child, who: &str) -> String {
    let status = c.wait().unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{who}'s agent failed: {err}");
    err
}

fn partition_table(disk: &Path) -> Option<String> {
    let out = Command::new("sfdisk").arg("-d").arg(disk).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn bytes_of(svc: &ImagesService, t: &TaskTicket) -> u64 {
    svc.state(&t.id)
        .and_then(|s| s.progress)
        .map_or(0, |p| p.bytes)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files of partition 1 of `disk`, with their sha256.
fn files_of(disk: &Path) -> Vec<String> {
    let out = sh(Command::new("sfdisk").arg("-J").arg(disk));
    let j: serde_json::Value = serde_json::from_slice(out.as_bytes()).unwrap();
    let start = j["partitiontable"]["partitions"][0]["start"]
        .as_u64()
        .unwrap();
    let dev = sh(Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(format!("--offset={}", start * 512))
        .arg(disk))
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("mount")
        .args(["-o", "ro", &dev])
        .arg(dir.path()));
    let list = sh(Command::new("sh").arg("-c").arg(format!(
        "cd {} && find data -type f | sort | xargs sha256sum",
        dir.path().display()
    )));
    let _ = Command::new("umount").arg(dir.path()).status();
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    list.lines().map(str::to_string).collect()
}

#[test]
fn a_room_by_multicast_with_unicast_catch_up() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the multicast room test needs root (network namespaces, loop devices, mkfs): run it as root"
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    sh(Command::new(repo.join("scripts/ensure-packages.sh")).args(["udpcast", "iproute2"]));

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let svc = Arc::new(ImagesService::new(FsImageStore::for_workspace(&ws)));

    // The image: 48 MiB of incompressible files (a stream long enough to cut).
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("data/sub")).unwrap();
    for i in 0..6u64 {
        let dir = if i % 2 == 0 { "data" } else { "data/sub" };
        fs::write(
            tree.join(format!("{dir}/f{i}.bin")),
            pseudo_random(8 * MIB as usize, i),
        )
        .unwrap();
    }
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), "master\n").unwrap();
    let capture_server = LocalServer::start(
        parc::netboot::serve::router(svc.clone()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let t = svc
        .add_capture(
            "b204",
            "v1",
            DiskLayout::single_ext4_root(Some("root")),
            template(),
        )
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parc-agent"))
        .args([
            "capture",
            "--endpoint",
            &capture_server.url(),
            "--task",
            &t.id,
        ])
        .arg("--source")
        .arg(format!("1={}", tree.display()))
        .env("PARC_AGENT_TOKEN", &t.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    capture_server.kill();
    let manifest = svc.store().manifest("b204/v1").unwrap();
    assert!(
        manifest.streams().all(|s| s.index.is_some()),
        "the capture is not stored as chunks: {:?}",
        manifest.streams().collect::<Vec<_>>()
    );

    let net = Net::up(3);
    // The endpoint serves from its namespace (its sockets are opened there).
    let (srv_ns, router) = (net.srv(), parc::netboot::serve::router(svc.clone()));
    let server = std::thread::spawn(move || {
        parc::lab::enter_netns(&srv_ns).unwrap();
        LocalServer::start(router, "10.81.0.1:0".parse().unwrap()).unwrap()
    })
    .join()
    .unwrap();
    let url = server.url();
    svc.multicast.configure(MulticastSettings {
        interface: "eth0".into(),
        policy: MulticastPolicy {
            // 48 MiB in about 5 s: time to cut it.
            max_rate_mbit: 80,
            wait_secs: 20,
            ..MulticastPolicy::default()
        },
        // Shorter than the transfer: a session that started is never cut by this limit.
        first_receiver_secs: 6,
        netns: Some(net.srv()),
    });
    let session = svc.multicast.open(svc.store(), "b204/v1", 3, 3).unwrap();
    let tickets: Vec<TaskTicket> = (1..=3)
        .map(|i| {
            svc.add_deploy_with(
                "b204/v1",
                &format!("b204-pc{i:02}"),
                None,
                Some(&session),
                false,
            )
            .unwrap()
        })
        .collect();
    let disks: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let d = tmp.path().join(format!("disk{i}.img"));
            fs::File::create(&d).unwrap().set_len(256 * MIB).unwrap();
            d
        })
        .collect();
    let mut agents: Vec<Option<Child>> = (0..3)
        .map(|i| Some(agent(&net.ws(i + 1), &url, &tickets[i], &disks[i])))
        .collect();

    wait_for("the session to start", Duration::from_secs(60), || {
        svc.multicast.info(&session).unwrap().phase == SessionPhase::Sending
    });
    wait_for(
        "pc01 and pc02 to be mid-stream",
        Duration::from_secs(60),
        || bytes_of(&svc, &tickets[0]) > 8 * MIB && bytes_of(&svc, &tickets[1]) > 8 * MIB,
    );
    // pc01: the whole agent dies.
    let mut a1 = agents[0].take().unwrap();
    a1.kill().unwrap();
    a1.wait().unwrap();
    let pid = net.pid_of(&net.ws(1), "parc-agent");
    if let Some(p) = pid {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
    if let Some(p) = net.pid_of(&net.ws(1), "udp-receiver") {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
    // pc02: only its receiver dies.
    let rx2 = net
        .pid_of(&net.ws(2), "udp-receiver")
        .expect("pc02 runs udp-receiver");
    sh(Command::new("kill").args(["-9", &rx2.to_string()]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        partition_table(&disks[0]),
        None,
        "a deploy cut mid-stream left a partition table"
    );
    // A killed agent cannot detach its loop devices: detached here (lazily while its mount
    // namespace goes away), or every run of this test would leave one on the machine.
    let left = sh(Command::new("losetup").arg("-j").arg(&disks[0]));
    for dev in left.lines().filter_map(|l| l.split(':').next()) {
        let _ = Command::new("losetup").args(["-d", dev]).status();
    }
    agents[0] = Some(agent(&net.ws(1), &url, &tickets[0], &disks[0]));

    let logs: Vec<String> = agents
        .into_iter()
        .enumerate()
        .map(|(i, a)| finish(a.unwrap(), &format!("pc0{}", i + 1)))
        .collect();
    let delivery = |i: usize| {
        svc.state(&tickets[i].id)
            .unwrap()
            .report
            .unwrap_or_else(|| panic!("pc0{} did not report", i + 1))
            .delivery
            .unwrap_or_else(|| panic!("pc0{} reported no delivery", i + 1))
    };
    let (d1, d2, d3) = (delivery(0), delivery(1), delivery(2));
    eprintln!(
        "pc01: {d1:?}\npc02: {d2:?}\npc03: {d3:?}\n--- pc02 log:\n{}",
        logs[1]
    );
    assert_eq!(d1.path, DeliveryPath::Unicast, "{d1:?}\n{}", logs[0]);
    assert!(d1.note.contains("already started"), "{d1:?}");
    assert_eq!(
        d2.path,
        DeliveryPath::MulticastThenUnicast,
        "{d2:?}\n{}",
        logs[1]
    );
    assert!(
        d2.multicast_bytes > 8 * MIB && d2.unicast_bytes > 0,
        "{d2:?}"
    );
    assert_eq!(d3.path, DeliveryPath::Multicast, "{d3:?}\n{}", logs[2]);
    let total = manifest.streams().map(|s| s.size).sum::<u64>();
    assert_eq!(d3.multicast_bytes, total);

    // pc02 caught up as chunks: `<file>: catching up by HTTP from byte N: K chunks`.
    let (file, from, count) = logs[1]
        .lines()
        .find_map(|l| {
            let (file, rest) = l
                .strip_prefix("parc-agent: ")?
                .split_once(": catching up by HTTP from byte ")?;
            let (from, rest) = rest.split_once(": ")?;
            let count = rest.strip_suffix(" chunks")?;
            Some((
                file.to_string(),
                from.parse::<u64>().ok()?,
                count.parse::<usize>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("pc02 did not catch up as chunks:\n{}", logs[1]));
    let stream = manifest.streams().find(|s| s.file == file).unwrap();
    let index = svc.store().index("b204/v1", stream).unwrap();
    let (first, skip) = index.locate(from).expect("a byte inside the stream");
    assert_eq!(count, index.chunks.len() - first, "{}", logs[1]);
    let access: Vec<_> = svc
        .access
        .entries()
        .into_iter()
        .filter(|e| e.task == tickets[1].id)
        .collect();
    let chunk_gets: Vec<_> = access
        .iter()
        .filter(|e| e.method == "GET" && e.path.contains("/chunks/"))
        .collect();
    assert_eq!(chunk_gets.len(), count, "pc02's requests: {access:#?}");
    assert!(
        chunk_gets.iter().all(|e| e.status == 200),
        "{chunk_gets:#?}"
    );
    let wanted: std::collections::HashSet<String> = index.chunks[first..]
        .iter()
        .map(|c| format!("{}.zst", c.hex()))
        .collect();
    assert!(
        chunk_gets
            .iter()
            .all(|e| wanted.contains(e.path.rsplit('/').next().unwrap())),
        "pc02 fetched a chunk before the one holding byte {from}: {chunk_gets:#?}"
    );
    for s in manifest.streams() {
        let whole = format!("/streams/{}", s.file);
        assert!(
            !access.iter().any(|e| e.path.ends_with(&whole)),
            "pc02 downloaded {} by HTTP (a Range request): {access:#?}",
            s.file
        );
    }
    // Every stored byte of the chunks it received counts as unicast; the first chunk's
    // first `skip` bytes had come by multicast too.
    let chunk_bytes: u64 = chunk_gets.iter().map(|e| e.bytes).sum();
    assert_eq!(d2.unicast_bytes, chunk_bytes, "{d2:?}");
    assert_eq!(
        d2.multicast_bytes + d2.unicast_bytes,
        total + skip,
        "{d2:?}"
    );
    wait_for("the session to end", Duration::from_secs(30), || {
        matches!(
            svc.multicast.info(&session).unwrap().phase,
            SessionPhase::Ended { .. }
        )
    });
    let phase = svc.multicast.info(&session).unwrap().phase;
    assert!(
        matches!(phase, SessionPhase::Ended { ok: true, .. }),
        "{phase:?}"
    );

    let expected = sh(Command::new("sh").arg("-c").arg(format!(
        "cd {} && find data -type f | sort | xargs sha256sum",
        tree.display()
    )));
    let expected: Vec<String> = expected.lines().map(str::to_string).collect();
    for (i, d) in disks.iter().enumerate() {
        assert!(
            partition_table(d).is_some_and(|t| t.contains("label: gpt")),
            "pc0{} has no partition table",
            i + 1
        );
        assert_eq!(files_of(d), expected, "pc0{}'s files", i + 1);
    }
    server.kill();
}
