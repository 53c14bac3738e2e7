//! The composition root of `parc master` and `parc reimage`: builds the real adapters a run
//! drives — SSH, the network-boot endpoint (started in this process for the run's duration),
//! the image store, the directory, power control — and the step bodies over them.
//!
//! Wired today: the lab (`--lab DIR`: the endpoint in the lab's server namespace, its Samba
//! DC over SSH, its QEMU workstations, DHCP handing out the workspace's fixed addresses). A
//! lycée's network needs a directory adapter for its own DC: refused until then.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::adapters::endpoint_client::LocalBootEndpoint;
use crate::adapters::lab_power::LabVms;
use crate::adapters::samba_directory::SambaDirectory;
use crate::adapters::ssh::{SshConnector, SshOptions, known_hosts};
use crate::domain::digest::{recipe_digest, software_digest};
use crate::endpoint::dhcp::DhcpMode;
use crate::endpoint::{Endpoint, EndpointError, ServeOptions};
use crate::engine::Ports;
use crate::image::store::FsImageStore;
use crate::lab::Lab;
use crate::lab_vm::{Accel, Firmware, LabVmConfig};
use crate::ports::{
    Directory, ImageStore, InjectFile, PortError, PortErrorKind, PowerControl, RemoteConnector,
    Reporter,
};
use crate::secrets::SecretStore;
use crate::serve::{CaptureTemplate, ImagesService};
use crate::steps::collect::Collector;
use crate::steps::report::VerifyLog;
use crate::steps::room::{RoomActions, SiteSettings};
use crate::workspace::Loaded;

