//! `parc master ROOM`: start or continue a room's procedure (`--dry-run` prints the plan).

use std::sync::Arc;

use anyhow::Context as _;

use crate::domain::procedure::{Selection, Step};
use crate::engine::{self, MasterOptions, Outcome, Ports};
use crate::exit::{CliError, Status};
use crate::ports::Reporter;
use crate::workspace::{Loaded, WorkspaceDir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The room (its recipe is rooms/ROOM.toml).
    pub room: String,
    /// Re-run this step and every later one, even if done.
    #[arg(long, value_name = "STEP", conflicts_with = "only")]
    pub from: Option<Step>,
    /// Run only this step, even if done.
    #[arg(long, value_name = "STEP")]
    pub only: Option<Step>,
    /// Restrict deploy, join and verify to these workstations (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    pub hosts: Option<Vec<String>>,
    /// Print the plan (each step, what it will do, what blocks) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per event (or plan line) per line on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub machines: super::drive::MachineArgs,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

impl clap::ValueEnum for Step {
    fn value_variants<'a>() -> &'a [Self] {
        &Step::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Loads the workspace, refusing one whose files do not parse.
pub(crate) fn load(ws: &super::WorkspaceArg) -> Result<Loaded, CliError> {
    let dir = WorkspaceDir::open(&ws.workspace).map_err(CliError::user)?;
    dir.load()
        .map_err(CliError::internal)?
        .require_parsed()
        .map_err(|e| {
            let n = match &e {
                crate::workspace::WorkspaceError::Invalid(f) => f.len(),
                _ => 0,
            };
            CliError::user(e).with_hint(format!("run `parc check` to see the {n} problem(s)"))
        })
}

/// The test-only fakes (`PARC_ADAPTERS=fake:<dir>`, see `adapters::fake`); the real
/// adapters are built by `crate::wiring` (see `super::drive`).
pub(crate) fn ports(reporter: Arc<dyn Reporter>) -> Result<Ports, CliError> {
    fake_ports(reporter).map(|(ports, _)| ports)
}

/// The fakes' ports and what their verify says per workstation.
pub(crate) fn fake_ports(
    reporter: Arc<dyn Reporter>,
) -> Result<(Ports, Arc<crate::steps::report::VerifyLog>), CliError> {
    use crate::adapters::fake::{FakeActions, FakeConfig, FakeImages};
    match FakeConfig::from_env() {
        Some(Ok(cfg)) => {
            let images = Arc::new(FakeImages::new(&cfg.dir));
            let actions = FakeActions::new(cfg);
            let log = actions.verify_log();
            Ok((
                Ports {
                    actions: Arc::new(actions),
                    images,
                    reporter,
                },
                log,
            ))
        }
        Some(Err(e)) => Err(CliError::user(anyhow::anyhow!(e))),
        None => Err(CliError::internal(anyhow::anyhow!(
            "PARC_ADAPTERS is not set: no fake adapters"
        ))),
    }
}

/// The image store the gates read without wiring any machine: the fakes bring their own;
/// otherwise the workspace's images/ folder.
pub(crate) fn image_store(loaded: &Loaded) -> Result<Arc<dyn crate::ports::ImageStore>, CliError> {
    match crate::adapters::fake::FakeConfig::from_env() {
        Some(_) => Ok(ports(Arc::new(crate::ports::NullReporter))?.images),
        None => Ok(Arc::new(crate::image::store::FsImageStore::new(
            loaded.dir.images_dir(),
        ))),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(CliError::internal)
}

pub(crate) fn engine_error(e: engine::EngineError) -> CliError {
    let user = e.is_user_error();
    let hint = match &e {
        engine::EngineError::UnknownHosts { known, .. } => {
            Some(format!("the room's workstations: {}", known.join(", ")))
        }
        engine::EngineError::Journal(crate::journal::JournalError::Locked { .. }) => {
            Some("wait for it to finish, or stop it (Ctrl-C) and run this again to resume".into())
        }
        _ => None,
    };
    CliError::classified(user, e, hint)
}

/// Refuses a room that `parc check` finds wrong, except for the licence and sign-off rules:
/// the engine enforces those at their steps (install, capture), since teachers sign the list
/// only after the technician's tests.
pub(crate) fn room_gate(loaded: &Loaded, room_id: &str) -> Result<(), CliError> {
    use crate::domain::finding::Severity;
    use crate::domain::validate::{CheckContext, validate};
    let Some(room) = loaded.ws.room(room_id) else {
        return Ok(()); // the engine names the unknown room
    };
    let room_rows: Vec<usize> = loaded.ws.devices_in(room_id).map(|d| d.row.line).collect();
    let cx = CheckContext {
        today: super::today(),
        known_secrets: None,
    };
    let blocking: Vec<String> = validate(&loaded.ws, &cx)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .filter(|f| !f.rule.starts_with("licence-") && !f.rule.starts_with("signoff-"))
        .filter(|f| {
            let file = f.location.file.as_str();
            file == room.file
                || file == "site.toml"
                || file == "models.toml"
                || (file == "devices.csv" && room_rows.contains(&f.location.line))
        })
        .map(|f| f.to_string())
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    Err(CliError::user(anyhow::anyhow!(
        "room {room_id} breaks the field's rules:\n{}",
        blocking.join("\n")
    ))
    .with_hint("fix these first (`parc check`); nothing was touched"))
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let loaded = load(&args.ws)?;
    room_gate(&loaded, &args.room)?;
    let mode = if args.json {
        crate::ui::Mode::Json
    } else {
        crate::ui::Mode::Auto
    };
    let reporter = crate::ui::reporter(mode);
    let opts = MasterOptions {
        room: args.room.clone(),
        selection: Selection {
            from: args.from,
            only: args.only,
            hosts: args.hosts.clone(),
        },
        concurrency: args.machines.jobs.max(1),
        who: super::actor(),
        today: super::today(),
        forced_image: None,
    };
    if args.dry_run {
        let rt = runtime()?;
        let images = image_store(&loaded)?;
        let lines = rt
            .block_on(engine::dry_run(&loaded, &opts, &*images))
            .map_err(engine_error)?;
        for l in &lines {
            if args.json {
                println!("{}", serde_json::to_string(l).unwrap_or_default());
            } else if l.action != "not-selected" {
                let target = l
                    .host
                    .as_deref()
                    .map(|h| format!(" {h}"))
                    .unwrap_or_default();
                let why = if l.why.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", l.why)
                };
                println!(
                    "{:<8}{:<9} {:<8} {}{why}",
                    l.step.as_str(),
                    target,
                    l.action,
                    l.what
                );
            }
        }
        return Ok(Status::Success);
    }
    let summary = super::drive::run_engine(&loaded, &opts, &args.machines, false, reporter)?;
    if args.json {
        let failures = match &summary.outcome {
            Outcome::Partial(f) => f.clone(),
            _ => Vec::new(),
        };
        let v = serde_json::json!({
            "event": "summary", "room": summary.room, "run": summary.run,
            "outcome": summary.outcome.word(), "detail": summary.outcome.detail(), "failures": failures,
        });
        println!("{v}");
    } else {
        eprintln!(
            "room {}: run {} {}",
            summary.room,
            summary.run,
            summary.outcome.word()
        );
        if let Outcome::Partial(f) = &summary.outcome {
            for h in f {
                let word = if h.skipped { "skipped" } else { "failed" };
                eprintln!("  {} {} {word}: {}", h.step, h.host, h.message);
            }
        }
    }
    match summary.outcome {
        Outcome::Done => Ok(Status::Success),
        Outcome::Blocked { step, reason } => Err(CliError::user(anyhow::anyhow!(
            "{step} is blocked: {reason}"
        ))
        .with_hint(format!(
            "`parc status {}` shows each step and what blocks",
            summary.room
        ))),
        Outcome::Failed { step, message } => Err(CliError::internal(anyhow::anyhow!(
            "{step} failed: {message}"
        ))
        .with_hint(format!(
            "`parc run show {}` has the logs; run `parc master {}` again to retry",
            summary.run, summary.room
        ))),
        Outcome::Partial(_) | Outcome::Interrupted => Ok(Status::Failure),
    }
}
