//! Errors of the image layer, each naming the image, stream, file or command that failed.

use std::path::PathBuf;

use super::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Stream {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("image {id}: {source}")]
    Manifest {
        id: String,
        #[source]
        source: ManifestError,
    },
    #[error("image {0} does not exist")]
    NotFound(String),
    #[error("image {0} already exists")]
    Exists(String),
    #[error("`{0}` is not an image id (expected <room>/<version>)")]
    BadId(String),
    #[error("stream {file} is corrupt: {detail}")]
    Integrity { file: String, detail: String },
    #[error("image {id}: manifest.toml was edited or damaged since capture: {detail}")]
    ManifestChanged { id: String, detail: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl ImageError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { path, source }
    }

    pub fn stream(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let what = what.into();
        move |source| ImageError::Stream { what, source }
    }
}

pub type ImageResult<T> = Result<T, ImageError>;
