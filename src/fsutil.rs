//! Small filesystem helpers shared by the commands that write the workspace.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `data` atomically: a temporary file in the same folder, fsync, rename,
/// fsync of the folder. The original's permissions are kept. A crash leaves the old or the new
/// content, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}
