//! The room's streams by multicast, with unicast catch-up: udpcast's `udp-receiver` writes
//! the session (every stream of the image, in manifest order, end to end) on its stdout; the
//! deploy reads each stream from it through the same verifying pipeline as an HTTP download.
//! A receiver that joins too late, loses the stream or is dropped by the sender takes the
//! rest of the stream it was in, and every later one, by HTTP from the byte it reached. A
//! stream stored as chunks is caught up as the chunks it lacks (`/chunks/<sha256>.zst`, from
//! the one holding that byte on, eight in flight), each checked against its digest before
//! its bytes are passed on; a single-file stream (an older image, the boot area) by one
//! HTTP Range download. The sha256 of each stream is checked whatever path its bytes came
//! by.

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::endpoint::{DownloadReader, Endpoint};
use super::wire::{Delivery, DeliveryPath, MulticastOffer};
use crate::image::chunks::{ChunkRef, decode_chunk};
use crate::image::deploy::{RecordKeeper, StreamSource};
use crate::image::incremental::{ChunkFetcher, Seeded, fetch_index};
use crate::image::manifest::{Manifest, StreamInfo};

/// Seconds without a packet after which a receiver leaves a started session.
const RECEIVE_TIMEOUT_SECS: u64 = 30;

enum State {
    /// Not asked yet: the first stream's open joins.
    Waiting(MulticastOffer),
    Receiving {
        child: Child,
        out: ChildStdout,
        errors: Arc<Mutex<String>>,
        /// Set at the first byte: the session started.
        started: Arc<std::sync::atomic::AtomicBool>,
        /// Index in `order` of the next stream the session delivers.
        next: usize,
        /// Bytes of that stream already read.
        read: u64,
    },
    /// Unicast from here on.
    Left,
}

/// A [`StreamSource`] taking the room's multicast session when it can, HTTP otherwise.
pub struct RoomSource<'a> {
    rt: &'a Runtime,
    ep: &'a Endpoint,
    /// The streams in session order: file and size.
    order: Vec<(String, u64)>,
    state: State,
    delivery: Delivery,
    /// Planned for the room's session: streams come whole (no chunk by chunk deploy).
    offered: bool,
    /// Whether records are kept (Some), and whether the last one is left aside (true).
    records: Option<bool>,
}

impl<'a> RoomSource<'a> {
    /// Without an offer every stream comes by HTTP.
    pub fn new(
        rt: &'a Runtime,
        ep: &'a Endpoint,
        manifest: &Manifest,
        offer: Option<MulticastOffer>,
    ) -> Self {
        let order = manifest
            .streams()
            .map(|s| (s.file.clone(), s.size))
            .collect();
        let offered = offer.is_some();
        let (state, note) = match offer {
            Some(o) => (State::Waiting(o), String::new()),
            None => (State::Left, "no multicast session for this deploy".into()),
        };
        Self {
            rt,
            ep,
            order,
            state,
            delivery: Delivery {
                path: DeliveryPath::Unicast,
                multicast_bytes: 0,
                unicast_bytes: 0,
                seeded_bytes: 0,
                recorded: false,
                note,
            },
            offered,
            records: None,
        }
    }

    /// Keeps the records deploys leave of the workstation's filesystems at the endpoint
    /// (a deploy task's, not a format's); with `read_all`, does not take the last one: an
    /// incremental deploy then reads every file (`parc-agent deploy --read-all`).
    pub fn keeping_records(mut self, read_all: bool) -> Self {
        self.records = Some(read_all);
        self
    }

    /// What came by which path so far.
    pub fn delivery(&self) -> Delivery {
        let mut d = self.delivery.clone();
        d.path = match (d.multicast_bytes, d.unicast_bytes) {
            (0, _) => DeliveryPath::Unicast,
            (_, 0) => DeliveryPath::Multicast,
            _ => DeliveryPath::MulticastThenUnicast,
        };
        d
    }

