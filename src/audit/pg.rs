//! The audit log on PostgreSQL: `audit_entries`, one hash chain per lycée (rows keyed by its
//! UAI), and `audit_heads`, each lycée's last entry (seq and hash), so the chain, its end
//! included, is verifiable from the database alone. Tables in the shared migrations
//! (`src/state/pg/migrations/0002_audit.sql`); the connection on its own thread over the
//! shared [`Bridge`].
//!
//! An append reads the lycée's head row `FOR UPDATE` (creating it the first time, `ON
//! CONFLICT DO NOTHING`), then the last entry, inserts the next one and updates the head, in
//! one transaction: two machines appending to one lycée at once wait for each other and never
//! fork the chain; the head can never lag (unlike the SQLite head file), so verify requires
//! it to name the very last entry ([`chain::check_exact`]). A prune holds the same row.

use tokio_postgres::{Client, GenericClient, IsolationLevel, Row};

use crate::state::pg::{Bridge, Conn, ConnectError, Settings, Tls, migrate};

use super::AuditError;
use super::chain::{self, Broken, Verified};
use super::entry::{Entry, Stored};
use super::log::PruneSummary;

const COLUMNS: &str = "seq, ts, room, action, subject, actor, detail, prev_hash, hash";

/// The caller's side: sends jobs to the connection's thread.
pub struct Pg {
    bridge: Bridge<Session>,
    url: String,
    lycee: String,
}

/// The connection's side, owned by its thread.
pub struct Session {
    conn: Conn,
    url: String,
    lycee: String,
}

impl crate::state::pg::Session for Session {
    type Error = AuditError;

    fn connect(settings: Settings, tls: Tls) -> Result<Session, AuditError> {
        let url = settings.url;
        let conn = crate::state::pg::connect(&url, settings.password.as_ref(), &tls).map_err(
            |e| match e {
                ConnectError::Runtime(source) => AuditError::Thread {
                    url: url.clone(),
                    source,
                },
                ConnectError::Pg(source) => AuditError::Connect {
                    url: url.clone(),
                    source,
                },
            },
        )?;
        Ok(Session {
            conn,
            url,
            lycee: settings.lycee,
        })
    }

    fn prepare(&mut self) -> Result<(), AuditError> {
        let Conn { rt, client, .. } = &mut self.conn;
        match rt.block_on(migrate::apply(client)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err((found, known))) => Err(AuditError::NewerSchema {
                url: self.url.clone(),
                found,
                known,
            }),
            Err(source) => Err(AuditError::Pg {
                url: self.url.clone(),
                source,
            }),
        }
    }

    fn thread_failed(url: &str, spawn: Option<std::io::Error>) -> AuditError {
        match spawn {
            Some(source) => AuditError::Thread {
                url: url.to_string(),
                source,
            },
            None => AuditError::Gone {
                url: url.to_string(),
            },
        }
    }

    fn close(self) {
        self.conn.close();
    }
}

impl Pg {
    /// Connects and applies the migrations.
    pub fn open(settings: Settings, tls: Tls) -> Result<Pg, AuditError> {
        let url = settings.url.clone();
        let lycee = settings.lycee.clone();
        let bridge = Bridge::open("parc-audit-pg", settings, tls)?;
        Ok(Pg { bridge, url, lycee })
    }

    pub fn location(&self) -> String {
        format!("{} (lycée {})", self.url, self.lycee)
    }

