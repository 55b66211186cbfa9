//! What can go wrong talking to a registry, said so that the operator knows which registry,
//! which request, and what to do about it.

use std::time::Duration;

use sensei_core::digest::Digest;

/// A failed registry operation. Every variant is an outside failure (exit 3 in both binaries).
#[derive(Debug, thiserror::Error)]
#[error("{registry}: {action}: {kind}")]
pub struct RegistryError {
    /// The host contacted (`registry.internal:5000`).
    pub registry: String,
    /// What was being done (`pulling manifest sensei/api:1.2.0`).
    pub action: String,
    pub kind: ErrorKind,
}

/// The cause, with the fix in its message.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// No credentials for the host, or none it accepts without a token. Which flags give
    /// credentials is the binaries' to say.
    #[error(
        "authentication required (401) and no credentials were found for this registry: add them to Docker's config.json (`docker login HOST`)"
    )]
    Unauthorized,
    #[error(
        "the registry rejected the credentials of user {user:?} (401): check the user name and password"
    )]
    CredentialsRejected { user: String },
    #[error(
        "access denied (403): the credentials are valid but may not do this; check the account's permissions on this repository"
    )]
    Forbidden,
    #[error("not found (404): check the repository name, tag or digest")]
    NotFound,
    /// The TLS handshake failed: most often a certificate from a CA not trusted here, or a
    /// server that speaks plain HTTP. The flags that fix either are the binaries' to name.
    #[error(
        "TLS failed: {0}; the server's certificate is not signed by a trusted CA, or the server speaks plain HTTP"
    )]
    Tls(String),
    #[error("cannot connect: {0}; check the host and port, and that the server is running")]
    Connect(String),
    /// The connection broke after the request went out: a reset, a proxy cutting it, a
    /// timeout. Nothing says whether the registry acted on it.
    #[error("the connection broke off before the registry answered: {0}")]
    Interrupted(String),
    /// A blob upload whose attempts kept failing without getting any further
    /// ([`crate::retry::ProgressBudget`]).
    #[error(
        "gave up after {tried} attempts, the last {stalled} in a row getting no further than {} \
         of its {}; the last failure: {last}",
        human_bytes(*.best),
        human_bytes(*.size)
    )]
    Stalled {
        tried: u32,
        stalled: u32,
        best: u64,
        size: u64,
        last: Box<ErrorKind>,
    },
    /// A step that retried on its own ran out of attempts: not worth retrying again from the
    /// request around it (that would multiply the attempts, and the wait, by its own).
    #[error("gave up after {tried} attempts: {last}")]
    GaveUp { tried: u32, last: Box<ErrorKind> },
    #[error("the registry answered HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// How long the registry asked to wait before trying again (`Retry-After`).
        retry_after: Option<Duration>,
    },
    #[error(
        "{what} {expected} arrived with sha256 {actual}: the registry (or something between) sent different bytes; nothing was kept"
    )]
    Integrity {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} is {actual} bytes, {expected} were expected; nothing was kept")]
    Size {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("the response is larger than the {limit}-byte limit for {what}")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("the registry broke the distribution protocol: {0}")]
    Protocol(String),
    #[error("reading credentials: {0}")]
    Credentials(String),
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the data to upload failed: {0}")]
    Source(String),
}

impl ErrorKind {
    /// Worth another try: the network, a busy or restarting registry, or a rate limit.
    pub fn is_transient(&self) -> bool {
        match self {
            ErrorKind::Connect(_) | ErrorKind::Interrupted(_) => true,
            ErrorKind::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The wait the registry asked for with its answer (a 429 or 503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The status of an HTTP answer, as one of the kinds above.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Status {
                status,
                message: message.into(),
                retry_after: None,
            },
        }
    }

    /// An answer that is not a success, with the `Retry-After` it carries: rate limiters
    /// (429) and registries in maintenance (503) say how long to wait, and retrying sooner
    /// only spends the attempts.
    pub fn from_response(
        status: u16,
        headers: &http::HeaderMap,
        message: impl Into<String>,
    ) -> Self {
        let mut kind = Self::from_status(status, message);
        if let ErrorKind::Status { retry_after, .. } = &mut kind {
            *retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        }
        kind
    }

    /// Sorts a reqwest failure: TLS problems (found in the error's source chain), connection
    /// problems (transient), and HTTP statuses.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        if let Some(status) = e.status() {
            return Self::from_status(status.as_u16(), e.to_string());
        }
        let mut chain = error_chain(e);
        // The URL is long (an upload session's carries its state) and the error's context
        // already says what was being done.
        if let Some(url) = e.url() {
            chain = chain.replace(&format!(" for url ({url})"), "");
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("invalidcontenttype")
        {
            ErrorKind::Tls(chain)
        } else if e.is_connect() {
            ErrorKind::Connect(chain)
        } else {
            ErrorKind::Interrupted(chain)
        }
    }

