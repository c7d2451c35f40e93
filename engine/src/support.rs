//! How long each Kubernetes minor is supported, upstream and by each provider, and the
//! plan warnings that follow from it. Pure: today's date is an input.
//!
//! Facts: `engine/data/releases.json` (upstream end of life from kubernetes/website
//! `data/releases/eol.yaml` and the release pages; EKS, AKS and GKE dates from their
//! release calendars; sources and commits inside the file).

use std::sync::OnceLock;

use serde_json::Value;
use time::{Date, Month};

use crate::version::Minor;

/// Warn this many days before support ends.
pub const WARN_DAYS: i64 = 90;

fn releases() -> &'static Vec<Value> {
    static R: OnceLock<Vec<Value>> = OnceLock::new();
    R.get_or_init(|| {
        let v: Value = serde_json::from_str(include_str!("../data/releases.json"))
            .expect("engine/data/releases.json is valid JSON");
        v["releases"].as_array().cloned().unwrap_or_default()
    })
}

/// `2024-01-31`, or `2023-07` meaning the last day of that month (as AKS prints it).
pub fn parse_date(s: &str) -> Option<Date> {
    let parts: Vec<&str> = s.split('-').collect();
    let year: i32 = parts.first()?.parse().ok()?;
    let month = Month::try_from(parts.get(1)?.parse::<u8>().ok()?).ok()?;
    match parts.get(2) {
        Some(d) => Date::from_calendar_date(year, month, d.parse().ok()?).ok(),
        None => Date::from_calendar_date(year, month, time::util::days_in_month(month, year)).ok(),
    }
}

/// The end of support that matters for `minor` on `provider` (`eks`, `aks`, `gke`; any
/// other kind: upstream), and what it is called.
pub fn end_of_support(provider: &str, minor: Minor) -> Option<(Date, String)> {
    let key = minor.to_string();
    let r = releases()
        .iter()
        .find(|r| r["minor"].as_str() == Some(&key))?;
    let pick = |v: &Value, what: &str| {
        v.as_str()
            .and_then(parse_date)
            .map(|d| (d, what.to_string()))
    };
    match provider {
        "eks" => pick(
            &r["eks"]["end_of_standard_support"],
            "end of standard support on EKS",
        )
        .or_else(|| pick(&r["upstream"]["end_of_life"], "upstream end of life")),
        "aks" => pick(&r["aks"]["end_of_life"], "end of support on AKS")
            .or_else(|| pick(&r["upstream"]["end_of_life"], "upstream end of life")),
        "gke" => pick(&r["gke"]["end_of_life"], "end of life on GKE")
            .or_else(|| pick(&r["upstream"]["end_of_life"], "upstream end of life")),
        _ => pick(
            &r["upstream"]["end_of_life"],
            "upstream end of life (no more patches)",
        ),
    }
}

/// The end of EKS extended support for `minor`.
pub fn extended_support(minor: Minor) -> Option<Date> {
    let key = minor.to_string();
    let r = releases()
        .iter()
        .find(|r| r["minor"].as_str() == Some(&key))?;
    r["eks"]["end_of_extended_support"]
        .as_str()
        .and_then(parse_date)
}

/// Plan warnings for a cluster that runs `current` and goes to `target` on `provider`.
pub fn warnings(provider: &str, current: Minor, target: Minor, today: Date) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |m: Minor, role: &str| {
        let Some((end, what)) = end_of_support(provider, m) else {
            return;
        };
        let days = (end - today).whole_days();
        if days < 0 {
            // EKS keeps past versions running for a fee until extended support ends.
            let extended = (provider == "eks")
                .then(|| extended_support(m))
                .flatten()
                .map(|e| {
                    if e < today {
                        format!("; extended support ended too ({e})")
                    } else {
                        format!("; EKS charges for extended support until {e}")
                    }
                })
                .unwrap_or_default();
            out.push(format!(
                "{role} {m} is past its {what} ({end}, {} days ago){extended}",
                -days
            ));
        } else if days <= WARN_DAYS {
            out.push(format!(
                "{role} {m} reaches its {what} on {end}, in {days} days"
            ));
        }
    };
    if current == target {
        note(current, "the cluster's version");
    } else {
        note(current, "the running version");
        note(target, "the target version");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dates_per_provider_and_warnings() {
        assert_eq!(parse_date("2023-07"), Some(date!(2023 - 07 - 31)));
        assert_eq!(parse_date("2024-02"), Some(date!(2024 - 02 - 29)));
        assert_eq!(parse_date("nope"), None);
        let (d, what) = end_of_support("eks", Minor::new(1, 24)).unwrap();
        assert_eq!(
            (d, what.as_str()),
            (date!(2024 - 01 - 31), "end of standard support on EKS")
        );
        let (d, _) = end_of_support("k3s", Minor::new(1, 24)).unwrap();
        assert_eq!(d, date!(2023 - 07 - 28));
        assert_eq!(end_of_support("eks", Minor::new(1, 99)), None);

        // Past, near, and far.
        let w = warnings(
            "eks",
            Minor::new(1, 24),
            Minor::new(1, 25),
            date!(2024 - 03 - 01),
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("the running version 1.24 is past its end of standard support on EKS (2024-01-31, 30 days ago); EKS charges for extended support until 2025-01-31"), "{w:?}");
        assert!(w[1].contains("the target version 1.25 reaches its end of standard support on EKS on 2024-05-01, in 61 days"), "{w:?}");
        assert!(warnings(
            "eks",
            Minor::new(1, 25),
            Minor::new(1, 25),
            date!(2023 - 01 - 01)
        )
        .is_empty());
    }
}
