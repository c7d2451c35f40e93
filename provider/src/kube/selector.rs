//! Label selectors as `kubectl -l` / `--pod-selector` write them: `a=b`, `a==b`, `a!=b`,
//! `a`, `!a`, `a in (x,y)`, `a notin (x)`, joined by commas (all must hold).

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LabelSelector(Vec<Req>);

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced `)`".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(key: &str, rest: &str, input: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("`{input}`: expected `{key} in (v1,v2)`"))?;
    let vals: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if let Some(bad) = vals.iter().find(|v| !valid_value(v)) {
        return Err(format!("`{input}`: invalid label value `{bad}`"));
    }
    Ok(vals)
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        if input.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(input).map_err(|e| format!("label selector `{input}`: {e}"))? {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!("label selector `{input}`: empty requirement"));
            }
            let bad = |why: &str| format!("label selector `{input}`: `{p}`: {why}");
            let req = if let Some(k) = p.strip_prefix('!') {
                let k = k.trim();
                if !valid_key(k) {
                    return Err(bad("invalid label key"));
                }
                Req::NotExists(k.to_string())
            } else if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                Req::NotIn(k.trim().to_string(), parse_set(k, rest, input)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                Req::In(k.trim().to_string(), parse_set(k, rest, input)?)
            } else {
                Req::Exists(p.to_string())
            };
            match &req {
                Req::Eq(k, v) | Req::NotEq(k, v) => {
                    if !valid_key(k) {
                        return Err(bad("invalid label key"));
                    }
                    if !valid_value(v) {
                        return Err(bad("invalid label value"));
                    }
                }
                Req::Exists(k) | Req::In(k, _) | Req::NotIn(k, _) if !valid_key(k) => {
                    return Err(bad("invalid label key"));
                }
                _ => {}
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// The selector as a Kubernetes `LabelSelector` object (`matchLabels` for `k=v`,
    /// `matchExpressions` for the rest), e.g. for a system-upgrade-controller Plan.
    pub fn to_json(&self) -> serde_json::Value {
        let mut labels = serde_json::Map::new();
        let mut exprs = Vec::new();
        let expr = |k: &str, op: &str, vs: Option<&[String]>| {
            let mut e = serde_json::json!({ "key": k, "operator": op });
            if let Some(vs) = vs {
                e["values"] = serde_json::json!(vs);
            }
            e
        };
        for r in &self.0 {
            match r {
                Req::Eq(k, v) => {
                    labels.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
                Req::NotEq(k, v) => exprs.push(expr(k, "NotIn", Some(std::slice::from_ref(v)))),
                Req::Exists(k) => exprs.push(expr(k, "Exists", None)),
                Req::NotExists(k) => exprs.push(expr(k, "DoesNotExist", None)),
                Req::In(k, vs) => exprs.push(expr(k, "In", Some(vs))),
                Req::NotIn(k, vs) => exprs.push(expr(k, "NotIn", Some(vs))),
            }
        }
        let mut out = serde_json::Map::new();
        if !labels.is_empty() {
            out.insert("matchLabels".into(), serde_json::Value::Object(labels));
        }
        if !exprs.is_empty() {
            out.insert("matchExpressions".into(), serde_json::Value::Array(exprs));
        }
        serde_json::Value::Object(out)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
            Req::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let web = l(&[("app", "web"), ("tier", "front")]);
        let db = l(&[("app", "db")]);
        for (sel, w, d) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web, db)", true, true),
            ("app notin (web)", false, true),
            ("app in (web,db),tier", true, false),
            ("app=web, tier=front", true, false),
            ("example.com/role!=x", true, true),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&web), w, "{sel} vs web");
            assert_eq!(s.matches(&db), d, "{sel} vs db");
        }
        for bad in [
            "app=web,",
            "app in web",
            "a=(b",
            "=x",
            "app=we b",
            "app in (a",
            "!",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
