//! The agent's HTTP client: fetches its task, reports progress and status, downloads streams
//! with resume (HTTP Range, bounded retries) and uploads captured streams, streaming.

use std::io::{self, Read};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::RANGE;
use tokio::sync::mpsc;

use super::error::AgentError;
use super::wire::{CaptureDone, FinalReport, MulticastAnswer, ProgressReport, TaskSpec};

/// The header of an upload written chunk by chunk: `<min> <avg> <max>` (the cutting
/// parameters, which the stream's index records for incremental deploys).
pub const CHUNKS_HEADER: &str = "x-parc-chunks";

/// How the agent reaches its task on the endpoint.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    task: String,
    token: String,
    http: reqwest::Client,
    /// Without read timeout: an upload reads nothing until its body is sent.
    upload_http: reqwest::Client,
    /// Consecutive failed attempts (no byte received) before a download gives up.
    pub retries: u32,
    /// How long the final report is retried while the endpoint cannot be reached.
    pub report_patience: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Endpoint({} task {}, <token redacted>)",
            self.base, self.task
        )
    }
}

fn http_err(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Http { what, source }
}

async fn check(what: &str, resp: reqwest::Response) -> Result<reqwest::Response, AgentError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Err(AgentError::Refused {
        what: what.to_string(),
        status,
        body,
    })
}

impl Endpoint {
    pub fn new(base: &str, task: &str, token: &str) -> Result<Self, AgentError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(http_err("building the HTTP client"))?;
        let upload_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(http_err("building the HTTP client"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            task: task.to_string(),
            token: token.to_string(),
            http,
            upload_http,
            retries: 5,
            report_patience: Duration::from_secs(600),
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/tasks/{}{rest}", self.base, self.task)
    }

    pub async fn task(&self) -> Result<TaskSpec, AgentError> {
        let what = format!("fetching task {}", self.task);
        let resp = self
            .http
            .get(self.url(""))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(http_err(&what))?;
        check(&what, resp)
            .await?
            .json()
            .await
            .map_err(http_err(what))
    }

    /// The workstation's answer file (Windows), served once: a second fetch is refused.
    pub async fn unattend(&self) -> Result<crate::ports::SecretBytes, AgentError> {
        let what = format!("fetching the answer file of task {}", self.task);
        let resp = self
            .http
            .get(self.url("/unattend"))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(http_err(&what))?;
        let body = check(&what, resp)
            .await?
            .bytes()
            .await
            .map_err(http_err(what))?;
        Ok(crate::ports::SecretBytes(body.to_vec()))
    }

    /// A small file of the task's image (a stream's chunk index), whole, with retries.
    pub async fn small_file(&self, rest: &str) -> io::Result<Bytes> {
        let mut failures = 0u32;
        loop {
            let got = async {
                let resp = self
                    .http
                    .get(self.url(rest))
                    .bearer_auth(&self.token)
                    .send()
                    .await
                    .map_err(|e| (true, e.to_string()))?;
                let status = resp.status();
                if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err((
                        status.is_server_error(),
                        format!("the endpoint answered {status}: {body}"),
                    ));
                }
                resp.bytes().await.map_err(|e| (true, e.to_string()))
            }
            .await;
            match got {
                Ok(b) => return Ok(b),
                Err((retry, why)) => {
                    failures += 1;
                    if !retry || failures > self.retries {
                        return Err(io::Error::other(format!("fetching {rest}: {why}")));
                    }
                    tokio::time::sleep(Duration::from_millis(250 << failures.min(4))).await;
                }
            }
        }
    }

    /// Fetches chunk files (`/chunks/<sha256>.zst`), up to `parallel` at once, and hands
    /// them over in order; stops at the first failure (after retries), which it hands over.
    pub fn chunks(
        &self,
        rt: &tokio::runtime::Handle,
        names: Vec<String>,
        parallel: usize,
    ) -> ChunkReceiver {
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        rt.spawn(async move {
            let mut got = futures::stream::iter(names)
                .map(|n| {
                    let me = me.clone();
                    async move { me.small_file(&format!("/chunks/{n}")).await }
                })
                .buffered(parallel);
            while let Some(r) = got.next().await {
                let stop = r.is_err();
                if tx.send(r.map(|b| b.to_vec())).await.is_err() || stop {
                    return;
                }
            }
        });
        ChunkReceiver { rx }
    }

    async fn post<T: serde::Serialize>(
        &self,
        rest: &str,
        what: &str,
        body: &T,
    ) -> Result<reqwest::Response, AgentError> {
        let resp = self
            .http
            .post(self.url(rest))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(http_err(what))?;
        check(what, resp).await
    }

