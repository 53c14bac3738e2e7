//! The target's existing tree as a seed of chunks, for incremental reimages. A workstation
//! already holds most of the new image: its tree, serialised by [`super::treetar`] (unchanged
//! files give the same bytes) and cut with the image's chunk parameters, yields most of the
//! image's chunks. [`TreeSeed::scan`] does that once, keeping only where each chunk's bytes
//! are: the stream's tar headers, PAX records and padding in memory, its file data as places
//! in the files. [`TreeSeed::read`] reads a chunk back from the tree and checks it against its
//! digest, so a tree that changed since the scan (the deploy rewrites files in place) costs a
//! fetch, never a wrong byte.
//!
//! Memory, per entry (x86-64):
//! - each distinct chunk: 49 bytes of digest map (32 digest + 8 offset + 4 length, padded
//!   to 48, and the table's control byte), over a load of 7/16 to 7/8: 56 to 112 bytes;
//! - each regular file with data: 32 bytes of segment and its path relative to the root
//!   (45 bytes on average on a Debian tree);
//! - each tar entry: its header (512 bytes), PAX record (extended attributes), GNU long-name
//!   entry and padding to 512 (256 bytes on average), ~730 bytes a Debian entry, kept
//!   zstd-compressed by blocks of 64 KiB: ~20 bytes.
//!
//! A Debian tree of 1.5 GB and 55 k entries (44.5 k files with data) takes 6 MB cut at
//! 16/64/256 KiB (16.6 k chunks), 10 MB at 4/16/64 KiB (67 k chunks). Its scan, page cache
//! warm, runs at 820 and 730 MB/s on 2 vCPUs (EPYC, SHA extensions), and its chunks read back
//! at 1 GB/s: see the `scan_speed` bench. The cutting thread bounds the scan where there are
//! more cores.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::{Digest, Sha256};

use super::chunks::{Batch, ChunkParams, ChunkRef, Cutter};
use super::pipe::{ChunkWriter, chunk_pipe};
use super::treetar::{TarSink, write_tree_to};

/// The pipe between the tar thread and the cutting thread: 8 blocks of 1 MiB.
const PIPE_DEPTH: usize = 8;
const PIPE_BLOCK: usize = 1 << 20;

/// The target's existing tree as a seed of chunks.
pub struct TreeSeed {
    root: PathBuf,
    /// The root folder, opened once: files are opened beneath it.
    root_dir: File,
    /// Digest → where the chunk's first occurrence is in the stream.
    chunks: HashMap<[u8; 32], Place>,
    layout: Layout,
    /// The file read last (its segment's index), kept open for the next chunk.
    open: Option<(usize, File)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub offset: u64,
    pub len: u32,
}

/// What an incremental deploy seeds from: the chunks of the image the target already holds.
pub trait ChunkSeed: Send {
    /// Whether the seed holds a chunk with this digest and length.
    fn has(&self, c: &ChunkRef) -> bool;
    /// The bytes of chunk `c` read back from the target, checked against its digest and
    /// length: `Ok(None)` when the seed does not hold it, or no longer does (the target
    /// changed since the scan). Errors are the target's I/O errors only.
    fn read(&mut self, c: &ChunkRef) -> io::Result<Option<Vec<u8>>>;
}

impl ChunkSeed for TreeSeed {
    fn has(&self, c: &ChunkRef) -> bool {
        TreeSeed::has(self, c)
    }
    fn read(&mut self, c: &ChunkRef) -> io::Result<Option<Vec<u8>>> {
        TreeSeed::read(self, c)
    }
}

/// Where the bytes of the serialised stream are: file data as segments of files, everything
/// else (inline bytes) in memory, in stream order.
#[derive(Debug, Default)]
struct Layout {
    /// The stream minus its file data.
    inline: Inline,
    /// The file data, in stream order; a file of no bytes has none.
    files: Vec<FileSeg>,
    /// The paths of `files`, one after the other.
    names: Vec<u8>,
    /// Bytes of the stream.
    len: u64,
}

