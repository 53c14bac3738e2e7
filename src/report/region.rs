//! The region's reports (every lycée, by sector), in French: homogeneity, renewal candidates
//! and the PRELP request. The documents show totals per sector and per lycée; the CSV export
//! holds the full list (one row per lycée, candidate or request line), its first columns
//! saying the sector, the lycée and its UAI.

use chrono::NaiveDate;

use super::doc::{Block, Doc, Table, num};
use super::fr;
use crate::domain::fleet::region::{RegionHomogeneity, RegionPrelp, RegionRenewal, RenewalCounts};
use crate::domain::fleet::stats::Overview;
use crate::domain::model::FormFactor;

fn charts(d: &mut Doc, o: &Overview) {
    d.heading("Graphiques");
    d.blocks.push(Block::Charts(Box::new(o.clone())));
}

fn title(what: &str, sectors: usize, lycees: usize) -> String {
    format!("{what} — région ({sectors} secteur(s), {lycees} lycée(s))")
}

/// The region's homogeneity; `csv`: also build the CSV export (one row per lycée).
pub fn homogeneity(h: &RegionHomogeneity, o: &Overview, on: NaiveDate, csv: bool) -> Doc {
    let mut d = Doc::new(title("Homogénéité du parc", h.sectors.len(), h.lycees));
    d.fact("Établi le", fr(on));
    d.fact("Secteurs", h.sectors.len().to_string());
    d.fact("Lycées", h.lycees.to_string());
    d.fact("Postes en service", h.workstations.to_string());
    d.fact("Score d'homogénéité", format!("{} %", num(h.score)));
    d.fact("Modèles en service", h.distinct_models.to_string());
    d.para(
        "Règle (Région, cadre d'intervention §7.5.4) : on affecte à une salle un modèle unique d'ordinateur. \
         Le score d'une salle est la part de ses postes en service qui sont du modèle de sa fiche \
         (à défaut, du modèle majoritaire) ; le score d'un lycée, d'un secteur ou de la région est \
         cette part sur l'ensemble de ses salles.",
    );
    d.heading("Secteurs");
    let mut t = Table::new(&[
        "Secteur",
        "Lycées",
        "Postes en service",
        "Modèles distincts",
        "Score (%)",
    ]);
    for s in &h.sectors {
        let x = &s.homogeneity;
        t.row(vec![
            s.sector.clone(),
            x.lycees.len().to_string(),
            x.workstations.to_string(),
            x.distinct_models.to_string(),
            num(x.score),
        ]);
    }
    t.row(vec![
        "Région".into(),
        h.lycees.to_string(),
        h.workstations.to_string(),
        h.distinct_models.to_string(),
        num(h.score),
    ]);
    d.table(t);
    const LYCEE: [&str; 5] = ["Lycée", "UAI", "Postes", "Salles hétérogènes", "Score (%)"];
    let mut all = csv.then(|| {
        let mut headers = vec!["Secteur"];
        headers.extend(LYCEE);
        Table::new(&headers)
    });
    for s in &h.sectors {
        d.heading(format!(
            "{} — score {} %",
            s.sector,
            num(s.homogeneity.score)
        ));
        let mut t = Table::new(&LYCEE);
        for l in &s.homogeneity.lycees {
            let row = vec![
                l.lycee.clone(),
                l.uai.clone(),
                l.workstations.to_string(),
                l.heterogeneous_rooms.len().to_string(),
                num(l.score),
            ];
            if let Some(all) = &mut all {
                let mut r = Vec::with_capacity(row.len() + 1);
                r.push(s.sector.clone());
                r.extend(row.iter().cloned());
                all.row(r);
            }
            t.row(row);
        }
        d.table(t);
    }
    d.csv_only = all;
    charts(&mut d, o);
    d
}

fn counts_cells(row: &mut Vec<String>, c: &RenewalCounts) {
    row.extend([
        c.in_service.to_string(),
        c.candidates.to_string(),
        c.haute.to_string(),
        c.moyenne.to_string(),
        c.basse.to_string(),
    ]);
}

const COUNTS: [&str; 5] = [
    "Postes en service",
    "Candidats",
    "Priorité haute",
    "Priorité moyenne",
    "Priorité basse",
];

