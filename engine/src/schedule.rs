//! When an upgrade window (`window { days, start, end, time_zone }`) is open. Pure: the
//! instant is an input. Time zones come from the IANA database bundled by `jiff`, so a
//! machine without tzdata answers the same.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::model::UpgradeWindow;

/// Day names as windows write them (system-upgrade-controller's forms), Sunday = 0.
fn weekday(day: &str) -> Option<i8> {
    Some(match day {
        "0" | "su" | "sun" | "sunday" => 0,
        "1" | "mo" | "mon" | "monday" => 1,
        "2" | "tu" | "tue" | "tuesday" => 2,
        "3" | "we" | "wed" | "wednesday" => 3,
        "4" | "th" | "thu" | "thursday" => 4,
        "5" | "fr" | "fri" | "friday" => 5,
        "6" | "sa" | "sat" | "saturday" => 6,
        _ => return None,
    })
}

fn hhmm(s: &str) -> Result<Time, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("\"{s}\" is not HH:MM"))?;
    let h: i8 = h.parse().map_err(|_| format!("\"{s}\" is not HH:MM"))?;
    let m: i8 = m.parse().map_err(|_| format!("\"{s}\" is not HH:MM"))?;
    Time::new(h, m, 0, 0).map_err(|e| format!("\"{s}\": {e}"))
}

struct Parsed {
    tz: TimeZone,
    days: Vec<i8>,
    start: Time,
    end: Time,
}

fn parse(w: &UpgradeWindow) -> Result<Parsed, String> {
    let name = w.time_zone.as_deref().unwrap_or("UTC");
    let tz = TimeZone::get(name).map_err(|e| format!("time zone \"{name}\": {e}"))?;
    let days = w
        .days
        .iter()
        .map(|d| weekday(&d.to_lowercase()).ok_or_else(|| format!("\"{d}\" is not a day")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        tz,
        days,
        start: hhmm(&w.start)?,
        end: hhmm(&w.end)?,
    })
}

impl Parsed {
    /// The window that opens on local day `d`: (open, close), closing the next day when
    /// `end` is not after `start`.
    fn on(&self, d: Date) -> Result<Option<(Timestamp, Timestamp)>, String> {
        let dow = d.weekday().to_sunday_zero_offset();
        if !self.days.is_empty() && !self.days.contains(&dow) {
            return Ok(None);
        }
        let open = d
            .to_datetime(self.start)
            .to_zoned(self.tz.clone())
            .map_err(|e| e.to_string())?
            .timestamp();
        let close_day = if self.end > self.start {
            d
        } else {
            d.checked_add(1.day()).map_err(|e| e.to_string())?
        };
        let close = close_day
            .to_datetime(self.end)
            .to_zoned(self.tz.clone())
            .map_err(|e| e.to_string())?
            .timestamp();
        Ok(Some((open, close)))
    }
}

/// The first instant at or after `t` inside the window (`t` itself when it is open now).
pub fn next_open(w: &UpgradeWindow, t: Timestamp) -> Result<Timestamp, String> {
    let p = parse(w)?;
    let today = t.to_zoned(p.tz.clone()).date();
    // Yesterday's window may still be open past midnight; a week ahead always has one.
    let mut d = today.checked_sub(1.day()).map_err(|e| e.to_string())?;
    for _ in 0..9 {
        if let Some((open, close)) = p.on(d)? {
            if open <= t && t < close {
                return Ok(t);
            }
            if open >= t {
                return Ok(open);
            }
        }
        d = d.checked_add(1.day()).map_err(|e| e.to_string())?;
    }
    Err(format!(
        "the window {} {}–{} never opens",
        w.days.join(", "),
        w.start,
        w.end
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], start: &str, end: &str, tz: &str) -> UpgradeWindow {
        UpgradeWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            time_zone: Some(tz.into()),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn openings_follow_days_hours_and_time_zone() {
        // Tue–Thu 09:00–16:00 Berlin (CET in November, UTC+1).
        let prod = w(&["tue", "wed", "thu"], "09:00", "16:00", "Europe/Berlin");
        // Monday 2026-11-23 12:00 UTC: next opening Tuesday 08:00 UTC.
        assert_eq!(
            next_open(&prod, ts("2026-11-23T12:00:00Z")).unwrap(),
            ts("2026-11-24T08:00:00Z")
        );
        // Inside: now.
        assert_eq!(
            next_open(&prod, ts("2026-11-25T10:00:00Z")).unwrap(),
            ts("2026-11-25T10:00:00Z")
        );
        // Thursday after closing (15:00 UTC = 16:00 Berlin): next Tuesday.
        assert_eq!(
            next_open(&prod, ts("2026-11-26T15:00:00Z")).unwrap(),
            ts("2026-12-01T08:00:00Z")
        );
        // Summer time moves it (CEST, UTC+2).
        assert_eq!(
            next_open(&prod, ts("2026-06-29T12:00:00Z")).unwrap(),
            ts("2026-06-30T07:00:00Z")
        );
        // Across midnight: Saturday 22:00–02:00 UTC is still open early Sunday.
        let night = w(&["saturday"], "22:00", "02:00", "UTC");
        assert_eq!(
            next_open(&night, ts("2026-11-29T01:00:00Z")).unwrap(),
            ts("2026-11-29T01:00:00Z")
        );
        assert_eq!(
            next_open(&night, ts("2026-11-29T03:00:00Z")).unwrap(),
            ts("2026-12-05T22:00:00Z")
        );
        // Every day when no days are given.
        let daily = w(&[], "01:00", "05:00", "UTC");
        assert_eq!(
            next_open(&daily, ts("2026-11-23T06:00:00Z")).unwrap(),
            ts("2026-11-24T01:00:00Z")
        );
        assert!(next_open(
            &w(&["mon"], "01:00", "02:00", "Mars/Olympus"),
            ts("2026-11-23T06:00:00Z")
        )
        .unwrap_err()
        .contains("Mars/Olympus"));
    }
}
