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
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::range::{RangeAnswer, parse_range};
use super::service::{ImagesService, Task, Unattend};
use crate::agent::wire::{CaptureDone, FinalReport, MulticastAnswer, ProgressReport, TaskSpec};
use crate::image::hashing::digest_string;
use crate::image::manifest::{Compression, FORMAT_VERSION, Manifest};

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
        .route("/tasks/{id}/unattend", get(get_unattend))
        .route("/tasks/{id}/capture", post(post_capture))
        .route("/tasks/{id}/progress", post(post_progress))
        .route("/tasks/{id}/status", post(post_status))
        .route("/tasks/{id}/multicast", post(post_multicast))
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
    let path = svc
        .store
        .stream_path(&image_id, &file)
        .map_err(|e| err(StatusCode::NOT_FOUND, e))?;
    let mut f = tokio::fs::File::open(&path).await.map_err(|e| {
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
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f.take(count),
        1 << 18,
    ));
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

async fn put_stream(
    State(svc): State<Svc>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // Open (or truncate, when the capture restarts) the stream in the staging folder.
    let (f, path) = with_task(&svc, &id, &headers, |t| {
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
        let st = cs.staging.as_ref().expect("just set");
        st.create_stream(&file)
            .map_err(|e| err(StatusCode::BAD_REQUEST, e))
    })?;
    let mut out = tokio::fs::File::from_std(f);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                format!("upload of {file} broke: {e}"),
            )
        })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(|e| {
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })?;
    }
    out.flush()
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let digest = digest_string(hasher);
    with_task(&svc, &id, &headers, |t| {
        if let Some(cs) = t.capture.as_mut() {
            cs.received.insert(file.clone(), (digest, size));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
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
            p.stream = Some(cp.stream.clone());
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
