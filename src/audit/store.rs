//! The audit log's SQLite table and head file: append, list, verify, prune.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::AuditError;
use super::chain::{self, Broken, GENESIS, Verified};
use super::entry::{Action, Entry, Stored};

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

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneSummary {
    pub removed: usize,
    pub anchor_seq: Option<i64>,
}

/// An open audit log.
pub struct AuditLog {
    conn: Connection,
    path: PathBuf,
    head: PathBuf,
}

impl AuditLog {
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
        let log = AuditLog {
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

    /// Appends an entry (refusing one that contains a stored secret's value).
    pub fn append(&mut self, entry: &Entry, state_dir: &Path) -> Result<Stored, AuditError> {
        refuse_secrets(entry, state_dir)?;
        let path = self.path.clone();
        let err = |source| AuditError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // After an anchor alone, the chain goes on from the last pruned entry's hash.
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash, action, prev_hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    let action: String = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        if action == Action::Anchor.as_str() {
                            r.get(3)?
                        } else {
                            r.get(1)?
                        },
                    ))
                },
            )
            .optional()
            .map_err(err)?;
        let (seq, prev_hash) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS.to_string()),
        };
        let mut stored = Stored {
            seq,
            ts: crate::journal::now(),
            room: entry.room.clone(),
            action: entry.action.as_str().to_string(),
            subject: entry.subject.clone(),
            actor: entry.actor.clone(),
            detail: entry.detail.clone(),
            prev_hash,
            hash: String::new(),
        };
        stored.hash = chain::hash_of(&stored);
        insert(&tx, &stored).map_err(err)?;
        tx.commit().map_err(err)?;
        self.write_head(stored.seq, &stored.hash)?;
        Ok(stored)
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
        let path = self.path.clone();
        let err = |source| AuditError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let old: Vec<Stored> = tx
            .prepare(&format!(
                "SELECT {COLUMNS} FROM entries WHERE ts < ?1 ORDER BY seq"
            ))
            .and_then(|mut st| st.query_map([before], row)?.collect())
            .map_err(err)?;
        let Some(last_old) = old.last().cloned() else {
            return Ok(Ok(PruneSummary {
                removed: 0,
                anchor_seq: None,
            }));
        };
        let removed = old
            .iter()
            .filter(|e| e.action != Action::Anchor.as_str())
            .count();
        let previously = old
            .first()
            .filter(|e| e.action == Action::Anchor.as_str())
            .map(|e| e.detail.clone());
        tx.execute("DELETE FROM entries WHERE seq <= ?1", [last_old.seq])
            .map_err(err)?;
        let mut anchor = Stored {
            seq: last_old.seq,
            ts: last_old.ts.clone(),
            room: String::new(),
            action: Action::Anchor.as_str().to_string(),
            subject: format!("entries up to {}", last_old.seq),
            actor: actor.to_string(),
            detail: format!(
                "pruned {removed} entries older than {before} on {}{}",
                crate::journal::now(),
                previously
                    .map(|p| format!("; before that: {p}"))
                    .unwrap_or_default()
            ),
            // The next entry links to the last pruned entry's hash.
            prev_hash: last_old.hash.clone(),
            hash: String::new(),
        };
        anchor.hash = chain::hash_of(&anchor);
        insert(&tx, &anchor).map_err(err)?;
        let is_last: bool = tx
            .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get::<_, i64>(0))
            .map(|m| m == anchor.seq)
            .map_err(err)?;
        tx.commit().map_err(err)?;
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
