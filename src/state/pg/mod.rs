//! What the PostgreSQL backends (the journal's, the audit log's) share: the connection's own
//! thread ([`Bridge`]), connecting ([`connect`]) and the schema's migrations (`migrate.rs`,
//! `migrations/*.sql`, one sequence for every table parc keeps there).
//!
//! ## Sync over async
//! The journal's and the audit log's APIs are synchronous and are called both from plain
//! threads and from inside tokio tasks. Calling a runtime's `block_on` on the caller's thread
//! would panic inside a runtime ("cannot start a runtime from within a runtime") and would
//! starve the caller's executor. So the client lives on a thread of its own
//! ([`Bridge::start`] spawns it), with its own current-thread runtime that also drives the
//! connection. Each call sends a job (a closure over the backend's session) on a std channel
//! and waits on a one-slot std channel for the reply: no runtime on the caller's side, only a
//! blocking wait of one round trip, as the SQLite backends block on their file. Jobs run one
//! at a time, in order, so one call's transaction is never interleaved with another's.
//! Dropping the bridge closes the channel: the thread closes the session (and so the
//! connection, which releases its advisory locks) and is joined.
//!
//! ## TLS
//! [`connect`] goes through rustls (`tokio-postgres-rustls`). Whenever TLS is used the
//! server's certificate is verified, its chain up to the system's CAs or `[state] ca` and the
//! host name of the URL: libpq's `verify-full`, whatever `sslmode` says. A TCP URL without
//! `sslmode` requires TLS; `sslmode=prefer` uses it when the server offers it (verified) and
//! `disable` never; a URL whose hosts are all unix sockets never uses it (PostgreSQL offers
//! none there), whatever `sslmode` says. See `docs/state.md`.

pub mod migrate;
pub mod store;

use std::sync::mpsc;
use std::time::Duration;

use std::sync::Arc;

use tokio_postgres::config::{Host, SslMode};

use crate::ports::SecretBytes;

/// A CA certificate (DER) trusted for the database server's certificate.
pub type Certificate = rustls::pki_types::CertificateDer<'static>;

/// Where a backend connects: the URL (never with a password), the password, the lycée whose
/// rows it reads and writes.
pub struct Settings {
    pub url: String,
    pub password: Option<SecretBytes>,
    pub lycee: String,
}

/// Whom a backend trusts for the server's certificate when it uses TLS, besides the system's
/// CAs: `[state] ca` (none by default).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca: Vec<Certificate>,
}

/// What a backend keeps on the connection's thread.
pub trait Session: Sized + 'static {
    /// The backend's error.
    type Error: Send + 'static;

    /// Connects (on the connection's thread), trusting `tls` for the server's certificate.
    fn connect(settings: Settings, tls: Tls) -> Result<Self, Self::Error>;

    /// Readies the database once connected: the migrations, the backend's own checks.
    fn prepare(&mut self) -> Result<(), Self::Error>;

    /// The error of a connection thread that could not be spawned (`Some`) or ended.
    fn thread_failed(url: &str, spawn: Option<std::io::Error>) -> Self::Error;

    /// Ends the session (closing its connection).
    fn close(self);
}

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// The caller's side of a connection's thread: sends it jobs.
pub struct Bridge<S: Session> {
    jobs: Option<mpsc::Sender<Job<S>>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// The connection's thread ended (it panicked, or could not start).
#[derive(Debug)]
pub struct Gone;

/// Why [`Bridge::start`] failed.
enum StartError<E> {
    /// The session could not be opened (its own error).
    Open(E),
    /// The thread could not be spawned.
    Thread(std::io::Error),
    Gone,
}

impl<S: Session> Bridge<S> {
    /// Spawns the thread `name`, connects there and readies the database; returns once the
    /// session is ready (or failed to be).
    pub fn open(name: &str, settings: Settings, tls: Tls) -> Result<Self, S::Error> {
        let url = settings.url.clone();
        Self::start(name, move || {
            let mut session = S::connect(settings, tls)?;
            match session.prepare() {
                Ok(()) => Ok(session),
                Err(e) => {
                    session.close();
                    Err(e)
                }
            }
        })
        .map_err(|e| match e {
            StartError::Open(e) => e,
            StartError::Thread(source) => S::thread_failed(&url, Some(source)),
            StartError::Gone => S::thread_failed(&url, None),
        })
    }

    /// Spawns the thread `name`, opens the session there with `open`, and returns once it is
    /// open (or failed to).
    fn start<E: Send + 'static>(
        name: &str,
        open: impl FnOnce() -> Result<S, E> + Send + 'static,
    ) -> Result<Self, StartError<E>> {
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), E>>(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job<S>>();
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut session = match open() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = jobs_rx.recv() {
                    job(&mut session);
                }
                session.close();
            })
            .map_err(StartError::Thread)?;
        let mut bridge = Bridge {
            jobs: Some(jobs_tx),
            worker: Some(worker),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(bridge),
            Ok(Err(e)) => {
                bridge.stop();
                Err(StartError::Open(e))
            }
            Err(_) => {
                bridge.stop();
                Err(StartError::Gone)
            }
        }
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, Gone> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job<S> = Box::new(move |s: &mut S| {
            let _ = tx.send(f(s));
        });
        self.jobs
            .as_ref()
            .ok_or(Gone)?
            .send(job)
            .map_err(|_| Gone)?;
        rx.recv().map_err(|_| Gone)
    }

    fn stop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl<S: Session> Drop for Bridge<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An open connection, on the thread that made it: its runtime, the client, and the task
