//! The UI layer: renders the engine's progress events. The only place indicatif is used.
//!
//! - on a terminal: bars (one per step, one per workstation for deploy/join/verify, bytes and
//!   rate where known);
//! - when stderr is not a terminal (CI, journald): one plain line per event on stderr;
//! - with `--json`: one JSON object per event per line on stdout.

mod bars;
mod json;
mod plain;

use std::io::IsTerminal;
use std::sync::Arc;

pub use bars::BarReporter;
pub use json::JsonReporter;
pub use plain::{PlainReporter, line};

use crate::ports::Reporter;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    Json,
}

/// The reporter for a mode and the current stderr.
pub fn reporter(mode: Mode) -> Arc<dyn Reporter> {
    match mode {
        Mode::Json => Arc::new(JsonReporter::new(std::io::stdout())),
        Mode::Auto if std::io::stderr().is_terminal() => Arc::new(BarReporter::new()),
        Mode::Auto => Arc::new(PlainReporter::new(std::io::stderr())),
    }
}
