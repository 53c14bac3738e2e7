//! parc's TFTP server (`parc::netboot::tftp`) against real TFTP clients on loopback: tftp-hpa's
//! `tftp` (plain RFC 1350, 512-byte blocks) and `atftp` (blksize and tsize options).
//! Needs the Debian packages tftp-hpa and atftp (scripts/test.sh installs them); fails loudly
//! without them.

use std::path::Path;
use std::process::Command;

use parc::netboot::tftp;
use tokio_util::sync::CancellationToken;

fn need(bin: &str) {
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .output()
            .unwrap()
            .status
            .success(),
        "`{bin}` is missing: apt-get install -y --no-install-recommends tftp-hpa atftp"
    );
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

async fn start(root: &Path) -> (u16, CancellationToken) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    tokio::spawn(tftp::serve(sock, root.to_path_buf(), cancel.clone()));
    (port, cancel)
}

async fn run(cmd: &str) -> std::process::Output {
    let cmd = cmd.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["20", "sh", "-c", &cmd])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_fetch_exact_bytes_and_cannot_escape() {
    need("tftp");
    need("atftp");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // Sizes around the block boundaries: empty, exactly one block, many blocks + a tail.
    let files = [
        ("empty", random(0)),
        ("one", random(512)),
        ("undionly.kpxe", random(70_001)),
        ("big.efi", random(1_048_576)),
    ];
    for (n, b) in &files {
        std::fs::write(root.join(n), b).unwrap();
    }
    std::fs::write(d.path().join("secret"), b"outside").unwrap();
    let (port, cancel) = start(&root).await;
    let out = d.path();

    for (n, b) in &files {
        let dst = out.join(format!("hpa-{n}"));
        let o = run(&format!(
            "tftp -m binary 127.0.0.1 {port} -c get {n} {}",
            dst.display()
        ))
        .await;
        assert!(o.status.success(), "tftp get {n}: {o:?}");
        assert_eq!(
            &std::fs::read(&dst).unwrap(),
            b,
            "tftp-hpa got different bytes for {n}"
        );

        let dst = out.join(format!("atftp-{n}"));
        let o = run(&format!(
            "atftp --option 'blksize 1432' --option 'tsize 0' -g -r {n} -l {} 127.0.0.1 {port}",
            dst.display()
        ))
        .await;
        assert!(o.status.success(), "atftp get {n}: {o:?}");
        assert_eq!(
            &std::fs::read(&dst).unwrap(),
            b,
            "atftp (blksize 1432) got different bytes for {n}"
        );
    }

    // Traversal and writes are refused, and nothing is written outside.
    for bad in ["../secret", "nope"] {
        let dst = out.join("bad");
        let _ = std::fs::remove_file(&dst);
        let o = run(&format!(
            "atftp -g -r {bad} -l {} 127.0.0.1 {port}",
            dst.display()
        ))
        .await;
        assert!(!o.status.success(), "atftp fetched {bad}: {o:?}");
        assert!(std::fs::read(&dst).map(|b| b != b"outside").unwrap_or(true));
    }
    std::fs::write(out.join("up"), b"upload").unwrap();
    let o = run(&format!(
        "atftp -p -l {} -r up 127.0.0.1 {port}",
        out.join("up").display()
    ))
    .await;
    assert!(!o.status.success(), "a write request was accepted: {o:?}");
    assert!(!root.join("up").exists());
    cancel.cancel();
}
