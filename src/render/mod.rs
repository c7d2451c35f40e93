//! Text output for people: plans, drift, summaries and apply progress.

pub mod dot;
pub mod hcl;
pub mod markdown;
pub mod plan;
pub mod progress;

use std::time::Duration;

/// `1h12m`, `9m30s`, `45s`, `0.8s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        if secs.is_multiple_of(60) {
            format!("{}m", secs / 60)
        } else {
            format!("{}m{:02}s", secs / 60, secs % 60)
        }
    } else if secs >= 10 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(short_duration(Duration::from_secs(4320)), "1h12m");
        assert_eq!(short_duration(Duration::from_secs(600)), "10m");
        assert_eq!(short_duration(Duration::from_secs(570)), "9m30s");
        assert_eq!(short_duration(Duration::from_millis(800)), "0.8s");
    }
}
