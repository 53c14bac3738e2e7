//! Bad input on the network (issue 15): parc's real endpoint, in-process on loopback as
//! `parc serve` runs it (`netboot::endpoint::server::run`: the boot routes, the image routes, TFTP),
//! takes a bounded, seeded loop of malformed, truncated, oversized and out-of-order requests,
//! and the agent's wire decoders take garbage. During and after the loop: no panic (the
//! server task is alive), the one legitimate workstation still gets its task, its image by
//! HTTP (whole and by Range) and a file by TFTP, the process RSS stays within 64 MiB of where
//! it started, a MAC not in the room gets the "boot the local disk" script and nothing else,
//! and a report or upload without the task's token is refused and changes nothing.
//!
//! The seed is printed; `PARC_ABUSE_SEED=<n>` replays a run, `PARC_ABUSE_ROUNDS=<n>`
//! (default 3000) makes it longer.

#[path = "seeded/mod.rs"]
mod seeded;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parc::agent::wire::{CaptureDone, FinalReport, MulticastAnswer, ProgressReport, TaskSpec};
use parc::image::chunks::{ChunkIndex, ChunkParams, ChunkRef};
use parc::image::manifest::{
    Compression, DiskLayout, FORMAT_VERSION, Manifest, OsFamily, StreamInfo,
};
use parc::image::record::{DeployRecord, RecordEntry, Stamp};
use parc::image::store::FsImageStore;
use parc::netboot::client::LocalBootEndpoint;
use parc::netboot::endpoint::dhcp::DhcpMode;
use parc::netboot::endpoint::tasks::TaskState as BootState;
use parc::netboot::endpoint::{Endpoint, ServeOptions};
use parc::netboot::serve::{CaptureTemplate, ImagesService, TaskState};
use parc::ports::{BootAction, BootEndpoint as _};
use seeded::Rng;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const MAC_A: &str = "52:54:00:ab:00:01";
const MAC_B: &str = "52:54:00:ab:00:02";
const MAC_C: &str = "52:54:00:ab:00:03";
const HOST_A: &str = "b204-pc01";
/// In flight at once (raw HTTP requests).
const PARALLEL: usize = 16;
/// Connections that stop mid-request and stay open through the loop.
const SLOW: usize = 48;
/// TFTP read requests (from 127.0.0.2) whose DATA is never acknowledged. The loop's other
/// TFTP packets come from 127.0.0.3-18 and .40, the legitimate workstation is 127.0.0.1.
const ABANDONED: usize = 200;
const RSS_BOUND_MIB: i64 = 64;

fn rss_kib() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Image `b204/v1` in the workspace's store: one single-file stream of `stream` bytes.
fn store_image(ws: &Path, stream: &[u8]) {
    let store = FsImageStore::for_workspace(ws);
    let st = store.begin("b204", "v1").unwrap();
    let (mut f, _) = st.create_stream("p1.tar.zst").unwrap();
    f.write_all(stream).unwrap();
    drop(f);
    let mut disk = DiskLayout::single_ext4_root(Some("root"));
    disk.partitions[0].stream = Some(StreamInfo {
        file: "p1.tar.zst".into(),
        sha256: format!("sha256:{}", hex::encode(Sha256::digest(stream))),
        size: stream.len() as u64,
        uncompressed_size: 2 * stream.len() as u64,
        index: None,
    });
    let m = Manifest {
        format: FORMAT_VERSION,
        room: "b204".into(),
        version: "v1".into(),
        recipe_digest: format!("sha256:{}", "a".repeat(64)),
        software_digest: format!("sha256:{}", "b".repeat(64)),
        hardware_model: "hp-elitedesk-800-g6".into(),
        os_family: OsFamily::Linux,
        captured_from: "b204-master".into(),
        captured_at: "2026-11-22T10:00:00Z".into(),
        parc_version: "0.1.0".into(),
        compression: Compression::Zstd,
        software: Vec::new(),
        disk,
        boot_area: None,
    };
    st.commit(&m).unwrap();
}

fn template() -> CaptureTemplate {
    CaptureTemplate {
        recipe_digest: format!("sha256:{}", "a".repeat(64)),
        software_digest: format!("sha256:{}", "b".repeat(64)),
        software: Vec::new(),
        hardware_model: "hp-elitedesk-800-g6".into(),
        os_family: OsFamily::Linux,
        captured_at: "2026-11-22T10:00:00Z".into(),
    }
}

fn field<'a>(script: &'a str, key: &str) -> &'a str {
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {script}"))
}

/// The tasks of the room: A is the legitimate workstation's (never touched by the loop with
/// its own token except by reads), B, C and D are the loop's to abuse with valid tokens.
#[derive(Clone)]
struct Ids {
    a: (String, String),
    b: (String, String),
    c: (String, String),
    d: (String, String),
}

/// What the legitimate workstation gets from the endpoint, checked exactly.
struct Legit {
    base: String,
    tftp: SocketAddr,
    stream: Vec<u8>,
    kernel: Vec<u8>,
    tftp_file: Vec<u8>,
}

