-- The journal (runs, step attempts, room locks) of every lycée sharing this database.
-- Every row is keyed by its lycée's UAI (`lycee`); a room lock is per (lycée, room).
-- Columns follow the SQLite journal's (src/journal/schema.rs), `lycee` added; times are
-- RFC 3339 text as there; `seal` is the row's digest (src/journal/seal.rs).
CREATE TABLE runs (
    id            BIGSERIAL PRIMARY KEY,
    lycee         TEXT NOT NULL,
    room          TEXT NOT NULL,
    recipe_digest TEXT NOT NULL,
    who           TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    selection     TEXT NOT NULL,
    started       TEXT NOT NULL,
    finished      TEXT,
    outcome       TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    seal          TEXT
);
CREATE INDEX runs_lycee_room ON runs (lycee, room);

CREATE TABLE attempts (
    id          BIGSERIAL PRIMARY KEY,
    lycee       TEXT NOT NULL,
    run_id      BIGINT NOT NULL REFERENCES runs (id),
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
CREATE INDEX attempts_run ON attempts (run_id);
CREATE INDEX attempts_lycee ON attempts (lycee);

CREATE TABLE locks (
    lycee      TEXT NOT NULL,
    room       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    host       TEXT NOT NULL,
    proc_start TEXT NOT NULL,
    started    TEXT NOT NULL,
    seal       TEXT,
    PRIMARY KEY (lycee, room)
);
