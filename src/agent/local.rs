//! Agent jobs without an endpoint, for benchmarks and checks: capture a folder tree into a
//! `.tar.zst` file and print what the manifest would record.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use crate::image::capture::{CaptureOutput, CaptureSettings, capture_tree};
use crate::image::error::{ImageError, ImageResult};
use crate::image::progress::Progress;

/// Captures `source` into `output`; returns the result and the seconds it took.
pub fn capture_to_file(
    source: &Path,
    output: &Path,
    settings: CaptureSettings,
) -> ImageResult<(CaptureOutput, f64)> {
    let start = Instant::now();
    let f = File::create(output).map_err(ImageError::io(output))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let out = capture_tree(source, settings, &Progress::default(), &mut w).map_err(
        ImageError::stream(format!("capturing {}", source.display())),
    )?;
    // Not fsync'd: the benchmark compares with a shell pipeline that does not sync either.
    w.into_inner()
        .map_err(|e| ImageError::io(output)(e.into_error()))?;
    Ok((out, start.elapsed().as_secs_f64()))
}
