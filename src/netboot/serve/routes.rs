//! The HTTP routes agents talk to (see `crate::agent::wire` for the protocol).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::Read;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::range::{RangeAnswer, parse_range};
use super::service::{ImagesService, Task, Unattend};
use crate::agent::endpoint::CHUNKS_HEADER;
use crate::agent::wire::{CaptureDone, FinalReport, MulticastAnswer, ProgressReport, TaskSpec};
use crate::image::chunks::{ChunkIndex, ChunkParams, ChunkRef, ChunkStore, Concat};
use crate::image::error::ImageError;
use crate::image::hashing::digest_string;
use crate::image::manifest::{Compression, FORMAT_VERSION, Manifest, check_name};
use crate::image::store::Served;

type Svc = Arc<ImagesService>;

/// The image routes, to be mounted into the endpoint's router.
pub fn router(service: Svc) -> axum::Router {
    axum::Router::new()
        .route("/tasks/{id}", get(get_task))
        .route(
            "/tasks/{id}/streams/{file}",
            get(get_stream)
                .put(put_stream)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/tasks/{id}/chunks/{name}", get(get_chunk))
        .route(
            "/tasks/{id}/records/{partition}",
            get(get_record)
                .put(put_record)
                .layer(DefaultBodyLimit::max(super::records::RECORD_MAX)),
        )
        .route("/tasks/{id}/unattend", get(get_unattend))
        .route("/tasks/{id}/capture", post(post_capture))
        .route("/tasks/{id}/progress", post(post_progress))
        .route("/tasks/{id}/status", post(post_status))
        .route("/tasks/{id}/multicast", post(post_multicast))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            super::access::log_access,
        ))
        .with_state(service)
}

/// An error answered to the agent: a status and a plain-text message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn err(code: StatusCode, msg: impl std::fmt::Display) -> ApiError {
    ApiError(code, msg.to_string())
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks the bearer token and runs `f` on the task.
fn with_task<T>(
    svc: &ImagesService,
    id: &str,
    headers: &HeaderMap,
    f: impl FnOnce(&mut Task) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut tasks = svc.lock();
    let task = tasks
        .get_mut(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no task {id}")))?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(given, &task.token) {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            format!("bad token for task {id}"),
        ));
    }
    f(task)
}

