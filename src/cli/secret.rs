//! `parc secret set | list`.

use crate::exit::{CliError, Status};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store a secret; the value is read from standard input, never from the command line.
    Set {
        name: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// List the names of stored secrets (never their values).
    List {
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
}

pub fn run(_cmd: Command) -> Result<Status, CliError> {
    Err(CliError::internal(anyhow::anyhow!("not yet implemented")))
}
