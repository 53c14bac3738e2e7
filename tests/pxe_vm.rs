//! Lab test: a real QEMU VM (accelerator probed: KVM only if it boots here, else TCG)
//! PXE-boots through its iPXE ROM from `parc serve --lab` inside the lab network made by
//! lab/net-up.sh (bridge namespace + server namespace at 10.77.0.1, nothing leaves them): DHCP by the
//! dnsmasq child, stage 1 over parc's TFTP, per-MAC script, kernel and initramfs over HTTP,
//! the boot environment's /init runs the agent for its task and reports over HTTP; the MAC
//! then boots its local disk (no re-imaging loop). Prints the timings it measured.
//!
//! Needs root and the packages of scripts/pxe-deps.sh (scripts/test.sh installs them); it FAILS
//! when it cannot run. The agent in the initramfs is this build's `parc-agent` (debug info
//! stripped), or $PARC_PXE_AGENT (e.g. a release build).
//! Run: cargo test --test pxe_vm -- --nocapture

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parc::lab::vm::{self as lab_vm, Accel, Firmware, LabVm, LabVmConfig};

const MAC: &str = "52:54:00:77:00:21";
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const LAYOUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lab-layout.toml"
);

/// The label of the ext4 filesystem at `offset_mib` of a disk image, read on the host.
fn fs_label(disk: &Path, offset_mib: u64) -> String {
    let o = Command::new("blkid")
        .args([
            "-p",
            "-O",
            &(offset_mib * 1024 * 1024).to_string(),
            "-s",
            "LABEL",
            "-o",
            "value",
        ])
        .arg(disk)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The partitions of a disk image as sfdisk reads them on the host.
fn partitions(disk: &Path) -> String {
    let o = Command::new("sfdisk").arg("-d").arg(disk).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

fn preflight() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the PXE lab test needs root (network namespaces, taps); run it as root"
    );
    for (bin, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("dnsmasq", "dnsmasq-base"),
        ("busybox", "busybox-static"),
        ("ssh", "openssh-client"),
        ("extlinux", "extlinux"),
    ] {
        assert!(
            sh(&format!("command -v {bin}")).status.success(),
            "`{bin}` is missing: apt-get install -y --no-install-recommends {pkg}"
        );
    }
    assert!(
        Path::new("/usr/lib/ipxe/undionly.kpxe").exists(),
        "/usr/lib/ipxe/undionly.kpxe is missing: apt-get install ipxe"
    );
    assert!(
        Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(),
        "QEMU's iPXE ROM is missing: apt-get install ipxe-qemu"
    );
}

/// The isolated lab network, built by the lab's own scripts (lab/net-up.sh, lab/down.sh) with
/// a prefix of its own so it never meets a running lab: `<p>-net` holds br0, `<p>-srv` is at
/// 10.77.0.1 (one namespace workstation comes along; the VM is the one under test).
struct LabNet {
    prefix: String,
    dir: tempfile::TempDir,
}

impl LabNet {
    fn script(&self, name: &str) -> Command {
        let mut c = Command::new(format!("{REPO}/lab/{name}"));
        c.env("PARC_LAB_PREFIX", &self.prefix)
            .env("PARC_LAB_DIR", self.dir.path())
            .env("PARC_LAB_HOSTS", "b204-ns:10.77.0.50");
        c
    }

