//! The one HTTP client of a run: how to reach registries and Helm repositories (CAs, plain
//! HTTP, proxies from the environment, timeouts, credentials), and authentication through
//! oci-client. Blobs, manifests and plain downloads are in the submodules; every call retries
//! what passes and hashes every byte against the digest it must have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use tokio::sync::Mutex;

use crate::credentials::CredentialSource;
use crate::error::{ErrorKind, RegistryError};
use crate::retry::{RetryNotice, RetryPolicy, Retrying};

mod blob;
mod catalog;
mod download;
mod manifest;
mod request;
mod session;
mod upload;

pub use blob::{BlobSink, FileSink};
pub use download::Download;
pub use manifest::FetchedManifest;
pub use session::Staged;

/// A stuck connection attempt fails after this (and is retried as any connection failure).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// A server that sends nothing for this long has gone away.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
const USER_AGENT: &str = concat!("sensei/", env!("CARGO_PKG_VERSION"));

/// How to reach registries and Helm repositories. Proxies come from the environment
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), read by reqwest for every request of the client.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// PEM files of extra CAs to trust, for registries and Helm repositories alike.
    pub ca_files: Vec<PathBuf>,
    /// Registry hosts (`host[:port]`) spoken to over plain HTTP; all others use TLS. (A Helm
    /// repository's URL says its scheme itself.)
    pub plain_http: Vec<String>,
    pub credentials: CredentialSource,
    pub retry: RetryPolicy,
    /// Told of every retry, so a caller can show why a step takes long.
    pub on_retry: Option<RetryNotice>,
}

/// A repository on a registry: the host to contact and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub host: String,
    pub path: String,
}

impl Repo {
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            path: path.into(),
        }
    }

    fn by_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), self.path.clone(), tag.to_owned())
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

/// A client for any number of registries, shared by parallel transfers.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    oci: oci_client::Client,
    http: reqwest::Client,
    settings: ClientSettings,
    /// Credentials per host, looked up once.
    auth: Mutex<HashMap<String, RegistryAuth>>,
    /// The `Authorization` header for our own requests, per repository and operation.
    headers: Mutex<HashMap<(String, String, bool), Option<String>>>,
    /// The user whose credentials were sent to each host, so a 401 can say "rejected" rather
    /// than "missing".
    users: std::sync::Mutex<HashMap<String, String>>,
    /// Hosts without credentials that answered `/v2/` without asking for any: oci-client is
    /// not told about them, as it would otherwise probe `/v2/` again before every request.
    open: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The retries told to `on_retry` so far: the highest attempt, and when.
    noticed: std::sync::Mutex<Option<(u32, std::time::Instant)>>,
}

