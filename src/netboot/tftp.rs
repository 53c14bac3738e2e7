//! A read-only TFTP server (RFC 1350, with the RFC 2347 option negotiation and the RFC 2348
//! `blksize` / RFC 2349 `tsize` and `timeout` options) over tokio UDP, serving one folder: the
//! first stage of the PXE chain (undionly.kpxe, ipxe.efi, snponly.efi, boot.ipxe).
//!
//! Write requests are refused; a file name can never leave the root (no `..`, no symbolic link
//! pointing outside it). The packet codec is pure and unit-tested; the transfer loop is tested
//! against the real `tftp` client (tftp-hpa) in `tests/tftp_client.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const OP_RRQ: u16 = 1;
const OP_WRQ: u16 = 2;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// Why a TFTP packet or request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TftpError {
    #[error("malformed TFTP packet: {0}")]
    Malformed(&'static str),
    #[error("TFTP write request for `{0}` refused: this server is read-only")]
    ReadOnly(String),
    #[error("unsupported TFTP transfer mode `{0}`")]
    Mode(String),
    #[error("`{0}` is outside the TFTP root")]
    Outside(String),
    #[error("`{0}` not found")]
    NotFound(String),
}

/// A parsed read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub filename: String,
    pub blksize: Option<u16>,
    pub tsize: bool,
    pub timeout: Option<u8>,
}

fn cstrings(mut b: &[u8]) -> Result<Vec<String>, TftpError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b
            .iter()
            .position(|&c| c == 0)
            .ok_or(TftpError::Malformed("string without its NUL"))?;
        out.push(String::from_utf8_lossy(&b[..end]).into_owned());
        b = &b[end + 1..];
    }
    Ok(out)
}

/// Parses the first packet of a transfer.
pub fn parse_request(packet: &[u8]) -> Result<ReadRequest, TftpError> {
    if packet.len() < 4 {
        return Err(TftpError::Malformed("too short"));
    }
    let op = u16::from_be_bytes([packet[0], packet[1]]);
    let fields = cstrings(&packet[2..])?;
    let (filename, mode) = match fields.as_slice() {
        [f, m, ..] => (f.clone(), m.to_ascii_lowercase()),
        _ => return Err(TftpError::Malformed("no file name or mode")),
    };
    match op {
        OP_RRQ => {}
        OP_WRQ => return Err(TftpError::ReadOnly(filename)),
        _ => return Err(TftpError::Malformed("not a request")),
    }
    // netascii is served as octet: every file here is a binary or an iPXE script.
    if mode != "octet" && mode != "netascii" {
        return Err(TftpError::Mode(mode));
    }
    let mut req = ReadRequest {
        filename,
        blksize: None,
        tsize: false,
        timeout: None,
    };
    for pair in fields[2..].chunks(2) {
        let [name, value] = pair else { break };
        match name.to_ascii_lowercase().as_str() {
            "blksize" => {
                if let Ok(v) = value.parse::<u32>() {
                    req.blksize = Some(v.clamp(8, 65464) as u16);
                }
            }
            "tsize" => req.tsize = true,
            "timeout" => req.timeout = value.parse::<u8>().ok().filter(|t| *t >= 1),
            _ => {}
        }
    }
    Ok(req)
}

/// The file `filename` names under `root`, refusing anything that would leave it.
pub fn resolve(root: &Path, filename: &str) -> Result<PathBuf, TftpError> {
    let name = filename.replace('\\', "/");
    let rel = Path::new(name.trim_start_matches('/'));
    if name.contains('\0')
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(TftpError::Outside(filename.into()));
    }
    let root = root
        .canonicalize()
        .map_err(|_| TftpError::NotFound(filename.into()))?;
    let path = root
        .join(rel)
        .canonicalize()
        .map_err(|_| TftpError::NotFound(filename.into()))?;
    if !path.starts_with(&root) {
        return Err(TftpError::Outside(filename.into()));
    }
    if !path.is_file() {
        return Err(TftpError::NotFound(filename.into()));
    }
    Ok(path)
}

/// An ERROR packet.
pub fn error_packet(code: u16, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&OP_ERROR.to_be_bytes());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(message.as_bytes());
    p.push(0);
    p
}

