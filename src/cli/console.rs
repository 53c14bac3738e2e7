//! `parc console`: the web console, in the foreground until Ctrl-C. Read-only, bound to
//! localhost unless `--bind` says otherwise; the reimage action needs the token it prints.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::console::{self, Console, Feed};
use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: localhost only). Anyone who reaches it reads the
    /// site's rooms, runs and audit log.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    // Refuses a workspace that does not read before listening (exit 2, with the findings).
    let loaded = super::master::load(&args.ws)?;
    let images = super::master::image_store(&loaded).ok();
    let workspace = std::path::absolute(&args.ws.workspace)
        .context("locating the workspace")
        .map_err(CliError::internal)?;
    let me = std::env::current_exe()
        .context("locating parc")
        .map_err(CliError::internal)?;
    let token = console::new_token()
        .context("making the console's token")
        .map_err(CliError::internal)?;
    let rt = super::master::runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, args.port))
            .await
            .map_err(|e| {
                CliError::user(anyhow::anyhow!(
                    "cannot listen on {}:{}: {e}",
                    args.bind,
                    args.port
                ))
                .with_hint("choose another --port (0 takes any free one)")
            })?;
        let addr = listener
            .local_addr()
            .context("reading the console's address")
            .map_err(CliError::internal)?;
        let feed = Feed::new(&workspace.join(".parc"));
        let cancel = CancellationToken::new();
        feed.spawn(cancel.clone());
        let console = Arc::new(Console {
            workspace,
            token: token.clone(),
            actor: format!("{} (console)", super::actor()),
            feed,
            images,
            reimage: vec![me.into_os_string(), "reimage".into()],
            reimage_env: BTreeMap::new(),
        });
        eprintln!("parc console: http://{addr}/");
        eprintln!("reimage token (give it to reimage a workstation from the console): {token}");
        let c = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            c.cancel();
        });
        axum::serve(
            listener,
            console::router(console).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .context("parc console")
        .map_err(CliError::internal)
    })?;
    Ok(Status::Success)
}
