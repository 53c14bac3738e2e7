//! The ports: every trait through which the engine reaches the outside world.
//!
//! The engine (`crate::engine`) only ever sees these traits. Real adapters live in
//! `crate::adapters` (SSH on russh, HTTP on reqwest, the PXE endpoint, Samba/AD, the image
//! store on disk); tests use in-memory fakes. Traits are object-safe (`async_trait`) so the
//! engine can hold `Arc<dyn Trait>` chosen at run time.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub mod steps;

/// Why a port call failed. Adapters map their own errors onto these kinds so the engine can
/// decide what to retry and how to report it; the message names the object that failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub kind: PortErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// Could not reach the peer (connection refused, no route, DNS). Retrying may help.
    Unreachable,
    /// The peer was reached but refused us (authentication, unknown host key, permission).
    Refused,
    /// The operation did not finish within its timeout.
    Timeout,
    /// The operation was cancelled (Ctrl-C, run interrupted).
    Cancelled,
    /// Data arrived but does not match what was expected (digest, size, format).
    Integrity,
    /// The thing asked for does not exist.
    NotFound,
    /// Anything else.
    Other,
}

impl PortError {
    pub fn new(kind: PortErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Which output stream a chunk of remote output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A command to run on a remote host.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The command line, run by the host's shell (sh on Linux, PowerShell on Windows).
    pub command: String,
    /// Bytes written to the command's stdin, then stdin is closed. Secrets travel here, never
    /// in `command`. `Debug` output of the request never shows them.
    pub stdin: Option<SecretBytes>,
    /// Upper bound for the whole command; on expiry the command is killed.
    pub timeout: Duration,
    /// Cancels the command (the remote process is signalled) when triggered.
    pub cancel: CancellationToken,
}

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, Default)]
pub struct SecretBytes(pub Vec<u8>);

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Exit status; `None` when the command was killed by a signal.
    pub exit_status: Option<u32>,
    /// The whole stdout (also streamed to the sink as it arrived).
    pub stdout: Vec<u8>,
    /// The whole stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }
}

/// Receives remote output as it arrives.
pub type OutputSink<'a> = &'a mut (dyn FnMut(OutputStream, &[u8]) + Send);

/// One reachable machine (a master or a workstation), e.g. over SSH.
#[async_trait]
pub trait RemoteHost: Send + Sync {
    /// The host's name as the workspace knows it (hostname).
    fn name(&self) -> &str;

    /// Runs a command, streaming its output to `sink`.
    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> PortResult<ExecOutcome>;

    /// Copies a local file to `remote_path`; returns the sha256 (hex) of what arrived, checked
    /// on the remote side.
    async fn upload(&self, local: &Path, remote_path: &str) -> PortResult<String>;

    /// Copies `remote_path` to a local file; returns the sha256 (hex) of what was written.
    async fn download(&self, remote_path: &str, local: &Path) -> PortResult<String>;
}

/// Opens connections to hosts. The engine asks for a host by name and address.
#[async_trait]
pub trait RemoteConnector: Send + Sync {
    async fn connect(&self, host: &HostAddress) -> PortResult<Box<dyn RemoteHost>>;

    /// parc has just (re)imaged `host`: forget the key pinned for it and pin the one it
    /// offers at its next connection (the new system made its own). Default: nothing to do.
    async fn expect_new_key(&self, _host: &HostAddress) -> PortResult<()> {
        Ok(())
    }
}

/// Where a host can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub hostname: String,
    /// IP address or resolvable name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// What runs the commands sent to it.
    pub shell: RemoteShell,
}

/// The shell of a remote host: what `ExecRequest::command` is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteShell {
    /// POSIX sh (Linux workstations, a Samba DC).
    #[default]
    Posix,
    /// PowerShell (Windows' OpenSSH Server; each command is sent as an encoded script).
    PowerShell,
}

/// What a workstation should do at its next network boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootAction {
    /// Boot from the local disk (the default once a task finished).
    LocalDisk,
    /// Partition, format and lay down the base OS (the master): the image store's base image
    /// `base_image`, named `hostname`, with `inject` written on its root filesystem (parc's
    /// SSH key, the site's settings).
    Format {
        base_image: String,
        hostname: String,
        inject: Vec<InjectFile>,
    },
    /// Capture the disk into a new image of the room.
    Capture { room: String, image_version: String },
    /// Deploy the given image. A Windows workstation's answer file (`unattend`: its name,
    /// locale, local administrator password and domain join blob) is a secret: the endpoint
    /// keeps it in memory, hands it to the agent once and never stores it.
    Deploy {
        room: String,
        image_id: String,
        hostname: String,
        unattend: Option<SecretBytes>,
        /// The room's multicast session (from [`BootEndpoint::open_multicast`]) the
        /// workstation takes the image from, catching up by unicast.
        multicast: Option<String>,
        /// The agent reads every file of the disk rather than trust the record of its last
        /// deploy (`parc reimage --read-all`).
        read_all: bool,
    },
}

/// A file laid on a freshly formatted master's root filesystem. Never a secret: the task
/// that carries it is readable by the machine that boots it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InjectFile {
    /// Absolute path on the root filesystem, e.g. `/root/.ssh/authorized_keys`.
    pub path: String,
    /// Unix permission bits, e.g. `0o600`.
    pub mode: u32,
    pub content: String,
}

/// A task's final report from a workstation's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    pub mac: String,
    pub success: bool,
    pub message: String,
}

