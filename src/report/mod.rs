//! Rendering of the fleet reports (homogeneity, rotation, renewal, PRELP) as HTML (one
//! self-contained file with SVG charts), CSV (for the survey spreadsheet), Markdown and JSON.
//! Pure: report structs in, text out. Everything here is written for the administration, in
//! French.

pub mod csv;
pub mod doc;
pub mod homogeneity;
pub mod html;
pub mod md;
pub mod prelp;
pub mod region;
pub mod renewal;
pub mod rotation;
pub mod svg;

use chrono::NaiveDate;

use crate::domain::fleet::Fleet;
use crate::domain::fleet::homogeneity::SectorHomogeneity;
use crate::domain::fleet::prelp::Prelp;
use crate::domain::fleet::region::{RegionHomogeneity, RegionPrelp, RegionRenewal};
use crate::domain::fleet::renewal::RenewalReport;
use crate::domain::fleet::rotation::RotationPlan;
use crate::domain::fleet::stats::Overview;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Md,
    Json,
}

/// A report with the figures of its charts.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "report", rename_all = "lowercase")]
pub enum Report {
    Homogeneity {
        prepared_on: NaiveDate,
        homogeneity: SectorHomogeneity,
        overview: Overview,
    },
    Rotation {
        prepared_on: NaiveDate,
        plan: RotationPlan,
        overview: Overview,
    },
    Renewal {
        prepared_on: NaiveDate,
        renewal: RenewalReport,
        overview: Overview,
    },
    Prelp {
        prepared_on: NaiveDate,
        prelp: Box<Prelp>,
        overview: Overview,
    },
    /// Every lycée of a region, by sector.
    #[serde(rename = "region-homogeneity")]
    RegionHomogeneity {
        prepared_on: NaiveDate,
        region: RegionHomogeneity,
        overview: Overview,
    },
    #[serde(rename = "region-renewal")]
    RegionRenewal {
        prepared_on: NaiveDate,
        region: RegionRenewal,
        overview: Overview,
    },
    #[serde(rename = "region-prelp")]
    RegionPrelp {
        prepared_on: NaiveDate,
        region: Box<RegionPrelp>,
        overview: Overview,
    },
}

impl Report {
    /// The report as a document (what the text formats render).
    pub fn doc(&self) -> doc::Doc {
        self.doc_for(true)
    }

    /// [`Report::doc`]; `csv: false` leaves out what only the CSV export shows (a region's
    /// full lists).
    fn doc_for(&self, csv: bool) -> doc::Doc {
        match self {
            Report::Homogeneity {
                prepared_on,
                homogeneity,
                overview,
            } => homogeneity::doc(homogeneity, overview, *prepared_on),
            Report::Rotation {
                prepared_on,
                plan,
                overview,
            } => rotation::doc(plan, overview, *prepared_on),
            Report::Renewal {
                prepared_on,
                renewal,
                overview,
            } => renewal::doc(renewal, overview, *prepared_on),
            Report::Prelp {
                prelp, overview, ..
            } => prelp::doc(prelp, overview),
            Report::RegionHomogeneity {
                prepared_on,
                region,
                overview,
            } => region::homogeneity(region, overview, *prepared_on, csv),
            Report::RegionRenewal {
                prepared_on,
                region,
                overview,
            } => region::renewal(region, overview, *prepared_on, csv),
            Report::RegionPrelp {
                region, overview, ..
            } => region::prelp(region, overview, csv),
        }
    }
}

/// Renders a report in a format.
pub fn render(report: &Report, format: Format) -> String {
    render_formats(report, &[format]).pop().unwrap_or_default()
}

/// Renders a report in several formats, building its document once.
pub fn render_formats(report: &Report, formats: &[Format]) -> Vec<String> {
    let doc = formats
        .iter()
        .any(|f| *f != Format::Json)
        .then(|| report.doc_for(formats.contains(&Format::Csv)));
    formats
        .iter()
        .map(|f| match (f, &doc) {
            (Format::Md, Some(d)) => md::render(d),
            (Format::Html, Some(d)) => html::render(d),
            (Format::Csv, Some(d)) => csv::render(d),
            _ => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        })
        .collect()
}

/// `01/09/2025`.
pub fn fr(d: NaiveDate) -> String {
    crate::domain::fleet::input::fr_date(d)
}

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Homogeneity,
    Rotation,
    Renewal,
    Prelp,
}

