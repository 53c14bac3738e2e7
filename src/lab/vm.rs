//! QEMU workstations for the lab: a VM per workstation on the lab bridge (a tap in the lab's
//! network namespace, enslaved to `br0`), a raw disk and a serial log (host-side timestamps,
//! seconds since QEMU started) per VM under the lab's run folder, and the accelerator probe:
//! KVM is used only if it actually boots the boot environment here, else TCG (on this kind of
//! machine /dev/kvm opens but cannot run firmware).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a VM could not be started or probed.
#[derive(Debug, thiserror::Error)]
pub enum LabVmError {
    #[error("running `{cmd}`")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("preparing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("neither KVM nor TCG booted {kernel} to its /init within {secs} s")]
    NoAccelerator { kernel: PathBuf, secs: u64 },
}

/// The QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// The line the boot environment's /init prints first (images/bootenv/init).
pub const INIT_MARKER: &str = "parc-bootenv: init started";

/// Boots `bootenv`'s kernel and initramfs without network under `accel`; true when /init runs
/// within `timeout`.
pub fn boots_with(accel: Accel, bootenv: &Path, timeout: Duration) -> Result<bool, LabVmError> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            accel.as_str(),
            "-m",
            "256",
            "-nographic",
            "-nodefaults",
        ])
        .args(["-serial", "stdio", "-no-reboot", "-net", "none", "-kernel"])
        .arg(bootenv.join("vmlinuz"))
        .arg("-initrd")
        .arg(bootenv.join("initrd.img"))
        .args(["-append", "console=ttyS0 quiet panic=5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LabVmError::Spawn {
            cmd: "qemu-system-x86_64".into(),
            source,
        })?;
    let out = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(out) = out else { return };
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            if String::from_utf8_lossy(&line).contains(INIT_MARKER) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let ok = rx.recv_timeout(timeout).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    Ok(ok)
}

/// The accelerator to use: KVM when /dev/kvm is writable and boots /init within
/// `kvm_timeout`, else TCG (checked the same way with a longer timeout).
pub fn probe_accel(bootenv: &Path, kvm_timeout: Duration) -> Result<Accel, LabVmError> {
    let kvm_usable = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm_usable && boots_with(Accel::Kvm, bootenv, kvm_timeout)? {
        return Ok(Accel::Kvm);
    }
    let tcg_timeout = Duration::from_secs(90);
    if boots_with(Accel::Tcg, bootenv, tcg_timeout)? {
        return Ok(Accel::Tcg);
    }
    Err(LabVmError::NoAccelerator {
        kernel: bootenv.join("vmlinuz"),
        secs: tcg_timeout.as_secs(),
    })
}

/// Where and how lab VMs run.
#[derive(Debug, Clone)]
pub struct LabVmConfig {
    /// The network namespace holding the bridge `br0`.
    pub net_ns: String,
    /// `<lab run folder>/vms`: disks and serial logs.
    pub dir: PathBuf,
    pub accel: Accel,
    pub mem_mib: u32,
    pub disk_mib: u64,
    /// QEMU exits instead of rebooting (tests that end at the agent's report).
    pub no_reboot: bool,
    pub firmware: Firmware,
}

/// The VM's firmware: SeaBIOS, or OVMF (Debian's `ovmf` package) for UEFI machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// OVMF's code and variable-store templates (Debian's `ovmf`).
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A running VM.
pub struct LabVm {
    pub name: String,
    pub mac: String,
    pub log: PathBuf,
    pub disk: PathBuf,
    pub started: Instant,
    tap: String,
    net_ns: String,
    child: Child,
    logger: Option<std::thread::JoinHandle<()>>,
}

fn run(cmd: &mut Command) -> Result<(), LabVmError> {
    let shown = format!("{cmd:?}");
    let o = cmd.output().map_err(|source| LabVmError::Spawn {
        cmd: shown.clone(),
        source,
    })?;
    if !o.status.success() {
        return Err(LabVmError::Failed {
            cmd: shown,
            stderr: String::from_utf8_lossy(&o.stderr).trim().into(),
        });
    }
    Ok(())
}

/// Removes terminal escape sequences from firmware output.
pub fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// `<dir>/<name>.img`, created empty (sparse, `disk_mib`) the first time.
fn ensure_disk(cfg: &LabVmConfig, name: &str) -> Result<PathBuf, LabVmError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LabVmError::Io { path, source }
    };
    std::fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
    let disk = cfg.dir.join(format!("{name}.img"));
    if !disk.exists() {
        let f = std::fs::File::create(&disk).map_err(io(&disk))?;
        f.set_len(cfg.disk_mib * 1024 * 1024).map_err(io(&disk))?;
    }
    Ok(disk)
}

/// Recreates tap `tap` in namespace `ns`, enslaved to `br0`.
fn prepare_tap(ns: &str, tap: &str) -> Result<(), LabVmError> {
    let _ = Command::new("ip")
        .args(["-n", ns, "link", "del", tap])
        .output();
    run(Command::new("ip").args(["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"]))?;
    run(Command::new("ip").args(["-n", ns, "link", "set", tap, "master", "br0", "up"]))
}

