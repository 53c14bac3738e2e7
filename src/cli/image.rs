//! `parc image list | show | verify | prune | import | export`: the workspace's image store.

use crate::exit::{CliError, Status};
use crate::image::error::ImageError;
use sha2::Digest;

use crate::image::import::{ImportMeta, import_tree};
use crate::image::manifest::Manifest;
use crate::image::progress::Progress;
use crate::image::store::FsImageStore;
use crate::image::wim::{WimLabel, export_wim, import_wim};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the images (of one room, or all), oldest first.
    List {
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Print an image's manifest.
    Show {
        /// `<room>/<version>`.
        id: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Re-hash every stream of an image (or of all images) and name any broken one.
    Verify {
        /// `<room>/<version>`.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Make an image from a folder tree (a base OS's root filesystem, see images/base/build.sh),
    /// which fills the layout's `/` partition, or from a WIM (a manufacturer's Windows image),
    /// which fills the layout's Windows (NTFS) partition.
    Import {
        /// `<room>/<version>`, e.g. `base/debian-12-amd64` or `base/win11-edu-23h2`.
        id: String,
        /// The root filesystem tree.
        #[arg(long, required_unless_present = "wim", conflicts_with = "wim")]
        tree: Option<std::path::PathBuf>,
        /// A WIM file (install.wim): its image `--index` is applied onto a new NTFS volume.
        #[arg(long)]
        wim: Option<std::path::PathBuf>,
        /// Which image of the WIM (1-based, as `wimlib-imagex info` and DISM number them).
        #[arg(long, default_value_t = 1, requires = "wim")]
        index: u32,
        /// The disk layout (TOML, the manifest's `[disk]` shape).
        #[arg(long)]
        layout: std::path::PathBuf,
        /// Where the tree comes from (recorded as `captured-from`).
        #[arg(long, default_value = "tree")]
        source: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Write an image's Windows partition as a standard WIM, for WDS
    /// (`Import-WdsInstallImage`) or DISM: one image, named from the room's recipe.
    Export {
        /// `<room>/<version>`.
        id: String,
        /// The WIM file to write (replaced only once verified).
        #[arg(long)]
        wim: std::path::PathBuf,
        /// The WIM image's name (default: room, recipe name and version).
        #[arg(long)]
        name: Option<String>,
        /// The WIM image's description (default: the image and its software list).
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Keep the N newest images of each room and delete the others, then the chunks no image
    /// uses and the deploy records (`.parc/boot/records/<host>/`) that can no longer serve:
    /// those of a pruned image, those that do not read, and those of a host that is no
    /// workstation of devices.csv any more (kept when there is no devices.csv).
    Prune {
        #[arg(long)]
        keep: usize,
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
}

fn cli_err(e: ImageError) -> CliError {
    match e {
        ImageError::NotFound(_) | ImageError::BadId(_) => {
            CliError::user(e).with_hint("`parc image list` shows the images of the workspace")
        }
        _ => CliError::internal(e),
    }
}

pub fn run(cmd: Command) -> Result<Status, CliError> {
    match cmd {
        Command::List { room, ws } => {
            let store = FsImageStore::for_workspace(&ws.workspace);
            let images = store.list_manifests(room.as_deref()).map_err(cli_err)?;
            if images.is_empty() {
                eprintln!("no image in {}", store.root().display());
            }
            for m in images {
                let size: u64 = m.streams().map(|s| s.size).sum();
                println!(
                    "{}\t{}\t{}\t{:.1} MiB",
                    m.id(),
                    m.captured_at,
                    m.captured_from,
                    size as f64 / (1u64 << 20) as f64
                );
            }
            Ok(Status::Success)
        }
        Command::Show { id, ws } => {
            let m = FsImageStore::for_workspace(&ws.workspace)
                .manifest(&id)
                .map_err(cli_err)?;
            print!("{}", m.render());
            Ok(Status::Success)
        }
        Command::Verify { id, all, ws } => {
            let store = FsImageStore::for_workspace(&ws.workspace);
            let ids = if all {
                // By folder: an image whose manifest does not read is reported, not skipped.
                store.ids(None).map_err(cli_err)?
            } else {
                vec![id.expect("clap requires an id without --all")]
            };
            let mut status = Status::Success;
            for id in ids {
                match store.verify(&id).map_err(cli_err)? {
                    Ok(()) => println!("ok\t{id}"),
                    Err(broken) => {
                        println!("BROKEN\t{id}\t{broken}");
                        status = Status::Failure;
                    }
                }
            }
            Ok(status)
        }
        Command::Import {
            id,
            tree,
            wim,
            index,
            layout,
            source,
            ws,
        } => {
            let layout = super::serve::read_layout(&layout).map_err(CliError::user)?;
            let store = FsImageStore::for_workspace(&ws.workspace);
            let from = tree.as_ref().or(wim.as_ref()).expect("clap requires one");
            let digest = crate::image::hashing::digest_string(sha2::Sha256::new_with_prefix(
                format!("{source} {} {index}", from.display()),
            ));
            let meta = ImportMeta {
                source,
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                digest,
            };
            let progress = Progress::default();
            let imported = match (&tree, &wim) {
                (Some(t), _) => import_tree(&store, &id, t, layout, &meta, &progress),
                (None, Some(w)) => import_wim(&store, &id, w, index, layout, &meta, &progress),
                (None, None) => unreachable!("clap requires --tree or --wim"),
            };
            let m = imported.map_err(|e| match e {
                ImageError::Exists(_) | ImageError::BadId(_) | ImageError::Invalid(_) => {
                    CliError::user(e)
                }
                _ => CliError::internal(e),
            })?;
            let size: u64 = m.streams().map(|s| s.size).sum();
            println!(
                "imported	{}	{:.1} MiB",
                m.id(),
                size as f64 / (1u64 << 20) as f64
            );
            Ok(Status::Success)
        }
        Command::Export {
            id,
            wim,
            name,
            description,
            ws,
        } => {
            let store = FsImageStore::for_workspace(&ws.workspace);
            let m = store.manifest(&id).map_err(cli_err)?;
            let default = wim_label(&ws, &m);
            let label = WimLabel {
                name: name.unwrap_or(default.name),
                description: description.unwrap_or(default.description),
            };
            export_wim(&store, &id, &wim, &label, &Progress::default()).map_err(|e| match e {
                ImageError::Invalid(_) => CliError::user(e),
                _ => CliError::internal(e),
            })?;
            println!("exported\t{id}\t{}\t{}", wim.display(), label.name);
            Ok(Status::Success)
        }
        Command::Prune { keep, room, ws } => {
            let store = FsImageStore::for_workspace(&ws.workspace);
            // Read before anything is removed: a devices.csv with errors refuses the prune.
            let hosts = inventory_hosts(&ws.workspace)?;
            let pruned = store.prune(room.as_deref(), keep).map_err(|e| match e {
                ImageError::Invalid(_) => CliError::user(e),
                e => cli_err(e),
            })?;
            for id in &pruned.images {
                println!("removed\t{id}");
            }
            if pruned.chunks > 0 {
                println!(
                    "removed\t{} chunks no image uses\t{:.1} MiB",
                    pruned.chunks,
                    pruned.chunk_bytes as f64 / (1u64 << 20) as f64
                );
            }
            let records = prune_records(&ws.workspace, &store, hosts.as_ref())?;
            if records.files > 0 {
                println!(
                    "removed\t{} deploy records that can no longer serve\t{:.1} MiB",
                    records.files,
                    records.bytes as f64 / (1u64 << 20) as f64
                );
            }
            for host in &records.hosts {
                println!("removed\tthe deploy records of {host} (not in devices.csv)");
            }
            Ok(Status::Success)
        }
    }
}

/// Removes the deploy records that can no longer serve (after the images were pruned): read
/// them first, then which index digests the images left name (a record read names an image
/// committed before it); `hosts`: the workstations of the inventory.
fn prune_records(
    workspace: &std::path::Path,
    store: &FsImageStore,
    hosts: Option<&std::collections::BTreeSet<String>>,
) -> Result<crate::netboot::serve::records::PrunedRecords, CliError> {
    use crate::netboot::serve::records;
    let dir = workspace.join(".parc").join("boot").join("records");
    let io_err = |e: std::io::Error| {
        CliError::internal(anyhow::Error::new(e).context(format!("pruning {}", dir.display())))
    };
    let scan = records::scan(&dir).map_err(io_err)?;
    let live: std::collections::HashSet<String> = store
        .list_manifests(None)
        .map_err(cli_err)?
        .iter()
        .flat_map(|m| m.streams().filter_map(|s| s.index.as_ref()))
        .map(|i| i.sha256.clone())
        .collect();
    scan.prune(&live, hosts).map_err(io_err)
}

/// The hostnames (lower case) of the devices of devices.csv that are not scrapped; `None`
/// when the workspace has no devices.csv. A devices.csv with errors is refused: pruning by a
/// partial inventory would drop the records of the hosts it failed to read.
fn inventory_hosts(
    workspace: &std::path::Path,
) -> Result<Option<std::collections::BTreeSet<String>>, CliError> {
    use crate::domain::device::DeviceState;
    use crate::domain::finding::Severity;
    if !workspace.join("devices.csv").is_file() {
        return Ok(None);
    }
    let loaded = crate::workspace::WorkspaceDir::open(workspace)
        .and_then(|d| d.load())
        .map_err(CliError::internal)?;
    let errors: Vec<String> = loaded
        .parse_findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.location.file == "devices.csv")
        .map(|f| f.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(CliError::user(anyhow::anyhow!(
            "devices.csv has {} error(s): nothing was pruned (the deploy records of the hosts it fails to name would go)\n{}",
            errors.len(),
            errors.join("\n")
        ))
        .with_hint("fix devices.csv (`parc check` lists its problems), then run the prune again"));
    }
    Ok(Some(
        loaded
            .ws
            .devices
            .iter()
            .filter(|d| d.state != DeviceState::Scrapped)
            .map(|d| d.hostname.value.to_ascii_lowercase())
            .collect(),
    ))
}

/// The WIM image's default name and description: the room, its recipe's name and the image
/// version; the image id and its software list (in French: WDS shows it to the lycée's
/// staff). Without a readable recipe, the name is the room and version only.
fn wim_label(ws: &super::WorkspaceArg, m: &Manifest) -> WimLabel {
    let recipe_name = crate::workspace::WorkspaceDir::open(&ws.workspace)
        .ok()
        .and_then(|d| d.load().ok())
        .and_then(|l| l.ws.room(&m.room).map(|r| r.name.clone()));
    let name = match recipe_name {
        Some(n) => format!("{} — {n} ({})", m.room, m.version),
        None => format!("{} ({})", m.room, m.version),
    };
    let software: Vec<String> = m
        .software
        .iter()
        .map(|s| format!("{} {}", s.name, s.version))
        .collect();
    let description = if software.is_empty() {
        format!("Image parc {}", m.id())
    } else {
        format!("Image parc {} : {}", m.id(), software.join(", "))
    };
    WimLabel { name, description }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::record::DeployRecord;
    use crate::image::store::tests::put_chunked;
    use crate::image::testdata::noise;

    #[test]
    fn after_a_prune_only_the_records_of_the_images_left_stay() {
        let ws = tempfile::tempdir().unwrap();
        let store = FsImageStore::for_workspace(ws.path());
        let a = put_chunked(&store, "a", "2026-01-01T00:00:00Z", &noise(1, 1 << 20));
        let b = put_chunked(&store, "b", "2026-01-02T00:00:00Z", &noise(2, 1 << 20));
        let digest = |m: &Manifest| {
            m.streams()
                .find_map(|s| s.index.as_ref())
                .unwrap()
                .sha256
                .clone()
        };
        let records = crate::netboot::serve::records::Records::default();
        let dir = ws.path().join(".parc/boot/records");
        records.to_dir(dir.clone());
        let record = |m: &Manifest| {
            DeployRecord {
                index: digest(m),
                fs_made: 1,
                entries: Vec::new(),
            }
            .encode()
        };
        records.put("b204-p01", 1, record(&a)).unwrap();
        records.put("b204-p02", 1, record(&b)).unwrap();
        records.put("gone-p09", 1, record(&b)).unwrap();
        assert_eq!(store.prune(None, 1).unwrap().images, vec!["b204/a"]);
        // No devices.csv: the host folders stay, only the digests count.
        let pruned = prune_records(ws.path(), &store, None).unwrap();
        assert_eq!((pruned.files, pruned.hosts.len()), (1, 0));
        assert_eq!(records.get("b204-p01", 1).unwrap(), None);
        assert_eq!(records.get("b204-p02", 1).unwrap(), Some(record(&b)));
        assert!(dir.join("gone-p09/1.rec.zst").is_file());
        // With an inventory that no longer names gone-p09.
        let hosts = ["b204-p01".to_string(), "b204-p02".to_string()].into();
        let pruned = prune_records(ws.path(), &store, Some(&hosts)).unwrap();
        assert_eq!(
            (pruned.files, pruned.hosts),
            (1, vec!["gone-p09".to_string()])
        );
        assert!(!dir.join("gone-p09").exists());
        assert_eq!(records.get("b204-p02", 1).unwrap(), Some(record(&b)));
    }
}
