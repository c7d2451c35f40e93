//! A limit on requests per second to one provider (one account, project or
//! subscription): requests are spaced evenly, so no second ever sees more than the limit
//! (plus the one at its edge). Written here rather than taken from a rate-limiting crate:
//! it is a dozen lines, and only this even spacing is wanted, no bursts.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// `per_second` requests per second (more than 0).
    pub fn new(per_second: f64) -> RateLimit {
        RateLimit {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(None),
        }
    }

    /// Wait for this request's turn.
    pub async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly() {
        let limit = std::sync::Arc::new(RateLimit::new(4.0));
        let start = Instant::now();
        let times: Vec<Duration> = futures::future::join_all((0..9).map(|_| {
            let l = limit.clone();
            async move {
                l.acquire().await;
                start.elapsed()
            }
        }))
        .await;
        let mut t = times.clone();
        t.sort();
        assert_eq!(t[0], Duration::ZERO);
        assert_eq!(t[8], Duration::from_millis(2000), "{t:?}");
        for w in t.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(250));
        }
    }
}
