//! Errors of the remote steps, each naming the host and what was being done.

use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{what} on {host}")]
    Port {
        host: String,
        what: String,
        #[source]
        source: PortError,
    },
    #[error("{what} on {host} failed (exit {status}): {detail}")]
    Command {
        host: String,
        what: String,
        status: String,
        detail: String,
    },
    #[error(
        "joining {host} to {domain}: the domain refused the credentials of {account} (wrong password or account): {detail}"
    )]
    JoinCredentials {
        host: String,
        domain: String,
        account: String,
        detail: String,
    },
    #[error("rendering the {what} command: {detail}")]
    Render { what: String, detail: String },
    #[error("reading {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("the directory: {what}")]
    Directory {
        what: String,
        #[source]
        source: PortError,
    },
}
