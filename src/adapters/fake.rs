//! TEST-ONLY fake adapters, usable by the real `parc` binary: step bodies that only sleep and
//! write down what they would have done, and an image store backed by the same file.
//!
//! Selected with `PARC_ADAPTERS=fake:<dir>` (never in production). Options:
//! - `PARC_FAKE_DELAY_MS` (default 40): how long each step body takes (split around its effect);
//! - `PARC_FAKE_FAIL`: comma-separated `step` or `step:host` whose body fails.
//!
//! In `<dir>`:
//! - `effects.log`: one line per side effect, appended atomically (one `write` with
//!   `O_APPEND`) at the moment the effect "happens": `step<TAB>host<TAB>detail`. For capture,
//!   the line *is* the image: the fake image store lists capture lines. Tests count lines to
//!   check that no side effect happened twice.
//! - `trace.log`: `begin`, `effect`, `end` of every body, for tests that kill the process at
//!   chosen points.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::procedure::Step;
use crate::ports::steps::{Captured, StepActions, StepCx, Target};
use crate::ports::{ImageInfo, ImageStore, PortError, PortErrorKind, PortResult, ProgressEvent};

/// The environment variable that selects adapters.
pub const ENV: &str = "PARC_ADAPTERS";

/// The fake adapters' settings.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub dir: PathBuf,
    pub delay: Duration,
    /// `(step, None)` fails everywhere, `(step, Some(host))` on that host.
    pub fail: Vec<(Step, Option<String>)>,
}

impl FakeConfig {
    /// Reads `PARC_ADAPTERS=fake:<dir>` and the fake's options; `None` when fakes are not asked.
    pub fn from_env() -> Option<Result<Self, String>> {
        let spec = std::env::var(ENV).ok()?;
        let dir = spec.strip_prefix("fake:")?;
        Some(Self::parse(
            dir,
            std::env::var("PARC_FAKE_DELAY_MS").ok().as_deref(),
            std::env::var("PARC_FAKE_FAIL").ok().as_deref(),
        ))
    }

    pub fn parse(dir: &str, delay_ms: Option<&str>, fail: Option<&str>) -> Result<Self, String> {
        let delay = match delay_ms {
            Some(d) => d
                .parse::<u64>()
                .map_err(|_| format!("PARC_FAKE_DELAY_MS=\"{d}\" is not a number"))?,
            None => 40,
        };
        let mut fails = Vec::new();
        for item in fail
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (step, host) = match item.split_once(':') {
                Some((s, h)) => (s, Some(h.to_string())),
                None => (item, None),
            };
            fails.push((step.parse::<Step>().map_err(|e| e.to_string())?, host));
        }
        Ok(Self {
            dir: PathBuf::from(dir),
            delay: Duration::from_millis(delay),
            fail: fails,
        })
    }
}

