//! Errors of the SSH adapter, each naming the host or file it failed on, and how they map
//! onto the engine's `PortError` kinds (what may be retried, what is a refusal).

use std::path::PathBuf;

use crate::ports::{PortError, PortErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("parc's SSH key {path}")]
    ClientKey {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("known-hosts file {path}")]
    KnownHosts {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "host key of {host} is not pinned: {fingerprint}; if the machine shows this fingerprint, accept it with `parc hosts trust {name} --fingerprint {fingerprint}`"
    )]
    UnknownHostKey {
        host: String,
        name: String,
        fingerprint: String,
    },
    #[error(
        "host key of {host} CHANGED: pinned {pinned}, offered {offered}; refusing to connect (possible impersonation). If the host was reinstalled, check the new fingerprint on its console and run `parc hosts trust {name} --fingerprint <new fingerprint>`"
    )]
    ChangedHostKey {
        host: String,
        name: String,
        pinned: String,
        offered: String,
    },
    #[error("host key of {host} is {offered}, not the expected {expected}; nothing pinned")]
    FingerprintMismatch {
        host: String,
        expected: String,
        offered: String,
    },
    #[error("connecting to {host}")]
    Connect {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("connecting to {host}: no answer within {seconds} s")]
    ConnectTimeout { host: String, seconds: u64 },
    #[error("{host} refused parc's key for user {user}")]
    Auth { host: String, user: String },
    #[error("SSH session with {host}")]
    Session {
        host: String,
        #[source]
        source: russh::Error,
    },
}

impl SshError {
    pub fn kind(&self) -> PortErrorKind {
        match self {
            SshError::Connect { .. } => PortErrorKind::Unreachable,
            SshError::ConnectTimeout { .. } => PortErrorKind::Timeout,
            SshError::UnknownHostKey { .. }
            | SshError::ChangedHostKey { .. }
            | SshError::FingerprintMismatch { .. }
            | SshError::Auth { .. } => PortErrorKind::Refused,
            SshError::ClientKey { .. } | SshError::KnownHosts { .. } | SshError::Session { .. } => {
                PortErrorKind::Other
            }
        }
    }
}

impl From<SshError> for PortError {
    fn from(e: SshError) -> Self {
        let kind = e.kind();
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            message.push_str(": ");
            message.push_str(&s.to_string());
            src = s.source();
        }
        PortError::new(kind, message)
    }
}
