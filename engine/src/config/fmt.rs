//! `kup fmt`: canonical layout like `terraform fmt`.
//!
//! A line-based formatter that understands strings, interpolations, heredocs and comments:
//! - indentation is two spaces per open `{`, `[` or `(` (a line's leading closers count first);
//! - `key = value` gets one space on each side of `=`, and the `=` of consecutive single-line
//!   attributes at the same indentation is aligned (a blank line, a comment line, a block
//!   or a multi-line value ends the run);
//! - trailing whitespace is removed (except inside heredocs, whose lines are kept verbatim),
//!   line endings become `\n`, and the file ends with exactly one newline;
//! - comments are kept verbatim.
//!
//! The result is checked to parse to the same body as the input.

use super::diag::{Diagnostic, SourceFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An open `{`, `[` or `(`.
    Bracket,
    /// Inside a quoted string.
    Str,
    /// Inside `${ ... }` or `%{ ... }` in a string.
    Interp,
}

struct Scanner {
    stack: Vec<Mode>,
    block_comment: bool,
    /// Heredoc delimiters opened on the current line, waiting for the line to end.
    pending_heredocs: Vec<String>,
}

impl Scanner {
    fn brackets(&self) -> usize {
        self.stack.iter().filter(|m| **m == Mode::Bracket).count()
    }

    fn in_string(&self) -> bool {
        matches!(self.stack.last(), Some(Mode::Str))
    }

