//! Retries by error class (`ApiError::class`): capped exponential backoff while Azure propagates
//! a recent write. Throttling and idempotent 5xx are already retried by `http::Http`.

use crate::error::{Error, ErrorClass};
use std::time::Duration;

/// Capped exponential backoff with a total budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max_wait: Duration,
    /// Sum of all waits.
    pub budget: Duration,
}

impl Default for Backoff {
    /// About 3 minutes in all, no wait above 15 s (az CLI waits 36 × 5 s).
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max_wait: Duration::from_secs(15),
            budget: Duration::from_secs(180),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1-based), or None when the budget is spent.
    pub fn wait(&self, attempt: u32, spent: Duration) -> Option<Duration> {
        if spent >= self.budget {
            return None;
        }
        let exp = self
            .initial
            .checked_mul(1u32 << (attempt.saturating_sub(1)).min(16))
            .unwrap_or(self.max_wait);
        Some(exp.min(self.max_wait).min(self.budget - spent))
    }

    /// All waits, in order.
    pub fn schedule(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut spent = Duration::ZERO;
        let mut attempt = 1;
        while let Some(w) = self.wait(attempt, spent) {
            if w.is_zero() {
                break;
            }
            out.push(w);
            spent += w;
            attempt += 1;
        }
        out
    }
}

/// Whether an error is Azure catching up with a write (retry with backoff).
pub fn is_propagation(e: &Error) -> bool {
    e.api()
        .is_some_and(|a| a.class() == ErrorClass::Propagation)
}

/// Whether the request may or may not have been applied: look up before writing again.
pub fn is_transient(e: &Error) -> bool {
    e.api()
        .is_some_and(|a| matches!(a.class(), ErrorClass::Transient | ErrorClass::Throttled))
}

/// A write tried again (up to 5 more times, 300 ms × try apart) while it fails transiently.
/// Only for writes that are safe to send again, or whose lost copies are cleaned up later.
pub(crate) async fn resend_on_transient<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 0u64;
    loop {
        match f().await {
            Err(e) if is_transient(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(300 * tries)).await;
            }
            r => return r,
        }
    }
}

/// A create tried again (up to 5 more times) while it fails transiently; after each such
/// failure `lookup` first checks whether the lost request was applied after all.
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
            Err(e) if is_transient(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(300 * tries)).await;
                if let Some(found) = lookup().await? {
                    return Ok(found);
                }
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_caps_at_15s_and_spends_about_three_minutes() {
        let s = Backoff::default().schedule();
        let secs: Vec<u64> = s.iter().take(6).map(|d| d.as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 15, 15]);
        assert!(s.iter().all(|d| *d <= Duration::from_secs(15)));
        let total: Duration = s.iter().sum();
        assert_eq!(total, Duration::from_secs(180));
    }

    #[test]
    fn no_wait_once_the_budget_is_spent() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max_wait: Duration::from_millis(300),
            budget: Duration::from_millis(500),
        };
        assert_eq!(b.wait(1, Duration::ZERO), Some(Duration::from_millis(100)));
        assert_eq!(
            b.wait(3, Duration::from_millis(300)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(b.wait(4, Duration::from_millis(500)), None);
    }
}
