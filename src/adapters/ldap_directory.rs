//! The `Directory` port for an Active Directory domain controller (Windows AD or Samba AD)
//! reached over the network by LDAP over TLS (`ldap3` on rustls): the OU of a room, the
//! computer accounts, and the probes `parc doctor` runs before a run (the DC's clock, whether
//! the account may create computers in an OU).
//!
//! **TLS only.** AD refuses simple binds on a clear connection (Samba:
//! `ldap server require strong auth`), and the password must not cross the room's network in
//! clear anyway: LDAPS (636) or StartTLS on 389.
//!
//! **Certificate checks.** With no `ca_pem`, the DC's certificate is checked against the
//! system's roots, name included (the usual web PKI rules). With a pinned CA (`ca_pem`, e.g.
//! Samba's self-made `private/tls/ca.pem` or the lycée's AD CS root), the chain must lead to
//! that CA; the certificate's *name* is then checked too, except when `host` is an IP address:
//! DC certificates name the DC's DNS name, rarely its address, and a technician often only
//! knows the address. For a DNS name, a certificate without DNS subjectAltName whose subject
//! CN is that name is accepted too: Samba's self-made certificate (`private/tls/cert.pem`)
//! names the DC in its CN only, which webpki ignores. Accepting any name for an address is
//! sound because the pinned CA is the trust
//! decision — but a CA that signs other servers' certificates (an enterprise AD CS) then lets
//! any of them stand in for the DC: give `host` as the DC's DNS name in that case.
//!
//! **One connection.** `connect` opens and binds one connection; `ldap3` multiplexes requests
//! on it, so every call clones the handle (concurrent calls do not wait for each other). The
//! handle sits behind a mutex only so that a connection the DC closed (AD drops idle
//! connections after 15 minutes) is reopened and re-bound by the next call.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::sync::Mutex;

use crate::ports::{
    ComputerLocation, Directory, PortError, PortErrorKind, PortResult, SecretBytes,
};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapTls {
    /// TLS from the first byte (port 636).
    Ldaps,
    /// Plain LDAP upgraded by the StartTLS operation before the bind (port 389).
    StartTls,
}

/// Where the DC is and who parc binds as.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// The DC's address or DNS name.
    pub host: String,
    /// Default: 636 (LDAPS) or 389 (StartTLS).
    pub port: Option<u16>,
    pub tls: LdapTls,
    /// CA certificate(s) to trust (PEM); `None`: the system's roots.
    pub ca_pem: Option<PathBuf>,
    /// Kerberos realm, e.g. `LYCEE-MISTRAL.TEST` (base DN `DC=lycee-mistral,DC=test`).
    pub realm: String,
    /// The account, e.g. `Administrator` or `svc-parc`: bound as `account@realm` unless it
    /// already contains `@` or `\`.
    pub account: String,
    pub password: SecretBytes,
    /// Bound of the connection (TCP, TLS and bind) and of each operation.
    pub timeout: Duration,
}

impl LdapConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            LdapTls::Ldaps => 636,
            LdapTls::StartTls => 389,
        })
    }

    /// `host:port` as messages show it.
    pub fn address(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port()),
            _ => format!("{}:{}", self.host, self.port()),
        }
    }

    /// The name of the simple bind.
    pub fn bind_name(&self) -> String {
        bind_name(&self.account, &self.realm)
    }

    pub fn base_dn(&self) -> String {
        base_dn(&self.realm)
    }
}

