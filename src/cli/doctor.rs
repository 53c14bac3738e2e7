//! `parc doctor [ROOM]`: the pre-flight, read only — can this machine run the room's procedure
//! on the site's network? One line per check; exit 1 when any finds a problem.

use std::time::Duration;

use crate::doctor::{self, Check, DoctorOptions};
use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The room whose OU, image space and workstations are checked too.
    pub room: Option<String>,
    /// Check from inside the lab whose folder (holding lab.env) is DIR.
    #[arg(long, value_name = "DIR", env = "PARC_LAB")]
    pub lab: Option<std::path::PathBuf>,
    /// Seconds to listen for the segment's DHCP servers (servers ping-check an address for
    /// 1–3 s before they offer it).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub dhcp_wait: u64,
    /// Seconds the domain controller may take to answer.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub dc_timeout: u64,
    /// One JSON object per check per line on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

/// The lab's server namespace, when `lab` names a lab.
pub(crate) fn lab_netns(lab: Option<&std::path::Path>) -> Result<Option<String>, CliError> {
    lab.map(|dir| {
        crate::lab::Lab::open_dir(dir)
            .map(|l| l.server_netns().to_owned())
            .map_err(|e| CliError::user(e).with_hint("bring the lab up first: lab/up.sh (as root)"))
    })
    .transpose()
}

pub(crate) fn print(checks: &[Check], json: bool) {
    for c in checks {
        if json {
            println!("{}", serde_json::to_string(c).unwrap_or_default());
        } else {
            println!("{}", c.render());
        }
    }
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let loaded = super::master::load(&args.ws)?;
    let opts = DoctorOptions {
        room: args.room.clone(),
        netns: lab_netns(args.lab.as_deref())?,
        dhcp_wait: Duration::from_secs(args.dhcp_wait),
        dc_timeout: Duration::from_secs(args.dc_timeout),
        bootenv: None,
        ipxe_dir: None,
    };
    let checks = doctor::run(&loaded, &opts);
    print(&checks, args.json);
    let problems = checks
        .iter()
        .filter(|c| c.verdict == doctor::Verdict::Problem)
        .count();
    if problems == 0 {
        if !args.json {
            eprintln!("doctor: every check passed");
        }
        Ok(Status::Success)
    } else {
        if !args.json {
            eprintln!("doctor: {problems} problem(s); nothing was changed");
        }
        Ok(Status::Failure)
    }
}
