//! The hash chain: how an entry's hash is computed, what the next entry and a prune's anchor
//! are, and how a sequence of entries is checked. Pure: both backends (SQLite, PostgreSQL)
//! store what these functions compute.

use sha2::{Digest, Sha256};

use super::entry::{Action, Entry, Stored};

/// The `prev_hash` of the first entry ever written.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 of the JSON array of its fields (seq, ts, room, action,
/// subject, actor, detail, prev_hash), so no field can bleed into another.
pub fn hash_of(e: &Stored) -> String {
    let canonical = serde_json::json!([
        e.seq,
        e.ts,
        e.room,
        e.action,
        e.subject,
        e.actor,
        e.detail,
        e.prev_hash
    ]);
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    )
}

/// The entry `entry` becomes when appended after `last` (the last stored entry, if any) at
/// time `ts`, hashed.
pub fn next(last: Option<&Stored>, entry: &Entry, ts: String) -> Stored {
    let (seq, prev_hash) = match last {
        // After an anchor alone, the chain goes on from the last pruned entry's hash.
        Some(l) if l.action == Action::Anchor.as_str() => (l.seq + 1, l.prev_hash.clone()),
        Some(l) => (l.seq + 1, l.hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let mut stored = Stored {
        seq,
        ts,
        room: entry.room.clone(),
        action: entry.action.as_str().to_string(),
        subject: entry.subject.clone(),
        actor: entry.actor.clone(),
        detail: entry.detail.clone(),
        prev_hash,
        hash: String::new(),
    };
    stored.hash = hash_of(&stored);
    stored
}

/// What pruning `old` (the entries older than `before`, in seq order) leaves in their place:
/// how many entries it removes (a previous anchor not counted) and the anchor entry, which
/// takes the last pruned entry's seq and keeps its hash as `prev_hash` for the next entry to
/// link to. `None` when there is nothing to prune.
pub fn anchor(old: &[Stored], before: &str, actor: &str, now: &str) -> Option<(usize, Stored)> {
    let last_old = old.last()?;
    let removed = old
        .iter()
        .filter(|e| e.action != Action::Anchor.as_str())
        .count();
    let previously = old
        .first()
        .filter(|e| e.action == Action::Anchor.as_str())
        .map(|e| e.detail.clone());
    let mut anchor = Stored {
        seq: last_old.seq,
        ts: last_old.ts.clone(),
        room: String::new(),
        action: Action::Anchor.as_str().to_string(),
        subject: format!("entries up to {}", last_old.seq),
        actor: actor.to_string(),
        detail: format!(
            "pruned {removed} entries older than {before} on {now}{}",
            previously
                .map(|p| format!("; before that: {p}"))
                .unwrap_or_default()
        ),
        prev_hash: last_old.hash.clone(),
        hash: String::new(),
    };
    anchor.hash = hash_of(&anchor);
    Some((removed, anchor))
}

/// A chain that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: usize,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The anchor the chain starts from after a prune.
    pub anchored: bool,
}

/// Where a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

/// Checks entries (in storage order) against each other and against the recorded head
/// (`(seq, hash)` of the last entry written).
pub fn check(entries: &[Stored], head: Option<(i64, String)>) -> Result<Verified, Broken> {
    let mut prev: Option<&Stored> = None;
    let mut anchored = false;
    for (i, e) in entries.iter().enumerate() {
        if hash_of(e) != e.hash {
            return Err(Broken {
                seq: e.seq,
                why: "its content does not match its hash (edited)".into(),
            });
        }
        match prev {
            None => {
                if e.action == "anchor" {
                    anchored = true;
                } else if e.prev_hash != GENESIS {
                    return Err(Broken {
                        seq: e.seq,
                        why: "the chain does not start at the beginning (entries before it were removed)".into(),
                    });
                }
            }
            Some(p) => {
                if e.action == "anchor" {
                    return Err(Broken {
                        seq: e.seq,
                        why: "an anchor entry in the middle of the chain".into(),
                    });
                }
                if e.seq != p.seq + 1 {
                    return Err(Broken {
                        seq: e.seq,
                        why: format!("follows entry {} (entries removed or reordered)", p.seq),
                    });
                }
                // After an anchor, the next entry links to the last pruned entry's hash,
                // which the anchor keeps as its own prev_hash.
                let expected = if i == 1 && anchored {
                    &p.prev_hash
                } else {
                    &p.hash
                };
                if &e.prev_hash != expected {
                    return Err(Broken {
                        seq: e.seq,
                        why: format!(
                            "does not link to entry {} (removed, reordered or edited)",
                            p.seq
                        ),
                    });
                }
            }
        }
        prev = Some(e);
    }
    // The head is written right after each append: it may lag one entry behind after a crash,
    // but it never points past the end nor at an entry with another hash.
    match (entries.last(), head) {
        (Some(last), Some((seq, hash))) => match entries.iter().find(|e| e.seq == seq) {
            Some(e) if e.hash == hash && last.seq - seq <= 1 => Ok(verified(entries, anchored)),
            Some(e) if e.hash != hash => Err(Broken {
                seq,
                why: "it is not the entry the head records (edited)".into(),
            }),
            Some(_) => Err(Broken {
                seq,
                why: format!(
                    "the head records entry {seq} but the log ends at {}",
                    last.seq
                ),
            }),
            None => Err(Broken {
                seq: last.seq,
                why: format!(
                    "the log ends at entry {} but the head records entry {seq} (entries removed)",
                    last.seq
                ),
            }),
        },
        (Some(last), None) => Err(Broken {
            seq: last.seq,
            why: "the head (the last entry's seq and hash) is missing".into(),
        }),
        (None, Some((seq, _))) => Err(Broken {
            seq,
            why: "every entry was removed".into(),
        }),
        (None, None) => Ok(verified(entries, anchored)),
    }
}

/// As [`check`], for a head written in the same transaction as each entry (PostgreSQL): it
/// must record the very last entry, not lag one behind.
pub fn check_exact(entries: &[Stored], head: Option<(i64, String)>) -> Result<Verified, Broken> {
    let head_seq = head.as_ref().map(|h| h.0);
    let verified = check(entries, head)?;
    match (entries.last(), head_seq) {
        (Some(last), Some(seq)) if seq != last.seq => Err(Broken {
            seq: last.seq,
            why: format!(
                "the head records entry {seq} but the log ends at {} (an entry added behind parc)",
                last.seq
            ),
        }),
        _ => Ok(verified),
    }
}

fn verified(entries: &[Stored], anchored: bool) -> Verified {
    Verified {
        entries: entries.len(),
        first_seq: entries.first().map(|e| e.seq),
        last_seq: entries.last().map(|e| e.seq),
        anchored,
    }
}