/// The region's renewal candidates, counted; `csv`: also build the CSV export (every
/// candidate).
pub fn renewal(r: &RegionRenewal, o: &Overview, on: NaiveDate, csv: bool) -> Doc {
    let mut d = Doc::new(title("Postes à renouveler", r.sectors.len(), r.lycees));
    d.fact("Établi le", fr(on));
    d.fact("Situation au", fr(r.as_of));
    d.fact("Lycées", r.lycees.to_string());
    d.fact("Postes en service", r.counts.in_service.to_string());
    d.fact(
        "Candidats au renouvellement",
        r.counts.candidates.to_string(),
    );
    d.fact("Priorité haute", r.counts.haute.to_string());
    d.fact("Priorité moyenne", r.counts.moyenne.to_string());
    d.fact("Priorité basse", r.counts.basse.to_string());
    d.para(super::renewal::CRITERIA);
    d.para(format!(
        "Ce document donne les totaux par secteur et par lycée ; la liste complète des {} candidats \
         (secteur, lycée, poste, priorité, justification) est dans l'export CSV de ce rapport.",
        r.counts.candidates
    ));
    d.heading("Par secteur");
    let mut headers = vec!["Secteur", "Lycées"];
    headers.extend(COUNTS);
    let mut t = Table::new(&headers);
    for s in &r.sectors {
        let mut row = vec![s.sector.clone(), s.lycees.len().to_string()];
        counts_cells(&mut row, &s.counts);
        t.row(row);
    }
    let mut row = vec!["Région".into(), r.lycees.to_string()];
    counts_cells(&mut row, &r.counts);
    t.row(row);
    d.table(t);
    d.heading("Par lycée");
    let mut headers = vec!["Secteur", "Lycée", "UAI"];
    headers.extend(COUNTS);
    let mut t = Table::new(&headers);
    for s in &r.sectors {
        for l in &s.lycees {
            let mut row = vec![s.sector.clone(), l.lycee.clone(), l.uai.clone()];
            counts_cells(&mut row, &l.counts);
            t.row(row);
        }
    }
    d.table(t);
    if csv {
        let mut headers = vec!["Secteur", "Lycée", "UAI"];
        headers.extend(super::renewal::HEADERS);
        let mut t = Table::new(&headers);
        t.rows.reserve(r.counts.candidates);
        for s in &r.sectors {
            for l in &s.lycees {
                for c in &l.renewal.candidates {
                    let mut row = Vec::with_capacity(headers.len());
                    row.extend([s.sector.clone(), l.lycee.clone(), l.uai.clone()]);
                    super::renewal::push_cells(&mut row, c);
                    t.row(row);
                }
            }
        }
        d.csv_only = Some(t);
    }
    charts(&mut d, o);
    d
}

