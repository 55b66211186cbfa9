//! Charts from Helm HTTP repositories: `index.yaml`, then the `.tgz` it points to, checked
//! against the digest the index gives.
//!
//! Nothing a repository sends is trusted: both downloads are read chunk by chunk under a size
//! bound (a hostile or broken server can't make us buffer without limit), the chart's sha256 must
//! equal the index's, and the packaged chart must be the name and version asked for. The chart's
//! bytes are kept exactly as downloaded, so its digest stays the one the repository publishes.

mod index;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use sensei_core::digest::{Digest, Hasher};
use sensei_registry::error::error_chain;
use url::Url;

use super::{ChartError, MAX_CHART_BYTES, PackagedChart, from_tgz_bytes};
use index::{Lookup, shown};

/// Upper bound on `index.yaml`. Large public repositories publish indexes of 10–20 MiB.
pub const MAX_INDEX_BYTES: u64 = 32 * 1024 * 1024;

/// A stuck connection attempt fails after this; the build goes on failing fast rather than hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A server that sends nothing for this long has gone away.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A chart fetched from a Helm repository.
#[derive(Debug, Clone)]
pub struct RepoChart {
    pub chart: PackagedChart,
    /// Where the `.tgz` came from (any password in it replaced by `***`), for the plan's
    /// `source` and for messages.
    pub url: String,
    /// The digest the index gives, which the download matched. `None` when the index gives no
    /// digest: the chart was then downloaded unchecked, which the caller should report.
    pub index_digest: Option<Digest>,
}

/// Why a chart could not be fetched from a Helm repository. Every variant names the URL (with
/// any password hidden); see [`RepoError::is_input`] for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The `--ca-file` (read as the registry client reads it).
    #[error(transparent)]
    CaFile(#[from] sensei_registry::SetupError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error(
        "{url}: {cause} (while downloading {what}); check the URL and that the server is \
         reachable from this machine"
    )]
    Network {
        url: String,
        what: &'static str,
        cause: String,
    },
    #[error(
        "{url}: the server answered {status}: the repository needs credentials; give them in \
         the repository URL (https://USER:TOKEN@host/path) or download the chart and use path:"
    )]
    Credentials { url: String, status: StatusCode },
    #[error("{url}: the server answered {status} for {what}{hint}")]
    Status {
        url: String,
        status: StatusCode,
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "{url}: {what} is larger than {limit} bytes; that is not a Helm repository's \
         {what}, or the server is misbehaving"
    )]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
    },
    #[error("{url}: not a Helm repository index: {problem}")]
    Index { url: String, problem: String },
    #[error(
        "Helm repository {repo} has no chart named {name:?} (its index lists {known} charts); \
         check name: in the spec"
    )]
    ChartNotFound {
        repo: String,
        name: String,
        known: usize,
    },
    #[error(
        "Helm repository {repo} has no version {version} of chart {name} (it has: {}); \
         check version: in the spec",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    VersionNotFound {
        repo: String,
        name: String,
        version: String,
        /// Newest first.
        available: Vec<String>,
    },
    #[error("Helm repository {repo}: chart {chart} has no download URL in the index")]
    NoUrl { repo: String, chart: String },
    #[error("Helm repository {repo}: chart {chart} has download URL {url:?}, which {problem}")]
    BadUrl {
        repo: String,
        chart: String,
        url: String,
        problem: String,
    },
    #[error(
        "Helm repository {repo}: chart {chart} has digest {digest:?} in the index, which is \
         not a sha256 digest"
    )]
    BadDigest {
        repo: String,
        chart: String,
        digest: String,
    },
    #[error(
        "{url}: the chart's sha256 is {actual}, but the repository index says {expected}; the \
         download is corrupt or the repository was changed (refusing to use it)"
    )]
    Integrity {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(
        "{url}: the downloaded chart is {found}, not {expected} as asked and listed in the \
         repository index"
    )]
    Mismatch {
        url: String,
        expected: String,
        found: String,
    },
}

impl RepoError {
    /// True for problems with the user's input (the `--ca-file`): exit code 2. Everything else
    /// (network, HTTP status, integrity, a chart or version the repository doesn't have, a
    /// broken download) is an outside failure: exit code 3.
    pub fn is_input(&self) -> bool {
        matches!(self, Self::CaFile(_))
    }
}