/// Appends one line with a single `write` (O_APPEND): a kill cannot leave half a line.
fn append(path: &Path, line: &str) -> PortResult<()> {
    let io = |e: std::io::Error| {
        PortError::new(
            PortErrorKind::Other,
            format!("fake adapter: cannot write {}", path.display()),
        )
        .with_source(e)
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(format!("{line}\n").as_bytes()).map_err(io)
}

/// The lines of `effects.log`, split on tabs.
fn effects(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join("effects.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Fake step bodies.
pub struct FakeActions {
    cfg: FakeConfig,
    verify_log: std::sync::Arc<crate::steps::report::VerifyLog>,
}

impl FakeActions {
    pub fn new(cfg: FakeConfig) -> Self {
        Self {
            cfg,
            verify_log: Default::default(),
        }
    }

    /// What the fake verify said per workstation, for the run's verify report (nothing was
    /// read on a machine: the verdicts carry no observation).
    pub fn verify_log(&self) -> std::sync::Arc<crate::steps::report::VerifyLog> {
        self.verify_log.clone()
    }

    fn trace(&self, step: Step, host: &str, what: &str) -> PortResult<()> {
        append(
            &self.cfg.dir.join("trace.log"),
            &format!("{step}\t{host}\t{what}"),
        )
    }

    async fn pause(&self, cx: &StepCx) -> PortResult<()> {
        tokio::select! {
            _ = tokio::time::sleep(self.cfg.delay / 2) => Ok(()),
            _ = cx.cancel.cancelled() => Err(PortError::new(PortErrorKind::Cancelled, "cancelled")),
        }
    }

    fn fails(&self, step: Step, host: &str) -> bool {
        self.cfg
            .fail
            .iter()
            .any(|(s, h)| *s == step && h.as_deref().is_none_or(|h| h == host))
    }

    /// Runs a body: begin, pause, effect (or failure), pause, end.
    async fn body(
        &self,
        cx: &StepCx,
        step: Step,
        host: &str,
        effect: Option<String>,
    ) -> PortResult<Result<(), String>> {
        self.trace(step, host, "begin")?;
        cx.log.line(&format!("fake {step} on {host}"));
        self.pause(cx).await?;
        if self.fails(step, host) {
            self.trace(step, host, "fail")?;
            let msg = format!("injected failure of {step} on {host}");
            return match step {
                Step::Test | Step::Verify => Ok(Err(msg)),
                _ => Err(PortError::new(PortErrorKind::Other, msg)),
            };
        }
        if let Some(detail) = effect {
            append(
                &self.cfg.dir.join("effects.log"),
                &format!("{step}\t{host}\t{detail}"),
            )?;
            self.trace(step, host, "effect")?;
        }
        if step == Step::Deploy {
            cx.reporter.report(ProgressEvent::HostProgress {
                step: step.to_string(),
                host: host.into(),
                done: 512 << 20,
                total: Some(1 << 30),
                unit: "bytes".into(),
            });
        }
        self.pause(cx).await?;
        self.trace(step, host, "end")?;
        Ok(Ok(()))
    }

    fn image_id(cx: &StepCx) -> String {
        let hex = cx.recipe_digest.trim_start_matches("sha256:");
        format!("{}/v-{}", cx.room, &hex[..hex.len().min(12)])
    }
}

fn unit(r: PortResult<Result<(), String>>) -> PortResult<()> {
    r?.map_err(|m| PortError::new(PortErrorKind::Other, m))
}

#[async_trait]
impl StepActions for FakeActions {
    async fn collect(&self, cx: &StepCx) -> PortResult<()> {
        unit(
            self.body(cx, Step::Collect, &cx.master.hostname, None)
                .await,
        )
    }

    async fn format(&self, cx: &StepCx) -> PortResult<()> {
        let base = cx.recipe.base_image.value.clone();
        unit(
            self.body(cx, Step::Format, &cx.master.hostname, Some(base))
                .await,
        )
    }

    async fn install(&self, cx: &StepCx) -> PortResult<()> {
        unit(
            self.body(
                cx,
                Step::Install,
                &cx.master.hostname,
                Some(cx.software_digest.clone()),
            )
            .await,
        )
    }

    async fn test(&self, cx: &StepCx) -> PortResult<Result<(), String>> {
        self.body(cx, Step::Test, &cx.master.hostname, None).await
    }

    async fn capture(&self, cx: &StepCx) -> PortResult<Captured> {
        let id = Self::image_id(cx);
        let detail = format!("{id}\t{}\t{}", cx.recipe_digest, cx.software_digest);
        unit(
            self.body(cx, Step::Capture, &cx.master.hostname, Some(detail))
                .await,
        )?;
        Ok(Captured { id })
    }

    async fn deploy_host(&self, cx: &StepCx, host: &Target) -> PortResult<String> {
        let image = cx.image.clone().unwrap_or_default();
        unit(
            self.body(cx, Step::Deploy, &host.hostname, Some(image))
                .await,
        )
        .map(|()| String::new())
    }

    async fn join_host(&self, cx: &StepCx, host: &Target) -> PortResult<()> {
        unit(
            self.body(cx, Step::Join, &host.hostname, Some(cx.room.clone()))
                .await,
        )
    }

    async fn verify_host(&self, cx: &StepCx, host: &Target) -> PortResult<Result<(), String>> {
        let r = self.body(cx, Step::Verify, &host.hostname, None).await;
        if let Ok(verdict) = &r {
            self.verify_log.record(crate::steps::report::HostVerdict {
                host: host.hostname.clone(),
                error: verdict.clone().err(),
                checked_at: Some(crate::steps::report::now()),
                ..Default::default()
            });
        }
        r
    }

    async fn check_done(&self, cx: &StepCx, step: Step, host: Option<&Target>) -> PortResult<bool> {
        let host = host.map_or(cx.master.hostname.as_str(), |t| t.hostname.as_str());
        let detail = match step {
            Step::Format => cx.recipe.base_image.value.clone(),
            Step::Install => cx.software_digest.clone(),
            Step::Capture => Self::image_id(cx),
            Step::Deploy => cx.image.clone().unwrap_or_default(),
            Step::Join => cx.room.clone(),
            Step::Collect | Step::Test | Step::Verify => return Ok(false),
        };
        Ok(effects(&self.cfg.dir)
            .iter()
            .any(|l| l.len() >= 3 && l[0] == step.as_str() && l[1] == host && l[2] == detail))
    }
}

/// The fake image store: the capture lines of `effects.log`.
pub struct FakeImages {
    dir: PathBuf,
}

impl FakeImages {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
}

#[async_trait]
impl ImageStore for FakeImages {
    async fn list(&self, room: Option<&str>) -> PortResult<Vec<ImageInfo>> {
        Ok(effects(&self.dir)
            .into_iter()
            .filter(|l| l.len() >= 5 && l[0] == "capture")
            .filter_map(|l| {
                let (r, version) = l[2].split_once('/')?;
                Some(ImageInfo {
                    room: r.to_string(),
                    version: version.to_string(),
                    id: l[2].clone(),
                    recipe_digest: l[3].clone(),
                    software_digest: l[4].clone(),
                    captured_at: None,
                })
            })
            .filter(|i| room.is_none_or(|r| r == i.room))
            .collect())
    }

    async fn get(&self, id: &str) -> PortResult<Option<ImageInfo>> {
        Ok(self
            .list(None)
            .await?
            .into_iter()
            .rev()
            .find(|i| i.id == id))
    }

    async fn verify(&self, id: &str) -> PortResult<Result<(), String>> {
        Ok(match self.get(id).await? {
            Some(_) => Ok(()),
            None => Err(format!("image {id} is not in the store")),
        })
    }
}
