//! Room locks across machines. A room's lock is two things held together:
//! - a row of `locks` keyed by (lycée, room) naming the holder (pid, host, since), written in
//!   a transaction that reads the old row `FOR UPDATE`: what another technician is told;
//! - a session advisory lock on a key hashed from (lycée, room), taken with
//!   `pg_try_advisory_lock` by the holder's connection and kept as long as it is open.
//!
//! The advisory lock is what excludes: while the holder's connection lives, nobody else gets
//! it and is refused with the row's name. When the holder dies, its connection closes (the
//! kernel closes a killed process's sockets; a vanished machine's session ends after the TCP
//! keepalives set at connect) and PostgreSQL releases the advisory lock; the row stays behind,
//! stale, and the next `acquire_lock` takes the advisory lock and takes the row over, saying
//! whose it was (a holder that died on this machine a moment ago may still have a session
//! ending on the server: it waits a little for it). A row of a live process on this very machine is never taken over, whatever
//! the advisory lock says (its connection may only have been cut).

use sha2::{Digest, Sha256};
use std::time::Duration;

use super::Session;
use super::seal::{LOCKS, reseal};
use crate::journal::{Holder, JournalError, process_alive};

/// The advisory lock key of a room: the first 8 bytes of a sha256 of (lycée, room).
pub fn lock_key(lycee: &str, room: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"parc room lock\0");
    h.update(lycee.as_bytes());
    h.update(b"\0");
    h.update(room.as_bytes());
    let d = h.finalize();
    i64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

/// How long a refused `acquire_lock` waits for the holder's row to appear (the holder takes
/// the advisory lock a moment before it writes its row, and releases it a moment after
/// deleting it), or for a dead holder's session to end.
const PATIENCE: Duration = Duration::from_secs(3);

fn holder_of(r: &tokio_postgres::Row) -> Result<Holder, tokio_postgres::Error> {
    Ok(Holder {
        pid: r.try_get::<_, i64>(0)? as u32,
        host: r.try_get(1)?,
        started: r.try_get(2)?,
        proc_start: r.try_get(3)?,
    })
}

const HOLDER: &str =
    "SELECT pid, host, started, proc_start FROM locks WHERE lycee = $1 AND room = $2";

impl Session {
    pub fn acquire_lock(
        &mut self,
        room: &str,
        me: &Holder,
    ) -> Result<Option<Holder>, JournalError> {
        let key = lock_key(&self.lycee, room);
        let locked = |holder| JournalError::Locked {
            room: room.to_string(),
            holder,
        };
        let newly = !self.held.contains_key(room);
        if newly {
            let waited = std::time::Instant::now();
            loop {
                let got: bool = self
                    .rt
                    .block_on(
                        self.client
                            .query_one("SELECT pg_try_advisory_lock($1)", &[&key]),
                    )
                    .map_err(|e| self.err(e))?
                    .get(0);
                if got {
                    break;
                }
                let patience_left = waited.elapsed() < PATIENCE;
                if let Some(h) = self.lock_holder(room)? {
                    // A dead process of this machine: its session is ending (the server
                    // releases the advisory lock when its backend exits); wait for that.
                    let dead_here = h.host == crate::journal::hostname() && !process_alive(&h);
                    if !(dead_here && patience_left) {
                        return Err(locked(h));
                    }
                } else if !patience_left {
                    return Err(locked(Holder {
                        pid: 0,
                        host: "an unnamed session of the journal database".into(),
                        started: "an unknown time".into(),
                        proc_start: String::new(),
                    }));
                }
                // The timer is made inside the runtime (made outside, it has no reactor), and
                // the connection is driven meanwhile.
                self.rt.block_on(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
            }
        }
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let outcome = rt.block_on(async {
            let tx = client.transaction().await?;
            let existing = match tx
                .query_opt(&format!("{HOLDER} FOR UPDATE"), &[&lycee, &room])
                .await?
            {
                Some(r) => Some(holder_of(&r)?),
                None => None,
            };
            let mut took_over = None;
            if let Some(h) = existing {
                let mine = h.pid == me.pid && h.host == me.host;
                let alive_here = h.host == crate::journal::hostname() && process_alive(&h);
                if !mine && alive_here {
                    return Ok(Err(h));
                }
                if !mine {
                    took_over = Some(h);
                }
            }
            tx.execute(
                "INSERT INTO locks (lycee, room, pid, host, proc_start, started) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (lycee, room) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, \
                 proc_start = EXCLUDED.proc_start, started = EXCLUDED.started",
                &[&lycee, &room, &i64::from(me.pid), &me.host, &me.proc_start, &me.started],
            )
            .await?;
            reseal(&tx, &LOCKS, lycee, "room = $2", &room).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(Ok(took_over))
        });
        match outcome {
            Ok(Ok(took_over)) => {
                self.held
                    .insert(room.to_string(), (me.pid, me.host.clone()));
                Ok(took_over)
            }
            Ok(Err(holder)) => {
                if newly {
                    self.unlock(key)?;
                }
                Err(locked(holder))
            }
            Err(e) => {
                if newly {
                    let _ = self.unlock(key);
                }
                Err(self.err(e))
            }
        }
    }

    fn unlock(&mut self, key: i64) -> Result<(), JournalError> {
        self.rt
            .block_on(
                self.client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key]),
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn release_lock(&mut self, room: &str, me: &Holder) -> Result<(), JournalError> {
        self.rt
            .block_on(self.client.execute(
                "DELETE FROM locks WHERE lycee = $1 AND room = $2 AND pid = $3 AND host = $4",
                &[&self.lycee, &room, &i64::from(me.pid), &me.host],
            ))
            .map_err(|e| self.err(e))?;
        if self.held.get(room) == Some(&(me.pid, me.host.clone())) {
            self.unlock(lock_key(&self.lycee, room))?;
            self.held.remove(room);
        }
        Ok(())
    }

    pub fn lock_holder(&mut self, room: &str) -> Result<Option<Holder>, JournalError> {
        let row = self
            .rt
            .block_on(self.client.query_opt(HOLDER, &[&self.lycee, &room]))
            .map_err(|e| self.err(e))?;
        row.map(|r| holder_of(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_room_lock_key_is_per_lycee_and_room() {
        use super::lock_key;
        assert_eq!(lock_key("0840042X", "b204"), lock_key("0840042X", "b204"));
        assert_ne!(lock_key("0840042X", "b204"), lock_key("0840043Y", "b204"));
        assert_ne!(lock_key("0840042X", "b204"), lock_key("0840042X", "b205"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(lock_key("ab", "c"), lock_key("a", "bc"));
    }
}
