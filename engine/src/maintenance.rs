//! Maintenance windows and exclusions as a provider reports them (GKE's
//! maintenancePolicy), and whether a moment falls inside them. Pure: the caller passes
//! the time, so plans stay reproducible and tests need no clock.
//!
//! GKE applies windows and exclusions to its *automatic* upgrades only; an upgrade a
//! user starts runs at any time. kup therefore only warns by default, and refuses with
//! `kup apply -respect-maintenance-window`, for teams that promised their users quiet
//! periods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Weekday};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenancePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<MaintenanceWindow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<MaintenanceExclusion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MaintenanceWindow {
    /// Every day from `start_time` (`HH:MM`, UTC) for `duration_secs`.
    Daily {
        start_time: String,
        duration_secs: u64,
    },
    /// The window `start_time`..`end_time` (RFC 3339), repeated by an RFC 5545 RRULE.
    Recurring {
        start_time: String,
        end_time: String,
        recurrence: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceExclusion {
    pub name: String,
    pub start_time: String,
    pub end_time: String,
    /// `NO_UPGRADES`, `NO_MINOR_UPGRADES` or `NO_MINOR_OR_NODE_UPGRADES`.
    pub scope: String,
}

/// Where a moment falls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No window and no exclusion applies: any time is maintenance time.
    Unrestricted,
    Inside,
    Outside {
        next_start: Option<OffsetDateTime>,
    },
    Excluded {
        name: String,
        scope: String,
        until: OffsetDateTime,
    },
    /// kup cannot evaluate this window (an RRULE beyond FREQ=DAILY/WEEKLY[;BYDAY]).
    Unknown(String),
}

impl Verdict {
    /// The sentence for plan warnings and refusals, or `None` when all is well.
    pub fn problem(&self) -> Option<String> {
        let fmt = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        match self {
            Verdict::Unrestricted | Verdict::Inside => None,
            Verdict::Outside { next_start } => Some(match next_start {
                Some(t) => format!(
                    "now is outside the cluster's maintenance window (the next one starts {})",
                    fmt(t)
                ),
                None => "now is outside the cluster's maintenance window".to_string(),
            }),
            Verdict::Excluded { name, scope, until } => Some(format!(
                "now is inside the cluster's maintenance exclusion \"{name}\" ({scope}, until {})",
                fmt(until)
            )),
            Verdict::Unknown(why) => Some(format!(
                "kup cannot tell whether now is inside the cluster's maintenance window: {why}"
            )),
        }
    }
}

fn parse(t: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(t, &Rfc3339).map_err(|e| format!("`{t}` is not an RFC 3339 time: {e}"))
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

/// Occurrence starts of a recurring window that could cover `now` or come next: the
/// first window's time of day on each candidate day the rule allows.
fn occurrences(
    first: OffsetDateTime,
    rule: &str,
    now: OffsetDateTime,
) -> Result<Vec<OffsetDateTime>, String> {
    let mut freq = None;
    let mut days: Vec<Weekday> = Vec::new();
    for part in rule.trim().trim_start_matches("RRULE:").split(';') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k {
            "FREQ" => freq = Some(v.to_string()),
            "BYDAY" => {
                for d in v.split(',') {
                    days.push(weekday(d).ok_or_else(|| format!("BYDAY `{d}` in `{rule}`"))?);
                }
            }
            "" | "WKST" => {}
            other => return Err(format!("`{other}` in `{rule}`")),
        }
    }
    let allowed: Box<dyn Fn(Weekday) -> bool> = match freq.as_deref() {
        Some("DAILY") if days.is_empty() => Box::new(|_| true),
        Some("DAILY") | Some("WEEKLY") if !days.is_empty() => Box::new(move |d| days.contains(&d)),
        Some("WEEKLY") => {
            let d = first.weekday();
            Box::new(move |x| x == d)
        }
        _ => return Err(format!("FREQ in `{rule}`")),
    };
    // From eight days back to eight days ahead covers any window under a week long.
    let mut out = Vec::new();
    for offset in -8i64..=8 {
        let day = now.date() + Duration::days(offset);
        let start = day.with_time(first.time()).assume_offset(first.offset());
        if start >= first && allowed(start.weekday()) {
            out.push(start);
        }
    }
    Ok(out)
}

