//! CSV rendering: the document's main table, `;`-separated as French spreadsheets expect
//! (for the regional survey's spreadsheet), UTF-8 with a byte-order mark so that Excel reads
//! the accents right.

use super::doc::Doc;

pub fn render(doc: &Doc) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    if let Some(t) = doc
        .csv_only
        .as_ref()
        .or_else(|| doc.tables().nth(doc.csv_table))
    {
        let _ = w.write_record(&t.headers);
        for r in &t.rows {
            let _ = w.write_record(r);
        }
    }
    let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    format!("\u{feff}{body}")
}
