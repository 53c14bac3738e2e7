//! A report as a document: a title, facts, and blocks (headings, paragraphs, lists, tables,
//! charts). Each report builds one; the Markdown, HTML and CSV renderers only read it.

use crate::domain::fleet::stats::Overview;

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Para(String),
    List(Vec<String>),
    Table(Table),
    /// The three charts (age pyramid, model share per room, warranty ends).
    Charts(Box<Overview>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub title: String,
    /// Label–value lines under the title.
    pub facts: Vec<(String, String)>,
    pub blocks: Vec<Block>,
    /// The table exported by `--format csv` (index among the tables).
    pub csv_table: usize,
    /// A table exported by `--format csv` instead, and not shown (a region's full list,
    /// too long to read: the document shows its totals).
    pub csv_only: Option<Table>,
}

impl Doc {
    pub fn new(title: impl Into<String>) -> Doc {
        Doc {
            title: title.into(),
            facts: Vec::new(),
            blocks: Vec::new(),
            csv_table: 0,
            csv_only: None,
        }
    }

    pub fn fact(&mut self, label: &str, value: impl Into<String>) {
        self.facts.push((label.to_string(), value.into()));
    }

    pub fn heading(&mut self, h: impl Into<String>) {
        self.blocks.push(Block::Heading(h.into()));
    }

    pub fn para(&mut self, p: impl Into<String>) {
        self.blocks.push(Block::Para(p.into()));
    }

    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn table(&mut self, t: Table) {
        self.blocks.push(Block::Table(t));
    }

    /// Marks the next table added as the CSV export.
    pub fn csv_next(&mut self) {
        self.csv_table = self
            .blocks
            .iter()
            .filter(|b| matches!(b, Block::Table(_)))
            .count();
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Table(t) => Some(t),
            _ => None,
        })
    }
}

/// `12,5` — French decimal comma.
pub fn num(x: f64) -> String {
    let s = format!("{x:.1}");
    s.trim_end_matches(".0").replace('.', ",")
}
