//! The lab from Rust: brings the project's lab (`lab/*.sh`: isolated bridge, Samba AD DC,
//! namespace workstations running sshd) up and down, and tells tests where its hosts, keys
//! and domain are. The scripts are the one place that knows how the lab is built; this module
//! only runs them and reads the `lab.env` they write.
//!
//! Beside it: [`vm`], the lab's QEMU workstations and the accelerator probe; [`server`], what
//! `parc serve --lab` does to the lab's server namespace before serving there.

pub mod server;
pub mod vm;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ports::{HostAddress, SecretBytes};

/// Why the lab could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces, mounts); running as uid {uid}")]
    NotRoot { uid: u32 },
    #[error("`{script}` failed with {status}")]
    Script {
        script: String,
        status: std::process::ExitStatus,
    },
    #[error("running `{script}`")]
    Spawn {
        script: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the lab file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} lacks `{key}` (is the lab up?)")]
    Missing { path: PathBuf, key: String },
    #[error("entering network namespace {name}")]
    Netns {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// One workstation of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    pub name: String,
    pub ip: String,
}

/// A running lab, as described by its `lab.env`.
#[derive(Debug, Clone)]
pub struct Lab {
    repo: PathBuf,
    env: BTreeMap<String, String>,
    env_path: PathBuf,
}

