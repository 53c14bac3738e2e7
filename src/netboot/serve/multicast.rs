//! A room's multicast sessions: one udpcast `udp-sender` per session sends every stream of
//! one image, end to end in manifest order, to the workstations that joined it. It waits for
//! the room (`--min-receivers`, or `wait` seconds after the first receiver), then starts;
//! receivers that come later are told the session started and take the HTTP path, and the
//! sender drops those that stop answering, so neither holds the room.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::agent::wire::{MulticastAnswer, MulticastOffer};
use crate::domain::multicast::MulticastPolicy;
use crate::image::error::{ImageError, ImageResult};
use crate::image::store::FsImageStore;

/// First udpcast port base; session n uses `PORTBASE + 2 * (n % PORTS)` and the next port.
const PORTBASE: u16 = 9000;
const PORTS: u32 = 500;
/// REQACKs unanswered before the sender drops a receiver: udpcast's default (200) holds a
/// room for a long time behind a workstation that crashed; 10 dropped every slow receiver
/// of the lab room (emulated VMs writing their disk) after ~5 MB, ending the session for all.
const RETRIES_UNTIL_DROP: u32 = 60;

/// How this endpoint sends multicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastSettings {
    /// The interface the sessions go out on (the one holding the endpoint's address).
    pub interface: String,
    pub policy: MulticastPolicy,
    /// Seconds a session waits for its first receiver before it gives up.
    pub first_receiver_secs: u64,
    /// The network namespace the sender runs in (the lab's server side), if any.
    pub netns: Option<String>,
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPhase {
    /// Taking receivers.
    Waiting,
    /// Sending: late receivers take the HTTP path.
    Sending,
    /// udp-sender exited: `ok` when it said the transfer completed.
    Ended { ok: bool, summary: String },
}

/// One session, as the endpoint and `parc status` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub image_id: String,
    pub group: Ipv4Addr,
    pub portbase: u16,
    pub receivers: usize,
    pub min_receivers: usize,
    pub phase: SessionPhase,
}

struct Session {
    info: SessionInfo,
    pid: Option<u32>,
    offer: MulticastOffer,
}

/// The sessions of one endpoint.
#[derive(Default)]
pub struct Sessions {
    settings: Mutex<Option<MulticastSettings>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    next: Mutex<u32>,
}

impl Sessions {
    pub fn configure(&self, settings: MulticastSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = Some(settings);
    }

