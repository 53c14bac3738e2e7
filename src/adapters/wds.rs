//! The `BootEndpoint` port on a Windows Deployment Services server, driven over SSH in
//! PowerShell (its OpenSSH Server, an account in the WDS administrators), for lycées that
//! deploy through their Windows Server (site.toml `[deploy] backend = "wds"`).
//!
//! WDS only deploys: a format or a capture of the master goes to parc's own PXE endpoint
//! (`pxe`), which WDS never sees. A deploy of image `<room>/<version>`:
//! 1. `Get-WdsInstallImage` in the site's image group; when absent, the image's Windows
//!    partition is exported as a WIM (`parc image export --wim`'s code), uploaded to the
//!    server (sha256 checked on arrival) and imported with `Import-WdsInstallImage
//!    -Multicast`, which also creates its auto-cast transmission;
//! 2. the workstation is prestaged: `Get-WdsClient -DeviceID <MAC>`, removed first when it
//!    exists (a reimage), then `New-WdsClient -DeviceID <MAC> -DeviceName <hostname>
//!    -JoinDomain $true -Domain … -OU <room's OU> -PxePromptPolicy NoPrompt`: WDS joins it in
//!    the room's OU itself, with the server's rights, so no password reaches the workstation;
//! 3. `wait_report` follows the workstation in the image's transmission
//!    (`Get-WdsMulticastClient`): WDS has no report of its own, so the deploy is "handed to
//!    WDS" once its client was seen and left the transmission (or reached 100 %), and the
//!    engine's wait for the workstation's SSH after it is what confirms it came up.
//!
//! `LocalDisk` (the task is over) removes the prestaged device, so a later network boot does
//! not reinstall it. Every command is a PowerShell script ending in `ConvertTo-Json
//! -Compress`; the parsers accept what ConvertTo-Json makes of nothing (no output), one
//! object and several (an array). Rendered and parsed from Microsoft's documented cmdlets and
//! properties only: no WDS server ran here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::ports::{
    BootAction, BootEndpoint, BootReport, ExecRequest, HostAddress, PortError, PortErrorKind,
    PortResult, RemoteConnector, RemoteHost,
};
use crate::quote::ps;

/// Makes the WIM of a stored image, locally (exported once, then reused).
pub type WimSource = Arc<dyn Fn(&str) -> PortResult<PathBuf> + Send + Sync>;

/// What the site says of its WDS server.
#[derive(Debug, Clone)]
pub struct WdsSettings {
    /// WDS image group parc's images go in.
    pub image_group: String,
    /// Folder on the server the WIMs are uploaded to before import.
    pub wim_folder: String,
    /// Import with `-Multicast` (an auto-cast transmission per image).
    pub multicast: bool,
    /// DNS name of the domain the workstations join.
    pub domain: String,
    /// Base OU of the rooms (`OU=<room>,<base>`).
    pub base_ou: String,
    /// How often the transmission is looked at while waiting.
    pub poll: Duration,
}

/// One of `Get-WdsInstallImage`'s objects (the properties parc reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdsInstallImage {
    pub image_name: String,
    #[serde(default)]
    pub image_group: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
}

/// One of `Get-WdsClient`'s objects (a prestaged device).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdsClient {
    #[serde(rename = "DeviceID", alias = "DeviceId")]
    pub device_id: String,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default)]
    pub join_domain: Option<bool>,
    #[serde(default, rename = "OU")]
    pub ou: Option<String>,
}

/// One of `Get-WdsMulticastClient`'s objects (a client in a transmission).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdsMulticastClient {
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub percent_completion: Option<f64>,
}

/// ConvertTo-Json's output as a list: nothing, one object or an array.
pub use crate::psjson::list as parse_list;

/// A MAC as WDS writes device ids: `52-54-00-B2-04-01`.
pub fn device_id(mac: &str) -> String {
    mac.replace([':', '.'], "-").to_ascii_uppercase()
}

/// The WDS image name of image `<room>/<version>`.
pub fn image_name(image_id: &str) -> String {
    format!("parc {image_id}")
}

