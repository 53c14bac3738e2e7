//! `parc software`.

use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(_args: Args) -> Result<Status, CliError> {
    Err(CliError::internal(anyhow::anyhow!("not yet implemented")))
}
