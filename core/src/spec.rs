//! The bundle spec (`manifests/*.yaml`): what a release engineer asks a bundle to contain.
//!
//! ```yaml
//! name: sensei
//! version: 1.2.0
//! expires: 180d
//! compat: {upgradeFrom: ">=1.1.0, <1.3.0"}
//! platforms: [linux/amd64]
//! charts:
//!   - path: ./charts/sensei
//!   - {repo: https://charts.example.com, name: data-plane, version: 1.2.0}
//!   - {oci: oci://registry.example.com/charts/control-plane, version: 1.2.0, values: {a: 1}}
//! images:
//!   - registry.example.com/sensei/api:1.2.0
//!   - {ref: registry.example.com/sensei/worker:1.2.0, layout: ./build/oci, layoutRef: w-1.2.0}
//! discoverImages: true
//! mirrors: {docker.io: mirror.corp.example:5000}
//! ```
//!
//! The YAML is read into a generic tree and then walked by hand rather than derived with serde:
//! charts and images each come in several shapes, and serde's untagged enums would turn a typo
//! into "data did not match any variant". Walking by hand lets every error name the exact key
//! (`charts[1]: unknown key "versoin" ...`) and say what to write instead. Everything a spec says
//! is checked here, before the bundler touches the network.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use semver::Version;

use crate::compat::CompatRule;

mod expiry;
mod parse;
mod platform;
mod reference;
#[cfg(test)]
mod tests;

pub use expiry::Expiry;
pub use platform::Platform;
pub use reference::{ImageRef, validate_host, validate_reference};

/// Largest spec file read. Real specs are a few KiB; the bound keeps a wrong path (an image
/// tarball, a device) from being slurped into memory.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// A parsed and validated bundle spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSpec {
    /// Lowercase `[a-z0-9-._]`, starting with a letter or digit.
    pub name: String,
    /// The bundle's version; `--version` overrides it, and one of the two must be given.
    pub version: Option<Version>,
    pub expires: Option<Expiry>,
    /// `compat.upgradeFrom`; `None` means the seed's policy, see [`BundleSpec::compat_rule_for`].
    pub compat: Option<CompatRule>,
    /// Empty means every platform an image has.
    pub platforms: Vec<Platform>,
    pub charts: Vec<ChartSource>,
    pub images: Vec<ImageSource>,
    /// Also bundle the images the charts render or declare in annotations. Off unless asked
    /// for: what goes into a bundle should be visible in its spec.
    pub discover_images: bool,
    /// Canonical registry host → the host to pull from instead (`docker.io` → `mirror:5000`).
    pub mirrors: BTreeMap<String, String>,
    /// Directory of the spec file; relative paths resolve against it.
    pub base_dir: PathBuf,
}

/// Where a chart comes from. `values` (any YAML mapping, as JSON) are used only when rendering
/// the chart to discover its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// A chart directory or a packaged `.tgz`; the path is already resolved against the spec's
    /// directory. Name and version come from its `Chart.yaml`.
    Path {
        path: PathBuf,
        values: Option<serde_json::Value>,
    },
    /// A Helm HTTP repository (`index.yaml`), `http://` or `https://`.
    Repo {
        repo: String,
        name: String,
        version: String,
        values: Option<serde_json::Value>,
    },
    /// An OCI registry, `oci://HOST/PATH`; the chart's name is the last path component.
    Oci {
        oci: String,
        version: String,
        values: Option<serde_json::Value>,
    },
}

impl ChartSource {
    /// Values for rendering, if the spec gave any.
    pub fn values(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Path { values, .. } | Self::Repo { values, .. } | Self::Oci { values, .. } => {
                values.as_ref()
            }
        }
    }
}

/// Where an image's bytes come from. `reference` is the name it carries in the bundle, as
/// written in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Pulled from its registry (or from a mirror of it).
    Registry { reference: String },
    /// Read from a local OCI image layout directory (resolved against the spec's directory).
    /// `layout_ref` is the `org.opencontainers.image.ref.name` to take; optional when the layout
    /// holds one image.
    Layout {
        reference: String,
        layout: PathBuf,
        layout_ref: Option<String>,
    },
}

impl ImageSource {
    pub fn reference(&self) -> &str {
        match self {
            Self::Registry { reference } | Self::Layout { reference, .. } => reference,
        }
    }
}

/// Why a spec could not be used. `Display` always starts with the spec file's path.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read the bundle spec: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{}: the file is {size} bytes, more than a bundle spec may be ({MAX_SPEC_BYTES} bytes); \
         is this the right file?",
        path.display()
    )]
    TooLarge { path: PathBuf, size: u64 },
    /// `line` and `column` are 1-based; 0 when the parser could not tell.
    #[error("{}{}: invalid YAML: {message}", path.display(), location(*line, *column))]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `key` is the dotted path of the offending entry (`images[2].layoutRef`); empty for the
    /// document as a whole, such as an unknown top-level key (the message then names it).
    #[error("{}: {}{message}", path.display(), key_prefix(key))]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl BundleSpec {
    /// Reads and parses a spec file, refusing files over [`MAX_SPEC_BYTES`]. `base_dir` is made
    /// absolute so resolved paths stay right whatever the caller's working directory later is;
    /// messages keep `path` as given.
    pub fn from_path(path: &Path) -> Result<Self, SpecError> {
        let read_error = |source| SpecError::Read {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        // The length can lie (a FIFO, a file still growing), so the read itself is bounded too.
        let mut bytes = Vec::new();
        file.take(MAX_SPEC_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge {
                path: path.to_owned(),
                size: bytes.len() as u64,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            read_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is not UTF-8 text",
            ))
        })?;
        let base_dir = match std::path::absolute(path) {
            Ok(abs) => dir_of(&abs),
            Err(_) => dir_of(path),
        };
        parse::parse(&text, path, base_dir)
    }

    /// Parses spec text. `path` is used only in messages and to find `base_dir` (its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        parse::parse(text, path, dir_of(path))
    }

    /// The compat rule the bundle will carry for `version`: the spec's, or the seed's policy.
    pub fn compat_rule_for(&self, version: &Version) -> CompatRule {
        self.compat
            .clone()
            .unwrap_or_else(|| CompatRule::default_for(version))
    }
}

/// The directory relative paths in a spec at `path` are relative to; `.` for a bare file name.
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}
