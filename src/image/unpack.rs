//! Unpacks a tar stream written by [`super::treetar`] onto a mounted filesystem: contents,
//! owners, modes, links, extended attributes, device nodes and fifos, then directory modes,
//! owners and mtimes last (deepest first) so restrictive directories do not block their
//! children.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use tar::{Archive, EntryType};

/// What the target filesystem can hold.
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Restore owners, modes and xattrs (false on vfat).
    pub posix: bool,
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Unpacks every entry of `input` under `dst`; returns the number of entries.
pub fn unpack<R: Read>(input: R, dst: &Path, opts: UnpackOptions) -> io::Result<u64> {
    unpack_listed(input, dst, opts, &mut |_, _| Ok(()))
}

/// [`unpack`] that first shows `on_entry` each entry's path (relative) and where it ends in
/// the stream, and stops at its error.
pub fn unpack_listed<R: Read>(
    input: R,
    dst: &Path,
    opts: UnpackOptions,
    on_entry: &mut dyn FnMut(&Path, u64) -> io::Result<()>,
) -> io::Result<u64> {
    let mut ar = Archive::new(input);
    ar.set_preserve_permissions(opts.posix);
    ar.set_preserve_ownerships(opts.posix);
    ar.set_unpack_xattrs(opts.posix);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    let mut count = 0u64;
    let mut out = FileWriter::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        count += 1;
        let rel = safe_relative(&entry.path()?)?;
        on_entry(&rel, entry_end(&entry))?;
        let target = dst.join(&rel);
        let kind = entry.header().entry_type();
        let xattrs = if opts.posix {
            pax_xattrs(&mut entry)?
        } else {
            Vec::new()
        };
        let h = entry.header();
        match kind {
            EntryType::Directory => {
                if !rel.as_os_str().is_empty() {
                    std::fs::create_dir_all(&target).map_err(|e| at(e, &target))?;
                }
                dirs.push(DirMeta {
                    path: target,
                    mode: h.mode()?,
                    uid: h.uid()?,
                    gid: h.gid()?,
                    mtime: h.mtime()?,
                    xattrs,
                });
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !opts.posix {
                    continue;
                }
                let fmt = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    h.device_major()?.unwrap_or(0),
                    h.device_minor()?.unwrap_or(0),
                );
                let mode = h.mode()?;
                let (uid, gid, mtime) = (h.uid()?, h.gid()?, h.mtime()?);
                let _ = std::fs::remove_file(&target);
                let c = cpath(&target)?;
                // SAFETY: c is a valid NUL-terminated path.
                check(
                    unsafe { libc::mknod(c.as_ptr(), fmt | (mode & 0o7777), dev) },
                    &target,
                )?;
                set_owner_mode_time(&target, uid, gid, Some(mode), mtime)?;
                set_xattrs(&target, &xattrs)?;
            }
            EntryType::Link => {
                let name = entry.link_name()?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "hard link without a target")
                })?;
                let src = dst.join(safe_relative(&name)?);
                let _ = std::fs::remove_file(&target);
                std::fs::hard_link(&src, &target).map_err(|e| at(e, &target))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let (mode, uid, gid, mtime) = (h.mode()?, h.uid()?, h.gid()?, h.mtime()?);
                let size = entry.size();
                out.write(&mut entry, &target, size)
                    .map_err(|e| at(e, &target))?;
                if opts.posix {
                    set_owner_mode_time(&target, uid, gid, Some(mode), mtime)?;
                    set_xattrs(&target, &xattrs)?;
                } else {
                    set_times(&target, mtime)?;
                }
            }
            _ => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| at(e, parent))?;
                }
                entry
                    .unpack(&target)
                    .map_err(|e| io::Error::new(e.kind(), chain(&e)))?;
            }
        }
    }
    // Deepest first, so setting a parent's mtime comes after its children changed it.
    dirs.sort_by(|a, b| b.path.as_os_str().cmp(a.path.as_os_str()));
    for d in &dirs {
        if opts.posix {
            set_owner_mode_time(&d.path, d.uid, d.gid, Some(d.mode), d.mtime)?;
            set_xattrs(&d.path, &d.xattrs)?;
        } else {
            set_times(&d.path, d.mtime)?;
        }
    }
    Ok(count)
}

/// Files at least this large have their data written with `O_DIRECT`.
const DIRECT_MIN: u64 = 64 << 10;
/// Alignment of `O_DIRECT` buffers, offsets and lengths (a page: enough for every disk).
const ALIGN: usize = 4096;

