//! ARM's request budget as ARM announces it: every reply carries what is left of the token
//! buckets the request drew on (`x-ms-ratelimit-remaining-subscription-reads|writes|deletes`,
//! `x-ms-ratelimit-remaining-tenant-reads|writes`; reference/fleet-and-policies.md §5). Requests
//! are paced on those figures from the first reply, so that they go out at the rate the buckets
//! refill instead of in bursts ARM refuses (429) and makes wait a whole `Retry-After`.
//!
//! One [`Budgets`] per [`crate::http::Http`] (and its clones: the whole session). Each bucket is
//! known by a key (`tenant/{tenant}/writes`, `subscription/{id}/reads`, …) and estimated from
//! what was observed:
//!
//! - the last reply's remaining count `r` (ARM's figure is whole tokens: the bucket holds at
//!   least `r`), taken when that reply arrived;
//! - the requests sent after the request of that reply (they may not be counted in `r` yet);
//! - the refill rate, which ARM does not announce: estimated from two observations, as the
//!   tokens gained between them (`r2 - r1` plus the requests sent in between) over the time
//!   between them; one token is taken off for the rounding of `r`, so the estimate errs low.
//!
//! A request goes when every bucket it draws on holds a token by that estimate; otherwise it
//! waits until the refill should have brought one. While the refill is unknown and a bucket looks
//! empty it waits for the next reply (or, with nothing in flight, sends one probe 100 ms after the last reply).
//! A wrong estimate cannot drift: each reply resets the count to ARM's own figure.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The kind of an ARM request, as ARM counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Delete,
}

impl Kind {
    pub fn of(method: &reqwest::Method) -> Kind {
        match *method {
            reqwest::Method::GET | reqwest::Method::HEAD => Kind::Read,
            reqwest::Method::DELETE => Kind::Delete,
            _ => Kind::Write,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Read => "reads",
            Kind::Write => "writes",
            Kind::Delete => "deletes",
        }
    }
}

/// The buckets a request to `url` of `kind` in `tenant` draws on, with the header that reports
/// each: the tenant's, and the subscription's when the path is under `/subscriptions/{id}`.
pub fn buckets_of(tenant: &str, url: &str, kind: Kind) -> Vec<(String, String)> {
    let mut out = vec![(
        format!("tenant/{}/{}", tenant.to_ascii_lowercase(), kind.word()),
        format!("x-ms-ratelimit-remaining-tenant-{}", kind.word()),
    )];
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    if segs
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case("subscriptions"))
        && let Some(id) = segs.next()
    {
        out.push((
            format!("subscription/{}/{}", id.to_ascii_lowercase(), kind.word()),
            format!("x-ms-ratelimit-remaining-subscription-{}", kind.word()),
        ));
    }
    out
}

/// Trust a refill estimate only over at least this long.
const MIN_BASELINE: Duration = Duration::from_millis(200);
/// Sends are remembered this long (a reply older than that is stale anyway).
const HISTORY: Duration = Duration::from_secs(10);
/// With the refill unknown, a bucket that looks empty and nothing in flight: probe after this
/// (ARM's documented refills are 10 to 25 per second).
const PROBE: Duration = Duration::from_millis(100);
/// No reply for this long to the requests in flight: they are taken as lost.
const LOST: Duration = Duration::from_secs(2);
/// How often a request waiting on the next reply looks again.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Bucket {
    /// The last observation: ARM's remaining count, when it arrived, and when its request left.
    last: Option<Observation>,
    /// The observation the refill is measured from.
    base: Option<Observation>,
    /// Tokens per second, once measured.
    refill: Option<f64>,
    /// The highest remaining count seen (a reply near it: the bucket was full, so the refill
    /// had stopped and is measured afresh from there).
    max_seen: f64,
    /// When requests drawing on this bucket were sent.
    sent: VecDeque<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    remaining: f64,
    at: Instant,
    request_sent: Instant,
}

impl Bucket {
    fn sent_after(&self, t: Instant) -> usize {
        self.sent.iter().rev().take_while(|s| **s > t).count()
    }

    fn sent_between(&self, a: Instant, b: Instant) -> usize {
        self.sent.iter().filter(|s| **s > a && **s <= b).count()
    }

    /// How long a request must wait before this bucket should hold a token for it.
    fn wait(&self, now: Instant) -> Duration {
        let Some(last) = self.last else {
            return Duration::ZERO;
        };
        let in_flight = self.sent_after(last.request_sent) as f64;
        let refill = self.refill.unwrap_or(0.0);
        let avail = last.remaining + refill * now.saturating_duration_since(last.at).as_secs_f64()
            - in_flight;
        if avail >= 1.0 {
            return Duration::ZERO;
        }
        if refill > 0.0 {
            return Duration::from_secs_f64((1.0 - avail) / refill) + Duration::from_millis(1);
        }
        let since = now.saturating_duration_since(last.at);
        if in_flight > 0.0 && since < LOST {
            // A reply is coming: it says more.
            return POLL;
        }
        PROBE.saturating_sub(since)
    }

