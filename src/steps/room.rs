//! The real bodies of the eight steps (`ports::steps::StepActions`), composed from the other
//! step modules and the ports: collect into the content cache, format/capture/deploy by a
//! network-boot task (`BootEndpoint`) after restarting the machine (over SSH when it answers,
//! else through `PowerControl`), install/test/join/verify over SSH (`RemoteConnector`).
//! It names no concrete adapter: the CLI builds it from whatever the site uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::collect::{Artifact, Collected, Collector, Source};
use super::install::{InstallSpec, InstallerKind, OsFamily};
use super::join::{JoinRequest, computer_name, ensure_room_ou, join_linux, room_ou};
use super::techtest::{TechTest, run_tests};
use super::verify::{Expected, IMAGE_MARKER_PATH, check_host};
use crate::domain::multicast::{MulticastPolicy, Transport, plan_transport};
use crate::domain::procedure::Step;
use crate::domain::recipe::{Software, SourceSpec};
use crate::ports::steps::{Captured, DeployBatch, StepActions, StepCx, Target};
use crate::ports::{
    BootAction, BootEndpoint, Directory, ExecRequest, HostAddress, ImageStore, InjectFile,
    OfflineJoin, PortError, PortErrorKind, PortResult, PowerControl, RemoteConnector, RemoteHost,
    RemoteShell, SecretBytes,
};

/// What the step bodies need to know about the site.
#[derive(Debug, Clone)]
pub struct SiteSettings {
    /// The workspace folder (recipe paths are relative to it).
    pub workspace: PathBuf,
    /// DNS name of the AD domain (`lycee-mistral.test`).
    pub domain: String,
    /// Base OU of the rooms' computers.
    pub base_ou: String,
    pub join_account: String,
    /// The user parc logs in as on workstations.
    pub ssh_user: String,
    pub ssh_port: u16,
    /// Files laid on the master at format (parc's public key, the site's settings).
    pub inject: Vec<InjectFile>,
    /// How long a machine may take from its restart to network-booting parc's boot
    /// environment; one that has not by then is reported as never booted.
    pub wake_timeout: Duration,
    /// How long a machine may take from its restart to its agent's report.
    pub boot_timeout: Duration,
    /// How long a freshly imaged machine may take to answer over SSH.
    pub ssh_timeout: Duration,
    /// Whether a room's deploys go by multicast (site.toml `[deploy]`).
    pub multicast: MulticastPolicy,
    /// The run's `--min-receivers` (default: every workstation of the run).
    pub min_receivers: Option<usize>,
    /// The run's deploys read every file of the disk rather than trust the record of each
    /// workstation's last deploy (`parc reimage --read-all`).
    pub read_all: bool,
}

/// The join password, fetched only when a join runs.
pub use crate::ports::SecretSource;

/// What every Windows workstation's answer file holds besides its name and join blob.
pub struct WindowsFirstBoot {
    /// The local administrator password (a parc secret), fetched when an answer file is made.
    pub admin_password: SecretSource,
    pub time_zone: String,
    pub locale: String,
    pub input_locale: String,
    /// The lycée's name (RegisteredOrganization).
    pub organization: String,
}

/// The eight steps on real machines.
pub struct RoomActions {
    pub site: SiteSettings,
    pub connector: Arc<dyn RemoteConnector>,
    pub boot: Arc<dyn BootEndpoint>,
    pub power: Arc<dyn PowerControl>,
    pub directory: Arc<dyn Directory>,
    pub images: Arc<dyn ImageStore>,
    pub collector: Collector,
    pub join_password: SecretSource,
    /// Provisions Windows workstations' offline join blobs (site.toml `offline_join`).
    pub offline_join: Option<Arc<dyn OfflineJoin>>,
    /// The answer files' settings (site.toml `[windows]`).
    pub windows: Option<WindowsFirstBoot>,
    /// Whether the room's OU is known to exist; the first join makes sure of it, the others
    /// wait (concurrent creations of the same OU collide in the directory).
    pub ou_ready: tokio::sync::Mutex<bool>,
    /// What verify found on each workstation, for the room's report.
    pub verify_log: Arc<super::report::VerifyLog>,
    /// The multicast session of the run's deploys, while they run.
    pub session: std::sync::Mutex<Option<String>>,
}

