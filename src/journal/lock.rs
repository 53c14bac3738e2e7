//! Room locks: one `parc master` per room at a time. A lock whose process is dead (same
//! machine, pid gone or reused) is stale and taken over.

use rusqlite::{OptionalExtension, TransactionBehavior};

use super::{JournalError, Sqlite, now};

/// Who holds (or wants) a room's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// When the process took the lock.
    pub started: String,
    /// The process's start time as the kernel reports it (tells a reused pid apart).
    pub proc_start: String,
}

impl Holder {
    /// This process.
    pub fn me() -> Self {
        let pid = std::process::id();
        Holder {
            pid,
            host: hostname(),
            started: now(),
            proc_start: proc_start(pid).unwrap_or_default(),
        }
    }
}

/// The machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes a NUL-terminated name.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The start time (clock ticks since boot) of a live process, from `/proc/<pid>/stat`;
/// `None` when the process does not exist or is a zombie.
fn proc_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after the last ')' are plain:
    // state is field 3, starttime field 22.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.nth(18).map(str::to_string)
}

/// Whether the process that took a lock is still alive on this machine.
pub fn process_alive(holder: &Holder) -> bool {
    if holder.host != hostname() {
        // Another machine's process: we cannot tell, so it is held.
        return true;
    }
    if std::path::Path::new("/proc/self/stat").exists() {
        return proc_start(holder.pid)
            .is_some_and(|start| holder.proc_start.is_empty() || start == holder.proc_start);
    }
    // No /proc: ask the kernel whether the pid exists.
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(holder.pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Sqlite {
    /// Takes the room's lock. Returns the stale holder it took over, if any; fails with
    /// [`JournalError::Locked`] while a live process holds it.
    pub fn acquire_lock(
        &mut self,
        room: &str,
        me: &Holder,
    ) -> Result<Option<Holder>, JournalError> {
        let path = self.path.clone();
        let err = |source| JournalError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let existing: Option<Holder> = tx
            .query_row(
                "SELECT pid, host, started, proc_start FROM locks WHERE room = ?1",
                [room],
                |r| {
                    Ok(Holder {
                        pid: r.get(0)?,
                        host: r.get(1)?,
                        started: r.get(2)?,
                        proc_start: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(err)?;
        let mut took_over = None;
        if let Some(h) = existing {
            let mine = h.pid == me.pid && h.host == me.host;
            if !mine && process_alive(&h) {
                return Err(JournalError::Locked {
                    room: room.to_string(),
                    holder: h,
                });
            }
            if !mine {
                took_over = Some(h);
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO locks (room, pid, host, proc_start, started) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![room, me.pid, me.host, me.proc_start, me.started],
        )
        .map_err(err)?;
        super::seal::reseal(&tx, "locks", "room = ?1", [room]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(took_over)
    }

    /// Releases the room's lock if this holder has it.
    pub fn release_lock(&self, room: &str, me: &Holder) -> Result<(), JournalError> {
        self.sql(|c| {
            c.execute(
                "DELETE FROM locks WHERE room = ?1 AND pid = ?2 AND host = ?3",
                rusqlite::params![room, me.pid, me.host],
            )
            .map(|_| ())
        })
    }

    /// The current holder of a room's lock, if any (alive or not).
    pub fn lock_holder(&self, room: &str) -> Result<Option<Holder>, JournalError> {
        self.sql(|c| {
            c.query_row(
                "SELECT pid, host, started, proc_start FROM locks WHERE room = ?1",
                [room],
                |r| {
                    Ok(Holder {
                        pid: r.get(0)?,
                        host: r.get(1)?,
                        started: r.get(2)?,
                        proc_start: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }
}