/// The domain's base DN from its realm: `LYCEE-MISTRAL.TEST` → `DC=lycee-mistral,DC=test`.
pub fn base_dn(realm: &str) -> String {
    realm
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| format!("DC={}", p.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `account@realm`, unless `account` is already a UPN or a `DOMAIN\user` name.
pub fn bind_name(account: &str, realm: &str) -> String {
    if account.contains('@') || account.contains('\\') {
        account.to_owned()
    } else {
        format!("{account}@{realm}")
    }
}

pub use crate::domain::device::computer_name;

/// An LDAP GeneralizedTime as AD writes it: `20261202013045.0Z` (fraction optional, UTC).
pub fn parse_generalized_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().strip_suffix('Z')?;
    let (whole, frac) = match s.split_once(['.', ',']) {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Some(t.and_utc() + chrono::Duration::nanoseconds(i64::from(nanos)))
}

/// The DN components, split at the commas that are not escaped.
fn dn_components(dn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                parts.push(dn[start..i].trim());
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(dn[start..].trim());
    parts
}

/// The name of an LDAP result code, for messages.
fn rc_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        68 => "entryAlreadyExists",
        80 => "other",
        _ => "error",
    }
}

/// What a failed result code means to the engine.
fn rc_kind(rc: u32) -> PortErrorKind {
    match rc {
        8 | 13 | 49 | 50 => PortErrorKind::Refused,
        3 => PortErrorKind::Timeout,
        32 => PortErrorKind::NotFound,
        51 | 52 => PortErrorKind::Unreachable,
        _ => PortErrorKind::Other,
    }
}

/// A failed operation's result as a port error: `what` says what was being done.
fn rc_error(what: &str, rc: u32, text: &str) -> PortError {
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let detail = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    PortError::new(
        rc_kind(rc),
        format!("{what}: the DC answered {} ({rc}){detail}", rc_name(rc)),
    )
}

/// Why the bind failed, in the technician's words. Never shows the password.
fn bind_error(account: &str, addr: &str, rc: u32, text: &str) -> PortError {
    match rc {
        49 => PortError::new(
            PortErrorKind::Refused,
            format!(
                "the DC {addr} refused the credentials of {account} (wrong password or unknown account)"
            ),
        ),
        8 | 13 => PortError::new(
            PortErrorKind::Refused,
            format!("the DC {addr} requires a stronger protection of the bind of {account}"),
        ),
        _ => rc_error(&format!("binding to {addr} as {account}"), rc, text),
    }
}

/// An `ldap3` error of an operation (after the connection was made) as a port error.
fn op_error(what: &str, addr: &str, e: LdapError) -> PortError {
    match e {
        LdapError::LdapResult { result } => rc_error(what, result.rc, &result.text),
        LdapError::Timeout { .. } => PortError::new(
            PortErrorKind::Timeout,
            format!("{what}: the DC {addr} did not answer in time"),
        ),
        e @ (LdapError::Io { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::EndOfStream) => PortError::new(
            PortErrorKind::Unreachable,
            format!("{what}: the connection to the DC {addr} was lost"),
        )
        .with_source(e),
        e => PortError::new(PortErrorKind::Other, format!("{what}: {e}")).with_source(e),
    }
}

/// The rustls error inside an I/O error of the TLS handshake, if that is what it is.
fn tls_error_of(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Verifies the DC's chain against the pinned CA; the certificate's name only when the DC
/// was given by name (see the module comment).
#[derive(Debug)]
struct PinnedCa {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means the chain is
        // good.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if name_accepted(end_entity, server_name) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a certificate whose chain leads to the pinned CA, but that webpki found not valid
/// for `server_name`, is accepted: always for an IP address (see the module comment); for a
/// DNS name, when the certificate has no DNS subjectAltName and its subject CN is that name
/// (the legacy form of Samba's self-made certificate, which webpki does not read).
fn name_accepted(end_entity: &CertificateDer<'_>, server_name: &ServerName<'_>) -> bool {
    let name = match server_name {
        ServerName::IpAddress(_) => return true,
        ServerName::DnsName(n) => n.as_ref(),
        _ => return false,
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
        return false;
    };
    let has_dns_san = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .any(|g| matches!(g, x509_parser::extensions::GeneralName::DNSName(_))),
        Ok(None) => false,
        Err(_) => return false,
    };
    !has_dns_san
        && cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn.eq_ignore_ascii_case(name))
}

/// What a certificate error means, in the technician's words.
fn certificate_problem(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => "it is not signed by a trusted CA".to_owned(),
        CertificateError::BadSignature => "its signature does not verify".to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired (or this machine's clock is wrong)".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (or this machine's clock is wrong)".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not name the host parc connected to".to_owned()
        }
        e => format!("{e:?}"),
    }
}

