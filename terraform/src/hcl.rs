//! kup HCL written from Terraform values, remembering which Terraform attribute each line
//! came from. kup's own configuration loader then checks and evaluates it, so a
//! `kup_cluster` means exactly what the same `cluster` block means to `kup plan`, and a
//! loader diagnostic at `cluster.kup.hcl:7:3` turns back into the attribute path
//! `node_group[0].max_unavailable`.

use tf_provider::AttributePath;

/// A kup HCL file being written.
#[derive(Default)]
pub struct HclWriter {
    text: String,
    /// The attribute path of each line (index = line - 1); `None`: no single attribute.
    lines: Vec<Option<AttributePath>>,
    depth: usize,
}

/// One step of a path, kept in a form that can be cloned into `AttributePath`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Attr(String),
    Index(i64),
}

/// A path made of owned steps (`AttributePath` wants `'static` names).
pub fn path(steps: &[Step]) -> AttributePath {
    let mut p = AttributePath::root();
    for s in steps {
        p = match s {
            Step::Attr(a) => p.attribute(a.clone()),
            Step::Index(i) => p.index(*i),
        };
    }
    p
}

/// The text of a quoted HCL string holding `s` literally (no interpolation).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `${` and `%{` start templates in HCL; doubling the sigil keeps them literal.
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl HclWriter {
    fn line(&mut self, text: &str, at: Option<AttributePath>) {
        for _ in 0..self.depth {
            self.text.push_str("  ");
        }
        self.text.push_str(text);
        self.text.push('\n');
        self.lines.push(at);
    }

    /// `name "label" {` (or `name {` without a label), attributed to `at`.
    pub fn open(&mut self, name: &str, label: Option<&str>, at: Option<AttributePath>) {
        let head = match label {
            Some(l) => format!("{name} {} {{", quote(l)),
            None => format!("{name} {{"),
        };
        self.line(&head, at);
        self.depth += 1;
    }

    pub fn close(&mut self) {
        self.depth -= 1;
        self.line("}", None);
    }

    /// `key = <expr>` where `expr` is already HCL.
    pub fn raw(&mut self, key: &str, expr: &str, at: AttributePath) {
        self.line(&format!("{key} = {expr}"), Some(at));
    }

    pub fn string(&mut self, key: &str, value: Option<&str>, at: AttributePath) {
        if let Some(v) = value {
            self.raw(key, &quote(v), at);
        }
    }

    pub fn bool(&mut self, key: &str, value: Option<bool>, at: AttributePath) {
        if let Some(v) = value {
            self.raw(key, if v { "true" } else { "false" }, at);
        }
    }

    pub fn number(&mut self, key: &str, value: Option<f64>, at: AttributePath) {
        if let Some(v) = value {
            self.raw(key, &v.to_string(), at);
        }
    }

    pub fn strings(&mut self, key: &str, values: Option<&[String]>, at: AttributePath) {
        if let Some(v) = values {
            let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
            self.raw(key, &format!("[{}]", items.join(", ")), at);
        }
    }

    /// A count or a percentage (`max_unavailable = 2` or `"25%"`): kup's HCL takes both.
    pub fn count_or_percent(&mut self, key: &str, value: Option<&str>, at: AttributePath) {
        if let Some(v) = value {
            match v.trim().parse::<i64>() {
                Ok(n) => self.raw(key, &n.to_string(), at),
                Err(_) => self.raw(key, &quote(v), at),
            }
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The attribute a 1-based line was written for (the nearest enclosing block's when the
    /// line has none of its own).
    pub fn path_of_line(&self, line: usize) -> Option<AttributePath> {
        let i = line.checked_sub(1)?;
        if let Some(Some(p)) = self.lines.get(i) {
            return Some(p.clone());
        }
        // A closing brace or a line past the end: the innermost block opened before it
        // that is still open there.
        let mut depth = 0usize;
        for j in (0..i.min(self.lines.len())).rev() {
            let l = self.text.lines().nth(j).unwrap_or("");
            if l.trim_end().ends_with('}') && !l.trim_end().ends_with('{') {
                depth += 1;
            } else if l.trim_end().ends_with('{') {
                if depth == 0 {
                    return self.lines[j].clone();
                }
                depth -= 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_templates_literal() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("${x}"), "\"$${x}\"");
        assert_eq!(quote("%{if}"), "\"%%{if}\"");
        assert_eq!(quote("50%"), "\"50%\"");
    }

    #[test]
    fn lines_map_back_to_attribute_paths() {
        let mut w = HclWriter::default();
        w.open("cluster", Some("prod"), Some(AttributePath::root()));
        w.string("version", Some("1.30"), AttributePath::new("version"));
        let ng = path(&[Step::Attr("node_group".into()), Step::Index(1)]);
        w.open("node_group", Some("general"), Some(ng.clone()));
        w.count_or_percent(
            "max_unavailable",
            Some("25%"),
            ng.clone().attribute("max_unavailable"),
        );
        w.count_or_percent("max_surge", Some("2"), ng.clone().attribute("max_surge"));
        w.close();
        w.close();
        assert_eq!(
            w.text(),
            "cluster \"prod\" {\n  version = \"1.30\"\n  node_group \"general\" {\n    max_unavailable = \"25%\"\n    max_surge = 2\n  }\n}\n"
        );
        assert_eq!(w.path_of_line(2), Some(AttributePath::new("version")));
        assert_eq!(
            w.path_of_line(4),
            Some(ng.clone().attribute("max_unavailable"))
        );
        // The closing brace of the node group belongs to the node group.
        assert_eq!(w.path_of_line(6), Some(ng));
    }
}
