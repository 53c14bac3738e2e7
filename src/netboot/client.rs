//! The `BootEndpoint` port on the in-process endpoint (`crate::netboot::endpoint::Endpoint`): the
//! engine assigns a task to a MAC and waits for the boot environment's report, which the
//! endpoint's HTTP routes record.
//!
//! With the image service (`crate::netboot::serve::ImagesService`, mounted in the same HTTP server),
//! each agent task is first created there (deploy: the image and hostname; format: the disk
//! layout; capture: layout and recipe template) and its id and token become the boot task's,
//! so the agent uses one token for the image routes and the boot environment for its report.
//! Without it (tests of the boot chain alone) the endpoint makes its own ticket.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::image::manifest::DiskLayout;
use crate::netboot::endpoint::Endpoint;
use crate::netboot::endpoint::tasks::{StoredAction, TaskState};
use crate::netboot::serve::multicast::SessionPhase;
use crate::netboot::serve::{CaptureTemplate, ImagesService};
use crate::ports::{BootAction, BootEndpoint, BootReport, PortError, PortErrorKind, PortResult};

/// The endpoint running in this process (`parc serve`, or started by `parc master`).
pub struct LocalBootEndpoint {
    ep: Arc<Endpoint>,
    images: Option<Arc<ImagesService>>,
    /// The layout a `Format` lays down and a `Capture` reads.
    layout: Option<DiskLayout>,
    /// What a capture records about the recipe it realises.
    capture: Option<CaptureTemplate>,
}

impl LocalBootEndpoint {
    pub fn new(ep: Arc<Endpoint>) -> Self {
        Self {
            ep,
            images: None,
            layout: None,
            capture: None,
        }
    }

    /// Creates agent tasks in the image service (see the module comment).
    #[must_use]
    pub fn with_images(mut self, images: Arc<ImagesService>, layout: Option<DiskLayout>) -> Self {
        self.images = Some(images);
        self.layout = layout;
        self
    }

    /// The recipe template recorded by captures.
    #[must_use]
    pub fn with_capture_template(mut self, template: CaptureTemplate) -> Self {
        self.capture = Some(template);
        self
    }

    /// After a restart of the endpoint: the image service keeps its tasks in memory only, so
    /// every live boot task gets a fresh ticket for the same action (the old id ends as
    /// expired). A task whose ticket cannot be made again (its image was removed) is replaced
    /// by "boot the local disk". Returns the new task ids.
    pub fn reissue_live(&self) -> PortResult<Vec<String>> {
        if self.images.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for task in self.ep.live_tasks() {
            let action = to_boot_action(task.action.clone());
            let reassigned = match self.ticket(&task.mac, &action) {
                Ok(Some((id, token))) => self.ep.assign_ticket(&task.mac, task.action, id, token),
                Ok(None) | Err(_) => self.ep.assign(&task.mac, StoredAction::LocalDisk),
            };
            let t = reassigned.map_err(|e| {
                PortError::new(
                    PortErrorKind::Other,
                    format!("reissuing boot task {}: {e}", task.id),
                )
                .with_source(e)
            })?;
            out.push(t.id);
        }
        Ok(out)
    }

    /// The image service's ticket for `action`, if there is an image service.
    fn ticket(&self, mac: &str, action: &BootAction) -> PortResult<Option<(String, String)>> {
        let Some(images) = &self.images else {
            return Ok(None);
        };
        let missing = |what: &str| {
            PortError::new(
                PortErrorKind::Other,
                format!("assigning {action:?} to {mac}: no {what} configured for the endpoint"),
            )
        };
        let t = match action {
            BootAction::LocalDisk => return Ok(None),
            BootAction::Deploy {
                image_id,
                hostname,
                unattend,
                multicast,
                read_all,
                ..
            } => images.add_deploy_with(
                image_id,
                hostname,
                unattend.clone(),
                multicast.as_deref(),
                *read_all,
            ),
            // No base image named: partitioning only (`parc serve --assign MAC=format`).
            BootAction::Format { base_image, .. } if base_image.is_empty() => {
                images.add_format(self.layout.clone().ok_or_else(|| missing("disk layout"))?)
            }
            BootAction::Format {
                base_image,
                hostname,
                inject,
            } => images.add_format_base(base_image, hostname, inject.clone()),
            BootAction::Capture {
                room,
                image_version,
            } => images.add_capture(
                room,
                image_version,
                self.layout.clone().ok_or_else(|| missing("disk layout"))?,
                self.capture
                    .clone()
                    .ok_or_else(|| missing("capture template"))?,
            ),
        };
        let kind = |e: &crate::image::error::ImageError| match e {
            crate::image::error::ImageError::NotFound(_) => PortErrorKind::NotFound,
            _ => PortErrorKind::Other,
        };
        t.map(|t| Some((t.id, t.token))).map_err(|e| {
            PortError::new(kind(&e), format!("creating the agent task for {mac}: {e}"))
                .with_source(e)
        })
    }
}