/// The TLS client configuration of `cfg`: pinned CA or system roots.
fn tls_config(cfg: &LdapConfig) -> PortResult<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            PortError::new(PortErrorKind::Other, format!("setting up TLS: {e}")).with_source(e)
        })?;
    let mut roots = RootCertStore::empty();
    let config = match &cfg.ca_pem {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    PortError::new(
                        PortErrorKind::Other,
                        format!("reading the CA certificate file {}: {e}", path.display()),
                    )
                    .with_source(e)
                })?;
            if certs.is_empty() {
                return Err(PortError::new(
                    PortErrorKind::Other,
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    PortError::new(
                        PortErrorKind::Other,
                        format!(
                            "the CA certificate in {} is not usable: {e}",
                            path.display()
                        ),
                    )
                    .with_source(e)
                })?;
            }
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    PortError::new(PortErrorKind::Other, format!("setting up TLS: {e}"))
                        .with_source(e)
                })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCa { inner }))
                .with_no_client_auth()
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(PortError::new(
                    PortErrorKind::Other,
                    "no system CA certificate to check the DC's certificate with: give the DC's CA file",
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Opens, protects and binds one connection.
async fn open(cfg: &LdapConfig) -> PortResult<Ldap> {
    let addr = cfg.address();
    let tcp = match tokio::time::timeout(
        cfg.timeout,
        tokio::net::TcpStream::connect((cfg.host.as_str(), cfg.port())),
    )
    .await
    {
        Err(_) => {
            return Err(PortError::new(
                PortErrorKind::Timeout,
                format!(
                    "no answer from the DC {addr} within {} s",
                    cfg.timeout.as_secs_f32()
                ),
            ));
        }
        Ok(Err(e)) => {
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "refused the connection (no LDAP service on that port?)".to_owned()
                }
                _ => format!("cannot be reached: {e}"),
            };
            return Err(
                PortError::new(PortErrorKind::Unreachable, format!("the DC {addr} {why}"))
                    .with_source(e),
            );
        }
        Ok(Ok(s)) => s,
    };
    let std_tcp = tcp.into_std().map_err(|e| {
        PortError::new(PortErrorKind::Other, format!("connecting to {addr}: {e}")).with_source(e)
    })?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.timeout)
        .set_config(tls_config(cfg)?)
        .set_starttls(cfg.tls == LdapTls::StartTls)
        .set_std_stream(StdStream::Tcp(std_tcp));
    let host = match cfg.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{}]", cfg.host),
        _ => cfg.host.clone(),
    };
    let url = match cfg.tls {
        LdapTls::Ldaps => format!("ldaps://{host}:{}", cfg.port()),
        LdapTls::StartTls => format!("ldap://{host}:{}", cfg.port()),
    };
    let trusted = match &cfg.ca_pem {
        Some(p) => format!("the CA of {}", p.display()),
        None => "the system's CA certificates".to_owned(),
    };
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
        .await
        .map_err(|e| match e {
            LdapError::Io { source } => match tls_error_of(&source) {
                Some(rustls::Error::InvalidCertificate(ce)) => PortError::new(
                    PortErrorKind::Refused,
                    format!(
                        "the TLS certificate of the DC {addr} is not trusted: {} (checked against {trusted})",
                        certificate_problem(ce)
                    ),
                ),
                Some(te) => PortError::new(
                    PortErrorKind::Refused,
                    format!("the TLS handshake with the DC {addr} failed: {te}"),
                ),
                None => PortError::new(
                    PortErrorKind::Unreachable,
                    format!("the DC {addr} closed the connection during the TLS handshake: {source}"),
                ),
            },
            LdapError::Timeout { .. } => PortError::new(
                PortErrorKind::Timeout,
                format!(
                    "the DC {addr} did not finish the TLS handshake within {} s",
                    cfg.timeout.as_secs_f32()
                ),
            ),
            LdapError::LdapResult { result } => PortError::new(
                PortErrorKind::Refused,
                format!(
                    "the DC {addr} refused StartTLS: {} ({}) {}",
                    rc_name(result.rc),
                    result.rc,
                    result.text.trim()
                ),
            ),
            e => PortError::new(
                PortErrorKind::Other,
                format!("connecting to the DC {addr}: {e}"),
            )
            .with_source(e),
        })?;
    tokio::spawn(async move {
        // Ends when every handle is dropped or the DC closes the connection; the next call
        // then reconnects (see `LdapDirectory::handle`).
        let _ = conn.drive().await;
    });
    let account = cfg.bind_name();
    let password = std::str::from_utf8(&cfg.password.0).map_err(|_| {
        PortError::new(
            PortErrorKind::Other,
            format!("the password of {account} is not valid UTF-8"),
        )
    })?;
    let res = ldap
        .with_timeout(cfg.timeout)
        .simple_bind(&account, password)
        .await
        .map_err(|e| op_error(&format!("binding to {addr} as {account}"), &addr, e))?;
    if res.rc != 0 {
        return Err(bind_error(&account, &addr, res.rc, &res.text));
    }
    Ok(ldap)
}

