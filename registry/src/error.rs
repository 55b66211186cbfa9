//! What can go wrong talking to a registry, said so that the operator knows which registry,
//! which request, and what to do about it.

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
    #[error(
        "authentication required (401) and no credentials were found for this registry: add them to the Docker config.json (`docker login HOST`; the bundler's --registry-config names another file), or for push pass --username with --password-stdin"
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
    #[error(
        "TLS failed: {0}; if the registry uses a private CA, pass its certificate with --ca-file, or name the host with --plain-http if it serves plain HTTP"
    )]
    Tls(String),
    #[error("cannot connect: {0}; check the host and port, and that the registry is running")]
    Connect(String),
    #[error("the registry answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
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
            ErrorKind::Connect(_) => true,
            ErrorKind::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
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
            },
        }
    }

    /// Sorts a reqwest failure: TLS problems (found in the error's source chain), connection
    /// problems (transient), and HTTP statuses.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        if let Some(status) = e.status() {
            return Self::from_status(status.as_u16(), e.to_string());
        }
        let chain = error_chain(e);
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("invalidcontenttype")
        {
            ErrorKind::Tls(chain)
        } else {
            ErrorKind::Connect(chain)
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
                    },
                }
            }
            E::IoError(io) => ErrorKind::Connect(io.to_string()),
            other => ErrorKind::Protocol(other.to_string()),
        }
    }
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
    fn long_bodies_are_cut() {
        let long = "x".repeat(1000);
        assert!(short(&long).chars().count() <= 201);
        assert_eq!(short("  ok \n"), "ok");
    }
}