/// `Poste fixe`: a form factor as a column header.
fn ff_header(f: FormFactor) -> String {
    let s = f.french();
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The quantities of `totals` in the order of `ffs` (0 when absent).
fn ff_cells(
    row: &mut Vec<String>,
    ffs: &[FormFactor],
    totals: &[crate::domain::fleet::prelp::FormFactorTotal],
) {
    for f in ffs {
        let q = totals
            .iter()
            .find(|t| t.form_factor == *f)
            .map_or(0, |t| t.quantity);
        row.push(q.to_string());
    }
}

/// The region's PRELP request, summed; `csv`: also build the CSV export (every request line).
pub fn prelp(p: &RegionPrelp, o: &Overview, csv: bool) -> Doc {
    let mut d = Doc::new(title(
        &format!("Demande PRELP {}", p.year),
        p.sectors.len(),
        p.lycees,
    ));
    d.fact("Établi le", fr(p.prepared_on));
    d.fact("Enquête de dotation", p.survey.clone());
    d.fact("Livraison attendue", p.delivery.clone());
    d.fact("Besoins évalués au", fr(p.assessed_at));
    d.fact("Lycées", p.lycees.to_string());
    d.fact("Total demandé", format!("{} poste(s)", p.total));
    let lines = p.line_count();
    d.para(format!(
        "Synthèse des demandes des lycées, chacune établie par l'agent STIL pour le chef d'établissement : \
         seules les machines qui ne peuvent être réemployées sont renouvelées ; chaque salle reste équipée \
         d'un modèle unique. Le détail des {lines} ligne(s) de demande (secteur, lycée, salle, quantité, \
         justification) est dans l'export CSV de ce rapport ; chaque lycée a sa propre demande."
    ));
    let ffs = &p.form_factors;
    let ff_headers: Vec<String> = ffs.iter().map(|f| ff_header(*f)).collect();
    d.heading("Total par type de poste");
    d.table(super::prelp::totals_table(&p.totals, p.total));
    d.heading("Par secteur");
    let mut headers = vec!["Secteur", "Lycées", "Total demandé"];
    headers.extend(ff_headers.iter().map(String::as_str));
    let mut t = Table::new(&headers);
    for s in &p.sectors {
        let mut row = vec![
            s.sector.clone(),
            s.lycees.len().to_string(),
            s.total.to_string(),
        ];
        ff_cells(&mut row, ffs, &s.totals);
        t.row(row);
    }
    let mut row = vec!["Région".into(), p.lycees.to_string(), p.total.to_string()];
    ff_cells(&mut row, ffs, &p.totals);
    t.row(row);
    d.table(t);
    d.heading("Par lycée");
    let mut headers = vec!["Secteur", "Lycée", "UAI", "Total demandé"];
    headers.extend(ff_headers.iter().map(String::as_str));
    let mut t = Table::new(&headers);
    for s in &p.sectors {
        for l in &s.lycees {
            let mut row = vec![
                s.sector.clone(),
                l.lycee.clone(),
                l.uai.clone(),
                l.total.to_string(),
            ];
            ff_cells(&mut row, ffs, &l.totals);
            t.row(row);
        }
    }
    d.table(t);
    if csv {
        let mut headers = vec!["Secteur", "Lycée", "UAI"];
        headers.extend(super::prelp::LINE_HEADERS);
        let mut t = Table::new(&headers);
        t.rows.reserve(lines);
        for s in &p.sectors {
            for l in &s.lycees {
                for x in &l.lines {
                    let mut row = Vec::with_capacity(headers.len());
                    row.extend([s.sector.clone(), l.lycee.clone(), l.uai.clone()]);
                    super::prelp::push_line_cells(&mut row, x);
                    t.row(row);
                }
            }
        }
        d.csv_only = Some(t);
    }
    charts(&mut d, o);
    d
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Kind, Report, build, build_region, render, render_formats};
    use super::super::{build_region_prelp, region_prelp_each};
    use crate::domain::fleet::Fleet;
    use crate::domain::fleet::region::testkit::{region, today};

    /// The records of a CSV export (header first).
    fn records(csv: &str) -> Vec<Vec<String>> {
        let body = csv.strip_prefix('\u{feff}').expect("byte-order mark");
        csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .from_reader(body.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    /// The rows of the one-lycée report of `f`, and the region's rows of that lycée without
    /// their first three columns (sector, lycée, UAI); both headers checked likewise.
    fn same_rows_as_each_lycee(kind: Kind, fleets: &[Fleet], region_csv: &str) -> usize {
        let all = records(region_csv);
        let mut seen = 0;
        for f in fleets {
            let one = records(&render(
                &build(kind, std::slice::from_ref(f), 2025, today()).unwrap(),
                Format::Csv,
            ));
            assert_eq!(all[0][..3], ["Secteur", "Lycée", "UAI"]);
            assert_eq!(all[0][3..], one[0][..]);
            let here: Vec<&[String]> = all[1..]
                .iter()
                .filter(|r| r[2] == f.uai)
                .map(|r| {
                    assert_eq!(r[1], f.lycee);
                    &r[3..]
                })
                .collect();
            let theirs: Vec<&[String]> = one[1..].iter().map(Vec::as_slice).collect();
            assert_eq!(here, theirs, "{}", f.lycee);
            seen += here.len();
        }
        assert_eq!(seen, all.len() - 1);
        seen
    }

    #[test]
    fn rotation_stays_per_lycee() {
        assert!(build_region(Kind::Rotation, &region(), 2025, today()).is_none());
    }

    #[test]
    fn homogeneity_by_sector_in_french_with_one_csv_row_per_lycee() {
        let fleets = region();
        let r = build_region(Kind::Homogeneity, &fleets, 2025, today()).unwrap();
        let [md, csv, html, json] = <[String; 4]>::try_from(render_formats(
            &r,
            &[Format::Md, Format::Csv, Format::Html, Format::Json],
        ))
        .unwrap();
        assert!(md.starts_with("# Homogénéité du parc — région (3 secteur(s), 5 lycée(s))"));
        for s in [
            "Score d'homogénéité",
            "| Secteur | Lycées | Postes en service | Modèles distincts | Score (%) |",
            "## Secteur Aisne — score",
            "## (sans secteur) — score",
            "| Lycée | UAI | Postes | Salles hétérogènes | Score (%) |",
            "| Région | 5 |",
        ] {
            assert!(md.contains(s), "{s}\n{md}");
        }
        assert!(html.contains("<h2>Secteurs</h2>"));
        let rows = records(&csv);
        assert_eq!(
            rows[0],
            [
                "Secteur",
                "Lycée",
                "UAI",
                "Postes",
                "Salles hétérogènes",
                "Score (%)"
            ]
        );
        let order: Vec<(&str, &str)> = rows[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("Secteur Aisne", "Lycée Branly"),
                ("Secteur Aisne", "Lycée Condorcet"),
                ("Secteur Dunkerque", "Lycée Angellier"),
                ("Secteur Dunkerque", "Lycée Jean Bart"),
                ("(sans secteur)", "Lycée Arago"),
            ]
        );
        // The CSV-only table is not in the document's pages.
        assert!(!md.contains("| Secteur | Lycée | UAI | Postes |"));
        assert!(json.contains("\"report\": \"region-homogeneity\""));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["region"]["sectors"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["overview"]["machines"],
            fleets.iter().map(|f| f.machines.len()).sum::<usize>()
        );
    }

    #[test]
    fn renewal_shows_the_counts_and_exports_every_candidate() {
        let fleets = region();
        let r = build_region(Kind::Renewal, &fleets, 2025, today()).unwrap();
        let Report::RegionRenewal { region, .. } = &r else {
            panic!("not a region renewal");
        };
        let candidates = region.counts.candidates;
        let [md, csv] =
            <[String; 2]>::try_from(render_formats(&r, &[Format::Md, Format::Csv])).unwrap();
        assert!(md.starts_with("# Postes à renouveler — région (3 secteur(s), 5 lycée(s))"));
        for s in [
            "## Par secteur",
            "## Par lycée",
            "Priorité haute",
            "est dans l'export CSV de ce rapport",
            "| (sans secteur) | Lycée Arago | 0590003C |",
        ] {
            assert!(md.contains(s), "{s}\n{md}");
        }
        // The candidates themselves are only in the CSV.
        assert!(!md.contains("bur-pc01"));
        assert_eq!(
            same_rows_as_each_lycee(Kind::Renewal, &fleets, &csv),
            candidates
        );
        assert!(candidates > 0);
        // Without CSV, the list is not built.
        assert!(r.doc_for(false).csv_only.is_none());
    }

    #[test]
    fn prelp_sums_the_requests_and_exports_every_line() {
        let fleets = region();
        let r = build_region(Kind::Prelp, &fleets, 2025, today()).unwrap();
        let Report::RegionPrelp { region, .. } = &r else {
            panic!("not a region PRELP");
        };
        let [md, csv] =
            <[String; 2]>::try_from(render_formats(&r, &[Format::Md, Format::Csv])).unwrap();
        assert!(md.starts_with("# Demande PRELP 2025 — région (3 secteur(s), 5 lycée(s))"));
        for s in [
            "## Total par type de poste",
            "| Secteur | Lycées | Total demandé | Poste fixe | Portable |",
            "| Secteur | Lycée | UAI | Total demandé | Poste fixe | Portable |",
            &format!("| Total | {} |", region.total),
            "chaque lycée a sa propre demande",
        ] {
            assert!(md.contains(s), "{s}\n{md}");
        }
        let lines = same_rows_as_each_lycee(Kind::Prelp, &fleets, &csv);
        assert!(lines > 0);
        // Each lycée's own request, in the region's order, as the one-lycée report.
        let each = region_prelp_each(&fleets, 2025, today());
        let uais: Vec<&str> = each.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            uais,
            vec!["0020002B", "0020001A", "0590001A", "0590002B", "0590003C"]
        );
        for (uai, rep) in &each {
            let f = fleets.iter().find(|f| &f.uai == uai).unwrap();
            let one = build(Kind::Prelp, std::slice::from_ref(f), 2025, today()).unwrap();
            assert_eq!(render(rep, Format::Json), render(&one, Format::Json));
        }
        let (both, each2) = build_region_prelp(&fleets, 2025, today());
        assert_eq!(render(&both, Format::Json), render(&r, Format::Json));
        assert_eq!(each2.len(), 5);
        assert_eq!(
            render(&each2[4].1, Format::Md),
            render(&each[4].1, Format::Md)
        );
    }
}
