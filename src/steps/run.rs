//! Running one step command on a host: the common plumbing of the steps (timeout, output
//! collected, failure turned into a `StepError` naming the host and the action).

use std::time::Duration;

use crate::ports::{ExecOutcome, ExecRequest, RemoteHost, SecretBytes};

use super::StepError;

/// Default bound of one step command.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `command` on `host` (stdin: `stdin`), returning its outcome whatever its exit status.
pub async fn run(
    host: &dyn RemoteHost,
    what: &str,
    command: String,
    stdin: Option<SecretBytes>,
) -> Result<ExecOutcome, StepError> {
    let req = ExecRequest {
        command,
        stdin,
        timeout: STEP_TIMEOUT,
        cancel: Default::default(),
    };
    host.exec(req, &mut |_, _| {})
        .await
        .map_err(|source| StepError::Port {
            host: host.name().to_owned(),
            what: what.to_owned(),
            source,
        })
}

/// Like [`run`], but a non-zero exit is an error carrying the command's stderr.
pub async fn run_ok(
    host: &dyn RemoteHost,
    what: &str,
    command: String,
) -> Result<ExecOutcome, StepError> {
    let out = run(host, what, command, None).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(failed(host, what, &out))
    }
}

/// The error for a command that exited non-zero.
pub fn failed(host: &dyn RemoteHost, what: &str, out: &ExecOutcome) -> StepError {
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    StepError::Command {
        host: host.name().to_owned(),
        what: what.to_owned(),
        status: out
            .exit_status
            .map_or_else(|| "by signal".to_owned(), |s| s.to_string()),
        detail,
    }
}

/// stdout as trimmed text.
pub fn text(out: &ExecOutcome) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
