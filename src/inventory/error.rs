//! Errors of the inventory import; each names the file or URL that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}")]
    Input {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("\"{url}\" is not a valid URL")]
    BadUrl { url: String },
    #[error("GLPI at {url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("cannot reach GLPI at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GLPI refused the credentials at {url} (HTTP 401{})", code_suffix(.code))]
    Unauthorized { url: String, code: Option<String> },
    #[error("GLPI answered HTTP {status} at {url}{}", code_suffix(.code))]
    Status {
        url: String,
        status: u16,
        code: Option<String>,
    },
    #[error("GLPI's answer at {url} is not the JSON expected: {message}")]
    Malformed { url: String, message: String },
    #[error("cannot start the HTTP client's runtime")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error("GLPI offers no search option \"{uid}\" for computers")]
    SearchOption { uid: String },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(", {c}")).unwrap_or_default()
}
