//! Diagnostics: what went wrong in the configuration, where, and what would be right.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::SourceLoc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        })
    }
}

/// One problem found in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// One line: what is wrong.
    pub summary: String,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What would be right, e.g. "did you mean `version`?".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// File (as given relative to the working directory, or joined with the config dir),
    /// 1-based line and column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc: Option<SourceLoc>,
    /// Byte range in the source, for snippet rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Range<usize>>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: None,
            hint: None,
            loc: None,
            span: None,
        }
    }

    pub fn warning(summary: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(summary)
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    pub fn maybe_hint(mut self, h: Option<String>) -> Self {
        if h.is_some() {
            self.hint = h;
        }
        self
    }

    pub fn at(mut self, loc: SourceLoc, span: Option<Range<usize>>) -> Self {
        self.loc = Some(loc);
        self.span = span;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Terraform-like text. The header always carries `FILE:LINE:COL` when the location is
    /// known; the source line is quoted when the file is in `sources` (or still readable).
    pub fn render(&self, sources: &[(PathBuf, String)]) -> String {
        let mut out = format!("{}: {}", self.severity, self.summary);
        if let Some(loc) = &self.loc {
            out.push_str(&format!(" at {loc}"));
        }
        out.push('\n');
        if let Some(loc) = &self.loc {
            let text = sources
                .iter()
                .find(|(p, _)| p.display().to_string() == loc.file)
                .map(|(_, s)| s.clone())
                .or_else(|| std::fs::read_to_string(&loc.file).ok());
            out.push_str(&format!(
                "\n  on {} line {}, column {}:\n",
                loc.file, loc.line, loc.col
            ));
            if let Some(text) = text {
                if let Some(line) = text.lines().nth(loc.line.saturating_sub(1)) {
                    let line = line.trim_end();
                    let prefix = format!("  {}: ", loc.line);
                    out.push_str(&prefix);
                    out.push_str(line);
                    out.push('\n');
                    // Underline the span on this line (at least one caret).
                    let line_chars = line.chars().count();
                    let start = loc.col.saturating_sub(1).min(line_chars);
                    let width = self
                        .span
                        .as_ref()
                        .and_then(|s| {
                            let slice = text.get(s.clone())?;
                            Some(slice.lines().next().unwrap_or("").chars().count())
                        })
                        .unwrap_or(1)
                        .clamp(1, line_chars.saturating_sub(start).max(1));
                    let pad: String = line
                        .chars()
                        .take(start)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    out.push_str(&" ".repeat(prefix.chars().count()));
                    out.push_str(&pad);
                    out.push_str(&"^".repeat(width));
                    out.push('\n');
                }
            }
        }
        if let Some(d) = &self.detail {
            out.push('\n');
            out.push_str(d);
            out.push('\n');
        }
        if let Some(h) = &self.hint {
            out.push('\n');
            out.push_str("Hint: ");
            out.push_str(h);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&[]))
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found while loading a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Render every diagnostic with snippets taken from `sources`.
    pub fn render(&self, sources: &[(PathBuf, String)]) -> String {
        self.0
            .iter()
            .map(|d| d.render(sources))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&[]))
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets of one source text to 1-based line and column (columns count chars).
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path shown in diagnostics.
    pub display: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(display: String, text: String) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceFile {
            display,
            text,
            line_starts,
        }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        // Count chars up to the offset; clamp to a char boundary.
        let mut end = offset;
        while end > start && !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let col = self.text[start..end].chars().count() + 1;
        (line + 1, col)
    }

    pub fn loc(&self, offset: usize) -> SourceLoc {
        let (line, col) = self.line_col(offset);
        SourceLoc {
            file: self.display.clone(),
            line,
            col,
        }
    }

    /// A diagnostic location for a byte span (start of span).
    pub fn at(&self, span: &Option<Range<usize>>) -> (SourceLoc, Option<Range<usize>>) {
        match span {
            Some(s) => (self.loc(s.start), Some(s.clone())),
            None => (self.loc(0), None),
        }
    }
}

/// The closest candidate to `name`, if close enough to be a plausible typo.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        let dist = strsim::damerau_levenshtein(name, c);
        let close = dist <= (name.chars().count().max(c.chars().count()) / 3).max(1)
            || score >= 0.85
            || (c.len() > 3 && name.contains(c))
            || (name.len() > 3 && c.contains(name));
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// `Did you mean "x"?` text, if a candidate is close.
pub fn did_you_mean_hint<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    did_you_mean(name, candidates).map(|c| format!("did you mean \"{c}\"?"))
}
