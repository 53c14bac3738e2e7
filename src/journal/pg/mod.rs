//! The PostgreSQL backend: the journal in a database that several lycées (rows keyed by the
//! UAI) and several technicians' machines share, through `tokio-postgres`.
//!
//! ## Sync over async
//! [`super::Journal`]'s API is synchronous and is called both from plain threads and from
//! inside tokio tasks (the engine holds it in a `Mutex` across its steps): the client lives on
//! a thread of its own, each method a job sent to it over the shared
//! [`Bridge`](crate::state::pg::Bridge) (see its module comment). Dropping the journal ends
//! the thread, which closes the connection (releasing its session's advisory locks).
//!
//! ## Files
//! `seal.rs` seals rows as the SQLite backend does; `journal.rs` holds runs and attempts;
//! `lock.rs` the room locks across machines. The migrations are shared with the audit log's
//! tables (`crate::state::pg::migrate`).

mod journal;
mod lock;
mod seal;

use std::collections::HashMap;

use crate::domain::procedure::Step;
use crate::state::pg::{Bridge, ConnectError, Settings, Tls, migrate};

use super::{AttemptRow, Ending, Holder, JournalError, RunRow};

/// The caller's side: sends jobs to the connection's thread.
pub struct Pg {
    bridge: Bridge<Session>,
    url: String,
    lycee: String,
}

/// The connection's side, owned by its thread.
pub struct Session {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
    url: String,
    lycee: String,
    /// The rooms whose advisory lock this session holds, with the holder (pid, host) it took
    /// them for.
    held: HashMap<String, (u32, String)>,
}

impl Pg {
    /// Connects (trusting `tls` for the server's certificate), applies the migrations and
    /// checks the lycée's rows against their seals.
    pub fn open(settings: Settings, tls: Tls) -> Result<Pg, JournalError> {
        let url = settings.url.clone();
        let lycee = settings.lycee.clone();
        let bridge = Bridge::open("parc-journal-pg", settings, tls)?;
        Ok(Pg { bridge, url, lycee })
    }

    pub fn location(&self) -> String {
        format!("{} (lycée {})", self.url, self.lycee)
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        self.bridge.call(f).map_err(|_| JournalError::Gone {
            url: self.url.clone(),
        })?
    }

    pub fn acquire_lock(
        &mut self,
        room: &str,
        me: &Holder,
    ) -> Result<Option<Holder>, JournalError> {
        let (room, me) = (room.to_owned(), me.clone());
        self.call(move |s| s.acquire_lock(&room, &me))
    }

    pub fn release_lock(&self, room: &str, me: &Holder) -> Result<(), JournalError> {
        let (room, me) = (room.to_owned(), me.clone());
        self.call(move |s| s.release_lock(&room, &me))
    }

    pub fn lock_holder(&self, room: &str) -> Result<Option<Holder>, JournalError> {
        let room = room.to_owned();
        self.call(move |s| s.lock_holder(&room))
    }

    pub fn close_dead_runs(&self, room: &str) -> Result<Vec<i64>, JournalError> {
        let room = room.to_owned();
        self.call(move |s| s.close_dead_runs(&room))
    }

    pub fn start_run(
        &self,
        room: &str,
        recipe_digest: &str,
        who: &str,
        holder: &Holder,
        selection: &str,
    ) -> Result<i64, JournalError> {
        let run = journal::NewRun {
            room: room.to_owned(),
            recipe_digest: recipe_digest.to_owned(),
            who: who.to_owned(),
            host: holder.host.clone(),
            pid: holder.pid,
            selection: selection.to_owned(),
        };
        self.call(move |s| s.start_run(&run))
    }

    pub fn finish_run(&self, id: i64, outcome: &str, detail: &str) -> Result<(), JournalError> {
        let (outcome, detail) = (outcome.to_owned(), detail.to_owned());
        self.call(move |s| s.finish_run(id, &outcome, &detail))
    }