/// The scripts, one per cmdlet call (every value quoted for PowerShell).
pub mod scripts {
    use super::{WdsSettings, device_id, image_name, ps};

    pub fn get_image(s: &WdsSettings, image_id: &str) -> String {
        format!(
            "@(Get-WdsInstallImage -ImageGroup {} -ErrorAction SilentlyContinue | Where-Object {{ $_.ImageName -eq {} }} | Select-Object ImageName, ImageGroup, FileName) | ConvertTo-Json -Compress",
            ps(&s.image_group),
            ps(&image_name(image_id))
        )
    }

    pub fn import_image(s: &WdsSettings, image_id: &str, wim_path: &str) -> String {
        let multicast = if s.multicast {
            format!(
                " -Multicast -TransmissionName {}",
                ps(&image_name(image_id))
            )
        } else {
            String::new()
        };
        format!(
            "if (-not (Get-WdsInstallImageGroup -Name {g} -ErrorAction SilentlyContinue)) {{ New-WdsInstallImageGroup -Name {g} | Out-Null }}\n\
             Import-WdsInstallImage -ImageGroup {g} -Path {p} -NewImageName {n}{multicast} | Select-Object ImageName, ImageGroup, FileName | ConvertTo-Json -Compress",
            g = ps(&s.image_group),
            p = ps(wim_path),
            n = ps(&image_name(image_id)),
        )
    }

    pub fn get_client(mac: &str) -> String {
        format!(
            "@(Get-WdsClient -DeviceID {} -ErrorAction SilentlyContinue | Select-Object DeviceID, DeviceName, JoinDomain, OU) | ConvertTo-Json -Compress",
            ps(&device_id(mac))
        )
    }

    pub fn remove_client(mac: &str) -> String {
        format!(
            "Remove-WdsClient -DeviceID {} -ErrorAction SilentlyContinue",
            ps(&device_id(mac))
        )
    }

    pub fn new_client(s: &WdsSettings, mac: &str, hostname: &str, ou: &str) -> String {
        format!(
            "New-WdsClient -DeviceID {} -DeviceName {} -JoinDomain $true -Domain {} -OU {} -PxePromptPolicy NoPrompt | Select-Object DeviceID, DeviceName, JoinDomain, OU | ConvertTo-Json -Compress",
            ps(&device_id(mac)),
            ps(hostname),
            ps(&s.domain),
            ps(ou)
        )
    }

    pub fn multicast_clients(image_id: &str) -> String {
        format!(
            "@(Get-WdsMulticastClient -TransmissionName {} -ErrorAction SilentlyContinue | Select-Object MacAddress, IpAddress, PercentCompletion) | ConvertTo-Json -Compress",
            ps(&image_name(image_id))
        )
    }
}

#[derive(Debug, Clone)]
struct WdsTask {
    mac: String,
    image_id: String,
    hostname: String,
    /// Seen in the image's transmission.
    seen: bool,
}

pub struct WdsBootEndpoint {
    /// parc's own endpoint, for the master's format and capture.
    pxe: Arc<dyn BootEndpoint>,
    connector: Arc<dyn RemoteConnector>,
    server: HostAddress,
    settings: WdsSettings,
    wim: WimSource,
    tasks: Mutex<HashMap<String, WdsTask>>,
}

fn other(message: impl Into<String>) -> PortError {
    PortError::new(PortErrorKind::Other, message)
}

