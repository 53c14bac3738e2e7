//! P6 benchmark: the four fleet reports over a synthetic region (300 lycées, 6,000 rooms,
//! ~100,000 devices). Run with `cargo bench --bench fleet` (or `scripts/bench-fleet.sh`).
//!
//! Prints the time of each phase, the total against the 1 s target, the ratio of the reports
//! to a baseline measured in the same run (parsing the region's files), and the peak RSS
//! (getrusage) against the 500 MB target.
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

fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
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
    let mut rendered = 0usize;
    let mut bytes = 0usize;
    let mut render_all = |r: &Report| {
        let all = [Format::Html, Format::Csv, Format::Md, Format::Json];
        let texts = report::render_formats(r, &all);
        bytes += texts.iter().map(String::len).sum::<usize>();
        if let Some(dir) = &dump {
            for (f, text) in all.iter().zip(&texts) {
                let path = dir.join(format!("{rendered:05}.{f:?}").to_lowercase());
                if let Err(e) = std::fs::write(&path, text) {
                    panic!("writing {}: {e}", path.display());
                }
            }
            rendered += 1;
        }
    };
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    let t = Instant::now();
    let h = homogeneity::sector(&fleets);
    let overview = stats::overview(&fleets, today);
    let score = h.score;
    render_all(&Report::Homogeneity {
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

    let (mut moves, mut purchases, mut baseline, mut candidates, mut requested) = (0, 0, 0, 0, 0);
    let t = Instant::now();
    let plans: Vec<_> = fleets.iter().map(rotation::plan).collect();
    for (p, o) in plans.iter().zip(&overviews) {
        moves += p.moves.len();
        purchases += p.purchases;
        baseline += p.baseline_purchases;
        render_all(&Report::Rotation {
            prepared_on: today,
            plan: p.clone(),
            overview: o.clone(),
        });
    }
    timings.push(("rotation (per lycée)", t.elapsed()));

    let t = Instant::now();
    for ((f, p), o) in fleets.iter().zip(&plans).zip(&overviews) {
        let r = renewal::candidates(f, p, today);
        candidates += r.candidates.len();
        render_all(&Report::Renewal {
            prepared_on: today,
            renewal: r,
            overview: o.clone(),
        });
    }
    timings.push(("renewal (per lycée)", t.elapsed()));

    let t = Instant::now();
    for (f, o) in fleets.iter().zip(&overviews) {
        let p = prelp::request(f, 2027, today);
        requested += p.total;
        render_all(&Report::Prelp {
            prepared_on: today,
            prelp: Box::new(p),
            overview: o.clone(),
        });
    }
    timings.push(("prelp (per lycée)", t.elapsed()));

    let reports: Duration = timings.iter().map(|(_, d)| *d).sum();
    let total = parse + reports;
    let rss = peak_rss_mb();
    println!("fleet benchmark — synthetic region");
    println!(
        "  {} lycées, {rooms} rooms, {devices} devices (generated in {:.0} ms)",
        fleets.len(),
        generate.as_secs_f64() * 1e3
    );
    println!(
        "  baseline: parse all workspaces        {:>8.0} ms",
        parse.as_secs_f64() * 1e3
    );
    for (name, d) in &timings {
        println!(
            "  {name:<38}{:>8.0} ms  ({:.2}× baseline)",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / parse.as_secs_f64()
        );
    }
    println!(
        "  four reports, every format            {:>8.0} ms  ({:.2}× baseline, {:.1} MB of output)",
        reports.as_secs_f64() * 1e3,
        reports.as_secs_f64() / parse.as_secs_f64(),
        bytes as f64 / 1e6
    );
    println!(
        "  parse + four reports                  {:>8.0} ms  (target < 1000 ms: {})",
        total.as_secs_f64() * 1e3,
        if total.as_secs_f64() < 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  peak RSS                              {rss:>8.0} MB  (target < 500 MB: {})",
        if rss < 500.0 { "met" } else { "MISSED" }
    );
    println!(
        "  sector homogeneity score {score} %, {moves} moves, purchases {purchases} vs {baseline} without rotation, {candidates} renewal candidates, {requested} requested in the PRELP"
    );
}
