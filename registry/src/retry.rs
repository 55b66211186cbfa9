//! Retries with exponential backoff and jitter, for the failures that pass: connection errors,
//! 5xx and 429. Everything else (401, 404, a wrong digest) fails at once. A registry that says
//! how long to wait (`Retry-After`) is given that wait instead, up to [`MAX_ASKED_WAIT`].
//!
//! Every request has a budget of its own ([`RetryPolicy::run`]), never one shared with the
//! other requests of a push. A blob upload counts attempts without progress instead
//! ([`ProgressBudget`]): one whose attempts keep getting further goes on.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sensei_core::digest::Digest;

use crate::error::{ErrorKind, human_bytes};

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
    /// Twelve attempts over about 26 s: enough to ride out a registry restart, and enough for
    /// a push of thousands of requests through a registry (or proxy) failing a quarter of them
    /// at random: each request then fails all twelve about once in 17 million (six attempts,
    /// once in 4,000: a 300-image push failed most runs). The first retry comes after 20 ms: a
    /// failure that is one request's bad luck costs little, and the wait still doubles for one
    /// that persists. (Starting at 250 ms, a 300-image push through such a registry spent
    /// most of its time waiting: 40 s, against 5 to 7 s now and 3.5 s without faults.)
    fn default() -> Self {
        Self {
            attempts: 12,
            base: Duration::from_millis(20),
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

/// Bytes a blob upload's attempt must get beyond the furthest any before it got, to count as
/// progress: 1 MiB, or 1% of a blob over 100 MiB (so a huge blob needs a real step forward).
pub fn progress_step(size: u64) -> u64 {
    (size / 100).max(1 << 20)
}

/// The retry budget of one blob upload, counted in attempts without progress: an attempt that
/// got at least [`progress_step`] further into the blob than any before it starts the count
/// again, so an upload over a connection that keeps breaking goes on while each break comes
/// later. It still ends: once `attempts` attempts in a row fail without progress. (Progress is
/// the furthest byte reached, which only grows, by a step of at least 1% of the blob: so at
/// most 100 attempts can make progress, and a blob gets at most 100 times `attempts`.)
#[derive(Debug, Clone)]
pub struct ProgressBudget {
    attempts: u32,
    size: u64,
    /// The furthest byte an attempt that counted as progress got to.
    best: u64,
    /// Attempts failed without progress, and in all.
    stalled: u32,
    tried: u32,
}

impl ProgressBudget {
    pub fn new(policy: &RetryPolicy, size: u64) -> Self {
        Self {
            attempts: policy.attempts,
            size,
            best: 0,
            stalled: 0,
            tried: 0,
        }
    }

    /// Records a failed attempt that got to byte `reached` of the blob (counting the bytes
    /// before where it started, when it resumed); true if another attempt may go.
    pub fn failed(&mut self, reached: u64) -> bool {
        self.tried += 1;
        if reached >= self.best.saturating_add(progress_step(self.size)) {
            self.best = reached;
            self.stalled = 0;
        } else {
            self.stalled += 1;
        }
        self.stalled < self.attempts
    }

    /// Attempts failed without progress since the last that made some.
    pub fn stalled(&self) -> u32 {
        self.stalled
    }

    /// Attempts failed so far.
    pub fn tried(&self) -> u32 {
        self.tried
    }

    /// The furthest byte an attempt got to (as progress).
    pub fn best(&self) -> u64 {
        self.best
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt: the backoff restarts after progress.
    pub fn wait_before(&self, policy: &RetryPolicy, error: &ErrorKind) -> Duration {
        policy.wait_before(self.stalled.max(1), error)
    }
}

/// A retry about to happen: what failed, and when the next attempt goes. A step that retries
/// can take many seconds; this is what the user is shown meanwhile (libraries don't print).
#[derive(Debug)]
pub struct Retrying<'a> {
    /// What kind of server answered: `"registry"`, or `"Helm repository"` for a chart download.
    pub server: &'static str,
    /// `HOST[:PORT]` of the server.
    pub host: &'a str,
    pub error: &'a ErrorKind,
    /// The attempt about to run (2 for the first retry) and the most there will be (for a
    /// blob upload, the most without progress).
    pub attempt: u32,
    pub attempts: u32,
    pub delay: Duration,
    /// For a blob upload: what the next attempt sends again.
    pub resend: Option<Resend>,
}

/// What the next attempt of a blob upload sends, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resend {
    pub digest: Digest,
    pub size: u64,
    /// Where the next attempt starts: 0 for a fresh upload session, or the byte up to which
    /// the registry said it kept the last one's.
    pub from: u64,
    /// Where in the blob the failed attempt broke off (bytes handed to the network).
    pub reached: u64,
    /// Attempts failed in a row without progress (see [`ProgressBudget`]).
    pub stalled: u32,
}

impl Resend {
    /// Bytes the next attempt sends.
    pub fn bytes(&self) -> u64 {
        self.size - self.from.min(self.size)
    }
}

impl fmt::Display for Resend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.digest.hex();
        let short = format!("sha256:{}…", &hex[..12]);
        if self.from == 0 {
            write!(
                f,
                "re-sending all {} of blob {short}",
                human_bytes(self.size)
            )?;
        } else {
            write!(
                f,
                "resuming blob {short} at {}: {} left to send, the registry kept the rest",
                human_bytes(self.from),
                human_bytes(self.bytes())
            )?;
        }
        write!(
            f,
            " (the last attempt broke off after {})",
            human_bytes(self.reached)
        )
    }
}

