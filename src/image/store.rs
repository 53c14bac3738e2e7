//! The image store on disk: `<workspace>/images/<room>/<version>/` holding `manifest.toml`
//! and the streams. An image appears only complete: captures are staged in
//! `<room>/.staging-<version>-<random>/`, every file and folder is fsync'd, then the folder is
//! renamed into place. Staging folders are invisible to `list` and removed by `prune`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::error::{ImageError, ImageResult};
use super::hashing::hash_reader;
use super::manifest::{Manifest, check_name};
use crate::ports::{ImageInfo, ImageStore, PortError, PortErrorKind, PortResult};

pub const MANIFEST_FILE: &str = "manifest.toml";
const STAGING_PREFIX: &str = ".staging-";
/// The store's scratch folders (WIM export and import), at its root.
pub const SCRATCH_PREFIX: &str = ".scratch-";

/// The store rooted at a folder (usually `<workspace>/images`).
#[derive(Debug, Clone)]
pub struct FsImageStore {
    root: PathBuf,
}

/// Splits `<room>/<version>` and checks both names.
pub fn parse_id(id: &str) -> ImageResult<(&str, &str)> {
    let (room, version) = id
        .split_once('/')
        .ok_or_else(|| ImageError::BadId(id.to_string()))?;
    if check_name("room", room).is_err() || check_name("version", version).is_err() {
        return Err(ImageError::BadId(id.to_string()));
    }
    Ok((room, version))
}

fn fsync_dir(p: &Path) -> ImageResult<()> {
    File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(ImageError::io(p))
}

