//! Applies a tar stream written by [`super::treetar`] onto a tree that already holds most of
//! it, in place: an incremental reimage, where the workstation's filesystem is the image it
//! last received plus what its users and updates changed since. Afterwards the tree is exactly
//! what [`super::unpack::unpack`] of the same stream gives on an empty filesystem, but only
//! what differs was written: a regular file's data is compared with the stream block by block
//! and only the blocks that differ are written, an entry of another kind is replaced, and the
//! entries the stream does not name are removed once it has been read. Directory owners,
//! modes, mtimes and xattrs come last, deepest first, as in `unpack`.
//!
//! The old tree is not trusted (its users could plant links in it), so nothing of it is
//! followed: every folder an entry goes into is checked (lstat) to be a real folder, files are
//! opened with `O_NOFOLLOW`, removals neither follow symlinks nor enter other filesystems, and
//! an inode the old tree reaches by several paths (a hard link can lead out of `dst`) is never
//! changed: it is kept while its data and metadata are already right, else replaced by a copy.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{Archive, EntryType};

use super::treetar::read_xattrs;
use super::unpack::{
    UnpackOptions, at, check, cpath, entry_end, fill, pax_xattrs, safe_relative,
    set_owner_mode_time, set_times, set_xattrs,
};

/// The blocks in which file data is compared and written.
const BLOCK: usize = 1 << 20;

/// What an in-place sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    /// Entries in the stream.
    pub entries: u64,
    /// Regular files whose content was already right (not rewritten).
    pub files_kept: u64,
    /// Regular files (re)written, and the data bytes written into them.
    pub files_written: u64,
    pub bytes_written: u64,
    /// Entries of the old tree the stream does not name, removed (a removed folder counts its
    /// whole subtree).
    pub removed: u64,
}

/// Makes `dst` hold exactly the tree of `input` (a treetar stream), as `unpack` would onto an
/// empty filesystem, writing only what differs. Without `opts.posix` (vfat), owners, modes,
/// xattrs and device nodes are left out, as by `unpack`. Reads `input` to its very end.
pub fn sync_tree<R: Read>(input: R, dst: &Path, opts: UnpackOptions) -> io::Result<SyncStats> {
    sync_listed(input, dst, opts, true, &mut |_, _| Ok(()))
}

/// [`sync_tree`] that first shows `on_entry` each entry's path (relative) and where it ends
/// in the stream (the next entry starts there), and stops at its error. Without `sweep`, the
/// entries of the old tree the stream does not name stay: `input` then holds some entries
/// of an image only ([`super::record`]).
pub fn sync_listed<R: Read>(
    input: R,
    dst: &Path,
    opts: UnpackOptions,
    sweep: bool,
    on_entry: &mut dyn FnMut(&Path, u64) -> io::Result<()>,
) -> io::Result<SyncStats> {
    let root = fs::symlink_metadata(dst).map_err(|e| at(e, dst))?;
    if !root.is_dir() {
        return Err(at(io::ErrorKind::NotADirectory.into(), dst));
    }
    let mut s = Syncer {
        dst,
        opts,
        dev: root.dev(),
        named: HashSet::new(),
        checked: vec![PathBuf::new()],
        claimed: HashSet::new(),
        dirs: Vec::new(),
        new: vec![0; BLOCK],
        old: vec![0; BLOCK],
        stats: SyncStats::default(),
    };
    let mut ar = Archive::new(input);
    for entry in ar.entries()? {
        let mut entry = entry?;
        on_entry(&safe_relative(&entry.path()?)?, entry_end(&entry))?;
        s.entry(&mut entry)?;
    }
    // The caller hashes every byte: read past the end-of-archive blocks too.
    io::copy(&mut ar.into_inner(), &mut io::sink())?;
    if sweep {
        s.sweep(Path::new(""))?;
    }
    // Deepest first, so setting a parent's mtime comes after its children (and removals)
    // changed it.
    s.dirs.sort_by(|a, b| b.0.as_os_str().cmp(a.0.as_os_str()));
    for (p, m) in &s.dirs {
        s.apply(p, m, true)?;
    }
    Ok(s.stats)
}

