//! One attempt of one step (on one host): journal it, log it, check first when it was
//! interrupted and is not idempotent, run the body, audit what changed, report progress.

use std::sync::Arc;

use crate::audit::{self, Action as AuditAction, AuditLog, Entry};
use crate::domain::procedure::{Step, StepStatus};
use crate::journal::Ending;
use crate::ports::steps::{DeployBatch, StepCx, StepLog, Target};
use crate::ports::{PortError, PortErrorKind, ProgressEvent};

use super::EngineError;
use super::log::{FileLog, path_for};
use super::master::{Ended, Run};

/// What a body returned: the image for capture and a note for the journal (a deploy's
/// path), or why the machine is wrong (test, verify).
type BodyResult = Result<Result<(Option<String>, String), String>, PortError>;

fn nothing() -> (Option<String>, String) {
    (None, String::new())
}

impl Run<'_> {
    /// What a step body sees of the run, logging to `log`.
    fn step_cx(&self, image: Option<String>, log: Arc<FileLog>) -> StepCx {
        let cur = &self.room.current;
        StepCx {
            room: self.room.id.clone(),
            recipe: self.room.recipe.clone(),
            recipe_digest: cur.recipe.clone(),
            software_digest: cur.software.clone(),
            master: self.room.master.clone(),
            image,
            cancel: self.cancel.child_token(),
            log,
            reporter: self.ports.reporter.clone(),
        }
    }

    /// Before the deploys of one run: lets the step bodies plan them together (a multicast
    /// session for the room). A session that cannot be opened leaves every deploy unicast.
    pub(super) async fn begin_deploy(
        &self,
        to_run: &[(Target, bool)],
    ) -> Result<(StepCx, DeployBatch), EngineError> {
        let cur = &self.room.current;
        let log_path = path_for(&self.state_dir, self.run_id, "deploy", None);
        let log = Arc::new(FileLog::create(&log_path)?);
        let image = self.history.captured_image(cur).map(str::to_string);
        let cx = self.step_cx(image, log.clone());
        let hosts: Vec<Target> = to_run.iter().map(|(t, _)| t.clone()).collect();
        let batch = match self.ports.actions.begin_deploy(&cx, &hosts).await {
            Ok(b) => b,
            Err(e) => {
                let note = format!("no multicast for this run ({e}): every deploy is unicast");
                log.line(&note);
                DeployBatch {
                    together: false,
                    note,
                }
            }
        };
        Ok((cx, batch))
    }

    pub(super) async fn attempt(
        &self,
        step: Step,
        host: Option<&Target>,
        check_first: bool,
    ) -> Result<Ended, EngineError> {
        if self.cancel.is_cancelled() {
            // Ctrl-C came before this one started: leave it pending.
            return Ok(Ended::Interrupted);
        }
        let cur = &self.room.current;
        let hostname = host.map(|t| t.hostname.as_str());
        let image = if step.per_host() {
            self.history.captured_image(cur).map(str::to_string)
        } else {
            None
        };
        let key = cur.key(step, image.as_deref());
        let previous = self.history.get(step, hostname).cloned();
        let log_path = path_for(&self.state_dir, self.run_id, step.as_str(), hostname);
        let log = Arc::new(FileLog::create(&log_path)?);
        let id = self.journal().start_attempt(
            self.run_id,
            step,
            hostname,
            &key,
            Some(&log_path.to_string_lossy()),
        )?;
        log.line(&format!(
            "run {} attempt {id}: {step}{} ({key})",
            self.run_id,
            hostname.map(|h| format!(" on {h}")).unwrap_or_default()
        ));
        let reporter = self.ports.reporter.clone();
        if let Some(h) = hostname {
            reporter.report(ProgressEvent::HostStarted {
                step: step.to_string(),
                host: h.into(),
            });
        }
        let cx = self.step_cx(image.clone(), log.clone());

        // A non-idempotent step cut short: is its effect already in place?
        let mut found: Option<Option<String>> = None;
        if check_first {
            log.line(&format!(
                "{step} was interrupted: checking whether its effect is in place"
            ));
            match self.ports.actions.check_done(&cx, step, host).await {
                Ok(true) if step == Step::Capture => {
                    if let Some(img) = self.image_of_current_recipe().await? {
                        found = Some(Some(img));
                    }
                }
                Ok(true) => found = Some(None),
                Ok(false) => {}
                Err(e) => return self.end(id, step, hostname, Err(e)),
            }
        }
        let resumed = found.is_some();
        let result: BodyResult = match found {
            Some(img) => {
                log.line("already in place: not run again");
                Ok(Ok((
                    img,
                    "found in place after an interruption".to_string(),
                )))
            }
            None => self.body(step, &cx, host).await,
        };
        if let Ok(Ok((img, _))) = &result {
            if step.changes_machine() {
                let audit_seq = if resumed {
                    previous.as_ref().map(|p| p.seq as i64)
                } else {
                    Some(id)
                };
                self.audit(
                    step,
                    hostname,
                    img.as_deref().or(image.as_deref()),
                    audit_seq,
                    resumed,
                    &previous,
                )?;
            }
        }
        if let Err(e) = &result {
            for (i, cause) in chain_of(e).iter().enumerate() {
                log.line(&if i == 0 {
                    format!("error: {cause}")
                } else {
                    format!("  caused by: {cause}")
                });
            }
        }
        if let Ok(Err(why)) = &result {
            log.line(&format!("failed: {why}"));
        }
        self.end(id, step, hostname, result)
    }

    async fn body(&self, step: Step, cx: &StepCx, host: Option<&Target>) -> BodyResult {
        let a = &self.ports.actions;
        let need_host = || {
            host.ok_or_else(|| {
                PortError::new(PortErrorKind::Other, format!("{step} needs a workstation"))
            })
        };
        match step {
            Step::Collect => a.collect(cx).await.map(|()| Ok(nothing())),
            Step::Format => a.format(cx).await.map(|()| Ok(nothing())),
            Step::Install => a.install(cx).await.map(|()| Ok(nothing())),
            Step::Test => a.test(cx).await.map(|r| r.map(|()| nothing())),
            Step::Capture => a.capture(cx).await.map(|c| Ok((Some(c.id), String::new()))),
            Step::Deploy => a
                .deploy_host(cx, need_host()?)
                .await
                .map(|note| Ok((None, note))),
            Step::Join => a.join_host(cx, need_host()?).await.map(|()| Ok(nothing())),
            Step::Verify => a
                .verify_host(cx, need_host()?)
                .await
                .map(|r| r.map(|()| nothing())),
        }
    }

    /// The newest image of the room in the store whose manifest matches the current recipe.
    async fn image_of_current_recipe(&self) -> Result<Option<String>, EngineError> {
        let list = self
            .ports
            .images
            .list(Some(&self.room.id))
            .await
            .map_err(|source| EngineError::Images {
                room: self.room.id.clone(),
                source,
            })?;
        Ok(list
            .into_iter()
            .rev()
            .find(|i| i.recipe_digest == self.room.current.recipe)
            .map(|i| i.id))
    }

    /// Writes the audit entry of a step that changed a machine or an image. `attempt` is the
    /// attempt that made the change; after a resume the entry may already exist.
    fn audit(
        &self,
        step: Step,
        host: Option<&str>,
        image: Option<&str>,
        attempt: Option<i64>,
        resumed: bool,
        previous: &Option<crate::domain::procedure::Record>,
    ) -> Result<(), EngineError> {
        let cur = &self.room.current;
        let tag = format!("attempt {};", attempt.unwrap_or(0));
        if resumed {
            let listed = self.with_audit(|log| log.list(Some(&self.room.id), None))?;
            if listed.iter().any(|e| e.detail.starts_with(&tag)) {
                return Ok(());
            }
        }
        let master = &self.room.master.hostname;
        let (action, subject, what) = match step {
            Step::Format => (
                AuditAction::Format,
                master.clone(),
                format!("base {}", self.room.recipe.base_image.value),
            ),
            Step::Install => (
                AuditAction::Install,
                master.clone(),
                format!("software list {}", cur.software),
            ),
            Step::Capture => (
                AuditAction::Capture,
                image.unwrap_or_default().to_string(),
                format!("recipe {}", cur.recipe),
            ),
            Step::Deploy => {
                let again = previous
                    .as_ref()
                    .is_some_and(|p| p.status == StepStatus::Done);
                let action = if again {
                    AuditAction::Reimage
                } else {
                    AuditAction::Deploy
                };
                (
                    action,
                    host.unwrap_or_default().to_string(),
                    format!("image {}", image.unwrap_or_default()),
                )
            }
            Step::Join => (
                AuditAction::Join,
                host.unwrap_or_default().to_string(),
                self.join_target(),
            ),
            Step::Collect | Step::Test | Step::Verify => return Ok(()),
        };
        let entry = |action, subject: String, what: String| Entry {
            room: self.room.id.clone(),
            action,
            subject,
            actor: self.who.clone(),
            detail: format!(
                "{tag} {what}{}",
                if resumed {
                    " (found in place after an interruption)"
                } else {
                    ""
                }
            ),
        };
        let mut entries = vec![entry(action, subject, what)];
        if step == Step::Install {
            for o in &self.facts.licence_overrides {
                entries.push(entry(
                    AuditAction::LicenceOverride,
                    master.clone(),
                    o.clone(),
                ));
            }
        }
        let secrets = self.loaded.dir.state_dir();
        for e in &entries {
            self.with_audit(|log| log.append(e, &secrets))?;
        }
        Ok(())
    }

    /// Runs `f` on the run's audit log, opening it at its first use. After an error the log
    /// is dropped: the next change opens it again (a database that went away and came back).
    fn with_audit<T>(
        &self,
        f: impl FnOnce(&mut AuditLog) -> Result<T, audit::AuditError>,
    ) -> Result<T, EngineError> {
        let mut slot = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        let mut log = match slot.take() {
            Some(log) => log,
            None => AuditLog::open_for(self.loaded)?,
        };
        let out = f(&mut log)?;
        *slot = Some(log);
        Ok(out)
    }

    fn join_target(&self) -> String {
        match &self.loaded.ws.site {
            Some(s) => {
                format!(
                    "realm {} OU=\"{}\",{}",
                    s.domain.realm.value, self.room.id, s.domain.computers_ou.value
                )
            }
            None => "domain".into(),
        }
    }

    fn end(
        &self,
        id: i64,
        step: Step,
        host: Option<&str>,
        result: Result<Result<(Option<String>, String), String>, PortError>,
    ) -> Result<Ended, EngineError> {
        let (status, ended, ending_msg, chain, image) = match result {
            Ok(Ok((img, msg))) => ("done", Ended::Done, msg, Vec::new(), img),
            Ok(Err(why)) => ("failed", Ended::Failed(why.clone()), why, Vec::new(), None),
            Err(e) if e.kind == PortErrorKind::Cancelled || self.cancel.is_cancelled() => (
                "interrupted",
                Ended::Interrupted,
                "cancelled (Ctrl-C)".to_string(),
                chain_of(&e),
                None,
            ),
            Err(e) => {
                let chain = chain_of(&e);
                let msg = chain.join(": ");
                ("failed", Ended::Failed(msg.clone()), msg, chain, None)
            }
        };
        self.journal().finish_attempt(
            id,
            status,
            &Ending {
                message: &ending_msg,
                error_chain: &chain,
                image: image.as_deref(),
            },
        )?;
        if let Some(h) = host {
            self.ports.reporter.report(ProgressEvent::HostFinished {
                step: step.to_string(),
                host: h.into(),
                ok: status == "done",
                message: ending_msg,
            });
        }
        Ok(ended)
    }
}

/// An error and its causes, outermost first.
fn chain_of(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out
}