    pub fn runs(&self, room: Option<&str>) -> Result<Vec<RunRow>, JournalError> {
        let room = room.map(str::to_owned);
        self.call(move |s| s.runs(room.as_deref()))
    }

    pub fn run(&self, id: i64) -> Result<RunRow, JournalError> {
        self.call(move |s| s.run(id))
    }

    pub fn start_attempt(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        log_path: Option<&str>,
    ) -> Result<i64, JournalError> {
        let a = journal::NewAttempt {
            run,
            step: step.as_str(),
            host: host.map(str::to_owned),
            key: key.to_owned(),
            log_path: log_path.map(str::to_owned),
            skipped: None,
        };
        self.call(move |s| s.insert_attempt(&a))
    }

    pub fn skip(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        why: &str,
    ) -> Result<i64, JournalError> {
        let a = journal::NewAttempt {
            run,
            step: step.as_str(),
            host: host.map(str::to_owned),
            key: key.to_owned(),
            log_path: None,
            skipped: Some(why.to_owned()),
        };
        self.call(move |s| s.insert_attempt(&a))
    }

    pub fn finish_attempt(
        &self,
        id: i64,
        status: &str,
        end: &Ending<'_>,
    ) -> Result<(), JournalError> {
        let status = status.to_owned();
        let message = end.message.to_owned();
        let chain = end.error_chain.join("\n");
        let image = end.image.map(str::to_owned);
        self.call(move |s| s.finish_attempt(id, &status, &message, &chain, image.as_deref()))
    }

    pub fn attempts(&self, run: i64) -> Result<Vec<AttemptRow>, JournalError> {
        self.call(move |s| s.attempts(run))
    }

    pub fn room_attempts(&self, room: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let room = room.to_owned();
        self.call(move |s| s.room_attempts(&room))
    }
}

impl Session {
    fn err(&self, source: tokio_postgres::Error) -> JournalError {
        JournalError::Pg {
            url: self.url.clone(),
            source,
        }
    }
}

impl crate::state::pg::Session for Session {
    type Error = JournalError;

    fn connect(settings: Settings, tls: Tls) -> Result<Session, JournalError> {
        let url = settings.url;
        let conn = crate::state::pg::connect(&url, settings.password.as_ref(), &tls).map_err(
            |e| match e {
                ConnectError::Runtime(source) => JournalError::Thread {
                    url: url.clone(),
                    source,
                },
                ConnectError::Pg(source) => JournalError::Connect {
                    url: url.clone(),
                    source,
                },
            },
        )?;
        Ok(Session {
            rt: conn.rt,
            client: conn.client,
            connection: conn.connection,
            url,
            lycee: settings.lycee,
            held: HashMap::new(),
        })
    }

    /// Migrations, then every row of the lycée against its seal.
    fn prepare(&mut self) -> Result<(), JournalError> {
        let (rt, client) = (&self.rt, &mut self.client);
        match rt.block_on(migrate::apply(client)) {
            Ok(Ok(())) => {}
            Ok(Err((found, known))) => {
                return Err(JournalError::NewerSchema {
                    url: self.url.clone(),
                    found,
                    known,
                });
            }
            Err(e) => return Err(self.err(e)),
        }
        let broken = rt
            .block_on(seal::first_broken(&self.client, &self.lycee))
            .map_err(|e| self.err(e))?;
        match broken {
            None => Ok(()),
            Some(detail) => Err(JournalError::DamagedDb {
                url: self.url.clone(),
                lycee: self.lycee.clone(),
                detail,
            }),
        }
    }

    fn thread_failed(url: &str, spawn: Option<std::io::Error>) -> JournalError {
        match spawn {
            Some(source) => JournalError::Thread {
                url: url.to_string(),
                source,
            },
            None => JournalError::Gone {
                url: url.to_string(),
            },
        }
    }

    /// Ends the session: the server then releases its advisory locks.
    fn close(self) {
        crate::state::pg::Conn {
            rt: self.rt,
            client: self.client,
            connection: self.connection,
        }
        .close();
    }
}
