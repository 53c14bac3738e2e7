//! The deploy records of each workstation's filesystems ([`crate::image::record`]), kept
//! between deploys so that the next reimage reads only what changed:
//! `<state dir>/records/<host>/<partition>.rec.zst`, or in memory when the endpoint has no
//! state folder. A record is checked (read whole) before it is kept; a deploy that writes a
//! new filesystem replaces it. `parc image prune` removes the records that can no longer
//! serve ([`doomed`] decides, [`scan`] and [`Scan::prune`] walk the folder).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::image::record::KeptRecord;

/// The name of a record file: `<partition>.rec.zst`.
const RECORD_SUFFIX: &str = ".rec.zst";
/// The name of a record being written: `<partition>.rec.part`, renamed once whole.
const TEMP_SUFFIX: &str = ".rec.part";
/// A temporary left this long is a crashed write, no longer one in progress.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(24 * 3600);

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
        let tmp = dir.join(format!("{partition}{TEMP_SUFFIX}"));
        std::fs::write(&tmp, &bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

/// What the prune found in a host's folder of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A record, whose header names this index digest (`sha256:<hex>`).
    Record { index: String },
    /// A record that does not read (damaged, cut short, of an unknown version).
    Unreadable,
    /// A record being written (or whose write crashed), this old.
    Temporary { age: Duration },
    /// Anything else: never removed.
    Other,
}

/// One file of `<records>/<host>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub host: String,
    pub name: String,
    pub seen: Seen,
}

/// Why a record file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its index digest is named by no image left: its image was pruned.
    ImageGone,
    Unreadable,
    /// Its host is no workstation of the inventory (any file of its folder but a young
    /// temporary and foreign files).
    HostGone,
    /// A temporary older than [`STALE_TEMPORARY`].
    StaleTemporary,
}

/// Which of `found` to remove, given the index digests the remaining images name and the
/// workstations of the inventory (`None`: no inventory, every host folder is kept). Pure: a
/// temporary younger than [`STALE_TEMPORARY`] (a deploy writing its record right now) and
/// files that are not records are always kept. Host names compare without case.
pub fn doomed(
    found: &[Found],
    live: &HashSet<String>,
    hosts: Option<&BTreeSet<String>>,
) -> Vec<(usize, Why)> {
    let host_gone = |h: &str| hosts.is_some_and(|hs| !hs.contains(&h.to_ascii_lowercase()));
    found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let why = match &f.seen {
                Seen::Other => return None,
                Seen::Temporary { age } if *age >= STALE_TEMPORARY => Why::StaleTemporary,
                Seen::Temporary { .. } => return None,
                _ if host_gone(&f.host) => Why::HostGone,
                Seen::Unreadable => Why::Unreadable,
                Seen::Record { index } if !live.contains(index) => Why::ImageGone,
                Seen::Record { .. } => return None,
            };
            Some((i, why))
        })
        .collect()
}

/// What [`Scan::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedRecords {
    /// Record files (and stale temporaries) removed, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// The folders of hosts no longer in the inventory, removed once emptied.
    pub hosts: Vec<String>,
}

/// The files of a records folder as [`scan`] read them, to be pruned with [`Scan::prune`].
#[derive(Debug)]
pub struct Scan {
    dir: PathBuf,
    /// Each file, with its inode and size when read.
    found: Vec<(Found, (u64, u64))>,
}

/// Reads every record of `dir` (`<state dir>/records`; none when it does not exist). The
/// index digests the images name are to be taken after this: a record read names an image
/// committed before it was written, and a record written meanwhile is not looked at.
pub fn scan(dir: &Path) -> io::Result<Scan> {
    Ok(Scan {
        dir: dir.to_path_buf(),
        found: read_dir(dir, SystemTime::now())?,
    })
}