/// The owner, mode, mtime and xattrs (sorted) an entry must end with.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Syncer<'a> {
    dst: &'a Path,
    opts: UnpackOptions,
    /// The device of `dst`: other filesystems mounted inside are not swept.
    dev: u64,
    /// Paths the stream named (and folders made to hold them), as [`Syncer::key`]s: the
    /// sweep keeps them.
    named: HashSet<PathBuf>,
    /// The folders from the root down to the last entry's parent, checked to be real
    /// folders: the stream walks the tree in order, so most entries need no new check.
    checked: Vec<PathBuf>,
    /// Inodes with several paths that a path of the stream kept: another path of them must
    /// get a file of its own.
    claimed: HashSet<(u64, u64)>,
    dirs: Vec<(PathBuf, Meta)>,
    /// A block of the stream, and the same block of the old file.
    new: Vec<u8>,
    old: Vec<u8>,
    stats: SyncStats,
}

impl Syncer<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> io::Result<()> {
        self.stats.entries += 1;
        let rel = safe_relative(&entry.path()?)?;
        let target = self.dst.join(&rel);
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        if rel.as_os_str().is_empty() && kind != EntryType::Directory {
            return Err(at(
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the archive's root is not a folder",
                ),
                &target,
            ));
        }
        let mut xattrs = if self.opts.posix {
            pax_xattrs(entry)?
        } else {
            Vec::new()
        };
        xattrs.sort();
        let h = entry.header();
        let m = Meta {
            mode: h.mode()?,
            uid: h.uid()?,
            gid: h.gid()?,
            mtime: h.mtime()?,
            xattrs,
        };
        let device = match kind {
            EntryType::Char => Some(libc::S_IFCHR),
            EntryType::Block => Some(libc::S_IFBLK),
            EntryType::Fifo => Some(libc::S_IFIFO),
            _ => None,
        };
        if device.is_some() && !self.opts.posix {
            // Not on vfat: not created, as by `unpack`.
            return Ok(());
        }
        let link_src = if kind == EntryType::Link {
            let name = entry.link_name()?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "hard link without a target")
            })?;
            let src = safe_relative(&name)?;
            // A link must not reach through an old symlink either.
            self.parents(&src)?;
            let src = self.dst.join(src);
            let md = fs::symlink_metadata(&src).map_err(|e| at(e, &src))?;
            Some((src, md))
        } else {
            None
        };
        if !rel.as_os_str().is_empty() {
            self.parents(&rel)?;
        }
        let old = match fs::symlink_metadata(&target) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(e, &target)),
        };
        if let Some(fmt) = device {
            let h = entry.header();
            let dev = libc::makedev(
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            );
            let same = old
                .as_ref()
                .is_some_and(|md| md.mode() & libc::S_IFMT == fmt && md.rdev() == dev);
            if !same {
                self.clear(&rel, &target, old.as_ref())?;
                let c = cpath(&target)?;
                // SAFETY: c is a valid NUL-terminated path.
                check(
                    unsafe { libc::mknod(c.as_ptr(), fmt | (m.mode & 0o7777), dev) },
                    &target,
                )?;
            }
            self.apply(&target, &m, true)?;
        } else if let Some((src, smd)) = link_src {
            let same = old
                .as_ref()
                .is_some_and(|md| (md.dev(), md.ino()) == (smd.dev(), smd.ino()));
            if !same {
                self.clear(&rel, &target, old.as_ref())?;
                fs::hard_link(&src, &target).map_err(|e| at(e, &target))?;
            }
        } else {
            match kind {
                EntryType::Directory => {
                    if !old.as_ref().is_some_and(Metadata::is_dir) {
                        self.clear(&rel, &target, old.as_ref())?;
                        fs::create_dir(&target).map_err(|e| at(e, &target))?;
                    }
                    if !rel.as_os_str().is_empty() {
                        self.checked.push(rel.clone());
                    }
                    self.dirs.push((target, m));
                }
                EntryType::Symlink => {
                    let to = entry
                        .link_name()?
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "symlink without a target")
                        })?
                        .into_owned();
                    let same = old.as_ref().is_some_and(|md| md.file_type().is_symlink())
                        && fs::read_link(&target).map_err(|e| at(e, &target))? == to;
                    if !same {
                        self.clear(&rel, &target, old.as_ref())?;
                        std::os::unix::fs::symlink(&to, &target).map_err(|e| at(e, &target))?;
                    }
                    self.apply(&target, &m, false)?;
                }
                EntryType::Regular | EntryType::Continuous => {
                    let size = entry.size();
                    self.file(entry, size, &rel, &target, old.as_ref(), &m)?;
                }
                _ => {
                    return Err(at(
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unsupported archive entry type {kind:?}"),
                        ),
                        &target,
                    ));
                }
            }
        }
        let key = self.key(&rel);
        self.named.insert(key);
        Ok(())
    }

    /// Brings the regular file at `target` (`old`: what is there now) to the `size` bytes of
    /// `data`, writing only the blocks that differ, and truncating if it was longer.
    fn file(
        &mut self,
        data: &mut impl Read,
        size: u64,
        rel: &Path,
        target: &Path,
        old: Option<&Metadata>,
        m: &Meta,
    ) -> io::Result<()> {
        let reuse = match old {
            Some(md) if md.is_file() => self.reusable(target, md, size, m)?,
            _ => false,
        };
        // An inode other paths share: only read, and given up at its first difference.
        let mut shared = reuse && old.is_some_and(|md| md.nlink() > 1);
        let (mut f, mut old_len) = if reuse {
            let f = unlocked(target, || {
                fs::OpenOptions::new()
                    .read(true)
                    .write(!shared)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(target)
            })
            .map_err(|e| at(e, target))?;
            (f, old.map_or(0, Metadata::len))
        } else {
            self.clear(rel, target, old)?;
            (create(target)?, 0)
        };
        let mut kept = reuse;
        let mut off = 0u64;
        loop {
            let n = fill(data, &mut self.new).map_err(|e| at(e, target))?;
            if n == 0 {
                break;
            }
            let new = &self.new[..n];
            let same = off < old_len && {
                let got = read_full_at(&f, &mut self.old[..n], off).map_err(|e| at(e, target))?;
                self.old[..got] == *new
            };
            if !same {
                if shared {
                    f = unshare(target, &f, off)?;
                    self.stats.bytes_written += off;
                    (shared, old_len) = (false, 0);
                }
                f.write_all_at(new, off).map_err(|e| at(e, target))?;
                self.stats.bytes_written += n as u64;
                kept = false;
            }
            off += n as u64;
            if n < BLOCK {
                break;
            }
        }
        if off != size {
            return Err(at(
                io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside"),
                target,
            ));
        }
        if old_len > size {
            f.set_len(size).map_err(|e| at(e, target))?;
            kept = false;
        }
        if kept {
            self.stats.files_kept += 1;
        } else {
            self.stats.files_written += 1;
        }
        // A shared inode still here is right already, and must not change.
        if !shared {
            self.apply(target, m, true)?;
        }
        Ok(())
    }

    /// Whether the old regular file at `p` may be brought to the entry in place: always when
    /// only this path reaches its inode. An inode with other paths (hard links, maybe from
    /// out of `dst`) only when no path of the stream kept it already and its size and
    /// metadata are right: it then stays untouched, or is given up at the first differing
    /// block.
    fn reusable(&mut self, p: &Path, md: &Metadata, size: u64, m: &Meta) -> io::Result<bool> {
        if md.nlink() == 1 {
            return Ok(true);
        }
        Ok(
            md.len() == size
                && self.settled(p, md, m)?
                && self.claimed.insert((md.dev(), md.ino())),
        )
    }

    /// Whether `p` (whose lstat is `md`) already has the owner, mode, mtime and xattrs of `m`.
    fn settled(&self, p: &Path, md: &Metadata, m: &Meta) -> io::Result<bool> {
        let time = md.mtime() == m.mtime as i64 && md.mtime_nsec() == 0;
        if !self.opts.posix {
            return Ok(time);
        }
        Ok(time
            && u64::from(md.uid()) == m.uid
            && u64::from(md.gid()) == m.gid
            && md.mode() & 0o7777 == m.mode & 0o7777
            && read_xattrs(p).map_err(|e| at(e, p))? == m.xattrs)
    }

    /// Gives `p` the owner, mode (`chmod`: not on a symlink), mtime and exactly the xattrs of
    /// `m`; only the mtime without posix.
    fn apply(&self, p: &Path, m: &Meta, chmod: bool) -> io::Result<()> {
        if !self.opts.posix {
            return set_times(p, m.mtime);
        }
        set_owner_mode_time(p, m.uid, m.gid, chmod.then_some(m.mode), m.mtime)?;
        // After the chown, which drops file capabilities.
        sync_xattrs(p, &m.xattrs)
    }

    /// Makes sure every folder above `rel` is a real folder, never a symlink an old tree
    /// planted: missing ones are created (and kept), anything else is an error.
    fn parents(&mut self, rel: &Path) -> io::Result<()> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        while self.checked.last().is_some_and(|c| !parent.starts_with(c)) {
            self.checked.pop();
        }
        if self.checked.last().is_some_and(|c| c == parent) {
            return Ok(());
        }
        let mut cur = self.checked.last().cloned().unwrap_or_default();
        let rest = parent.strip_prefix(&cur).unwrap_or(parent).to_path_buf();
        for c in rest.components() {
            cur.push(c);
            let p = self.dst.join(&cur);
            match fs::symlink_metadata(&p) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(at(
                        io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("not a folder, cannot hold {}", rel.display()),
                        ),
                        &p,
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&p).map_err(|e| at(e, &p))?;
                    let key = self.key(&cur);
                    self.named.insert(key);
                }
                Err(e) => return Err(at(e, &p)),
            }
            self.checked.push(cur.clone());
        }
        Ok(())
    }

    /// Removes the old entry at `target`, if any, to make room for one of another kind.
    fn clear(&mut self, rel: &Path, target: &Path, old: Option<&Metadata>) -> io::Result<()> {
        let Some(md) = old else {
            return Ok(());
        };
        let mut n = 0;
        if !remove_all(target, md, self.dev, &mut n)? {
            return Err(at(
                io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "holds another mounted filesystem",
                ),
                target,
            ));
        }
        // The entry itself is replaced, not removed.
        self.stats.removed += n - 1;
        if let Some(i) = self.checked.iter().position(|c| c.starts_with(rel)) {
            self.checked.truncate(i);
        }
        Ok(())
    }

    /// Removes what the stream did not name in the folder `rel`, then sweeps its named
    /// folders; other filesystems mounted inside are neither entered nor removed.
    fn sweep(&mut self, rel: &Path) -> io::Result<()> {
        let dir = self.dst.join(rel);
        let names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| at(e, &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| at(e, &dir))?;
        for name in names {
            let rel = rel.join(name);
            let p = self.dst.join(&rel);
            let md = fs::symlink_metadata(&p).map_err(|e| at(e, &p))?;
            if md.dev() != self.dev {
                continue;
            }
            if !self.named.contains(&self.key(&rel)) {
                remove_all(&p, &md, self.dev, &mut self.stats.removed)?;
            } else if md.is_dir() {
                self.sweep(&rel)?;
            }
        }
        Ok(())
    }

    /// `rel` as kept in `named`. vfat (no posix) finds a name whatever the case of its ASCII
    /// letters, so a name the stream spells in another case than the old tree is the same
    /// entry (and keeps its old spelling).
    fn key(&self, rel: &Path) -> PathBuf {
        if self.opts.posix {
            rel.to_path_buf()
        } else {
            OsString::from_vec(rel.as_os_str().as_bytes().to_ascii_lowercase()).into()
        }
    }
}