/// An OACK packet acknowledging the given options.
pub fn oack_packet(options: &[(&str, String)]) -> Vec<u8> {
    let mut p = OP_OACK.to_be_bytes().to_vec();
    for (k, v) in options {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

fn data_packet(block: u16, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + data.len());
    p.extend_from_slice(&OP_DATA.to_be_bytes());
    p.extend_from_slice(&block.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// The block number an ACK packet acknowledges, if it is one.
pub fn parse_ack(p: &[u8]) -> Option<u16> {
    (p.len() >= 4 && u16::from_be_bytes([p[0], p[1]]) == OP_ACK)
        .then(|| u16::from_be_bytes([p[2], p[3]]))
}

/// Transfers at once from one client address.
pub const PER_CLIENT: usize = 8;
/// Transfers at once in all.
pub const TRANSFERS: usize = 128;

/// The transfers under way, by client address. A client that asks and never acknowledges
/// holds its transfer (a socket and the file's bytes) for six timeouts, up to 25 minutes
/// with `timeout 255`: without a bound, one host of the room could pin the endpoint's
/// memory and sockets, and the other workstations would no longer boot.
#[derive(Debug, Default)]
pub struct Transfers(Mutex<HashMap<IpAddr, usize>>);

/// One transfer's place in [`Transfers`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    all: Arc<Transfers>,
    ip: IpAddr,
}

impl Transfers {
    /// A place for one more transfer from `ip`, if it has fewer than [`PER_CLIENT`] and
    /// there are fewer than [`TRANSFERS`] in all.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = m.values().sum();
        let mine = m.get(&ip).copied().unwrap_or(0);
        if mine >= PER_CLIENT || total >= TRANSFERS {
            return None;
        }
        m.insert(ip, mine + 1);
        Some(Slot {
            all: self.clone(),
            ip,
        })
    }

    /// Transfers under way.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.all.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Serves `root` read-only on `socket` until `cancel` fires; one task per transfer, each on
/// its own UDP port (RFC 1350's transfer identifiers), at most [`PER_CLIENT`] per client
/// address and [`TRANSFERS`] in all (a request beyond gets an ERROR: busy).
pub async fn serve(socket: UdpSocket, root: PathBuf, cancel: CancellationToken) {
    let local_ip = socket.local_addr().map(|a| a.ip()).ok();
    let mut buf = vec![0u8; 1500];
    let transfers = Arc::new(Transfers::default());
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
        };
        let Some(slot) = transfers.take(peer.ip()) else {
            let busy = error_packet(0, "too many transfers under way: try again later");
            let _ = socket.send_to(&busy, peer).await;
            continue;
        };
        let packet = buf[..n].to_vec();
        let root = root.clone();
        let Some(ip) = local_ip else { return };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(sock) = UdpSocket::bind(SocketAddr::new(ip, 0)).await else {
                return;
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = transfer(&sock, peer, &root, &packet) => {}
            }
        });
    }
}

async fn transfer(sock: &UdpSocket, peer: SocketAddr, root: &Path, packet: &[u8]) {
    let req = match parse_request(packet).and_then(|r| Ok((resolve(root, &r.filename)?, r))) {
        Ok(x) => x,
        Err(e) => {
            let code = match e {
                TftpError::NotFound(_) => 1,
                TftpError::Outside(_) | TftpError::ReadOnly(_) => 2,
                _ => 4,
            };
            let _ = sock
                .send_to(&error_packet(code, &e.to_string()), peer)
                .await;
            return;
        }
    };
    let (path, req) = req;
    let Ok(data) = tokio::fs::read(&path).await else {
        let _ = sock
            .send_to(&error_packet(2, "cannot read the file"), peer)
            .await;
        return;
    };
    let mut options = Vec::new();
    if let Some(b) = req.blksize {
        options.push(("blksize", b.to_string()));
    }
    if req.tsize {
        options.push(("tsize", data.len().to_string()));
    }
    if let Some(t) = req.timeout {
        options.push(("timeout", t.to_string()));
    }
    let blksize = usize::from(req.blksize.unwrap_or(512));
    let wait = Duration::from_secs(u64::from(req.timeout.unwrap_or(1)));
    if !options.is_empty() && !send_and_ack(sock, peer, &oack_packet(&options), 0, wait).await {
        return;
    }
    // Blocks numbered from 1, wrapping at 65535 (files larger than 32 MiB at 512 bytes).
    let mut block: u16 = 1;
    let mut offset = 0usize;
    loop {
        let end = (offset + blksize).min(data.len());
        let p = data_packet(block, &data[offset..end]);
        if !send_and_ack(sock, peer, &p, block, wait).await {
            return;
        }
        if end - offset < blksize {
            return;
        }
        offset = end;
        block = block.wrapping_add(1);
    }
}

