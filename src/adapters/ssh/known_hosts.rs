//! Pinned host keys: the workspace's `known_hosts` (OpenSSH format, `<workspace>/.parc/known_hosts`).
//! A key is only ever added by an explicit `pin` (the accept path of `parc hosts trust`),
//! never silently on first use.

use std::fs;
use std::path::Path;

use russh::keys::{HashAlg, PublicKey};

use super::error::SshError;

/// The known-hosts pattern of an address, as OpenSSH writes it (`addr` or `[addr]:port`).
pub fn host_pattern(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_owned()
    } else {
        format!("[{address}]:{port}")
    }
}

/// `SHA256:…` fingerprint of a host key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn kh_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SshError {
    SshError::KnownHosts {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

fn read(path: &Path) -> Result<String, SshError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(kh_err(path, e)),
    }
}

fn line_matches<'a>(line: &'a str, pattern: &str) -> Option<&'a str> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('|') {
        return None;
    }
    let (patterns, key) = line.split_once(char::is_whitespace)?;
    patterns
        .split(',')
        .any(|p| p == pattern)
        .then_some(key.trim())
}

/// The key pinned for `address:port`, if any.
pub fn lookup(path: &Path, address: &str, port: u16) -> Result<Option<PublicKey>, SshError> {
    let pattern = host_pattern(address, port);
    let text = read(path)?;
    for (n, line) in text.lines().enumerate() {
        if let Some(key) = line_matches(line, &pattern) {
            let key = PublicKey::from_openssh(key)
                .map_err(|e| kh_err(path, std::io::Error::other(format!("line {}: {e}", n + 1))))?;
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// Pins `key` for `address:port`, replacing any key pinned before. Written atomically.
pub fn pin(path: &Path, address: &str, port: u16, key: &PublicKey) -> Result<(), SshError> {
    let pattern = host_pattern(address, port);
    let text = read(path)?;
    let mut out: String = text
        .lines()
        .filter(|l| line_matches(l, &pattern).is_none())
        .map(|l| format!("{l}\n"))
        .collect();
    let mut key = key.clone();
    key.set_comment("");
    let line = key.to_openssh().map_err(|e| kh_err(path, e))?;
    out.push_str(&format!("{pattern} {}\n", line.trim()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| kh_err(path, e))?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, out).map_err(|e| kh_err(path, e))?;
    fs::rename(&tmp, path).map_err(|e| kh_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGTM7Ei9E0YTybX7ZfWFrSWv7bLQcM7r8QMK5g7GVMhu a";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA5gE/3th14YHaJW6pFoFvcyJnlAPw8YNk8yyANpX8Ao b";

    #[test]
    fn unknown_until_pinned_then_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        assert!(lookup(&kh, "10.77.0.11", 22).unwrap().is_none());
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        let b = PublicKey::from_openssh(KEY_B).unwrap();
        pin(&kh, "10.77.0.11", 22, &a).unwrap();
        pin(&kh, "10.77.0.12", 2222, &a).unwrap();
        assert_eq!(
            fingerprint(&lookup(&kh, "10.77.0.11", 22).unwrap().unwrap()),
            fingerprint(&a)
        );
        pin(&kh, "10.77.0.11", 22, &b).unwrap();
        let text = fs::read_to_string(&kh).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("[10.77.0.12]:2222 ssh-ed25519 "));
        assert_eq!(
            fingerprint(&lookup(&kh, "10.77.0.11", 22).unwrap().unwrap()),
            fingerprint(&b)
        );
        assert!(lookup(&kh, "10.77.0.12", 22).unwrap().is_none());
    }

    #[test]
    fn fingerprint_is_sha256_base64() {
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        assert!(fingerprint(&a).starts_with("SHA256:"));
    }
}
