//! `parc hosts key | show-key | trust`: parc's SSH identity and the pinned host keys of the
//! workspace (`.parc/known_hosts`). Trusting needs the fingerprint the technician read on the
//! machine itself: there is no trust on first use.

use std::time::Duration;

use anyhow::Context as _;

use crate::adapters::ssh::{self, SshConnector, SshOptions};
use crate::exit::{CliError, Status};
use crate::ports::HostAddress;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print parc's public key (generated on first use), to install in the machines'
    /// `authorized_keys`.
    Key {
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Print the fingerprint of the key a host offers; pins nothing.
    ShowKey {
        #[command(flatten)]
        target: Target,
    },
    /// Pin the key a host offers, if its fingerprint is the one given.
    Trust {
        #[command(flatten)]
        target: Target,
        /// The fingerprint read on the machine (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`),
        /// e.g. `SHA256:…`.
        #[arg(long)]
        fingerprint: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The host's name (also its address unless --address is given).
    pub host: String,
    /// IP address or resolvable name of the host, when it differs from its name.
    #[arg(long)]
    pub address: Option<String>,
    /// SSH port.
    #[arg(long, default_value_t = 22)]
    pub port: u16,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

impl Target {
    fn address(&self) -> HostAddress {
        HostAddress {
            hostname: self.host.clone(),
            address: self.address.clone().unwrap_or_else(|| self.host.clone()),
            port: self.port,
            user: "root".into(),
            shell: crate::ports::RemoteShell::Posix,
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(15);

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(CliError::internal)
}

fn to_cli(e: ssh::SshError) -> CliError {
    match e {
        ssh::SshError::FingerprintMismatch { .. } => CliError::user(e).with_hint(
            "compare again with the key shown on the machine's console; nothing was pinned",
        ),
        other => CliError::internal(other),
    }
}

pub fn run(cmd: Command) -> Result<Status, CliError> {
    match cmd {
        Command::Key { ws } => {
            let state = ws.workspace.join(".parc");
            let conn = SshConnector::open(&state, SshOptions::default()).map_err(to_cli)?;
            println!("{}", conn.public_key_line());
            Ok(Status::Success)
        }
        Command::ShowKey { target } => {
            let addr = target.address();
            let key = runtime()?
                .block_on(ssh::fetch_host_key(&addr, TIMEOUT))
                .map_err(to_cli)?;
            let fp = ssh::known_hosts::fingerprint(&key);
            println!("{} offers {fp}", ssh::label(&addr));
            println!(
                "if the machine shows the same, run: parc hosts trust {} --fingerprint {fp}",
                target.host
            );
            Ok(Status::Success)
        }
        Command::Trust {
            target,
            fingerprint,
        } => {
            let addr = target.address();
            let kh = ssh::known_hosts_path(&target.ws.workspace.join(".parc"));
            let fp = runtime()?
                .block_on(ssh::trust_host(&kh, &addr, Some(&fingerprint), TIMEOUT))
                .map_err(to_cli)?;
            println!("pinned {} {fp} in {}", ssh::label(&addr), kh.display());
            Ok(Status::Success)
        }
    }
}