fn other(message: impl Into<String>) -> PortError {
    PortError::new(PortErrorKind::Other, message)
}

/// A step error as a port error, keeping its chain.
fn from_step(e: super::StepError) -> PortError {
    let kind = match &e {
        super::StepError::Port { source, .. } | super::StepError::Directory { source, .. } => {
            source.kind
        }
        super::StepError::JoinCredentials { .. } => PortErrorKind::Refused,
        _ => PortErrorKind::Other,
    };
    PortError::new(kind, super::fleet::error_chain(&e))
}

impl RoomActions {
    /// What `host` runs and what differs on it from what the recipe and the directory expect.
    async fn verify_findings(
        &self,
        cx: &StepCx,
        host: &Target,
    ) -> PortResult<super::verify::Checked> {
        let specs = self
            .installers(cx)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let expected = self.expected(cx, &host.hostname, specs);
        let remote = self.connect(cx, host).await?;
        check_host(remote.as_ref(), self.directory.as_ref(), &expected)
            .await
            .map_err(from_step)
    }

    fn address(&self, cx: &StepCx, t: &Target) -> HostAddress {
        HostAddress {
            hostname: t.hostname.clone(),
            address: t.ip.clone().unwrap_or_else(|| t.hostname.clone()),
            port: self.site.ssh_port,
            user: self.site.ssh_user.clone(),
            shell: match cx.recipe.os_family {
                OsFamily::Linux => RemoteShell::Posix,
                OsFamily::Windows => RemoteShell::PowerShell,
            },
        }
    }

    /// A session on `t`. In a Windows room, the machine must answer in PowerShell: one that
    /// does not is refused here, with what a Windows room needs, before any command runs.
    async fn connect(&self, cx: &StepCx, t: &Target) -> PortResult<Box<dyn RemoteHost>> {
        let host = self.connector.connect(&self.address(cx, t)).await?;
        if cx.recipe.os_family == OsFamily::Windows {
            let req = ExecRequest {
                command: "$PSVersionTable.PSVersion.ToString()".into(),
                stdin: None,
                timeout: Duration::from_secs(60),
                cancel: cx.cancel.clone(),
            };
            let out = host.exec(req, &mut |_, _| {}).await?;
            if !out.success() {
                let said = String::from_utf8_lossy(&out.stderr);
                return Err(PortError::new(
                    PortErrorKind::Refused,
                    format!(
                        "{} answers over SSH but not in PowerShell (exit {:?}: {}): room {} is a \
                         Windows room (os.family = \"windows\"), whose machines must run Windows \
                         with its OpenSSH Server (docs/windows.md)",
                        t.hostname,
                        out.exit_status,
                        said.trim(),
                        cx.room
                    ),
                ));
            }
        }
        Ok(host)
    }

    /// The recipe's software as artifacts to collect.
    fn artifact(&self, sw: &Software) -> Artifact {
        let source = match &sw.source.value {
            SourceSpec::Url(u) => Source::Http { url: u.clone() },
            SourceSpec::Path(p) => Source::Local {
                path: self.site.workspace.join(p),
            },
            SourceSpec::Debian(p) => Source::Debian {
                package: p.clone(),
                version: Some(sw.version.value.clone()),
            },
        };
        Artifact {
            product: sw.name.value.clone(),
            source,
            sha256: sw
                .sha256
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
        }
    }

    /// Each product with its installer in the cache (collected now if missing).
    async fn installers(&self, cx: &StepCx) -> PortResult<Vec<(InstallSpec, Collected)>> {
        let mut out = Vec::new();
        for sw in &cx.recipe.software {
            let got = self
                .collector
                .collect(&self.artifact(sw), cx.reporter.as_ref())
                .await
                .map_err(|e| other(super::fleet::error_chain(&e)))?;
            // The cache names its files by digest: the kind comes from the source's name.
            let name = match &sw.source.value {
                SourceSpec::Url(u) => u
                    .split(['?', '#'])
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .unwrap_or_default()
                    .to_owned(),
                SourceSpec::Path(p) => std::path::Path::new(p)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                SourceSpec::Debian(p) => p.clone(),
            };
            let kind = match &sw.source.value {
                SourceSpec::Debian(_) => Some(InstallerKind::Deb),
                _ => InstallerKind::from_file_name(&name),
            }
            .ok_or_else(|| {
                other(format!(
                    "{}: cannot tell what kind of installer {name} is",
                    sw.name.value
                ))
            })?;
            let package = match (&sw.package, &sw.source.value) {
                (Some(p), _) => p.value.clone(),
                (None, SourceSpec::Debian(p)) => p.clone(),
                (None, _) => sw.name.value.clone(),
            };
            let spec = InstallSpec {
                product: sw.name.value.clone(),
                package,
                version: sw.version.value.clone(),
                kind,
                silent_args: None,
            };
            out.push((spec, got));
        }
        Ok(out)
    }

