//! `bundle.json`, the bundle manifest: what the bundle holds and the sha256 and size of every file.
//!
//! The signature covers the exact bytes of this document, so listing every file with its hash
//! makes one signature cover every byte of the bundle.

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::json::Step;
use crate::time::{BundleTime, TimeError};

pub const MANIFEST_FILE: &str = "bundle.json";
pub const SIGNATURE_FILE: &str = "bundle.sig";
pub const LOAD_SCRIPT_FILE: &str = "load-images.sh";
pub const SCHEMA_VERSION: u32 = 1;
pub const MEDIA_TYPE: &str = "application/vnd.sensei.bundle.v1+json";

/// Largest `bundle.json` a reader accepts; checked on the tar header before a byte is read.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// Most files one bundle may list.
pub const MAX_FILES: usize = 1_000_000;
/// Longest path of a file inside a bundle (fits a ustar name field without the prefix).
pub const MAX_PATH_BYTES: usize = 100;

/// Where `bundle.json`'s types read a struct, which must be a JSON object there.
const OBJECTS: &[&[Step]] = &[
    &[],
    &[Step::Key("compat")],
    &[Step::Key("images"), Step::Each],
    &[Step::Key("charts"), Step::Each],
    &[Step::Key("files"), Step::Each],
];

/// The bundle manifest, `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleManifest {
    pub schema_version: u32,
    pub media_type: String,
    pub name: String,
    pub version: semver::Version,
    /// `YYYY-MM-DDTHH:MM:SSZ` ([`BundleTime`]; deterministic: from `SOURCE_DATE_EPOCH` when set).
    pub created: String,
    /// The same form; omitted (never `null`) when the bundle never expires.
    #[serde(
        default,
        deserialize_with = "non_null::expires",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<String>,
    pub compat: Compat,
    pub images: Vec<ImageEntry>,
    pub charts: Vec<ChartEntry>,
    /// Every file of the archive but `bundle.json` and `bundle.sig`, in archive order.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compat {
    /// A semver requirement on the deployed version, e.g. `>=1.1.0, <1.3.0`.
    pub upgrade_from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageEntry {
    /// Canonical reference the image carries, e.g. `ghcr.io/sensei/api:1.2.0`.
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Platforms kept, `os/arch[/variant]`; empty for a single-platform image of unknown platform.
    pub platforms: Vec<String>,
    /// Set when a platform filter kept a subset of a multi-arch index: the digest of the source
    /// index (the bundle then holds a new index listing only the kept platforms).
    #[serde(
        default,
        deserialize_with = "non_null::filtered_from",
        skip_serializing_if = "Option::is_none"
    )]
    pub filtered_from: Option<Digest>,
    /// Where the bytes came from (registry reference or local layout), for the report.
    #[serde(
        default,
        deserialize_with = "non_null::image_source",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<String>,
}

/// One line for reports: `REFERENCE  DIGEST  [PLATFORMS]`, noting a platform subset.
impl std::fmt::Display for ImageEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}  {}", self.reference, self.digest)?;
        if !self.platforms.is_empty() {
            write!(f, "  [{}]", self.platforms.join(", "))?;
        }
        if self.filtered_from.is_some() {
            f.write_str("  (platform subset of the published index)")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartEntry {
    pub name: String,
    pub version: semver::Version,
    /// The name it has in the bundle's `index.json`: `charts/NAME:VERSION`.
    pub reference: String,
    /// Digest of the chart's OCI manifest.
    pub digest: Digest,
    #[serde(
        default,
        deserialize_with = "non_null::chart_source",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<String>,
}

impl ChartEntry {
    pub fn reference_for(name: &str, version: &semver::Version) -> String {
        format!("charts/{name}:{version}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Bare lowercase hex sha256 of the file's bytes.
    pub sha256: String,
}

/// Why a `bundle.json` is malformed (after its signature was accepted, or when inspecting).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("bundle.json is not valid JSON for format v1: {0}")]
    Json(String),
    #[error("bundle.json has schemaVersion {0}; this tool reads format v1 (upgrade sensei-loader)")]
    SchemaVersion(u32),
    #[error("bundle.json has mediaType {0:?}; expected {MEDIA_TYPE:?}")]
    MediaType(String),
    #[error("bundle.json lists {0} files; at most {MAX_FILES} are allowed")]
    TooManyFiles(usize),
    #[error("bundle.json lists a bad path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("bundle.json lists {0:?} twice")]
    DuplicatePath(String),
    #[error(
        "bundle.json lists {path:?} with sha256 {sha256:?}, which is not 64 lowercase hex digits"
    )]
    BadHash { path: String, sha256: String },
    #[error(
        "bundle.json lists blob {path:?} with sha256 {sha256}: a blob's name must be its own sha256"
    )]
    BlobNameMismatch { path: String, sha256: String },
    #[error("bundle.json: {what} {reference} (digest {digest}) is not among the listed blobs")]
    MissingBlob {
        what: &'static str,
        reference: String,
        digest: Digest,
    },
    #[error("bundle.json: {field} {source}")]
    BadTime {
        field: &'static str,
        source: TimeError,
    },
    #[error("bundle.json must list {0}")]
    MissingRequired(&'static str),
}

