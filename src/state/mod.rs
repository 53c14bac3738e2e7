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
            if let Err(why) = check_url(&pg.url.value) {
                return Err(ChooseError::Config {
                    file: site.map(|s| s.name.clone()).unwrap_or_default(),
                    findings: vec![Finding::error(pg.url.at.clone(), "state", why).hint(
                        "postgresql://USER@HOST[:PORT]/DATABASE, or postgresql://USER@/DATABASE?host=/SOCKET/FOLDER",
                    )],
                });
            }
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

/// The driver's reading of a PostgreSQL URL (the domain has checked its scheme and that it
/// holds no password): it must parse and name a host (or socket folder) and a database.
pub fn check_url(url: &str) -> Result<(), String> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("the PostgreSQL URL cannot be read: {e}"))?;
    if config.get_password().is_some() {
        return Err("the PostgreSQL URL holds a password; secrets are referred to by name: store it with `parc secret set NAME` and write `password = { secret = \"NAME\" }` in [state]".into());
    }
    if config.get_hosts().is_empty() {
        return Err(
            "the PostgreSQL URL names no host (nor a socket folder: `?host=/run/postgresql`)"
                .into(),
        );
    }
    if config.get_dbname().is_none() {
        return Err("the PostgreSQL URL names no database (`…/DATABASE`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn the_driver_reads_the_url_host_and_database_named() {
        assert!(check_url("postgresql://parc@db.example/parc").is_ok());
        assert!(check_url("postgresql://parc@/parc?host=/run/postgresql").is_ok());
        let no_host = check_url("postgresql://parc@/parc").unwrap_err();
        assert!(no_host.contains("names no host"), "{no_host}");
        let no_db = check_url("postgresql://parc@db.example").unwrap_err();
        assert!(no_db.contains("names no database"), "{no_db}");
        let bad = check_url("postgresql://parc@db.example:notaport/parc").unwrap_err();
        assert!(bad.contains("cannot be read"), "{bad}");
    }
}