    /// Whether sessions can be opened (multicast configured and allowed by the site).
    pub fn enabled(&self) -> bool {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.policy.enabled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session sending `image_id` to `receivers` workstations, starting once
    /// `min_receivers` joined; returns its id.
    pub fn open(
        &self,
        store: &FsImageStore,
        image_id: &str,
        receivers: usize,
        min_receivers: usize,
    ) -> ImageResult<String> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|s| s.policy.enabled)
            .ok_or_else(|| {
                ImageError::Invalid("multicast is not set up on this endpoint".into())
            })?;
        let m = store.manifest(image_id)?;
        let files = m
            .streams()
            .map(|s| Ok((s.file.clone(), store.open_stream(image_id, s, 0)?)))
            .collect::<ImageResult<Vec<_>>>()?;
        let n = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next - 1
        };
        let id = format!("mc{n}");
        let p = &settings.policy;
        let group = p.range.data_group(n);
        let portbase = PORTBASE + 2 * (n % PORTS) as u16;
        let mut cmd = match &settings.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "udp-sender"]);
                c
            }
            None => Command::new("udp-sender"),
        };
        cmd.args(["--nokbd", "--interface", &settings.interface])
            .args(["--portbase", &portbase.to_string()])
            .args(["--mcast-rdv-address", &p.range.rendezvous().to_string()])
            .args(["--mcast-data-address", &group.to_string()])
            .args(["--ttl", &p.ttl.to_string()])
            .args(["--max-bitrate", &format!("{}m", p.max_rate_mbit)])
            .args(["--min-receivers", &min_receivers.max(1).to_string()])
            .args(["--max-wait", &p.wait_secs.to_string()])
            .args(["--retries-until-drop", &RETRIES_UNTIL_DROP.to_string()])
            .args(["--stat-period", "5000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The sender dies with the endpoint, even one killed outright: a room is never left
        // with a session nobody follows.
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ImageError::Invalid(format!("starting udp-sender: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // Feeds the streams end to end; stops when the sender exits (a broken pipe). How it
        // ended goes in the session's summary when it did not feed everything.
        let fed = Arc::new(Mutex::new(String::new()));
        let feed_note = fed.clone();
        let total: u64 = m.streams().map(|s| s.size).sum();
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut sent = 0u64;
            let why = 'feed: {
                for (f, mut file) in files {
                    loop {
                        match file.read(&mut buf) {
                            Ok(0) => break,
                            Ok(k) => match stdin.write_all(&buf[..k]) {
                                Ok(()) => sent += k as u64,
                                Err(e) => break 'feed format!("writing to udp-sender: {e}"),
                            },
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => break 'feed format!("{f}: {e}"),
                        }
                    }
                }
                String::new()
            };
            if sent < total {
                *feed_note.lock().unwrap_or_else(|e| e.into_inner()) =
                    format!("fed {sent} of {total} bytes: {why}");
            }
        });
        let info = SessionInfo {
            id: id.clone(),
            image_id: image_id.to_string(),
            group,
            portbase,
            receivers,
            min_receivers,
            phase: SessionPhase::Waiting,
        };
        let offer = MulticastOffer {
            portbase,
            rendezvous: p.range.rendezvous().to_string(),
            start_timeout_secs: p.wait_secs + 15,
        };
        self.lock().insert(
            id.clone(),
            Session {
                info,
                pid: Some(child.id()),
                offer,
            },
        );
        // No receiver within `first_receiver_secs`: the session gives up. (udp-sender's own
        // --start-timeout also fires after the transfer started, cutting it short.)
        let (sessions, sid, limit) = (
            self.sessions.clone(),
            id.clone(),
            settings.first_receiver_secs,
        );
        thread::spawn(move || {
            thread::sleep(std::time::Duration::from_secs(limit));
            let mut all = sessions.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = all.get_mut(&sid) {
                if s.info.phase == SessionPhase::Waiting {
                    if let Some(pid) = s.pid.take() {
                        // SAFETY: kill(2) on our child, not yet reaped (its pid is set).
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    }
                    s.info.phase = SessionPhase::Ended {
                        ok: false,
                        summary: format!("no workstation started within {limit} s"),
                    };
                }
            }
        });
        // Follows the sender's messages: "Starting transfer" and "Transfer complete".
        let sessions = self.sessions.clone();
        let sid = id.clone();
        thread::spawn(move || {
            let mut said = String::new();
            let mut buf = [0u8; 4096];
            let set = |phase: SessionPhase| {
                if let Some(s) = sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(&sid)
                {
                    s.info.phase = phase;
                }
            };
            while let Ok(k) = stderr.read(&mut buf) {
                if k == 0 {
                    break;
                }
                said.push_str(&String::from_utf8_lossy(&buf[..k]).replace('\r', "\n"));
                if said.contains("Starting transfer") {
                    set(SessionPhase::Sending);
                }
                if said.len() > 16384 {
                    let cut = said.len() - 8192;
                    let cut = (cut..said.len())
                        .find(|&i| said.is_char_boundary(i))
                        .unwrap_or(0);
                    said.drain(..cut);
                }
            }
            let status = child.wait();
            let ok = said.contains("Transfer complete") && status.is_ok_and(|s| s.success());
            let timed_out = sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&sid)
                .is_some_and(|s| matches!(s.info.phase, SessionPhase::Ended { .. }));
            if !timed_out {
                let short = fed.lock().map(|f| f.clone()).unwrap_or_default();
                let mut summary = summary(&said);
                if !short.is_empty() {
                    summary.push_str("; ");
                    summary.push_str(&short);
                }
                set(SessionPhase::Ended {
                    ok: ok && short.is_empty(),
                    summary,
                });
            }
            if let Some(s) = sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&sid)
            {
                s.pid = None;
            }
        });
        Ok(id)
    }

    /// The offer handed to the deploy tasks of session `id`.
    pub fn offer(&self, id: &str) -> Option<MulticastOffer> {
        self.lock().get(id).map(|s| s.offer.clone())
    }

    /// A receiver about to join session `id`.
    pub fn answer(&self, id: &str) -> MulticastAnswer {
        let closed = |reason: String| MulticastAnswer {
            open: false,
            reason,
        };
        match self.lock().get(id).map(|s| s.info.phase.clone()) {
            Some(SessionPhase::Waiting) => MulticastAnswer {
                open: true,
                reason: String::new(),
            },
            Some(SessionPhase::Sending) => {
                closed("the room's multicast had already started (joined late)".into())
            }
            Some(SessionPhase::Ended { summary, .. }) => {
                closed(format!("the room's multicast has ended ({summary})"))
            }
            None => closed(format!("no multicast session {id}")),
        }
    }

    pub fn info(&self, id: &str) -> Option<SessionInfo> {
        self.lock().get(id).map(|s| s.info.clone())
    }

    /// Stops session `id`'s sender if it still runs.
    pub fn close(&self, id: &str) {
        if let Some(pid) = self.lock().get_mut(id).and_then(|s| s.pid.take()) {
            // SAFETY: kill(2) on the pid of the child this endpoint started and still waits
            // for (its thread clears `pid` once it was reaped, so the pid is not reused).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            self.close(&id);
        }
    }
}

/// The sender's last statistics line and how it ended, on one line.
fn summary(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let stats = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("bytes="))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
    let last = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("bytes=") && !l.starts_with("Disconnecting"))
        .copied()
        .unwrap_or("udp-sender said nothing");
    match stats {
        Some(s) => format!("{last}; {s}"),
        None => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_the_outcome_and_the_last_figures() {
        let said = "Udp-sender 20120424\nStarting transfer: 00000009\nbytes= 48 758 528  re-xmits=0000568 (  1.6%)\nbytes=314 572 800  re-xmits=0001096 (  0.5%) slice=0112 -   1\nTransfer complete.\nDisconnecting #0 (10.79.0.2)\n";
        assert_eq!(
            summary(said),
            "Transfer complete.; bytes=314 572 800 re-xmits=0001096 ( 0.5%) slice=0112 - 1"
        );
        assert_eq!(summary(""), "udp-sender said nothing");
    }
}