    /// Scan one line (without its newline), updating the state.
    fn scan(&mut self, line: &str) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if self.block_comment {
                if c == '*' && next == Some('/') {
                    self.block_comment = false;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            match self.stack.last() {
                Some(Mode::Str) => {
                    match (c, next) {
                        ('\\', _) => i += 1,
                        ('"', _) => {
                            self.stack.pop();
                        }
                        ('$', Some('$')) | ('%', Some('%')) if chars.get(i + 2) == Some(&'{') => {
                            i += 2;
                        }
                        ('$', Some('{')) | ('%', Some('{')) => {
                            self.stack.push(Mode::Interp);
                            i += 1;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                _ => {
                    match (c, next) {
                        ('#', _) | ('/', Some('/')) => return,
                        ('/', Some('*')) => {
                            self.block_comment = true;
                            i += 1;
                        }
                        ('"', _) => self.stack.push(Mode::Str),
                        ('{', _) | ('[', _) | ('(', _) => self.stack.push(Mode::Bracket),
                        ('}', _) if self.stack.last() == Some(&Mode::Interp) => {
                            self.stack.pop();
                        }
                        ('}', _) | (']', _) | (')', _)
                            if self.stack.last() == Some(&Mode::Bracket) =>
                        {
                            self.stack.pop();
                        }
                        ('<', Some('<')) => {
                            // Heredoc: <<ID or <<-ID up to the end of the line.
                            let rest: String = chars[i + 2..].iter().collect();
                            let rest = rest.strip_prefix('-').unwrap_or(&rest);
                            let id: String = rest
                                .chars()
                                .take_while(|ch| ch.is_alphanumeric() || *ch == '_' || *ch == '-')
                                .collect();
                            if !id.is_empty() && rest[id.len()..].trim().is_empty() {
                                self.pending_heredocs.push(id);
                                return;
                            }
                            i += 1;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
        }
    }
}

struct Line {
    indent: usize,
    /// `Some((key, rest))` for an alignable single-line attribute.
    attr: Option<(String, String)>,
    /// The text (already trimmed) when not an attribute, or verbatim text.
    text: String,
    verbatim: bool,
}

/// Split `key = value` (key an identifier or a quoted string; `=` not `==`).
fn split_attr(content: &str) -> Option<(String, String)> {
    let key_end = if let Some(rest) = content.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, ch) in rest.char_indices() {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                end = Some(i + 2);
                break;
            }
        }
        end?
    } else {
        let n: usize = content
            .char_indices()
            .take_while(|(_, ch)| ch.is_alphanumeric() || *ch == '_' || *ch == '-')
            .map(|(_, ch)| ch.len_utf8())
            .sum();
        if n == 0 || !content.chars().next()?.is_alphabetic() && !content.starts_with('_') {
            return None;
        }
        n
    };
    let key = &content[..key_end];
    let after = content[key_end..].trim_start();
    let value = after.strip_prefix('=')?;
    if value.starts_with('=') || value.starts_with('>') {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_string(), value.to_string()))
}

/// Canonical formatting for `kup fmt`. Errors when `src` does not parse.
pub fn format_source(src: &str) -> Result<String, Diagnostic> {
    let file = SourceFile::new("<input>".into(), src.to_string());
    if let Err(e) = hcl::edit::parser::parse_body(src) {
        let mut off = e.location().offset().min(src.len());
        while !src.is_char_boundary(off) {
            off -= 1;
        }
        let end = src[off..]
            .char_indices()
            .nth(1)
            .map_or(src.len(), |(i, _)| off + i);
        let loc = file.loc(off);
        let loc = crate::model::SourceLoc {
            line: e.location().line(),
            col: e.location().column(),
            ..loc
        };
        return Err(Diagnostic::error("Syntax error")
            .detail(format!("The file could not be parsed: {}.", e.message()))
            .hint("fix the syntax error before formatting")
            .at(loc, Some(off..end)));
    }
    let text = src.replace("\r\n", "\n");
    let mut sc = Scanner {
        stack: Vec::new(),
        block_comment: false,
        pending_heredocs: Vec::new(),
    };
    let mut heredoc: Vec<String> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    for raw in text.split('\n') {
        if let Some(id) = heredoc.first() {
            let done = raw.trim() == id;
            lines.push(Line {
                indent: 0,
                attr: None,
                text: raw.to_string(),
                verbatim: true,
            });
            if done {
                heredoc.remove(0);
            }
            continue;
        }
        if sc.block_comment || sc.in_string() || sc.stack.last() == Some(&Mode::Interp) {
            lines.push(Line {
                indent: 0,
                attr: None,
                text: raw.trim_end().to_string(),
                verbatim: true,
            });
            sc.scan(raw);
            heredoc.append(&mut sc.pending_heredocs);
            continue;
        }
        let content = raw.trim();
        let leading_closers = content
            .chars()
            .take_while(|c| matches!(c, '}' | ']' | ')'))
            .count();
        let indent = sc.brackets().saturating_sub(leading_closers);
        let before = sc.stack.clone();
        let body_context = matches!(before.last(), None | Some(Mode::Bracket));
        sc.scan(content);
        let balanced = sc.stack == before && sc.pending_heredocs.is_empty() && !sc.block_comment;
        heredoc.append(&mut sc.pending_heredocs);
        let attr = if body_context && balanced {
            split_attr(content)
        } else {
            None
        };
        lines.push(Line {
            indent,
            attr,
            text: content.to_string(),
            verbatim: false,
        });
    }

    // Align `=` across runs of consecutive single-line attributes at the same indentation.
    let mut out_lines: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].attr.is_some() {
            let mut j = i;
            while j < lines.len() && lines[j].attr.is_some() && lines[j].indent == lines[i].indent {
                j += 1;
            }
            let width = lines[i..j]
                .iter()
                .map(|l| l.attr.as_ref().map_or(0, |(k, _)| k.chars().count()))
                .max()
                .unwrap_or(0);
            for l in &lines[i..j] {
                let (k, v) = l.attr.as_ref().expect("attr line");
                let pad = width - k.chars().count();
                out_lines.push(format!(
                    "{}{}{} = {}",
                    "  ".repeat(l.indent),
                    k,
                    " ".repeat(pad),
                    v
                ));
            }
            i = j;
            continue;
        }
        let l = &lines[i];
        if l.verbatim {
            out_lines.push(l.text.clone());
        } else if l.text.is_empty() {
            out_lines.push(String::new());
        } else {
            out_lines.push(format!("{}{}", "  ".repeat(l.indent), l.text));
        }
        i += 1;
    }
    while out_lines.last().is_some_and(|l| l.is_empty()) {
        out_lines.pop();
    }
    let mut out = out_lines.join("\n");
    out.push('\n');
    if out.trim().is_empty() {
        out = String::new();
    }

    // Safety net: formatting must not change meaning.
    let before: Result<hcl::Body, _> = hcl::from_str(&text);
    let after: Result<hcl::Body, _> = hcl::from_str(&out);
    match (before, after) {
        (Ok(a), Ok(b)) if a == b => Ok(out),
        _ => Err(Diagnostic::error("kup fmt could not format this file safely")
            .detail("The formatted text would not parse to the same configuration; the file was left as it is.")
            .hint("please report this with the file attached")),
    }
}
