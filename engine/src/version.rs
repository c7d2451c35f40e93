//! Kubernetes versions as users and providers write them.
//!
//! Accepted forms: `1.30`, `1.30.4`, `v1.30.4`, `1.30.4-eks-1234abc`, `v1.30.4+k3s1`.
//! A version without a patch is a *minor alias*: it stands for "the newest patch of that
//! minor the provider offers" when used as a target, and compares at minor precision.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes minor release, e.g. 1.30. Ordering is numeric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    pub major: u32,
    pub minor: u32,
}

impl Minor {
    pub const fn new(major: u32, minor: u32) -> Self {
        Minor { major, minor }
    }

    /// The next minor (1.30 → 1.31).
    pub fn next(self) -> Minor {
        Minor::new(self.major, self.minor + 1)
    }

    /// `self - n` minors, saturating at x.0.
    pub fn minus(self, n: u32) -> Minor {
        Minor::new(self.major, self.minor.saturating_sub(n))
    }

    /// Number of minors from `other` up to `self` (negative when `self` is older).
    /// Only meaningful within one major, which is all Kubernetes has ever had.
    pub fn distance_from(self, other: Minor) -> i64 {
        if self.major != other.major {
            return (self.major as i64 - other.major as i64) * 1000;
        }
        self.minor as i64 - other.minor as i64
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Minor {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: Version = s.parse()?;
        Ok(v.minor())
    }
}

impl Serialize for Minor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Minor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Minor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Minor".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]+\\.[0-9]+$", "description": "A Kubernetes minor version, e.g. 1.30"})
    }
}

/// A Kubernetes version with optional patch and an optional provider suffix
/// (`-eks-1234abc`, `+k3s1`). The suffix is kept for display but is not part of
/// the ordering except as a final tie-break, so `1.30.4-eks-1` and `1.30.4` are
/// the same Kubernetes release.
#[derive(Clone, Debug, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
    /// Everything after the numeric part, including its leading `-` or `+`.
    pub suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("`{input}` is not a Kubernetes version: {why}; write it as MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. \"1.31\" or \"1.31.2\"")]
    Malformed { input: String, why: String },
    #[error("`{input}` is not a Kubernetes 1.x version; every Kubernetes release so far is 1.MINOR (e.g. \"1.31\")")]
    UnknownMajor { input: String },
}

impl Version {
    pub fn new(major: u32, minor: u32, patch: Option<u32>) -> Self {
        Version {
            major,
            minor,
            patch,
            suffix: None,
        }
    }

    pub fn minor(&self) -> Minor {
        Minor::new(self.major, self.minor)
    }

    /// True when this is a bare minor (`1.30`) rather than an exact release.
    pub fn is_minor_alias(&self) -> bool {
        self.patch.is_none()
    }

    /// Does `actual` satisfy this version at the precision it was written with?
    /// `1.30` is satisfied by any 1.30.x; `1.30.4` only by 1.30.4 (any suffix), or by a
    /// bare `1.30` when the provider reports only minors (EKS control planes do).
    pub fn satisfied_by(&self, actual: &Version) -> bool {
        if self.minor() != actual.minor() {
            return false;
        }
        match (self.patch, actual.patch) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        }
    }

    /// The version without provider suffix, e.g. `1.30.4`.
    pub fn plain(&self) -> String {
        match self.patch {
            Some(p) => format!("{}.{}.{}", self.major, self.minor, p),
            None => format!("{}.{}", self.major, self.minor),
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.major, self.minor, self.patch, &self.suffix).hash(state)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor)
            .cmp(&(other.major, other.minor))
            // A bare minor sorts before every patch of it.
            .then_with(|| self.patch.cmp(&other.patch))
            .then_with(|| natural_cmp(self.suffix.as_deref(), other.suffix.as_deref()))
    }
}

