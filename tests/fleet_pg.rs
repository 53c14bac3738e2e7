//! The region's fleet on PostgreSQL, against a real throwaway cluster (`pg_support`): lycées
//! publish their workspaces (`parc inventory publish`, and `parc inventory import --yes` on a
//! PostgreSQL workspace), the database gives back the very fleets the workspaces describe, and
//! `parc report … --region` over the database prints what the same report built from the
//! workspaces' files prints, for the region or one sector.
//!
//! Needs root (the cluster runs as the `postgres` user); fails, never skips, without it.

mod pg_support;

use std::path::Path;

use chrono::NaiveDate;
use parc::domain::fleet::Fleet;
use parc::domain::fleet::synth::{RegionSize, lycee_sources};
use parc::domain::workspace::{Sources, Workspace};
use parc::inventory::pg::load_region;
use parc::report::{self, Kind};
use parc::state::pg::store::Store;
use pg_support::{Cluster, PASSWORD, parc_in, set_password, state_toml};

const SIZE: RegionSize = RegionSize {
    lycees: 7,
    rooms_per_lycee: 3,
    devices_per_room: 5,
};

/// Lycée `n` of the synthetic region (sectors of three: 0–2, 3–5, 6), as a workspace whose
/// state is `db` on the cluster.
fn lycee(cluster: &Cluster, db: &str, n: usize) -> tempfile::TempDir {
    workspace(n, Some(&state_toml(cluster, db)))
}

/// The devices in a workspace's devices.csv.
fn devices(ws: &Path) -> usize {
    let csv = std::fs::read_to_string(ws.join("devices.csv")).expect("devices.csv");
    csv.lines().count() - 1
}

/// Lycée `n` of the synthetic region as a workspace, `[state]` appended to its site.toml.
fn workspace(n: usize, state: Option<&str>) -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    let sources = lycee_sources(n, SIZE, 2027);
    let write = |name: &str, text: &str| {
        let path = ws.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    let site = sources.site.as_ref().expect("site.toml");
    write(&site.name, &(site.text.clone() + state.unwrap_or_default()));
    for s in sources
        .models
        .iter()
        .chain(&sources.devices)
        .chain(&sources.rooms)
    {
        write(&s.name, &s.text);
    }
    set_password(ws.path());
    ws
}

/// The fleet the workspace's files describe, read as `parc report` reads one.
fn fleet_of(ws: &Path) -> Fleet {
    let read = |name: &str| {
        let text = std::fs::read_to_string(ws.join(name)).ok()?;
        Some(parc::domain::finding::Source::new(name, text))
    };
    let mut rooms: Vec<_> = std::fs::read_dir(ws.join("rooms"))
        .expect("rooms")
        .map(|e| format!("rooms/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    rooms.sort();
    let sources = Sources {
        site: read("site.toml"),
        models: read("models.toml"),
        devices: read("devices.csv"),
        rooms: rooms.iter().filter_map(|r| read(r)).collect(),
        unreadable: Vec::new(),
    };
    let (parsed, findings) = Workspace::parse(&sources);
    assert!(
        findings
            .iter()
            .all(|f| f.severity != parc::domain::finding::Severity::Error),
        "{findings:?}"
    );
    Fleet::from_workspace(&parsed)
}

fn cluster_with_db(db: &str) -> Cluster {
    let cluster = Cluster::start();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db(db, "parc");
    cluster
}

fn publish(ws: &Path) -> String {
    let (code, out, err) = parc_in(ws, &["inventory", "publish"]);
    assert_eq!(code, 0, "publish: {out}{err}");
    out
}

/// What a report prints, as JSON, at a fixed date.
fn report_json(ws: &Path, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--format",
        "json",
        "--today",
        "2027-02-15",
        "--year",
        "2027",
    ]);
    let (code, out, err) = parc_in(ws, &all);
    assert_eq!(code, 0, "parc {all:?}: {err}");
    out
}