async fn get_task(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskSpec>, ApiError> {
    with_task(&svc, &id, &headers, |t| Ok(Json(t.spec.clone())))
}

/// The answer file, once: the first fetch takes it out of memory; a second one is refused
/// (410), so a machine that took another's task cannot also take its domain join blob
/// unnoticed: the real workstation's deploy then fails and says why.
async fn get_unattend(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = with_task(&svc, &id, &headers, |t| {
        match std::mem::replace(&mut t.unattend, Unattend::Fetched) {
            Unattend::Waiting(s) => Ok(s.0),
            Unattend::Fetched => Err(err(
                StatusCode::GONE,
                format!(
                    "the answer file of task {id} was already fetched once: deploy the workstation again"
                ),
            )),
            Unattend::None => {
                t.unattend = Unattend::None;
                Err(err(
                    StatusCode::NOT_FOUND,
                    format!("task {id} has no answer file"),
                ))
            }
        }
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

async fn get_stream(
    State(svc): State<Svc>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let image_id = with_task(&svc, &id, &headers, |t| match &t.spec {
        TaskSpec::Deploy { image_id, .. } => Ok(image_id.clone()),
        TaskSpec::Format {
            base: Some(base), ..
        } => Ok(base.image_id.clone()),
        _ => Err(err(
            StatusCode::CONFLICT,
            format!("task {id} is not a deploy nor a format with a base image"),
        )),
    })?;
    let served = {
        let store = svc.store.clone();
        let (image_id, file) = (image_id.clone(), file.clone());
        tokio::task::spawn_blocking(move || store.served(&image_id, &file))
            .await
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .map_err(|e| match e {
                ImageError::NotFound(_) => err(StatusCode::NOT_FOUND, e),
                e => err(StatusCode::INTERNAL_SERVER_ERROR, e),
            })?
    };
    let (len, mut file_body) = match &served {
        Served::File(path) => {
            let f = tokio::fs::File::open(path).await.map_err(|e| {
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", path.display()),
                )
            })?;
            let len = f
                .metadata()
                .await
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
                .len();
            (len, Some(f))
        }
        Served::Chunks(index) => (index.stored_len(), None),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        RangeAnswer::Whole => (StatusCode::OK, 0, len),
        RangeAnswer::Part(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        RangeAnswer::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    let body = match (file_body.take(), served) {
        (Some(mut f), _) => {
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                f.take(count),
                1 << 18,
            ))
        }
        (None, Served::Chunks(index)) => chunks_body(svc.store.chunks(), index, start, count),
        (None, Served::File(_)) => unreachable!("a file is opened above"),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, "bytes".parse().expect("static"));
    h.insert(header::CONTENT_LENGTH, count.into());
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{len}", start + count - 1);
        h.insert(header::CONTENT_RANGE, v.parse().expect("ascii"));
    }
    Ok(resp)
}

/// The chunk files of `index` concatenated, bytes `start..start + count`, read a MiB or so
/// at a time off the async runtime.
fn chunks_body(store: ChunkStore, index: Arc<ChunkIndex>, start: u64, count: u64) -> Body {
    let reader = Concat::new(store, index, start);
    let stream = futures::stream::try_unfold(
        (Some(reader.take(count)), count),
        |(reader, left)| async move {
            let Some(mut r) = reader else {
                return Ok(None);
            };
            if left == 0 {
                return Ok(None);
            }
            let (r, buf) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; (1 << 20).min(left as usize)];
                let mut n = 0;
                while n < buf.len() {
                    match r.read(&mut buf[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(n);
                Ok((r, buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            if buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the chunk store ended before the stream",
                ));
            }
            let n = buf.len() as u64;
            Ok::<_, std::io::Error>(Some((bytes::Bytes::from(buf), (Some(r), left - n))))
        },
    );
    Body::from_stream(stream)
}

/// One chunk file of the store (`<sha256 hex>.zst`), for a deploy that fetches only the
/// chunks its workstation lacks. Any chunk of the store, to a task's token holder.
async fn get_chunk(
    State(svc): State<Svc>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    with_task(&svc, &id, &headers, |_| Ok(()))?;
    let mut digest = [0u8; 32];
    let hex = name.strip_suffix(".zst").unwrap_or_default();
    if hex::decode_to_slice(hex, &mut digest).is_err() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{name}: expected <sha256 hex>.zst"),
        ));
    }
    let path = svc.store.chunks().path(&ChunkRef { digest, len: 0 });
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| err(StatusCode::NOT_FOUND, format!("chunk {hex}: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/zstd")],
        bytes::Bytes::from(bytes),
    )
        .into_response())
}

/// The workstation a deploy task is for: records are kept per workstation.
fn deploy_host(t: &Task, id: &str) -> Result<String, ApiError> {
    match &t.spec {
        TaskSpec::Deploy { hostname, .. } => Ok(hostname.clone()),
        _ => Err(err(
            StatusCode::BAD_REQUEST,
            format!("task {id} is not a deploy: it has no deploy records"),
        )),
    }
}

/// The record the last deploy of the task's workstation left of a partition
/// (`crate::image::record`); 404 when there is none.
async fn get_record(
    State(svc): State<Svc>,
    Path((id, partition)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let host = with_task(&svc, &id, &headers, |t| deploy_host(t, &id))?;
    let got = svc.records.get(&host, partition).map_err(|e| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the record of {host}'s partition {partition}: {e}"),
        )
    })?;
    match got {
        Some(b) => Ok((
            [(header::CONTENT_TYPE, "application/zstd")],
            bytes::Bytes::from(b),
        )
            .into_response()),
        None => Err(err(
            StatusCode::NOT_FOUND,
            format!("no record of {host}'s partition {partition}"),
        )),
    }
}