    fn up(tag: &str) -> Self {
        let net = Self {
            prefix: format!("pxe{tag}{}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
        };
        let o = net.script("net-up.sh").output().unwrap();
        assert!(
            o.status.success(),
            "lab/net-up.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        net
    }

    fn ns(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        let _ = self.script("down.sh").output();
    }
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        // parc serve is `ip netns exec` → parc; its own children die with it (kill_on_drop),
        // and the namespace teardown kills whatever is left.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_bootenv(cache: &Path) -> (PathBuf, f64) {
    let agent = std::env::var("PARC_PXE_AGENT")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_parc-agent").to_string());
    let t0 = Instant::now();
    let o = Command::new(format!("{REPO}/images/bootenv/build.sh"))
        .arg(&agent)
        .env("PARC_CACHE", cache)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "images/bootenv/build.sh failed");
    let dir = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    // What the agent calls for Windows disks is in the initramfs, with its libraries.
    let list = sh(&format!("zcat {dir}/initrd.img | cpio -t --quiet"));
    let list = String::from_utf8_lossy(&list.stdout);
    for f in [
        "usr/sbin/partclone.ntfs",
        "usr/sbin/partclone.fat",
        "usr/sbin/ntfsresize",
        "usr/sbin/mkntfs",
        "usr/sbin/ntfscp",
        "usr/bin/ntfscat",
        "usr/bin/ntfsls",
        "usr/sbin/mkfs.vfat",
        "lib/x86_64-linux-gnu/libntfs-3g.so",
        "var/log",
    ] {
        assert!(
            list.lines()
                .any(|l| l.trim_start_matches("./").starts_with(f)),
            "the boot environment lacks {f}"
        );
    }
    (PathBuf::from(dir), t0.elapsed().as_secs_f64())
}

fn task_state(ws: &Path) -> serde_json::Value {
    let s =
        std::fs::read_to_string(ws.join(".parc/boot/tasks.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&s).unwrap_or_default()
}

fn first_task(ws: &Path) -> Option<serde_json::Value> {
    task_state(ws)["tasks"]
        .as_object()?
        .values()
        .next()
        .cloned()
}

/// The boot environment and the accelerator, made once for every test of this binary.
/// The endpoint (boot and image routes, TFTP, the lab's DHCP) running in this process, its
/// thread inside the lab's server namespace so its sockets and dnsmasq live there.
struct InProcess {
    ep: std::sync::Arc<parc::netboot::endpoint::Endpoint>,
    images: std::sync::Arc<parc::netboot::serve::ImagesService>,
    cancel: tokio_util::sync::CancellationToken,
    thread: std::thread::JoinHandle<Result<(), parc::netboot::endpoint::EndpointError>>,
}

impl InProcess {
    /// `fixed`: DHCP reservations (MAC, address); DNS is the server and `lab.test`.
    fn start(
        net: &LabNet,
        ws: &Path,
        bootenv: &Path,
        fixed: Vec<(String, std::net::Ipv4Addr)>,
    ) -> Self {
        use parc::netboot::endpoint::dhcp::DhcpMode;
        use parc::netboot::endpoint::{Endpoint, ServeOptions};
        let opts = ServeOptions {
            bind: vec!["10.77.0.1".parse().unwrap()],
            http_port: 8000,
            tftp_port: 69,
            dhcp: DhcpMode::Full {
                first: "10.77.0.100".parse().unwrap(),
                last: "10.77.0.199".parse().unwrap(),
                fixed,
                dns: Some(("10.77.0.1".parse().unwrap(), "lab.test".into())),
            },
            dhcp_interface: Some("eth0".into()),
            state_dir: ws.join(".parc/boot"),
            bootenv: bootenv.to_path_buf(),
            ipxe_dir: "/usr/lib/ipxe".into(),
            ttl: Duration::from_secs(600),
            disk: None,
        };
        parc::lab::server::prepare_namespace(&net.ns("srv")).unwrap();
        let ep = std::sync::Arc::new(
            Endpoint::open(&opts.state_dir, &opts.base_url(), bootenv, opts.ttl).unwrap(),
        );
        let images = std::sync::Arc::new(parc::netboot::serve::ImagesService::new(
            parc::image::store::FsImageStore::for_workspace(ws),
        ));
        let cancel = tokio_util::sync::CancellationToken::new();
        let thread = {
            let (ep, cancel, srv) = (ep.clone(), cancel.clone(), net.ns("srv"));
            let routes = parc::netboot::serve::router(images.clone());
            std::thread::spawn(move || {
                parc::lab::enter_netns(&srv).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(parc::netboot::endpoint::server::run(
                    opts, ep, routes, cancel,
                ))
            })
        };
        wait_listen(&net.ns("srv"), Path::new("(in process)"));
        Self {
            ep,
            images,
            cancel,
            thread,
        }
    }

    fn stop(self) {
        self.cancel.cancel();
        self.thread.join().unwrap().unwrap();
    }
}

/// One test at a time: TCG VMs share the machine's two cores, and the timings printed stay
/// readable.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup() -> &'static (PathBuf, Accel) {
    static ONCE: std::sync::OnceLock<(PathBuf, Accel)> = std::sync::OnceLock::new();
    ONCE.get_or_init(setup_once)
}

fn cache_dir() -> PathBuf {
    std::env::var("PARC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(REPO).join(".cache"))
}

fn setup_once() -> (PathBuf, Accel) {
    preflight();
    let cache = cache_dir();
    let (bootenv, build_s) = build_bootenv(&cache);
    eprintln!(
        "pxe_vm: boot environment ready in {build_s:.1} s ({})",
        bootenv.display()
    );

    let t0 = Instant::now();
    let accel = lab_vm::probe_accel(&bootenv, Duration::from_secs(10)).expect("accelerator probe");
    eprintln!(
        "pxe_vm: accelerator {} (probe {:.1} s)",
        accel.as_str(),
        t0.elapsed().as_secs_f64()
    );
    if accel == Accel::Tcg {
        eprintln!("pxe_vm: KVM did not boot the kernel here (or is absent): using TCG");
    }
    (bootenv, accel)
}

fn wait_listen(ns: &str, log: &Path) {
    let t = Instant::now();
    while !sh(&format!(
        "ip netns exec {ns} bash -c 'exec 3<>/dev/tcp/10.77.0.1/8000'"
    ))
    .status
    .success()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "parc serve did not listen: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the task's report while the VM runs; seconds from QEMU's start to the report.
fn wait_report(vm: &mut LabVm, ws: &Path, limit: Duration) -> f64 {
    while vm.started.elapsed() < limit {
        let st = first_task(ws).unwrap_or_default();
        if st["state"]["state"] == "done" {
            return vm.started.elapsed().as_secs_f64();
        }
        assert!(
            vm.running(),
            "the VM stopped before reporting:\n{}",
            vm.serial()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no report within {} s; serial log:\n{}",
        limit.as_secs(),
        vm.serial()
    );
}

/// `parc serve --lab` in the lab's server namespace, with a format task for `mac`; waits until
/// it listens. Its stderr goes to `<tmp>/serve.log`.
fn serve_lab_format(net: &LabNet, tmp: &Path, ws: &Path, bootenv: &Path, mac: &str) -> Serve {
    let log = tmp.join("serve.log");
    let serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_parc"))
            .args([
                "serve",
                "--lab",
                "--assign",
                &format!("{mac}=format"),
                "--layout",
                LAYOUT,
            ])
            .arg("--bootenv")
            .arg(bootenv)
            .arg("-w")
            .arg(ws)
            .env("PARC_LAB_SRV_NS", net.ns("srv"))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listen(&net.ns("srv"), &log);
    serve
}

/// A VM on the lab's bridge with a 64 MiB disk under `<tmp>/vms`, powered off at its reboot.
fn vm_config(
    net: &LabNet,
    tmp: &Path,
    accel: Accel,
    mem_mib: u32,
    firmware: Firmware,
) -> LabVmConfig {
    LabVmConfig {
        net_ns: net.ns("net"),
        dir: tmp.join("vms"),
        accel,
        mem_mib,
        disk_mib: 64,
        no_reboot: true,
        firmware,
    }
}

#[test]
fn a_vm_pxe_boots_from_parc_serve_runs_its_task_reports_then_boots_its_disk() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (bootenv, accel) = setup().clone();
    let net = LabNet::up("a");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let _serve = serve_lab_format(&net, tmp.path(), &ws, &bootenv, MAC);
    let task = first_task(&ws).expect("the task assigned by --assign");
    assert_eq!(task["state"]["state"], "pending", "{task}");

    let cfg = vm_config(&net, tmp.path(), accel, 256, Firmware::Bios);
    let mut vm = LabVm::start(&cfg, "b204-p21", 1, MAC).unwrap();
    let reported_at = wait_report(&mut vm, &ws, Duration::from_secs(240));
    let serial = vm.serial();
    let st = first_task(&ws).unwrap();
    assert_eq!(st["state"]["success"], true, "{st}\n{serial}");
    assert!(
        vm.wait(Duration::from_secs(60)),
        "the VM did not reboot after its report"
    );
    let serial = vm.serial();
    for needle in [
        "iPXE",
        "parc: format task",
        lab_vm::INIT_MARKER,
        "parc-agent exited with 0",
        "parc-agent: formatted",
        "done, rebooting",
    ] {
        assert!(
            serial.contains(needle),
            "serial log lacks `{needle}`:\n{serial}"
        );
    }
    // The agent really formatted the VM's disk: read it from the host side.
    let table = partitions(&vm.disk);
    assert!(
        table.contains("label: gpt") && table.contains("start=        2048, size=       32768"),
        "{table}"
    );
    assert_eq!(fs_label(&vm.disk, 1), "parc-data");
    assert_eq!(fs_label(&vm.disk, 17), "parc-root");
    eprintln!(
        "pxe_vm: QEMU start -> iPXE DHCP {:?} s, /init {:?} s, agent report {reported_at:.1} s",
        vm.seen_at("Configuring (net0"),
        vm.seen_at(lab_vm::INIT_MARKER),
    );
    // Keep the serial log for reading after the run.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pxe_vm-first-boot.log");
    let _ = std::fs::copy(&vm.log, &kept);
    eprintln!(
        "pxe_vm: serial log of the first boot kept in {}",
        kept.display()
    );
    drop(vm);

    // Next boot: the MAC boots its local disk — no second imaging.
    let mut vm = LabVm::start(&cfg, "b204-p21", 1, MAC).unwrap();
    let t = Instant::now();
    while !vm
        .serial()
        .contains("parc: no task, booting the local disk")
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the second boot did not get the local-disk script:\n{}",
            vm.serial()
        );
        assert!(
            !vm.serial().contains(lab_vm::INIT_MARKER),
            "the VM was imaged again:\n{}",
            vm.serial()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.stop();
    let st = first_task(&ws).unwrap();
    assert_eq!(st["state"]["state"], "done");
}

/// proxyDHCP next to the lycée's own DHCP server: a plain dnsmasq in another namespace hands
/// out addresses and knows nothing of PXE; `parc serve --dhcp proxy` answers only the boot
/// part, and the VM still reaches its task.
#[test]
fn proxy_dhcp_next_to_the_sites_own_dhcp_server() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (bootenv, accel) = setup().clone();
    let net = LabNet::up("p");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    // The "lycée's" DHCP server, on the namespace workstation 10.77.0.50.
    let site = net.ns("b204-ns");
    let _site_dhcp = Serve(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &site,
                "dnsmasq",
                "--keep-in-foreground",
                "--port=0",
            ])
            .args([
                "--interface=eth0",
                "--bind-interfaces",
                "--dhcp-range=10.77.0.100,10.77.0.199,1h",
            ])
            .arg(format!(
                "--dhcp-leasefile={}",
                tmp.path().join("site.leases").display()
            ))
            .spawn()
            .unwrap(),
    );
    let serve_log = tmp.path().join("serve.log");
    let _serve = Serve(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns("srv"),
                env!("CARGO_BIN_EXE_parc"),
                "serve",
            ])
            .args([
                "--bind",
                "10.77.0.1",
                "--dhcp",
                "proxy",
                "--proxy-subnet",
                "10.77.0.0",
            ])
            .args([
                "--dhcp-interface",
                "eth0",
                "--assign",
                "52:54:00:77:00:22=format",
                "--layout",
                LAYOUT,
            ])
            .arg("--bootenv")
            .arg(&bootenv)
            .arg("-w")
            .arg(&ws)
            .stderr(std::fs::File::create(&serve_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listen(&net.ns("srv"), &serve_log);
    let cfg = vm_config(&net, tmp.path(), accel, 256, Firmware::Bios);
    let mut vm = LabVm::start(&cfg, "b204-p22", 2, "52:54:00:77:00:22").unwrap();
    let reported_at = wait_report(&mut vm, &ws, Duration::from_secs(240));
    let st = first_task(&ws).unwrap();
    assert_eq!(st["state"]["success"], true, "{st}\n{}", vm.serial());
    let leases = std::fs::read_to_string(tmp.path().join("site.leases")).unwrap_or_default();
    assert!(
        leases.contains("52:54:00:77:00:22"),
        "the address did not come from the site's DHCP server: {leases}"
    );
    let proxy_leases =
        std::fs::read_to_string(ws.join(".parc/boot/dhcp/dnsmasq.leases")).unwrap_or_default();
    assert!(
        !proxy_leases.contains("52:54:00:77:00:22"),
        "parc's proxy handed out an address"
    );
    eprintln!("pxe_vm: proxyDHCP: QEMU start -> agent report {reported_at:.1} s");
}

/// A room through the engine's ports: the endpoint runs in this process (its sockets opened
/// inside the lab's server namespace), `LocalBootEndpoint` assigns a task per workstation,
/// `LabPower` switches the VMs on, the reports come back concurrently; a workstation that
/// never boots (never switched on here, like a machine whose wake-on-LAN got lost) is
/// reported as a timeout while the others finish.
#[test]
fn a_room_through_the_ports_with_one_workstation_that_never_boots() {
    use parc::adapters::lab_power::LabPower;
    use parc::netboot::client::LocalBootEndpoint;
    use parc::ports::{BootAction, BootEndpoint, PortErrorKind, PowerControl};
    use tokio_util::sync::CancellationToken;

    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (bootenv, accel) = setup().clone();
    let net = LabNet::up("r");
    let tmp = tempfile::tempdir().unwrap();
    let server = InProcess::start(&net, &tmp.path().join("ws"), &bootenv, Vec::new());
    let (ep, images) = (server.ep.clone(), server.images.clone());

    let power = LabPower::new(vm_config(&net, tmp.path(), accel, 256, Firmware::Bios));
    let layout: parc::image::manifest::DiskLayout =
        toml::from_str(&std::fs::read_to_string(LAYOUT).unwrap()).unwrap();
    let port = LocalBootEndpoint::new(ep.clone()).with_images(images, Some(layout));
    let hosts: Vec<(String, String)> = (1..=4)
        .map(|i| (format!("b204-p0{i}"), format!("52:54:00:77:01:0{i}")))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = Instant::now();
    let results = rt.block_on(async {
        let mut waits = Vec::new();
        for (i, (host, mac)) in hosts.iter().enumerate() {
            // Partitioning only (no base image named): this test is about the room's
            // concurrency, the base OS is format_capture_then_deploy_through_pxe's.
            let id = port
                .assign(
                    mac,
                    BootAction::Format {
                        base_image: String::new(),
                        hostname: host.clone(),
                        inject: Vec::new(),
                    },
                )
                .await
                .unwrap();
            // The fourth machine stays off.
            if i < 3 {
                power.power_on(host, mac).await.unwrap();
            }
            let port = &port;
            // The switched-off one gets a short timeout only to keep the test short.
            let timeout = Duration::from_secs(if i < 3 { 150 } else { 30 });
            waits.push(async move {
                let r = port
                    .wait_report(&id, timeout, CancellationToken::new())
                    .await;
                (host.clone(), r, t0.elapsed().as_secs_f64())
            });
        }
        futures::future::join_all(waits).await
    });
    for (host, r, at) in &results {
        eprintln!(
            "pxe_vm: room: {host} -> {:?} after {at:.1} s",
            r.as_ref().map(|r| r.success)
        );
    }
    for (host, r, _) in &results[..3] {
        let serial = power.with_vm(host, |vm| vm.serial()).unwrap_or_default();
        let r = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{host}: {e}\n{serial}"));
        assert!(r.success, "{host}: {r:?}");
        let disk = power.with_vm(host, |vm| vm.disk.clone()).unwrap();
        assert_eq!(fs_label(&disk, 17), "parc-root", "{host}");
    }
    let (host, r, _) = &results[3];
    let e = r
        .as_ref()
        .expect_err("the machine that stayed off reported");
    assert_eq!(e.kind, PortErrorKind::Timeout, "{host}: {e}");
    let slowest = results[..3].iter().map(|r| r.2).fold(0.0, f64::max);
    eprintln!(
        "pxe_vm: room of 3 VMs (TCG, concurrent): last report {slowest:.1} s after the first power-on"
    );
    power.stop_all();
    server.stop();
}

/// A UEFI workstation (OVMF with QEMU's EFI iPXE ROM) reaches its task the same way; EFI iPXE
/// needs the `initrd=initrd.img` the script puts on the kernel line.
#[test]
fn a_uefi_vm_reaches_its_task() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(),
        "OVMF is missing: apt-get install ovmf"
    );
    let (bootenv, accel) = setup().clone();
    let net = LabNet::up("u");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let _serve = serve_lab_format(&net, tmp.path(), &ws, &bootenv, "52:54:00:77:00:23");
    let cfg = vm_config(&net, tmp.path(), accel, 512, Firmware::Uefi);
    let mut vm = LabVm::start(&cfg, "b204-p23", 3, "52:54:00:77:00:23").unwrap();
    let reported_at = wait_report(&mut vm, &ws, Duration::from_secs(300));
    let st = first_task(&ws).unwrap();
    assert_eq!(st["state"]["success"], true, "{st}\n{}", vm.serial());
    assert_eq!(fs_label(&vm.disk, 17), "parc-root");
    eprintln!("pxe_vm: UEFI: QEMU start -> agent report {reported_at:.1} s");
}