/// A retry no further along than one told this recently is not told again: parallel requests
/// failing together (a registry restarting) make one line per attempt, not one per request.
const NOTICE_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the client could not be built: a bad CA file (an input error), or the TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "CA file {path} holds no PEM certificate ({message}); give a PEM file of one or more CA \
         certificates (-----BEGIN CERTIFICATE-----)"
    )]
    CaParse { path: PathBuf, message: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl SetupError {
    /// True when the problem is a CA file (unreadable, or not PEM certificates).
    pub fn is_ca_file(&self) -> bool {
        matches!(self, Self::CaRead { .. } | Self::CaParse { .. })
    }
}

/// One CA file: its PEM text and the certificates parsed from it.
#[derive(Debug)]
pub struct CaFile {
    pub pem: Vec<u8>,
    pub certs: Vec<reqwest::Certificate>,
}

/// Reads a CA file: a PEM bundle of one or more certificates. A file that can't be read,
/// or holds no certificate, fails naming the file.
pub fn read_ca_file(path: &Path) -> Result<CaFile, SetupError> {
    let pem = std::fs::read(path).map_err(|source| SetupError::CaRead {
        path: path.to_owned(),
        source,
    })?;
    let parse = |message: String| SetupError::CaParse {
        path: path.to_owned(),
        message,
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| parse(crate::error::error_chain(&e)))?;
    if certs.is_empty() {
        return Err(parse("no BEGIN CERTIFICATE block".into()));
    }
    Ok(CaFile { pem, certs })
}

impl Registry {
    pub fn new(settings: ClientSettings) -> Result<Self, SetupError> {
        let mut oci_certs = vec![];
        let mut http_certs = vec![];
        for path in &settings.ca_files {
            let CaFile { pem, certs } = read_ca_file(path)?;
            http_certs.extend(certs);
            oci_certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem,
            });
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.plain_http.clone()),
            extra_root_certificates: oci_certs,
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let oci =
            oci_client::Client::try_from(config).map_err(|e| SetupError::Client(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_certs_merge(http_certs)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                oci,
                http,
                settings,
                auth: Mutex::new(HashMap::new()),
                headers: Mutex::new(HashMap::new()),
                users: std::sync::Mutex::new(HashMap::new()),
                open: std::sync::Mutex::new(std::collections::HashSet::new()),
                noticed: std::sync::Mutex::new(None),
            }),
        })
    }

    fn scheme(&self, host: &str) -> &'static str {
        if self.inner.settings.plain_http.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        }
    }

    /// `op` under the retry policy, each retry told to `on_retry` as one on registry `host`.
    async fn retried<T, F, Fut>(&self, host: &str, op: F) -> Result<T, ErrorKind>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, ErrorKind>>,
    {
        self.retried_as("registry", host, op).await
    }

    /// `op` under the retry policy, each retry told to `on_retry` as one on `host`, a `server`
    /// ("registry", "Helm repository").
    async fn retried_as<T, F, Fut>(
        &self,
        server: &'static str,
        host: &str,
        op: F,
    ) -> Result<T, ErrorKind>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, ErrorKind>>,
    {
        let policy = self.inner.settings.retry;
        policy
            .run(op, |attempt, delay, error| {
                self.tell(&Retrying {
                    server,
                    host,
                    error,
                    attempt,
                    attempts: policy.attempts,
                    delay,
                    resend: None,
                });
            })
            .await
    }

    /// Tells `on_retry` of a retry, if it is news ([`Registry::worth_telling`]); a blob of a
    /// megabyte or more about to be sent again always is: it is why the push slows down.
    fn tell(&self, retrying: &Retrying<'_>) {
        let Some(notice) = &self.inner.settings.on_retry else {
            return;
        };
        let big = retrying.resend.is_some_and(|r| r.bytes() >= 1 << 20);
        if big || self.worth_telling(retrying.attempt, retrying.delay) {
            notice.notify(retrying);
        }
    }

    /// Whether a retry at `attempt` after `delay` is news: further along than any told, the
    /// first for a while ([`NOTICE_QUIET`]), or a pause that long itself (a registry asking
    /// to wait).
    fn worth_telling(&self, attempt: u32, delay: std::time::Duration) -> bool {
        let mut noticed = lock(&self.inner.noticed);
        let now = std::time::Instant::now();
        let news = match *noticed {
            Some((told, at)) => {
                attempt > told || now.duration_since(at) >= NOTICE_QUIET || delay >= NOTICE_QUIET
            }
            None => true,
        };
        if news {
            *noticed = Some((attempt, now));
        }
        news
    }

    /// Looks up the host's credentials once and hands them to oci-client.
    async fn auth_for(&self, host: &str) -> Result<RegistryAuth, ErrorKind> {
        let mut cache = self.inner.auth.lock().await;
        if let Some(auth) = cache.get(host) {
            return Ok(auth.clone());
        }
        let source = self.inner.settings.credentials.clone();
        let h = host.to_owned();
        let creds = tokio::task::spawn_blocking(move || source.for_host(&h))
            .await
            .map_err(|e| ErrorKind::Credentials(e.to_string()))?
            .map_err(|e| ErrorKind::Credentials(e.to_string()))?;
        let auth = match creds {
            Some(c) => {
                lock(&self.inner.users).insert(host.to_owned(), c.username.clone());
                RegistryAuth::Basic(c.username, c.password.to_string())
            }
            None => RegistryAuth::Anonymous,
        };
        if matches!(auth, RegistryAuth::Anonymous) && self.needs_no_auth(host).await? {
            lock(&self.inner.open).insert(host.to_owned());
        } else {
            self.inner.oci.store_auth_if_needed(host, &auth).await;
        }
        cache.insert(host.to_owned(), auth.clone());
        Ok(auth)
    }

    /// `GET /v2/`: true if the registry answers it without asking for credentials (a private
    /// registry open to the network), false if it asks for them (or fails for good in another
    /// way, TLS say: the real request reports that). A busy registry or a broken connection is
    /// asked again, as any request: taken for "asks for credentials", it would cost every later
    /// request a probe of its own; still failing, it fails the request, for good: most requests
    /// probe from inside their own retries, and retrying a probe that already used its attempts
    /// made a stopped registry take minutes (twelve times twelve attempts) to report.
    async fn needs_no_auth(&self, host: &str) -> Result<bool, ErrorKind> {
        let url = format!("{}://{host}/v2/", self.scheme(host));
        self.retried(host, |_| async {
            let response = self
                .inner
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| ErrorKind::from_reqwest(&e))?;
            let status = response.status();
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(ErrorKind::from_response(
                    status.as_u16(),
                    response.headers(),
                    "checking the API version",
                ));
            }
            Ok(status.is_success())
        })
        .await
        .or_else(|e| {
            if e.is_transient() {
                Err(ErrorKind::GaveUp {
                    tried: self.inner.settings.retry.attempts,
                    last: Box::new(e),
                })
            } else {
                Ok(false)
            }
        })
    }

    /// The Authorization header for our own requests: a bearer token from the registry's
    /// token service (through oci-client), else basic credentials, else none.
    async fn authorization(
        &self,
        repo: &Repo,
        push: bool,
        fresh: bool,
    ) -> Result<Option<String>, ErrorKind> {
        let key = (repo.host.clone(), repo.path.clone(), push);
        if !fresh && let Some(h) = self.inner.headers.lock().await.get(&key) {
            return Ok(h.clone());
        }
        let auth = self.auth_for(&repo.host).await?;
        if lock(&self.inner.open).contains(&repo.host) {
            return Ok(None);
        }
        let op = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        let reference = repo.by_tag("latest");
        let token = self
            .inner
            .oci
            .auth(&reference, &auth, op)
            .await
            .map_err(|e| ErrorKind::from_oci(&e))?;
        let header = match (token, &auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, RegistryAuth::Basic(u, p)) => {
                use base64::Engine as _;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ))
            }
            (None, _) => None,
        };
        self.inner.headers.lock().await.insert(key, header.clone());
        Ok(header)
    }

    fn fail(&self, repo: &Repo, action: String) -> impl FnOnce(ErrorKind) -> RegistryError {
        let registry = repo.host.clone();
        let inner = self.inner.clone();
        move |kind| {
            // Looked up when the error happens: credentials are read on first use.
            let user = lock(&inner.users).get(&registry).cloned();
            RegistryError {
                kind: match (kind, user) {
                    (ErrorKind::Unauthorized, Some(user)) => {
                        ErrorKind::CredentialsRejected { user }
                    }
                    (kind, _) => kind,
                },
                registry,
                action,
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parallel_retries_are_told_once_per_attempt() {
        let registry = Registry::new(ClientSettings::default()).unwrap();
        let short = std::time::Duration::from_millis(300);
        // Several requests failing together: their first retries make one notice, the next
        // attempt one more, and an attempt already told is not told again soon after...
        assert!(registry.worth_telling(2, short));
        assert!(!registry.worth_telling(2, short));
        assert!(!registry.worth_telling(2, short));
        assert!(registry.worth_telling(3, short));
        assert!(!registry.worth_telling(2, short));
        assert!(!registry.worth_telling(3, short));
        assert!(registry.worth_telling(4, short));
        // ...unless the pause is long by itself (a registry's Retry-After).
        assert!(registry.worth_telling(2, NOTICE_QUIET));
    }
}
