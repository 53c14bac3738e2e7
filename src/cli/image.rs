//! `parc image list | show | verify | prune | import`: the workspace's image store.

use crate::exit::{CliError, Status};
use crate::image::error::ImageError;
use sha2::Digest;

use crate::image::import::{ImportMeta, import_tree};
use crate::image::progress::Progress;
use crate::image::store::FsImageStore;

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
    /// Make an image from a folder tree (a base OS's root filesystem, see images/base/build.sh):
    /// the tree fills the layout's `/` partition.
    Import {
        /// `<room>/<version>`, e.g. `base/debian-12-amd64`.
        id: String,
        /// The root filesystem tree.
        #[arg(long)]
        tree: std::path::PathBuf,
        /// The disk layout (TOML, the manifest's `[disk]` shape).
        #[arg(long)]
        layout: std::path::PathBuf,
        /// Where the tree comes from (recorded as `captured-from`).
        #[arg(long, default_value = "tree")]
        source: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// Keep the N newest images of each room and delete the others.
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
                store
                    .list_manifests(None)
                    .map_err(cli_err)?
                    .iter()
                    .map(|m| m.id())
                    .collect()
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
            layout,
            source,
            ws,
        } => {
            let layout = super::serve::read_layout(&layout).map_err(CliError::user)?;
            let store = FsImageStore::for_workspace(&ws.workspace);
            let digest = crate::image::hashing::digest_string(sha2::Sha256::new_with_prefix(
                format!("{source} {}", tree.display()),
            ));
            let meta = ImportMeta {
                source,
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                digest,
            };
            let m = import_tree(&store, &id, &tree, layout, &meta, &Progress::default()).map_err(
                |e| match e {
                    ImageError::Exists(_) | ImageError::BadId(_) | ImageError::Invalid(_) => {
                        CliError::user(e)
                    }
                    _ => CliError::internal(e),
                },
            )?;
            let size: u64 = m.streams().map(|s| s.size).sum();
            println!(
                "imported	{}	{:.1} MiB",
                m.id(),
                size as f64 / (1u64 << 20) as f64
            );
            Ok(Status::Success)
        }
        Command::Prune { keep, room, ws } => {
            let store = FsImageStore::for_workspace(&ws.workspace);
            for id in store.prune(room.as_deref(), keep).map_err(cli_err)? {
                println!("removed\t{id}");
            }
            Ok(Status::Success)
        }
    }
}
