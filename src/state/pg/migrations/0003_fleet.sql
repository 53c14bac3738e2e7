-- Each lycée's fleet as its workspace last published it (`parc inventory publish`, and
-- `parc inventory import --yes` on a PostgreSQL workspace): what the region's views read
-- (`parc report … --region`). A publication replaces the lycée's rows in one transaction.
CREATE TABLE fleet_lycees (
    lycee        TEXT PRIMARY KEY,          -- the UAI
    name         TEXT NOT NULL,
    sector       TEXT NOT NULL,
    models       TEXT NOT NULL,             -- JSON: models.toml's models, in its order
    rooms        TEXT NOT NULL,             -- JSON: the rooms, their recipe's model and needs
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL,
    parc_version TEXT NOT NULL
);
CREATE INDEX fleet_lycees_sector ON fleet_lycees (sector);

-- The imported inventory: devices.csv's rows, in its order (`ord`).
CREATE TABLE fleet_devices (
    lycee         TEXT NOT NULL REFERENCES fleet_lycees (lycee) ON DELETE CASCADE,
    ord           INTEGER NOT NULL,
    room          TEXT,
    hostname      TEXT NOT NULL,
    mac           TEXT NOT NULL,
    serial        TEXT NOT NULL,
    model         TEXT NOT NULL,
    purchase_date DATE NOT NULL,
    warranty_end  DATE,
    funding       TEXT NOT NULL,
    state         TEXT NOT NULL,
    ip            TEXT,
    notes         TEXT NOT NULL,
    PRIMARY KEY (lycee, ord),
    UNIQUE (lycee, hostname)
);

-- Each verify run's conformity record (the JSON that reports/verification-*.json holds).
CREATE TABLE verify_results (
    id           BIGSERIAL PRIMARY KEY,
    lycee        TEXT NOT NULL,
    room         TEXT NOT NULL,
    generated_at TEXT NOT NULL,
    compliant    BOOLEAN NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX verify_results_room ON verify_results (lycee, room, id);
