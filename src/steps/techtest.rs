//! Technical tests (procedure step d): the technician's test commands, run on the master,
//! each result kept with its output for the journal. A failing or timed-out test is a
//! result, not an error; only "could not run at all" is an error.

use std::time::Duration;

use crate::ports::{ExecRequest, PortErrorKind, RemoteHost};

use super::StepError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechTest {
    pub name: String,
    pub command: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TechTestResult {
    pub name: String,
    pub passed: bool,
    /// None when killed (timeout) or ended by a signal.
    pub exit_status: Option<u32>,
    /// stdout then stderr, as text.
    pub output: String,
}

/// Runs `tests` one after the other on `host`.
pub async fn run_tests(
    host: &dyn RemoteHost,
    tests: &[TechTest],
) -> Result<Vec<TechTestResult>, StepError> {
    let mut results = Vec::new();
    for t in tests {
        let req = ExecRequest {
            command: t.command.clone(),
            stdin: None,
            timeout: t.timeout,
            cancel: Default::default(),
        };
        match host.exec(req, &mut |_, _| {}).await {
            Ok(out) => {
                let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
                output.push_str(&String::from_utf8_lossy(&out.stderr));
                results.push(TechTestResult {
                    name: t.name.clone(),
                    passed: out.success(),
                    exit_status: out.exit_status,
                    output,
                });
            }
            Err(e) if e.kind == PortErrorKind::Timeout => results.push(TechTestResult {
                name: t.name.clone(),
                passed: false,
                exit_status: None,
                output: e.message,
            }),
            Err(source) => {
                return Err(StepError::Port {
                    host: host.name().to_owned(),
                    what: format!("running the technical test {}", t.name),
                    source,
                });
            }
        }
    }
    Ok(results)
}
