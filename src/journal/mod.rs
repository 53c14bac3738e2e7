//! The journal: runs, step attempts and room locks. It is what makes a run resumable: the
//! latest attempt of each step (per host) is the room's
//! [`History`](crate::domain::procedure::History).
//!
//! Two backends behind one synchronous API ([`Journal`]), chosen by `site.toml`'s `[state]`
//! (see `docs/state.md`):
//! - SQLite, the default: `<workspace>/.parc/journal.db` (WAL), one lycée per file
//!   (`sqlite.rs`, and the SQLite half of `runs.rs`, `attempts.rs`, `lock.rs`);
//! - PostgreSQL (`pg`), a database several lycées and technicians share: every row keyed by
//!   the lycée's UAI, a room's lock held across machines.
//!
//! Both seal every row (`seal.rs`) and check the seals at open. The same behaviour cases
//! (`cases.rs`) run on both.

mod attempts;
#[doc(hidden)]
pub mod cases;
mod lock;
mod pg;
mod runs;
mod schema;
mod seal;
mod sqlite;

use std::path::{Path, PathBuf};

use crate::domain::finding::{Finding, Source};
use crate::domain::procedure::{History, Step};
use crate::state::{ChooseError, Chosen};

pub use attempts::{AttemptRow, Ending};
pub use lock::{Holder, hostname, process_alive};
pub use runs::RunRow;

use sqlite::Sqlite;

/// Journal failures, naming the database (a PostgreSQL one by its URL, which never holds a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state folder {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "room {room} is already being worked on by parc (pid {pid} on {host}, started {started})",
        room = .room, pid = .holder.pid, host = .holder.host, started = .holder.started
    )]
    Locked { room: String, holder: Holder },
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    #[error(
        "the journal {path} is damaged ({detail}): it was changed outside parc (a disk error, an edit); keep a copy of it for investigation"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("{file} has {} error(s) in [state]:\n{}", .findings.len(), .findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Config {
        file: String,
        findings: Vec<Finding>,
    },
    #[error("cannot read the journal database's password (secret \"{name}\")")]
    Secret {
        name: String,
        #[source]
        source: crate::secrets::SecretError,
    },
    #[error("cannot connect to the journal database {url}")]
    Connect {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("journal database {url}")]
    Pg {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the journal database {url} holds schema version {found}, newer than this parc knows ({known}): use a newer parc"
    )]
    NewerSchema { url: String, found: i64, known: i64 },
    #[error(
        "the journal of lycée {lycee} in {url} is damaged ({detail}): a row was changed outside parc; keep a dump of the database for investigation"
    )]
    DamagedDb {
        url: String,
        lycee: String,
        detail: String,
    },
    #[error("the journal database {url}'s connection thread is gone")]
    Gone { url: String },
    #[error("cannot start the journal database {url}'s connection thread")]
    Thread {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl JournalError {
    /// Whether the error is the user's to fix (a setting, a secret, a refusal) rather than a
    /// failure of parc or of the database.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            JournalError::Locked { .. }
                | JournalError::NoSuchRun(_)
                | JournalError::Config { .. }
                | JournalError::Secret { .. }
        )
    }
}

/// An open journal, on whichever backend the site chose.
pub struct Journal {
    backend: Backend,
}

enum Backend {
    Sqlite(Sqlite),
    Postgres(pg::Pg),
}

/// The journal's file name inside the state folder (SQLite).
pub const FILE: &str = "journal.db";

