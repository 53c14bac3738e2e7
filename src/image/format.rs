//! Formatting a disk: partition table and empty filesystems per a layout (the master's first
//! step, before the base system is laid down).

use std::path::Path;

use super::disk::{
    LoopDevice, disk_size, mkfs, partition_ranges, sync_all, wipe_partition_table,
    write_partition_table,
};
use super::error::ImageResult;
use super::manifest::DiskLayout;
use super::progress::Progress;

/// Wipes `target`, makes each filesystem, then writes the partition table and syncs. On
/// failure the partition table is wiped.
pub fn format_disk(layout: &DiskLayout, target: &Path, progress: &Progress) -> ImageResult<()> {
    let result = (|| {
        progress.set_phase("wipe");
        wipe_partition_table(target)?;
        let ranges = partition_ranges(layout, disk_size(target)?)?;
        for (p, &(offset, len)) in layout.partitions.iter().zip(&ranges) {
            progress.set_phase(format!("format partition {}", p.number));
            let lo = LoopDevice::attach(target, offset, len, false)?;
            mkfs(&lo.dev, p)?;
        }
        sync_all();
        progress.set_phase("partition table");
        write_partition_table(target, layout, &ranges)?;
        sync_all();
        Ok(())
    })();
    if result.is_err() {
        let _ = wipe_partition_table(target);
        sync_all();
    }
    result
}
