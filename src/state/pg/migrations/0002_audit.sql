-- The audit log of every lycée sharing this database: one hash chain per lycée.
-- Columns follow the SQLite audit log's (src/audit/sqlite.rs), `lycee` added to the key.
-- `audit_heads` holds each lycée's last entry (seq and hash), written in the transaction
-- of each append: removing the last entry is detected from the database alone.
CREATE TABLE audit_entries (
    lycee     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    ts        TEXT NOT NULL,
    room      TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    actor     TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (lycee, seq)
);

CREATE TABLE audit_heads (
    lycee TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
