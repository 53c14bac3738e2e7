//! Writes a filesystem tree as a tar archive, deterministically: entries sorted by name, the
//! root first as `./`, numeric owners, modes, mtimes, symlinks, hard links (the first path in
//! sort order carries the data), device nodes, fifos and extended attributes (PAX
//! `SCHILY.xattr.*`, as GNU tar writes them). Sockets are skipped: they are recreated by their
//! daemons.
//!
//! [`write_tree_to`] also tells its sink where each file's data starts in the stream (the seed
//! of an incremental reimage keeps file data as places in the files, see `super::seed`).

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header, HeaderMode};

/// Archives the tree under `root` into `out`; returns the number of entries written.
pub fn write_tree<W: Write>(root: &Path, out: W) -> io::Result<u64> {
    write_tree_to(root, Plain(out))
}

/// Where [`write_tree_to`] writes: bytes, plus a word before each regular file's data, so a
/// sink can tell the file data in the stream from everything else (headers, PAX records,
/// padding, the end blocks) without parsing the tar format.
pub trait TarSink: Write {
    /// The next `len` bytes written are the data of the file at `path` (relative to the root,
    /// as archived), from its first byte; every byte of the stream before them has been
    /// written already.
    fn file_data(&mut self, _path: &Path, _len: u64) {}
}

impl<S: TarSink + ?Sized> TarSink for &mut S {
    fn file_data(&mut self, path: &Path, len: u64) {
        (**self).file_data(path, len)
    }
}

/// A plain writer as a sink that ignores the word about file data.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.0.write_all(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> TarSink for Plain<W> {}

/// [`write_tree`] into a [`TarSink`], which is told where each file's data starts.
pub fn write_tree_to<W: TarSink>(root: &Path, out: W) -> io::Result<u64> {
    let mut w = TreeWriter {
        builder: Builder::new(out),
        root: root.to_path_buf(),
        links: HashMap::new(),
        entries: 0,
        buf: vec![0u8; 1 << 20],
        root_dev: fs::symlink_metadata(root)
            .map_err(|e| with_path(e, root))?
            .dev(),
    };
    w.entry(Path::new(""))?;
    w.builder.finish()?;
    Ok(w.entries)
}

struct TreeWriter<W: TarSink> {
    builder: Builder<W>,
    root: PathBuf,
    /// (dev, inode) of files with several links → the archive path that carried the data.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
    root_dev: u64,
    buf: Vec<u8>,
}

