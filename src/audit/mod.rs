//! The audit log: every action that changes a machine or an image (format, install, capture,
//! deploy, join, reimage), every sign-off recorded and every licence override used, in a
//! hash-chained table: SQLite by default (`<workspace>/.parc/audit.db`, `sqlite.rs`), or
//! PostgreSQL when `site.toml`'s `[state]` says so (`pg.rs`: one chain per lycée, the head in
//! the database). Each entry carries the hash of the previous one; the last entry's seq and
//! hash are also kept apart (`.parc/audit.head`, or the lycée's row of `audit_heads`), so
//! `parc audit verify` detects an edited, removed (even the last) or reordered entry.
//! [`AuditLog`] (`log.rs`) is the front; `chain.rs` computes what both backends store.
//! Retention (`prune`) replaces the pruned prefix by one anchor entry carrying the hash the
//! next entry links to, so the chain stays verifiable.
//!
//! Entries never hold secrets: [`record`] refuses an entry in which the value of any stored
//! secret appears.

pub mod age;
mod chain;
mod entry;
mod log;
mod pg;
mod sqlite;

pub use chain::{Broken, Verified};
pub use entry::{Action, Entry, Stored};
pub use log::{AuditLog, PruneSummary};

use std::path::{Path, PathBuf};

/// Audit log failures, naming the database (a PostgreSQL one by its URL, which never holds a
/// password).
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
    #[error("cannot read {path}")]
    Site {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} has {} error(s) in [state]:\n{}", .findings.len(), .findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Config {
        file: String,
        findings: Vec<crate::domain::finding::Finding>,
    },
    #[error("cannot read the audit database's password (secret \"{name}\")")]
    StateSecret {
        name: String,
        #[source]
        source: crate::secrets::SecretError,
    },
    #[error("cannot connect to the audit database {url}")]
    Connect {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("audit database {url}")]
    Pg {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the audit database {url} holds schema version {found}, newer than this parc knows ({known}): use a newer parc"
    )]
    NewerSchema { url: String, found: i64, known: i64 },
    #[error("the audit database {url}'s connection thread is gone")]
    Gone { url: String },
    #[error("cannot start the audit database {url}'s connection thread")]
    Thread {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl AuditError {
    /// Whether the error is the user's to fix (a setting, a secret) rather than a failure of
    /// parc or of the database.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            AuditError::Secret(_) | AuditError::Config { .. } | AuditError::StateSecret { .. }
        )
    }
}

/// A workspace's state folder (`<root>/.parc`), where the SQLite log and the secrets are.
fn state_dir(root: &Path) -> PathBuf {
    crate::workspace::WorkspaceDir {
        root: root.to_path_buf(),
    }
    .state_dir()
}

/// Appends one entry to the audit log of the workspace at `root` (where its `site.toml`'s
/// `[state]` says).
pub fn record(root: &Path, entry: &Entry) -> Result<Stored, AuditError> {
    AuditLog::open_workspace(root)?.append(entry, &state_dir(root))
}

#[cfg(test)]
mod tests;