/// Where the run happens and with what.
#[derive(Debug, Clone)]
pub struct WireOptions {
    /// The lab folder (holding `lab.env`), for a run in the lab.
    pub lab: Option<PathBuf>,
    /// The boot environment (vmlinuz, initrd.img).
    pub bootenv: PathBuf,
    pub ipxe_dir: PathBuf,
    pub http_port: Option<u16>,
    pub tftp_port: u16,
    /// Restart → boot environment started, per machine.
    pub wake_timeout: Duration,
    /// Restart → agent report, per machine.
    pub boot_timeout: Duration,
    /// Agent report → SSH answers, per machine.
    pub ssh_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the workspace has no usable site.toml")]
    NoSite,
    #[error("room {0} is not in the workspace")]
    NoRoom(String),
    #[error("the lab's server address `{0}` is not an IPv4 address")]
    Address(String),
    #[error("the lab")]
    Lab(#[source] crate::lab::LabError),
    #[error(
        "the directory (Active Directory) is reached through the lab's DC only; a lycée's DC is not wired yet"
    )]
    NoDirectory,
    #[error("opening parc's SSH identity")]
    Ssh(#[source] crate::adapters::ssh::SshError),
    #[error("the lab")]
    LabSetup(#[source] anyhow::Error),
    #[error("the boot endpoint")]
    Endpoint(#[source] EndpointError),
    #[error("the image store")]
    Images(#[source] PortError),
}

/// The ports of a run, and the endpoint serving it until [`Wired::stop`].
pub struct Wired {
    pub ports: Ports,
    pub images: Arc<FsImageStore>,
    /// What this run's verify step found, for the room's report.
    pub verify_log: Arc<VerifyLog>,
    cancel: CancellationToken,
    server: std::thread::JoinHandle<Result<(), EndpointError>>,
}

impl Wired {
    /// Stops the endpoint (and its DHCP child).
    pub async fn stop(self) -> Result<(), WireError> {
        self.cancel.cancel();
        let server = self.server;
        match tokio::task::spawn_blocking(move || server.join()).await {
            Ok(Ok(r)) => r.map_err(WireError::Endpoint),
            _ => Ok(()),
        }
    }
}

fn lab_setup(e: impl std::fmt::Display) -> WireError {
    WireError::LabSetup(anyhow::anyhow!("{e}"))
}

/// The accelerator the lab's VMs use, probed once per lab (`<lab>/vms/accel`).
fn lab_accel(vms: &Path, bootenv: &Path) -> Result<Accel, WireError> {
    let file = vms.join("accel");
    match std::fs::read_to_string(&file)
        .ok()
        .as_deref()
        .map(str::trim)
    {
        Some("kvm") => return Ok(Accel::Kvm),
        Some("tcg") => return Ok(Accel::Tcg),
        _ => {}
    }
    let accel = crate::lab_vm::probe_accel(bootenv, Duration::from_secs(10)).map_err(lab_setup)?;
    std::fs::create_dir_all(vms).map_err(lab_setup)?;
    std::fs::write(&file, accel.as_str()).map_err(lab_setup)?;
    Ok(accel)
}

/// Builds the adapters for a run of `room` and starts the endpoint (on its own thread).
pub async fn wire(
    loaded: &Loaded,
    room: &str,
    opts: &WireOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Wired, WireError> {
    let site = loaded.ws.site.as_ref().ok_or(WireError::NoSite)?;
    let recipe = loaded
        .ws
        .rooms
        .iter()
        .find(|r| r.id.value == room)
        .ok_or_else(|| WireError::NoRoom(room.into()))?;
    let ws_root = loaded.dir.root.clone();
    let state_dir = loaded.dir.state_dir();
    // Only the lab is wired: a lycée needs an admin channel to its own DC for the directory
    // (wake-on-LAN, adapters::wol, and the endpoint are ready). Refused before anything starts.
    let lab_dir = opts.lab.as_deref().ok_or(WireError::NoDirectory)?;
    let lab = Lab::open_dir(lab_dir).map_err(WireError::Lab)?;
    let netns = lab.server_netns().to_string();
    let connector = Arc::new(
        SshConnector::open(
            &state_dir,
            SshOptions {
                netns: Some(netns.clone()),
                ..SshOptions::default()
            },
        )
        .map_err(WireError::Ssh)?,
    );
    let domain = site.domain.realm.value.to_lowercase();

    // The endpoint on the lab's server address; DHCP hands out the workspace's fixed
    // addresses and the DC as DNS server.
    let dc = lab.dc_address();
    let srv: Ipv4Addr = dc
        .address
        .parse()
        .map_err(|_| WireError::Address(dc.address.clone()))?;
    let fixed = loaded
        .ws
        .devices
        .iter()
        .filter_map(|d| Some((d.mac.value.clone(), d.ip.as_deref()?.parse().ok()?)))
        .collect();
    let serve = ServeOptions {
        bind: vec![IpAddr::V4(srv)],
        http_port: opts.http_port.unwrap_or(8000),
        tftp_port: opts.tftp_port,
        dhcp: DhcpMode::Lab {
            first: Ipv4Addr::new(10, 77, 0, 100),
            last: Ipv4Addr::new(10, 77, 0, 199),
            fixed,
            dns: Some((srv, domain.clone())),
        },
        dhcp_interface: Some("eth0".into()),
        state_dir: state_dir.join("boot"),
        bootenv: opts.bootenv.clone(),
        ipxe_dir: opts.ipxe_dir.clone(),
        ttl: Duration::from_secs(3600),
        disk: None,
    };
    crate::endpoint::lab::prepare_namespace(&netns).map_err(lab_setup)?;
    let ep = Arc::new(
        Endpoint::open(
            &serve.state_dir,
            &serve.base_url(),
            &serve.bootenv,
            serve.ttl,
        )
        .map_err(WireError::Endpoint)?,
    );
    let store = Arc::new(FsImageStore::for_workspace(&ws_root));
    let images_service = Arc::new(ImagesService::new(FsImageStore::for_workspace(&ws_root)));
    // Capture and format lay down the base image's disk layout.
    let base_id = format!("base/{}", recipe.base_image.value);
    let layout = store.manifest(&base_id).ok().map(|m| m.disk);
    let template = CaptureTemplate {
        recipe_digest: recipe_digest(recipe),
        software_digest: software_digest(&recipe.software),
        software: recipe
            .software
            .iter()
            .map(|s| crate::image::manifest::SoftwareItem {
                name: s.name.value.clone(),
                version: s.version.value.clone(),
            })
            .collect(),
        hardware_model: recipe.model.value.clone(),
        os_family: recipe.os_family,
        captured_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let boot = LocalBootEndpoint::new(ep.clone())
        .with_images(images_service.clone(), layout)
        .with_capture_template(template);
    boot.reissue_live().map_err(WireError::Images)?;

    // The endpoint runs on its own thread, inside the lab's server namespace when in the lab
    // (its sockets and its dnsmasq child live there); the rest of parc stays where it is, so
    // collect still reaches the Debian mirror.
    let cancel = CancellationToken::new();
    let server = {
        let (cancel, routes) = (cancel.clone(), crate::serve::router(images_service));
        std::thread::spawn(move || -> Result<(), EndpointError> {
            crate::lab::enter_netns(&netns).map_err(|e| EndpointError::State {
                path: PathBuf::from("/run/netns").join(&netns),
                source: std::io::Error::other(e.to_string()),
            })?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| EndpointError::State {
                    path: PathBuf::from("(runtime)"),
                    source,
                })?;
            rt.block_on(crate::endpoint::server::run(serve, ep, routes, cancel))
        })
    };

    // Power, directory, secrets.
    // Power: the lab's QEMU workstations. Directory: the lab's DC, through its admin SSH
    // session, logged in with parc's key and pinned to the key the lab generated for the DC.
    let vms = lab.dir().join("vms");
    let power: Arc<dyn PowerControl> = Arc::new(LabVms::new(LabVmConfig {
        net_ns: format!("{}-net", lab.prefix()),
        dir: vms.clone(),
        accel: lab_accel(&vms, &opts.bootenv)?,
        mem_mib: 384,
        disk_mib: 2048,
        no_reboot: false,
        firmware: Firmware::Bios,
    }));
    let dc_pub = lab.host_public_key(&dc.hostname).map_err(WireError::Lab)?;
    let key = russh::keys::PublicKey::from_openssh(dc_pub.trim()).map_err(lab_setup)?;
    known_hosts::pin(connector.known_hosts(), &dc.address, dc.port, &key)
        .map_err(WireError::Ssh)?;
    lab.authorize_key(&connector.public_key_line())
        .map_err(WireError::Lab)?;
    let admin = connector.connect(&dc).await.map_err(|e| lab_setup(&e))?;
    let directory: Arc<dyn Directory> = Arc::new(SambaDirectory::new(admin, lab.dc_sam()));
    let secrets = SecretStore::new(&state_dir);
    let secret_name = site
        .domain
        .join_password_secret
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "domain-join".into());
    let join_password: crate::steps::room::SecretSource = Arc::new(move || {
        secrets.get(&secret_name).map_err(|e| {
            PortError::new(
                PortErrorKind::NotFound,
                format!("the join password (secret `{secret_name}`): {e}; set it with `parc secret set {secret_name}`"),
            )
        })
    });
    let inject = vec![
        InjectFile {
            path: "/root/.ssh/authorized_keys".into(),
            mode: 0o600,
            content: format!("{}\n", connector.public_key_line()),
        },
        InjectFile {
            path: "/etc/krb5.conf".into(),
            mode: 0o644,
            content: format!(
                "[libdefaults]\n  default_realm = {}\n  dns_lookup_kdc = true\n  dns_lookup_realm = false\n  rdns = false\n",
                site.domain.realm.value
            ),
        },
    ];
    let verify_log = Arc::new(VerifyLog::default());
    let actions = RoomActions {
        site: SiteSettings {
            workspace: ws_root.clone(),
            domain,
            base_ou: site.domain.computers_ou.value.clone(),
            join_account: site.domain.join_account.value.clone(),
            ssh_user: "root".into(),
            ssh_port: 22,
            inject,
            wake_timeout: opts.wake_timeout,
            boot_timeout: opts.boot_timeout,
            ssh_timeout: opts.ssh_timeout,
        },
        connector: connector.clone(),
        boot: Arc::new(boot),
        power,
        directory,
        images: store.clone(),
        collector: Collector::new(crate::steps::cache::ContentCache::new(
            state_dir.join("cache"),
        )),
        join_password,
        ou_ready: tokio::sync::Mutex::new(false),
        verify_log: verify_log.clone(),
    };
    Ok(Wired {
        ports: Ports {
            actions: Arc::new(actions),
            images: store.clone() as Arc<dyn ImageStore>,
            reporter,
        },
        images: store,
        verify_log,
        cancel,
        server,
    })
}