/// The port's action for a stored one.
pub fn to_boot_action(a: StoredAction) -> BootAction {
    match a {
        StoredAction::LocalDisk => BootAction::LocalDisk,
        StoredAction::Format {
            base_image,
            hostname,
            inject,
        } => BootAction::Format {
            base_image,
            hostname,
            inject,
        },
        StoredAction::Capture {
            room,
            image_version,
        } => BootAction::Capture {
            room,
            image_version,
        },
        StoredAction::Deploy {
            room,
            image_id,
            hostname,
            read_all,
        } => BootAction::Deploy {
            room,
            image_id,
            hostname,
            unattend: None,
            multicast: None,
            read_all,
        },
    }
}

#[async_trait]
impl BootEndpoint for LocalBootEndpoint {
    async fn assign(&self, mac: &str, action: BootAction) -> PortResult<String> {
        let stored = StoredAction::from(&action);
        let task = match self.ticket(mac, &action)? {
            Some((id, token)) => self.ep.assign_ticket(mac, stored, id, token),
            None => self.ep.assign(mac, stored),
        };
        task.map(|t| t.id).map_err(|e| {
            PortError::new(
                PortErrorKind::Other,
                format!("assigning a boot task to {mac}: {e}"),
            )
            .with_source(e)
        })
    }

    fn can_multicast(&self) -> bool {
        self.images.as_ref().is_some_and(|i| i.multicast.enabled())
    }

    async fn open_multicast(
        &self,
        image_id: &str,
        receivers: usize,
        min_receivers: usize,
    ) -> PortResult<String> {
        let images = self.images.as_ref().ok_or_else(|| {
            PortError::new(PortErrorKind::Other, "no image service: no multicast")
        })?;
        images
            .multicast
            .open(images.store(), image_id, receivers, min_receivers)
            .map_err(|e| {
                PortError::new(
                    PortErrorKind::Other,
                    format!("opening the multicast session of {image_id}: {e}"),
                )
                .with_source(e)
            })
    }

    async fn close_multicast(&self, id: &str) -> PortResult<String> {
        let Some(images) = &self.images else {
            return Ok(String::new());
        };
        let how = images.multicast.info(id).map(|i| match i.phase {
            SessionPhase::Waiting => "never started (no workstation joined)".to_string(),
            SessionPhase::Sending => "still sending: stopped".to_string(),
            SessionPhase::Ended { ok: true, summary } => format!("completed ({summary})"),
            SessionPhase::Ended { ok: false, summary } => format!("failed ({summary})"),
        });
        images.multicast.close(id);
        Ok(how.unwrap_or_else(|| format!("no session {id}")))
    }

    async fn started(&self, task_id: &str) -> PortResult<bool> {
        Ok(self
            .ep
            .task(task_id)
            .is_some_and(|t| matches!(t.state, TaskState::Booted { .. } | TaskState::Done { .. })))
    }