impl FsImageStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store of a workspace: `<workspace>/images`.
    pub fn for_workspace(workspace: &Path) -> Self {
        Self::new(workspace.join("images"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn image_dir(&self, id: &str) -> ImageResult<PathBuf> {
        let (room, version) = parse_id(id)?;
        Ok(self.root.join(room).join(version))
    }

    /// Path of one stream of an image (the file name must be listed in its manifest).
    pub fn stream_path(&self, id: &str, file: &str) -> ImageResult<PathBuf> {
        let m = self.manifest(id)?;
        if !m.streams().any(|s| s.file == file) {
            return Err(ImageError::NotFound(format!("{id}/{file}")));
        }
        Ok(self.image_dir(id)?.join(file))
    }

    /// Reads and validates one image's manifest.
    pub fn manifest(&self, id: &str) -> ImageResult<Manifest> {
        let dir = self.image_dir(id)?;
        let path = dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(id.to_string()));
            }
            Err(e) => return Err(ImageError::io(path)(e)),
        };
        let m = Manifest::parse(&text).map_err(|source| ImageError::Manifest {
            id: id.to_string(),
            source,
        })?;
        if m.id() != id {
            return Err(ImageError::Invalid(format!(
                "image folder {id} holds the manifest of {}",
                m.id()
            )));
        }
        Ok(m)
    }

    /// Every image (of one room, or all), sorted by room then capture time then version.
    pub fn list_manifests(&self, room: Option<&str>) -> ImageResult<Vec<Manifest>> {
        let mut out = Vec::new();
        for r in self.subdirs(&self.root)? {
            if room.is_some_and(|want| want != r) {
                continue;
            }
            for v in self.subdirs(&self.root.join(&r))? {
                out.push(self.manifest(&format!("{r}/{v}"))?);
            }
        }
        out.sort_by(|a, b| {
            (&a.room, &a.captured_at, &a.version).cmp(&(&b.room, &b.captured_at, &b.version))
        });
        Ok(out)
    }

    /// Names of the visible sub-folders (staging folders and files are skipped).
    fn subdirs(&self, dir: &Path) -> ImageResult<Vec<String>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io(dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(ImageError::io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.file_type().map_err(ImageError::io(dir))?.is_dir() {
                continue;
            }
            out.push(name);
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes every stream: the outer error is "could not check", the inner names the
    /// broken stream.
    pub fn verify(&self, id: &str) -> ImageResult<Result<(), String>> {
        let m = self.manifest(id)?;
        let dir = self.image_dir(id)?;
        for s in m.streams() {
            let path = dir.join(&s.file);
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Err(format!("stream {} is missing", s.file)));
                }
                Err(e) => return Err(ImageError::io(path)(e)),
            };
            let (digest, size) = hash_reader(io::BufReader::with_capacity(1 << 20, f))
                .map_err(ImageError::io(&path))?;
            if size != s.size {
                return Ok(Err(format!(
                    "stream {} has {size} bytes, the manifest says {}",
                    s.file, s.size
                )));
            }
            if digest != s.sha256 {
                return Ok(Err(format!(
                    "stream {} has digest {digest}, the manifest says {}",
                    s.file, s.sha256
                )));
            }
        }
        Ok(Ok(()))
    }

    /// Keeps the `keep` newest images of each room (of `room` only if given), removes the
    /// others and any leftover staging folder; returns the removed ids.
    pub fn prune(&self, room: Option<&str>, keep: usize) -> ImageResult<Vec<String>> {
        let all = self.list_manifests(room)?;
        let mut removed = Vec::new();
        let rooms: std::collections::BTreeSet<&str> = all.iter().map(|m| m.room.as_str()).collect();
        for r in rooms {
            let of_room: Vec<&Manifest> = all.iter().filter(|m| m.room == r).collect();
            let excess = of_room.len().saturating_sub(keep);
            for m in &of_room[..excess] {
                let dir = self.image_dir(&m.id())?;
                // Rename first so a crash mid-removal never leaves a half image visible.
                let doomed = dir.with_file_name(format!(".removing-{}", m.version));
                fs::rename(&dir, &doomed).map_err(ImageError::io(&dir))?;
                fs::remove_dir_all(&doomed).map_err(ImageError::io(&doomed))?;
                removed.push(m.id());
            }
        }
        if self.root.is_dir() {
            for e in fs::read_dir(&self.root).map_err(ImageError::io(&self.root))? {
                let e = e.map_err(ImageError::io(&self.root))?;
                if e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
                    fs::remove_dir_all(e.path()).map_err(ImageError::io(e.path()))?;
                }
            }
        }
        for r in self.subdirs(&self.root)? {
            if room.is_some_and(|want| want != r) {
                continue;
            }
            let rdir = self.root.join(&r);
            for e in fs::read_dir(&rdir).map_err(ImageError::io(&rdir))? {
                let e = e.map_err(ImageError::io(&rdir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(STAGING_PREFIX) || name.starts_with(".removing-") {
                    fs::remove_dir_all(e.path()).map_err(ImageError::io(e.path()))?;
                }
            }
        }
        Ok(removed)
    }

    /// Starts a new image: a staging folder that becomes the image only on [`Staging::commit`].
    pub fn begin(&self, room: &str, version: &str) -> ImageResult<Staging> {
        let id = format!("{room}/{version}");
        let final_dir = self.image_dir(&id)?;
        if final_dir.exists() {
            return Err(ImageError::Exists(id));
        }
        let room_dir = self.root.join(room);
        fs::create_dir_all(&room_dir).map_err(ImageError::io(&room_dir))?;
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd)
            .map_err(|e| ImageError::Invalid(format!("no randomness: {e}")))?;
        let dir = room_dir.join(format!("{STAGING_PREFIX}{version}-{}", hex::encode(rnd)));
        fs::create_dir(&dir).map_err(ImageError::io(&dir))?;
        Ok(Staging {
            id,
            dir,
            final_dir,
            committed: false,
        })
    }
}

/// An image being written. Dropped without commit, its folder is removed.
#[derive(Debug)]
pub struct Staging {
    id: String,
    dir: PathBuf,
    final_dir: PathBuf,
    committed: bool,
}

