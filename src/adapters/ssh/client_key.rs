//! parc's own SSH identity: an ed25519 key under `<workspace>/.parc/ssh/`, generated on first
//! use (mode 0600), whose public half the technician installs on the machines.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};

use super::error::SshError;

/// Path of parc's private key in a workspace state folder (`<workspace>/.parc`).
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join("ssh").join("id_ed25519")
}

fn key_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SshError {
    SshError::ClientKey {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Loads parc's key, generating it first if it does not exist.
pub fn load_or_generate(state_dir: &Path) -> Result<PrivateKey, SshError> {
    let path = key_path(state_dir);
    if path.exists() {
        return russh::keys::load_secret_key(&path, None).map_err(|e| key_err(&path, e));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| key_err(&path, std::io::Error::other(e.to_string())))?;
    let pair = Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::new(KeypairData::Ed25519(pair), "parc").map_err(|e| key_err(&path, e))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| key_err(&path, e))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| key_err(&path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| key_err(&path, e))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| key_err(&path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| key_err(&path, e))?;
    fs::write(path.with_extension("pub"), format!("{public}\n")).map_err(|e| key_err(&path, e))?;
    Ok(key)
}

/// The OpenSSH public line of parc's key (what goes into `authorized_keys`).
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path()).unwrap();
        let b = load_or_generate(dir.path()).unwrap();
        assert_eq!(public_line(&a), public_line(&b));
        assert!(public_line(&a).starts_with("ssh-ed25519 "));
        let mode =
            std::os::unix::fs::MetadataExt::mode(&fs::metadata(key_path(dir.path())).unwrap());
        assert_eq!(mode & 0o777, 0o600);
    }
}