impl WdsBootEndpoint {
    pub fn new(
        pxe: Arc<dyn BootEndpoint>,
        connector: Arc<dyn RemoteConnector>,
        server: HostAddress,
        settings: WdsSettings,
        wim: WimSource,
    ) -> Self {
        Self {
            pxe,
            connector,
            server,
            settings,
            wim,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WdsTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `script` on the server; its stdout, or an error naming `what`.
    async fn run(&self, host: &dyn RemoteHost, what: &str, script: String) -> PortResult<String> {
        let req = ExecRequest {
            command: script,
            stdin: None,
            timeout: Duration::from_secs(1800),
            cancel: CancellationToken::new(),
        };
        let out = host.exec(req, &mut |_, _| {}).await?;
        if !out.success() {
            return Err(other(format!(
                "{what} on the WDS server {} failed (exit {:?}): {}",
                self.server.hostname,
                out.exit_status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn parsed<T: serde::de::DeserializeOwned>(&self, what: &str, out: &str) -> PortResult<Vec<T>> {
        parse_list(out).map_err(|e| {
            PortError::new(
                PortErrorKind::Integrity,
                format!("{what}: the WDS server printed what parc cannot read: {e}"),
            )
        })
    }

    /// Imports the image unless the server has it.
    async fn ensure_image(&self, host: &dyn RemoteHost, image_id: &str) -> PortResult<()> {
        let what = format!("looking for {} in WDS", image_name(image_id));
        let out = self
            .run(host, &what, scripts::get_image(&self.settings, image_id))
            .await?;
        if !self.parsed::<WdsInstallImage>(&what, &out)?.is_empty() {
            return Ok(());
        }
        let local = (self.wim)(image_id)?;
        let file = format!("{}.wim", image_id.replace('/', "-"));
        let remote = format!(
            "{}\\{file}",
            self.settings.wim_folder.trim_end_matches('\\')
        );
        host.upload(&local, &remote).await?;
        let what = format!("importing {} into WDS", image_name(image_id));
        let out = self
            .run(
                host,
                &what,
                scripts::import_image(&self.settings, image_id, &remote),
            )
            .await?;
        if self.parsed::<WdsInstallImage>(&what, &out)?.is_empty() {
            return Err(other(format!(
                "{what}: WDS listed no image after the import"
            )));
        }
        Ok(())
    }

    /// Prestages `mac` as `hostname` in `ou` (removing a previous prestaging first).
    async fn prestage(
        &self,
        host: &dyn RemoteHost,
        mac: &str,
        hostname: &str,
        ou: &str,
    ) -> PortResult<WdsClient> {
        let what = format!("looking for the prestaged device {}", device_id(mac));
        let out = self.run(host, &what, scripts::get_client(mac)).await?;
        if !self.parsed::<WdsClient>(&what, &out)?.is_empty() {
            self.run(
                host,
                "removing a prestaged device",
                scripts::remove_client(mac),
            )
            .await?;
        }
        let what = format!("prestaging {hostname} ({})", device_id(mac));
        let out = self
            .run(
                host,
                &what,
                scripts::new_client(&self.settings, mac, hostname, ou),
            )
            .await?;
        self.parsed::<WdsClient>(&what, &out)?
            .into_iter()
            .next()
            .ok_or_else(|| other(format!("{what}: WDS printed no device")))
    }

    /// The image's transmission entry for `mac`, if any.
    async fn in_transmission(&self, t: &WdsTask) -> PortResult<Option<WdsMulticastClient>> {
        let host = self.connector.connect(&self.server).await?;
        let what = format!("reading the transmission of {}", image_name(&t.image_id));
        let out = self
            .run(
                host.as_ref(),
                &what,
                scripts::multicast_clients(&t.image_id),
            )
            .await?;
        let want = device_id(&t.mac);
        Ok(self
            .parsed::<WdsMulticastClient>(&what, &out)?
            .into_iter()
            .find(|c| c.mac_address.as_deref().map(device_id) == Some(want.clone())))
    }
}

#[async_trait]
impl BootEndpoint for WdsBootEndpoint {
    async fn assign(&self, mac: &str, action: BootAction) -> PortResult<String> {
        match action {
            BootAction::Deploy {
                room,
                image_id,
                hostname,
                unattend: _,
                multicast: _,
                read_all: _,
            } => {
                let host = self.connector.connect(&self.server).await?;
                self.ensure_image(host.as_ref(), &image_id).await?;
                let ou = format!("OU={room},{}", self.settings.base_ou);
                self.prestage(host.as_ref(), mac, &hostname, &ou).await?;
                let mut tasks = self.lock();
                let id = format!("wds-{}-{}", device_id(mac), tasks.len() + 1);
                tasks.insert(
                    id.clone(),
                    WdsTask {
                        mac: mac.into(),
                        image_id,
                        hostname,
                        seen: false,
                    },
                );
                Ok(id)
            }
            BootAction::LocalDisk => {
                let host = self.connector.connect(&self.server).await?;
                self.run(
                    host.as_ref(),
                    "removing a prestaged device",
                    scripts::remove_client(mac),
                )
                .await?;
                self.pxe.assign(mac, BootAction::LocalDisk).await
            }
            action @ (BootAction::Format { .. } | BootAction::Capture { .. }) => {
                self.pxe.assign(mac, action).await
            }
        }
    }

    async fn wait_report(
        &self,
        task_id: &str,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> PortResult<BootReport> {
        let Some(task) = self.lock().get(task_id).cloned() else {
            return self.pxe.wait_report(task_id, timeout, cancel).await;
        };
        let t0 = Instant::now();
        let mut seen = task.seen;
        loop {
            match self.in_transmission(&task).await? {
                Some(c) if c.percent_completion.unwrap_or(0.0) >= 100.0 => break,
                Some(_) => seen = true,
                None if seen => break,
                None => {}
            }
            if let Some(t) = self.lock().get_mut(task_id) {
                t.seen = seen;
            }
            if t0.elapsed() >= timeout {
                return Err(PortError::new(
                    PortErrorKind::Timeout,
                    format!(
                        "{} {} in the WDS transmission of {} within {} s",
                        task.hostname,
                        if seen {
                            "did not finish"
                        } else {
                            "never appeared"
                        },
                        image_name(&task.image_id),
                        timeout.as_secs()
                    ),
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                () = cancel.cancelled() => {
                    return Err(PortError::new(PortErrorKind::Cancelled, format!("waiting for {task_id}: cancelled")));
                }
            }
        }
        Ok(BootReport {
            mac: task.mac.clone(),
            success: true,
            message: format!(
                "handed to WDS: {} received {} (the workstation's own start confirms it)",
                task.hostname,
                image_name(&task.image_id)
            ),
        })
    }

    async fn started(&self, task_id: &str) -> PortResult<bool> {
        let Some(task) = self.lock().get(task_id).cloned() else {
            return self.pxe.started(task_id).await;
        };
        Ok(task.seen || self.in_transmission(&task).await?.is_some())
    }

    fn takes_answer_file(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ExecOutcome, OutputSink, RemoteShell};
    use std::path::Path;

    fn settings() -> WdsSettings {
        WdsSettings {
            image_group: "parc".into(),
            wim_folder: r"D:\RemoteInstall\parc".into(),
            multicast: true,
            domain: "lycee-mistral.test".into(),
            base_ou: "OU=Pedagogie,DC=lycee-mistral,DC=test".into(),
            poll: Duration::from_millis(1),
        }
    }

    const MAC: &str = "52:54:00:b2:04:01";
    const OU: &str = "OU=b204,OU=Pedagogie,DC=lycee-mistral,DC=test";

    #[test]
    fn golden_scripts() {
        let s = settings();
        let all = [
            ("get-image", scripts::get_image(&s, "b204/v3")),
            (
                "import-image",
                scripts::import_image(&s, "b204/v3", r"D:\RemoteInstall\parc\b204-v3.wim"),
            ),
            ("get-client", scripts::get_client(MAC)),
            ("remove-client", scripts::remove_client(MAC)),
            ("new-client", scripts::new_client(&s, MAC, "b204-p01", OU)),
            ("multicast-clients", scripts::multicast_clients("b204/v3")),
        ]
        .iter()
        .map(|(k, v)| format!("### {k}\n{v}\n"))
        .collect::<String>();
        crate::golden::check("src/adapters/wds-golden.txt", &all);
    }

    #[test]
    fn convert_to_json_shapes() {
        // Nothing, one object, an array (Get-WdsClient's documented properties).
        assert_eq!(parse_list::<WdsClient>("").unwrap(), vec![]);
        let one = r#"{"DeviceID":"52-54-00-B2-04-01","DeviceName":"b204-p01","JoinDomain":true,"OU":"OU=b204,OU=Pedagogie,DC=lycee-mistral,DC=test"}"#;
        let c = parse_list::<WdsClient>(one).unwrap();
        assert_eq!(c[0].device_id, "52-54-00-B2-04-01");
        assert_eq!(c[0].ou.as_deref(), Some(OU));
        let many = format!("[{one},{}]", one.replace("b204-p01", "b204-p02"));
        assert_eq!(parse_list::<WdsClient>(&many).unwrap().len(), 2);
        let img = parse_list::<WdsInstallImage>(
            r#"{"ImageName":"parc b204/v3","ImageGroup":"parc","FileName":"b204-v3.wim"}"#,
        )
        .unwrap();
        assert_eq!(img[0].image_name, "parc b204/v3");
        let mc = parse_list::<WdsMulticastClient>(
            r#"[{"MacAddress":"525400B20401","IpAddress":"10.77.0.11","PercentCompletion":42}]"#,
        )
        .unwrap();
        assert_eq!(
            device_id(mc[0].mac_address.as_deref().unwrap()),
            "525400B20401"
        );
        assert!(parse_list::<WdsClient>("Get-WdsClient : not recognized").is_err());
    }

    /// Answers scripted outputs by the cmdlet they call, and records the scripts.
    #[derive(Clone, Default)]
    struct FakeWds {
        calls: Arc<Mutex<Vec<String>>>,
        has_image: bool,
        has_client: bool,
        transmission: Arc<Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl RemoteHost for FakeWds {
        fn name(&self) -> &str {
            "wds1"
        }
        async fn exec(&self, req: ExecRequest, _: OutputSink<'_>) -> PortResult<ExecOutcome> {
            let c = req.command;
            self.calls.lock().unwrap().push(c.clone());
            let client = r#"{"DeviceID":"52-54-00-B2-04-01","DeviceName":"b204-p01","JoinDomain":true,"OU":"OU=b204"}"#;
            let out = if c.contains("Import-WdsInstallImage") {
                r#"{"ImageName":"parc b204/v3","ImageGroup":"parc","FileName":"b204-v3.wim"}"#
                    .to_string()
            } else if c.contains("Get-WdsInstallImage") {
                if self.has_image {
                    r#"{"ImageName":"parc b204/v3"}"#
                } else {
                    ""
                }
                .to_string()
            } else if c.contains("New-WdsClient") {
                client.to_string()
            } else if c.contains("Get-WdsClient") {
                if self.has_client { client } else { "" }.to_string()
            } else if c.contains("Get-WdsMulticastClient") {
                let mut t = self.transmission.lock().unwrap();
                if t.is_empty() {
                    String::new()
                } else {
                    t.remove(0).to_string()
                }
            } else {
                String::new()
            };
            Ok(ExecOutcome {
                exit_status: Some(0),
                stdout: out.into_bytes(),
                stderr: Vec::new(),
            })
        }
        async fn upload(&self, _: &Path, remote: &str) -> PortResult<String> {
            self.calls.lock().unwrap().push(format!("upload {remote}"));
            Ok("00".into())
        }
        async fn download(&self, _: &str, _: &Path) -> PortResult<String> {
            unreachable!()
        }
    }

    #[async_trait]
    impl RemoteConnector for FakeWds {
        async fn connect(&self, _: &HostAddress) -> PortResult<Box<dyn RemoteHost>> {
            Ok(Box::new(self.clone()))
        }
    }

    /// parc's own endpoint, for what WDS does not do.
    struct Pxe(Mutex<Vec<String>>);

    #[async_trait]
    impl BootEndpoint for Pxe {
        async fn assign(&self, mac: &str, action: BootAction) -> PortResult<String> {
            self.0.lock().unwrap().push(format!("{mac} {action:?}"));
            Ok("pxe-1".into())
        }
        async fn wait_report(
            &self,
            _: &str,
            _: Duration,
            _: CancellationToken,
        ) -> PortResult<BootReport> {
            unreachable!()
        }
    }

    fn endpoint(fake: &FakeWds, pxe: Arc<Pxe>) -> WdsBootEndpoint {
        WdsBootEndpoint::new(
            pxe,
            Arc::new(fake.clone()),
            HostAddress {
                hostname: "wds1".into(),
                address: "10.49.0.5".into(),
                port: 22,
                user: "svc-parc".into(),
                shell: RemoteShell::PowerShell,
            },
            settings(),
            Arc::new(|_| Ok(PathBuf::from("/tmp/b204-v3.wim"))),
        )
    }

    fn deploy() -> BootAction {
        BootAction::Deploy {
            room: "b204".into(),
            image_id: "b204/v3".into(),
            hostname: "b204-p01".into(),
            unattend: None,
            multicast: None,
            read_all: false,
        }
    }

    fn kinds(calls: &[String]) -> Vec<&'static str> {
        let names = [
            "upload",
            "Import-WdsInstallImage",
            "Get-WdsInstallImage",
            "Remove-WdsClient",
            "New-WdsClient",
            "Get-WdsClient",
            "Get-WdsMulticastClient",
        ];
        calls
            .iter()
            .map(|c| *names.iter().find(|n| c.contains(*n)).unwrap_or(&"?"))
            .collect()
    }

    #[tokio::test]
    async fn a_first_deploy_imports_and_prestages_then_follows_the_transmission() {
        let fake = FakeWds::default();
        fake.transmission.lock().unwrap().extend([
            "",
            r#"{"MacAddress":"52-54-00-B2-04-01","PercentCompletion":40}"#,
            "",
        ]);
        let ep = endpoint(&fake, Arc::new(Pxe(Mutex::default())));
        let id = ep.assign(MAC, deploy()).await.unwrap();
        let r = ep
            .wait_report(&id, Duration::from_secs(5), CancellationToken::new())
            .await
            .unwrap();
        assert!(r.success && r.message.starts_with("handed to WDS"), "{r:?}");
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(
            kinds(&calls),
            [
                "Get-WdsInstallImage",
                "upload",
                "Import-WdsInstallImage",
                "Get-WdsClient",
                "New-WdsClient",
                "Get-WdsMulticastClient",
                "Get-WdsMulticastClient",
                "Get-WdsMulticastClient",
            ]
        );
        assert!(calls[1].ends_with(r"D:\RemoteInstall\parc\b204-v3.wim"));
        assert!(calls[4].contains("-OU 'OU=b204,OU=Pedagogie,DC=lycee-mistral,DC=test'"));
        assert!(!ep.takes_answer_file());
    }

    #[tokio::test]
    async fn a_reimage_removes_the_prestaged_device_first_and_format_goes_to_pxe() {
        let fake = FakeWds {
            has_image: true,
            has_client: true,
            ..FakeWds::default()
        };
        let pxe = Arc::new(Pxe(Mutex::default()));
        let ep = endpoint(&fake, pxe.clone());
        ep.assign(MAC, deploy()).await.unwrap();
        assert_eq!(
            kinds(&fake.calls.lock().unwrap()),
            [
                "Get-WdsInstallImage",
                "Get-WdsClient",
                "Remove-WdsClient",
                "New-WdsClient"
            ]
        );
        let capture = BootAction::Capture {
            room: "b204".into(),
            image_version: "v4".into(),
        };
        assert_eq!(ep.assign(MAC, capture).await.unwrap(), "pxe-1");
        assert_eq!(pxe.0.lock().unwrap().len(), 1);
        // A workstation that never shows up in the transmission times out, named.
        let id = ep.assign(MAC, deploy()).await.unwrap();
        let e = ep
            .wait_report(&id, Duration::from_millis(20), CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Timeout);
        assert!(e.message.contains("never appeared"), "{e}");
    }
}
