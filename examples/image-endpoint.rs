//! A stand-alone image endpoint for the benchmarks (until `parc serve` mounts the routes):
//! serves a workspace's images on an address and hands out one task.
//!
//!   image-endpoint <workspace> <bind> <token-file> capture <room> <version>
//!   image-endpoint <workspace> <bind> <token-file> deploy <room>/<version> <hostname>
//!
//! Prints the task id on stdout, writes the token to <token-file> (mode 0600), serves until
//! the task reports its outcome, then exits 0 if it succeeded.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use parc::image::manifest::{DiskLayout, Filesystem, OsFamily, Partition, PartitionLabel};
use parc::image::store::FsImageStore;
use parc::serve::{CaptureTemplate, ImagesService};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ws, bind, token_file, kind, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: image-endpoint <workspace> <bind> <token-file> capture|deploy ...");
    };
    let svc = Arc::new(ImagesService::new(FsImageStore::for_workspace(ws.as_ref())));
    let ticket = match (kind.as_str(), rest) {
        ("capture", [room, version]) => {
            let layout = DiskLayout {
                label: PartitionLabel::Gpt,
                disk_guid: None,
                partitions: vec![Partition {
                    number: 1,
                    start_mib: 1,
                    size_mib: None,
                    type_code: "linux".into(),
                    uuid: None,
                    name: None,
                    attrs: None,
                    filesystem: Filesystem::Ext4,
                    fs_label: Some("root".into()),
                    fs_uuid: None,
                    mountpoint: Some("/".into()),
                    stream: None,
                }],
            };
            let template = CaptureTemplate {
                recipe_digest: format!("sha256:{}", "0".repeat(64)),
                software_digest: format!("sha256:{}", "0".repeat(64)),
                software: Vec::new(),
                hardware_model: "bench".into(),
                os_family: OsFamily::Linux,
                captured_at: "2026-01-01T00:00:00Z".into(),
            };
            svc.add_capture(room, version, layout, template)?
        }
        ("deploy", [id, hostname]) => svc.add_deploy(id, hostname)?,
        _ => anyhow::bail!("unknown task `{kind}`"),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(token_file)?;
    std::io::Write::write_all(&mut f, ticket.token.as_bytes())?;
    println!("{}", ticket.id);
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
        let router = parc::serve::router(svc.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        anyhow::Ok(svc.wait_report(&ticket.id, Duration::from_secs(3600)).await)
    })?;
    match report {
        Some(r) if r.success => Ok(()),
        Some(r) => anyhow::bail!("task failed: {}", r.message),
        None => anyhow::bail!("no report within an hour"),
    }
}
