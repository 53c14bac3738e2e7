//! The endpoint as one value shared by the HTTP routes and the engine's `BootEndpoint`
//! adapter: the task table (persisted under `<ws>/.parc/boot/`, so a restart keeps pending
//! tasks), the script renderer, the boot environment's folder; and [`run`], which binds HTTP,
//! TFTP and (optionally) dnsmasq on the given addresses only — never on 0.0.0.0 by default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::dhcp::{DhcpMode, dnsmasq_conf};
use super::ipxe::Scripts;
use super::tasks::{BootDecision, BootTask, StoredAction, TaskError, TaskTable};

/// Why the endpoint could not start or keep its state.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("reading or writing the task table {path}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the task table {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the boot environment {0} has no vmlinuz or initrd.img (run images/bootenv/build.sh)")]
    NoBootEnv(PathBuf),
    #[error("no iPXE binaries in {0} (apt-get install ipxe)")]
    NoIpxe(PathBuf),
    #[error("starting dnsmasq")]
    Dnsmasq(#[source] std::io::Error),
    #[error("dnsmasq exited: {0}")]
    DnsmasqExited(std::process::ExitStatus),
    #[error("the DHCP mode `{0}` needs --dhcp-interface")]
    NoInterface(String),
    #[error("no randomness for a task token")]
    Random,
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("serving HTTP")]
    Http(#[source] std::io::Error),
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_hex(n: usize) -> Result<String, EndpointError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|_| EndpointError::Random)?;
    Ok(hex::encode(b))
}

/// The endpoint's state.
pub struct Endpoint {
    table: Mutex<TaskTable>,
    state_file: PathBuf,
    scripts: Scripts,
    base_url: String,
    bootenv: PathBuf,
    disk: Option<String>,
    ttl: Duration,
    changed: Notify,
}

impl Endpoint {
    /// Opens (or creates) the task table in `state_dir`; `base_url` is how workstations reach
    /// this endpoint (`http://10.77.0.1:8000`); `bootenv` holds vmlinuz and initrd.img.
    pub fn open(
        state_dir: &Path,
        base_url: &str,
        bootenv: &Path,
        ttl: Duration,
    ) -> Result<Self, EndpointError> {
        let io = |source| EndpointError::State {
            path: state_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let state_file = state_dir.join("tasks.json");
        let table = match std::fs::read_to_string(&state_file) {
            Ok(s) => TaskTable::from_json(&s).map_err(|source| EndpointError::Corrupt {
                path: state_file.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TaskTable::default(),
            Err(source) => {
                return Err(EndpointError::State {
                    path: state_file,
                    source,
                });
            }
        };
        Ok(Self {
            table: Mutex::new(table),
            state_file,
            scripts: Scripts::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            bootenv: bootenv.to_path_buf(),
            disk: None,
            ttl,
            changed: Notify::new(),
        })
    }

    /// Forces the disk the agent works on (else it takes the first of vda, sda, nvme0n1).
    #[must_use]
    pub fn with_disk(mut self, disk: Option<String>) -> Self {
        self.disk = disk;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn bootenv(&self) -> &Path {
        &self.bootenv
    }
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }
    pub fn disk(&self) -> Option<&str> {
        self.disk.as_deref()
    }

    /// Runs `f` on the table and persists it (atomically) if it succeeded.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut TaskTable) -> Result<T, TaskError>,
    ) -> Result<T, EndpointError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut table)?;
        crate::fsutil::write_atomic(&self.state_file, table.to_json().as_bytes()).map_err(
            |source| EndpointError::State {
                path: self.state_file.clone(),
                source,
            },
        )?;
        drop(table);
        self.changed.notify_waiters();
        Ok(out)
    }

    /// Assigns an action to `mac` with a fresh id and token.
    pub fn assign(&self, mac: &str, action: StoredAction) -> Result<BootTask, EndpointError> {
        self.assign_ticket(mac, action, random_hex(8)?, random_hex(32)?)
    }

