//! The one retry policy of the engine, by error class (`ApiError::class`), never by message
//! text:
//! - [`read`]: a read (or a write that is safe to send again) is sent again after a transient
//!   failure;
//! - [`create_or_find`]: a create whose reply was lost is looked up before it is sent again;
//! - [`propagate`]: a call Azure refuses until a recent write has propagated is polled, and
//!   each wait is reported (the caller turns it into `StepEvent::Waiting`).
//!
//! Throttling (429/503 with Retry-After) and idempotent 5xx are already retried by `http::Http`,
//! which marks what it resent (`ApiError::layer_retried`): [`read`] never resends those, so a
//! failing read is sent at most `http::ROUTE_FAILURES` times in all.

use crate::error::{Error, ErrorClass};
use std::time::{Duration, Instant};

/// How many times a transient failure is sent again.
const TRANSIENT_TRIES: u64 = 5;
/// The pause before transient retry number n is n × this.
const TRANSIENT_STEP: Duration = Duration::from_millis(300);

/// Propagation waits: a short poll while Azure usually catches up (a few seconds), then waits
/// that grow with the time already spent (a third of it, capped), within a total budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait while polling.
    pub poll: Duration,
    /// How long to poll at `poll` before waits grow.
    pub poll_for: Duration,
    pub max_wait: Duration,
    /// Sum of all waits.
    pub budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

impl Backoff {
    /// A 500 ms poll for the first 30 s (Azure is usually ready within 5-10 s, and a wait that
    /// ends right after it is ready costs at most one poll), then up to 15 s between tries;
    /// about 3 minutes in all (az CLI waits 36 × 5 s).
    pub const DEFAULT: Backoff = Backoff {
        poll: Duration::from_millis(500),
        poll_for: Duration::from_secs(30),
        max_wait: Duration::from_secs(15),
        budget: Duration::from_secs(180),
    };

    /// The wait before the next try after `spent` waiting, or None when the budget is spent.
    pub fn wait(&self, spent: Duration) -> Option<Duration> {
        if spent >= self.budget {
            return None;
        }
        let w = if spent < self.poll_for {
            self.poll
        } else {
            (spent / 3).clamp(self.poll, self.max_wait)
        };
        Some(w.min(self.budget - spent))
    }

    /// All waits, in order.
    pub fn schedule(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut spent = Duration::ZERO;
        while let Some(w) = self.wait(spent) {
            if w.is_zero() {
                break;
            }
            out.push(w);
            spent += w;
        }
        out
    }
}

/// Whether an error is Azure catching up with a write (poll).
pub fn is_propagation(e: &Error) -> bool {
    e.api()
        .is_some_and(|a| a.class() == ErrorClass::Propagation)
}

/// Whether the request may or may not have been applied: look up before writing again.
pub fn is_transient(e: &Error) -> bool {
    e.api()
        .is_some_and(|a| matches!(a.class(), ErrorClass::Transient | ErrorClass::Throttled))
}

/// Whether the HTTP layer already sent the request again (or refused to send a route that
/// keeps failing): the engine does not retry on top of it (issue 18 §2: retries nested 6 × 6).
pub fn layer_retried(e: &Error) -> bool {
    e.api().is_some_and(|a| a.layer_retried)
}

/// Whether an error is "not found" (HTTP 404 or Graph's `Request_ResourceNotFound`).
pub fn is_not_found(e: &Error) -> bool {
    e.api().is_some_and(|a| {
        a.class() == ErrorClass::NotFound || a.has_code("Request_ResourceNotFound")
    })
}

/// A read, or a write that is safe to send again (a PUT under a deterministic name, setting
/// Spot credentials), sent again while it fails transiently.
pub(crate) async fn read<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 0u64;
    loop {
        match f().await {
            Err(e) if is_transient(&e) && !layer_retried(&e) && tries < TRANSIENT_TRIES => {
                tries += 1;
                tokio::time::sleep(TRANSIENT_STEP * tries as u32).await;
            }
            r => return r,
        }
    }
}

/// A write that is not idempotent but whose lost copies are cleaned up later (addPassword),
/// sent again while it fails transiently.
pub(crate) async fn resend_on_transient<T, F, Fut>(f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    read(f).await
}

/// A create tried again while it fails transiently; after each such failure `lookup` first
/// checks whether the lost request was applied after all.
pub(crate) async fn create_or_find<T, C, CF, L, LF>(
    mut create: C,
    mut lookup: L,
) -> Result<T, Error>
where
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, Error>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<T>, Error>>,
{
    let mut tries = 0u64;
    loop {
        match create().await {
            Err(e) if is_transient(&e) && !layer_retried(&e) && tries < TRANSIENT_TRIES => {
                tries += 1;
                tokio::time::sleep(TRANSIENT_STEP * tries as u32).await;
                if let Some(found) = read(&mut lookup).await? {
                    return Ok(found);
                }
            }
            r => return r,
        }
    }
}

