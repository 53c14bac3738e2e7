//! The image routes' access log: one line per request once its response body is sent or
//! dropped — the task, method, path, status and the body bytes that actually left — kept in
//! memory (what the tests and the bench count) and appended to a file when the endpoint has
//! one (`<state dir>/access.log`). A deploy's traffic is then measured by the endpoint,
//! not taken from the agent's own word.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

/// One request to the image routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// The task the path names (`/tasks/<id>/…`), empty otherwise.
    pub task: String,
    /// The workstation a deploy task names, empty otherwise.
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Body bytes sent (a body cut short counts what left).
    pub bytes: u64,
}

impl AccessEntry {
    /// The log line: `<task> <host> <method> <path> <status> <bytes>` (`-` for no task or
    /// no host).
    pub fn line(&self) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        format!(
            "{} {} {} {} {} {}",
            dash(&self.task),
            dash(&self.host),
            self.method,
            self.path,
            self.status,
            self.bytes
        )
    }
}

/// The log: entries in memory, lines in a file when set.
#[derive(Debug, Default)]
pub struct AccessLog {
    entries: Mutex<Vec<AccessEntry>>,
    file: Mutex<Option<PathBuf>>,
}

impl AccessLog {
    /// Also appends every line to `path`.
    pub fn to_file(&self, path: PathBuf) {
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    }

    pub fn entries(&self) -> Vec<AccessEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Body bytes sent to task `task` by GET requests (what its deploy downloaded).
    pub fn bytes_sent_to(&self, task: &str) -> u64 {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.task == task && e.method == "GET")
            .map(|e| e.bytes)
            .sum()
    }

    fn record(&self, e: AccessEntry) {
        if let Some(path) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let line = format!(
                "{} {}\n",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.line()
            );
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }
}

/// Records the entry when the body is done with (sent, or dropped by a closed connection).
struct Recorder {
    log: Arc<super::ImagesService>,
    entry: Option<AccessEntry>,
    sent: Arc<AtomicU64>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut e) = self.entry.take() {
            e.bytes = self.sent.load(Ordering::Relaxed);
            self.log.access.record(e);
        }
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn log_access(
    State(svc): State<Arc<super::ImagesService>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let task = path
        .strip_prefix("/tasks/")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string();
    let host = match svc.lock().get(&task).map(|t| &t.spec) {
        Some(crate::agent::wire::TaskSpec::Deploy { hostname, .. }) => hostname.clone(),
        _ => String::new(),
    };
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let sent = Arc::new(AtomicU64::new(0));
    let recorder = Recorder {
        log: svc,
        entry: Some(AccessEntry {
            task,
            host,
            method,
            path,
            status,
            bytes: 0,
        }),
        sent: sent.clone(),
    };
    let counted = body.into_data_stream().map(move |chunk| {
        let _keep = &recorder;
        if let Ok(c) = &chunk {
            sent.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(counted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_task_and_host_or_dashes() {
        let mut e = AccessEntry {
            task: "30c4".into(),
            host: "labo-pc02".into(),
            method: "GET".into(),
            path: "/tasks/30c4/chunks/ab.zst".into(),
            status: 200,
            bytes: 4085,
        };
        assert_eq!(
            e.line(),
            "30c4 labo-pc02 GET /tasks/30c4/chunks/ab.zst 200 4085"
        );
        (e.task, e.host) = (String::new(), String::new());
        assert_eq!(e.line(), "- - GET /tasks/30c4/chunks/ab.zst 200 4085");
    }
}