    fn join(&mut self, offer: &MulticastOffer) -> Result<State, String> {
        let answer = self
            .rt
            .block_on(self.ep.multicast_join())
            .map_err(|e| format!("the endpoint did not answer: {e}"))?;
        if !answer.open {
            return Err(answer.reason);
        }
        let host = self
            .ep
            .host()
            .ok_or("the endpoint's address is not an IPv4 address")?;
        let iface = crate::netif::facing(host)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no interface of this machine is on {host}'s subnet"))?;
        let mut child = Command::new("udp-receiver")
            .args(["--nokbd", "--portbase"])
            .arg(offer.portbase.to_string())
            .arg("--interface")
            .arg(&iface.interface)
            .arg("--mcast-rdv-address")
            .arg(&offer.rendezvous)
            .arg("--receive-timeout")
            .arg(RECEIVE_TIMEOUT_SECS.to_string())
            .args(["--stat-period", "5000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("udp-receiver: {e}"))?;
        // The session must start within its offer's time (udp-receiver's own --start-timeout
        // also fires after the transfer started, cutting it short): else the receiver is
        // stopped and the deploy goes on by HTTP.
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, pid, limit) = (started.clone(), child.id(), offer.start_timeout_secs);
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(limit));
            if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: kill(2) on our child; if it already exited and was reaped the
                // deploy has left the session and nothing reads it any more.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let errors = Arc::new(Mutex::new(String::new()));
        let keep = errors.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut e = keep.lock().unwrap_or_else(|e| e.into_inner());
                e.push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', "\n"));
                if e.len() > 4096 {
                    let cut = e.len() - 2048;
                    let cut = (cut..e.len()).find(|&i| e.is_char_boundary(i)).unwrap_or(0);
                    e.drain(..cut);
                }
            }
        });
        eprintln!(
            "parc-agent: joined the room's multicast (port {} on {})",
            offer.portbase, iface.interface
        );
        Ok(State::Receiving {
            child,
            out,
            errors,
            started,
            next: 0,
            read: 0,
        })
    }

    /// Leaves the session (kills the receiver) and records why: every later stream comes by
    /// HTTP.
    pub fn leave(&mut self, why: &str) {
        if let State::Receiving { mut child, .. } = std::mem::replace(&mut self.state, State::Left)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.delivery.note.is_empty() {
            self.delivery.note = why.to_string();
        }
        eprintln!("parc-agent: unicast from here on: {why}");
    }

    /// Why the receiver stopped delivering, from its exit status and last words.
    fn receiver_failure(&mut self, read_error: Option<io::Error>) -> String {
        let State::Receiving {
            child,
            errors,
            started,
            ..
        } = &mut self.state
        else {
            return "the multicast session ended".into();
        };
        if !started.load(std::sync::atomic::Ordering::SeqCst) && read_error.is_none() {
            let _ = child.wait();
            return "the room's multicast did not start in time".into();
        }
        // Give it a moment to exit so its status says what happened.
        let mut status = None;
        for _ in 0..20 {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let said = errors.lock().map(|e| e.clone()).unwrap_or_default();
        let last = said
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("bytes="))
            .unwrap_or("")
            .to_string();
        let mut why = match (read_error, status) {
            (Some(e), _) => format!("reading udp-receiver's output: {e}"),
            (None, Some(s)) if s.success() => "udp-receiver ended before the session did".into(),
            (None, Some(s)) => format!("udp-receiver stopped ({s})"),
            (None, None) => "udp-receiver closed its output".into(),
        };
        if !last.is_empty() {
            why.push_str(": ");
            why.push_str(&last);
        }
        why
    }

    /// Reads what the session sends of the stream at `self.order[next]` into `buf`.
    fn read_session(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let State::Receiving {
            out,
            next,
            read,
            started,
            ..
        } = &mut self.state
        else {
            return Err("left the session".into());
        };
        let size = self.order[*next].1;
        let want = buf.len().min((size - *read) as usize);
        match out.read(&mut buf[..want]) {
            Ok(0) => Err(self.receiver_failure(None)),
            Ok(n) => {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                *read += n as u64;
                self.delivery.multicast_bytes += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(self.receiver_failure(Some(e))),
        }
    }

    /// After the last stream: lets udp-receiver see the session's end and exit.
    fn finish_session(&mut self) {
        if let State::Receiving {
            mut child, mut out, ..
        } = std::mem::replace(&mut self.state, State::Left)
        {
            let _ = io::copy(&mut out, &mut io::sink());
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Moves the session to stream `file`, discarding streams the deploy does not read.
    /// False when the session cannot deliver it (already past it, or not in the session).
    fn seek_session(&mut self, file: &str) -> bool {
        let Some(want) = self.order.iter().position(|(f, _)| f == file) else {
            return false;
        };
        let mut sink = vec![0u8; 1 << 16];
        loop {
            let State::Receiving { next, read, .. } = &mut self.state else {
                return false;
            };
            if *next == want && *read == 0 {
                return true;
            }
            if *next > want || (*next == want && *read > 0) {
                return false;
            }
            if *read == self.order[*next].1 {
                *next += 1;
                *read = 0;
                continue;
            }
            match self.read_session(&mut sink) {
                Ok(_) => {}
                Err(why) => {
                    self.leave(&why);
                    return false;
                }
            }
        }
    }
}

impl Drop for RoomSource<'_> {
    fn drop(&mut self) {
        if let State::Receiving { child, .. } = &mut self.state {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl StreamSource for RoomSource<'_> {
    fn open(&mut self, s: &StreamInfo) -> io::Result<Box<dyn Read + Send + '_>> {
        if let State::Waiting(offer) = &self.state {
            let offer = offer.clone();
            match self.join(&offer) {
                Ok(state) => self.state = state,
                Err(why) => {
                    self.state = State::Left;
                    self.leave(&format!("did not join the room's multicast: {why}"));
                }
            }
        }
        let multicast = matches!(self.state, State::Receiving { .. }) && {
            let ok = self.seek_session(&s.file);
            if !ok && matches!(self.state, State::Receiving { .. }) {
                self.leave(&format!("{} is not the session's next stream", s.file));
            }
            ok
        };
        Ok(Box::new(SessionStream {
            src: self,
            stream: s.clone(),
            got: 0,
            http: None,
            multicast,
            left: false,
        }))
    }

    fn fetcher(&mut self) -> Option<&mut dyn ChunkFetcher> {
        if self.offered { None } else { Some(self) }
    }

    fn records(&mut self) -> Option<&mut dyn RecordKeeper> {
        if self.records.is_some() {
            Some(self)
        } else {
            None
        }
    }

    fn seeded(&mut self, s: &StreamInfo, what: &Seeded) {
        self.delivery.seeded_bytes += what.seeded_bytes;
        self.delivery.recorded |= what.recorded;
        self.delivery.unicast_bytes += what.fetched_bytes;
        eprintln!(
            "parc-agent: {}: {} MiB found on the disk, {} chunks ({} KiB) fetched, {} files rewritten, {} kept, {} removed",
            s.file,
            what.seeded_bytes >> 20,
            what.fetched_chunks,
            what.fetched_bytes >> 10,
            what.sync.files_written,
            what.sync.files_kept,
            what.sync.removed
        );
    }
}

impl RecordKeeper for RoomSource<'_> {
    fn load(&mut self, partition: u32) -> Option<Vec<u8>> {
        if self.records != Some(false) {
            return None;
        }
        match self.rt.block_on(self.ep.record(partition)) {
            Ok(r) => r.map(|b| b.to_vec()),
            Err(e) => {
                eprintln!(
                    "parc-agent: no record of partition {partition}'s last deploy ({e}): reading the whole tree"
                );
                None
            }
        }
    }

    fn save(&mut self, partition: u32, record: Vec<u8>) {
        if let Err(e) = self.rt.block_on(self.ep.put_record(partition, record)) {
            eprintln!(
                "parc-agent: the endpoint did not keep the record of partition {partition} ({e}): the next reimage reads the whole tree"
            );
        }
    }
}

impl ChunkFetcher for RoomSource<'_> {
    fn index(&mut self, s: &StreamInfo) -> io::Result<Vec<u8>> {
        let i = s
            .index
            .as_ref()
            .ok_or_else(|| io::Error::other(format!("{} has no index", s.file)))?;
        let b = self
            .rt
            .block_on(self.ep.small_file(&format!("/streams/{}", i.file)))?;
        Ok(b.to_vec())
    }

    fn fetch(
        &mut self,
        chunks: Vec<ChunkRef>,
    ) -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send> {
        let names = chunks.iter().map(|c| format!("{}.zst", c.hex())).collect();
        Box::new(self.ep.chunks(self.rt.handle(), names, CHUNK_FETCHES))
    }
}

