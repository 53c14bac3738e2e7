//! The audit log in SQLite (the default): the `entries` table of `<workspace>/.parc/audit.db`
//! and the head file `.parc/audit.head`: append, list, verify, prune.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::AuditError;
use super::chain::{self, Broken, Verified};
use super::entry::{Entry, Stored};
use super::log::PruneSummary;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    seq       INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    room      TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    actor     TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
";

const COLUMNS: &str = "seq, ts, room, action, subject, actor, detail, prev_hash, hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: r.get(0)?,
        ts: r.get(1)?,
        room: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        actor: r.get(5)?,
        detail: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// An open SQLite audit log.
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    head: PathBuf,
}

impl Sqlite {
    pub fn open(state_dir: &Path) -> Result<Self, AuditError> {
        std::fs::create_dir_all(state_dir).map_err(|source| AuditError::Dir {
            path: state_dir.into(),
            source,
        })?;
        let path = state_dir.join("audit.db");
        let conn = Connection::open(&path).map_err(|source| AuditError::Sql {
            path: path.clone(),
            source,
        })?;
        let log = Sqlite {
            conn,
            path,
            head: state_dir.join("audit.head"),
        };
        log.sql(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.execute_batch(SCHEMA)
        })?;
        Ok(log)
    }

    fn sql<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, AuditError> {
        f(&self.conn).map_err(|source| AuditError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    pub fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// Appends an entry.
    pub fn append(&mut self, entry: &Entry) -> Result<Stored, AuditError> {
        let stored = self.immediate(|tx| {
            let last: Option<Stored> = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1"),
                    [],
                    row,
                )
                .optional()?;
            let stored = chain::next(last.as_ref(), entry, crate::journal::now());
            insert(tx, &stored)?;
            Ok(stored)
        })?;
        self.write_head(stored.seq, &stored.hash)?;
        Ok(stored)
    }

    /// Runs `f` in an immediate transaction (the write lock taken at its start), committed
    /// when `f` succeeds.
    fn immediate<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, AuditError> {
        let run = || {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|source| AuditError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// Entries in order, optionally of one room and from a time on (RFC 3339 comparison).
    pub fn list(&self, room: Option<&str>, since: Option<&str>) -> Result<Vec<Stored>, AuditError> {
        self.sql(|c| {
            c.prepare(&format!(
                "SELECT {COLUMNS} FROM entries WHERE (?1 IS NULL OR room = ?1) AND (?2 IS NULL OR ts >= ?2) ORDER BY seq"
            ))?
            .query_map(rusqlite::params![room, since], row)?
            .collect()
        })
    }

    /// Checks the whole chain: `Ok(Err(_))` names the first broken entry.
    pub fn verify(&self) -> Result<Result<Verified, Broken>, AuditError> {
        // Storage order (rowid), not seq order: a reordered table shows up.
        let entries: Vec<Stored> = self.sql(|c| {
            c.prepare(&format!("SELECT {COLUMNS} FROM entries ORDER BY rowid"))?
                .query_map([], row)?
                .collect()
        })?;
        Ok(chain::check(&entries, self.read_head()?))
    }

    /// Removes the entries older than `before` (RFC 3339), replacing them by one anchor entry.
    /// Refuses to prune a chain that does not verify.
    pub fn prune(
        &mut self,
        before: &str,
        actor: &str,
    ) -> Result<Result<PruneSummary, Broken>, AuditError> {
        if let Err(b) = self.verify()? {
            return Ok(Err(b));
        }
        let pruned = self.immediate(|tx| {
            let old: Vec<Stored> = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM entries WHERE ts < ?1 ORDER BY seq"
                ))?
                .query_map([before], row)?
                .collect::<rusqlite::Result<_>>()?;
            let Some((removed, anchor)) =
                chain::anchor(&old, before, actor, &crate::journal::now())
            else {
                return Ok(None);
            };
            tx.execute("DELETE FROM entries WHERE seq <= ?1", [anchor.seq])?;
            insert(tx, &anchor)?;
            let is_last = tx
                .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get::<_, i64>(0))?
                == anchor.seq;
            Ok(Some((removed, anchor, is_last)))
        })?;
        let Some((removed, anchor, is_last)) = pruned else {
            return Ok(Ok(PruneSummary {
                removed: 0,
                anchor_seq: None,
            }));
        };
        if is_last {
            self.write_head(anchor.seq, &anchor.hash)?;
        }
        Ok(Ok(PruneSummary {
            removed,
            anchor_seq: Some(anchor.seq),
        }))
    }

    fn write_head(&self, seq: i64, hash: &str) -> Result<(), AuditError> {
        let tmp = self
            .head
            .with_extension(format!("tmp.{}", std::process::id()));
        let e = |source| AuditError::Head {
            path: self.head.clone(),
            source,
        };
        std::fs::write(&tmp, format!("{seq} {hash}\n")).map_err(e)?;
        std::fs::rename(&tmp, &self.head).map_err(e)
    }

    fn read_head(&self) -> Result<Option<(i64, String)>, AuditError> {
        match std::fs::read_to_string(&self.head) {
            Ok(text) => {
                let mut parts = text.split_whitespace();
                let seq = parts.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
                Ok(Some((seq, parts.next().unwrap_or_default().to_string())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AuditError::Head {
                path: self.head.clone(),
                source,
            }),
        }
    }
}

fn insert(c: &Connection, e: &Stored) -> rusqlite::Result<usize> {
    c.execute(
        &format!("INSERT INTO entries ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        rusqlite::params![
            e.seq,
            e.ts,
            e.room,
            e.action,
            e.subject,
            e.actor,
            e.detail,
            e.prev_hash,
            e.hash
        ],
    )
}
