//! Markdown rendering of a report document.

use std::fmt::Write as _;

use super::doc::{Block, Doc, Table};

/// Appends a table cell: `|` escaped, line breaks as spaces.
fn push_cell(out: &mut String, s: &str) {
    if !s.contains(['|', '\n']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends `| a | b | c |` and a line break.
fn push_row(out: &mut String, cells: &[String]) {
    out.push_str("| ");
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        push_cell(out, c);
    }
    out.push_str(" |\n");
}

fn table(out: &mut String, t: &Table) {
    push_row(out, &t.headers);
    out.push('|');
    for i in 0..t.headers.len() {
        if i > 0 {
            out.push('|');
        }
        out.push_str("---");
    }
    out.push_str("|\n");
    for r in &t.rows {
        push_row(out, r);
    }
    out.push('\n');
}

pub fn render(doc: &Doc) -> String {
    let mut out = format!("# {}\n\n", doc.title);
    for (k, v) in &doc.facts {
        let _ = writeln!(out, "- **{k}** : {v}");
    }
    if !doc.facts.is_empty() {
        out.push('\n');
    }
    for b in &doc.blocks {
        match b {
            Block::Heading(h) => {
                let _ = writeln!(out, "## {h}\n");
            }
            Block::Para(p) => {
                let _ = writeln!(out, "{p}\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
                out.push('\n');
            }
            Block::Table(t) => table(&mut out, t),
            Block::Charts(o) => {
                let mut t = Table::new(&["Âge (ans)", "Postes fixes", "Portables"]);
                for a in &o.age_pyramid {
                    let age = if a.age as usize + 1 == o.age_pyramid.len() {
                        format!("{}+", a.age)
                    } else {
                        a.age.to_string()
                    };
                    t.row(vec![age, a.desktops.to_string(), a.laptops.to_string()]);
                }
                let _ = writeln!(out, "### Pyramide des âges\n");
                table(&mut out, &t);
                let mut t = Table::new(&["Fin de garantie (année)", "Postes"]);
                for w in &o.warranty_timeline {
                    t.row(vec![w.year.to_string(), w.count.to_string()]);
                }
                let _ = writeln!(out, "### Fins de garantie\n");
                table(&mut out, &t);
            }
        }
    }
    out
}
