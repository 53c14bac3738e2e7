//! The SQLite backend: `<workspace>/.parc/journal.db` (WAL), created and upgraded at open,
//! every row checked against its seal. Its queries live beside the PostgreSQL ones, by
//! concept: `runs.rs`, `attempts.rs`, `lock.rs`.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{FILE, JournalError, schema, seal};

/// An open SQLite journal.
pub(super) struct Sqlite {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

impl Sqlite {
    /// Opens (creating if needed) the journal of a workspace's state folder.
    pub(super) fn open(state_dir: &Path) -> Result<Self, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Dir {
            path: state_dir.into(),
            source,
        })?;
        let path = state_dir.join(FILE);
        let conn = Connection::open(&path).map_err(|source| JournalError::Sql {
            path: path.clone(),
            source,
        })?;
        let j = Sqlite { conn, path };
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

    /// Writes in one transaction, sealing what `f` wrote (see [`seal`]) before it commits.
    pub(super) fn write<T>(
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

    pub(super) fn sql<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        f(&self.conn).map_err(|source| JournalError::Sql {
            path: self.path.clone(),
            source,
        })
    }
}