    /// Assigns an action with a ticket made elsewhere (the image service's task id and token,
    /// so the agent uses one token for the boot routes and the image routes).
    pub fn assign_ticket(
        &self,
        mac: &str,
        action: StoredAction,
        id: String,
        token: String,
    ) -> Result<BootTask, EndpointError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.change(|t| t.assign(mac, action, id, token, now(), ttl).cloned())
    }

    /// What `mac` boots now (expires overdue tasks on the way).
    pub fn decide(&self, mac: &str) -> Result<BootDecision, TaskError> {
        self.change(|t| t.decide(mac, now())).map_err(|e| match e {
            EndpointError::Task(t) => t,
            other => TaskError::UnknownTask(other.to_string()),
        })
    }

    pub fn booted(&self, id: &str, token: &str) -> Result<(), TaskError> {
        self.change(|t| t.booted(id, token, now()))
            .map_err(|e| match e {
                EndpointError::Task(t) => t,
                other => TaskError::UnknownTask(other.to_string()),
            })
    }

    pub fn report(
        &self,
        id: &str,
        token: &str,
        success: bool,
        message: String,
    ) -> Result<(), TaskError> {
        self.change(|t| t.report(id, token, success, message, now()).map(|_| ()))
            .map_err(|e| match e {
                EndpointError::Task(t) => t,
                other => TaskError::UnknownTask(other.to_string()),
            })
    }

    /// The tasks that still boot the agent.
    pub fn live_tasks(&self) -> Vec<BootTask> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.expire(now());
        t.tasks
            .values()
            .filter(|x| x.state.is_live() && x.action.agent_command().is_some())
            .cloned()
            .collect()
    }

    /// The task as it is now.
    pub fn task(&self, id: &str) -> Option<BootTask> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Waits until task `id` is no longer live (reported or expired), at most `timeout`.
    pub async fn wait_ended(
        &self,
        id: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Option<BootTask> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
                t.expire(now());
                match t.get(id) {
                    None => return None,
                    Some(task) if !task.state.is_live() => return Some(task.clone()),
                    Some(_) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                r = tokio::time::timeout_at(deadline, notified) => if r.is_err() { return self.task(id) },
                // Expiry is time-driven: look again now and then.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
}

/// How `parc serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The addresses to bind (the first one is the one written into iPXE scripts).
    pub bind: Vec<IpAddr>,
    pub http_port: u16,
    pub tftp_port: u16,
    pub dhcp: DhcpMode,
    pub dhcp_interface: Option<String>,
    /// `<ws>/.parc/boot`: task table, TFTP root, dnsmasq files.
    pub state_dir: PathBuf,
    /// Folder with vmlinuz and initrd.img (images/bootenv/build.sh's output).
    pub bootenv: PathBuf,
    /// Where Debian's `ipxe` package put undionly.kpxe, ipxe.efi, snponly.efi.
    pub ipxe_dir: PathBuf,
    pub ttl: Duration,
    pub disk: Option<String>,
}

impl ServeOptions {
    pub fn base_url(&self) -> String {
        let ip = self
            .bind
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        match ip {
            IpAddr::V4(a) => format!("http://{a}:{}", self.http_port),
            IpAddr::V6(a) => format!("http://[{a}]:{}", self.http_port),
        }
    }
}

/// Fills the TFTP root: the iPXE binaries and stage 1.
fn prepare_tftp(opts: &ServeOptions, scripts: &Scripts) -> Result<PathBuf, EndpointError> {
    let root = opts.state_dir.join("tftp");
    let io = |source| EndpointError::State {
        path: root.clone(),
        source,
    };
    std::fs::create_dir_all(&root).map_err(io)?;
    let mut found = 0;
    for (src, dst) in [
        ("undionly.kpxe", "undionly.kpxe"),
        ("undionly.kpxe", "undionly.0"),
        ("ipxe.efi", "ipxe.efi"),
        ("snponly.efi", "snponly.efi"),
    ] {
        let from = opts.ipxe_dir.join(src);
        if from.is_file() {
            std::fs::copy(&from, root.join(dst)).map_err(io)?;
            found += 1;
        }
    }
    if found == 0 {
        return Err(EndpointError::NoIpxe(opts.ipxe_dir.clone()));
    }
    std::fs::write(root.join("boot.ipxe"), scripts.stage1(&opts.base_url())).map_err(io)?;
    Ok(root)
}