/// Mounts partition at `offset_mib` of a disk image on the host (read-only unless `rw`), runs
/// `f` on the mount point, unmounts.
fn with_mounted<T>(disk: &Path, offset_mib: u64, rw: bool, f: impl FnOnce(&Path) -> T) -> T {
    let mnt = tempfile::tempdir().unwrap();
    let opts = format!(
        "loop,offset={},{}",
        offset_mib * 1024 * 1024,
        if rw { "rw" } else { "ro" }
    );
    let o = Command::new("mount")
        .args(["-o", &opts])
        .arg(disk)
        .arg(mnt.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "mount {}: {o:?}", disk.display());
    let out = f(mnt.path());
    let o = Command::new("umount").arg(mnt.path()).output().unwrap();
    assert!(o.status.success(), "umount: {o:?}");
    out
}

/// images/base/build.sh puts the base OS image into `ws`'s store (built once per input
/// change, cached under $PARC_CACHE); returns the seconds it took.
fn base_image_into(ws: &Path, bootenv: &Path) -> f64 {
    let t0 = Instant::now();
    let o = Command::new(format!("{REPO}/images/base/build.sh"))
        .arg("--bootenv")
        .arg(bootenv)
        .arg(ws)
        .env("PARC_CACHE", cache_dir())
        .env("PARC_BIN", env!("CARGO_BIN_EXE_parc"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "images/base/build.sh failed");
    t0.elapsed().as_secs_f64()
}

/// OpenSSH's client, run inside the lab's server namespace, as root with `key`.
fn ssh(net: &LabNet, key: &Path, ip: &str, cmd: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &net.ns("srv"), "ssh", "-i"])
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            &format!("root@{ip}"),
            cmd,
        ])
        .output()
        .unwrap()
}

