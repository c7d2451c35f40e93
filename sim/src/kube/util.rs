//! Small helpers: Kubernetes timestamps, quantities, durations, names.

use serde_json::Value;
use time::OffsetDateTime;

/// RFC 3339 with second precision, as `metav1.Time` serialises.
pub fn k8s_time(t: f64) -> String {
    let secs = t.floor() as i64;
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Parse a `metav1.Time` back to epoch seconds.
pub fn parse_k8s_time(s: &str) -> Option<f64> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp_nanos() as f64 / 1e9)
}

/// CPU quantity in millicores.
pub fn cpu_milli(q: &str) -> i64 {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().map(|v| v.round() as i64).unwrap_or(0);
    }
    q.parse::<f64>()
        .map(|v| (v * 1000.0).round() as i64)
        .unwrap_or(0)
}

/// Memory (or any byte) quantity in bytes.
pub fn bytes(q: &str) -> i64 {
    let q = q.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 0.001),
    ];
    for (s, mul) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().map(|v| (v * mul) as i64).unwrap_or(0);
        }
    }
    q.parse::<f64>().map(|v| v as i64).unwrap_or(0)
}

/// `kubectl`'s `duration.HumanDuration`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as i64;
    if s < 60 * 2 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rs = s % 60;
        return if rs == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rs}s")
        };
    }
    if m < 60 * 3 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rm = m % 60;
        return if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rh = h % 24;
        return if rh == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, rh)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / 24 / 365)
}

pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Characters Kubernetes uses for generated name suffixes (`rand.SafeEncodeString`).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A `pod-template-hash`-like string derived from `seed`.
pub fn safe_hash(seed: &str, len: usize) -> String {
    let mut h = fnv(seed);
    let mut out = String::new();
    for i in 0..len {
        if i > 0 && i % 12 == 0 {
            h = fnv(&format!("{seed}{i}{h}"));
        }
        out.push(SAFE[(h % SAFE.len() as u64) as usize] as char);
        h /= SAFE.len() as u64;
    }
    out
}

/// A random `generateName` suffix.
pub fn random_suffix(rng: &mut impl rand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| SAFE[rng.random_range(0..SAFE.len())] as char)
        .collect()
}

/// `obj.metadata.name`.
pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or("")
}

/// The controller owner reference (kind, name, uid), if any.
pub fn controller_of(o: &Value) -> Option<(&str, &str, &str)> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["uid"].as_str().unwrap_or(""),
            )
        })
}

/// Pod is Ready (condition) and not terminating.
pub fn pod_healthy(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null() && pod_ready(p)
}

pub fn pod_ready(p: &Value) -> bool {
    condition_true(&p["status"]["conditions"], "Ready")
}

pub fn condition_true(conds: &Value, t: &str) -> bool {
    conds
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

pub fn node_ready(n: &Value) -> bool {
    condition_true(&n["status"]["conditions"], "Ready")
}

/// Resolve an int-or-percent against `total`, rounding up (as the disruption controller).
pub fn scaled(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            if let Some(p) = s.strip_suffix('%') {
                let p: f64 = p.parse().ok()?;
                let x = p * total as f64 / 100.0;
                Some(if round_up { x.ceil() } else { x.floor() } as i64)
            } else {
                s.parse().ok()
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_milli("250m"), 250);
        assert_eq!(cpu_milli("2"), 2000);
        assert_eq!(cpu_milli("0.5"), 500);
        assert_eq!(bytes("256Mi"), 256 * 1024 * 1024);
        assert_eq!(bytes("1G"), 1_000_000_000);
        assert_eq!(bytes("1024"), 1024);
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(human_duration(5.0), "5s");
        assert_eq!(human_duration(150.0), "2m30s");
        assert_eq!(human_duration(3600.0 * 5.0), "5h");
        assert_eq!(human_duration(86400.0 * 3.0), "3d");
        assert_eq!(k8s_time(0.5), "1970-01-01T00:00:00Z");
        assert_eq!(parse_k8s_time("1970-01-01T00:01:00Z"), Some(60.0));
        assert_eq!(scaled(&Value::from("25%"), 6, true), Some(2));
        assert_eq!(safe_hash("x", 10).len(), 10);
    }
}
