//! The composition root of `parc master` and `parc reimage`: builds the real adapters a run
//! drives — SSH, the network-boot endpoint (started in this process for the run's duration),
//! the image store, the directory, power control — and the step bodies over them.
//!
//! Two settings: the lab (`--lab DIR`: the lab's server namespace, its Samba DC over SSH,
//! its QEMU workstations, DHCP handing out the workspace's fixed addresses) and the field
//! (the endpoint binds the site's address, proxyDHCP if the site says so, wake-on-LAN).

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
use crate::domain::site::Endpoint as SiteEndpoint;
use crate::endpoint::dhcp::DhcpMode;
use crate::endpoint::{Endpoint, EndpointError, ServeOptions};
use crate::engine::Ports;
use crate::image::store::FsImageStore;
use crate::lab_vm::{Accel, Firmware, LabVmConfig};
use crate::ports::{
    Directory, ImageStore, InjectFile, PortError, PortErrorKind, PowerControl, RemoteConnector,
    Reporter,
};
use crate::secrets::SecretStore;
use crate::serve::{CaptureTemplate, ImagesService};
use crate::steps::collect::Collector;
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
    #[error(
        "the site images through Windows Deployment Services ({0}); parc master drives its own PXE endpoint only"
    )]
    Wds(String),
    #[error("the site's endpoint address `{0}` is not an IPv4 address")]
    Address(String),
    #[error("reading the lab description {path}")]
    Lab {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lab description {path} lacks {key}")]
    LabKey { path: PathBuf, key: String },
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

/// The lab's `lab.env`, as written by `lab/up.sh`.
pub struct LabEnv {
    path: PathBuf,
    vars: std::collections::BTreeMap<String, String>,
}

impl LabEnv {
    pub fn open(dir: &Path) -> Result<Self, WireError> {
        let path = dir.join("lab.env");
        let text = std::fs::read_to_string(&path).map_err(|source| WireError::Lab {
            path: path.clone(),
            source,
        })?;
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(Self { path, vars })
    }

    pub fn get(&self, key: &str) -> Result<&str, WireError> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| WireError::LabKey {
                path: self.path.clone(),
                key: key.into(),
            })
    }

    /// The lab's server namespace, which a lab run enters before anything else.
    pub fn server_netns(&self) -> Result<&str, WireError> {
        self.get("LAB_SRV_NS")
    }
}

/// The ports of a run, and the endpoint serving it until [`Wired::stop`].
pub struct Wired {
    pub ports: Ports,
    pub images: Arc<FsImageStore>,
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
    let lab = opts.lab.as_deref().map(LabEnv::open).transpose()?;
    if lab.is_none() {
        // Wake-on-LAN (adapters::wol) and the endpoint are ready for a lycée; the directory
        // adapter is not (it needs an admin channel to the lycée's DC): refuse before
        // starting anything.
        return Err(WireError::NoDirectory);
    }

    let netns = lab
        .as_ref()
        .map(|l| l.server_netns().map(str::to_string))
        .transpose()?;
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

