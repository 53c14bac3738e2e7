//! `parc serve`: the network-boot endpoint (HTTP, TFTP, optional DHCP) in the foreground
//! until Ctrl-C. `--lab` re-runs itself inside the lab's server namespace on 10.77.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::exit::{CliError, Status};
use crate::image::manifest::DiskLayout;
use crate::image::store::FsImageStore;
use crate::netboot::client::{LocalBootEndpoint, to_boot_action};
use crate::netboot::endpoint::assign::parse_assignment;
use crate::netboot::endpoint::dhcp::DhcpMode;
use crate::netboot::endpoint::{Endpoint, ServeOptions};
use crate::netboot::serve::ImagesService;
use crate::ports::BootEndpoint as _;

use crate::lab::server::{LAB_SERVER, LabNsError, prepare_namespace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dhcp {
    /// The site's DHCP server points at parc (options 66/67).
    Off,
    /// proxyDHCP: answer only the PXE part (needs --proxy-subnet).
    Proxy,
    /// Hand out addresses (lab only).
    Lab,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve inside the lab's server namespace ($PARC_LAB_SRV_NS, default parclab-srv) on
    /// 10.77.0.1, with the lab's DHCP.
    #[arg(long, conflicts_with_all = ["bind", "dhcp"])]
    pub lab: bool,
    /// Address to bind (repeatable; the first is written into iPXE scripts). Never 0.0.0.0.
    #[arg(long)]
    pub bind: Vec<IpAddr>,
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    #[arg(long, default_value_t = 69)]
    pub tftp_port: u16,
    #[arg(long, value_enum, default_value_t = Dhcp::Off)]
    pub dhcp: Dhcp,
    /// Interface dnsmasq listens on (proxy and lab modes).
    #[arg(long)]
    pub dhcp_interface: Option<String>,
    /// The network address of the subnet for proxyDHCP, e.g. 172.16.4.0.
    #[arg(long)]
    pub proxy_subnet: Option<Ipv4Addr>,
    /// Folder with vmlinuz and initrd.img (printed by images/bootenv/build.sh).
    #[arg(long, env = "PARC_BOOTENV")]
    pub bootenv: PathBuf,
    /// Where Debian's `ipxe` package put its binaries.
    #[arg(long, default_value = "/usr/lib/ipxe")]
    pub ipxe_dir: PathBuf,
    /// Seconds after which a task nobody booted expires.
    #[arg(long, default_value_t = 3600)]
    pub task_ttl: u64,
    /// The disk the agent works on (default: first of /dev/vda, /dev/sda, /dev/nvme0n1).
    #[arg(long)]
    pub disk: Option<String>,
    /// Assign a task at start: MAC=format|deploy:IMAGE_ID:HOSTNAME|local (captures come from
    /// `parc master`, which knows the recipe).
    #[arg(long = "assign")]
    pub assign: Vec<String>,
    /// The disk layout (TOML, the image manifest's `[disk]` shape) a `format` task lays down.
    #[arg(long)]
    pub layout: Option<PathBuf>,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let assignments = args
        .assign
        .iter()
        .map(|a| parse_assignment(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::user)?;
    if args.lab {
        return run_in_lab();
    }
    if args.bind.is_empty() {
        return Err(
            CliError::user(anyhow::anyhow!("no address to bind")).with_hint(
                "give --bind with the address of the pedagogical network's interface, or --lab",
            ),
        );
    }
    if let Some(ip) = args.bind.iter().find(|ip| ip.is_unspecified()) {
        return Err(CliError::user(anyhow::anyhow!(
            "refusing to bind {ip}: parc serve binds only the addresses given"
        ))
        .with_hint("give the address of the pedagogical network's interface"));
    }
    let dhcp = match args.dhcp {
        Dhcp::Off => DhcpMode::Off,
        Dhcp::Proxy => DhcpMode::Proxy {
            subnet: args.proxy_subnet.ok_or_else(|| {
                CliError::user(anyhow::anyhow!("--dhcp proxy needs --proxy-subnet"))
            })?,
        },
        Dhcp::Lab => {
            let on_lab = args.bind.first() == Some(&IpAddr::V4(LAB_SERVER));
            if !on_lab {
                return Err(CliError::user(anyhow::anyhow!(
                    "--dhcp lab hands out addresses: only on the lab's server address {LAB_SERVER}"
                )));
            }
            DhcpMode::Full {
                first: Ipv4Addr::new(10, 77, 0, 100),
                last: Ipv4Addr::new(10, 77, 0, 199),
                fixed: Vec::new(),
                dns: None,
            }
        }
    };
    let opts = ServeOptions {
        bind: args.bind,
        http_port: args.http_port,
        tftp_port: args.tftp_port,
        dhcp,
        dhcp_interface: args.dhcp_interface,
        state_dir: args.ws.workspace.join(".parc").join("boot"),
        bootenv: args.bootenv,
        ipxe_dir: args.ipxe_dir,
        ttl: Duration::from_secs(args.task_ttl),
        disk: args.disk,
    };
    let layout = match &args.layout {
        Some(p) => Some(read_layout(p).map_err(CliError::user)?),
        None => None,
    };
    let ep = Arc::new(
        Endpoint::open(&opts.state_dir, &opts.base_url(), &opts.bootenv, opts.ttl)
            .map_err(CliError::internal)?
            .with_disk(opts.disk.clone()),
    );
    let images = Arc::new(ImagesService::new(FsImageStore::for_workspace(
        &args.ws.workspace,
    )));
    images.access.to_file(opts.state_dir.join("access.log"));
    images.records.to_dir(opts.state_dir.join("records"));
    let port = LocalBootEndpoint::new(ep.clone()).with_images(images.clone(), layout);
    let rt = super::master::runtime()?;
    for id in port.reissue_live().map_err(CliError::internal)? {
        eprintln!("reissued pending boot task as {id} (the image service starts empty)");
    }
    for (mac, action) in assignments {
        let what = action.agent_command().unwrap_or("local");
        let id = rt
            .block_on(port.assign(&mac, to_boot_action(action)))
            .map_err(CliError::user)?;
        eprintln!("assigned boot task {id} ({what}) to {mac}");
    }
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    eprintln!(
        "parc serve: {} (TFTP port {}), state in {}",
        opts.base_url(),
        opts.tftp_port,
        opts.state_dir.display()
    );
    rt.block_on(async move {
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            c.cancel();
        });
        crate::netboot::endpoint::server::run(
            opts,
            ep,
            crate::netboot::serve::router(images),
            cancel,
        )
        .await
    })
    .context("parc serve")
    .map_err(CliError::internal)?;
    Ok(Status::Success)
}

