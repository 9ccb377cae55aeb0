//! ARM's write budget, as a token bucket per tenant: many subscriptions are paced by the rate
//! ARM admits writes at, not by a window of requests in flight.
//!
//! The rate is unknown until ARM says it is spent: a 429 whose `x-ms-ratelimit-remaining-*` is 0
//! (counted by `http::Http::throttled_count`, which also waits its `Retry-After` and sends the
//! write again). The writes ARM admitted in the second before it are then the rate; from there
//! each write takes the next slot of the bucket, so writes go out at the rate ARM admits instead
//! of in bursts that are refused and wait a whole `Retry-After`. Until then nothing is paced.

use super::state::lock;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window ARM's per-second write limit is counted over.
const WINDOW: Duration = Duration::from_secs(1);
/// Slots a little wider than the rate: arrivals jitter on the network.
const MARGIN: f64 = 1.05;

#[derive(Debug)]
pub struct WriteBudget {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Time between writes once the rate is known.
    interval: Option<Duration>,
    /// The next free slot.
    next: Instant,
    /// When the writes of the last second were admitted.
    admitted: VecDeque<Instant>,
    /// `throttled_count` as last seen.
    throttled: u64,
}

impl WriteBudget {
    pub fn new(throttled: u64) -> WriteBudget {
        WriteBudget {
            inner: Mutex::new(Inner {
                interval: None,
                next: Instant::now(),
                admitted: VecDeque::new(),
                throttled,
            }),
        }
    }

    /// The time between writes, once learned.
    pub fn interval(&self) -> Option<Duration> {
        lock(&self.inner).interval
    }

    /// Waits for this write's slot (at once while the rate is unknown).
    pub async fn acquire(&self) {
        let at = {
            let mut s = lock(&self.inner);
            let Some(iv) = s.interval else {
                return;
            };
            let now = Instant::now();
            let slot = s.next.max(now);
            s.next = slot + iv;
            slot
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// After a write: `throttled` is `http::Http::throttled_count()` now. A quota 429 since the
    /// last call sets the rate to the writes admitted in the second before it.
    pub fn done(&self, throttled: u64) {
        let mut s = lock(&self.inner);
        let now = Instant::now();
        while s
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            s.admitted.pop_front();
        }
        if throttled > s.throttled {
            s.throttled = throttled;
            let rate = s.admitted.len().max(1) as f64;
            let iv = WINDOW.mul_f64(MARGIN / rate);
            // A lower rate is believed at once; a higher one only when none is known yet.
            if s.interval.is_none_or(|old| iv > old) {
                tracing::info!(
                    writes_per_second = rate,
                    "ARM's write budget is spent: pacing writes"
                );
                s.interval = Some(iv);
                s.next = s.next.max(now);
            }
        }
        s.admitted.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unpaced_until_a_quota_429_then_at_the_rate_admitted_before_it() {
        let b = WriteBudget::new(0);
        let t0 = Instant::now();
        for _ in 0..20 {
            b.acquire().await;
            b.done(0);
        }
        assert!(t0.elapsed() < Duration::from_millis(100), "no pacing yet");
        assert_eq!(b.interval(), None);
        // The 21st write of the second was refused: 20 per second.
        b.acquire().await;
        b.done(1);
        let iv = b.interval().unwrap();
        assert!(
            iv >= Duration::from_millis(50) && iv < Duration::from_millis(56),
            "{iv:?}"
        );
        let t1 = Instant::now();
        for _ in 0..4 {
            b.acquire().await;
            b.done(1);
        }
        let spent = t1.elapsed();
        assert!(
            spent >= iv * 3 && spent < Duration::from_millis(400),
            "{spent:?}"
        );
    }
}
