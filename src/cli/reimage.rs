//! `parc reimage HOST…`: re-applies the room's current image to the named workstations (after
//! instability or a repair), then joins and verifies them — a run of the room's procedure
//! from deploy, restricted to those hosts (journaled, resumable, audited as reimages).
//! Refuses when the room's newest image was captured from another recipe than today's,
//! unless `--force`.

use std::collections::BTreeSet;

use crate::domain::digest::recipe_digest;
use crate::domain::procedure::{Selection, Step};
use crate::engine::{MasterOptions, Outcome};
use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workstations to reimage (hostnames of devices.csv, all of one room).
    #[arg(required = true, value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Re-apply the room's newest image even if it was captured from another recipe than
    /// today's (the workstations then get what that image holds; verify says what differs).
    #[arg(long)]
    pub force: bool,
    /// Read every file of each workstation's disk rather than trust the record of its last
    /// deploy (which files changed since): for a disk suspected of changing beneath its
    /// filesystem (a raw write, a failing sector). Slower: the whole tree is read again.
    #[arg(long)]
    pub read_all: bool,
    #[command(flatten)]
    pub machines: super::drive::MachineArgs,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

/// The one room the hosts belong to.
fn room_of(loaded: &crate::workspace::Loaded, hosts: &[String]) -> Result<String, CliError> {
    let mut rooms = BTreeSet::new();
    for h in hosts {
        let d = loaded
            .ws
            .devices
            .iter()
            .find(|d| d.hostname.value.eq_ignore_ascii_case(h))
            .ok_or_else(|| {
                let names: Vec<&str> = loaded
                    .ws
                    .devices
                    .iter()
                    .map(|d| d.hostname.value.as_str())
                    .collect();
                let err = CliError::user(anyhow::anyhow!("{h} is not in devices.csv"));
                match crate::domain::finding::did_you_mean(h, names.iter().copied()) {
                    Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                    None => err,
                }
            })?;
        let room = d.room.as_ref().map(|r| r.value.clone()).ok_or_else(|| {
            CliError::user(anyhow::anyhow!(
                "{h} is in no room (a spare?): assign it to a room in devices.csv first"
            ))
        })?;
        rooms.insert(room);
    }
    if rooms.len() > 1 {
        return Err(CliError::user(anyhow::anyhow!(
            "the workstations belong to {} rooms ({}): reimage one room at a time",
            rooms.len(),
            rooms.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(rooms.into_iter().next().unwrap_or_default())
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let loaded = super::master::load(&args.ws)?;
    let room = room_of(&loaded, &args.hosts)?;
    super::master::room_gate(&loaded, &room)?;
    let recipe = loaded.room(&room).map_err(super::room_error)?;

    // The room's newest image must realise today's recipe (or be forced).
    let store = super::master::image_store(&loaded)?;
    let newest = super::master::runtime()?
        .block_on(store.list(Some(&room)))
        .map_err(CliError::internal)?
        .into_iter()
        .last();
    let Some(image) = newest else {
        return Err(
            CliError::user(anyhow::anyhow!("room {room} has no image to re-apply"))
                .with_hint(format!("capture one first: parc master {room}")),
        );
    };
    let current = recipe_digest(recipe);
    let stale = image.recipe_digest != current;
    if stale && !args.force {
        return Err(CliError::user(anyhow::anyhow!(
            "the image of room {room} ({}) is stale: it was captured from recipe {} but rooms/{room}.toml is now {current}",
            image.id,
            image.recipe_digest
        ))
        .with_hint(format!(
            "the workstations would get software the recipe no longer describes; rebuild the image with `parc master {room}`, or re-apply it anyway with --force"
        )));
    }

    let hosts: Vec<String> = args
        .hosts
        .iter()
        .map(|h| {
            loaded
                .ws
                .devices
                .iter()
                .find(|d| d.hostname.value.eq_ignore_ascii_case(h))
                .map(|d| d.hostname.value.clone())
                .unwrap_or_else(|| h.clone())
        })
        .collect();
    let opts = MasterOptions {
        room: room.clone(),
        selection: Selection {
            from: Some(Step::Deploy),
            only: None,
            hosts: Some(hosts),
        },
        concurrency: args.machines.jobs.max(1),
        who: super::actor(),
        today: super::today(),
        forced_image: stale.then(|| image.id.clone()),
    };
    if stale {
        eprintln!(
            "warning: {} was captured from recipe {}, not from today's {current}: forced",
            image.id, image.recipe_digest
        );
    }
    eprintln!(
        "reimaging {} with {}{}",
        args.hosts.join(", "),
        image.id,
        if args.read_all {
            ", reading every file of their disks"
        } else {
            ""
        }
    );
    let reporter = crate::ui::reporter(crate::ui::Mode::Auto);
    let summary =
        super::drive::run_engine(&loaded, &opts, &args.machines, args.read_all, reporter)?;
    eprintln!(
        "room {}: run {} {}",
        summary.room,
        summary.run,
        summary.outcome.word()
    );
    match summary.outcome {
        Outcome::Done => Ok(Status::Success),
        Outcome::Partial(f) => {
            for h in f {
                eprintln!("  {} {}: {}", h.step, h.host, h.message);
            }
            Ok(Status::Failure)
        }
        Outcome::Blocked { step, reason } => Err(CliError::user(anyhow::anyhow!(
            "{step} is blocked: {reason}"
        ))),
        Outcome::Failed { step, message } => Err(CliError::internal(anyhow::anyhow!(
            "{step} failed: {message}"
        ))),
        Outcome::Interrupted => Ok(Status::Failure),
    }
}
