//! The journal's tables.

/// `PRAGMA user_version` of this schema: 2 added the rows' seals (`super::seal`).
pub const VERSION: i64 = 2;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    room          TEXT NOT NULL,
    recipe_digest TEXT NOT NULL,
    who           TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    selection     TEXT NOT NULL,
    started       TEXT NOT NULL,
    finished      TEXT,
    outcome       TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    seal          TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    step        TEXT NOT NULL,
    host        TEXT,
    status      TEXT NOT NULL,
    key         TEXT NOT NULL,
    started     TEXT NOT NULL,
    finished    TEXT,
    message     TEXT NOT NULL DEFAULT '',
    error_chain TEXT NOT NULL DEFAULT '',
    log_path    TEXT,
    image       TEXT,
    seal        TEXT
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts(run_id);
CREATE TABLE IF NOT EXISTS locks (
    room        TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    proc_start  TEXT NOT NULL,
    started     TEXT NOT NULL,
    seal        TEXT
);
";
