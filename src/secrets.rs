//! The secret store: licence keys and domain passwords, by name, under `.parc/secrets/`.
//!
//! One file per secret, mode 0600, in a folder of mode 0700; written atomically (temporary
//! file, fsync, rename). Values are only ever handed out as [`SecretBytes`], whose `Debug`
//! hides them; nothing here prints or logs a value.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::domain::toml_read::valid_secret_name;
use crate::ports::SecretBytes;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret name \"{0}\" is not valid (letters, digits, '-', '_', '.')")]
    BadName(String),
    #[error("secret \"{0}\" is not set")]
    Missing(String),
    #[error("the secret value is empty")]
    Empty,
    #[error("secret store {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct SecretStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SecretStore {
    /// The store of a workspace state folder (`.parc/`). Nothing is created until `set`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("secrets"),
        }
    }

    /// Stores (or replaces) a secret.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<(), SecretError> {
        if !valid_secret_name(name) {
            return Err(SecretError::BadName(name.to_string()));
        }
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(value)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(name))?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io(&self.dir))
    }

    /// A secret's value.
    pub fn get(&self, name: &str) -> Result<SecretBytes, SecretError> {
        if !valid_secret_name(name) {
            return Err(SecretError::BadName(name.to_string()));
        }
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(v) => Ok(SecretBytes(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SecretError::Missing(name.to_string()))
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The names of the stored secrets, sorted.
    pub fn list(&self) -> Result<Vec<String>, SecretError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_secret_name(n))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_list_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::new(tmp.path());
        assert!(store.list().unwrap().is_empty());
        store.set("domain-join", b"s3cret").unwrap();
        assert_eq!(store.get("domain-join").unwrap().0, b"s3cret");
        assert_eq!(store.list().unwrap(), vec!["domain-join"]);
        let mode = std::fs::metadata(tmp.path().join("secrets/domain-join"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(tmp.path().join("secrets"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert!(matches!(store.get("nope"), Err(SecretError::Missing(_))));
        assert!(matches!(
            store.set("../x", b"v"),
            Err(SecretError::BadName(_))
        ));
        assert!(!format!("{:?}", store.get("domain-join").unwrap()).contains("s3cret"));
    }
}
