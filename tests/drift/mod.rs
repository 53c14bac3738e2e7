//! Test support shared by the image tests and the lab's room: deterministic test data and a
//! workstation's tree drifting from its image (what an incremental reimage brings back).
//! Each test crate that includes it uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `n` deterministic bytes that do not repeat (xorshift).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every regular file under `root`, sorted (the drift's choice is reproducible).
fn regular_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_file() && e.metadata().unwrap().nlink() == 1 {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Drifts 1% of the files of the tree at `root`, spread across it: a third rewritten in
/// their middle, a third deleted, a third joined by a new file beside them. Returns the
/// bytes of the image's files the drift changed or deleted (what a reimage must fetch).
pub fn drift_one_percent(root: &Path) -> u64 {
    drift_one_percent_from(root, 0)
}

/// [`drift_one_percent`] from the `round`th file on (another 1% for each round).
pub fn drift_one_percent_from(root: &Path, round: usize) -> u64 {
    let files = regular_files(root);
    let mut lost = 0;
    for (k, f) in files.iter().skip(round * 37 % 100).step_by(100).enumerate() {
        let len = fs::metadata(f).unwrap().len();
        match k % 3 {
            0 => {
                let mut bytes = fs::read(f).unwrap();
                let mid = bytes.len() / 2;
                bytes.splice(mid..mid, b"drifted ".iter().copied());
                fs::write(f, bytes).unwrap();
                lost += len;
            }
            1 => {
                fs::remove_file(f).unwrap();
                lost += len;
            }
            _ => fs::write(
                f.with_extension(format!("drift{round}")),
                pseudo_random(16 << 10, k as u64),
            )
            .unwrap(),
        }
    }
    lost
}