impl BundleManifest {
    /// Parses and checks structure. Callers check the signature over `bytes` before calling this.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ManifestError> {
        // Typed fields already refuse a repeated key; this also refuses an array read as a
        // struct (FORMAT.md §4.1: objects only).
        crate::json::check_document(bytes, OBJECTS)
            .map_err(|e| ManifestError::Json(e.to_string()))?;
        let m: BundleManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// The canonical bytes: compact-free, pretty JSON with a final newline (stable across builds
    /// because field order is fixed by the struct and every list is built sorted).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings and numbers cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Structural checks: schema, paths, hashes, uniqueness, and that every image and chart's
    /// digest is a listed blob.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(ManifestError::SchemaVersion(self.schema_version));
        }
        if self.media_type != MEDIA_TYPE {
            return Err(ManifestError::MediaType(self.media_type.clone()));
        }
        if self.files.len() > MAX_FILES {
            return Err(ManifestError::TooManyFiles(self.files.len()));
        }
        self.created_at()?;
        self.expires_at()?;
        let mut seen = HashSet::with_capacity(self.files.len());
        for f in &self.files {
            check_path(&f.path)?;
            if f.path == MANIFEST_FILE || f.path == SIGNATURE_FILE {
                return Err(ManifestError::BadPath {
                    path: f.path.clone(),
                    why: "this name is reserved",
                });
            }
            if !seen.insert(f.path.as_str()) {
                return Err(ManifestError::DuplicatePath(f.path.clone()));
            }
            if Digest::from_hex(&f.sha256).is_err() {
                return Err(ManifestError::BadHash {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                });
            }
            if let Some(name) = f.path.strip_prefix("blobs/sha256/")
                && name != f.sha256
            {
                return Err(ManifestError::BlobNameMismatch {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                });
            }
        }
        for required in [crate::oci::OCI_LAYOUT_FILE, crate::oci::INDEX_FILE] {
            if !seen.contains(required) {
                return Err(ManifestError::MissingRequired(required));
            }
        }
        let blobs: Vec<(&'static str, &str, &Digest)> = self
            .images
            .iter()
            .map(|i| ("image", i.reference.as_str(), &i.digest))
            .chain(
                self.charts
                    .iter()
                    .map(|c| ("chart", c.reference.as_str(), &c.digest)),
            )
            .collect();
        for (what, reference, digest) in blobs {
            if !seen.contains(digest.blob_path().as_str()) {
                return Err(ManifestError::MissingBlob {
                    what,
                    reference: reference.to_owned(),
                    digest: *digest,
                });
            }
        }
        Ok(())
    }

    pub fn created_at(&self) -> Result<BundleTime, ManifestError> {
        parse_time("created", &self.created)
    }

    pub fn expires_at(&self) -> Result<Option<BundleTime>, ManifestError> {
        self.expires
            .as_deref()
            .map(|t| parse_time("expires", t))
            .transpose()
    }

    /// Total bytes of the listed files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// `created` and `expires` have one form only (FORMAT.md §4.2), the one the writer emits.
fn parse_time(field: &'static str, text: &str) -> Result<BundleTime, ManifestError> {
    BundleTime::parse(text).map_err(|source| ManifestError::BadTime { field, source })
}

/// Optional fields of `bundle.json` are omitted when absent, never `null` (FORMAT.md §4.1):
/// serde alone reads `null` as absent, a second spelling of one document that nothing needs.
mod non_null {
    use super::{Deserializer, Digest};
    use crate::json::present;

    pub(super) fn expires<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        present(d, "expires")
    }

    pub(super) fn filtered_from<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Digest>, D::Error> {
        present(d, "images[].filteredFrom")
    }

    pub(super) fn image_source<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        present(d, "images[].source")
    }

    pub(super) fn chart_source<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        present(d, "charts[].source")
    }
}

/// Formats a clock reading for messages and the loader's records: RFC 3339, UTC, whole seconds.
/// (`bundle.json` itself holds [`BundleTime`]'s form, which the writer checks is in range.)
pub fn format_time(t: jiff::Timestamp) -> String {
    // Whole seconds keep the text independent of sub-second clock noise.
    jiff::Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The mode a file has in the archive: the load script is executable, everything else is not.
pub fn file_mode(path: &str) -> u32 {
    if path == LOAD_SCRIPT_FILE {
        0o755
    } else {
        0o644
    }
}

/// A clean relative path: `/`-separated components of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
pub fn check_path(path: &str) -> Result<(), ManifestError> {
    let bad = |why| {
        Err(ManifestError::BadPath {
            path: path.to_owned(),
            why,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than 100 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute paths are not allowed");
    }
    for comp in path.split('/') {
        match comp {
            "" => return bad("empty path component"),
            "." | ".." => return bad("`.` and `..` are not allowed"),
            _ => {}
        }
        if !comp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("only A-Z a-z 0-9 . _ - and / are allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
