//! `parc-agent` command line: `capture | deploy | format`, and the entry point of the binary.
//! The task token comes from `$PARC_AGENT_TOKEN` or `--token-file`, never from the command
//! line (argv is visible to every process).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::endpoint::Endpoint;
use super::error::AgentError;
use super::local::{LocalSource, capture_to_file, restore_ntfs_file};
use super::run::{CaptureSources, error_chain, run_task};
use crate::image::capture::CaptureSettings;
use crate::image::chunks::ChunkParams;

/// parc-agent — captures, deploys or formats this machine's disk for parc.
#[derive(Debug, Parser)]
#[command(name = "parc-agent", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the task is.
#[derive(Debug, Clone, clap::Args)]
pub struct TaskArgs {
    /// The endpoint's base URL, e.g. http://10.77.0.1:8000.
    #[arg(long)]
    pub endpoint: String,
    /// The task id given by the endpoint.
    #[arg(long)]
    pub task: String,
    /// File holding the task's token (else $PARC_AGENT_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Seconds between progress reports.
    #[arg(long, default_value_t = 1.0)]
    pub report_every: f64,
    /// Consecutive failed download attempts before giving up.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Seconds the final report is retried while the endpoint cannot be reached (a cut link,
    /// a restarting switch): the outcome is what the endpoint must not miss.
    #[arg(long, default_value_t = 600)]
    pub report_patience: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture the master's filesystems and upload them to the endpoint.
    Capture {
        #[command(flatten)]
        task: TaskArgs,
        /// The master's disk (partitions are mounted read-only by offset).
        #[arg(long)]
        disk: Option<PathBuf>,
        /// A folder standing for partition N: `N=DIR` (repeatable).
        #[arg(long = "source", value_parser = parse_source)]
        sources: Vec<(u32, PathBuf)>,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// Archive a folder (`.tar.zst`) or an NTFS volume (partclone blocks, `.ntfs.zst`) into a
    /// file without an endpoint (benchmarks, checks); prints the digest and sizes as JSON.
    Archive {
        #[arg(long, required_unless_present = "ntfs", conflicts_with = "ntfs")]
        source_dir: Option<PathBuf>,
        /// An NTFS volume (device or file), not mounted.
        #[arg(long)]
        ntfs: Option<PathBuf>,
        #[arg(long)]
        output: PathBuf,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// Restore an NTFS stream made by `archive --ntfs` onto a volume through the deploy
    /// pipeline (digest checked) without an endpoint (benchmarks); prints the time as JSON.
    RestoreNtfs {
        #[arg(long)]
        input: PathBuf,
        /// The stream's `sha256:<hex>`, as `archive` printed it.
        #[arg(long)]
        sha256: String,
        /// The stream's size in bytes.
        #[arg(long)]
        size: u64,
        /// The volume to overwrite (device or file at least the captured volume's size).
        #[arg(long)]
        target: PathBuf,
    },
    /// Deploy the task's image onto the disk.
    Deploy {
        #[command(flatten)]
        task: TaskArgs,
        /// The disk to overwrite (block device or image file).
        #[arg(long)]
        target: PathBuf,
        /// On a reimage, read every file of the disk rather than trust the record of its
        /// last deploy (which files changed since): for a disk suspected of changing under
        /// its filesystem.
        #[arg(long)]
        read_all: bool,
    },
    /// Partition the disk and make empty filesystems.
    Format {
        #[command(flatten)]
        task: TaskArgs,
        #[arg(long)]
        target: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompressionArgs {
    /// zstd level.
    #[arg(long, default_value_t = CaptureSettings::default().level)]
    pub level: i32,
    /// zstd level of NTFS and FAT block images.
    #[arg(long, default_value_t = CaptureSettings::default().block_level)]
    pub block_level: i32,
    /// zstd worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: u32,
    /// zstd window size (log2); 0: the level's.
    #[arg(long, default_value_t = CaptureSettings::default().window_log, hide = true)]
    pub window_log: u32,
    /// zstd hash table size (log2); 0: the level's.
    #[arg(long, default_value_t = 0, hide = true)]
    pub hash_log: u32,
    /// zstd chain table size (log2); 0: the level's.
    #[arg(long, default_value_t = 0, hide = true)]
    pub chain_log: u32,
    /// One zstd stream instead of content-defined chunks each compressed alone (what the
    /// chunk store stores; the benches compare both).
    #[arg(long)]
    pub no_chunks: bool,
}

impl CompressionArgs {
    fn settings(&self) -> CaptureSettings {
        CaptureSettings {
            level: self.level,
            block_level: self.block_level,
            workers: self.workers,
            window_log: self.window_log,
            hash_log: self.hash_log,
            chain_log: self.chain_log,
            chunks: (!self.no_chunks).then(ChunkParams::default),
        }
    }
}

fn parse_source(s: &str) -> Result<(u32, PathBuf), String> {
    let (n, d) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not N=DIR"))?;
    let n = n
        .parse()
        .map_err(|_| format!("`{n}` is not a partition number"))?;
    Ok((n, PathBuf::from(d)))
}

fn endpoint(t: &TaskArgs) -> Result<Endpoint, AgentError> {
    let token = match &t.token_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| AgentError::Task(format!("reading the token {}: {e}", p.display())))?,
        None => std::env::var("PARC_AGENT_TOKEN").map_err(|_| {
            AgentError::Task("no token: set $PARC_AGENT_TOKEN or pass --token-file".into())
        })?,
    };
    let mut ep = Endpoint::new(&t.endpoint, &t.task, token.trim())?;
    ep.retries = t.retries;
    ep.report_patience = std::time::Duration::from_secs(t.report_patience);
    Ok(ep)
}

fn run(cli: Cli) -> Result<(), AgentError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError::Task(format!("starting the runtime: {e}")))?;
    let msg = match cli.command {
        Command::Archive {
            source_dir,
            ntfs,
            output,
            compression,
        } => {
            let source = match (&source_dir, &ntfs) {
                (Some(d), _) => LocalSource::Tree(d),
                (None, Some(v)) => LocalSource::Ntfs(v),
                (None, None) => unreachable!("clap requires --source-dir or --ntfs"),
            };
            let (o, secs) = capture_to_file(source, &output, compression.settings())?;
            println!(
                "{}",
                serde_json::json!({
                    "sha256": o.sha256, "size": o.size,
                    "uncompressed_size": o.uncompressed_size,
                    "entries": o.entries, "seconds": secs,
                })
            );
            return Ok(());
        }
        Command::RestoreNtfs {
            input,
            sha256,
            size,
            target,
        } => {
            let secs = restore_ntfs_file(&input, &sha256, size, &target)?;
            println!("{}", serde_json::json!({ "seconds": secs }));
            return Ok(());
        }
        Command::Capture {
            task,
            disk,
            sources,
            compression,
        } => {
            let ep = endpoint(&task)?;
            let sources = CaptureSources {
                disk,
                dirs: sources,
            };
            run_task(
                &rt,
                &ep,
                None,
                &sources,
                compression.settings(),
                interval(&task),
                false,
            )?
        }
        Command::Deploy {
            task,
            target,
            read_all,
        } => on_disk(&rt, &task, &target, read_all)?,
        Command::Format { task, target } => on_disk(&rt, &task, &target, false)?,
    };
    eprintln!("parc-agent: {msg}");
    Ok(())
}

/// Runs a deploy or format task onto `target`.
fn on_disk(
    rt: &tokio::runtime::Runtime,
    task: &TaskArgs,
    target: &Path,
    read_all: bool,
) -> Result<String, AgentError> {
    let ep = endpoint(task)?;
    run_task(
        rt,
        &ep,
        Some(target),
        &CaptureSources::default(),
        CaptureSettings::default(),
        interval(task),
        read_all,
    )
}

/// How often the agent reports progress.
fn interval(t: &TaskArgs) -> Duration {
    Duration::from_secs_f64(t.report_every.max(0.05))
}

/// Entry point of `parc-agent`.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}