    /// The record the workstation's last deploy left of `partition`, None when the
    /// endpoint has none (`crate::image::record`).
    pub async fn record(&self, partition: u32) -> io::Result<Option<Bytes>> {
        let resp = self
            .http
            .get(self.url(&format!("/records/{partition}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(io::Error::other)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = resp.error_for_status().map_err(io::Error::other)?;
        resp.bytes().await.map(Some).map_err(io::Error::other)
    }

    /// Hands the endpoint the record this deploy left of `partition`.
    pub async fn put_record(&self, partition: u32, record: Vec<u8>) -> io::Result<()> {
        let resp = self
            .http
            .put(self.url(&format!("/records/{partition}")))
            .bearer_auth(&self.token)
            .body(record)
            .send()
            .await
            .map_err(io::Error::other)?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(io::Error::other(format!(
                "the endpoint answered {status}: {body}"
            )));
        }
        Ok(())
    }

    /// Asks whether the room's multicast session still takes receivers.
    pub async fn multicast_join(&self) -> Result<MulticastAnswer, AgentError> {
        let what = "asking to join the room's multicast";
        self.post("/multicast", what, &serde_json::json!({}))
            .await?
            .json()
            .await
            .map_err(http_err(what))
    }

    /// The endpoint's host (an IPv4 address in a boot environment), from its URL.
    pub fn host(&self) -> Option<std::net::Ipv4Addr> {
        let rest = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        let authority = rest.split('/').next()?;
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .parse()
            .ok()
    }

    pub async fn progress(&self, p: &ProgressReport) -> Result<(), AgentError> {
        self.post("/progress", "reporting progress", p)
            .await
            .map(drop)
    }

    /// Reports the task's outcome. The endpoint keeps the last report (a repeated one replaces
    /// it), so a report whose answer was lost is sent again: retried, with a growing pause,
    /// while the endpoint cannot be reached or fails (5xx), for up to `report_patience`.
    pub async fn status(&self, r: &FinalReport) -> Result<(), AgentError> {
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let err = match self.post("/status", "reporting the outcome", r).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let transient = match &err {
                AgentError::Http { .. } => true,
                AgentError::Refused { status, .. } => *status >= 500,
                _ => false,
            };
            let left = self.report_patience.saturating_sub(start.elapsed());
            if !transient || left.is_zero() {
                return Err(err);
            }
            let pause_now = pause.min(left);
            eprintln!(
                "parc-agent: {}; trying again in {} s ({} s of patience left)",
                super::run::error_chain(&err),
                pause_now.as_secs_f64().ceil(),
                left.as_secs()
            );
            tokio::time::sleep(pause_now).await;
            pause = (pause * 2).min(Duration::from_secs(15));
        }
    }

    pub async fn capture_done(&self, done: &CaptureDone) -> Result<(), AgentError> {
        self.post("/capture", "committing the capture", done)
            .await
            .map(drop)
    }

    /// Uploads one stream, its chunks coming from `rx`. An `Err` chunk aborts the upload so
    /// the endpoint never takes a truncated stream for a whole one.
    /// Uploads a captured stream; `chunks`: written chunk by chunk with these parameters
    /// (header [`CHUNKS_HEADER`]).
    pub async fn upload(
        &self,
        file: &str,
        rx: mpsc::Receiver<io::Result<Bytes>>,
        chunks: Option<crate::image::chunks::ChunkParams>,
    ) -> Result<(), AgentError> {
        let what = format!("uploading {file}");
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut req = self
            .upload_http
            .put(self.url(&format!("/streams/{file}")))
            .bearer_auth(&self.token);
        if let Some(p) = chunks {
            req = req.header(CHUNKS_HEADER, format!("{} {} {}", p.min, p.avg, p.max));
        }
        let resp = req
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(http_err(&what))?;
        check(&what, resp).await.map(drop)
    }

    /// Starts downloading one stream of `size` bytes on `rt`; returns a blocking reader of it.
    pub fn download(&self, rt: &tokio::runtime::Handle, file: &str, size: u64) -> DownloadReader {
        self.download_from(rt, file, size, 0)
    }

    /// The same from byte `offset` on (HTTP Range): the rest of a stream another path
    /// delivered the start of.
    pub fn download_from(
        &self,
        rt: &tokio::runtime::Handle,
        file: &str,
        size: u64,
        offset: u64,
    ) -> DownloadReader {
        let (tx, rx) = mpsc::channel(16);
        let me = self.clone();
        let file = file.to_string();
        rt.spawn(async move { me.download_task(&file, size, offset, tx).await });
        DownloadReader {
            rx,
            cur: Bytes::new(),
            failed: None,
        }
    }

    async fn download_task(
        &self,
        file: &str,
        size: u64,
        start: u64,
        tx: mpsc::Sender<io::Result<Bytes>>,
    ) {
        let url = self.url(&format!("/streams/{file}"));
        let mut offset = start;
        let mut failures = 0u32;
        while offset < size {
            let mut req = self.http.get(&url).bearer_auth(&self.token);
            if offset > 0 {
                req = req.header(RANGE, format!("bytes={offset}-"));
            }
            let before = offset;
            let problem = match req.send().await {
                Ok(resp) => {
                    let expected = if offset == 0 { 200 } else { 206 };
                    if resp.status().as_u16() != expected {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        let e = io::Error::other(format!("the endpoint answered {status}: {body}"));
                        // A refusal is not a broken connection: do not retry.
                        if !status.is_server_error() {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        e.to_string()
                    } else {
                        let mut body = resp.bytes_stream();
                        loop {
                            match body.next().await {
                                Some(Ok(b)) => {
                                    offset += b.len() as u64;
                                    if offset > size {
                                        let _ = tx
                                            .send(Err(io::Error::other(format!(
                                                "more than the {size} bytes announced"
                                            ))))
                                            .await;
                                        return;
                                    }
                                    if tx.send(Ok(b)).await.is_err() {
                                        return; // The reader stopped: nothing more to do.
                                    }
                                }
                                Some(Err(e)) => {
                                    break format!("connection broke at byte {offset}: {e}");
                                }
                                None => break format!("connection closed at byte {offset}"),
                            }
                        }
                    }
                }
                Err(e) => format!("request failed: {e}"),
            };
            if offset >= size {
                break;
            }
            failures = if offset > before { 1 } else { failures + 1 };
            if failures > self.retries {
                let _ = tx
                    .send(Err(io::Error::other(format!(
                        "gave up after {} attempts without progress: {problem}",
                        self.retries + 1
                    ))))
                    .await;
                return;
            }
            eprintln!("parc-agent: {file}: {problem}; resuming at byte {offset}");
            let wait = Duration::from_millis(250 << failures.min(4));
            tokio::time::sleep(wait).await;
        }
    }
}

/// The chunks a [`Endpoint::chunks`] fetch hands over, in order (blocking; not from a
/// runtime thread).
pub struct ChunkReceiver {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
}

impl Iterator for ChunkReceiver {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.blocking_recv()
    }
}

/// Blocking reader over a download running on the runtime. Must not be read from a runtime
/// thread.
/// Once the download failed, every later read fails the same way (never a short stream).
pub struct DownloadReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    failed: Option<String>,
}

