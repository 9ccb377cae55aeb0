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
//! - the remaining counts of the recent replies (ARM's figure is whole tokens: the bucket held
//!   at least `r` when it counted that request). Requests sent together reach ARM in any
//!   order, so the reply to the last one sent is not the latest count: the lowest of the
//!   recent counts is (with the refill since each added, it is the one fewest requests were
//!   counted after);
//! - the requests sent and not yet answered (they may not be counted in any reply yet);
//! - the refill rate, which ARM does not announce: estimated from two observations, as the
//!   tokens gained between them (`r2 - r1` plus the requests sent in between) over the time
//!   between their requests; one token is taken off for the rounding of `r`, so the estimate
//!   errs low. The first of the two is the lowest count seen since the bucket was last seen
//!   (nearly) full: measured from a high count, the interval may include time when the bucket
//!   was full and its refill was lost, which would make the estimate far too low.
//!
//! A request goes when every bucket it draws on holds a token by that estimate; otherwise it
//! waits until the refill should have brought one. While the refill is unknown and a bucket looks
//! empty it waits for the next reply (or, with nothing unanswered, sends one probe 100 ms after
//! the last reply). A wrong estimate cannot drift: each reply resets the count to ARM's own figure.

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
/// No reply for this long to a request: it is taken as lost.
const LOST: Duration = Duration::from_secs(2);
/// How often a request waiting on the next reply looks again.
const POLL: Duration = Duration::from_millis(20);
/// Requests sent this close together may reach ARM in either order: while the refill is
/// unknown, the counts of the replies to requests sent this close to the latest one are
/// compared.
const REORDER: Duration = Duration::from_millis(25);
/// Replies remembered for the estimate (older ones, with the refill since added, are higher
/// than a recent one).
const RECENT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Bucket {
    /// The recent observations, by the time their requests left.
    recent: VecDeque<Observation>,
    /// The observation the refill is measured from.
    base: Option<Observation>,
    /// Tokens per second, once measured.
    refill: Option<f64>,
    /// The highest remaining count seen (a reply near it: the bucket was full, so the refill
    /// had stopped and is measured afresh from there).
    max_seen: f64,
    /// Requests drawing on this bucket: when they were sent, and whether answered.
    sent: VecDeque<Sent>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    answered: bool,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    remaining: f64,
    request_sent: Instant,
}

impl Bucket {
    fn sent_between(&self, a: Instant, b: Instant) -> usize {
        self.sent.iter().filter(|s| s.at > a && s.at <= b).count()
    }

    /// Requests sent and not answered (nor lost).
    fn unanswered(&self, now: Instant) -> usize {
        self.sent
            .iter()
            .filter(|s| !s.answered && now.saturating_duration_since(s.at) < LOST)
            .count()
    }

    /// The tokens this bucket should hold now, less the requests unanswered (None: no reply
    /// seen yet).
    fn available(&self, now: Instant) -> Option<f64> {
        let latest = self.recent.iter().map(|o| o.request_sent).max()?;
        let refill = self.refill.unwrap_or(0.0);
        let level = self
            .recent
            .iter()
            .filter(|o| refill > 0.0 || o.request_sent + REORDER >= latest)
            .map(|o| {
                (o.remaining + refill * now.saturating_duration_since(o.request_sent).as_secs_f64())
                    .min(self.max_seen + 1.0)
            })
            .fold(f64::INFINITY, f64::min);
        Some(level - self.unanswered(now) as f64)
    }

    /// How long a request must wait before this bucket should hold a token for it.
    fn wait(&self, now: Instant) -> Duration {
        // ARM counted each request one trip after it was sent, as it will count this one: the
        // refill since is the time since its send. Without a refill, only the replies to the
        // latest requests say what is left. The bucket holds at least one more than the
        // highest count seen.
        let Some(avail) = self.available(now) else {
            return Duration::ZERO;
        };
        let refill = self.refill.unwrap_or(0.0);
        let unanswered = self.unanswered(now);
        // Once the refill is known, one token is kept in reserve (when the bucket holds a few):
        // the estimate is off by a token now and then (rounding, requests counted out of
        // order), and a refused write waits a whole Retry-After. It costs the time of one token
        // once, not a slower rate.
        let need = if refill > 0.0 && self.max_seen >= 4.0 {
            2.0
        } else {
            1.0
        };
        if avail >= need {
            return Duration::ZERO;
        }
        if refill > 0.0 {
            return Duration::from_secs_f64((need - avail) / refill) + Duration::from_millis(1);
        }
        if unanswered > 0 {
            // A reply is coming: it says more.
            return POLL;
        }
        let last_reply = self.recent.back().map_or(now, |o| o.request_sent);
        PROBE.saturating_sub(now.saturating_duration_since(last_reply))
    }

