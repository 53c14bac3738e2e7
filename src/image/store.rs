//! The image store on disk: `<workspace>/images/<room>/<version>/` holding `manifest.toml`
//! and the streams. An image appears only complete: captures are staged in
//! `<room>/.staging-<version>-<random>/`, every file and folder is fsync'd, then the folder is
//! renamed into place. Staging folders are invisible to `list` and removed by `prune`.
//!
//! A stream is either one file of the image folder or, for captures since the chunk store,
//! content-defined chunks in `<store>/chunks/` shared by every image, listed by an index file
//! of the image folder (`super::chunks`). Readers get the same bytes either way
//! ([`FsImageStore::open_stream`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::Digest;

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use super::chunks::{ChunkIndex, ChunkParams, ChunkStore, Concat, StoreLock, chunk_into};
use super::error::{ImageError, ImageResult};
use super::hashing::{digest_string, hash_reader};
use super::manifest::{IndexRef, Manifest, StreamInfo, check_name};
use crate::ports::{ImageInfo, ImageStore, PortError, PortErrorKind, PortResult};

pub const MANIFEST_FILE: &str = "manifest.toml";
/// The manifest's digest (`sha256:<hex>`), written beside it at commit: a manifest edited or
/// damaged since is refused (images committed before it existed are read without).
pub const MANIFEST_DIGEST_FILE: &str = "manifest.toml.sha256";
const STAGING_PREFIX: &str = ".staging-";
/// The store's scratch folders (WIM export and import), at its root.
pub const SCRATCH_PREFIX: &str = ".scratch-";
/// The chunk folder at the store's root (`super::chunks`).
pub const CHUNKS_DIR: &str = "chunks";

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

/// Whether `digest` and `size` are those the manifest gives stream `s`.
fn same_stream(s: &StreamInfo, digest: &str, size: u64) -> Result<(), String> {
    if size != s.size {
        return Err(format!(
            "stream {} has {size} bytes, the manifest says {}",
            s.file, s.size
        ));
    }
    if digest != s.sha256 {
        return Err(format!(
            "stream {} has digest {digest}, the manifest says {}",
            s.file, s.sha256
        ));
    }
    Ok(())
}

/// An image's streams read from the store, chunk by chunk when asked: what a local deploy
/// (the benches, the tests, a WIM export) reads.
#[derive(Debug)]
pub struct StoreSource {
    pub store: FsImageStore,
    pub id: String,
    /// What each incremental restore took from the disk and from the store.
    pub seeded: Vec<(String, super::incremental::Seeded)>,
}

impl StoreSource {
    pub fn new(store: FsImageStore, id: &str) -> Self {
        Self {
            store,
            id: id.to_string(),
            seeded: Vec::new(),
        }
    }
}

impl super::deploy::StreamSource for StoreSource {
    fn open(&mut self, stream: &StreamInfo) -> io::Result<Box<dyn Read + Send + '_>> {
        self.store
            .open_stream(&self.id, stream, 0)
            .map_err(io::Error::other)
    }

    fn fetcher(&mut self) -> Option<&mut dyn super::incremental::ChunkFetcher> {
        Some(self)
    }

    fn seeded(&mut self, s: &StreamInfo, what: &super::incremental::Seeded) {
        self.seeded.push((s.file.clone(), what.clone()));
    }
}

impl super::incremental::ChunkFetcher for StoreSource {
    fn index(&mut self, s: &StreamInfo) -> io::Result<Vec<u8>> {
        let i = s
            .index
            .as_ref()
            .ok_or_else(|| io::Error::other(format!("{} has no index", s.file)))?;
        let dir = self.store.image_dir(&self.id).map_err(io::Error::other)?;
        fs::read(dir.join(&i.file))
    }

    fn fetch(
        &mut self,
        chunks: Vec<super::chunks::ChunkRef>,
    ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
        let store = self.store.chunks();
        Box::new(chunks.into_iter().map(move |c| fs::read(store.path(&c))))
    }
}

/// What a prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub images: Vec<String>,
    /// Chunks no image names any more, and their stored bytes.
    pub chunks: usize,
    pub chunk_bytes: u64,
}

/// What the endpoint serves for a file name of an image.
#[derive(Debug)]
pub enum Served {
    /// A file of the image folder (a single-file stream, an index).
    File(PathBuf),
    /// A chunked stream: its chunk files concatenated ([`Concat`]).
    Chunks(Arc<ChunkIndex>),
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

    /// The store's chunk folder.
    pub fn chunks(&self) -> ChunkStore {
        ChunkStore::new(self.root.join(CHUNKS_DIR))
    }