#[test]
fn the_region_reads_back_what_each_lycee_published() {
    let cluster = cluster_with_db("region");
    let lycees: Vec<_> = (0..SIZE.lycees)
        .map(|n| lycee(&cluster, "region", n))
        .collect();
    for ws in &lycees {
        let said = publish(ws.path());
        let n = devices(ws.path());
        assert!(
            said.contains("Published Lycée synthétique")
                && said.contains(&format!(": {n} device(s), 3 room(s)")),
            "{said}"
        );
    }
    // The list of what the region holds: every lycée, by sector, with its device count.
    let (code, out, err) = parc_in(lycees[0].path(), &["inventory", "region"]);
    assert_eq!(code, 0, "{err}");
    let total: usize = lycees.iter().map(|ws| devices(ws.path())).sum();
    assert!(
        out.ends_with(&format!(
            "7 lycée(s), {total} device(s) in {}.\n",
            cluster.url("parc", "region")
        )),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("0840004S"))
        .expect("lycée 4 listed");
    assert!(
        row.starts_with("Secteur 01")
            && row.contains("Lycée synthétique 004")
            && row.contains(&devices(lycees[4].path()).to_string()),
        "{row}"
    );
    let (_, out, _) = parc_in(
        lycees[0].path(),
        &["inventory", "region", "--sector", "Secteur 02"],
    );
    assert!(
        out.contains("0840006S") && out.contains("1 lycée(s)"),
        "{out}"
    );
    // By sector then name, each fleet as its workspace's files describe it.
    let mut expected: Vec<Fleet> = lycees.iter().map(|ws| fleet_of(ws.path())).collect();
    expected.sort_by(|a, b| (&a.sector, &a.lycee).cmp(&(&b.sector, &b.lycee)));
    let store = Store::open_workspace("test", lycees[0].path()).expect("open the store");
    let got = load_region(&store, None).expect("load the region");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((&g.lycee, &g.uai, &g.sector), (&e.lycee, &e.uai, &e.sector));
        assert_eq!(g.machines, e.machines, "machines of {}", e.uai);
        assert_eq!(g.rooms, e.rooms, "rooms of {}", e.uai);
        let ids = |f: &Fleet| -> Vec<(String, u32, u32)> {
            f.models
                .iter()
                .map(|m| (m.id.value.clone(), m.cpu_score, m.ram_gb))
                .collect()
        };
        assert_eq!(ids(g), ids(e), "models of {}", e.uai);
    }
    let sector = load_region(&store, Some("Secteur 01")).expect("one sector");
    assert_eq!(
        sector.iter().map(|f| f.uai.as_str()).collect::<Vec<_>>(),
        ["0840003S", "0840004S", "0840005S"]
    );
    drop(store);

    // The reports over the database are those over the files, for the region and a sector.
    let today = NaiveDate::from_ymd_opt(2027, 2, 15).expect("date");
    for (kind, name) in [
        (Kind::Homogeneity, "homogeneity"),
        (Kind::Renewal, "renewal"),
        (Kind::Prelp, "prelp"),
    ] {
        let from_files = report::build_region(kind, &expected, 2027, today).expect("a region view");
        let from_files = report::render(&from_files, report::Format::Json);
        let from_db = report_json(lycees[3].path(), &[name, "--region"]);
        assert_eq!(from_db, from_files, "{name} --region");
        assert!(from_db.contains("Secteur 02"), "{name}: every sector");
        let one = report_json(
            lycees[3].path(),
            &[name, "--region", "--sector", "Secteur 01"],
        );
        assert!(
            !one.contains("Secteur 00") && one.contains("0840004S"),
            "{name} --sector: {one}"
        );
    }
}

#[test]
fn a_lycee_publishing_again_replaces_its_rows_and_others_stay() {
    let cluster = cluster_with_db("region");
    let a = lycee(&cluster, "region", 0);
    let b = lycee(&cluster, "region", 1);
    publish(a.path());
    publish(b.path());
    let (na, nb) = (devices(a.path()), devices(b.path()));
    // Lycée 0 scraps two rows from devices.csv and publishes again.
    let csv = std::fs::read_to_string(a.path().join("devices.csv")).expect("devices.csv");
    let kept: Vec<&str> = csv.lines().take(csv.lines().count() - 2).collect();
    std::fs::write(a.path().join("devices.csv"), kept.join("\n") + "\n").expect("write");
    let said = publish(a.path());
    assert!(
        said.contains(&format!(": {} device(s)", na - 2))
            && said.contains(&format!("replacing the {na} published before")),
        "{said}"
    );
    let store = Store::open_workspace("test", b.path()).expect("open the store");
    let got = load_region(&store, None).expect("load");
    let counts: Vec<_> = got
        .iter()
        .map(|f| (f.uai.as_str(), f.machines.len()))
        .collect();
    assert_eq!(counts, [("0840000S", na - 2), ("0840001S", nb)]);
}