/// Removes `p` (whose lstat is `md`) and, for a folder, its subtree, adding the entries
/// removed to `n`. Symlinks are removed, not followed; other filesystems mounted inside stay,
/// with the folders holding them. Returns whether `p` is gone.
pub(super) fn remove_all(p: &Path, md: &Metadata, dev: u64, n: &mut u64) -> io::Result<bool> {
    if md.dev() != dev {
        return Ok(false);
    }
    if md.is_dir() {
        let mut gone = true;
        for e in fs::read_dir(p).map_err(|e| at(e, p))? {
            let c = e.map_err(|e| at(e, p))?.path();
            let cmd = fs::symlink_metadata(&c).map_err(|e| at(e, &c))?;
            gone &= remove_all(&c, &cmd, dev, n)?;
        }
        if !gone {
            return Ok(false);
        }
        unlocked(p, || fs::remove_dir(p)).map_err(|e| at(e, p))?;
    } else {
        unlocked(p, || fs::remove_file(p)).map_err(|e| at(e, p))?;
    }
    *n += 1;
    Ok(true)
}

/// Runs `op` on `p`; refused (EPERM) on an immutable or append-only inode (extlinux makes its
/// `ldlinux.sys` immutable, and a deploy installs it again afterwards), clears those flags
/// and runs it once more.
fn unlocked<T>(p: &Path, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match op() {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && unlock(p)? => op(),
        r => r,
    }
}