    async fn wait_report(
        &self,
        task_id: &str,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> PortResult<BootReport> {
        let task = self.ep.wait_ended(task_id, timeout, &cancel).await;
        if cancel.is_cancelled() {
            return Err(PortError::new(
                PortErrorKind::Cancelled,
                format!("waiting for boot task {task_id}: cancelled"),
            ));
        }
        let Some(task) = task else {
            return Err(PortError::new(
                PortErrorKind::NotFound,
                format!("unknown boot task {task_id}"),
            ));
        };
        match task.state {
            TaskState::Done {
                success, message, ..
            } => Ok(BootReport {
                mac: task.mac,
                success,
                message,
            }),
            TaskState::Expired => Err(PortError::new(
                PortErrorKind::Timeout,
                format!(
                    "boot task {task_id} of {} expired before the workstation reported",
                    task.mac
                ),
            )),
            TaskState::Pending | TaskState::Booted { .. } => Err(PortError::new(
                PortErrorKind::Timeout,
                format!(
                    "no report from {} for boot task {task_id} within {} s",
                    task.mac,
                    timeout.as_secs()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SecretBytes;

    fn endpoint(dir: &std::path::Path, ttl: u64) -> Arc<Endpoint> {
        Arc::new(
            Endpoint::open(
                &dir.join("boot"),
                "http://127.0.0.1:1",
                dir,
                Duration::from_secs(ttl),
            )
            .unwrap(),
        )
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[tokio::test]
    async fn assign_then_report_reaches_the_waiter_and_persists() {
        let d = tempfile::tempdir().unwrap();
        let ep = endpoint(d.path(), 600);
        let port = LocalBootEndpoint::new(ep.clone());
        let action = BootAction::Deploy {
            room: "b204".into(),
            image_id: "b204/v1".into(),
            hostname: "b204-p01".into(),
            unattend: Some(SecretBytes(b"<unattend>SECRET-ANSWER</unattend>".to_vec())),
            multicast: None,
            read_all: false,
        };
        let id = port.assign("52:54:00:77:00:01", action).await.unwrap();
        let token = ep.task(&id).unwrap().token;
        // The answer file is a secret: nothing of it is in the endpoint's persisted state.
        for f in walkdir(d.path()) {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(!text.contains("SECRET-ANSWER"), "{}", f.display());
        }
        // A restart keeps the pending task.
        let again = endpoint(d.path(), 600);
        assert!(again.task(&id).unwrap().state.is_live());
        let waiter = {
            let port = LocalBootEndpoint::new(ep.clone());
            let id = id.clone();
            tokio::spawn(async move {
                port.wait_report(&id, Duration::from_secs(10), CancellationToken::new())
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        ep.report(&id, &token, true, "deployed".into()).unwrap();
        let r = waiter.await.unwrap().unwrap();
        assert_eq!(
            r,
            BootReport {
                mac: "52:54:00:77:00:01".into(),
                success: true,
                message: "deployed".into()
            }
        );
        let reread = endpoint(d.path(), 600);
        assert!(!reread.task(&id).unwrap().state.is_live());
    }

    #[tokio::test]
    async fn silence_is_a_timeout_and_unknown_tasks_are_not_found() {
        let d = tempfile::tempdir().unwrap();
        let port = LocalBootEndpoint::new(endpoint(d.path(), 600));
        let id = port
            .assign(
                "52:54:00:77:00:02",
                BootAction::Format {
                    base_image: "debian".into(),
                    hostname: "b204-master".into(),
                    inject: Vec::new(),
                },
            )
            .await
            .unwrap();
        let e = port
            .wait_report(&id, Duration::from_millis(100), CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Timeout);
        let e = port
            .wait_report("nope", Duration::from_millis(100), CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, PortErrorKind::NotFound);
        let c = CancellationToken::new();
        c.cancel();
        let e = port
            .wait_report(&id, Duration::from_secs(5), c)
            .await
            .unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Cancelled);
    }

    #[tokio::test]
    async fn an_expired_task_is_reported_as_such() {
        let d = tempfile::tempdir().unwrap();
        let port = LocalBootEndpoint::new(endpoint(d.path(), 0));
        let id = port
            .assign(
                "52:54:00:77:00:03",
                BootAction::Format {
                    base_image: "debian".into(),
                    hostname: "b204-master".into(),
                    inject: Vec::new(),
                },
            )
            .await
            .unwrap();
        let e = port
            .wait_report(&id, Duration::from_secs(2), CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Timeout);
        assert!(e.message.contains("expired"), "{}", e.message);
    }

    /// The deploy task the agent fetches (`GET /tasks/{id}`), as it crosses the wire.
    fn task_json(images: &ImagesService, id: &str) -> String {
        let spec = images.lock().get(id).expect("a task").spec.clone();
        serde_json::to_string(&spec).unwrap()
    }

    #[tokio::test]
    async fn read_all_reaches_the_agents_task_and_survives_a_reissue() {
        use crate::agent::wire::TaskSpec;
        use crate::image::store::FsImageStore;
        let d = tempfile::tempdir().unwrap();
        let store = || FsImageStore::new(d.path().join("images"));
        crate::image::store::tests::put(&store(), "v1", "2026-01-01T00:00:00Z", b"data").unwrap();
        let images = Arc::new(ImagesService::new(store()));
        let port =
            LocalBootEndpoint::new(endpoint(d.path(), 600)).with_images(images.clone(), None);
        let deploy = |host: &str, read_all| BootAction::Deploy {
            room: "b204".into(),
            image_id: "b204/v1".into(),
            hostname: host.into(),
            unattend: None,
            multicast: None,
            read_all,
        };
        let asked = port
            .assign("52:54:00:77:00:04", deploy("b204-p04", true))
            .await
            .unwrap();
        let plain = port
            .assign("52:54:00:77:00:05", deploy("b204-p05", false))
            .await
            .unwrap();
        let read_all = |json: &str| match serde_json::from_str::<TaskSpec>(json).unwrap() {
            TaskSpec::Deploy { read_all, .. } => read_all,
            other => panic!("not a deploy: {other:?}"),
        };
        let json = task_json(&images, &asked);
        assert!(json.contains("\"read_all\":true"), "{json}");
        assert!(read_all(&json));
        // Not asked: not on the wire at all (an older agent reads the same task as before).
        let json = task_json(&images, &plain);
        assert!(!json.contains("read_all"), "{json}");
        assert!(!read_all(&json));
        // The endpoint's table keeps it: a restarted endpoint's reissued tasks still ask.
        let again =
            LocalBootEndpoint::new(endpoint(d.path(), 600)).with_images(images.clone(), None);
        let reissued = again.reissue_live().unwrap();
        assert_eq!(reissued.len(), 2);
        let asks: Vec<bool> = reissued
            .iter()
            .map(|id| read_all(&task_json(&images, id)))
            .collect();
        assert_eq!(asks.iter().filter(|a| **a).count(), 1, "{asks:?}");
    }
}
