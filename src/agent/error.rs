//! Errors of the agent, naming the endpoint call or the image step that failed.

use crate::image::error::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: the endpoint answered {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Task(String),
}
