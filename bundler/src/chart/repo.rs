//! Charts from Helm HTTP repositories: `index.yaml`, then the `.tgz` it points to, checked
//! against the digest the index gives.
//!
//! Both downloads go through the run's one registry client ([`Registry::download`]): the same
//! CAs, proxies and timeouts as the registries, and the same retries, a server's
//! `Retry-After` included. Nothing a repository sends is trusted: both downloads are read
//! chunk by chunk under a size bound (a hostile or broken server can't make us buffer without
//! limit), the chart's sha256 must equal the index's, and the packaged chart must be the name
//! and version asked for. The chart's bytes are kept exactly as downloaded, so its digest stays
//! the one the repository publishes.

mod index;
#[cfg(test)]
mod tests;

use sensei_core::digest::Digest;
use sensei_registry::{Download, ErrorKind, Registry};
use url::Url;

use super::{ChartError, MAX_CHART_BYTES, PackagedChart, from_tgz_bytes};
use index::{Lookup, shown};

/// Upper bound on `index.yaml`. Large public repositories publish indexes of 10–20 MiB.
pub const MAX_INDEX_BYTES: u64 = 32 * 1024 * 1024;

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
/// any password hidden), and every one is an outside failure (exit 3): the repository, the
/// network, or what the repository holds, not the user's input.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The download failed on the way (connection, TLS, a cut-off body), after the retries;
    /// the cause keeps its type, so the binary can add advice on its flags (a TLS failure).
    #[error(
        "{url}: {cause} (while downloading {what}); check the URL and that the server is \
         reachable from this machine"
    )]
    Network {
        url: String,
        what: &'static str,
        #[source]
        cause: ErrorKind,
    },
    #[error(
        "{url}: the server answered {status}: the repository needs credentials; give them in \
         the repository URL (https://USER:TOKEN@host/path) or download the chart and use path:"
    )]
    Credentials { url: String, status: u16 },
    #[error("{url}: the server answered {status} for {what}{hint}")]
    Status {
        url: String,
        status: u16,
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

/// Downloads chart `name` at `version` from the Helm repository at `repo`: reads its
/// `index.yaml`, downloads the `.tgz` the index lists first, checks it against the index's
/// digest, and checks that it is the chart and version asked for.
pub async fn fetch_repo_chart(
    registry: &Registry,
    repo: &Url,
    name: &str,
    version: &semver::Version,
) -> Result<RepoChart, RepoError> {
    let repo_shown = shown(repo);
    let index_url = index::index_url(repo).map_err(|problem| RepoError::Index {
        url: repo_shown.clone(),
        problem,
    })?;
    let index_bytes = get_bounded(registry, &index_url, MAX_INDEX_BYTES, "index.yaml")
        .await?
        .bytes;
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
    let Download {
        bytes: tgz,
        digest: actual,
    } = get_bounded(registry, &entry.url, MAX_CHART_BYTES, "the chart").await?;
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

/// GETs `url` into memory through the registry client (bounded, hashed, retried), and says
/// what a failure means for a Helm repository.
async fn get_bounded(
    registry: &Registry,
    url: &Url,
    limit: u64,
    what: &'static str,
) -> Result<Download, RepoError> {
    registry
        .download(url, limit, what)
        .await
        .map_err(|kind| repo_error(url, what, limit, kind))
}

/// A failed download as a Helm repository's error: statuses with what they mean here.
fn repo_error(url: &Url, what: &'static str, limit: u64, kind: ErrorKind) -> RepoError {
    let url = shown(url);
    let status = match kind {
        ErrorKind::Unauthorized | ErrorKind::CredentialsRejected { .. } => {
            return RepoError::Credentials { url, status: 401 };
        }
        ErrorKind::Forbidden => return RepoError::Credentials { url, status: 403 },
        ErrorKind::TooLarge { .. } => return RepoError::TooLarge { url, what, limit },
        ErrorKind::NotFound => 404,
        ErrorKind::Status { status, .. } => status,
        cause => return RepoError::Network { url, what, cause },
    };
    let hint = match (status, what) {
        (404, "index.yaml") => "; is this a Helm repository? (it serves index.yaml under its URL)",
        (404, _) => "; the repository index lists a file it doesn't serve",
        (s, _) if s >= 500 || s == 429 => {
            "; the server kept failing through every retry, try again later"
        }
        _ => "",
    };
    RepoError::Status {
        url,
        status,
        what,
        hint,
    }
}
