//! A typed reader over a parsed TOML document that collects *every* problem with its place.
//!
//! serde stops at the first error; a technician fixing a recipe wants them all at once. Each
//! accessor records a finding when a key is missing or has the wrong type, and
//! [`TableReader::finish`] reports every key nobody asked for, with a "did you mean" hint.
//! The accepted keys are exactly the ones the reading code asks for: no second schema to keep
//! in sync.

use std::cell::RefCell;
use std::ops::Range;

use chrono::NaiveDate;
use toml_edit::{Item, TableLike, Value};

use super::finding::{Finding, Location, Source, did_you_mean};

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub value: T,
    pub at: Location,
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// The state shared by all readers of one file: its source and the findings so far.
pub struct Ctx<'s> {
    pub src: &'s Source,
    findings: RefCell<Vec<Finding>>,
}

impl<'s> Ctx<'s> {
    pub fn new(src: &'s Source) -> Self {
        Self {
            src,
            findings: RefCell::new(Vec::new()),
        }
    }

    pub fn push(&self, f: Finding) {
        self.findings.borrow_mut().push(f);
    }

    pub fn at(&self, span: Option<Range<usize>>) -> Location {
        self.src.span(span)
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings.into_inner()
    }

    /// Parses the source; a syntax error becomes a finding and `None`.
    pub fn parse(&self) -> Option<toml_edit::Document<&'s str>> {
        match toml_edit::Document::parse(self.src.text.as_str()) {
            Ok(doc) => Some(doc),
            Err(e) => {
                let msg = e.message().trim().trim_end_matches('.').to_string();
                self.push(Finding::error(
                    self.at(e.span()),
                    "syntax",
                    format!("invalid TOML: {msg}"),
                ));
                None
            }
        }
    }
}

/// Reads one table (a `[table]`, a `[[array]]` entry, or an inline `{ … }`).
pub struct TableReader<'a, 's> {
    ctx: &'a Ctx<'s>,
    table: &'a dyn TableLike,
    /// Where the table starts (its header, or the inline table).
    span: Option<Range<usize>>,
    /// How messages name this table: `[software] #2`, `site.toml`, …
    label: String,
    asked: RefCell<Vec<&'static str>>,
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "an inline table",
        },
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::Value(v) => v.span(),
        Item::None => None,
    }
}

impl<'a, 's> TableReader<'a, 's> {
    /// Reads the root table of a document.
    pub fn root(ctx: &'a Ctx<'s>, doc: &'a toml_edit::Document<&'s str>, label: &str) -> Self {
        Self::new(ctx, doc.as_table(), Some(0..0), label.to_string())
    }

    fn new(
        ctx: &'a Ctx<'s>,
        table: &'a dyn TableLike,
        span: Option<Range<usize>>,
        label: String,
    ) -> Self {
        Self {
            ctx,
            table,
            span,
            label,
            asked: RefCell::new(Vec::new()),
        }
    }

    pub fn ctx(&self) -> &'a Ctx<'s> {
        self.ctx
    }

