//! The SSH adapter (russh): connects to hosts with parc's ed25519 key, only when the host's
//! key matches the one pinned in the workspace's known-hosts, retrying the connection (and
//! only the connection) when the host is unreachable, with a bound on how many hosts are
//! connected at once. Commands, uploads and downloads are in [`host`].

pub mod client_key;
pub mod error;
pub mod host;
pub mod known_hosts;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::sync::Semaphore;

pub use error::SshError;
pub use host::SshHost;

use crate::ports::{HostAddress, PortErrorKind, PortResult, RemoteConnector, RemoteHost};

/// How the connector behaves.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Upper bound for one connection attempt (TCP + key exchange + authentication).
    pub connect_timeout: Duration,
    /// Connection attempts when the host is unreachable (1 = no retry).
    pub connect_attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub retry_delay: Duration,
    /// How many hosts may be connected at once; further `connect`s wait.
    pub max_hosts: usize,
    /// Open the TCP connections inside this network namespace (the lab's server namespace,
    /// `/run/netns/<name>`), the rest of the process staying where it is.
    pub netns: Option<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            connect_attempts: 3,
            retry_delay: Duration::from_millis(500),
            max_hosts: 16,
            netns: None,
        }
    }
}

/// Opens SSH sessions for the engine (`RemoteConnector`).
pub struct SshConnector {
    key: Arc<PrivateKey>,
    known_hosts: PathBuf,
    options: SshOptions,
    slots: Arc<Semaphore>,
    /// `address:port` of hosts parc has just imaged: their next key is pinned (see
    /// `RemoteConnector::expect_new_key`).
    fresh: Mutex<std::collections::HashSet<String>>,
}

/// Path of the pinned host keys in a workspace state folder (`<workspace>/.parc`).
pub fn known_hosts_path(state_dir: &Path) -> PathBuf {
    state_dir.join("known_hosts")
}

impl SshConnector {
    /// A connector using the workspace state folder `<workspace>/.parc`: parc's key in
    /// `ssh/id_ed25519` (generated on first use) and pinned keys in `known_hosts`.
    pub fn open(state_dir: &Path, options: SshOptions) -> Result<Self, SshError> {
        let key = client_key::load_or_generate(state_dir)?;
        Ok(Self {
            key: Arc::new(key),
            known_hosts: known_hosts_path(state_dir),
            slots: Arc::new(Semaphore::new(options.max_hosts.max(1))),
            options,
            fresh: Mutex::new(Default::default()),
        })
    }

