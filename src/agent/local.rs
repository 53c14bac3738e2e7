//! Agent jobs without an endpoint, for benchmarks and checks: capture a folder tree or an NTFS
//! volume into a file and print what the manifest would record, and restore such an NTFS
//! stream onto a volume through the deploy pipeline.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use crate::image::capture::{CaptureOutput, CaptureSettings, capture_blocks, capture_tree};
use crate::image::deploy::{FolderSource, restore_block_stream};
use crate::image::error::{ImageError, ImageResult};
use crate::image::manifest::{Filesystem, StreamInfo};
use crate::image::progress::Progress;

/// What a local capture reads.
#[derive(Debug, Clone, Copy)]
pub enum LocalSource<'a> {
    /// A folder tree, archived as tar.
    Tree(&'a Path),
    /// An NTFS volume (device or file), imaged as blocks by partclone.
    Ntfs(&'a Path),
}

/// Captures `source` into `output`; returns the result and the seconds it took.
pub fn capture_to_file(
    source: LocalSource<'_>,
    output: &Path,
    settings: CaptureSettings,
) -> ImageResult<(CaptureOutput, f64)> {
    let start = Instant::now();
    let f = File::create(output).map_err(ImageError::io(output))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let p = Progress::default();
    let (captured, path) = match source {
        LocalSource::Tree(dir) => (capture_tree(dir, settings, &p, &mut w), dir),
        LocalSource::Ntfs(dev) => (
            capture_blocks(Filesystem::Ntfs, dev, settings, &p, &mut w),
            dev,
        ),
    };
    let out = captured.map_err(ImageError::stream(format!("capturing {}", path.display())))?;
    // Not fsync'd: the benchmark compares with a shell pipeline that does not sync either.
    w.into_inner()
        .map_err(|e| ImageError::io(output)(e.into_error()))?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// Restores the NTFS block stream `input` (sha256 and size as the manifest would record them)
/// onto `target`; returns the seconds it took.
pub fn restore_ntfs_file(input: &Path, sha256: &str, size: u64, target: &Path) -> ImageResult<f64> {
    let start = Instant::now();
    let dir = input.parent().unwrap_or(Path::new("."));
    let file = input
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s = StreamInfo {
        file,
        sha256: sha256.to_string(),
        size,
        uncompressed_size: 0,
        index: None,
    };
    let mut source = FolderSource(dir.to_path_buf());
    restore_block_stream(
        &mut source,
        &s,
        Filesystem::Ntfs,
        target,
        &Progress::default(),
    )?;
    Ok(start.elapsed().as_secs_f64())
}
