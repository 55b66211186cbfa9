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
mod tests {
    use super::*;

    fn sample() -> BundleManifest {
        let blob = Digest::of(b"x");
        BundleManifest {
            schema_version: 1,
            media_type: MEDIA_TYPE.into(),
            name: "demo".into(),
            version: "1.2.0".parse().unwrap(),
            created: "2026-01-01T00:00:00Z".into(),
            expires: None,
            compat: Compat {
                upgrade_from: ">=1.1.0, <1.3.0".into(),
            },
            images: vec![ImageEntry {
                reference: "r.example/a:1".into(),
                digest: blob,
                media_type: crate::oci::OCI_MANIFEST.into(),
                size: 1,
                platforms: vec![],
                filtered_from: None,
                source: None,
            }],
            charts: vec![],
            files: vec![
                FileEntry {
                    path: "oci-layout".into(),
                    size: 1,
                    sha256: blob.hex(),
                },
                FileEntry {
                    path: "index.json".into(),
                    size: 1,
                    sha256: blob.hex(),
                },
                FileEntry {
                    path: blob.blob_path(),
                    size: 1,
                    sha256: blob.hex(),
                },
            ],
        }
    }

    #[test]
    fn round_trips_through_bytes() {
        let m = sample();
        assert_eq!(BundleManifest::from_slice(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a b",
            "",
            "blobs/sha256/../../x",
        ] {
            assert!(check_path(p).is_err(), "{p:?} should be rejected");
        }
        check_path("blobs/sha256/abc").unwrap();
    }

    #[test]
    fn rejects_duplicates_unknown_fields_and_misnamed_blobs() {
        let mut m = sample();
        m.files.push(m.files[0].clone());
        assert!(matches!(m.check(), Err(ManifestError::DuplicatePath(_))));

        let mut m = sample();
        m.files[2].sha256 = Digest::of(b"y").hex();
        assert!(matches!(
            m.check(),
            Err(ManifestError::BlobNameMismatch { .. })
        ));

        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["surprise"] = 1.into();
        let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn optional_fields_are_omitted_never_null() {
        let mut m = sample();
        m.expires = Some("2027-01-01T00:00:00Z".into());
        m.images[0].filtered_from = Some(Digest::of(b"published index"));
        m.images[0].source = Some("oci-layout:/build/oci:a:1".into());
        m.charts.push(ChartEntry {
            name: "demo".into(),
            version: "1.2.0".parse().unwrap(),
            reference: "charts/demo:1.2.0".into(),
            digest: m.images[0].digest,
            source: Some("./charts/demo".into()),
        });
        let full: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(
            BundleManifest::from_slice(&serde_json::to_vec(&full).unwrap()).unwrap(),
            m
        );
        for (pointer, field) in [
            ("/expires", "expires"),
            ("/images/0/filteredFrom", "images[].filteredFrom"),
            ("/images/0/source", "images[].source"),
            ("/charts/0/source", "charts[].source"),
        ] {
            let mut v = full.clone();
            *v.pointer_mut(pointer).unwrap() = serde_json::Value::Null;
            let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(
                matches!(&err, ManifestError::Json(msg) if msg.contains(&format!("{field} is null"))),
                "{pointer}: {err}"
            );
        }
    }

    #[test]
    fn times_have_the_form_the_writer_emits_and_no_other() {
        for (field, created, expires) in [
            ("created", "2026-01-01 00:00:00Z", None),
            ("created", "2026-01-01T00:00Z", None),
            ("created", "2016-12-31T23:59:60Z", None),
            (
                "expires",
                "2026-01-01T00:00:00Z",
                Some("2027-01-01T00:00:00+00:00"),
            ),
            (
                "expires",
                "2026-01-01T00:00:00Z",
                Some("2027-01-01T00:00:00.5Z"),
            ),
        ] {
            let mut m = sample();
            m.created = created.into();
            m.expires = expires.map(Into::into);
            let err = m.check().unwrap_err();
            assert!(
                matches!(err, ManifestError::BadTime { field: f, .. } if f == field),
                "{created} {expires:?}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("bundle.json: {field} \"")),
                "{err}"
            );
        }
        let mut m = sample();
        m.expires = Some("9999-12-31T23:59:59Z".into());
        m.check().unwrap();
        assert_eq!(
            m.expires_at().unwrap().unwrap().as_second(),
            crate::time::MAX_SECOND
        );
    }

    #[test]
    fn versions_are_semver_2_with_u64_numbers() {
        // FORMAT.md §4.3 rule 4, case by case: the bundle's and each chart's version.
        let good = [
            "0.0.0",
            "1.2.0-rc.1",
            "1.2.3-0",
            "1.2.3-0a",
            "1.2.3-a-b.c--d",
            "1.2.3-99999999999999999999999",
            "1.2.3+001",
            "1.2.3-rc.1+build.5",
            "18446744073709551615.0.0",
        ];
        let bad = [
            "1.2",
            "v1.2.3",
            "=1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "01.2.3",
            "1.02.3",
            "1.2.3-01",
            "1.2.3-a.01",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "1.2.3-a_b",
            "1.2.3-ä",
            "1.2.3-a+b+c",
            "18446744073709551616.0.0",
        ];
        let mut m = sample();
        m.charts.push(ChartEntry {
            name: "demo".into(),
            version: "1.0.0".parse().unwrap(),
            reference: "charts/demo:1.0.0".into(),
            digest: m.images[0].digest,
            source: None,
        });
        let doc: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        for pointer in ["/version", "/charts/0/version"] {
            let with = |version: &str| {
                let mut v = doc.clone();
                *v.pointer_mut(pointer).unwrap() = version.into();
                BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap())
            };
            for version in good {
                let parsed = with(version).unwrap_or_else(|e| panic!("{version}: {e}"));
                let kept = match pointer {
                    "/version" => parsed.version,
                    _ => parsed.charts[0].version.clone(),
                };
                assert_eq!(kept.to_string(), version);
            }
            for version in bad {
                assert!(
                    matches!(with(version), Err(ManifestError::Json(_))),
                    "{pointer} {version:?}"
                );
            }
        }
    }

    #[test]
    fn a_key_twice_is_refused_at_any_depth() {
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        for (from, to) in [
            (
                "\"name\": \"demo\",",
                "\"name\": \"demo\",\n  \"name\": \"other\",",
            ),
            ("\"size\": 1,", "\"size\": 1,\n      \"size\": 1,"),
        ] {
            let doubled = text.replacen(from, to, 1);
            assert_ne!(doubled, text);
            let err = BundleManifest::from_slice(doubled.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("appears twice"), "{err}");
        }
    }

    #[test]
    fn structs_are_objects_never_positional_arrays() {
        // serde reads `[path, size, sha256]` as a FileEntry: a second spelling of one manifest.
        let full: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        let file = &full["files"][0];
        for (pointer, positional, name) in [
            (
                "/files/0",
                serde_json::json!([file["path"], file["size"], file["sha256"]]),
                "files[0]",
            ),
            ("/compat", serde_json::json!([">=1.1.0, <1.3.0"]), "compat"),
        ] {
            let mut v = full.clone();
            *v.pointer_mut(pointer).unwrap() = positional;
            let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("{name} must be a JSON object, not an array")),
                "{err}"
            );
        }
    }

    #[test]
    fn image_digest_must_be_a_listed_blob() {
        let mut m = sample();
        m.images[0].digest = Digest::of(b"elsewhere");
        assert!(matches!(m.check(), Err(ManifestError::MissingBlob { .. })));
    }
}