    /// Assigns `action` to `t`, makes it boot from the network, and waits for its agent's
    /// report. A machine that answers over SSH is asked to reboot; one that does not is
    /// restarted (or switched on) through the power port.
    /// Returns the agent's report.
    async fn network_boot(
        &self,
        cx: &StepCx,
        t: &Target,
        action: BootAction,
    ) -> PortResult<String> {
        let task = self.boot.assign(&t.mac, action).await?;
        cx.log.line(&format!(
            "boot task {task} assigned to {} ({})",
            t.hostname, t.mac
        ));
        let asked = match tokio::time::timeout(Duration::from_secs(8), self.connect(cx, t)).await {
            Ok(Ok(host)) => {
                let req = ExecRequest {
                    command: match cx.recipe.os_family {
                        OsFamily::Linux => "(sleep 1; reboot) >/dev/null 2>&1 &".into(),
                        OsFamily::Windows => "shutdown.exe /r /f /t 2".into(),
                    },
                    stdin: None,
                    timeout: Duration::from_secs(10),
                    cancel: cx.cancel.clone(),
                };
                host.exec(req, &mut |_, _| {}).await.is_ok()
            }
            _ => false,
        };
        if asked {
            cx.log.line(&format!(
                "{} answered over SSH: asked it to reboot",
                t.hostname
            ));
        } else {
            match self.power.restart(&t.hostname, &t.mac).await {
                Ok(()) => cx.log.line(&format!("{} restarted", t.hostname)),
                Err(e) => {
                    cx.log.line(&format!("{e}; switching it on"));
                    self.power.power_on(&t.hostname, &t.mac).await?;
                }
            }
        }
        let wake = self.site.wake_timeout.min(self.site.boot_timeout);
        let first = self.boot.wait_report(&task, wake, cx.cancel.clone()).await;
        let report = match first {
            Err(e) if e.kind == PortErrorKind::Timeout => {
                if !self.boot.started(&task).await? {
                    return Err(PortError::new(
                        PortErrorKind::Timeout,
                        format!(
                            "{} never booted from the network within {} s: is it switched on, set to boot from the network?",
                            t.hostname,
                            wake.as_secs()
                        ),
                    ));
                }
                let rest = self.site.boot_timeout.saturating_sub(wake);
                self.boot.wait_report(&task, rest, cx.cancel.clone()).await
            }
            other => other,
        };
        let report = report.map_err(|e| {
            if e.kind == PortErrorKind::Timeout {
                PortError::new(
                    PortErrorKind::Timeout,
                    format!(
                        "{} booted from the network but its agent did not report within {} s ({})",
                        t.hostname,
                        self.site.boot_timeout.as_secs(),
                        e.message
                    ),
                )
            } else {
                e
            }
        })?;
        cx.log
            .line(&format!("{} reported: {}", t.hostname, report.message));
        if !report.success {
            return Err(other(format!(
                "the agent on {} failed: {}",
                t.hostname, report.message
            )));
        }
        Ok(report.message)
    }