/// The network-boot endpoint (PXE/iPXE over HTTP, or WDS).
#[async_trait]
pub trait BootEndpoint: Send + Sync {
    /// Assigns what the workstation with this MAC does at its next boot; returns a task id.
    async fn assign(&self, mac: &str, action: BootAction) -> PortResult<String>;
    /// Waits for the workstation's final report of task `task_id`, at most `timeout`.
    async fn wait_report(
        &self,
        task_id: &str,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> PortResult<BootReport>;

    /// Whether the workstation of task `task_id` has network-booted (its boot environment
    /// said so): a machine that never does is off, or not set to boot from the network.
    async fn started(&self, _task_id: &str) -> PortResult<bool> {
        Ok(true)
    }

    /// Whether a Windows deploy's answer file reaches the workstation through this endpoint
    /// (parc's agent writes it); an endpoint whose deploy joins the domain itself (WDS) says
    /// no, and no offline join is provisioned for it.
    fn takes_answer_file(&self) -> bool {
        true
    }

    /// Whether this endpoint can send a room's deploys as one multicast stream.
    fn can_multicast(&self) -> bool {
        false
    }

    /// Opens a multicast session sending `image_id` to `receivers` workstations, started
    /// once `min_receivers` are ready (or the site's wait after the first); returns its id,
    /// to name in their [`BootAction::Deploy`].
    async fn open_multicast(
        &self,
        image_id: &str,
        _receivers: usize,
        _min_receivers: usize,
    ) -> PortResult<String> {
        Err(PortError::new(
            PortErrorKind::Other,
            format!("this endpoint cannot multicast {image_id}"),
        ))
    }

    /// Ends session `id` (stops its sender if it still runs); returns how it went.
    async fn close_multicast(&self, _id: &str) -> PortResult<String> {
        Ok(String::new())
    }
}

/// Summary of one stored image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub room: String,
    pub version: String,
    /// `<room>/<version>`.
    pub id: String,
    /// The recipe digest recorded in the manifest at capture.
    pub recipe_digest: String,
    /// The software-list digest recorded in the manifest at capture.
    pub software_digest: String,
    /// When the capture finished (RFC 3339), when the store records it.
    pub captured_at: Option<String>,
}

/// The image store.
#[async_trait]
pub trait ImageStore: Send + Sync {
    async fn list(&self, room: Option<&str>) -> PortResult<Vec<ImageInfo>>;
    async fn get(&self, id: &str) -> PortResult<Option<ImageInfo>>;
    /// Re-hashes every stream of the image: `Ok(Err(msg))` names the broken stream.
    async fn verify(&self, id: &str) -> PortResult<Result<(), String>>;
}

/// Where a computer account lives in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerLocation {
    pub dn: String,
}

/// The domain (Active Directory) the workstations join.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Ensures the OU exists (creating it if missing).
    async fn ensure_ou(&self, ou_dn: &str) -> PortResult<()>;
    /// Where the computer account of `hostname` is, if it exists.
    async fn locate_computer(&self, hostname: &str) -> PortResult<Option<ComputerLocation>>;
}

/// A secret fetched only when a step needs it (from parc's secret store).
pub type SecretSource = std::sync::Arc<dyn Fn() -> PortResult<SecretBytes> + Send + Sync>;

/// Provisions computer accounts for Offline Domain Join (ODJ): the Windows workstation joins
/// at its first boot from the blob, with no join password on it.
#[async_trait]
pub trait OfflineJoin: Send + Sync {
    /// Creates the computer account `computer` (NetBIOS name) in `ou_dn`, or re-provisions it
    /// when it exists (a reimage), and returns the ODJ blob as base64 text. The blob is a
    /// secret: it carries the machine account's new password.
    async fn provision(&self, computer: &str, ou_dn: &str) -> PortResult<SecretBytes>;
}

/// Switches workstations on (wake-on-LAN in the field, VM start in the lab).
#[async_trait]
pub trait PowerControl: Send + Sync {
    /// Switches the machine on; nothing happens to one already running.
    async fn power_on(&self, hostname: &str, mac: &str) -> PortResult<()>;

    /// Forces a running (or hung) machine to restart. Wake-on-LAN cannot: the default says so.
    async fn restart(&self, hostname: &str, _mac: &str) -> PortResult<()> {
        Err(PortError::new(
            PortErrorKind::Other,
            format!(
                "{hostname} cannot be restarted remotely: restart it by hand so it boots from the network"
            ),
        ))
    }
}

/// One progress event from the engine. The UI layer renders these (bars on a terminal, one
/// line per event otherwise, JSON with `--json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ProgressEvent {
    StepStarted {
        room: String,
        step: String,
    },
    StepFinished {
        room: String,
        step: String,
        status: String,
    },
    HostStarted {
        step: String,
        host: String,
    },
    HostProgress {
        step: String,
        host: String,
        done: u64,
        total: Option<u64>,
        unit: String,
    },
    HostFinished {
        step: String,
        host: String,
        ok: bool,
        message: String,
    },
    Message {
        text: String,
    },
    RunStarted {
        room: String,
        run: i64,
    },
    RunFinished {
        room: String,
        run: i64,
        outcome: String,
    },
}

/// Receives progress events. Implementations must be cheap and never fail.
pub trait Reporter: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// A reporter that drops everything (for tests and `--quiet`).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _event: ProgressEvent) {}
}