/// Runs the endpoint until `cancel`: HTTP (boot routes plus `extra` routes, e.g. the image
/// service), TFTP, and dnsmasq when a DHCP mode asks for it.
pub async fn run(
    opts: ServeOptions,
    ep: std::sync::Arc<Endpoint>,
    extra: axum::Router,
    cancel: CancellationToken,
) -> Result<(), EndpointError> {
    for f in ["vmlinuz", "initrd.img"] {
        if !opts.bootenv.join(f).is_file() {
            return Err(EndpointError::NoBootEnv(opts.bootenv.clone()));
        }
    }
    let tftp_root = prepare_tftp(&opts, ep.scripts())?;
    let app = super::http::router(ep.clone()).merge(extra);
    let mut tasks = tokio::task::JoinSet::new();
    for ip in &opts.bind {
        let addr = SocketAddr::new(*ip, opts.http_port);
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EndpointError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
        let app = app.clone();
        let c = cancel.clone();
        tasks.spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(c.cancelled_owned())
                .await
                .map_err(EndpointError::Http)
        });
        let addr = SocketAddr::new(*ip, opts.tftp_port);
        let s = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| EndpointError::Bind {
                what: "TFTP",
                addr,
                source,
            })?;
        let (root, c) = (tftp_root.clone(), cancel.clone());
        tasks.spawn(async move {
            crate::netboot::tftp::serve(s, root, c).await;
            Ok(())
        });
    }
    let mut dnsmasq = None;
    let server_v4 = opts.bind.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    if opts.dhcp != DhcpMode::Off {
        let iface = opts
            .dhcp_interface
            .clone()
            .ok_or_else(|| EndpointError::NoInterface(format!("{:?}", opts.dhcp)))?;
        let server = server_v4.unwrap_or(Ipv4Addr::LOCALHOST);
        let run_dir = opts.state_dir.join("dhcp");
        let io = |source| EndpointError::State {
            path: run_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&run_dir).map_err(io)?;
        if let Some(conf) = dnsmasq_conf(&opts.dhcp, server, &iface, &run_dir) {
            let path = run_dir.join("dnsmasq.conf");
            let pid_file = run_dir.join("dnsmasq.pid");
            stop_stale_dnsmasq(&pid_file, &path);
            std::fs::write(&path, conf).map_err(io)?;
            let mut cmd = tokio::process::Command::new("dnsmasq");
            cmd.arg("--keep-in-foreground")
                .arg(format!("--conf-file={}", path.display()))
                .arg(format!("--pid-file={}", pid_file.display()))
                .kill_on_drop(true);
            // Dies with parc when parc is killed (kill -9 of `parc master` mid-run)... as long
            // as it keeps its credentials: dnsmasq drops root for `nobody`, which clears the
            // parent-death signal. So the next start also stops the one a killed parc left
            // (`stop_stale_dnsmasq`), found by its pid file and its own configuration path.
            // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let child = cmd.spawn().map_err(EndpointError::Dnsmasq)?;
            dnsmasq = Some(child);
        }
    }
    let result = async {
        match dnsmasq.as_mut() {
            Some(child) => tokio::select! {
                _ = cancel.cancelled() => Ok(()),
                st = child.wait() => match st {
                    Ok(s) => Err(EndpointError::DnsmasqExited(s)),
                    Err(e) => Err(EndpointError::Dnsmasq(e)),
                },
                Some(Ok(Err(e))) = tasks.join_next() => Err(e),
            },
            None => tokio::select! {
                _ = cancel.cancelled() => Ok(()),
                Some(Ok(Err(e))) = tasks.join_next() => Err(e),
            },
        }
    }
    .await;
    cancel.cancel();
    if let Some(mut c) = dnsmasq {
        let _ = c.kill().await;
    }
    while tasks.join_next().await.is_some() {}
    result
}

/// The pid of a running dnsmasq that this endpoint started with the configuration `conf`
/// (its pid file is `pid_file`): one left behind by a parc that was killed.
pub fn stale_dnsmasq(pid_file: &Path, conf: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let want = format!("--conf-file={}", conf.display());
    cmdline
        .split(|b| *b == 0)
        .any(|a| a == want.as_bytes())
        .then_some(pid)
}

/// Stops the dnsmasq a killed parc left on this endpoint's state folder (see
/// [`stale_dnsmasq`]) and waits (up to 2 s) for its sockets to be released.
fn stop_stale_dnsmasq(pid_file: &Path, conf: &Path) {
    let Some(pid) = stale_dnsmasq(pid_file, conf) else {
        return;
    };
    // SAFETY: kill(2) on a pid just checked to be our own dnsmasq.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..40 {
        if stale_dnsmasq(pid_file, conf).is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file);
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn a_left_dnsmasq_is_found_by_its_pid_file_and_configuration_then_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (pid_file, conf) = (
            dir.path().join("dnsmasq.pid"),
            dir.path().join("dnsmasq.conf"),
        );
        // Stands in for dnsmasq: a shell (looping itself, so it stays the process) whose argv
        // holds `--conf-file=<conf>`.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 0.1; done"])
            .arg(format!("--conf-file={}", conf.display()))
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        // Until it has exec'd, /proc shows this test's own command line.
        let t0 = std::time::Instant::now();
        while stale_dnsmasq(&pid_file, &conf).is_none() && t0.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(stale_dnsmasq(&pid_file, &conf), Some(child.id() as i32));
        assert_eq!(
            stale_dnsmasq(&pid_file, &dir.path().join("other.conf")),
            None,
            "another endpoint's dnsmasq is not ours to stop"
        );
        stop_stale_dnsmasq(&pid_file, &conf);
        assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
        assert_eq!(stale_dnsmasq(&pid_file, &conf), None);
        assert!(!pid_file.exists());
    }
}
