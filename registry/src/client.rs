//! The registry client: oci-client for authentication, blob transfer and manifest upload;
//! bounded manifest downloads of our own (oci-client reads a manifest body whole, whatever its
//! size); retries around every call; every byte hashed against the digest it must have.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use sensei_core::digest::{Digest, Hasher};
use sensei_core::oci;
use tokio::sync::Mutex;

use crate::credentials::CredentialSource;
use crate::error::{ErrorKind, RegistryError, short};
use crate::retry::RetryPolicy;

/// Accept header for manifests: every kind a bundle may hold.
const MANIFEST_ACCEPT: [&str; 4] = [
    oci::OCI_INDEX,
    oci::OCI_MANIFEST,
    oci::DOCKER_MANIFEST_LIST,
    oci::DOCKER_MANIFEST,
];

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// PEM files of extra CAs to trust (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Hosts (`host[:port]`) spoken to over plain HTTP (`--plain-http`); all others use TLS.
    pub plain_http: Vec<String>,
    pub credentials: CredentialSource,
    pub retry: RetryPolicy,
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

    fn by_digest(&self, digest: &Digest) -> Reference {
        Reference::with_digest(self.host.clone(), self.path.clone(), digest.to_string())
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

/// A manifest or index as the registry sent it, its digest checked.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
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
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the client could not be built (a bad `--ca-file`, most likely): an input error.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate: {message}")]
    CaParse { path: PathBuf, message: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl Registry {
    pub fn new(settings: ClientSettings) -> Result<Self, SetupError> {
        let mut oci_certs = vec![];
        let mut http_certs = vec![];
        for path in &settings.ca_files {
            let pem = std::fs::read(path).map_err(|source| SetupError::CaRead {
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SetupError::CaParse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(SetupError::CaParse {
                    path: path.clone(),
                    message: "no BEGIN CERTIFICATE block".into(),
                });
            }
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
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            user_agent: concat!("sensei/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let oci =
            oci_client::Client::try_from(config).map_err(|e| SetupError::Client(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_certs_merge(http_certs)
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(120))
            .user_agent(concat!("sensei/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                oci,
                http,
                settings,
                auth: Mutex::new(HashMap::new()),
                headers: Mutex::new(HashMap::new()),
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

    fn retry(&self) -> RetryPolicy {
        self.inner.settings.retry
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
            Some(c) => RegistryAuth::Basic(c.username, c.password.to_string()),
            None => RegistryAuth::Anonymous,
        };
        self.inner.oci.store_auth_if_needed(host, &auth).await;
        cache.insert(host.to_owned(), auth.clone());
        Ok(auth)
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
        move |kind| RegistryError {
            registry,
            action,
            kind,
        }
    }

    /// Fetches a manifest or index by tag or digest, at most `limit` bytes (the descriptor's
    /// size when known, else the format's manifest limit), and checks its digest when it was
    /// asked for by digest or the registry named one.
    pub async fn manifest(
        &self,
        repo: &Repo,
        reference: &str,
        expected: Option<(Digest, u64)>,
    ) -> Result<FetchedManifest, RegistryError> {
        let action = format!("fetching manifest {}:{reference}", repo.path);
        let fail = self.fail(repo, action);
        let asked_digest = expected
            .map(|(d, _)| d)
            .or_else(|| reference.parse::<Digest>().ok());
        self.retry()
            .run(|attempt| self.manifest_once(repo, reference, expected, asked_digest, attempt > 0))
            .await
            .map_err(fail)
    }

    async fn manifest_once(
        &self,
        repo: &Repo,
        reference: &str,
        expected: Option<(Digest, u64)>,
        asked_digest: Option<Digest>,
        fresh_auth: bool,
    ) -> Result<FetchedManifest, ErrorKind> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme(&repo.host),
            repo.host,
            repo.path
        );
        let mut response = None;
        // One fresh token on a 401: tokens expire during long builds.
        for fresh in [fresh_auth, true] {
            let mut req = self
                .inner
                .http
                .get(&url)
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT.join(", "));
            if let Some(h) = self.authorization(repo, false, fresh).await? {
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
            let r = req.send().await.map_err(|e| ErrorKind::from_reqwest(&e))?;
            if r.status() == reqwest::StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            response = Some(r);
            break;
        }
        let response = response.ok_or(ErrorKind::Unauthorized)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ErrorKind::from_status(status.as_u16(), short(&body)));
        }
        let header_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let limit = expected.map_or(sensei_core::oci::MAX_MANIFEST_BYTES, |(_, s)| s);
        if let Some(len) = response.content_length()
            && len > limit
        {
            return Err(too_large_or_size(expected, len));
        }
        let bytes = read_bounded(response, limit).await.map_err(|e| match e {
            Bounded::Over(n) => too_large_or_size(expected, n),
            Bounded::Net(k) => k,
        })?;
        if let Some((_, size)) = expected
            && bytes.len() as u64 != size
        {
            return Err(ErrorKind::Size {
                what: "manifest",
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let digest = Digest::of(&bytes);
        for want in [asked_digest, header_digest].into_iter().flatten() {
            if want != digest {
                return Err(ErrorKind::Integrity {
                    what: "manifest",
                    expected: want,
                    actual: digest,
                });
            }
        }
        // The body's own mediaType wins over Content-Type, which some registries get wrong.
        let media_type = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .or(header_type)
            .unwrap_or_default();
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Streams a blob into `sink`, hashing as it goes. A dropped connection resumes with an
    /// HTTP Range request where the registry allows it (else the sink restarts from byte 0); a
    /// wrong size or digest fails without retry. `progress` gets each chunk's length, and a
    /// negative correction when a restart throws bytes away.
    pub async fn pull_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn BlobSink + Send),
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let fail = self.fail(repo, format!("fetching blob {digest} from {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let reference = repo.by_digest(digest);
        let digest_str = digest.to_string();
        let state = std::sync::Mutex::new(PullState {
            hasher: Hasher::new(),
            written: 0,
            sink,
        });
        let result = self
            .retry()
            .run(|_| self.pull_attempt(&reference, &digest_str, size, &state, progress))
            .await;
        let state = state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = result.and_then(|()| {
            if state.written != size {
                return Err(ErrorKind::Size {
                    what: "blob",
                    expected: size,
                    actual: state.written,
                });
            }
            let actual = state.hasher.finish();
            if actual != *digest {
                return Err(ErrorKind::Integrity {
                    what: "blob",
                    expected: *digest,
                    actual,
                });
            }
            Ok(())
        });
        result.map_err(fail)
    }

    /// A small blob (an image config) into memory; `size` comes from its descriptor and the
    /// caller has bounded it.
    pub async fn pull_small_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
    ) -> Result<Bytes, RegistryError> {
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        self.pull_blob(repo, digest, size, &mut buf, &|_| {})
            .await?;
        Ok(buf.into())
    }

    async fn pull_attempt(
        &self,
        reference: &Reference,
        digest: &str,
        size: u64,
        state: &std::sync::Mutex<PullState<'_>>,
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<(), ErrorKind> {
        let offset = lock(state).written;
        let response = self
            .inner
            .oci
            .pull_blob_stream_partial(reference, digest, offset, None)
            .await
            .map_err(|e| ErrorKind::from_oci(&e))?;
        let mut stream = match response {
            BlobResponse::Partial(s) => s.stream,
            BlobResponse::Full(s) => {
                // The registry ignored Range (or this is the first attempt): from byte 0.
                let mut st = lock(state);
                if st.written > 0 {
                    progress(-(st.written as i64));
                    st.sink.restart()?;
                }
                st.hasher = Hasher::new();
                st.written = 0;
                s.stream
            }
        };
        let result = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ErrorKind::Connect(e.to_string()))?;
                let mut st = lock(state);
                if st.written + chunk.len() as u64 > size {
                    return Err(ErrorKind::Size {
                        what: "blob",
                        expected: size,
                        actual: st.written + chunk.len() as u64,
                    });
                }
                st.sink.write_chunk(&chunk)?;
                st.hasher.update(&chunk);
                st.written += chunk.len() as u64;
                progress(chunk.len() as i64);
            }
            Ok(())
        }
        .await;
        lock(state).sink.flush()?;
        result?;
        if lock(state).written < size {
            return Err(ErrorKind::Connect(
                "the connection ended before the whole blob arrived".into(),
            ));
        }
        Ok(())
    }

    /// Whether the repository already has the blob (HEAD).
    pub async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool, RegistryError> {
        let fail = self.fail(repo, format!("checking blob {digest} in {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let reference = repo.by_digest(digest);
        let digest = digest.to_string();
        self.retry()
            .run(|_| async {
                self.inner
                    .oci
                    .blob_exists(&reference, &digest)
                    .await
                    .map_err(|e| ErrorKind::from_oci(&e))
            })
            .await
            .map_err(fail)
    }

    /// Asks the registry to link a blob it holds in `from` into `repo` without an upload.
    /// `false` means it declined (another user's repository, a registry without mounting):
    /// upload instead.
    pub async fn mount_blob(&self, repo: &Repo, from: &str, digest: &Digest) -> bool {
        if self.auth_for(&repo.host).await.is_err() {
            return false;
        }
        let target = repo.by_digest(digest);
        let source = Reference::with_digest(repo.host.clone(), from.to_owned(), digest.to_string());
        self.inner
            .oci
            .mount_blob(&target, &source, &digest.to_string())
            .await
            .is_ok()
    }

    /// Uploads a blob in one streamed PUT. `body` is called for each attempt and must give
    /// the blob's bytes from the start; the registry checks the digest before accepting it.
    pub async fn push_blob<F, S>(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        body: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Result<S, std::io::Error>,
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let fail = self.fail(repo, format!("uploading blob {digest} to {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let reference = repo.by_digest(digest);
        let digest_str = digest.to_string();
        self.retry()
            .run(|_| async {
                let stream = body()
                    .map_err(|e| ErrorKind::Source(e.to_string()))?
                    .map_err(oci_client::errors::OciDistributionError::IoError);
                self.inner
                    .oci
                    .push_blob_stream(&reference, stream, &digest_str, Some(size))
                    .await
                    .map(|_| ())
                    .map_err(|e| ErrorKind::from_oci(&e))
            })
            .await
            .map_err(fail)
    }

    /// Uploads a manifest or index byte for byte, under a tag or its digest.
    pub async fn push_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let fail = self.fail(
            repo,
            format!("uploading manifest {}:{reference}", repo.path),
        );
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let target = match reference.parse::<Digest>() {
            Ok(d) => repo.by_digest(&d),
            Err(_) => repo.by_tag(reference),
        };
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|e| fail_kind_protocol(e.to_string()))
            .map_err(self.fail(
                repo,
                format!("uploading manifest {}:{reference}", repo.path),
            ))?;
        self.retry()
            .run(|_| async {
                self.inner
                    .oci
                    .push_manifest_raw(&target, bytes.clone(), content_type.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| ErrorKind::from_oci(&e))
            })
            .await
            .map_err(fail)
    }
}

fn fail_kind_protocol(message: String) -> ErrorKind {
    ErrorKind::Protocol(message)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    media_type: Option<String>,
}

fn too_large_or_size(expected: Option<(Digest, u64)>, actual: u64) -> ErrorKind {
    match expected {
        Some((_, size)) => ErrorKind::Size {
            what: "manifest",
            expected: size,
            actual,
        },
        None => ErrorKind::TooLarge {
            what: "a manifest",
            limit: sensei_core::oci::MAX_MANIFEST_BYTES,
        },
    }
}

enum Bounded {
    Over(u64),
    Net(ErrorKind),
}

/// Reads a response body, stopping as soon as it passes `limit`.
async fn read_bounded(response: reqwest::Response, limit: u64) -> Result<Bytes, Bounded> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Bounded::Net(ErrorKind::from_reqwest(&e)))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(Bounded::Over((out.len() + chunk.len()) as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a downloaded blob goes: written chunk by chunk, restarted from zero if the
/// registry won't resume.
pub trait BlobSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// Throws away what was written.
    fn restart(&mut self) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobSink for Vec<u8> {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// A file being downloaded into, buffered.
#[derive(Debug)]
pub struct FileSink(std::io::BufWriter<std::fs::File>);

impl FileSink {
    pub fn new(file: std::fs::File) -> Self {
        Self(std::io::BufWriter::with_capacity(1 << 20, file))
    }
}

impl BlobSink for FileSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.write_all(chunk)
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        let f = self.0.get_mut();
        f.set_len(0)?;
        f.seek(std::io::SeekFrom::Start(0))?;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

struct PullState<'a> {
    hasher: Hasher,
    written: u64,
    sink: &'a mut (dyn BlobSink + Send),
}
