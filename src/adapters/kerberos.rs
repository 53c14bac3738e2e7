//! A Kerberos probe for `parc doctor`: can `account` get a ticket from the KDC at `kdc`
//! with this password? Runs Debian's MIT `kinit` (package `krb5-user`) with a throwaway
//! krb5.conf naming the KDC (no DNS involved) and an in-memory credential cache, so nothing
//! of the machine's own Kerberos setup is read or changed. The password goes to kinit's stdin
//! (MIT kinit reads it from there when stdin is not a terminal), never argv or the
//! environment.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::SecretBytes;

/// Why a ticket could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    #[error("kinit is not installed: apt-get install krb5-user")]
    NotInstalled,
    #[error(
        "the clocks of this machine and of the KDC {kdc} differ by more than Kerberos allows (5 minutes): set both from the same NTP source"
    )]
    ClockSkew { kdc: String },
    #[error("the KDC {kdc} refused the password of {principal}")]
    WrongPassword { principal: String, kdc: String },
    #[error("the KDC {kdc} does not know {principal}")]
    UnknownClient { principal: String, kdc: String },
    #[error("cannot contact the KDC {kdc} for the realm {realm}")]
    NoKdc { realm: String, kdc: String },
    #[error("kinit got no answer from the KDC {kdc} within {} s", .after.as_secs_f32())]
    Timeout { kdc: String, after: Duration },
    #[error("kinit {principal} failed: {message}")]
    Failed { principal: String, message: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The krb5.conf of the probe: the realm's only KDC is `kdc`, over TCP.
fn krb5_conf(realm: &str, kdc: &str) -> String {
    format!(
        "[libdefaults]\n default_realm = {realm}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n rdns = false\n udp_preference_limit = 1\n\n[realms]\n {realm} = {{\n  kdc = {kdc}\n }}\n"
    )
}

/// `account@REALM` unless `account` already names its realm.
fn principal(account: &str, realm: &str) -> String {
    if account.contains('@') {
        account.to_owned()
    } else {
        format!("{account}@{realm}")
    }
}

/// What kinit's message (MIT wording, `LC_ALL=C`) means.
fn classify(stderr: &str, realm: &str, kdc: &str, principal: &str) -> KerberosError {
    let kdc = kdc.to_owned();
    let principal = principal.to_owned();
    if stderr.contains("Clock skew too great") {
        KerberosError::ClockSkew { kdc }
    } else if stderr.contains("Preauthentication failed")
        || stderr.contains("Password incorrect")
        || stderr.contains("Decrypt integrity check failed")
    {
        KerberosError::WrongPassword { principal, kdc }
    } else if stderr.contains("not found in Kerberos database")
        || stderr.contains("Client not found")
    {
        KerberosError::UnknownClient { principal, kdc }
    } else if stderr.contains("Cannot contact any KDC") {
        KerberosError::NoKdc {
            realm: realm.to_owned(),
            kdc,
        }
    } else {
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Password for"))
            .collect::<Vec<_>>()
            .join(" ");
        KerberosError::Failed { principal, message }
    }
}

/// Gets (and forgets) a ticket for `account` from `kdc`; blocks at most about `timeout`.
pub fn kinit_check(
    realm: &str,
    kdc: &str,
    account: &str,
    password: &SecretBytes,
    timeout: Duration,
) -> Result<(), KerberosError> {
    let principal = principal(account, realm);
    let io = |context: &str| {
        let context = context.to_owned();
        move |source| KerberosError::Io { context, source }
    };
    let dir = tempfile::Builder::new()
        .prefix("parc-krb5-")
        .tempdir()
        .map_err(io("creating a temporary folder for krb5.conf"))?;
    let conf = dir.path().join("krb5.conf");
    std::fs::write(&conf, krb5_conf(realm, kdc)).map_err(io("writing a temporary krb5.conf"))?;
    let mut child = match Command::new("kinit")
        .arg(&principal)
        .env("KRB5_CONFIG", &conf)
        .env("KRB5CCNAME", "MEMORY:parc-doctor")
        .env("LC_ALL", "C")
        .env_remove("KRB5_TRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KerberosError::NotInstalled);
        }
        Err(e) => return Err(io("running kinit")(e)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // kinit may exit before reading (e.g. unknown client): a broken pipe is not an error.
        let mut line = password.0.clone();
        line.push(b'\n');
        let _ = stdin.write_all(&line);
    }
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait().map_err(io("waiting for kinit"))? {
            Some(s) => break s,
            None if t0.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(KerberosError::Timeout {
                    kdc: kdc.to_owned(),
                    after: timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    Err(classify(&out, realm, kdc, &principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stderr: &str) -> KerberosError {
        classify(stderr, "R.TEST", "10.0.0.1", "a@R.TEST")
    }

    #[test]
    fn classifies_mit_kinit_messages() {
        // MIT krb5 1.20 (Debian 12) wording.
        assert!(matches!(
            kind("kinit: Clock skew too great while getting initial credentials\n"),
            KerberosError::ClockSkew { .. }
        ));
        assert!(matches!(
            kind("kinit: Preauthentication failed while getting initial credentials\n"),
            KerberosError::WrongPassword { .. }
        ));
        assert!(matches!(
            kind("kinit: Password incorrect while getting initial credentials\n"),
            KerberosError::WrongPassword { .. }
        ));
        assert!(matches!(
            kind(
                "kinit: Client 'a@R.TEST' not found in Kerberos database while getting initial credentials\n"
            ),
            KerberosError::UnknownClient { .. }
        ));
        assert!(matches!(
            kind(
                "kinit: Cannot contact any KDC for realm 'R.TEST' while getting initial credentials\n"
            ),
            KerberosError::NoKdc { .. }
        ));
        let e = kind("Password for a@R.TEST: \nkinit: Something else\n");
        assert_eq!(
            e.to_string(),
            "kinit a@R.TEST failed: kinit: Something else"
        );
    }

    #[test]
    fn conf_names_the_kdc() {
        let c = krb5_conf("R.TEST", "10.0.0.1");
        assert!(c.contains("default_realm = R.TEST"));
        assert!(c.contains(" R.TEST = {\n  kdc = 10.0.0.1\n }"));
        assert_eq!(principal("svc", "R.TEST"), "svc@R.TEST");
        assert_eq!(principal("svc@X.TEST", "R.TEST"), "svc@X.TEST");
    }
}
