//! Making an image from a folder tree instead of a captured disk: the root filesystem of a
//! base OS (the lab's debootstrap tree, see `images/base/build.sh`) becomes the stream of the
//! layout's `/` partition. The image is staged and committed like a capture.

use std::io::BufWriter;
use std::path::Path;

use super::capture::{CaptureSettings, capture_tree};
use super::error::{ImageError, ImageResult};
use super::manifest::{Compression, DiskLayout, FORMAT_VERSION, Manifest, OsFamily};
use super::progress::Progress;
use super::store::{FsImageStore, parse_id};

/// What the manifest records about an imported tree (nothing was captured from a machine).
#[derive(Debug, Clone)]
pub struct ImportMeta {
    /// Where the tree comes from, recorded as `captured-from`.
    pub source: String,
    /// RFC 3339 time recorded as `captured-at` (passed in: no clock here).
    pub at: String,
    /// `sha256:<hex>` standing for the recipe and software digests (a base image realises no
    /// recipe): the digest of whatever built the tree.
    pub digest: String,
}

impl ImportMeta {
    /// The manifest of an imported base image (no recipe, no software, any hardware).
    pub fn manifest(
        &self,
        room: &str,
        version: &str,
        os_family: OsFamily,
        disk: DiskLayout,
    ) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            room: room.into(),
            version: version.into(),
            recipe_digest: self.digest.clone(),
            software_digest: self.digest.clone(),
            hardware_model: "any".into(),
            os_family,
            captured_from: self.source.clone(),
            captured_at: self.at.clone(),
            parc_version: env!("CARGO_PKG_VERSION").into(),
            compression: Compression::Zstd,
            software: Vec::new(),
            disk,
            boot_area: None,
        }
    }
}

/// Imports `tree` as image `id` laid out as `layout`: the tree fills the partition mounted
/// on `/`, every other partition is made empty at deploy.
pub fn import_tree(
    store: &FsImageStore,
    id: &str,
    tree: &Path,
    layout: DiskLayout,
    meta: &ImportMeta,
    progress: &Progress,
) -> ImageResult<Manifest> {
    let (room, version) = parse_id(id)?;
    if !tree.is_dir() {
        return Err(ImageError::Invalid(format!(
            "{} is not a folder",
            tree.display()
        )));
    }
    let mut layout = layout;
    let root = layout
        .partitions
        .iter_mut()
        .find(|p| p.mountpoint.as_deref() == Some("/"))
        .ok_or_else(|| {
            ImageError::Invalid("the layout has no partition with mountpoint \"/\"".into())
        })?;
    let file = format!("p{}.tar.zst", root.number);
    let staging = store.begin(room, version)?;
    let (f, path) = staging.create_stream(&file)?;
    progress.set_phase(format!("archive {}", tree.display()));
    let mut sink = BufWriter::with_capacity(1 << 20, f);
    let out = capture_tree(tree, CaptureSettings::default(), progress, &mut sink)
        .and_then(|out| {
            std::io::Write::flush(&mut sink)?;
            Ok(out)
        })
        .map_err(ImageError::io(&path))?;
    root.stream = Some(out.into_stream(file));
    let manifest = meta.manifest(room, version, OsFamily::Linux, layout);
    progress.set_phase("commit");
    staging.commit(&manifest)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_becomes_the_root_partitions_stream() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "base\n").unwrap();
        let layout: DiskLayout =
            toml::from_str(include_str!("../../tests/fixtures/lab-layout.toml")).unwrap();
        let store = FsImageStore::new(d.path().join("images"));
        let meta = ImportMeta {
            source: "debootstrap".into(),
            at: "2026-11-22T00:00:00Z".into(),
            digest: format!("sha256:{}", "c".repeat(64)),
        };
        let m = import_tree(
            &store,
            "base/debian-12-amd64",
            &tree,
            layout.clone(),
            &meta,
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(m.id(), "base/debian-12-amd64");
        assert!(m.disk.partitions[0].stream.is_none());
        let s = m.disk.partitions[1].stream.as_ref().unwrap();
        assert_eq!(s.file, "p2.tar.zst");
        assert_eq!(store.verify("base/debian-12-amd64").unwrap(), Ok(()));
        assert_eq!(store.manifest("base/debian-12-amd64").unwrap(), m);
        // A layout without `/` has nowhere to put the tree.
        let mut no_root = layout;
        no_root.partitions[1].mountpoint = None;
        let e = import_tree(
            &store,
            "base/x",
            &tree,
            no_root,
            &meta,
            &Progress::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("mountpoint"), "{e}");
    }
}