/// The data of one file in the stream, from its first byte.
#[derive(Debug, Clone, Copy)]
struct FileSeg {
    /// Offset of its first byte in the stream.
    start: u64,
    len: u64,
    /// File data bytes in the stream before `start` (so `start - data_before` inline bytes).
    data_before: u64,
    /// End of its path in `Layout::names` (it starts where the previous one's ends).
    name_end: u64,
}

/// What is at a stream offset, and for how many bytes on.
enum Spot {
    Inline { at: usize, left: u64 },
    File { seg: usize, at: u64, left: u64 },
}

impl Layout {
    fn name(&self, seg: usize) -> &[u8] {
        let start = if seg == 0 {
            0
        } else {
            self.files[seg - 1].name_end
        };
        &self.names[start as usize..self.files[seg].name_end as usize]
    }

    /// What is at `pos` (< `len`).
    fn spot(&self, pos: u64) -> Spot {
        let i = self.files.partition_point(|f| f.start <= pos);
        let mut data_before = 0;
        if let Some(f) = i.checked_sub(1).map(|k| &self.files[k]) {
            if pos < f.start + f.len {
                return Spot::File {
                    seg: i - 1,
                    at: pos - f.start,
                    left: f.start + f.len - pos,
                };
            }
            data_before = f.data_before + f.len;
        }
        let end = self.files.get(i).map_or(self.len, |f| f.start);
        Spot::Inline {
            at: (pos - data_before) as usize,
            left: end - pos,
        }
    }

    fn memory(&self) -> usize {
        self.inline.memory() + self.names.capacity() + self.files.capacity() * size_of::<FileSeg>()
    }
}

/// Raw bytes of an inline block.
const INLINE_BLOCK: usize = 64 << 10;

/// The stream's bytes outside file data, zstd-compressed (level 1) in blocks of
/// [`INLINE_BLOCK`]: tar headers and padding are mostly zeros and repeated fields, ~35 times
/// smaller so (40 MB to 1.1 MB on a Debian tree of 55 k entries, compressed in 22 ms); a block
/// is decompressed in ~20 us when read.
#[derive(Debug, Default)]
struct Inline {
    /// The full blocks, compressed.
    blocks: Vec<Box<[u8]>>,
    /// The block being filled, raw.
    tail: Vec<u8>,
    /// The block decompressed last, kept for the next read.
    cached: Option<(usize, Vec<u8>)>,
}

impl Inline {
    fn push(&mut self, mut b: &[u8], z: &mut zstd::bulk::Compressor<'_>) -> io::Result<()> {
        while !b.is_empty() {
            let n = (INLINE_BLOCK - self.tail.len()).min(b.len());
            self.tail.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.tail.len() == INLINE_BLOCK {
                self.blocks.push(z.compress(&self.tail)?.into_boxed_slice());
                self.tail.clear();
            }
        }
        Ok(())
    }

    /// Copies the inline bytes from `at` into `buf`.
    fn read(&mut self, at: usize, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let (block, from) = ((at + done) / INLINE_BLOCK, (at + done) % INLINE_BLOCK);
            let raw: &[u8] = if block == self.blocks.len() {
                &self.tail
            } else {
                if self.cached.as_ref().is_none_or(|(b, _)| *b != block) {
                    let raw = zstd::bulk::decompress(&self.blocks[block], INLINE_BLOCK)?;
                    self.cached = Some((block, raw));
                }
                &self.cached.as_ref().expect("decompressed above").1
            };
            let n = (raw.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&raw[from..from + n]);
            done += n;
        }
        Ok(())
    }

    fn memory(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|b| b.len()).sum();
        blocks + self.blocks.capacity() * size_of::<Box<[u8]>>() + 2 * INLINE_BLOCK
    }
}

