//! A stand-alone image endpoint for the benchmarks (until `parc serve` mounts the routes):
//! serves a workspace's images on an address and hands out one task.
//!
//!   image-endpoint <workspace> <bind> <token-file> capture <room> <version>
//!   image-endpoint <workspace> <bind> <token-file> capture-ntfs <room> <version>
//!   image-endpoint <workspace> <bind> <token-file> deploy <room>/<version> <hostname>
//!   image-endpoint <workspace> <bind> <token-file> room <room>/<version> <n> [<interface> <max-rate-mbit> <wait-secs>]
//!
//! Prints the task id on stdout, writes the token to <token-file> (mode 0600), serves until
//! the task reports its outcome, then exits 0 if it succeeded. `room` makes `n` deploy tasks
//! (hostnames `pc01`…), one id per line, tokens in `<token-file>.1`…; with an interface they
//! share one multicast session sent out on it. Each outcome and its path go to stderr, with
//! the body bytes the endpoint sent to the task (its access log): `… sent N bytes`.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use parc::domain::multicast::MulticastPolicy;
use parc::image::manifest::{DiskLayout, Filesystem, OsFamily};
use parc::image::store::FsImageStore;
use parc::netboot::serve::multicast::MulticastSettings;
use parc::netboot::serve::{CaptureTemplate, ImagesService};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ws, bind, token_file, kind, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: image-endpoint <workspace> <bind> <token-file> capture|deploy ...");
    };
    let svc = Arc::new(ImagesService::new(FsImageStore::for_workspace(ws.as_ref())));
    // As `parc serve`: a workstation's deploy records outlive this process.
    svc.records
        .to_dir(std::path::Path::new(ws).join(".parc/boot/records"));
    let ticket = match (kind.as_str(), rest) {
        ("capture" | "capture-ntfs", [room, version]) => {
            let mut layout = DiskLayout::single_ext4_root(Some("root"));
            if kind == "capture-ntfs" {
                // One NTFS data partition filling the disk (captured with `--disk`).
                let p = &mut layout.partitions[0];
                p.type_code = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7".into();
                p.filesystem = Filesystem::Ntfs;
                (p.fs_label, p.mountpoint) = (None, None);
            }
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
        ("room", [id, n, mc @ ..]) => return room(&svc, bind, token_file, id, n.parse()?, mc),
        _ => anyhow::bail!("unknown task `{kind}`"),
    };
    write_token(token_file, &ticket.token)?;
    println!("{}", ticket.id);
    serve_until(&svc, bind, &[ticket.id])?
}

fn write_token(path: &str, token: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, token.as_bytes())?;
    Ok(())
}

fn room(
    svc: &Arc<ImagesService>,
    bind: &str,
    token_file: &str,
    id: &str,
    n: usize,
    multicast: &[String],
) -> anyhow::Result<()> {
    let session = match multicast {
        [] => None,
        [interface, rate, wait] => {
            let policy = MulticastPolicy {
                max_rate_mbit: rate.parse()?,
                wait_secs: wait.parse()?,
                ..MulticastPolicy::default()
            };
            svc.multicast.configure(MulticastSettings {
                interface: interface.clone(),
                policy,
                first_receiver_secs: 120,
                netns: None,
            });
            Some(svc.multicast.open(svc.store(), id, n, n)?)
        }
        _ => anyhow::bail!("room: <interface> <max-rate-mbit> <wait-secs>, or nothing"),
    };
    let mut ids = Vec::new();
    for i in 1..=n {
        let t = svc.add_deploy_with(id, &format!("pc{i:02}"), None, session.as_deref(), false)?;
        write_token(&format!("{token_file}.{i}"), &t.token)?;
        println!("{}", t.id);
        ids.push(t.id);
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    let outcome = serve_until(svc, bind, &ids)?;
    if let Some(sid) = &session {
        if let Some(info) = svc.multicast.info(sid) {
            eprintln!("image-endpoint: session {sid}: {:?}", info.phase);
        }
        svc.multicast.close(sid);
    }
    outcome
}

/// Serves until every task reported; Err inside when one failed or none came in an hour.
fn serve_until(
    svc: &Arc<ImagesService>,
    bind: &str,
    ids: &[String],
) -> anyhow::Result<anyhow::Result<()>> {
    let rt = tokio::runtime::Runtime::new()?;
    let reports = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let router = parc::netboot::serve::router(svc.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut out = Vec::new();
        for id in ids {
            out.push(svc.wait_report(id, Duration::from_secs(3600)).await);
        }
        anyhow::Ok(out)
    })?;
    let mut failed = Vec::new();
    for (id, r) in ids.iter().zip(reports) {
        match r {
            Some(r) => {
                let how = r.delivery.map_or_else(String::new, |d| {
                    format!(
                        " [{}: {} B multicast, {} B unicast{}]",
                        d.path,
                        d.multicast_bytes,
                        d.unicast_bytes,
                        if d.note.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", d.note)
                        }
                    )
                });
                eprintln!(
                    "image-endpoint: task {id}: {}{how}; sent {} bytes",
                    r.message,
                    svc.access.bytes_sent_to(id)
                );
                if !r.success {
                    failed.push(format!("task {id} failed: {}", r.message));
                }
            }
            None => failed.push(format!("task {id}: no report within an hour")),
        }
    }
    Ok(if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(failed.join("; ")))
    })
}
