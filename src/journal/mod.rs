//! The journal: a SQLite database (`<workspace>/.parc/journal.db`, WAL) of runs, step
//! attempts and room locks. It is what makes a run resumable: the latest attempt of each step
//! (per host) is the room's [`History`](crate::domain::procedure::History).

mod attempts;
mod lock;
mod runs;
mod schema;
mod seal;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use attempts::{AttemptRow, Ending};
pub use lock::{Holder, hostname, process_alive};
pub use runs::RunRow;

/// Journal failures, naming the database.
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
}

/// An open journal.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

/// The journal's file name inside the state folder.
pub const FILE: &str = "journal.db";

impl Journal {
    /// Opens (creating if needed) the journal of a workspace's state folder.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Dir {
            path: state_dir.into(),
            source,
        })?;
        let path = state_dir.join(FILE);
        let conn = Connection::open(&path).map_err(|source| JournalError::Sql {
            path: path.clone(),
            source,
        })?;
        let j = Journal { conn, path };
        let damage = j.sql(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            let version = |c: &Connection| -> rusqlite::Result<i64> {
                c.pragma_query_value(None, "user_version", |r| r.get(0))
            };
            if version(c)? < schema::VERSION {
                // Created or upgraded once, by one process (another may be at it too).
                c.execute_batch("BEGIN IMMEDIATE")?;
                let upgraded = version(c).and_then(|v| {
                    c.execute_batch(schema::SCHEMA)?;
                    if v < schema::VERSION {
                        seal::upgrade(c)?;
                        c.pragma_update(None, "user_version", schema::VERSION)?;
                    }
                    Ok(())
                });
                c.execute_batch(if upgraded.is_ok() {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                })?;
                upgraded?;
            }
            // The file's structure, then every row against its seal.
            let check: String = c.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))?;
            if check != "ok" {
                return Ok(Some(check));
            }
            seal::first_broken(c)
        });
        let damage = match damage {
            Ok(d) => d,
            // SQLite's own word for a file it cannot read as a database.
            Err(JournalError::Sql {
                source: rusqlite::Error::SqliteFailure(e, msg),
                ..
            }) if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
            {
                Some(msg.unwrap_or_else(|| e.to_string()))
            }
            Err(e) => return Err(e),
        };
        if let Some(detail) = damage {
            return Err(JournalError::Damaged {
                path: j.path.clone(),
                detail,
            });
        }
        Ok(j)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes in one transaction, sealing what `f` wrote (see [`seal`]) before it commits.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        self.sql(|c| {
            let tx = c.unchecked_transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn sql<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        f(&self.conn).map_err(|source| JournalError::Sql {
            path: self.path.clone(),
            source,
        })
    }
}

/// Now, as the journal writes times (RFC 3339, UTC, seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
