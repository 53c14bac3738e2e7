//! Watching for secrets during a run (issue 15, Secrets): every process's command line, read
//! again and again while the run goes, then every file parc wrote (journal, audit log, logs,
//! live files, reports, the endpoint's state) and the workstations' consoles, searched for
//! each stored secret value. Any hit fails the test with where it was (the value masked).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct SecretWatch {
    secrets: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, usize, Vec<String>)>,
}

/// Where `needle` occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every process's command line once: (how many read, hits).
fn scan_processes(secrets: &[Vec<u8>]) -> (usize, Vec<String>) {
    let mut read = 0;
    let mut hits = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, hits);
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        read += 1;
        for (i, s) in secrets.iter().enumerate() {
            if find(&cmdline, s) {
                let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                let masked = shown.replace(&*String::from_utf8_lossy(s), "<secret>");
                hits.push(format!(
                    "secret #{i} on the command line of pid {}: {masked}",
                    name.to_string_lossy()
                ));
            }
        }
    }
    (read, hits)
}

impl SecretWatch {
    /// Starts reading every process's command line every 50 ms.
    pub fn start(secrets: Vec<Vec<u8>>) -> Self {
        let secrets: Vec<Vec<u8>> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        assert!(!secrets.is_empty(), "no secret value to watch for");
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (secrets.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let (mut scans, mut lines, mut hits) = (0, 0, Vec::new());
            while !st.load(Ordering::Relaxed) {
                let (n, h) = scan_processes(&s);
                scans += 1;
                lines += n;
                for hit in h {
                    if !hits.contains(&hit) {
                        hits.push(hit);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (scans, lines, hits)
        });
        SecretWatch {
            secrets,
            stop,
            handle,
        }
    }

    /// Stops watching, searches every file under `roots` (but `skip`) and panics on any hit;
    /// returns a line saying what was searched.
    pub fn finish(self, roots: &[PathBuf], skip: &[PathBuf]) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let (scans, lines, mut hits) = self.handle.join().expect("the watch thread");
        let mut files = 0usize;
        let mut bytes = 0u64;
        let mut stack: Vec<PathBuf> = roots.to_vec();
        while let Some(p) = stack.pop() {
            if skip.iter().any(|s| p.starts_with(s)) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(d) = std::fs::read_dir(&p) {
                    stack.extend(d.flatten().map(|e| e.path()));
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Ok(content) = std::fs::read(&p) else {
                continue;
            };
            files += 1;
            bytes += content.len() as u64;
            for (i, s) in self.secrets.iter().enumerate() {
                if find(&content, s) {
                    hits.push(format!("secret #{i} in {}", display(&p)));
                }
            }
        }
        assert!(
            hits.is_empty(),
            "secrets found where they must never be:\n{}",
            hits.join("\n")
        );
        format!(
            "secrets: {} value(s), 0 hits in {lines} process command lines ({scans} scans) and {files} files ({} MiB)",
            self.secrets.len(),
            bytes >> 20
        )
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