/// Chunk requests in flight at once in an incremental deploy or a catch-up (hides the
/// round trips).
const CHUNK_FETCHES: usize = 8;

/// How a stream's bytes come by HTTP.
enum Http {
    /// The stream from byte `got` on, in one download (HTTP Range when `got` > 0).
    Whole(DownloadReader),
    /// A chunked stream's chunk files from the one holding byte `got` on, each checked.
    Chunks(ChunkCatchUp),
}

/// The rest of a chunked stream as chunk files fetched from the endpoint, in index order.
struct ChunkCatchUp {
    /// The chunks still to come, with their stored lengths.
    refs: std::vec::IntoIter<(ChunkRef, u32)>,
    /// The chunk files as they come, in the order of `refs`.
    fetched: Box<dyn Iterator<Item = io::Result<Vec<u8>>> + Send>,
    /// The current chunk's stored bytes and the next one to hand on.
    cur: Vec<u8>,
    pos: usize,
    /// Bytes of the next chunk's file the multicast already delivered (the first one only).
    skip: usize,
    /// Once a chunk failed, every later read fails the same way (never a short stream).
    failed: Option<(io::ErrorKind, String)>,
}

impl ChunkCatchUp {
    /// Reads into `buf`; adds the stored bytes of every chunk received to `received`.
    fn read(&mut self, file: &str, buf: &mut [u8], received: &mut u64) -> io::Result<usize> {
        if let Some((kind, why)) = &self.failed {
            return Err(io::Error::new(*kind, why.clone()));
        }
        let r = self.read_checked(file, buf, received);
        if let Err(e) = &r {
            self.failed = Some((e.kind(), e.to_string()));
        }
        r
    }

