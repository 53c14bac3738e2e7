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
pub mod renewal;
pub mod rotation;
pub mod svg;

use chrono::NaiveDate;

use crate::domain::fleet::homogeneity::SectorHomogeneity;
use crate::domain::fleet::prelp::Prelp;
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
}

impl Report {
    /// The report as a document (what the text formats render).
    pub fn doc(&self) -> doc::Doc {
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
        .then(|| report.doc());
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
