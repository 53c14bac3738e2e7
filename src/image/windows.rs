//! What parc reads and writes on an unmounted Windows volume (NTFS): the system volume is
//! found through its folder indexes ([`super::mft::find_path`]); with ntfs-3g's tools,
//! `ntfscat` reads sysprep's state, `ntfscp` writes the workstation's first-boot files. The volume is never mounted, so nothing else changes on it.
//!
//! - Before a capture: the master must have been generalised by sysprep
//!   (`Windows\Setup\State\State.ini` says `IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE`); in doubt
//!   (no such file) parc refuses, as a non-generalised image would clone the master's SID and
//!   machine account into every workstation.
//! - After a deploy: `Windows\Panther\unattend.xml` (the per-workstation answer file, a secret
//!   fed to `ntfscp` on its stdin, never in a file of the boot environment) and the image marker
//!   `ProgramData\parc-image-id` that verify reads back.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::{ImageError, ImageResult};

/// Where Windows Setup looks for an answer file first on a deployed volume.
pub const UNATTEND_PATH: &str = "/Windows/Panther/unattend.xml";
/// The marker naming the deployed image (`C:\ProgramData\parc-image-id`: ProgramData is on
/// every Windows system volume, a base image too).
pub const IMAGE_MARKER_PATH: &str = "/ProgramData/parc-image-id";
/// Sysprep's record of the image's state.
pub const STATE_INI_PATH: &str = "/Windows/Setup/State/State.ini";
/// The state `sysprep /generalize /oobe` leaves.
pub const GENERALIZED: &str = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE";

fn tool_error(tool: &str, dev: &Path, e: std::io::Error) -> ImageError {
    ImageError::Command {
        command: format!("{tool} {}", dev.display()),
        detail: e.to_string(),
    }
}

/// Whether the volume on `dev` holds a Windows system (`\Windows\System32`).
pub fn is_system_volume(dev: &Path) -> ImageResult<bool> {
    // Read from the MFT and the two folders' indexes (ntfsls mounted the volume: 0.1 s).
    let f = std::fs::File::open(dev).map_err(ImageError::io(dev))?;
    let found = super::mft::find_path(&f, &["Windows", "System32"]).map_err(ImageError::io(dev))?;
    Ok(found.is_some())
}

/// The file at `path` on the volume, `None` when it does not exist.
pub fn read_file(dev: &Path, path: &str) -> ImageResult<Option<Vec<u8>>> {
    let out = Command::new("ntfscat")
        .arg("-f")
        .arg(dev)
        .arg(path)
        .output()
        .map_err(|e| tool_error("ntfscat", dev, e))?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Writes `content` as `path` on the volume (replacing it); its folder must exist.
pub fn write_file(dev: &Path, path: &str, content: &[u8]) -> ImageResult<()> {
    let mut child = Command::new("ntfscp")
        .arg("-f")
        .arg(dev)
        .arg("/dev/stdin")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error("ntfscp", dev, e))?;
    let fed = child.stdin.take().expect("piped stdin").write_all(content);
    let out = child
        .wait_with_output()
        .map_err(|e| tool_error("ntfscp", dev, e))?;
    if !out.status.success() || fed.is_err() {
        let folder = path.rsplit_once('/').map_or("/", |(d, _)| d);
        return Err(ImageError::Command {
            command: format!("ntfscp {} {path}", dev.display()),
            detail: format!(
                "{} (is there a {} folder on the Windows volume?)",
                String::from_utf8_lossy(&out.stderr).trim(),
                folder.replace('/', "\\")
            ),
        });
    }
    Ok(())
}

/// `ImageState` of a State.ini (ASCII, UTF-8 or UTF-16LE with its BOM).
pub fn image_state(state_ini: &[u8]) -> Option<String> {
    let text = match state_ini {
        [0xff, 0xfe, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        b => String::from_utf8_lossy(b).into_owned(),
    };
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("ImageState"))
        .map(|(_, v)| v.trim().to_owned())
}

/// Refuses to capture the Windows volume on `dev` unless sysprep generalised it.
pub fn check_generalized(dev: &Path, partition: u32) -> ImageResult<()> {
    let refuse = |why: String| {
        Err(ImageError::Invalid(format!(
            "partition {partition} holds a Windows that sysprep has not generalised ({why}): \
             run `sysprep /generalize /oobe` on the master (parc's capture step does), \
             then capture"
        )))
    };
    match read_file(dev, STATE_INI_PATH)? {
        None => refuse("no \\Windows\\Setup\\State\\State.ini".into()),
        Some(b) => match image_state(&b) {
            Some(s) if s == GENERALIZED => Ok(()),
            Some(s) => refuse(format!("its State.ini says {s}")),
            None => refuse("its State.ini has no ImageState".into()),
        },
    }
}

/// Writes the deployed workstation's first-boot files on its Windows volume: the image
/// marker, and the answer file when the task carries one.
pub fn write_first_boot(dev: &Path, image_id: &str, unattend: Option<&[u8]>) -> ImageResult<()> {
    write_file(dev, IMAGE_MARKER_PATH, format!("{image_id}\r\n").as_bytes())?;
    if let Some(u) = unattend {
        write_file(dev, UNATTEND_PATH, u)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_state_in_every_encoding() {
        let ascii = b"[State]\r\nImageState=IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE\r\n";
        assert_eq!(image_state(ascii).as_deref(), Some(GENERALIZED));
        let mut utf16 = vec![0xff, 0xfe];
        for u in "[State]\r\nImageState=IMAGE_STATE_COMPLETE\r\n".encode_utf16() {
            utf16.extend(u.to_le_bytes());
        }
        assert_eq!(image_state(&utf16).as_deref(), Some("IMAGE_STATE_COMPLETE"));
        assert_eq!(image_state(b"[State]\n"), None);
    }
}