/// The lab's state folder: `$PARC_LAB_DIR`, else `<repo>/.cache/lab` (as `lab/lib.sh`).
pub fn lab_dir(repo: &Path) -> PathBuf {
    std::env::var_os("PARC_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".cache/lab"))
}

fn run_script(repo: &Path, name: &str, args: &[&str]) -> Result<(), LabError> {
    run_script_env(repo, name, args, &[])
}

/// Runs `lab/<name>` with `args` and the environment `env` added.
fn run_script_env(
    repo: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<(), LabError> {
    let script = repo.join("lab").join(name);
    let status = Command::new(&script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .map_err(|source| LabError::Spawn {
            script: script.display().to_string(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(LabError::Script {
            script: script.display().to_string(),
            status,
        })
    }
}

fn require_root() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        Ok(())
    } else {
        Err(LabError::NotRoot { uid })
    }
}

impl Lab {
    /// Runs `lab/up.sh` (idempotent) and reads the lab's description.
    pub fn up(repo: &Path) -> Result<Lab, LabError> {
        require_root()?;
        run_script(repo, "up.sh", &[])?;
        Lab::open(repo)
    }

    /// Runs `lab/down.sh` (always succeeds when it runs).
    pub fn down(repo: &Path) -> Result<(), LabError> {
        require_root()?;
        run_script(repo, "down.sh", &[])
    }

    /// Reads the description of a lab that is up.
    pub fn open(repo: &Path) -> Result<Lab, LabError> {
        Self::open_in(repo, &lab_dir(repo))
    }

    /// Reads the description of the lab whose folder is `dir` (`parc master --lab DIR`).
    pub fn open_dir(dir: &Path) -> Result<Lab, LabError> {
        Self::open_in(dir, dir)
    }

    fn open_in(repo: &Path, dir: &Path) -> Result<Lab, LabError> {
        let env_path = dir.join("lab.env");
        let text = fs::read_to_string(&env_path).map_err(|source| LabError::Read {
            path: env_path.clone(),
            source,
        })?;
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Lab {
            repo: repo.to_owned(),
            env,
            env_path,
        })
    }

    fn get(&self, key: &str) -> Result<&str, LabError> {
        self.env
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| LabError::Missing {
                path: self.env_path.clone(),
                key: key.to_owned(),
            })
    }

    fn get_or_empty(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_default()
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Prefix of the lab's namespace names (`PARC_LAB_PREFIX`, default `parclab`).
    pub fn prefix(&self) -> &str {
        self.get_or_empty("LAB_PREFIX")
    }

    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.get_or_empty("PARC_LAB_DIR"))
    }

    /// Kerberos realm, e.g. `LYCEE-MISTRAL.TEST`.
    pub fn realm(&self) -> &str {
        self.get_or_empty("LAB_REALM")
    }

    /// DNS domain, e.g. `lycee-mistral.test`.
    pub fn dns_domain(&self) -> &str {
        self.get_or_empty("LAB_DNS_DOMAIN")
    }

    /// The domain's base DN, e.g. `DC=lycee-mistral,DC=test`.
    pub fn base_dn(&self) -> String {
        self.dns_domain()
            .split('.')
            .map(|p| format!("DC={p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Path of the DC's sam.ldb (as seen from the DC's admin session).
    pub fn dc_sam(&self) -> &str {
        self.get_or_empty("LAB_DC_SAM")
    }

    /// Path of the DC's smb.conf (as seen from the DC's admin session).
    pub fn dc_smb_conf(&self) -> &str {
        self.get_or_empty("LAB_DC_SMBCONF")
    }

    /// Name of the server namespace (parc's endpoint and the DC).
    pub fn server_netns(&self) -> &str {
        self.get_or_empty("LAB_SRV_NS")
    }

    /// The workstations, the master first.
    pub fn hosts(&self) -> Vec<LabHost> {
        self.get_or_empty("LAB_HOSTS")
            .split_whitespace()
            .filter_map(|hi| hi.split_once(':'))
            .map(|(name, ip)| LabHost {
                name: name.to_owned(),
                ip: ip.to_owned(),
            })
            .collect()
    }

    /// Where to reach workstation `name` over SSH (as root).
    pub fn address(&self, name: &str) -> Option<HostAddress> {
        self.hosts()
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| HostAddress {
                hostname: h.name,
                address: h.ip,
                port: 22,
                user: "root".into(),
                shell: crate::ports::RemoteShell::Posix,
            })
    }

    /// Where to reach the domain controller's admin session.
    pub fn dc_address(&self) -> HostAddress {
        HostAddress {
            hostname: self.get_or_empty("LAB_DC_NAME").to_owned(),
            address: self.get_or_empty("LAB_SRV_IP").to_owned(),
            port: 22,
            user: "root".into(),
            shell: crate::ports::RemoteShell::Posix,
        }
    }

    /// The domain administrator's password (a throwaway of the lab's domain).
    pub fn admin_password(&self) -> Result<SecretBytes, LabError> {
        let path = PathBuf::from(self.get("LAB_ADMIN_PASS_FILE")?);
        fs::read(&path)
            .map(SecretBytes)
            .map_err(|source| LabError::Read { path, source })
    }

    /// The public host key (OpenSSH line) of `name` (a workstation or the DC), as the lab
    /// generated it: what a technician would compare a fingerprint with.
    pub fn host_public_key(&self, name: &str) -> Result<String, LabError> {
        let path = Path::new(self.get("LAB_KEYS_DIR")?).join(format!("{name}.pub"));
        fs::read_to_string(&path).map_err(|source| LabError::Read { path, source })
    }

    /// Lets the holder of `public_key_line` log in as root on every lab host.
    pub fn authorize_key(&self, public_key_line: &str) -> Result<(), LabError> {
        let path = PathBuf::from(self.get("LAB_AUTHORIZED_KEYS")?);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current.lines().any(|l| l.trim() == public_key_line.trim()) {
            return Ok(());
        }
        // Append in place: the file is bind-mounted into the workstations by inode.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| LabError::Read {
                path: path.clone(),
                source,
            })?;
        writeln!(f, "{}", public_key_line.trim()).map_err(|source| LabError::Read { path, source })
    }

    /// The lycée's own DHCP server (`lab/dhcp-up.sh`, started by `up.sh` unless
    /// `PARC_LAB_DHCP=0`), e.g. `10.77.0.254`: parc runs in proxyDHCP mode next to it.
    pub fn dhcp_address(&self) -> Option<&str> {
        self.env.get("LAB_DHCP_IP").map(String::as_str)
    }

    /// The namespace of the lycée's DHCP server, when it runs.
    pub fn dhcp_netns(&self) -> Option<&str> {
        self.env.get("LAB_DHCP_NS").map(String::as_str)
    }

    /// Starts one more DHCP server on the lab's bridge (`lab/dhcp-up.sh NAME IP --addresses
    /// FIRST,LAST`): namespace `<prefix>-NAME` at `ip`/24, handing out `first..=last`. For
    /// tests of a segment with a second (rogue) DHCP server; [`Lab::stop_dhcp`] removes it,
    /// `lab/down.sh` too.
    pub fn start_dhcp(
        &self,
        name: &str,
        ip: Ipv4Addr,
        first: Ipv4Addr,
        last: Ipv4Addr,
    ) -> Result<(), LabError> {
        require_root()?;
        let (ip, range) = (ip.to_string(), format!("{first},{last}"));
        self.run_lab_script("dhcp-up.sh", &[name, &ip, "--addresses", &range])
    }

    /// Stops a DHCP server of [`Lab::start_dhcp`] and removes its namespace (succeeds when it
    /// does not run).
    pub fn stop_dhcp(&self, name: &str) -> Result<(), LabError> {
        require_root()?;
        self.run_lab_script("dhcp-down.sh", &[name])
    }

    /// Runs a lab script for this lab (its folder and prefix, whatever the environment says).
    fn run_lab_script(&self, name: &str, args: &[&str]) -> Result<(), LabError> {
        run_script_env(
            &self.repo,
            name,
            args,
            &[
                ("PARC_LAB_DIR", self.dir().display().to_string()),
                ("PARC_LAB_PREFIX", self.prefix().to_owned()),
            ],
        )
    }

    /// Moves the calling thread into the server namespace's network (parc's endpoint address),
    /// so sockets it opens afterwards (and threads it spawns) reach the lab's bridge.
    pub fn enter_server_netns(&self) -> Result<(), LabError> {
        enter_netns(self.server_netns())
    }
}

