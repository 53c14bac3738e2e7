//! The live side of the console: what a run says as it goes, from the engine's process to the
//! console's.
//!
//! `parc master` and `parc reimage` add a [`LiveLog`] to their reporter: every progress event
//! is appended, as one JSON line with its time, to `<workspace>/.parc/live/<room>.jsonl`, a
//! file started afresh by each run (a new file, so a reader sees the change of inode). The
//! console's [`Feed`] follows those files, folds the events into each room's
//! [`Board`](super::tiles::Board) and hands every change to the pages' event streams. A console
//! started in the middle of a run (or after it) reads the file from its start and shows the
//! same tiles; a killed run leaves its file, which the next run replaces.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::tiles::Board;
use crate::ports::{ProgressEvent, Reporter};

/// The folder of the live files under a workspace's state folder.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("live")
}

/// Appends each event to the room's live file (one `write` per line, `O_APPEND`). The file
/// is started afresh when the run starts (its `run-started` event, once the room's lock is
/// held): a `parc master` refused because another holds the room never touches the live
/// file of the run in progress. Events before it wait in memory.
pub struct LiveLog {
    state_dir: PathBuf,
    room: String,
    out: Mutex<LiveOut>,
}

enum LiveOut {
    Waiting(Vec<String>),
    Writing(File),
    /// The file could not be started: the run goes on without it.
    Off,
}

/// Lines kept before the run starts (a refused run says little).
const WAITING_MAX: usize = 256;

impl LiveLog {
    pub fn new(state_dir: &Path, room: &str) -> Self {
        Self {
            state_dir: state_dir.to_owned(),
            room: room.to_owned(),
            out: Mutex::new(LiveOut::Waiting(Vec::new())),
        }
    }

    /// The room's live file, new (the previous run's is replaced).
    pub fn path(&self) -> PathBuf {
        dir(&self.state_dir).join(format!("{}.jsonl", self.room))
    }

    fn start(&self) -> std::io::Result<File> {
        std::fs::create_dir_all(dir(&self.state_dir))?;
        let path = self.path();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The first line names this run's file: a reader that finds another first line (the
        // inode number of a removed file can come back at once) starts again.
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        let head = serde_json::json!({ "live": hex::encode(nonce), "room": self.room });
        file.write_all(format!("{head}\n").as_bytes())?;
        Ok(file)
    }
}

/// One line of a live file.
pub fn line(event: &ProgressEvent, time: &str) -> String {
    let mut value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("time".into(), time.into());
    }
    format!("{value}\n")
}

impl Reporter for LiveLog {
    fn report(&self, event: ProgressEvent) {
        let line = line(&event, &crate::journal::now());
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(event, ProgressEvent::RunStarted { .. }) {
            let waiting = match &mut *out {
                LiveOut::Waiting(w) => std::mem::take(w),
                _ => Vec::new(),
            };
            *out = match self.start() {
                Ok(mut f) => {
                    for l in waiting {
                        let _ = f.write_all(l.as_bytes());
                    }
                    LiveOut::Writing(f)
                }
                Err(_) => LiveOut::Off,
            };
        }
        match &mut *out {
            // The console is a reader among others: a full disk must not stop the run.
            LiveOut::Writing(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            LiveOut::Waiting(w) if w.len() < WAITING_MAX => w.push(line),
            _ => {}
        }
    }
}

/// Hands every event to each reporter in turn.
pub struct Tee(pub Vec<Arc<dyn Reporter>>);

impl Reporter for Tee {
    fn report(&self, event: ProgressEvent) {
        if let Some((last, first)) = self.0.split_last() {
            for r in first {
                r.report(event.clone());
            }
            last.report(event);
        }
    }
}

/// A reporter that also keeps the room's live file (see [`LiveLog`]).
pub fn with_live_log(
    reporter: Arc<dyn Reporter>,
    state_dir: &Path,
    room: &str,
) -> Arc<dyn Reporter> {
    Arc::new(Tee(vec![reporter, Arc::new(LiveLog::new(state_dir, room))]))
}

/// What changed on a room's board, for the pages following it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One workstation's tile.
    Host(String),
    /// The run's banner (run, outcome, steps).
    Run,
    /// A new run replaced the board: everything.
    All,
}

/// A change on one room's board.
#[derive(Debug, Clone)]
pub struct Update {
    pub room: String,
    pub change: Change,
}

/// Where each live file was read up to.
struct Followed {
    /// The file's first line (see [`LiveLog::start`]).
    head: Vec<u8>,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
}

/// The boards of every room, kept up to date from the live files, and the channel that says
/// what changed.
pub struct Feed {
    dir: PathBuf,
    boards: Mutex<BTreeMap<String, Board>>,
    followed: Mutex<BTreeMap<String, Followed>>,
    tx: broadcast::Sender<Update>,
}

/// How often the live folder is looked at (the pages themselves never poll).
const TICK: Duration = Duration::from_millis(150);
/// The most a live file's new lines are read at once.
const CHUNK: u64 = 4 << 20;

impl Feed {
    pub fn new(state_dir: &Path) -> Arc<Self> {
        let (tx, _) = broadcast::channel(1024);
        let feed = Arc::new(Self {
            dir: dir(state_dir),
            boards: Mutex::new(BTreeMap::new()),
            followed: Mutex::new(BTreeMap::new()),
            tx,
        });
        feed.scan();
        feed
    }

