//! Text output for people: plans, drift, summaries and apply progress.

pub mod dot;
pub mod hcl;
pub mod markdown;
pub mod plan;
pub mod progress;

pub use kup_engine::executor::short_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(short_duration(Duration::from_secs(4320)), "1h12m");
        assert_eq!(short_duration(Duration::from_secs(600)), "10m");
        assert_eq!(short_duration(Duration::from_secs(570)), "9m30s");
        assert_eq!(short_duration(Duration::from_millis(800)), "0.8s");
    }
}