/// Boots `host` again: PXE must answer "local disk", the disk must boot the installed system
/// up to sshd at its fixed address `ip`, and an SSH login must answer `host`. Returns the VM
/// and the seconds from QEMU's start to that login.
fn boot_disk_to_ssh(
    cfg: &LabVmConfig,
    net: &LabNet,
    key: &Path,
    (host, n, mac, ip): (&str, u32, &str, &str),
) -> (LabVm, f64) {
    let mut vm = LabVm::start(cfg, host, n, mac).unwrap();
    let up = format!("parc-os: sshd up on {ip} ");
    loop {
        let serial = vm.serial();
        if serial.contains(&up) {
            break;
        }
        assert!(
            vm.running() && vm.started.elapsed() < Duration::from_secs(240),
            "{host}: no `{up}` on the serial console:\n{serial}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let serial = vm.serial();
    assert!(
        serial.contains("parc: no task, booting the local disk")
            && !serial.contains("running parc-agent"),
        "{host} did not boot its local disk:\n{serial}"
    );
    loop {
        let o = ssh(net, key, ip, "hostname");
        if o.status.success() {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), host);
            let at = vm_elapsed(&vm);
            return (vm, at);
        }
        assert!(
            vm.started.elapsed() < Duration::from_secs(270),
            "{host}: ssh root@{ip} fails: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            vm.serial()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn vm_elapsed(vm: &LabVm) -> f64 {
    vm.started.elapsed().as_secs_f64()
}

/// Shuts the installed system down over SSH (busybox init's poweroff); QEMU must exit.
fn poweroff(net: &LabNet, key: &Path, ip: &str, vm: &mut LabVm) {
    let _ = ssh(net, key, ip, "poweroff");
    assert!(
        vm.wait(Duration::from_secs(90)),
        "poweroff did not stop the VM:\n{}",
        vm.serial()
    );
}

/// The product's chain through PXE with the real agent and a real OS: the master is formatted
/// with the base image (parc's SSH key injected), reboots, PXE says "local disk", it boots its
/// disk to sshd at its fixed DHCP address and a real SSH login answers its hostname; it is
/// given some content (from the host, standing for the software steps), captured into the
/// store, and the image deployed onto a workstation, which boots to sshd with its own hostname.
#[test]
fn format_capture_then_deploy_through_pxe() {
    use parc::netboot::client::LocalBootEndpoint;
    use parc::ports::{BootAction, BootEndpoint, InjectFile};
    use tokio_util::sync::CancellationToken;

    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (bootenv, accel) = setup().clone();
    let net = LabNet::up("c");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let t_base = base_image_into(&ws, &bootenv);
    let key = tmp.path().join("parc_key");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "parc", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "ssh-keygen: {o:?}");
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let master = ("b204-master", 1, "52:54:00:77:02:01", "10.77.0.11");
    let ws2 = ("b204-p02", 2, "52:54:00:77:02:02", "10.77.0.12");
    let fixed = [master, ws2]
        .iter()
        .map(|(_, _, mac, ip)| (mac.to_string(), ip.parse().unwrap()))
        .collect();
    let server = InProcess::start(&net, &ws, &bootenv, fixed);
    let layout: parc::image::manifest::DiskLayout =
        toml::from_str(&std::fs::read_to_string(LAYOUT).unwrap()).unwrap();
    let port = LocalBootEndpoint::new(server.ep.clone())
        .with_images(server.images.clone(), Some(layout))
        .with_capture_template(parc::netboot::serve::CaptureTemplate {
            recipe_digest: format!("sha256:{}", "1".repeat(64)),
            software_digest: format!("sha256:{}", "2".repeat(64)),
            software: vec![],
            hardware_model: "qemu-q35".into(),
            os_family: parc::image::manifest::OsFamily::Linux,
            captured_at: "2026-11-22T16:00:00Z".into(),
        });
    let cfg = LabVmConfig {
        disk_mib: 1024,
        ..vm_config(&net, tmp.path(), accel, 384, Firmware::Bios)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One PXE boot of `host` running `action`; returns seconds to the report.
    let run = |(host, n, mac, _): (&str, u32, &str, &str), action: BootAction| -> f64 {
        let kind = match &action {
            BootAction::Format { .. } => "format",
            BootAction::Capture { .. } => "capture",
            BootAction::Deploy { .. } => "deploy",
            BootAction::LocalDisk => "local",
        };
        let id = rt.block_on(port.assign(mac, action)).unwrap();
        let mut vm = LabVm::start(&cfg, host, n, mac).unwrap();
        let r = rt
            .block_on(port.wait_report(&id, Duration::from_secs(400), CancellationToken::new()))
            .unwrap_or_else(|e| panic!("{host}: {e}\n{}", vm.serial()));
        let at = vm_elapsed(&vm);
        assert!(r.success, "{host}: {r:?}\n{}", vm.serial());
        assert!(vm.wait(Duration::from_secs(60)), "{host} did not reboot");
        // Kept for reading after the run (the agent's progress lines are in it).
        let kept =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pxe_vm-chain-{host}-{kind}.log"));
        let _ = std::fs::copy(&vm.log, &kept);
        at
    };

    // A base image that does not exist is refused when assigned, saying how to build it.
    let e = rt
        .block_on(port.assign(
            master.2,
            BootAction::Format {
                base_image: "debian-99".into(),
                hostname: "b204-master".into(),
                inject: Vec::new(),
            },
        ))
        .unwrap_err();
    assert_eq!(e.kind, parc::ports::PortErrorKind::NotFound, "{e}");
    assert!(e.message.contains("images/base/build.sh"), "{e}");

    let t_format = run(
        master,
        BootAction::Format {
            base_image: "debian-12-amd64".into(),
            hostname: "b204-master".into(),
            inject: vec![InjectFile {
                path: "/root/.ssh/authorized_keys".into(),
                mode: 0o600,
                content: pubkey,
            }],
        },
    );
    let (mut vm, t_master_ssh) = boot_disk_to_ssh(&cfg, &net, &key, master);
    // The installed system took its DNS settings from the lab's DHCP server.
    let o = ssh(&net, &key, master.3, "cat /etc/resolv.conf /etc/hosts");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("nameserver 10.77.0.1")
            && text.contains("search lab.test")
            && text.contains("b204-master.lab.test b204-master"),
        "{text}"
    );
    poweroff(&net, &key, master.3, &mut vm);
    drop(vm);
    let master_disk = cfg.dir.join("b204-master.img");

    // The "software": files on the master's root filesystem.
    let mut payload = vec![0u8; 3 * 1024 * 1024];
    getrandom::fill(&mut payload).unwrap();
    with_mounted(&master_disk, 17, true, |root| {
        std::fs::create_dir_all(root.join("opt/geogebra")).unwrap();
        std::fs::write(root.join("opt/geogebra/blob"), &payload).unwrap();
    });
    let t_capture = run(
        master,
        BootAction::Capture {
            room: "b204".into(),
            image_version: "v1".into(),
        },
    );
    assert!(ws.join("images/b204/v1").is_dir(), "no image in the store");
    let t_deploy = run(
        ws2,
        BootAction::Deploy {
            room: "b204".into(),
            image_id: "b204/v1".into(),
            hostname: "b204-p02".into(),
            unattend: None,
            multicast: None,
            read_all: false,
        },
    );
    let (mut vm, t_ws_ssh) = boot_disk_to_ssh(&cfg, &net, &key, ws2);
    // Its own SSH host key, not the master's.
    let o = ssh(&net, &key, ws2.3, "cat /etc/ssh/parc-host-key-of");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "b204-p02");
    poweroff(&net, &key, ws2.3, &mut vm);
    let ws_disk = vm.disk.clone();
    drop(vm);
    with_mounted(&ws_disk, 17, false, |root| {
        assert_eq!(
            std::fs::read(root.join("opt/geogebra/blob")).unwrap(),
            payload
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname"))
                .unwrap()
                .trim(),
            "b204-p02"
        );
    });
    // Each filesystem keeps its own label (a blkid cache once gave partition 2 partition 1's).
    assert_eq!(fs_label(&ws_disk, 1), "parc-data");
    assert_eq!(fs_label(&ws_disk, 17), "parc-root");
    eprintln!(
        "pxe_vm: chain: base image into the store {t_base:.1} s; format {t_format:.1} s + boot to ssh {t_master_ssh:.1} s; capture {t_capture:.1} s; deploy {t_deploy:.1} s + boot to ssh {t_ws_ssh:.1} s (each from QEMU start)"
    );
    server.stop();
}
