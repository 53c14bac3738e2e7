//! Progress of a capture or deploy, shared between the pipeline threads (which count bytes)
//! and whoever reports it (the agent posts it to the endpoint).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Phase name and byte counters; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<String>,
    bytes: AtomicU64,
    total: AtomicU64,
}

/// A consistent copy of the progress at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub phase: String,
    /// Stream bytes moved over the network so far (all streams).
    pub bytes: u64,
    /// Total stream bytes expected, when known (0 = unknown).
    pub total: u64,
}

impl Progress {
    pub fn set_phase(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.into();
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_total(&self, t: u64) {
        self.total.store(t, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            phase: self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            bytes: self.bytes.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}