impl Staging {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates (or truncates, when a capture restarts) one stream file.
    pub fn create_stream(&self, file: &str) -> ImageResult<(File, PathBuf)> {
        check_name("stream file", file).map_err(|e| ImageError::Invalid(e.to_string()))?;
        if file == MANIFEST_FILE {
            return Err(ImageError::Invalid(format!("{file} is reserved")));
        }
        let path = self.dir.join(file);
        let f = File::create(&path).map_err(ImageError::io(&path))?;
        Ok((f, path))
    }

    /// Writes the manifest, checks every stream it lists is present with its size, fsyncs
    /// everything and renames the folder into place.
    pub fn commit(mut self, manifest: &Manifest) -> ImageResult<()> {
        if manifest.id() != self.id {
            return Err(ImageError::Invalid(format!(
                "manifest of {} committed into {}",
                manifest.id(),
                self.id
            )));
        }
        manifest.validate().map_err(|source| ImageError::Manifest {
            id: self.id.clone(),
            source,
        })?;
        for s in manifest.streams() {
            let p = self.dir.join(&s.file);
            let f = File::open(&p).map_err(ImageError::io(&p))?;
            let len = f.metadata().map_err(ImageError::io(&p))?.len();
            if len != s.size {
                return Err(ImageError::Integrity {
                    file: s.file.clone(),
                    detail: format!("{len} bytes received, {} expected", s.size),
                });
            }
            f.sync_all().map_err(ImageError::io(&p))?;
        }
        let mp = self.dir.join(MANIFEST_FILE);
        let mut f = File::create(&mp).map_err(ImageError::io(&mp))?;
        f.write_all(manifest.render().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(ImageError::io(&mp))?;
        fsync_dir(&self.dir)?;
        if self.final_dir.exists() {
            return Err(ImageError::Exists(self.id.clone()));
        }
        fs::rename(&self.dir, &self.final_dir).map_err(ImageError::io(&self.final_dir))?;
        self.committed = true;
        fsync_dir(
            self.final_dir
                .parent()
                .expect("image folder has a room folder"),
        )?;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn port_err(e: ImageError) -> PortError {
    let kind = match &e {
        ImageError::NotFound(_) => PortErrorKind::NotFound,
        ImageError::Integrity { .. } | ImageError::Manifest { .. } => PortErrorKind::Integrity,
        _ => PortErrorKind::Other,
    };
    PortError::new(kind, e.to_string()).with_source(e)
}

fn info(m: &Manifest) -> ImageInfo {
    ImageInfo {
        room: m.room.clone(),
        version: m.version.clone(),
        id: m.id(),
        recipe_digest: m.recipe_digest.clone(),
        software_digest: m.software_digest.clone(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ImageResult<T> + Send + 'static,
) -> PortResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            PortError::new(
                PortErrorKind::Other,
                format!("image store task failed: {e}"),
            )
        })?
        .map_err(port_err)
}

#[async_trait]
impl ImageStore for FsImageStore {
    async fn list(&self, room: Option<&str>) -> PortResult<Vec<ImageInfo>> {
        let s = self.clone();
        let room = room.map(str::to_string);
        blocking(move || {
            Ok(s.list_manifests(room.as_deref())?
                .iter()
                .map(info)
                .collect())
        })
        .await
    }

    async fn get(&self, id: &str) -> PortResult<Option<ImageInfo>> {
        let s = self.clone();
        let id = id.to_string();
        blocking(move || match s.manifest(&id) {
            Ok(m) => Ok(Some(info(&m))),
            Err(ImageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn verify(&self, id: &str) -> PortResult<Result<(), String>> {
        let s = self.clone();
        let id = id.to_string();
        blocking(move || s.verify(&id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::hashing::hash_reader;
    use crate::image::manifest::{
        Compression, DiskLayout, FORMAT_VERSION, Filesystem, OsFamily, Partition, PartitionLabel,
        StreamInfo,
    };

    fn manifest(version: &str, at: &str, data: &[u8]) -> Manifest {
        let (sha256, size) = hash_reader(data).unwrap();
        Manifest {
            format: FORMAT_VERSION,
            room: "b204".into(),
            version: version.into(),
            recipe_digest: format!("sha256:{}", "a".repeat(64)),
            software_digest: format!("sha256:{}", "b".repeat(64)),
            hardware_model: "m".into(),
            os_family: OsFamily::Linux,
            captured_from: "master".into(),
            captured_at: at.into(),
            parc_version: "0.1.0".into(),
            compression: Compression::Zstd,
            software: Vec::new(),
            disk: DiskLayout {
                label: PartitionLabel::Gpt,
                disk_guid: None,
                partitions: vec![Partition {
                    number: 1,
                    start_mib: 1,
                    size_mib: None,
                    type_code: "linux".into(),
                    uuid: None,
                    name: None,
                    attrs: None,
                    filesystem: Filesystem::Ext4,
                    fs_label: None,
                    fs_uuid: None,
                    mountpoint: Some("/".into()),
                    stream: Some(StreamInfo {
                        file: "p1.tar.zst".into(),
                        sha256,
                        size,
                        uncompressed_size: 0,
                    }),
                }],
            },
            boot_area: None,
        }
    }

    fn put(store: &FsImageStore, version: &str, at: &str, data: &[u8]) -> ImageResult<()> {
        let st = store.begin("b204", version)?;
        let (mut f, _) = st.create_stream("p1.tar.zst")?;
        f.write_all(data).unwrap();
        st.commit(&manifest(version, at, data))
    }

    #[test]
    fn staged_images_are_invisible_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        let st = store.begin("b204", "v1").unwrap();
        st.create_stream("p1.tar.zst").unwrap();
        assert!(store.list_manifests(None).unwrap().is_empty());
        drop(st);
        assert_eq!(fs::read_dir(dir.path().join("b204")).unwrap().count(), 0);
        put(&store, "v1", "2026-01-01T00:00:00Z", b"data").unwrap();
        let ids: Vec<String> = store
            .list_manifests(None)
            .unwrap()
            .iter()
            .map(|m| m.id())
            .collect();
        assert_eq!(ids, vec!["b204/v1"]);
        assert!(matches!(
            store.begin("b204", "v1"),
            Err(ImageError::Exists(_))
        ));
    }

    #[test]
    fn commit_refuses_a_short_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        let st = store.begin("b204", "v1").unwrap();
        let (mut f, _) = st.create_stream("p1.tar.zst").unwrap();
        f.write_all(b"dat").unwrap();
        let err = st.commit(&manifest("v1", "t", b"data")).unwrap_err();
        assert!(err.to_string().contains("p1.tar.zst"), "{err}");
        assert!(store.list_manifests(None).unwrap().is_empty());
    }

    #[test]
    fn verify_names_the_broken_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        put(&store, "v1", "t", b"some stream bytes").unwrap();
        assert_eq!(store.verify("b204/v1").unwrap(), Ok(()));
        let p = dir.path().join("b204/v1/p1.tar.zst");
        fs::write(&p, b"some stream bytez").unwrap();
        let broken = store.verify("b204/v1").unwrap().unwrap_err();
        assert!(
            broken.contains("p1.tar.zst") && broken.contains("digest"),
            "{broken}"
        );
        assert!(matches!(
            store.verify("b204/v9"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(store.verify("../etc"), Err(ImageError::BadId(_))));
    }

    #[test]
    fn prune_keeps_the_newest_and_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        put(&store, "b", "2026-01-02T00:00:00Z", b"2").unwrap();
        put(&store, "a", "2026-01-03T00:00:00Z", b"3").unwrap();
        put(&store, "c", "2026-01-01T00:00:00Z", b"1").unwrap();
        std::mem::forget(store.begin("b204", "d").unwrap()); // a crashed capture
        let removed = store.prune(None, 2).unwrap();
        assert_eq!(removed, vec!["b204/c"]);
        let mut left: Vec<String> = fs::read_dir(dir.path().join("b204"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["a", "b"]);
    }
}
