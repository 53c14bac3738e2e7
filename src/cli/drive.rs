//! What `parc master` and `parc reimage` share: the options saying where the machines are
//! (`--lab`, `--bootenv`, timeouts, `--jobs`), and running the engine over the ports built for
//! them (`crate::wiring`, or the test-only fakes), with Ctrl-C interrupting the run; then the
//! room's verify report when the run verified workstations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::procedure::Step;
use crate::engine::{self, MasterOptions, Ports, RunSummary};
use crate::exit::CliError;
use crate::ports::Reporter;
use crate::steps::report::{
    self, ConformityRecord, DomainRecord, HostVerdict, ImageRecord, Journaled, ParcRun,
    ReportFiles, SoftwareRecord,
};
use crate::wiring::{WireError, WireOptions, wire};
use crate::workspace::Loaded;

#[derive(Debug, Clone, clap::Args)]
pub struct MachineArgs {
    /// Run in the lab whose folder (holding lab.env, see lab/up.sh) is DIR: the endpoint, the
    /// DC and the QEMU workstations of its network namespaces.
    #[arg(long, value_name = "DIR", env = "PARC_LAB")]
    pub lab: Option<PathBuf>,
    /// The boot environment (vmlinuz, initrd.img), printed by images/bootenv/build.sh.
    #[arg(long, value_name = "DIR", env = "PARC_BOOTENV")]
    pub bootenv: Option<PathBuf>,
    /// Where Debian's `ipxe` package put its binaries.
    #[arg(long, default_value = "/usr/lib/ipxe", value_name = "DIR")]
    pub ipxe_dir: PathBuf,
    /// Seconds a workstation may take from its restart (or wake-on-LAN) to network-booting
    /// parc's boot environment; one that has not is reported as never booted and does not
    /// hold the others.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub wake_timeout: u64,
    /// Seconds a workstation may take from its restart to its agent's final report.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub boot_timeout: u64,
    /// How many workstations are worked on at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Seconds a freshly imaged workstation may take to answer over SSH.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub ssh_timeout: u64,
    /// A room's multicast deploy starts once this many workstations are ready (default:
    /// all of the run's; the others catch up by unicast). See site.toml `[deploy]`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_receivers: Option<u64>,
}

fn wire_error(e: WireError) -> CliError {
    let user = matches!(
        e,
        WireError::NoSite
            | WireError::NoRoom(_)
            | WireError::Address(_)
            | WireError::Lab(_)
            | WireError::Wds
            | WireError::NoController
            | WireError::Secret(..)
    );
    let hint = match &e {
        WireError::Lab(_) => Some("bring the lab up first: lab/up.sh (as root)"),
        WireError::NoController => {
            Some("add `controller = \"<the DC's address>\"` to [domain] in site.toml")
        }
        _ => None,
    };
    CliError::classified(user, e, hint.map(str::to_owned))
}

/// The checks of `parc doctor` that a run depends on, before anything is touched: any
/// problem refuses the run (exit 2) with every problem and its fix.
fn preflight(loaded: &Loaded, room: &str, m: &MachineArgs) -> Result<(), CliError> {
    use crate::doctor::{self, Check, DoctorOptions, Verdict};
    let opts = DoctorOptions {
        room: Some(room.to_owned()),
        netns: super::doctor::lab_netns(m.lab.as_deref())?,
        dhcp_wait: Duration::from_secs(5),
        dc_timeout: Duration::from_secs(5),
        bootenv: m.bootenv.clone(),
        ipxe_dir: Some(m.ipxe_dir.clone()),
    };
    let mut checks = doctor::run(loaded, &opts);
    if m.bootenv.is_none() {
        checks.push(Check::problem(
            "boot-env",
            "no boot environment given",
            "build it with images/bootenv/build.sh and pass its folder as --bootenv (or PARC_BOOTENV)",
        ));
    }
    for c in &checks {
        eprintln!("pre-flight: {}", c.render());
    }
    let problems: Vec<&Check> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Problem)
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::user(anyhow::anyhow!(
        "the pre-flight found {} problem(s) on this machine: {}",
        problems.len(),
        problems
            .iter()
            .map(|c| c.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    ))
    .with_hint(format!(
        "fix them (each line above says how) and run it again; `parc doctor {room}` checks without running; nothing was touched"
    )))
}