/// The HTTP client for Helm repositories: the system's roots plus the CAs in `ca_file` (PEM,
/// one or more certificates), timeouts on connecting and on silent servers, and redirects
/// followed (reqwest drops credentials when a redirect leaves the host).
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, RepoError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("sensei-bundler/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    if let Some(path) = ca_file {
        builder = builder.tls_certs_merge(sensei_registry::read_ca_file(path)?.certs);
    }
    builder
        .build()
        .map_err(|e| RepoError::Client(error_chain(&e)))
}

/// Downloads chart `name` at `version` from the Helm repository at `repo`: reads its
/// `index.yaml`, downloads the `.tgz` the index lists first, checks it against the index's
/// digest, and checks that it is the chart and version asked for.
pub async fn fetch_repo_chart(
    http: &reqwest::Client,
    repo: &Url,
    name: &str,
    version: &semver::Version,
) -> Result<RepoChart, RepoError> {
    let repo_shown = shown(repo);
    let index_url = index::index_url(repo).map_err(|problem| RepoError::Index {
        url: repo_shown.clone(),
        problem,
    })?;
    let (index_bytes, _) = get_bounded(http, &index_url, MAX_INDEX_BYTES, "index.yaml").await?;
    let entry = index::lookup(&index_bytes, repo, name, version).map_err(|lookup| {
        let repo = repo_shown.clone();
        let chart = format!("{name} {version}");
        match lookup {
            Lookup::Syntax(problem) => RepoError::Index {
                url: shown(&index_url),
                problem,
            },
            Lookup::NoChart { known } => RepoError::ChartNotFound {
                repo,
                name: name.to_owned(),
                known,
            },
            Lookup::NoVersion { available } => RepoError::VersionNotFound {
                repo,
                name: name.to_owned(),
                version: version.to_string(),
                available,
            },
            Lookup::NoUrl => RepoError::NoUrl { repo, chart },
            Lookup::BadUrl { url, problem } => RepoError::BadUrl {
                repo,
                chart,
                url,
                problem,
            },
            Lookup::BadDigest { digest } => RepoError::BadDigest {
                repo,
                chart,
                digest,
            },
        }
    })?;
    drop(index_bytes);

    let url = shown(&entry.url);
    let (tgz, actual) = get_bounded(http, &entry.url, MAX_CHART_BYTES, "the chart").await?;
    if let Some(expected) = entry.digest
        && expected != actual
    {
        return Err(RepoError::Integrity {
            url,
            expected,
            actual,
        });
    }
    let chart = from_tgz_bytes(tgz, &url)?;
    if chart.name != name || chart.version != *version {
        return Err(RepoError::Mismatch {
            url,
            expected: format!("{name} {version}"),
            found: format!("{} {}", chart.name, chart.version),
        });
    }
    Ok(RepoChart {
        chart,
        url,
        index_digest: entry.digest,
    })
}

/// GETs `url` into memory, failing as soon as more than `limit` bytes arrive (the declared
/// length is checked first, but not trusted). Returns the body and its sha256.
async fn get_bounded(
    http: &reqwest::Client,
    url: &Url,
    limit: u64,
    what: &'static str,
) -> Result<(Vec<u8>, Digest), RepoError> {
    let network = |e: reqwest::Error| RepoError::Network {
        url: shown(url),
        what,
        cause: error_chain(&e.without_url()),
    };
    let mut response = http.get(url.clone()).send().await.map_err(network)?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RepoError::Credentials {
            url: shown(url),
            status,
        });
    }
    if !status.is_success() {
        let hint = match (status, what) {
            (StatusCode::NOT_FOUND, "index.yaml") => {
                "; is this a Helm repository? (it serves index.yaml under its URL)"
            }
            (StatusCode::NOT_FOUND, _) => "; the repository index lists a file it doesn't serve",
            (s, _) if s.is_server_error() => "; the server failed, try again later",
            _ => "",
        };
        return Err(RepoError::Status {
            url: shown(url),
            status,
            what,
            hint,
        });
    }
    let too_large = || RepoError::TooLarge {
        url: shown(url),
        what,
        limit,
    };
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // The declared length only sizes the buffer, capped: a server may lie about it.
    let capacity = declared.unwrap_or(0).min(limit).min(8 * 1024 * 1024);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut hasher = Hasher::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        hasher.update(&chunk);
        body.extend_from_slice(&chunk);
    }
    Ok((body, hasher.finish()))
}