    fn read_checked(
        &mut self,
        file: &str,
        buf: &mut [u8],
        received: &mut u64,
    ) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some((c, stored)) = self.refs.next() else {
                return Ok(0);
            };
            let z = self.fetched.next().unwrap_or_else(|| {
                Err(io::Error::other(format!(
                    "the chunk fetch ended before chunk {}",
                    c.hex()
                )))
            })?;
            *received += z.len() as u64;
            let bad = |detail: String| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{file}: {detail}"))
            };
            if z.len() != stored as usize {
                return Err(bad(format!(
                    "chunk {} came as {} bytes, the index says {stored}",
                    c.hex(),
                    z.len()
                )));
            }
            decode_chunk(&c, &z).map_err(bad)?;
            self.cur = z;
            self.pos = std::mem::take(&mut self.skip);
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// The child's pipes are Send; the runtime and endpoint are shared references to Sync types.
struct SessionStream<'s, 'a> {
    src: &'s mut RoomSource<'a>,
    stream: StreamInfo,
    got: u64,
    http: Option<Http>,
    multicast: bool,
    /// The session was lost in this stream.
    left: bool,
}

impl SessionStream<'_, '_> {
    /// The rest of the stream by HTTP from byte `got`: as the chunks it lacks when it is
    /// stored as chunks and the session delivered its start, else in one download.
    fn catch_up(&mut self) -> io::Result<Http> {
        let (file, got) = (&self.stream.file, self.got);
        if got == 0 || self.stream.index.is_none() {
            if self.left {
                eprintln!("parc-agent: {file}: catching up by HTTP from byte {got}");
            }
            let rt = self.src.rt.handle();
            return Ok(Http::Whole(self.src.ep.download_from(
                rt,
                file,
                self.stream.size,
                got,
            )));
        }
        let index = fetch_index(&mut *self.src, &self.stream).map_err(io::Error::other)?;
        if index.stored_len() != self.stream.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{file}: its index holds {} stored bytes, the manifest says {}",
                    index.stored_len(),
                    self.stream.size
                ),
            ));
        }
        let (first, skip) = index
            .locate(got)
            .expect("got < size: a byte of the stored stream");
        let refs: Vec<(ChunkRef, u32)> = index.chunks[first..]
            .iter()
            .copied()
            .zip(index.stored[first..].iter().copied())
            .collect();
        eprintln!(
            "parc-agent: {file}: catching up by HTTP from byte {got}: {} chunks",
            refs.len()
        );
        let names = refs
            .iter()
            .map(|(c, _)| format!("{}.zst", c.hex()))
            .collect();
        let fetched = Box::new(
            self.src
                .ep
                .chunks(self.src.rt.handle(), names, CHUNK_FETCHES),
        );
        Ok(Http::Chunks(ChunkCatchUp {
            refs: refs.into_iter(),
            fetched,
            cur: Vec::new(),
            pos: 0,
            skip: skip as usize,
            failed: None,
        }))
    }
}