impl Legit {
    async fn check(&self, c: &reqwest::Client, ids: &Ids) {
        let (id, token) = &ids.a;
        let script = c
            .get(format!(
                "{}/boot/mac/{}.ipxe",
                self.base,
                MAC_A.replace(':', "-")
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(field(&script, "parc.task="), id, "{script}");
        assert_eq!(field(&script, "parc.token="), token, "{script}");
        assert_eq!(field(&script, "parc.action="), "deploy", "{script}");
        let spec = c
            .get(format!("{}/tasks/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(spec.status(), 200);
        match spec.json::<TaskSpec>().await.unwrap() {
            TaskSpec::Deploy {
                image_id, hostname, ..
            } => assert_eq!((image_id.as_str(), hostname.as_str()), ("b204/v1", HOST_A)),
            other => panic!("the legitimate task became {other:?}"),
        }
        let url = format!("{}/tasks/{id}/streams/p1.tar.zst", self.base);
        let whole = c.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(whole.status(), 200);
        assert!(
            whole.bytes().await.unwrap() == self.stream,
            "image bytes differ"
        );
        let part = c
            .get(&url)
            .bearer_auth(token)
            .header("Range", "bytes=1000-")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert!(
            part.bytes().await.unwrap() == self.stream[1000..],
            "ranged image bytes differ"
        );
        let kernel = c
            .get(format!("{}/boot/vmlinuz", self.base))
            .send()
            .await
            .unwrap();
        assert!(kernel.bytes().await.unwrap() == self.kernel);
        assert!(
            tftp_get(self.tftp, "undionly.kpxe").await == self.tftp_file,
            "TFTP bytes differ"
        );
    }
}

/// A plain RFC 1350 read (512-byte blocks) from 127.0.0.1.
async fn tftp_get(server: SocketAddr, name: &str) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    sock.send_to(&rrq, server).await.unwrap();
    let (mut out, mut expect) = (Vec::new(), 1u16);
    let mut buf = [0u8; 1024];
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("the TFTP server stopped answering")
            .unwrap();
        let p = &buf[..n];
        assert!(
            n >= 4 && p[1] == 3,
            "TFTP answered {:?}",
            String::from_utf8_lossy(p)
        );
        let block = u16::from_be_bytes([p[2], p[3]]);
        if block == expect {
            out.extend_from_slice(&p[4..]);
            expect = expect.wrapping_add(1);
        }
        sock.send_to(&[0, 4, p[2], p[3]], from).await.unwrap();
        if block == expect.wrapping_sub(1) && n - 4 < 512 {
            return out;
        }
    }
}

/// Sends `req` on a fresh connection (half-closing it when `close`), reads the answer for
/// at most 5 s and returns its status code (None: no answer, or not HTTP).
async fn raw(addr: SocketAddr, req: Vec<u8>, close: bool) -> Option<u16> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.write_all(&req).await;
    if close {
        let _ = s.shutdown().await;
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 16384];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&chunk[..n]);
                    if got.len() > 1 << 16 {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let line = got.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn request(method: &str, path: &str, headers: &[(String, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}

fn bearer(t: &str) -> (String, Vec<u8>) {
    ("Authorization".into(), format!("Bearer {t}").into_bytes())
}

fn valid_json(r: &mut Rng) -> Vec<u8> {
    let v = match r.below(4) {
        0 => serde_json::to_vec(&FinalReport {
            success: r.chance(50),
            message: "deployed".into(),
            delivery: None,
        }),
        1 => serde_json::to_vec(&ProgressReport {
            phase: "p1".into(),
            bytes: r.next(),
            total: r.next(),
            rate: 1.5,
        }),
        2 => serde_json::to_vec(&CaptureDone {
            captured_from: "b204-master".into(),
            partitions: Vec::new(),
            boot_area: None,
            disk_guid: None,
            other_partitions: Vec::new(),
        }),
        _ => serde_json::to_vec(&MulticastAnswer {
            open: true,
            reason: String::new(),
        }),
    };
    v.unwrap()
}

fn body(r: &mut Rng) -> Vec<u8> {
    match r.below(9) {
        0 => Vec::new(),
        1 => b"{\"success\": tru".to_vec(),
        2 => {
            let v = valid_json(r);
            let cut = r.below(v.len());
            v[..cut].to_vec()
        }
        3 => b"{\"success\":\"yes\",\"message\":1,\"phase\":[],\"bytes\":-1,\"total\":1e400}"
            .to_vec(),
        4 => r.some_bytes(0, 8192),
        5 => "[".repeat(20_000).into_bytes(),
        6 => format!("rc=0&message={}", "x".repeat(r.below(100_000))).into_bytes(),
        7 => valid_json(r),
        _ => {
            let v = valid_json(r);
            r.mutate(&v)
        }
    }
}

/// One request to one of the routes, with a random method, id, token, headers and body.
/// The legitimate task's token only ever goes with a read.
fn route_request(r: &mut Rng, ids: &Ids) -> Vec<u8> {
    let method = *r.pick(&[
        "GET", "GET", "POST", "POST", "PUT", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW",
    ]);
    let id = match r.below(9) {
        0 => ids.a.0.clone(),
        1 => ids.b.0.clone(),
        2 => ids.c.0.clone(),
        3 | 4 => ids.d.0.clone(),
        5 => r.hex(16),
        6 => "..%2F..%2F.parc".into(),
        7 => "a".repeat(1 + r.below(6000)),
        _ => String::new(),
    };
    let file = r
        .pick(&[
            "p1.tar.zst",
            "p1.tar.zst.idx.zst",
            "manifest.toml",
            "..%2F..%2Fv1%2Fmanifest.toml",
            "..",
            "../../../../etc/passwd",
            "%00",
            "boot.bin",
            ".hidden",
            "p9.ntfs.zst",
            "p1.tar.zst%20",
        ])
        .to_string();
    let part = r
        .pick(&[
            "1",
            "0",
            "4294967296",
            "-1",
            "x",
            "99999999999999999999",
            "1.5",
        ])
        .to_string();
    let chunk = match r.below(3) {
        0 => format!("{}.zst", r.hex(64)),
        1 => "zz.zst".into(),
        _ => format!("{}.zst", r.some_hex(0, 300)),
    };
    let mac = match r.below(5) {
        0 => "52-54-00-00-00-99".into(),
        1 => r.some_hex(0, 40),
        2 => "..%2F..%2Ftasks.json".into(),
        3 => MAC_B.into(),
        _ => format!("{}.ipxe", MAC_C.replace(':', "-")),
    };
    let path = match r.below(16) {
        0 => "/boot/boot.ipxe".to_string(),
        1 => format!("/boot/mac/{mac}.ipxe"),
        2 => "/boot/initrd.img".into(),
        3 => format!("/boot/tasks/{id}/booted"),
        4 => format!("/boot/tasks/{id}/done"),
        5 => format!("/tasks/{id}"),
        6 => format!("/tasks/{id}/streams/{file}"),
        7 => format!("/tasks/{id}/chunks/{chunk}"),
        8 => format!("/tasks/{id}/records/{part}"),
        9 => format!("/tasks/{id}/unattend"),
        10 => format!("/tasks/{id}/capture"),
        11 => format!("/tasks/{id}/progress"),
        12 => format!("/tasks/{id}/status"),
        13 => format!("/tasks/{id}/multicast"),
        14 => (*r.pick(&["/../../etc/passwd", "//", "*", "/%", "/boot/../tasks"])).into(),
        _ => format!("/{}", r.some_hex(0, 200)),
    };
    let read = matches!(method, "GET" | "HEAD");
    let token = match r.below(8) {
        0 if read => ids.a.1.clone(),
        1 => ids.b.1.clone(),
        2 => ids.c.1.clone(),
        3 | 4 => ids.d.1.clone(),
        5 => "wrong".into(),
        6 => r.hex(64),
        _ => String::new(),
    };
    let mut headers = Vec::new();
    match r.below(5) {
        0 => {}
        1 => headers.push(bearer(&token)),
        2 => headers.push(("X-Parc-Token".into(), token.into_bytes())),
        3 => {
            headers.push(bearer(&token));
            headers.push(("X-Parc-Token".into(), token.into_bytes()));
        }
        _ => headers.push(("Authorization".into(), r.some_bytes(1, 64))),
    }
    if r.chance(20) {
        let range = format!(
            "bytes={}-{}",
            r.next() % 400_000,
            r.pick(&["", "5", "-1", "999999999999999999999", "a,b"])
        );
        headers.push(("Range".into(), range.into_bytes()));
    }
    if r.chance(10) {
        let v = format!(
            "{} {} {}",
            r.next() % 100_000,
            r.next() % 100_000,
            r.next() % 100_000
        );
        headers.push(("x-parc-chunks".into(), v.into_bytes()));
    }
    if r.chance(30) {
        headers.push(("Content-Type".into(), b"application/json".to_vec()));
    }
    let b = body(r);
    request(method, &path, &headers, &b)
}

/// The same kind of request with its Content-Length far beyond the body it sends.
fn lying_length(r: &mut Rng, ids: &Ids) -> Vec<u8> {
    let (id, token) = (*r.pick(&[&ids.b, &ids.d])).clone();
    let (method, path) = match r.below(4) {
        0 => (
            "PUT",
            format!(
                "/tasks/{id}/streams/{}",
                r.pick(&["p1.tar.zst", "boot.bin"])
            ),
        ),
        1 => ("PUT", format!("/tasks/{id}/records/1")),
        2 => ("POST", format!("/tasks/{id}/status")),
        _ => ("POST", format!("/boot/tasks/{id}/done")),
    };
    let len = *r.pick(&[
        "1000000000000",
        "18446744073709551615",
        "99999999999999999999999",
        "-1",
        "65536",
    ]);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nX-Parc-Token: {token}\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    req.extend(r.some_bytes(0, 4096));
    req
}

fn oversized_headers(r: &mut Rng, ids: &Ids) -> Vec<u8> {
    let mut req = format!("GET /tasks/{} HTTP/1.1\r\nHost: x\r\n", ids.a.0).into_bytes();
    if r.chance(50) {
        req.extend_from_slice(b"X-Big: ");
        req.extend(std::iter::repeat_n(b'a', 64 * 1024 + r.below(1 << 20)));
        req.extend_from_slice(b"\r\n");
    } else {
        for i in 0..(200 + r.below(3000)) {
            req.extend_from_slice(format!("X-H{i}: {}\r\n", r.hex(16)).as_bytes());
        }
    }
    req.extend_from_slice(b"\r\n");
    req
}

fn garbage(r: &mut Rng) -> Vec<u8> {
    let mut g = if r.chance(50) {
        b"GET / HTTP/1.1\r\n".to_vec()
    } else {
        Vec::new()
    };
    g.extend(r.some_bytes(0, 4096));
    g
}

fn rrq(op: u16, name: &[u8], mode: &str, opts: &[(&str, String)]) -> Vec<u8> {
    let mut p = op.to_be_bytes().to_vec();
    p.extend_from_slice(name);
    p.push(0);
    p.extend_from_slice(mode.as_bytes());
    p.push(0);
    for (k, v) in opts {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

/// One bad TFTP packet to the server's port. Returns whether an answer must be an ERROR
/// (a name outside the root, a write).
fn tftp_packet(r: &mut Rng) -> (Vec<u8>, bool) {
    match r.below(8) {
        0 => {
            let n = r.below(1500);
            (r.bytes(n), false)
        }
        1 => {
            let n = 1500 + r.below(8000);
            (r.bytes(n), false)
        }
        2 => {
            let p = rrq(1, b"undionly.kpxe", "octet", &[("blksize", "1432".into())]);
            let cut = r.below(p.len());
            (p[..cut].to_vec(), false)
        }
        3 => {
            let op = *r.pick(&[0u16, 7, 8, 255, 0xffff]);
            let mut p = op.to_be_bytes().to_vec();
            p.extend(r.some_bytes(0, 600));
            (p, false)
        }
        4 => {
            // DATA, ACK, ERROR and OACK of transfers that do not exist.
            let op = *r.pick(&[3u16, 4, 5, 6]);
            let mut p = op.to_be_bytes().to_vec();
            p.extend(r.some_bytes(2, 516));
            (p, false)
        }
        5 => {
            let name: &[u8] = r.pick::<&[u8]>(&[
                b"../tasks.json".as_slice(),
                b"/../../tasks.json",
                b"..\\tasks.json",
                b"a/../../tasks.json",
                b"/etc/passwd",
                b"../../../../../../etc/passwd",
                b"\xff\xfe..",
            ]);
            (rrq(1, name, "octet", &[]), true)
        }
        6 => (rrq(2, b"undionly.kpxe", "octet", &[]), true),
        _ => {
            let opts = [
                (
                    "blksize",
                    (*r.pick(&["0", "1", "7", "65535", "99999", "x", ""])).to_string(),
                ),
                ("timeout", (*r.pick(&["0", "1", "300", "x"])).to_string()),
                ("tsize", (*r.pick(&["0", "-1", "x"])).to_string()),
                ("windowsize", "64".into()),
            ];
            let k = r.below(opts.len() + 1);
            let name = *r.pick(&["undionly.kpxe", "nope", "", "boot.ipxe"]);
            let mode = *r.pick(&["octet", "netascii", "mail", ""]);
            (rrq(1, name.as_bytes(), mode, &opts[..k]), false)
        }
    }
}

/// The agent-side decoders on garbage: the task, the reports, the image manifest a deploy
/// parses, the chunk index and the deploy record it fetches.
fn wire_garbage(r: &mut Rng, samples: &Samples) {
    let pick = r.below(8);
    let input = match r.below(3) {
        0 => r.some_bytes(0, 2048),
        1 => "{\"kind\":".repeat(r.below(5000)).into_bytes(),
        _ => {
            let s = &samples.0[pick % samples.0.len()];
            r.mutate(s)
        }
    };
    let decoded = std::panic::catch_unwind(|| match pick {
        0 => serde_json::from_slice::<TaskSpec>(&input).is_ok(),
        1 => serde_json::from_slice::<FinalReport>(&input).is_ok(),
        2 => serde_json::from_slice::<ProgressReport>(&input).is_ok(),
        3 => serde_json::from_slice::<CaptureDone>(&input).is_ok(),
        4 => serde_json::from_slice::<MulticastAnswer>(&input).is_ok(),
        5 => Manifest::parse(&String::from_utf8_lossy(&input)).is_ok(),
        6 => ChunkIndex::decode(&input).is_ok(),
        _ => DeployRecord::decode(&input).is_ok(),
    });
    assert!(
        decoded.is_ok(),
        "decoder {pick} panicked on {:?}",
        String::from_utf8_lossy(&input)
    );
}

/// Valid encodings, in the order of `wire_garbage`'s decoders.
struct Samples(Vec<Vec<u8>>);

fn samples(spec: &TaskSpec, manifest: &str) -> Samples {
    let index = ChunkIndex {
        params: ChunkParams {
            min: 4096,
            avg: 16384,
            max: 65536,
        },
        chunks: vec![ChunkRef {
            digest: [7; 32],
            len: 5000,
        }],
        stored: vec![1200],
    };
    let record = DeployRecord {
        index: format!("sha256:{}", "c".repeat(64)),
        fs_made: 1_700_000_000,
        entries: vec![RecordEntry {
            path: "etc/hostname".into(),
            end: 512,
            stamp: Some(Stamp {
                ino: 12,
                ctime: 1_700_000_000,
                ctime_nsec: 5,
                size: 10,
                mode: 0o100644,
            }),
        }],
    };
    Samples(vec![
        serde_json::to_vec(spec).unwrap(),
        serde_json::to_vec(&FinalReport {
            success: true,
            message: "ok".into(),
            delivery: None,
        })
        .unwrap(),
        serde_json::to_vec(&ProgressReport {
            phase: "p1".into(),
            bytes: 1 << 30,
            total: 1 << 31,
            rate: 2.5e7,
        })
        .unwrap(),
        serde_json::to_vec(&CaptureDone {
            captured_from: "b204-master".into(),
            partitions: Vec::new(),
            boot_area: None,
            disk_guid: Some("0x1234abcd".into()),
            other_partitions: Vec::new(),
        })
        .unwrap(),
        serde_json::to_vec(&MulticastAnswer {
            open: false,
            reason: "started".into(),
        })
        .unwrap(),
        manifest.as_bytes().to_vec(),
        index.encode(),
        record.encode(),
    ])
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, usize>,
    statuses: BTreeMap<u16, usize>,
    unanswered: usize,
    server_errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
    fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_survives_bad_input_and_keeps_serving_the_room() {
    let seed = std::env::var("PARC_ABUSE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            u64::from_le_bytes(b)
        });
    let rounds: usize = std::env::var("PARC_ABUSE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    eprintln!("net_abuse: seed {seed} (PARC_ABUSE_SEED={seed} replays it), {rounds} rounds");
    let mut r = Rng(seed);

    // The workspace: a stored image, the boot environment, iPXE binaries.
    let d = tempfile::tempdir().unwrap();
    let ws = d.path().join("ws");
    let mut fixed = Rng(42);
    let stream = fixed.bytes(300_000);
    store_image(&ws, &stream);
    let (bootenv, ipxe) = (d.path().join("bootenv"), d.path().join("ipxe"));
    std::fs::create_dir_all(&bootenv).unwrap();
    std::fs::create_dir_all(&ipxe).unwrap();
    let kernel = fixed.bytes(20_000);
    std::fs::write(bootenv.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(bootenv.join("initrd.img"), fixed.bytes(200_000)).unwrap();
    let undionly = fixed.bytes(70_001);
    std::fs::write(ipxe.join("undionly.kpxe"), &undionly).unwrap();
    // About the size of Debian's ipxe.efi.
    std::fs::write(ipxe.join("ipxe.efi"), fixed.bytes(1 << 20)).unwrap();

    // The endpoint, as `parc serve` builds it.
    let (http_port, tftp_port) = (free_tcp_port(), free_udp_port());
    let state_dir = ws.join(".parc").join("boot");
    let opts = ServeOptions {
        bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        http_port,
        tftp_port,
        dhcp: DhcpMode::Off,
        dhcp_interface: None,
        state_dir: state_dir.clone(),
        bootenv: bootenv.clone(),
        ipxe_dir: ipxe.clone(),
        ttl: Duration::from_secs(3600),
        disk: None,
    };
    let base = opts.base_url();
    let ep = Arc::new(Endpoint::open(&state_dir, &base, &bootenv, opts.ttl).unwrap());
    let images = Arc::new(ImagesService::new(FsImageStore::for_workspace(&ws)));
    images.access.to_file(state_dir.join("access.log"));
    images.records.to_dir(state_dir.join("records"));
    let port = LocalBootEndpoint::new(ep.clone())
        .with_images(images.clone(), Some(DiskLayout::single_ext4_root(None)));
    let deploy = |host: &str| BootAction::Deploy {
        room: "b204".into(),
        image_id: "b204/v1".into(),
        hostname: host.into(),
        unattend: None,
        multicast: None,
        read_all: false,
    };
    port.assign(MAC_A, deploy(HOST_A)).await.unwrap();
    port.assign(MAC_B, deploy("b204-pc02")).await.unwrap();
    let format = BootAction::Format {
        base_image: String::new(),
        hostname: String::new(),
        inject: Vec::new(),
    };
    port.assign(MAC_C, format).await.unwrap();
    let capture = images
        .add_capture("b204", "v2", DiskLayout::single_ext4_root(None), template())
        .unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(parc::netboot::endpoint::server::run(
        opts,
        ep.clone(),
        parc::netboot::serve::router(images.clone()),
        cancel.clone(),
    ));
    let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let tftp: SocketAddr = ([127, 0, 0, 1], tftp_port).into();
    let t0 = Instant::now();
    while TcpStream::connect(http).await.is_err() {
        assert!(!server.is_finished(), "the endpoint did not start");
        assert!(t0.elapsed() < Duration::from_secs(20), "no HTTP on {http}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = reqwest::Client::new();
    let ticket = |mac: &str| {
        let c = c.clone();
        let url = format!("{base}/boot/mac/{}.ipxe", mac.replace(':', "-"));
        async move {
            let s = c.get(url).send().await.unwrap().text().await.unwrap();
            (
                field(&s, "parc.task=").to_string(),
                field(&s, "parc.token=").to_string(),
            )
        }
    };
    let ids = Ids {
        a: ticket(MAC_A).await,
        b: ticket(MAC_B).await,
        c: ticket(MAC_C).await,
        d: (capture.id.clone(), capture.token.clone()),
    };
    let legit = Legit {
        base: base.clone(),
        tftp,
        stream,
        kernel,
        tftp_file: undionly,
    };
    legit.check(&c, &ids).await;
    let spec_a: TaskSpec = c
        .get(format!("{base}/tasks/{}", ids.a.0))
        .bearer_auth(&ids.a.1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let manifest_text = std::fs::read_to_string(ws.join("images/b204/v1/manifest.toml")).unwrap();
    let samples = samples(&spec_a, &manifest_text);
    let state_a = ep.task(&ids.a.0).unwrap().state;
    assert_eq!(state_a, BootState::Pending);
    let rss0 = rss_kib();
    let mut tally = Tally::default();
    let started = Instant::now();

    // Out of order, with valid tokens (exact answers).
    let (b, cc, dd) = (&ids.b, &ids.c, &ids.d);
    let fr = serde_json::to_vec(&FinalReport {
        success: true,
        message: "early".into(),
        delivery: None,
    })
    .unwrap();
    // A capture report with nothing in it, for the calls that must refuse it.
    let empty_capture = serde_json::to_vec(&CaptureDone {
        captured_from: "m".into(),
        partitions: Vec::new(),
        boot_area: None,
        disk_guid: None,
        other_partitions: Vec::new(),
    })
    .unwrap();
    let json = || ("Content-Type".to_string(), b"application/json".to_vec());
    let tok = |t: &str| ("X-Parc-Token".to_string(), t.as_bytes().to_vec());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "upload to a deploy task",
            request(
                "PUT",
                &format!("/tasks/{}/streams/p1.tar.zst", b.0),
                &[bearer(&b.1)],
                b"x",
            ),
            409,
        ),
        (
            "capture done on a deploy task",
            request(
                "POST",
                &format!("/tasks/{}/capture", b.0),
                &[bearer(&b.1), json()],
                &empty_capture,
            ),
            409,
        ),
        (
            "records of a format task",
            request(
                "PUT",
                &format!("/tasks/{}/records/1", cc.0),
                &[bearer(&cc.1)],
                b"zz",
            ),
            400,
        ),
        (
            "image stream of a format task",
            request(
                "GET",
                &format!("/tasks/{}/streams/p1.tar.zst", cc.0),
                &[bearer(&cc.1)],
                b"",
            ),
            409,
        ),
        (
            "capture done before any upload",
            request(
                "POST",
                &format!("/tasks/{}/capture", dd.0),
                &[bearer(&dd.1), json()],
                &empty_capture,
            ),
            409,
        ),
        (
            "a record that does not read",
            request(
                "PUT",
                &format!("/tasks/{}/records/1", b.0),
                &[bearer(&b.1)],
                b"\x28\xb5\x2f\xfdgarbage",
            ),
            400,
        ),
        (
            "status before the task was fetched",
            request(
                "POST",
                &format!("/tasks/{}/status", b.0),
                &[bearer(&b.1), json()],
                &fr,
            ),
            204,
        ),
        (
            "done before booted",
            request(
                "POST",
                &format!("/boot/tasks/{}/done", b.0),
                &[tok(&b.1)],
                b"rc=1&message=early",
            ),
            200,
        ),
        (
            "booted after done",
            request(
                "POST",
                &format!("/boot/tasks/{}/booted", b.0),
                &[tok(&b.1)],
                b"stage=booted",
            ),
            409,
        ),
    ];
    for (what, req, want) in cases {
        let got = raw(http, req, false).await;
        assert_eq!(got, Some(want), "{what}");
        tally.add("out-of-order (exact answers)");
    }

    // Connections that stop mid-request and stay open through the loop.
    let mut slow = Vec::new();
    for i in 0..SLOW {
        let mut s = TcpStream::connect(http).await.unwrap();
        let partial = request(
            "PUT",
            &format!("/tasks/{}/streams/boot.bin", dd.0),
            &[bearer(&dd.1)],
            &r.bytes(100),
        );
        let cut = if i % 2 == 0 {
            20 + r.below(40)
        } else {
            partial.len()
        };
        let mut part = partial[..cut].to_vec();
        if i % 2 == 1 {
            // Headers done, Content-Length says 100 bytes more than sent.
            part = String::from_utf8_lossy(&partial)
                .replace("Content-Length: 100", "Content-Length: 200")
                .into_bytes();
        }
        s.write_all(&part).await.unwrap();
        slow.push(s);
        tally.add("slowloris (held open)");
    }

    // TFTP transfers never acknowledged, from another address of the loopback.
    let mut abandoned = Vec::new();
    for _ in 0..ABANDONED {
        let s = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let name = *r.pick(&["ipxe.efi", "undionly.kpxe"]);
        let p = rrq(1, name.as_bytes(), "octet", &[("timeout", "255".into())]);
        s.send_to(&p, tftp).await.unwrap();
        abandoned.push(s);
        tally.add("tftp: read never acknowledged");
    }
    // That address gets its share of transfers, then ERROR "busy"; a stranger's ACK to one
    // of its transfers' ports gets ERROR 5 (unknown transfer id).
    let (mut held, mut busy) = (0, 0);
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let mut first = vec![0u8; 2048];
    for s in &abandoned {
        let got = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut first)).await;
        let Ok(Ok((n, from))) = got else {
            panic!("no TFTP answer to a read request")
        };
        match first[..n.min(4)] {
            [0, 5, 0, 0] => busy += 1,
            [0, 3 | 6, ..] => {
                held += 1;
                s.send_to(&[0, 4, 0x7f, 0xff], from).await.unwrap();
                stranger.send_to(&[0, 4, 0, 1], from).await.unwrap();
                let (n, _) =
                    tokio::time::timeout(Duration::from_secs(5), stranger.recv_from(&mut first))
                        .await
                        .expect("no answer to a stranger's ACK")
                        .unwrap();
                assert_eq!(first[..4], [0, 5, 0, 5], "{:?}", &first[..n]);
                tally.add("tftp: ACK from a stranger to a transfer's port");
            }
            _ => panic!("TFTP answered {:?}", &first[..n]),
        }
    }
    assert_eq!(
        (held, busy),
        (
            parc::netboot::tftp::PER_CLIENT,
            ABANDONED - parc::netboot::tftp::PER_CLIENT
        ),
        "transfers held by one address, and refused past its share"
    );

    // The loop.
    let tftp_socks: Vec<UdpSocket> = {
        let mut v = Vec::new();
        for i in 0..16 {
            v.push(
                UdpSocket::bind(format!("127.0.0.{}:0", 3 + i))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let mut inflight: JoinSet<(&'static str, Vec<u8>, Option<u16>)> = JoinSet::new();
    let mut buf = vec![0u8; 70_000];
    for round in 0..rounds {
        while inflight.len() >= PARALLEL {
            record(&mut tally, inflight.join_next().await.unwrap().unwrap());
        }
        let k = r.below(100);
        let (what, req, close): (&'static str, Vec<u8>, bool) = match k {
            0..=39 => (
                "http: route with bad input",
                route_request(&mut r, &ids),
                false,
            ),
            40..=47 => ("http: random bytes", garbage(&mut r), true),
            48..=55 => {
                let full = route_request(&mut r, &ids);
                let cut = r.below(full.len());
                ("http: truncated request", full[..cut].to_vec(), true)
            }
            56..=57 => (
                "http: oversized headers",
                oversized_headers(&mut r, &ids),
                false,
            ),
            58..=62 => (
                "http: huge Content-Length, short body",
                lying_length(&mut r, &ids),
                true,
            ),
            63..=87 => {
                let (p, must_refuse) = tftp_packet(&mut r);
                tally.add(if must_refuse {
                    "tftp: traversal or write request"
                } else {
                    "tftp: malformed packet"
                });
                if must_refuse {
                    // The answer comes from the transfer's own port: an ERROR, never DATA.
                    let s = UdpSocket::bind("127.0.0.40:0").await.unwrap();
                    s.send_to(&p, tftp).await.unwrap();
                    let got =
                        tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf)).await;
                    let Ok(Ok((n, _))) = got else {
                        panic!("round {round}: no TFTP answer to {p:?}")
                    };
                    assert!(
                        n >= 4 && buf[..2] == [0, 5] && matches!(buf[3], 1 | 2),
                        "round {round}: TFTP answered {:?} to {p:?}",
                        &buf[..n.min(64)]
                    );
                } else {
                    let s = &tftp_socks[r.below(tftp_socks.len())];
                    let _ = s.send_to(&p, tftp).await;
                }
                // Drop what the answers left.
                for s in &tftp_socks {
                    while s.try_recv_from(&mut buf).is_ok() {}
                }
                continue;
            }
            88..=97 => {
                wire_garbage(&mut r, &samples);
                tally.add("agent wire: decoder on garbage");
                continue;
            }
            _ => {
                let mac = format!(
                    "52-54-00-{:02x}-{:02x}-{:02x}",
                    r.below(256),
                    r.below(256),
                    r.below(256)
                );
                let req = request("GET", &format!("/boot/mac/{mac}.ipxe"), &[], b"");
                ("http: script of a MAC not in the room", req, false)
            }
        };
        let head = req[..req.len().min(160)].to_vec();
        inflight.spawn(async move { (what, head, raw(http, req, close).await) });
        if round % 500 == 499 {
            while let Some(j) = inflight.join_next().await {
                record(&mut tally, j.unwrap());
            }
            assert!(!server.is_finished(), "round {round}: the endpoint stopped");
            legit.check(&c, &ids).await;
        }
    }
    while let Some(j) = inflight.join_next().await {
        record(&mut tally, j.unwrap());
    }
    assert!(
        tally.server_errors.is_empty(),
        "the endpoint failed ({} times): {:#?}",
        tally.server_errors.len(),
        &tally.server_errors[..tally.server_errors.len().min(10)]
    );

    // Still serving, slow connections and abandoned transfers still there.
    assert!(!server.is_finished(), "the endpoint stopped");
    legit.check(&c, &ids).await;
    let rss1 = rss_kib();
    let grew_mib = (rss1 - rss0) as f64 / 1024.0;

    // A MAC not in the room boots its disk: the local script, exactly, no ticket.
    let stranger = "52-54-00-fe-fe-99";
    let got = c
        .get(format!("{base}/boot/mac/{stranger}.ipxe"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let script = got.text().await.unwrap();
    assert_eq!(script, ep.scripts().local(stranger));
    assert!(script.contains("sanboot --no-describe --drive 0x80 || exit"));
    for secret in [&ids.a.1, &ids.b.1, &ids.c.1, "parc.task", "parc.token"] {
        assert!(!script.contains(secret), "{script}");
    }
    let by_mac = c
        .get(format!("{base}/boot/mac/not-a-mac.ipxe"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_mac.status(), 400);

    // Without the task's token (none, wrong, another task's): refused, nothing changes.
    let (id, _) = &ids.a;
    let progress = serde_json::to_vec(&ProgressReport {
        phase: "forged".into(),
        bytes: 1,
        total: 2,
        rate: 0.0,
    })
    .unwrap();
    let bad_tokens = ["", "wrong", &ids.b.1, &ids.d.1];
    for t in bad_tokens {
        let done = c
            .post(format!("{base}/boot/tasks/{id}/done"))
            .header("X-Parc-Token", t)
            .body("rc=0&message=forged")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 403, "boot report with token {t:?}");
        let booted = c
            .post(format!("{base}/boot/tasks/{id}/booted"))
            .header("X-Parc-Token", t)
            .send()
            .await
            .unwrap();
        assert_eq!(booted.status(), 403);
        for (path, body) in [("status", &fr), ("progress", &progress)] {
            let x = c
                .post(format!("{base}/tasks/{id}/{path}"))
                .bearer_auth(t)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(x.status(), 401, "{path} with token {t:?}");
        }
        let rec = c
            .put(format!("{base}/tasks/{id}/records/2"))
            .bearer_auth(t)
            .body(samples.0[7].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(rec.status(), 401, "record with token {t:?}");
        let up = c
            .put(format!("{base}/tasks/{}/streams/boot.bin", ids.d.0))
            .bearer_auth(if t == ids.d.1 { &ids.a.1 } else { t })
            .body(vec![0u8; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(up.status(), 401, "upload with token {t:?}");
    }
    assert_eq!(ep.task(id).unwrap().state, BootState::Pending);
    assert_eq!(images.state(id), Some(TaskState::default()));
    assert_eq!(images.records.get(HOST_A, 2).unwrap(), None);
    assert_eq!(images.records.get(HOST_A, 1).unwrap(), None);
    assert!(!server.is_finished(), "the endpoint stopped");

    drop(slow);
    drop(abandoned);
    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the endpoint did not stop when cancelled")
        .expect("the endpoint panicked");
    ended.expect("the endpoint ended with an error");

    let n = tally.total();
    eprintln!("net_abuse: by category:");
    for (k, v) in &tally.counts {
        eprintln!("  {v:6}  {k}");
    }
    eprintln!(
        "net_abuse: HTTP statuses {:?}, {} without an answer, {:.1} s",
        tally.statuses,
        tally.unanswered,
        started.elapsed().as_secs_f64()
    );
    assert!(
        grew_mib <= RSS_BOUND_MIB as f64,
        "RSS grew by {grew_mib:.1} MiB (from {rss0} kB to {rss1} kB)"
    );
    println!("net_abuse: {n} requests (seed {seed}), endpoint alive, RSS {grew_mib:+.1} MiB");
}

fn record(t: &mut Tally, (what, head, status): (&'static str, Vec<u8>, Option<u16>)) {
    t.add(what);
    match status {
        Some(s) => {
            *t.statuses.entry(s).or_default() += 1;
            if s >= 500 {
                t.server_errors.push(format!(
                    "{what}: {s} to {:?}",
                    String::from_utf8_lossy(&head)
                ));
            }
        }
        None => t.unanswered += 1,
    }
}
