//! `parc-agent` command line: `capture | deploy | format`, and the entry point of the binary.
//! The task token comes from `$PARC_AGENT_TOKEN` or `--token-file`, never from the command
//! line (argv is visible to every process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::endpoint::Endpoint;
use super::error::AgentError;
use super::local::capture_to_file;
use super::run::{CaptureSources, error_chain, run_task};
use crate::image::capture::CaptureSettings;

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture the master's filesystems and upload them to the endpoint.
    Capture {
        #[command(flatten)]
        task: Option<TaskArgs>,
        /// The master's disk (partitions are mounted read-only by offset).
        #[arg(long)]
        disk: Option<PathBuf>,
        /// A folder standing for partition N: `N=DIR` (repeatable).
        #[arg(long = "source", value_parser = parse_source)]
        sources: Vec<(u32, PathBuf)>,
        /// Without an endpoint: archive `--source-dir` into this file and print the digest.
        #[arg(long, conflicts_with = "endpoint", requires = "source_dir")]
        output: Option<PathBuf>,
        #[arg(long)]
        source_dir: Option<PathBuf>,
        /// zstd level.
        #[arg(long, default_value_t = 3)]
        level: i32,
        /// zstd worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: u32,
    },
    /// Deploy the task's image onto the disk.
    Deploy {
        #[command(flatten)]
        task: TaskArgs,
        /// The disk to overwrite (block device or image file).
        #[arg(long)]
        target: PathBuf,
    },
    /// Partition the disk and make empty filesystems.
    Format {
        #[command(flatten)]
        task: TaskArgs,
        #[arg(long)]
        target: PathBuf,
    },
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
    Ok(ep)
}

fn run(cli: Cli) -> Result<(), AgentError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError::Task(format!("starting the runtime: {e}")))?;
    let interval = |t: &TaskArgs| Duration::from_secs_f64(t.report_every.max(0.05));
    let msg = match cli.command {
        Command::Capture {
            task,
            disk,
            sources,
            output,
            source_dir,
            level,
            workers,
        } => {
            let settings = CaptureSettings { level, workers };
            if let (Some(out), Some(dir)) = (output, source_dir) {
                let (o, secs) = capture_to_file(&dir, &out, settings)?;
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
            let task = task.ok_or_else(|| {
                AgentError::Task("capture needs --endpoint and --task, or --output".into())
            })?;
            let ep = endpoint(&task)?;
            let sources = CaptureSources {
                disk,
                dirs: sources,
            };
            run_task(&rt, &ep, None, &sources, settings, interval(&task))?
        }
        Command::Deploy { task, target } | Command::Format { task, target } => {
            let ep = endpoint(&task)?;
            run_task(
                &rt,
                &ep,
                Some(&target),
                &CaptureSources::default(),
                CaptureSettings::default(),
                interval(&task),
            )?
        }
    };
    eprintln!("parc-agent: {msg}");
    Ok(())
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