    /// What the endpoint serves as `file` of an image: a stream (its stored bytes, however
    /// kept) or a stream's index file. The name must be listed in the manifest.
    pub fn served(&self, id: &str, file: &str) -> ImageResult<Served> {
        let m = self.manifest(id)?;
        if let Some(s) = m.streams().find(|s| s.file == file) {
            return Ok(match &s.index {
                None => Served::File(self.image_dir(id)?.join(file)),
                Some(_) => Served::Chunks(Arc::new(self.index(id, s)?)),
            });
        }
        if m.streams()
            .any(|s| s.index.as_ref().is_some_and(|i| i.file == file))
        {
            return Ok(Served::File(self.image_dir(id)?.join(file)));
        }
        Err(ImageError::NotFound(format!("{id}/{file}")))
    }

    /// Stream `s` of image `id` as stored, from byte `start`: the file, or the chunk files
    /// concatenated. The caller checks the digest of what it reads.
    pub fn open_stream(
        &self,
        id: &str,
        s: &StreamInfo,
        start: u64,
    ) -> ImageResult<Box<dyn Read + Send>> {
        use std::io::{Seek, SeekFrom};
        match &s.index {
            None => {
                let path = self.image_dir(id)?.join(&s.file);
                let mut f = File::open(&path).map_err(ImageError::io(&path))?;
                f.seek(SeekFrom::Start(start))
                    .map_err(ImageError::io(&path))?;
                Ok(Box::new(f))
            }
            Some(_) => Ok(Box::new(Concat::new(
                self.chunks(),
                Arc::new(self.index(id, s)?),
                start,
            ))),
        }
    }

    /// The chunk index of stream `s` of image `id`, checked against the manifest's digest.
    pub fn index(&self, id: &str, s: &StreamInfo) -> ImageResult<ChunkIndex> {
        let Some(i) = &s.index else {
            return Err(ImageError::Invalid(format!(
                "stream {} of {id} is not stored as chunks",
                s.file
            )));
        };
        let path = self.image_dir(id)?.join(&i.file);
        let bytes = fs::read(&path).map_err(ImageError::io(&path))?;
        let digest = digest_string(sha2::Sha256::new_with_prefix(&bytes));
        if digest != i.sha256 {
            return Err(ImageError::Integrity {
                file: format!("{id}/{}", i.file),
                detail: format!("digest {digest}, the manifest says {}", i.sha256),
            });
        }
        ChunkIndex::decode(&bytes).map_err(|e| ImageError::Integrity {
            file: format!("{id}/{}", i.file),
            detail: e.to_string(),
        })
    }

