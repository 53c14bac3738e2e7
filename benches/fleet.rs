//! P6 benchmark: the four fleet reports over a synthetic region (300 lycées, 6,000 rooms,
//! ~100,000 devices). Run with `cargo bench --bench fleet` (or `scripts/bench-fleet.sh`).
//!
//! Prints the time of each phase, the total against the 1 s target, the ratio of the reports
//! to a baseline measured in the same run (parsing the region's files), and the peak RSS
//! (getrusage) against the 500 MB target.
//!
//! Then the same four reports over the same region stored in PostgreSQL (a throwaway cluster
//! from Debian's `postgresql`, started as the tests start theirs, which needs root): every
//! lycée published as `parc inventory publish` does (not timed), then the region read back as
//! `parc report --region` reads it and the four reports built again, against the 2 s target,
//! printed beside the in-memory figure. `PARC_FLEET_NO_PG=1` leaves this part out (and says
//! so).
//!
//! `PARC_FLEET_DUMP=<dir>` also writes every rendered report to `<dir>/NNNNN.<format>` (in the
//! order the bench renders them), to check that a change leaves the outputs byte-identical;
//! the timings of such a run count the writing too.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use parc::domain::fleet::synth::{RegionSize, lycee_sources};
use parc::domain::fleet::{Fleet, homogeneity, prelp, renewal, rotation, stats};
use parc::domain::workspace::Workspace;
use parc::report::{self, Format, Report};
use sha2::{Digest as _, Sha256};

#[path = "fleet/pg.rs"]
mod pg;

fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

/// What the four reports found, to print and to compare the two paths.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    score: String,
    moves: usize,
    purchases: usize,
    baseline: usize,
    candidates: usize,
    requested: usize,
}

/// Renders every report in every format: counts the bytes, hashes the texts (the two paths
/// must render the same), and writes them to `dump` when asked.
struct Renderer {
    dump: Option<std::path::PathBuf>,
    rendered: usize,
    bytes: usize,
    digest: Sha256,
}

impl Renderer {
    fn new(dump: Option<std::path::PathBuf>) -> Renderer {
        Renderer {
            dump,
            rendered: 0,
            bytes: 0,
            digest: Sha256::new(),
        }
    }

    fn render(&mut self, r: &Report) {
        let all = [Format::Html, Format::Csv, Format::Md, Format::Json];
        let texts = report::render_formats(r, &all);
        self.bytes += texts.iter().map(String::len).sum::<usize>();
        for t in &texts {
            self.digest.update(t.as_bytes());
        }
        if let Some(dir) = &self.dump {
            for (f, text) in all.iter().zip(&texts) {
                let path = dir.join(format!("{:05}.{f:?}", self.rendered).to_lowercase());
                if let Err(e) = std::fs::write(&path, text) {
                    panic!("writing {}: {e}", path.display());
                }
            }
        }
        self.rendered += 1;
    }