    /// Sorts an oci-client failure.
    pub fn from_oci(e: &oci_client::errors::OciDistributionError) -> Self {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        match e {
            E::RequestError(r) => Self::from_reqwest(r),
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => ErrorKind::Unauthorized,
            E::ServerError { code, message, .. } => Self::from_status(*code, short(message)),
            E::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                match first.map(|e| &e.code) {
                    Some(C::Unauthorized) => ErrorKind::Unauthorized,
                    Some(C::Denied) => ErrorKind::Forbidden,
                    Some(C::Toomanyrequests) => ErrorKind::Status {
                        status: 429,
                        message: "too many requests".into(),
                        retry_after: None,
                    },
                    Some(
                        C::BlobUnknown
                        | C::ManifestUnknown
                        | C::NameUnknown
                        | C::NotFound
                        | C::ManifestBlobUnknown,
                    ) => ErrorKind::NotFound,
                    _ => ErrorKind::Status {
                        status: 400,
                        message: envelope.to_string(),
                        retry_after: None,
                    },
                }
            }
            E::IoError(io) => ErrorKind::Connect(io.to_string()),
            other => ErrorKind::Protocol(other.to_string()),
        }
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): a number of seconds, or an HTTP date, which is
/// measured from `now` (a date already past means no wait). Anything else is ignored.
fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// The error and its sources on one line: reqwest's own message is often just "error sending
/// request", with the useful part (the certificate problem, "connection refused") underneath.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Bytes in a short human form, binary units: `512 B`, `64.0 MiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Registry error bodies can be whole HTML pages; keep the start.
pub(crate) fn short(message: &str) -> String {
    let trimmed = message.trim();
    match trimmed.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_sort_into_kinds() {
        assert!(matches!(
            ErrorKind::from_status(401, ""),
            ErrorKind::Unauthorized
        ));
        assert!(matches!(
            ErrorKind::from_status(403, ""),
            ErrorKind::Forbidden
        ));
        assert!(matches!(
            ErrorKind::from_status(404, ""),
            ErrorKind::NotFound
        ));
        assert!(ErrorKind::from_status(503, "").is_transient());
        assert!(ErrorKind::from_status(429, "").is_transient());
        assert!(!ErrorKind::from_status(400, "").is_transient());
        assert!(!ErrorKind::Unauthorized.is_transient());
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now: jiff::Timestamp = "2026-12-02T17:00:00Z".parse().unwrap();
        let at = |v| parse_retry_after(v, now);
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(at(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            at("Wed, 02 Dec 2026 17:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // A date already past: no wait.
        assert_eq!(at("Wed, 02 Dec 2026 16:59:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("soon"), None);
        assert_eq!(at("-5"), None);

        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let kind = ErrorKind::from_response(429, &headers, "slow down");
        assert_eq!(kind.retry_after(), Some(Duration::from_secs(3)));
        assert!(kind.is_transient());
        // Only a status that is retried carries it.
        assert_eq!(
            ErrorKind::from_response(404, &headers, "").retry_after(),
            None
        );
        assert_eq!(
            ErrorKind::from_response(503, &http::HeaderMap::new(), "").retry_after(),
            None
        );
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = "x".repeat(1000);
        assert!(short(&long).chars().count() <= 201);
        assert_eq!(short("  ok \n"), "ok");
    }
}