    /// Where the table itself starts.
    pub fn location(&self) -> Location {
        self.ctx.at(self.span.clone())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the key is present (marks it as known).
    pub fn has(&self, key: &'static str) -> bool {
        self.asked.borrow_mut().push(key);
        self.table.get(key).is_some_and(|i| !i.is_none())
    }

    fn get(&self, key: &'static str, required: bool) -> Option<(&'a Item, Option<Range<usize>>)> {
        self.asked.borrow_mut().push(key);
        match self.table.get_key_value(key) {
            Some((k, item)) if !item.is_none() => {
                Some((item, item_span(item).or_else(|| k.span())))
            }
            _ => {
                if required {
                    self.ctx.push(Finding::error(
                        self.location(),
                        "missing-key",
                        format!("missing required key `{key}` in {}", self.label),
                    ));
                }
                None
            }
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, item: &Item, span: Option<Range<usize>>) {
        self.ctx.push(Finding::error(
            self.ctx.at(span),
            "type",
            format!("`{key}` must be {expected}, found {}", type_name(item)),
        ));
    }

    /// A string value.
    pub fn string(&self, key: &'static str, required: bool) -> Option<Sp<String>> {
        let (item, span) = self.get(key, required)?;
        match item.as_str() {
            Some(s) => Some(Sp {
                value: s.to_string(),
                at: self.ctx.at(span),
            }),
            None => {
                self.wrong_type(key, "a string", item, span);
                None
            }
        }
    }

    /// A non-empty string (empty is reported as missing).
    pub fn text(&self, key: &'static str, required: bool) -> Option<Sp<String>> {
        let s = self.string(key, required)?;
        if s.value.trim().is_empty() {
            self.ctx.push(Finding::error(
                s.at.clone(),
                "empty",
                format!("`{key}` must not be empty"),
            ));
            return None;
        }
        Some(s)
    }

    /// An integer in `min..=max`.
    pub fn int(&self, key: &'static str, required: bool, min: i64, max: i64) -> Option<Sp<i64>> {
        let (item, span) = self.get(key, required)?;
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(Sp {
                value: n,
                at: self.ctx.at(span),
            }),
            Some(n) => {
                self.ctx.push(Finding::error(
                    self.ctx.at(span),
                    "range",
                    format!("`{key}` = {n} is out of range ({min} to {max})"),
                ));
                None
            }
            None => {
                self.wrong_type(key, "an integer", item, span);
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&self, key: &'static str) -> Option<Sp<bool>> {
        let (item, span) = self.get(key, false)?;
        match item.as_bool() {
            Some(b) => Some(Sp {
                value: b,
                at: self.ctx.at(span),
            }),
            None => {
                self.wrong_type(key, "true or false", item, span);
                None
            }
        }
    }

    /// A calendar date: a TOML local date (`2026-09-14`) or the same in a string.
    pub fn date(&self, key: &'static str, required: bool) -> Option<Sp<NaiveDate>> {
        let (item, span) = self.get(key, required)?;
        let at = self.ctx.at(span.clone());
        let text = match item.as_value() {
            Some(Value::Datetime(d)) => match (d.value().date, d.value().time) {
                (Some(date), None) => format!("{date}"),
                _ => {
                    self.ctx.push(
                        Finding::error(
                            at,
                            "date",
                            format!("`{key}` must be a date without a time"),
                        )
                        .hint("write it as YYYY-MM-DD, e.g. 2026-09-14"),
                    );
                    return None;
                }
            },
            Some(Value::String(s)) => s.value().clone(),
            _ => {
                self.wrong_type(key, "a date (YYYY-MM-DD)", item, span);
                return None;
            }
        };
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) => Some(Sp { value: d, at }),
            Err(_) => {
                self.ctx.push(
                    Finding::error(
                        at,
                        "date",
                        format!("`{key}` = \"{text}\" is not a valid date"),
                    )
                    .hint("write it as YYYY-MM-DD, e.g. 2026-09-14"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice(
        &self,
        key: &'static str,
        required: bool,
        allowed: &[&'static str],
    ) -> Option<Sp<&'static str>> {
        let s = self.string(key, required)?;
        match allowed.iter().find(|a| **a == s.value) {
            Some(a) => Some(Sp {
                value: *a,
                at: s.at,
            }),
            None => {
                let mut f = Finding::error(
                    s.at,
                    "choice",
                    format!(
                        "`{key}` = \"{}\" is not one of: {}",
                        s.value,
                        allowed.join(", ")
                    ),
                );
                if let Some(m) = did_you_mean(&s.value, allowed.iter().copied()) {
                    f = f.hint(format!("did you mean \"{m}\"?"));
                }
                self.ctx.push(f);
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &'static str, required: bool) -> Vec<Sp<String>> {
        let Some((item, span)) = self.get(key, required) else {
            return Vec::new();
        };
        let Some(arr) = item.as_array() else {
            self.wrong_type(key, "an array of strings", item, span);
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            match v.as_str() {
                Some(s) => out.push(Sp {
                    value: s.to_string(),
                    at: self.ctx.at(v.span()),
                }),
                None => self.ctx.push(Finding::error(
                    self.ctx.at(v.span()),
                    "type",
                    format!("`{key}` must contain only strings"),
                )),
            }
        }
        out
    }

    /// A sub-table (`[key]` or `key = { … }`).
    pub fn table(&self, key: &'static str, required: bool) -> Option<TableReader<'a, 's>> {
        let (item, span) = self.get(key, required)?;
        match item.as_table_like() {
            Some(t) => Some(TableReader::new(self.ctx, t, span, format!("[{key}]"))),
            None => {
                self.wrong_type(key, "a table", item, span);
                None
            }
        }
    }

    /// An array of tables (`[[key]]` entries or `key = [{ … }, …]`).
    pub fn tables(&self, key: &'static str, required: bool) -> Vec<TableReader<'a, 's>> {
        let Some((item, span)) = self.get(key, required) else {
            return Vec::new();
        };
        match item {
            Item::ArrayOfTables(aot) => aot
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    TableReader::new(self.ctx, t, t.span(), format!("[[{key}]] #{}", i + 1))
                })
                .collect(),
            Item::Value(Value::Array(arr)) => {
                let mut out = Vec::new();
                for (i, v) in arr.iter().enumerate() {
                    match v.as_inline_table() {
                        Some(t) => out.push(TableReader::new(
                            self.ctx,
                            t,
                            v.span(),
                            format!("{key}[{}]", i + 1),
                        )),
                        None => self.ctx.push(Finding::error(
                            self.ctx.at(v.span()),
                            "type",
                            format!("`{key}` must contain only tables"),
                        )),
                    }
                }
                out
            }
            other => {
                self.wrong_type(key, "an array of tables", other, span);
                Vec::new()
            }
        }
    }

    /// A reference to a named secret: `key = { secret = "NAME" }`. A plain string is a secret
    /// written inline: an error that never repeats the value.
    pub fn secret_ref(&self, key: &'static str, required: bool) -> Option<Sp<String>> {
        let (item, span) = self.get(key, required)?;
        let at = self.ctx.at(span.clone());
        if item.is_str() {
            self.ctx.push(
                Finding::error(at, "inline-secret", format!("`{key}` is written inline; secrets are referred to by name"))
                    .hint(format!(
                        "remove the value from this file (and from git history), store it with `parc secret set NAME` and write `{key} = {{ secret = \"NAME\" }}`"
                    )),
            );
            return None;
        }
        let Some(t) = item.as_table_like() else {
            self.wrong_type(key, "a secret reference { secret = \"NAME\" }", item, span);
            return None;
        };
        let r = TableReader::new(self.ctx, t, span, format!("`{key}`"));
        let name = r.text("secret", true);
        r.finish();
        let name = name?;
        if !valid_secret_name(&name) {
            self.ctx.push(
                Finding::error(
                    name.at.clone(),
                    "secret-name",
                    format!("secret name \"{}\" is not valid", name.value),
                )
                .hint("use letters, digits, '-', '_' and '.' only"),
            );
            return None;
        }
        Some(name)
    }

    /// Reports every key of the table that no accessor asked for.
    pub fn finish(self) {
        let asked = self.asked.into_inner();
        for (key, _) in self.table.iter() {
            if asked.contains(&key) {
                continue;
            }
            let span = self.table.key(key).and_then(|k| k.span());
            let mut f = Finding::error(
                self.ctx.at(span),
                "unknown-key",
                format!("unknown key `{key}` in {}", self.label),
            );
            if let Some(m) = did_you_mean(key, asked.iter().copied()) {
                f = f.hint(format!("did you mean `{m}`?"));
            }
            self.ctx.push(f);
        }
    }
}

/// Secret names: letters, digits, `-`, `_`, `.`; not starting with a dot; at most 64 bytes.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::finding::Source;

    fn read(text: &str, f: impl FnOnce(&TableReader)) -> Vec<String> {
        let src = Source::new("t.toml", text);
        let ctx = Ctx::new(&src);
        if let Some(doc) = ctx.parse() {
            let r = TableReader::root(&ctx, &doc, "t.toml");
            f(&r);
            r.finish();
        }
        ctx.into_findings().iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let out = read("name = 3\nseat = 30\n", |r| {
            r.string("name", true);
            r.int("seats", true, 1, 100);
        });
        assert_eq!(
            out,
            vec![
                "t.toml:1:8: error: `name` must be a string, found an integer",
                "t.toml:1:1: error: missing required key `seats` in t.toml",
                "t.toml:2:1: error: unknown key `seat` in t.toml\n  hint: did you mean `seats`?",
            ]
        );
    }

    #[test]
    fn inline_secret_is_refused_without_echoing_it() {
        let out = read("key = \"ABCD-1234-SECRET\"\n", |r| {
            r.secret_ref("key", false);
        });
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("t.toml:1:7: error: `key` is written inline"),
            "{}",
            out[0]
        );
        assert!(!out[0].contains("ABCD"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let out = read("a = 1\nb = = 2\n", |_| {});
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("t.toml:2:"), "{}", out[0]);
    }

    #[test]
    fn dates_accept_toml_dates_and_strings() {
        let out = read("a = 2026-09-14\nb = \"2026-02-30\"\n", |r| {
            assert!(r.date("a", true).is_some());
            assert!(r.date("b", true).is_none());
        });
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("t.toml:2:5: error: `b` = \"2026-02-30\" is not a valid date"));
    }
}