/// The tar thread's sink: passes every byte on to the cutter and records the layout.
struct Recorder {
    out: ChunkWriter,
    layout: Layout,
    zstd: zstd::bulk::Compressor<'static>,
    /// Bytes of the current file's data still to come.
    data_left: u64,
    data_total: u64,
}

impl Write for Recorder {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.out.write(b)?;
        let data = (n as u64).min(self.data_left) as usize;
        self.data_left -= data as u64;
        self.layout.inline.push(&b[data..n], &mut self.zstd)?;
        self.layout.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TarSink for Recorder {
    fn file_data(&mut self, path: &Path, len: u64) {
        debug_assert_eq!(self.data_left, 0, "file data announced inside file data");
        if len == 0 {
            return;
        }
        let l = &mut self.layout;
        l.names.extend_from_slice(path.as_os_str().as_bytes());
        l.files.push(FileSeg {
            start: l.len,
            len,
            data_before: self.data_total,
            name_end: l.names.len() as u64,
        });
        self.data_total += len;
        self.data_left = len;
    }
}

impl TreeSeed {
    /// Serialises `root` with treetar, cuts the stream with `params` (the image's), hashes
    /// every chunk (sha256) and remembers, for the first occurrence of each digest, where its
    /// bytes are in the stream. A thread reads the files and writes the stream, this one cuts
    /// it, others hash the chunks.
    pub fn scan(root: &Path, params: ChunkParams) -> io::Result<TreeSeed> {
        params
            .check()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let root_dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(root)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
        let (w, r) = chunk_pipe(PIPE_DEPTH, PIPE_BLOCK);
        let (layout, chunks) = thread::scope(|s| {
            let tar = s.spawn(move || -> io::Result<Layout> {
                let mut rec = Recorder {
                    out: w,
                    layout: Layout::default(),
                    zstd: zstd::bulk::Compressor::new(1)?,
                    data_left: 0,
                    data_total: 0,
                };
                write_tree_to(root, &mut rec)?;
                rec.out.finish()?;
                Ok(rec.layout)
            });
            // Returning drops the reader, which unblocks the tar thread if cutting failed.
            let cut = cut(r, params);
            let tar = tar.join().expect("the tar thread panicked");
            match (tar, cut) {
                (Ok(layout), Ok(chunks)) => Ok((layout, chunks)),
                (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
                // The first failure, not the broken pipe it caused in the other thread.
                (Err(t), Err(c)) => Err(if is_pipe(&t) { c } else { t }),
            }
        })?;
        let (mut layout, mut chunks) = (layout, chunks);
        chunks.shrink_to_fit();
        layout.files.shrink_to_fit();
        layout.names.shrink_to_fit();
        layout.inline.blocks.shrink_to_fit();
        Ok(TreeSeed {
            root: root.to_path_buf(),
            root_dir,
            chunks,
            layout,
            open: None,
        })
    }

    /// Whether the seed holds a chunk with this digest and length.
    pub fn has(&self, c: &ChunkRef) -> bool {
        self.chunks.get(&c.digest).is_some_and(|p| p.len == c.len)
    }

    /// The bytes of chunk `c` read back from the tree, checked against its digest and
    /// length: `Ok(None)` when the seed does not hold it, or when what is read back no longer
    /// matches (the tree changed since the scan; a file vanished, shrank or was replaced by
    /// something else than a regular file). Errors are the tree's I/O errors only.
    pub fn read(&mut self, c: &ChunkRef) -> io::Result<Option<Vec<u8>>> {
        let Some(place) = self.chunks.get(&c.digest).copied() else {
            return Ok(None);
        };
        if place.len != c.len {
            return Ok(None);
        }
        let mut buf = vec![0u8; c.len as usize];
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done) as u64;
            let to = &mut buf[done..];
            done += match self.layout.spot(place.offset + done as u64) {
                Spot::Inline { at, left } => {
                    let n = want.min(left) as usize;
                    self.layout.inline.read(at, &mut to[..n])?;
                    n
                }
                Spot::File { seg, at, left } => {
                    let n = want.min(left) as usize;
                    if !self.read_file(seg, at, &mut to[..n])? {
                        return Ok(None);
                    }
                    n
                }
            };
        }
        if Sha256::digest(&buf)[..] != c.digest {
            return Ok(None);
        }
        Ok(Some(buf))
    }

