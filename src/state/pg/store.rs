//! A plain PostgreSQL store over the shared [`Bridge`]: what the region's fleet
//! (`crate::inventory::pg`) and the verify results (`crate::steps::conformity_pg`) use. Unlike the
//! journal and the audit log, they check no seal or chain when opening: the session only
//! connects and brings the schema to the latest migration.

use tokio_postgres::Client;

use super::{Bridge, Conn, ConnectError, Settings, Tls, migrate};
use crate::state::{ChooseError, Chosen};

/// Why a store could not be opened or answered.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{file} has {} error(s) in [state]:\n{}", .findings.len(), .findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Config {
        file: String,
        findings: Vec<crate::domain::finding::Finding>,
    },
    #[error("cannot read the state database's password (secret \"{name}\")")]
    Secret {
        name: String,
        #[source]
        source: crate::secrets::SecretError,
    },
    #[error("cannot read {path}")]
    Site {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "this workspace keeps its state in SQLite: the region's views need `[state] backend = \"postgres\"` in site.toml"
    )]
    NotPostgres,
    #[error("cannot connect to the state database {url}")]
    Connect {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("state database {url}")]
    Pg {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the state database {url} holds schema version {found}, newer than this parc knows ({known}): use a newer parc"
    )]
    NewerSchema { url: String, found: i64, known: i64 },
    #[error("the state database {url}'s connection thread is gone")]
    Gone { url: String },
    #[error("cannot start the state database {url}'s connection thread")]
    Thread {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the error is the user's to fix (a setting, a secret, a SQLite workspace).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::Config { .. }
                | StoreError::Secret { .. }
                | StoreError::Site { .. }
                | StoreError::NotPostgres
        )
    }
}

/// The connection's side, owned by its thread.
pub struct Plain {
    conn: Conn,
    url: String,
    lycee: String,
}

impl super::Session for Plain {
    type Error = StoreError;

    fn connect(settings: Settings, tls: Tls) -> Result<Plain, StoreError> {
        let url = settings.url;
        let conn = super::connect(&url, settings.password.as_ref(), &tls).map_err(|e| match e {
            ConnectError::Runtime(source) => StoreError::Thread {
                url: url.clone(),
                source,
            },
            ConnectError::Pg(source) => StoreError::Connect {
                url: url.clone(),
                source,
            },
        })?;
        Ok(Plain {
            conn,
            url,
            lycee: settings.lycee,
        })
    }

    fn prepare(&mut self) -> Result<(), StoreError> {
        let Conn { rt, client, .. } = &mut self.conn;
        match rt.block_on(migrate::apply(client)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err((found, known))) => Err(StoreError::NewerSchema {
                url: self.url.clone(),
                found,
                known,
            }),
            Err(source) => Err(StoreError::Pg {
                url: self.url.clone(),
                source,
            }),
        }
    }

    fn thread_failed(url: &str, spawn: Option<std::io::Error>) -> StoreError {
        match spawn {
            Some(source) => StoreError::Thread {
                url: url.to_string(),
                source,
            },
            None => StoreError::Gone {
                url: url.to_string(),
            },
        }
    }

    fn close(self) {
        self.conn.close();
    }
}

/// The caller's side: an open store of one lycée (its UAI keys the rows it writes).
pub struct Store {
    bridge: Bridge<Plain>,
    url: String,
    lycee: String,
}

impl Store {
    /// Connects (on a thread named `name`) and applies the migrations; when the connection
    /// uses TLS, the server's certificate is verified against the system's CAs.
    pub fn open(name: &str, settings: Settings) -> Result<Store, StoreError> {
        Self::open_tls(name, settings, Tls::default())
    }

    /// As [`Store::open`], trusting `tls` (`[state] ca`) besides the system's CAs.
    pub fn open_tls(name: &str, settings: Settings, tls: Tls) -> Result<Store, StoreError> {
        let url = settings.url.clone();
        let lycee = settings.lycee.clone();
        let bridge = Bridge::open(name, settings, tls)?;
        Ok(Store { bridge, url, lycee })
    }

    /// Opens the store the workspace at `root` names in `site.toml`'s `[state]`; a SQLite
    /// workspace is [`StoreError::NotPostgres`].
    pub fn open_workspace(name: &str, root: &std::path::Path) -> Result<Store, StoreError> {
        let site = super::super::read_site(root).map_err(|source| StoreError::Site {
            path: root.join("site.toml").display().to_string(),
            source,
        })?;
        let state_dir = crate::workspace::WorkspaceDir {
            root: root.to_path_buf(),
        }
        .state_dir();
        match super::super::choose(&state_dir, site.as_ref()) {
            Ok(Chosen::Postgres(settings, tls)) => Store::open_tls(name, settings, tls),
            Ok(Chosen::Sqlite) => Err(StoreError::NotPostgres),
            Err(ChooseError::Config { file, findings }) => {
                Err(StoreError::Config { file, findings })
            }
            Err(ChooseError::Secret { name, source }) => Err(StoreError::Secret { name, source }),
        }
    }

    /// The database's URL as written (it holds no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The lycée (UAI) this store writes for.
    pub fn lycee(&self) -> &str {
        &self.lycee
    }

    /// Runs `f` (given the client and the lycée) on the connection's thread; a database error
    /// names the URL.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&mut Client, &str) -> Result<T, tokio_postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.bridge
            .call(move |s: &mut Plain| {
                let Conn { rt, client, .. } = &mut s.conn;
                rt.block_on(f(client, &s.lycee))
                    .map_err(|source| StoreError::Pg {
                        url: s.url.clone(),
                        source,
                    })
            })
            .map_err(|_| StoreError::Gone {
                url: self.url.clone(),
            })?
    }
}
