//! Inline SVG charts: age pyramid, model share per room, warranty-end timeline. No script,
//! no external resource: the HTML report stays one self-contained file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Datelike;

use super::html::esc;
use crate::domain::fleet::stats::Overview;

/// A coordinate: with precision 1 (`{:.1}`), written as f64 writes it, without the exact
/// (and slow) float formatting; other formats, and values within a hair of a rounding tie, go
/// to f64's own formatting.
struct F1(f64);

impl std::fmt::Display for F1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let x = self.0;
        let tenths = x.abs() * 10.0;
        let near_tie = (tenths - tenths.floor() - 0.5).abs() < 1e-6;
        if f.precision() != Some(1)
            || f.width().is_some()
            || f.sign_plus()
            || tenths.is_nan()
            || tenths >= 1e6
            || near_tie
        {
            return std::fmt::Display::fmt(&x, f);
        }
        let n = tenths.round() as u64;
        let sign = if x.is_sign_negative() { "-" } else { "" };
        write!(f, "{sign}{}.{}", n / 10, n % 10)
    }
}

/// Rooms drawn at most in the model-share chart.
pub const MAX_ROOMS_DRAWN: usize = 60;

const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Desktops to the left, laptops to the right, one row per age (youngest at the bottom).
pub fn age_pyramid(o: &Overview) -> String {
    let rows = o.age_pyramid.len();
    let max = o
        .age_pyramid
        .iter()
        .map(|a| a.desktops.max(a.laptops))
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, row_h, top) = (640.0, 20.0, 30.0);
    let h = top + rows as f64 * row_h + 10.0;
    let mid = w / 2.0;
    let half = mid - 60.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Pyramide des âges"><title>Pyramide des âges</title>"#
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="16" text-anchor="middle" class="lg">Postes fixes</text><text x="{}" y="16" text-anchor="middle" class="lg">Portables</text>"##,
        mid - half / 2.0,
        mid + half / 2.0
    );
    for (i, a) in o.age_pyramid.iter().enumerate() {
        let y = top + (rows - 1 - i) as f64 * row_h;
        let dl = a.desktops as f64 / max as f64 * half;
        let ll = a.laptops as f64 / max as f64 * half;
        let label = if i + 1 == rows {
            format!("{} ans et +", a.age)
        } else {
            format!("{} an{}", a.age, if a.age > 1 { "s" } else { "" })
        };
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{y}" width="{dl:.1}" height="{}" fill="#1f77b4"><title>{label} : {} poste(s) fixe(s)</title></rect><rect x="{:.1}" y="{y}" width="{ll:.1}" height="{}" fill="#ff7f0e"><title>{label} : {} portable(s)</title></rect><text x="{mid}" y="{:.1}" text-anchor="middle" class="ax">{label}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="v">{}</text><text x="{:.1}" y="{:.1}" class="v">{}</text>"##,
            F1(mid - 40.0 - dl),
            row_h - 4.0,
            a.desktops,
            F1(mid + 40.0),
            row_h - 4.0,
            a.laptops,
            F1(y + row_h - 8.0),
            F1(mid - 44.0 - dl),
            F1(y + row_h - 8.0),
            a.desktops,
            F1(mid + 44.0 + ll),
            F1(y + row_h - 8.0),
            a.laptops,
            dl = F1(dl),
            ll = F1(ll),
        );
    }
    s.push_str("</svg>");
    s
}

/// One 100 % bar per room, one colour per model, with a legend.
pub fn model_share(o: &Overview) -> String {
    let several = o
        .room_shares
        .iter()
        .map(|r| &r.lycee)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let rooms: Vec<_> = o.room_shares.iter().take(MAX_ROOMS_DRAWN).collect();
    let mut colour: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &rooms {
        for m in &r.models {
            let n = colour.len();
            colour.entry(&m.model).or_insert(PALETTE[n % PALETTE.len()]);
        }
    }
    let label = |r: &crate::domain::fleet::stats::RoomShare| {
        let full = if several {
            format!("{} · {}", r.lycee, r.room)
        } else {
            r.room.clone()
        };
        if full.chars().count() > 42 {
            format!(
                "…{}",
                full.chars()
                    .skip(full.chars().count() - 41)
                    .collect::<String>()
            )
        } else {
            full
        }
    };
    let longest = rooms
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(4);
    let (row_h, top) = (18.0, 10.0);
    let left = (longest as f64 * 6.2 + 12.0).clamp(60.0, 280.0);
    let w = left + 490.0;
    let legend_rows = colour.len().div_ceil(3);
    let h = top + rooms.len() as f64 * row_h + 16.0 + legend_rows as f64 * 16.0;
    let bar = w - left - 10.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Part de chaque modèle par salle"><title>Part de chaque modèle par salle</title>"#
    );
    for (i, r) in rooms.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let total: usize = r.models.iter().map(|m| m.count).sum();
        let name = label(r);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text>"#,
            F1(left - 6.0),
            F1(y + row_h - 5.0),
            esc(&name)
        );
        let mut x = left;
        for m in &r.models {
            let mw = m.count as f64 / total.max(1) as f64 * bar;
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{mw:.1}" height="{:.1}" fill="{}" stroke="#fff" stroke-width="0.5"><title>{} — {} : {} poste(s) sur {total}</title></rect>"##,
                F1(row_h - 3.0),
                colour[m.model.as_str()],
                esc(&name),
                esc(&m.model),
                m.count,
                x = F1(x),
                y = F1(y),
                mw = F1(mw),
            );
            x += mw;
        }
    }
    let ly = top + rooms.len() as f64 * row_h + 12.0;
    for (i, (m, c)) in colour.iter().enumerate() {
        let x = 10.0 + (i % 3) as f64 * 210.0;
        let y = ly + (i / 3) as f64 * 16.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{y:.1}" class="ax">{}</text>"#,
            F1(y - 9.0),
            F1(x + 14.0),
            esc(m),
            y = F1(y),
        );
    }
    s.push_str("</svg>");
    s
}