    /// Reads and validates one image's manifest.
    pub fn manifest(&self, id: &str) -> ImageResult<Manifest> {
        let dir = self.image_dir(id)?;
        let path = dir.join(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(id.to_string()));
            }
            Err(e) => return Err(ImageError::io(path)(e)),
        };
        let digest_path = dir.join(MANIFEST_DIGEST_FILE);
        match fs::read_to_string(&digest_path) {
            Ok(want) => {
                let got = digest_string(sha2::Sha256::new_with_prefix(&bytes));
                if want.trim() != got {
                    return Err(ImageError::ManifestChanged {
                        id: id.to_string(),
                        detail: format!(
                            "its digest is {got}, {MANIFEST_DIGEST_FILE} says {}",
                            want.trim()
                        ),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io(digest_path)(e)),
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            ImageError::Invalid(format!("image {id}: {MANIFEST_FILE} is not UTF-8 text"))
        })?;
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
        for r in self.rooms()? {
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

    /// Every image's id (of one room, or all), from the folders alone: an image whose
    /// manifest does not read is still named.
    pub fn ids(&self, room: Option<&str>) -> ImageResult<Vec<String>> {
        let mut out = Vec::new();
        for r in self.rooms()? {
            if room.is_some_and(|want| want != r) {
                continue;
            }
            for v in self.subdirs(&self.root.join(&r))? {
                out.push(format!("{r}/{v}"));
            }
        }
        Ok(out)
    }

    /// The room folders (the chunk folder is not one).
    fn rooms(&self) -> ImageResult<Vec<String>> {
        let mut rooms = self.subdirs(&self.root)?;
        rooms.retain(|r| r != CHUNKS_DIR);
        Ok(rooms)
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

    /// Re-hashes every stream (and every chunk of a chunked one): the outer error is "could
    /// not check", the inner names the broken stream or chunk.
    pub fn verify(&self, id: &str) -> ImageResult<Result<(), String>> {
        let m = match self.manifest(id) {
            Ok(m) => m,
            Err(
                e @ (ImageError::ManifestChanged { .. }
                | ImageError::Manifest { .. }
                | ImageError::Invalid(_)),
            ) => {
                return Ok(Err(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        let dir = self.image_dir(id)?;
        for s in m.streams() {
            if s.index.is_some() {
                if let Err(broken) = self.verify_chunks(id, s)? {
                    return Ok(Err(broken));
                }
                continue;
            }
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
            if let Err(broken) = same_stream(s, &digest, size) {
                return Ok(Err(broken));
            }
        }
        Ok(Ok(()))
    }

    /// Every chunk of chunked stream `s` decompressed and checked against its digest, then
    /// the chunk files in order against the stream's digest.
    fn verify_chunks(&self, id: &str, s: &StreamInfo) -> ImageResult<Result<(), String>> {
        let index = match self.index(id, s) {
            Ok(i) => i,
            Err(e @ (ImageError::Integrity { .. } | ImageError::Io { .. })) => {
                return Ok(Err(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        let chunks = self.chunks();
        let mut h = sha2::Sha256::new();
        let mut size = 0u64;
        for (c, &z) in index.chunks.iter().zip(&index.stored) {
            let path = chunks.path(c);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Err(format!(
                        "chunk {} of stream {} is missing",
                        c.hex(),
                        s.file
                    )));
                }
                Err(e) => return Err(ImageError::io(path)(e)),
            };
            let checked = if bytes.len() as u64 != u64::from(z) {
                Err(format!(
                    "chunk {} is stored as {} bytes, the index says {z}",
                    c.hex(),
                    bytes.len()
                ))
            } else {
                super::chunks::decode_chunk(c, &bytes).map(|_| ())
            };
            if let Err(why) = checked {
                return Ok(Err(format!("stream {}: {why}", s.file)));
            }
            h.update(&bytes);
            size += bytes.len() as u64;
        }
        Ok(same_stream(s, &digest_string(h), size))
    }

    /// The digest of every chunk some image's index names (the mark of a prune).
    pub fn live_chunks(&self) -> ImageResult<HashSet<[u8; 32]>> {
        let mut live = HashSet::new();
        for m in self.list_manifests(None)? {
            for s in m.streams().filter(|s| s.index.is_some()) {
                live.extend(self.index(&m.id(), s)?.chunks.iter().map(|c| c.digest));
            }
        }
        Ok(live)
    }

    /// Keeps the `keep` newest images of each room (of `room` only if given), removes the
    /// others and any leftover staging folder, then the chunks no image left names. Refused,
    /// before anything is removed, while a capture writes to the store.
    pub fn prune(&self, room: Option<&str>, keep: usize) -> ImageResult<Pruned> {
        let chunks = self.chunks();
        let held = chunks.lock_exclusive()?;
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
        for r in self.rooms()? {
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
        let live = self.live_chunks()?;
        let (chunks_removed, chunk_bytes) = chunks.sweep(&live, &held)?;
        Ok(Pruned {
            images: removed,
            chunks: chunks_removed,
            chunk_bytes,
        })
    }

    /// Starts a new image: a staging folder that becomes the image only on [`Staging::commit`].
    pub fn begin(&self, room: &str, version: &str) -> ImageResult<Staging> {
        if room == CHUNKS_DIR {
            return Err(ImageError::Invalid(format!(
                "a room cannot be named `{CHUNKS_DIR}`: the image store keeps its chunks there"
            )));
        }
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
        let chunks = self.chunks();
        let lock = chunks.lock_shared()?;
        fs::create_dir(&dir).map_err(ImageError::io(&dir))?;
        Ok(Staging {
            id,
            dir,
            final_dir,
            committed: false,
            chunks,
            _lock: lock,
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
    chunks: ChunkStore,
    /// Shared: no prune sweeps the chunks this image refers to before its manifest is in
    /// place.
    _lock: StoreLock,
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

    /// What cuts streams into this image's chunks, from another thread.
    pub fn chunker(&self) -> StagingChunker {
        StagingChunker {
            dir: self.dir.clone(),
            chunks: self.chunks.clone(),
        }
    }

    /// Writes the manifest, checks every stream it lists is present with its size (every
    /// chunk of a chunked one), fsyncs everything and renames the folder into place.
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
        let mut chunked = false;
        for s in manifest.streams() {
            if let Some(i) = &s.index {
                let p = self.dir.join(&i.file);
                let bytes = fs::read(&p).map_err(ImageError::io(&p))?;
                let index = ChunkIndex::decode(&bytes).map_err(|e| ImageError::Integrity {
                    file: i.file.clone(),
                    detail: e.to_string(),
                })?;
                if let Some(c) = index.chunks.iter().find(|c| !self.chunks.has(c)) {
                    return Err(ImageError::Integrity {
                        file: s.file.clone(),
                        detail: format!("chunk {} is not in the store", c.hex()),
                    });
                }
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(ImageError::io(&p))?;
                chunked = true;
                continue;
            }
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
        if chunked {
            self.chunks.sync()?;
        }
        let mp = self.dir.join(MANIFEST_FILE);
        let text = manifest.render();
        let mut f = File::create(&mp).map_err(ImageError::io(&mp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(ImageError::io(&mp))?;
        let dp = self.dir.join(MANIFEST_DIGEST_FILE);
        let digest = digest_string(sha2::Sha256::new_with_prefix(text.as_bytes()));
        let mut f = File::create(&dp).map_err(ImageError::io(&dp))?;
        f.write_all(format!("{digest}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(ImageError::io(&dp))?;
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

/// Cuts streams into the chunk store for a staged image (see [`Staging::chunker`]); the
/// staging's lock keeps a prune away meanwhile.
#[derive(Debug, Clone)]
pub struct StagingChunker {
    dir: PathBuf,
    chunks: ChunkStore,
}

impl StagingChunker {
    /// Stores the uncompressed stream `input` as chunks and writes its index as
    /// `<file>.idx.zst` in the staging folder; returns the stream's record for the manifest.
    pub fn chunk_stream(
        &self,
        file: &str,
        input: impl Read,
        params: ChunkParams,
    ) -> ImageResult<StreamInfo> {
        check_name("stream file", file).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let chunked = chunk_into(input, params, &self.chunks, 0)?;
        self.finish(file, chunked)
    }

    /// Stores a stream an agent compressed chunk by chunk (`super::chunks::store_frames`),
    /// as [`StagingChunker::chunk_stream`]; also returns the sha256 of the upload as it came.
    pub fn store_frames(
        &self,
        file: &str,
        input: impl Read,
        params: ChunkParams,
    ) -> ImageResult<(StreamInfo, String)> {
        check_name("stream file", file).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let (chunked, upload) = super::chunks::store_frames(input, params, &self.chunks, 0)?;
        Ok((self.finish(file, chunked)?, upload))
    }

    fn finish(&self, file: &str, chunked: super::chunks::Chunked) -> ImageResult<StreamInfo> {
        let index_file = StreamInfo::index_file(file);
        let bytes = chunked.index.encode();
        let path = self.dir.join(&index_file);
        fs::write(&path, &bytes).map_err(ImageError::io(&path))?;
        Ok(StreamInfo {
            file: file.to_string(),
            sha256: chunked.sha256,
            size: chunked.index.stored_len(),
            uncompressed_size: chunked.index.stream_len(),
            index: Some(IndexRef {
                file: index_file,
                sha256: digest_string(sha2::Sha256::new_with_prefix(&bytes)),
            }),
        })
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
        captured_at: Some(m.captured_at.clone()).filter(|t| !t.is_empty()),
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
pub(crate) mod tests {
    use super::*;
    use crate::image::hashing::hash_reader;
    use crate::image::manifest::{
        Compression, DiskLayout, FORMAT_VERSION, Filesystem, OsFamily, Partition, PartitionLabel,
        StreamInfo,
    };
    use crate::image::testdata::noise;

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
                        index: None,
                    }),
                }],
            },
            boot_area: None,
        }
    }

    /// Commits image `b204/<version>`, one single-file stream `data` (other modules' tests
    /// need an image too).
    pub(crate) fn put(
        store: &FsImageStore,
        version: &str,
        at: &str,
        data: &[u8],
    ) -> ImageResult<()> {
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
        // A crashed capture: its staging folder stays, its lock went with its process.
        fs::create_dir(dir.path().join("b204/.staging-d-0123456789ab")).unwrap();
        // A capture in progress holds the store: prune refuses and removes nothing.
        let capture = store.begin("b204", "e").unwrap();
        let err = store.prune(None, 2).unwrap_err().to_string();
        assert!(err.contains("capture is writing"), "{err}");
        assert_eq!(store.list_manifests(None).unwrap().len(), 3);
        drop(capture);
        let removed = store.prune(None, 2).unwrap().images;
        assert_eq!(removed, vec!["b204/c"]);
        let mut left: Vec<String> = fs::read_dir(dir.path().join("b204"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["a", "b"]);
    }

    /// An image whose one stream is `data`, stored as chunks.
    pub(crate) fn put_chunked(
        store: &FsImageStore,
        version: &str,
        at: &str,
        data: &[u8],
    ) -> Manifest {
        let st = store.begin("b204", version).unwrap();
        let s = st
            .chunker()
            .chunk_stream("p1.tar.zst", data, ChunkParams::default())
            .unwrap();
        let mut m = manifest(version, at, b"");
        m.disk.partitions[0].stream = Some(s);
        st.commit(&m).unwrap();
        m
    }

    #[test]
    fn a_manifest_changed_after_commit_is_refused_and_named_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        put_chunked(&store, "a", "2026-01-01T00:00:00Z", &noise(1, 1 << 20));
        let path = store.image_dir("b204/a").unwrap().join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).unwrap();
        assert!(store.manifest("b204/a").is_ok());
        // A change that still parses (another capture time) is refused all the same.
        fs::write(&path, text.replace("2026-01-01", "2026-01-02")).unwrap();
        assert!(matches!(
            store.manifest("b204/a"),
            Err(ImageError::ManifestChanged { .. })
        ));
        let broken = store.verify("b204/a").unwrap().unwrap_err();
        assert!(
            broken.contains("manifest.toml was edited or damaged"),
            "{broken}"
        );
        assert_eq!(store.ids(None).unwrap(), vec!["b204/a"]);
        // An image committed before the digest existed is read as before.
        fs::write(&path, &text).unwrap();
        fs::remove_file(path.with_file_name(MANIFEST_DIGEST_FILE)).unwrap();
        assert_eq!(store.verify("b204/a").unwrap(), Ok(()));
    }

    #[test]
    fn chunked_images_share_chunks_verify_and_prune_safely() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::new(dir.path());
        let base = noise(1, 3 << 20);
        let mut more = base.clone();
        more.extend(noise(2, 1 << 20));
        let a = put_chunked(&store, "a", "2026-01-01T00:00:00Z", &base);
        let b = put_chunked(&store, "b", "2026-01-02T00:00:00Z", &more);
        let sa = a.disk.partitions[0].stream.clone().unwrap();
        assert_eq!(sa.uncompressed_size, base.len() as u64);
        // The stream as served: the chunk files in order, one zstd stream of the data.
        let mut served = Vec::new();
        store
            .open_stream("b204/a", &sa, 0)
            .unwrap()
            .read_to_end(&mut served)
            .unwrap();
        assert_eq!(
            hash_reader(&served[..]).unwrap(),
            (sa.sha256.clone(), sa.size)
        );
        assert_eq!(zstd::stream::decode_all(&served[..]).unwrap(), base);
        assert!(matches!(
            store.served("b204/a", "p1.tar.zst"),
            Ok(Served::Chunks(_))
        ));
        assert!(matches!(
            store.served("b204/a", "p1.tar.zst.idx.zst"),
            Ok(Served::File(_))
        ));
        assert!(matches!(
            store.served("b204/a", "manifest.toml"),
            Err(ImageError::NotFound(_))
        ));
        // Shared chunks are stored once: b added about a third to a's.
        let ia = store.index("b204/a", &sa).unwrap();
        let ib = store
            .index("b204/b", b.disk.partitions[0].stream.as_ref().unwrap())
            .unwrap();
        let all = store.chunks().digests().unwrap().len();
        assert!(
            all < ia.chunks.len() + ib.chunks.len(),
            "{all} chunks stored"
        );
        assert_eq!(store.verify("b204/a").unwrap(), Ok(()));
        assert_eq!(store.verify("b204/b").unwrap(), Ok(()));

        // A corrupt shared chunk: named by verify in both images, with the images using it.
        let victim = ia.chunks[1];
        let path = store.chunks().path(&victim);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        for id in ["b204/a", "b204/b"] {
            let broken = store.verify(id).unwrap().unwrap_err();
            assert!(broken.contains(&victim.hex()), "{id}: {broken}");
        }
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();

        // Prune the older: every chunk of the newer stays, the ones only a used go.
        let pruned = store.prune(None, 1).unwrap();
        assert_eq!(pruned.images, vec!["b204/a"]);
        // a's chunks are b's too, but its last one (cut by the end of its stream).
        assert_eq!(pruned.chunks, 1);
        assert_eq!(store.verify("b204/b").unwrap(), Ok(()));
        let c = put_chunked(&store, "c", "2026-01-03T00:00:00Z", &noise(3, 1 << 20));
        let pruned = store.prune(None, 1).unwrap();
        assert_eq!(pruned.images, vec!["b204/b"]);
        assert!(pruned.chunks > ib.chunks.len() / 2, "{pruned:?}");
        assert_eq!(store.verify(&c.id()).unwrap(), Ok(()));
        assert_eq!(
            store.live_chunks().unwrap().len(),
            store.chunks().digests().unwrap().len()
        );
    }
}