/// Writes files' data in large writes (the tar crate writes 8 KiB at a time), the body of a
/// large file with `O_DIRECT`: a deploy streams gigabytes the workstation will not read
/// again, so it goes to the disk without filling the page cache (every page of which costs
/// an allocation and a copy, and the final sync a second pass). The unaligned tail, small
/// files and filesystems that refuse `O_DIRECT` take buffered writes.
struct FileWriter {
    raw: Vec<u8>,
    off: usize,
    /// Cleared when the filesystem refuses `O_DIRECT`: no asking again for every file.
    direct: bool,
}

impl FileWriter {
    fn new() -> Self {
        let len = 1 << 20;
        // Never resized, so the aligned window stays where it is.
        let raw = vec![0u8; len + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN);
        Self {
            raw,
            off,
            direct: true,
        }
    }

    fn write(&mut self, from: &mut impl Read, target: &Path, size: u64) -> io::Result<()> {
        let f = std::fs::File::create(target)?;
        let mut direct = self.direct && size >= DIRECT_MIN && set_direct(&f, true).is_ok();
        let buf = &mut self.raw[self.off..self.off + (1 << 20)];
        loop {
            let n = fill(from, buf)?;
            let whole = if direct { n / ALIGN * ALIGN } else { n };
            let mut done = 0;
            while done < n {
                if direct && done == whole {
                    // The tail: buffered (O_DIRECT wants whole blocks).
                    set_direct(&f, false)?;
                    direct = false;
                }
                let end = if direct { whole } else { n };
                match (&f).write(&buf[done..end]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(k) => done += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                        set_direct(&f, false)?;
                        direct = false;
                        self.direct = false;
                    }
                    Err(e) => return Err(e),
                }
            }
            if n < buf.len() {
                return Ok(());
            }
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(super) fn fill(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Turns `O_DIRECT` on or off for `f`.
fn set_direct(f: &std::fs::File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an open descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn at(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// The error and its causes on one line (the tar crate hides the cause in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub(super) fn check(rc: libc::c_int, p: &Path) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(at(io::Error::last_os_error(), p))
    }
}

pub(super) fn cpath(p: &Path) -> io::Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

/// Rejects absolute paths and `..`: an archive must not write outside its filesystem.
/// Where `entry` ends in its archive: after its data, padded to 512 bytes. The next entry
/// (its PAX or long-name records first) starts there.
pub(super) fn entry_end<R: Read>(entry: &tar::Entry<R>) -> u64 {
    (entry.raw_file_position() + entry.size()).div_ceil(512) * 512
}

pub(super) fn safe_relative(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("archive entry {} escapes the target", p.display()),
                ));
            }
        }
    }
    Ok(out)
}

pub(super) fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<R>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                out.push((k.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

pub(super) fn set_owner_mode_time(
    p: &Path,
    uid: u64,
    gid: u64,
    mode: Option<u32>,
    mtime: u64,
) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: valid path; lchown does not follow symlinks.
    check(
        unsafe { libc::lchown(c.as_ptr(), uid as u32, gid as u32) },
        p,
    )?;
    if let Some(m) = mode {
        // chmod after chown: chown clears set-id bits.
        // SAFETY: valid path.
        check(unsafe { libc::chmod(c.as_ptr(), m & 0o7777) }, p)?;
    }
    set_times(p, mtime)
}

pub(super) fn set_times(p: &Path, mtime: u64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: valid path and two timespecs.
    check(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        p,
    )
}

pub(super) fn set_xattrs(p: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    let c = cpath(p)?;
    for (k, v) in xattrs {
        let ck = CString::new(k.as_slice())?;
        // SAFETY: valid path, name and value buffer.
        check(
            unsafe { libc::lsetxattr(c.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) },
            p,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ at every offset, so a block written twice or skipped shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn file_data_survives_direct_bodies_and_buffered_tails() {
        let d = tempfile::tempdir().unwrap();
        let mut w = FileWriter::new();
        // Small (buffered), aligned, one byte past a block, past the 1 MiB buffer, and large
        // with a tail: every way a file meets the O_DIRECT rules.
        for len in [
            0,
            100,
            65_536,
            65_537,
            (1 << 20) + 4096,
            3 * (1 << 20) + 12_345,
        ] {
            let data = pattern(len);
            let p = d.path().join(format!("f{len}"));
            // Read in odd pieces, as the tar crate hands them over.
            let mut from = io::Cursor::new(&data).take(len as u64);
            w.write(&mut ReadInPieces(&mut from), &p, len as u64)
                .unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), data, "file of {len} bytes");
        }
    }

    struct ReadInPieces<'a, R>(&'a mut R);

    impl<R: Read> Read for ReadInPieces<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(8191);
            self.0.read(&mut buf[..n])
        }
    }
}
