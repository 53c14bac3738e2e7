//! The composition root of `parc master` and `parc reimage`: builds the real adapters a run
//! drives — SSH, the network-boot endpoint (started in this process for the run's duration),
//! the image store, the directory, power control — and the step bodies over them.
//!
//! Everything comes from the site's configuration (`site.toml`): the serving address and
//! interface, the DHCP mode (proxy beside the lycée's DHCP, full, or external), the domain
//! controller reached by LDAPS with its account, wake-on-LAN. The lab (`--lab DIR`) is one
//! site among others: it only adds its server namespace (where the endpoint, SSH and LDAP
//! open their sockets) and switches its QEMU workstations on instead of wake-on-LAN.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::adapters::lab_power::LabVms;
use crate::adapters::ldap_directory::{LdapConfig, LdapDirectory, LdapTls};
use crate::adapters::offline_join::{DcOfflineJoin, Flavour};
use crate::adapters::ssh::{SshConnector, SshOptions};
use crate::adapters::wol::WakeOnLan;
use crate::doctor::Serving;
use crate::domain::digest::{recipe_digest, software_digest};
use crate::domain::site::{DhcpSetting, LdapMode, OfflineJoinTool};
use crate::engine::Ports;
use crate::image::store::FsImageStore;
use crate::lab::Lab;
use crate::lab::vm::{Accel, Firmware, LabVmConfig};
use crate::netboot::client::LocalBootEndpoint;
use crate::netboot::endpoint::dhcp::DhcpMode;
use crate::netboot::endpoint::{Endpoint, EndpointError, ServeOptions};
use crate::netboot::serve::{CaptureTemplate, ImagesService};
use crate::ports::{
    Directory, HostAddress, ImageStore, InjectFile, OfflineJoin, PortError, PortErrorKind,
    PowerControl, Reporter,
};
use crate::secrets::SecretStore;
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
    /// A room's multicast starts once this many workstations are ready (default: all).
    pub min_receivers: Option<usize>,
    /// Deploys read every file of the disk, not only those changed since the record of the
    /// workstation's last deploy (`parc reimage --read-all`).
    pub read_all: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the workspace has no usable site.toml")]
    NoSite,
    #[error("room {0} is not in the workspace")]
    NoRoom(String),
    #[error("the site deploys through WDS, which parc does not drive yet")]
    Wds,
    #[error("{0} is not an address of this machine (site.toml [endpoint] address)")]
    Address(Ipv4Addr),
    #[error("the lab")]
    Lab(#[source] crate::lab::LabError),
    #[error("site.toml names no domain controller ([domain] controller)")]
    NoController,
    #[error("the domain controller")]
    Directory(#[source] PortError),
    #[error("the DC account's password (secret `{0}`)")]
    Secret(String, #[source] crate::secrets::SecretError),
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

/// Runs `f` inside network namespace `ns` (here when `None`): sockets it opens live there.
fn in_netns<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, WireError> {
    match ns {
        None => Ok(f()),
        Some(ns) => crate::lab::run_in_netns(ns, f).map_err(WireError::Lab),
    }
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
    let accel = crate::lab::vm::probe_accel(bootenv, Duration::from_secs(10)).map_err(lab_setup)?;
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
    let serving = Serving::of(site).ok_or(WireError::Wds)?;
    let controller = site
        .domain
        .controller
        .as_ref()
        .ok_or(WireError::NoController)?;
    // The lab adds its server namespace, where every socket towards the site's network is
    // opened; a lycée's run stays in the machine's own.
    let lab = match opts.lab.as_deref() {
        Some(dir) => Some(Lab::open_dir(dir).map_err(WireError::Lab)?),
        None => None,
    };
    let netns = lab.as_ref().map(|l| l.server_netns().to_string());
    let connector = Arc::new(
        SshConnector::open(
            &state_dir,
            SshOptions {
                netns: netns.clone(),
                ..SshOptions::default()
            },
        )
        .map_err(WireError::Ssh)?,
    );
    let domain = site.domain.realm.value.to_lowercase();

    // The serving interface, as the site's network sees it.
    let srv = serving.address;
    let ifa = in_netns(netns.as_deref(), move || crate::netif::holding(srv))?
        .map_err(lab_setup)?
        .ok_or(WireError::Address(srv))?;
    let dhcp = match &serving.dhcp {
        DhcpSetting::Proxy => DhcpMode::Proxy {
            subnet: ifa.network(),
        },
        DhcpSetting::External => DhcpMode::Off,
        DhcpSetting::Full { first, last } => DhcpMode::Full {
            first: first.value.parse().map_err(lab_setup)?,
            last: last.value.parse().map_err(lab_setup)?,
            fixed: loaded
                .ws
                .devices
                .iter()
                .filter_map(|d| Some((d.mac.value.clone(), d.ip.as_deref()?.parse().ok()?)))
                .collect(),
            dns: controller
                .address
                .value
                .parse()
                .ok()
                .map(|dc| (dc, domain.clone())),
        },
    };
    let serve = ServeOptions {
        bind: vec![IpAddr::V4(srv)],
        http_port: opts.http_port.unwrap_or(serving.http_port),
        tftp_port: opts.tftp_port,
        dhcp,
        dhcp_interface: Some(ifa.interface.clone()),
        state_dir: state_dir.join("boot"),
        bootenv: opts.bootenv.clone(),
        ipxe_dir: opts.ipxe_dir.clone(),
        ttl: Duration::from_secs(3600),
        disk: None,
    };
    if let Some(ns) = &netns {
        crate::lab::server::prepare_namespace(ns).map_err(lab_setup)?;
    }
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
    images_service
        .access
        .to_file(serve.state_dir.join("access.log"));
    images_service
        .records
        .to_dir(serve.state_dir.join("records"));
    images_service
        .multicast
        .configure(crate::netboot::serve::multicast::MulticastSettings {
            interface: ifa.interface.clone(),
            policy: site.multicast.clone(),
            first_receiver_secs: opts.wake_timeout.as_secs() + site.multicast.wait_secs,
            netns: netns.clone(),
        });
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

    // Power and the directory come before the endpoint starts: a DC that refuses parc stops
    // the run with nothing serving.
    // Power: the lab's QEMU workstations; on a lycée's network, wake-on-LAN to the serving
    // subnet's broadcast (the steps restart a workstation that answers over SSH first).
    let power: Arc<dyn PowerControl> = match &lab {
        Some(lab) => {
            let vms = lab.dir().join("vms");
            Arc::new(LabVms::new(LabVmConfig {
                net_ns: format!("{}-net", lab.prefix()),
                dir: vms.clone(),
                accel: lab_accel(&vms, &opts.bootenv)?,
                mem_mib: 384,
                disk_mib: 2048,
                no_reboot: false,
                firmware: Firmware::Bios,
            }))
        }
        None => {
            let targets = if site.power.wake_on_lan {
                let bcast = site
                    .power
                    .broadcast
                    .as_ref()
                    .and_then(|b| b.value.parse().ok())
                    .unwrap_or_else(|| ifa.broadcast());
                vec![std::net::SocketAddr::new(IpAddr::V4(bcast), 9)]
            } else {
                Vec::new()
            };
            Arc::new(WakeOnLan::new(targets))
        }
    };
    // The directory: the site's DC over LDAPS, with the account that administers computer
    // objects. The connection is opened where the site's network is (the lab's namespace).
    let secrets = SecretStore::new(&state_dir);
    let admin_secret = controller
        .admin_password_secret
        .as_ref()
        .or(site.domain.join_password_secret.as_ref())
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "domain-join".into());
    let admin_password = secrets
        .get(&admin_secret)
        .map_err(|e| WireError::Secret(admin_secret.clone(), e))?;
    let cfg = LdapConfig {
        host: controller.address.value.clone(),
        port: None,
        tls: match controller.ldap {
            LdapMode::Ldaps => LdapTls::Ldaps,
            LdapMode::StartTls => LdapTls::StartTls,
        },
        ca_pem: controller.ca_file.as_ref().map(|f| ws_root.join(&f.value)),
        realm: site.domain.realm.value.clone(),
        account: controller
            .admin_account
            .as_ref()
            .unwrap_or(&site.domain.join_account)
            .value
            .clone(),
        password: admin_password.clone(),
        timeout: Duration::from_secs(15),
    };
    let ldap = match netns.as_deref() {
        None => LdapDirectory::connect(cfg).await,
        Some(ns) => {
            // Connected on a thread in the namespace, driven by this runtime afterwards.
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| {
                in_netns(Some(ns), move || {
                    handle.block_on(LdapDirectory::connect(cfg))
                })
            })?
        }
    }
    .map_err(WireError::Directory)?;
    let directory: Arc<dyn Directory> = Arc::new(ldap);
    // Windows workstations' accounts: provisioned on the DC itself, through an SSH session.
    let offline_join = site.domain.offline_join.as_ref().map(|o| {
        let (user, flavour) = match o.tool.value {
            OfflineJoinTool::Samba => {
                let pw = admin_password.clone();
                let account = controller
                    .admin_account
                    .as_ref()
                    .unwrap_or(&site.domain.join_account)
                    .value
                    .clone();
                (
                    "root",
                    Flavour::Samba {
                        smb_conf: None,
                        account,
                        password: Arc::new(move || Ok(pw.clone())),
                    },
                )
            }
            OfflineJoinTool::Windows => ("Administrator", Flavour::Windows),
        };
        let dc = HostAddress {
            hostname: controller.address.value.clone(),
            address: controller.address.value.clone(),
            port: 22,
            user: o
                .ssh_user
                .as_ref()
                .map_or_else(|| user.to_owned(), |u| u.value.clone()),
            shell: match o.tool.value {
                OfflineJoinTool::Samba => crate::ports::RemoteShell::Posix,
                OfflineJoinTool::Windows => crate::ports::RemoteShell::PowerShell,
            },
        };
        Arc::new(DcOfflineJoin::new(
            connector.clone(),
            dc,
            site.domain.realm.value.to_lowercase(),
            None,
            flavour,
        )) as Arc<dyn OfflineJoin>
    });
    // The endpoint runs on its own thread, inside the lab's server namespace when in the lab
    // (its sockets and its dnsmasq child live there); the rest of parc stays where it is, so
    // collect still reaches the Debian mirror.
    let cancel = CancellationToken::new();
    let server = {
        let (cancel, routes) = (
            cancel.clone(),
            crate::netboot::serve::router(images_service),
        );
        let netns = netns.clone();
        std::thread::spawn(move || -> Result<(), EndpointError> {
            if let Some(netns) = &netns {
                crate::lab::enter_netns(netns).map_err(|e| EndpointError::State {
                    path: PathBuf::from("/run/netns").join(netns),
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| EndpointError::State {
                    path: PathBuf::from("(runtime)"),
                    source,
                })?;
            rt.block_on(crate::netboot::endpoint::server::run(
                serve, ep, routes, cancel,
            ))
        })
    };

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
            multicast: site.multicast.clone(),
            min_receivers: opts.min_receivers,
            read_all: opts.read_all,
        },
        connector: connector.clone(),
        boot: deploy_backend(site, Arc::new(boot), connector.clone(), &store, &state_dir),
        power,
        directory,
        images: store.clone(),
        collector: Collector::new(crate::steps::cache::ContentCache::new(
            state_dir.join("cache"),
        )),
        join_password,
        offline_join,
        windows: windows_first_boot(site, &state_dir),
        ou_ready: tokio::sync::Mutex::new(false),
        verify_log: verify_log.clone(),
        session: std::sync::Mutex::new(None),
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

/// What the answer files of the site's Windows workstations hold besides their own name and
/// join blob: the `[windows]` settings, the local administrator password fetched when needed.
fn windows_first_boot(
    site: &crate::domain::site::Site,
    state_dir: &Path,
) -> Option<crate::steps::room::WindowsFirstBoot> {
    let w = site.windows.as_ref()?;
    let secrets = SecretStore::new(state_dir);
    let name = w.admin_password_secret.value.clone();
    let admin_password: crate::steps::room::SecretSource = Arc::new(move || {
        secrets.get(&name).map_err(|e| {
            PortError::new(
                PortErrorKind::NotFound,
                format!(
                    "the Windows workstations' administrator password (secret `{name}`): {e}; set it with `parc secret set {name}`"
                ),
            )
        })
    });
    Some(crate::steps::room::WindowsFirstBoot {
        admin_password,
        time_zone: w.time_zone.clone(),
        locale: w.locale.clone(),
        input_locale: w.input_locale.clone(),
        organization: site.name.value.clone(),
    })
}

/// parc's own endpoint, or the lycée's WDS server in front of it for deploys
/// (`[deploy] backend = "wds"`, docs/wds.md).
fn deploy_backend(
    site: &crate::domain::site::Site,
    pxe: Arc<dyn crate::ports::BootEndpoint>,
    connector: Arc<SshConnector>,
    store: &Arc<FsImageStore>,
    state_dir: &Path,
) -> Arc<dyn crate::ports::BootEndpoint> {
    use crate::adapters::wds::{WdsBootEndpoint, WdsSettings};
    let Some(w) = &site.deploy else {
        return pxe;
    };
    let server = HostAddress {
        hostname: w.server.value.clone(),
        address: w.server.value.clone(),
        port: 22,
        user: w.user.clone(),
        shell: crate::ports::RemoteShell::PowerShell,
    };
    let settings = WdsSettings {
        image_group: w.image_group.clone(),
        wim_folder: w.wim_folder.clone(),
        multicast: w.multicast,
        domain: site.domain.realm.value.to_lowercase(),
        base_ou: site.domain.computers_ou.value.clone(),
        poll: Duration::from_secs(10),
    };
    let (store, dir) = (store.clone(), state_dir.join("wds"));
    let wim: crate::adapters::wds::WimSource = Arc::new(move |id: &str| {
        let out = dir.join(format!("{}.wim", id.replace('/', "-")));
        if !out.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| {
                PortError::new(PortErrorKind::Other, format!("{}: {e}", dir.display()))
            })?;
            let label = crate::image::wim::WimLabel {
                name: crate::adapters::wds::image_name(id),
                description: format!("Image parc {id}"),
            };
            crate::image::wim::export_wim(
                &store,
                id,
                &out,
                &label,
                &crate::image::progress::Progress::default(),
            )
            .map_err(|e| {
                PortError::new(
                    PortErrorKind::Other,
                    format!("exporting {id} as a WIM: {e}"),
                )
            })?;
        }
        Ok(out)
    });
    Arc::new(WdsBootEndpoint::new(pxe, connector, server, settings, wim))
}