    fn observe(&mut self, remaining: f64, request_sent: Instant, at: Instant) {
        // Its request is answered: the latest unanswered one sent by then (the token was
        // taken just before it left).
        if let Some(s) = self
            .sent
            .iter_mut()
            .rev()
            .find(|s| !s.answered && s.at <= request_sent)
        {
            s.answered = true;
        }
        let o = Observation {
            remaining,
            request_sent,
        };
        // Measured from the lowest count since the bucket was last seen (nearly) full: from
        // there on it was not full, so it refilled the whole time (see the module's note).
        if remaining >= self.max_seen - 1.0 || self.base.is_none_or(|b| remaining < b.remaining) {
            // The requests answered by now were counted before this one (else a count would be
            // lower): the ones counted after it are those sent after the latest of them.
            let counted = self
                .sent
                .iter()
                .filter(|s| s.answered)
                .map(|s| s.at)
                .max()
                .map_or(request_sent, |t| t.max(request_sent));
            self.base = Some(Observation {
                remaining,
                request_sent: counted,
            });
        } else if let Some(b) = self.base
            // A request sent alone: no other one may have been counted on either side of it.
            && self
                .sent
                .iter()
                .filter(|s| s.at + REORDER > request_sent && s.at < request_sent + REORDER)
                .count()
                <= 1
        {
            let span = request_sent.saturating_duration_since(b.request_sent);
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
        let i = self
            .recent
            .partition_point(|r| r.request_sent <= request_sent);
        self.recent.insert(i, o);
        let newest = self.recent.back().map_or(request_sent, |r| r.request_sent);
        while self
            .recent
            .front()
            .is_some_and(|r| newest.saturating_duration_since(r.request_sent) > RECENT)
        {
            self.recent.pop_front();
        }
        while self
            .sent
            .front()
            .is_some_and(|s| at.saturating_duration_since(s.at) > HISTORY)
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
                        b.entry(k.clone()).or_default().sent.push_back(Sent {
                            at: now,
                            answered: false,
                        });
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
            b.entry(k.clone()).or_default().sent.push_back(Sent {
                at,
                answered: false,
            });
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

    /// What bucket `key` should hold now, less the requests not yet answered (None: nothing
    /// heard of it yet).
    pub fn available(&self, key: &str) -> Option<f64> {
        self.lock()
            .get(key)
            .and_then(|b| b.available(Instant::now()))
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

    /// Sixteen requests sent together reach ARM in the reverse order: the reply to the last
    /// one sent says 19 left, the reply to the first 4. What is left is 4, whatever order the
    /// replies arrive in: a next burst sends 4 and then waits for a reply (taking the reply to
    /// the latest request as the count, it would send 19, and ARM would refuse 15).
    #[test]
    fn requests_counted_out_of_order_the_lowest_recent_count_is_what_is_left() {
        for reversed_replies in [false, true] {
            let mut b = Bucket::default();
            let t0 = Instant::now();
            let at = |us: u64| t0 + Duration::from_micros(us);
            for i in 0..16u64 {
                b.sent.push_back(Sent {
                    at: at(i * 100),
                    answered: false,
                });
            }
            let mut order: Vec<u64> = (0..16).collect();
            if reversed_replies {
                order.reverse();
            }
            for i in order {
                // Request i was counted (15 - i)th: 20 - 1 - (15 - i) left.
                b.observe((4 + i) as f64, at(i * 100 + 10), at(50_000));
            }
            let now = at(60_000);
            let mut sent = 0;
            while b.wait(now).is_zero() {
                b.sent.push_back(Sent {
                    at: now,
                    answered: false,
                });
                sent += 1;
                assert!(sent < 20);
            }
            assert_eq!(sent, 4, "reversed replies: {reversed_replies}");
            assert_eq!(b.wait(now), POLL, "a reply is coming");
            // The refill is not measured across the burst.
            assert!(b.refill.is_none());
        }
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