    /// Chunks (distinct digests) of the scanned stream.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes of the scanned stream.
    pub fn stream_len(&self) -> u64 {
        self.layout.len
    }

    /// Heap bytes the seed holds (its digest map, segments, paths and inline bytes), roughly.
    pub fn memory(&self) -> usize {
        let map = self.chunks.capacity() * (size_of::<([u8; 32], Place)>() + 1);
        map + self.layout.memory()
    }

    /// Fills `buf` from the file of segment `seg` at `at`; false when the file is no longer
    /// there as it was (gone, shorter, not a regular file, a symlink on the way).
    fn read_file(&mut self, seg: usize, at: u64, buf: &mut [u8]) -> io::Result<bool> {
        let name = self.layout.name(seg);
        let with_path = |e: io::Error| {
            let p = self.root.join(std::ffi::OsStr::from_bytes(name));
            io::Error::new(e.kind(), format!("{}: {e}", p.display()))
        };
        if self.open.as_ref().is_none_or(|(s, _)| *s != seg) {
            self.open = None;
            let Some(f) = open_beneath(&self.root_dir, name).map_err(with_path)? else {
                return Ok(false);
            };
            self.open = Some((seg, f));
        }
        let (_, f) = self.open.as_ref().expect("opened above");
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], at + done as u64) {
                Ok(0) => return Ok(false),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(with_path(e)),
            }
        }
        Ok(true)
    }
}