    // The endpoint's addresses and DHCP.
    let (bind, dhcp, iface, http_port) = match (&lab, &site.endpoint) {
        (Some(lab), _) => {
            let srv: Ipv4Addr = lab
                .get("LAB_SRV_IP")?
                .parse()
                .map_err(|_| WireError::Address(lab.get("LAB_SRV_IP").unwrap_or("").into()))?;
            let fixed = loaded
                .ws
                .devices
                .iter()
                .filter_map(|d| Some((d.mac.value.clone(), d.ip.as_deref()?.parse().ok()?)))
                .collect();
            let dhcp = DhcpMode::Lab {
                first: Ipv4Addr::new(10, 77, 0, 100),
                last: Ipv4Addr::new(10, 77, 0, 199),
                fixed,
                dns: Some((srv, domain.clone())),
            };
            (srv, dhcp, Some("eth0".to_string()), 8000)
        }
        (
            None,
            SiteEndpoint::Pxe {
                address,
                http_port,
                proxy_dhcp,
            },
        ) => {
            let ip: Ipv4Addr = address
                .value
                .parse()
                .map_err(|_| WireError::Address(address.value.clone()))?;
            let dhcp = if *proxy_dhcp {
                let o = ip.octets();
                DhcpMode::Proxy {
                    subnet: Ipv4Addr::new(o[0], o[1], o[2], 0),
                }
            } else {
                DhcpMode::Off
            };
            (ip, dhcp, interface_of(ip), *http_port)
        }
        (None, SiteEndpoint::Wds { host }) => return Err(WireError::Wds(host.value.clone())),
    };
    let serve = ServeOptions {
        bind: vec![IpAddr::V4(bind)],
        http_port: opts.http_port.unwrap_or(http_port),
        tftp_port: opts.tftp_port,
        dhcp,
        dhcp_interface: iface,
        state_dir: state_dir.join("boot"),
        bootenv: opts.bootenv.clone(),
        ipxe_dir: opts.ipxe_dir.clone(),
        ttl: Duration::from_secs(3600),
        disk: None,
    };
    if lab.is_some() {
        let ns = lab
            .as_ref()
            .map(|l| l.server_netns())
            .transpose()?
            .unwrap_or_default();
        crate::endpoint::lab::prepare_namespace(ns).map_err(lab_setup)?;
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
            if let Some(ns) = &netns {
                crate::lab::enter_netns(ns).map_err(|e| EndpointError::State {
                    path: PathBuf::from("/run/netns").join(ns),
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
            rt.block_on(crate::endpoint::server::run(serve, ep, routes, cancel))
        })
    };

    // Power, directory, secrets.
    let (power, directory): (Arc<dyn PowerControl>, Arc<dyn Directory>) = match &lab {
        Some(lab) => {
            let vms = PathBuf::from(lab.get("PARC_LAB_DIR")?).join("vms");
            let cfg = LabVmConfig {
                net_ns: format!("{}-net", lab.get("LAB_PREFIX")?),
                dir: vms.clone(),
                accel: lab_accel(&vms, &opts.bootenv)?,
                mem_mib: 384,
                disk_mib: 2048,
                no_reboot: false,
                firmware: Firmware::Bios,
            };
            let dc = crate::ports::HostAddress {
                hostname: lab.get("LAB_DC_NAME")?.into(),
                address: lab.get("LAB_SRV_IP")?.into(),
                port: 22,
                user: "root".into(),
            };
            // parc logs in to the DC's admin session with its own key, pinned to the key the
            // lab generated for the DC.
            let keys = PathBuf::from(lab.get("LAB_KEYS_DIR")?);
            let dc_pub = std::fs::read_to_string(keys.join(format!("{}.pub", dc.hostname)))
                .map_err(lab_setup)?;
            let key = russh::keys::PublicKey::from_openssh(dc_pub.trim()).map_err(lab_setup)?;
            known_hosts::pin(connector.known_hosts(), &dc.address, dc.port, &key)
                .map_err(WireError::Ssh)?;
            authorize(
                lab.get("LAB_AUTHORIZED_KEYS")?,
                &connector.public_key_line(),
            )?;
            let admin = connector.connect(&dc).await.map_err(|e| lab_setup(&e))?;
            let sam = lab.get("LAB_DC_SAM")?.to_string();
            (
                Arc::new(LabVms::new(cfg)),
                Arc::new(SambaDirectory::new(admin, sam)),
            )
        }
        None => unreachable!("refused above: no directory outside the lab"),
    };
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
    };
    Ok(Wired {
        ports: Ports {
            actions: Arc::new(actions),
            images: store.clone() as Arc<dyn ImageStore>,
            reporter,
        },
        images: store,
        cancel,
        server,
    })
}

/// Appends parc's key to the lab's shared authorized_keys (bind-mounted by inode: append).
fn authorize(path: &str, line: &str) -> Result<(), WireError> {
    use std::io::Write as _;
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current.lines().any(|l| l.trim() == line.trim()) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(lab_setup)?;
    writeln!(f, "{}", line.trim()).map_err(lab_setup)
}

/// The interface holding `ip` (for dnsmasq), from `ip -o -4 addr`.
fn interface_of(ip: Ipv4Addr) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!(" {ip}/")))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
}
