//! Step logs: one file per attempt under `.parc/logs/run-<id>/`, written line by line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::ports::steps::StepLog;

use super::EngineError;

/// A step log appended to a file.
pub struct FileLog {
    file: Mutex<std::fs::File>,
}

impl FileLog {
    pub fn create(path: &Path) -> Result<Self, EngineError> {
        let err = |source| EngineError::Log {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }
}

impl StepLog for FileLog {
    fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{} {text}", crate::journal::now());
        }
    }
}

/// Where the log of one attempt goes.
pub fn path_for(state_dir: &Path, run: i64, step: &str, host: Option<&str>) -> PathBuf {
    let name = match host {
        Some(h) => format!("{step}-{h}.log"),
        None => format!("{step}.log"),
    };
    state_dir.join("logs").join(format!("run-{run}")).join(name)
}
