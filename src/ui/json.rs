//! `--json`: one JSON object per event per line, for scripts.

use std::io::Write;
use std::sync::Mutex;

use crate::ports::{ProgressEvent, Reporter};

/// Writes each event as one line of JSON (with a `time` field).
pub struct JsonReporter<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonReporter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send> Reporter for JsonReporter<W> {
    fn report(&self, event: ProgressEvent) {
        let mut value = serde_json::to_value(&event).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("time".into(), crate::journal::now().into());
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }
}