/// Calls `f` until it succeeds: again after a transient failure (a few times), and, while
/// Azure propagates a recent write (or `also(e)`), after the waits of `backoff`, each reported
/// to `on_wait(attempt, next_in)` first.
pub(crate) async fn propagate<T, F, Fut>(
    backoff: &Backoff,
    also: impl Fn(&Error) -> bool,
    mut f: F,
    mut on_wait: impl FnMut(u32, Duration),
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    let (mut attempt, mut transient) = (0u32, 0u64);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && !layer_retried(&e) && transient < TRANSIENT_TRIES => {
                transient += 1;
                tokio::time::sleep(TRANSIENT_STEP * transient as u32).await;
            }
            Err(e) if is_propagation(&e) || also(&e) => {
                attempt += 1;
                let Some(wait) = backoff.wait(start.elapsed()) else {
                    return Err(e);
                };
                tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "waiting for propagation");
                on_wait(attempt, wait);
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, Service};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn schedule_polls_then_grows_capped_at_15s_and_spends_three_minutes() {
        let s = Backoff::default().schedule();
        // 30 s of 500 ms polls: a wait ends at most 500 ms after Azure is ready.
        assert!(s.iter().take(60).all(|d| *d == Duration::from_millis(500)));
        assert!(s[60] > Duration::from_millis(500));
        assert!(s.iter().all(|d| *d <= Duration::from_secs(15)));
        assert!(
            s[..s.len() - 1].windows(2).skip(60).all(|w| w[0] <= w[1]),
            "{s:?}"
        );
        let total: Duration = s.iter().sum();
        assert_eq!(total, Duration::from_secs(180));
    }

    #[test]
    fn no_wait_once_the_budget_is_spent() {
        let b = Backoff {
            poll: Duration::from_millis(100),
            poll_for: Duration::from_millis(200),
            max_wait: Duration::from_millis(300),
            budget: Duration::from_millis(500),
        };
        assert_eq!(b.wait(Duration::ZERO), Some(Duration::from_millis(100)));
        assert_eq!(
            b.wait(Duration::from_millis(450)),
            Some(Duration::from_millis(50))
        );
        assert_eq!(b.wait(Duration::from_millis(500)), None);
    }

    fn api(status: u16, code: &str) -> Error {
        Error::Api(ApiError {
            service: Service::Arm,
            status,
            code: code.into(),
            detail_codes: vec![],
            message: "m".into(),
            request_id: None,
            retry_after: None,
            layer_retried: false,
        })
    }

    #[tokio::test]
    async fn propagate_polls_while_azure_catches_up_and_reports_each_wait() {
        let calls = AtomicU32::new(0);
        let mut waits = vec![];
        let r = propagate(
            &Backoff::default(),
            |_| false,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(api(400, "PrincipalNotFound")),
                    2 => Err(api(502, "BadGateway")),
                    _ => Ok(7),
                }
            },
            |attempt, next| waits.push((attempt, next)),
        )
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(
            waits,
            vec![
                (1, Duration::from_millis(500)),
                (2, Duration::from_millis(500))
            ]
        );
        // Anything else is returned at once.
        let r: Result<(), Error> = propagate(
            &Backoff::default(),
            |_| false,
            || async { Err(api(403, "AuthorizationFailed")) },
            |_, _| panic!("no wait for a permission error"),
        )
        .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn a_lost_create_is_found_before_it_is_sent_again() {
        let creates = AtomicU32::new(0);
        let r = create_or_find(
            || async {
                creates.fetch_add(1, Ordering::SeqCst);
                Err::<u32, _>(api(0, "ConnectionError"))
            },
            || async { Ok(Some(42)) },
        )
        .await;
        assert_eq!(r.unwrap(), 42);
        assert_eq!(creates.load(Ordering::SeqCst), 1);
    }

    /// harden's error classes hold in the engine's policy: an untrusted certificate, plain
    /// http, a refused connection, a Retry-After beyond the budget (…) are sent once, never
    /// again, by `read` and `propagate` alike; a dropped connection is sent again.
    #[tokio::test]
    async fn fatal_transport_errors_are_never_sent_again() {
        for code in crate::http::codes::FATAL {
            assert!(!is_transient(&api(0, code)), "{code}");
            assert!(!is_propagation(&api(0, code)), "{code}");
            let calls = AtomicU32::new(0);
            let r: Result<(), Error> = read(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(0, code))
            })
            .await;
            assert!(r.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code}");
            let r: Result<(), Error> = propagate(
                &Backoff::default(),
                |_| false,
                || async { Err(api(0, code)) },
                |_, _| panic!("no wait for {code}"),
            )
            .await;
            assert!(r.is_err());
        }
        let calls = AtomicU32::new(0);
        let r: Result<(), Error> = read(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(api(0, crate::http::codes::INCOMPLETE))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