/// Clears the immutable and append-only flags of `p` (not following a symlink); whether it
/// had any.
fn unlock(p: &Path) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    const FS_APPEND_FL: libc::c_long = 0x20;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
    {
        Ok(f) => f,
        Err(_) => return Ok(false),
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes the inode's flags (an int) into `flags`, on a descriptor
    // we own.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0
        || flags & (FS_IMMUTABLE_FL | FS_APPEND_FL) == 0
    {
        return Ok(false);
    }
    flags &= !(FS_IMMUTABLE_FL | FS_APPEND_FL);
    // SAFETY: as above; FS_IOC_SETFLAGS reads the flags.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(at(io::Error::last_os_error(), p));
    }
    Ok(true)
}

/// A new, empty file at `p` (where nothing is).
fn create(p: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| at(e, p))
}

/// Replaces the file at `p`, whose inode `old` other paths share, by a new file holding its
/// first `len` bytes (the kernel copies them, without a round trip through us).
fn unshare(p: &Path, old: &File, len: u64) -> io::Result<File> {
    fs::remove_file(p).map_err(|e| at(e, p))?;
    let new = create(p)?;
    io::copy(&mut old.take(len), &mut &new).map_err(|e| at(e, p))?;
    Ok(new)
}

/// Reads at `off` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Gives `p` exactly the extended attributes `want`: removes the others, sets those that
/// differ.
fn sync_xattrs(p: &Path, want: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    let have = read_xattrs(p).map_err(|e| at(e, p))?;
    let c = cpath(p)?;
    for (k, _) in &have {
        if !want.iter().any(|(w, _)| w == k) {
            let ck = CString::new(k.as_slice())?;
            // SAFETY: valid path and name; lremovexattr does not follow symlinks.
            check(unsafe { libc::lremovexattr(c.as_ptr(), ck.as_ptr()) }, p)?;
        }
    }
    for x in want.iter().filter(|x| !have.contains(x)) {
        set_xattrs(p, std::slice::from_ref(x))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, lchown, symlink};

    use super::super::treetar::write_tree;
    use super::super::unpack::unpack;
    use super::*;

    const T: u64 = 1_700_000_000;
    const POSIX: UnpackOptions = UnpackOptions { posix: true };

    fn put(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }

    /// Every mtime of the tree to `T`, folders after their content.
    fn settle(p: &Path) {
        if fs::symlink_metadata(p).unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap() {
                settle(&e.unwrap().path());
            }
        }
        set_times(p, T).unwrap();
    }

    fn tar(root: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        write_tree(root, &mut out).unwrap();
        out
    }

    fn ino(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().ino()
    }

    fn xattr(p: &Path, k: &str, v: &str) {
        set_xattrs(p, &[(k.into(), v.into())]).unwrap();
    }

    fn mknod(p: &Path, fmt: libc::mode_t, dev: libc::dev_t) {
        let c = cpath(p).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        check(unsafe { libc::mknod(c.as_ptr(), fmt | 0o644, dev) }, p).unwrap();
    }

    /// Bytes that differ at every offset, so a block written at a wrong place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    fn xattrs_work() -> bool {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "f", b"");
        let ok = set_xattrs(&d.path().join("f"), &[(b"user.t".to_vec(), b"1".to_vec())]).is_ok();
        if !ok {
            println!("note: the tempdir refuses user xattrs: their part is skipped");
        }
        ok
    }

    /// The old tree: what the workstation holds.
    fn old_tree(a: &Path, xattrs: bool) {
        put(a, "same.txt", b"unchanged");
        put(a, "touched.txt", b"same data, new mtime");
        put(a, "big.bin", &pattern(3 << 20));
        put(a, "grow.txt", b"abc");
        put(a, "shrink.txt", b"abcdef");
        put(a, "gone.txt", b"bye");
        put(a, "olddir/a", b"a");
        put(a, "olddir/sub/b", b"b");
        put(a, "f2d", b"file");
        put(a, "d2f/c", b"c");
        put(a, "f2l", b"file");
        put(a, "null", b"a file where a device comes");
        symlink("same.txt", a.join("l")).unwrap();
        put(a, "h1", b"h");
        fs::hard_link(a.join("h1"), a.join("h2")).unwrap();
        put(a, "k1", b"k");
        fs::hard_link(a.join("k1"), a.join("k2")).unwrap();
        put(a, "x.txt", b"x");
        if xattrs {
            xattr(&a.join("x.txt"), "user.keep", "1");
            xattr(&a.join("x.txt"), "user.gone", "2");
        }
        put(a, "mode.sh", b"#!/bin/sh\n");
        put(a, "own.txt", b"o");
        settle(a);
    }

    /// The new image.
    fn new_tree(b: &Path, xattrs: bool) {
        put(b, "same.txt", b"unchanged");
        put(b, "touched.txt", b"same data, new mtime");
        let mut big = pattern(3 << 20);
        big[(3 << 19)..(3 << 19) + 10].copy_from_slice(b"0123456789");
        put(b, "big.bin", &big);
        put(b, "grow.txt", b"abcdef");
        put(b, "shrink.txt", b"abc");
        put(b, "new.txt", b"new");
        put(b, "f2d/inner", b"in");
        put(b, "d2f", b"now a file");
        symlink("same.txt", b.join("f2l")).unwrap();
        symlink("grow.txt", b.join("l")).unwrap();
        mknod(&b.join("null"), libc::S_IFCHR, libc::makedev(1, 3));
        mknod(&b.join("pipe"), libc::S_IFIFO, 0);
        // h1 now pairs with h3; h2 is a file of its own.
        put(b, "h1", b"h");
        fs::hard_link(b.join("h1"), b.join("h3")).unwrap();
        put(b, "h2", b"h");
        put(b, "k1", b"k");
        fs::hard_link(b.join("k1"), b.join("k2")).unwrap();
        put(b, "x.txt", b"x");
        if xattrs {
            xattr(&b.join("x.txt"), "user.keep", "1");
            xattr(&b.join("x.txt"), "user.new", "3");
        }
        put(b, "mode.sh", b"#!/bin/sh\n");
        fs::set_permissions(b.join("mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        put(b, "own.txt", b"o");
        lchown(b.join("own.txt"), Some(1000), Some(1000)).unwrap();
        settle(b);
        set_times(&b.join("touched.txt"), T + 100).unwrap();
    }

    #[test]
    fn turns_the_old_tree_into_the_new_one_writing_only_what_differs() {
        let xattrs = xattrs_work();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (dst, b) = (a.path(), b.path());
        old_tree(dst, xattrs);
        new_tree(b, xattrs);
        let inodes = ["same.txt", "big.bin", "h1", "k1", "k2"].map(|n| ino(&dst.join(n)));
        let stream = tar(b);
        let stats = sync_tree(stream.as_slice(), dst, POSIX).unwrap();
        assert_eq!(tar(dst), stream);
        // Kept in place, big.bin with its middle block rewritten.
        assert_eq!(
            ["same.txt", "big.bin", "h1", "k1", "k2"].map(|n| ino(&dst.join(n))),
            inodes
        );
        let written = (1 << 20) + "now a file".len() + "in".len() + 6 + 1 + "new".len();
        assert_eq!(
            stats,
            SyncStats {
                entries: write_tree(b, io::sink()).unwrap(),
                // same, touched, mode.sh, own, x, h1, k1.
                files_kept: 7,
                // big, grow, shrink, new, f2d/inner, d2f, h2.
                files_written: 7,
                bytes_written: written as u64,
                // gone.txt, olddir with a, sub and sub/b, d2f/c.
                removed: 6,
            }
        );

        // The same as unpacking onto an empty folder.
        let fresh = tempfile::tempdir().unwrap();
        unpack(stream.as_slice(), fresh.path(), POSIX).unwrap();
        assert_eq!(tar(fresh.path()), tar(dst));

        // Again: nothing left to write.
        let again = sync_tree(stream.as_slice(), dst, POSIX).unwrap();
        assert_eq!((again.files_written, again.bytes_written), (0, 0));
        assert_eq!((again.files_kept, again.removed), (14, 0));
        assert_eq!(tar(dst), stream);
    }

    /// Sets the immutable flag of `p`; false where the filesystem has no such flag.
    fn make_immutable(p: &Path) -> bool {
        use std::os::fd::AsRawFd;
        let f = File::open(p).unwrap();
        let mut flags: libc::c_long = 0;
        // SAFETY: as in `unlock`.
        unsafe {
            libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0 && {
                flags |= 0x10;
                libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) == 0
            }
        }
    }

    #[test]
    fn immutable_files_are_synced_and_removed() {
        // extlinux makes ldlinux.sys immutable; a reimage rewrites, keeps or removes such files.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (dst, b) = (a.path(), b.path());
        for (name, old, new) in [
            ("same.sys", &b"same"[..], Some(&b"same"[..])),
            ("changed.sys", b"old", Some(b"new")),
            ("gone.sys", b"gone", None),
        ] {
            put(dst, name, old);
            if let Some(n) = new {
                put(b, name, n);
            }
        }
        settle(dst);
        settle(b);
        if !["same.sys", "changed.sys", "gone.sys"]
            .iter()
            .all(|n| make_immutable(&dst.join(n)))
        {
            eprintln!("this filesystem has no immutable flag: test skipped");
            return;
        }
        let stream = tar(b);
        sync_tree(stream.as_slice(), dst, POSIX).unwrap();
        assert_eq!(tar(dst), stream);
        assert!(!dst.join("gone.sys").exists());
    }

    #[test]
    fn onto_an_empty_folder_is_unpack() {
        let xattrs = xattrs_work();
        let (b, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        new_tree(b.path(), xattrs);
        let stream = tar(b.path());
        let stats = sync_tree(stream.as_slice(), dst.path(), POSIX).unwrap();
        assert_eq!(tar(dst.path()), stream);
        assert_eq!(
            (stats.files_kept, stats.files_written, stats.removed),
            (0, 14, 0)
        );
    }

    #[test]
    fn an_old_symlink_does_not_lead_writes_out_of_the_tree() {
        let (out, dst, b) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (out, dst, b) = (out.path(), dst.path(), b.path());
        let empty = |p: &Path| fs::read_dir(p).unwrap().next().is_none();
        symlink(out, dst.join("x")).unwrap();
        put(b, "x/f", b"data");
        settle(b);
        sync_tree(tar(b).as_slice(), dst, POSIX).unwrap();
        assert!(empty(out));
        assert!(fs::symlink_metadata(dst.join("x")).unwrap().is_dir());
        assert_eq!(tar(dst), tar(b));

        // A stream that names x/f without its folder is refused.
        fs::remove_dir_all(dst.join("x")).unwrap();
        symlink(out, dst.join("x")).unwrap();
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(T);
        raw.append_data(&mut h, "x/f", &b"evil"[..]).unwrap();
        let err = sync_tree(raw.into_inner().unwrap().as_slice(), dst, POSIX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        assert!(empty(out));
    }

    #[test]
    fn an_old_hard_link_out_of_the_tree_is_not_written_through() {
        let (out, dst, b) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (out, dst, b) = (out.path(), dst.path(), b.path());
        // Same size, owner, mode and mtime; the data differs in its second block.
        let old = pattern(3 << 20);
        let mut new = old.clone();
        new[(1 << 20) + 5] ^= 1;
        put(out, "secret", &old);
        fs::hard_link(out.join("secret"), dst.join("f")).unwrap();
        put(b, "f", &new);
        settle(b);
        set_times(&dst.join("f"), T).unwrap();
        set_times(dst, T).unwrap();
        let stats = sync_tree(tar(b).as_slice(), dst, POSIX).unwrap();
        assert_eq!(fs::read(out.join("secret")).unwrap(), old);
        assert_eq!(tar(dst), tar(b));
        assert_eq!((stats.files_written, stats.bytes_written), (1, 3 << 20));
    }
}
