//! ARM's write budget, as a token bucket per tenant: many subscriptions are paced by the rate
//! ARM admits writes at, not by a window of requests in flight.
//!
//! The rate is unknown until ARM says it is spent: a 429 whose `x-ms-ratelimit-remaining-*` is 0
//! (counted by `http::Http::throttled_count`, which also waits its `Retry-After` and sends the
//! write again). The most writes ARM let through within one second are then the rate; from there each
//! write takes the next slot of the bucket (the first when the oldest write of that second ages
//! out), so writes go out at the rate ARM admits instead of in bursts that are refused and wait a
//! whole `Retry-After`. A quota 429 while paced lowers the rate by a tenth (at most once a
//! second). Until the first one nothing is paced. The count is per `Http` (all tenants of the
//! session): a 429 of one tenant slows the others' pacing too, never speeds it.

use super::state::lock;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window ARM's per-second write limit is counted over.
const WINDOW: Duration = Duration::from_secs(1);
/// How long sent writes are remembered.
const HISTORY: Duration = Duration::from_secs(3);
/// Slots a little wider than the rate: arrivals jitter on the network.
const MARGIN: f64 = 1.02;

/// A write's slot: whether it was paced.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    paced: bool,
    at: Instant,
}

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
    /// When the rate was last lowered.
    last_cut: Option<Instant>,
}

impl WriteBudget {
    pub fn new(throttled: u64) -> WriteBudget {
        WriteBudget {
            inner: Mutex::new(Inner {
                interval: None,
                next: Instant::now(),
                admitted: VecDeque::new(),
                throttled,
                last_cut: None,
            }),
        }
    }

    /// The time between writes, once learned.
    pub fn interval(&self) -> Option<Duration> {
        lock(&self.inner).interval
    }

    /// Waits for this write's slot (at once while the rate is unknown); give the ticket back to
    /// [`WriteBudget::done`].
    pub async fn acquire(&self) -> Ticket {
        let at = {
            let mut s = lock(&self.inner);
            let now = Instant::now();
            let (slot, paced) = match s.interval {
                None => (now, false),
                Some(iv) => {
                    let slot = s.next.max(now);
                    s.next = slot + iv;
                    (slot, true)
                }
            };
            (slot, paced)
        };
        tokio::time::sleep_until(at.0.into()).await;
        Ticket {
            paced: at.1,
            at: at.0,
        }
    }

    /// After a write: whether ARM refused it (429), and `http::Http::throttled_count()` now. The
    /// first quota 429 sets the rate to the most writes ARM let through within one second (a
    /// later, fuller count raises it); a quota 429 of a paced write lowers it by a tenth, at most
    /// once a second.
    pub fn done(&self, ticket: Ticket, refused: bool, throttled: u64) {
        let mut s = lock(&self.inner);
        let now = Instant::now();
        if !refused {
            let i = s.admitted.partition_point(|t| *t <= ticket.at);
            s.admitted.insert(i, ticket.at);
        }
        // A refused write reports when it is done, after the HTTP layer waited its Retry-After:
        // the second the limit was counted over is then in the past. Kept: a few seconds.
        while s
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HISTORY)
        {
            s.admitted.pop_front();
        }
        if throttled <= s.throttled {
            return;
        }
        s.throttled = throttled;
        // The most writes ARM let through within one second of the history.
        let sent: Vec<Instant> = s.admitted.iter().copied().collect();
        let counted = (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|t| t.saturating_duration_since(sent[i]) < WINDOW)
                    .count()
            })
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let from_count = WINDOW.mul_f64(MARGIN / counted);
        let iv = match s.interval {
            None => from_count,
            Some(old) if from_count < old => from_count,
            // A write sent before the pacing began was refused: nothing new.
            Some(old) if !ticket.paced => old,
            Some(old) if s.last_cut.is_none_or(|t| now.duration_since(t) >= WINDOW) => {
                s.last_cut = Some(now);
                old.mul_f64(1.1)
            }
            Some(old) => old,
        };
        if s.interval != Some(iv) {
            tracing::info!(
                writes_per_second = 1.0 / iv.as_secs_f64(),
                "ARM's write budget is spent: pacing writes"
            );
        }
        if s.interval.is_none() {
            // The window frees as the writes in it age out: the first slot is when the oldest
            // leaves it.
            let first = s
                .admitted
                .iter()
                .rev()
                .nth(counted as usize - 1)
                .map_or(now, |t| *t + WINDOW);
            s.next = s.next.max(first);
        }
        s.interval = Some(iv);
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
            let t = b.acquire().await;
            b.done(t, false, 0);
        }
        assert!(t0.elapsed() < Duration::from_millis(100), "no pacing yet");
        assert_eq!(b.interval(), None);
        // The 21st write of the second was refused: 20 per second.
        let t = b.acquire().await;
        b.done(t, true, 1);
        let iv = b.interval().unwrap();
        assert!(
            iv >= Duration::from_millis(50) && iv < Duration::from_millis(56),
            "{iv:?}"
        );
        // The window frees when its oldest write ages out: the next slot is a second after it,
        // then one every interval.
        let t = b.acquire().await;
        b.done(t, false, 1);
        assert!(
            t0.elapsed() >= Duration::from_millis(950),
            "{:?}",
            t0.elapsed()
        );
        let t1 = Instant::now();
        for _ in 0..4 {
            let t = b.acquire().await;
            b.done(t, false, 1);
        }
        let spent = t1.elapsed();
        assert!(
            spent >= iv * 4 - Duration::from_millis(5) && spent < Duration::from_millis(400),
            "{spent:?}"
        );
        // A further quota 429 while paced: a tenth slower (once a second at most).
        let t = b.acquire().await;
        b.done(t, true, 2);
        assert!(b.interval().unwrap() > iv);
    }
}
