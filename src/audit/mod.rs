//! The audit log: every action that changes a machine or an image (format, install, capture,
//! deploy, join, reimage), every sign-off recorded and every licence override used, in a
//! hash-chained SQLite table (`<workspace>/.parc/audit.db`). Each entry carries the hash of
//! the previous one; the last entry's seq and hash are also kept in `.parc/audit.head`, so
//! `parc audit verify` detects an edited, removed (even the last) or reordered entry.
//! Retention (`prune`) replaces the pruned prefix by one anchor entry carrying the hash the
//! next entry links to, so the chain stays verifiable.
//!
//! Entries never hold secrets: [`record`] refuses an entry in which the value of any stored
//! secret appears.

pub mod age;
mod chain;
mod entry;
mod store;

pub use chain::{Broken, Verified};
pub use entry::{Action, Entry, Stored};
pub use store::{AuditLog, PruneSummary};

use std::path::{Path, PathBuf};

/// Audit log failures, naming the database.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot create the state folder {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {path}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("audit head {path}")]
    Head {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to write a secret (\"{0}\") into the audit log")]
    Secret(String),
    #[error("cannot read the secret store")]
    Secrets(#[source] crate::secrets::SecretError),
}

/// Appends one entry to the audit log of a workspace's state folder (`.parc/`).
pub fn record(state_dir: &Path, entry: &Entry) -> Result<Stored, AuditError> {
    AuditLog::open(state_dir)?.append(entry, state_dir)
}

#[cfg(test)]
mod tests;