    /// parc's public key line, to install in the hosts' `authorized_keys`.
    pub fn public_key_line(&self) -> String {
        client_key::public_line(&self.key)
    }

    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// Connects to `host`, retrying only while it is unreachable.
    pub async fn connect_host(&self, host: &HostAddress) -> Result<SshHost, SshError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the connector's semaphore is never closed");
        let mut delay = self.options.retry_delay;
        let mut attempt = 1;
        loop {
            match self.connect_once(host).await {
                Ok(handle) => return Ok(SshHost::new(host.clone(), handle, permit)),
                // Only "could not reach it" is retried; a refusal (host key, authentication)
                // is final.
                Err(e)
                    if e.kind() == PortErrorKind::Unreachable
                        || e.kind() == PortErrorKind::Timeout =>
                {
                    if attempt >= self.options.connect_attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_once(&self, host: &HostAddress) -> Result<client::Handle<Pinned>, SshError> {
        let label = label(host);
        let pattern = known_hosts::host_pattern(&host.address, host.port);
        let fresh = self
            .fresh
            .lock()
            .map(|f| f.contains(&pattern))
            .unwrap_or(false);
        if fresh {
            let key = fetch_host_key_in(
                host,
                self.options.connect_timeout,
                self.options.netns.as_deref(),
            )
            .await?;
            known_hosts::pin(&self.known_hosts, &host.address, host.port, &key)?;
            if let Ok(mut f) = self.fresh.lock() {
                f.remove(&pattern);
            }
        }
        let pinned = known_hosts::lookup(&self.known_hosts, &host.address, host.port)?;
        let offered = Arc::new(Mutex::new(None));
        let handler = Pinned {
            pinned: pinned.clone(),
            offered: offered.clone(),
        };
        let config = Arc::new(client::Config::default());
        let secs = self.options.connect_timeout.as_secs();
        let attempt = async {
            let stream = tcp(host, self.options.netns.as_deref())
                .await
                .map_err(|e| SshError::Connect {
                    host: label.clone(),
                    source: Box::new(e),
                })?;
            let mut handle = client::connect_stream(config, stream, handler)
                .await
                .map_err(|e| {
                    host_key_error(host, &label, &pinned, &offered).unwrap_or_else(|| {
                        SshError::Connect {
                            host: label.clone(),
                            source: Box::new(e),
                        }
                    })
                })?;
            let key = PrivateKeyWithHashAlg::new(self.key.clone(), None);
            let auth = handle
                .authenticate_publickey(host.user.clone(), key)
                .await
                .map_err(|source| SshError::Session {
                    host: label.clone(),
                    source,
                })?;
            if !auth.success() {
                return Err(SshError::Auth {
                    host: label.clone(),
                    user: host.user.clone(),
                });
            }
            Ok(handle)
        };
        match tokio::time::timeout(self.options.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(SshError::ConnectTimeout {
                host: label,
                seconds: secs,
            }),
        }
    }
}

#[async_trait]
impl RemoteConnector for SshConnector {
    async fn connect(&self, host: &HostAddress) -> PortResult<Box<dyn RemoteHost>> {
        Ok(Box::new(self.connect_host(host).await?))
    }

    async fn expect_new_key(&self, host: &HostAddress) -> PortResult<()> {
        if let Ok(mut f) = self.fresh.lock() {
            f.insert(known_hosts::host_pattern(&host.address, host.port));
        }
        Ok(())
    }
}

/// `name (address:port)`, how errors name a host.
pub fn label(host: &HostAddress) -> String {
    format!("{} ({}:{})", host.hostname, host.address, host.port)
}

fn host_key_error(
    host: &HostAddress,
    label: &str,
    pinned: &Option<PublicKey>,
    offered: &Mutex<Option<PublicKey>>,
) -> Option<SshError> {
    let offered = offered.lock().ok()?.clone()?;
    match pinned {
        None => Some(SshError::UnknownHostKey {
            host: label.to_owned(),
            name: host.hostname.clone(),
            fingerprint: known_hosts::fingerprint(&offered),
        }),
        Some(p) if p.key_data() != offered.key_data() => Some(SshError::ChangedHostKey {
            host: label.to_owned(),
            name: host.hostname.clone(),
            pinned: known_hosts::fingerprint(p),
            offered: known_hosts::fingerprint(&offered),
        }),
        Some(_) => None,
    }
}

/// Accepts the server only if its key is the pinned one; remembers what was offered.
pub(crate) struct Pinned {
    pinned: Option<PublicKey>,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            return Ok(false);
        };
        if let Ok(mut o) = self.offered.lock() {
            *o = Some(key.clone());
        }
        Ok(self
            .pinned
            .as_ref()
            .is_some_and(|p| p.key_data() == key.key_data()))
    }
}

/// A TCP connection to `host`, opened inside network namespace `netns` if given (by a
/// short-lived thread that enters it: a socket stays in the namespace it was made in).
async fn tcp(host: &HostAddress, netns: Option<&str>) -> std::io::Result<tokio::net::TcpStream> {
    let Some(ns) = netns else {
        return tokio::net::TcpStream::connect((host.address.as_str(), host.port)).await;
    };
    let (ns, address, port) = (ns.to_string(), host.address.clone(), host.port);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = crate::lab::enter_netns(&ns)
            .map_err(std::io::Error::other)
            .and_then(|()| std::net::TcpStream::connect((address.as_str(), port)))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        let _ = tx.send(r);
    });
    let std_stream = rx
        .await
        .map_err(|_| std::io::Error::other("the connecting thread died"))??;
    tokio::net::TcpStream::from_std(std_stream)
}

/// Fetches the host key `host` offers, without authenticating or trusting it.
pub async fn fetch_host_key(host: &HostAddress, timeout: Duration) -> Result<PublicKey, SshError> {
    fetch_host_key_in(host, timeout, None).await
}

/// [`fetch_host_key`], the connection opened in network namespace `netns` if given.
pub async fn fetch_host_key_in(
    host: &HostAddress,
    timeout: Duration,
    netns: Option<&str>,
) -> Result<PublicKey, SshError> {
    let label = label(host);
    let offered = Arc::new(Mutex::new(None));
    let handler = Pinned {
        pinned: None,
        offered: offered.clone(),
    };
    let config = Arc::new(client::Config::default());
    let attempt = async {
        let stream = tcp(host, netns).await.map_err(russh::Error::from)?;
        client::connect_stream(config, stream, handler).await
    };
    let result = tokio::time::timeout(timeout, attempt).await;
    if let Some(key) = offered.lock().ok().and_then(|o| o.clone()) {
        return Ok(key);
    }
    match result {
        Err(_) => Err(SshError::ConnectTimeout {
            host: label,
            seconds: timeout.as_secs(),
        }),
        Ok(Err(e)) => Err(SshError::Connect {
            host: label,
            source: Box::new(e),
        }),
        // A handler without a pinned key accepts no server, so this means no key was seen.
        Ok(Ok(_)) => Err(SshError::Connect {
            host: label,
            source: "the server offered no host key".into(),
        }),
    }
}

/// The accept path of `parc hosts trust HOST`: fetches the key `host` offers and pins it in
/// `known_hosts`. When `expected_fingerprint` is given (what the technician read on the
/// machine's console), a different key is refused and nothing is pinned. Returns the
/// fingerprint pinned.
pub async fn trust_host(
    known_hosts_file: &Path,
    host: &HostAddress,
    expected_fingerprint: Option<&str>,
    timeout: Duration,
) -> Result<String, SshError> {
    let key = fetch_host_key(host, timeout).await?;
    let fp = known_hosts::fingerprint(&key);
    if let Some(expected) = expected_fingerprint {
        if expected.trim() != fp {
            return Err(SshError::FingerprintMismatch {
                host: label(host),
                expected: expected.trim().to_owned(),
                offered: fp,
            });
        }
    }
    known_hosts::pin(known_hosts_file, &host.address, host.port, &key)?;
    Ok(fp)
}
