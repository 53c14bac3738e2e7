//! The PostgreSQL backend: the journal in a database that several lycées (rows keyed by the
//! UAI) and several technicians' machines share, through `tokio-postgres`.
//!
//! ## Sync over async
//! [`super::Journal`]'s API is synchronous and is called both from plain threads and from
//! inside tokio tasks (the engine holds it in a `Mutex` across its steps). Calling a runtime's
//! `block_on` on the caller's thread would panic inside a runtime ("cannot start a runtime
//! from within a runtime") and would starve the caller's executor. So the client lives on a
//! thread of its own ([`Pg::open`] spawns it), with its own current-thread runtime that also
//! drives the connection. Each method sends a job (a closure over the [`Session`]) on a
//! std channel and waits on a one-slot std channel for the reply: no runtime on the caller's
//! side, only a blocking wait of one round trip, as the SQLite backend blocks on its file.
//! Jobs run one at a time, in order, so a method's transaction is never interleaved with
//! another's. Dropping the journal closes the channel: the thread closes the connection (which
//! releases its session's advisory locks) and is joined.
//!
//! ## Files
//! `migrate.rs` applies `migrations/*.sql`; `seal.rs` seals rows as the SQLite backend does;
//! `journal.rs` holds runs and attempts; `lock.rs` the room locks across machines.

mod journal;
mod lock;
mod migrate;
mod seal;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use crate::domain::procedure::Step;
use crate::ports::SecretBytes;

use super::{AttemptRow, Ending, Holder, JournalError, RunRow};

/// What [`Pg::open`] needs: the URL (never with a password), the password, the lycée.
pub struct Settings {
    pub url: String,
    pub password: Option<SecretBytes>,
    pub lycee: String,
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The caller's side: sends jobs to the connection's thread.
pub struct Pg {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
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
    /// Connects, applies the migrations and checks the lycée's rows against their seals.
    pub fn open(settings: Settings) -> Result<Pg, JournalError> {
        let url = settings.url.clone();
        let lycee = settings.lycee.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), JournalError>>(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("parc-journal-pg".into())
            .spawn(move || {
                let mut session = match Session::connect(settings) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let ready = session.prepare();
                let failed = ready.is_err();
                let _ = ready_tx.send(ready);
                if !failed {
                    while let Ok(job) = jobs_rx.recv() {
                        job(&mut session);
                    }
                }
                session.close();
            })
            .map_err(|source| JournalError::Thread {
                url: url.clone(),
                source,
            })?;
        let mut pg = Pg {
            jobs: Some(jobs_tx),
            worker: Some(worker),
            url,
            lycee,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(pg),
            Ok(Err(e)) => {
                pg.stop();
                Err(e)
            }
            Err(_) => {
                pg.stop();
                Err(JournalError::Gone {
                    url: pg.url.clone(),
                })
            }
        }
    }

    pub fn location(&self) -> String {
        format!("{} (lycée {})", self.url, self.lycee)
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let gone = || JournalError::Gone {
            url: self.url.clone(),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |s: &mut Session| {
            let _ = tx.send(f(s));
        });
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    fn stop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
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

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Session {
    fn connect(settings: Settings) -> Result<Session, JournalError> {
        let url = settings.url;
        let connect_err = |source| JournalError::Connect {
            url: url.clone(),
            source,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| JournalError::Thread {
                url: url.clone(),
                source,
            })?;
        let mut config: tokio_postgres::Config = url.parse().map_err(connect_err)?;
        if let Some(p) = &settings.password {
            config.password(&p.0);
        }
        config
            .application_name(format!(
                "parc pid {} on {}",
                std::process::id(),
                super::hostname()
            ))
            .connect_timeout(Duration::from_secs(15))
            .keepalives_idle(Duration::from_secs(30));
        let (client, connection) = rt
            .block_on(config.connect(tokio_postgres::NoTls))
            .map_err(connect_err)?;
        // The connection is driven whenever this thread runs a job (current-thread runtime).
        let connection = rt.spawn(async move {
            let _ = connection.await;
        });
        let session = Session {
            rt,
            client,
            connection,
            url: url.clone(),
            lycee: settings.lycee,
            held: HashMap::new(),
        };
        // A machine that vanishes (power cut, cable) leaves its session, and so its room
        // locks, until the server notices: make that about a minute rather than the kernel's
        // two hours. Unix-socket sessions ignore these.
        session
            .rt
            .block_on(session.client.batch_execute(
                "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3",
            ))
            .map_err(connect_err)?;
        Ok(session)
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

    fn err(&self, source: tokio_postgres::Error) -> JournalError {
        JournalError::Pg {
            url: self.url.clone(),
            source,
        }
    }

    /// Ends the session: the server then releases its advisory locks.
    fn close(self) {
        let Session {
            rt,
            client,
            connection,
            ..
        } = self;
        drop(client);
        let _ =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), connection).await });
    }
}