/// Re-runs this command inside the lab's server namespace with the lab's settings.
fn run_in_lab() -> Result<Status, CliError> {
    let ns = std::env::var("PARC_LAB_SRV_NS").unwrap_or_else(|_| "parclab-srv".into());
    prepare_namespace(&ns).map_err(|e| match e {
        LabNsError::Missing(_) => {
            CliError::user(e).with_hint("bring the lab up first: lab/up.sh (as root)")
        }
        other => CliError::internal(other),
    })?;
    let me = std::env::current_exe()
        .context("locating parc")
        .map_err(CliError::internal)?;
    let mut argv: Vec<String> = std::env::args().skip(1).filter(|a| a != "--lab").collect();
    argv.extend([
        "--bind".into(),
        LAB_SERVER.to_string(),
        "--dhcp".into(),
        "lab".into(),
        "--dhcp-interface".into(),
        "eth0".into(),
    ]);
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(me)
        .args(&argv)
        .status()
        .context("running ip netns exec")
        .map_err(CliError::internal)?;
    Ok(if st.success() {
        Status::Success
    } else {
        Status::Failure
    })
}

/// Reads a disk layout file; a parse error names the file, line and column.
pub(super) fn read_layout(path: &std::path::Path) -> anyhow::Result<DiskLayout> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the layout {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (line, col)
            })
            .unwrap_or((1, 1));
        anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message())
    })
}
