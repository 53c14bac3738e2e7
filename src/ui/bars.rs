//! Progress bars on a terminal: one per step, one per workstation for per-host steps, with
//! bytes and rate when the body reports them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::ports::{ProgressEvent, Reporter};

/// Renders events as indicatif bars on stderr.
pub struct BarReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for BarReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl BarReporter {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Bars drawn nowhere (tests).
    pub fn hidden() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn spinner(&self, key: String, prefix: String) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner} {prefix:<24} {wide_msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.multi.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_prefix(prefix),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(key, bar.clone());
        }
        bar
    }

    fn get(&self, key: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(key).cloned()
    }
}

impl Reporter for BarReporter {
    fn report(&self, event: ProgressEvent) {
        match &event {
            ProgressEvent::StepStarted { step, .. } => {
                self.spinner(format!("step:{step}"), step.clone())
                    .set_message("running");
            }
            ProgressEvent::StepFinished { step, status, .. } => {
                if let Some(b) = self.get(&format!("step:{step}")) {
                    b.finish_with_message(status.clone());
                }
            }
            ProgressEvent::HostStarted { step, host } => {
                self.spinner(format!("{step}:{host}"), format!("  {step} {host}"))
                    .set_message("started");
            }
            ProgressEvent::HostProgress {
                step,
                host,
                done,
                total,
                unit,
            } => {
                if let Some(b) = self.get(&format!("{step}:{host}")) {
                    if let Some(t) = total {
                        if b.length() != Some(*t) {
                            let template = if unit == "bytes" {
                                "  {prefix:<22} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
                            } else {
                                "  {prefix:<22} [{bar:30}] {pos}/{len} {msg}"
                            };
                            if let Ok(style) = ProgressStyle::with_template(template) {
                                b.set_style(style.progress_chars("=> "));
                            }
                            b.set_length(*t);
                        }
                    }
                    b.set_position(*done);
                }
            }
            ProgressEvent::HostFinished {
                step,
                host,
                ok,
                message,
            } => {
                if let Some(b) = self.get(&format!("{step}:{host}")) {
                    let word = if *ok {
                        "done".to_string()
                    } else {
                        format!("FAILED: {message}")
                    };
                    b.finish_with_message(word);
                }
            }
            ProgressEvent::RunStarted { .. }
            | ProgressEvent::RunFinished { .. }
            | ProgressEvent::Message { .. } => {
                let _ = self.multi.println(super::line(&event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_step_and_per_workstation_with_bytes() {
        let r = BarReporter::hidden();
        r.report(ProgressEvent::RunStarted {
            room: "b204".into(),
            run: 1,
        });
        r.report(ProgressEvent::StepStarted {
            room: "b204".into(),
            step: "deploy".into(),
        });
        for h in ["b204-01", "b204-02"] {
            r.report(ProgressEvent::HostStarted {
                step: "deploy".into(),
                host: h.into(),
            });
            r.report(ProgressEvent::HostProgress {
                step: "deploy".into(),
                host: h.into(),
                done: 100,
                total: Some(1000),
                unit: "bytes".into(),
            });
        }
        let bar = r.get("deploy:b204-02").expect("host bar");
        assert_eq!((bar.position(), bar.length()), (100, Some(1000)));
        r.report(ProgressEvent::HostFinished {
            step: "deploy".into(),
            host: "b204-02".into(),
            ok: true,
            message: String::new(),
        });
        assert!(bar.is_finished());
        r.report(ProgressEvent::StepFinished {
            room: "b204".into(),
            step: "deploy".into(),
            status: "done".into(),
        });
        assert!(r.get("step:deploy").expect("step bar").is_finished());
        assert_eq!(r.bars.lock().expect("lock").len(), 3);
    }
}
