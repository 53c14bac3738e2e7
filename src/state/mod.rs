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
    /// A PostgreSQL database, the password read from the secret store, and the CAs trusted
    /// for its certificate besides the system's (`ca`).
    Postgres(pg::Settings, pg::Tls),
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
/// `site.toml`) and, for PostgreSQL, the password's secret from `state_dir` and the `ca` file
/// (relative to the workspace, `state_dir`'s parent).
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
            let file = || site.map(|s| s.name.clone()).unwrap_or_default();
            if let Err(why) = check_sslmode(&pg.url.value) {
                return Err(ChooseError::Config {
                    file: file(),
                    findings: vec![Finding::error(pg.url.at.clone(), "state", why).hint(
                        "write `?sslmode=require` (or leave sslmode out): parc checks the certificate against the system's CAs and `[state] ca`",
                    )],
                });
            }
            if let Err(why) = check_url(&pg.url.value) {
                return Err(ChooseError::Config {
                    file: file(),
                    findings: vec![Finding::error(pg.url.at.clone(), "state", why).hint(
                        "postgresql://USER@HOST[:PORT]/DATABASE, or postgresql://USER@/DATABASE?host=/SOCKET/FOLDER",
                    )],
                });
            }
            let ca = match &pg.ca {
                None => Vec::new(),
                Some(ca) => {
                    let root = state_dir.parent().unwrap_or(state_dir);
                    read_ca(&root.join(&ca.value)).map_err(|why| ChooseError::Config {
                        file: file(),
                        findings: vec![Finding::error(ca.at.clone(), "state", why).hint(
                            "`ca` is a PEM file of the CA that signed the database server's certificate (-----BEGIN CERTIFICATE-----), relative to the workspace",
                        )],
                    })?
                }
            };
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
            Ok(Chosen::Postgres(
                pg::Settings {
                    url: pg.url.value,
                    password,
                    lycee: pg.lycee,
                },
                pg::Tls { ca },
            ))
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

/// The CA certificates of a `ca` file: at least one, each usable as a trust anchor.
fn read_ca(path: &Path) -> Result<Vec<pg::Certificate>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    let mut check = rustls::RootCertStore::empty();
    for c in &certs {
        check.add(c.clone()).map_err(|e| {
            format!(
                "a certificate in {} is not usable as a CA: {e}",
                path.display()
            )
        })?;
    }
    Ok(certs)
}

/// libpq's `sslmode` values that parc's driver does not read, but whose intent parc always
/// meets: when the connection uses TLS, the server's certificate is verified (its chain, and
/// that it names the host), which is `verify-full`.
pub fn check_sslmode(url: &str) -> Result<(), String> {
    match sslmode(url) {
        Some(mode @ ("verify-ca" | "verify-full")) => Err(format!(
            "`sslmode={mode}` is not a mode parc's PostgreSQL driver reads (disable, prefer, require); parc needs no such mode: whenever it uses TLS it verifies the server's certificate, its chain and its host name"
        )),
        _ => Ok(()),
    }
}

/// The `sslmode` a PostgreSQL URL's query string sets, if any.
pub fn sslmode(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "sslmode")
        .map(|(_, v)| v)
        .next_back()
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
    use super::{check_sslmode, check_url, read_ca, sslmode};

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

    #[test]
    fn sslmode_is_read_from_the_query_and_verify_modes_are_explained() {
        assert_eq!(sslmode("postgresql://parc@db/parc"), None);
        assert_eq!(
            sslmode("postgresql://parc@db/parc?connect_timeout=5&sslmode=require"),
            Some("require")
        );
        assert!(check_sslmode("postgresql://parc@db/parc?sslmode=disable").is_ok());
        assert!(check_url("postgresql://parc@db/parc?sslmode=require").is_ok());
        assert!(check_url("postgresql://parc@db/parc?sslmode=prefer").is_ok());
        for mode in ["verify-full", "verify-ca"] {
            let why =
                check_sslmode(&format!("postgresql://parc@db/parc?sslmode={mode}")).unwrap_err();
            assert!(
                why.contains(mode) && why.contains("verifies the server's certificate"),
                "{why}"
            );
        }
    }

    #[test]
    fn a_ca_file_must_be_readable_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_ca(&dir.path().join("nope.pem")).unwrap_err();
        assert!(
            missing.contains("cannot read") && missing.contains("nope.pem"),
            "{missing}"
        );
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let why = read_ca(&text).unwrap_err();
        assert!(why.contains("holds no PEM certificate"), "{why}");
        // A PEM block that is not a certificate a CA store takes.
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let why = read_ca(&junk).unwrap_err();
        assert!(why.contains("junk.pem"), "{why}");
    }
}