/// Where `now` falls under `policy`. Exclusions win over windows.
pub fn check(policy: &MaintenancePolicy, now: OffsetDateTime) -> Verdict {
    for x in &policy.exclusions {
        // An exclusion without an end lasts until it is removed.
        let end = if x.end_time.trim().is_empty() {
            Ok(OffsetDateTime::now_utc().max(now) + Duration::days(36500))
        } else {
            parse(&x.end_time)
        };
        match (parse(&x.start_time), end) {
            (Ok(s), Ok(e)) if s <= now && now < e => {
                return Verdict::Excluded {
                    name: x.name.clone(),
                    scope: x.scope.clone(),
                    until: e,
                }
            }
            (Err(m), _) | (_, Err(m)) => return Verdict::Unknown(m),
            _ => {}
        }
    }
    let (starts, length) = match &policy.window {
        None => return Verdict::Unrestricted,
        Some(MaintenanceWindow::Daily {
            start_time,
            duration_secs,
        }) => {
            let Some((h, m)) = start_time
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
            else {
                return Verdict::Unknown(format!("daily start `{start_time}` is not HH:MM"));
            };
            let Ok(t) = time::Time::from_hms(h, m, 0) else {
                return Verdict::Unknown(format!("daily start `{start_time}` is not HH:MM"));
            };
            let starts = (-1i64..=1)
                .map(|o| {
                    (now.date() + Duration::days(o))
                        .with_time(t)
                        .assume_utc()
                        .to_offset(now.offset())
                })
                .collect::<Vec<_>>();
            (starts, Duration::seconds(*duration_secs as i64))
        }
        Some(MaintenanceWindow::Recurring {
            start_time,
            end_time,
            recurrence,
        }) => {
            let (first, end) = match (parse(start_time), parse(end_time)) {
                (Ok(s), Ok(e)) => (s, e),
                (Err(m), _) | (_, Err(m)) => return Verdict::Unknown(m),
            };
            match occurrences(first, recurrence, now) {
                Ok(starts) => (starts, end - first),
                Err(m) => return Verdict::Unknown(format!("unsupported recurrence: {m}")),
            }
        }
    };
    if starts.iter().any(|s| *s <= now && now < *s + length) {
        return Verdict::Inside;
    }
    Verdict::Outside {
        next_start: starts.into_iter().filter(|s| *s > now).min(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> OffsetDateTime {
        parse(t).unwrap()
    }

    fn weekend() -> MaintenancePolicy {
        MaintenancePolicy {
            window: Some(MaintenanceWindow::Recurring {
                start_time: "2026-01-03T01:00:00Z".into(),
                end_time: "2026-01-03T05:00:00Z".into(),
                recurrence: "FREQ=WEEKLY;BYDAY=SA,SU".into(),
            }),
            exclusions: vec![],
        }
    }

    #[test]
    fn weekly_window_by_day() {
        // 2026-11-21 is a Saturday, 2026-11-23 a Monday.
        assert_eq!(
            check(&weekend(), at("2026-11-21T02:00:00Z")),
            Verdict::Inside
        );
        assert_eq!(
            check(&weekend(), at("2026-11-22T04:59:59Z")),
            Verdict::Inside
        );
        assert_eq!(
            check(&weekend(), at("2026-11-23T02:00:00Z")),
            Verdict::Outside {
                next_start: Some(at("2026-11-28T01:00:00Z"))
            }
        );
        // Before the first occurrence there is no window yet.
        assert!(matches!(
            check(&weekend(), at("2025-12-27T02:00:00Z")),
            Verdict::Outside { .. }
        ));
    }

    #[test]
    fn daily_window_wraps_past_midnight() {
        let p = MaintenancePolicy {
            window: Some(MaintenanceWindow::Daily {
                start_time: "22:00".into(),
                duration_secs: 4 * 3600,
            }),
            exclusions: vec![],
        };
        assert_eq!(check(&p, at("2026-11-23T01:30:00Z")), Verdict::Inside);
        assert_eq!(check(&p, at("2026-11-23T22:00:00Z")), Verdict::Inside);
        assert_eq!(
            check(&p, at("2026-11-23T12:00:00Z")),
            Verdict::Outside {
                next_start: Some(at("2026-11-23T22:00:00Z"))
            }
        );
    }

    #[test]
    fn exclusions_win_and_bad_rules_are_unknown() {
        let mut p = weekend();
        p.exclusions.push(MaintenanceExclusion {
            name: "black-friday".into(),
            start_time: "2026-11-20T00:00:00Z".into(),
            end_time: "2026-11-30T00:00:00Z".into(),
            scope: "NO_UPGRADES".into(),
        });
        let v = check(&p, at("2026-11-21T02:00:00Z"));
        assert!(matches!(&v, Verdict::Excluded { name, .. } if name == "black-friday"));
        // No end time: excluded until removed, not "unknown".
        let mut open_ended = p.clone();
        open_ended.exclusions[0].end_time = String::new();
        assert!(matches!(
            check(&open_ended, at("2027-06-01T00:00:00Z")),
            Verdict::Excluded { .. }
        ));
        assert!(v.problem().unwrap().contains("black-friday"));
        p.exclusions.clear();
        p.window = Some(MaintenanceWindow::Recurring {
            start_time: "2026-01-03T01:00:00Z".into(),
            end_time: "2026-01-03T05:00:00Z".into(),
            recurrence: "FREQ=MONTHLY;BYMONTHDAY=1".into(),
        });
        assert!(matches!(
            check(&p, at("2026-11-21T02:00:00Z")),
            Verdict::Unknown(_)
        ));
        assert_eq!(
            check(&MaintenancePolicy::default(), at("2026-11-21T02:00:00Z")),
            Verdict::Unrestricted
        );
    }
}