/// Keeps the record a deploy left of a partition, for the workstation's next deploy. A
/// record that does not read is refused (400).
async fn put_record(
    State(svc): State<Svc>,
    Path((id, partition)): Path<(String, u32)>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    let host = with_task(&svc, &id, &headers, |t| deploy_host(t, &id))?;
    crate::image::record::KeptRecord::decode(&body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("the record of partition {partition}: {e}"),
        )
    })?;
    svc.records
        .put(&host, partition, body.to_vec())
        .map_err(|e| {
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("keeping the record of {host}'s partition {partition}: {e}"),
            )
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_stream(
    State(svc): State<Svc>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // Open (or truncate, when the capture restarts) the stream in the staging folder: a zstd
    // stream is cut into the chunk store as it arrives, anything else (the boot area) is
    // kept as a file.
    let chunked = file.ends_with(".zst");
    // Sent chunk by chunk (frames stored as they come), or one zstd stream (cut here).
    let framed = match headers.get(CHUNKS_HEADER) {
        None => None,
        Some(v) => Some(
            parse_chunk_header(v.to_str().unwrap_or_default())
                .map_err(|e| err(StatusCode::BAD_REQUEST, format!("{CHUNKS_HEADER}: {e}")))?,
        ),
    };
    let (f, chunker) = with_task(&svc, &id, &headers, |t| {
        let TaskSpec::Capture { room, version, .. } = &t.spec else {
            return Err(err(
                StatusCode::CONFLICT,
                format!("task {id} is not a capture"),
            ));
        };
        let cs = t.capture.as_mut().expect("capture tasks carry their state");
        if cs.staging.is_none() {
            let st = svc
                .store
                .begin(room, version)
                .map_err(|e| err(StatusCode::CONFLICT, e))?;
            cs.staging = Some(st);
        }
        cs.received.remove(&file);
        cs.chunked.remove(&file);
        let st = cs.staging.as_ref().expect("just set");
        if chunked {
            check_name("stream file", &file).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
            Ok((None, Some(st.chunker())))
        } else {
            let (f, path) = st
                .create_stream(&file)
                .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
            Ok((Some((tokio::fs::File::from_std(f), path)), None))
        }
    })?;
    let (tx, cutter) = match chunker {
        Some(chunker) => {
            let params = match framed {
                Some(p) => p,
                None => ChunkParams::for_capture()
                    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?,
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
            let name = file.clone();
            let cutter = tokio::task::spawn_blocking(move || {
                let input = ChannelReader {
                    rx,
                    cur: bytes::Bytes::new(),
                };
                if framed.is_some() {
                    let (info, upload) = chunker.store_frames(&name, input, params)?;
                    return Ok((info, Some(upload)));
                }
                let decoded = zstd::stream::read::Decoder::new(input)
                    .map_err(ImageError::stream(format!("decompressing {name}")))?;
                Ok((chunker.chunk_stream(&name, decoded, params)?, None))
            });
            (Some(tx), Some(cutter))
        }
        None => (None, None),
    };
    let mut out = f;
    // A framed upload stored as chunks is hashed as its frames are stored (one pass for both
    // digests); anything else is hashed here as it arrives.
    let mut hasher = (framed.is_none() || cutter.is_none()).then(Sha256::new);
    let mut size = 0u64;
    let mut data = body.into_data_stream();
    let mut cut_stopped = false;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                format!("upload of {file} broke: {e}"),
            )
        })?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        size += chunk.len() as u64;
        if let Some((out, path)) = out.as_mut() {
            out.write_all(&chunk).await.map_err(|e| {
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        if let Some(tx) = tx.as_ref() {
            // A cutter that stopped (bad zstd data) says why once the upload is read.
            if !cut_stopped && tx.send(chunk).await.is_err() {
                cut_stopped = true;
            }
        }
    }
    drop(tx);
    if let Some((out, _)) = out.as_mut() {
        out.flush()
            .await
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    }
    let stored = match cutter {
        Some(c) => Some(
            c.await
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
                .map_err(|e| match e {
                    ImageError::Stream { .. } => err(StatusCode::BAD_REQUEST, e),
                    e => err(StatusCode::INTERNAL_SERVER_ERROR, e),
                })?,
        ),
        None => None,
    };
    let (stored, upload) = match stored {
        Some((info, upload)) => (Some(info), upload),
        None => (None, None),
    };
    let digest = match (hasher, upload) {
        (Some(h), _) => digest_string(h),
        (None, Some(d)) => d,
        (None, None) => {
            return Err(err(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("upload of {file}: no digest was taken of it"),
            ));
        }
    };
    with_task(&svc, &id, &headers, |t| {
        if let Some(cs) = t.capture.as_mut() {
            cs.received.insert(file.clone(), (digest, size));
            if let Some(s) = stored {
                cs.chunked.insert(file.clone(), s);
            }
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `<min> <avg> <max>`, within FastCDC's limits.
fn parse_chunk_header(v: &str) -> Result<ChunkParams, String> {
    let n: Vec<u32> = v
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{v}` is not `<min> <avg> <max>`"))?;
    let [min, avg, max] = n[..] else {
        return Err(format!("`{v}` is not `<min> <avg> <max>`"));
    };
    let p = ChunkParams { min, avg, max };
    p.check().map(|()| p)
}

/// Reads the byte chunks an async task sends (from a blocking thread).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

async fn post_capture(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(done): Json<CaptureDone>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (staging, manifest) = with_task(&svc, &id, &headers, |t| {
        let TaskSpec::Capture {
            room,
            version,
            layout,
        } = &t.spec
        else {
            return Err(err(
                StatusCode::CONFLICT,
                format!("task {id} is not a capture"),
            ));
        };
        let cs = t.capture.as_mut().expect("capture tasks carry their state");
        let check = |s: &crate::image::manifest::StreamInfo| -> Result<(), ApiError> {
            match cs.received.get(&s.file) {
                Some((d, n)) if *d == s.sha256 && *n == s.size => Ok(()),
                Some((d, n)) => Err(err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "stream {} arrived as {n} bytes with {d}, the agent sent {} bytes with {}",
                        s.file, s.size, s.sha256
                    ),
                )),
                None => Err(err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("stream {} was never uploaded", s.file),
                )),
            }
        };
        let mut disk = layout.clone();
        for cp in &done.partitions {
            check(&cp.stream)?;
            let p = disk
                .partitions
                .iter_mut()
                .find(|p| p.number == cp.number)
                .ok_or_else(|| {
                    err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("no partition {}", cp.number),
                    )
                })?;
            p.fs_label = cp.fs_label.clone();
            p.fs_uuid = cp.fs_uuid.clone();
            p.stream = Some(
                cs.chunked
                    .get(&cp.stream.file)
                    .cloned()
                    .unwrap_or_else(|| cp.stream.clone()),
            );
            if let Some(t) = &cp.table {
                take_identity(p, t);
            }
        }
        for (n, t) in &done.other_partitions {
            if let Some(p) = disk.partitions.iter_mut().find(|p| p.number == *n) {
                take_identity(p, t);
            }
        }
        if done.disk_guid.is_some() {
            disk.disk_guid = done.disk_guid.clone();
        }
        if let Some(b) = &done.boot_area {
            check(b)?;
        }
        let tpl = &cs.template;
        let manifest = Manifest {
            format: FORMAT_VERSION,
            room: room.clone(),
            version: version.clone(),
            recipe_digest: tpl.recipe_digest.clone(),
            software_digest: tpl.software_digest.clone(),
            hardware_model: tpl.hardware_model.clone(),
            os_family: tpl.os_family,
            captured_from: done.captured_from.clone(),
            captured_at: tpl.captured_at.clone(),
            parc_version: env!("CARGO_PKG_VERSION").to_string(),
            compression: Compression::Zstd,
            software: tpl.software.clone(),
            disk,
            boot_area: done.boot_area.clone(),
        };
        manifest
            .validate()
            .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        let staging = cs
            .staging
            .take()
            .ok_or_else(|| err(StatusCode::CONFLICT, "no stream was uploaded"))?;
        cs.received.clear();
        cs.chunked.clear();
        Ok((staging, manifest))
    })?;
    let image_id = manifest.id();
    tokio::task::spawn_blocking(move || staging.commit(&manifest))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(serde_json::json!({ "image": image_id })))
}

async fn post_progress(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(p): Json<ProgressReport>,
) -> Result<StatusCode, ApiError> {
    with_task(&svc, &id, &headers, |t| {
        t.state.progress = Some(p);
        Ok(())
    })?;
    svc.changed.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// A receiver about to join its room's multicast session: whether the session still takes
/// receivers (it has not started sending).
async fn post_multicast(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MulticastAnswer>, ApiError> {
    let session = with_task(&svc, &id, &headers, |t| Ok(t.session.clone()))?;
    Ok(Json(match session {
        Some(sid) => svc.multicast.answer(&sid),
        None => MulticastAnswer {
            open: false,
            reason: format!("task {id} is not in a multicast session"),
        },
    }))
}

async fn post_status(
    State(svc): State<Svc>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(r): Json<FinalReport>,
) -> Result<StatusCode, ApiError> {
    with_task(&svc, &id, &headers, |t| {
        t.state.report = Some(r);
        Ok(())
    })?;
    svc.changed.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// The master's table names the partition: its type, GUID, name and attribute bits win over
/// the layout's.
fn take_identity(p: &mut crate::image::manifest::Partition, t: &crate::agent::wire::TableIdentity) {
    p.type_code = t.type_code.clone();
    p.uuid = t.uuid.clone();
    p.name = t.name.clone();
    p.attrs = t.attrs.clone();
}
