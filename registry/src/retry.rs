//! Retries with exponential backoff and jitter, for the failures that pass: connection errors,
//! 5xx and 429. Everything else (401, 404, a wrong digest) fails at once. A registry that says
//! how long to wait (`Retry-After`) is given that wait instead, up to [`MAX_ASKED_WAIT`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ErrorKind;

/// The longest wait a registry's `Retry-After` gets: one asking for more is tried again
/// after this (an hour's silence would look like a hang).
pub const MAX_ASKED_WAIT: Duration = Duration::from_secs(60);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base: Duration,
    /// Longest single delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about 15 s: enough to ride out a registry restart.
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries, for tests of the failure paths.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt `n` (1 = the first retry), with up to 25% random jitter so
    /// parallel transfers don't retry in lockstep.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max);
        let mut b = [0u8; 2];
        let jitter = if getrandom::fill(&mut b).is_ok() {
            u64::from(u16::from_le_bytes(b)) * 250 / 65535
        } else {
            0
        };
        exp + exp.mul_f64(jitter as f64 / 1000.0)
    }

    /// The wait before attempt `n` (1 = the first retry) after `error`: what the registry
    /// asked for, if it did (capped at [`MAX_ASKED_WAIT`]), else the backoff.
    pub fn wait_before(&self, n: u32, error: &ErrorKind) -> Duration {
        error
            .retry_after()
            .map_or_else(|| self.delay(n), |asked| asked.min(MAX_ASKED_WAIT))
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts run out. `op` gets the
    /// attempt number (0 first) so it can resume instead of starting over. `noting(attempt,
    /// delay, error)` is called before each retry (`attempt` counts from 1 for the first try,
    /// so the first retry is attempt 2).
    pub async fn run<T, F, Fut>(
        &self,
        mut op: F,
        noting: impl Fn(u32, Duration, &ErrorKind),
    ) -> Result<T, ErrorKind>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ErrorKind>>,
    {
        let mut attempt = 0;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt + 1 < self.attempts => {
                    attempt += 1;
                    let delay = self.wait_before(attempt, &e);
                    noting(attempt + 1, delay, &e);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A retry about to happen: what failed, and when the next attempt goes. A step that retries
/// can take many seconds; this is what the user is shown meanwhile (libraries don't print).
#[derive(Debug)]
pub struct Retrying<'a> {
    /// `HOST[:PORT]` of the registry.
    pub registry: &'a str,
    pub error: &'a ErrorKind,
    /// The attempt about to run (2 for the first retry) and the most there will be.
    pub attempt: u32,
    pub attempts: u32,
    pub delay: Duration,
}

impl fmt::Display for Retrying<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {}: {}; retrying in {:.1} s{} (attempt {} of {})",
            self.registry,
            self.error,
            self.delay.as_secs_f64(),
            if self.error.retry_after().is_some() {
                " as the registry asked"
            } else {
                ""
            },
            self.attempt,
            self.attempts
        )
    }
}

/// Called before every retry of a registry request ([`Retrying`]).
#[derive(Clone)]
pub struct RetryNotice(Arc<dyn Fn(&Retrying<'_>) + Send + Sync>);

impl RetryNotice {
    pub fn new(f: impl Fn(&Retrying<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn notify(&self, retrying: &Retrying<'_>) {
        (self.0)(retrying);
    }
}

impl fmt::Debug for RetryNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryNotice")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_only() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, _> = fast(5)
            .run(
                |n| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            Err(ErrorKind::from_status(503, "busy"))
                        } else {
                            Ok(n)
                        }
                    }
                },
                |_, _, _| {},
            )
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = fast(5)
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(ErrorKind::NotFound) }
                },
                |_, _, _| {},
            )
            .await;
        assert!(matches!(r, Err(ErrorKind::NotFound)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn each_retry_is_noted_with_its_attempt_and_delay() {
        let noted = std::sync::Mutex::new(vec![]);
        let r: Result<(), _> = fast(3)
            .run(
                |_| async { Err(ErrorKind::from_status(503, "busy")) },
                |attempt, delay, error| {
                    noted
                        .lock()
                        .unwrap()
                        .push((attempt, delay, error.to_string()));
                },
            )
            .await;
        assert!(r.is_err());
        let noted = noted.into_inner().unwrap();
        // Three attempts: two retries, told as attempts 2 and 3, none after the last.
        assert_eq!(
            noted.iter().map(|n| n.0).collect::<Vec<_>>(),
            vec![2, 3],
            "{noted:?}"
        );
        assert!(
            noted
                .iter()
                .all(|n| n.1 > Duration::ZERO && n.2.contains("503"))
        );

        let error = ErrorKind::from_status(503, "busy");
        let line = Retrying {
            registry: "registry.internal:5000",
            error: &error,
            attempt: 2,
            attempts: 6,
            delay: Duration::from_millis(1250),
        }
        .to_string();
        assert_eq!(
            line,
            "registry registry.internal:5000: the registry answered HTTP 503: busy; retrying in \
             1.2 s (attempt 2 of 6)"
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = fast(3)
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(ErrorKind::from_status(429, "slow down")) }
                },
                |_, _, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_wait_a_registry_asks_for_replaces_the_backoff_up_to_a_minute() {
        let p = RetryPolicy::default();
        let asking = |secs| ErrorKind::Status {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(p.wait_before(1, &asking(20)), Duration::from_secs(20));
        assert_eq!(p.wait_before(5, &asking(0)), Duration::ZERO);
        assert_eq!(p.wait_before(1, &asking(3600)), MAX_ASKED_WAIT);
        let plain = ErrorKind::from_status(503, "busy");
        assert!(p.wait_before(1, &plain) < Duration::from_secs(1));

        let error = asking(20);
        let line = Retrying {
            registry: "registry.internal:5000",
            error: &error,
            attempt: 2,
            attempts: 6,
            delay: Duration::from_secs(20),
        }
        .to_string();
        assert_eq!(
            line,
            "registry registry.internal:5000: the registry answered HTTP 429: slow down; retrying \
             in 20.0 s as the registry asked (attempt 2 of 6)"
        );
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        assert!(p.delay(1) >= p.base);
        assert!(p.delay(30) <= p.max.mul_f64(1.26));
    }
}