/// Whether the bound account may create what a run needs in an OU (see
/// [`LdapDirectory::ou_writable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writable {
    /// The OU asked about.
    pub ou_dn: String,
    pub ou_exists: bool,
    /// The entry whose `allowedChildClassesEffective` was read: the OU, or its nearest
    /// existing parent when the OU does not exist yet.
    pub checked_dn: String,
    /// What the account may create in `checked_dn`, as the DC says.
    pub child_classes: Vec<String>,
    /// Computer objects in the existing OU, or organizational units under its nearest
    /// existing parent (so that `ensure_ou` can create it).
    pub allowed: bool,
}

/// The directory of one AD domain, through one bound LDAPS connection.
pub struct LdapDirectory {
    cfg: LdapConfig,
    base_dn: String,
    ldap: Mutex<Ldap>,
}

impl LdapDirectory {
    /// Connects to the DC and binds; fails with the reason a technician can act on.
    pub async fn connect(cfg: LdapConfig) -> PortResult<Self> {
        let ldap = open(&cfg).await?;
        Ok(Self {
            base_dn: cfg.base_dn(),
            cfg,
            ldap: Mutex::new(ldap),
        })
    }

    /// The domain's base DN (from the realm).
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// A handle on the bound connection, reopened if the DC closed it.
    async fn handle(&self) -> PortResult<Ldap> {
        let mut ldap = self.ldap.lock().await;
        if ldap.is_closed() {
            *ldap = open(&self.cfg).await?;
        }
        let mut h = ldap.clone();
        h.with_timeout(self.cfg.timeout);
        Ok(h)
    }

    fn op_err(&self, what: &str, e: LdapError) -> PortError {
        op_error(what, &self.cfg.address(), e)
    }