impl Read for SessionStream<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.stream.size;
        loop {
            if self.got == size || buf.is_empty() {
                return Ok(0);
            }
            match &mut self.http {
                Some(Http::Whole(h)) => {
                    let n = h.read(buf)?;
                    self.got += n as u64;
                    self.src.delivery.unicast_bytes += n as u64;
                    return Ok(n);
                }
                Some(Http::Chunks(c)) => {
                    let want = buf.len().min((size - self.got) as usize);
                    let n = c.read(
                        &self.stream.file,
                        &mut buf[..want],
                        &mut self.src.delivery.unicast_bytes,
                    )?;
                    self.got += n as u64;
                    return Ok(n);
                }
                None => {}
            }
            if self.multicast {
                match self.src.read_session(buf) {
                    Ok(0) => continue,
                    Ok(n) => {
                        self.got += n as u64;
                        if self.got == size {
                            self.src.after_stream();
                        }
                        return Ok(n);
                    }
                    Err(why) => {
                        self.src.leave(&why);
                        self.multicast = false;
                        self.left = true;
                    }
                }
            }
            self.http = Some(self.catch_up()?);
        }
    }
}

impl RoomSource<'_> {
    /// A stream of the session was read to its end.
    fn after_stream(&mut self) {
        let last = self.order.len();
        if let State::Receiving { next, read, .. } = &mut self.state {
            *next += 1;
            *read = 0;
            if *next == last {
                self.finish_session();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Three chunks of the stored stream, as the store keeps them.
    fn chunks() -> Vec<(ChunkRef, Vec<u8>)> {
        (0..3u8)
            .map(|i| {
                let data = vec![i; 1000 + usize::from(i)];
                let c = ChunkRef {
                    digest: Sha256::digest(&data).into(),
                    len: data.len() as u32,
                };
                (c, zstd::bulk::compress(&data, 3).unwrap())
            })
            .collect()
    }

    fn catch_up(from: &[(ChunkRef, Vec<u8>)], served: Vec<Vec<u8>>, skip: usize) -> ChunkCatchUp {
        ChunkCatchUp {
            refs: from
                .iter()
                .map(|(c, z)| (*c, z.len() as u32))
                .collect::<Vec<_>>()
                .into_iter(),
            fetched: Box::new(served.into_iter().map(Ok)),
            cur: Vec::new(),
            pos: 0,
            skip,
            failed: None,
        }
    }

    fn read_all(c: &mut ChunkCatchUp, received: &mut u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = c.read("p1.tar.zst", &mut buf, received)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_catch_up_hands_on_the_stored_bytes_from_the_first_chunks_offset() {
        let all = chunks();
        let from = &all[1..];
        let served: Vec<Vec<u8>> = from.iter().map(|(_, z)| z.clone()).collect();
        let mut received = 0;
        let got = read_all(&mut catch_up(from, served.clone(), 5), &mut received).unwrap();
        assert_eq!(got, served.concat()[5..]);
        assert_eq!(received, served.iter().map(|z| z.len() as u64).sum::<u64>());
    }

    #[test]
    fn a_chunk_that_fails_its_check_is_an_error_naming_it() {
        let all = chunks();
        let mut served: Vec<Vec<u8>> = all.iter().map(|(_, z)| z.clone()).collect();
        // The second chunk's file holds the third's bytes, of the same stored length.
        served[1] = zstd::bulk::compress(&vec![9u8; 1001], 3).unwrap();
        assert_eq!(served[1].len(), all[1].1.len());
        let mut c = catch_up(&all, served, 0);
        let mut received = 0;
        let e = read_all(&mut c, &mut received).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let hex = all[1].0.hex();
        assert!(e.to_string().contains(&format!("chunk {hex}")), "{e}");
        assert!(e.to_string().starts_with("p1.tar.zst: "), "{e}");
        // And it stays failed: never a short stream.
        let again = c
            .read("p1.tar.zst", &mut [0u8; 7], &mut received)
            .unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
    }
}
