//! Making a restored disk boot on its own (BIOS): when the root filesystem carries
//! `boot/extlinux/extlinux.conf`, extlinux is installed again (its `ldlinux.sys` sits on other
//! blocks after every restore, and the boot sector names those blocks), the disk gets syslinux's
//! MBR boot code (gptmbr.bin for GPT, mbr.bin for DOS) and the root partition is marked as
//! the one to boot (GPT "legacy BIOS bootable" attribute, DOS active flag).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::disk::run;
use super::error::{ImageError, ImageResult};
use super::manifest::PartitionLabel;

/// Where extlinux's configuration lives on a root filesystem.
pub const EXTLINUX_CONF: &str = "boot/extlinux/extlinux.conf";

/// Whether the mounted root filesystem at `root` boots with extlinux.
pub fn uses_extlinux(root: &Path) -> bool {
    root.join(EXTLINUX_CONF).is_file()
}

/// Installs extlinux into `<root>/boot/extlinux` (the filesystem must be mounted read-write
/// from its own device: extlinux writes that device's boot sector).
pub fn install_extlinux(root: &Path) -> ImageResult<()> {
    run(Command::new("extlinux")
        .arg("--install")
        .arg(root.join("boot/extlinux")))?;
    Ok(())
}

/// Folder of syslinux's MBR boot code (`$PARC_SYSLINUX_MBR`, default Debian's).
fn mbr_dir() -> PathBuf {
    std::env::var_os("PARC_SYSLINUX_MBR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/syslinux/mbr"))
}

/// Writes syslinux's boot code into the disk's first 440 bytes and marks partition `number`
/// bootable. The partition table must already be written.
pub fn make_disk_bootable(target: &Path, label: PartitionLabel, number: u32) -> ImageResult<()> {
    let code = mbr_dir().join(match label {
        PartitionLabel::Gpt => "gptmbr.bin",
        PartitionLabel::Dos => "mbr.bin",
    });
    let bytes = std::fs::read(&code).map_err(ImageError::io(&code))?;
    if bytes.is_empty() || bytes.len() > 440 {
        return Err(ImageError::Invalid(format!(
            "{} is {} bytes: not MBR boot code (at most 440)",
            code.display(),
            bytes.len()
        )));
    }
    let f = OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(ImageError::io(target))?;
    f.write_all_at(&bytes, 0).map_err(ImageError::io(target))?;
    f.sync_all().map_err(ImageError::io(target))?;
    drop(f);
    let mut cmd = Command::new("sfdisk");
    cmd.args(["--quiet", "--no-reread", "--no-tell-kernel"]);
    match label {
        PartitionLabel::Gpt => cmd
            .arg("--part-attrs")
            .arg(target)
            .arg(number.to_string())
            .arg("LegacyBIOSBootable"),
        PartitionLabel::Dos => cmd.arg("--activate").arg(target).arg(number.to_string()),
    };
    run(&mut cmd)?;
    Ok(())
}