/// Runs the engine for `opts` on the machines `m` names (or on the fakes under
/// `PARC_ADAPTERS`), stopping the endpoint afterwards. `read_all`: the deploys read every
/// file of the disk (`parc reimage --read-all`).
pub(crate) fn run_engine(
    loaded: &Loaded,
    opts: &MasterOptions,
    m: &MachineArgs,
    read_all: bool,
    reporter: Arc<dyn Reporter>,
) -> Result<RunSummary, CliError> {
    let fakes = crate::adapters::fake::FakeConfig::from_env().is_some();
    if !fakes {
        preflight(loaded, &opts.room, m)?;
    }
    // What `parc console` follows live.
    let reporter = crate::console::with_live_log(reporter, &loaded.dir.state_dir(), &opts.room);
    let rt = super::master::runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        });
        if fakes {
            let (ports, verify_log) = super::master::fake_ports(reporter)?;
            let summary = engine::run_master(loaded, opts, &ports, cancel)
                .await
                .map_err(super::master::engine_error)?;
            report_verdicts(loaded, &opts.room, &ports, &verify_log).await?;
            return Ok(summary);
        }
        let bootenv = m.bootenv.clone().ok_or_else(|| {
            CliError::user(anyhow::anyhow!("no boot environment given"))
                .with_hint("build it with images/bootenv/build.sh and pass its folder as --bootenv (or PARC_BOOTENV)")
        })?;
        let wopts = WireOptions {
            lab: m.lab.clone(),
            bootenv,
            ipxe_dir: m.ipxe_dir.clone(),
            http_port: None,
            tftp_port: 69,
            wake_timeout: Duration::from_secs(m.wake_timeout),
            boot_timeout: Duration::from_secs(m.boot_timeout),
            ssh_timeout: Duration::from_secs(m.ssh_timeout),
            min_receivers: m.min_receivers.map(|n| n as usize),
            read_all,
        };
        let wired = wire(loaded, &opts.room, &wopts, reporter)
            .await
            .map_err(wire_error)?;
        let ports: Ports = wired.ports.clone();
        let verify_log = wired.verify_log.clone();
        let summary = engine::run_master(loaded, opts, &ports, cancel).await;
        let stopped = wired.stop().await;
        let summary = summary.map_err(super::master::engine_error)?;
        stopped.map_err(wire_error)?;
        report_verdicts(loaded, &opts.room, &ports, &verify_log).await?;
        Ok(summary)
    })
}

/// When the run verified workstations, writes the room's verify report and says where.
async fn report_verdicts(
    loaded: &Loaded,
    room: &str,
    ports: &Ports,
    log: &crate::steps::report::VerifyLog,
) -> Result<(), CliError> {
    let verdicts = log.take();
    if !verdicts.is_empty() {
        let files = write_report(loaded, room, &*ports.images, &*ports.reporter, verdicts).await?;
        ports.reporter.report(crate::ports::ProgressEvent::Message {
            text: format!("verify report: {}", files.html.display()),
        });
    }
    Ok(())
}

