//! Findings: one problem of a workspace, with its place (`file:line:col`), severity and hint.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a finding is. Errors block the procedure; warnings are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in a file: the file as the workspace names it (relative path) and a 1-based line and
/// column (in characters). `line == 0` means "the file as a whole".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// One problem found in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub location: Location,
    pub severity: Severity,
    /// A stable identifier of the rule (`unknown-key`, `licence-seats`, …) for scripts and tests.
    pub rule: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    pub fn error(location: Location, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            location,
            severity: Severity::Error,
            rule,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(location: Location, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            location,
            severity: Severity::Warning,
            rule,
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.severity, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The text of one workspace file, able to turn byte offsets into `line:col`.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file's path relative to the workspace (as shown in findings).
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The location of byte `offset` (clamped to the text).
    pub fn at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            file: self.name.clone(),
            line,
            col,
        }
    }

    /// The location of the start of `span`, or of the whole file when there is none.
    pub fn span(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(r) => self.at(r.start),
            None => self.whole(),
        }
    }

    /// The file as a whole (no line).
    pub fn whole(&self) -> Location {
        Location {
            file: self.name.clone(),
            line: 0,
            col: 0,
        }
    }
}

/// Suggests the closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_character_columns() {
        let s = Source::new("a.toml", "x = 1\nnom = \"é\" y\n");
        assert_eq!(s.at(0).to_string(), "a.toml:1:1");
        assert_eq!(s.at(6).to_string(), "a.toml:2:1");
        // 'y' is after a two-byte 'é': byte 17, character column 11.
        assert_eq!(s.at(s.text.find('y').unwrap()).to_string(), "a.toml:2:11");
    }

    #[test]
    fn suggestions_only_for_close_words() {
        assert_eq!(
            did_you_mean("seat", ["seats", "proof", "kind"]),
            Some("seats")
        );
        assert_eq!(did_you_mean("colour", ["seats", "proof"]), None);
    }
}