    /// Follows the live folder until `cancel`.
    pub fn spawn(self: &Arc<Self>, cancel: CancellationToken) {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let f = feed.clone();
                let _ = tokio::task::spawn_blocking(move || f.scan()).await;
            }
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.tx.subscribe()
    }

    /// A copy of a room's board (empty when no run of it was seen).
    pub fn board(&self, room: &str) -> Board {
        self.boards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
            .unwrap_or_default()
    }

    /// Reads what was appended to every live file since the last scan.
    pub fn scan(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(room) = name.strip_suffix(".jsonl") {
                self.follow(room, &e.path());
            }
        }
    }

    fn follow(&self, room: &str, path: &Path) {
        let Ok(mut file) = File::open(path) else {
            return;
        };
        let Ok(meta) = file.metadata() else { return };
        let head = first_line(&mut file);
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match followed.get(room) {
            Some(f) => f.ino != meta.ino() || meta.len() < f.offset || f.head != head,
            None => true,
        };
        if fresh {
            followed.insert(
                room.to_owned(),
                Followed {
                    head,
                    ino: meta.ino(),
                    offset: 0,
                    partial: Vec::new(),
                },
            );
        }
        let Some(f) = followed.get_mut(room) else {
            return;
        };
        if meta.len() == f.offset && !fresh {
            return;
        }
        let mut bytes = std::mem::take(&mut f.partial);
        if file.seek(SeekFrom::Start(f.offset)).is_err() {
            return;
        }
        let read = (&mut file).take(CHUNK).read_to_end(&mut bytes).unwrap_or(0);
        f.offset += read as u64;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        f.partial = bytes.split_off(complete);
        drop(followed);

        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        if fresh {
            boards.insert(room.to_owned(), Board::default());
        }
        let board = boards.entry(room.to_owned()).or_default();
        let mut changes: Vec<Change> = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Some((time, event)) = parse_line(line) else {
                continue;
            };
            let change = board.apply(&time, &event);
            if let Some(c) = change.filter(|c| !changes.contains(c)) {
                changes.push(c);
            }
        }
        drop(boards);
        if fresh {
            changes = vec![Change::All];
        }
        for change in changes {
            let _ = self.tx.send(Update {
                room: room.to_owned(),
                change,
            });
        }
    }
}

/// The first line of a file (at most 256 bytes of it).
fn first_line(file: &mut File) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let _ = file.take(256).read_to_end(&mut buf);
    if let Some(end) = buf.iter().position(|b| *b == b'\n') {
        buf.truncate(end);
    }
    buf
}

/// One line of a live file: its time and its event (`None` for a line that does not parse:
/// written by another version of parc, or cut by a crash).
pub fn parse_line(line: &[u8]) -> Option<(String, ProgressEvent)> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let time = value.get("time")?.as_str()?.to_owned();
    let event = serde_json::from_value(value).ok()?;
    Some((time, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(host: &str, done: u64) -> ProgressEvent {
        ProgressEvent::HostProgress {
            step: "deploy".into(),
            host: host.into(),
            done,
            total: Some(100),
            unit: "bytes".into(),
        }
    }

    #[test]
    fn a_line_reads_back_as_its_event_and_time() {
        let e = progress("b204-02", 40);
        let l = line(&e, "2026-12-04T10:00:00.250Z");
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
        let (time, back) = parse_line(l.trim_end().as_bytes()).expect("parses");
        assert_eq!(time, "2026-12-04T10:00:00.250Z");
        assert_eq!(back, e);
        assert!(
            parse_line(b"{\"event\":\"host-progress\"").is_none(),
            "cut line"
        );
        assert!(parse_line(b"{\"event\":\"unknown\",\"time\":\"x\"}").is_none());
    }

    #[test]
    fn the_feed_follows_appends_half_lines_and_a_new_run() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = LiveLog::new(tmp.path(), "b204");
        let feed = Feed::new(tmp.path());
        let mut rx = feed.subscribe();
        log.report(ProgressEvent::Message {
            text: "before the run".into(),
        });
        feed.scan();
        assert!(!log.path().exists(), "no file before the run starts");
        log.report(run_started(1));
        log.report(ProgressEvent::HostStarted {
            step: "deploy".into(),
            host: "b204-02".into(),
        });
        feed.scan();
        let board = feed.board("b204");
        assert_eq!(board.hosts["b204-02"].step.as_deref(), Some("deploy"));
        assert_eq!(board.note, "before the run", "what came before is kept");
        assert_eq!(rx.try_recv().expect("update").change, Change::All);

        // Half a line is kept until its end arrives.
        let path = log.path();
        let whole = line(&progress("b204-02", 60), "2026-12-04T10:00:01.000Z");
        let (a, b) = whole.split_at(20);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(a.as_bytes()))
            .expect("append");
        feed.scan();
        assert!(rx.try_recv().is_err(), "no change for half a line");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b.as_bytes()))
            .expect("append");
        feed.scan();
        let tile = &feed.board("b204").hosts["b204-02"];
        assert_eq!(tile.progress.as_ref().map(|p| p.done), Some(60));
        assert_eq!(
            rx.try_recv().expect("update").change,
            Change::Host("b204-02".into())
        );

        // A new run starts a new file: the board starts again.
        let next = LiveLog::new(tmp.path(), "b204");
        next.report(run_started(2));
        feed.scan();
        let board = feed.board("b204");
        assert!(board.hosts.is_empty());
        assert_eq!(board.run, Some(2));
        assert_eq!(rx.try_recv().expect("update").change, Change::All);
    }

    fn run_started(run: i64) -> ProgressEvent {
        ProgressEvent::RunStarted {
            room: "b204".into(),
            run,
        }
    }
}