    fn digest(self) -> String {
        self.digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The four reports over `fleets`, as `parc report` builds them, each rendered in every
/// format: the time of each phase.
fn four_reports(
    fleets: &[Fleet],
    today: NaiveDate,
    out: &mut Renderer,
) -> (Vec<(&'static str, Duration)>, Counts) {
    let mut timings: Vec<(&'static str, Duration)> = Vec::new();
    let mut counts = Counts::default();

    let t = Instant::now();
    let h = homogeneity::sector(fleets);
    let overview = stats::overview(fleets, today);
    counts.score = h.score.to_string();
    out.render(&Report::Homogeneity {
        prepared_on: today,
        homogeneity: h,
        overview,
    });
    timings.push(("homogeneity (sector, 300 lycées)", t.elapsed()));

    // Each lycée's chart figures, shared by its three reports.
    let t = Instant::now();
    let overviews: Vec<_> = fleets
        .iter()
        .map(|f| stats::overview(std::slice::from_ref(f), today))
        .collect();
    timings.push(("chart figures (per lycée)", t.elapsed()));

    let t = Instant::now();
    let plans: Vec<_> = fleets.iter().map(rotation::plan).collect();
    for (p, o) in plans.iter().zip(&overviews) {
        counts.moves += p.moves.len();
        counts.purchases += p.purchases;
        counts.baseline += p.baseline_purchases;
        out.render(&Report::Rotation {
            prepared_on: today,
            plan: p.clone(),
            overview: o.clone(),
        });
    }
    timings.push(("rotation (per lycée)", t.elapsed()));

    let t = Instant::now();
    for ((f, p), o) in fleets.iter().zip(&plans).zip(&overviews) {
        let r = renewal::candidates(f, p, today);
        counts.candidates += r.candidates.len();
        out.render(&Report::Renewal {
            prepared_on: today,
            renewal: r,
            overview: o.clone(),
        });
    }
    timings.push(("renewal (per lycée)", t.elapsed()));

    let t = Instant::now();
    for (f, o) in fleets.iter().zip(&overviews) {
        let p = prelp::request(f, 2027, today);
        counts.requested += p.total;
        out.render(&Report::Prelp {
            prepared_on: today,
            prelp: Box::new(p),
            overview: o.clone(),
        });
    }
    timings.push(("prelp (per lycée)", t.elapsed()));
    (timings, counts)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    let size = RegionSize::REGION;
    let today = NaiveDate::from_ymd_opt(2027, 2, 15).unwrap_or_default();
    let t = Instant::now();
    let sources: Vec<_> = (0..size.lycees)
        .map(|n| lycee_sources(n, size, 2027))
        .collect();
    let generate = t.elapsed();

    // Baseline: parsing every lycée's files, as `parc report` does.
    let t = Instant::now();
    let fleets: Vec<Fleet> = sources
        .iter()
        .map(|s| {
            let (ws, _findings) = Workspace::parse(s);
            Fleet::from_workspace(&ws)
        })
        .collect();
    let parse = t.elapsed();
    drop(sources);
    let devices: usize = fleets.iter().map(|f| f.machines.len()).sum();
    let rooms: usize = fleets.iter().map(|f| f.rooms.len()).sum();

    let dump = std::env::var_os("PARC_FLEET_DUMP").map(std::path::PathBuf::from);
    let mut out = Renderer::new(dump);
    let (timings, counts) = four_reports(&fleets, today, &mut out);
    let bytes = out.bytes;
    let digest = out.digest();
    let reports: Duration = timings.iter().map(|(_, d)| *d).sum();
    let total = parse + reports;
    let rss = peak_rss_mb();
    drop(fleets);
    println!("fleet benchmark — synthetic region");
    println!(
        "  {} lycées, {rooms} rooms, {devices} devices (generated in {:.0} ms)",
        size.lycees,
        ms(generate)
    );
    println!(
        "  baseline: parse all workspaces        {:>8.0} ms",
        ms(parse)
    );
    for (name, d) in &timings {
        println!(
            "  {name:<38}{:>8.0} ms  ({:.2}× baseline)",
            ms(*d),
            d.as_secs_f64() / parse.as_secs_f64()
        );
    }
    println!(
        "  four reports, every format            {:>8.0} ms  ({:.2}× baseline, {:.1} MB of output)",
        ms(reports),
        reports.as_secs_f64() / parse.as_secs_f64(),
        bytes as f64 / 1e6
    );
    println!(
        "  parse + four reports                  {:>8.0} ms  (target < 1000 ms: {})",
        ms(total),
        verdict(total.as_secs_f64() < 1.0)
    );
    println!(
        "  peak RSS                              {rss:>8.0} MB  (target < 500 MB: {})",
        verdict(rss < 500.0)
    );
    println!(
        "  sector homogeneity score {} %, {} moves, purchases {} vs {} without rotation, {} renewal candidates, {} requested in the PRELP",
        counts.score,
        counts.moves,
        counts.purchases,
        counts.baseline,
        counts.candidates,
        counts.requested
    );

    if std::env::var_os("PARC_FLEET_NO_PG").is_some() {
        println!("the same region in PostgreSQL: NOT MEASURED (PARC_FLEET_NO_PG is set)");
        return;
    }
    let region = pg::publish_region(size);
    let t = Instant::now();
    let fleets = region.load();
    let load = t.elapsed();
    let mut out = Renderer::new(None);
    let (pg_timings, pg_counts) = four_reports(&fleets, today, &mut out);
    let pg_reports: Duration = pg_timings.iter().map(|(_, d)| *d).sum();
    let pg_total = load + pg_reports;
    let pg_rss = peak_rss_mb();
    let same = out.digest() == digest && pg_counts == counts;
    println!("the same region in PostgreSQL (a throwaway cluster, unix socket)");
    println!(
        "  published: {} lycées, one transaction each {:>8.0} ms  (not counted)",
        size.lycees,
        ms(region.published_in)
    );
    println!(
        "  read the region back (load_region)    {:>8.0} ms  ({:.2}× the in-memory parse)",
        ms(load),
        load.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "  four reports, every format            {:>8.0} ms  ({:.2}× in memory)",
        ms(pg_reports),
        pg_reports.as_secs_f64() / reports.as_secs_f64()
    );
    println!(
        "  read + four reports                   {:>8.0} ms  (target < 2000 ms: {}; in memory, parse + four reports: {:.0} ms)",
        ms(pg_total),
        verdict(pg_total.as_secs_f64() < 2.0),
        ms(total)
    );
    println!(
        "  peak RSS, both paths                  {pg_rss:>8.0} MB  (target < 500 MB: {})",
        verdict(pg_rss < 500.0)
    );
    println!(
        "  same reports as in memory (SHA-256 of every rendered text): {}",
        if same { "yes" } else { "NO" }
    );
    assert!(
        same,
        "the reports over PostgreSQL differ from those in memory"
    );

    // The region's own views, as `parc report KIND --region` builds them over the database.
    let t = Instant::now();
    let mut out = Renderer::new(None);
    for kind in [
        report::Kind::Homogeneity,
        report::Kind::Renewal,
        report::Kind::Prelp,
    ] {
        let r = report::build_region(kind, &fleets, 2027, today).expect("a region view");
        out.render(&r);
    }
    let views = t.elapsed();
    println!(
        "  three region views (--region), every format {:>4.0} ms  ({:.1} MB of output)",
        ms(views),
        out.bytes as f64 / 1e6
    );
}