    /// The entries of a search (referrals left aside). `Ok(None)`: the base does not exist.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> PortResult<Option<Vec<SearchEntry>>> {
        let what = format!("searching {filter} under {base:?}");
        let res = self
            .handle()
            .await?
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.op_err(&what, e))?;
        match res.1.rc {
            0 => Ok(Some(
                res.0.into_iter().map(SearchEntry::construct).collect(),
            )),
            32 => Ok(None),
            rc => Err(rc_error(&what, rc, &res.1.text)),
        }
    }

    /// The entry `dn` with `attrs`, if it exists.
    async fn read(&self, dn: &str, attrs: &[&str]) -> PortResult<Option<SearchEntry>> {
        Ok(self
            .search(dn, Scope::Base, "(objectClass=*)", attrs)
            .await?
            .and_then(|mut v| v.pop()))
    }

    /// Adds an entry; `Ok(false)` when it already existed.
    async fn add(&self, dn: &str, attrs: Vec<(&str, HashSet<&str>)>) -> PortResult<bool> {
        let what = format!("creating {dn}");
        let res = self
            .handle()
            .await?
            .add(dn, attrs)
            .await
            .map_err(|e| self.op_err(&what, e))?;
        match res.rc {
            0 => Ok(true),
            68 => Ok(false),
            rc => Err(rc_error(&what, rc, &res.text)),
        }
    }

    /// The DC's clock (rootDSE `currentTime`): Kerberos fails beyond 5 minutes of skew.
    pub async fn server_time(&self) -> PortResult<DateTime<Utc>> {
        let root = self.read("", &["currentTime"]).await?;
        let value = root
            .as_ref()
            .and_then(|e| e.attrs.get("currentTime"))
            .and_then(|v| v.first())
            .ok_or_else(|| {
                PortError::new(
                    PortErrorKind::Integrity,
                    format!("the DC {} gives no currentTime", self.cfg.address()),
                )
            })?;
        parse_generalized_time(value).ok_or_else(|| {
            PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "the DC {} gives a currentTime that is not a time: {value:?}",
                    self.cfg.address()
                ),
            )
        })
    }

    /// The classes the bound account may create under `dn` (`allowedChildClassesEffective`,
    /// computed by the DC from the entry's security descriptor and the schema); `None` when
    /// `dn` does not exist.
    async fn child_classes(&self, dn: &str) -> PortResult<Option<Vec<String>>> {
        const ATTR: &str = "allowedChildClassesEffective";
        Ok(self.read(dn, &[ATTR]).await?.map(|e| {
            e.attrs
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ATTR))
                .map(|(_, v)| v)
                .unwrap_or_default()
        }))
    }

    /// Whether computer accounts can be created in `ou_dn` by the bound account. When the OU
    /// does not exist yet, whether the account may create OUs in its nearest existing parent;
    /// whether it may then create computers in the new OU depends on what the DC grants a
    /// creator (AD: the OU inherits its parent's inheritable permissions), which cannot be
    /// read before the OU exists.
    pub async fn ou_writable(&self, ou_dn: &str) -> PortResult<Writable> {
        let parts = dn_components(ou_dn);
        for i in 0..parts.len() {
            let dn = parts[i..].join(",");
            let Some(classes) = self.child_classes(&dn).await? else {
                continue;
            };
            let want = if i == 0 {
                "computer"
            } else {
                "organizationalUnit"
            };
            return Ok(Writable {
                ou_dn: ou_dn.to_owned(),
                ou_exists: i == 0,
                checked_dn: dn,
                allowed: classes.iter().any(|c| c.eq_ignore_ascii_case(want)),
                child_classes: classes,
            });
        }
        Err(PortError::new(
            PortErrorKind::NotFound,
            format!("no part of {ou_dn} exists in the directory"),
        ))
    }

    /// Creates the computer account of `hostname` in `ou_dn` (`CN=NAME,<ou_dn>`,
    /// `sAMAccountName` `NAME$`, a workstation trust account) unless it exists; returns the
    /// DN of the account, wherever it is (an existing account is not moved).
    pub async fn precreate_computer(&self, hostname: &str, ou_dn: &str) -> PortResult<String> {
        if let Some(loc) = self.locate_computer(hostname).await? {
            return Ok(loc.dn);
        }
        let name = computer_name(hostname);
        let dn = format!("CN={name},{ou_dn}");
        let sam = format!("{name}$");
        let attrs = vec![
            ("objectClass", HashSet::from(["top", "computer"])),
            ("cn", HashSet::from([name.as_str()])),
            ("sAMAccountName", HashSet::from([sam.as_str()])),
            // WORKSTATION_TRUST_ACCOUNT: what `adcli join` finds and takes over.
            ("userAccountControl", HashSet::from(["4096"])),
        ];
        if self.add(&dn, attrs).await? {
            return Ok(dn);
        }
        // Created meanwhile (another task) or the DN is taken by something else.
        match self.locate_computer(hostname).await? {
            Some(loc) => Ok(loc.dn),
            None => Err(PortError::new(
                PortErrorKind::Integrity,
                format!("{dn} exists but is not the computer account {sam}"),
            )),
        }
    }

    /// Deletes the entry `dn` (a computer account); nothing to do when it does not exist.
    pub async fn delete_computer(&self, dn: &str) -> PortResult<()> {
        let what = format!("deleting {dn}");
        let res = self
            .handle()
            .await?
            .delete(dn)
            .await
            .map_err(|e| self.op_err(&what, e))?;
        match res.rc {
            0 | 32 => Ok(()),
            rc => Err(rc_error(&what, rc, &res.text)),
        }
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn ensure_ou(&self, ou_dn: &str) -> PortResult<()> {
        let parts = dn_components(ou_dn);
        // The nearest existing entry, from the OU itself up; then every missing OU from the
        // top down. Another task creating the same OU meanwhile is fine (entryAlreadyExists).
        let mut missing = 0;
        while missing < parts.len()
            && self
                .read(&parts[missing..].join(","), &["1.1"])
                .await?
                .is_none()
        {
            missing += 1;
        }
        if missing == parts.len() {
            return Err(PortError::new(
                PortErrorKind::NotFound,
                format!("no part of {ou_dn} exists in the directory"),
            ));
        }
        for i in (0..missing).rev() {
            let dn = parts[i..].join(",");
            let Some(ou) = parts[i]
                .split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("OU"))
                .map(|(_, v)| v.trim())
            else {
                return Err(PortError::new(
                    PortErrorKind::NotFound,
                    format!(
                        "{dn} does not exist and is not an organizational unit parc may create"
                    ),
                ));
            };
            let ou = ou.replace('\\', "");
            self.add(
                &dn,
                vec![
                    ("objectClass", HashSet::from(["top", "organizationalUnit"])),
                    ("ou", HashSet::from([ou.as_str()])),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn locate_computer(&self, hostname: &str) -> PortResult<Option<ComputerLocation>> {
        let name = computer_name(hostname);
        if name.is_empty() {
            return Err(PortError::new(
                PortErrorKind::Other,
                format!("{hostname:?} is not a host name"),
            ));
        }
        let filter = format!(
            "(&(objectClass=computer)(sAMAccountName={}$))",
            ldap3::ldap_escape(&name)
        );
        let found = self
            .search(&self.base_dn, Scope::Subtree, &filter, &["1.1"])
            .await?
            .ok_or_else(|| {
                PortError::new(
                    PortErrorKind::NotFound,
                    format!(
                        "the domain's base {} does not exist on the DC {} (wrong realm?)",
                        self.base_dn,
                        self.cfg.address()
                    ),
                )
            })?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(ComputerLocation { dn: one.dn.clone() })),
            many => Err(PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "{} computer accounts named {name}$: {}",
                    many.len(),
                    many.iter()
                        .map(|e| e.dn.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dn_from_realm() {
        assert_eq!(base_dn("LYCEE-MISTRAL.TEST"), "DC=lycee-mistral,DC=test");
        assert_eq!(base_dn("ac-aix.fr."), "DC=ac-aix,DC=fr");
    }

    #[test]
    fn bind_name_is_a_upn_unless_given() {
        assert_eq!(
            bind_name("Administrator", "LYCEE-MISTRAL.TEST"),
            "Administrator@LYCEE-MISTRAL.TEST"
        );
        assert_eq!(bind_name("svc@x.fr", "R"), "svc@x.fr");
        assert_eq!(bind_name("MISTRAL\\svc-parc", "R"), "MISTRAL\\svc-parc");
    }

    #[test]
    fn computer_name_is_the_first_label_upper_cased_and_cut_at_15() {
        assert_eq!(computer_name("b204-p01.lycee-mistral.test"), "B204-P01");
        assert_eq!(computer_name("b204-p01"), "B204-P01");
        assert_eq!(computer_name("cdi-poste-lecture-12"), "CDI-POSTE-LECTU");
    }

    #[test]
    fn generalized_time() {
        let t = parse_generalized_time("20261202013045.0Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-02T01:30:45+00:00");
        let t = parse_generalized_time("20261202013045.25Z").unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 250);
        assert!(parse_generalized_time("20261202013045Z").is_some());
        assert!(parse_generalized_time("20261202013045.0").is_none());
        assert!(parse_generalized_time("2026120201304.0Z").is_none());
        assert!(parse_generalized_time("20261302013045.0Z").is_none());
    }

    #[test]
    fn dn_components_keep_escaped_commas() {
        assert_eq!(
            dn_components("OU=B204,OU=Salles\\, bat B,DC=x"),
            vec!["OU=B204", "OU=Salles\\, bat B", "DC=x"]
        );
    }

    #[test]
    fn result_codes_map_to_kinds() {
        assert_eq!(rc_kind(49), PortErrorKind::Refused);
        assert_eq!(rc_kind(50), PortErrorKind::Refused);
        assert_eq!(rc_kind(32), PortErrorKind::NotFound);
        assert_eq!(rc_kind(52), PortErrorKind::Unreachable);
        assert_eq!(rc_kind(19), PortErrorKind::Other);
        let e = rc_error("creating OU=x", 50, "00002098: Insufficient access\0");
        assert_eq!(
            e.message,
            "creating OU=x: the DC answered insufficientAccessRights (50): 00002098: Insufficient access"
        );
    }

    #[test]
    fn invalid_credentials_name_the_account_not_the_password() {
        let e = bind_error("svc-parc@R", "10.0.0.1:636", 49, "80090308: LdapErr");
        assert_eq!(e.kind, PortErrorKind::Refused);
        assert_eq!(
            e.message,
            "the DC 10.0.0.1:636 refused the credentials of svc-parc@R (wrong password or unknown account)"
        );
    }

    /// The verifier pinned on the CA Samba made for the lab's DC, at `secs` after the epoch.
    fn check_samba_cert(name: ServerName<'static>, secs: u64) -> Result<(), rustls::Error> {
        let ca = include_str!("../../tests/fixtures/samba-tls/ca.pem");
        let cert = include_str!("../../tests/fixtures/samba-tls/cert.pem");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let v = PinnedCa {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        };
        let cert = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let now = UnixTime::since_unix_epoch(Duration::from_secs(secs));
        v.verify_server_cert(&cert, &[], &name, &[], now)
            .map(|_| ())
    }

    #[test]
    fn samba_certificate_by_address_or_cn() {
        // 2027-01-15: within the certificate's validity.
        let t = 1_800_000_000;
        let ip = ServerName::IpAddress(IpAddr::from([10, 77, 0, 1]).into());
        check_samba_cert(ip.clone(), t).unwrap();
        check_samba_cert("dc1.lycee-mistral.test".try_into().unwrap(), t).unwrap();
        check_samba_cert("DC1.LYCEE-MISTRAL.TEST".try_into().unwrap(), t).unwrap();
        let e = check_samba_cert("dc2.lycee-mistral.test".try_into().unwrap(), t).unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{e:?}"
        );
        // 2031: expired, also by address.
        let e = check_samba_cert(ip, 1_930_000_000).unwrap_err();
        let rustls::Error::InvalidCertificate(ce) = e else {
            panic!("{e:?}")
        };
        assert!(
            certificate_problem(&ce).starts_with("it has expired"),
            "{ce:?}"
        );
    }

    #[test]
    fn default_ports_and_address() {
        let cfg = LdapConfig {
            host: "fd00::1".into(),
            port: None,
            tls: LdapTls::StartTls,
            ca_pem: None,
            realm: "R".into(),
            account: "a".into(),
            password: SecretBytes::default(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(cfg.address(), "[fd00::1]:389");
        let cfg = LdapConfig {
            host: "dc1".into(),
            tls: LdapTls::Ldaps,
            ..cfg
        };
        assert_eq!(cfg.address(), "dc1:636");
    }
}
