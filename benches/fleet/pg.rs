//! The PostgreSQL side of the fleet benchmark: a throwaway cluster (the tests' `pg_support`:
//! Debian's `postgresql`, a unix socket, stopped at the end), every synthetic lycée published
//! to it as `parc inventory publish` does, then the region read back as `parc report
//! --region` reads it.

use std::time::{Duration, Instant};

use parc::domain::fleet::Fleet;
use parc::domain::fleet::synth::{RegionSize, lycee_sources};
use parc::domain::workspace::Workspace;
use parc::inventory::pg::{Publisher, Snapshot, load_region, publish};
use parc::ports::SecretBytes;
use parc::state::pg::Settings;
use parc::state::pg::store::Store;

#[path = "../../tests/pg_support/mod.rs"]
mod pg_support;

/// A cluster holding the synthetic region.
pub struct Region {
    cluster: pg_support::Cluster,
    pub published_in: Duration,
}

const DB: &str = "region";

fn settings(cluster: &pg_support::Cluster, lycee: &str) -> Settings {
    Settings {
        url: cluster.url("parc", DB),
        password: Some(SecretBytes(pg_support::PASSWORD.as_bytes().to_vec())),
        lycee: lycee.to_owned(),
    }
}

/// Starts a cluster and publishes every lycée of `size` to it, each as its own workspace
/// would (one connection and one transaction per lycée).
pub fn publish_region(size: RegionSize) -> Region {
    let cluster = pg_support::Cluster::start();
    cluster.create_role("parc", pg_support::PASSWORD);
    cluster.create_db(DB, "parc");
    let who = Publisher {
        at: "2027-02-15T08:00:00+01:00".into(),
        by: "bench@region".into(),
    };
    let t = Instant::now();
    for n in 0..size.lycees {
        let (ws, _) = Workspace::parse(&lycee_sources(n, size, 2027));
        let snap = Snapshot::of(&ws);
        let uai = ws
            .site
            .as_ref()
            .map(|s| s.uai.value.clone())
            .unwrap_or_default();
        let store = Store::open("bench-publish", settings(&cluster, &uai))
            .unwrap_or_else(|e| panic!("open the store for {uai}: {e}"));
        publish(&store, &snap, &who).unwrap_or_else(|e| panic!("publish {uai}: {e}"));
    }
    let published_in = t.elapsed();
    // Fresh statistics, as a region's database that has been running would have.
    cluster.psql(DB, "VACUUM ANALYZE");
    Region {
        cluster,
        published_in,
    }
}

impl Region {
    /// Connects as a technician's parc does and reads every lycée's fleet.
    pub fn load(&self) -> Vec<Fleet> {
        let store = Store::open("bench-region", settings(&self.cluster, "0840000S"))
            .unwrap_or_else(|e| panic!("open the store: {e}"));
        load_region(&store, None).unwrap_or_else(|e| panic!("load the region: {e}"))
    }
}