#[test]
fn an_import_on_a_postgres_workspace_publishes_it() {
    let cluster = cluster_with_db("region");
    let a = lycee(&cluster, "region", 0);
    publish(a.path());
    let n = devices(a.path());
    // A new workstation arrives in the inventory (parc's own CSV format).
    let csv = std::fs::read_to_string(a.path().join("devices.csv")).expect("devices.csv");
    let header = csv.lines().next().expect("header");
    let mut row: Vec<String> = csv
        .lines()
        .nth(1)
        .expect("a row")
        .split(';')
        .map(str::to_owned)
        .collect();
    row[1] = "s00-neuf".into();
    row[2] = "02:00:00:00:99:01".into();
    row[3] = "SN-NEUF-1".into();
    let import = a.path().join("arrivage.csv");
    std::fs::write(&import, format!("{header}\n{}\n", row.join(";"))).expect("write");
    let import = import.to_string_lossy().into_owned();
    let (code, out, err) = parc_in(a.path(), &["inventory", "import", "parc", &import, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!(": {} device(s)", n + 1)), "{out}");
    let store = Store::open_workspace("test", a.path()).expect("open the store");
    let got = load_region(&store, None).expect("load");
    assert!(
        got[0].machines.iter().any(|m| m.hostname == "s00-neuf"),
        "the imported workstation is in the database"
    );
    drop(store);
    // The database's password secret gone: the import writes devices.csv, then says why it
    // could not publish and how to finish (exit 2), rather than take it for SQLite.
    let site = a.path().join("site.toml");
    let text = std::fs::read_to_string(&site).expect("site.toml");
    std::fs::write(&site, text.replace("\"state-db\"", "\"absent\"")).expect("site.toml");
    row[1] = "s00-neuf2".into();
    row[2] = "02:00:00:00:99:02".into();
    row[3] = "SN-NEUF-2".into();
    std::fs::write(
        a.path().join("arrivage.csv"),
        format!("{header}\n{}\n", row.join(";")),
    )
    .expect("write");
    let (code, out, err) = parc_in(a.path(), &["inventory", "import", "parc", &import, "--yes"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("secret \"absent\"") && err.contains("devices.csv is written"),
        "{err}"
    );
    assert!(
        devices(a.path()) == n + 2,
        "devices.csv has the second workstation"
    );
}

#[test]
fn region_views_refuse_what_they_cannot_show_with_exit_2() {
    let cluster = cluster_with_db("region");
    let a = lycee(&cluster, "region", 0);
    // Nothing published yet.
    let (code, _, err) = parc_in(a.path(), &["report", "prelp", "--region"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no lycée is published"), "{err}");
    assert!(err.contains("parc inventory publish"), "{err}");
    publish(a.path());
    let (code, _, err) = parc_in(
        a.path(),
        &["report", "prelp", "--region", "--sector", "Secteur 0"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no lycée of sector \"Secteur 0\" is published")
            && err.contains("the sectors published: \"Secteur 00\""),
        "{err}"
    );
    let (code, _, err) = parc_in(a.path(), &["report", "rotation", "--region"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no --region view"), "{err}");
    // A workspace on SQLite has no region.
    let sqlite = workspace(1, None);
    let (code, _, err) = parc_in(sqlite.path(), &["report", "homogeneity", "--region"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("keeps its state in SQLite"), "{err}");
    let (code, _, err) = parc_in(sqlite.path(), &["inventory", "publish"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("keeps its state in SQLite"), "{err}");
}

#[test]
fn each_lycee_s_prelp_request_is_written_in_the_same_run() {
    let cluster = cluster_with_db("region");
    let lycees: Vec<_> = (0..4).map(|n| lycee(&cluster, "region", n)).collect();
    for ws in &lycees {
        publish(ws.path());
    }
    let out = tempfile::tempdir().expect("tempdir");
    let each = out.path().join("par-lycee");
    let summary = out.path().join("region.md");
    let (code, _, err) = parc_in(
        lycees[0].path(),
        &[
            "report",
            "prelp",
            "--region",
            "--year",
            "2027",
            "--today",
            "2027-02-15",
            "--each",
            &each.to_string_lossy(),
            "-o",
            &summary.to_string_lossy(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut files: Vec<String> = std::fs::read_dir(&each)
        .expect("the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["0840000S.md", "0840001S.md", "0840002S.md", "0840003S.md"]
    );
    // Each file is that lycée's own request, as `parc report prelp` on its workspace prints it.
    let own = report_json(lycees[2].path(), &["prelp"]);
    let own_md = {
        let (code, out, err) = parc_in(
            lycees[2].path(),
            &["report", "prelp", "--today", "2027-02-15", "--year", "2027"],
        );
        assert_eq!(code, 0, "{err}");
        out
    };
    assert!(own.contains("0840002S"));
    assert_eq!(
        std::fs::read_to_string(each.join("0840002S.md")).expect("read"),
        own_md
    );
    let summary = std::fs::read_to_string(&summary).expect("the region's request");
    assert!(summary.contains("PRELP"), "{summary}");
    assert!(summary.contains("Secteur 01"), "{summary}");
}