/// Machines per warranty-end year; past years in red, a line at today.
pub fn warranty_timeline(o: &Overview) -> String {
    let years = &o.warranty_timeline;
    let max = years.iter().map(|y| y.count).max().unwrap_or(0).max(1);
    let (w, h, left, bottom, top) = (640.0, 220.0, 30.0, 30.0, 20.0);
    let n = years.len().max(1) as f64;
    let slot = (w - left - 10.0) / n;
    let plot = h - bottom - top;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Fins de garantie par année"><title>Fins de garantie par année</title>"#
    );
    let today = o.as_of.year();
    for (i, y) in years.iter().enumerate() {
        let bh = y.count as f64 / max as f64 * plot;
        let x = left + i as f64 * slot;
        let fill = if y.year < today {
            "#d62728"
        } else if y.year == today {
            "#ff7f0e"
        } else {
            "#2ca02c"
        };
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{fill}"><title>{} : {} poste(s)</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" class="v">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" class="ax">{}</text>"#,
            F1(x + 2.0),
            F1(top + plot - bh),
            F1((slot - 4.0).max(1.0)),
            y.year,
            y.count,
            F1(x + slot / 2.0),
            F1(top + plot - bh - 3.0),
            y.count,
            F1(x + slot / 2.0),
            F1(h - bottom + 14.0),
            y.year,
            bh = F1(bh),
        );
    }
    if let Some(i) = years.iter().position(|y| y.year >= today) {
        // Within this year's bar, or between the last past year and the next one.
        let within = if years[i].year == today {
            slot * (o.as_of.ordinal() as f64 / 366.0)
        } else {
            0.0
        };
        let x = left + i as f64 * slot + within;
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/><text x="{:.1}" y="12" class="ax">aujourd'hui</text>"##,
            F1(top + plot),
            F1(x + 3.0),
            x = F1(x),
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#444"/>"##,
        F1(top + plot),
        F1(w - 10.0),
        F1(top + plot)
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fleet::homogeneity::ModelCount;
    use crate::domain::fleet::stats::{AgeBucket, RoomShare, WarrantyYear};

    fn overview() -> Overview {
        Overview {
            as_of: chrono::NaiveDate::from_ymd_opt(2027, 2, 15).unwrap(),
            machines: 12,
            age_pyramid: (0..=10)
                .map(|a| AgeBucket {
                    age: a,
                    desktops: a as usize,
                    laptops: 1,
                })
                .collect(),
            warranty_timeline: vec![
                WarrantyYear {
                    year: 2024,
                    count: 5,
                },
                WarrantyYear {
                    year: 2029,
                    count: 7,
                },
            ],
            room_shares: vec![RoomShare {
                lycee: "L".into(),
                room: "b<204>".into(),
                models: vec![
                    ModelCount {
                        model: "a".into(),
                        count: 3,
                    },
                    ModelCount {
                        model: "b".into(),
                        count: 1,
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_coordinate_is_written_as_f64_writes_it() {
        let mut values: Vec<f64> = (-200_000..200_000).map(|i| i as f64 / 1000.0).collect();
        values.extend((0..2000).map(|i| 640.0 / 7.0 * i as f64 / 13.0));
        values.extend((1..500).map(|i| 480.0 * (i % 17) as f64 / i as f64));
        values.extend([
            0.0,
            -0.0,
            0.05,
            0.25,
            -0.25,
            2.5e6,
            1e20,
            f64::NAN,
            f64::INFINITY,
        ]);
        for x in values {
            assert_eq!(format!("{:.1}", F1(x)), format!("{x:.1}"), "{x:e}");
            assert_eq!(format!("{}", F1(x)), format!("{x}"), "{x:e}");
        }
    }

    #[test]
    fn charts_draw_one_shape_per_figure_and_escape_names() {
        let o = overview();
        let share = model_share(&o);
        // Two bars (3/4 and 1/4 of 480 px) and two legend squares.
        assert_eq!(share.matches("<rect").count(), 4);
        assert!(
            share.contains(r#"width="360.0""#) && share.contains(r#"width="120.0""#),
            "{share}"
        );
        assert!(share.contains("b&lt;204&gt;") && !share.contains("b<204>"));
        let pyramid = age_pyramid(&o);
        assert_eq!(pyramid.matches("<rect").count(), 22);
        assert!(pyramid.contains("10 ans et +"));
        let w = warranty_timeline(&o);
        assert!(w.contains("#d62728") && w.contains("#2ca02c"));
        // Today (2027) falls between the two bars: the marker is at the left of the 2029 bar.
        assert!(w.contains(r#"<line x1="330.0""#), "{w}");
    }
}