/// Writes the room's verify report, its conformity record (French HTML and JSON under
/// `reports/`): the image, the signed list, the domain, this run's verdicts and the journal's
/// word for the workstations this run did not verify.
async fn write_report(
    loaded: &Loaded,
    room: &str,
    images: &dyn crate::ports::ImageStore,
    reporter: &dyn crate::ports::Reporter,
    verdicts: std::collections::BTreeMap<String, HostVerdict>,
) -> Result<ReportFiles, CliError> {
    let st = engine::room_status(loaded, room, Some(images), super::today())
        .await
        .map_err(super::master::engine_error)?;
    let on = |step: Step, host: &str| {
        st.steps
            .iter()
            .find(|s| s.step == step)
            .and_then(|s| s.hosts.iter().find(|h| h.host == host))
    };
    let last_checks = last_verify_attempts(loaded, room);
    // Per workstation: its verify state, and why from the first of deploy, join, verify that
    // is not done on it (a skipped verify says little; the failed deploy says why).
    let journaled: Vec<Journaled<'_>> = st
        .steps
        .iter()
        .filter(|s| s.step == Step::Verify)
        .flat_map(|s| &s.hosts)
        .map(|h| Journaled {
            host: &h.host,
            state: h.state,
            detail: [Step::Deploy, Step::Join, Step::Verify]
                .into_iter()
                .filter_map(|step| on(step, &h.host).map(|x| (step, x)))
                .find(|(_, x)| x.state != "done")
                .map(|(step, x)| match x.detail.as_str() {
                    "" => format!("{step} {}", x.state),
                    d => format!("{step} {}: {d}", x.state),
                })
                .unwrap_or_default(),
            checked_at: last_checks.get(&h.host).map(|(at, _)| at.clone()),
            checked_by: last_checks.get(&h.host).map(|(_, by)| by.clone()),
        })
        .collect();
    let this_parc = ParcRun::this(&super::actor());
    let mut record = ConformityRecord::new(
        room,
        &report::now(),
        this_parc.clone(),
        report::room_verdicts(&journaled, verdicts, &this_parc),
    );
    record.recipe_digest = st.recipe_digest.clone();
    if let Some(id) = &st.image {
        let info = images.get(id).await.ok().flatten();
        record.image = Some(ImageRecord {
            id: id.clone(),
            version: info
                .as_ref()
                .map(|i| i.version.clone())
                .unwrap_or_else(|| id.rsplit('/').next().unwrap_or(id).to_owned()),
            captured_at: info.as_ref().and_then(|i| i.captured_at.clone()),
            recipe_digest: info
                .as_ref()
                .map(|i| i.recipe_digest.clone())
                .unwrap_or_else(|| st.recipe_digest.clone()),
            software_digest: info
                .as_ref()
                .map(|i| i.software_digest.clone())
                .unwrap_or_else(|| st.software_digest.clone()),
        });
    }
    if let Ok(recipe) = loaded.room(room) {
        record.room_name = recipe.name.clone();
        record.software = SoftwareRecord::of(recipe);
    }
    if let Some(site) = &loaded.ws.site {
        record.establishment = Some(format!("{} ({})", site.name.value, site.uai.value));
        record.domain = Some(DomainRecord::of(site, room));
    }
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S").to_string();
    let files = report::write_verify_report(&loaded.dir.root, &record, &stamp).map_err(|e| {
        CliError::internal(anyhow::Error::new(e).context("writing the verify report"))
    })?;
    store_in_database(&loaded.dir.root, &record, &files, reporter);
    Ok(files)
}

/// On a workspace whose state is in PostgreSQL, keeps the record there too. The run is over
/// and the files hold the record: a database that refuses it is said, not a failure.
fn store_in_database(
    root: &std::path::Path,
    record: &ConformityRecord,
    files: &ReportFiles,
    reporter: &dyn crate::ports::Reporter,
) {
    use crate::state::pg::store::{Store, StoreError};
    let stored = Store::open_workspace("parc-verify-pg", root)
        .and_then(|s| crate::steps::conformity_pg::store(&s, record).map(|_| s.url().to_owned()));
    let text = match stored {
        Ok(url) => format!("verify report stored in {url}"),
        Err(StoreError::NotPostgres) => return,
        Err(e) => format!(
            "warning: the verify report is not stored in the state database ({:#}); {} holds it",
            anyhow::Error::new(e),
            files.json.display()
        ),
    };
    reporter.report(crate::ports::ProgressEvent::Message { text });
}

/// Per workstation of `room`, when its latest verify attempt ended and who ran it (the
/// journal keeps no parc version). Empty when the journal cannot be read: the report then
/// says the time is not recorded.
fn last_verify_attempts(
    loaded: &Loaded,
    room: &str,
) -> std::collections::BTreeMap<String, (String, ParcRun)> {
    let mut found = std::collections::BTreeMap::new();
    let Ok(journal) = crate::journal::Journal::open_for(loaded) else {
        return found;
    };
    // Newest run first; within a run, its latest attempt.
    for run in journal.runs(Some(room)).unwrap_or_default() {
        let attempts = journal.attempts(run.id).unwrap_or_default();
        for a in attempts.iter().rev().filter(|a| a.step == "verify") {
            let (Some(host), Some(at)) = (&a.host, &a.finished) else {
                continue;
            };
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                })
                .unwrap_or_else(|_| at.clone());
            found.entry(host.clone()).or_insert_with(|| {
                (
                    at,
                    ParcRun {
                        parc_version: None,
                        actor: run.who.clone(),
                    },
                )
            });
        }
    }
    found
}