/// Order provider suffixes with their numbers as numbers: `-gke.999` < `-gke.1014001`,
/// `-eksbuild.9` < `-eksbuild.10`. No suffix sorts first.
fn natural_cmp(a: Option<&str>, b: Option<&str>) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Less,
        (Some(_), None) => return Ordering::Greater,
        (Some(a), Some(b)) => (a, b),
    };
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, ra), (db, rb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db {
            let (ta, tb) = (ra.trim_start_matches('0'), rb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            ra.cmp(rb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.plain())?;
        if let Some(s) = &self.suffix {
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = |why: &str| VersionError::Malformed {
            input: input.to_string(),
            why: why.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(malformed("it is empty"));
        }
        let s = s.strip_prefix('v').unwrap_or(s);
        // Split off a provider suffix at the first '-' or '+' after the numeric part.
        let numeric_end = s.find(['-', '+']).unwrap_or(s.len());
        let (numeric, suffix) = s.split_at(numeric_end);
        let parts: Vec<&str> = numeric.split('.').collect();
        if parts.len() < 2 {
            return Err(malformed("it needs at least a major and a minor part"));
        }
        if parts.len() > 3 {
            return Err(malformed("it has more than three numeric parts"));
        }
        let num = |p: &str, what: &str| -> Result<u32, VersionError> {
            if p.is_empty() {
                return Err(malformed(&format!("the {what} part is empty")));
            }
            if let Some(bad) = p.chars().find(|c| !c.is_ascii_digit()) {
                return Err(malformed(&format!(
                    "the {what} part `{p}` contains `{bad}`, which is not a digit"
                )));
            }
            p.parse::<u32>()
                .map_err(|_| malformed(&format!("the {what} part `{p}` is too large")))
        };
        let major = num(parts[0], "major")?;
        let minor = num(parts[1], "minor")?;
        let patch = match parts.get(2) {
            Some(p) => Some(num(p, "patch")?),
            None => None,
        };
        if !suffix.is_empty() && suffix.len() == 1 {
            return Err(malformed("the suffix after `-`/`+` is empty"));
        }
        if major != 1 {
            return Err(VersionError::UnknownMajor {
                input: input.to_string(),
            });
        }
        Ok(Version {
            major,
            minor,
            patch,
            suffix: (!suffix.is_empty()).then(|| suffix.to_string()),
        })
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Version {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Version".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "A Kubernetes version: 1.30, 1.30.4, v1.30.4-eks-1234abc, v1.30.4+k3s1"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("1.30", 1, 30, None, None),
            ("1.30.4", 1, 30, Some(4), None),
            ("v1.30.4", 1, 30, Some(4), None),
            ("1.30.4-eks-1234abc", 1, 30, Some(4), Some("-eks-1234abc")),
            ("v1.30.4+k3s1", 1, 30, Some(4), Some("+k3s1")),
            ("1.28.5-20240307", 1, 28, Some(5), Some("-20240307")),
        ];
        for (input, major, minor, patch, suffix) in cases {
            let got = v(input);
            assert_eq!(
                (got.major, got.minor, got.patch, got.suffix.as_deref()),
                (major, minor, patch, suffix),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_malformed_with_reason() {
        let err = "1.3O".parse::<Version>().unwrap_err().to_string();
        assert!(err.contains("`3O` contains `O`"), "{err}");
        assert!(err.contains("e.g. \"1.31\""), "{err}");
        let err = "2.0".parse::<Version>().unwrap_err().to_string();
        assert!(err.contains("not a Kubernetes 1.x version"), "{err}");
        for bad in ["", "1", "1.", "1.2.3.4", "v", "1.30-", "x.y"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn orders_numerically_not_lexically() {
        let mut vs = [
            v("1.9"),
            v("1.30.10"),
            v("1.30.4"),
            v("1.30"),
            v("1.10.1"),
            v("v1.31.0+k3s1"),
        ];
        vs.sort();
        let shown: Vec<String> = vs.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            shown,
            ["1.9", "1.10.1", "1.30", "1.30.4", "1.30.10", "1.31.0+k3s1"]
        );
        assert!(v("1.30.4-eks-1") > v("1.30.4"));
        // Build numbers compare as numbers, not text.
        assert!(v("1.30.5-gke.999") < v("1.30.5-gke.1014001"));
        assert!(v("1.28.4-eksbuild.9") < v("1.28.4-eksbuild.10"));
        assert!(v("1.28.4-eksbuild.10") > v("1.28.4-eksbuild.9"));
        assert_eq!(v("1.30.5-gke.100"), v("1.30.5-gke.100"));
        assert!(Minor::new(1, 9) < Minor::new(1, 10));
    }

    #[test]
    fn satisfaction_respects_declared_precision() {
        assert!(v("1.30").satisfied_by(&v("1.30.7")));
        assert!(v("1.30.4").satisfied_by(&v("v1.30.4-eks-abc")));
        assert!(!v("1.30.4").satisfied_by(&v("1.30.5")));
        assert!(v("1.30.4").satisfied_by(&v("1.30")));
        assert!(!v("1.30").satisfied_by(&v("1.31.0")));
    }

    #[test]
    fn minor_arithmetic() {
        let m = Minor::new(1, 28);
        assert_eq!(m.next(), Minor::new(1, 29));
        assert_eq!(m.minus(3), Minor::new(1, 25));
        assert_eq!(Minor::new(1, 31).distance_from(m), 3);
        assert_eq!(m.distance_from(Minor::new(1, 31)), -3);
    }

    #[test]
    fn serde_round_trip() {
        let x = v("v1.30.4+k3s1");
        let s = serde_json::to_string(&x).unwrap();
        assert_eq!(s, "\"1.30.4+k3s1\"");
        let back: Version = serde_json::from_str(&s).unwrap();
        assert_eq!(back, x);
    }
}
