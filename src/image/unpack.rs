//! Unpacks a tar stream written by [`super::treetar`] onto a mounted filesystem: contents,
//! owners, modes, links, extended attributes, device nodes and fifos, then directory modes,
//! owners and mtimes last (deepest first) so restrictive directories do not block their
//! children.

use std::ffi::CString;
use std::io::{self, Read};
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
    let mut ar = Archive::new(input);
    ar.set_preserve_permissions(opts.posix);
    ar.set_preserve_ownerships(opts.posix);
    ar.set_unpack_xattrs(opts.posix);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for entry in ar.entries()? {
        let mut entry = entry?;
        count += 1;
        let rel = safe_relative(&entry.path()?)?;
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
                let mut f = std::fs::File::create(&target).map_err(|e| at(e, &target))?;
                copy_all(&mut entry, &mut f, &mut buf).map_err(|e| at(e, &target))?;
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

/// Copies a file's data in large writes (the tar crate writes 8 KiB at a time).
fn copy_all(from: &mut impl Read, to: &mut std::fs::File, buf: &mut [u8]) -> io::Result<()> {
    use std::io::Write;
    loop {
        let n = from.read(buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

fn at(e: io::Error, p: &Path) -> io::Error {
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

fn check(rc: libc::c_int, p: &Path) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(at(io::Error::last_os_error(), p))
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

/// Rejects absolute paths and `..`: an archive must not write outside its filesystem.
fn safe_relative(p: &Path) -> io::Result<PathBuf> {
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

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
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

fn set_owner_mode_time(
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

fn set_times(p: &Path, mtime: u64) -> io::Result<()> {
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

fn set_xattrs(p: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
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
