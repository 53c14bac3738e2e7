//! [`AuditLog`]: the audit log on whichever backend the workspace's `site.toml` `[state]`
//! names — SQLite in the workspace (`sqlite.rs`, the default) or PostgreSQL (`pg.rs`), one
//! chain per lycée — behind one synchronous API. Secrets are refused here, before either.

use std::path::Path;

use crate::domain::finding::Source;
use crate::state::{ChooseError, Chosen};

use super::AuditError;
use super::chain::{Broken, Verified};
use super::entry::{Entry, Stored};
use super::pg::Pg;
use super::sqlite::Sqlite;

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneSummary {
    pub removed: usize,
    pub anchor_seq: Option<i64>,
}

/// An open audit log.
pub struct AuditLog {
    backend: Backend,
}

enum Backend {
    Sqlite(Sqlite),
    Postgres(Pg),
}

impl AuditLog {
    /// Opens (creating if needed) the SQLite audit log of a state folder.
    pub fn open(state_dir: &Path) -> Result<Self, AuditError> {
        Ok(AuditLog {
            backend: Backend::Sqlite(Sqlite::open(state_dir)?),
        })
    }

    /// Opens the audit log `site.toml`'s `[state]` names (SQLite when it names none, or when
    /// there is no `site.toml`); secrets are read from `state_dir`.
    pub fn open_with(state_dir: &Path, site: Option<&Source>) -> Result<Self, AuditError> {
        match crate::state::choose(state_dir, site) {
            Ok(Chosen::Sqlite) => Self::open(state_dir),
            Ok(Chosen::Postgres(settings, tls)) => Ok(AuditLog {
                backend: Backend::Postgres(Pg::open(settings, tls)?),
            }),
            Err(ChooseError::Config { file, findings }) => {
                Err(AuditError::Config { file, findings })
            }
            Err(ChooseError::Secret { name, source }) => {
                Err(AuditError::StateSecret { name, source })
            }
        }
    }

    /// The audit log of a loaded workspace, as its `site.toml` says.
    pub fn open_for(loaded: &crate::workspace::Loaded) -> Result<Self, AuditError> {
        Self::open_with(&loaded.dir.state_dir(), loaded.sources.site.as_ref())
    }

    /// The audit log of a workspace folder, reading only its `site.toml`'s `[state]`.
    pub fn open_workspace(root: &Path) -> Result<Self, AuditError> {
        let site = crate::state::read_site(root).map_err(|source| AuditError::Site {
            path: root.join("site.toml"),
            source,
        })?;
        Self::open_with(&super::state_dir(root), site.as_ref())
    }

    /// Where the log is: its file, or its database's URL and the lycée.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.location(),
            Backend::Postgres(p) => p.location(),
        }
    }

    /// Appends an entry (refusing one that contains the value of a secret stored in
    /// `state_dir`).
    pub fn append(&mut self, entry: &Entry, state_dir: &Path) -> Result<Stored, AuditError> {
        refuse_secrets(entry, state_dir)?;
        match &mut self.backend {
            Backend::Sqlite(s) => s.append(entry),
            Backend::Postgres(p) => p.append(entry),
        }
    }

    /// Entries in order, optionally of one room and from a time on (RFC 3339 comparison).
    pub fn list(&self, room: Option<&str>, since: Option<&str>) -> Result<Vec<Stored>, AuditError> {
        match &self.backend {
            Backend::Sqlite(s) => s.list(room, since),
            Backend::Postgres(p) => p.list(room, since),
        }
    }

    /// Checks the whole chain against its head: `Ok(Err(_))` names the first broken entry.
    pub fn verify(&self) -> Result<Result<Verified, Broken>, AuditError> {
        match &self.backend {
            Backend::Sqlite(s) => s.verify(),
            Backend::Postgres(p) => p.verify(),
        }
    }

    /// Removes the entries older than `before` (RFC 3339), replacing them by one anchor entry.
    /// Refuses to prune a chain that does not verify.
    pub fn prune(
        &mut self,
        before: &str,
        actor: &str,
    ) -> Result<Result<PruneSummary, Broken>, AuditError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.prune(before, actor),
            Backend::Postgres(p) => p.prune(before, actor),
        }
    }
}

/// Fails when the value of any stored secret appears in the entry.
fn refuse_secrets(entry: &Entry, state_dir: &Path) -> Result<(), AuditError> {
    let store = crate::secrets::SecretStore::new(state_dir);
    let text = format!(
        "{}\n{}\n{}\n{}",
        entry.room, entry.subject, entry.actor, entry.detail
    );
    for name in store.list().map_err(AuditError::Secrets)? {
        let value = store.get(&name).map_err(AuditError::Secrets)?;
        let value = String::from_utf8_lossy(&value.0);
        let value = value.trim();
        if value.len() >= 4 && text.contains(value) {
            return Err(AuditError::Secret(name));
        }
    }
    Ok(())
}