/// QEMU for VM `name` in the lab's network namespace, without its serial settings. With
/// `pxe` false the NIC has no boot ROM and the VM boots its disk only (a machine whose
/// network boot is broken).
fn qemu_command(
    cfg: &LabVmConfig,
    name: &str,
    tap: &str,
    mac: &str,
    disk: &Path,
    pxe: bool,
) -> Result<Command, LabVmError> {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &cfg.net_ns,
        "qemu-system-x86_64",
        "-name",
        name,
    ])
    .args([
        "-accel",
        cfg.accel.as_str(),
        "-m",
        &cfg.mem_mib.to_string(),
        "-smp",
        "1",
    ])
    .args([
        "-nodefaults",
        "-boot",
        if pxe { "order=n" } else { "order=c" },
    ])
    .args([
        "-netdev",
        &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
    ])
    .args([
        "-device",
        &format!(
            "virtio-net-pci,netdev=n0,mac={mac}{}",
            if pxe { "" } else { ",romfile=" }
        ),
    ])
    .args([
        "-drive",
        &format!("file={},if=virtio,format=raw,cache=unsafe", disk.display()),
    ]);
    if cfg.no_reboot {
        cmd.arg("-no-reboot");
    }
    if cfg.firmware == Firmware::Uefi {
        // Each VM keeps its own copy of the UEFI variables.
        let vars = cfg.dir.join(format!("{name}.vars.fd"));
        if !vars.exists() {
            std::fs::copy(OVMF_VARS, &vars).map_err(|source| LabVmError::Io {
                path: vars.clone(),
                source,
            })?;
        }
        cmd.args([
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        ])
        .args([
            "-drive",
            &format!("if=pflash,format=raw,file={}", vars.display()),
        ]);
    }
    Ok(cmd)
}

/// A VM that outlives the process that started it (QEMU daemonized, its pid in
/// `<dir>/<name>.pid`, its serial console appended to `<dir>/<name>.log`): the lab's
/// workstations, which `parc master` and `parc reimage` switch on and restart across runs.
pub struct DetachedVm;

impl DetachedVm {
    pub fn pid_file(cfg: &LabVmConfig, name: &str) -> PathBuf {
        cfg.dir.join(format!("{name}.pid"))
    }

    /// The pid of `name`'s QEMU, if it runs.
    pub fn running(cfg: &LabVmConfig, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(Self::pid_file(cfg, name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("qemu-system")
            .then_some(pid)
    }

    /// Starts `name` (its disk `<dir>/<name>.img` is created empty the first time); its tap
    /// is `t<mac without colons>`. `pxe` false: see [`qemu_command`].
    pub fn start(cfg: &LabVmConfig, name: &str, mac: &str, pxe: bool) -> Result<(), LabVmError> {
        let disk = ensure_disk(cfg, name)?;
        let tap = format!("t{}", mac.replace(':', ""));
        prepare_tap(&cfg.net_ns, &tap)?;
        let log = cfg.dir.join(format!("{name}.log"));
        let mut cmd = qemu_command(cfg, name, &tap, mac, &disk, pxe)?;
        cmd.args(["-display", "none", "-daemonize", "-pidfile"])
            .arg(Self::pid_file(cfg, name))
            .args([
                "-chardev",
                &format!("file,id=s0,path={},append=on", log.display()),
                "-serial",
                "chardev:s0",
            ]);
        run(&mut cmd)
    }

    /// Kills `name`'s QEMU if it runs.
    pub fn stop(cfg: &LabVmConfig, name: &str) {
        if let Some(pid) = Self::running(cfg, name) {
            // SAFETY: kill(2) on a pid read from our own pid file, checked to be QEMU.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            for _ in 0..50 {
                if Self::running(cfg, name).is_none() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_file(Self::pid_file(cfg, name));
    }
}

impl LabVm {
    /// Starts VM `name` with `mac` (index `n` names its tap), booting from the network.
    /// Its disk is created empty on first start and kept afterwards.
    pub fn start(cfg: &LabVmConfig, name: &str, n: u32, mac: &str) -> Result<Self, LabVmError> {
        let disk = ensure_disk(cfg, name)?;
        let tap = format!("tap{n}");
        prepare_tap(&cfg.net_ns, &tap)?;
        let log = cfg.dir.join(format!("{name}.log"));
        let mut cmd = qemu_command(cfg, name, &tap, mac, &disk, true)?;
        cmd.args(["-nographic", "-serial", "stdio"]);
        let ns = &cfg.net_ns;
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabVmError::Spawn {
                cmd: "qemu-system-x86_64".into(),
                source,
            })?;
        let mut file = std::fs::File::create(&log).map_err(|source| LabVmError::Io {
            path: log.clone(),
            source,
        })?;
        let out = child.stdout.take();
        let logger = std::thread::spawn(move || {
            let Some(out) = out else { return };
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                let line = strip_escapes(&String::from_utf8_lossy(&line));
                let _ = writeln!(file, "{:8.2} {line}", started.elapsed().as_secs_f64());
                let _ = file.flush();
            }
        });
        Ok(Self {
            name: name.into(),
            mac: mac.into(),
            log,
            disk,
            started,
            tap,
            net_ns: ns.clone(),
            child,
            logger: Some(logger),
        })
    }

    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The serial log so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Seconds after QEMU's start at which the serial log first shows `needle`.
    pub fn seen_at(&self, needle: &str) -> Option<f64> {
        self.serial()
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
    }

    /// Waits for QEMU to exit, at most `timeout`; false on timeout.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Stops QEMU (if still running) and removes the tap.
    pub fn stop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(l) = self.logger.take() {
            let _ = l.join();
        }
        let _ = Command::new("ip")
            .args(["-n", &self.net_ns, "link", "del", &self.tap])
            .output();
    }
}

impl Drop for LabVm {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::strip_escapes;

    #[test]
    fn firmware_escapes_are_removed() {
        assert_eq!(
            strip_escapes("\x1bc\x1b[?7l\x1b[2JSeaBIOS (version 1.16)\r"),
            "SeaBIOS (version 1.16)"
        );
        assert_eq!(strip_escapes("plain"), "plain");
    }
}
