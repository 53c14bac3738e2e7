//! One plain line per event, for logs and CI: readable line by line.

use std::io::Write;
use std::sync::Mutex;

use crate::ports::{ProgressEvent, Reporter};

/// The text of one event.
pub fn line(event: &ProgressEvent) -> String {
    match event {
        ProgressEvent::RunStarted { room, run } => format!("room {room}: run {run} started"),
        ProgressEvent::RunFinished { room, run, outcome } => {
            format!("room {room}: run {run} {outcome}")
        }
        ProgressEvent::StepStarted { room, step } => format!("room {room}: {step} started"),
        ProgressEvent::StepFinished { room, step, status } => {
            format!("room {room}: {step} {status}")
        }
        ProgressEvent::HostStarted { step, host } => format!("{step} {host}: started"),
        ProgressEvent::HostProgress {
            step,
            host,
            done,
            total,
            unit,
        } => match total {
            Some(t) if unit == "bytes" => {
                format!("{step} {host}: {} / {}", human(*done), human(*t))
            }
            Some(t) => format!("{step} {host}: {done}/{t} {unit}"),
            None => format!("{step} {host}: {done} {unit}"),
        },
        ProgressEvent::HostFinished {
            step,
            host,
            ok,
            message,
        } => {
            let word = if *ok { "done" } else { "FAILED" };
            if message.is_empty() {
                format!("{step} {host}: {word}")
            } else {
                format!("{step} {host}: {word}: {message}")
            }
        }
        ProgressEvent::Message { text } => text.clone(),
    }
}

/// Bytes in MiB/GiB for people.
fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// Writes one line per event (time-stamped) to a writer, usually stderr.
pub struct PlainReporter<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> PlainReporter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }

    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send> Reporter for PlainReporter<W> {
    fn report(&self, event: ProgressEvent) {
        let time = chrono::Local::now().format("%H:%M:%S");
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "[{time}] {}", line(&event));
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_readable_line_per_event() {
        let r = PlainReporter::new(Vec::new());
        r.report(ProgressEvent::StepStarted {
            room: "b204".into(),
            step: "deploy".into(),
        });
        r.report(ProgressEvent::HostProgress {
            step: "deploy".into(),
            host: "b204-02".into(),
            done: 512 << 20,
            total: Some(1 << 30),
            unit: "bytes".into(),
        });
        r.report(ProgressEvent::HostFinished {
            step: "deploy".into(),
            host: "b204-03".into(),
            ok: false,
            message: "b204-03 does not answer".into(),
        });
        let text = String::from_utf8(r.into_inner()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].ends_with("] room b204: deploy started"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("] deploy b204-02: 512.0 MiB / 1.0 GiB"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("] deploy b204-03: FAILED: b204-03 does not answer"),
            "{}",
            lines[2]
        );
        assert!(!text.contains('\u{1b}'), "no terminal escapes");
    }
}
