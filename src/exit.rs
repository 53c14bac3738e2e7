//! Exit statuses and the one place where an error chain is printed.
//!
//! parc tells a user error (bad input, refused by a rule: exit 2) from an internal failure
//! (a machine, the network or parc itself failed: exit 1), like uv's `ExitStatus`.
//! `parc check` additionally uses 1 for "the workspace has findings".

use std::fmt::Write as _;
use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything went as asked.
    Success,
    /// The command ran and found problems (findings, a failed host, a partial run).
    Failure,
    /// The input was unusable or a rule refused the action; nothing was changed.
    UserError,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        match s {
            Status::Success => ExitCode::SUCCESS,
            Status::Failure => ExitCode::from(1),
            Status::UserError => ExitCode::from(2),
        }
    }
}

/// An error that knows whether it is the user's input or an internal failure, and may carry a hint.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CliError {
    #[source]
    pub error: anyhow::Error,
    pub status: Status,
    pub hint: Option<String>,
}

impl CliError {
    /// Bad input or a refusal: exit 2.
    pub fn user(error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            status: Status::UserError,
            hint: None,
        }
    }

    /// Something failed that is not the user's input: exit 1.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            status: Status::Failure,
            hint: None,
        }
    }

    /// `user` or `internal` as the layer's error says, with its hint if it has one.
    pub fn classified(user: bool, error: impl Into<anyhow::Error>, hint: Option<String>) -> Self {
        let err = if user {
            Self::user(error)
        } else {
            Self::internal(error)
        };
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Renders `error: …`, then one `Caused by:` line per source, then `hint: …`.
pub fn render_chain(err: &CliError) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "error: {}", err.error);
    for cause in err.error.chain().skip(1) {
        let _ = writeln!(out, "  Caused by: {cause}");
    }
    if let Some(hint) = &err.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}