/// Cuts `input` as `chunks::chunk_into` does, and hashes the chunks on other threads (cutting
/// and hashing cost about the same, so one thread doing both would bound the scan wherever
/// cores are to spare); the first place of each digest.
pub(super) fn cut(input: impl Read, params: ChunkParams) -> io::Result<HashMap<[u8; 32], Place>> {
    // Beside this thread and the tar thread; more than 4 would wait for the cutter.
    let hashers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(2)
        .clamp(1, 4);
    let (tx, rx) = sync_channel::<Batch>(2 * hashers);
    // Shared by the hashers only: should they all die, sending fails instead of blocking.
    let rx = Arc::new(Mutex::new(rx));
    thread::scope(|s| {
        let workers: Vec<_> = (0..hashers)
            .map(|_| {
                let rx = Arc::clone(&rx);
                s.spawn(move || {
                    let mut map = HashMap::new();
                    loop {
                        let next = rx.lock().expect("a hashing thread panicked").recv();
                        let Ok(batch) = next else {
                            return map;
                        };
                        for (offset, data) in batch.chunks() {
                            let place = Place {
                                offset,
                                len: data.len() as u32,
                            };
                            keep_first(&mut map, Sha256::digest(data).into(), place);
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        let cutting = (|| -> io::Result<()> {
            let cutter = Cutter::new(input, params).map_err(io::Error::other)?;
            for batch in cutter {
                if tx.send(batch?).is_err() {
                    break; // The hashers panicked: joining them says so.
                }
            }
            Ok(())
        })();
        drop(tx);
        let mut maps = workers
            .into_iter()
            .map(|w| w.join().expect("a hashing thread panicked"));
        let mut map = maps.next().expect("at least one hashing thread");
        for other in maps {
            for (digest, place) in other {
                keep_first(&mut map, digest, place);
            }
        }
        cutting.map(|()| map)
    })
}

/// Records `place` for `digest` unless an earlier place is recorded.
fn keep_first(map: &mut HashMap<[u8; 32], Place>, digest: [u8; 32], place: Place) {
    map.entry(digest)
        .and_modify(|p| {
            if place.offset < p.offset {
                *p = place;
            }
        })
        .or_insert(place);
}

fn is_pipe(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

/// Opens the regular file `rel` beneath `dir` for reading without following any symlink
/// (openat2 with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`; on kernels before 5.6, openat with
/// `O_NOFOLLOW`, which guards the last component only) and without blocking on a fifo put in
/// its place. `None` when there is no regular file there any more.
fn open_beneath(dir: &File, rel: &[u8]) -> io::Result<Option<File>> {
    let c = CString::new(rel)?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let flags = flags | libc::O_CLOEXEC;
    // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH;
    // SAFETY: a valid directory descriptor, a NUL-terminated path, `how` and its size.
    let mut fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    } as libc::c_int;
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // SAFETY: as above.
        fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) };
    }
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV | libc::EAGAIN) => {
                Ok(None)
            }
            _ => Err(e),
        };
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    let f = unsafe { File::from_raw_fd(fd) };
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::chunks::{ChunkStore, chunk_into};
    use crate::image::testdata::{SMALL, make_tree, noise, settle, text};
    use crate::image::treetar::write_tree;
    use fastcdc::v2020::StreamCDC;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn stream(root: &Path) -> Vec<u8> {
        let mut s = Vec::new();
        write_tree(root, &mut s).unwrap();
        s
    }

    fn index(stream: &[u8], params: ChunkParams) -> Vec<ChunkRef> {
        StreamCDC::new(
            stream,
            params.min as usize,
            params.avg as usize,
            params.max as usize,
        )
        .map(|c| {
            let c = c.unwrap();
            ChunkRef {
                digest: Sha256::digest(&c.data).into(),
                len: c.length as u32,
            }
        })
        .collect()
    }

    /// The stream offset of each chunk of `index`.
    fn offsets(index: &[ChunkRef]) -> Vec<u64> {
        let mut at = 0;
        index
            .iter()
            .map(|c| {
                let o = at;
                at += u64::from(c.len);
                o
            })
            .collect()
    }

    #[test]
    fn inline_bytes_read_back_across_compressed_blocks() {
        let mut z = zstd::bulk::Compressor::new(1).unwrap();
        let mut inline = Inline::default();
        let mut all = Vec::new();
        for i in 0..300u64 {
            let piece = if i % 3 == 0 {
                vec![0u8; 512 * (i as usize % 5)]
            } else {
                noise(i, (i as usize * 997) % 3000)
            };
            inline.push(&piece, &mut z).unwrap();
            all.extend_from_slice(&piece);
        }
        assert!(inline.blocks.len() >= 4 && !inline.tail.is_empty());
        for (at, len) in [(0, 10), (65_530, 20), (1000, 200_000), (all.len() - 5, 5)] {
            let mut buf = vec![0u8; len];
            inline.read(at, &mut buf).unwrap();
            assert_eq!(buf, all[at..at + len], "{at}+{len}");
        }
        let mut whole = vec![0u8; all.len()];
        inline.read(0, &mut whole).unwrap();
        assert_eq!(whole, all);
    }

    #[test]
    fn a_seed_holds_and_reads_back_every_chunk_of_its_own_tree() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        make_tree(&tree);
        let s = stream(&tree);
        assert!(s.len() > 5 << 20, "{} bytes", s.len());
        let store = ChunkStore::new(d.path().join("chunks"));
        let stored = chunk_into(&s[..], SMALL, &store, 1).unwrap();

        let mut seed = TreeSeed::scan(&tree, SMALL).unwrap();
        assert_eq!(seed.stream_len(), s.len() as u64);
        let distinct: std::collections::HashSet<_> =
            stored.index.chunks.iter().map(|c| c.digest).collect();
        assert_eq!(seed.chunk_count(), distinct.len());
        for c in &stored.index.chunks {
            assert!(seed.has(c), "chunk {}", c.hex());
            let back = seed.read(c).unwrap().expect("read back");
            assert_eq!(back, store.get(c).unwrap(), "chunk {}", c.hex());
        }
        // Not held: an unknown digest, a known one with another length.
        let first = stored.index.chunks[0];
        let other_len = ChunkRef {
            len: first.len + 1,
            ..first
        };
        let unknown = ChunkRef {
            digest: [7; 32],
            len: 100,
        };
        for c in [other_len, unknown] {
            assert!(!seed.has(&c));
            assert_eq!(seed.read(&c).unwrap(), None);
        }
    }

    #[test]
    fn an_old_tree_seeds_most_of_a_new_image() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old");
        let new = d.path().join("new");
        make_tree(&old);
        make_tree(&new);
        // 1% of the files: two modified (one in place, one grown), one added, one deleted.
        let big = new.join("d0/sub0/file-000.dat");
        let f = OpenOptions::new().write(true).open(&big).unwrap();
        f.write_all_at(&noise(5000, 3000), 500_000).unwrap();
        let small = new.join("d3/sub1/file-031.dat");
        let mut grown = fs::read(&small).unwrap();
        grown.extend_from_slice(b"\nexport EXTRA=1\n");
        fs::write(&small, grown).unwrap();
        fs::write(new.join("d4/added.conf"), text(6000, 7000)).unwrap();
        fs::remove_file(new.join("d5/sub2/file-026.dat")).unwrap();
        settle(&new);

        let mut seed = TreeSeed::scan(&old, SMALL).unwrap();
        let index = index(&stream(&new), SMALL);
        let (mut held, mut total) = (0u64, 0u64);
        for c in &index {
            total += u64::from(c.len);
            if seed.has(c) {
                held += u64::from(c.len);
                let back = seed.read(c).unwrap().expect("a held chunk reads back");
                assert_eq!(Sha256::digest(&back)[..], c.digest);
            }
        }
        assert!(
            held * 100 >= total * 80,
            "the seed holds {held} of {total} bytes"
        );
        assert!(held < total, "the changes must cost something");
    }

    /// The chunk of `index` over stream offset `at`.
    fn chunk_over(index: &[ChunkRef], at: u64) -> ChunkRef {
        let offs = offsets(index);
        let i = offs.partition_point(|&o| o <= at) - 1;
        index[i]
    }

    /// Where the data of `rel` starts in the seed's stream.
    fn data_at(seed: &TreeSeed, rel: &str) -> u64 {
        let l = &seed.layout;
        let seg = (0..l.files.len())
            .find(|&i| l.name(i) == rel.as_bytes())
            .unwrap_or_else(|| panic!("{rel} has no data segment"));
        l.files[seg].start
    }

    #[test]
    fn a_tree_changed_after_the_scan_reads_as_missing_not_as_an_error() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        make_tree(&tree);
        let index = index(&stream(&tree), SMALL);
        let mut seed = TreeSeed::scan(&tree, SMALL).unwrap();
        let cases = [
            ("d0/sub0/file-000.dat", "modified"),
            ("d1/sub2/file-050.dat", "deleted"),
            ("d2/sub1/file-100.dat", "shrunk"),
            ("d3/sub0/file-150.dat", "a symlink"),
            ("d4/sub1/file-004.dat", "a fifo"),
            ("d5/sub2/file-005.dat", "in a folder now a symlink"),
        ];
        let mut victims = Vec::new();
        for (rel, how) in cases {
            // A chunk well inside the file's data, read back fine before the change.
            let c = chunk_over(&index, data_at(&seed, rel) + 16_000);
            assert!(seed.read(&c).unwrap().is_some(), "{rel} before");
            victims.push((rel, how, c));
        }
        // A descriptor kept open would still read a deleted file's old bytes (rightly so:
        // they are checked), which is not what this test is about.
        seed.open = None;
        for (rel, how, _) in &victims {
            let p = tree.join(rel);
            match *how {
                "modified" => {
                    let mut data = fs::read(&p).unwrap();
                    for b in &mut data[..200_000] {
                        *b ^= 0xff;
                    }
                    fs::write(&p, data).unwrap();
                }
                "deleted" => fs::remove_file(&p).unwrap(),
                "shrunk" => File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(10_000)
                    .unwrap(),
                "a symlink" => {
                    let real = d.path().join("elsewhere");
                    fs::rename(&p, &real).unwrap();
                    symlink(&real, &p).unwrap();
                }
                "a fifo" => {
                    fs::remove_file(&p).unwrap();
                    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
                    // SAFETY: a NUL-terminated path.
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
                }
                _ => {
                    let dir = p.parent().unwrap();
                    let real = d.path().join("moved-dir");
                    fs::rename(dir, &real).unwrap();
                    symlink(&real, dir).unwrap();
                }
            }
        }
        for (rel, how, c) in victims {
            assert!(seed.has(&c));
            assert_eq!(seed.read(&c).unwrap(), None, "{rel} {how}");
        }
        // The rest of the tree still reads back.
        let c = chunk_over(&index, data_at(&seed, "d0/sub1/file-007.dat"));
        assert!(seed.read(&c).unwrap().is_some());
    }

    /// `cargo test --release --lib image::seed::tests::scan_speed -- --ignored --nocapture`,
    /// with `PARC_SEED_TREE` a tree to scan (default `/usr`) and `PARC_SEED_AVG` the average
    /// chunk size in KiB (min a quarter, max 4 times; default: `ChunkParams::default()`).
    /// The first scan may find a cold page cache, the next three a warm one.
    #[test]
    #[ignore]
    fn scan_speed() {
        let root = std::env::var_os("PARC_SEED_TREE").map_or("/usr".into(), PathBuf::from);
        let params = std::env::var("PARC_SEED_AVG").map_or(ChunkParams::default(), |kib| {
            let avg: u32 = kib.parse::<u32>().expect("PARC_SEED_AVG: KiB") << 10;
            ChunkParams {
                min: avg / 4,
                avg,
                max: avg * 4,
            }
        });
        println!("{} with {params:?}", root.display());
        for pass in ["first", "warm", "warm", "warm"] {
            let t = std::time::Instant::now();
            let seed = TreeSeed::scan(&root, params).unwrap();
            let s = t.elapsed().as_secs_f64();
            let l = &seed.layout;
            println!(
                "{pass}: {} MB in {s:.2} s = {:.0} MB/s; {} chunks, {} file segments, \
                 inline {} MB (compressed {} KB), paths {} MB, memory {} MB",
                seed.stream_len() / 1_000_000,
                seed.stream_len() as f64 / s / 1e6,
                seed.chunk_count(),
                l.files.len(),
                (l.len - l.files.iter().map(|f| f.len).sum::<u64>()) / 1_000_000,
                l.inline.blocks.iter().map(|b| b.len()).sum::<usize>() / 1000,
                l.names.len() / 1_000_000,
                seed.memory() / 1_000_000,
            );
        }
        // Every chunk read back, in stream order, as a deploy would.
        let mut seed = TreeSeed::scan(&root, params).unwrap();
        let mut refs: Vec<_> = seed
            .chunks
            .iter()
            .map(|(d, p)| (p.offset, *d, p.len))
            .collect();
        refs.sort_unstable();
        let t = std::time::Instant::now();
        let mut n = 0u64;
        for (_, digest, len) in refs {
            let c = ChunkRef { digest, len };
            n += seed.read(&c).unwrap().expect("an unchanged tree").len() as u64;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "read back: {} MB in {s:.2} s = {:.0} MB/s",
            n / 1_000_000,
            n as f64 / s / 1e6
        );
    }
}