impl Journal {
    /// Opens (creating if needed) the SQLite journal of a workspace's state folder.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        Ok(Journal {
            backend: Backend::Sqlite(Sqlite::open(state_dir)?),
        })
    }

    /// Opens the journal `site.toml`'s `[state]` names (SQLite when it names none, or when
    /// there is no `site.toml`); secrets are read from `state_dir`.
    pub fn open_with(state_dir: &Path, site: Option<&Source>) -> Result<Self, JournalError> {
        match crate::state::choose(state_dir, site) {
            Ok(Chosen::Sqlite) => Self::open(state_dir),
            Ok(Chosen::Postgres(settings, tls)) => Ok(Journal {
                backend: Backend::Postgres(pg::Pg::open(settings, tls)?),
            }),
            Err(ChooseError::Config { file, findings }) => {
                Err(JournalError::Config { file, findings })
            }
            Err(ChooseError::Secret { name, source }) => Err(JournalError::Secret { name, source }),
        }
    }

    /// The journal of a loaded workspace, as its `site.toml` says.
    pub fn open_for(loaded: &crate::workspace::Loaded) -> Result<Self, JournalError> {
        Self::open_with(&loaded.dir.state_dir(), loaded.sources.site.as_ref())
    }

    /// The journal of a workspace folder, reading only its `site.toml`'s `[state]`.
    pub fn open_workspace(root: &Path) -> Result<Self, JournalError> {
        let dir = crate::workspace::WorkspaceDir {
            root: root.to_path_buf(),
        };
        let site = crate::state::read_site(root).map_err(|source| JournalError::Dir {
            path: root.join("site.toml"),
            source,
        })?;
        Self::open_with(&dir.state_dir(), site.as_ref())
    }

    /// Where the journal is: its file, or its database's URL and the lycée.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path.display().to_string(),
            Backend::Postgres(p) => p.location(),
        }
    }

    /// Takes the room's lock. Returns the stale holder it took over, if any; fails with
    /// [`JournalError::Locked`] while a live process holds it.
    pub fn acquire_lock(
        &mut self,
        room: &str,
        me: &Holder,
    ) -> Result<Option<Holder>, JournalError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.acquire_lock(room, me),
            Backend::Postgres(p) => p.acquire_lock(room, me),
        }
    }

    /// Releases the room's lock if this holder has it.
    pub fn release_lock(&self, room: &str, me: &Holder) -> Result<(), JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.release_lock(room, me),
            Backend::Postgres(p) => p.release_lock(room, me),
        }
    }

    /// The current holder of a room's lock, if any (alive or not).
    pub fn lock_holder(&self, room: &str) -> Result<Option<Holder>, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.lock_holder(room),
            Backend::Postgres(p) => p.lock_holder(room),
        }
    }

    /// Closes the runs of a room left open by a process that died (the caller holds the room's
    /// lock, so no other run of it is alive): they end "interrupted", and so do their attempts
    /// that were running. Returns the ids of the runs closed.
    pub fn close_dead_runs(&self, room: &str) -> Result<Vec<i64>, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.close_dead_runs(room),
            Backend::Postgres(p) => p.close_dead_runs(room),
        }
    }

    /// Starts a run; returns its id.
    pub fn start_run(
        &self,
        room: &str,
        recipe_digest: &str,
        who: &str,
        holder: &Holder,
        selection: &str,
    ) -> Result<i64, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.start_run(room, recipe_digest, who, holder, selection),
            Backend::Postgres(p) => p.start_run(room, recipe_digest, who, holder, selection),
        }
    }

    /// Ends a run.
    pub fn finish_run(&self, id: i64, outcome: &str, detail: &str) -> Result<(), JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.finish_run(id, outcome, detail),
            Backend::Postgres(p) => p.finish_run(id, outcome, detail),
        }
    }

    /// Runs, newest first, of one room or all.
    pub fn runs(&self, room: Option<&str>) -> Result<Vec<RunRow>, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.runs(room),
            Backend::Postgres(p) => p.runs(room),
        }
    }

    pub fn run(&self, id: i64) -> Result<RunRow, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(id),
            Backend::Postgres(p) => p.run(id),
        }
    }

    /// Records that a step starts (status `running`); returns the attempt id.
    pub fn start_attempt(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        log_path: Option<&str>,
    ) -> Result<i64, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.start_attempt(run, step, host, key, log_path),
            Backend::Postgres(p) => p.start_attempt(run, step, host, key, log_path),
        }
    }

    /// Records a step that was not tried (skipped on a host, with why).
    pub fn skip(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        why: &str,
    ) -> Result<i64, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.skip(run, step, host, key, why),
            Backend::Postgres(p) => p.skip(run, step, host, key, why),
        }
    }

    /// Ends an attempt with `status` (`done`, `failed`, `interrupted`, `skipped`).
    pub fn finish_attempt(
        &self,
        id: i64,
        status: &str,
        end: &Ending<'_>,
    ) -> Result<(), JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.finish_attempt(id, status, end),
            Backend::Postgres(p) => p.finish_attempt(id, status, end),
        }
    }

    /// The attempts of a run, in order.
    pub fn attempts(&self, run: i64) -> Result<Vec<AttemptRow>, JournalError> {
        match &self.backend {
            Backend::Sqlite(s) => s.attempts(run),
            Backend::Postgres(p) => p.attempts(run),
        }
    }

    /// The room's history: the latest attempt of each step (per host).
    pub fn history(&self, room: &str) -> Result<History, JournalError> {
        let rows = match &self.backend {
            Backend::Sqlite(s) => s.room_attempts(room)?,
            Backend::Postgres(p) => p.room_attempts(room)?,
        };
        Ok(attempts::history_of(rows))
    }
}

/// Now, as the journal writes times (RFC 3339, UTC, seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
