//! The deploy records of each workstation's filesystems ([`crate::image::record`]), kept
//! between deploys so that the next reimage reads only what changed:
//! `<state dir>/records/<host>/<partition>.rec.zst`, or in memory when the endpoint has no
//! state folder. A record is checked (read whole) before it is kept; a deploy that writes a
//! new filesystem replaces it.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

/// The largest record accepted: a tree of a million entries, about 30 MB compressed.
pub const RECORD_MAX: usize = 64 << 20;

#[derive(Debug, Default)]
pub struct Records {
    dir: Mutex<Option<PathBuf>>,
    mem: Mutex<HashMap<(String, u32), Vec<u8>>>,
}

impl Records {
    /// Keeps records in files under `dir` from now on (created when first needed).
    pub fn to_dir(&self, dir: PathBuf) {
        *self.dir.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir);
    }

    fn path(&self, host: &str, partition: u32) -> Option<PathBuf> {
        let dir = self.dir.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(dir.join(host).join(format!("{partition}.rec.zst")))
    }

    /// The record of `host`'s partition, None when there is none.
    pub fn get(&self, host: &str, partition: u32) -> io::Result<Option<Vec<u8>>> {
        let Some(path) = self.path(host, partition) else {
            let mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(mem.get(&(host.to_string(), partition)).cloned());
        };
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps `bytes` as the record of `host`'s partition (written aside, then renamed: a
    /// crash leaves the old record or the new one).
    pub fn put(&self, host: &str, partition: u32, bytes: Vec<u8>) -> io::Result<()> {
        let Some(path) = self.path(host, partition) else {
            let mut mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            mem.insert((host.to_string(), partition), bytes);
            return Ok(());
        };
        let dir = path.parent().expect("a record path has a folder");
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, &bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_per_host_and_partition_in_memory_or_files() {
        let r = Records::default();
        r.put("pc01", 2, b"a".to_vec()).unwrap();
        assert_eq!(r.get("pc01", 2).unwrap(), Some(b"a".to_vec()));
        assert_eq!(r.get("pc01", 1).unwrap(), None);
        assert_eq!(r.get("pc02", 2).unwrap(), None);
        let d = tempfile::tempdir().unwrap();
        r.to_dir(d.path().join("records"));
        assert_eq!(
            r.get("pc01", 2).unwrap(),
            None,
            "the folder is the store now"
        );
        r.put("pc01", 2, b"b".to_vec()).unwrap();
        r.put("pc01", 2, b"c".to_vec()).unwrap();
        assert_eq!(r.get("pc01", 2).unwrap(), Some(b"c".to_vec()));
        assert!(d.path().join("records/pc01/2.rec.zst").is_file());
        assert!(!d.path().join("records/pc01/2.part").exists());
    }
}