impl fmt::Display for Retrying<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}; ", self.server, self.host, self.error)?;
        if let Some(resend) = &self.resend {
            write!(f, "{resend}; ")?;
        }
        // The first retries come within a tenth of a second: "0.0 s" would read as no wait.
        let delay = if self.delay < Duration::from_millis(100) {
            format!("{} ms", self.delay.as_millis())
        } else {
            format!("{:.1} s", self.delay.as_secs_f64())
        };
        write!(
            f,
            "retrying in {delay}{} ",
            if self.error.retry_after().is_some() {
                format!(" as the {} asked", self.server)
            } else {
                String::new()
            },
        )?;
        match &self.resend {
            Some(r) => write!(
                f,
                "(attempt {}; {} of {} without progress)",
                self.attempt, r.stalled, self.attempts
            ),
            None => write!(f, "(attempt {} of {})", self.attempt, self.attempts),
        }
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
            server: "registry",
            host: "registry.internal:5000",
            error: &error,
            attempt: 2,
            attempts: 6,
            delay: Duration::from_millis(1250),
            resend: None,
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
            server: "registry",
            host: "registry.internal:5000",
            error: &error,
            attempt: 2,
            attempts: 6,
            delay: Duration::from_secs(20),
            resend: None,
        }
        .to_string();
        assert_eq!(
            line,
            "registry registry.internal:5000: the registry answered HTTP 429: slow down; retrying \
             in 20.0 s as the registry asked (attempt 2 of 6)"
        );
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn attempts_that_get_further_do_not_count_and_those_that_do_not_do() {
        let policy = fast(3);
        let mut budget = ProgressBudget::new(&policy, 64 * MIB);
        // Each break a few MiB later than the one before: none counts, however many.
        for mib in 1..=20 {
            assert!(budget.failed(mib * 3 * MIB), "{mib}");
            assert_eq!(budget.stalled(), 0);
        }
        assert_eq!((budget.tried(), budget.best()), (20, 60 * MIB));
        // Breaking at the same byte again, or barely further (less than 1 MiB), counts...
        assert!(budget.failed(60 * MIB));
        assert!(budget.failed(60 * MIB + MIB / 2));
        assert_eq!(budget.stalled(), 2);
        // ...until an attempt gets a step further, which starts the count again...
        assert!(budget.failed(62 * MIB));
        assert_eq!((budget.stalled(), budget.best()), (0, 62 * MIB));
        // ...and `attempts` in a row without progress end it.
        assert!(budget.failed(10 * MIB));
        assert!(budget.failed(62 * MIB));
        assert!(!budget.failed(0));
        assert_eq!((budget.tried(), budget.stalled()), (26, 3));
    }

    #[test]
    fn progress_is_a_megabyte_or_a_hundredth_of_a_huge_blob_so_the_budget_ends() {
        assert_eq!(progress_step(1000), MIB);
        assert_eq!(progress_step(64 * MIB), MIB);
        assert_eq!(progress_step(1000 * MIB), 10 * MIB);
        // A small blob never gets a step further: every failed attempt counts, as for any
        // other request.
        let mut budget = ProgressBudget::new(&fast(4), 1000);
        assert!(budget.failed(1000) && budget.failed(1000) && budget.failed(1000));
        assert!(!budget.failed(1000));
        // However the breaks fall, a blob gets at most 100 steps of progress, each followed by
        // fewer than `attempts` failures without.
        let size = 1000 * MIB;
        let mut budget = ProgressBudget::new(&fast(2), size);
        let mut reached = 0;
        while budget.failed(reached) {
            reached = (reached + 10 * MIB + 1).min(size);
        }
        assert!(budget.tried() <= 2 * 101, "{}", budget.tried());
        // The wait after progress is the first retry's again.
        let policy = RetryPolicy::default();
        let mut budget = ProgressBudget::new(&policy, 64 * MIB);
        let busy = ErrorKind::from_status(503, "busy");
        for _ in 0..4 {
            budget.failed(0);
        }
        assert!(budget.wait_before(&policy, &busy) >= policy.base * 8);
        budget.failed(32 * MIB);
        assert!(budget.wait_before(&policy, &busy) <= policy.base.mul_f64(1.25));
    }

    #[test]
    fn a_blob_retry_says_how_many_bytes_go_again() {
        let digest = Digest::of(b"big layer");
        let short = &digest.hex()[..12];
        let error = ErrorKind::Interrupted("connection reset by peer".into());
        let mut retrying = Retrying {
            server: "registry",
            host: "registry.internal:5000",
            error: &error,
            attempt: 4,
            attempts: 10,
            delay: Duration::from_millis(500),
            resend: Some(Resend {
                digest,
                size: 412 * MIB,
                from: 0,
                reached: 100 * MIB + MIB / 2,
                stalled: 1,
            }),
        };
        assert_eq!(
            retrying.to_string(),
            format!(
                "registry registry.internal:5000: the connection broke off before the registry \
                 answered: connection reset by peer; re-sending all 412.0 MiB of blob \
                 sha256:{short}… (the last attempt broke off after 100.5 MiB); retrying in 0.5 s \
                 (attempt 4; 1 of 10 without progress)"
            )
        );
        retrying.delay = Duration::from_millis(23);
        assert!(
            retrying
                .to_string()
                .contains("; retrying in 23 ms (attempt 4;")
        );
        // A registry that kept the first 100 MiB: only the rest goes.
        retrying.resend = retrying.resend.map(|r| Resend {
            from: 100 * MIB,
            ..r
        });
        assert!(
            retrying.to_string().contains(&format!(
                "resuming blob sha256:{short}… at 100.0 MiB: 312.0 MiB left to send, the \
                 registry kept the rest"
            )),
            "{retrying}"
        );
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        assert!(p.delay(1) >= p.base);
        assert!(p.delay(30) <= p.max.mul_f64(1.26));
    }
}
