//! Local Helm charts, turned into the two blobs of a Helm OCI artifact.
//!
//! A bundle stores each chart the way `helm push` does: a config blob (Chart.yaml as JSON, media
//! type [`HELM_CONFIG`](sensei_core::content::HELM_CONFIG)) and a content blob (the packaged
//! `.tgz`, media type [`HELM_CHART_CONTENT`](sensei_core::content::HELM_CHART_CONTENT)). This
//! module produces both from
//!
//! - a chart directory ([`package_dir`]): packaged deterministically, so the same sources and the
//!   same `mtime` always give the same bytes and therefore the same digest, whatever the files'
//!   timestamps, owners or permissions on disk;
//! - an already packaged chart ([`read_tgz`], [`from_tgz_bytes`]): kept byte for byte, because its
//!   digest may already be known elsewhere (a repository index, a provenance file).
//!
//! Nothing is ever extracted to disk: archives are read as streams, with bounds on every size, and
//! entries that could escape a directory are refused rather than skipped.

mod ignore;
mod metadata;
mod package;
mod read;
pub mod repo;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use package::package_dir;
pub use read::{from_tgz_bytes, read_tgz};

/// Upper bound on a chart: the sum of its file sizes when packaging a directory, and the size of
/// the `.tgz` when reading one. Charts are text; anything near this is a mistake (a stray binary,
/// a forgotten `.helmignore`), and every byte is held in memory.
pub const MAX_CHART_BYTES: u64 = 64 * 1024 * 1024;
/// Upper bound on Chart.yaml itself, so a hostile archive can't make us parse a huge document.
pub const MAX_CHART_YAML_BYTES: u64 = 1024 * 1024;

/// A chart ready to store: the `.tgz` bytes laid out as `helm package` does, and Helm's OCI
/// config blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagedChart {
    /// `name` from Chart.yaml; also the top-level directory inside the `.tgz` we write.
    pub name: String,
    /// `version` from Chart.yaml, which Helm requires to be SemVer 2.
    pub version: semver::Version,
    /// `appVersion` from Chart.yaml, if present (numbers are kept as their YAML text).
    pub app_version: Option<String>,
    /// Chart.yaml as JSON (Helm's config blob content), canonical: sorted keys, compact.
    pub config_json: Vec<u8>,
    /// The packaged chart (gzip-compressed tar), the content layer's exact bytes.
    pub content_tgz: Vec<u8>,
    /// Image references declared in the Chart.yaml annotations `images`, `artifacthub.io/images`
    /// and `helm.sh/images` (in that order, duplicates removed).
    pub annotated_images: Vec<String>,
}

/// Why a chart could not be packaged or read. Every variant names the chart (its directory, file
/// or download origin) and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart {origin}: {action}: {source}")]
    Io {
        origin: String,
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("chart {origin}: not a directory; give a chart directory or a packaged .tgz")]
    NotADirectory { origin: String },
    #[error(
        "chart {origin}: no Chart.yaml at the chart's top level; a Helm chart needs one \
         (if it exists, check that .helmignore does not exclude it)"
    )]
    MissingChartYaml { origin: String },
    #[error("chart {origin}: Chart.yaml is not valid YAML: {source}")]
    ChartYamlSyntax {
        origin: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("chart {origin}: Chart.yaml is not a YAML mapping of fields (name, version, ...)")]
    NotAMapping { origin: String },
    #[error("chart {origin}: Chart.yaml has no `{field}`; add it (Helm requires it)")]
    MissingField { origin: String, field: &'static str },
    #[error("chart {origin}: Chart.yaml `{field}` {problem}")]
    InvalidField {
        origin: String,
        field: &'static str,
        problem: String,
    },
    #[error(
        "chart {origin}: Chart.yaml version {version:?} is not a SemVer 2 version ({source}); \
         Helm requires SemVer 2 chart versions, e.g. 1.2.0"
    )]
    InvalidVersion {
        origin: String,
        version: String,
        #[source]
        source: semver::Error,
    },
    #[error(
        "chart {origin}: Chart.yaml apiVersion {api_version:?} is not supported; use v2 (Helm 3) \
         or v1 (Helm 2)"
    )]
    UnsupportedApiVersion { origin: String, api_version: String },
    #[error(
        "chart {origin}: annotation `{key}` must be a YAML list of image references or of \
         {{name, image}} maps: {problem}"
    )]
    InvalidAnnotation {
        origin: String,
        key: String,
        problem: String,
    },
    #[error(
        "chart {origin}: {what} exceeds the limit of {limit} bytes; charts are small text, so \
         leave large files out (list them in .helmignore)"
    )]
    TooLarge {
        origin: String,
        what: String,
        limit: u64,
    },
    #[error(
        "chart {origin}: {} is a symbolic link; charts are packaged without links, so replace \
         it with the file it points to or list it in .helmignore",
        path.display()
    )]
    Symlink { origin: String, path: PathBuf },
    #[error(
        "chart {origin}: {} is not a regular file or directory; remove it or list it in .helmignore",
        path.display()
    )]
    UnsupportedFileType { origin: String, path: PathBuf },
    #[error("chart {origin}: file name {} is not UTF-8; rename it", path.display())]
    NonUtf8Path { origin: String, path: PathBuf },
    #[error("chart {origin}: .helmignore line {line}: pattern {pattern:?} {problem}")]
    HelmIgnore {
        origin: String,
        line: usize,
        pattern: String,
        problem: String,
    },
    #[error("chart {origin}: not a valid packaged chart: {problem}")]
    InvalidArchive { origin: String, problem: String },
    #[error("chart {origin}: could not encode Chart.yaml as JSON: {source}")]
    ConfigJson {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ChartError {
    fn io(origin: &str, action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            origin: origin.to_owned(),
            action: action.into(),
            source,
        }
    }

    fn too_large(origin: &str, what: impl Into<String>, limit: u64) -> Self {
        Self::TooLarge {
            origin: origin.to_owned(),
            what: what.into(),
            limit,
        }
    }
}
