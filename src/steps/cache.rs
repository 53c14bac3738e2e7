//! The content-addressed cache of collected software: `<root>/sha256/<hex>`. A file enters
//! only through [`ContentCache::admit`], which re-hashes it and refuses a digest mismatch, so
//! nothing unverified is ever in the cache.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a file could not enter (or be read from) the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache folder {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sha256 of {path} is {actual}, expected {expected}")]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

#[derive(Debug, Clone)]
pub struct ContentCache {
    root: PathBuf,
}

/// The sha256 (hex) of a file.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Whether `s` is a sha256 written as 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ContentCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the item of digest `sha256` lives (whether or not it is there).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    /// The item's path if the cache holds it.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.path_of(sha256);
        p.is_file().then_some(p)
    }

    /// A fresh folder for downloads in progress (same filesystem as the cache, so admitting
    /// is a rename).
    pub fn staging(&self) -> Result<tempfile::TempDir, CacheError> {
        let dir = self.root.join("tmp");
        let io = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        tempfile::Builder::new()
            .prefix("collect-")
            .tempdir_in(&dir)
            .map_err(io)
    }

    /// Moves `file` into the cache if its sha256 is `expected`; otherwise leaves the cache
    /// untouched and says what was found.
    pub fn admit(&self, file: &Path, expected: &str) -> Result<PathBuf, CacheError> {
        let actual = sha256_of(file).map_err(|source| CacheError::Io {
            path: file.to_owned(),
            source,
        })?;
        if actual != expected {
            return Err(CacheError::Mismatch {
                path: file.to_owned(),
                expected: expected.to_owned(),
                actual,
            });
        }
        let dest = self.path_of(expected);
        let io = |source| CacheError::Io {
            path: dest.clone(),
            source,
        };
        fs::create_dir_all(dest.parent().unwrap_or(&self.root)).map_err(io)?;
        fs::rename(file, &dest).map_err(io)?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_announced_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(dir.path().join("cache"));
        let staging = cache.staging().unwrap();
        let f = staging.path().join("x");
        fs::write(&f, b"hello\n").unwrap();
        let good = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let bad = "0".repeat(64);
        let err = cache.admit(&f, &bad).unwrap_err();
        assert!(matches!(err, CacheError::Mismatch { ref actual, .. } if actual == good));
        assert!(cache.get(&bad).is_none());
        let p = cache.admit(&f, good).unwrap();
        assert_eq!(cache.get(good), Some(p));
        assert!(
            is_sha256_hex(good) && !is_sha256_hex("abc") && !is_sha256_hex(&good.to_uppercase())
        );
    }
}