    fn observe(&mut self, remaining: f64, request_sent: Instant, at: Instant) {
        // A reply to a request older than the one last observed says less.
        if self.last.is_some_and(|l| l.request_sent > request_sent) {
            return;
        }
        let o = Observation {
            remaining,
            at,
            request_sent,
        };
        if remaining >= self.max_seen - 1.0 || self.base.is_none() {
            self.base = Some(o);
        } else if let Some(b) = self.base {
            let span = at.saturating_duration_since(b.at);
            if span >= MIN_BASELINE {
                let used = self.sent_between(b.request_sent, request_sent) as f64;
                let gained = remaining - b.remaining + used - 1.0;
                let rate = gained / span.as_secs_f64();
                if rate > 0.0 {
                    self.refill = Some(rate);
                }
            }
        }
        self.max_seen = self.max_seen.max(remaining);
        self.last = Some(o);
        while self
            .sent
            .front()
            .is_some_and(|s| at.saturating_duration_since(*s) > HISTORY)
        {
            self.sent.pop_front();
        }
    }
}

/// Every ARM bucket a session has heard of.
#[derive(Debug, Default)]
pub struct Budgets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every bucket in `keys` should hold a token, then counts this request as sent.
    pub async fn acquire(&self, keys: &[String]) {
        loop {
            let wait = {
                let mut b = self.lock();
                let now = Instant::now();
                let wait = keys
                    .iter()
                    .map(|k| b.get(k).map_or(Duration::ZERO, |x| x.wait(now)))
                    .max()
                    .unwrap_or_default();
                if wait.is_zero() {
                    for k in keys {
                        b.entry(k.clone()).or_default().sent.push_back(now);
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Another attempt of a request already counted (the HTTP layer's resend after a 429/5xx).
    pub fn resent(&self, keys: &[String], at: Instant) {
        let mut b = self.lock();
        for k in keys {
            b.entry(k.clone()).or_default().sent.push_back(at);
        }
    }

    /// A reply to a request sent at `request_sent`: the remaining counts it announced, by key.
    pub fn observe(&self, request_sent: Instant, remaining: &[(String, u64)]) {
        let now = Instant::now();
        let mut b = self.lock();
        for (k, r) in remaining {
            b.entry(k.clone())
                .or_default()
                .observe(*r as f64, request_sent, now);
        }
    }

    /// The refill rate measured for `key` (tokens per second), if any.
    pub fn refill(&self, key: &str) -> Option<f64> {
        self.lock().get(key).and_then(|b| b.refill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_draws_on_the_tenant_and_its_subscription() {
        let b = buckets_of(
            "T",
            "https://arm.example/subscriptions/S1/providers/Microsoft.Authorization/roleAssignments/x?api-version=1",
            Kind::Write,
        );
        assert_eq!(
            b,
            [
                (
                    "tenant/t/writes".to_string(),
                    "x-ms-ratelimit-remaining-tenant-writes".to_string()
                ),
                (
                    "subscription/s1/writes".to_string(),
                    "x-ms-ratelimit-remaining-subscription-writes".to_string()
                )
            ]
        );
        assert_eq!(
            buckets_of(
                "T",
                "https://arm.example/subscriptions?api-version=1",
                Kind::Read
            )
            .len(),
            1
        );
    }

    /// A simulated bucket (size 20, refill 20/s) and a client that sends as soon as the
    /// estimate allows, each reply arriving `rtt` after its request: after the first burst the
    /// client learns the refill and never finds the bucket empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_on_the_announced_budget_it_sends_at_the_refill_without_refusals() {
        let budgets = std::sync::Arc::new(Budgets::default());
        let key = vec!["tenant/t/writes".to_string()];
        let (size, refill) = (20.0f64, 20.0f64);
        let server = std::sync::Arc::new(Mutex::new((size, Instant::now())));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = vec![];
        for _ in 0..8 {
            let (budgets, key, server, refused) = (
                budgets.clone(),
                key.clone(),
                server.clone(),
                refused.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    budgets.acquire(&key).await;
                    let sent = Instant::now();
                    // The request reaches ARM half an RTT later.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    let left = {
                        let mut s = server.lock().unwrap();
                        let now = Instant::now();
                        s.0 = (s.0 + refill * now.duration_since(s.1).as_secs_f64()).min(size);
                        s.1 = now;
                        if s.0 < 1.0 {
                            // A 429 says the bucket is empty (and the request is not resent here).
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            0
                        } else {
                            s.0 -= 1.0;
                            s.0.floor() as u64
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    budgets.observe(sent, &[(key[0].clone(), left)]);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let took = t0.elapsed().as_secs_f64();
        // 80 requests: 20 from the bucket, 60 at 20/s = 3 s at least.
        assert!(took >= 2.5, "{took}");
        // Generous for a loaded machine; unpaced, most of the 60 would be refused.
        assert!(took < 8.0, "{took}: paced near the refill");
        // Unpaced, most of the 60 past the bucket would be refused; a loaded 2-core machine
        // delays some replies (and so what the pacer learns), so a few may be.
        assert!(
            refused.load(std::sync::atomic::Ordering::Relaxed) <= 8,
            "{refused:?}"
        );
        let r = budgets.refill(&key[0]).expect("refill learned");
        assert!((15.0..=20.5).contains(&r), "{r}");
    }
}
