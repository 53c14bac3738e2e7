//! HTML rendering: one self-contained page (inline CSS and SVG, no script, no link).

use std::fmt::Write as _;

use super::doc::{Block, Doc, Table};
use super::svg;

/// Escapes text for HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    push_esc(&mut o, s);
    o
}

/// Appends `s` to `out`, escaped as [`esc`] does; the text between the characters to escape
/// is copied in one piece.
pub fn push_esc(out: &mut String, s: &str) {
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        // An ASCII byte: `i` is a character boundary.
        out.push_str(&s[from..i]);
        out.push_str(entity);
        from = i + 1;
    }
    out.push_str(&s[from..]);
}

/// Appends `<tag>`, `s` escaped, `</tag>`.
fn element(out: &mut String, tag: &str, s: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    push_esc(out, s);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

const STYLE: &str = "body{font-family:system-ui,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\
h1{font-size:1.6em;border-bottom:3px solid #1f4e79;padding-bottom:.3em}h2{font-size:1.25em;color:#1f4e79;margin-top:1.6em}\
h3{font-size:1.05em}table{border-collapse:collapse;width:100%;margin:.6em 0;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#eef3f8}\
tr:nth-child(even) td{background:#fafafa}dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}\
dl.facts dt{font-weight:600}dl.facts dd{margin:0}.charts figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\
svg text{font-size:11px;fill:#222}svg .lg{font-size:12px;font-weight:600}svg .v{font-size:10px;fill:#555}\
@media print{body{margin:0;max-width:none}}";

fn table(out: &mut String, t: &Table) {
    out.push_str("<table><thead><tr>");
    for h in &t.headers {
        element(out, "th", h);
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            element(out, "td", c);
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

pub fn render(doc: &Doc) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&doc.title),
        esc(&doc.title)
    );
    if !doc.facts.is_empty() {
        out.push_str("<dl class=\"facts\">");
        for (k, v) in &doc.facts {
            element(&mut out, "dt", k);
            element(&mut out, "dd", v);
        }
        out.push_str("</dl>\n");
    }
    for b in &doc.blocks {
        match b {
            Block::Heading(h) => {
                element(&mut out, "h2", h);
                out.push('\n');
            }
            Block::Para(p) => {
                element(&mut out, "p", p);
                out.push('\n');
            }
            Block::List(items) => {
                out.push_str("<ul>");
                for i in items {
                    element(&mut out, "li", i);
                }
                out.push_str("</ul>\n");
            }
            Block::Table(t) => table(&mut out, t),
            Block::Charts(o) => {
                out.push_str("<div class=\"charts\">");
                let _ = write!(
                    out,
                    "<figure><figcaption>Pyramide des âges ({} postes au {}, réserve et pannes comprises)</figcaption>{}</figure>",
                    o.machines,
                    o.as_of.format("%d/%m/%Y"),
                    svg::age_pyramid(o)
                );
                let drawn = o.room_shares.len().min(svg::MAX_ROOMS_DRAWN);
                let note = if drawn < o.room_shares.len() {
                    format!(" — {drawn} premières salles sur {}", o.room_shares.len())
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "<figure><figcaption>Part de chaque modèle par salle{}</figcaption>{}</figure>",
                    esc(&note),
                    svg::model_share(o)
                );
                let _ = write!(
                    out,
                    "<figure><figcaption>Fins de garantie par année (rouge : échue, vert : à venir)</figcaption>{}</figure>",
                    svg::warranty_timeline(o)
                );
                out.push_str("</div>\n");
            }
        }
    }
    out.push_str("<footer><p><small>Établi par parc.</small></p></footer></body></html>\n");
    out
}