/// The PRELP year by default: the survey of this year until March, else next year's.
pub fn default_year(today: NaiveDate) -> i32 {
    use chrono::Datelike;
    if today.month() <= 3 {
        today.year()
    } else {
        today.year() + 1
    }
}

/// Builds a report over one lycée (or several, for homogeneity). Pure.
pub fn build(
    kind: Kind,
    fleets: &[crate::domain::fleet::Fleet],
    year: i32,
    today: NaiveDate,
) -> Option<Report> {
    use crate::domain::fleet::{homogeneity, prelp, renewal, rotation, stats};
    let overview = stats::overview(fleets, today);
    let one = || fleets.first().filter(|_| fleets.len() == 1);
    Some(match kind {
        Kind::Homogeneity => Report::Homogeneity {
            prepared_on: today,
            homogeneity: homogeneity::sector(fleets),
            overview,
        },
        Kind::Rotation => Report::Rotation {
            prepared_on: today,
            plan: rotation::plan(one()?),
            overview,
        },
        Kind::Renewal => Report::Renewal {
            prepared_on: today,
            renewal: renewal::report(one()?, today),
            overview,
        },
        Kind::Prelp => Report::Prelp {
            prepared_on: today,
            prelp: Box::new(prelp::request(one()?, year, today)),
            overview,
        },
    })
}

/// Builds a report over every lycée of a region, by sector (each lycée planned once); `None`
/// for the rotation, which is planned lycée by lycée. Pure.
pub fn build_region(kind: Kind, fleets: &[Fleet], year: i32, today: NaiveDate) -> Option<Report> {
    use crate::domain::fleet::region;
    let region = match kind {
        Kind::Rotation => return None,
        Kind::Homogeneity => Report::RegionHomogeneity {
            prepared_on: today,
            region: region::homogeneity(fleets),
            overview: region_overview(fleets, today),
        },
        Kind::Renewal => Report::RegionRenewal {
            prepared_on: today,
            region: region::renewal(fleets, today),
            overview: region_overview(fleets, today),
        },
        Kind::Prelp => {
            let requests = region::requests(fleets, year, today);
            region_prelp(fleets, &requests, year, today)
        }
    };
    Some(region)
}

fn region_overview(fleets: &[Fleet], today: NaiveDate) -> Overview {
    crate::domain::fleet::stats::overview(fleets, today)
}

fn region_prelp(fleets: &[Fleet], requests: &[Prelp], year: i32, today: NaiveDate) -> Report {
    Report::RegionPrelp {
        prepared_on: today,
        region: Box::new(crate::domain::fleet::region::prelp(
            fleets, requests, year, today,
        )),
        overview: region_overview(fleets, today),
    }
}

/// Each lycée's own PRELP request (a [`Report::Prelp`], as [`build`] makes it for that lycée
/// alone), with its UAI, in the region's order (by sector, then lycée).
pub fn region_prelp_each(fleets: &[Fleet], year: i32, today: NaiveDate) -> Vec<(String, Report)> {
    let requests = crate::domain::fleet::region::requests(fleets, year, today);
    prelp_each(fleets, requests, today)
}

/// The region's PRELP request ([`build_region`]) and each lycée's ([`region_prelp_each`]),
/// every request worked out once.
pub fn build_region_prelp(
    fleets: &[Fleet],
    year: i32,
    today: NaiveDate,
) -> (Report, Vec<(String, Report)>) {
    let requests = crate::domain::fleet::region::requests(fleets, year, today);
    let region = region_prelp(fleets, &requests, year, today);
    (region, prelp_each(fleets, requests, today))
}

fn prelp_each(fleets: &[Fleet], requests: Vec<Prelp>, today: NaiveDate) -> Vec<(String, Report)> {
    let mut each: Vec<Option<(String, Report)>> = requests
        .into_iter()
        .zip(fleets)
        .map(|(p, f)| {
            let report = Report::Prelp {
                prepared_on: today,
                overview: region_overview(std::slice::from_ref(f), today),
                prelp: Box::new(p),
            };
            Some((f.uai.clone(), report))
        })
        .collect();
    crate::domain::fleet::region::group(fleets)
        .iter()
        .flat_map(|g| g.members.iter())
        .filter_map(|&i| each.get_mut(i).and_then(Option::take))
        .collect()
}