impl Scan {
    /// Removes the records [`doomed`] names, then the folders of the hosts no longer in the
    /// inventory once empty. A record that a deploy replaced since it was read (another
    /// inode) is left, and a folder still holding anything (a young temporary, a foreign
    /// file) stays.
    pub fn prune(
        self,
        live: &HashSet<String>,
        hosts: Option<&BTreeSet<String>>,
    ) -> io::Result<PrunedRecords> {
        let listed: Vec<Found> = self.found.iter().map(|(f, _)| f.clone()).collect();
        let mut out = PrunedRecords::default();
        for (i, _why) in doomed(&listed, live, hosts) {
            let (f, (ino, size)) = &self.found[i];
            let path = self.dir.join(&f.host).join(&f.name);
            match std::fs::symlink_metadata(&path) {
                Ok(md) if md.ino() == *ino => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    out.files += 1;
                    out.bytes += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let Some(hosts) = hosts else {
            return Ok(out);
        };
        for host in host_folders(&self.dir)? {
            if hosts.contains(&host.to_ascii_lowercase()) {
                continue;
            }
            match std::fs::remove_dir(self.dir.join(&host)) {
                Ok(()) => out.hosts.push(host),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The host folders of `dir`, sorted (none when `dir` does not exist).
fn host_folders(dir: &Path) -> io::Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Every file of every host folder of `dir`, as seen at `now`, with its inode and size.
fn read_dir(dir: &Path, now: SystemTime) -> io::Result<Vec<(Found, (u64, u64))>> {
    let mut out = Vec::new();
    for host in host_folders(dir)? {
        let hdir = dir.join(&host);
        let mut files: Vec<(String, std::fs::Metadata)> = Vec::new();
        for e in std::fs::read_dir(&hdir)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_file() {
                files.push((e.file_name().to_string_lossy().into_owned(), md));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, md) in files {
            let seen = if name.ends_with(TEMP_SUFFIX) {
                let age = md
                    .modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                Seen::Temporary { age }
            } else if name.ends_with(RECORD_SUFFIX) {
                match std::fs::read(hdir.join(&name)) {
                    Ok(bytes) => match KeptRecord::decode(&bytes) {
                        Ok(r) => Seen::Record {
                            index: r.index().to_string(),
                        },
                        Err(_) => Seen::Unreadable,
                    },
                    // Replaced or removed since the folder was listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            } else {
                Seen::Other
            };
            let host = host.clone();
            out.push((Found { host, name, seen }, (md.ino(), md.size())));
        }
    }
    Ok(out)
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
        assert!(!d.path().join("records/pc01/2.rec.part").exists());
    }

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn found(host: &str, name: &str, seen: Seen) -> Found {
        Found {
            host: host.into(),
            name: name.into(),
            seen,
        }
    }

    fn record(n: u8) -> Seen {
        Seen::Record { index: digest(n) }
    }

    fn young() -> Seen {
        Seen::Temporary {
            age: Duration::from_secs(60),
        }
    }

    fn old() -> Seen {
        Seen::Temporary {
            age: STALE_TEMPORARY + Duration::from_secs(1),
        }
    }

    #[test]
    fn a_record_goes_when_no_image_names_its_index_or_it_does_not_read() {
        let files = vec![
            found("pc01", "1.rec.zst", record(1)),
            found("pc01", "2.rec.zst", record(2)),
            found("pc02", "2.rec.zst", Seen::Unreadable),
            found("pc02", "2.rec.part", young()),
            found("pc03", "2.rec.part", old()),
            found("pc03", "notes.txt", Seen::Other),
        ];
        let live: HashSet<String> = [digest(1)].into();
        assert_eq!(
            doomed(&files, &live, None),
            vec![
                (1, Why::ImageGone),
                (2, Why::Unreadable),
                (4, Why::StaleTemporary)
            ]
        );
        // Every image still there: only the unreadable one and the stale temporary go.
        let live: HashSet<String> = [digest(1), digest(2)].into();
        assert_eq!(
            doomed(&files, &live, None),
            vec![(2, Why::Unreadable), (4, Why::StaleTemporary)]
        );
    }

    #[test]
    fn the_records_of_a_host_out_of_the_inventory_go_but_a_write_in_progress() {
        let files = vec![
            found("PC01", "1.rec.zst", record(1)),
            found("pc09", "1.rec.zst", record(1)),
            found("pc09", "2.rec.zst", Seen::Unreadable),
            found("pc09", "2.rec.part", young()),
            found("pc09", "3.rec.part", old()),
            found("pc09", "notes.txt", Seen::Other),
        ];
        let live: HashSet<String> = [digest(1)].into();
        let hosts: BTreeSet<String> = ["pc01".to_string()].into();
        assert_eq!(
            doomed(&files, &live, Some(&hosts)),
            vec![
                (1, Why::HostGone),
                (2, Why::HostGone),
                (4, Why::StaleTemporary)
            ]
        );
        // No inventory: host folders are kept, the digest rule alone applies.
        assert_eq!(
            doomed(&files, &live, None),
            vec![(2, Why::Unreadable), (4, Why::StaleTemporary)]
        );
        assert!(doomed(&[], &live, Some(&hosts)).is_empty());
    }

    #[test]
    fn prune_removes_what_cannot_serve_and_keeps_the_rest() {
        use crate::image::record::DeployRecord;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("records");
        let r = Records::default();
        r.to_dir(dir.clone());
        let rec = |n: u8| {
            DeployRecord {
                index: digest(n),
                fs_made: 1,
                entries: Vec::new(),
            }
            .encode()
        };
        r.put("pc01", 1, rec(1)).unwrap();
        r.put("pc01", 2, rec(2)).unwrap();
        r.put("pc02", 1, b"not a record".to_vec()).unwrap();
        r.put("pc09", 1, rec(1)).unwrap();
        r.put("pc08", 1, rec(1)).unwrap();
        // pc08's deploy is writing its next record right now.
        std::fs::write(dir.join("pc08/2.rec.part"), b"half").unwrap();
        let hosts: BTreeSet<String> = ["pc01".to_string(), "pc02".to_string()].into();
        let before = std::fs::metadata(dir.join("pc01/2.rec.zst")).unwrap().len()
            + std::fs::metadata(dir.join("pc02/1.rec.zst")).unwrap().len()
            + std::fs::metadata(dir.join("pc09/1.rec.zst")).unwrap().len()
            + std::fs::metadata(dir.join("pc08/1.rec.zst")).unwrap().len();
        let pruned = scan(&dir)
            .unwrap()
            .prune(&[digest(1)].into(), Some(&hosts))
            .unwrap();
        assert_eq!(
            pruned,
            PrunedRecords {
                files: 4,
                bytes: before,
                hosts: vec!["pc09".into()],
            }
        );
        assert_eq!(r.get("pc01", 1).unwrap(), Some(rec(1)));
        assert_eq!(r.get("pc01", 2).unwrap(), None);
        assert_eq!(r.get("pc02", 1).unwrap(), None);
        assert!(dir.join("pc02").is_dir(), "a known host's folder stays");
        assert!(!dir.join("pc09").exists());
        assert!(dir.join("pc08/2.rec.part").is_file(), "a write in progress");
        // Again: nothing more to remove; without a records folder, nothing at all.
        let again = scan(&dir)
            .unwrap()
            .prune(&[digest(1)].into(), Some(&hosts))
            .unwrap();
        assert_eq!(again, PrunedRecords::default());
        let none = scan(&d.path().join("none"))
            .unwrap()
            .prune(&HashSet::new(), None)
            .unwrap();
        assert_eq!(none, PrunedRecords::default());
    }
}