    /// Waits until the freshly imaged `t` answers over SSH (pinning the key its new system
    /// made) and has the right hostname.
    async fn wait_up(&self, cx: &StepCx, t: &Target) -> PortResult<Box<dyn RemoteHost>> {
        let addr = self.address(cx, t);
        self.connector.expect_new_key(&addr).await?;
        let t0 = Instant::now();
        let host = loop {
            let e = match tokio::time::timeout(Duration::from_secs(30), self.connect(cx, t)).await {
                Ok(Ok(h)) => break h,
                Ok(Err(e)) if e.kind == PortErrorKind::Refused => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => other("connection attempt timed out"),
            };
            if t0.elapsed() > self.site.ssh_timeout {
                return Err(PortError::new(
                    PortErrorKind::Timeout,
                    format!(
                        "{} did not answer over SSH within {} s of its report: {}",
                        t.hostname,
                        self.site.ssh_timeout.as_secs(),
                        e.message
                    ),
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(3)) => {}
                () = cx.cancel.cancelled() => return Err(PortError::new(PortErrorKind::Cancelled, "interrupted")),
            }
        };
        let name = sh(host.as_ref(), "hostname").await?;
        // Windows answers with its NetBIOS computer name (upper case, 15 characters at most).
        let same = match cx.recipe.os_family {
            OsFamily::Linux => name == t.hostname,
            OsFamily::Windows => name.eq_ignore_ascii_case(&computer_name(&t.hostname)),
        };
        if !same {
            return Err(other(format!(
                "{} came back as `{name}`, not `{}`",
                addr.address, t.hostname
            )));
        }
        cx.log.line(&format!(
            "{} answers over SSH ({:.0} s after its report)",
            t.hostname,
            t0.elapsed().as_secs_f64()
        ));
        Ok(host)
    }

    fn expected(&self, cx: &StepCx, hostname: &str, specs: Vec<InstallSpec>) -> Expected {
        Expected {
            hostname: hostname.to_string(),
            image_id: cx.image.clone().unwrap_or_default(),
            products: specs,
            domain: self.site.domain.clone(),
            ou_dn: room_ou(&cx.room, &self.site.base_ou),
            os: cx.recipe.os_family,
        }
    }

    /// Makes sure the room's OU exists, once per run (the first caller creates it, the
    /// others wait: concurrent creations of one OU collide in the directory).
    async fn room_ou_ready(&self, ou: &str) -> PortResult<()> {
        let mut ready = self.ou_ready.lock().await;
        if !*ready {
            ensure_room_ou(self.directory.as_ref(), ou)
                .await
                .map_err(from_step)?;
            *ready = true;
        }
        Ok(())
    }

    /// The answer file of Windows workstation `host`: its computer account provisioned in
    /// the room's OU (re-provisioned on a reimage) and the unattend rendered with the blob.
    /// Held in memory only; the endpoint hands it to the agent once.
    pub async fn answer_file(&self, cx: &StepCx, host: &Target) -> PortResult<SecretBytes> {
        let odj = self.offline_join.as_ref().ok_or_else(|| {
            other(
                "site.toml [domain] sets no `offline_join`: parc cannot provision the domain join of \
                 Windows workstations (docs/windows.md)",
            )
        })?;
        let win = self.windows.as_ref().ok_or_else(|| {
            other(
                "site.toml has no [windows] table: the workstations' answer file needs its \
                 `admin_password` secret (docs/windows.md)",
            )
        })?;
        let ou = room_ou(&cx.room, &self.site.base_ou);
        self.room_ou_ready(&ou).await?;
        let computer = computer_name(&host.hostname);
        let blob = odj.provision(&computer, &ou).await?;
        cx.log.line(&format!(
            "{}: offline join of {computer} provisioned in {ou}",
            host.hostname
        ));
        let password = (win.admin_password)()?;
        let text = |b: &SecretBytes, what: &str| {
            String::from_utf8(b.0.clone())
                .map_err(|_| other(format!("the {what} is not UTF-8 text")))
        };
        let (password, blob) = (
            text(&password, "administrator password")?,
            text(&blob, "offline join blob")?,
        );
        let xml = super::unattend::render_unattend(&super::unattend::Unattend {
            computer_name: &computer,
            time_zone: &win.time_zone,
            locale: &win.locale,
            input_locale: &win.input_locale,
            organization: &win.organization,
            admin_password: password.trim_end_matches(['\r', '\n']),
            odj_blob: blob.trim(),
        })
        .map_err(from_step)?;
        Ok(SecretBytes(xml.into_bytes()))
    }

    fn need_image(cx: &StepCx) -> PortResult<&str> {
        cx.image
            .as_deref()
            .ok_or_else(|| other("no image of the room to deploy"))
    }
}

impl RoomActions {
    /// Sysprep on the Windows master, refusing to go on unless it generalised it. The
    /// capture's network boot then restarts it into parc's boot environment.
    async fn generalize(&self, cx: &StepCx) -> PortResult<()> {
        let host = self.connect(cx, &cx.master).await?;
        let req = ExecRequest {
            command: super::sysprep::render_sysprep().map_err(from_step)?,
            stdin: None,
            timeout: Duration::from_secs(3600),
            cancel: cx.cancel.clone(),
        };
        let out = host.exec(req, &mut |_, _| {}).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.success() {
            return Err(other(format!(
                "sysprep on {} failed (exit {:?}): {}",
                cx.master.hostname,
                out.exit_status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let state = super::sysprep::parse_sysprep_state(&stdout).map_err(from_step)?;
        state
            .generalized()
            .map_err(|why| other(format!("{}: {why}", cx.master.hostname)))?;
        cx.log.line(&format!(
            "{}: generalised by sysprep ({})",
            cx.master.hostname,
            state.image_state.as_deref().unwrap_or_default()
        ));
        Ok(())
    }

    /// A Windows workstation joined at its first boot, from the blob of its answer file:
    /// join checks it did. The computer account sits in the room's OU, and the workstation
    /// says it is a member of the domain.
    async fn windows_joined(&self, cx: &StepCx, host: &Target, ou: &str) -> PortResult<()> {
        let computer = computer_name(&host.hostname);
        let located = self.directory.locate_computer(&host.hostname).await?;
        match located {
            Some(l) if l.dn.to_lowercase().ends_with(&ou.to_lowercase()) => {}
            Some(l) => {
                return Err(other(format!(
                    "{computer} is in the directory at {}, not in {ou}",
                    l.dn
                )));
            }
            None => {
                return Err(other(format!(
                    "{computer} has no computer account: deploy it again (its offline join is provisioned at deploy)"
                )));
            }
        }
        let remote = self.connect(cx, host).await?;
        let member = sh(remote.as_ref(), super::join::WINDOWS_DOMAIN_MEMBERSHIP).await?;
        if !member.eq_ignore_ascii_case(&self.site.domain) {
            return Err(other(format!(
                "{} did not join {} at its first boot (it says `{member}`): see C:\\Windows\\Panther\\UnattendGC\\setupact.log and C:\\Windows\\debug\\NetSetup.LOG on it",
                host.hostname, self.site.domain
            )));
        }
        cx.log.line(&format!(
            "{} joined {} in {ou} at its first boot (offline join)",
            host.hostname, self.site.domain
        ));
        Ok(())
    }
}

/// PowerShell printing the image marker of a Windows workstation.
const WINDOWS_IMAGE_MARKER: &str =
    "Get-Content -Raw -LiteralPath (Join-Path $env:ProgramData 'parc-image-id')";

/// Runs `command` and returns its trimmed stdout; a failure is an error.
async fn sh(host: &dyn RemoteHost, command: &str) -> PortResult<String> {
    let out = super::run::run_ok(host, command, command.to_string())
        .await
        .map_err(from_step)?;
    Ok(super::run::text(&out))
}

#[async_trait]
impl StepActions for RoomActions {
    async fn collect(&self, cx: &StepCx) -> PortResult<()> {
        for (spec, got) in self.installers(cx).await? {
            cx.log.line(&format!(
                "{}: {} sha256:{}{}",
                spec.product,
                got.path.display(),
                got.sha256,
                if got.fetched { "" } else { " (cached)" }
            ));
        }
        Ok(())
    }

    async fn format(&self, cx: &StepCx) -> PortResult<()> {
        let action = BootAction::Format {
            base_image: cx.recipe.base_image.value.clone(),
            hostname: cx.master.hostname.clone(),
            inject: self.site.inject.clone(),
        };
        self.network_boot(cx, &cx.master, action).await?;
        self.wait_up(cx, &cx.master).await.map(drop)
    }

    async fn install(&self, cx: &StepCx) -> PortResult<()> {
        let installers = self.installers(cx).await?;
        let host = self.connect(cx, &cx.master).await?;
        for (spec, got) in &installers {
            let outcome =
                super::install::install(host.as_ref(), cx.recipe.os_family, spec, &got.path)
                    .await
                    .map_err(from_step)?;
            cx.log.line(&format!("{}: {outcome:?}", spec.product));
        }
        Ok(())
    }

    async fn test(&self, cx: &StepCx) -> PortResult<Result<(), String>> {
        let host = self.connect(cx, &cx.master).await?;
        let tests: Vec<TechTest> = cx
            .recipe
            .tests
            .iter()
            .map(|t| TechTest {
                name: t.name.value.clone(),
                command: t.command.value.clone(),
                timeout: Duration::from_secs(u64::from(t.timeout_secs.max(1))),
            })
            .collect();
        let results = run_tests(host.as_ref(), &tests).await.map_err(from_step)?;
        let mut failed = Vec::new();
        for (t, r) in cx.recipe.tests.iter().zip(&results) {
            let exit_ok = r.exit_status == Some(t.expect_exit as u32);
            let output_ok = t
                .expect_output
                .as_deref()
                .is_none_or(|w| r.output.contains(w));
            let ok = exit_ok && output_ok;
            cx.log.line(&format!(
                "test `{}`: {} (exit {:?}) {}",
                r.name,
                if ok { "passed" } else { "FAILED" },
                r.exit_status,
                r.output.trim()
            ));
            if !ok {
                failed.push(r.name.clone());
            }
        }
        Ok(if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("failed: {}", failed.join(", ")))
        })
    }

    async fn capture(&self, cx: &StepCx) -> PortResult<Captured> {
        let existing = self.images.list(Some(&cx.room)).await?;
        let n = existing
            .iter()
            .filter_map(|i| i.version.strip_prefix('v')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        let version = format!("v{}", n + 1);
        if cx.recipe.os_family == OsFamily::Windows {
            self.generalize(cx).await?;
        }
        let action = BootAction::Capture {
            room: cx.room.clone(),
            image_version: version.clone(),
        };
        self.network_boot(cx, &cx.master, action).await?;
        let id = format!("{}/{version}", cx.room);
        match self.images.get(&id).await? {
            Some(info) if info.recipe_digest == cx.recipe_digest => Ok(Captured { id }),
            Some(info) => Err(PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "image {id} records recipe {} instead of {}",
                    info.recipe_digest, cx.recipe_digest
                ),
            )),
            None => Err(PortError::new(
                PortErrorKind::NotFound,
                format!("the master reported a capture but the store has no image {id}"),
            )),
        }
    }

    async fn deploy_host(&self, cx: &StepCx, host: &Target) -> PortResult<String> {
        let image_id = Self::need_image(cx)?.to_string();
        let unattend = match cx.recipe.os_family {
            OsFamily::Linux => None,
            OsFamily::Windows if self.boot.takes_answer_file() => {
                Some(self.answer_file(cx, host).await?)
            }
            OsFamily::Windows => None,
        };
        let multicast = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match &multicast {
            Some(id) => cx.log.line(&format!(
                "{} takes the room's multicast session {id} (unicast for what it misses)",
                host.hostname
            )),
            None => cx
                .log
                .line(&format!("{} deploys by unicast", host.hostname)),
        }
        let action = BootAction::Deploy {
            room: cx.room.clone(),
            image_id,
            hostname: host.hostname.clone(),
            unattend,
            multicast,
            read_all: self.site.read_all,
        };
        let reported = self.network_boot(cx, host, action).await?;
        self.wait_up(cx, host).await?;
        Ok(reported)
    }

    async fn begin_deploy(&self, cx: &StepCx, hosts: &[Target]) -> PortResult<DeployBatch> {
        let image_id = Self::need_image(cx)?.to_string();
        let transport = plan_transport(
            &self.site.multicast,
            hosts.len(),
            self.site.min_receivers,
            self.boot.can_multicast(),
        );
        let batch = match transport {
            Transport::Unicast { reason } => DeployBatch {
                together: false,
                note: format!("deploying {image_id} by unicast: {reason}"),
            },
            Transport::Multicast {
                receivers,
                min_receivers,
            } => {
                let id = self
                    .boot
                    .open_multicast(&image_id, receivers, min_receivers)
                    .await?;
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
                DeployBatch {
                    together: true,
                    note: format!(
                        "deploying {image_id} to {receivers} workstations by multicast \
                         (session {id}: starts when {min_receivers} are ready, or {} s after \
                         the first; the others catch up by unicast)",
                        self.site.multicast.wait_secs
                    ),
                }
            }
        };
        cx.log.line(&batch.note);
        Ok(batch)
    }

    async fn end_deploy(&self, _cx: &StepCx) -> Option<String> {
        let id = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(match self.boot.close_multicast(&id).await {
            Ok(how) => format!("multicast session {id}: {how}"),
            Err(e) => format!("multicast session {id}: {e}"),
        })
    }

    async fn join_host(&self, cx: &StepCx, host: &Target) -> PortResult<()> {
        let ou = room_ou(&cx.room, &self.site.base_ou);
        if cx.recipe.os_family == OsFamily::Windows {
            return self.windows_joined(cx, host, &ou).await;
        }
        self.room_ou_ready(&ou).await?;
        let password = (self.join_password)()?;
        let remote = self.connect(cx, host).await?;
        let req = JoinRequest::for_host(
            &host.hostname,
            &cx.room,
            &self.site.base_ou,
            &self.site.domain,
            &self.site.join_account,
        );
        let joined = join_linux(remote.as_ref(), &req, &password)
            .await
            .map_err(from_step)?;
        cx.log.line(&format!(
            "{} joined {} in {ou}: {}",
            host.hostname,
            self.site.domain,
            joined
                .details
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join("; ")
        ));
        Ok(())
    }

    async fn verify_host(&self, cx: &StepCx, host: &Target) -> PortResult<Result<(), String>> {
        let found = self.verify_findings(cx, host).await;
        let checked_at = Some(super::report::now());
        let verdict = match &found {
            Ok(c) => super::report::HostVerdict {
                findings: c.findings.clone(),
                observed: Some(c.observed.clone()),
                ..Default::default()
            },
            Err(e) => super::report::HostVerdict {
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        self.verify_log.record(super::report::HostVerdict {
            host: host.hostname.clone(),
            checked_at,
            ..verdict
        });
        Ok(found?.outcome().map_err(|f| {
            f.iter()
                .map(|f| f.message_fr())
                .collect::<Vec<_>>()
                .join("; ")
        }))
    }

    async fn check_done(&self, cx: &StepCx, step: Step, host: Option<&Target>) -> PortResult<bool> {
        let quick = |t: &Target| {
            let t = t.clone();
            async move {
                match tokio::time::timeout(Duration::from_secs(20), self.connect(cx, &t)).await {
                    Ok(Ok(h)) => Some(h),
                    _ => None,
                }
            }
        };
        match (step, host) {
            (Step::Capture, _) => Ok(self
                .images
                .list(Some(&cx.room))
                .await?
                .iter()
                .any(|i| i.recipe_digest == cx.recipe_digest)),
            (Step::Deploy, Some(t)) => {
                let Some(h) = quick(t).await else {
                    return Ok(false);
                };
                let read = match cx.recipe.os_family {
                    OsFamily::Linux => format!("cat {IMAGE_MARKER_PATH}"),
                    OsFamily::Windows => WINDOWS_IMAGE_MARKER.to_string(),
                };
                let marker = sh(h.as_ref(), &read).await.unwrap_or_default();
                Ok(Some(marker.as_str()) == cx.image.as_deref())
            }
            (Step::Join, Some(t)) => Ok(self
                .directory
                .locate_computer(&t.hostname)
                .await?
                .is_some_and(|l| {
                    l.dn.to_lowercase()
                        .ends_with(&room_ou(&cx.room, &self.site.base_ou).to_lowercase())
                })),
            (Step::Format, _) => {
                let Some(h) = quick(&cx.master).await else {
                    return Ok(false);
                };
                Ok(sh(h.as_ref(), "hostname").await.ok().as_deref()
                    == Some(cx.master.hostname.as_str()))
            }
            (Step::Install, _) => {
                let installers = self.installers(cx).await?;
                let Some(h) = quick(&cx.master).await else {
                    return Ok(false);
                };
                for (spec, _) in &installers {
                    let v =
                        super::install::installed_version(h.as_ref(), cx.recipe.os_family, spec)
                            .await
                            .map_err(from_step)?;
                    if v.as_deref() != Some(spec.version.as_str()) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