    /// Runs `f` (given the client and the lycée) on the connection's thread; a database error
    /// names the URL.
    fn call<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&mut Client, &str) -> Result<T, tokio_postgres::Error> + Send + 'static,
    ) -> Result<T, AuditError> {
        self.bridge
            .call(move |s: &mut Session| {
                let Conn { rt, client, .. } = &mut s.conn;
                rt.block_on(f(client, &s.lycee))
                    .map_err(|source| AuditError::Pg {
                        url: s.url.clone(),
                        source,
                    })
            })
            .map_err(|_| AuditError::Gone {
                url: self.url.clone(),
            })?
    }

    pub fn append(&self, entry: &Entry) -> Result<Stored, AuditError> {
        let entry = entry.clone();
        self.call(async move |client, lycee| {
            let tx = client.transaction().await?;
            lock_head(&tx, lycee).await?;
            let last = tx
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS} FROM audit_entries WHERE lycee = $1 ORDER BY seq DESC LIMIT 1"
                    ),
                    &[&lycee],
                )
                .await?
                .map(|r| stored(&r));
            let next = chain::next(last.as_ref(), &entry, crate::journal::now());
            insert(&tx, lycee, &next).await?;
            set_head(&tx, lycee, &next).await?;
            tx.commit().await?;
            Ok(next)
        })
    }

    pub fn list(&self, room: Option<&str>, since: Option<&str>) -> Result<Vec<Stored>, AuditError> {
        let (room, since) = (room.map(str::to_owned), since.map(str::to_owned));
        self.call(async move |client, lycee| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM audit_entries WHERE lycee = $1 \
                         AND ($2::TEXT IS NULL OR room = $2) AND ($3::TEXT IS NULL OR ts >= $3) \
                         ORDER BY seq"
                    ),
                    &[&lycee, &room, &since],
                )
                .await?;
            Ok(rows.iter().map(stored).collect())
        })
    }

    /// The lycée's chain against its head, read in one snapshot.
    pub fn verify(&self) -> Result<Result<Verified, Broken>, AuditError> {
        self.call(async move |client, lycee| {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let (entries, head) = chain_of(&tx, lycee).await?;
            tx.commit().await?;
            Ok(chain::check_exact(&entries, head))
        })
    }

    /// As the SQLite prune, holding the lycée's head row: refuses a chain that does not
    /// verify, replaces the entries older than `before` by an anchor.
    pub fn prune(
        &self,
        before: &str,
        actor: &str,
    ) -> Result<Result<PruneSummary, Broken>, AuditError> {
        let (before, actor) = (before.to_owned(), actor.to_owned());
        self.call(async move |client, lycee| {
            let tx = client.transaction().await?;
            lock_head(&tx, lycee).await?;
            let (entries, head) = chain_of(&tx, lycee).await?;
            if let Err(b) = chain::check_exact(&entries, head) {
                return Ok(Err(b));
            }
            // Compared here as SQLite compares text (bytes), whatever the database's collation.
            let old: Vec<Stored> = entries
                .iter()
                .filter(|e| e.ts.as_str() < before.as_str())
                .cloned()
                .collect();
            let Some((removed, anchor)) =
                chain::anchor(&old, &before, &actor, &crate::journal::now())
            else {
                return Ok(Ok(PruneSummary {
                    removed: 0,
                    anchor_seq: None,
                }));
            };
            tx.execute(
                "DELETE FROM audit_entries WHERE lycee = $1 AND seq <= $2",
                &[&lycee, &anchor.seq],
            )
            .await?;
            insert(&tx, lycee, &anchor).await?;
            if entries.last().map(|e| e.seq) == Some(anchor.seq) {
                set_head(&tx, lycee, &anchor).await?;
            }
            tx.commit().await?;
            Ok(Ok(PruneSummary {
                removed,
                anchor_seq: Some(anchor.seq),
            }))
        })
    }
}

impl Session {}

fn stored(r: &Row) -> Stored {
    Stored {
        seq: r.get(0),
        ts: r.get(1),
        room: r.get(2),
        action: r.get(3),
        subject: r.get(4),
        actor: r.get(5),
        detail: r.get(6),
        prev_hash: r.get(7),
        hash: r.get(8),
    }
}

/// Takes the lycée's head row (created, empty, on its first append); held until the
/// transaction ends.
async fn lock_head(tx: &impl GenericClient, lycee: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO audit_heads (lycee, seq, hash) VALUES ($1, 0, '') ON CONFLICT (lycee) DO NOTHING",
        &[&lycee],
    )
    .await?;
    tx.query_one(
        "SELECT seq FROM audit_heads WHERE lycee = $1 FOR UPDATE",
        &[&lycee],
    )
    .await?;
    Ok(())
}

async fn set_head(
    tx: &impl GenericClient,
    lycee: &str,
    e: &Stored,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "UPDATE audit_heads SET seq = $2, hash = $3 WHERE lycee = $1",
        &[&lycee, &e.seq, &e.hash],
    )
    .await
}

/// The lycée's entries in seq order and its head (none before its first append).
async fn chain_of(
    tx: &impl GenericClient,
    lycee: &str,
) -> Result<(Vec<Stored>, Option<(i64, String)>), tokio_postgres::Error> {
    let entries = tx
        .query(
            &format!("SELECT {COLUMNS} FROM audit_entries WHERE lycee = $1 ORDER BY seq"),
            &[&lycee],
        )
        .await?
        .iter()
        .map(stored)
        .collect();
    let head = tx
        .query_opt(
            "SELECT seq, hash FROM audit_heads WHERE lycee = $1 AND seq > 0",
            &[&lycee],
        )
        .await?
        .map(|r| (r.get(0), r.get(1)));
    Ok((entries, head))
}

async fn insert(
    tx: &impl GenericClient,
    lycee: &str,
    e: &Stored,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO audit_entries (lycee, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &lycee,
            &e.seq,
            &e.ts,
            &e.room,
            &e.action,
            &e.subject,
            &e.actor,
            &e.detail,
            &e.prev_hash,
            &e.hash,
        ],
    )
    .await
}