/// driving the connection (it runs whenever the thread runs a job on `rt`).
pub struct Conn {
    pub rt: tokio::runtime::Runtime,
    pub client: tokio_postgres::Client,
    pub connection: tokio::task::JoinHandle<()>,
}

/// Why [`connect`] failed.
pub enum ConnectError {
    /// The runtime could not be built.
    Runtime(std::io::Error),
    /// The URL is not one, or the server refused or did not answer.
    Pg(tokio_postgres::Error),
}

/// The TLS mode a connection to `url` (read as `config`) uses: none over unix sockets only;
/// over TCP the URL's `sslmode`, `require` when it says none.
pub fn ssl_mode(url: &str, config: &tokio_postgres::Config) -> SslMode {
    let all_unix = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(_) => false,
    });
    if all_unix {
        SslMode::Disable
    } else if crate::state::sslmode(url).is_none() {
        SslMode::Require
    } else {
        config.get_ssl_mode()
    }
}

/// The TLS client: the server's certificate verified (chain, host name) against the system's
/// CAs and `ca`. With `system` false, `ca` only (a connection that will not use TLS need not
/// read the system's).
fn tls_connector(ca: &[Certificate], system: bool) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    if system {
        // Unreadable system certificates are skipped: a server signed by one of them is then
        // refused as "unknown issuer", which names the problem.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    roots.add_parsable_certificates(ca.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// What to do about a connection refused because of the server's certificate (`e` or one of
/// its causes is rustls's verdict on it), for the error's hint.
pub fn certificate_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(e);
    while let Some(e) = next {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<rustls::Error>()
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = tls {
            return Some(match why {
                rustls::CertificateError::UnknownIssuer => {
                    "the server's certificate is signed by a CA this machine does not trust: set `ca` in [state] to the region's CA file (PEM)"
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "the server's certificate does not name the host of `url`: use the name the certificate carries"
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired (or this machine's clock is wrong)"
                }
                _ => {
                    "parc verifies the database server's certificate whenever it uses TLS: see docs/state.md"
                }
            });
        }
        next = e.source();
    }
    None
}

/// Connects to `url` (with `password` when the server asks for one), on the calling thread's
/// own new runtime, through TLS as [`ssl_mode`] says, the server's certificate verified
/// against the system's CAs and `ca`. TCP sessions get keepalives of about a minute.
pub fn connect(url: &str, password: Option<&SecretBytes>, tls: &Tls) -> Result<Conn, ConnectError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ConnectError::Runtime)?;
    let mut config: tokio_postgres::Config = url.parse().map_err(ConnectError::Pg)?;
    if let Some(p) = password {
        config.password(&p.0);
    }
    let mode = ssl_mode(url, &config);
    config.ssl_mode(mode);
    let tls = tls_connector(&tls.ca, mode != SslMode::Disable);
    config
        .application_name(format!(
            "parc pid {} on {}",
            std::process::id(),
            crate::journal::hostname()
        ))
        .connect_timeout(Duration::from_secs(15))
        .keepalives_idle(Duration::from_secs(30));
    let (client, connection) = rt.block_on(config.connect(tls)).map_err(ConnectError::Pg)?;
    let connection = rt.spawn(async move {
        let _ = connection.await;
    });
    // A machine that vanishes (power cut, cable) leaves its session, and so its locks, until
    // the server notices: make that about a minute rather than the kernel's two hours.
    // Unix-socket sessions ignore these.
    rt.block_on(client.batch_execute(
        "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3",
    ))
    .map_err(ConnectError::Pg)?;
    Ok(Conn {
        rt,
        client,
        connection,
    })
}

impl Conn {
    /// Ends the session: the server then releases its advisory locks.
    pub fn close(self) {
        let Conn {
            rt,
            client,
            connection,
        } = self;
        drop(client);
        let _ =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), connection).await });
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode;

    fn mode(url: &str) -> SslMode {
        super::ssl_mode(url, &url.parse().expect("a URL"))
    }

    #[test]
    fn tls_is_required_over_tcp_unless_said_and_never_over_a_unix_socket() {
        assert_eq!(mode("postgresql://parc@db/parc"), SslMode::Require);
        assert_eq!(
            mode("postgresql://parc@db/parc?sslmode=prefer"),
            SslMode::Prefer
        );
        assert_eq!(
            mode("postgresql://parc@db/parc?sslmode=disable"),
            SslMode::Disable
        );
        assert_eq!(
            mode("postgresql://parc@/parc?host=/run/postgresql&sslmode=require"),
            SslMode::Disable
        );
        assert_eq!(
            mode("postgresql://parc@/parc?host=/run/postgresql"),
            SslMode::Disable
        );
    }
}
