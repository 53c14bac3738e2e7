//! Where parc keeps its state (the journal, the audit log): which backend a workspace's
//! `site.toml` `[state]` names, and what the PostgreSQL backends share (`pg`: the connection's
//! thread, connecting, the migrations). See `docs/state.md`.

pub mod pg;

use std::path::Path;

use crate::domain::finding::{Finding, Source};
use crate::domain::site::StateBackend;

/// The backend a workspace's state lives in, ready to open.
pub enum Chosen {
    /// Files in the workspace's state folder.
    Sqlite,
    /// A PostgreSQL database, the password read from the secret store.
    Postgres(pg::Settings),
}

/// Why the backend cannot be chosen: both are the user's to fix.
pub enum ChooseError {
    /// `[state]` is wrong (its findings, with their places).
    Config {
        file: String,
        findings: Vec<Finding>,
    },
    /// The password's secret cannot be read.
    Secret {
        name: String,
        source: crate::secrets::SecretError,
    },
}

/// Reads `site.toml`'s `[state]` (SQLite when it names none, or when there is no
/// `site.toml`) and, for PostgreSQL, the password's secret from `state_dir`.
pub fn choose(state_dir: &Path, site: Option<&Source>) -> Result<Chosen, ChooseError> {
    let state = match site {
        None => StateBackend::Sqlite,
        Some(src) => match crate::domain::site::parse_state_only(src) {
            (Some(state), _) => state,
            (None, findings) => {
                return Err(ChooseError::Config {
                    file: src.name.clone(),
                    findings,
                });
            }
        },
    };
    match state {
        StateBackend::Sqlite => Ok(Chosen::Sqlite),
        StateBackend::Postgres(pg) => {
            let password = match &pg.password_secret {
                None => None,
                Some(name) => Some(
                    crate::secrets::SecretStore::new(state_dir)
                        .get(&name.value)
                        .map_err(|source| ChooseError::Secret {
                            name: name.value.clone(),
                            source,
                        })?,
                ),
            };
            Ok(Chosen::Postgres(pg::Settings {
                url: pg.url.value,
                password,
                lycee: pg.lycee,
            }))
        }
    }
}

/// A workspace folder's `site.toml`, if it has one (only its `[state]` is read by
/// [`choose`]).
pub fn read_site(root: &Path) -> std::io::Result<Option<Source>> {
    match std::fs::read_to_string(root.join("site.toml")) {
        Ok(text) => Ok(Some(Source::new("site.toml", text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