/// `setns(2)` the calling thread into the named network namespace (`/run/netns/<name>`).
pub fn enter_netns(name: &str) -> Result<(), LabError> {
    let err = |source| LabError::Netns {
        name: name.to_owned(),
        source,
    };
    let f = fs::File::open(Path::new("/run/netns").join(name)).map_err(err)?;
    // SAFETY: setns on a valid, open namespace file descriptor; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(err(std::io::Error::last_os_error()))
    }
}

/// Runs `f` on a thread inside network namespace `name` (so the sockets it opens, and the
/// processes it spawns, live there) and returns what it returned.
pub fn run_in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(name)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(LabError::Netns {
                name: name.to_owned(),
                source: std::io::Error::other("the thread in the namespace panicked"),
            })
        })
    })
}

/// What of a lab is still present on the machine: namespaces of `prefix`, processes inside
/// them, and mounts (in any process's mount namespace) under `lab_dir`. Empty means clean.
pub fn leftovers(prefix: &str, lab_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{prefix}-")) {
                found.push(format!("network namespace {name}"));
            }
        }
    }
    let needle = format!("{}/", lab_dir.display());
    if let Ok(procs) = fs::read_dir("/proc") {
        for p in procs.flatten() {
            let pid = p.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let Ok(mi) = fs::read_to_string(p.path().join("mountinfo")) else {
                continue;
            };
            let zombie = fs::read_to_string(p.path().join("stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true);
            if zombie {
                continue;
            }
            if mi.contains(&needle) {
                found.push(format!("process {pid} holds a mount under {needle}"));
            } else if cmdline.contains(&needle) {
                found.push(format!("process {pid} runs from the lab: {cmdline}"));
            }
        }
    }
    found
}
