//! The image side of the endpoint: the tasks handed to agents (capture, deploy, format), each
//! with its own token, their latest progress and final report, and the captures being staged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::multicast::Sessions;
use crate::agent::wire::{FinalReport, FormatBase, ProgressReport, TaskSpec};
use crate::image::error::{ImageError, ImageResult};
use crate::image::manifest::{DiskLayout, OsFamily, SoftwareItem, check_name};
use crate::image::store::{FsImageStore, Staging};
use crate::ports::{InjectFile, SecretBytes};

/// What the endpoint knows about a capture that the agent does not: the recipe it realises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTemplate {
    pub recipe_digest: String,
    pub software_digest: String,
    pub software: Vec<SoftwareItem>,
    pub hardware_model: String,
    pub os_family: OsFamily,
    /// RFC 3339 time recorded as the capture time (passed in: no clock here).
    pub captured_at: String,
}

/// A task handed to an agent: its id and secret token.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskTicket {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for TaskTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskTicket({}, <token redacted>)", self.id)
    }
}

/// The latest known state of a task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskState {
    pub progress: Option<ProgressReport>,
    pub report: Option<FinalReport>,
}

pub(crate) struct CaptureState {
    pub template: CaptureTemplate,
    pub staging: Option<Staging>,
    /// file → (sha256 computed while receiving, size).
    pub received: HashMap<String, (String, u64)>,
    /// file → the stream as stored in the chunk store (uploads of zstd streams).
    pub chunked: HashMap<String, crate::image::manifest::StreamInfo>,
}

pub(crate) struct Task {
    pub token: String,
    pub spec: TaskSpec,
    pub capture: Option<CaptureState>,
    pub state: TaskState,
    /// A deploy's answer file, held in memory only and handed out once.
    pub unattend: Unattend,
    /// The room's multicast session a deploy may take its streams from.
    pub session: Option<String>,
}

/// The one-time answer file of a deploy task.
#[derive(Default)]
pub(crate) enum Unattend {
    #[default]
    None,
    Waiting(SecretBytes),
    Fetched,
}

/// Shared by the routes (`super::router`) and the engine.
pub struct ImagesService {
    pub(crate) store: FsImageStore,
    pub(crate) tasks: Mutex<HashMap<String, Task>>,
    pub(crate) changed: Notify,
    /// The room multicast sessions (none unless configured).
    pub multicast: Sessions,
    /// Every request to the image routes, with the bytes sent.
    pub access: super::access::AccessLog,
    /// The deploy records of the workstations' filesystems, for their next reimage.
    pub records: super::records::Records,
}

fn random_hex(bytes: usize) -> ImageResult<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| ImageError::Invalid(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

impl ImagesService {
    pub fn new(store: FsImageStore) -> Self {
        Self {
            store,
            tasks: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            multicast: Sessions::default(),
            access: Default::default(),
            records: Default::default(),
        }
    }

    pub fn store(&self) -> &FsImageStore {
        &self.store
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, spec: TaskSpec, capture: Option<CaptureState>) -> ImageResult<TaskTicket> {
        let ticket = TaskTicket {
            id: random_hex(8)?,
            token: random_hex(32)?,
        };
        self.lock().insert(
            ticket.id.clone(),
            Task {
                token: ticket.token.clone(),
                spec,
                capture,
                state: TaskState::default(),
                unattend: Unattend::None,
                session: None,
            },
        );
        Ok(ticket)
    }

    /// A capture of the master laid out as `layout` into the new image `<room>/<version>`.
    pub fn add_capture(
        &self,
        room: &str,
        version: &str,
        layout: DiskLayout,
        template: CaptureTemplate,
    ) -> ImageResult<TaskTicket> {
        for (what, v) in [("room", room), ("version", version)] {
            check_name(what, v).map_err(|e| ImageError::Invalid(e.to_string()))?;
        }
        let id = format!("{room}/{version}");
        if self.store.image_dir(&id)?.exists() {
            return Err(ImageError::Exists(id));
        }
        self.add(
            TaskSpec::Capture {
                room: room.into(),
                version: version.into(),
                layout,
            },
            Some(CaptureState {
                template,
                staging: None,
                received: HashMap::new(),
                chunked: HashMap::new(),
            }),
        )
    }

    /// A deploy of a stored image, naming the machine `hostname`.
    pub fn add_deploy(&self, image_id: &str, hostname: &str) -> ImageResult<TaskTicket> {
        self.add_deploy_with(image_id, hostname, None, None, false)
    }

    /// A deploy whose agent fetches `unattend` (a Windows workstation's answer file) once,
    /// at `/tasks/{id}/unattend`, and writes it on the deployed system volume. It is kept
    /// in memory only: an endpoint restarted before the fetch has lost it, and the deploy
    /// fails cleanly, to be run again.
    pub fn add_deploy_with(
        &self,
        image_id: &str,
        hostname: &str,
        unattend: Option<SecretBytes>,
        session: Option<&str>,
        read_all: bool,
    ) -> ImageResult<TaskTicket> {
        let m = self.store.manifest(image_id)?;
        let multicast = match session {
            Some(sid) => {
                let info = self.multicast.info(sid).ok_or_else(|| {
                    ImageError::Invalid(format!("no multicast session {sid} on this endpoint"))
                })?;
                if info.image_id != image_id {
                    return Err(ImageError::Invalid(format!(
                        "multicast session {sid} sends {}, not {image_id}",
                        info.image_id
                    )));
                }
                self.multicast.offer(sid)
            }
            None => None,
        };
        let ticket = self.add(
            TaskSpec::Deploy {
                image_id: image_id.into(),
                manifest: m.render(),
                hostname: hostname.into(),
                unattend: unattend.is_some(),
                multicast,
                read_all,
            },
            None,
        )?;
        if let Some(t) = self.lock().get_mut(&ticket.id) {
            if let Some(u) = unattend {
                t.unattend = Unattend::Waiting(u);
            }
            t.session = session.map(str::to_string);
        }
        Ok(ticket)
    }

    /// Partitioning and empty filesystems.
    pub fn add_format(&self, layout: DiskLayout) -> ImageResult<TaskTicket> {
        self.add(TaskSpec::Format { layout, base: None }, None)
    }

    /// Partitioning and laying down base image `base/<base_image>` (its layout), named
    /// `hostname`, with `inject` written on it. A missing base image is `NotFound`, with how
    /// to build it.
    pub fn add_format_base(
        &self,
        base_image: &str,
        hostname: &str,
        inject: Vec<InjectFile>,
    ) -> ImageResult<TaskTicket> {
        let image_id = format!("base/{base_image}");
        let m = match self.store.manifest(&image_id) {
            Err(ImageError::NotFound(_)) => {
                return Err(ImageError::NotFound(format!(
                    "{image_id} (the base OS of a format) in {}; build it with \
                     `images/base/build.sh <workspace>`",
                    self.store.root().display()
                )));
            }
            r => r?,
        };
        self.add(
            TaskSpec::Format {
                layout: m.disk.clone(),
                base: Some(FormatBase {
                    image_id,
                    manifest: m.render(),
                    hostname: hostname.into(),
                    inject,
                }),
            },
            None,
        )
    }

    /// The latest state of a task (`None`: unknown task).
    pub fn state(&self, task_id: &str) -> Option<TaskState> {
        self.lock().get(task_id).map(|t| t.state.clone())
    }

    /// Waits for a task's final report, at most `timeout`.
    pub async fn wait_report(&self, task_id: &str, timeout: Duration) -> Option<FinalReport> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(r) = self.state(task_id)?.report {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}