impl Read for DownloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if let Some(f) = &self.failed {
                return Err(io::Error::other(f.clone()));
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;

    use super::*;

    /// An endpoint whose `/status` answers `answers` in turn (then 204); counts the calls.
    async fn endpoint(answers: Vec<StatusCode>) -> (Endpoint, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/tasks/t1/status",
            axum::routing::post(move || {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answer = answers.get(n).copied().unwrap_or(StatusCode::NO_CONTENT);
                async move { answer }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut ep = Endpoint::new(&format!("http://{addr}"), "t1", "tok").unwrap();
        ep.report_patience = Duration::from_secs(5);
        (ep, calls)
    }

    fn report() -> FinalReport {
        FinalReport {
            success: false,
            message: "gave up".into(),
            delivery: None,
        }
    }

    #[tokio::test]
    async fn the_final_report_is_retried_while_the_endpoint_fails() {
        let (ep, calls) = endpoint(vec![
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::BAD_GATEWAY,
        ])
        .await;
        ep.status(&report()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refused_report_is_not_retried() {
        let (ep, calls) = endpoint(vec![StatusCode::FORBIDDEN]).await;
        let err = ep.status(&report()).await.unwrap_err();
        assert!(
            matches!(err, AgentError::Refused { status: 403, .. }),
            "{err:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retried_for_the_patience_then_given_up() {
        // A port nothing listens on: every connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ep = Endpoint::new(&format!("http://127.0.0.1:{port}"), "t1", "tok").unwrap();
        ep.report_patience = Duration::from_secs(2);
        let t0 = std::time::Instant::now();
        let err = ep.status(&report()).await.unwrap_err();
        assert!(matches!(err, AgentError::Http { .. }), "{err:?}");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }
}