/// Sends `p` and waits for the ACK of `block`, retransmitting up to 5 times.
async fn send_and_ack(
    sock: &UdpSocket,
    peer: SocketAddr,
    p: &[u8],
    block: u16,
    wait: Duration,
) -> bool {
    let mut buf = [0u8; 516];
    for _ in 0..6 {
        if sock.send_to(p, peer).await.is_err() {
            return false;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                Err(_) => break,
                Ok(Err(_)) => return false,
                Ok(Ok((n, from))) => {
                    if from != peer {
                        // A stranger on our transfer port: RFC 1350 error 5, transfer continues.
                        let _ = sock
                            .send_to(&error_packet(5, "unknown transfer id"), from)
                            .await;
                        continue;
                    }
                    match parse_ack(&buf[..n]) {
                        Some(b) if b == block => return true,
                        Some(_) => continue,
                        None => return false,
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&str]) -> Vec<u8> {
        let mut p = OP_RRQ.to_be_bytes().to_vec();
        for f in fields {
            p.extend_from_slice(f.as_bytes());
            p.push(0);
        }
        p
    }

    #[test]
    fn parses_a_read_request_with_options() {
        let r = parse_request(&rrq(&[
            "undionly.kpxe",
            "octet",
            "blksize",
            "1432",
            "tsize",
            "0",
        ]))
        .unwrap();
        assert_eq!(r.filename, "undionly.kpxe");
        assert_eq!(r.blksize, Some(1432));
        assert!(r.tsize);
        let r = parse_request(&rrq(&["a", "OCTET", "blksize", "99999"])).unwrap();
        assert_eq!(r.blksize, Some(65464));
    }

    #[test]
    fn refuses_writes_odd_modes_and_garbage() {
        let mut w = rrq(&["x", "octet"]);
        w[1] = OP_WRQ as u8;
        assert_eq!(parse_request(&w), Err(TftpError::ReadOnly("x".into())));
        assert_eq!(
            parse_request(&rrq(&["x", "mail"])),
            Err(TftpError::Mode("mail".into()))
        );
        assert!(parse_request(&[0, 1, b'x']).is_err());
        assert!(parse_request(&[0, 9, b'x', 0, b'o', 0]).is_err());
    }

    #[test]
    fn never_leaves_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("boot.ipxe"), "#!ipxe").unwrap();
        std::fs::write(d.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("link")).unwrap();
        assert!(resolve(&root, "boot.ipxe").is_ok());
        assert!(resolve(&root, "/boot.ipxe").is_ok());
        for bad in ["../secret", "a/../../secret", "..\\secret", "link"] {
            assert_eq!(
                resolve(&root, bad),
                Err(TftpError::Outside(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            resolve(&root, "nope"),
            Err(TftpError::NotFound("nope".into()))
        );
        assert_eq!(resolve(&root, "."), Err(TftpError::NotFound(".".into())));
    }

    #[test]
    fn transfers_are_bounded_per_client_and_in_all() {
        let t = Arc::new(Transfers::default());
        let ip = |n: u8| IpAddr::from([10, 77, 0, n]);
        let mine: Vec<Slot> = (0..PER_CLIENT).map(|_| t.take(ip(1)).unwrap()).collect();
        assert!(t.take(ip(1)).is_none(), "one client past its share");
        let other = t
            .take(ip(2))
            .expect("another workstation still gets a transfer");
        drop(mine);
        assert_eq!(t.len(), 1);
        assert!(
            t.take(ip(1)).is_some(),
            "ended transfers give their place back"
        );
        drop(other);
        assert!(t.is_empty());
        let mut all = Vec::new();
        for n in 0.. {
            match t.take(ip(n as u8 / PER_CLIENT as u8)) {
                Some(s) => all.push(s),
                None => break,
            }
        }
        assert_eq!(all.len(), TRANSFERS);
        assert!(t.take(ip(250)).is_none(), "past the total");
        all.pop();
        assert!(t.take(ip(250)).is_some());
    }

    #[test]
    fn packets_have_the_rfc_layout() {
        assert_eq!(error_packet(1, "x"), vec![0, 5, 0, 1, b'x', 0]);
        assert_eq!(
            oack_packet(&[("tsize", "12".into())]),
            b"\x00\x06tsize\x0012\x00".to_vec()
        );
        assert_eq!(parse_ack(&[0, 4, 1, 2]), Some(258));
        assert_eq!(parse_ack(&[0, 3, 1, 2]), None);
    }
}