/// Copies exactly `len` bytes of `f` then pads to the 512-byte tar block. A file that
/// changed size while archived is an error: the archive would be corrupt.
fn copy_exact(f: &mut fs::File, len: u64, out: &mut impl Write, buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read;
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while archived ({left} of {len} bytes missing)"),
            ));
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let pad = (512 - len % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

impl<W: TarSink> TreeWriter<W> {
    fn entry(&mut self, rel: &Path) -> io::Result<()> {
        let full = self.root.join(rel);
        let meta = fs::symlink_metadata(&full).map_err(|e| with_path(e, &full))?;
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let name: PathBuf = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        };
        let xattrs = read_xattrs(&full).map_err(|e| with_path(e, &full))?;
        if !xattrs.is_empty() {
            self.append_pax(&name, &xattrs)?;
        }
        let mut h = Header::new_gnu();
        h.set_metadata_in_mode(&meta, HeaderMode::Complete);
        h.set_size(0);
        self.entries += 1;
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            let mut dir_name = name.into_os_string();
            dir_name.push("/");
            self.builder.append_data(&mut h, dir_name, io::empty())?;
            // Do not descend into other filesystems mounted inside the tree.
            if meta.dev() != self.root_dev {
                return Ok(());
            }
            let mut names: Vec<_> = fs::read_dir(&full)
                .map_err(|e| with_path(e, &full))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(|e| with_path(e, &full))?;
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for n in names {
                self.entry(&rel.join(n))?;
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(|e| with_path(e, &full))?;
            self.builder.append_link(&mut h, &name, target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    h.set_entry_type(EntryType::Link);
                    let first = first.clone();
                    return self.builder.append_link(&mut h, &name, first);
                }
                self.links.insert(key, name.clone());
            }
            let len = meta.len();
            h.set_size(len);
            let mut f = fs::File::open(&full).map_err(|e| with_path(e, &full))?;
            // The header (with long-name entries) through the tar crate, then the data in
            // large reads: the crate copies through an 8 KiB buffer.
            self.builder.append_data(&mut h, &name, io::empty())?;
            self.builder.get_mut().file_data(rel, len);
            copy_exact(&mut f, len, self.builder.get_mut(), &mut self.buf)
                .map_err(|e| with_path(e, &full))?;
        } else {
            // Character or block device, or fifo: no data, device numbers in the header.
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            self.builder.append_data(&mut h, &name, io::empty())?;
        }
        Ok(())
    }

    /// A PAX extended header carrying the next entry's extended attributes.
    fn append_pax(&mut self, name: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let mut data = Vec::new();
        for (k, v) in xattrs {
            let mut body = b" SCHILY.xattr.".to_vec();
            body.extend_from_slice(k);
            body.push(b'=');
            body.extend_from_slice(v);
            body.push(b'\n');
            // The record length counts its own decimal digits.
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len = len.to_string().len() + body.len();
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.extend_from_slice(&body);
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let base = name.file_name().unwrap_or(OsStr::new("root")).as_bytes();
        let short = &base[..base.len().min(80)];
        let pax_name = [b"PaxHeaders/".as_slice(), short].concat();
        h.set_path(OsStr::from_bytes(&pax_name))?;
        h.set_cksum();
        self.builder.append(&h, data.as_slice())
    }
}

/// Every extended attribute of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let names = loop {
        // SAFETY: a null buffer with size 0 asks for the needed size.
        let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: buf holds `size` bytes.
        let got = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got >= 0 {
            buf.truncate(got as usize);
            break buf;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name)?;
        // SAFETY: size query with a null buffer.
        let size = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut val = vec![0u8; size as usize];
        // SAFETY: val holds `size` bytes.
        let got =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        val.truncate(got as usize);
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the stream and where the sink was told each file's data starts.
    #[derive(Default)]
    struct Spy {
        bytes: Vec<u8>,
        files: Vec<(PathBuf, usize, u64)>,
    }

    impl Write for Spy {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.bytes.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl TarSink for Spy {
        fn file_data(&mut self, path: &Path, len: u64) {
            self.files.push((path.to_path_buf(), self.bytes.len(), len));
        }
    }

    #[test]
    fn a_sink_is_told_where_each_file_s_data_is() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/text"), "hello\n".repeat(300)).unwrap();
        fs::write(root.join("a/empty"), "").unwrap();
        let long = "x".repeat(140);
        fs::write(root.join("a").join(&long), vec![7u8; 5000]).unwrap();
        fs::hard_link(root.join("a/b/text"), root.join("z-link")).unwrap();
        std::os::unix::fs::symlink("a/b/text", root.join("sym")).unwrap();

        let mut plain = Vec::new();
        let entries = write_tree(root, &mut plain).unwrap();
        let mut spy = Spy::default();
        assert_eq!(write_tree_to(root, &mut spy).unwrap(), entries);
        assert_eq!(spy.bytes, plain, "the hook changes no byte");

        let told: Vec<_> = spy.files.iter().map(|f| f.0.clone()).collect();
        let a = Path::new("a");
        let expected = [a.join("b/text"), a.join("empty"), a.join(&long)];
        assert_eq!(
            told, expected,
            "each data-carrying file once, in stream order"
        );
        for (path, at, len) in &spy.files {
            let data = fs::read(root.join(path)).unwrap();
            assert_eq!(*len, data.len() as u64);
            assert_eq!(
                &plain[*at..*at + data.len()],
                &data[..],
                "{}",
                path.display()
            );
        }
    }
}
