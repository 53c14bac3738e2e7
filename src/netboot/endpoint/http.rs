//! The endpoint's HTTP routes (axum): iPXE scripts per MAC, the boot environment's kernel and
//! initramfs, and the boot environment's own reports (`booted`, `done`) which end a task and
//! switch its MAC to "boot the local disk". The image routes (`crate::netboot::serve`) are mounted next
//! to these by `server`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::server::Endpoint;
use super::tasks::{BootDecision, TaskError};

type Shared = Arc<Endpoint>;

/// The boot routes, all under `/boot/`.
pub fn router(ep: Shared) -> Router {
    Router::new()
        .route("/boot/boot.ipxe", get(stage1))
        .route("/boot/mac/{file}", get(per_mac))
        .route("/boot/vmlinuz", get(kernel))
        .route("/boot/initrd.img", get(initrd))
        .route("/boot/tasks/{id}/booted", post(booted))
        .route("/boot/tasks/{id}/done", post(done))
        .with_state(ep)
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn refuse(e: &TaskError) -> Response {
    let code = match e {
        TaskError::BadMac(_) => StatusCode::BAD_REQUEST,
        TaskError::UnknownTask(_) => StatusCode::NOT_FOUND,
        TaskError::BadToken(_) => StatusCode::FORBIDDEN,
        TaskError::Ended(_) => StatusCode::CONFLICT,
    };
    (code, format!("{e}\n")).into_response()
}

async fn stage1(State(ep): State<Shared>) -> Response {
    text(ep.scripts().stage1(ep.base_url()))
}

async fn per_mac(State(ep): State<Shared>, Path(file): Path<String>) -> Response {
    let mac = file.strip_suffix(".ipxe").unwrap_or(&file);
    match ep.decide(mac) {
        Ok(BootDecision::LocalDisk) => text(ep.scripts().local(mac)),
        Ok(BootDecision::RunAgent(t)) => text(ep.scripts().agent(ep.base_url(), &t, ep.disk())),
        Err(e) => refuse(&e),
    }
}

async fn send_file(path: std::path::PathBuf) -> Response {
    match tokio::fs::File::open(&path).await {
        Ok(f) => {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            let body =
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("{}: {e}\n", path.display())).into_response(),
    }
}

async fn kernel(State(ep): State<Shared>) -> Response {
    send_file(ep.bootenv().join("vmlinuz")).await
}

async fn initrd(State(ep): State<Shared>) -> Response {
    send_file(ep.bootenv().join("initrd.img")).await
}

fn token(headers: &HeaderMap) -> &str {
    headers
        .get("x-parc-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `key=value&…` as busybox wget posts it (no percent-decoding needed for our keys).
fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

async fn booted(State(ep): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match ep.booted(&id, token(&headers)) {
        Ok(()) => text("ok\n".into()),
        Err(e) => refuse(&e),
    }
}

async fn done(
    State(ep): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let success = form_value(&body, "rc") == Some("0");
    let message = form_value(&body, "message").unwrap_or("").replace('+', " ");
    match ep.report(&id, token(&headers), success, message) {
        Ok(()) => text("ok\n".into()),
        Err(e) => refuse(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::form_value;

    #[test]
    fn reads_the_boot_environments_form() {
        assert_eq!(form_value("rc=0&message=deployed ok", "rc"), Some("0"));
        assert_eq!(
            form_value("rc=1&message=disk too small", "message"),
            Some("disk too small")
        );
        assert_eq!(form_value("stage=booted", "rc"), None);
    }
}
