//! The step bodies port: what each of the eight steps does to machines and images.
//!
//! The engine owns sequencing, gates, the journal, resume, fan-out, locks and progress; an
//! implementation of [`StepActions`] only does the work of one step on one target. Every body
//! takes a [`StepCx`] carrying the cancellation token and a log sink; secrets are fetched by
//! the implementation itself (from the secret store it was built with), never passed here.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{PortResult, Reporter};
use crate::domain::procedure::Step;
use crate::domain::recipe::Recipe;

/// A workstation the step acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub hostname: String,
    pub mac: String,
    pub ip: Option<String>,
}

/// Receives the lines of a step's log (the engine writes them to the attempt's log file).
pub trait StepLog: Send + Sync {
    fn line(&self, text: &str);
}

/// Everything a step body needs to know about the run.
#[derive(Clone)]
pub struct StepCx {
    pub room: String,
    pub recipe: Arc<Recipe>,
    /// `digest::recipe_digest` of the recipe, recorded in the image manifest at capture.
    pub recipe_digest: String,
    /// `digest::software_digest` of the list, recorded in the image manifest at capture.
    pub software_digest: String,
    /// The room's master workstation.
    pub master: Target,
    /// The image being deployed (deploy, join, verify).
    pub image: Option<String>,
    pub cancel: CancellationToken,
    pub log: Arc<dyn StepLog>,
    pub reporter: Arc<dyn Reporter>,
}

/// A captured image, as capture reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// `<room>/<version>` in the image store.
    pub id: String,
}

/// How the deploys of one run go, as [`StepActions::begin_deploy`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployBatch {
    /// Every workstation deploys at once (one multicast stream for the room), whatever the
    /// run's `--jobs`.
    pub together: bool,
    /// The path chosen and why, for the run's log and progress.
    pub note: String,
}

/// The bodies of the eight steps. `test` and `verify` return `Ok(Err(why))` when they ran and
/// found the machine wrong (the outer error is "could not check").
#[async_trait]
pub trait StepActions: Send + Sync {
    /// a) fetch and check every installer of the recipe (idempotent).
    async fn collect(&self, cx: &StepCx) -> PortResult<()>;
    /// b) format the master and lay down the base OS.
    async fn format(&self, cx: &StepCx) -> PortResult<()>;
    /// c) install the software list on the master.
    async fn install(&self, cx: &StepCx) -> PortResult<()>;
    /// d) run the technical tests on the master (idempotent).
    async fn test(&self, cx: &StepCx) -> PortResult<Result<(), String>>;
    /// f) capture the master into a new image; the manifest records the cx's digests.
    async fn capture(&self, cx: &StepCx) -> PortResult<Captured>;
    /// Before the deploys of one run: `hosts` are about to receive `cx.image` (a multicast
    /// session is opened for them when the site allows it).
    async fn begin_deploy(&self, _cx: &StepCx, _hosts: &[Target]) -> PortResult<DeployBatch> {
        Ok(DeployBatch::default())
    }
    /// g) write `cx.image` to one workstation; returns how it went (the path its image took),
    /// kept in the journal and shown by `parc status`.
    async fn deploy_host(&self, cx: &StepCx, host: &Target) -> PortResult<String>;
    /// After the deploys of one run (closes the session); returns a line for the log.
    async fn end_deploy(&self, _cx: &StepCx) -> Option<String> {
        None
    }
    /// h) join one workstation to the domain.
    async fn join_host(&self, cx: &StepCx, host: &Target) -> PortResult<()>;
    /// Check one workstation: image, software, domain (idempotent).
    async fn verify_host(&self, cx: &StepCx, host: &Target) -> PortResult<Result<(), String>>;
    /// For a non-idempotent step interrupted mid-way: whether its effect is already in place
    /// (on `host` for deploy/join). For capture, "in place" means the store holds an image of
    /// the cx's recipe digest; the engine then takes it from the image store.
    async fn check_done(&self, cx: &StepCx, step: Step, host: Option<&Target>) -> PortResult<bool>;
}
